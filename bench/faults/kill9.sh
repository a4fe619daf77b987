#!/usr/bin/env bash
# kill -9 of hbd under load, repeatedly (bench/faults, docs/faults.md).
#
#   bench/faults/kill9.sh                 # 20 kills; BIN=/path/to/release/binaries
#   KILLS=5 bench/faults/kill9.sh
#
# Load: fleet.py over UDP (HOSTS hosts at 1 s, each flipping OK/CRITICAL every 5 beats:
# host_level events and notifications), fleet.py over HTTP (20 hosts POSTing, level flips
# every 3 beats; every 202 is recorded) and, if present, hb-loadgen blast (BLAST_RATE
# signed datagrams/s from 10,000 hosts) for ingest pressure. Notifications go to a
# Mattermost webhook on a closed local port: the channel fails, so its outbox only grows
# (flap detection and storm grouping off, so every level change is a notification; the
# channel's "not delivered" warnings are expected and not counted).
# Small journal segments (64 KiB) so kills also land around rotations; a snapshot every 2 s.
#
# Each round: wait a random 2-8 s, read every event through the API and the outbox size
# (what hbd has acknowledged), kill -9, restart, then check: hbd started, its log holds
# no error and only the expected warnings (a torn journal tail or outbox line, cut/skipped),
# every event seen before the kill is back with the same content, no event id is used
# twice, the outbox holds at least what it held. Output: stdout and
# bench/results/faults-kill9.txt.
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"
KILLS=${KILLS:-20}
HOSTS=${HOSTS:-300}
BLAST_RATE=${BLAST_RATE:-2000}
out=${OUT:-$root/bench/results/faults-kill9.txt}
work=$(mktemp -d -t hb-faults-kill9.XXXXXX)
trap faults_cleanup EXIT
mkdir -p "$(dirname "$out")"

run() {
    header "kill9 ($KILLS kills of hbd under load)"
    local cfg=$work/hbd.yaml data=$work/data log=$work/hbd.log
    write_config "$cfg" \
        "mattermost_url: http://127.0.0.1:46099/hooks/closed" \
        "journal_max_bytes: 65536" "journal_keep: 100000" \
        "snapshot_interval: 2s" "notify_retry_max: 5s" \
        "notify_flap_window: 0" "notify_storm_threshold: 100000" "notify_up_after: 1"
    start_hbd "$cfg" "$data" "$log"
    wait_api 20
    python3 "$FLEET" --target "127.0.0.1:$HB_PORT" --hosts "$HOSTS" --prefix udp \
        --interval-ms 1000 --flip-every 5 --duration 3600 --stats "$work/udp.json" 2>>"$work/fleet.log" &
    local udp_pid=$!
    FAULTS_PIDS+=("$udp_pid")
    python3 "$FLEET" --http "127.0.0.1:$API_PORT" --hosts 20 --prefix http \
        --interval-ms 1000 --flip-every 3 --duration 3600 --stats "$work/http.json" 2>>"$work/fleet.log" &
    local http_pid=$!
    FAULTS_PIDS+=("$http_pid")
    local blast_pid=""
    if [[ -x $LOADGEN && $BLAST_RATE != 0 ]]; then
        "$LOADGEN" blast --target "127.0.0.1:$HB_PORT" --rate "$BLAST_RATE" --duration 600 \
            --hosts 10000 --secret "$SECRET" --interval-ms 5000 >"$work/blast.log" 2>&1 &
        blast_pid=$!
        FAULTS_PIDS+=("$blast_pid")
    fi
    sleep 5
    echo "load: $HOSTS UDP hosts (fleet.py, 1 s, level flip every 5 beats), 20 HTTP hosts (1 s, flip every 3), hb-loadgen blast $([[ -n $blast_pid ]] && echo "$BLAST_RATE/s from 10,000 hosts (5 s interval)" || echo off)"
    echo
    printf '%-5s %-9s %-9s %-8s %-8s %-7s %-7s %-6s %s\n' kill "events" "checked" lost dupids outbox0 outbox1 startms "warnings at restart"
    local k checked_total=0 lost_total=0 torn_total=0 dup_total=0 bad_start=0 outbox_lost=0 errors_total=0
    local lines_before
    for (( k = 1; k <= KILLS; k++ )); do
        sleep "$(( RANDOM % 7 + 2 )).$(( RANDOM % 10 ))"
        all_events "$work/pre.jsonl"
        local ob0
        ob0=$(api /api/v1/notify/channels | jq '[.channels[].queued] | add // 0')
        # A random 0-1 s later: reading events flushes the journal, and the kill should not
        # always find it freshly flushed.
        sleep "0.$(( RANDOM % 10 ))$(( RANDOM % 10 ))"
        kill -KILL "$HBD_PID"
        wait "$HBD_PID" 2>/dev/null || true
        lines_before=$(wc -l <"$log")
        local t0 t1
        t0=$(date +%s%3N)
        start_hbd "$cfg" "$data" "$log"
        if ! wait_api 30; then
            bad_start=$((bad_start + 1))
            echo "kill $k: hbd did not come back; log:"
            tail -20 "$log"
            break
        fi
        t1=$(date +%s%3N)
        all_events "$work/post.jsonl"
        local ob1
        ob1=$(api /api/v1/notify/channels | jq '[.channels[].queued] | add // 0')
        # Every event seen before the kill must be back, identical.
        local n_pre lost dups
        n_pre=$(wc -l <"$work/pre.jsonl")
        lost=$(python3 - "$work/pre.jsonl" "$work/post.jsonl" <<'PY'
import json, sys
post = {}
for line in open(sys.argv[2]):
    e = json.loads(line); post[e["id"]] = e
lost = 0
for line in open(sys.argv[1]):
    e = json.loads(line)
    if post.get(e["id"]) != e:
        lost += 1
        if lost <= 3: print("missing/changed:", line.strip(), file=sys.stderr)
print(lost)
PY
)
        dups=$(jq -r '.id' "$work/post.jsonl" | sort | uniq -d | wc -l)
        local new_log errs torn
        new_log=$(tail -n +"$((lines_before + 1))" "$log")
        errs=$(grep -Ec 'ERROR|panicked' <<<"$new_log" || true)
        torn=$(grep -Eci 'torn|incomplete|cut|truncat' <<<"$new_log" || true)
        local unexpected
        unexpected=$(grep 'WARN' <<<"$new_log" | grep -v 'notification not delivered' | grep -Eciv 'torn|incomplete|cut|truncat' || true)
        checked_total=$((checked_total + n_pre))
        lost_total=$((lost_total + lost))
        torn_total=$((torn_total + torn))
        dup_total=$((dup_total + dups))
        errors_total=$((errors_total + errs + unexpected))
        if (( ob1 < ob0 )); then outbox_lost=$((outbox_lost + ob0 - ob1)); fi
        local w
        w=$(grep -E 'WARN|ERROR|panicked' <<<"$new_log" | grep -v 'notification not delivered' | sed -E 's/^.*(WARN|ERROR) //; s/journal-[0-9]+\.log/journal-N.log/' | cut -c1-110 | sort | uniq -c | sed 's/^ *//' | paste -sd';' - || true)
        printf '%-5s %-9s %-9s %-8s %-8s %-7s %-7s %-6s %s\n' "$k" "$(wc -l <"$work/post.jsonl")" "$n_pre" "$lost" "$dups" "$ob0" "$ob1" "$((t1 - t0))" "${w:-none}"
    done
    kill -TERM "$udp_pid" "$http_pid" 2>/dev/null || true
    if [[ -n $blast_pid ]]; then kill -TERM "$blast_pid" 2>/dev/null || true; fi
    wait "$udp_pid" "$http_pid" 2>/dev/null || true
    sleep 1
    # HTTP heartbeats: every 202-acknowledged level flip should have its host_level event
    # (after a kill the event may come from the next heartbeat instead: the level is state).
    all_events "$work/final.jsonl"
    local http_check
    http_check=$(python3 - "$work/http.json" "$work/final.jsonl" <<'PY'
import json, sys
st = json.load(open(sys.argv[1]))
lv = {}
for line in open(sys.argv[2]):
    e = json.loads(line)
    if e["kind"] == "host_level" and e["host"].startswith("http-"):
        lv[e["host"]] = lv.get(e["host"], 0) + 1
acked = sum(len(v) for v in st["acked_flips"].values())
short = sum(max(0, len(v) - lv.get(h, 0)) for h, v in st["acked_flips"].items())
print(f"HTTP heartbeats acknowledged (202): {st['acked']} of {st['heartbeats']}; level flips acknowledged {acked}, host_level events in the journal {sum(lv.values())}, hosts with fewer events than acknowledged flips: {short}")
PY
)
    echo
    echo "kills: $KILLS; restarts that failed: $bad_start"
    echo "events checked (seen through the API before a kill, looked up after the restart): $checked_total; lost or changed: $lost_total; event ids used twice: $dup_total"
    echo "torn tails reported at restart (journal or outbox, cut/skipped): $torn_total; unexpected warnings/errors: $errors_total"
    echo "outbox entries missing after a restart (failing channel, so the queue only grows): $outbox_lost"
    echo "$http_check"
    echo "journal at the end: $(find "$data/journal" -name 'journal-*.log' | wc -l) segments, $(wc -l <"$work/final.jsonl") events"
    echo "udp/http fleet: $(tr '\n' ' ' <"$work/fleet.log")"
    echo "load at end: $(cut -d' ' -f1-3 /proc/loadavg)"
}
# Not `run | tee`: run must not be a subshell, or the EXIT trap would not see its processes.
exec > >(faults_scrub | tee "$out") 2>&1
run
