#!/bin/sh
# Build the COLO libFuzzer targets with clang and run them side by side.
#
#   fuzz.sh BUILD SECONDS [RUNS]
#
# Each target runs for SECONDS, or, given RUNS, until it has executed RUNS
# inputs (SECONDS is then only the limit).  The targets run at the same
# time, one per core.  They are compiled from the merged tree (BUILD/src)
# against the configured build (BUILD/qemu), with ASan and UBSan.  Each one
# starts from a seed corpus its generator writes, and keeps what it learns
# in BUILD/fuzz/corpus/NAME across runs.  A crash leaves its input in
# BUILD/fuzz/ and makes the script fail.
set -eu

BUILD=$(cd "$1" && pwd)
SECONDS_EACH=$2
RUNS=${3:-}
SRC=$BUILD/src
OUT=$BUILD/fuzz
CC=${FUZZ_CC:-clang-14}

if ! command -v "$CC" >/dev/null 2>&1; then
    echo "fuzz: $CC not found (buildsys/install-deps.sh installs it)" >&2
    exit 1
fi
mkdir -p "$OUT"

INCLUDES="-I$BUILD/qemu -I$SRC/include -I$SRC -I$SRC/host/include/x86_64
  -I$SRC/host/include/generic $(pkg-config --cflags glib-2.0)"
LIBS=$(pkg-config --libs glib-2.0)

targets="fuzz-colo-compare fuzz-colo-rewrite"

# The code under test of a target.
target_sources() {
    case $1 in
    fuzz-colo-compare) echo "net/colo.c net/colo-matcher.c" ;;
    fuzz-colo-rewrite) echo "net/colo.c net/colo-rewrite.c" ;;
    esac
}

# The program that writes a target's seed corpus.
target_seeder() {
    case $1 in
    fuzz-colo-compare) echo "tests/fuzz/colo/colo-fuzz-seeds.c" ;;
    fuzz-colo-rewrite) echo "tests/fuzz/colo/colo-fuzz-rewrite-seeds.c" ;;
    esac
}

for t in $targets; do
    srcs="$SRC/tests/fuzz/colo/$t.c"
    for f in $(target_sources "$t"); do
        srcs="$srcs $SRC/$f"
    done
    $CC -g -O1 -fsanitize=fuzzer,address,undefined \
        -fno-sanitize-recover=undefined $INCLUDES -o "$OUT/$t" $srcs $LIBS
    cc $INCLUDES -o "$OUT/$t-seeds" "$SRC/$(target_seeder "$t")" $LIBS
    rm -rf "$OUT/seeds/$t"
    "$OUT/$t-seeds" "$OUT/seeds/$t"
    mkdir -p "$OUT/corpus/$t"
done

limit="-max_total_time=$SECONDS_EACH"
if [ -n "$RUNS" ]; then
    limit="$limit -runs=$RUNS"
    echo "fuzz: each target until $RUNS executions (at most ${SECONDS_EACH}s)"
else
    echo "fuzz: each target for ${SECONDS_EACH}s"
fi
set --
for t in $targets; do
    echo "fuzz: $t started (log $OUT/$t.log)"
    # Scripts of at most 1 KiB still hold some 90 operations; longer ones
    # halved the executions per second without finding more code.
    "$OUT/$t" $limit -timeout=10 \
        -max_len=1024 -rss_limit_mb=2048 -print_final_stats=1 \
        -artifact_prefix="$OUT/$t-" \
        "$OUT/corpus/$t" "$OUT/seeds/$t" >"$OUT/$t.log" 2>&1 &
    set -- "$@" $!
done

status=0
for t in $targets; do
    pid=$1
    shift
    if ! wait "$pid"; then
        tail -40 "$OUT/$t.log"
        echo "fuzz: $t FAILED, input kept as $OUT/$t-crash-* (log $OUT/$t.log)" >&2
        status=1
        continue
    fi
    executed=$(sed -n 's/^stat::number_of_executed_units: *//p' "$OUT/$t.log")
    echo "fuzz: $t: ${executed:-?} executions, no crash"
    if [ -n "$RUNS" ] && [ "${executed:-0}" -lt "$RUNS" ]; then
        echo "fuzz: $t reached its time limit before $RUNS executions"
    fi
done
exit $status
