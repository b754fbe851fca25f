//! Routing information bases: every neighbour's Adj-RIB-In and the Loc-RIB share one
//! table per family, keyed by prefix.
//!
//! Each prefix holds the candidate paths it was learned with, one per source
//! (a neighbour or local origination). A [`Path`] keeps both the attributes as
//! received (the Adj-RIB-In, so a policy change is re-evaluated without a route
//! refresh) and as accepted by import policy (`None`: rejected), each a 4-byte handle
//! into the interned [`AttrTable`]. The Loc-RIB is the selected best path of each
//! prefix (RFC 4271 §9.1.2), plus its equal-cost multipath set.
//!
//! Memory: a prefix with one candidate costs one map entry of 24 bytes (IPv4) with no
//! other heap allocation; more candidates move to a boxed vector.

pub mod attrs;

use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;
use std::net::{IpAddr, Ipv4Addr};

pub use attrs::{AttrId, AttrTable, KeyedState, Summary, DEFAULT_LOCAL_PREF};

use super::wire::{Afi, Ipv4Prefix, Ipv6Prefix};

/// An IPv4 or IPv6 unicast prefix.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IpPrefix {
    V4(Ipv4Prefix),
    V6(Ipv6Prefix),
}

impl IpPrefix {
    pub fn afi(&self) -> Afi {
        match self {
            IpPrefix::V4(_) => Afi::IPV4,
            IpPrefix::V6(_) => Afi::IPV6,
        }
    }

    pub fn len(&self) -> u8 {
        match self {
            IpPrefix::V4(p) => p.len(),
            IpPrefix::V6(p) => p.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        false
    }

    /// Parses `a.b.c.d/len` or `x::/len`.
    pub fn parse(s: &str) -> Option<Self> {
        let (addr, len) = s.split_once('/')?;
        let len: u8 = len.parse().ok()?;
        match addr.parse::<IpAddr>().ok()? {
            IpAddr::V4(a) => Ipv4Prefix::new(a, len).ok().map(IpPrefix::V4),
            IpAddr::V6(a) => Ipv6Prefix::new(a, len).ok().map(IpPrefix::V6),
        }
    }

    /// True if `other` lies within this prefix (same family).
    pub fn covers(&self, other: &IpPrefix) -> bool {
        match (self, other) {
            (IpPrefix::V4(a), IpPrefix::V4(b)) => b.len() >= a.len() && a.contains(b.addr()),
            (IpPrefix::V6(a), IpPrefix::V6(b)) => b.len() >= a.len() && a.contains(b.addr()),
            _ => false,
        }
    }
}

impl From<Ipv4Prefix> for IpPrefix {
    fn from(p: Ipv4Prefix) -> Self {
        IpPrefix::V4(p)
    }
}

impl From<Ipv6Prefix> for IpPrefix {
    fn from(p: Ipv6Prefix) -> Self {
        IpPrefix::V6(p)
    }
}

impl fmt::Display for IpPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            IpPrefix::V4(p) => fmt::Display::fmt(p, f),
            IpPrefix::V6(p) => fmt::Display::fmt(p, f),
        }
    }
}

impl fmt::Debug for IpPrefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Where a path came from: a neighbour's index, or [`LOCAL`].
pub type SourceId = u16;
/// Locally originated routes.
pub const LOCAL: SourceId = u16::MAX;

const REJECTED: u32 = u32::MAX;

/// One candidate path of a prefix; 12 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Path {
    in_attr: u32,
    attr: u32,
    pub source: SourceId,
    pub flags: u16,
}

impl Path {
    /// Held through a peer's graceful restart (RFC 4724).
    pub const STALE: u16 = 1;

    /// Attributes as received (Adj-RIB-In).
    pub fn received(&self) -> AttrId {
        AttrId(self.in_attr)
    }

    /// Attributes after import policy; `None` if policy rejected the route.
    pub fn accepted(&self) -> Option<AttrId> {
        (self.attr != REJECTED).then_some(AttrId(self.attr))
    }

    pub fn is_stale(&self) -> bool {
        self.flags & Self::STALE != 0
    }
}

/// The candidates of one prefix; a single one stays inline.
#[derive(Debug)]
enum Paths {
    One(Path),
    // Boxed so the enum stays 16 bytes (a thin pointer) instead of 24.
    #[allow(clippy::box_collection)]
    Many(Box<Vec<Path>>),
}

impl Paths {
    fn as_slice(&self) -> &[Path] {
        match self {
            Paths::One(p) => std::slice::from_ref(p),
            Paths::Many(v) => v,
        }
    }

    /// Inserts or replaces the path of `path.source`; returns the old one.
    fn upsert(&mut self, path: Path) -> Option<Path> {
        match self {
            Paths::One(p) if p.source == path.source => Some(std::mem::replace(p, path)),
            Paths::One(p) => {
                *self = Paths::Many(Box::new(vec![*p, path]));
                None
            }
            Paths::Many(v) => match v.iter_mut().find(|p| p.source == path.source) {
                Some(p) => Some(std::mem::replace(p, path)),
                None => {
                    v.push(path);
                    None
                }
            },
        }
    }

    /// Removes the path of `source`; `Err(())` when it was the only one (remove the
    /// entry; the path is returned through `out`).
    fn remove(&mut self, source: SourceId) -> Result<Option<Path>, Path> {
        match self {
            Paths::One(p) if p.source == source => Err(*p),
            Paths::One(_) => Ok(None),
            Paths::Many(v) => {
                let Some(i) = v.iter().position(|p| p.source == source) else {
                    return Ok(None);
                };
                let old = v.remove(i);
                if v.len() == 1 {
                    *self = Paths::One(v[0]);
                }
                Ok(Some(old))
            }
        }
    }
}

/// What best-path selection knows about a source besides the attributes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SourceInfo {
    pub ebgp: bool,
    /// The neighbour's BGP identifier.
    pub router_id: Ipv4Addr,
    pub peer_addr: IpAddr,
}

const LOCAL_INFO: SourceInfo = SourceInfo {
    ebgp: true,
    router_id: Ipv4Addr::UNSPECIFIED,
    peer_addr: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
};

/// The selected route of a prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Selected {
    pub source: SourceId,
    pub attr: AttrId,
    /// Size of the equal-cost multipath set (at least 1).
    pub multipath: u8,
}

/// A Loc-RIB change of one prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Delta {
    pub prefix: IpPrefix,
    pub before: Option<Selected>,
    pub after: Option<Selected>,
}

/// Decision of [`Rib::edit_source`]'s callback for one path.
pub enum Edit {
    Keep,
    Remove,
    /// New accepted attributes (ownership of one reference passes to the RIB) and
    /// flags.
    Set {
        attr: Option<AttrId>,
        flags: u16,
    },
}

/// Best-path selection over at most 64 eligible candidates (one per neighbour).
///
/// RFC 4271 §9.1.2.2, in order: highest LOCAL_PREF; shortest AS_PATH (an AS_SET counts
/// one); lowest ORIGIN; lowest MED among routes from the same neighbour AS; eBGP over
/// iBGP; then, past the multipath set, lowest router ID; lowest peer address.
/// Returns the best index and the multipath candidates (those equal through the eBGP
/// step), best first, then by router ID and address.
pub fn select_paths(
    paths: &[Path],
    attrs: &AttrTable,
    info: &dyn Fn(SourceId) -> SourceInfo,
) -> Option<(usize, Vec<usize>)> {
    let (best, mask) = select_mask(paths, attrs, info)?;
    let mut set: Vec<usize> = (0..paths.len().min(64))
        .filter(|&i| mask & (1 << i) != 0)
        .collect();
    set.sort_by_key(|&i| {
        let s = info(paths[i].source);
        (i != best, s.router_id, s.peer_addr, i)
    });
    Some((best, set))
}

fn select_mask(
    paths: &[Path],
    attrs: &AttrTable,
    info: &dyn Fn(SourceId) -> SourceInfo,
) -> Option<(usize, u64)> {
    let n = paths.len().min(64);
    let summary = |i: usize| attrs.summary(AttrId(paths[i].attr));
    let mut m: u64 = 0;
    for (i, p) in paths.iter().enumerate().take(n) {
        if p.attr != REJECTED {
            m |= 1 << i;
        }
    }
    if m == 0 {
        return None;
    }
    if m.count_ones() == 1 {
        return Some((m.trailing_zeros() as usize, m));
    }
    let members = |m: u64| (0..n).filter(move |&i| m & (1 << i) != 0);
    let keep_best = |m: u64, key: &dyn Fn(usize) -> u64| -> u64 {
        let best = members(m).map(key).min().unwrap_or(0);
        members(m)
            .filter(|&i| key(i) == best)
            .fold(0, |acc, i| acc | (1 << i))
    };
    m = keep_best(m, &|i| u64::from(u32::MAX - summary(i).local_pref));
    m = keep_best(m, &|i| u64::from(summary(i).as_path_len));
    m = keep_best(m, &|i| u64::from(summary(i).origin));
    // MED: only between routes from the same neighbour AS.
    let snapshot = m;
    for i in members(snapshot) {
        let (si, mi) = (summary(i).neighbor_as, summary(i).med);
        if members(snapshot).any(|j| summary(j).neighbor_as == si && summary(j).med < mi) {
            m &= !(1 << i);
        }
    }
    if members(m).any(|i| info(paths[i].source).ebgp) {
        m = members(m)
            .filter(|&i| info(paths[i].source).ebgp)
            .fold(0, |acc, i| acc | (1 << i));
    }
    let ecmp = m;
    let best = members(m).min_by_key(|&i| {
        let s = info(paths[i].source);
        (s.router_id, s.peer_addr, i)
    })?;
    Some((best, ecmp))
}

type Table<P> = HashMap<P, Paths, KeyedState>;
/// Selection before and after a change.
type Change = (Option<Selected>, Option<Selected>);

/// Adj-RIBs-In and Loc-RIB of both unicast families.
pub struct Rib {
    pub attrs: AttrTable,
    v4: Table<Ipv4Prefix>,
    v6: Table<Ipv6Prefix>,
    sources: Vec<SourceInfo>,
    max_paths: usize,
    /// Paths per (source slot, family): index 0 = local.
    counts: Vec<[usize; 2]>,
    best_count: usize,
}

fn slot(source: SourceId) -> usize {
    if source == LOCAL {
        0
    } else {
        usize::from(source) + 1
    }
}

fn fam(afi: Afi) -> usize {
    usize::from(afi == Afi::IPV6)
}

struct Ctx<'a> {
    attrs: &'a mut AttrTable,
    sources: &'a [SourceInfo],
    max_paths: usize,
}

impl Ctx<'_> {
    fn info(&self) -> impl Fn(SourceId) -> SourceInfo + '_ {
        |s| {
            if s == LOCAL {
                LOCAL_INFO
            } else {
                self.sources
                    .get(usize::from(s))
                    .copied()
                    .unwrap_or(LOCAL_INFO)
            }
        }
    }

    fn selected(&self, paths: &Paths) -> Option<Selected> {
        let slice = paths.as_slice();
        let info = self.info();
        let (best, mask) = select_mask(slice, self.attrs, &info)?;
        Some(Selected {
            source: slice[best].source,
            attr: AttrId(slice[best].attr),
            multipath: (mask.count_ones() as usize).min(self.max_paths).max(1) as u8,
        })
    }

    fn release_path(&mut self, p: &Path) {
        self.attrs.release(AttrId(p.in_attr));
        if p.attr != REJECTED {
            self.attrs.release(AttrId(p.attr));
        }
    }
}

impl Rib {
    /// `max_paths`: largest multipath set reported (1 = no ECMP).
    pub fn new(hasher: KeyedState, max_paths: usize) -> Self {
        Self {
            attrs: AttrTable::new(hasher),
            v4: HashMap::with_hasher(hasher),
            v6: HashMap::with_hasher(hasher),
            sources: Vec::new(),
            max_paths: max_paths.max(1),
            counts: vec![[0, 0]],
            best_count: 0,
        }
    }

    /// Describes a neighbour (call again when its identifier becomes known).
    pub fn set_source(&mut self, source: SourceId, info: SourceInfo) {
        let i = usize::from(source);
        if self.sources.len() <= i {
            self.sources.resize(i + 1, LOCAL_INFO);
        }
        self.sources[i] = info;
        if self.counts.len() <= slot(source) {
            self.counts.resize(slot(source) + 1, [0, 0]);
        }
    }

    fn split(&mut self) -> (Ctx<'_>, &mut Table<Ipv4Prefix>, &mut Table<Ipv6Prefix>) {
        (
            Ctx {
                attrs: &mut self.attrs,
                sources: &self.sources,
                max_paths: self.max_paths,
            },
            &mut self.v4,
            &mut self.v6,
        )
    }

    /// Inserts or replaces `source`'s path for `prefix`. The RIB takes over one
    /// reference of `received` and of `accepted`.
    pub fn upsert(
        &mut self,
        prefix: IpPrefix,
        source: SourceId,
        received: AttrId,
        accepted: Option<AttrId>,
    ) -> Option<Delta> {
        let path = Path {
            in_attr: received.0,
            attr: accepted.map_or(REJECTED, |a| a.0),
            source,
            flags: 0,
        };
        let (mut ctx, v4, v6) = self.split();
        let (delta, added) = match prefix {
            IpPrefix::V4(p) => upsert_in(v4, &mut ctx, p, path),
            IpPrefix::V6(p) => upsert_in(v6, &mut ctx, p, path),
        };
        if added {
            self.count_mut(source)[fam(prefix.afi())] += 1;
        }
        self.finish(prefix, delta)
    }

    /// Removes `source`'s path for `prefix`.
    pub fn remove(&mut self, prefix: IpPrefix, source: SourceId) -> Option<Delta> {
        let (mut ctx, v4, v6) = self.split();
        let (delta, removed) = match prefix {
            IpPrefix::V4(p) => remove_in(v4, &mut ctx, p, source),
            IpPrefix::V6(p) => remove_in(v6, &mut ctx, p, source),
        };
        if removed {
            let c = &mut self.count_mut(source)[fam(prefix.afi())];
            *c = c.saturating_sub(1);
        }
        self.finish(prefix, delta)
    }

    fn count_mut(&mut self, source: SourceId) -> &mut [usize; 2] {
        let s = slot(source);
        if self.counts.len() <= s {
            self.counts.resize(s + 1, [0, 0]);
        }
        &mut self.counts[s]
    }

    fn finish(&mut self, prefix: IpPrefix, d: Option<Change>) -> Option<Delta> {
        let (before, after) = d?;
        if before == after {
            return None;
        }
        match (before.is_some(), after.is_some()) {
            (false, true) => self.best_count += 1,
            (true, false) => self.best_count = self.best_count.saturating_sub(1),
            _ => {}
        }
        Some(Delta {
            prefix,
            before,
            after,
        })
    }

    /// Visits every path of `source` (optionally one family) and applies the edit.
    pub fn edit_source(
        &mut self,
        source: SourceId,
        afi: Option<Afi>,
        mut f: impl FnMut(IpPrefix, &Path, &mut AttrTable) -> Edit,
    ) -> Vec<Delta> {
        let mut out = Vec::new();
        let mut removed = [0usize; 2];
        let (mut ctx, v4, v6) = self.split();
        if afi.is_none_or(|a| a == Afi::IPV4) {
            removed[0] = edit_in(v4, &mut ctx, source, &mut out, &mut |p, path, a| {
                f(IpPrefix::V4(p), path, a)
            });
        }
        if afi.is_none_or(|a| a == Afi::IPV6) {
            removed[1] = edit_in(v6, &mut ctx, source, &mut out, &mut |p, path, a| {
                f(IpPrefix::V6(p), path, a)
            });
        }
        let c = self.count_mut(source);
        c[0] = c[0].saturating_sub(removed[0]);
        c[1] = c[1].saturating_sub(removed[1]);
        let mut deltas = Vec::with_capacity(out.len());
        for (prefix, before, after) in out {
            if let Some(d) = self.finish(prefix, Some((before, after))) {
                deltas.push(d);
            }
        }
        deltas
    }

    /// Drops every path of `source` (session down without graceful restart).
    pub fn remove_source(&mut self, source: SourceId, afi: Option<Afi>) -> Vec<Delta> {
        self.edit_source(source, afi, |_, _, _| Edit::Remove)
    }

    /// The Loc-RIB entry of a prefix.
    pub fn best(&self, prefix: &IpPrefix) -> Option<Selected> {
        let paths = match prefix {
            IpPrefix::V4(p) => self.v4.get(p),
            IpPrefix::V6(p) => self.v6.get(p),
        }?;
        let info = |s: SourceId| self.source_info(s);
        let slice = paths.as_slice();
        let (best, mask) = select_mask(slice, &self.attrs, &info)?;
        Some(Selected {
            source: slice[best].source,
            attr: AttrId(slice[best].attr),
            multipath: (mask.count_ones() as usize).min(self.max_paths).max(1) as u8,
        })
    }

    /// The multipath set of a prefix, best first (at most `max_paths`).
    pub fn multipath(&self, prefix: &IpPrefix) -> Vec<Path> {
        let Some(paths) = self.paths_of(prefix) else {
            return Vec::new();
        };
        let info = |s: SourceId| self.source_info(s);
        let Some((_, set)) = select_paths(paths, &self.attrs, &info) else {
            return Vec::new();
        };
        set.into_iter()
            .take(self.max_paths)
            .map(|i| paths[i])
            .collect()
    }

    /// All candidates of a prefix (Adj-RIBs-In), accepted or not.
    pub fn paths_of(&self, prefix: &IpPrefix) -> Option<&[Path]> {
        match prefix {
            IpPrefix::V4(p) => self.v4.get(p).map(Paths::as_slice),
            IpPrefix::V6(p) => self.v6.get(p).map(Paths::as_slice),
        }
    }

    pub fn source_info(&self, s: SourceId) -> SourceInfo {
        if s == LOCAL {
            LOCAL_INFO
        } else {
            self.sources
                .get(usize::from(s))
                .copied()
                .unwrap_or(LOCAL_INFO)
        }
    }

    /// Visits the Loc-RIB.
    pub fn for_each_best(&self, mut f: impl FnMut(IpPrefix, Selected)) {
        for p in self.v4.keys() {
            if let Some(s) = self.best(&IpPrefix::V4(*p)) {
                f(IpPrefix::V4(*p), s);
            }
        }
        for p in self.v6.keys() {
            if let Some(s) = self.best(&IpPrefix::V6(*p)) {
                f(IpPrefix::V6(*p), s);
            }
        }
    }

    /// Prefixes with a selected route.
    pub fn loc_rib_len(&self) -> usize {
        self.best_count
    }

    /// Paths received from `source` in one family (accepted or not).
    pub fn received_count(&self, source: SourceId, afi: Afi) -> usize {
        self.counts.get(slot(source)).map_or(0, |c| c[fam(afi)])
    }

    /// Pre-sizes the IPv4 table (bulk loads).
    pub fn reserve_v4(&mut self, n: usize) {
        self.v4.reserve(n);
    }
}

fn upsert_in<P: Hash + Eq + Copy>(
    map: &mut Table<P>,
    ctx: &mut Ctx<'_>,
    key: P,
    path: Path,
) -> (Option<Change>, bool) {
    use std::collections::hash_map::Entry;
    match map.entry(key) {
        Entry::Vacant(v) => {
            let paths = v.insert(Paths::One(path));
            (Some((None, ctx.selected(paths))), true)
        }
        Entry::Occupied(mut o) => {
            let paths = o.get_mut();
            let before = ctx.selected(paths);
            let old = paths.upsert(path);
            let after = ctx.selected(paths);
            let added = old.is_none();
            if let Some(old) = old {
                ctx.release_path(&old);
            }
            (Some((before, after)), added)
        }
    }
}

fn remove_in<P: Hash + Eq + Copy>(
    map: &mut Table<P>,
    ctx: &mut Ctx<'_>,
    key: P,
    source: SourceId,
) -> (Option<Change>, bool) {
    let Some(paths) = map.get_mut(&key) else {
        return (None, false);
    };
    let before = ctx.selected(paths);
    match paths.remove(source) {
        Ok(None) => (None, false),
        Ok(Some(old)) => {
            let after = ctx.selected(paths);
            ctx.release_path(&old);
            (Some((before, after)), true)
        }
        Err(old) => {
            map.remove(&key);
            ctx.release_path(&old);
            (Some((before, None)), true)
        }
    }
}

fn edit_in<P: Hash + Eq + Copy>(
    map: &mut Table<P>,
    ctx: &mut Ctx<'_>,
    source: SourceId,
    out: &mut Vec<(IpPrefix, Option<Selected>, Option<Selected>)>,
    f: &mut dyn FnMut(P, &Path, &mut AttrTable) -> Edit,
) -> usize
where
    IpPrefix: From<P>,
{
    let mut removed = 0;
    map.retain(|&key, paths| {
        let Some(idx) = paths.as_slice().iter().position(|p| p.source == source) else {
            return true;
        };
        let path = paths.as_slice()[idx];
        match f(key, &path, ctx.attrs) {
            Edit::Keep => true,
            Edit::Remove => {
                let before = ctx.selected(paths);
                removed += 1;
                let keep = paths.remove(source).is_ok();
                let after = if keep { ctx.selected(paths) } else { None };
                ctx.release_path(&path);
                out.push((IpPrefix::from(key), before, after));
                keep
            }
            Edit::Set { attr, flags } => {
                let before = ctx.selected(paths);
                let new = Path {
                    attr: attr.map_or(REJECTED, |a| a.0),
                    flags,
                    ..path
                };
                paths.upsert(new);
                if path.attr != REJECTED {
                    ctx.attrs.release(AttrId(path.attr));
                }
                let after = ctx.selected(paths);
                out.push((IpPrefix::from(key), before, after));
                true
            }
        }
    });
    removed
}
