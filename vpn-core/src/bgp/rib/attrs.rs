//! Interned path attribute sets and a keyed hasher for the RIB's maps.
//!
//! A full table has about a million prefixes but only thousands of distinct attribute
//! sets, so routes refer to a set by a 4-byte [`AttrId`]. Sets are reference counted
//! and found by their canonical encoding; the fields best-path selection reads are
//! cached beside each set.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hasher};
use std::net::IpAddr;
use std::sync::Arc;

use crate::bgp::wire::{MpNextHop, Origin, PathAttributes, WireContext};

/// Handle of an interned attribute set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AttrId(pub(crate) u32);

/// A keyed multiply-fold hasher. Keys come from the injected entropy, so a peer
/// cannot pick prefixes that collide, yet a seeded simulation stays deterministic
/// (std's `RandomState` would read OS randomness behind our back).
#[derive(Debug, Clone, Copy)]
pub struct KeyedState {
    k0: u64,
    k1: u64,
}

impl KeyedState {
    pub fn new(k0: u64, k1: u64) -> Self {
        Self { k0, k1: k1 | 1 }
    }
}

impl BuildHasher for KeyedState {
    type Hasher = KeyedHasher;
    fn build_hasher(&self) -> KeyedHasher {
        KeyedHasher {
            h: self.k0,
            k: self.k1,
        }
    }
}

const MUL: u64 = 0x9E37_79B9_7F4A_7C15;

pub struct KeyedHasher {
    h: u64,
    k: u64,
}

impl KeyedHasher {
    #[inline]
    fn mix(&mut self, v: u64) {
        let p = u128::from(self.h ^ v) * u128::from(self.k ^ MUL);
        self.h = (p as u64) ^ ((p >> 64) as u64);
    }
}

impl Hasher for KeyedHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.mix(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.mix(u64::from_le_bytes(w) ^ ((rest.len() as u64) << 59));
        }
    }
    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.mix(u64::from(i) | 0x100);
    }
    #[inline]
    fn write_u32(&mut self, i: u32) {
        self.mix(u64::from(i));
    }
    #[inline]
    fn write_u64(&mut self, i: u64) {
        self.mix(i);
    }
    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.mix(i as u64);
    }
    #[inline]
    fn finish(&self) -> u64 {
        let p = u128::from(self.h.rotate_left(23)) * u128::from(MUL);
        (p as u64) ^ ((p >> 64) as u64)
    }
}

/// What best-path selection reads, decoded once per set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    pub local_pref: u32,
    pub as_path_len: u32,
    pub origin: u8,
    /// Missing MED counts as 0 (RFC 4271 §9.1.2.2 (c)).
    pub med: u32,
    /// First AS of the path (the neighbour AS); 0 for local routes.
    pub neighbor_as: u32,
    pub next_hop: Option<IpAddr>,
}

/// LOCAL_PREF assumed when absent (the common default).
pub const DEFAULT_LOCAL_PREF: u32 = 100;

impl Summary {
    fn of(a: &PathAttributes) -> Self {
        let next_hop = match a.mp_reach.as_ref().map(|m| &m.next_hop) {
            Some(MpNextHop::Ipv6 { global, .. }) => Some(IpAddr::V6(*global)),
            Some(MpNextHop::Ipv4(v4)) => Some(IpAddr::V4(*v4)),
            _ => a.next_hop.map(IpAddr::V4),
        };
        Self {
            local_pref: a.local_pref.unwrap_or(DEFAULT_LOCAL_PREF),
            as_path_len: a.as_path.as_ref().map_or(0, |p| p.path_len() as u32),
            origin: a.origin.unwrap_or(Origin::Incomplete) as u8,
            med: a.med.unwrap_or(0),
            neighbor_as: a.as_path.as_ref().and_then(|p| p.first_asn()).unwrap_or(0),
            next_hop,
        }
    }
}

struct Slot {
    attrs: Option<Arc<PathAttributes>>,
    summary: Summary,
    refs: u32,
}

/// The interning table.
pub struct AttrTable {
    slots: Vec<Slot>,
    free: Vec<u32>,
    index: HashMap<Box<[u8]>, u32, KeyedState>,
    scratch: Vec<u8>,
}

impl AttrTable {
    pub fn new(hasher: KeyedState) -> Self {
        Self {
            slots: Vec::new(),
            free: Vec::new(),
            index: HashMap::with_hasher(hasher),
            scratch: Vec::new(),
        }
    }

    fn key(scratch: &mut Vec<u8>, attrs: &PathAttributes) {
        scratch.clear();
        // MP_REACH_NLRI carries only the next hop here (routes are stored per prefix),
        // so the encoding is small; AS numbers are written 4 octets wide.
        attrs.encode(
            scratch,
            &WireContext {
                four_octet_as: true,
            },
        );
    }

    /// Finds or adds `attrs`; the caller owns one reference to the result.
    pub fn intern(&mut self, attrs: &PathAttributes) -> AttrId {
        Self::key(&mut self.scratch, attrs);
        if let Some(&i) = self.index.get(self.scratch.as_slice()) {
            self.slots[i as usize].refs += 1;
            return AttrId(i);
        }
        let slot = Slot {
            attrs: Some(Arc::new(attrs.clone())),
            summary: Summary::of(attrs),
            refs: 1,
        };
        let i = match self.free.pop() {
            Some(i) => {
                self.slots[i as usize] = slot;
                i
            }
            None => {
                self.slots.push(slot);
                (self.slots.len() - 1) as u32
            }
        };
        self.index.insert(self.scratch.as_slice().into(), i);
        AttrId(i)
    }

    /// One more reference.
    pub fn retain(&mut self, id: AttrId) {
        if let Some(s) = self.slots.get_mut(id.0 as usize) {
            s.refs += 1;
        }
    }

    /// One reference less; the set is dropped with its last reference.
    pub fn release(&mut self, id: AttrId) {
        let Some(s) = self.slots.get_mut(id.0 as usize) else {
            return;
        };
        s.refs = s.refs.saturating_sub(1);
        if s.refs > 0 {
            return;
        }
        if let Some(attrs) = s.attrs.take() {
            Self::key(&mut self.scratch, &attrs);
            self.index.remove(self.scratch.as_slice());
            self.free.push(id.0);
        }
    }

    pub fn get(&self, id: AttrId) -> Option<&Arc<PathAttributes>> {
        self.slots.get(id.0 as usize)?.attrs.as_ref()
    }

    pub fn summary(&self, id: AttrId) -> Summary {
        self.slots.get(id.0 as usize).map_or(
            Summary {
                local_pref: 0,
                as_path_len: u32::MAX,
                origin: u8::MAX,
                med: u32::MAX,
                neighbor_as: 0,
                next_hop: None,
            },
            |s| s.summary,
        )
    }

    /// Distinct sets alive.
    pub fn len(&self) -> usize {
        self.index.len()
    }

    pub fn is_empty(&self) -> bool {
        self.index.is_empty()
    }

    /// References held on a set (tests check the bookkeeping).
    pub fn refs(&self, id: AttrId) -> u32 {
        self.slots.get(id.0 as usize).map_or(0, |s| s.refs)
    }
}
