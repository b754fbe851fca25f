//! Operator commands that change a running connection: rekey a tunnel now,
//! and replace the configuration the way AWS modifies a VPN connection's
//! tunnel options (each changed tunnel restarts with its new options; the
//! other keeps carrying traffic).

use crate::config::{ConnectionConfig, Prefix, StartupAction};
use crate::entropy::{Entropy, SeededEntropy};
use crate::route::{Route, RouteOrigin, TunnelIndex};
use crate::time::Timestamp;
use crate::tunnel::{Tunnel, TunnelError, TunnelSettings};

use super::{BgpSettings, Connection, ConnectionError, ConnectionEvent, ConnectionPolicy};

/// Room for any UDP payload a closing tunnel still has to send.
const MAX_DATAGRAM: usize = 65_535;

/// Which SA of a tunnel [`Connection::rekey_tunnel`] renews.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RekeyKind {
    /// The ESP child SA (IKEv2 CREATE_CHILD_SA, IKEv1 Quick Mode).
    Child,
    /// The IKE SA (IKEv2 CREATE_CHILD_SA for the IKE SA, IKEv1 a new Main Mode).
    Ike,
}

/// What [`Connection::replace_config`] changed.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ConfigChange {
    /// Tunnels whose options changed: each was closed (IKE DELETE) and
    /// rebuilt, and reconnects if the connection had been started.
    pub tunnels_restarted: Vec<TunnelIndex>,
    /// The static prefixes changed and the route table was rewritten.
    pub routes_changed: bool,
    /// Failover, MTU, MSS clamping, DF or fragmentation options changed.
    pub policy_changed: bool,
    /// The prefixes this end announces over BGP changed (withdrawn and
    /// announced on the running sessions).
    pub advertised_changed: bool,
    /// Restarted tunnels that could not connect with their new options.
    pub failed_to_start: Vec<(TunnelIndex, TunnelError)>,
}

impl ConfigChange {
    /// Nothing differed from the running configuration.
    pub fn is_empty(&self) -> bool {
        self.tunnels_restarted.is_empty()
            && !self.routes_changed
            && !self.policy_changed
            && !self.advertised_changed
    }
}

/// Why a configuration cannot replace the running one.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReplaceError {
    #[error("the connection was not built from a configuration")]
    NoConfig,
    #[error(transparent)]
    Invalid(#[from] ConnectionError),
    /// As at AWS, switching between static and BGP routing, or changing the
    /// BGP session settings (ASNs, hold time, limits), needs a new
    /// connection; the announced prefixes may change.
    #[error("the routing (static or BGP, and BGP's session settings) cannot change on a running connection")]
    RoutingChange,
    #[error("the role (customer gateway or VGW) cannot change on a running connection")]
    RoleChange,
}

/// One tunnel of `config`, as this end (`config.role`) runs it: keyed by
/// IKE with 0.0.0.0/0 traffic selectors (as AWS negotiates them) and opened
/// by the end AWS's startup action names.
pub(super) fn tunnel_from_config(
    config: &ConnectionConfig,
    index: TunnelIndex,
    now: Timestamp,
    entropy: &mut dyn Entropy,
) -> Result<Tunnel, ConnectionError> {
    let failed = |e: &dyn std::fmt::Display| ConnectionError::Tunnel {
        tunnel: index,
        message: e.to_string(),
    };
    let tunnel = config.tunnels.get(index).ok_or(ConnectionError::Tunnel {
        tunnel: index,
        message: "no such tunnel".into(),
    })?;
    let mut ours = tunnel.clone();
    ours.startup_action = if tunnel.initiates(config.role) {
        StartupAction::Start
    } else {
        StartupAction::Add
    };
    let any = |addr: std::net::IpAddr| Prefix::truncating(addr, 0);
    let settings = TunnelSettings::from_config(
        &ours,
        vec![any(std::net::Ipv4Addr::UNSPECIFIED.into())],
        vec![any(std::net::Ipv4Addr::UNSPECIFIED.into())],
    )
    .map_err(|e| failed(&e))?;
    let stream = Box::new(SeededEntropy::new(entropy.next_u64()));
    Tunnel::with_entropy(settings, now, stream).map_err(|e| failed(&e))
}

impl Connection {
    /// Renews a tunnel's child SA or IKE SA now, as `swanctl --rekey` does.
    /// A tunnel without the SA (down, or keyed by hand) ignores it.
    pub fn rekey_tunnel(&mut self, now: Timestamp, index: TunnelIndex, kind: RekeyKind) {
        let Some(tunnel) = self.tunnels.get_mut(index) else {
            return;
        };
        match kind {
            RekeyKind::Child => tunnel.rekey_child(now),
            RekeyKind::Ike => tunnel.rekey_ike(now),
        }
        self.after_input(now);
    }

    /// Replaces the running configuration. Validated first; nothing changes
    /// on error. A tunnel whose options differ is closed (its DELETE waits
    /// in [`poll_transmit`](Self::poll_transmit)) and rebuilt, reconnecting
    /// if [`connect`](Self::connect) had been called and the operator wants
    /// it up; its routes move to the other tunnel meanwhile. Static
    /// prefixes, prefixes announced over BGP, and the failover and packet
    /// options apply at once.
    pub fn replace_config(
        &mut self,
        now: Timestamp,
        config: &ConnectionConfig,
        entropy: &mut dyn Entropy,
    ) -> Result<ConfigChange, ReplaceError> {
        let Some(running) = self.config.as_ref() else {
            return Err(ReplaceError::NoConfig);
        };
        if config.role != running.role {
            return Err(ReplaceError::RoleChange);
        }
        config.validate().map_err(ConnectionError::InvalidConfig)?;
        let policy = ConnectionPolicy::from_config(config);
        let static_routes =
            |r: &crate::config::Routing| matches!(r, crate::config::Routing::Static { .. });
        // BGP settings apart from the prefixes announced.
        let session_settings = |b: &Option<BgpSettings>| {
            b.as_ref().map(|b| BgpSettings {
                advertised: Vec::new(),
                ..b.clone()
            })
        };
        if session_settings(&policy.bgp) != session_settings(&self.policy.bgp)
            || static_routes(&config.routing) != static_routes(&running.routing)
        {
            return Err(ReplaceError::RoutingChange);
        }
        // Build every new tunnel before touching the running ones.
        let mut rebuilt = Vec::new();
        for (index, tunnel) in config.tunnels.iter().enumerate() {
            if running.tunnels.get(index) != Some(tunnel) {
                rebuilt.push((index, tunnel_from_config(config, index, now, entropy)?));
            }
        }

        let mut change = ConfigChange {
            routes_changed: policy.static_routes != self.policy.static_routes,
            ..ConfigChange::default()
        };
        let packet_policy = |p: &ConnectionPolicy| {
            (
                p.failover,
                p.mtu,
                p.tcp_mss_clamp,
                p.clear_df,
                p.fragment_before_encrypt,
            )
        };
        change.policy_changed = packet_policy(&policy) != packet_policy(&self.policy);
        if change.routes_changed {
            self.replace_static_routes(&policy.static_routes);
        }
        if let (Some(old), Some(new), Some(bgp)) =
            (&self.policy.bgp, &policy.bgp, self.bgp.as_mut())
        {
            let removed: Vec<Prefix> = old
                .advertised
                .iter()
                .filter(|p| !new.advertised.contains(p))
                .copied()
                .collect();
            let added: Vec<Prefix> = new
                .advertised
                .iter()
                .filter(|p| !old.advertised.contains(p))
                .copied()
                .collect();
            change.advertised_changed = !removed.is_empty() || !added.is_empty();
            bgp.readvertise(&removed, &added);
        }
        if policy.failover != self.policy.failover {
            // A new preferred tunnel is a new bring-up, not a failback.
            self.preferred_up_since = None;
            self.preferred_served = false;
        }
        self.policy = policy;
        for (index, tunnel) in rebuilt {
            if let Err(e) = self.restart_tunnel(now, index, tunnel, entropy) {
                change.failed_to_start.push((index, e));
            }
            change.tunnels_restarted.push(index);
        }
        self.config = Some(config.clone());
        self.after_input(now);
        Ok(change)
    }

    fn replace_static_routes(&mut self, prefixes: &[Prefix]) {
        let old: Vec<Route> = self
            .routes
            .iter()
            .filter(|r| r.origin == RouteOrigin::Static)
            .cloned()
            .collect();
        for route in old {
            self.routes.remove(route.prefix, route.tunnel, true);
        }
        for tunnel in 0..self.tunnels.len() {
            for &prefix in prefixes {
                self.routes.insert(Route {
                    prefix,
                    tunnel,
                    origin: RouteOrigin::Static,
                });
            }
        }
    }

    /// Swaps in `fresh` for tunnel `index`: the old one is closed and its
    /// last datagrams (the DELETE) and events are kept for the caller. The
    /// new one connects if the old one was meant to be running.
    fn restart_tunnel(
        &mut self,
        now: Timestamp,
        index: TunnelIndex,
        fresh: Tunnel,
        entropy: &mut dyn Entropy,
    ) -> Result<(), TunnelError> {
        let Some(slot) = self.tunnels.get_mut(index) else {
            return Ok(());
        };
        let mut old = std::mem::replace(slot, fresh);
        old.close(now);
        while let Some(event) = old.poll_event() {
            self.events.push_back(ConnectionEvent::Tunnel {
                tunnel: index,
                event,
            });
        }
        let mut scratch = vec![0u8; MAX_DATAGRAM];
        while let Some(transmit) = old.poll_transmit(&mut scratch) {
            let bytes = scratch[..transmit.len].to_vec();
            self.own_transmits.push_back((index, transmit, bytes));
        }
        if self.started && self.admin_up.get(index).copied().unwrap_or(false) {
            self.tunnels[index].connect(now, entropy)?;
        }
        Ok(())
    }
}
