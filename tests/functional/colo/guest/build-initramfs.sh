#!/bin/sh
# Build the COLO test guest from the host's Debian packages:
#   OUTDIR/vmlinuz        the installed linux-image-amd64 kernel
#   OUTDIR/initramfs.img  busybox-static, the NIC and disk drivers, ./init
#                         and ./workload
# Usage: build-initramfs.sh OUTDIR GUESTSRC
set -eu

out=$1
src=$2

die() {
    echo "build-initramfs: $*" >&2
    exit 1
}

# The newest installed kernel whose modules are present.
kver=$(ls /lib/modules 2>/dev/null | sort -V | tail -1)
[ -n "$kver" ] && [ -r "/boot/vmlinuz-$kver" ] ||
    die "no kernel in /boot and /lib/modules; install linux-image-amd64"
busybox=/bin/busybox
[ -x "$busybox" ] && "$busybox" --list | grep -qx httpd ||
    die "$busybox is missing or lacks httpd; install busybox-static"

moddir=/lib/modules/$kver
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT
mkdir -p "$root/bin" "$root/dev" "$root/proc" "$root/sys" "$root/tmp" \
         "$root/www" "$root/etc" "$root/lib/modules"
cp "$busybox" "$root/bin/busybox"
ln -s busybox "$root/bin/sh"
install -m 0755 "$src/init" "$root/init"
install -m 0755 "$src/workload" "$root/bin/colo-workload"
cp "$src/index.html" "$root/www/index.html"

# Modules in load order: each one after the modules it depends on.
order=$root/etc/modules.order
: >"$order"
add_module() {
    # Recursive: every variable must be local.
    local rel deps d name
    rel=$(grep -E "^([^:]*/)?$1\.ko(\.[a-z]+)?:" "$moddir/modules.dep" | cut -d: -f1)
    [ -n "$rel" ] || die "module $1 not found in $moddir/modules.dep"
    deps=$(grep -E "^$rel:" "$moddir/modules.dep" | cut -d: -f2)
    for d in $deps; do
        add_module "$(basename "$d" | sed -E 's/\.ko(\.[a-z]+)?$//')"
    done
    name=$(basename "$rel")
    if ! grep -qx "$name" "$order"; then
        case "$rel" in
        *.ko) cp "$moddir/$rel" "$root/lib/modules/$name" ;;
        *.ko.xz) xz -dc "$moddir/$rel" >"$root/lib/modules/${name%.xz}"; name=${name%.xz} ;;
        *.ko.zst) zstd -qdc "$moddir/$rel" >"$root/lib/modules/${name%.zst}"; name=${name%.zst} ;;
        *) die "unknown module format: $rel" ;;
        esac
        echo "$name" >>"$order"
    fi
}
for m in virtio_pci virtio_net virtio_blk e1000 e1000e; do
    add_module "$m"
done

mkdir -p "$out"
(cd "$root" && find . | sort | cpio -o -H newc --quiet -R 0:0) | gzip -6 >"$out/initramfs.img.tmp"
mv "$out/initramfs.img.tmp" "$out/initramfs.img"
cp "/boot/vmlinuz-$kver" "$out/vmlinuz"
