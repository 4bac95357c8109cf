#!/usr/bin/python3
"""How fast Pacemaker fails a COLO guest over, and protects it again.

    bench/colo-cluster-failover.py [BUILD] [--runs N]
    (make bench-cluster)

Figures, not a test: tests/cluster/test_colo_cluster.py with --crash-only
(settle, SIGKILL of the node running the guest, its reboot and the
reprotection) in two cluster set-ups, each --runs times (default 1):

  default   Corosync's own token timeout, priority-fencing-delay 3 s (the
            node running the guest wins a fence race in a partition), a
            1 GiB disk filled with random bytes: the first protection and
            the reprotection each copy the whole disk;
  tuned     token 400 ms, no fencing delay, a 64 MiB disk.  Without the
            delay a partition is a fence race that either node may win: a
            set-up for a cluster whose nodes cannot lose sight of each
            other without one of them being dead (redundant links).
            (With 300 ms, Corosync lost its membership while the first
            protection loaded both cores under TCG.)

Printed per set-up: time from the kill to the client's first successful
HTTP request, when the dead node was fenced and when the survivor was
promoted, and the time from the node's reboot to COLO running again.
Anchors from the issue: a default Pacemaker pair promotes a stateful
resource in about 7 s on this machine; the goal for the tuned set-up is
under 2 s from the kill to the client's request working again.
"""

import argparse
import os
import re
import statistics
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
TEST = os.path.join(HERE, "..", "tests", "cluster", "test_colo_cluster.py")

SETUPS = (
    ("default", ["--token-ms", "0", "--fence-delay", "3",
                 "--disk-mib", "1024", "--fill"]),
    ("tuned", ["--token-ms", "400", "--fence-delay", "0"]),
)

FIGURES = {
    "kill->HTTP works": r"kill->HTTP works ([\d.]+)s",
    "fenced": r"kill node1: fenced ([\d.]+)s",
    "promoted": r"Promoted ([\d.]+)s, kill",
    "rejoin->COLO running": r"rejoin->COLO running ([\d.]+)s",
    "first protection": r"settle: COLO running ([\d.]+)s",
}


def run_once(build, extra):
    r = subprocess.run([sys.executable, TEST, "--build", build,
                        "--crash-only"] + extra, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=900)
    line = next((ln for ln in r.stdout.splitlines() if "figures:" in ln),
                None)
    if r.returncode != 0 or line is None:
        sys.stdout.write(r.stdout[-4000:])
        sys.exit(f"the cluster test failed (exit {r.returncode})")
    return {name: float(re.search(rx, line).group(1))
            for name, rx in FIGURES.items()}


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("build", nargs="?",
                    default=os.path.join(HERE, "..", "build"))
    ap.add_argument("--runs", type=int, default=1)
    args = ap.parse_args()
    build = os.path.abspath(args.build)

    results = {}
    for name, extra in SETUPS:
        results[name] = []
        for i in range(args.runs):
            print(f"{name} set-up, run {i + 1} of {args.runs} ...",
                  flush=True)
            results[name].append(run_once(build, extra))

    print()
    print(f"{'figure (seconds, median of runs)':36}" +
          "".join(f"{name:>10}" for name, _ in SETUPS))
    for fig in FIGURES:
        row = [statistics.median(r[fig] for r in results[name])
               for name, _ in SETUPS]
        print(f"{fig:36}" + "".join(f"{v:10.1f}" for v in row))
    print("  default: Corosync's token, priority-fencing-delay 3 s, 1 GiB "
          "random disk copied by each protection")
    print("  tuned:   token 400 ms, no fencing delay, 64 MiB disk")
    tuned = statistics.median(r["kill->HTTP works"]
                              for r in results["tuned"])
    print(f"goal: kill->HTTP works under 2 s tuned: {tuned:.1f} s, "
          f"{'met' if tuned < 2 else 'not met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
