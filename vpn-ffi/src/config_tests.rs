//! Calls the `vpn_config_*` and `vpn_last_error_*` entry points from Rust, as
//! a C caller would.

use core::ffi::c_char;
use core::ptr::{null, null_mut};
use std::ffi::CString;

use crate::*;
use vpn_result::*;

const XML: &str = include_str!("../../vpn-core/tests/fixtures/config/aws-vpn-connection-bgp.xml");
const OPTIONS: &str =
    include_str!("../../vpn-core/tests/fixtures/config/aws-describe-vpn-connections.json");
const TOML: &str = include_str!("../../examples/connection.toml");
const PSK1: &str = "Qx7vN2mPa9Lr4TzWk8Hc3Ye6Bd5Fg1Js";
const PSK2: &str = "Ur5kD8sVb2Nq7Xw4Em9Tj6Pc3Ha1Lz0G";

fn fixture_path(name: &str) -> CString {
    let path = format!(
        "{}/../vpn-core/tests/fixtures/config/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    CString::new(path).unwrap()
}

/// Owns a handle in tests.
struct Cfg(*mut vpn_config);

impl Drop for Cfg {
    fn drop(&mut self) {
        // SAFETY: the handle came from `vpn_config_from_*` and is freed once.
        unsafe { vpn_config_free(self.0) }
    }
}

fn load(format: vpn_config_format, text: &str) -> Result<Cfg, vpn_result> {
    let mut cfg = null_mut();
    // SAFETY: valid text and out pointer.
    let r = unsafe { vpn_config_from_str(format, text.as_ptr().cast(), text.len(), &mut cfg) };
    if r == VPN_OK {
        assert!(!cfg.is_null());
        assert_eq!(vpn_last_error_count(), 0);
        Ok(Cfg(cfg))
    } else {
        assert!(cfg.is_null(), "no handle written on failure");
        Err(r)
    }
}

/// Runs a string-producing call twice: once to learn the size, once for real.
fn text(f: impl Fn(*mut c_char, usize, *mut usize) -> vpn_result) -> Result<String, vpn_result> {
    let mut needed = 0;
    let r = f(null_mut(), 0, &mut needed);
    if r != VPN_ERR_BUFFER_TOO_SMALL {
        return Err(r);
    }
    let mut buf = vec![1 as c_char; needed];
    let mut n = usize::MAX;
    let r = f(buf.as_mut_ptr(), buf.len(), &mut n);
    if r != VPN_OK {
        return Err(r);
    }
    assert_eq!(n + 1, needed);
    assert_eq!(buf[n], 0, "NUL-terminated");
    let bytes: Vec<u8> = buf[..n].iter().map(|&c| c as u8).collect();
    Ok(String::from_utf8(bytes).unwrap())
}

fn to_string(cfg: &Cfg, format: vpn_config_format) -> Result<String, vpn_result> {
    // SAFETY: live handle, buffers as `text` provides them.
    text(|b, l, n| unsafe { vpn_config_to_string(cfg.0, format, b, l, n) })
}

fn swanctl(cfg: &Cfg) -> String {
    // SAFETY: as above.
    text(|b, l, n| unsafe { vpn_config_to_swanctl(cfg.0, b, l, n) }).unwrap()
}

fn bird(cfg: &Cfg) -> String {
    // SAFETY: as above.
    text(|b, l, n| unsafe { vpn_config_to_bird(cfg.0, b, l, n) }).unwrap()
}

fn summary(cfg: &Cfg, show_secrets: bool) -> String {
    // SAFETY: as above.
    text(|b, l, n| unsafe { vpn_config_summary(cfg.0, show_secrets, b, l, n) }).unwrap()
}

fn validate(cfg: &Cfg) -> vpn_result {
    // SAFETY: live handle.
    unsafe { vpn_config_validate(cfg.0) }
}

fn merge(cfg: &Cfg, json: &str) -> vpn_result {
    // SAFETY: live handle, valid text.
    unsafe { vpn_config_merge_aws_tunnel_options(cfg.0, json.as_ptr().cast(), json.len()) }
}

fn last_message() -> String {
    // SAFETY: buffers as `text` provides them.
    text(|b, l, n| unsafe { vpn_last_error_message(b, l, n) }).unwrap()
}

fn last_field() -> String {
    // SAFETY: as above.
    text(|b, l, n| unsafe { vpn_last_error_field(b, l, n) }).unwrap()
}

/// Every recorded error as (field, message).
fn last_errors() -> Vec<(String, String)> {
    (0..vpn_last_error_count())
        .map(|i| {
            // SAFETY: buffers as `text` provides them.
            let field = text(|b, l, n| unsafe { vpn_last_error_field_at(i, b, l, n) }).unwrap();
            // SAFETY: as above.
            let msg = text(|b, l, n| unsafe { vpn_last_error_message_at(i, b, l, n) }).unwrap();
            (field, msg)
        })
        .collect()
}

#[test]
fn aws_xml_fixture_loads_validates_and_exports() {
    let cfg = load(VPN_CONFIG_AWS_XML, XML).unwrap();
    assert_eq!(validate(&cfg), VPN_OK);
    assert_eq!(vpn_last_error_count(), 0);
    assert_eq!(last_message(), "no error");
    assert_eq!(last_field(), "");

    let conf = swanctl(&cfg);
    assert!(conf.contains("version = 1"), "{conf}");
    assert!(conf.contains("secrets"));
    assert!(
        conf.contains(PSK1) && conf.contains(PSK2),
        "swanctl holds the keys"
    );

    let bird = bird(&cfg);
    assert!(bird.contains("protocol bgp tunnel1"), "{bird}");
    assert!(bird.contains("as 65010"));

    let hidden = summary(&cfg, false);
    assert!(!hidden.contains(PSK1) && !hidden.contains(PSK2), "{hidden}");
    assert!(hidden.contains("<redacted>"));
    let shown = summary(&cfg, true);
    assert!(shown.contains(PSK1) && shown.contains(PSK2));
}

#[test]
fn from_file_reads_the_fixture() {
    let path = fixture_path("aws-vpn-connection-bgp.xml");
    let mut cfg = null_mut();
    // SAFETY: NUL-terminated path, valid out pointer.
    let r = unsafe { vpn_config_from_file(VPN_CONFIG_AWS_XML, path.as_ptr(), &mut cfg) };
    assert_eq!(r, VPN_OK);
    let cfg = Cfg(cfg);
    assert_eq!(validate(&cfg), VPN_OK);
    assert_eq!(to_string(&cfg, VPN_CONFIG_TOML), {
        let direct = load(VPN_CONFIG_AWS_XML, XML).unwrap();
        to_string(&direct, VPN_CONFIG_TOML)
    });

    let missing = fixture_path("no-such-file.toml");
    let mut out = null_mut();
    // SAFETY: as above.
    let r = unsafe { vpn_config_from_file(VPN_CONFIG_TOML, missing.as_ptr(), &mut out) };
    assert_eq!(r, VPN_ERR_IO);
    assert!(out.is_null());
    let msg = last_message();
    assert!(msg.contains("no-such-file.toml"), "{msg}");
    assert_eq!(last_field(), "");
}

#[test]
fn round_trips_through_toml_and_json() {
    let cfg = load(VPN_CONFIG_TOML, TOML).unwrap();
    assert_eq!(validate(&cfg), VPN_OK);
    let toml = to_string(&cfg, VPN_CONFIG_TOML).unwrap();
    let json = to_string(&cfg, VPN_CONFIG_JSON).unwrap();
    let from_toml = load(VPN_CONFIG_TOML, &toml).unwrap();
    let from_json = load(VPN_CONFIG_JSON, &json).unwrap();
    assert_eq!(to_string(&from_toml, VPN_CONFIG_JSON).unwrap(), json);
    assert_eq!(to_string(&from_json, VPN_CONFIG_TOML).unwrap(), toml);
    // XML is input only; unknown formats are argument errors.
    assert_eq!(
        to_string(&cfg, VPN_CONFIG_AWS_XML),
        Err(VPN_ERR_INVALID_ARGUMENT)
    );
    assert_eq!(to_string(&cfg, 0), Err(VPN_ERR_INVALID_ARGUMENT));
    assert!(last_message().contains("unknown configuration format 0"));
    assert!(matches!(load(99, TOML), Err(VPN_ERR_INVALID_ARGUMENT)));
    // An unknown key is a syntax error that names no field.
    let unknown = format!("colour = \"blue\"\n{TOML}");
    assert_eq!(
        load(VPN_CONFIG_TOML, &unknown).err(),
        Some(VPN_ERR_CONFIG_SYNTAX)
    );
    assert_eq!(last_field(), "");
    assert!(
        last_message().starts_with("TOML error"),
        "{}",
        last_message()
    );
}

#[test]
fn static_routing_has_an_empty_bird_config() {
    let cfg = load(VPN_CONFIG_AWS_XML, XML).unwrap();
    let json = to_string(&cfg, VPN_CONFIG_JSON).unwrap();
    let start = json.find("\"routing\"").unwrap();
    let end = start + json[start..].find('}').unwrap() + 1;
    let json = format!(
        "{}\"routing\": {{ \"type\": \"static\", \"prefixes\": [\"10.0.0.0/16\"] }}{}",
        &json[..start],
        &json[end..]
    );
    let cfg = load(VPN_CONFIG_JSON, &json).unwrap();
    assert_eq!(validate(&cfg), VPN_OK);
    assert_eq!(bird(&cfg), "");
    let mut buf = [1 as c_char; 1];
    let mut n = usize::MAX;
    // SAFETY: live handle, one-byte buffer.
    let r = unsafe { vpn_config_to_bird(cfg.0, buf.as_mut_ptr(), 1, &mut n) };
    assert_eq!((r, n, buf[0]), (VPN_OK, 0, 0));
}

#[test]
fn validation_reports_every_error_with_its_field_and_no_key() {
    let bad = TOML
        .replace("local_asn = 65010", "local_asn = 23456")
        .replace("example_psk.tunnel2", "0secret_psk_value")
        .replace("mtu = 1436", "mtu = 100");
    let cfg = load(VPN_CONFIG_TOML, &bad).unwrap();
    assert_eq!(validate(&cfg), VPN_ERR_INVALID_CONFIG);
    let errors = last_errors();
    let fields: Vec<&str> = errors.iter().map(|(f, _)| f.as_str()).collect();
    for expected in ["routing.local_asn", "tunnels[1].psk", "mtu"] {
        assert!(fields.contains(&expected), "{expected} in {fields:?}");
    }
    for (field, msg) in &errors {
        assert!(msg.starts_with(&format!("{field}: ")), "{msg}");
    }
    assert_eq!(last_field(), errors[0].0);
    let all = last_message();
    assert_eq!(all.lines().count(), errors.len());
    assert!(!all.contains("0secret_psk_value"), "{all}");
    // A later successful call clears the record.
    assert!(!summary(&cfg, false).is_empty());
    assert_eq!(vpn_last_error_count(), 0);
    // Index past the end.
    let mut n = 0;
    // SAFETY: a size query with no buffer.
    let r = unsafe { vpn_last_error_field_at(0, null_mut(), 0, &mut n) };
    assert_eq!(r, VPN_ERR_INVALID_ARGUMENT);
}

#[test]
fn merge_is_all_or_nothing() {
    let cfg = load(VPN_CONFIG_AWS_XML, XML).unwrap();
    let before = to_string(&cfg, VPN_CONFIG_JSON).unwrap();
    assert_eq!(merge(&cfg, "{}"), VPN_ERR_INVALID_CONFIG);
    assert_eq!(last_field(), "TunnelOptions");
    // The second option matches no tunnel, after the first one merged.
    let partial = r#"[{"OutsideIpAddress": "198.51.100.21", "Phase1LifetimeSeconds": 14400},
                      {"OutsideIpAddress": "192.0.2.99"}]"#;
    assert_eq!(merge(&cfg, partial), VPN_ERR_INVALID_CONFIG);
    assert_eq!(last_field(), "TunnelOptions[1].OutsideIpAddress");
    assert_eq!(
        to_string(&cfg, VPN_CONFIG_JSON).unwrap(),
        before,
        "unchanged"
    );
    assert_eq!(merge(&cfg, "not json"), VPN_ERR_CONFIG_SYNTAX);

    assert_eq!(merge(&cfg, OPTIONS), VPN_OK);
    assert_eq!(validate(&cfg), VPN_OK);
    let after = to_string(&cfg, VPN_CONFIG_JSON).unwrap();
    assert_ne!(after, before);
    assert!(after.contains("14400"));
}

#[test]
fn hostile_input_is_an_error_not_a_crash() {
    let cases: &[(vpn_config_format, &[u8])] = &[
        (VPN_CONFIG_TOML, b""),
        (VPN_CONFIG_TOML, b"name = "),
        (
            VPN_CONFIG_JSON,
            b"{\"name\": \"Qx7vN2mPa9Lr4TzWk8Hc3Ye6Bd5Fg1Js\", \"x\": 1}",
        ),
        (VPN_CONFIG_JSON, b"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[["),
        (VPN_CONFIG_AWS_XML, b"<vpn_connection><ipsec_tunnel>"),
        (
            VPN_CONFIG_AWS_XML,
            b"<!DOCTYPE x [<!ENTITY a \"aaaa\">]><x>&a;</x>",
        ),
        (VPN_CONFIG_TOML, b"\xff\xfe not utf-8"),
    ];
    for &(format, text) in cases {
        let mut cfg = null_mut();
        // SAFETY: valid buffer and out pointer.
        let r = unsafe { vpn_config_from_str(format, text.as_ptr().cast(), text.len(), &mut cfg) };
        assert_ne!(r, VPN_OK, "{:?}", String::from_utf8_lossy(text));
        assert_ne!(r, VPN_ERR_PANIC);
        assert!(cfg.is_null());
        assert!(vpn_last_error_count() >= 1);
        assert!(!last_message().contains(PSK1));
    }
    let deep = "[".repeat(100_000);
    assert!(load(VPN_CONFIG_JSON, &deep).is_err());
    let huge = "#".repeat(2 << 20);
    assert_eq!(
        load(VPN_CONFIG_TOML, &huge).err(),
        Some(VPN_ERR_INVALID_ARGUMENT)
    );
    assert!(last_message().contains("limit"));
}

#[test]
fn null_arguments_are_rejected() {
    let cfg = load(VPN_CONFIG_AWS_XML, XML).unwrap();
    let mut out = null_mut();
    let mut n = 0;
    let mut buf = [0 as c_char; 8];
    // SAFETY: each call passes NULL where the contract allows the check.
    unsafe {
        assert_eq!(
            vpn_config_from_str(VPN_CONFIG_TOML, b"x".as_ptr().cast(), 1, null_mut()),
            VPN_ERR_NULL_ARGUMENT
        );
        assert_eq!(
            vpn_config_from_str(VPN_CONFIG_TOML, null(), 5, &mut out),
            VPN_ERR_NULL_ARGUMENT
        );
        assert_eq!(
            vpn_config_from_file(VPN_CONFIG_TOML, null(), &mut out),
            VPN_ERR_NULL_ARGUMENT
        );
        assert!(out.is_null());
        assert_eq!(vpn_config_validate(null()), VPN_ERR_NULL_ARGUMENT);
        assert_eq!(
            vpn_config_merge_aws_tunnel_options(null_mut(), b"[]".as_ptr().cast(), 2),
            VPN_ERR_NULL_ARGUMENT
        );
        assert_eq!(
            vpn_config_merge_aws_tunnel_options(cfg.0, null(), 2),
            VPN_ERR_NULL_ARGUMENT
        );
        assert_eq!(
            vpn_config_to_string(null(), VPN_CONFIG_TOML, buf.as_mut_ptr(), 8, &mut n),
            VPN_ERR_NULL_ARGUMENT
        );
        assert_eq!(
            vpn_config_to_string(cfg.0, VPN_CONFIG_TOML, buf.as_mut_ptr(), 8, null_mut()),
            VPN_ERR_NULL_ARGUMENT
        );
        assert_eq!(
            vpn_config_to_string(cfg.0, VPN_CONFIG_TOML, null_mut(), 8, &mut n),
            VPN_ERR_NULL_ARGUMENT
        );
        assert_eq!(
            vpn_config_to_swanctl(null(), buf.as_mut_ptr(), 8, &mut n),
            VPN_ERR_NULL_ARGUMENT
        );
        assert_eq!(
            vpn_config_to_bird(null(), buf.as_mut_ptr(), 8, &mut n),
            VPN_ERR_NULL_ARGUMENT
        );
        assert_eq!(
            vpn_config_summary(null(), false, buf.as_mut_ptr(), 8, &mut n),
            VPN_ERR_NULL_ARGUMENT
        );
        assert_eq!(
            vpn_last_error_message(buf.as_mut_ptr(), 8, null_mut()),
            VPN_ERR_NULL_ARGUMENT
        );
        assert_eq!(
            vpn_last_error_field(null_mut(), 8, &mut n),
            VPN_ERR_NULL_ARGUMENT
        );
        vpn_config_free(null_mut());
    }
}

#[test]
fn buffer_too_small_writes_nothing_but_the_size() {
    let cfg = load(VPN_CONFIG_AWS_XML, XML).unwrap();
    let full = summary(&cfg, false);
    let mut buf = vec![7 as c_char; full.len()];
    let mut n = 0;
    // SAFETY: valid buffer, one byte short for the NUL.
    let r = unsafe { vpn_config_summary(cfg.0, false, buf.as_mut_ptr(), buf.len(), &mut n) };
    assert_eq!((r, n), (VPN_ERR_BUFFER_TOO_SMALL, full.len() + 1));
    assert!(buf.iter().all(|&c| c == 7), "buffer untouched");
}

#[test]
fn last_error_is_per_thread() {
    assert!(load(VPN_CONFIG_TOML, "oops").is_err());
    assert_eq!(vpn_last_error_count(), 1);
    std::thread::spawn(|| assert_eq!(vpn_last_error_count(), 0))
        .join()
        .unwrap();
    assert_eq!(vpn_last_error_count(), 1);
}

#[test]
fn accessors_give_name_mtu_and_outside_addresses() {
    let cfg = load(VPN_CONFIG_AWS_XML, XML).unwrap();
    // SAFETY: live handle; valid buffers.
    let name = text(|b, l, n| unsafe { vpn_config_name(cfg.0, b, l, n) }).unwrap();
    assert!(!name.is_empty() && to_string(&cfg, VPN_CONFIG_TOML).unwrap().contains(&name));
    // SAFETY: live handle, and NULL.
    unsafe {
        assert_eq!(vpn_config_mtu(cfg.0), 1436);
        assert_eq!(vpn_config_mtu(null()), 0);
    }

    let mut local = vpn_socket_addr::default();
    let mut remote = vpn_socket_addr::default();
    let mut seen = Vec::new();
    for tunnel in 0..2 {
        // SAFETY: live handle; valid out pointers.
        let r =
            unsafe { vpn_config_tunnel_outside_addresses(cfg.0, tunnel, &mut local, &mut remote) };
        assert_eq!(r, VPN_OK);
        assert_eq!((local.family, local.port, remote.port), (VPN_AF_INET, 0, 0));
        seen.push((local.addr[..4].to_vec(), remote.addr[..4].to_vec()));
    }
    assert_eq!(seen[0].0, [203, 0, 113, 10]);
    assert_eq!(seen[0].0, seen[1].0, "one customer gateway address");
    assert_ne!(seen[0].1, seen[1].1, "two AWS endpoints");
    // SAFETY: live handle; valid or NULL out pointers, as each case says.
    unsafe {
        assert_eq!(
            vpn_config_tunnel_outside_addresses(cfg.0, 2, &mut local, &mut remote),
            VPN_ERR_UNKNOWN_TUNNEL
        );
        assert_eq!(
            vpn_config_tunnel_outside_addresses(cfg.0, 0, null_mut(), &mut remote),
            VPN_ERR_NULL_ARGUMENT
        );
        assert_eq!(
            vpn_config_tunnel_outside_addresses(null(), 0, &mut local, &mut remote),
            VPN_ERR_NULL_ARGUMENT
        );
    }
}
