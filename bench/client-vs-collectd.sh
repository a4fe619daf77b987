#!/usr/bin/env bash
# hbc vs collectd on this machine, measured side by side in one run (issue "hbc: plugin host").
#
#   bench/client-vs-collectd.sh            # DURATION=60 s, both programs at a 1 s interval
#   DURATION=120 bench/client-vs-collectd.sh
#
# Env: DURATION (s, default 60), WARMUP (s skipped at the start, default 5), SAMPLE_EVERY
# (RSS/thread sampling period, s, default 5), LOAD_RUNS (plugin load timing runs, default 5),
# NO_BUILD=1 (use the existing release build), KEEP_TMP=1 (keep the work folder and logs).
#
# Runs hbc (7 bundled plugins) and collectd (cpu, memory, disk, interface, df, load, network)
# AT THE SAME TIME, each sending to its own UDP sink on 127.0.0.1, so both see the same
# machine noise. Prints CPU per collection cycle, RSS, threads, datagrams/s and bytes/s
# of both and the ratio hbc/collectd, then hbc's plugin discovery+load times. The output is
# also written to bench/results/client-vs-collectd.txt. All traffic goes to 127.0.0.1.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
DURATION=${DURATION:-60}
WARMUP=${WARMUP:-5}
SAMPLE_EVERY=${SAMPLE_EVERY:-5}
LOAD_RUNS=${LOAD_RUNS:-5}
INTERVAL=1 # seconds, both programs
PLUGINS=(cpu memory disk network filesystem os nagios)
COLLECTD_PLUGINS=(cpu memory disk interface df load network)

die() { echo "client-vs-collectd: $*" >&2; exit 1; }
(( DURATION >= WARMUP + 10 )) || die "DURATION must be at least WARMUP + 10 s"

# ---------------------------------------------------------------- collectd
find_collectd() { command -v collectd 2>/dev/null || { [[ -x /usr/sbin/collectd ]] && echo /usr/sbin/collectd; } || true; }
collectd_bin=$(find_collectd)
if [[ -z $collectd_bin ]]; then
    echo "installing collectd-core ..." >&2
    apt-get install -y --no-install-recommends collectd-core >&2 \
        || { apt-get update >&2 && apt-get install -y --no-install-recommends collectd-core >&2; }
    collectd_bin=$(find_collectd)
    [[ -n $collectd_bin ]] || die "collectd not found after installing collectd-core"
fi
collectd_plugin_dir=/usr/lib/collectd
[[ -d $collectd_plugin_dir ]] || die "$collectd_plugin_dir missing (collectd-core installs it)"
for p in "${COLLECTD_PLUGINS[@]}"; do
    [[ -f $collectd_plugin_dir/$p.so ]] || die "collectd plugin $collectd_plugin_dir/$p.so missing"
done
types_db=/usr/share/collectd/types.db
[[ -f $types_db ]] || die "$types_db missing"
collectd_version=$(dpkg-query -W -f='${Version}' collectd-core 2>/dev/null || echo unknown)

# ---------------------------------------------------------------- footprint mode
# BEFORE=<folder with hbc and libhbc_*.so of the old build> AFTER=<the same, new build,
# with libhbc_system.so; BEFORE may hold one too> bench/client-vs-collectd.sh: runs collectd and four hbc at the same
# time (before/after x all seven plugins/nagios only), then prints per program CPU per cycle,
# RSS, PSS and the mappings with the most resident memory (smaps), with ratios to collectd.
if [[ -n ${BEFORE:-} ]]; then
    [[ -n ${AFTER:-} ]] || die "AFTER= is needed with BEFORE="
    calc() { awk "BEGIN {printf \"%.${2:-2}f\", $1}"; }
    ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b == 0) print "n/a"; else printf "%.2f", a / b}'; }
    here_tmp=$(mktemp -d -t hbc-foot.XXXXXX)
    fpids=()
    trap 'for p in "${fpids[@]}"; do kill "$p" 2>/dev/null; done; rm -rf "$here_tmp"' EXIT
    mkdir -p "$here_tmp"/{before-all,after-all,before-nagios,after-nagios,cd}
    # BEFORE may be a build of separate plugins or of the bundle (to compare two bundles).
    if [[ -f $BEFORE/libhbc_system.so ]]; then
        install -m 0644 "$BEFORE/libhbc_system.so" "$BEFORE/libhbc_nagios.so" "$here_tmp/before-all/"
    else
        for p in cpu memory disk network filesystem os nagios; do install -m 0644 "$BEFORE/libhbc_$p.so" "$here_tmp/before-all/"; done
    fi
    install -m 0644 "$AFTER/libhbc_system.so" "$AFTER/libhbc_nagios.so" "$here_tmp/after-all/"
    install -m 0644 "$BEFORE/libhbc_nagios.so" "$here_tmp/before-nagios/"
    install -m 0644 "$AFTER/libhbc_nagios.so" "$here_tmp/after-nagios/"
    cat >"$here_tmp/collectd.conf" <<EOF2
Hostname "bench-collectd"
FQDNLookup false
BaseDir "$here_tmp/cd"
PIDFile "$here_tmp/cd/collectd.pid"
PluginDir "$collectd_plugin_dir"
TypesDB "$types_db"
Interval 1
$(for p in "${COLLECTD_PLUGINS[@]}"; do echo "LoadPlugin $p"; done)
<Plugin network>
  Server "127.0.0.1" "9"
</Plugin>
EOF2
    declare -A FP
    for v in before-all after-all before-nagios after-nagios; do
        bin=$BEFORE/hbc; [[ $v == after-* ]] && bin=$AFTER/hbc
        printf 'interval: 1s\nplugin_probe: true\nstate_dir: %s\n' "$here_tmp/$v/state" >"$here_tmp/$v.yaml"
        "$bin" -c "$here_tmp/$v.yaml" --plugin-dir "$here_tmp/$v" 127.0.0.1:9 >"$here_tmp/$v.log" 2>&1 &
        FP[$v]=$!; fpids+=("$!")
    done
    "$collectd_bin" -f -C "$here_tmp/collectd.conf" >"$here_tmp/collectd.log" 2>&1 &
    FP[collectd]=$!; fpids+=("$!")
    names=(collectd before-all after-all before-nagios after-nagios)
    cpu_sum() { local t a s=0; for t in /proc/"$1"/task/*/schedstat; do read -r a _ <"$t" 2>/dev/null || continue; s=$((s + a)); done; echo $s; }
    sleep "$WARMUP"
    declare -A C0 C1
    t0=$EPOCHREALTIME; for n in "${names[@]}"; do C0[$n]=$(cpu_sum "${FP[$n]}"); done
    sleep $(( DURATION - WARMUP ))
    t1=$EPOCHREALTIME; for n in "${names[@]}"; do C1[$n]=$(cpu_sum "${FP[$n]}"); done
    out=$here_tmp/report
    {
        echo "# hbc footprint before/after vs collectd, $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
        echo "machine: nproc $(nproc), kernel $(uname -r), CPU $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo), load $(cut -d' ' -f1-3 /proc/loadavg)"
        echo "before: folder $(basename "$BEFORE"); after: folder $(basename "$AFTER") (only the folder names: no machine path in results) (libhbc_system.so + libhbc_nagios.so); collectd-core $collectd_version (${COLLECTD_PLUGINS[*]})"
        echo "all five at a 1 s interval at the same time, plugin_probe on; CPU over $(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", b - a}') s after ${WARMUP} s warm-up"
        echo
        printf '%-14s %9s %7s %8s %7s %8s %7s %8s %8s %7s %8s\n' program "CPU ms/c" "x cd" "RSS MB" "x cd" "PSS MB" "x cd" "anon MB" "file MB" threads mappings
        cd_cpu=$(awk -v a="${C0[collectd]}" -v b="${C1[collectd]}" -v s="$t0" -v e="$t1" 'BEGIN {printf "%.3f", (b - a) / 1e6 / (e - s)}')
        cd_rss=$(awk '/^Rss:/ {print $2}' "/proc/${FP[collectd]}/smaps_rollup")
        cd_pss=$(awk '/^Pss:/ {print $2}' "/proc/${FP[collectd]}/smaps_rollup")
        for n in "${names[@]}"; do
            pid=${FP[$n]}
            kill -0 "$pid" 2>/dev/null || { echo "$n exited: $(tail -3 "$here_tmp/$n.log" 2>/dev/null)"; continue; }
            c=$(awk -v a="${C0[$n]}" -v b="${C1[$n]}" -v s="$t0" -v e="$t1" 'BEGIN {printf "%.3f", (b - a) / 1e6 / (e - s)}')
            read -r rss pss an fi < <(awk '/^Rss:/ {r=$2} /^Pss:/ {p=$2} /^Anonymous:/ {a=$2} END {print r, p, a, r - a}' "/proc/$pid/smaps_rollup")
            th=$(awk '/^Threads:/ {print $2}' "/proc/$pid/status")
            nm=$(wc -l <"/proc/$pid/maps")
            printf '%-14s %9s %7s %8.2f %7s %8.2f %7s %8.2f %8.2f %7s %8s\n' "$n" "$c" "$(ratio "$c" "$cd_cpu")" \
                "$(calc "$rss / 1024")" "$(ratio "$rss" "$cd_rss")" "$(calc "$pss / 1024")" "$(ratio "$pss" "$cd_pss")" \
                "$(calc "$an / 1024")" "$(calc "$fi / 1024")" "$th" "$nm"
        done
        echo "mappings: lines of /proc/PID/maps (hbc splits its code into one mapping per page after loading, host/src/resident.rs: ~200 bytes of kernel memory each, not in RSS or PSS)"
        echo
        echo "resident memory per mapping (smaps, KB: Rss / Pss / Anonymous; mappings of the same file summed, top 10):"
        for n in "${names[@]}"; do
            echo "  $n:"
            awk '/^[0-9a-f]+-[0-9a-f]+ / {f = ($6 == "" ? "[anon]" : $6); sub(/.*\//, "", f); sub(/^[0-9]+-/, "", f)}
                 /^Rss:/ {r[f] += $2} /^Pss:/ {p[f] += $2} /^Anonymous:/ {a[f] += $2}
                 END {for (k in r) if (r[k] > 0) printf "%8d %8d %8d  %s\n", r[k], p[k], a[k], k}' "/proc/${FP[$n]}/smaps" \
                | sort -rn | head -10 | sed 's/^/    /'
        done
    } >"$out"
    calc() { awk "BEGIN {printf \"%.${2:-2}f\", $1}"; }
    cat "$out"
    mkdir -p "$here/results"; cp "$out" "$here/results/client-footprint.txt"
    exit 0
fi

# ---------------------------------------------------------------- hbc
if [[ ${NO_BUILD:-0} != 1 ]]; then
    pkgs=(-p hbc)
    for p in "${PLUGINS[@]}"; do pkgs+=(-p "hbc-plugin-$p"); done
    (cd "$root" && cargo build --release "${pkgs[@]}") >&2
fi
hbc_bin=$root/target/release/hbc
[[ -x $hbc_bin ]] || die "$hbc_bin missing (run without NO_BUILD=1)"

tmp=$(mktemp -d -t hbc-bench.XXXXXX)
pids=()
cleanup() {
    local p
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
    if [[ ${KEEP_TMP:-0} == 1 ]]; then echo "work folder kept: $tmp" >&2; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

mkdir -p "$tmp/plugins" "$tmp/collectd"
for p in "${PLUGINS[@]}"; do
    install -m 0644 "$root/target/release/libhbc_$p.so" "$tmp/plugins/"
done
# The nagios plugin runs with no commands configured: it loads and collects nothing, as
# collectd runs without its exec plugin. Everything else is hbc's defaults (plugin_probe on,
# plugin_rescan 10 s), apart from the interval.
printf 'interval: 1s\n' >"$tmp/hbc.yaml"
printf 'interval: 1s\nplugin_probe: false\n' >"$tmp/hbc-noprobe.yaml"
printf 'interval: 1s\nplugin_probe: true\n' >"$tmp/hbc-probe.yaml"

# ---------------------------------------------------------------- UDP sinks
py=$(command -v python3) || die "python3 is needed for the UDP sink"
start_sink() { # kind; sets sink_port
    local kind=$1 i
    "$py" "$here/udp_sink.py" "$kind" "$tmp/$kind.port" "$tmp/$kind.stats" </dev/null >"$tmp/$kind.sink.log" 2>&1 &
    pids+=("$!")
    for i in $(seq 100); do
        if [[ -s $tmp/$kind.port ]]; then sink_port=$(<"$tmp/$kind.port"); return 0; fi
        sleep 0.05
    done
    die "UDP sink for $kind did not start: $(cat "$tmp/$kind.sink.log")"
}
start_sink hbc; hbc_port=$sink_port
start_sink collectd; collectd_port=$sink_port

cat >"$tmp/collectd.conf" <<EOF
Hostname "bench-collectd"
FQDNLookup false
BaseDir "$tmp/collectd"
PIDFile "$tmp/collectd/collectd.pid"
PluginDir "$collectd_plugin_dir"
TypesDB "$types_db"
Interval $INTERVAL
$(for p in "${COLLECTD_PLUGINS[@]}"; do echo "LoadPlugin $p"; done)
<Plugin network>
  Server "127.0.0.1" "$collectd_port"
</Plugin>
EOF

# ---------------------------------------------------------------- /proc sampling
clk_tck=$(getconf CLK_TCK)
cpu_ticks() { # utime+stime of the whole process, clock ticks
    local s
    s=$(<"/proc/$1/stat")
    s=${s##*) }
    # shellcheck disable=SC2086
    set -- $s
    echo $(( ${12} + ${13} ))
}
cpu_ns() { # sum of every live thread's on-CPU time (schedstat field 1), ns
    local t a sum=0
    for t in /proc/"$1"/task/*/schedstat; do
        read -r a _ <"$t" 2>/dev/null || continue
        sum=$(( sum + a ))
    done
    echo "$sum"
}
ctx_switches() { # voluntary + involuntary context switches of every live thread
    cat /proc/"$1"/task/*/status 2>/dev/null \
        | awk '/^(non)?voluntary_ctxt_switches:/ {n += $2} END {print n + 0}'
}
status_kb() { awk -v k="$2:" '$1 == k {print $2; exit}' "/proc/$1/status"; }
sink_stats() { [[ -s $tmp/$1.stats ]] && cat "$tmp/$1.stats" || echo "0 0 0 0 0"; }
alive() {
    kill -0 "$1" 2>/dev/null && return 0
    echo "client-vs-collectd: $2 exited early; its log:" >&2
    tail -20 "$3" >&2
    exit 1
}
now() { echo "$EPOCHREALTIME"; }
sleep_until() { sleep "$(awk -v t="$1" -v n="$EPOCHREALTIME" 'BEGIN {d = t - n; if (d < 0) d = 0; printf "%.3f", d}')"; }
at() { awk -v s="$t_start" -v w="$1" 'BEGIN {printf "%.6f", s + w}'; } # t_start + seconds

# ---------------------------------------------------------------- the run
echo "running hbc and collectd side by side for ${DURATION} s (warm-up ${WARMUP} s) ..." >&2
HBC_LOG=info "$hbc_bin" -c "$tmp/hbc.yaml" --plugin-dir "$tmp/plugins" "127.0.0.1:$hbc_port" \
    >"$tmp/hbc.log" 2>&1 &
hbc_pid=$!
pids+=("$hbc_pid")
"$collectd_bin" -f -C "$tmp/collectd.conf" >"$tmp/collectd.log" 2>&1 &
cd_pid=$!
pids+=("$cd_pid")
t_start=$(now)

declare -A A B MAX
snapshot() { # into assoc array named $1, for program $2 with pid $3
    local -n S=$1
    local d b v x h
    S[$2.wall]=$(now)
    S[$2.ticks]=$(cpu_ticks "$3")
    S[$2.ns]=$(cpu_ns "$3")
    S[$2.ctx]=$(ctx_switches "$3")
    read -r d b v x h <<<"$(sink_stats "$2")"
    S[$2.dgrams]=$d S[$2.bytes]=$b S[$2.values]=$v S[$2.bad]=$x S[$2.hbs]=$h
}
sample_mem() { # program pid: track maxima of RSS and threads
    local v f
    for f in VmRSS Threads; do
        v=$(status_kb "$2" "$f")
        (( v > ${MAX[$1.$f]:-0} )) && MAX[$1.$f]=$v
    done
    return 0
}

sleep_until "$(at "$WARMUP")"
alive "$hbc_pid" hbc "$tmp/hbc.log"
alive "$cd_pid" collectd "$tmp/collectd.log"
snapshot A hbc "$hbc_pid"
snapshot A collectd "$cd_pid"
sample_mem hbc "$hbc_pid"
sample_mem collectd "$cd_pid"
t=$WARMUP
while (( t + SAMPLE_EVERY < DURATION )); do
    t=$(( t + SAMPLE_EVERY ))
    sleep_until "$(at "$t")"
    alive "$hbc_pid" hbc "$tmp/hbc.log"
    alive "$cd_pid" collectd "$tmp/collectd.log"
    sample_mem hbc "$hbc_pid"
    sample_mem collectd "$cd_pid"
done
sleep_until "$(at "$DURATION")"
alive "$hbc_pid" hbc "$tmp/hbc.log"
alive "$cd_pid" collectd "$tmp/collectd.log"
snapshot B hbc "$hbc_pid"
snapshot B collectd "$cd_pid"
sample_mem hbc "$hbc_pid"
sample_mem collectd "$cd_pid"
declare -A END
for prog in hbc collectd; do
    [[ $prog == hbc ]] && pid=$hbc_pid || pid=$cd_pid
    for f in VmRSS RssAnon RssFile RssShmem Threads; do END[$prog.$f]=$(status_kb "$pid" "$f"); done
    END[$prog.pss]=$(awk '$1 == "Pss:" {print $2}' "/proc/$pid/smaps_rollup" 2>/dev/null || echo 0)
done
kill "$hbc_pid" "$cd_pid" 2>/dev/null || true
wait "$hbc_pid" 2>/dev/null || true
wait "$cd_pid" 2>/dev/null || true

# ---------------------------------------------------------------- plugin load times
echo "timing plugin discovery+load (${LOAD_RUNS} runs per setting) ..." >&2
median() { sort -g | awk '{v[NR] = $1} END {if (NR == 0) print "nan"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
loaded_ms() { # config -> "X" from "plugins loaded in X ms", checks all 7 loaded
    local out
    out=$(HBC_LOG=info "$hbc_bin" -c "$1" --plugin-dir "$tmp/plugins" --once 2>&1 >/dev/null) \
        || { echo "$out" >&2; die "hbc --once failed"; }
    grep -q "plugins=${#PLUGINS[@]}\b" <<<"$out" || { echo "$out" >&2; die "hbc did not load ${#PLUGINS[@]} plugins"; }
    sed -n 's/.*plugins loaded in \([0-9.]*\) ms.*/\1/p' <<<"$out" | head -1
}
wall_ms() { # command... -> wall time of the whole process, ms
    local t0 t1
    t0=$EPOCHREALTIME
    "$@" >/dev/null 2>&1 || die "failed: $*"
    t1=$EPOCHREALTIME
    awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.2f\n", (b - a) * 1000}'
}
: >"$tmp/load.noprobe"; : >"$tmp/load.probe"; : >"$tmp/wall.hbc"; : >"$tmp/wall.collectd"
for _ in $(seq "$LOAD_RUNS"); do # interleaved, so drift hits both settings alike
    loaded_ms "$tmp/hbc-noprobe.yaml" >>"$tmp/load.noprobe"
    loaded_ms "$tmp/hbc-probe.yaml" >>"$tmp/load.probe"
    wall_ms "$hbc_bin" -c "$tmp/hbc-noprobe.yaml" --plugin-dir "$tmp/plugins" plugins >>"$tmp/wall.hbc"
    # collectd 5.12's -t ("test config") exits before reading the config here; -T loads the
    # plugins, initialises them, runs one read and exits: more work than `hbc plugins`.
    wall_ms "$collectd_bin" -T -C "$tmp/collectd.conf" >>"$tmp/wall.collectd"
done

# ---------------------------------------------------------------- report
calc() { awk "BEGIN {printf \"%.${2:-2}f\", $1}"; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {if (b == 0) print "n/a"; else printf "%.2f", a / b}'; }
declare -A R
for prog in hbc collectd; do
    el=$(calc "${B[$prog.wall]} - ${A[$prog.wall]}" 3)
    cycles=$(calc "$el / $INTERVAL" 3)
    R[$prog.elapsed]=$el
    R[$prog.cpu_ns]=$(calc "(${B[$prog.ns]} - ${A[$prog.ns]}) / 1e6 / $cycles" 3)
    R[$prog.cpu_ticks]=$(calc "(${B[$prog.ticks]} - ${A[$prog.ticks]}) * 1000 / $clk_tck / $cycles" 3)
    R[$prog.ctx]=$(calc "(${B[$prog.ctx]} - ${A[$prog.ctx]}) / $cycles" 1)
    R[$prog.rss]=$(calc "${END[$prog.VmRSS]} / 1024" 2)
    R[$prog.rssmax]=$(calc "${MAX[$prog.VmRSS]} / 1024" 2)
    R[$prog.anon]=$(calc "${END[$prog.RssAnon]} / 1024" 2)
    R[$prog.file]=$(calc "(${END[$prog.RssFile]} + ${END[$prog.RssShmem]}) / 1024" 2)
    R[$prog.pss]=$(calc "${END[$prog.pss]:-0} / 1024" 2)
    R[$prog.threads]=${END[$prog.Threads]}
    R[$prog.dgps]=$(calc "(${B[$prog.dgrams]} - ${A[$prog.dgrams]}) / $el" 2)
    R[$prog.bps]=$(calc "(${B[$prog.bytes]} - ${A[$prog.bytes]}) / $el" 0)
    R[$prog.values]=$(calc "(${B[$prog.values]} - ${A[$prog.values]}) / $cycles" 1)
    R[$prog.bad]=$(( ${B[$prog.bad]} - ${A[$prog.bad]} ))
    R[$prog.hbps]=$(calc "(${B[$prog.hbs]} - ${A[$prog.hbs]}) / $el" 3)
    R[$prog.us_per_value]=$(awk -v c="${R[$prog.cpu_ns]}" -v v="${R[$prog.values]}" 'BEGIN {if (v == 0) print "n/a"; else printf "%.1f", c * 1000 / v}')
done
row() { printf '%-34s %12s %12s %8s\n' "$1" "$2" "$3" "$(ratio "$2" "$3")"; }
report=$tmp/report
{
    echo "# hbc vs collectd, $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
    echo "machine: nproc $(nproc), kernel $(uname -r), $(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
    echo "hbc: $(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo '?')$( [[ -n $(git -C "$root" status --porcelain 2>/dev/null) ]] && echo ' (with uncommitted changes)'), plugins: ${PLUGINS[*]}"
    echo "collectd-core $collectd_version, plugins: ${COLLECTD_PLUGINS[*]}"
    echo "both at a ${INTERVAL} s interval, run at the same time for ${DURATION} s; measured from t=${WARMUP} s to the end (${R[hbc.elapsed]} s = cycles)"
    echo
    printf '%-34s %12s %12s %8s\n' "metric" "hbc" "collectd" "hbc/cd"
    printf '%-34s %12s %12s %8s\n' "----------------------------------" "------------" "------------" "--------"
    row "CPU ms per cycle (schedstat, ns)" "${R[hbc.cpu_ns]}" "${R[collectd.cpu_ns]}"
    row "CPU ms per cycle (/proc stat ticks)" "${R[hbc.cpu_ticks]}" "${R[collectd.cpu_ticks]}"
    row "RSS MB at end (VmRSS)" "${R[hbc.rss]}" "${R[collectd.rss]}"
    row "RSS MB max over samples" "${R[hbc.rssmax]}" "${R[collectd.rssmax]}"
    row "  of which anonymous MB" "${R[hbc.anon]}" "${R[collectd.anon]}"
    row "  of which file-backed MB" "${R[hbc.file]}" "${R[collectd.file]}"
    row "PSS MB (smaps_rollup)" "${R[hbc.pss]}" "${R[collectd.pss]}"
    row "threads" "${R[hbc.threads]}" "${R[collectd.threads]}"
    row "context switches per cycle" "${R[hbc.ctx]}" "${R[collectd.ctx]}"
    row "datagrams/s" "${R[hbc.dgps]}" "${R[collectd.dgps]}"
    row "bytes/s" "${R[hbc.bps]}" "${R[collectd.bps]}"
    row "values per cycle (decoded)" "${R[hbc.values]}" "${R[collectd.values]}"
    row "CPU us per value" "${R[hbc.us_per_value]}" "${R[collectd.us_per_value]}"
    echo
    echo "hbc heartbeats/s received: ${R[hbc.hbps]} (expected 1.000 at a 1 s interval); undecodable datagrams: hbc ${R[hbc.bad]}, collectd ${R[collectd.bad]}"
    echo "CPU: schedstat sums the live threads' on-CPU time in ns; /proc stat counts whole ${clk_tck}-Hz ticks (coarse over a ${R[hbc.elapsed]} s window)."
    echo
    echo "hbc plugin discovery+load of ${#PLUGINS[@]} plugins (log line \"plugins loaded in X ms\", median of ${LOAD_RUNS}):"
    printf '  plugin_probe: false  %8s ms   (runs: %s)\n' "$(median <"$tmp/load.noprobe")" "$(paste -sd' ' "$tmp/load.noprobe")"
    printf '  plugin_probe: true   %8s ms   (runs: %s)\n' "$(median <"$tmp/load.probe")" "$(paste -sd' ' "$tmp/load.probe")"
    hw=$(median <"$tmp/wall.hbc"); cw=$(median <"$tmp/wall.collectd")
    echo "whole process, start to exit (wall ms, median of ${LOAD_RUNS}); hbc loads only, collectd also runs one read:"
    printf '  hbc plugins (probe off) %8s ms   collectd -T %8s ms   ratio hbc/cd %s\n' "$hw" "$cw" "$(ratio "$hw" "$cw")"
} >"$report"

cat "$report"
mkdir -p "$here/results"
cp "$report" "$here/results/client-vs-collectd.txt"
echo "written to bench/results/client-vs-collectd.txt" >&2
