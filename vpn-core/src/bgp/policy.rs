//! Import and export policy: the levers that steer traffic between the two tunnels.
//!
//! A [`Policy`] is an ordered list of [`Term`]s; the first term whose [`Match`] fits
//! decides (accept with its [`Actions`], or reject); no match falls through to the
//! policy's default. RFC 8212: an eBGP neighbour *without* a policy accepts and
//! announces nothing (the speaker enforces that; [`Policy::accept_all`] is the
//! explicit opt-in).

use crate::bgp::rib::IpPrefix;
use crate::bgp::wire::{AsPath, AsSegment, Community, PathAttributes, SegmentType};

/// One prefix-list line: `prefix` with optional `ge` / `le` length bounds. Without
/// bounds only the exact prefix matches; with them, any more-specific prefix of
/// `prefix` whose length lies in `[ge, le]` (defaults: the prefix's length and the
/// family's maximum).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrefixListEntry {
    pub prefix: IpPrefix,
    pub ge: Option<u8>,
    pub le: Option<u8>,
}

impl PrefixListEntry {
    pub fn exact(prefix: IpPrefix) -> Self {
        Self {
            prefix,
            ge: None,
            le: None,
        }
    }

    /// `prefix` and everything inside it up to `le` bits.
    pub fn orlonger(prefix: IpPrefix, le: u8) -> Self {
        Self {
            prefix,
            ge: None,
            le: Some(le),
        }
    }

    pub fn matches(&self, p: &IpPrefix) -> bool {
        if !self.prefix.covers(p) {
            return false;
        }
        if self.ge.is_none() && self.le.is_none() {
            return p.len() == self.prefix.len();
        }
        let max = match p {
            IpPrefix::V4(_) => 32,
            IpPrefix::V6(_) => 128,
        };
        let lo = self.ge.unwrap_or(self.prefix.len());
        let hi = self.le.unwrap_or(max);
        (lo..=hi).contains(&p.len())
    }
}

/// Matches when any entry matches.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PrefixList {
    pub entries: Vec<PrefixListEntry>,
}

impl PrefixList {
    pub fn new(entries: Vec<PrefixListEntry>) -> Self {
        Self { entries }
    }

    pub fn matches(&self, p: &IpPrefix) -> bool {
        self.entries.iter().any(|e| e.matches(p))
    }
}

/// Conditions of a term; all given ones must hold (an empty match matches all).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Match {
    pub prefix_list: Option<PrefixList>,
    /// The route carries this community.
    pub community: Option<Community>,
    /// The AS_PATH contains this AS.
    pub as_path_contains: Option<u32>,
}

impl Match {
    fn matches(&self, p: &IpPrefix, a: &PathAttributes) -> bool {
        self.prefix_list.as_ref().is_none_or(|l| l.matches(p))
            && self
                .community
                .is_none_or(|c| a.communities.as_ref().is_some_and(|cs| cs.contains(&c)))
            && self.as_path_contains.is_none_or(|asn| {
                a.as_path
                    .as_ref()
                    .is_some_and(|path| path.segments.iter().any(|s| s.asns.contains(&asn)))
            })
    }
}

/// Attribute changes of an accepting term.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Actions {
    pub local_pref: Option<u32>,
    pub med: Option<u32>,
    /// Prepend our own AS this many times (export: on top of the usual one).
    pub prepend: u8,
    pub add_communities: Vec<Community>,
    pub remove_communities: Vec<Community>,
}

impl Actions {
    pub fn is_empty(&self) -> bool {
        *self == Actions::default()
    }

    /// Applies the changes; `own_asn` is what prepending adds.
    pub fn apply(&self, a: &mut PathAttributes, own_asn: u32) {
        if let Some(lp) = self.local_pref {
            a.local_pref = Some(lp);
        }
        if let Some(med) = self.med {
            a.med = Some(med);
        }
        if self.prepend > 0 {
            prepend(a, own_asn, usize::from(self.prepend));
        }
        if !self.remove_communities.is_empty() || !self.add_communities.is_empty() {
            let mut cs = a.communities.take().unwrap_or_default();
            cs.retain(|c| !self.remove_communities.contains(c));
            for c in &self.add_communities {
                if !cs.contains(c) {
                    cs.push(*c);
                }
            }
            a.communities = (!cs.is_empty()).then_some(cs);
        }
    }
}

/// Puts `asn` `n` times at the front of the AS_PATH.
pub fn prepend(a: &mut PathAttributes, asn: u32, n: usize) {
    let path = a.as_path.get_or_insert_with(AsPath::default);
    match path.segments.first_mut() {
        Some(seg) if seg.kind == SegmentType::AS_SEQUENCE => {
            seg.asns.splice(0..0, std::iter::repeat_n(asn, n));
        }
        _ => path.segments.insert(
            0,
            AsSegment {
                kind: SegmentType::AS_SEQUENCE,
                asns: vec![asn; n],
            },
        ),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Accept,
    Reject,
}

/// One policy statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Term {
    pub matches: Match,
    pub verdict: Verdict,
    pub actions: Actions,
}

/// Outcome of [`Policy::evaluate`]: the route is rejected, or accepted by a term
/// (its index, so a caller can reuse the rewritten attributes for every prefix that
/// hit the same term) or by the default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Decision {
    Reject,
    Accept(Option<usize>),
}

/// An ordered list of terms with a default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub terms: Vec<Term>,
    pub default: Verdict,
}

impl Policy {
    pub fn accept_all() -> Self {
        Self {
            terms: Vec::new(),
            default: Verdict::Accept,
        }
    }

    pub fn reject_all() -> Self {
        Self {
            terms: Vec::new(),
            default: Verdict::Reject,
        }
    }

    /// Accept what `list` matches (with `actions`), reject the rest.
    pub fn prefix_list(list: PrefixList, actions: Actions) -> Self {
        Self {
            terms: vec![Term {
                matches: Match {
                    prefix_list: Some(list),
                    ..Match::default()
                },
                verdict: Verdict::Accept,
                actions,
            }],
            default: Verdict::Reject,
        }
    }

    /// Accept everything with `actions`.
    pub fn accept_with(actions: Actions) -> Self {
        Self {
            terms: vec![Term {
                matches: Match::default(),
                verdict: Verdict::Accept,
                actions,
            }],
            default: Verdict::Reject,
        }
    }

    pub fn evaluate(&self, prefix: &IpPrefix, attrs: &PathAttributes) -> Decision {
        for (i, t) in self.terms.iter().enumerate() {
            if t.matches.matches(prefix, attrs) {
                return match t.verdict {
                    Verdict::Accept => Decision::Accept(Some(i)),
                    Verdict::Reject => Decision::Reject,
                };
            }
        }
        match self.default {
            Verdict::Accept => Decision::Accept(None),
            Verdict::Reject => Decision::Reject,
        }
    }

    /// The actions of an accepting decision (`None`: nothing to change).
    pub fn actions(&self, d: Decision) -> Option<&Actions> {
        match d {
            Decision::Accept(Some(i)) => self.terms.get(i).map(|t| &t.actions),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> IpPrefix {
        IpPrefix::parse(s).unwrap()
    }

    #[test]
    fn prefix_list_ge_le() {
        let exact = PrefixListEntry::exact(p("10.0.0.0/8"));
        assert!(exact.matches(&p("10.0.0.0/8")));
        assert!(!exact.matches(&p("10.1.0.0/16")));
        let range = PrefixListEntry {
            prefix: p("10.0.0.0/8"),
            ge: Some(16),
            le: Some(24),
        };
        assert!(!range.matches(&p("10.0.0.0/8")));
        assert!(range.matches(&p("10.1.0.0/16")));
        assert!(range.matches(&p("10.1.2.0/24")));
        assert!(!range.matches(&p("10.1.2.128/25")));
        assert!(!range.matches(&p("11.1.0.0/16")));
        let le = PrefixListEntry::orlonger(p("2001:db8::/32"), 48);
        assert!(le.matches(&p("2001:db8::/32")) && le.matches(&p("2001:db8:1::/48")));
        assert!(!le.matches(&p("2001:db8:1:1::/64")));
        assert!(!le.matches(&p("10.0.0.0/8")));
    }

    #[test]
    fn actions_rewrite_attributes() {
        let mut a = PathAttributes {
            as_path: Some(AsPath::from_sequence(vec![64512])),
            communities: Some(vec![Community::new(1, 1)]),
            ..Default::default()
        };
        Actions {
            local_pref: Some(200),
            med: Some(5),
            prepend: 2,
            add_communities: vec![Community::new(2, 2)],
            remove_communities: vec![Community::new(1, 1)],
        }
        .apply(&mut a, 65000);
        assert_eq!(a.local_pref, Some(200));
        assert_eq!(a.med, Some(5));
        assert_eq!(
            a.as_path,
            Some(AsPath::from_sequence(vec![65000, 65000, 64512]))
        );
        assert_eq!(a.communities, Some(vec![Community::new(2, 2)]));
    }
}
