//! Two manually keyed tunnels passing traffic in memory.

use super::*;
use crate::entropy::SeededEntropy;

const T0: Timestamp = Timestamp::ZERO;

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn manual_sa(spi: u32, key_byte: u8) -> ManualSa {
    ManualSa {
        spi,
        encryption: EncryptionAlgorithm::Aes256Gcm16,
        integrity: None,
        encryption_key: zeroize::Zeroizing::new(vec![key_byte; 36]),
        integrity_key: zeroize::Zeroizing::new(Vec::new()),
        esn: true,
    }
}

/// Site A (192.0.2.1, inner 10.1.0.0/16) and site B (198.51.100.1, inner 10.2.0.0/16).
fn pair() -> (Tunnel, Tunnel) {
    let settings =
        |local: &str, remote: &str, out_spi, in_spi, lan: &str, peer_lan: &str| TunnelSettings {
            local: addr(local),
            remote: addr(remote),
            keying: Keying::Manual(ManualKeying {
                outbound: manual_sa(out_spi, out_spi as u8),
                inbound: manual_sa(in_spi, in_spi as u8),
            }),
            local_traffic: vec![lan.parse().unwrap()],
            remote_traffic: vec![peer_lan.parse().unwrap()],
            replay_window: 1024,
        };
    let mut rng = SeededEntropy::new(3);
    let mut a = Tunnel::new(
        settings(
            "192.0.2.1:500",
            "198.51.100.1:500",
            0x1001,
            0x2002,
            "10.1.0.0/16",
            "10.2.0.0/16",
        ),
        T0,
    )
    .unwrap();
    let mut b = Tunnel::new(
        settings(
            "198.51.100.1:500",
            "192.0.2.1:500",
            0x2002,
            0x1001,
            "10.2.0.0/16",
            "10.1.0.0/16",
        ),
        T0,
    )
    .unwrap();
    a.connect(T0, &mut rng).unwrap();
    b.connect(T0, &mut rng).unwrap();
    (a, b)
}

fn ipv4(src: [u8; 4], dst: [u8; 4], len: usize) -> Vec<u8> {
    let mut p = vec![0u8; len];
    p[0] = 0x45;
    p[2..4].copy_from_slice(&(len as u16).to_be_bytes());
    p[12..16].copy_from_slice(&src);
    p[16..20].copy_from_slice(&dst);
    p
}

/// Seals `inner` on `from` and delivers the datagram to `to`.
fn carry(from: &mut Tunnel, to: &mut Tunnel, inner: &[u8]) -> (Received, Vec<u8>) {
    let mut buf = vec![0u8; 2048];
    let h = from.headroom();
    buf[h..h + inner.len()].copy_from_slice(inner);
    let tx = from.send_inner(T0, &mut buf, inner.len()).unwrap();
    assert_eq!(
        tx.remote,
        SocketAddr::new(to.settings().local.ip(), NAT_T_PORT)
    );
    let received = to.handle_datagram(T0, tx.remote, tx.local, &mut buf[..tx.len]);
    (received, buf)
}

#[test]
fn manual_tunnels_come_up_and_carry_traffic_both_ways() {
    let (mut a, mut b) = pair();
    assert_eq!(a.state(), TunnelState::Up);
    assert_eq!(
        a.poll_event(),
        Some(TunnelEvent::ChildSaInstalled {
            inbound_spi: 0x2002,
            outbound_spi: 0x1001
        })
    );
    assert_eq!(
        a.poll_event(),
        Some(TunnelEvent::StateChanged {
            from: TunnelState::Down,
            to: TunnelState::Up
        })
    );
    let inner = ipv4([10, 1, 0, 5], [10, 2, 0, 9], 100);
    let (received, buf) = carry(&mut a, &mut b, &inner);
    let Received::Inner { range } = received else {
        panic!("{received:?}")
    };
    assert_eq!(&buf[range], &inner[..]);
    let back = ipv4([10, 2, 0, 9], [10, 1, 0, 5], 60);
    assert!(matches!(
        carry(&mut b, &mut a, &back).0,
        Received::Inner { .. }
    ));
    assert_eq!(a.metrics().data_out_bytes, 100);
    assert_eq!(b.metrics().data_in_bytes, 100);
    assert_eq!(a.metrics().packets_in, 1);
}

#[test]
fn traffic_outside_the_selectors_is_dropped_after_decryption() {
    let (mut a, mut b) = pair();
    let spoofed = ipv4([10, 9, 0, 1], [10, 2, 0, 9], 80);
    assert_eq!(
        carry(&mut a, &mut b, &spoofed).0,
        Received::Dropped(DropReason::OutsideTrafficSelectors)
    );
    assert_eq!(b.metrics().drops_traffic_selectors, 1);
    assert_eq!(b.metrics().packets_in, 0);
}

#[test]
fn datagrams_from_strangers_and_keepalives_are_not_traffic() {
    let (_, mut b) = pair();
    let mut keepalive = [0xFF];
    assert_eq!(
        b.handle_datagram(
            T0,
            addr("198.51.100.1:4500"),
            addr("192.0.2.1:4500"),
            &mut keepalive
        ),
        Received::Control
    );
    assert_eq!(b.metrics().nat_keepalives_in, 1);
    let mut junk = [1u8; 40];
    assert_eq!(
        b.handle_datagram(
            T0,
            addr("198.51.100.1:4500"),
            addr("203.0.113.7:4500"),
            &mut junk
        ),
        Received::Dropped(DropReason::UnknownPeer)
    );
    let mut wrong_spi = [0x77u8; 60];
    assert_eq!(
        b.handle_datagram(
            T0,
            addr("198.51.100.1:4500"),
            addr("192.0.2.1:4500"),
            &mut wrong_spi
        ),
        Received::Dropped(DropReason::UnknownSpi)
    );
}

#[test]
fn replays_and_forgeries_are_counted_by_reason() {
    let (mut a, mut b) = pair();
    let inner = ipv4([10, 1, 0, 5], [10, 2, 0, 9], 100);
    let mut buf = vec![0u8; 2048];
    let h = a.headroom();
    buf[h..h + 100].copy_from_slice(&inner);
    let tx = a.send_inner(T0, &mut buf, 100).unwrap();
    let datagram = buf[..tx.len].to_vec();
    let deliver = |b: &mut Tunnel, bytes: &[u8]| {
        let mut copy = bytes.to_vec();
        b.handle_datagram(T0, tx.remote, tx.local, &mut copy)
    };
    assert!(matches!(deliver(&mut b, &datagram), Received::Inner { .. }));
    assert!(matches!(
        deliver(&mut b, &datagram),
        Received::Dropped(DropReason::Esp(_))
    ));
    let mut forged = datagram.clone();
    forged[4..8].copy_from_slice(&77u32.to_be_bytes());
    assert!(matches!(
        deliver(&mut b, &forged),
        Received::Dropped(DropReason::Esp(_))
    ));
    assert_eq!((b.metrics().drops_replay, b.metrics().drops_icv), (1, 1));
}

#[test]
fn closing_stops_traffic_and_says_why() {
    let (mut a, _) = pair();
    while a.poll_event().is_some() {}
    a.close(Timestamp::from_secs(5));
    assert_eq!(a.state(), TunnelState::Down);
    assert_eq!(
        a.poll_event(),
        Some(TunnelEvent::StateChanged {
            from: TunnelState::Up,
            to: TunnelState::Down
        })
    );
    assert_eq!(
        a.poll_event(),
        Some(TunnelEvent::Down {
            reason: DownReason::Closed
        })
    );
    let mut buf = vec![0u8; 256];
    assert_eq!(
        a.send_inner(T0, &mut buf, 20),
        Err(TunnelError::NotConnected)
    );
    assert_eq!(a.metrics().last_state_change, Some(Timestamp::from_secs(5)));
}
