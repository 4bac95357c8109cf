#!/bin/sh
# Build QEMU with the COLO overlay:
#   base -> $BUILD/base, merged tree -> $BUILD/src, build -> $BUILD/qemu.
# Every step is skipped or incremental when its inputs did not change.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
BUILD=$(mkdir -p "${1:-$repo/build}" && cd "${1:-$repo/build}" && pwd)
PY=/usr/bin/python3

# Debian's ccache masquerades as cc in /usr/lib/ccache; QEMU's build calls
# plain "cc", so putting that folder first is all it takes.
# With base_dir and no hashing of the working directory, two checkouts in
# different folders (a clean clone, a worktree) share cached objects.
if [ -d /usr/lib/ccache ]; then
    PATH=/usr/lib/ccache:$PATH
    CCACHE_BASEDIR=${CCACHE_BASEDIR:-$BUILD}
    CCACHE_NOHASHDIR=${CCACHE_NOHASHDIR:-1}
    export PATH CCACHE_BASEDIR CCACHE_NOHASHDIR
fi
JOBS=${JOBS:-$(nproc)}

# replication: the COLO migration layer and the replication block driver;
# colo-proxy: the network side (colo-compare and the COLO netfilters);
# gnutls: TLS on every COLO channel (migration, NBD, proxy chardevs).
CONFIGURE_OPTS="--python=$PY --target-list=x86_64-softmmu
  --without-default-features --enable-tcg --enable-kvm --enable-linux-aio
  --enable-slirp --enable-fdt=system --enable-tools --enable-pixman
  --enable-gnutls --disable-docs --disable-rust --disable-werror
  --disable-install-blobs --enable-replication --enable-colo-proxy"

"$here/fetch-base.sh" "$BUILD/base"
$PY "$here/merge_tree.py" "$repo" "$BUILD/base" "$BUILD/src" "$BUILD/colo-manifest.txt"

# Word splitting of the options is wanted here.
# shellcheck disable=SC2086
"$here/configure-once.sh" "$BUILD/src" "$BUILD/qemu" build $CONFIGURE_OPTS

# QEMU's Makefile runs ninja and builds the x86 option ROMs beside it.
echo "build: compiling with $JOBS jobs (log: $BUILD/qemu/make.log)"
make -C "$BUILD/qemu" -j"$JOBS" --no-print-directory >"$BUILD/qemu/make.log" 2>&1 || {
    grep -E -A3 '^FAILED|error:' "$BUILD/qemu/make.log" | grep -v '^cc ' | head -40 >&2
    echo "build: compile failed, see $BUILD/qemu/make.log" >&2
    exit 1
}
$PY "$here/check_no_base_colo.py" "$BUILD"
"$here/link-firmware.sh" "$BUILD/qemu"
ninja -C "$BUILD/qemu" colo-guest >"$BUILD/qemu/guest.log" 2>&1 || {
    tail -20 "$BUILD/qemu/guest.log" >&2
    echo "build: the Linux test guest failed to build, see $BUILD/qemu/guest.log" >&2
    exit 1
}
echo "build: $BUILD/qemu/qemu-system-x86_64 is ready"
