//! INFORMATIONAL (DELETE, liveness) and CREATE_CHILD_SA (child SA and IKE
//! SA rekeys and their collisions, RFC 7296 §2.8), for both roles.

use super::*;

impl Ikev2Session {
    // -----------------------------------------------------------------
    // INFORMATIONAL
    // -----------------------------------------------------------------

    pub(super) fn handle_informational(
        &mut self,
        now: Timestamp,
        which: Which,
        p: &[Payload],
        entropy: &mut dyn Entropy,
    ) -> Vec<Payload> {
        let mut out = Vec::new();
        let mut deleted_esp = Vec::new();
        for d in p.deletes() {
            match d.protocol {
                ProtocolId::IKE => {
                    if which == Which::Old {
                        // Dropped once the (empty) answer is sealed.
                        self.old_deleted = true;
                    } else if let Some(theirs) = self.collided_ike.take() {
                        // Colliding IKE rekeys: the peer's won and it
                        // deletes the old SA before our exchange ended.
                        self.switch_ike(now, theirs, entropy);
                        self.old_deleted = true;
                    } else {
                        self.pending_failure = Some(DownReason::PeerDeleted);
                    }
                    return Vec::new();
                }
                ProtocolId::ESP => {
                    for spi in d.spis_u32().unwrap_or_default() {
                        if let Some(pos) = self.children.iter().position(|c| c.outbound_spi == spi)
                        {
                            let c = self.children.remove(pos);
                            deleted_esp.push(c.inbound_spi);
                            self.events.push_back(SessionEvent::ChildDeleted {
                                inbound_spi: c.inbound_spi,
                            });
                        }
                    }
                }
                _ => {}
            }
        }
        if !deleted_esp.is_empty() {
            out.push(Payload::Delete(DeletePayload::esp(&deleted_esp)));
        }
        out
    }

    // -----------------------------------------------------------------
    // CREATE_CHILD_SA
    // -----------------------------------------------------------------

    /// Deletes the child SA with this inbound SPI (INFORMATIONAL DELETE).
    pub fn delete_child(&mut self, now: Timestamp, inbound_spi: u32, entropy: &mut dyn Entropy) {
        if self.children.iter().any(|c| c.inbound_spi == inbound_spi) {
            self.queue_delete_unknown(inbound_spi);
            self.continue_work(now, entropy);
        }
    }

    /// Rekeys the child SA with this inbound SPI (lifetime or a soft limit).
    pub fn rekey_child(&mut self, now: Timestamp, inbound_spi: u32, entropy: &mut dyn Entropy) {
        let Some(child) = self
            .children
            .iter()
            .find(|c| c.inbound_spi == inbound_spi)
            .cloned()
        else {
            return;
        };
        if child.rekeyed || child.rekeying {
            return;
        }
        let busy = self
            .ike
            .as_ref()
            .is_none_or(|sa| !sa.established || sa.request.is_some());
        if busy {
            if !self
                .child_rekey_retry
                .iter()
                .any(|(s, _)| *s == inbound_spi)
            {
                self.child_rekey_retry
                    .push((inbound_spi, now + Duration::from_secs(1)));
            }
            return;
        }
        let pfs = self
            .settings
            .esp_proposals
            .first()
            .and_then(|p| p.dh.first().copied());
        let dh = match pfs.map(|g| g.generate(entropy)) {
            Some(Ok(k)) => Some(k),
            Some(Err(_)) => return,
            None => None,
        };
        let new_inbound = random_esp_spi(entropy);
        let ni = nonce(entropy);
        let mut payloads = vec![Payload::Notify(NotifyPayload::with_spi(
            ProtocolId::ESP,
            inbound_spi.to_be_bytes().to_vec(),
            NotifyType::REKEY_SA,
            Vec::new(),
        ))];
        payloads.push(self.esp_offer(new_inbound, dh.is_some()));
        payloads.push(Payload::Nonce(ni.clone()));
        if let Some(k) = &dh {
            payloads.push(Payload::Ke(KePayload {
                group: k.group().id(),
                data: k.public_value().to_vec(),
            }));
        }
        payloads.push(Payload::TsI(ts::to_payload(&child.local_ts)));
        payloads.push(Payload::TsR(ts::to_payload(&child.remote_ts)));
        let sent = self.send_request(
            now,
            ExchangeType::CREATE_CHILD_SA,
            &payloads,
            Pending::RekeyChild {
                old_inbound: inbound_spi,
                new_inbound,
                ni,
                dh,
            },
            entropy,
        );
        if sent {
            if let Some(c) = self
                .children
                .iter_mut()
                .find(|c| c.inbound_spi == inbound_spi)
            {
                c.rekeying = true;
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn handle_rekey_child_response(
        &mut self,
        now: Timestamp,
        old_inbound: u32,
        new_inbound: u32,
        ni: Vec<u8>,
        dh: Option<KeyPair>,
        p: Vec<Payload>,
        entropy: &mut dyn Entropy,
    ) {
        let Some(pos) = self
            .children
            .iter()
            .position(|c| c.inbound_spi == old_inbound)
        else {
            // Deleted meanwhile (a DELETE crossed our rekey): if the peer
            // created the new SA anyway, delete it again.
            if p.sa().is_some() && error_notify(&p).is_none() {
                self.queue_delete_unknown(new_inbound);
            }
            return;
        };
        self.children[pos].rekeying = false;
        if p.find_notify(NotifyType::TEMPORARY_FAILURE).is_some() {
            let delay = Duration::from_millis(2000 + entropy.next_u64() % 4000);
            self.child_rekey_retry.push((old_inbound, now + delay));
            return;
        }
        if error_notify(&p).is_some() {
            // CHILD_SA_NOT_FOUND, NO_PROPOSAL_CHOSEN, ...: keep the old SA
            // until it expires; the peer may rekey it.
            return;
        }
        let (Some(sa_p), Some(nr), Some(tsi), Some(tsr)) =
            (p.sa(), valid_nonce(p.nonce()), p.ts_i(), p.ts_r())
        else {
            return;
        };
        let Ok(esp) = accept_esp_reply(&self.settings.esp_proposals, &sa_p.proposals, false) else {
            return;
        };
        let g_ir = match (&dh, p.ke(), esp.dh) {
            (Some(k), Some(ke), Some(g)) if ke.group == g.id() && k.group() == g => {
                match k.shared_secret(&ke.data) {
                    Ok(s) => Some(s),
                    Err(_) => return,
                }
            }
            (_, _, None) => None,
            _ => return,
        };
        // Collision (RFC 7296 §2.8.1): the peer rekeyed the same child. The
        // exchange with the lowest nonce made the redundant SA; its
        // initiator deletes it.
        if let Some((_, peer_min)) = self.children[pos].peer_rekey.clone() {
            let our_min = if ni < nr { ni.clone() } else { nr.clone() };
            if our_min < peer_min {
                // Ours is redundant: never install it, ask the peer to drop its half.
                self.children[pos].rekeyed = true;
                self.queue_delete_unknown(new_inbound);
                return;
            }
        }
        let local_ts = ts::ranges(tsi);
        let remote_ts = ts::ranges(tsr);
        match self.install_child(
            esp,
            new_inbound,
            true,
            g_ir.as_ref().map(|s| s.as_bytes()),
            &ni,
            &nr,
            local_ts,
            remote_ts,
            Some(old_inbound),
            entropy,
        ) {
            Ok(_) => {
                self.status.child_rekeys += 1;
                if let Some(c) = self
                    .children
                    .iter_mut()
                    .find(|c| c.inbound_spi == old_inbound)
                {
                    c.rekeyed = true;
                }
                self.queue_delete_unknown(old_inbound);
            }
            Err(e) => self.fail(e),
        }
    }

    /// Queues an INFORMATIONAL DELETE for our inbound SPI (sent when the window frees).
    pub(super) fn queue_delete_unknown(&mut self, inbound_spi: u32) {
        if !self.delete_queue.contains(&inbound_spi) {
            self.delete_queue.push(inbound_spi);
        }
    }

    pub(super) fn handle_create_child_request(
        &mut self,
        now: Timestamp,
        p: &[Payload],
        entropy: &mut dyn Entropy,
    ) -> Vec<Payload> {
        let rekey = p
            .notifies()
            .into_iter()
            .find(|n| n.notify_type == NotifyType::REKEY_SA)
            .cloned();
        match rekey {
            Some(n) if n.protocol == ProtocolId::ESP => {
                let Ok(spi) = <[u8; 4]>::try_from(&n.spi[..]).map(u32::from_be_bytes) else {
                    return vec![notify(NotifyType::INVALID_SYNTAX)];
                };
                self.handle_rekey_child_request(now, spi, p, entropy)
            }
            Some(_) => vec![notify(NotifyType::INVALID_SYNTAX)],
            None if p
                .sa()
                .and_then(|s| s.proposals.first())
                .is_some_and(|pr| pr.protocol == ProtocolId::IKE) =>
            {
                self.handle_rekey_ike_request(now, p, entropy)
            }
            // One child SA pair per tunnel.
            None => vec![notify(NotifyType::NO_ADDITIONAL_SAS)],
        }
    }

    pub(super) fn handle_rekey_child_request(
        &mut self,
        _now: Timestamp,
        peer_spi: u32,
        p: &[Payload],
        entropy: &mut dyn Entropy,
    ) -> Vec<Payload> {
        let ike_rekeying = self
            .ike
            .as_ref()
            .and_then(|s| s.request.as_ref())
            .is_some_and(|r| matches!(r.pending, Pending::RekeyIke { .. }));
        if ike_rekeying {
            return vec![notify(NotifyType::TEMPORARY_FAILURE)];
        }
        let Some(pos) = self
            .children
            .iter()
            .position(|c| c.outbound_spi == peer_spi && !c.rekeyed)
        else {
            return vec![Payload::Notify(NotifyPayload::with_spi(
                ProtocolId::ESP,
                peer_spi.to_be_bytes().to_vec(),
                NotifyType::CHILD_SA_NOT_FOUND,
                Vec::new(),
            ))];
        };
        if self.delete_queue.contains(&self.children[pos].inbound_spi) {
            return vec![notify(NotifyType::TEMPORARY_FAILURE)];
        }
        let (Some(sa_p), Some(ni)) = (p.sa(), valid_nonce(p.nonce())) else {
            return vec![notify(NotifyType::INVALID_SYNTAX)];
        };
        let Some(esp) = select_esp(&self.settings.esp_proposals, &sa_p.proposals, false) else {
            return vec![notify(NotifyType::NO_PROPOSAL_CHOSEN)];
        };
        let (ke_out, g_ir) = match esp.dh {
            Some(g) => {
                let Some(ke) = p.ke().filter(|k| k.group == g.id()) else {
                    return vec![Payload::Notify(NotifyPayload::new(
                        NotifyType::INVALID_KE_PAYLOAD,
                        g.id().to_be_bytes().to_vec(),
                    ))];
                };
                let Ok(k) = g.generate(entropy) else {
                    return vec![notify(NotifyType::NO_PROPOSAL_CHOSEN)];
                };
                let Ok(s) = k.shared_secret(&ke.data) else {
                    return vec![notify(NotifyType::INVALID_SYNTAX)];
                };
                (
                    Some(KePayload {
                        group: g.id(),
                        data: k.public_value().to_vec(),
                    }),
                    Some(s),
                )
            }
            None => (None, None),
        };
        let child = self.children[pos].clone();
        let tsi = p.ts_i().map(|t| ts::narrow(t, &child.remote_ts));
        let tsr = p.ts_r().map(|t| ts::narrow(t, &child.local_ts));
        let (Some(tsi), Some(tsr)) = (tsi, tsr) else {
            return vec![notify(NotifyType::TS_UNACCEPTABLE)];
        };
        if tsi.is_empty() || tsr.is_empty() {
            return vec![notify(NotifyType::TS_UNACCEPTABLE)];
        }
        let nr = nonce(entropy);
        let new_spi = random_esp_spi(entropy);
        if let Err(e) = self.install_child(
            esp.clone(),
            new_spi,
            false,
            g_ir.as_ref().map(|s| s.as_bytes()),
            &ni,
            &nr,
            tsr.clone(),
            tsi.clone(),
            Some(child.inbound_spi),
            entropy,
        ) {
            self.pending_failure = Some(e);
            return vec![notify(NotifyType::NO_PROPOSAL_CHOSEN)];
        }
        self.status.child_rekeys += 1;
        if let Some(c) = self.children.get_mut(pos) {
            if c.rekeying {
                let min = if ni < nr { ni.clone() } else { nr.clone() };
                c.peer_rekey = Some((new_spi, min));
            } else {
                c.rekeyed = true;
            }
        }
        let mut out = vec![
            Payload::Sa(SaPayload {
                proposals: vec![esp.to_wire(new_spi)],
            }),
            Payload::Nonce(nr),
        ];
        if let Some(ke) = ke_out {
            out.push(Payload::Ke(ke));
        }
        out.push(Payload::TsI(ts::to_payload(&tsi)));
        out.push(Payload::TsR(ts::to_payload(&tsr)));
        out
    }

    // -----------------------------------------------------------------
    // IKE SA rekey
    // -----------------------------------------------------------------

    /// Rekeys the IKE SA (lifetime, or on request).
    pub fn rekey_ike(&mut self, now: Timestamp, entropy: &mut dyn Entropy) {
        let Some(sa) = self.ike.as_ref() else {
            return;
        };
        let busy = !sa.established
            || sa.request.is_some()
            || self.old_ike.is_some()
            || self.children.iter().any(|c| c.rekeying);
        if busy {
            self.ike_rekey_retry = Some(now + Duration::from_secs(1));
            return;
        }
        let Some(keys) = sa.keys.as_ref() else {
            return;
        };
        let Ok(dh) = keys.neg.dh.generate(entropy) else {
            return;
        };
        let new_spi = random_spi64(entropy);
        let ni = nonce(entropy);
        let proposals = self
            .settings
            .ike_proposals
            .iter()
            .enumerate()
            .map(|(n, p)| p.to_wire((n + 1).min(255) as u8, &new_spi.to_be_bytes()))
            .collect();
        let payloads = [
            Payload::Sa(SaPayload { proposals }),
            Payload::Nonce(ni.clone()),
            Payload::Ke(KePayload {
                group: dh.group().id(),
                data: dh.public_value().to_vec(),
            }),
        ];
        self.send_request(
            now,
            ExchangeType::CREATE_CHILD_SA,
            &payloads,
            Pending::RekeyIke { new_spi, ni, dh },
            entropy,
        );
    }

    pub(super) fn handle_rekey_ike_request(
        &mut self,
        now: Timestamp,
        p: &[Payload],
        entropy: &mut dyn Entropy,
    ) -> Vec<Payload> {
        let pending = self
            .ike
            .as_ref()
            .and_then(|s| s.request.as_ref())
            .map(|r| &r.pending);
        // Both ends rekeying the IKE SA at once (RFC 7296 §2.8.2): answer as
        // usual and let the nonces pick the survivor when ours completes.
        let colliding = matches!(pending, Some(Pending::RekeyIke { .. }));
        let busy = self.old_ike.is_some()
            || self.collided_ike.is_some()
            || self.children.iter().any(|c| c.rekeying)
            || (pending.is_some() && !colliding);
        if busy {
            return vec![notify(NotifyType::TEMPORARY_FAILURE)];
        }
        let (Some(sa_p), Some(ni), Some(ke)) = (p.sa(), valid_nonce(p.nonce()), p.ke()) else {
            return vec![notify(NotifyType::INVALID_SYNTAX)];
        };
        let Some(neg) = select_ike(&self.settings.ike_proposals, &sa_p.proposals) else {
            return vec![notify(NotifyType::NO_PROPOSAL_CHOSEN)];
        };
        let Ok(peer_spi) = <[u8; 8]>::try_from(&neg.spi[..]).map(u64::from_be_bytes) else {
            return vec![notify(NotifyType::INVALID_SYNTAX)];
        };
        if ke.group != neg.dh.id() {
            return vec![Payload::Notify(NotifyPayload::new(
                NotifyType::INVALID_KE_PAYLOAD,
                neg.dh.id().to_be_bytes().to_vec(),
            ))];
        }
        let Ok(dh) = neg.dh.generate(entropy) else {
            return vec![notify(NotifyType::NO_PROPOSAL_CHOSEN)];
        };
        let Ok(shared) = dh.shared_secret(&ke.data) else {
            return vec![notify(NotifyType::INVALID_SYNTAX)];
        };
        let our_spi = random_spi64(entropy);
        let mut new = IkeSa::new(peer_spi, our_spi, false);
        new.ni = ni;
        new.nr = nonce(entropy);
        let Some(old_keys) = self.ike.as_ref().and_then(|s| s.keys.as_ref()) else {
            return vec![notify(NotifyType::TEMPORARY_FAILURE)];
        };
        let Some(keys) = derive_keys(
            neg.clone(),
            &shared,
            &new,
            Some((old_keys.neg.prf, &old_keys.sk_d)),
        ) else {
            return vec![notify(NotifyType::NO_PROPOSAL_CHOSEN)];
        };
        new.keys = Some(keys);
        let out = vec![
            Payload::Sa(SaPayload {
                proposals: vec![neg.to_wire(&our_spi.to_be_bytes())],
            }),
            Payload::Nonce(new.nr.clone()),
            Payload::Ke(KePayload {
                group: neg.dh.id(),
                data: dh.public_value().to_vec(),
            }),
        ];
        if colliding {
            self.collided_ike = Some(new);
        } else {
            self.switch_ike(now, new, entropy);
        }
        out
    }

    pub(super) fn switch_ike(&mut self, now: Timestamp, new: IkeSa, entropy: &mut dyn Entropy) {
        let (spi_i, spi_r) = (new.spi_i, new.spi_r);
        let old = self.ike.replace(new);
        self.ike_established(now, entropy);
        // `ike_established` announced the new SA; this rekey event replaces it.
        if let Some(SessionEvent::IkeEstablished { .. }) = self.events.back() {
            self.events.pop_back();
        }
        if let Some(old) = old {
            self.events.push_back(SessionEvent::IkeRekeyed {
                old_spi_i: old.spi_i,
                old_spi_r: old.spi_r,
                spi_i,
                spi_r,
            });
            self.old_ike = Some(old);
        }
        self.status.ike_rekeys += 1;
    }

    pub(super) fn handle_rekey_ike_response(
        &mut self,
        now: Timestamp,
        new_spi: u64,
        ni: Vec<u8>,
        dh: KeyPair,
        p: Vec<Payload>,
        entropy: &mut dyn Entropy,
    ) {
        if p.find_notify(NotifyType::TEMPORARY_FAILURE).is_some() {
            self.ike_rekey_retry =
                Some(now + Duration::from_millis(2000 + entropy.next_u64() % 4000));
            return;
        }
        if error_notify(&p).is_some() {
            return;
        }
        let (Some(sa_p), Some(nr), Some(ke)) = (p.sa(), valid_nonce(p.nonce()), p.ke()) else {
            return;
        };
        let Ok(neg) = accept_ike_reply(&self.settings.ike_proposals, &sa_p.proposals) else {
            return;
        };
        let Ok(peer_spi) = <[u8; 8]>::try_from(&neg.spi[..]).map(u64::from_be_bytes) else {
            return;
        };
        if ke.group != dh.group().id() || neg.dh != dh.group() {
            return;
        }
        let Ok(shared) = dh.shared_secret(&ke.data) else {
            return;
        };
        let mut new = IkeSa::new(new_spi, peer_spi, true);
        new.ni = ni;
        new.nr = nr;
        let Some(old_keys) = self.ike.as_ref().and_then(|s| s.keys.as_ref()) else {
            return;
        };
        let Some(keys) = derive_keys(neg, &shared, &new, Some((old_keys.neg.prf, &old_keys.sk_d)))
        else {
            return;
        };
        new.keys = Some(keys);
        if let Some(theirs) = self.collided_ike.take() {
            // RFC 7296 §2.8.2: the rekey whose exchange has the lowest nonce
            // made the redundant SA, and its initiator deletes it; the other
            // initiator deletes the old SA.
            let min = |sa: &IkeSa| core::cmp::min(sa.ni.clone(), sa.nr.clone());
            if min(&new) < min(&theirs) {
                if let Some(bytes) = new.seal(
                    ExchangeType::INFORMATIONAL,
                    false,
                    0,
                    &[Payload::Delete(DeletePayload::ike())],
                    entropy,
                ) {
                    self.transmits.push_back(Outgoing {
                        bytes,
                        nat_t: self.nat_t,
                        to: None,
                    });
                }
                self.switch_ike(now, theirs, entropy);
                return;
            }
        }
        self.switch_ike(now, new, entropy);
        // Delete the old IKE SA on the old SA.
        let nat_t = self.nat_t;
        let wait = self.settings.retransmit.wait(0);
        if let Some(old) = self.old_ike.as_mut() {
            let id = old.next_msg_id;
            if let Some(bytes) = old.seal(
                ExchangeType::INFORMATIONAL,
                false,
                id,
                &[Payload::Delete(DeletePayload::ike())],
                entropy,
            ) {
                old.next_msg_id = id.wrapping_add(1);
                self.transmits.push_back(Outgoing {
                    bytes: bytes.clone(),
                    nat_t,
                    to: None,
                });
                old.request = Some(Request {
                    msg_id: id,
                    bytes,
                    nat_t,
                    sends: 1,
                    next_at: now + wait,
                    give_up_at: None,
                    pending: Pending::DeleteIke,
                });
            }
        }
    }
}
