//! IKEv1 (RFC 2409) for AWS's default tunnel profile: Main Mode with a
//! pre-shared key, Quick Mode with PFS, Informational exchanges (DELETE,
//! notifications, RFC 3706 dead peer detection) and RFC 3947 NAT traversal.
//!
//! - [`wire`]: the ISAKMP codec (RFC 2408 header and payloads, IPsec DOI
//!   attributes of RFC 2407, NAT-D of RFC 3947).
//! - [`transforms`]: IKEv1 SA payloads from the shared [`IkeProposal`] /
//!   [`EspProposal`] types, and strict selection of a peer's offer.
//! - [`Ikev1Session`]: one peer's state machine, sans-IO. It initiates on
//!   [`Ikev1Session::connect`] and answers a peer's Main Mode at any time;
//!   children come out as [`Ikev1Event::ChildSaNegotiated`] with keys, ready
//!   for [`NegotiatedChildSa::build_esp_sas`].
//!
//! Interop: checked by hand against strongSwan 5.9.8 (charon with
//! kernel-libipsec, which always floats to 4500): both roles, AWS's
//! `aes128-sha1-modp1024`, `aes256-sha256-modp2048`, `aes256-sha1-modp1024`
//! (Appendix B key expansion), ESP `aes256gcm16-modp2048`, child and phase 1
//! rekeys from either side, DPD both ways, DELETE, wrong PSK and proposal
//! mismatches in both phases.
//!
//! ```
//! use std::net::SocketAddr;
//! use vpn_core::config::Secret;
//! use vpn_core::entropy::SeededEntropy;
//! use vpn_core::ike::v1::{Ikev1Event, Ikev1Session, Ikev1Settings};
//! use vpn_core::time::Timestamp;
//!
//! let cgw: SocketAddr = "192.0.2.1:500".parse().unwrap();
//! let aws: SocketAddr = "198.51.100.1:500".parse().unwrap();
//! let mut a = Ikev1Session::new(
//!     Ikev1Settings::aws_default(cgw, aws, Secret::from("psk")),
//!     Timestamp::ZERO,
//!     Box::new(SeededEntropy::new(1)),
//! )?;
//! let mut b = Ikev1Session::new(
//!     Ikev1Settings::aws_default(aws, cgw, Secret::from("psk")),
//!     Timestamp::ZERO,
//!     Box::new(SeededEntropy::new(2)),
//! )?;
//! a.connect(Timestamp::ZERO)?;
//! // Carry datagrams both ways until both are quiet (a real caller uses sockets).
//! loop {
//!     let mut moved = false;
//!     while let Some((from, to, bytes)) = a.poll_transmit() {
//!         let _ = b.handle_datagram(Timestamp::ZERO, to, from, &bytes);
//!         moved = true;
//!     }
//!     while let Some((from, to, bytes)) = b.poll_transmit() {
//!         let _ = a.handle_datagram(Timestamp::ZERO, to, from, &bytes);
//!         moved = true;
//!     }
//!     if !moved {
//!         break;
//!     }
//! }
//! let child = std::iter::from_fn(|| a.poll_event())
//!     .find_map(|e| match e {
//!         Ikev1Event::ChildSaNegotiated(c) => Some(c),
//!         _ => None,
//!     })
//!     .expect("child SA");
//! let (_inbound, _outbound) = child.build_esp_sas(Timestamp::ZERO, 1024, &mut SeededEntropy::new(3))?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! [`IkeProposal`]: crate::ike::proposal::IkeProposal
//! [`EspProposal`]: crate::ike::proposal::EspProposal

mod crypt;
mod session;
pub mod transforms;
mod types;
pub mod wire;

pub use session::{Ikev1Session, REKEY_DELETE_DELAY};
pub use types::{
    DeleteReason, DeletedSa, Identity, Ikev1Error, Ikev1Event, Ikev1Settings, NegotiatedChildSa,
    RetransmitSettings, IKE_PORT, NAT_T_PORT,
};

#[cfg(test)]
mod tests;
