#!/usr/bin/python3
"""A long run of the Linux test guest under COLO: make soak.

    soak.py BUILD [--minutes N] [--delay-ms N] [--machine pc|q35]
                  [--nic e1000|virtio] [--multifd] [--consoles DIR]

COLO starts before the guest boots, as the user guide does it, with the
colo-verify capability on; the guest writes records to its replicated
disk and churns memory, and a client on this host fetches its web page
all the time.  Every minute a line shows the checkpoints so far, the
PVM's pause (median, 99th percentile, maximum, from its STOP and RESUME
events), digest mismatches, kernel complaints on either console, and
both QEMUs' resident memory.  At the end the primary is killed and the
secondary must carry on with a healthy guest.

With --consoles, both guests' serial consoles are copied into DIR at the
end, for a closer look at any complaint.

Goals, checked at the end (exit status 1 if one is missed): no digest
mismatch, no kernel complaint, a healthy survivor, and each QEMU's RSS
grown by less than 5% between minute 5 and the end.
"""

import argparse
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import standalone  # noqa: E402

RSS_WARMUP_S = 300
RSS_GROWTH_MAX = 0.05


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def percentile(values, p):
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * p / 100))]


def pause_summary(pauses):
    ms = [p * 1000 for p in pauses]
    if not ms:
        return "no pause yet"
    return (f"pause p50 {statistics.median(ms):.0f} p99 "
            f"{percentile(ms, 99):.0f} max {max(ms):.0f} ms")


def main(argv):
    ap = argparse.ArgumentParser()
    ap.add_argument("build")
    ap.add_argument("--minutes", type=float, default=30)
    ap.add_argument("--delay-ms", type=int, default=500)
    ap.add_argument("--machine", default="pc")
    ap.add_argument("--nic", default="e1000")
    ap.add_argument("--multifd", action="store_true")
    ap.add_argument("--consoles", metavar="DIR")
    args = ap.parse_args(argv[1:])
    standalone.prepare(args.build)

    from colo_pair import ColoPair, HttpLoad, console_alarms
    from harness import log

    failures = []
    with ColoPair("soak", machine=args.machine, nic=args.nic,
                  multifd=args.multifd, start="before",
                  delay_ms=args.delay_ms) as pair:
        pair.start_colo()
        pair.pri.wait_ready(timeout=300)
        began = time.monotonic()
        pair.poll_events()
        pair.pauses.clear()
        pair.shells["primary"].check("colo-workload start")
        load = HttpLoad(pair.http_port("primary")).start()
        pids = {"primary": pair.pri.vm.get_pid(),
                "secondary": pair.sec.vm.get_pid()}
        rss = []            # (seconds, primary KiB, secondary KiB)
        log(f"soak: {args.minutes:g} min, x-checkpoint-delay "
            f"{args.delay_ms} ms, {args.machine}, {args.nic}"
            f"{', multifd' if args.multifd else ''}")
        log("  min  checkpoints  mismatches  alarms  pause (PVM)"
            "                      RSS primary / secondary (MiB)")
        next_report = 60
        while True:
            elapsed = time.monotonic() - began
            if elapsed >= args.minutes * 60:
                break
            time.sleep(min(10, max(0.5, args.minutes * 60 - elapsed)))
            pair.poll_events()
            elapsed = time.monotonic() - began
            rss.append((elapsed, rss_kib(pids["primary"]),
                        rss_kib(pids["secondary"])))
            if elapsed >= next_report or elapsed >= args.minutes * 60:
                next_report += 60
                checked, _ = pair.verified(pair.sec.vm)
                alarms = sum(len(v) for v in pair.alarms().values())
                # The guest still answers its shell.
                pair.shells["primary"].check("true")
                log(f"  {elapsed / 60:4.1f}  {checked:11d}  "
                    f"{len(pair.mismatches):10d}  {alarms:6d}  "
                    f"{pause_summary(pair.pauses):32s} "
                    f"{rss[-1][1] / 1024:7.1f} / {rss[-1][2] / 1024:7.1f}")
        load.stop()

        checked, mismatched = pair.verified(pair.sec.vm)
        pri_checked, pri_mismatched = pair.verified(pair.pri.vm)
        alarms = pair.alarms()
        pair.fail_over("primary")
        shell = pair.shells["secondary"]
        shell.check("colo-workload stop")
        disk = shell.check("colo-workload check").strip()
        alarms["secondary"] += console_alarms(pair.sec.console())
        if args.consoles:
            os.makedirs(args.consoles, exist_ok=True)
            for side, g in (("primary", pair.pri), ("secondary", pair.sec)):
                with open(os.path.join(args.consoles, f"{side}.log"),
                          "w") as f:
                    f.write(g.console())

    log("")
    log(f"checkpoints verified: {checked} (the primary counted "
        f"{pri_checked}); mismatches: {mismatched} / {pri_mismatched}; "
        f"events: {len(pair.mismatches)}")
    log(f"PVM {pause_summary(pair.pauses)} over {len(pair.pauses)} pauses")
    log(f"HTTP answers during the run: {load.ok}, failed: {load.failed}")
    log(f"after failover the secondary's guest says: {disk}")
    if mismatched or pri_mismatched or pair.mismatches:
        failures.append("digest mismatches")
    for side, lines in alarms.items():
        log(f"kernel complaints on the {side}: {len(set(lines))}")
        for line in sorted(set(lines))[:5]:
            log(f"  {line}")
        if lines:
            failures.append(f"kernel complaints on the {side}")
    if not disk.startswith("check ok"):
        failures.append("the survivor's disk check")
    warm = [r for r in rss if r[0] >= RSS_WARMUP_S and r[1] and r[2]]
    if len(warm) >= 2:
        for i, side in ((1, "primary"), (2, "secondary")):
            growth = (warm[-1][i] - warm[0][i]) / warm[0][i]
            log(f"{side} RSS from minute {warm[0][0] / 60:.1f} to the end: "
                f"{warm[0][i] / 1024:.1f} -> {warm[-1][i] / 1024:.1f} MiB "
                f"({growth * 100:+.1f}%)")
            if growth >= RSS_GROWTH_MAX:
                failures.append(f"{side} RSS grew {growth * 100:.1f}%")
    else:
        log("RSS growth: the run is too short to say (under 5 minutes "
            "after the warm-up)")
    log("soak: " + ("all goals met" if not failures else
                    "missed: " + ", ".join(failures)))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
