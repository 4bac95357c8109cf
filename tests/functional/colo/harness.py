"""Shared pieces of the COLO whole-system tests.

A test is a plain Python program run by meson: exit 0 passes, exit 77 skips
(with the reason printed on a line starting with "SKIP:"), anything else
fails.  The guest is the project's Linux test guest (guest/), started through
the base's python/qemu/machine, inside a network namespace the test creates
and removes itself.
"""

import asyncio
import ctypes
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import uuid

from qemu.machine import QEMUMachine

SKIP_EXIT = 77
READY_MARKER = "COLO-GUEST-READY"
# On a loaded 2-core host a TCG guest can miss the ticks that Linux counts
# to check the PIT's route through the IO-APIC; it then reports an
# "MP-BIOS bug" and switches to a fallback route (one boot under COLO in
# CI never reached its shell after that).  QEMU does wire the PIT to the
# IO-APIC, so the check only misleads here: skip it.
GUEST_TIMER_ARG = "no_timer_check"


def _terminated(signum, frame):
    # meson stops a test that overruns with SIGTERM: unwind, so that the
    # with-blocks stop their QEMUs and delete their namespaces.
    sys.exit(128 + signum)


signal.signal(signal.SIGTERM, _terminated)


def skip(reason):
    print(f"SKIP: {reason}", flush=True)
    sys.exit(SKIP_EXIT)


def log(msg):
    print(msg, flush=True)


def read_text(path):
    """The text of @path (a guest's console log), "" while it is missing."""
    try:
        with open(path, errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


class Cases:
    """A test's cases, each run, timed and reported on one line; a case
    that raises fails (with its traceback) and the next one runs."""

    def __init__(self):
        self.passed = []
        self.failed = []

    def case(self, name, fn, *args):
        began = time.monotonic()
        try:
            detail = fn(*args)
        except Exception as e:      # noqa: BLE001  (reported, counted)
            self.failed.append(name)
            log(f"FAIL {name}: {e!r}")
            traceback.print_exc(file=sys.stdout)
            return
        self.passed.append(name)
        log(f"ok   {name}{': ' + detail if detail else ''} "
            f"({time.monotonic() - began:.1f} s)")

    def summary(self):
        """The last line, "N passed, N failed"; the exit code."""
        log(f"{len(self.passed)} passed, {len(self.failed)} failed"
            + (f": {', '.join(self.failed)}" if self.failed else ""))
        return 1 if self.failed else 0


def env_path(name):
    value = os.environ.get(name)
    if not value:
        raise RuntimeError(f"{name} is not set; run the test through meson test")
    return value


def run(cmd, check=True, timeout=30, **kw):
    return subprocess.run(cmd, check=check, timeout=timeout,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, **kw)


def free_port():
    """A loopback TCP port that was free a moment ago."""
    return free_ports(1)[0]


def free_ports(count):
    """@count distinct loopback TCP ports that were free a moment ago.

    All are held open until the last is chosen, so that the kernel cannot
    hand the same one out twice.
    """
    socks = []
    try:
        for _ in range(count):
            s = socket.socket()
            socks.append(s)
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def colo_capabilities(vm, return_path=True, verify=False, multifd=0):
    """Set what both sides of a COLO pair need before the migration:
    x-colo, return-path (unless told not to), colo-verify if asked, and
    multifd with @multifd channels if that is not 0."""
    caps = ["x-colo"]
    if return_path:
        caps.append("return-path")
    if verify:
        caps.append("colo-verify")
    if multifd:
        caps.append("multifd")
    vm.cmd("migrate-set-capabilities", capabilities=[
        {"capability": c, "state": True} for c in caps])
    if multifd:
        vm.cmd("migrate-set-parameters", **{"multifd-channels": multifd})


def wait_until(what, predicate, timeout=120):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.2)


def wait_event(vm, name, timeout, match=None):
    """The next QMP event @name (matching @match) from @vm, or
    TimeoutError after @timeout seconds.  (QEMUMachine.event_wait takes
    an int timeout for "wait forever": always hand it a float.)"""
    try:
        return vm.event_wait(name, timeout=float(timeout), match=match)
    except asyncio.TimeoutError:
        raise TimeoutError(f"no {name} event from {vm._name} "
                           f"within {timeout} s") from None


def hmp(vm, command):
    """Run a human monitor command through QMP and return its output."""
    return vm.cmd("human-monitor-command", command_line=command)


def decide_failover(vm, timeout=60):
    """The documented decision for a side that lost its peer and waits:
    yank the migration instance, then x-colo-lost-heartbeat.  Returns once
    the side runs alone."""
    status = vm.cmd("query-colo-status")
    if status["mode"] != "none":
        vm.cmd("yank", instances=[{"type": "migration"}])
        vm.cmd("x-colo-lost-heartbeat")
    wait_until("the side on its own", lambda:
               vm.cmd("query-colo-status")["mode"] == "none", timeout)
    wait_until("its VM running", lambda:
               vm.cmd("query-status")["status"] == "running", timeout)


def export_secondary_disk(sec, nbd_port, tls=None):
    """Secondary side of disk replication: its disk, writable over NBD.
    @tls: the server's TLS arguments of nbd-server-start."""
    sec.cmd("nbd-server-start", addr={"type": "inet", "data": {
        "host": "127.0.0.1", "port": str(nbd_port)}}, **(tls or {}))
    sec.cmd("nbd-server-add", device="parent0", writable=True)


def attach_replication(pri, nbd_port, tls_creds=None):
    """Primary side: a replication node to the secondary's disk, added to
    the quorum colo-disk0 as its second child (over TLS with
    @tls_creds)."""
    tls = f",file.tls-creds={tls_creds}" if tls_creds else ""
    out = hmp(pri, "drive_add -n buddy driver=replication,mode=primary,"
                   "file.driver=nbd,file.host=127.0.0.1,"
                   f"file.port={nbd_port},file.export=parent0,"
                   f"node-name=replication0{tls}")
    if out.strip() not in ("", "OK"):
        raise AssertionError(f"drive_add failed: {out}")
    pri.cmd("x-blockdev-change", parent="colo-disk0", node="replication0")


def require_netns():
    """Skip unless this process can create namespaces and tap devices."""
    if os.geteuid() != 0:
        skip("network namespaces and tap devices need root")
    if not os.path.exists("/dev/net/tun"):
        skip("/dev/net/tun is missing")
    probe = f"colo-probe-{os.getpid()}"
    r = run(["ip", "netns", "add", probe], check=False)
    if r.returncode != 0:
        skip(f"cannot create a network namespace: {r.stdout.strip()}")
    run(["ip", "netns", "delete", probe], check=False)


CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


class NetNamespace:
    """A namespace with a bridge at BRIDGE_ADDR and tap devices on it.

    Nothing in it is routed anywhere: guests and clients in the namespace
    talk only to each other.
    """

    NAME_RE = re.compile(r"colo-(\d+)-[0-9a-f]{6}$")

    def __init__(self, bridge_addr="10.0.2.1/24"):
        self.name = f"colo-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.bridge_addr = bridge_addr

    @classmethod
    def reap_stale(cls):
        """Delete the namespaces of test processes that died without
        cleaning up (SIGKILL); a namespace outlives its creator."""
        try:
            names = os.listdir("/run/netns")
        except FileNotFoundError:
            return
        for name in names:
            m = cls.NAME_RE.match(name)
            if m and not os.path.exists(f"/proc/{m.group(1)}"):
                log(f"removing namespace {name}, left by a dead test")
                run(["ip", "netns", "delete", name], check=False)

    def ip(self, *args):
        return run(["ip", "-n", self.name] + list(args))

    def __enter__(self):
        self.reap_stale()
        run(["ip", "netns", "add", self.name])
        try:
            self.ip("link", "set", "lo", "up")
            self.ip("link", "add", "br0", "type", "bridge")
            self.ip("addr", "add", self.bridge_addr, "dev", "br0")
            self.ip("link", "set", "br0", "up")
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def add_tap(self, name):
        self.ip("tuntap", "add", "dev", name, "mode", "tap")
        self.ip("link", "set", name, "master", "br0")
        self.ip("link", "set", name, "up")

    def exec_argv(self):
        """Prefix that runs a command inside the namespace."""
        return ["ip", "netns", "exec", self.name]

    def run(self, cmd, **kw):
        return run(self.exec_argv() + cmd, **kw)

    def call(self, fn, *args):
        """fn(*args) run by a thread of this process inside the namespace.

        setns() moves only the calling thread, so a short-lived thread
        enters the namespace and runs @fn there; sockets it opens stay in
        the namespace afterwards.
        """
        result = {}

        def inside():
            try:
                fd = os.open(f"/var/run/netns/{self.name}", os.O_RDONLY)
                try:
                    if _libc.setns(fd, CLONE_NEWNET) != 0:
                        err = ctypes.get_errno()
                        raise OSError(err, os.strerror(err))
                finally:
                    os.close(fd)
                result["value"] = fn(*args)
            except BaseException as e:
                result["error"] = e

        t = threading.Thread(target=inside)
        t.start()
        t.join()
        if "error" in result:
            raise result["error"]
        return result["value"]

    def connect(self, host, port, timeout=30):
        """A TCP connection from inside the namespace, for this process."""
        return self.call(socket.create_connection, (host, port), timeout)

    def __exit__(self, *exc):
        run(["ip", "netns", "delete", self.name], check=False)
        return False


def vm_state(vm, timeout=5):
    """What QEMU says of its run state and migration, for a failure
    report; never blocks longer than @timeout on a QEMU that hangs."""
    said = []
    try:
        vm._qmp.settimeout(timeout)     # pylint: disable=protected-access
        said.append("status " + vm.cmd("query-status")["status"])
        said.append("migration " + vm.cmd("query-migrate").get("status",
                                                               "none"))
        colo = vm.cmd("query-colo-status")
        said.append(f"COLO {colo['mode']}, last failover "
                    f"{colo.get('reason', 'none')}")
    except Exception as e:      # noqa: BLE001  (part of a failure report)
        said.append(f"QMP: {e!r}")
    finally:
        try:
            vm._qmp.settimeout(None)    # pylint: disable=protected-access
        except Exception:       # noqa: BLE001
            pass
    return "; ".join(said)


class LinuxGuest:
    """The Linux test guest, booted directly from its kernel and initramfs."""

    def __init__(self, name, nic_args, ip="10.0.2.15/24", machine="pc",
                 wrapper=(), extra_args=(), mem="256"):
        guest_dir = env_path("COLO_GUEST_DIR")
        self.tmp = tempfile.mkdtemp(prefix=f"colo-{name}-")
        self.serial = os.path.join(self.tmp, "serial.log")
        args = ["-accel", "tcg", "-m", mem, "-nodefaults", "-no-reboot",
                "-kernel", os.path.join(guest_dir, "vmlinuz"),
                "-initrd", os.path.join(guest_dir, "initramfs.img"),
                "-append", f"console=ttyS0 quiet panic=-1 {GUEST_TIMER_ARG} "
                f"colo.ip={ip}",
                "-chardev", f"file,id=serial0,path={self.serial}",
                "-serial", "chardev:serial0"]
        args += list(nic_args) + list(extra_args)
        self.vm = QEMUMachine(env_path("QEMU_BINARY"), args=args,
                              wrapper=list(wrapper), name=name,
                              base_temp_dir=self.tmp, log_dir=self.tmp)
        self.vm.set_machine(machine)

    def __enter__(self):
        self.vm.launch()
        return self

    def console(self):
        return read_text(self.serial)

    def wait_ready(self, timeout=60):
        """Seconds until the guest printed its ready marker."""
        start = time.monotonic()
        while time.monotonic() - start < timeout:
            if READY_MARKER in self.console():
                return time.monotonic() - start
            if not self.vm.is_running():
                raise RuntimeError("QEMU exited during boot:\n"
                                   + (self.vm.get_log() or "")
                                   + self.console())
            time.sleep(0.2)
        raise TimeoutError(f"guest not ready after {timeout} s "
                           f"({vm_state(self.vm)}); console:\n"
                           + self.console()[-2000:])

    def __exit__(self, *exc):
        try:
            self.vm.shutdown(timeout=10)
        finally:
            subprocess.run(["rm", "-rf", self.tmp], check=False)
        return False
