#!/usr/bin/env bash
# hbd server benchmarks (issue "hbd: the server core"), all on 127.0.0.1:
#
#   bench/server.sh                 # build release, run everything (~25 min), 3 rounds each
#   ONLY=ingest ROUNDS=1 bench/server.sh
#
# Env: ROUNDS (repetitions, medians reported; default 3), ONLY (comma-separated subset of
# cost,ingest,fleet,ws), WS_RATES (heartbeats/s for ws-latency, default "200 1000"),
# NO_BUILD=1 (use the existing target/release), MAX_BUSY (wait until other programs use
# at most this many cores before each measurement, default 0.3), OUT (results file),
# HOSTS (fleet size, default 100000), KEEP_TMP=1 (keep hbd's data folders and logs),
# HBD / LOADGEN (binaries to use instead of $CARGO_TARGET_DIR/release/{hbd,hb-loadgen}; e.g.
# copies, so a concurrent build cannot replace them mid-run), SRC (the tree they were built
# from, for the revision line; default this repository; or REV, the revision itself, when
# they were built from an export such as `git archive`), FLEET_ROUNDS (default ROUNDS),
# FLEET_ARGS (more options for `hb-loadgen fleet`, e.g. "--ws-observer false --metrics-per-host false --flows 2" at 1,000,000 hosts:
# --flows N sends from N sockets placed on distinct receiver sockets, as a fleet of many addresses reaches hbd).
#
# Runs the real hbd binary in its own process against `hb-loadgen` (bench/loadgen), which
# also provides the same-run baselines: a minimal recvmmsg receiver for ingest and CPU, a
# minimal WebSocket server for push latency. Output: stdout and bench/results/server.txt.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
ROUNDS=${ROUNDS:-3}
ONLY=${ONLY:-cost,ingest,fleet,ws}
WS_RATES=${WS_RATES:-200 1000}
MAX_BUSY=${MAX_BUSY:-0.3}
HOSTS=${HOSTS:-100000}
work=$(mktemp -d -t hb-bench.XXXXXX)
cleanup() { [[ ${KEEP_TMP:-0} == 1 ]] && echo "kept $work" >&2 || rm -rf "$work"; }
trap cleanup EXIT

cd "$root"
if [[ ${NO_BUILD:-0} != 1 ]]; then
    cargo build --release -p hbd -p hb-loadgen >&2
fi
tgt=${CARGO_TARGET_DIR:-$root/target}
hbd=${HBD:-$tgt/release/hbd}
gen=${LOADGEN:-$tgt/release/hb-loadgen}
[[ -x $hbd && -x $gen ]] || { echo "server.sh: build first (cargo build --release -p hbd -p hb-loadgen)" >&2; exit 1; }
src=${SRC:-$root}
FLEET_ARGS=${FLEET_ARGS:-}

want() { [[ ",$ONLY," == *",$1,"* ]]; }
mkdir -p "$here/results"
out=${OUT:-$here/results/server.txt}

{
    echo "# hbd server benchmarks ($(date -u '+%Y-%m-%d %H:%M UTC'))"
    cpuinfo() { grep -m1 "^$1[[:space:]]*:" /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'; }
    echo "machine: $(nproc) cores, CPU $(cpuinfo 'model name') (family $(cpuinfo 'cpu family') model $(cpuinfo model) stepping $(cpuinfo stepping), $(cpuinfo 'cpu MHz') MHz), $(free -g | awk '/^Mem:/ {print $2}') GiB RAM, kernel $(uname -r), glibc $(ldd --version | head -1 | awk '{print $NF}')"
    rev=${REV:-$(git -C "$src" rev-parse --short HEAD 2>/dev/null || echo unknown)}
    dirty=0
    [[ -n ${REV:-} ]] || dirty=$(git -C "$src" status --porcelain -- server proto bench/loadgen 2>/dev/null | wc -l)
    echo "revision: $rev$([[ $dirty != 0 ]] && echo " + $dirty uncommitted files in server/ proto/ bench/loadgen/") (git rev-parse --short HEAD of the tree built)"
    echo "binaries: $(basename "$hbd") (built $(date -u -r "$hbd" '+%Y-%m-%d %H:%M UTC')), $(basename "$gen")"
    echo "UDP: hbd runs with ingest_threads: 2 and udp_rcvbuf: 8388608 in its config (its defaults, written out); raw-recv opens as many SO_REUSEPORT sockets with hbd's buffer steps; net.core.rmem_max $(sysctl -n net.core.rmem_max) (each run prints ss -m's rb per socket)"
    echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg); rounds: $ROUNDS (medians reported); each measurement waits until other programs use <= $MAX_BUSY cores"
    echo "NOTE: $(nproc) cores shared by the load generator (and WebSocket clients) and the server under test; the baselines run under the same conditions."
    echo
    if want cost; then
        "$gen" cost
        echo
        "$gen" memory --hosts "$HOSTS"
        echo
    fi
    if want ingest; then
        "$gen" ingest --hbd "$hbd" --work "$work" --rounds "$ROUNDS" --targets raw,decode,hbd --max-busy "$MAX_BUSY"
        echo
    fi
    if want fleet; then
        # shellcheck disable=SC2086 # FLEET_ARGS is a list of options
        "$gen" fleet --hbd "$hbd" --work "$work" --rounds "${FLEET_ROUNDS:-$ROUNDS}" --hosts "$HOSTS" --max-busy "$MAX_BUSY" $FLEET_ARGS
        echo
    fi
    if want ws; then
        for rate in $WS_RATES; do
            "$gen" ws-latency --hbd "$hbd" --work "$work" --rounds "$ROUNDS" --rate "$rate" --max-busy "$MAX_BUSY"
            echo
        done
    fi
    echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
} 2>&1 | tee "$out"
