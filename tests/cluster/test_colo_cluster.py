#!/usr/bin/python3
"""Whole-system test: a COLO-replicated VM under Pacemaker survives its nodes.

    test_colo_cluster.py [--build DIR] [--token-ms MS] [--fence-delay S]
                         [--save-logs DIR] [--verbose]

Exit 0 passes, 77 skips (reason on a line starting with "SKIP:"), anything
else fails.  Needs root, the cluster packages (buildsys/install-deps.sh) and
the built QEMU, qemu-img, qemu-colo and Linux test guest; their paths come
from QEMU_BINARY, QEMU_IMG, QEMU_COLO and COLO_GUEST_DIR, or else from the
build tree (--build, by default build/ of the checkout that holds this
file).  The test installs this checkout's resource agent
(tools/colo/ocf/colo) as /usr/lib/ocf/resource.d/qemu/colo.

A two-node cluster of namespaces (colo_cluster_lab.ClusterLab, with lab
fencing and a guest LAN) runs the VM as the promotable clone ocf:qemu:colo:
the Promoted instance runs the guest (the COLO primary), the Unpromoted one
its secondary.  Each node's disk is /var/lib/qemu-colo/vm0.raw, private to
the node and kept across its reboots.  A client on the guest LAN fetches the
guest's web page all along and counts the failures.
  (a) settle: node1 Promoted, COLO running, the guest answers; the guest's
      disk workload starts;
  (b) SIGKILL node1: it is fenced, node2 is Promoted and its secondary took
      over (the same QEMU process, the guest not rebooted); the web page
      and a TCP connection opened before the crash work again, and the
      disk holds the guest's last acknowledged writes;
  (c) boot node1 again: it rejoins Unpromoted and the agent protects the
      guest again by itself (disks copied, COLO running node2 -> node1);
  (d) SIGKILL node2, now running the guest: as in (b), the other way;
  (e) boot node2 again: as in (c), COLO running node1 -> node2;
  (f) unplug node1, the Promoted node: fencing leaves exactly one node up,
      node1 (its priority wins the race), which runs the guest alone;
  (g) boot node2 again: node1, a primary all along, protects it again;
  (h) drop COLO's TCP between the nodes, Corosync still passing: node1
      goes on alone, node2's secondary is marked stale and restarted, and
      once the link is back node1 protects it again; one guest throughout;
  (i) SIGSTOP node1's QEMU: the cluster finds it hung, kills it, promotes
      node2, whose secondary carries the guest on, and node1 is protected
      again.
At each step the promotion scores must say who holds current data (100 for
the node with the guest and a secondary in sync, -INFINITY for a node left
behind, which Pacemaker must never promote), and at the end neither guest
console may show a kernel complaint.  A figures line ends the output.
"""

import argparse
import ctypes
import filecmp
import http.client
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback

sys.dont_write_bytecode = True
HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from colo_cluster_lab import ClusterLab, GUEST_BRIDGE  # noqa: E402

SKIP_EXIT = 77
REPO = os.path.dirname(os.path.dirname(HERE))
# Where each program is in a build tree (make build's, by default).
BUILT_PATHS = {
    "QEMU_BINARY": ("qemu", "qemu-system-x86_64"),
    "QEMU_IMG": ("qemu", "qemu-img"),
    "QEMU_COLO": ("qemu", "tools", "colo", "qemu-colo"),
    "COLO_GUEST_DIR": ("qemu", "tests", "functional", "colo"),
}
AGENT_SRC = os.path.join(REPO, "tools", "colo", "ocf", "colo")
AGENT_DIR = "/usr/lib/ocf/resource.d/qemu"
AGENT = os.path.join(AGENT_DIR, "colo")

RSC = "vm"
CLONE = "vm-clone"
VM_NAME = "vm0"
RUN_DIR = "/run/qemu-colo/vm0"
DISK = "/var/lib/qemu-colo/vm0.raw"
SERIAL = "/var/lib/qemu-colo/vm0-serial.log"
DISK_MIB = 64
COLO_PORT = 9100
CHECKPOINT_DELAY_MS = 2000
# How long a COLO side hears nothing from its peer before it reports it
# lost (QEMU's default is 10 s; the cut in (f) waits for it).
PEER_TIMEOUT_MS = 5000
GUEST_IP = "10.0.2.15"
GUEST_MAC = "52:54:00:c0:10:01"
SHELL_PORT = 2323
ECHO_PORT = 7
READY = "COLO-GUEST-READY"
SCORE_CURRENT = "100"
SCORE_STALE = "-INFINITY"

# The agent's own lines in a pacemaker log, and the results of its actions.
AGENT_LINES = re.compile(r"colo\(|qemu-colo|ocf-exit-reason|"
                         rf"operation for {RSC} on|{RSC}_\w+\[\d+\]")

# What a guest kernel prints when something is badly wrong.
KERNEL_ALARMS = re.compile(r"BUG:|Oops|Kernel panic|general protection|"
                           r"WARNING: CPU|Call Trace")


def skip(reason):
    print(f"SKIP: {reason}", flush=True)
    sys.exit(SKIP_EXIT)


T0 = time.monotonic()


def say(msg):
    print(f"[{time.monotonic() - T0:6.1f}] {msg}", flush=True)


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)


def paths(build):
    """The programs' absolute paths: from the environment, else from the
    build tree @build."""
    build = os.path.abspath(build)
    return {k: os.path.abspath(os.environ.get(k) or os.path.join(build, *v))
            for k, v in BUILT_PATHS.items()}


def preflight(p):
    if os.geteuid() != 0:
        skip("needs root (namespaces, mounts, tap devices, /usr/sbin "
             "fence agent, the resource agent in /usr/lib/ocf)")
    missing = ClusterLab.missing_tools()
    if missing:
        skip("missing " + " ".join(missing)
             + "; run buildsys/install-deps.sh")
    if not os.path.isdir("/usr/lib/ocf/lib/heartbeat"):
        skip("/usr/lib/ocf/lib/heartbeat missing (package resource-agents)")
    for key in ("QEMU_BINARY", "QEMU_IMG", "QEMU_COLO"):
        if not os.access(p[key], os.X_OK):
            skip(f"{p[key]} not built ({key}); run make build")
    for name in ("vmlinuz", "initramfs.img"):
        if not os.path.exists(os.path.join(p["COLO_GUEST_DIR"], name)):
            skip(f"the Linux test guest is not built: no {name} in "
                 f"{p['COLO_GUEST_DIR']} (COLO_GUEST_DIR)")
    if not os.path.exists(AGENT_SRC):
        skip(f"{AGENT_SRC} missing")
    if not os.path.exists("/dev/net/tun"):
        skip("/dev/net/tun is missing")
    r = subprocess.run(["unshare", "--net", "--mount", "--uts", "true"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        skip("namespaces unavailable: " + r.stderr.strip())


def install_agent():
    """This checkout's agent as ocf:qemu:colo; says what it replaced."""
    os.makedirs(AGENT_DIR, exist_ok=True)
    if os.path.exists(AGENT):
        if filecmp.cmp(AGENT_SRC, AGENT, shallow=False):
            os.chmod(AGENT, 0o755)
            return
        say(f"note: replacing a different {AGENT} with {AGENT_SRC}")
    tmp = AGENT + f".tmp{os.getpid()}"
    shutil.copyfile(AGENT_SRC, tmp)
    os.chmod(tmp, 0o755)
    os.rename(tmp, AGENT)
    say(f"installed {AGENT}")


# --------------------------------------------------------------------------
# The guest LAN, seen from threads of this process that enter it.

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def enter_netns(name):
    """Move the calling thread (only) into network namespace @name."""
    fd = os.open(f"/run/netns/{name}", os.O_RDONLY)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns {name}: {os.strerror(err)}")
    finally:
        os.close(fd)


def in_netns(name, fn, *args):
    """fn(*args) in a short-lived thread inside @name; sockets it makes
    stay there."""
    box = {}

    def body():
        try:
            enter_netns(name)
            box["value"] = fn(*args)
        except BaseException as e:
            box["error"] = e
    t = threading.Thread(target=body)
    t.start()
    t.join()
    if "error" in box:
        raise box["error"]
    return box["value"]


def http_get(timeout):
    c = http.client.HTTPConnection(GUEST_IP, 80, timeout=timeout)
    try:
        c.request("GET", "/index.html")
        r = c.getresponse()
        body = r.read().decode(errors="replace")
    finally:
        c.close()
    if r.status != 200 or "COLO test guest" not in body:
        raise OSError(f"HTTP {r.status}: {body[:80]!r}")


class WebClient:
    """Asks for the guest's page from the guest LAN every @interval
    seconds, each request in a thread of its own (one that waits on a
    guest that does not answer delays no other), and keeps when each began
    and ended and whether it worked."""

    def __init__(self, netns, interval=0.25, timeout=3.0):
        self.netns = netns
        self.interval = interval
        self.timeout = timeout
        self.results = []           # (began, ended, ok), as they end
        self.last_error = None
        self.lock = threading.Lock()
        self.stop_flag = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.requests = []

    def start(self):
        self.thread.start()
        return self

    def _run(self):
        while not self.stop_flag.wait(self.interval):
            t = threading.Thread(target=self._request, daemon=True)
            t.start()
            self.requests = [r for r in self.requests if r.is_alive()] + [t]

    def _request(self):
        began = time.monotonic()
        error = None
        try:
            enter_netns(self.netns)
            http_get(self.timeout)
        except (OSError, http.client.HTTPException) as e:
            error = f"{type(e).__name__}: {e}"
        with self.lock:
            self.results.append((began, time.monotonic(), error is None))
            if error:
                self.last_error = error

    def stop(self):
        self.stop_flag.set()
        self.thread.join()
        for t in self.requests:
            t.join(self.timeout + 5)

    def first_ok_after(self, t):
        """When the first request begun at or after @t that worked ended,
        or None."""
        with self.lock:
            return min((ended for began, ended, ok in self.results
                        if ok and began >= t), default=None)

    def counts(self, since=0.0):
        """(worked, failed) of the requests begun at or after @since."""
        with self.lock:
            done = [ok for began, _, ok in self.results if began >= since]
        return done.count(True), done.count(False)


class GuestShell:
    """The test guest's command shell (a sh on TCP port 2323)."""

    def __init__(self, netns):
        self.netns = netns
        self.sock = None
        self.pending = b""
        self.n = 0

    def _open(self, timeout):
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.sock = in_netns(self.netns, socket.create_connection,
                                     (GUEST_IP, SHELL_PORT), 10)
                self.pending = b""
                self._talk("true", 15)
                return
            except (OSError, TimeoutError):
                self.close()
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)

    def _talk(self, command, timeout):
        self.n += 1
        end = f"--end-{self.n}--"
        self.sock.sendall(f"{command}\necho {end}$?\n".encode())
        pat = re.compile(re.escape(end.encode()) + rb"(\d+)\n")
        deadline = time.monotonic() + timeout
        while not (m := pat.search(self.pending)):
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"guest: '{command}' gave no answer in "
                                   f"{timeout}s: {self.pending[-300:]!r}")
            self.sock.settimeout(left)
            data = self.sock.recv(4096)
            if not data:
                raise ConnectionError("the guest's shell hung up")
            self.pending += data
        out = self.pending[:m.start()].decode(errors="replace")
        self.pending = self.pending[m.end():]
        return int(m.group(1)), out

    def run(self, command, timeout=60):
        """(exit status, output) of @command; a fresh connection is made
        when there is none (the old one may have died with a node)."""
        if self.sock is None:
            self._open(60)
        try:
            return self._talk(command, timeout)
        except (OSError, TimeoutError):
            self.close()
            raise

    def ok(self, command, timeout=60):
        rc, out = self.run(command, timeout)
        check(rc == 0, f"guest: '{command}' exited {rc}: {out.strip()}")
        return out.strip()

    def close(self):
        if self.sock is not None:
            self.sock.close()
            self.sock = None


class EchoConnection:
    """One TCP connection to the guest's echo server, kept across faults."""

    def __init__(self, netns):
        self.sock = in_netns(netns, socket.create_connection,
                             (GUEST_IP, ECHO_PORT), 10)

    def roundtrip(self, text, timeout=30):
        msg = (text + "\n").encode()
        self.sock.settimeout(timeout)
        self.sock.sendall(msg)
        got = b""
        deadline = time.monotonic() + timeout
        while len(got) < len(msg):
            self.sock.settimeout(max(0.1, deadline - time.monotonic()))
            data = self.sock.recv(4096)
            if not data:
                raise ConnectionError("the echo connection closed")
            got += data
        check(got == msg, f"echo answered {got!r}, not {msg!r}")

    def close(self):
        self.sock.close()


# --------------------------------------------------------------------------
# The VM's configuration and its view from the nodes.

def colo_config(lab, p):
    guest = p["COLO_GUEST_DIR"]
    args = ["-accel", "tcg", "-m", "256", "-nodefaults", "-no-reboot",
            "-display", "none",
            "-kernel", os.path.join(guest, "vmlinuz"),
            "-initrd", os.path.join(guest, "initramfs.img"),
            # no_timer_check: see GUEST_TIMER_ARG in the functional
            # tests' harness.py.
            "-append", "console=ttyS0 quiet panic=-1 no_timer_check "
            f"colo.ip={GUEST_IP}/24",
            # append=on: the console of every life of the node's QEMU.
            "-chardev", f"file,id=serial0,path={SERIAL},append=on",
            "-serial", "chardev:serial0",
            "-global", f"migration.x-colo-peer-timeout={PEER_TIMEOUT_MS}"]
    for a in args:
        check(";" not in a and "\\" not in a, f"cannot put {a!r} in a list")
    lines = [
        "# qemu-colo configuration written by tests/cluster/"
        "test_colo_cluster.py",
        "[vm]",
        f"name={VM_NAME}",
        f"binary={p['QEMU_BINARY']}",
        f"img-tool={p['QEMU_IMG']}",
        f"run-dir={RUN_DIR}",
        "args=" + ";".join(args),
        "",
        "[colo]",
        f"port={COLO_PORT}",
        f"checkpoint-delay={CHECKPOINT_DELAY_MS}",
        "",
    ]
    for i in lab.indices():
        lines += [f"[node {lab.node_name(i)}]",
                  f"address={lab.node_ip(i)}", ""]
    lines += ["[nic net0]", "tap=tap0", f"bridge={GUEST_BRIDGE}",
              f"mac={GUEST_MAC}", "",
              "[disk disk0]", f"file={DISK}", "format=raw", ""]
    return "\n".join(lines)


def cluster_config(lab, p, conf, fence_delay):
    return (
        "property cib-bootstrap-options: stonith-enabled=true "
        f"priority-fencing-delay={fence_delay}s\n"
        "rsc_defaults rsc-options: resource-stickiness=100\n"
        + lab.fence_primitive() +
        f"primitive {RSC} ocf:qemu:colo params config={conf}"
        f" binary={p['QEMU_COLO']} first_primary={lab.node_name(1)}"
        " op monitor interval=2s role=Promoted timeout=30s"
        " op monitor interval=3s role=Unpromoted timeout=30s"
        " op start timeout=120s op promote timeout=120s"
        " op demote timeout=120s op stop timeout=60s"
        " op notify timeout=60s"
        # Priority makes the Promoted holder (+1) the fence-race winner.
        " meta priority=10\n"
        f"clone {CLONE} {RSC} meta promotable=true promoted-max=1"
        " promoted-node-max=1 clone-max=2 clone-node-max=1 notify=true\n")


class Vm:
    """The VM's state as qemu-colo and the cluster report it."""

    def __init__(self, lab, p, conf):
        self.lab = lab
        self.tool = p["QEMU_COLO"]
        self.conf = conf
        self.pids = set()           # every QEMU seen, for the final check

    def status(self, i):
        """qemu-colo status on node @i as a dict ({} if it cannot say)."""
        if not self.lab.is_up(i):
            return {}
        try:
            r = self.lab.run(i, [self.tool, "-c", self.conf, "-n",
                                 self.lab.node_name(i), "-t", "10",
                                 "status"], timeout=20)
        except (subprocess.TimeoutExpired, RuntimeError):
            return {}
        st = dict(line.split("=", 1) for line in r.stdout.splitlines()
                  if "=" in line)
        st["rc"] = r.returncode
        if st.get("pid", "").isdigit():
            self.pids.add(int(st["pid"]))
        return st

    def role(self, i):
        st = self.status(i)
        return (st.get("role"), st.get("colo"))

    def score(self, node, via):
        """node's persistent promotion score, seen from node @via."""
        r = self.lab.run(via, ["crm_attribute", "-p", RSC, "-l", "forever",
                               "-N", self.lab.node_name(node), "-G", "-q",
                               "-d", ""], timeout=20)
        return r.stdout.strip()

    def scores(self, via):
        return {i: self.score(i, via) for i in self.lab.indices()}

    def clone_roles(self, via):
        snap = self.lab.snapshot(via)
        if snap is None:
            return None
        return (snap.resource_nodes(CLONE, "Promoted"),
                snap.resource_nodes(CLONE, "Unpromoted"), snap)

    def console(self, i):
        try:
            with open(self.lab.node_path(i, SERIAL), errors="replace") as f:
                return f.read()
        except OSError:
            return ""


def same_content(a, b, chunk=1 << 20):
    with open(a, "rb") as fa, open(b, "rb") as fb:
        while True:
            da, db = fa.read(chunk), fb.read(chunk)
            if da != db:
                return False
            if not da:
                return True


def expect_scores(vm, via, want, step, timeout=15):
    """The promotion scores must become @want: a secondary records itself
    as in sync at its next monitor."""
    deadline = time.monotonic() + timeout
    while (got := vm.scores(via)) != want and time.monotonic() < deadline:
        time.sleep(0.5)
    check(got == want, f"{step}: promotion scores {got}, expected {want}")
    return got


# --------------------------------------------------------------------------
# Diagnostics.

def node_file_tail(lab, i, path, lines=40):
    if not lab.is_up(i):
        return "(node is down)"
    try:
        r = lab.run(i, ["tail", "-n", str(lines), path], timeout=10)
    except (subprocess.TimeoutExpired, RuntimeError) as e:
        return f"({e})"
    return r.stdout or r.stderr


def save_run_dir(lab, i, saved, label):
    """Keep node @i's QEMU logs before the node loses its /run."""
    for name in ("qemu.log", "protect.log"):
        saved.append((f"{lab.node_name(i)} {label} {name}",
                      node_file_tail(lab, i, f"{RUN_DIR}/{name}", 60)))


def dump(lab, vm, web, saved, out=sys.stderr):
    def head(text):
        print(f"---- {text}", file=out)
    for i in lab.indices():
        name = lab.node_name(i)
        head(f"{name}: {'up' if lab.is_up(i) else 'down'}; pacemaker log, "
             "the agent's lines (last 80)")
        try:
            with open(lab.log_path(i, "pacemaker"), errors="replace") as f:
                lines = [ln for ln in f if AGENT_LINES.search(ln)
                         and "cib_perform_op" not in ln]
            print("".join(lines[-80:]), file=out)
        except OSError as e:
            print(f"({e})", file=out)
        head(f"{name}: pacemaker log (last 30)")
        print(lab.tail_log(i, "pacemaker", 30), file=out)
        for f in ("qemu.log", "protect.log"):
            head(f"{name}: {RUN_DIR}/{f}")
            print(node_file_tail(lab, i, f"{RUN_DIR}/{f}", 40), file=out)
        head(f"{name}: guest console (end)")
        print(vm.console(i)[-3000:], file=out)
    for label, text in saved:
        head(f"saved {label}")
        print(text, file=out)
    if web is not None:
        ok, failed = web.counts()
        head(f"web client: {ok} requests worked, {failed} failed, the last "
             f"failure: {web.last_error}")
    for i in lab.indices():
        if lab.is_up(i):
            head(f"crm_mon -1 on {lab.node_name(i)}")
            try:
                print(lab.run(i, ["crm_mon", "-1", "-A"],
                              timeout=15).stdout, file=out)
            except (subprocess.TimeoutExpired, RuntimeError) as e:
                print(f"({e})", file=out)
    lab.dump_logs(out, lines=20)


def save_logs(lab, dest):
    os.makedirs(dest)
    for i in lab.indices():
        d = os.path.join(dest, lab.node_name(i))
        os.mkdir(d)
        for path in (lab.log_path(i, "pacemaker"), lab.log_path(i, "corosync"),
                     lab.node_path(i, SERIAL)):
            if os.path.exists(path):
                shutil.copy(path, d)
    say(f"logs saved in {dest}")


# --------------------------------------------------------------------------
# The scenario.

def scenario(lab, p, args, fig, saved, vmh):
    name = lab.node_name
    conf = os.path.join(lab.lab_dir, "vm0.conf")
    with open(conf, "w") as f:
        f.write(colo_config(lab, p))
    for i in lab.indices():
        disk = lab.node_path(i, DISK)
        subprocess.run([p["QEMU_IMG"], "create", "-q", "-f", "raw", disk,
                        f"{args.disk_mib}M"], check=True, capture_output=True)
    if args.fill:
        subprocess.run(["dd", "if=/dev/urandom", "of=" +
                        lab.node_path(1, DISK), "bs=1M",
                        f"count={args.disk_mib}", "conv=notrunc", "status=none"],
                       check=True)
    vm = vmh["vm"] = Vm(lab, p, conf)

    lab.start_all()
    fig["formed"] = lab.wait_online(timeout=120)
    say(f"cluster formed: both nodes Online after {fig['formed']:.1f}s")
    for i in lab.indices():
        st = vm.status(i)
        check(st.get("rc") == 7 and st.get("qemu") == "stopped",
              f"qemu-colo status on {name(i)} before the start: {st}")

    web = vmh["web"] = WebClient(lab.lan_ns).start()
    t0 = time.monotonic()
    lab.crm_configure(1, cluster_config(lab, p, conf, args.fence_delay))

    # (a) settle.
    def settled():
        roles = vm.clone_roles(1)
        if not roles or roles[0] != [name(1)] or roles[1] != [name(2)]:
            return False
        if "promoted" not in fig:
            fig["promoted"] = time.monotonic() - t0
        if vm.role(1) != ("primary", "running"):
            return False
        return vm.role(2) == ("secondary", "running")
    lab.wait_for("node1 Promoted with COLO running to node2", settled, 240,
                 interval=0.5)
    fig["colo"] = time.monotonic() - t0
    say(f"(a) {name(1)} Promoted {fig['promoted']:.1f}s after the commit, "
        f"COLO running {fig['colo']:.1f}s")
    lab.wait_for("the guest's ready marker", lambda: READY in vm.console(1),
                 180, interval=0.5)
    lab.wait_for("the guest's web page", lambda: web.first_ok_after(
        time.monotonic() - 1), 120, interval=0.5)
    fig["http"] = time.monotonic() - t0
    web_up = time.monotonic()
    expect_scores(vm, 1, {1: SCORE_CURRENT, 2: SCORE_CURRENT}, "(a)")
    shell = vmh["shell"] = GuestShell(lab.lan_ns)
    shell.ok("colo-workload start")
    echo = EchoConnection(lab.lan_ns)
    echo.roundtrip("before the crash")
    sec_pid = vm.status(2).get("pid")
    uptime = float(shell.ok("cut -d' ' -f1 /proc/uptime"))
    # Two more checkpoints with the workload and the connection in them.
    time.sleep(2 * CHECKPOINT_DELAY_MS / 1000 + 1)
    say(f"(a) the guest answers ({fig['http']:.1f}s after the commit), its "
        f"workload runs, scores 100/100; secondary pid {sec_pid}")

    state = {"uptime": uptime, "sec_pid": sec_pid}

    def crash(victim, step):
        """SIGKILL the node running the guest: the other one, its
        secondary, is promoted and its QEMU carries the guest on."""
        survivor = 3 - victim
        save_run_dir(lab, victim, saved, f"before the crash {step}")
        shell.close()
        t0 = lab.kill_node(victim)
        seen = {}

        def taken_over():
            now = time.monotonic() - t0
            if "fenced" not in seen and not lab.is_up(victim):
                seen["fenced"] = now
            if "http" not in seen and web.first_ok_after(t0):
                seen["http"] = web.first_ok_after(t0) - t0
            roles = vm.clone_roles(survivor)
            if roles and roles[0] == [name(survivor)] and \
                    "promoted" not in seen:
                seen["promoted"] = now
            return (roles and roles[0] == [name(survivor)]
                    and not lab.is_up(victim)
                    and name(victim) not in roles[2].online
                    and vm.role(survivor)[0] == "alone" and "http" in seen)
        lab.wait_for(f"{name(survivor)} Promoted, its guest answering",
                     taken_over, 120, interval=0.2)
        fig[f"{step}_fenced"] = seen.get("fenced")
        fig[f"{step}_promoted"] = seen.get("promoted")
        fig[f"{step}_http"] = seen["http"]
        st = vm.status(survivor)
        check(st.get("pid") == state["sec_pid"],
              f"({step}) {name(survivor)}'s QEMU is pid {st.get('pid')}, "
              f"not the secondary {state['sec_pid']}: the guest was "
              f"restarted, not failed over")
        check(st.get("reason") == "request" and st.get("vm") == "running",
              f"({step}) {name(survivor)} status after the failover: {st}")
        echo.roundtrip(f"after the crash {step}")
        new_uptime = float(shell.ok("cut -d' ' -f1 /proc/uptime"))
        check(new_uptime > state["uptime"],
              f"({step}) the guest's uptime went from {state['uptime']} to "
              f"{new_uptime}: it rebooted")
        state["uptime"] = new_uptime
        disk = workload_checked(shell, step)
        expect_scores(vm, survivor, {victim: SCORE_STALE,
                                     survivor: SCORE_CURRENT}, f"({step})")
        _, failed = web.counts(t0)
        fig[f"{step}_failed"] = failed
        say(f"({step}) SIGKILL {name(victim)}: fenced "
            f"{fig[step + '_fenced']:.1f}s, {name(survivor)} Promoted "
            f"{fig[step + '_promoted']:.1f}s, kill->HTTP works "
            f"{fig[step + '_http']:.1f}s ({failed} requests failed); same "
            f"QEMU (pid {state['sec_pid']}) went on, echo connection kept, "
            f"{disk}, scores {SCORE_STALE}/{SCORE_CURRENT}")
        # Writes go on while the node comes back, so the copy races them.
        shell.ok("colo-workload start")

    def rejoin(node, step):
        """Boot @node again: it comes back Unpromoted and is protected
        again, its disk copied from the node running the guest."""
        holder = 3 - node
        t0 = time.monotonic()
        lab.start_node(node)
        fig[f"{step}_online"] = lab.wait_online(timeout=90)

        def reprotected():
            # A secondary being set up never looks like a guest of its
            # own: the agent would take it for a primary and restart it.
            joining = vm.role(node)
            check(joining[0] not in ("alone", "primary"),
                  f"({step}) {name(node)}'s QEMU reports {joining} while "
                  f"it is being protected")
            for via in (1, 2):
                roles = vm.clone_roles(via)
                if not roles or roles[0] != [name(holder)] or \
                        roles[1] != [name(node)]:
                    return False
            return (vm.role(holder) == ("primary", "running")
                    and joining == ("secondary", "running"))
        lab.wait_for(f"{name(node)} Unpromoted, COLO running "
                     f"{name(holder)} -> {name(node)}", reprotected, 180,
                     interval=0.5)
        fig[f"{step}_colo"] = time.monotonic() - t0
        expect_scores(vm, holder, {1: SCORE_CURRENT, 2: SCORE_CURRENT},
                      f"({step})")
        lab.wait_for("the web page through COLO", lambda: web.first_ok_after(
            time.monotonic() - 1), 60, interval=0.5)
        echo.roundtrip(f"after the reprotection {step}")
        # The copy and the replication since: with the writes stopped,
        # both disks hold the same bytes (the primary's writes reach both
        # before they end).
        shell.ok("colo-workload stop")
        lab.wait_for("the disks of both nodes equal", lambda: same_content(
            lab.node_path(1, DISK), lab.node_path(2, DISK)), 10, interval=1)
        shell.ok("colo-workload start")
        state["sec_pid"] = vm.status(node).get("pid")
        say(f"({step}) {name(node)} rejoined (Online "
            f"{fig[step + '_online']:.1f}s), Unpromoted, COLO running "
            f"{name(holder)} -> {name(node)} {fig[step + '_colo']:.1f}s "
            f"after the boot; scores 100/100; disks equal")
        time.sleep(2 * CHECKPOINT_DELAY_MS / 1000 + 1)

    crash(1, "b")
    rejoin(1, "c")
    if args.crash_only:
        consoles_clean(lab, vm)
        return
    crash(2, "d")
    rejoin(2, "e")
    uptime = state["uptime"]

    # (f) unplug the Promoted node; its priority must win the fence race.
    sec_pid = vm.status(2).get("pid")
    pri_pid = vm.status(1).get("pid")
    t0 = time.monotonic()
    lab.cut_link(1)

    def one_down():
        return [i for i in lab.indices() if not lab.is_up(i)]
    down, t = lab.wait_for("a node fenced after the cut", one_down, 90,
                           interval=0.1)
    fig["f_fenced"] = t
    # A losing fence op (delayed by priority-fencing-delay) would land by
    # then, had the loser lived long enough to issue it.
    time.sleep(args.fence_delay + 2)
    up = [i for i in lab.indices() if lab.is_up(i)]
    check(len(up) == 1, f"(f) nodes up after the cut: {up}, expected one")
    winner = up[0]
    check(winner == 1, f"(f) {name(winner)} won the fence race, expected "
          f"the Promoted {name(1)}")

    def alone():
        roles = vm.clone_roles(1)
        return (roles and roles[0] == [name(1)]
                and name(2) not in roles[2].online
                and vm.role(1)[0] in ("alone", "primary")
                and web.first_ok_after(t0))
    lab.wait_for(f"{name(1)} alone, its guest answering", alone, 90,
                 interval=0.2)
    fig["f_http"] = web.first_ok_after(t0) - t0
    lab.wait_for(f"{name(1)} went on alone",
                 lambda: vm.role(1)[0] == "alone", 60, interval=0.5)
    st = vm.status(1)
    check(st.get("pid") == pri_pid, f"(f) {name(1)}'s QEMU is pid "
          f"{st.get('pid')}, not {pri_pid}")
    expect_scores(vm, 1, {2: SCORE_STALE, 1: SCORE_CURRENT}, "(f)")
    echo.roundtrip("after the cut")
    new_uptime = float(shell.ok("cut -d' ' -f1 /proc/uptime"))
    check(new_uptime > uptime, f"(f) the guest's uptime went from {uptime} "
          f"to {new_uptime}: it rebooted")
    disk = workload_checked(shell, "f")
    _, fig["f_failed"] = web.counts(t0)
    say(f"(f) cut {name(1)}'s link: {name(2)} fenced {fig['f_fenced']:.1f}s "
        f"(secondary pid {sec_pid} gone), {name(1)} alone, cut->HTTP works "
        f"{fig['f_http']:.1f}s ({fig['f_failed']} requests failed); echo "
        f"connection kept, {disk}, scores {SCORE_STALE}/{SCORE_CURRENT}")
    lab.heal_link(1)
    # (g) The node that stayed a primary throughout protects the fenced
    # one again: its disks' old replication children must make way.
    shell.ok("colo-workload start")
    rejoin(2, "g")
    replication_link_loss(lab, vm, web, shell, echo, state, fig)
    hung_primary(lab, vm, web, shell, echo, state, fig)
    echo.close()
    shell.close()

    consoles_clean(lab, vm)
    fig["ok"], fig["failed"] = web.counts(web_up)


def workload_checked(shell, step):
    """Stop the guest's disk journal and check that the last acknowledged
    records are on its disk; returns the check's line."""
    shell.ok("colo-workload stop")
    disk = shell.ok("colo-workload check")
    check(disk.startswith("check ok"), f"({step}) colo-workload check: {disk}")
    return disk


def wait_protected(lab, vm, pri, sec, step, timeout):
    """Wait for COLO running from node @pri to node @sec, with both
    promotion scores current."""
    name = lab.node_name
    lab.wait_for(f"COLO running {name(pri)} -> {name(sec)}",
                 lambda: vm.role(pri) == ("primary", "running")
                 and vm.role(sec) == ("secondary", "running"), timeout,
                 interval=0.5)
    expect_scores(vm, pri, {1: SCORE_CURRENT, 2: SCORE_CURRENT}, f"({step})")


def watch_single_guest(lab, vm, step, nodes):
    """A check to poll while a failure settles: none of @nodes may run
    the guest ("alone" or "primary" while the other node does too)."""
    def check_now():
        roles = {i: vm.role(i)[0] for i in nodes}
        running = [i for i, r in roles.items() if r in ("alone", "primary")]
        check(len(running) <= 1, f"({step}) two guests run: {roles}")
        return roles
    return check_now


def replication_link_loss(lab, vm, web, shell, echo, state, fig):
    """(h) Only the replication link breaks: the nodes still see each other
    (Corosync's UDP passes), COLO's TCP does not.  Both sides report the
    loss; the cluster knows both nodes are healthy, so the primary goes on
    alone, the secondary is marked stale and restarted, and once the link
    is back the primary protects it again.  At no time do two guests run."""
    name = lab.node_name
    step = "h"
    pri_pid = vm.status(1).get("pid")
    # COLO's TCP to and from the peer; the guest LAN is a bridge, whose
    # frames never reach these hooks.
    ruleset = ("table inet colo_link {\n"
               " chain in { type filter hook input priority 0; "
               f"iifname eth0 ip saddr {lab.node_ip(1)} meta l4proto tcp "
               "drop; }\n"
               " chain out { type filter hook output priority 0; "
               f"oifname eth0 ip daddr {lab.node_ip(1)} meta l4proto tcp "
               "drop; }\n}\n")
    t0 = time.monotonic()
    lab.run(2, ["nft", "-f", "-"], input=ruleset, check=True)
    single = watch_single_guest(lab, vm, step, (1, 2))
    seen = {}

    def primary_alone():
        roles = single()
        if roles[1] == "alone" and "alone" not in seen:
            seen["alone"] = time.monotonic() - t0
        return "alone" in seen and web.first_ok_after(t0 + seen["alone"])
    lab.wait_for(f"{name(1)} alone, its guest answering", primary_alone, 90,
                 interval=0.5)
    fig["h_alone"] = seen["alone"]
    fig["h_http"] = web.first_ok_after(t0 + seen["alone"]) - t0
    expect_scores(vm, 1, {1: SCORE_CURRENT, 2: SCORE_STALE}, f"({step})")
    st = vm.status(1)
    check(st.get("pid") == pri_pid, f"({step}) {name(1)}'s QEMU is pid "
          f"{st.get('pid')}, not {pri_pid}")
    # The stale secondary is replaced while the link is still down; the
    # primary's attempts to protect it fail fast and harm nothing.
    lab.wait_for(f"{name(2)}'s stale secondary replaced",
                 lambda: single()[2] == "waiting-for-primary"
                 and vm.status(2).get("pid") != state["sec_pid"], 60,
                 interval=0.5)
    echo.roundtrip(f"with the replication link down ({step})")
    t1 = time.monotonic()
    lab.run(2, ["nft", "delete", "table", "inet", "colo_link"], check=True)
    wait_protected(lab, vm, 1, 2, step, 120)
    fig["h_colo"] = time.monotonic() - t1
    echo.roundtrip(f"after the replication link healed ({step})")
    disk = workload_checked(shell, step)
    lab.wait_for("the disks of both nodes equal", lambda: same_content(
        lab.node_path(1, DISK), lab.node_path(2, DISK)), 10, interval=1)
    state["sec_pid"] = vm.status(2).get("pid")
    say(f"({step}) replication link cut: {name(1)} alone "
        f"{fig['h_alone']:.1f}s, HTTP works {fig['h_http']:.1f}s, "
        f"{name(2)} stale and restarted, one guest throughout; healed->COLO "
        f"running {fig['h_colo']:.1f}s; echo connection kept, {disk}, "
        f"disks equal")
    shell.ok("colo-workload start")
    time.sleep(2 * CHECKPOINT_DELAY_MS / 1000 + 1)


def hung_primary(lab, vm, web, shell, echo, state, fig):
    """(i) The primary's QEMU hangs (SIGSTOP): its monitor finds it hung,
    the cluster demotes and stops it (the stop kills it), and the
    secondary, still in step, is promoted and carries the guest on.  The
    restarted node is protected again."""
    name = lab.node_name
    step = "i"
    pri_pid = int(vm.status(1)["pid"])
    sec_pid = state["sec_pid"]
    shell.close()
    t0 = time.monotonic()
    os.kill(pri_pid, signal.SIGSTOP)
    seen = {}

    def taken_over():
        roles = vm.clone_roles(2)
        if roles and roles[0] == [name(2)] and "promoted" not in seen:
            seen["promoted"] = time.monotonic() - t0
        if "http" not in seen and web.first_ok_after(t0):
            seen["http"] = web.first_ok_after(t0) - t0
        return ("promoted" in seen and "http" in seen
                and vm.role(2)[0] == "alone")
    try:
        lab.wait_for(f"{name(2)} Promoted, its guest answering", taken_over,
                     120, interval=0.5)
        lab.wait_for(f"the hung QEMU {pri_pid} killed",
                     lambda: not is_live(pri_pid), 60, interval=0.5)
    finally:
        if is_live(pri_pid):
            os.kill(pri_pid, signal.SIGCONT)
    fig["i_promoted"], fig["i_http"] = seen["promoted"], seen["http"]
    st = vm.status(2)
    check(st.get("pid") == sec_pid, f"({step}) {name(2)}'s QEMU is pid "
          f"{st.get('pid')}, not the secondary {sec_pid}: the guest was "
          f"restarted, not failed over")
    echo.roundtrip(f"after the hang ({step})")
    disk = workload_checked(shell, step)
    shell.ok("colo-workload start")
    wait_protected(lab, vm, 2, 1, step, 180)
    fig["i_colo"] = time.monotonic() - t0
    echo.roundtrip(f"after the reprotection ({step})")
    say(f"({step}) SIGSTOP {name(1)}'s QEMU: {name(2)} Promoted "
        f"{fig['i_promoted']:.1f}s, HTTP works {fig['i_http']:.1f}s, the "
        f"hung QEMU killed, same QEMU (pid {sec_pid}) went on, echo "
        f"connection kept, {disk}; COLO running {name(2)} -> {name(1)} "
        f"{fig['i_colo']:.1f}s after the hang")


def is_live(pid):
    """@pid exists and is not a zombie (nobody reaps the lab's dead)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def consoles_clean(lab, vm):
    for i in lab.indices():
        alarms = [ln for ln in vm.console(i).splitlines()
                  if KERNEL_ALARMS.search(ln)]
        check(not alarms, f"{lab.node_name(i)}'s guest console: {alarms}")
    say("consoles clean: no kernel complaint on either node")


def is_our_qemu(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return RUN_DIR.encode() in f.read()
    except OSError:
        return False


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--token-ms", type=int, default=1000,
                    help="corosync totem token timeout (default 1000; 0: "
                    "corosync's own default)")
    ap.add_argument("--disk-mib", type=int, default=DISK_MIB,
                    help=f"each node's disk size (default {DISK_MIB})")
    ap.add_argument("--fill", action="store_true",
                    help="fill node1's disk with random bytes first, so "
                    "that every copy to the other node moves real data")
    ap.add_argument("--crash-only", action="store_true",
                    help="stop after (c): one crash and one reprotection "
                    "(for figures; no partition, so any fence delay works)")
    ap.add_argument("--fence-delay", type=int, default=3,
                    help="priority-fencing-delay in seconds (default 3)")
    ap.add_argument("--build", metavar="DIR",
                    default=os.path.join(REPO, "build"),
                    help="the build tree (default: build/ of this checkout);"
                    " QEMU_BINARY, QEMU_IMG, QEMU_COLO and COLO_GUEST_DIR "
                    "override it")
    ap.add_argument("--save-logs", metavar="DIR",
                    help="copy the nodes' logs and consoles to DIR (new)")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()

    p = paths(args.build)
    preflight(p)
    stale = ClusterLab.reap_stale()
    if stale:
        say("removed leftovers of dead labs: " + " ".join(stale))
    install_agent()

    start = time.monotonic()
    fig = {}
    saved = []
    held = {}
    failed = False
    try:
        with ClusterLab(nodes=2, token_ms=args.token_ms or None,
                        guest_lan=True,
                        verbose=args.verbose) as lab:
            try:
                scenario(lab, p, args, fig, saved, held)
            except BaseException:
                failed = True
                if "vm" in held:
                    dump(lab, held["vm"], held.get("web"), saved)
                raise
            finally:
                if "web" in held:
                    held["web"].stop()
                if "shell" in held:
                    held["shell"].close()
                if args.save_logs:
                    save_logs(lab, args.save_logs)
    except Exception as e:
        traceback.print_exc()
        say(f"FAIL: {e}")
        failed = True
    # The lab killed everything in its nodes; QEMU must be among the dead.
    vm = held.get("vm")
    left = [pid for pid in (vm.pids if vm else ()) if is_our_qemu(pid)]
    if left:
        say(f"FAIL: QEMU processes outlived the lab: {left}")
        return 1
    if failed:
        return 1
    total = time.monotonic() - start
    parts = [f"token {args.token_ms or 'default'} ms, priority-fencing-delay "
             f"{args.fence_delay} s, colo-peer-timeout {PEER_TIMEOUT_MS} ms, "
             f"checkpoint-delay {CHECKPOINT_DELAY_MS} ms, disk "
             f"{args.disk_mib} MiB{' (random)' if args.fill else ''}",
             f"settle: COLO running {fig['colo']:.1f}s, web "
             f"{fig['http']:.1f}s after the commit",
             f"kill node1: fenced {fig['b_fenced']:.1f}s, Promoted "
             f"{fig['b_promoted']:.1f}s, kill->HTTP works "
             f"{fig['b_http']:.1f}s",
             f"rejoin->COLO running {fig['c_colo']:.1f}s"]
    if not args.crash_only:
        parts += [f"kill node2: kill->HTTP works {fig['d_http']:.1f}s",
                  f"rejoin->COLO running {fig['e_colo']:.1f}s",
                  f"cut: loser fenced {fig['f_fenced']:.1f}s, cut->HTTP "
                  f"works {fig['f_http']:.1f}s",
                  f"rejoin->COLO running {fig['g_colo']:.1f}s",
                  f"replication link cut: alone {fig['h_alone']:.1f}s, "
                  f"HTTP {fig['h_http']:.1f}s, healed->COLO "
                  f"{fig['h_colo']:.1f}s",
                  f"hung primary: Promoted {fig['i_promoted']:.1f}s, HTTP "
                  f"{fig['i_http']:.1f}s, COLO again {fig['i_colo']:.1f}s",
                  f"HTTP requests since the guest first answered "
                  f"{fig['ok']} ok, {fig['failed']} failed"]
    parts.append(f"total {total:.1f}s")
    say("figures: " + "; ".join(parts))
    say("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
