"""The Python asyncio example (``examples/python/asyncio_tunnel.py``) against
strongSwan: the same AWS round trip as ``test_connection_roundtrip.py``, with
our customer gateway written in Python on the ``vpn`` binding instead of Rust.

* AWS's ``CustomerGatewayConfiguration`` XML
  (``vpn-core/tests/fixtures/config/aws-vpn-connection-bgp.xml``) is imported
  with ``vpn.Config.from_aws_xml`` and edited once: IKEv2, static routing
  ``10.2.0.0/24`` (no BGP peer runs here), DPD 2 s / 30 s (30 s is AWS's
  minimum timeout, which validation enforces);
* strongSwan (ns vgw) loads that config's ``to_swanctl()``; the program (ns
  cgw) gets the same edited config as a JSON file and runs both tunnels from
  one outside address.

    strongSwan = "AWS" (ns vgw)                                 ours = CGW (ns cgw)
    lo 10.2.0.1/32, 10.2.0.9/32 -- ipsec0 -- charon 198.51.100.21 (tunnel 1) \\
                                                    198.51.100.87 (tunnel 2) == 203.0.113.10 asyncio_tunnel.py -- TUN pyvpn0 10.1.0.1/32

Scenarios: with a TUN (both tunnels up on both sides, ping through the TUN,
status counters, graceful SIGTERM closing strongSwan's SAs) and without one
(the program's periodic test packet reaches a UDP listener on strongSwan's
side).

The program runs under the interpreter running pytest (``.venv/bin/python``,
which has the ``vpn`` module). Run as root: ``.venv/bin/python -m pytest tests/interop/test_python_asyncio.py -q -p no:cacheprovider``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aws_lab import (CGW_IN, VGW_IN, VGW_NET, aws_strongswan, edited_config, established_sas, one_link,
                     peers_and_algorithms)
from harness import REPO_ROOT, JsonLineProcess, Netns, StrongSwan, ping, wait_until

if TYPE_CHECKING:
    from vpn import Config

EXAMPLE = REPO_ROOT / "examples" / "python" / "asyncio_tunnel.py"
TEST_DST, TEST_PORT = "10.2.0.9", 9  # where the program's test packets go without a TUN
TUN = "pyvpn0"


class AsyncioTunnel(JsonLineProcess):
    """``asyncio_tunnel.py --json``: events ``ready``, ``event`` (``tunnel``,
    ``kind``, ``text``, ``state``), ``active_tunnel`` (``from``, ``to``),
    ``status``, ``error``, ``stopped``."""

    def __init__(self, net: Netns, ns: str, config: Path, tun: bool, label: str) -> None:
        argv = [sys.executable, "-u", str(EXAMPLE), "--json", "--config", str(config)]
        if tun:
            argv += ["--tun", TUN, "--tun-addr", f"{CGW_IN}/32", "--route", VGW_NET]
        super().__init__(net, ns, argv, label)
        self.ready: dict[str, Any] = {}

    def start(self, ready_timeout: float = 10) -> AsyncioTunnel:
        super().start()
        self.ready = self.wait_for_event("ready", ready_timeout)
        return self

    def status(self, timeout: float = 5) -> dict[str, Any]:
        since = len(self.events)
        self.command({"cmd": "status"})
        return self.wait_for_event("status", timeout, since)


def setup(net: Netns, label: str) -> tuple[str, str, StrongSwan, Path, Config]:
    """Namespaces, strongSwan with the exported swanctl.conf, and our config file."""
    config = edited_config()
    vgw_ns, cgw_ns = one_link(net, config)
    net.add_addr(vgw_ns, f"{TEST_DST}/32")
    sw = aws_strongswan(net, vgw_ns, config, label=f"vgw-{label}")
    conf = net.workdir / f"cgw-{label}.json"
    conf.write_text(config.to_json())  # holds the PSKs: stays in the work dir, never printed
    conf.chmod(0o600)
    return vgw_ns, cgw_ns, sw, conf, config


def both_up(prog: AsyncioTunnel, sw: StrongSwan, ready: dict[str, Any]) -> tuple[float, list[str]]:
    """Both tunnels up on our side (events) and in strongSwan (2 IKE SAs with
    installed children). Returns (seconds from ``ready``, strongSwan's peers)."""
    last = ready["_t"]
    for t in (1, 2):
        prog.tunnel_event(t, "ike_sa_established", 15)
        prog.tunnel_event(t, "child_sa_installed", 15)
        last = max(last, prog.tunnel_event(t, "tunnel_state_changed", 15, state="up")["_t"])
    prog.wait_for_event(lambda e: e.get("event") == "active_tunnel" and e.get("to") == 1, 5)

    peers, _ = peers_and_algorithms(established_sas(sw))
    return last - ready["_t"], peers


def graceful_stop(prog: AsyncioTunnel, sw: StrongSwan) -> tuple[float, dict[str, Any], int]:
    """SIGTERM: exit 0 with ``stopped`` (both tunnels down), strongSwan got an
    IKE DELETE per tunnel and holds no SA. Returns (seconds to exit, stopped, DELETEs)."""
    t0 = time.monotonic()
    rc = prog.stop(timeout=5)
    took = time.monotonic() - t0
    assert rc == 0, (rc, prog.events[-3:])
    stopped = prog.wait_for_event("stopped", 2)
    assert all(t["state"] == "down" for t in stopped["tunnels"]), stopped
    wait_until(lambda: len(sw.list_sas()) == 0 or None, 5, what="strongSwan's SAs deleted")
    deletes = wait_until(lambda: sw.log_text().count("received DELETE for IKE_SA") or None, 5,
                         what="our IKE DELETEs in strongSwan's log")
    assert deletes == 2, deletes
    log = prog.log_path.read_text()
    assert "Traceback" not in log and "error:" not in log, log[-2000:]
    return took, stopped, deletes


def test_asyncio_tun_against_strongswan(net: Netns, report) -> None:
    vgw_ns, cgw_ns, sw, conf, config = setup(net, "tun")
    prog = AsyncioTunnel(net, cgw_ns, conf, tun=True, label="asyncio-tun").start()
    ready = prog.ready
    (cgw_out, vgw1), (_, vgw2) = config.outside_addresses
    assert ready["local"] == [cgw_out] and ready["remotes"] == [vgw1, vgw2], ready
    assert ready["tun"] == TUN and ready["mtu"] == 1436 and ready["routing"] == "static", ready
    link = net.run(cgw_ns, ["ip", "-o", "addr", "show", "dev", TUN]).stdout
    assert f"{CGW_IN}/32" in link, link

    t_up, peers = both_up(prog, sw, ready)
    report.row("asyncio + TUN: both tunnels up (ours: events; strongSwan: 2 IKE SAs + children)", "PASS",
               f"{t_up * 1000:.0f} ms after ready; strongSwan {', '.join(peers)}; TUN {TUN} {CGW_IN}/32 MTU {ready['mtu']}")

    sent, got = ping(net, cgw_ns, VGW_IN, count=3, src=CGW_IN)
    status = prog.status()
    assert (sent, got) == (3, 3), (sent, got, status)
    t1, t2 = status["tunnels"]
    # We send on the active tunnel 1; strongSwan answers over whichever of its
    # two 0.0.0.0/0 children it installed last, so replies count on either.
    assert status["active_tunnel"] == 1 and t1["packets_out"] >= 3, status
    assert t1["packets_in"] + t2["packets_in"] >= 3, status
    report.row(f"asyncio + TUN: ping {CGW_IN} -> {VGW_IN} through the TUN", "PASS",
               f"{got}/{sent}; status: tunnel 1 packets out {t1['packets_out']} ({t1['bytes_out']} B) "
               f"in {t1['packets_in']}, tunnel 2 out {t2['packets_out']} in {t2['packets_in']}")

    took, stopped, deletes = graceful_stop(prog, sw)
    report.row("asyncio + TUN: SIGTERM -> IKE DELETEs, stopped, exit 0", "PASS",
               f"exit 0 after {took:.2f}s; stopped: {[t['state'] for t in stopped['tunnels']]}; "
               f"strongSwan: {deletes} DELETEs received, {len(sw.list_sas())} SAs left")


def test_asyncio_test_packets_without_tun(net: Netns, report) -> None:
    vgw_ns, cgw_ns, sw, conf, _ = setup(net, "notun")
    listener = net.workdir / "udp9.log"
    code = ("import socket,sys\n"
            f"s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM); s.bind(({TEST_DST!r},{TEST_PORT}))\n"
            "print('listening',flush=True)\n"
            "while True:\n"
            "    d,a=s.recvfrom(2048); print(a[0], d.decode(errors='replace'), flush=True)\n")
    net.spawn(vgw_ns, [sys.executable, "-u", "-c", code], log=listener)
    wait_until(lambda: listener.exists() and "listening" in listener.read_text(), 5, what="UDP listener")

    prog = AsyncioTunnel(net, cgw_ns, conf, tun=False, label="asyncio-notun").start()
    ready = prog.ready
    assert ready["tun"] is None, ready
    t_up, _ = both_up(prog, sw, ready)
    got = wait_until(lambda: [ln for ln in listener.read_text().splitlines() if "test packet" in ln] or None,
                     10, what="a test packet at strongSwan's side")
    status = prog.status()
    assert got[0].startswith("10.1.0.5 test packet 1 from cgw"), got
    report.row(f"asyncio, no TUN: periodic test packet -> UDP {TEST_DST}:{TEST_PORT} behind strongSwan", "PASS",
               f"both up {t_up * 1000:.0f} ms after ready; received {got[0]!r}; "
               f"tunnel 1 packets out {status['tunnels'][0]['packets_out']}")
    took, _, deletes = graceful_stop(prog, sw)
    report.row("asyncio, no TUN: SIGTERM -> IKE DELETEs, stopped, exit 0", "PASS",
               f"exit 0 after {took:.2f}s; strongSwan: {deletes} DELETEs received, {len(sw.list_sas())} SAs left")
