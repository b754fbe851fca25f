//! IKEv2 (RFC 7296).
//!
//! - [`wire`]: the message codec (header, payloads), no behaviour.
//! - [`sk`]: protection of the Encrypted payload (RFC 7296 §3.14, RFC 5282, RFC 7634).

pub mod sk;
pub mod wire;
