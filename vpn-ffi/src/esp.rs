//! The ESP security association (`vpn_esp_sa`): seal and open packets in
//! place in caller buffers.

use core::ffi::{c_char, CStr};
use core::time::Duration;

use vpn_core::entropy::OsEntropy;
use vpn_core::esp::{
    EncryptionAlgorithm, EspCounters, EspError, EspEvent, EspKeys, EspSa, EspSaConfig, Framing,
    IntegrityAlgorithm, LifetimeLimit, Lifetimes, Limits,
};
use vpn_core::time::Timestamp;

use crate::result::vpn_result::{self, *};
use crate::result::{guard, guard_value, in_slice, non_null, out_slice, overlap, write_c_str};

/// Limits on an SA's use. Zero means unlimited.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct vpn_esp_limits {
    /// Inner (plaintext) bytes, both directions together.
    pub bytes: u64,
    /// Packets, both directions together.
    pub packets: u64,
    /// Nanoseconds since the SA was created.
    pub time_ns: u64,
}

/// Everything about an ESP SA except its keys.
///
/// A zero-initialised struct (`vpn_esp_sa_config config = {0};`) holds the
/// defaults for every field but `spi` and `encryption`, which must be set.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct vpn_esp_sa_config {
    /// The SPI (256 or more; 0 to 255 are reserved).
    pub spi: u32,
    /// Encryption keyword, NUL-terminated, as strongSwan spells it:
    /// "aes256gcm16", "aes128gcm16", "chacha20poly1305", "aes128", "aes256", ...
    pub encryption: *const c_char,
    /// Integrity keyword ("sha1", "sha256", "sha384", "sha512"): required for
    /// CBC encryption, NULL for AEAD algorithms.
    pub integrity: *const c_char,
    /// 64-bit extended sequence numbers (RFC 4303 §2.2.1).
    pub esn: bool,
    /// Anti-replay window in packets, 32 to 65536; 0 means the default, 1024.
    pub replay_window: u32,
    /// Frame packets as ESP-in-UDP (RFC 3948), UDP header included; otherwise
    /// packets start at the SPI.
    pub udp_encap: bool,
    /// UDP source port written when `udp_encap` is set (usually 4500).
    pub udp_source_port: u16,
    /// UDP destination port written when `udp_encap` is set (usually 4500).
    pub udp_destination_port: u16,
    /// Traffic flow confidentiality: pad inner packets to at least this many
    /// bytes; 0 disables it.
    pub tfc_pad_to: u16,
    /// Pad AEAD payloads only to the 4 bytes RFC 4303 requires. By default
    /// (false) they are padded to 16 bytes, which is faster for AES-GCM.
    pub aead_minimal_padding: bool,
    /// Reaching a soft limit raises a `VPN_ESP_EVENT_SOFT_LIFETIME` event.
    pub soft_lifetime: vpn_esp_limits,
    /// Reaching a hard limit ends the SA (`VPN_ERR_EXPIRED`).
    pub hard_lifetime: vpn_esp_limits,
}

/// Per-SA counters. Byte counts are inner (plaintext) bytes.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct vpn_esp_counters {
    pub packets_out: u64,
    pub bytes_out: u64,
    pub packets_in: u64,
    pub bytes_in: u64,
    /// Packets that failed ICV verification.
    pub icv_failures: u64,
    /// Packets dropped as already received.
    pub replay_duplicates: u64,
    /// Packets dropped as left of the anti-replay window.
    pub replay_too_old: u64,
    /// Undecodable packets: bad length, padding, next header or inner header.
    pub malformed: u64,
    /// TFC dummy packets received.
    pub dummy_packets: u64,
}

/// What a `vpn_esp_event` reports.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum vpn_esp_event_kind {
    /// A soft lifetime limit was reached: negotiate a replacement SA.
    VPN_ESP_EVENT_SOFT_LIFETIME = 1,
    /// A hard lifetime limit was reached: the SA carries no more traffic.
    VPN_ESP_EVENT_HARD_LIFETIME = 2,
    /// The outbound sequence number cannot advance: rekey.
    VPN_ESP_EVENT_SEQUENCE_EXHAUSTED = 3,
}

/// Which lifetime limit an event is about.
#[repr(u32)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum vpn_esp_lifetime_limit {
    /// The event is not about a lifetime.
    VPN_ESP_LIMIT_NONE = 0,
    VPN_ESP_LIMIT_BYTES = 1,
    VPN_ESP_LIMIT_PACKETS = 2,
    VPN_ESP_LIMIT_TIME = 3,
}

/// Something the SA's owner must act on.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct vpn_esp_event {
    pub kind: vpn_esp_event_kind,
    pub spi: u32,
    pub limit: vpn_esp_lifetime_limit,
}

/// An ESP security association in tunnel mode. Create with
/// `vpn_esp_sa_new`, release with `vpn_esp_sa_free`.
pub struct vpn_esp_sa {
    sa: EspSa,
    /// The detailed error of the last failed call, for
    /// `vpn_esp_sa_last_error_message`.
    last_error: Option<EspError>,
}

impl vpn_esp_sa {
    /// Remembers a core error and turns it into a result code; a buffer that
    /// is too small reports its needed size through `out_n`.
    fn fail(&mut self, e: EspError, out_n: *mut usize) -> vpn_result {
        self.last_error = Some(e);
        if let EspError::BufferTooSmall { needed } = e {
            if !out_n.is_null() {
                // SAFETY: every caller passes an `out_n` checked non-NULL at
                // entry and valid for a write per its documented contract.
                unsafe { out_n.write(needed) };
            }
        }
        e.into()
    }
}

fn keyword<'a>(ptr: *const c_char) -> Result<Option<&'a str>, vpn_result> {
    if ptr.is_null() {
        return Ok(None);
    }
    // SAFETY: non-NULL, and `vpn_esp_sa_new`'s contract makes keyword
    // pointers NUL-terminated strings that outlive the call.
    let s = unsafe { CStr::from_ptr(ptr) };
    s.to_str().map(Some).map_err(|_| VPN_ERR_INVALID_ARGUMENT)
}

fn limits(l: &vpn_esp_limits) -> Limits {
    let nonzero = |v: u64| (v != 0).then_some(v);
    Limits {
        bytes: nonzero(l.bytes),
        packets: nonzero(l.packets),
        time: nonzero(l.time_ns).map(Duration::from_nanos),
    }
}

fn core_config(c: &vpn_esp_sa_config) -> Result<EspSaConfig, vpn_result> {
    let encryption = keyword(c.encryption)?.ok_or(VPN_ERR_NULL_ARGUMENT)?;
    let mut config = EspSaConfig::new(c.spi, EncryptionAlgorithm::from_keyword(encryption)?);
    config.integrity = keyword(c.integrity)?
        .map(IntegrityAlgorithm::from_keyword)
        .transpose()?;
    config.esn = c.esn;
    if c.replay_window != 0 {
        config.replay_window = c.replay_window;
    }
    if c.udp_encap {
        config.framing = Framing::UdpEncap {
            source_port: c.udp_source_port,
            destination_port: c.udp_destination_port,
        };
    }
    config.tfc_pad_to = (c.tfc_pad_to != 0).then_some(c.tfc_pad_to);
    config.aead_pad_to_16 = !c.aead_minimal_padding;
    config.lifetimes = Lifetimes {
        soft: limits(&c.soft_lifetime),
        hard: limits(&c.hard_lifetime),
    };
    Ok(config)
}

impl From<&EspCounters> for vpn_esp_counters {
    fn from(c: &EspCounters) -> Self {
        vpn_esp_counters {
            packets_out: c.packets_out,
            bytes_out: c.bytes_out,
            packets_in: c.packets_in,
            bytes_in: c.bytes_in,
            icv_failures: c.icv_failures,
            replay_duplicates: c.replay_duplicates,
            replay_too_old: c.replay_too_old,
            malformed: c.malformed,
            dummy_packets: c.dummy_packets,
        }
    }
}

impl From<LifetimeLimit> for vpn_esp_lifetime_limit {
    fn from(l: LifetimeLimit) -> Self {
        match l {
            LifetimeLimit::Bytes => vpn_esp_lifetime_limit::VPN_ESP_LIMIT_BYTES,
            LifetimeLimit::Packets => vpn_esp_lifetime_limit::VPN_ESP_LIMIT_PACKETS,
            LifetimeLimit::Time => vpn_esp_lifetime_limit::VPN_ESP_LIMIT_TIME,
        }
    }
}

impl From<EspEvent> for vpn_esp_event {
    fn from(e: EspEvent) -> Self {
        use vpn_esp_event_kind::*;
        match e {
            EspEvent::SoftLifetimeReached { spi, limit } => vpn_esp_event {
                kind: VPN_ESP_EVENT_SOFT_LIFETIME,
                spi,
                limit: limit.into(),
            },
            EspEvent::HardLifetimeReached { spi, limit } => vpn_esp_event {
                kind: VPN_ESP_EVENT_HARD_LIFETIME,
                spi,
                limit: limit.into(),
            },
            EspEvent::SequenceExhausted { spi } => vpn_esp_event {
                kind: VPN_ESP_EVENT_SEQUENCE_EXHAUSTED,
                spi,
                limit: vpn_esp_lifetime_limit::VPN_ESP_LIMIT_NONE,
            },
        }
    }
}

/// Borrows the SA behind a handle for a mutating call.
///
/// # Safety
///
/// `sa` is NULL or a live handle from `vpn_esp_sa_new` not used concurrently.
unsafe fn sa_mut<'a>(sa: *mut vpn_esp_sa) -> Result<&'a mut vpn_esp_sa, vpn_result> {
    // SAFETY: per the caller's contract a non-NULL `sa` came from
    // `Box::into_raw` in `vpn_esp_sa_new`, is live and is not aliased.
    unsafe { sa.as_mut() }.ok_or(VPN_ERR_NULL_ARGUMENT)
}

/// Borrows the SA behind a handle for a getter.
///
/// # Safety
///
/// `sa` is NULL or a live handle from `vpn_esp_sa_new` not mutated concurrently.
unsafe fn sa_ref<'a>(sa: *const vpn_esp_sa) -> Option<&'a vpn_esp_sa> {
    // SAFETY: per the caller's contract.
    unsafe { sa.as_ref() }
}

/// Creates an ESP SA.
///
/// `enc_key` is the encryption key; for AEAD algorithms it is followed by
/// the 4-byte salt (as in IKEv2 KEYMAT and Linux xfrm): 36 bytes for
/// aes256gcm16, 20 for aes128gcm16. `integ_key` is the integrity key for CBC
/// (32 bytes for sha256), or NULL with length 0 for AEAD. Key bytes are
/// copied; the caller may wipe its copy after the call. The CBC IV generator
/// is seeded from the operating system's CSPRNG. `now_ns` starts the time
/// lifetimes.
///
/// On success writes a new handle to `*sa_out`; free it with `vpn_esp_sa_free`.
/// Errors: `VPN_ERR_NULL_ARGUMENT`, `VPN_ERR_INVALID_ARGUMENT` (a keyword is
/// not UTF-8), `VPN_ERR_UNKNOWN_ALGORITHM`, `VPN_ERR_INVALID_CONFIG`,
/// `VPN_ERR_INVALID_KEY_LENGTH`.
///
/// # Safety
///
/// `config` points to a valid config whose keyword pointers are NULL or
/// NUL-terminated strings; each key is NULL with length 0 or valid for its
/// length in bytes; `sa_out` is valid for a write.
#[no_mangle]
pub unsafe extern "C" fn vpn_esp_sa_new(
    config: *const vpn_esp_sa_config,
    enc_key: *const u8,
    enc_key_len: usize,
    integ_key: *const u8,
    integ_key_len: usize,
    now_ns: u64,
    sa_out: *mut *mut vpn_esp_sa,
) -> vpn_result {
    guard(|| {
        non_null(sa_out)?;
        // SAFETY: a non-NULL `config` points to a valid struct per the contract.
        let config = unsafe { config.as_ref() }.ok_or(VPN_ERR_NULL_ARGUMENT)?;
        let config = core_config(config)?;
        // SAFETY: key pointers are valid for their lengths per the contract.
        let encryption = unsafe { in_slice(enc_key, enc_key_len) }?;
        // SAFETY: as above.
        let integrity = unsafe { in_slice(integ_key, integ_key_len) }?;
        let keys = EspKeys {
            encryption,
            integrity,
        };
        let sa = EspSa::new(&config, keys, Timestamp::from_nanos(now_ns), &mut OsEntropy)?;
        let handle = Box::into_raw(Box::new(vpn_esp_sa {
            sa,
            last_error: None,
        }));
        // SAFETY: `sa_out` is non-NULL and valid for a write per the contract.
        unsafe { sa_out.write(handle) };
        Ok(())
    })
}

/// Frees an SA and wipes its keys. NULL is ignored.
///
/// # Safety
///
/// `sa` is NULL or a handle from `vpn_esp_sa_new` that is not used again.
#[no_mangle]
pub unsafe extern "C" fn vpn_esp_sa_free(sa: *mut vpn_esp_sa) {
    guard_value((), || {
        if !sa.is_null() {
            // SAFETY: a non-NULL `sa` came from `Box::into_raw` in
            // `vpn_esp_sa_new` and is freed only once per the contract.
            drop(unsafe { Box::from_raw(sa) });
        }
    })
}

/// Bytes that must precede the inner packet in the buffer given to
/// `vpn_esp_sa_encapsulate_in_place`. 0 if `sa` is NULL.
///
/// # Safety
///
/// `sa` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn vpn_esp_sa_headroom(sa: *const vpn_esp_sa) -> usize {
    // SAFETY: per the contract.
    guard_value(0, || unsafe { sa_ref(sa) }.map_or(0, |h| h.sa.headroom()))
}

/// Bytes that may follow the inner packet, at most (padding, trailer, ICV,
/// TFC padding). 0 if `sa` is NULL.
///
/// # Safety
///
/// `sa` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn vpn_esp_sa_tailroom(sa: *const vpn_esp_sa) -> usize {
    // SAFETY: per the contract.
    guard_value(0, || unsafe { sa_ref(sa) }.map_or(0, |h| h.sa.tailroom()))
}

/// Exact length of the encapsulated packet for an inner packet of
/// `inner_len` bytes. 0 if `sa` is NULL or the length is absurd.
///
/// # Safety
///
/// `sa` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn vpn_esp_sa_encapsulated_len(
    sa: *const vpn_esp_sa,
    inner_len: usize,
) -> usize {
    if inner_len > u32::MAX as usize {
        return 0;
    }
    guard_value(0, || {
        // SAFETY: per the contract.
        let h = unsafe { sa_ref(sa) };
        h.map_or(0, |h| h.sa.encapsulated_len(inner_len))
    })
}

/// Encapsulates the inner IPv4/IPv6 packet `inner` into `out`.
///
/// On success writes the encapsulated packet at `out[0..]` and its length to
/// `*out_n`. If `out_len` is too small, writes nothing to `out`, writes the
/// size needed to `*out_n` and returns `VPN_ERR_BUFFER_TOO_SMALL` (so
/// `out = NULL, out_len = 0` asks for the size). `inner` and `out` must not
/// overlap (`VPN_ERR_INVALID_ARGUMENT`); use the in-place call for that.
/// Other errors: `VPN_ERR_NULL_ARGUMENT`, `VPN_ERR_UNSUPPORTED_INNER_PACKET`,
/// `VPN_ERR_SEQUENCE_EXHAUSTED`, `VPN_ERR_EXPIRED`.
///
/// # Safety
///
/// `sa` is a live handle; `inner` is valid for `inner_len` bytes of reads and
/// `out` for `out_len` bytes of writes (each may be NULL if its length is 0);
/// `out_n` is valid for a write.
#[no_mangle]
pub unsafe extern "C" fn vpn_esp_sa_encapsulate(
    sa: *mut vpn_esp_sa,
    now_ns: u64,
    inner: *const u8,
    inner_len: usize,
    out: *mut u8,
    out_len: usize,
    out_n: *mut usize,
) -> vpn_result {
    guard(|| {
        non_null(out_n)?;
        // SAFETY: per the contract.
        let h = unsafe { sa_mut(sa) }?;
        if overlap(inner, inner_len, out, out_len) {
            return Err(VPN_ERR_INVALID_ARGUMENT);
        }
        // SAFETY: valid for reads per the contract, and distinct from `out`
        // (checked above), so the shared borrow is not written through.
        let inner = unsafe { in_slice(inner, inner_len) }?;
        // SAFETY: valid for writes per the contract, distinct from `inner`.
        let out = unsafe { out_slice(out, out_len) }?;
        match h.sa.encapsulate(Timestamp::from_nanos(now_ns), inner, out) {
            Ok(n) => {
                // SAFETY: `out_n` is non-NULL and valid for a write.
                unsafe { out_n.write(n) };
                Ok(())
            }
            Err(e) => Err(h.fail(e, out_n)),
        }
    })
}

/// Encapsulates in place the inner packet at
/// `buf[vpn_esp_sa_headroom(sa)..][..inner_len]`.
///
/// On success the encapsulated packet starts at `buf[0]` and its length is
/// written to `*out_n`. If `buf_len` cannot hold the headroom, the inner
/// packet and the trailer, the call leaves `buf` untouched, writes the size
/// needed to `*out_n` and returns `VPN_ERR_BUFFER_TOO_SMALL`.
/// `vpn_esp_sa_headroom() + inner_len + vpn_esp_sa_tailroom()` always suffices.
/// `VPN_ERR_INVALID_ARGUMENT` if the inner packet itself does not fit in
/// `buf` behind the headroom. Other errors as `vpn_esp_sa_encapsulate`.
///
/// # Safety
///
/// `sa` is a live handle; `buf` is valid for `buf_len` bytes of reads and
/// writes; `out_n` is valid for a write.
#[no_mangle]
pub unsafe extern "C" fn vpn_esp_sa_encapsulate_in_place(
    sa: *mut vpn_esp_sa,
    now_ns: u64,
    buf: *mut u8,
    buf_len: usize,
    inner_len: usize,
    out_n: *mut usize,
) -> vpn_result {
    guard(|| {
        non_null(out_n)?;
        // SAFETY: per the contract.
        let h = unsafe { sa_mut(sa) }?;
        // SAFETY: valid for reads and writes per the contract.
        let buf = unsafe { out_slice(buf, buf_len) }?;
        if inner_len > buf.len().saturating_sub(h.sa.headroom()) {
            return Err(VPN_ERR_INVALID_ARGUMENT);
        }
        match h
            .sa
            .encapsulate_in_place(Timestamp::from_nanos(now_ns), buf, inner_len)
        {
            Ok(n) => {
                // SAFETY: `out_n` is non-NULL and valid for a write.
                unsafe { out_n.write(n) };
                Ok(())
            }
            Err(e) => Err(h.fail(e, out_n)),
        }
    })
}

/// Verifies and decrypts in place the ESP packet that fills `buf[0..len]`
/// (framed as configured: starting at the SPI, or at the UDP header with
/// `udp_encap`).
///
/// On success the inner packet lies at `buf[*inner_offset..][..*inner_len]`
/// (`*inner_len` is 0 for a TFC dummy packet, which callers drop).
/// Anti-replay is checked before decryption and advanced only once the ICV
/// verified. Errors: `VPN_ERR_NULL_ARGUMENT`, `VPN_ERR_REPLAY`,
/// `VPN_ERR_AUTHENTICATION`, `VPN_ERR_WRONG_SPI`, `VPN_ERR_MALFORMED`,
/// `VPN_ERR_INVALID_PADDING`, `VPN_ERR_NOT_ESP`, `VPN_ERR_EXPIRED`; on error
/// `buf` may have been partly decrypted and must be dropped.
///
/// # Safety
///
/// `sa` is a live handle; `buf` is valid for `len` bytes of reads and writes;
/// `inner_offset` and `inner_len` are valid for writes.
#[no_mangle]
pub unsafe extern "C" fn vpn_esp_sa_decapsulate_in_place(
    sa: *mut vpn_esp_sa,
    now_ns: u64,
    buf: *mut u8,
    len: usize,
    inner_offset: *mut usize,
    inner_len: *mut usize,
) -> vpn_result {
    guard(|| {
        non_null(inner_offset)?;
        non_null(inner_len)?;
        // SAFETY: per the contract.
        let h = unsafe { sa_mut(sa) }?;
        // SAFETY: valid for reads and writes per the contract.
        let buf = unsafe { out_slice(buf, len) }?;
        match h
            .sa
            .decapsulate_in_place(Timestamp::from_nanos(now_ns), buf)
        {
            Ok(inner) => {
                // SAFETY: both are non-NULL and valid for a write.
                unsafe {
                    inner_offset.write(inner.offset);
                    inner_len.write(inner.len);
                }
                Ok(())
            }
            Err(e) => Err(h.fail(e, core::ptr::null_mut())),
        }
    })
}

/// Copies the SA's counters to `*out`.
///
/// # Safety
///
/// `sa` is a live handle; `out` is valid for a write.
#[no_mangle]
pub unsafe extern "C" fn vpn_esp_sa_counters(
    sa: *const vpn_esp_sa,
    out: *mut vpn_esp_counters,
) -> vpn_result {
    guard(|| {
        non_null(out)?;
        // SAFETY: per the contract.
        let h = unsafe { sa_ref(sa) }.ok_or(VPN_ERR_NULL_ARGUMENT)?;
        // SAFETY: `out` is non-NULL and valid for a write.
        unsafe { out.write(h.sa.counters().into()) };
        Ok(())
    })
}

/// The next instant (ns) at which `vpn_esp_sa_handle_timeout` must be
/// called, or `UINT64_MAX` if none (also if `sa` is NULL).
///
/// # Safety
///
/// `sa` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn vpn_esp_sa_poll_timeout(sa: *const vpn_esp_sa) -> u64 {
    guard_value(u64::MAX, || {
        // SAFETY: per the contract.
        unsafe { sa_ref(sa) }
            .and_then(|h| h.sa.poll_timeout())
            .map_or(u64::MAX, Timestamp::as_nanos)
    })
}

/// Fires time lifetimes that are due at `now_ns`; spurious calls are harmless.
///
/// # Safety
///
/// `sa` is a live handle.
#[no_mangle]
pub unsafe extern "C" fn vpn_esp_sa_handle_timeout(sa: *mut vpn_esp_sa, now_ns: u64) -> vpn_result {
    guard(|| {
        // SAFETY: per the contract.
        let h = unsafe { sa_mut(sa) }?;
        h.sa.handle_timeout(Timestamp::from_nanos(now_ns));
        Ok(())
    })
}

/// Takes the next pending event into `*out`. Returns true if one was
/// written, false if none is pending (or an argument is NULL). Drain it
/// after every call that moves traffic or time.
///
/// # Safety
///
/// `sa` is NULL or a live handle; `out` is NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn vpn_esp_sa_poll_event(
    sa: *mut vpn_esp_sa,
    out: *mut vpn_esp_event,
) -> bool {
    guard_value(false, || {
        if out.is_null() {
            return false;
        }
        // SAFETY: per the contract.
        let Ok(h) = (unsafe { sa_mut(sa) }) else {
            return false;
        };
        match h.sa.poll_event() {
            Some(event) => {
                // SAFETY: `out` is non-NULL and valid for a write.
                unsafe { out.write(event.into()) };
                true
            }
            None => false,
        }
    })
}

/// Writes a NUL-terminated description of the last error this SA returned
/// (with details such as the SPI or the needed size), or "no error".
///
/// On success writes the message length, without the NUL, to `*out_n`. If
/// `len` is too small, writes nothing to `buf`, writes the size needed
/// (including the NUL) to `*out_n` and returns `VPN_ERR_BUFFER_TOO_SMALL`.
/// Argument errors (NULL, overlap) are not recorded.
///
/// # Safety
///
/// `sa` is a live handle; `buf` is NULL with `len` 0 or valid for `len`
/// bytes of writes; `out_n` is valid for a write.
#[no_mangle]
pub unsafe extern "C" fn vpn_esp_sa_last_error_message(
    sa: *const vpn_esp_sa,
    buf: *mut c_char,
    len: usize,
    out_n: *mut usize,
) -> vpn_result {
    guard(|| {
        // SAFETY: per the contract.
        let h = unsafe { sa_ref(sa) }.ok_or(VPN_ERR_NULL_ARGUMENT)?;
        let msg = h
            .last_error
            .map_or_else(|| "no error".to_owned(), |e| e.to_string());
        // SAFETY: `buf`/`len` and `out_n` are valid per the contract.
        unsafe { write_c_str(&msg, buf.cast(), len, out_n) }
    })
}
