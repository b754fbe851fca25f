//! UPDATE message (RFC 4271 §4.3) and RFC 7606 revised error handling.

use bytes::{BufMut, Bytes};

use super::attribute::{escalate, reset, PathAttributes};
use super::notification::{update_subcode, NotificationMessage};
use super::prefix::Ipv4Nlri;
use super::{Reader, WireContext};

/// What RFC 7606 says to do with an UPDATE whose attributes are in error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ErrorAction {
    /// The malformed attribute(s) were dropped; the rest of the UPDATE is usable.
    AttributeDiscard,
    /// Withdraw every prefix the UPDATE announces (NLRI field and MP_REACH_NLRI).
    TreatAsWithdraw,
    /// Send this NOTIFICATION and close the session.
    SessionReset(NotificationMessage),
}

impl ErrorAction {
    pub(crate) fn severity(&self) -> u8 {
        match self {
            ErrorAction::AttributeDiscard => 1,
            ErrorAction::TreatAsWithdraw => 2,
            ErrorAction::SessionReset(_) => 3,
        }
    }
}

/// UPDATE message. IPv4 unicast NLRI are in the classic fields; other families in
/// `attributes.mp_reach` / `attributes.mp_unreach`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UpdateMessage {
    pub withdrawn: Ipv4Nlri,
    pub attributes: PathAttributes,
    pub nlri: Ipv4Nlri,
}

/// An UPDATE as decoded, and the RFC 7606 action its errors call for (`None`: clean).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodedUpdate {
    pub update: UpdateMessage,
    pub action: Option<ErrorAction>,
}

impl UpdateMessage {
    /// True for the End-of-RIB marker of IPv4 unicast (RFC 4724 §2): an empty UPDATE.
    pub fn is_end_of_rib(&self) -> bool {
        self.withdrawn.is_empty()
            && self.nlri.is_empty()
            && self.attributes == PathAttributes::default()
    }

    pub(crate) fn body_len(&self, ctx: &WireContext) -> usize {
        4 + self.withdrawn.encoded_len()
            + self.attributes.encoded_len(ctx)
            + self.nlri.encoded_len()
    }

    pub(crate) fn encode_body(&self, buf: &mut impl BufMut, ctx: &WireContext) {
        // Lengths fit: `Message::encode` refused anything over 4096 bytes.
        buf.put_u16(self.withdrawn.encoded_len() as u16);
        buf.put_slice(self.withdrawn.as_bytes());
        buf.put_u16(self.attributes.encoded_len(ctx) as u16);
        self.attributes.encode(buf, ctx);
        buf.put_slice(self.nlri.as_bytes());
    }

    /// Decodes an UPDATE body (after the header). Never fails outright: a session reset
    /// is reported as [`ErrorAction::SessionReset`] with whatever had parsed.
    pub fn decode(body: &Bytes, ctx: &WireContext) -> DecodedUpdate {
        let mut update = UpdateMessage::default();
        let fail = |update, subcode| DecodedUpdate {
            update,
            action: Some(reset(subcode, Bytes::new())),
        };
        let mut r = Reader::new(body);
        // RFC 4271 §6.3: lengths that overrun the message make a Malformed Attribute List.
        let Some(withdrawn) = r.u16().and_then(|n| r.bytes(usize::from(n))) else {
            return fail(update, update_subcode::MALFORMED_ATTRIBUTE_LIST);
        };
        let Some(attrs_raw) = r.u16().and_then(|n| r.bytes(usize::from(n))) else {
            return fail(update, update_subcode::MALFORMED_ATTRIBUTE_LIST);
        };
        let nlri_raw = r.rest();
        // RFC 7606 §5.3: an NLRI field that cannot be parsed resets the session.
        match Ipv4Nlri::decode(withdrawn) {
            Ok(w) => update.withdrawn = w,
            Err(_) => return fail(update, update_subcode::INVALID_NETWORK_FIELD),
        }
        let (attributes, mut action) = PathAttributes::decode(&attrs_raw, ctx);
        update.attributes = attributes;
        if matches!(action, Some(ErrorAction::SessionReset(_))) {
            return DecodedUpdate { update, action };
        }
        match Ipv4Nlri::decode(nlri_raw) {
            Ok(n) => update.nlri = n,
            Err(_) => return fail(update, update_subcode::INVALID_NETWORK_FIELD),
        }
        // RFC 7606 §3 (d): missing well-known mandatory attributes when anything is
        // announced: treat-as-withdraw. NEXT_HOP is needed only for the classic NLRI
        // field (RFC 4760 §3).
        let a = &update.attributes;
        let announces =
            !update.nlri.is_empty() || a.mp_reach.as_ref().is_some_and(|m| !m.nlri.is_empty());
        let missing = a.origin.is_none()
            || a.as_path.is_none()
            || (!update.nlri.is_empty() && a.next_hop.is_none());
        if announces && missing {
            escalate(&mut action, ErrorAction::TreatAsWithdraw);
        }
        DecodedUpdate { update, action }
    }
}
