"""The AWS lab the connection tests share: AWS's sample
``CustomerGatewayConfiguration`` (``vpn-core/tests/fixtures/config/aws-vpn-connection-bgp.xml``)
imported by the Python binding and edited identically for both ends, and the
one-link layout with both AWS endpoints in one strongSwan.

The edits every test makes: static routing to ``10.2.0.0/24`` instead of the
fixture's BGP (with BGP a tunnel only carries traffic once its session is
Established, and these tests run no BGP peer) and DPD every 2 s with AWS's
shortest timeout of 30 s (``ConnectionConfig::validate`` refuses less). The
fixture's addresses are documentation ranges (CGW 203.0.113.10, AWS
198.51.100.21 and 198.51.100.87) and are used as they are, inside the
namespaces only.

    strongSwan = "AWS" (ns vgw)                                 ours = CGW (ns cgw)
    lo 10.2.0.1/32 -- ipsec0 -- charon 198.51.100.21 (tunnel 1) \\
                                       198.51.100.87 (tunnel 2) == 203.0.113.10 -- TUN 10.1.0.1/32
"""

from __future__ import annotations

import json
from typing import Any

from harness import REPO_ROOT, IkeConfig, Netns, StrongSwan, import_vpn_module, wait_until

vpn = import_vpn_module()

FIXTURE = REPO_ROOT / "vpn-core" / "tests" / "fixtures" / "config" / "aws-vpn-connection-bgp.xml"
CGW_IN, VGW_IN = "10.1.0.1", "10.2.0.1"
VGW_NET = "10.2.0.0/24"
DPD_INTERVAL, DPD_TIMEOUT = 2, 30


def fixture_dict(ike_version: int = 2, dpd_action: str | None = None) -> dict[str, Any]:
    """The fixture as the binding imports it (as JSON-ready data), edited: IKE
    version, static routing, DPD 2 s / 30 s (and ``dpd_action`` if given)."""
    d = json.loads(vpn.Config.from_aws_xml(FIXTURE.read_text()).to_json())
    # What the fixture says before the edits: BGP, and IKEv1 as AWS's default.
    assert d["routing"]["type"] == "bgp" and all(t["ike_version"] == 1 for t in d["tunnels"]), d["routing"]
    for t in d["tunnels"]:
        t["ike_version"] = ike_version
        t["dpd"]["interval"] = DPD_INTERVAL
        t["dpd"]["timeout"] = DPD_TIMEOUT
        if dpd_action is not None:
            t["dpd"]["action"] = dpd_action
    d["routing"] = {"type": "static", "prefixes": [VGW_NET]}
    return d


def config_from(d: dict[str, Any]) -> Any:
    """A validated ``vpn.Config`` from edited data."""
    config = vpn.Config.from_json(json.dumps(d))
    config.validate()
    return config


def edited_config(ike_version: int = 2) -> Any:
    return config_from(fixture_dict(ike_version))


def one_link(net: Netns, config: Any) -> tuple[str, str]:
    """Namespaces ``vgw`` (both AWS endpoint addresses, and 10.2.0.1 on lo)
    and ``cgw`` (the customer gateway's address) joined by one veth. Returns
    (vgw namespace, cgw namespace)."""
    (cgw_out, vgw1), (_, vgw2) = [tuple(p) for p in config.outside_addresses]
    vgw_ns, cgw_ns = net.add_ns("vgw"), net.add_ns("cgw")
    net.veth(vgw_ns, [f"{vgw1}/24", f"{vgw2}/24"], cgw_ns, f"{cgw_out}/24", dev_a="to-cgw", dev_b="to-vgw")
    net.add_route(vgw_ns, "203.0.113.0/24", dev="to-cgw")
    net.add_route(cgw_ns, "198.51.100.0/24", dev="to-vgw")
    net.add_addr(vgw_ns, f"{VGW_IN}/32")
    return vgw_ns, cgw_ns


def aws_strongswan(net: Netns, ns: str, config: Any, label: str = "vgw", tunnel: int = 1) -> StrongSwan:
    """strongSwan in ``ns`` running ``config.to_swanctl()`` verbatim (the
    IkeConfig only names tunnel ``tunnel``'s SA for the helpers)."""
    (cgw_out, vgw), = [tuple(p) for p in config.outside_addresses][tunnel - 1:tunnel]
    return StrongSwan(net, ns, IkeConfig(vgw, cgw_out, name=f"{config.name}-tunnel{tunnel}"), label=label,
                      raw_swanctl=config.to_swanctl()).start()


def established_sas(sw: StrongSwan, count: int = 2, timeout: float = 10) -> dict[str, Any]:
    """Waits until strongSwan holds ``count`` ESTABLISHED IKE SAs with an
    INSTALLED child each, and returns them."""

    def established() -> dict[str, Any] | None:
        ok = {k: v for k, v in sw.list_sas().items() if v.get("state") == "ESTABLISHED"
              and any(c.get("state") == "INSTALLED" for c in (v.get("child-sas") or {}).values())}
        return ok if len(ok) == count else None

    return wait_until(established, timeout, what=f"{count} IKE SAs with installed children in strongSwan")


def peers_and_algorithms(sas: dict[str, Any]) -> tuple[list[str], list[str]]:
    """strongSwan's view of its SAs: ["local<->remote", ...], ["encr/integ/dh", ...]."""
    peers = sorted(f"{v.get('local-host')}<->{v.get('remote-host')}" for v in sas.values())
    algs = sorted({f"{v.get('encr-alg')}/{v.get('integ-alg') or '-'}/{v.get('dh-group')}" for v in sas.values()})
    return peers, algs
