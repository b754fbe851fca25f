#![forbid(unsafe_code)]
pub mod bgp;
pub mod entropy;
pub mod esp;
pub mod time;
