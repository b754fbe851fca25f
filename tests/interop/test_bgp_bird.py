"""Our BGP speaker (``examples/bgp_speaker.rs``) against BIRD 2.

Our speaker (AS 65001) runs in namespace ``us``, BIRD (AS 65002) in ``bird``,
joined by a veth with 198.51.100.0/30 and 2001:db8:100::/64. Scenarios: session
Established with us active and with us passive (both with TCP-MD5), IPv4 and
IPv6 routes exchanged and withdrawn both ways, graceful stop (Cease), a frozen BIRD
(our hold timer), TCP-MD5 mismatch, wrong peer AS, inbound max-prefix.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from typing import Any

import pytest

from harness import REPO_ROOT, Bird, BirdChannel, BirdConfig, BirdNeighbor, Netns, OurBgpSpeaker, wait_until

US4, BIRD4 = "198.51.100.1", "198.51.100.2"
US6, BIRD6 = "2001:db8:100::1", "2001:db8:100::2"
OUR_AS, BIRD_AS = 65001, 65002
MD5 = "vpnt-md5-secret"
HOLD = 6


@pytest.fixture(scope="session")
def speaker_binary() -> str:
    if os.geteuid() != 0:
        pytest.skip("the interop tests need root")
    cargo = shutil.which("cargo") or os.path.expanduser("~/.cargo/bin/cargo")
    res = subprocess.run([cargo, "build", "--release", "--example", "bgp_speaker"], cwd=REPO_ROOT,
                         capture_output=True, text=True, timeout=1200)
    assert res.returncode == 0, f"cargo build failed:\n{res.stderr[-3000:]}"
    return str(REPO_ROOT / "target" / "release" / "examples" / "bgp_speaker")


def topology(net: Netns, ipv6: bool = False) -> tuple[str, str]:
    us, rt = net.add_ns("us"), net.add_ns("bird")
    net.veth(us, [f"{US4}/30"] + ([f"{US6}/64"] if ipv6 else []),
             rt, [f"{BIRD4}/30"] + ([f"{BIRD6}/64"] if ipv6 else []))
    return us, rt


def our_neighbor(name: str, address: str = BIRD4, local: str = US4, **kw: Any) -> dict[str, Any]:
    n: dict[str, Any] = {
        "name": name, "address": address, "local_address": local, "peer_asn": BIRD_AS,
        "mode": "active", "hold_time": HOLD, "keepalive_time": 2, "connect_retry": 2,
        "idle_hold": 1, "idle_hold_max": 4, "open_hold_time": 15,
        "ipv4": ":" not in address, "ipv6": ":" in address,
        "import": "all", "export": "all",
    }
    n.update(kw)
    return {k: v for k, v in n.items() if v is not None}


def start_speaker(net: Netns, ns: str, binary: str, neighbors: list[dict[str, Any]],
                  announce: list[str] | None = None) -> OurBgpSpeaker:
    cfg = {"asn": OUR_AS, "router_id": US4, "announce": announce or [], "neighbor": neighbors}
    return OurBgpSpeaker(net, ns, cfg, binary=binary, label="speaker").start()  # type: ignore[return-value]


def bird_neighbor(name: str, address: str = US4, passive: bool = True, v6: bool = False, **kw: Any) -> BirdNeighbor:
    args: dict[str, Any] = dict(hold_time=HOLD, keepalive_time=2, passive=passive)
    if v6:
        args.update(ipv4=None, ipv6=BirdChannel())
    args.update(kw)
    return BirdNeighbor(name, address, OUR_AS, **args)


def start_bird(net: Netns, ns: str, neighbors: list[BirdNeighbor], static4: list[str] | None = None,
               static6: list[str] | None = None) -> Bird:
    return Bird(net, ns, BirdConfig(BIRD4, BIRD_AS, neighbors, static4=static4 or [],
                                    static6=static6 or [])).start()


def state_event(peer: str, state: str):
    return lambda e: e.get("event") == "bgp_state" and e.get("peer") == peer and e.get("state") == state


def route_event(kind: str, prefix: str):
    return lambda e: e.get("event") == kind and e.get("prefix") == prefix


def down_event(peer: str, reason: str):
    return lambda e: e.get("event") == "down" and e.get("peer") == peer and e.get("reason") == reason


# --------------------------------------------------------------------------- scenarios


def test_active_routes_v4_v6_and_stop(net: Netns, report, speaker_binary: str) -> None:
    us, rt = topology(net, ipv6=True)
    bird = start_bird(net, rt, [bird_neighbor("peer4", password=MD5), bird_neighbor("peer6", US6, v6=True, password=MD5)],
                      static4=["10.12.0.0/24"], static6=["2001:db8:b::/48"])
    t0 = time.monotonic()
    sp = start_speaker(net, us, speaker_binary,
                       [our_neighbor("bird4", password=MD5), our_neighbor("bird6", BIRD6, US6, password=MD5)],
                       announce=["10.11.0.0/24", "2001:db8:a::/48"])
    sp.wait_for_event(state_event("bird4", "Established"), 15)
    sp.wait_for_event(state_event("bird6", "Established"), 15)
    bird.wait_state("peer4", "Established", 5)
    bird.wait_state("peer6", "Established", 5)
    report.row("we active, TCP-MD5 (IPv4 + IPv6 sessions): Established", "PASS",
               f"{time.monotonic() - t0:.1f}s after start; BIRD Established on both")

    ev = sp.wait_for_event(route_event("route_added", "10.12.0.0/24"), 10)
    assert ev["next_hop"] == BIRD4 and ev["source"] == "bird4", ev
    assert ev["as_path"] == [BIRD_AS], ev
    wait_until(lambda: "10.11.0.0/24" in bird.routes("master4", "peer4"), 10, what="our IPv4 route in BIRD")
    report.row("IPv4 routes both ways", "PASS", f"BIRD 10.12.0.0/24 -> us (nh {BIRD4}); ours 10.11.0.0/24 -> BIRD")

    ev = sp.wait_for_event(route_event("route_added", "2001:db8:b::/48"), 10)
    assert ev["next_hop"] == BIRD6 and ev["source"] == "bird6", ev
    wait_until(lambda: "2001:db8:a::/48" in bird.routes("master6", "peer6"), 10, what="our IPv6 route in BIRD")
    report.row("IPv6 routes both ways", "PASS", f"BIRD 2001:db8:b::/48 -> us (nh {BIRD6}); ours 2001:db8:a::/48 -> BIRD")

    sp.announce("10.11.1.0/24")
    sp.announce("2001:db8:a1::/48")
    wait_until(lambda: "10.11.1.0/24" in bird.routes("master4", "peer4"), 10, what="announced IPv4 route in BIRD")
    wait_until(lambda: "2001:db8:a1::/48" in bird.routes("master6", "peer6"), 10, what="announced IPv6 route in BIRD")
    sp.withdraw("10.11.1.0/24")
    sp.withdraw("2001:db8:a1::/48")
    wait_until(lambda: "10.11.1.0/24" not in bird.routes("master4", "peer4"), 10, what="IPv4 withdrawal in BIRD")
    wait_until(lambda: "2001:db8:a1::/48" not in bird.routes("master6", "peer6"), 10, what="IPv6 withdrawal in BIRD")
    assert "10.11.0.0/24" in bird.routes("master4", "peer4")
    report.row("our announce/withdraw (stdin) seen by BIRD", "PASS", "10.11.1.0/24, 2001:db8:a1::/48 added then removed")

    since = len(sp.events)
    bird.birdc("disable static_ipv4")
    bird.birdc("disable static_ipv6")
    ev4 = sp.wait_for_event(route_event("route_withdrawn", "10.12.0.0/24"), 10, since)
    ev6 = sp.wait_for_event(route_event("route_withdrawn", "2001:db8:b::/48"), 10, since)
    assert ev4["next_hop"] == BIRD4 and ev6["next_hop"] == BIRD6, (ev4, ev6)
    bird.birdc("enable static_ipv4")
    sp.wait_for_event(route_event("route_added", "10.12.0.0/24"), 10, since)
    report.row("BIRD withdraws/re-announces -> route_withdrawn/route_added", "PASS",
               "static protocols disabled: both prefixes withdrawn; IPv4 re-added on enable")

    since = len(sp.events)
    rc = sp.stop()
    assert rc == 0, rc
    kinds = [e.get("event") for e in sp.events[since:]]
    assert "stopped" in kinds, kinds
    downs = [e for e in sp.events[since:] if e.get("event") == "down"]
    assert {d["peer"] for d in downs} == {"bird4", "bird6"} and all(d["reason"] == "admin_down" for d in downs), downs
    wait_until(lambda: "Administrative shutdown" in bird.protocol_info("peer4"), 5,
               what="BIRD to report the Cease it received")
    assert bird.protocol_state("peer4") != "Established"
    report.row("SIGTERM: Cease/Administrative Shutdown, exit 0", "PASS",
               "'stopped' last; BIRD: 'Received: Administrative shutdown'")


def test_passive_md5(net: Netns, report, speaker_binary: str) -> None:
    us, rt = topology(net)
    sp = start_speaker(net, us, speaker_binary, [our_neighbor("bird", mode="passive", password=MD5)])
    t0 = time.monotonic()
    bird = start_bird(net, rt, [bird_neighbor("cgw", passive=False, password=MD5)], static4=["10.12.0.0/24"])
    sp.wait_for_event(state_event("bird", "Established"), 15)
    bird.wait_state("cgw", "Established", 5)
    states = [e["state"] for e in sp.events if e.get("event") == "bgp_state"]
    assert "Connect" not in states, states  # passive: never connects
    sp.wait_for_event(route_event("route_added", "10.12.0.0/24"), 10)
    report.row("we passive, TCP-MD5 key on the listener: Established", "PASS",
               f"BIRD connected, {time.monotonic() - t0:.1f}s after BIRD start; states {' > '.join(states)}")


def test_md5_mismatch(net: Netns, report, speaker_binary: str) -> None:
    us, rt = topology(net)
    # Both sides connect (and listen): neither direction may get through.
    bird = start_bird(net, rt, [bird_neighbor("cgw", passive=False, password="another-secret")])
    sp = start_speaker(net, us, speaker_binary, [our_neighbor("bird", password=MD5)])
    seen_bird = set()
    end = time.monotonic() + 6
    while time.monotonic() < end:
        seen_bird.add(bird.protocol_state("cgw"))
        time.sleep(0.25)
    ours = {e["state"] for e in sp.events if e.get("event") == "bgp_state"}
    assert "Established" not in ours and "OpenSent" not in ours, ours
    assert "Established" not in seen_bird, seen_bird
    report.row("TCP-MD5 mismatch: never Established", "PASS",
               f"6s: our states {sorted(ours)}, BIRD {sorted(seen_bird)}")


def test_hold_timer_expiry(net: Netns, report, speaker_binary: str) -> None:
    us, rt = topology(net)
    bird = start_bird(net, rt, [bird_neighbor("cgw")], static4=["10.12.0.0/24"])
    sp = start_speaker(net, us, speaker_binary, [our_neighbor("bird")])
    sp.wait_for_event(state_event("bird", "Established"), 15)
    est = sp.wait_for_event("established", 5)
    assert est["hold_time"] == HOLD, est
    since = len(sp.events)
    bird.freeze()
    t0 = time.monotonic()
    try:
        ev = sp.wait_for_event(down_event("bird", "hold_timer_expired"), HOLD + 3, since)
        took = ev["_t"] - t0
        assert took <= HOLD + 0.5, took
        assert ev["notification"] == "sent" and ev["code"] == 4, ev
        report.row(f"BIRD frozen (SIGSTOP), hold {HOLD}s: our hold timer", "PASS",
                   f"down reason hold_timer_expired after {took:.1f}s, NOTIFICATION 4/0 sent")
    finally:
        bird.thaw()
    t1 = time.monotonic()
    info = wait_until(lambda: (lambda i: i if "Hold timer expired" in i else None)(bird.protocol_info("cgw")), 10,
                      what="BIRD to show the hold timer expiry")
    received = "Received: Hold timer expired" in info
    sp.wait_for_event(state_event("bird", "Established"), 20, since)
    report.row("BIRD thawed: sees Hold timer expired, session restarts", "PASS",
               f"BIRD last error {'Received: ' if received else ''}Hold timer expired; "
               f"re-Established {time.monotonic() - t1:.1f}s after thaw")


def test_bad_peer_as(net: Netns, report, speaker_binary: str) -> None:
    us, rt = topology(net)
    bird = start_bird(net, rt, [bird_neighbor("cgw")])
    sp = start_speaker(net, us, speaker_binary, [our_neighbor("bird", peer_asn=65099)])
    ev = sp.wait_for_event(down_event("bird", "bad_peer_as"), 15)
    assert ev["expected"] == 65099 and ev["received"] == BIRD_AS, ev
    assert ev["code"] == 2 and ev["subcode"] == 2, ev
    wait_until(lambda: "Bad peer AS" in bird.protocol_info("cgw"), 5, what="BIRD to show Bad peer AS")
    ours = {e["state"] for e in sp.events if e.get("event") == "bgp_state"}
    assert "Established" not in ours, ours
    report.row("wrong peer ASN configured", "PASS",
               f"down bad_peer_as expected {ev['expected']} received {ev['received']}; BIRD: 'Received: Bad peer AS'")


def test_max_prefixes(net: Netns, report, speaker_binary: str) -> None:
    us, rt = topology(net)
    many = [f"10.12.{i}.0/24" for i in range(5)]
    bird = start_bird(net, rt, [bird_neighbor("cgw")], static4=many)
    sp = start_speaker(net, us, speaker_binary, [our_neighbor("bird", max_prefixes=3)])
    ev = sp.wait_for_event(down_event("bird", "max_prefixes"), 15)
    assert ev["limit"] == 3 and ev["afi"] == "ipv4" and ev["code"] == 6 and ev["subcode"] == 1, ev
    wait_until(lambda: "Maximum number of prefixes reached" in bird.protocol_info("cgw"), 5,
               what="BIRD to show the Cease it received")
    # No restart configured: the session stays down and no BIRD route stays in our RIB.
    time.sleep(2)
    assert sp.events and not any(state_event("bird", "Established")(e) for e in sp.events[sp.events.index(ev):])
    added = {e["prefix"] for e in sp.events if e.get("event") == "route_added"}
    withdrawn = {e["prefix"] for e in sp.events if e.get("event") == "route_withdrawn"}
    assert added <= set(many) and added == withdrawn, (added, withdrawn)
    report.row("BIRD sends 5 prefixes, our max_prefixes 3", "PASS",
               "down max_prefixes (Cease 6/1, limit 3), routes flushed, stays Idle; "
               "BIRD: 'Received: Maximum number of prefixes reached'")
