//! The committed C header must be what cbindgen generates from the current
//! sources: a stale `include/vpn.h` fails `cargo test`.
//!
//! The header is generated with the cbindgen library (pinned to the same
//! version as the CLI) and the same `cbindgen.toml`, so this test and
//!
//! ```text
//! cbindgen --config vpn-ffi/cbindgen.toml --crate vpn-ffi --output include/vpn.h vpn-ffi
//! ```
//!
//! produce identical bytes. Set `VPN_UPDATE_HEADER=1` to rewrite the header
//! instead of failing.

use std::path::Path;

#[test]
fn header_is_fresh() {
    let crate_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let header_path = crate_dir.join("../include/vpn.h");
    let config = cbindgen::Config::from_file(crate_dir.join("cbindgen.toml"))
        .expect("vpn-ffi/cbindgen.toml is readable and valid");
    let bindings = cbindgen::Builder::new()
        .with_crate(crate_dir)
        .with_config(config)
        .generate()
        .expect("cbindgen generates bindings for vpn-ffi");
    let mut generated = Vec::new();
    bindings.write(&mut generated);

    if std::env::var_os("VPN_UPDATE_HEADER").is_some() {
        std::fs::write(&header_path, &generated).expect("include/vpn.h is writable");
        return;
    }
    let committed = std::fs::read(&header_path).unwrap_or_default();
    if committed != generated {
        let committed = String::from_utf8_lossy(&committed);
        let generated = String::from_utf8_lossy(&generated);
        let first_difference = committed
            .lines()
            .zip(generated.lines())
            .enumerate()
            .find(|(_, (a, b))| a != b)
            .map_or_else(
                || "one file is a prefix of the other".to_owned(),
                |(i, (a, b))| format!("line {}:\n  committed: {a}\n  generated: {b}", i + 1),
            );
        panic!(
            "include/vpn.h is stale: it differs from what cbindgen generates from vpn-ffi \
             ({first_difference}).\nRegenerate it from the workspace root with\n  \
             cbindgen --config vpn-ffi/cbindgen.toml --crate vpn-ffi --output include/vpn.h vpn-ffi\n\
             or run `VPN_UPDATE_HEADER=1 cargo test -p vpn-ffi --test header`."
        );
    }
}
