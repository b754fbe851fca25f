//! IKEv2 wire format (RFC 7296 §3): the header, the payload chain and every
//! payload body, apart from any protocol behaviour.
//!
//! - [`Message::decode`] parses a whole datagram (after any NAT-T non-ESP
//!   marker has been removed) and validates the header length against the
//!   datagram, each payload length, and each payload's minimum size.
//! - [`Message::encode`] computes the header length, every payload length and
//!   the next-payload chain itself: the `next_payload` and `length` fields of
//!   [`Header`] are ignored when encoding a [`Message`].
//! - [`decode_payloads`] / [`encode_payloads`] handle a bare payload chain,
//!   the plaintext inside an SK payload (see [`crate::ike::v2::sk`]).
//!
//! Code points are open newtypes ([`codes`]): unknown values survive a
//! round trip, and so do unknown non-critical payloads. An unknown payload
//! with the critical bit set fails decoding with
//! [`WireError::UnsupportedCriticalPayload`] (RFC 7296 §2.5), whose
//! [`WireError::notify_type`] is the notification to answer with. Use
//! [`Header::decode`] to get the SPIs and message ID for that answer.
//!
//! Encoding is canonical (reserved fields and the critical bit of known
//! payloads are zero), so decode→encode is byte-exact for canonical input.
//!
//! ```
//! use vpn_core::ike::v2::wire::*;
//!
//! let msg = Message {
//!     header: Header::new(0x0102030405060708, 0, ExchangeType::IKE_SA_INIT, Flags::new(true, false), 0),
//!     payloads: vec![
//!         Payload::Nonce(vec![7; 32]),
//!         Payload::Notify(NotifyPayload::new(NotifyType::IKEV2_FRAGMENTATION_SUPPORTED, vec![])),
//!     ],
//! };
//! let bytes = msg.encode()?;
//! let back = Message::decode(&bytes)?;
//! assert_eq!(back.payloads, msg.payloads);
//! assert_eq!(back.header.length as usize, bytes.len());
//! assert!(back.find_notify(NotifyType::IKEV2_FRAGMENTATION_SUPPORTED).is_some());
//! # Ok::<(), WireError>(())
//! ```

pub mod codes;
mod payload;
mod reader;
#[cfg(test)]
mod tests;

pub use codes::{
    transform_id, AttributeType, AuthMethod, CertEncoding, CfgAttributeType, CfgType, ExchangeType,
    Flags, IdType, NotifyType, PayloadType, ProtocolId, TransformType, TsType,
};
pub use payload::{
    Attribute, AuthPayload, CertPayload, CfgAttribute, CpPayload, DeletePayload,
    EncryptedFragmentPayload, EncryptedPayload, IdPayload, KePayload, NotifyPayload, Payload,
    Proposal, SaPayload, TrafficSelector, Transform, TsPayload, TsRange, UnknownPayload,
};

use reader::Reader;

/// Length of the fixed IKE header.
pub const HEADER_LEN: usize = 28;
/// Length of the generic payload header.
pub const GENERIC_HEADER_LEN: usize = 4;

/// Why bytes could not be decoded, or a value could not be encoded.
///
/// Carries only public facts (payload types, lengths, reasons).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WireError {
    /// Fewer than 28 bytes.
    #[error("datagram shorter than the IKE header ({len} bytes)")]
    ShortHeader { len: usize },
    /// The header's Length field disagrees with the datagram.
    #[error("IKE header says {header} bytes, datagram has {actual}")]
    LengthMismatch { header: u32, actual: usize },
    /// Major version other than 2 (answer with INVALID_MAJOR_VERSION if higher).
    #[error("unsupported IKE major version {major}")]
    UnsupportedMajorVersion { major: u8 },
    /// A payload's length field is below its minimum or beyond the data.
    #[error("{payload_type} payload length {length} is invalid")]
    BadPayloadLength {
        payload_type: PayloadType,
        length: u16,
    },
    /// A payload body ends before its fixed fields or a counted element.
    #[error("{payload_type} payload is truncated")]
    Truncated { payload_type: PayloadType },
    /// A payload body is inconsistent (counts, sub-lengths, last-substructure fields).
    #[error("malformed {payload_type} payload: {reason}")]
    Malformed {
        payload_type: PayloadType,
        reason: &'static str,
    },
    /// The chain ended (next payload NONE) before the data did.
    #[error("{extra} bytes after the last payload")]
    TrailingData { extra: usize },
    /// An SK or SKF payload was not the last payload.
    #[error("payload after the Encrypted payload")]
    PayloadAfterEncrypted,
    /// An unknown payload had its critical bit set (RFC 7296 §2.5): answer
    /// with UNSUPPORTED_CRITICAL_PAYLOAD carrying this type as data.
    #[error("unsupported critical payload type {payload_type}")]
    UnsupportedCriticalPayload { payload_type: PayloadType },
    /// Encoding: a length or count does not fit its field.
    #[error("{what} too long to encode")]
    TooLong { what: &'static str },
    /// Encoding: the value cannot be represented (e.g. mixed address families).
    #[error("cannot encode: {reason}")]
    Inconsistent { reason: &'static str },
}

impl WireError {
    /// The error notification a responder would send for this decoding error
    /// (RFC 7296 §2.5, §3.10.1), when one applies. Whether to send it at all
    /// (e.g. not for unauthenticated messages) is the exchange's decision.
    pub fn notify_type(&self) -> Option<NotifyType> {
        match self {
            WireError::UnsupportedCriticalPayload { .. } => {
                Some(NotifyType::UNSUPPORTED_CRITICAL_PAYLOAD)
            }
            WireError::UnsupportedMajorVersion { .. } => Some(NotifyType::INVALID_MAJOR_VERSION),
            WireError::TooLong { .. } | WireError::Inconsistent { .. } => None,
            _ => Some(NotifyType::INVALID_SYNTAX),
        }
    }

    /// The data of the notification from [`notify_type`](Self::notify_type):
    /// the one-octet payload type for UNSUPPORTED_CRITICAL_PAYLOAD.
    pub fn notify_data(&self) -> Vec<u8> {
        match self {
            WireError::UnsupportedCriticalPayload { payload_type } => vec![payload_type.0],
            _ => Vec::new(),
        }
    }
}

/// The IKE header (RFC 7296 §3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Header {
    /// Initiator's SPI (never zero).
    pub spi_i: u64,
    /// Responder's SPI (zero in the first IKE_SA_INIT request).
    pub spi_r: u64,
    /// Type of the first payload. Decoding fills it in; [`Message::encode`]
    /// computes it and ignores this value.
    pub next_payload: PayloadType,
    /// 2 for IKEv2 (decoding rejects anything else).
    pub major_version: u8,
    /// 0 when sending; ignored on receipt.
    pub minor_version: u8,
    pub exchange_type: ExchangeType,
    pub flags: Flags,
    pub message_id: u32,
    /// Total message length. Decoding fills it in (and checks it);
    /// [`Message::encode`] computes it and ignores this value.
    pub length: u32,
}

impl Header {
    /// A version 2.0 header; `next_payload` and `length` are filled in when encoding.
    pub fn new(
        spi_i: u64,
        spi_r: u64,
        exchange_type: ExchangeType,
        flags: Flags,
        message_id: u32,
    ) -> Header {
        Header {
            spi_i,
            spi_r,
            next_payload: PayloadType::NONE,
            major_version: 2,
            minor_version: 0,
            exchange_type,
            flags,
            message_id,
            length: 0,
        }
    }

    /// Parses the first 28 bytes only, without validating anything else:
    /// enough to answer a message that fails full decoding (e.g. with
    /// UNSUPPORTED_CRITICAL_PAYLOAD or INVALID_MAJOR_VERSION), or to look up
    /// the IKE SA by SPI before decrypting.
    pub fn decode(bytes: &[u8]) -> Result<Header, WireError> {
        if bytes.len() < HEADER_LEN {
            return Err(WireError::ShortHeader { len: bytes.len() });
        }
        let mut r = Reader::new(bytes, PayloadType::NONE);
        let spi_i = r.u64()?;
        let spi_r = r.u64()?;
        let next_payload = PayloadType(r.u8()?);
        let version = r.u8()?;
        let exchange_type = ExchangeType(r.u8()?);
        let flags = Flags(r.u8()?);
        let message_id = r.u32()?;
        let length = r.u32()?;
        Ok(Header {
            spi_i,
            spi_r,
            next_payload,
            major_version: version >> 4,
            minor_version: version & 0x0f,
            exchange_type,
            flags,
            message_id,
            length,
        })
    }

    /// The 28 header bytes exactly as the fields say (including
    /// `next_payload` and `length`).
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[0..8].copy_from_slice(&self.spi_i.to_be_bytes());
        b[8..16].copy_from_slice(&self.spi_r.to_be_bytes());
        b[16] = self.next_payload.0;
        b[17] = (self.major_version << 4) | (self.minor_version & 0x0f);
        b[18] = self.exchange_type.0;
        b[19] = self.flags.0;
        b[20..24].copy_from_slice(&self.message_id.to_be_bytes());
        b[24..28].copy_from_slice(&self.length.to_be_bytes());
        b
    }

    /// Whether this is a response (R flag).
    pub fn is_response(&self) -> bool {
        self.flags.response()
    }
}

/// A whole IKEv2 message: header and payload chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub header: Header,
    pub payloads: Vec<Payload>,
}

impl Message {
    /// Decodes a datagram. Checks: at least 28 bytes, major version 2, the
    /// header Length equal to the datagram length, every payload length
    /// within bounds and at least its minimum, SK/SKF last, no trailing
    /// bytes, and no unknown critical payloads.
    pub fn decode(bytes: &[u8]) -> Result<Message, WireError> {
        let header = Header::decode(bytes)?;
        if header.major_version != 2 {
            return Err(WireError::UnsupportedMajorVersion {
                major: header.major_version,
            });
        }
        if header.length as usize != bytes.len() {
            return Err(WireError::LengthMismatch {
                header: header.length,
                actual: bytes.len(),
            });
        }
        let payloads = decode_payloads(header.next_payload, &bytes[HEADER_LEN..])?;
        Ok(Message { header, payloads })
    }

    /// Encodes the message, computing the header's next payload and length
    /// and every payload header.
    pub fn encode(&self) -> Result<Vec<u8>, WireError> {
        let mut out = Vec::new();
        self.encode_into(&mut out)?;
        Ok(out)
    }

    /// Appends the encoded message to `out` (on error `out` may hold a partial message).
    pub fn encode_into(&self, out: &mut Vec<u8>) -> Result<(), WireError> {
        let start = out.len();
        out.extend_from_slice(&[0u8; HEADER_LEN]);
        let first = encode_payloads_into(&self.payloads, out)?;
        let total =
            u32::try_from(out.len() - start).map_err(|_| WireError::TooLong { what: "message" })?;
        let mut h = self.header;
        h.next_payload = first;
        h.length = total;
        out[start..start + HEADER_LEN].copy_from_slice(&h.to_bytes());
        Ok(())
    }

    /// The first Notify payload of the given type.
    pub fn find_notify(&self, notify_type: NotifyType) -> Option<&NotifyPayload> {
        self.payloads.find_notify(notify_type)
    }
}

/// Decodes a payload chain that starts with a payload of type `first`: the
/// plaintext of an SK payload (padding removed) or a message body.
pub fn decode_payloads(first: PayloadType, bytes: &[u8]) -> Result<Vec<Payload>, WireError> {
    let mut payloads = Vec::new();
    let mut next = first;
    let mut rest = bytes;
    while next != PayloadType::NONE {
        if rest.len() < GENERIC_HEADER_LEN {
            return Err(WireError::Truncated { payload_type: next });
        }
        let following = PayloadType(rest[0]);
        let critical = rest[1] & 0x80 != 0;
        let length = u16::from_be_bytes([rest[2], rest[3]]);
        if (length as usize) < GENERIC_HEADER_LEN || length as usize > rest.len() {
            return Err(WireError::BadPayloadLength {
                payload_type: next,
                length,
            });
        }
        let body = &rest[GENERIC_HEADER_LEN..length as usize];
        rest = &rest[length as usize..];
        let payload = Payload::decode_body(next, critical, following, body)?;
        let is_encrypted = payload.inner_first().is_some();
        payloads.push(payload);
        if is_encrypted {
            // SK/SKF extend to the end of the message; their Next Payload
            // field names the first inner payload, not a following one.
            if !rest.is_empty() {
                return Err(WireError::PayloadAfterEncrypted);
            }
            return Ok(payloads);
        }
        next = following;
    }
    if !rest.is_empty() {
        return Err(WireError::TrailingData { extra: rest.len() });
    }
    Ok(payloads)
}

/// Encodes a payload chain, returning the first payload's type (for the
/// header's or the SK payload's Next Payload field) and the bytes.
/// An empty chain gives `(PayloadType::NONE, [])`.
pub fn encode_payloads(payloads: &[Payload]) -> Result<(PayloadType, Vec<u8>), WireError> {
    let mut out = Vec::new();
    let first = encode_payloads_into(payloads, &mut out)?;
    Ok((first, out))
}

/// [`encode_payloads`] appending to `out`.
pub fn encode_payloads_into(
    payloads: &[Payload],
    out: &mut Vec<u8>,
) -> Result<PayloadType, WireError> {
    for (i, p) in payloads.iter().enumerate() {
        let next = match (p.inner_first(), payloads.get(i + 1)) {
            (Some(_), Some(_)) => return Err(WireError::PayloadAfterEncrypted),
            (Some(inner), None) => inner,
            (None, Some(n)) => n.payload_type(),
            (None, None) => PayloadType::NONE,
        };
        let start = out.len();
        let flags = if p.critical() { 0x80 } else { 0 };
        out.extend_from_slice(&[next.0, flags, 0, 0]);
        p.encode_body(out)?;
        let len = payload::len16(out.len() - start, "payload")?;
        out[start + 2..start + 4].copy_from_slice(&len);
    }
    Ok(payloads
        .first()
        .map_or(PayloadType::NONE, Payload::payload_type))
}

/// Look-ups over a payload list (a message's, or an SK payload's contents).
pub trait PayloadsExt {
    /// The first Notify of a type.
    fn find_notify(&self, notify_type: NotifyType) -> Option<&NotifyPayload>;
    /// All Notify payloads, in order.
    fn notifies(&self) -> Vec<&NotifyPayload>;
    /// The first SA payload.
    fn sa(&self) -> Option<&SaPayload>;
    /// The first KE payload.
    fn ke(&self) -> Option<&KePayload>;
    /// The first Nonce payload's bytes.
    fn nonce(&self) -> Option<&[u8]>;
    /// The first IDi payload.
    fn id_i(&self) -> Option<&IdPayload>;
    /// The first IDr payload.
    fn id_r(&self) -> Option<&IdPayload>;
    /// The first AUTH payload.
    fn auth(&self) -> Option<&AuthPayload>;
    /// The first TSi payload.
    fn ts_i(&self) -> Option<&TsPayload>;
    /// The first TSr payload.
    fn ts_r(&self) -> Option<&TsPayload>;
    /// All Delete payloads, in order.
    fn deletes(&self) -> Vec<&DeletePayload>;
    /// The SK payload, if any.
    fn encrypted(&self) -> Option<&EncryptedPayload>;
}

impl PayloadsExt for [Payload] {
    fn find_notify(&self, notify_type: NotifyType) -> Option<&NotifyPayload> {
        self.iter().find_map(|p| match p {
            Payload::Notify(n) if n.notify_type == notify_type => Some(n),
            _ => None,
        })
    }
    fn notifies(&self) -> Vec<&NotifyPayload> {
        self.iter()
            .filter_map(|p| match p {
                Payload::Notify(n) => Some(n),
                _ => None,
            })
            .collect()
    }
    fn sa(&self) -> Option<&SaPayload> {
        self.iter().find_map(|p| match p {
            Payload::Sa(x) => Some(x),
            _ => None,
        })
    }
    fn ke(&self) -> Option<&KePayload> {
        self.iter().find_map(|p| match p {
            Payload::Ke(x) => Some(x),
            _ => None,
        })
    }
    fn nonce(&self) -> Option<&[u8]> {
        self.iter().find_map(|p| match p {
            Payload::Nonce(x) => Some(&x[..]),
            _ => None,
        })
    }
    fn id_i(&self) -> Option<&IdPayload> {
        self.iter().find_map(|p| match p {
            Payload::IdI(x) => Some(x),
            _ => None,
        })
    }
    fn id_r(&self) -> Option<&IdPayload> {
        self.iter().find_map(|p| match p {
            Payload::IdR(x) => Some(x),
            _ => None,
        })
    }
    fn auth(&self) -> Option<&AuthPayload> {
        self.iter().find_map(|p| match p {
            Payload::Auth(x) => Some(x),
            _ => None,
        })
    }
    fn ts_i(&self) -> Option<&TsPayload> {
        self.iter().find_map(|p| match p {
            Payload::TsI(x) => Some(x),
            _ => None,
        })
    }
    fn ts_r(&self) -> Option<&TsPayload> {
        self.iter().find_map(|p| match p {
            Payload::TsR(x) => Some(x),
            _ => None,
        })
    }
    fn deletes(&self) -> Vec<&DeletePayload> {
        self.iter()
            .filter_map(|p| match p {
                Payload::Delete(d) => Some(d),
                _ => None,
            })
            .collect()
    }
    fn encrypted(&self) -> Option<&EncryptedPayload> {
        self.iter().find_map(|p| match p {
            Payload::Encrypted(x) => Some(x),
            _ => None,
        })
    }
}
