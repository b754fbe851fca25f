//! IKE: the key exchange protocols that negotiate ESP SAs.
//!
//! - [`proposal`]: algorithm proposals in strongSwan's syntax, their wire
//!   form and RFC 7296 §2.7 selection; shared by IKEv2, IKEv1 and config.
//! - [`v2`]: IKEv2 (RFC 7296): wire format and SK payload protection.

pub mod proposal;
pub mod v1;
pub mod v2;
