//! The TCP endpoint of one tunnel's BGP session, inside the tunnel.
//!
//! Each tunnel has a /30 of inside addresses (AWS gives the customer gateway
//! `.2` and itself `.1`) and BGP runs between them, over ESP. A small
//! userspace TCP/IP stack (smoltcp) owns our inside address: packets the
//! tunnel decrypts for that address go into it, packets it emits go back
//! into the tunnel. smoltcp is sans-IO like the rest of the core: it is
//! polled with our time and never touches a socket or clock.

use std::collections::VecDeque;
use std::net::Ipv4Addr;

use smoltcp::iface::{Config, Interface, SocketHandle, SocketSet};
use smoltcp::phy::{Device, DeviceCapabilities, Medium, RxToken, TxToken};
use smoltcp::socket::tcp;
use smoltcp::wire::{HardwareAddress, IpAddress, IpCidr};

use crate::time::Timestamp;

/// TCP port of BGP.
pub(crate) const BGP_PORT: u16 = 179;
/// smoltcp's socket buffers: room for a few full BGP messages each way.
const SOCKET_BUFFER: usize = 64 * 1024;

/// What happened to the TCP connection since the last look.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TcpChange {
    Connected,
    Closed,
}

/// Inner packets waiting to enter the stack and leaving it.
#[derive(Default)]
struct PacketQueues {
    rx: VecDeque<Vec<u8>>,
    tx: VecDeque<Vec<u8>>,
    mtu: usize,
}

struct Rx(Vec<u8>);

impl RxToken for Rx {
    fn consume<R, F: FnOnce(&[u8]) -> R>(self, f: F) -> R {
        f(&self.0)
    }
}

struct Tx<'a>(&'a mut VecDeque<Vec<u8>>);

impl TxToken for Tx<'_> {
    fn consume<R, F: FnOnce(&mut [u8]) -> R>(self, len: usize, f: F) -> R {
        let mut packet = vec![0u8; len];
        let result = f(&mut packet);
        self.0.push_back(packet);
        result
    }
}

impl Device for PacketQueues {
    type RxToken<'a> = Rx;
    type TxToken<'a> = Tx<'a>;

    fn receive(&mut self, _: smoltcp::time::Instant) -> Option<(Rx, Tx<'_>)> {
        let packet = self.rx.pop_front()?;
        Some((Rx(packet), Tx(&mut self.tx)))
    }

    fn transmit(&mut self, _: smoltcp::time::Instant) -> Option<Tx<'_>> {
        Some(Tx(&mut self.tx))
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ip;
        caps.max_transmission_unit = self.mtu;
        caps
    }
}

fn instant(now: Timestamp) -> smoltcp::time::Instant {
    smoltcp::time::Instant::from_micros(i64::try_from(now.as_nanos() / 1000).unwrap_or(i64::MAX))
}

/// One inside address with one TCP socket for the BGP session.
pub(crate) struct InsideStack {
    iface: Interface,
    queues: PacketQueues,
    sockets: SocketSet<'static>,
    tcp: SocketHandle,
    local: Ipv4Addr,
    peer: Ipv4Addr,
    /// Passive: listen for the peer; active: connect when the speaker asks.
    passive: bool,
    /// Whether the speaker was told the connection is up.
    reported_up: bool,
    /// A connect is in progress.
    connecting: bool,
    next_port: u16,
    /// Bytes the speaker produced that the socket has not taken yet.
    pending_out: Vec<u8>,
}

impl InsideStack {
    pub(crate) fn new(
        local: Ipv4Addr,
        peer: Ipv4Addr,
        passive: bool,
        mtu: usize,
        seed: u64,
        now: Timestamp,
    ) -> Self {
        let mut queues = PacketQueues {
            mtu,
            ..PacketQueues::default()
        };
        let mut config = Config::new(HardwareAddress::Ip);
        config.random_seed = seed;
        let mut iface = Interface::new(config, &mut queues, instant(now));
        iface.update_ip_addrs(|addrs| {
            // Capacity is fixed and this is the first address: cannot fail.
            let _ = addrs.push(IpCidr::new(IpAddress::Ipv4(local), 30));
        });
        let mut sockets = SocketSet::new(Vec::new());
        let socket = tcp::Socket::new(
            tcp::SocketBuffer::new(vec![0; SOCKET_BUFFER]),
            tcp::SocketBuffer::new(vec![0; SOCKET_BUFFER]),
        );
        let tcp = sockets.add(socket);
        let mut stack = InsideStack {
            iface,
            queues,
            sockets,
            tcp,
            local,
            peer,
            passive,
            reported_up: false,
            connecting: false,
            next_port: 49152 + (seed % 16384) as u16,
            pending_out: Vec::new(),
        };
        stack.listen_if_passive();
        stack
    }

    pub(crate) fn local(&self) -> Ipv4Addr {
        self.local
    }

    fn socket(&mut self) -> &mut tcp::Socket<'static> {
        self.sockets.get_mut::<tcp::Socket>(self.tcp)
    }

    fn listen_if_passive(&mut self) {
        if self.passive && !self.socket().is_open() {
            let _ = self.socket().listen(BGP_PORT);
        }
    }

    /// An inner packet for our inside address.
    pub(crate) fn push_packet(&mut self, packet: &[u8]) {
        self.queues.rx.push_back(packet.to_vec());
    }

    /// A packet the stack wants sent into the tunnel.
    pub(crate) fn pop_packet(&mut self) -> Option<Vec<u8>> {
        self.queues.tx.pop_front()
    }

    /// Opens a connection to the peer's BGP port (active side).
    pub(crate) fn connect(&mut self) {
        if self.passive {
            return;
        }
        self.socket().abort();
        self.reported_up = false;
        self.pending_out.clear();
        let port = self.next_port;
        self.next_port = port.checked_add(1).unwrap_or(49152);
        let (peer, local) = (self.peer, self.local);
        let socket = self.sockets.get_mut::<tcp::Socket>(self.tcp);
        self.connecting = socket
            .connect(
                self.iface.context(),
                (IpAddress::Ipv4(peer), BGP_PORT),
                (IpAddress::Ipv4(local), port),
            )
            .is_ok();
    }

    /// Closes the connection after the queued bytes are sent.
    pub(crate) fn close(&mut self) {
        self.socket().close();
    }

    /// Drops the connection at once (the tunnel under it went down).
    pub(crate) fn abort(&mut self) {
        self.socket().abort();
        self.pending_out.clear();
        self.connecting = false;
    }

    /// Queues bytes for the peer.
    pub(crate) fn send(&mut self, bytes: &[u8]) {
        self.pending_out.extend_from_slice(bytes);
    }

    /// Runs the stack: processes received packets, moves bytes, and reports
    /// what happened to the connection and what arrived on it.
    pub(crate) fn poll(&mut self, now: Timestamp, received: &mut Vec<u8>) -> Option<TcpChange> {
        self.iface
            .poll(instant(now), &mut self.queues, &mut self.sockets);
        let mut change = None;
        let socket = self.sockets.get_mut::<tcp::Socket>(self.tcp);
        if !self.reported_up && socket.may_send() {
            self.reported_up = true;
            self.connecting = false;
            change = Some(TcpChange::Connected);
        }
        while socket.can_recv() {
            let mut chunk = [0u8; 4096];
            match socket.recv_slice(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&chunk[..n]),
            }
        }
        if !self.pending_out.is_empty() && socket.can_send() {
            if let Ok(n) = socket.send_slice(&self.pending_out) {
                self.pending_out.drain(..n);
            }
        }
        let gone = !socket.is_open() || (self.reported_up && !socket.may_recv());
        if gone && (self.reported_up || self.connecting) {
            socket.abort();
            self.reported_up = false;
            self.connecting = false;
            self.pending_out.clear();
            change = Some(TcpChange::Closed);
        }
        // Flush what the socket queued in this round.
        self.iface
            .poll(instant(now), &mut self.queues, &mut self.sockets);
        self.listen_if_passive();
        change
    }

    /// When the stack next needs polling (retransmits, delayed ACKs).
    pub(crate) fn poll_at(&mut self, now: Timestamp) -> Option<Timestamp> {
        let at = self.iface.poll_at(instant(now), &self.sockets)?;
        Some(Timestamp::from_nanos(
            u64::try_from(at.total_micros())
                .unwrap_or(0)
                .saturating_mul(1000),
        ))
    }

    /// Whether the stack has packets waiting to enter.
    pub(crate) fn has_input(&self) -> bool {
        !self.queues.rx.is_empty()
    }
}
