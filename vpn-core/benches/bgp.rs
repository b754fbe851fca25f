//! BGP performance, measured side by side with an anchor in the same run.
//!
//! 1. UPDATE decode throughput against `bgpkit-parser` (the anchor) on the same
//!    bytes: a synthetic full table of about 1,000,000 IPv4 prefixes in UPDATEs of
//!    1 to 50 prefixes each, drawn from 3,000 attribute sets (ORIGIN, AS_PATH of 1 to
//!    10 four-octet ASNs, NEXT_HOP from a pool of 16, MED on a third, 1 to 4
//!    COMMUNITIES on half). The stream is split into whole messages (`Bytes`, header
//!    included) beforehand, so neither side pays for framing. Per message:
//!    - ours: `Message::decode(&msg, &ctx)` with 4-octet AS: validates the header,
//!      decodes every path attribute into owned values (AS_PATH segments,
//!      communities, MED, NEXT_HOP, ...) and runs the RFC 7606 checks; the NLRI field
//!      stays a zero-copy slice, so we then iterate every announced prefix
//!      (`nlri.iter()`, which parses and validates each one) and fold address and
//!      length into a checksum.
//!    - bgpkit: `parse_bgp_message(&mut msg.clone(), false, &AsnLength::Bits32)`
//!      (the clone is a reference-count bump, as `Message::decode` slicing is on our
//!      side): validates the header, decodes every path attribute into owned values
//!      and the NLRI into a `Vec<NetworkPrefix>`; we then iterate every announced
//!      prefix and fold address and length into the same checksum.
//!
//!    Both checksums and prefix counts must agree, which proves the work matched.
//!    Criterion measures both on a 100,000-prefix slice of the table; the headline
//!    prefixes/s figures come from an interleaved pass over the full 1M-prefix
//!    stream (alternating whole-table passes, median of the per-round ratios).
//! 2. Full-table ingest: the same 1M-prefix stream fed in 64 KiB chunks into an
//!    established session of a `Speaker` (framing, decode, import policy, Adj-RIB-In,
//!    best path into the Loc-RIB, one route event per prefix), timed, with the heap
//!    bytes it leaves behind per prefix counted by a global allocator (the method of
//!    `tests/bgp_rib_memory.rs`). Its anchor is our own decode-only pass over the
//!    same stream in the same run: the ratio is what the RIB adds to decoding.
//!
//! Run with `cargo bench -p vpn-core --bench bgp` (about a minute). After
//! criterion's report it prints a table of the results.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use bgpkit_parser::models::{AsnLength, BgpMessage};
use bgpkit_parser::parser::bgp::messages::parse_bgp_message;
use bytes::Bytes;
use criterion::{BatchSize, Criterion, Throughput};
use vpn_core::bgp::policy::Policy;
use vpn_core::bgp::session::{ConnectMode, ConnectionId, SessionConfig, State};
use vpn_core::bgp::speaker::{NeighborConfig, PeerId, Speaker, SpeakerConfig};
use vpn_core::bgp::wire::{
    AsPath, Capability, Community, Ipv4Nlri, Ipv4Prefix, Message, OpenMessage, Origin,
    PathAttributes, UpdateMessage, WireContext,
};
use vpn_core::entropy::SeededEntropy;
use vpn_core::time::Timestamp;

// ---- heap accounting (shared with tests/bgp_rib_memory.rs) ----

#[path = "../tests/support/live_heap.rs"]
mod live_heap;

#[global_allocator]
static GLOBAL: live_heap::Counting = live_heap::Counting;

// ---- the synthetic table ----

const FULL_TABLE: usize = 1_000_000;
const CRITERION_TABLE: usize = 100_000;
const ATTRIBUTE_SETS: usize = 3_000;
const LOCAL_ASN: u32 = 65000;
const PEER_ASN: u32 = 64512;
const CTX: WireContext = WireContext {
    four_octet_as: true,
};

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

/// Distinct attribute sets: AS_PATHs of 1–10 ASNs starting with the peer's, NEXT_HOP
/// from a pool of 16, MED on a third, 1–4 communities on half.
fn attribute_sets(count: usize, rng: &mut Rng) -> Vec<PathAttributes> {
    (0..count)
        .map(|i| {
            let hops = 1 + rng.below(10) as usize;
            let mut path = vec![PEER_ASN];
            path.extend((1..hops).map(|_| 1000 + rng.below(60_000) as u32));
            if hops > 1 {
                // Distinct origin AS per set keeps the sets distinct.
                *path.last_mut().unwrap() = 100_000 + i as u32;
            }
            PathAttributes {
                origin: Some(if i % 7 == 0 {
                    Origin::Incomplete
                } else {
                    Origin::Igp
                }),
                as_path: Some(AsPath::from_sequence(path)),
                next_hop: Some(Ipv4Addr::new(169, 254, 10, 1 + (i % 16) as u8)),
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

/// A table as whole messages, and its byte stream.
struct Table {
    messages: Vec<Bytes>,
    stream: Vec<u8>,
    prefixes: usize,
}

fn build_table(total: usize, seed: u64) -> Table {
    let mut rng = Rng(seed);
    let sets = attribute_sets(ATTRIBUTE_SETS, &mut rng);
    let mut stream = Vec::with_capacity(total * 6);
    let mut ends = Vec::new();
    let mut next = 0usize;
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
        .encode(&mut stream, &CTX)
        .unwrap();
        ends.push(stream.len());
        next += n;
    }
    let all = Bytes::from(stream.clone());
    let mut start = 0;
    let messages = ends
        .into_iter()
        .map(|end| {
            let m = all.slice(start..end);
            start = end;
            m
        })
        .collect();
    Table {
        messages,
        stream,
        prefixes: total,
    }
}

// ---- the two decoders: (prefixes seen, checksum over address and length) ----

fn decode_ours(messages: &[Bytes]) -> (usize, u64) {
    let (mut n, mut sum) = (0usize, 0u64);
    for m in messages {
        match Message::decode(m, &CTX) {
            Ok((Message::Update(u), None)) => {
                black_box(&u.attributes);
                for p in u.nlri.iter() {
                    n += 1;
                    sum = sum.wrapping_add(u64::from(p.bits()) ^ u64::from(p.len()));
                }
            }
            other => panic!("unexpected decode result: {other:?}"),
        }
    }
    (n, sum)
}

fn decode_bgpkit(messages: &[Bytes]) -> (usize, u64) {
    let (mut n, mut sum) = (0usize, 0u64);
    for m in messages {
        match parse_bgp_message(&mut m.clone(), false, &AsnLength::Bits32) {
            Ok(BgpMessage::Update(u)) => {
                black_box(&u.attributes);
                for p in &u.announced_prefixes {
                    let IpAddr::V4(addr) = p.prefix.addr() else {
                        panic!("IPv6 prefix in an IPv4 table")
                    };
                    n += 1;
                    sum = sum.wrapping_add(
                        u64::from(u32::from(addr)) ^ u64::from(p.prefix.prefix_len()),
                    );
                }
            }
            other => panic!("unexpected bgpkit result: {other:?}"),
        }
    }
    (n, sum)
}

// ---- ingest ----

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

/// Feeds the stream to an established speaker; returns the number of route events.
fn ingest(speaker: &mut Speaker, peer: PeerId, stream: &[u8]) -> usize {
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
    events
}

struct IngestResult {
    seconds: f64,
    bytes_per_prefix: f64,
    attribute_sets: usize,
}

fn ingest_full(table: &Table) -> IngestResult {
    let (mut speaker, peer) = established_speaker();
    let before = live_heap::live_bytes();
    let start = Instant::now();
    let events = ingest(&mut speaker, peer, &table.stream);
    let seconds = start.elapsed().as_secs_f64();
    let after = live_heap::live_bytes();
    assert_eq!(speaker.session(peer).unwrap().state(), State::Established);
    assert_eq!(speaker.loc_rib_len(), table.prefixes);
    assert_eq!(events, table.prefixes, "one BestAdded per prefix");
    let result = IngestResult {
        seconds,
        bytes_per_prefix: (after - before) as f64 / table.prefixes as f64,
        attribute_sets: speaker.attribute_sets(),
    };
    drop(black_box(speaker));
    result
}

// ---- measurement ----

fn criterion_benches(c: &mut Criterion, small: &Table) {
    let mut group = c.benchmark_group("bgp_update_decode");
    group.throughput(Throughput::Elements(small.prefixes as u64));
    group.bench_function("bgpkit", |b| {
        b.iter(|| decode_bgpkit(black_box(&small.messages)))
    });
    group.bench_function("ours", |b| {
        b.iter(|| decode_ours(black_box(&small.messages)))
    });
    group.finish();

    let mut group = c.benchmark_group("bgp_ingest");
    group.sample_size(10);
    group.throughput(Throughput::Elements(small.prefixes as u64));
    group.bench_function("speaker", |b| {
        b.iter_batched(
            established_speaker,
            |(mut speaker, peer)| {
                ingest(&mut speaker, peer, &small.stream);
                speaker
            },
            BatchSize::LargeInput,
        )
    });
    group.finish();
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// Alternating whole-table passes of both decoders: (median seconds of ours, of
/// bgpkit, median of the per-round ratios bgpkit time / our time).
fn interleaved_decode(table: &Table, rounds: usize) -> (f64, f64, f64) {
    let (mut ours, mut theirs, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..rounds {
        let t = Instant::now();
        let a = black_box(decode_ours(&table.messages));
        let o = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let b = black_box(decode_bgpkit(&table.messages));
        let k = t.elapsed().as_secs_f64();
        assert_eq!(a, b, "both decoders must see the same prefixes");
        ours.push(o);
        theirs.push(k);
        ratios.push(k / o);
    }
    (median(&mut ours), median(&mut theirs), median(&mut ratios))
}

fn main() {
    let build = Instant::now();
    let full = build_table(FULL_TABLE, 0x5eed_1234_abcd_0001);
    let small = build_table(CRITERION_TABLE, 0x5eed_1234_abcd_0002);
    let build = build.elapsed();
    // Sanity: both decoders agree on both tables before anything is timed.
    for t in [&full, &small] {
        let ours = decode_ours(&t.messages);
        assert_eq!(ours.0, t.prefixes);
        assert_eq!(ours, decode_bgpkit(&t.messages));
    }

    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3))
        .sample_size(20)
        .configure_from_args();
    criterion_benches(&mut c, &small);
    c.final_summary();

    // Headline figures on the whole table.
    let (ours_s, bgpkit_s, ratio) = interleaved_decode(&full, 9);
    // Ingest: best of two runs for time; bytes per prefix from the first (both equal).
    let first = ingest_full(&full);
    let second = ingest_full(&full);
    let ingest_s = first.seconds.min(second.seconds);
    // Anchor: our decode alone over the same messages, right after the ingest.
    let (decode_s, _, _) = interleaved_decode(&full, 3);

    let n = full.prefixes as f64;
    println!(
        "\nBGP on a synthetic full table: {} IPv4 prefixes in {} UPDATEs ({:.1} MB), \
         {ATTRIBUTE_SETS} attribute sets (built in {:.1} s)",
        full.prefixes,
        full.messages.len(),
        full.stream.len() as f64 / 1e6,
        build.as_secs_f64()
    );
    println!("{:<44} {:>14} {:>10}", "measurement", "value", "ratio");
    println!(
        "{:<44} {:>14.0} {:>10}",
        "UPDATE decode, ours (prefixes/s)",
        n / ours_s,
        ""
    );
    println!(
        "{:<44} {:>14.0} {:>10}",
        "UPDATE decode, bgpkit-parser (prefixes/s)",
        n / bgpkit_s,
        ""
    );
    println!(
        "{:<44} {:>14} {:>10.2}",
        "  ours / bgpkit (median of 9 interleaved)", "", ratio
    );
    println!(
        "{:<44} {:>14.3} {:>10}",
        "full-table ingest (s, best of 2)", ingest_s, ""
    );
    println!(
        "{:<44} {:>14.0} {:>10}",
        "full-table ingest (prefixes/s)",
        n / ingest_s,
        ""
    );
    println!(
        "{:<44} {:>14.3} {:>10.2}",
        "  anchor: our decode alone (s), ingest/decode",
        decode_s,
        ingest_s / decode_s
    );
    println!(
        "{:<44} {:>14.1} {:>10}",
        "Loc-RIB heap bytes per prefix", first.bytes_per_prefix, ""
    );
    println!(
        "{:<44} {:>14} {:>10}",
        "attribute sets live after ingest", first.attribute_sets, ""
    );
    if ratio < 1.0 {
        println!("WARNING: our UPDATE decode is slower than bgpkit-parser in this run");
    }
}
