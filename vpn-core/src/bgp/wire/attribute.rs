//! Path attributes (RFC 4271 §4.3, §5) with RFC 7606 error actions.
//!
//! Known attributes are decoded into typed fields of [`PathAttributes`]; unknown ones
//! are kept raw with their flags. Encoding writes MP_REACH_NLRI / MP_UNREACH_NLRI first
//! (RFC 7606 §5.1), then the rest in ascending type order (RFC 4271 §5 suggests it)
//! with unknown ones interleaved by type, and picks the extended-length flag from the
//! value size. Decoding accepts any order.

use std::net::{Ipv4Addr, Ipv6Addr};

use bytes::{BufMut, Bytes};

use super::notification::{update_subcode, ErrorCode, NotificationMessage};
use super::prefix::{Afi, Ipv4Nlri, Ipv6Nlri, Safi};
use super::update::ErrorAction;
use super::{Reader, WireContext};

/// AS number that stands in for a 4-octet AS towards 2-octet speakers (RFC 6793).
pub const AS_TRANS: u16 = 23456;

/// Attribute type code. Open: unknown types are kept raw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AttrType(pub u8);

impl AttrType {
    pub const ORIGIN: AttrType = AttrType(1);
    pub const AS_PATH: AttrType = AttrType(2);
    pub const NEXT_HOP: AttrType = AttrType(3);
    pub const MULTI_EXIT_DISC: AttrType = AttrType(4);
    pub const LOCAL_PREF: AttrType = AttrType(5);
    pub const ATOMIC_AGGREGATE: AttrType = AttrType(6);
    pub const AGGREGATOR: AttrType = AttrType(7);
    /// RFC 1997.
    pub const COMMUNITIES: AttrType = AttrType(8);
    /// RFC 4760.
    pub const MP_REACH_NLRI: AttrType = AttrType(14);
    pub const MP_UNREACH_NLRI: AttrType = AttrType(15);
    /// RFC 6793.
    pub const AS4_PATH: AttrType = AttrType(17);
    pub const AS4_AGGREGATOR: AttrType = AttrType(18);
    /// RFC 8092.
    pub const LARGE_COMMUNITIES: AttrType = AttrType(32);
}

/// Attribute flags byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct AttrFlags(pub u8);

impl AttrFlags {
    pub const OPTIONAL: u8 = 0x80;
    pub const TRANSITIVE: u8 = 0x40;
    pub const PARTIAL: u8 = 0x20;
    pub const EXTENDED_LENGTH: u8 = 0x10;

    const WELL_KNOWN: AttrFlags = AttrFlags(Self::TRANSITIVE);
    const OPTIONAL_TRANSITIVE: AttrFlags = AttrFlags(Self::OPTIONAL | Self::TRANSITIVE);
    const OPTIONAL_NON_TRANSITIVE: AttrFlags = AttrFlags(Self::OPTIONAL);

    pub fn optional(self) -> bool {
        self.0 & Self::OPTIONAL != 0
    }
    pub fn transitive(self) -> bool {
        self.0 & Self::TRANSITIVE != 0
    }
    pub fn partial(self) -> bool {
        self.0 & Self::PARTIAL != 0
    }
    pub fn extended_length(self) -> bool {
        self.0 & Self::EXTENDED_LENGTH != 0
    }
}

/// ORIGIN values (RFC 4271 §5.1.1); others are malformed (treat-as-withdraw).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Origin {
    Igp = 0,
    Egp = 1,
    Incomplete = 2,
}

/// AS_PATH segment type (RFC 4271, RFC 5065 for the confederation ones).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SegmentType(pub u8);

impl SegmentType {
    pub const AS_SET: SegmentType = SegmentType(1);
    pub const AS_SEQUENCE: SegmentType = SegmentType(2);
    pub const AS_CONFED_SEQUENCE: SegmentType = SegmentType(3);
    pub const AS_CONFED_SET: SegmentType = SegmentType(4);

    fn is_known(self) -> bool {
        (1..=4).contains(&self.0)
    }

    fn is_confed(self) -> bool {
        self == Self::AS_CONFED_SEQUENCE || self == Self::AS_CONFED_SET
    }
}

/// One AS_PATH segment.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct AsSegment {
    pub kind: SegmentType,
    pub asns: Vec<u32>,
}

/// AS_PATH or AS4_PATH.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct AsPath {
    pub segments: Vec<AsSegment>,
}

/// Segments hold at most 255 ASes (one-byte count); longer ones are split on encode.
const MAX_SEGMENT_ASNS: usize = 255;

impl AsPath {
    /// A path of one AS_SEQUENCE (empty path if `asns` is empty).
    pub fn from_sequence(asns: Vec<u32>) -> Self {
        if asns.is_empty() {
            return Self::default();
        }
        Self {
            segments: vec![AsSegment {
                kind: SegmentType::AS_SEQUENCE,
                asns,
            }],
        }
    }

    /// Path length for best-path selection and RFC 6793 §4.2.3: an AS_SET counts as
    /// one, confederation segments as zero (RFC 5065 §5.3).
    pub fn path_len(&self) -> usize {
        self.segments
            .iter()
            .map(|s| match s.kind {
                SegmentType::AS_SEQUENCE => s.asns.len(),
                SegmentType::AS_SET => 1,
                _ => 0,
            })
            .sum()
    }

    /// The neighbouring AS: first AS of a leading AS_SEQUENCE.
    pub fn first_asn(&self) -> Option<u32> {
        let first = self.segments.first()?;
        (first.kind == SegmentType::AS_SEQUENCE).then(|| first.asns.first().copied())?
    }

    fn encoded_len(&self, width: usize) -> usize {
        self.segments
            .iter()
            .filter(|s| !s.asns.is_empty())
            .map(|s| {
                let chunks = s.asns.len().div_ceil(MAX_SEGMENT_ASNS);
                2 * chunks + width * s.asns.len()
            })
            .sum()
    }

    fn encode(&self, buf: &mut impl BufMut, width: usize) {
        for seg in &self.segments {
            for chunk in seg.asns.chunks(MAX_SEGMENT_ASNS) {
                buf.put_u8(seg.kind.0);
                buf.put_u8(chunk.len() as u8);
                for &asn in chunk {
                    if width == 4 {
                        buf.put_u32(asn);
                    } else {
                        buf.put_u16(u16::try_from(asn).unwrap_or(AS_TRANS));
                    }
                }
            }
        }
    }

    /// `None` if malformed (RFC 7606 §7.2): unknown segment type, zero-length segment,
    /// or a segment running past the attribute.
    fn decode(value: &Bytes, width: usize) -> Option<Self> {
        let mut r = Reader::new(value);
        let mut segments = Vec::new();
        while r.remaining() > 0 {
            let kind = SegmentType(r.u8()?);
            let count = usize::from(r.u8()?);
            if !kind.is_known() || count == 0 {
                return None;
            }
            let raw = r.slice(count * width)?;
            let asns = if width == 4 {
                raw.chunks_exact(4)
                    .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
                    .collect()
            } else {
                raw.chunks_exact(2)
                    .map(|c| u32::from(u16::from_be_bytes([c[0], c[1]])))
                    .collect()
            };
            segments.push(AsSegment { kind, asns });
        }
        Some(Self { segments })
    }
}

/// AGGREGATOR / AS4_AGGREGATOR value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Aggregator {
    pub asn: u32,
    pub addr: Ipv4Addr,
}

/// A standard community (RFC 1997): 16-bit AS, 16-bit value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Community(pub u32);

impl Community {
    pub const NO_EXPORT: Community = Community(0xFFFF_FF01);
    pub const NO_ADVERTISE: Community = Community(0xFFFF_FF02);
    pub const NO_EXPORT_SUBCONFED: Community = Community(0xFFFF_FF03);

    pub fn new(asn: u16, value: u16) -> Self {
        Self((u32::from(asn) << 16) | u32::from(value))
    }
}

/// A large community (RFC 8092).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct LargeCommunity {
    pub global_admin: u32,
    pub local_data1: u32,
    pub local_data2: u32,
}

/// Next hop of MP_REACH_NLRI.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum MpNextHop {
    Ipv4(Ipv4Addr),
    /// 16 bytes, or 32 with a link-local address (RFC 2545 §3); also used for IPv4
    /// routes over IPv6 next hops (RFC 8950).
    Ipv6 {
        global: Ipv6Addr,
        link_local: Option<Ipv6Addr>,
    },
    /// Families we do not parse.
    Other(Bytes),
}

impl MpNextHop {
    fn encoded_len(&self) -> usize {
        match self {
            MpNextHop::Ipv4(_) => 4,
            MpNextHop::Ipv6 {
                link_local: None, ..
            } => 16,
            MpNextHop::Ipv6 {
                link_local: Some(_),
                ..
            } => 32,
            MpNextHop::Other(b) => b.len().min(255),
        }
    }

    fn encode(&self, buf: &mut impl BufMut) {
        match self {
            MpNextHop::Ipv4(a) => buf.put_slice(&a.octets()),
            MpNextHop::Ipv6 { global, link_local } => {
                buf.put_slice(&global.octets());
                if let Some(ll) = link_local {
                    buf.put_slice(&ll.octets());
                }
            }
            MpNextHop::Other(b) => buf.put_slice(&b[..b.len().min(255)]),
        }
    }
}

/// NLRI of an MP_REACH_NLRI / MP_UNREACH_NLRI attribute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MpNlri {
    Ipv4(Ipv4Nlri),
    Ipv6(Ipv6Nlri),
    /// Families we do not parse, kept raw.
    Other(Bytes),
}

impl MpNlri {
    fn as_bytes(&self) -> &[u8] {
        match self {
            MpNlri::Ipv4(n) => n.as_bytes(),
            MpNlri::Ipv6(n) => n.as_bytes(),
            MpNlri::Other(b) => b,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.as_bytes().is_empty()
    }

    fn decode(afi: Afi, safi: Safi, raw: Bytes) -> Option<Self> {
        if !family_parsed(afi, safi) {
            return Some(MpNlri::Other(raw));
        }
        match afi {
            Afi::IPV4 => Ipv4Nlri::decode(raw).ok().map(MpNlri::Ipv4),
            _ => Ipv6Nlri::decode(raw).ok().map(MpNlri::Ipv6),
        }
    }
}

/// Families whose next hops and NLRI we decode (unicast and multicast share formats).
fn family_parsed(afi: Afi, safi: Safi) -> bool {
    matches!(afi, Afi::IPV4 | Afi::IPV6) && matches!(safi, Safi::UNICAST | Safi::MULTICAST)
}

/// MP_REACH_NLRI (RFC 4760 §3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MpReach {
    pub afi: Afi,
    pub safi: Safi,
    pub next_hop: MpNextHop,
    pub nlri: MpNlri,
}

/// MP_UNREACH_NLRI (RFC 4760 §4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MpUnreach {
    pub afi: Afi,
    pub safi: Safi,
    pub withdrawn: MpNlri,
}

/// An attribute we do not interpret, kept with its flags.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RawAttribute {
    /// As received; the extended-length bit is recomputed on encode.
    pub flags: AttrFlags,
    pub type_code: AttrType,
    pub value: Bytes,
}

impl RawAttribute {
    /// What to pass on to other peers (RFC 4271 §5): optional transitive attributes
    /// with the Partial bit set, since we did not understand them; nothing otherwise.
    pub fn to_propagate(&self) -> Option<RawAttribute> {
        if !(self.flags.optional() && self.flags.transitive()) {
            return None;
        }
        Some(RawAttribute {
            flags: AttrFlags(self.flags.0 | AttrFlags::PARTIAL),
            type_code: self.type_code,
            value: self.value.clone(),
        })
    }
}

/// The path attributes of an UPDATE.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct PathAttributes {
    pub origin: Option<Origin>,
    pub as_path: Option<AsPath>,
    pub next_hop: Option<Ipv4Addr>,
    pub med: Option<u32>,
    pub local_pref: Option<u32>,
    pub atomic_aggregate: bool,
    pub aggregator: Option<Aggregator>,
    pub communities: Option<Vec<Community>>,
    pub mp_reach: Option<MpReach>,
    pub mp_unreach: Option<MpUnreach>,
    pub as4_path: Option<AsPath>,
    pub as4_aggregator: Option<Aggregator>,
    pub large_communities: Option<Vec<LargeCommunity>>,
    /// Unknown attributes, in received order.
    pub unknown: Vec<RawAttribute>,
}

/// A borrowed attribute value, so length computation and encoding share one walk.
enum Value<'a> {
    Origin(Origin),
    AsPath(&'a AsPath, usize),
    Ipv4(Ipv4Addr),
    U32(u32),
    Empty,
    Aggregator(&'a Aggregator, usize),
    Communities(&'a [Community]),
    LargeCommunities(&'a [LargeCommunity]),
    MpReach(&'a MpReach),
    MpUnreach(&'a MpUnreach),
    Raw(&'a [u8]),
}

impl Value<'_> {
    fn len(&self) -> usize {
        match self {
            Value::Origin(_) => 1,
            Value::AsPath(p, width) => p.encoded_len(*width),
            Value::Ipv4(_) | Value::U32(_) => 4,
            Value::Empty => 0,
            Value::Aggregator(_, width) => width + 4,
            Value::Communities(c) => 4 * c.len(),
            Value::LargeCommunities(c) => 12 * c.len(),
            Value::MpReach(m) => 5 + m.next_hop.encoded_len() + m.nlri.as_bytes().len(),
            Value::MpUnreach(m) => 3 + m.withdrawn.as_bytes().len(),
            Value::Raw(b) => b.len(),
        }
    }

    fn encode(&self, buf: &mut impl BufMut) {
        match self {
            Value::Origin(o) => buf.put_u8(*o as u8),
            Value::AsPath(p, width) => p.encode(buf, *width),
            Value::Ipv4(a) => buf.put_slice(&a.octets()),
            Value::U32(v) => buf.put_u32(*v),
            Value::Empty => {}
            Value::Aggregator(a, width) => {
                if *width == 4 {
                    buf.put_u32(a.asn);
                } else {
                    buf.put_u16(u16::try_from(a.asn).unwrap_or(AS_TRANS));
                }
                buf.put_slice(&a.addr.octets());
            }
            Value::Communities(cs) => cs.iter().for_each(|c| buf.put_u32(c.0)),
            Value::LargeCommunities(cs) => cs.iter().for_each(|c| {
                buf.put_u32(c.global_admin);
                buf.put_u32(c.local_data1);
                buf.put_u32(c.local_data2);
            }),
            Value::MpReach(m) => {
                buf.put_u16(m.afi.0);
                buf.put_u8(m.safi.0);
                buf.put_u8(m.next_hop.encoded_len() as u8);
                m.next_hop.encode(buf);
                buf.put_u8(0); // Reserved (RFC 4760 §3).
                buf.put_slice(m.nlri.as_bytes());
            }
            Value::MpUnreach(m) => {
                buf.put_u16(m.afi.0);
                buf.put_u8(m.safi.0);
                buf.put_slice(m.withdrawn.as_bytes());
            }
            Value::Raw(b) => buf.put_slice(b),
        }
    }
}

fn header_len(value_len: usize) -> usize {
    if value_len > 255 {
        4
    } else {
        3
    }
}

impl PathAttributes {
    /// Visits every attribute in encoding order: MP_(UN)REACH_NLRI, then known ones by
    /// type code with unknown ones merged in before the first known type above theirs.
    fn for_each(&self, ctx: &WireContext, mut f: impl FnMut(AttrFlags, AttrType, Value<'_>)) {
        let width = if ctx.four_octet_as { 4 } else { 2 };
        let wk = AttrFlags::WELL_KNOWN;
        let ot = AttrFlags::OPTIONAL_TRANSITIVE;
        let on = AttrFlags::OPTIONAL_NON_TRANSITIVE;
        // RFC 7606 §5.1: MP_(UN)REACH_NLRI go first, so a receiver can still find the
        // NLRI when a later attribute is malformed.
        if let Some(m) = &self.mp_reach {
            f(on, AttrType::MP_REACH_NLRI, Value::MpReach(m));
        }
        if let Some(m) = &self.mp_unreach {
            f(on, AttrType::MP_UNREACH_NLRI, Value::MpUnreach(m));
        }
        let known: [(AttrType, AttrFlags, Option<Value<'_>>); 11] = [
            (AttrType::ORIGIN, wk, self.origin.map(Value::Origin)),
            (
                AttrType::AS_PATH,
                wk,
                self.as_path.as_ref().map(|p| Value::AsPath(p, width)),
            ),
            (AttrType::NEXT_HOP, wk, self.next_hop.map(Value::Ipv4)),
            (AttrType::MULTI_EXIT_DISC, on, self.med.map(Value::U32)),
            (AttrType::LOCAL_PREF, wk, self.local_pref.map(Value::U32)),
            (
                AttrType::ATOMIC_AGGREGATE,
                wk,
                self.atomic_aggregate.then_some(Value::Empty),
            ),
            (
                AttrType::AGGREGATOR,
                ot,
                self.aggregator
                    .as_ref()
                    .map(|a| Value::Aggregator(a, width)),
            ),
            (
                AttrType::COMMUNITIES,
                ot,
                self.communities.as_deref().map(Value::Communities),
            ),
            (
                AttrType::AS4_PATH,
                ot,
                self.as4_path.as_ref().map(|p| Value::AsPath(p, 4)),
            ),
            (
                AttrType::AS4_AGGREGATOR,
                ot,
                self.as4_aggregator
                    .as_ref()
                    .map(|a| Value::Aggregator(a, 4)),
            ),
            (
                AttrType::LARGE_COMMUNITIES,
                ot,
                self.large_communities
                    .as_deref()
                    .map(Value::LargeCommunities),
            ),
        ];
        let mut unknown = self.unknown.iter().peekable();
        for (t, flags, value) in known {
            while let Some(u) = unknown.next_if(|u| u.type_code < t) {
                f(u.flags, u.type_code, Value::Raw(&u.value));
            }
            if let Some(v) = value {
                f(flags, t, v);
            }
        }
        for u in unknown {
            f(u.flags, u.type_code, Value::Raw(&u.value));
        }
    }

    /// Size of the encoded attributes (the Total Path Attribute Length).
    pub fn encoded_len(&self, ctx: &WireContext) -> usize {
        let mut total = 0;
        self.for_each(ctx, |_, _, v| {
            let len = v.len();
            total += header_len(len) + len;
        });
        total
    }

    /// Writes all attributes. Callers check the total size first (a message never
    /// exceeds 4096 bytes, so attribute lengths always fit their fields).
    pub fn encode(&self, buf: &mut impl BufMut, ctx: &WireContext) {
        self.for_each(ctx, |flags, t, v| {
            let len = v.len();
            if len > 255 {
                buf.put_u8(flags.0 | AttrFlags::EXTENDED_LENGTH);
                buf.put_u8(t.0);
                buf.put_u16(len.min(usize::from(u16::MAX)) as u16);
            } else {
                buf.put_u8(flags.0 & !AttrFlags::EXTENDED_LENGTH);
                buf.put_u8(t.0);
                buf.put_u8(len as u8);
            }
            v.encode(buf);
        });
    }

    /// Prepares attributes for a 2-octet peer (RFC 6793 §4.2.2): when AS_PATH or
    /// AGGREGATOR holds an AS above 65535 (which the encoder writes as AS_TRANS), adds
    /// AS4_PATH / AS4_AGGREGATOR with the real values. Confederation segments are left
    /// out of AS4_PATH, which must not carry them.
    pub fn add_as4_for_two_octet_peer(&mut self) {
        let wide = |asn: u32| asn > u32::from(u16::MAX);
        if let Some(path) = &self.as_path {
            if path
                .segments
                .iter()
                .any(|s| s.asns.iter().any(|&a| wide(a)))
            {
                let segments = path
                    .segments
                    .iter()
                    .filter(|s| !s.kind.is_confed())
                    .cloned()
                    .collect();
                self.as4_path = Some(AsPath { segments });
            }
        }
        if let Some(agg) = self.aggregator.filter(|a| wide(a.asn)) {
            self.as4_aggregator = Some(agg);
        }
    }

    /// Replaces AS_PATH and AGGREGATOR with what AS4_PATH / AS4_AGGREGATOR say and
    /// drops the AS4 attributes (RFC 6793 §4.2.3); for UPDATEs from 2-octet peers.
    pub fn reconcile_as4(&mut self) {
        let as4_path = self.as4_path.take();
        let as4_aggregator = self.as4_aggregator.take();
        let Some(as_path) = self.as_path.as_ref() else {
            return;
        };
        let (path, aggregator) = merge_as4_path(
            as_path,
            as4_path.as_ref(),
            self.aggregator.as_ref(),
            as4_aggregator.as_ref(),
        );
        self.as_path = Some(path);
        self.aggregator = aggregator;
    }

    /// Decodes an attribute block. Never fails: errors become the strongest RFC 7606
    /// action seen, and attributes that decoded cleanly are kept.
    pub fn decode(raw: &Bytes, ctx: &WireContext) -> (PathAttributes, Option<ErrorAction>) {
        let mut attrs = PathAttributes::default();
        let mut action: Option<ErrorAction> = None;
        let mut seen = [0u64; 4];
        let mut r = Reader::new(raw);
        while r.remaining() > 0 {
            let start = r.position();
            let Some((flags, type_code, value)) = read_attribute(&mut r) else {
                // RFC 7606 §4: an attribute running past the Total Path Attribute Length,
                // or a header cut short: treat-as-withdraw; the NLRI field is still
                // found through the Total Path Attribute Length.
                escalate(&mut action, ErrorAction::TreatAsWithdraw);
                break;
            };
            let whole = raw.slice(start..r.position());
            let (word, bit) = (usize::from(type_code.0 / 64), 1u64 << (type_code.0 % 64));
            if seen[word] & bit != 0 {
                // RFC 7606 §3 (g): duplicates are dropped, except MP_(UN)REACH_NLRI.
                if matches!(
                    type_code,
                    AttrType::MP_REACH_NLRI | AttrType::MP_UNREACH_NLRI
                ) {
                    escalate(
                        &mut action,
                        reset(update_subcode::MALFORMED_ATTRIBUTE_LIST, Bytes::new()),
                    );
                    return (attrs, action);
                }
                escalate(&mut action, ErrorAction::AttributeDiscard);
                continue;
            }
            seen[word] |= bit;
            if let Err(a) = attrs.decode_one(flags, type_code, value, whole, ctx) {
                let is_reset = matches!(a, ErrorAction::SessionReset(_));
                escalate(&mut action, a);
                if is_reset {
                    return (attrs, action);
                }
            }
        }
        (attrs, action)
    }

    /// Decodes one attribute into `self`, or returns its RFC 7606 error action.
    fn decode_one(
        &mut self,
        flags: AttrFlags,
        t: AttrType,
        value: Bytes,
        whole: Bytes,
        ctx: &WireContext,
    ) -> Result<(), ErrorAction> {
        let width = if ctx.four_octet_as { 4 } else { 2 };
        let Some((expected, on_error)) = known_attribute(t) else {
            if !flags.optional() {
                // RFC 4271 §6.3, unchanged by RFC 7606.
                return Err(reset(
                    update_subcode::UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE,
                    whole,
                ));
            }
            // The extended-length bit is an encoding detail, recomputed on encode.
            self.unknown.push(RawAttribute {
                flags: AttrFlags(flags.0 & !AttrFlags::EXTENDED_LENGTH),
                type_code: t,
                value,
            });
            return Ok(());
        };
        let malformed = || match on_error {
            OnError::Reset => reset(update_subcode::OPTIONAL_ATTRIBUTE_ERROR, whole.clone()),
            OnError::Withdraw => ErrorAction::TreatAsWithdraw,
            OnError::Discard => ErrorAction::AttributeDiscard,
        };
        // RFC 7606 §3 (c): wrong Optional/Transitive bits make the attribute malformed.
        if flags.0 & 0xc0 != expected.0 {
            return Err(match on_error {
                OnError::Reset => reset(update_subcode::ATTRIBUTE_FLAGS_ERROR, whole),
                _ => malformed(),
            });
        }
        let v = value.as_ref();
        match t {
            AttrType::ORIGIN => {
                self.origin = Some(match v {
                    [0] => Origin::Igp,
                    [1] => Origin::Egp,
                    [2] => Origin::Incomplete,
                    _ => return Err(malformed()),
                })
            }
            AttrType::AS_PATH => {
                self.as_path = Some(AsPath::decode(&value, width).ok_or_else(malformed)?)
            }
            AttrType::NEXT_HOP => {
                self.next_hop = Some(Ipv4Addr::from(be_u32(v).ok_or_else(malformed)?))
            }
            AttrType::MULTI_EXIT_DISC => self.med = Some(be_u32(v).ok_or_else(malformed)?),
            AttrType::LOCAL_PREF => self.local_pref = Some(be_u32(v).ok_or_else(malformed)?),
            AttrType::ATOMIC_AGGREGATE => {
                if !v.is_empty() {
                    return Err(malformed());
                }
                self.atomic_aggregate = true;
            }
            AttrType::AGGREGATOR => {
                self.aggregator = Some(decode_aggregator(v, width).ok_or_else(malformed)?)
            }
            AttrType::AS4_AGGREGATOR => {
                self.as4_aggregator = Some(decode_aggregator(v, 4).ok_or_else(malformed)?)
            }
            AttrType::COMMUNITIES => {
                if v.is_empty() || v.len() % 4 != 0 {
                    return Err(malformed());
                }
                let cs = v
                    .chunks_exact(4)
                    .map(|c| Community(u32::from_be_bytes([c[0], c[1], c[2], c[3]])));
                self.communities = Some(cs.collect());
            }
            AttrType::LARGE_COMMUNITIES => {
                if v.is_empty() || v.len() % 12 != 0 {
                    return Err(malformed());
                }
                let cs = v.chunks_exact(12).map(|c| LargeCommunity {
                    global_admin: u32::from_be_bytes([c[0], c[1], c[2], c[3]]),
                    local_data1: u32::from_be_bytes([c[4], c[5], c[6], c[7]]),
                    local_data2: u32::from_be_bytes([c[8], c[9], c[10], c[11]]),
                });
                self.large_communities = Some(cs.collect());
            }
            AttrType::AS4_PATH => {
                // RFC 6793 §6: confederation segments make AS4_PATH malformed.
                let path = AsPath::decode(&value, 4).ok_or_else(malformed)?;
                if path.segments.iter().any(|s| s.kind.is_confed()) {
                    return Err(malformed());
                }
                self.as4_path = Some(path);
            }
            AttrType::MP_REACH_NLRI => {
                self.mp_reach = Some(decode_mp_reach(&value).ok_or_else(malformed)?)
            }
            AttrType::MP_UNREACH_NLRI => {
                self.mp_unreach = Some(decode_mp_unreach(&value).ok_or_else(malformed)?)
            }
            _ => {}
        }
        Ok(())
    }
}

/// How RFC 7606 §7 handles a malformed instance of each known attribute.
#[derive(Clone, Copy)]
enum OnError {
    Withdraw,
    Discard,
    Reset,
}

fn known_attribute(t: AttrType) -> Option<(AttrFlags, OnError)> {
    let wk = AttrFlags::WELL_KNOWN;
    let ot = AttrFlags::OPTIONAL_TRANSITIVE;
    let on = AttrFlags::OPTIONAL_NON_TRANSITIVE;
    Some(match t {
        AttrType::ORIGIN | AttrType::AS_PATH | AttrType::NEXT_HOP => (wk, OnError::Withdraw),
        AttrType::LOCAL_PREF => (wk, OnError::Withdraw),
        AttrType::MULTI_EXIT_DISC => (on, OnError::Withdraw),
        AttrType::ATOMIC_AGGREGATE => (wk, OnError::Discard),
        AttrType::AGGREGATOR | AttrType::AS4_AGGREGATOR | AttrType::AS4_PATH => {
            (ot, OnError::Discard)
        }
        AttrType::COMMUNITIES | AttrType::LARGE_COMMUNITIES => (ot, OnError::Withdraw),
        AttrType::MP_REACH_NLRI | AttrType::MP_UNREACH_NLRI => (on, OnError::Reset),
        _ => return None,
    })
}

/// Reads flags, type, length and value; `None` if any of it runs past the block.
fn read_attribute(r: &mut Reader<'_>) -> Option<(AttrFlags, AttrType, Bytes)> {
    let flags = AttrFlags(r.u8()?);
    let type_code = AttrType(r.u8()?);
    let len = if flags.extended_length() {
        usize::from(r.u16()?)
    } else {
        usize::from(r.u8()?)
    };
    Some((flags, type_code, r.bytes(len)?))
}

fn be_u32(v: &[u8]) -> Option<u32> {
    let &[a, b, c, d] = v else { return None };
    Some(u32::from_be_bytes([a, b, c, d]))
}

fn decode_aggregator(v: &[u8], width: usize) -> Option<Aggregator> {
    if v.len() != width + 4 {
        return None;
    }
    let (asn, addr) = v.split_at(width);
    let asn = if width == 4 {
        be_u32(asn)?
    } else {
        u32::from(u16::from_be_bytes([asn[0], asn[1]]))
    };
    Some(Aggregator {
        asn,
        addr: Ipv4Addr::from(be_u32(addr)?),
    })
}

fn decode_mp_reach(value: &Bytes) -> Option<MpReach> {
    let mut r = Reader::new(value);
    let afi = Afi(r.u16()?);
    let safi = Safi(r.u8()?);
    let nh_len = usize::from(r.u8()?);
    let nh = r.bytes(nh_len)?;
    let _reserved = r.u8()?;
    let next_hop = if family_parsed(afi, safi) {
        match (afi, nh.len()) {
            (Afi::IPV4, 4) => MpNextHop::Ipv4(Ipv4Addr::from(be_u32(&nh)?)),
            (_, 16) | (_, 32) => {
                let global = Ipv6Addr::from(<[u8; 16]>::try_from(&nh[..16]).ok()?);
                let link_local = match nh.get(16..32) {
                    Some(ll) => Some(Ipv6Addr::from(<[u8; 16]>::try_from(ll).ok()?)),
                    None => None,
                };
                MpNextHop::Ipv6 { global, link_local }
            }
            _ => return None,
        }
    } else {
        MpNextHop::Other(nh)
    };
    let nlri = MpNlri::decode(afi, safi, r.rest())?;
    Some(MpReach {
        afi,
        safi,
        next_hop,
        nlri,
    })
}

fn decode_mp_unreach(value: &Bytes) -> Option<MpUnreach> {
    let mut r = Reader::new(value);
    let afi = Afi(r.u16()?);
    let safi = Safi(r.u8()?);
    let withdrawn = MpNlri::decode(afi, safi, r.rest())?;
    Some(MpUnreach {
        afi,
        safi,
        withdrawn,
    })
}

pub(crate) fn reset(subcode: u8, data: Bytes) -> ErrorAction {
    ErrorAction::SessionReset(NotificationMessage::new(
        ErrorCode::UPDATE_MESSAGE,
        subcode,
        data,
    ))
}

/// Keeps the strongest action: discard < treat-as-withdraw < reset.
pub(crate) fn escalate(current: &mut Option<ErrorAction>, new: ErrorAction) {
    if current
        .as_ref()
        .is_none_or(|c| c.severity() < new.severity())
    {
        *current = Some(new);
    }
}

/// RFC 6793 §4.2.3: rebuild the real AS path from AS_PATH and AS4_PATH received from a
/// 2-octet speaker, and the real aggregator from AGGREGATOR and AS4_AGGREGATOR.
///
/// If AGGREGATOR names a real 2-octet AS (not AS_TRANS), the aggregating speaker was a
/// 2-octet one, so both AS4 attributes are stale and ignored. An AS4_PATH longer than
/// AS_PATH is ignored too. Otherwise the leading ASes of AS_PATH that AS4_PATH does not
/// cover (added by 2-octet speakers after it) are kept and AS4_PATH appended.
pub fn merge_as4_path(
    as_path: &AsPath,
    as4_path: Option<&AsPath>,
    aggregator: Option<&Aggregator>,
    as4_aggregator: Option<&Aggregator>,
) -> (AsPath, Option<Aggregator>) {
    if let Some(agg) = aggregator {
        if agg.asn != u32::from(AS_TRANS) {
            return (as_path.clone(), Some(*agg));
        }
    }
    let aggregator = match (aggregator, as4_aggregator) {
        (Some(_), Some(a4)) => Some(*a4),
        (agg, _) => agg.copied(),
    };
    let Some(as4_path) = as4_path else {
        return (as_path.clone(), aggregator);
    };
    let (len, len4) = (as_path.path_len(), as4_path.path_len());
    if len < len4 {
        return (as_path.clone(), aggregator);
    }
    let mut keep = len - len4;
    let mut segments = Vec::with_capacity(as_path.segments.len() + as4_path.segments.len());
    for seg in &as_path.segments {
        if keep == 0 {
            break;
        }
        match seg.kind {
            SegmentType::AS_SEQUENCE => {
                let n = keep.min(seg.asns.len());
                segments.push(AsSegment {
                    kind: seg.kind,
                    asns: seg.asns[..n].to_vec(),
                });
                keep -= n;
            }
            SegmentType::AS_SET => {
                segments.push(seg.clone());
                keep -= 1;
            }
            // Confederation segments count zero and AS4_PATH never has them: keep.
            _ => segments.push(seg.clone()),
        }
    }
    for seg in &as4_path.segments {
        match segments.last_mut() {
            Some(last)
                if last.kind == SegmentType::AS_SEQUENCE
                    && seg.kind == SegmentType::AS_SEQUENCE
                    && last.asns.len() + seg.asns.len() <= MAX_SEGMENT_ASNS =>
            {
                last.asns.extend_from_slice(&seg.asns)
            }
            _ => segments.push(seg.clone()),
        }
    }
    (AsPath { segments }, aggregator)
}
