#!/usr/bin/env bash
# Soak tests (hardening issue, "load and soak"): do hbd and hbc stay flat over time?
#
#   bench/soak.sh hbd     # hbd + 100,000 signed simulated hosts at 10 s for an hour
#   bench/soak.sh hbc     # hbc, all seven bundled plugins, 8,640 cycles (a day at 10 s) at 100 ms
#
# hbd mode: the release hbd on a temporary data folder, fed by `hb-loadgen blast` (one
# sender thread, HOSTS/INTERVAL datagrams/s, every host at its own phase; restarted every
# 240 s with a new instance number, which hbd takes as a hbc restart: no event, no loss
# counted). Every SAMPLE s: VmRSS, VmHWM, RssAnon, open fds, threads, CPU time, data
# folder size, hosts, UDP drops (the kernel's RcvbufErrors and hbd's sockets' own), and the
# client-side latency of REQS requests each of GET /api/v1/hosts?offset=..&limit=100
# (random pages), GET / (dashboard overview) and GET /healthz. After the run: one /metrics
# scrape (datagram counters; not during the run: at 100,000 hosts it is ~260 MB of text
# and would dominate the memory trace) and the sum of every host's `lost` counter.
# Env: DURATION (s, default 3600), SAMPLE (s, 30), WARMUP (s excluded from slopes, 900:
# per-host history fills after 60 heartbeats = 600 s), HOSTS (100000), INTERVAL (s, 10),
# REQS (requests per kind per sample, 5), PORT (UDP port; PORT+1 HTTP, PORT+2 WebSocket;
# default 47100).
#
# hbc mode: the release hbc with the seven bundled plugins copied into a temporary
# folder, `interval: 100ms` (hbc's minimum), sending to bench/udp_sink.py until CYCLES
# heartbeats (default 8640) arrived. The nagios plugin runs two real checks
# (check_dummy, check_load from monitoring-plugins-basic) when they are installed, so
# child processes are exercised. Every SAMPLE_CYCLES cycles (default 100): VmRSS,
# RssAnon, fds, threads, live child processes (zombies would show here), CPU time.
# Env: CYCLES, HBC_INTERVAL_MS (100), SAMPLE_CYCLES, WARMUP_CYCLES (500), NAGIOS_DIR
# (/usr/lib/nagios/plugins), PLUGINS (default "cpu memory disk network filesystem os nagios").
#
# Both: BIN (folder with hbd, hbc, hb-loadgen and libhbc_*.so; default
# target/release, built beforehand: cargo build --release --workspace), SRC (the source
# tree they were built from, for the revision in the header; default this one), RESULTS
# (output folder, default bench/results), KEEP_TMP=1.
# Output: stdout and bench/results/soak-{hbd,hbc}.txt, raw samples in
# bench/results/soak-{hbd,hbc}.csv (hbd's latencies: soak-hbd-latency.csv).
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
mode=${1:-hbd}
BIN=${BIN:-$root/target/release}
SRC=${SRC:-$root}
py=$(command -v python3) || { echo "soak.sh: python3 is needed" >&2; exit 1; }
die() { echo "soak.sh: $*" >&2; exit 1; }
[[ $mode == hbd || $mode == hbc ]] || die "usage: soak.sh hbd|hbc"

work=$(mktemp -d -t "hb-soak-$mode.XXXXXX")
pids=()
# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    if [[ ${KEEP_TMP:-0} == 1 ]]; then echo "kept $work" >&2; else rm -rf "$work"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

RESULTS=${RESULTS:-$here/results}
mkdir -p "$RESULTS"
out=$RESULTS/soak-$mode.txt
csv=$RESULTS/soak-$mode.csv
clk=$(getconf CLK_TCK)

header() {
    echo "# soak-$mode ($(date -u '+%Y-%m-%d %H:%M UTC'))"
    echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), kernel $(uname -r), $(free -m | awk '/^Mem:/{print $2}') MB RAM"
    local rev dirty
    rev=$(git -C "$SRC" rev-parse --short HEAD 2>/dev/null || echo unknown)
    dirty=$(git -C "$SRC" status --porcelain -- server proto host plugins 2>/dev/null | wc -l)
    echo "revision (of $([[ $SRC == "$root" ]] && echo "this checkout" || echo "\$SRC")): $rev$([[ $dirty != 0 ]] && echo " + $dirty uncommitted files in server/ proto/ host/ plugins/")"
    echo "binaries: $([[ $BIN == "$root"/* ]] && echo "${BIN#"$root"/}" || echo "\$BIN (outside this checkout)") (hb$([[ $mode == hbd ]] && echo d || echo c) built $(date -u -r "$BIN/$mode" '+%Y-%m-%d %H:%M UTC'))"
    echo "load at start: $(cut -d' ' -f1-3 /proc/loadavg) (2 shared cores: CPU figures are noisy; memory, fds and threads are not)"
}

# "rss_kB hwm_kB anon_kB threads" of a process.
status_of() {
    awk '/^VmRSS:/{r=$2} /^VmHWM:/{h=$2} /^RssAnon:/{a=$2} /^Threads:/{t=$2} END{print r+0, h+0, a+0, t+0}' "/proc/$1/status"
}
fds_of() { find "/proc/$1/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l; }
# utime + stime in clock ticks (fields 14 and 15; the name in field 2 has no spaces here).
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# Client-side time of one GET in ms ("nan" unless it answered 200 within 30 s).
timed() {
    local r
    r=$(curl -s -o /dev/null -m 30 -w '%{http_code} %{time_total}' "$1" || true)
    awk -v r="$r" 'BEGIN{split(r, a, " "); if (a[1] == "200") printf "%.2f", a[2] * 1000; else print "nan"}'
}
alive() { kill -0 "$1" 2>/dev/null || { echo "--- $2 log:" >&2; tail -20 "$3" >&2; die "$2 exited"; }; }

# The tables: first/last/min/max, least-squares slope after the warm-up (with twice its
# standard error as the noise band), latency percentiles of the first and last 10 minutes.
report() {
    "$py" - "$@" <<'EOF'
import csv, math, sys

def rows(path):
    with open(path) as f:
        return [{k: float(v) for k, v in r.items() if k != "kind"} | ({"kind": r["kind"]} if "kind" in r else {}) for r in csv.DictReader(f)]

def slope(xs, ys):
    n = len(xs)
    if n < 3:
        return float("nan"), float("nan")
    mx, my = sum(xs) / n, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / sxx
    a = my - b * mx
    res = sum((y - a - b * x) ** 2 for x, y in zip(xs, ys))
    return b, math.sqrt(res / (n - 2) / sxx)

def pct(v, p):
    v = sorted(v)
    if not v:
        return float("nan")
    k = (len(v) - 1) * p / 100
    lo = math.floor(k)
    hi = min(lo + 1, len(v) - 1)
    return v[lo] + (v[hi] - v[lo]) * (k - lo)

def table(data, xkey, x0, per, per_name, metrics):
    after = [r for r in data if r[xkey] >= x0]
    print(f"| metric | first | at warm-up end | last | min | max | slope per {per_name} after warm-up (± 2 SE) |")
    print("|---|---|---|---|---|---|---|")
    for key, name, scale, fmt in metrics:
        ys = [r[key] / scale for r in data]
        b, se = slope([r[xkey] for r in after], [r[key] / scale for r in after])
        f = lambda v: format(v, fmt)
        print(f"| {name} | {f(ys[0])} | {f(after[0][key] / scale) if after else '-'} | {f(ys[-1])} | {f(min(ys))} | {f(max(ys))} | {b * per:+.3g} ± {2 * se * per:.2g} |")

mode = sys.argv[1]
data = rows(sys.argv[2])
if mode == "hbd":
    lat, warm, dur = rows(sys.argv[3]), float(sys.argv[4]), float(sys.argv[5])
    print(f"\nsamples: {len(data)} over {data[-1]['t_s']:.0f} s; slopes over t >= {warm:.0f} s ({sum(r['t_s'] >= warm for r in data)} samples)\n")
    table(data, "t_s", warm, 3600, "hour", [
        ("rss_kb", "RSS (MB)", 1024, ".1f"), ("hwm_kb", "VmHWM (MB)", 1024, ".1f"),
        ("anon_kb", "RssAnon (MB)", 1024, ".1f"), ("fds", "open fds", 1, ".0f"),
        ("threads", "threads", 1, ".0f"), ("data_kb", "data folder (MB)", 1024, ".1f"),
        ("hosts", "hosts", 1, ".0f"), ("cpu_pct", "CPU (% of one core)", 1, ".1f"),
        ("api_ms", "GET /api/v1/hosts page, median (ms)", 1, ".1f"),
        ("dash_ms", "GET / dashboard, median (ms)", 1, ".1f"),
        ("healthz_ms", "GET /healthz, median (ms)", 1, ".2f")])
    d = data[-1]["udp_rcvbuf_errors"] - data[0]["udp_rcvbuf_errors"]
    print(f"\nkernel UDP RcvbufErrors during the run (whole machine): {d:.0f}", end="")
    if "udp_drops" in data[0]:
        after = [r for r in data if r["t_s"] >= warm]
        print(f"; hbd's sockets dropped {data[-1]['udp_drops']:.0f} datagrams (ss skmem d), {after[-1]['udp_drops'] - after[0]['udp_drops']:.0f} of them after the warm-up", end="")
    print()
    end = max(r["t_s"] for r in lat)
    # The first window starts once the fleet is complete (the t=0 sample sees no hosts).
    full = min(r["t_s"] for r in data if r["hosts"] >= 0.99 * max(x["hosts"] for x in data))
    failed = sum(math.isnan(r["ms"]) for r in lat)
    lat = [r for r in lat if not math.isnan(r["ms"])]
    print(f"\nclient-side latency (curl time_total), ms; first window from t = {full:.0f} s (all hosts known); failed or non-200 requests: {failed}\n")
    print("| request | first 10 min: n, p50 / p99 / max | last 10 min: n, p50 / p99 / max | last/first p50 |")
    print("|---|---|---|---|")
    for kind, name in [("api", "GET /api/v1/hosts?offset=..&limit=100"), ("dash", "GET / (overview)"), ("healthz", "GET /healthz")]:
        a = [r["ms"] for r in lat if r["kind"] == kind and full <= r["t_s"] < full + 600]
        b = [r["ms"] for r in lat if r["kind"] == kind and r["t_s"] > end - 600]
        cell = lambda v: f"{len(v)}, {pct(v, 50):.1f} / {pct(v, 99):.1f} / {max(v):.1f}"
        print(f"| {name} | {cell(a)} | {cell(b)} | {pct(b, 50) / pct(a, 50):.2f} |")
else:
    hz, warm = float(sys.argv[3]), float(sys.argv[4])
    print(f"\nsamples: {len(data)} from cycle {data[0]['cycles']:.0f} to {data[-1]['cycles']:.0f}; slopes over cycles >= {warm:.0f}\n")
    table(data, "cycles", warm, 1000, "1,000 cycles", [
        ("rss_kb", "RSS (kB)", 1, ".0f"), ("hwm_kb", "VmHWM (kB)", 1, ".0f"),
        ("anon_kb", "RssAnon (kB)", 1, ".0f"), ("fds", "open fds", 1, ".0f"),
        ("threads", "threads", 1, ".0f"), ("children", "child processes", 1, ".0f")])
    a = [r for r in data if r["cycles"] >= warm]
    if len(a) >= 2:
        ms = (a[-1]["cpu_ticks"] - a[0]["cpu_ticks"]) / hz * 1000 / max(1, a[-1]["cycles"] - a[0]["cycles"])
        print(f"\nCPU per cycle after warm-up: {ms:.2f} ms (utime+stime, 10 ms ticks; noisy on shared cores)")
EOF
}

# ====================================================================== hbd
soak_hbd() {
    local DURATION=${DURATION:-3600} SAMPLE=${SAMPLE:-30} WARMUP=${WARMUP:-900}
    local HOSTS=${HOSTS:-100000} INTERVAL=${INTERVAL:-10} REQS=${REQS:-5} PORT=${PORT:-47100}
    local hbd=$BIN/hbd gen=$BIN/hb-loadgen
    [[ -x $hbd && -x $gen ]] || die "$hbd or $gen missing (cargo build --release -p hbd -p hb-loadgen)"
    command -v curl >/dev/null || die "curl is needed"
    local udp=$PORT http=$((PORT + 1)) ws=$((PORT + 2)) base
    base=http://127.0.0.1:$http
    local rate=$((HOSTS / INTERVAL))
    local lat=$RESULTS/soak-hbd-latency.csv

    # The generator's default secret (bench/loadgen/src/main.rs, SECRET).
    printf 'bind: 127.0.0.1\nsecret: "hb-bench-secret-0123456789abcdef"\nmax_hosts: 200000\n' >"$work/hbd.yaml"
    "$hbd" -f -c "$work/hbd.yaml" --hb-port "$udp" --hbd-port "$http" --ws-port "$ws" \
        --data-dir "$work/data" </dev/null >/dev/null 2>"$work/hbd.log" &
    local hpid=$!
    pids+=("$hpid")
    local i
    for i in $(seq 100); do
        curl -sf -o /dev/null "$base/healthz" && break
        alive "$hpid" hbd "$work/hbd.log"
        sleep 0.2
        [[ $i == 100 ]] && die "hbd did not answer /healthz within 20 s"
    done

    # The fleet: `blast` is restarted every 240 s (each chunk a whole number of rounds at
    # the defaults: 240 s x 10,000/s = 24 x 100,000), shorter than hbd's 5-min time
    # window: a blast built before the fix in send.rs could freeze its send times.
    (
        end=$((SECONDS + DURATION))
        while ((SECONDS < end)); do
            d=$((end - SECONDS)); ((d > 240)) && d=240
            "$gen" blast --target "127.0.0.1:$udp" --rate "$rate" --duration "$d" \
                --hosts "$HOSTS" --interval-ms $((INTERVAL * 1000)) || exit 1
        done
    ) >"$work/gen.log" 2>&1 &
    local gpid=$!
    pids+=("$gpid")

    echo "soak hbd: pid $hpid, $HOSTS hosts at ${INTERVAL} s ($rate datagrams/s) for $DURATION s, sampling every $SAMPLE s; tmp $work" >&2
    echo "t_s,rss_kb,hwm_kb,anon_kb,fds,threads,cpu_pct,data_kb,hosts,udp_rcvbuf_errors,udp_drops,api_ms,dash_ms,healthz_ms" >"$csv"
    echo "t_s,kind,ms" >"$lat"
    local t0=$SECONDS k=0 c_prev t_prev c t rss hwm anon thr fds data hosts rcv drops
    c_prev=$(cpu_ticks "$hpid"); t_prev=$(date +%s.%N)
    while :; do
        local due=$((t0 + k * SAMPLE))
        while ((SECONDS < due)); do sleep 1; done
        alive "$hpid" hbd "$work/hbd.log"
        t=$((SECONDS - t0))
        read -r rss hwm anon thr <<<"$(status_of "$hpid")"
        fds=$(fds_of "$hpid")
        c=$(cpu_ticks "$hpid")
        local now cpu
        now=$(date +%s.%N)
        cpu=$(awk -v a="$c_prev" -v b="$c" -v x="$t_prev" -v y="$now" -v hz="$clk" 'BEGIN{printf "%.1f", (b-a)/hz/(y-x)*100}')
        c_prev=$c; t_prev=$now
        data=$(du -sk "$work/data" | cut -f1)
        hosts=$(curl -sf -m 30 "$base/healthz" | sed -n 's/.*"hosts":\([0-9]*\).*/\1/p' || true)
        rcv=$(awk '/^Udp:/{if(!n){for(i=1;i<=NF;i++)if($i=="RcvbufErrors")f=i;n=1}else print $f}' /proc/net/snmp)
        # hbd's own sockets (one per ingest thread, SO_REUSEPORT): skmem's d = drops.
        drops=$(ss -uamn "sport = :$udp" 2>/dev/null | grep -o ',d[0-9]*)' | tr -dc '0-9\n' | awk '{s+=$1} END{print s+0}' || true)
        local j a_ms=() d_ms=() h_ms=() off ms
        for ((j = 0; j < REQS; j++)); do
            off=$(( (RANDOM * 32768 + RANDOM) % (hosts > 100 ? hosts - 100 : 1) ))
            ms=$(timed "$base/api/v1/hosts?offset=$off&limit=100")
            a_ms+=("$ms"); echo "$t,api,$ms" >>"$lat"
            ms=$(timed "$base/")
            d_ms+=("$ms"); echo "$t,dash,$ms" >>"$lat"
            ms=$(timed "$base/healthz")
            h_ms+=("$ms"); echo "$t,healthz,$ms" >>"$lat"
        done
        med() { printf '%s\n' "$@" | sort -g | awk '{v[NR]=$1} END{print (NR%2)?v[(NR+1)/2]:(v[NR/2]+v[NR/2+1])/2}'; }
        echo "$t,$rss,$hwm,$anon,$fds,$thr,$cpu,$data,${hosts:-0},${rcv:-0},${drops:-0},$(med "${a_ms[@]}"),$(med "${d_ms[@]}"),$(med "${h_ms[@]}")" >>"$csv"
        ((k % 10 == 0)) && echo "  t=${t}s rss=$((rss / 1024)) MB fds=$fds threads=$thr hosts=$hosts api=$(med "${a_ms[@]}") ms dash=$(med "${d_ms[@]}") ms" >&2
        ((t >= DURATION)) && break
        k=$((k + 1))
    done

    # After the run: the generator's totals, then hbd's own counters.
    wait "$gpid" 2>/dev/null || true
    sleep 2
    local sent metrics lost=0 off2 total
    sent=$(sed -n 's/^sent \([0-9]*\) datagrams.*/\1/p' "$work/gen.log" | awk '{s+=$1} END{print s+0}')
    curl -sf -m 120 "$base/metrics" -o "$work/metrics.txt" || true
    metrics=$(grep -E '^hbd_datagrams_(received|accepted|dropped)_total' "$work/metrics.txt" | grep -v ' 0$' | tr '\n' ';' || true)
    total=$(curl -sf -m 60 "$base/api/v1/hosts?limit=1" | sed -n 's/.*"total":\([0-9]*\).*/\1/p' || true)
    for ((off2 = 0; off2 < ${total:-0}; off2 += 10000)); do
        lost=$((lost + $( (curl -sf -m 60 "$base/api/v1/hosts?offset=$off2&limit=10000" || true) | grep -o '"lost":[0-9]*' | cut -d: -f2 | awk '{s+=$1} END{print s+0}')))
    done
    local hbd_warn
    hbd_warn=$(grep -ciE ' (WARN|ERROR) ' "$work/hbd.log" || true)

    {
        header
        echo "run: $HOSTS signed hosts (30 readings, 1221 B) at ${INTERVAL} s = $rate datagrams/s for $DURATION s; samples every $SAMPLE s, $REQS requests per kind per sample; warm-up $WARMUP s excluded from slopes"
        echo "generator: sent $sent datagrams ($(grep -c '^sent' "$work/gen.log") chunks of <= 240 s); hbd's non-zero datagram counters after the run: ${metrics:-none (or no /metrics)}"
        echo "sum of every host's lost counter (seq gaps within an instance): $lost; hbd log lines at WARN/ERROR: $hbd_warn; load at end: $(cut -d' ' -f1-3 /proc/loadavg)"
        report hbd "$csv" "$lat" "$WARMUP" "$DURATION"
    } 2>&1 | tee "$out"
}

# ====================================================================== hbc
soak_hbc() {
    local CYCLES=${CYCLES:-8640} IV=${HBC_INTERVAL_MS:-100} SAMPLE_CYCLES=${SAMPLE_CYCLES:-100}
    local WARMUP_CYCLES=${WARMUP_CYCLES:-500}
    local NAGIOS_DIR=${NAGIOS_DIR:-/usr/lib/nagios/plugins}
    local hbc=$BIN/hbc
    [[ -x $hbc ]] || die "$hbc missing (cargo build --release -p hbc)"
    mkdir -p "$work/plugins"
    local p n=0 plugins=${PLUGINS:-cpu memory disk network filesystem os nagios}
    for p in $plugins; do
        [[ -f $BIN/libhbc_$p.so ]] || die "$BIN/libhbc_$p.so missing (cargo build --release --workspace)"
        install -m 0644 "$BIN/libhbc_$p.so" "$work/plugins/"
        n=$((n + 1))
    done
    local checks="none (monitoring-plugins-basic not installed)"
    [[ " $plugins " == *" nagios "* ]] || checks="none (nagios not loaded)"
    {
        printf 'interval: %sms\n' "$IV"
        if [[ " $plugins " == *" nagios "* && -x $NAGIOS_DIR/check_dummy && -x $NAGIOS_DIR/check_load ]]; then
            checks="check_dummy 0, check_load -w 50,40,30 -c 100,80,60 (two child processes per cycle)"
            printf 'plugins:\n  nagios:\n    options:\n      commands:\n'
            printf '        dummy: {command: ["%s/check_dummy", "0", "soak"]}\n' "$NAGIOS_DIR"
            printf '        load: {command: ["%s/check_load", "-w", "50,40,30", "-c", "100,80,60"]}\n' "$NAGIOS_DIR"
        fi
    } >"$work/hbc.yaml"

    "$py" "$here/udp_sink.py" hbc "$work/sink.port" "$work/sink.stats" </dev/null >"$work/sink.log" 2>&1 &
    pids+=("$!")
    local i
    for i in $(seq 50); do [[ -s $work/sink.port ]] && break; sleep 0.1; done
    [[ -s $work/sink.port ]] || die "UDP sink did not start: $(cat "$work/sink.log")"

    HBC_LOG=info "$hbc" -c "$work/hbc.yaml" --plugin-dir "$work/plugins" "127.0.0.1:$(<"$work/sink.port")" \
        </dev/null >"$work/hbc.log" 2>&1 &
    local cpid=$!
    pids+=("$cpid")
    local step_s
    step_s=$(awk -v c="$SAMPLE_CYCLES" -v i="$IV" 'BEGIN{printf "%.3f", c*i/1000}')
    local limit=$((CYCLES * IV * 3 / 1000 + 60))
    echo "soak hbc: pid $cpid, $n plugins, interval ${IV} ms, until $CYCLES heartbeats (sample every ~$SAMPLE_CYCLES cycles); tmp $work" >&2
    echo "t_s,cycles,datagrams,rss_kb,hwm_kb,anon_kb,fds,threads,children,cpu_ticks" >"$csv"
    local t0=$SECONDS next=0 beats=0 dgrams rss hwm anon thr fds kids
    while :; do
        alive "$cpid" hbc "$work/hbc.log"
        read -r dgrams _ _ _ beats <<<"$(cat "$work/sink.stats" 2>/dev/null || echo "0 0 0 0 0")"
        if ((beats >= next)); then
            read -r rss hwm anon thr <<<"$(status_of "$cpid")"
            fds=$(fds_of "$cpid")
            kids=$(pgrep -c -P "$cpid" || true)
            echo "$((SECONDS - t0)),$beats,$dgrams,$rss,$hwm,$anon,$fds,$thr,$kids,$(cpu_ticks "$cpid")" >>"$csv"
            ((beats % 1000 < SAMPLE_CYCLES)) && echo "  cycles=$beats rss=${rss} kB fds=$fds threads=$thr children=$kids" >&2
            ((beats >= CYCLES)) && break
            next=$((next + SAMPLE_CYCLES))
        fi
        ((SECONDS - t0 > limit)) && die "only $beats of $CYCLES heartbeats after $limit s"
        sleep "$(awk -v s="$step_s" 'BEGIN{print s/10}')"
    done
    local elapsed=$((SECONDS - t0)) warn
    warn=$(grep -ciE ' (WARN|ERROR) ' "$work/hbc.log" || true)
    {
        header
        echo "run: hbc with $n bundled plugins ($plugins), interval ${IV} ms, $CYCLES cycles ($(awk -v c="$CYCLES" 'BEGIN{printf "%.3g", c/8640}') day(s) at the default 10 s) in $elapsed s; nagios checks: $checks"
        echo "sink: $beats heartbeats, $dgrams datagrams; hbc log lines at WARN/ERROR: $warn; load at end: $(cut -d' ' -f1-3 /proc/loadavg)"
        report hbc "$csv" "$clk" "$WARMUP_CYCLES"
    } 2>&1 | tee "$out"
    grep -iE ' (WARN|ERROR) ' "$work/hbc.log" | head -5 >&2 || true
}

# On one line with `exit`: bash reads no further, so the file may be edited meanwhile.
case $mode in hbd) soak_hbd ;; hbc) soak_hbc ;; esac; exit $?
