"""A COLO pair of Linux test guests, set up the way the user guide does it.

Two QEMUs on this host under TCG: the primary and the secondary, each with
the guest's NIC on user-mode networking (a loopback port forwarded to the
guest's web server), a virtio disk replicated as documented (quorum with a
replication child over NBD on the primary; replication over active and
hidden qcow2 images on the secondary), and the guest's command shell
(guest/init) forwarded to another loopback port.

COLO can start before the guest boots (the primary starts with -S and
migrates at once), while it boots, or once it is up.  Used by
test_replica_exact.py, soak.py and the verification benchmark.
"""

import os
import re
import shutil
import socket
import threading
import time
import urllib.request

from colo_net import GUEST_IP, primary_proxy, secondary_proxy, tap_nic
from harness import (LinuxGuest, attach_replication, colo_capabilities,
                     decide_failover, env_path, export_secondary_disk,
                     free_ports, hmp, log, run, wait_event, wait_until)

MiB = 1024 * 1024
DISK_SIZE = 16 * MiB

# What a guest kernel prints when something is badly wrong.
CONSOLE_ALARMS = re.compile(r"BUG:|Oops|Kernel panic|general protection|"
                            r"WARNING: CPU|Call Trace")


def console_alarms(text):
    return [ln for ln in text.splitlines() if CONSOLE_ALARMS.search(ln)]


class GuestShell:
    """The guest's command shell, through a forwarded loopback port."""

    def __init__(self, port, connect=None):
        """@connect(port) opens the connection; by default to loopback."""
        self.port = port
        self.connect = connect or (lambda p: socket.create_connection(
            ("127.0.0.1", p), timeout=30))
        self.sock = None
        self.buf = b""
        self.seq = 0

    def _connect(self, timeout=60):
        """Connect, and make sure a shell answers: right after the guest's
        ready marker its listener may not be up yet, and user-mode
        networking then resets the connection."""
        deadline = time.monotonic() + timeout
        while self.sock is None:
            self.buf = b""
            try:
                self.sock = self.connect(self.port)
                self.sock.settimeout(30)
                self._exchange("true", min(20, deadline - time.monotonic()))
            except OSError:
                self.close()
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)

    def run(self, command, timeout=120):
        """Run @command in the guest; return (exit status, output)."""
        self._connect()
        return self._exchange(command, timeout)

    def _exchange(self, command, timeout):
        self.seq += 1
        tag = f"@@done-{self.seq}"
        self.sock.sendall(f"{command}\necho {tag} $?\n".encode())
        pattern = re.compile(re.escape(tag).encode() + rb" (\d+)\n")
        deadline = time.monotonic() + timeout
        while True:
            m = pattern.search(self.buf)
            if m:
                out = self.buf[:m.start()].decode(errors="replace")
                self.buf = self.buf[m.end():]
                return int(m.group(1)), out
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"guest command '{command}' did not end; "
                                   f"output so far: {self.buf[-500:]!r}")
            self.sock.settimeout(left)
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("the guest's command port closed")
            self.buf += chunk

    def check(self, command, timeout=120):
        rc, out = self.run(command, timeout)
        if rc != 0:
            raise AssertionError(f"guest command '{command}' failed "
                                 f"({rc}): {out}")
        return out

    def close(self):
        if self.sock:
            self.sock.close()
            self.sock = None


class HttpLoad:
    """A client fetching the guest's page over and over, in a thread."""

    def __init__(self, port, interval=0.05):
        self.url = f"http://127.0.0.1:{port}/index.html"
        self.interval = interval
        self.ok = 0
        self.failed = 0
        self.stop_flag = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self.stop_flag.is_set():
            try:
                with urllib.request.urlopen(self.url, timeout=10) as r:
                    if r.status == 200 and b"COLO test guest" in r.read():
                        self.ok += 1
                    else:
                        self.failed += 1
            except OSError:
                self.failed += 1
            self.stop_flag.wait(self.interval)

    def start(self):
        self.thread.start()
        return self

    def stop(self):
        self.stop_flag.set()
        self.thread.join(30)


def event_time(event):
    ts = event["timestamp"]
    return ts["seconds"] + ts["microseconds"] / 1e6


def http_get(port):
    url = f"http://127.0.0.1:{port}/index.html"
    with urllib.request.urlopen(url, timeout=30) as r:
        body = r.read().decode()
    if r.status != 200 or "COLO test guest" not in body:
        raise AssertionError(f"bad answer from the guest: {r.status}")


class ColoPair:
    """Both sides of one COLO pair, from start to a failover."""

    def __init__(self, name, machine="pc", nic="e1000", multifd=False,
                 verify=True, start="after", delay_ms=200, mem="256",
                 ns=None, extra_args=None, tls=None):
        """With @ns (a NetNamespace holding tap-p and tap-s), both QEMUs
        run inside it and the guest's NIC sits behind the documented
        network proxy instead of user-mode networking.  @extra_args maps
        "primary" and "secondary" to more arguments for that side.  With
        @tls (colo_tls.TlsPair), every channel between the two sides runs
        over TLS and each side accepts only its peer's name."""
        assert start in ("before", "during", "after")
        self.name = name
        self.ns = ns
        self.machine = machine
        self.nic = nic
        self.multifd = multifd
        self.verify = verify
        self.start = start
        self.delay_ms = delay_ms
        self.mem = mem
        self.extra_args = extra_args or {}
        self.tls = tls
        self.tmp = None
        self.ports = {}
        self.pri = self.sec = None
        self.shells = {}
        self.pauses = []            # the PVM's pauses, in seconds
        self.mismatches = []        # (side, COLO_VERIFY_MISMATCH data)
        self._stopped_at = None

    # --- set-up ----------------------------------------------------------

    def _images(self):
        p = {n: os.path.join(self.tmp, n) for n in
             ("primary.raw", "secondary.raw", "active.qcow2", "hidden.qcow2")}
        for n in ("primary.raw", "secondary.raw"):
            with open(p[n], "wb") as f:
                f.truncate(DISK_SIZE)
        for n in ("active.qcow2", "hidden.qcow2"):
            run([env_path("QEMU_IMG"), "create", "-f", "qcow2", p[n],
                 str(DISK_SIZE)])
        return p

    def _nic(self, side):
        model = {"e1000": "e1000", "virtio": "virtio-net-pci"}[self.nic]
        if self.ns:
            return self._proxied_nic(side, model)
        http, shell = self.ports[f"{side}-http"], self.ports[f"{side}-shell"]
        self.shells[side] = GuestShell(shell)
        return ["-netdev", f"user,id=n0,net=10.0.2.0/24,"
                           f"hostfwd=tcp:127.0.0.1:{http}-:80,"
                           f"hostfwd=tcp:127.0.0.1:{shell}-:2323",
                "-device", f"{model},netdev=n0"]

    # The proxy's chardevs use PROXY_PORT..PROXY_PORT + 4, inside the
    # test's own namespace, where no other port is taken.
    PROXY_PORT = 9400

    def _proxied_nic(self, side, model):
        self.shells[side] = GuestShell(
            2323, connect=lambda port: self.ns.connect(GUEST_IP, port))
        if side == "primary":
            tls = ",tls-creds=tls-server,tls-authz=tls-peer" if self.tls else ""
            return tap_nic("tap-p", model) + primary_proxy(self.PROXY_PORT,
                                                           tls)
        tls = ",tls-creds=tls-client" if self.tls else ""
        return tap_nic("tap-s", model) + secondary_proxy(self.PROXY_PORT, tls)

    def _common(self, side):
        tls = self.tls.qemu_args(side) if self.tls else []
        return tls + ["-device", "virtio-blk-pci,drive=colo-disk0,id=disk0"]

    def _secondary_args(self, img):
        return self._common("secondary") + self.extra_args.get("secondary",
                                                                []) + [
            "-drive", "if=none,id=parent0,driver=raw,"
                      f"file.filename={img['secondary.raw']}",
            "-drive", "if=none,id=childs0,driver=replication,mode=secondary,"
                      "top-id=colo-disk0,file.driver=qcow2,"
                      "file.node-name=active0,"
                      f"file.file.filename={img['active.qcow2']},"
                      "file.backing.driver=qcow2,"
                      "file.backing.node-name=hidden0,"
                      f"file.backing.file.filename={img['hidden.qcow2']},"
                      "file.backing.backing=parent0",
            "-drive", "if=none,id=colo-disk0,driver=quorum,read-pattern=fifo,"
                      "vote-threshold=1,children.0=childs0",
            "-incoming", "defer"]

    def _primary_args(self, img):
        args = self._common("primary") + self.extra_args.get("primary",
                                                              []) + [
            "-drive", "if=none,id=colo-disk0,driver=quorum,read-pattern=fifo,"
                      "vote-threshold=1,children.0.driver=raw,"
                      f"children.0.file.filename={img['primary.raw']}"]
        if self.start == "before":
            args.append("-S")
        return args

    def __enter__(self):
        self.tmp = os.path.join("/tmp", f"colo-pair-{os.getpid()}-{self.name}")
        shutil.rmtree(self.tmp, ignore_errors=True)
        os.makedirs(self.tmp)
        img = self._images()
        names = ("migration", "nbd", "primary-http", "secondary-http",
                 "primary-shell", "secondary-shell")
        if self.ns:
            self.ports = {"migration": self.PROXY_PORT + 3,
                          "nbd": self.PROXY_PORT + 10}
        else:
            self.ports = dict(zip(names, free_ports(len(names))))
        where = {}
        if self.ns:
            where = {"ip": f"{GUEST_IP}/24", "wrapper": self.ns.exec_argv()}
        self.sec = LinuxGuest("secondary", self._nic("secondary"),
                              machine=self.machine, mem=self.mem,
                              extra_args=self._secondary_args(img), **where)
        self.pri = LinuxGuest("primary", self._nic("primary"),
                              machine=self.machine, mem=self.mem,
                              extra_args=self._primary_args(img), **where)
        try:
            self.sec.__enter__()
            try:
                self.pri.__enter__()
            except BaseException:
                self.sec.__exit__(None, None, None)
                raise
        except BaseException:
            shutil.rmtree(self.tmp, ignore_errors=True)
            raise
        return self

    def __exit__(self, exc_type, *exc):
        for shell in self.shells.values():
            shell.close()
        for g in (self.pri, self.sec):
            try:
                g.vm.kill()
            except Exception:
                pass
            if exc_type:
                # What QEMU itself said: an abort, an error, a crash.
                log(f"--- {g.vm._name} QEMU output ---\n"
                    f"{(g.vm.get_log() or '')[-3000:]}"
                    f"(exit code {g.vm.exitcode()})")
            try:
                g.__exit__(None, None, None)
            except Exception:
                pass
        shutil.rmtree(self.tmp, ignore_errors=True)
        return False

    def _caps(self, vm):
        colo_capabilities(vm, verify=self.verify,
                          multifd=2 if self.multifd else 0)

    def start_colo(self):
        """The documented bring-up, secondary first, at the chosen moment."""
        pri, sec = self.pri.vm, self.sec.vm
        if self.start == "during":
            time.sleep(3)
            booted = "COLO-GUEST-READY" in self.pri.console()
            log(f"{self.name}: COLO starts {'after' if booted else 'during'}"
                " the guest's boot")
        elif self.start == "after":
            self.pri.wait_ready()

        self.listen()
        self.attach_disk()
        self.migrate()
        wait_until("COLO on both sides", lambda:
                   pri.cmd("query-colo-status")["mode"] == "primary" and
                   sec.cmd("query-colo-status")["mode"] == "secondary")

    def listen(self):
        """The secondary waits for the primary: NBD server and incoming
        migration (over TLS, accepting only the primary, with @tls)."""
        sec = self.sec.vm
        self._caps(sec)
        server_tls = None
        if self.tls:
            server_tls = {"tls-creds": "tls-server", "tls-authz": "tls-peer"}
            sec.cmd("migrate-set-parameters", **server_tls)
        export_secondary_disk(sec, self.ports["nbd"], tls=server_tls)
        sec.cmd("migrate-incoming",
                uri=f"tcp:127.0.0.1:{self.ports['migration']}")

    def attach_disk(self):
        """The primary's replication link to the secondary's disk."""
        attach_replication(self.pri.vm, self.ports["nbd"],
                           tls_creds="tls-client" if self.tls else None)

    def migrate(self):
        """The primary starts the migration that becomes COLO."""
        pri = self.pri.vm
        self._caps(pri)
        params = {"x-checkpoint-delay": self.delay_ms}
        if self.tls:
            params["tls-creds"] = "tls-client"
        pri.cmd("migrate-set-parameters", **params)
        pri.cmd("migrate", uri=f"tcp:127.0.0.1:{self.ports['migration']}")

    # --- while COLO runs -------------------------------------------------

    def verified(self, vm):
        status = vm.cmd("query-colo-status")
        return (status.get("verified-checkpoints", 0),
                status.get("verify-mismatches", 0))

    def wait_verified(self, count, timeout=600):
        """Until the secondary has verified @count checkpoints in all."""
        wait_until(f"{count} verified checkpoints",
                   lambda: self.verified(self.sec.vm)[0] >= count, timeout)

    def poll_events(self):
        """Collect what both QEMUs reported since the last call: the PVM's
        pauses (STOP to RESUME) and any verification mismatch."""
        for side, g in (("primary", self.pri), ("secondary", self.sec)):
            for e in g.vm.get_qmp_events(wait=False):
                if e["event"] == "COLO_VERIFY_MISMATCH":
                    self.mismatches.append((side, e["data"]))
                elif side != "primary":
                    continue
                elif e["event"] == "STOP":
                    self._stopped_at = event_time(e)
                elif e["event"] == "RESUME" and self._stopped_at:
                    self.pauses.append(event_time(e) - self._stopped_at)
                    self._stopped_at = None

    def alarms(self):
        """Kernel complaints on either guest's console."""
        return {side: console_alarms(g.console())
                for side, g in (("primary", self.pri),
                                ("secondary", self.sec))}

    # --- failover --------------------------------------------------------

    def fail_over(self, lose):
        """Kill one side; the other reports it, waits, and carries on
        alone when told to, as documented."""
        lost, survivor = ((self.pri, self.sec) if lose == "primary"
                          else (self.sec, self.pri))
        lost.vm.kill()
        event = wait_event(survivor.vm, "COLO_EXIT", 60)
        assert event["data"]["reason"] == "error", event
        # It waits for a decision; the test decides.
        status = survivor.vm.cmd("query-colo-status")
        assert status["reason"] == "peer-lost", status
        decide_failover(survivor.vm)
        self.leave_replication("primary" if lose == "secondary"
                               else "secondary")
        return survivor

    def leave_replication(self, survivor):
        """What the documented procedure does to the survivor's disk once
        it runs alone: the primary drops its replication child, the
        secondary stops exporting its disk."""
        if survivor == "primary":
            self.pri.vm.cmd("x-blockdev-change", parent="colo-disk0",
                            child="children.1")
            out = hmp(self.pri.vm, "drive_del replication0")
            if out.strip():
                raise AssertionError(f"drive_del: {out}")
        else:
            self.sec.vm.cmd("nbd-server-stop")

    def http_port(self, side):
        return self.ports[f"{side}-http"]
