#!/usr/bin/python3
"""What COLO disk replication costs a writer: figures, not a pass/fail test.

    bench/block-replication-overhead.py [BUILD] [--seconds N] [--rounds N]
    (make bench-block)

What is measured: 4 KiB writes at uniformly random 4 KiB-aligned offsets
of a 1 GiB disk filled with non-zero data, with 1 and with 32 requests in
flight, issued by
tests/bench/colo/colo-block-write-bench (a small program linking QEMU's
block layer, so no guest and no device model are in the path).  For each
run it reports IOPS, MB/s, and the mean and 99th percentile latency of a
request, from submission to completion.  Three graphs are compared:

  local       the raw image file alone (O_DIRECT and Linux AIO, as
              cache=none,aio=native)
  quorum      the same file as the only child of a quorum
              (vote-threshold=1, read-pattern=fifo), as the PVM runs it
              before a secondary is attached
  replicated  that quorum plus a replication node (mode=primary) whose
              NBD client writes to a secondary QEMU over loopback TCP; the
              secondary runs the whole replication chain: its NBD export
              writes the secondary disk, and copy-before-write saves the
              old data into the hidden disk first

The secondary is a qemu-system-x86_64 without a guest (-M none) with the
documented chain (quorum -> replication mode=secondary -> active qcow2 ->
hidden qcow2 -> secondary raw disk), started with xen-set-replication,
which runs the same replication start as COLO.  Before each replicated run
the test makes a checkpoint (xen-colo-do-checkpoint), so the run begins
with empty active and hidden disks as after a COLO checkpoint, and every
first write into a 64 KiB region of the secondary disk pays for copying
its old data.  No checkpoint happens during a run: with COLO's periodic
checkpoints the hidden disk is emptied regularly and later writes to the
same region pay again, so these figures are for a run of N seconds
between two checkpoints.

Each graph and depth runs --rounds times (default 3, interleaved, so a
burst of load elsewhere on the machine hits one run rather than one
graph), and the table shows the run with the median IOPS.

Both processes run on this host, and the images live in one temporary
directory (TMPDIR, default /var/tmp): the replicated figures include the
secondary's disk writes competing with the primary's on the same device
and CPU, which a real pair on two hosts would not have.
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile

DISK_SIZE = 1024 ** 3
DEPTHS = (1, 32)


def run(cmd):
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       universal_newlines=True)
    if r.returncode != 0:
        sys.exit(f"{os.path.basename(cmd[0])} failed ({r.returncode}):\n"
                 f"{r.stdout}")
    return r.stdout


def create(qemu_img, path, fmt):
    run([qemu_img, "create", "-q", "-f", fmt, path, str(DISK_SIZE)])


def fill(path):
    """Non-zero data everywhere, as on a disk in use.

    Copy-before-write copies a region of zeros as a cheap write-zeroes,
    which would hide most of its cost on a fresh image.
    """
    chunk = os.urandom(1024 * 1024)
    with open(path, "wb") as f:
        for _ in range(DISK_SIZE // len(chunk)):
            f.write(chunk)


def local_node(path):
    return {"driver": "raw",
            "file": {"driver": "file", "filename": path, "aio": "native",
                     "cache": {"direct": True}}}


def graphs(path, nbd_port):
    quorum = {"driver": "quorum", "vote-threshold": 1,
              "read-pattern": "fifo", "children": [local_node(path)]}
    replicated = json.loads(json.dumps(quorum))
    replicated["children"].append({
        "driver": "replication", "mode": "primary",
        "file": {"driver": "nbd", "export": "parent0",
                 "server": {"type": "inet", "host": "127.0.0.1",
                            "port": str(nbd_port)}}})
    return [("local", local_node(path), False),
            ("quorum", quorum, False),
            ("replicated", replicated, True)]


class Secondary:
    """A guestless QEMU running the replication chain of a secondary."""

    def __init__(self, build, tmp, nbd_port):
        sys.path.insert(0, os.path.join(build, "src", "python"))
        from qemu.machine import QEMUMachine   # noqa: E402

        qemu_img = os.path.join(build, "qemu", "qemu-img")
        disk = os.path.join(tmp, "secondary.raw")
        active = os.path.join(tmp, "active.qcow2")
        hidden = os.path.join(tmp, "hidden.qcow2")
        # The secondary starts as a copy of the primary's disk.
        shutil.copyfile(os.path.join(tmp, "primary.raw"), disk)
        create(qemu_img, active, "qcow2")
        create(qemu_img, hidden, "qcow2")
        self.port = nbd_port
        self.vm = QEMUMachine(
            os.path.join(build, "qemu", "qemu-system-x86_64"),
            args=["-M", "none", "-nodefaults", "-display", "none",
                  "-drive", "if=none,id=parent0,driver=raw,"
                            f"file.filename={disk},cache.direct=on",
                  "-drive", "if=none,id=childs0,driver=replication,"
                            "mode=secondary,top-id=colo-disk0,"
                            "file.driver=qcow2,"
                            f"file.file.filename={active},"
                            "file.backing.driver=qcow2,"
                            f"file.backing.file.filename={hidden},"
                            "file.backing.backing=parent0",
                  "-drive", "if=none,id=colo-disk0,driver=quorum,"
                            "read-pattern=fifo,vote-threshold=1,"
                            "children.0=childs0"],
            base_temp_dir=tmp, log_dir=tmp)

    def __enter__(self):
        self.vm.launch()
        self.vm.cmd("nbd-server-start", addr={
            "type": "inet",
            "data": {"host": "127.0.0.1", "port": str(self.port)}})
        self.vm.cmd("nbd-server-add", device="parent0", writable=True)
        self.vm.cmd("xen-set-replication", enable=True, primary=False)
        return self

    def checkpoint(self):
        self.vm.cmd("xen-colo-do-checkpoint")

    def __exit__(self, *exc):
        self.vm.shutdown(timeout=30)
        return False


def measure(bench, graph, depth, seconds, replicate):
    cmd = [bench, "-d", str(depth), "-t", str(seconds)]
    if replicate:
        cmd.append("-r")
    out = run(cmd + ["json:" + json.dumps(graph)])
    line = out.strip().splitlines()[-1]
    return dict(kv.split("=", 1) for kv in line.split())


def main():
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("build", nargs="?", default=os.path.join(here, "build"))
    ap.add_argument("--seconds", type=int, default=5,
                    help="length of one run (default 5)")
    ap.add_argument("--rounds", type=int, default=3,
                    help="runs of each graph and depth, interleaved; the "
                         "median is shown (default 3)")
    args = ap.parse_args()
    build = os.path.abspath(args.build)
    bench = os.path.join(build, "qemu", "tests", "bench", "colo",
                         "colo-block-write-bench")
    if not os.path.exists(bench):
        sys.exit(f"{bench} is missing: run 'make build' first")

    tmp = tempfile.mkdtemp(prefix="colo-bench-",
                           dir=os.environ.get("TMPDIR", "/var/tmp"))
    try:
        disk = os.path.join(tmp, "primary.raw")
        fill(disk)
        sys.path.insert(0, os.path.join(build, "src", "python"))
        sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..",
                                        "tests", "functional", "colo"))
        from harness import free_port

        port = free_port()
        runs = {}
        with Secondary(build, tmp, port) as sec:
            for _ in range(args.rounds):
                for name, graph, replicate in graphs(disk, port):
                    for depth in DEPTHS:
                        if replicate:
                            sec.checkpoint()
                        r = measure(bench, graph, depth, args.seconds,
                                    replicate)
                        runs.setdefault((name, depth), []).append(r)
        print_table(runs, args)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def print_table(runs, args):
    """One row per graph and depth: the run with the median IOPS."""
    print(f"4 KiB random writes, 1 GiB disk, {args.seconds} s per run, "
          f"median of {args.rounds} rounds")
    print(f"{'graph':<11} {'QD':>3} {'IOPS':>8} {'MB/s':>7} "
          f"{'mean us':>9} {'p99 us':>9} {'IOPS vs local':>14}")
    rows = {}
    for key, rs in runs.items():
        rs = sorted(rs, key=lambda r: float(r["iops"]))
        rows[key] = rs[len(rs) // 2]
    for (name, depth), r in rows.items():
        local = float(rows[("local", depth)]["iops"])
        print(f"{name:<11} {depth:>3} {float(r['iops']):>8.0f} "
              f"{float(r['mbps']):>7.2f} {float(r['mean_us']):>9.1f} "
              f"{float(r['p99_us']):>9.1f} {float(r['iops']) / local:>13.0%}")


if __name__ == "__main__":
    main()
