//! What the speaker tells its supervisor: one JSON object per line on stdout (the
//! interop harness contract), logs on stderr.
//!
//! | event | fields |
//! |---|---|
//! | `ready` | `asn`, `router_id`, `listen` (addresses), `neighbors` (names) |
//! | `bgp_state` | `peer`, `address`, `state`, `from` (BIRD's names: `Idle`, `Connect`, `Active`, `OpenSent`, `OpenConfirm`, `Established`) |
//! | `established` | `peer`, `router_id`, `hold_time` |
//! | `down` | `peer`, `reason`, `graceful_restart`, and per reason (below) |
//! | `route_added` / `route_changed` | `prefix`, `next_hop`, `source` (`local` or a peer name), `as_path`, `multipath` |
//! | `route_withdrawn` | `prefix`, `next_hop` (the last one reported) |
//! | `end_of_rib` | `peer`, `afi` |
//! | `stale_routes_expired`, `route_refresh_requested` | `peer` (and `afi`) |
//! | `outbound_cap_reached` | `peer`, `cap`, `wanted` |
//! | `error` | `message` |
//! | `stopped` | last line |
//!
//! `down` reasons: `admin_down`, `connection_closed`, `hold_timer_expired`,
//! `bad_peer_as` (`expected`, `received`), `max_prefixes` (`afi`, `limit`),
//! `notification_received` / `notification_sent` (`code`, `subcode`, `code_name`,
//! `text`). Reasons for which we sent a NOTIFICATION also carry its
//! `code`/`subcode` and `notification: "sent"`.

use std::collections::HashMap;
use std::io::Write;
use std::net::IpAddr;

use serde_json::{json, Value};
use vpn_core::bgp::rib::IpPrefix;
use vpn_core::bgp::session::{DownReason, SessionEvent, State};
use vpn_core::bgp::speaker::{BestRoute, PeerId, RouteEvent, RouteSource, SpeakerEvent};
use vpn_core::bgp::wire::{Afi, ErrorCode};

/// Writes one event line and flushes (the reader may be waiting for it).
pub fn emit(event: &str, mut fields: Value) {
    if let Value::Object(map) = &mut fields {
        map.insert("event".into(), Value::from(event));
    }
    let mut out = std::io::stdout().lock();
    // A supervisor that closed our stdout cannot be told anything more; keep running.
    let _ = serde_json::to_writer(&mut out, &fields);
    let _ = out.write_all(b"\n");
    let _ = out.flush();
}

pub fn error(message: impl Into<String>) {
    let message = message.into();
    eprintln!("bgp_speaker: error: {message}");
    emit("error", json!({ "message": message }));
}

pub fn state_name(s: State) -> &'static str {
    match s {
        State::Idle => "Idle",
        State::Connect => "Connect",
        State::Active => "Active",
        State::OpenSent => "OpenSent",
        State::OpenConfirm => "OpenConfirm",
        State::Established => "Established",
    }
}

fn afi_name(afi: Afi) -> String {
    match afi {
        Afi::IPV4 => "ipv4".into(),
        Afi::IPV6 => "ipv6".into(),
        Afi(n) => n.to_string(),
    }
}

fn code_name(code: ErrorCode) -> &'static str {
    match code {
        ErrorCode::MESSAGE_HEADER => "message_header_error",
        ErrorCode::OPEN_MESSAGE => "open_message_error",
        ErrorCode::UPDATE_MESSAGE => "update_message_error",
        ErrorCode::HOLD_TIMER_EXPIRED => "hold_timer_expired",
        ErrorCode::FSM => "fsm_error",
        ErrorCode::CEASE => "cease",
        ErrorCode::ROUTE_REFRESH_MESSAGE => "route_refresh_message_error",
        _ => "unknown",
    }
}

/// The `down` event's fields for a reason.
fn down_fields(reason: &DownReason) -> Value {
    let sent =
        |code: u8, subcode: u8| json!({ "notification": "sent", "code": code, "subcode": subcode });
    let mut v = match reason {
        DownReason::AdminDown => sent(6, 2),
        DownReason::HoldTimerExpired => sent(4, 0),
        DownReason::ConnectionClosed => json!({}),
        DownReason::BadPeerAs { expected, received } => {
            let mut v = sent(2, 2);
            v["expected"] = json!(expected);
            v["received"] = json!(received);
            v
        }
        DownReason::MaxPrefixesExceeded { afi, limit, .. } => {
            let mut v = sent(6, 1);
            v["afi"] = json!(afi_name(*afi));
            v["limit"] = json!(limit);
            v
        }
        DownReason::NotificationReceived {
            code,
            subcode,
            text,
        }
        | DownReason::NotificationSent {
            code,
            subcode,
            text,
        } => json!({
            "notification": if matches!(reason, DownReason::NotificationSent { .. }) { "sent" } else { "received" },
            "code": code.0,
            "subcode": subcode,
            "code_name": code_name(*code),
            "text": text,
        }),
    };
    v["reason"] = json!(match reason {
        DownReason::AdminDown => "admin_down",
        DownReason::HoldTimerExpired => "hold_timer_expired",
        DownReason::ConnectionClosed => "connection_closed",
        DownReason::BadPeerAs { .. } => "bad_peer_as",
        DownReason::MaxPrefixesExceeded { .. } => "max_prefixes",
        DownReason::NotificationReceived { .. } => "notification_received",
        DownReason::NotificationSent { .. } => "notification_sent",
    });
    v
}

/// Turns speaker events into JSON lines; remembers the next hop last reported per
/// prefix so a withdrawal can name it.
pub struct Reporter {
    /// Neighbour names and addresses, by `PeerId`.
    pub peers: Vec<(String, IpAddr)>,
    next_hops: HashMap<IpPrefix, Option<IpAddr>>,
}

impl Reporter {
    pub fn new(peers: Vec<(String, IpAddr)>) -> Self {
        Self {
            peers,
            next_hops: HashMap::new(),
        }
    }

    pub fn name(&self, peer: PeerId) -> String {
        self.peers
            .get(usize::from(peer.0))
            .map_or_else(|| format!("#{}", peer.0), |p| p.0.clone())
    }

    fn route(&self, prefix: &IpPrefix, route: &BestRoute) -> Value {
        let as_path: Vec<u32> = route
            .attrs
            .as_path
            .as_ref()
            .map(|p| {
                p.segments
                    .iter()
                    .flat_map(|s| s.asns.iter().copied())
                    .collect()
            })
            .unwrap_or_default();
        json!({
            "prefix": prefix.to_string(),
            "next_hop": route.next_hop.map(|a| a.to_string()),
            "source": match route.source {
                RouteSource::Local => "local".to_string(),
                RouteSource::Peer(p) => self.name(p),
            },
            "as_path": as_path,
            "multipath": route.multipath,
        })
    }

    pub fn event(&mut self, ev: &SpeakerEvent) {
        match ev {
            SpeakerEvent::Session { peer, event } => self.session(*peer, event),
            SpeakerEvent::Route(RouteEvent::BestAdded { prefix, route }) => {
                self.next_hops.insert(*prefix, route.next_hop);
                emit("route_added", self.route(prefix, route));
            }
            SpeakerEvent::Route(RouteEvent::BestChanged { prefix, route }) => {
                self.next_hops.insert(*prefix, route.next_hop);
                emit("route_changed", self.route(prefix, route));
            }
            SpeakerEvent::Route(RouteEvent::BestWithdrawn { prefix }) => {
                let nh = self.next_hops.remove(prefix).flatten();
                emit(
                    "route_withdrawn",
                    json!({ "prefix": prefix.to_string(), "next_hop": nh.map(|a| a.to_string()) }),
                );
            }
            SpeakerEvent::OutboundCapReached { peer, cap, wanted } => emit(
                "outbound_cap_reached",
                json!({ "peer": self.name(*peer), "cap": cap, "wanted": wanted }),
            ),
        }
    }

    fn session(&self, peer: PeerId, ev: &SessionEvent) {
        let name = self.name(peer);
        match ev {
            SessionEvent::StateChanged { from, to } => {
                let address = self.peers.get(usize::from(peer.0)).map(|p| p.1.to_string());
                eprintln!(
                    "bgp_speaker: {name}: {} -> {}",
                    state_name(*from),
                    state_name(*to)
                );
                emit(
                    "bgp_state",
                    json!({ "peer": name, "address": address, "state": state_name(*to), "from": state_name(*from) }),
                );
            }
            SessionEvent::Established { peer_id, hold_time } => emit(
                "established",
                json!({ "peer": name, "router_id": peer_id.to_string(), "hold_time": hold_time }),
            ),
            SessionEvent::Down {
                reason,
                graceful_restart,
            } => {
                eprintln!("bgp_speaker: {name}: down: {reason:?}");
                let mut v = down_fields(reason);
                v["peer"] = json!(name);
                v["graceful_restart"] = json!(graceful_restart);
                emit("down", v);
            }
            SessionEvent::EndOfRib { afi, .. } => {
                emit("end_of_rib", json!({ "peer": name, "afi": afi_name(*afi) }))
            }
            SessionEvent::StaleRoutesExpired => {
                emit("stale_routes_expired", json!({ "peer": name }))
            }
            SessionEvent::RouteRefreshRequested { afi, .. } => emit(
                "route_refresh_requested",
                json!({ "peer": name, "afi": afi_name(*afi) }),
            ),
        }
    }
}
