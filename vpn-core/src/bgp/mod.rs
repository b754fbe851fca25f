//! BGP-4 speaker for routing over the tunnels, sans-IO like the rest of the crate:
//! the wire format ([`wire`]), one neighbour's state machine ([`session`]), the RIBs
//! with best-path selection ([`rib`]), import/export policy ([`policy`]) and the
//! [`speaker::Speaker`] tying them together.

pub mod policy;
pub mod rib;
pub mod session;
pub mod speaker;
pub mod wire;

#[cfg(test)]
mod tests;
