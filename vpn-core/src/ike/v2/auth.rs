//! The small cryptographic computations of the IKE_SA_INIT / IKE_AUTH
//! exchanges: PSK authentication (RFC 7296 §2.15), NAT detection hashes
//! (§2.23) and stateless cookies (§2.6).

use std::net::{IpAddr, SocketAddr};

use subtle::ConstantTimeEq;

use crate::crypto::{Prf, SecretBytes};

/// The key pad of RFC 7296 §2.15.
const KEY_PAD: &[u8] = b"Key Pad for IKEv2";

/// AUTH = prf(prf(Shared Secret, "Key Pad for IKEv2"), `<SignedOctets>`), with
/// SignedOctets = RealMessage | Nonce of the other side | prf(SK_p, ID body).
pub fn psk_auth(
    prf: Prf,
    psk: &[u8],
    sk_p: &[u8],
    real_message: &[u8],
    peer_nonce: &[u8],
    id_body: &[u8],
) -> SecretBytes {
    let key = prf.prf(psk, KEY_PAD);
    let maced_id = prf.prf(sk_p, id_body);
    prf.prf_parts(&key, &[real_message, peer_nonce, &maced_id])
}

/// Constant-time comparison of a received AUTH value.
pub fn auth_matches(expected: &[u8], received: &[u8]) -> bool {
    expected.len() == received.len() && bool::from(expected.ct_eq(received))
}

/// SHA-1(SPIi | SPIr | IP address | port), the data of a NAT_DETECTION_*_IP notify.
pub fn nat_detection_hash(spi_i: u64, spi_r: u64, addr: SocketAddr) -> Vec<u8> {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY);
    ctx.update(&spi_i.to_be_bytes());
    ctx.update(&spi_r.to_be_bytes());
    match addr.ip() {
        IpAddr::V4(a) => ctx.update(&a.octets()),
        IpAddr::V6(a) => ctx.update(&a.octets()),
    }
    ctx.update(&addr.port().to_be_bytes());
    ctx.finish().as_ref().to_vec()
}

/// A stateless cookie: version byte | HMAC-SHA-256(secret, Ni | IPi | SPIi).
pub fn cookie(secret: &[u8], ni: &[u8], initiator: IpAddr, spi_i: u64) -> Vec<u8> {
    let ip = match initiator {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    };
    let mac = Prf::HmacSha256.prf_parts(secret, &[ni, &ip, &spi_i.to_be_bytes()]);
    let mut out = Vec::with_capacity(1 + mac.len());
    out.push(0);
    out.extend_from_slice(&mac);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nat_hash_depends_on_every_input() {
        let a: SocketAddr = "192.0.2.1:500".parse().unwrap();
        let b: SocketAddr = "192.0.2.1:4500".parse().unwrap();
        let h = nat_detection_hash(1, 2, a);
        assert_eq!(h.len(), 20);
        assert_ne!(h, nat_detection_hash(1, 2, b));
        assert_ne!(h, nat_detection_hash(1, 3, a));
        assert_eq!(h, nat_detection_hash(1, 2, a));
    }

    #[test]
    fn psk_auth_differs_by_key_and_compares() {
        let a = psk_auth(Prf::HmacSha256, b"one", b"skp", b"msg", b"nonce", b"id");
        let b = psk_auth(Prf::HmacSha256, b"two", b"skp", b"msg", b"nonce", b"id");
        assert!(!auth_matches(&a, &b));
        assert!(auth_matches(&a, &a.clone()));
        assert!(!auth_matches(&a, &a[..10]));
    }

    #[test]
    fn cookie_is_bound_to_initiator() {
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        let c = cookie(b"secret", b"ni", ip, 7);
        assert_eq!(c, cookie(b"secret", b"ni", ip, 7));
        assert_ne!(c, cookie(b"secret", b"ni", ip, 8));
        assert_ne!(c, cookie(b"other", b"ni", ip, 7));
    }
}
