//! NOTIFICATION message (RFC 4271 §4.5, §6) with the error codes of RFC 4271,
//! RFC 4486 / RFC 9003 (Cease), RFC 6608 (FSM) and RFC 7313 (ROUTE-REFRESH).

use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};

use super::prefix::{Afi, Safi};
use super::DecodeError;

/// NOTIFICATION error code. Open: codes we do not know are reported as received.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ErrorCode(pub u8);

impl ErrorCode {
    pub const MESSAGE_HEADER: ErrorCode = ErrorCode(1);
    pub const OPEN_MESSAGE: ErrorCode = ErrorCode(2);
    pub const UPDATE_MESSAGE: ErrorCode = ErrorCode(3);
    pub const HOLD_TIMER_EXPIRED: ErrorCode = ErrorCode(4);
    pub const FSM: ErrorCode = ErrorCode(5);
    pub const CEASE: ErrorCode = ErrorCode(6);
    /// RFC 7313.
    pub const ROUTE_REFRESH_MESSAGE: ErrorCode = ErrorCode(7);
}

/// Subcodes of Message Header Error (RFC 4271 §6.1).
pub mod header_subcode {
    pub const CONNECTION_NOT_SYNCHRONIZED: u8 = 1;
    pub const BAD_MESSAGE_LENGTH: u8 = 2;
    pub const BAD_MESSAGE_TYPE: u8 = 3;
}

/// Subcodes of OPEN Message Error (RFC 4271 §6.2, RFC 5492).
pub mod open_subcode {
    pub const UNSPECIFIC: u8 = 0;
    pub const UNSUPPORTED_VERSION_NUMBER: u8 = 1;
    pub const BAD_PEER_AS: u8 = 2;
    pub const BAD_BGP_IDENTIFIER: u8 = 3;
    pub const UNSUPPORTED_OPTIONAL_PARAMETER: u8 = 4;
    pub const UNACCEPTABLE_HOLD_TIME: u8 = 6;
    pub const UNSUPPORTED_CAPABILITY: u8 = 7;
}

/// Subcodes of UPDATE Message Error (RFC 4271 §6.3).
pub mod update_subcode {
    pub const MALFORMED_ATTRIBUTE_LIST: u8 = 1;
    pub const UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE: u8 = 2;
    pub const MISSING_WELL_KNOWN_ATTRIBUTE: u8 = 3;
    pub const ATTRIBUTE_FLAGS_ERROR: u8 = 4;
    pub const ATTRIBUTE_LENGTH_ERROR: u8 = 5;
    pub const INVALID_ORIGIN_ATTRIBUTE: u8 = 6;
    pub const INVALID_NEXT_HOP_ATTRIBUTE: u8 = 8;
    pub const OPTIONAL_ATTRIBUTE_ERROR: u8 = 9;
    pub const INVALID_NETWORK_FIELD: u8 = 10;
    pub const MALFORMED_AS_PATH: u8 = 11;
}

/// Subcodes of Finite State Machine Error (RFC 6608).
pub mod fsm_subcode {
    pub const UNSPECIFIED: u8 = 0;
    pub const UNEXPECTED_IN_OPEN_SENT: u8 = 1;
    pub const UNEXPECTED_IN_OPEN_CONFIRM: u8 = 2;
    pub const UNEXPECTED_IN_ESTABLISHED: u8 = 3;
}

/// Subcodes of Cease (RFC 4486, RFC 8538).
pub mod cease_subcode {
    pub const MAXIMUM_PREFIXES_REACHED: u8 = 1;
    pub const ADMINISTRATIVE_SHUTDOWN: u8 = 2;
    pub const PEER_DECONFIGURED: u8 = 3;
    pub const ADMINISTRATIVE_RESET: u8 = 4;
    pub const CONNECTION_REJECTED: u8 = 5;
    pub const OTHER_CONFIGURATION_CHANGE: u8 = 6;
    pub const CONNECTION_COLLISION_RESOLUTION: u8 = 7;
    pub const OUT_OF_RESOURCES: u8 = 8;
    /// RFC 8538.
    pub const HARD_RESET: u8 = 9;
}

/// Subcodes of ROUTE-REFRESH Message Error (RFC 7313).
pub mod route_refresh_subcode {
    pub const INVALID_MESSAGE_LENGTH: u8 = 1;
}

/// RFC 9003 caps the shutdown communication at 255 octets of UTF-8.
pub const MAX_SHUTDOWN_COMMUNICATION_LEN: usize = 255;

/// NOTIFICATION message: why the session is being closed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotificationMessage {
    pub code: ErrorCode,
    /// Meaning depends on `code`; see the `*_subcode` modules.
    pub subcode: u8,
    pub data: Bytes,
}

impl NotificationMessage {
    pub fn new(code: ErrorCode, subcode: u8, data: Bytes) -> Self {
        Self {
            code,
            subcode,
            data,
        }
    }

    pub fn hold_timer_expired() -> Self {
        Self::new(ErrorCode::HOLD_TIMER_EXPIRED, 0, Bytes::new())
    }

    /// Cease / Maximum Number of Prefixes Reached; RFC 4486 §4 data: AFI, SAFI, limit.
    pub fn maximum_prefixes_reached(afi: Afi, safi: Safi, limit: u32) -> Self {
        let mut data = BytesMut::with_capacity(7);
        data.put_u16(afi.0);
        data.put_u8(safi.0);
        data.put_u32(limit);
        Self::new(
            ErrorCode::CEASE,
            cease_subcode::MAXIMUM_PREFIXES_REACHED,
            data.freeze(),
        )
    }

    /// The (AFI, SAFI, limit) of a Maximum Number of Prefixes Reached Cease.
    pub fn maximum_prefixes(&self) -> Option<(Afi, Safi, u32)> {
        if self.code != ErrorCode::CEASE || self.subcode != cease_subcode::MAXIMUM_PREFIXES_REACHED
        {
            return None;
        }
        let d = self.data.get(..7)?;
        Some((
            Afi(u16::from_be_bytes([d[0], d[1]])),
            Safi(d[2]),
            u32::from_be_bytes([d[3], d[4], d[5], d[6]]),
        ))
    }

    /// Cease / Administrative Shutdown carrying an RFC 9003 shutdown communication
    /// (truncated at a character boundary to 255 bytes; empty means none).
    pub fn administrative_shutdown(message: &str) -> Self {
        Self::with_shutdown_communication(cease_subcode::ADMINISTRATIVE_SHUTDOWN, message)
    }

    /// Cease / Administrative Reset, which RFC 9003 lets carry the same text.
    pub fn administrative_reset(message: &str) -> Self {
        Self::with_shutdown_communication(cease_subcode::ADMINISTRATIVE_RESET, message)
    }

    fn with_shutdown_communication(subcode: u8, message: &str) -> Self {
        let mut end = message.len().min(MAX_SHUTDOWN_COMMUNICATION_LEN);
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        let text = &message.as_bytes()[..end];
        let data = if text.is_empty() {
            Bytes::new()
        } else {
            let mut d = BytesMut::with_capacity(1 + text.len());
            d.put_u8(text.len() as u8);
            d.put_slice(text);
            d.freeze()
        };
        Self::new(ErrorCode::CEASE, subcode, data)
    }

    /// The RFC 9003 shutdown communication of an Administrative Shutdown or Reset, if
    /// present and valid UTF-8 of the announced length.
    pub fn shutdown_communication(&self) -> Option<&str> {
        if self.code != ErrorCode::CEASE
            || !matches!(
                self.subcode,
                cease_subcode::ADMINISTRATIVE_SHUTDOWN | cease_subcode::ADMINISTRATIVE_RESET
            )
        {
            return None;
        }
        let (&len, rest) = self.data.split_first()?;
        std::str::from_utf8(rest.get(..usize::from(len))?).ok()
    }

    /// OPEN Message Error / Unsupported Version Number; data is the highest version we
    /// support (RFC 4271 §6.2).
    pub fn unsupported_version() -> Self {
        Self::new(
            ErrorCode::OPEN_MESSAGE,
            open_subcode::UNSUPPORTED_VERSION_NUMBER,
            Bytes::copy_from_slice(&u16::from(super::BGP_VERSION).to_be_bytes()),
        )
    }

    /// OPEN Message Error / Unsupported Capability; data lists the offending
    /// capabilities as (code, length, value) tuples (RFC 5492 §5).
    pub fn unsupported_capability(capabilities: &[super::Capability]) -> Self {
        let mut data = BytesMut::new();
        for c in capabilities {
            c.encode(&mut data);
        }
        Self::new(
            ErrorCode::OPEN_MESSAGE,
            open_subcode::UNSUPPORTED_CAPABILITY,
            data.freeze(),
        )
    }

    pub(crate) fn decode(body: &Bytes) -> Result<Self, DecodeError> {
        match body.get(..2) {
            Some(&[code, subcode]) => Ok(Self::new(ErrorCode(code), subcode, body.slice(2..))),
            _ => Err(DecodeError::Notification),
        }
    }

    pub(crate) fn body_len(&self) -> usize {
        2 + self.data.len()
    }

    pub(crate) fn encode_body(&self, buf: &mut impl BufMut) {
        buf.put_u8(self.code.0);
        buf.put_u8(self.subcode);
        buf.put_slice(&self.data);
    }
}

impl fmt::Display for NotificationMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "error code {} subcode {}", self.code.0, self.subcode)?;
        if let Some(text) = self.shutdown_communication() {
            write!(f, ": {text:?}")?;
        }
        Ok(())
    }
}
