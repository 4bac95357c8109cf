#!/bin/sh
# Configure QEMU from SRC in BUILDDIR, unless it was configured there with
# the same options already:  configure-once.sh SRC BUILDDIR WHO OPTION...
# WHO prefixes the messages.  The options are remembered in BUILDDIR.
set -eu

src=$1 dir=$2 who=$3
shift 3
mkdir -p "$dir"
stamp="$dir/.colo-configure-opts"
opts="$*"
if [ -f "$dir/build.ninja" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$opts" ]; then
    exit 0
fi
echo "$who: configuring in $dir"
rm -f "$stamp"
# The options are words: each was passed as one argument.
(cd "$dir" && "$src/configure" "$@" >configure.log 2>&1) || {
    tail -30 "$dir/configure.log" >&2
    echo "$who: configure failed, see $dir/configure.log" >&2
    exit 1
}
echo "$opts" >"$stamp"
