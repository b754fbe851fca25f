//! `vpn.Config`: a VPN connection's configuration, forwarded to
//! `vpn_core::config::ConnectionConfig`. The binding converts arguments,
//! reads files and maps `ConfigError`s onto `vpn.ConfigError` (with `.field`
//! and `.errors`); every rule and format lives in vpn-core.

use std::path::PathBuf;

use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString};
use vpn_core::config::{ConfigError, ConnectionConfig, Role, Routing};
use zeroize::Zeroizing;

use crate::{exceptions, raise, with_attrs};

/// What pre-shared keys are replaced with in `to_dict()`.
const REDACTED: &str = "<redacted>";

/// (field, message) of one core error. The message is the `Display` text
/// without the leading `field: `; errors without a field get `None`.
fn error_pair(e: &ConfigError) -> (Option<String>, String) {
    match e {
        ConfigError::Invalid { field, message } => (Some(field.clone()), message.clone()),
        ConfigError::Missing { path } => (Some(path.clone()), "missing".to_owned()),
        other => (other.field().map(str::to_owned), other.to_string()),
    }
}

/// A `vpn.ConfigError` for one or more core errors: the message lists them
/// all (one per line), `.field` is the first one's field and `.errors` the
/// list of `(field, message)`. Core messages never contain a pre-shared key.
pub(crate) fn config_errors(py: Python<'_>, errors: &[ConfigError]) -> PyErr {
    let ex = match exceptions(py) {
        Ok(ex) => ex,
        Err(e) => return e,
    };
    let msg = errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n");
    let pairs: Vec<(Option<String>, String)> = errors.iter().map(error_pair).collect();
    let field = pairs.first().and_then(|(f, _)| f.clone());
    plain_error(py, raise(py, &ex.config, msg), field, pairs)
}

/// A `vpn.ConfigError` without a field (the binding's own, or an ESP SA's).
pub(crate) fn binding_error(py: Python<'_>, msg: String) -> PyErr {
    let ex = match exceptions(py) {
        Ok(ex) => ex,
        Err(e) => return e,
    };
    let pairs = vec![(None, msg.clone())];
    plain_error(py, raise(py, &ex.config, msg), None, pairs)
}

fn plain_error(
    py: Python<'_>,
    err: PyErr,
    field: Option<String>,
    pairs: Vec<(Option<String>, String)>,
) -> PyErr {
    let field = field
        .into_pyobject(py)
        .map_or_else(|_| py.None(), |v| v.into_any().unbind());
    let errors = pairs
        .into_pyobject(py)
        .map_or_else(|_| py.None(), |v| v.into_any().unbind());
    with_attrs(py, err, &[("field", field), ("errors", errors)])
}

/// A text argument: `str` or UTF-8 `bytes`. Anything unusable (a `str` with
/// lone surrogates, bytes that are not UTF-8) is a `vpn.ConfigError`; other
/// types are a `TypeError`. The copy is wiped when dropped.
fn text_arg(obj: &Bound<'_, PyAny>) -> PyResult<Zeroizing<String>> {
    let py = obj.py();
    if let Ok(s) = obj.downcast::<PyString>() {
        return s
            .to_cow()
            .map(|s| Zeroizing::new(s.into_owned()))
            .map_err(|_| binding_error(py, "text is not valid Unicode (lone surrogate)".into()));
    }
    if let Ok(b) = obj.downcast::<PyBytes>() {
        return utf8(py, b.as_bytes().to_vec());
    }
    Err(PyTypeError::new_err(format!(
        "expected str or bytes, got {}",
        obj.get_type()
            .name()
            .map_or_else(|_| "?".to_owned(), |n| n.to_string())
    )))
}

fn utf8(py: Python<'_>, bytes: Vec<u8>) -> PyResult<Zeroizing<String>> {
    match String::from_utf8(bytes) {
        Ok(s) => Ok(Zeroizing::new(s)),
        Err(e) => {
            let at = e.utf8_error().valid_up_to();
            drop(Zeroizing::new(e.into_bytes()));
            Err(binding_error(
                py,
                format!("text is not UTF-8 (invalid byte at offset {at})"),
            ))
        }
    }
}

/// Parses outside the GIL (the text is owned, the parser pure Rust).
fn parse(
    py: Python<'_>,
    text: Zeroizing<String>,
    parser: fn(&str) -> Result<ConnectionConfig, ConfigError>,
) -> PyResult<Config> {
    py.allow_threads(|| parser(&text))
        .map(|config| Config { config })
        .map_err(|e| config_errors(py, &[e]))
}

fn role_keyword(role: Role) -> &'static str {
    match role {
        Role::Cgw => "cgw",
        Role::Vgw => "vgw",
    }
}

/// A VPN connection's configuration: two redundant tunnels, static or BGP
/// routing, failover. Load it with a `from_*` constructor, check it with
/// `validate()`. Pre-shared keys appear only in `to_toml()`, `to_json()`,
/// `to_swanctl()`, `summary(show_secrets=True)` and
/// `to_dict(show_secrets=True)`; never in errors or the repr.
#[pyclass(module = "vpn", name = "Config", eq)]
#[derive(Clone, PartialEq)]
pub struct Config {
    config: ConnectionConfig,
}

#[pymethods]
impl Config {
    /// Parses the native TOML format (see examples/connection.toml). Only the
    /// syntax and types are checked: call `validate()` next.
    #[staticmethod]
    fn from_toml(py: Python<'_>, text: &Bound<'_, PyAny>) -> PyResult<Config> {
        parse(py, text_arg(text)?, ConnectionConfig::from_toml)
    }

    /// Parses the native JSON format (the same keys as TOML).
    #[staticmethod]
    fn from_json(py: Python<'_>, text: &Bound<'_, PyAny>) -> PyResult<Config> {
        parse(py, text_arg(text)?, ConnectionConfig::from_json)
    }

    /// Imports AWS's CustomerGatewayConfiguration XML of a VPN connection.
    #[staticmethod]
    fn from_aws_xml(py: Python<'_>, text: &Bound<'_, PyAny>) -> PyResult<Config> {
        parse(py, text_arg(text)?, ConnectionConfig::from_aws_xml)
    }

    /// Reads a file and parses it by its extension: `.toml`, `.json` or
    /// `.xml` (AWS). An unreadable file raises `OSError`.
    #[staticmethod]
    fn from_file(py: Python<'_>, path: PathBuf) -> PyResult<Config> {
        let extension = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        let parser: fn(&str) -> Result<ConnectionConfig, ConfigError> = match extension.as_deref() {
            Some("toml") => ConnectionConfig::from_toml,
            Some("json") => ConnectionConfig::from_json,
            Some("xml") => ConnectionConfig::from_aws_xml,
            _ => {
                return Err(binding_error(
                    py,
                    format!(
                        "cannot tell the format of '{}': use a .toml, .json or .xml file",
                        path.display()
                    ),
                ))
            }
        };
        let bytes = py.allow_threads(|| std::fs::read(&path))?;
        parse(py, utf8(py, bytes)?, parser)
    }

    /// Overlays the TunnelOptions of AWS's DescribeVpnConnections response
    /// (a whole response, an object holding TunnelOptions or
    /// Options.TunnelOptions, or the array). All or nothing: on error the
    /// configuration is unchanged. Not validated: call `validate()` next.
    fn merge_aws_tunnel_options(
        &mut self,
        py: Python<'_>,
        json: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        let json = text_arg(json)?;
        let mut merged = self.config.clone();
        py.allow_threads(|| merged.merge_aws_tunnel_options(&json))
            .map_err(|e| config_errors(py, &[e]))?;
        self.config = merged;
        Ok(())
    }

    /// Checks every rule; raises `vpn.ConfigError` listing all problems
    /// (`.errors` is a list of `(field, message)`, `.field` the first field).
    fn validate(&self, py: Python<'_>) -> PyResult<()> {
        self.config
            .validate()
            .map_err(|errors| config_errors(py, &errors))
    }

    /// The native TOML text. Contains the pre-shared keys.
    fn to_toml(&self) -> String {
        self.config.to_toml()
    }

    /// The native JSON text. Contains the pre-shared keys.
    fn to_json(&self) -> String {
        self.config.to_json()
    }

    /// A strongSwan swanctl.conf for the other end of both tunnels (with a
    /// `secrets` section: contains the pre-shared keys).
    fn to_swanctl(&self) -> String {
        self.config.to_swanctl_conf()
    }

    /// A BIRD 2 config for the other end's BGP sessions, or None with static
    /// routing.
    fn to_bird(&self) -> Option<String> {
        self.config.to_bird_conf()
    }

    /// A readable description; keys print as `<redacted>` unless
    /// `show_secrets`.
    #[pyo3(signature = (show_secrets=false))]
    fn summary(&self, show_secrets: bool) -> String {
        self.config.summary(show_secrets)
    }

    /// The configuration as plain Python data (the JSON format's shape).
    /// Each tunnel's `psk` is `"<redacted>"` unless `show_secrets`.
    #[pyo3(signature = (show_secrets=false))]
    fn to_dict<'py>(&self, py: Python<'py>, show_secrets: bool) -> PyResult<Bound<'py, PyAny>> {
        let json = Zeroizing::new(self.config.to_json());
        let value = py.import("json")?.call_method1("loads", (json.as_str(),))?;
        if !show_secrets {
            let tunnels = value.get_item("tunnels")?;
            for tunnel in tunnels.downcast::<PyList>()?.iter() {
                tunnel.downcast::<PyDict>()?.set_item("psk", REDACTED)?;
            }
        }
        Ok(value)
    }

    /// The connection's name.
    #[getter]
    fn name(&self) -> &str {
        &self.config.name
    }

    /// Which end this is: `"cgw"` or `"vgw"`.
    #[getter]
    fn role(&self) -> &'static str {
        role_keyword(self.config.role)
    }

    /// `"static"` or `"bgp"`.
    #[getter]
    fn routing(&self) -> &'static str {
        match self.config.routing {
            Routing::Static { .. } => "static",
            Routing::Bgp { .. } => "bgp",
        }
    }

    /// This end's ASN with BGP routing, else None.
    #[getter]
    fn local_asn(&self) -> Option<u32> {
        match self.config.routing {
            Routing::Bgp { local_asn, .. } => Some(local_asn),
            Routing::Static { .. } => None,
        }
    }

    /// The other end's ASN with BGP routing, else None.
    #[getter]
    fn peer_asn(&self) -> Option<u32> {
        match self.config.routing {
            Routing::Bgp { peer_asn, .. } => Some(peer_asn),
            Routing::Static { .. } => None,
        }
    }

    /// Per tunnel, `(local, remote)` outside (public) addresses.
    #[getter]
    fn outside_addresses(&self) -> Vec<(String, String)> {
        self.config
            .tunnels
            .iter()
            .map(|t| {
                (
                    t.local_outside_address.to_string(),
                    t.remote_outside_address.to_string(),
                )
            })
            .collect()
    }

    /// Per tunnel, the inside /30 (`"169.254.44.40/30"`).
    #[getter]
    fn inside_cidrs(&self) -> Vec<String> {
        self.config
            .tunnels
            .iter()
            .map(|t| t.inside_cidr.to_string())
            .collect()
    }

    fn __repr__(&self) -> String {
        let remotes: Vec<String> = self
            .config
            .tunnels
            .iter()
            .map(|t| format!("'{}'", t.remote_outside_address))
            .collect();
        format!(
            "Config(name={:?}, role='{}', routing='{}', remote_outside_addresses=[{}])",
            self.config.name,
            role_keyword(self.config.role),
            self.routing(),
            remotes.join(", ")
        )
    }
}
