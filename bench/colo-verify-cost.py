#!/usr/bin/python3
"""What the colo-verify capability costs a checkpoint: figures, not a test.

    bench/colo-verify-cost.py [BUILD] [--checkpoints N] [--mem MIB,...]
    (make bench-verify)

For each guest RAM size, the Linux test guest runs under COLO twice, once
without and once with colo-verify, after it has booted, with its disk and
memory workload running and x-checkpoint-delay 300 ms.  The figure is the
PVM's pause per checkpoint (its STOP to RESUME events, median and 99th
percentile over --checkpoints checkpoints), which with verification also
covers both sides hashing all guest RAM while the VMs are stopped and
the digest crossing the link.  Both QEMUs run on this host under TCG, so
the two sides' hashing competes for the same 2 cores.
"""

import argparse
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "functional", "colo"))
import standalone  # noqa: E402


def measure(mem, verify, checkpoints):
    from colo_pair import ColoPair

    with ColoPair(f"bench-{mem}-{int(verify)}", start="after", delay_ms=300,
                  verify=verify, mem=str(mem)) as pair:
        pair.start_colo()
        pair.shells["primary"].check("colo-workload start")
        pair.poll_events()
        pair.pauses.clear()
        deadline = time.monotonic() + 60 + checkpoints * 5
        while len(pair.pauses) < checkpoints:
            if time.monotonic() > deadline:
                raise TimeoutError("checkpoints too slow")
            time.sleep(0.5)
            pair.poll_events()
        if pair.mismatches:
            raise AssertionError(f"mismatches: {pair.mismatches}")
        ms = sorted(p * 1000 for p in pair.pauses[:checkpoints])
    return statistics.median(ms), ms[min(len(ms) - 1, int(len(ms) * 0.99))]


def main(argv):
    ap = argparse.ArgumentParser()
    ap.add_argument("build", nargs="?", default="build")
    ap.add_argument("--checkpoints", type=int, default=40)
    ap.add_argument("--mem", default="256,1024",
                    help="guest RAM sizes in MiB, comma-separated")
    args = ap.parse_args(argv[1:])
    standalone.prepare(args.build)

    print(f"PVM pause per checkpoint, {args.checkpoints} checkpoints each, "
          "TCG, Linux guest with its workload")
    print(f"{'guest RAM':>10}  {'verify off p50/p99':>20}  "
          f"{'verify on p50/p99':>20}  {'added p50':>10}")
    for mem in (int(m) for m in args.mem.split(",")):
        off = measure(mem, False, args.checkpoints)
        on = measure(mem, True, args.checkpoints)
        print(f"{mem:>7} MiB  {off[0]:>9.0f} / {off[1]:<6.0f} ms  "
              f"{on[0]:>9.0f} / {on[1]:<6.0f} ms  {on[0] - off[0]:>7.0f} ms",
              flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
