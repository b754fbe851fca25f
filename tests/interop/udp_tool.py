#!/usr/bin/env python3
"""Sequence-numbered UDP stream, run inside test namespaces by harness.UdpStream.

  udp_tool.py send --bind SRC --dst DST --port P --count N --rate R [--size B]
  udp_tool.py recv --bind ADDR --port P --expect N --report FILE [--ready FILE]

The sender sends N datagrams (8-byte big-endian sequence number + padding) at R per
second, then an end marker (sequence 2**64-1) five times. The receiver stops at the
end marker, after 2 s of silence once traffic was seen, or after --max-wait seconds,
and writes a JSON report: received (distinct), duplicates, reordered, lost (list),
duration.
"""
import argparse
import json
import socket
import struct
import time
from pathlib import Path

END = 2**64 - 1


def send(a: argparse.Namespace) -> None:
    s = socket.socket(socket.AF_INET6 if ":" in a.dst else socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((a.bind, 0))
    pad = b"\0" * max(0, a.size - 8)
    t0 = time.monotonic()
    for i in range(a.count):
        due = t0 + i / a.rate
        d = due - time.monotonic()
        if d > 0:
            time.sleep(d)
        try:
            s.sendto(struct.pack("!Q", i) + pad, (a.dst, a.port))
        except OSError:
            pass  # no route for a moment counts as a loss, not a crash
    time.sleep(0.3)
    for _ in range(5):
        try:
            s.sendto(struct.pack("!Q", END), (a.dst, a.port))
        except OSError:
            pass
        time.sleep(0.05)


def recv(a: argparse.Namespace) -> None:
    s = socket.socket(socket.AF_INET6 if ":" in a.bind else socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
    s.bind((a.bind, a.port))
    if a.ready:
        Path(a.ready).write_text("ready\n")
    seen: set[int] = set()
    dup = reordered = 0
    last = -1
    first_t = None
    t_start = time.monotonic()
    while True:
        s.settimeout(2.0 if first_t is not None else 1.0)
        try:
            data, _ = s.recvfrom(65535)
        except socket.timeout:
            if first_t is not None or time.monotonic() - t_start > a.max_wait:
                break
            continue
        if len(data) < 8:
            continue
        (seq,) = struct.unpack("!Q", data[:8])
        if seq == END:
            break
        if first_t is None:
            first_t = time.monotonic()
        if seq in seen:
            dup += 1
            continue
        if seq < last:
            reordered += 1
        last = max(last, seq)
        seen.add(seq)
    lost = [i for i in range(a.expect) if i not in seen]
    report = {"received": len(seen), "duplicates": dup, "reordered": reordered, "lost": lost,
              "duration": (time.monotonic() - first_t) if first_t else 0.0}
    Path(a.report).write_text(json.dumps(report))


def main() -> None:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="mode", required=True)
    ps = sub.add_parser("send")
    ps.add_argument("--bind", required=True)
    ps.add_argument("--dst", required=True)
    ps.add_argument("--port", type=int, required=True)
    ps.add_argument("--count", type=int, required=True)
    ps.add_argument("--rate", type=float, default=500)
    ps.add_argument("--size", type=int, default=200)
    pr = sub.add_parser("recv")
    pr.add_argument("--bind", required=True)
    pr.add_argument("--port", type=int, required=True)
    pr.add_argument("--expect", type=int, required=True)
    pr.add_argument("--report", required=True)
    pr.add_argument("--ready")
    pr.add_argument("--max-wait", type=float, default=60)
    a = p.parse_args()
    send(a) if a.mode == "send" else recv(a)


if __name__ == "__main__":
    main()
