#![forbid(unsafe_code)]
pub mod config;
pub mod crypto;
pub mod entropy;
pub mod esp;
pub mod time;
