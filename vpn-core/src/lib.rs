//! The protocol core of an embeddable site-to-site VPN: ESP, IKE, BGP,
//! routing and tunnel redundancy as pure state machines.
//!
//! Nothing here opens a socket, spawns a thread, sleeps or reads a clock.
//! Every input comes in as an argument (received bytes, the current
//! [`time::Timestamp`], commands) and every output is polled (bytes to send,
//! events, the next deadline). Randomness comes from an injected
//! [`entropy::Entropy`], so a seeded simulation replays exactly. The same core
//! serves a Rust async runtime, a C super-loop (`vpn-ffi`) and Python (`vpn-py`).
//!
//! - [`esp`]: ESP security associations, sealing and opening in place.
//! - [`crypto`]: PRFs, IKE key derivation, Diffie-Hellman groups.
//! - [`ike`]: IKE proposals and the IKEv2 wire format and SK payload.
//! - [`bgp`]: BGP-4 wire format.
//! - [`tunnel`]: one tunnel, the object a gateway drives.
//! - [`connection`]: two redundant tunnels, routing and failover: the object users hold.
//! - [`route`]: the route table that picks tunnels for inner packets.
//! - [`sim`]: a seeded network emulator for deterministic simulations.
//! - [`config`]: typed connection configuration, AWS import, validation, export.

#![forbid(unsafe_code)]
pub mod bgp;
pub mod config;
pub mod crypto;
pub mod entropy;
pub mod connection;
pub mod esp;
pub mod ike;
pub mod route;
pub mod sim;
pub mod time;
pub mod tunnel;
