# Shared helpers of the fault-injection scripts (bench/faults/*.sh); sourced, not run.
# shellcheck shell=bash
# Variables set here are used by the scripts that source it (SC2034); `work` is set by them (SC2154).
# shellcheck disable=SC2034,SC2154

faults_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$faults_dir/../.." && pwd)
# Release binaries: BIN (a folder holding hbd, hbc, hb-loadgen and the plugin .so files).
BIN=${BIN:-$root/target/release}
HBD=${HBD:-$BIN/hbd}
HBC=${HBC:-$BIN/hbc}
LOADGEN=${LOADGEN:-$BIN/hb-loadgen}
FLEET=$faults_dir/fleet.py
SECRET=hb-faults-secret-0123456789
TOKEN=hb-faults-token
# Ports of our own, away from hbd's defaults (50003-50005) and the benchmarks.
HB_PORT=${HB_PORT:-46003}
API_PORT=${API_PORT:-46004}
WS_PORT=${WS_PORT:-46005}

[[ -x $HBD ]] || { echo "missing $HBD: build release binaries first (cargo build --release --workspace) or set BIN" >&2; exit 1; }

# Processes we started (killed by faults_cleanup) and extra cleanup commands.
FAULTS_PIDS=()
FAULTS_CLEANUP=()
faults_cleanup() {
    local pid c
    for pid in "${FAULTS_PIDS[@]}"; do
        kill -TERM "$pid" 2>/dev/null || true
    done
    sleep 0.5
    for pid in "${FAULTS_PIDS[@]}"; do
        kill -KILL "$pid" 2>/dev/null || true
    done
    for c in "${FAULTS_CLEANUP[@]}"; do
        eval "$c" || true
    done
    if [[ ${KEEP_TMP:-0} == 1 ]]; then
        echo "kept $work" >&2
    else
        rm -rf "$work"
    fi
}

# A path as results files show it: relative to the checkout, or $BIN/NAME for binaries
# kept elsewhere (results name no folder of one machine).
shown_path() {
    case $1 in
    "$root"/*) echo "${1#"$root"/}" ;;
    *) echo "\$BIN/${1##*/} (BIN outside this checkout)" ;;
    esac
}

# Filter for everything a script prints into its results file: the temporary work folder
# becomes $work, the checkout's own folder is left out.
faults_scrub() {
    sed -u -e "s|$work|\$work|g" -e "s|$root/||g"
}

# header NAME: the first lines of a results file.
header() {
    local rev dirty brev
    rev=$(git -C "$root" rev-parse --short HEAD 2>/dev/null || echo unknown)
    dirty=$(git -C "$root" status --porcelain -- server proto host 2>/dev/null | wc -l)
    brev=$(git -C "$(dirname "$HBD")" rev-parse --short HEAD 2>/dev/null || echo unknown)
    echo "# fault injection: $1 ($(date -u '+%Y-%m-%d %H:%M UTC'))"
    echo "machine: $(nproc) cores, kernel $(uname -r); load at start: $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "scripts: revision $rev$([[ $dirty != 0 ]] && echo " (+ $dirty uncommitted files in server/ proto/ host/)")"
    echo "binaries: $(shown_path "$HBD") (built $(date -u -r "$HBD" '+%Y-%m-%d %H:%M UTC') in a checkout at revision $brev)"
}

# write_config FILE [extra yaml lines...]: hbd config with our secret and token.
write_config() {
    local f=$1
    shift
    {
        echo "secret: \"$SECRET\""
        echo "api_token: \"$TOKEN\""
        printf '%s\n' "$@"
    } >"$f"
}

# start_hbd CFG DATA LOG [prefix command...]: starts hbd in the foreground (in the
# background of this shell); sets HBD_PID. A prefix (e.g. `ip netns exec ns`) may be given.
start_hbd() {
    local cfg=$1 data=$2 log=$3
    shift 3
    "$@" "$HBD" -f -c "$cfg" --hb-port "$HB_PORT" --hbd-port "$API_PORT" --ws-port "$WS_PORT" \
        --data-dir "$data" >>"$log" 2>&1 &
    HBD_PID=$!
    FAULTS_PIDS+=("$HBD_PID")
}

# in_ns CMD...: runs CMD in network namespace API_NS when set (hbd runs there).
in_ns() {
    if [[ -n ${API_NS:-} ]]; then
        ip netns exec "$API_NS" "$@"
    else
        "$@"
    fi
}

# api PATH [curl args]: GET from hbd's API (API_HOST defaults to 127.0.0.1).
api() {
    local path=$1
    shift
    in_ns curl -sS --max-time 10 "$@" "http://${API_HOST:-127.0.0.1}:$API_PORT$path"
}

# wait_api [SECONDS]: until /healthz answers (any status).
wait_api() {
    local n=$(( ${1:-20} * 10 ))
    while (( n-- > 0 )); do
        if in_ns curl -s -o /dev/null --max-time 1 "http://${API_HOST:-127.0.0.1}:$API_PORT/healthz"; then
            return 0
        fi
        sleep 0.1
    done
    echo "hbd's API did not answer on port $API_PORT" >&2
    return 1
}

# all_events OUT: every event in the journal (via the API, paging), one JSON per line.
all_events() {
    local out=$1 before="" page
    : >"$out"
    while :; do
        page=$(api "/api/v1/events?limit=10000${before:+&before=$before}")
        jq -c '.events[]' <<<"$page" >>"$out"
        before=$(jq -r '.next_before // empty' <<<"$page")
        [[ -n $before ]] || break
    done
}

# metric NAME: the sum of a counter over all label sets, from /metrics (lines starting NAME).
metric() {
    api /metrics | awk -v n="$1" '$1 == n || index($1, n "{") == 1 { s += $NF } END { printf "%d\n", s }'
}

# rss_kb PID, threads PID
rss_kb() { awk '/^VmRSS/ { print $2 }' "/proc/$1/status"; }
threads() { awk '/^Threads/ { print $2 }' "/proc/$1/status"; }

# setup_ns SRV CLI: two network namespaces joined by a veth pair (SRV-v on 10.99.0.1/30,
# CLI-v on 10.99.0.2/30), removed again by faults_cleanup. Nothing leaves the machine.
setup_ns() {
    local srv=$1 cli=$2
    ip netns del "$srv" 2>/dev/null || true
    ip netns del "$cli" 2>/dev/null || true
    FAULTS_CLEANUP+=("ip netns del $srv 2>/dev/null" "ip netns del $cli 2>/dev/null")
    ip netns add "$srv"
    ip netns add "$cli"
    ip link add "$srv-v" type veth peer name "$cli-v"
    ip link set "$srv-v" netns "$srv"
    ip link set "$cli-v" netns "$cli"
    ip -n "$srv" addr add 10.99.0.1/30 dev "$srv-v"
    ip -n "$cli" addr add 10.99.0.2/30 dev "$cli-v"
    ip -n "$srv" link set lo up
    ip -n "$cli" link set lo up
    ip -n "$srv" link set "$srv-v" up
    ip -n "$cli" link set "$cli-v" up
}

# copy_plugins DIR: the seven bundled plugins (not the test suite's fault plugins) into DIR.
copy_plugins() {
    mkdir -p "$1"
    local p
    for p in cpu memory disk network filesystem os nagios; do
        cp "$BIN/libhbc_$p.so" "$1/"
    done
}
