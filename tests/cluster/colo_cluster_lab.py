"""A real Corosync + Pacemaker cluster built from namespaces on one host.

Tests of the COLO cluster integration need genuine cluster daemons that can
crash, lose their network and be fenced, but the test machines have no
systemd, no VMs and no containers.  ClusterLab gives each cluster node

  * its own network namespace, whose eth0 (10.99.0.<i>/24) is a veth into a
    bridge that lives in a separate "switch" namespace, so one link can be
    cut by setting the node's switch port down;
  * an "anchor" process (sleep) that holds a private mount and UTS
    namespace: the node's /etc/corosync, /var/lib/{corosync,pacemaker},
    /var/log/{corosync,pacemaker} and /var/lib/qemu-colo (a VM's disks,
    which outlive a reboot) are bind mounts of directories in the lab
    dir, and /run and /dev/shm are fresh tmpfs.  Every daemon and command of
    the node is started with `nsenter` into the anchor, so they all share
    that view; the PID namespace is the host's, so the harness can see and
    kill any of them.
  * with guest_lan=True, a second network for the nodes' guests: a bridge
    br0 in each node, whose port lan0 is a veth into a bridge in the "guest
    LAN" namespace clab<pid>lan (lab.lan_ns), which holds the clients'
    address 10.0.2.1/24.  A guest's tap joins its node's br0; the nodes
    themselves have no address on it.

Booting a node means a new anchor (hence an empty /run, as after a real
reboot) followed by `corosync -f` and `pacemakerd`.  A node crash kills its
daemons but keeps the anchor; a power cut kills every process in the node's
mount namespace, anchor included.

Why it is built this way:
  * Resource agents (ocf:pacemaker:Stateful, Dummy) and Pacemaker itself
    keep state in /run; a shared /run would make one node's probe see the
    other node's resources.  libqb keeps IPC rings in /dev/shm, and its
    sockets are abstract unix sockets, scoped by network namespace: cluster
    commands must therefore run inside the node (see ClusterLab.run).
  * `ip netns exec` is used under the anchor's `unshare` so that /sys
    matches the network namespace; mount propagation is private so nothing
    leaks into the host.
  * After a cold start the controller waits dc-deadtime before electing a
    DC (20 s by default).  Each node's first CIB is seeded with a shorter
    dc-deadtime to keep tests quick.
  * A killed anchor may linger as a zombie until its parent reaps it, and a
    zombie still answers kill(pid, 0): liveness is judged from
    /proc/<pid>/stat and from the process's mount namespace instead.
  * Corosync's two_node quorum keeps both halves of a split quorate, so both
    sides race to fence each other.  Pacemaker's priority-fencing-delay with
    a resource priority lets the node holding the more important resources
    shoot first (see ClusterLab.fence_primitive).

The lab fence agent (/usr/sbin/fence_<tag>, where the fencer looks for
agents) is this module run through a tiny wrapper; it exists only while the
lab does.  It reads its options on stdin like any fence agent, takes the
lab dir as the device parameter `lab_dir`, and powers a node off as above.

Names carry the harness PID (namespaces clab<pid>n<i>, clab<pid>br and
clab<pid>lan, lab dir /var/tmp/colo-cluster-lab-<pid>-*) so that concurrent
labs and other tests' namespaces never clash.  Leaving the `with` block
removes all of it.

API (node numbers start at 1; node i is "node<i>" at 10.99.0.<i>):
  ClusterLab(nodes=2, token_ms=None, consensus_ms=None, fencing=True,
             lab_dir=None, dc_deadtime="5s", verbose=False, guest_lan=False)
  start_node(i) / start_all()    boot: new anchor, corosync -f, pacemakerd
  kill_node(i)                   crash: SIGKILL all but the anchor
  power_off(i)                   power cut: SIGKILL everything, anchor too
  is_up(i), pacemaker_running(i)
  run(i, argv, timeout=30)       command inside node i -> CompletedProcess
  crm(i, *args), crm_configure(i, text), fence_primitive(rsc_id)
  snapshot(via) -> Snapshot      parsed `crm_mon --output-as=xml`
  wait_online(nodes, timeout), wait_for(what, predicate, timeout)
  resource_nodes(resource, role, via), promoted_on(resource, via)
  cut_link(i) / heal_link(i)     node i's switch port down / up
  node_path(i, path)             host path of node i's private @path
  node_ip(i), node_name(i), node_index(name), log_path(i, which),
  dump_logs(), ClusterLab.reap_stale() (leftovers of killed harnesses)

Example:

    with ClusterLab(nodes=2, token_ms=1000) as lab:
        lab.start_all()
        lab.wait_online()
        lab.crm_configure(1, lab.fence_primitive() + "...")
        lab.kill_node(1)
        ...

Python standard library only; needs root, iproute2, util-linux, corosync,
pacemaker and crmsh (buildsys/install-deps.sh installs them).
"""

import grp
import os
import pwd
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET

SUBNET = "10.99.0"
PREFIX_LEN = 24
LAB_ROOT = "/var/tmp"
LAB_DIR_PREFIX = "colo-cluster-lab-"
FENCE_DIR = "/usr/sbin"
TAG_RE = re.compile(r"^clab(\d+)(?:s\d+)?$")
NETNS_RE = re.compile(r"^(clab(\d+)(?:s\d+)?)(?:n\d+|br|lan)$")

# Host directory -> per-node directory under <lab>/<node>/ bind-mounted on it.
NODE_MOUNTS = (
    ("/etc/corosync", "etc-corosync"),
    ("/var/lib/corosync", "lib-corosync"),
    ("/var/lib/pacemaker", "lib-pacemaker"),
    ("/var/log/corosync", "log-corosync"),
    ("/var/log/pacemaker", "log-pacemaker"),
    ("/var/lib/qemu-colo", "lib-qemu-colo"),
)
# Mount points of NODE_MOUNTS that no package makes: the lab makes them
# (empty, and left in place: another lab may be using them).
MADE_MOUNT_POINTS = ("/var/lib/qemu-colo",)

# The guest LAN (ClusterLab(guest_lan=True)): a bridge in a namespace of its
# own holds the clients' address, and each node has a bridge GUEST_BRIDGE
# with a veth port (lan0) to it, for the taps of the node's guests.
GUEST_LAN_ADDR = "10.0.2.1"
GUEST_LAN_PREFIX_LEN = 24
GUEST_BRIDGE = "br0"

REQUIRED_TOOLS = ("ip", "unshare", "nsenter", "mount", "hostname", "sleep",
                  "corosync", "corosync-cfgtool", "pacemakerd", "crm_mon",
                  "cibadmin", "crm")

ROLE_ALIASES = {"Master": "Promoted", "Slave": "Unpromoted"}


class LabError(RuntimeError):
    pass


# --------------------------------------------------------------------------
# Process helpers, shared by the harness and the fence agent.

def _all_pids():
    for name in os.listdir("/proc"):
        if name.isdigit():
            yield int(name)


def proc_state(pid):
    """One-letter state of @pid ("R", "S", "Z", ...) or None if it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            data = f.read()
    except OSError:
        return None
    # The command name is in parentheses and may itself contain ") ".
    return data.rpartition(")")[2].split()[0]


def ns_of(pid, kind="mnt"):
    """Namespace identity such as "mnt:[4026532261]", or None."""
    try:
        return os.readlink(f"/proc/{pid}/ns/{kind}")
    except OSError:
        return None


def is_running(pid):
    """True unless @pid is gone or only a zombie waiting to be reaped."""
    return proc_state(pid) not in (None, "Z", "X", "x")


def live_pids_in_ns(ns, kind="mnt"):
    return [pid for pid in _all_pids()
            if ns_of(pid, kind) == ns and is_running(pid)]


def kill_ns(ns, kind="mnt", spare=(), timeout=10.0, reap=None, net=None):
    """SIGKILL every live process in namespace @ns except @spare, until none
    is left (a dying daemon may still fork).  True when all are gone.
    With @net (network namespace ids), only the processes in one of them."""
    if ns in (ns_of("self", kind), ns_of(1, kind)):
        # A wrong record must never take the host down with it.
        raise LabError(f"refusing to kill the host's or our own {ns}")
    deadline = time.monotonic() + timeout
    while True:
        pids = [p for p in live_pids_in_ns(ns, kind) if p not in spare
                and (net is None or ns_of(p, "net") in net)]
        if not pids:
            return True
        if time.monotonic() > deadline:
            return False
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if reap:
            reap()
        time.sleep(0.05)


def read_anchor(node_dir):
    """(pid, mount ns) recorded for the node's current boot, or None."""
    try:
        with open(os.path.join(node_dir, "anchor")) as f:
            pid, ns = f.read().split()
        return int(pid), ns
    except (OSError, ValueError):
        return None


def anchor_running(record):
    """A node is up while its anchor lives in the recorded namespace (the
    namespace check also guards against a recycled PID)."""
    if record is None:
        return False
    pid, ns = record
    return is_running(pid) and ns_of(pid) == ns


# --------------------------------------------------------------------------
# The lab fence agent.

FENCE_METADATA = """<?xml version="1.0" ?>
<resource-agent name="{name}" shortdesc="Power off a cluster lab node">
<longdesc>Test-only agent installed by tests/cluster/colo_cluster_lab.py for
the life of one lab.  A lab node is a set of namespaces on a single host;
"off" and "reboot" SIGKILL every process in the node's mount namespace, which
is what a power cut does to it.  The harness boots nodes itself, so "on"
only reports whether the node is up.</longdesc>
<parameters>
<parameter name="lab_dir" unique="0" required="1">
<getopt mixed="--lab-dir=[path]"/>
<content type="string"/>
<shortdesc lang="en">Lab dir with the nodes' anchor records</shortdesc>
</parameter>
<parameter name="port" unique="0" required="0">
<getopt mixed="-n, --plug=[node]"/>
<content type="string"/>
<shortdesc lang="en">Lab node to act on</shortdesc>
</parameter>
<parameter name="action" unique="0" required="0">
<getopt mixed="-o, --action=[action]"/>
<content type="string" default="reboot"/>
<shortdesc lang="en">Fencing action</shortdesc>
</parameter>
</parameters>
<actions>
<action name="on"/>
<action name="off"/>
<action name="reboot"/>
<action name="status"/>
<action name="list"/>
<action name="monitor"/>
<action name="metadata"/>
<action name="validate-all"/>
</actions>
</resource-agent>
"""

_FENCE_OPTS = {"-o": "action", "--action": "action", "-n": "port",
               "--plug": "port", "--port": "port", "--lab-dir": "lab_dir"}


def _fence_options(argv, stdin):
    """Options from the command line, or else key=value lines on stdin (the
    way pacemaker-fenced passes them)."""
    opts = {}
    args = list(argv)
    while args:
        arg = args.pop(0)
        key, eq, value = arg.partition("=")
        if key not in _FENCE_OPTS:
            raise LabError(f"unknown argument {arg!r}")
        if not eq:
            if not args:
                raise LabError(f"{arg} needs a value")
            value = args.pop(0)
        opts[_FENCE_OPTS[key]] = value
    if not opts and stdin is not None and not stdin.isatty():
        for line in stdin:
            key, eq, value = line.strip().partition("=")
            if eq and not key.startswith("#"):
                opts[key.strip()] = value.strip()
    return opts


def fence_agent_main(argv, stdin, name=None):
    """Entry point of the installed agent; returns the exit status
    (0 success / on, 1 failure, 2 off for "status")."""
    name = name or os.path.basename(sys.argv[0])
    try:
        opts = _fence_options(argv, stdin)
    except LabError as e:
        print(f"{name}: {e}", file=sys.stderr)
        return 1
    # "option" is the historical name of "action".
    action = opts.get("action") or opts.get("option") or "reboot"
    if action == "metadata":
        sys.stdout.write(FENCE_METADATA.format(name=name))
        return 0

    lab = opts.get("lab_dir", "")
    try:
        with open(os.path.join(lab, "nodes")) as f:
            nodes = f.read().split()
    except OSError as e:
        print(f"{name}: lab_dir {lab!r} is not a cluster lab: {e}",
              file=sys.stderr)
        return 1
    if action in ("monitor", "validate-all"):
        return 0
    if action == "list":
        for node in nodes:
            print(node)
        return 0

    target = opts.get("port") or opts.get("plug") or opts.get("nodename")
    if target not in nodes:
        print(f"{name}: {action} needs a lab node (one of {nodes}), "
              f"got {target!r}", file=sys.stderr)
        return 1
    record = read_anchor(os.path.join(lab, target))
    if action == "status":
        return 0 if anchor_running(record) else 2
    if action == "on":
        if anchor_running(record):
            return 0
        print(f"{name}: {target} is off; only the test harness boots it",
              file=sys.stderr)
        return 1
    if action in ("off", "reboot"):
        # "reboot" leaves the node off: the test decides when it boots.
        if not anchor_running(record):
            return 0
        try:
            gone = kill_ns(record[1], timeout=8.0)
        except LabError as e:
            print(f"{name}: {e}", file=sys.stderr)
            return 1
        return 0 if gone and not anchor_running(record) else 1
    print(f"{name}: unsupported action {action!r}", file=sys.stderr)
    return 1


# --------------------------------------------------------------------------
# crm_mon XML.

class Snapshot:
    """One `crm_mon --output-as=xml` view of the cluster, from one node."""

    def __init__(self, xml_text, via):
        self.via = via
        root = ET.fromstring(xml_text)
        dc = root.find("summary/current_dc")
        self.dc = (dc.get("name") if dc is not None
                   and dc.get("present") == "true" else None)
        self.nodes = {n.get("name"): dict(n.attrib)
                      for n in root.findall("nodes/node")}
        # (primitive id, enclosing clone/group/bundle ids, role, nodes)
        self.instances = []
        res = root.find("resources")
        if res is not None:
            self._walk(res, ())

    def _walk(self, elem, parents):
        for child in elem:
            if child.tag == "resource":
                role = child.get("role", "")
                role = ROLE_ALIASES.get(role, role)
                on = [n.get("name") for n in child.findall("node")]
                self.instances.append((child.get("id"), parents, role, on))
            elif child.tag in ("clone", "group", "bundle", "replica"):
                self._walk(child, parents + (child.get("id"),))

    @property
    def online(self):
        return {name for name, a in self.nodes.items()
                if a.get("online") == "true" and a.get("unclean") != "true"
                and a.get("pending") != "true"}

    def resource_nodes(self, resource, role=None):
        """Nodes where @resource (a primitive, or a clone/group holding it)
        is active, optionally only those where it has @role."""
        found = []
        for rid, parents, r, on in self.instances:
            if resource != rid and resource not in parents:
                continue
            if role is not None and r != role:
                continue
            if r in ("Stopped", ""):
                continue
            found.extend(on)
        return sorted(found)


# --------------------------------------------------------------------------
# The lab.

class ClusterLab:
    """A cluster of @nodes namespace nodes; use it as a context manager.

    Nodes are numbered from 1; node i is called node<i> (its corosync name
    and hostname) and has address 10.99.0.<i>.
    """

    _seq = 0

    def __init__(self, nodes=2, token_ms=None, consensus_ms=None,
                 fencing=True, lab_dir=None, dc_deadtime="5s",
                 verbose=False, guest_lan=False):
        if not 1 <= nodes <= 200:
            raise ValueError("nodes must be between 1 and 200")
        self.n = nodes
        self.token_ms = token_ms
        self.consensus_ms = consensus_ms
        self.dc_deadtime = dc_deadtime
        self.verbose = verbose
        seq = ClusterLab._seq
        ClusterLab._seq += 1
        # The PID keeps concurrent runs apart; seq keeps labs of one run apart.
        self.tag = f"clab{os.getpid()}" + (f"s{seq}" if seq else "")
        self.switch_ns = f"{self.tag}br"
        self.lan_ns = f"{self.tag}lan" if guest_lan else None
        self.fence_agent = f"fence_{self.tag}" if fencing else None
        self._lab_dir_arg = lab_dir
        self.lab_dir = None
        self._netns_made = []
        self._agent_path = None
        self._children = []          # every Popen we started, until reaped
        self._daemons = {}           # i -> {"corosync": Popen, ...}
        self._anchors = {}           # i -> (pid, mount ns) of current boot
        self._all_mnt_ns = set()     # every boot's namespace, for cleanup
        self._old_sigterm = None
        self._t0 = time.monotonic()

    # -- names ------------------------------------------------------------

    def node_name(self, i):
        return f"node{i}"

    def node_index(self, name):
        return int(name.removeprefix("node"))

    def node_ip(self, i):
        return f"{SUBNET}.{i}"

    def netns(self, i):
        return f"{self.tag}n{i}"

    def node_dir(self, i):
        return os.path.join(self.lab_dir, self.node_name(i))

    def node_path(self, i, path):
        """Where node @i's @path (under one of NODE_MOUNTS) is on the host,
        so that the harness can read or prepare a node's private files."""
        for host_dir, sub in NODE_MOUNTS:
            if path == host_dir or path.startswith(host_dir + "/"):
                return os.path.join(self.node_dir(i), sub,
                                    os.path.relpath(path, host_dir))
        raise LabError(f"{path} is not private to a node")

    def indices(self):
        return range(1, self.n + 1)

    def log(self, msg):
        if self.verbose:
            print(f"[lab {time.monotonic() - self._t0:7.2f}] {msg}",
                  file=sys.stderr, flush=True)

    # -- set-up and tear-down ---------------------------------------------

    @staticmethod
    def missing_tools():
        return [t for t in REQUIRED_TOOLS if shutil.which(t) is None]

    def __enter__(self):
        if (threading.current_thread() is threading.main_thread()
                and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL):
            # Turn a plain `kill` of the test into an exception so that
            # __exit__ still cleans up.
            self._old_sigterm = signal.signal(signal.SIGTERM,
                                              _raise_on_sigterm)
        try:
            self._setup()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, exc_type, exc, tb):
        self.close(quiet=exc_type is not None)
        return False

    def _setup(self):
        missing = self.missing_tools()
        if missing:
            raise LabError("missing tools: " + " ".join(missing))
        for host_dir in MADE_MOUNT_POINTS:
            os.makedirs(host_dir, exist_ok=True)
        for host_dir, _ in NODE_MOUNTS:
            if not os.path.isdir(host_dir):
                raise LabError(f"{host_dir} is missing (is the package "
                               "installed?)")
        if self._lab_dir_arg:
            os.makedirs(self._lab_dir_arg)   # must be new: we delete it
            self.lab_dir = self._lab_dir_arg
        else:
            self.lab_dir = tempfile.mkdtemp(
                prefix=f"{LAB_DIR_PREFIX}{os.getpid()}-", dir=LAB_ROOT)
        self.log(f"lab dir {self.lab_dir}, tag {self.tag}")
        self._write_config()
        self._make_network()
        if self.lan_ns:
            self._make_guest_lan()
        if self.fence_agent:
            self._install_fence_agent()

    def close(self, quiet=False):
        """Remove everything the lab made; safe to call more than once."""
        problems = []
        # Every boot's mount namespace, then anything else still inside a
        # lab network namespace (e.g. an anchor that had not yet unshared).
        # The number of a mount namespace that has ended is soon given to
        # a new one (every `ip netns exec` makes one), so only processes
        # that are in a lab network namespace too are the lab's.
        lab_net = {_netns_id(name) for name in self._netns_made} - {None}
        for ns in sorted(self._all_mnt_ns):
            try:
                if not kill_ns(ns, reap=self._reap, net=lab_net):
                    problems.append(f"processes survive in {ns}")
            except LabError as e:
                problems.append(str(e))
        for name in self._netns_made:
            ns = _netns_id(name)
            if ns and not kill_ns(ns, kind="net", reap=self._reap):
                problems.append(f"processes survive in netns {name}")
        for p in self._children:
            try:
                p.wait(timeout=5)
            except subprocess.TimeoutExpired:
                problems.append(f"child {p.pid} did not exit")
        self._children = [p for p in self._children if p.poll() is None]
        for name in reversed(self._netns_made):
            r = _run(["ip", "netns", "delete", name], check=False)
            if r.returncode != 0 and os.path.exists(f"/run/netns/{name}"):
                problems.append(f"ip netns delete {name}: {r.stderr.strip()}")
        self._netns_made = []
        if self._agent_path:
            try:
                os.unlink(self._agent_path)
            except FileNotFoundError:
                pass
            self._agent_path = None
        if self.lab_dir:
            shutil.rmtree(self.lab_dir, ignore_errors=True)
            if os.path.exists(self.lab_dir):
                problems.append(f"could not remove {self.lab_dir}")
            self.lab_dir = None
        if self._old_sigterm is not None:
            signal.signal(signal.SIGTERM, self._old_sigterm)
            self._old_sigterm = None
        self._anchors.clear()
        self._daemons.clear()
        if problems:
            msg = "lab cleanup: " + "; ".join(problems)
            if quiet:
                print(msg, file=sys.stderr)
            else:
                raise LabError(msg)

    @classmethod
    def reap_stale(cls):
        """Remove what labs of dead processes left behind (after a SIGKILL
        of the harness, say).  Touches only clab<pid>* namespaces, fence
        agents and lab dirs whose <pid> no longer exists."""
        def dead(pid):
            return int(pid) != os.getpid() and not os.path.exists(
                f"/proc/{pid}")
        removed = []
        for name in os.listdir("/run/netns") if os.path.isdir(
                "/run/netns") else ():
            m = NETNS_RE.match(name)
            if m and dead(m.group(2)):
                ns = _netns_id(name)
                if ns:
                    kill_ns(ns, kind="net")
                _run(["ip", "netns", "delete", name], check=False)
                removed.append(name)
        for name in os.listdir(FENCE_DIR):
            m = TAG_RE.match(name.removeprefix("fence_"))
            if name.startswith("fence_") and m and dead(m.group(1)):
                os.unlink(os.path.join(FENCE_DIR, name))
                removed.append(name)
        for name in os.listdir(LAB_ROOT):
            m = re.match(re.escape(LAB_DIR_PREFIX) + r"(\d+)-", name)
            if m and dead(m.group(1)):
                shutil.rmtree(os.path.join(LAB_ROOT, name),
                              ignore_errors=True)
                removed.append(name)
        return removed

    def _write_config(self):
        # One key for the whole cluster; knet needs it for crypto.
        key = os.urandom(256)
        empty_cib = _run(["cibadmin", "--empty"]).stdout
        with open(os.path.join(self.lab_dir, "nodes"), "w") as f:
            f.write("".join(self.node_name(i) + "\n" for i in self.indices()))
        hacluster = pwd.getpwnam("hacluster").pw_uid
        haclient = grp.getgrnam("haclient").gr_gid
        conf = self.corosync_conf()
        for i in self.indices():
            d = self.node_dir(i)
            os.makedirs(d)
            for _, sub in NODE_MOUNTS:
                os.mkdir(os.path.join(d, sub))
            etc = os.path.join(d, "etc-corosync")
            os.mkdir(os.path.join(etc, "uidgid.d"))
            _write(os.path.join(etc, "corosync.conf"), conf)
            _write(os.path.join(etc, "authkey"), key, mode=0o400)
            # Pacemaker's daemons run as hacluster and write these.
            lib = os.path.join(d, "lib-pacemaker")
            for sub in ("cib", "pengine", "blackbox", "cores"):
                p = os.path.join(lib, sub)
                os.mkdir(p, 0o750)
                os.chown(p, hacluster, haclient)
            logd = os.path.join(d, "log-pacemaker")
            os.chown(logd, hacluster, haclient)
            os.chmod(logd, 0o770)
            cib = os.path.join(lib, "cib", "cib.xml")
            _write(cib, self._seed_cib(empty_cib), mode=0o600)
            os.chown(cib, hacluster, haclient)

    def _seed_cib(self, empty_cib):
        """An empty CIB whose only setting is a short dc-deadtime, so that
        a cold start elects a DC in seconds rather than 20 s."""
        root = ET.fromstring(empty_cib)
        if self.dc_deadtime:
            crm_config = root.find("configuration/crm_config")
            props = ET.SubElement(crm_config, "cluster_property_set",
                                  id="cib-bootstrap-options")
            ET.SubElement(props, "nvpair",
                          id="cib-bootstrap-options-dc-deadtime",
                          name="dc-deadtime", value=str(self.dc_deadtime))
        return ET.tostring(root, encoding="unicode") + "\n"

    def corosync_conf(self):
        totem = [
            "version: 2",
            f"cluster_name: {self.tag}",
            "transport: knet",
            "crypto_cipher: aes256",
            "crypto_hash: sha256",
        ]
        if self.token_ms:
            totem.append(f"token: {int(self.token_ms)}")
        if self.consensus_ms:
            totem.append(f"consensus: {int(self.consensus_ms)}")
        nodes = []
        for i in self.indices():
            nodes.append(_conf_block("node", [
                f"name: {self.node_name(i)}",
                f"nodeid: {i}",
                f"ring0_addr: {self.node_ip(i)}",
            ]))
        quorum = ["provider: corosync_votequorum"]
        if self.n == 2:
            quorum.append("two_node: 1")
        logging = [
            "to_logfile: yes",
            "logfile: /var/log/corosync/corosync.log",
            "to_stderr: no",
            "to_syslog: no",
            "timestamp: on",
        ]
        return "\n".join([
            "# Generated by tests/cluster/colo_cluster_lab.py",
            _conf_block("totem", totem),
            "nodelist {\n" + _indent("\n".join(nodes)) + "\n}",
            _conf_block("quorum", quorum),
            _conf_block("logging", logging),
        ]) + "\n"

    def _make_network(self):
        for name in [self.switch_ns] + [self.netns(i) for i in self.indices()]:
            _run(["ip", "netns", "add", name])
            self._netns_made.append(name)
            # No IPv6: nothing but 10.99.0.0/24 may travel on the lab wires.
            _run(["ip", "netns", "exec", name, "sysctl", "-q", "-w",
                  "net.ipv6.conf.all.disable_ipv6=1",
                  "net.ipv6.conf.default.disable_ipv6=1"], check=False)
        cmds = ["link add br0 type bridge", "link set br0 up",
                "link set lo up"]
        for i in self.indices():
            # The node end is created inside the node, already named eth0.
            cmds += [f"link add p{i} type veth peer name eth0 netns "
                     f"{self.netns(i)}",
                     f"link set p{i} master br0", f"link set p{i} up"]
        _ip_batch(self.switch_ns, cmds)
        for i in self.indices():
            _ip_batch(self.netns(i), [
                "link set lo up",
                f"addr add {self.node_ip(i)}/{PREFIX_LEN} dev eth0",
                "link set eth0 up"])

    def _make_guest_lan(self):
        _run(["ip", "netns", "add", self.lan_ns])
        self._netns_made.append(self.lan_ns)
        _run(["ip", "netns", "exec", self.lan_ns, "sysctl", "-q", "-w",
              "net.ipv6.conf.all.disable_ipv6=1",
              "net.ipv6.conf.default.disable_ipv6=1"], check=False)
        cmds = ["link set lo up", "link add br0 type bridge",
                f"addr add {GUEST_LAN_ADDR}/{GUEST_LAN_PREFIX_LEN} dev br0",
                "link set br0 up"]
        for i in self.indices():
            cmds += [f"link add g{i} type veth peer name lan0 netns "
                     f"{self.netns(i)}",
                     f"link set g{i} master br0", f"link set g{i} up"]
        _ip_batch(self.lan_ns, cmds)
        for i in self.indices():
            _ip_batch(self.netns(i), [
                f"link add {GUEST_BRIDGE} type bridge",
                f"link set lan0 master {GUEST_BRIDGE}", "link set lan0 up",
                f"link set {GUEST_BRIDGE} up"])

    def _install_fence_agent(self):
        here = os.path.dirname(os.path.abspath(__file__))
        module = os.path.splitext(os.path.basename(__file__))[0]
        path = os.path.join(FENCE_DIR, self.fence_agent)
        if os.path.exists(path):
            raise LabError(f"{path} already exists")
        text = (
            "#!/usr/bin/python3 -B\n"
            f"# Fence agent of a cluster lab run by PID {os.getpid()}; "
            "removed when the lab ends.\n"
            "import sys\n"
            f"sys.path.insert(0, {here!r})\n"
            f"import {module}\n"
            f"sys.exit({module}.fence_agent_main(sys.argv[1:], sys.stdin))\n")
        _write(path, text, mode=0o755)
        self._agent_path = path
        self.log(f"installed {path}")

    # -- nodes --------------------------------------------------------------

    def _reap(self):
        self._children = [p for p in self._children if p.poll() is None]

    def _spawn(self, argv, out_name, i, env=None):
        path = os.path.join(self.node_dir(i), out_name)
        with open(path, "ab") as out:
            p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out,
                                 stderr=subprocess.STDOUT, env=env,
                                 start_new_session=True)
        self._children.append(p)
        return p

    def _boot_anchor(self, i):
        d = self.node_dir(i)
        script = ["set -e", f"hostname {self.node_name(i)}"]
        for host_dir, sub in NODE_MOUNTS:
            script.append(f"mount --bind {shlex.quote(os.path.join(d, sub))}"
                          f" {host_dir}")
        script += ["mount -t tmpfs -o mode=0755 labrun /run",
                   "mount -t tmpfs -o mode=1777 labshm /dev/shm",
                   "exec sleep infinity"]
        p = self._spawn(["ip", "netns", "exec", self.netns(i),
                         "unshare", "--mount", "--uts",
                         "--propagation", "private",
                         "/bin/sh", "-c", "\n".join(script)],
                        "anchor.out", i)
        # ip netns exec, unshare and sh all exec in place, so p.pid ends up
        # as the sleep; its mounts are done once it is.
        host_ns = ns_of(1)
        deadline = time.monotonic() + 15
        while True:
            if p.poll() is not None:
                raise LabError(f"{self.node_name(i)}: anchor exited "
                               f"({p.returncode}): " + self._tail(
                                   os.path.join(d, "anchor.out"), 10))
            try:
                with open(f"/proc/{p.pid}/comm") as f:
                    comm = f.read().strip()
            except OSError:
                comm = ""
            ns = ns_of(p.pid)
            if comm == "sleep" and ns and ns != host_ns:
                break
            if time.monotonic() > deadline:
                raise LabError(f"{self.node_name(i)}: anchor not ready")
            time.sleep(0.02)
        self._all_mnt_ns.add(ns)
        self._anchors[i] = (p.pid, ns)
        tmp = os.path.join(d, "anchor.tmp")
        _write(tmp, f"{p.pid} {ns}\n")
        os.rename(tmp, os.path.join(d, "anchor"))  # the fence agent reads it
        return p.pid

    def _enter(self, i):
        rec = self._anchors.get(i)
        if not anchor_running(rec):
            raise LabError(f"{self.node_name(i)} is not up")
        return ["nsenter", "-t", str(rec[0]), "-n", "-m", "-u"]

    def start_node(self, i, timeout=30):
        """Boot node @i: fresh anchor, then corosync and pacemakerd.  A node
        that is still up is powered off first.  Returns at once after
        pacemakerd is launched; see wait_online()."""
        if self.is_up(i):
            self.power_off(i)
        self.log(f"booting {self.node_name(i)}")
        self._boot_anchor(i)
        enter = self._enter(i)
        for name in ("corosync.out", "pacemakerd.out"):
            with open(os.path.join(self.node_dir(i), name), "a") as f:
                f.write(f"==== boot at {time.ctime()}\n")
        cs = self._spawn(enter + ["corosync", "-f"], "corosync.out", i)
        self._daemons[i] = {"corosync": cs}
        deadline = time.monotonic() + timeout
        while self.run(i, ["corosync-cfgtool", "-s"]).returncode != 0:
            if cs.poll() is not None or time.monotonic() > deadline:
                raise LabError(f"{self.node_name(i)}: corosync did not start: "
                               + self.tail_log(i, "corosync", 10))
            time.sleep(0.1)
        env = dict(os.environ, PCMK_logfacility="none",
                   PCMK_logfile="/var/log/pacemaker/pacemaker.log")
        self._daemons[i]["pacemakerd"] = self._spawn(
            enter + ["pacemakerd"], "pacemakerd.out", i, env=env)

    def start_all(self):
        for i in self.indices():
            self.start_node(i)

    def kill_node(self, i):
        """Crash node @i: SIGKILL every process of the node but its anchor
        (so its /run survives, as it would until a reboot).  Returns the
        monotonic time of the kill."""
        rec = self._anchors.get(i)
        if rec is None:
            raise LabError(f"{self.node_name(i)} was never booted")
        t = time.monotonic()
        if not kill_ns(rec[1], spare={rec[0]}, reap=self._reap,
                       net=self._node_net(i)):
            raise LabError(f"{self.node_name(i)}: processes survive SIGKILL")
        self._reap()
        self.log(f"crashed {self.node_name(i)}")
        return t

    def power_off(self, i):
        """Cut node @i's power: every process of the node dies, anchor too."""
        rec = self._anchors.get(i)
        if rec is None:
            return
        if not kill_ns(rec[1], reap=self._reap, net=self._node_net(i)):
            raise LabError(f"{self.node_name(i)}: processes survive SIGKILL")
        self._reap()
        self.log(f"powered off {self.node_name(i)}")

    def _node_net(self, i):
        """Node @i's network namespace id: with the mount namespace of a
        boot whose anchor may be gone, it tells the node's processes from
        those of a namespace that took over the number."""
        return {_netns_id(self.netns(i))}

    def is_up(self, i):
        """True while node @i has power (its anchor lives)."""
        return anchor_running(self._anchors.get(i))

    def pacemaker_running(self, i):
        p = self._daemons.get(i, {}).get("pacemakerd")
        return p is not None and self.is_up(i) and is_running(p.pid)

    def cut_link(self, i):
        """Unplug node @i from the switch."""
        _run(["ip", "-n", self.switch_ns, "link", "set", f"p{i}", "down"])
        self.log(f"cut link of {self.node_name(i)}")

    def heal_link(self, i):
        _run(["ip", "-n", self.switch_ns, "link", "set", f"p{i}", "up"])
        self.log(f"healed link of {self.node_name(i)}")

    # -- commands inside a node ---------------------------------------------

    def run(self, i, argv, timeout=30, check=False, input=None, env=None):
        """Run @argv inside node @i; returns a CompletedProcess (text)."""
        r = subprocess.run(self._enter(i) + list(argv), input=input,
                           capture_output=True, text=True, timeout=timeout,
                           env=env)
        if check and r.returncode != 0:
            raise LabError(f"{self.node_name(i)}: {' '.join(argv)} exited "
                           f"{r.returncode}: {r.stderr.strip()} "
                           f"{r.stdout.strip()}")
        return r

    def crm(self, i, *args, timeout=60, check=True, input=None):
        return self.run(i, ["crm", *args], timeout=timeout, check=check,
                        input=input)

    def crm_configure(self, i, text, timeout=90):
        """Apply crm configuration syntax @text in one transaction."""
        fd, path = tempfile.mkstemp(prefix="crm-", suffix=".txt",
                                    dir=self.lab_dir)
        with os.fdopen(fd, "w") as f:
            f.write(text)
        try:
            return self.crm(i, "configure", "load", "update", path,
                            timeout=timeout)
        finally:
            os.unlink(path)

    def fence_primitive(self, rsc_id="lab-fence", monitor="60s"):
        """crm line for a fence device that covers every lab node."""
        if not self.fence_agent:
            raise LabError("this lab was made with fencing=False")
        hosts = " ".join(self.node_name(i) for i in self.indices())
        return (f"primitive {rsc_id} stonith:{self.fence_agent} params "
                f"lab_dir={self.lab_dir} pcmk_host_list=\"{hosts}\" "
                f"pcmk_host_check=static-list op monitor interval={monitor}\n")

    # -- cluster state ------------------------------------------------------

    def _live_node(self):
        for i in self.indices():
            if self.pacemaker_running(i):
                return i
        return None

    def snapshot(self, via=None):
        """crm_mon's view from node @via (default: any node running
        pacemaker), or None while it cannot answer."""
        via = via if via is not None else self._live_node()
        if via is None or not self.is_up(via):
            return None
        try:
            r = self.run(via, ["crm_mon", "--one-shot", "--output-as=xml"],
                         timeout=15)
        except (subprocess.TimeoutExpired, LabError):
            return None
        if r.returncode != 0:
            return None
        try:
            return Snapshot(r.stdout, via)
        except ET.ParseError:
            return None

    def resource_nodes(self, resource, role=None, via=None):
        snap = self.snapshot(via)
        return None if snap is None else snap.resource_nodes(resource, role)

    def promoted_on(self, resource, via=None):
        return self.resource_nodes(resource, "Promoted", via)

    def wait_for(self, what, predicate, timeout, interval=0.2):
        """Poll @predicate until it returns something true; returns that and
        the seconds waited.  TimeoutError names @what."""
        start = time.monotonic()
        while True:
            value = predicate()
            if value:
                return value, time.monotonic() - start
            if time.monotonic() - start > timeout:
                raise TimeoutError(f"{what} (after {timeout}s)")
            self._reap()
            time.sleep(interval)

    def wait_online(self, nodes=None, timeout=120):
        """Wait until every node in @nodes (indices, default all) is up and
        every one of them sees all of them Online under a DC.  Returns the
        seconds waited."""
        nodes = list(nodes or self.indices())
        want = {self.node_name(i) for i in nodes}

        def all_agree():
            for i in nodes:
                snap = self.snapshot(i)
                if snap is None or not snap.dc or not want <= snap.online:
                    return False
            return True
        return self.wait_for(f"{sorted(want)} Online", all_agree,
                             timeout)[1]

    # -- diagnostics ----------------------------------------------------------

    def log_path(self, i, which):
        """which: corosync, pacemaker, or the stdout files corosync.out,
        pacemakerd.out, anchor.out."""
        d = self.node_dir(i)
        if which == "corosync":
            return os.path.join(d, "log-corosync", "corosync.log")
        if which == "pacemaker":
            return os.path.join(d, "log-pacemaker", "pacemaker.log")
        return os.path.join(d, which)

    @staticmethod
    def _tail(path, lines):
        try:
            with open(path, errors="replace") as f:
                return "".join(f.readlines()[-lines:])
        except OSError as e:
            return f"({e})"

    def tail_log(self, i, which, lines=30):
        return self._tail(self.log_path(i, which), lines)

    def dump_logs(self, out=sys.stderr, lines=40):
        if not self.lab_dir:
            return
        for i in self.indices():
            for which in ("corosync", "pacemaker"):
                print(f"---- {self.node_name(i)} {which} (last {lines} lines)",
                      file=out)
                print(self.tail_log(i, which, lines), file=out)


# --------------------------------------------------------------------------
# Small helpers.

def _raise_on_sigterm(signum, frame):
    raise SystemExit(128 + signum)


def _run(argv, check=True, input=None, timeout=30):
    r = subprocess.run(argv, input=input, capture_output=True, text=True,
                       timeout=timeout)
    if check and r.returncode != 0:
        raise LabError(f"{' '.join(argv)} exited {r.returncode}: "
                       f"{r.stderr.strip()}")
    return r


def _ip_batch(netns, cmds):
    _run(["ip", "-n", netns, "-batch", "-"], input="\n".join(cmds) + "\n")


def _netns_id(name):
    try:
        return f"net:[{os.stat(f'/run/netns/{name}').st_ino}]"
    except OSError:
        return None


def _write(path, data, mode=0o644):
    flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
    fd = os.open(path, flags, mode)
    with os.fdopen(fd, "wb" if isinstance(data, bytes) else "w") as f:
        f.write(data)
    os.chmod(path, mode)


def _indent(text, by="    "):
    return "\n".join(by + line if line else line for line in text.split("\n"))


def _conf_block(name, lines):
    return name + " {\n" + _indent("\n".join(lines)) + "\n}"


if __name__ == "__main__":
    # Lets the module itself be used as the fence agent for manual checks:
    #   colo_cluster_lab.py --lab-dir DIR -o status -n node1
    sys.exit(fence_agent_main(sys.argv[1:], sys.stdin))
