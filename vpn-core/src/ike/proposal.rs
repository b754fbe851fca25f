//! Algorithm proposals in strongSwan's syntax, shared by IKEv2, IKEv1 and
//! configuration: parsing, display, the IKEv2 SA payload form, and
//! responder-side selection (RFC 7296 §2.7).
//!
//! Syntax: a proposal is `-`-separated algorithm keywords of any order, with
//! several per type allowed (`aes128-aes256-sha1-sha256-modp2048-modp1024`);
//! a list is `,`-separated proposals. Keywords:
//!
//! - encryption: [`EncryptionAlgorithm::from_keyword`] (`aes128`, `aes256`,
//!   `aes128gcm16`, `aes256gcm16`, `aes256gcm12`, `aes128gcm8`, `chacha20poly1305`, ...)
//! - integrity: `sha1`, `sha256`, `sha384`, `sha512` (and `sha2_256` ...)
//! - PRF (IKE only): `prfsha1`, `prfsha256`, `prfsha384`, `prfsha512`. When
//!   absent, an IKE proposal uses the PRF of each integrity algorithm, as
//!   strongSwan does; an AEAD IKE proposal must name its PRF.
//! - DH: [`DhGroup::from_keyword`] (`modp1024`, `modp2048`, `ecp256`,
//!   `curve25519`/`x25519`, ...). Required for IKE; optional for ESP (PFS).
//! - ESN (ESP only): `esn`, `noesn`; neither means `noesn`.
//!
//! ```
//! use vpn_core::ike::proposal::*;
//!
//! let ours = parse_ike_proposals("aes256gcm16-prfsha256-ecp256,aes128-sha1-modp2048")?;
//! assert_eq!(ours[1].to_string(), "aes128-sha1-modp2048");
//! // What a peer would put in its SA payload, and what a responder picks from it.
//! let offered = [ours[1].to_wire(1, &[])];
//! let chosen = select_ike(&ours, &offered).expect("match");
//! assert_eq!(chosen.to_string(), "aes128-sha1-prfsha1-modp2048");
//! # Ok::<(), ProposalError>(())
//! ```

use core::fmt;
use core::str::FromStr;

use crate::crypto::kdf::IkeKeyLengths;
use crate::crypto::{DhGroup, Prf};
use crate::esp::{EncryptionAlgorithm, IntegrityAlgorithm};
use crate::ike::v2::wire::{
    transform_id, Attribute, Proposal, ProtocolId, Transform, TransformType,
};

/// Errors parsing a proposal string or checking a peer's reply. Carries
/// only configuration text, never secrets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProposalError {
    /// A keyword no algorithm answers to.
    #[error("unknown algorithm '{token}' in proposal '{proposal}'")]
    UnknownToken { token: String, proposal: String },
    /// The keywords are known but do not make a usable proposal.
    #[error("invalid proposal '{proposal}': {reason}")]
    Invalid {
        proposal: String,
        reason: &'static str,
    },
    /// An empty list or an empty proposal.
    #[error("empty proposal list")]
    Empty,
    /// The peer's reply SA payload is not a valid single choice.
    #[error("invalid proposal in reply: {0}")]
    InvalidReply(&'static str),
    /// The peer's reply chose something we did not offer.
    #[error("peer chose {chosen}, which we did not offer ({offered})")]
    NotOffered { chosen: String, offered: String },
}

/// An IKE SA proposal: any of each list may be chosen.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IkeProposal {
    pub encryption: Vec<EncryptionAlgorithm>,
    /// Empty for AEAD encryption.
    pub integrity: Vec<IntegrityAlgorithm>,
    pub prf: Vec<Prf>,
    pub dh: Vec<DhGroup>,
}

/// An ESP (child SA) proposal.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct EspProposal {
    pub encryption: Vec<EncryptionAlgorithm>,
    /// Empty for AEAD encryption.
    pub integrity: Vec<IntegrityAlgorithm>,
    /// PFS groups for CREATE_CHILD_SA; empty means no PFS.
    pub dh: Vec<DhGroup>,
    /// Acceptable ESN settings in preference order (`[false]` by default).
    pub esn: Vec<bool>,
}

/// Keywords of one proposal, sorted by type.
#[derive(Default)]
struct Tokens {
    encryption: Vec<EncryptionAlgorithm>,
    integrity: Vec<IntegrityAlgorithm>,
    prf: Vec<Prf>,
    dh: Vec<DhGroup>,
    esn: Vec<bool>,
}

fn push_unique<T: PartialEq>(v: &mut Vec<T>, x: T) {
    if !v.contains(&x) {
        v.push(x);
    }
}

fn tokenize(s: &str, esp: bool) -> Result<Tokens, ProposalError> {
    let proposal = s.trim();
    if proposal.is_empty() {
        return Err(ProposalError::Empty);
    }
    let mut t = Tokens::default();
    for raw in proposal.split('-') {
        let tok = raw.trim().to_ascii_lowercase();
        if let Ok(e) = EncryptionAlgorithm::from_keyword(&tok) {
            push_unique(&mut t.encryption, e);
        } else if let Some(p) = Prf::from_keyword(&tok) {
            push_unique(&mut t.prf, p);
        } else if let Ok(i) = IntegrityAlgorithm::from_keyword(&tok) {
            push_unique(&mut t.integrity, i);
        } else if let Some(g) = DhGroup::from_keyword(&tok) {
            push_unique(&mut t.dh, g);
        } else if esp && tok == "esn" {
            push_unique(&mut t.esn, true);
        } else if esp && tok == "noesn" {
            push_unique(&mut t.esn, false);
        } else {
            return Err(ProposalError::UnknownToken {
                token: raw.trim().to_string(),
                proposal: proposal.to_string(),
            });
        }
    }
    let invalid = |reason| ProposalError::Invalid {
        proposal: proposal.to_string(),
        reason,
    };
    if t.encryption.is_empty() {
        return Err(invalid("no encryption algorithm"));
    }
    let aead = t.encryption[0].is_aead();
    if t.encryption.iter().any(|e| e.is_aead() != aead) {
        return Err(invalid(
            "mixes AEAD and non-AEAD encryption (use separate proposals)",
        ));
    }
    if aead && !t.integrity.is_empty() {
        return Err(invalid("AEAD encryption takes no integrity algorithm"));
    }
    if !aead && t.integrity.is_empty() {
        return Err(invalid("non-AEAD encryption needs an integrity algorithm"));
    }
    Ok(t)
}

/// The PRF strongSwan derives from an integrity algorithm.
pub fn prf_for_integrity(i: IntegrityAlgorithm) -> Prf {
    match i {
        IntegrityAlgorithm::HmacSha1_96 => Prf::HmacSha1,
        IntegrityAlgorithm::HmacSha256_128 => Prf::HmacSha256,
        IntegrityAlgorithm::HmacSha384_192 => Prf::HmacSha384,
        IntegrityAlgorithm::HmacSha512_256 => Prf::HmacSha512,
    }
}

fn derived_prfs(integrity: &[IntegrityAlgorithm]) -> Vec<Prf> {
    let mut v = Vec::new();
    for i in integrity {
        push_unique(&mut v, prf_for_integrity(*i));
    }
    v
}

impl IkeProposal {
    /// Parses one IKE proposal (`aes256gcm16-prfsha256-ecp256`).
    pub fn parse(s: &str) -> Result<IkeProposal, ProposalError> {
        let t = tokenize(s, false)?;
        let invalid = |reason| ProposalError::Invalid {
            proposal: s.trim().to_string(),
            reason,
        };
        let prf = if t.prf.is_empty() {
            if t.encryption[0].is_aead() {
                return Err(invalid(
                    "AEAD encryption needs an explicit PRF (e.g. prfsha256)",
                ));
            }
            derived_prfs(&t.integrity)
        } else {
            t.prf
        };
        if t.dh.is_empty() {
            return Err(invalid("an IKE proposal needs a DH group"));
        }
        Ok(IkeProposal {
            encryption: t.encryption,
            integrity: t.integrity,
            prf,
            dh: t.dh,
        })
    }

    /// The SA payload proposal for this offer (transforms in strongSwan's
    /// order: ENCR, INTEG, PRF, DH), numbered `number` (1-based), with `spi` (empty in IKE_SA_INIT, our 8-byte SPI in a rekey).
    pub fn to_wire(&self, number: u8, spi: &[u8]) -> Proposal {
        let mut transforms: Vec<Transform> = self
            .encryption
            .iter()
            .map(|e| encryption_transform(*e))
            .collect();
        transforms.extend(
            self.integrity
                .iter()
                .map(|i| Transform::new(TransformType::INTEG, i.transform_id())),
        );
        transforms.extend(
            self.prf
                .iter()
                .map(|p| Transform::new(TransformType::PRF, p.id())),
        );
        transforms.extend(
            self.dh
                .iter()
                .map(|g| Transform::new(TransformType::DH, g.id())),
        );
        Proposal {
            number,
            protocol: ProtocolId::IKE,
            spi: spi.to_vec(),
            transforms,
        }
    }

    /// The proposal a wire proposal describes, if it is an IKE proposal of
    /// only supported transforms (`None` otherwise).
    pub fn from_wire(p: &Proposal) -> Option<IkeProposal> {
        if p.protocol != ProtocolId::IKE {
            return None;
        }
        let mut out = IkeProposal {
            encryption: vec![],
            integrity: vec![],
            prf: vec![],
            dh: vec![],
        };
        for t in &p.transforms {
            match t.transform_type {
                TransformType::ENCR => out.encryption.push(encryption_from_transform(t)?),
                TransformType::PRF => out.prf.push(Prf::from_id(plain_id(t)?)?),
                TransformType::INTEG => out.integrity.push(integrity_from_id(plain_id(t)?)?),
                TransformType::DH => out.dh.push(DhGroup::from_id(plain_id(t)?)?),
                _ => return None,
            }
        }
        Some(out)
    }
}

impl EspProposal {
    /// Parses one ESP proposal (`aes256gcm16-modp2048-esn`, `aes128-sha1`).
    pub fn parse(s: &str) -> Result<EspProposal, ProposalError> {
        let t = tokenize(s, true)?;
        if !t.prf.is_empty() {
            return Err(ProposalError::Invalid {
                proposal: s.trim().to_string(),
                reason: "an ESP proposal takes no PRF",
            });
        }
        Ok(EspProposal {
            encryption: t.encryption,
            integrity: t.integrity,
            dh: t.dh,
            esn: if t.esn.is_empty() { vec![false] } else { t.esn },
        })
    }

    /// The SA payload proposal for this offer, numbered `number`, carrying
    /// `spi` (our inbound SPI for the child SA). DH transforms are included
    /// when `with_dh` (CREATE_CHILD_SA with PFS); RFC 7296 §1.2 leaves them
    /// out of IKE_AUTH, whose child SA uses the IKE SA's key exchange.
    pub fn to_wire(&self, number: u8, spi: u32, with_dh: bool) -> Proposal {
        let mut transforms: Vec<Transform> = self
            .encryption
            .iter()
            .map(|e| encryption_transform(*e))
            .collect();
        transforms.extend(
            self.integrity
                .iter()
                .map(|i| Transform::new(TransformType::INTEG, i.transform_id())),
        );
        if with_dh {
            transforms.extend(
                self.dh
                    .iter()
                    .map(|g| Transform::new(TransformType::DH, g.id())),
            );
        }
        transforms.extend(self.esn.iter().map(|e| {
            Transform::new(
                TransformType::ESN,
                if *e {
                    transform_id::ESN_YES
                } else {
                    transform_id::ESN_NO
                },
            )
        }));
        Proposal {
            number,
            protocol: ProtocolId::ESP,
            spi: spi.to_be_bytes().to_vec(),
            transforms,
        }
    }

    /// The proposal a wire proposal describes, if it is an ESP proposal of
    /// only supported transforms. DH NONE is dropped; no ESN transform
    /// means `[false]`.
    pub fn from_wire(p: &Proposal) -> Option<EspProposal> {
        if p.protocol != ProtocolId::ESP {
            return None;
        }
        let mut out = EspProposal {
            encryption: vec![],
            integrity: vec![],
            dh: vec![],
            esn: vec![],
        };
        for t in &p.transforms {
            match t.transform_type {
                TransformType::ENCR => out.encryption.push(encryption_from_transform(t)?),
                TransformType::INTEG => match plain_id(t)? {
                    transform_id::AUTH_NONE => {}
                    id => out.integrity.push(integrity_from_id(id)?),
                },
                TransformType::DH => match plain_id(t)? {
                    transform_id::DH_NONE => {}
                    id => out.dh.push(DhGroup::from_id(id)?),
                },
                TransformType::ESN => out.esn.push(esn_from_id(plain_id(t)?)?),
                _ => return None,
            }
        }
        if out.esn.is_empty() {
            out.esn.push(false);
        }
        Some(out)
    }
}

/// Parses a comma-separated list of IKE proposals.
pub fn parse_ike_proposals(s: &str) -> Result<Vec<IkeProposal>, ProposalError> {
    s.split(',').map(IkeProposal::parse).collect()
}

/// Parses a comma-separated list of ESP proposals.
pub fn parse_esp_proposals(s: &str) -> Result<Vec<EspProposal>, ProposalError> {
    s.split(',').map(EspProposal::parse).collect()
}

impl FromStr for IkeProposal {
    type Err = ProposalError;
    fn from_str(s: &str) -> Result<Self, ProposalError> {
        IkeProposal::parse(s)
    }
}

impl FromStr for EspProposal {
    type Err = ProposalError;
    fn from_str(s: &str) -> Result<Self, ProposalError> {
        EspProposal::parse(s)
    }
}

fn write_tokens<'a>(
    f: &mut fmt::Formatter<'_>,
    tokens: impl Iterator<Item = &'a str>,
) -> fmt::Result {
    for (n, t) in tokens.enumerate() {
        if n > 0 {
            f.write_str("-")?;
        }
        f.write_str(t)?;
    }
    Ok(())
}

impl fmt::Display for IkeProposal {
    /// strongSwan syntax; the PRF is omitted when it is the one derived
    /// from the integrity algorithms (parsing gives it back).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let show_prf = self.integrity.is_empty() || self.prf != derived_prfs(&self.integrity);
        let prf: &[Prf] = if show_prf { &self.prf } else { &[] };
        write_tokens(
            f,
            self.encryption
                .iter()
                .map(|e| e.keyword())
                .chain(self.integrity.iter().map(|i| i.keyword()))
                .chain(prf.iter().map(|p| p.keyword()))
                .chain(self.dh.iter().map(|g| g.keyword())),
        )
    }
}

impl fmt::Display for EspProposal {
    /// strongSwan syntax; `noesn` is omitted when it is the only ESN choice.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let esn: &[bool] = if self.esn == [false] { &[] } else { &self.esn };
        write_tokens(
            f,
            self.encryption
                .iter()
                .map(|e| e.keyword())
                .chain(self.integrity.iter().map(|i| i.keyword()))
                .chain(self.dh.iter().map(|g| g.keyword()))
                .chain(esn.iter().map(|e| if *e { "esn" } else { "noesn" })),
        )
    }
}

/// Comma-joins proposals in strongSwan syntax.
pub fn format_list<P: fmt::Display>(proposals: &[P]) -> String {
    proposals
        .iter()
        .map(|p| p.to_string())
        .collect::<Vec<_>>()
        .join(",")
}

// ---------------------------------------------------------------------------
// Transform mapping
// ---------------------------------------------------------------------------

/// The ENCR transform for an algorithm: AES variants carry a Key Length
/// attribute, ChaCha20-Poly1305 none (RFC 7634 §3).
pub fn encryption_transform(e: EncryptionAlgorithm) -> Transform {
    if e == EncryptionAlgorithm::ChaCha20Poly1305 {
        Transform::new(TransformType::ENCR, e.transform_id())
    } else {
        Transform::with_key_length(TransformType::ENCR, e.transform_id(), e.key_bits())
    }
}

/// The algorithm of an ENCR transform, if supported: the ID with the right
/// Key Length attribute and no other attribute.
pub fn encryption_from_transform(t: &Transform) -> Option<EncryptionAlgorithm> {
    if t.transform_type != TransformType::ENCR {
        return None;
    }
    let key_len = match t.attributes.as_slice() {
        [] => None,
        [Attribute::Tv { .. }] => t.key_length(),
        _ => return None,
    };
    if t.attributes.len() == 1 && key_len.is_none() {
        return None;
    }
    EncryptionAlgorithm::ALL.into_iter().find(|e| {
        e.transform_id() == t.id
            && match (*e == EncryptionAlgorithm::ChaCha20Poly1305, key_len) {
                (true, None) => true,
                (true, Some(bits)) => bits == 256,
                (false, Some(bits)) => bits == e.key_bits(),
                (false, None) => false,
            }
    })
}

/// The integrity algorithm of an INTEG transform ID.
pub fn integrity_from_id(id: u16) -> Option<IntegrityAlgorithm> {
    IntegrityAlgorithm::ALL
        .into_iter()
        .find(|i| i.transform_id() == id)
}

fn esn_from_id(id: u16) -> Option<bool> {
    match id {
        transform_id::ESN_NO => Some(false),
        transform_id::ESN_YES => Some(true),
        _ => None,
    }
}

/// A transform's ID, if it has no attributes (RFC 7296 §3.3.5: an unknown
/// attribute makes the transform unacceptable).
fn plain_id(t: &Transform) -> Option<u16> {
    t.attributes.is_empty().then_some(t.id)
}

fn of_type(p: &Proposal, ty: TransformType) -> impl Iterator<Item = &Transform> {
    p.transforms.iter().filter(move |t| t.transform_type == ty)
}

// ---------------------------------------------------------------------------
// Selection
// ---------------------------------------------------------------------------

/// The IKE SA algorithms a responder chose (or an initiator accepted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NegotiatedIke {
    /// The number of the chosen offered proposal (echo it in the reply).
    pub proposal_number: u8,
    /// The offered proposal's SPI (empty in IKE_SA_INIT; the peer's new
    /// IKE SPI in an IKE SA rekey).
    pub spi: Vec<u8>,
    pub encryption: EncryptionAlgorithm,
    /// `None` with AEAD encryption.
    pub integrity: Option<IntegrityAlgorithm>,
    pub prf: Prf,
    pub dh: DhGroup,
}

impl NegotiatedIke {
    /// The single-proposal SA payload content of the reply, with our `spi`.
    pub fn to_wire(&self, spi: &[u8]) -> Proposal {
        self.as_proposal().to_wire(self.proposal_number, spi)
    }

    /// As a one-choice proposal.
    pub fn as_proposal(&self) -> IkeProposal {
        IkeProposal {
            encryption: vec![self.encryption],
            integrity: self.integrity.into_iter().collect(),
            prf: vec![self.prf],
            dh: vec![self.dh],
        }
    }

    /// The SK_e / SK_a lengths for [`crate::crypto::kdf::IkeSaKeys::derive`].
    pub fn key_lengths(&self) -> IkeKeyLengths {
        crate::ike::v2::sk::ike_key_lengths(self.encryption, self.integrity)
    }
}

impl fmt::Display for NegotiatedIke {
    /// Always names the PRF (e.g. `aes128-sha1-prfsha1-modp2048`).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_tokens(
            f,
            [self.encryption.keyword()]
                .into_iter()
                .chain(self.integrity.map(|i| i.keyword()))
                .chain([self.prf.keyword(), self.dh.keyword()]),
        )
    }
}

/// The child SA algorithms a responder chose (or an initiator accepted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NegotiatedEsp {
    /// The number of the chosen offered proposal (echo it in the reply).
    pub proposal_number: u8,
    /// The SPI from the chosen proposal: the peer's inbound SPI, i.e. the
    /// SPI of our outbound ESP SA.
    pub spi: u32,
    pub encryption: EncryptionAlgorithm,
    /// `None` with AEAD encryption.
    pub integrity: Option<IntegrityAlgorithm>,
    /// The PFS group (`None`: no PFS, or IKE_AUTH).
    pub dh: Option<DhGroup>,
    pub esn: bool,
}

impl NegotiatedEsp {
    /// The single-proposal SA payload content of the reply, carrying our
    /// inbound SPI.
    pub fn to_wire(&self, our_spi: u32) -> Proposal {
        self.as_proposal()
            .to_wire(self.proposal_number, our_spi, true)
    }

    /// As a one-choice proposal.
    pub fn as_proposal(&self) -> EspProposal {
        EspProposal {
            encryption: vec![self.encryption],
            integrity: self.integrity.into_iter().collect(),
            dh: self.dh.into_iter().collect(),
            esn: vec![self.esn],
        }
    }
}

impl fmt::Display for NegotiatedEsp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_tokens(
            f,
            [self.encryption.keyword()]
                .into_iter()
                .chain(self.integrity.map(|i| i.keyword()))
                .chain(self.dh.map(|g| g.keyword()))
                .chain([if self.esn { "esn" } else { "noesn" }]),
        )
    }
}

/// Whether the offered proposal only has transform types in `allowed`
/// (strict matching: a type we cannot negotiate rejects the proposal).
fn only_types(p: &Proposal, allowed: &[TransformType]) -> bool {
    p.transforms
        .iter()
        .all(|t| allowed.contains(&t.transform_type))
}

/// Picks the first offered INTEG transform in `ours`, honouring AEAD: with
/// AEAD the offer must have no integrity (or only NONE) and `Some(None)` is
/// returned; `None` means no acceptable choice.
fn pick_integrity(
    offered: &Proposal,
    aead: bool,
    ours: &[IntegrityAlgorithm],
) -> Option<Option<IntegrityAlgorithm>> {
    let mut integ = of_type(offered, TransformType::INTEG);
    if aead {
        integ
            .all(|t| plain_id(t) == Some(transform_id::AUTH_NONE))
            .then_some(None)
    } else {
        integ
            .filter_map(|t| plain_id(t).and_then(integrity_from_id))
            .find(|i| ours.contains(i))
            .map(Some)
    }
}

fn pick_encryption_and_integrity(
    offered: &Proposal,
    encryption: &[EncryptionAlgorithm],
    integrity: &[IntegrityAlgorithm],
) -> Option<(EncryptionAlgorithm, Option<IntegrityAlgorithm>)> {
    of_type(offered, TransformType::ENCR)
        .filter_map(encryption_from_transform)
        .filter(|e| encryption.contains(e))
        .find_map(|e| pick_integrity(offered, e.is_aead(), integrity).map(|i| (e, i)))
}

fn match_ike(ours: &IkeProposal, offered: &Proposal) -> Option<NegotiatedIke> {
    if offered.protocol != ProtocolId::IKE || !matches!(offered.spi.len(), 0 | 8) {
        return None;
    }
    let allowed = [
        TransformType::ENCR,
        TransformType::PRF,
        TransformType::INTEG,
        TransformType::DH,
    ];
    if !only_types(offered, &allowed) {
        return None;
    }
    let (encryption, integrity) =
        pick_encryption_and_integrity(offered, &ours.encryption, &ours.integrity)?;
    let prf = of_type(offered, TransformType::PRF)
        .filter_map(|t| plain_id(t).and_then(Prf::from_id))
        .find(|p| ours.prf.contains(p))?;
    let dh = of_type(offered, TransformType::DH)
        .filter_map(|t| plain_id(t).and_then(DhGroup::from_id))
        .find(|g| ours.dh.contains(g))?;
    Some(NegotiatedIke {
        proposal_number: offered.number,
        spi: offered.spi.clone(),
        encryption,
        integrity,
        prf,
        dh,
    })
}

fn match_esp(ours: &EspProposal, offered: &Proposal, ignore_dh: bool) -> Option<NegotiatedEsp> {
    if offered.protocol != ProtocolId::ESP {
        return None;
    }
    let spi = u32::from_be_bytes(<[u8; 4]>::try_from(&offered.spi[..]).ok()?);
    let allowed = [
        TransformType::ENCR,
        TransformType::INTEG,
        TransformType::DH,
        TransformType::ESN,
    ];
    if !only_types(offered, &allowed) {
        return None;
    }
    let (encryption, integrity) =
        pick_encryption_and_integrity(offered, &ours.encryption, &ours.integrity)?;
    let dh = if ignore_dh {
        None
    } else {
        let mut offered_dh = of_type(offered, TransformType::DH)
            .filter_map(plain_id)
            .peekable();
        if ours.dh.is_empty() {
            // No PFS on our side: the offer must allow none.
            let none_ok = offered_dh.peek().is_none()
                || of_type(offered, TransformType::DH)
                    .any(|t| plain_id(t) == Some(transform_id::DH_NONE));
            if !none_ok {
                return None;
            }
            None
        } else {
            Some(
                offered_dh
                    .filter_map(DhGroup::from_id)
                    .find(|g| ours.dh.contains(g))?,
            )
        }
    };
    let mut offered_esn = of_type(offered, TransformType::ESN).peekable();
    let esn = if offered_esn.peek().is_none() {
        // Tolerate peers that omit ESN: that can only mean 32-bit numbers.
        ours.esn.contains(&false).then_some(false)?
    } else {
        offered_esn
            .filter_map(|t| plain_id(t).and_then(esn_from_id))
            .find(|e| ours.esn.contains(e))?
    };
    Some(NegotiatedEsp {
        proposal_number: offered.number,
        spi,
        encryption,
        integrity,
        dh,
        esn,
    })
}

/// Responder selection of an IKE SA proposal (RFC 7296 §2.7): the first
/// offered proposal acceptable under any of ours, with the first acceptable
/// offered transform of each type. Strict: an offered proposal with a
/// transform type we do not negotiate, a type we need missing, or none of a
/// type acceptable is skipped. `None` means answer NO_PROPOSAL_CHOSEN.
pub fn select_ike(ours: &[IkeProposal], offered: &[Proposal]) -> Option<NegotiatedIke> {
    offered
        .iter()
        .find_map(|o| ours.iter().find_map(|p| match_ike(p, o)))
}

/// Responder selection of a child SA (ESP) proposal, like [`select_ike`].
///
/// `ignore_dh`: true in IKE_AUTH (the first child SA's keys come from the IKE
/// SA's key exchange, and any DH transforms offered there are ignored,
/// RFC 7296 §1.2); false in CREATE_CHILD_SA, where our `dh` list is the PFS
/// requirement: with groups, the offer must contain one of them (the
/// result's `dh`); without, the offer must have no DH or include NONE.
pub fn select_esp(
    ours: &[EspProposal],
    offered: &[Proposal],
    ignore_dh: bool,
) -> Option<NegotiatedEsp> {
    offered
        .iter()
        .find_map(|o| ours.iter().find_map(|p| match_esp(p, o, ignore_dh)))
}

/// Checks the reply proposal shape: exactly one proposal with at most one
/// transform of each type.
fn check_reply(reply: &[Proposal]) -> Result<&Proposal, ProposalError> {
    let [p] = reply else {
        return Err(ProposalError::InvalidReply("not exactly one proposal"));
    };
    for (i, t) in p.transforms.iter().enumerate() {
        if p.transforms[..i]
            .iter()
            .any(|u| u.transform_type == t.transform_type)
        {
            return Err(ProposalError::InvalidReply(
                "more than one transform of a type",
            ));
        }
    }
    Ok(p)
}

/// Initiator check of the responder's IKE SA choice: one proposal, one
/// transform per type, and acceptable under our proposals.
pub fn accept_ike_reply(
    ours: &[IkeProposal],
    reply: &[Proposal],
) -> Result<NegotiatedIke, ProposalError> {
    let p = check_reply(reply)?;
    select_ike(ours, reply).ok_or_else(|| ProposalError::NotOffered {
        chosen: describe_proposal(p),
        offered: format_list(ours),
    })
}

/// Initiator check of the responder's child SA choice (see [`select_esp`]
/// for `ignore_dh`).
pub fn accept_esp_reply(
    ours: &[EspProposal],
    reply: &[Proposal],
    ignore_dh: bool,
) -> Result<NegotiatedEsp, ProposalError> {
    let p = check_reply(reply)?;
    select_esp(ours, reply, ignore_dh).ok_or_else(|| ProposalError::NotOffered {
        chosen: describe_proposal(p),
        offered: format_list(ours),
    })
}

/// Renders a wire proposal for logs, in strongSwan keywords where known:
/// `IKE:aes256gcm16-prfsha256-ecp256`, `ESP:aes128-sha1-noesn`; unknown
/// transforms as `encr(3)`, `dh(23)`, with key length `encr(3,192)`.
pub fn describe_proposal(p: &Proposal) -> String {
    let mut s = format!("{}:", p.protocol);
    for (n, t) in p.transforms.iter().enumerate() {
        if n > 0 {
            s.push('-');
        }
        let known: Option<&str> = match t.transform_type {
            TransformType::ENCR => encryption_from_transform(t).map(|e| e.keyword()),
            TransformType::PRF => plain_id(t).and_then(Prf::from_id).map(|p| p.keyword()),
            TransformType::INTEG => match plain_id(t) {
                Some(transform_id::AUTH_NONE) => Some("noint"),
                id => id.and_then(integrity_from_id).map(|i| i.keyword()),
            },
            TransformType::DH => match plain_id(t) {
                Some(transform_id::DH_NONE) => Some("none"),
                id => id.and_then(DhGroup::from_id).map(|g| g.keyword()),
            },
            TransformType::ESN => {
                plain_id(t)
                    .and_then(esn_from_id)
                    .map(|e| if e { "esn" } else { "noesn" })
            }
            _ => None,
        };
        match known {
            Some(k) => s.push_str(k),
            None => {
                let name = match t.transform_type {
                    TransformType::ENCR => "encr".to_string(),
                    TransformType::PRF => "prf".to_string(),
                    TransformType::INTEG => "integ".to_string(),
                    TransformType::DH => "dh".to_string(),
                    TransformType::ESN => "esn".to_string(),
                    other => format!("type{}", other.0),
                };
                match t.key_length() {
                    Some(bits) => s.push_str(&format!("{name}({},{bits})", t.id)),
                    None => s.push_str(&format!("{name}({})", t.id)),
                }
            }
        }
    }
    s
}

/// Renders a peer's offer: proposals joined by `,`.
pub fn describe_offer(offered: &[Proposal]) -> String {
    offered
        .iter()
        .map(describe_proposal)
        .collect::<Vec<_>>()
        .join(",")
}

/// The message for a proposal mismatch: `we offered X, peer offered Y`
/// (for NO_PROPOSAL_CHOSEN logs and events).
pub fn mismatch_message<P: fmt::Display>(ours: &[P], offered: &[Proposal]) -> String {
    format!(
        "no proposal chosen: we offered {}, peer offered {}",
        format_list(ours),
        describe_offer(offered)
    )
}

#[cfg(test)]
mod tests;
