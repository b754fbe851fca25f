//! The VPN connection: two redundant tunnels, the routes over them and the
//! policy that fails traffic over from one to the other.
//!
//! A [`Connection`] is the object users hold. Like everything in this crate
//! it is sans-IO:
//! - getters: [`tunnel`](Connection::tunnel), [`active_tunnel`](Connection::active_tunnel),
//!   [`metrics`](Connection::metrics), [`routes`](Connection::routes);
//! - inputs: [`handle_datagram`](Connection::handle_datagram) (a UDP datagram
//!   from outside), [`send_packet`](Connection::send_packet) (an inner packet
//!   to route into a tunnel), [`handle_timeout`](Connection::handle_timeout);
//! - commands: [`connect`](Connection::connect), [`set_tunnel_admin_up`](Connection::set_tunnel_admin_up),
//!   [`rekey_tunnel`](Connection::rekey_tunnel), [`replace_config`](Connection::replace_config);
//! - outputs: [`poll_transmit`](Connection::poll_transmit), [`poll_event`](Connection::poll_event),
//!   [`poll_timeout`](Connection::poll_timeout).
//!
//! Tunnel health is read at every lookup, so when a tunnel goes down its
//! routes stop being used in the very call that noticed it; the events of
//! that call say so.

mod bgp;
mod inside;
mod metrics;
mod packet;
mod reconfigure;

pub use bgp::{BgpEvent, BgpSettings};
pub use metrics::TunnelReport;
pub use reconfigure::{ConfigChange, RekeyKind, ReplaceError};

use core::time::Duration;
use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};

use crate::config::{FailoverPolicy, Prefix};
use crate::entropy::Entropy;
use crate::route::{Route, RouteOrigin, RouteTable, TunnelIndex};
use crate::time::Timestamp;
use crate::tunnel::{
    Received, Transmit, Tunnel, TunnelError, TunnelEvent, TunnelMetrics, TunnelState,
};

/// How a connection treats inner packets and spreads them over its tunnels.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnectionPolicy {
    pub failover: FailoverPolicy,
    /// Static routes: every prefix is reachable through every tunnel.
    pub static_routes: Vec<Prefix>,
    /// Largest inner packet a tunnel carries (AWS: 1436).
    pub mtu: u16,
    /// MSS written into TCP SYNs entering the tunnels (AWS: 1379); 0 disables.
    pub tcp_mss_clamp: u16,
    /// Clear DF on IPv4 packets entering the tunnels.
    pub clear_df: bool,
    /// Fragment IPv4 packets larger than the MTU before encryption, as AWS
    /// recommends, rather than refusing them.
    pub fragment_before_encrypt: bool,
    /// Dynamic routing over the tunnels' inside addresses.
    pub bgp: Option<BgpSettings>,
}

impl Default for ConnectionPolicy {
    fn default() -> Self {
        ConnectionPolicy {
            failover: FailoverPolicy::default(),
            static_routes: Vec::new(),
            mtu: 1436,
            tcp_mss_clamp: 1379,
            clear_df: true,
            fragment_before_encrypt: true,
            bgp: None,
        }
    }
}

impl ConnectionPolicy {
    /// The routing, failover and packet policy of a connection configuration
    /// (its tunnels' keying is built separately). With BGP, the customer
    /// gateway opens the sessions and the VGW listens, as at AWS.
    pub fn from_config(config: &crate::config::ConnectionConfig) -> Self {
        let mut policy = ConnectionPolicy {
            failover: config.failover,
            static_routes: Vec::new(),
            mtu: config.mtu,
            tcp_mss_clamp: config.tcp_mss_clamp,
            clear_df: config.clear_df,
            fragment_before_encrypt: config.fragment_before_encrypt,
            bgp: None,
        };
        match &config.routing {
            crate::config::Routing::Static { prefixes } => policy.static_routes = prefixes.clone(),
            crate::config::Routing::Bgp {
                local_asn,
                peer_asn,
                hold_time,
                keepalive,
                advertised_prefixes,
                accepted_prefixes,
                max_prefixes_in,
                max_prefixes_out,
            } => {
                let role = config.role;
                let inside_addresses = config
                    .tunnels
                    .iter()
                    .filter_map(|t| Some((t.inside_address(role)?, t.inside_address(role.peer())?)))
                    .collect();
                policy.bgp = Some(BgpSettings {
                    local_asn: *local_asn,
                    peer_asn: *peer_asn,
                    hold_time: *hold_time,
                    keepalive: Some(*keepalive),
                    advertised: advertised_prefixes.clone(),
                    accepted: accepted_prefixes.clone(),
                    max_prefixes_in: *max_prefixes_in,
                    max_prefixes_out: Some(*max_prefixes_out as usize),
                    active: role == crate::config::Role::Cgw,
                    inside_addresses,
                });
            }
        }
        policy
    }
}

/// What happened to an inner packet handed to [`Connection::send_packet`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendOutcome {
    /// Sealed: send `buf[..transmit.len]` as the transmit says.
    Sent {
        tunnel: TunnelIndex,
        transmit: Transmit,
    },
    /// Too big for the tunnel and not to be fragmented: `buf[..len]` now
    /// holds an ICMP "fragmentation needed" for the packet's sender.
    IcmpTooBig { len: usize },
    /// Too big for the tunnel, so fragmented before encryption: the sealed
    /// fragments wait in [`Connection::poll_transmit`].
    Fragmented {
        tunnel: TunnelIndex,
        fragments: usize,
    },
}

/// Why an inner packet could not be sent.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    #[error("not an IPv4 or IPv6 packet")]
    NotIp,
    #[error("no route to {0} through a tunnel that is up")]
    NoRoute(IpAddr),
    #[error("packet of {len} bytes exceeds the tunnel MTU of {mtu}")]
    TooBig { len: usize, mtu: u16 },
    #[error("tunnel {tunnel}: {error}")]
    Tunnel {
        tunnel: TunnelIndex,
        error: TunnelError,
    },
}

/// Something that happened to the connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConnectionEvent {
    /// An event of one tunnel.
    Tunnel {
        tunnel: TunnelIndex,
        event: TunnelEvent,
    },
    /// The tunnel that carries traffic changed (active/standby), or the
    /// set of tunnels in use (active/active).
    ActiveTunnelChanged {
        from: Option<TunnelIndex>,
        to: Option<TunnelIndex>,
    },
    /// A BGP session changed state or a route came or went.
    Bgp(BgpEvent),
}

/// Why a connection could not be built.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ConnectionError {
    #[error("BGP: {0}")]
    Bgp(#[from] crate::bgp::session::ConfigError),
    #[error("BGP needs one pair of inside addresses per tunnel")]
    InsideAddresses,
    #[error("invalid configuration: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    InvalidConfig(Vec<crate::config::ConfigError>),
    #[error("tunnel {tunnel}: {message}")]
    Tunnel {
        tunnel: TunnelIndex,
        message: String,
    },
}

/// Counters of the connection as a whole.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConnectionMetrics {
    pub drops_no_route: u64,
    pub drops_too_big: u64,
    /// Packets fragmented before encryption.
    pub fragmented: u64,
    pub drops_not_ip: u64,
    pub mss_clamped: u64,
    pub df_cleared: u64,
    /// Times traffic moved from one tunnel to another.
    pub failovers: u64,
}

/// Two (or more) tunnels, their routes and the failover policy.
pub struct Connection {
    tunnels: Vec<Tunnel>,
    /// Whether the operator wants each tunnel up.
    admin_up: Vec<bool>,
    policy: ConnectionPolicy,
    routes: RouteTable,
    /// Active/standby: the tunnel carrying traffic, if any.
    active: Option<TunnelIndex>,
    /// When the preferred tunnel came back; traffic returns to it once it has
    /// stayed up for the failback hysteresis.
    preferred_up_since: Option<Timestamp>,
    /// Whether the preferred tunnel ever carried traffic: until it has, it
    /// takes over as soon as it is up (bring-up, not failback).
    preferred_served: bool,
    events: VecDeque<ConnectionEvent>,
    metrics: ConnectionMetrics,
    bgp: Option<bgp::BgpRouting>,
    /// When BGP (speaker or TCP stacks) next needs time.
    bgp_deadline: Option<Timestamp>,
    /// Packets the connection made itself (BGP), sealed and waiting to go.
    own_transmits: VecDeque<(TunnelIndex, Transmit, Vec<u8>)>,
    /// Tunnel states as of the last input, to notice transitions.
    last_states: Vec<TunnelState>,
    /// The configuration the connection runs, when built from one
    /// ([`replace_config`](Self::replace_config) compares against it).
    config: Option<crate::config::ConnectionConfig>,
    /// Whether [`connect`](Self::connect) was called: restarted tunnels
    /// reconnect only then.
    started: bool,
}

impl Connection {
    /// A connection over `tunnels` (index order is tunnel order). Static
    /// routes of the policy are installed on every tunnel; with BGP, a
    /// session starts over each tunnel's inside addresses.
    pub fn new(
        tunnels: Vec<Tunnel>,
        policy: ConnectionPolicy,
        now: Timestamp,
        entropy: &mut dyn Entropy,
    ) -> Result<Self, ConnectionError> {
        let mut routes = RouteTable::new();
        for (index, _) in tunnels.iter().enumerate() {
            for &prefix in &policy.static_routes {
                routes.insert(Route {
                    prefix,
                    tunnel: index,
                    origin: RouteOrigin::Static,
                });
            }
        }
        let bgp = match &policy.bgp {
            Some(settings) => {
                if settings.inside_addresses.len() != tunnels.len() {
                    return Err(ConnectionError::InsideAddresses);
                }
                Some(bgp::BgpRouting::new(settings, policy.mtu, now, entropy)?)
            }
            None => None,
        };
        Ok(Connection {
            admin_up: vec![true; tunnels.len()],
            last_states: tunnels.iter().map(Tunnel::state).collect(),
            tunnels,
            policy,
            routes,
            active: None,
            preferred_up_since: None,
            preferred_served: false,
            events: VecDeque::new(),
            metrics: ConnectionMetrics::default(),
            bgp,
            bgp_deadline: None,
            own_transmits: VecDeque::new(),
            config: None,
            started: false,
        })
    }

    /// The connection a configuration describes: its two tunnels keyed by
    /// IKE with 0.0.0.0/0 traffic selectors (as AWS negotiates them), opened
    /// by the end AWS's startup action names (the customer gateway for `add`), its
    /// routing, failover and packet policy. The configuration is validated
    /// first. Every random choice of the connection derives from `entropy`.
    pub fn from_config(
        config: &crate::config::ConnectionConfig,
        now: Timestamp,
        entropy: &mut dyn Entropy,
    ) -> Result<Self, ConnectionError> {
        config.validate().map_err(ConnectionError::InvalidConfig)?;
        let tunnels = (0..config.tunnels.len())
            .map(|index| reconfigure::tunnel_from_config(config, index, now, entropy))
            .collect::<Result<Vec<_>, _>>()?;
        let mut connection =
            Connection::new(tunnels, ConnectionPolicy::from_config(config), now, entropy)?;
        connection.config = Some(config.clone());
        Ok(connection)
    }

    /// The BGP speaker, when the connection routes dynamically.
    pub fn bgp_speaker(&self) -> Option<&crate::bgp::speaker::Speaker> {
        self.bgp.as_ref().map(bgp::BgpRouting::speaker)
    }

    pub fn tunnel(&self, index: TunnelIndex) -> Option<&Tunnel> {
        self.tunnels.get(index)
    }

    pub fn tunnel_count(&self) -> usize {
        self.tunnels.len()
    }

    pub fn routes(&self) -> &RouteTable {
        &self.routes
    }

    pub fn metrics(&self) -> &ConnectionMetrics {
        &self.metrics
    }

    pub fn policy(&self) -> &ConnectionPolicy {
        &self.policy
    }

    /// The tunnel carrying traffic under active/standby.
    pub fn active_tunnel(&self) -> Option<TunnelIndex> {
        self.active
    }

    /// Headroom [`send_packet`](Self::send_packet) needs in front of a packet;
    /// read it for each packet, as it follows the tunnels that are up. Only
    /// tunnels that can carry traffic count: a tunnel still negotiating
    /// reports the largest headroom of any algorithm, and counting it would
    /// make every packet move to the headroom its real tunnel wants.
    pub fn headroom(&self) -> usize {
        let up = self
            .tunnels
            .iter()
            .filter(|t| t.state() == TunnelState::Up)
            .map(Tunnel::headroom)
            .max();
        up.or_else(|| self.tunnels.iter().map(Tunnel::headroom).max())
            .unwrap_or(0)
    }

    /// Tailroom [`send_packet`](Self::send_packet) needs after a packet.
    pub fn tailroom(&self) -> usize {
        self.tunnels.iter().map(Tunnel::tailroom).max().unwrap_or(0)
    }

    /// Brings up every tunnel the operator wants up.
    pub fn connect(
        &mut self,
        now: Timestamp,
        entropy: &mut dyn Entropy,
    ) -> Result<(), TunnelError> {
        self.started = true;
        for index in 0..self.tunnels.len() {
            if self.admin_up[index] {
                self.tunnels[index].connect(now, entropy)?;
            }
        }
        self.after_input(now);
        Ok(())
    }

    /// Administratively brings a tunnel up or down (maintenance, tests).
    pub fn set_tunnel_admin_up(
        &mut self,
        now: Timestamp,
        index: TunnelIndex,
        up: bool,
        entropy: &mut dyn Entropy,
    ) -> Result<(), TunnelError> {
        let Some(tunnel) = self.tunnels.get_mut(index) else {
            return Ok(());
        };
        self.admin_up[index] = up;
        if up {
            self.started = true;
            tunnel.connect(now, entropy)?;
        } else {
            tunnel.close(now);
        }
        self.after_input(now);
        Ok(())
    }

    /// Routes the inner packet at `buf[headroom()..][..len]` into a tunnel.
    pub fn send_packet(
        &mut self,
        now: Timestamp,
        buf: &mut [u8],
        len: usize,
    ) -> Result<SendOutcome, SendError> {
        let headroom = self.headroom();
        let inner = buf
            .get_mut(headroom..headroom + len)
            .ok_or(SendError::NotIp)?;
        let Some(header) = packet::inner_header(inner) else {
            self.metrics.drops_not_ip += 1;
            return Err(SendError::NotIp);
        };
        if self.policy.tcp_mss_clamp != 0 && packet::clamp_tcp_mss(inner, self.policy.tcp_mss_clamp)
        {
            self.metrics.mss_clamped += 1;
        }
        if self.policy.clear_df && packet::clear_df(inner) {
            self.metrics.df_cleared += 1;
        }
        if len > usize::from(self.policy.mtu) {
            return self.send_oversized(now, buf, headroom, len, header);
        }
        let Some(tunnel) = self.choose_tunnel(header.destination, header.flow_hash) else {
            self.metrics.drops_no_route += 1;
            return Err(SendError::NoRoute(header.destination));
        };
        // Only up tunnels with different algorithms want different headroom;
        // then, and only then, the packet moves.
        let wanted = self.tunnels[tunnel].headroom();
        if wanted != headroom {
            buf.copy_within(headroom..headroom + len, wanted);
        }
        let result = self.tunnels[tunnel].send_inner(now, buf, len);
        self.after_input(now);
        result
            .map(|transmit| SendOutcome::Sent { tunnel, transmit })
            .map_err(|error| SendError::Tunnel { tunnel, error })
    }

    /// A packet over the MTU: fragments (IPv4 without DF, when allowed),
    /// an ICMP "fragmentation needed" (IPv4 with DF), or an error.
    fn send_oversized(
        &mut self,
        now: Timestamp,
        buf: &mut [u8],
        headroom: usize,
        len: usize,
        header: packet::InnerHeader,
    ) -> Result<SendOutcome, SendError> {
        let mtu = self.policy.mtu;
        let inner = &buf[headroom..headroom + len];
        if self.policy.fragment_before_encrypt {
            if let Some(fragments) = packet::fragment_ipv4(inner, usize::from(mtu)) {
                let Some(tunnel) = self.choose_tunnel(header.destination, header.flow_hash) else {
                    self.metrics.drops_no_route += 1;
                    return Err(SendError::NoRoute(header.destination));
                };
                let count = fragments.len();
                for fragment in fragments {
                    let t = &mut self.tunnels[tunnel];
                    let h = t.headroom();
                    let mut out = vec![0u8; h + fragment.len() + t.tailroom()];
                    out[h..h + fragment.len()].copy_from_slice(&fragment);
                    let transmit = t
                        .send_inner(now, &mut out, fragment.len())
                        .map_err(|error| SendError::Tunnel { tunnel, error })?;
                    out.truncate(transmit.len);
                    self.own_transmits.push_back((tunnel, transmit, out));
                }
                self.metrics.fragmented += 1;
                self.after_input(now);
                return Ok(SendOutcome::Fragmented {
                    tunnel,
                    fragments: count,
                });
            }
        }
        if packet::dont_fragment(inner) {
            if let (IpAddr::V4(_), Some(from)) = (header.source, self.gateway_address_v4()) {
                let mut reply = [0u8; 96];
                if let Some(n) = packet::icmp_too_big(inner, from, mtu, &mut reply) {
                    buf[..n].copy_from_slice(&reply[..n]);
                    self.metrics.drops_too_big += 1;
                    return Ok(SendOutcome::IcmpTooBig { len: n });
                }
            }
        }
        self.metrics.drops_too_big += 1;
        Err(SendError::TooBig { len, mtu })
    }

    /// Handles a UDP datagram from outside: the tunnel whose peer sent it
    /// opens it in place.
    pub fn handle_datagram(
        &mut self,
        now: Timestamp,
        local: SocketAddr,
        remote: SocketAddr,
        buf: &mut [u8],
    ) -> (Option<TunnelIndex>, Received) {
        let Some(index) = self.tunnels.iter().position(|t| {
            t.settings().remote.ip() == remote.ip() && t.settings().local.ip() == local.ip()
        }) else {
            return (
                None,
                Received::Dropped(crate::tunnel::DropReason::UnknownPeer),
            );
        };
        let mut received = self.tunnels[index].handle_datagram(now, local, remote, buf);
        if let (Received::Inner { range }, Some(bgp)) = (&received, self.bgp.as_mut()) {
            let inner = &buf[range.clone()];
            let to_us = packet::inner_header(inner)
                .and_then(|h| bgp.inside_owner(h.destination))
                .is_some_and(|owner| owner == index);
            if to_us {
                bgp.push_packet(index, inner);
                received = Received::Control;
            }
        }
        self.after_input(now);
        (Some(index), received)
    }

    /// Datagrams the connection sends by itself: BGP packets sealed into
    /// their tunnel, and each tunnel's control datagrams (IKE, keepalives).
    /// A buffer too small for the next datagram leaves it queued.
    pub fn poll_transmit(&mut self, buf: &mut [u8]) -> Option<(TunnelIndex, Transmit)> {
        if let Some((_, _, bytes)) = self.own_transmits.front() {
            if buf.len() < bytes.len() {
                return None;
            }
            let (tunnel, transmit, bytes) = self.own_transmits.pop_front()?;
            buf[..bytes.len()].copy_from_slice(&bytes);
            return Some((tunnel, transmit));
        }
        self.tunnels
            .iter_mut()
            .enumerate()
            .find_map(|(i, t)| t.poll_transmit(buf).map(|tx| (i, tx)))
    }

    pub fn poll_event(&mut self) -> Option<ConnectionEvent> {
        self.events.pop_front()
    }

    pub fn poll_timeout(&self) -> Option<Timestamp> {
        let failback = self.failback_deadline();
        self.tunnels
            .iter()
            .filter_map(Tunnel::poll_timeout)
            .chain(failback)
            .chain(self.bgp_deadline)
            .min()
    }

    /// Fires what is due in every tunnel and the failback timer.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        for tunnel in &mut self.tunnels {
            tunnel.handle_timeout(now);
        }
        if let Some(bgp) = self.bgp.as_mut() {
            bgp.handle_timeout(now);
        }
        self.after_input(now);
    }

    /// Metrics of one tunnel.
    pub fn tunnel_metrics(&self, index: TunnelIndex) -> Option<&TunnelMetrics> {
        self.tunnels.get(index).map(Tunnel::metrics)
    }

    /// A tunnel carries traffic when its SAs are up and, with BGP, its
    /// session is Established (as AWS reports tunnel status).
    fn healthy(&self, index: TunnelIndex) -> bool {
        self.tunnels
            .get(index)
            .is_some_and(|t| t.state() == TunnelState::Up)
            && self.bgp.as_ref().is_none_or(|b| b.established(index))
    }

    fn choose_tunnel(&self, destination: IpAddr, flow_hash: u64) -> Option<TunnelIndex> {
        let selection = self.routes.lookup(destination, |t| self.healthy(t))?;
        match self.policy.failover {
            FailoverPolicy::ActiveActive => selection.pick(flow_hash),
            FailoverPolicy::ActiveStandby { .. } => self
                .active
                .filter(|&a| selection.contains(a))
                .or_else(|| selection.iter().next()),
        }
    }

    fn preferred(&self) -> Option<TunnelIndex> {
        match self.policy.failover {
            FailoverPolicy::ActiveStandby {
                preferred_tunnel, ..
            } => Some(preferred_tunnel),
            FailoverPolicy::ActiveActive => None,
        }
    }

    fn hysteresis(&self) -> Duration {
        match self.policy.failover {
            FailoverPolicy::ActiveStandby {
                failback_hysteresis_secs,
                ..
            } => Duration::from_secs(u64::from(failback_hysteresis_secs)),
            FailoverPolicy::ActiveActive => Duration::ZERO,
        }
    }

    fn failback_deadline(&self) -> Option<Timestamp> {
        let preferred = self.preferred()?;
        let since = self.preferred_up_since?;
        (self.active != Some(preferred)).then(|| since + self.hysteresis())
    }

    /// Collects tunnel events, runs BGP, and re-evaluates which tunnel is active.
    fn after_input(&mut self, now: Timestamp) {
        self.collect_tunnel_events(now);
        self.drive_bgp(now);
        // Sealing BGP packets may have produced tunnel events (lifetimes).
        self.collect_tunnel_events(now);
        self.update_active(now);
    }

    fn collect_tunnel_events(&mut self, now: Timestamp) {
        for (index, tunnel) in self.tunnels.iter_mut().enumerate() {
            while let Some(event) = tunnel.poll_event() {
                self.events.push_back(ConnectionEvent::Tunnel {
                    tunnel: index,
                    event,
                });
            }
            let state = tunnel.state();
            if state != self.last_states[index] {
                self.last_states[index] = state;
                if state != TunnelState::Up {
                    if let Some(bgp) = self.bgp.as_mut() {
                        bgp.tunnel_down(now, index);
                    }
                }
            }
        }
    }

    fn drive_bgp(&mut self, now: Timestamp) {
        let Connection {
            bgp,
            tunnels,
            routes,
            events,
            own_transmits,
            bgp_deadline,
            ..
        } = self;
        let Some(bgp) = bgp.as_mut() else {
            return;
        };
        bgp.drive(
            now,
            routes,
            |tunnel, packet| {
                let Some(t) = tunnels.get_mut(tunnel) else {
                    return;
                };
                let headroom = t.headroom();
                let mut buf = vec![0u8; headroom + packet.len() + t.tailroom()];
                buf[headroom..headroom + packet.len()].copy_from_slice(&packet);
                // A tunnel that is not up drops it; TCP retransmits.
                if let Ok(transmit) = t.send_inner(now, &mut buf, packet.len()) {
                    buf.truncate(transmit.len);
                    own_transmits.push_back((tunnel, transmit, buf));
                }
            },
            |event| events.push_back(ConnectionEvent::Bgp(event)),
        );
        *bgp_deadline = bgp.poll_timeout(now);
    }

    fn update_active(&mut self, now: Timestamp) {
        let Some(preferred) = self.preferred() else {
            // Active/active: report the first healthy tunnel as "active" so
            // an operator still sees transitions.
            let first = (0..self.tunnels.len()).find(|&t| self.healthy(t));
            self.switch_active(first);
            return;
        };
        if self.healthy(preferred) {
            self.preferred_up_since.get_or_insert(now);
        } else {
            self.preferred_up_since = None;
        }
        let current_ok = self.active.is_some_and(|a| self.healthy(a));
        let failback_due = self
            .failback_deadline()
            .is_some_and(|deadline| now >= deadline);
        let next = if self.healthy(preferred) && (self.active.is_none() || !self.preferred_served) {
            // First use of the preferred tunnel (or nothing active): the
            // hysteresis guards failback after a failure, not bring-up.
            Some(preferred)
        } else if failback_due || (!current_ok && self.healthy(preferred)) {
            Some(preferred)
        } else if current_ok {
            self.active
        } else {
            (0..self.tunnels.len()).find(|&t| self.healthy(t))
        };
        self.switch_active(next);
    }

    fn switch_active(&mut self, to: Option<TunnelIndex>) {
        if to.is_some() && to == self.preferred() {
            self.preferred_served = true;
        }
        if self.active == to {
            return;
        }
        // A failover moves traffic to another tunnel; losing every tunnel
        // (or shutting down) is not one.
        if self.active.is_some() && to.is_some() {
            self.metrics.failovers += 1;
        }
        self.events.push_back(ConnectionEvent::ActiveTunnelChanged {
            from: self.active,
            to,
        });
        self.active = to;
    }

    /// Our IPv4 address as the source of ICMP errors.
    fn gateway_address_v4(&self) -> Option<std::net::Ipv4Addr> {
        self.tunnels
            .iter()
            .find_map(|t| match t.settings().local.ip() {
                IpAddr::V4(a) => Some(a),
                IpAddr::V6(_) => None,
            })
    }
}

#[cfg(test)]
mod tests;
