//! Tools for deterministic simulation: a seeded network emulator on a
//! virtual clock. Nothing here touches a real network or clock; the same
//! seed gives the same deliveries, so a simulation's event log replays
//! byte for byte.

mod netem;

pub use netem::{LinkConditions, LinkStats, Netem};
