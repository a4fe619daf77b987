#!/usr/bin/env bash
# A server that goes away for minutes while hbc keeps running (bench/faults, docs/faults.md).
#
#   bench/faults/away.sh              # AWAY=240 s per phase, ~10 min
#   AWAY=60 bench/faults/away.sh
#
# The real hbc (bundled plugins, interval 1 s) runs in namespace hbfa-c and sends to hbd in
# hbfa-s over a veth pair. The interval is 1 s instead of 10 s so that an outage sees ten
# times more sends (and send failures): a log storm or a leak per failed send shows ten
# times sooner; hbd's deadline is the same 2.5 × interval multiple.
#   phase A: hbd stopped (SIGTERM) for AWAY s, then started again: while it is gone the
#            kernel answers every datagram with ICMP port unreachable, so hbc's sends fail;
#   phase B: hbd running but unreachable (every heartbeat dropped by an nftables rule in
#            hbc's namespace; this kernel has no netem) for AWAY s: hbd turns the host
#            DOWN, hbc's sends succeed locally.
# Measured: hbc's RSS and thread count every 5 s, its log lines per phase, how long after
# hbd is back (or the path is back) the host is heard from / UP again.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"
AWAY=${AWAY:-240}
out=${OUT:-$root/bench/results/faults-away.txt}
work=$(mktemp -d -t hb-faults-away.XXXXXX)
trap faults_cleanup EXIT
mkdir -p "$(dirname "$out")"
SRV=hbfa-s CLI=hbfa-c
API_NS=$SRV
[[ -x $HBC ]] || { echo "missing $HBC" >&2; exit 1; }

# host_field FIELD: a field of real-hbc from the API (empty if hbd is not there).
host_field() { api /api/v1/hosts/real-hbc 2>/dev/null | jq -r ".$1 // .host.$1 // empty" 2>/dev/null || true; }

# wait_heard SINCE_MS: seconds until real-hbc's last_seen_ms > SINCE_MS (max 60 s).
wait_heard() {
    local since=$1 n=600 seen
    while (( n-- > 0 )); do
        seen=$(host_field last_seen_ms)
        if [[ -n $seen && $seen -gt $since ]]; then
            echo "$(( seen - since ))"
            return 0
        fi
        sleep 0.1
    done
    echo "never"
}

log_lines() { wc -l <"$work/hbc.log"; }

run() {
    header "away (hbd gone for ${AWAY} s while the real hbc keeps sending)"
    setup_ns "$SRV" "$CLI"
    local cfg=$work/hbd.yaml data=$work/data log=$work/hbd.log
    write_config "$cfg"
    start_hbd "$cfg" "$data" "$log" ip netns exec "$SRV"
    wait_api 20
    local plugdir=$work/plugins hcfg=$work/hbc.yaml
    copy_plugins "$plugdir"
    printf 'secret: "%s"\ninterval: 1s\nhostname: real-hbc\n' "$SECRET" >"$hcfg"
    ip netns exec "$CLI" env HBC_LOG=info "$HBC" -c "$hcfg" --plugin-dir "$plugdir" "10.99.0.1:$HB_PORT" >"$work/hbc.log" 2>&1 &
    local hbc_pid=$!
    FAULTS_PIDS+=("$hbc_pid")
    # Sampler: time, phase, RSS kB, threads, log lines.
    echo "warmup" >"$work/phase"
    (
        while kill -0 "$hbc_pid" 2>/dev/null; do
            echo "$(date +%s) $(cat "$work/phase") $(rss_kb "$hbc_pid") $(threads "$hbc_pid") $(log_lines)"
            sleep 5
        done
    ) >"$work/samples" 2>/dev/null &
    FAULTS_PIDS+=("$!")
    sleep 20
    echo "hbc: $(find "$plugdir" -name "*.so" | wc -l) plugins, interval 1 s; host status after 20 s: $(host_field status), heartbeats received $(host_field received)"
    echo

    # Phase A: hbd stopped.
    local l0 l1 t_back heard status_after
    echo "A" >"$work/phase"
    l0=$(log_lines)
    kill -TERM "$HBD_PID"
    wait "$HBD_PID" 2>/dev/null || true
    echo "phase A: hbd stopped (SIGTERM) at $(date -u +%T); away ${AWAY} s"
    sleep "$AWAY"
    l1=$(log_lines)
    start_hbd "$cfg" "$data" "$log" ip netns exec "$SRV"
    wait_api 20
    t_back=$(date +%s%3N)
    heard=$(wait_heard "$t_back")
    sleep 3
    status_after=$(host_field status)
    echo "  hbc log lines while hbd was gone: $((l1 - l0)) (sends every 1 s: $AWAY); after hbd is back: first heartbeat ${heard} ms after its API answered; status $status_after"
    echo "  hbc log while hbd was gone:"
    sed -n "$((l0 + 1)),$((l1 + 2))p" "$work/hbc.log" | cut -c1-160 | sed 's/^/    /'
    echo "  hbd events for real-hbc around the outage: $(all_events "$work/ev.jsonl"; jq -r 'select(.host == "real-hbc") | .kind + ":" + (.to // "")' "$work/ev.jsonl" | paste -sd' ' -)"
    echo

    # Phase B: hbd running, path gone.
    echo "B" >"$work/phase"
    l0=$(log_lines)
    local cut_ms restore_ms down_ms up_ms
    cut_ms=$(date +%s%3N)
    ip netns exec "$CLI" nft add table inet hbfa
    ip netns exec "$CLI" nft add chain inet hbfa out '{ type filter hook output priority 0; }'
    ip netns exec "$CLI" nft add rule inet hbfa out udp dport "$HB_PORT" drop
    echo "phase B: path cut (nftables drop of every heartbeat) at $(date -u +%T); away ${AWAY} s"
    sleep "$AWAY"
    l1=$(log_lines)
    restore_ms=$(date +%s%3N)
    ip netns exec "$CLI" nft delete table inet hbfa
    heard=$(wait_heard "$restore_ms")
    sleep 3
    all_events "$work/ev.jsonl"
    down_ms=$(jq -r --argjson t "$cut_ms" 'select(.host == "real-hbc" and .kind == "host_down" and .ts_ms >= $t) | .ts_ms' "$work/ev.jsonl" | tail -1)
    up_ms=$(jq -r --argjson t "$restore_ms" 'select(.host == "real-hbc" and .kind == "host_up" and .ts_ms >= $t) | .ts_ms' "$work/ev.jsonl" | tail -1)
    echo "  hbc log lines while the path was cut: $((l1 - l0))"
    echo "  DOWN $(( ${down_ms:-0} - cut_ms )) ms after the cut (deadline 2.5 s after the last heartbeat); UP $(( ${up_ms:-0} - restore_ms )) ms after the path came back (first heartbeat heard after ${heard} ms); status now $(host_field status)"
    echo "  host lost counter (sequence gaps): $(host_field lost)"
    echo "C" >"$work/phase"
    sleep 10
    echo
    echo "hbc samples (every 5 s): phase, RSS kB min/max, threads min/max, log lines at the end of the phase"
    awk '{ p=$2; if (!(p in mn) || $3<mn[p]) mn[p]=$3; if ($3>mx[p]) mx[p]=$3; if (!(p in tmn) || $4<tmn[p]) tmn[p]=$4; if ($4>tmx[p]) tmx[p]=$4; ll[p]=$5; n[p]++ }
         END { for (p in n) printf "  %-7s samples %3d  RSS %6d..%6d kB  threads %2d..%2d  log lines %d\n", p, n[p], mn[p], mx[p], tmn[p], tmx[p], ll[p] }' "$work/samples" | sort
    echo "  (phases: warmup, A = hbd stopped and its return, B = path cut and its return, C = 10 s after)"
    echo "hbc still running: $(kill -0 "$hbc_pid" 2>/dev/null && echo yes || echo NO); total log lines $(log_lines): $(grep -c WARN "$work/hbc.log" || true) WARN, $(grep -c ERROR "$work/hbc.log" || true) ERROR"
    echo "load at end: $(cut -d' ' -f1-3 /proc/loadavg)"
}
# Not `run | tee`: run must not be a subshell, or the EXIT trap would not see its processes.
exec > >(faults_scrub | tee "$out") 2>&1
run
