//! BGP-4 wire format: message codecs and the TCP stream framer.
//!
//! Decoders take whole messages as [`Bytes`] (the framer hands them out without
//! copying) and slice them by hand with bounds checks: the formats are simple
//! length-prefixed records, and slicing lets attribute values and NLRI fields be kept
//! as zero-copy sub-slices. Encoders write onto any [`BufMut`] and check the space
//! first, so a short caller buffer is an error, never a panic.
//!
//! Code points (message type, attribute type, capability code, AFI, SAFI, error codes)
//! are open newtypes so values we do not know survive a round trip.

pub mod attribute;
pub mod capability;
pub mod framer;
pub mod header;
pub mod notification;
pub mod open;
pub mod prefix;
pub mod route_refresh;
pub mod update;

#[cfg(test)]
mod tests;

use bytes::{BufMut, Bytes};

pub use attribute::{
    merge_as4_path, Aggregator, AsPath, AsSegment, AttrFlags, AttrType, Community, LargeCommunity,
    MpNextHop, MpNlri, MpReach, MpUnreach, Origin, PathAttributes, RawAttribute, SegmentType,
    AS_TRANS,
};
pub use capability::{Capability, CapabilityCode, GracefulRestart, GracefulRestartFamily};
pub use framer::{Frame, Framer};
pub use header::{Header, MessageType, HEADER_LEN, MARKER, MAX_MESSAGE_LEN};
pub use notification::{ErrorCode, NotificationMessage};
pub use open::{OpenMessage, OptionalParameter, BGP_VERSION};
pub use prefix::{
    family_name, Afi, Ipv4Nlri, Ipv4Prefix, Ipv6Nlri, Ipv6Prefix, Nlri, NlriIter, Prefix,
    PrefixError, Safi,
};
pub use route_refresh::RouteRefreshMessage;
pub use update::{DecodedUpdate, ErrorAction, UpdateMessage};

/// Negotiated session parameters that change the wire format, for both directions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WireContext {
    /// Both sides advertised the 4-octet AS capability (RFC 6793): AS_PATH and
    /// AGGREGATOR carry 4-octet AS numbers.
    pub four_octet_as: bool,
}

/// A message that cannot be decoded; [`DecodeError::notification`] is what to send.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("message header: marker is not all ones")]
    BadMarker,
    #[error("message header: length {0} is invalid for the message")]
    BadLength(u16),
    #[error("message header: unknown message type {0}")]
    BadType(u8),
    #[error("OPEN: {reason}")]
    Open {
        subcode: u8,
        data: Bytes,
        reason: &'static str,
    },
    #[error("UPDATE: session reset required ({0})")]
    Update(NotificationMessage),
    /// RFC 4271 §6.4: a bad NOTIFICATION is never answered with another one.
    #[error("NOTIFICATION shorter than code and subcode")]
    Notification,
    /// Holds the whole offending message, which RFC 7313 §5 puts in the NOTIFICATION.
    #[error("ROUTE-REFRESH: invalid message length {}", .0.len())]
    RouteRefreshLength(Bytes),
}

impl DecodeError {
    /// The NOTIFICATION to send before closing, if RFC 4271 asks for one.
    pub fn notification(&self) -> Option<NotificationMessage> {
        use notification::{header_subcode, route_refresh_subcode};
        Some(match self {
            DecodeError::BadMarker => NotificationMessage::new(
                ErrorCode::MESSAGE_HEADER,
                header_subcode::CONNECTION_NOT_SYNCHRONIZED,
                Bytes::new(),
            ),
            DecodeError::BadLength(len) => NotificationMessage::new(
                ErrorCode::MESSAGE_HEADER,
                header_subcode::BAD_MESSAGE_LENGTH,
                Bytes::copy_from_slice(&len.to_be_bytes()),
            ),
            DecodeError::BadType(t) => NotificationMessage::new(
                ErrorCode::MESSAGE_HEADER,
                header_subcode::BAD_MESSAGE_TYPE,
                Bytes::copy_from_slice(&[*t]),
            ),
            DecodeError::Open { subcode, data, .. } => {
                NotificationMessage::new(ErrorCode::OPEN_MESSAGE, *subcode, data.clone())
            }
            DecodeError::Update(n) => n.clone(),
            DecodeError::Notification => return None,
            DecodeError::RouteRefreshLength(msg) => NotificationMessage::new(
                ErrorCode::ROUTE_REFRESH_MESSAGE,
                route_refresh_subcode::INVALID_MESSAGE_LENGTH,
                msg.clone(),
            ),
        })
    }
}

/// Why a message could not be encoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("message of {0} bytes exceeds the 4096-byte BGP maximum")]
    MessageTooLong(usize),
    #[error("output buffer too small: {needed} bytes needed")]
    BufferTooSmall { needed: usize },
}

/// A BGP message (RFC 4271 §4, RFC 2918).
// Messages are transient (decoded, handled, dropped), so the large UPDATE variant is
// cheaper inline than boxed (one allocation per UPDATE).
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Open(OpenMessage),
    Update(UpdateMessage),
    Notification(NotificationMessage),
    Keepalive,
    RouteRefresh(RouteRefreshMessage),
}

impl Message {
    pub fn message_type(&self) -> MessageType {
        match self {
            Message::Open(_) => MessageType::OPEN,
            Message::Update(_) => MessageType::UPDATE,
            Message::Notification(_) => MessageType::NOTIFICATION,
            Message::Keepalive => MessageType::KEEPALIVE,
            Message::RouteRefresh(_) => MessageType::ROUTE_REFRESH,
        }
    }

    fn body_len(&self, ctx: &WireContext) -> usize {
        match self {
            Message::Open(m) => m.body_len(),
            Message::Update(m) => m.body_len(ctx),
            Message::Notification(m) => m.body_len(),
            Message::Keepalive => 0,
            Message::RouteRefresh(m) => m.body_len(),
        }
    }

    /// Size on the wire, header included.
    pub fn encoded_len(&self, ctx: &WireContext) -> usize {
        HEADER_LEN + self.body_len(ctx)
    }

    /// Writes the whole message; returns its length. Nothing is written on error.
    pub fn encode(&self, buf: &mut impl BufMut, ctx: &WireContext) -> Result<usize, EncodeError> {
        let len = self.encoded_len(ctx);
        if len > MAX_MESSAGE_LEN {
            return Err(EncodeError::MessageTooLong(len));
        }
        if buf.remaining_mut() < len {
            return Err(EncodeError::BufferTooSmall { needed: len });
        }
        buf.put_slice(&MARKER);
        buf.put_u16(len as u16);
        buf.put_u8(self.message_type().0);
        match self {
            Message::Open(m) => m.encode_body(buf),
            Message::Update(m) => m.encode_body(buf, ctx),
            Message::Notification(m) => m.encode_body(buf),
            Message::Keepalive => {}
            Message::RouteRefresh(m) => m.encode_body(buf),
        }
        Ok(len)
    }

    /// Encodes into a fresh vector (tests and one-off messages).
    pub fn to_vec(&self, ctx: &WireContext) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::with_capacity(self.encoded_len(ctx));
        self.encode(&mut out, ctx)?;
        Ok(out)
    }

    /// Decodes one complete message (header included), as yielded by [`Framer`].
    ///
    /// An UPDATE whose attributes call for a lighter RFC 7606 action
    /// (attribute discard, treat-as-withdraw) decodes successfully and the action comes
    /// back beside it; a session reset comes back as [`DecodeError::Update`].
    pub fn decode(
        msg: &Bytes,
        ctx: &WireContext,
    ) -> Result<(Message, Option<ErrorAction>), DecodeError> {
        let header = Header::decode(msg)?;
        let body = msg.slice(HEADER_LEN..usize::from(header.length));
        let message = match header.msg_type {
            MessageType::OPEN => Message::Open(OpenMessage::decode(&body)?),
            MessageType::UPDATE => {
                let decoded = UpdateMessage::decode(&body, ctx);
                return match decoded.action {
                    Some(ErrorAction::SessionReset(n)) => Err(DecodeError::Update(n)),
                    action => Ok((Message::Update(decoded.update), action)),
                };
            }
            MessageType::NOTIFICATION => Message::Notification(NotificationMessage::decode(&body)?),
            MessageType::KEEPALIVE => Message::Keepalive,
            MessageType::ROUTE_REFRESH => {
                let rr = RouteRefreshMessage::decode(&body).ok_or_else(|| {
                    DecodeError::RouteRefreshLength(msg.slice(..body.len() + HEADER_LEN))
                })?;
                Message::RouteRefresh(rr)
            }
            other => return Err(DecodeError::BadType(other.0)),
        };
        Ok((message, None))
    }
}

/// Bounds-checked cursor over a message; every read returns `None` past the end.
pub(crate) struct Reader<'a> {
    buf: &'a Bytes,
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a Bytes) -> Self {
        Self { buf, pos: 0 }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    pub(crate) fn slice(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.pos.checked_add(n)?;
        let s = self.buf.get(self.pos..end)?;
        self.pos = end;
        Some(s)
    }

    /// Zero-copy sub-slice of the next `n` bytes.
    pub(crate) fn bytes(&mut self, n: usize) -> Option<Bytes> {
        let start = self.pos;
        self.slice(n)?;
        Some(self.buf.slice(start..self.pos))
    }

    pub(crate) fn rest(&mut self) -> Bytes {
        let start = self.pos.min(self.buf.len());
        self.pos = self.buf.len();
        self.buf.slice(start..)
    }

    pub(crate) fn u8(&mut self) -> Option<u8> {
        Some(self.slice(1)?[0])
    }

    pub(crate) fn u16(&mut self) -> Option<u16> {
        let s = self.slice(2)?;
        Some(u16::from_be_bytes([s[0], s[1]]))
    }

    pub(crate) fn u32(&mut self) -> Option<u32> {
        let s = self.slice(4)?;
        Some(u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
    }
}
