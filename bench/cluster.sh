#!/usr/bin/env bash
# Cluster mode figures (docs/cluster.md): takeover time over SIGKILLs of the leader hbd,
# notifications lost and duplicated over those kills, with a real three-node NATS
# JetStream cluster, three hbd processes and a real SMTP server (the test
# tests/tests/cluster, run with more kills). Prints the figures line and appends it to
# bench/results/cluster.txt.
#
#   KILLS=20 bench/cluster.sh
set -euo pipefail
cd "$(dirname "$0")/.."
KILLS=${KILLS:-20}
cargo build -q -p hbd --bin hbd
out=$(HBD_CLUSTER_KILLS=$KILLS cargo test -q -p hb-tests --test cluster -- \
    every_transition_is_mailed_once_across_leader_kills --nocapture 2>&1) || { echo "$out" >&2; exit 1; }
line=$(grep '^cluster figures:' <<<"$out")
echo "$line"
mkdir -p bench/results
echo "$(date -u +%F) $line" >>bench/results/cluster.txt
