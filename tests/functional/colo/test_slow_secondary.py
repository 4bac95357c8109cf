#!/usr/bin/env python3
"""A secondary that is slow to stop for a checkpoint is not a dead peer.

The Linux test guest has a second disk, which it reads all the time with
O_DIRECT.  On the primary that disk answers at once; on the secondary it
is a null-co node with three seconds of latency, so whenever the
secondary stops its VM for a checkpoint it first waits for the read in
flight: for up to three seconds it owes the primary its CHECKPOINT_REPLY
and sends nothing else.  colo-peer-timeout is one second on both sides.

The secondary says it is alive while it works (keepalives on the
migration stream), so the primary must neither report a lost peer nor
give up: checkpoints go on, some of them longer than colo-peer-timeout,
every one verified equal, and neither side emits COLO_EXIT.  Without the
keepalives the primary would declare the secondary lost at the first
slow checkpoint.
"""

import sys

from colo_pair import ColoPair, event_time
from harness import log, wait_until

PEER_TIMEOUT_MS = 1000
DELAY_MS = 500
LATENCY_NS = 3 * 1000 * 1000 * 1000
SLOW_CHECKPOINTS = 3            # stops longer than colo-peer-timeout


def slow_disk(latency_ns):
    return ["-drive", "if=none,id=slow0,driver=null-co,size=16M,"
                      f"read-zeroes=on,latency-ns={latency_ns}",
            "-device", "virtio-blk-pci,drive=slow0,id=disk1"]


# In the guest: read /dev/vdb past the page cache, one block at a time.
READER = ("(while :; do dd if=/dev/vdb of=/dev/null bs=4096 count=1 "
          "iflag=direct 2>/dev/null; done) >/dev/null 2>&1 &")


class SlowStops:
    """How long the secondary took to stop for each checkpoint, from its
    events: from a RESUME to the next STOP is the checkpoint delay, then
    the wait for the read in flight (the STOP event comes only once the
    block layer has drained)."""

    def __init__(self, vm):
        self.vm = vm
        self.resumed_at = None
        self.all = []

    def poll(self):
        for e in self.vm.get_qmp_events(wait=False):
            if e["event"] == "RESUME":
                self.resumed_at = event_time(e)
            elif e["event"] == "STOP" and self.resumed_at:
                self.all.append(event_time(e) - self.resumed_at -
                                DELAY_MS / 1000)
                self.resumed_at = None
            elif e["event"] in ("COLO_EXIT", "COLO_PEER_LOST"):
                raise AssertionError(f"the secondary reported {e}")
        return [t for t in self.all if t * 1000 > PEER_TIMEOUT_MS]


def still_colo(pair):
    for side, g in (("primary", pair.pri), ("secondary", pair.sec)):
        status = g.vm.cmd("query-colo-status")
        if status["mode"] != side or status["reason"] != "none":
            raise AssertionError(f"the {side} stopped replicating: {status}")
    return True


def main():
    extra = {"primary": slow_disk(0), "secondary": slow_disk(LATENCY_NS)}
    with ColoPair("slow-secondary", delay_ms=DELAY_MS, extra_args=extra) as pair:
        try:
            for g in (pair.pri, pair.sec):
                g.vm.cmd("migrate-set-parameters",
                         **{"colo-peer-timeout": PEER_TIMEOUT_MS})
            pair.start_colo()
            shell = pair.shells["primary"]
            shell.check("dd if=/dev/vdb of=/dev/null bs=4096 count=1 "
                        "iflag=direct")
            shell.check(READER)

            stops = SlowStops(pair.sec.vm)
            slow = []
            while len(slow) < SLOW_CHECKPOINTS:
                target = pair.verified(pair.sec.vm)[0] + 1
                wait_until("the next verified checkpoint",
                           lambda: still_colo(pair) and
                           pair.verified(pair.sec.vm)[0] >= target)
                slow = stops.poll()
                if len(stops.all) > 60:
                    raise AssertionError(
                        "the secondary's stops were never slow: "
                        f"{stops.all}")

            checked, mismatched = pair.verified(pair.sec.vm)
            assert mismatched == 0, f"{mismatched} checkpoints differed"
            for e in pair.pri.vm.get_qmp_events(wait=False):
                assert e["event"] not in ("COLO_EXIT", "COLO_PEER_LOST"), \
                    f"the primary reported {e}"
            log(f"{len(stops.all)} checkpoints; in {len(slow)} of them the "
                "secondary took longer than colo-peer-timeout "
                f"({PEER_TIMEOUT_MS} ms) to stop, at most {max(slow):.1f} s; "
                f"{checked} verified equal; "
                "no side reported its peer lost")
        except BaseException:
            for side, g in (("primary", pair.pri), ("secondary", pair.sec)):
                log(f"--- {side} console (end) ---\n{g.console()[-2000:]}")
            raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
