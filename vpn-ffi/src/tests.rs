//! Calls the C entry points from Rust, as a C caller would.

use core::ffi::c_char;
use core::ptr::{null, null_mut};

use crate::*;
use vpn_result::*;

const GCM_KEY: [u8; 36] = [7; 36];
const CBC_KEY: [u8; 16] = [3; 16];
const HMAC_KEY: [u8; 32] = [5; 32];

/// A 28-byte IPv4/UDP packet.
const INNER: [u8; 28] = [
    0x45, 0, 0, 28, 0, 1, 0, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 1, 1, 0x30, 0x39, 0x00, 0x35, 0,
    8, 0, 0,
];

fn config(encryption: &'static [u8], integrity: Option<&'static [u8]>) -> vpn_esp_sa_config {
    vpn_esp_sa_config {
        spi: 0x1000,
        encryption: encryption.as_ptr().cast(),
        integrity: integrity.map_or(null(), |s| s.as_ptr().cast()),
        esn: false,
        replay_window: 0,
        udp_encap: false,
        udp_source_port: 0,
        udp_destination_port: 0,
        tfc_pad_to: 0,
        aead_minimal_padding: false,
        soft_lifetime: vpn_esp_limits::default(),
        hard_lifetime: vpn_esp_limits::default(),
    }
}

/// Owns a handle in tests.
struct Sa(*mut vpn_esp_sa);

impl Drop for Sa {
    fn drop(&mut self) {
        // SAFETY: the handle came from `vpn_esp_sa_new` and is freed once.
        unsafe { vpn_esp_sa_free(self.0) }
    }
}

fn new_sa(config: &vpn_esp_sa_config, enc: &[u8], integ: &[u8]) -> Result<Sa, vpn_result> {
    let mut sa = null_mut();
    // SAFETY: valid config, keys and out pointer.
    let r = unsafe {
        vpn_esp_sa_new(
            config,
            enc.as_ptr(),
            enc.len(),
            integ.as_ptr(),
            integ.len(),
            0,
            &mut sa,
        )
    };
    if r == VPN_OK {
        assert!(!sa.is_null());
        Ok(Sa(sa))
    } else {
        assert!(sa.is_null(), "no handle written on failure");
        Err(r)
    }
}

fn gcm() -> Sa {
    new_sa(&config(b"aes256gcm16\0", None), &GCM_KEY, &[]).unwrap()
}

fn encapsulate(sa: &Sa, inner: &[u8], out: &mut [u8]) -> Result<usize, (vpn_result, usize)> {
    let mut n = usize::MAX;
    // SAFETY: live handle, valid distinct buffers.
    let r = unsafe {
        vpn_esp_sa_encapsulate(
            sa.0,
            0,
            inner.as_ptr(),
            inner.len(),
            out.as_mut_ptr(),
            out.len(),
            &mut n,
        )
    };
    if r == VPN_OK {
        Ok(n)
    } else {
        Err((r, n))
    }
}

fn decapsulate(sa: &Sa, buf: &mut [u8]) -> Result<(usize, usize), vpn_result> {
    let (mut off, mut len) = (usize::MAX, usize::MAX);
    // SAFETY: live handle, valid buffer and out pointers.
    let r = unsafe {
        vpn_esp_sa_decapsulate_in_place(sa.0, 0, buf.as_mut_ptr(), buf.len(), &mut off, &mut len)
    };
    if r == VPN_OK {
        Ok((off, len))
    } else {
        assert_eq!((off, len), (usize::MAX, usize::MAX), "outputs untouched");
        Err(r)
    }
}

fn counters(sa: &Sa) -> vpn_esp_counters {
    let mut c = vpn_esp_counters::default();
    // SAFETY: live handle, valid out pointer.
    assert_eq!(unsafe { vpn_esp_sa_counters(sa.0, &mut c) }, VPN_OK);
    c
}

fn last_error(sa: &Sa) -> String {
    let mut buf = [0 as c_char; 256];
    let mut n = 0;
    // SAFETY: live handle, valid buffer and out pointer.
    let r = unsafe { vpn_esp_sa_last_error_message(sa.0, buf.as_mut_ptr(), buf.len(), &mut n) };
    assert_eq!(r, VPN_OK);
    let bytes: Vec<u8> = buf[..n].iter().map(|&c| c as u8).collect();
    assert_eq!(buf[n], 0);
    String::from_utf8(bytes).unwrap()
}

#[test]
fn round_trip_gcm_and_cbc() {
    let cbc = config(b"aes128\0", Some(b"sha256\0"));
    let mut cbc_esn = cbc;
    cbc_esn.esn = true;
    for (tx, rx) in [
        (gcm(), gcm()),
        (
            new_sa(&cbc, &CBC_KEY, &HMAC_KEY).unwrap(),
            new_sa(&cbc, &CBC_KEY, &HMAC_KEY).unwrap(),
        ),
        (
            new_sa(&cbc_esn, &CBC_KEY, &HMAC_KEY).unwrap(),
            new_sa(&cbc_esn, &CBC_KEY, &HMAC_KEY).unwrap(),
        ),
    ] {
        let mut buf = [0u8; 256];
        let n = encapsulate(&tx, &INNER, &mut buf).unwrap();
        // SAFETY: live handle.
        assert_eq!(n, unsafe { vpn_esp_sa_encapsulated_len(tx.0, INNER.len()) });
        let (off, len) = decapsulate(&rx, &mut buf[..n]).unwrap();
        assert_eq!(&buf[off..off + len], &INNER);
        assert_eq!(counters(&tx).packets_out, 1);
        assert_eq!(counters(&rx).packets_in, 1);
        assert_eq!(counters(&rx).bytes_in, INNER.len() as u64);
    }
}

#[test]
fn in_place_round_trip() {
    let (tx, rx) = (gcm(), gcm());
    // SAFETY: live handles.
    let (head, tail) = unsafe { (vpn_esp_sa_headroom(tx.0), vpn_esp_sa_tailroom(tx.0)) };
    assert_eq!(head, 8 + 8);
    let mut buf = vec![0u8; head + INNER.len() + tail];
    buf[head..head + INNER.len()].copy_from_slice(&INNER);
    let mut n = 0;
    // SAFETY: live handle, valid buffer and out pointer.
    let r = unsafe {
        vpn_esp_sa_encapsulate_in_place(tx.0, 0, buf.as_mut_ptr(), buf.len(), INNER.len(), &mut n)
    };
    assert_eq!(r, VPN_OK);
    let (off, len) = decapsulate(&rx, &mut buf[..n]).unwrap();
    assert_eq!(&buf[off..off + len], &INNER);
}

#[test]
fn null_arguments_are_rejected() {
    let cfg = config(b"aes256gcm16\0", None);
    let mut sa = null_mut();
    // SAFETY: NULL pointers are what is being tested; nothing else is invalid.
    unsafe {
        assert_eq!(
            vpn_esp_sa_new(null(), GCM_KEY.as_ptr(), 36, null(), 0, 0, &mut sa),
            VPN_ERR_NULL_ARGUMENT
        );
        assert_eq!(
            vpn_esp_sa_new(&cfg, GCM_KEY.as_ptr(), 36, null(), 0, 0, null_mut()),
            VPN_ERR_NULL_ARGUMENT
        );
        // A NULL key with a non-zero length.
        assert_eq!(
            vpn_esp_sa_new(&cfg, null(), 36, null(), 0, 0, &mut sa),
            VPN_ERR_NULL_ARGUMENT
        );
        let mut no_enc = cfg;
        no_enc.encryption = null();
        assert_eq!(
            vpn_esp_sa_new(&no_enc, GCM_KEY.as_ptr(), 36, null(), 0, 0, &mut sa),
            VPN_ERR_NULL_ARGUMENT
        );
        assert!(sa.is_null());

        let mut n = 0;
        let mut buf = [0u8; 128];
        assert_eq!(
            vpn_esp_sa_encapsulate(
                null_mut(),
                0,
                INNER.as_ptr(),
                28,
                buf.as_mut_ptr(),
                128,
                &mut n
            ),
            VPN_ERR_NULL_ARGUMENT
        );
        let tx = gcm();
        assert_eq!(
            vpn_esp_sa_encapsulate(
                tx.0,
                0,
                INNER.as_ptr(),
                28,
                buf.as_mut_ptr(),
                128,
                null_mut()
            ),
            VPN_ERR_NULL_ARGUMENT
        );
        assert_eq!(
            vpn_esp_sa_encapsulate(tx.0, 0, null(), 28, buf.as_mut_ptr(), 128, &mut n),
            VPN_ERR_NULL_ARGUMENT
        );
        assert_eq!(
            vpn_esp_sa_encapsulate_in_place(tx.0, 0, null_mut(), 128, 28, &mut n),
            VPN_ERR_NULL_ARGUMENT
        );
        let (mut off, mut len) = (0, 0);
        assert_eq!(
            vpn_esp_sa_decapsulate_in_place(
                null_mut(),
                0,
                buf.as_mut_ptr(),
                128,
                &mut off,
                &mut len
            ),
            VPN_ERR_NULL_ARGUMENT
        );
        assert_eq!(
            vpn_esp_sa_decapsulate_in_place(tx.0, 0, buf.as_mut_ptr(), 128, null_mut(), &mut len),
            VPN_ERR_NULL_ARGUMENT
        );
        assert_eq!(
            vpn_esp_sa_counters(null(), &mut vpn_esp_counters::default()),
            VPN_ERR_NULL_ARGUMENT
        );
        assert_eq!(vpn_esp_sa_counters(tx.0, null_mut()), VPN_ERR_NULL_ARGUMENT);
        assert_eq!(vpn_esp_sa_headroom(null()), 0);
        assert_eq!(vpn_esp_sa_tailroom(null()), 0);
        assert_eq!(vpn_esp_sa_poll_timeout(null()), u64::MAX);
        assert_eq!(
            vpn_esp_sa_handle_timeout(null_mut(), 0),
            VPN_ERR_NULL_ARGUMENT
        );
        assert!(!vpn_esp_sa_poll_event(null_mut(), null_mut()));
        assert_eq!(
            vpn_result_message(0, null_mut(), 10, &mut n),
            VPN_ERR_NULL_ARGUMENT
        );
        vpn_esp_sa_free(null_mut());
        // Nothing was counted for argument errors.
        assert_eq!(counters(&tx), vpn_esp_counters::default());
    }
}

#[test]
fn bad_config_and_keys() {
    assert_eq!(
        new_sa(&config(b"aes999\0", None), &GCM_KEY, &[]).err(),
        Some(VPN_ERR_UNKNOWN_ALGORITHM)
    );
    assert_eq!(
        new_sa(&config(b"aes128\0", Some(b"md5\0")), &CBC_KEY, &HMAC_KEY).err(),
        Some(VPN_ERR_UNKNOWN_ALGORITHM)
    );
    assert_eq!(
        new_sa(&config(b"aes\xff\0", None), &GCM_KEY, &[]).err(),
        Some(VPN_ERR_INVALID_ARGUMENT)
    );
    assert_eq!(
        new_sa(&config(b"aes256gcm16\0", None), &GCM_KEY[..32], &[]).err(),
        Some(VPN_ERR_INVALID_KEY_LENGTH)
    );
    let mut small_spi = config(b"aes256gcm16\0", None);
    small_spi.spi = 7;
    assert_eq!(
        new_sa(&small_spi, &GCM_KEY, &[]).err(),
        Some(VPN_ERR_INVALID_CONFIG)
    );
    let mut window = config(b"aes256gcm16\0", None);
    window.replay_window = 8;
    assert_eq!(
        new_sa(&window, &GCM_KEY, &[]).err(),
        Some(VPN_ERR_INVALID_CONFIG)
    );
}

#[test]
fn buffer_too_small_reports_the_size() {
    let tx = gcm();
    // SAFETY: live handle.
    let needed = unsafe { vpn_esp_sa_encapsulated_len(tx.0, INNER.len()) };
    let mut small = vec![0xAAu8; needed - 1];
    assert_eq!(
        encapsulate(&tx, &INNER, &mut small),
        Err((VPN_ERR_BUFFER_TOO_SMALL, needed))
    );
    assert!(small.iter().all(|&b| b == 0xAA), "buffer untouched");
    // A size query with no buffer at all.
    assert_eq!(
        encapsulate(&tx, &INNER, &mut []),
        Err((VPN_ERR_BUFFER_TOO_SMALL, needed))
    );
    assert!(last_error(&tx).contains(&needed.to_string()));
    assert_eq!(counters(&tx).packets_out, 0);

    // In place: room for the inner packet but not the trailer.
    // SAFETY: live handle.
    let head = unsafe { vpn_esp_sa_headroom(tx.0) };
    let mut buf = vec![0u8; head + INNER.len()];
    buf[head..].copy_from_slice(&INNER);
    let mut n = 0;
    // SAFETY: live handle, valid buffer and out pointer.
    let r = unsafe {
        vpn_esp_sa_encapsulate_in_place(tx.0, 0, buf.as_mut_ptr(), buf.len(), INNER.len(), &mut n)
    };
    assert_eq!((r, n), (VPN_ERR_BUFFER_TOO_SMALL, needed));
    // The inner packet itself does not fit behind the headroom.
    // SAFETY: as above.
    let r = unsafe {
        vpn_esp_sa_encapsulate_in_place(tx.0, 0, buf.as_mut_ptr(), buf.len(), usize::MAX, &mut n)
    };
    assert_eq!(r, VPN_ERR_INVALID_ARGUMENT);
}

#[test]
fn overlapping_buffers_are_rejected() {
    let tx = gcm();
    let mut buf = [0u8; 256];
    buf[..28].copy_from_slice(&INNER);
    let mut n = 0;
    // SAFETY: live handle; the overlap is detected before any borrow is made.
    let r =
        unsafe { vpn_esp_sa_encapsulate(tx.0, 0, buf.as_ptr(), 28, buf.as_mut_ptr(), 256, &mut n) };
    assert_eq!(r, VPN_ERR_INVALID_ARGUMENT);
}

#[test]
fn replay_and_authentication_errors() {
    let (tx, rx) = (gcm(), gcm());
    let mut packet = [0u8; 256];
    let n = encapsulate(&tx, &INNER, &mut packet).unwrap();
    let packet = &packet[..n];

    let mut buf = packet.to_vec();
    decapsulate(&rx, &mut buf).unwrap();
    let mut buf = packet.to_vec();
    assert_eq!(decapsulate(&rx, &mut buf), Err(VPN_ERR_REPLAY));
    assert!(last_error(&rx).starts_with("replayed packet"));

    let mut packet2 = [0u8; 256];
    let n2 = encapsulate(&tx, &INNER, &mut packet2).unwrap();
    let mut tampered = packet2[..n2].to_vec();
    tampered[20] ^= 1;
    assert_eq!(decapsulate(&rx, &mut tampered), Err(VPN_ERR_AUTHENTICATION));
    // The authentic packet still goes through: the forgery did not advance the window.
    let mut buf = packet2[..n2].to_vec();
    decapsulate(&rx, &mut buf).unwrap();

    let mut wrong_spi = packet2[..n2].to_vec();
    wrong_spi[3] ^= 1;
    assert_eq!(decapsulate(&rx, &mut wrong_spi), Err(VPN_ERR_WRONG_SPI));
    assert_eq!(decapsulate(&rx, &mut [0u8; 5]), Err(VPN_ERR_MALFORMED));

    let c = counters(&rx);
    assert_eq!(
        (c.packets_in, c.replay_duplicates, c.icv_failures),
        (2, 1, 1)
    );
}

#[test]
fn lifetimes_raise_events() {
    let mut cfg = config(b"aes256gcm16\0", None);
    cfg.soft_lifetime.packets = 1;
    cfg.hard_lifetime.time_ns = 1_000;
    let tx = new_sa(&cfg, &GCM_KEY, &[]).unwrap();
    // SAFETY: live handle.
    assert_eq!(unsafe { vpn_esp_sa_poll_timeout(tx.0) }, 1_000);
    let mut out = [0u8; 256];
    encapsulate(&tx, &INNER, &mut out).unwrap();
    let mut ev = vpn_esp_event {
        kind: vpn_esp_event_kind::VPN_ESP_EVENT_SEQUENCE_EXHAUSTED,
        spi: 0,
        limit: vpn_esp_lifetime_limit::VPN_ESP_LIMIT_NONE,
    };
    // SAFETY: live handle, valid out pointer.
    unsafe {
        assert!(vpn_esp_sa_poll_event(tx.0, &mut ev));
        assert_eq!(
            ev,
            vpn_esp_event {
                kind: vpn_esp_event_kind::VPN_ESP_EVENT_SOFT_LIFETIME,
                spi: 0x1000,
                limit: vpn_esp_lifetime_limit::VPN_ESP_LIMIT_PACKETS,
            }
        );
        assert!(!vpn_esp_sa_poll_event(tx.0, &mut ev));
        assert_eq!(vpn_esp_sa_handle_timeout(tx.0, 1_000), VPN_OK);
        assert!(vpn_esp_sa_poll_event(tx.0, &mut ev));
        assert_eq!(ev.kind, vpn_esp_event_kind::VPN_ESP_EVENT_HARD_LIFETIME);
        assert_eq!(ev.limit, vpn_esp_lifetime_limit::VPN_ESP_LIMIT_TIME);
        assert_eq!(vpn_esp_sa_poll_timeout(tx.0), u64::MAX);
    }
    assert_eq!(
        encapsulate(&tx, &INNER, &mut out).map_err(|e| e.0),
        Err(VPN_ERR_EXPIRED)
    );
}

#[test]
fn udp_encapsulation_round_trip() {
    let mut cfg = config(b"aes128gcm16\0", None);
    cfg.udp_encap = true;
    cfg.udp_source_port = 4500;
    cfg.udp_destination_port = 4500;
    let key = &GCM_KEY[..20];
    let (tx, rx) = (
        new_sa(&cfg, key, &[]).unwrap(),
        new_sa(&cfg, key, &[]).unwrap(),
    );
    let mut buf = [0u8; 256];
    let n = encapsulate(&tx, &INNER, &mut buf).unwrap();
    assert_eq!(&buf[..2], &4500u16.to_be_bytes());
    let (off, len) = decapsulate(&rx, &mut buf[..n]).unwrap();
    assert_eq!(&buf[off..off + len], &INNER);
    // A NAT-keepalive on the same port is not ESP.
    let mut keepalive = [0x11, 0x94, 0x11, 0x94, 0, 9, 0, 0, 0xFF];
    assert_eq!(decapsulate(&rx, &mut keepalive), Err(VPN_ERR_NOT_ESP));
}

#[test]
fn result_messages() {
    for code in crate::result::all_results() {
        assert_eq!(vpn_result::from_u32(code as u32), Some(code));
        let mut buf = [0 as c_char; 128];
        let mut n = 0;
        // SAFETY: valid buffer and out pointer.
        let r = unsafe { vpn_result_message(code as u32, buf.as_mut_ptr(), buf.len(), &mut n) };
        assert_eq!(r, VPN_OK);
        assert_eq!(n, code.message().len());
        assert_eq!(buf[n], 0);
    }
    let mut n = 0;
    // SAFETY: a size query with no buffer.
    let r = unsafe { vpn_result_message(VPN_OK as u32, null_mut(), 0, &mut n) };
    assert_eq!((r, n), (VPN_ERR_BUFFER_TOO_SMALL, "success".len() + 1));
    let mut buf = [1 as c_char; 7];
    // SAFETY: valid buffer, one byte short for the NUL.
    let r = unsafe { vpn_result_message(VPN_OK as u32, buf.as_mut_ptr(), 7, &mut n) };
    assert_eq!((r, n), (VPN_ERR_BUFFER_TOO_SMALL, 8));
    assert_eq!(buf, [1; 7], "buffer untouched");
    // SAFETY: an unknown code still gets a message.
    let r = unsafe { vpn_result_message(9999, buf.as_mut_ptr(), 0, &mut n) };
    assert_eq!(r, VPN_ERR_BUFFER_TOO_SMALL);
    assert_eq!(n, "unknown result code".len() + 1);
}

#[test]
fn panics_do_not_cross_the_boundary() {
    let r = crate::result::guard(|| panic!("boom"));
    assert_eq!(r, VPN_ERR_PANIC);
}
