#!/usr/bin/env bash
# Long-term history export (issue 17): the real hbd (release) fed by `hb-loadgen blast`
# (HOSTS simulated hosts, 30 readings each, every 10 s) exporting to a real
# VictoriaMetrics on loopback, against the same load with export off, in the same run.
#
#   bench/history.sh                  # HOSTS=10000, 40 s per run
#   HOSTS=100000 SECONDS_RUN=40 bench/history.sh
#
# Prints: hbd CPU (cores) and peak RSS with export off and on; samples exported per
# second and per core of export work (the on-off CPU difference), as a ratio to
# datagrams ingested per core in the same run; loss (sent + dropped vs expected); bytes
# on the wire per sample (snappy-compressed protobuf, hbd's own counter); memory per
# buffered sample (the database stopped for OUTAGE seconds); the CPU model.
# Env: HOSTS, SECONDS_RUN, OUTAGE (s), HBD / LOADGEN (binaries; default
# $CARGO_TARGET_DIR or target, release), OUT (results file).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
HOSTS=${HOSTS:-10000}
SECONDS_RUN=${SECONDS_RUN:-40}
OUTAGE=${OUTAGE:-15}
tdir=${CARGO_TARGET_DIR:-$root/target}
hbd=${HBD:-$tdir/release/hbd}
gen=${LOADGEN:-$tdir/release/hb-loadgen}
[[ -x $hbd && -x $gen ]] || { echo "history.sh: cargo build --release -p hbd -p hb-loadgen first" >&2; exit 1; }
command -v victoria-metrics >/dev/null || { echo "history.sh: needs victoria-metrics (scripts/deps)" >&2; exit 1; }
work=$(mktemp -d -t hb-history-bench.XXXXXX)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; rm -rf "$work"; }
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
rss_kb() { awk '/VmRSS/{print $2}' "/proc/$1/status"; }
metric() { curl -s "http://127.0.0.1:$2/metrics" | awk -v m="$1" 'index($0, m)==1 {s+=$NF} END {printf "%.0f", s}'; }
hz=$(getconf CLK_TCK)
rate=$(( HOSTS / 10 ))

vmport=$(port)
victoria-metrics -httpListenAddr=127.0.0.1:$vmport -storageDataPath="$work/vm" >"$work/vm.log" 2>&1 &
vmpid=$!; pids+=($vmpid)
for _ in $(seq 100); do curl -sf "http://127.0.0.1:$vmport/health" >/dev/null && break; sleep 0.1; done

run() {  # $1: off|on
    local mode=$1 udp http cfg
    udp=$(port); http=$(port)
    cfg="$work/hbd-$mode.yaml"
    cat >"$cfg" <<YAML
hb_port: $udp
hbd_port: $http
ws_port: 0
bind: 127.0.0.1
secret: "hb-bench-secret-0123456789abcdef"
data_dir: $work/data-$mode
max_hosts: $(( HOSTS + 1000 ))
journal_fsync: never
logfile: $work/hbd-$mode.log
YAML
    if [[ $mode == on ]]; then
        printf 'remote_write:\n  - url: http://127.0.0.1:%s/api/v1/write\nhistory_buffer: 2000000\nhistory_batch: 5000\nhistory_flush: 1s\n' "$vmport" >>"$cfg"
    fi
    "$hbd" -f -c "$cfg" >"$work/hbd-$mode.out" 2>&1 &
    local pid=$!; pids+=($pid)
    for _ in $(seq 100); do curl -sf "http://127.0.0.1:$http/healthz" >/dev/null && break; sleep 0.1; done
    "$gen" blast --target 127.0.0.1:$udp --rate $rate --duration "$SECONDS_RUN" --hosts "$HOSTS" --readings 30 >"$work/blast-$mode.out" 2>&1 &
    local gpid=$!
    sleep 12   # ramp: every host's first heartbeat (new hosts cost more), then steady
    local t0 c0 t1 c1 rss=0 a0 a1
    t0=$(date +%s.%N); c0=$(ticks $pid); a0=$(metric hbd_datagrams_accepted_total $http)
    local end=$(( $(date +%s) + SECONDS_RUN - 16 ))
    while (( $(date +%s) < end )); do r=$(rss_kb $pid); (( r > rss )) && rss=$r; sleep 0.5; done
    t1=$(date +%s.%N); c1=$(ticks $pid); a1=$(metric hbd_datagrams_accepted_total $http)
    wait $gpid || true
    local cores dps
    cores=$(python3 -c "print(round(($c1-$c0)/$hz/($t1-$t0),3))")
    dps=$(python3 -c "print(round(($a1-$a0)/($t1-$t0)))")
    echo "$mode: hbd CPU $cores cores, peak RSS $(( rss / 1024 )) MiB, $dps datagrams/s accepted (steady window $(python3 -c "print(round($t1-$t0,1))") s)"
    eval "cores_$mode=$cores; dps_$mode=$dps; rss_$mode=$rss"
    if [[ $mode == on ]]; then
        for _ in $(seq 100); do [[ $(metric hbd_history_buffered_samples $http) == 0 ]] && break; sleep 0.2; done
        local acc sent bytes dropped
        acc=$(metric hbd_datagrams_accepted_total $http)
        sent=$(metric hbd_history_sent_samples_total $http)
        bytes=$(metric hbd_history_sent_bytes_total $http)
        dropped=$(metric hbd_history_dropped_samples_total $http)
        echo "on: $acc datagrams accepted -> $(( acc * 32 )) samples expected (30 readings + up + level); $sent sent, $dropped dropped"
        echo "on: $(python3 -c "print(round($bytes/$sent,2))") bytes on the wire per sample ($bytes bytes, snappy protobuf, batches of 5000)"
        local sps export_cores
        sps=$(( dps * 32 ))
        export_cores=$(python3 -c "print(max($cores_on-$cores_off, 1e-3))")
        echo "export: $sps samples/s exported; export work $(python3 -c "print(round($export_cores,3))") cores -> $(python3 -c "print(round($sps/$export_cores))") samples/s per core of export; ingest (off run) $(python3 -c "print(round($dps_off/max($cores_off,1e-3)))") datagrams/s per core = $(python3 -c "print(round($dps_off*32/max($cores_off,1e-3)))") readings/s per core; ratio export/ingest per sample $(python3 -c "print(round(($sps/$export_cores)/($dps_off*32/max($cores_off,1e-3)),2))")"
        echo "on - off: CPU +$(python3 -c "print(round($cores_on-$cores_off,3))") cores, RSS +$(( (rss_on - rss_off) / 1024 )) MiB"
        # The database away: how much memory a buffered sample costs.
        kill $vmpid; wait $vmpid 2>/dev/null || true
        local r0 b0 r1 b1
        "$gen" blast --target 127.0.0.1:$udp --rate $rate --duration "$OUTAGE" --hosts "$HOSTS" --readings 30 >/dev/null 2>&1 &
        gpid=$!
        sleep 2; r0=$(rss_kb $pid); b0=$(metric hbd_history_buffered_samples $http)
        wait $gpid || true
        r1=$(rss_kb $pid); b1=$(metric hbd_history_buffered_samples $http)
        echo "outage: $b1 samples buffered after ${OUTAGE} s (bound 2,000,000), RSS +$(( (r1 - r0) / 1024 )) MiB for $(( b1 - b0 )) more -> $(python3 -c "print(round(($r1-$r0)*1024/max($b1-$b0,1)))") bytes per buffered sample; dropped so far $(metric hbd_history_dropped_samples_total $http)"
    fi
    kill $pid; wait $pid 2>/dev/null || true
}

echo "CPU: $(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo), $(nproc) cores; $HOSTS hosts x 30 readings every 10 s ($rate datagrams/s)"
run off
run on
