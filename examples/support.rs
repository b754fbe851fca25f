//! What the real-socket programs (`gateway`, `connection_gateway`,
//! `bgp_speaker`) share: the `--config` command line and a single-threaded
//! runtime, the clock the sans-IO core sees, and the two IKE sockets.

use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use vpn_core::time::Timestamp;
use vpn_core::tunnel::{Transmit, NAT_T_PORT};

/// UDP port of IKE before NAT-T moves it to [`NAT_T_PORT`].
pub const IKE_PORT: u16 = 500;

/// Runs a program taking `--config <file>`: `load` reads the file, `run` is
/// the event loop. Usage errors exit 2, a configuration `load` refuses exits
/// 2, a failed `run` exits 1; `report` prints those failures.
///
/// One thread: the core has a single owner and needs no locks, and the
/// sockets, the timer, the signals and stdin all wake one `select!`. A
/// current-thread tokio runtime gives that (and async signals and stdin)
/// without hand-written epoll code or `unsafe`.
pub fn run_with_config<C, F>(
    program: &str,
    load: impl FnOnce(&Path) -> Result<C, String>,
    run: impl FnOnce(C) -> F,
    report: impl Fn(String),
) -> ExitCode
where
    F: Future<Output = Result<(), String>>,
{
    let path = match config_argument() {
        Ok(path) => path,
        Err(message) => {
            eprintln!("usage: {program} --config <file.toml>\n{message}");
            return ExitCode::from(2);
        }
    };
    let config = match load(&path) {
        Ok(config) => config,
        Err(message) => {
            report(message);
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            report(format!("cannot start the runtime: {e}"));
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(run(config));
    // tokio reads stdin on a blocking thread that may sit in read(2)
    // forever: do not wait for it.
    runtime.shutdown_background();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            report(message);
            ExitCode::FAILURE
        }
    }
}

fn config_argument() -> Result<PathBuf, String> {
    let mut args = std::env::args_os().skip(1);
    let mut config = None;
    while let Some(arg) = args.next() {
        match arg.to_str() {
            Some("--config") => {
                config = Some(PathBuf::from(args.next().ok_or("--config needs a file")?))
            }
            Some("-h" | "--help") => return Err(String::new()),
            _ => return Err(format!("unknown argument {arg:?}")),
        }
    }
    config.ok_or_else(|| "missing --config".into())
}

/// Monotonic time as the core sees it: nanoseconds since the program started.
pub struct Clock {
    start: Instant,
}

impl Clock {
    pub fn start() -> Clock {
        Clock {
            start: Instant::now(),
        }
    }

    pub fn now(&self) -> Timestamp {
        let ns = self.start.elapsed().as_nanos();
        Timestamp::from_nanos(u64::try_from(ns).unwrap_or(u64::MAX))
    }

    /// The instant of a core deadline, `None` if it lies beyond any clock.
    pub fn instant(&self, at: Timestamp) -> Option<tokio::time::Instant> {
        self.start
            .checked_add(Duration::from_nanos(at.as_nanos()))
            .map(tokio::time::Instant::from_std)
    }
}

/// Logs the 1st..5th, then every 1000th occurrence of a recurring problem.
pub fn log_rate_limited(program: &str, count: u64, message: impl FnOnce() -> String) {
    if count <= 5 || count.is_multiple_of(1000) {
        eprintln!("{program}: {} (occurrence {count})", message());
    }
}

/// UDP 500 and 4500 on one outside address.
pub struct IkeSockets {
    pub ike: UdpSocket,
    pub nat_t: UdpSocket,
    /// The program's name, for its logs.
    program: &'static str,
}

impl IkeSockets {
    pub async fn bind(program: &'static str, local: IpAddr) -> Result<IkeSockets, String> {
        let bind = |port| async move {
            UdpSocket::bind(SocketAddr::new(local, port))
                .await
                .map_err(|e| format!("cannot bind UDP {local}:{port}: {e}"))
        };
        Ok(IkeSockets {
            ike: bind(IKE_PORT).await?,
            nat_t: bind(NAT_T_PORT).await?,
            program,
        })
    }

    pub fn by_port(&self, port: u16) -> Option<&UdpSocket> {
        match port {
            IKE_PORT => Some(&self.ike),
            NAT_T_PORT => Some(&self.nat_t),
            _ => None,
        }
    }

    /// Sends `payload` as the core asked: from `tx.local`'s port to
    /// `tx.remote`. A failure (e.g. "network unreachable" while the outside
    /// link is down) loses the datagram like any other loss, for IKE/DPD or
    /// the peer to notice: it is counted in `failures` and logged.
    pub async fn send(&self, tx: &Transmit, payload: &[u8], failures: &mut u64) {
        let result = match self.by_port(tx.local.port()) {
            Some(socket) => socket
                .send_to(payload, tx.remote)
                .await
                .map(drop)
                .map_err(|e| format!("UDP send to {}: {e}", tx.remote)),
            None => Err(format!("no socket for local port {}", tx.local.port())),
        };
        if let Err(message) = result {
            *failures += 1;
            log_rate_limited(self.program, *failures, || message);
        }
    }
}
