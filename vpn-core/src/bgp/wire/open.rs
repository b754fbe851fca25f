//! OPEN message (RFC 4271 §4.2) with capabilities (RFC 5492) and extended optional
//! parameters length (RFC 9072).

use std::net::Ipv4Addr;

use bytes::{BufMut, Bytes};

use super::attribute::AS_TRANS;
use super::capability::{Capability, CapabilityCode};
use super::notification::{open_subcode, ErrorCode, NotificationMessage};
use super::{DecodeError, Reader};

/// The only BGP version there is.
pub const BGP_VERSION: u8 = 4;

/// Optional parameter type of Capabilities (RFC 5492).
const PARAM_CAPABILITIES: u8 = 2;
/// RFC 9072 marker: this value as both length and first type means "extended".
const PARAM_EXTENDED: u8 = 255;

/// OPEN message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenMessage {
    pub version: u8,
    /// 2-octet "My Autonomous System"; AS_TRANS when the real AS needs 4 octets.
    pub my_as: u16,
    pub hold_time: u16,
    pub bgp_id: Ipv4Addr,
    /// Kept as received (capabilities grouped per parameter) for byte-exact round trips.
    pub params: Vec<OptionalParameter>,
}

/// One optional parameter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OptionalParameter {
    Capabilities(Vec<Capability>),
    /// Other parameter types (e.g. deprecated authentication), refused by `validate`.
    Unknown {
        param_type: u8,
        value: Bytes,
    },
}

impl OptionalParameter {
    fn value_len(&self) -> usize {
        match self {
            OptionalParameter::Capabilities(caps) => caps.iter().map(|c| 2 + c.value_len()).sum(),
            OptionalParameter::Unknown { value, .. } => value.len(),
        }
    }
}

fn open_error(subcode: u8, reason: &'static str) -> DecodeError {
    DecodeError::Open {
        subcode,
        data: Bytes::new(),
        reason,
    }
}

impl OpenMessage {
    /// An OPEN for `asn`, putting AS_TRANS in My AS when `asn` needs 4 octets (the
    /// caller includes [`Capability::FourOctetAs`] in `capabilities`).
    pub fn new(asn: u32, hold_time: u16, bgp_id: Ipv4Addr, capabilities: Vec<Capability>) -> Self {
        Self {
            version: BGP_VERSION,
            my_as: u16::try_from(asn).unwrap_or(AS_TRANS),
            hold_time,
            bgp_id,
            params: if capabilities.is_empty() {
                Vec::new()
            } else {
                vec![OptionalParameter::Capabilities(capabilities)]
            },
        }
    }

    /// All capabilities across all Capabilities parameters.
    pub fn capabilities(&self) -> impl Iterator<Item = &Capability> {
        self.params.iter().flat_map(|p| match p {
            OptionalParameter::Capabilities(caps) => caps.as_slice(),
            OptionalParameter::Unknown { .. } => &[],
        })
    }

    /// The 4-octet AS capability's value, if advertised.
    pub fn four_octet_as(&self) -> Option<u32> {
        self.capabilities().find_map(|c| match c {
            Capability::FourOctetAs(asn) => Some(*asn),
            _ => None,
        })
    }

    /// The speaker's real AS: the 4-octet capability's, else My AS (RFC 6793 §4.1).
    pub fn asn(&self) -> u32 {
        self.four_octet_as().unwrap_or(u32::from(self.my_as))
    }

    /// Semantic checks of RFC 4271 §6.2 that the codec leaves to the session: hold time,
    /// identifier, unknown parameters and (if given) the expected peer AS.
    pub fn validate(&self, expected_peer_as: Option<u32>) -> Result<(), NotificationMessage> {
        let err = |sub: u8| NotificationMessage::new(ErrorCode::OPEN_MESSAGE, sub, Bytes::new());
        if self.version != BGP_VERSION {
            return Err(NotificationMessage::unsupported_version());
        }
        if let Some(OptionalParameter::Unknown { .. }) = self
            .params
            .iter()
            .find(|p| matches!(p, OptionalParameter::Unknown { .. }))
        {
            return Err(err(open_subcode::UNSUPPORTED_OPTIONAL_PARAMETER));
        }
        if expected_peer_as.is_some_and(|asn| asn != self.asn()) {
            return Err(err(open_subcode::BAD_PEER_AS));
        }
        if self.bgp_id.is_unspecified() {
            return Err(err(open_subcode::BAD_BGP_IDENTIFIER));
        }
        if self.hold_time == 1 || self.hold_time == 2 {
            return Err(err(open_subcode::UNACCEPTABLE_HOLD_TIME));
        }
        Ok(())
    }

    fn params_len_short(&self) -> usize {
        self.params.iter().map(|p| 2 + p.value_len()).sum()
    }

    /// RFC 9072 encoding is used only when the classic one-byte lengths cannot hold it.
    fn needs_extended_params(&self) -> bool {
        self.params_len_short() > 254 || self.params.iter().any(|p| p.value_len() > 255)
    }

    pub(crate) fn body_len(&self) -> usize {
        10 + if self.needs_extended_params() {
            3 + self.params.iter().map(|p| 3 + p.value_len()).sum::<usize>()
        } else {
            self.params_len_short()
        }
    }

    pub(crate) fn encode_body(&self, buf: &mut impl BufMut) {
        buf.put_u8(self.version);
        buf.put_u16(self.my_as);
        buf.put_u16(self.hold_time);
        buf.put_u32(u32::from(self.bgp_id));
        let extended = self.needs_extended_params();
        if extended {
            buf.put_u8(PARAM_EXTENDED);
            buf.put_u8(PARAM_EXTENDED);
            let len: usize = self.params.iter().map(|p| 3 + p.value_len()).sum();
            buf.put_u16(len.min(usize::from(u16::MAX)) as u16);
        } else {
            buf.put_u8(self.params_len_short() as u8);
        }
        for p in &self.params {
            let (ptype, len) = match p {
                OptionalParameter::Capabilities(_) => (PARAM_CAPABILITIES, p.value_len()),
                OptionalParameter::Unknown { param_type, value } => (*param_type, value.len()),
            };
            buf.put_u8(ptype);
            if extended {
                buf.put_u16(len.min(usize::from(u16::MAX)) as u16);
            } else {
                buf.put_u8(len as u8);
            }
            match p {
                OptionalParameter::Capabilities(caps) => caps.iter().for_each(|c| c.encode(buf)),
                OptionalParameter::Unknown { value, .. } => buf.put_slice(value),
            }
        }
    }

    /// Parses the body (after the header). Only structural errors and a wrong version
    /// fail here; see [`OpenMessage::validate`] for the rest.
    pub fn decode(body: &Bytes) -> Result<Self, DecodeError> {
        let short = || open_error(open_subcode::UNSPECIFIC, "message shorter than its fields");
        let mut r = Reader::new(body);
        let version = r.u8().ok_or_else(short)?;
        if version != BGP_VERSION {
            let n = NotificationMessage::unsupported_version();
            return Err(DecodeError::Open {
                subcode: n.subcode,
                data: n.data,
                reason: "unsupported version",
            });
        }
        let my_as = r.u16().ok_or_else(short)?;
        let hold_time = r.u16().ok_or_else(short)?;
        let bgp_id = Ipv4Addr::from(r.u32().ok_or_else(short)?);
        let mut params_len = usize::from(r.u8().ok_or_else(short)?);
        let mut extended = false;
        if params_len == usize::from(PARAM_EXTENDED) && body.get(10) == Some(&PARAM_EXTENDED) {
            r.u8().ok_or_else(short)?;
            params_len = usize::from(r.u16().ok_or_else(short)?);
            extended = true;
        }
        if params_len != r.remaining() {
            return Err(open_error(
                open_subcode::UNSPECIFIC,
                "optional parameters length disagrees with message length",
            ));
        }
        let bad = || open_error(open_subcode::UNSPECIFIC, "optional parameter overruns");
        let mut params = Vec::new();
        while r.remaining() > 0 {
            let param_type = r.u8().ok_or_else(bad)?;
            let len = if extended {
                r.u16().map(usize::from)
            } else {
                r.u8().map(usize::from)
            };
            let value = r.bytes(len.ok_or_else(bad)?).ok_or_else(bad)?;
            if param_type == PARAM_CAPABILITIES {
                params.push(OptionalParameter::Capabilities(decode_capabilities(
                    &value,
                )?));
            } else {
                params.push(OptionalParameter::Unknown { param_type, value });
            }
        }
        Ok(Self {
            version,
            my_as,
            hold_time,
            bgp_id,
            params,
        })
    }
}

fn decode_capabilities(value: &Bytes) -> Result<Vec<Capability>, DecodeError> {
    let bad = || {
        open_error(
            open_subcode::UNSPECIFIC,
            "capability overruns its parameter",
        )
    };
    let mut r = Reader::new(value);
    let mut caps = Vec::new();
    while r.remaining() > 0 {
        let code = CapabilityCode(r.u8().ok_or_else(bad)?);
        let len = usize::from(r.u8().ok_or_else(bad)?);
        let cap_value = r.bytes(len).ok_or_else(bad)?;
        let cap = Capability::decode(code, cap_value).ok_or_else(|| {
            open_error(
                open_subcode::UNSPECIFIC,
                "known capability with a malformed value",
            )
        })?;
        caps.push(cap);
    }
    Ok(caps)
}
