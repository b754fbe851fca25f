//! Two connections (two sites) joined by emulated links, one per tunnel and
//! direction, on a virtual clock.
//!
//! The driver moves every datagram a site emits over its tunnel's link to
//! the other site, advances time to the next thing that happens (a delivery
//! or a deadline of either connection), and keeps a timestamped event log.
//! Nothing depends on wall time or ambient randomness: the same seed and the
//! same calls give the same log, byte for byte.

use std::net::SocketAddr;

use super::{LinkConditions, Netem};
use crate::connection::{Connection, ConnectionEvent, SendError, SendOutcome};
use crate::route::TunnelIndex;
use crate::time::Timestamp;
use crate::tunnel::Received;

/// A datagram on the wire between the sites.
#[derive(Clone, Debug)]
struct Datagram {
    to_site: usize,
    /// Addresses as the receiver sees them.
    local: SocketAddr,
    remote: SocketAddr,
    bytes: Vec<u8>,
}

/// Two sites and the network between them.
pub struct TwoSites {
    now: Timestamp,
    sites: [Connection; 2],
    names: [String; 2],
    net: Netem<Datagram>,
    /// Per tunnel: the link index for each direction (`[a_to_b, b_to_a]`).
    links: Vec<[usize; 2]>,
    /// Inner packets each site delivered to its LAN.
    delivered: [Vec<Vec<u8>>; 2],
    log: Vec<String>,
    buf: Vec<u8>,
}

impl TwoSites {
    /// Joins `a` and `b` with one pair of links per tunnel, all with
    /// `conditions`; `seed` drives the links' randomness.
    pub fn new(
        names: [&str; 2],
        a: Connection,
        b: Connection,
        conditions: LinkConditions,
        seed: u64,
        now: Timestamp,
    ) -> Self {
        let mut net = Netem::new(seed);
        let links = (0..a.tunnel_count().min(b.tunnel_count()))
            .map(|_| [net.add_link(conditions), net.add_link(conditions)])
            .collect();
        TwoSites {
            now,
            sites: [a, b],
            names: names.map(str::to_string),
            net,
            links,
            delivered: [Vec::new(), Vec::new()],
            log: Vec::new(),
            buf: vec![0u8; 65536],
        }
    }

    pub fn now(&self) -> Timestamp {
        self.now
    }

    pub fn site(&self, site: usize) -> &Connection {
        &self.sites[site]
    }

    pub fn site_mut(&mut self, site: usize) -> &mut Connection {
        &mut self.sites[site]
    }

    /// The event log so far: one line per event, prefixed by time and site.
    pub fn log(&self) -> &[String] {
        &self.log
    }

    /// Adds a line to the log (scenario steps, for a readable timeline).
    pub fn note(&mut self, text: impl AsRef<str>) {
        self.log
            .push(format!("{} {:<4} {}", self.stamp(), "--", text.as_ref()));
    }

    /// Replaces a site by a fresh connection, as if its gateway restarted:
    /// all its SAs and sessions are forgotten. Returns the old one.
    pub fn restart_site(&mut self, site: usize, fresh: Connection) -> Connection {
        self.note(format!("{} restarts", self.names[site]));
        std::mem::replace(&mut self.sites[site], fresh)
    }

    /// Takes the inner packets `site` delivered so far.
    pub fn take_delivered(&mut self, site: usize) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.delivered[site])
    }

    /// Changes both directions of `tunnel`'s link (cut it, heal it, add loss).
    pub fn set_link(&mut self, tunnel: TunnelIndex, change: impl Fn(&mut LinkConditions)) {
        if let Some(pair) = self.links.get(tunnel).copied() {
            for link in pair {
                if let Some(c) = self.net.conditions_mut(link) {
                    change(c);
                }
            }
        }
    }

    /// Sends an inner packet from `site`'s LAN into its connection.
    pub fn send(&mut self, site: usize, inner: &[u8]) -> Result<SendOutcome, SendError> {
        let headroom = self.sites[site].headroom();
        let end = headroom + inner.len();
        if self.buf.len() < end + 256 {
            self.buf.resize(end + 256, 0);
        }
        self.buf[headroom..end].copy_from_slice(inner);
        let outcome = self.sites[site].send_packet(self.now, &mut self.buf, inner.len());
        if let Ok(SendOutcome::Sent { tunnel, transmit }) = outcome {
            let bytes = self.buf[..transmit.len].to_vec();
            self.put_on_wire(site, tunnel, transmit.local, transmit.remote, bytes);
        }
        self.flush();
        outcome
    }

    /// Advances to the next event (or to `limit`, whichever is first) and
    /// handles everything due then. Returns false once `limit` is reached.
    pub fn step(&mut self, limit: Timestamp) -> bool {
        // Whatever the sites queued since the last step (after `connect`,
        // say) goes on the wire first.
        self.flush();
        let next = [
            self.net.next_delivery(),
            self.sites[0].poll_timeout(),
            self.sites[1].poll_timeout(),
        ]
        .into_iter()
        .flatten()
        .min();
        let Some(next) = next.filter(|&t| t <= limit) else {
            self.now = self.now.max(limit);
            return false;
        };
        self.now = self.now.max(next);
        while let Some((_, datagram)) = self.net.poll(self.now) {
            self.deliver(datagram);
        }
        for site in 0..2 {
            if self.sites[site]
                .poll_timeout()
                .is_some_and(|t| t <= self.now)
            {
                self.sites[site].handle_timeout(self.now);
            }
        }
        self.flush();
        true
    }

    /// Runs until `until`.
    pub fn run_until(&mut self, until: Timestamp) {
        while self.step(until) {}
    }

    fn deliver(&mut self, datagram: Datagram) {
        let site = datagram.to_site;
        let mut bytes = datagram.bytes;
        let (_, received) =
            self.sites[site].handle_datagram(self.now, datagram.local, datagram.remote, &mut bytes);
        if let Received::Inner { range } = received {
            self.delivered[site].push(bytes[range].to_vec());
        }
    }

    fn put_on_wire(
        &mut self,
        from_site: usize,
        tunnel: TunnelIndex,
        local: SocketAddr,
        remote: SocketAddr,
        bytes: Vec<u8>,
    ) {
        let Some(pair) = self.links.get(tunnel) else {
            return;
        };
        let datagram = Datagram {
            to_site: 1 - from_site,
            local: remote,
            remote: local,
            bytes,
        };
        self.net.send(self.now, pair[from_site], datagram);
    }

    /// Sends what both sites queued and logs their events, until quiet.
    fn flush(&mut self) {
        loop {
            let mut moved = false;
            for site in 0..2 {
                while let Some((tunnel, transmit)) = self.sites[site].poll_transmit(&mut self.buf) {
                    let bytes = self.buf[..transmit.len].to_vec();
                    self.put_on_wire(site, tunnel, transmit.local, transmit.remote, bytes);
                    moved = true;
                }
                while let Some(event) = self.sites[site].poll_event() {
                    let line = format!(
                        "{} {:<4} {}",
                        self.stamp(),
                        self.names[site],
                        describe(&event)
                    );
                    self.log.push(line);
                    moved = true;
                }
            }
            if !moved {
                break;
            }
        }
    }

    fn stamp(&self) -> String {
        let ms = self.now.as_nanos() / 1_000_000;
        format!(
            "{:>3}:{:02}:{:02}.{:03}",
            ms / 3_600_000,
            ms / 60_000 % 60,
            ms / 1000 % 60,
            ms % 1000
        )
    }
}

/// A one-line, human-readable form of an event.
pub fn describe(event: &ConnectionEvent) -> String {
    use crate::connection::BgpEvent;
    use crate::tunnel::TunnelEvent;
    match event {
        ConnectionEvent::Tunnel { tunnel, event } => match event {
            TunnelEvent::StateChanged { from, to } => {
                format!("tunnel {} IPsec {:?} -> {:?}", tunnel + 1, from, to)
            }
            TunnelEvent::ChildSaInstalled {
                inbound_spi,
                outbound_spi,
            } => format!(
                "tunnel {} child SA installed (SPI in {inbound_spi:08x}, out {outbound_spi:08x})",
                tunnel + 1
            ),
            TunnelEvent::IkeSaEstablished { spi_i, spi_r } => {
                format!("tunnel {} IKE SA established (SPIs {spi_i:016x}/{spi_r:016x})", tunnel + 1)
            }
            TunnelEvent::IkeSaRekeyed { spi_i, spi_r, .. } => {
                format!("tunnel {} IKE SA rekeyed (SPIs {spi_i:016x}/{spi_r:016x})", tunnel + 1)
            }
            TunnelEvent::ChildSaRekeyed {
                old_inbound_spi,
                inbound_spi,
                outbound_spi,
            } => format!(
                "tunnel {} child SA rekeyed (SPI in {old_inbound_spi:08x} -> {inbound_spi:08x}, out {outbound_spi:08x})",
                tunnel + 1
            ),
            TunnelEvent::ChildSaDeleted { inbound_spi } => {
                format!("tunnel {} child SA {inbound_spi:08x} deleted", tunnel + 1)
            }
            TunnelEvent::NatDetected { local, remote } => format!(
                "tunnel {} NAT-T: {}",
                tunnel + 1,
                if *local || *remote {
                    // Forced encapsulation reports a NAT on both sides.
                    format!("ESP in UDP 4500 (local NAT {local}, remote NAT {remote})")
                } else {
                    "no NAT, plain ports".to_string()
                }
            ),
            TunnelEvent::Down { reason } => format!("tunnel {} IPsec down: {reason}", tunnel + 1),
            TunnelEvent::Esp(crate::esp::EspEvent::SoftLifetimeReached { spi, limit }) => format!(
                "tunnel {} ESP SA {spi:08x} reached its soft {limit:?} lifetime: rekey",
                tunnel + 1
            ),
            other => format!("tunnel {} {:?}", tunnel + 1, other),
        },
        ConnectionEvent::ActiveTunnelChanged { from, to } => format!(
            "active tunnel {} -> {}",
            from.map_or("none".into(), |t| (t + 1).to_string()),
            to.map_or("none".into(), |t| (t + 1).to_string())
        ),
        ConnectionEvent::Bgp(BgpEvent::Session { tunnel, event }) => {
            use crate::bgp::session::SessionEvent;
            let what = match event {
                SessionEvent::StateChanged { from, to } => format!("{from:?} -> {to:?}"),
                SessionEvent::Established { peer_id, hold_time } => {
                    format!("Established with {peer_id} (hold {hold_time} s)")
                }
                SessionEvent::Down { reason, .. } => format!("Down: {reason:?}"),
                SessionEvent::EndOfRib { .. } => "End-of-RIB received".to_string(),
                other => format!("{other:?}"),
            };
            format!("tunnel {} BGP {what}", tunnel + 1)
        }
        ConnectionEvent::Bgp(BgpEvent::RouteAdded { tunnel, prefix }) => {
            format!("tunnel {} route learned {prefix}", tunnel + 1)
        }
        ConnectionEvent::Bgp(BgpEvent::RouteRemoved { tunnel, prefix }) => {
            format!("tunnel {} route withdrawn {prefix}", tunnel + 1)
        }
        ConnectionEvent::Bgp(BgpEvent::OutboundCapReached {
            tunnel,
            cap,
            wanted,
        }) => {
            format!(
                "tunnel {} announcing {cap} of {wanted} prefixes",
                tunnel + 1
            )
        }
    }
}
