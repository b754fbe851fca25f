//! What the gateway tells its supervisor: one JSON object per line on stdout
//! (the interop harness contract), and human-readable logs on stderr.
//!
//! Events: `ready`, `tunnel_state` (`state`, `from`), `child_sa_installed`
//! (`spi_in`, `spi_out`, 8 hex digits like strongSwan's), `esp_sa` (`kind`,
//! `spi`), `down` (`reason`, `detail`), `metrics`, `error` (`message`),
//! `stopped` (last). With IKEv2 also: `ike_sa_up` / `ike_sa_rekeyed` (`spi_i`,
//! `spi_r`, 16 hex digits), `ike_sa_down` (`spi_i`, `spi_r`, `reason`),
//! `child_sa_rekeyed` (`spi_in`, `spi_out`, `old_spi_in`), `child_sa_deleted`,
//! `nat_detected` (`local`, `remote`), `dpd_timeout` (`action`, `detail`),
//! `negotiation_failed` (`reason`, `detail`: a new IKE SA from the peer failed
//! while ours stays up). `down`'s `reason` is the [`DownReason`] variant in
//! snake_case (`peer_deleted`, `dpd_timeout`, `authentication_failed`,
//! `no_proposal_chosen` with `ours` / `theirs`, ...).

use std::io::Write;

use serde_json::{json, Value};
use vpn_core::tunnel::{DownReason, TunnelEvent, TunnelMetrics, TunnelState};

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
    eprintln!("gateway: error: {message}");
    emit("error", json!({ "message": message }));
}

pub fn spi(spi: u32) -> String {
    format!("{spi:08x}")
}

/// `SaExpired` / `Foo { .. }` / `Bar(..)` -> `sa_expired` / `foo` / `bar`: names
/// for enum variants that stay right when the core adds variants.
pub fn snake_name(debug: &str) -> String {
    let ident: String = debug
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    let mut out = String::with_capacity(ident.len() + 4);
    for (i, c) in ident.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

pub fn state_name(state: TunnelState) -> String {
    snake_name(&format!("{state:?}"))
}

/// Turns tunnel events into event lines; remembers the IKE SA's SPIs so that
/// its end can be reported as `ike_sa_down`.
#[derive(Default, Debug)]
pub struct EventWriter {
    ike_sa: Option<(u64, u64)>,
}

impl EventWriter {
    /// Prints one tunnel event (and `ike_sa_down` before a `down` that ends an
    /// IKE SA).
    pub fn tunnel_event(&mut self, event: &TunnelEvent) {
        match event {
            TunnelEvent::IkeSaEstablished { spi_i, spi_r }
            | TunnelEvent::IkeSaRekeyed { spi_i, spi_r, .. } => {
                self.ike_sa = Some((*spi_i, *spi_r));
            }
            TunnelEvent::Down { reason } => {
                if let Some((spi_i, spi_r)) = self.ike_sa.take() {
                    let mut v = reason_json(reason);
                    v["spi_i"] = Value::from(ike_spi(spi_i));
                    v["spi_r"] = Value::from(ike_spi(spi_r));
                    emit("ike_sa_down", v);
                }
            }
            _ => {}
        }
        tunnel_event(event);
    }
}

/// Prints one tunnel event.
pub fn tunnel_event(event: &TunnelEvent) {
    match event {
        TunnelEvent::StateChanged { from, to } => emit(
            "tunnel_state",
            json!({ "state": state_name(*to), "from": state_name(*from) }),
        ),
        TunnelEvent::ChildSaInstalled {
            inbound_spi,
            outbound_spi,
        } => emit(
            "child_sa_installed",
            json!({ "spi_in": spi(*inbound_spi), "spi_out": spi(*outbound_spi) }),
        ),
        TunnelEvent::Esp(esp) => {
            let detail = format!("{esp:?}");
            eprintln!("gateway: ESP SA event: {detail}");
            emit(
                "esp_sa",
                json!({ "kind": snake_name(&detail), "detail": detail }),
            );
        }
        TunnelEvent::Down { reason } => emit("down", reason_json(reason)),
        TunnelEvent::IkeSaEstablished { spi_i, spi_r } => emit(
            "ike_sa_up",
            json!({ "spi_i": ike_spi(*spi_i), "spi_r": ike_spi(*spi_r) }),
        ),
        TunnelEvent::IkeSaRekeyed {
            old_spi_i,
            old_spi_r,
            spi_i,
            spi_r,
        } => emit(
            "ike_sa_rekeyed",
            json!({
                "spi_i": ike_spi(*spi_i),
                "spi_r": ike_spi(*spi_r),
                "old_spi_i": ike_spi(*old_spi_i),
                "old_spi_r": ike_spi(*old_spi_r),
            }),
        ),
        TunnelEvent::ChildSaRekeyed {
            old_inbound_spi,
            inbound_spi,
            outbound_spi,
        } => emit(
            "child_sa_rekeyed",
            json!({
                "spi_in": spi(*inbound_spi),
                "spi_out": spi(*outbound_spi),
                "old_spi_in": spi(*old_inbound_spi),
            }),
        ),
        TunnelEvent::ChildSaDeleted { inbound_spi } => {
            emit("child_sa_deleted", json!({ "spi_in": spi(*inbound_spi) }))
        }
        TunnelEvent::NatDetected { local, remote } => {
            emit("nat_detected", json!({ "local": local, "remote": remote }))
        }
        TunnelEvent::DeadPeerDetected => emit(
            "dpd_timeout",
            json!({ "action": "none", "detail": "dead peer detected; SAs kept (DPD action none)" }),
        ),
        TunnelEvent::NegotiationFailed { reason } => {
            eprintln!("gateway: a new IKE SA from the peer failed: {reason}");
            emit("negotiation_failed", reason_json(reason))
        }
        other => {
            // A variant newer than this program: still visible to the supervisor.
            let detail = format!("{other:?}");
            emit(
                "tunnel_event",
                json!({ "kind": snake_name(&detail), "detail": detail }),
            );
        }
    }
    if let TunnelEvent::Down {
        reason: DownReason::DpdTimeout,
    } = event
    {
        // The cause as its own event too, as with action `none`.
        emit(
            "dpd_timeout",
            json!({ "action": "clear", "detail": DownReason::DpdTimeout.to_string() }),
        );
    }
}

/// `reason` named from the [`DownReason`] variant (`dpd_timeout`,
/// `authentication_failed`, `no_proposal_chosen`, ...) and a readable `detail`
/// (both offers for a proposal mismatch).
fn reason_json(reason: &DownReason) -> Value {
    let mut v = json!({
        "reason": snake_name(&format!("{reason:?}")),
        "detail": reason.to_string(),
    });
    if let DownReason::NoProposalChosen { ours, theirs } = reason {
        v["ours"] = Value::from(ours.as_str());
        v["theirs"] = theirs.as_deref().map_or(Value::Null, Value::from);
    }
    v
}

/// IKE SPIs as 16 hex digits, like strongSwan's `--list-sas`.
pub fn ike_spi(spi: u64) -> String {
    format!("{spi:016x}")
}

/// The tunnel's counters as JSON.
pub fn metrics_json(state: TunnelState, m: &TunnelMetrics) -> Value {
    json!({
        "state": state_name(state),
        "bytes_in": m.data_in_bytes,
        "bytes_out": m.data_out_bytes,
        "packets_in": m.packets_in,
        "packets_out": m.packets_out,
        "drops": {
            "unknown_peer": m.drops_unknown_peer,
            "unknown_spi": m.drops_unknown_spi,
            "replay": m.drops_replay,
            "icv": m.drops_icv,
            "malformed": m.drops_malformed,
            "traffic_selectors": m.drops_traffic_selectors,
            "not_connected": m.drops_not_connected,
        },
        "nat_keepalives_in": m.nat_keepalives_in,
    })
}

/// The one-line summary logged on stderr every few seconds.
pub fn metrics_line(state: TunnelState, m: &TunnelMetrics, io: &IoCounters) -> String {
    let drops = m.drops_unknown_peer
        + m.drops_unknown_spi
        + m.drops_replay
        + m.drops_icv
        + m.drops_malformed
        + m.drops_traffic_selectors
        + m.drops_not_connected;
    format!(
        "gateway: state={} in={}B/{}p out={}B/{}p drops={} (replay={} icv={} not_connected={}) \
         send_errors={} tun_errors={}",
        state_name(state),
        m.data_in_bytes,
        m.packets_in,
        m.data_out_bytes,
        m.packets_out,
        drops,
        m.drops_replay,
        m.drops_icv,
        m.drops_not_connected,
        io.send_errors,
        io.tun_errors,
    )
}

/// Failures of our own I/O (the core counts its drops itself).
#[derive(Default, Debug)]
pub struct IoCounters {
    pub send_errors: u64,
    pub recv_errors: u64,
    pub tun_errors: u64,
    pub seal_errors: u64,
}
