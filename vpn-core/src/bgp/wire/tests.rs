//! Byte-exact, round-trip and property tests for the BGP wire format.
//!
//! Expected bytes are assembled by hand from the RFC layouts (field by field in the
//! comments), not produced by the encoder under test.

use std::net::{Ipv4Addr, Ipv6Addr};

use bytes::Bytes;
use proptest::prelude::*;

use super::notification::{cease_subcode, header_subcode, open_subcode, update_subcode};
use super::*;

/// Parses hex with arbitrary whitespace ("ff ff 00 13 04").
fn h(s: &str) -> Vec<u8> {
    let digits: Vec<u8> = s.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    digits
        .chunks(2)
        .map(|p| u8::from_str_radix(std::str::from_utf8(p).unwrap(), 16).unwrap())
        .collect()
}

const MARKER_HEX: &str = "ffffffff ffffffff ffffffff ffffffff";

fn msg(len_type: &str, body: &str) -> Bytes {
    Bytes::from(h(&format!("{MARKER_HEX} {len_type} {body}")))
}

const FOUR: WireContext = WireContext {
    four_octet_as: true,
};
const TWO: WireContext = WireContext {
    four_octet_as: false,
};

fn decode(bytes: &Bytes, ctx: &WireContext) -> Message {
    let (m, action) = Message::decode(bytes, ctx).expect("decodes");
    assert_eq!(action, None);
    m
}

fn assert_roundtrip(bytes: &Bytes, ctx: &WireContext) -> Message {
    let m = decode(bytes, ctx);
    assert_eq!(
        m.to_vec(ctx).unwrap(),
        bytes.to_vec(),
        "re-encoding differs for {m:?}"
    );
    m
}

// ---------------------------------------------------------------- OPEN

/// OPEN, AS 65000, hold 90, id 192.0.2.1; one Capabilities parameter (type 2, 20
/// bytes): MP IPv4/unicast, MP IPv6/unicast, route refresh, 4-octet AS 65000.
fn open_65000() -> Bytes {
    msg(
        "0033 01",
        "04 fde8 005a c0000201 16
         02 14
            01 04 0001 00 01
            01 04 0002 00 01
            02 00
            41 04 0000fde8",
    )
}

#[test]
fn open_byte_exact() {
    let caps = vec![
        Capability::Multiprotocol {
            afi: Afi::IPV4,
            safi: Safi::UNICAST,
        },
        Capability::Multiprotocol {
            afi: Afi::IPV6,
            safi: Safi::UNICAST,
        },
        Capability::RouteRefresh,
        Capability::FourOctetAs(65000),
    ];
    let open = OpenMessage::new(65000, 90, Ipv4Addr::new(192, 0, 2, 1), caps);
    let ours = Message::Open(open.clone()).to_vec(&TWO).unwrap();
    assert_eq!(ours, open_65000().to_vec());
    assert_eq!(
        assert_roundtrip(&open_65000(), &TWO),
        Message::Open(open.clone())
    );
    assert_eq!(open.asn(), 65000);
    assert_eq!(open.validate(Some(65000)), Ok(()));
}

#[test]
fn open_four_octet_as_uses_as_trans() {
    // 4200000000 = 0xfa56ea00; My AS = AS_TRANS 23456 = 0x5ba0.
    let bytes = msg(
        "0027 01",
        "04 5ba0 005a c0000201 0a
         02 08
            02 00
            41 04 fa56ea00",
    );
    let open = OpenMessage::new(
        4_200_000_000,
        90,
        Ipv4Addr::new(192, 0, 2, 1),
        vec![
            Capability::RouteRefresh,
            Capability::FourOctetAs(4_200_000_000),
        ],
    );
    assert_eq!(open.my_as, AS_TRANS);
    assert_eq!(
        Message::Open(open.clone()).to_vec(&TWO).unwrap(),
        bytes.to_vec()
    );
    let Message::Open(got) = assert_roundtrip(&bytes, &TWO) else {
        panic!()
    };
    assert_eq!(got.asn(), 4_200_000_000);
    assert_eq!(got.validate(Some(4_200_000_000)), Ok(()));
    let bad_as = got.validate(Some(65000)).unwrap_err();
    assert_eq!(
        (bad_as.code, bad_as.subcode),
        (ErrorCode::OPEN_MESSAGE, open_subcode::BAD_PEER_AS)
    );
}

#[test]
fn open_graceful_restart_and_unknown_round_trip() {
    // Graceful restart: R bit + restart time 120 (0x8078); IPv4/unicast with F bit,
    // IPv6/unicast without. Unknown capability 73 (FQDN) kept raw; unknown parameter
    // type 1 (deprecated authentication) kept raw in its own parameter.
    let bytes = msg(
        "0035 01",
        "04 fde8 00b4 c0000201 18
         02 11
            40 0a 8078 0001 01 80 0002 01 00
            49 03 01 61 00
         01 03 aabbcc",
    );
    let Message::Open(open) = assert_roundtrip(&bytes, &TWO) else {
        panic!()
    };
    let caps: Vec<_> = open.capabilities().cloned().collect();
    let Capability::GracefulRestart(gr) = &caps[0] else {
        panic!("{caps:?}")
    };
    assert!(gr.restart_state() && !gr.notification());
    assert_eq!(gr.restart_time, 120);
    assert!(gr.families[0].forwarding_preserved() && !gr.families[1].forwarding_preserved());
    assert_eq!(gr.families[1].afi, Afi::IPV6);
    assert_eq!(
        caps[1],
        Capability::Unknown {
            code: CapabilityCode(73),
            value: Bytes::from_static(&[1, 0x61, 0])
        }
    );
    // The unknown parameter decodes, but the session must refuse it.
    let err = open.validate(None).unwrap_err();
    assert_eq!(err.subcode, open_subcode::UNSUPPORTED_OPTIONAL_PARAMETER);
}

#[test]
fn open_extended_optional_parameters() {
    // 40 unknown 8-byte capabilities need 400 bytes: RFC 9072 encoding.
    let caps: Vec<_> = (0..40u8)
        .map(|i| Capability::Unknown {
            code: CapabilityCode(200),
            value: Bytes::from(vec![i; 8]),
        })
        .collect();
    let open = OpenMessage::new(65000, 90, Ipv4Addr::new(192, 0, 2, 1), caps);
    let bytes = Message::Open(open.clone()).to_vec(&TWO).unwrap();
    // Non-ext length 255, non-ext type 255, extended length 403, then type 2 and a
    // 2-byte parameter length of 400.
    assert_eq!(bytes[19 + 9..19 + 16], h("ff ff 0193 02 0190")[..]);
    assert_eq!(decode(&Bytes::from(bytes), &TWO), Message::Open(open));
}

#[test]
fn open_errors() {
    let check = |bytes: Bytes, subcode: u8| {
        let e = Message::decode(&bytes, &TWO).unwrap_err();
        let n = e.notification().unwrap();
        assert_eq!(
            (n.code, n.subcode),
            (ErrorCode::OPEN_MESSAGE, subcode),
            "{e}"
        );
        n
    };
    // Version 3: Unsupported Version Number, data = our version as 2 bytes.
    let n = check(
        msg("001d 01", "03 fde8 005a c0000201 00"),
        open_subcode::UNSUPPORTED_VERSION_NUMBER,
    );
    assert_eq!(n.data.as_ref(), &[0, 4]);
    // Optional parameters length says 1 but nothing follows.
    check(
        msg("001d 01", "04 fde8 005a c0000201 01"),
        open_subcode::UNSPECIFIC,
    );
    // MP capability with a 3-byte value.
    check(
        msg("0024 01", "04 fde8 005a c0000201 07 02 05 01 03 000100"),
        open_subcode::UNSPECIFIC,
    );

    let base = OpenMessage::new(65000, 90, Ipv4Addr::new(192, 0, 2, 1), vec![]);
    let sub = |o: &OpenMessage| o.validate(Some(65000)).unwrap_err().subcode;
    assert_eq!(
        sub(&OpenMessage {
            hold_time: 2,
            ..base.clone()
        }),
        open_subcode::UNACCEPTABLE_HOLD_TIME
    );
    assert_eq!(base.validate(Some(65000)), Ok(()));
    assert_eq!(
        OpenMessage {
            hold_time: 0,
            ..base.clone()
        }
        .validate(None),
        Ok(())
    );
    assert_eq!(
        sub(&OpenMessage {
            bgp_id: Ipv4Addr::UNSPECIFIED,
            ..base.clone()
        }),
        open_subcode::BAD_BGP_IDENTIFIER
    );
    assert_eq!(
        sub(&OpenMessage {
            my_as: 65001,
            ..base
        }),
        open_subcode::BAD_PEER_AS
    );
    let n = NotificationMessage::unsupported_capability(&[Capability::RouteRefresh]);
    assert_eq!(
        (n.subcode, n.data.as_ref()),
        (open_subcode::UNSUPPORTED_CAPABILITY, &[2u8, 0][..])
    );
}

// ---------------------------------------------------------------- UPDATE

/// UPDATE from the brief: ORIGIN IGP, AS_PATH 65000 65001, NEXT_HOP 192.0.2.1, MED 100,
/// COMMUNITIES 65000:100 NO_EXPORT, NLRI 198.51.100.0/24 and 203.0.113.128/25.
fn update_attrs() -> PathAttributes {
    PathAttributes {
        origin: Some(Origin::Igp),
        as_path: Some(AsPath::from_sequence(vec![65000, 65001])),
        next_hop: Some(Ipv4Addr::new(192, 0, 2, 1)),
        med: Some(100),
        communities: Some(vec![Community::new(65000, 100), Community::NO_EXPORT]),
        ..Default::default()
    }
}

fn update_nlri() -> Ipv4Nlri {
    Ipv4Nlri::from_prefixes([
        Ipv4Prefix::new(Ipv4Addr::new(198, 51, 100, 0), 24).unwrap(),
        Ipv4Prefix::new(Ipv4Addr::new(203, 0, 113, 128), 25).unwrap(),
    ])
}

#[test]
fn update_byte_exact_four_octet() {
    let bytes = msg(
        "004a 02",
        "0000
         002a
            40 01 01 00
            40 02 0a 02 02 0000fde8 0000fde9
            40 03 04 c0000201
            80 04 04 00000064
            c0 08 08 fde80064 ffffff01
         18 c63364
         19 cb007180",
    );
    let update = UpdateMessage {
        attributes: update_attrs(),
        nlri: update_nlri(),
        ..Default::default()
    };
    assert_eq!(
        Message::Update(update.clone()).to_vec(&FOUR).unwrap(),
        bytes.to_vec()
    );
    assert_eq!(assert_roundtrip(&bytes, &FOUR), Message::Update(update));
}

#[test]
fn update_byte_exact_two_octet() {
    let bytes = msg(
        "0046 02",
        "0000
         0026
            40 01 01 00
            40 02 06 02 02 fde8 fde9
            40 03 04 c0000201
            80 04 04 00000064
            c0 08 08 fde80064 ffffff01
         18 c63364
         19 cb007180",
    );
    let update = UpdateMessage {
        attributes: update_attrs(),
        nlri: update_nlri(),
        ..Default::default()
    };
    assert_eq!(
        Message::Update(update.clone()).to_vec(&TWO).unwrap(),
        bytes.to_vec()
    );
    let Message::Update(got) = assert_roundtrip(&bytes, &TWO) else {
        panic!()
    };
    let prefixes: Vec<_> = got.nlri.iter().map(|p| p.to_string()).collect();
    assert_eq!(prefixes, ["198.51.100.0/24", "203.0.113.128/25"]);
}

/// MP_REACH_NLRI (IPv6 next hop with link-local) and MP_UNREACH_NLRI come first on the
/// wire (RFC 7606 §5.1), then ORIGIN, AS_PATH and a large community.
#[test]
fn update_mp_ipv6_with_link_local_next_hop() {
    let global: Ipv6Addr = "2001:db8::1".parse().unwrap();
    let ll: Ipv6Addr = "fe80::1".parse().unwrap();
    let bytes = msg(
        "006f 02",
        "0000
         0058
            80 0e 2c 0002 01 20
                20010db8000000000000000000000001
                fe800000000000000000000000000001
                00
                30 20010db80001
            80 0f 0a 0002 01 30 20010db80002
            40 01 01 00
            40 02 06 02 01 0000fde8
            c0 20 0c 0000fde8 00000001 00000002",
    );
    let p = |s: &str, l| Ipv6Prefix::new(s.parse().unwrap(), l).unwrap();
    let update = UpdateMessage {
        attributes: PathAttributes {
            origin: Some(Origin::Igp),
            as_path: Some(AsPath::from_sequence(vec![65000])),
            mp_reach: Some(MpReach {
                afi: Afi::IPV6,
                safi: Safi::UNICAST,
                next_hop: MpNextHop::Ipv6 {
                    global,
                    link_local: Some(ll),
                },
                nlri: MpNlri::Ipv6(Ipv6Nlri::from_prefixes([p("2001:db8:1::", 48)])),
            }),
            mp_unreach: Some(MpUnreach {
                afi: Afi::IPV6,
                safi: Safi::UNICAST,
                withdrawn: MpNlri::Ipv6(Ipv6Nlri::from_prefixes([p("2001:db8:2::", 48)])),
            }),
            large_communities: Some(vec![LargeCommunity {
                global_admin: 65000,
                local_data1: 1,
                local_data2: 2,
            }]),
            ..Default::default()
        },
        ..Default::default()
    };
    assert_eq!(
        Message::Update(update.clone()).to_vec(&FOUR).unwrap(),
        bytes.to_vec()
    );
    assert_eq!(assert_roundtrip(&bytes, &FOUR), Message::Update(update));
}

#[test]
fn update_decodes_mp_reach_in_any_position() {
    // MP_REACH_NLRI after ORIGIN and AS_PATH, as older speakers send it.
    let body = update_body(
        "40 01 01 00  40 02 06 02 01 0000fde8  80 0e 1a 0002 01 10 20010db8000000000000000000000001 00 20 20010db8",
        "",
    );
    let d = UpdateMessage::decode(&body, &FOUR);
    assert_eq!(d.action, None);
    let reach = d.update.attributes.mp_reach.as_ref().unwrap();
    let MpNlri::Ipv6(nlri) = &reach.nlri else {
        panic!()
    };
    assert_eq!(nlri.iter().next().unwrap().to_string(), "2001:db8::/32");
    // Re-encoding moves it to the front.
    let bytes = Message::Update(d.update).to_vec(&FOUR).unwrap();
    assert_eq!(bytes[19 + 4..19 + 6], [0x80, 0x0e]);
}

#[test]
fn update_unknown_attributes_and_extended_length_round_trip() {
    // Unknown optional transitive type 99 with Partial set, then an AS4_PATH and a
    // 300-byte unknown optional attribute, which needs the extended-length flag.
    // Attribute block: 4 + 7 + 9 + 5 + (4 + 300) = 329 = 0x149; message 352 = 0x160.
    let big = "ab".repeat(300);
    let bytes = msg(
        "0160 02",
        &format!(
            "0000
             0149
                40 01 01 02
                40 02 04 02 01 fde8
                c0 11 06 02 01 fa56ea00
                e0 63 02 beef
                90 c8 012c {big}"
        ),
    );
    let Message::Update(u) = assert_roundtrip(&bytes, &TWO) else {
        panic!()
    };
    let a = &u.attributes;
    assert_eq!(a.origin, Some(Origin::Incomplete));
    assert_eq!(a.as4_path, Some(AsPath::from_sequence(vec![4_200_000_000])));
    assert_eq!(a.unknown.len(), 2);
    assert_eq!(a.unknown[0].type_code, AttrType(99));
    assert!(a.unknown[0].flags.partial());
    assert_eq!(a.unknown[1].value.len(), 300);
    assert!(!a.unknown[1].flags.transitive());
    // Propagation: transitive gets Partial, non-transitive is dropped.
    assert!(a.unknown[0].to_propagate().unwrap().flags.partial());
    assert_eq!(a.unknown[1].to_propagate(), None);
    let fresh = RawAttribute {
        flags: AttrFlags(0xc0),
        type_code: AttrType(99),
        value: Bytes::new(),
    };
    assert_eq!(fresh.to_propagate().unwrap().flags, AttrFlags(0xe0));
}

#[test]
fn end_of_rib_is_an_empty_update() {
    let bytes = msg("0017 02", "0000 0000");
    let Message::Update(u) = assert_roundtrip(&bytes, &FOUR) else {
        panic!()
    };
    assert!(u.is_end_of_rib());
}

// ---------------------------------------------------------------- RFC 7606

/// Builds an UPDATE body around `attrs` (hex) and `nlri` (hex), with no withdrawals.
fn update_body(attrs: &str, nlri: &str) -> Bytes {
    let a = h(attrs);
    let mut body = vec![0, 0];
    body.extend_from_slice(&(a.len() as u16).to_be_bytes());
    body.extend_from_slice(&a);
    body.extend_from_slice(&h(nlri));
    Bytes::from(body)
}

const GOOD: &str = "40 01 01 00  40 02 06 02 01 0000fde8  40 03 04 c0000201";
const NLRI: &str = "18 c63364";

fn action(attrs: &str, nlri: &str) -> DecodedUpdate {
    UpdateMessage::decode(&update_body(attrs, nlri), &FOUR)
}

fn reset_subcode(d: &DecodedUpdate) -> u8 {
    match &d.action {
        Some(ErrorAction::SessionReset(n)) => {
            assert_eq!(n.code, ErrorCode::UPDATE_MESSAGE);
            n.subcode
        }
        other => panic!("expected reset, got {other:?}"),
    }
}

#[test]
fn rfc7606_clean_update_has_no_action() {
    let d = action(GOOD, NLRI);
    assert_eq!(d.action, None);
    assert_eq!(d.update.nlri.count(), 1);
}

#[test]
fn rfc7606_treat_as_withdraw() {
    let taw = Some(ErrorAction::TreatAsWithdraw);
    let cases = [
        // ORIGIN value 3 is undefined.
        "40 01 01 03  40 02 06 02 01 0000fde8  40 03 04 c0000201",
        // ORIGIN with the Optional bit set (flags conflict).
        "c0 01 01 00  40 02 06 02 01 0000fde8  40 03 04 c0000201",
        // AS_PATH segment type 5.
        "40 01 01 00  40 02 06 05 01 0000fde8  40 03 04 c0000201",
        // AS_PATH segment count runs past the attribute.
        "40 01 01 00  40 02 06 02 02 0000fde8  40 03 04 c0000201",
        // AS_PATH zero-length segment.
        "40 01 01 00  40 02 02 02 00  40 03 04 c0000201",
        // NEXT_HOP of 5 bytes.
        "40 01 01 00  40 02 06 02 01 0000fde8  40 03 05 c000020101",
        // MED of 3 bytes.
        "40 01 01 00  40 02 06 02 01 0000fde8  40 03 04 c0000201 80 04 03 000064",
        // LOCAL_PREF of 2 bytes.
        "40 01 01 00  40 02 06 02 01 0000fde8  40 03 04 c0000201 40 05 02 0064",
        // COMMUNITIES of 6 bytes.
        "40 01 01 00  40 02 06 02 01 0000fde8  40 03 04 c0000201 c0 08 06 fde80064 ffff",
        // LARGE_COMMUNITIES of 8 bytes.
        "40 01 01 00  40 02 06 02 01 0000fde8  40 03 04 c0000201 c0 20 08 0000fde8 00000001",
        // Missing ORIGIN while announcing.
        "40 02 06 02 01 0000fde8  40 03 04 c0000201",
        // Missing NEXT_HOP with classic NLRI.
        "40 01 01 00  40 02 06 02 01 0000fde8",
        // Last attribute's length runs past the Total Path Attribute Length.
        "40 01 01 00  40 02 06 02 01 0000fde8  40 03 08 c0000201",
        // Two bytes left: too short for an attribute header.
        "40 01 01 00  40 02 06 02 01 0000fde8  40 03 04 c0000201 40 05",
    ];
    for attrs in cases {
        let d = action(attrs, NLRI);
        assert_eq!(d.action, taw, "{attrs}");
        // The NLRI is still located so it can be withdrawn.
        assert_eq!(d.update.nlri.count(), 1, "{attrs}");
    }
    // Missing mandatory attributes are fine when nothing is announced.
    assert_eq!(action("", "").action, None);
    assert_eq!(action("80 04 04 00000064", "").action, None);
}

#[test]
fn rfc7606_attribute_discard() {
    let discard = Some(ErrorAction::AttributeDiscard);
    // ATOMIC_AGGREGATE with a 1-byte value.
    let d = action(&format!("{GOOD} 40 06 01 00"), NLRI);
    assert_eq!(d.action, discard);
    assert!(!d.update.attributes.atomic_aggregate);
    assert_eq!(
        d.update.attributes.next_hop,
        Some(Ipv4Addr::new(192, 0, 2, 1))
    );
    // AGGREGATOR with the 2-octet size on a 4-octet session.
    let d = action(&format!("{GOOD} c0 07 06 fde8 c0000201"), NLRI);
    assert_eq!(
        (d.action, d.update.attributes.aggregator),
        (discard.clone(), None)
    );
    // Malformed AS4_PATH (confederation segment).
    let d = action(&format!("{GOOD} c0 11 06 03 01 0000fde8"), NLRI);
    assert_eq!(
        (d.action, d.update.attributes.as4_path),
        (discard.clone(), None)
    );
    // Duplicate MED: the first one wins.
    let d = action(&format!("{GOOD} 80 04 04 00000001 80 04 04 00000002"), NLRI);
    assert_eq!((d.action, d.update.attributes.med), (discard, Some(1)));
}

#[test]
fn rfc7606_session_reset() {
    // MP_REACH_NLRI with a 5-byte IPv4 next hop.
    let d = action("80 0e 0e 0001 01 05 c000020101 00 18 c63364", "");
    assert_eq!(reset_subcode(&d), update_subcode::OPTIONAL_ATTRIBUTE_ERROR);
    // MP_REACH_NLRI whose NLRI has a /33.
    let d = action("80 0e 0e 0001 01 04 c0000201 00 21 c6336400", "");
    assert_eq!(reset_subcode(&d), update_subcode::OPTIONAL_ATTRIBUTE_ERROR);
    // MP_UNREACH_NLRI shorter than AFI + SAFI.
    let d = action("80 0f 02 0001", "");
    assert_eq!(reset_subcode(&d), update_subcode::OPTIONAL_ATTRIBUTE_ERROR);
    // MP_REACH_NLRI with the Transitive bit set: Attribute Flags Error.
    let d = action("c0 0e 09 0001 01 04 c0000201 00", "");
    assert_eq!(reset_subcode(&d), update_subcode::ATTRIBUTE_FLAGS_ERROR);
    // Duplicate MP_UNREACH_NLRI.
    let d = action("80 0f 03 000101 80 0f 03 000101", "");
    assert_eq!(reset_subcode(&d), update_subcode::MALFORMED_ATTRIBUTE_LIST);
    // Unrecognized well-known attribute (Optional bit clear), echoed in the data.
    let d = action(&format!("{GOOD} 40 63 01 00"), NLRI);
    assert_eq!(
        reset_subcode(&d),
        update_subcode::UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE
    );
    let Some(ErrorAction::SessionReset(n)) = &d.action else {
        panic!()
    };
    assert_eq!(n.data.as_ref(), &h("40 63 01 00")[..]);
    // NLRI field with a /33, and one cut short.
    assert_eq!(
        reset_subcode(&action(GOOD, "21 c6336400")),
        update_subcode::INVALID_NETWORK_FIELD
    );
    assert_eq!(
        reset_subcode(&action(GOOD, "18 c633")),
        update_subcode::INVALID_NETWORK_FIELD
    );
    // Withdrawn Routes Length past the end of the message.
    let d = UpdateMessage::decode(&Bytes::from(h("0010 0000")), &FOUR);
    assert_eq!(reset_subcode(&d), update_subcode::MALFORMED_ATTRIBUTE_LIST);
    // Total Path Attribute Length past the end of the message.
    let d = UpdateMessage::decode(&Bytes::from(h("0000 0010 400101 00")), &FOUR);
    assert_eq!(reset_subcode(&d), update_subcode::MALFORMED_ATTRIBUTE_LIST);
    // Through Message::decode a reset is an error carrying the NOTIFICATION.
    let e = Message::decode(&msg("001a 02", "0000 0003 000000"), &FOUR).unwrap_err();
    assert!(matches!(e, DecodeError::Update(_)), "{e:?}");
}

#[test]
fn treat_as_withdraw_comes_back_from_message_decode() {
    let body = update_body(
        "40 01 01 09  40 02 06 02 01 0000fde8  40 03 04 c0000201",
        NLRI,
    );
    let mut bytes = h(MARKER_HEX);
    bytes.extend_from_slice(&((19 + body.len()) as u16).to_be_bytes());
    bytes.push(2);
    bytes.extend_from_slice(&body);
    let (m, action) = Message::decode(&Bytes::from(bytes), &FOUR).unwrap();
    assert_eq!(action, Some(ErrorAction::TreatAsWithdraw));
    let Message::Update(u) = m else { panic!() };
    assert_eq!(u.nlri.iter().next().unwrap().to_string(), "198.51.100.0/24");
}

// ---------------------------------------------------------------- AS4_PATH merge

#[test]
fn as4_path_merge_rfc6793() {
    let seq = |v: &[u32]| AsSegment {
        kind: SegmentType::AS_SEQUENCE,
        asns: v.to_vec(),
    };
    let set = |v: &[u32]| AsSegment {
        kind: SegmentType::AS_SET,
        asns: v.to_vec(),
    };
    let t = u32::from(AS_TRANS);
    // A 2-octet speaker (65010) prepended itself to a path through two 4-octet ASes.
    let as_path = AsPath {
        segments: vec![seq(&[65010, t, t, 65003])],
    };
    let as4_path = AsPath {
        segments: vec![seq(&[4_200_000_001, 4_200_000_002, 65003])],
    };
    let (merged, _) = merge_as4_path(&as_path, Some(&as4_path), None, None);
    assert_eq!(
        merged,
        AsPath {
            segments: vec![seq(&[65010, 4_200_000_001, 4_200_000_002, 65003])]
        }
    );

    // An AS_SET counts as one AS.
    let as_path = AsPath {
        segments: vec![seq(&[65010, t]), set(&[t, 65004])],
    };
    let as4_path = AsPath {
        segments: vec![seq(&[4_200_000_001]), set(&[4_200_000_002, 65004])],
    };
    let (merged, _) = merge_as4_path(&as_path, Some(&as4_path), None, None);
    assert_eq!(
        merged,
        AsPath {
            segments: vec![seq(&[65010, 4_200_000_001]), set(&[4_200_000_002, 65004])]
        }
    );

    // AS4_PATH longer than AS_PATH: ignored.
    let short = AsPath {
        segments: vec![seq(&[t])],
    };
    let long = AsPath {
        segments: vec![seq(&[4_200_000_001, 65003])],
    };
    assert_eq!(merge_as4_path(&short, Some(&long), None, None).0, short);

    // AGGREGATOR with a real 2-octet AS: both AS4 attributes are ignored.
    let agg = Aggregator {
        asn: 65005,
        addr: Ipv4Addr::new(192, 0, 2, 9),
    };
    let agg4 = Aggregator {
        asn: 4_200_000_009,
        addr: Ipv4Addr::new(192, 0, 2, 9),
    };
    let as_path = AsPath {
        segments: vec![seq(&[65010, t])],
    };
    let as4_path = AsPath {
        segments: vec![seq(&[4_200_000_001])],
    };
    assert_eq!(
        merge_as4_path(&as_path, Some(&as4_path), Some(&agg), Some(&agg4)),
        (as_path.clone(), Some(agg))
    );

    // AGGREGATOR with AS_TRANS: AS4_AGGREGATOR replaces it, paths merge.
    let mut attrs = PathAttributes {
        as_path: Some(as_path),
        as4_path: Some(as4_path),
        aggregator: Some(Aggregator { asn: t, ..agg }),
        as4_aggregator: Some(agg4),
        ..Default::default()
    };
    attrs.reconcile_as4();
    assert_eq!(
        attrs.as_path,
        Some(AsPath::from_sequence(vec![65010, 4_200_000_001]))
    );
    assert_eq!(
        (attrs.aggregator, attrs.as4_path, attrs.as4_aggregator),
        (Some(agg4), None, None)
    );
}

#[test]
fn as4_attributes_towards_a_two_octet_peer_round_trip() {
    // Sender side: a 4-octet path goes to a 2-octet peer as AS_TRANS plus AS4_PATH;
    // the receiver merges them back.
    let real = AsPath::from_sequence(vec![65000, 4_200_000_001, 65003]);
    let agg = Aggregator {
        asn: 4_200_000_009,
        addr: Ipv4Addr::new(192, 0, 2, 9),
    };
    let mut attrs = PathAttributes {
        origin: Some(Origin::Igp),
        as_path: Some(real.clone()),
        aggregator: Some(agg),
        ..Default::default()
    };
    attrs.add_as4_for_two_octet_peer();
    let update = UpdateMessage {
        attributes: attrs,
        ..Default::default()
    };
    let bytes = Message::Update(update).to_vec(&TWO).unwrap();
    let (Message::Update(got), None) = Message::decode(&Bytes::from(bytes), &TWO).unwrap() else {
        panic!()
    };
    let mut attrs = got.attributes;
    let t = u32::from(AS_TRANS);
    assert_eq!(
        attrs.as_path,
        Some(AsPath::from_sequence(vec![65000, t, 65003]))
    );
    attrs.reconcile_as4();
    assert_eq!((attrs.as_path, attrs.aggregator), (Some(real), Some(agg)));

    // Nothing to add when every AS fits in 2 octets.
    let mut small = PathAttributes {
        as_path: Some(AsPath::from_sequence(vec![1, 2])),
        ..Default::default()
    };
    small.add_as4_for_two_octet_peer();
    assert_eq!(small.as4_path, None);
}

// ---------------------------------------------------------------- other messages

#[test]
fn keepalive_notification_route_refresh_byte_exact() {
    let keepalive = msg("0013 04", "");
    assert_eq!(Message::Keepalive.to_vec(&TWO).unwrap(), keepalive.to_vec());
    assert_roundtrip(&keepalive, &TWO);

    // Cease / Administrative Shutdown with an 11-byte shutdown communication.
    let shutdown = msg("0021 03", "06 02 0b 6d61696e74656e616e6365");
    let n = NotificationMessage::administrative_shutdown("maintenance");
    assert_eq!(
        Message::Notification(n.clone()).to_vec(&TWO).unwrap(),
        shutdown.to_vec()
    );
    let Message::Notification(got) = assert_roundtrip(&shutdown, &TWO) else {
        panic!()
    };
    assert_eq!(got.shutdown_communication(), Some("maintenance"));
    assert_eq!(got.subcode, cease_subcode::ADMINISTRATIVE_SHUTDOWN);

    // Cease / Maximum Number of Prefixes Reached: AFI 1, SAFI 1, limit 1000.
    let max = msg("001c 03", "06 01 0001 01 000003e8");
    let n = NotificationMessage::maximum_prefixes_reached(Afi::IPV4, Safi::UNICAST, 1000);
    assert_eq!(Message::Notification(n).to_vec(&TWO).unwrap(), max.to_vec());
    let Message::Notification(got) = assert_roundtrip(&max, &TWO) else {
        panic!()
    };
    assert_eq!(
        got.maximum_prefixes(),
        Some((Afi::IPV4, Safi::UNICAST, 1000))
    );

    // Hold Timer Expired, no data.
    let hold = msg("0015 03", "04 00");
    assert_eq!(
        Message::Notification(NotificationMessage::hold_timer_expired())
            .to_vec(&TWO)
            .unwrap(),
        hold.to_vec()
    );

    // ROUTE-REFRESH for IPv6 unicast.
    let rr = msg("0017 05", "0002 00 01");
    let m = Message::RouteRefresh(RouteRefreshMessage::new(Afi::IPV6, Safi::UNICAST));
    assert_eq!(m.to_vec(&TWO).unwrap(), rr.to_vec());
    assert_eq!(assert_roundtrip(&rr, &TWO), m);
    // Too short: RFC 7313 ROUTE-REFRESH error with the message as data.
    let bad = msg("0016 05", "0002 00");
    let n = Message::decode(&bad, &TWO)
        .unwrap_err()
        .notification()
        .unwrap();
    assert_eq!(
        (n.code, n.subcode, n.data.clone()),
        (ErrorCode::ROUTE_REFRESH_MESSAGE, 1, bad)
    );
}

#[test]
fn shutdown_communication_is_truncated_on_a_char_boundary() {
    let long = "é".repeat(200); // 400 bytes
    let n = NotificationMessage::administrative_shutdown(&long);
    assert_eq!(n.data[0], 254);
    assert_eq!(n.shutdown_communication().unwrap().len(), 254);
    assert!(NotificationMessage::administrative_shutdown("")
        .data
        .is_empty());
}

#[test]
fn encode_errors_instead_of_panicking() {
    let mut small = [0u8; 10];
    let mut out = &mut small[..];
    assert_eq!(
        Message::Keepalive.encode(&mut out, &TWO),
        Err(EncodeError::BufferTooSmall { needed: 19 })
    );
    let huge = UpdateMessage {
        nlri: Ipv4Nlri::from_prefixes(
            (0..1100u32).map(|i| Ipv4Prefix::from_bits(i << 8, 24).unwrap()),
        ),
        ..Default::default()
    };
    assert!(matches!(
        Message::Update(huge).to_vec(&TWO),
        Err(EncodeError::MessageTooLong(_))
    ));
}

// ---------------------------------------------------------------- framer

fn header_error(bytes: &[u8]) -> NotificationMessage {
    let mut f = Framer::new();
    assert_eq!(f.push(bytes), bytes.len());
    let e = f.next_frame().unwrap().unwrap_err();
    assert!(f.is_failed());
    assert_eq!(f.next_frame(), None);
    e.notification().unwrap()
}

#[test]
fn framer_one_byte_at_a_time() {
    let mut stream = open_65000().to_vec();
    stream.extend_from_slice(&msg("0013 04", ""));
    stream.extend_from_slice(&msg("004a 02", "0000 002a 40010100 40020a02020000fde80000fde9 4003 04c0000201 8004 0400000064 c008 08fde80064ffffff01 18c63364 19cb007180"));
    let mut f = Framer::new();
    let mut frames = Vec::new();
    for b in &stream {
        assert_eq!(f.push(std::slice::from_ref(b)), 1);
        while let Some(frame) = f.next_frame() {
            frames.push(frame.unwrap());
        }
    }
    let types: Vec<_> = frames.iter().map(|fr| fr.header.msg_type).collect();
    assert_eq!(
        types,
        [
            MessageType::OPEN,
            MessageType::KEEPALIVE,
            MessageType::UPDATE
        ]
    );
    let joined: Vec<u8> = frames.iter().flat_map(|fr| fr.bytes.to_vec()).collect();
    assert_eq!(joined, stream);
    assert_eq!(f.buffered_len(), 0);
    let (m, _) = frames[2].decode(&FOUR).unwrap();
    assert_eq!(m.message_type(), MessageType::UPDATE);
}

#[test]
fn framer_header_errors() {
    let mut bad_marker = msg("0013 04", "").to_vec();
    bad_marker[3] = 0xfe;
    let n = header_error(&bad_marker);
    assert_eq!(
        (n.code, n.subcode),
        (
            ErrorCode::MESSAGE_HEADER,
            header_subcode::CONNECTION_NOT_SYNCHRONIZED
        )
    );

    for (len_type, len) in [
        ("0012 04", "0012"),
        ("1001 02", "1001"),
        ("0014 04", "0014"),
        ("0014 02", "0014"),
    ] {
        let n = header_error(&msg(len_type, "00"));
        assert_eq!(
            (n.code, n.subcode),
            (
                ErrorCode::MESSAGE_HEADER,
                header_subcode::BAD_MESSAGE_LENGTH
            )
        );
        assert_eq!(n.data.to_vec(), h(len), "{len_type}");
    }
    let n = header_error(&msg("0013 09", ""));
    assert_eq!(
        (n.code, n.subcode, n.data.to_vec()),
        (
            ErrorCode::MESSAGE_HEADER,
            header_subcode::BAD_MESSAGE_TYPE,
            vec![9]
        )
    );
}

#[test]
fn framer_memory_is_bounded() {
    let mut f = Framer::new();
    // A 4096-byte UPDATE header arrives first; only one message's worth is accepted.
    let mut stream = msg("1000 02", "").to_vec();
    stream.resize(10_000, 0);
    let n = f.push(&stream);
    assert_eq!(n, MAX_MESSAGE_LEN);
    assert_eq!(f.push(&stream[n..]), 0);
    let frame = f.next_frame().unwrap().unwrap();
    assert_eq!(frame.bytes.len(), MAX_MESSAGE_LEN);
    assert_eq!(f.push(&stream[n..]), MAX_MESSAGE_LEN);
}

// ---------------------------------------------------------------- properties

fn arb_asn(four: bool) -> BoxedStrategy<u32> {
    if four {
        any::<u32>().boxed()
    } else {
        (0u32..=65535).boxed()
    }
}

fn arb_as_path(four: bool) -> impl Strategy<Value = AsPath> {
    let seg =
        (1u8..=4, prop::collection::vec(arb_asn(four), 1..8)).prop_map(|(k, asns)| AsSegment {
            kind: SegmentType(k),
            asns,
        });
    prop::collection::vec(seg, 0..4).prop_map(|segments| AsPath { segments })
}

fn arb_v4() -> impl Strategy<Value = Ipv4Prefix> {
    (any::<u32>(), 0u8..=32).prop_map(|(a, l)| Ipv4Prefix::from_bits(a, l).unwrap())
}

fn arb_v6() -> impl Strategy<Value = Ipv6Prefix> {
    (any::<u128>(), 0u8..=128).prop_map(|(a, l)| Ipv6Prefix::new(Ipv6Addr::from(a), l).unwrap())
}

fn arb_mp_nlri(v6: bool) -> BoxedStrategy<MpNlri> {
    if v6 {
        prop::collection::vec(arb_v6(), 0..5)
            .prop_map(|p| MpNlri::Ipv6(p.into_iter().collect()))
            .boxed()
    } else {
        prop::collection::vec(arb_v4(), 0..5)
            .prop_map(|p| MpNlri::Ipv4(p.into_iter().collect()))
            .boxed()
    }
}

fn arb_mp_reach() -> impl Strategy<Value = MpReach> {
    (
        any::<bool>(),
        any::<u128>(),
        prop::option::of(any::<u128>()),
        any::<u32>(),
    )
        .prop_flat_map(|(v6, g, ll, v4)| {
            let next_hop = if v6 {
                MpNextHop::Ipv6 {
                    global: Ipv6Addr::from(g),
                    link_local: ll.map(Ipv6Addr::from),
                }
            } else {
                MpNextHop::Ipv4(Ipv4Addr::from(v4))
            };
            let afi = if v6 { Afi::IPV6 } else { Afi::IPV4 };
            arb_mp_nlri(v6).prop_map(move |nlri| MpReach {
                afi,
                safi: Safi::UNICAST,
                next_hop: next_hop.clone(),
                nlri,
            })
        })
}

fn arb_mp_unreach() -> impl Strategy<Value = MpUnreach> {
    any::<bool>().prop_flat_map(|v6| {
        let afi = if v6 { Afi::IPV6 } else { Afi::IPV4 };
        arb_mp_nlri(v6).prop_map(move |withdrawn| MpUnreach {
            afi,
            safi: Safi::UNICAST,
            withdrawn,
        })
    })
}

fn arb_aggregator(four: bool) -> impl Strategy<Value = Aggregator> {
    (arb_asn(four), any::<u32>()).prop_map(|(asn, a)| Aggregator {
        asn,
        addr: Ipv4Addr::from(a),
    })
}

fn arb_unknown() -> impl Strategy<Value = Vec<RawAttribute>> {
    // Distinct unknown types, sorted (encoding order), Optional bit set.
    prop::collection::btree_map(
        40u8..=255,
        (
            any::<bool>(),
            any::<bool>(),
            prop::collection::vec(any::<u8>(), 0..300),
        ),
        0..3,
    )
    .prop_map(|m| {
        m.into_iter()
            .map(|(t, (transitive, partial, value))| RawAttribute {
                flags: AttrFlags(
                    0x80 | if transitive { 0x40 } else { 0 } | if partial { 0x20 } else { 0 },
                ),
                type_code: AttrType(t),
                value: Bytes::from(value),
            })
            .collect()
    })
}

fn arb_attributes(four: bool) -> impl Strategy<Value = PathAttributes> {
    let part1 = (
        prop::option::of(prop_oneof![
            Just(Origin::Igp),
            Just(Origin::Egp),
            Just(Origin::Incomplete)
        ]),
        prop::option::of(arb_as_path(four)),
        prop::option::of(any::<u32>().prop_map(Ipv4Addr::from)),
        prop::option::of(any::<u32>()),
        prop::option::of(any::<u32>()),
        any::<bool>(),
        prop::option::of(arb_aggregator(four)),
    );
    let part2 = (
        prop::option::of(prop::collection::vec(
            any::<u32>().prop_map(Community),
            1..5,
        )),
        prop::option::of(arb_mp_reach()),
        prop::option::of(arb_mp_unreach()),
        prop::option::of(arb_as_path(true).prop_map(|mut p| {
            p.segments
                .retain(|s| s.kind == SegmentType::AS_SEQUENCE || s.kind == SegmentType::AS_SET);
            p
        })),
        prop::option::of(arb_aggregator(true)),
        prop::option::of(prop::collection::vec(
            (any::<u32>(), any::<u32>(), any::<u32>()).prop_map(|(a, b, c)| LargeCommunity {
                global_admin: a,
                local_data1: b,
                local_data2: c,
            }),
            1..4,
        )),
        arb_unknown(),
    );
    (part1, part2).prop_map(
        |(
            (origin, as_path, next_hop, med, local_pref, atomic_aggregate, aggregator),
            (
                communities,
                mp_reach,
                mp_unreach,
                as4_path,
                as4_aggregator,
                large_communities,
                unknown,
            ),
        )| PathAttributes {
            origin,
            as_path,
            next_hop,
            med,
            local_pref,
            atomic_aggregate,
            aggregator,
            communities,
            mp_reach,
            mp_unreach,
            as4_path,
            as4_aggregator,
            large_communities,
            unknown,
        },
    )
}

fn arb_update(four: bool) -> impl Strategy<Value = UpdateMessage> {
    (
        prop::collection::vec(arb_v4(), 0..20),
        arb_attributes(four),
        prop::collection::vec(arb_v4(), 0..20),
    )
        .prop_map(|(w, attributes, n)| UpdateMessage {
            withdrawn: w.into_iter().collect(),
            attributes,
            nlri: n.into_iter().collect(),
        })
}

/// Feeds bytes through every decoder; must never panic.
fn decode_everything(data: &[u8]) {
    let bytes = Bytes::copy_from_slice(data);
    for ctx in [TWO, FOUR] {
        let _ = UpdateMessage::decode(&bytes, &ctx);
        let _ = PathAttributes::decode(&bytes, &ctx);
        if let Ok((m, _)) = Message::decode(&bytes, &ctx) {
            let _ = m.to_vec(&ctx);
        }
        // Whatever decodes re-encodes to something that decodes the same.
        let d = UpdateMessage::decode(&bytes, &ctx);
        if !matches!(d.action, Some(ErrorAction::SessionReset(_))) {
            let again = Message::Update(d.update.clone()).to_vec(&ctx).unwrap();
            let d2 = UpdateMessage::decode(&Bytes::from(again).slice(HEADER_LEN..), &ctx);
            assert_eq!(d2.update, d.update);
        }
    }
    if let Ok(open) = OpenMessage::decode(&bytes) {
        let again = Message::Open(open.clone()).to_vec(&TWO).unwrap();
        let open2 = OpenMessage::decode(&Bytes::from(again).slice(HEADER_LEN..)).unwrap();
        assert_eq!(open2, open);
        let _ = open.validate(Some(1));
    }
    if let Ok(n) = NotificationMessage::decode(&bytes) {
        let _ = (
            n.shutdown_communication(),
            n.maximum_prefixes(),
            n.to_string(),
        );
    }
    if let Ok(n) = Ipv4Nlri::decode(bytes.clone()) {
        let _ = n.iter().count();
    }
    if let Ok(n) = Ipv6Nlri::decode(bytes.clone()) {
        let _ = n.iter().count();
    }
}

proptest! {
    #[test]
    fn prop_decoders_never_panic(data in prop::collection::vec(any::<u8>(), 0..600)) {
        decode_everything(&data);
    }

    #[test]
    fn prop_decoders_never_panic_behind_a_valid_header(
        msg_type in 1u8..=5,
        body in prop::collection::vec(any::<u8>(), 0..600),
    ) {
        let mut m = MARKER.to_vec();
        m.extend_from_slice(&((19 + body.len()) as u16).to_be_bytes());
        m.push(msg_type);
        m.extend_from_slice(&body);
        decode_everything(&m);
        decode_everything(&body);
    }

    /// Valid messages with a few bytes overwritten reach far deeper than random bytes.
    #[test]
    fn prop_mutated_messages_never_panic(
        update in arb_update(true),
        open_caps in prop::collection::vec((any::<u8>(), prop::collection::vec(any::<u8>(), 0..12)), 0..6),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..6),
    ) {
        let caps = open_caps
            .into_iter()
            .map(|(code, value)| Capability::decode(CapabilityCode(code), Bytes::from(value))
                .unwrap_or(Capability::RouteRefresh))
            .collect();
        let open = OpenMessage::new(65000, 90, Ipv4Addr::new(192, 0, 2, 1), caps);
        for m in [Message::Update(update), Message::Open(open)] {
            let Ok(mut bytes) = m.to_vec(&FOUR) else { continue };
            for (i, b) in &edits {
                let at = i.index(bytes.len());
                bytes[at] = *b;
            }
            decode_everything(&bytes);
            decode_everything(&bytes[HEADER_LEN..]);
        }
    }

    #[test]
    fn prop_framer_never_panics(
        chunks in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..200), 0..20),
        valid_prefix in any::<bool>(),
    ) {
        let mut f = Framer::new();
        if valid_prefix {
            f.push(&MARKER);
        }
        for chunk in &chunks {
            let mut input = &chunk[..];
            while !input.is_empty() {
                let n = f.push(input);
                input = &input[n..];
                while let Some(frame) = f.next_frame() {
                    if let Ok(frame) = frame {
                        let _ = frame.decode(&FOUR);
                    }
                }
                prop_assert!(f.buffered_len() <= MAX_MESSAGE_LEN);
            }
        }
    }

    #[test]
    fn prop_update_round_trip(update in arb_update(true)) {
        let ctx = WireContext { four_octet_as: true };
        let m = Message::Update(update.clone());
        let Ok(bytes) = m.to_vec(&ctx) else {
            return Ok(()); // over 4096 bytes
        };
        let (decoded, action) = Message::decode(&Bytes::from(bytes.clone()), &ctx).unwrap();
        prop_assert!(!matches!(action, Some(ErrorAction::SessionReset(_))));
        prop_assert_eq!(&decoded, &m);
        prop_assert_eq!(decoded.to_vec(&ctx).unwrap(), bytes);
    }

    #[test]
    fn prop_update_round_trip_two_octet(update in arb_update(false)) {
        let ctx = WireContext { four_octet_as: false };
        let m = Message::Update(update);
        let Ok(bytes) = m.to_vec(&ctx) else {
            return Ok(());
        };
        let (decoded, _) = Message::decode(&Bytes::from(bytes.clone()), &ctx).unwrap();
        prop_assert_eq!(&decoded, &m);
        prop_assert_eq!(decoded.to_vec(&ctx).unwrap(), bytes);
    }

    #[test]
    fn prop_framer_splits_do_not_matter(
        updates in prop::collection::vec(arb_update(true), 1..4),
        cuts in prop::collection::vec(1usize..64, 1..50),
    ) {
        let ctx = WireContext { four_octet_as: true };
        let msgs: Vec<Vec<u8>> = updates
            .into_iter()
            .filter_map(|u| Message::Update(u).to_vec(&ctx).ok())
            .collect();
        let stream: Vec<u8> = msgs.concat();
        let mut f = Framer::new();
        let mut got = Vec::new();
        let (mut pos, mut i) = (0, 0);
        while pos < stream.len() {
            let end = (pos + cuts[i % cuts.len()]).min(stream.len());
            i += 1;
            let n = f.push(&stream[pos..end]);
            pos += n;
            while let Some(frame) = f.next_frame() {
                got.push(frame.unwrap().bytes.to_vec());
            }
        }
        prop_assert_eq!(got, msgs);
    }
}

/// Rough decode throughput (run: `cargo test --release -p vpn-core decode_throughput
/// -- --ignored --nocapture`). Criterion benches against bgpkit-parser come later.
#[test]
#[ignore]
fn decode_throughput_smoke() {
    let ctx = FOUR;
    let attrs = update_attrs();
    let mut stream = Vec::new();
    let mut total = 0usize;
    let mut next = 0u32;
    while total < 1_000_000 {
        let nlri: Ipv4Nlri = (0..1000)
            .map(|_| {
                next = next.wrapping_add(1);
                Ipv4Prefix::from_bits(next << 8, 24).unwrap()
            })
            .collect();
        total += 1000;
        let m = Message::Update(UpdateMessage {
            attributes: attrs.clone(),
            nlri,
            ..Default::default()
        });
        m.encode(&mut stream, &ctx).unwrap();
    }
    let start = std::time::Instant::now();
    let mut framer = Framer::new();
    let (mut input, mut count, mut sum) = (&stream[..], 0usize, 0u64);
    while !input.is_empty() {
        let n = framer.push(input);
        input = &input[n..];
        while let Some(frame) = framer.next_frame() {
            let (Message::Update(u), None) = frame.unwrap().decode(&ctx).unwrap() else {
                panic!()
            };
            for p in u.nlri.iter() {
                count += 1;
                sum = sum.wrapping_add(u64::from(p.bits()));
            }
        }
    }
    let elapsed = start.elapsed();
    assert_eq!(count, total);
    println!(
        "{count} prefixes in {elapsed:?}: {:.1} M prefixes/s (checksum {sum})",
        count as f64 / elapsed.as_secs_f64() / 1e6
    );
}
