"""The COLO network proxy as the whole-system tests and the demo set it up.

One primary and one secondary QEMU on this host, each with a tap device,
and the proxy objects the user documentation describes: filter-mirror,
two filter-redirectors and colo-compare on the primary; two
filter-redirectors and filter-rewriter on the secondary.  The chardevs
between them are loopback TCP sockets on ports base..base+4 (base+3 is left
for the migration).  Also a client, run inside the test's namespace, that
keeps TCP connections to the guest open across a failover.
"""

import subprocess
import time

from harness import colo_capabilities

GUEST_IP = "10.0.2.15"
MAC = "52:54:00:c0:10:01"

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


def echo_roundtrip(sock, text, timeout=30):
    """Send @text plus a newline on an echo connection; raise OSError
    unless exactly that comes back."""
    msg = (text + "\n").encode()
    sock.settimeout(timeout)
    sock.sendall(msg)
    got = b""
    while len(got) < len(msg):
        chunk = sock.recv(65536)
        if not chunk:
            raise OSError(f"echo connection closed after {got!r}")
        got += chunk
    if got != msg:
        raise OSError(f"echo answered {got!r} to {msg!r}")


class EchoClient:
    """One TCP connection to the guest's echo server, from the client's
    bridge."""

    def __init__(self, ns):
        self.sock = ns.connect(GUEST_IP, 7)

    def roundtrip(self, text, timeout=90):
        echo_roundtrip(self.sock, text, timeout)

    def close(self):
        self.sock.close()


def tap_nic(tap, model="e1000"):
    return ["-netdev", f"tap,id=hn0,ifname={tap},script=no,downscript=no",
            "-device", f"{model},netdev=hn0,mac={MAC}"]


def primary_proxy(base, tls=""):
    """Chardev servers on loopback ports (base + 3 is the migration's).
    @tls (",tls-creds=...,tls-authz=...") goes on the two that the
    secondary connects to."""
    mirror, sec_in, pri_in, out = base, base + 1, base + 2, base + 4
    return [
        "-chardev", f"socket,id=mirror0,host=127.0.0.1,port={mirror},"
                    f"server=on,wait=off{tls}",
        "-chardev", f"socket,id=sec_in,host=127.0.0.1,port={sec_in},"
                    f"server=on,wait=off{tls}",
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


def secondary_proxy(base, tls=""):
    """The secondary's ends of the proxy; @tls (",tls-creds=...") on both
    chardevs, which cross to the primary."""
    mirror, sec_in = base, base + 1
    return [
        "-chardev", f"socket,id=red0,host=127.0.0.1,port={mirror},"
                    f"reconnect-ms=200{tls}",
        "-chardev", f"socket,id=red1,host=127.0.0.1,port={sec_in},"
                    f"reconnect-ms=200{tls}",
        "-object", "filter-redirector,id=f1,netdev=hn0,queue=tx,indev=red0",
        "-object", "filter-redirector,id=f2,netdev=hn0,queue=rx,outdev=red1",
        "-object", "filter-rewriter,id=rew0,netdev=hn0,queue=all",
    ]


def colo_caps(vm):
    """The capabilities both sides need, set before the migration; with
    colo-verify, every checkpoint also proves the replica exact."""
    colo_capabilities(vm, verify=True)


def compare_counters(vm, names):
    return {n: vm.cmd("qom-get", path="/objects/cmp", property=n)
            for n in names}
