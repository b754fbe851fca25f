//! Address families, IPv4/IPv6 prefixes and NLRI fields (RFC 4271 §4.3, RFC 4760 §5).
//!
//! Prefixes are small `Copy` values because the RIB will hold about a million of them.
//! NLRI fields are validated once and kept as the received bytes ([`Nlri`]); iterating
//! them decodes prefixes on the fly, so decoding an UPDATE allocates nothing per prefix.

use std::fmt;
use std::marker::PhantomData;
use std::net::{Ipv4Addr, Ipv6Addr};

use bytes::{BufMut, Bytes, BytesMut};

/// Address Family Identifier (IANA). Open: unknown values survive a round trip.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Afi(pub u16);

impl Afi {
    pub const IPV4: Afi = Afi(1);
    pub const IPV6: Afi = Afi(2);
}

/// Subsequent Address Family Identifier (IANA). Open like [`Afi`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Safi(pub u8);

impl Safi {
    pub const UNICAST: Safi = Safi(1);
    pub const MULTICAST: Safi = Safi(2);
}

/// An address family as operators read it: "ipv4 unicast", "afi 25 safi 65".
pub fn family_name(afi: Afi, safi: Safi) -> String {
    let a = match afi {
        Afi::IPV4 => "ipv4".to_owned(),
        Afi::IPV6 => "ipv6".to_owned(),
        Afi(n) => format!("afi {n}"),
    };
    if safi == Safi::UNICAST {
        format!("{a} unicast")
    } else {
        format!("{a} safi {}", safi.0)
    }
}

/// Why an NLRI field could not be parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PrefixError {
    #[error("prefix length {len} exceeds {max}")]
    LengthTooLong { len: u8, max: u8 },
    #[error("NLRI field ends inside a prefix")]
    Truncated,
}

/// An IPv4 prefix with host bits cleared; 8 bytes.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Ipv4Prefix {
    addr: u32,
    len: u8,
}

/// An IPv6 prefix with host bits cleared; 17 bytes (byte array keeps alignment at 1).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct Ipv6Prefix {
    addr: [u8; 16],
    len: u8,
}

fn mask_v4(len: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0)
}

fn mask_v6(len: u8) -> u128 {
    u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0)
}

impl Ipv4Prefix {
    pub const MAX_LEN: u8 = 32;

    /// Builds a prefix, clearing host bits; fails only for `len > 32`.
    pub fn new(addr: Ipv4Addr, len: u8) -> Result<Self, PrefixError> {
        Self::from_bits(u32::from(addr), len)
    }

    /// Like [`Ipv4Prefix::new`] from the address as a host-order integer.
    pub fn from_bits(addr: u32, len: u8) -> Result<Self, PrefixError> {
        if len > Self::MAX_LEN {
            return Err(PrefixError::LengthTooLong {
                len,
                max: Self::MAX_LEN,
            });
        }
        Ok(Self {
            addr: addr & mask_v4(len),
            len,
        })
    }

    pub fn addr(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.addr)
    }

    /// Network address as a host-order integer (what a trie wants).
    pub fn bits(&self) -> u32 {
        self.addr
    }

    /// Prefix length in bits.
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> u8 {
        self.len
    }

    pub fn contains(&self, addr: Ipv4Addr) -> bool {
        u32::from(addr) & mask_v4(self.len) == self.addr
    }
}

impl Ipv6Prefix {
    pub const MAX_LEN: u8 = 128;

    /// Builds a prefix, clearing host bits; fails only for `len > 128`.
    pub fn new(addr: Ipv6Addr, len: u8) -> Result<Self, PrefixError> {
        if len > Self::MAX_LEN {
            return Err(PrefixError::LengthTooLong {
                len,
                max: Self::MAX_LEN,
            });
        }
        let bits = u128::from(addr) & mask_v6(len);
        Ok(Self {
            addr: bits.to_be_bytes(),
            len,
        })
    }

    pub fn addr(&self) -> Ipv6Addr {
        Ipv6Addr::from(self.addr)
    }

    /// Prefix length in bits.
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> u8 {
        self.len
    }

    pub fn contains(&self, addr: Ipv6Addr) -> bool {
        u128::from(addr) & mask_v6(self.len) == u128::from_be_bytes(self.addr)
    }
}

impl fmt::Display for Ipv4Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr(), self.len)
    }
}

impl fmt::Debug for Ipv4Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl fmt::Display for Ipv6Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.addr(), self.len)
    }
}

impl fmt::Debug for Ipv6Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::Ipv4Prefix {}
    impl Sealed for super::Ipv6Prefix {}
}

/// What the NLRI codec needs from a prefix type.
pub trait Prefix: sealed::Sealed + Copy + fmt::Debug + Eq {
    /// Longest valid prefix length for the family.
    const MAX_LEN: u8;
    /// Builds a prefix from its length and the `ceil(len / 8)` address bytes that
    /// follow it on the wire; host bits are cleared. `len` is already checked.
    fn from_wire(len: u8, bytes: &[u8]) -> Self;
    /// Prefix length in bits.
    fn prefix_len(&self) -> u8;
    /// Writes the length byte and the minimal address bytes.
    fn write_wire(&self, buf: &mut impl BufMut);
}

impl Prefix for Ipv4Prefix {
    const MAX_LEN: u8 = 32;

    #[inline]
    fn from_wire(len: u8, bytes: &[u8]) -> Self {
        let mut octets = [0u8; 4];
        let n = bytes.len().min(4);
        octets[..n].copy_from_slice(&bytes[..n]);
        Self {
            addr: u32::from_be_bytes(octets) & mask_v4(len),
            len,
        }
    }

    fn prefix_len(&self) -> u8 {
        self.len
    }

    fn write_wire(&self, buf: &mut impl BufMut) {
        buf.put_u8(self.len);
        let n = usize::from(self.len).div_ceil(8);
        buf.put_slice(&self.addr.to_be_bytes()[..n]);
    }
}

impl Prefix for Ipv6Prefix {
    const MAX_LEN: u8 = 128;

    #[inline]
    fn from_wire(len: u8, bytes: &[u8]) -> Self {
        let mut octets = [0u8; 16];
        let n = bytes.len().min(16);
        octets[..n].copy_from_slice(&bytes[..n]);
        let bits = u128::from_be_bytes(octets) & mask_v6(len);
        Self {
            addr: bits.to_be_bytes(),
            len,
        }
    }

    fn prefix_len(&self) -> u8 {
        self.len
    }

    fn write_wire(&self, buf: &mut impl BufMut) {
        buf.put_u8(self.len);
        let n = usize::from(self.len).div_ceil(8);
        buf.put_slice(&self.addr[..n]);
    }
}

/// A validated NLRI field (a run of length-prefixed prefixes) kept as wire bytes.
///
/// Why raw: decoding an UPDATE then costs one bounds walk and no allocation; callers
/// iterate ([`Nlri::iter`]) or decode into a reused vector ([`Nlri::decode_into`]).
/// Host bits set on the wire are kept in the bytes (so re-encoding is byte-exact) and
/// cleared in every decoded prefix.
#[derive(Clone, PartialEq, Eq)]
pub struct Nlri<P> {
    raw: Bytes,
    _family: PhantomData<P>,
}

pub type Ipv4Nlri = Nlri<Ipv4Prefix>;
pub type Ipv6Nlri = Nlri<Ipv6Prefix>;

impl<P> Default for Nlri<P> {
    fn default() -> Self {
        Self {
            raw: Bytes::new(),
            _family: PhantomData,
        }
    }
}

impl<P: Prefix> Nlri<P> {
    /// Checks every prefix length and that no prefix runs past the end.
    pub fn decode(raw: Bytes) -> Result<Self, PrefixError> {
        validate::<P>(&raw)?;
        Ok(Self {
            raw,
            _family: PhantomData,
        })
    }

    /// Encodes prefixes into a new field.
    pub fn from_prefixes<I: IntoIterator<Item = P>>(prefixes: I) -> Self {
        let mut buf = BytesMut::new();
        for p in prefixes {
            p.write_wire(&mut buf);
        }
        Self {
            raw: buf.freeze(),
            _family: PhantomData,
        }
    }

    pub fn iter(&self) -> NlriIter<'_, P> {
        NlriIter {
            rest: &self.raw,
            _family: PhantomData,
        }
    }

    /// Appends the decoded prefixes to `out` (reuse `out` across UPDATEs).
    pub fn decode_into(&self, out: &mut Vec<P>) {
        out.extend(self.iter());
    }

    pub fn is_empty(&self) -> bool {
        self.raw.is_empty()
    }

    /// Number of prefixes (walks the field).
    pub fn count(&self) -> usize {
        self.iter().count()
    }

    /// The field as it goes on the wire.
    pub fn as_bytes(&self) -> &[u8] {
        &self.raw
    }

    pub fn encoded_len(&self) -> usize {
        self.raw.len()
    }
}

impl<P: Prefix> fmt::Debug for Nlri<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<P: Prefix> FromIterator<P> for Nlri<P> {
    fn from_iter<I: IntoIterator<Item = P>>(iter: I) -> Self {
        Self::from_prefixes(iter)
    }
}

impl<'a, P: Prefix> IntoIterator for &'a Nlri<P> {
    type Item = P;
    type IntoIter = NlriIter<'a, P>;
    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

fn validate<P: Prefix>(mut rest: &[u8]) -> Result<(), PrefixError> {
    while let Some((&len, tail)) = rest.split_first() {
        if len > P::MAX_LEN {
            return Err(PrefixError::LengthTooLong {
                len,
                max: P::MAX_LEN,
            });
        }
        let n = usize::from(len).div_ceil(8);
        rest = tail.get(n..).ok_or(PrefixError::Truncated)?;
    }
    Ok(())
}

/// Decodes prefixes of a validated [`Nlri`] one at a time.
pub struct NlriIter<'a, P> {
    rest: &'a [u8],
    _family: PhantomData<P>,
}

impl<P: Prefix> Iterator for NlriIter<'_, P> {
    type Item = P;

    #[inline]
    fn next(&mut self) -> Option<P> {
        let (&len, tail) = self.rest.split_first()?;
        let n = usize::from(len).div_ceil(8);
        // Validated at construction; the checks only keep this panic-free.
        if len > P::MAX_LEN || tail.len() < n {
            self.rest = &[];
            return None;
        }
        let (addr, rest) = tail.split_at(n);
        self.rest = rest;
        Some(P::from_wire(len, addr))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v4_minimal_encoding_and_host_bits() {
        let p = Ipv4Prefix::new(Ipv4Addr::new(203, 0, 113, 200), 25).unwrap();
        assert_eq!(p.addr(), Ipv4Addr::new(203, 0, 113, 128));
        let nlri = Ipv4Nlri::from_prefixes([p, Ipv4Prefix::default()]);
        assert_eq!(nlri.as_bytes(), &[25, 203, 0, 113, 128, 0]);
        // Host bits on the wire are masked when decoded.
        let raw = Ipv4Nlri::decode(Bytes::from_static(&[23, 10, 1, 3])).unwrap();
        let got: Vec<_> = raw.iter().collect();
        assert_eq!(
            got,
            vec![Ipv4Prefix::new(Ipv4Addr::new(10, 1, 2, 0), 23).unwrap()]
        );
    }

    #[test]
    fn rejects_bad_lengths() {
        assert_eq!(
            Ipv4Nlri::decode(Bytes::from_static(&[33, 1, 2, 3, 4, 5])),
            Err(PrefixError::LengthTooLong { len: 33, max: 32 })
        );
        assert_eq!(
            Ipv4Nlri::decode(Bytes::from_static(&[24, 1, 2])),
            Err(PrefixError::Truncated)
        );
        assert!(Ipv6Nlri::decode(Bytes::from_static(&[129])).is_err());
        assert!(Ipv4Prefix::new(Ipv4Addr::UNSPECIFIED, 33).is_err());
        assert!(Ipv6Prefix::new(Ipv6Addr::UNSPECIFIED, 129).is_err());
    }

    #[test]
    fn v6_roundtrip() {
        let p = Ipv6Prefix::new("2001:db8:ffff::1".parse().unwrap(), 33).unwrap();
        assert_eq!(p.addr(), "2001:db8:8000::".parse::<Ipv6Addr>().unwrap());
        let nlri = Ipv6Nlri::from_prefixes([p]);
        assert_eq!(nlri.as_bytes(), &[33, 0x20, 0x01, 0x0d, 0xb8, 0x80]);
        assert_eq!(
            Ipv6Nlri::decode(Bytes::copy_from_slice(nlri.as_bytes())).unwrap(),
            nlri
        );
        assert!(p.contains("2001:db8:8000::5".parse().unwrap()));
    }

    #[test]
    fn prefix_sizes_stay_compact() {
        assert_eq!(std::mem::size_of::<Ipv4Prefix>(), 8);
        assert_eq!(std::mem::size_of::<Ipv6Prefix>(), 17);
    }
}
