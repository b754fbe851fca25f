//! Capabilities advertised in OPEN (RFC 5492).

use bytes::{BufMut, Bytes};

use super::prefix::{Afi, Safi};
use super::Reader;

/// Capability code (IANA). Open: unknown capabilities are kept raw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CapabilityCode(pub u8);

impl CapabilityCode {
    /// RFC 4760.
    pub const MULTIPROTOCOL: CapabilityCode = CapabilityCode(1);
    /// RFC 2918.
    pub const ROUTE_REFRESH: CapabilityCode = CapabilityCode(2);
    /// RFC 8950.
    pub const EXTENDED_NEXT_HOP: CapabilityCode = CapabilityCode(5);
    /// RFC 8654.
    pub const EXTENDED_MESSAGE: CapabilityCode = CapabilityCode(6);
    /// RFC 4724.
    pub const GRACEFUL_RESTART: CapabilityCode = CapabilityCode(64);
    /// RFC 6793.
    pub const FOUR_OCTET_AS: CapabilityCode = CapabilityCode(65);
    /// RFC 7911.
    pub const ADD_PATH: CapabilityCode = CapabilityCode(69);
    /// RFC 7313.
    pub const ENHANCED_ROUTE_REFRESH: CapabilityCode = CapabilityCode(70);
}

/// One capability. Known ones are typed; the rest keep their value bytes so they can
/// be logged, echoed in Unsupported Capability errors and re-encoded unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Capability {
    Multiprotocol { afi: Afi, safi: Safi },
    RouteRefresh,
    GracefulRestart(GracefulRestart),
    FourOctetAs(u32),
    Unknown { code: CapabilityCode, value: Bytes },
}

/// Graceful Restart capability value (RFC 4724 §3). Flag fields are kept whole so
/// bits defined later (e.g. RFC 8538's N bit) round-trip.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GracefulRestart {
    /// The 4 restart flag bits, in the top nibble as on the wire (0x80 = R).
    pub flags: u8,
    /// Restart time in seconds (12 bits).
    pub restart_time: u16,
    pub families: Vec<GracefulRestartFamily>,
}

/// Per address family entry of the Graceful Restart capability.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GracefulRestartFamily {
    pub afi: Afi,
    pub safi: Safi,
    /// Address family flags; 0x80 = forwarding state preserved.
    pub flags: u8,
}

impl GracefulRestart {
    /// R bit: the sender has restarted.
    pub const RESTART_STATE: u8 = 0x80;
    /// N bit (RFC 8538): the sender supports graceful restart on NOTIFICATION.
    pub const NOTIFICATION: u8 = 0x40;

    pub fn restart_state(&self) -> bool {
        self.flags & Self::RESTART_STATE != 0
    }

    pub fn notification(&self) -> bool {
        self.flags & Self::NOTIFICATION != 0
    }
}

impl GracefulRestartFamily {
    pub const FORWARDING_STATE: u8 = 0x80;

    pub fn forwarding_preserved(&self) -> bool {
        self.flags & Self::FORWARDING_STATE != 0
    }
}

/// Graceful-restart families that fit a 255-byte capability value.
const MAX_GR_FAMILIES: usize = (255 - 2) / 4;

impl Capability {
    pub fn code(&self) -> CapabilityCode {
        match self {
            Capability::Multiprotocol { .. } => CapabilityCode::MULTIPROTOCOL,
            Capability::RouteRefresh => CapabilityCode::ROUTE_REFRESH,
            Capability::GracefulRestart(_) => CapabilityCode::GRACEFUL_RESTART,
            Capability::FourOctetAs(_) => CapabilityCode::FOUR_OCTET_AS,
            Capability::Unknown { code, .. } => *code,
        }
    }

    /// Length of the value (without code and length bytes), as encoded.
    pub fn value_len(&self) -> usize {
        match self {
            Capability::Multiprotocol { .. } => 4,
            Capability::RouteRefresh => 0,
            Capability::GracefulRestart(gr) => 2 + 4 * gr.families.len().min(MAX_GR_FAMILIES),
            Capability::FourOctetAs(_) => 4,
            Capability::Unknown { value, .. } => value.len().min(255),
        }
    }

    /// Code, length and value. A value cannot exceed 255 bytes: longer unknown values
    /// are truncated and extra graceful-restart families dropped (decoded input never
    /// has either), so the length byte always matches what is written.
    pub fn encode(&self, buf: &mut impl BufMut) {
        buf.put_u8(self.code().0);
        buf.put_u8(self.value_len().min(255) as u8);
        match self {
            Capability::Multiprotocol { afi, safi } => {
                buf.put_u16(afi.0);
                buf.put_u8(0);
                buf.put_u8(safi.0);
            }
            Capability::RouteRefresh => {}
            Capability::GracefulRestart(gr) => {
                let head = (u16::from(gr.flags & 0xf0) << 8) | (gr.restart_time & 0x0fff);
                buf.put_u16(head);
                for f in gr.families.iter().take(MAX_GR_FAMILIES) {
                    buf.put_u16(f.afi.0);
                    buf.put_u8(f.safi.0);
                    buf.put_u8(f.flags);
                }
            }
            Capability::FourOctetAs(asn) => buf.put_u32(*asn),
            Capability::Unknown { value, .. } => buf.put_slice(&value[..value.len().min(255)]),
        }
    }

    /// Decodes one capability value; `None` when a known capability has the wrong size.
    pub(crate) fn decode(code: CapabilityCode, value: Bytes) -> Option<Capability> {
        let mut r = Reader::new(&value);
        let cap = match code {
            CapabilityCode::MULTIPROTOCOL if value.len() == 4 => {
                let afi = Afi(r.u16()?);
                let _reserved = r.u8()?;
                Capability::Multiprotocol {
                    afi,
                    safi: Safi(r.u8()?),
                }
            }
            CapabilityCode::ROUTE_REFRESH if value.is_empty() => Capability::RouteRefresh,
            CapabilityCode::FOUR_OCTET_AS if value.len() == 4 => Capability::FourOctetAs(r.u32()?),
            CapabilityCode::GRACEFUL_RESTART
                if value.len() >= 2 && (value.len() - 2).is_multiple_of(4) =>
            {
                let head = r.u16()?;
                let mut gr = GracefulRestart {
                    flags: (head >> 8) as u8 & 0xf0,
                    restart_time: head & 0x0fff,
                    families: Vec::with_capacity((value.len() - 2) / 4),
                };
                while r.remaining() > 0 {
                    gr.families.push(GracefulRestartFamily {
                        afi: Afi(r.u16()?),
                        safi: Safi(r.u8()?),
                        flags: r.u8()?,
                    });
                }
                Capability::GracefulRestart(gr)
            }
            CapabilityCode::MULTIPROTOCOL
            | CapabilityCode::ROUTE_REFRESH
            | CapabilityCode::FOUR_OCTET_AS
            | CapabilityCode::GRACEFUL_RESTART => return None,
            code => Capability::Unknown { code, value },
        };
        Some(cap)
    }
}
