//! A real-socket site-to-site VPN gateway: one [`Tunnel`] from vpn-core driven
//! by UDP sockets on ports 500 and 4500 and a TUN device.
//!
//! ```text
//! sudo target/release/examples/gateway --config examples/gateway-manual-a.toml
//! ```
//!
//! The program is thin on purpose: every protocol decision is vpn-core's. It
//! only moves bytes between the kernel and the tunnel, keeps time, and talks to
//! its supervisor (the interop harness, `tests/interop/harness.py`, class
//! `_OurProgram`):
//! - stdout: one JSON object per line, `{"event":"ready"}` once the sockets are
//!   bound, then `tunnel_state`, `child_sa_installed`, `down`, `metrics`,
//!   `error`, ... and `stopped` last (see `gateway/output.rs`);
//! - stdin: JSON commands, one per line: `{"cmd":"initiate"}`,
//!   `{"cmd":"terminate"}`, `{"cmd":"metrics"}`, and with `[ikev2]` keying
//!   `{"cmd":"rekey_child"}`, `{"cmd":"rekey_ike"}`, `{"cmd":"delete_child"}`;
//! - stderr: logs, and a metrics summary every few seconds;
//! - SIGTERM / SIGINT: close the tunnel, send what that produces, keep
//!   serving the sockets until the tunnel is down (at most 2 s), print
//!   `stopped`, exit 0; a second signal stops at once.
//!
//! The data path allocates nothing per packet: a TUN read lands at
//! `buf[headroom..]` of one buffer that `send_inner` seals in place; a UDP
//! datagram is received into the same buffer, opened in place by
//! `handle_datagram`, and the inner packet is written to the TUN from there.

#[path = "gateway/config.rs"]
mod config;
#[path = "gateway/output.rs"]
mod output;

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use serde_json::json;
use tokio::io::AsyncBufReadExt;
use tokio::signal::unix::{signal, SignalKind};
use vpn_core::entropy::OsEntropy;
use vpn_core::tunnel::{Keying, Received, Tunnel, TunnelError, TunnelState, NAT_T_PORT};

use config::GatewayConfig;
use output::{emit, EventWriter, IoCounters};
use vpn_examples::support::{self, run_with_config, Clock, IkeSockets, IKE_PORT};

/// Datagrams handled per readiness wake-up of one source before the loop looks
/// at the others (fairness between the TUN, both sockets and the timer).
const BATCH: usize = 64;
/// Largest UDP payload or TUN packet we can be handed.
const MAX_PACKET: usize = 65_535;
/// How long a graceful stop waits for the tunnel to close.
const STOP_LINGER: Duration = Duration::from_secs(2);
/// How often the metrics line goes to stderr.
const STATS_EVERY: Duration = Duration::from_secs(5);

fn main() -> ExitCode {
    run_with_config("gateway", GatewayConfig::load, run, output::error)
}

fn log_rate_limited(count: u64, message: impl FnOnce() -> String) {
    support::log_rate_limited("gateway", count, message);
}

/// Everything the loop owns.
struct Gateway {
    clock: Clock,
    tunnel: Tunnel,
    entropy: OsEntropy,
    tun: tun_rs::AsyncDevice,
    sockets: IkeSockets,
    local_ip: IpAddr,
    /// The data path's one buffer (TUN -> seal -> UDP, UDP -> open -> TUN).
    buf: Vec<u8>,
    /// Control datagrams from `poll_transmit`.
    control: Vec<u8>,
    io: IoCounters,
    events: EventWriter,
}

async fn run(config: GatewayConfig) -> Result<(), String> {
    let clock = Clock::start();
    // Before anything is announced: a supervisor may signal right after `ready`.
    let mut sigterm = signal(SignalKind::terminate()).map_err(|e| format!("SIGTERM: {e}"))?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(|e| format!("SIGINT: {e}"))?;
    let settings = config.tunnel_settings()?;
    let tunnel = Tunnel::new(settings, clock.now()).map_err(|e| format!("tunnel: {e}"))?;
    let tun = open_tun(&config)?;
    let sockets = IkeSockets::bind("gateway", config.outside.local).await?;
    let mut gw = Gateway {
        clock,
        tunnel,
        entropy: OsEntropy,
        tun,
        sockets,
        local_ip: config.outside.local,
        buf: vec![0; MAX_PACKET + 1024],
        control: vec![0; MAX_PACKET],
        io: IoCounters::default(),
        events: EventWriter::default(),
    };
    emit(
        "ready",
        json!({
            "name": config.name,
            "local": config.outside.local.to_string(),
            "remote": config.outside.remote.to_string(),
            "ports": [IKE_PORT, NAT_T_PORT],
            "tun": config.tun.name,
            "mtu": config.tun.mtu,
        }),
    );
    eprintln!(
        "gateway {}: {} <-> {}, TUN {} ({}, MTU {})",
        config.name,
        config.outside.local,
        config.outside.remote,
        config.tun.name,
        config.tun.address,
        config.tun.mtu
    );
    if config.start {
        gw.initiate();
        gw.drain().await;
    }

    let mut stdin = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let mut stdin_open = true;
    let mut stats =
        tokio::time::interval_at(tokio::time::Instant::now() + STATS_EVERY, STATS_EVERY);
    stats.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let timer = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(timer);

    // Set by the first SIGTERM/SIGINT: the tunnel is closing, and the loop goes
    // on (for IKE: DELETE retransmits and its response) until it is down or
    // until this instant. A second signal stops at once.
    let mut stopping: Option<tokio::time::Instant> = None;
    let linger = tokio::time::sleep(Duration::ZERO);
    tokio::pin!(linger);

    loop {
        if stopping.is_some() && gw.tunnel.state() == TunnelState::Down {
            break;
        }
        let deadline = gw.tunnel.poll_timeout().and_then(|t| gw.clock.instant(t));
        if let Some(at) = deadline {
            if at != timer.deadline() {
                timer.as_mut().reset(at);
            }
        }
        tokio::select! {
            _ = sigterm.recv() => if gw.begin_stop(&mut stopping, linger.as_mut()).await { break },
            _ = sigint.recv() => if gw.begin_stop(&mut stopping, linger.as_mut()).await { break },
            () = &mut linger, if stopping.is_some() => {
                eprintln!("gateway: the tunnel did not close within {STOP_LINGER:?}; stopping anyway");
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
            r = gw.tun.readable(), if stopping.is_none() => {
                r.map_err(|e| format!("TUN: {e}"))?;
                gw.on_tun().await;
            }
            () = &mut timer, if deadline.is_some() => {
                let now = gw.clock.now();
                gw.tunnel.handle_timeout(now);
                gw.drain().await;
            }
            line = stdin.next_line(), if stdin_open && stopping.is_none() => match line {
                Ok(Some(line)) => gw.command(&line).await,
                // No supervisor on stdin (EOF, e.g. </dev/null): keep running.
                Ok(None) => stdin_open = false,
                Err(e) => {
                    output::error(format!("stdin: {e}"));
                    stdin_open = false;
                }
            },
            _ = stats.tick() => eprintln!("{}", output::metrics_line(gw.tunnel.state(), gw.tunnel.metrics(), &gw.io)),
        }
    }

    eprintln!(
        "{}",
        output::metrics_line(gw.tunnel.state(), gw.tunnel.metrics(), &gw.io)
    );
    emit(
        "stopped",
        output::metrics_json(gw.tunnel.state(), gw.tunnel.metrics()),
    );
    Ok(())
}

/// Creates the TUN device with its address, MTU and routes, and brings it up.
fn open_tun(config: &GatewayConfig) -> Result<tun_rs::AsyncDevice, String> {
    let (addr, len) = config.tun_address()?;
    let name = &config.tun.name;
    let tun = tun_rs::DeviceBuilder::new()
        .name(name)
        .ipv4(addr, len, None)
        .mtu(config.tun.mtu)
        .enable(false)
        .build_async()
        .map_err(|e| format!("cannot create TUN {name}: {e}"))?;
    if !config.tun.ipv6 {
        // An IPv4-only TUN would still get an IPv6 link-local address, and the
        // kernel would send router solicitations and MLD reports into the tunnel.
        let sysctl = format!("/proc/sys/net/ipv6/conf/{name}/disable_ipv6");
        if let Err(e) = std::fs::write(&sysctl, "1") {
            eprintln!("gateway: cannot disable IPv6 on {name} ({sysctl}: {e})");
        }
    }
    tun.enabled(true)
        .map_err(|e| format!("cannot bring TUN {name} up: {e}"))?;
    for prefix in &config.tun.routes {
        let prefix = prefix.to_string();
        let status = std::process::Command::new("ip")
            .args(["route", "replace", &prefix, "dev", &config.tun.name])
            .status()
            .map_err(|e| format!("cannot run ip route: {e}"))?;
        if !status.success() {
            return Err(format!(
                "ip route replace {prefix} dev {} failed ({status})",
                config.tun.name
            ));
        }
    }
    Ok(tun)
}

impl Gateway {
    /// Inner packets from the TUN: seal in place, send to the peer.
    async fn on_tun(&mut self) {
        for _ in 0..BATCH {
            let headroom = self.tunnel.headroom();
            let end = self.buf.len() - self.tunnel.tailroom();
            let n = match self.tun.try_recv(&mut self.buf[headroom..end]) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    self.io.tun_errors += 1;
                    log_rate_limited(self.io.tun_errors, || format!("TUN read: {e}"));
                    break;
                }
            };
            let now = self.clock.now();
            match self.tunnel.send_inner(now, &mut self.buf, n) {
                Ok(tx) => {
                    self.sockets
                        .send(&tx, &self.buf[..tx.len], &mut self.io.send_errors)
                        .await
                }
                // Counted by the tunnel (drops_not_connected).
                Err(TunnelError::NotConnected) => {}
                Err(e) => {
                    self.io.seal_errors += 1;
                    log_rate_limited(self.io.seal_errors, || format!("inner packet dropped: {e}"));
                }
            }
            self.drain().await;
        }
    }

    /// Datagrams from the peer: open in place, inner packets to the TUN.
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
                    // E.g. ECONNREFUSED from an ICMP error: not fatal.
                    self.io.recv_errors += 1;
                    log_rate_limited(self.io.recv_errors, || format!("UDP {port} receive: {e}"));
                    continue;
                }
            };
            let now = self.clock.now();
            match self
                .tunnel
                .handle_datagram(now, local, remote, &mut self.buf[..n])
            {
                Received::Inner { range } => {
                    if let Err(e) = self.tun.send(&self.buf[range]).await {
                        self.io.tun_errors += 1;
                        log_rate_limited(self.io.tun_errors, || format!("TUN write: {e}"));
                    }
                }
                // Dropped datagrams are counted in the tunnel's metrics.
                Received::Control | Received::Dropped(_) => {}
            }
            self.drain().await;
        }
    }

    /// After any input: transmits, then events (the core's drain order).
    async fn drain(&mut self) {
        while let Some(tx) = self.tunnel.poll_transmit(&mut self.control) {
            self.sockets
                .send(&tx, &self.control[..tx.len], &mut self.io.send_errors)
                .await;
        }
        while let Some(event) = self.tunnel.poll_event() {
            self.events.tunnel_event(&event);
        }
    }

    /// A stop signal: the first closes the tunnel (its goodbye is sent by
    /// `drain`) and arms the linger timer; true when the loop should end now.
    async fn begin_stop(
        &mut self,
        stopping: &mut Option<tokio::time::Instant>,
        linger: std::pin::Pin<&mut tokio::time::Sleep>,
    ) -> bool {
        if stopping.is_some() {
            return true;
        }
        let until = tokio::time::Instant::now() + STOP_LINGER;
        *stopping = Some(until);
        linger.reset(until);
        let now = self.clock.now();
        self.tunnel.close(now);
        self.drain().await;
        false
    }

    fn initiate(&mut self) {
        let now = self.clock.now();
        if let Err(e) = self.tunnel.connect(now, &mut self.entropy) {
            output::error(format!("initiate: {e}"));
        }
    }

    /// One JSON command line from stdin.
    async fn command(&mut self, line: &str) {
        let line = line.trim();
        if line.is_empty() {
            return;
        }
        let cmd: serde_json::Value = match serde_json::from_str(line) {
            Ok(v) => v,
            Err(e) => return output::error(format!("command is not JSON: {e}")),
        };
        let Some(name) = cmd.get("cmd").and_then(|c| c.as_str()) else {
            return output::error("command without a \"cmd\" string");
        };
        match name {
            "initiate" => self.initiate(),
            "terminate" => {
                let now = self.clock.now();
                self.tunnel.close(now);
            }
            "metrics" => emit(
                "metrics",
                output::metrics_json(self.tunnel.state(), self.tunnel.metrics()),
            ),
            "rekey_child" | "rekey_ike" | "delete_child"
                if matches!(self.tunnel.settings().keying, Keying::Manual(_)) =>
            {
                output::error(format!("{name}: not supported with manual keying"))
            }
            "rekey_child" => {
                let now = self.clock.now();
                self.tunnel.rekey_child(now);
            }
            "rekey_ike" => {
                let now = self.clock.now();
                self.tunnel.rekey_ike(now);
            }
            "delete_child" => {
                let now = self.clock.now();
                self.tunnel.delete_child(now);
            }
            other => output::error(format!("unknown command {other:?}")),
        }
        self.drain().await;
    }
}
