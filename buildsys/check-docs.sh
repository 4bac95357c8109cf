#!/bin/sh
# Build QEMU's manual from the merged tree with Sphinx warnings as errors,
# as a docs build with --enable-werror does: a COLO page in no toctree, a
# broken reference or a QAPI doc comment that does not parse fails it.
#   check-docs.sh BUILD
# A build directory of its own ($BUILD/docs), configured for the docs only
# (nothing else is compiled); later runs are incremental.
set -eu

BUILD=$(cd "${1:?usage: check-docs.sh BUILD}" && pwd)
PY=/usr/bin/python3
src="$BUILD/src"
out="$BUILD/docs"

if [ ! -x "$src/configure" ]; then
    echo "check-docs: $src is not a merged tree: run make build first" >&2
    exit 1
fi
opts="--python=$PY --target-list=x86_64-softmmu --without-default-features
  --enable-tcg --enable-tools --enable-replication --enable-colo-proxy
  --enable-docs --enable-werror --disable-rust --disable-install-blobs"
stamp="$out/.colo-configure-opts"
if [ ! -f "$out/build.ninja" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$opts" ]; then
    rm -rf "$out"
    mkdir -p "$out"
    # shellcheck disable=SC2086 # the options are words on purpose
    (cd "$out" && "$src/configure" $opts >configure.log 2>&1) || {
        tail -30 "$out/configure.log" >&2
        echo "check-docs: configure failed, see $out/configure.log" >&2
        exit 1
    }
    echo "$opts" >"$stamp"
fi
if ! grep -q -- ' -W ' "$out/build.ninja"; then
    echo "check-docs: the docs build does not treat warnings as errors" >&2
    exit 1
fi
if ! ninja -C "$out" docs/docs.stamp >"$out/docs.log" 2>&1; then
    grep -v '^\[' "$out/docs.log" | tail -40 >&2
    echo "check-docs: the manual does not build, see $out/docs.log" >&2
    exit 1
fi
for page in colo colo-network colo-cluster; do
    if [ ! -s "$out/docs/manual/system/$page.html" ]; then
        echo "check-docs: docs/system/$page.rst is not in the manual" >&2
        exit 1
    fi
done
echo "check-docs: the manual builds with warnings as errors, COLO pages in it"
