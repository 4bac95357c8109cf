#!/bin/sh
# Build the COLO libFuzzer targets with clang and run each for a while.
#
#   fuzz.sh BUILD SECONDS
#
# The targets are compiled from the merged tree (BUILD/src) against the
# configured build (BUILD/qemu), with ASan and UBSan.  Each one starts from
# a seed corpus its generator writes, and keeps what it learns in
# BUILD/fuzz/corpus/NAME across runs.  A crash leaves its input in
# BUILD/fuzz/ and makes the script fail.
set -eu

BUILD=$(cd "$1" && pwd)
SECONDS_EACH=$2
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

# target: its source, the seed generator, and the sources under test.
targets="fuzz-colo-compare fuzz-colo-rewrite"
sources_fuzz_colo_compare="tests/fuzz/colo/fuzz-colo-compare.c
  net/colo.c net/colo-matcher.c"
seeds_fuzz_colo_compare="tests/fuzz/colo/colo-fuzz-seeds.c"
sources_fuzz_colo_rewrite="tests/fuzz/colo/fuzz-colo-rewrite.c
  net/colo.c net/colo-rewrite.c"
seeds_fuzz_colo_rewrite="tests/fuzz/colo/colo-fuzz-rewrite-seeds.c"

status=0
for t in $targets; do
    var=$(echo "$t" | tr - _)
    srcs=""
    for f in $(eval echo "\$sources_$var"); do
        srcs="$srcs $SRC/$f"
    done
    seedgen=$SRC/$(eval echo "\$seeds_$var")

    $CC -g -O1 -fsanitize=fuzzer,address,undefined \
        -fno-sanitize-recover=undefined $INCLUDES -o "$OUT/$t" $srcs $LIBS
    cc $INCLUDES -o "$OUT/$t-seeds" "$seedgen" $LIBS
    rm -rf "$OUT/seeds/$t"
    "$OUT/$t-seeds" "$OUT/seeds/$t"
    mkdir -p "$OUT/corpus/$t"

    echo "fuzz: $t for ${SECONDS_EACH}s"
    # Scripts of at most 1 KiB still hold some 90 operations; longer ones
    # halved the executions per second without finding more code.
    if ! "$OUT/$t" -max_total_time="$SECONDS_EACH" -timeout=10 \
            -max_len=1024 -rss_limit_mb=2048 -print_final_stats=1 \
            -artifact_prefix="$OUT/$t-" \
            "$OUT/corpus/$t" "$OUT/seeds/$t" >"$OUT/$t.log" 2>&1; then
        tail -40 "$OUT/$t.log"
        echo "fuzz: $t FAILED, input kept as $OUT/$t-crash-* (log $OUT/$t.log)" >&2
        status=1
        continue
    fi
    grep -E "stat::number_of_executed_units|DONE" "$OUT/$t.log" | tail -2
done
exit $status
