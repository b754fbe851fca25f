"""Embeddable sans-IO site-to-site VPN stack: the ESP data plane and the
connection configuration (:class:`Config`).

>>> import vpn
>>> sa = vpn.EspSa(0x1000, "aes256gcm16", bytes(36))
>>> inner = bytes.fromhex("4500001400000000401100 00c0000201c6336401")
>>> sa.decapsulate(sa.encapsulate(inner, now_ns=0), now_ns=0) == inner
True

>>> cfg = vpn.Config.from_file("examples/connection.toml")  # doctest: +SKIP
>>> cfg.validate()  # raises vpn.ConfigError(.field, .errors)  # doctest: +SKIP

Errors derive from :class:`VpnError`; configuration errors are also
:class:`ValueError`. Key bytes and pre-shared keys never appear in messages
or reprs.
"""

from ._vpn import (
    AuthenticationError,
    BufferTooSmallError,
    Config,
    ConfigError,
    EspSa,
    MalformedPacketError,
    ReplayError,
    SaExpiredError,
    VpnError,
    encryption_algorithms,
    integrity_algorithms,
    key_length,
)

__all__ = [
    "AuthenticationError",
    "BufferTooSmallError",
    "Config",
    "ConfigError",
    "EspSa",
    "MalformedPacketError",
    "ReplayError",
    "SaExpiredError",
    "VpnError",
    "encryption_algorithms",
    "integrity_algorithms",
    "key_length",
]
