//! The session's timers as absolute deadlines in one small table (after quinn-proto's
//! `TimerTable`): arming replaces, stopping clears, and the earliest deadline is what
//! `poll_timeout` reports.

use crate::time::Timestamp;

use super::ConnectionId;

/// Every timer a [`super::Session`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Timer {
    /// RFC 4271 ConnectRetryTimer.
    ConnectRetry,
    /// Backoff after an error before leaving Idle (the RFC's IdleHoldTimer).
    IdleHold,
    /// HoldTimer of one connection.
    Hold(ConnectionId),
    /// KeepaliveTimer of one connection.
    Keepalive(ConnectionId),
    /// RFC 4724: how long to wait for a restarting peer to come back.
    GrRestart,
    /// RFC 4724: how long to keep stale routes after the peer came back, waiting for
    /// End-of-RIB.
    GrStale,
}

const COUNT: usize = 8;

impl Timer {
    const ALL: [Timer; COUNT] = [
        Timer::ConnectRetry,
        Timer::IdleHold,
        Timer::Hold(ConnectionId::Outbound),
        Timer::Hold(ConnectionId::Inbound),
        Timer::Keepalive(ConnectionId::Outbound),
        Timer::Keepalive(ConnectionId::Inbound),
        Timer::GrRestart,
        Timer::GrStale,
    ];

    fn index(self) -> usize {
        match self {
            Timer::ConnectRetry => 0,
            Timer::IdleHold => 1,
            Timer::Hold(c) => 2 + c.index(),
            Timer::Keepalive(c) => 4 + c.index(),
            Timer::GrRestart => 6,
            Timer::GrStale => 7,
        }
    }
}

/// Deadlines of all timers; `None` = stopped.
#[derive(Debug, Clone, Default)]
pub struct TimerTable {
    deadlines: [Option<Timestamp>; COUNT],
}

impl TimerTable {
    pub fn set(&mut self, timer: Timer, at: Timestamp) {
        self.deadlines[timer.index()] = Some(at);
    }

    pub fn stop(&mut self, timer: Timer) {
        self.deadlines[timer.index()] = None;
    }

    pub fn get(&self, timer: Timer) -> Option<Timestamp> {
        self.deadlines[timer.index()]
    }

    pub fn is_armed(&self, timer: Timer) -> bool {
        self.get(timer).is_some()
    }

    pub fn stop_all(&mut self) {
        self.deadlines = [None; COUNT];
    }

    /// The earliest deadline.
    pub fn next(&self) -> Option<Timestamp> {
        self.deadlines.iter().flatten().min().copied()
    }

    /// Stops and returns the earliest timer due at `now`, if any.
    pub fn take_expired(&mut self, now: Timestamp) -> Option<Timer> {
        let (i, _) = self
            .deadlines
            .iter()
            .enumerate()
            .filter_map(|(i, d)| d.map(|d| (i, d)))
            .filter(|&(_, d)| d <= now)
            .min_by_key(|&(_, d)| d)?;
        self.deadlines[i] = None;
        Some(Timer::ALL[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn earliest_first_and_spurious_calls_harmless() {
        let mut t = TimerTable::default();
        assert_eq!(t.take_expired(Timestamp::from_secs(100)), None);
        t.set(Timer::GrStale, Timestamp::from_secs(5));
        t.set(Timer::Hold(ConnectionId::Inbound), Timestamp::from_secs(3));
        assert_eq!(t.next(), Some(Timestamp::from_secs(3)));
        assert_eq!(t.take_expired(Timestamp::from_secs(2)), None);
        assert_eq!(
            t.take_expired(Timestamp::from_secs(9)),
            Some(Timer::Hold(ConnectionId::Inbound))
        );
        assert_eq!(
            t.take_expired(Timestamp::from_secs(9)),
            Some(Timer::GrStale)
        );
        assert_eq!(t.next(), None);
    }
}
