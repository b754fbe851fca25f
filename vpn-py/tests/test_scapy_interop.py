"""Cross-check of `vpn.EspSa` against an independent ESP implementation:
scapy's `scapy.layers.ipsec.SecurityAssociation` in tunnel mode (its crypto
comes from pyca/cryptography).

Both directions for every algorithm, with and without ESN, with IPv4 and
IPv6 inner packets:
  (a) scapy encrypts, `vpn.EspSa.decapsulate` must return the exact inner bytes;
  (b) `vpn.EspSa.encapsulate` output, wrapped in an outer IPv4 header (protocol
      50) and re-parsed, must decrypt in scapy to the original inner packet,
      with the trailer (monotonic padding, next header 4/41) checked too.

Coverage notes:
  * AES-GCM with 8- and 12-byte ICVs: scapy's stock 'AES-GCM' uses
    cryptography's `AESGCM` AEAD API, which always emits 16-byte tags (its
    `crypt_icv_size` only changes how the packet is split on decryption), so
    it cannot produce short-ICV packets. We register extra `CryptAlgo`
    entries built on cryptography's `modes.GCM` (scapy's older cipher-API
    path), which truncates the tag on encryption and verifies a truncated tag
    on decryption. A 16-byte variant of the same construction is checked
    against both our SA and scapy's stock 'AES-GCM' to show the construction
    is faithful.
  * ESN: both sides start at sequence number 1, so the high 32 bits are 0 in
    every packet here (scapy's `esn=0`). ESN still changes the wire format
    under test: the AEAD AAD grows to SPI|seq_hi|seq_lo and HMAC covers the
    extra 4 bytes; `test_esn_mismatch_is_detected_by_scapy` shows it matters.
    Non-zero high bits would need 2**32 packets through our SA, which has no
    way to start at another sequence number, so they are not cross-checked.
"""

from __future__ import annotations

import os

import pytest

import vpn

scapy_ipsec = pytest.importorskip("scapy.layers.ipsec")
from cryptography.hazmat.primitives.ciphers import algorithms, modes  # noqa: E402
from scapy.layers.inet import IP, UDP  # noqa: E402
from scapy.layers.inet6 import IPv6  # noqa: E402
from scapy.layers.ipsec import (  # noqa: E402
    CRYPT_ALGOS,
    ESP,
    CryptAlgo,
    IPSecIntegrityError,
    SecurityAssociation,
)
from scapy.packet import Raw  # noqa: E402

from conftest import SPI, keys_for  # noqa: E402

OUTER_SRC, OUTER_DST = "203.0.113.1", "203.0.113.2"

# Short-ICV AES-GCM for scapy, through cryptography's GCM mode object.
_GCM_VARIANTS = {f"VPN-TEST-AES-GCM-ICV{n}": n for n in (8, 12, 16)}


@pytest.fixture(scope="module", autouse=True)
def short_gcm_algos():
    for name, icv in _GCM_VARIANTS.items():
        CRYPT_ALGOS[name] = CryptAlgo(
            name,
            cipher=algorithms.AES,
            mode=modes.GCM,
            block_size=1,
            iv_size=8,
            salt_size=4,
            icv_size=icv,
            format_mode_iv=lambda sa, iv, **kw: sa.crypt_salt + iv,
        )
        assert CRYPT_ALGOS[name].is_aead and not CRYPT_ALGOS[name].ciphers_aead_api
    yield
    for name in _GCM_VARIANTS:
        CRYPT_ALGOS.pop(name, None)


# (our encryption, our integrity, scapy crypt_algo, scapy auth_algo)
CASES = [
    ("aes128gcm16", None, "AES-GCM", None),
    ("aes256gcm16", None, "AES-GCM", None),
    ("aes128gcm12", None, "VPN-TEST-AES-GCM-ICV12", None),
    ("aes256gcm12", None, "VPN-TEST-AES-GCM-ICV12", None),
    ("aes128gcm8", None, "VPN-TEST-AES-GCM-ICV8", None),
    ("aes256gcm8", None, "VPN-TEST-AES-GCM-ICV8", None),
    ("aes128gcm16", None, "VPN-TEST-AES-GCM-ICV16", None),
    ("aes256gcm16", None, "VPN-TEST-AES-GCM-ICV16", None),
    ("chacha20poly1305", None, "CHACHA20-POLY1305", None),
] + [
    (enc, integ, "AES-CBC", auth)
    for enc in ("aes128", "aes256")
    for integ, auth in (
        ("sha1", "HMAC-SHA1-96"),
        ("sha256", "SHA2-256-128"),
        ("sha384", "SHA2-384-192"),
        ("sha512", "SHA2-512-256"),
    )
]
CASE_IDS = [
    f"{enc}{'-' + integ if integ else ''}{'-modeapi' if crypt.endswith('ICV16') else ''}"
    for enc, integ, crypt, _ in CASES
]


def inner_packet(family: str, i: int):
    payload = os.urandom(7 * i + 3)
    if family == "ipv4":
        pkt = IP(src="10.0.0.1", dst="10.1.0.1", id=i) / UDP(sport=1000 + i, dport=53) / Raw(payload)
        return IP(bytes(pkt))
    pkt = IPv6(src="fd00::1", dst="fd00:1::1") / UDP(sport=1000 + i, dport=53) / Raw(payload)
    return IPv6(bytes(pkt))


def make_pair(case, esn: bool, aead_pad_to_16: bool = True):
    enc, integ, crypt, auth = case
    enc_key, integ_key = keys_for(enc, integ)
    ours = vpn.EspSa(
        SPI, enc, enc_key, integ, integ_key, esn=esn, aead_pad_to_16=aead_pad_to_16, now_ns=0
    )
    theirs = SecurityAssociation(
        ESP,
        spi=SPI,
        crypt_algo=crypt,
        crypt_key=enc_key,  # AEAD: key || 4-byte salt, the same layout as ours
        auth_algo=auth,
        auth_key=integ_key,
        tunnel_header=IP(src=OUTER_SRC, dst=OUTER_DST),
        esn_en=esn,
        esn=0,
    )
    return ours, theirs


def scapy_icv_len(sa) -> int:
    return sa.crypt_icv_size or sa.crypt_algo.icv_size or sa.auth_algo.icv_size


FAMILIES = ["ipv4", "ipv6"]
ESN = pytest.mark.parametrize("esn", [False, True], ids=["no-esn", "esn"])
FAMILY = pytest.mark.parametrize("family", FAMILIES)
CASE = pytest.mark.parametrize("case", CASES, ids=CASE_IDS)


@CASE
@ESN
@FAMILY
def test_scapy_encrypts_vpn_decapsulates(case, esn, family):
    # scapy pads AEAD payloads to 4 bytes: make ours do the same so sizes compare.
    ours, theirs = make_pair(case, esn, aead_pad_to_16=False)
    # In order, then reordered inside the replay window.
    for n, seq in enumerate([1, 2, 3, 9, 5, 4], start=1):
        inner = inner_packet(family, n)
        wire = theirs.encrypt(inner, seq_num=seq)
        assert wire[IP].proto == 50
        esp = bytes(wire[ESP])
        assert esp[:4] == SPI.to_bytes(4, "big")
        assert int.from_bytes(esp[4:8], "big") == seq
        # Same IV, padding and ICV sizes as ours (catches a wrong ICV length).
        assert len(esp) == ours.encapsulated_len(len(inner))
        assert ours.decapsulate(esp, now_ns=0) == bytes(inner)
    assert ours.packets_in == 6
    # scapy's packet replayed: our anti-replay drops it.
    with pytest.raises(vpn.ReplayError):
        ours.decapsulate(esp, now_ns=0)


@CASE
@ESN
@FAMILY
def test_vpn_encapsulates_scapy_decrypts(case, esn, family):
    ours, theirs = make_pair(case, esn)
    for seq in (1, 2, 3):
        inner = inner_packet(family, seq)
        esp = ours.encapsulate(bytes(inner), now_ns=0)
        wire = IP(bytes(IP(src=OUTER_SRC, dst=OUTER_DST, proto=50) / Raw(esp)))
        assert wire.haslayer(ESP)
        assert wire[ESP].spi == SPI and wire[ESP].seq == seq
        # The trailer as scapy sees it: RFC 4303 monotonic padding, next header.
        plain = theirs.crypt_algo.decrypt(
            theirs, wire[ESP], theirs.crypt_key, scapy_icv_len(theirs), esn_en=esn, esn=0
        )
        assert plain.nh == (4 if family == "ipv4" else 41)
        assert plain.padding == bytes(range(1, plain.padlen + 1))
        assert bytes(plain.data) == bytes(inner)
        # The full tunnel-mode decryption, ICV verified.
        out = theirs.decrypt(wire)
        assert bytes(out) == bytes(inner)


@pytest.mark.parametrize(
    "case", [c for c in CASES if c[2] in ("AES-GCM", "CHACHA20-POLY1305", "AES-CBC")],
    ids=[i for c, i in zip(CASES, CASE_IDS) if c[2] in ("AES-GCM", "CHACHA20-POLY1305", "AES-CBC")],
)
def test_tampering_detected_by_scapy(case):
    ours, theirs = make_pair(case, False)
    esp = bytearray(ours.encapsulate(bytes(inner_packet("ipv4", 1)), now_ns=0))
    esp[-1] ^= 0x01
    wire = IP(bytes(IP(src=OUTER_SRC, dst=OUTER_DST, proto=50) / Raw(bytes(esp))))
    with pytest.raises(IPSecIntegrityError):
        theirs.decrypt(wire)


@pytest.mark.parametrize("case", [CASES[1], CASES[8], CASES[-1]], ids=[CASE_IDS[1], CASE_IDS[8], CASE_IDS[-1]])
def test_esn_mismatch_is_detected_by_scapy(case):
    """Our SA with ESN, scapy's without: each side rejects the other's packets."""
    enc, integ, crypt, auth = case
    enc_key, integ_key = keys_for(enc, integ)
    ours = vpn.EspSa(SPI, enc, enc_key, integ, integ_key, esn=True, now_ns=0)
    theirs = SecurityAssociation(
        ESP, spi=SPI, crypt_algo=crypt, crypt_key=enc_key, auth_algo=auth,
        auth_key=integ_key, tunnel_header=IP(src=OUTER_SRC, dst=OUTER_DST), esn_en=False,
    )
    esp = ours.encapsulate(bytes(inner_packet("ipv4", 1)), now_ns=0)
    wire = IP(bytes(IP(src=OUTER_SRC, dst=OUTER_DST, proto=50) / Raw(esp)))
    with pytest.raises(IPSecIntegrityError):
        theirs.decrypt(wire)
    # And the converse: scapy's non-ESN packet fails our ESN SA.
    with pytest.raises(vpn.AuthenticationError):
        ours.decapsulate(bytes(theirs.encrypt(inner_packet("ipv4", 2))[ESP]), now_ns=0)


def test_short_gcm_variant_matches_stock_scapy_gcm16():
    """The mode-API construction with a 16-byte tag produces exactly what
    scapy's stock AEAD-API 'AES-GCM' produces (same key, IV and sequence)."""
    enc_key, _ = keys_for("aes256gcm16", None)
    inner = inner_packet("ipv4", 1)
    iv = os.urandom(8)
    out = []
    for algo in ("AES-GCM", "VPN-TEST-AES-GCM-ICV16"):
        sa = SecurityAssociation(ESP, spi=SPI, crypt_algo=algo, crypt_key=enc_key,
                                 tunnel_header=IP(src=OUTER_SRC, dst=OUTER_DST))
        out.append(bytes(sa.encrypt(inner, seq_num=1, iv=iv)[ESP]))
    assert out[0] == out[1]
