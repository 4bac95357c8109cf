#!/usr/bin/env python3
"""A multifd page that is still on its way when COLO ends never lands in
freed memory.

On a COLO secondary, multifd threads write the primary's pages into the
COLO RAM cache, which the secondary frees once it runs alone.  A thread
can be anywhere in its loop when the failover comes: this test holds one
at the worst place, with the page's address computed and the page's
bytes waiting in its socket, and lets it go only after the secondary has
been told to carry on alone.

Steps: a Linux guest under COLO with two multifd channels; gdb, in
non-stop mode, stops the first secondary multifd thread that is about to
read page data into the cache; the primary is killed; the secondary
reports the loss and is told to go on (yank, x-colo-lost-heartbeat, the
latter on a second monitor whose answer is read only after the release);
a few seconds later the held thread reads its page.  The secondary must
survive that read and end up running its guest, which must still answer.
If the secondary released the cache without waiting for its multifd
threads, the read would write into unmapped memory and crash it.
"""

import json
import os
import queue
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time

from colo_pair import ColoPair
from harness import log, skip, wait_event, wait_until

SOURCE = "migration/multifd-colo.c"
# The statement at which a thread has its iovec pointing into the cache
# and is about to read the page bytes from its channel.
READ_PAGES = "ret = qio_channel_readv_all(p->c, p->iov, p->normal_num"
# How long the freed-or-not cache is left alone before the thread reads.
HOLD_AFTER_DECISION_S = 3
HIT = r'Thread (\d+) "[^"]*" hit Breakpoint'


def read_pages_line():
    """The line of READ_PAGES in the source the binary was built from."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.dirname(os.path.abspath(__file__)))))
    for base in (os.path.join(root, "build", "src"), root):
        path = os.path.join(base, SOURCE)
        if os.path.exists(path):
            with open(path) as f:
                for number, line in enumerate(f, 1):
                    if READ_PAGES in line:
                        return number
    raise AssertionError(f"{READ_PAGES!r} not found in {SOURCE}")


class Gdb:
    """gdb attached to a running process in non-stop mode: a thread that
    hits a breakpoint stops alone, the others run on."""

    def __init__(self, pid):
        self.out = queue.Queue()
        self.text = []
        self.proc = subprocess.Popen(
            ["gdb", "-q", "-nx", "-ex", "set non-stop on",
             "-ex", "set pagination off", "-ex", "set confirm off",
             "-ex", "handle SIGUSR1 SIGUSR2 SIGPIPE noprint nostop pass"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, bufsize=1)
        threading.Thread(target=self._read, daemon=True).start()
        self.send(f"attach {pid} &")
        self.send("echo ATTACHED\\n")
        self.wait_for("ATTACHED", 120)

    def _read(self):
        for line in self.proc.stdout:
            self.out.put(line)

    def send(self, command):
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()

    def wait_for(self, pattern, timeout):
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"gdb never printed {pattern!r}; it "
                                   f"said:\n{''.join(self.text)[-3000:]}")
            try:
                line = self.out.get(timeout=left)
            except queue.Empty:
                continue
            self.text.append(line)
            match = re.search(pattern, line)
            if match:
                return match

    def said(self, pattern):
        """Whether gdb printed @pattern so far (draining what is pending)."""
        while True:
            try:
                self.text.append(self.out.get_nowait())
            except queue.Empty:
                break
        return re.search(pattern, "".join(self.text)) is not None

    def release_others(self, held):
        """Resume every thread but @held that stopped at a breakpoint."""
        self.send("echo DELETED\\n")
        self.wait_for("DELETED", 30)
        self.said("")
        for thread in set(re.findall(HIT, "".join(self.text))) - {held}:
            self.send(f"thread {thread}")
            self.send("continue &")

    def ask(self, thread, command, timeout=60):
        """What @command prints in @thread, which must be stopped."""
        self.said("")
        start = len(self.text)
        self.send(f"thread {thread}")
        self.send(command)
        self.send("echo ANSWERED\\n")
        self.wait_for("ANSWERED", timeout)
        return "".join(self.text[start:])

    def backtraces(self):
        """Every thread's stack, for a failure report."""
        if self.proc.poll() is None:
            self.send("interrupt -a")
            time.sleep(2)
            self.send("thread apply all bt 12")
            self.send("echo BACKTRACES\\n")
            try:
                self.wait_for("BACKTRACES", 60)
            except TimeoutError:
                pass

    def close(self):
        if self.proc.poll() is None:
            try:
                self.send("detach")
                self.send("quit")
                self.proc.wait(timeout=30)
            except Exception:
                self.proc.kill()
                self.proc.wait()


class SideMonitor:
    """A second QMP monitor, read only when the test wants to.

    The secondary frees its RAM cache only after joining its multifd
    threads, in the main loop: while gdb holds one, the main loop cannot
    answer.  The decision is sent here, and its answer read once the held
    thread is released, so that the test does not wait on itself."""

    def __init__(self, path):
        self.path = path
        self.sock = None
        self.buf = b""

    def args(self):
        return ["-chardev", f"socket,id=side-mon,path={self.path},"
                            "server=on,wait=off",
                "-mon", "chardev=side-mon,mode=control"]

    def _message(self, timeout):
        deadline = time.monotonic() + timeout
        while b"\n" not in self.buf:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no QMP answer within {timeout} s")
            self.sock.settimeout(left)
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("the side monitor closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return json.loads(line)

    def connect(self):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(self.path)
        self._message(30)                       # the greeting
        self.send("qmp_capabilities")
        self.answer(30)

    def send(self, command):
        self.sock.sendall(json.dumps({"execute": command}).encode() + b"\n")

    def answer(self, timeout):
        """The next command answer, past any event."""
        while True:
            msg = self._message(timeout)
            if "return" in msg:
                return msg["return"]
            if "error" in msg:
                raise AssertionError(f"QMP error: {msg['error']}")

    def close(self):
        if self.sock:
            self.sock.close()


def batch_backtraces(vm):
    """Every thread's stack of @vm's process, if it still runs."""
    pid = vm.get_pid()
    if pid is None:
        return "(not running)"
    try:
        return subprocess.run(
            ["gdb", "-q", "-nx", "-batch", "-p", str(pid),
             "-ex", "thread apply all bt 12"], stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True, timeout=120).stdout[-12000:]
    except subprocess.TimeoutExpired:
        return "(gdb did not finish)"


def main():
    if not subprocess.run(["sh", "-c", "command -v gdb"],
                          stdout=subprocess.DEVNULL).returncode == 0:
        skip("gdb is not installed (buildsys/install-deps.sh installs it)")
    line = read_pages_line()
    tmp = tempfile.mkdtemp(prefix="colo-late-page-")
    side = SideMonitor(os.path.join(tmp, "side-mon.sock"))
    with ColoPair("multifd-late-page", multifd=True, delay_ms=500,
                  extra_args={"secondary": side.args()}) as pair:
        gdb = None
        try:
            side.connect()
            pair.start_colo()
            pair.wait_verified(2)
            sec = pair.sec.vm
            # A secondary whose main loop is stuck must fail the test with
            # backtraces, not hang it until meson kills it.
            sec._qmp.settimeout(60)

            gdb = Gdb(sec.get_pid())
            gdb.send(f"break {SOURCE}:{line}")
            held = gdb.wait_for(HIT, 120).group(1)
            # One thread is enough: the other channel must go on, so that
            # its end at the primary's death ends the secondary's sync.
            gdb.send("delete")
            gdb.release_others(held)
            log(f"gdb holds thread {held} before it reads its pages")

            pair.pri.vm.kill()
            log("primary killed")
            event = wait_event(sec, "COLO_EXIT", 60)
            assert event["data"]["reason"] == "error", event
            status = sec.cmd("query-colo-status")
            assert status["reason"] == "peer-lost", status

            # The decision; the secondary now ends COLO on its own time.
            sec.cmd("yank", instances=[{"type": "migration"}])
            side.send("x-colo-lost-heartbeat")
            log("the secondary was told to go on alone")
            time.sleep(HOLD_AFTER_DECISION_S)

            # Where the held thread is about to write: still the cache?
            cache = gdb.ask(held, "print p->block->colo_cache")
            target = gdb.ask(held, "x/1xb p->iov[0].iov_base")
            gdb.send("continue -a &")
            log("the held thread is released")
            side.answer(60)
            time.sleep(2)
            freed = re.search(r"\$\d+ = \(uint8_t \*\) 0x0\b", cache)
            assert not freed and "Cannot access memory" not in target, \
                ("the secondary freed its RAM cache while a multifd thread "
                 f"was about to write into it:\n{cache}{target}")
            crashed = gdb.said(r"received signal SIG|\[Inferior \d+ .* exited|terminated with signal")
            gdb.close()
            assert not crashed, ("the held multifd thread faulted:\n" +
                                 "".join(gdb.text)[-3000:])

            wait_until("the secondary on its own", lambda:
                       sec.cmd("query-colo-status")["mode"] == "none", 120)
            wait_until("its VM running", lambda:
                       sec.cmd("query-status")["status"] == "running", 120)
            pair.shells["secondary"].check("echo alive", timeout=60)
            log("the held thread read its page after the failover decision; "
                "the secondary survived it and its guest runs")
        except BaseException:
            if gdb and gdb.proc.poll() is None:
                gdb.backtraces()
                log("--- gdb ---\n" + "".join(gdb.text)[-12000:])
                gdb.close()
            else:
                log("--- secondary threads ---\n" +
                    batch_backtraces(pair.sec.vm))
            log(f"--- secondary console (end) ---\n"
                f"{pair.sec.console()[-2000:]}")
            raise
        finally:
            side.close()
            shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
