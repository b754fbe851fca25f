//! IKEv1 (RFC 2409) for AWS's default tunnel profile: Main Mode with a
//! pre-shared key, Quick Mode with PFS, Informational exchanges (DELETE,
//! notifications, RFC 3706 dead peer detection) and RFC 3947 NAT traversal.
//!
//! - [`wire`]: the ISAKMP codec (RFC 2408, IPsec DOI RFC 2407, NAT-D).
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
