//! IKEv2 (RFC 7296).
//!
//! - [`wire`]: the message codec (header, payloads), no behaviour.
//! - [`sk`]: protection of the Encrypted payload (RFC 7296 §3.14, RFC 5282, RFC 7634).
//! - [`settings`]: what a session is configured with.
//! - [`auth`]: PSK AUTH values, NAT detection hashes, cookies.
//! - [`ts`]: traffic selectors and their narrowing.

pub mod auth;
pub mod sa;
pub mod settings;
pub mod sk;
pub mod ts;
pub mod wire;

pub use sa::{ChildParams, IkeState, Ikev2Session, Outgoing, SessionEvent, SessionStatus};
pub use settings::{DpdSettings, Identity, Ikev2Settings, LifetimeSettings, RetransmitSettings};

#[cfg(test)]
mod tests;
