use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;

use super::*;
use crate::crypto::test_util::hex;

/// An IKE_SA_INIT request assembled by hand from the RFC 7296 §3 diagrams:
/// SA (one IKE proposal: ENCR_AES_GCM_16 with Key Length 256,
/// PRF_HMAC_SHA2_256, DH group 19), KE (group 19, 64 bytes), Nonce (32 bytes),
/// N(NAT_DETECTION_SOURCE_IP), N(NAT_DETECTION_DESTINATION_IP).
fn sa_init_bytes() -> Vec<u8> {
    hex(concat!(
        // IKE header (§3.1): SPIi, SPIr = 0
        "0011223344556677 0000000000000000",
        // next payload SA(33), version 2.0, IKE_SA_INIT(34), flags I, message ID 0
        "21 20 22 08 00000000",
        // length 232
        "000000e8",
        // SA payload (§3.3): next KE(34), C=0, length 40
        "22 00 0028",
        // proposal (§3.3.1): last, reserved, length 36, #1, IKE(1), SPI size 0, 3 transforms
        "00 00 0024 01 01 00 03",
        // transform (§3.3.2): more(3), length 12, ENCR(1), ENCR_AES_GCM_16(20), attribute
        // (§3.3.5) AF=1 Key Length(14) = 256
        "03 00 000c 01 00 0014 800e 0100",
        // transform: more, length 8, PRF(2), PRF_HMAC_SHA2_256(5)
        "03 00 0008 02 00 0005",
        // transform: last(0), length 8, D-H(4), group 19
        "00 00 0008 04 00 0013",
        // KE payload (§3.4): next Nonce(40), length 72, group 19, reserved, 64 bytes
        "28 00 0048 0013 0000",
        "1111111111111111111111111111111111111111111111111111111111111111",
        "2222222222222222222222222222222222222222222222222222222222222222",
        // Nonce payload (§3.9): next Notify(41), length 36, 32 bytes
        "29 00 0024",
        "3333333333333333333333333333333333333333333333333333333333333333",
        // Notify (§3.10): next Notify, length 28, protocol 0, SPI size 0,
        // NAT_DETECTION_SOURCE_IP(16388 = 0x4004), 20-byte SHA-1 hash
        "29 00 001c 00 00 4004 4444444444444444444444444444444444444444",
        // Notify: next NONE, length 28, NAT_DETECTION_DESTINATION_IP(0x4005)
        "00 00 001c 00 00 4005 5555555555555555555555555555555555555555",
    ))
}

fn sa_init_message() -> Message {
    Message {
        header: Header::new(
            0x0011_2233_4455_6677,
            0,
            ExchangeType::IKE_SA_INIT,
            Flags::new(true, false),
            0,
        ),
        payloads: vec![
            Payload::Sa(SaPayload {
                proposals: vec![Proposal {
                    number: 1,
                    protocol: ProtocolId::IKE,
                    spi: vec![],
                    transforms: vec![
                        Transform::with_key_length(
                            TransformType::ENCR,
                            transform_id::ENCR_AES_GCM_16,
                            256,
                        ),
                        Transform::new(TransformType::PRF, transform_id::PRF_HMAC_SHA2_256),
                        Transform::new(TransformType::DH, transform_id::DH_ECP_256),
                    ],
                }],
            }),
            Payload::Ke(KePayload {
                group: 19,
                data: [[0x11u8; 32], [0x22; 32]].concat(),
            }),
            Payload::Nonce(vec![0x33; 32]),
            Payload::Notify(NotifyPayload::new(
                NotifyType::NAT_DETECTION_SOURCE_IP,
                vec![0x44; 20],
            )),
            Payload::Notify(NotifyPayload::new(
                NotifyType::NAT_DETECTION_DESTINATION_IP,
                vec![0x55; 20],
            )),
        ],
    }
}

#[test]
fn ike_sa_init_request_byte_exact() {
    let bytes = sa_init_bytes();
    assert_eq!(bytes.len(), 232);
    let msg = Message::decode(&bytes).unwrap();
    let mut want = sa_init_message();
    want.header.next_payload = PayloadType::SA;
    want.header.length = 232;
    assert_eq!(msg, want);
    assert_eq!(msg.encode().unwrap(), bytes);
    // Header fields ignored by encode: a fresh header gives the same bytes.
    assert_eq!(sa_init_message().encode().unwrap(), bytes);

    let sa = msg.payloads.sa().unwrap();
    assert_eq!(sa.proposals[0].transforms[0].key_length(), Some(256));
    assert_eq!(msg.payloads.ke().unwrap().group, 19);
    assert_eq!(msg.payloads.nonce().unwrap().len(), 32);
    assert!(msg
        .find_notify(NotifyType::NAT_DETECTION_DESTINATION_IP)
        .is_some());
    assert_eq!(msg.payloads.notifies().len(), 2);
    assert!(msg.header.flags.initiator() && !msg.header.is_response());
}

#[test]
fn header_checks() {
    let mut bytes = sa_init_bytes();
    assert_eq!(
        Message::decode(&bytes[..27]),
        Err(WireError::ShortHeader { len: 27 })
    );
    assert_eq!(
        Message::decode(&bytes[..100]),
        Err(WireError::LengthMismatch {
            header: 232,
            actual: 100
        })
    );
    bytes[17] = 0x30;
    let err = Message::decode(&bytes).unwrap_err();
    assert_eq!(err, WireError::UnsupportedMajorVersion { major: 3 });
    assert_eq!(err.notify_type(), Some(NotifyType::INVALID_MAJOR_VERSION));
    // The header alone still decodes, to answer.
    let h = Header::decode(&bytes).unwrap();
    assert_eq!((h.major_version, h.spi_i), (3, 0x0011_2233_4455_6677));
    // Minor version is ignored.
    bytes[17] = 0x21;
    assert!(Message::decode(&bytes).is_ok());
}

#[test]
fn payload_length_errors() {
    let bytes = sa_init_bytes();
    // SA payload length 3 (< 4).
    let mut b = bytes.clone();
    b[28 + 3] = 3;
    assert!(matches!(
        Message::decode(&b),
        Err(WireError::BadPayloadLength {
            payload_type: PayloadType::SA,
            length: 3
        })
    ));
    // Last notify claims more bytes than remain.
    let mut b = bytes.clone();
    b[232 - 28 + 3] = 29;
    assert!(matches!(
        Message::decode(&b),
        Err(WireError::BadPayloadLength { .. })
    ));
    // Chain ends early: trailing bytes.
    let mut b = bytes.clone();
    b[232 - 56] = 0;
    assert_eq!(
        Message::decode(&b),
        Err(WireError::TrailingData { extra: 28 })
    );
    // Chain promises another payload that is not there.
    let mut b = bytes.clone();
    b[232 - 28] = 41;
    assert_eq!(
        Message::decode(&b),
        Err(WireError::Truncated {
            payload_type: PayloadType::NOTIFY
        })
    );
    // Wrong transform count.
    let mut b = bytes.clone();
    b[28 + 4 + 7] = 4;
    assert!(matches!(
        Message::decode(&b),
        Err(WireError::Malformed {
            payload_type: PayloadType::SA,
            ..
        })
    ));
    // Truncated KE (body shorter than its fixed 4 bytes).
    assert_eq!(
        decode_payloads(PayloadType::KE, &hex("00000006 0013")),
        Err(WireError::Truncated {
            payload_type: PayloadType::KE
        })
    );
}

#[test]
fn unknown_payloads() {
    // A non-critical unknown payload (type 200) survives byte for byte.
    let chain = hex("29 00 0007 aabbcc 00 00 0008 0000 4000");
    let p = decode_payloads(PayloadType(200), &chain).unwrap();
    assert_eq!(
        p[0],
        Payload::Unknown(UnknownPayload {
            payload_type: PayloadType(200),
            critical: false,
            body: vec![0xaa, 0xbb, 0xcc],
        })
    );
    assert_eq!(
        encode_payloads(&p).unwrap(),
        (PayloadType(200), chain.clone())
    );
    // The same with the critical bit set is rejected with its type.
    let mut crit = chain.clone();
    crit[1] = 0x80;
    let err = decode_payloads(PayloadType(200), &crit).unwrap_err();
    assert_eq!(
        err,
        WireError::UnsupportedCriticalPayload {
            payload_type: PayloadType(200)
        }
    );
    assert_eq!(
        err.notify_type(),
        Some(NotifyType::UNSUPPORTED_CRITICAL_PAYLOAD)
    );
    assert_eq!(err.notify_data(), vec![200]);
    // The critical bit on a known payload is ignored (RFC 7296 §3.2).
    let mut known = chain.clone();
    known[7 + 1] = 0x80;
    assert!(decode_payloads(PayloadType(200), &known).is_ok());
}

#[test]
fn encrypted_payload_is_last() {
    let msg = Message {
        header: Header::new(1, 2, ExchangeType::IKE_AUTH, Flags::new(true, false), 1),
        payloads: vec![Payload::Encrypted(EncryptedPayload {
            inner_first: PayloadType::IDI,
            body: vec![9; 40],
        })],
    };
    let bytes = msg.encode().unwrap();
    // Generic header of SK: next = IDi (35), length 44.
    assert_eq!(&bytes[16..17], &[46]);
    assert_eq!(&bytes[28..32], &[35, 0, 0, 44]);
    let back = Message::decode(&bytes).unwrap();
    assert_eq!(back.payloads, msg.payloads);
    assert!(back.payloads.encrypted().is_some());

    let bad = vec![msg.payloads[0].clone(), Payload::Nonce(vec![1; 16])];
    assert_eq!(encode_payloads(&bad), Err(WireError::PayloadAfterEncrypted));
    // Bytes after an SK payload in a received message.
    let mut b = bytes.clone();
    b[28 + 3] = 20;
    assert_eq!(
        decode_payloads(PayloadType::SK, &b[28..]),
        Err(WireError::PayloadAfterEncrypted)
    );
}

#[test]
fn encode_rejects_unrepresentable_values() {
    let mixed = Payload::TsI(TsPayload {
        selectors: vec![TrafficSelector::Range(TsRange::addresses(
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(Ipv6Addr::LOCALHOST),
        ))],
    });
    assert!(matches!(
        encode_payloads(&[mixed]),
        Err(WireError::Inconsistent { .. })
    ));
    let big = Payload::VendorId(vec![0; 70_000]);
    assert!(matches!(
        encode_payloads(&[big]),
        Err(WireError::TooLong { .. })
    ));
    let bad_delete = Payload::Delete(DeletePayload {
        protocol: ProtocolId::ESP,
        spi_size: 4,
        spis: vec![vec![1, 2, 3]],
    });
    assert!(encode_payloads(&[bad_delete]).is_err());
}

#[test]
fn id_ts_delete_helpers() {
    let id = IdPayload::from_ip(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)));
    assert_eq!(id.body_bytes(), hex("01000000 c0000201"));
    assert_eq!(id.ip(), Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1))));
    assert_eq!(IdPayload::fqdn("vpn.example").id_type, IdType::ID_FQDN);
    let d = DeletePayload::esp(&[0x1234_5678, 9]);
    assert_eq!(d.spis_u32(), Some(vec![0x1234_5678, 9]));
    let ts = Payload::TsR(TsPayload {
        selectors: vec![TrafficSelector::Range(TsRange::addresses(
            IpAddr::V4(Ipv4Addr::new(10, 0, 0, 0)),
            IpAddr::V4(Ipv4Addr::new(10, 0, 255, 255)),
        ))],
    });
    let (first, bytes) = encode_payloads(&[ts]).unwrap();
    assert_eq!(first, PayloadType::TSR);
    // §3.13, §3.13.1: 1 selector; type 7, any protocol, length 16, ports 0-65535.
    assert_eq!(
        bytes,
        hex("00 00 0018 01000000 07 00 0010 0000 ffff 0a000000 0a00ffff")
    );
}

// ---------------------------------------------------------------------------
// Property tests
// ---------------------------------------------------------------------------

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    proptest::collection::vec(any::<u8>(), 0..max)
}

fn attribute() -> impl Strategy<Value = Attribute> {
    prop_oneof![
        (0u16..0x8000, any::<u16>()).prop_map(|(t, v)| Attribute::Tv {
            attr_type: AttributeType(t),
            value: v
        }),
        (0u16..0x8000, bytes(8)).prop_map(|(t, v)| Attribute::Tlv {
            attr_type: AttributeType(t),
            value: v
        }),
    ]
}

fn proposal() -> impl Strategy<Value = Proposal> {
    let transform = (
        any::<u8>(),
        any::<u16>(),
        proptest::collection::vec(attribute(), 0..3),
    )
        .prop_map(|(t, id, attributes)| Transform {
            transform_type: TransformType(t),
            id,
            attributes,
        });
    (
        any::<u8>(),
        any::<u8>(),
        bytes(9),
        proptest::collection::vec(transform, 0..5),
    )
        .prop_map(|(number, protocol, spi, transforms)| Proposal {
            number,
            protocol: ProtocolId(protocol),
            spi,
            transforms,
        })
}

fn selector() -> impl Strategy<Value = TrafficSelector> {
    let v4 = (any::<[u8; 4]>(), any::<[u8; 4]>())
        .prop_map(|(a, b)| (IpAddr::V4(a.into()), IpAddr::V4(b.into())));
    let v6 = (any::<[u8; 16]>(), any::<[u8; 16]>())
        .prop_map(|(a, b)| (IpAddr::V6(a.into()), IpAddr::V6(b.into())));
    prop_oneof![
        (any::<u8>(), any::<u16>(), any::<u16>(), prop_oneof![v4, v6]).prop_map(
            |(ip_protocol, start_port, end_port, (s, e))| {
                TrafficSelector::Range(TsRange {
                    ip_protocol,
                    start_port,
                    end_port,
                    start_address: s,
                    end_address: e,
                })
            }
        ),
        (
            any::<u8>().prop_filter("not an IP range", |t| *t != 7 && *t != 8),
            proptest::collection::vec(any::<u8>(), 1..12)
        )
            .prop_map(|(t, data)| TrafficSelector::Other {
                ts_type: TsType(t),
                data
            }),
    ]
}

fn unknown_type() -> impl Strategy<Value = PayloadType> {
    any::<u8>()
        .prop_filter("unknown", |t| *t != 0 && !(33..=48).contains(t) && *t != 53)
        .prop_map(PayloadType)
}

/// Any payload but SK/SKF (which must be last).
fn payload() -> impl Strategy<Value = Payload> {
    prop_oneof![
        proptest::collection::vec(proposal(), 0..3)
            .prop_map(|proposals| Payload::Sa(SaPayload { proposals })),
        (any::<u16>(), bytes(70)).prop_map(|(group, data)| Payload::Ke(KePayload { group, data })),
        (any::<u8>(), bytes(20), any::<bool>()).prop_map(|(t, data, i)| {
            let id = IdPayload {
                id_type: IdType(t),
                data,
            };
            if i {
                Payload::IdI(id)
            } else {
                Payload::IdR(id)
            }
        }),
        (any::<u8>(), bytes(20), any::<bool>()).prop_map(|(e, data, c)| {
            let p = CertPayload {
                encoding: CertEncoding(e),
                data,
            };
            if c {
                Payload::Cert(p)
            } else {
                Payload::CertReq(p)
            }
        }),
        (any::<u8>(), bytes(40)).prop_map(|(m, data)| Payload::Auth(AuthPayload {
            method: AuthMethod(m),
            data
        })),
        bytes(64).prop_map(Payload::Nonce),
        (any::<u8>(), bytes(9), any::<u16>(), bytes(24)).prop_map(|(p, spi, t, data)| {
            Payload::Notify(NotifyPayload::with_spi(
                ProtocolId(p),
                spi,
                NotifyType(t),
                data,
            ))
        }),
        (any::<u8>(), 0u8..9, 0usize..4).prop_flat_map(|(p, size, n)| {
            proptest::collection::vec(proptest::collection::vec(any::<u8>(), size as usize), n)
                .prop_map(move |spis| {
                    Payload::Delete(DeletePayload {
                        protocol: ProtocolId(p),
                        spi_size: size,
                        spis,
                    })
                })
        }),
        bytes(20).prop_map(Payload::VendorId),
        (proptest::collection::vec(selector(), 0..4), any::<bool>()).prop_map(|(s, i)| {
            let ts = TsPayload { selectors: s };
            if i {
                Payload::TsI(ts)
            } else {
                Payload::TsR(ts)
            }
        }),
        (
            any::<u8>(),
            proptest::collection::vec(
                (0u16..0x8000, bytes(17)).prop_map(|(t, value)| CfgAttribute {
                    attr_type: CfgAttributeType(t),
                    value
                }),
                0..4
            )
        )
            .prop_map(|(t, attributes)| Payload::Cp(CpPayload {
                cfg_type: CfgType(t),
                attributes
            })),
        bytes(20).prop_map(Payload::Eap),
        (unknown_type(), bytes(20)).prop_map(|(payload_type, body)| {
            Payload::Unknown(UnknownPayload {
                payload_type,
                critical: false,
                body,
            })
        }),
    ]
}

fn last_payload() -> impl Strategy<Value = Option<Payload>> {
    prop_oneof![
        Just(None),
        (any::<u8>(), bytes(60)).prop_map(|(t, body)| Some(Payload::Encrypted(EncryptedPayload {
            inner_first: PayloadType(t),
            body
        }))),
        (any::<u8>(), any::<u16>(), any::<u16>(), bytes(60)).prop_map(|(t, n, total, body)| {
            Some(Payload::EncryptedFragment(EncryptedFragmentPayload {
                inner_first: PayloadType(t),
                fragment_number: n,
                total_fragments: total,
                body,
            }))
        }),
    ]
}

fn message() -> impl Strategy<Value = Message> {
    (
        any::<(u64, u64, u8, u8, u32, u8)>(),
        proptest::collection::vec(payload(), 0..6),
        last_payload(),
    )
        .prop_map(|((si, sr, ex, fl, id, minor), mut payloads, last)| {
            payloads.extend(last);
            let mut header = Header::new(si, sr, ExchangeType(ex), Flags(fl), id);
            header.minor_version = minor & 0x0f;
            Message { header, payloads }
        })
}

proptest! {
    #[test]
    fn message_round_trip(msg in message()) {
        let bytes = msg.encode().unwrap();
        let back = Message::decode(&bytes).unwrap();
        prop_assert_eq!(&back.payloads, &msg.payloads);
        let mut h = msg.header;
        h.length = bytes.len() as u32;
        h.next_payload = msg.payloads.first().map_or(PayloadType::NONE, Payload::payload_type);
        prop_assert_eq!(back.header, h);
        prop_assert_eq!(back.encode().unwrap(), bytes);
    }

    #[test]
    fn payload_chain_round_trip(payloads in proptest::collection::vec(payload(), 0..6)) {
        let (first, bytes) = encode_payloads(&payloads).unwrap();
        let back = decode_payloads(first, &bytes).unwrap();
        prop_assert_eq!(&back, &payloads);
        prop_assert_eq!(encode_payloads(&back).unwrap(), (first, bytes));
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in bytes(400), first in any::<u8>()) {
        let _ = Message::decode(&data);
        let _ = Header::decode(&data);
        let _ = decode_payloads(PayloadType(first), &data);
    }

    #[test]
    fn mutated_messages_never_panic(
        msg in message(),
        edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6),
        cut in any::<usize>(),
    ) {
        let mut bytes = msg.encode().unwrap();
        for (at, v) in edits {
            let n = bytes.len();
            bytes[at % n] = v;
        }
        let _ = Message::decode(&bytes);
        let n = bytes.len();
        let _ = decode_payloads(PayloadType(bytes[16]), &bytes[(cut % n).min(n)..]);
        // With a consistent length field, decoding must either fail or
        // re-encode to a message that decodes to the same value.
        let len = (bytes.len() as u32).to_be_bytes();
        bytes[24..28].copy_from_slice(&len);
        if let Ok(m) = Message::decode(&bytes) {
            let again = m.encode().unwrap();
            prop_assert_eq!(Message::decode(&again).unwrap().payloads, m.payloads);
        }
    }
}
