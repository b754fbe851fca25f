//! What the gateway tells its supervisor: one JSON object per line on stdout
//! (the interop harness contract), and human-readable logs on stderr.
//!
//! Events: `ready`, `tunnel_state` (`state`, `from`), `child_sa_installed`
//! (`spi_in`, `spi_out`, 8 hex digits like strongSwan's), `esp_sa` (`kind`,
//! `spi`), `down` (`reason`, `detail`), `metrics`, `error` (`message`),
//! `stopped` (last).

use std::io::Write;

use serde_json::{json, Value};
use vpn_core::tunnel::{TunnelEvent, TunnelMetrics, TunnelState};

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
        TunnelEvent::Down { reason } => {
            let detail = format!("{reason:?}");
            emit(
                "down",
                json!({ "reason": snake_name(&detail), "detail": detail }),
            );
        } // IKE events go here (ChildSaRekeyed -> "child_sa_rekeyed" with
          // spi_in/spi_out, IkeSaRekeyed, IKE SA up/down -> "ike_sa_up"/"ike_sa_down"
          // with spi_i/spi_r, DPD timeout -> "dpd_timeout"), named as in the
          // harness contract (tests/interop/harness.py, class _OurProgram).
    }
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
