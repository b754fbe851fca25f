"""vpn.BgpSpeaker: two speakers back to back on a fake clock."""

from __future__ import annotations

import pytest

import vpn

SEC = 1_000_000_000
CGW, AWS = 65000, 64512


class Pair:
    """A CGW speaker (active) and an AWS speaker (passive), one neighbour each,
    joined by an in-memory "TCP connection" and a fake clock."""

    def __init__(self, aws_expects: int = CGW, policy: str = "all") -> None:
        self.now = 0
        self.cgw = vpn.BgpSpeaker(CGW, "10.0.0.1")
        self.aws = vpn.BgpSpeaker(AWS, "10.0.0.2")
        assert self.cgw.add_neighbor("169.254.10.1", AWS, local_address="169.254.10.2", policy=policy) == 0
        assert (
            self.aws.add_neighbor(
                "169.254.10.2", aws_expects, local_address="169.254.10.1", passive=True, policy=policy
            )
            == 0
        )
        self.events: dict[str, list[vpn.BgpEvent]] = {"cgw": [], "aws": []}

    def start(self) -> None:
        self.cgw.start(0, now_ns=self.now)
        self.aws.start(0, now_ns=self.now)

    def drive(self) -> None:
        sides = [("cgw", self.cgw, self.aws), ("aws", self.aws, self.cgw)]
        for _ in range(1000):
            progress = False
            for name, s, other in sides:
                while (t := s.poll_transmit()) is not None:
                    peer, outbound, data = t
                    progress = True
                    other.handle_bytes(0, not outbound, data, now_ns=self.now)
                while (a := s.poll_action()) is not None:
                    peer, action, outbound = a
                    progress = True
                    if action == "connect":
                        s.handle_connected(peer, True, now_ns=self.now)
                        other.handle_connected(0, False, now_ns=self.now)
                    else:
                        s.handle_closed(peer, outbound, now_ns=self.now)
                        other.handle_closed(0, not outbound, now_ns=self.now)
                while (e := s.poll_event()) is not None:
                    self.events[name].append(e)
            if not progress:
                return
        raise AssertionError("did not settle")

    def run(self, seconds: float) -> None:
        end = self.now + int(seconds * SEC)
        self.drive()
        while True:
            deadlines = [t for t in (self.cgw.poll_timeout(), self.aws.poll_timeout()) if t is not None]
            if not deadlines or min(deadlines) > end:
                break
            self.now = max(self.now, min(deadlines))
            self.cgw.handle_timeout(now_ns=self.now)
            self.aws.handle_timeout(now_ns=self.now)
            self.drive()
        self.now = end

    def find(self, side: str, kind: str, prefix: str | None = None) -> list[vpn.BgpEvent]:
        return [e for e in self.events[side] if e.kind == kind and (prefix is None or e.prefix == prefix)]


def test_back_to_back_establish_and_exchange_routes() -> None:
    p = Pair()
    p.cgw.announce("10.1.0.0/16", "169.254.10.2")
    p.aws.announce("172.31.0.0/16")
    p.start()
    p.run(5)
    for side in ("cgw", "aws"):
        (est,) = p.find(side, "established")
        assert est.peer == 0 and est.state == "established"
    assert p.cgw.peer_state(0) == "established"
    (added,) = p.find("cgw", "route_added", "172.31.0.0/16")
    assert added.peer == 0 and added.next_hop == "169.254.10.1"
    assert added.to_dict()["kind"] == "route_added"
    (own,) = p.find("cgw", "route_added", "10.1.0.0/16")
    assert own.peer is None
    assert p.cgw.rib() == [("10.1.0.0/16", "169.254.10.2"), ("172.31.0.0/16", "169.254.10.1")]
    assert p.aws.rib() == [("10.1.0.0/16", "169.254.10.2"), ("172.31.0.0/16", None)]
    assert len(p.cgw) == 2
    # Keepalives hold the session up.
    p.run(120)
    assert not p.find("cgw", "down") and not p.find("aws", "down")
    # A withdrawal reaches the other side.
    p.aws.withdraw("172.31.0.0/16")
    p.run(1)
    assert p.find("cgw", "route_withdrawn", "172.31.0.0/16")
    assert p.cgw.rib() == [("10.1.0.0/16", "169.254.10.2")]
    # An administrative stop with a shutdown message.
    p.cgw.stop(0, "maintenance", now_ns=p.now)
    p.run(1)
    (down,) = p.find("aws", "down")
    assert down.reason == "notification_received" and down.error_code == 6
    assert "maintenance" in down.message
    assert p.aws.rib() == []


def test_rfc8212_default_policy_exchanges_nothing() -> None:
    p = Pair(policy="default")
    p.cgw.announce("10.1.0.0/16")
    p.aws.announce("172.31.0.0/16")
    p.start()
    p.run(5)
    assert p.find("cgw", "established")
    assert p.cgw.rib() == [("10.1.0.0/16", None)]
    assert p.aws.rib() == [("172.31.0.0/16", None)]


def test_wrong_peer_asn_goes_down_naming_both_asns() -> None:
    p = Pair(aws_expects=64999)
    p.start()
    p.run(2)
    down = p.find("aws", "down")[0]
    assert down.reason == "bad_peer_as"
    assert (down.expected_asn, down.received_asn) == (64999, CGW)
    assert "64999" in down.message and "65000" in down.message
    d = down.to_dict()
    assert d["kind"] == "down" and d["peer"] == 0 and d["reason"] == "bad_peer_as"
    other = p.find("cgw", "down")[0]
    assert other.reason == "notification_received"
    assert (other.error_code, other.error_subcode) == (2, 2)  # OPEN error, Bad Peer AS
    assert not p.find("cgw", "established")


@pytest.mark.parametrize("garbage", [b"\x5a" * 100, b"\xff" * 16 + b"\x00\x05\x01", bytearray(b"\x00" * 19)])
def test_garbage_bytes_produce_notification_and_down(garbage: bytes) -> None:
    aws = vpn.BgpSpeaker(AWS, "10.0.0.2")
    peer = aws.add_neighbor("169.254.10.2", CGW, passive=True, policy="all")
    aws.start(peer, now_ns=0)
    aws.handle_connected(peer, False, now_ns=0)
    peer_, outbound, open_msg = aws.poll_transmit()
    assert (peer_, outbound) == (peer, False) and open_msg[18] == 1  # our OPEN
    aws.handle_bytes(peer, False, garbage, now_ns=1)
    peer_, outbound, notification = aws.poll_transmit()
    assert notification[18] == 3  # NOTIFICATION
    assert notification[19] == 1  # Message Header Error
    assert aws.poll_action() == (peer, "close", False)
    events = aws.poll_events()
    down = [e for e in events if e.kind == "down"]
    assert len(down) == 1 and down[0].reason == "notification_sent" and down[0].error_code == 1
    assert "NOTIFICATION sent" in repr(down[0]) or "NOTIFICATION sent" in down[0].message
    # The speaker keeps working afterwards.
    aws.handle_closed(peer, False, now_ns=2)
    aws.handle_timeout(now_ns=10 * SEC)


def test_arguments() -> None:
    with pytest.raises(vpn.ConfigError):
        vpn.BgpSpeaker(65000, "not-an-address")
    with pytest.raises(vpn.ConfigError):
        vpn.BgpSpeaker(0, "10.0.0.1")
    s = vpn.BgpSpeaker(65000, "10.0.0.1")
    with pytest.raises(ValueError):
        s.add_neighbor("bogus", 64512)
    with pytest.raises(vpn.ConfigError):
        s.add_neighbor("169.254.10.1", 64512, hold_time=2)
    with pytest.raises(vpn.ConfigError):
        s.add_neighbor("169.254.10.1", 64512, policy="some")
    assert s.add_neighbor("169.254.10.1", 64512) == 0
    with pytest.raises(ValueError):
        s.start(3)
    with pytest.raises(ValueError):
        s.announce("10.1.2.3/16")
    with pytest.raises(ValueError):
        s.announce("10.1.0.0/16", "2001:db8::1")
    s.announce("2001:db8::/32", "2001:db8::1")
    assert s.rib() == [("2001:db8::/32", "2001:db8::1")]
    # now_ns defaults to the monotonic clock.
    s.start(0)
    assert s.poll_action() == (0, "connect", True)
    assert s.poll_timeout() is not None
    assert "BgpSpeaker(asn=65000" in repr(s)
