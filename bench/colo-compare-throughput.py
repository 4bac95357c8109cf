#!/usr/bin/python3
"""colo-compare throughput and added latency, measured on a real QEMU.

    colo-compare-throughput.py BUILD [--packets N] [--rounds N]

Starts qemu-system-x86_64 (-M none) with one colo-compare in an iothread and
plays both VMs over its unix-socket chardevs: identical TCP streams (four
connections, the secondary cutting nothing differently) are written to
primary_in and secondary_in in alternating chunks, and the released packets
are read from outdev.  Prints, for 64, 512 and 1460-byte payloads:

  - throughput: packets/s and payload MB/s released, from the first byte
    written to the last packet read;
  - latency: one primary and one secondary packet at a time, the time from
    writing the secondary's copy (the moment a match is possible) to reading
    the released packet, against the same write and read through a bare
    socket pair, so what colo-compare adds is the difference.

Every run checks the comparator's counters afterwards: all packets matched
and no checkpoint requested, or the figures would be meaningless.
These are figures, not a pass/fail test.
"""

import argparse
import json
import os
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time

PAYLOADS = (64, 512, 1460)
CONNECTIONS = 4
CHUNK = 128             # frames per side before switching sides


def tcp_frame(conn, seq, payload):
    """Ethernet + IPv4 + TCP (ACK|PSH) from the guest, checksums zero."""
    tcp = struct.pack("!HHIIBBHHH", 80, 40000 + conn, seq & 0xffffffff,
                      1, 5 << 4, 0x18, 64240, 0, 0) + payload
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(tcp), 1, 0x4000,
                     64, 6, 0, bytes([10, 0, 0, 2]), bytes([10, 0, 0, 1]))
    eth = bytes([0x52, 0x54, 0, 0, 0, 1, 0x52, 0x54, 0, 0, 0, 2, 8, 0])
    return eth + ip + tcp


def framed(frame):
    return struct.pack("!I", len(frame)) + frame


class Qmp:
    def __init__(self, path):
        self.sock = socket.socket(socket.AF_UNIX)
        self.sock.connect(path)
        self.file = self.sock.makefile("rw")
        json.loads(self.file.readline())
        self.cmd("qmp_capabilities")

    def cmd(self, name, **args):
        self.file.write(json.dumps({"execute": name, "arguments": args}))
        self.file.flush()
        while True:
            rsp = json.loads(self.file.readline())
            if "return" in rsp or "error" in rsp:
                if "error" in rsp:
                    raise RuntimeError(rsp["error"]["desc"])
                return rsp["return"]


class Rig:
    """A QEMU with one colo-compare, and the test's ends of its chardevs."""

    def __init__(self, qemu):
        self.dir = tempfile.TemporaryDirectory(prefix="colo-bench-")
        d = self.dir.name
        args = [qemu, "-M", "none", "-nodefaults", "-display", "none",
                "-qmp", f"unix:{d}/qmp,server=on,wait=off",
                "-object", "iothread,id=iot"]
        for name in ("pri", "sec", "out"):
            args += ["-chardev",
                     f"socket,id={name},path={d}/{name},server=on,wait=off"]
        args += ["-object", "colo-compare,id=cmp,primary_in=pri,"
                 "secondary_in=sec,outdev=out,iothread=iot,"
                 "compare_timeout=10000,max_queue_size=65536"]
        self.proc = subprocess.Popen(args)
        deadline = time.time() + 30
        while not os.path.exists(f"{d}/qmp"):
            if time.time() > deadline or self.proc.poll() is not None:
                raise RuntimeError("QEMU did not start")
            time.sleep(0.05)
        time.sleep(0.2)
        self.qmp = Qmp(f"{d}/qmp")
        self.socks = {}
        for name in ("pri", "sec", "out"):
            s = socket.socket(socket.AF_UNIX)
            s.connect(f"{d}/{name}")
            s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 20)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            self.socks[name] = s
        time.sleep(0.2)

    def counter(self, name):
        return self.qmp.cmd("qom-get", path="/objects/cmp", property=name)

    def close(self):
        for s in self.socks.values():
            s.close()
        self.proc.terminate()
        self.proc.wait(10)
        self.dir.cleanup()


def read_bytes(sock, total, result):
    """Read @total bytes; store the time the last one arrived.  The frames
    all have the same size, so counting bytes counts them without parsing
    in Python, which would be slower than colo-compare itself."""
    got = 0
    while got < total:
        data = sock.recv(1 << 20)
        if not data:
            break
        got += len(data)
    result["end"] = time.perf_counter()
    result["got"] = got


def throughput(qemu, size, packets):
    rig = Rig(qemu)
    try:
        payload = bytes(range(256)) * (size // 256 + 1)
        payload = payload[:size]
        seqs = [1000] * CONNECTIONS
        chunks = []
        for start in range(0, packets, CHUNK):
            block = bytearray()
            for i in range(start, min(start + CHUNK, packets)):
                conn = i % CONNECTIONS
                block += framed(tcp_frame(conn, seqs[conn], payload))
                seqs[conn] += size
            chunks.append(bytes(block))
        result = {}
        total = len(framed(tcp_frame(0, 0, payload))) * packets
        reader = threading.Thread(target=read_bytes,
                                  args=(rig.socks["out"], total, result))
        reader.start()
        t0 = time.perf_counter()
        for block in chunks:
            rig.socks["pri"].sendall(block)
            rig.socks["sec"].sendall(block)
        reader.join(120)
        if result.get("got") != total:
            raise RuntimeError(f"{result.get('got')} of {total} bytes "
                               f"released; out-dropped "
                               f"{rig.counter('out-dropped')}")
        elapsed = result["end"] - t0
        matched = rig.counter("matched")
        requests = rig.counter("checkpoint-requests")
        if matched != packets or requests:
            raise RuntimeError(f"matched {matched}, checkpoint requests "
                               f"{requests}: the streams did not match")
        return packets / elapsed, packets * size / elapsed / 1e6
    finally:
        rig.close()


def recv_one(sock):
    head = b""
    while len(head) < 4:
        head += sock.recv(4 - len(head))
    (n,) = struct.unpack("!I", head)
    body = b""
    while len(body) < n:
        body += sock.recv(n - len(body))
    return body


def latency(qemu, size, rounds):
    rig = Rig(qemu)
    a, b = socket.socketpair()
    try:
        payload = b"x" * size
        through, bare = [], []
        seq = 1000
        for _ in range(rounds):
            pkt = framed(tcp_frame(0, seq, payload))
            seq += size
            rig.socks["pri"].sendall(pkt)
            t0 = time.perf_counter()
            rig.socks["sec"].sendall(pkt)
            recv_one(rig.socks["out"])
            through.append(time.perf_counter() - t0)

            t0 = time.perf_counter()
            a.sendall(pkt)
            recv_one(b)
            bare.append(time.perf_counter() - t0)
        if rig.counter("matched") != rounds:
            raise RuntimeError("latency run: not every packet matched")
        return through, bare
    finally:
        a.close()
        b.close()
        rig.close()


def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p / 100))]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("build")
    ap.add_argument("--packets", type=int, default=200000)
    ap.add_argument("--rounds", type=int, default=3000)
    args = ap.parse_args()
    qemu = os.path.join(os.path.abspath(args.build), "qemu",
                        "qemu-system-x86_64")

    print(f"colo-compare, one iothread, {CONNECTIONS} TCP connections, "
          f"identical streams, {args.packets} packets per size")
    print(f"{'payload':>8} {'packets/s':>12} {'MB/s':>9}")
    for size in PAYLOADS:
        pps, mbs = throughput(qemu, size, args.packets)
        print(f"{size:>7}B {pps:>12,.0f} {mbs:>9.1f}")

    print()
    print(f"latency added per packet, {args.rounds} packets one at a time "
          f"(microseconds; 'bare' is the same write+read on a socket pair)")
    print(f"{'payload':>8} {'median':>8} {'p99':>8} {'bare med':>9} "
          f"{'added med':>10}")
    for size in PAYLOADS:
        through, bare = latency(qemu, size, args.rounds)
        med, p99 = statistics.median(through), pct(through, 99)
        bmed = statistics.median(bare)
        print(f"{size:>7}B {med * 1e6:>8.1f} {p99 * 1e6:>8.1f} "
              f"{bmed * 1e6:>9.1f} {(med - bmed) * 1e6:>10.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
