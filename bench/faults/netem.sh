#!/usr/bin/env bash
# Packet loss, reordering and duplicates between senders and hbd (bench/faults,
# docs/faults.md), with two network namespaces joined by a veth pair and `tc netem`.
#
#   bench/faults/netem.sh                       # all runs, ~16 min
#   ONLY=loss SCALE=0.3 bench/faults/netem.sh   # a subset (base,loss,reorder,dup,hbc), shorter
#
# Topology (everything inside this machine): namespace hbfn-s holds hbd on 10.99.0.1,
# namespace hbfn-c the senders on 10.99.0.2; netem sits on the senders' end of the veth
# (hbfn-c-v, egress), so it acts on heartbeats only.
#
# Liveness: hbd sets a host's deadline to last arrival + max(interval × grace,
# interval + 1 s); grace defaults to 2.5. With the default 10 s interval that is 25 s:
# one lost heartbeat is tolerated (the next arrives at +20 s), two in a row make a false
# DOWN (the next arrives at +30 s). With a 1 s interval the deadline is 2.5 s (2.5 s >
# 1 s + 1 s), the same multiple, so the same k = 2 consecutive losses make a false DOWN,
# and a run yields 10× more heartbeats per host-minute. HOSTS simulated hosts (fleet.py,
# each at its own phase) send at 1 s; the false DOWN count is compared with the expected
# number of loss runs of length >= 2: heartbeats × (1 - p) × p².
set -euo pipefail
# shellcheck source-path=SCRIPTDIR source=lib.sh
source "$(dirname "$0")/lib.sh"
ONLY=${ONLY:-base,loss,reorder,dup,hbc}
HOSTS=${HOSTS:-1000}
SCALE=${SCALE:-1}
out=${OUT:-$root/bench/results/faults-netem.txt}
work=$(mktemp -d /tmp/hb-faults-netem.XXXXXX)
trap faults_cleanup EXIT
mkdir -p "$(dirname "$out")"
want() { [[ ",$ONLY," == *",$1,"* ]]; }
# s SECONDS: a run length scaled by SCALE (at least 20 s).
s() { python3 -c "print(max(20, int($1 * $SCALE)))"; }

SRV=hbfn-s CLI=hbfn-c
API_NS=$SRV
netem_c() { netem "$CLI" "$CLI-v" "$@"; }
netem_stats() { ip netns exec "$CLI" tc -s qdisc show dev "$CLI-v" | awk '/Sent/ { print $2 " pkts sent, dropped " $7 }' | tr -d ','; }

# one_run NAME SECONDS PARTS NETEM-ARGS...: fleet.py HOSTS hosts named NAME-xxxxx for
# SECONDS; prints one row of the table.
one_run() {
    local name=$1 secs=$2 parts=$3
    shift 3
    netem_c "$@"
    local replayed0 start stop
    replayed0=$(metric 'hbd_datagrams_dropped_total{reason="replayed"}')
    start=$(date +%s%3N)
    ip netns exec "$CLI" python3 "$FLEET" --target "10.99.0.1:$HB_PORT" --hosts "$HOSTS" \
        --prefix "$name" --interval-ms 1000 --parts "$parts" --duration "$secs" \
        --stats "$work/$name.json" 2>>"$work/fleet.log"
    stop=$(date +%s%3N)
    local tcstat
    tcstat=$(netem_stats)
    netem_c delay 0ms
    sleep 4  # every host of this run goes DOWN now (really): those events are after `stop`
    local replayed1
    replayed1=$(metric 'hbd_datagrams_dropped_total{reason="replayed"}')
    all_events "$work/ev.jsonl"
    api "/api/v1/hosts?q=$name-&limit=10000" >"$work/$name-hosts.json"
    python3 - "$name" "$start" "$stop" "$work/ev.jsonl" "$work/$name-hosts.json" "$work/$name.json" \
        "$((replayed1 - replayed0))" "$tcstat" "$*" <<'PY'
import json, sys
name, start, stop, evf, hostsf, statsf, replayed, tcstat, args = sys.argv[1:]
start, stop = int(start), int(stop)
pre = name + "-"
down = up = level = late_down = 0
for line in open(evf):
    e = json.loads(line)
    if not e["host"].startswith(pre):
        continue
    if e["kind"] == "host_down":
        if e["ts_ms"] <= stop:
            down += 1
        else:
            late_down += 1
    elif e["kind"] == "host_up":
        up += 1
    elif e["kind"] == "host_level":
        level += 1
hosts = json.load(open(hostsf))["hosts"]
st = json.load(open(statsf))
sent = st["heartbeats"]
lost = sum(h["lost"] for h in hosts)
p = lost / sent if sent else 0.0
expect = sent * (1 - p) * p * p
print(f"{name:<8} {args:<34} {st['hosts']:>5} {sent:>8} {lost:>7} {100*p:>6.2f}% {down:>6} {expect:>8.1f} "
      f"{(down/expect if expect >= 1 else float('nan')):>6.2f} {up:>5} {level:>5} {int(replayed):>8} {late_down:>5}  {st['late_max_s']:.2f}s  tc: {tcstat}")
PY
}

run() {
    header "netem (packet loss, reordering, duplicates; $HOSTS simulated hosts at 1 s)"
    setup_ns "$SRV" "$CLI"
    local cfg=$work/hbd.yaml data=$work/data log=$work/hbd.log
    write_config "$cfg" "max_hosts: 200000"
    start_hbd "$cfg" "$data" "$log" ip netns exec "$SRV"
    wait_api 20
    echo "hbd in namespace $SRV (10.99.0.1), senders in $CLI (10.99.0.2), netem on the senders' veth end (egress); default liveness (grace 2.5)"
    echo "columns: heartbeats sent; lost = hbd's per-host sequence-gap count (its own measure of loss); false DOWN = host_down events while the host was sending;"
    echo "expected = heartbeats × (1-p) × p² with p = lost/sent; up = host_up events (recoveries); level = host_level events (must be 0: levels never change);"
    echo "replayed = datagrams hbd dropped as already seen (duplicates); true DOWN = after the senders stopped (every host, not false)"
    echo
    printf '%-8s %-34s %5s %8s %7s %7s %6s %8s %6s %5s %5s %8s %5s  %s\n' run netem hosts sent lost loss% "DOWN" expected ratio up level replayed trueD "sender lateness"
    if want base; then one_run base "$(s 60)" 1 delay 0ms; fi
    if want loss; then
        one_run loss1 "$(s 300)" 1 loss 1%
        one_run loss5 "$(s 180)" 1 loss 5%
        one_run loss20 "$(s 90)" 1 loss 20%
    fi
    if want reorder; then one_run reord "$(s 120)" 3 delay 10ms reorder 25% 50%; fi
    if want dup; then one_run dup "$(s 120)" 3 duplicate 20%; fi
    if want reorder && want dup; then one_run mixed "$(s 120)" 3 delay 10ms 5ms reorder 25% 50% duplicate 10%; fi
    if want hbc && [[ -x $HBC ]]; then
        echo
        echo "real hbc (bundled plugins, interval 1 s) through netem loss 20% for $(s 300) s:"
        local plugdir=$work/plugins hcfg=$work/hbc.yaml
        mkdir -p "$plugdir"
        cp "$BIN"/lib*.so "$plugdir"/ 2>/dev/null || true
        printf 'secret: "%s"\ninterval: 1s\nhostname: real-hbc\n' "$SECRET" >"$hcfg"
        netem_c loss 20%
        local t0 t1
        t0=$(date +%s%3N)
        ip netns exec "$CLI" env HBC_LOG=info "$HBC" -c "$hcfg" --plugin-dir "$plugdir" "10.99.0.1:$HB_PORT" >"$work/hbc.log" 2>&1 &
        local hbc_pid=$!
        FAULTS_PIDS+=("$hbc_pid")
        sleep "$(s 300)"
        t1=$(date +%s%3N)
        local tcstat
        tcstat=$(netem_stats)
        netem_c delay 0ms
        sleep 3
        all_events "$work/ev.jsonl"
        local h
        h=$(api /api/v1/hosts/real-hbc)
        local downs ups received lost
        downs=$(jq -c --argjson t1 "$t1" 'select(.host == "real-hbc" and .kind == "host_down" and .ts_ms <= $t1)' "$work/ev.jsonl" | wc -l)
        ups=$(jq -c 'select(.host == "real-hbc" and .kind == "host_up")' "$work/ev.jsonl" | wc -l)
        received=$(jq '.received // .host.received // 0' <<<"$h")
        lost=$(jq '.lost // .host.lost // 0' <<<"$h")
        kill -TERM "$hbc_pid" 2>/dev/null || true
        wait "$hbc_pid" 2>/dev/null || true
        python3 - "$received" "$lost" "$downs" "$ups" "$(( (t1 - t0) / 1000 ))" "$tcstat" <<'PY'
import sys
rec, lost, downs, ups, secs, tc = sys.argv[1:]
rec, lost, downs, ups = int(rec), int(lost), int(downs), int(ups)
n = rec + lost
p = lost / n if n else 0
print(f"  heartbeats received {rec}, lost (sequence gaps) {lost} = {100*p:.1f}% ; datagrams: {tc}")
print(f"  false DOWN {downs} (expected {n*(1-p)*p*p:.1f}), host_up events {ups} (the first is the host's arrival after a restart of nothing: new host counts as host_new)")
PY
        echo "  hbc log lines: $(wc -l <"$work/hbc.log") ($(grep -c WARN "$work/hbc.log" || true) WARN, $(grep -c ERROR "$work/hbc.log" || true) ERROR)"
    fi
    echo
    echo "hbd log: $(wc -l <"$log") lines, $(grep -c WARN "$log" || true) WARN, $(grep -c ERROR "$log" || true) ERROR"
    echo "load at end: $(cut -d' ' -f1-3 /proc/loadavg)"
}
run 2>&1 | tee "$out"
