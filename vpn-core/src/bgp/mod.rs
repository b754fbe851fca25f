//! BGP-4 speaker for routing over the tunnels. So far: the wire format ([`wire`]).
//! The FSM, RIB and policy will sit on top of it, sans-IO like the rest of the crate.

pub mod wire;
