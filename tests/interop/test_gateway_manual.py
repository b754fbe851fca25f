"""Two of our own gateways (``examples/gateway.rs``), manually keyed, in two
namespaces joined by a veth: ping both ways through the tunnel, a UDP stream
arriving complete, a cut and restored outside link, the stdin commands, a
wrong key, metrics, and a graceful SIGTERM.

    site A (ns a)                                   site B (ns b)
    vpn0 10.201.1.1/32 -- gateway -- veth 192.0.2.1 == 192.0.2.2 -- gateway -- vpn0 10.201.2.1/32

Run as root: ``.venv/bin/python -m pytest tests/interop/test_gateway_manual.py -q``.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from harness import REPO_ROOT, Link, Netns, OurGateway, UdpStream, ping

A_OUT, B_OUT = "192.0.2.1", "192.0.2.2"
A_IN, B_IN = "10.201.1.1", "10.201.2.1"
A_NET, B_NET = "10.201.1.0/24", "10.201.2.0/24"
SPI_AB, SPI_BA = 0x0000A001, 0x0000B001
KEY_AB = "cfcd5d3980a1556b3b56ed2224e76979ad4e73f489c210660e5ad56af163484865c18298"
KEY_BA = "61542e0f58f733deae7efb329238bd47ee9cc749622151d47581d1997cdce747e548acad"


@pytest.fixture(scope="session")
def gateway_binary() -> Path:
    """Builds ``target/release/examples/gateway`` once per session."""
    res = subprocess.run(
        ["cargo", "build", "--release", "--example", "gateway"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=1800,
    )
    if res.returncode != 0:
        pytest.fail(f"cargo build --example gateway failed:\n{res.stderr[-4000:]}")
    binary = REPO_ROOT / "target" / "release" / "examples" / "gateway"
    assert binary.is_file(), binary
    return binary


def gateway_config(side: str, start: bool = True, inbound_key: str | None = None) -> dict[str, Any]:
    a = side == "a"
    return {
        "name": f"site-{side}",
        "start": start,
        "outside": {"local": A_OUT if a else B_OUT, "remote": B_OUT if a else A_OUT},
        "inner": {"local_traffic": [A_NET if a else B_NET], "remote_traffic": [B_NET if a else A_NET]},
        "tun": {"name": "vpn0", "address": f"{A_IN if a else B_IN}/32", "mtu": 1436,
                "routes": [B_NET if a else A_NET]},
        "manual": {
            "encryption": "aes256gcm16",
            "esn": True,
            "outbound": {"spi": SPI_AB if a else SPI_BA, "encryption_key": KEY_AB if a else KEY_BA},
            "inbound": {"spi": SPI_BA if a else SPI_AB,
                        "encryption_key": inbound_key or (KEY_BA if a else KEY_AB)},
        },
    }


def pair(net: Netns, binary: Path, **kw_b: Any) -> tuple[OurGateway, OurGateway, Link]:
    """Namespaces a and b, the veth between them, and one gateway in each (B's
    config may be altered through ``kw_b``)."""
    a, b = net.add_ns("a"), net.add_ns("b")
    link = net.veth(a, f"{A_OUT}/24", b, f"{B_OUT}/24")
    ga = OurGateway(net, a, gateway_config("a"), binary=binary, label="gw-a").start()
    gb = OurGateway(net, b, gateway_config("b", **kw_b), binary=binary, label="gw-b").start()
    return ga, gb, link


def wait_up(gw: OurGateway, since: int = 0) -> dict[str, Any]:
    gw.wait_for_event(lambda e: e.get("event") == "tunnel_state" and e.get("state") == "up", 5, since)
    return gw.wait_for_event("child_sa_installed", 5, since)


def metrics(gw: OurGateway) -> dict[str, Any]:
    since = len(gw.events)
    gw.command({"cmd": "metrics"})
    return gw.wait_for_event("metrics", 5, since)


def test_ping_both_ways(net: Netns, gateway_binary: Path, report) -> None:
    ga, gb, _ = pair(net, gateway_binary)
    sa_a, sa_b = wait_up(ga), wait_up(gb)
    assert (sa_a["spi_out"], sa_a["spi_in"]) == ("0000a001", "0000b001"), sa_a
    assert (sa_b["spi_out"], sa_b["spi_in"]) == ("0000b001", "0000a001"), sa_b
    report.row("manual SAs installed", "PASS", f"A out {sa_a['spi_out']} in {sa_a['spi_in']}")

    assert ping(net, ga.ns, B_IN, count=5, src=A_IN) == (5, 5)
    assert ping(net, gb.ns, A_IN, count=5, src=B_IN) == (5, 5)
    # Full-MTU packets: 1436-byte inner IPv4 packets fit the TUN and are sealed whole.
    assert ping(net, ga.ns, B_IN, count=3, src=A_IN) == (3, 3)
    res = net.run(ga.ns, ["ping", "-n", "-q", "-c", "3", "-i", "0.2", "-W", "1", "-M", "do", "-s", "1408",
                          "-I", A_IN, B_IN], check=False)
    assert " 0% packet loss" in res.stdout, res.stdout
    ma, mb = metrics(ga), metrics(gb)
    # 5 requests + 5 replies + 3 + 3 big ones each way.
    assert ma["packets_out"] >= 16 and mb["packets_in"] >= 16, (ma, mb)
    assert ma["bytes_out"] == mb["bytes_in"] and mb["bytes_out"] == ma["bytes_in"], (ma, mb)
    assert ma["bytes_out"] > 3 * 1436, ma
    assert sum(ma["drops"].values()) == 0 and sum(mb["drops"].values()) == 0, (ma, mb)
    report.row("ping both ways + 1436-byte packets", "PASS",
               f"A out {ma['bytes_out']} B, in {ma['bytes_in']} B")


def test_udp_stream_arrives_complete(net: Netns, gateway_binary: Path, report) -> None:
    ga, gb, _ = pair(net, gateway_binary)
    wait_up(ga), wait_up(gb)
    before_a, before_b = metrics(ga), metrics(gb)
    stream = UdpStream(net, ga.ns, A_IN, gb.ns, B_IN, count=4000, rate=2000, size=1000).start()
    r = stream.wait()
    assert r.received == 4000 and r.lost_count == 0 and r.duplicates == 0, r
    ma, mb = metrics(ga), metrics(gb)
    # Each datagram is a 1028-byte inner IPv4 packet (the end markers add a few).
    sent_bytes = ma["bytes_out"] - before_a["bytes_out"]
    got_bytes = mb["bytes_in"] - before_b["bytes_in"]
    assert sent_bytes >= 4000 * 1028 and got_bytes == sent_bytes, (sent_bytes, got_bytes)
    assert mb["drops"]["replay"] == 0 and mb["drops"]["icv"] == 0, mb
    report.row("UDP stream A->B", "PASS", f"4000/4000 in {r.duration:.2f}s, {got_bytes} inner bytes")


def test_link_cut_drops_traffic_and_restore_resumes(net: Netns, gateway_binary: Path, report) -> None:
    ga, gb, link = pair(net, gateway_binary)
    wait_up(ga), wait_up(gb)
    assert ping(net, ga.ns, B_IN, count=3, src=A_IN) == (3, 3)
    for method in ("nft", "down"):
        in_before = metrics(gb)["packets_in"]
        net.cut(link, method=method)
        sent, received = ping(net, ga.ns, B_IN, count=3, interval=0.2, timeout=0.5, src=A_IN)
        assert received == 0, (method, sent, received)
        assert metrics(gb)["packets_in"] == in_before
        net.restore(link)
        time.sleep(0.2)
        assert ping(net, ga.ns, B_IN, count=3, src=A_IN) == (3, 3), method
        assert ping(net, gb.ns, A_IN, count=3, src=B_IN) == (3, 3), method
        assert ga.process and ga.process.alive and gb.process and gb.process.alive
        report.row(f"link cut ({method}) and restored", "PASS", "0/3 while cut, 3/3 after")


def test_terminate_and_initiate_commands(net: Netns, gateway_binary: Path, report) -> None:
    a, b = net.add_ns("a"), net.add_ns("b")
    net.veth(a, f"{A_OUT}/24", b, f"{B_OUT}/24")
    ga = OurGateway(net, a, gateway_config("a", start=False), binary=gateway_binary, label="gw-a").start()
    gb = OurGateway(net, b, gateway_config("b"), binary=gateway_binary, label="gw-b").start()
    wait_up(gb)
    # A waits for a command: nothing is installed, nothing gets through.
    assert ping(net, a, B_IN, count=2, timeout=0.5, src=A_IN)[1] == 0
    assert metrics(ga)["state"] == "down"
    assert metrics(ga)["drops"]["not_connected"] >= 2
    ga.initiate()
    wait_up(ga)
    assert ping(net, a, B_IN, count=3, src=A_IN) == (3, 3)
    since = len(ga.events)
    ga.terminate_ike()
    down = ga.wait_for_event("down", 5, since)
    assert down["reason"] == "closed", down
    ga.wait_for_event(lambda e: e.get("event") == "tunnel_state" and e.get("state") == "down", 5, since)
    assert ping(net, a, B_IN, count=2, timeout=0.5, src=A_IN)[1] == 0
    since = len(ga.events)
    ga.command({"cmd": "no-such-command"})
    assert "unknown command" in ga.wait_for_event("error", 5, since)["message"]
    # Static SAs restart at sequence number 1: B's replay window would drop A's
    # packets, so (as with `ip xfrm`) both ends re-install their SAs.
    since_a, since_b = len(ga.events), len(gb.events)
    gb.terminate_ike()
    gb.wait_for_event("down", 5, since_b)
    ga.initiate()
    gb.initiate()
    wait_up(ga, since_a), wait_up(gb, since_b)
    assert ping(net, a, B_IN, count=3, src=A_IN) == (3, 3)
    assert metrics(gb)["drops"]["replay"] == 0
    report.row("stdin commands", "PASS", "initiate / terminate / metrics / unknown")


def test_wrong_key_is_dropped_and_counted(net: Netns, gateway_binary: Path, report) -> None:
    ga, gb, _ = pair(net, gateway_binary, inbound_key="00" * 36)
    wait_up(ga), wait_up(gb)
    # A -> B fails authentication at B; B -> A still works.
    assert ping(net, ga.ns, B_IN, count=3, timeout=0.5, src=A_IN)[1] == 0
    mb = metrics(gb)
    assert mb["drops"]["icv"] >= 3 and mb["packets_in"] == 0, mb
    report.row("wrong inbound key", "PASS", f"{mb['drops']['icv']} ICV failures counted, nothing delivered")


def test_sigterm_is_graceful(net: Netns, gateway_binary: Path, report) -> None:
    ga, gb, _ = pair(net, gateway_binary)
    wait_up(ga), wait_up(gb)
    assert ping(net, ga.ns, B_IN, count=2, src=A_IN) == (2, 2)
    t0 = time.monotonic()
    rc = ga.stop()
    assert rc == 0, rc
    names = [e["event"] for e in ga.events if not e["event"].startswith("_")]
    assert names[0] == "ready" and names[-1] == "stopped", names
    assert names[-3:] == ["tunnel_state", "down", "stopped"], names
    stopped = ga.events[-2] if ga.events[-1]["event"] == "_eof" else ga.events[-1]
    assert stopped["event"] == "stopped" and stopped["packets_out"] >= 2 and stopped["bytes_in"] > 0, stopped
    report.row("SIGTERM", "PASS", f"exit 0 in {time.monotonic() - t0:.2f}s, events end {names[-3:]}")
