#!/usr/bin/env bash
# Long-term history export (issue 17): the real hbd (release) fed by `hb-loadgen blast`
# (HOSTS simulated hosts, 30 readings each of which 28 numeric, every 10 s) exporting to a
# real VictoriaMetrics on loopback, against the same load with export off, in the same
# run, for each fleet size in SIZES.
#
#   bench/history.sh                          # SIZES="10000 100000", 30 s windows
#   SIZES=10000 WINDOW=20 bench/history.sh    # one size, shorter
#
# Per size, first a warm-up: hbd exports until VictoriaMetrics has registered every
# series of the fleet (a database new to a fleet creates series far slower than it appends
# samples; the time it took is printed). Then two hbd runs one after the other (export
# off, then on), each: a fresh data
# folder, the generator started, RAMP s for every host's first heartbeat, then a WINDOW s
# steady window in which hbd's CPU (per thread, /proc/PID/task/*/schedstat, ns) and RSS
# (/proc/PID/status, sampled every 0.5 s) are read from outside, with the database's and
# the generator's CPU and what other programs used (/proc/stat minus those three).
# Loss is checked at the receiving end: datagrams the generator sent against
# hbd_datagrams_accepted_total; samples VictoriaMetrics inserted (its own
# vm_rows_inserted_total{type="promremotewrite"}) against accepted datagrams x 30 (28
# numeric readings + hb_host_up + hb_host_level). Bytes on the wire: the kernel's
# bytes_acked of hbd's connections to the database (`ss -ti`, HTTP headers included) per
# sample, next to hbd's own hbd_history_sent_bytes_total. Then, on the first size only,
# the database stopped for OUTAGE s: RSS per buffered sample.
#
# Env: SIZES, RAMP (s, default 15), WINDOW (s, default 30), OUTAGE (s, default 15),
# WARM_MAX (longest warm-up, s, default 300; 0: none, measure against a cold database),
# BUFFER (history_buffer, default 2000000), HBD / LOADGEN (binaries; default
# $CARGO_TARGET_DIR or target, release), OUT (default bench/results/history.txt).
# Needs victoria-metrics (scripts/deps), python3, curl, ss (iproute2).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
SIZES=${SIZES:-10000 100000}
RAMP=${RAMP:-15}
WINDOW=${WINDOW:-30}
OUTAGE=${OUTAGE:-15}
BUFFER=${BUFFER:-2000000}
WARM_MAX=${WARM_MAX:-300}
OUT=${OUT:-$here/results/history.txt}
SAMPLES_PER_DATAGRAM=30
tdir=${CARGO_TARGET_DIR:-$root/target}
hbd=${HBD:-$tdir/release/hbd}
gen=${LOADGEN:-$tdir/release/hb-loadgen}
[[ -x $hbd && -x $gen ]] || { echo "history.sh: cargo build --release -p hbd -p hb-loadgen first" >&2; exit 1; }
command -v victoria-metrics >/dev/null || { echo "history.sh: needs victoria-metrics (scripts/deps)" >&2; exit 1; }
command -v ss >/dev/null || { echo "history.sh: needs ss (iproute2)" >&2; exit 1; }
work=$(mktemp -d -t hb-history-bench.XXXXXX)
pids=()
# Waits for our own children only: a bare `wait` would also wait for the output's `tee`.
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
mkdir -p "$(dirname "$OUT")"
exec > >(tee "$OUT") 2>&1

calc() { python3 -c "print($1)"; }
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
# On-CPU ns of a process's live threads whose name starts with $2 (all without $2).
cpu_ns() {
    local s=0 t comm ns rest
    for t in /proc/$1/task/*; do
        if [[ -n ${2:-} ]]; then read -r comm <"$t/comm" 2>/dev/null || continue; [[ $comm == "$2"* ]] || continue; fi
        read -r ns rest <"$t/schedstat" 2>/dev/null || continue
        s=$(( s + ns ))
    done
    echo $s
}
ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
busy_ticks() { awk '/^cpu /{print $2+$3+$4+$7+$8+$9}' /proc/stat; }
rss_kb() { awk '/^VmRSS/{print $2}' "/proc/$1/status"; }
hwm_kb() { awk '/^VmHWM/{print $2}' "/proc/$1/status"; }
# Sum of a metric family's samples on a /metrics page (labels ignored).
metric() { curl -s "$2" | awk -v m="$1" '$1 == m || index($1, m "{") == 1 {s += $NF} END {printf "%.0f", s}'; }
hbd_metric() { metric "$1" "http://127.0.0.1:$2/metrics"; }
vm_rows() { metric 'vm_rows_inserted_total{type="promremotewrite"}' "http://127.0.0.1:$vmport/metrics"; }
# bytes_acked of established connections from hbd to the database (kernel's tcp_info).
wire_bytes() { ss -tinH state established "( dport = :$vmport )" | grep -o 'bytes_acked:[0-9]*' | awk -F: '{s+=$2} END {printf "%.0f", s}'; }
hz=$(getconf CLK_TCK)

vmport=$(port)
start_vm() {
    victoria-metrics -httpListenAddr=127.0.0.1:$vmport -storageDataPath="$work/vm" >>"$work/vm.log" 2>&1 &
    vmpid=$!; pids+=($vmpid)
    for _ in $(seq 100); do curl -sf "http://127.0.0.1:$vmport/health" >/dev/null && return; sleep 0.1; done
    echo "victoria-metrics did not start: $(tail -5 "$work/vm.log")"; exit 1
}

# hbd's config for a run; prints its path.
write_cfg() {  # $1: hosts, $2: off|on|warm, $3: UDP port, $4: HTTP port
    local cfg="$work/hbd-$1-$2.yaml"
    cat >"$cfg" <<YAML
hb_port: $3
hbd_port: $4
ws_port: 0
bind: 127.0.0.1
secret: "hb-bench-secret-0123456789abcdef"
max_hosts: $(( $1 + 1000 ))
journal_fsync: never
logfile: $work/hbd-$1-$2.log
YAML
    [[ $2 != off ]] && printf 'remote_write:\n  - url: http://127.0.0.1:%s/api/v1/write\nhistory_buffer: %s\n' "$vmport" "$BUFFER" >>"$cfg"
    echo "$cfg"
}

start_hbd() {  # $1: config, $2: name; sets hbd_pid
    "$hbd" -f -c "$1" --data-dir "$work/data-$2" >"$work/hbd-$2.out" 2>&1 &
    hbd_pid=$!; pids+=($hbd_pid)
    local http; http=$(awk '/^hbd_port:/{print $2}' "$1")
    for _ in $(seq 100); do curl -sf "http://127.0.0.1:$http/healthz" >/dev/null && return; sleep 0.1; done
    echo "hbd did not start: $(tail -5 "$work/hbd-$2.out")"; exit 1
}

vm_created() { metric vm_new_timeseries_created_total "http://127.0.0.1:$vmport/metrics"; }

# A database that has never seen the fleet first registers every series (hosts x 30),
# which is much slower than appending to known series: the warm-up exports until
# VictoriaMetrics has created them all (at most WARM_MAX s), so the measured run sees the
# steady state, and prints how long registering took and what hbd dropped meanwhile.
warm() {  # $1: hosts
    local hosts=$1 udp http cfg c0 t0 n=0 gpid
    udp=$(port); http=$(port)
    cfg=$(write_cfg "$hosts" warm "$udp" "$http")
    c0=$(vm_created)
    start_hbd "$cfg" "$hosts-warm"
    "$gen" blast --target 127.0.0.1:$udp --rate $(( hosts / 10 )) --duration 600 --hosts "$hosts" --readings 30 >/dev/null 2>&1 &
    gpid=$!; pids+=($gpid)
    t0=$(date +%s)
    while (( $(date +%s) - t0 < WARM_MAX )); do
        n=$(( $(vm_created) - c0 ))
        (( n >= hosts * SAMPLES_PER_DATAGRAM )) && break
        sleep 1
    done
    local dt=$(( $(date +%s) - t0 ))
    echo "$hosts hosts, warm-up (a database new to the fleet): VictoriaMetrics created $n series in $dt s ($(calc "round($n/max($dt,1))")/s), hbd sent $(hbd_metric hbd_history_sent_samples_total "$http") samples and dropped $(hbd_metric hbd_history_dropped_samples_total "$http") (buffer_full) meanwhile at $(( hosts * 3 )) samples/s arriving"
    kill "$gpid" "$hbd_pid" 2>/dev/null || true
    wait "$gpid" 2>/dev/null || true; wait "$hbd_pid" 2>/dev/null || true
}

run() {  # $1: hosts, $2: off|on, $3: outage after the on run (0/1)
    local hosts=$1 mode=$2 outage=$3 udp http cfg rate
    rate=$(( hosts / 10 ))
    udp=$(port); http=$(port)
    cfg=$(write_cfg "$hosts" "$mode" "$udp" "$http")
    local rows0; rows0=$(vm_rows)
    start_hbd "$cfg" "$hosts-$mode"
    local pid=$hbd_pid
    "$gen" blast --target 127.0.0.1:$udp --rate $rate --duration $(( RAMP + WINDOW + 2 )) --hosts "$hosts" --readings 30 >"$work/blast-$hosts-$mode.out" 2>&1 &
    local gpid=$!
    sleep "$RAMP"
    local t0 c0 h0 s0 k0 b0 v0 g0 a0 x0
    t0=$(date +%s.%N); c0=$(cpu_ns $pid); h0=$(cpu_ns $pid hbd-history); s0=$(ticks $pid)
    k0=$(busy_ticks); v0=$(ticks $vmpid); g0=$(ticks $gpid); a0=$(hbd_metric hbd_datagrams_accepted_total $http)
    x0=$(hbd_metric hbd_history_sent_samples_total $http)
    local end rss=0 r
    end=$(( $(date +%s) + WINDOW ))
    while (( $(date +%s) < end )); do r=$(rss_kb $pid); (( r > rss )) && rss=$r; sleep 0.5; done
    local t1 c1 h1 s1 k1 v1 g1 a1 x1
    t1=$(date +%s.%N); c1=$(cpu_ns $pid); h1=$(cpu_ns $pid hbd-history); s1=$(ticks $pid)
    k1=$(busy_ticks); v1=$(ticks $vmpid); g1=$(ticks $gpid); a1=$(hbd_metric hbd_datagrams_accepted_total $http)
    x1=$(hbd_metric hbd_history_sent_samples_total $http)
    wait $gpid || true
    local dt cores stat_cores hist_cores dps others vm_cores
    dt=$(calc "$t1-$t0")
    cores=$(calc "round(($c1-$c0)/1e9/$dt,4)")
    stat_cores=$(calc "round(($s1-$s0)/$hz/$dt,3)")
    hist_cores=$(calc "round(($h1-$h0)/1e9/$dt,4)")
    dps=$(calc "round(($a1-$a0)/$dt)")
    vm_cores=$(calc "round(($v1-$v0)/$hz/$dt,3)")
    others=$(calc "round(max(0,($k1-$k0)-($s1-$s0)-($v1-$v0)-($g1-$g0))/$hz/$dt,3)")
    local sent; sent=$(awk '/^sent /{print $2}' "$work/blast-$hosts-$mode.out")
    echo "$hosts hosts, export $mode: hbd CPU $cores cores (schedstat; /proc/PID/stat: $stat_cores), sender thread $hist_cores, peak RSS $(( rss / 1024 )) MiB (VmHWM $(( $(hwm_kb $pid) / 1024 )) MiB); $dps datagrams/s accepted over a ${dt%.*} s window; VictoriaMetrics $vm_cores cores, generator $(calc "round(($g1-$g0)/$hz/$dt,3)"), other programs $others cores"
    eval "cores_$mode=$cores; dps_$mode=$dps; rss_$mode=$rss; hist_$mode=$hist_cores"
    if [[ $mode == on ]]; then
        for _ in $(seq 300); do [[ $(hbd_metric hbd_history_buffered_samples $http) == 0 ]] && break; sleep 0.2; done
        local acc xsent bytes wire dropped rows reqs
        acc=$(hbd_metric hbd_datagrams_accepted_total $http)
        xsent=$(hbd_metric hbd_history_sent_samples_total $http)
        bytes=$(hbd_metric hbd_history_sent_bytes_total $http)
        reqs=$(hbd_metric hbd_history_requests_total $http)
        dropped=$(hbd_metric hbd_history_dropped_samples_total $http)
        wire=$(wire_bytes)
        rows=$(( $(vm_rows) - rows0 ))
        local expect=$(( acc * SAMPLES_PER_DATAGRAM ))
        echo "  loss: generator sent $sent datagrams, hbd accepted $acc; expected $expect samples ($SAMPLES_PER_DATAGRAM per datagram), VictoriaMetrics inserted $rows ($( [[ $rows == "$expect" ]] && echo loss-free || echo "DIFFERENCE $(( expect - rows ))")); hbd: $xsent sent, $dropped dropped, $reqs requests"
        echo "  wire: $(calc "round($wire/max($rows,1),2)") bytes per sample on the wire (kernel bytes_acked $wire; hbd's request bodies $(calc "round($bytes/max($xsent,1),2)") B/sample, $(calc "round($xsent/max($reqs,1))") samples per request)"
        local sps export_cores
        sps=$(calc "round(($x1-$x0)/$dt)")
        export_cores=$(calc "max($cores_on-$cores_off, 1e-4)")
        echo "  export: $sps samples/s sent in the window; hbd CPU on - off = $(calc "round($export_cores,4)") cores -> $(calc "round($sps/$export_cores)") samples/s per core of export work (sender thread alone: $(calc "round($sps/max($hist_on,1e-4))")/s per core)"
        echo "  ingest (off run): $dps_off datagrams/s on $cores_off cores -> $(calc "round($dps_off/$cores_off)") datagrams/s = $(calc "round($dps_off*28/$cores_off)") readings/s per core of ingest"
        echo "  ratio: export samples per core / ingest readings per core = $(calc "round(($sps/$export_cores)/($dps_off*28/$cores_off),2)"); export adds $(calc "round(100*($cores_on-$cores_off)/$cores_off)") % to hbd's CPU and $(( (rss_on - rss_off) / 1024 )) MiB of peak RSS"
        if [[ $outage == 1 ]]; then
            kill $vmpid; wait $vmpid 2>/dev/null || true
            local r0 q0 r1 q1
            "$gen" blast --target 127.0.0.1:$udp --rate $rate --duration "$OUTAGE" --hosts "$hosts" --readings 30 >/dev/null 2>&1 &
            gpid=$!
            sleep 2; r0=$(rss_kb $pid); q0=$(hbd_metric hbd_history_buffered_samples $http)
            wait $gpid || true
            r1=$(rss_kb $pid); q1=$(hbd_metric hbd_history_buffered_samples $http)
            echo "  outage ${OUTAGE} s: $q1 samples buffered (bound $BUFFER + one batch), RSS +$(( (r1 - r0) / 1024 )) MiB for $(( q1 - q0 )) more -> $(calc "round(($r1-$r0)*1024/max($q1-$q0,1))") bytes per buffered sample; dropped so far $(hbd_metric hbd_history_dropped_samples_total $http)"
            start_vm
        fi
    fi
    kill $pid; wait $pid 2>/dev/null || true
}

echo "bench/history.sh $(date -u +%Y-%m-%dT%H:%MZ), revision $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)"
echo "CPU: $(awk -F': ' '/model name/{print $2; exit}' /proc/cpuinfo), $(nproc) cores; kernel $(uname -r); $(dpkg-query -W -f 'victoria-metrics ${Version}' victoria-metrics 2>/dev/null || echo victoria-metrics)"
echo "load: $(cut -d' ' -f1-3 /proc/loadavg); 30 readings per heartbeat (28 numeric), every 10 s; history_buffer $BUFFER, other history keys at their defaults; ramp $RAMP s, window $WINDOW s"
start_vm
first=1
for hosts in $SIZES; do
    [[ $WARM_MAX != 0 ]] && warm "$hosts"
    run "$hosts" off 0
    run "$hosts" on "$first"
    first=0
done
