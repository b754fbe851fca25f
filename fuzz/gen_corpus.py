#!/usr/bin/env python3
"""Writes the seed corpus under fuzz/corpus/<target>/ (a few KiB in all).

Seeds are small well-formed inputs in each target's input format (see the
doc comment at the top of each fuzz_targets/*.rs), so that libFuzzer starts
from valid structure instead of discovering headers byte by byte. Re-run after
changing a target's input format:  python3 fuzz/gen_corpus.py
"""
import json
import os
import shutil
import struct
import tomllib

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
CORPUS = os.path.join(HERE, "corpus")


def write(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def ipv4(length, src=(10, 2, 0, 1), dst=(10, 1, 0, 1)):
    p = bytearray(max(length, 20))
    p[0] = 0x45
    p[2:4] = struct.pack(">H", len(p))
    p[9] = 17
    p[12:16] = bytes(src)
    p[16:20] = bytes(dst)
    return bytes(p)


# ---------------------------------------------------------------- ESP
def esp():
    for sel in range(8):
        raw = struct.pack(">II", 0x12345678, 1) + bytes(range(48))
        write("esp_open", f"raw-suite{sel}", bytes([sel]) + raw)
        udp = struct.pack(">HHHH", 4500, 4500, 8 + len(raw), 0) + raw
        write("esp_open", f"raw-udp-suite{sel}", bytes([sel]) + udp)
        write("esp_open", f"sealed-suite{sel}", bytes([sel | 8, 0, 0, 0]) + ipv4(40))
        write("esp_open", f"sealed-v6-suite{sel}", bytes([sel | 8, 0, 0, 0, 0x60]) + bytes(47))
        write("esp_open", f"tampered-suite{sel}", bytes([sel | 8, 0, 20, 1]) + ipv4(28))
    write("esp_nat_t_classify", "keepalive", b"\xff")
    write("esp_nat_t_classify", "ike", b"\0\0\0\0" + bytes(28))
    write("esp_nat_t_classify", "esp", struct.pack(">II", 0x1001, 7) + bytes(24))


# ---------------------------------------------------------------- IKEv2
def gp(next_type, body, critical=False):
    return struct.pack(">BBH", next_type, 0x80 if critical else 0, 4 + len(body)) + body


def ikev2_header(next_type, exchange, flags, msg_id, length, spi_r=0):
    return struct.pack(">QQBBBBII", 0x0102030405060708, spi_r, next_type, 0x20, exchange, flags, msg_id, length)


def ikev2_transform(last, ttype, tid, keylen=None):
    attrs = struct.pack(">HH", 0x800E, keylen) if keylen else b""
    return struct.pack(">BBHBBH", 0 if last else 3, 0, 8 + len(attrs), ttype, 0, tid) + attrs


def ikev2_sa():
    ts = [(1, 20, 256), (2, 5, None), (4, 19, None)]  # AES-GCM-16-256, PRF SHA-256, ECP-256
    body = b"".join(ikev2_transform(i == len(ts) - 1, *t) for i, t in enumerate(ts))
    prop = struct.pack(">BBHBBBB", 0, 0, 8 + len(body), 1, 1, 0, len(ts)) + body
    return prop


def ikev2():
    SA, KE, NONCE, N, SK, D, IDI, TSI = 33, 34, 40, 41, 46, 42, 35, 44
    ke = struct.pack(">HH", 19, 0) + bytes(range(64))
    notify = struct.pack(">BBH", 0, 0, 16430)  # IKEV2_FRAGMENTATION_SUPPORTED
    chain = (gp(KE, ikev2_sa()) + gp(NONCE, ke) + gp(N, bytes(range(32)))
             + gp(0, notify))
    msg = ikev2_header(SA, 34, 0x08, 0, 28 + len(chain)) + chain
    write("ikev2_message", "ike_sa_init", msg)
    sk = gp(D, bytes(8) + bytes(range(32)) + bytes(16))
    info = ikev2_header(SK, 37, 0x08, 2, 28 + len(sk), spi_r=0x1112131415161718) + sk
    write("ikev2_message", "informational_sk", info)
    ts = struct.pack(">BBH", 7, 0, 16) + bytes([10, 0, 0, 0, 10, 0, 255, 255])
    tsp = struct.pack(">B3x", 1) + ts
    idp = struct.pack(">B3x", 1) + bytes([192, 0, 2, 1])
    delete = struct.pack(">BBH", 3, 4, 1) + struct.pack(">I", 0x1001)
    chain2 = gp(TSI, idp) + gp(D, tsp) + gp(N, delete) + gp(0, struct.pack(">BBH", 3, 4, 16384) + bytes(4))
    write("ikev2_payloads", "idi_tsi_d_n", bytes([IDI]) + chain2)
    write("ikev2_payloads", "sa_ke", bytes([SA]) + gp(KE, ikev2_sa()) + gp(0, ke))
    write("ikev2_sk_open", "raw-gcm", b"\x00" + info)
    for sel in range(4):
        write("ikev2_sk_open", f"sealed-{sel}", bytes([sel | 4, IDI, 0, 0]) + chain2)
        write("ikev2_sk_open", f"tamper-{sel}", bytes([sel | 4, D, 40, 1]) + gp(0, delete))


# ---------------------------------------------------------------- IKEv1
def ikev1():
    SA, VID, KE, NONCE, NAT_D = 1, 13, 4, 10, 20
    attrs = b"".join(struct.pack(">HH", 0x8000 | t, v) for t, v in
                     [(1, 7), (14, 128), (2, 2), (4, 2), (3, 1), (11, 1)]) + struct.pack(">HHI", 12, 4, 28800)
    transform = struct.pack(">BBHBBH", 0, 0, 8 + len(attrs), 1, 1, 0) + attrs
    prop = struct.pack(">BBHBBBB", 0, 0, 8 + len(transform), 1, 1, 0, 1) + transform
    sa = struct.pack(">II", 1, 1) + prop
    vid_nat = bytes.fromhex("4a131c81070358455c5728f20e95452f")
    chain = gp(VID, sa) + gp(0, vid_nat)
    msg = struct.pack(">8s8sBBBBII", bytes(range(1, 9)), bytes(8), SA, 0x10, 2, 0, 0, 28 + len(chain)) + chain
    write("ikev1_message", "main_mode_1", msg)
    chain2 = gp(NONCE, bytes(range(128))) + gp(NAT_D, bytes(range(16))) + gp(0, bytes(20))
    msg2 = struct.pack(">8s8sBBBBII", bytes(range(1, 9)), bytes(range(9, 17)), KE, 0x10, 2, 0, 0, 28 + len(chain2)) + chain2
    write("ikev1_message", "main_mode_3", msg2)
    notify = struct.pack(">IBBH", 1, 1, 16, 36136) + bytes(range(16)) + struct.pack(">I", 1)
    msg3 = struct.pack(">8s8sBBBBII", bytes(range(1, 9)), bytes(range(9, 17)), 11, 0x10, 5, 0, 7, 28 + 4 + len(notify)) + gp(0, notify)
    write("ikev1_message", "informational_dpd", msg3)
    # Session: replay/mutate each datagram the pair exchanged, to A and to B.
    for i in range(9):
        write("ikev1_session", f"sample{i}", bytes([4 | (i & 1), i, 0]))
        write("ikev1_session", f"sample{i}-flip", bytes([4 | (i & 1), i, 1, 0, 30, 0xFF]))
    write("ikev1_session", "sample-4500", bytes([6, 7, 0]))
    write("ikev1_session", "raw-main-mode", bytes([1, len(msg)]) + msg)


# ---------------------------------------------------------------- BGP
def bgp_msg(t, body):
    return b"\xff" * 16 + struct.pack(">HB", 19 + len(body), t) + body


def bgp():
    caps = bytes([1, 4, 0, 1, 0, 1, 1, 4, 0, 2, 0, 1, 65, 4]) + struct.pack(">I", 64512) + bytes([2, 0])
    opt = bytes([2, len(caps)]) + caps
    open_ = bgp_msg(1, struct.pack(">BHH4sB", 4, 64512, 30, bytes([10, 0, 0, 2]), len(opt)) + opt)
    keepalive = bgp_msg(4, b"")
    origin = bytes([0x40, 1, 1, 0])
    as_path = bytes([0x40, 2, 6, 2, 1]) + struct.pack(">I", 64512)
    next_hop = bytes([0x40, 3, 4, 169, 254, 10, 1])
    med = bytes([0x80, 4, 4, 0, 0, 0, 100])
    comm = bytes([0xC0, 8, 4, 0xFD, 0xE8, 0, 1])
    attrs = origin + as_path + next_hop + med + comm
    nlri = bytes([24, 10, 2, 0, 16, 172, 16])
    update = bgp_msg(2, struct.pack(">H", 0) + struct.pack(">H", len(attrs)) + attrs + nlri)
    withdraw = bgp_msg(2, struct.pack(">H", 4) + bytes([24, 10, 2, 0]) + struct.pack(">H", 0))
    mp_reach = bytes([0x90, 14]) + struct.pack(">H", 5 + 16 + 1 + 5) + struct.pack(">HBB", 2, 1, 16) + bytes(16) + b"\0" + bytes([32, 0x20, 1, 0x0d, 0xb8])
    update6 = bgp_msg(2, struct.pack(">H", 0) + struct.pack(">H", len(origin + as_path + mp_reach)) + origin + as_path + mp_reach)
    notification = bgp_msg(3, bytes([6, 2]) + b"bye")
    refresh = bgp_msg(5, struct.pack(">HBB", 1, 0, 1))
    stream = update + update6 + withdraw + keepalive + refresh
    for chunk in (0, 18, 255):
        write("bgp_framer_decode", f"open-{chunk}", bytes([chunk]) + open_ + keepalive)
        write("bgp_framer_decode", f"stream-{chunk}", bytes([chunk]) + stream + notification)
        write("bgp_session", f"stream-{chunk}", bytes([chunk]) + stream)
    write("bgp_session", "notification", bytes([255]) + notification)
    write("bgp_session", "open-again", bytes([255]) + open_)
    # 2-octet AS speaker's UPDATE with AS4_PATH.
    as_path2 = bytes([0x40, 2, 4, 2, 1, 0x5B, 0xA0])
    as4 = bytes([0xC0, 17, 6, 2, 1]) + struct.pack(">I", 4200000000)
    attrs2 = origin + as_path2 + next_hop + as4
    write("bgp_framer_decode", "as4_path", bytes([255]) + bgp_msg(2, b"\0\0" + struct.pack(">H", len(attrs2)) + attrs2 + nlri))


# ---------------------------------------------------------------- tunnel
def tunnel():
    write("tunnel_datagram", "sealed", bytes([3, 16]) + bytes(range(16)) + bytes([0, 0, 0]))
    write("tunnel_datagram", "sealed-outside-ts", bytes([11, 8]) + bytes(8) + bytes([0, 0, 0]))
    write("tunnel_datagram", "tampered", bytes([3, 8]) + bytes(8) + bytes([0, 12, 0x80]))
    write("tunnel_datagram", "raw-esp", bytes([2, 24]) + struct.pack(">II", 0x1001, 1) + bytes(16))
    write("tunnel_datagram", "keepalive-and-ike", bytes([2, 1, 0xFF, 2, 8, 0, 0, 0, 0, 1, 2, 3, 4]))
    write("tunnel_datagram", "wrong-peer", bytes([7, 4, 0, 0, 0, 1]))


# ---------------------------------------------------------------- config
def config():
    toml_text = open(os.path.join(ROOT, "examples", "connection.toml"), "rb").read()
    write("config_parsers", "native.toml", b"\x00" + toml_text)
    native = tomllib.loads(toml_text.decode())
    write("config_parsers", "native.json", b"\x01" + json.dumps(native, indent=1).encode())
    fixtures = os.path.join(ROOT, "vpn-core", "tests", "fixtures", "config")
    write("config_parsers", "aws.xml", b"\x02" + open(os.path.join(fixtures, "aws-vpn-connection-bgp.xml"), "rb").read())
    write("config_parsers", "aws-options.json", b"\x03" + open(os.path.join(fixtures, "aws-describe-vpn-connections.json"), "rb").read())


if __name__ == "__main__":
    shutil.rmtree(CORPUS, ignore_errors=True)
    esp()
    ikev2()
    ikev1()
    bgp()
    tunnel()
    config()
    total = sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(CORPUS) for f in fs)
    print(f"seed corpus: {total} bytes in {CORPUS}")
