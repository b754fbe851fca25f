//! `vpn.Connection`: the VPN connection (two redundant tunnels, routing,
//! failover) driven sans-IO from Python.
//!
//! Thin: arguments are converted, `now_ns` defaults to `time.monotonic_ns()`,
//! the core's errors map onto the `vpn.VpnError` hierarchy, and everything
//! else is `vpn_core::connection::Connection`.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Mutex, PoisonError};

use pyo3::prelude::*;
use pyo3::sync::GILOnceCell;
use pyo3::types::{PyBytes, PyDict, PyType};
use vpn_core::config::ConnectionConfig;
use vpn_core::connection::{
    BgpEvent, Connection as CoreConnection, ConnectionError, ConnectionEvent, RekeyKind,
    ReplaceError, SendError, SendOutcome,
};
use vpn_core::entropy::OsEntropy;
use vpn_core::tunnel::{
    DropReason, Received as CoreReceived, TunnelError, TunnelEvent, TunnelState,
};

use crate::{config, esp_err, exceptions, new_exception_type, now, raise, Input};

/// Largest UDP payload a connection emits.
const MAX_DATAGRAM: usize = 65535;

/// The connection's own exception classes (subclasses of `vpn.VpnError`).
pub(crate) struct ConnectionExceptions {
    pub(crate) no_route: Py<PyType>,
    pub(crate) too_big: Py<PyType>,
    pub(crate) not_connected: Py<PyType>,
}

static CONNECTION_EXCEPTIONS: GILOnceCell<ConnectionExceptions> = GILOnceCell::new();

pub(crate) fn connection_exceptions(py: Python<'_>) -> PyResult<&ConnectionExceptions> {
    CONNECTION_EXCEPTIONS.get_or_try_init(py, || {
        let base = exceptions(py)?.base.bind(py).clone();
        let sub = |name: &str, doc: &str| new_exception_type(py, name, doc, vec![base.clone()]);
        Ok::<_, PyErr>(ConnectionExceptions {
            no_route: sub(
                "NoRouteError",
                "No tunnel that is up routes the inner packet's destination.",
            )?,
            too_big: sub(
                "PacketTooBigError",
                "The inner packet exceeds the tunnel MTU; `mtu` says by how much.",
            )?,
            not_connected: sub("TunnelNotUpError", "The tunnel is not up.")?,
        })
    })
}

fn tunnel_err(py: Python<'_>, e: TunnelError) -> PyErr {
    match e {
        TunnelError::NotConnected => match connection_exceptions(py) {
            Ok(ex) => raise(py, &ex.not_connected, e.to_string()),
            Err(err) => err,
        },
        TunnelError::Esp(e) => esp_err(py, e),
        // InvalidSettings, and any variant the core adds later.
        #[allow(unreachable_patterns)]
        other => config::binding_error(py, other.to_string()),
    }
}

fn send_err(py: Python<'_>, e: SendError) -> PyErr {
    let ex = match connection_exceptions(py) {
        Ok(ex) => ex,
        Err(err) => return err,
    };
    let msg = e.to_string();
    match e {
        SendError::NotIp => esp_err(py, vpn_core::esp::EspError::UnsupportedInnerPacket),
        SendError::NoRoute(_) => raise(py, &ex.no_route, msg),
        SendError::TooBig { mtu, .. } => {
            let err = raise(py, &ex.too_big, msg);
            let _ = err.value(py).setattr("mtu", mtu);
            err
        }
        SendError::Tunnel { error, .. } => tunnel_err(py, error),
    }
}

/// A copy of a bytes-like argument.
fn bytes_arg(obj: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    let input = Input::new(obj)?;
    let (ptr, len) = input.raw();
    // SAFETY: `raw` gives the start and length of the argument's bytes,
    // valid while `input` lives and no Python code runs (none does here).
    Ok(unsafe { core::slice::from_raw_parts(ptr, len) }.to_vec())
}

fn socket_addr(addr: (String, u16)) -> PyResult<SocketAddr> {
    let ip: IpAddr = addr
        .0
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .map_err(|_| {
            pyo3::exceptions::PyValueError::new_err(format!("not an IP address: {:?}", addr.0))
        })?;
    Ok(SocketAddr::new(ip, addr.1))
}

fn addr_tuple(a: SocketAddr) -> (String, u16) {
    (a.ip().to_string(), a.port())
}

fn state_name(s: TunnelState) -> &'static str {
    match s {
        TunnelState::Down => "down",
        TunnelState::Connecting => "connecting",
        TunnelState::Up => "up",
    }
}

/// What a received datagram turned out to be.
#[pyclass(module = "vpn", name = "Received", frozen, get_all)]
#[derive(Debug)]
pub struct Received {
    /// "inner" (a decrypted inner packet), "control" (IKE, keepalive, BGP)
    /// or "dropped".
    kind: &'static str,
    /// The tunnel whose peer sent it (0 or 1), or None.
    tunnel: Option<usize>,
    /// With "inner": the inner IP packet.
    inner: Option<Py<PyBytes>>,
    /// With "dropped": "unknown_peer", "unknown_spi", "esp: <error>",
    /// "outside_traffic_selectors", "not_connected" or "garbage".
    reason: Option<String>,
}

#[pymethods]
impl Received {
    fn __repr__(&self) -> String {
        format!(
            "Received(kind={:?}, tunnel={:?}, reason={:?})",
            self.kind, self.tunnel, self.reason
        )
    }
}

/// A datagram to send over UDP (or, from `send_packet`, an ICMP reply).
#[pyclass(module = "vpn", name = "Transmit", frozen, get_all)]
#[derive(Debug)]
pub struct Transmit {
    /// The tunnel it belongs to; None for an ICMP reply.
    tunnel: Option<usize>,
    /// Send from this (address, port)...
    local: Option<(String, u16)>,
    /// ...to this (address, port).
    remote: Option<(String, u16)>,
    /// The UDP payload (or the ICMP packet).
    data: Py<PyBytes>,
    /// True when `send_packet` replaced a too-big packet (DF set, clear_df
    /// off) with an ICMP "fragmentation needed" for its sender: `data` goes
    /// back inside, not out.
    icmp_too_big: bool,
}

#[pymethods]
impl Transmit {
    fn __repr__(&self, py: Python<'_>) -> String {
        format!(
            "Transmit(tunnel={:?}, local={:?}, remote={:?}, len={}, icmp_too_big={})",
            self.tunnel,
            self.local,
            self.remote,
            self.data.bind(py).as_bytes().len(),
            if self.icmp_too_big { "True" } else { "False" }
        )
    }
}

/// Something that happened to the connection.
#[pyclass(module = "vpn", name = "ConnectionEvent", frozen, get_all)]
#[derive(Clone, Debug)]
pub struct Event {
    /// "tunnel_state_changed", "tunnel_down", "ike_sa_established",
    /// "child_sa_installed", "tunnel_other", "active_tunnel_changed" or "bgp".
    kind: &'static str,
    /// The tunnel concerned (the new active one for
    /// "active_tunnel_changed"), or None.
    tunnel: Option<usize>,
    /// "active_tunnel_changed": the previous active tunnel, or None.
    from_tunnel: Option<usize>,
    /// "tunnel_state_changed": "down", "connecting" or "up".
    state: Option<&'static str>,
    /// One line for a log (tunnels numbered from 1, as AWS does).
    text: String,
}

#[pymethods]
impl Event {
    fn __repr__(&self) -> String {
        format!(
            "ConnectionEvent(kind={:?}, tunnel={:?}, text={:?})",
            self.kind, self.tunnel, self.text
        )
    }
}

fn event(e: &ConnectionEvent) -> Event {
    let mut out = Event {
        kind: "tunnel_other",
        tunnel: None,
        from_tunnel: None,
        state: None,
        text: vpn_core::sim::describe(e),
    };
    match e {
        ConnectionEvent::Tunnel { tunnel, event } => {
            out.tunnel = Some(*tunnel);
            out.kind = match event {
                TunnelEvent::StateChanged { to, .. } => {
                    out.state = Some(state_name(*to));
                    "tunnel_state_changed"
                }
                TunnelEvent::Down { .. } => "tunnel_down",
                TunnelEvent::IkeSaEstablished { .. } => "ike_sa_established",
                TunnelEvent::ChildSaInstalled { .. } => "child_sa_installed",
                _ => "tunnel_other",
            };
        }
        ConnectionEvent::ActiveTunnelChanged { from, to } => {
            out.kind = "active_tunnel_changed";
            out.tunnel = *to;
            out.from_tunnel = *from;
        }
        ConnectionEvent::Bgp(b) => {
            out.kind = "bgp";
            out.tunnel = Some(match b {
                BgpEvent::Session { tunnel, .. }
                | BgpEvent::RouteAdded { tunnel, .. }
                | BgpEvent::RouteRemoved { tunnel, .. }
                | BgpEvent::OutboundCapReached { tunnel, .. } => *tunnel,
            });
        }
    }
    out
}

/// A site-to-site VPN connection: two redundant IPsec tunnels (IKEv2), their
/// routes and failover, sans-IO. Feed it UDP datagrams
/// (`handle_datagram`), inner packets (`send_packet`) and time
/// (`handle_timeout`); after each input send what `poll_transmit` returns
/// until None, read `poll_events()`, and call `handle_timeout` at
/// `poll_timeout()`. Every time-taking method has `now_ns` defaulting to
/// `time.monotonic_ns()`.
#[pyclass(module = "vpn", name = "Connection")]
pub struct Connection {
    /// A mutex only to make the class `Sync`; `&mut self` methods reach it
    /// without locking.
    inner: Mutex<CoreConnection>,
    scratch: Vec<u8>,
}

impl Connection {
    fn conn(&mut self) -> &mut CoreConnection {
        self.inner.get_mut().unwrap_or_else(PoisonError::into_inner)
    }

    fn with<T>(&self, f: impl FnOnce(&CoreConnection) -> T) -> T {
        f(&self.inner.lock().unwrap_or_else(PoisonError::into_inner))
    }

    fn report(&self, py: Python<'_>, index: usize) -> PyResult<Option<Py<PyDict>>> {
        let Some(r) = self.with(|c| c.tunnel_report(index)) else {
            return Ok(None);
        };
        let d = PyDict::new(py);
        d.set_item("TunnelState", r.tunnel_state)?;
        d.set_item("TunnelDataIn", r.tunnel_data_in)?;
        d.set_item("TunnelDataOut", r.tunnel_data_out)?;
        d.set_item("PacketsIn", r.packets_in)?;
        d.set_item("PacketsOut", r.packets_out)?;
        d.set_item("DropsIn", r.drops_in)?;
        d.set_item("AcceptedRoutes", r.accepted_routes)?;
        d.set_item("Active", r.active)?;
        Ok(Some(d.unbind()))
    }
}

#[pymethods]
impl Connection {
    /// The connection a `vpn.Config` describes. The configuration is
    /// validated first: `vpn.ConfigError` (with `.field` and `.errors`) when
    /// it breaks a rule. Randomness comes from the OS CSPRNG.
    #[staticmethod]
    #[pyo3(signature = (config, now_ns = None))]
    fn from_config(
        py: Python<'_>,
        config: &Bound<'_, config::Config>,
        now_ns: Option<u64>,
    ) -> PyResult<Connection> {
        let now = now(py, now_ns)?;
        // The configuration through its JSON form (`Config` keeps its
        // fields to itself); the text holds the PSKs and is wiped.
        let text = zeroize::Zeroizing::new(config.call_method0("to_json")?.extract::<String>()?);
        let cfg =
            ConnectionConfig::from_json(&text).map_err(|e| config::config_errors(py, &[e]))?;
        let conn = CoreConnection::from_config(&cfg, now, &mut OsEntropy).map_err(|e| match e {
            ConnectionError::InvalidConfig(errors) => config::config_errors(py, &errors),
            other => config::binding_error(py, other.to_string()),
        })?;
        Ok(Connection {
            inner: Mutex::new(conn),
            scratch: Vec::new(),
        })
    }

    /// Brings up every tunnel the operator wants up (an initiating end
    /// starts IKE; a responding end listens).
    #[pyo3(signature = (now_ns = None))]
    fn connect(&mut self, py: Python<'_>, now_ns: Option<u64>) -> PyResult<()> {
        let now = now(py, now_ns)?;
        self.conn()
            .connect(now, &mut OsEntropy)
            .map_err(|e| tunnel_err(py, e))
    }

    /// Administratively brings tunnel `tunnel` (0 or 1) up or down; traffic
    /// fails over. `IndexError` for an unknown tunnel.
    #[pyo3(signature = (tunnel, up, now_ns = None))]
    fn set_tunnel_admin_up(
        &mut self,
        py: Python<'_>,
        tunnel: usize,
        up: bool,
        now_ns: Option<u64>,
    ) -> PyResult<()> {
        let now = now(py, now_ns)?;
        if tunnel >= self.conn().tunnel_count() {
            return Err(pyo3::exceptions::PyIndexError::new_err(format!(
                "no tunnel {tunnel}"
            )));
        }
        self.conn()
            .set_tunnel_admin_up(now, tunnel, up, &mut OsEntropy)
            .map_err(|e| tunnel_err(py, e))
    }

    /// Renews tunnel `tunnel`'s child SA now (its IKE SA with `ike=True`),
    /// as `swanctl --rekey` does. A tunnel without that SA ignores it.
    /// `IndexError` for an unknown tunnel.
    #[pyo3(signature = (tunnel, ike = false, now_ns = None))]
    fn rekey_tunnel(
        &mut self,
        py: Python<'_>,
        tunnel: usize,
        ike: bool,
        now_ns: Option<u64>,
    ) -> PyResult<()> {
        let now = now(py, now_ns)?;
        if tunnel >= self.conn().tunnel_count() {
            return Err(pyo3::exceptions::PyIndexError::new_err(format!(
                "no tunnel {tunnel}"
            )));
        }
        let kind = if ike {
            RekeyKind::Ike
        } else {
            RekeyKind::Child
        };
        self.conn().rekey_tunnel(now, tunnel, kind);
        Ok(())
    }

    /// Replaces the running configuration, as AWS's ModifyVpnTunnelOptions
    /// does: only tunnels whose options changed restart (the other keeps
    /// carrying traffic); static routes, prefixes announced over BGP and
    /// failover and packet options apply at once. Returns what changed:
    /// `{"tunnels_restarted": [...], "failed_to_start": {tunnel: message},
    /// "routes_changed": bool, "policy_changed": bool,
    /// "advertised_changed": bool}`. Nothing changes on error:
    /// `vpn.ConfigError` for an invalid configuration, `vpn.VpnError` for a
    /// routing or role change (those need a new connection).
    #[pyo3(signature = (config, now_ns = None))]
    fn replace_config<'py>(
        &mut self,
        py: Python<'py>,
        config: &Bound<'py, config::Config>,
        now_ns: Option<u64>,
    ) -> PyResult<Bound<'py, PyDict>> {
        let now = now(py, now_ns)?;
        let text = zeroize::Zeroizing::new(config.call_method0("to_json")?.extract::<String>()?);
        let cfg =
            ConnectionConfig::from_json(&text).map_err(|e| config::config_errors(py, &[e]))?;
        let change = self
            .conn()
            .replace_config(now, &cfg, &mut OsEntropy)
            .map_err(|e| match e {
                ReplaceError::Invalid(ConnectionError::InvalidConfig(errors)) => {
                    config::config_errors(py, &errors)
                }
                other => config::binding_error(py, other.to_string()),
            })?;
        let out = PyDict::new(py);
        out.set_item("tunnels_restarted", change.tunnels_restarted.clone())?;
        let failed = PyDict::new(py);
        for (tunnel, error) in &change.failed_to_start {
            failed.set_item(tunnel, error.to_string())?;
        }
        out.set_item("failed_to_start", failed)?;
        out.set_item("routes_changed", change.routes_changed)?;
        out.set_item("policy_changed", change.policy_changed)?;
        out.set_item("advertised_changed", change.advertised_changed)?;
        Ok(out)
    }

    /// Handles a UDP datagram received on `local` = (address, port) from
    /// `remote`. Never raises for what the datagram holds: a rejected one is
    /// `Received(kind="dropped", reason=...)`.
    #[pyo3(signature = (local, remote, data, now_ns = None))]
    fn handle_datagram(
        &mut self,
        py: Python<'_>,
        local: (String, u16),
        remote: (String, u16),
        data: &Bound<'_, PyAny>,
        now_ns: Option<u64>,
    ) -> PyResult<Received> {
        let now = now(py, now_ns)?;
        let (local, remote) = (socket_addr(local)?, socket_addr(remote)?);
        let mut buf = bytes_arg(data)?;
        let (tunnel, received) = self.conn().handle_datagram(now, local, remote, &mut buf);
        let mut r = Received {
            kind: "control",
            tunnel,
            inner: None,
            reason: None,
        };
        match received {
            CoreReceived::Inner { range } => {
                r.kind = "inner";
                r.inner = Some(PyBytes::new(py, &buf[range]).unbind());
            }
            CoreReceived::Control => {}
            CoreReceived::Dropped(reason) => {
                r.kind = "dropped";
                r.reason = Some(match reason {
                    DropReason::UnknownPeer => "unknown_peer".to_owned(),
                    DropReason::UnknownSpi => "unknown_spi".to_owned(),
                    DropReason::Esp(e) => format!("esp: {e}"),
                    DropReason::OutsideTrafficSelectors => "outside_traffic_selectors".to_owned(),
                    DropReason::NotConnected => "not_connected".to_owned(),
                    DropReason::Garbage => "garbage".to_owned(),
                });
            }
        }
        Ok(r)
    }

    /// Routes an inner IP packet into a tunnel and seals it: the `Transmit`
    /// to send, or None when the packet was over the MTU and fragmented
    /// before encryption (the sealed fragments come from `poll_transmit`). Raises `vpn.NoRouteError` (no tunnel up routes it),
    /// `vpn.PacketTooBigError`, `vpn.MalformedPacketError` (not IPv4/IPv6),
    /// `vpn.TunnelNotUpError`, ESP errors. A too-big packet with DF set (and
    /// `clear_df` off) comes back as a `Transmit` with `icmp_too_big`.
    #[pyo3(signature = (inner, now_ns = None))]
    fn send_packet(
        &mut self,
        py: Python<'_>,
        inner: &Bound<'_, PyAny>,
        now_ns: Option<u64>,
    ) -> PyResult<Option<Transmit>> {
        let now = now(py, now_ns)?;
        let inner = bytes_arg(inner)?;
        let inner = &inner[..];
        let conn = self.conn();
        let head = conn.headroom();
        let mut buf = vec![0u8; head + inner.len() + conn.tailroom()];
        buf[head..head + inner.len()].copy_from_slice(inner);
        match conn
            .send_packet(now, &mut buf, inner.len())
            .map_err(|e| send_err(py, e))?
        {
            SendOutcome::Sent { tunnel, transmit } => Ok(Some(Transmit {
                tunnel: Some(tunnel),
                local: Some(addr_tuple(transmit.local)),
                remote: Some(addr_tuple(transmit.remote)),
                data: PyBytes::new(py, &buf[..transmit.len]).unbind(),
                icmp_too_big: false,
            })),
            SendOutcome::Fragmented { .. } => Ok(None),
            SendOutcome::IcmpTooBig { len } => Ok(Some(Transmit {
                tunnel: None,
                local: None,
                remote: None,
                data: PyBytes::new(py, &buf[..len]).unbind(),
                icmp_too_big: true,
            })),
        }
    }

    /// The next datagram the connection wants sent (IKE, keepalives, BGP),
    /// or None.
    fn poll_transmit(&mut self, py: Python<'_>) -> Option<Transmit> {
        let mut scratch = core::mem::take(&mut self.scratch);
        scratch.resize(MAX_DATAGRAM, 0);
        let t = self
            .conn()
            .poll_transmit(&mut scratch)
            .map(|(tunnel, tx)| Transmit {
                tunnel: Some(tunnel),
                local: Some(addr_tuple(tx.local)),
                remote: Some(addr_tuple(tx.remote)),
                data: PyBytes::new(py, &scratch[..tx.len]).unbind(),
                icmp_too_big: false,
            });
        self.scratch = scratch;
        t
    }

    /// Every event since the last call, oldest first.
    fn poll_events(&mut self) -> Vec<Event> {
        let mut out = Vec::new();
        while let Some(e) = self.conn().poll_event() {
            out.push(event(&e));
        }
        out
    }

    /// The next deadline (nanoseconds, same clock as `now_ns`), or None.
    fn poll_timeout(&self) -> Option<u64> {
        self.with(|c| c.poll_timeout().map(|t| t.as_nanos()))
    }

    /// Fires whatever is due (retransmits, DPD, rekeys, failback); early or
    /// repeated calls are harmless.
    #[pyo3(signature = (now_ns = None))]
    fn handle_timeout(&mut self, py: Python<'_>, now_ns: Option<u64>) -> PyResult<()> {
        let now = now(py, now_ns)?;
        self.conn().handle_timeout(now);
        Ok(())
    }

    /// The tunnel carrying traffic (0 or 1), or None.
    #[getter]
    fn active_tunnel(&self) -> Option<usize> {
        self.with(CoreConnection::active_tunnel)
    }

    /// How many tunnels (2).
    #[getter]
    fn tunnel_count(&self) -> usize {
        self.with(CoreConnection::tunnel_count)
    }

    /// Tunnel `tunnel`'s IPsec state: "down", "connecting" or "up".
    fn tunnel_state(&self, tunnel: usize) -> PyResult<&'static str> {
        self.with(|c| c.tunnel(tunnel).map(|t| state_name(t.state())))
            .ok_or_else(|| pyo3::exceptions::PyIndexError::new_err(format!("no tunnel {tunnel}")))
    }

    /// Tunnel `tunnel`'s figures under CloudWatch's names (`TunnelState`,
    /// `TunnelDataIn`, `TunnelDataOut`) and `PacketsIn`, `PacketsOut`,
    /// `DropsIn`, `AcceptedRoutes`, `Active`.
    fn tunnel_report(&self, py: Python<'_>, tunnel: usize) -> PyResult<Py<PyDict>> {
        self.report(py, tunnel)?
            .ok_or_else(|| pyo3::exceptions::PyIndexError::new_err(format!("no tunnel {tunnel}")))
    }

    /// Every tunnel's `tunnel_report`, keyed by tunnel index.
    fn metrics(&self, py: Python<'_>) -> PyResult<Py<PyDict>> {
        let d = PyDict::new(py);
        for i in 0..self.tunnel_count() {
            if let Some(r) = self.report(py, i)? {
                d.set_item(i, r)?;
            }
        }
        Ok(d.unbind())
    }

    /// Every metric in the Prometheus text format, labelled
    /// `connection="<name>"` and `tunnel="1"`/`"2"`.
    fn metrics_prometheus(&self, name: &str) -> String {
        self.with(|c| c.metrics_prometheus(name))
    }

    fn __repr__(&self) -> String {
        self.with(|c| {
            let states: Vec<&str> = (0..c.tunnel_count())
                .filter_map(|i| c.tunnel(i).map(|t| state_name(t.state())))
                .collect();
            format!(
                "Connection(tunnels={states:?}, active_tunnel={:?})",
                c.active_tunnel()
            )
        })
    }
}
