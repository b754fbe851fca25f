//! A child SA: the outbound and inbound ESP SAs of one negotiation, and the
//! traffic selectors that say which inner packets they may carry.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::{manual_keys, DropReason, ManualSa, Received};
use crate::config::Prefix;
use crate::entropy::Entropy;
use crate::esp::{
    EspError, EspEvent, EspKeys, EspSa, EspSaConfig, Framing, InnerProtocol, Lifetimes, Limits,
};
use crate::ike::v1::NegotiatedChildSa;
use crate::ike::v2::ts::{self, Selector};
use crate::ike::v2::ChildParams;
use crate::time::Timestamp;

/// ESP counters of a child SA, both directions.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChildSaMetrics {
    pub outbound: crate::esp::EspCounters,
    pub inbound: crate::esp::EspCounters,
}

pub struct ChildSa {
    outbound: EspSa,
    inbound: EspSa,
    local_traffic: Vec<Selector>,
    remote_traffic: Vec<Selector>,
}

impl ChildSa {
    /// Headroom and tailroom large enough for any supported algorithm.
    pub const MAX_HEADROOM: usize = 8 + 16;
    pub const MAX_TAILROOM: usize = 15 + 2 + 32;

    pub(crate) fn new(
        outbound: &ManualSa,
        inbound: &ManualSa,
        replay_window: u32,
        local_traffic: Vec<Prefix>,
        remote_traffic: Vec<Prefix>,
        now: Timestamp,
        entropy: &mut dyn Entropy,
    ) -> Result<Self, EspError> {
        let config = |sa: &ManualSa| {
            let mut c = EspSaConfig::new(sa.spi, sa.encryption);
            c.integrity = sa.integrity;
            c.esn = sa.esn;
            c.replay_window = replay_window;
            c.framing = Framing::Esp;
            c
        };
        Ok(ChildSa {
            outbound: EspSa::new(&config(outbound), manual_keys(outbound), now, entropy)?,
            inbound: EspSa::new(&config(inbound), manual_keys(inbound), now, entropy)?,
            local_traffic: ts::from_prefixes(&local_traffic),
            remote_traffic: ts::from_prefixes(&remote_traffic),
        })
    }

    /// The two ESP SAs of a child SA negotiated by IKE. `soft` limits ask
    /// for a rekey; the time limits come from `params`.
    pub(crate) fn from_params(
        params: &ChildParams,
        replay_window: u32,
        soft: Limits,
        now: Timestamp,
        entropy: &mut dyn Entropy,
    ) -> Result<Self, EspError> {
        let lifetimes = Lifetimes {
            soft: Limits {
                time: Some(params.soft_time),
                ..soft
            },
            hard: Limits {
                time: Some(params.hard_time),
                ..Limits::default()
            },
        };
        let config = |spi: u32| {
            let mut c = EspSaConfig::new(spi, params.esp.encryption);
            c.integrity = params.esp.integrity;
            c.esn = params.esp.esn;
            c.replay_window = replay_window;
            c.framing = Framing::Esp;
            c.lifetimes = lifetimes;
            c
        };
        let k = &params.keys;
        let (ours, theirs) = (
            EspKeys {
                encryption: &k.encr_i,
                integrity: &k.integ_i,
            },
            EspKeys {
                encryption: &k.encr_r,
                integrity: &k.integ_r,
            },
        );
        let (out_keys, in_keys) = if params.initiator {
            (ours, theirs)
        } else {
            (theirs, ours)
        };
        Ok(ChildSa {
            outbound: EspSa::new(&config(params.outbound_spi), out_keys, now, entropy)?,
            inbound: EspSa::new(&config(params.inbound_spi), in_keys, now, entropy)?,
            local_traffic: params.local_ts.clone(),
            remote_traffic: params.remote_ts.clone(),
        })
    }

    /// The two ESP SAs of a child SA negotiated by IKEv1 Quick Mode: hard
    /// time lifetime as negotiated (the session rekeys before it), selectors
    /// from the proxy IDs.
    pub(crate) fn from_v1(
        child: &NegotiatedChildSa,
        replay_window: u32,
        now: Timestamp,
        entropy: &mut dyn Entropy,
    ) -> Result<Self, EspError> {
        let (inbound, outbound) = child.build_esp_sas(now, replay_window, entropy)?;
        Ok(ChildSa {
            outbound,
            inbound,
            local_traffic: ts::from_prefixes(&[child.local_proxy]),
            remote_traffic: ts::from_prefixes(&[child.remote_proxy]),
        })
    }

    pub fn inbound_spi(&self) -> u32 {
        self.inbound.spi()
    }

    pub fn outbound_spi(&self) -> u32 {
        self.outbound.spi()
    }

    pub fn metrics(&self) -> ChildSaMetrics {
        ChildSaMetrics {
            outbound: *self.outbound.counters(),
            inbound: *self.inbound.counters(),
        }
    }

    pub(crate) fn headroom(&self) -> usize {
        self.outbound.headroom()
    }

    pub(crate) fn tailroom(&self) -> usize {
        self.outbound.tailroom()
    }

    pub(crate) fn is_expired(&self) -> bool {
        self.outbound.is_expired() || self.inbound.is_expired()
    }

    pub(crate) fn seal(
        &mut self,
        now: Timestamp,
        buf: &mut [u8],
        inner_len: usize,
    ) -> Result<usize, EspError> {
        self.outbound.encapsulate_in_place(now, buf, inner_len)
    }

    /// Opens an ESP packet and checks the inner packet against the traffic
    /// selectors (RFC 4301 §5.2: drop what the SA was not negotiated for).
    pub(crate) fn open(&mut self, now: Timestamp, esp: &mut [u8]) -> Received {
        if esp
            .get(..4)
            .map(|s| u32::from_be_bytes([s[0], s[1], s[2], s[3]]))
            != Some(self.inbound.spi())
        {
            return Received::Dropped(DropReason::UnknownSpi);
        }
        match self.inbound.decapsulate_in_place(now, esp) {
            Ok(inner) if inner.protocol == InnerProtocol::Dummy => Received::Control,
            Ok(inner) => {
                let packet = &esp[inner.range()];
                if self.selectors_allow(packet) {
                    Received::Inner {
                        range: inner.range(),
                    }
                } else {
                    Received::Dropped(DropReason::OutsideTrafficSelectors)
                }
            }
            Err(e) => Received::Dropped(DropReason::Esp(e)),
        }
    }

    fn selectors_allow(&self, packet: &[u8]) -> bool {
        let Some((source, destination)) = inner_addresses(packet) else {
            return false;
        };
        self.remote_traffic.iter().any(|s| ts::contains(s, source))
            && self
                .local_traffic
                .iter()
                .any(|s| ts::contains(s, destination))
    }

    pub(crate) fn poll_timeout(&self) -> Option<Timestamp> {
        [self.outbound.poll_timeout(), self.inbound.poll_timeout()]
            .into_iter()
            .flatten()
            .min()
    }

    pub(crate) fn handle_timeout(&mut self, now: Timestamp) {
        self.outbound.handle_timeout(now);
        self.inbound.handle_timeout(now);
    }

    pub(crate) fn poll_event(&mut self) -> Option<EspEvent> {
        self.outbound
            .poll_event()
            .or_else(|| self.inbound.poll_event())
    }
}

/// Source and destination of an IPv4 or IPv6 packet the SA already checked.
fn inner_addresses(packet: &[u8]) -> Option<(IpAddr, IpAddr)> {
    match packet.first()? >> 4 {
        4 if packet.len() >= 20 => {
            let src: [u8; 4] = packet[12..16].try_into().ok()?;
            let dst: [u8; 4] = packet[16..20].try_into().ok()?;
            Some((Ipv4Addr::from(src).into(), Ipv4Addr::from(dst).into()))
        }
        6 if packet.len() >= 40 => {
            let src: [u8; 16] = packet[8..24].try_into().ok()?;
            let dst: [u8; 16] = packet[24..40].try_into().ok()?;
            Some((Ipv6Addr::from(src).into(), Ipv6Addr::from(dst).into()))
        }
        _ => None,
    }
}
