#!/usr/bin/python3
"""The main job: a Linux guest under COLO, and a failover that keeps it up.

    demo.py BUILD

Starts a secondary and a primary QEMU on this host (TCG), with the
project's Linux test guest.  The primary migrates the running guest to the
secondary with x-colo; COLO then checkpoints it every second.

As root, the demo runs the whole thing: both QEMUs on tap devices in a
network namespace it creates (and removes), with the network proxy
(filter-mirror, filter-redirector, colo-compare, filter-rewriter).  A
client opens a TCP connection to the guest's echo server, COLO compares
the two guests' answers, then the primary is killed.  The secondary
reports the loss and waits, as COLO always does (it cannot tell a dead
primary from a broken link); the demo then plays the cluster manager that
decides: it yanks the migration connection and sends x-colo-lost-heartbeat,
the secondary takes over, and the same TCP connection carries on.
(colo-auto-failover would have the secondary go on by itself, at the risk
of two live copies after a mere network partition; the demo does not use
it.)

Without root (no namespaces), it uses user-mode networking instead: it
fetches a page from the primary, kills the primary, decides for the
secondary, and fetches the same page from the secondary.
"""

import os
import sys
import tempfile
import time
import urllib.request

BUILD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build")
QEMU = os.path.join(BUILD, "qemu", "qemu-system-x86_64")
GUEST = os.path.join(BUILD, "qemu", "tests", "functional", "colo")
# The functional tests' helpers set up the guest and the network proxy.
os.environ.setdefault("QEMU_BINARY", QEMU)
os.environ.setdefault("COLO_GUEST_DIR", GUEST)
sys.path.insert(0, os.path.join(BUILD, "src", "python"))
sys.path.insert(0, os.path.join(BUILD, "src", "tests", "functional", "colo"))
from qemu.machine import QEMUMachine  # noqa: E402
import colo_net  # noqa: E402
import harness  # noqa: E402
CHECKPOINT_DELAY_MS = 1000


def say(msg):
    print(f"demo: {msg}", flush=True)


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


def decide(vm, event):
    """Play the cluster manager for a secondary that lost its primary."""
    say(f"secondary reports the loss: {event['data']}; it waits, its VM "
        f"stopped: {vm.cmd('query-colo-status')}")
    say("deciding for the secondary, as a cluster manager would: yank, then "
        "x-colo-lost-heartbeat")
    harness.decide_failover(vm)
    say(f"secondary runs alone: {vm.cmd('query-colo-status')}")


def count_events(vm, name):
    return sum(1 for e in vm.get_qmp_events(wait=False)
               if e["event"] == name)


def can_use_namespaces():
    if os.geteuid() != 0 or not os.path.exists("/dev/net/tun"):
        return False
    probe = f"colo-demo-probe-{os.getpid()}"
    if harness.run(["ip", "netns", "add", probe], check=False).returncode:
        return False
    harness.run(["ip", "netns", "delete", probe], check=False)
    return True


def network_demo():
    base = 9300
    with harness.NetNamespace(bridge_addr="10.0.2.1/24") as ns:
        say(f"network namespace {ns.name}: client 10.0.2.1 on bridge br0")
        ns.add_tap("tap-p")
        ns.ip("link", "add", "br1", "type", "bridge")
        ns.ip("link", "set", "br1", "up")
        ns.ip("tuntap", "add", "dev", "tap-s", "mode", "tap")
        ns.ip("link", "set", "tap-s", "master", "br1")
        ns.ip("link", "set", "tap-s", "up")
        ip = f"{colo_net.GUEST_IP}/24"
        say("starting the primary with filter-mirror, filter-redirector "
            "and colo-compare")
        with harness.LinuxGuest("primary", colo_net.tap_nic("tap-p"), ip=ip,
                                wrapper=ns.exec_argv(),
                                extra_args=colo_net.primary_proxy(base)) \
                as pri, \
             harness.LinuxGuest("secondary", colo_net.tap_nic("tap-s"), ip=ip,
                                wrapper=ns.exec_argv(),
                                extra_args=["-incoming", "defer"]
                                + colo_net.secondary_proxy(base)) as sec:
            say("started the secondary with filter-redirector and "
                "filter-rewriter, waiting for the primary")
            pri.wait_ready()
            colo_net.colo_caps(sec.vm)
            sec.vm.cmd("migrate-incoming", uri=f"tcp:127.0.0.1:{base + 3}")
            colo_net.colo_caps(pri.vm)
            pri.vm.cmd("migrate-set-parameters",
                       **{"x-checkpoint-delay": CHECKPOINT_DELAY_MS})
            say("migrating to the secondary with x-colo")
            pri.vm.cmd("migrate", uri=f"tcp:127.0.0.1:{base + 3}")
            wait_for("COLO on both sides", lambda:
                     pri.vm.cmd("query-colo-status")["mode"] == "primary"
                     and sec.vm.cmd("query-colo-status")["mode"]
                     == "secondary")
            sec.vm.event_wait("RESUME", timeout=60)
            say("COLO is running; the secondary's tap is not on the "
                "client's bridge: its answers go to colo-compare only")

            client = colo_net.Client(ns)
            try:
                client.do("open demo", retry_for=30)
                for i in range(3):
                    client.do(f"echo demo hello-{i}")
                client.do("http")
                say("client: TCP echo connection open, 3 echoes and an "
                    "HTTP page, each answer matched against the secondary's")
                say("colo-compare: " + ", ".join(
                    f"{k} {v}" for k, v in colo_net.compare_counters(
                        pri.vm, ("matched", "mismatches",
                                 "checkpoint-requests")).items()))

                say("killing the primary; nobody tells the secondary")
                pri.vm.kill()
                ns.ip("link", "delete", "tap-p")
                ns.ip("link", "set", "tap-s", "master", "br0")
                event = sec.vm.event_wait("COLO_EXIT", timeout=60)
                decide(sec.vm, event)
                say("the secondary's tap now sits where the primary's was")
                client.do("echo demo still-there", retry_for=60)
                client.do("http")
                say("client: the same TCP connection echoes again, now from "
                    "the secondary, and HTTP works")
            finally:
                client.close()
    say("done: the guest and its TCP clients outlived the first host")
    return 0


def main():
    if can_use_namespaces():
        return network_demo()
    say("not root or no network namespaces: a demo without the network "
        "proxy, over user-mode networking")
    tmp = tempfile.mkdtemp(prefix="colo-demo-")
    mig_port, pri_http, sec_http = harness.free_ports(3)
    primary = secondary = None
    try:
        say("starting the secondary (waiting for the primary)")
        secondary, _ = guest_vm("secondary", tmp, sec_http, "defer")
        harness.colo_capabilities(secondary)
        secondary.cmd("migrate-incoming", uri=f"tcp:127.0.0.1:{mig_port}")

        say("starting the primary and booting the guest")
        primary, serial = guest_vm("primary", tmp, pri_http)
        wait_for("the guest's ready marker",
                 lambda: "COLO-GUEST-READY" in open(serial).read())
        status, body = fetch(pri_http)
        say(f"primary answers HTTP {status}: {body}")

        harness.colo_capabilities(primary)
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
        decide(secondary, event)
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
