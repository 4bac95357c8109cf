#!/usr/bin/env python3
"""qemu-colo refuses bad input with a clear message, and copes with a QEMU
that does not start, hangs, or has no peer.

First what needs no QEMU: a configuration file that is missing, is not a
key file, or has an unknown group or key, a missing or wrong value, too
many nodes, a node that is not in it; a bad command line; status and stop
when nothing runs.  Each prints exactly the expected message and exits
with the expected code.

Then, as root inside a network namespace the test creates: a QEMU that
exits while starting (its own message is passed on), a second start of a
running node, a QEMU that hangs (SIGSTOP: status reports it, stop kills
it), a failover or protect of a secondary that never received the guest,
and a protect whose secondary is not there, or sits behind a link that
drops packets: it fails within seconds and leaves the guest running
alone, serving HTTP; once the secondary answers, protect succeeds.

Each case prints one line; a summary ends the run.  Without root or
network namespaces the QEMU cases are skipped (exit 77) after the others.
"""

import os
import shutil
import signal
import socket
import sys
import tempfile
import time

from harness import Cases, NetNamespace, env_path, log, require_netns, run
from test_qemu_colo import (CHECKPOINT_DELAY_MS, COLO_VM, ERROR, HUNG,
                            NOT_RUNNING, RUNNING, Node, config_text,
                            http_ok, live_pid,
                            make_disk, parse_status, qemus_under)

# A QEMU that starts in a blink and runs nothing: enough to be found,
# queried, hung and stopped.
IDLE_ARGS = ["-accel", "tcg", "-m", "64", "-nodefaults", "-S"]


def expect(r, code, line=None, contains=()):
    """@r, a finished command (a CompletedProcess, or Node.colo's exit
    code and output), exited with @code and printed exactly @line (when
    given) and every string of @contains."""
    rc, out = (r.returncode, r.stdout) if hasattr(r, "returncode") else r
    out = out.strip()
    if rc != code:
        raise AssertionError(f"exit code {rc}, not {code}; output: {out!r}")
    if line is not None and out != line:
        raise AssertionError(f"printed {out!r}, not {line!r}")
    for text in contains:
        if text not in out:
            raise AssertionError(f"{text!r} is not in {out!r}")
    return out


# --- without QEMU -----------------------------------------------------------

class Offline:
    """Configuration files in @tmp, qemu-colo run on this host."""

    def __init__(self, tmp):
        self.tmp = tmp
        self.tool = env_path("QEMU_COLO")
        self.run_dir = os.path.join(tmp, "run-offline")
        self.good = self.conf("good", config_text(self.run_dir, IDLE_ARGS))

    def conf(self, name, text):
        path = os.path.join(self.tmp, f"{name}.conf")
        with open(path, "w") as f:
            f.write(text)
        return path

    def variant(self, name, old, new):
        """The good configuration with @old replaced by @new."""
        text = config_text(self.run_dir, IDLE_ARGS)
        assert old in text, old
        return self.conf(name, text.replace(old, new, 1))

    def colo(self, *args):
        return run([self.tool] + list(args), check=False)

    def refused(self, conf, message, node="n1", args=("status",)):
        """Loading @conf fails with 'qemu-colo: CONF: @message'."""
        r = self.colo("-c", conf, "-n", node, *args)
        return expect(r, ERROR, f"qemu-colo: {conf}: {message}")


def offline_cases(cases, tmp):
    o = Offline(tmp)
    good = o.good

    def missing_file():
        path = os.path.join(tmp, "nosuch.conf")
        return expect(o.colo("-c", path, "-n", "n1", "status"), ERROR,
                      f"qemu-colo: {path}: No such file or directory")

    def syntax_error():
        path = o.conf("syntax", config_text(o.run_dir, IDLE_ARGS)
                      + "this line is not a key file's\n")
        return expect(o.colo("-c", path, "-n", "n1", "status"), ERROR,
                      contains=(f"qemu-colo: {path}: Key file contains line",
                                "this line is not a key file's"))

    def no_config_option():
        return expect(o.colo("-n", "n1", "status"), ERROR,
                      "qemu-colo: name the VM's configuration file with "
                      "--config")

    def bad_timeout():
        for value in ("0", "abc", "86401", "-5", "5s"):
            expect(o.colo("-c", good, "-n", "n1", "-t", value, "status"),
                   ERROR, "qemu-colo: --timeout wants seconds, from 1 to "
                          "86400")
        return "0, abc, 86401, -5, 5s"

    cases.case("missing config file", missing_file)
    cases.case("key file syntax error", syntax_error)
    cases.case("no --config", no_config_option)
    cases.case("unknown group", o.refused,
               o.conf("group", config_text(o.run_dir, IDLE_ARGS)
                      + "[extra]\nkey=value\n"),
               "unknown group [extra]")
    cases.case("unknown group with an id", o.refused,
               o.conf("group2", config_text(o.run_dir, IDLE_ARGS)
                      + "[nics net1]\ntap=tap1\n"),
               "unknown group [nics net1]")
    cases.case("no [vm] group", o.refused,
               o.variant("novm", "[vm]", "[virtual]"),
               "the [vm] group is missing")
    cases.case("no [colo] group", o.refused,
               o.variant("nocolo", "[colo]\nport=9400\ncheckpoint-delay="
                         f"{CHECKPOINT_DELAY_MS}\n", ""),
               "the [colo] group is missing")
    cases.case("unknown key in [vm]", o.refused,
               o.variant("key", "name=vm0", "nmae=vm0"),
               "[vm]: unknown key 'nmae'")
    cases.case("unknown key in [colo]", o.refused,
               o.variant("key2", "checkpoint-delay=", "checkpoint_delay="),
               "[colo]: unknown key 'checkpoint_delay'")
    cases.case("unknown key in [nic]", o.refused,
               o.variant("key3", "bridge=br0", "brigde=br0"),
               "[nic net0]: unknown key 'brigde'")
    cases.case("missing [vm] binary", o.refused,
               o.variant("binary", f"binary={env_path('QEMU_BINARY')}\n",
                         ""),
               "[vm]: 'binary' is required")
    cases.case("run-dir not absolute", o.refused,
               o.variant("rundir", f"run-dir={o.run_dir}", "run-dir=run"),
               "[vm]: run-dir must be an absolute path")
    cases.case("tls-dir not absolute", o.refused,
               o.variant("tlsdir", "port=9400", "port=9400\ntls-dir=pki"),
               "[colo]: tls-dir must be an absolute path")
    cases.case("port 0", o.refused,
               o.variant("port0", "port=9400", "port=0"),
               "[colo]: 'port' is required (the first of the TCP ports "
               "that COLO uses)")
    cases.case("port 70000", lambda: expect(
        o.colo("-c", o.variant("port70000", "port=9400", "port=70000"),
               "-n", "n1", "status"), ERROR,
        contains=("[colo]: 'port' must be a number from 0 to 65535: ",
                  "70000")))
    # One NIC: the migration, NBD and two proxy ports, 65532 to 65535.
    cases.case("port leaving no room for the NIC", o.refused,
               o.variant("port65533", "port=9400", "port=65533"),
               "[colo] port 65533 leaves no room for the 4 ports COLO needs")
    cases.case("last port that leaves room", lambda: expect(
        o.colo("-c", o.variant("port65532", "port=9400", "port=65532"),
               "-n", "n1", "status"), NOT_RUNNING, "qemu=stopped"))
    cases.case("bad NIC id", o.refused,
               o.variant("nicid", "[nic net0]", "[nic 0net]"),
               "[nic] id '0net' is not a valid id: a letter, then up to 31 "
               "letters, digits, '-', '.' or '_'")
    cases.case("NIC without a tap", o.refused,
               o.variant("notap", "tap=tap-p\n", ""),
               "[nic net0]: 'tap' is required")
    cases.case("a third node", o.refused,
               o.conf("three", config_text(o.run_dir, IDLE_ARGS)
                      + "[node n3]\naddress=127.0.0.3\n"),
               "name exactly two nodes ([node NAME] groups), not 3")
    cases.case("this node not in the file", o.refused, good,
               "this node ('nosuch') is not one of the file's nodes; name "
               "it with --node", "nosuch")
    cases.case("--resync without protect", lambda: expect(
        o.colo("-c", good, "-n", "n1", "--resync", "status"), ERROR,
        "qemu-colo: --resync goes only with protect"))
    cases.case("unknown command", lambda: expect(
        o.colo("-c", good, "-n", "n1", "frobnicate"), ERROR,
        "qemu-colo: unknown command 'frobnicate'; see qemu-colo --help"))
    cases.case("start with a bad role", lambda: expect(
        o.colo("-c", good, "-n", "n1", "start", "tertiary"), ERROR,
        "qemu-colo: start: the role is primary or secondary, not "
        "'tertiary'"))
    cases.case("start without a role", lambda: expect(
        o.colo("-c", good, "-n", "n1", "start"), ERROR,
        "qemu-colo: usage: qemu-colo [OPTIONS] start primary|secondary"))
    cases.case("bad --timeout", bad_timeout)
    cases.case("status with no QEMU", lambda: expect(
        o.colo("-c", good, "-n", "n1", "status"), NOT_RUNNING,
        "qemu=stopped"))
    cases.case("stop with no QEMU", lambda: expect(
        o.colo("-c", good, "-n", "n1", "stop"), RUNNING, ""))


# --- with QEMU --------------------------------------------------------------

def assert_gone(node, pid=None):
    expect(node.colo("status"), NOT_RUNNING, "qemu=stopped")
    left = qemus_under(node.run_dir)
    assert not left, f"QEMU left running: {left}"
    assert pid is None or not live_pid(pid), f"QEMU {pid} still runs"


def fill_listen_queue(path, most=64):
    """Connections to the unix socket @path, never accepted, until its
    listen queue takes no more; they are returned to be closed."""
    socks = []
    for _ in range(most):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.setblocking(False)
        try:
            s.connect(path)
        except BlockingIOError:
            s.close()
            return socks
        socks.append(s)
    raise AssertionError(f"{path}: {most} connections queued, no end")


def qemu_cases(cases, tmp, ns):
    n1 = Node("n1", tmp, ns)
    n2 = Node("n2", tmp, ns)
    make_disk(n1.disk)
    make_disk(n2.disk)

    def start_fails():
        n1.write_config(args=IDLE_ARGS + ["-nosuchoption"])
        out = expect(n1.colo("start", "primary"), ERROR, contains=(
            "qemu-colo: QEMU exited while starting\nIts output:\n",
            "-nosuchoption: invalid option"))
        assert_gone(n1)
        return out.splitlines()[-1]

    def binary_missing():
        path = os.path.join(tmp, "no-such-qemu")
        with open(n1.conf, "w") as f:
            f.write(config_text(n1.run_dir, IDLE_ARGS, disk=n1.disk)
                    .replace(f"binary={env_path('QEMU_BINARY')}",
                             f"binary={path}"))
        out = expect(n1.colo("start", "primary"), ERROR,
                     contains=(f"qemu-colo: cannot run {path}: ",))
        assert_gone(n1)
        return out

    def tls_without_credentials():
        missing = os.path.join(tmp, "no-pki")
        n1.write_config(args=IDLE_ARGS, tls_dir=missing)
        out = expect(n1.colo("start", "primary"), ERROR, contains=(
            "qemu-colo: QEMU exited while starting\nIts output:\n",
            f"{missing}/ca-cert.pem"))
        assert_gone(n1)
        return out.splitlines()[-1]

    def start_twice():
        n1.write_config(args=IDLE_ARGS)
        n1.ok("start", "primary")
        pid = n1.pid()
        st = n1.expect(RUNNING, qemu="running", role="alone", colo="off",
                       vm="prelaunch")
        assert st["pid"] == str(pid), st
        for role in ("primary", "secondary"):
            expect(n1.colo("start", role), ERROR,
                   f"qemu-colo: QEMU for vm0 already runs here (pid {pid})")
        n1.expect(RUNNING, pid=str(pid), role="alone")
        return f"pid {pid} goes on"

    def hung():
        pid = n1.pid()
        assert pid and live_pid(pid), "no QEMU from the case before"
        os.kill(pid, signal.SIGSTOP)
        # Clients that gave up on the hung QEMU fill its monitors' listen
        # queues, as a cluster manager's status queries do: connecting
        # must not block on them.
        stuck = fill_listen_queue(os.path.join(n1.run_dir, "control.sock"))
        try:
            t = time.monotonic()
            rc, out = n1.colo("-t", "2", "status")
            took = time.monotonic() - t
            st = parse_status(out)
            assert rc == HUNG and st.get("qemu") == "hung" and \
                st.get("pid") == str(pid), f"status exited {rc}: {out!r}"
            assert took < 6, f"status took {took:.1f} s with -t 2"
            t = time.monotonic()
            expect(n1.colo("-t", "20", "stop"), RUNNING, "")
            stop_took = time.monotonic() - t
            # A QEMU that cannot answer cannot quit politely either: no
            # waiting for a SIGTERM it will never handle (half of -t).
            assert stop_took < 5, f"stop took {stop_took:.1f} s"
        finally:
            for sock in stuck:
                sock.close()
            if live_pid(pid):
                os.kill(pid, signal.SIGCONT)
        assert_gone(n1, pid)
        return (f"status said hung in {took:.1f} s (-t 2), stop killed it "
                f"in {stop_took:.1f} s (-t 20)")

    def secondary_without_guest():
        n2.write_config(args=IDLE_ARGS)
        n2.ok("start", "secondary")
        n2.expect(RUNNING, role="waiting-for-primary", colo="off",
                  vm="inmigrate")
        expect(n2.colo("failover"), ERROR,
               "qemu-colo: this node never received the guest: it has "
               "nothing to run")
        expect(n2.colo("protect"), ERROR,
               "qemu-colo: the guest does not run alone here (COLO mode "
               "none, VM inmigrate): only such a guest can be protected")
        n2.expect(RUNNING, role="waiting-for-primary", colo="off",
                  vm="inmigrate")
        n2.ok("stop")
        assert_gone(n2)
        return "failover and protect refused, it still waits"

    def protect_without_secondary():
        n1.write_config()
        n2.write_config()
        n1.ok("start", "primary")
        n1.wait_ready()
        http_ok(ns)

        def refused(why, within):
            """protect fails for @why within @within seconds, and the
            guest runs on alone."""
            t = time.monotonic()
            out = expect(n1.colo("-t", "30", "protect"), ERROR,
                         "qemu-colo: the secondary's NBD server (127.0.0.2 "
                         f"port 9401) does not answer: {why}")
            took = time.monotonic() - t
            assert took < within, f"protect gave up only after {took:.1f} s"
            n1.expect(RUNNING, role="alone", colo="off", vm="running")
            http_ok(ns, timeout=30)
            return out, took

        for attempt in range(2):
            out, _ = refused("Connection refused", 10)
        # A secondary behind a link that drops packets: QEMU would wait
        # for the kernel's connect for minutes with the BQL held, so the
        # probe's deadline must end it first.
        n2.ok("start", "secondary")
        ns.run(["nft", "-f", "-"], input=(
            "table inet colo_blackhole {\n chain out {\n"
            "  type filter hook output priority 0; policy accept;\n"
            "  ip daddr 127.0.0.2 tcp dport 9401 drop\n }\n}\n"))
        try:
            dropped, took = refused("Connection timed out", 6)
        finally:
            ns.run(["nft", "delete", "table", "inet", "colo_blackhole"],
                   check=False)
        # Nothing of the failed attempts is in the way of the real one.
        n1.ok("-t", "60", "protect")
        n1.expect(RUNNING, role="primary", colo="running", vm=COLO_VM)
        n2.expect(RUNNING, role="secondary", colo="running")
        http_ok(ns)
        for node in (n1, n2):
            node.ok("stop")
            assert_gone(node)
        return (f"{out}; {dropped.split(': ')[-1]} after {took:.1f} s "
                f"behind a dropping link; the guest ran on; protect worked "
                f"once the secondary answered")

    try:
        cases.case("QEMU that cannot start", start_fails)
        cases.case("binary that does not exist", binary_missing)
        cases.case("tls-dir without credentials", tls_without_credentials)
        cases.case("start primary twice", start_twice)
        cases.case("hung QEMU", hung)
        cases.case("failover on a waiting secondary",
                   secondary_without_guest)
        cases.case("protect without the peer's secondary",
                   protect_without_secondary)
    except BaseException:
        for node in (n1, n2):
            node.dump()
        raise
    finally:
        for node in (n1, n2):
            node.cleanup()
    if cases.failed:
        for node in (n1, n2):
            node.dump()


def main():
    os.environ["LC_ALL"] = "C"      # GLib's messages, as written here
    env_path("QEMU_COLO")
    cases = Cases()
    tmp = tempfile.mkdtemp(prefix=f"qemu-colo-errors-{os.getpid()}-")
    try:
        offline_cases(cases, tmp)
        if cases.failed:
            return cases.summary()
        log(f"{len(cases.passed)} cases without QEMU passed")
        require_netns()
        with NetNamespace(bridge_addr="10.0.2.1/24") as ns:
            qemu_cases(cases, tmp, ns)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return cases.summary()


if __name__ == "__main__":
    sys.exit(main())
