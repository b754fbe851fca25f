//! Bounds-checked big-endian reading. Every read either succeeds or returns a
//! [`WireError`]; nothing here can panic on any input.

use super::codes::PayloadType;
use super::WireError;

pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    /// The payload being read, for error messages.
    ctx: PayloadType,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8], ctx: PayloadType) -> Reader<'a> {
        Reader { buf, ctx }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub(crate) fn malformed(&self, reason: &'static str) -> WireError {
        WireError::Malformed {
            payload_type: self.ctx,
            reason,
        }
    }

    pub(crate) fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        if n > self.buf.len() {
            return Err(WireError::Truncated {
                payload_type: self.ctx,
            });
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    /// A reader over the next `n` bytes, which this reader skips.
    pub(crate) fn sub(&mut self, n: usize) -> Result<Reader<'a>, WireError> {
        let ctx = self.ctx;
        Ok(Reader {
            buf: self.take(n)?,
            ctx,
        })
    }

    pub(crate) fn skip(&mut self, n: usize) -> Result<(), WireError> {
        self.take(n).map(|_| ())
    }

    pub(crate) fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.take(1)?[0])
    }

    pub(crate) fn u16(&mut self) -> Result<u16, WireError> {
        let b = self.take(2)?;
        Ok(u16::from_be_bytes([b[0], b[1]]))
    }

    pub(crate) fn u32(&mut self) -> Result<u32, WireError> {
        let b = self.take(4)?;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    }

    pub(crate) fn u64(&mut self) -> Result<u64, WireError> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_be_bytes(a))
    }

    /// Everything left.
    pub(crate) fn rest(&mut self) -> &'a [u8] {
        core::mem::take(&mut self.buf)
    }

    pub(crate) fn expect_end(&self, reason: &'static str) -> Result<(), WireError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(self.malformed(reason))
        }
    }
}
