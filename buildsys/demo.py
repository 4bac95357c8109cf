#!/usr/bin/python3
"""The main job: a Linux guest under COLO, and a failover that keeps it up.

    demo.py BUILD

Starts a secondary and a primary QEMU on this host (TCG, loopback only),
each with the project's Linux test guest and user-mode networking that
forwards a local port to the guest's web server.  The primary migrates the
running guest to the secondary with x-colo; COLO then checkpoints it every
second.  The demo fetches a page from the primary, kills the primary,
watches the secondary take over by itself, and fetches the same page from
the secondary.
"""

import os
import socket
import sys
import tempfile
import time
import urllib.request

BUILD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build")
sys.path.insert(0, os.path.join(BUILD, "src", "python"))
from qemu.machine import QEMUMachine  # noqa: E402

QEMU = os.path.join(BUILD, "qemu", "qemu-system-x86_64")
GUEST = os.path.join(BUILD, "qemu", "tests", "functional", "colo")
CHECKPOINT_DELAY_MS = 1000


def say(msg):
    print(f"demo: {msg}", flush=True)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def guest_vm(name, tmp, http_port, incoming=None):
    serial = os.path.join(tmp, f"{name}.log")
    args = ["-accel", "tcg", "-m", "256", "-nodefaults",
            "-kernel", os.path.join(GUEST, "vmlinuz"),
            "-initrd", os.path.join(GUEST, "initramfs.img"),
            "-append", "console=ttyS0 quiet panic=-1 colo.ip=10.0.2.15/24",
            "-chardev", f"file,id=serial0,path={serial}",
            "-serial", "chardev:serial0",
            "-netdev", f"user,id=n0,net=10.0.2.0/24,"
                       f"hostfwd=tcp:127.0.0.1:{http_port}-:80",
            "-device", "e1000,netdev=n0"]
    if incoming:
        args += ["-incoming", incoming]
    vm = QEMUMachine(QEMU, args=args, name=name, base_temp_dir=tmp,
                     log_dir=tmp)
    vm.set_machine("pc")
    vm.launch()
    return vm, serial


def wait_for(what, predicate, timeout=90):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise TimeoutError(f"{what} did not happen within {timeout} s")


def fetch(port):
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10) as r:
        return r.status, r.read().decode().strip()


def colo_caps(vm):
    vm.cmd("migrate-set-capabilities", capabilities=[
        {"capability": "x-colo", "state": True},
        {"capability": "return-path", "state": True}])


def count_events(vm, name):
    return sum(1 for e in vm.get_qmp_events(wait=False)
               if e["event"] == name)


def main():
    tmp = tempfile.mkdtemp(prefix="colo-demo-")
    mig_port, pri_http, sec_http = free_port(), free_port(), free_port()
    primary = secondary = None
    try:
        say("starting the secondary (waiting for the primary)")
        secondary, _ = guest_vm("secondary", tmp, sec_http, "defer")
        colo_caps(secondary)
        secondary.cmd("migrate-incoming", uri=f"tcp:127.0.0.1:{mig_port}")

        say("starting the primary and booting the guest")
        primary, serial = guest_vm("primary", tmp, pri_http)
        wait_for("the guest's ready marker",
                 lambda: "COLO-GUEST-READY" in open(serial).read())
        status, body = fetch(pri_http)
        say(f"primary answers HTTP {status}: {body}")

        colo_caps(primary)
        primary.cmd("migrate-set-parameters",
                    **{"x-checkpoint-delay": CHECKPOINT_DELAY_MS})
        say("migrating to the secondary with x-colo")
        primary.cmd("migrate", uri=f"tcp:127.0.0.1:{mig_port}")
        wait_for("COLO on both sides", lambda:
                 primary.cmd("query-colo-status")["mode"] == "primary" and
                 secondary.cmd("query-colo-status")["mode"] == "secondary")
        say(f"primary: {primary.cmd('query-colo-status')}")
        say(f"secondary: {secondary.cmd('query-colo-status')}")

        checkpoints = 0
        while checkpoints < 3:
            time.sleep(0.5)
            checkpoints += count_events(secondary, "RESUME")
        say(f"{checkpoints} checkpoints applied on the secondary")

        say("killing the primary; nobody tells the secondary")
        primary.kill()
        primary = None
        event = secondary.event_wait("COLO_EXIT", timeout=60)
        say(f"secondary took over by itself: {event['data']}")
        status, body = fetch(sec_http)
        say(f"secondary answers HTTP {status}: {body}")
        say("done: the guest outlived its first host")
        return 0
    finally:
        for vm in (primary, secondary):
            if vm:
                vm.shutdown(timeout=10)


if __name__ == "__main__":
    sys.exit(main())
