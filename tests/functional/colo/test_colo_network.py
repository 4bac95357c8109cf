#!/usr/bin/env python3
"""A Linux guest under COLO with the network proxy keeps its TCP clients
through the loss of either host.

Layout, all inside a network namespace the test creates:

  client (10.0.2.1 on br0) --- tap-p --- primary QEMU
                                           filter-mirror    -> secondary
                                           filter-redirector -> colo-compare
                                           colo-compare      -> back to tap-p
  (br1, isolated)          --- tap-s --- secondary QEMU
                                           filter-redirector <- mirrored input
                                           filter-redirector -> colo-compare
                                           filter-rewriter

COLO starts before the guest boots, as the user guide does it (the primary
is started with -S and migrates at once), with colo-verify on: every
checkpoint proves the secondary's RAM equal to the primary's.  The client
talks to the guest's HTTP server and TCP echo server while COLO runs;
every answer it gets has been matched by colo-compare against the
secondary's.  Then one QEMU is killed:
- primary lost: the secondary reports it and waits; the test moves tap-s
  onto the client's bridge and tells the secondary to go on (yank, then
  x-colo-lost-heartbeat), as a cluster manager would, and the echo
  connections opened before the failover carry on with the secondary;
- secondary lost: the primary reports it and waits; told to go on, it
  runs alone, its filters and comparator step aside, and the same
  connections carry on.
Neither guest's console may show a kernel complaint (BUG, Oops, panic...),
and no checkpoint may have found the replica different.
"""

import json
import os
import shutil
import subprocess
import sys

from colo_net import (GUEST_IP, Client, colo_caps, compare_counters,
                      primary_proxy, secondary_proxy, tap_nic)
from colo_pair import console_alarms
from harness import (LinuxGuest, NetNamespace, decide_failover, log,
                     require_netns, wait_event, wait_until)

CHECKPOINT_DELAY_MS = 1000


COMPARE_COUNTERS = ("matched", "mismatches", "timeouts",
                    "checkpoint-requests", "released")
REWRITER_COUNTERS = ("tracked-connections", "rewritten-packets",
                     "untracked-packets", "closed-connections")


def counters(vm):
    return compare_counters(vm, COMPARE_COUNTERS)


def run_case(ns, lose, base_port):
    ns.add_tap("tap-p")
    ns.ip("tuntap", "add", "dev", "tap-s", "mode", "tap")
    ns.ip("link", "set", "tap-s", "master", "br1")
    ns.ip("link", "set", "tap-s", "up")

    with LinuxGuest("primary", tap_nic("tap-p"), ip=f"{GUEST_IP}/24",
                    wrapper=ns.exec_argv(),
                    extra_args=primary_proxy(base_port) + ["-S"]) as pri:
        with LinuxGuest("secondary", tap_nic("tap-s"), ip=f"{GUEST_IP}/24",
                        wrapper=ns.exec_argv(),
                        extra_args=["-incoming", "defer"]
                        + secondary_proxy(base_port)) as sec:
            colo_caps(sec.vm)
            sec.vm.cmd("migrate-incoming",
                       uri=f"tcp:127.0.0.1:{base_port + 3}")
            colo_caps(pri.vm)
            pri.vm.cmd("migrate-set-parameters",
                       **{"x-checkpoint-delay": CHECKPOINT_DELAY_MS})
            pri.vm.cmd("migrate", uri=f"tcp:127.0.0.1:{base_port + 3}")
            wait_until("COLO on both sides", lambda:
                       pri.vm.cmd("query-colo-status")["mode"] == "primary"
                       and sec.vm.cmd("query-colo-status")["mode"]
                       == "secondary")
            wait_event(sec.vm, "RESUME", 60)
            # The guest boots under COLO.
            pri.wait_ready(timeout=180)
            log(f"{lose}: COLO running with the network proxy")

            client = Client(ns)
            dump = None
            # COLO_NET_DEBUG=1: keep a capture and print the proxy's state.
            if os.environ.get("COLO_NET_DEBUG") and shutil.which("tcpdump"):
                dump = subprocess.Popen(ns.exec_argv() + [
                    "tcpdump", "-U", "-n", "-i", "any", "-w",
                    f"/tmp/colo-net-{lose}.pcap", "tcp"],
                    stdout=open(f"/tmp/colo-net-{lose}.dump", "w"),
                    stderr=subprocess.DEVNULL)
            try:
                client.do("open early", retry_for=30)
                for i in range(5):
                    client.do(f"echo early ping-{i}")
                client.do("http")
                # A checkpoint taken after all that: discard older events
                # and see two more, the first may have begun before.
                sec.vm.get_qmp_events(wait=False)
                wait_event(sec.vm, "RESUME", 60)
                wait_event(sec.vm, "RESUME", 60)
                # This one lives between checkpoints: at failover the
                # secondary's sequence numbers and clock still differ.
                client.do("open late")
                client.do("echo late hello")
                seen = counters(pri.vm)
                log(f"{lose}: before failover: {json.dumps(seen)}")
                assert seen["matched"] > 0, seen

                lost, survivor = (pri, sec) if lose == "primary" else \
                                 (sec, pri)
                lost.vm.kill()
                if lose == "primary":
                    # The secondary's link replaces the primary's.
                    ns.ip("link", "delete", "tap-p")
                    ns.ip("link", "set", "tap-s", "master", "br0")
                event = wait_event(survivor.vm, "COLO_EXIT", 60)
                assert event["data"]["reason"] == "error", event
                # It waits for a decision, as a cluster manager would give.
                decide_failover(survivor.vm)

                # Connections opened under COLO carry on with the survivor.
                client.do("echo early after-failover", retry_for=60)
                client.do("echo late after-failover", retry_for=60)
                client.do("open fresh", retry_for=30)
                client.do("echo fresh new")
                client.do("http")
                # Counted on each side for the whole session.
                status = survivor.vm.cmd("query-colo-status")
                assert status.get("verified-checkpoints", 0) > 0, status
                assert status["verify-mismatches"] == 0, status
                for g in (pri, sec):
                    alarms = console_alarms(g.console())
                    assert not alarms, f"{g.vm._name} guest: {alarms}"
                log(f"{lose} lost: the {event['data']['mode']} kept both "
                    "echo connections and serves new ones; "
                    f"{status['verified-checkpoints']} checkpoints "
                    "verified equal, both consoles clean")
            except BaseException:
                survivor = sec if lose == "primary" else pri
                for vm, obj, names in (
                        (sec.vm, "rew0", REWRITER_COUNTERS),
                        (pri.vm, "cmp", COMPARE_COUNTERS)):
                    try:
                        log(f"{obj}: " + json.dumps(
                            {n: vm.cmd("qom-get", path="/objects/" + obj,
                                       property=n) for n in names}))
                    except Exception:
                        pass
                if os.environ.get("COLO_NET_DEBUG"):
                    log(ns.run(["ip", "-s", "link"], check=False).stdout)
                    log(ns.run(["bridge", "fdb", "show"], check=False).stdout)
                    log(ns.run(["ip", "neigh"], check=False).stdout)
                    log(survivor.vm.cmd("human-monitor-command",
                                        **{"command-line": "info network"}))
                log("primary console:\n" + pri.console()[-1500:])
                log("secondary console:\n" + sec.console()[-1500:])
                raise
            finally:
                client.close()
                if dump:
                    dump.terminate()
    for tap in ("tap-p", "tap-s"):
        ns.run(["ip", "link", "delete", tap], check=False)


def main():
    require_netns()
    with NetNamespace(bridge_addr="10.0.2.1/24") as ns:
        ns.ip("link", "add", "br1", "type", "bridge")
        ns.ip("link", "set", "br1", "up")
        run_case(ns, "primary", 9100)
        run_case(ns, "secondary", 9200)
    return 0


if __name__ == "__main__":
    sys.exit(main())
