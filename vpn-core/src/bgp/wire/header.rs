//! The 19-byte message header (RFC 4271 §4.1) and its checks (§6.1).

use super::DecodeError;

/// All-ones marker that starts every message (RFC 4271 §4.1).
pub const MARKER: [u8; 16] = [0xff; 16];
/// Marker + length + type.
pub const HEADER_LEN: usize = 19;
/// Largest message without RFC 8654 extended messages.
pub const MAX_MESSAGE_LEN: usize = 4096;

/// Message type code. Open: unknown codes are carried to the Bad Message Type error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageType(pub u8);

impl MessageType {
    pub const OPEN: MessageType = MessageType(1);
    pub const UPDATE: MessageType = MessageType(2);
    pub const NOTIFICATION: MessageType = MessageType(3);
    pub const KEEPALIVE: MessageType = MessageType(4);
    /// RFC 2918.
    pub const ROUTE_REFRESH: MessageType = MessageType(5);

    /// Smallest and largest total length valid for this type, `None` if unknown.
    pub fn length_bounds(self) -> Option<(usize, usize)> {
        Some(match self {
            // Version, AS, hold time, identifier, optional parameters length.
            MessageType::OPEN => (HEADER_LEN + 10, MAX_MESSAGE_LEN),
            // Withdrawn routes length and total path attribute length.
            MessageType::UPDATE => (HEADER_LEN + 4, MAX_MESSAGE_LEN),
            // Code and subcode.
            MessageType::NOTIFICATION => (HEADER_LEN + 2, MAX_MESSAGE_LEN),
            MessageType::KEEPALIVE => (HEADER_LEN, HEADER_LEN),
            // Length errors get RFC 7313's ROUTE-REFRESH error, checked at decode.
            MessageType::ROUTE_REFRESH => (HEADER_LEN, MAX_MESSAGE_LEN),
            _ => return None,
        })
    }
}

/// A validated message header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Total message length, header included.
    pub length: u16,
    pub msg_type: MessageType,
}

impl Header {
    /// Checks a complete message's header: marker, then length range, then type, then
    /// the per-type length, in the order of RFC 4271 §6.1, and that the whole message
    /// is present in `buf`.
    pub fn decode(buf: &[u8]) -> Result<Header, DecodeError> {
        let header = Self::decode_prefix(buf)?;
        if buf.len() < usize::from(header.length) {
            return Err(DecodeError::BadLength(header.length));
        }
        Ok(header)
    }

    /// The same checks on the first 19 bytes only, so the framer can reject a bad
    /// header before the body arrives.
    pub fn decode_prefix(buf: &[u8]) -> Result<Header, DecodeError> {
        let head = buf.get(..HEADER_LEN).ok_or(DecodeError::BadLength(
            buf.len().min(usize::from(u16::MAX)) as u16,
        ))?;
        if head[..16] != MARKER {
            return Err(DecodeError::BadMarker);
        }
        let length = u16::from_be_bytes([head[16], head[17]]);
        let msg_type = MessageType(head[18]);
        let len = usize::from(length);
        if !(HEADER_LEN..=MAX_MESSAGE_LEN).contains(&len) {
            return Err(DecodeError::BadLength(length));
        }
        let (min, max) = msg_type
            .length_bounds()
            .ok_or(DecodeError::BadType(msg_type.0))?;
        if !(min..=max).contains(&len) {
            return Err(DecodeError::BadLength(length));
        }
        Ok(Header { length, msg_type })
    }
}
