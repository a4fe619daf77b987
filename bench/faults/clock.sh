#!/usr/bin/env bash
# Wall-clock jumps on either side (bench/faults, docs/faults.md), with libfaketime
# (Debian package `faketime`); the real system clock is never touched.
#
#   bench/faults/clock.sh                 # ~9 min
#   JUMPS="+30 -600" HOLD=15 SIDES=hbd bench/faults/clock.sh
#
# hbd and the real hbc each run under libfaketime with their own FAKETIME_TIMESTAMP_FILE,
# FAKETIME_NO_CACHE=1 (the file is read on every call, so writing it jumps the clock of
# the running process) and DONT_FAKE_MONOTONIC=1 (only CLOCK_REALTIME moves, as with
# settimeofday or a stepping NTP client). hbc runs at a 1 s interval (deadline 2.5 s, the
# default 2.5 × multiple), next to fleet.py's 50 hosts (not faked) as bystanders.
# For each jump J (seconds, libfaketime's relative offset syntax): set J on one side,
# hold HOLD s, set +0 again (the clock is corrected), wait until real-hbc is UP.
# Figures per case: heartbeats of real-hbc accepted / dropped as outside_time_window while
# jumped, host_down / host_up events (real-hbc, and bystanders), status during the jump,
# time from the correction until real-hbc is UP again.
set -euo pipefail
HB_PORT=${HB_PORT:-46013}
API_PORT=${API_PORT:-46014}
WS_PORT=${WS_PORT:-46015}
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"
JUMPS=${JUMPS:-+30 -30 +600 -600 +86400 -86400}
HOLD=${HOLD:-20}
SIDES=${SIDES:-hbc hbd}
FT_LIB=${FT_LIB:-/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1}
out=${OUT:-$root/bench/results/faults-clock.txt}
work=$(mktemp -d -t hb-faults-clock.XXXXXX)
trap faults_cleanup EXIT
mkdir -p "$(dirname "$out")"
[[ -r $FT_LIB ]] || { echo "missing $FT_LIB: apt-get install faketime" >&2; exit 1; }
[[ -x $HBC ]] || { echo "missing $HBC" >&2; exit 1; }

# faked FILE CMD...: CMD under libfaketime driven by FILE. Only used in the background
# (`faked ... &` runs in a subshell): exec, so that $! is the program's own PID.
faked() {
    local f=$1
    shift
    exec env LD_PRELOAD="$FT_LIB" FAKETIME_TIMESTAMP_FILE="$f" FAKETIME_NO_CACHE=1 DONT_FAKE_MONOTONIC=1 "$@"
}

host_field() { api /api/v1/hosts/real-hbc 2>/dev/null | jq -r ".$1 // empty" 2>/dev/null || true; }
drop_otw() { metric 'hbd_datagrams_dropped_total{reason="outside_time_window"}'; }
last_id() { api '/api/v1/events?limit=1' | jq '.events[0].id // 0'; }

# events_since ID: "real-hbc down/up, bystanders down/up" of events with id > ID.
events_since() {
    all_events "$work/ev.jsonl"
    jq -r --argjson id "$1" 'select(.id > $id and (.kind == "host_down" or .kind == "host_up")) | (if .host == "real-hbc" then "r" else "b" end) + "_" + .kind' "$work/ev.jsonl" |
        awk '{ n[$1]++ } END { printf "%d/%d %d/%d", n["r_host_down"], n["r_host_up"], n["b_host_down"], n["b_host_up"] }'
}

# one_case SIDE JUMP: prints a table row.
one_case() {
    local side=$1 jump=$2 file
    if [[ $side == hbc ]]; then file=$work/hbc.time; else file=$work/hbd.time; fi
    local id0 rec0 otw0 l0
    id0=$(last_id)
    rec0=$(host_field received)
    otw0=$(drop_otw)
    l0=$(wc -l <"$work/hbc.log")
    echo "$jump" >"$file"
    sleep "$HOLD"
    local rec1 otw1 st_mid ev_mid
    rec1=$(host_field received)
    otw1=$(drop_otw)
    st_mid=$(host_field status)
    ev_mid=$(events_since "$id0")
    local id1 t_fix t_up=""
    id1=$(last_id)
    echo "+0" >"$file"
    t_fix=$(date +%s%3N)
    local n=300
    while (( n-- > 0 )); do
        # UP and heard from since the correction (a DOWN may still come at the correction).
        if [[ $(host_field status) == UP ]] && [[ $(events_since "$id1" | cut -d' ' -f1) != 1/0 ]]; then
            t_up=$(( $(date +%s%3N) - t_fix ))
            break
        fi
        sleep 0.1
    done
    sleep 6
    local ev_after
    ev_after=$(events_since "$id1")
    printf '%-4s %-7s %8s %10s %-6s %-17s %-17s %10s %s\n' "$side" "$jump" "$((rec1 - rec0))" "$((otw1 - otw0))" "$st_mid" "$ev_mid" "$ev_after" "${t_up:-none}" "$(( $(wc -l <"$work/hbc.log") - l0 ))"
}

run() {
    header "clock (wall-clock jumps of hbc and of hbd with libfaketime; hold ${HOLD} s each)"
    echo "+0" >"$work/hbd.time"
    echo "+0" >"$work/hbc.time"
    local cfg=$work/hbd.yaml log=$work/hbd.log
    write_config "$cfg"
    start_hbd "$cfg" "$work/data" "$log" faked "$work/hbd.time"
    wait_api 20
    local plugdir=$work/plugins hcfg=$work/hbc.yaml
    copy_plugins "$plugdir"
    printf 'secret: "%s"\ninterval: 1s\nhostname: real-hbc\n' "$SECRET" >"$hcfg"
    faked "$work/hbc.time" env HBC_LOG=info "$HBC" -c "$hcfg" --plugin-dir "$plugdir" "127.0.0.1:$HB_PORT" >"$work/hbc.log" 2>&1 &
    FAULTS_PIDS+=("$!")
    python3 "$FLEET" --target "127.0.0.1:$HB_PORT" --hosts 50 --prefix bys --interval-ms 1000 --duration 3600 2>>"$work/fleet.log" &
    FAULTS_PIDS+=("$!")
    sleep 10
    echo "time_window 5m (default), grace 2.5, interval 1 s; real-hbc status after 10 s: $(host_field status)"
    echo "columns: accepted = heartbeats of real-hbc accepted during the jump (~${HOLD} expected), otw = datagrams dropped as outside_time_window;"
    echo "events during / after the correction as real-hbc down/up bystanders(50) down/up; recovered = ms from the correction until real-hbc is UP and heard from; hbc log lines"
    echo
    printf '%-4s %-7s %8s %10s %-6s %-17s %-17s %10s %s\n' side "jump s" accepted otw status "events in jump" "after correction" recovered "hbc log"
    local j
    local side
    for side in $SIDES; do
        for j in $JUMPS; do one_case "$side" "$j"; done
    done
    echo
    echo "hbd log: $(wc -l <"$log") lines, $(grep -c WARN "$log" || true) WARN, $(grep -c ERROR "$log" || true) ERROR; hbc log: $(wc -l <"$work/hbc.log") lines"
    echo "load at end: $(cut -d' ' -f1-3 /proc/loadavg)"
}
# Not `run | tee`: run must not be a subshell, or the EXIT trap would not see its processes.
exec > >(faults_scrub | tee "$out") 2>&1
run
