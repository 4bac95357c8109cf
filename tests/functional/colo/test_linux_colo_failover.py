#!/usr/bin/env python3
"""A Linux guest under COLO outlives either of its two QEMU processes.

Both QEMUs run on this host under TCG with user-mode networking that
forwards a loopback port to the guest's web server.  The primary migrates
the running guest with x-colo, COLO checkpoints it, then one side is killed
without telling the other.  The survivor reports it (COLO_EXIT reason
"error") and waits, its VM stopped, until the documented procedure tells it
to go on (yank, then x-colo-lost-heartbeat); then its guest must still
answer HTTP.
"""

import sys
import urllib.request

from harness import (LinuxGuest, colo_capabilities, free_ports, log,
                     wait_event, wait_until)

CHECKPOINT_DELAY_MS = 500


def slirp_nic(http_port):
    return ["-netdev", f"user,id=n0,net=10.0.2.0/24,"
                       f"hostfwd=tcp:127.0.0.1:{http_port}-:80",
            "-device", "e1000,netdev=n0"]


def http_get(port):
    url = f"http://127.0.0.1:{port}/index.html"
    with urllib.request.urlopen(url, timeout=10) as r:
        body = r.read().decode()
    assert r.status == 200 and "COLO test guest" in body, (r.status, body)


def run_case(kill):
    mig_port, pri_http, sec_http = free_ports(3)
    with LinuxGuest("secondary", slirp_nic(sec_http),
                    extra_args=["-incoming", "defer"]) as sec, \
         LinuxGuest("primary", slirp_nic(pri_http)) as pri:
        colo_capabilities(sec.vm)
        sec.vm.cmd("migrate-incoming", uri=f"tcp:127.0.0.1:{mig_port}")
        pri.wait_ready()
        http_get(pri_http)

        colo_capabilities(pri.vm)
        pri.vm.cmd("migrate-set-parameters",
                   **{"x-checkpoint-delay": CHECKPOINT_DELAY_MS})
        pri.vm.cmd("migrate", uri=f"tcp:127.0.0.1:{mig_port}")
        wait_until("COLO on both sides", lambda:
                   pri.vm.cmd("query-colo-status")["mode"] == "primary" and
                   sec.vm.cmd("query-colo-status")["mode"] == "secondary")

        resumes = 0
        while resumes < 4:       # COLO start plus three checkpoints
            wait_event(sec.vm, "RESUME", 60)
            resumes += 1
        log(f"{kill}: 3 checkpoints applied")

        lost, survivor, port = ((pri, sec, sec_http) if kill == "primary"
                                else (sec, pri, pri_http))
        lost.vm.kill()
        event = wait_event(survivor.vm, "COLO_EXIT", 60)
        assert event["data"]["reason"] == "error", event
        status = survivor.vm.cmd("query-colo-status")
        assert status["reason"] == "peer-lost", status
        assert survivor.vm.cmd("query-status")["status"] == "colo"

        survivor.vm.cmd("yank", instances=[{"type": "migration"}])
        survivor.vm.cmd("x-colo-lost-heartbeat")
        wait_until("the survivor on its own", lambda:
                   survivor.vm.cmd("query-colo-status")["mode"] == "none")
        status = survivor.vm.cmd("query-colo-status")
        assert status["reason"] == "request", status
        http_get(port)
        log(f"{kill} killed: the {event['data']['mode']} reported it, "
            "waited, took over when told to, and its guest answers")


def main():
    run_case("primary")
    run_case("secondary")
    return 0


if __name__ == "__main__":
    sys.exit(main())
