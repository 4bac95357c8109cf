#!/usr/bin/python3
"""What a COLO checkpoint costs, ours against the unmodified base.

    bench/colo-checkpoint.py [BUILD] [--seconds S] [--delay MS]
                             [--sizes MIB,...] [--channels N,...]
                             [--rounds N]
    (make bench-checkpoint; it builds the base first)

Figures, not a test.  A boot-sector guest (the base's migration-test boot
block, its loop bound changed) increments one byte of every page of a
fixed range in a loop, so each checkpoint carries up to that range of
dirty RAM.  Primary and secondary run on this host, connected over
loopback, without the return-path capability (the base fails with it) and
without disks or network proxy: the checkpoint alone.  For each set-up
COLO runs with x-checkpoint-delay --delay (300 ms) for --seconds (6 s)
after one second to settle; a pause is the primary's STOP to RESUME
events, the same clock for both builds.

Set-ups:
  ours, TCG     every size, single channel; at the largest size also
                --rounds rounds (3) of one channel and then multifd with
                each of --channels, the ratio being the rounds' median
                (set-ups run one after the other meet different load
                here, and a single pair of runs swung from 0.53 to 0.92);
  base, KVM     every size, single channel (multifd in the base skips the
                secondary's RAM cache, and under TCG the base aborts at its
                first checkpoint), only where /dev/kvm opens;
  ours, KVM     the same, beside it.
Printed: the median pause, the checkpoints per second and the MiB sent
per checkpoint of each (what loopback carried in the window, for either
build: the guest's pace decides how much of its range is dirty, and under
KVM here its firmware takes seconds to reach the boot block, so each run
first waits for the loop to run), the ratios ours / base, multifd /
single channel, the timer's rate against 1 / delay, and ours against
what loopback allows (this host's loopback throughput for the dirty
range, plus 2 ms).  Ours also prints both sides' mean phases over the
window's checkpoints.
"""

import argparse
import os
import re
import shutil
import socket
import statistics
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)

MEM_START = 1 << 20                   # the boot block's first page
GUEST_MIB = 128
# cmp $END,%eax in the boot block, END = 100 MiB (its two loops).
CMP_END = bytes([0x3d, 0x00, 0x00, 0x40, 0x06])


def boot_sector(build, mib, path):
    """The base's x86 migration-test boot block, dirtying @mib MiB."""
    header = os.path.join(build, "base", "tests", "qtest", "migration",
                          "i386", "a-b-bootblock.h")
    with open(header) as f:
        array = re.search(r"x86_bootsect\[\] = \{(.*?)\};", f.read(), re.S)
    code = bytes(int(b, 16) for b in
                 re.findall(r"0x[0-9a-f]{2}", array.group(1) if array else ""))
    if code.count(CMP_END) != 2 or len(code) != 512:
        sys.exit(f"{header}: not the boot block this benchmark knows")
    end = MEM_START + max(mib, 0) * (1 << 20)
    code = code.replace(CMP_END, b"\x3d" + end.to_bytes(4, "little"))
    with open(path, "wb") as f:
        f.write(code)


def loopback_tx_bytes():
    with open("/sys/class/net/lo/statistics/tx_bytes") as f:
        return int(f.read())


def kvm_works():
    try:
        os.close(os.open("/dev/kvm", os.O_RDWR))
        return True
    except OSError:
        return False


def loopback_ms_per_mib(mib=256):
    """Milliseconds per MiB through a loopback TCP connection."""
    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(1)
    buf = bytearray(1 << 20)
    got = [0]

    def sink():
        conn, _ = srv.accept()
        view = memoryview(bytearray(1 << 20))
        while True:
            n = conn.recv_into(view)
            if not n:
                break
            got[0] += n
        conn.close()

    th = threading.Thread(target=sink)
    th.start()
    with socket.create_connection(srv.getsockname()) as c:
        start = time.monotonic()
        for _ in range(mib):
            c.sendall(buf)
        c.shutdown(socket.SHUT_WR)
        th.join()
        took = time.monotonic() - start
    srv.close()
    assert got[0] == mib << 20
    return took * 1000 / mib


class Run:
    """One COLO pair of @binary with @accel, its guest dirtying @mib."""

    def __init__(self, binary, firmware, accel, boot, channels, tmp):
        from qemu.machine import QEMUMachine

        args = ["-accel", accel, "-m", str(GUEST_MIB), "-nodefaults",
                "-L", firmware,
                "-drive", f"if=none,id=d0,file={boot},format=raw,"
                "snapshot=on",
                "-device", "ide-hd,drive=d0,secs=1,cyls=1,heads=1"]
        self.channels = channels
        self.with_stats = False
        self.src = QEMUMachine(binary, args=args, name="bench-pri",
                               base_temp_dir=tmp, log_dir=tmp)
        self.dst = QEMUMachine(binary, args=args + ["-incoming", "defer"],
                               name="bench-sec", base_temp_dir=tmp,
                               log_dir=tmp)
        for vm in (self.src, self.dst):
            vm.set_machine("pc")

    def _caps(self, vm):
        from harness import colo_capabilities

        # No return path: the base fails with it.
        colo_capabilities(vm, return_path=False,
                          multifd=self.channels if self.channels > 1 else 0)

    def start(self, delay_ms):
        self.dst.launch()
        self.src.launch()
        from harness import free_port

        uri = f"tcp:127.0.0.1:{free_port()}"
        self._caps(self.dst)
        self.dst.cmd("migrate-incoming", uri=uri)
        self._caps(self.src)
        # A guest that dirties 64 MiB per pass under TCG must not keep the
        # first migration from converging at the default 128 MiB/s.
        self.src.cmd("migrate-set-parameters",
                     **{"x-checkpoint-delay": delay_ms,
                        "max-bandwidth": 64 << 30,
                        "downtime-limit": 2000})
        self.src.cmd("migrate", uri=uri)
        deadline = time.monotonic() + 120
        while self.src.cmd("query-colo-status")["mode"] != "primary":
            if time.monotonic() > deadline or not self.alive():
                raise RuntimeError("COLO did not start")
            time.sleep(0.1)
        self._await_dirtying(deadline)

    def _await_dirtying(self, deadline):
        """Until the guest's loop runs.  Under KVM here the firmware takes
        seconds to reach the boot block, and checkpoints meanwhile carry
        almost nothing: measured, they would flatter either build."""
        while True:
            out = self.src.cmd("human-monitor-command",
                               command_line=f"xp /1xb {MEM_START:#x}")
            if not out.strip().endswith("0x00"):
                return
            if time.monotonic() > deadline or not self.alive():
                raise RuntimeError("the guest never started dirtying RAM")
            time.sleep(0.1)

    def alive(self):
        return self.src.is_running() and self.dst.is_running()

    def pauses(self, seconds):
        """The primary's pauses (ms) over @seconds, after one to settle,
        and the bytes loopback carried meanwhile (the pair is alone on it,
        so this is what the checkpoints sent, for either build)."""
        # The QMP library reads events only while it is called: poll.
        events = []
        begin = time.time() + 1
        end = begin + seconds
        sent, self.stats = {}, {}
        while time.time() < end + 0.5:
            events += self.src.get_qmp_events(wait=False)
            now = time.time()
            for edge, at in (("begin", begin), ("end", end)):
                if edge not in sent and now >= at:
                    sent[edge] = loopback_tx_bytes()
                    if self.with_stats:
                        self.stats[edge] = self._phase_sums()
            time.sleep(0.05)
        if not self.alive():
            raise RuntimeError("QEMU exited")
        pauses, stopped = [], None
        for ev in events:
            ts = ev["timestamp"]
            t = ts["seconds"] + ts["microseconds"] / 1e6
            if not begin <= t <= end:
                continue
            if ev["event"] == "STOP":
                stopped = t
            elif ev["event"] == "RESUME" and stopped is not None:
                pauses.append((t - stopped) * 1000)
                stopped = None
        return pauses, sent["end"] - sent["begin"]

    def _phase_sums(self):
        """Both sides' phase totals and checkpoint counts so far (ours)."""
        pri = self.src.cmd("query-colo-stats")
        sec = self.dst.cmd("query-colo-stats")["secondary"]
        return {side: (st["checkpoints"],
                       {k: v * st["checkpoints"]
                        for k, v in st["phases-mean"].items()})
                for side, st in (("phases", pri), ("applied", sec))}

    def window_phases(self):
        """The mean phases of the checkpoints inside the window alone:
        the totals of its end minus those of its start.  (The means QEMU
        reports include the first checkpoints, before the guest dirties
        its range.)"""
        out = {}
        for side in ("phases", "applied"):
            n0, s0 = self.stats["begin"][side]
            n1, s1 = self.stats["end"][side]
            if n1 > n0:
                out[side] = {k: (s1[k] - s0[k]) / (n1 - n0) for k in s1}
        return out

    def stop(self):
        for vm in (self.src, self.dst):
            try:
                vm.shutdown(hard=True)
            except Exception:       # noqa: BLE001  (a QEMU that aborted)
                pass

    def log_tail(self):
        for vm in (self.src, self.dst):
            log = vm.get_log() or ""
            if "Assertion" in log or "abort" in log.lower():
                return log.strip().splitlines()[-1]
        return "no log"


def measure(binary, firmware, accel, build, mib, channels, args,
            with_stats):
    tmp = tempfile.mkdtemp(prefix="colo-bench-ckpt-")
    boot = os.path.join(tmp, "boot.raw")
    boot_sector(build, mib, boot)
    run = Run(binary, firmware, accel, boot, channels, tmp)
    run.with_stats = with_stats
    try:
        run.start(args.delay)
        p, sent = run.pauses(args.seconds)
        if not p:
            raise RuntimeError("no checkpoint in the window")
        r = {"pause": statistics.median(p), "rate": len(p) / args.seconds,
             "mib": sent / len(p) / (1 << 20)}
        if with_stats:
            r.update(run.window_phases())
        return r
    except Exception as e:      # noqa: BLE001  (reported, not fatal)
        return {"error": f"{e}: {run.log_tail()}"}
    finally:
        run.stop()
        shutil.rmtree(tmp, ignore_errors=True)


def print_phases(r):
    """Where ours spent the time, on each side (query-colo-stats means)."""
    for side, key in (("primary", "phases"), ("secondary", "applied")):
        if key in r:
            print(f"      {side} (ms): " +
                  ", ".join(f"{k} {v / 1000:.1f}" for k, v in r[key].items()
                            if v >= 50), flush=True)


def multifd_rounds(binary, firmware, accel, build, mib, channels, args):
    """Multifd against one channel at @mib, in --rounds rounds that each
    run one channel and then every count of @channels, so that the load
    this host carries from other work weighs on both alike.  The figure
    is the median of the rounds' ratios."""
    results = {}
    ratios = {n: [] for n in channels}
    for rnd in range(1, args.rounds + 1):
        one = measure(binary, firmware, accel, build, mib, 1, args, False)
        line = f"  ours {accel}  {mib:3} MiB  round {rnd}: single {fmt(one)}"
        for n in channels:
            r = measure(binary, firmware, accel, build, mib, n, args, True)
            results[("ours", accel, mib, n)] = r
            line += f", x{n} {fmt(r)}"
            if "pause" in r and "pause" in one:
                ratios[n].append(r["pause"] / one["pause"])
        print(line, flush=True)
    for n in channels:
        if ratios[n]:
            ratio = statistics.median(ratios[n])
            results[("ours", accel, mib, n, "ratio")] = ratio
            print(f"  ours {accel}  {mib:3} MiB  multifd x{n} / single: "
                  + ", ".join(f"{x:.2f}" for x in ratios[n])
                  + f" (median {ratio:.2f})", flush=True)
        last = results.get(("ours", accel, mib, n), {})
        if "phases" in last:
            print(f"      x{n}, last round:")
            print_phases(last)
    return results


def fmt(r):
    """Median pause, checkpoints per second, MiB sent per checkpoint."""
    if "error" in r:
        return "failed"
    return f"{r['pause']:6.1f} ms {r['rate']:4.1f}/s {r['mib']:5.1f} MiB"


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("build", nargs="?", default=os.path.join(REPO, "build"))
    ap.add_argument("--seconds", type=float, default=6)
    ap.add_argument("--delay", type=int, default=300)
    ap.add_argument("--sizes", default="0,1,4,16,64")
    ap.add_argument("--channels", default="2,4")
    ap.add_argument("--rounds", type=int, default=3,
                    help="rounds of the multifd comparison (default 3)")
    args = ap.parse_args(argv[1:])
    build = os.path.abspath(args.build)
    sys.path.insert(0, os.path.join(build, "src", "python"))
    sys.path.insert(0, os.path.join(REPO, "tests", "functional", "colo"))
    ours = os.path.join(build, "qemu", "qemu-system-x86_64")
    base = os.path.join(build, "pristine", "qemu", "qemu-system-x86_64")
    firmware = os.path.join(build, "qemu", "qemu-bundle", "usr", "local",
                            "share", "qemu")
    sizes = [int(s) for s in args.sizes.split(",")]
    channels = [int(c) for c in args.channels.split(",")]
    kvm = kvm_works()
    per_mib = loopback_ms_per_mib()

    print(f"x-checkpoint-delay {args.delay} ms, {args.seconds:g} s per run, "
          f"guest dirtying a fixed range per pass; loopback "
          f"{per_mib:.2f} ms/MiB here", flush=True)
    results = {}
    setups = [("ours", "tcg", ours)]
    if kvm:
        setups += [("base", "kvm", base), ("ours", "kvm", ours)]
    for who, accel, binary in setups:
        if not os.path.exists(binary):
            print(f"{who}: {binary} is missing")
            continue
        for mib in sizes:
            r = measure(binary, firmware, accel, build, mib, 1, args,
                        who == "ours")
            results[(who, accel, mib, 1)] = r
            print(f"  {who:4} {accel}  {mib:3} MiB  {fmt(r)}"
                  f"{'  ' + r['error'] if 'error' in r else ''}", flush=True)
            print_phases(r)
        if who == "ours":
            results.update(multifd_rounds(binary, firmware, accel, build,
                                          sizes[-1], channels, args))

    def pause(*key):
        r = results.get(key)
        return r["pause"] if r and "pause" in r else None

    print(f"\n{'dirty MiB':>9}  {'ours TCG':>28}  {'loopback bound':>14}  "
          f"{'ours/bound':>10}" +
          (f"  {'base KVM':>28}  {'ours KVM':>28}  {'ours/base':>9}"
           if kvm else ""))
    for mib in sizes:
        bound = 2 + mib * per_mib
        o = results.get(("ours", "tcg", mib, 1), {"error": ""})
        line = (f"{mib:>9}  {fmt(o):>28}  {bound:11.1f} ms  " +
                (f"{o['pause'] / bound:10.2f}" if "pause" in o else
                 f"{'-':>10}"))
        if kvm:
            b = results.get(("base", "kvm", mib, 1), {"error": ""})
            k = results.get(("ours", "kvm", mib, 1), {"error": ""})
            ratio = (f"{k['pause'] / b['pause']:9.2f}"
                     if "pause" in k and "pause" in b else f"{'-':>9}")
            line += f"  {fmt(b):>28}  {fmt(k):>28}  {ratio}"
        print(line)
    if not kvm:
        print("base: not run, /dev/kvm does not open here (the base's COLO "
              "aborts under TCG at its first checkpoint)")

    print("\ngoal                                         figure    target  met")
    goals = []
    for accel in ("kvm",) if kvm else ():
        for mib in (16, 64):
            o, b = pause("ours", accel, mib, 1), pause("base", accel, mib, 1)
            if o and b:
                goals.append((f"pause ours / base at {mib} MiB (KVM)",
                              o / b, "<= 0.50", o / b <= 0.5))
    big = sizes[-1]
    for accel in ("tcg", "kvm") if kvm else ("tcg",):
        ratio = results.get(("ours", accel, big, 4, "ratio"))
        if ratio:
            goals.append((f"multifd x4 / single at {big} MiB "
                          f"({accel.upper()})", ratio, "<= 0.60",
                          ratio <= 0.6))
    idle = results.get(("ours", "tcg", sizes[0], 1), {})
    if "rate" in idle:
        want = 1000 / args.delay
        goals.append((f"timer rate / (1/delay) at {sizes[0]} MiB (TCG)",
                      idle["rate"] / want, "0.9-1.1",
                      0.9 <= idle["rate"] / want <= 1.1))
    for name, fig, target, met in goals:
        print(f"{name:44} {fig:6.2f}  {target:>8}  {'yes' if met else 'NO'}")
    if not kvm:
        print("(the ratios to the base need /dev/kvm: not measured here)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
