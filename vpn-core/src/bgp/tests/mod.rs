//! Behaviour tests of the BGP speaker: FSM pairs, RIB, policy, whole speakers.

#[allow(dead_code)]
pub mod harness;
mod session;
mod speaker;
