#!/usr/bin/env python3
"""qemu-colo runs a COLO pair through a whole life: protect, failover,
re-protect with a disk resync, failover again.

Both nodes are on this host, inside a network namespace the test creates:
node n1 on 127.0.0.1, node n2 on 127.0.0.2, each with its own run
directory, disk image and tap device (tap-p, tap-s) for the guest's NIC,
clients on the bridge br0.  The VM has a second NIC and a second disk as
well: the proxy must cover the one, replication the other.  Every step goes through the tool, run in the
namespace as a resource agent would run it:

  n2: start secondary          waiting-for-primary
  n1: start primary            the guest runs alone; it boots
  n1: protect                  COLO runs; HTTP through colo-compare;
                               the guest writes its disk all along
  kill -9 n1's QEMU            n2 reports the lost peer and waits
  n2: failover                 its tap goes on the bridge; HTTP answers;
                               the disk has the acknowledged writes; the
                               guest writes a mark that n1's image lacks
  n1: start secondary
  n2: protect --resync         the disk is copied to n1, COLO runs again
                               (timed); status answers within 3 s all the
                               while; the guest writes its disk again
  kill -9 n2's QEMU, n1: failover   same checks, on n1, and n1's guest
                               reads the mark, so does the host in n1's
                               image once it stopped
  n1: stop                     no QEMU left; status says so

Each step checks `status` (exit code, role, colo); at the end neither guest
console shows a kernel complaint.
"""

import http.client
import os
import shutil
import signal
import sys
import tempfile
import threading
import time

from colo_pair import GuestShell, console_alarms
from harness import (GUEST_TIMER_ARG, READY_MARKER, NetNamespace, env_path,
                     log, read_text, require_netns, wait_until)

GUEST_IP = "10.0.2.15"
MAC = "52:54:00:12:34:56"
PORT = 9400                     # the namespace is ours: no port is taken
CHECKPOINT_DELAY_MS = 2000
DISK_SIZE = 64 * 1024 * 1024
NODE_ADDRESS = {"n1": "127.0.0.1", "n2": "127.0.0.2"}
TAP = {"n1": "tap-p", "n2": "tap-s"}
# The second NIC and disk: any number of each must work.  The guest does
# not configure its second NIC; its second disk is /dev/vdb.
TAP2 = {"n1": "tap-p2", "n2": "tap-s2"}
MAC2 = "52:54:00:12:34:57"
DISK2_SIZE = 16 * 1024 * 1024
MARK2 = f"colo-second-disk-{os.getpid()}"
# A sector beyond the workload's ring, written while only n2 runs the guest:
# only the resync can bring it to n1's disk.
MARK_SECTOR = 8000
MARK = f"colo-resync-mark-{os.getpid()}"

# `qemu-colo status` exit codes
RUNNING, ERROR, HUNG, NOT_RUNNING = 0, 1, 4, 7


def guest_args(serial):
    """The QEMU arguments of [vm] args: the test guest, its console
    appended to @serial (a restarted node keeps its former console)."""
    guest_dir = env_path("COLO_GUEST_DIR")
    return ["-accel", "tcg", "-m", "256", "-nodefaults", "-no-reboot",
            "-kernel", os.path.join(guest_dir, "vmlinuz"),
            "-initrd", os.path.join(guest_dir, "initramfs.img"),
            "-append", "console=ttyS0 quiet panic=-1 "
            f"{GUEST_TIMER_ARG} colo.ip={GUEST_IP}/24",
            "-chardev", f"file,id=serial0,path={serial},append=on",
            "-serial", "chardev:serial0"]


def config_text(run_dir, args, tap="tap-p", disk=None, tap2=None,
                disk2=None, tls_dir=None):
    """A qemu-colo configuration: the VM with @args, a NIC on @tap unless
    None, a disk @disk if given, a second NIC on @tap2 and a second disk
    @disk2 if given, TLS with the credentials in @tls_dir if given."""
    lines = ["[vm]", "name=vm0",
             f"binary={env_path('QEMU_BINARY')}",
             f"img-tool={env_path('QEMU_IMG')}",
             f"run-dir={run_dir}",
             "args=" + ";".join(a.replace(";", "\\;") for a in args),
             "", "[colo]", f"port={PORT}",
             f"checkpoint-delay={CHECKPOINT_DELAY_MS}"]
    if tls_dir:
        lines.append(f"tls-dir={tls_dir}")
    lines.append("")
    for name, address in NODE_ADDRESS.items():
        lines += [f"[node {name}]", f"address={address}", ""]
    if tap:
        lines += ["[nic net0]", f"tap={tap}", "bridge=br0", f"mac={MAC}",
                  "model=e1000", ""]
    if tap2:
        lines += ["[nic net1]", f"tap={tap2}", "bridge=br0", f"mac={MAC2}",
                  ""]
    if disk:
        lines += ["[disk disk0]", f"file={disk}", "format=raw",
                  "device=virtio-blk-pci", ""]
    if disk2:
        lines += ["[disk disk1]", f"file={disk2}", ""]
    return "\n".join(lines)


def make_disk(path, size=DISK_SIZE):
    with open(path, "wb") as f:
        f.truncate(size)


def parse_status(text):
    status = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            status[key] = value
    return status


def live_pid(pid):
    """Whether @pid is a process that has not ended (a zombie has)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def qemus_under(path):
    """The live processes whose command line names something in @path:
    the QEMUs qemu-colo started for this test's run directories."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().decode(errors="replace")
        except OSError:
            continue
        if path in cmdline and live_pid(int(entry)):
            found.append(int(entry))
    return found


def tail(path, size=3000):
    try:
        with open(path, errors="replace") as f:
            return f.read()[-size:]
    except FileNotFoundError:
        return "(missing)"


class Node:
    """One node of the pair: its configuration, run directory, disk and
    console, and qemu-colo run for it inside the namespace."""

    def __init__(self, name, tmp, ns, tool=None):
        self.name = name
        self.ns = ns
        self.tool = tool or env_path("QEMU_COLO")
        self.run_dir = os.path.join(tmp, f"run-{name}")
        self.conf = os.path.join(tmp, f"{name}.conf")
        self.serial = os.path.join(tmp, f"serial-{name}.log")
        self.disk = os.path.join(tmp, f"disk-{name}.raw")
        self.disk2 = os.path.join(tmp, f"disk2-{name}.raw")
        self.pids = set()           # every QEMU pid seen, for the cleanup

    def write_config(self, **kw):
        kw.setdefault("tap", TAP[self.name])
        kw.setdefault("disk", self.disk)
        kw.setdefault("args", guest_args(self.serial))
        with open(self.conf, "w") as f:
            f.write(config_text(self.run_dir, **kw))

    def colo(self, *args, timeout=150):
        """qemu-colo ARGS for this node: (exit code, output)."""
        cmd = [self.tool, "-c", self.conf, "-n", self.name] + list(args)
        r = self.ns.run(cmd, check=False, timeout=timeout)
        self.pid()
        return r.returncode, r.stdout

    def ok(self, *args, timeout=150):
        rc, out = self.colo(*args, timeout=timeout)
        if rc != 0:
            raise AssertionError(f"{self.name}: qemu-colo {' '.join(args)} "
                                 f"failed ({rc}):\n{out}")
        return out

    def status(self, seconds=20):
        rc, out = self.colo("-t", str(seconds), "status",
                            timeout=seconds + 30)
        return rc, parse_status(out)

    def expect(self, code=RUNNING, **want):
        """status must exit @code and print @want (keys with '-' as '_';
        a tuple of values: any of them)."""
        rc, st = self.status()
        want = {k.replace("_", "-"): v if isinstance(v, tuple) else (v,)
                for k, v in want.items()}
        if rc != code or any(st.get(k) not in v for k, v in want.items()):
            raise AssertionError(f"{self.name}: status exited {rc} with "
                                 f"{st}; expected {code} with {want}")
        return st

    def pid(self):
        try:
            with open(os.path.join(self.run_dir, "qemu.pid")) as f:
                pid = int(f.read().strip())
        except (OSError, ValueError):
            return None
        self.pids.add(pid)
        return pid

    def console(self):
        return read_text(self.serial)

    def wait_ready(self, timeout=120):
        """Until the guest printed its ready marker; an error if QEMU
        ends first."""
        pid = self.pid()

        def ready():
            if READY_MARKER in self.console():
                return True
            if not (pid and live_pid(pid)):
                raise AssertionError(f"{self.name}: QEMU {pid} ended while "
                                     "the guest booted")
            return False
        wait_until(f"the guest's boot on {self.name}", ready, timeout)

    def kill(self):
        pid = self.pid()
        assert pid and live_pid(pid), f"{self.name}: no QEMU to kill"
        os.kill(pid, signal.SIGKILL)
        wait_until(f"{self.name}'s QEMU gone", lambda: not live_pid(pid), 30)

    def dump(self):
        pid = self.pid()
        try:
            rc, out = self.colo("-t", "5", "status", timeout=30)
            status = f"exit {rc}: " + " ".join(out.split())
        except Exception as e:
            status = str(e)
        log(f"--- {self.name}: QEMU {pid} "
            f"{'lives' if pid and live_pid(pid) else 'is gone'}; "
            f"status {status}")
        log(f"--- {self.name}: {self.run_dir}/qemu.log (end) ---\n"
            f"{tail(os.path.join(self.run_dir, 'qemu.log'))}")
        log(f"--- {self.name}: console (end) ---\n{tail(self.serial)}")

    def cleanup(self):
        """Stop this node's QEMU by the tool, then kill what is left."""
        try:
            rc, out = self.colo("-t", "10", "stop", timeout=60)
            if rc != 0:
                log(f"{self.name}: stop at cleanup: {out.strip()}")
        except Exception as e:
            log(f"{self.name}: stop at cleanup: {e}")
        for pid in list(self.pids) + qemus_under(self.run_dir):
            if live_pid(pid):
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass


def http_ok(ns, timeout=90):
    """The guest's web page answers 200, from the namespace's bridge;
    tried again for a while (a failover moves the guest's port)."""
    def get():
        c = http.client.HTTPConnection(GUEST_IP, 80, timeout=10)
        try:
            c.request("GET", "/index.html")
            r = c.getresponse()
            body = r.read().decode(errors="replace")
            return r.status == 200 and "COLO test guest" in body
        finally:
            c.close()

    def answered():
        try:
            return ns.call(get)
        except OSError:
            return False

    wait_until("the guest's web page", answered, timeout)


def shell(ns):
    return GuestShell(2323, connect=lambda port: ns.connect(GUEST_IP, port))


def tap_master(ns, tap):
    """The bridge @tap is on, or None."""
    out = ns.ip("-o", "link", "show", "dev", tap).stdout.split()
    return out[out.index("master") + 1] if "master" in out else None


def image_sector(path, sector):
    """The text at the start of @sector of a raw image, read on the host."""
    with open(path, "rb") as f:
        f.seek(sector * 512)
        return f.read(512).split(b"\n")[0].rstrip(b"\0").decode()


def guest_sector(sh, sector, dev="/dev/vda"):
    """The first line of @sector of the guest's disk @dev, past its
    caches."""
    return sh.check("echo 3 >/proc/sys/vm/drop_caches; "
                    f"dd if={dev} bs=512 skip={sector} count=1 "
                    "2>/dev/null | head -n 1").strip()


def checkpoints(primary):
    """The checkpoints the primary's colo-compare has seen."""
    return int(primary.status()[1].get("net0.checkpoints", 0))


def let_checkpoints_pass(primary, sh, count=2):
    """Let the guest's disk writes run across @count checkpoints."""
    def records():
        # None yet, or empty while the writer rewrites it: 0.
        out = sh.run("cat /tmp/rec 2>/dev/null")[1].split()
        return int(out[-1]) if out and out[-1].isdigit() else 0
    first, since = records(), checkpoints(primary)
    wait_until(f"{count} checkpoints with disk writes", lambda:
               checkpoints(primary) >= since + count and records() > first,
               60)
    return checkpoints(primary)


def report_lost_peer(node, began):
    """@node, the secondary, says its peer is lost: it waits, in COLO."""
    def lost():
        rc, st = node.status()
        return rc == RUNNING and st.get("colo") == "peer-lost"
    wait_until(f"{node.name} to report the lost primary", lost, 60)
    took = time.monotonic() - began
    node.expect(RUNNING, role="secondary", colo="peer-lost")
    log(f"{node.name}: reports the lost peer after {took:.1f} s")


def fail_over(ns, lost, survivor, work, then=None):
    """Kill @lost's QEMU; @survivor reports it, is told to fail over, and
    then serves the guest with the data the guest acknowledged.  @then(sh)
    runs in the survivor's guest shell at the end."""
    work.close()
    began = time.monotonic()
    lost.kill()
    lost.expect(NOT_RUNNING, qemu="stopped")
    report_lost_peer(survivor, began)
    t = time.monotonic()
    survivor.ok("failover")
    log(f"{survivor.name}: failover took {time.monotonic() - t:.1f} s")
    survivor.expect(RUNNING, role="alone", colo="off", vm="running")
    survivor.ok("failover")         # again: it runs alone already
    survivor.expect(RUNNING, role="alone", colo="off", vm="running")
    master = tap_master(ns, TAP[survivor.name])
    assert master == "br0", f"{TAP[survivor.name]} is on {master}, not br0"
    http_ok(ns)
    sh = shell(ns)
    try:
        sh.check("colo-workload stop")
        disk = sh.check("colo-workload check").strip()
        assert disk.startswith("check ok"), f"{survivor.name}: {disk}"
        if then:
            then(sh)
    finally:
        sh.close()
    log(f"{survivor.name}: runs the guest alone, HTTP answers, {disk}")


# The primary's VM while COLO runs: "colo" while it takes a checkpoint.
COLO_VM = ("running", "colo")


def protected(ns, primary, secondary):
    """COLO runs between the two; HTTP goes through colo-compare."""
    primary.expect(RUNNING, role="primary", colo="running", vm=COLO_VM)
    secondary.expect(RUNNING, role="secondary", colo="running")
    assert tap_master(ns, TAP[secondary.name]) is None, \
        f"{secondary.name}'s tap is on a bridge"
    assert tap_master(ns, TAP2[secondary.name]) is None, \
        f"{secondary.name}'s second tap is on a bridge"
    http_ok(ns)
    wait_until("colo-compare matching packets", lambda: int(
        primary.status()[1].get("net0.matched", 0)) > 0, 60)
    st = primary.status()[1]
    assert "net1.checkpoints" in st, f"no colo-compare for net1: {st}"


def protect_while_asked(node):
    """protect --resync on @node while status is asked again and again, as
    a cluster manager does: each answer must come within a few seconds,
    also while the protection holds its own monitor connection for the
    whole copy.  Returns how many answers came during the protection."""
    result = {}

    def protect():
        result["r"] = node.colo("-t", "120", "protect", "--resync")
    th = threading.Thread(target=protect)
    th.start()
    answered = 0
    second = None
    try:
        while th.is_alive():
            rc, st = node.status(seconds=3)
            if th.is_alive():
                assert rc == RUNNING and st.get("qemu") == "running", \
                    f"{node.name}: status during protect: {rc} {st}"
                answered += 1
            if second is None and th.is_alive():
                # A second protect must not tear down the first one's work.
                second = node.colo("-t", "5", "protect")
            time.sleep(0.2)
    finally:
        th.join()
    rc, out = result["r"]
    assert rc == 0, f"{node.name}: protect --resync failed ({rc}):\n{out}"
    assert answered, f"{node.name}: no status answered during the protection"
    refusal = "qemu-colo: another protect of this node is under way"
    assert second and second[0] == ERROR and second[1].strip() == refusal, \
        f"{node.name}: a second protect during the first: {second}"
    return answered


def cycle(ns, n1, n2):
    began = time.monotonic()
    n1.expect(NOT_RUNNING, qemu="stopped")
    n2.expect(NOT_RUNNING, qemu="stopped")

    n2.ok("start", "secondary")
    n2.expect(RUNNING, qemu="running", role="waiting-for-primary",
              colo="off", vm="inmigrate")
    assert tap_master(ns, "tap-s") is None, "tap-s is on a bridge"
    n1.ok("start", "primary")
    n1.expect(RUNNING, qemu="running", role="alone", colo="off",
              vm="running")
    assert tap_master(ns, "tap-p") == "br0", "tap-p is not on br0"
    n1.wait_ready()
    http_ok(ns)
    log(f"n1: the guest runs alone ({time.monotonic() - began:.0f} s)")

    t = time.monotonic()
    n1.ok("protect")
    log(f"n1: protect took {time.monotonic() - t:.1f} s")
    protected(ns, n1, n2)
    work = shell(ns)
    work.check("colo-workload start")
    # The second disk is replicated too.
    work.check(f"echo {MARK2} | dd of=/dev/vdb bs=512 conv=sync,notrunc,"
               "fsync 2>/dev/null")
    done = let_checkpoints_pass(n1, work)
    log(f"n1 -> n2: COLO runs, the guest writes its disks, {done} "
        f"checkpoints ({time.monotonic() - began:.0f} s)")

    def mark(sh):
        got = guest_sector(sh, 0, "/dev/vdb")
        assert got == MARK2, f"n2's second disk reads '{got}', not {MARK2}"
        sh.check(f"echo {MARK} | dd of=/dev/vda bs=512 seek={MARK_SECTOR} "
                 "conv=sync,notrunc,fsync 2>/dev/null")
        assert guest_sector(sh, MARK_SECTOR) == MARK

    fail_over(ns, n1, n2, work, then=mark)
    held = image_sector(n1.disk, MARK_SECTOR)
    assert held == "", f"n1's image holds '{held}' before the resync"

    n1.ok("start", "secondary")
    n1.expect(RUNNING, role="waiting-for-primary", colo="off",
              vm="inmigrate")
    t = time.monotonic()
    answered = protect_while_asked(n2)
    resync = time.monotonic() - t
    log(f"n2: protect --resync ({DISK_SIZE // 2**20} MiB disk) took "
        f"{resync:.1f} s; status answered {answered} times meanwhile")
    protected(ns, n2, n1)
    work = shell(ns)
    work.check("colo-workload start")
    done = let_checkpoints_pass(n2, work)
    log(f"n2 -> n1: COLO runs again, the guest writes its disk, {done} "
        f"checkpoints ({time.monotonic() - began:.0f} s)")

    def marked(sh):
        got = guest_sector(sh, MARK_SECTOR)
        assert got == MARK, f"n1's guest reads '{got}' where n2 wrote {MARK}"

    fail_over(ns, n2, n1, work, then=marked)

    for node in (n1, n2):
        alarms = console_alarms(node.console())
        assert not alarms, f"{node.name}'s guest console: {alarms}"
    pid = n1.pid()
    n1.ok("stop")
    n2.ok("stop")
    assert not live_pid(pid), f"n1's QEMU {pid} outlived stop"
    for node in (n1, n2):
        node.expect(NOT_RUNNING, qemu="stopped")
        left = qemus_under(node.run_dir)
        assert not left, f"{node.name}: QEMU left after stop: {left}"
    held = image_sector(n1.disk, MARK_SECTOR)
    assert held == MARK, f"n1's image holds '{held}', not the resynced {MARK}"
    log(f"ok: protect, failover, protect --resync ({resync:.1f} s), "
        f"failover; stopped ({time.monotonic() - began:.0f} s)")


def main():
    require_netns()
    env_path("QEMU_COLO")
    tmp = tempfile.mkdtemp(prefix=f"qemu-colo-{os.getpid()}-")
    try:
        with NetNamespace(bridge_addr="10.0.2.1/24") as ns:
            nodes = [Node(name, tmp, ns) for name in ("n1", "n2")]
            for node in nodes:
                make_disk(node.disk)
                make_disk(node.disk2, DISK2_SIZE)
                node.write_config(tap2=TAP2[node.name], disk2=node.disk2)
            try:
                cycle(ns, *nodes)
            except BaseException:
                for node in nodes:
                    node.dump()
                listening = ns.run(["ss", "-ltnp"], check=False).stdout
                log(f"--- listening in the namespace ---\n{listening}")
                raise
            finally:
                for node in nodes:
                    node.cleanup()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
