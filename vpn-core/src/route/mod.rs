//! The route table of a VPN connection: which tunnels may carry a packet to
//! a given destination.
//!
//! Routes come from static configuration and from BGP, each via one tunnel.
//! A lookup follows AWS's documented order: the longest matching prefix
//! that has a route through a healthy tunnel; among that prefix's routes,
//! static before BGP, then the shortest AS_PATH, then the lowest MED. All
//! routes that tie form the result, so the caller can spread flows over them
//! (transit gateway ECMP) or apply a preference (virtual private gateway).
//! Lookups do not allocate.

use std::collections::HashMap;
use std::net::IpAddr;

use crate::config::Prefix;

/// Index of a tunnel within its connection.
pub type TunnelIndex = usize;

/// Where a route came from, with what ranks it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RouteOrigin {
    Static,
    Bgp { as_path_len: u32, med: u32 },
}

impl RouteOrigin {
    /// Lower is better: static first, then AS_PATH length, then MED.
    fn rank(self) -> (u8, u32, u32) {
        match self {
            RouteOrigin::Static => (0, 0, 0),
            RouteOrigin::Bgp { as_path_len, med } => (1, as_path_len, med),
        }
    }
}

/// A route to `prefix` through one tunnel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Route {
    pub prefix: Prefix,
    pub tunnel: TunnelIndex,
    pub origin: RouteOrigin,
}

/// The tunnels a lookup chose, as a set (at most 64 tunnels per connection).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Selection {
    /// The matched prefix.
    pub prefix: Prefix,
    tunnels: u64,
}

impl Selection {
    pub fn contains(&self, tunnel: TunnelIndex) -> bool {
        tunnel < 64 && self.tunnels & (1 << tunnel) != 0
    }

    pub fn len(&self) -> usize {
        self.tunnels.count_ones() as usize
    }

    pub fn is_empty(&self) -> bool {
        self.tunnels == 0
    }

    /// The chosen tunnels in ascending order.
    pub fn iter(&self) -> impl Iterator<Item = TunnelIndex> + '_ {
        (0..64).filter(|t| self.contains(*t))
    }

    /// One tunnel for a flow: the `hash`-th of the set, so one flow always
    /// takes the same tunnel while the set is unchanged.
    pub fn pick(&self, hash: u64) -> Option<TunnelIndex> {
        let n = self.len() as u64;
        if n == 0 {
            return None;
        }
        self.iter().nth((hash % n) as usize)
    }
}

/// Routes by prefix, with the prefix lengths present per address family so
/// a lookup only probes lengths that exist.
#[derive(Clone, Debug, Default)]
pub struct RouteTable {
    routes: HashMap<Prefix, Vec<Route>>,
    v4_lengths: Vec<u8>,
    v6_lengths: Vec<u8>,
}

impl RouteTable {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a route, replacing one with the same prefix, tunnel and kind of
    /// origin (a BGP update replaces the previous BGP route). Returns whether
    /// the table changed.
    pub fn insert(&mut self, route: Route) -> bool {
        let same_kind = |r: &Route| {
            r.tunnel == route.tunnel
                && matches!(r.origin, RouteOrigin::Static)
                    == matches!(route.origin, RouteOrigin::Static)
        };
        let entries = self.routes.entry(route.prefix).or_default();
        if let Some(existing) = entries.iter_mut().find(|r| same_kind(r)) {
            let changed = *existing != route;
            *existing = route;
            return changed;
        }
        entries.push(route);
        let lengths = if route.prefix.addr().is_ipv4() {
            &mut self.v4_lengths
        } else {
            &mut self.v6_lengths
        };
        if let Err(at) = lengths.binary_search_by(|l| route.prefix.len().cmp(l)) {
            lengths.insert(at, route.prefix.len());
        }
        true
    }

    /// Removes the routes to `prefix` via `tunnel` whose origin matches
    /// `is_static`. Returns whether anything was removed.
    pub fn remove(&mut self, prefix: Prefix, tunnel: TunnelIndex, is_static: bool) -> bool {
        self.remove_where(|r| {
            r.prefix == prefix
                && r.tunnel == tunnel
                && matches!(r.origin, RouteOrigin::Static) == is_static
        }) > 0
    }

    /// Removes every BGP route learned through `tunnel` (its session went
    /// down). Returns how many were removed.
    pub fn remove_bgp_routes_of(&mut self, tunnel: TunnelIndex) -> usize {
        self.remove_where(|r| r.tunnel == tunnel && matches!(r.origin, RouteOrigin::Bgp { .. }))
    }

    fn remove_where(&mut self, mut doomed: impl FnMut(&Route) -> bool) -> usize {
        let mut removed = 0;
        self.routes.retain(|_, entries| {
            let before = entries.len();
            entries.retain(|r| !doomed(r));
            removed += before - entries.len();
            !entries.is_empty()
        });
        if removed > 0 {
            let mut v4: Vec<u8> = Vec::new();
            let mut v6: Vec<u8> = Vec::new();
            for p in self.routes.keys() {
                let lengths = if p.addr().is_ipv4() { &mut v4 } else { &mut v6 };
                if let Err(at) = lengths.binary_search_by(|l| p.len().cmp(l)) {
                    lengths.insert(at, p.len());
                }
            }
            self.v4_lengths = v4;
            self.v6_lengths = v6;
        }
        removed
    }

    /// Number of routes (a prefix reachable via two tunnels counts twice).
    pub fn len(&self) -> usize {
        self.routes.values().map(Vec::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.routes.is_empty()
    }

    /// All routes, in no particular order.
    pub fn iter(&self) -> impl Iterator<Item = &Route> {
        self.routes.values().flatten()
    }

    /// The best tunnels towards `destination` among those `healthy` accepts.
    pub fn lookup(
        &self,
        destination: IpAddr,
        healthy: impl Fn(TunnelIndex) -> bool,
    ) -> Option<Selection> {
        let lengths = if destination.is_ipv4() {
            &self.v4_lengths
        } else {
            &self.v6_lengths
        };
        for &len in lengths {
            let prefix = Prefix::truncating(destination, len);
            let Some(entries) = self.routes.get(&prefix) else {
                continue;
            };
            let best = entries
                .iter()
                .filter(|r| healthy(r.tunnel))
                .map(|r| r.origin.rank())
                .min();
            let Some(best) = best else {
                continue;
            };
            let tunnels = entries
                .iter()
                .filter(|r| healthy(r.tunnel) && r.origin.rank() == best && r.tunnel < 64)
                .fold(0u64, |set, r| set | 1 << r.tunnel);
            return Some(Selection { prefix, tunnels });
        }
        None
    }
}

#[cfg(test)]
mod tests;
