"""The C API driving a whole VPN connection with real sockets, against strongSwan:
``examples/c/poll_gateway.c`` (UDP 500/4500, a TUN device and one ``poll()``
loop over ``vpn_connection``) as the customer gateway, strongSwan 5.9 (charon +
kernel-libipsec) as AWS's side.

Both sides come from one document: AWS's ``CustomerGatewayConfiguration`` XML
(``vpn-core/tests/fixtures/config/aws-vpn-connection-bgp.xml``) imported by the
Python binding (``vpn.Config.from_aws_xml``) and edited as
``test_connection_roundtrip.py`` edits it: IKEv2, static routing
(``10.2.0.0/24``; with BGP a tunnel only carries traffic once a BGP session is
up, and no BGP peer runs here), DPD 2 s / 30 s. strongSwan loads
``to_swanctl()`` verbatim; the C program loads ``to_toml()`` through
``vpn_config_from_file`` and takes its outside addresses from
``vpn_config_tunnel_outside_addresses``.

    strongSwan = "AWS" (ns vgw)                                 C program = CGW (ns cgw)
    lo 10.2.0.1/32 -- ipsec0 -- charon 198.51.100.21 (tunnel 1) \\
                                       198.51.100.87 (tunnel 2) == 203.0.113.10 poll_gateway -- vpn0 10.1.0.1/32

Checked: both tunnels up (the program's events, and two ESTABLISHED IKE SAs
with INSTALLED children in strongSwan), ``ping`` 10.1.0.1 -> 10.2.0.1 3/3
through tunnel 1 with the ``status`` command counting the packets, the
Prometheus text, and SIGTERM: IKE DELETEs, ``stopped``, exit 0, no SA left in
strongSwan.

The binary is built by the ``binary`` fixture (release ``libvpn.a`` + gcc with
the flags of ``tests/c/run.sh``) at ``target/release/examples/poll_gateway``.
Run as root: ``.venv/bin/python -m pytest tests/interop/test_c_poll_gateway.py -q -p no:cacheprovider``.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from aws_lab import (CGW_IN, VGW_IN, VGW_NET, aws_strongswan, edited_config, established_sas, one_link,
                     peers_and_algorithms)
from harness import REPO_ROOT, Netns, _OurProgram, ping, wait_until

SOURCE = REPO_ROOT / "examples" / "c" / "poll_gateway.c"
BINARY = REPO_ROOT / "target" / "release" / "examples" / "poll_gateway"
# The native libraries a Rust staticlib needs on Linux/glibc, as tests/c/run.sh links them.
LIBS = ["-lpthread", "-ldl", "-lm", "-lrt", "-lutil", "-lgcc_s", "-lc"]


class CPollGateway(_OurProgram):
    """``examples/c/poll_gateway.c``: events ``ready`` (``locals``, ``remotes``),
    ``event`` (``tunnel`` 1-based, ``kind``, ``state``, ``text``), ``active_tunnel``
    (``from``, ``to``), ``status``/``stopped`` (``active_tunnel``, ``tunnels``),
    ``metrics`` (``text``). Commands are plain words on stdin."""

    example = "poll_gateway"

    def send_line(self, line: str) -> None:
        assert self.process and self.process.popen.stdin
        self.process.popen.stdin.write((line + "\n").encode())
        self.process.popen.stdin.flush()

    def ask(self, word: str, timeout: float = 5) -> dict[str, Any]:
        since = len(self.events)
        self.send_line(word)
        return self.wait_for_event(word, timeout, since)


def _run(cmd: list[str], what: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "CARGO_TARGET_DIR"}
    res = subprocess.run(cmd, cwd=REPO_ROOT, capture_output=True, text=True, timeout=1800, env=env)
    if res.returncode != 0:
        pytest.fail(f"{what} failed ({res.returncode}):\n{res.stdout[-2000:]}{res.stderr[-4000:]}")


@pytest.fixture(scope="session")
def binary() -> Path:
    """The C example, compiled as tests/c/run.sh compiles it, against the release library."""
    _run(["cargo", "build", "-p", "vpn-ffi", "--release"], "cargo build -p vpn-ffi --release")
    BINARY.parent.mkdir(parents=True, exist_ok=True)
    _run(["gcc", "-std=c11", "-Wall", "-Wextra", "-Werror", "-pedantic", "-O2", "-g", "-Iinclude",
          str(SOURCE), str(REPO_ROOT / "target" / "release" / "libvpn.a"), *LIBS, "-o", str(BINARY)],
         f"gcc {SOURCE.relative_to(REPO_ROOT)}")
    return BINARY


def test_c_poll_gateway_two_tunnels_ping_and_graceful_stop(net: Netns, binary: Path, report) -> None:
    cfg = edited_config()
    swanctl, name = cfg.to_swanctl(), cfg.name
    (cgw_out, vgw1), (cgw_out2, vgw2) = [tuple(p) for p in cfg.outside_addresses]
    assert cgw_out == cgw_out2 == "203.0.113.10" and {vgw1, vgw2} == {"198.51.100.21", "198.51.100.87"}
    assert "version = 2" in swanctl and f"{name}-tunnel2" in swanctl
    # Ours: the same edited configuration, as TOML (it holds the PSKs: owner-only).
    conf = net.workdir / "cgw-connection.toml"
    conf.touch(mode=0o600)
    conf.write_text(cfg.to_toml())
    report.row("C: import fixture XML (Python) -> IKEv2/static/DPD 2s+30s -> to_swanctl() + to_toml()", "PASS",
               f"{name}: {cgw_out}<->{vgw1}, {cgw_out}<->{vgw2}; gcc -Werror build of {BINARY.name} ok")

    vgw_ns, cgw_ns = one_link(net, cfg)
    sw = aws_strongswan(net, vgw_ns, cfg)

    gw = CPollGateway(net, cgw_ns, conf, binary=binary, label="cgw",
                      extra_args=["--tun", "vpn0", "--tun-addr", f"{CGW_IN}/32", "--route", VGW_NET]).start()
    ready = gw.wait_for_event("ready")
    assert ready["locals"] == [cgw_out] and ready["remotes"] == [vgw1, vgw2] and ready["name"] == name, ready

    # The exported swanctl.conf has strongSwan wait: the C program initiates both tunnels.
    for t in (1, 2):
        gw.tunnel_event(t, "ike_sa_established", 15)
        gw.tunnel_event(t, "child_sa_installed", 15)
        up = gw.tunnel_event(t, "state_changed", 15, state="up")
    t_up = up["_t"] - ready["_t"]
    gw.wait_for_event(lambda e: e.get("event") == "active_tunnel" and e.get("to") == 1, 5)

    peers, algs = peers_and_algorithms(established_sas(sw))
    report.row("C: both tunnels up (ours: IKE SA + child + up each; swanctl: 2 ESTABLISHED/INSTALLED)", "PASS",
               f"both up {t_up * 1000:.0f} ms after ready; active tunnel 1; strongSwan {', '.join(peers)}; "
               f"{', '.join(algs)}")

    sent, got = ping(net, cgw_ns, VGW_IN, count=3, src=CGW_IN)
    status = gw.ask("status")
    assert (sent, got) == (3, 3), (sent, got, status)
    t1, t2 = status["tunnels"]
    assert status["active_tunnel"] == 1 and t1["state"] == "up" and t2["state"] == "up", status
    # Requests leave on our active tunnel 1. strongSwan has two children for
    # 0.0.0.0/0 and answers over the one it installed last, so the replies may
    # come back on either tunnel: count them on both.
    assert t1["packets_out"] >= 3 and t2["packets_out"] == 0, status
    assert t1["packets_in"] + t2["packets_in"] >= 3, status
    report.row("C: ping 10.1.0.1 -> 10.2.0.1 through tunnel 1 (status command)", "PASS",
               f"{got}/{sent}; tunnel 1 packets out {t1['packets_out']} in {t1['packets_in']} "
               f"(bytes {t1['bytes_out']}/{t1['bytes_in']}); tunnel 2 out {t2['packets_out']} "
               f"in {t2['packets_in']} (strongSwan's return path)")

    metrics = gw.ask("metrics")["text"]
    needle = f'vpn_tunnel_packets_out_total{{connection="{name}",tunnel="1"}} {t1["packets_out"]}'
    assert needle in metrics, metrics[:2000]
    report.row("C: metrics command (vpn_connection_metrics_prometheus)", "PASS",
               f"{len(metrics.splitlines())} lines; {needle}")

    since = len(gw.events)
    t_stop = time.monotonic()
    rc = gw.stop()
    took = time.monotonic() - t_stop
    assert rc == 0, (rc, gw.events[-5:])
    stopped = gw.wait_for_event("stopped", 2, since)
    assert all(t["state"] == "down" for t in stopped["tunnels"]), stopped
    closed = [e["tunnel"] for e in gw.events[since:] if e.get("kind") == "down"]
    assert sorted(closed) == [1, 2], gw.events[since:]
    wait_until(lambda: not sw.list_sas(), 5, what="strongSwan to delete both IKE SAs")
    deleted = sw.log_text().count("received DELETE for IKE_SA")
    assert deleted == 2, deleted
    report.row("C: SIGTERM -> IKE DELETEs, stopped, exit 0; strongSwan has no SA left", "PASS",
               f"exit {rc} after {took:.2f}s; strongSwan logged {deleted} IKE DELETEs received; SAs left 0")
