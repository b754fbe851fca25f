"""Embeddable sans-IO site-to-site VPN stack: the ESP data plane.

>>> import vpn
>>> sa = vpn.EspSa(0x1000, "aes256gcm16", bytes(36))
>>> inner = bytes.fromhex("4500001400000000401100 00c0000201c6336401")
>>> sa.decapsulate(sa.encapsulate(inner, now_ns=0), now_ns=0) == inner
True

Errors derive from :class:`VpnError`; configuration errors are also
:class:`ValueError`. Key bytes never appear in messages or reprs.
"""

from ._vpn import (
    AuthenticationError,
    BufferTooSmallError,
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
