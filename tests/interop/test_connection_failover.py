"""A whole VPN connection fails over, and back, under a continuous ping.

Two strongSwan peers stand in for AWS's two tunnel endpoints, each in its own
namespace behind its own veth, as two separate AWS endpoints are. Our customer
gateway (``examples/connection_gateway.rs``) runs both tunnels of one
connection from a single outside address and routes the customer network
10.1.0.0/24 into them through a TUN device.

    ns vgw1: charon 198.51.100.21, lo 10.2.0.1 --veth "tunnel1"--\\
                                                                  ns cgw: 203.0.113.10 (lo),
    ns vgw2: charon 198.51.100.87, lo 10.2.0.1 --veth "tunnel2"--/        connection_gateway, vpn0 10.1.0.1

10.2.0.1 lives behind both endpoints (AWS's VPC is reachable through either
tunnel), so a ping answers through whichever tunnel carries it.

Both sides come from the AWS fixture XML, imported once by the Python binding,
edited identically (IKEv1 as AWS's XML says, then IKEv2; static routing to 10.2.0.0/24, DPD every 2 s with
AWS's shortest timeout of 30 s, failback hysteresis 5 s) and exported: ours as
the connection's JSON, strongSwan's as ``to_swanctl()``. Our DPD action is
``restart`` (the customer gateway brings a lost tunnel back on its own);
strongSwan's is ``clear``, as AWS's endpoints clear a dead peer and wait.

The scenario: a ping every 0.2 s from 10.1.0.1 to 10.2.0.1 runs throughout.
Tunnel 1's veth is cut (``ip link set down`` on both ends): the ping must
come back over tunnel 2 once dead peer detection has declared tunnel 1 dead,
that is within the detection window AWS defines (silence for at most one DPD
interval before the first liveness check, then the DPD timeout counted from
that first unanswered check). Then the veth is restored: tunnel 1 comes back,
traffic moves back to it after the hysteresis, and the ping loses nothing
at that failback.
"""

from __future__ import annotations

import re
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from aws_lab import CGW_IN, DPD_INTERVAL, DPD_TIMEOUT, VGW_IN, VGW_NET, aws_strongswan, config_from, fixture_dict
from harness import ConnectionGateway, Netns, build_example, toml_dumps, wait_until

HYSTERESIS = 5
PING_INTERVAL = 0.2
# What the ping may lose at the cut: the detection window plus two seconds
# for the ping interval, the round trip and scheduling on a busy 2-core machine.
MAX_GAP = DPD_INTERVAL + DPD_TIMEOUT + 2.0


@pytest.fixture(scope="session")
def binary() -> Path:
    return build_example("connection_gateway")


def edited_configs(ike_version: int, tunnel2_psk: str | None = None) -> tuple[Any, Any]:
    """(ours, strongSwan's): the same edited fixture, with failback after
    HYSTERESIS and DPD action ``restart`` for ours, ``clear`` for AWS's side
    (and tunnel 2's pre-shared key replaced, if given)."""
    failover = {"mode": "active_standby", "preferred_tunnel": 0, "failback_hysteresis_secs": HYSTERESIS}
    ours, aws_side = fixture_dict(ike_version, "restart"), fixture_dict(ike_version, "clear")
    for d in (ours, aws_side):
        d["failover"] = failover
        if tunnel2_psk is not None:
            d["tunnels"][1]["psk"] = tunnel2_psk
    return config_from(ours), config_from(aws_side)


class ContinuousPing:
    """``ping -D -O`` running in the background: every reply with its
    timestamp, every sequence number that went unanswered."""

    def __init__(self, net: Netns, ns: str, src: str, dst: str, interval: float) -> None:
        self.log = net.workdir / "ping.log"
        self.interval = interval
        self.proc = net.spawn(ns, ["ping", "-n", "-D", "-O", "-i", str(interval), "-W", "1", "-I", src, dst],
                              log=self.log)

    def replies(self) -> list[tuple[float, int]]:
        """(receive time on the wall clock, icmp_seq) of every reply so far."""
        text = self.log.read_text(errors="replace") if self.log.exists() else ""
        return [(float(t), int(seq)) for t, seq in re.findall(r"^\[(\d+\.\d+)\] \d+ bytes from .*icmp_seq=(\d+)",
                                                              text, re.M)]

    def replies_after(self, wall: float) -> int:
        return sum(1 for t, _ in self.replies() if t > wall)

    def stop(self) -> None:
        self.proc.signal(signal.SIGINT)
        self.proc.wait(5)

    def longest_gap(self, start: float, end: float) -> tuple[float, int]:
        """Longest time between two consecutive replies received in
        [start, end] (wall clock) and the sequence numbers lost in between."""
        rs = [(t, s) for t, s in self.replies() if start <= t <= end]
        best, lost = 0.0, 0
        for (t0, s0), (t1, s1) in zip(rs, rs[1:]):
            if t1 - t0 > best:
                best, lost = t1 - t0, s1 - s0 - 1
        return best, lost


@pytest.mark.parametrize("ike_version", [1, 2], ids=["ikev1", "ikev2"])
def test_failover_and_failback_under_continuous_ping(net: Netns, binary: Path, report, ike_version: int) -> None:
    ours, aws_side = edited_configs(ike_version)
    (cgw_out, vgw1), (_, vgw2) = [tuple(p) for p in ours.outside_addresses]
    assert (cgw_out, vgw1, vgw2) == ("203.0.113.10", "198.51.100.21", "198.51.100.87"), ours.outside_addresses

    # Namespaces: each AWS endpoint behind its own veth, the same VPC address behind both.
    cgw = net.add_ns("cgw")
    net.add_addr(cgw, f"{cgw_out}/32")
    links, endpoints = {}, {}
    for n, vgw in ((1, vgw1), (2, vgw2)):
        ns = net.add_ns(f"vgw{n}")
        links[n] = net.veth(cgw, None, ns, f"{vgw}/32", dev_a=f"tunnel{n}", dev_b="to-cgw")
        net.add_route(cgw, f"{vgw}/32", dev=f"tunnel{n}", src=cgw_out)
        net.add_route(ns, f"{cgw_out}/32", dev="to-cgw", src=vgw)
        net.add_addr(ns, f"{VGW_IN}/32")
        endpoints[n] = aws_strongswan(net, ns, aws_side, label=f"vgw{n}", tunnel=n)

    (net.workdir / "cgw.json").write_text(ours.to_json())
    conf = net.workdir / "cgw.toml"
    conf.write_text(toml_dumps({"connection": "cgw.json",
                                "tun": {"name": "vpn0", "address": f"{CGW_IN}/32", "routes": [VGW_NET]}}))
    gw = ConnectionGateway(net, cgw, conf, binary=binary, label="cgw").start()
    for t in (1, 2):
        gw.tunnel_event(t, "state_changed", 15, state="up")
    gw.wait_for_event(lambda e: e.get("event") == "active_tunnel" and e.get("to") == 1, 5)
    for n in (1, 2):
        wait_until(lambda: any(v.get("state") == "ESTABLISHED" for v in endpoints[n].list_sas().values()), 10,
                   what=f"strongSwan vgw{n} established")
    report.row(f"IKEv{ike_version}: 2 strongSwan endpoints, a veth each; both tunnels up, active tunnel 1", "PASS",
               f"CGW {cgw_out} <-> {vgw1} (tunnel 1), {vgw2} (tunnel 2); DPD {DPD_INTERVAL}s/{DPD_TIMEOUT}s, "
               f"failback hysteresis {HYSTERESIS}s")

    pinger = ContinuousPing(net, cgw, CGW_IN, VGW_IN, PING_INTERVAL)
    wait_until(lambda: pinger.replies_after(0) >= 10, 10, what="ping replies through tunnel 1")
    assert gw.status()["tunnels"][0]["packets_out"] >= 10

    # Cut tunnel 1's veth.
    since = len(gw.events)
    t_cut, wall_cut = time.monotonic(), time.time()
    net.cut(links[1], method="down")
    change = gw.wait_for_event(lambda e: e.get("event") == "active_tunnel" and e.get("to") == 2,
                               DPD_INTERVAL + DPD_TIMEOUT + 5, since)
    took = change["_t"] - t_cut
    wait_until(lambda: pinger.replies_after(time.time() - 1) >= 3, 10, what="ping replies through tunnel 2")
    wall_back = time.time()
    gap, lost = pinger.longest_gap(wall_cut - 1, wall_back)
    status = gw.status()
    assert status["active_tunnel"] == 2 and status["tunnels"][0]["state"] != "up", status
    down = gw.tunnel_event(1, "down", 1, since)
    assert "dead peer" in down["text"].lower() or "dpd" in down["text"].lower(), down
    assert gap <= MAX_GAP, f"ping gap {gap:.1f}s > {MAX_GAP:.1f}s"
    assert took <= DPD_INTERVAL + DPD_TIMEOUT + 1, took
    report.row(f"IKEv{ike_version}: cut tunnel 1's veth under a continuous ping (every 0.2 s) -> tunnel 2", "PASS",
               f"failover {took:.1f}s after the cut ({down['text'][:60]}); ping gap {gap:.1f}s, {lost} lost "
               f"(window: DPD interval {DPD_INTERVAL}s + timeout {DPD_TIMEOUT}s; bound {MAX_GAP:.1f}s)")

    # Restore the veth: tunnel 1 comes back (our DPD action restart), traffic
    # fails back after the hysteresis, and the ping does not notice.
    since = len(gw.events)
    net.restore(links[1])
    t_restore, wall_restore = time.monotonic(), time.time()
    up = gw.tunnel_event(1, "state_changed", 60, since, state="up")
    back = gw.wait_for_event(lambda e: e.get("event") == "active_tunnel" and e.get("to") == 1,
                             HYSTERESIS + 5, since)
    hysteresis = back["_t"] - up["_t"]
    wait_until(lambda: pinger.replies_after(time.time() - 1) >= 3, 10, what="ping replies after failback")
    time.sleep(1)
    wall_back_done = time.time()
    gap_back, lost_back = pinger.longest_gap(wall_restore, wall_back_done)
    status = gw.status()
    assert status["active_tunnel"] == 1 and all(t["state"] == "up" for t in status["tunnels"]), status
    assert HYSTERESIS - 0.5 <= hysteresis <= HYSTERESIS + 2, hysteresis
    assert lost_back == 0 and gap_back <= 1.5, (gap_back, lost_back)
    report.row(f"IKEv{ike_version}: restore tunnel 1's veth -> tunnel 1 back, failback after the hysteresis", "PASS",
               f"tunnel 1 up {up['_t'] - t_restore:.1f}s after restore, failback {hysteresis:.1f}s later "
               f"(hysteresis {HYSTERESIS}s); ping lost {lost_back} at failback (longest gap {gap_back:.2f}s)")

    # New options for tunnel 2 at both ends, as AWS's ModifyVpnTunnelOptions
    # gives them (here a new pre-shared key): our connection restarts tunnel 2
    # alone (Connection::replace_config) while tunnel 1 keeps the ping.
    new_ours, new_aws = edited_configs(ike_version, tunnel2_psk="Replaced_key.tunnel2")
    spis_before = {v.get("initiator-spi") for v in endpoints[2].list_sas().values()}
    endpoints[2].swanctl_path.write_text(new_aws.to_swanctl())
    endpoints[2].load()
    (net.workdir / "cgw-replaced.json").write_text(new_ours.to_json())
    since = len(gw.events)
    t_replace, wall_replace = time.monotonic(), time.time()
    gw.command({"cmd": "replace", "connection": str(net.workdir / "cgw-replaced.json")})
    replaced = gw.wait_for_event("replaced", 5, since)
    assert replaced["tunnels_restarted"] == [2] and not replaced["failed_to_start"], replaced
    gw.tunnel_event(2, "down", 5, since)
    up2 = gw.tunnel_event(2, "state_changed", 30, since, state="up")
    def new_sa_established() -> set[str] | None:
        spis = {v.get("initiator-spi") for v in endpoints[2].list_sas().values() if v.get("state") == "ESTABLISHED"}
        return spis if spis and not spis & spis_before else None

    wait_until(new_sa_established, 10, what="a new IKE SA in strongSwan vgw2, authenticated with the new key")
    time.sleep(1)
    pinger.stop()
    gap_replace, lost_replace = pinger.longest_gap(wall_replace, time.time())
    status = gw.status()
    assert status["active_tunnel"] == 1 and all(t["state"] == "up" for t in status["tunnels"]), status
    assert lost_replace == 0 and gap_replace <= 1.5, (gap_replace, lost_replace)
    report.row(f"IKEv{ike_version}: replace config (tunnel 2's key) -> only tunnel 2 restarts", "PASS",
               f"tunnel 2 up again {(up2['_t'] - t_replace) * 1000:.0f} ms after the command, new IKE SA in "
               f"strongSwan with the new key; "
               f"ping on tunnel 1 lost {lost_replace} (longest gap {gap_replace:.2f}s)")
    rc = gw.stop()
    assert rc == 0, rc
