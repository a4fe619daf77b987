#!/usr/bin/env bash
# hbd's data folder on a full disk, then read-only, while it runs (bench/faults, docs/faults.md).
#
#   bench/faults/disk.sh              # ~4 min; needs root (mounts a tmpfs)
#   FULL=60 RO=60 bench/faults/disk.sh
#
# The data folder is a small tmpfs (SIZE, default 8 MiB). Load: fleet.py, 200 hosts at 1 s,
# each flipping OK/CRITICAL every 3 beats (~65 host_level events/s, plus notifications to
# a Mattermost webhook on a closed local port, so the outbox fills). Steps:
#   1. fill the tmpfs with a file until ENOSPC, keep it full FULL s, delete the file;
#   2. remount the tmpfs read-only for RO s, remount read-write;
#   3. stop hbd (SIGTERM) and start it again.
# After each: ingest counters, /healthz, the journal error state, and the journal read
# through the API: event ids must be contiguous (every event stamped was written, none
# lost, none twice) and the outbox must keep its entries. Output: stdout and
# bench/results/faults-disk.txt.
set -euo pipefail
HB_PORT=${HB_PORT:-46023}
API_PORT=${API_PORT:-46024}
WS_PORT=${WS_PORT:-46025}
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"
SIZE=${SIZE:-8m}
FULL=${FULL:-45}
RO=${RO:-45}
out=${OUT:-$root/bench/results/faults-disk.txt}
work=$(mktemp -d /tmp/hb-faults-disk.XXXXXX)
trap faults_cleanup EXIT
mkdir -p "$(dirname "$out")"

# state LABEL: one line of figures.
state() {
    local hz code
    hz=$(api /healthz -w ' %{http_code}' || true)
    code=${hz##* }
    all_events "$work/ev.jsonl"
    local ids
    ids=$(jq -r '.id' "$work/ev.jsonl" | sort -n | awk 'NR == 1 { lo = $1 } { if (NR > 1 && $1 != prev + 1) gaps += $1 - prev - 1; if ($1 == prev) dup++; prev = $1; n++ } END { printf "%d events, ids %d..%d, gaps %d, dups %d", n, lo, prev, gaps, dup }')
    printf '%-28s accepted %8s  healthz %s (%s)  journal pending %s, write errors %s, dropped %s  outbox %s  journal: %s  %s\n' \
        "$1" "$(metric hbd_datagrams_accepted_total)" "$code" "$(jq -r '.status // "-"' <<<"${hz% *}" 2>/dev/null)" \
        "$(metric hbd_journal_pending)" "$(metric hbd_journal_write_errors_total)" "$(metric hbd_journal_dropped_total)" \
        "$(api /api/v1/notify/channels | jq -c '[.channels[].queued] | add // 0')" \
        "$ids" "$(df -k --output=used,avail "$work/data" | tail -1 | awk '{ print $1 "k used " $2 "k free" }')"
}

run() {
    header "disk (data folder on a ${SIZE} tmpfs: full for ${FULL} s, read-only for ${RO} s)"
    mkdir -p "$work/data"
    mount -t tmpfs -o size="$SIZE" hb-faults "$work/data"
    FAULTS_CLEANUP+=("umount -l $work/data 2>/dev/null")
    local cfg=$work/hbd.yaml log=$work/hbd.log
    write_config "$cfg" \
        "mattermost_url: http://127.0.0.1:46099/hooks/closed" \
        "journal_max_bytes: 262144" "journal_keep: 100000" \
        "snapshot_interval: 5s" "notify_retry_max: 5s"
    start_hbd "$cfg" "$work/data" "$log"
    wait_api 20
    python3 "$FLEET" --target "127.0.0.1:$HB_PORT" --hosts 200 --prefix disk \
        --interval-ms 1000 --flip-every 3 --duration 3600 --stats "$work/fleet.json" 2>>"$work/fleet.log" &
    local fleet_pid=$!
    FAULTS_PIDS+=("$fleet_pid")
    sleep 10
    state "running"
    local l0
    l0=$(wc -l <"$log")

    # 1. Full.
    dd if=/dev/zero of="$work/data/filler" bs=64k status=none 2>/dev/null || true
    echo "tmpfs filled at $(date -u +%T)"
    sleep 5
    state "full +5 s"
    sleep $((FULL - 5))
    state "full +${FULL} s"
    rm -f "$work/data/filler"
    sleep 5
    state "space freed +5 s"
    echo "hbd log while full (counted):"
    tail -n +"$((l0 + 1))" "$log" | sed -E 's/^[^ ]+ +//; s/[0-9]+/N/g' | cut -c1-150 | sort | uniq -c | sort -rn | head -12 | sed 's/^/    /'
    l0=$(wc -l <"$log")

    # 2. Read-only.
    mount -o remount,ro "$work/data"
    echo "tmpfs remounted read-only at $(date -u +%T)"
    sleep 5
    state "read-only +5 s"
    sleep $((RO - 5))
    state "read-only +${RO} s"
    mount -o remount,rw "$work/data"
    sleep 5
    state "read-write again +5 s"
    echo "hbd log while read-only (counted):"
    tail -n +"$((l0 + 1))" "$log" | sed -E 's/^[^ ]+ +//; s/[0-9]+/N/g' | cut -c1-150 | sort | uniq -c | sort -rn | head -12 | sed 's/^/    /'

    # 3. Restart.
    kill -TERM "$fleet_pid"
    wait "$fleet_pid" 2>/dev/null || true
    sleep 2
    state "senders stopped"
    local before_ev
    before_ev=$(wc -l <"$work/ev.jsonl")
    kill -TERM "$HBD_PID"
    wait "$HBD_PID" 2>/dev/null || true
    l0=$(wc -l <"$log")
    start_hbd "$cfg" "$work/data" "$log"
    wait_api 20
    state "restarted"
    echo "events before the restart: $before_ev, after: $(wc -l <"$work/ev.jsonl")"
    echo "hbd log at restart: $(tail -n +"$((l0 + 1))" "$log" | grep -E 'WARN|ERROR' | cut -c1-200 | paste -sd';' - || true)"
    echo "system events: $(jq -r 'select(.kind == "system") | (.key // "") + " " + (.to // "") + ": " + .message' "$work/ev.jsonl" | cut -c1-140 | paste -sd'|' -)"
    echo "fleet: $(cat "$work/fleet.log")"
    echo "load at end: $(cut -d' ' -f1-3 /proc/loadavg)"
}
run 2>&1 | tee "$out"
