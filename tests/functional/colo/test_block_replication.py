#!/usr/bin/env python3
"""A replicated disk follows COLO's checkpoints and survives either failover.

Two QEMU processes on this host run the Linux test guest under COLO with
the documented disk setup:

  primary:   quorum colo-disk0 (vote-threshold=1, read-pattern=fifo)
               children.0  local raw image
               children.1  replication (mode=primary) -> NBD client,
                           hot-added with drive_add -n + x-blockdev-change
  secondary: quorum colo-disk0 -> replication (mode=secondary,
               top-id=colo-disk0) -> active qcow2 -> hidden qcow2 ->
               secondary raw image, which nbd-server-add exports writable
               to the primary

The guest has no driver for the disk and never touches it, so every write
comes from the test: HMP "qemu-io colo-disk0 'write -P ...'" on either
side, i.e. through the same BlockBackend the guest's IDE disk uses (and
which would return an error to the guest if the quorum failed the write).
The test keeps a byte model of what each side must show.

How a side's view is read: each QEMU exports its quorum node read-only
over NBD (an export named "view", added once COLO runs), and the test
copies the whole disk with qemu-img convert and compares SHA-256 digests
with the model.  This reads exactly what the guest would read (on the
secondary: active over hidden over secondary disk) without stopping
anything.  At the end the surviving QEMU quits and the image file it kept
is checked the same way, which shows that failover committed the right
data to the real disk.

Checkpoints are under the test's control: x-checkpoint-delay is one hour
while the test works ("quiet"), and a checkpoint is made by lowering it
for one round.  Each STOP/RESUME the secondary emits is timestamped; a
checkpoint the test did not ask for fails the test instead of going
unnoticed.

Case "secondary": primary writes are invisible to the SVM until the next
checkpoint and then equal; the SVM's writes vanish at the next
checkpoint; after the primary goes, the secondary's disk is the last
checkpoint plus the SVM's own writes since (and not the primary's writes
since), both live and in its image file after it quits.  The primary is
shut down with quit while it replicates, and must exit cleanly; the
secondary reports the planned exit (reason request, then peer-left) and
takes over when told to.
Case "secondary-live-primary": the secondary takes over while the
primary still runs and writes through its replication link; the writable
NBD export closes before the commit, so none of those writes reaches the
survivor's disk.
Case "hung-secondary": the secondary is stopped with SIGSTOP while a
primary write to it is in flight; the primary declares it lost, cuts its
NBD link, and its monitor and disk go on (the write completes locally).
Case "primary": while COLO runs the replication child can be neither
detached from the quorum nor deleted; after the secondary is killed,
writes on the primary
succeed with no I/O error, before and after COLO notices (the quorum
reports the dead child with QUORUM_REPORT_BAD), the replication child is
removed as documented, and the primary's image holds every write.
Case "link": the secondary's NBD server goes away while COLO runs; the
next checkpoint fails on the primary, which fails over and goes on with
its local disk instead of pairing a stale secondary disk with its RAM.
"""

import hashlib
import os
import signal
import random
import shutil
import subprocess
import sys
import tempfile
import time

from harness import (LinuxGuest, attach_replication, colo_capabilities,
                     decide_failover, env_path, export_secondary_disk,
                     free_ports, hmp, log, run, wait_event, wait_until)

MiB = 1024 * 1024
DISK_SIZE = 16 * MiB
QUIET_MS = 3600 * 1000
# While a checkpoint is asked for; also how long the test has to go quiet
# again after it before the next periodic one would start.
TRIGGER_MS = 3000


def slirp_nic():
    return ["-netdev", "user,id=n0,net=10.0.2.0/24",
            "-device", "e1000,netdev=n0"]


def disk_device():
    return ["-device", "ide-hd,drive=colo-disk0,bus=ide.0,unit=0,id=disk0"]


class Model:
    """What one view of the disk must contain."""

    def __init__(self, data):
        self.data = bytearray(data)

    def copy(self):
        return Model(self.data)

    def write(self, pattern, offset, length):
        self.data[offset:offset + length] = bytes([pattern]) * length

    def digest(self):
        return hashlib.sha256(self.data).hexdigest()


def file_digest(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def event_time(event):
    ts = event["timestamp"]
    return ts["seconds"] + ts["microseconds"] / 1e6


class Pair:
    """Two QEMUs running COLO with a replicated disk, and the test's model."""

    def __init__(self, tmp, pri, sec, view_ports):
        self.tmp = tmp
        self.pri = pri.vm
        self.sec = sec.vm
        self.view_ports = view_ports
        # Both VMs run: the start's STOP and RESUME events lie before this.
        self.last_resume = time.time()
        self.ckpt = None        # the model at the last checkpoint
        self.writes = {"primary": 0, "secondary": 0}
        self.log_needles = []   # what the survivor must have printed

    # --- I/O and views -------------------------------------------------

    def qemu_io(self, vm, pattern, offset, length):
        """Write through the guest's BlockBackend.

        qemu-io prints its result on QEMU's stdout, not on the monitor;
        the views show whether the data landed, and check_io_log() reads
        the results once QEMU has exited.
        """
        out = hmp(vm, f'qemu-io colo-disk0 "write -P {pattern:#x} '
                      f'{offset} {length}"')
        if out.strip():
            raise AssertionError(f"qemu-io on {vm._name}: {out}")
        self.writes[vm._name] += 1

    def check_io_log(self, vm):
        """After @vm exited: each of its writes succeeded."""
        lines = (vm.get_log() or "").splitlines()
        wrote = sum(1 for ln in lines if ln.startswith("wrote "))
        failed = [ln for ln in lines if ln.startswith("write failed")]
        assert not failed, f"{vm._name}: {failed}"
        for needle in self.log_needles:
            assert needle in "\n".join(lines), \
                f"{vm._name} did not say: {needle}"
        assert wrote == self.writes[vm._name], \
            f"{vm._name}: {wrote} of {self.writes[vm._name]} writes succeeded"

    def view(self, vm):
        port = self.view_ports[vm._name]
        out = os.path.join(self.tmp, f"view-{vm._name}.raw")
        run([env_path("QEMU_IMG"), "convert", "-f", "raw", "-O", "raw",
             f"nbd://127.0.0.1:{port}/view", out], timeout=60)
        digest = file_digest(out)
        os.unlink(out)
        return digest

    def expect(self, vm, model, what):
        got = self.view(vm)
        if got != model.digest():
            raise AssertionError(f"{vm._name}: {what}: disk view differs "
                                 f"from the expected contents")
        log(f"  {vm._name} view ok: {what}")

    # --- checkpoints ---------------------------------------------------

    def set_delay(self, ms):
        self.pri.cmd("migrate-set-parameters", **{"x-checkpoint-delay": ms})

    def assert_quiet(self):
        """No checkpoint began since the last one the test asked for."""
        stray = [e for e in self.sec.get_qmp_events()
                 if e["event"] in ("STOP", "RESUME") and
                 event_time(e) > self.last_resume]
        if stray:
            raise AssertionError("a checkpoint the test did not ask for "
                                 f"happened: {stray}")

    def checkpoint(self, model):
        """Make one checkpoint; @model is then both sides' disk."""
        self.assert_quiet()
        self.set_delay(TRIGGER_MS)
        event = wait_event(self.sec, "RESUME", 90)
        self.set_delay(QUIET_MS)
        self.last_resume = event_time(event)
        self.ckpt = model.copy()


def make_images(tmp):
    initial = random.Random(4).randbytes(DISK_SIZE)
    paths = {n: os.path.join(tmp, n) for n in
             ("primary.raw", "secondary.raw", "active.qcow2", "hidden.qcow2")}
    with open(paths["primary.raw"], "wb") as f:
        f.write(initial)
    shutil.copyfile(paths["primary.raw"], paths["secondary.raw"])
    for n in ("active.qcow2", "hidden.qcow2"):
        run([env_path("QEMU_IMG"), "create", "-f", "qcow2", paths[n],
             str(DISK_SIZE)])
    return paths, Model(initial)


def secondary_args(paths):
    return [
        "-drive", "if=none,id=parent0,driver=raw,"
                  f"file.filename={paths['secondary.raw']}",
        "-drive", "if=none,id=childs0,driver=replication,mode=secondary,"
                  "top-id=colo-disk0,file.driver=qcow2,"
                  "file.node-name=active0,"
                  f"file.file.filename={paths['active.qcow2']},"
                  "file.backing.driver=qcow2,"
                  "file.backing.node-name=hidden0,"
                  f"file.backing.file.filename={paths['hidden.qcow2']},"
                  "file.backing.backing=parent0",
        "-drive", "if=none,id=colo-disk0,driver=quorum,read-pattern=fifo,"
                  "vote-threshold=1,children.0=childs0",
    ] + disk_device() + ["-incoming", "defer"]


def primary_args(paths):
    return [
        "-drive", "if=none,id=colo-disk0,driver=quorum,read-pattern=fifo,"
                  "vote-threshold=1,children.0.driver=raw,"
                  f"children.0.file.filename={paths['primary.raw']}",
    ] + disk_device()


def nbd_start(vm, port):
    vm.cmd("nbd-server-start", addr={
        "type": "inet", "data": {"host": "127.0.0.1", "port": str(port)}})


def start_colo(pri, sec, ports):
    """The documented bring-up, secondary first."""
    colo_capabilities(sec)
    export_secondary_disk(sec, ports["nbd"])
    sec.cmd("migrate-incoming", uri=f"tcp:127.0.0.1:{ports['migration']}")

    attach_replication(pri, ports["nbd"])
    colo_capabilities(pri)
    pri.cmd("migrate-set-parameters", **{"x-checkpoint-delay": QUIET_MS})
    pri.cmd("migrate", uri=f"tcp:127.0.0.1:{ports['migration']}")
    wait_until("COLO on both sides", lambda:
               pri.cmd("query-colo-status")["mode"] == "primary" and
               sec.cmd("query-colo-status")["mode"] == "secondary")
    # Both running: the start's RESUME events are queued by now.
    wait_until("both VMs running", lambda:
               pri.cmd("query-status")["status"] == "running" and
               sec.cmd("query-status")["status"] == "running")

    # The views, added only now so that nothing activates the secondary's
    # disks before the migration hands them over.
    nbd_start(pri, ports["pri-view"])
    for vm in (pri, sec):
        vm.cmd("nbd-server-add", device="colo-disk0", name="view",
               writable=False)


def wait_colo_exit(vm, planned=False):
    """@vm lost its peer, or was told by its primary that it leaves
    (@planned): it reports it, waits, and is told to go on."""
    event = wait_event(vm, "COLO_EXIT", 60)
    reason, waiting = ("request", "peer-left") if planned else \
                      ("error", "peer-lost")
    assert event["data"]["reason"] == reason, event
    status = vm.cmd("query-colo-status")
    assert status["reason"] == waiting, status
    decide_failover(vm)


def assert_running(vm):
    status = vm.cmd("query-status")["status"]
    assert status == "running", f"{vm._name} is {status}"


def assert_no_io_error(vm):
    errors = [e for e in vm.get_qmp_events()
              if e["event"] == "BLOCK_IO_ERROR"]
    assert not errors, f"{vm._name} reported I/O errors: {errors}"


def assert_survivor_writes(p, vm, disk, w, what):
    """The survivor @vm takes write @w into @disk (its model), runs, and
    has seen no I/O error."""
    p.qemu_io(vm, *w)
    disk.write(*w)
    p.expect(vm, disk, what)
    assert_running(vm)
    assert_no_io_error(vm)


def node_names(vm):
    return {n.get("node-name") for n in
            vm.cmd("query-named-block-nodes", flat=True)}


def case_secondary_survives(p, model):
    # The primary writes: the SVM keeps its checkpointed view until the
    # next checkpoint, then both are equal.
    writes = [(0x11, 0, 4096), (0x12, 64 * 1024 - 512, 4096),
              (0x13, 1 * MiB, 300 * 1024), (0x14, DISK_SIZE - 8192, 8192)]
    before = model.copy()
    for w in writes:
        p.qemu_io(p.pri, *w)
        model.write(*w)
    p.expect(p.pri, model, "primary has its writes")
    p.expect(p.sec, before, "SVM still sees the last checkpoint")
    p.checkpoint(model)
    p.expect(p.sec, model, "after a checkpoint SVM == PVM")

    # The SVM writes; the next checkpoint drops them.
    svm = model.copy()
    for w in [(0x21, 8192, 4096), (0x22, 1 * MiB + 4096, 128 * 1024)]:
        p.qemu_io(p.sec, *w)
        svm.write(*w)
    p.expect(p.sec, svm, "SVM sees its own writes")
    p.expect(p.pri, model, "PVM does not see the SVM's writes")
    p.checkpoint(model)
    p.expect(p.sec, model, "the SVM's writes are gone after a checkpoint")

    # After the last checkpoint both sides write, partly the same areas.
    sec_writes = [(0x31, 2 * MiB, 64 * 1024), (0x32, 5 * MiB + 512, 4096)]
    pri_writes = [(0x41, 2 * MiB + 32 * 1024, 64 * 1024),
                  (0x42, 7 * MiB, 256 * 1024)]
    expected = p.ckpt.copy()
    for w in sec_writes:
        p.qemu_io(p.sec, *w)
        expected.write(*w)
    for w in pri_writes:
        p.qemu_io(p.pri, *w)
        model.write(*w)
    p.assert_quiet()
    p.expect(p.sec, expected, "SVM: checkpoint + own writes")

    # The primary is shut down while it replicates: a clean exit, which
    # it announces; the secondary takes over when told to, a switchover.
    p.pri.shutdown(timeout=60)
    assert p.pri.exitcode() == 0, f"primary exit code {p.pri.exitcode()}"
    wait_colo_exit(p.sec, planned=True)
    wait_until("the commit of the active and hidden disks",
               lambda: "active0" not in node_names(p.sec), timeout=60)
    p.expect(p.sec, expected,
             "after failover: last checkpoint + the SVM's own writes")
    assert_survivor_writes(p, p.sec, expected, (0x51, 3 * MiB, 64 * 1024),
                           "writes go on after failover")
    return expected


def case_secondary_takes_over_live_primary(p, model):
    """The secondary is told to take over while the primary still runs and
    writes: none of the primary's later writes may reach its disk."""
    p.checkpoint(model)
    expected = p.ckpt.copy()
    w = (0x91, 4 * MiB, 64 * 1024)
    p.qemu_io(p.sec, *w)
    expected.write(*w)
    p.assert_quiet()

    decide_failover(p.sec)
    wait_until("the commit of the active and hidden disks",
               lambda: "active0" not in node_names(p.sec), timeout=60)
    # The primary has not been told anything and writes on.
    for w in [(0xa1, 4 * MiB + 32 * 1024, 64 * 1024), (0xa2, 6 * MiB, 4096),
              (0xa3, 0, 512)]:
        p.qemu_io(p.pri, *w)
    p.expect(p.sec, expected,
             "the survivor: last checkpoint + its own writes, nothing the "
             "primary wrote after the failover")
    assert_survivor_writes(p, p.sec, expected, (0xb1, 8 * MiB, 4096),
                           "writes go on after failover")
    return expected


def case_primary_survives(p, model):
    writes = [(0x61, 4096, 4096), (0x62, 9 * MiB, 96 * 1024)]
    for w in writes:
        p.qemu_io(p.pri, *w)
        model.write(*w)
    p.checkpoint(model)
    p.expect(p.sec, model, "after a checkpoint SVM == PVM")

    # While COLO runs, the replication child may not leave the quorum.
    resp = p.pri.qmp("x-blockdev-change", parent="colo-disk0",
                     child="children.1")
    assert "is replicating" in resp.get("error", {}).get("desc", ""), resp
    out = hmp(p.pri, "drive_del replication0")
    assert "is replicating" in out, f"drive_del: {out}"
    assert "replication0" in node_names(p.pri)
    p.checkpoint(model)

    p.sec.kill()
    # Before and after COLO notices, writes succeed on the local disk.
    for w in [(0x71, 10 * MiB, 4096)]:
        p.qemu_io(p.pri, *w)
        model.write(*w)
    # The quorum tells the dead child's failure to the management, not to
    # the guest.
    wait_event(p.pri, "QUORUM_REPORT_BAD", 30, match={
        "data": {"node-name": "replication0", "type": "write"}})
    wait_colo_exit(p.pri)
    for w in [(0x72, 11 * MiB, 64 * 1024), (0x73, 0, 512)]:
        p.qemu_io(p.pri, *w)
        model.write(*w)
    p.expect(p.pri, model, "the primary goes on with its local disk")

    # Drop the dead replication child as documented.
    p.pri.cmd("x-blockdev-change", parent="colo-disk0", child="children.1")
    out = hmp(p.pri, "drive_del replication0")
    assert out.strip() == "", f"drive_del: {out}"
    assert "replication0" not in node_names(p.pri)
    assert_survivor_writes(p, p.pri, model, (0x74, 12 * MiB, 4096),
                           "writes after the child is removed")
    return model


def case_secondary_hangs(p, model):
    """The secondary hangs (SIGSTOP) with a primary write in flight to it:
    the primary cuts its NBD link when it declares the peer lost, so its VM
    stop, its monitor and its disk do not wait for a reply that never
    comes."""
    p.pri.cmd("migrate-set-parameters", **{"colo-peer-timeout": 2000})
    os.kill(p.sec.get_pid(), signal.SIGSTOP)
    try:
        # aio_write: the monitor returns before the write completes.
        w = (0xc1, 5 * MiB, 64 * 1024)
        out = hmp(p.pri, f'qemu-io colo-disk0 "aio_write -P {w[0]:#x} '
                         f'{w[1]} {w[2]}"')
        assert not out.strip(), out
        p.writes["primary"] += 1
        model.write(*w)
        p.set_delay(TRIGGER_MS)
        wait_colo_exit(p.pri)
        w = (0xc2, 6 * MiB, 4096)
        p.qemu_io(p.pri, *w)
        model.write(*w)
        p.expect(p.pri, model, "the primary's disk after the secondary hung")
        assert_running(p.pri)
    finally:
        os.kill(p.sec.get_pid(), signal.SIGCONT)
    return model


def case_link_lost(p, model):
    """The NBD link breaks while COLO runs: the primary must not checkpoint
    a secondary disk that missed writes, but fail over and go on."""
    p.sec.cmd("nbd-server-stop")
    w = (0x81, 13 * MiB, 4096)
    p.qemu_io(p.pri, *w)
    model.write(*w)
    wait_event(p.pri, "QUORUM_REPORT_BAD", 30, match={
        "data": {"node-name": "replication0", "type": "write"}})
    p.assert_quiet()
    p.set_delay(TRIGGER_MS)
    wait_colo_exit(p.pri)
    p.log_needles.append("Replication node 'replication0' cannot "
                         "checkpoint: I/O to the secondary failed")
    wait_until("the primary running again", lambda:
               p.pri.cmd("query-status")["status"] == "running", timeout=30)
    w = (0x82, 14 * MiB, 64 * 1024)
    p.qemu_io(p.pri, *w)
    model.write(*w)
    p.expect(p.pri, model, "the primary goes on after the link broke")
    assert_no_io_error(p.pri)
    return model


def dump_logs(*vms):
    """What each QEMU printed, for a failed case."""
    for vm in vms:
        vm.kill()
        log(f"--- {vm._name} QEMU output ---\n{vm.get_log() or ''}")


def run_case(name, case):
    tmp = tempfile.mkdtemp(prefix=f"colo-block-{name}-")
    try:
        paths, model = make_images(tmp)
        ports = dict(zip(("nbd", "migration", "pri-view"), free_ports(3)))
        with LinuxGuest("secondary", slirp_nic(),
                        extra_args=secondary_args(paths)) as sec, \
             LinuxGuest("primary", slirp_nic(),
                        extra_args=primary_args(paths)) as pri:
            try:
                # COLO starts while the guest boots, as users start it.
                start_colo(pri.vm, sec.vm, ports)
                pair = Pair(tmp, pri, sec, {"primary": ports["pri-view"],
                                            "secondary": ports["nbd"]})
                pair.checkpoint(model)
                pair.expect(pair.pri, model, "initial disk")
                pair.expect(pair.sec, model, "initial disk")
                expected = case(pair, model)
            except BaseException:
                dump_logs(pri.vm, sec.vm)
                raise
            survivor, image = ((sec, paths["secondary.raw"])
                               if name.startswith("secondary")
                               else (pri, paths["primary.raw"]))
            for side in (pri, sec):
                if side is not survivor and side.vm.is_running():
                    side.vm.kill()
            survivor.vm.shutdown(timeout=30)
            pair.check_io_log(survivor.vm)
        if file_digest(image) != expected.digest():
            raise AssertionError(f"{name}: the image file differs from the "
                                 "survivor's last view")
        log(f"{name} survives: its image file holds exactly what it showed")
    finally:
        subprocess.run(["rm", "-rf", tmp], check=False)


def main():
    run_case("secondary", case_secondary_survives)
    run_case("secondary-live-primary", case_secondary_takes_over_live_primary)
    run_case("primary", case_primary_survives)
    run_case("link", case_link_lost)
    run_case("hung-secondary", case_secondary_hangs)
    return 0


if __name__ == "__main__":
    sys.exit(main())
