//! One IPsec tunnel: the keying (IKE, or manual keys), its ESP child SAs and
//! the datagrams that carry them.
//!
//! A [`Tunnel`] is a sans-IO object like every other in this crate. Its
//! methods fall in four groups:
//! - getters: [`state`](Tunnel::state), [`metrics`](Tunnel::metrics),
//!   [`headroom`](Tunnel::headroom), ...
//! - inputs (`handle_*`): a received UDP datagram, a timeout;
//! - commands: [`connect`](Tunnel::connect), [`close`](Tunnel::close), and
//!   [`send_inner`](Tunnel::send_inner), which seals a packet for the peer at once;
//! - outputs (`poll_*`): control datagrams to send, events, the next deadline.
//!
//! After any input or command, drain transmits, then events, then read the
//! timeout. The data path never allocates: [`send_inner`](Tunnel::send_inner)
//! seals in the caller's buffer and [`handle_datagram`](Tunnel::handle_datagram)
//! opens in it.

mod child;

use core::ops::Range;
use std::collections::VecDeque;
use std::net::SocketAddr;

use crate::config::Prefix;
use crate::entropy::Entropy;
use crate::esp::nat_t::{self, NatTDatagram};
use crate::esp::{EncryptionAlgorithm, EspError, EspEvent, EspKeys, IntegrityAlgorithm};
use crate::time::Timestamp;

pub use child::{ChildSa, ChildSaMetrics};

/// UDP port of IKE and of ESP-in-UDP (RFC 3948).
pub const NAT_T_PORT: u16 = 4500;

/// How a tunnel gets its keys.
#[derive(Debug)]
pub enum Keying {
    /// Static SAs configured by hand on both ends, like `ip xfrm state add`:
    /// no IKE, no rekeying. For labs, tests and emergencies.
    Manual(ManualKeying),
}

/// The two static SAs of a manually keyed tunnel. Key bytes are wiped on drop.
pub struct ManualKeying {
    pub outbound: ManualSa,
    pub inbound: ManualSa,
}

impl core::fmt::Debug for ManualKeying {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("ManualKeying")
            .field("outbound_spi", &format_args!("{:#010x}", self.outbound.spi))
            .field("inbound_spi", &format_args!("{:#010x}", self.inbound.spi))
            .finish_non_exhaustive()
    }
}

/// One direction of a manually keyed tunnel.
pub struct ManualSa {
    pub spi: u32,
    pub encryption: EncryptionAlgorithm,
    pub integrity: Option<IntegrityAlgorithm>,
    /// AEAD key followed by its salt, or the CBC key.
    pub encryption_key: zeroize::Zeroizing<Vec<u8>>,
    pub integrity_key: zeroize::Zeroizing<Vec<u8>>,
    pub esn: bool,
}

/// Everything a tunnel needs to know.
#[derive(Debug)]
pub struct TunnelSettings {
    /// Our outside address; ESP-in-UDP uses port 4500 on it.
    pub local: SocketAddr,
    /// The peer's outside address.
    pub remote: SocketAddr,
    pub keying: Keying,
    /// Inner traffic this tunnel carries from us (0.0.0.0/0 as AWS uses).
    pub local_traffic: Vec<Prefix>,
    /// Inner traffic this tunnel carries from the peer: decrypted packets
    /// whose source lies outside are dropped.
    pub remote_traffic: Vec<Prefix>,
    /// Anti-replay window of inbound child SAs.
    pub replay_window: u32,
}

/// Where a tunnel stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TunnelState {
    /// Not connected; nothing is negotiated.
    Down,
    /// Negotiating keys.
    Connecting,
    /// Child SAs installed: traffic flows.
    Up,
}

/// Why a tunnel went down, named so that an operator can act on it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DownReason {
    /// [`Tunnel::close`] was called.
    Closed,
    /// The child SA reached its hard lifetime without being replaced.
    SaExpired,
}

/// Something the tunnel's owner may want to know or act on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TunnelEvent {
    StateChanged {
        from: TunnelState,
        to: TunnelState,
    },
    /// A child SA pair now carries traffic.
    ChildSaInstalled {
        inbound_spi: u32,
        outbound_spi: u32,
    },
    /// An ESP SA needs attention (soft lifetime: rekey; hard: expired).
    Esp(EspEvent),
    Down {
        reason: DownReason,
    },
}

/// A datagram to send, written at the start of the caller's buffer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Transmit {
    /// Send from this local address and port...
    pub local: SocketAddr,
    /// ...to this remote address and port, over UDP.
    pub remote: SocketAddr,
    /// Bytes of UDP payload at the start of the buffer.
    pub len: usize,
}

/// What a received datagram turned out to be.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Received {
    /// A decrypted inner IP packet, at this range of the caller's buffer.
    Inner { range: Range<usize> },
    /// Consumed by the control plane (IKE, NAT keepalive, TFC dummy packet).
    Control,
    /// Dropped; the reason is counted in the metrics.
    Dropped(DropReason),
}

/// Why a datagram or inner packet was dropped.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DropReason {
    /// Not from our peer's address.
    UnknownPeer,
    /// An ESP SPI we do not have.
    UnknownSpi,
    /// Rejected by the SA (replay, ICV, malformed, expired).
    Esp(EspError),
    /// Decrypted, but from or to an address outside the negotiated traffic selectors.
    OutsideTrafficSelectors,
    /// No child SA is installed.
    NotConnected,
    /// Not ESP, not IKE, not a keepalive.
    Garbage,
}

/// Errors from commands.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TunnelError {
    #[error("tunnel is not up")]
    NotConnected,
    #[error(transparent)]
    Esp(#[from] EspError),
}

/// Counters of one tunnel, mirroring CloudWatch's and the AWS tunnel log's fields.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TunnelMetrics {
    /// Inner bytes received after decryption (TunnelDataIn).
    pub data_in_bytes: u64,
    /// Inner bytes sent before encryption (TunnelDataOut).
    pub data_out_bytes: u64,
    pub packets_in: u64,
    pub packets_out: u64,
    pub drops_unknown_peer: u64,
    pub drops_unknown_spi: u64,
    pub drops_replay: u64,
    pub drops_icv: u64,
    pub drops_malformed: u64,
    pub drops_traffic_selectors: u64,
    pub drops_not_connected: u64,
    pub nat_keepalives_in: u64,
    pub last_state_change: Option<Timestamp>,
}

/// One tunnel to one peer.
pub struct Tunnel {
    settings: TunnelSettings,
    state: TunnelState,
    child: Option<ChildSa>,
    events: VecDeque<TunnelEvent>,
    metrics: TunnelMetrics,
}

impl Tunnel {
    pub fn new(settings: TunnelSettings, now: Timestamp) -> Result<Self, TunnelError> {
        let mut tunnel = Tunnel {
            settings,
            state: TunnelState::Down,
            child: None,
            events: VecDeque::new(),
            metrics: TunnelMetrics::default(),
        };
        tunnel.metrics.last_state_change = Some(now);
        Ok(tunnel)
    }

    pub fn state(&self) -> TunnelState {
        self.state
    }

    pub fn metrics(&self) -> &TunnelMetrics {
        &self.metrics
    }

    pub fn settings(&self) -> &TunnelSettings {
        &self.settings
    }

    /// The installed child SA, if any.
    pub fn child_sa(&self) -> Option<&ChildSa> {
        self.child.as_ref()
    }

    /// Bytes [`send_inner`](Self::send_inner) needs before the inner packet.
    pub fn headroom(&self) -> usize {
        self.child
            .as_ref()
            .map_or(ChildSa::MAX_HEADROOM, ChildSa::headroom)
    }

    /// Bytes that may follow the inner packet once sealed, at most.
    pub fn tailroom(&self) -> usize {
        self.child
            .as_ref()
            .map_or(ChildSa::MAX_TAILROOM, ChildSa::tailroom)
    }

    /// Brings the tunnel up: starts negotiating, or installs manual SAs.
    pub fn connect(
        &mut self,
        now: Timestamp,
        entropy: &mut dyn Entropy,
    ) -> Result<(), TunnelError> {
        if self.state != TunnelState::Down {
            return Ok(());
        }
        match &self.settings.keying {
            Keying::Manual(manual) => {
                let child = ChildSa::new(
                    &manual.outbound,
                    &manual.inbound,
                    self.settings.replay_window,
                    self.settings.local_traffic.clone(),
                    self.settings.remote_traffic.clone(),
                    now,
                    entropy,
                )?;
                self.events.push_back(TunnelEvent::ChildSaInstalled {
                    inbound_spi: child.inbound_spi(),
                    outbound_spi: child.outbound_spi(),
                });
                self.child = Some(child);
                self.set_state(now, TunnelState::Up);
            }
        }
        Ok(())
    }

    /// Takes the tunnel down.
    pub fn close(&mut self, now: Timestamp) {
        if self.state == TunnelState::Down {
            return;
        }
        self.child = None;
        self.set_state(now, TunnelState::Down);
        self.events.push_back(TunnelEvent::Down {
            reason: DownReason::Closed,
        });
    }

    /// Seals the inner packet at `buf[headroom()..][..inner_len]` for the
    /// peer; the datagram's UDP payload is then at `buf[..transmit.len]`.
    pub fn send_inner(
        &mut self,
        now: Timestamp,
        buf: &mut [u8],
        inner_len: usize,
    ) -> Result<Transmit, TunnelError> {
        let Some(child) = self.child.as_mut() else {
            self.metrics.drops_not_connected += 1;
            return Err(TunnelError::NotConnected);
        };
        let len = child.seal(now, buf, inner_len)?;
        self.metrics.packets_out += 1;
        self.metrics.data_out_bytes += inner_len as u64;
        self.drain_esp_events();
        Ok(Transmit {
            local: self.nat_t_local(),
            remote: self.nat_t_remote(),
            len,
        })
    }

    /// Handles a UDP datagram received on `local` from `remote`; `buf` holds
    /// its payload and is decrypted in place.
    pub fn handle_datagram(
        &mut self,
        now: Timestamp,
        local: SocketAddr,
        remote: SocketAddr,
        buf: &mut [u8],
    ) -> Received {
        if remote.ip() != self.settings.remote.ip() {
            self.metrics.drops_unknown_peer += 1;
            return Received::Dropped(DropReason::UnknownPeer);
        }
        let esp_len = if local.port() == NAT_T_PORT {
            match nat_t::classify(buf) {
                NatTDatagram::Esp(esp) => esp.len(),
                NatTDatagram::Keepalive => {
                    self.metrics.nat_keepalives_in += 1;
                    return Received::Control;
                }
                // IKE arrives once the tunnel negotiates its keys.
                NatTDatagram::Ike(_) | NatTDatagram::Invalid => {
                    return Received::Dropped(DropReason::Garbage)
                }
            }
        } else {
            return Received::Dropped(DropReason::Garbage);
        };
        let Some(child) = self.child.as_mut() else {
            self.metrics.drops_not_connected += 1;
            return Received::Dropped(DropReason::NotConnected);
        };
        let received = child.open(now, &mut buf[..esp_len]);
        match &received {
            Received::Inner { range } => {
                self.metrics.packets_in += 1;
                self.metrics.data_in_bytes += range.len() as u64;
            }
            Received::Dropped(reason) => self.count_drop(*reason),
            Received::Control => {}
        }
        self.drain_esp_events();
        received
    }

    /// Control datagrams to send (none for manual keying).
    pub fn poll_transmit(&mut self, _buf: &mut [u8]) -> Option<Transmit> {
        None
    }

    pub fn poll_event(&mut self) -> Option<TunnelEvent> {
        self.events.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Timestamp> {
        self.child.as_ref().and_then(ChildSa::poll_timeout)
    }

    /// Fires what is due. Spurious calls are harmless.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        if let Some(child) = self.child.as_mut() {
            child.handle_timeout(now);
        }
        self.drain_esp_events();
        if self.child.as_ref().is_some_and(ChildSa::is_expired) {
            self.child = None;
            self.set_state(now, TunnelState::Down);
            self.events.push_back(TunnelEvent::Down {
                reason: DownReason::SaExpired,
            });
        }
    }

    fn drain_esp_events(&mut self) {
        if let Some(child) = self.child.as_mut() {
            while let Some(event) = child.poll_event() {
                self.events.push_back(TunnelEvent::Esp(event));
            }
        }
    }

    fn count_drop(&mut self, reason: DropReason) {
        let m = &mut self.metrics;
        match reason {
            DropReason::UnknownPeer => m.drops_unknown_peer += 1,
            DropReason::UnknownSpi => m.drops_unknown_spi += 1,
            DropReason::Esp(EspError::Replay { .. }) => m.drops_replay += 1,
            DropReason::Esp(EspError::Authentication) => m.drops_icv += 1,
            DropReason::Esp(_) | DropReason::Garbage => m.drops_malformed += 1,
            DropReason::OutsideTrafficSelectors => m.drops_traffic_selectors += 1,
            DropReason::NotConnected => m.drops_not_connected += 1,
        }
    }

    fn set_state(&mut self, now: Timestamp, to: TunnelState) {
        let from = self.state;
        if from != to {
            self.state = to;
            self.metrics.last_state_change = Some(now);
            self.events
                .push_back(TunnelEvent::StateChanged { from, to });
        }
    }

    fn nat_t_local(&self) -> SocketAddr {
        SocketAddr::new(self.settings.local.ip(), NAT_T_PORT)
    }

    fn nat_t_remote(&self) -> SocketAddr {
        SocketAddr::new(self.settings.remote.ip(), NAT_T_PORT)
    }
}

/// Keys for one ESP SA, borrowed from a [`ManualSa`].
pub(crate) fn manual_keys(sa: &ManualSa) -> EspKeys<'_> {
    EspKeys {
        encryption: &sa.encryption_key,
        integrity: &sa.integrity_key,
    }
}

#[cfg(test)]
mod tests;
