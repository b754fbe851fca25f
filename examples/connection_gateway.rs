//! A real-socket customer gateway for a whole VPN connection: both tunnels
//! of a [`Connection`] from vpn-core, driven by UDP sockets on ports 500 and
//! 4500 of one outside address (as a customer gateway has) and a TUN device
//! for inner traffic.
//!
//! ```text
//! sudo target/release/examples/connection_gateway --config cgw.toml
//! ```
//!
//! `cgw.toml` (paths relative to its directory):
//!
//! ```toml
//! connection = "aws-vpn-connection.xml"  # a ConnectionConfig: TOML, JSON or AWS XML
//! start = true                           # connect both tunnels at start (default)
//! # Optional overrides applied to the imported configuration, before validation:
//! ike_version = 2                        # on both tunnels
//! dpd_interval = 2                       # seconds, both tunnels
//! dpd_timeout = 30
//! static_routes = ["10.2.0.0/24"]        # replaces the routing with static routes
//!
//! [tun]
//! name = "vpn0"
//! address = "10.1.0.1/32"
//! routes = ["10.2.0.0/24"]               # routed into the TUN
//! # mtu = 1436                           # default: the connection's MTU
//! ```
//!
//! Thin on purpose (same loop shape as `gateway.rs`): every protocol and
//! routing decision is the connection's. The program moves bytes between the
//! kernel and the connection, keeps time and talks to its supervisor:
//! - stdout, one JSON object per line: `ready` (once sockets and TUN exist),
//!   `event` (`tunnel`: 1-based tunnel number or null, `kind`: the event
//!   variant in snake_case, `text`: [`describe`]'s line, and `state` for a
//!   tunnel state change), `active_tunnel` (`from`, `to`: 1-based or null),
//!   `status` (on request), `error` (`message`), `stopped` last;
//! - stdin, JSON commands one per line: `{"cmd":"status"}`,
//!   `{"cmd":"connect"}`, `{"cmd":"tunnel","tunnel":1,"up":false}`
//!   (administratively down/up, 1-based), `{"cmd":"rekey","tunnel":1}`
//!   (the child SA now; `"ike":true` for the IKE SA),
//!   `{"cmd":"replace","connection":"new.json"}` (a new configuration with
//!   the same overrides, applied by `Connection::replace_config`; answered by
//!   `replaced` with the 1-based tunnels restarted);
//! - stderr: logs;
//! - SIGTERM / SIGINT: every tunnel is closed (IKE DELETEs), the sockets are
//!   served until all are down (at most 2 s), `stopped`, exit 0; a second
//!   signal stops at once.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Value};
use tokio::io::AsyncBufReadExt;
use tokio::signal::unix::{signal, SignalKind};
use vpn_core::config::{ConnectionConfig, Prefix, Routing};
use vpn_core::connection::{Connection, ConnectionEvent, RekeyKind, SendError, SendOutcome};
use vpn_core::entropy::OsEntropy;
use vpn_core::sim::describe;
use vpn_core::tunnel::{Received, TunnelError, TunnelEvent, TunnelState, NAT_T_PORT};
use vpn_examples::support::{self, run_with_config, Clock, IkeSockets, IKE_PORT};

/// Datagrams handled per readiness wake-up of one source.
const BATCH: usize = 64;
/// Largest UDP payload or TUN packet we can be handed.
const MAX_PACKET: usize = 65_535;
/// How long a graceful stop waits for the tunnels to close.
const STOP_LINGER: Duration = Duration::from_secs(2);

// ------------------------------------------------------------------ config

/// The program's own configuration file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProgramConfig {
    /// The connection configuration (TOML, JSON or AWS XML), relative to this file.
    connection: PathBuf,
    #[serde(default = "yes")]
    start: bool,
    ike_version: Option<u8>,
    dpd_interval: Option<u32>,
    dpd_timeout: Option<u32>,
    static_routes: Option<Vec<Prefix>>,
    tun: TunConfig,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TunConfig {
    #[serde(default = "default_tun_name")]
    name: String,
    /// IPv4 `addr/len`.
    address: String,
    mtu: Option<u16>,
    #[serde(default)]
    routes: Vec<Prefix>,
}

fn yes() -> bool {
    true
}

fn default_tun_name() -> String {
    "vpn0".into()
}

/// Reads the program config and the connection config it names, applies the
/// overrides and validates the result.
fn load(path: &Path) -> Result<(ProgramConfig, ConnectionConfig), String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let program: ProgramConfig =
        toml::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    let conn_path = path
        .parent()
        .unwrap_or(Path::new("."))
        .join(&program.connection);
    let config = connection_config(&program, &conn_path)?;
    Ok((program, config))
}

/// The connection configuration at `path` (TOML, JSON or AWS XML) with the
/// program's overrides applied, validated.
fn connection_config(program: &ProgramConfig, path: &Path) -> Result<ConnectionConfig, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let trimmed = text.trim_start();
    let parsed = if trimmed.starts_with('<') {
        ConnectionConfig::from_aws_xml(&text)
    } else if trimmed.starts_with('{') {
        ConnectionConfig::from_json(&text)
    } else {
        ConnectionConfig::from_toml(&text)
    };
    let mut config = parsed.map_err(|e| format!("{}: {e}", path.display()))?;
    for t in &mut config.tunnels {
        if let Some(v) = program.ike_version {
            t.ike_version = v;
        }
        if let Some(s) = program.dpd_interval {
            t.dpd.interval = s;
        }
        if let Some(s) = program.dpd_timeout {
            t.dpd.timeout = s;
        }
    }
    if let Some(prefixes) = &program.static_routes {
        config.routing = Routing::Static {
            prefixes: prefixes.clone(),
        };
    }
    config.validate().map_err(|errors| {
        let all: Vec<String> = errors.iter().map(ToString::to_string).collect();
        format!("{}: {}", path.display(), all.join("; "))
    })?;
    Ok(config)
}

fn tun_address(tun: &TunConfig) -> Result<(Ipv4Addr, u8), String> {
    let bad = || {
        format!(
            "tun.address: expected IPv4 `addr/len`, got {:?}",
            tun.address
        )
    };
    let (addr, len) = match tun.address.split_once('/') {
        Some((a, l)) => (a, l.parse::<u8>().map_err(|_| bad())?),
        None => (tun.address.as_str(), 32),
    };
    let addr = addr.parse().map_err(|_| bad())?;
    if len > 32 {
        return Err(bad());
    }
    Ok((addr, len))
}

// ------------------------------------------------------------------ output

fn emit(event: &str, mut fields: Value) {
    use std::io::Write;
    if let Value::Object(map) = &mut fields {
        map.insert("event".into(), Value::from(event));
    }
    let mut out = std::io::stdout().lock();
    let _ = serde_json::to_writer(&mut out, &fields);
    let _ = out.write_all(b"\n");
    let _ = out.flush();
}

fn error(message: impl Into<String>) {
    let message = message.into();
    eprintln!("connection_gateway: error: {message}");
    emit("error", json!({ "message": message }));
}

/// `IkeSaEstablished { .. }` -> `ike_sa_established`.
fn snake_name(debug: &str) -> String {
    let mut out = String::new();
    for (i, c) in debug
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .enumerate()
    {
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

fn number(index: Option<usize>) -> Value {
    index.map_or(Value::Null, |i| Value::from(i + 1))
}

fn state_name(state: TunnelState) -> String {
    snake_name(&format!("{state:?}"))
}

fn log_rate_limited(count: u64, message: impl FnOnce() -> String) {
    support::log_rate_limited("connection_gateway", count, message);
}

// ------------------------------------------------------------------ main

fn main() -> ExitCode {
    run_with_config(
        "connection_gateway",
        load,
        |(program, config)| run(program, config),
        error,
    )
}

struct Gateway {
    /// The overrides applied to every configuration loaded.
    program: ProgramConfig,
    clock: Clock,
    connection: Connection,
    entropy: OsEntropy,
    tun: tun_rs::AsyncDevice,
    sockets: IkeSockets,
    local_ip: IpAddr,
    buf: Vec<u8>,
    control: Vec<u8>,
    send_errors: u64,
    tun_errors: u64,
    drops: u64,
}

async fn run(program: ProgramConfig, config: ConnectionConfig) -> Result<(), String> {
    let clock = Clock::start();
    let mut sigterm = signal(SignalKind::terminate()).map_err(|e| format!("SIGTERM: {e}"))?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(|e| format!("SIGINT: {e}"))?;
    let local_ip = config.tunnels[0].local_outside_address;
    if config
        .tunnels
        .iter()
        .any(|t| t.local_outside_address != local_ip)
    {
        return Err("the tunnels have different local outside addresses; \
                    this gateway has one outside address"
            .into());
    }
    let mut entropy = OsEntropy;
    let connection = Connection::from_config(&config, clock.now(), &mut entropy)
        .map_err(|e| format!("connection: {e}"))?;
    let mtu = program.tun.mtu.unwrap_or(config.mtu);
    let tun = open_tun(&program.tun, mtu)?;
    let sockets = IkeSockets::bind("connection_gateway", local_ip).await?;
    let (tun_name, tun_address, start) = (
        program.tun.name.clone(),
        program.tun.address.to_string(),
        program.start,
    );
    let mut gw = Gateway {
        program,
        clock,
        connection,
        entropy,
        tun,
        sockets,
        local_ip,
        buf: vec![0; MAX_PACKET + 1024],
        control: vec![0; MAX_PACKET],
        send_errors: 0,
        tun_errors: 0,
        drops: 0,
    };
    let remotes: Vec<String> = config
        .tunnels
        .iter()
        .map(|t| t.remote_outside_address.to_string())
        .collect();
    emit(
        "ready",
        json!({
            "name": config.name,
            "local": local_ip.to_string(),
            "remotes": remotes,
            "ports": [IKE_PORT, NAT_T_PORT],
            "tun": tun_name,
            "mtu": mtu,
            "routing": if config.routing.is_bgp() { "bgp" } else { "static" },
        }),
    );
    eprintln!(
        "connection_gateway {}: {local_ip} <-> {}, TUN {} ({}, MTU {mtu})",
        config.name,
        remotes.join(" / "),
        tun_name,
        tun_address
    );
    if start {
        gw.connect();
        gw.drain().await;
    }

    let mut stdin = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let mut stdin_open = true;
    let timer = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(timer);
    let mut stopping = false;
    let linger = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(linger);

    loop {
        if stopping && gw.all_down() {
            break;
        }
        let deadline = gw
            .connection
            .poll_timeout()
            .and_then(|t| gw.clock.instant(t));
        if let Some(at) = deadline {
            if at != timer.deadline() {
                timer.as_mut().reset(at);
            }
        }
        tokio::select! {
            _ = sigterm.recv() => if gw.begin_stop(&mut stopping, linger.as_mut()).await { break },
            _ = sigint.recv() => if gw.begin_stop(&mut stopping, linger.as_mut()).await { break },
            () = &mut linger, if stopping => {
                eprintln!("connection_gateway: tunnels did not close within {STOP_LINGER:?}; stopping anyway");
                break;
            }
            r = gw.sockets.nat_t.readable() => {
                r.map_err(|e| format!("UDP {NAT_T_PORT}: {e}"))?;
                gw.on_udp(NAT_T_PORT).await;
            }
            r = gw.sockets.ike.readable() => {
                r.map_err(|e| format!("UDP {IKE_PORT}: {e}"))?;
                gw.on_udp(IKE_PORT).await;
            }
            r = gw.tun.readable(), if !stopping => {
                r.map_err(|e| format!("TUN: {e}"))?;
                gw.on_tun().await;
            }
            () = &mut timer, if deadline.is_some() => {
                let now = gw.clock.now();
                gw.connection.handle_timeout(now);
                gw.drain().await;
            }
            line = stdin.next_line(), if stdin_open && !stopping => match line {
                Ok(Some(line)) => gw.command(&line).await,
                Ok(None) => stdin_open = false,
                Err(e) => {
                    error(format!("stdin: {e}"));
                    stdin_open = false;
                }
            },
        }
    }
    emit("stopped", gw.status());
    Ok(())
}

/// Creates the TUN device with its address, MTU and routes, and brings it up.
fn open_tun(config: &TunConfig, mtu: u16) -> Result<tun_rs::AsyncDevice, String> {
    let (addr, len) = tun_address(config)?;
    let name = &config.name;
    let tun = tun_rs::DeviceBuilder::new()
        .name(name)
        .ipv4(addr, len, None)
        .mtu(mtu)
        .enable(false)
        .build_async()
        .map_err(|e| format!("cannot create TUN {name}: {e}"))?;
    // IPv4 only: no router solicitations or MLD reports into the tunnels.
    let sysctl = format!("/proc/sys/net/ipv6/conf/{name}/disable_ipv6");
    if let Err(e) = std::fs::write(&sysctl, "1") {
        eprintln!("connection_gateway: cannot disable IPv6 on {name} ({sysctl}: {e})");
    }
    tun.enabled(true)
        .map_err(|e| format!("cannot bring TUN {name} up: {e}"))?;
    for prefix in &config.routes {
        let prefix = prefix.to_string();
        let status = std::process::Command::new("ip")
            .args(["route", "replace", &prefix, "dev", name])
            .status()
            .map_err(|e| format!("cannot run ip route: {e}"))?;
        if !status.success() {
            return Err(format!(
                "ip route replace {prefix} dev {name} failed ({status})"
            ));
        }
    }
    Ok(tun)
}

impl Gateway {
    fn all_down(&self) -> bool {
        (0..self.connection.tunnel_count()).all(|i| {
            self.connection
                .tunnel(i)
                .is_none_or(|t| t.state() == TunnelState::Down)
        })
    }

    /// Inner packets from the TUN: routed and sealed by the connection.
    async fn on_tun(&mut self) {
        for _ in 0..BATCH {
            let headroom = self.connection.headroom();
            let end = self.buf.len() - self.connection.tailroom();
            let n = match self.tun.try_recv(&mut self.buf[headroom..end]) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    self.tun_errors += 1;
                    log_rate_limited(self.tun_errors, || format!("TUN read: {e}"));
                    break;
                }
            };
            let now = self.clock.now();
            // Not one `match`: other outcomes (e.g. fragments sealed into the
            // connection's own queue) are sent by `drain` from `poll_transmit`.
            let outcome = self.connection.send_packet(now, &mut self.buf, n);
            if let Ok(SendOutcome::Sent { transmit, .. }) = outcome {
                self.sockets
                    .send(&transmit, &self.buf[..transmit.len], &mut self.send_errors)
                    .await;
            } else if let Ok(SendOutcome::IcmpTooBig { len }) = outcome {
                if let Err(e) = self.tun.send(&self.buf[..len]).await {
                    self.tun_errors += 1;
                    log_rate_limited(self.tun_errors, || format!("TUN write: {e}"));
                }
            } else if let Err(e) = outcome {
                // No route / tunnel not up: counted in the connection's metrics.
                let counted = matches!(
                    e,
                    SendError::NoRoute(_)
                        | SendError::Tunnel {
                            error: TunnelError::NotConnected,
                            ..
                        }
                );
                if !counted {
                    self.drops += 1;
                    log_rate_limited(self.drops, || format!("inner packet dropped: {e}"));
                }
            }
            self.drain().await;
        }
    }

    /// Datagrams from either peer: the connection finds the tunnel.
    async fn on_udp(&mut self, port: u16) {
        let local = SocketAddr::new(self.local_ip, port);
        for _ in 0..BATCH {
            let Some(socket) = self.sockets.by_port(port) else {
                return;
            };
            let (n, remote) = match socket.try_recv_from(&mut self.buf) {
                Ok(r) => r,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    self.send_errors += 1;
                    log_rate_limited(self.send_errors, || format!("UDP {port} receive: {e}"));
                    continue;
                }
            };
            let now = self.clock.now();
            let (_, received) =
                self.connection
                    .handle_datagram(now, local, remote, &mut self.buf[..n]);
            if let Received::Inner { range } = received {
                if let Err(e) = self.tun.send(&self.buf[range]).await {
                    self.tun_errors += 1;
                    log_rate_limited(self.tun_errors, || format!("TUN write: {e}"));
                }
            }
            self.drain().await;
        }
    }

    /// After any input: transmits, then events.
    async fn drain(&mut self) {
        while let Some((_, tx)) = self.connection.poll_transmit(&mut self.control) {
            self.sockets
                .send(&tx, &self.control[..tx.len], &mut self.send_errors)
                .await;
        }
        while let Some(event) = self.connection.poll_event() {
            report(&event);
        }
    }

    fn connect(&mut self) {
        let now = self.clock.now();
        if let Err(e) = self.connection.connect(now, &mut self.entropy) {
            error(format!("connect: {e}"));
        }
    }

    async fn begin_stop(
        &mut self,
        stopping: &mut bool,
        linger: std::pin::Pin<&mut tokio::time::Sleep>,
    ) -> bool {
        if *stopping {
            return true;
        }
        *stopping = true;
        linger.reset(tokio::time::Instant::now() + STOP_LINGER);
        let now = self.clock.now();
        for i in 0..self.connection.tunnel_count() {
            let _ = self
                .connection
                .set_tunnel_admin_up(now, i, false, &mut self.entropy);
        }
        self.drain().await;
        false
    }

    fn status(&self) -> Value {
        let tunnels: Vec<Value> = (0..self.connection.tunnel_count())
            .map(|i| {
                let state = self.connection.tunnel(i).map(|t| t.state());
                let report = self.connection.tunnel_report(i);
                json!({
                    "tunnel": i + 1,
                    "state": state.map(state_name),
                    "healthy": report.is_some_and(|r| r.tunnel_state == 1),
                    "packets_in": report.map(|r| r.packets_in),
                    "packets_out": report.map(|r| r.packets_out),
                    "bytes_in": report.map(|r| r.tunnel_data_in),
                    "bytes_out": report.map(|r| r.tunnel_data_out),
                })
            })
            .collect();
        let m = self.connection.metrics();
        json!({
            "active_tunnel": number(self.connection.active_tunnel()),
            "tunnels": tunnels,
            "failovers": m.failovers,
            "drops_no_route": m.drops_no_route,
        })
    }

    /// Applies a new configuration and reports what changed.
    fn replace(&mut self, config: &ConnectionConfig) {
        let now = self.clock.now();
        match self
            .connection
            .replace_config(now, config, &mut self.entropy)
        {
            Ok(change) => {
                let numbers = |tunnels: &mut dyn Iterator<Item = usize>| -> Vec<usize> {
                    tunnels.map(|t| t + 1).collect()
                };
                emit(
                    "replaced",
                    json!({
                        "tunnels_restarted": numbers(&mut change.tunnels_restarted.iter().copied()),
                        "failed_to_start": numbers(&mut change.failed_to_start.iter().map(|(t, _)| *t)),
                        "routes_changed": change.routes_changed,
                        "policy_changed": change.policy_changed,
                        "advertised_changed": change.advertised_changed,
                    }),
                );
            }
            Err(e) => error(format!("replace: {e}")),
        }
    }

    /// The command's 1-based `"tunnel"`, if it names one of ours.
    fn tunnel_arg(&self, cmd: &Value) -> Option<usize> {
        cmd.get("tunnel")
            .and_then(Value::as_u64)
            .and_then(|n| usize::try_from(n).ok())
            .filter(|&n| n >= 1 && n <= self.connection.tunnel_count())
    }

    async fn command(&mut self, line: &str) {
        let line = line.trim();
        if line.is_empty() {
            return;
        }
        let cmd: Value = match serde_json::from_str(line) {
            Ok(v) => v,
            Err(e) => return error(format!("command is not JSON: {e}")),
        };
        match cmd.get("cmd").and_then(Value::as_str) {
            Some("status") => emit("status", self.status()),
            Some("connect") => self.connect(),
            Some("tunnel") => {
                let (Some(n), Some(up)) = (
                    self.tunnel_arg(&cmd),
                    cmd.get("up").and_then(Value::as_bool),
                ) else {
                    return error("tunnel: needs \"tunnel\" (1-based) and \"up\" (bool)");
                };
                let now = self.clock.now();
                if let Err(e) =
                    self.connection
                        .set_tunnel_admin_up(now, n - 1, up, &mut self.entropy)
                {
                    error(format!("tunnel {n}: {e}"));
                }
            }
            Some("rekey") => {
                let Some(n) = self.tunnel_arg(&cmd) else {
                    return error(
                        "rekey: needs \"tunnel\" (1-based) and optionally \"ike\" (bool)",
                    );
                };
                let kind = if cmd.get("ike").and_then(Value::as_bool).unwrap_or(false) {
                    RekeyKind::Ike
                } else {
                    RekeyKind::Child
                };
                let now = self.clock.now();
                self.connection.rekey_tunnel(now, n - 1, kind);
            }
            Some("replace") => {
                let Some(path) = cmd.get("connection").and_then(Value::as_str) else {
                    return error("replace: needs \"connection\" (a configuration file)");
                };
                match connection_config(&self.program, Path::new(path)) {
                    Ok(config) => self.replace(&config),
                    Err(message) => error(format!("replace: {message}")),
                }
            }
            Some(other) => error(format!("unknown command {other:?}")),
            None => error("command without a \"cmd\" string"),
        }
        self.drain().await;
    }
}

/// One connection event as JSON line(s).
fn report(event: &ConnectionEvent) {
    let text = describe(event);
    eprintln!("connection_gateway: {text}");
    match event {
        ConnectionEvent::Tunnel { tunnel, event } => {
            let mut fields = json!({
                "tunnel": tunnel + 1,
                "kind": snake_name(&format!("{event:?}")),
                "text": text,
            });
            if let TunnelEvent::StateChanged { to, .. } = event {
                fields["state"] = Value::from(state_name(*to));
            }
            emit("event", fields);
        }
        ConnectionEvent::ActiveTunnelChanged { from, to } => {
            emit(
                "event",
                json!({ "tunnel": null, "kind": "active_tunnel_changed", "text": text }),
            );
            emit(
                "active_tunnel",
                json!({ "from": number(*from), "to": number(*to) }),
            );
        }
        ConnectionEvent::Bgp(_) => emit(
            "event",
            json!({ "tunnel": null, "kind": "bgp", "text": text }),
        ),
    }
}
