"""Shared helpers for the vpn binding tests."""

from __future__ import annotations

import os
import struct

import pytest

import vpn

# Every (encryption, integrity) pair the SA supports.
AEAD = [
    "aes128gcm16",
    "aes256gcm16",
    "aes128gcm8",
    "aes128gcm12",
    "aes256gcm8",
    "aes256gcm12",
    "chacha20poly1305",
]
CBC = [(enc, integ) for enc in ("aes128", "aes256") for integ in ("sha1", "sha256", "sha384", "sha512")]
ALGORITHMS = [(enc, None) for enc in AEAD] + CBC
ALGORITHM_IDS = [enc if integ is None else f"{enc}-{integ}" for enc, integ in ALGORITHMS]

SPI = 0xC0FFEE01


def ipv4_packet(payload: bytes = b"hello", ident: int = 1) -> bytes:
    """An IPv4/UDP packet built by hand (checksums left zero: ESP ignores them)."""
    udp = struct.pack("!HHHH", 4500, 53, 8 + len(payload), 0) + payload
    header = struct.pack(
        "!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), ident, 0, 64, 17, 0,
        bytes([192, 0, 2, 1]), bytes([198, 51, 100, 7]),
    )
    return header + udp


def ipv6_packet(payload: bytes = b"hello") -> bytes:
    udp = struct.pack("!HHHH", 4500, 53, 8 + len(payload), 0) + payload
    header = struct.pack("!IHBB16s16s", 6 << 28, len(udp), 17, 64,
                         bytes.fromhex("20010db8000000000000000000000001"),
                         bytes.fromhex("20010db8000000000000000000000002"))
    return header + udp


def keys_for(enc: str, integ: str | None) -> tuple[bytes, bytes | None]:
    enc_key = os.urandom(vpn.key_length(enc))
    integ_key = os.urandom(vpn.key_length(integ, integrity=True)) if integ else None
    return enc_key, integ_key


def sa_pair(enc: str, integ: str | None, esn: bool = False, **kw) -> tuple[vpn.EspSa, vpn.EspSa]:
    """A sender and a receiver sharing keys, both created at t=0."""
    enc_key, integ_key = keys_for(enc, integ)
    kw.setdefault("now_ns", 0)
    make = lambda: vpn.EspSa(SPI, enc, enc_key, integ, integ_key, esn=esn, **kw)  # noqa: E731
    return make(), make()


@pytest.fixture(params=ALGORITHMS, ids=ALGORITHM_IDS)
def algorithm(request) -> tuple[str, str | None]:
    return request.param
