use super::*;

fn p(s: &str) -> Prefix {
    s.parse().unwrap()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn bgp(prefix: &str, tunnel: TunnelIndex, as_path_len: u32, med: u32) -> Route {
    Route {
        prefix: p(prefix),
        tunnel,
        origin: RouteOrigin::Bgp { as_path_len, med },
    }
}

fn fixed(prefix: &str, tunnel: TunnelIndex) -> Route {
    Route {
        prefix: p(prefix),
        tunnel,
        origin: RouteOrigin::Static,
    }
}

const ALL: fn(TunnelIndex) -> bool = |_| true;

#[test]
fn longest_prefix_wins() {
    let mut t = RouteTable::new();
    t.insert(fixed("10.0.0.0/8", 0));
    t.insert(fixed("10.1.0.0/16", 1));
    t.insert(fixed("0.0.0.0/0", 0));
    let hit = t.lookup(ip("10.1.2.3"), ALL).unwrap();
    assert_eq!(hit.prefix, p("10.1.0.0/16"));
    assert_eq!(hit.iter().collect::<Vec<_>>(), vec![1]);
    assert_eq!(
        t.lookup(ip("10.9.9.9"), ALL).unwrap().prefix,
        p("10.0.0.0/8")
    );
    assert_eq!(
        t.lookup(ip("192.0.2.1"), ALL).unwrap().prefix,
        p("0.0.0.0/0")
    );
    assert_eq!(t.lookup(ip("2001:db8::1"), ALL), None);
}

#[test]
fn unhealthy_tunnels_fall_back_to_the_other_tunnel_then_to_shorter_prefixes() {
    let mut t = RouteTable::new();
    t.insert(fixed("10.1.0.0/16", 0));
    t.insert(bgp("10.1.0.0/16", 1, 1, 0));
    t.insert(fixed("10.0.0.0/8", 1));
    // Static beats BGP while tunnel 0 is healthy.
    assert_eq!(
        t.lookup(ip("10.1.0.1"), ALL)
            .unwrap()
            .iter()
            .collect::<Vec<_>>(),
        vec![0]
    );
    // Tunnel 0 down: the BGP route through tunnel 1 takes over.
    let hit = t.lookup(ip("10.1.0.1"), |t| t == 1).unwrap();
    assert_eq!(
        (hit.prefix, hit.iter().collect::<Vec<_>>()),
        (p("10.1.0.0/16"), vec![1])
    );
    // Nothing healthy for the /16 or the /8 via tunnel 0 only.
    t.remove(p("10.1.0.0/16"), 1, false);
    assert_eq!(
        t.lookup(ip("10.1.0.1"), |t| t == 1).unwrap().prefix,
        p("10.0.0.0/8")
    );
    assert_eq!(t.lookup(ip("10.1.0.1"), |_| false), None);
}

#[test]
fn as_path_then_med_break_ties_and_equal_routes_form_an_ecmp_set() {
    let mut t = RouteTable::new();
    t.insert(bgp("172.16.0.0/12", 0, 3, 0));
    t.insert(bgp("172.16.0.0/12", 1, 2, 50));
    assert_eq!(
        t.lookup(ip("172.16.1.1"), ALL)
            .unwrap()
            .iter()
            .collect::<Vec<_>>(),
        vec![1]
    );
    // Same AS_PATH length: lower MED wins.
    t.insert(bgp("172.16.0.0/12", 0, 2, 10));
    assert_eq!(
        t.lookup(ip("172.16.1.1"), ALL)
            .unwrap()
            .iter()
            .collect::<Vec<_>>(),
        vec![0]
    );
    // Full tie: both tunnels, and flows spread deterministically.
    t.insert(bgp("172.16.0.0/12", 1, 2, 10));
    let hit = t.lookup(ip("172.16.1.1"), ALL).unwrap();
    assert_eq!(hit.len(), 2);
    assert_eq!(
        (hit.pick(0), hit.pick(1), hit.pick(2)),
        (Some(0), Some(1), Some(0))
    );
}

#[test]
fn updates_replace_and_withdrawals_remove() {
    let mut t = RouteTable::new();
    assert!(t.insert(bgp("10.2.0.0/16", 0, 1, 0)));
    assert!(!t.insert(bgp("10.2.0.0/16", 0, 1, 0)));
    assert!(t.insert(bgp("10.2.0.0/16", 0, 4, 0)));
    assert!(t.insert(fixed("10.2.0.0/16", 0)));
    assert_eq!(t.len(), 2);
    t.insert(bgp("10.3.0.0/16", 0, 1, 0));
    t.insert(bgp("2001:db8::/32", 0, 1, 0));
    assert_eq!(t.remove_bgp_routes_of(0), 3);
    assert_eq!(t.len(), 1);
    assert_eq!(t.lookup(ip("10.3.0.1"), ALL), None);
    assert_eq!(t.lookup(ip("2001:db8::1"), ALL), None);
    assert_eq!(
        t.lookup(ip("10.2.0.1"), ALL).unwrap().prefix,
        p("10.2.0.0/16")
    );
}

#[test]
fn ipv6_routes() {
    let mut t = RouteTable::new();
    t.insert(fixed("2001:db8::/32", 0));
    t.insert(fixed("2001:db8:1::/48", 1));
    assert_eq!(
        t.lookup(ip("2001:db8:1::5"), ALL).unwrap().prefix,
        p("2001:db8:1::/48")
    );
    assert_eq!(
        t.lookup(ip("2001:db8:2::5"), ALL).unwrap().prefix,
        p("2001:db8::/32")
    );
    assert_eq!(t.lookup(ip("10.0.0.1"), ALL), None);
}
