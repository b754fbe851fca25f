"""The `vpn.EspSa` binding: round trips, sequence numbers, anti-replay,
authentication, configuration errors, counters, lifetimes and buffers."""

from __future__ import annotations

import os
import random
import struct

import pytest

import vpn
from conftest import AEAD, ALGORITHMS, SPI, ipv4_packet, ipv6_packet, keys_for, sa_pair

FAMILIES = {"ipv4": ipv4_packet, "ipv6": ipv6_packet}


def seq_of(esp: bytes) -> int:
    return struct.unpack("!I", esp[4:8])[0]


# --- round trips -------------------------------------------------------------


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("esn", [False, True], ids=["no-esn", "esn"])
def test_round_trip(algorithm, esn, family):
    enc, integ = algorithm
    tx, rx = sa_pair(enc, integ, esn=esn)
    make = FAMILIES[family]
    for i, size in enumerate([0, 1, 13, 200, 1400], start=1):
        inner = make(os.urandom(size))
        esp = tx.encapsulate(inner, now_ns=i)
        assert len(esp) == tx.encapsulated_len(len(inner))
        assert len(esp) <= tx.headroom + len(inner) + tx.tailroom
        assert esp[:4] == SPI.to_bytes(4, "big")
        assert seq_of(esp) == i
        assert inner not in esp  # actually encrypted
        assert rx.decapsulate(esp, now_ns=i) == inner
    assert tx.packets_out == rx.packets_in == 5
    assert tx.last_sequence_out == 5
    assert tx.bytes_out == rx.bytes_in > 0
    assert rx.icv_failures == rx.replay_drops == rx.malformed == 0


def test_sequence_numbers_start_at_one(algorithm):
    enc, integ = algorithm
    tx, _ = sa_pair(enc, integ)
    first = tx.encapsulate(ipv4_packet(), now_ns=0)
    assert first[4:8] == b"\x00\x00\x00\x01"
    assert tx.encapsulate(ipv4_packet(), now_ns=0)[4:8] == b"\x00\x00\x00\x02"


@pytest.mark.parametrize("enc", ["aes256gcm16", "aes128gcm8"])
def test_esn_changes_the_icv(enc):
    """With ESN the (zero) high sequence bits are authenticated: a receiver
    that disagrees about ESN must reject the packet."""
    enc_key, _ = keys_for(enc, None)
    tx = vpn.EspSa(SPI, enc, enc_key, esn=True, now_ns=0)
    rx = vpn.EspSa(SPI, enc, enc_key, esn=False, now_ns=0)
    with pytest.raises(vpn.AuthenticationError):
        rx.decapsulate(tx.encapsulate(ipv4_packet(), now_ns=0), now_ns=0)


def test_cbc_esn_changes_the_icv():
    enc_key, integ_key = keys_for("aes128", "sha256")
    tx = vpn.EspSa(SPI, "aes128", enc_key, "sha256", integ_key, esn=True, now_ns=0)
    rx = vpn.EspSa(SPI, "aes128", enc_key, "sha256", integ_key, esn=False, now_ns=0)
    with pytest.raises(vpn.AuthenticationError):
        rx.decapsulate(tx.encapsulate(ipv4_packet(), now_ns=0), now_ns=0)


def test_keyword_aliases_and_case():
    key = bytes(20)
    assert vpn.EspSa(SPI, "AES128GCM128", key, now_ns=0).encryption == "aes128gcm16"
    sa = vpn.EspSa(SPI, "aes128cbc", bytes(16), "sha2_256", bytes(32), now_ns=0)
    assert (sa.encryption, sa.integrity) == ("aes128", "sha256")


def test_algorithm_lists():
    assert sorted(vpn.encryption_algorithms()) == sorted(AEAD + ["aes128", "aes256"])
    assert sorted(vpn.integrity_algorithms()) == ["sha1", "sha256", "sha384", "sha512"]
    assert vpn.key_length("aes256gcm16") == 36
    assert vpn.key_length("aes128") == 16
    assert vpn.key_length("sha384", integrity=True) == 48


def test_properties():
    sa = vpn.EspSa(SPI, "aes256gcm16", bytes(36), replay_window=64, esn=True, now_ns=0)
    assert sa.spi == SPI
    assert sa.esn is True
    assert sa.replay_window == 64
    assert sa.integrity is None
    assert sa.headroom == 16  # SPI, sequence, 8-byte IV
    assert sa.tailroom == 15 + 2 + 16  # AEAD payloads padded to 16 bytes by default
    short = vpn.EspSa(SPI, "aes256gcm16", bytes(36), aead_pad_to_16=False, now_ns=0)
    assert short.tailroom == 3 + 2 + 16
    cbc = vpn.EspSa(SPI, "aes256", bytes(32), "sha512", bytes(64), now_ns=0)
    assert cbc.headroom == 8 + 16
    assert cbc.tailroom == 15 + 2 + 32
    assert cbc.expired is False


def test_accepts_bytearray_and_memoryview_inputs():
    tx, rx = sa_pair("aes128gcm16", None)
    inner = ipv4_packet(b"x" * 50)
    e1 = tx.encapsulate(bytearray(inner), now_ns=0)
    e2 = tx.encapsulate(memoryview(inner), now_ns=0)
    assert rx.decapsulate(bytearray(e1), now_ns=0) == inner
    assert rx.decapsulate(memoryview(e2), now_ns=0) == inner
    with pytest.raises(TypeError):
        tx.encapsulate("not bytes", now_ns=0)  # type: ignore[arg-type]


def test_default_clock():
    """Without now_ns the binding reads time.monotonic_ns()."""
    tx, rx = sa_pair("chacha20poly1305", None, now_ns=None)
    inner = ipv6_packet()
    assert rx.decapsulate(tx.encapsulate(inner)) == inner
    tx.handle_timeout()
    assert tx.poll_timeout() is None


# --- zero-copy variants -------------------------------------------------------


@pytest.mark.parametrize("kind", ["bytearray", "memoryview"])
def test_into_variants(algorithm, kind):
    enc, integ = algorithm
    tx, rx = sa_pair(enc, integ)
    inner = ipv4_packet(os.urandom(100))
    storage = bytearray(2048)
    out = storage if kind == "bytearray" else memoryview(storage)[10:]
    n = tx.encapsulate_into(inner, out, now_ns=0)
    assert n == tx.encapsulated_len(len(inner))
    esp = bytes(out[:n])
    assert seq_of(esp) == 1
    plain = bytearray(n)
    m = rx.decapsulate_into(esp, plain, now_ns=0)
    assert bytes(plain[:m]) == inner
    # In place: the ESP packet and the output are the same buffer.
    n = tx.encapsulate_into(inner, out, now_ns=0)
    m = rx.decapsulate_into(out[:n] if kind == "memoryview" else bytes(out[:n]), out, now_ns=0)
    assert bytes(out[:m]) == inner


def test_encapsulate_in_place_same_bytearray():
    """The inner packet may already sit at `headroom` in the output buffer."""
    tx, rx = sa_pair("aes256gcm16", None)
    inner = ipv4_packet(b"in place")
    buf = bytearray(tx.encapsulated_len(len(inner)))
    buf[tx.headroom:tx.headroom + len(inner)] = inner
    view = bytes(buf[tx.headroom:tx.headroom + len(inner)])
    n = tx.encapsulate_into(view, buf, now_ns=0)
    assert rx.decapsulate(bytes(buf[:n]), now_ns=0) == inner
    # Same object as input and output: the binding copies with memmove.
    buf2 = bytearray(inner) + bytearray(200)
    n = tx.encapsulate_into(buf2[: len(inner)], buf2, now_ns=0)
    assert rx.decapsulate(bytes(buf2[:n]), now_ns=0) == inner
    m = rx.decapsulate_into(tx.encapsulate(inner, now_ns=0), buf2, now_ns=0)
    assert bytes(buf2[:m]) == inner
    both = bytearray(tx.encapsulate(inner, now_ns=0))
    m = rx.decapsulate_into(both, both, now_ns=0)
    assert bytes(both[:m]) == inner


def test_buffer_too_small():
    tx, rx = sa_pair("aes128gcm16", None)
    inner = ipv4_packet()
    need = tx.encapsulated_len(len(inner))
    with pytest.raises(vpn.BufferTooSmallError) as exc:
        tx.encapsulate_into(inner, bytearray(need - 1), now_ns=0)
    assert exc.value.needed == need
    assert isinstance(exc.value, vpn.VpnError) and isinstance(exc.value, ValueError)
    assert tx.packets_out == 0 and tx.last_sequence_out == 0  # nothing consumed
    esp = tx.encapsulate(inner, now_ns=0)
    with pytest.raises(vpn.BufferTooSmallError) as exc:
        rx.decapsulate_into(esp, bytearray(len(esp) - 1), now_ns=0)
    assert exc.value.needed == len(esp)
    with pytest.raises(TypeError):
        tx.encapsulate_into(inner, bytes(need), now_ns=0)  # type: ignore[arg-type]


# --- anti-replay --------------------------------------------------------------


def test_replay_raises_and_counts(algorithm):
    enc, integ = algorithm
    tx, rx = sa_pair(enc, integ)
    esp = tx.encapsulate(ipv4_packet(), now_ns=0)
    rx.decapsulate(esp, now_ns=0)
    with pytest.raises(vpn.ReplayError) as exc:
        rx.decapsulate(esp, now_ns=0)
    assert isinstance(exc.value, vpn.VpnError)
    assert exc.value.sequence == 1
    assert exc.value.kind == "duplicate"
    assert rx.replay_duplicates == 1
    assert rx.replay_drops == 1
    assert rx.packets_in == 1
    assert rx.counters()["replay_drops"] == 1


def test_replay_window_too_old_and_out_of_order():
    tx, rx = sa_pair("aes128gcm16", None, replay_window=32)
    packets = [tx.encapsulate(ipv4_packet(ident=i), now_ns=0) for i in range(1, 101)]
    # Reordering inside the window is fine.
    for i in (10, 5, 7, 6, 8, 9):
        rx.decapsulate(packets[i - 1], now_ns=0)
    rx.decapsulate(packets[99], now_ns=0)  # seq 100: window now 69..100
    with pytest.raises(vpn.ReplayError) as exc:
        rx.decapsulate(packets[0], now_ns=0)
    assert exc.value.kind == "too_old"
    assert rx.replay_too_old == 1
    rx.decapsulate(packets[69], now_ns=0)  # seq 70: still inside
    with pytest.raises(vpn.ReplayError):
        rx.decapsulate(packets[69], now_ns=0)
    assert rx.counters()["replay_duplicates"] == 1
    assert rx.replay_drops == 2
    assert rx.packets_in == 8


def test_window_is_advanced_only_by_authentic_packets():
    tx, rx = sa_pair("aes256gcm16", None)
    esp = tx.encapsulate(ipv4_packet(), now_ns=0)
    forged = bytearray(esp)
    forged[-1] ^= 1
    with pytest.raises(vpn.AuthenticationError):
        rx.decapsulate(bytes(forged), now_ns=0)
    assert rx.decapsulate(esp, now_ns=0) == ipv4_packet()


# --- authentication ----------------------------------------------------------


@pytest.mark.parametrize("where", ["seq", "iv", "ciphertext", "icv"])
def test_tamper_raises_authentication_error(algorithm, where):
    enc, integ = algorithm
    tx, rx = sa_pair(enc, integ)
    esp = bytearray(tx.encapsulate(ipv4_packet(b"payload" * 5), now_ns=0))
    offset = {"seq": 7, "iv": 9, "ciphertext": tx.headroom + 3, "icv": len(esp) - 1}[where]
    esp[offset] ^= 0x40
    with pytest.raises(vpn.AuthenticationError) as exc:
        rx.decapsulate(bytes(esp), now_ns=0)
    assert isinstance(exc.value, vpn.VpnError)
    assert rx.icv_failures == 1
    assert rx.packets_in == 0
    assert rx.counters()["icv_failures"] == 1


def test_wrong_key_fails_authentication(algorithm):
    enc, integ = algorithm
    tx, _ = sa_pair(enc, integ)
    _, other = sa_pair(enc, integ)
    with pytest.raises(vpn.AuthenticationError):
        other.decapsulate(tx.encapsulate(ipv6_packet(), now_ns=0), now_ns=0)


# --- configuration errors -----------------------------------------------------

SECRET = bytes.fromhex("deadbeefcafef00d") * 16


def assert_no_key_in(exc: BaseException, key: bytes) -> None:
    text = str(exc) + repr(exc) + repr(exc.args)
    for needle in (key.hex(), key.hex().upper(), repr(key), key[:8].hex()):
        assert needle not in text


@pytest.mark.parametrize(
    "args",
    [
        ("aes999gcm16", SECRET[:20]),
        ("des", SECRET[:8]),
        ("aes128", SECRET[:16], "md5", SECRET[:16]),
    ],
    ids=["unknown-aead", "unknown-enc", "unknown-integ"],
)
def test_unknown_keyword(args):
    with pytest.raises(vpn.ConfigError) as exc:
        vpn.EspSa(SPI, *args, now_ns=0)
    assert isinstance(exc.value, vpn.VpnError)
    assert isinstance(exc.value, ValueError)
    assert_no_key_in(exc.value, args[1])


@pytest.mark.parametrize("enc,integ", ALGORITHMS)
def test_bad_key_length(enc, integ):
    good_enc, good_integ = keys_for(enc, integ)
    bad = SECRET[: len(good_enc) - 1]
    with pytest.raises(vpn.ConfigError) as exc:
        vpn.EspSa(SPI, enc, bad, integ, good_integ, now_ns=0)
    assert_no_key_in(exc.value, bad)
    assert str(len(bad)) in str(exc.value)
    if integ:
        bad = SECRET[: len(good_integ) + 1]
        with pytest.raises(vpn.ConfigError) as exc:
            vpn.EspSa(SPI, enc, good_enc, integ, bad, now_ns=0)
        assert_no_key_in(exc.value, bad)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        (dict(enc="aes128gcm16", enc_key=bytes(20), integ="sha256", integ_key=bytes(32)), "AEAD"),
        (dict(enc="aes128", enc_key=bytes(16)), "integrity"),
        (dict(enc="aes128gcm16", enc_key=bytes(20), replay_window=16), "replay window"),
        (dict(enc="aes128gcm16", enc_key=bytes(20), replay_window=70000), "replay window"),
        (dict(enc="aes128gcm16", enc_key=bytes(20), replay_window=-1), "replay window"),
        (dict(enc="aes128gcm16", enc_key=bytes(20), spi=255), "reserved"),
        (dict(enc="aes128gcm16", enc_key=bytes(20), spi=0), "reserved"),
        (dict(enc="aes128gcm16", enc_key=bytes(20), spi=2**32), "spi"),
        (dict(enc="aes128gcm16", enc_key=bytes(20), spi=-5), "spi"),
    ],
)
def test_bad_config(kwargs, match):
    kwargs.setdefault("spi", SPI)
    with pytest.raises(vpn.ConfigError, match=match):
        vpn.EspSa(now_ns=0, **kwargs)


def test_repr_hides_keys():
    sa = vpn.EspSa(0x1234, "aes128", SECRET[:16], "sha1", SECRET[:20], now_ns=0)
    text = repr(sa)
    assert text == "EspSa(spi=0x00001234, enc='aes128', integ='sha1', esn=False)"
    assert_no_key_in(AssertionError(text), SECRET[:16])


# --- malformed packets --------------------------------------------------------


def test_malformed_packets_raise_and_count():
    tx, rx = sa_pair("aes128gcm16", None)
    esp = tx.encapsulate(ipv4_packet(), now_ns=0)
    with pytest.raises(vpn.MalformedPacketError):
        rx.decapsulate(esp[:10], now_ns=0)
    with pytest.raises(vpn.MalformedPacketError, match="SPI"):
        rx.decapsulate(b"\x00\x00\x00\x07" + esp[4:], now_ns=0)
    with pytest.raises(vpn.MalformedPacketError):
        rx.decapsulate(esp[:-1], now_ns=0)
    assert rx.malformed == 3
    assert rx.decapsulate(esp, now_ns=0) == ipv4_packet()
    with pytest.raises(vpn.MalformedPacketError):
        tx.encapsulate(b"\x10" + bytes(30), now_ns=0)  # not IPv4/IPv6
    with pytest.raises(vpn.MalformedPacketError):
        tx.encapsulate(b"", now_ns=0)


def test_random_garbage_never_crashes(algorithm):
    """No input may panic across the boundary: only VpnError subclasses."""
    enc, integ = algorithm
    _, rx = sa_pair(enc, integ)
    rng = random.Random(1234)
    for _ in range(300):
        n = rng.randrange(0, 120)
        data = bytearray(rng.getrandbits(8) for _ in range(n))
        if n >= 4 and rng.random() < 0.7:
            data[:4] = SPI.to_bytes(4, "big")
        with pytest.raises(vpn.VpnError):
            rx.decapsulate(bytes(data), now_ns=0)
    c = rx.counters()
    assert c["malformed"] + c["icv_failures"] + c["replay_drops"] == 300


# --- lifetimes, events, framing ---------------------------------------------------


def test_hard_packet_lifetime_expires_the_sa():
    tx, rx = sa_pair("aes256gcm16", None, soft_packets=2, hard_packets=3)
    inner = ipv4_packet()
    e1 = tx.encapsulate(inner, now_ns=0)
    assert tx.poll_event() is None
    tx.encapsulate(inner, now_ns=0)
    assert tx.poll_event() == {"event": "soft_lifetime", "spi": SPI, "limit": "packets"}
    tx.encapsulate(inner, now_ns=0)
    assert tx.poll_event() == {"event": "hard_lifetime", "spi": SPI, "limit": "packets"}
    assert tx.expired
    with pytest.raises(vpn.SaExpiredError) as exc:
        tx.encapsulate(inner, now_ns=0)
    assert isinstance(exc.value, vpn.VpnError)
    assert rx.decapsulate(e1, now_ns=0) == inner


def test_hard_time_lifetime():
    tx, _ = sa_pair("chacha20poly1305", None, hard_seconds=10.0)
    assert tx.poll_timeout() == 10 * 10**9
    tx.encapsulate(ipv4_packet(), now_ns=9 * 10**9)
    tx.handle_timeout(now_ns=10 * 10**9)
    assert tx.poll_event() == {"event": "hard_lifetime", "spi": SPI, "limit": "time"}
    assert tx.poll_timeout() is None
    with pytest.raises(vpn.SaExpiredError):
        tx.encapsulate(ipv4_packet(), now_ns=11 * 10**9)
    with pytest.raises(vpn.SaExpiredError):
        tx.decapsulate(b"\x00" * 64, now_ns=11 * 10**9)


def test_udp_encapsulation():
    tx, rx = sa_pair("aes128gcm16", None, udp_encap=(4500, 4500))
    inner = ipv4_packet()
    dgram = tx.encapsulate(inner, now_ns=0)
    src, dst, length, csum = struct.unpack("!HHHH", dgram[:8])
    assert (src, dst, length, csum) == (4500, 4500, len(dgram), 0)
    assert dgram[8:12] == SPI.to_bytes(4, "big")
    assert dgram[12:16] == b"\x00\x00\x00\x01"
    assert rx.decapsulate(dgram, now_ns=0) == inner


def test_tfc_padding_round_trip():
    tx, rx = sa_pair("aes256", "sha256", tfc_pad_to=300)
    inner = ipv6_packet(b"short")
    esp = tx.encapsulate(inner, now_ns=0)
    assert len(esp) >= 300
    assert rx.decapsulate(esp, now_ns=0) == inner


def test_counters_dict(algorithm):
    enc, integ = algorithm
    tx, rx = sa_pair(enc, integ)
    inner = ipv4_packet(b"abc")
    esp = tx.encapsulate(inner, now_ns=0)
    rx.decapsulate(esp, now_ns=0)
    assert tx.counters() == {
        "packets_out": 1,
        "bytes_out": len(inner),
        "packets_in": 0,
        "bytes_in": 0,
        "icv_failures": 0,
        "replay_duplicates": 0,
        "replay_too_old": 0,
        "replay_drops": 0,
        "malformed": 0,
        "dummy_packets": 0,
    }
    c = rx.counters()
    assert (c["packets_in"], c["bytes_in"]) == (1, len(inner))
    assert (rx.packets_in, rx.bytes_in, rx.packets_out, rx.bytes_out) == (1, len(inner), 0, 0)
    with pytest.raises(AttributeError):
        rx.packets_in = 5  # type: ignore[misc]


def test_exception_hierarchy():
    for name in (
        "ConfigError",
        "BufferTooSmallError",
        "MalformedPacketError",
        "AuthenticationError",
        "ReplayError",
        "SaExpiredError",
    ):
        cls = getattr(vpn, name)
        assert issubclass(cls, vpn.VpnError)
        assert cls.__module__ == "vpn"
        assert cls.__doc__
    assert issubclass(vpn.VpnError, Exception)
    assert issubclass(vpn.ConfigError, ValueError)
    assert not issubclass(vpn.AuthenticationError, ValueError)


def test_stubs_match_the_module():
    """`_vpn.pyi` declares exactly what the extension exports."""
    import ast
    import pathlib

    import vpn._vpn as ext

    stub = ast.parse((pathlib.Path(vpn.__file__).parent / "_vpn.pyi").read_text())
    top = {n.name for n in stub.body if isinstance(n, (ast.ClassDef, ast.FunctionDef))}
    public = {n for n in top if not n.startswith("_")}
    assert public == {n for n in dir(ext) if not n.startswith("_")}
    assert set(vpn.__all__) == public
    (cls,) = [n for n in stub.body if isinstance(n, ast.ClassDef) and n.name == "EspSa"]
    members = {n.name for n in cls.body if isinstance(n, ast.FunctionDef)} - {"__init__"}
    runtime = {n for n in dir(vpn.EspSa) if not n.startswith("_")}
    assert members == runtime
