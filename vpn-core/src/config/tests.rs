use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};

use proptest::prelude::*;

use super::*;

const AWS_XML: &str = include_str!("../../tests/fixtures/config/aws-vpn-connection-bgp.xml");
const AWS_JSON: &str =
    include_str!("../../tests/fixtures/config/aws-describe-vpn-connections.json");
const EXAMPLE: &str = include_str!("../../../examples/connection.toml");

const PSK1: &str = "Qx7vN2mPa9Lr4TzWk8Hc3Ye6Bd5Fg1Js";
const PSK2: &str = "Ur5kD8sVb2Nq7Xw4Em9Tj6Pc3Ha1Lz0G";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn fixture() -> ConnectionConfig {
    ConnectionConfig::from_aws_xml(AWS_XML).expect("fixture imports")
}

fn fields(errors: &[ConfigError]) -> Vec<&str> {
    errors.iter().filter_map(ConfigError::field).collect()
}

// ---------------------------------------------------------------- AWS XML import

#[test]
fn aws_xml_fixture_maps_every_field() {
    let c = fixture();
    assert_eq!(c.name, "vpn-0a1b2c3d4e5f60718");
    assert_eq!(c.role, Role::Cgw);
    assert_eq!(c.mtu, 1436);
    assert_eq!(c.tcp_mss_clamp, 1379);
    assert!(c.clear_df);
    assert!(c.fragment_before_encrypt);
    assert_eq!(c.failover, FailoverPolicy::default());
    match &c.routing {
        Routing::Bgp {
            local_asn,
            peer_asn,
            hold_time,
            keepalive,
            ..
        } => {
            assert_eq!((*local_asn, *peer_asn), (65010, 64512));
            assert_eq!((*hold_time, *keepalive), (30, 10));
        }
        other => panic!("expected BGP, got {other:?}"),
    }
    let expected = [
        (
            "198.51.100.21",
            "169.254.44.40/30",
            "169.254.44.42",
            "169.254.44.41",
        ),
        (
            "198.51.100.87",
            "169.254.201.136/30",
            "169.254.201.138",
            "169.254.201.137",
        ),
    ];
    for (t, (remote, cidr, cgw_in, vgw_in)) in c.tunnels.iter().zip(expected) {
        assert_eq!(t.local_outside_address, ip("203.0.113.10"));
        assert_eq!(t.remote_outside_address, ip(remote));
        assert_eq!(t.inside_cidr.to_string(), cidr);
        assert_eq!(t.cgw_inside_address(), Some(cgw_in.parse().unwrap()));
        assert_eq!(t.vgw_inside_address(), Some(vgw_in.parse().unwrap()));
        assert_eq!(t.ike_version, 1, "mode main means IKEv1");
        assert_eq!(t.ike_proposals, ["aes128-sha1-modp1024"]);
        assert_eq!(t.esp_proposals, ["aes128-sha1-modp1024"]);
        assert_eq!((t.ike_lifetime, t.child_lifetime), (28800, 3600));
        assert_eq!(t.dpd.interval, 10);
        assert_eq!(t.dpd.timeout, 30);
        assert_eq!(t.dpd.retries(), 3);
        assert_eq!(t.dpd.action, DpdAction::Clear);
        assert_eq!(t.psk.len(), 32);
        // AWS defaults for what the document does not carry.
        assert_eq!(t.rekey_margin, 270);
        assert_eq!(t.rekey_fuzz_percent, 100);
        assert_eq!(t.replay_window, 1024);
        assert_eq!(t.startup_action, StartupAction::Add);
    }
    assert!(c.tunnels[0].psk == Secret::from(PSK1));
    assert!(c.tunnels[1].psk == Secret::from(PSK2));
    c.validate().expect("the AWS fixture is valid");
}

#[test]
fn aws_xml_gcm_sha2_and_modern_groups_map_to_proposals() {
    let xml = AWS_XML
        .replace(
            "<authentication_protocol>sha1</authentication_protocol>",
            "<authentication_protocol>sha2-256</authentication_protocol>",
        )
        .replace("aes-128-cbc", "aes-256-gcm-16")
        .replace("group2", "group14")
        .replace("<mode>main</mode>", "");
    let c = ConnectionConfig::from_aws_xml(&xml).unwrap();
    let t = &c.tunnels[0];
    assert_eq!(t.ike_version, 2);
    assert_eq!(t.ike_proposals, ["aes256gcm16-prfsha256-modp2048"]);
    assert_eq!(t.esp_proposals, ["aes256gcm16-modp2048"]);
    c.validate().unwrap();

    let xml = AWS_XML
        .replace("aes-128-cbc", "aes-256-cbc")
        .replace("hmac-sha1-96", "hmac-sha2-512-256")
        .replace("group2", "group20");
    let c = ConnectionConfig::from_aws_xml(&xml).unwrap();
    assert_eq!(c.tunnels[1].ike_proposals, ["aes256-sha1-ecp384"]);
    assert_eq!(c.tunnels[1].esp_proposals, ["aes256-sha512-ecp384"]);
}

#[test]
fn aws_xml_static_routing() {
    let mut xml = AWS_XML.to_owned();
    while let Some(start) = xml.find("<bgp>") {
        let end = xml[start..].find("</bgp>").unwrap() + start + "</bgp>".len();
        xml.replace_range(start..end, "");
    }
    let c = ConnectionConfig::from_aws_xml(&xml).unwrap();
    assert_eq!(c.routing, Routing::Static { prefixes: vec![] });
    assert!(c.to_bird_conf().is_none());

    let xml = AWS_XML.replace(
        "<vpn_connection_type>",
        "<vpn_connection_attributes>NoBGPVPNConnection</vpn_connection_attributes><vpn_connection_type>",
    );
    let c = ConnectionConfig::from_aws_xml(&xml).unwrap();
    assert!(!c.routing.is_bgp());
}

#[test]
fn aws_xml_netmask_without_cidr() {
    let xml = AWS_XML.replace("<network_cidr>30</network_cidr>", "");
    let c = ConnectionConfig::from_aws_xml(&xml).unwrap();
    assert_eq!(c.tunnels[0].inside_cidr.to_string(), "169.254.44.40/30");
}

#[test]
fn aws_xml_missing_and_bad_elements_name_the_path() {
    let cases: &[(&str, &str, &str)] = &[
        (
            "<lifetime>28800</lifetime>",
            "",
            "vpn_connection/ipsec_tunnel[0]/ike/lifetime",
        ),
        (
            "<lifetime>28800</lifetime>",
            "<lifetime>soon</lifetime>",
            "vpn_connection/ipsec_tunnel[0]/ike/lifetime",
        ),
        (
            "<ip_address>198.51.100.87</ip_address>",
            "<ip_address>not-an-ip</ip_address>",
            "vpn_connection/ipsec_tunnel[1]/vpn_gateway/tunnel_outside_address/ip_address",
        ),
        (
            "<encryption_protocol>aes-128-cbc</encryption_protocol>\n      <lifetime>28800",
            "<encryption_protocol>des</encryption_protocol>\n      <lifetime>28800",
            "vpn_connection/ipsec_tunnel[0]/ike/encryption_protocol",
        ),
        (
            "<perfect_forward_secrecy>group2</perfect_forward_secrecy>\n      <mode>main",
            "<perfect_forward_secrecy>group22</perfect_forward_secrecy>\n      <mode>main",
            "vpn_connection/ipsec_tunnel[0]/ike/perfect_forward_secrecy",
        ),
        (
            "<protocol>esp</protocol>",
            "<protocol>ah</protocol>",
            "vpn_connection/ipsec_tunnel[0]/ipsec/protocol",
        ),
        (
            "<pre_shared_key>Qx7vN2mPa9Lr4TzWk8Hc3Ye6Bd5Fg1Js</pre_shared_key>",
            "",
            "vpn_connection/ipsec_tunnel[0]/ike/pre_shared_key",
        ),
        (
            "<ip_address>169.254.44.41</ip_address>",
            "<ip_address>169.254.44.43</ip_address>",
            "vpn_connection/ipsec_tunnel[0]/vpn_gateway/tunnel_inside_address/ip_address",
        ),
        (
            "<clear_df_bit>true</clear_df_bit>",
            "<clear_df_bit>maybe</clear_df_bit>",
            "vpn_connection/ipsec_tunnel[0]/ipsec/clear_df_bit",
        ),
    ];
    for (from, to, path) in cases {
        assert!(AWS_XML.contains(from), "{from}");
        let xml = AWS_XML.replacen(from, to, 1);
        let err = ConnectionConfig::from_aws_xml(&xml).unwrap_err();
        assert_eq!(err.field(), Some(*path), "{err}");
        assert!(err.to_string().starts_with(path), "{err}");
    }
    // Missing whole sections.
    let start = AWS_XML.find("<ike>").unwrap();
    let end = AWS_XML.find("</ike>").unwrap() + "</ike>".len();
    let mut xml = AWS_XML.to_owned();
    xml.replace_range(start..end, "");
    let err = ConnectionConfig::from_aws_xml(&xml).unwrap_err();
    assert_eq!(
        err,
        ConfigError::missing("vpn_connection/ipsec_tunnel[0]/ike")
    );
    // One tunnel only.
    let second = AWS_XML.rfind("<ipsec_tunnel>").unwrap();
    let end = AWS_XML.rfind("</ipsec_tunnel>").unwrap() + "</ipsec_tunnel>".len();
    let mut xml = AWS_XML.to_owned();
    xml.replace_range(second..end, "");
    let err = ConnectionConfig::from_aws_xml(&xml).unwrap_err();
    assert_eq!(err.field(), Some("vpn_connection/ipsec_tunnel"));
    // Another document altogether.
    let err = ConnectionConfig::from_aws_xml("<html><body/></html>").unwrap_err();
    assert_eq!(err, ConfigError::missing("vpn_connection"));
}

#[test]
fn aws_xml_rejects_entity_expansion() {
    let laughs = r#"<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<vpn_connection id="x"><customer_gateway_id>&lol9;</customer_gateway_id></vpn_connection>"#;
    let started = Instant::now();
    let err = ConnectionConfig::from_aws_xml(laughs).unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(1));
    match &err {
        ConfigError::Syntax {
            format, message, ..
        } => {
            assert_eq!(*format, "XML");
            assert!(message.contains("DTD"), "{message}");
        }
        other => panic!("expected a syntax error, got {other:?}"),
    }
    // An external entity (XXE) is refused the same way.
    let xxe = r#"<?xml version="1.0"?><!DOCTYPE v [<!ENTITY x SYSTEM "file:///etc/passwd">]><vpn_connection>&x;</vpn_connection>"#;
    assert!(matches!(
        ConnectionConfig::from_aws_xml(xxe),
        Err(ConfigError::Syntax { .. })
    ));
    // An undeclared entity reference is an error too, never expanded.
    assert!(ConnectionConfig::from_aws_xml("<vpn_connection>&lol9;</vpn_connection>").is_err());
}

#[test]
fn aws_xml_rejects_huge_and_deep_documents_quickly() {
    let mut huge = String::with_capacity(10 << 20);
    huge.push_str("<vpn_connection>");
    while huge.len() < 10 << 20 {
        huge.push_str("<customer_gateway_id>cgw-0</customer_gateway_id>");
    }
    huge.push_str("</vpn_connection>");
    let started = Instant::now();
    let err = ConnectionConfig::from_aws_xml(&huge).unwrap_err();
    assert!(started.elapsed() < Duration::from_millis(100));
    assert!(matches!(err, ConfigError::TooLarge { .. }), "{err:?}");

    // Deep nesting within the size limit: stopped by the node or depth limit.
    let depth = 100_000;
    let deep = format!(
        "<vpn_connection>{}{}</vpn_connection>",
        "<a>".repeat(depth),
        "</a>".repeat(depth)
    );
    assert!(deep.len() < MAX_INPUT_BYTES);
    let started = Instant::now();
    assert!(ConnectionConfig::from_aws_xml(&deep).is_err());
    assert!(started.elapsed() < Duration::from_secs(2));
    // Moderately deep (under the node limit, over the depth limit).
    let deep = format!(
        "<vpn_connection>{}{}</vpn_connection>",
        "<a>".repeat(100),
        "</a>".repeat(100)
    );
    let err = ConnectionConfig::from_aws_xml(&deep).unwrap_err();
    assert!(err.to_string().contains("deeper than 32 levels"), "{err}");
}

#[test]
fn aws_xml_not_xml_at_all() {
    for input in [
        "",
        "not xml",
        "{\"json\": true}",
        "<vpn_connection>",
        "<vpn_connection></other>",
        "\u{0}\u{1}\u{2}",
        "<?xml version=\"1.0\"?>",
    ] {
        let err = ConnectionConfig::from_aws_xml(input).unwrap_err();
        assert!(!err.to_string().is_empty());
    }
}

// ---------------------------------------------------------------- TunnelOptions

#[test]
fn merge_tunnel_options_by_outside_address() {
    let mut c = fixture();
    c.merge_aws_tunnel_options(AWS_JSON).unwrap();
    // TunnelOptions[0] is AWS's 198.51.100.87: the XML's second tunnel.
    let t = &c.tunnels[1];
    assert_eq!(t.ike_lifetime, 14400);
    assert_eq!(t.child_lifetime, 1800);
    assert_eq!(t.rekey_margin, 540);
    assert_eq!(t.rekey_fuzz_percent, 50);
    assert_eq!(t.replay_window, 2048);
    assert_eq!(t.dpd.timeout, 40);
    assert_eq!(t.dpd.action, DpdAction::Restart);
    assert_eq!(t.startup_action, StartupAction::Start);
    assert_eq!(t.ike_version, 2);
    // GCM preferred over AES128-CBC; SHA2-256 as the PRF; group 20 (24 unsupported).
    assert_eq!(t.ike_proposals, ["aes256gcm16-prfsha256-ecp384"]);
    assert_eq!(t.esp_proposals, ["aes256gcm16-modp2048"]);
    assert!(t.psk == Secret::from(PSK2));
    // TunnelOptions[1]: empty algorithm lists keep the XML's proposals.
    let t = &c.tunnels[0];
    assert_eq!(t.ike_version, 2, "ikev2 is permitted");
    assert_eq!(t.ike_proposals, ["aes128-sha1-modp1024"]);
    assert_eq!(t.dpd.action, DpdAction::Clear);
    c.validate().unwrap();
}

#[test]
fn merge_tunnel_options_accepts_the_bare_array_and_names_problems() {
    let mut c = fixture();
    let array = r#"[{"OutsideIpAddress": "198.51.100.21", "Phase1LifetimeSeconds": 3600,
        "Phase1EncryptionAlgorithms": [{"Value": "AES128"}],
        "Phase1IntegrityAlgorithms": [{"Value": "SHA1"}],
        "Phase1DHGroupNumbers": [{"Value": 2}], "IkeVersions": [{"Value": "ikev1"}]}]"#;
    c.merge_aws_tunnel_options(array).unwrap();
    assert_eq!(c.tunnels[0].ike_lifetime, 3600);
    assert_eq!(c.tunnels[0].ike_version, 1);
    assert_eq!(c.tunnels[0].ike_proposals, ["aes128-sha1-modp1024"]);

    let cases = [
        (
            r#"[{"OutsideIpAddress": "192.0.2.99"}]"#,
            "TunnelOptions[0].OutsideIpAddress",
        ),
        (
            r#"[{"PreSharedKey": "abcdefgh"}]"#,
            "TunnelOptions[0].OutsideIpAddress",
        ),
        (
            r#"[{"OutsideIpAddress": "198.51.100.21", "Phase1DHGroupNumbers": [{"Value": 22}]}]"#,
            "TunnelOptions[0].Phase1DHGroupNumbers",
        ),
        (
            r#"[{"OutsideIpAddress": "198.51.100.21", "Phase2EncryptionAlgorithms": [{"Value": "3DES"}]}]"#,
            "TunnelOptions[0].Phase2EncryptionAlgorithms[0].Value",
        ),
        (
            r#"[{"OutsideIpAddress": "198.51.100.21", "DpdTimeoutAction": "explode"}]"#,
            "TunnelOptions[0].DpdTimeoutAction",
        ),
        (
            r#"[{"OutsideIpAddress": "198.51.100.21", "TunnelInsideCidr": "169.254.1.1/30"}]"#,
            "TunnelOptions[0].TunnelInsideCidr",
        ),
        (r#"{"Nothing": []}"#, "TunnelOptions"),
    ];
    for (json, field) in cases {
        let err = fixture().merge_aws_tunnel_options(json).unwrap_err();
        assert_eq!(err.field(), Some(field), "{json}: {err}");
    }
    assert!(matches!(
        fixture().merge_aws_tunnel_options("[1, 2"),
        Err(ConfigError::Syntax { .. })
    ));
}

// ---------------------------------------------------------------- native formats

#[test]
fn toml_and_json_round_trips() {
    for c in [fixture(), ConnectionConfig::from_toml(EXAMPLE).unwrap()] {
        let toml = c.to_toml();
        assert_eq!(ConnectionConfig::from_toml(&toml).unwrap(), c, "{toml}");
        let json = c.to_json();
        assert_eq!(ConnectionConfig::from_json(&json).unwrap(), c, "{json}");
    }
}

#[test]
fn example_file_loads_and_validates() {
    let c = ConnectionConfig::from_toml(EXAMPLE).unwrap();
    c.validate().unwrap();
    assert_eq!(c.name, "example-vpn");
    assert!(c.routing.is_bgp());
    assert_eq!(c.tunnels[1].ike_lifetime, 28800, "defaults fill in");
    assert_eq!(c.tunnels[1].dpd, DpdConfig::default());
}

#[test]
fn minimal_toml_takes_aws_defaults() {
    let toml = r#"
name = "min"
[routing]
type = "static"
prefixes = ["10.0.0.0/16"]
[[tunnels]]
local_outside_address = "203.0.113.10"
remote_outside_address = "198.51.100.21"
inside_cidr = "169.254.44.40/30"
psk = "first.key_1"
[[tunnels]]
local_outside_address = "203.0.113.10"
remote_outside_address = "198.51.100.87"
inside_cidr = "169.254.201.136/30"
psk = "second.key_2"
"#;
    let c = ConnectionConfig::from_toml(toml).unwrap();
    c.validate().unwrap();
    let t = &c.tunnels[0];
    assert_eq!(
        (
            t.ike_lifetime,
            t.child_lifetime,
            t.rekey_margin,
            t.rekey_fuzz_percent
        ),
        (28800, 3600, 270, 100)
    );
    assert_eq!(t.replay_window, 1024);
    assert_eq!((t.dpd.interval, t.dpd.timeout), (10, 30));
    assert_eq!(t.ike_version, 2);
    assert_eq!((c.mtu, c.tcp_mss_clamp), (1436, 1379));
    assert!(c.clear_df && c.fragment_before_encrypt);
    assert_eq!(c.failover, FailoverPolicy::default());
}

#[test]
fn toml_errors_locate_and_redact() {
    let toml = EXAMPLE.replace("mtu = 1436", "mtu = \"SecretLookingValue\"");
    let err = ConnectionConfig::from_toml(&toml).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("line"), "{text}");
    assert!(!text.contains("SecretLookingValue"), "{text}");
    // Unknown keys are refused (typos do not silently take a default).
    let toml = EXAMPLE.replace("replay_window = 1024", "replay_windw = 1024");
    let err = ConnectionConfig::from_toml(&toml).unwrap_err();
    assert!(err.to_string().contains("replay_windw"), "{err}");
    // Three tunnels do not fit.
    let third = &EXAMPLE[EXAMPLE.rfind("[[tunnels]]").unwrap()..];
    let three = format!(
        "{EXAMPLE}\n{}",
        third.replace("169.254.201.136", "169.254.9.0")
    );
    let err = ConnectionConfig::from_toml(&three).unwrap_err();
    assert!(
        err.to_string().contains("exactly 2 tunnels, found 3"),
        "{err}"
    );
}

#[test]
fn json_errors_redact_string_values() {
    let mut value: serde_json::Value = serde_json::from_str(&fixture().to_json()).unwrap();
    value["tunnels"][0]["ike_lifetime"] = serde_json::Value::String(PSK1.to_owned());
    let err = ConnectionConfig::from_json(&value.to_string()).unwrap_err();
    let text = format!("{err} {err:?}");
    assert!(!text.contains(PSK1), "{text}");
    assert!(text.contains("line 1"), "{text}");
}

// ---------------------------------------------------------------- validation

type Mutator = fn(&mut ConnectionConfig);

#[test]
fn every_rule_has_a_failing_case_naming_its_field() {
    let cases: &[(Mutator, &str)] = &[
        (|c| c.name = "has space".into(), "name"),
        (|c| c.name = String::new(), "name"),
        (|c| c.tunnels[1].psk = "short".into(), "tunnels[1].psk"),
        (
            |c| c.tunnels[1].psk = "x".repeat(65).as_str().into(),
            "tunnels[1].psk",
        ),
        (
            |c| c.tunnels[0].psk = "has-a-dash-1".into(),
            "tunnels[0].psk",
        ),
        (
            |c| c.tunnels[0].psk = "0startsWithZero".into(),
            "tunnels[0].psk",
        ),
        (
            |c| c.tunnels[0].inside_cidr = "169.254.44.40/29".parse().unwrap(),
            "tunnels[0].inside_cidr",
        ),
        (
            |c| c.tunnels[0].inside_cidr = "10.0.0.0/30".parse().unwrap(),
            "tunnels[0].inside_cidr",
        ),
        (
            |c| c.tunnels[0].inside_cidr = "169.254.5.0/30".parse().unwrap(),
            "tunnels[0].inside_cidr",
        ),
        (
            |c| c.tunnels[0].inside_cidr = "169.254.169.252/30".parse().unwrap(),
            "tunnels[0].inside_cidr",
        ),
        (
            |c| c.tunnels[1].inside_cidr = c.tunnels[0].inside_cidr,
            "tunnels[1].inside_cidr",
        ),
        (
            |c| c.tunnels[1].remote_outside_address = c.tunnels[0].remote_outside_address,
            "tunnels[1].remote_outside_address",
        ),
        (
            |c| c.tunnels[0].local_outside_address = "2001:db8::1".parse().unwrap(),
            "tunnels[0].local_outside_address",
        ),
        (
            |c| c.tunnels[0].remote_outside_address = "0.0.0.0".parse().unwrap(),
            "tunnels[0].remote_outside_address",
        ),
        (
            |c| c.tunnels[0].remote_outside_address = c.tunnels[0].local_outside_address,
            "tunnels[0].remote_outside_address",
        ),
        (|c| c.tunnels[0].ike_version = 3, "tunnels[0].ike_version"),
        (
            |c| c.tunnels[0].ike_proposals.clear(),
            "tunnels[0].ike_proposals",
        ),
        (
            |c| c.tunnels[0].esp_proposals.clear(),
            "tunnels[0].esp_proposals",
        ),
        (
            |c| c.tunnels[0].ike_proposals = vec!["aes128-md5-modp1024".into()],
            "tunnels[0].ike_proposals[0]",
        ),
        (
            |c| c.tunnels[0].ike_proposals = vec!["aes128-sha1".into()],
            "tunnels[0].ike_proposals[0]",
        ),
        (
            |c| c.tunnels[0].ike_proposals = vec!["aes128-modp2048".into()],
            "tunnels[0].ike_proposals[0]",
        ),
        (
            |c| {
                c.tunnels[0].ike_proposals =
                    vec!["aes128-sha1-modp1024".into(), "aes128-sha1-modp9999".into()]
            },
            "tunnels[0].ike_proposals[1]",
        ),
        // IKEv1 (the fixture's mode main): no AEAD for the IKE SA.
        (
            |c| c.tunnels[0].ike_proposals = vec!["aes256gcm16-prfsha256-modp2048".into()],
            "tunnels[0].ike_proposals[0]",
        ),
        (
            |c| {
                c.tunnels[0].ike_version = 2;
                c.tunnels[0].ike_proposals = vec!["aes256gcm16-modp2048".into()]
            },
            "tunnels[0].ike_proposals[0]",
        ),
        (
            |c| c.tunnels[0].ike_proposals = vec!["aes128-aes128gcm16-sha1-modp1024".into()],
            "tunnels[0].ike_proposals[0]",
        ),
        (
            |c| c.tunnels[1].esp_proposals = vec!["aes128".into()],
            "tunnels[1].esp_proposals[0]",
        ),
        (
            |c| c.tunnels[1].esp_proposals = vec!["aes128gcm16-sha256".into()],
            "tunnels[1].esp_proposals[0]",
        ),
        (
            |c| c.tunnels[1].esp_proposals = vec!["aes128-sha1-prfsha1".into()],
            "tunnels[1].esp_proposals[0]",
        ),
        (
            |c| c.tunnels[1].esp_proposals = vec!["aes128-sha1-modp1024-modp2048".into()],
            "tunnels[1].esp_proposals[0]",
        ),
        (
            |c| c.tunnels[1].esp_proposals = vec!["aes128--sha1".into()],
            "tunnels[1].esp_proposals[0]",
        ),
        (
            |c| c.tunnels[0].ike_lifetime = 899,
            "tunnels[0].ike_lifetime",
        ),
        (
            |c| c.tunnels[0].ike_lifetime = 28801,
            "tunnels[0].ike_lifetime",
        ),
        (
            |c| c.tunnels[0].child_lifetime = 899,
            "tunnels[0].child_lifetime",
        ),
        (
            |c| c.tunnels[0].child_lifetime = 3601,
            "tunnels[0].child_lifetime",
        ),
        (
            |c| c.tunnels[0].ike_lifetime = 1800,
            "tunnels[0].child_lifetime",
        ),
        (
            |c| c.tunnels[0].rekey_margin = 59,
            "tunnels[0].rekey_margin",
        ),
        (
            |c| c.tunnels[0].rekey_margin = 1801,
            "tunnels[0].rekey_margin",
        ),
        (
            |c| c.tunnels[0].rekey_fuzz_percent = 101,
            "tunnels[0].rekey_fuzz_percent",
        ),
        (
            |c| c.tunnels[0].replay_window = 63,
            "tunnels[0].replay_window",
        ),
        (
            |c| c.tunnels[0].replay_window = 2049,
            "tunnels[0].replay_window",
        ),
        (|c| c.tunnels[0].dpd.timeout = 29, "tunnels[0].dpd.timeout"),
        (|c| c.tunnels[0].dpd.interval = 0, "tunnels[0].dpd.interval"),
        (
            |c| c.tunnels[0].dpd.interval = 30,
            "tunnels[0].dpd.interval",
        ),
        (
            |c| c.tunnels[0].startup_action = StartupAction::Start,
            "tunnels[0].startup_action",
        ),
        (
            |c| c.tunnels[0].local_identity = Some(String::new()),
            "tunnels[0].local_identity",
        ),
        (
            |c| c.tunnels[0].remote_identity = Some("a\nb".into()),
            "tunnels[0].remote_identity",
        ),
        (
            |c| set_bgp(c, |local, _, _, _| *local = 0),
            "routing.local_asn",
        ),
        (
            |c| set_bgp(c, |_, peer, _, _| *peer = 23456),
            "routing.peer_asn",
        ),
        (
            |c| set_bgp(c, |local, peer, _, _| *peer = *local),
            "routing.peer_asn",
        ),
        (
            |c| set_bgp(c, |_, _, hold, _| *hold = 2),
            "routing.hold_time",
        ),
        (
            |c| set_bgp(c, |_, _, _, keepalive| *keepalive = 30),
            "routing.keepalive",
        ),
        (
            |c| {
                if let Routing::Bgp {
                    advertised_prefixes,
                    max_prefixes_out,
                    ..
                } = &mut c.routing
                {
                    *max_prefixes_out = 1;
                    advertised_prefixes.push("10.1.0.0/16".parse().unwrap());
                    advertised_prefixes.push("10.2.0.0/16".parse().unwrap());
                }
            },
            "routing.advertised_prefixes",
        ),
        (
            |c| {
                c.failover = FailoverPolicy::ActiveStandby {
                    preferred_tunnel: 2,
                    failback_hysteresis_secs: 0,
                }
            },
            "failover.preferred_tunnel",
        ),
        (|c| c.mtu = 9000, "mtu"),
        (|c| c.mtu = 500, "mtu"),
        (|c| c.tcp_mss_clamp = 1400, "tcp_mss_clamp"),
        (|c| c.tcp_mss_clamp = 100, "tcp_mss_clamp"),
    ];
    for (i, (mutate, field)) in cases.iter().enumerate() {
        let mut c = fixture();
        mutate(&mut c);
        let errors = c
            .validate()
            .expect_err(&format!("case {i} ({field}) must fail"));
        assert!(
            fields(&errors).contains(field),
            "case {i}: expected {field}, got {errors:?}"
        );
        for e in &errors {
            assert!(matches!(e, ConfigError::Invalid { .. }));
            assert!(e.to_string().starts_with(e.field().unwrap()));
        }
    }
}

fn set_bgp(c: &mut ConnectionConfig, f: fn(&mut u32, &mut u32, &mut u16, &mut u16)) {
    match &mut c.routing {
        Routing::Bgp {
            local_asn,
            peer_asn,
            hold_time,
            keepalive,
            ..
        } => f(local_asn, peer_asn, hold_time, keepalive),
        Routing::Static { .. } => unreachable!(),
    }
}

#[test]
fn vgw_role_checks_its_own_outside_addresses_for_distinctness() {
    let mut c = fixture();
    c.role = Role::Vgw;
    for t in &mut c.tunnels {
        core::mem::swap(&mut t.local_outside_address, &mut t.remote_outside_address);
    }
    c.validate().unwrap();
    c.tunnels[1].local_outside_address = c.tunnels[0].local_outside_address;
    let errors = c.validate().unwrap_err();
    assert_eq!(fields(&errors), ["tunnels[1].local_outside_address"]);
    // The exported peer is now the customer gateway, and it initiates.
    let conf = c.to_swanctl_conf();
    assert!(conf.contains("customer gateway end"));
    assert!(conf.contains("start_action = start"));
}

#[test]
fn validation_reports_all_problems_at_once() {
    let mut c = fixture();
    c.tunnels[0].replay_window = 1;
    c.tunnels[1].ike_lifetime = 1;
    c.mtu = 1;
    let errors = c.validate().unwrap_err();
    let f = fields(&errors);
    for expected in ["tunnels[0].replay_window", "tunnels[1].ike_lifetime", "mtu"] {
        assert!(f.contains(&expected), "{f:?}");
    }
}

#[test]
fn accepted_edge_values() {
    let mut c = fixture();
    c.tunnels[0].ike_lifetime = 900 * 2;
    c.tunnels[0].child_lifetime = 900;
    c.tunnels[0].rekey_margin = 450;
    c.tunnels[0].rekey_fuzz_percent = 0;
    c.tunnels[0].replay_window = 64;
    c.tunnels[1].replay_window = 2048;
    c.tunnels[0].psk = "a".repeat(64).as_str().into();
    c.tunnels[1].psk = "A._12345".into();
    c.tunnels[0].inside_cidr = "169.254.6.0/30".parse().unwrap();
    c.failover = FailoverPolicy::ActiveActive;
    c.validate().unwrap();
}

#[test]
fn no_error_or_debug_output_contains_the_psk() {
    const KNOWN: &str = "KnownPsk_abcdefgh12345";
    let bad_psks = [
        format!("0{KNOWN}"),
        format!("{KNOWN}!"),
        format!("{KNOWN}{}", "x".repeat(64)),
        KNOWN.to_owned(),
    ];
    for psk in bad_psks {
        let mut c = fixture();
        c.name = "bad name".into();
        for t in &mut c.tunnels {
            t.psk = psk.as_str().into();
            t.ike_version = 7;
            t.ike_proposals = vec!["nope".into()];
            t.esp_proposals = vec!["nope-either".into()];
            t.ike_lifetime = 0;
            t.child_lifetime = 0;
            t.rekey_margin = 0;
            t.replay_window = 0;
            t.dpd.timeout = 0;
            t.inside_cidr = "10.0.0.0/8".parse().unwrap();
        }
        c.tunnels[1].inside_cidr = c.tunnels[0].inside_cidr;
        c.mtu = 0;
        let errors = c.validate().unwrap_err();
        assert!(fields(&errors).contains(&"tunnels[0].psk") || psk == KNOWN);
        let mut text = format!("{errors:?}\n{c:?}\n{}", c.summary(false));
        for e in &errors {
            text.push_str(&format!("{e}\n{e:?}\n"));
        }
        assert!(!text.contains(KNOWN), "PSK leaked: {text}");
        assert!(!text.contains(&psk));
    }
    // Import errors from documents with a known PSK.
    let xml = AWS_XML
        .replace(PSK1, KNOWN)
        .replace("<lifetime>3600</lifetime>", "<lifetime>x</lifetime>");
    let err = ConnectionConfig::from_aws_xml(&xml).unwrap_err();
    assert!(!format!("{err} {err:?}").contains(KNOWN));
    let c = ConnectionConfig::from_aws_xml(&AWS_XML.replace(PSK1, KNOWN)).unwrap();
    assert!(!format!("{c:?}").contains(KNOWN));
    let err = fixture()
        .merge_aws_tunnel_options(&format!(
            r#"[{{"OutsideIpAddress": "192.0.2.1", "PreSharedKey": "{KNOWN}"}}]"#
        ))
        .unwrap_err();
    assert!(!format!("{err} {err:?}").contains(KNOWN));
    let err = fixture()
        .merge_aws_tunnel_options(&format!(
            r#"[{{"OutsideIpAddress": "198.51.100.21", "PreSharedKey": 5, "X": "{KNOWN}"}}]"#
        ))
        .unwrap_err();
    assert!(!format!("{err} {err:?}").contains(KNOWN));
    let err = fixture()
        .merge_aws_tunnel_options(&format!(
            r#"[{{"OutsideIpAddress": "198.51.100.21", "ReplayWindowSize": "{KNOWN}"}}]"#
        ))
        .unwrap_err();
    assert!(!format!("{err} {err:?}").contains(KNOWN));
}

// ---------------------------------------------------------------- export

#[test]
fn swanctl_export_stands_up_the_aws_side() {
    let mut c = fixture();
    c.tunnels[1].ike_version = 2;
    c.tunnels[1].startup_action = StartupAction::Start;
    c.tunnels[1].dpd.action = DpdAction::Restart;
    c.tunnels[1].nat_traversal.force_encapsulation = true;
    let conf = c.to_swanctl_conf();
    let name = "vpn-0a1b2c3d4e5f60718";
    // Balanced braces: parse-ish check that sections nest.
    assert_eq!(conf.matches('{').count(), conf.matches('}').count());
    let lines: Vec<&str> = conf.lines().map(str::trim).collect();
    let has = |l: &str| lines.contains(&l);
    for expected in [
        "connections {".to_owned(),
        format!("{name}-tunnel1 {{"),
        format!("{name}-tunnel2 {{"),
        "version = 1".into(),
        "version = 2".into(),
        "local_addrs = 198.51.100.21".into(),
        "local_addrs = 198.51.100.87".into(),
        "remote_addrs = 203.0.113.10".into(),
        "proposals = aes128-sha1-modp1024".into(),
        "reauth_time = 28530s".into(),
        "rekey_time = 28530s".into(),
        "over_time = 270s".into(),
        "rand_time = 270s".into(),
        "dpd_delay = 10s".into(),
        "dpd_timeout = 30s".into(),
        "encap = no".into(),
        "encap = yes".into(),
        "keyingtries = 0".into(),
        "auth = psk".into(),
        "id = \"198.51.100.21\"".into(),
        "id = \"203.0.113.10\"".into(),
        "local_ts = 0.0.0.0/0".into(),
        "remote_ts = 0.0.0.0/0".into(),
        "esp_proposals = aes128-sha1-modp1024".into(),
        "life_time = 3600s".into(),
        "rekey_time = 3330s".into(),
        "replay_window = 1024".into(),
        "dpd_action = clear".into(),
        "dpd_action = restart".into(),
        "start_action = none".into(),
        "start_action = start".into(),
        "mode = tunnel".into(),
        "secrets {".into(),
        "ike-tunnel1 {".into(),
        "ike-tunnel2 {".into(),
        format!("secret = \"{PSK1}\""),
        format!("secret = \"{PSK2}\""),
        "id-local = \"198.51.100.21\"".into(),
        "id-remote = \"203.0.113.10\"".into(),
    ] {
        assert!(has(&expected), "missing `{expected}` in\n{conf}");
    }
    assert!(!conf.contains("updown"));
    // The PSKs appear once each, in the secrets section only.
    let secrets_at = conf.find("secrets {").unwrap();
    for psk in [PSK1, PSK2] {
        assert_eq!(conf.matches(psk).count(), 1);
        assert!(conf.find(psk).unwrap() > secrets_at);
    }
}

#[test]
fn bird_export_for_bgp() {
    let mut c = fixture();
    if let Routing::Bgp {
        advertised_prefixes,
        accepted_prefixes,
        ..
    } = &mut c.routing
    {
        advertised_prefixes.push("192.168.0.0/16".parse().unwrap());
        accepted_prefixes.push("10.0.0.0/16".parse().unwrap());
    }
    let bird = c.to_bird_conf().unwrap();
    assert_eq!(bird.matches('{').count(), bird.matches('}').count());
    for expected in [
        "router id 169.254.44.41;",
        "protocol bgp tunnel1 {",
        "protocol bgp tunnel2 {",
        "local 169.254.44.41 as 64512;",
        "neighbor 169.254.44.42 as 65010;",
        "local 169.254.201.137 as 64512;",
        "neighbor 169.254.201.138 as 65010;",
        "multihop;",
        "hold time 30;",
        "keepalive time 10;",
        "import filter from_peer;",
        "export filter to_peer;",
        "receive limit 100 action restart;",
        "if net ~ [ 192.168.0.0/16+ ] then accept;",
        "route 10.0.0.0/16 blackhole;",
    ] {
        assert!(bird.contains(expected), "missing `{expected}` in\n{bird}");
    }
    assert!(!bird.contains(PSK1));
}

#[test]
fn summary_redacts_unless_asked() {
    let c = fixture();
    let text = c.summary(false);
    assert!(!text.contains(PSK1) && !text.contains(PSK2));
    assert_eq!(text.matches("<redacted>").count(), 2);
    for expected in [
        "IPSec Tunnel #1",
        "IPSec Tunnel #2",
        "Customer Gateway   : 203.0.113.10",
        "Virtual Private GW : 198.51.100.21",
        "Customer Gateway   : 169.254.44.42/30",
        "Virtual Private GW : 169.254.44.41/30",
        "aes128-sha1-modp1024",
        "28800 seconds",
        "3600 seconds",
        "interval 10 s, timeout 30 s (3 retries), action clear",
        "Customer Gateway ASN : 65010",
        "Virtual Private GW ASN: 64512",
        "Hold time / keepalive: 30 s / 10 s",
    ] {
        assert!(text.contains(expected), "missing `{expected}` in\n{text}");
    }
    let shown = c.summary(true);
    assert!(shown.contains(PSK1) && shown.contains(PSK2));
}

// ---------------------------------------------------------------- small types

#[test]
fn secret_never_prints() {
    let s = Secret::from("hunter2_hunter2");
    assert_eq!(format!("{s}"), "<redacted>");
    assert_eq!(format!("{s:?}"), "<redacted>");
    assert_eq!(s.expose(), "hunter2_hunter2");
    assert_eq!(serde_json::to_string(&s).unwrap(), "\"hunter2_hunter2\"");
    assert!(s != Secret::from("hunter2_hunter3"));
}

#[test]
fn prefix_parsing() {
    let p: Prefix = "169.254.44.40/30".parse().unwrap();
    assert_eq!(p.v4_host(1), Some(Ipv4Addr::new(169, 254, 44, 41)));
    assert_eq!(p.v4_host(4), None);
    assert!(p.contains(ip("169.254.44.43")));
    assert!(!p.contains(ip("169.254.44.44")));
    assert!("169.254.44.41/30".parse::<Prefix>().is_err(), "host bits");
    assert!("10.0.0.0/33".parse::<Prefix>().is_err());
    assert!("10.0.0.0".parse::<Prefix>().is_err());
    assert!("10.0.0.0/+8".parse::<Prefix>().is_err());
    assert_eq!("2001:db8::/32".parse::<Prefix>().unwrap().len(), 32);
    assert_eq!(
        "0.0.0.0/0".parse::<Prefix>().unwrap().to_string(),
        "0.0.0.0/0"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn parsers_never_panic_on_arbitrary_text(s in ".{0,512}") {
        let _ = ConnectionConfig::from_aws_xml(&s);
        let _ = ConnectionConfig::from_toml(&s);
        let _ = ConnectionConfig::from_json(&s);
        let _ = fixture().merge_aws_tunnel_options(&s);
    }

    #[test]
    fn parsers_never_panic_on_mutated_documents(
        at in 0usize..4096,
        cut in 0usize..64,
        insert in "[<>/&;\"'a-z0-9 =\\[\\]{}.:-]{0,16}",
    ) {
        for doc in [AWS_XML, EXAMPLE, AWS_JSON] {
            let mut s = doc.to_owned();
            let mut start = at % (s.len() + 1);
            while !s.is_char_boundary(start) { start -= 1; }
            let mut end = (start + cut).min(s.len());
            while !s.is_char_boundary(end) { end -= 1; }
            s.replace_range(start..end, &insert);
            if let Ok(c) = ConnectionConfig::from_aws_xml(&s) {
                let _ = c.validate();
                let _ = c.to_swanctl_conf();
            }
            if let Ok(c) = ConnectionConfig::from_toml(&s) {
                let _ = c.validate();
                let _ = c.summary(true);
                let _ = c.to_bird_conf();
            }
            let _ = fixture().merge_aws_tunnel_options(&s);
        }
    }
}

#[test]
fn a_key_pasted_into_the_wrong_xml_element_is_not_echoed() {
    let pasted = "Paste.dInto_Wrong1";
    for (element, replacement) in [
        (
            "<lifetime>28800</lifetime>",
            format!("<lifetime>{pasted}</lifetime>"),
        ),
        (
            "<encryption_protocol>aes-128-cbc</encryption_protocol>",
            format!("<encryption_protocol>{pasted}</encryption_protocol>"),
        ),
        (
            "<perfect_forward_secrecy>group2</perfect_forward_secrecy>",
            format!("<perfect_forward_secrecy>{pasted}</perfect_forward_secrecy>"),
        ),
    ] {
        assert!(AWS_XML.contains(element), "{element}");
        let doc = AWS_XML.replacen(element, &replacement, 1);
        let err = ConnectionConfig::from_aws_xml(&doc).unwrap_err();
        assert!(err.field().is_some(), "{err}");
        assert!(!err.to_string().contains(pasted), "{err}");
        assert!(!format!("{err:?}").contains(pasted), "{err:?}");
    }
}
