//! Splits the BGP TCP byte stream into messages.
//!
//! Memory is bounded: the framer buffers at most one maximum-size message and
//! [`Framer::push`] accepts only what fits, so a peer cannot make it grow. Typical use:
//!
//! ```
//! # use vpn_core::bgp::wire::Framer;
//! let mut framer = Framer::new();
//! let mut input: &[u8] = &[0xff; 19][..0]; // bytes read from TCP
//! while !input.is_empty() {
//!     let n = framer.push(input);
//!     input = &input[n..];
//!     while let Some(frame) = framer.next_frame() {
//!         let _ = frame; // Ok(Frame) or Err(DecodeError) -> send its NOTIFICATION
//!     }
//! }
//! ```

use bytes::{Bytes, BytesMut};

use super::header::{Header, HEADER_LEN, MAX_MESSAGE_LEN};
use super::update::ErrorAction;
use super::{DecodeError, Message, WireContext};

/// One complete message with a validated header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub header: Header,
    /// The whole message, header included.
    pub bytes: Bytes,
}

impl Frame {
    /// Decodes the message (see [`Message::decode`]).
    pub fn decode(&self, ctx: &WireContext) -> Result<(Message, Option<ErrorAction>), DecodeError> {
        Message::decode(&self.bytes, ctx)
    }
}

/// Accumulates stream bytes and yields whole messages.
#[derive(Debug)]
pub struct Framer {
    buf: BytesMut,
    /// After a header error the stream cannot be resynchronized; the session ends.
    failed: bool,
}

impl Default for Framer {
    fn default() -> Self {
        Self::new()
    }
}

impl Framer {
    pub fn new() -> Self {
        Self {
            buf: BytesMut::with_capacity(MAX_MESSAGE_LEN),
            failed: false,
        }
    }

    /// Buffers as much of `data` as fits and returns how many bytes were taken; call
    /// [`Framer::next_frame`] until `None`, then push the rest. After an error all input
    /// is swallowed, so a caller loop always makes progress.
    pub fn push(&mut self, data: &[u8]) -> usize {
        if self.failed {
            return data.len();
        }
        let room = MAX_MESSAGE_LEN.saturating_sub(self.buf.len());
        let n = room.min(data.len());
        self.buf.extend_from_slice(&data[..n]);
        n
    }

    /// The next complete message, an error (once; the framer then stays failed), or
    /// `None` if more bytes are needed.
    pub fn next_frame(&mut self) -> Option<Result<Frame, DecodeError>> {
        if self.failed || self.buf.len() < HEADER_LEN {
            return None;
        }
        let header = match Header::decode_prefix(&self.buf) {
            Ok(h) => h,
            Err(e) => {
                self.failed = true;
                self.buf.clear();
                return Some(Err(e));
            }
        };
        let len = usize::from(header.length);
        if self.buf.len() < len {
            return None;
        }
        let bytes = self.buf.split_to(len).freeze();
        if self.buf.is_empty() {
            // Let the next reserve reuse the allocation once frames are dropped.
            self.buf.reserve(MAX_MESSAGE_LEN);
        }
        Some(Ok(Frame { header, bytes }))
    }

    /// Bytes buffered but not yet returned as a frame.
    pub fn buffered_len(&self) -> usize {
        self.buf.len()
    }

    /// True after a header error.
    pub fn is_failed(&self) -> bool {
        self.failed
    }
}
