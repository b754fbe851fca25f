//! ROUTE-REFRESH message (RFC 2918, subtypes from RFC 7313).

use bytes::{BufMut, Bytes};

use super::prefix::{Afi, Safi};

/// Ask the peer to resend its Adj-RIB-Out for one address family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RouteRefreshMessage {
    pub afi: Afi,
    /// 0 = normal request; RFC 7313: 1 = begin, 2 = end of route refresh.
    pub subtype: u8,
    pub safi: Safi,
    /// ORF entries (RFC 5291) that may follow a normal request; kept raw.
    pub orf: Bytes,
}

impl RouteRefreshMessage {
    pub const SUBTYPE_NORMAL: u8 = 0;
    pub const SUBTYPE_BEGIN: u8 = 1;
    pub const SUBTYPE_END: u8 = 2;

    pub fn new(afi: Afi, safi: Safi) -> Self {
        Self {
            afi,
            subtype: Self::SUBTYPE_NORMAL,
            safi,
            orf: Bytes::new(),
        }
    }

    /// `None` when the length is invalid (RFC 7313 §5: shorter than 4, or longer for
    /// the begin/end subtypes).
    pub(crate) fn decode(body: &Bytes) -> Option<Self> {
        let &[afi_hi, afi_lo, subtype, safi] = body.get(..4)? else {
            return None;
        };
        if body.len() > 4 && subtype != Self::SUBTYPE_NORMAL {
            return None;
        }
        Some(Self {
            afi: Afi(u16::from_be_bytes([afi_hi, afi_lo])),
            subtype,
            safi: Safi(safi),
            orf: body.slice(4..),
        })
    }

    pub(crate) fn body_len(&self) -> usize {
        4 + self.orf.len()
    }

    pub(crate) fn encode_body(&self, buf: &mut impl BufMut) {
        buf.put_u16(self.afi.0);
        buf.put_u8(self.subtype);
        buf.put_u8(self.safi.0);
        buf.put_slice(&self.orf);
    }
}
