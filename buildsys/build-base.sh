#!/bin/sh
# Build the pinned base QEMU as Debian ships it, without our overlay, for
# benchmarks that compare the two: $BUILD/pristine/qemu/qemu-system-x86_64.
#
# The base is unpacked by fetch-base.sh; it is copied to
# $BUILD/pristine/src so that, seen from its build directory, its sources
# sit at the same relative paths as the merged tree's do from ours, and
# ccache reuses every object the overlay does not change.  Only the system
# emulator is built; nothing here writes to $BUILD/base or $BUILD/src.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
BUILD=$(mkdir -p "${1:-$repo/build}" && cd "${1:-$repo/build}" && pwd)
PY=/usr/bin/python3
top="$BUILD/pristine"

if [ -d /usr/lib/ccache ]; then
    PATH=/usr/lib/ccache:$PATH
    CCACHE_BASEDIR=$top
    CCACHE_NOHASHDIR=1
    export PATH CCACHE_BASEDIR CCACHE_NOHASHDIR
fi
JOBS=${JOBS:-$(nproc)}

# The features of our build (build.sh) but TLS, which the benchmark does
# not use, so that the two binaries differ only by the COLO code.
CONFIGURE_OPTS="--python=$PY --target-list=x86_64-softmmu
  --without-default-features --enable-tcg --enable-kvm --enable-linux-aio
  --enable-slirp --enable-fdt=system --disable-tools --enable-pixman
  --disable-docs --disable-rust --disable-werror --disable-install-blobs
  --enable-replication --enable-colo-proxy"

"$here/fetch-base.sh" "$BUILD/base"
if [ ! -f "$top/src/.colo-base-ok" ]; then
    rm -rf "$top/src"
    mkdir -p "$top"
    cp -a "$BUILD/base" "$top/src"
fi

# Word splitting of the options is wanted here.
# shellcheck disable=SC2086
"$here/configure-once.sh" "$top/src" "$top/qemu" build-base $CONFIGURE_OPTS

echo "build-base: compiling the unmodified base with $JOBS jobs (log: $top/qemu/make.log)"
ninja -C "$top/qemu" -j"$JOBS" qemu-system-x86_64 >"$top/qemu/make.log" 2>&1 || {
    grep -E -A3 '^FAILED|error:' "$top/qemu/make.log" | head -40 >&2
    echo "build-base: compile failed, see $top/qemu/make.log" >&2
    exit 1
}
echo "build-base: $top/qemu/qemu-system-x86_64 is ready"
