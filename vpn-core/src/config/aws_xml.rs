//! Import of AWS's `CustomerGatewayConfiguration` XML document.

use core::str::FromStr;
use std::net::IpAddr;

use roxmltree::{Document, Node, ParsingOptions};

use super::proposal::{aws_encryption, aws_integrity, esp_proposal, ike_proposal};
use super::{
    check_size, ConfigError, ConnectionConfig, DpdAction, DpdConfig, FailoverPolicy, Prefix, Role,
    Routing, Secret, TunnelConfig,
};
use crate::crypto::DhGroup;
use crate::esp::IntegrityAlgorithm;

/// Most XML nodes (elements, text, comments) accepted: the real document has ~250.
const MAX_NODES: u32 = 20_000;
/// Deepest element nesting accepted: the real document nests 5 deep.
const MAX_DEPTH: usize = 32;

/// An element together with its path from the root, for error messages.
struct El<'a, 'input> {
    node: Node<'a, 'input>,
    path: String,
}

impl<'a, 'input> El<'a, 'input> {
    fn opt_child(&self, name: &str) -> Option<El<'a, 'input>> {
        self.node
            .children()
            .find(|c| c.is_element() && c.tag_name().name() == name)
            .map(|node| El {
                node,
                path: format!("{}/{}", self.path, name),
            })
    }

    fn child(&self, name: &str) -> Result<El<'a, 'input>, ConfigError> {
        self.opt_child(name)
            .ok_or_else(|| ConfigError::missing(format!("{}/{}", self.path, name)))
    }

    /// The trimmed text of child `name`, with its path.
    fn text(&self, name: &str) -> Result<(String, &'a str), ConfigError> {
        let c = self.child(name)?;
        let text = c.node.text().map(str::trim).unwrap_or("");
        if text.is_empty() {
            return Err(ConfigError::invalid(c.path, "empty"));
        }
        Ok((c.path, text))
    }

    fn opt_text(&self, name: &str) -> Result<Option<(String, &'a str)>, ConfigError> {
        match self.opt_child(name) {
            None => Ok(None),
            Some(_) => self.text(name).map(Some),
        }
    }

    fn parse<T: FromStr>(&self, name: &str, what: &str) -> Result<T, ConfigError> {
        let (path, text) = self.text(name)?;
        text.parse()
            .map_err(|_| ConfigError::invalid(path, format!("not {what}")))
    }
}

fn parse_bool(path: &str, text: &str) -> Result<bool, ConfigError> {
    match text.to_ascii_lowercase().as_str() {
        "true" | "yes" | "1" => Ok(true),
        "false" | "no" | "0" => Ok(false),
        _ => Err(ConfigError::invalid(path, "not a boolean (true or false)")),
    }
}

/// `group14` (or `14`) to the DH group.
fn parse_group(path: &str, text: &str) -> Result<DhGroup, ConfigError> {
    let lower = text.to_ascii_lowercase();
    let digits = lower.strip_prefix("group").unwrap_or(&lower);
    let id: u16 = digits
        .parse()
        .map_err(|_| ConfigError::invalid(path, "not a DH group (group2, group14, ...)"))?;
    DhGroup::from_id(id).ok_or_else(|| {
        ConfigError::invalid(path, format!("DH group {id} is not supported by vpn-core"))
    })
}

fn parse_encryption(
    el: &El<'_, '_>,
    name: &str,
) -> Result<crate::esp::EncryptionAlgorithm, ConfigError> {
    let (path, text) = el.text(name)?;
    aws_encryption(text)
        .ok_or_else(|| {
            ConfigError::invalid(
                path,
                "unknown encryption protocol (aes-128-cbc, aes-256-cbc, aes-128-gcm-16, aes-256-gcm-16)",
            )
        })
}

fn parse_integrity(el: &El<'_, '_>, name: &str) -> Result<IntegrityAlgorithm, ConfigError> {
    let (path, text) = el.text(name)?;
    aws_integrity(text).ok_or_else(|| {
        ConfigError::invalid(
            path,
            "unknown authentication protocol (sha1, sha2-256, sha2-384, sha2-512)",
        )
    })
}

/// An end's outside address, inside address and inside prefix length.
fn gateway(el: &El<'_, '_>) -> Result<(IpAddr, IpAddr, Prefix, String), ConfigError> {
    let outside = el.child("tunnel_outside_address")?;
    let outside: IpAddr = outside.parse("ip_address", "an IP address")?;
    let inside = el.child("tunnel_inside_address")?;
    let inside_el = &inside;
    let addr: IpAddr = inside_el.parse("ip_address", "an IP address")?;
    let len: u8 = if inside_el.opt_child("network_cidr").is_some() {
        inside_el.parse("network_cidr", "a prefix length")?
    } else {
        let (path, mask) = inside_el.text("network_mask")?;
        let mask: std::net::Ipv4Addr = mask
            .parse()
            .map_err(|_| ConfigError::invalid(&path, "not an IPv4 netmask"))?;
        let bits = u32::from(mask);
        if bits.leading_ones() + bits.trailing_zeros() != 32 {
            return Err(ConfigError::invalid(path, "not a contiguous netmask"));
        }
        bits.leading_ones() as u8
    };
    if len > 32 || !addr.is_ipv4() {
        return Err(ConfigError::invalid(
            &inside.path,
            "expected an IPv4 address with a prefix length up to 32",
        ));
    }
    Ok((outside, addr, Prefix::truncating(addr, len), inside.path))
}

/// (ASN, hold time) of an end's `bgp` element, if it has one.
fn bgp(el: &El<'_, '_>) -> Result<Option<(u32, Option<u16>)>, ConfigError> {
    let Some(b) = el.opt_child("bgp") else {
        return Ok(None);
    };
    let asn: u32 = b.parse("asn", "an ASN (1 to 4294967295)")?;
    let hold = match b.opt_child("hold_time") {
        Some(_) => Some(b.parse("hold_time", "a hold time in seconds")?),
        None => None,
    };
    Ok(Some((asn, hold)))
}

struct Imported {
    tunnel: TunnelConfig,
    /// (customer ASN, AWS ASN, hold time)
    bgp: Option<(u32, u32, u16)>,
    clear_df: Option<bool>,
    fragment_before_encrypt: Option<bool>,
    mss: Option<u16>,
}

fn tunnel(t: &El<'_, '_>) -> Result<Imported, ConfigError> {
    let cgw = t.child("customer_gateway")?;
    let vgw = t.child("vpn_gateway")?;
    let (cgw_out, cgw_in, cgw_net, cgw_in_path) = gateway(&cgw)?;
    let (vgw_out, vgw_in, vgw_net, vgw_in_path) = gateway(&vgw)?;
    if cgw_net != vgw_net {
        return Err(ConfigError::invalid(
            vgw_in_path,
            format!("{vgw_net} is not the customer gateway's inside network {cgw_net}"),
        ));
    }
    if cgw_net.v4_host(2).map(IpAddr::V4) != Some(cgw_in) {
        return Err(ConfigError::invalid(
            cgw_in_path + "/ip_address",
            format!("{cgw_in} is not .2 of {cgw_net} (the customer gateway's inside address)"),
        ));
    }
    if vgw_net.v4_host(1).map(IpAddr::V4) != Some(vgw_in) {
        return Err(ConfigError::invalid(
            vgw_in_path + "/ip_address",
            format!("{vgw_in} is not .1 of {vgw_net} (AWS's inside address)"),
        ));
    }

    let ike = t.child("ike")?;
    let ike_integ = parse_integrity(&ike, "authentication_protocol")?;
    let ike_enc = parse_encryption(&ike, "encryption_protocol")?;
    let ike_lifetime: u32 = ike.parse("lifetime", "a lifetime in seconds")?;
    let (path, g) = ike.text("perfect_forward_secrecy")?;
    let ike_group = parse_group(&path, g)?;
    let ike_version = match ike.opt_text("mode")? {
        Some((_, m)) if m.eq_ignore_ascii_case("main") => 1,
        Some((path, m)) if m.eq_ignore_ascii_case("aggressive") => {
            return Err(ConfigError::invalid(
                path,
                "IKEv1 aggressive mode is not supported (main mode only)",
            ))
        }
        _ => 2,
    };
    let (_, psk) = ike.text("pre_shared_key")?;

    let ipsec = t.child("ipsec")?;
    let (path, protocol) = ipsec.text("protocol")?;
    if !protocol.eq_ignore_ascii_case("esp") {
        return Err(ConfigError::invalid(path, "only esp is supported"));
    }
    let esp_enc = parse_encryption(&ipsec, "encryption_protocol")?;
    let esp_integ = if esp_enc.is_aead() {
        IntegrityAlgorithm::HmacSha256_128 // unused by an AEAD proposal
    } else {
        parse_integrity(&ipsec, "authentication_protocol")?
    };
    let child_lifetime: u32 = ipsec.parse("lifetime", "a lifetime in seconds")?;
    let pfs = match ipsec.opt_text("perfect_forward_secrecy")? {
        Some((path, g)) => Some(parse_group(&path, g)?),
        None => None,
    };
    if let Some((path, mode)) = ipsec.opt_text("mode")? {
        if !mode.eq_ignore_ascii_case("tunnel") {
            return Err(ConfigError::invalid(path, "only tunnel mode is supported"));
        }
    }
    let flag = |name: &str| -> Result<Option<bool>, ConfigError> {
        match ipsec.opt_text(name)? {
            Some((path, v)) => parse_bool(&path, v).map(Some),
            None => Ok(None),
        }
    };
    let clear_df = flag("clear_df_bit")?;
    let fragment_before_encrypt = flag("fragmentation_before_encryption")?;
    let mss = match ipsec.opt_child("tcp_mss_adjustment") {
        Some(_) => Some(ipsec.parse("tcp_mss_adjustment", "an MSS in bytes")?),
        None => None,
    };
    let mut dpd = DpdConfig::default();
    if let Some(d) = ipsec.opt_child("dead_peer_detection") {
        let interval: u32 = d.parse("interval", "an interval in seconds")?;
        let retries: u32 = d.parse("retries", "a retry count")?;
        dpd = DpdConfig {
            interval,
            timeout: interval.saturating_mul(retries),
            action: DpdAction::Clear,
        };
    }

    let bgp = match (bgp(&cgw)?, bgp(&vgw)?) {
        (Some((cgw_asn, cgw_hold)), Some((vgw_asn, vgw_hold))) => {
            Some((cgw_asn, vgw_asn, vgw_hold.or(cgw_hold).unwrap_or(30)))
        }
        (None, None) => None,
        (Some(_), None) => return Err(ConfigError::missing(vgw.path.clone() + "/bgp")),
        (None, Some(_)) => return Err(ConfigError::missing(cgw.path.clone() + "/bgp")),
    };

    let mut tunnel = TunnelConfig::new(cgw_out, vgw_out, cgw_net, Secret::from(psk));
    tunnel.ike_version = ike_version;
    tunnel.ike_proposals = vec![ike_proposal(ike_enc, ike_integ, ike_group)];
    tunnel.esp_proposals = vec![esp_proposal(esp_enc, esp_integ, pfs)];
    tunnel.ike_lifetime = ike_lifetime;
    tunnel.child_lifetime = child_lifetime;
    tunnel.dpd = dpd;
    Ok(Imported {
        tunnel,
        bgp,
        clear_df,
        fragment_before_encrypt,
        mss,
    })
}

impl ConnectionConfig {
    /// Imports AWS's `CustomerGatewayConfiguration` document (the `vpn_connection`
    /// XML of `DescribeVpnConnections` or the console's download) as the customer
    /// gateway's configuration.
    ///
    /// Per `ipsec_tunnel`: outside and inside addresses (inside /30 from `network_cidr`
    /// or `network_mask`), IKE algorithms → an IKE proposal (`sha1` + `aes-128-cbc` +
    /// `group2` → `aes128-sha1-modp1024`), lifetimes, mode (`main` → IKEv1, otherwise
    /// IKEv2), PSK, the ESP proposal with its PFS group, DPD interval × retries, and the
    /// connection's DF / fragmentation / MSS settings from the first tunnel. BGP ASNs
    /// and hold time come from the `bgp` elements; without them (or when
    /// `vpn_connection_attributes` says `NoBGPVPNConnection`) routing is static with no
    /// prefixes. Other values keep AWS's defaults.
    ///
    /// Hardened for hostile input: at most [`super::MAX_INPUT_BYTES`], DTDs (and so
    /// entity expansion) rejected, at most 20 000 nodes and 32 levels of nesting.
    /// Errors name the element path (`vpn_connection/ipsec_tunnel[1]/ike/lifetime`).
    /// The result is not validated: call [`ConnectionConfig::validate`].
    pub fn from_aws_xml(xml: &str) -> Result<ConnectionConfig, ConfigError> {
        check_size(xml.len())?;
        let options = ParsingOptions {
            allow_dtd: false,
            nodes_limit: MAX_NODES,
            ..ParsingOptions::default()
        };
        let doc = Document::parse_with_options(xml, options).map_err(|e| {
            let pos = e.pos();
            ConfigError::Syntax {
                format: "XML",
                location: format!(" at line {} column {}", pos.row, pos.col),
                message: xml_message(&e),
            }
        })?;
        let mut stack = vec![(doc.root(), 0usize)];
        while let Some((node, depth)) = stack.pop() {
            if depth > MAX_DEPTH {
                return Err(ConfigError::Syntax {
                    format: "XML",
                    location: String::new(),
                    message: format!("elements nested deeper than {MAX_DEPTH} levels"),
                });
            }
            stack.extend(node.children().map(|c| (c, depth + 1)));
        }
        let root = doc.root_element();
        if root.tag_name().name() != "vpn_connection" {
            return Err(ConfigError::missing("vpn_connection"));
        }
        let root = El {
            node: root,
            path: "vpn_connection".to_owned(),
        };
        let elements: Vec<_> = root
            .node
            .children()
            .filter(|c| c.is_element() && c.tag_name().name() == "ipsec_tunnel")
            .collect();
        if elements.len() != 2 {
            return Err(ConfigError::invalid(
                "vpn_connection/ipsec_tunnel",
                format!("expected 2 tunnels, found {}", elements.len()),
            ));
        }
        let paths = [
            "vpn_connection/ipsec_tunnel[0]",
            "vpn_connection/ipsec_tunnel[1]",
        ];
        let first = tunnel(&El {
            node: elements[0],
            path: paths[0].to_owned(),
        })?;
        let second = tunnel(&El {
            node: elements[1],
            path: paths[1].to_owned(),
        })?;

        let no_bgp = root
            .opt_child("vpn_connection_attributes")
            .and_then(|a| a.node.text())
            .is_some_and(|t| t.trim().eq_ignore_ascii_case("NoBGPVPNConnection"));
        let routing = match (first.bgp, second.bgp) {
            _ if no_bgp => Routing::Static {
                prefixes: Vec::new(),
            },
            (None, None) => Routing::Static {
                prefixes: Vec::new(),
            },
            (Some((local_asn, peer_asn, hold_time)), Some(b)) => {
                if (local_asn, peer_asn) != (b.0, b.1) {
                    return Err(ConfigError::invalid(
                        format!("{}/customer_gateway/bgp/asn", paths[1]),
                        "the two tunnels disagree on the BGP ASNs",
                    ));
                }
                Routing::Bgp {
                    local_asn,
                    peer_asn,
                    hold_time,
                    keepalive: (hold_time / 3).max(1),
                    advertised_prefixes: Vec::new(),
                    accepted_prefixes: Vec::new(),
                    max_prefixes_in: None,
                    max_prefixes_out: 100,
                }
            }
            (Some(_), None) => {
                return Err(ConfigError::missing(format!(
                    "{}/customer_gateway/bgp",
                    paths[1]
                )))
            }
            (None, Some(_)) => {
                return Err(ConfigError::missing(format!(
                    "{}/customer_gateway/bgp",
                    paths[0]
                )))
            }
        };
        let name = root
            .node
            .attribute("id")
            .filter(|id| {
                !id.is_empty()
                    && id.len() <= 64
                    && id
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
            })
            .unwrap_or("aws-vpn")
            .to_owned();
        let mut config = ConnectionConfig::new(name, [first.tunnel, second.tunnel], routing);
        config.role = Role::Cgw;
        config.failover = FailoverPolicy::default();
        if let Some(v) = first.clear_df {
            config.clear_df = v;
        }
        if let Some(v) = first.fragment_before_encrypt {
            config.fragment_before_encrypt = v;
        }
        if let Some(v) = first.mss {
            config.tcp_mss_clamp = v;
        }
        Ok(config)
    }
}

/// roxmltree's message without any document text it may quote.
fn xml_message(e: &roxmltree::Error) -> String {
    use roxmltree::Error as E;
    match e {
        E::DtdDetected => "DTDs are not accepted (entity expansion is refused)".to_owned(),
        E::NodesLimitReached => format!("more than {MAX_NODES} nodes"),
        E::EntityReferenceLoop(_) => "entity reference loop".to_owned(),
        _ => {
            // Messages name tags or entities, never text content; strip the trailing
            // position, which is reported separately.
            let full = e.to_string();
            match full.rfind(" at ") {
                Some(i) => full[..i].to_owned(),
                None => full,
            }
        }
    }
}
