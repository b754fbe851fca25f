//! Full-table ingestion: ~1,000,000 IPv4 prefixes in UPDATEs with realistic attribute
//! sharing (1–50 prefixes per UPDATE, a few thousand distinct attribute sets) go
//! through an established `Session` inside a `Speaker` into the Loc-RIB. Prints the
//! time and the heap bytes per prefix, counted by a global allocator.
//!
//! Run in release: `cargo test --release -p vpn-core --test bgp_rib_memory --
//! --ignored --nocapture`. Targets: at most 4 s and 120 bytes per prefix.

use std::net::{IpAddr, Ipv4Addr};
use std::time::Instant;

use vpn_core::bgp::policy::Policy;
use vpn_core::bgp::rib::IpPrefix;
use vpn_core::bgp::session::{ConnectMode, ConnectionId, SessionConfig, State};
use vpn_core::bgp::speaker::{NeighborConfig, PeerId, Speaker, SpeakerConfig};
use vpn_core::bgp::wire::{
    AsPath, Capability, Community, Ipv4Nlri, Ipv4Prefix, Message, OpenMessage, Origin,
    PathAttributes, UpdateMessage, WireContext,
};
use vpn_core::entropy::SeededEntropy;
use vpn_core::time::Timestamp;

#[path = "support/live_heap.rs"]
mod live_heap;

#[global_allocator]
static GLOBAL: live_heap::Counting = live_heap::Counting;

const LOCAL_ASN: u32 = 65000;
const PEER_ASN: u32 = 64512;

/// Small deterministic generator (xorshift) for the table's shape.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

/// `count` distinct attribute sets: AS paths of 1–8 hops from a pool of origin ASes,
/// some with MED and communities.
fn attribute_sets(count: usize, rng: &mut Rng) -> Vec<PathAttributes> {
    (0..count)
        .map(|i| {
            let hops = 1 + rng.below(8) as usize;
            let mut path = vec![PEER_ASN];
            path.extend((1..hops).map(|_| 1000 + rng.below(60_000) as u32));
            path.push(100_000 + i as u32); // makes every set distinct
            PathAttributes {
                origin: Some(if i % 7 == 0 {
                    Origin::Incomplete
                } else {
                    Origin::Igp
                }),
                as_path: Some(AsPath::from_sequence(path)),
                next_hop: Some(Ipv4Addr::new(169, 254, 10, 1)),
                med: (i % 3 == 0).then_some(rng.below(1000) as u32),
                communities: (i % 2 == 0).then(|| {
                    (0..1 + rng.below(4))
                        .map(|_| Community::new(PEER_ASN as u16, rng.below(500) as u16))
                        .collect()
                }),
                ..Default::default()
            }
        })
        .collect()
}

/// The UPDATE stream for `total` prefixes, and the number of UPDATEs.
fn build_stream(total: usize, sets: &[PathAttributes], rng: &mut Rng) -> (Vec<u8>, usize) {
    let ctx = WireContext {
        four_octet_as: true,
    };
    let mut stream = Vec::with_capacity(total * 5);
    let (mut next, mut updates) = (0usize, 0usize);
    while next < total {
        let n = (1 + rng.below(50) as usize).min(total - next);
        let attrs = sets[rng.below(sets.len() as u64) as usize].clone();
        let nlri: Ipv4Nlri = (next..next + n)
            .map(|i| {
                // Mostly /24s, some /22s and /20s, all distinct.
                let len = match i % 10 {
                    0 => 20,
                    1 => 22,
                    _ => 24,
                };
                Ipv4Prefix::from_bits(0x0100_0000u32.wrapping_add((i as u32) << 12), len).unwrap()
            })
            .collect();
        Message::Update(UpdateMessage {
            attributes: attrs,
            nlri,
            ..Default::default()
        })
        .encode(&mut stream, &ctx)
        .unwrap();
        next += n;
        updates += 1;
    }
    (stream, updates)
}

fn established_speaker() -> (Speaker, PeerId) {
    let mut speaker = Speaker::new(
        SpeakerConfig::new(LOCAL_ASN, Ipv4Addr::new(10, 0, 0, 1)),
        Box::new(SeededEntropy::new(1)),
    );
    let mut s = SessionConfig::new(
        LOCAL_ASN,
        Ipv4Addr::new(10, 0, 0, 1),
        PEER_ASN,
        IpAddr::V4(Ipv4Addr::new(169, 254, 10, 2)),
        IpAddr::V4(Ipv4Addr::new(169, 254, 10, 1)),
    );
    s.mode = ConnectMode::Passive;
    let mut n = NeighborConfig::new(s);
    n.import = Some(Policy::accept_all());
    n.export = Some(Policy::accept_all());
    let peer = speaker.add_neighbor(n).unwrap();
    let now = Timestamp::ZERO;
    speaker.start(now, peer);
    speaker.handle_connected(now, peer, ConnectionId::Inbound);
    let open = OpenMessage::new(
        PEER_ASN,
        30,
        Ipv4Addr::new(10, 0, 0, 2),
        vec![
            Capability::Multiprotocol {
                afi: vpn_core::bgp::wire::Afi::IPV4,
                safi: vpn_core::bgp::wire::Safi::UNICAST,
            },
            Capability::FourOctetAs(PEER_ASN),
        ],
    );
    let mut bytes = Message::Open(open).to_vec(&WireContext::default()).unwrap();
    bytes.extend(Message::Keepalive.to_vec(&WireContext::default()).unwrap());
    speaker.handle_bytes(now, peer, ConnectionId::Inbound, &bytes);
    let mut sink = Vec::new();
    while speaker.poll_transmit(&mut sink).is_some() {}
    while speaker.poll_event().is_some() {}
    assert_eq!(speaker.session(peer).unwrap().state(), State::Established);
    (speaker, peer)
}

#[test]
#[ignore]
fn full_table_ingest_time_and_bytes_per_prefix() {
    const TOTAL: usize = 1_000_000;
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let sets = attribute_sets(3_000, &mut rng);
    let (stream, updates) = build_stream(TOTAL, &sets, &mut rng);
    let (mut speaker, peer) = established_speaker();

    let before = live_heap::live_bytes();
    let start = Instant::now();
    let now = Timestamp::from_secs(1);
    let mut events = 0usize;
    let mut sink = Vec::new();
    for chunk in stream.chunks(64 * 1024) {
        speaker.handle_bytes(now, peer, ConnectionId::Inbound, chunk);
        while speaker.poll_event().is_some() {
            events += 1;
        }
        while speaker.poll_transmit(&mut sink).is_some() {}
        sink.clear();
    }
    let elapsed = start.elapsed();
    let after = live_heap::live_bytes();

    assert_eq!(speaker.session(peer).unwrap().state(), State::Established);
    assert_eq!(speaker.loc_rib_len(), TOTAL);
    assert_eq!(events, TOTAL, "one BestAdded per prefix");
    let probe = IpPrefix::V4(Ipv4Prefix::from_bits(0x0100_0000 + (12_341 << 12), 22).unwrap());
    assert!(speaker.best(&probe).is_some());
    let bytes = (after - before) as f64 / TOTAL as f64;
    println!(
        "{TOTAL} prefixes in {updates} UPDATEs ({} attribute sets live): {:.2} s, \
         {bytes:.1} bytes/prefix ({:.1} MB)",
        speaker.attribute_sets(),
        elapsed.as_secs_f64(),
        (after - before) as f64 / 1e6
    );
    if !cfg!(debug_assertions) {
        assert!(elapsed.as_secs_f64() <= 4.0, "too slow: {elapsed:?}");
    }
    assert!(bytes <= 120.0, "{bytes:.1} bytes per prefix");
}
