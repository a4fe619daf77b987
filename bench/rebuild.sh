#!/usr/bin/env bash
# Incremental rebuild of hbd after touching one file of the notifications and one of the
# registry, before and after the crate split (issue 12), in the same run: two worktrees
# (BEFORE, default cf6d783, the last commit before the split; AFTER, default HEAD), each
# with its own target folder, built once, then ROUNDS rounds alternating between them.
# Prints the median of each and the ratio after/before. Debug builds, as a developer
# rebuilds. Output: stdout and bench/results/rebuild.txt.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
BEFORE=${BEFORE:-cf6d783}
AFTER=${AFTER:-HEAD}
ROUNDS=${ROUNDS:-3}
work=$(mktemp -d -t hb-rebuild.XXXXXX)
cleanup() {
    git -C "$root" worktree remove --force "$work/before" 2>/dev/null || true
    git -C "$root" worktree remove --force "$work/after" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
git -C "$root" worktree add -q --detach "$work/before" "$BEFORE"
git -C "$root" worktree add -q --detach "$work/after" "$AFTER"

# The files touched, in each layout.
declare -A notify=([before]=server/src/notify/policy.rs [after]=server/notify/src/policy.rs)
declare -A registry=([before]=server/src/registry.rs [after]=server/core/src/registry.rs)

build() { (cd "$work/$1" && CARGO_TARGET_DIR="$work/target-$1" cargo build -q -p hbd 2>>"$work/build.log") || { echo "build of $1 failed:" >&2; tail -20 "$work/build.log" >&2; exit 1; }; }
timed() {  # side, file: touch it (append and remove a comment, so the content changes) and time the build
    local f="$work/$1/$2"
    echo "// touched" >>"$f"
    local t0 t1
    t0=$(date +%s.%N)
    build "$1"
    t1=$(date +%s.%N)
    sed -i '$ d' "$f"
    build "$1"   # back to the committed state, untimed
    echo "$t1 - $t0" | bc
}
for side in before after; do build "$side"; done
declare -A times
for _ in $(seq "$ROUNDS"); do
    for side in before after; do
        times[$side-notify]+="$(timed "$side" "${notify[$side]}") "
        times[$side-registry]+="$(timed "$side" "${registry[$side]}") "
    done
done
median() { tr ' ' '\n' | grep -v '^$' | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
mkdir -p "$here/results"
{
    echo "# hbd incremental rebuild ($(date -u '+%Y-%m-%d %H:%M UTC'))"
    echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); load at start $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "before: $(git -C "$root" rev-parse --short "$BEFORE") (one server crate); after: $(git -C "$root" rev-parse --short "$AFTER") (hbd-core, hbd-journal, hbd-notify, hbd-dyndns, hbd)"
    echo "cargo build -p hbd (debug) after appending a comment to one file; $ROUNDS rounds alternating, medians (s)"
    for what in notify registry; do
        b=$(echo "${times[before-$what]}" | median)
        a=$(echo "${times[after-$what]}" | median)
        printf '%-9s before %6.1f s  after %6.1f s  after/before %.2f   (all: before %s| after %s)\n' \
            "$what" "$b" "$a" "$(echo "$a / $b" | bc -l)" "${times[before-$what]}" "${times[after-$what]}"
    done
} | tee "$here/results/rebuild.txt"
