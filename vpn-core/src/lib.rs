#![forbid(unsafe_code)]
pub mod bgp;
pub mod config;
pub mod crypto;
pub mod entropy;
pub mod esp;
pub mod ike;
pub mod time;
pub mod tunnel;
