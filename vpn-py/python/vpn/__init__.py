"""Embeddable sans-IO site-to-site VPN stack: the ESP data plane, the
connection configuration (:class:`Config`), a BGP speaker
(:class:`BgpSpeaker`) and the connection itself (:class:`Connection`),
driven sans-IO.

>>> import vpn
>>> sa = vpn.EspSa(0x1000, "aes256gcm16", bytes(36))
>>> inner = bytes.fromhex("4500001400000000401100 00c0000201c6336401")
>>> sa.decapsulate(sa.encapsulate(inner, now_ns=0), now_ns=0) == inner
True

>>> cfg = vpn.Config.from_file("examples/connection.toml")  # doctest: +SKIP
>>> cfg.validate()  # raises vpn.ConfigError(.field, .errors)  # doctest: +SKIP

>>> bgp = vpn.BgpSpeaker(65000, "10.0.0.1")
>>> bgp.add_neighbor("169.254.10.1", 64512, policy="all")
0
>>> bgp.announce("10.1.0.0/16")
>>> bgp.rib()
[('10.1.0.0/16', None)]

>>> conn = vpn.Connection.from_config(cfg)  # doctest: +SKIP
>>> conn.connect(); conn.poll_transmit()  # -> vpn.Transmit(...)  # doctest: +SKIP

Errors derive from :class:`VpnError`; configuration errors are also
:class:`ValueError`. Key bytes and pre-shared keys never appear in messages
or reprs.
"""

from ._vpn import (
    AuthenticationError,
    BgpEvent,
    BgpSpeaker,
    BufferTooSmallError,
    Config,
    ConfigError,
    Connection,
    ConnectionEvent,
    EspSa,
    MalformedPacketError,
    NoRouteError,
    PacketTooBigError,
    Received,
    ReplayError,
    SaExpiredError,
    Transmit,
    TunnelNotUpError,
    VpnError,
    encryption_algorithms,
    integrity_algorithms,
    key_length,
)

__all__ = [
    "AuthenticationError",
    "BgpEvent",
    "BgpSpeaker",
    "BufferTooSmallError",
    "Config",
    "ConfigError",
    "Connection",
    "ConnectionEvent",
    "EspSa",
    "MalformedPacketError",
    "NoRouteError",
    "PacketTooBigError",
    "Received",
    "ReplayError",
    "SaExpiredError",
    "Transmit",
    "TunnelNotUpError",
    "VpnError",
    "encryption_algorithms",
    "integrity_algorithms",
    "key_length",
]
