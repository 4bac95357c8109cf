#!/bin/sh
# Install the Debian packages that building QEMU with COLO, booting the test
# guest and running the test suite need.  Idempotent: when everything is
# present it prints nothing and touches nothing.
#
# Meson >= 1.5 is required by the base; Debian 12 ships 1.0, so meson alone is
# taken from Debian 13 through an apt entry pinned below every bookworm source.
set -eu

# Build: compiler, QEMU's required libraries and the features we configure.
BUILD_PKGS="gcc gcc-multilib make ninja-build pkg-config python3 python3-venv
  python3-setuptools libglib2.0-dev libpixman-1-dev zlib1g-dev libaio-dev
  libslirp-dev libfdt-dev libgnutls28-dev flex bison ccache dpkg-dev xz-utils
  patch git"
# Run time: firmware the pc and q35 machines load.
RUN_PKGS="seabios ipxe-qemu"
# Test guest: a Debian kernel and busybox packed into an initramfs.
GUEST_PKGS="linux-image-amd64 busybox-static cpio kmod"
# Network tests: namespaces, bridges and tap devices; nft cuts links.
NET_PKGS="iproute2 nftables"
# Fuzz targets: clang with libFuzzer and the sanitizer runtimes.
FUZZ_PKGS="clang-14 libclang-rt-14-dev"
# A test holds one QEMU thread at a chosen line while the others run.
DEBUG_PKGS="gdb"
# Cluster tests: real Corosync + Pacemaker nodes built from namespaces.
CLUSTER_PKGS="corosync pacemaker crmsh resource-agents fence-agents"
# The docs build (buildsys/check-docs.sh), as QEMU's configure wants it.
DOCS_PKGS="python3-sphinx python3-sphinx-rtd-theme"
# The TLS tests make their own certificates with certtool.
TLS_PKGS="gnutls-bin"

MESON_MIN=1.5

if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1; then
        SUDO=sudo
    else
        echo "install-deps: run as root or install sudo" >&2
        exit 1
    fi
else
    SUDO=
fi

export DEBIAN_FRONTEND=noninteractive
APT_GET="$SUDO apt-get -y -q -o Dpkg::Use-Pty=0"
updated=

apt_update_once() {
    if [ -z "$updated" ]; then
        $APT_GET update >/dev/null
        updated=1
    fi
}

missing=
for p in $BUILD_PKGS $RUN_PKGS $GUEST_PKGS $NET_PKGS $FUZZ_PKGS $DEBUG_PKGS \
         $CLUSTER_PKGS $DOCS_PKGS $TLS_PKGS; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed'; then
        missing="$missing $p"
    fi
done
if [ -n "$missing" ]; then
    echo "install-deps: installing$missing"
    apt_update_once
    $APT_GET install --no-install-recommends $missing >/dev/null
fi

meson_ok() {
    v=$(meson --version 2>/dev/null) || return 1
    dpkg --compare-versions "$v" ge "$MESON_MIN"
}

if ! meson_ok; then
    src=/etc/apt/sources.list.d/colo-trixie.sources
    pin=/etc/apt/preferences.d/colo-trixie
    if [ ! -f "$src" ]; then
        echo "install-deps: adding a low-priority Debian 13 (trixie) entry for meson"
        $SUDO tee "$src" >/dev/null <<'SRC'
Types: deb
URIs: http://deb.debian.org/debian
Suites: trixie
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
        # Priority 100: never chosen over bookworm unless asked for by name.
        $SUDO tee "$pin" >/dev/null <<'PIN'
Package: *
Pin: release n=trixie
Pin-Priority: 100
PIN
        updated=
    fi
    apt_update_once
    echo "install-deps: installing meson from trixie"
    # meson/trixie takes only meson itself from trixie; its dependencies
    # stay bookworm's.
    $APT_GET install --no-install-recommends meson/trixie >/dev/null
    if ! meson_ok; then
        echo "install-deps: meson >= $MESON_MIN is still missing after install" >&2
        exit 1
    fi
fi
