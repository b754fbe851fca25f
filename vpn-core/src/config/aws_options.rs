//! Overlay of AWS's `TunnelOptions` (from `DescribeVpnConnections`) onto a config.

use serde::Deserialize;
use serde_json::Value;

use super::proposal::{aws_encryption, aws_integrity, esp_proposal, ike_proposal};
use super::{
    check_size, json_error, ConfigError, ConnectionConfig, DpdAction, Prefix, Role, Secret,
    StartupAction,
};
use crate::crypto::DhGroup;
use crate::esp::{EncryptionAlgorithm, IntegrityAlgorithm};

/// `{ "Value": ... }`, AWS's wrapper for list items.
#[derive(Deserialize)]
struct Item<T> {
    #[serde(rename = "Value")]
    value: T,
}

/// One element of `Options.TunnelOptions` (AWS's `TunnelOption`). Unknown keys
/// (`LogOptions`, `EnableTunnelLifecycleControl`, ...) are ignored.
#[derive(Deserialize)]
struct TunnelOption {
    #[serde(rename = "OutsideIpAddress")]
    outside_ip_address: Option<String>,
    #[serde(rename = "TunnelInsideCidr")]
    tunnel_inside_cidr: Option<String>,
    #[serde(rename = "PreSharedKey")]
    pre_shared_key: Option<Secret>,
    #[serde(rename = "Phase1LifetimeSeconds")]
    phase1_lifetime_seconds: Option<u32>,
    #[serde(rename = "Phase2LifetimeSeconds")]
    phase2_lifetime_seconds: Option<u32>,
    #[serde(rename = "RekeyMarginTimeSeconds")]
    rekey_margin_time_seconds: Option<u32>,
    #[serde(rename = "RekeyFuzzPercentage")]
    rekey_fuzz_percentage: Option<u32>,
    #[serde(rename = "ReplayWindowSize")]
    replay_window_size: Option<u32>,
    #[serde(rename = "DpdTimeoutSeconds")]
    dpd_timeout_seconds: Option<u32>,
    #[serde(rename = "DpdTimeoutAction")]
    dpd_timeout_action: Option<String>,
    #[serde(rename = "StartupAction")]
    startup_action: Option<String>,
    #[serde(rename = "Phase1EncryptionAlgorithms", default)]
    phase1_encryption: Vec<Item<String>>,
    #[serde(rename = "Phase2EncryptionAlgorithms", default)]
    phase2_encryption: Vec<Item<String>>,
    #[serde(rename = "Phase1IntegrityAlgorithms", default)]
    phase1_integrity: Vec<Item<String>>,
    #[serde(rename = "Phase2IntegrityAlgorithms", default)]
    phase2_integrity: Vec<Item<String>>,
    #[serde(rename = "Phase1DHGroupNumbers", default)]
    phase1_dh: Vec<Item<u16>>,
    #[serde(rename = "Phase2DHGroupNumbers", default)]
    phase2_dh: Vec<Item<u16>>,
    #[serde(rename = "IkeVersions", default)]
    ike_versions: Vec<Item<String>>,
}

/// Preference when AWS permits several: AWS answers with the *lowest* value the
/// initiator offers, so the generated proposals offer exactly one of each.
const ENCRYPTION_PREFERENCE: [EncryptionAlgorithm; 4] = [
    EncryptionAlgorithm::Aes256Gcm16,
    EncryptionAlgorithm::Aes128Gcm16,
    EncryptionAlgorithm::Aes256Cbc,
    EncryptionAlgorithm::Aes128Cbc,
];
const INTEGRITY_PREFERENCE: [IntegrityAlgorithm; 4] = [
    IntegrityAlgorithm::HmacSha256_128,
    IntegrityAlgorithm::HmacSha384_192,
    IntegrityAlgorithm::HmacSha512_256,
    IntegrityAlgorithm::HmacSha1_96,
];
/// DH groups by preference (ECP first: fast and strong); AWS's 17, 18, 22-24 are not
/// implemented by vpn-core and so never chosen.
const DH_PREFERENCE: [u16; 8] = [19, 20, 21, 14, 15, 16, 5, 2];

fn pick<T: Copy + PartialEq>(
    field: &str,
    permitted: Vec<T>,
    preference: &[T],
) -> Result<Option<T>, ConfigError> {
    if permitted.is_empty() {
        return Ok(None);
    }
    preference
        .iter()
        .copied()
        .find(|p| permitted.contains(p))
        .map(Some)
        .ok_or_else(|| {
            ConfigError::invalid(
                field,
                "none of the permitted values is supported by vpn-core",
            )
        })
}

fn names<T>(
    field: &str,
    items: &[Item<String>],
    map: impl Fn(&str) -> Option<T>,
) -> Result<Vec<T>, ConfigError> {
    items
        .iter()
        .enumerate()
        .map(|(k, item)| {
            map(&item.value).ok_or_else(|| {
                ConfigError::invalid(
                    format!("{field}[{k}].Value"),
                    format!("unknown value '{}'", item.value),
                )
            })
        })
        .collect()
}

impl ConnectionConfig {
    /// Overlays the `TunnelOptions` of AWS's `DescribeVpnConnections` response: the
    /// array itself, an object holding it as `TunnelOptions` or `Options.TunnelOptions`,
    /// or a whole response (`VpnConnections[0].Options.TunnelOptions`).
    ///
    /// Each option is matched to a tunnel by `OutsideIpAddress` (AWS's end: the remote
    /// outside address for a customer gateway). Present fields replace the tunnel's
    /// values. The algorithm lists are the sets AWS *permits*; a non-empty list
    /// replaces the proposals with one tight proposal built from the preferred member
    /// of each set (GCM over CBC, SHA-256 first, ECP-256 first among DH groups), since
    /// AWS answers with the lowest-numbered option offered. `IkeVersions` picks IKEv2
    /// when permitted. Nothing is validated here: call [`ConnectionConfig::validate`].
    pub fn merge_aws_tunnel_options(&mut self, json: &str) -> Result<(), ConfigError> {
        check_size(json.len())?;
        let value: Value = serde_json::from_str(json).map_err(|e| json_error(&e))?;
        let array = locate(value).ok_or_else(|| ConfigError::missing("TunnelOptions"))?;
        let options: Vec<TunnelOption> =
            serde_json::from_value(array).map_err(|e| json_error(&e))?;
        for (i, option) in options.into_iter().enumerate() {
            self.merge_one(i, option)?;
        }
        Ok(())
    }

    fn merge_one(&mut self, i: usize, o: TunnelOption) -> Result<(), ConfigError> {
        let f = |name: &str| format!("TunnelOptions[{i}].{name}");
        let outside = o
            .outside_ip_address
            .as_deref()
            .ok_or_else(|| ConfigError::missing(f("OutsideIpAddress")))?;
        let outside: std::net::IpAddr = outside.trim().parse().map_err(|_| {
            ConfigError::invalid(
                f("OutsideIpAddress"),
                format!("'{outside}' is not an IP address"),
            )
        })?;
        let role = self.role;
        let tunnel = self
            .tunnels
            .iter_mut()
            .find(|t| match role {
                Role::Cgw => t.remote_outside_address == outside,
                Role::Vgw => t.local_outside_address == outside,
            })
            .ok_or_else(|| {
                ConfigError::invalid(
                    f("OutsideIpAddress"),
                    format!("{outside} is not the AWS outside address of either tunnel"),
                )
            })?;

        if let Some(cidr) = &o.tunnel_inside_cidr {
            tunnel.inside_cidr = cidr.parse::<Prefix>().map_err(|e| {
                ConfigError::invalid(f("TunnelInsideCidr"), format!("'{cidr}': {e}"))
            })?;
        }
        if let Some(psk) = o.pre_shared_key {
            tunnel.psk = psk;
        }
        if let Some(v) = o.phase1_lifetime_seconds {
            tunnel.ike_lifetime = v;
        }
        if let Some(v) = o.phase2_lifetime_seconds {
            tunnel.child_lifetime = v;
        }
        if let Some(v) = o.rekey_margin_time_seconds {
            tunnel.rekey_margin = v;
        }
        if let Some(v) = o.rekey_fuzz_percentage {
            tunnel.rekey_fuzz_percent = u8::try_from(v).map_err(|_| {
                ConfigError::invalid(f("RekeyFuzzPercentage"), format!("{v} is above 100"))
            })?;
        }
        if let Some(v) = o.replay_window_size {
            tunnel.replay_window = v;
        }
        if let Some(v) = o.dpd_timeout_seconds {
            tunnel.dpd.timeout = v;
        }
        if let Some(a) = &o.dpd_timeout_action {
            tunnel.dpd.action = match a.to_ascii_lowercase().as_str() {
                "clear" => DpdAction::Clear,
                "restart" => DpdAction::Restart,
                "none" => DpdAction::None,
                _ => {
                    return Err(ConfigError::invalid(
                        f("DpdTimeoutAction"),
                        format!("'{a}' is not clear, restart or none"),
                    ))
                }
            };
        }
        if let Some(a) = &o.startup_action {
            tunnel.startup_action = match a.to_ascii_lowercase().as_str() {
                "add" => StartupAction::Add,
                "start" => StartupAction::Start,
                _ => {
                    return Err(ConfigError::invalid(
                        f("StartupAction"),
                        format!("'{a}' is not add or start"),
                    ))
                }
            };
        }
        if !o.ike_versions.is_empty() {
            let versions = names(&f("IkeVersions"), &o.ike_versions, |v| {
                match v.to_ascii_lowercase().as_str() {
                    "ikev1" => Some(1u8),
                    "ikev2" => Some(2u8),
                    _ => None,
                }
            })?;
            tunnel.ike_version = if versions.contains(&2) { 2 } else { 1 };
        }

        // Phase 1: one IKE proposal from the preferred permitted members.
        let p1_enc = names(
            &f("Phase1EncryptionAlgorithms"),
            &o.phase1_encryption,
            aws_encryption,
        )?;
        let p1_integ = names(
            &f("Phase1IntegrityAlgorithms"),
            &o.phase1_integrity,
            aws_integrity,
        )?;
        let p1_dh: Vec<u16> = o.phase1_dh.iter().map(|g| g.value).collect();
        if !(p1_enc.is_empty() && p1_integ.is_empty() && p1_dh.is_empty()) {
            let enc_pref: Vec<_> = ENCRYPTION_PREFERENCE
                .into_iter()
                .filter(|e| tunnel.ike_version == 2 || !e.is_aead())
                .collect();
            let enc =
                pick(&f("Phase1EncryptionAlgorithms"), p1_enc, &enc_pref)?.unwrap_or(enc_pref[0]);
            let integ = pick(
                &f("Phase1IntegrityAlgorithms"),
                p1_integ,
                &INTEGRITY_PREFERENCE,
            )?
            .unwrap_or(INTEGRITY_PREFERENCE[0]);
            let dh = pick(&f("Phase1DHGroupNumbers"), p1_dh, &DH_PREFERENCE)?
                .and_then(DhGroup::from_id)
                .unwrap_or(DhGroup::Ecp256);
            tunnel.ike_proposals = vec![ike_proposal(enc, integ, dh)];
        }

        // Phase 2: one ESP proposal; a permitted DH group becomes the PFS group.
        let p2_enc = names(
            &f("Phase2EncryptionAlgorithms"),
            &o.phase2_encryption,
            aws_encryption,
        )?;
        let p2_integ = names(
            &f("Phase2IntegrityAlgorithms"),
            &o.phase2_integrity,
            aws_integrity,
        )?;
        let p2_dh: Vec<u16> = o.phase2_dh.iter().map(|g| g.value).collect();
        if !(p2_enc.is_empty() && p2_integ.is_empty() && p2_dh.is_empty()) {
            let enc = pick(
                &f("Phase2EncryptionAlgorithms"),
                p2_enc,
                &ENCRYPTION_PREFERENCE,
            )?
            .unwrap_or(ENCRYPTION_PREFERENCE[0]);
            let integ = pick(
                &f("Phase2IntegrityAlgorithms"),
                p2_integ,
                &INTEGRITY_PREFERENCE,
            )?
            .unwrap_or(INTEGRITY_PREFERENCE[0]);
            let pfs = pick(&f("Phase2DHGroupNumbers"), p2_dh, &DH_PREFERENCE)?
                .and_then(DhGroup::from_id)
                .or(Some(DhGroup::Ecp256));
            tunnel.esp_proposals = vec![esp_proposal(enc, integ, pfs)];
        }
        Ok(())
    }
}

/// Finds the TunnelOptions array in the accepted shapes.
fn locate(value: Value) -> Option<Value> {
    match value {
        Value::Array(_) => Some(value),
        Value::Object(mut map) => {
            if let Some(v) = map.remove("TunnelOptions") {
                return Some(v);
            }
            if let Some(options) = map.remove("Options") {
                return locate(options);
            }
            if let Some(Value::Array(mut conns)) = map.remove("VpnConnections") {
                if conns.len() == 1 {
                    return locate(conns.remove(0));
                }
            }
            None
        }
        _ => None,
    }
}
