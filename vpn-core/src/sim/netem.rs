//! A network emulator in the spirit of Linux netem: per-link latency,
//! jitter, loss, duplication, reordering and cuts, driven by a seed.

use core::time::Duration;
use std::cmp::Reverse;
use std::collections::BinaryHeap;

use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha20Rng;

use crate::time::Timestamp;

/// How one direction of one link treats what is sent over it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LinkConditions {
    /// Fixed one-way delay.
    pub latency: Duration,
    /// Extra delay, uniform in `0..jitter`. Jitter larger than the gap
    /// between packets reorders them.
    pub jitter: Duration,
    /// Probability that a message is lost, 0.0 to 1.0.
    pub loss: f64,
    /// Probability that a message is delivered twice.
    pub duplicate: f64,
    /// Probability that a message is held back by `reorder_delay`.
    pub reorder: f64,
    pub reorder_delay: Duration,
    /// A cut link loses everything sent while it is down.
    pub up: bool,
}

impl Default for LinkConditions {
    /// A clean 10 ms link.
    fn default() -> Self {
        LinkConditions {
            latency: Duration::from_millis(10),
            jitter: Duration::ZERO,
            loss: 0.0,
            duplicate: 0.0,
            reorder: 0.0,
            reorder_delay: Duration::from_millis(20),
            up: true,
        }
    }
}

/// What happened on a link.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LinkStats {
    pub sent: u64,
    pub lost: u64,
    pub cut: u64,
    pub duplicated: u64,
    pub delivered: u64,
}

struct InFlight<T> {
    deliver_at: Timestamp,
    /// Send order breaks ties, so equal times deliver in order.
    order: u64,
    link: usize,
    message: T,
}

impl<T> PartialEq for InFlight<T> {
    fn eq(&self, other: &Self) -> bool {
        (self.deliver_at, self.order) == (other.deliver_at, other.order)
    }
}
impl<T> Eq for InFlight<T> {}
impl<T> PartialOrd for InFlight<T> {
    fn partial_cmp(&self, other: &Self) -> Option<core::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for InFlight<T> {
    fn cmp(&self, other: &Self) -> core::cmp::Ordering {
        (self.deliver_at, self.order).cmp(&(other.deliver_at, other.order))
    }
}

/// Links identified by index, each with its own conditions; messages of any
/// type `T` travel over them.
pub struct Netem<T> {
    rng: ChaCha20Rng,
    links: Vec<(LinkConditions, LinkStats)>,
    in_flight: BinaryHeap<Reverse<InFlight<T>>>,
    sent: u64,
}

impl<T: Clone> Netem<T> {
    pub fn new(seed: u64) -> Self {
        Netem {
            rng: ChaCha20Rng::seed_from_u64(seed),
            links: Vec::new(),
            in_flight: BinaryHeap::new(),
            sent: 0,
        }
    }

    /// Adds a link and returns its index.
    pub fn add_link(&mut self, conditions: LinkConditions) -> usize {
        self.links.push((conditions, LinkStats::default()));
        self.links.len() - 1
    }

    /// The conditions of `link`, to change them (cut, heal, add loss...).
    /// Messages already in flight are not affected.
    pub fn conditions_mut(&mut self, link: usize) -> Option<&mut LinkConditions> {
        self.links.get_mut(link).map(|(c, _)| c)
    }

    pub fn stats(&self, link: usize) -> Option<LinkStats> {
        self.links.get(link).map(|(_, s)| *s)
    }

    /// Sends `message` over `link` at `now`. Unknown links lose it.
    pub fn send(&mut self, now: Timestamp, link: usize, message: T) {
        let Some(&(conditions, _)) = self.links.get(link) else {
            return;
        };
        self.links[link].1.sent += 1;
        if !conditions.up {
            self.links[link].1.cut += 1;
            return;
        }
        if self.chance(conditions.loss) {
            self.links[link].1.lost += 1;
            return;
        }
        if self.chance(conditions.duplicate) {
            self.links[link].1.duplicated += 1;
            let at = now + self.delay(&conditions);
            self.push(at, link, message.clone());
        }
        let at = now + self.delay(&conditions);
        self.push(at, link, message);
    }

    /// The next message due at or before `now`, with its link.
    pub fn poll(&mut self, now: Timestamp) -> Option<(usize, T)> {
        if self.in_flight.peek()?.0.deliver_at > now {
            return None;
        }
        let Reverse(m) = self.in_flight.pop()?;
        self.links[m.link].1.delivered += 1;
        Some((m.link, m.message))
    }

    /// When the next message arrives.
    pub fn next_delivery(&self) -> Option<Timestamp> {
        self.in_flight.peek().map(|m| m.0.deliver_at)
    }

    fn push(&mut self, deliver_at: Timestamp, link: usize, message: T) {
        self.sent += 1;
        self.in_flight.push(Reverse(InFlight {
            deliver_at,
            order: self.sent,
            link,
            message,
        }));
    }

    fn delay(&mut self, c: &LinkConditions) -> Duration {
        let mut delay = c.latency;
        if !c.jitter.is_zero() {
            let jitter_ns = u64::try_from(c.jitter.as_nanos()).unwrap_or(u64::MAX);
            delay += Duration::from_nanos(self.rng.next_u64() % jitter_ns);
        }
        if self.chance(c.reorder) {
            delay += c.reorder_delay;
        }
        delay
    }

    fn chance(&mut self, probability: f64) -> bool {
        probability > 0.0 && (self.rng.next_u64() as f64) < probability * (u64::MAX as f64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn drain(net: &mut Netem<u32>, until: Timestamp) -> Vec<(Timestamp, u32)> {
        let mut out = Vec::new();
        while let Some(at) = net.next_delivery().filter(|&t| t <= until) {
            let (_, m) = net.poll(at).unwrap();
            out.push((at, m));
        }
        out
    }

    #[test]
    fn clean_link_delivers_in_order_after_the_latency() {
        let mut net = Netem::new(1);
        let link = net.add_link(LinkConditions::default());
        for i in 0..5 {
            net.send(Timestamp::from_millis(i), link, i as u32);
        }
        assert_eq!(net.poll(Timestamp::from_millis(9)), None);
        let got = drain(&mut net, Timestamp::from_secs(1));
        assert_eq!(
            got.iter().map(|g| g.1).collect::<Vec<_>>(),
            vec![0, 1, 2, 3, 4]
        );
        assert_eq!(got[0].0, Timestamp::from_millis(10));
        assert_eq!(net.stats(link).unwrap().delivered, 5);
    }

    #[test]
    fn cut_links_lose_everything_and_healed_links_deliver_again() {
        let mut net = Netem::new(1);
        let link = net.add_link(LinkConditions::default());
        net.conditions_mut(link).unwrap().up = false;
        net.send(Timestamp::ZERO, link, 1);
        net.conditions_mut(link).unwrap().up = true;
        net.send(Timestamp::ZERO, link, 2);
        assert_eq!(drain(&mut net, Timestamp::from_secs(1)).len(), 1);
        assert_eq!(net.stats(link).unwrap().cut, 1);
    }

    #[test]
    fn loss_duplication_and_reordering_follow_their_rates_and_the_seed() {
        let run = |seed| {
            let mut net = Netem::new(seed);
            let link = net.add_link(LinkConditions {
                loss: 0.1,
                duplicate: 0.05,
                reorder: 0.1,
                jitter: Duration::from_millis(1),
                ..LinkConditions::default()
            });
            for i in 0..10_000u32 {
                net.send(Timestamp::from_millis(u64::from(i)), link, i);
            }
            (
                drain(&mut net, Timestamp::from_secs(100)),
                net.stats(link).unwrap(),
            )
        };
        let (a, stats) = run(7);
        assert_eq!(run(7).0, a, "same seed, same deliveries");
        assert_ne!(run(8).0, a);
        assert!((900..1100).contains(&stats.lost), "{stats:?}");
        assert!((400..600).contains(&stats.duplicated), "{stats:?}");
        let reordered = a.windows(2).filter(|w| w[1].1 < w[0].1).count();
        assert!(reordered > 500, "{reordered}");
        assert_eq!(stats.delivered as usize, a.len());
    }
}
