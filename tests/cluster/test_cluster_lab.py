#!/usr/bin/python3
"""Self-test of colo_cluster_lab: a real two-node Pacemaker cluster fails over.

    test_cluster_lab.py [--token-ms MS] [--fence-delay S]

Exit 0 passes, 77 skips (reason on a line starting with "SKIP:"), anything
else fails.  Needs root and the cluster packages (buildsys/install-deps.sh).

Steps, with a promotable ocf:pacemaker:Stateful clone and the lab fence
device; priority-fencing-delay plus a priority on the clone make the node
holding Promoted win any fence race:
  (a) SIGKILL the node holding Promoted; time until the survivor is
      Promoted (the dead node must be fenced first);
  (b) boot the killed node again; it must rejoin as Unpromoted while the
      survivor keeps Promoted (stickiness);
  (c) unplug the Promoted node's link; afterwards exactly one node may be
      alive, it must be the Promoted one, and it must see the other offline.
"""

import argparse
import os
import subprocess
import sys
import time
import traceback

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from colo_cluster_lab import ClusterLab  # noqa: E402

SKIP_EXIT = 77
STATEFUL = "/usr/lib/ocf/resource.d/pacemaker/Stateful"
CLONE = "st-clone"


def skip(reason):
    print(f"SKIP: {reason}", flush=True)
    sys.exit(SKIP_EXIT)


def say(msg):
    print(msg, flush=True)


def preflight():
    if os.geteuid() != 0:
        skip("needs root (namespaces, mounts, /usr/sbin fence agent)")
    missing = ClusterLab.missing_tools()
    if missing:
        skip("missing " + " ".join(missing)
             + "; run buildsys/install-deps.sh")
    if not os.path.exists(STATEFUL):
        skip(f"{STATEFUL} missing (package pacemaker-resource-agents)")
    r = subprocess.run(["unshare", "--net", "--mount", "--uts", "true"],
                       capture_output=True, text=True)
    if r.returncode != 0:
        skip("namespaces unavailable: " + r.stderr.strip())


def cluster_config(lab, fence_delay):
    return (
        "property cib-bootstrap-options: stonith-enabled=true "
        f"priority-fencing-delay={fence_delay}s\n"
        "rsc_defaults rsc-options: resource-stickiness=100\n"
        + lab.fence_primitive() +
        "primitive st ocf:pacemaker:Stateful"
        " op monitor interval=2s role=Promoted timeout=20s"
        " op monitor interval=3s role=Unpromoted timeout=20s"
        # Priority makes the Promoted holder (+1) the fence-race winner.
        " meta priority=10\n"
        f"clone {CLONE} st meta promotable=true promoted-max=1"
        " promoted-node-max=1 clone-max=2 clone-node-max=1\n")


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)


def scenario(lab, fence_delay, fig):
    name = lab.node_name

    lab.start_all()
    fig["formed"] = lab.wait_online(timeout=120)
    say(f"cluster formed: both nodes Online after {fig['formed']:.1f}s")

    lab.crm_configure(1, cluster_config(lab, fence_delay))

    def settled():
        snap = lab.snapshot()
        if snap is None:
            return None
        promoted = snap.resource_nodes(CLONE, "Promoted")
        unpromoted = snap.resource_nodes(CLONE, "Unpromoted")
        if len(promoted) == 1 and len(unpromoted) == 1:
            return promoted[0]
        return None
    holder, t = lab.wait_for("one Promoted and one Unpromoted", settled, 60)
    say(f"configured: {holder} Promoted {t:.1f}s after the crm commit")

    # (a) crash the Promoted node.
    victim = lab.node_index(holder)
    survivor = 3 - victim
    t0 = lab.kill_node(victim)
    seen = {}

    def promoted_on_survivor():
        now = time.monotonic() - t0
        if "fenced" not in seen and not lab.is_up(victim):
            seen["fenced"] = now
        snap = lab.snapshot(survivor)
        if snap is None:
            return False
        if "offline" not in seen and name(victim) not in snap.online:
            seen["offline"] = now
        return (snap.resource_nodes(CLONE, "Promoted") == [name(survivor)]
                and name(victim) not in snap.online)
    lab.wait_for(f"{name(survivor)} Promoted", promoted_on_survivor, 90,
                 interval=0.1)
    fig["promote"] = time.monotonic() - t0
    check(not lab.is_up(victim),
          f"{name(survivor)} was promoted but {name(victim)} was not fenced")
    fig["offline"] = seen.get("offline", fig["promote"])
    fig["fenced"] = seen.get("fenced", fig["promote"])
    say(f"(a) SIGKILL {name(victim)}: seen offline {fig['offline']:.2f}s, "
        f"fenced {fig['fenced']:.2f}s, {name(survivor)} Promoted "
        f"{fig['promote']:.2f}s")

    # (b) boot it again: it must come back Unpromoted.
    t0 = time.monotonic()
    lab.start_node(victim)
    fig["rejoin"] = lab.wait_online(timeout=90)

    def rejoined_unpromoted():
        for via in (victim, survivor):
            snap = lab.snapshot(via)
            if (snap is None
                    or snap.resource_nodes(CLONE, "Unpromoted")
                    != [name(victim)]
                    or snap.resource_nodes(CLONE, "Promoted")
                    != [name(survivor)]):
                return False
        return True
    lab.wait_for(f"{name(victim)} Unpromoted", rejoined_unpromoted, 60)
    fig["unpromoted"] = time.monotonic() - t0
    say(f"(b) reboot {name(victim)}: Online {fig['rejoin']:.1f}s, "
        f"Unpromoted {fig['unpromoted']:.1f}s, Promoted stays on "
        f"{name(survivor)}")

    # (c) unplug the Promoted node; the priority must let it win.
    holder = survivor
    t0 = time.monotonic()
    lab.cut_link(holder)

    def one_down():
        return [i for i in lab.indices() if not lab.is_up(i)]
    down, t = lab.wait_for("a node fenced after the partition", one_down,
                           90, interval=0.1)
    fig["partition_fenced"] = t
    # Give a losing fence op (delayed by priority-fencing-delay) time to
    # land, had the loser survived long enough to issue it.
    time.sleep(fence_delay + 2)
    up = [i for i in lab.indices() if lab.is_up(i)]
    check(len(up) == 1, f"after the partition nodes up: {up}, expected one")
    winner = up[0]
    check(winner == holder,
          f"{name(winner)} won the fence race, expected the Promoted "
          f"{name(holder)}")
    loser = 3 - winner

    def winner_promoted():
        snap = lab.snapshot(winner)
        return (snap is not None
                and snap.resource_nodes(CLONE, "Promoted") == [name(winner)]
                and name(loser) not in snap.online)
    lab.wait_for(f"{name(winner)} alone and Promoted", winner_promoted, 30)
    fig["partition_total"] = time.monotonic() - t0
    lab.heal_link(holder)
    say(f"(c) partition: {name(loser)} fenced {t:.2f}s after the cut; "
        f"{name(winner)} alone, Promoted; checked at "
        f"{fig['partition_total']:.1f}s")


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--token-ms", type=int, default=1000,
                    help="corosync totem token timeout (default 1000)")
    ap.add_argument("--fence-delay", type=int, default=3,
                    help="priority-fencing-delay in seconds (default 3)")
    ap.add_argument("--verbose", action="store_true")
    args = ap.parse_args()

    preflight()
    stale = ClusterLab.reap_stale()
    if stale:
        say("removed leftovers of dead labs: " + " ".join(stale))

    start = time.monotonic()
    fig = {}
    try:
        with ClusterLab(nodes=2, token_ms=args.token_ms,
                        verbose=args.verbose) as lab:
            try:
                scenario(lab, args.fence_delay, fig)
            except BaseException:
                lab.dump_logs(sys.stderr)
                raise
    except Exception as e:
        traceback.print_exc()
        say(f"FAIL: {e}")
        return 1
    total = time.monotonic() - start
    say(f"figures: token {args.token_ms} ms, priority-fencing-delay "
        f"{args.fence_delay} s; promote after kill {fig['promote']:.2f}s "
        f"(offline {fig['offline']:.2f}s, fenced {fig['fenced']:.2f}s); "
        f"rejoin Unpromoted {fig['unpromoted']:.1f}s; partition loser "
        f"fenced {fig['partition_fenced']:.2f}s; total {total:.1f}s")
    say("PASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
