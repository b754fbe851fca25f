//! The configuration importers on arbitrary text. Byte 0 (mod 4) picks:
//! 0 `ConnectionConfig::from_toml`, 1 `from_json`, 2 `from_aws_xml`,
//! 3 `merge_aws_tunnel_options` over the AWS XML fixture's config.
//! Never a panic; whatever parses also validates (or not) without panicking,
//! and native configs survive `to_toml`/`to_json` and parsing back unchanged.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use vpn_core::config::ConnectionConfig;

const AWS_XML: &str =
    include_str!("../../vpn-core/tests/fixtures/config/aws-vpn-connection-bgp.xml");

fn base() -> &'static ConnectionConfig {
    static BASE: OnceLock<ConnectionConfig> = OnceLock::new();
    BASE.get_or_init(|| ConnectionConfig::from_aws_xml(AWS_XML).expect("fixture parses"))
}

fn round_trips(c: &ConnectionConfig) {
    let _ = c.validate();
    let toml = c.to_toml();
    let back = ConnectionConfig::from_toml(&toml).expect("to_toml output parses");
    assert_eq!(&back, c, "TOML round trip changed the config");
    let json = c.to_json();
    let back = ConnectionConfig::from_json(&json).expect("to_json output parses");
    assert_eq!(&back, c, "JSON round trip changed the config");
}

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    match which % 4 {
        0 => {
            if let Ok(c) = ConnectionConfig::from_toml(text) {
                round_trips(&c);
            }
        }
        1 => {
            if let Ok(c) = ConnectionConfig::from_json(text) {
                round_trips(&c);
            }
        }
        2 => {
            if let Ok(c) = ConnectionConfig::from_aws_xml(text) {
                let _ = c.validate();
            }
        }
        _ => {
            let mut c = base().clone();
            if c.merge_aws_tunnel_options(text).is_ok() {
                let _ = c.validate();
            }
        }
    }
});
