#![forbid(unsafe_code)]
pub mod crypto;
pub mod entropy;
pub mod esp;
pub mod ike;
pub mod time;
