//! In-memory network for BGP endpoints on a virtual clock (after quinn-proto's `Pair`):
//! wires join two endpoints; each wire carries up to two TCP connections (one per
//! direction of opening). Bytes move instantly; time jumps to the next deadline.

use std::collections::HashSet;

use crate::bgp::session::{Action, ConnectionId, Session, SessionEvent};
use crate::time::Timestamp;

/// Something that runs BGP sessions, each reached through a `Peer` handle.
pub trait Endpoint {
    type Peer: Copy + Eq + std::fmt::Debug;
    type Event: std::fmt::Debug;
    fn poll_transmit(&mut self, buf: &mut Vec<u8>) -> Option<(Self::Peer, ConnectionId)>;
    fn poll_action(&mut self) -> Option<(Self::Peer, Action)>;
    fn handle_connected(&mut self, now: Timestamp, peer: Self::Peer, id: ConnectionId);
    fn handle_connection_closed(&mut self, now: Timestamp, peer: Self::Peer, id: ConnectionId);
    fn handle_bytes(&mut self, now: Timestamp, peer: Self::Peer, id: ConnectionId, data: &[u8]);
    fn handle_timeout(&mut self, now: Timestamp);
    fn poll_timeout(&self) -> Option<Timestamp>;
    fn poll_events(&mut self, out: &mut Vec<Self::Event>);
}

impl Endpoint for Session {
    type Peer = ();
    type Event = SessionEvent;
    fn poll_transmit(&mut self, buf: &mut Vec<u8>) -> Option<((), ConnectionId)> {
        Session::poll_transmit(self, buf).map(|c| ((), c))
    }
    fn poll_action(&mut self) -> Option<((), Action)> {
        Session::poll_action(self).map(|a| ((), a))
    }
    fn handle_connected(&mut self, now: Timestamp, _: (), id: ConnectionId) {
        Session::handle_connected(self, now, id)
    }
    fn handle_connection_closed(&mut self, now: Timestamp, _: (), id: ConnectionId) {
        Session::handle_connection_closed(self, now, id)
    }
    fn handle_bytes(&mut self, now: Timestamp, _: (), id: ConnectionId, data: &[u8]) {
        Session::handle_bytes(self, now, id, data)
    }
    fn handle_timeout(&mut self, now: Timestamp) {
        Session::handle_timeout(self, now)
    }
    fn poll_timeout(&self) -> Option<Timestamp> {
        Session::poll_timeout(self)
    }
    fn poll_events(&mut self, out: &mut Vec<SessionEvent>) {
        while self.poll_update().is_some() {}
        while let Some(e) = self.poll_event() {
            out.push(e);
        }
    }
}

/// Wire end: node index and its peer handle.
type End<P> = (usize, P);
/// The two ends of a wire.
type Wire<P> = (End<P>, End<P>);

pub struct Net<E: Endpoint> {
    pub nodes: Vec<E>,
    pub now: Timestamp,
    /// Events per node, with the time they were drained.
    pub events: Vec<Vec<(Timestamp, E::Event)>>,
    wires: Vec<Wire<E::Peer>>,
    /// Open connections: (wire, opener is the wire's first end).
    open: HashSet<(usize, bool)>,
    /// Nodes whose output is dropped (a silent peer).
    pub muted: HashSet<usize>,
    /// Every byte chunk delivered: (from node, bytes).
    pub trace: Vec<(usize, Vec<u8>)>,
    /// When each node last had bytes delivered to a peer.
    pub last_delivered: Vec<Option<Timestamp>>,
}

impl<E: Endpoint> Net<E> {
    pub fn new(nodes: Vec<E>) -> Self {
        let events = nodes.iter().map(|_| Vec::new()).collect();
        let n = nodes.len();
        Self {
            nodes,
            now: Timestamp::ZERO,
            events,
            wires: Vec::new(),
            open: HashSet::new(),
            muted: HashSet::new(),
            trace: Vec::new(),
            last_delivered: vec![None; n],
        }
    }

    pub fn wire(&mut self, a: End<E::Peer>, b: End<E::Peer>) {
        self.wires.push((a, b));
    }

    /// The far end of a connection: (wire, opener-is-first) seen from `(node, peer, id)`.
    fn locate(&self, node: usize, peer: E::Peer, id: ConnectionId) -> Option<(usize, bool)> {
        self.wires.iter().enumerate().find_map(|(w, (a, b))| {
            if *a == (node, peer) {
                Some((w, id == ConnectionId::Outbound))
            } else if *b == (node, peer) {
                Some((w, id == ConnectionId::Inbound))
            } else {
                None
            }
        })
    }

    /// The endpoint on the other side of connection `(w, first_opened)` from `node`.
    fn far(&self, w: usize, first_opened: bool, node: usize) -> (usize, E::Peer, ConnectionId) {
        let (a, b) = self.wires[w];
        let from_first = a.0 == node;
        let (far, _) = if from_first { (b, a) } else { (a, b) };
        // The opener's side is Outbound; the other side Inbound.
        let far_is_opener = first_opened != from_first;
        let id = if far_is_opener {
            ConnectionId::Outbound
        } else {
            ConnectionId::Inbound
        };
        (far.0, far.1, id)
    }

    /// Moves bytes and actions until nothing is left to do.
    pub fn drive(&mut self) {
        let now = self.now;
        for _ in 0..100_000 {
            let mut progress = false;
            for n in 0..self.nodes.len() {
                let mut buf = Vec::new();
                while let Some((peer, id)) = self.nodes[n].poll_transmit(&mut buf) {
                    progress = true;
                    let data = std::mem::take(&mut buf);
                    if self.muted.contains(&n) {
                        continue;
                    }
                    let Some((w, first)) = self.locate(n, peer, id) else {
                        continue;
                    };
                    if !self.open.contains(&(w, first)) {
                        continue;
                    }
                    let (fnode, fpeer, fid) = self.far(w, first, n);
                    self.trace.push((n, data.clone()));
                    self.last_delivered[n] = Some(now);
                    self.nodes[fnode].handle_bytes(now, fpeer, fid, &data);
                }
                while let Some((peer, action)) = self.nodes[n].poll_action() {
                    progress = true;
                    match action {
                        Action::Connect => {
                            let Some((w, first)) = self.locate(n, peer, ConnectionId::Outbound)
                            else {
                                continue;
                            };
                            if self.open.contains(&(w, first)) {
                                continue;
                            }
                            self.open.insert((w, first));
                            let (fnode, fpeer, fid) = self.far(w, first, n);
                            self.nodes[n].handle_connected(now, peer, ConnectionId::Outbound);
                            self.nodes[fnode].handle_connected(now, fpeer, fid);
                        }
                        Action::Close(id) => {
                            let Some((w, first)) = self.locate(n, peer, id) else {
                                continue;
                            };
                            if self.open.remove(&(w, first)) {
                                let (fnode, fpeer, fid) = self.far(w, first, n);
                                self.nodes[fnode].handle_connection_closed(now, fpeer, fid);
                            }
                        }
                    }
                }
                let mut evs = Vec::new();
                self.nodes[n].poll_events(&mut evs);
                self.events[n].extend(evs.into_iter().map(|e| (now, e)));
            }
            if !progress {
                return;
            }
        }
        panic!("network did not settle");
    }

    pub fn next_deadline(&self) -> Option<Timestamp> {
        self.nodes.iter().filter_map(|n| n.poll_timeout()).min()
    }

    /// Runs timers and traffic until `end` (inclusive).
    pub fn run_until(&mut self, end: Timestamp) {
        self.drive();
        while let Some(t) = self.next_deadline().filter(|&t| t <= end) {
            self.now = self.now.max(t);
            for n in 0..self.nodes.len() {
                let now = self.now;
                self.nodes[n].handle_timeout(now);
            }
            self.drive();
        }
        self.now = self.now.max(end);
    }

    pub fn run_for(&mut self, d: std::time::Duration) {
        let end = self.now + d;
        self.run_until(end);
    }

    /// Closes every open connection of a node silently (a crash): the peers see
    /// nothing until their hold timers fire.
    pub fn cut(&mut self, node: usize) {
        let wires: Vec<usize> = (0..self.wires.len())
            .filter(|&w| self.wires[w].0 .0 == node || self.wires[w].1 .0 == node)
            .collect();
        self.open.retain(|(w, _)| !wires.contains(w));
    }

    /// Closes a node's connections with TCP FIN seen by both sides.
    pub fn close_all(&mut self, node: usize) {
        let now = self.now;
        let open: Vec<(usize, bool)> = self.open.iter().copied().collect();
        for (w, first) in open {
            let (a, b) = self.wires[w];
            if a.0 != node && b.0 != node {
                continue;
            }
            self.open.remove(&(w, first));
            let (a_id, b_id) = if first {
                (ConnectionId::Outbound, ConnectionId::Inbound)
            } else {
                (ConnectionId::Inbound, ConnectionId::Outbound)
            };
            self.nodes[a.0].handle_connection_closed(now, a.1, a_id);
            self.nodes[b.0].handle_connection_closed(now, b.1, b_id);
        }
        self.drive();
    }

    pub fn open_connections(&self) -> usize {
        self.open.len()
    }
}

use crate::bgp::speaker::{PeerId, Speaker, SpeakerEvent};

impl Endpoint for Speaker {
    type Peer = PeerId;
    type Event = SpeakerEvent;
    fn poll_transmit(&mut self, buf: &mut Vec<u8>) -> Option<(PeerId, ConnectionId)> {
        Speaker::poll_transmit(self, buf)
    }
    fn poll_action(&mut self) -> Option<(PeerId, Action)> {
        Speaker::poll_action(self)
    }
    fn handle_connected(&mut self, now: Timestamp, peer: PeerId, id: ConnectionId) {
        Speaker::handle_connected(self, now, peer, id)
    }
    fn handle_connection_closed(&mut self, now: Timestamp, peer: PeerId, id: ConnectionId) {
        Speaker::handle_connection_closed(self, now, peer, id)
    }
    fn handle_bytes(&mut self, now: Timestamp, peer: PeerId, id: ConnectionId, data: &[u8]) {
        Speaker::handle_bytes(self, now, peer, id, data)
    }
    fn handle_timeout(&mut self, now: Timestamp) {
        Speaker::handle_timeout(self, now)
    }
    fn poll_timeout(&self) -> Option<Timestamp> {
        Speaker::poll_timeout(self)
    }
    fn poll_events(&mut self, out: &mut Vec<SpeakerEvent>) {
        while let Some(e) = self.poll_event() {
            out.push(e);
        }
    }
}
