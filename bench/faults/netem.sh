#!/usr/bin/env bash
# Packet loss, reordering and duplicates between senders and hbd (bench/faults,
# docs/faults.md), with two network namespaces joined by a veth pair.
#
# This machine's kernel has no netem (CONFIG_NET_SCH_NETEM is not set: "Specified qdisc
# kind is unknown"), so loss is made with nftables in the senders' namespace
# (`udp dport PORT numgen random mod 10000 < p·100 drop`: independent per datagram, like
# netem's `loss p%`), and reordering/duplicates by the sender (fleet.py --reorder, --dup,
# --late), which is what hbd would see from netem's reorder/duplicate.
#
#   bench/faults/netem.sh                       # all runs, ~16 min
#   ONLY=loss SCALE=0.3 bench/faults/netem.sh   # a subset (base,loss,reorder,hbc), shorter
#
# Topology (everything inside this machine): namespace hbfn-s holds hbd on 10.99.0.1,
# namespace hbfn-c the senders on 10.99.0.2; the drop rule sits on the senders' output
# hook, so it acts on heartbeats only.
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
ONLY=${ONLY:-base,loss,reorder,hbc}
HOSTS=${HOSTS:-1000}
SCALE=${SCALE:-1}
out=${OUT:-$root/bench/results/faults-netem.txt}
work=$(mktemp -d -t hb-faults-netem.XXXXXX)
trap faults_cleanup EXIT
mkdir -p "$(dirname "$out")"
want() { [[ ",$ONLY," == *",$1,"* ]]; }
# s SECONDS: a run length scaled by SCALE (at least 20 s).
s() { python3 -c "print(max(20, int($1 * $SCALE)))"; }

SRV=hbfn-s CLI=hbfn-c
API_NS=$SRV
# loss PERCENT: drop this share of heartbeat datagrams leaving the senders' namespace.
loss() {
    local per10k
    per10k=$(python3 -c "print(int(round($1 * 100)))")
    ip netns exec "$CLI" nft flush chain inet hbf out
    ip netns exec "$CLI" nft add rule inet hbf out udp dport "$HB_PORT" counter
    ip netns exec "$CLI" nft add rule inet hbf out udp dport "$HB_PORT" numgen random mod 10000 lt "$per10k" counter drop
}
# loss_stats: "N datagrams, D dropped" since the last `loss`.
loss_stats() {
    ip netns exec "$CLI" nft list chain inet hbf out | awk '/counter/ { for (i = 1; i < NF; i++) if ($i == "packets") c[n++] = $(i + 1) } END { printf "%d datagrams, %d dropped", c[0], c[1] }'
}

# one_run NAME SECONDS LOSS% [fleet.py args...]: fleet.py HOSTS hosts named NAME-xxxxx
# for SECONDS; prints one row of the table.
one_run() {
    local name=$1 secs=$2 pct=$3
    shift 3
    loss "$pct"
    local replayed0 start stop
    replayed0=$(metric 'hbd_datagrams_dropped_total{reason="replayed"}')
    start=$(date +%s%3N)
    ip netns exec "$CLI" python3 "$FLEET" --target "10.99.0.1:$HB_PORT" --hosts "$HOSTS" \
        --prefix "$name" --interval-ms 1000 --duration "$secs" \
        --stats "$work/$name.json" "$@" 2>>"$work/fleet.log"
    stop=$(date +%s%3N)
    local tcstat
    tcstat=$(loss_stats)
    loss 0
    sleep 4  # every host of this run goes DOWN now (really): those events are after `stop`
    local replayed1
    replayed1=$(metric 'hbd_datagrams_dropped_total{reason="replayed"}')
    all_events "$work/ev.jsonl"
    api "/api/v1/hosts?q=$name-&limit=10000" >"$work/$name-hosts.json"
    python3 - "$name" "$start" "$stop" "$work/ev.jsonl" "$work/$name-hosts.json" "$work/$name.json" \
        "$((replayed1 - replayed0))" "$tcstat" "loss $pct% $*" <<'PY'
import json, sys
name, start, stop, evf, hostsf, statsf, replayed, tcstat, args = sys.argv[1:]
start, stop = int(start), int(stop)
pre = name + "-"
down = up = late_down = 0
lv = {}
for line in open(evf):
    e = json.loads(line)
    if not e["host"].startswith(pre):
        continue
    if e["kind"] == "host_down":
        if e["ts_ms"] <= stop:
            down += 1
        else:
            late_down += 1
    elif e["kind"] == "host_up" and e.get("from") == "DOWN":
        up += 1
    elif e["kind"] == "host_level":
        lv[e["host"]] = lv.get(e["host"], 0) + 1
# A host's first heartbeat sets its level once (from the unknown start); later ones are changes.
level = sum(n - 1 for n in lv.values())
hosts = json.load(open(hostsf))["hosts"]
st = json.load(open(statsf))
sent = st["heartbeats"]
lost = sum(h["lost"] for h in hosts)
p = lost / sent if sent else 0.0
expect = sent * (1 - p) * p * p
print(f"{name:<8} {args:<44} {st['hosts']:>5} {sent:>8} {lost:>7} {100*p:>6.2f}% {down:>6} {expect:>8.1f} "
      f"{(down/expect if expect >= 1 else float('nan')):>6.2f} {up:>5} {level:>5} {int(replayed):>8} {late_down:>5}  {st['late_max_s']:.2f}s  nft: {tcstat}; sender: reordered {st['reordered']}, duplicated {st['duplicated']}, late {st['late']}")
PY
}

run() {
    header "netem (packet loss, reordering, duplicates; $HOSTS simulated hosts at 1 s)"
    setup_ns "$SRV" "$CLI"
    ip netns exec "$CLI" nft add table inet hbf
    ip netns exec "$CLI" nft add chain inet hbf out '{ type filter hook output priority 0; }'
    local cfg=$work/hbd.yaml data=$work/data log=$work/hbd.log
    write_config "$cfg" "max_hosts: 200000"
    start_hbd "$cfg" "$data" "$log" ip netns exec "$SRV"
    wait_api 20
    echo "hbd in namespace $SRV (10.99.0.1), senders in $CLI (10.99.0.2), random drop (nftables numgen) on the senders' output; default liveness (grace 2.5)"
    echo "columns: heartbeats sent; lost = hbd's per-host sequence-gap count (its own measure of loss); false DOWN = host_down events while the host was sending;"
    echo "expected = heartbeats × (1-p) × p² with p = lost/sent; up = host_up events from DOWN (recoveries); level = host_level changes after a host's first heartbeat (must be 0: levels never change);"
    echo "replayed = datagrams hbd dropped as already seen (duplicates); true DOWN = after the senders stopped (every host, not false)"
    echo
    printf '%-8s %-44s %5s %8s %7s %7s %6s %8s %6s %5s %5s %8s %5s  %s\n' run "loss, sender options" hosts sent lost loss% "DOWN" expected ratio up level replayed trueD "sender lateness"
    if want base; then one_run base "$(s 60)" 0; fi
    if want loss; then
        one_run loss1 "$(s 300)" 1
        one_run loss5 "$(s 180)" 5
        one_run loss20 "$(s 90)" 20
    fi
    if want reorder; then
        one_run reord "$(s 90)" 0 --parts 3 --reorder 0.25
        one_run dup "$(s 90)" 0 --parts 3 --dup 0.2
        one_run late "$(s 90)" 0 --late 0.05
        one_run mixed "$(s 90)" 5 --parts 3 --reorder 0.25 --dup 0.1
    fi
    if want hbc && [[ -x $HBC ]]; then
        echo
        echo "real hbc (bundled plugins, interval 1 s) through 20% loss for $(s 300) s:"
        local plugdir=$work/plugins hcfg=$work/hbc.yaml
        copy_plugins "$plugdir"
        printf 'secret: "%s"\ninterval: 1s\nhostname: real-hbc\n' "$SECRET" >"$hcfg"
        loss 20
        local t0 t1
        t0=$(date +%s%3N)
        ip netns exec "$CLI" env HBC_LOG=info "$HBC" -c "$hcfg" --plugin-dir "$plugdir" "10.99.0.1:$HB_PORT" >"$work/hbc.log" 2>&1 &
        local hbc_pid=$!
        FAULTS_PIDS+=("$hbc_pid")
        sleep "$(s 300)"
        t1=$(date +%s%3N)
        local tcstat
        tcstat=$(loss_stats)
        loss 0
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
print(f"  false DOWN {downs} (expected {n*(1-p)*p*p:.1f} if every heartbeat were one datagram), host_up events {ups}")
PY
        echo "  hbc log lines: $(wc -l <"$work/hbc.log") ($(grep -c WARN "$work/hbc.log" || true) WARN, $(grep -c ERROR "$work/hbc.log" || true) ERROR)"
    fi
    echo
    echo "hbd log: $(wc -l <"$log") lines, $(grep -c WARN "$log" || true) WARN, $(grep -c ERROR "$log" || true) ERROR"
    echo "load at end: $(cut -d' ' -f1-3 /proc/loadavg)"
}
# Not `run | tee`: run must not be a subshell, or the EXIT trap would not see its processes.
exec > >(faults_scrub | tee "$out") 2>&1
run
