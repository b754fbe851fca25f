//! Behaviour tests of the BGP speaker: FSM pairs, RIB, policy, whole speakers.

mod fuzz;
#[allow(dead_code)]
pub mod harness;
mod rib;
mod session;
mod speaker;
