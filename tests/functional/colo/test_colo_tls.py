#!/usr/bin/env python3
"""COLO with TLS on every channel between the two hosts.

The pair of the network tests (the Linux guest on a tap in a namespace,
the documented proxy, a replicated disk), with x509 certificates that the
test makes: the migration stream and its return path, the NBD replication
link and the proxy chardevs that cross between the sides all run over
TLS, each side verifies its peer's certificate, and each accepts only its
peer's name (tls-authz).

  good             COLO starts, checkpoints, compares an echo connection's
                   packets, and fails over to the secondary, which goes on
                   with that connection; once more with two multifd
                   channels, which follow the migration's TLS;
  another CA       the secondary's certificate comes from another
                   authority,
  expired          or expired long ago,
  wrong primary    or the primary is not the one the secondary accepts
                   (it could inject checkpoints and write the disk),
  wrong secondary  or the secondary is not the one the primary accepts (it
                   could feed the comparator and read the mirrored
                   traffic):
                   the side that checks refuses, with an error that says
                   why; COLO does not start and the primary runs on.
"""

import os
import shutil
import sys
import tempfile
import time

from colo_net import EchoClient, compare_counters
from colo_pair import ColoPair
from colo_tls import Authority, TlsPair
from harness import Cases, NetNamespace, require_netns, wait_until

CHECKPOINT_DELAY_MS = 1000


def taps(ns, add):
    if add:
        ns.add_tap("tap-p")
        ns.ip("tuntap", "add", "dev", "tap-s", "mode", "tap")
        ns.ip("link", "set", "tap-s", "master", "br1")
        ns.ip("link", "set", "tap-s", "up")
    else:
        for tap in ("tap-p", "tap-s"):
            ns.run(["ip", "link", "delete", tap], check=False)


def chardev_connected(vm, chardev):
    return vm.cmd("qom-get", path=f"/chardevs/{chardev}",
                  property="connected")


def good(ns, pki, multifd=False):
    taps(ns, True)
    try:
        with ColoPair("tls-good", ns=ns, start="before", tls=pki["good"],
                      multifd=multifd,
                      delay_ms=CHECKPOINT_DELAY_MS) as pair:
            pair.start_colo()
            pair.pri.wait_ready(timeout=180)
            for chardev in ("mirror0", "sec_in"):
                wait_until(f"the secondary on {chardev}", lambda:
                           chardev_connected(pair.pri.vm, chardev), 30)
            # The shell's connect retries while ARP settles.
            pair.shells["primary"].check("true")
            echo = EchoClient(ns)
            for i in range(3):
                echo.roundtrip(f"over TLS {i}")
            matched = compare_counters(pair.pri.vm, ["matched"])["matched"]
            assert matched > 0, "colo-compare matched nothing"
            pair.wait_verified(pair.verified(pair.sec.vm)[0] + 2)
            pair.fail_over("primary")
            ns.ip("link", "set", "tap-p", "nomaster")
            ns.ip("link", "set", "tap-s", "master", "br0")
            echo.roundtrip("after the failover", timeout=60)
            echo.close()
            verified = pair.verified(pair.sec.vm)
            assert verified[1] == 0, f"digest mismatches: {verified}"
            return (f"{matched} packets matched, {verified[0]} checkpoints "
                    "verified, failover kept the echo connection")
    finally:
        taps(ns, False)


def refused(ns, pki, case, nbd, migration, chardevs, checker_says=None):
    """@nbd, @migration: the words the primary's error must contain for
    that channel ("" for any), or None where the check is not this
    side's; @chardevs:
    whether the primary's proxy refuses the secondary; @checker_says: what
    the secondary reports when it is the side that refuses."""
    taps(ns, True)
    try:
        with ColoPair(f"tls-{case}", ns=ns, start="after",
                      tls=pki[case]) as pair:
            pri = pair.pri.vm
            pair.pri.wait_ready(timeout=180)
            pair.listen()
            said = []
            if nbd is not None:
                try:
                    pair.attach_disk()
                    raise AssertionError("the NBD link was not refused")
                except AssertionError as e:
                    msg = str(e)
                    assert "drive_add failed" in msg and nbd in msg, msg
                    said.append(msg.split("drive_add failed: ")[-1].strip())
            if migration is not None:
                pair.migrate()
                wait_until("the migration to fail", lambda:
                           pri.cmd("query-migrate")["status"] == "failed",
                           60)
                desc = pri.cmd("query-migrate").get("error-desc", "")
                assert desc and migration in desc, desc
                said.append(desc)
            if chardevs:
                # The secondary retries every 200 ms; none may get in.
                time.sleep(3)
                for chardev in ("mirror0", "sec_in"):
                    assert not chardev_connected(pri, chardev), \
                        f"{chardev} accepted the secondary"
                said.append("mirror0 and sec_in refused the secondary")
            # COLO did not start; the primary's guest runs on.
            assert pri.cmd("query-colo-status")["mode"] == "none"
            assert pri.cmd("query-status")["status"] == "running"
            # The guest answers its shell (through the proxy, before COLO).
            pair.shells["primary"].check("true")
            if checker_says:
                log_path = os.path.join(pair.sec.vm.log_dir, "secondary.log")
                with open(log_path) as f:
                    text = f.read()
                assert checker_says in text, text[-2000:]
                said.append(f"the secondary: {checker_says}")
            return "; ".join(said)
    finally:
        taps(ns, False)


def make_pki(root):
    ca = Authority(root, "colo-ca")
    other = Authority(root, "other-ca")
    pri = ca.issue(root, "primary", "primary")
    sec = ca.issue(root, "secondary", "secondary")
    return {
        "good": TlsPair(pri, sec),
        "another-ca": TlsPair(pri, other.issue(root, "sec-other",
                                               "secondary")),
        "expired": TlsPair(pri, ca.issue(root, "sec-old", "secondary",
                                         expired=True), sanity_check=False),
        "wrong-primary": TlsPair(ca.issue(root, "pri-x", "intruder"), sec),
        "wrong-secondary": TlsPair(pri, ca.issue(root, "sec-x", "intruder")),
    }


def main():
    require_netns()
    if not shutil.which("certtool"):
        print("SKIP: certtool (gnutls-bin) is not installed")
        return 77
    root = tempfile.mkdtemp(prefix="colo-tls-")
    cases = Cases()
    try:
        pki = make_pki(root)
        with NetNamespace(bridge_addr="10.0.2.1/24") as ns:
            ns.ip("link", "add", "br1", "type", "bridge")
            ns.ip("link", "set", "br1", "up")
            cases.case("TLS on every channel", good, ns, pki)
            cases.case("TLS on every channel, two multifd channels", good,
                      ns, pki, True)
            # The primary checks the secondary's certificate as the client
            # of the NBD export and of the migration.
            cases.case("secondary from another CA", refused, ns, pki,
                      "another-ca", "certificate", "certificate", True)
            cases.case("expired secondary", refused, ns, pki, "expired",
                      "certificate", "certificate", True)
            # The secondary's authz turns the primary away and says so; the
            # primary hears only that the connection ended.
            cases.case("primary not named in the secondary's authz", refused,
                      ns, pki, "wrong-primary", "TLS", "", False,
                      "TLS x509 authz check for CN=intruder is denied")
            cases.case("secondary not named in the primary's authz", refused,
                      ns, pki, "wrong-secondary", None, None, True)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return cases.summary()


if __name__ == "__main__":
    sys.exit(main())
