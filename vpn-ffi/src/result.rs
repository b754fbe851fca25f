//! Result codes, the panic boundary and pointer helpers shared by all entry points.

use core::ffi::c_char;
use std::panic::{self, AssertUnwindSafe};

use vpn_core::esp::EspError;

/// The outcome of a fallible call. `VPN_OK` is zero; every other value is an
/// error. In C this is a `uint32_t`; new codes may be added at the end.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum vpn_result {
    /// Success.
    VPN_OK = 0,
    /// A required pointer argument was NULL (or a buffer was NULL with a
    /// non-zero length).
    VPN_ERR_NULL_ARGUMENT = 1,
    /// An argument is unusable: a string is not UTF-8, a length is out of
    /// range, or two buffers that must be distinct overlap.
    VPN_ERR_INVALID_ARGUMENT = 2,
    /// An encryption or integrity keyword is not known.
    VPN_ERR_UNKNOWN_ALGORITHM = 3,
    /// A configuration breaks a rule: an ESP SA's (SPI, replay window,
    /// algorithm combination) or a connection's (`vpn_config_validate`, or a
    /// value that does not fit while loading). `vpn_last_error_message` has
    /// the details of a connection configuration's errors.
    VPN_ERR_INVALID_CONFIG = 4,
    /// A key does not have the length its algorithm needs.
    VPN_ERR_INVALID_KEY_LENGTH = 5,
    /// An output buffer is too small; the size needed was written to `*out_n`.
    VPN_ERR_BUFFER_TOO_SMALL = 6,
    /// The inner packet is neither IPv4 nor IPv6.
    VPN_ERR_UNSUPPORTED_INNER_PACKET = 7,
    /// The outbound sequence number space is used up: rekey the SA.
    VPN_ERR_SEQUENCE_EXHAUSTED = 8,
    /// The SA reached a hard lifetime and carries no more traffic.
    VPN_ERR_EXPIRED = 9,
    /// The packet's SPI is not this SA's.
    VPN_ERR_WRONG_SPI = 10,
    /// The packet is a replay (duplicate, or left of the anti-replay window).
    VPN_ERR_REPLAY = 11,
    /// ICV verification failed: wrong key or corrupted packet.
    VPN_ERR_AUTHENTICATION = 12,
    /// The decrypted ESP padding is invalid.
    VPN_ERR_INVALID_PADDING = 13,
    /// The packet is malformed (length, alignment, next header, inner header).
    VPN_ERR_MALFORMED = 14,
    /// A datagram on the NAT-T port is not ESP (IKE, keepalive or garbage).
    VPN_ERR_NOT_ESP = 15,
    /// The library panicked; the object involved should be freed.
    VPN_ERR_PANIC = 16,
    /// A configuration document is not well-formed TOML, JSON or XML, or has
    /// the wrong shape; `vpn_last_error_message` says where.
    VPN_ERR_CONFIG_SYNTAX = 17,
    /// A file could not be read; `vpn_last_error_message` says why.
    VPN_ERR_IO = 18,
    /// A BGP speaker has no neighbour with that number.
    VPN_ERR_UNKNOWN_PEER = 19,
    /// A connection has no route for the inner packet's destination through
    /// a tunnel that is up.
    VPN_ERR_NO_ROUTE = 20,
    /// The inner packet exceeds the tunnel MTU (and no ICMP reply was made).
    VPN_ERR_PACKET_TOO_BIG = 21,
    /// The tunnel is not up.
    VPN_ERR_NOT_CONNECTED = 22,
    /// A connection has no tunnel with that index.
    VPN_ERR_UNKNOWN_TUNNEL = 23,
    /// The change needs a new connection: the routing (static or BGP, and
    /// BGP's settings) or the role differs from the running configuration.
    VPN_ERR_CANNOT_CHANGE = 24,
}

use vpn_result::*;

/// Every code, in numeric order. (A function rather than a constant, which
/// cbindgen would try to export as a macro.)
pub(crate) fn all_results() -> [vpn_result; 25] {
    [
        VPN_OK,
        VPN_ERR_NULL_ARGUMENT,
        VPN_ERR_INVALID_ARGUMENT,
        VPN_ERR_UNKNOWN_ALGORITHM,
        VPN_ERR_INVALID_CONFIG,
        VPN_ERR_INVALID_KEY_LENGTH,
        VPN_ERR_BUFFER_TOO_SMALL,
        VPN_ERR_UNSUPPORTED_INNER_PACKET,
        VPN_ERR_SEQUENCE_EXHAUSTED,
        VPN_ERR_EXPIRED,
        VPN_ERR_WRONG_SPI,
        VPN_ERR_REPLAY,
        VPN_ERR_AUTHENTICATION,
        VPN_ERR_INVALID_PADDING,
        VPN_ERR_MALFORMED,
        VPN_ERR_NOT_ESP,
        VPN_ERR_PANIC,
        VPN_ERR_CONFIG_SYNTAX,
        VPN_ERR_IO,
        VPN_ERR_UNKNOWN_PEER,
        VPN_ERR_NO_ROUTE,
        VPN_ERR_PACKET_TOO_BIG,
        VPN_ERR_NOT_CONNECTED,
        VPN_ERR_UNKNOWN_TUNNEL,
        VPN_ERR_CANNOT_CHANGE,
    ]
}

impl vpn_result {
    pub fn from_u32(code: u32) -> Option<vpn_result> {
        all_results().get(usize::try_from(code).ok()?).copied()
    }

    /// A short, static description of the code.
    pub fn message(self) -> &'static str {
        match self {
            VPN_OK => "success",
            VPN_ERR_NULL_ARGUMENT => "a required pointer argument was NULL",
            VPN_ERR_INVALID_ARGUMENT => "invalid argument",
            VPN_ERR_UNKNOWN_ALGORITHM => "unknown ESP algorithm keyword",
            VPN_ERR_INVALID_CONFIG => "invalid configuration",
            VPN_ERR_INVALID_KEY_LENGTH => "key has the wrong length for its algorithm",
            VPN_ERR_BUFFER_TOO_SMALL => "buffer too small: the size needed was written to out_n",
            VPN_ERR_UNSUPPORTED_INNER_PACKET => "inner packet is neither IPv4 nor IPv6",
            VPN_ERR_SEQUENCE_EXHAUSTED => "sequence number space exhausted: the SA must be rekeyed",
            VPN_ERR_EXPIRED => "SA hard lifetime expired",
            VPN_ERR_WRONG_SPI => "packet is for another SPI",
            VPN_ERR_REPLAY => "replayed packet",
            VPN_ERR_AUTHENTICATION => "ICV verification failed (wrong key or corrupted packet)",
            VPN_ERR_INVALID_PADDING => "invalid ESP padding",
            VPN_ERR_MALFORMED => "malformed ESP packet",
            VPN_ERR_NOT_ESP => "datagram on the NAT-T port is not ESP",
            VPN_ERR_PANIC => "internal error: the library panicked",
            VPN_ERR_CONFIG_SYNTAX => "configuration document is not well-formed",
            VPN_ERR_IO => "file could not be read",
            VPN_ERR_UNKNOWN_PEER => "no BGP neighbour with that number",
            VPN_ERR_NO_ROUTE => "no route to the destination through a tunnel that is up",
            VPN_ERR_PACKET_TOO_BIG => "inner packet exceeds the tunnel MTU",
            VPN_ERR_NOT_CONNECTED => "tunnel is not up",
            VPN_ERR_UNKNOWN_TUNNEL => "no tunnel with that index",
            VPN_ERR_CANNOT_CHANGE => {
                "the routing or role cannot change on a running connection: build a new one"
            }
        }
    }
}

impl From<EspError> for vpn_result {
    fn from(e: EspError) -> Self {
        match e {
            EspError::UnknownAlgorithm => VPN_ERR_UNKNOWN_ALGORITHM,
            EspError::InvalidConfig(_) => VPN_ERR_INVALID_CONFIG,
            EspError::InvalidKeyLength { .. } => VPN_ERR_INVALID_KEY_LENGTH,
            EspError::BufferTooSmall { .. } => VPN_ERR_BUFFER_TOO_SMALL,
            EspError::UnsupportedInnerPacket => VPN_ERR_UNSUPPORTED_INNER_PACKET,
            EspError::SequenceExhausted => VPN_ERR_SEQUENCE_EXHAUSTED,
            EspError::Expired => VPN_ERR_EXPIRED,
            EspError::WrongSpi { .. } => VPN_ERR_WRONG_SPI,
            EspError::Replay { .. } => VPN_ERR_REPLAY,
            EspError::Authentication => VPN_ERR_AUTHENTICATION,
            EspError::InvalidPadding => VPN_ERR_INVALID_PADDING,
            EspError::Malformed(_) => VPN_ERR_MALFORMED,
            EspError::NotEsp(_) => VPN_ERR_NOT_ESP,
        }
    }
}

/// Writes a NUL-terminated description of `result` into `buf`.
///
/// `result` is a `vpn_result` value; any other number gets a generic
/// "unknown result code" message.
///
/// On success returns `VPN_OK` and writes the message length, without the
/// NUL, to `*out_n`. If `len` is smaller than the message plus its NUL,
/// writes nothing to `buf`, writes the size needed (including the NUL) to
/// `*out_n` and returns `VPN_ERR_BUFFER_TOO_SMALL`.
///
/// # Safety
///
/// `buf` must be NULL with `len` 0, or valid for `len` bytes of writes;
/// `out_n` must be valid for a write.
#[no_mangle]
pub unsafe extern "C" fn vpn_result_message(
    result: u32,
    buf: *mut c_char,
    len: usize,
    out_n: *mut usize,
) -> vpn_result {
    guard(|| {
        let msg = vpn_result::from_u32(result)
            .map(vpn_result::message)
            .unwrap_or("unknown result code");
        // SAFETY: the caller guarantees `buf`/`len` and `out_n` as documented.
        unsafe { write_c_str(msg, buf.cast(), len, out_n) }
    })
}

/// Runs an entry point's body behind the panic boundary.
pub(crate) fn guard(f: impl FnOnce() -> Result<(), vpn_result>) -> vpn_result {
    match panic::catch_unwind(AssertUnwindSafe(f)) {
        Ok(Ok(())) => VPN_OK,
        Ok(Err(code)) => code,
        Err(_) => VPN_ERR_PANIC,
    }
}

/// Runs an infallible getter behind the panic boundary, `fallback` on panic.
pub(crate) fn guard_value<T>(fallback: T, f: impl FnOnce() -> T) -> T {
    panic::catch_unwind(AssertUnwindSafe(f)).unwrap_or(fallback)
}

/// Checks that a pointer argument is not NULL.
pub(crate) fn non_null<T>(ptr: *const T) -> Result<(), vpn_result> {
    if ptr.is_null() {
        Err(VPN_ERR_NULL_ARGUMENT)
    } else {
        Ok(())
    }
}

fn check_len(len: usize) -> Result<(), vpn_result> {
    if len > isize::MAX as usize {
        Err(VPN_ERR_INVALID_ARGUMENT)
    } else {
        Ok(())
    }
}

/// Borrows a C input buffer; `(NULL, 0)` is the empty slice.
///
/// # Safety
///
/// Unless `len` is 0, `ptr` is NULL or valid for `len` bytes of reads, not
/// written through any other pointer for `'a`.
pub(crate) unsafe fn in_slice<'a>(ptr: *const u8, len: usize) -> Result<&'a [u8], vpn_result> {
    if len == 0 {
        return Ok(&[]);
    }
    non_null(ptr)?;
    check_len(len)?;
    // SAFETY: non-NULL, at most isize::MAX bytes, and valid for reads per the
    // caller's contract.
    Ok(unsafe { core::slice::from_raw_parts(ptr, len) })
}

/// Borrows a C output buffer; `(NULL, 0)` is the empty slice.
///
/// # Safety
///
/// Unless `len` is 0, `ptr` is NULL or valid for `len` bytes of reads and
/// writes, not accessed through any other pointer for `'a`.
pub(crate) unsafe fn out_slice<'a>(ptr: *mut u8, len: usize) -> Result<&'a mut [u8], vpn_result> {
    if len == 0 {
        return Ok(&mut []);
    }
    non_null(ptr)?;
    check_len(len)?;
    // SAFETY: non-NULL, at most isize::MAX bytes, valid and unaliased per the
    // caller's contract.
    Ok(unsafe { core::slice::from_raw_parts_mut(ptr, len) })
}

/// Whether two C buffers overlap (they then cannot be a `&[u8]` and a `&mut [u8]`).
pub(crate) fn overlap(a: *const u8, a_len: usize, b: *const u8, b_len: usize) -> bool {
    if a_len == 0 || b_len == 0 {
        return false;
    }
    let (a, b) = (a as usize, b as usize);
    a < b.saturating_add(b_len) && b < a.saturating_add(a_len)
}

/// Writes `msg` and a NUL into `buf`, following the too-small convention.
///
/// # Safety
///
/// `buf` is NULL with `len` 0 or valid for `len` bytes of writes; `out_n` is
/// NULL or valid for a write.
pub(crate) unsafe fn write_c_str(
    msg: &str,
    buf: *mut u8,
    len: usize,
    out_n: *mut usize,
) -> Result<(), vpn_result> {
    non_null(out_n)?;
    // SAFETY: per the caller's contract.
    let out = unsafe { out_slice(buf, len) }?;
    // A message with an interior NUL would read short in C; there are none,
    // but cut there rather than mislead.
    let msg = msg.split('\0').next().unwrap_or_default().as_bytes();
    let needed = msg.len() + 1;
    if out.len() < needed {
        // SAFETY: `out_n` is non-NULL and valid for a write per the contract.
        unsafe { out_n.write(needed) };
        return Err(VPN_ERR_BUFFER_TOO_SMALL);
    }
    out[..msg.len()].copy_from_slice(msg);
    out[msg.len()] = 0;
    // SAFETY: as above.
    unsafe { out_n.write(msg.len()) };
    Ok(())
}
