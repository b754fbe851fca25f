//! IKEv1 SA payloads from the shared proposal types ([`IkeProposal`],
//! [`EspProposal`]) and strict selection of a peer's offer.
//!
//! IKEv1 has no transform types: each phase 1 transform is a whole suite
//! (encryption, hash, auth method, group, lifetime), and each ESP transform
//! carries its encryption ID with attributes for integrity, PFS group,
//! encapsulation mode, lifetime and key length. An offered transform with an
//! attribute we do not understand is not acceptable.

use core::time::Duration;

use super::wire::{
    find_attr, ike_attr, ipsec_attr, Attribute, Proposal, ProtocolId, SaPayload, Transform,
    DOI_IPSEC, SIT_IDENTITY_ONLY,
};
use crate::crypto::{DhGroup, Prf};
use crate::esp::{EncryptionAlgorithm, IntegrityAlgorithm};
use crate::ike::proposal::{EspProposal, IkeProposal};

/// The algorithms of one phase 1 transform.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Phase1Suite {
    pub encryption: EncryptionAlgorithm,
    /// The hash; its HMAC is the PRF.
    pub hash: Prf,
    pub group: DhGroup,
    pub lifetime: Option<Duration>,
}

impl core::fmt::Display for Phase1Suite {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        let h = match self.hash {
            Prf::HmacSha1 => "sha1",
            Prf::HmacSha256 => "sha256",
            Prf::HmacSha384 => "sha384",
            Prf::HmacSha512 => "sha512",
        };
        write!(
            f,
            "{}-{}-{}",
            self.encryption.keyword(),
            h,
            self.group.keyword()
        )
    }
}

/// The algorithms of one ESP transform.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EspSuite {
    pub encryption: EncryptionAlgorithm,
    pub integrity: Option<IntegrityAlgorithm>,
    pub pfs: Option<DhGroup>,
    /// Encapsulation mode UDP-Tunnel (RFC 3947 value 3 or the draft's 61443).
    pub udp_encapsulated: bool,
    pub lifetime: Option<Duration>,
}

impl core::fmt::Display for EspSuite {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str(self.encryption.keyword())?;
        if let Some(i) = self.integrity {
            write!(f, "-{}", i.keyword())?;
        }
        if let Some(g) = self.pfs {
            write!(f, "-{}", g.keyword())?;
        }
        Ok(())
    }
}

fn hash_id(p: Prf) -> u16 {
    match p {
        Prf::HmacSha1 => ike_attr::HASH_SHA1,
        Prf::HmacSha256 => ike_attr::HASH_SHA2_256,
        Prf::HmacSha384 => ike_attr::HASH_SHA2_384,
        Prf::HmacSha512 => ike_attr::HASH_SHA2_512,
    }
}

fn hash_from_id(id: u64) -> Option<Prf> {
    Some(match u16::try_from(id).ok()? {
        ike_attr::HASH_SHA1 => Prf::HmacSha1,
        ike_attr::HASH_SHA2_256 => Prf::HmacSha256,
        ike_attr::HASH_SHA2_384 => Prf::HmacSha384,
        ike_attr::HASH_SHA2_512 => Prf::HmacSha512,
        _ => return None,
    })
}

fn auth_id(i: IntegrityAlgorithm) -> u16 {
    match i {
        IntegrityAlgorithm::HmacSha1_96 => ipsec_attr::AUTH_HMAC_SHA1,
        IntegrityAlgorithm::HmacSha256_128 => ipsec_attr::AUTH_HMAC_SHA2_256,
        IntegrityAlgorithm::HmacSha384_192 => ipsec_attr::AUTH_HMAC_SHA2_384,
        IntegrityAlgorithm::HmacSha512_256 => ipsec_attr::AUTH_HMAC_SHA2_512,
    }
}

fn auth_from_id(id: u64) -> Option<IntegrityAlgorithm> {
    Some(match u16::try_from(id).ok()? {
        ipsec_attr::AUTH_HMAC_SHA1 => IntegrityAlgorithm::HmacSha1_96,
        ipsec_attr::AUTH_HMAC_SHA2_256 => IntegrityAlgorithm::HmacSha256_128,
        ipsec_attr::AUTH_HMAC_SHA2_384 => IntegrityAlgorithm::HmacSha384_192,
        ipsec_attr::AUTH_HMAC_SHA2_512 => IntegrityAlgorithm::HmacSha512_256,
        _ => return None,
    })
}

/// Whether phase 1 can use this encryption algorithm (IKEv1 has no AEAD
/// for the ISAKMP SA; we implement AES-CBC).
pub fn phase1_encryption_supported(e: EncryptionAlgorithm) -> bool {
    matches!(
        e,
        EncryptionAlgorithm::Aes128Cbc | EncryptionAlgorithm::Aes256Cbc
    )
}

/// Whether ESP in IKEv1 can use this algorithm (ChaCha20-Poly1305 has no
/// IKEv1 transform ID).
pub fn esp_encryption_supported(e: EncryptionAlgorithm) -> bool {
    e != EncryptionAlgorithm::ChaCha20Poly1305
}

/// Every phase 1 suite of our proposals, in preference order.
pub fn phase1_suites(ours: &[IkeProposal], lifetime: Duration) -> Vec<Phase1Suite> {
    let mut v = Vec::new();
    for p in ours {
        for &encryption in p
            .encryption
            .iter()
            .filter(|e| phase1_encryption_supported(**e))
        {
            for &hash in &p.prf {
                for &group in &p.dh {
                    let s = Phase1Suite {
                        encryption,
                        hash,
                        group,
                        lifetime: Some(lifetime),
                    };
                    if !v.contains(&s) {
                        v.push(s);
                    }
                }
            }
        }
    }
    v
}

fn seconds(d: Duration) -> u32 {
    u32::try_from(d.as_secs()).unwrap_or(u32::MAX)
}

/// Our phase 1 SA payload: one ISAKMP proposal, one transform per suite.
pub fn phase1_sa(ours: &[IkeProposal], lifetime: Duration) -> SaPayload {
    let transforms = phase1_suites(ours, lifetime)
        .into_iter()
        .enumerate()
        .map(|(i, s)| Transform {
            number: u8::try_from(i + 1).unwrap_or(u8::MAX),
            transform_id: ike_attr::TRANSFORM_KEY_IKE,
            attributes: vec![
                Attribute::number(
                    ike_attr::ENCRYPTION_ALGORITHM,
                    ike_attr::ENCR_AES_CBC.into(),
                ),
                Attribute::number(ike_attr::KEY_LENGTH, s.encryption.key_bits().into()),
                Attribute::number(ike_attr::HASH_ALGORITHM, hash_id(s.hash).into()),
                Attribute::number(ike_attr::AUTHENTICATION_METHOD, ike_attr::AUTH_PSK.into()),
                Attribute::number(ike_attr::GROUP_DESCRIPTION, s.group.id().into()),
                Attribute::number(ike_attr::LIFE_TYPE, ike_attr::LIFE_SECONDS.into()),
                Attribute::number(ike_attr::LIFE_DURATION, seconds(lifetime)),
            ],
        })
        .collect();
    SaPayload {
        doi: DOI_IPSEC,
        situation: SIT_IDENTITY_ONLY,
        proposals: vec![Proposal {
            number: 1,
            protocol: ProtocolId::ISAKMP,
            spi: vec![],
            transforms,
        }],
    }
}

/// Life type/duration pairs: the seconds value, ignoring kilobyte limits.
fn lifetime_seconds(
    attrs: &[Attribute],
    type_attr: u16,
    dur_attr: u16,
) -> Option<Option<Duration>> {
    let mut life = None;
    let mut current_type = None;
    for a in attrs {
        if a.attr_type() == type_attr {
            current_type = a.as_u64();
        } else if a.attr_type() == dur_attr {
            let v = a.as_u64()?;
            match current_type {
                Some(1) => life = Some(Duration::from_secs(v)),
                Some(2) => {}
                _ => return None,
            }
        }
    }
    Some(life)
}

/// Parses a phase 1 transform; `None` if anything in it is not supported.
pub fn parse_phase1_transform(t: &Transform) -> Option<Phase1Suite> {
    if t.transform_id != ike_attr::TRANSFORM_KEY_IKE {
        return None;
    }
    let known = [
        ike_attr::ENCRYPTION_ALGORITHM,
        ike_attr::HASH_ALGORITHM,
        ike_attr::AUTHENTICATION_METHOD,
        ike_attr::GROUP_DESCRIPTION,
        ike_attr::LIFE_TYPE,
        ike_attr::LIFE_DURATION,
        ike_attr::KEY_LENGTH,
    ];
    if t.attributes.iter().any(|a| !known.contains(&a.attr_type())) {
        return None;
    }
    let get = |ty| find_attr(&t.attributes, ty).and_then(Attribute::as_u64);
    if get(ike_attr::ENCRYPTION_ALGORITHM)? != u64::from(ike_attr::ENCR_AES_CBC) {
        return None;
    }
    let encryption = match get(ike_attr::KEY_LENGTH)? {
        128 => EncryptionAlgorithm::Aes128Cbc,
        256 => EncryptionAlgorithm::Aes256Cbc,
        _ => return None,
    };
    let hash = hash_from_id(get(ike_attr::HASH_ALGORITHM)?)?;
    if get(ike_attr::AUTHENTICATION_METHOD)? != u64::from(ike_attr::AUTH_PSK) {
        return None;
    }
    let group = DhGroup::from_id(u16::try_from(get(ike_attr::GROUP_DESCRIPTION)?).ok()?)?;
    let lifetime = lifetime_seconds(&t.attributes, ike_attr::LIFE_TYPE, ike_attr::LIFE_DURATION)?;
    Some(Phase1Suite {
        encryption,
        hash,
        group,
        lifetime,
    })
}

fn suite_matches(ours: &[Phase1Suite], s: &Phase1Suite) -> bool {
    ours.iter()
        .any(|o| o.encryption == s.encryption && o.hash == s.hash && o.group == s.group)
}

/// Responder: the first offered transform (the initiator's preference) that
/// matches one of our suites; returns it with the transform to echo.
pub fn select_phase1(ours: &[Phase1Suite], offer: &SaPayload) -> Option<(Phase1Suite, Transform)> {
    offer
        .proposals
        .iter()
        .filter(|p| p.protocol == ProtocolId::ISAKMP)
        .flat_map(|p| p.transforms.iter())
        .find_map(|t| {
            let s = parse_phase1_transform(t)?;
            suite_matches(ours, &s).then(|| (s, t.clone()))
        })
}

/// Initiator: the responder's reply must hold exactly one proposal with one
/// transform that we offered.
pub fn accept_phase1(ours: &[Phase1Suite], reply: &SaPayload) -> Option<Phase1Suite> {
    let [p] = reply.proposals.as_slice() else {
        return None;
    };
    let [t] = p.transforms.as_slice() else {
        return None;
    };
    let s = parse_phase1_transform(t)?;
    (p.protocol == ProtocolId::ISAKMP && suite_matches(ours, &s)).then_some(s)
}

/// Every ESP suite of our proposals. IKEv1 carries one KE per Quick Mode,
/// so the PFS group is the first proposal's first group, used by all.
pub fn esp_suites(ours: &[EspProposal], udp: bool, lifetime: Duration) -> Vec<EspSuite> {
    let pfs = ours.first().and_then(|p| p.dh.first().copied());
    let mut v = Vec::new();
    for p in ours {
        for &encryption in p
            .encryption
            .iter()
            .filter(|e| esp_encryption_supported(**e))
        {
            let integs: Vec<Option<IntegrityAlgorithm>> = if encryption.is_aead() {
                vec![None]
            } else {
                p.integrity.iter().copied().map(Some).collect()
            };
            for integrity in integs {
                let s = EspSuite {
                    encryption,
                    integrity,
                    pfs,
                    udp_encapsulated: udp,
                    lifetime: Some(lifetime),
                };
                if !v.contains(&s) {
                    v.push(s);
                }
            }
        }
    }
    v
}

/// Our Quick Mode SA payload: one ESP proposal carrying our inbound SPI.
pub fn esp_sa(suites: &[EspSuite], spi: u32) -> SaPayload {
    let transforms = suites
        .iter()
        .enumerate()
        .map(|(i, s)| Transform {
            number: u8::try_from(i + 1).unwrap_or(u8::MAX),
            transform_id: u8::try_from(s.encryption.transform_id()).unwrap_or(0),
            attributes: esp_attributes(s),
        })
        .collect();
    SaPayload {
        doi: DOI_IPSEC,
        situation: SIT_IDENTITY_ONLY,
        proposals: vec![Proposal {
            number: 1,
            protocol: ProtocolId::ESP,
            spi: spi.to_be_bytes().to_vec(),
            transforms,
        }],
    }
}

fn esp_attributes(s: &EspSuite) -> Vec<Attribute> {
    let mut a = vec![
        Attribute::number(ipsec_attr::SA_LIFE_TYPE, ipsec_attr::LIFE_SECONDS.into()),
        Attribute::number(
            ipsec_attr::SA_LIFE_DURATION,
            seconds(s.lifetime.unwrap_or(Duration::from_secs(3600))),
        ),
    ];
    if let Some(g) = s.pfs {
        a.push(Attribute::number(
            ipsec_attr::GROUP_DESCRIPTION,
            g.id().into(),
        ));
    }
    let mode = if s.udp_encapsulated {
        ipsec_attr::MODE_UDP_TUNNEL
    } else {
        ipsec_attr::MODE_TUNNEL
    };
    a.push(Attribute::number(
        ipsec_attr::ENCAPSULATION_MODE,
        mode.into(),
    ));
    if let Some(i) = s.integrity {
        a.push(Attribute::number(
            ipsec_attr::AUTHENTICATION_ALGORITHM,
            auth_id(i).into(),
        ));
    }
    a.push(Attribute::number(
        ipsec_attr::KEY_LENGTH,
        s.encryption.key_bits().into(),
    ));
    a
}

/// Parses an ESP transform; `None` if anything in it is not supported.
pub fn parse_esp_transform(t: &Transform) -> Option<EspSuite> {
    let known = [
        ipsec_attr::SA_LIFE_TYPE,
        ipsec_attr::SA_LIFE_DURATION,
        ipsec_attr::GROUP_DESCRIPTION,
        ipsec_attr::ENCAPSULATION_MODE,
        ipsec_attr::AUTHENTICATION_ALGORITHM,
        ipsec_attr::KEY_LENGTH,
    ];
    if t.attributes.iter().any(|a| !known.contains(&a.attr_type())) {
        return None;
    }
    let get = |ty| find_attr(&t.attributes, ty).and_then(Attribute::as_u64);
    let bits = get(ipsec_attr::KEY_LENGTH)?;
    let encryption = EncryptionAlgorithm::ALL.into_iter().find(|e| {
        esp_encryption_supported(*e)
            && e.transform_id() == u16::from(t.transform_id)
            && u64::from(e.key_bits()) == bits
    })?;
    let integrity = match get(ipsec_attr::AUTHENTICATION_ALGORITHM) {
        Some(id) => Some(auth_from_id(id)?),
        None => None,
    };
    if encryption.is_aead() == integrity.is_some() {
        return None;
    }
    let pfs = match get(ipsec_attr::GROUP_DESCRIPTION) {
        Some(id) => Some(DhGroup::from_id(u16::try_from(id).ok()?)?),
        None => None,
    };
    let udp_encapsulated = match u16::try_from(get(ipsec_attr::ENCAPSULATION_MODE)?).ok()? {
        ipsec_attr::MODE_TUNNEL => false,
        ipsec_attr::MODE_UDP_TUNNEL | ipsec_attr::MODE_UDP_TUNNEL_DRAFT => true,
        _ => return None,
    };
    let lifetime = lifetime_seconds(
        &t.attributes,
        ipsec_attr::SA_LIFE_TYPE,
        ipsec_attr::SA_LIFE_DURATION,
    )?;
    Some(EspSuite {
        encryption,
        integrity,
        pfs,
        udp_encapsulated,
        lifetime,
    })
}

fn esp_matches(ours: &[EspSuite], s: &EspSuite) -> bool {
    ours.iter()
        .any(|o| o.encryption == s.encryption && o.integrity == s.integrity && o.pfs == s.pfs)
}

/// Responder: the first acceptable ESP transform offered, with the
/// initiator's SPI and the transform to echo.
pub fn select_esp(ours: &[EspSuite], offer: &SaPayload) -> Option<(EspSuite, u32, Transform)> {
    offer
        .proposals
        .iter()
        .filter(|p| p.protocol == ProtocolId::ESP)
        .find_map(|p| {
            let spi = u32::from_be_bytes(p.spi.as_slice().try_into().ok()?);
            p.transforms.iter().find_map(|t| {
                let s = parse_esp_transform(t)?;
                esp_matches(ours, &s).then(|| (s, spi, t.clone()))
            })
        })
}

/// Initiator: the reply must hold one ESP proposal with one transform we
/// offered; returns it with the responder's SPI.
pub fn accept_esp(ours: &[EspSuite], reply: &SaPayload) -> Option<(EspSuite, u32)> {
    let [p] = reply.proposals.as_slice() else {
        return None;
    };
    let [t] = p.transforms.as_slice() else {
        return None;
    };
    let s = parse_esp_transform(t)?;
    let spi = u32::from_be_bytes(p.spi.as_slice().try_into().ok()?);
    (p.protocol == ProtocolId::ESP && esp_matches(ours, &s)).then_some((s, spi))
}

/// Describes an offer for error messages (`aes128-sha1-modp1024, ...`).
pub fn describe_phase1_offer(offer: &SaPayload) -> String {
    let v: Vec<String> = offer
        .proposals
        .iter()
        .flat_map(|p| p.transforms.iter())
        .map(|t| match parse_phase1_transform(t) {
            Some(s) => s.to_string(),
            None => format!("unsupported transform {}", t.number),
        })
        .collect();
    if v.is_empty() {
        "nothing".into()
    } else {
        v.join(",")
    }
}

/// Describes an ESP offer for error messages.
pub fn describe_esp_offer(offer: &SaPayload) -> String {
    let v: Vec<String> = offer
        .proposals
        .iter()
        .flat_map(|p| p.transforms.iter())
        .map(|t| match parse_esp_transform(t) {
            Some(s) => s.to_string(),
            None => format!("unsupported transform {}", t.number),
        })
        .collect();
    if v.is_empty() {
        "nothing".into()
    } else {
        v.join(",")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn aws_default_phase1_round_trips_and_selects() {
        let ours = vec![IkeProposal::parse("aes128-sha1-modp1024").unwrap()];
        let sa = phase1_sa(&ours, Duration::from_secs(28800));
        let suites = phase1_suites(&ours, Duration::from_secs(28800));
        let (s, t) = select_phase1(&suites, &sa).unwrap();
        assert_eq!(s.to_string(), "aes128-sha1-modp1024");
        assert_eq!(s.lifetime, Some(Duration::from_secs(28800)));
        assert_eq!(t, sa.proposals[0].transforms[0]);
        let other = phase1_suites(
            &[IkeProposal::parse("aes256-sha256-modp2048").unwrap()],
            Duration::from_secs(1),
        );
        assert!(select_phase1(&other, &sa).is_none());
        assert_eq!(describe_phase1_offer(&sa), "aes128-sha1-modp1024");
    }

    #[test]
    fn esp_transform_uses_rfc2407_codes() {
        let ours = vec![EspProposal::parse("aes128-sha1-modp1024").unwrap()];
        let suites = esp_suites(&ours, true, Duration::from_secs(3600));
        let sa = esp_sa(&suites, 0xc0ffee01);
        let t = &sa.proposals[0].transforms[0];
        assert_eq!(t.transform_id, 12);
        let auth = find_attr(&t.attributes, ipsec_attr::AUTHENTICATION_ALGORITHM);
        assert_eq!(auth.and_then(Attribute::as_u64), Some(2));
        let mode = find_attr(&t.attributes, ipsec_attr::ENCAPSULATION_MODE);
        assert_eq!(mode.and_then(Attribute::as_u64), Some(3));
        let (s, spi, _) = select_esp(&suites, &sa).unwrap();
        assert_eq!(spi, 0xc0ffee01);
        assert_eq!(s.to_string(), "aes128-sha1-modp1024");
        assert!(s.udp_encapsulated);
    }
}
