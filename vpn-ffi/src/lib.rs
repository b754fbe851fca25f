//! C ABI over vpn-core.
