#!/usr/bin/env python3
"""The Linux test guest boots under TCG and serves HTTP and TCP echo to a
client in a network namespace, through a tap device on a bridge.

Both NIC models the COLO tests use are covered: e1000 and virtio-net.
"""

import sys

from harness import LinuxGuest, NetNamespace, log, require_netns

GUEST_IP = "10.0.2.15"

# Runs inside the namespace.  Retries for a few seconds: the first packets
# may go out before the bridge has learnt where the guest is.
CLIENT = r"""
import http.client, socket, sys, time
ip = sys.argv[1]
deadline = time.monotonic() + 20
while True:
    try:
        c = http.client.HTTPConnection(ip, 80, timeout=5)
        c.request("GET", "/index.html")
        r = c.getresponse()
        body = r.read().decode()
        assert r.status == 200, r.status
        assert "COLO test guest" in body, body
        s = socket.create_connection((ip, 7), timeout=5)
        msg = b"colo echo check\n" * 64
        s.sendall(msg)
        got = b""
        while len(got) < len(msg):
            chunk = s.recv(65536)
            if not chunk:
                break
            got += chunk
        s.close()
        assert got == msg, (len(got), len(msg))
        print("http and echo ok")
        break
    except (OSError, AssertionError) as e:
        if time.monotonic() > deadline:
            raise
        time.sleep(0.5)
"""


def check_nic(ns, model):
    tap = "tap-" + model.split("-")[0][:6]
    ns.add_tap(tap)
    nic = ["-netdev", f"tap,id=n0,ifname={tap},script=no,downscript=no",
           "-device", f"{model},netdev=n0"]
    with LinuxGuest(f"http-{model}", nic, ip=f"{GUEST_IP}/24",
                    wrapper=ns.exec_argv()) as guest:
        secs = guest.wait_ready(timeout=60)
        log(f"{model}: guest ready in {secs:.1f} s")
        out = ns.run(["/usr/bin/python3", "-c", CLIENT, GUEST_IP],
                     check=False, timeout=60)
        if out.returncode != 0:
            raise AssertionError(f"{model}: client failed:\n{out.stdout}\n"
                                 f"console:\n{guest.console()[-2000:]}")
        log(f"{model}: {out.stdout.strip()}")
    ns.ip("link", "delete", tap)


def main():
    require_netns()
    with NetNamespace(bridge_addr="10.0.2.1/24") as ns:
        for model in ("e1000", "virtio-net-pci"):
            check_nic(ns, model)
    return 0


if __name__ == "__main__":
    sys.exit(main())
