//! Tools for deterministic simulation: a seeded network emulator on a
//! virtual clock. Nothing here touches a real network or clock; the same
//! seed gives the same deliveries, so a simulation's event log replays
//! byte for byte.

pub mod lab;
mod netem;
mod two_sites;

pub use netem::{LinkConditions, LinkStats, Netem};
pub use two_sites::{describe, TwoSites};
