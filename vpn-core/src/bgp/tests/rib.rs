//! Best-path selection, one test per tie-breaker, ECMP, and a model-based property
//! test of the RIB's bookkeeping.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use proptest::prelude::*;

use crate::bgp::rib::{IpPrefix, KeyedState, Rib, Selected, SourceId, SourceInfo, LOCAL};
use crate::bgp::wire::{AsPath, AsSegment, Origin, PathAttributes, SegmentType};

fn p(s: &str) -> IpPrefix {
    IpPrefix::parse(s).unwrap()
}

fn info(ebgp: bool, rid: [u8; 4], addr: [u8; 4]) -> SourceInfo {
    SourceInfo {
        ebgp,
        router_id: Ipv4Addr::from(rid),
        peer_addr: IpAddr::V4(Ipv4Addr::from(addr)),
    }
}

/// Sources 0..=3: eBGP 1.1.1.1, eBGP 2.2.2.2, iBGP 0.0.0.3, eBGP 1.1.1.1 (other address).
fn rib(max_paths: usize) -> Rib {
    let mut r = Rib::new(KeyedState::new(1, 2), max_paths);
    r.set_source(0, info(true, [1, 1, 1, 1], [169, 254, 0, 1]));
    r.set_source(1, info(true, [2, 2, 2, 2], [169, 254, 0, 2]));
    r.set_source(2, info(false, [0, 0, 0, 3], [169, 254, 0, 3]));
    r.set_source(3, info(true, [1, 1, 1, 1], [169, 254, 0, 0]));
    r
}

fn attrs(path: &[u32]) -> PathAttributes {
    PathAttributes {
        origin: Some(Origin::Igp),
        as_path: Some(AsPath::from_sequence(path.to_vec())),
        next_hop: Some(Ipv4Addr::new(192, 0, 2, 1)),
        ..Default::default()
    }
}

fn add(r: &mut Rib, src: SourceId, a: &PathAttributes) {
    let id = r.attrs.intern(a);
    r.attrs.retain(id);
    r.upsert(p("10.0.0.0/8"), src, id, Some(id));
}

fn best_src(r: &Rib) -> SourceId {
    r.best(&p("10.0.0.0/8")).unwrap().source
}

#[test]
fn highest_local_pref_beats_shorter_path() {
    let mut r = rib(1);
    add(&mut r, 0, &attrs(&[1]));
    add(
        &mut r,
        1,
        &PathAttributes {
            local_pref: Some(200),
            ..attrs(&[1, 2, 3])
        },
    );
    assert_eq!(best_src(&r), 1);
}

#[test]
fn shortest_as_path_and_as_set_counts_one() {
    let mut r = rib(1);
    add(&mut r, 0, &attrs(&[1, 2, 3]));
    let mut set_path = attrs(&[1]);
    set_path.as_path.as_mut().unwrap().segments.push(AsSegment {
        kind: SegmentType::AS_SET,
        asns: vec![5, 6, 7, 8],
    });
    add(&mut r, 1, &set_path);
    assert_eq!(best_src(&r), 1, "[1 {{5 6 7 8}}] has length 2");
}

#[test]
fn lowest_origin() {
    let mut r = rib(1);
    add(
        &mut r,
        0,
        &PathAttributes {
            origin: Some(Origin::Incomplete),
            ..attrs(&[1])
        },
    );
    add(
        &mut r,
        1,
        &PathAttributes {
            origin: Some(Origin::Egp),
            ..attrs(&[1])
        },
    );
    assert_eq!(best_src(&r), 1);
}

#[test]
fn lowest_med_only_within_the_same_neighbour_as() {
    let mut r = rib(1);
    let med = |m: u32, path: &[u32]| PathAttributes {
        med: Some(m),
        ..attrs(path)
    };
    // Same neighbour AS 64512: MED 10 beats 50 although source 0 has the lower ID.
    add(&mut r, 0, &med(50, &[64512]));
    add(&mut r, 1, &med(10, &[64512]));
    assert_eq!(best_src(&r), 1);
    // Different neighbour AS: MED is not compared; the router ID decides.
    let mut r = rib(1);
    add(&mut r, 0, &med(50, &[64512]));
    add(&mut r, 1, &med(10, &[64513]));
    assert_eq!(best_src(&r), 0);
}

#[test]
fn ebgp_over_ibgp() {
    let mut r = rib(1);
    add(&mut r, 2, &attrs(&[1])); // iBGP, lowest router ID
    add(&mut r, 1, &attrs(&[1]));
    assert_eq!(best_src(&r), 1);
}

#[test]
fn lowest_router_id() {
    let mut r = rib(1);
    add(&mut r, 1, &attrs(&[1]));
    add(&mut r, 0, &attrs(&[1]));
    assert_eq!(best_src(&r), 0);
}

#[test]
fn lowest_peer_address_when_router_ids_tie() {
    let mut r = rib(1);
    add(&mut r, 0, &attrs(&[1]));
    add(&mut r, 3, &attrs(&[1])); // same ID 1.1.1.1, address .0
    assert_eq!(best_src(&r), 3);
}

#[test]
fn rejected_paths_are_not_eligible() {
    let mut r = rib(1);
    let a = r.attrs.intern(&attrs(&[1]));
    r.upsert(p("10.0.0.0/8"), 0, a, None);
    assert!(r.best(&p("10.0.0.0/8")).is_none());
    assert_eq!(r.loc_rib_len(), 0);
    assert_eq!(r.paths_of(&p("10.0.0.0/8")).unwrap().len(), 1);
}

#[test]
fn ecmp_set_of_equal_best_paths() {
    let mut r = rib(4);
    add(&mut r, 1, &attrs(&[1]));
    add(&mut r, 0, &attrs(&[1]));
    add(&mut r, 3, &attrs(&[1]));
    add(&mut r, 2, &attrs(&[1])); // iBGP: not in the set
    let set: Vec<SourceId> = r
        .multipath(&p("10.0.0.0/8"))
        .iter()
        .map(|p| p.source)
        .collect();
    assert_eq!(set, vec![3, 0, 1]);
    assert_eq!(r.best(&p("10.0.0.0/8")).unwrap().multipath, 3);
    // A better path collapses the set.
    add(
        &mut r,
        1,
        &PathAttributes {
            local_pref: Some(300),
            ..attrs(&[1])
        },
    );
    assert_eq!(r.multipath(&p("10.0.0.0/8")).len(), 1);
    // max_paths bounds the set.
    let mut r = rib(2);
    for s in [0, 1, 3] {
        add(&mut r, s, &attrs(&[1]));
    }
    assert_eq!(r.multipath(&p("10.0.0.0/8")).len(), 2);
}

#[test]
fn local_routes_win_ties_and_memory_is_returned() {
    let mut r = rib(1);
    add(&mut r, 0, &attrs(&[1]));
    let local = PathAttributes {
        origin: Some(Origin::Igp),
        as_path: Some(AsPath::default()),
        ..Default::default()
    };
    add(&mut r, LOCAL, &local);
    assert_eq!(best_src(&r), LOCAL);
    r.remove(p("10.0.0.0/8"), LOCAL);
    r.remove(p("10.0.0.0/8"), 0);
    assert!(r.attrs.is_empty());
    assert_eq!(r.loc_rib_len(), 0);
}

#[test]
fn table_entries_stay_compact() {
    // A prefix with one candidate: 8-byte key + 16-byte value, no other allocation.
    assert_eq!(std::mem::size_of::<crate::bgp::rib::Path>(), 12);
    assert!(std::mem::size_of::<(crate::bgp::wire::Ipv4Prefix, [u8; 16])>() <= 24);
}

// ---- model-based property test ----

#[derive(Debug, Clone)]
enum Op {
    Upsert {
        src: SourceId,
        prefix: usize,
        attr: usize,
        rejected: bool,
    },
    Remove {
        src: SourceId,
        prefix: usize,
    },
    RemoveSource {
        src: SourceId,
    },
}

fn model_attrs() -> Vec<PathAttributes> {
    vec![
        attrs(&[64512]),
        PathAttributes {
            med: Some(5),
            ..attrs(&[64512])
        },
        PathAttributes {
            med: Some(1),
            ..attrs(&[64513])
        },
        attrs(&[64512, 1]),
        PathAttributes {
            local_pref: Some(200),
            ..attrs(&[64512, 1, 2])
        },
        PathAttributes {
            origin: Some(Origin::Incomplete),
            ..attrs(&[64513])
        },
    ]
}

const PREFIXES: [&str; 5] = [
    "10.0.0.0/8",
    "10.1.0.0/16",
    "192.0.2.0/24",
    "2001:db8::/32",
    "2001:db8:1::/48",
];

fn arb_op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (0u16..4, 0usize..5, 0usize..6, prop::bool::weighted(0.15)).prop_map(
            |(src, prefix, attr, rejected)| Op::Upsert { src, prefix, attr, rejected }
        ),
        3 => (0u16..4, 0usize..5).prop_map(|(src, prefix)| Op::Remove { src, prefix }),
        1 => (0u16..4).prop_map(|src| Op::RemoveSource { src }),
    ]
}

/// Straightforward re-statement of the decision process over a vector.
fn naive_best(cands: &[(SourceId, PathAttributes)], r: &Rib) -> Option<(SourceId, usize)> {
    let mut c: Vec<(SourceId, &PathAttributes)> = cands.iter().map(|(s, a)| (*s, a)).collect();
    if c.is_empty() {
        return None;
    }
    let lp = |a: &PathAttributes| a.local_pref.unwrap_or(100);
    let max_lp = c.iter().map(|(_, a)| lp(a)).max()?;
    c.retain(|(_, a)| lp(a) == max_lp);
    let len = |a: &PathAttributes| a.as_path.as_ref().map_or(0, |p| p.path_len());
    let min_len = c.iter().map(|(_, a)| len(a)).min()?;
    c.retain(|(_, a)| len(a) == min_len);
    let org = |a: &PathAttributes| a.origin.map_or(2, |o| o as u8);
    let min_org = c.iter().map(|(_, a)| org(a)).min()?;
    c.retain(|(_, a)| org(a) == min_org);
    let nas = |a: &PathAttributes| a.as_path.as_ref().and_then(|p| p.first_asn());
    let med = |a: &PathAttributes| a.med.unwrap_or(0);
    let snapshot = c.clone();
    c.retain(|(_, a)| {
        !snapshot
            .iter()
            .any(|(_, b)| nas(b) == nas(a) && med(b) < med(a))
    });
    if c.iter().any(|(s, _)| r.source_info(*s).ebgp) {
        c.retain(|(s, _)| r.source_info(*s).ebgp);
    }
    let n = c.len();
    c.sort_by_key(|(s, _)| (r.source_info(*s).router_id, r.source_info(*s).peer_addr));
    Some((c[0].0, n))
}

proptest! {
    #[test]
    fn prop_rib_matches_naive_model(ops in prop::collection::vec(arb_op(), 1..80)) {
        let pool = model_attrs();
        let mut r = rib(8);
        // Model: prefix -> source -> (attr index, rejected).
        let mut model: BTreeMap<usize, BTreeMap<SourceId, (usize, bool)>> = BTreeMap::new();
        // Forwarding table driven only by the deltas.
        let mut fib: BTreeMap<IpPrefix, Selected> = BTreeMap::new();
        let apply = |fib: &mut BTreeMap<IpPrefix, Selected>, d: crate::bgp::rib::Delta| {
            match d.after {
                Some(s) => { fib.insert(d.prefix, s); }
                None => { fib.remove(&d.prefix); }
            }
        };
        for op in ops {
            match op {
                Op::Upsert { src, prefix, attr, rejected } => {
                    let id = r.attrs.intern(&pool[attr]);
                    let acc = if rejected { None } else { r.attrs.retain(id); Some(id) };
                    if let Some(d) = r.upsert(p(PREFIXES[prefix]), src, id, acc) {
                        apply(&mut fib, d);
                    }
                    model.entry(prefix).or_default().insert(src, (attr, rejected));
                }
                Op::Remove { src, prefix } => {
                    if let Some(d) = r.remove(p(PREFIXES[prefix]), src) {
                        apply(&mut fib, d);
                    }
                    if let Some(m) = model.get_mut(&prefix) {
                        m.remove(&src);
                    }
                }
                Op::RemoveSource { src } => {
                    for d in r.remove_source(src, None) {
                        apply(&mut fib, d);
                    }
                    for m in model.values_mut() {
                        m.remove(&src);
                    }
                }
            }
        }
        let mut expected_len = 0;
        for (i, pre) in PREFIXES.iter().enumerate() {
            let cands: Vec<(SourceId, PathAttributes)> = model
                .get(&i)
                .map(|m| {
                    m.iter()
                        .filter(|(_, (_, rej))| !rej)
                        .map(|(s, (a, _))| (*s, pool[*a].clone()))
                        .collect()
                })
                .unwrap_or_default();
            let want = naive_best(&cands, &r);
            let got = r.best(&p(pre));
            prop_assert_eq!(want.map(|w| w.0), got.map(|g| g.source), "prefix {}", pre);
            prop_assert_eq!(want.map(|w| w.1 as u8), got.map(|g| g.multipath));
            prop_assert_eq!(fib.get(&p(pre)).copied(), got, "events disagree for {}", pre);
            if let Some(g) = got {
                let (ai, _) = model[&i][&g.source];
                prop_assert_eq!(&**r.attrs.get(g.attr).unwrap(), &pool[ai]);
                expected_len += 1;
            }
            let stored = r.paths_of(&p(pre)).map_or(0, |ps| ps.len());
            prop_assert_eq!(stored, model.get(&i).map_or(0, |m| m.len()));
        }
        prop_assert_eq!(r.loc_rib_len(), expected_len);
        // Reference counts: clearing everything frees every attribute set.
        for s in 0..4 {
            r.remove_source(s, None);
        }
        prop_assert!(r.attrs.is_empty());
        prop_assert_eq!(r.loc_rib_len(), 0);
    }
}
