use super::*;
use crate::ike::v2::wire::{decode_payloads, encode_payloads, Payload, PayloadType, SaPayload};
use DhGroup as G;
use EncryptionAlgorithm as E;
use IntegrityAlgorithm as I;

fn ike(s: &str) -> IkeProposal {
    IkeProposal::parse(s).unwrap()
}

fn esp(s: &str) -> EspProposal {
    EspProposal::parse(s).unwrap()
}

#[test]
fn parse_ike() {
    assert_eq!(
        ike("aes256gcm16-prfsha256-ecp256"),
        IkeProposal {
            encryption: vec![E::Aes256Gcm16],
            integrity: vec![],
            prf: vec![Prf::HmacSha256],
            dh: vec![G::Ecp256],
        }
    );
    // PRF derived from integrity, as strongSwan does.
    assert_eq!(
        ike("aes128-sha1-modp2048"),
        IkeProposal {
            encryption: vec![E::Aes128Cbc],
            integrity: vec![I::HmacSha1_96],
            prf: vec![Prf::HmacSha1],
            dh: vec![G::Modp2048],
        }
    );
    assert_eq!(
        ike("aes128-aes256-sha1-sha256-modp2048-modp1024"),
        IkeProposal {
            encryption: vec![E::Aes128Cbc, E::Aes256Cbc],
            integrity: vec![I::HmacSha1_96, I::HmacSha256_128],
            prf: vec![Prf::HmacSha1, Prf::HmacSha256],
            dh: vec![G::Modp2048, G::Modp1024],
        }
    );
    // Case-insensitive, aliases.
    assert_eq!(ike("AES256-SHA2_256-x25519").dh, vec![G::Curve25519]);
    let list = parse_ike_proposals("aes256gcm16-prfsha256-ecp256,aes128-sha1-modp2048").unwrap();
    assert_eq!(list.len(), 2);
    assert_eq!(
        format_list(&list),
        "aes256gcm16-prfsha256-ecp256,aes128-sha1-modp2048"
    );
}

#[test]
fn parse_esp() {
    assert_eq!(
        esp("aes256gcm16-modp2048-esn"),
        EspProposal {
            encryption: vec![E::Aes256Gcm16],
            integrity: vec![],
            dh: vec![G::Modp2048],
            esn: vec![true],
        }
    );
    assert_eq!(
        esp("aes128-sha1"),
        EspProposal {
            encryption: vec![E::Aes128Cbc],
            integrity: vec![I::HmacSha1_96],
            dh: vec![],
            esn: vec![false],
        }
    );
    assert_eq!(esp("aes128gcm16-esn-noesn").esn, vec![true, false]);
    assert_eq!(esp("aes128-sha256-noesn").esn, vec![false]);
    assert_eq!(
        parse_esp_proposals("aes128gcm16,aes128-sha1")
            .unwrap()
            .len(),
        2
    );
}

#[test]
fn parse_errors_name_token_and_proposal() {
    let e = IkeProposal::parse("aes128-md5-modp2048").unwrap_err();
    assert_eq!(
        e.to_string(),
        "unknown algorithm 'md5' in proposal 'aes128-md5-modp2048'"
    );
    assert!(matches!(
        IkeProposal::parse("aes256gcm16-ecp256"),
        Err(ProposalError::Invalid { reason, .. }) if reason.contains("PRF")
    ));
    assert!(matches!(
        IkeProposal::parse("aes128-sha1"),
        Err(ProposalError::Invalid { reason, .. }) if reason.contains("DH")
    ));
    assert!(IkeProposal::parse("aes128-modp2048").is_err()); // no integrity
    assert!(IkeProposal::parse("aes128gcm16-sha1-prfsha1-modp2048").is_err());
    assert!(IkeProposal::parse("aes128-aes128gcm16-sha1-modp2048").is_err());
    assert!(IkeProposal::parse("aes128-sha1-modp2048-esn").is_err());
    assert!(EspProposal::parse("aes128gcm16-prfsha256").is_err());
    assert!(EspProposal::parse("sha1-modp2048").is_err());
    assert_eq!(
        parse_esp_proposals("aes128-sha1,"),
        Err(ProposalError::Empty)
    );
    let e = parse_ike_proposals("aes128-sha1-modp2048,3des-sha1-modp1024").unwrap_err();
    assert!(e.to_string().contains("'3des'"));
}

#[test]
fn display_round_trips() {
    for s in [
        "aes256gcm16-prfsha256-ecp256",
        "aes128-sha1-modp2048",
        "aes128-aes256-sha1-sha256-modp2048-modp1024",
        "aes128-sha256-prfsha384-curve25519",
        "chacha20poly1305-prfsha512-ecp384-ecp521",
    ] {
        assert_eq!(ike(s).to_string(), s);
        assert_eq!(ike(&ike(s).to_string()), ike(s));
    }
    // The explicit PRF equal to the derived one is not repeated.
    assert_eq!(
        ike("aes128-sha256-prfsha256-modp2048").to_string(),
        "aes128-sha256-modp2048"
    );
    for s in [
        "aes256gcm16-modp2048-esn",
        "aes128-sha1",
        "aes128gcm16-esn-noesn",
        "aes256-sha512-ecp256-curve25519",
    ] {
        assert_eq!(esp(s).to_string(), s);
    }
    assert_eq!(esp("aes128-sha1-noesn").to_string(), "aes128-sha1");
}

#[test]
fn wire_conversion_round_trips() {
    let p = ike("aes128-aes256-sha1-sha256-modp2048-modp1024");
    let w = p.to_wire(1, &[]);
    assert_eq!(IkeProposal::from_wire(&w), Some(p.clone()));
    // Key Length attributes on AES, none on ChaCha20-Poly1305.
    assert_eq!(w.transforms[0].key_length(), Some(128));
    assert_eq!(w.transforms[1].key_length(), Some(256));
    let c = ike("chacha20poly1305-prfsha256-curve25519").to_wire(2, &[1; 8]);
    assert!(c.transforms[0].attributes.is_empty());
    assert_eq!(c.transforms[0].id, transform_id::ENCR_CHACHA20_POLY1305);
    assert_eq!(c.spi, vec![1; 8]);

    let e = esp("aes256gcm16-modp2048-esn-noesn");
    let w = e.to_wire(1, 0xc0ffee01, true);
    assert_eq!(w.spi, vec![0xc0, 0xff, 0xee, 0x01]);
    assert_eq!(EspProposal::from_wire(&w), Some(e.clone()));
    // Without DH (IKE_AUTH).
    let w = e.to_wire(1, 1, false);
    assert!(w
        .transforms
        .iter()
        .all(|t| t.transform_type != TransformType::DH));

    // Through the SA payload codec too.
    let sa = Payload::Sa(SaPayload {
        proposals: vec![
            p.to_wire(1, &[]),
            ike("aes256gcm16-prfsha256-ecp256").to_wire(2, &[]),
        ],
    });
    let (first, bytes) = encode_payloads(std::slice::from_ref(&sa)).unwrap();
    assert_eq!(first, PayloadType::SA);
    assert_eq!(decode_payloads(first, &bytes).unwrap(), vec![sa]);

    // Unsupported transforms make from_wire fail.
    let mut w = p.to_wire(1, &[]);
    w.transforms.push(Transform::new(TransformType::ENCR, 3)); // 3DES
    assert_eq!(IkeProposal::from_wire(&w), None);
}

#[test]
fn select_ike_matches_and_orders() {
    let ours = parse_ike_proposals("aes256gcm16-prfsha256-ecp256,aes128-sha1-modp2048").unwrap();
    // Peer offers the CBC one first: the responder honours the peer's order.
    let offered = [
        ike("aes128-sha256-sha1-modp1024-modp2048").to_wire(1, &[]),
        ike("aes256gcm16-prfsha256-ecp256").to_wire(2, &[]),
    ];
    let n = select_ike(&ours, &offered).unwrap();
    assert_eq!(
        n,
        NegotiatedIke {
            proposal_number: 1,
            spi: vec![],
            encryption: E::Aes128Cbc,
            integrity: Some(I::HmacSha1_96),
            prf: Prf::HmacSha1,
            dh: G::Modp2048,
        }
    );
    assert_eq!(n.key_lengths().integ, 20);
    assert_eq!(n.key_lengths().encr, 16);
    // The reply is a valid single choice for the initiator.
    let reply = [n.to_wire(&[])];
    assert_eq!(reply[0].transforms.len(), 4);
    let peer_ours =
        parse_ike_proposals("aes128-sha256-sha1-modp1024-modp2048,aes256gcm16-prfsha256-ecp256")
            .unwrap();
    assert_eq!(accept_ike_reply(&peer_ours, &reply).unwrap(), n);

    // Second offered proposal chosen when the first is unacceptable.
    let offered = [
        ike("aes128-sha512-modp2048").to_wire(1, &[]),
        ike("aes256gcm16-prfsha256-ecp256").to_wire(2, &[]),
    ];
    let n = select_ike(&ours, &offered).unwrap();
    assert_eq!((n.proposal_number, n.encryption), (2, E::Aes256Gcm16));
    assert_eq!(n.integrity, None);
    assert_eq!(n.key_lengths().encr, 36);
}

#[test]
fn select_ike_mismatches() {
    let ours = parse_ike_proposals("aes256gcm16-prfsha256-ecp256").unwrap();
    // DH mismatch.
    let offered = [ike("aes256gcm16-prfsha256-modp2048").to_wire(1, &[])];
    assert_eq!(select_ike(&ours, &offered), None);
    let msg = mismatch_message(&ours, &offered);
    assert_eq!(
        msg,
        "no proposal chosen: we offered aes256gcm16-prfsha256-ecp256, \
         peer offered IKE:aes256gcm16-prfsha256-modp2048"
    );
    // PRF mismatch.
    let offered = [ike("aes256gcm16-prfsha1-ecp256").to_wire(1, &[])];
    assert_eq!(select_ike(&ours, &offered), None);
    // Key length mismatch (AES-128-GCM offered).
    let offered = [ike("aes128gcm16-prfsha256-ecp256").to_wire(1, &[])];
    assert_eq!(select_ike(&ours, &offered), None);
    // Strict: an extra transform type (ESN in an IKE proposal) rejects it.
    let mut w = ike("aes256gcm16-prfsha256-ecp256").to_wire(1, &[]);
    w.transforms.push(Transform::new(TransformType::ESN, 0));
    assert_eq!(select_ike(&ours, &[w]), None);
    // An AEAD offer with a real integrity transform is rejected; INTEG NONE is fine.
    let mut w = ike("aes256gcm16-prfsha256-ecp256").to_wire(1, &[]);
    w.transforms.push(Transform::new(TransformType::INTEG, 12));
    assert_eq!(select_ike(&ours, &[w.clone()]), None);
    w.transforms.last_mut().unwrap().id = transform_id::AUTH_NONE;
    assert!(select_ike(&ours, &[w]).is_some());
    // Missing DH type.
    let mut w = ike("aes256gcm16-prfsha256-ecp256").to_wire(1, &[]);
    w.transforms
        .retain(|t| t.transform_type != TransformType::DH);
    assert_eq!(select_ike(&ours, &[w]), None);
    // Unknown transforms are skipped within a type, and shown by number.
    let mut w = ike("aes256gcm16-prfsha256-ecp256").to_wire(1, &[]);
    w.transforms
        .insert(0, Transform::with_key_length(TransformType::ENCR, 23, 256));
    w.transforms.push(Transform::new(TransformType::DH, 32));
    assert!(select_ike(&ours, std::slice::from_ref(&w)).is_some());
    assert_eq!(
        describe_proposal(&w),
        "IKE:encr(23,256)-aes256gcm16-prfsha256-ecp256-dh(32)"
    );
    // Wrong protocol.
    let w = esp("aes256gcm16").to_wire(1, 5, true);
    assert_eq!(select_ike(&ours, &[w]), None);
}

#[test]
fn accept_reply_checks_shape() {
    let ours = parse_ike_proposals("aes128-aes256-sha1-sha256-modp2048").unwrap();
    // A reply with two encryption transforms is not a choice.
    let reply = [ike("aes128-aes256-sha1-modp2048").to_wire(1, &[])];
    assert!(matches!(
        accept_ike_reply(&ours, &reply),
        Err(ProposalError::InvalidReply(_))
    ));
    assert!(matches!(
        accept_ike_reply(&ours, &[]),
        Err(ProposalError::InvalidReply(_))
    ));
    // A choice we did not offer.
    let reply = [ike("aes256-sha384-modp2048").to_wire(1, &[])];
    let e = accept_ike_reply(&ours, &reply).unwrap_err();
    assert!(matches!(e, ProposalError::NotOffered { .. }));
    assert!(e
        .to_string()
        .contains("IKE:aes256-sha384-prfsha384-modp2048"));
}

#[test]
fn select_esp_cases() {
    let ours = parse_esp_proposals("aes256gcm16-modp2048-esn,aes128-sha1").unwrap();
    // IKE_AUTH: DH ignored, ESN chosen by the offer's order within ours.
    let offered = [esp("aes256gcm16-ecp256-esn-noesn").to_wire(1, 0x1122_3344, true)];
    let n = select_esp(&ours, &offered, true).unwrap();
    assert_eq!(
        n,
        NegotiatedEsp {
            proposal_number: 1,
            spi: 0x1122_3344,
            encryption: E::Aes256Gcm16,
            integrity: None,
            dh: None,
            esn: true,
        }
    );
    assert_eq!(n.to_string(), "aes256gcm16-esn");
    // CREATE_CHILD_SA: PFS group must match.
    assert_eq!(select_esp(&ours[..1], &offered, false), None);
    let offered = [esp("aes256gcm16-modp2048-esn").to_wire(1, 7, true)];
    let n = select_esp(&ours, &offered, false).unwrap();
    assert_eq!(n.dh, Some(G::Modp2048));
    let reply = [n.to_wire(9)];
    assert_eq!(reply[0].spi, vec![0, 0, 0, 9]);
    let back = accept_esp_reply(&ours, &reply, false).unwrap();
    assert_eq!((back.spi, back.dh, back.esn), (9, Some(G::Modp2048), true));
    // No PFS on our side: an offer insisting on a group is refused, one
    // allowing NONE is accepted.
    let no_pfs = parse_esp_proposals("aes128-sha1").unwrap();
    let offered = [esp("aes128-sha1-modp2048").to_wire(1, 7, true)];
    assert_eq!(select_esp(&no_pfs, &offered, false), None);
    let mut w = offered[0].clone();
    w.transforms
        .push(Transform::new(TransformType::DH, transform_id::DH_NONE));
    let n = select_esp(&no_pfs, &[w], false).unwrap();
    assert_eq!(
        (n.integrity, n.dh, n.esn),
        (Some(I::HmacSha1_96), None, false)
    );
    // ESN mismatch.
    let only_esn = parse_esp_proposals("aes128-sha1-esn").unwrap();
    let offered = [esp("aes128-sha1").to_wire(1, 7, true)];
    assert_eq!(select_esp(&only_esn, &offered, true), None);
    // A peer omitting ESN altogether gets no ESN.
    let mut w = offered[0].clone();
    w.transforms
        .retain(|t| t.transform_type != TransformType::ESN);
    assert!(!select_esp(&no_pfs, &[w.clone()], true).unwrap().esn);
    assert_eq!(select_esp(&only_esn, &[w], true), None);
    // SPI must be 4 bytes.
    let mut w = offered[0].clone();
    w.spi = vec![1, 2, 3];
    assert_eq!(select_esp(&no_pfs, &[w], true), None);
    assert_eq!(describe_offer(&offered), "ESP:aes128-sha1-noesn");
}
