//! TCP for the speaker: listeners, outgoing connects and one task per
//! connection. Tasks report to the main loop through one channel of [`Input`]s;
//! the main loop owns the [`vpn_core::bgp::speaker::Speaker`] and is the only
//! place where BGP happens.
//!
//! Every connection and connect attempt carries a generation number: after the
//! main loop replaced or closed one, late reports from its task are recognised
//! as stale and dropped.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::mpsc;
use vpn_core::bgp::session::ConnectionId;
use vpn_core::bgp::speaker::PeerId;

use crate::md5;

/// How long a closing connection keeps its socket to let the peer read what we
/// wrote last (e.g. a NOTIFICATION) and close its side.
const LINGER: Duration = Duration::from_secs(2);
/// Read size per wake-up.
const READ_BUF: usize = 64 * 1024;

/// What the TCP tasks tell the main loop.
pub enum Input {
    /// A listener accepted a connection (peer not yet identified).
    Accepted(TcpStream, SocketAddr),
    Connected {
        peer: PeerId,
        gen: u64,
        stream: TcpStream,
    },
    ConnectFailed {
        peer: PeerId,
        gen: u64,
        error: io::Error,
    },
    Bytes {
        peer: PeerId,
        conn: ConnectionId,
        gen: u64,
        data: Vec<u8>,
    },
    /// The peer closed the connection, or it failed.
    Closed {
        peer: PeerId,
        conn: ConnectionId,
        gen: u64,
        error: Option<io::Error>,
    },
}

pub type InputTx = mpsc::Sender<Input>;

/// The main loop's handle on a connection task: bytes to write go through `tx`;
/// dropping it closes the connection after those bytes are written.
pub struct ConnHandle {
    pub gen: u64,
    pub tx: mpsc::UnboundedSender<Vec<u8>>,
    pub task: tokio::task::JoinHandle<()>,
}

/// Starts the task that owns one established TCP connection.
pub fn spawn_conn(
    stream: TcpStream,
    peer: PeerId,
    conn: ConnectionId,
    gen: u64,
    inputs: InputTx,
) -> ConnHandle {
    let _ = stream.set_nodelay(true);
    let (tx, rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(run_conn(stream, peer, conn, gen, rx, inputs));
    ConnHandle { gen, tx, task }
}

async fn run_conn(
    stream: TcpStream,
    peer: PeerId,
    conn: ConnectionId,
    gen: u64,
    mut writes: mpsc::UnboundedReceiver<Vec<u8>>,
    inputs: InputTx,
) {
    let (mut r, mut w) = stream.into_split();
    let mut buf = vec![0u8; READ_BUF];
    let closed = |error| Input::Closed {
        peer,
        conn,
        gen,
        error,
    };
    loop {
        tokio::select! {
            n = r.read(&mut buf) => match n {
                Ok(0) => { let _ = inputs.send(closed(None)).await; return; }
                Ok(n) => {
                    let data = buf[..n].to_vec();
                    if inputs.send(Input::Bytes { peer, conn, gen, data }).await.is_err() {
                        return;
                    }
                }
                Err(e) => { let _ = inputs.send(closed(Some(e))).await; return; }
            },
            bytes = writes.recv() => match bytes {
                Some(bytes) => {
                    if let Err(e) = w.write_all(&bytes).await {
                        let _ = inputs.send(closed(Some(e))).await;
                        return;
                    }
                }
                None => {
                    // Closed by the main loop: everything queued is written. Send
                    // FIN, then keep reading (and discarding) until the peer closes
                    // too or LINGER passes, so unread input never turns our close
                    // into a RST that could destroy the last message we sent.
                    let _ = w.shutdown().await;
                    let _ = tokio::time::timeout(LINGER, async {
                        while let Ok(n) = r.read(&mut buf).await {
                            if n == 0 { break; }
                        }
                    }).await;
                    return;
                }
            },
        }
    }
}

/// One outgoing connection attempt from `local` to `remote`, TCP-MD5 key set
/// before the SYN. Reports `Connected` or `ConnectFailed`.
pub async fn connect(
    peer: PeerId,
    gen: u64,
    local: IpAddr,
    remote: SocketAddr,
    password: Option<String>,
    timeout: Duration,
    inputs: InputTx,
) {
    let attempt = async {
        let socket = if remote.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        if let Some(pw) = &password {
            md5::set_key(&socket, remote.is_ipv6(), remote.ip(), pw)?;
        }
        socket.bind(SocketAddr::new(local, 0))?;
        tokio::time::timeout(timeout, socket.connect(remote))
            .await
            .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))?
    };
    let msg = match attempt.await {
        Ok(stream) => Input::Connected { peer, gen, stream },
        Err(error) => Input::ConnectFailed { peer, gen, error },
    };
    let _ = inputs.send(msg).await;
}

/// A listening socket on `addr` with a TCP-MD5 key per `(peer, password)`.
pub fn listen(addr: SocketAddr, keys: &[(IpAddr, String)]) -> io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    for (peer, pw) in keys {
        // An IPv4 listener cannot hear IPv6 peers; a specific IPv6 address hears
        // no IPv4 peers either.
        let reachable = match (addr.ip(), peer) {
            (IpAddr::V4(_), IpAddr::V4(_)) | (IpAddr::V6(_), IpAddr::V6(_)) => true,
            (IpAddr::V6(a), IpAddr::V4(_)) => a.is_unspecified(),
            (IpAddr::V4(_), IpAddr::V6(_)) => false,
        };
        if reachable {
            md5::set_key(&socket, addr.is_ipv6(), *peer, pw)?;
        }
    }
    socket.bind(addr)?;
    socket.listen(64)
}

/// Accepts connections forever, handing them to the main loop.
pub async fn accept_loop(listener: TcpListener, inputs: InputTx) {
    loop {
        match listener.accept().await {
            Ok((stream, from)) => {
                if inputs.send(Input::Accepted(stream, from)).await.is_err() {
                    return;
                }
            }
            Err(e) => {
                eprintln!("bgp_speaker: accept: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}
