#![forbid(unsafe_code)]
pub mod entropy;
pub mod esp;
pub mod time;
