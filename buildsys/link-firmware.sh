#!/bin/sh
# A QEMU started from the build tree looks for firmware in
# <build>/qemu-bundle/usr/local/share/qemu.  Link Debian's SeaBIOS and iPXE
# and the option ROMs we built there, so pc and q35 boot, -kernel works and
# NICs find their ROMs.
set -eu

build=$1
dest="$build/qemu-bundle/usr/local/share/qemu"
mkdir -p "$dest"

link() {
    [ -e "$1" ] || { echo "link-firmware: $1 is missing" >&2; exit 1; }
    ln -sf "$1" "$dest/$(basename "$1")"
}

for f in /usr/share/seabios/*.bin /usr/lib/ipxe/qemu/*.rom; do
    link "$f"
done
for f in linuxboot_dma.bin linuxboot.bin multiboot_dma.bin pvh.bin kvmvapic.bin; do
    if [ -e "$build/pc-bios/optionrom/$f" ]; then
        link "$build/pc-bios/optionrom/$f"
    fi
done
# Direct kernel boot needs these two; without them -kernel fails at start.
for f in linuxboot_dma.bin kvmvapic.bin; do
    [ -e "$dest/$f" ] || { echo "link-firmware: option ROM $f was not built (is gcc-multilib installed?)" >&2; exit 1; }
done
