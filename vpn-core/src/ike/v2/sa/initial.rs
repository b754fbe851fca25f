//! The initial exchanges: IKE_SA_INIT (with COOKIE and INVALID_KE_PAYLOAD
//! retries, NAT detection) and IKE_AUTH with PSK and the first child SA,
//! for both roles.

use super::*;

impl Ikev2Session {
    // -----------------------------------------------------------------
    // IKE_SA_INIT, initiator
    // -----------------------------------------------------------------

    /// Starts a new IKE SA as initiator (replacing any state).
    pub fn initiate(&mut self, now: Timestamp, entropy: &mut dyn Entropy) {
        self.reset();
        self.reconnect_at = None;
        self.active = true;
        let Some(group) = self
            .settings
            .ike_proposals
            .first()
            .and_then(|p| p.dh.first().copied())
        else {
            self.fail(DownReason::Internal("no IKE proposal configured"));
            return;
        };
        let Ok(dh) = group.generate(entropy) else {
            self.fail(DownReason::Internal("key exchange failed"));
            return;
        };
        let mut sa = IkeSa::new(random_spi64(entropy), 0, true);
        sa.ni = nonce(entropy);
        sa.next_msg_id = 1;
        self.ike = Some(sa);
        self.send_sa_init(now, dh, None, 0, entropy);
    }

    pub(super) fn send_sa_init(
        &mut self,
        now: Timestamp,
        dh: KeyPair,
        cookie: Option<Vec<u8>>,
        retries: u32,
        entropy: &mut dyn Entropy,
    ) {
        let Some(sa) = self.ike.as_mut() else {
            return;
        };
        let mut payloads = Vec::new();
        if let Some(c) = &cookie {
            payloads.push(Payload::Notify(NotifyPayload::new(
                NotifyType::COOKIE,
                c.clone(),
            )));
        }
        let proposals = self
            .settings
            .ike_proposals
            .iter()
            .enumerate()
            .map(|(n, p)| p.to_wire((n + 1).min(255) as u8, &[]))
            .collect();
        payloads.push(Payload::Sa(SaPayload { proposals }));
        payloads.push(Payload::Ke(KePayload {
            group: dh.group().id(),
            data: dh.public_value().to_vec(),
        }));
        payloads.push(Payload::Nonce(sa.ni.clone()));
        let src = if self.settings.force_encapsulation {
            let mut fake = vec![0u8; 20];
            entropy.fill(&mut fake);
            fake
        } else {
            nat_detection_hash(sa.spi_i, 0, self.local)
        };
        payloads.push(Payload::Notify(NotifyPayload::new(
            NotifyType::NAT_DETECTION_SOURCE_IP,
            src,
        )));
        payloads.push(Payload::Notify(NotifyPayload::new(
            NotifyType::NAT_DETECTION_DESTINATION_IP,
            nat_detection_hash(sa.spi_i, 0, self.remote),
        )));
        let msg = Message {
            header: sa.header(ExchangeType::IKE_SA_INIT, false, 0),
            payloads,
        };
        let Ok(bytes) = msg.encode() else {
            return;
        };
        sa.init_request = bytes.clone();
        self.transmits.push_back(Outgoing {
            bytes: bytes.clone(),
            nat_t: false,
            to: None,
        });
        sa.request = Some(Request {
            msg_id: 0,
            bytes,
            nat_t: false,
            sends: 1,
            next_at: now + self.settings.retransmit.wait(0),
            give_up_at: None,
            pending: Pending::SaInit {
                dh,
                cookie,
                retries,
            },
        });
    }

    pub(super) fn handle_sa_init_response(
        &mut self,
        now: Timestamp,
        bytes: &[u8],
        msg: Message,
        entropy: &mut dyn Entropy,
    ) -> bool {
        let Some(sa) = self.ike.as_mut() else {
            return false;
        };
        let Some(Request {
            pending: Pending::SaInit { .. },
            ..
        }) = &sa.request
        else {
            return false;
        };
        let Some(Request {
            pending:
                Pending::SaInit {
                    dh,
                    cookie: old_cookie,
                    retries,
                },
            ..
        }) = sa.request.take()
        else {
            return false;
        };
        let p = &msg.payloads;
        if let Some(c) = p.find_notify(NotifyType::COOKIE) {
            if retries >= MAX_INIT_RETRIES || c.data.is_empty() || c.data.len() > 64 {
                self.fail(DownReason::PeerError {
                    notify: "COOKIE".into(),
                });
                return true;
            }
            let _ = old_cookie;
            self.send_sa_init(now, dh, Some(c.data.clone()), retries + 1, entropy);
            return true;
        }
        if let Some(n) = p.find_notify(NotifyType::INVALID_KE_PAYLOAD) {
            let group = <[u8; 2]>::try_from(&n.data[..])
                .ok()
                .map(u16::from_be_bytes)
                .and_then(DhGroup::from_id);
            let acceptable = group.filter(|g| {
                *g != dh.group() && self.settings.ike_proposals.iter().any(|p| p.dh.contains(g))
            });
            match (acceptable, retries < MAX_INIT_RETRIES) {
                (Some(g), true) => match g.generate(entropy) {
                    Ok(new_dh) => {
                        self.send_sa_init(now, new_dh, old_cookie, retries + 1, entropy);
                    }
                    Err(_) => self.fail(DownReason::Internal("key exchange failed")),
                },
                _ => self.fail(DownReason::NoProposalChosen {
                    ours: format_list(&self.settings.ike_proposals),
                    theirs: Some(format!(
                        "key exchange group {}",
                        group.map_or("unknown".to_string(), |g| g.keyword().to_string())
                    )),
                }),
            }
            return true;
        }
        if p.find_notify(NotifyType::NO_PROPOSAL_CHOSEN).is_some() {
            self.fail(DownReason::NoProposalChosen {
                ours: format_list(&self.settings.ike_proposals),
                theirs: None,
            });
            return true;
        }
        if let Some(t) = error_notify(p) {
            self.fail(DownReason::PeerError {
                notify: t.to_string(),
            });
            return true;
        }
        let (Some(sa_p), Some(ke), Some(nr)) = (p.sa(), p.ke(), valid_nonce(p.nonce())) else {
            self.fail(DownReason::Protocol("incomplete IKE_SA_INIT response"));
            return true;
        };
        let neg = match accept_ike_reply(&self.settings.ike_proposals, &sa_p.proposals) {
            Ok(n) => n,
            Err(e) => {
                self.fail(DownReason::Protocol(
                    if matches!(e, crate::ike::proposal::ProposalError::NotOffered { .. }) {
                        "peer chose a proposal we did not offer"
                    } else {
                        "invalid SA payload in IKE_SA_INIT response"
                    },
                ));
                return true;
            }
        };
        if ke.group != dh.group().id() || neg.dh != dh.group() || msg.header.spi_r == 0 {
            self.fail(DownReason::Protocol("KE group differs from the chosen one"));
            return true;
        }
        let Ok(shared) = dh.shared_secret(&ke.data) else {
            self.fail(DownReason::Protocol("invalid KE value from peer"));
            return true;
        };
        let Some(sa) = self.ike.as_mut() else {
            return false;
        };
        sa.spi_r = msg.header.spi_r;
        sa.nr = nr;
        sa.init_response = bytes.to_vec();
        let Some(keys) = derive_keys(neg, &shared, sa, None) else {
            self.fail(DownReason::Internal("key derivation failed"));
            return true;
        };
        sa.keys = Some(keys);
        let (spi_i, spi_r) = (sa.spi_i, sa.spi_r);
        self.detect_nat(p, spi_i, spi_r, self.remote, self.local);
        self.send_auth(now, entropy);
        true
    }

    /// NAT detection from the peer's notifies: `peer_addr` is where the
    /// message came from, `our_addr` where it arrived.
    pub(super) fn detect_nat(
        &mut self,
        p: &[Payload],
        spi_i: u64,
        spi_r: u64,
        peer_addr: SocketAddr,
        our_addr: SocketAddr,
    ) {
        let src = p.find_notify(NotifyType::NAT_DETECTION_SOURCE_IP);
        let dst = p.find_notify(NotifyType::NAT_DETECTION_DESTINATION_IP);
        if src.is_none() && dst.is_none() && !self.settings.force_encapsulation {
            return;
        }
        let expected_src = nat_detection_hash(spi_i, spi_r, peer_addr);
        let expected_dst = nat_detection_hash(spi_i, spi_r, our_addr);
        let remote = p
            .notifies()
            .iter()
            .filter(|n| n.notify_type == NotifyType::NAT_DETECTION_SOURCE_IP)
            .all(|n| n.data != expected_src)
            && src.is_some();
        let local =
            dst.is_some_and(|d| d.data != expected_dst) || self.settings.force_encapsulation;
        self.nat_local = local;
        self.nat_remote = remote;
        if local || remote {
            self.nat_t = true;
        }
        self.events
            .push_back(SessionEvent::NatDetected { local, remote });
    }

    pub(super) fn send_auth(&mut self, now: Timestamp, entropy: &mut dyn Entropy) {
        let child_spi = random_esp_spi(entropy);
        let Some(sa) = self.ike.as_ref() else {
            return;
        };
        let Some(keys) = sa.keys.as_ref() else {
            return;
        };
        let id = self.settings.local_identity.to_payload();
        let auth = psk_auth(
            keys.neg.prf,
            self.settings.psk.expose().as_bytes(),
            &keys.sk_pi,
            &sa.init_request,
            &sa.nr,
            &id.body_bytes(),
        );
        let mut payloads = vec![Payload::IdI(id)];
        if let Some(r) = &self.settings.remote_identity {
            payloads.push(Payload::IdR(r.to_payload()));
        }
        payloads.push(Payload::Auth(AuthPayload {
            method: AuthMethod::SHARED_KEY_MIC,
            data: auth.to_vec(),
        }));
        payloads.push(notify(NotifyType::INITIAL_CONTACT));
        payloads.push(self.esp_offer(child_spi, false));
        payloads.push(Payload::TsI(ts::to_payload(&self.local_ts)));
        payloads.push(Payload::TsR(ts::to_payload(&self.remote_ts)));
        self.send_request(
            now,
            ExchangeType::IKE_AUTH,
            &payloads,
            Pending::Auth { child_spi },
            entropy,
        );
    }

    pub(super) fn esp_offer(&self, spi: u32, with_dh: bool) -> Payload {
        Payload::Sa(SaPayload {
            proposals: self
                .settings
                .esp_proposals
                .iter()
                .enumerate()
                .map(|(n, p)| p.to_wire((n + 1).min(255) as u8, spi, with_dh))
                .collect(),
        })
    }

    pub(super) fn child_times(&self, entropy: &mut dyn Entropy) -> (Duration, Duration) {
        let l = &self.settings.lifetimes;
        (
            rekey_time(l.child, l.margin, l.fuzz_percent, entropy),
            l.child,
        )
    }

    #[allow(clippy::too_many_arguments)]
    pub(super) fn install_child(
        &mut self,
        esp: NegotiatedEsp,
        inbound_spi: u32,
        initiator: bool,
        g_ir: Option<&[u8]>,
        ni: &[u8],
        nr: &[u8],
        local_ts: Vec<Selector>,
        remote_ts: Vec<Selector>,
        replaces: Option<u32>,
        entropy: &mut dyn Entropy,
    ) -> Result<u32, DownReason> {
        let Some(keys) = self.ike.as_ref().and_then(|sa| sa.keys.as_ref()) else {
            return Err(DownReason::Internal("no IKE SA keys"));
        };
        let child_keys = ChildSaKeys::derive(
            keys.neg.prf,
            &keys.sk_d,
            g_ir,
            ni,
            nr,
            esp.encryption.keymat_len(),
            esp.integrity.map_or(0, |i| i.key_len()),
        )
        .map_err(|_| DownReason::Internal("child key derivation failed"))?;
        let (soft_time, hard_time) = self.child_times(entropy);
        let outbound_spi = esp.spi;
        self.children.push(ChildRec {
            inbound_spi,
            outbound_spi,
            local_ts: local_ts.clone(),
            remote_ts: remote_ts.clone(),
            rekeyed: false,
            peer_rekey: None,
            rekeying: false,
        });
        self.events.push_back(SessionEvent::ChildInstalled {
            params: Box::new(ChildParams {
                inbound_spi,
                outbound_spi,
                esp,
                keys: child_keys,
                initiator,
                local_ts,
                remote_ts,
                soft_time,
                hard_time,
            }),
            replaces,
        });
        Ok(inbound_spi)
    }

    pub(super) fn ike_established(&mut self, now: Timestamp, entropy: &mut dyn Entropy) {
        let l = self.settings.lifetimes;
        if let Some(sa) = self.ike.as_mut() {
            sa.established = true;
            sa.half_open_until = None;
            sa.rekey_at = Some(now + rekey_time(l.ike, l.margin, l.fuzz_percent, entropy));
            sa.expire_at = Some(now + l.ike);
            self.events.push_back(SessionEvent::IkeEstablished {
                spi_i: sa.spi_i,
                spi_r: sa.spi_r,
            });
        }
        self.last_inbound = now;
    }

    pub(super) fn handle_auth_response(
        &mut self,
        now: Timestamp,
        p: Vec<Payload>,
        child_spi: u32,
        entropy: &mut dyn Entropy,
    ) {
        if p.find_notify(NotifyType::AUTHENTICATION_FAILED).is_some() {
            self.fail(DownReason::AuthenticationFailed {
                detail: "peer rejected our pre-shared key or identity",
            });
            return;
        }
        let Some(sa) = self.ike.as_ref() else {
            return;
        };
        let Some(keys) = sa.keys.as_ref() else {
            return;
        };
        let (Some(idr), Some(auth)) = (p.id_r(), p.auth()) else {
            if let Some(t) = error_notify(&p) {
                self.fail(DownReason::PeerError {
                    notify: t.to_string(),
                });
            } else {
                self.fail(DownReason::Protocol("IKE_AUTH response without IDr/AUTH"));
            }
            return;
        };
        if self
            .settings
            .remote_identity
            .as_ref()
            .is_some_and(|r| !r.matches(idr))
        {
            self.fail(DownReason::AuthenticationFailed {
                detail: "peer identity is not the configured remote identity",
            });
            return;
        }
        let expected = psk_auth(
            keys.neg.prf,
            self.settings.psk.expose().as_bytes(),
            &keys.sk_pr,
            &sa.init_response,
            &sa.ni,
            &idr.body_bytes(),
        );
        if auth.method != AuthMethod::SHARED_KEY_MIC || !auth_matches(&expected, &auth.data) {
            self.fail(DownReason::AuthenticationFailed {
                detail: "peer's AUTH does not match our pre-shared key",
            });
            return;
        }
        let (ni, nr) = (sa.ni.clone(), sa.nr.clone());
        self.ike_established(now, entropy);
        if p.find_notify(NotifyType::NO_PROPOSAL_CHOSEN).is_some() {
            self.fail(DownReason::NoProposalChosen {
                ours: format_list(&self.settings.esp_proposals),
                theirs: None,
            });
            return;
        }
        if p.find_notify(NotifyType::TS_UNACCEPTABLE).is_some() {
            self.fail(DownReason::TsUnacceptable);
            return;
        }
        if let Some(t) = error_notify(&p) {
            self.fail(DownReason::PeerError {
                notify: t.to_string(),
            });
            return;
        }
        let (Some(sa_p), Some(tsi), Some(tsr)) = (p.sa(), p.ts_i(), p.ts_r()) else {
            self.fail(DownReason::Protocol("IKE_AUTH response without a child SA"));
            return;
        };
        let Ok(esp) = accept_esp_reply(&self.settings.esp_proposals, &sa_p.proposals, true) else {
            self.fail(DownReason::Protocol(
                "peer chose an ESP proposal we did not offer",
            ));
            return;
        };
        let (local_ts, remote_ts) = (ts::ranges(tsi), ts::ranges(tsr));
        if local_ts.is_empty() || remote_ts.is_empty() {
            self.fail(DownReason::TsUnacceptable);
            return;
        }
        if let Err(e) = self.install_child(
            esp, child_spi, true, None, &ni, &nr, local_ts, remote_ts, None, entropy,
        ) {
            self.fail(e);
        }
    }

    // -----------------------------------------------------------------
    // IKE_SA_INIT and IKE_AUTH, responder
    // -----------------------------------------------------------------

    pub(super) fn stateless_reply(&mut self, req: &Header, payloads: Vec<Payload>, to: SocketAddr) {
        let msg = Message {
            header: Header::new(
                req.spi_i,
                0,
                ExchangeType::IKE_SA_INIT,
                Flags::new(false, true),
                0,
            ),
            payloads,
        };
        if let Ok(bytes) = msg.encode() {
            self.transmits.push_back(Outgoing {
                bytes,
                nat_t: false,
                to: Some(to),
            });
        }
    }

    pub(super) fn handle_sa_init_request(
        &mut self,
        now: Timestamp,
        local: SocketAddr,
        remote: SocketAddr,
        bytes: &[u8],
        msg: Message,
        entropy: &mut dyn Entropy,
    ) -> bool {
        if !self.active {
            return false;
        }
        // A retransmission of the request we answered: the same answer.
        if let Some(sa) = &self.ike {
            if !sa.initiator && sa.spi_i == msg.header.spi_i && !sa.established {
                if sa.init_request == bytes {
                    if let Some((0, resp)) = &sa.last_response {
                        self.transmits.push_back(Outgoing {
                            bytes: resp.clone(),
                            nat_t: false,
                            to: Some(remote),
                        });
                    }
                }
                return true;
            }
            if sa.initiator && !sa.established {
                // Both sides initiating at once: the initiation with the
                // higher SPI goes on, the other side answers it instead.
                if sa.spi_i > msg.header.spi_i {
                    return false;
                }
                self.ike = None;
            }
        }
        // A late copy of the request that made an SA we already have.
        let known = [self.ike.as_ref(), self.old_ike.as_ref()]
            .into_iter()
            .flatten()
            .any(|sa| !sa.initiator && sa.spi_i == msg.header.spi_i);
        if known {
            return true;
        }
        let p = &msg.payloads;
        let (Some(sa_p), Some(ke), Some(ni)) = (p.sa(), p.ke(), valid_nonce(p.nonce())) else {
            self.stateless_reply(
                &msg.header,
                vec![notify(NotifyType::INVALID_SYNTAX)],
                remote,
            );
            return true;
        };
        let half_open = usize::from(self.ike.as_ref().is_some_and(|sa| !sa.established));
        if half_open as u32 >= self.settings.cookie_threshold {
            let expected = cookie(&self.cookie_secret, &ni, remote.ip(), msg.header.spi_i);
            let ok = p
                .find_notify(NotifyType::COOKIE)
                .is_some_and(|c| auth_matches(&expected, &c.data));
            if !ok {
                self.stateless_reply(
                    &msg.header,
                    vec![Payload::Notify(NotifyPayload::new(
                        NotifyType::COOKIE,
                        expected,
                    ))],
                    remote,
                );
                return true;
            }
        }
        let Some(neg) = select_ike(&self.settings.ike_proposals, &sa_p.proposals) else {
            let theirs = describe_offer(&sa_p.proposals);
            self.stateless_reply(
                &msg.header,
                vec![notify(NotifyType::NO_PROPOSAL_CHOSEN)],
                remote,
            );
            let reason = DownReason::NoProposalChosen {
                ours: format_list(&self.settings.ike_proposals),
                theirs: Some(theirs),
            };
            // Unauthenticated: it cannot take down an SA we have.
            self.events.push_back(if self.ike.is_some() {
                SessionEvent::Rejected(reason)
            } else {
                SessionEvent::Down(reason)
            });
            return true;
        };
        if ke.group != neg.dh.id() {
            self.stateless_reply(
                &msg.header,
                vec![Payload::Notify(NotifyPayload::new(
                    NotifyType::INVALID_KE_PAYLOAD,
                    neg.dh.id().to_be_bytes().to_vec(),
                ))],
                remote,
            );
            return true;
        }
        let Ok(dh) = neg.dh.generate(entropy) else {
            return false;
        };
        let Ok(shared) = dh.shared_secret(&ke.data) else {
            self.stateless_reply(
                &msg.header,
                vec![notify(NotifyType::INVALID_SYNTAX)],
                remote,
            );
            return true;
        };
        let mut sa = IkeSa::new(msg.header.spi_i, random_spi64(entropy), false);
        sa.ni = ni;
        sa.nr = nonce(entropy);
        sa.init_request = bytes.to_vec();
        sa.expected_peer_id = 1;
        sa.half_open_until = Some(now + HALF_OPEN_TIMEOUT);
        let src = if self.settings.force_encapsulation {
            let mut fake = vec![0u8; 20];
            entropy.fill(&mut fake);
            fake
        } else {
            nat_detection_hash(sa.spi_i, sa.spi_r, local)
        };
        let payloads = vec![
            Payload::Sa(SaPayload {
                proposals: vec![neg.to_wire(&[])],
            }),
            Payload::Ke(KePayload {
                group: neg.dh.id(),
                data: dh.public_value().to_vec(),
            }),
            Payload::Nonce(sa.nr.clone()),
            Payload::Notify(NotifyPayload::new(NotifyType::NAT_DETECTION_SOURCE_IP, src)),
            Payload::Notify(NotifyPayload::new(
                NotifyType::NAT_DETECTION_DESTINATION_IP,
                nat_detection_hash(sa.spi_i, sa.spi_r, remote),
            )),
        ];
        let resp = Message {
            header: sa.header(ExchangeType::IKE_SA_INIT, true, 0),
            payloads,
        };
        let Ok(resp_bytes) = resp.encode() else {
            return false;
        };
        sa.init_response = resp_bytes.clone();
        sa.last_response = Some((0, resp_bytes.clone()));
        let Some(keys) = derive_keys(neg, &shared, &sa, None) else {
            return false;
        };
        sa.keys = Some(keys);
        let spi_i = sa.spi_i;
        // A new IKE SA replaces any old one once it is authenticated; until
        // then the half-open one takes the slot only if nothing is established.
        if self.ike.as_ref().is_some_and(|s| s.established) {
            self.old_ike = self.ike.take();
        }
        self.ike = Some(sa);
        // The request's NAT-D hashes use SPIr = 0.
        self.detect_nat(p, spi_i, 0, remote, local);
        self.peer_500 = remote;
        self.transmits.push_back(Outgoing {
            bytes: resp_bytes,
            nat_t: false,
            to: Some(remote),
        });
        true
    }

    /// IKE_AUTH request (responder). Returns the response payloads.
    pub(super) fn handle_auth_request(
        &mut self,
        now: Timestamp,
        p: &[Payload],
        entropy: &mut dyn Entropy,
    ) -> Vec<Payload> {
        let Some(sa) = self.ike.as_ref() else {
            return vec![notify(NotifyType::AUTHENTICATION_FAILED)];
        };
        let Some(keys) = sa.keys.as_ref() else {
            return vec![notify(NotifyType::AUTHENTICATION_FAILED)];
        };
        let (Some(idi), Some(auth)) = (p.id_i(), p.auth()) else {
            self.pending_failure = Some(DownReason::Protocol("IKE_AUTH request without IDi/AUTH"));
            return vec![notify(NotifyType::INVALID_SYNTAX)];
        };
        let id_ok = self
            .settings
            .remote_identity
            .as_ref()
            .is_none_or(|r| r.matches(idi));
        let expected = psk_auth(
            keys.neg.prf,
            self.settings.psk.expose().as_bytes(),
            &keys.sk_pi,
            &sa.init_request,
            &sa.nr,
            &idi.body_bytes(),
        );
        if !id_ok {
            self.pending_failure = Some(DownReason::AuthenticationFailed {
                detail: "peer identity is not the configured remote identity",
            });
            return vec![notify(NotifyType::AUTHENTICATION_FAILED)];
        }
        if auth.method != AuthMethod::SHARED_KEY_MIC || !auth_matches(&expected, &auth.data) {
            self.pending_failure = Some(DownReason::AuthenticationFailed {
                detail: "peer's AUTH does not match our pre-shared key",
            });
            return vec![notify(NotifyType::AUTHENTICATION_FAILED)];
        }
        let id = self.settings.local_identity.to_payload();
        let our_auth = psk_auth(
            keys.neg.prf,
            self.settings.psk.expose().as_bytes(),
            &keys.sk_pr,
            &sa.init_response,
            &sa.ni,
            &id.body_bytes(),
        );
        let (ni, nr) = (sa.ni.clone(), sa.nr.clone());
        let mut out = vec![
            Payload::IdR(id),
            Payload::Auth(AuthPayload {
                method: AuthMethod::SHARED_KEY_MIC,
                data: our_auth.to_vec(),
            }),
        ];
        // Authenticated: this IKE SA replaces an older one with the peer.
        // With INITIAL_CONTACT the peer forgot that one (it restarted);
        // without, this is a make-before-break reauthentication and the
        // peer will delete the old SA itself. Either way the old children
        // go once the new one is installed.
        let replaced: Vec<u32> = match self.old_ike.take() {
            Some(old) => {
                if p.find_notify(NotifyType::INITIAL_CONTACT).is_none() {
                    self.old_ike = Some(old);
                    self.old_ike_until = Some(now + HALF_OPEN_TIMEOUT);
                }
                self.children.iter().map(|c| c.inbound_spi).collect()
            }
            None => Vec::new(),
        };
        self.ike_established(now, entropy);
        let (Some(sa_p), Some(tsi), Some(tsr)) = (p.sa(), p.ts_i(), p.ts_r()) else {
            self.pending_failure =
                Some(DownReason::Protocol("IKE_AUTH request without a child SA"));
            out.push(notify(NotifyType::NO_PROPOSAL_CHOSEN));
            return out;
        };
        let Some(esp) = select_esp(&self.settings.esp_proposals, &sa_p.proposals, true) else {
            self.pending_failure = Some(DownReason::NoProposalChosen {
                ours: format_list(&self.settings.esp_proposals),
                theirs: Some(describe_offer(&sa_p.proposals)),
            });
            out.push(notify(NotifyType::NO_PROPOSAL_CHOSEN));
            return out;
        };
        let tsi_n = ts::narrow(tsi, &self.remote_ts);
        let tsr_n = ts::narrow(tsr, &self.local_ts);
        if tsi_n.is_empty() || tsr_n.is_empty() {
            self.pending_failure = Some(DownReason::TsUnacceptable);
            out.push(notify(NotifyType::TS_UNACCEPTABLE));
            return out;
        }
        let spi = random_esp_spi(entropy);
        match self.install_child(
            esp.clone(),
            spi,
            false,
            None,
            &ni,
            &nr,
            tsr_n.clone(),
            tsi_n.clone(),
            None,
            entropy,
        ) {
            Ok(_) => {
                for old in replaced {
                    if let Some(pos) = self.children.iter().position(|c| c.inbound_spi == old) {
                        self.children.remove(pos);
                        self.events
                            .push_back(SessionEvent::ChildDeleted { inbound_spi: old });
                    }
                }
                out.push(Payload::Sa(SaPayload {
                    proposals: vec![esp.to_wire(spi)],
                }));
                out.push(Payload::TsI(ts::to_payload(&tsi_n)));
                out.push(Payload::TsR(ts::to_payload(&tsr_n)));
            }
            Err(e) => {
                self.pending_failure = Some(e);
                out.push(notify(NotifyType::NO_PROPOSAL_CHOSEN));
            }
        }
        out
    }
}
