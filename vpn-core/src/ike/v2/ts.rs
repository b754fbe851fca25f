//! Traffic selectors: our prefixes as TS payloads, and the responder's
//! narrowing (RFC 7296 §2.9): the intersection of what the peer offers and
//! what we are configured for.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::config::Prefix;
use crate::ike::v2::wire::{TrafficSelector, TsPayload, TsRange};

/// An inclusive address range of one family, protocol and port range.
pub type Selector = TsRange;

/// The first and last address of a prefix.
pub fn prefix_bounds(p: &Prefix) -> (IpAddr, IpAddr) {
    match p.addr() {
        IpAddr::V4(a) => {
            let host = u32::MAX.checked_shr(u32::from(p.len())).unwrap_or(0);
            (a.into(), Ipv4Addr::from(u32::from(a) | host).into())
        }
        IpAddr::V6(a) => {
            let host = u128::MAX.checked_shr(u32::from(p.len())).unwrap_or(0);
            (a.into(), Ipv6Addr::from(u128::from(a) | host).into())
        }
    }
}

/// A prefix as a selector (all protocols and ports).
pub fn from_prefix(p: &Prefix) -> Selector {
    let (start, end) = prefix_bounds(p);
    TsRange::addresses(start, end)
}

pub fn from_prefixes(ps: &[Prefix]) -> Vec<Selector> {
    ps.iter().map(from_prefix).collect()
}

pub fn to_payload(sels: &[Selector]) -> TsPayload {
    TsPayload {
        selectors: sels.iter().copied().map(TrafficSelector::Range).collect(),
    }
}

fn key(a: IpAddr) -> (u8, u128) {
    match a {
        IpAddr::V4(v) => (4, u128::from(u32::from(v))),
        IpAddr::V6(v) => (6, u128::from(v)),
    }
}

/// The intersection of two selectors, if they overlap.
pub fn intersect(a: &Selector, b: &Selector) -> Option<Selector> {
    if a.start_address.is_ipv4() != b.start_address.is_ipv4() {
        return None;
    }
    let proto = match (a.ip_protocol, b.ip_protocol) {
        (0, p) | (p, 0) => p,
        (p, q) if p == q => p,
        _ => return None,
    };
    let start_port = a.start_port.max(b.start_port);
    let end_port = a.end_port.min(b.end_port);
    let start = if key(a.start_address) >= key(b.start_address) {
        a.start_address
    } else {
        b.start_address
    };
    let end = if key(a.end_address) <= key(b.end_address) {
        a.end_address
    } else {
        b.end_address
    };
    (start_port <= end_port && key(start) <= key(end)).then_some(TsRange {
        ip_protocol: proto,
        start_port,
        end_port,
        start_address: start,
        end_address: end,
    })
}

/// Narrows an offer to our configuration; empty means TS_UNACCEPTABLE.
pub fn narrow(offered: &TsPayload, ours: &[Selector]) -> Vec<Selector> {
    let mut out = Vec::new();
    for o in &offered.selectors {
        let TrafficSelector::Range(o) = o else {
            continue;
        };
        for s in ours {
            if let Some(x) = intersect(o, s) {
                if !out.contains(&x) {
                    out.push(x);
                }
            }
        }
    }
    out
}

/// The address ranges of a reply (the initiator installs what the responder narrowed to).
pub fn ranges(payload: &TsPayload) -> Vec<Selector> {
    payload
        .selectors
        .iter()
        .filter_map(|s| match s {
            TrafficSelector::Range(r) => Some(*r),
            TrafficSelector::Other { .. } => None,
        })
        .collect()
}

/// Whether `addr` lies in the selector's address range.
pub fn contains(s: &Selector, addr: IpAddr) -> bool {
    addr.is_ipv4() == s.start_address.is_ipv4()
        && key(s.start_address) <= key(addr)
        && key(addr) <= key(s.end_address)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Prefix {
        s.parse().unwrap()
    }

    #[test]
    fn any_narrows_to_configured() {
        let any = to_payload(&[from_prefix(&p("0.0.0.0/0"))]);
        let ours = [from_prefix(&p("10.1.0.0/16"))];
        let n = narrow(&any, &ours);
        assert_eq!(n, vec![from_prefix(&p("10.1.0.0/16"))]);
        assert!(contains(&n[0], "10.1.255.255".parse().unwrap()));
        assert!(!contains(&n[0], "10.2.0.0".parse().unwrap()));
    }

    #[test]
    fn disjoint_is_empty() {
        let offer = to_payload(&[from_prefix(&p("10.9.0.0/16"))]);
        assert!(narrow(&offer, &[from_prefix(&p("10.1.0.0/16"))]).is_empty());
        let v6 = to_payload(&[from_prefix(&p("::/0"))]);
        assert!(narrow(&v6, &[from_prefix(&p("0.0.0.0/0"))]).is_empty());
    }
}
