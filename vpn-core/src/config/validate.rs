//! [`ConnectionConfig::validate`]: AWS's tunnel option rules, with field paths.

use std::net::{IpAddr, Ipv4Addr};

use super::proposal;
use super::{ConfigError, ConnectionConfig, FailoverPolicy, Prefix, Role, Routing, StartupAction};

/// Inside /30s that AWS reserves and refuses for tunnels.
pub const RESERVED_INSIDE_CIDRS: [&str; 7] = [
    "169.254.0.0/30",
    "169.254.1.0/30",
    "169.254.2.0/30",
    "169.254.3.0/30",
    "169.254.4.0/30",
    "169.254.5.0/30",
    "169.254.169.252/30",
];

/// AWS's phase 1 lifetime bounds, in seconds.
pub const PHASE1_LIFETIME: (u32, u32) = (900, 28800);
/// AWS's phase 2 lifetime bounds, in seconds.
pub const PHASE2_LIFETIME: (u32, u32) = (900, 3600);
/// AWS's replay window bounds, in packets.
pub const REPLAY_WINDOW: (u32, u32) = (64, 2048);
/// AWS's smallest DPD timeout, in seconds.
pub const MIN_DPD_TIMEOUT: u32 = 30;
/// AWS's smallest rekey margin, in seconds (the largest is half the phase 2 lifetime).
pub const MIN_REKEY_MARGIN: u32 = 60;

/// The 4-byte ASN placeholder of RFC 6793, never a real peer's ASN.
const AS_TRANS: u32 = 23456;

struct Errors(Vec<ConfigError>);

impl Errors {
    fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(ConfigError::invalid(field, message));
    }

    fn range(&mut self, field: String, value: u64, (min, max): (u64, u64), unit: &str) {
        if value < min || value > max {
            self.push(
                field,
                format!("{value}{unit} is outside {min}{unit} to {max}{unit}"),
            );
        }
    }
}

/// Checks a pre-shared key against AWS's rule. The message never quotes the key.
pub(crate) fn check_psk(psk: &str) -> Result<(), String> {
    let len = psk.chars().count();
    if !(8..=64).contains(&len) {
        return Err(format!(
            "must be 8 to 64 characters long (it has {len}); the key is not shown"
        ));
    }
    if !psk
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '_')
    {
        return Err(
            "may contain only letters, digits, '.' and '_'; the key is not shown".to_owned(),
        );
    }
    if psk.starts_with('0') {
        return Err("must not start with '0'; the key is not shown".to_owned());
    }
    Ok(())
}

/// Checks a tunnel inside CIDR against AWS's rule.
pub(crate) fn check_inside_cidr(cidr: &Prefix) -> Result<(), String> {
    let link_local = Prefix::truncating(IpAddr::V4(Ipv4Addr::new(169, 254, 0, 0)), 16);
    if !cidr.addr().is_ipv4() || cidr.len() != 30 || !link_local.covers(cidr) {
        return Err(format!(
            "{cidr} is not a /30 inside 169.254.0.0/16 (AWS's rule for tunnel inside CIDRs)"
        ));
    }
    if RESERVED_INSIDE_CIDRS
        .iter()
        .any(|r| r.parse::<Prefix>().is_ok_and(|r| r == *cidr))
    {
        return Err(format!("{cidr} is reserved by AWS and cannot be used"));
    }
    Ok(())
}

fn check_outside(errors: &mut Errors, field: String, addr: IpAddr) {
    match addr {
        IpAddr::V4(a) => {
            if a.is_unspecified() || a.is_multicast() || a.is_broadcast() || a.is_loopback() {
                errors.push(field, format!("{a} is not a usable unicast address"));
            }
        }
        IpAddr::V6(_) => errors.push(field, "tunnel outside addresses must be IPv4"),
    }
}

fn check_asn(errors: &mut Errors, field: &str, asn: u32) {
    if asn == 0 {
        errors.push(field, "ASN 0 is reserved; use 1 to 4294967295");
    } else if asn == AS_TRANS {
        errors.push(field, "ASN 23456 is AS_TRANS (RFC 6793), not a usable ASN");
    }
}

impl ConnectionConfig {
    /// Checks every rule and returns all problems, each naming its field
    /// (`tunnels[1].psk`, `routing.peer_asn`). Messages never contain a pre-shared key.
    ///
    /// Rules (AWS's where AWS has one):
    /// - `name`: 1 to 64 of `[A-Za-z0-9_.-]`;
    /// - outside addresses IPv4 unicast, local ≠ remote; the two tunnels' AWS-side
    ///   outside addresses differ, and so do their inside CIDRs;
    /// - `inside_cidr`: a /30 in 169.254.0.0/16, not one of AWS's reserved blocks;
    /// - `psk`: 8 to 64 of letters, digits, `.`, `_`, not starting with `0`;
    /// - `ike_version` 1 or 2; every proposal made of known algorithms with the parts it
    ///   needs; IKEv1: no AEAD for the IKE SA, one PFS group per ESP proposal, and
    ///   `startup_action = "start"` only with IKEv2;
    /// - lifetimes: phase 1 900–28800 s, phase 2 900–3600 s and shorter than phase 1;
    ///   rekey margin 60 s to half the phase 2 lifetime; fuzz 0–100 %;
    /// - replay window 64–2048; DPD timeout ≥ 30 s and interval between 1 s and the timeout;
    /// - BGP: ASNs 1–4294967295 (not 23456), local ≠ peer, hold time 0 or ≥ 3 s,
    ///   keepalive below the hold time, no more advertised prefixes than `max_prefixes_out`;
    /// - `failover.preferred_tunnel` 0 or 1; MTU 576–1500; MSS 536 to MTU − 40.
    pub fn validate(&self) -> Result<(), Vec<ConfigError>> {
        let mut e = Errors(Vec::new());
        if self.name.is_empty()
            || self.name.len() > 64
            || !self
                .name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
        {
            e.push("name", "must be 1 to 64 of letters, digits, '_', '.', '-'");
        }
        for (i, t) in self.tunnels.iter().enumerate() {
            self.validate_tunnel(&mut e, i, t);
        }
        let [a, b] = &self.tunnels;
        let (aws_a, aws_b) = match self.role {
            Role::Cgw => (a.remote_outside_address, b.remote_outside_address),
            Role::Vgw => (a.local_outside_address, b.local_outside_address),
        };
        if aws_a == aws_b {
            let side = match self.role {
                Role::Cgw => "remote",
                Role::Vgw => "local",
            };
            e.push(
                format!("tunnels[1].{side}_outside_address"),
                format!("{aws_b} is tunnel 0's too: AWS's two tunnel endpoints are distinct"),
            );
        }
        if a.inside_cidr == b.inside_cidr {
            e.push(
                "tunnels[1].inside_cidr",
                format!(
                    "{} is tunnel 0's too: inside CIDRs must differ",
                    b.inside_cidr
                ),
            );
        }
        self.validate_routing(&mut e);
        if let FailoverPolicy::ActiveStandby {
            preferred_tunnel, ..
        } = self.failover
        {
            if preferred_tunnel > 1 {
                e.push(
                    "failover.preferred_tunnel",
                    format!("{preferred_tunnel} is not a tunnel index (0 or 1)"),
                );
            }
        }
        e.range("mtu".into(), self.mtu.into(), (576, 1500), "");
        let max_mss = u64::from(self.mtu.saturating_sub(40)).max(536);
        e.range(
            "tcp_mss_clamp".into(),
            self.tcp_mss_clamp.into(),
            (536, max_mss),
            "",
        );
        if e.0.is_empty() {
            Ok(())
        } else {
            Err(e.0)
        }
    }

    fn validate_tunnel(&self, e: &mut Errors, i: usize, t: &super::TunnelConfig) {
        let f = |name: &str| format!("tunnels[{i}].{name}");
        check_outside(e, f("local_outside_address"), t.local_outside_address);
        check_outside(e, f("remote_outside_address"), t.remote_outside_address);
        if t.local_outside_address == t.remote_outside_address {
            e.push(
                f("remote_outside_address"),
                "equals the local outside address",
            );
        }
        if let Err(m) = check_inside_cidr(&t.inside_cidr) {
            e.push(f("inside_cidr"), m);
        }
        if let Err(m) = check_psk(t.psk.expose()) {
            e.push(f("psk"), m);
        }
        let v = t.ike_version;
        if v != 1 && v != 2 {
            e.push(f("ike_version"), format!("{v} is not 1 or 2"));
        }
        if t.ike_proposals.is_empty() {
            e.push(f("ike_proposals"), "at least one proposal is needed");
        }
        for (j, p) in t.ike_proposals.iter().enumerate() {
            if let Err(m) = proposal::check_ike(p, v) {
                e.push(format!("tunnels[{i}].ike_proposals[{j}]"), m);
            }
        }
        if t.esp_proposals.is_empty() {
            e.push(f("esp_proposals"), "at least one proposal is needed");
        }
        for (j, p) in t.esp_proposals.iter().enumerate() {
            if let Err(m) = proposal::check_esp(p, v) {
                e.push(format!("tunnels[{i}].esp_proposals[{j}]"), m);
            }
        }
        let wide = |(a, b): (u32, u32)| (u64::from(a), u64::from(b));
        e.range(
            f("ike_lifetime"),
            t.ike_lifetime.into(),
            wide(PHASE1_LIFETIME),
            " s",
        );
        e.range(
            f("child_lifetime"),
            t.child_lifetime.into(),
            wide(PHASE2_LIFETIME),
            " s",
        );
        if t.child_lifetime >= t.ike_lifetime {
            e.push(
                f("child_lifetime"),
                format!(
                    "{} s must be shorter than ike_lifetime ({} s)",
                    t.child_lifetime, t.ike_lifetime
                ),
            );
        }
        let max_margin = (t.child_lifetime / 2).max(MIN_REKEY_MARGIN);
        if t.rekey_margin < MIN_REKEY_MARGIN || t.rekey_margin > max_margin {
            e.push(
                f("rekey_margin"),
                format!(
                    "{} s is outside {MIN_REKEY_MARGIN} s to half of child_lifetime ({} s)",
                    t.rekey_margin,
                    t.child_lifetime / 2
                ),
            );
        }
        e.range(
            f("rekey_fuzz_percent"),
            t.rekey_fuzz_percent.into(),
            (0, 100),
            " %",
        );
        e.range(
            f("replay_window"),
            t.replay_window.into(),
            wide(REPLAY_WINDOW),
            "",
        );
        if t.dpd.timeout < MIN_DPD_TIMEOUT {
            e.push(
                f("dpd.timeout"),
                format!("{} s is below AWS's minimum of 30 s", t.dpd.timeout),
            );
        }
        if t.dpd.interval == 0 || t.dpd.interval >= t.dpd.timeout {
            e.push(
                f("dpd.interval"),
                format!(
                    "{} s must be at least 1 s and below dpd.timeout ({} s)",
                    t.dpd.interval, t.dpd.timeout
                ),
            );
        }
        if t.startup_action == StartupAction::Start && v == 1 {
            e.push(f("startup_action"), "\"start\" (AWS initiates) needs IKEv2");
        }
        for (name, id) in [
            ("local_identity", &t.local_identity),
            ("remote_identity", &t.remote_identity),
        ] {
            if let Some(id) = id {
                if id.is_empty() || id.len() > 255 || id.chars().any(|c| c.is_control()) {
                    e.push(f(name), "must be 1 to 255 printable characters");
                }
            }
        }
    }

    fn validate_routing(&self, e: &mut Errors) {
        if let Routing::Bgp {
            local_asn,
            peer_asn,
            hold_time,
            keepalive,
            advertised_prefixes,
            max_prefixes_out,
            ..
        } = &self.routing
        {
            check_asn(e, "routing.local_asn", *local_asn);
            check_asn(e, "routing.peer_asn", *peer_asn);
            if local_asn == peer_asn {
                e.push(
                    "routing.peer_asn",
                    format!("{peer_asn} equals local_asn: the tunnels run eBGP"),
                );
            }
            if (1..3).contains(hold_time) {
                e.push(
                    "routing.hold_time",
                    format!("{hold_time} s: must be 0 or at least 3 s (RFC 4271)"),
                );
            }
            if *hold_time > 0 && (*keepalive == 0 || keepalive >= hold_time) {
                e.push(
                    "routing.keepalive",
                    format!(
                        "{keepalive} s must be at least 1 s and below hold_time ({hold_time} s)"
                    ),
                );
            }
            if advertised_prefixes.len() > *max_prefixes_out as usize {
                e.push(
                    "routing.advertised_prefixes",
                    format!(
                        "{} prefixes, more than max_prefixes_out ({max_prefixes_out})",
                        advertised_prefixes.len()
                    ),
                );
            }
        }
    }
}
