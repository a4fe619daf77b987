#!/bin/sh
# Runs the fuzz targets (docs/fuzzing.md).
#
#   fuzz/run.sh                      every target for 120 s each
#   fuzz/run.sh [--save] TARGET|all [SECONDS] [libFuzzer options...]
#   fuzz/run.sh cmin TARGET|all      minimise the corpora and save them (as --save does)
#   fuzz/run.sh unpack TARGET|all    only unpack the committed corpora
#   fuzz/run.sh pack TARGET|all      only write corpus/TARGET/ back to corpus/TARGET.tar.gz
#
# The corpora are committed as one archive per target, corpus/TARGET.tar.gz (thousands of
# small files would otherwise be most of the repository's files). Each run unpacks the
# archive into corpus/TARGET/ (ignored by git) first; --save minimises that folder after
# the run (`cargo fuzz cmin`) and writes the archive again. The archives are reproducible:
# the same files give the same bytes (sorted names, fixed owner, mode and time, gzip -n).
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

# corpus/TARGET.tar.gz -> corpus/TARGET/ (files already there are kept).
unpack() {
    mkdir -p "corpus/$1"
    if [ -f "corpus/$1.tar.gz" ]; then
        tar -xzf "corpus/$1.tar.gz" -C corpus
    fi
}

# corpus/TARGET/ -> corpus/TARGET.tar.gz, byte for byte the same for the same files.
pack() {
    [ -d "corpus/$1" ] || { echo "no corpus/$1/ to pack" >&2; exit 1; }
    tmp=$(mktemp "corpus/.$1.XXXXXX")
    (cd corpus && find "$1" -type f -print | LC_ALL=C sort |
        tar --create --file=- --no-recursion --files-from=- --format=gnu \
            --owner=0 --group=0 --numeric-owner --mode=a=r,u+w --mtime=@0) |
        gzip -n -9 >"$tmp"
    chmod 644 "$tmp"
    mv "$tmp" "corpus/$1.tar.gz"
    echo "corpus/$1.tar.gz: $(find "corpus/$1" -type f | wc -l) files" >&2
}

targets() {
    if [ "${1:-all}" = all ]; then echo "$TARGETS"; else echo "$1"; fi
}

case "${1:-}" in
unpack | pack)
    cmd=$1
    for t in $(targets "${2:-all}"); do $cmd "$t"; done
    exit 0
    ;;
esac

command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked

if [ "${1:-}" = cmin ]; then
    for t in $(targets "${2:-all}"); do
        unpack "$t"
        cargo fuzz cmin -a "$t" "corpus/$t"
        pack "$t"
    done
    exit 0
fi

save=false
if [ "${1:-}" = --save ]; then
    save=true
    shift
fi
what=$(targets "${1:-all}")
seconds=${2:-120}
[ $# -ge 2 ] && shift 2 || shift $#

for t in $what; do
    unpack "$t"
    dict=
    [ -f "dict/$t.dict" ] && dict="-dict=dict/$t.dict"
    echo "== $t: $seconds s" >&2
    cargo fuzz run -a "$t" "corpus/$t" -- \
        -max_total_time="$seconds" -print_final_stats=1 $dict "$@"
    if $save; then
        cargo fuzz cmin -a "$t" "corpus/$t"
        pack "$t"
    fi
done
