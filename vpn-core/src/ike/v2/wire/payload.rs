//! IKEv2 payloads (RFC 7296 §3.2–§3.16, RFC 7383 §2.5) and their bodies'
//! codec. The generic payload header (next payload, critical bit, length) is
//! handled by the chain functions in [`super`]: payload values here are only
//! the bodies, and the chain fills in lengths and next-payload fields.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::codes::*;
use super::reader::Reader;
use super::WireError;

/// One payload of a message or of a decrypted SK payload's contents.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    /// Security Association (33).
    Sa(SaPayload),
    /// Key Exchange (34).
    Ke(KePayload),
    /// Identification - Initiator (35).
    IdI(IdPayload),
    /// Identification - Responder (36).
    IdR(IdPayload),
    /// Certificate (37).
    Cert(CertPayload),
    /// Certificate Request (38).
    CertReq(CertPayload),
    /// Authentication (39).
    Auth(AuthPayload),
    /// Nonce (40): the nonce bytes (RFC 7296 requires 16..=256 of them; the
    /// codec does not enforce it, the exchange does).
    Nonce(Vec<u8>),
    /// Notify (41).
    Notify(NotifyPayload),
    /// Delete (42).
    Delete(DeletePayload),
    /// Vendor ID (43): opaque bytes.
    VendorId(Vec<u8>),
    /// Traffic Selector - Initiator (44).
    TsI(TsPayload),
    /// Traffic Selector - Responder (45).
    TsR(TsPayload),
    /// Encrypted and Authenticated (46). Always the last payload.
    Encrypted(EncryptedPayload),
    /// Configuration (47).
    Cp(CpPayload),
    /// Extensible Authentication (48): the EAP message, kept opaque.
    Eap(Vec<u8>),
    /// Encrypted and Authenticated Fragment (53, RFC 7383). Always the last payload.
    EncryptedFragment(EncryptedFragmentPayload),
    /// A payload type this codec does not know, kept byte for byte. Only
    /// non-critical ones get here: an unknown critical payload fails decoding
    /// with [`WireError::UnsupportedCriticalPayload`].
    Unknown(UnknownPayload),
}

impl Payload {
    /// The payload's type code.
    pub fn payload_type(&self) -> PayloadType {
        match self {
            Payload::Sa(_) => PayloadType::SA,
            Payload::Ke(_) => PayloadType::KE,
            Payload::IdI(_) => PayloadType::IDI,
            Payload::IdR(_) => PayloadType::IDR,
            Payload::Cert(_) => PayloadType::CERT,
            Payload::CertReq(_) => PayloadType::CERTREQ,
            Payload::Auth(_) => PayloadType::AUTH,
            Payload::Nonce(_) => PayloadType::NONCE,
            Payload::Notify(_) => PayloadType::NOTIFY,
            Payload::Delete(_) => PayloadType::DELETE,
            Payload::VendorId(_) => PayloadType::VENDOR_ID,
            Payload::TsI(_) => PayloadType::TSI,
            Payload::TsR(_) => PayloadType::TSR,
            Payload::Encrypted(_) => PayloadType::SK,
            Payload::Cp(_) => PayloadType::CP,
            Payload::Eap(_) => PayloadType::EAP,
            Payload::EncryptedFragment(_) => PayloadType::SKF,
            Payload::Unknown(u) => u.payload_type,
        }
    }

    /// Decodes the body of a payload of type `payload_type` (the bytes after
    /// the generic header). `next` is the generic header's Next Payload field,
    /// which for SK and SKF names the first inner payload.
    pub(crate) fn decode_body(
        payload_type: PayloadType,
        critical: bool,
        next: PayloadType,
        body: &[u8],
    ) -> Result<Payload, WireError> {
        let mut r = Reader::new(body, payload_type);
        let p = match payload_type {
            PayloadType::SA => Payload::Sa(SaPayload::decode(&mut r)?),
            PayloadType::KE => {
                let group = r.u16()?;
                r.skip(2)?;
                Payload::Ke(KePayload {
                    group,
                    data: r.rest().to_vec(),
                })
            }
            PayloadType::IDI | PayloadType::IDR => {
                let id_type = IdType(r.u8()?);
                r.skip(3)?;
                let id = IdPayload {
                    id_type,
                    data: r.rest().to_vec(),
                };
                if payload_type == PayloadType::IDI {
                    Payload::IdI(id)
                } else {
                    Payload::IdR(id)
                }
            }
            PayloadType::CERT | PayloadType::CERTREQ => {
                let c = CertPayload {
                    encoding: CertEncoding(r.u8()?),
                    data: r.rest().to_vec(),
                };
                if payload_type == PayloadType::CERT {
                    Payload::Cert(c)
                } else {
                    Payload::CertReq(c)
                }
            }
            PayloadType::AUTH => {
                let method = AuthMethod(r.u8()?);
                r.skip(3)?;
                Payload::Auth(AuthPayload {
                    method,
                    data: r.rest().to_vec(),
                })
            }
            PayloadType::NONCE => Payload::Nonce(r.rest().to_vec()),
            PayloadType::NOTIFY => {
                let protocol = ProtocolId(r.u8()?);
                let spi_size = r.u8()?;
                let notify_type = NotifyType(r.u16()?);
                let spi = r.take(spi_size as usize)?.to_vec();
                Payload::Notify(NotifyPayload {
                    protocol,
                    spi,
                    notify_type,
                    data: r.rest().to_vec(),
                })
            }
            PayloadType::DELETE => {
                let protocol = ProtocolId(r.u8()?);
                let spi_size = r.u8()?;
                let count = r.u16()?;
                let mut spis = Vec::new();
                for _ in 0..count {
                    spis.push(r.take(spi_size as usize)?.to_vec());
                }
                r.expect_end("bytes after the last SPI")?;
                Payload::Delete(DeletePayload {
                    protocol,
                    spi_size,
                    spis,
                })
            }
            PayloadType::VENDOR_ID => Payload::VendorId(r.rest().to_vec()),
            PayloadType::TSI | PayloadType::TSR => {
                let ts = TsPayload::decode(&mut r)?;
                if payload_type == PayloadType::TSI {
                    Payload::TsI(ts)
                } else {
                    Payload::TsR(ts)
                }
            }
            PayloadType::SK => Payload::Encrypted(EncryptedPayload {
                inner_first: next,
                body: r.rest().to_vec(),
            }),
            PayloadType::CP => {
                let cfg_type = CfgType(r.u8()?);
                r.skip(3)?;
                let mut attributes = Vec::new();
                while !r.is_empty() {
                    let t = r.u16()?;
                    let len = r.u16()?;
                    attributes.push(CfgAttribute {
                        attr_type: CfgAttributeType(t & 0x7fff),
                        value: r.take(len as usize)?.to_vec(),
                    });
                }
                Payload::Cp(CpPayload {
                    cfg_type,
                    attributes,
                })
            }
            PayloadType::EAP => Payload::Eap(r.rest().to_vec()),
            PayloadType::SKF => {
                let fragment_number = r.u16()?;
                let total_fragments = r.u16()?;
                Payload::EncryptedFragment(EncryptedFragmentPayload {
                    inner_first: next,
                    fragment_number,
                    total_fragments,
                    body: r.rest().to_vec(),
                })
            }
            other => {
                if critical {
                    return Err(WireError::UnsupportedCriticalPayload {
                        payload_type: other,
                    });
                }
                Payload::Unknown(UnknownPayload {
                    payload_type: other,
                    critical,
                    body: r.rest().to_vec(),
                })
            }
        };
        Ok(p)
    }

    /// Appends the body (without the generic header) to `out`.
    pub(crate) fn encode_body(&self, out: &mut Vec<u8>) -> Result<(), WireError> {
        match self {
            Payload::Sa(sa) => sa.encode(out)?,
            Payload::Ke(ke) => {
                out.extend_from_slice(&ke.group.to_be_bytes());
                out.extend_from_slice(&[0, 0]);
                out.extend_from_slice(&ke.data);
            }
            Payload::IdI(id) | Payload::IdR(id) => out.extend_from_slice(&id.body_bytes()),
            Payload::Cert(c) | Payload::CertReq(c) => {
                out.push(c.encoding.0);
                out.extend_from_slice(&c.data);
            }
            Payload::Auth(a) => {
                out.extend_from_slice(&[a.method.0, 0, 0, 0]);
                out.extend_from_slice(&a.data);
            }
            Payload::Nonce(n) => out.extend_from_slice(n),
            Payload::Notify(n) => {
                let spi_size = u8::try_from(n.spi.len()).map_err(|_| WireError::Inconsistent {
                    reason: "notify SPI longer than 255 bytes",
                })?;
                out.extend_from_slice(&[n.protocol.0, spi_size]);
                out.extend_from_slice(&n.notify_type.0.to_be_bytes());
                out.extend_from_slice(&n.spi);
                out.extend_from_slice(&n.data);
            }
            Payload::Delete(d) => {
                let count = u16::try_from(d.spis.len()).map_err(|_| WireError::TooLong {
                    what: "delete payload SPI count",
                })?;
                out.extend_from_slice(&[d.protocol.0, d.spi_size]);
                out.extend_from_slice(&count.to_be_bytes());
                for spi in &d.spis {
                    if spi.len() != d.spi_size as usize {
                        return Err(WireError::Inconsistent {
                            reason: "delete payload SPI differs from its SPI size",
                        });
                    }
                    out.extend_from_slice(spi);
                }
            }
            Payload::VendorId(v) => out.extend_from_slice(v),
            Payload::TsI(ts) | Payload::TsR(ts) => ts.encode(out)?,
            Payload::Encrypted(sk) => out.extend_from_slice(&sk.body),
            Payload::Cp(cp) => {
                out.extend_from_slice(&[cp.cfg_type.0, 0, 0, 0]);
                for a in &cp.attributes {
                    if a.attr_type.0 > 0x7fff {
                        return Err(WireError::Inconsistent {
                            reason: "configuration attribute type above 15 bits",
                        });
                    }
                    out.extend_from_slice(&a.attr_type.0.to_be_bytes());
                    out.extend_from_slice(&len16(a.value.len(), "configuration attribute")?);
                    out.extend_from_slice(&a.value);
                }
            }
            Payload::Eap(e) => out.extend_from_slice(e),
            Payload::EncryptedFragment(f) => {
                out.extend_from_slice(&f.fragment_number.to_be_bytes());
                out.extend_from_slice(&f.total_fragments.to_be_bytes());
                out.extend_from_slice(&f.body);
            }
            Payload::Unknown(u) => out.extend_from_slice(&u.body),
        }
        Ok(())
    }

    /// The critical bit this payload is sent with: set only on unknown
    /// payloads that carried it (RFC 7296 §3.2: zero for defined types).
    pub(crate) fn critical(&self) -> bool {
        matches!(self, Payload::Unknown(u) if u.critical)
    }

    /// The generic header's Next Payload override: SK and SKF carry their
    /// first inner payload's type there instead of the following payload's.
    pub(crate) fn inner_first(&self) -> Option<PayloadType> {
        match self {
            Payload::Encrypted(sk) => Some(sk.inner_first),
            Payload::EncryptedFragment(f) => Some(f.inner_first),
            _ => None,
        }
    }
}

pub(crate) fn len16(len: usize, what: &'static str) -> Result<[u8; 2], WireError> {
    u16::try_from(len)
        .map(u16::to_be_bytes)
        .map_err(|_| WireError::TooLong { what })
}

// ---------------------------------------------------------------------------
// SA
// ---------------------------------------------------------------------------

/// Security Association payload (RFC 7296 §3.3): proposals in preference order.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SaPayload {
    pub proposals: Vec<Proposal>,
}

/// One proposal substructure (RFC 7296 §3.3.1).
///
/// The "last substructure", length and transform-count fields are computed
/// when encoding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Proposal {
    /// Proposal number: 1 for the first, then equal or one more than the
    /// previous. A responder echoes the number of the proposal it accepted.
    pub number: u8,
    /// IKE, AH or ESP.
    pub protocol: ProtocolId,
    /// The sender's SPI: empty in IKE_SA_INIT, 8 bytes for an IKE SA rekey,
    /// 4 bytes for ESP/AH (the sender's inbound SPI).
    pub spi: Vec<u8>,
    pub transforms: Vec<Transform>,
}

/// One transform substructure (RFC 7296 §3.3.2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transform {
    pub transform_type: TransformType,
    /// The transform ID within its type's registry (see [`transform_id`]).
    pub id: u16,
    pub attributes: Vec<Attribute>,
}

impl Transform {
    /// A transform without attributes.
    pub fn new(transform_type: TransformType, id: u16) -> Transform {
        Transform {
            transform_type,
            id,
            attributes: Vec::new(),
        }
    }

    /// A transform with a Key Length attribute (in bits).
    pub fn with_key_length(transform_type: TransformType, id: u16, bits: u16) -> Transform {
        Transform {
            transform_type,
            id,
            attributes: vec![Attribute::Tv {
                attr_type: AttributeType::KEY_LENGTH,
                value: bits,
            }],
        }
    }

    /// The Key Length attribute's value in bits, if present.
    pub fn key_length(&self) -> Option<u16> {
        self.attributes.iter().find_map(|a| match a {
            Attribute::Tv { attr_type, value } if *attr_type == AttributeType::KEY_LENGTH => {
                Some(*value)
            }
            _ => None,
        })
    }
}

/// A transform attribute (RFC 7296 §3.3.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attribute {
    /// Type/Value format (AF bit set): a two-byte value. Key Length uses it.
    Tv {
        attr_type: AttributeType,
        value: u16,
    },
    /// Type/Length/Value format (AF bit clear).
    Tlv {
        attr_type: AttributeType,
        value: Vec<u8>,
    },
}

impl SaPayload {
    fn decode(r: &mut Reader<'_>) -> Result<SaPayload, WireError> {
        let mut proposals = Vec::new();
        while !r.is_empty() {
            let last = r.u8()?;
            r.skip(1)?;
            let len = r.u16()? as usize;
            let body_len = len
                .checked_sub(4)
                .filter(|&b| b >= 4)
                .ok_or(r.malformed("proposal length below 8"))?;
            let mut p = r.sub(body_len)?;
            let number = p.u8()?;
            let protocol = ProtocolId(p.u8()?);
            let spi_size = p.u8()?;
            let num_transforms = p.u8()?;
            let spi = p.take(spi_size as usize)?.to_vec();
            let mut transforms = Vec::with_capacity(num_transforms as usize);
            while !p.is_empty() {
                transforms.push(decode_transform(&mut p)?);
            }
            if transforms.len() != num_transforms as usize {
                return Err(r.malformed("transform count differs from the transforms present"));
            }
            proposals.push(Proposal {
                number,
                protocol,
                spi,
                transforms,
            });
            match (last, r.is_empty()) {
                (0, true) | (2, false) => {}
                _ => return Err(r.malformed("proposal 'last substructure' field is wrong")),
            }
        }
        Ok(SaPayload { proposals })
    }

    fn encode(&self, out: &mut Vec<u8>) -> Result<(), WireError> {
        for (i, p) in self.proposals.iter().enumerate() {
            let start = out.len();
            let last = if i + 1 == self.proposals.len() { 0 } else { 2 };
            let spi_size = u8::try_from(p.spi.len()).map_err(|_| WireError::Inconsistent {
                reason: "proposal SPI longer than 255 bytes",
            })?;
            let count = u8::try_from(p.transforms.len()).map_err(|_| WireError::TooLong {
                what: "proposal transform count",
            })?;
            out.extend_from_slice(&[last, 0, 0, 0, p.number, p.protocol.0, spi_size, count]);
            out.extend_from_slice(&p.spi);
            for (j, t) in p.transforms.iter().enumerate() {
                let t_start = out.len();
                let t_last = if j + 1 == p.transforms.len() { 0 } else { 3 };
                out.extend_from_slice(&[t_last, 0, 0, 0, t.transform_type.0, 0]);
                out.extend_from_slice(&t.id.to_be_bytes());
                for a in &t.attributes {
                    match a {
                        Attribute::Tv { attr_type, value } => {
                            if attr_type.0 > 0x7fff {
                                return Err(WireError::Inconsistent {
                                    reason: "attribute type above 15 bits",
                                });
                            }
                            out.extend_from_slice(&(attr_type.0 | 0x8000).to_be_bytes());
                            out.extend_from_slice(&value.to_be_bytes());
                        }
                        Attribute::Tlv { attr_type, value } => {
                            if attr_type.0 > 0x7fff {
                                return Err(WireError::Inconsistent {
                                    reason: "attribute type above 15 bits",
                                });
                            }
                            out.extend_from_slice(&attr_type.0.to_be_bytes());
                            out.extend_from_slice(&len16(value.len(), "transform attribute")?);
                            out.extend_from_slice(value);
                        }
                    }
                }
                let t_len = len16(out.len() - t_start, "transform")?;
                out[t_start + 2..t_start + 4].copy_from_slice(&t_len);
            }
            let p_len = len16(out.len() - start, "proposal")?;
            out[start + 2..start + 4].copy_from_slice(&p_len);
        }
        Ok(())
    }
}

fn decode_transform(p: &mut Reader<'_>) -> Result<Transform, WireError> {
    let last = p.u8()?;
    p.skip(1)?;
    let len = p.u16()? as usize;
    let body_len = len
        .checked_sub(4)
        .filter(|&b| b >= 4)
        .ok_or(p.malformed("transform length below 8"))?;
    let mut t = p.sub(body_len)?;
    let transform_type = TransformType(t.u8()?);
    t.skip(1)?;
    let id = t.u16()?;
    let mut attributes = Vec::new();
    while !t.is_empty() {
        let raw = t.u16()?;
        let attr_type = AttributeType(raw & 0x7fff);
        if raw & 0x8000 != 0 {
            attributes.push(Attribute::Tv {
                attr_type,
                value: t.u16()?,
            });
        } else {
            let n = t.u16()? as usize;
            attributes.push(Attribute::Tlv {
                attr_type,
                value: t.take(n)?.to_vec(),
            });
        }
    }
    match (last, p.is_empty()) {
        (0, true) | (3, false) => Ok(Transform {
            transform_type,
            id,
            attributes,
        }),
        _ => Err(p.malformed("transform 'last substructure' field is wrong")),
    }
}

// ---------------------------------------------------------------------------
// KE, ID, CERT, AUTH, Notify, Delete
// ---------------------------------------------------------------------------

/// Key Exchange payload (RFC 7296 §3.4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KePayload {
    /// Diffie-Hellman group number (see [`crate::crypto::DhGroup::from_id`]).
    pub group: u16,
    /// The public value (for ECP groups x‖y without a SEC1 prefix).
    pub data: Vec<u8>,
}

/// Identification payload (RFC 7296 §3.5), used as IDi or IDr.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IdPayload {
    pub id_type: IdType,
    pub data: Vec<u8>,
}

impl IdPayload {
    /// ID_IPV4_ADDR or ID_IPV6_ADDR for an address.
    pub fn from_ip(addr: IpAddr) -> IdPayload {
        match addr {
            IpAddr::V4(a) => IdPayload {
                id_type: IdType::ID_IPV4_ADDR,
                data: a.octets().to_vec(),
            },
            IpAddr::V6(a) => IdPayload {
                id_type: IdType::ID_IPV6_ADDR,
                data: a.octets().to_vec(),
            },
        }
    }

    /// ID_FQDN.
    pub fn fqdn(name: &str) -> IdPayload {
        IdPayload {
            id_type: IdType::ID_FQDN,
            data: name.as_bytes().to_vec(),
        }
    }

    /// ID_RFC822_ADDR (an e-mail style identity).
    pub fn rfc822(addr: &str) -> IdPayload {
        IdPayload {
            id_type: IdType::ID_RFC822_ADDR,
            data: addr.as_bytes().to_vec(),
        }
    }

    /// ID_KEY_ID (opaque bytes).
    pub fn key_id(id: &[u8]) -> IdPayload {
        IdPayload {
            id_type: IdType::ID_KEY_ID,
            data: id.to_vec(),
        }
    }

    /// The address of an ID_IPV4_ADDR / ID_IPV6_ADDR of the right length.
    pub fn ip(&self) -> Option<IpAddr> {
        match self.id_type {
            IdType::ID_IPV4_ADDR => <[u8; 4]>::try_from(&self.data[..])
                .ok()
                .map(|o| IpAddr::V4(Ipv4Addr::from(o))),
            IdType::ID_IPV6_ADDR => <[u8; 16]>::try_from(&self.data[..])
                .ok()
                .map(|o| IpAddr::V6(Ipv6Addr::from(o))),
            _ => None,
        }
    }

    /// The payload body as it appears on the wire: ID Type, three reserved
    /// zero bytes, identification data. This is `RestOfInitIDPayload` /
    /// `RestOfRespIDPayload`, the input of MACedIDForI/R in the AUTH
    /// computation (RFC 7296 §2.15).
    pub fn body_bytes(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(4 + self.data.len());
        v.extend_from_slice(&[self.id_type.0, 0, 0, 0]);
        v.extend_from_slice(&self.data);
        v
    }
}

/// Certificate or Certificate Request payload (RFC 7296 §3.6, §3.7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertPayload {
    pub encoding: CertEncoding,
    /// The certificate (CERT) or concatenated CA key hashes (CERTREQ).
    pub data: Vec<u8>,
}

/// Authentication payload (RFC 7296 §3.8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthPayload {
    pub method: AuthMethod,
    /// The MIC or signature (public: it is sent in the clear inside SK).
    pub data: Vec<u8>,
}

/// Notify payload (RFC 7296 §3.10).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotifyPayload {
    /// The SA the notification concerns; `ProtocolId::NONE` when none.
    pub protocol: ProtocolId,
    /// That SA's SPI (empty when none).
    pub spi: Vec<u8>,
    pub notify_type: NotifyType,
    /// Notification data (e.g. the cookie, NAT detection hash, DH group).
    pub data: Vec<u8>,
}

impl NotifyPayload {
    /// A notification about no particular SA.
    pub fn new(notify_type: NotifyType, data: Vec<u8>) -> NotifyPayload {
        NotifyPayload {
            protocol: ProtocolId::NONE,
            spi: Vec::new(),
            notify_type,
            data,
        }
    }

    /// A notification about an SA (e.g. REKEY_SA with the ESP SPI).
    pub fn with_spi(
        protocol: ProtocolId,
        spi: Vec<u8>,
        notify_type: NotifyType,
        data: Vec<u8>,
    ) -> NotifyPayload {
        NotifyPayload {
            protocol,
            spi,
            notify_type,
            data,
        }
    }
}

/// Delete payload (RFC 7296 §3.11).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeletePayload {
    pub protocol: ProtocolId,
    /// SPI size: 0 for IKE (the SA is the one the message travels on), 4 for ESP/AH.
    /// Every SPI in `spis` must have this length (encoding checks).
    pub spi_size: u8,
    pub spis: Vec<Vec<u8>>,
}

impl DeletePayload {
    /// Deletes the IKE SA this message is protected by.
    pub fn ike() -> DeletePayload {
        DeletePayload {
            protocol: ProtocolId::IKE,
            spi_size: 0,
            spis: Vec::new(),
        }
    }

    /// Deletes ESP SAs by their (the sender's inbound) SPIs.
    pub fn esp(spis: &[u32]) -> DeletePayload {
        DeletePayload {
            protocol: ProtocolId::ESP,
            spi_size: 4,
            spis: spis.iter().map(|s| s.to_be_bytes().to_vec()).collect(),
        }
    }

    /// The SPIs as `u32`, when the SPI size is 4 (ESP/AH).
    pub fn spis_u32(&self) -> Option<Vec<u32>> {
        self.spis
            .iter()
            .map(|s| <[u8; 4]>::try_from(&s[..]).ok().map(u32::from_be_bytes))
            .collect()
    }
}

// ---------------------------------------------------------------------------
// Traffic selectors
// ---------------------------------------------------------------------------

/// Traffic Selector payload (RFC 7296 §3.13), used as TSi or TSr.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TsPayload {
    pub selectors: Vec<TrafficSelector>,
}

/// One traffic selector substructure (RFC 7296 §3.13.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TrafficSelector {
    /// TS_IPV4_ADDR_RANGE (both addresses IPv4) or TS_IPV6_ADDR_RANGE (both IPv6).
    Range(TsRange),
    /// Any other selector type, kept raw (the bytes after the length field).
    Other { ts_type: TsType, data: Vec<u8> },
}

/// An address range with protocol and port range.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TsRange {
    /// IP protocol number, 0 for any.
    pub ip_protocol: u8,
    pub start_port: u16,
    pub end_port: u16,
    /// Start and end must be of the same family (encoding checks).
    pub start_address: IpAddr,
    pub end_address: IpAddr,
}

impl TsRange {
    /// All protocols and ports of the address range `start..=end`.
    pub fn addresses(start: IpAddr, end: IpAddr) -> TsRange {
        TsRange {
            ip_protocol: 0,
            start_port: 0,
            end_port: 0xffff,
            start_address: start,
            end_address: end,
        }
    }

    /// The selector type: TS_IPV4_ADDR_RANGE or TS_IPV6_ADDR_RANGE.
    pub fn ts_type(&self) -> TsType {
        match self.start_address {
            IpAddr::V4(_) => TsType::TS_IPV4_ADDR_RANGE,
            IpAddr::V6(_) => TsType::TS_IPV6_ADDR_RANGE,
        }
    }
}

impl TsPayload {
    fn decode(r: &mut Reader<'_>) -> Result<TsPayload, WireError> {
        let count = r.u8()?;
        r.skip(3)?;
        let mut selectors = Vec::with_capacity(count as usize);
        for _ in 0..count {
            let ts_type = TsType(r.u8()?);
            let ip_protocol = r.u8()?;
            let len = r.u16()? as usize;
            let body_len = len
                .checked_sub(4)
                .ok_or(r.malformed("traffic selector length below 4"))?;
            let mut s = r.sub(body_len)?;
            let sel = match ts_type {
                TsType::TS_IPV4_ADDR_RANGE | TsType::TS_IPV6_ADDR_RANGE => {
                    let alen = if ts_type == TsType::TS_IPV4_ADDR_RANGE {
                        4
                    } else {
                        16
                    };
                    if body_len != 4 + 2 * alen {
                        return Err(r.malformed("traffic selector length wrong for its type"));
                    }
                    let start_port = s.u16()?;
                    let end_port = s.u16()?;
                    let start_address = ip_from(s.take(alen)?);
                    let end_address = ip_from(s.take(alen)?);
                    TrafficSelector::Range(TsRange {
                        ip_protocol,
                        start_port,
                        end_port,
                        start_address,
                        end_address,
                    })
                }
                _ => {
                    // Unknown layout: keep everything after the length field,
                    // the protocol octet included.
                    let mut data = vec![ip_protocol];
                    data.extend_from_slice(s.rest());
                    TrafficSelector::Other { ts_type, data }
                }
            };
            selectors.push(sel);
        }
        r.expect_end("bytes after the last traffic selector")?;
        Ok(TsPayload { selectors })
    }

    fn encode(&self, out: &mut Vec<u8>) -> Result<(), WireError> {
        let count = u8::try_from(self.selectors.len()).map_err(|_| WireError::TooLong {
            what: "traffic selector count",
        })?;
        out.extend_from_slice(&[count, 0, 0, 0]);
        for sel in &self.selectors {
            match sel {
                TrafficSelector::Range(r) => {
                    let (len, start, end): (u16, Vec<u8>, Vec<u8>) =
                        match (r.start_address, r.end_address) {
                            (IpAddr::V4(a), IpAddr::V4(b)) => {
                                (16, a.octets().to_vec(), b.octets().to_vec())
                            }
                            (IpAddr::V6(a), IpAddr::V6(b)) => {
                                (40, a.octets().to_vec(), b.octets().to_vec())
                            }
                            _ => {
                                return Err(WireError::Inconsistent {
                                    reason: "traffic selector mixes IPv4 and IPv6",
                                })
                            }
                        };
                    out.extend_from_slice(&[r.ts_type().0, r.ip_protocol]);
                    out.extend_from_slice(&len.to_be_bytes());
                    out.extend_from_slice(&r.start_port.to_be_bytes());
                    out.extend_from_slice(&r.end_port.to_be_bytes());
                    out.extend_from_slice(&start);
                    out.extend_from_slice(&end);
                }
                TrafficSelector::Other { ts_type, data } => {
                    let (proto, rest) = data.split_first().ok_or(WireError::Inconsistent {
                        reason: "raw traffic selector without its protocol octet",
                    })?;
                    out.extend_from_slice(&[ts_type.0, *proto]);
                    out.extend_from_slice(&len16(data.len() + 3, "traffic selector")?);
                    out.extend_from_slice(rest);
                }
            }
        }
        Ok(())
    }
}

fn ip_from(b: &[u8]) -> IpAddr {
    if let Ok(o) = <[u8; 4]>::try_from(b) {
        IpAddr::V4(Ipv4Addr::from(o))
    } else if let Ok(o) = <[u8; 16]>::try_from(b) {
        IpAddr::V6(Ipv6Addr::from(o))
    } else {
        // Callers pass exactly 4 or 16 bytes.
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    }
}

// ---------------------------------------------------------------------------
// SK, SKF, CP, unknown
// ---------------------------------------------------------------------------

/// Encrypted and Authenticated payload (RFC 7296 §3.14), still encrypted.
/// [`crate::ike::v2::sk::SkCipher`] opens and seals it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncryptedPayload {
    /// Type of the first payload inside (the SK generic header's Next Payload).
    pub inner_first: PayloadType,
    /// IV, ciphertext (inner payloads, padding, pad length) and ICV.
    pub body: Vec<u8>,
}

/// Encrypted and Authenticated Fragment payload (RFC 7383 §2.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncryptedFragmentPayload {
    /// Type of the first inner payload in fragment 1; zero in the others.
    pub inner_first: PayloadType,
    /// 1-based fragment number.
    pub fragment_number: u16,
    pub total_fragments: u16,
    /// IV, ciphertext and ICV of this fragment.
    pub body: Vec<u8>,
}

/// Configuration payload (RFC 7296 §3.15).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpPayload {
    pub cfg_type: CfgType,
    pub attributes: Vec<CfgAttribute>,
}

/// One configuration attribute (15-bit type, variable value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CfgAttribute {
    pub attr_type: CfgAttributeType,
    pub value: Vec<u8>,
}

/// A payload of a type this codec does not know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownPayload {
    pub payload_type: PayloadType,
    /// The critical bit as received (always false after a successful decode).
    pub critical: bool,
    pub body: Vec<u8>,
}
