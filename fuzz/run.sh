#!/bin/sh
# Runs the fuzz targets (docs/fuzzing.md).
#
#   fuzz/run.sh                      every target for 120 s each
#   fuzz/run.sh TARGET|all [SECONDS] [libFuzzer options...]
#   fuzz/run.sh cmin TARGET|all      minimise the committed corpora in place
#
# One fuzzer process at a time: libFuzzer's default (no -jobs/-workers, which would
# fork children and send their output to fuzz-N.log); the build machines are shared.
# cargo-fuzz needs nightly compiler flags; RUSTC_BOOTSTRAP=1 allows them on stable.
# Targets are built with debug assertions (-a), so arithmetic overflow is a crash too.
# A crash leaves its input in fuzz/artifacts/TARGET/; reproduce it with
#   RUSTC_BOOTSTRAP=1 cargo fuzz run -a TARGET fuzz/artifacts/TARGET/crash-...
set -eu

cd "$(dirname "$0")"
export RUSTC_BOOTSTRAP=1
TARGETS="heartbeat_decode config threshold_range nagios_output journal_reader rest_bodies"

command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked

if [ "${1:-}" = cmin ]; then
    shift
    [ "${1:-all}" = all ] && set -- $TARGETS
    for t in "$@"; do
        cargo fuzz cmin -a "$t" "corpus/$t"
    done
    exit 0
fi

what=${1:-all}
seconds=${2:-120}
[ $# -ge 2 ] && shift 2 || shift $#
[ "$what" = all ] && what=$TARGETS

for t in $what; do
    mkdir -p "corpus/$t"
    dict=
    [ -f "dict/$t.dict" ] && dict="-dict=dict/$t.dict"
    echo "== $t: $seconds s" >&2
    cargo fuzz run -a "$t" "corpus/$t" -- \
        -max_total_time="$seconds" -print_final_stats=1 $dict "$@"
done
