//! ISAKMP wire format (RFC 2408 §3) with the IPsec DOI (RFC 2407) and the
//! NAT-D payload of RFC 3947: the header, the payload chain and every payload
//! body, apart from any protocol behaviour.
//!
//! - [`Header::decode`] reads the 28-byte header; [`Message::decode`] parses
//!   a whole plaintext datagram (after any NAT-T non-ESP marker has been
//!   removed) and checks the header length against it.
//! - [`decode_chain`] walks a payload chain and returns each payload's type
//!   and byte range, so that callers can hash exact payload bodies (SAi_b,
//!   IDii_b) and "the rest of the message" (Quick Mode HASH inputs). Bytes
//!   after the last payload are allowed there: they are the CBC padding of a
//!   decrypted body.
//! - Encoders are separate: [`Message::encode`] / [`encode_payloads`] write the
//!   next-payload chain and every length themselves.
//!
//! Code points are open newtypes: unknown values survive a round trip, and
//! so do unknown payloads ([`Payload::Unknown`]). Encoding is canonical
//! (reserved fields zero; attributes keep their TV/TLV form), so decode →
//! encode is byte-exact for canonical input. Nothing here panics on any input.

use core::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

#[cfg(test)]
mod tests;

/// Length of the ISAKMP header.
pub const HEADER_LEN: usize = 28;
/// Length of the generic payload header.
pub const GENERIC_HEADER_LEN: usize = 4;
/// The IPsec DOI (RFC 2407 §4.2).
pub const DOI_IPSEC: u32 = 1;
/// SIT_IDENTITY_ONLY (RFC 2407 §4.2.1).
pub const SIT_IDENTITY_ONLY: u32 = 1;
/// ISAKMP version 1.0 (major 1, minor 0).
pub const VERSION_1_0: u8 = 0x10;

/// Vendor ID of RFC 3947 NAT traversal (MD5 of "RFC 3947").
pub const VID_NAT_T_RFC3947: [u8; 16] = [
    0x4a, 0x13, 0x1c, 0x81, 0x07, 0x03, 0x58, 0x45, 0x5c, 0x57, 0x28, 0xf2, 0x0e, 0x95, 0x45, 0x2f,
];
/// Vendor ID of RFC 3706 dead peer detection (including its version bytes 1.0).
pub const VID_DPD: [u8; 16] = [
    0xaf, 0xca, 0xd7, 0x13, 0x68, 0xa1, 0xf1, 0xc9, 0x6b, 0x86, 0x96, 0xfc, 0x77, 0x57, 0x01, 0x00,
];

/// Everything that can be wrong with a datagram. Carries only structure
/// facts, never payload contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// The data ends before a field or payload that must be there.
    #[error("truncated {what}")]
    Truncated { what: &'static str },
    /// A length or field has an impossible value.
    #[error("malformed {what}: {reason}")]
    Malformed {
        what: &'static str,
        reason: &'static str,
    },
    /// Not ISAKMP version 1.x.
    #[error("unsupported ISAKMP version {major}.{minor}")]
    UnsupportedVersion { major: u8, minor: u8 },
    /// The header length does not match the datagram length.
    #[error("header says {header} bytes, datagram has {actual}")]
    LengthMismatch { header: u32, actual: usize },
}

// ---------------------------------------------------------------------------
// Code points
// ---------------------------------------------------------------------------

macro_rules! newtype {
    ($(#[$m:meta])* $name:ident($ty:ty) { $($(#[$cm:meta])* $c:ident = $v:expr),* $(,)? }) => {
        $(#[$m])*
        #[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(pub $ty);
        impl $name {
            $($(#[$cm])* pub const $c: $name = $name($v);)*
            /// The registry name, if this value is one we know.
            pub fn name(self) -> Option<&'static str> {
                match self.0 {
                    $($v => Some(stringify!($c)),)*
                    _ => None,
                }
            }
        }
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                match self.name() {
                    Some(n) => f.write_str(n),
                    None => write!(f, "{}({})", stringify!($name), self.0),
                }
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(self, f)
            }
        }
    };
}

newtype!(
    /// Next Payload / payload type (RFC 2408 §3.1, RFC 3947 §3).
    PayloadType(u8) {
        NONE = 0, SA = 1, PROPOSAL = 2, TRANSFORM = 3, KE = 4, ID = 5, CERT = 6, CR = 7,
        HASH = 8, SIG = 9, NONCE = 10, N = 11, D = 12, VID = 13, NAT_D = 20, NAT_OA = 21,
        /// draft-ietf-ipsec-nat-t-ike-02/03 NAT-D.
        NAT_D_DRAFT = 130,
    }
);

newtype!(
    /// Exchange type (RFC 2408 §3.1, RFC 2409 §5.5).
    ExchangeType(u8) {
        BASE = 1, IDENTITY_PROTECTION = 2, AUTH_ONLY = 3, AGGRESSIVE = 4, INFORMATIONAL = 5,
        QUICK_MODE = 32, NEW_GROUP_MODE = 33,
    }
);

impl ExchangeType {
    /// Main Mode is the Identity Protection exchange.
    pub const MAIN_MODE: ExchangeType = ExchangeType::IDENTITY_PROTECTION;
}

newtype!(
    /// Notify message type (RFC 2408 §3.14.1, RFC 2407 §4.6.3, RFC 3706).
    NotifyType(u16) {
        INVALID_PAYLOAD_TYPE = 1, DOI_NOT_SUPPORTED = 2, SITUATION_NOT_SUPPORTED = 3,
        INVALID_COOKIE = 4, INVALID_MAJOR_VERSION = 5, INVALID_MINOR_VERSION = 6,
        INVALID_EXCHANGE_TYPE = 7, INVALID_FLAGS = 8, INVALID_MESSAGE_ID = 9,
        INVALID_PROTOCOL_ID = 10, INVALID_SPI = 11, INVALID_TRANSFORM_ID = 12,
        ATTRIBUTES_NOT_SUPPORTED = 13, NO_PROPOSAL_CHOSEN = 14, BAD_PROPOSAL_SYNTAX = 15,
        PAYLOAD_MALFORMED = 16, INVALID_KEY_INFORMATION = 17, INVALID_ID_INFORMATION = 18,
        INVALID_CERT_ENCODING = 19, INVALID_CERTIFICATE = 20, CERT_TYPE_UNSUPPORTED = 21,
        INVALID_CERT_AUTHORITY = 22, INVALID_HASH_INFORMATION = 23, AUTHENTICATION_FAILED = 24,
        INVALID_SIGNATURE = 25, ADDRESS_NOTIFICATION = 26, NOTIFY_SA_LIFETIME = 27,
        CERTIFICATE_UNAVAILABLE = 28, UNSUPPORTED_EXCHANGE_TYPE = 29,
        UNEQUAL_PAYLOAD_LENGTHS = 30, CONNECTED = 16384, RESPONDER_LIFETIME = 24576,
        REPLAY_STATUS = 24577, INITIAL_CONTACT = 24578, R_U_THERE = 36136,
        R_U_THERE_ACK = 36137,
    }
);

impl NotifyType {
    /// Types below 16384 report errors (RFC 2408 §3.14.1).
    pub fn is_error(self) -> bool {
        self.0 < 16384
    }
}

newtype!(
    /// Protocol ID (RFC 2407 §4.4.1).
    ProtocolId(u8) { ISAKMP = 1, AH = 2, ESP = 3, IPCOMP = 4 }
);

newtype!(
    /// Identification type (RFC 2407 §4.6.2.1).
    IdType(u8) {
        IPV4_ADDR = 1, FQDN = 2, USER_FQDN = 3, IPV4_ADDR_SUBNET = 4, IPV6_ADDR = 5,
        IPV6_ADDR_SUBNET = 6, IPV4_ADDR_RANGE = 7, IPV6_ADDR_RANGE = 8, DER_ASN1_DN = 9,
        DER_ASN1_GN = 10, KEY_ID = 11,
    }
);

/// Phase 1 (ISAKMP SA) attribute types and values (RFC 2409 Appendix A).
pub mod ike_attr {
    pub const ENCRYPTION_ALGORITHM: u16 = 1;
    pub const HASH_ALGORITHM: u16 = 2;
    pub const AUTHENTICATION_METHOD: u16 = 3;
    pub const GROUP_DESCRIPTION: u16 = 4;
    pub const LIFE_TYPE: u16 = 11;
    pub const LIFE_DURATION: u16 = 12;
    pub const KEY_LENGTH: u16 = 14;

    /// Encryption algorithm AES-CBC (RFC 3602 registry value).
    pub const ENCR_AES_CBC: u16 = 7;
    pub const HASH_SHA1: u16 = 2;
    pub const HASH_SHA2_256: u16 = 4;
    pub const HASH_SHA2_384: u16 = 5;
    pub const HASH_SHA2_512: u16 = 6;
    pub const AUTH_PSK: u16 = 1;
    pub const LIFE_SECONDS: u16 = 1;
    pub const LIFE_KILOBYTES: u16 = 2;
    /// The phase 1 transform ID KEY_IKE.
    pub const TRANSFORM_KEY_IKE: u8 = 1;
}

/// IPsec DOI SA attribute types and values (RFC 2407 §4.5, RFC 3947 §5,
/// RFC 4868 §4.1).
pub mod ipsec_attr {
    pub const SA_LIFE_TYPE: u16 = 1;
    pub const SA_LIFE_DURATION: u16 = 2;
    pub const GROUP_DESCRIPTION: u16 = 3;
    pub const ENCAPSULATION_MODE: u16 = 4;
    pub const AUTHENTICATION_ALGORITHM: u16 = 5;
    pub const KEY_LENGTH: u16 = 6;

    pub const LIFE_SECONDS: u16 = 1;
    pub const LIFE_KILOBYTES: u16 = 2;
    pub const MODE_TUNNEL: u16 = 1;
    pub const MODE_TRANSPORT: u16 = 2;
    /// UDP-Encapsulated-Tunnel (RFC 3947).
    pub const MODE_UDP_TUNNEL: u16 = 3;
    /// UDP-Encapsulated-Tunnel as numbered by the NAT-T drafts.
    pub const MODE_UDP_TUNNEL_DRAFT: u16 = 61443;
    pub const AUTH_HMAC_MD5: u16 = 1;
    /// HMAC-SHA (RFC 2407 §4.5: value 2; used as HMAC-SHA1-96 in ESP).
    pub const AUTH_HMAC_SHA1: u16 = 2;
    pub const AUTH_HMAC_SHA2_256: u16 = 5;
    pub const AUTH_HMAC_SHA2_384: u16 = 6;
    pub const AUTH_HMAC_SHA2_512: u16 = 7;
    /// The ESP transform ID ESP_AES (AES-CBC).
    pub const TRANSFORM_ESP_AES: u8 = 12;
}

// ---------------------------------------------------------------------------
// Reader
// ---------------------------------------------------------------------------

struct Reader<'a> {
    buf: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8], what: &'static str) -> Reader<'a> {
        Reader { buf, what }
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if n > self.buf.len() {
            return Err(WireError::Truncated { what: self.what });
        }
        let (h, t) = self.buf.split_at(n);
        self.buf = t;
        Ok(h)
    }
    fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16, WireError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32, WireError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    fn rest(&mut self) -> &'a [u8] {
        core::mem::take(&mut self.buf)
    }
    fn malformed(&self, reason: &'static str) -> WireError {
        WireError::Malformed {
            what: self.what,
            reason,
        }
    }
}

fn put_u16(out: &mut Vec<u8>, v: u16) {
    out.extend_from_slice(&v.to_be_bytes());
}
fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_be_bytes());
}

/// Patches a 16-bit length field at `at` with the bytes written since `start`.
fn patch_len16(out: &mut [u8], at: usize, start: usize) {
    let len = u16::try_from(out.len() - start).unwrap_or(u16::MAX);
    out[at..at + 2].copy_from_slice(&len.to_be_bytes());
}

// ---------------------------------------------------------------------------
// Header
// ---------------------------------------------------------------------------

/// Header flags (RFC 2408 §3.1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Flags(pub u8);

impl Flags {
    pub const ENCRYPTION: u8 = 0x01;
    pub const COMMIT: u8 = 0x02;
    pub const AUTH_ONLY: u8 = 0x04;

    pub fn encrypted(self) -> bool {
        self.0 & Self::ENCRYPTION != 0
    }
    pub fn commit(self) -> bool {
        self.0 & Self::COMMIT != 0
    }
    pub fn auth_only(self) -> bool {
        self.0 & Self::AUTH_ONLY != 0
    }
}

/// The ISAKMP header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Header {
    pub initiator_cookie: [u8; 8],
    pub responder_cookie: [u8; 8],
    /// Type of the first payload (computed by [`Message::encode`]).
    pub next_payload: PayloadType,
    /// Major version in the high nibble, minor in the low one.
    pub version: u8,
    pub exchange: ExchangeType,
    pub flags: Flags,
    pub message_id: u32,
    /// Whole message length including the header (computed when encoding).
    pub length: u32,
}

impl Header {
    pub fn new(
        initiator_cookie: [u8; 8],
        responder_cookie: [u8; 8],
        exchange: ExchangeType,
        flags: Flags,
        message_id: u32,
    ) -> Header {
        Header {
            initiator_cookie,
            responder_cookie,
            next_payload: PayloadType::NONE,
            version: VERSION_1_0,
            exchange,
            flags,
            message_id,
            length: 0,
        }
    }

    /// Reads the header at the start of `bytes` (the rest is not examined).
    pub fn decode(bytes: &[u8]) -> Result<Header, WireError> {
        let mut r = Reader::new(bytes, "ISAKMP header");
        let initiator_cookie = r.array::<8>()?;
        let responder_cookie = r.array::<8>()?;
        let next_payload = PayloadType(r.u8()?);
        let version = r.u8()?;
        if version >> 4 != 1 {
            return Err(WireError::UnsupportedVersion {
                major: version >> 4,
                minor: version & 0x0f,
            });
        }
        let exchange = ExchangeType(r.u8()?);
        let flags = Flags(r.u8()?);
        let message_id = r.u32()?;
        let length = r.u32()?;
        Ok(Header {
            initiator_cookie,
            responder_cookie,
            next_payload,
            version,
            exchange,
            flags,
            message_id,
            length,
        })
    }

    /// Writes the header with the given first payload type and total length.
    pub fn encode(&self, next_payload: PayloadType, length: u32, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.initiator_cookie);
        out.extend_from_slice(&self.responder_cookie);
        out.push(next_payload.0);
        out.push(self.version);
        out.push(self.exchange.0);
        out.push(self.flags.0);
        put_u32(out, self.message_id);
        put_u32(out, length);
    }
}

/// Checks a datagram's header length and returns the header and the body
/// (everything after the header; ciphertext when the Encryption flag is set).
pub fn split_datagram(bytes: &[u8]) -> Result<(Header, &[u8]), WireError> {
    let header = Header::decode(bytes)?;
    if usize::try_from(header.length).ok() != Some(bytes.len()) {
        return Err(WireError::LengthMismatch {
            header: header.length,
            actual: bytes.len(),
        });
    }
    Ok((header, &bytes[HEADER_LEN..]))
}

// ---------------------------------------------------------------------------
// Payload chain
// ---------------------------------------------------------------------------

/// One payload of a chain: its type and where its body lies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RawPayload {
    pub payload_type: PayloadType,
    /// Offset of the generic header within the chain buffer.
    pub start: usize,
    /// Offset just past the body.
    pub end: usize,
}

impl RawPayload {
    /// The body (without the generic header) within `chain`.
    pub fn body<'a>(&self, chain: &'a [u8]) -> &'a [u8] {
        chain
            .get(self.start + GENERIC_HEADER_LEN..self.end)
            .unwrap_or(&[])
    }
    /// The whole payload including its generic header.
    pub fn whole<'a>(&self, chain: &'a [u8]) -> &'a [u8] {
        chain.get(self.start..self.end).unwrap_or(&[])
    }
}

/// At most this many payloads in one message (a bound on work per datagram).
pub const MAX_PAYLOADS: usize = 64;

/// Walks a payload chain starting with type `first`. Returns the payloads
/// and the offset where the chain ends; bytes after it (CBC padding) are
/// not examined.
pub fn decode_chain(
    first: PayloadType,
    chain: &[u8],
) -> Result<(Vec<RawPayload>, usize), WireError> {
    let mut out = Vec::new();
    let mut next = first;
    let mut pos = 0usize;
    while next != PayloadType::NONE {
        if out.len() >= MAX_PAYLOADS {
            return Err(WireError::Malformed {
                what: "payload chain",
                reason: "too many payloads",
            });
        }
        let mut r = Reader::new(chain.get(pos..).unwrap_or(&[]), "payload header");
        let np = PayloadType(r.u8()?);
        let _reserved = r.u8()?;
        let len = usize::from(r.u16()?);
        if len < GENERIC_HEADER_LEN {
            return Err(r.malformed("payload length below 4"));
        }
        if pos + len > chain.len() {
            return Err(WireError::Truncated {
                what: "payload body",
            });
        }
        out.push(RawPayload {
            payload_type: next,
            start: pos,
            end: pos + len,
        });
        pos += len;
        next = np;
    }
    Ok((out, pos))
}

/// Encodes payloads as a chain (next payload and lengths computed).
pub fn encode_payloads(payloads: &[Payload], out: &mut Vec<u8>) {
    for (i, p) in payloads.iter().enumerate() {
        let next = payloads
            .get(i + 1)
            .map_or(PayloadType::NONE, |n| n.payload_type());
        let start = out.len();
        out.push(next.0);
        out.push(0);
        out.extend_from_slice(&[0, 0]);
        p.encode_body(out);
        patch_len16(out, start + 2, start);
    }
}

// ---------------------------------------------------------------------------
// Data attributes
// ---------------------------------------------------------------------------

/// A data attribute (RFC 2408 §3.3): TV (basic, AF bit set) or TLV.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Attribute {
    Basic { attr_type: u16, value: u16 },
    Variable { attr_type: u16, value: Vec<u8> },
}

impl Attribute {
    /// A numeric attribute: TV when it fits in 16 bits, otherwise a 4-byte
    /// TLV (life durations above 65535).
    pub fn number(attr_type: u16, value: u32) -> Attribute {
        match u16::try_from(value) {
            Ok(v) => Attribute::Basic {
                attr_type,
                value: v,
            },
            Err(_) => Attribute::Variable {
                attr_type,
                value: value.to_be_bytes().to_vec(),
            },
        }
    }

    pub fn attr_type(&self) -> u16 {
        match self {
            Attribute::Basic { attr_type, .. } | Attribute::Variable { attr_type, .. } => {
                *attr_type
            }
        }
    }

    /// The value as a number (TV, or a TLV of at most 8 bytes).
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Attribute::Basic { value, .. } => Some(u64::from(*value)),
            Attribute::Variable { value, .. } if value.len() <= 8 => {
                Some(value.iter().fold(0u64, |a, b| (a << 8) | u64::from(*b)))
            }
            Attribute::Variable { .. } => None,
        }
    }

    fn decode(r: &mut Reader<'_>) -> Result<Attribute, WireError> {
        let t = r.u16()?;
        let attr_type = t & 0x7fff;
        if t & 0x8000 != 0 {
            Ok(Attribute::Basic {
                attr_type,
                value: r.u16()?,
            })
        } else {
            let len = usize::from(r.u16()?);
            Ok(Attribute::Variable {
                attr_type,
                value: r.take(len)?.to_vec(),
            })
        }
    }

    fn encode(&self, out: &mut Vec<u8>) {
        match self {
            Attribute::Basic { attr_type, value } => {
                put_u16(out, attr_type | 0x8000);
                put_u16(out, *value);
            }
            Attribute::Variable { attr_type, value } => {
                put_u16(out, attr_type & 0x7fff);
                put_u16(out, u16::try_from(value.len()).unwrap_or(u16::MAX));
                out.extend_from_slice(value);
            }
        }
    }
}

/// Finds the first attribute of a type.
pub fn find_attr(attrs: &[Attribute], attr_type: u16) -> Option<&Attribute> {
    attrs.iter().find(|a| a.attr_type() == attr_type)
}

// ---------------------------------------------------------------------------
// SA, Proposal, Transform
// ---------------------------------------------------------------------------

/// A Transform substructure.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Transform {
    pub number: u8,
    pub transform_id: u8,
    pub attributes: Vec<Attribute>,
}

/// A Proposal substructure.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Proposal {
    pub number: u8,
    pub protocol: ProtocolId,
    pub spi: Vec<u8>,
    pub transforms: Vec<Transform>,
}

/// The SA payload. The situation is the 4-byte IPsec DOI bitmap (labelled
/// domains are not supported: a situation with the secrecy or integrity bits
/// fails decoding).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SaPayload {
    pub doi: u32,
    pub situation: u32,
    pub proposals: Vec<Proposal>,
}

impl SaPayload {
    pub fn decode(body: &[u8]) -> Result<SaPayload, WireError> {
        let mut r = Reader::new(body, "SA payload");
        let doi = r.u32()?;
        if doi != DOI_IPSEC {
            return Err(r.malformed("DOI is not IPsec"));
        }
        let situation = r.u32()?;
        if situation & !SIT_IDENTITY_ONLY != 0 {
            return Err(r.malformed("unsupported situation"));
        }
        let mut proposals = Vec::new();
        let mut next = PayloadType::PROPOSAL;
        while next != PayloadType::NONE {
            if next != PayloadType::PROPOSAL {
                return Err(r.malformed("proposal chain holds a non-proposal"));
            }
            if proposals.len() >= MAX_PAYLOADS {
                return Err(r.malformed("too many proposals"));
            }
            let (np, body) = sub_payload(&mut r, "proposal")?;
            proposals.push(Proposal::decode(body)?);
            next = np;
        }
        if !r.rest().is_empty() {
            return Err(WireError::Malformed {
                what: "SA payload",
                reason: "bytes after the last proposal",
            });
        }
        Ok(SaPayload {
            doi,
            situation,
            proposals,
        })
    }

    pub fn encode_body(&self, out: &mut Vec<u8>) {
        put_u32(out, self.doi);
        put_u32(out, self.situation);
        for (i, p) in self.proposals.iter().enumerate() {
            let start = out.len();
            let last = i + 1 == self.proposals.len();
            out.push(if last { 0 } else { PayloadType::PROPOSAL.0 });
            out.extend_from_slice(&[0, 0, 0]);
            out.push(p.number);
            out.push(p.protocol.0);
            out.push(u8::try_from(p.spi.len()).unwrap_or(u8::MAX));
            out.push(u8::try_from(p.transforms.len()).unwrap_or(u8::MAX));
            out.extend_from_slice(&p.spi);
            for (j, t) in p.transforms.iter().enumerate() {
                let tstart = out.len();
                let tlast = j + 1 == p.transforms.len();
                out.push(if tlast { 0 } else { PayloadType::TRANSFORM.0 });
                out.extend_from_slice(&[0, 0, 0]);
                out.push(t.number);
                out.push(t.transform_id);
                out.extend_from_slice(&[0, 0]);
                for a in &t.attributes {
                    a.encode(out);
                }
                patch_len16(out, tstart + 2, tstart);
            }
            patch_len16(out, start + 2, start);
        }
    }

    /// The encoded body (what SAi_b means in RFC 2409).
    pub fn to_body(&self) -> Vec<u8> {
        let mut v = Vec::new();
        self.encode_body(&mut v);
        v
    }
}

/// Reads a substructure with a generic header: (next type, body).
fn sub_payload<'a>(
    r: &mut Reader<'a>,
    what: &'static str,
) -> Result<(PayloadType, &'a [u8]), WireError> {
    let np = PayloadType(r.u8()?);
    let _reserved = r.u8()?;
    let len = usize::from(r.u16()?);
    if len < GENERIC_HEADER_LEN {
        return Err(WireError::Malformed {
            what,
            reason: "length below 4",
        });
    }
    let body = r.take(len - GENERIC_HEADER_LEN)?;
    Ok((np, body))
}

impl Proposal {
    fn decode(body: &[u8]) -> Result<Proposal, WireError> {
        let mut r = Reader::new(body, "proposal");
        let number = r.u8()?;
        let protocol = ProtocolId(r.u8()?);
        let spi_size = usize::from(r.u8()?);
        let count = usize::from(r.u8()?);
        let spi = r.take(spi_size)?.to_vec();
        let mut transforms = Vec::new();
        let mut next = if count == 0 {
            PayloadType::NONE
        } else {
            PayloadType::TRANSFORM
        };
        while next != PayloadType::NONE {
            if next != PayloadType::TRANSFORM {
                return Err(r.malformed("transform chain holds a non-transform"));
            }
            let (np, tbody) = sub_payload(&mut r, "transform")?;
            let mut tr = Reader::new(tbody, "transform");
            let tnum = tr.u8()?;
            let transform_id = tr.u8()?;
            let _reserved = tr.u16()?;
            let mut attributes = Vec::new();
            while !tr.buf.is_empty() {
                attributes.push(Attribute::decode(&mut tr)?);
            }
            transforms.push(Transform {
                number: tnum,
                transform_id,
                attributes,
            });
            next = np;
        }
        if transforms.len() != count {
            return Err(WireError::Malformed {
                what: "proposal",
                reason: "transform count does not match",
            });
        }
        if !r.rest().is_empty() {
            return Err(WireError::Malformed {
                what: "proposal",
                reason: "bytes after the last transform",
            });
        }
        Ok(Proposal {
            number,
            protocol,
            spi,
            transforms,
        })
    }
}

// ---------------------------------------------------------------------------
// ID, Notify, Delete
// ---------------------------------------------------------------------------

/// Identification payload (RFC 2407 §4.6.2).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct IdPayload {
    pub id_type: IdType,
    pub protocol: u8,
    pub port: u16,
    pub data: Vec<u8>,
}

impl IdPayload {
    pub fn decode(body: &[u8]) -> Result<IdPayload, WireError> {
        let mut r = Reader::new(body, "ID payload");
        let id_type = IdType(r.u8()?);
        let protocol = r.u8()?;
        let port = r.u16()?;
        Ok(IdPayload {
            id_type,
            protocol,
            port,
            data: r.rest().to_vec(),
        })
    }
    pub fn encode_body(&self, out: &mut Vec<u8>) {
        out.push(self.id_type.0);
        out.push(self.protocol);
        put_u16(out, self.port);
        out.extend_from_slice(&self.data);
    }
    pub fn to_body(&self) -> Vec<u8> {
        let mut v = Vec::new();
        self.encode_body(&mut v);
        v
    }

    /// ID_IPV4_ADDR, protocol and port zero (what AWS and strongSwan send in phase 1).
    pub fn ipv4(addr: Ipv4Addr) -> IdPayload {
        IdPayload {
            id_type: IdType::IPV4_ADDR,
            protocol: 0,
            port: 0,
            data: addr.octets().to_vec(),
        }
    }
    pub fn ipv6(addr: Ipv6Addr) -> IdPayload {
        IdPayload {
            id_type: IdType::IPV6_ADDR,
            protocol: 0,
            port: 0,
            data: addr.octets().to_vec(),
        }
    }
    /// ID_IPV4_ADDR_SUBNET (a Quick Mode proxy ID); the address is masked.
    pub fn ipv4_subnet(addr: Ipv4Addr, prefix_len: u8) -> IdPayload {
        let mask = if prefix_len == 0 {
            0
        } else {
            u32::MAX << (32 - u32::from(prefix_len.min(32)))
        };
        let mut data = (u32::from(addr) & mask).to_be_bytes().to_vec();
        data.extend_from_slice(&mask.to_be_bytes());
        IdPayload {
            id_type: IdType::IPV4_ADDR_SUBNET,
            protocol: 0,
            port: 0,
            data,
        }
    }
    /// ID_IPV6_ADDR_SUBNET; the address is masked.
    pub fn ipv6_subnet(addr: Ipv6Addr, prefix_len: u8) -> IdPayload {
        let mask = if prefix_len == 0 {
            0
        } else {
            u128::MAX << (128 - u32::from(prefix_len.min(128)))
        };
        let mut data = (u128::from(addr) & mask).to_be_bytes().to_vec();
        data.extend_from_slice(&mask.to_be_bytes());
        IdPayload {
            id_type: IdType::IPV6_ADDR_SUBNET,
            protocol: 0,
            port: 0,
            data,
        }
    }
    pub fn fqdn(name: &str) -> IdPayload {
        IdPayload {
            id_type: IdType::FQDN,
            protocol: 0,
            port: 0,
            data: name.as_bytes().to_vec(),
        }
    }
}

impl fmt::Display for IdPayload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let d = &self.data;
        match (self.id_type, d.len()) {
            (IdType::IPV4_ADDR, 4) => write!(f, "{}", Ipv4Addr::new(d[0], d[1], d[2], d[3])),
            (IdType::IPV4_ADDR_SUBNET, 8) => {
                let mask = u32::from_be_bytes([d[4], d[5], d[6], d[7]]);
                write!(
                    f,
                    "{}/{}",
                    Ipv4Addr::new(d[0], d[1], d[2], d[3]),
                    mask.count_ones()
                )
            }
            (IdType::IPV6_ADDR, 16) => {
                let mut a = [0u8; 16];
                a.copy_from_slice(d);
                write!(f, "{}", Ipv6Addr::from(a))
            }
            (IdType::IPV6_ADDR_SUBNET, 32) => {
                let mut a = [0u8; 16];
                a.copy_from_slice(&d[..16]);
                let mut m = [0u8; 16];
                m.copy_from_slice(&d[16..]);
                write!(
                    f,
                    "{}/{}",
                    Ipv6Addr::from(a),
                    u128::from_be_bytes(m).count_ones()
                )
            }
            (IdType::FQDN | IdType::USER_FQDN, _) => {
                f.write_str(&String::from_utf8_lossy(d).escape_debug().to_string())
            }
            (t, n) => write!(f, "{t}({n} bytes)"),
        }
    }
}

/// Notification payload (RFC 2408 §3.14).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct NotifyPayload {
    pub doi: u32,
    pub protocol: ProtocolId,
    pub notify_type: NotifyType,
    pub spi: Vec<u8>,
    pub data: Vec<u8>,
}

impl NotifyPayload {
    pub fn new(
        protocol: ProtocolId,
        notify_type: NotifyType,
        spi: Vec<u8>,
        data: Vec<u8>,
    ) -> NotifyPayload {
        NotifyPayload {
            doi: DOI_IPSEC,
            protocol,
            notify_type,
            spi,
            data,
        }
    }
    pub fn decode(body: &[u8]) -> Result<NotifyPayload, WireError> {
        let mut r = Reader::new(body, "N payload");
        let doi = r.u32()?;
        let protocol = ProtocolId(r.u8()?);
        let spi_size = usize::from(r.u8()?);
        let notify_type = NotifyType(r.u16()?);
        let spi = r.take(spi_size)?.to_vec();
        Ok(NotifyPayload {
            doi,
            protocol,
            notify_type,
            spi,
            data: r.rest().to_vec(),
        })
    }
    pub fn encode_body(&self, out: &mut Vec<u8>) {
        put_u32(out, self.doi);
        out.push(self.protocol.0);
        out.push(u8::try_from(self.spi.len()).unwrap_or(u8::MAX));
        put_u16(out, self.notify_type.0);
        out.extend_from_slice(&self.spi);
        out.extend_from_slice(&self.data);
    }
}

/// Delete payload (RFC 2408 §3.15).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct DeletePayload {
    pub doi: u32,
    pub protocol: ProtocolId,
    pub spi_size: u8,
    pub spis: Vec<Vec<u8>>,
}

impl DeletePayload {
    pub fn decode(body: &[u8]) -> Result<DeletePayload, WireError> {
        let mut r = Reader::new(body, "D payload");
        let doi = r.u32()?;
        let protocol = ProtocolId(r.u8()?);
        let spi_size = r.u8()?;
        let count = r.u16()?;
        let need = usize::from(spi_size) * usize::from(count);
        if r.buf.len() != need {
            return Err(r.malformed("SPI count and size do not match the length"));
        }
        let spis = if spi_size == 0 {
            Vec::new()
        } else {
            r.rest()
                .chunks(usize::from(spi_size))
                .map(<[u8]>::to_vec)
                .collect()
        };
        Ok(DeletePayload {
            doi,
            protocol,
            spi_size,
            spis,
        })
    }
    pub fn encode_body(&self, out: &mut Vec<u8>) {
        put_u32(out, self.doi);
        out.push(self.protocol.0);
        out.push(self.spi_size);
        put_u16(out, u16::try_from(self.spis.len()).unwrap_or(u16::MAX));
        for s in &self.spis {
            out.extend_from_slice(s);
        }
    }
}

// ---------------------------------------------------------------------------
// Payload and Message
// ---------------------------------------------------------------------------

/// A decoded payload.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Payload {
    Sa(SaPayload),
    /// Key exchange data.
    Ke(Vec<u8>),
    Id(IdPayload),
    Hash(Vec<u8>),
    Nonce(Vec<u8>),
    Notify(NotifyPayload),
    Delete(DeletePayload),
    VendorId(Vec<u8>),
    /// NAT-D (RFC 3947 payload type 20) hash.
    NatD(Vec<u8>),
    /// Anything else, kept as is.
    Unknown {
        payload_type: PayloadType,
        body: Vec<u8>,
    },
}

impl Payload {
    pub fn payload_type(&self) -> PayloadType {
        match self {
            Payload::Sa(_) => PayloadType::SA,
            Payload::Ke(_) => PayloadType::KE,
            Payload::Id(_) => PayloadType::ID,
            Payload::Hash(_) => PayloadType::HASH,
            Payload::Nonce(_) => PayloadType::NONCE,
            Payload::Notify(_) => PayloadType::N,
            Payload::Delete(_) => PayloadType::D,
            Payload::VendorId(_) => PayloadType::VID,
            Payload::NatD(_) => PayloadType::NAT_D,
            Payload::Unknown { payload_type, .. } => *payload_type,
        }
    }

    /// Decodes a payload body of the given type.
    pub fn decode(payload_type: PayloadType, body: &[u8]) -> Result<Payload, WireError> {
        Ok(match payload_type {
            PayloadType::SA => Payload::Sa(SaPayload::decode(body)?),
            PayloadType::KE => Payload::Ke(body.to_vec()),
            PayloadType::ID => Payload::Id(IdPayload::decode(body)?),
            PayloadType::HASH => Payload::Hash(body.to_vec()),
            PayloadType::NONCE => Payload::Nonce(body.to_vec()),
            PayloadType::N => Payload::Notify(NotifyPayload::decode(body)?),
            PayloadType::D => Payload::Delete(DeletePayload::decode(body)?),
            PayloadType::VID => Payload::VendorId(body.to_vec()),
            PayloadType::NAT_D => Payload::NatD(body.to_vec()),
            t => Payload::Unknown {
                payload_type: t,
                body: body.to_vec(),
            },
        })
    }

    pub fn encode_body(&self, out: &mut Vec<u8>) {
        match self {
            Payload::Sa(sa) => sa.encode_body(out),
            Payload::Id(id) => id.encode_body(out),
            Payload::Notify(n) => n.encode_body(out),
            Payload::Delete(d) => d.encode_body(out),
            Payload::Ke(b)
            | Payload::Hash(b)
            | Payload::Nonce(b)
            | Payload::VendorId(b)
            | Payload::NatD(b)
            | Payload::Unknown { body: b, .. } => out.extend_from_slice(b),
        }
    }
}

/// A whole plaintext message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub header: Header,
    pub payloads: Vec<Payload>,
}

impl Message {
    /// Decodes an unencrypted datagram. Encrypted messages fail: decrypt the
    /// body and use [`decode_chain`] on the plaintext instead.
    pub fn decode(bytes: &[u8]) -> Result<Message, WireError> {
        let (header, body) = split_datagram(bytes)?;
        if header.flags.encrypted() {
            return Err(WireError::Malformed {
                what: "message",
                reason: "encrypted body",
            });
        }
        let (raw, end) = decode_chain(header.next_payload, body)?;
        if end != body.len() {
            return Err(WireError::Malformed {
                what: "message",
                reason: "bytes after the last payload",
            });
        }
        let payloads = raw
            .iter()
            .map(|p| Payload::decode(p.payload_type, p.body(body)))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Message { header, payloads })
    }

    /// Encodes the message; the header's next payload and length are computed.
    pub fn encode(&self) -> Vec<u8> {
        let mut body = Vec::new();
        encode_payloads(&self.payloads, &mut body);
        let mut out = Vec::with_capacity(HEADER_LEN + body.len());
        let first = self
            .payloads
            .first()
            .map_or(PayloadType::NONE, Payload::payload_type);
        self.header.encode(
            first,
            u32::try_from(HEADER_LEN + body.len()).unwrap_or(u32::MAX),
            &mut out,
        );
        out.extend_from_slice(&body);
        out
    }
}
