//! The connection's C API driven from Rust: two connections (CGW and VGW)
//! back to back on a fake clock.

use core::ffi::c_char;
use core::ptr::{null, null_mut};

use crate::*;
use vpn_result::*;

/// Site A (customer gateway, LAN 10.1.0.0/16) and site B (AWS's end, LAN
/// 10.2.0.0/16), IKEv2 over two tunnels, static routing.
pub(crate) fn site_toml(cgw: bool) -> String {
    let (role, lan_peer, start) = if cgw {
        ("cgw", "10.2.0.0/16", "add")
    } else {
        ("vgw", "10.1.0.0/16", "add")
    };
    let mut text = format!(
        "name = \"site-{role}\"\nrole = \"{role}\"\n\
         [routing]\ntype = \"static\"\nprefixes = [\"{lan_peer}\"]\n\
         [failover]\nmode = \"active_standby\"\npreferred_tunnel = 0\nfailback_hysteresis_secs = 60\n"
    );
    for (i, (aws, inside)) in [
        ("198.51.100.21", "169.254.44.40/30"),
        ("198.51.100.87", "169.254.201.136/30"),
    ]
    .iter()
    .enumerate()
    {
        let (local, remote) = if cgw {
            ("203.0.113.10", *aws)
        } else {
            (*aws, "203.0.113.10")
        };
        text += &format!(
            "[[tunnels]]\nlocal_outside_address = \"{local}\"\nremote_outside_address = \"{remote}\"\n\
             inside_cidr = \"{inside}\"\npsk = \"test_psk.tunnel{}\"\nike_version = 2\n\
             ike_proposals = [\"aes256gcm16-prfsha256-ecp256\"]\nesp_proposals = [\"aes256gcm16-ecp256\"]\n\
             startup_action = \"{start}\"\n",
            i + 1
        );
    }
    text
}

struct Conn(*mut vpn_connection);

impl Drop for Conn {
    fn drop(&mut self) {
        // SAFETY: the handle came from `vpn_connection_new` and is freed once.
        unsafe { vpn_connection_free(self.0) }
    }
}

fn connection(text: &str, now: u64) -> Result<Conn, vpn_result> {
    let mut cfg = null_mut();
    // SAFETY: valid text and out pointer.
    let r =
        unsafe { vpn_config_from_str(VPN_CONFIG_TOML, text.as_ptr().cast(), text.len(), &mut cfg) };
    assert_eq!(r, VPN_OK);
    let mut conn = null_mut();
    // SAFETY: a live config; the config is freed right after.
    let r = unsafe { vpn_connection_new(cfg, now, &mut conn) };
    // SAFETY: freed once.
    unsafe { vpn_config_free(cfg) };
    if r == VPN_OK {
        Ok(Conn(conn))
    } else {
        Err(r)
    }
}

/// Moves every datagram of `from` into `to`; returns how many, and every
/// inner packet `to` received.
fn shuttle(from: &Conn, to: &Conn, now: u64) -> (usize, Vec<Vec<u8>>) {
    let mut buf = vec![0u8; VPN_MAX_DATAGRAM];
    let mut tx = vpn_transmit::default();
    let (mut n, mut inner) = (0, Vec::new());
    // SAFETY: live handles, buffers of the stated sizes.
    while unsafe { vpn_connection_poll_transmit(from.0, buf.as_mut_ptr(), buf.len(), &mut tx) } {
        n += 1;
        let mut rx = vpn_received {
            kind: 0,
            tunnel: -1,
            inner_offset: 0,
            inner_len: 0,
            drop_reason: 0,
            esp_error: 0,
        };
        // SAFETY: as above; local and remote swap on the way across.
        let r = unsafe {
            vpn_connection_handle_datagram(
                to.0,
                now,
                &tx.remote,
                &tx.local,
                buf.as_mut_ptr(),
                tx.len,
                &mut rx,
            )
        };
        assert_eq!(r, VPN_OK);
        if rx.kind == VPN_RECEIVED_INNER {
            inner.push(buf[rx.inner_offset..rx.inner_offset + rx.inner_len].to_vec());
        }
    }
    (n, inner)
}

fn events(c: &Conn) -> Vec<(vpn_connection_event, String)> {
    let mut out = Vec::new();
    let mut text = [0 as c_char; 256];
    let mut n = 0;
    let mut e = vpn_connection_event {
        kind: 0,
        tunnel: -1,
        from_tunnel: -1,
        state: -1,
    };
    // SAFETY: a live handle and buffers of the stated sizes.
    while unsafe { vpn_connection_poll_event(c.0, text.as_mut_ptr(), text.len(), &mut n, &mut e) } {
        let bytes: Vec<u8> = text[..n.min(255)].iter().map(|&b| b as u8).collect();
        out.push((e, String::from_utf8(bytes).unwrap()));
    }
    out
}

fn run(a: &Conn, b: &Conn, now: &mut u64, until: u64) -> Vec<(vpn_connection_event, String)> {
    let mut all = Vec::new();
    while *now < until {
        loop {
            let (n1, _) = shuttle(a, b, *now);
            let (n2, _) = shuttle(b, a, *now);
            if n1 + n2 == 0 {
                break;
            }
        }
        all.extend(events(a));
        events(b);
        // SAFETY: live handles.
        let next =
            unsafe { vpn_connection_poll_timeout(a.0).min(vpn_connection_poll_timeout(b.0)) };
        *now = next.max(*now + 1).min(until);
        // SAFETY: live handles.
        unsafe {
            assert_eq!(vpn_connection_handle_timeout(a.0, *now), VPN_OK);
            assert_eq!(vpn_connection_handle_timeout(b.0, *now), VPN_OK);
        }
    }
    all
}

fn udp_packet(src: [u8; 4], dst: [u8; 4], payload: &[u8]) -> Vec<u8> {
    let len = 28 + payload.len();
    let mut p = vec![0u8; len];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
    p[8] = 64;
    p[9] = 17;
    p[12..16].copy_from_slice(&src);
    p[16..20].copy_from_slice(&dst);
    p[20..22].copy_from_slice(&4000u16.to_be_bytes());
    p[22..24].copy_from_slice(&5000u16.to_be_bytes());
    p[24..26].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    p[28..].copy_from_slice(payload);
    p
}

fn send(c: &Conn, now: u64, inner: &[u8]) -> Result<(vpn_transmit, Vec<u8>), vpn_result> {
    // SAFETY: live handle.
    let (head, tail) = unsafe { (vpn_connection_headroom(c.0), vpn_connection_tailroom(c.0)) };
    let mut buf = vec![0u8; head + inner.len() + tail];
    buf[head..head + inner.len()].copy_from_slice(inner);
    let mut tx = vpn_transmit::default();
    // SAFETY: live handle, buffer of the stated size.
    let r = unsafe {
        vpn_connection_send_packet(c.0, now, buf.as_mut_ptr(), buf.len(), inner.len(), &mut tx)
    };
    if r != VPN_OK {
        return Err(r);
    }
    buf.truncate(tx.len);
    Ok((tx, buf))
}

fn deliver(to: &Conn, now: u64, tx: &vpn_transmit, mut datagram: Vec<u8>) -> vpn_received {
    let mut rx = vpn_received {
        kind: 0,
        tunnel: -1,
        inner_offset: 0,
        inner_len: 0,
        drop_reason: 0,
        esp_error: 0,
    };
    // SAFETY: live handle, buffer of the stated size.
    let r = unsafe {
        vpn_connection_handle_datagram(
            to.0,
            now,
            &tx.remote,
            &tx.local,
            datagram.as_mut_ptr(),
            datagram.len(),
            &mut rx,
        )
    };
    assert_eq!(r, VPN_OK);
    rx
}

const SEC: u64 = 1_000_000_000;

#[test]
fn two_sites_come_up_and_carry_traffic_and_fail_over() {
    let mut now = SEC;
    let a = connection(&site_toml(true), now).unwrap();
    let b = connection(&site_toml(false), now).unwrap();
    // SAFETY: live handles.
    unsafe {
        assert_eq!(vpn_connection_tunnel_count(a.0), 2);
        assert_eq!(vpn_connection_active_tunnel(a.0), -1);
        assert_eq!(vpn_connection_connect(b.0, now), VPN_OK);
        assert_eq!(vpn_connection_connect(a.0, now), VPN_OK);
    }
    let evs = run(&a, &b, &mut now, 5 * SEC);
    // SAFETY: live handles.
    unsafe {
        for t in 0..2 {
            assert_eq!(
                vpn_connection_tunnel_state(a.0, t),
                VPN_TUNNEL_UP,
                "{evs:?}"
            );
            assert_eq!(vpn_connection_tunnel_state(b.0, t), VPN_TUNNEL_UP);
        }
        assert_eq!(vpn_connection_active_tunnel(a.0), 0);
    }
    assert!(evs
        .iter()
        .any(|(e, text)| e.kind == VPN_EVENT_ACTIVE_TUNNEL_CHANGED
            && e.tunnel == 0
            && e.from_tunnel == -1
            && text == "active tunnel none -> 1"));
    assert!(evs
        .iter()
        .any(|(e, _)| e.kind == VPN_EVENT_CHILD_SA_INSTALLED && e.tunnel == 1));

    // A to B and back, byte-exact.
    let ping = udp_packet([10, 1, 0, 5], [10, 2, 0, 9], b"hello from site A");
    let (tx, datagram) = send(&a, now, &ping).unwrap();
    assert_eq!((tx.tunnel, tx.icmp_too_big), (0, false));
    assert_eq!(tx.remote.family, VPN_AF_INET);
    assert_eq!(&tx.remote.addr[..4], &[198, 51, 100, 21]);
    let rx = deliver(&b, now, &tx, datagram.clone());
    assert_eq!((rx.kind, rx.tunnel), (VPN_RECEIVED_INNER, 0));
    let mut d2 = datagram.clone();
    let _ = &mut d2;
    let pong = udp_packet([10, 2, 0, 9], [10, 1, 0, 5], b"hello back");
    let (tx2, dg2) = send(&b, now, &pong).unwrap();
    let mut dg2c = dg2.clone();
    let mut rx2 = vpn_received {
        kind: 0,
        tunnel: -1,
        inner_offset: 0,
        inner_len: 0,
        drop_reason: 0,
        esp_error: 0,
    };
    // SAFETY: live handle and buffer.
    unsafe {
        assert_eq!(
            vpn_connection_handle_datagram(
                a.0,
                now,
                &tx2.remote,
                &tx2.local,
                dg2c.as_mut_ptr(),
                dg2c.len(),
                &mut rx2
            ),
            VPN_OK
        );
    }
    assert_eq!(rx2.kind, VPN_RECEIVED_INNER);
    assert_eq!(
        &dg2c[rx2.inner_offset..rx2.inner_offset + rx2.inner_len],
        &pong[..]
    );
    // A replay is dropped with the ESP reason.
    let rx3 = deliver(&a, now, &tx2, dg2);
    assert_eq!(
        (rx3.kind, rx3.drop_reason, rx3.esp_error),
        (VPN_RECEIVED_DROPPED, VPN_DROP_ESP, VPN_ERR_REPLAY as u32)
    );

    // Errors of send_packet.
    assert_eq!(
        send(&a, now, &udp_packet([10, 1, 0, 5], [172, 16, 0, 1], b"x")).unwrap_err(),
        VPN_ERR_NO_ROUTE
    );
    assert_eq!(
        send(&a, now, b"not ip at all").unwrap_err(),
        VPN_ERR_UNSUPPORTED_INNER_PACKET
    );

    // Reports and Prometheus text.
    let mut report = vpn_tunnel_report::default();
    // SAFETY: live handle, valid out pointers.
    unsafe {
        assert_eq!(vpn_connection_tunnel_report(b.0, 0, &mut report), VPN_OK);
        assert_eq!(
            vpn_connection_tunnel_report(b.0, 2, &mut report),
            VPN_ERR_UNKNOWN_TUNNEL
        );
    }
    assert_eq!(report.tunnel_state, 1);
    assert!(report.active);
    assert_eq!(report.packets_in, 1);
    assert_eq!(report.tunnel_data_in, ping.len() as u64);
    let mut n = 0;
    // SAFETY: NULL/0 asks for the size.
    let r = unsafe {
        vpn_connection_metrics_prometheus(b.0, c"site-b".as_ptr(), null_mut(), 0, &mut n)
    };
    assert_eq!(r, VPN_ERR_BUFFER_TOO_SMALL);
    let mut text = vec![0u8; n];
    // SAFETY: a buffer of the size asked for.
    let r = unsafe {
        vpn_connection_metrics_prometheus(
            b.0,
            c"site-b".as_ptr(),
            text.as_mut_ptr().cast(),
            n,
            &mut n,
        )
    };
    assert_eq!(r, VPN_OK);
    let text = String::from_utf8(text[..n].to_vec()).unwrap();
    assert!(
        text.contains("vpn_tunnel_state{connection=\"site-b\",tunnel=\"1\"} 1"),
        "{text}"
    );

    // Admin-down of tunnel 0 moves traffic to tunnel 1.
    // SAFETY: live handle.
    unsafe {
        assert_eq!(
            vpn_connection_set_tunnel_admin_up(a.0, 0, false, now),
            VPN_OK
        );
        assert_eq!(
            vpn_connection_set_tunnel_admin_up(a.0, 7, false, now),
            VPN_ERR_UNKNOWN_TUNNEL
        );
        assert_eq!(vpn_connection_active_tunnel(a.0), 1);
    }
    let evs = events(&a);
    assert!(
        evs.iter()
            .any(|(e, _)| e.kind == VPN_EVENT_ACTIVE_TUNNEL_CHANGED
                && e.from_tunnel == 0
                && e.tunnel == 1),
        "{evs:?}"
    );
    let (tx, _) = send(&a, now, &ping).unwrap();
    assert_eq!(tx.tunnel, 1);
}

#[test]
fn invalid_config_is_recorded_with_its_field() {
    let text = site_toml(true).replace("test_psk.tunnel1", "0bad");
    assert_eq!(connection(&text, 0).err(), Some(VPN_ERR_INVALID_CONFIG));
    assert!(vpn_last_error_count() >= 1);
    let mut field = [0 as c_char; 64];
    let mut n = 0;
    // SAFETY: valid buffers.
    let r = unsafe { vpn_last_error_field_at(0, field.as_mut_ptr(), field.len(), &mut n) };
    assert_eq!(r, VPN_OK);
    let field: String = field[..n].iter().map(|&c| c as u8 as char).collect();
    assert_eq!(field, "tunnels[0].psk");
}

#[test]
fn null_and_bad_arguments() {
    let a = connection(&site_toml(true), 0).unwrap();
    let mut out = null_mut();
    let mut rx = vpn_received {
        kind: 0,
        tunnel: -1,
        inner_offset: 0,
        inner_len: 0,
        drop_reason: 0,
        esp_error: 0,
    };
    let mut tx = vpn_transmit::default();
    let bad = vpn_socket_addr {
        family: 9,
        ..vpn_socket_addr::default()
    };
    let mut parsed = vpn_socket_addr::default();
    // SAFETY: each call gets NULL or valid pointers.
    unsafe {
        assert_eq!(
            vpn_connection_new(null(), 0, &mut out),
            VPN_ERR_NULL_ARGUMENT
        );
        assert_eq!(vpn_connection_connect(null_mut(), 0), VPN_ERR_NULL_ARGUMENT);
        assert_eq!(vpn_connection_active_tunnel(null()), -1);
        assert_eq!(vpn_connection_poll_timeout(null()), u64::MAX);
        assert!(!vpn_connection_poll_transmit(
            null_mut(),
            null_mut(),
            0,
            &mut tx
        ));
        vpn_connection_free(null_mut());
        assert_eq!(
            vpn_socket_addr_parse(c"198.51.100.21:4500".as_ptr(), &mut parsed),
            VPN_OK
        );
        assert_eq!(
            (parsed.family, parsed.port, &parsed.addr[..4]),
            (VPN_AF_INET, 4500, &[198u8, 51, 100, 21][..])
        );
        assert_eq!(
            vpn_socket_addr_parse(c"nonsense".as_ptr(), &mut parsed),
            VPN_ERR_INVALID_ARGUMENT
        );
        let mut text = [0 as c_char; 64];
        let mut n = 0;
        let v6 = "[2001:db8::1]:500"
            .parse::<std::net::SocketAddr>()
            .unwrap()
            .into();
        assert_eq!(
            vpn_socket_addr_format(&v6, text.as_mut_ptr(), text.len(), &mut n),
            VPN_OK
        );
        assert_eq!(n, "[2001:db8::1]:500".len());
        let mut buf = [0u8; 8];
        assert_eq!(
            vpn_connection_handle_datagram(
                a.0,
                0,
                &bad,
                &parsed,
                buf.as_mut_ptr(),
                buf.len(),
                &mut rx
            ),
            VPN_ERR_INVALID_ARGUMENT
        );
        // From nobody we know: dropped, no tunnel.
        assert_eq!(
            vpn_connection_handle_datagram(
                a.0,
                0,
                &parsed,
                &parsed,
                buf.as_mut_ptr(),
                buf.len(),
                &mut rx
            ),
            VPN_OK
        );
        assert_eq!(
            (rx.kind, rx.tunnel, rx.drop_reason),
            (VPN_RECEIVED_DROPPED, -1, VPN_DROP_UNKNOWN_PEER)
        );
        // inner_len past the buffer.
        assert_eq!(
            vpn_connection_send_packet(a.0, 0, buf.as_mut_ptr(), buf.len(), 100, &mut tx),
            VPN_ERR_INVALID_ARGUMENT
        );
    }
}

#[test]
fn poll_transmit_reports_the_size_needed() {
    let a = connection(&site_toml(true), 0).unwrap();
    // SAFETY: live handle.
    assert_eq!(unsafe { vpn_connection_connect(a.0, 0) }, VPN_OK);
    let mut tx = vpn_transmit::default();
    let mut small = [0u8; 16];
    // SAFETY: valid buffers.
    let got =
        unsafe { vpn_connection_poll_transmit(a.0, small.as_mut_ptr(), small.len(), &mut tx) };
    assert!(!got);
    assert!(tx.len > 16, "the IKE_SA_INIT needs more room");
    let mut buf = vec![0u8; tx.len];
    // SAFETY: valid buffers.
    let got = unsafe { vpn_connection_poll_transmit(a.0, buf.as_mut_ptr(), buf.len(), &mut tx) };
    assert!(got);
    assert_eq!(tx.len, buf.len());
    assert_eq!(tx.remote.port, 500);
}

/// Both sites up, as in the first test.
fn two_sites_up(now: &mut u64) -> (Conn, Conn) {
    let a = connection(&site_toml(true), *now).unwrap();
    let b = connection(&site_toml(false), *now).unwrap();
    // SAFETY: live handles.
    unsafe {
        assert_eq!(vpn_connection_connect(b.0, *now), VPN_OK);
        assert_eq!(vpn_connection_connect(a.0, *now), VPN_OK);
    }
    run(&a, &b, now, *now + 5 * SEC);
    // SAFETY: live handles.
    unsafe {
        assert_eq!(vpn_connection_tunnel_state(a.0, 0), VPN_TUNNEL_UP);
        assert_eq!(vpn_connection_tunnel_state(a.0, 1), VPN_TUNNEL_UP);
    }
    (a, b)
}

fn config(text: &str) -> *mut vpn_config {
    let mut cfg = null_mut();
    // SAFETY: valid text and out pointer.
    let r =
        unsafe { vpn_config_from_str(VPN_CONFIG_TOML, text.as_ptr().cast(), text.len(), &mut cfg) };
    assert_eq!(r, VPN_OK);
    cfg
}

#[test]
fn rekey_commands_renew_the_named_sa() {
    let mut now = SEC;
    let (a, b) = two_sites_up(&mut now);
    for (tunnel, kind, rekeyed) in [
        (1, VPN_REKEY_CHILD, "tunnel 2 child SA rekeyed"),
        (0, VPN_REKEY_IKE, "tunnel 1 IKE SA rekeyed"),
    ] {
        // SAFETY: live handles.
        let r = unsafe { vpn_connection_rekey_tunnel(a.0, tunnel, kind, now) };
        assert_eq!(r, VPN_OK);
        let until = now + 2 * SEC;
        let evs = run(&a, &b, &mut now, until);
        assert!(
            evs.iter().any(|(e, text)| e.kind == VPN_EVENT_TUNNEL_OTHER
                && e.tunnel == tunnel as i32
                && text.starts_with(rekeyed)),
            "{evs:?}"
        );
    }
    // SAFETY: live handle; NULL handle.
    unsafe {
        assert_eq!(
            vpn_connection_rekey_tunnel(a.0, 2, VPN_REKEY_IKE, now),
            VPN_ERR_UNKNOWN_TUNNEL
        );
        assert_eq!(
            vpn_connection_rekey_tunnel(a.0, 0, 7, now),
            VPN_ERR_INVALID_ARGUMENT
        );
        assert_eq!(
            vpn_connection_rekey_tunnel(null_mut(), 0, VPN_REKEY_IKE, now),
            VPN_ERR_NULL_ARGUMENT
        );
    }
}

#[test]
fn replace_config_restarts_changed_tunnels_and_refuses_what_needs_a_new_connection() {
    let mut now = SEC;
    let (a, b) = two_sites_up(&mut now);
    // New pre-shared key for tunnel 2 at both ends.
    let rekeyed = |cgw: bool| site_toml(cgw).replace("test_psk.tunnel2", "new_psk.tunnel2");
    let (cfg_a, cfg_b) = (config(&rekeyed(true)), config(&rekeyed(false)));
    let mut change = vpn_config_change::default();
    // SAFETY: live handles and out pointers.
    unsafe {
        assert_eq!(
            vpn_connection_replace_config(b.0, cfg_b, now, null_mut()),
            VPN_OK
        );
        assert_eq!(
            vpn_connection_replace_config(a.0, cfg_a, now, &mut change),
            VPN_OK
        );
        assert_eq!(vpn_connection_tunnel_state(a.0, 0), VPN_TUNNEL_UP);
        assert_ne!(vpn_connection_tunnel_state(a.0, 1), VPN_TUNNEL_UP);
        vpn_config_free(cfg_a);
        vpn_config_free(cfg_b);
    }
    assert_eq!(
        change,
        vpn_config_change {
            tunnels_restarted: 0b10,
            ..vpn_config_change::default()
        }
    );
    let until = now + 5 * SEC;
    run(&a, &b, &mut now, until);
    // SAFETY: live handles.
    unsafe {
        assert_eq!(vpn_connection_tunnel_state(a.0, 1), VPN_TUNNEL_UP);
        assert_eq!(vpn_connection_active_tunnel(a.0), 0);
    }

    // Static to BGP needs a new connection; an invalid config names its field.
    let bgp = site_toml(true).replace(
        "[routing]\ntype = \"static\"\nprefixes = [\"10.2.0.0/16\"]\n",
        "[routing]\ntype = \"bgp\"\nlocal_asn = 65000\npeer_asn = 64512\n",
    );
    let invalid = site_toml(true).replace("169.254.44.40/30", "169.254.0.0/30");
    let (cfg_bgp, cfg_invalid) = (config(&bgp), config(&invalid));
    // SAFETY: live handles.
    unsafe {
        assert_eq!(
            vpn_connection_replace_config(a.0, cfg_bgp, now, &mut change),
            VPN_ERR_CANNOT_CHANGE
        );
        assert_eq!(
            vpn_connection_replace_config(a.0, cfg_invalid, now, &mut change),
            VPN_ERR_INVALID_CONFIG
        );
        assert!(vpn_last_error_count() >= 1);
        assert_eq!(
            vpn_connection_replace_config(a.0, null(), now, &mut change),
            VPN_ERR_NULL_ARGUMENT
        );
        assert_eq!(vpn_connection_tunnel_state(a.0, 0), VPN_TUNNEL_UP);
        assert_eq!(vpn_connection_tunnel_state(a.0, 1), VPN_TUNNEL_UP);
        vpn_config_free(cfg_bgp);
        vpn_config_free(cfg_invalid);
    }
}
