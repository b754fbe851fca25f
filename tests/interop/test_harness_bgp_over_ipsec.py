"""The AWS shape with independent peers on both ends: an IKEv2 tunnel whose child
SA carries the 169.254.x.x/30 inside addresses, and an eBGP session (TCP-MD5,
multihop) between those addresses riding ESP-in-UDP. What our gateway + speaker
will have to do against strongSwan + BIRD."""

from __future__ import annotations

import time

from harness import (Bird, BirdChannel, BirdConfig, BirdNeighbor, ChildConfig, IkeConfig, Netns, StrongSwan,
                     ping, wait_until)

CGW_OUT, AWS_OUT = "203.0.113.2", "203.0.113.1"
CGW_IN, AWS_IN = "169.254.10.2", "169.254.10.1"  # customer gateway gets .2 of the /30
CGW_NET, AWS_NET = "10.20.0.0/24", "10.30.0.0/16"


def test_bgp_over_ipsec(net: Netns, report) -> None:
    cgw, aws = net.add_ns("cgw"), net.add_ns("aws")
    net.veth(cgw, f"{CGW_OUT}/24", aws, f"{AWS_OUT}/24")
    net.add_addr(cgw, f"{CGW_IN}/32")
    net.add_addr(aws, f"{AWS_IN}/32")
    # charon (kernel-libipsec) installs the route to each remote TS via ipsec0 with a
    # local source address inside the local TS: without one the CHILD_SA fails
    # ("error installing route with policy") and the peer answers TS_UNACCEPTABLE.
    net.add_addr(cgw, "10.20.0.1/32")
    net.add_addr(aws, "10.30.0.1/32")
    ts_cgw, ts_aws = f"{CGW_IN}/32,{CGW_NET}", f"{AWS_IN}/32,{AWS_NET}"
    c = IkeConfig(CGW_OUT, AWS_OUT, local_id=CGW_OUT, remote_id=AWS_OUT,
                  children=[ChildConfig(local_ts=ts_cgw, remote_ts=ts_aws, dpd_action="restart")], keyingtries=0)
    a = IkeConfig(AWS_OUT, CGW_OUT, local_id=AWS_OUT, remote_id=CGW_OUT,
                  children=[ChildConfig(local_ts=ts_aws, remote_ts=ts_cgw, dpd_action="clear")])
    t0 = time.monotonic()
    s_cgw = StrongSwan(net, cgw, c).start()
    StrongSwan(net, aws, a).start()
    s_cgw.initiate()
    assert ping(net, cgw, AWS_IN, count=2, interval=0.2, src=CGW_IN) == (2, 2)
    report.row("stack: IKEv2 tunnel, inside /30 reachable", "PASS", f"{CGW_IN} -> {AWS_IN}")

    def bird(ns: str, rid: str, asn: int, peer: str, peer_as: int, prefix: str) -> Bird:
        n = BirdNeighbor("aws" if ns == cgw else "cgw", peer, peer_as, local_address=rid, multihop=2,
                         password="vpnt-md5", hold_time=9, keepalive_time=3,
                         ipv4=BirdChannel(export_filter=f"where net = {prefix}"))
        # BIRD must know the peer is reachable: the inside /32 through charon's TUN
        return Bird(net, ns, BirdConfig(rid, asn, [n], static4=[prefix, (f"{peer}/32", 'via "ipsec0"')])).start()

    b_cgw = bird(cgw, CGW_IN, 65000, AWS_IN, 64512, CGW_NET)
    b_aws = bird(aws, AWS_IN, 64512, CGW_IN, 65000, "10.30.0.0/16")
    b_cgw.wait_state("aws", "Established", 15)
    wait_until(lambda: "10.30.0.0/16" in b_cgw.routes("master4", "aws"), 5, what="AWS prefix on the CGW")
    wait_until(lambda: CGW_NET in b_aws.routes("master4", "cgw"), 5, what="CGW prefix on AWS")
    child = [x for x in s_cgw.child_sas() if x["state"] == "INSTALLED"][0]
    assert int(child["packets-in"]) > 2 and int(child["packets-out"]) > 2
    report.row("stack: eBGP (MD5, multihop) over the tunnel", "PASS",
               f"Established + routes both ways in {time.monotonic() - t0:.1f}s, "
               f"ESP pkts in={child['packets-in']} out={child['packets-out']}")
    s_cgw.rekey_child()
    time.sleep(1)
    assert b_cgw.protocol_state("aws") == "Established"
    report.row("stack: child rekey under BGP", "PASS", "session stays Established")
