#!/usr/bin/env bash
# hbd server benchmarks (issue "hbd: the server core"), all on 127.0.0.1:
#
#   bench/server.sh                 # build release, run everything (~25 min), 3 rounds each
#   ONLY=ingest ROUNDS=1 bench/server.sh
#
# Env: ROUNDS (repetitions, medians reported; default 3), ONLY (comma-separated subset of
# cost,ingest,fleet,ws), NO_BUILD=1 (use the existing target/release), MAX_BUSY (wait
# until other programs use at most this many cores before each measurement, default 0.3),
# HOSTS (fleet size, default 100000), KEEP_TMP=1 (keep hbd's data folders and logs).
#
# Runs the real hbd binary in its own process against `hb-loadgen` (bench/loadgen), which
# also provides the same-run baselines: a minimal recvmmsg receiver for ingest and CPU, a
# minimal WebSocket server for push latency. Output: stdout and bench/results/server.txt.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
ROUNDS=${ROUNDS:-3}
ONLY=${ONLY:-cost,ingest,fleet,ws}
MAX_BUSY=${MAX_BUSY:-0.3}
HOSTS=${HOSTS:-100000}
work=$(mktemp -d /tmp/hb-bench.XXXXXX)
cleanup() { [[ ${KEEP_TMP:-0} == 1 ]] && echo "kept $work" >&2 || rm -rf "$work"; }
trap cleanup EXIT

cd "$root"
if [[ ${NO_BUILD:-0} != 1 ]]; then
    cargo build --release -p hbd -p hb-loadgen >&2
fi
hbd=$root/target/release/hbd
gen=$root/target/release/hb-loadgen
[[ -x $hbd && -x $gen ]] || { echo "server.sh: build first (cargo build --release -p hbd -p hb-loadgen)" >&2; exit 1; }

want() { [[ ",$ONLY," == *",$1,"* ]]; }
mkdir -p "$here/results"
out=$here/results/server.txt

{
    echo "# hbd server benchmarks ($(date -u '+%Y-%m-%d %H:%M UTC'))"
    echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), kernel $(uname -r), glibc $(ldd --version | head -1 | awk '{print $NF}')"
    rev=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
    dirty=$(git status --porcelain -- server proto bench/loadgen 2>/dev/null | wc -l)
    echo "revision: $rev$([[ $dirty != 0 ]] && echo " + $dirty uncommitted files in server/ proto/ bench/loadgen/")"
    echo "net.core.rmem_max $(sysctl -n net.core.rmem_max); hbd and raw-recv force an 8 MiB receive buffer (root: SO_RCVBUFFORCE)"
    echo "load at start: $(cut -d' ' -f1-3 /proc/loadavg); rounds: $ROUNDS (medians reported); each measurement waits until other programs use <= $MAX_BUSY cores"
    echo "NOTE: $(nproc) cores shared by the load generator (and WebSocket clients) and the server under test; the baselines run under the same conditions."
    echo
    if want cost; then
        "$gen" cost
        echo
    fi
    if want ingest; then
        "$gen" ingest --hbd "$hbd" --work "$work" --rounds "$ROUNDS" --targets raw,decode,hbd --max-busy "$MAX_BUSY"
        echo
    fi
    if want fleet; then
        "$gen" fleet --hbd "$hbd" --work "$work" --rounds "$ROUNDS" --hosts "$HOSTS" --max-busy "$MAX_BUSY"
        echo
    fi
    if want ws; then
        "$gen" ws-latency --hbd "$hbd" --work "$work" --rounds "$ROUNDS" --max-busy "$MAX_BUSY"
        echo
    fi
    echo "load at end: $(cut -d' ' -f1-3 /proc/loadavg)"
} 2>&1 | tee "$out"
