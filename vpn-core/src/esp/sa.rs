//! The ESP security association: configuration, per-packet processing,
//! lifetimes and counters.

use core::ops::Range;
use core::time::Duration;
use std::collections::VecDeque;

use super::nat_t::{self, NatTDatagram, UDP_HEADER_LEN};
use super::replay::{ReplayWindow, MAX_REPLAY_WINDOW, MIN_REPLAY_WINDOW};
use super::transform::{SeqForIcv, Transform, ESP_HEADER_LEN};
use super::{EncryptionAlgorithm, EspError, IntegrityAlgorithm};
use crate::entropy::Entropy;
use crate::time::Timestamp;

/// IP protocol numbers of the inner packet (ESP next header field).
const NEXT_HEADER_IPV4: u8 = 4;
const NEXT_HEADER_IPV6: u8 = 41;
/// RFC 4303 §2.6: a dummy packet for traffic flow confidentiality.
const NEXT_HEADER_NO_NEXT: u8 = 59;

/// How encapsulated packets leave and arrive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Framing {
    /// Plain ESP, starting at the SPI: IP protocol 50, or the payload of a
    /// UDP socket on port 4500.
    #[default]
    Esp,
    /// ESP-in-UDP (RFC 3948) with the UDP header included, for raw sockets
    /// and captures. The checksum is zero (RFC 3948 §2.1).
    UdpEncap {
        source_port: u16,
        destination_port: u16,
    },
}

/// Limits on an SA's use; `None` means unlimited.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    /// Inner bytes, both directions together.
    pub bytes: Option<u64>,
    /// Packets, both directions together.
    pub packets: Option<u64>,
    /// Time since the SA was created.
    pub time: Option<Duration>,
}

/// Soft limits ask for a rekey; hard limits end the SA.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Lifetimes {
    pub soft: Limits,
    pub hard: Limits,
}

/// Which limit was reached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LifetimeLimit {
    Bytes,
    Packets,
    Time,
}

/// Everything about an SA except its keys.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EspSaConfig {
    pub spi: u32,
    pub encryption: EncryptionAlgorithm,
    /// Required for CBC, forbidden for AEAD algorithms.
    pub integrity: Option<IntegrityAlgorithm>,
    /// 64-bit extended sequence numbers (RFC 4303 §2.2.1).
    pub esn: bool,
    /// Anti-replay window in packets (32 to 65536; AWS uses 1024).
    pub replay_window: u32,
    pub framing: Framing,
    /// Traffic flow confidentiality: pad every inner packet to at least this
    /// many bytes (RFC 4303 §2.7). The receiver strips it using the inner IP length.
    pub tfc_pad_to: Option<u16>,
    /// Pad AEAD payloads to 16 bytes instead of the 4 that RFC 4303 requires.
    /// AES-GCM implementations (ring's among them) take a slower path for a
    /// trailing partial block: a 64-byte packet seals and opens about 25 %
    /// faster this way, for at most 12 extra bytes on the wire. Receiving
    /// accepts either alignment.
    pub aead_pad_to_16: bool,
    pub lifetimes: Lifetimes,
}

impl EspSaConfig {
    /// A tunnel-mode SA with AWS's defaults: no ESN, a 1024-packet replay
    /// window, plain ESP framing, no TFC padding, no lifetimes.
    pub fn new(spi: u32, encryption: EncryptionAlgorithm) -> Self {
        EspSaConfig {
            spi,
            encryption,
            integrity: None,
            esn: false,
            replay_window: 1024,
            framing: Framing::Esp,
            tfc_pad_to: None,
            aead_pad_to_16: true,
            lifetimes: Lifetimes::default(),
        }
    }
}

/// Key material, borrowed only while the SA is built (the SA keeps its own
/// key schedules). The AEAD key is followed by its 4-byte salt, as in KEYMAT
/// and Linux xfrm. Debug output never shows key bytes.
#[derive(Clone, Copy)]
pub struct EspKeys<'a> {
    pub encryption: &'a [u8],
    pub integrity: &'a [u8],
}

impl core::fmt::Debug for EspKeys<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("EspKeys { .. }")
    }
}

/// Something the SA's owner must act on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EspEvent {
    /// A soft limit was reached: negotiate a replacement SA.
    SoftLifetimeReached { spi: u32, limit: LifetimeLimit },
    /// A hard limit was reached: the SA carries no more traffic.
    HardLifetimeReached { spi: u32, limit: LifetimeLimit },
    /// The outbound sequence number cannot advance without wrapping.
    SequenceExhausted { spi: u32 },
}

/// Per-SA counters. Byte counts are inner (plaintext) bytes, as CloudWatch's
/// TunnelDataIn/TunnelDataOut.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EspCounters {
    pub packets_out: u64,
    pub bytes_out: u64,
    pub packets_in: u64,
    pub bytes_in: u64,
    pub icv_failures: u64,
    pub replay_duplicates: u64,
    pub replay_too_old: u64,
    /// Undecodable packets: bad length, padding, next header or inner header.
    pub malformed: u64,
    /// TFC dummy packets received (next header 59).
    pub dummy_packets: u64,
}

impl EspCounters {
    /// All packets dropped by the anti-replay check.
    pub fn replay_drops(&self) -> u64 {
        self.replay_duplicates + self.replay_too_old
    }
}

/// The inner IP version of a decapsulated packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InnerProtocol {
    Ipv4,
    Ipv6,
    /// A TFC dummy packet (next header 59): authenticated, carries nothing.
    Dummy,
}

/// Where the decrypted inner packet lies in the caller's buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct InnerPacket {
    pub offset: usize,
    pub len: usize,
    pub protocol: InnerProtocol,
    /// The packet's full (ESN-reconstructed) sequence number.
    pub sequence: u64,
}

impl InnerPacket {
    pub fn range(&self) -> Range<usize> {
        self.offset..self.offset + self.len
    }
}

/// One ESP security association in tunnel mode.
///
/// Methods fall in the usual sans-IO groups: getters (`spi`, `counters`,
/// `headroom`, ...), packet processing (`encapsulate*`, `decapsulate*`), time
/// (`poll_timeout`, `handle_timeout`) and `poll_event`. An SA is used in one
/// direction in practice; it keeps state for both so that one object can
/// loop traffic back in tests and bindings.
pub struct EspSa {
    config: EspSaConfig,
    pub(super) transform: Transform,
    /// Last sequence number sent (0: none yet).
    pub(super) seq_out: u64,
    pub(super) replay: ReplayWindow,
    counters: EspCounters,
    created: Timestamp,
    soft_reached: bool,
    hard_reached: bool,
    exhausted: bool,
    events: VecDeque<EspEvent>,
    /// Sizes derived from the config, cached because every packet needs them.
    sizes: Sizes,
    /// The nearest pending limits, so a packet costs one comparison each
    /// (`u64::MAX` / [`Timestamp::NEVER`] when nothing is pending).
    armed_bytes: u64,
    armed_packets: u64,
    armed_time: Timestamp,
}

#[derive(Clone, Copy, Debug)]
struct Sizes {
    framing: usize,
    headroom: usize,
    icv: usize,
    /// Alignment of sent payload + trailer, minus one (a power of two).
    pad_mask: usize,
    /// Alignment a received ciphertext must have, minus one.
    align_mask: usize,
    tfc_pad_to: usize,
}

impl core::fmt::Debug for EspSa {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("EspSa")
            .field("spi", &format_args!("{:#010x}", self.config.spi))
            .field("encryption", &self.config.encryption)
            .field("integrity", &self.config.integrity)
            .field("seq_out", &self.seq_out)
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

impl EspSa {
    /// Builds an SA. `entropy` seeds the CBC IV generator; `now` starts the
    /// time lifetimes.
    pub fn new(
        config: &EspSaConfig,
        keys: EspKeys<'_>,
        now: Timestamp,
        entropy: &mut dyn Entropy,
    ) -> Result<Self, EspError> {
        if !(MIN_REPLAY_WINDOW..=MAX_REPLAY_WINDOW).contains(&config.replay_window) {
            return Err(EspError::InvalidConfig(
                "replay window must be between 32 and 65536 packets",
            ));
        }
        if config.spi < 256 {
            // RFC 4303 §2.1: SPIs 1-255 are reserved, 0 is never sent.
            return Err(EspError::InvalidConfig("SPI values 0 to 255 are reserved"));
        }
        let mut iv_seed = zeroize::Zeroizing::new([0u8; 16]);
        entropy.fill(&mut iv_seed[..]);
        let transform = Transform::new(
            config.encryption,
            config.integrity,
            keys.encryption,
            keys.integrity,
            &iv_seed,
        )?;
        let framing = match config.framing {
            Framing::Esp => 0,
            Framing::UdpEncap { .. } => UDP_HEADER_LEN,
        };
        let sizes = Sizes {
            framing,
            headroom: framing + ESP_HEADER_LEN + config.encryption.iv_len(),
            icv: transform.icv_len(),
            pad_mask: if config.aead_pad_to_16 {
                15
            } else {
                config.encryption.block_len() - 1
            },
            align_mask: config.encryption.block_len() - 1,
            tfc_pad_to: usize::from(config.tfc_pad_to.unwrap_or(0)),
        };
        let mut sa = EspSa {
            config: config.clone(),
            transform,
            seq_out: 0,
            replay: ReplayWindow::new(config.replay_window),
            counters: EspCounters::default(),
            created: now,
            soft_reached: false,
            hard_reached: false,
            exhausted: false,
            // Bounded: at most one soft, one hard and one exhaustion event.
            events: VecDeque::with_capacity(4),
            sizes,
            armed_bytes: u64::MAX,
            armed_packets: u64::MAX,
            armed_time: Timestamp::NEVER,
        };
        sa.arm_limits();
        Ok(sa)
    }

    pub fn spi(&self) -> u32 {
        self.config.spi
    }

    pub fn config(&self) -> &EspSaConfig {
        &self.config
    }

    pub fn counters(&self) -> &EspCounters {
        &self.counters
    }

    /// Last sequence number sent.
    pub fn last_sequence_out(&self) -> u64 {
        self.seq_out
    }

    /// Highest authenticated sequence number received.
    pub fn replay_window_size(&self) -> u32 {
        self.replay.size()
    }

    /// Whether a hard limit ended the SA.
    pub fn is_expired(&self) -> bool {
        self.hard_reached
    }

    /// Bytes that must precede the inner packet in the buffer given to
    /// [`encapsulate_in_place`](Self::encapsulate_in_place).
    pub fn headroom(&self) -> usize {
        self.sizes.headroom
    }

    /// Bytes that may follow the inner packet, at most (padding, trailer, ICV,
    /// TFC padding).
    pub fn tailroom(&self) -> usize {
        self.sizes.tfc_pad_to + self.sizes.pad_mask + 2 + self.sizes.icv
    }

    /// Exact length of the encapsulated packet for an inner packet of
    /// `inner_len` bytes. Saturates at `usize::MAX` for absurd lengths, which
    /// no buffer can hold.
    pub fn encapsulated_len(&self, inner_len: usize) -> usize {
        let payload = inner_len.max(self.sizes.tfc_pad_to);
        let mask = self.sizes.pad_mask;
        // Padding so that payload + pad + 2 trailer bytes fill whole blocks.
        let pad = (mask + 1 - ((payload + 2) & mask)) & mask;
        self.sizes
            .headroom
            .saturating_add(payload)
            .saturating_add(pad + 2 + self.sizes.icv)
    }

    /// Encapsulates the inner packet at `buf[headroom()..][..inner_len]` in
    /// place. The encapsulated packet starts at `buf[0]`; returns its length.
    pub fn encapsulate_in_place(
        &mut self,
        now: Timestamp,
        buf: &mut [u8],
        inner_len: usize,
    ) -> Result<usize, EspError> {
        self.check_time(now);
        if self.hard_reached {
            return Err(EspError::Expired);
        }
        let headroom = self.sizes.headroom;
        let total = self.encapsulated_len(inner_len);
        if buf.len() < total {
            return Err(EspError::BufferTooSmall { needed: total });
        }
        let next_header = match buf[headroom..headroom + inner_len].first().map(|b| b >> 4) {
            Some(4) => NEXT_HEADER_IPV4,
            Some(6) => NEXT_HEADER_IPV6,
            _ => return Err(EspError::UnsupportedInnerPacket),
        };
        let seq = self.next_sequence()?;

        // Trailer: TFC padding, monotonic padding 1, 2, 3, ..., pad length, next header.
        let framing = self.sizes.framing;
        let payload_end = headroom + inner_len.max(self.sizes.tfc_pad_to);
        let trailer_end = total - self.sizes.icv;
        let pad_len = trailer_end - 2 - payload_end;
        if payload_end > headroom + inner_len {
            buf[headroom + inner_len..payload_end].fill(0);
        }
        for (i, b) in buf[payload_end..payload_end + pad_len]
            .iter_mut()
            .enumerate()
        {
            *b = (i + 1) as u8;
        }
        buf[trailer_end - 2] = pad_len as u8;
        buf[trailer_end - 1] = next_header;

        let packet = &mut buf[framing..total];
        packet[..4].copy_from_slice(&self.config.spi.to_be_bytes());
        packet[4..8].copy_from_slice(&(seq as u32).to_be_bytes());
        self.transform.seal(
            packet,
            SeqForIcv {
                full: seq,
                esn: self.config.esn,
            },
        )?;
        if let Framing::UdpEncap {
            source_port,
            destination_port,
        } = self.config.framing
        {
            let udp_len =
                u16::try_from(total).map_err(|_| EspError::Malformed("datagram over 64 KiB"))?;
            buf[0..2].copy_from_slice(&source_port.to_be_bytes());
            buf[2..4].copy_from_slice(&destination_port.to_be_bytes());
            buf[4..6].copy_from_slice(&udp_len.to_be_bytes());
            buf[6..8].fill(0);
        }

        self.counters.packets_out += 1;
        self.counters.bytes_out += inner_len as u64;
        self.check_volume();
        Ok(total)
    }

    /// Copies `inner` into `out` behind the headroom and encapsulates it
    /// there: for callers whose packet is not already in a roomy buffer.
    pub fn encapsulate(
        &mut self,
        now: Timestamp,
        inner: &[u8],
        out: &mut [u8],
    ) -> Result<usize, EspError> {
        let needed = self.encapsulated_len(inner.len());
        if out.len() < needed {
            return Err(EspError::BufferTooSmall { needed });
        }
        let headroom = self.headroom();
        out[headroom..headroom + inner.len()].copy_from_slice(inner);
        self.encapsulate_in_place(now, out, inner.len())
    }

    /// Verifies and decrypts the packet that fills `buf` (framed as
    /// configured) in place, and says where the inner packet lies in `buf`.
    /// Anti-replay is checked before decryption and advanced only after the
    /// ICV verified. After an error no plaintext is in `buf`, but its bytes
    /// past the IV are unspecified (ring wipes a packet that fails its ICV).
    pub fn decapsulate_in_place(
        &mut self,
        now: Timestamp,
        buf: &mut [u8],
    ) -> Result<InnerPacket, EspError> {
        self.check_time(now);
        if self.hard_reached {
            return Err(EspError::Expired);
        }
        let result = self.open(buf);
        match &result {
            Ok(inner) => {
                if inner.protocol == InnerProtocol::Dummy {
                    self.counters.dummy_packets += 1;
                } else {
                    self.counters.packets_in += 1;
                    self.counters.bytes_in += inner.len as u64;
                }
                self.check_volume();
            }
            Err(EspError::Authentication) => self.counters.icv_failures += 1,
            Err(EspError::Replay { kind, .. }) => match kind {
                super::ReplayKind::Duplicate => self.counters.replay_duplicates += 1,
                super::ReplayKind::TooOld => self.counters.replay_too_old += 1,
            },
            Err(_) => self.counters.malformed += 1,
        }
        result
    }

    /// Copies `packet` into `out` and decapsulates it there; returns where
    /// the inner packet lies in `out`.
    pub fn decapsulate(
        &mut self,
        now: Timestamp,
        packet: &[u8],
        out: &mut [u8],
    ) -> Result<InnerPacket, EspError> {
        let buf = out
            .get_mut(..packet.len())
            .ok_or(EspError::BufferTooSmall {
                needed: packet.len(),
            })?;
        buf.copy_from_slice(packet);
        self.decapsulate_in_place(now, buf)
    }

    fn open(&mut self, buf: &mut [u8]) -> Result<InnerPacket, EspError> {
        let framing = self.sizes.framing;
        if framing > 0 {
            let payload = buf
                .get(UDP_HEADER_LEN..)
                .ok_or(EspError::Malformed("shorter than a UDP header"))?;
            let udp_len = usize::from(u16::from_be_bytes([buf[4], buf[5]]));
            if udp_len != buf.len() {
                return Err(EspError::Malformed(
                    "UDP length does not match the datagram",
                ));
            }
            match nat_t::classify(payload) {
                NatTDatagram::Esp(_) => {}
                other => return Err(EspError::NotEsp(other.kind())),
            }
        }
        let packet = &mut buf[framing..];
        let header = self.sizes.headroom - framing;
        let align_mask = self.sizes.align_mask;
        if packet.len() < header + align_mask + 1 + self.sizes.icv {
            return Err(EspError::Malformed("too short"));
        }
        // RFC 4303 §2.4: the ciphertext ends on a 4-byte (or cipher block) boundary.
        let ciphertext_len = packet.len() - header - self.sizes.icv;
        if ciphertext_len & align_mask != 0 {
            return Err(EspError::Malformed(
                "payload not aligned to the cipher block",
            ));
        }
        let spi = u32::from_be_bytes([packet[0], packet[1], packet[2], packet[3]]);
        if spi != self.config.spi {
            return Err(EspError::WrongSpi {
                expected: self.config.spi,
                got: spi,
            });
        }
        let seq_low = u32::from_be_bytes([packet[4], packet[5], packet[6], packet[7]]);
        let seq = self
            .replay
            .infer(seq_low, self.config.esn)
            .ok_or(EspError::Replay {
                seq: u64::from(seq_low),
                kind: super::ReplayKind::TooOld,
            })?;
        self.replay
            .check(seq)
            .map_err(|kind| EspError::Replay { seq, kind })?;
        let plain = self.transform.open(
            packet,
            SeqForIcv {
                full: seq,
                esn: self.config.esn,
            },
        )?;
        // Authentic: it counts for the window even if its content is bad.
        self.replay.mark(seq);

        let trailer = &packet[plain.clone()];
        let next_header = trailer[trailer.len() - 1];
        let pad_len = usize::from(trailer[trailer.len() - 2]);
        let payload_len = trailer
            .len()
            .checked_sub(pad_len + 2)
            .ok_or(EspError::InvalidPadding)?;
        let padding = &trailer[payload_len..payload_len + pad_len];
        if padding.iter().enumerate().any(|(i, &b)| b != (i + 1) as u8) {
            return Err(EspError::InvalidPadding);
        }
        let payload = &trailer[..payload_len];
        let offset = framing + plain.start;
        let (protocol, len) = match next_header {
            NEXT_HEADER_NO_NEXT => (InnerProtocol::Dummy, 0),
            NEXT_HEADER_IPV4 => (InnerProtocol::Ipv4, inner_ipv4_len(payload)?),
            NEXT_HEADER_IPV6 => (InnerProtocol::Ipv6, inner_ipv6_len(payload)?),
            _ => return Err(EspError::Malformed("next header is not IPv4 or IPv6")),
        };
        Ok(InnerPacket {
            offset,
            len,
            protocol,
            sequence: seq,
        })
    }

    fn next_sequence(&mut self) -> Result<u64, EspError> {
        let max = if self.config.esn {
            u64::MAX
        } else {
            u64::from(u32::MAX)
        };
        if self.seq_out >= max {
            if !self.exhausted {
                self.exhausted = true;
                self.events.push_back(EspEvent::SequenceExhausted {
                    spi: self.config.spi,
                });
            }
            return Err(EspError::SequenceExhausted);
        }
        self.seq_out += 1;
        Ok(self.seq_out)
    }

    /// Fires byte and packet limits after traffic moved.
    fn check_volume(&mut self) {
        let c = &self.counters;
        let bytes = c.bytes_in + c.bytes_out;
        let packets = c.packets_in + c.packets_out + c.dummy_packets;
        if bytes < self.armed_bytes && packets < self.armed_packets {
            return;
        }
        let over = |limits: &Limits| {
            if limits.bytes.is_some_and(|b| bytes >= b) {
                Some(LifetimeLimit::Bytes)
            } else if limits.packets.is_some_and(|p| packets >= p) {
                Some(LifetimeLimit::Packets)
            } else {
                None
            }
        };
        let soft = over(&self.config.lifetimes.soft);
        let hard = over(&self.config.lifetimes.hard);
        self.reach(soft, hard);
    }

    fn check_time(&mut self, now: Timestamp) {
        if now < self.armed_time {
            return;
        }
        let age = now.saturating_since(self.created);
        let over = |limits: &Limits| {
            limits
                .time
                .filter(|&t| age >= t)
                .map(|_| LifetimeLimit::Time)
        };
        let soft = over(&self.config.lifetimes.soft);
        let hard = over(&self.config.lifetimes.hard);
        self.reach(soft, hard);
    }

    fn reach(&mut self, soft: Option<LifetimeLimit>, hard: Option<LifetimeLimit>) {
        let spi = self.config.spi;
        if let Some(limit) = soft.filter(|_| !self.soft_reached && !self.hard_reached) {
            self.soft_reached = true;
            self.events
                .push_back(EspEvent::SoftLifetimeReached { spi, limit });
        }
        if let Some(limit) = hard.filter(|_| !self.hard_reached) {
            self.hard_reached = true;
            self.events
                .push_back(EspEvent::HardLifetimeReached { spi, limit });
        }
        self.arm_limits();
    }

    /// The limits not yet reached: soft ones until soft or hard fired, hard
    /// ones until hard fired.
    fn pending_limits(&self) -> impl Iterator<Item = &Limits> {
        let lt = &self.config.lifetimes;
        let soft = (!self.soft_reached && !self.hard_reached).then_some(&lt.soft);
        let hard = (!self.hard_reached).then_some(&lt.hard);
        soft.into_iter().chain(hard)
    }

    fn arm_limits(&mut self) {
        let nearest = |f: fn(&Limits) -> Option<u64>| {
            self.pending_limits()
                .filter_map(f)
                .min()
                .unwrap_or(u64::MAX)
        };
        let (bytes, packets) = (nearest(|l| l.bytes), nearest(|l| l.packets));
        self.armed_bytes = bytes;
        self.armed_packets = packets;
        self.armed_time = self.poll_timeout().unwrap_or(Timestamp::NEVER);
    }

    /// The next instant at which a time lifetime fires, if any.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        self.pending_limits()
            .filter_map(|l| l.time)
            .map(|t| self.created + t)
            .min()
    }

    /// Fires time lifetimes that are due. Spurious calls are harmless.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        self.check_time(now);
    }

    /// The next event the owner must act on.
    pub fn poll_event(&mut self) -> Option<EspEvent> {
        self.events.pop_front()
    }
}

/// IPv4 total length, checked against what was decrypted. Anything after it
/// is TFC padding.
fn inner_ipv4_len(payload: &[u8]) -> Result<usize, EspError> {
    if payload.len() < 20 || payload[0] >> 4 != 4 {
        return Err(EspError::Malformed("inner packet is not IPv4"));
    }
    let len = usize::from(u16::from_be_bytes([payload[2], payload[3]]));
    if len < 20 || len > payload.len() {
        return Err(EspError::Malformed("inner IPv4 total length is wrong"));
    }
    Ok(len)
}

/// IPv6 header plus payload length; anything after it is TFC padding.
fn inner_ipv6_len(payload: &[u8]) -> Result<usize, EspError> {
    if payload.len() < 40 || payload[0] >> 4 != 6 {
        return Err(EspError::Malformed("inner packet is not IPv6"));
    }
    let len = 40 + usize::from(u16::from_be_bytes([payload[4], payload[5]]));
    if len > payload.len() {
        return Err(EspError::Malformed("inner IPv6 payload length is wrong"));
    }
    Ok(len)
}
