use super::*;
use crate::crypto::test_util::hex;
use proptest::prelude::*;

/// A Main Mode first message as strongSwan shapes it for AWS's default
/// proposal: SA (one proposal, one transform: AES-128, SHA1, PSK, modp1024,
/// 28800 s) and the NAT-T vendor ID. Written out field by field.
fn mm1_bytes() -> Vec<u8> {
    hex("
        0102030405060708 0000000000000000 01 10 02 00 00000000 00000068
        0d 00 0038  00000001 00000001
          00 00 002c 01 01 00 01
            00 00 0024 01 01 0000
              8001 0007 800e 0080 8002 0002 8003 0001 8004 0002 800b 0001 800c 7080
        00 00 0014 4a131c81070358455c5728f20e95452f
    ")
}

fn mm1() -> Message {
    let attrs = vec![
        Attribute::Basic {
            attr_type: 1,
            value: 7,
        },
        Attribute::Basic {
            attr_type: 14,
            value: 128,
        },
        Attribute::Basic {
            attr_type: 2,
            value: 2,
        },
        Attribute::Basic {
            attr_type: 3,
            value: 1,
        },
        Attribute::Basic {
            attr_type: 4,
            value: 2,
        },
        Attribute::Basic {
            attr_type: 11,
            value: 1,
        },
        Attribute::Basic {
            attr_type: 12,
            value: 28800,
        },
    ];
    Message {
        header: Header::new(
            [1, 2, 3, 4, 5, 6, 7, 8],
            [0; 8],
            ExchangeType::MAIN_MODE,
            Flags(0),
            0,
        ),
        payloads: vec![
            Payload::Sa(SaPayload {
                doi: DOI_IPSEC,
                situation: SIT_IDENTITY_ONLY,
                proposals: vec![Proposal {
                    number: 1,
                    protocol: ProtocolId::ISAKMP,
                    spi: vec![],
                    transforms: vec![Transform {
                        number: 1,
                        transform_id: ike_attr::TRANSFORM_KEY_IKE,
                        attributes: attrs,
                    }],
                }],
            }),
            Payload::VendorId(VID_NAT_T_RFC3947.to_vec()),
        ],
    }
}

#[test]
fn main_mode_sa_byte_exact() {
    let bytes = mm1_bytes();
    let mut want = mm1();
    want.header.next_payload = PayloadType::SA;
    want.header.length = bytes.len() as u32;
    assert_eq!(Message::decode(&bytes).unwrap(), want);
    assert_eq!(mm1().encode(), bytes);
}

#[test]
fn payload_kinds_round_trip() {
    let payloads = vec![
        Payload::Ke(vec![9; 128]),
        Payload::Nonce(vec![1; 32]),
        Payload::Id(IdPayload::ipv4(Ipv4Addr::new(192, 0, 2, 1))),
        Payload::Id(IdPayload::ipv4_subnet(Ipv4Addr::new(10, 1, 2, 3), 16)),
        Payload::Id(IdPayload::ipv6_subnet("2001:db8::1".parse().unwrap(), 64)),
        Payload::Id(IdPayload::fqdn("vpn.example")),
        Payload::Hash(vec![0xab; 20]),
        Payload::Notify(NotifyPayload::new(
            ProtocolId::ISAKMP,
            NotifyType::R_U_THERE,
            vec![7; 16],
            vec![0, 0, 0, 5],
        )),
        Payload::Delete(DeletePayload {
            doi: DOI_IPSEC,
            protocol: ProtocolId::ESP,
            spi_size: 4,
            spis: vec![vec![1, 2, 3, 4], vec![5, 6, 7, 8]],
        }),
        Payload::NatD(vec![3; 20]),
        Payload::Unknown {
            payload_type: PayloadType(200),
            body: vec![1, 2, 3],
        },
        Payload::Sa(SaPayload {
            doi: DOI_IPSEC,
            situation: SIT_IDENTITY_ONLY,
            proposals: vec![Proposal {
                number: 1,
                protocol: ProtocolId::ESP,
                spi: vec![0xc0, 0, 0, 1],
                transforms: vec![
                    Transform {
                        number: 1,
                        transform_id: ipsec_attr::TRANSFORM_ESP_AES,
                        attributes: vec![
                            Attribute::number(ipsec_attr::SA_LIFE_DURATION, 100_000),
                            Attribute::number(ipsec_attr::KEY_LENGTH, 256),
                        ],
                    },
                    Transform {
                        number: 2,
                        transform_id: ipsec_attr::TRANSFORM_ESP_AES,
                        attributes: vec![],
                    },
                ],
            }],
        }),
    ];
    let msg = Message {
        header: Header::new([9; 8], [8; 8], ExchangeType::QUICK_MODE, Flags(0), 0x1234),
        payloads,
    };
    let bytes = msg.encode();
    let back = Message::decode(&bytes).unwrap();
    assert_eq!(back.payloads, msg.payloads);
    assert_eq!(back.encode(), bytes);
    // The 100000 s lifetime needed a 4-byte TLV.
    let Payload::Sa(sa) = &back.payloads[11] else {
        panic!()
    };
    let a = &sa.proposals[0].transforms[0].attributes[0];
    assert!(matches!(a, Attribute::Variable { value, .. } if value.len() == 4));
    assert_eq!(a.as_u64(), Some(100_000));
    assert_eq!(back.payloads[3].clone(), msg.payloads[3]);
    let Payload::Id(id) = &back.payloads[3] else {
        panic!()
    };
    assert_eq!(id.to_string(), "10.1.0.0/16");
}

#[test]
fn chain_offsets_and_padding() {
    let payloads = [Payload::Hash(vec![1; 20]), Payload::Nonce(vec![2; 16])];
    let mut chain = Vec::new();
    encode_payloads(&payloads, &mut chain);
    let chain_len = chain.len();
    chain.extend_from_slice(&[0; 7]); // CBC padding
    let (raw, end) = decode_chain(PayloadType::HASH, &chain).unwrap();
    assert_eq!(end, chain_len);
    assert_eq!(raw[0].body(&chain), &[1; 20]);
    assert_eq!(raw[1].whole(&chain).len(), 20);
    assert_eq!(raw[1].payload_type, PayloadType::NONCE);
}

#[test]
fn malformed_inputs_are_errors() {
    let good = mm1_bytes();
    // Length mismatch.
    assert!(matches!(
        Message::decode(&good[..good.len() - 1]),
        Err(WireError::LengthMismatch { .. })
    ));
    // Version 2.0.
    let mut v2 = good.clone();
    v2[17] = 0x20;
    assert!(matches!(
        Message::decode(&v2),
        Err(WireError::UnsupportedVersion { major: 2, .. })
    ));
    // Payload length below 4.
    let mut bad = good.clone();
    bad[30] = 0;
    bad[31] = 2;
    assert!(Message::decode(&bad).is_err());
    // Transform count lies.
    let mut bad = good.clone();
    bad[47] = 2;
    assert!(Message::decode(&bad).is_err());
    assert!(Header::decode(&[0; 27]).is_err());
}

#[test]
fn code_point_names() {
    assert_eq!(NotifyType(14).to_string(), "NO_PROPOSAL_CHOSEN");
    assert_eq!(NotifyType(36136), NotifyType::R_U_THERE);
    assert_eq!(format!("{:?}", NotifyType(9999)), "NotifyType(9999)");
    assert!(NotifyType::INVALID_HASH_INFORMATION.is_error());
    assert!(!NotifyType::INITIAL_CONTACT.is_error());
    assert_eq!(ExchangeType::MAIN_MODE.0, 2);
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = Message::decode(&bytes);
        let _ = decode_chain(PayloadType(bytes.first().copied().unwrap_or(1)), &bytes);
        for t in [1u8, 5, 11, 12] {
            let _ = Payload::decode(PayloadType(t), &bytes);
        }
    }

    #[test]
    fn mutated_valid_message_never_panics(pos in 0usize..104, val in any::<u8>()) {
        let mut b = mm1_bytes();
        b[pos] = val;
        if let Ok(m) = Message::decode(&b) {
            // Whatever decodes re-encodes to something that decodes the same.
            let again = Message::decode(&m.encode());
            prop_assert!(again.is_ok());
            prop_assert_eq!(again.unwrap().payloads, m.payloads);
        }
    }
}
