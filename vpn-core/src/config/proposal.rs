//! Checks strongSwan-syntax proposal strings token by token.
//!
//! A stand-in until the shared proposal parser (`ike::proposal`) lands: it only answers
//! "would this proposal be usable?", with a message naming the offending token, so that
//! the config can keep proposals as strings and swap this for the real parser later.

use crate::crypto::{DhGroup, Prf};
use crate::esp::{EncryptionAlgorithm, IntegrityAlgorithm};

/// What one proposal string contains.
#[derive(Debug, Default)]
pub(crate) struct Parsed {
    pub encryption: Vec<EncryptionAlgorithm>,
    pub integrity: Vec<IntegrityAlgorithm>,
    pub prf: Vec<Prf>,
    pub dh: Vec<DhGroup>,
}

fn tokens(proposal: &str) -> Result<std::str::Split<'_, char>, String> {
    if proposal.is_empty() {
        return Err("empty proposal".into());
    }
    if proposal.len() > 256 {
        return Err("proposal longer than 256 characters".into());
    }
    Ok(proposal.split('-'))
}

fn bad_token(token: &str, what: &str) -> String {
    if token.is_empty() {
        format!("empty algorithm between '-' ({what})")
    } else if token.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        format!("unknown or unsupported {what} algorithm '{token}'")
    } else {
        format!("invalid characters in {what} algorithm")
    }
}

/// Checks an IKE SA proposal (`aes256-sha256-modp2048`, `aes128gcm16-prfsha256-ecp256`).
pub(crate) fn check_ike(proposal: &str, ike_version: u8) -> Result<Parsed, String> {
    let mut p = Parsed::default();
    for token in tokens(proposal)? {
        if let Ok(e) = EncryptionAlgorithm::from_keyword(token) {
            p.encryption.push(e);
        } else if let Ok(i) = IntegrityAlgorithm::from_keyword(token) {
            p.integrity.push(i);
        } else if let Some(f) = Prf::from_keyword(token) {
            p.prf.push(f);
        } else if let Some(g) = DhGroup::from_keyword(token) {
            p.dh.push(g);
        } else {
            return Err(bad_token(token, "IKE"));
        }
    }
    check_encryption_mix(&p)?;
    let aead = p.encryption.first().is_some_and(|e| e.is_aead());
    if p.dh.is_empty() {
        return Err("no Diffie-Hellman group".into());
    }
    if aead {
        if ike_version == 1 {
            return Err(format!(
                "IKEv1 cannot use the AEAD algorithm {} for the IKE SA",
                p.encryption[0]
            ));
        }
        if p.prf.is_empty() && p.integrity.is_empty() {
            return Err("an AEAD IKE proposal needs a PRF (e.g. prfsha256)".into());
        }
    } else if p.integrity.is_empty() {
        return Err("no integrity algorithm".into());
    }
    Ok(p)
}

/// Checks an ESP proposal (`aes256gcm16-modp2048`, `aes128-sha1`, `aes128-sha1-modp1024-esn`).
pub(crate) fn check_esp(proposal: &str, ike_version: u8) -> Result<Parsed, String> {
    let mut p = Parsed::default();
    for token in tokens(proposal)? {
        if token.eq_ignore_ascii_case("esn") || token.eq_ignore_ascii_case("noesn") {
            continue;
        }
        if let Ok(e) = EncryptionAlgorithm::from_keyword(token) {
            p.encryption.push(e);
        } else if let Ok(i) = IntegrityAlgorithm::from_keyword(token) {
            p.integrity.push(i);
        } else if let Some(g) = DhGroup::from_keyword(token) {
            p.dh.push(g);
        } else if Prf::from_keyword(token).is_some() {
            return Err(format!("ESP proposals take no PRF ('{token}')"));
        } else {
            return Err(bad_token(token, "ESP"));
        }
    }
    check_encryption_mix(&p)?;
    let aead = p.encryption.first().is_some_and(|e| e.is_aead());
    if aead && !p.integrity.is_empty() {
        return Err("an AEAD ESP proposal takes no integrity algorithm".into());
    }
    if !aead && p.integrity.is_empty() {
        return Err("no integrity algorithm".into());
    }
    if ike_version == 1 && p.dh.len() > 1 {
        return Err("IKEv1 Quick Mode takes a single PFS group per proposal".into());
    }
    Ok(p)
}

fn check_encryption_mix(p: &Parsed) -> Result<(), String> {
    if p.encryption.is_empty() {
        return Err("no encryption algorithm".into());
    }
    let aead = p.encryption.iter().filter(|e| e.is_aead()).count();
    if aead != 0 && aead != p.encryption.len() {
        return Err("mixes AEAD and non-AEAD encryption in one proposal".into());
    }
    Ok(())
}

/// AWS's names (`AES128`, `aes-128-cbc`, `AES256-GCM-16`, `aes-256-gcm-16`) to the
/// strongSwan keyword.
pub(crate) fn aws_encryption(name: &str) -> Option<EncryptionAlgorithm> {
    let n = name.trim().to_ascii_lowercase().replace('-', "");
    Some(match n.as_str() {
        "aes128" | "aes128cbc" => EncryptionAlgorithm::Aes128Cbc,
        "aes256" | "aes256cbc" => EncryptionAlgorithm::Aes256Cbc,
        "aes128gcm16" => EncryptionAlgorithm::Aes128Gcm16,
        "aes256gcm16" => EncryptionAlgorithm::Aes256Gcm16,
        _ => return None,
    })
}

/// AWS's names (`SHA1`, `SHA2-256`, `sha2-256`, `hmac-sha1-96`, `hmac-sha2-256-128`).
pub(crate) fn aws_integrity(name: &str) -> Option<IntegrityAlgorithm> {
    let n = name.trim().to_ascii_lowercase();
    let n = n.strip_prefix("hmac-").unwrap_or(&n);
    Some(match n {
        "sha1" | "sha1-96" | "sha" => IntegrityAlgorithm::HmacSha1_96,
        "sha2-256" | "sha256" | "sha2-256-128" => IntegrityAlgorithm::HmacSha256_128,
        "sha2-384" | "sha384" | "sha2-384-192" => IntegrityAlgorithm::HmacSha384_192,
        "sha2-512" | "sha512" | "sha2-512-256" => IntegrityAlgorithm::HmacSha512_256,
        _ => return None,
    })
}

/// The PRF built on the same hash as an integrity algorithm.
pub(crate) fn prf_for(integrity: IntegrityAlgorithm) -> Prf {
    match integrity {
        IntegrityAlgorithm::HmacSha1_96 => Prf::HmacSha1,
        IntegrityAlgorithm::HmacSha256_128 => Prf::HmacSha256,
        IntegrityAlgorithm::HmacSha384_192 => Prf::HmacSha384,
        IntegrityAlgorithm::HmacSha512_256 => Prf::HmacSha512,
    }
}

/// Builds an IKE proposal string: `enc-integ-dh`, or `enc-prf-dh` for an AEAD.
pub(crate) fn ike_proposal(
    enc: EncryptionAlgorithm,
    integ: IntegrityAlgorithm,
    dh: DhGroup,
) -> String {
    if enc.is_aead() {
        format!(
            "{}-{}-{}",
            enc.keyword(),
            prf_for(integ).keyword(),
            dh.keyword()
        )
    } else {
        format!("{}-{}-{}", enc.keyword(), integ.keyword(), dh.keyword())
    }
}

/// Builds an ESP proposal string: `enc[-integ][-pfs]`.
pub(crate) fn esp_proposal(
    enc: EncryptionAlgorithm,
    integ: IntegrityAlgorithm,
    pfs: Option<DhGroup>,
) -> String {
    let mut s = enc.keyword().to_owned();
    if !enc.is_aead() {
        s.push('-');
        s.push_str(integ.keyword());
    }
    if let Some(g) = pfs {
        s.push('-');
        s.push_str(g.keyword());
    }
    s
}
