#!/usr/bin/env python3
"""qemu-colo with [colo] tls-dir: every channel between the nodes over TLS.

The pair of test_qemu_colo (nodes n1 on 127.0.0.1 and n2 on 127.0.0.2 in
a network namespace the test creates, the Linux guest with one NIC and
one disk), each node with its own certificate (CN=n1, CN=n2, for its
address) from one authority that the test makes with certtool:

  protect over TLS   n1 protects to n2: COLO runs, colo-compare matches
                     the guest's HTTP answers and checkpoints go on; each
                     QEMU uses the credentials and the peer's name that
                     qemu-colo gave it (migration, NBD export, proxy).
                     Then n1 is killed, n2 fails over and protects back
                     to n1 with a disk resync: the same, the other way;
  another CA         n2's certificate comes from another authority:
                     n1's protect fails and says why, n1's guest runs
                     on alone and answers HTTP.
"""

import os
import shutil
import sys
import tempfile
import time

from colo_tls import Authority
from harness import Cases, NetNamespace, env_path, require_netns, wait_until
from qemu.qmp.legacy import QEMUMonitorProtocol
from test_qemu_colo import (COLO_VM, ERROR, NODE_ADDRESS, NOT_RUNNING,
                            RUNNING, Node, checkpoints, http_ok, make_disk,
                            report_lost_peer)


def qmp(node, command, **args):
    """@command on @node's QEMU, by its session monitor (qemu-colo is not
    using it between two of its commands)."""
    mon = QEMUMonitorProtocol(os.path.join(node.run_dir, "qmp.sock"))
    try:
        mon.connect()
        return mon.cmd(command, **args)
    finally:
        mon.close()


def start_pair(ns, n1, n2):
    n2.ok("start", "secondary")
    n2.expect(RUNNING, role="waiting-for-primary", vm="inmigrate")
    n1.ok("start", "primary")
    n1.wait_ready()
    http_ok(ns)


def protected_over_tls(ns, primary, secondary):
    """COLO runs from @primary to @secondary, each with the credentials
    and the peer's name qemu-colo gave it: the client's on the primary,
    the server's and the primary's name on the secondary."""
    primary.expect(RUNNING, role="primary", colo="running", vm=COLO_VM)
    secondary.expect(RUNNING, role="secondary", colo="running")
    http_ok(ns)
    wait_until("colo-compare matching packets over TLS", lambda: int(
        primary.status()[1].get("net0.matched", 0)) > 0, 60)
    first = checkpoints(primary)
    wait_until("two more checkpoints",
               lambda: checkpoints(primary) >= first + 2, 60)
    pri = qmp(primary, "query-migrate-parameters")
    sec = qmp(secondary, "query-migrate-parameters")
    assert pri["tls-creds"] == "colo-tls-client", pri
    assert sec["tls-creds"] == "colo-tls-server", sec
    assert sec["tls-authz"] == "colo-tls-peer", sec
    who = qmp(secondary, "qom-get", path="/objects/colo-tls-peer",
              property="identity")
    assert who == f"CN={primary.name}", f"{secondary.name} accepts {who!r}"
    return (f"{primary.name} -> {secondary.name}: "
            f"{checkpoints(primary)} checkpoints, "
            f"{primary.status()[1]['net0.matched']} packets matched")


def protect_over_tls(ns, n1, n2):
    """Both ways: n1 protects to n2; n1 is lost, n2 fails over, and
    protects back to n1, once a server and now the client."""
    start_pair(ns, n1, n2)
    n1.ok("protect")
    there = protected_over_tls(ns, n1, n2)
    n1.kill()
    report_lost_peer(n2, time.monotonic())
    n2.ok("failover")
    n2.expect(RUNNING, role="alone", colo="off", vm="running")
    http_ok(ns)
    n1.ok("start", "secondary")
    n2.ok("-t", "120", "protect", "--resync")
    back = protected_over_tls(ns, n2, n1)
    return f"{there}; {back}"


def refused(ns, n1, n2):
    start_pair(ns, n1, n2)
    rc, out = n1.colo("-t", "60", "protect")
    assert rc == ERROR, f"protect to a stranger exited {rc}:\n{out}"
    assert "certificate" in out, f"protect does not say why:\n{out}"
    n1.expect(RUNNING, role="alone", colo="off", vm="running")
    http_ok(ns)
    return out.strip().splitlines()[-1]


def stop(*nodes):
    for node in nodes:
        node.ok("stop")
        node.expect(NOT_RUNNING, qemu="stopped")


def main():
    require_netns()
    env_path("QEMU_COLO")
    if not shutil.which("certtool"):
        print("SKIP: certtool (gnutls-bin) is not installed")
        return 77
    tmp = tempfile.mkdtemp(prefix=f"qemu-colo-tls-{os.getpid()}-")
    cases = Cases()
    try:
        ca = Authority(tmp, "colo-ca")
        other = Authority(tmp, "other-ca")
        creds = {name: ca.issue(tmp, f"pki-{name}", name, ip=address)
                 for name, address in NODE_ADDRESS.items()}
        stranger = other.issue(tmp, "pki-n2-other", "n2",
                               ip=NODE_ADDRESS["n2"])
        with NetNamespace(bridge_addr="10.0.2.1/24") as ns:
            nodes = {name: Node(name, tmp, ns) for name in NODE_ADDRESS}
            for name, node in nodes.items():
                make_disk(node.disk)
                node.write_config(tls_dir=creds[name])

            def run(case):
                """@case on the pair, then both stopped; what the nodes
                said if it failed."""
                try:
                    what = case(ns, nodes["n1"], nodes["n2"])
                    stop(*nodes.values())
                    return what
                except BaseException:
                    for node in nodes.values():
                        node.dump()
                    raise
                finally:
                    for node in nodes.values():
                        node.cleanup()

            cases.case("protect over TLS", run, protect_over_tls)
            nodes["n2"].write_config(tls_dir=stranger)
            cases.case("secondary from another CA", run, refused)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return cases.summary()

if __name__ == "__main__":
    sys.exit(main())
