"""Proves the harness with BIRD on both ends (until our BGP speaker exists):
session establishment (active/passive, TCP-MD5), route exchange (IPv4 and IPv6),
MD5 mismatch, hold timer expiry on a frozen peer, and an import (max-prefix) limit."""

from __future__ import annotations

import time

from harness import Bird, BirdChannel, BirdConfig, BirdNeighbor, Netns, wait_until

A4, B4 = "198.51.100.1", "198.51.100.2"
A6, B6 = "2001:db8:100::1", "2001:db8:100::2"
MD5 = "vpnt-md5-secret"


def pair(
    net: Netns,
    pw_a: str | None = MD5,
    pw_b: str | None = MD5,
    hold: int = 9,
    keepalive: int = 3,
    static_a: list[str] | None = None,
    static_b: list[str] | None = None,
    limit_a: int | None = None,
    ipv6: bool = False,
) -> tuple[Bird, Bird]:
    """BIRD in A (AS 65001, active) and B (AS 65002, passive) over a veth."""
    a, b = net.add_ns("a"), net.add_ns("b")
    net.veth(a, [f"{A4}/30"] + ([f"{A6}/64"] if ipv6 else []), b, [f"{B4}/30"] + ([f"{B6}/64"] if ipv6 else []))
    na = [BirdNeighbor("peer", B4, 65002, password=pw_a, ipv4=BirdChannel(import_limit=limit_a), hold_time=hold, keepalive_time=keepalive)]
    nb = [BirdNeighbor("peer", A4, 65001, password=pw_b, passive=True, hold_time=hold, keepalive_time=keepalive)]
    if ipv6:
        na.append(BirdNeighbor("peer6", B6, 65002, password=pw_a, ipv4=None, ipv6=BirdChannel(), hold_time=hold, keepalive_time=keepalive))
        nb.append(BirdNeighbor("peer6", A6, 65001, password=pw_b, passive=True, ipv4=None, ipv6=BirdChannel(),
                               hold_time=hold, keepalive_time=keepalive))
    ba = Bird(net, a, BirdConfig(A4, 65001, na, static4=static_a or ["10.11.0.0/24"],
                                 static6=["2001:db8:a::/48"] if ipv6 else [])).start()
    bb = Bird(net, b, BirdConfig(B4, 65002, nb, static4=static_b or ["10.12.0.0/24"],
                                 static6=["2001:db8:b::/48"] if ipv6 else [])).start()
    return ba, bb


def test_bird_established_routes(net: Netns, report) -> None:
    t0 = time.monotonic()
    ba, bb = pair(net, ipv6=True)
    ba.wait_state("peer", "Established", 15)
    bb.wait_state("peer", "Established", 5)
    report.row("BGP: active/passive + TCP-MD5 Established", "PASS", f"{time.monotonic() - t0:.1f}s after start")
    wait_until(lambda: "10.11.0.0/24" in bb.routes("master4", "peer"), 5, what="A's route on B")
    wait_until(lambda: "10.12.0.0/24" in ba.routes("master4", "peer"), 5, what="B's route on A")
    report.row("BGP: IPv4 routes exchanged", "PASS", "10.11.0.0/24 -> B, 10.12.0.0/24 -> A")
    ba.wait_state("peer6", "Established", 15)
    wait_until(lambda: "2001:db8:a::/48" in bb.routes("master6", "peer6"), 5, what="A's IPv6 route on B")
    wait_until(lambda: "2001:db8:b::/48" in ba.routes("master6", "peer6"), 5, what="B's IPv6 route on A")
    report.row("BGP: IPv6 session, routes exchanged", "PASS", "2001:db8:a::/48 <-> 2001:db8:b::/48")


def test_bird_md5_mismatch(net: Netns, report) -> None:
    ba, bb = pair(net, pw_a=MD5, pw_b="another-secret")
    states = set()
    end = time.monotonic() + 5
    while time.monotonic() < end:
        states.add(ba.protocol_state("peer"))
        states.add(bb.protocol_state("peer"))
        time.sleep(0.25)
    assert "Established" not in states, states
    report.row("BGP: TCP-MD5 mismatch", "PASS", f"never Established in 5s, states seen {sorted(states)}")


def test_bird_hold_timer_expiry(net: Netns, report) -> None:
    hold = 3
    ba, bb = pair(net, hold=hold, keepalive=1)
    ba.wait_state("peer", "Established", 15)
    bb.freeze()
    t0 = time.monotonic()
    wait_until(lambda: "Hold timer expired" in ba.protocol_info("peer"), hold + 2, 0.1,
               "A reports hold timer expiry")
    took = time.monotonic() - t0
    report.row(f"BGP: peer frozen, hold {hold}s", "PASS", f"'Hold timer expired' on A after {took:.1f}s")
    bb.thaw()
    ba.wait_state("peer", "Established", 20)
    report.row("BGP: thaw -> re-established", "PASS", f"{time.monotonic() - t0 - took:.1f}s after thaw")


def test_bird_import_limit(net: Netns, report) -> None:
    many = [f"10.12.{i}.0/24" for i in range(5)]
    ba, bb = pair(net, static_b=many, limit_a=3)
    wait_until(lambda: "Route limit exceeded" in ba.protocol_info("peer"), 15, 0.2,
               "A's import limit to shut the session down")
    assert ba.protocol_state("peer") == "down"
    assert "[HIT]" in ba.protocol_info("peer")
    report.row("BGP: import limit 3 (disable), peer sends 5", "PASS",
               "A: down, 'Automatic shutdown: Route limit exceeded'")
