#!/usr/bin/env bash
# hbd's data folder on a full disk, then read-only, while it runs (bench/faults, docs/faults.md).
#
#   bench/faults/disk.sh              # ~4 min; needs root (loop-mounts an ext4 image)
#   FULL=60 RO=60 bench/faults/disk.sh
#
# The data folder is a small ext4 file system (SIZE, default 16 MiB, no reserved blocks,
# errors=remount-ro) on a loop device. Load: fleet.py, 200 hosts at 1 s, each flipping
# OK/CRITICAL every 3 beats (~65 host_level events/s), notifications to a Mattermost
# webhook on a closed local port (the channel fails, so its outbox keeps entries). Steps:
#   1. fill the file system with a file until ENOSPC, keep it full FULL s, delete the file;
#   2. read-only: `mount -o remount,ro` is tried first (the kernel refuses it with EBUSY
#      while a process has files open for writing, and hbd always has), then the file
#      system is made read-only the way it happens in production, by an ext4 error
#      (errors=remount-ro, /sys/fs/ext4/DEV/trigger_fs_error); held RO s. An emergency
#      read-only ext4 cannot be remounted read-write: recovery is stop hbd, unmount, fsck,
#      mount, start hbd;
#   3. after that restart: every event the API showed before the failure must be there.
# After each step: ingest counters, /healthz, the journal's error state, and the journal
# read through the API (event ids must be contiguous: every event stamped was written,
# none lost, none twice), the outbox size. Output: stdout and bench/results/faults-disk.txt.
set -euo pipefail
HB_PORT=${HB_PORT:-46023}
API_PORT=${API_PORT:-46024}
WS_PORT=${WS_PORT:-46025}
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"
SIZE=${SIZE:-16M}
FULL=${FULL:-45}
RO=${RO:-45}
out=${OUT:-$root/bench/results/faults-disk.txt}
work=$(mktemp -d -t hb-faults-disk.XXXXXX)
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
    header "disk (data folder on a ${SIZE} ext4 on loop: full for ${FULL} s, read-only for ${RO} s)"
    mkdir -p "$work/data"
    truncate -s "$SIZE" "$work/disk.img"
    mkfs.ext4 -q -F -m 0 "$work/disk.img"
    mount -o loop,errors=remount-ro "$work/disk.img" "$work/data"
    FAULTS_CLEANUP+=("umount -l $work/data 2>/dev/null")
    local dev
    dev=$(basename "$(findmnt -n -o SOURCE "$work/data")")
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
    local ro_err
    if ro_err=$(mount -o remount,ro "$work/data" 2>&1); then
        echo "mount -o remount,ro: done (unexpected); remounting rw"
        mount -o remount,rw "$work/data"
    else
        echo "mount -o remount,ro while hbd runs: refused: $(tr '\n' ' ' <<<"$ro_err" | cut -c1-100)"
    fi
    all_events "$work/before-ro.jsonl"
    echo "fs error" >"/sys/fs/ext4/$dev/trigger_fs_error"
    echo "ext4 error triggered at $(date -u +%T): $(findmnt -n -o OPTIONS "$work/data")"
    sleep 5
    state "read-only +5 s"
    sleep $((RO - 5))
    state "read-only +${RO} s"
    echo "hbd log while read-only (counted):"
    tail -n +"$((l0 + 1))" "$log" | sed -E 's/^[^ ]+ +//; s/[0-9]+/N/g' | cut -c1-150 | sort | uniq -c | sort -rn | head -12 | sed 's/^/    /'
    local made
    made=$(metric hbd_events_total)
    kill -TERM "$fleet_pid"
    wait "$fleet_pid" 2>/dev/null || true
    l0=$(wc -l <"$log")
    kill -TERM "$HBD_PID"
    wait "$HBD_PID" 2>/dev/null || true
    echo "hbd stopped (SIGTERM) while read-only; its log at shutdown: $(tail -n +"$((l0 + 1))" "$log" | grep -E 'WARN|ERROR' | sed -E 's/^[^ ]+ +//' | cut -c1-160 | paste -sd'|' -)"
    umount "$work/data"
    echo "fsck: $(e2fsck -fy "$work/disk.img" 2>&1 | tail -1)"
    mount -o loop,errors=remount-ro "$work/disk.img" "$work/data"
    l0=$(wc -l <"$log")
    start_hbd "$cfg" "$work/data" "$log"
    wait_api 20
    state "restarted after fsck"
    echo "hbd log at restart: $(tail -n +"$((l0 + 1))" "$log" | grep -E 'WARN|ERROR' | sed -E 's/^[^ ]+ +//' | cut -c1-160 | paste -sd'|' - || true)"
    python3 - "$work/before-ro.jsonl" "$work/ev.jsonl" "$made" <<'PY2'
import json, sys
after = {}
for line in open(sys.argv[2]):
    e = json.loads(line); after[e["id"]] = e
before = [json.loads(l) for l in open(sys.argv[1])]
lost = sum(1 for e in before if after.get(e["id"]) != e)
top = max((e["id"] for e in before), default=0)
print(f"events the API showed before the read-only failure: {len(before)} (ids up to {top}); missing after the restart: {lost}")
print(f"events hbd made before it was stopped (hbd_events_total): {sys.argv[3]}; in the journal after the restart: {len(after)} "
      f"(made while read-only and never written, lost with the stop: {int(sys.argv[3]) - len([i for i in after if i <= int(sys.argv[3])])})")
PY2
    echo "system events: $(jq -r 'select(.kind == "system") | (.key // "") + " " + (.to // "") + ": " + .message' "$work/ev.jsonl" | cut -c1-140 | paste -sd'|' -)"
    echo "fleet: $(cat "$work/fleet.log")"
    echo "load at end: $(cut -d' ' -f1-3 /proc/loadavg)"
}
# Not `run | tee`: run must not be a subshell, or the EXIT trap would not see its processes.
exec > >(faults_scrub | tee "$out") 2>&1
run
