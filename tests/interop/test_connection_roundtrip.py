"""The configuration round trip, proven against strongSwan: AWS's
``CustomerGatewayConfiguration`` XML (``vpn-core/tests/fixtures/config/aws-vpn-connection-bgp.xml``)
is imported once for each side of the VPN connection:

* the customer gateway (ours): ``examples/connection_gateway.rs`` reads the XML
  itself and runs both tunnels of a ``vpn_core::connection::Connection`` from
  one outside address;
* AWS's side (strongSwan 5.9, charon + kernel-libipsec): the same XML imported
  by ``vpn.Config.from_aws_xml`` and exported by ``to_swanctl()``
  (``ConnectionConfig::to_swanctl_conf``), loaded verbatim.

Both tunnels must come up from those two derived configurations, and cutting
tunnel 1's path must move our active tunnel to tunnel 2 by dead peer detection.

    strongSwan = "AWS" (ns vgw)                                 ours = CGW (ns cgw)
    lo 10.2.0.1/32 -- ipsec0 -- charon 198.51.100.21 (tunnel 1) \\
                                       198.51.100.87 (tunnel 2) == 203.0.113.10 connection_gateway -- vpn0 10.1.0.1/32

The fixture's outside addresses are already documentation ranges (CGW
203.0.113.10, VGWs 198.51.100.21 and 198.51.100.87), so they are used as they
are, inside the namespaces only: the CGW address on our end of a veth, both VGW
addresses on strongSwan's end.

Changes to the imported configuration, applied identically to both sides
(our program's overrides; the same fields edited in the dict before export):

* run twice: with the fixture's IKEv1 (``mode main``) and with IKEv2;
* routing static (``10.2.0.0/24``) instead of the fixture's BGP: with BGP a
  tunnel only carries traffic once its BGP session is Established (AWS's
  tunnel status), and this test runs no BGP peer;
* DPD interval 2 s, timeout 30 s. The brief asked for 10 s, but
  ``ConnectionConfig::validate`` (called by ``Connection::from_config``) rejects
  a DPD timeout below AWS's minimum of 30 s, so 30 s is the shortest valid one.

Run as root: ``.venv/bin/python -m pytest tests/interop/test_connection_roundtrip.py -q -p no:cacheprovider``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from aws_lab import (CGW_IN, DPD_INTERVAL, DPD_TIMEOUT, FIXTURE, VGW_IN, VGW_NET, aws_strongswan, edited_config,
                     established_sas, one_link, peers_and_algorithms)
from harness import ConnectionGateway, Netns, build_example, ping, toml_dumps, wait_until

OVERRIDES: dict[str, Any] = {
    "dpd_interval": DPD_INTERVAL,
    "dpd_timeout": DPD_TIMEOUT,
    "static_routes": [VGW_NET],
}


@pytest.fixture(scope="session")
def binary() -> Path:
    return build_example("connection_gateway")


@pytest.mark.parametrize("ike_version", [1, 2], ids=["ikev1-as-aws-says", "ikev2"])
def test_aws_xml_roundtrip_two_tunnels_and_failover(net: Netns, binary: Path, report, ike_version: int) -> None:
    aws_side = edited_config(ike_version)
    swanctl, name = aws_side.to_swanctl(), aws_side.name
    (cgw_out, vgw1), (cgw_out2, vgw2) = [tuple(p) for p in aws_side.outside_addresses]
    assert cgw_out == cgw_out2 == "203.0.113.10" and {vgw1, vgw2} == {"198.51.100.21", "198.51.100.87"}
    assert f"{name}-tunnel1" in swanctl and f"local_addrs = {vgw1}" in swanctl and f"version = {ike_version}" in swanctl
    report.row(f"IKEv{ike_version}: import fixture XML (Python) -> static/DPD 2s+30s -> to_swanctl()", "PASS",
               f"{name}: tunnels {cgw_out}<->{vgw1}, {cgw_out}<->{vgw2}; {len(swanctl.splitlines())} lines")

    # strongSwan with the exported swanctl.conf, verbatim.
    vgw_ns, cgw_ns = one_link(net, aws_side)
    sw = aws_strongswan(net, vgw_ns, aws_side)
    loaded = sw.swanctl("--list-conns").stdout
    assert f"{name}-tunnel1" in loaded and f"{name}-tunnel2" in loaded, loaded

    # Ours: the fixture XML itself plus the same overrides.
    conf = net.workdir / "cgw.toml"
    conf.write_text(toml_dumps({"connection": str(FIXTURE), **OVERRIDES, "ike_version": ike_version,
                                "tun": {"name": "vpn0", "address": f"{CGW_IN}/32", "routes": [VGW_NET]}}))
    t0 = time.monotonic()
    gw = ConnectionGateway(net, cgw_ns, conf, binary=binary, label="cgw").start()
    ready = gw.events[0] if gw.events and gw.events[0].get("event") == "ready" else gw.wait_for_event("ready")
    assert ready["local"] == cgw_out and ready["remotes"] == [vgw1, vgw2] and ready["routing"] == "static", ready

    # AWS's ``startup_action = add`` (the default, and the fixture's) means the
    # customer gateway initiates; the exported swanctl.conf has strongSwan wait
    # (start_action = none). Our connection must open both tunnels itself.
    gw.tunnel_event(1, "ike_sa_established", 10)
    initiator = "ours (CGW)"

    # Both tunnels: IKE SA, child SA, state Up on our side; two IKE SAs in swanctl --list-sas.
    for t in (1, 2):
        gw.tunnel_event(t, "ike_sa_established", 15)
        gw.tunnel_event(t, "child_sa_installed", 15)
        gw.tunnel_event(t, "state_changed", 15, state="up")
    t_up = time.monotonic() - t0
    gw.wait_for_event(lambda e: e.get("event") == "active_tunnel" and e.get("to") == 1, 5)

    peers, algs = peers_and_algorithms(established_sas(sw))
    report.row(f"IKEv{ike_version}: both tunnels up (ours: IKE SA + child + Up each; swanctl: 2 IKE SAs)", "PASS",
               f"both Up {t_up:.2f}s after start, initiator {initiator}; active tunnel 1; "
               f"strongSwan {', '.join(peers)}; {', '.join(algs)}")

    # Traffic through the active tunnel.
    sent, got = ping(net, cgw_ns, VGW_IN, count=3, src=CGW_IN)
    status = gw.status()
    assert (sent, got) == (3, 3), (sent, got, status)
    t1 = status["tunnels"][0]
    assert t1["packets_out"] >= 3, status
    report.row(f"IKEv{ike_version}: ping 10.1.0.1 -> 10.2.0.1 through the active tunnel", "PASS",
               f"3/3; tunnel 1 packets out {t1['packets_out']} in {t1['packets_in']}, "
               f"tunnel 2 out {status['tunnels'][1]['packets_out']}")

    # Operator rekeys (Connection::rekey_tunnel) on tunnel 1: strongSwan follows
    # with new SAs, and traffic carries on.
    def tunnel1_spis() -> tuple[set[str], set[str]]:
        sas = {k: v for k, v in sw.list_sas().items() if k.endswith("tunnel1")}
        ike = {f"{v.get('initiator-spi')}/{v.get('responder-spi')}" for v in sas.values()}
        child = {c.get("spi-in") for v in sas.values() for c in (v.get("child-sas") or {}).values()}
        return ike, child

    ike_before, child_before = tunnel1_spis()
    since = len(gw.events)
    gw.command({"cmd": "rekey", "tunnel": 1})
    rekeyed = gw.tunnel_event(1, "child_sa_rekeyed", 10, since)
    gw.command({"cmd": "rekey", "tunnel": 1, "ike": True})
    gw.tunnel_event(1, "ike_sa_rekeyed", 15, since)
    def replaced() -> tuple[set[str], set[str]] | None:
        ike, child = tunnel1_spis()
        return (ike, child) if child and not child & child_before and ike - ike_before else None

    _, child_after = wait_until(replaced, 10, what="strongSwan's tunnel 1 SAs replaced")
    sent, got = ping(net, cgw_ns, VGW_IN, count=3, src=CGW_IN)
    assert (sent, got) == (3, 3), (sent, got)
    report.row(f"IKEv{ike_version}: operator rekeys of tunnel 1 (child, then IKE) -> strongSwan follows", "PASS",
               f"{rekeyed['text'][:70]}; strongSwan child SPI in {sorted(child_before)} -> {sorted(child_after)}, "
               f"IKE SA replaced; ping 3/3 after")

    # Cut tunnel 1's path: drop everything to and from VGW 1's address in our namespace.
    since = len(gw.events)
    rules = net.workdir / "cut-tunnel1.nft"
    rules.write_text(
        "table inet cut_tunnel1 {\n"
        f"  chain in {{ type filter hook input priority -300; ip saddr {vgw1} drop; }}\n"
        f"  chain out {{ type filter hook output priority -300; ip daddr {vgw1} drop; }}\n"
        "}\n")
    net.run(cgw_ns, ["nft", "-f", str(rules)])
    t_cut = time.monotonic()
    bound = DPD_TIMEOUT + 2 * DPD_INTERVAL + 5
    change = gw.wait_for_event(lambda e: e.get("event") == "active_tunnel" and e.get("to") == 2, bound, since)
    took = change["_t"] - t_cut
    down = [e for e in gw.events[since:] if e.get("event") == "event" and e.get("tunnel") == 1
            and e.get("kind") in ("down", "state_changed")]
    status = gw.status()
    assert status["active_tunnel"] == 2 and status["tunnels"][1]["state"] == "up", status
    assert status["tunnels"][0]["state"] != "up", status
    report.row(f"IKEv{ike_version}: cut tunnel 1 (nft drop 198.51.100.21) -> active tunnel 2", "PASS",
               f"after {took:.1f}s (DPD {DPD_INTERVAL}s/{DPD_TIMEOUT}s, bound {bound}s); "
               f"tunnel 1: {'; '.join(e['text'] for e in down)[:150]}")

    # Our side already sends on tunnel 2. strongSwan answers over whichever of
    # its two 0.0.0.0/0 children it installed last, until its own DPD clears
    # the dead one (IKEv1's can take its full timeout): retry until the
    # replies come back, within that bound.
    t_ping = time.monotonic()

    def replies() -> tuple[int, int] | None:
        sent, got = ping(net, cgw_ns, VGW_IN, count=3, src=CGW_IN)
        return (sent, got) if got == 3 else None

    sent, got = wait_until(replies, DPD_TIMEOUT + 15, what="ping replies over tunnel 2")
    status = gw.status()
    assert status["active_tunnel"] == 2 and status["tunnels"][1]["packets_out"] >= 3, status
    report.row(f"IKEv{ike_version}: ping after failover (tunnel 2)", "PASS",
               f"{got}/{sent} after {time.monotonic() - t_ping:.1f}s; "
               f"tunnel 2 packets out {status['tunnels'][1]['packets_out']}")

    # Graceful stop: DELETEs for what is up, then `stopped`.
    rc = gw.stop()
    assert rc == 0, rc
    stopped = gw.wait_for_event("stopped", 2)
    assert all(t["state"] == "down" for t in stopped["tunnels"]), stopped
    report.row(f"IKEv{ike_version}: SIGTERM -> tunnels closed, stopped, exit 0", "PASS",
               f"failovers {stopped['failovers']}; strongSwan SAs left: {len(sw.list_sas())}")
