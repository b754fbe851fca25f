"""Our gateway (``examples/gateway.rs``, IKEv2 keying) against strongSwan 5.9
(charon + kernel-libipsec) in two namespaces joined by a veth: proposals with
either side initiating, ping and UDP both ways, child and IKE rekeys from both
sides under a UDP stream, DPD on a cut link, the peer's DELETE, a wrong PSK and
a proposal mismatch.

    strongSwan (ns sw)                                       ours (ns gw)
    lo 10.202.2.1/32 -- ipsec0 -- charon 192.0.2.2 == 192.0.2.1 gateway -- vpn0 10.202.1.1/32

charon (libipsec) fakes a NAT, so IKE moves to UDP 4500 after IKE_SA_INIT and
ESP goes in UDP 4500 both ways. Run as root:
``.venv/bin/python -m pytest tests/interop/test_gateway_ikev2.py -q -p no:cacheprovider``.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from harness import (REPO_ROOT, ChildConfig, IkeConfig, Link, Netns, OurGateway, StrongSwan, UdpStream, ping,
                     wait_until)

GW_OUT, SW_OUT = "192.0.2.1", "192.0.2.2"
GW_IN, SW_IN = "10.202.1.1", "10.202.2.1"
GW_NET, SW_NET = "10.202.1.0/24", "10.202.2.0/24"
PSK = "vpnt-interop-psk-0123456789"

# (IKE proposal, ESP proposal, strongSwan's --list-sas names for the IKE SA and the child)
PROPOSALS = [
    ("aes256gcm16-prfsha256-ecp256", "aes256gcm16",
     {"encr-alg": "AES_GCM_16", "encr-keysize": "256", "prf-alg": "PRF_HMAC_SHA2_256", "dh-group": "ECP_256"},
     {"encr-alg": "AES_GCM_16", "encr-keysize": "256"}),
    ("aes256-sha256-modp2048", "aes256-sha256",
     {"encr-alg": "AES_CBC", "encr-keysize": "256", "integ-alg": "HMAC_SHA2_256_128", "dh-group": "MODP_2048"},
     {"encr-alg": "AES_CBC", "encr-keysize": "256", "integ-alg": "HMAC_SHA2_256_128"}),
    ("aes128-sha1-modp2048", "aes128-sha1",
     {"encr-alg": "AES_CBC", "encr-keysize": "128", "integ-alg": "HMAC_SHA1_96", "dh-group": "MODP_2048"},
     {"encr-alg": "AES_CBC", "encr-keysize": "128", "integ-alg": "HMAC_SHA1_96"}),
]


@pytest.fixture(scope="session")
def gateway_binary() -> Path:
    """Builds ``target/release/examples/gateway`` in this checkout once per
    session (the harness looks for it there, so no CARGO_TARGET_DIR)."""
    env = {k: v for k, v in os.environ.items() if k != "CARGO_TARGET_DIR"}
    res = subprocess.run(
        ["cargo", "build", "--release", "--example", "gateway"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=1800, env=env,
    )
    if res.returncode != 0:
        pytest.fail(f"cargo build --example gateway failed:\n{res.stderr[-4000:]}")
    binary = REPO_ROOT / "target" / "release" / "examples" / "gateway"
    assert binary.is_file(), binary
    return binary


def gateway_config(initiator: bool, ike: str = PROPOSALS[0][0], esp: str = PROPOSALS[0][1], psk: str = PSK,
                   **ikev2: Any) -> dict[str, Any]:
    return {
        "name": "gw",
        "start": True,
        "outside": {"local": GW_OUT, "remote": SW_OUT},
        "inner": {"local_traffic": [GW_NET], "remote_traffic": [SW_NET]},
        "tun": {"name": "vpn0", "address": f"{GW_IN}/32", "routes": [SW_NET]},
        "ikev2": {
            "psk": psk,
            "startup_action": "start" if initiator else "add",
            "ike_proposals": [ike],
            "esp_proposals": [esp],
            "rekey_fuzz_percent": 0,
            **ikev2,
        },
    }


def strongswan_config(ike: str = PROPOSALS[0][0], esp: str = PROPOSALS[0][1], psk: str = PSK,
                      **kw: Any) -> IkeConfig:
    return IkeConfig(SW_OUT, GW_OUT, proposals=ike, psk=psk,
                     children=[ChildConfig(local_ts=SW_NET, remote_ts=GW_NET, esp_proposals=esp,
                                           dpd_action="clear")], **kw)


def setup(net: Netns, binary: Path, gw_conf: dict[str, Any], sw_conf: IkeConfig,
          log_levels: dict[str, int] | None = None) -> tuple[OurGateway, StrongSwan, Link]:
    """Namespaces, the veth, strongSwan (started, config loaded) and our gateway
    (started: initiating or waiting, as ``gw_conf`` says)."""
    sw_ns, gw_ns = net.add_ns("sw"), net.add_ns("gw")
    link = net.veth(sw_ns, f"{SW_OUT}/24", gw_ns, f"{GW_OUT}/24")
    net.add_addr(sw_ns, f"{SW_IN}/32")
    sw = StrongSwan(net, sw_ns, sw_conf, label="sw", log_levels=log_levels).start()
    gw = OurGateway(net, gw_ns, gw_conf, binary=binary, label="gw").start()
    return gw, sw, link


def wait_up(gw: OurGateway, since: int = 0, timeout: float = 10) -> dict[str, Any]:
    """Our IKE SA and first child SA are up; returns the child event."""
    gw.wait_for_event("ike_sa_up", timeout, since)
    child = gw.wait_for_event("child_sa_installed", timeout, since)
    gw.wait_for_event(lambda e: e.get("event") == "tunnel_state" and e.get("state") == "up", timeout, since)
    return child


def bring_up(gw: OurGateway, sw: StrongSwan, we_initiate: bool) -> dict[str, Any]:
    if not we_initiate:
        out = sw.initiate()
        assert "completed successfully" in out.stdout, out.stdout
    child = wait_up(gw)
    wait_until(lambda: any(c.get("state") == "INSTALLED" for c in sw.child_sas()), 5, what="strongSwan child SA")
    return child


def metrics(gw: OurGateway) -> dict[str, Any]:
    since = len(gw.events)
    gw.command({"cmd": "metrics"})
    return gw.wait_for_event("metrics", 5, since)


def events(gw: OurGateway, name: str, since: int = 0) -> list[dict[str, Any]]:
    return [e for e in gw.events[since:] if e.get("event") == name]


def streams(net: Netns, gw: OurGateway, sw: StrongSwan, count: int, rate: float) -> tuple[UdpStream, UdpStream]:
    """A UDP stream each way (gw -> sw on port 5001, sw -> gw on 5002), started."""
    up = UdpStream(net, gw.ns, GW_IN, sw.ns, SW_IN, port=5001, count=count, rate=rate).start()
    down = UdpStream(net, sw.ns, SW_IN, gw.ns, GW_IN, port=5002, count=count, rate=rate).start()
    return up, down


def stream_detail(up, down) -> str:
    return (f"gw->sw {up.received}/{up.sent} lost {up.lost_count}; "
            f"sw->gw {down.received}/{down.sent} lost {down.lost_count}")


# ------------------------------------------------------------------ proposals x initiator


@pytest.mark.parametrize("we_initiate", [True, False], ids=["we-initiate", "sw-initiates"])
@pytest.mark.parametrize("ike,esp,ike_algs,esp_algs", PROPOSALS, ids=[p[0] for p in PROPOSALS])
def test_proposal_tunnel_ping_udp(net: Netns, gateway_binary: Path, report, ike: str, esp: str,
                                  ike_algs: dict[str, str], esp_algs: dict[str, str], we_initiate: bool) -> None:
    who = "we initiate" if we_initiate else "sw initiates"
    gw, sw, _ = setup(net, gateway_binary, gateway_config(we_initiate, ike, esp), strongswan_config(ike, esp))
    t0 = time.monotonic()
    child = bring_up(gw, sw, we_initiate)
    t_up = time.monotonic() - t0
    sa = sw.list_sas()["s2s"]
    assert sa["state"] == "ESTABLISHED", sa
    for k, v in ike_algs.items():
        assert sa.get(k) == v, (k, sa)
    assert (sa.get("initiator") == "yes") == (not we_initiate), sa
    sw_child = [c for c in sw.child_sas() if c.get("state") == "INSTALLED"][0]
    for k, v in esp_algs.items():
        assert sw_child.get(k) == v, (k, sw_child)
    # Our SPIs are strongSwan's, mirrored.
    assert (child["spi_in"], child["spi_out"]) == (sw_child["spi-out"], sw_child["spi-in"]), (child, sw_child)
    assert sw_child.get("encap") == "yes", sw_child

    assert ping(net, gw.ns, SW_IN, count=3, src=GW_IN) == (3, 3)
    assert ping(net, sw.ns, GW_IN, count=3, src=SW_IN) == (3, 3)
    up, down = streams(net, gw, sw, count=500, rate=1000)
    r_up, r_down = up.wait(), down.wait()
    assert r_up.lost_count == 0 and r_down.lost_count == 0 and r_up.duplicates == r_down.duplicates == 0, \
        stream_detail(r_up, r_down)
    m = metrics(gw)
    assert m["drops"]["icv"] == 0 and m["drops"]["replay"] == 0, m
    report.row(f"{ike} / {esp}, {who}", "PASS",
               f"up in {t_up:.2f}s; ping 3/3 each way; UDP {stream_detail(r_up, r_down)}")


# ------------------------------------------------------------------ rekeys under a stream


def test_rekeys_under_stream(net: Netns, gateway_binary: Path, report) -> None:
    """Each rekey, strongSwan's and ours, child and IKE, in the middle of its
    own 2-second UDP stream in both directions: not one datagram lost."""
    gw, sw, _ = setup(net, gateway_binary, gateway_config(True), strongswan_config())
    bring_up(gw, sw, True)

    def ike_spis() -> tuple[str, str]:
        s = sw.list_sas()["s2s"]
        return s["initiator-spi"], s["responder-spi"]

    def sw_child_rekey() -> str:
        sw.rekey_child()
        return "child_sa_rekeyed"

    def sw_ike_rekey() -> str:
        sw.rekey_ike()
        return "ike_sa_rekeyed"

    def our_child_rekey() -> str:
        gw.rekey_child()
        return "child_sa_rekeyed"

    def our_ike_rekey() -> str:
        gw.rekey_ike()
        return "ike_sa_rekeyed"

    for name, action in [("child rekey by strongSwan (swanctl --rekey --child)", sw_child_rekey),
                         ("IKE rekey by strongSwan (swanctl --rekey --ike)", sw_ike_rekey),
                         ("child rekey by us ({\"cmd\":\"rekey_child\"})", our_child_rekey),
                         ("IKE rekey by us ({\"cmd\":\"rekey_ike\"})", our_ike_rekey)]:
        spis_before = ike_spis()
        child_before = [c["spi-in"] for c in sw.child_sas() if c.get("state") == "INSTALLED"]
        since = len(gw.events)
        up, down = streams(net, gw, sw, count=1000, rate=500)
        time.sleep(0.8)
        expect = action()
        ev = gw.wait_for_event(expect, 10, since)
        r_up, r_down = up.wait(), down.wait()
        detail = stream_detail(r_up, r_down)
        if expect == "ike_sa_rekeyed":
            assert ike_spis() != spis_before, (spis_before, ike_spis())
            what = f"IKE SPIs {ev['spi_i']}/{ev['spi_r']}"
        else:
            now_in = [c["spi-in"] for c in sw.child_sas() if c.get("state") == "INSTALLED"]
            assert ev["spi_in"] not in child_before and set(now_in) != set(child_before), (ev, child_before, now_in)
            what = f"child {ev['old_spi_in']} -> {ev['spi_in']}"
        assert r_up.lost_count == 0 and r_down.lost_count == 0, detail
        assert r_up.duplicates == 0 and r_down.duplicates == 0, detail
        report.row(name, "PASS", f"{what}; {detail}")
    assert ping(net, gw.ns, SW_IN, count=2, src=GW_IN) == (2, 2)
    m = metrics(gw)
    assert m["drops"]["icv"] == 0 and m["drops"]["replay"] == 0, m
    assert sw.ike_state() == "ESTABLISHED"


def test_short_lifetimes_rekey_under_stream(net: Netns, gateway_binary: Path, report) -> None:
    """Our lifetimes (child 8 s, IKE 12 s, margin 3 s, no fuzz) make us rekey
    the child SA (at 5 s) and then the IKE SA (at 9 s) by ourselves while
    traffic flows both ways."""
    conf = gateway_config(True, child_lifetime=8, ike_lifetime=12, rekey_margin=3)
    gw, sw, _ = setup(net, gateway_binary, conf, strongswan_config())
    bring_up(gw, sw, True)
    t_up = gw.wait_for_event("child_sa_installed")["_t"]
    since = len(gw.events)
    spi_before = sw.list_sas()["s2s"]["initiator-spi"]
    up, down = streams(net, gw, sw, count=2500, rate=250)
    child_ev = gw.wait_for_event("child_sa_rekeyed", 9, since)
    ike_ev = gw.wait_for_event("ike_sa_rekeyed", 12, since)
    r_up, r_down = up.wait(), down.wait()
    detail = stream_detail(r_up, r_down)
    assert r_up.lost_count == 0 and r_down.lost_count == 0, detail
    t_child, t_ike = child_ev["_t"] - t_up, ike_ev["_t"] - t_up
    assert 4.5 <= t_child <= 6.5 and 8.5 <= t_ike <= 10.5, (t_child, t_ike)
    sa = sw.list_sas()["s2s"]
    assert sa["state"] == "ESTABLISHED" and sa["initiator-spi"] != spi_before, sa
    # The requests came from us (strongSwan's own lifetimes are hours).
    log = sw.log_text()
    assert re.search(r"parsed CREATE_CHILD_SA request \d+ \[ N\(REKEY_SA\)", log), log[-3000:]
    assert "rekeyed between" in log and "received DELETE for IKE_SA" in log, log[-3000:]
    report.row("our lifetimes: child 8 s / IKE 12 s, margin 3 s", "PASS",
               f"child rekeyed at {t_child:.1f}s ({child_ev['old_spi_in']} -> {child_ev['spi_in']}), "
               f"IKE at {t_ike:.1f}s; {detail}")


# ------------------------------------------------------------------ liveness and DELETE


@pytest.mark.parametrize("action", ["clear", "none"])
def test_dpd_detects_silent_peer(net: Netns, gateway_binary: Path, report, action: str) -> None:
    """strongSwan goes silent (nft drop both ways): our liveness check every
    2 s gives up after 10 s. `clear` takes the tunnel down (`down` reason
    `dpd_timeout`), `none` reports `dpd_timeout` and keeps the SAs, which
    carry traffic again once the link is back."""
    interval, timeout = 2, 10
    conf = gateway_config(True, dpd={"interval": interval, "timeout": timeout, "action": action})
    gw, sw, link = setup(net, gateway_binary, conf, strongswan_config())
    bring_up(gw, sw, True)
    assert ping(net, gw.ns, SW_IN, count=2, src=GW_IN) == (2, 2)
    since = len(gw.events)
    net.cut(link)
    t0 = time.monotonic()
    bound = interval + timeout + 2
    ev = gw.wait_for_event("down" if action == "clear" else "dpd_timeout", bound, since)
    took = time.monotonic() - t0
    assert took >= timeout - 1, took  # not before the timeout
    if action == "clear":
        assert ev["reason"] == "dpd_timeout", ev
        # The gateway writes `dpd_timeout` right after `down`: wait for it
        # rather than read the event list at the instant `down` arrived.
        assert gw.wait_for_event("dpd_timeout", 2, since)["action"] == "clear"
        assert events(gw, "ike_sa_down", since)[0]["reason"] == "dpd_timeout"
        assert metrics(gw)["state"] == "down"
        net.restore(link)
        result = f"down reason {ev['reason']} after {took:.1f}s (bound {bound}s): {ev['detail']}"
    else:
        assert not events(gw, "down", since), gw.events[since:]
        assert metrics(gw)["state"] == "up"
        net.restore(link)
        assert ping(net, gw.ns, SW_IN, count=3, src=GW_IN) == (3, 3)
        result = f"dpd_timeout event after {took:.1f}s (bound {bound}s), SAs kept, ping 3/3 after restore"
    report.row(f"DPD {interval} s / timeout {timeout} s, action {action}, strongSwan silenced (nft drop)", "PASS",
               result)


def test_peer_delete_takes_tunnel_down(net: Netns, gateway_binary: Path, report) -> None:
    gw, sw, _ = setup(net, gateway_binary, gateway_config(True), strongswan_config())
    bring_up(gw, sw, True)
    assert ping(net, gw.ns, SW_IN, count=2, src=GW_IN) == (2, 2)
    since = len(gw.events)
    out = sw.terminate_ike()
    assert out.returncode == 0 and "terminate completed successfully" in out.stdout, out.stdout + out.stderr
    down = gw.wait_for_event("down", 5, since)
    assert down["reason"] == "peer_deleted", down
    ike_down = events(gw, "ike_sa_down", since)
    assert ike_down and ike_down[0]["reason"] == "peer_deleted", gw.events[since:]
    gw.wait_for_event(lambda e: e.get("event") == "tunnel_state" and e.get("state") == "down", 5, since)
    assert sw.ike_state() is None
    # strongSwan got its DELETE answered (no retransmits of it).
    assert "retransmit 1 of request" not in sw.log_text()
    assert ping(net, gw.ns, SW_IN, count=2, timeout=0.5, src=GW_IN)[1] == 0
    assert gw.process and gw.process.alive
    report.row("strongSwan DELETE (swanctl --terminate --ike)", "PASS",
               f"down reason {down['reason']}, ike_sa_down {ike_down[0]['spi_i']}/{ike_down[0]['spi_r']}; "
               "strongSwan: terminate completed successfully")

    # And ours: SIGTERM sends a DELETE that strongSwan acts on.
    gw2_since = len(gw.events)
    gw.command({"cmd": "initiate"})
    wait_up(gw, gw2_since)
    wait_until(lambda: sw.ike_state() == "ESTABLISHED", 5, what="strongSwan IKE SA again")
    t0 = time.monotonic()
    assert gw.stop() == 0
    wait_until(lambda: sw.ike_state() is None, 5, what="strongSwan deletes the IKE SA after our DELETE")
    report.row("our SIGTERM -> DELETE to strongSwan", "PASS",
               f"strongSwan cleared its IKE SA in {time.monotonic() - t0:.2f}s")


# ------------------------------------------------------------------ failures


def proposal_lines(log: str) -> str:
    """strongSwan's verdict on our offer, from its log."""
    got = re.search(r"received proposals: (\S+)", log)
    conf = re.search(r"configured proposals: (\S+)", log)
    return (f"received {got.group(1) if got else '?'}, configured {conf.group(1) if conf else '?'}, "
            "sent N(NO_PROP)")


def test_wrong_psk(net: Netns, gateway_binary: Path, report) -> None:
    conf = gateway_config(True, psk="a-different-psk-987654321")
    gw, sw, _ = setup(net, gateway_binary, conf, strongswan_config())
    down = gw.wait_for_event("down", 10)
    assert down["reason"] == "authentication_failed", down
    wait_until(lambda: "N(AUTH_FAILED)" in sw.log_text(), 3, what="strongSwan sends AUTHENTICATION_FAILED")
    log = sw.log_text()
    assert "MAC mismatched" in log, log[-2000:]
    assert sw.ike_state() is None
    assert not events(gw, "child_sa_installed")
    report.row("wrong PSK, we initiate", "PASS",
               f"our down: {down['reason']} ({down['detail']}); strongSwan: MAC mismatched, sent N(AUTH_FAILED)")


def test_wrong_psk_peer_initiates(net: Netns, gateway_binary: Path, report) -> None:
    conf = gateway_config(False, psk="a-different-psk-987654321")
    gw, sw, _ = setup(net, gateway_binary, conf, strongswan_config())
    out = sw.initiate(check=False, timeout=8)
    text = out.stdout + out.stderr
    assert out.returncode != 0, text
    assert "AUTHENTICATION_FAILED" in text, text
    ev = gw.wait_for_event(lambda e: e.get("event") in ("down", "negotiation_failed"), 5)
    assert ev["reason"] == "authentication_failed", ev
    assert sw.ike_state() is None
    report.row("wrong PSK, strongSwan initiates", "PASS",
               f"our {ev['event']}: {ev['reason']} ({ev['detail']}); strongSwan: received AUTHENTICATION_FAILED")


def test_proposal_mismatch(net: Netns, gateway_binary: Path, report) -> None:
    ours, theirs = "aes128-sha1-modp2048", "aes256gcm16-prfsha256-ecp256"
    # We initiate: strongSwan answers NO_PROPOSAL_CHOSEN.
    gw, sw, _ = setup(net, gateway_binary, gateway_config(True, ike=ours, esp="aes128-sha1"),
                      strongswan_config(ike=theirs))
    down = gw.wait_for_event("down", 10)
    assert down["reason"] == "no_proposal_chosen", down
    assert "AES_CBC" in down["detail"] or "aes128" in down["detail"].lower(), down
    wait_until(lambda: "N(NO_PROP)" in sw.log_text(), 3, what="strongSwan sends NO_PROPOSAL_CHOSEN")
    log = sw.log_text()
    assert "no acceptable proposal" in log.lower() or "NO_PROP" in log, log[-2000:]
    report.row("proposal mismatch, we initiate", "PASS",
               f"our down: {down['reason']} ({down['detail']}); strongSwan: {proposal_lines(log)}")


def test_proposal_mismatch_peer_initiates(net: Netns, gateway_binary: Path, report) -> None:
    ours, theirs = "aes128-sha1-modp2048", "aes256gcm16-prfsha256-ecp256"
    gw, sw, _ = setup(net, gateway_binary, gateway_config(False, ike=ours, esp="aes128-sha1"),
                      strongswan_config(ike=theirs))
    out = sw.initiate(check=False, timeout=8)
    text = out.stdout + out.stderr
    assert out.returncode != 0 and "NO_PROPOSAL_CHOSEN" in text, text
    ev = gw.wait_for_event(lambda e: e.get("event") in ("down", "negotiation_failed"), 5)
    assert ev["reason"] == "no_proposal_chosen", ev
    assert ev.get("ours") and ev.get("theirs"), ev  # both offers named
    wait_until(lambda: "N(NO_PROP)" in sw.log_text() or "NO_PROPOSAL_CHOSEN" in sw.log_text(), 3,
               what="strongSwan logs NO_PROPOSAL_CHOSEN")
    report.row("proposal mismatch, strongSwan initiates", "PASS",
               f"our {ev['event']}: {ev['reason']} ({ev['detail']}); strongSwan: received NO_PROPOSAL_CHOSEN")
