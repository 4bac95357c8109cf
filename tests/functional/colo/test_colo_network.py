#!/usr/bin/env python3
"""A Linux guest under COLO with the network proxy keeps its TCP clients
through the loss of either host.

Layout, all inside a network namespace the test creates:

  client (10.0.2.1 on br0) --- tap-p --- primary QEMU
                                           filter-mirror    -> secondary
                                           filter-redirector -> colo-compare
                                           colo-compare      -> back to tap-p
  (br1, isolated)          --- tap-s --- secondary QEMU
                                           filter-redirector <- mirrored input
                                           filter-redirector -> colo-compare
                                           filter-rewriter

The client talks to the guest's HTTP server and TCP echo server while COLO
runs; every answer it gets has been matched by colo-compare against the
secondary's.  Then one QEMU is killed:
- primary lost: the secondary takes over; the test moves tap-s onto the
  client's bridge, as a cluster manager would move the address, and the
  echo connections opened before the failover carry on with the secondary;
- secondary lost: the primary carries on alone, its filters and comparator
  step aside, and the same connections carry on.
"""

import json
import os
import shutil
import subprocess
import sys
import time

from harness import LinuxGuest, NetNamespace, log, require_netns

GUEST_IP = "10.0.2.15"
MAC = "52:54:00:c0:10:01"
CHECKPOINT_DELAY_MS = 1000

# A client that stays up across the failover, driven line by line:
#   open NAME | echo NAME TEXT | http   ->   "ok ..." or "err ..."
CLIENT = r"""
import http.client, socket, sys, time
conns = {}
def echo(s, text):
    msg = (text + "\n").encode()
    s.sendall(msg)
    got = b""
    while len(got) < len(msg):
        chunk = s.recv(65536)
        if not chunk:
            raise OSError("connection closed")
        got += chunk
    if got != msg:
        raise OSError("echo differs: %r" % got)
for line in sys.stdin:
    cmd, _, rest = line.strip().partition(" ")
    try:
        if cmd == "open":
            s = socket.create_connection((sys.argv[1], 7), timeout=30)
            conns[rest] = s
        elif cmd == "echo":
            name, _, text = rest.partition(" ")
            echo(conns[name], text)
        elif cmd == "http":
            c = http.client.HTTPConnection(sys.argv[1], 80, timeout=30)
            c.request("GET", "/index.html")
            r = c.getresponse()
            body = r.read().decode()
            if r.status != 200 or "COLO test guest" not in body:
                raise OSError("bad answer %d" % r.status)
            c.close()
        print("ok", flush=True)
    except Exception as e:
        print("err %s: %s" % (type(e).__name__, e), flush=True)
"""


class Client:
    def __init__(self, ns):
        self.proc = subprocess.Popen(
            ns.exec_argv() + ["/usr/bin/python3", "-c", CLIENT, GUEST_IP],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            universal_newlines=True)

    def do(self, line, retry_for=0):
        """Run one client command; retry for a while if asked to."""
        deadline = time.monotonic() + retry_for
        while True:
            self.proc.stdin.write(line + "\n")
            self.proc.stdin.flush()
            answer = self.proc.stdout.readline().strip()
            if answer == "ok" or time.monotonic() > deadline:
                break
            time.sleep(1)
        if answer != "ok":
            raise AssertionError(f"client '{line}': {answer or 'no answer'}")

    def close(self):
        self.proc.stdin.close()
        self.proc.wait(30)


def wait_until(what, predicate, timeout=120):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        time.sleep(0.2)


def tap_nic(tap):
    return ["-netdev", f"tap,id=hn0,ifname={tap},script=no,downscript=no",
            "-device", f"e1000,netdev=hn0,mac={MAC}"]


def primary_proxy(base):
    """Chardev servers on loopback ports (base + 3 is the migration's)."""
    mirror, sec_in, pri_in, out = base, base + 1, base + 2, base + 4
    return [
        "-chardev", f"socket,id=mirror0,host=127.0.0.1,port={mirror},"
                    "server=on,wait=off",
        "-chardev", f"socket,id=sec_in,host=127.0.0.1,port={sec_in},"
                    "server=on,wait=off",
        "-chardev", f"socket,id=pri_in_srv,host=127.0.0.1,port={pri_in},"
                    "server=on,wait=off",
        "-chardev", f"socket,id=pri_in,host=127.0.0.1,port={pri_in}",
        "-chardev", f"socket,id=out_srv,host=127.0.0.1,port={out},"
                    "server=on,wait=off",
        "-chardev", f"socket,id=out,host=127.0.0.1,port={out}",
        "-object", "filter-mirror,id=m0,netdev=hn0,queue=tx,outdev=mirror0",
        "-object", "filter-redirector,id=r0,netdev=hn0,queue=rx,"
                   "indev=out_srv",
        "-object", "filter-redirector,id=r1,netdev=hn0,queue=rx,"
                   "outdev=pri_in_srv",
        "-object", "iothread,id=iot",
        "-object", "colo-compare,id=cmp,primary_in=pri_in,secondary_in=sec_in,"
                   "outdev=out,iothread=iot",
    ]


def secondary_proxy(base):
    mirror, sec_in = base, base + 1
    return [
        "-chardev", f"socket,id=red0,host=127.0.0.1,port={mirror},"
                    "reconnect-ms=200",
        "-chardev", f"socket,id=red1,host=127.0.0.1,port={sec_in},"
                    "reconnect-ms=200",
        "-object", "filter-redirector,id=f1,netdev=hn0,queue=tx,indev=red0",
        "-object", "filter-redirector,id=f2,netdev=hn0,queue=rx,outdev=red1",
        "-object", "filter-rewriter,id=rew0,netdev=hn0,queue=all",
    ]


def colo_caps(vm):
    vm.cmd("migrate-set-capabilities", capabilities=[
        {"capability": "x-colo", "state": True},
        {"capability": "return-path", "state": True}])


COMPARE_COUNTERS = ("matched", "mismatches", "timeouts",
                    "checkpoint-requests", "released")
REWRITER_COUNTERS = ("tracked-connections", "rewritten-packets",
                     "untracked-packets", "closed-connections")


def counters(vm):
    return {n: vm.cmd("qom-get", path="/objects/cmp", property=n)
            for n in COMPARE_COUNTERS}


def run_case(ns, lose, base_port):
    ns.add_tap("tap-p")
    ns.ip("tuntap", "add", "dev", "tap-s", "mode", "tap")
    ns.ip("link", "set", "tap-s", "master", "br1")
    ns.ip("link", "set", "tap-s", "up")

    with LinuxGuest("primary", tap_nic("tap-p"), ip=f"{GUEST_IP}/24",
                    wrapper=ns.exec_argv(),
                    extra_args=primary_proxy(base_port)) as pri:
        with LinuxGuest("secondary", tap_nic("tap-s"), ip=f"{GUEST_IP}/24",
                        wrapper=ns.exec_argv(),
                        extra_args=["-incoming", "defer"]
                        + secondary_proxy(base_port)) as sec:
            pri.wait_ready()
            colo_caps(sec.vm)
            sec.vm.cmd("migrate-incoming",
                       uri=f"tcp:127.0.0.1:{base_port + 3}")
            colo_caps(pri.vm)
            pri.vm.cmd("migrate-set-parameters",
                       **{"x-checkpoint-delay": CHECKPOINT_DELAY_MS})
            pri.vm.cmd("migrate", uri=f"tcp:127.0.0.1:{base_port + 3}")
            wait_until("COLO on both sides", lambda:
                       pri.vm.cmd("query-colo-status")["mode"] == "primary"
                       and sec.vm.cmd("query-colo-status")["mode"]
                       == "secondary")
            sec.vm.event_wait("RESUME", timeout=60)
            log(f"{lose}: COLO running with the network proxy")

            client = Client(ns)
            dump = None
            # COLO_NET_DEBUG=1: keep a capture and print the proxy's state.
            if os.environ.get("COLO_NET_DEBUG") and shutil.which("tcpdump"):
                dump = subprocess.Popen(ns.exec_argv() + [
                    "tcpdump", "-U", "-n", "-i", "any", "-w",
                    f"/tmp/colo-net-{lose}.pcap", "tcp"],
                    stdout=open(f"/tmp/colo-net-{lose}.dump", "w"),
                    stderr=subprocess.DEVNULL)
            try:
                client.do("open early", retry_for=30)
                for i in range(5):
                    client.do(f"echo early ping-{i}")
                client.do("http")
                # A checkpoint taken after all that: discard older events
                # and see two more, the first may have begun before.
                sec.vm.get_qmp_events(wait=False)
                sec.vm.event_wait("RESUME", timeout=60)
                sec.vm.event_wait("RESUME", timeout=60)
                # This one lives between checkpoints: at failover the
                # secondary's sequence numbers and clock still differ.
                client.do("open late")
                client.do("echo late hello")
                seen = counters(pri.vm)
                log(f"{lose}: before failover: {json.dumps(seen)}")
                assert seen["matched"] > 0, seen

                lost, survivor = (pri, sec) if lose == "primary" else \
                                 (sec, pri)
                lost.vm.kill()
                if lose == "primary":
                    # The secondary's link replaces the primary's.
                    ns.ip("link", "delete", "tap-p")
                    ns.ip("link", "set", "tap-s", "master", "br0")
                event = survivor.vm.event_wait("COLO_EXIT", timeout=60)
                assert event["data"]["reason"] == "error", event

                # Connections opened under COLO carry on with the survivor.
                client.do("echo early after-failover", retry_for=60)
                client.do("echo late after-failover", retry_for=60)
                client.do("open fresh", retry_for=30)
                client.do("echo fresh new")
                client.do("http")
                log(f"{lose} lost: the {event['data']['mode']} kept both "
                    "echo connections and serves new ones")
            except BaseException:
                survivor = sec if lose == "primary" else pri
                for vm, obj, names in (
                        (sec.vm, "rew0", REWRITER_COUNTERS),
                        (pri.vm, "cmp", COMPARE_COUNTERS)):
                    try:
                        log(f"{obj}: " + json.dumps(
                            {n: vm.cmd("qom-get", path="/objects/" + obj,
                                       property=n) for n in names}))
                    except Exception:
                        pass
                if os.environ.get("COLO_NET_DEBUG"):
                    log(ns.run(["ip", "-s", "link"], check=False).stdout)
                    log(ns.run(["bridge", "fdb", "show"], check=False).stdout)
                    log(ns.run(["ip", "neigh"], check=False).stdout)
                    log(survivor.vm.cmd("human-monitor-command",
                                        **{"command-line": "info network"}))
                log("primary console:\n" + pri.console()[-1500:])
                log("secondary console:\n" + sec.console()[-1500:])
                raise
            finally:
                client.close()
                if dump:
                    dump.terminate()
    for tap in ("tap-p", "tap-s"):
        ns.run(["ip", "link", "delete", tap], check=False)


def main():
    require_netns()
    with NetNamespace(bridge_addr="10.0.2.1/24") as ns:
        ns.ip("link", "add", "br1", "type", "bridge")
        ns.ip("link", "set", "br1", "up")
        run_case(ns, "primary", 9100)
        run_case(ns, "secondary", 9200)
    return 0


if __name__ == "__main__":
    sys.exit(main())
