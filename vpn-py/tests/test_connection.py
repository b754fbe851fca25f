"""vpn.Connection: two connections (a customer gateway and AWS's end) back to
back in-process on a fake clock."""

from __future__ import annotations

import pathlib
import py_compile
import struct

import pytest

import vpn

SEC = 1_000_000_000
AWS = [("198.51.100.21", "169.254.44.40/30"), ("198.51.100.87", "169.254.201.136/30")]
CGW = "203.0.113.10"


def site_toml(cgw: bool) -> str:
    """Site A (cgw, LAN 10.1.0.0/16, initiates) or site B (vgw, LAN 10.2.0.0/16)."""
    role, peer_lan, start = ("cgw", "10.2.0.0/16", "add") if cgw else ("vgw", "10.1.0.0/16", "add")
    text = (
        f'name = "site-{role}"\nrole = "{role}"\n'
        f'[routing]\ntype = "static"\nprefixes = ["{peer_lan}"]\n'
        '[failover]\nmode = "active_standby"\npreferred_tunnel = 0\n'
    )
    for i, (aws, inside) in enumerate(AWS):
        local, remote = (CGW, aws) if cgw else (aws, CGW)
        text += (
            f'[[tunnels]]\nlocal_outside_address = "{local}"\nremote_outside_address = "{remote}"\n'
            f'inside_cidr = "{inside}"\npsk = "py_test_psk.tunnel{i + 1}"\nike_version = 2\n'
            'ike_proposals = ["aes256gcm16-prfsha256-ecp256"]\nesp_proposals = ["aes256gcm16-ecp256"]\n'
            f'startup_action = "{start}"\n'
        )
    return text


def udp_packet(src: str, dst: str, payload: bytes) -> bytes:
    ip = lambda a: bytes(int(x) for x in a.split("."))  # noqa: E731
    total = 28 + len(payload)
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, 1, 0, 64, 17, 0, ip(src), ip(dst))
    return header + struct.pack("!HHHH", 4000, 5000, 8 + len(payload), 0) + payload


class Pair:
    def __init__(self) -> None:
        self.now = SEC
        self.a = vpn.Connection.from_config(vpn.Config.from_toml(site_toml(True)), now_ns=self.now)
        self.b = vpn.Connection.from_config(vpn.Config.from_toml(site_toml(False)), now_ns=self.now)
        self.events_a: list[vpn.ConnectionEvent] = []
        self.events_b: list[vpn.ConnectionEvent] = []

    def shuttle(self, src: vpn.Connection, dst: vpn.Connection) -> list[vpn.Received]:
        out = []
        while (tx := src.poll_transmit()) is not None:
            out.append(dst.handle_datagram(tx.remote, tx.local, tx.data, now_ns=self.now))
        return out

    def run(self, seconds: float) -> None:
        until = self.now + int(seconds * SEC)
        while self.now < until:
            while self.shuttle(self.a, self.b) + self.shuttle(self.b, self.a):
                pass
            self.events_a += self.a.poll_events()
            self.events_b += self.b.poll_events()
            deadlines = [t for t in (self.a.poll_timeout(), self.b.poll_timeout()) if t is not None]
            self.now = min(max(min(deadlines, default=until), self.now + 1), until)
            self.a.handle_timeout(now_ns=self.now)
            self.b.handle_timeout(now_ns=self.now)

    def send(self, src: vpn.Connection, dst: vpn.Connection, inner: bytes) -> tuple[vpn.Transmit, vpn.Received]:
        tx = src.send_packet(inner, now_ns=self.now)
        assert tx is not None and not tx.icmp_too_big
        return tx, dst.handle_datagram(tx.remote, tx.local, tx.data, now_ns=self.now)


@pytest.fixture
def pair() -> Pair:
    p = Pair()
    p.b.connect(now_ns=p.now)
    p.a.connect(now_ns=p.now)
    p.run(5)
    return p


def test_two_sites_come_up_and_pass_traffic_both_ways(pair: Pair) -> None:
    for conn in (pair.a, pair.b):
        assert [conn.tunnel_state(i) for i in range(conn.tunnel_count)] == ["up", "up"]
        assert conn.active_tunnel == 0
    kinds = {e.kind for e in pair.events_a}
    assert {"tunnel_state_changed", "ike_sa_established", "child_sa_installed", "active_tunnel_changed"} <= kinds
    assert any(e.text == "active tunnel none -> 1" for e in pair.events_a)

    ping = udp_packet("10.1.0.5", "10.2.0.9", b"hello from site A")
    tx, rx = pair.send(pair.a, pair.b, ping)
    assert tx.tunnel == 0 and tx.remote[0] == "198.51.100.21" and tx.local[0] == CGW
    assert (rx.kind, rx.tunnel, rx.inner) == ("inner", 0, ping)

    pong = udp_packet("10.2.0.9", "10.1.0.5", b"hello back")
    tx, rx = pair.send(pair.b, pair.a, pong)
    assert (rx.kind, rx.inner) == ("inner", pong)
    again = pair.a.handle_datagram(tx.remote, tx.local, tx.data, now_ns=pair.now)
    assert again.kind == "dropped" and again.reason is not None and again.reason.startswith("esp")

    stranger = pair.a.handle_datagram((CGW, 4500), ("192.0.2.99", 4500), b"\x00" * 8, now_ns=pair.now)
    assert (stranger.kind, stranger.tunnel, stranger.reason) == ("dropped", None, "unknown_peer")

    with pytest.raises(vpn.NoRouteError):
        pair.a.send_packet(udp_packet("10.1.0.5", "172.16.0.1", b"x"), now_ns=pair.now)
    with pytest.raises(vpn.MalformedPacketError):
        pair.a.send_packet(b"not an ip packet", now_ns=pair.now)


def test_admin_down_moves_traffic_to_tunnel_1(pair: Pair) -> None:
    pair.a.set_tunnel_admin_up(0, False, now_ns=pair.now)
    changes = [e for e in pair.a.poll_events() if e.kind == "active_tunnel_changed"]
    assert [(e.from_tunnel, e.tunnel) for e in changes] == [(0, 1)]
    assert pair.a.active_tunnel == 1
    pair.run(2)
    ping = udp_packet("10.1.0.5", "10.2.0.9", b"via tunnel 2")
    tx, rx = pair.send(pair.a, pair.b, ping)
    assert tx.tunnel == 1 and tx.remote[0] == "198.51.100.87"
    assert (rx.kind, rx.tunnel, rx.inner) == ("inner", 1, ping)
    assert pair.b.active_tunnel == 1
    with pytest.raises(IndexError):
        pair.a.set_tunnel_admin_up(5, False)


def test_metrics_use_cloudwatch_names(pair: Pair) -> None:
    ping = udp_packet("10.1.0.5", "10.2.0.9", b"count me")
    pair.send(pair.a, pair.b, ping)
    m = pair.b.metrics()
    assert set(m) == {0, 1}
    assert {"TunnelState", "TunnelDataIn", "TunnelDataOut"} <= set(m[0])
    assert m[0]["TunnelState"] == 1 and m[0]["TunnelDataIn"] == len(ping) and m[0]["PacketsIn"] == 1
    assert m[0]["Active"] is True and m[1]["Active"] is False
    assert pair.b.tunnel_report(0) == m[0]
    text = pair.b.metrics_prometheus("site-b")
    assert 'vpn_tunnel_state{connection="site-b",tunnel="1"} 1' in text
    assert f'vpn_tunnel_data_in_bytes_total{{connection="site-b",tunnel="1"}} {len(ping)}' in text


def test_operator_rekeys_renew_the_named_sa(pair: Pair) -> None:
    pair.a.rekey_tunnel(1, now_ns=pair.now)
    pair.a.rekey_tunnel(0, ike=True, now_ns=pair.now)
    pair.run(2)
    texts = [e.text for e in pair.events_a]
    assert any(t.startswith("tunnel 2 child SA rekeyed") for t in texts), texts
    assert any(t.startswith("tunnel 1 IKE SA rekeyed") for t in texts), texts
    assert pair.a.active_tunnel == 0
    with pytest.raises(IndexError):
        pair.a.rekey_tunnel(2)


def test_replace_config_restarts_only_the_changed_tunnel(pair: Pair) -> None:
    def edited(cgw: bool) -> vpn.Config:
        return vpn.Config.from_toml(site_toml(cgw).replace("py_test_psk.tunnel2", "py_next_psk.tunnel2"))

    assert pair.b.replace_config(edited(False), now_ns=pair.now)["tunnels_restarted"] == [1]
    change = pair.a.replace_config(edited(True), now_ns=pair.now)
    assert change == {"tunnels_restarted": [1], "failed_to_start": {}, "routes_changed": False,
                      "policy_changed": False, "advertised_changed": False}
    assert pair.a.tunnel_state(0) == "up" and pair.a.tunnel_state(1) != "up"
    pair.run(5)
    assert pair.a.tunnel_state(1) == "up"

    routes = vpn.Config.from_toml(site_toml(True).replace("py_test_psk.tunnel2", "py_next_psk.tunnel2")
                                  .replace('prefixes = ["10.2.0.0/16"]', 'prefixes = ["10.2.0.0/16", "10.3.0.0/16"]'))
    change = pair.a.replace_config(routes, now_ns=pair.now)
    assert change["routes_changed"] and change["tunnels_restarted"] == []
    tx, rx = pair.send(pair.a, pair.b, udp_packet("10.1.0.5", "10.3.0.9", b"new route"))
    assert tx.tunnel == 0

    bgp = site_toml(True).replace('type = "static"\nprefixes = ["10.2.0.0/16"]',
                                  'type = "bgp"\nlocal_asn = 65000\npeer_asn = 64512')
    with pytest.raises(vpn.VpnError, match="routing"):
        pair.a.replace_config(vpn.Config.from_toml(bgp), now_ns=pair.now)
    invalid = site_toml(True).replace("169.254.44.40/30", "169.254.0.0/30")
    with pytest.raises(vpn.ConfigError) as info:
        pair.a.replace_config(vpn.Config.from_toml(invalid), now_ns=pair.now)
    assert info.value.field == "tunnels[0].inside_cidr"
    assert [pair.a.tunnel_state(i) for i in range(2)] == ["up", "up"]


def test_bad_config_raises_config_error_with_the_field() -> None:
    cfg = vpn.Config.from_toml(site_toml(True).replace("py_test_psk.tunnel2", "0short"))
    with pytest.raises(vpn.ConfigError) as info:
        vpn.Connection.from_config(cfg, now_ns=0)
    assert info.value.field == "tunnels[1].psk"
    assert isinstance(info.value, vpn.VpnError)


def test_defaults_read_the_monotonic_clock() -> None:
    conn = vpn.Connection.from_config(vpn.Config.from_toml(site_toml(True)))
    conn.connect()
    tx = conn.poll_transmit()
    assert tx is not None and tx.remote == ("198.51.100.21", 500)
    deadline = conn.poll_timeout()
    assert deadline is not None
    conn.handle_timeout()
    assert "Connection(" in repr(conn)


def test_asyncio_example_compiles() -> None:
    example = pathlib.Path(__file__).resolve().parents[2] / "examples" / "python" / "asyncio_tunnel.py"
    py_compile.compile(str(example), doraise=True)
