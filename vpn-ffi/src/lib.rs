//! C ABI over vpn-core.
//!
//! The conventions follow rustls-ffi:
//!
//! - Objects are opaque handles created by `*_new` and released by `*_free`
//!   (NULL-safe).
//! - Every fallible call returns a [`vpn_result`]; `VPN_OK` (0) is success.
//! - Buffers are passed as a pointer followed by their length; a call that
//!   produces a length writes it through an `out_n` pointer.
//! - Outputs are written only on success, with one documented exception:
//!   when a caller buffer is too small the call returns
//!   `VPN_ERR_BUFFER_TOO_SMALL` and writes the size it needs to `*out_n`.
//! - A `(NULL, 0)` buffer is an empty buffer; NULL with a non-zero length is
//!   `VPN_ERR_NULL_ARGUMENT`, as is any other NULL pointer argument.
//! - No panic crosses the boundary: every entry point catches it and returns
//!   `VPN_ERR_PANIC`. An object whose call panicked should be freed.
//! - Time is a `uint64_t` of nanoseconds on a monotonic clock of the
//!   caller's choosing; the library never reads a clock.
//! - Objects are not thread-safe: calls on one object must not overlap.
//!   Distinct objects may be used from distinct threads.
//!
//! The binding is thin: all protocol behaviour lives in `vpn-core`.

#![deny(unsafe_op_in_unsafe_fn)]
#![deny(clippy::undocumented_unsafe_blocks)]
// C names are written as they appear in the header.
#![allow(non_camel_case_types)]

mod bgp;
mod config;
mod connection;
mod esp;
mod result;

pub use bgp::*;
pub use config::*;
pub use connection::*;
pub use esp::*;
pub use result::*;

#[cfg(test)]
mod config_tests;
#[cfg(test)]
mod tests;
