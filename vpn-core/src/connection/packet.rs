//! Inner-packet adjustments AWS recommends for traffic entering a tunnel:
//! clamp the TCP MSS of SYNs, clear the DF bit, and keep to the tunnel MTU.
//! All work in place on the caller's buffer.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

const PROTO_TCP: u8 = 6;
const TCP_SYN: u8 = 0x02;
const TCP_OPTION_END: u8 = 0;
const TCP_OPTION_NOP: u8 = 1;
const TCP_OPTION_MSS: u8 = 2;
const IPV4_DF: u8 = 0x40;

/// Destination and flow identity of an inner packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct InnerHeader {
    pub source: IpAddr,
    pub destination: IpAddr,
    /// A hash of addresses, protocol and ports: one flow, one tunnel.
    pub flow_hash: u64,
}

/// Reads the addresses of an IPv4 or IPv6 packet; `None` if it is neither
/// or too short.
pub(crate) fn inner_header(packet: &[u8]) -> Option<InnerHeader> {
    let (source, destination, protocol, l4) = match packet.first()? >> 4 {
        4 if packet.len() >= 20 => {
            let ihl = usize::from(packet[0] & 0x0F) * 4;
            let src: [u8; 4] = packet[12..16].try_into().ok()?;
            let dst: [u8; 4] = packet[16..20].try_into().ok()?;
            (
                IpAddr::from(Ipv4Addr::from(src)),
                IpAddr::from(Ipv4Addr::from(dst)),
                packet[9],
                packet.get(ihl..),
            )
        }
        6 if packet.len() >= 40 => {
            let src: [u8; 16] = packet[8..24].try_into().ok()?;
            let dst: [u8; 16] = packet[24..40].try_into().ok()?;
            (
                IpAddr::from(Ipv6Addr::from(src)),
                IpAddr::from(Ipv6Addr::from(dst)),
                packet[6],
                packet.get(40..),
            )
        }
        _ => return None,
    };
    let ports = match (protocol, l4) {
        (6 | 17, Some(l4)) if l4.len() >= 4 => u32::from_be_bytes([l4[0], l4[1], l4[2], l4[3]]),
        _ => 0,
    };
    let mut hash = Fnv::default();
    hash.write(&addr_bytes(source));
    hash.write(&addr_bytes(destination));
    hash.write(&[protocol]);
    hash.write(&ports.to_be_bytes());
    Some(InnerHeader {
        source,
        destination,
        flow_hash: hash.0,
    })
}

fn addr_bytes(addr: IpAddr) -> [u8; 16] {
    match addr {
        IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
        IpAddr::V6(a) => a.octets(),
    }
}

/// FNV-1a: a fixed, fast hash, so flows map to tunnels the same way in
/// every run.
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Fnv {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u64::from(b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

/// Lowers the MSS option of a TCP SYN to `mss` if it is larger, fixing the
/// TCP checksum incrementally (RFC 1624). Returns whether it changed.
pub(crate) fn clamp_tcp_mss(packet: &mut [u8], mss: u16) -> bool {
    let (protocol, l4_start) = match packet.first().map(|b| b >> 4) {
        Some(4) if packet.len() >= 20 => {
            // Only first fragments carry the TCP header.
            let fragment_offset = u16::from_be_bytes([packet[6], packet[7]]) & 0x1FFF;
            if fragment_offset != 0 {
                return false;
            }
            (packet[9], usize::from(packet[0] & 0x0F) * 4)
        }
        Some(6) if packet.len() >= 40 => (packet[6], 40),
        _ => return false,
    };
    if protocol != PROTO_TCP {
        return false;
    }
    let Some(tcp) = packet.get_mut(l4_start..) else {
        return false;
    };
    if tcp.len() < 20 || tcp[13] & TCP_SYN == 0 {
        return false;
    }
    let header_len = (usize::from(tcp[12] >> 4) * 4).min(tcp.len());
    let mut i = 20;
    while i < header_len {
        match tcp[i] {
            TCP_OPTION_END => break,
            TCP_OPTION_NOP => i += 1,
            kind => {
                let Some(&len) = tcp.get(i + 1) else { break };
                let len = usize::from(len);
                if len < 2 || i + len > header_len {
                    break;
                }
                if kind == TCP_OPTION_MSS && len == 4 {
                    let old = u16::from_be_bytes([tcp[i + 2], tcp[i + 3]]);
                    if old <= mss {
                        return false;
                    }
                    tcp[i + 2..i + 4].copy_from_slice(&mss.to_be_bytes());
                    let checksum = u16::from_be_bytes([tcp[16], tcp[17]]);
                    tcp[16..18].copy_from_slice(&checksum_update(checksum, old, mss).to_be_bytes());
                    return true;
                }
                i += len;
            }
        }
    }
    false
}

/// Clears the DF bit of an IPv4 packet so that it may be fragmented,
/// fixing the header checksum. Returns whether it changed.
pub(crate) fn clear_df(packet: &mut [u8]) -> bool {
    if packet.len() < 20 || packet[0] >> 4 != 4 || packet[6] & IPV4_DF == 0 {
        return false;
    }
    let old = u16::from_be_bytes([packet[6], packet[7]]);
    packet[6] &= !IPV4_DF;
    let new = u16::from_be_bytes([packet[6], packet[7]]);
    let checksum = u16::from_be_bytes([packet[10], packet[11]]);
    packet[10..12].copy_from_slice(&checksum_update(checksum, old, new).to_be_bytes());
    true
}

/// Whether an IPv4 packet forbids fragmentation (always true for IPv6,
/// which routers never fragment).
pub(crate) fn dont_fragment(packet: &[u8]) -> bool {
    match packet.first().map(|b| b >> 4) {
        Some(4) => packet.get(6).is_some_and(|b| b & IPV4_DF != 0),
        _ => true,
    }
}

/// Splits an IPv4 packet whose DF bit is clear into fragments of at most
/// `mtu` bytes (RFC 791): every fragment carries the header (options
/// included), payload pieces are multiples of 8 bytes, offsets and the MF
/// flag follow the original's. `None` for IPv6, DF packets, or an MTU too
/// small to carry 8 bytes of payload.
pub(crate) fn fragment_ipv4(packet: &[u8], mtu: usize) -> Option<Vec<Vec<u8>>> {
    if packet.len() < 20 || packet[0] >> 4 != 4 || packet[6] & IPV4_DF != 0 {
        return None;
    }
    let header_len = usize::from(packet[0] & 0x0F) * 4;
    let total = usize::from(u16::from_be_bytes([packet[2], packet[3]])).min(packet.len());
    if header_len < 20 || total <= header_len {
        return None;
    }
    let piece = (mtu.checked_sub(header_len)? / 8) * 8;
    if piece == 0 {
        return None;
    }
    let flags_offset = u16::from_be_bytes([packet[6], packet[7]]);
    let original_more = flags_offset & 0x2000 != 0;
    let original_offset = usize::from(flags_offset & 0x1FFF);
    let payload = &packet[header_len..total];
    let mut fragments = Vec::new();
    for (i, chunk) in payload.chunks(piece).enumerate() {
        let mut f = Vec::with_capacity(header_len + chunk.len());
        f.extend_from_slice(&packet[..header_len]);
        f.extend_from_slice(chunk);
        let len = u16::try_from(f.len()).ok()?;
        f[2..4].copy_from_slice(&len.to_be_bytes());
        let last = (i + 1) * piece >= payload.len();
        let offset = u16::try_from(original_offset + i * piece / 8).ok()?;
        let more = if last { original_more } else { true };
        let field = offset | if more { 0x2000 } else { 0 };
        f[6..8].copy_from_slice(&field.to_be_bytes());
        f[10..12].fill(0);
        let checksum = internet_checksum(&f[..header_len]);
        f[10..12].copy_from_slice(&checksum.to_be_bytes());
        fragments.push(f);
    }
    Some(fragments)
}

/// RFC 1624 eqn. 3: HC' = ~(~HC + ~m + m').
fn checksum_update(checksum: u16, old: u16, new: u16) -> u16 {
    let mut sum = u32::from(!checksum) + u32::from(!old) + u32::from(new);
    while sum > 0xFFFF {
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    !(sum as u16)
}

/// The Internet checksum of `data` (RFC 1071), for tests and ICMP.
pub(crate) fn internet_checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xFFFF {
        sum = (sum & 0xFFFF) + (sum >> 16);
    }
    !(sum as u16)
}

/// Writes into `out` an ICMPv4 "fragmentation needed" (type 3 code 4, RFC
/// 1191) from `from` back to the sender of `packet`, advertising `mtu`.
/// Returns its length, or `None` for non-IPv4 packets or a short buffer.
pub(crate) fn icmp_too_big(
    packet: &[u8],
    from: Ipv4Addr,
    mtu: u16,
    out: &mut [u8],
) -> Option<usize> {
    if packet.len() < 20 || packet[0] >> 4 != 4 {
        return None;
    }
    // The original header and 8 bytes of its payload (RFC 792).
    let quoted = packet.len().min(usize::from(packet[0] & 0x0F) * 4 + 8);
    let total = 20 + 8 + quoted;
    let out = out.get_mut(..total)?;
    out.fill(0);
    out[0] = 0x45;
    out[2..4].copy_from_slice(&(total as u16).to_be_bytes());
    out[8] = 64;
    out[9] = 1; // ICMP
    out[12..16].copy_from_slice(&from.octets());
    out[16..20].copy_from_slice(&packet[12..16]);
    let header_checksum = internet_checksum(&out[..20]);
    out[10..12].copy_from_slice(&header_checksum.to_be_bytes());
    out[20] = 3;
    out[21] = 4;
    out[26..28].copy_from_slice(&mtu.to_be_bytes());
    out[28..].copy_from_slice(&packet[..quoted]);
    let icmp_checksum = internet_checksum(&out[20..]);
    out[22..24].copy_from_slice(&icmp_checksum.to_be_bytes());
    Some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An IPv4 TCP SYN with options MSS (1460), NOP, NOP, SACK-permitted.
    fn syn(mss: u16) -> Vec<u8> {
        let mut p = vec![0u8; 20 + 28];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&(48u16).to_be_bytes());
        p[6] = IPV4_DF;
        p[8] = 64;
        p[9] = PROTO_TCP;
        p[12..16].copy_from_slice(&[10, 1, 0, 5]);
        p[16..20].copy_from_slice(&[10, 2, 0, 9]);
        let ip_checksum = internet_checksum(&p[..20]);
        p[10..12].copy_from_slice(&ip_checksum.to_be_bytes());
        let tcp = &mut p[20..];
        tcp[0..2].copy_from_slice(&40000u16.to_be_bytes());
        tcp[2..4].copy_from_slice(&443u16.to_be_bytes());
        tcp[12] = 7 << 4;
        tcp[13] = TCP_SYN;
        tcp[20..28].copy_from_slice(&[2, 4, (mss >> 8) as u8, mss as u8, 1, 1, 4, 2]);
        let checksum = tcp_checksum(&p);
        p[36..38].copy_from_slice(&checksum.to_be_bytes());
        p
    }

    /// Full TCP checksum with the IPv4 pseudo-header, computed from scratch.
    fn tcp_checksum(p: &[u8]) -> u16 {
        let tcp = &p[20..];
        let mut pseudo = Vec::new();
        pseudo.extend_from_slice(&p[12..20]);
        pseudo.extend_from_slice(&[0, PROTO_TCP]);
        pseudo.extend_from_slice(&(tcp.len() as u16).to_be_bytes());
        let mut zeroed = tcp.to_vec();
        zeroed[16..18].fill(0);
        pseudo.extend_from_slice(&zeroed);
        internet_checksum(&pseudo)
    }

    #[test]
    fn mss_is_clamped_with_a_correct_checksum() {
        let mut p = syn(1460);
        assert!(clamp_tcp_mss(&mut p, 1379));
        assert_eq!(&p[40..44], &[2, 4, 0x05, 0x63]);
        assert_eq!(u16::from_be_bytes([p[36], p[37]]), tcp_checksum(&p));
        // Already small enough: untouched.
        let mut small = syn(1200);
        let before = small.clone();
        assert!(!clamp_tcp_mss(&mut small, 1379));
        assert_eq!(small, before);
        // Not a SYN: untouched.
        let mut ack = syn(1460);
        ack[33] = 0x10;
        assert!(!clamp_tcp_mss(&mut ack, 1379));
    }

    #[test]
    fn df_is_cleared_with_a_correct_header_checksum() {
        let mut p = syn(1460);
        assert!(dont_fragment(&p));
        assert!(clear_df(&mut p));
        assert!(!dont_fragment(&p));
        assert_eq!(
            internet_checksum(&p[..20]),
            0,
            "a valid header sums to zero"
        );
        assert!(!clear_df(&mut p));
    }

    #[test]
    fn fragments_reassemble_to_the_original() {
        let mut p = vec![0u8; 1500];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&1500u16.to_be_bytes());
        p[8] = 64;
        p[9] = 17;
        for (i, b) in p[20..].iter_mut().enumerate() {
            *b = i as u8;
        }
        let frags = fragment_ipv4(&p, 1436).unwrap();
        assert_eq!(frags.len(), 2);
        assert!(frags.iter().all(|f| f.len() <= 1436));
        assert_eq!(frags[0].len(), 20 + 1416);
        let mut payload = Vec::new();
        for (i, f) in frags.iter().enumerate() {
            assert_eq!(internet_checksum(&f[..20]), 0);
            let field = u16::from_be_bytes([f[6], f[7]]);
            assert_eq!(field & 0x2000 != 0, i == 0, "MF on all but the last");
            assert_eq!(usize::from(field & 0x1FFF) * 8, payload.len());
            payload.extend_from_slice(&f[20..]);
        }
        assert_eq!(payload, &p[20..]);
        // DF set or IPv6: not fragmented here.
        p[6] = IPV4_DF;
        assert_eq!(fragment_ipv4(&p, 1436), None);
    }

    #[test]
    fn icmp_too_big_quotes_the_packet_and_checks_out() {
        let p = syn(1460);
        let mut out = [0u8; 128];
        let n = icmp_too_big(&p, Ipv4Addr::new(169, 254, 10, 2), 1436, &mut out).unwrap();
        assert_eq!(n, 20 + 8 + 28);
        assert_eq!(internet_checksum(&out[..20]), 0);
        assert_eq!(internet_checksum(&out[20..n]), 0);
        assert_eq!(&out[16..20], &[10, 1, 0, 5]);
        assert_eq!(u16::from_be_bytes([out[26], out[27]]), 1436);
    }

    #[test]
    fn flows_hash_stably_and_garbage_is_not_a_packet() {
        let a = inner_header(&syn(1460)).unwrap();
        assert_eq!(a, inner_header(&syn(1460)).unwrap());
        let mut other = syn(1460);
        other[20] = 1; // another source port
        assert_ne!(a.flow_hash, inner_header(&other).unwrap().flow_hash);
        assert_eq!(inner_header(&[0x45, 0, 0]), None);
        assert_eq!(inner_header(&[0x00; 40]), None);
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_packets_never_panic(mut bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..120)) {
            let _ = inner_header(&bytes);
            let _ = clamp_tcp_mss(&mut bytes, 1379);
            let _ = clear_df(&mut bytes);
            let mut out = [0u8; 64];
            let _ = icmp_too_big(&bytes, Ipv4Addr::LOCALHOST, 1400, &mut out);
        }
    }
}
