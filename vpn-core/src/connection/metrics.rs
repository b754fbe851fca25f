//! Metrics of a connection in the shapes operators already read: the
//! CloudWatch names AWS uses for VPN tunnels, and Prometheus text.

use std::fmt::Write;

use super::Connection;
use crate::tunnel::TunnelState;

/// One tunnel's figures, named after CloudWatch's VPN metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TunnelReport {
    /// 1 when the tunnel carries traffic (SAs up and, with BGP, the session
    /// Established), else 0.
    pub tunnel_state: u8,
    /// Bytes received through the tunnel, after decryption.
    pub tunnel_data_in: u64,
    /// Bytes sent through the tunnel, before encryption.
    pub tunnel_data_out: u64,
    pub packets_in: u64,
    pub packets_out: u64,
    /// Inbound packets dropped, all reasons together.
    pub drops_in: u64,
    /// Routes learned through the tunnel.
    pub accepted_routes: usize,
    pub active: bool,
}

/// A per-tunnel metric: name, Prometheus type, help text, value.
type Series = (
    &'static str,
    &'static str,
    &'static str,
    fn(&TunnelReport) -> u64,
);

impl Connection {
    /// CloudWatch-style figures of tunnel `index`.
    pub fn tunnel_report(&self, index: usize) -> Option<TunnelReport> {
        let tunnel = self.tunnels.get(index)?;
        let m = tunnel.metrics();
        let accepted_routes = self
            .routes
            .iter()
            .filter(|r| {
                r.tunnel == index && matches!(r.origin, crate::route::RouteOrigin::Bgp { .. })
            })
            .count();
        Some(TunnelReport {
            tunnel_state: u8::from(self.healthy(index)),
            tunnel_data_in: m.data_in_bytes,
            tunnel_data_out: m.data_out_bytes,
            packets_in: m.packets_in,
            packets_out: m.packets_out,
            drops_in: m.drops_unknown_peer
                + m.drops_unknown_spi
                + m.drops_replay
                + m.drops_icv
                + m.drops_malformed
                + m.drops_traffic_selectors
                + m.drops_not_connected,
            accepted_routes,
            active: self.active == Some(index),
        })
    }

    /// All metrics in the Prometheus text exposition format, one sample per
    /// tunnel labelled `tunnel="1"`/`"2"`, plus the connection's counters.
    pub fn metrics_prometheus(&self, connection_name: &str) -> String {
        let mut out = String::new();
        let name = connection_name.replace(['\\', '"', '\n'], "_");
        let series: [Series; 7] = [
            (
                "vpn_tunnel_state",
                "gauge",
                "1 when the tunnel carries traffic",
                |r| u64::from(r.tunnel_state),
            ),
            (
                "vpn_tunnel_data_in_bytes_total",
                "counter",
                "bytes received after decryption",
                |r| r.tunnel_data_in,
            ),
            (
                "vpn_tunnel_data_out_bytes_total",
                "counter",
                "bytes sent before encryption",
                |r| r.tunnel_data_out,
            ),
            (
                "vpn_tunnel_packets_in_total",
                "counter",
                "packets received",
                |r| r.packets_in,
            ),
            (
                "vpn_tunnel_packets_out_total",
                "counter",
                "packets sent",
                |r| r.packets_out,
            ),
            (
                "vpn_tunnel_drops_in_total",
                "counter",
                "inbound packets dropped",
                |r| r.drops_in,
            ),
            (
                "vpn_tunnel_accepted_routes",
                "gauge",
                "routes learned through the tunnel",
                |r| r.accepted_routes as u64,
            ),
        ];
        for (metric, kind, help, value) in series {
            let _ = writeln!(out, "# HELP {metric} {help}\n# TYPE {metric} {kind}");
            for index in 0..self.tunnels.len() {
                if let Some(report) = self.tunnel_report(index) {
                    let _ = writeln!(
                        out,
                        "{metric}{{connection=\"{name}\",tunnel=\"{}\"}} {}",
                        index + 1,
                        value(&report)
                    );
                }
            }
        }
        let m = &self.metrics;
        for (metric, help, value) in [
            (
                "vpn_connection_failovers_total",
                "changes of the active tunnel after the first",
                m.failovers,
            ),
            (
                "vpn_connection_drops_no_route_total",
                "inner packets without a route",
                m.drops_no_route,
            ),
            (
                "vpn_connection_drops_too_big_total",
                "inner packets over the tunnel MTU",
                m.drops_too_big,
            ),
            (
                "vpn_connection_mss_clamped_total",
                "TCP SYNs whose MSS was lowered",
                m.mss_clamped,
            ),
        ] {
            let _ = writeln!(
                out,
                "# HELP {metric} {help}\n# TYPE {metric} counter\n{metric}{{connection=\"{name}\"}} {value}"
            );
        }
        out
    }

    /// Whether any tunnel is up (AWS: the connection is "UP" when one is).
    pub fn is_up(&self) -> bool {
        self.tunnels.iter().any(|t| t.state() == TunnelState::Up)
    }
}
