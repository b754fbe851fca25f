//! Interop with strongSwan 5.9 (charon with kernel-libipsec) over real UDP
//! sockets in network namespaces. Needs root, `ip`, and the strongSwan
//! packages of notes/interop.md; ignored by default:
//!
//! `cargo test -p vpn-core --lib ike::v2::tests::interop -- --ignored --nocapture --test-threads 1`
//!
//! The outer test builds namespaces `ikv2A` (us, 192.0.2.1, inner
//! 10.201.1.1) and `ikv2B` (charon, 192.0.2.2, inner 10.201.2.1), starts
//! charon, then re-runs this test binary inside `ikv2A` to drive a
//! [`Tunnel`] with real sockets and clock (test code only: the library never
//! reads either).

use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::config::{Secret, StartupAction};
use crate::entropy::OsEntropy;
use crate::ike::proposal::{parse_esp_proposals, parse_ike_proposals};
use crate::ike::v2::{Identity, Ikev2Settings};
use crate::time::Timestamp;
use crate::tunnel::{Keying, Received, Tunnel, TunnelEvent, TunnelSettings, TunnelState};

const NS_US: &str = "ikv2A";
const NS_PEER: &str = "ikv2B";
const US: &str = "192.0.2.1";
const PEER: &str = "192.0.2.2";
const PEER_BEHIND_NAT: &str = "198.51.100.2";
const NS_NAT: &str = "ikv2N";
const PSK: &str = "interop.psk.0123456789";

fn sh(args: &[&str]) -> bool {
    Command::new(args[0])
        .args(&args[1..])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

struct Peer {
    dir: PathBuf,
    charon: Child,
}

impl Peer {
    fn swanctl(&self, args: &[&str]) -> String {
        let out = Command::new("swanctl")
            .args(args)
            .env("STRONGSWAN_CONF", self.dir.join("strongswan.conf"))
            .output()
            .expect("swanctl");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.charon.id().to_string()])
            .status();
        std::thread::sleep(Duration::from_millis(300));
        let _ = self.charon.kill();
        let _ = self.charon.wait();
        del_namespaces();
    }
}

/// The peer's outside address: on our link, or behind the NAT router.
fn peer_addr(nat: bool) -> &'static str {
    if nat {
        PEER_BEHIND_NAT
    } else {
        PEER
    }
}

fn del_namespaces() {
    for ns in [NS_US, NS_PEER, NS_NAT] {
        sh(&["ip", "netns", "del", ns]);
    }
}

fn setup(ike: &str, esp: &str, nat: bool) -> Peer {
    del_namespaces();
    for ns in [NS_US, NS_PEER] {
        assert!(sh(&["ip", "netns", "add", ns]));
    }
    let peer = peer_addr(nat);
    if nat {
        // us 192.0.2.1 -- (192.0.2.254) NAT [masquerade] (198.51.100.254) -- 198.51.100.2 charon
        assert!(sh(&["ip", "netns", "add", NS_NAT]));
        for (ns, dev, peer_dev) in [(NS_US, "ikv2a0", "ikv2na"), (NS_PEER, "ikv2b0", "ikv2nb")] {
            assert!(sh(&[
                "ip", "link", "add", dev, "netns", ns, "type", "veth", "peer", "name", peer_dev,
                "netns", NS_NAT
            ]));
        }
        for (dev, addr) in [
            ("ikv2na", "192.0.2.254/24"),
            ("ikv2nb", "198.51.100.254/24"),
        ] {
            assert!(sh(&["ip", "-n", NS_NAT, "addr", "add", addr, "dev", dev]));
            assert!(sh(&["ip", "-n", NS_NAT, "link", "set", dev, "up"]));
        }
        assert!(sh(&[
            "ip",
            "netns",
            "exec",
            NS_NAT,
            "sysctl",
            "-qw",
            "net.ipv4.ip_forward=1"
        ]));
        assert!(sh(&[
            "ip", "netns", "exec", NS_NAT, "nft", "add", "table", "ip", "ikv2nat"
        ]));
        assert!(sh(&[
            "ip",
            "netns",
            "exec",
            NS_NAT,
            "nft",
            "add",
            "chain",
            "ip",
            "ikv2nat",
            "post",
            "{ type nat hook postrouting priority 100 ; }"
        ]));
        assert!(sh(&[
            "ip",
            "netns",
            "exec",
            NS_NAT,
            "nft",
            "add",
            "rule",
            "ip",
            "ikv2nat",
            "post",
            "oifname",
            "ikv2nb",
            "masquerade"
        ]));
    } else {
        assert!(sh(&[
            "ip", "link", "add", "ikv2a0", "netns", NS_US, "type", "veth", "peer", "name",
            "ikv2b0", "netns", NS_PEER
        ]));
    }
    for (ns, dev, addr, inner) in [
        (NS_US, "ikv2a0", US, "10.201.1.1/32"),
        (NS_PEER, "ikv2b0", peer, "10.201.2.1/32"),
    ] {
        assert!(sh(&[
            "ip",
            "-n",
            ns,
            "addr",
            "add",
            &format!("{addr}/24"),
            "dev",
            dev
        ]));
        assert!(sh(&["ip", "-n", ns, "addr", "add", inner, "dev", "lo"]));
        assert!(sh(&["ip", "-n", ns, "link", "set", "lo", "up"]));
        assert!(sh(&["ip", "-n", ns, "link", "set", dev, "up"]));
    }
    if nat {
        assert!(sh(&[
            "ip",
            "-n",
            NS_US,
            "route",
            "add",
            "default",
            "via",
            "192.0.2.254"
        ]));
    }
    let remote_addrs = if nat { "%any" } else { US };
    let dir = PathBuf::from("/tmp/ikv2-interop");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("run")).unwrap();
    for s in [
        "x509", "x509ca", "private", "rsa", "ecdsa", "pkcs8", "pubkey",
    ] {
        std::fs::create_dir_all(dir.join("swanctl").join(s)).unwrap();
    }
    let d = dir.display();
    std::fs::write(
        dir.join("strongswan.conf"),
        format!(
            "charon {{
  load = random nonce openssl pem pkcs1 x509 pubkey curve25519 aes sha1 sha2 hmac gcm kdf kernel-libipsec kernel-netlink socket-default vici updown
  install_virtual_ip = no
  plugins {{ vici {{ socket = unix://{d}/charon.vici }} }}
  filelog {{ main {{ path = {d}/charon.log
    default = 1
    ike = 2
    cfg = 2
    flush_line = yes
    append = no }} }}
  syslog {{ daemon {{ default = -1 }} }}
}}
swanctl {{ socket = unix://{d}/charon.vici }}
"
        ),
    )
    .unwrap();
    std::fs::write(
        dir.join("swanctl/swanctl.conf"),
        format!(
            "connections {{ s2s {{
  version = 2
  local_addrs = {peer}
  remote_addrs = {remote_addrs}
  proposals = {ike}
  dpd_delay = 5s
  rekey_time = 4h
  local {{ auth = psk
    id = {peer} }}
  remote {{ auth = psk
    id = {US} }}
  children {{ net {{
    local_ts = 10.201.2.0/24
    remote_ts = 10.201.1.0/24
    esp_proposals = {esp}
    rekey_time = 1h
    dpd_action = clear
  }} }}
}} }}
secrets {{ ike-1 {{ id-a = {US}
  id-b = {peer}
  secret = \"{PSK}\" }} }}
"
        ),
    )
    .unwrap();
    let charon = Command::new("ip")
        .args([
            "netns",
            "exec",
            NS_PEER,
            "sh",
            "-c",
            &format!("mount --bind {d}/run /run && exec /usr/lib/ipsec/charon"),
        ])
        .env("STRONGSWAN_CONF", dir.join("strongswan.conf"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("charon");
    let peer = Peer { dir, charon };
    for _ in 0..200 {
        if Command::new("swanctl")
            .arg("--stats")
            .env("STRONGSWAN_CONF", peer.dir.join("strongswan.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let conf = peer.dir.join("swanctl/swanctl.conf");
    peer.swanctl(&["--load-all", "--file", conf.to_str().unwrap()]);
    peer
}

/// Runs the inner driver inside our namespace.
fn run_inside(role: &str, ike: &str, esp: &str, dir: &Path, nat: bool) -> bool {
    let exe = std::env::current_exe().unwrap();
    Command::new("ip")
        .args(["netns", "exec", NS_US])
        .arg(exe)
        .args([
            "ike::v2::tests::interop::inner",
            "--exact",
            "--ignored",
            "--nocapture",
        ])
        .env("IKV2_INTEROP_ROLE", role)
        .env("IKV2_INTEROP_IKE", ike)
        .env("IKV2_INTEROP_ESP", esp)
        .env("IKV2_INTEROP_PEER", peer_addr(nat))
        .env("STRONGSWAN_CONF", dir.join("strongswan.conf"))
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
#[ignore = "needs root, network namespaces and strongSwan"]
fn strongswan() {
    let mut failures = Vec::new();
    for (ike, esp, role) in [
        ("aes256gcm16-prfsha256-ecp256", "aes256gcm16", "initiator"),
        (
            "aes256-sha256-modp2048",
            "aes256-sha256-modp2048",
            "initiator",
        ),
        ("aes128-sha1-modp1024", "aes128-sha1", "initiator"),
        ("aes128gcm16-prfsha256-x25519", "aes128gcm16", "initiator"),
        (
            "chacha20poly1305-prfsha256-curve25519",
            "chacha20poly1305",
            "initiator",
        ),
        (
            "aes256gcm16-prfsha384-ecp384",
            "aes256gcm16-ecp384",
            "initiator",
        ),
        ("aes256-sha512-ecp521", "aes256-sha512", "initiator"),
        ("aes256gcm16-prfsha256-ecp256", "aes256gcm16", "responder"),
        (
            "aes256-sha256-modp2048",
            "aes256-sha256-modp2048",
            "responder",
        ),
        ("aes256gcm16-prfsha256-ecp256", "aes256gcm16", "wrong-psk"),
        (
            "aes256gcm16-prfsha256-ecp256",
            "aes256gcm16",
            "wrong-psk-responder",
        ),
        (
            "aes256gcm16-prfsha256-ecp256",
            "aes256gcm16",
            "peer-terminates",
        ),
        ("aes128-sha1-modp2048", "aes256gcm16", "no-proposal"),
        (
            "aes256gcm16-prfsha256-ecp256",
            "aes256gcm16",
            "nat-initiator",
        ),
        (
            "aes256-sha256-modp2048",
            "aes256-sha256-modp2048",
            "nat-initiator",
        ),
    ] {
        // IKV2_INTEROP_ONLY=<role> runs one kind of scenario.
        if std::env::var("IKV2_INTEROP_ONLY").is_ok_and(|only| only != role) {
            continue;
        }
        let nat = role.starts_with("nat");
        let peer = setup(ike, esp, nat);
        let ok = run_inside(role, ike, esp, &peer.dir, nat);
        if !ok {
            let log = std::fs::read_to_string(peer.dir.join("charon.log")).unwrap_or_default();
            eprintln!("---- charon.log for {ike} / {esp} as {role}:\n{log}");
            failures.push(format!("{ike} {esp} {role}"));
        }
        drop(peer);
    }
    assert!(failures.is_empty(), "failed: {failures:?}");
}

fn checksum(data: &[u8]) -> u16 {
    let mut sum = 0u32;
    for c in data.chunks(2) {
        sum += u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// An ICMP echo request 10.201.1.1 → 10.201.2.1.
fn echo_request(seq: u16) -> Vec<u8> {
    let mut p = vec![0u8; 20 + 8 + 32];
    let len = p.len() as u16;
    p[0] = 0x45;
    p[2..4].copy_from_slice(&len.to_be_bytes());
    p[8] = 64;
    p[9] = 1;
    p[12..16].copy_from_slice(&[10, 201, 1, 1]);
    p[16..20].copy_from_slice(&[10, 201, 2, 1]);
    let c = checksum(&p[..20]);
    p[10..12].copy_from_slice(&c.to_be_bytes());
    p[20] = 8;
    p[24..26].copy_from_slice(&0x1234u16.to_be_bytes());
    p[26..28].copy_from_slice(&seq.to_be_bytes());
    let c = checksum(&p[20..]);
    p[22..24].copy_from_slice(&c.to_be_bytes());
    p
}

struct Driver {
    tunnel: Tunnel,
    s500: UdpSocket,
    s4500: UdpSocket,
    start: Instant,
    replies: Vec<u16>,
    events: Vec<TunnelEvent>,
}

impl Driver {
    fn now(&self) -> Timestamp {
        Timestamp::from_nanos(self.start.elapsed().as_nanos() as u64)
    }

    fn flush(&mut self) {
        let mut buf = vec![0u8; 65536];
        while let Some(t) = self.tunnel.poll_transmit(&mut buf) {
            let s = if t.local.port() == 4500 {
                &self.s4500
            } else {
                &self.s500
            };
            let _ = s.send_to(&buf[..t.len], t.remote);
        }
        while let Some(e) = self.tunnel.poll_event() {
            eprintln!("event: {e:?}");
            self.events.push(e);
        }
    }

    /// Runs for `d`, or until `done` holds.
    fn run(&mut self, d: Duration, mut done: impl FnMut(&Driver) -> bool) -> bool {
        let end = Instant::now() + d;
        let mut buf = vec![0u8; 65536];
        while Instant::now() < end {
            self.flush();
            if done(self) {
                return true;
            }
            let mut idle = true;
            for port in [500u16, 4500] {
                let s = if port == 500 { &self.s500 } else { &self.s4500 };
                if let Ok((n, from)) = s.recv_from(&mut buf) {
                    idle = false;
                    let local: SocketAddr = format!("{US}:{port}").parse().unwrap();
                    let now = self.now();
                    if let Received::Inner { range } =
                        self.tunnel.handle_datagram(now, local, from, &mut buf[..n])
                    {
                        let p = &buf[range];
                        if p.len() >= 28 && p[9] == 1 && p[20] == 0 {
                            self.replies.push(u16::from_be_bytes([p[26], p[27]]));
                        }
                    }
                }
            }
            let now = self.now();
            if self.tunnel.poll_timeout().is_some_and(|t| t <= now) {
                self.tunnel.handle_timeout(now);
            }
            if idle {
                std::thread::sleep(Duration::from_millis(2));
            }
        }
        self.flush();
        done(self)
    }

    fn ping(&mut self, seq: u16) -> bool {
        let p = echo_request(seq);
        let mut buf = vec![0u8; 2048];
        let h = self.tunnel.headroom();
        buf[h..h + p.len()].copy_from_slice(&p);
        let now = self.now();
        let Ok(t) = self.tunnel.send_inner(now, &mut buf, p.len()) else {
            return false;
        };
        let _ = self.s4500.send_to(&buf[..t.len], t.remote);
        self.run(Duration::from_secs(3), |d| d.replies.contains(&seq))
    }
}

fn swanctl(args: &[&str]) -> String {
    let out = Command::new("swanctl")
        .args(args)
        .output()
        .expect("swanctl");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
#[ignore = "run by the strongswan test inside its namespace"]
fn inner() {
    let role = std::env::var("IKV2_INTEROP_ROLE").unwrap();
    let ike = std::env::var("IKV2_INTEROP_IKE").unwrap();
    let esp = std::env::var("IKV2_INTEROP_ESP").unwrap();
    let psk = if role.starts_with("wrong-psk") {
        "not.the.interop.psk"
    } else {
        PSK
    };
    // "no-proposal": charon is configured with `ike`, we offer something else.
    let ike = if role == "no-proposal" {
        "aes256-sha512-ecp384".to_string()
    } else {
        ike
    };
    let mut s = Ikev2Settings::new(
        Secret::from(psk),
        Identity::Ip(US.parse().unwrap()),
        &ike,
        &esp,
    )
    .unwrap();
    s.ike_proposals = parse_ike_proposals(&ike).unwrap();
    s.esp_proposals = parse_esp_proposals(&esp).unwrap();
    let peer = std::env::var("IKV2_INTEROP_PEER").unwrap();
    s.remote_identity = Some(Identity::Ip(peer.parse().unwrap()));
    let responder = role.ends_with("responder");
    s.startup_action = if responder {
        StartupAction::Add
    } else {
        StartupAction::Start
    };
    let settings = TunnelSettings {
        local: format!("{US}:500").parse().unwrap(),
        remote: format!("{peer}:500").parse().unwrap(),
        keying: Keying::Ikev2(Box::new(s)),
        local_traffic: vec!["10.201.1.0/24".parse().unwrap()],
        remote_traffic: vec!["10.201.2.0/24".parse().unwrap()],
        replay_window: 1024,
    };
    let s500 = UdpSocket::bind(format!("{US}:500")).unwrap();
    let s4500 = UdpSocket::bind(format!("{US}:4500")).unwrap();
    s500.set_nonblocking(true).unwrap();
    s4500.set_nonblocking(true).unwrap();
    let start = Instant::now();
    let tunnel = Tunnel::with_entropy(settings, Timestamp::ZERO, Box::new(OsEntropy)).unwrap();
    let mut d = Driver {
        tunnel,
        s500,
        s4500,
        start,
        replies: Vec::new(),
        events: Vec::new(),
    };
    let now = d.now();
    d.tunnel.connect(now, &mut OsEntropy).unwrap();
    let mut initiate = None;
    if responder {
        initiate = Some(
            Command::new("swanctl")
                .args(["--initiate", "--child", "net", "--timeout", "10"])
                .stdout(Stdio::null())
                .spawn()
                .unwrap(),
        );
    }
    let down = |d: &Driver| {
        d.events.iter().find_map(|e| match e {
            TunnelEvent::Down { reason } => Some(reason.clone()),
            _ => None,
        })
    };
    if role.starts_with("wrong-psk") || role == "no-proposal" {
        assert!(d.run(Duration::from_secs(10), |d| down(d).is_some()));
        if let Some(mut c) = initiate {
            let _ = c.wait();
        }
        let reason = down(&d).unwrap();
        eprintln!("down: {reason}");
        if role == "no-proposal" {
            assert!(
                matches!(reason, crate::tunnel::DownReason::NoProposalChosen { .. }),
                "{reason:?}"
            );
        } else {
            assert!(
                matches!(
                    reason,
                    crate::tunnel::DownReason::AuthenticationFailed { .. }
                ),
                "{reason:?}"
            );
        }
        eprintln!("interop ok: {ike} / {esp} as {role}");
        return;
    }
    assert!(
        d.run(Duration::from_secs(10), |d| d.tunnel.state()
            == TunnelState::Up),
        "not up: {:?}",
        d.events
    );
    if let Some(mut c) = initiate {
        let _ = c.wait();
    }
    assert!(
        d.tunnel.metrics().nat_t,
        "libipsec fakes NAT: IKE must be on 4500"
    );
    if role.starts_with("nat") {
        assert!(
            d.tunnel.metrics().nat_local,
            "the NAT in front of us went unnoticed"
        );
    }
    assert!(d.ping(1), "no echo reply");
    assert!(d.ping(2));
    if role == "peer-terminates" {
        let mut c = Command::new("swanctl")
            .args(["--terminate", "--ike", "s2s"])
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        assert!(d.run(Duration::from_secs(5), |d| down(d).is_some()));
        let _ = c.wait();
        assert_eq!(down(&d), Some(crate::tunnel::DownReason::PeerDeleted));
        eprintln!("interop ok: {ike} / {esp} as {role}");
        return;
    }

    // Our rekeys.
    let now = d.now();
    d.tunnel.rekey_child(now);
    assert!(d.run(Duration::from_secs(5), |d| d
        .events
        .iter()
        .any(|e| matches!(e, TunnelEvent::ChildSaRekeyed { .. }))));
    assert!(d.ping(3), "no reply after our child rekey");
    let now = d.now();
    d.tunnel.rekey_ike(now);
    assert!(d.run(Duration::from_secs(5), |d| d
        .events
        .iter()
        .any(|e| matches!(e, TunnelEvent::IkeSaRekeyed { .. }))));
    d.run(Duration::from_millis(500), |_| false);
    assert!(d.ping(4), "no reply after our IKE rekey");

    // strongSwan's rekeys: we answer.
    let mut c = Command::new("swanctl")
        .args(["--rekey", "--child", "net"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    assert!(d.run(Duration::from_secs(5), |d| d
        .events
        .iter()
        .filter(|e| matches!(e, TunnelEvent::ChildSaRekeyed { .. }))
        .count()
        >= 2));
    let _ = c.wait();
    d.run(Duration::from_millis(500), |_| false);
    assert!(d.ping(5), "no reply after strongSwan's child rekey");
    let mut c = Command::new("swanctl")
        .args(["--rekey", "--ike", "s2s"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    assert!(d.run(Duration::from_secs(5), |d| d
        .events
        .iter()
        .filter(|e| matches!(e, TunnelEvent::IkeSaRekeyed { .. }))
        .count()
        >= 2));
    let _ = c.wait();
    d.run(Duration::from_millis(500), |_| false);
    assert!(d.ping(6), "no reply after strongSwan's IKE rekey");

    // Liveness checks both ways while idle (charon: 5 s, us: 10 s).
    d.run(Duration::from_secs(13), |_| false);
    assert_eq!(d.tunnel.state(), TunnelState::Up);
    assert!(d.ping(7));

    // Close: charon learns it from our DELETE.
    let now = d.now();
    d.tunnel.close(now);
    d.run(Duration::from_secs(1), |_| false);
    let sas = swanctl(&["--list-sas"]);
    assert!(!sas.contains("ESTABLISHED"), "charon still has: {sas}");
    eprintln!("interop ok: {ike} / {esp} as {role}");
}
