//! A VPN connection's configuration (`vpn_config`): load it from TOML, JSON
//! or AWS's `CustomerGatewayConfiguration` XML, overlay AWS's
//! `TunnelOptions`, validate it, and export it (native formats, a strongSwan
//! `swanctl.conf` and a BIRD 2 config for the other end, a readable summary).
//!
//! Everything here forwards to `vpn_core::config::ConnectionConfig`; the
//! binding only converts arguments and reports errors.
//!
//! Error details: every `vpn_config_*` call first clears this thread's *last
//! error*; a call that fails because of the configuration (or, for
//! `vpn_config_from_file`, the file) records one or more errors there, each a
//! message and, where it has one, the field it is about (`tunnels[1].psk`).
//! Read them with `vpn_last_error_count`, `vpn_last_error_message`,
//! `vpn_last_error_field` and their `_at` variants. Argument errors (NULL
//! pointers, a buffer too small) are not recorded. Messages never contain a
//! pre-shared key.

use core::cell::RefCell;
use core::ffi::{c_char, CStr};
use core::sync::atomic::{compiler_fence, Ordering};
use std::net::SocketAddr;

use vpn_core::config::{ConfigError, ConnectionConfig};

use crate::connection::vpn_socket_addr;
use crate::result::vpn_result::{self, *};
use crate::result::{guard, guard_value, in_slice, non_null, write_c_str};

/// A configuration document's format: one of the `VPN_CONFIG_*` constants.
pub type vpn_config_format = u32;

/// The native TOML format (`examples/connection.toml` documents every key).
pub const VPN_CONFIG_TOML: vpn_config_format = 1;
/// The native JSON format (the same keys as TOML).
pub const VPN_CONFIG_JSON: vpn_config_format = 2;
/// AWS's `CustomerGatewayConfiguration` XML document of a VPN connection
/// (input only).
pub const VPN_CONFIG_AWS_XML: vpn_config_format = 3;

/// A VPN connection's configuration: two tunnels, routing and failover.
/// Create with `vpn_config_from_str` or `vpn_config_from_file`, release with
/// `vpn_config_free`.
pub struct vpn_config {
    config: ConnectionConfig,
}

/// One recorded error.
struct LastError {
    field: Option<String>,
    message: String,
}

thread_local! {
    static LAST_ERROR: RefCell<Vec<LastError>> = const { RefCell::new(Vec::new()) };
}

fn clear_last_error() {
    LAST_ERROR.with(|e| e.borrow_mut().clear());
}

fn record(errors: Vec<LastError>) {
    LAST_ERROR.with(|e| *e.borrow_mut() = errors);
}

fn entry(e: &ConfigError) -> LastError {
    LastError {
        field: e.field().map(str::to_owned),
        message: e.to_string(),
    }
}

/// The result code of a core error.
fn code(e: &ConfigError) -> vpn_result {
    match e {
        ConfigError::Invalid { .. } | ConfigError::Missing { .. } => VPN_ERR_INVALID_CONFIG,
        ConfigError::Syntax { .. } => VPN_ERR_CONFIG_SYNTAX,
        ConfigError::TooLarge { .. } => VPN_ERR_INVALID_ARGUMENT,
        // A variant added to the core later is still a configuration error.
        #[allow(unreachable_patterns)]
        _ => VPN_ERR_INVALID_CONFIG,
    }
}

/// Records a core error and returns its code.
fn fail(e: ConfigError) -> vpn_result {
    let c = code(&e);
    record(vec![entry(&e)]);
    c
}

/// Records an error that is not the core's (no field) and returns `code`.
fn fail_with(code: vpn_result, message: String) -> vpn_result {
    record(vec![LastError {
        field: None,
        message,
    }]);
    code
}

/// Runs a `vpn_config_*` entry point behind the panic boundary, after
/// clearing this thread's last error.
fn config_guard(f: impl FnOnce() -> Result<(), vpn_result>) -> vpn_result {
    guard(|| {
        clear_last_error();
        f()
    })
}

/// A string that may hold pre-shared keys: its bytes are wiped on drop.
struct Sensitive(String);

impl Drop for Sensitive {
    fn drop(&mut self) {
        // SAFETY: only zero bytes are written, and a run of NULs is valid
        // UTF-8, so the `String` stays well-formed.
        wipe(unsafe { self.0.as_bytes_mut() });
    }
}

/// Overwrites `bytes` with zeros in a way the compiler does not elide.
fn wipe(bytes: &mut [u8]) {
    for b in bytes.iter_mut() {
        // SAFETY: `b` is a valid, exclusive reference to a byte; the
        // volatile write keeps the compiler from eliding the wipe.
        unsafe { core::ptr::write_volatile(b, 0) };
    }
    compiler_fence(Ordering::SeqCst);
}

fn parse(format: vpn_config_format, text: &str) -> Result<ConnectionConfig, vpn_result> {
    let parsed = match format {
        VPN_CONFIG_TOML => ConnectionConfig::from_toml(text),
        VPN_CONFIG_JSON => ConnectionConfig::from_json(text),
        VPN_CONFIG_AWS_XML => ConnectionConfig::from_aws_xml(text),
        other => {
            return Err(fail_with(
                VPN_ERR_INVALID_ARGUMENT,
                format!("unknown configuration format {other}"),
            ))
        }
    };
    parsed.map_err(fail)
}

/// Borrows a UTF-8 text argument; `(NULL, 0)` is the empty string.
///
/// # Safety
///
/// Unless `len` is 0, `ptr` is NULL or valid for `len` bytes of reads.
unsafe fn text_arg<'a>(ptr: *const c_char, len: usize) -> Result<&'a str, vpn_result> {
    // SAFETY: per the caller's contract.
    let bytes = unsafe { in_slice(ptr.cast(), len) }?;
    core::str::from_utf8(bytes).map_err(|e| {
        fail_with(
            VPN_ERR_INVALID_ARGUMENT,
            format!(
                "text is not UTF-8 (invalid byte at offset {})",
                e.valid_up_to()
            ),
        )
    })
}

/// Writes a new handle to `*out`.
///
/// # Safety
///
/// `out` is non-NULL and valid for a write.
unsafe fn give(config: ConnectionConfig, out: *mut *mut vpn_config) {
    let handle = Box::into_raw(Box::new(vpn_config { config }));
    // SAFETY: per the caller's contract.
    unsafe { out.write(handle) };
}

/// Borrows the configuration behind a handle for a getter.
///
/// # Safety
///
/// `cfg` is NULL or a live handle not mutated concurrently.
unsafe fn cfg_ref<'a>(cfg: *const vpn_config) -> Result<&'a ConnectionConfig, vpn_result> {
    // SAFETY: per the caller's contract a non-NULL `cfg` came from
    // `Box::into_raw` in `give` and is live.
    unsafe { cfg.as_ref() }
        .map(|h| &h.config)
        .ok_or(VPN_ERR_NULL_ARGUMENT)
}

/// Borrows the configuration behind a handle for a mutating call.
///
/// # Safety
///
/// `cfg` is NULL or a live handle not used concurrently.
unsafe fn cfg_mut<'a>(cfg: *mut vpn_config) -> Result<&'a mut ConnectionConfig, vpn_result> {
    // SAFETY: per the caller's contract a non-NULL `cfg` came from
    // `Box::into_raw` in `give`, is live and is not aliased.
    unsafe { cfg.as_mut() }
        .map(|h| &mut h.config)
        .ok_or(VPN_ERR_NULL_ARGUMENT)
}

/// Parses a configuration document of `len` bytes (no NUL needed) in the
/// given format. Only syntax and types are checked: call
/// `vpn_config_validate` next.
///
/// On success writes a new handle to `*out`; free it with `vpn_config_free`.
/// Errors (details in `vpn_last_error_message`): `VPN_ERR_CONFIG_SYNTAX`
/// (not well-formed, unknown key, wrong type), `VPN_ERR_INVALID_CONFIG` (a
/// value or element that cannot be used or is missing, e.g. in AWS's XML),
/// `VPN_ERR_INVALID_ARGUMENT` (unknown format, text not UTF-8, more than
/// 1 MiB), `VPN_ERR_NULL_ARGUMENT`.
///
/// # Safety
///
/// `text` is NULL with `len` 0 or valid for `len` bytes of reads; `out` is
/// valid for a write.
#[no_mangle]
pub unsafe extern "C" fn vpn_config_from_str(
    format: vpn_config_format,
    text: *const c_char,
    len: usize,
    out: *mut *mut vpn_config,
) -> vpn_result {
    config_guard(|| {
        non_null(out)?;
        // SAFETY: per the contract.
        let text = unsafe { text_arg(text, len) }?;
        let config = parse(format, text)?;
        // SAFETY: `out` is non-NULL and valid for a write per the contract.
        unsafe { give(config, out) };
        Ok(())
    })
}

/// Reads the file at the NUL-terminated `path` and parses it as
/// `vpn_config_from_str` does.
///
/// Errors: as `vpn_config_from_str`, plus `VPN_ERR_IO` when the file cannot
/// be read (the message names the path and the operating system's reason).
/// The bytes read are wiped from memory after parsing.
///
/// # Safety
///
/// `path` is a NUL-terminated string; `out` is valid for a write.
#[no_mangle]
pub unsafe extern "C" fn vpn_config_from_file(
    format: vpn_config_format,
    path: *const c_char,
    out: *mut *mut vpn_config,
) -> vpn_result {
    config_guard(|| {
        non_null(out)?;
        non_null(path)?;
        // SAFETY: non-NULL and NUL-terminated per the contract.
        let path = unsafe { CStr::from_ptr(path) };
        let path = file_path(path)?;
        let bytes = std::fs::read(path)
            .map_err(|e| fail_with(VPN_ERR_IO, format!("cannot read '{}': {e}", path.display())))?;
        let text = match String::from_utf8(bytes) {
            Ok(text) => Sensitive(text),
            Err(e) => {
                let at = e.utf8_error().valid_up_to();
                wipe(&mut e.into_bytes());
                return Err(fail_with(
                    VPN_ERR_INVALID_ARGUMENT,
                    format!(
                        "'{}' is not UTF-8 (invalid byte at offset {at})",
                        path.display()
                    ),
                ));
            }
        };
        let config = parse(format, &text.0)?;
        // SAFETY: `out` is non-NULL and valid for a write per the contract.
        unsafe { give(config, out) };
        Ok(())
    })
}

#[cfg(unix)]
fn file_path(path: &CStr) -> Result<&std::path::Path, vpn_result> {
    use std::os::unix::ffi::OsStrExt;
    Ok(std::path::Path::new(std::ffi::OsStr::from_bytes(
        path.to_bytes(),
    )))
}

#[cfg(not(unix))]
fn file_path(path: &CStr) -> Result<&std::path::Path, vpn_result> {
    path.to_str()
        .map(std::path::Path::new)
        .map_err(|_| fail_with(VPN_ERR_INVALID_ARGUMENT, "path is not UTF-8".to_owned()))
}

/// Frees a configuration and wipes its pre-shared keys. NULL is ignored.
///
/// # Safety
///
/// `cfg` is NULL or a handle from `vpn_config_from_*` that is not used again.
#[no_mangle]
pub unsafe extern "C" fn vpn_config_free(cfg: *mut vpn_config) {
    guard_value((), || {
        if !cfg.is_null() {
            // SAFETY: a non-NULL `cfg` came from `Box::into_raw` in `give` and
            // is freed only once per the contract.
            drop(unsafe { Box::from_raw(cfg) });
        }
    })
}

/// Overlays the `TunnelOptions` of AWS's `DescribeVpnConnections` response
/// (`json` of `len` bytes: a whole response, an object holding
/// `TunnelOptions` or `Options.TunnelOptions`, or the array itself). Options
/// are matched to tunnels by AWS's outside address. Nothing is validated:
/// call `vpn_config_validate` afterwards.
///
/// All or nothing: on error the configuration is unchanged. Errors:
/// `VPN_ERR_CONFIG_SYNTAX`, `VPN_ERR_INVALID_CONFIG` (no `TunnelOptions`, an
/// unknown value, an outside address that matches no tunnel),
/// `VPN_ERR_INVALID_ARGUMENT`, `VPN_ERR_NULL_ARGUMENT`.
///
/// # Safety
///
/// `cfg` is a live handle; `json` is NULL with `len` 0 or valid for `len`
/// bytes of reads.
#[no_mangle]
pub unsafe extern "C" fn vpn_config_merge_aws_tunnel_options(
    cfg: *mut vpn_config,
    json: *const c_char,
    len: usize,
) -> vpn_result {
    config_guard(|| {
        // SAFETY: per the contract.
        let config = unsafe { cfg_mut(cfg) }?;
        // SAFETY: per the contract.
        let json = unsafe { text_arg(json, len) }?;
        let mut merged = config.clone();
        merged.merge_aws_tunnel_options(json).map_err(fail)?;
        *config = merged;
        Ok(())
    })
}

/// Checks every rule (AWS's where AWS has one). Returns `VPN_OK`, or
/// `VPN_ERR_INVALID_CONFIG` having recorded *every* problem found:
/// `vpn_last_error_count` says how many, `vpn_last_error_message_at` and
/// `vpn_last_error_field_at` describe each (`tunnels[0].psk`, ...).
///
/// # Safety
///
/// `cfg` is a live handle.
#[no_mangle]
pub unsafe extern "C" fn vpn_config_validate(cfg: *const vpn_config) -> vpn_result {
    config_guard(|| {
        // SAFETY: per the contract.
        let config = unsafe { cfg_ref(cfg) }?;
        config.validate().map_err(|errors| {
            record(errors.iter().map(entry).collect());
            VPN_ERR_INVALID_CONFIG
        })
    })
}

/// Serializes the configuration to `VPN_CONFIG_TOML` or `VPN_CONFIG_JSON`
/// (`VPN_CONFIG_AWS_XML` is input only: `VPN_ERR_INVALID_ARGUMENT`).
/// **The output contains the pre-shared keys**: it is a loadable file.
///
/// On success writes the NUL-terminated text to `buf` and its length,
/// without the NUL, to `*out_n`. If `len` is too small, writes nothing to
/// `buf`, writes the size needed (NUL included) to `*out_n` and returns
/// `VPN_ERR_BUFFER_TOO_SMALL` (`buf = NULL, len = 0` asks for the size).
///
/// # Safety
///
/// `cfg` is a live handle; `buf` is NULL with `len` 0 or valid for `len`
/// bytes of writes; `out_n` is valid for a write.
#[no_mangle]
pub unsafe extern "C" fn vpn_config_to_string(
    cfg: *const vpn_config,
    format: vpn_config_format,
    buf: *mut c_char,
    len: usize,
    out_n: *mut usize,
) -> vpn_result {
    config_guard(|| {
        non_null(out_n)?;
        // SAFETY: per the contract.
        let config = unsafe { cfg_ref(cfg) }?;
        let text = Sensitive(match format {
            VPN_CONFIG_TOML => config.to_toml(),
            VPN_CONFIG_JSON => config.to_json(),
            VPN_CONFIG_AWS_XML => {
                return Err(fail_with(
                    VPN_ERR_INVALID_ARGUMENT,
                    "the AWS XML format can be read but not written".to_owned(),
                ))
            }
            other => {
                return Err(fail_with(
                    VPN_ERR_INVALID_ARGUMENT,
                    format!("unknown configuration format {other}"),
                ))
            }
        });
        // SAFETY: `buf`/`len` and `out_n` are valid per the contract.
        unsafe { write_c_str(&text.0, buf.cast(), len, out_n) }
    })
}

/// Writes a strongSwan `swanctl.conf` for the *other* end of both tunnels
/// (AWS's end when this is a customer gateway's configuration), with a
/// `secrets` section: **the output contains the pre-shared keys**.
/// Buffer conventions as `vpn_config_to_string`.
///
/// # Safety
///
/// As `vpn_config_to_string`.
#[no_mangle]
pub unsafe extern "C" fn vpn_config_to_swanctl(
    cfg: *const vpn_config,
    buf: *mut c_char,
    len: usize,
    out_n: *mut usize,
) -> vpn_result {
    config_guard(|| {
        non_null(out_n)?;
        // SAFETY: per the contract.
        let config = unsafe { cfg_ref(cfg) }?;
        let text = Sensitive(config.to_swanctl_conf());
        // SAFETY: `buf`/`len` and `out_n` are valid per the contract.
        unsafe { write_c_str(&text.0, buf.cast(), len, out_n) }
    })
}

/// Writes a BIRD 2 configuration for the other end's BGP sessions over both
/// tunnels. With static routing there is no BGP: the call succeeds with an
/// **empty string** (`*out_n` = 0, `buf[0]` = NUL; `len` must be at least 1).
/// Buffer conventions as `vpn_config_to_string`.
///
/// # Safety
///
/// As `vpn_config_to_string`.
#[no_mangle]
pub unsafe extern "C" fn vpn_config_to_bird(
    cfg: *const vpn_config,
    buf: *mut c_char,
    len: usize,
    out_n: *mut usize,
) -> vpn_result {
    config_guard(|| {
        non_null(out_n)?;
        // SAFETY: per the contract.
        let config = unsafe { cfg_ref(cfg) }?;
        let text = config.to_bird_conf().unwrap_or_default();
        // SAFETY: `buf`/`len` and `out_n` are valid per the contract.
        unsafe { write_c_str(&text, buf.cast(), len, out_n) }
    })
}

/// Writes a readable description (like AWS's "Generic" download): per tunnel
/// the addresses, proposals, lifetimes, DPD and BGP settings. Pre-shared keys
/// print as `<redacted>` unless `show_secrets` is true.
/// Buffer conventions as `vpn_config_to_string`.
///
/// # Safety
///
/// As `vpn_config_to_string`.
#[no_mangle]
pub unsafe extern "C" fn vpn_config_summary(
    cfg: *const vpn_config,
    show_secrets: bool,
    buf: *mut c_char,
    len: usize,
    out_n: *mut usize,
) -> vpn_result {
    config_guard(|| {
        non_null(out_n)?;
        // SAFETY: per the contract.
        let config = unsafe { cfg_ref(cfg) }?;
        let text = Sensitive(config.summary(show_secrets));
        // SAFETY: `buf`/`len` and `out_n` are valid per the contract.
        unsafe { write_c_str(&text.0, buf.cast(), len, out_n) }
    })
}

/// Writes the configuration's name (NUL-terminated). Buffer conventions as
/// `vpn_config_to_string`.
///
/// # Safety
///
/// As `vpn_config_to_string`.
#[no_mangle]
pub unsafe extern "C" fn vpn_config_name(
    cfg: *const vpn_config,
    buf: *mut c_char,
    len: usize,
    out_n: *mut usize,
) -> vpn_result {
    config_guard(|| {
        non_null(out_n)?;
        // SAFETY: per the contract.
        let config = unsafe { cfg_ref(cfg) }?;
        // SAFETY: `buf`/`len` and `out_n` are valid per the contract.
        unsafe { write_c_str(&config.name, buf.cast(), len, out_n) }
    })
}

/// The tunnels' inner MTU in bytes (what a TUN device in front of the
/// connection should use), or 0 when `cfg` is NULL.
///
/// # Safety
///
/// `cfg` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn vpn_config_mtu(cfg: *const vpn_config) -> u16 {
    guard_value(0, || {
        // SAFETY: per the contract.
        unsafe { cfg_ref(cfg) }.map_or(0, |c| c.mtu)
    })
}

/// Writes tunnel `tunnel`'s (0 or 1) outside addresses: ours to `*local`
/// (the address to bind UDP ports 500 and 4500 on) and the peer's to
/// `*remote`. Both have `port` 0: IKE starts on 500 and NAT-T moves to 4500.
/// `VPN_ERR_UNKNOWN_TUNNEL` for an index past the last tunnel.
///
/// # Safety
///
/// `cfg` is a live handle; `local` and `remote` valid for writes.
#[no_mangle]
pub unsafe extern "C" fn vpn_config_tunnel_outside_addresses(
    cfg: *const vpn_config,
    tunnel: u32,
    local: *mut vpn_socket_addr,
    remote: *mut vpn_socket_addr,
) -> vpn_result {
    config_guard(|| {
        non_null(local)?;
        non_null(remote)?;
        // SAFETY: per the contract.
        let config = unsafe { cfg_ref(cfg) }?;
        let t = config
            .tunnels
            .get(tunnel as usize)
            .ok_or(VPN_ERR_UNKNOWN_TUNNEL)?;
        // SAFETY: both are non-NULL and valid for writes per the contract.
        unsafe {
            local.write(SocketAddr::new(t.local_outside_address, 0).into());
            remote.write(SocketAddr::new(t.remote_outside_address, 0).into());
        }
        Ok(())
    })
}

/// How many errors the last failed `vpn_config_*` call on this thread
/// recorded: 0 after a successful call (or none yet), 1 for most failures,
/// one per problem after `vpn_config_validate`.
#[no_mangle]
pub extern "C" fn vpn_last_error_count() -> usize {
    guard_value(0, || LAST_ERROR.with(|e| e.borrow().len()))
}

/// Copies `text` out, with the usual buffer conventions.
///
/// # Safety
///
/// `buf` is NULL with `len` 0 or valid for `len` bytes of writes; `out_n` is
/// valid for a write.
unsafe fn write_text(
    text: &str,
    buf: *mut c_char,
    len: usize,
    out_n: *mut usize,
) -> Result<(), vpn_result> {
    // SAFETY: per the caller's contract.
    unsafe { write_c_str(text, buf.cast(), len, out_n) }
}

/// Writes the messages of every error recorded by the last failed
/// `vpn_config_*` call on this thread, one per line (no final newline), each
/// starting with its field where it has one
/// (`tunnels[0].psk: must be 8 to 64 characters ...`), or "no error".
///
/// On success writes the length, without the NUL, to `*out_n`. If `len` is
/// too small, writes nothing to `buf`, writes the size needed (NUL included)
/// to `*out_n` and returns `VPN_ERR_BUFFER_TOO_SMALL`. Never contains a
/// pre-shared key.
///
/// # Safety
///
/// `buf` is NULL with `len` 0 or valid for `len` bytes of writes; `out_n` is
/// valid for a write.
#[no_mangle]
pub unsafe extern "C" fn vpn_last_error_message(
    buf: *mut c_char,
    len: usize,
    out_n: *mut usize,
) -> vpn_result {
    guard(|| {
        let text = LAST_ERROR.with(|e| {
            let e = e.borrow();
            if e.is_empty() {
                "no error".to_owned()
            } else {
                e.iter()
                    .map(|e| e.message.as_str())
                    .collect::<Vec<_>>()
                    .join("\n")
            }
        });
        // SAFETY: per the contract.
        unsafe { write_text(&text, buf, len, out_n) }
    })
}

/// Writes the field (or element path) the first recorded error is about
/// (`tunnels[1].inside_cidr`, `vpn_connection/ipsec_tunnel[0]/ike/lifetime`),
/// or an empty string when there is no error or it has no field (a syntax
/// error, an unreadable file). Buffer conventions as `vpn_last_error_message`.
///
/// # Safety
///
/// As `vpn_last_error_message`.
#[no_mangle]
pub unsafe extern "C" fn vpn_last_error_field(
    buf: *mut c_char,
    len: usize,
    out_n: *mut usize,
) -> vpn_result {
    guard(|| {
        let text = LAST_ERROR.with(|e| {
            e.borrow()
                .first()
                .and_then(|e| e.field.clone())
                .unwrap_or_default()
        });
        // SAFETY: per the contract.
        unsafe { write_text(&text, buf, len, out_n) }
    })
}

/// Writes the message of recorded error `index` (0 to
/// `vpn_last_error_count() - 1`); `VPN_ERR_INVALID_ARGUMENT` for any other
/// index. Buffer conventions as `vpn_last_error_message`.
///
/// # Safety
///
/// As `vpn_last_error_message`.
#[no_mangle]
pub unsafe extern "C" fn vpn_last_error_message_at(
    index: usize,
    buf: *mut c_char,
    len: usize,
    out_n: *mut usize,
) -> vpn_result {
    guard(|| {
        let text = LAST_ERROR
            .with(|e| e.borrow().get(index).map(|e| e.message.clone()))
            .ok_or(VPN_ERR_INVALID_ARGUMENT)?;
        // SAFETY: per the contract.
        unsafe { write_text(&text, buf, len, out_n) }
    })
}

/// Writes the field of recorded error `index` (empty if it has none);
/// `VPN_ERR_INVALID_ARGUMENT` for an index past `vpn_last_error_count()`.
/// Buffer conventions as `vpn_last_error_message`.
///
/// # Safety
///
/// As `vpn_last_error_message`.
#[no_mangle]
pub unsafe extern "C" fn vpn_last_error_field_at(
    index: usize,
    buf: *mut c_char,
    len: usize,
    out_n: *mut usize,
) -> vpn_result {
    guard(|| {
        let text = LAST_ERROR
            .with(|e| e.borrow().get(index).map(|e| e.field.clone()))
            .ok_or(VPN_ERR_INVALID_ARGUMENT)?
            .unwrap_or_default();
        // SAFETY: per the contract.
        unsafe { write_text(&text, buf, len, out_n) }
    })
}
