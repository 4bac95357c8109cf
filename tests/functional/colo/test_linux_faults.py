#!/usr/bin/env python3
"""A Linux guest under COLO loses neither an acknowledged disk write nor a
client's TCP connection, whatever breaks between its two hosts.

    test_linux_faults.py [FAULT...]      (default: every fault)

Both QEMUs run inside a network namespace the test creates, set up as the
user guide does it: the guest's NIC on a tap device behind the network
proxy (filter-mirror, filter-redirector, colo-compare on the primary;
filter-redirector and filter-rewriter on the secondary), its virtio disk
replicated (quorum with a replication child over NBD on the primary,
replication over active and hidden images on the secondary), COLO started
before the guest boots, colo-verify on.  A client on the primary's bridge
holds a TCP connection to the guest's echo server, and the guest writes
numbered records to its disk, each flushed, all along.

The migration is plain or multifd.  Then one fault, at steady state or
right after the primary stopped for a checkpoint:
  kill               the other side's QEMU gets SIGKILL
  hang               the other side's QEMU gets SIGSTOP
  cut                every link between the QEMUs drops its packets
  cut_to_secondary   ... only those towards the secondary
  cut_to_primary     ... only those towards the primary
  yank               the other side's migration is yanked
(links are cut with nftables on the namespace's loopback, by the ports of the
migration stream, the NBD export and the proxy's two crossing chardevs.)

Each fault is played twice, once for each side chosen to go on.  Checks:
every side that can still speak reports the loss (COLO_EXIT reason
"error") within colo-peer-timeout plus a margin, and neither runs its
guest; the test decides as documented (yank, then x-colo-lost-heartbeat
on the survivor), moves the client's link to the survivor when that is
the secondary, and heals a cut link; then exactly one guest runs, the
other stays stopped, the client's echo connection carries on, the
guest's last acknowledged records are on its disk, no checkpoint found
the replica different, and neither console shows a kernel complaint.
"""

import os
import signal
import sys
import time

from colo_net import EchoClient
from colo_pair import ColoPair, console_alarms
from harness import (NetNamespace, decide_failover, log, require_netns,
                     wait_event)

FAULTS = ("kill", "hang", "cut", "cut_to_secondary", "cut_to_primary",
          "yank")
PEER_TIMEOUT_S = 10          # colo-peer-timeout's default
REPORT_MARGIN_S = 40         # what two TCG guests on two cores add to it
CHECKPOINT_DELAY_MS = 1000


class LinkCutter:
    """Drops the packets that cross between the two QEMUs.

    Both run in one namespace and talk over its loopback, so an nftables
    rule that matches a link's server port stands in for a broken
    network: the packets vanish and TCP retransmits into the void, as it
    would on a real partition.
    """

    TABLE = "colo_cut"

    def __init__(self, ns, on_secondary, on_primary):
        self.ns = ns
        self.on_secondary = on_secondary    # ports the secondary serves
        self.on_primary = on_primary        # ports the primary serves
        self.active = False

    def _rules(self, towards):
        def ports(which):
            return "{ " + ", ".join(str(p) for p in which) + " }"
        rules = []
        if towards in ("both", "secondary"):
            rules += [f"tcp dport {ports(self.on_secondary)} drop",
                      f"tcp sport {ports(self.on_primary)} drop"]
        if towards in ("both", "primary"):
            rules += [f"tcp sport {ports(self.on_secondary)} drop",
                      f"tcp dport {ports(self.on_primary)} drop"]
        return rules

    def cut(self, towards):
        ruleset = "\n".join(
            [f"table inet {self.TABLE} {{",
             "  chain out {",
             "    type filter hook output priority 0; policy accept;"]
            + [f"    {r}" for r in self._rules(towards)] + ["  }", "}"])
        self.ns.run(["nft", "-f", "-"], input=ruleset)
        self.active = True

    def heal(self):
        if self.active:
            self.ns.run(["nft", "delete", "table", "inet", self.TABLE])
            self.active = False


def not_running(vm):
    return vm.cmd("query-status")["status"] != "running"


def assert_waiting(vm, side):
    """Reported, in COLO mode still, its guest stopped."""
    status = vm.cmd("query-colo-status")
    assert status["mode"] == side and status["reason"] == "peer-lost", \
        f"{side}: {status}"
    assert not_running(vm), f"{side}: its guest runs on its own"


def wait_report(vm, side, since):
    event = wait_event(vm, "COLO_EXIT", PEER_TIMEOUT_S + REPORT_MARGIN_S)
    assert event["data"]["reason"] == "error", f"{side}: {event}"
    took = time.monotonic() - since
    assert took < PEER_TIMEOUT_S + REPORT_MARGIN_S, \
        f"{side}: reported after {took:.0f} s"
    return took


def inject(fault, other, cutter):
    if fault == "kill":
        other.vm.kill()
    elif fault == "hang":
        os.kill(other.vm.get_pid(), signal.SIGSTOP)
    elif fault == "cut":
        cutter.cut("both")
    elif fault == "cut_to_secondary":
        cutter.cut("secondary")
    elif fault == "cut_to_primary":
        cutter.cut("primary")
    elif fault == "yank":
        other.vm.cmd("yank", instances=[{"type": "migration"}])
    else:
        raise ValueError(fault)


def run_case(ns, fault, survivor, phase, transport):
    name = f"{fault}-{transport}-{phase}-{survivor}-goes-on"
    ns.add_tap("tap-p")
    ns.ip("tuntap", "add", "dev", "tap-s", "mode", "tap")
    ns.ip("link", "set", "tap-s", "master", "br1")
    ns.ip("link", "set", "tap-s", "up")
    began = time.monotonic()
    echo = None
    with ColoPair(name, ns=ns, start="before", multifd=transport == "multifd",
                  delay_ms=CHECKPOINT_DELAY_MS) as pair:
        cutter = LinkCutter(ns, (pair.ports["migration"], pair.ports["nbd"]),
                            (ColoPair.PROXY_PORT, ColoPair.PROXY_PORT + 1))
        keep, lose = ((pair.pri, pair.sec) if survivor == "primary"
                      else (pair.sec, pair.pri))
        other_side = "secondary" if survivor == "primary" else "primary"
        try:
            pair.start_colo()
            pair.pri.wait_ready(timeout=180)
            pair.shells["primary"].check("colo-workload start")
            echo = EchoClient(ns)
            for i in range(3):
                echo.roundtrip(f"{name} before {i}")
            # Two checkpoints with the writes and the connection in them.
            pair.wait_verified(pair.verified(pair.sec.vm)[0] + 2)
            if phase == "checkpoint":
                pair.pri.vm.get_qmp_events(wait=False)
                wait_event(pair.pri.vm, "STOP", 60)

            since = time.monotonic()
            inject(fault, lose, cutter)
            took = wait_report(keep.vm, survivor, since)
            assert_waiting(keep.vm, survivor)
            other_speaks = fault not in ("kill", "hang")
            if other_speaks:
                wait_report(lose.vm, other_side, since)
                assert_waiting(lose.vm, other_side)
            log(f"{name}: the {survivor} reported in {took:.1f} s; "
                "neither side went live by itself")

            # The decision, as a cluster manager would take it.
            decide_failover(keep.vm)
            pair.leave_replication(survivor)
            if survivor == "secondary":
                ns.ip("link", "set", "tap-p", "nomaster")
                ns.ip("link", "set", "tap-s", "master", "br0")
            cutter.heal()
            if fault == "hang":
                # Back, it finds its peer gone: it reports, and waits.
                os.kill(lose.vm.get_pid(), signal.SIGCONT)
                wait_report(lose.vm, other_side, time.monotonic())
                assert_waiting(lose.vm, other_side)

            echo.roundtrip(f"{name} after")
            shell = pair.shells[survivor]
            shell.check("colo-workload stop")
            disk = shell.check("colo-workload check").strip()
            assert disk.startswith("check ok"), f"{name}: {disk}"
            echo.roundtrip(f"{name} at the end")

            # Exactly one guest runs; the other never went live.
            assert keep.vm.cmd("query-status")["status"] == "running"
            if fault != "kill":
                assert_waiting(lose.vm, other_side)
            status = keep.vm.cmd("query-colo-status")
            assert status["verify-mismatches"] == 0, f"{name}: {status}"
            for g in (pair.pri, pair.sec):
                alarms = console_alarms(g.console())
                assert not alarms, f"{name}: {g.vm._name} guest: {alarms}"
            log(f"{name}: ok: one guest runs, {disk}, the echo connection "
                f"carried on, {status['verified-checkpoints']} checkpoints "
                f"verified equal ({time.monotonic() - began:.0f} s)")
        except BaseException:
            if fault == "hang":
                try:
                    os.kill(lose.vm.get_pid(), signal.SIGCONT)
                except (OSError, TypeError):
                    pass
            for side, g in (("primary", pair.pri), ("secondary", pair.sec)):
                log(f"--- {side} console (end) ---\n{g.console()[-2000:]}")
            raise
        finally:
            cutter.heal()
            if echo:
                echo.close()
    for tap in ("tap-p", "tap-s"):
        ns.run(["ip", "link", "delete", tap], check=False)


def cases(faults):
    """Each fault with each survivor.  The phase alternates so that every
    (phase, survivor) pair comes up for half of the faults, and the
    transport goes from plain to multifd from one fault to the next: the
    qtest matrix (make faults) has every combination on a small guest."""
    for i, fault in enumerate(faults):
        for j, survivor in enumerate(("secondary", "primary")):
            yield (fault, survivor, ("steady", "checkpoint")[(i + j) % 2],
                   ("plain", "multifd")[FAULTS.index(fault) % 2])


def main(argv):
    faults = argv[1:] or FAULTS
    unknown = [f for f in faults if f not in FAULTS]
    if unknown:
        print(f"unknown faults: {unknown}; known: {FAULTS}", file=sys.stderr)
        return 2
    require_netns()
    with NetNamespace(bridge_addr="10.0.2.1/24") as ns:
        ns.ip("link", "add", "br1", "type", "bridge")
        ns.ip("link", "set", "br1", "up")
        for case in cases(faults):
            run_case(ns, *case)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
