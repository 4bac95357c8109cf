#!/usr/bin/env python3
"""After every checkpoint the secondary is an exact replica of the primary.

The Linux test guest runs under COLO with the colo-verify capability on, so
that each checkpoint compares a digest of the secondary's RAM with the
primary's.  COLO starts before the guest boots, while it boots, or after;
on pc and q35; with and without multifd; with an e1000 or a virtio NIC
serving HTTP to a client on this host, and the guest writing numbered
records to its replicated virtio disk and churning memory all along.

Each case runs until the secondary has verified at least 50 checkpoints,
then the guest writes a marker, a checkpoint covers it, and one side is
killed.  Passing means: every digest equal, no kernel complaint (BUG,
Oops, panic, general protection, WARNING, Call Trace) on either guest's
console, and the survivor's guest still answers: it runs commands, has
the marker, its last acknowledged disk records are on its disk, and its
web server answers.

Before the fix this test exists for, a secondary whose guest booted under
COLO ran code the checkpoint had overwritten (TCG kept the blocks it had
translated from the old page contents) and oopsed in most runs.
"""

import sys
import time

from colo_pair import ColoPair, HttpLoad, http_get
from harness import log

CHECKPOINTS = 50

# (start, machine, transport, NIC, survivor): every start with both
# machines, both transports and both NICs, and either survivor.
CASES = [
    ("before", "pc", "plain", "e1000", "secondary"),
    ("during", "pc", "multifd", "virtio", "primary"),
    ("after", "q35", "plain", "virtio", "secondary"),
    ("before", "q35", "multifd", "e1000", "primary"),
    ("during", "q35", "plain", "e1000", "secondary"),
    ("after", "pc", "multifd", "e1000", "primary"),
]


def run_case(start, machine, transport, nic, survivor):
    name = f"{start}-{machine}-{transport}-{nic}-{survivor}"
    lose = "primary" if survivor == "secondary" else "secondary"
    with ColoPair(name, machine=machine, nic=nic,
                  multifd=transport == "multifd", start=start) as pair:
        try:
            began = time.monotonic()
            pair.start_colo()
            pair.pri.wait_ready(timeout=180)
            shell = pair.shells["primary"]
            shell.check("colo-workload start")
            load = HttpLoad(pair.http_port("primary")).start()

            pair.wait_verified(CHECKPOINTS)
            marker = f"marker-{name}-{time.time_ns()}"
            shell.check(f"echo {marker} >/tmp/marker")
            # A checkpoint that began after the marker covers it.
            done = pair.verified(pair.sec.vm)[0]
            pair.wait_verified(done + 2)
            load.stop()

            checked, mismatched = pair.verified(pair.sec.vm)
            pair.poll_events()
            assert mismatched == 0 and not pair.mismatches, \
                (f"{name}: the replica differed at {len(pair.mismatches)} "
                 f"reports, first: {pair.mismatches[:3]}")
            pri_checked, pri_mismatched = pair.verified(pair.pri.vm)
            assert pri_mismatched == 0, f"{name}: primary counts a mismatch"
            assert pri_checked > 0, f"{name}: the primary got no verdict"
            assert load.ok > 0, f"{name}: no HTTP answer during COLO"

            keep = pair.fail_over(lose)
            keeper = pair.shells[survivor]
            keeper.check("colo-workload stop")
            got = keeper.check("cat /tmp/marker").strip()
            assert got == marker, f"{name}: marker is '{got}'"
            disk = keeper.check("colo-workload check").strip()
            assert disk.startswith("check ok"), f"{name}: {disk}"
            http_get(pair.http_port(survivor))
            assert keep.vm.cmd("query-status")["status"] == "running"

            alarms = pair.alarms()
            assert not any(alarms.values()), \
                f"{name}: kernel complaints: {alarms}"
            log(f"{name}: {checked} checkpoints verified equal "
                f"(primary counted {pri_checked}), {load.ok} HTTP answers "
                f"({load.failed} refused while booting), {disk}; the "
                f"{survivor} took over healthy "
                f"({time.monotonic() - began:.0f} s)")
        except BaseException:
            for side, g in (("primary", pair.pri), ("secondary", pair.sec)):
                log(f"--- {side} console (end) ---\n{g.console()[-3000:]}")
            raise


def main():
    for case in CASES:
        run_case(*case)
    return 0


if __name__ == "__main__":
    sys.exit(main())
