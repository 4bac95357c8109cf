#!/bin/sh
# The main job, for now: boot the Linux test guest in the QEMU we built and
# fetch a page from its web server through user-mode networking on loopback.
# Later work turns this into a primary and a secondary VM under COLO.
set -eu

BUILD=$(cd "${1:-build}" && pwd)
qemu=$BUILD/qemu/qemu-system-x86_64
guest=$BUILD/qemu/tests/functional/colo
tmp=$(mktemp -d)
pid=
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

# A free port on 127.0.0.1 for the forwarded HTTP port.
port=$(/usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

echo "demo: booting the test guest under TCG (serial log: $tmp/serial.log)"
"$qemu" -machine pc -accel tcg -m 256 -nodefaults -display none -no-reboot \
    -kernel "$guest/vmlinuz" -initrd "$guest/initramfs.img" \
    -append "console=ttyS0 quiet panic=-1 colo.ip=10.0.2.15/24" \
    -chardev "file,id=serial0,path=$tmp/serial.log" -serial chardev:serial0 \
    -netdev "user,id=n0,net=10.0.2.0/24,hostfwd=tcp:127.0.0.1:$port-:80" \
    -device e1000,netdev=n0 2>"$tmp/qemu.log" &
pid=$!

start=$(date +%s)
until grep -q COLO-GUEST-READY "$tmp/serial.log" 2>/dev/null; do
    if ! kill -0 "$pid" 2>/dev/null; then
        cat "$tmp/qemu.log" >&2
        echo "demo: QEMU exited before the guest was ready" >&2
        exit 1
    fi
    if [ $(($(date +%s) - start)) -gt 60 ]; then
        echo "demo: the guest was not ready within 60 s" >&2
        exit 1
    fi
    sleep 0.5
done
echo "demo: guest ready after $(($(date +%s) - start)) s; GET http://127.0.0.1:$port/"
/usr/bin/python3 - "$port" <<'PY'
import sys, urllib.request
url = f"http://127.0.0.1:{sys.argv[1]}/"
with urllib.request.urlopen(url, timeout=10) as r:
    print(f"demo: HTTP {r.status}")
    print(r.read().decode())
PY
echo "demo: done"
