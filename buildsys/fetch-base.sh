#!/bin/sh
# Put the pinned base QEMU, unpacked with Debian's patches applied, at $1.
#
# The base is Debian's source package qemu 1:10.2.2+ds-1.  Its three files
# come from ../shared/base beside the checkout (or $COLO_BASE_DIR) when that
# folder exists, otherwise from Debian with apt-get source.  Either way they
# must match buildsys/base.sha256 before anything is unpacked.
set -eu

dest=$1
here=$(cd "$(dirname "$0")" && pwd)
repo=$(dirname "$here")
sums="$here/base.sha256"
pkg_version=1:10.2.2+ds-1
dsc=qemu_10.2.2+ds-1.dsc

die() {
    echo "fetch-base: $*" >&2
    exit 1
}

[ -f "$dest/.colo-base-ok" ] && exit 0

srcdir=${COLO_BASE_DIR:-$repo/../shared/base}
work=$(dirname "$dest")/base-download
rm -rf "$work" "$dest"
mkdir -p "$work"

if [ -f "$srcdir/$dsc" ]; then
    for f in $(awk '{print $2}' "$sums"); do
        [ -f "$srcdir/$f" ] || die "$srcdir/$f is missing; restore the base files there or set COLO_BASE_DIR"
        cp "$srcdir/$f" "$work/"
    done
else
    echo "fetch-base: $srcdir has no base; fetching qemu $pkg_version with apt-get source"
    list=/etc/apt/sources.list.d/colo-deb-src.sources
    if [ ! -f "$list" ]; then
        SUDO=; [ "$(id -u)" -eq 0 ] || SUDO=sudo
        $SUDO tee "$list" >/dev/null <<'SRC'
Types: deb-src
URIs: http://deb.debian.org/debian
Suites: bookworm-backports trixie trixie-backports forky sid
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
        $SUDO apt-get -q update >/dev/null || true
    fi
    (cd "$work" && apt-get -q source --download-only "qemu=$pkg_version" >apt.log 2>&1) || {
        tail -5 "$work/apt.log" >&2
        die "apt-get source qemu=$pkg_version failed; put the three base files in $srcdir or set COLO_BASE_DIR"
    }
fi

(cd "$work" && sha256sum --quiet -c "$sums") ||
    die "the base files in $srcdir do not match buildsys/base.sha256; replace them with Debian's qemu $pkg_version"

mkdir -p "$(dirname "$dest")"
dpkg-source --no-copy -x "$work/$dsc" "$dest" >"$work/unpack.log" 2>&1 ||
    die "dpkg-source -x failed, see $work/unpack.log"
rm -rf "$work"
touch "$dest/.colo-base-ok"
