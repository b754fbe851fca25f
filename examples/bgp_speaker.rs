//! A BGP speaker over real TCP: vpn-core's sans-IO [`Speaker`] driven by tokio
//! sockets, for interop with BIRD and other routers.
//!
//! ```text
//! sudo target/release/examples/bgp_speaker --config examples/bgp-speaker.toml
//! ```
//!
//! The program is thin on purpose: every BGP decision (FSM, collisions, timers,
//! RIB, policy, max-prefix) is vpn-core's. It only
//! - listens on TCP port 179 (each neighbour's local address, or `listen`) and
//!   connects when the speaker asks ([`Action::Connect`]), mapping each stream to
//!   `(PeerId, ConnectionId::{Outbound, Inbound})` (`bgp_speaker/net.rs`);
//! - applies TCP-MD5 on the listener (one key per peer address) and on outgoing
//!   sockets before connect (`bgp_speaker/md5.rs`);
//! - feeds bytes and timeouts from a monotonic clock, and drains transmits,
//!   actions and events after every input;
//! - talks to its supervisor (the interop harness, `tests/interop/harness.py`):
//!   JSON lines on stdout (`ready`, `bgp_state`, `established`, `down`,
//!   `route_added`/`route_changed`/`route_withdrawn`, ..., `stopped`; see
//!   `bgp_speaker/output.rs`), JSON commands on stdin (`{"cmd":"announce",
//!   "prefix":"10.0.0.0/24"}`, `withdraw`, `stop` [`peer`], `start` `peer`), logs on
//!   stderr;
//! - on SIGTERM/SIGINT (or `{"cmd":"stop"}`): Cease / Administrative Shutdown to
//!   every neighbour, lets the sockets flush (at most 2 s), prints `stopped`,
//!   exits 0.
//!
//! The configuration schema is in `bgp_speaker/config.rs`.

#[path = "bgp_speaker/config.rs"]
mod config;
#[path = "bgp_speaker/md5.rs"]
mod md5;
#[path = "bgp_speaker/net.rs"]
mod net;
#[path = "bgp_speaker/output.rs"]
mod output;

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::AsyncBufReadExt;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use vpn_core::bgp::session::{Action, ConnectionId};
use vpn_core::bgp::speaker::{PeerId, Speaker};
use vpn_core::bgp::wire::PathAttributes;
use vpn_core::entropy::OsEntropy;

use config::Config;
use net::{ConnHandle, Input, InputTx};
use output::{emit, Reporter};
use vpn_examples::support::{run_with_config, Clock};

/// How long a graceful stop waits for the sockets to flush.
const STOP_LINGER: Duration = Duration::from_secs(2);
/// Depth of the channel from the TCP tasks (back-pressure on fast peers).
const INPUT_QUEUE: usize = 256;

fn main() -> ExitCode {
    run_with_config("bgp_speaker", Config::load, run, output::error)
}

/// What the loop needs to know about a neighbour for TCP.
struct PeerTcp {
    address: IpAddr,
    local: IpAddr,
    password: Option<String>,
    connect_timeout: Duration,
    /// The connection attempt in progress (generation, task).
    connecting: Option<(u64, JoinHandle<()>)>,
    /// Established TCP connections by `ConnectionId` (Outbound, Inbound).
    conns: [Option<ConnHandle>; 2],
}

fn slot(c: ConnectionId) -> usize {
    match c {
        ConnectionId::Outbound => 0,
        ConnectionId::Inbound => 1,
    }
}

struct App {
    clock: Clock,
    speaker: Speaker,
    reporter: Reporter,
    peers: Vec<PeerTcp>,
    by_addr: HashMap<IpAddr, PeerId>,
    port: u16,
    next_gen: u64,
    /// Connection tasks flushing their last bytes.
    closing: Vec<JoinHandle<()>>,
    inputs: InputTx,
    buf: Vec<u8>,
}

async fn run(config: Config) -> Result<(), String> {
    let clock = Clock::start();
    let mut speaker = Speaker::new(config.speaker(), Box::new(OsEntropy));
    let (inputs, mut input_rx) = mpsc::channel::<Input>(INPUT_QUEUE);
    let mut peers = Vec::new();
    let mut names = Vec::new();
    let mut by_addr = HashMap::new();
    for n in &config.neighbors {
        let nc = n.neighbor_config(&config)?;
        if nc.session.is_ebgp() && (nc.import.is_none() || nc.export.is_none()) {
            eprintln!(
                "bgp_speaker: warning: neighbour {} has no import or export policy: \
                 nothing is accepted/announced there (RFC 8212); set import/export = \"all\"",
                n.name()
            );
        }
        let id = speaker
            .add_neighbor(nc)
            .map_err(|e| format!("neighbour {}: {e}", n.address))?;
        by_addr.insert(n.address, id);
        names.push((n.name(), n.address));
        peers.push(PeerTcp {
            address: n.address,
            local: n.local_address,
            password: n.password.clone(),
            connect_timeout: Duration::from_secs(n.connect_retry.max(1)),
            connecting: None,
            conns: [None, None],
        });
    }
    // Listeners, with every neighbour's TCP-MD5 key.
    let keys: Vec<(IpAddr, String)> = config
        .neighbors
        .iter()
        .filter_map(|n| Some((n.address, n.password.clone()?)))
        .collect();
    let listen = config.listen_addresses();
    for addr in &listen {
        let sa = SocketAddr::new(*addr, config.port);
        let listener = net::listen(sa, &keys).map_err(|e| format!("cannot listen on {sa}: {e}"))?;
        tokio::spawn(net::accept_loop(listener, inputs.clone()));
    }
    let mut sigterm = signal(SignalKind::terminate()).map_err(|e| format!("SIGTERM: {e}"))?;
    let mut sigint = signal(SignalKind::interrupt()).map_err(|e| format!("SIGINT: {e}"))?;

    for prefix in config.announced()? {
        speaker.announce(prefix, PathAttributes::default());
    }
    emit(
        "ready",
        json!({
            "asn": config.asn,
            "router_id": config.router_id.to_string(),
            "listen": listen.iter().map(|a| SocketAddr::new(*a, config.port).to_string()).collect::<Vec<_>>(),
            "neighbors": names.iter().map(|n| n.0.clone()).collect::<Vec<_>>(),
        }),
    );
    let mut app = App {
        clock,
        speaker,
        reporter: Reporter::new(names),
        peers,
        by_addr,
        port: config.port,
        next_gen: 0,
        closing: Vec::new(),
        inputs,
        buf: Vec::new(),
    };
    // Local routes first (route_added, source local), then the sessions.
    app.drain();
    let now = app.clock.now();
    for i in 0..app.peers.len() {
        app.speaker.start(now, PeerId(i as u16));
    }
    app.drain();

    let mut stdin = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let mut stdin_open = true;
    loop {
        let deadline = app
            .speaker
            .poll_timeout()
            .and_then(|t| app.clock.instant(t));
        let sleep = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
            Some(input) = input_rx.recv() => app.input(input),
            line = stdin.next_line(), if stdin_open => match line {
                Ok(Some(line)) => {
                    if app.command(&line) == Flow::Stop {
                        break;
                    }
                }
                Ok(None) | Err(_) => stdin_open = false,
            },
            _ = sleep => {
                let now = app.clock.now();
                app.speaker.handle_timeout(now);
            }
        }
        app.drain();
        app.closing.retain(|t| !t.is_finished());
    }
    app.shutdown().await;
    Ok(())
}

#[derive(PartialEq, Eq)]
enum Flow {
    Continue,
    Stop,
}

impl App {
    /// After any input: transmits, then actions, then events.
    fn drain(&mut self) {
        while let Some((peer, conn)) = self.speaker.poll_transmit(&mut self.buf) {
            let bytes = std::mem::take(&mut self.buf);
            if let Some(c) = self.conn(peer, conn) {
                // A task that already ended reports Closed itself.
                let _ = c.tx.send(bytes);
            }
        }
        while let Some((peer, action)) = self.speaker.poll_action() {
            match action {
                Action::Connect => self.connect(peer),
                Action::Close(conn) => self.close(peer, conn),
            }
        }
        while let Some(ev) = self.speaker.poll_event() {
            self.reporter.event(&ev);
        }
    }

    fn conn(&self, peer: PeerId, conn: ConnectionId) -> Option<&ConnHandle> {
        self.peers.get(usize::from(peer.0))?.conns[slot(conn)].as_ref()
    }

    fn gen(&mut self) -> u64 {
        self.next_gen += 1;
        self.next_gen
    }

    fn connect(&mut self, peer: PeerId) {
        let gen = self.gen();
        let inputs = self.inputs.clone();
        let port = self.port;
        let Some(p) = self.peers.get_mut(usize::from(peer.0)) else {
            return;
        };
        // A new Connect replaces an attempt still in progress.
        if let Some((_, task)) = p.connecting.take() {
            task.abort();
        }
        let task = tokio::spawn(net::connect(
            peer,
            gen,
            p.local,
            SocketAddr::new(p.address, port),
            p.password.clone(),
            p.connect_timeout,
            inputs,
        ));
        p.connecting = Some((gen, task));
    }

    /// Closes a connection after the bytes already queued for it.
    fn close(&mut self, peer: PeerId, conn: ConnectionId) {
        let Some(p) = self.peers.get_mut(usize::from(peer.0)) else {
            return;
        };
        if conn == ConnectionId::Outbound {
            if let Some((_, task)) = p.connecting.take() {
                task.abort();
            }
        }
        if let Some(c) = p.conns[slot(conn)].take() {
            // Dropping the sender tells the task to flush, FIN and linger.
            drop(c.tx);
            self.closing.push(c.task);
        }
    }

    fn install(&mut self, peer: PeerId, conn: ConnectionId, stream: tokio::net::TcpStream) {
        let gen = self.gen();
        let handle = net::spawn_conn(stream, peer, conn, gen, self.inputs.clone());
        if let Some(old) = self.peers[usize::from(peer.0)].conns[slot(conn)].replace(handle) {
            drop(old.tx);
            self.closing.push(old.task);
        }
        let now = self.clock.now();
        self.speaker.handle_connected(now, peer, conn);
    }

    fn input(&mut self, input: Input) {
        let now = self.clock.now();
        match input {
            Input::Accepted(stream, from) => {
                let ip = from.ip().to_canonical();
                let Some(&peer) = self.by_addr.get(&ip) else {
                    eprintln!("bgp_speaker: connection from unknown {from} refused");
                    return;
                };
                eprintln!(
                    "bgp_speaker: {}: inbound connection from {from}",
                    self.reporter.name(peer)
                );
                self.install(peer, ConnectionId::Inbound, stream);
            }
            Input::Connected { peer, gen, stream } => {
                let p = &mut self.peers[usize::from(peer.0)];
                if p.connecting.as_ref().map(|c| c.0) != Some(gen) {
                    return; // replaced or cancelled meanwhile
                }
                p.connecting = None;
                eprintln!(
                    "bgp_speaker: {}: connected to {}",
                    self.reporter.name(peer),
                    p.address
                );
                self.install(peer, ConnectionId::Outbound, stream);
            }
            Input::ConnectFailed { peer, gen, error } => {
                let p = &mut self.peers[usize::from(peer.0)];
                if p.connecting.as_ref().map(|c| c.0) != Some(gen) {
                    return;
                }
                p.connecting = None;
                eprintln!(
                    "bgp_speaker: {}: connect to {} failed: {error}",
                    self.reporter.name(peer),
                    p.address
                );
                self.speaker
                    .handle_connection_closed(now, peer, ConnectionId::Outbound);
            }
            Input::Bytes {
                peer,
                conn,
                gen,
                data,
            } => {
                if self.conn(peer, conn).is_some_and(|c| c.gen == gen) {
                    self.speaker.handle_bytes(now, peer, conn, &data);
                }
            }
            Input::Closed {
                peer,
                conn,
                gen,
                error,
            } => {
                if self.conn(peer, conn).is_none_or(|c| c.gen != gen) {
                    return;
                }
                self.peers[usize::from(peer.0)].conns[slot(conn)] = None;
                let why = error.map_or_else(|| "closed by peer".to_string(), |e| e.to_string());
                eprintln!(
                    "bgp_speaker: {}: {conn:?} connection {why}",
                    self.reporter.name(peer)
                );
                self.speaker.handle_connection_closed(now, peer, conn);
            }
        }
    }

    fn peer_by_name(&self, v: &Value) -> Result<Option<PeerId>, String> {
        let Some(name) = v.get("peer").and_then(Value::as_str) else {
            return Ok(None);
        };
        let found = self
            .reporter
            .peers
            .iter()
            .position(|(n, a)| n == name || a.to_string() == name);
        found
            .map(|i| Some(PeerId(i as u16)))
            .ok_or_else(|| format!("no neighbour {name:?}"))
    }

    /// One JSON command from stdin.
    fn command(&mut self, line: &str) -> Flow {
        let line = line.trim();
        if line.is_empty() {
            return Flow::Continue;
        }
        let result = (|| -> Result<Flow, String> {
            let v: Value =
                serde_json::from_str(line).map_err(|e| format!("bad command {line:?}: {e}"))?;
            let cmd = v.get("cmd").and_then(Value::as_str).unwrap_or("");
            let prefix = || {
                v.get("prefix")
                    .and_then(Value::as_str)
                    .ok_or_else(|| format!("{cmd}: missing \"prefix\""))
                    .and_then(config::parse_prefix)
            };
            let now = self.clock.now();
            match cmd {
                "announce" => {
                    let med = match v.get("med") {
                        None => None,
                        Some(m) => Some(
                            m.as_u64()
                                .and_then(|m| u32::try_from(m).ok())
                                .ok_or("announce: \"med\" must be a 32-bit unsigned number")?,
                        ),
                    };
                    let attrs = PathAttributes {
                        med,
                        ..PathAttributes::default()
                    };
                    self.speaker.announce(prefix()?, attrs);
                }
                "withdraw" => self.speaker.withdraw(prefix()?),
                "stop" => match self.peer_by_name(&v)? {
                    None => return Ok(Flow::Stop),
                    Some(p) => {
                        let text = v
                            .get("text")
                            .and_then(Value::as_str)
                            .unwrap_or("stopped by operator");
                        self.speaker.stop(now, p, text);
                    }
                },
                "start" => {
                    let p = self.peer_by_name(&v)?.ok_or("start: missing \"peer\"")?;
                    self.speaker.start(now, p);
                }
                other => {
                    return Err(format!(
                        "unknown command {other:?} (announce, withdraw, stop, start)"
                    ))
                }
            }
            Ok(Flow::Continue)
        })();
        result.unwrap_or_else(|e| {
            output::error(e);
            Flow::Continue
        })
    }

    /// Cease / Administrative Shutdown everywhere, let the sockets flush, `stopped`.
    async fn shutdown(mut self) {
        let now = self.clock.now();
        for i in 0..self.peers.len() {
            self.speaker
                .stop(now, PeerId(i as u16), "bgp_speaker shutting down");
        }
        self.drain();
        for p in &mut self.peers {
            if let Some((_, task)) = p.connecting.take() {
                task.abort();
            }
            for c in p.conns.iter_mut().filter_map(Option::take) {
                drop(c.tx);
                self.closing.push(c.task);
            }
        }
        let tasks = std::mem::take(&mut self.closing);
        let _ = tokio::time::timeout(STOP_LINGER, async {
            for t in tasks {
                let _ = t.await;
            }
        })
        .await;
        emit("stopped", json!({}));
    }
}
