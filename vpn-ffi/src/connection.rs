//! A VPN connection (`vpn_connection`): two redundant tunnels, their routes
//! and failover, driven sans-IO from C.
//!
//! Everything here forwards to `vpn_core::connection::Connection`; the
//! binding converts arguments (addresses as [`vpn_socket_addr`], times as
//! nanoseconds) and results, and supplies the operating system's CSPRNG.
//!
//! A program feeds inputs (`vpn_connection_handle_datagram`,
//! `vpn_connection_send_packet`, `vpn_connection_handle_timeout`, commands)
//! and after each one drains the outputs in this order: transmits
//! (`vpn_connection_poll_transmit` until false), events
//! (`vpn_connection_poll_event` until false), then the next deadline
//! (`vpn_connection_poll_timeout`).

use core::ffi::{c_char, CStr};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use vpn_core::connection::{
    BgpEvent, ConfigChange, Connection, ConnectionError, ConnectionEvent, RekeyKind, ReplaceError,
    SendError, SendOutcome,
};
use vpn_core::entropy::OsEntropy;
use vpn_core::time::Timestamp;
use vpn_core::tunnel::{DropReason, Received, TunnelError, TunnelEvent, TunnelState};

use crate::config::{vpn_config, vpn_config_to_string, vpn_config_validate, VPN_CONFIG_JSON};
use crate::result::vpn_result::{self, *};
use crate::result::{guard, guard_value, non_null, out_slice, write_c_str};

/// Largest UDP payload a connection emits; `vpn_connection_poll_transmit`
/// never needs a bigger buffer.
pub const VPN_MAX_DATAGRAM: usize = 65535;

/// `vpn_socket_addr.family` of an IPv4 address (in `addr[0..4]`).
pub const VPN_AF_INET: u8 = 4;
/// `vpn_socket_addr.family` of an IPv6 address (all of `addr`).
pub const VPN_AF_INET6: u8 = 6;

/// A UDP endpoint without `struct sockaddr`: `family` is `VPN_AF_INET` (the
/// address in `addr[0..4]`, the rest zero) or `VPN_AF_INET6`; the address
/// bytes and `port` are in host-independent form (address in network order,
/// port as a plain number).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct vpn_socket_addr {
    pub family: u8,
    pub addr: [u8; 16],
    pub port: u16,
}

impl From<SocketAddr> for vpn_socket_addr {
    fn from(a: SocketAddr) -> Self {
        let mut addr = [0u8; 16];
        let family = match a.ip() {
            IpAddr::V4(v4) => {
                addr[..4].copy_from_slice(&v4.octets());
                VPN_AF_INET
            }
            IpAddr::V6(v6) => {
                addr.copy_from_slice(&v6.octets());
                VPN_AF_INET6
            }
        };
        vpn_socket_addr {
            family,
            addr,
            port: a.port(),
        }
    }
}

impl vpn_socket_addr {
    fn to_std(self) -> Result<SocketAddr, vpn_result> {
        let ip = match self.family {
            VPN_AF_INET => IpAddr::V4(Ipv4Addr::new(
                self.addr[0],
                self.addr[1],
                self.addr[2],
                self.addr[3],
            )),
            VPN_AF_INET6 => IpAddr::V6(Ipv6Addr::from(self.addr)),
            _ => return Err(VPN_ERR_INVALID_ARGUMENT),
        };
        Ok(SocketAddr::new(ip, self.port))
    }
}

/// What `vpn_connection_handle_datagram` made of a datagram: one of the
/// `VPN_RECEIVED_*` constants.
pub type vpn_received_kind = u32;
/// A decrypted inner packet, at `buf[inner_offset..][..inner_len]`.
pub const VPN_RECEIVED_INNER: vpn_received_kind = 1;
/// Consumed by the control plane (IKE, keepalive, BGP over the tunnel).
pub const VPN_RECEIVED_CONTROL: vpn_received_kind = 2;
/// Dropped: `drop_reason` says why (and is counted in the metrics).
pub const VPN_RECEIVED_DROPPED: vpn_received_kind = 3;

/// Why a datagram was dropped: one of the `VPN_DROP_*` constants.
pub type vpn_drop_reason = u32;
/// Not dropped.
pub const VPN_DROP_NONE: vpn_drop_reason = 0;
/// Not from (or to) the outside addresses of either tunnel.
pub const VPN_DROP_UNKNOWN_PEER: vpn_drop_reason = 1;
/// An ESP SPI the tunnel does not have.
pub const VPN_DROP_UNKNOWN_SPI: vpn_drop_reason = 2;
/// Rejected by the ESP SA; `esp_error` holds the `vpn_result` code
/// (`VPN_ERR_REPLAY`, `VPN_ERR_AUTHENTICATION`, ...).
pub const VPN_DROP_ESP: vpn_drop_reason = 3;
/// Decrypted, but outside the negotiated traffic selectors.
pub const VPN_DROP_OUTSIDE_TRAFFIC_SELECTORS: vpn_drop_reason = 4;
/// No child SA is installed.
pub const VPN_DROP_NOT_CONNECTED: vpn_drop_reason = 5;
/// Not ESP, IKE or a keepalive.
pub const VPN_DROP_GARBAGE: vpn_drop_reason = 6;

/// The result of `vpn_connection_handle_datagram`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct vpn_received {
    /// A `VPN_RECEIVED_*` constant.
    pub kind: vpn_received_kind,
    /// The tunnel whose peer sent the datagram, or -1 when none did.
    pub tunnel: i32,
    /// With `VPN_RECEIVED_INNER`: where the inner packet is in the buffer.
    pub inner_offset: usize,
    pub inner_len: usize,
    /// With `VPN_RECEIVED_DROPPED`: a `VPN_DROP_*` constant, else `VPN_DROP_NONE`.
    pub drop_reason: vpn_drop_reason,
    /// With `VPN_DROP_ESP`: the `vpn_result` code of the ESP error, else 0.
    pub esp_error: u32,
}

/// A datagram to send, or (from `vpn_connection_send_packet` only) an ICMP
/// reply to deliver back inside.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct vpn_transmit {
    /// The tunnel it belongs to; -1 with `icmp_too_big`.
    pub tunnel: i32,
    /// Send from this local address and port...
    pub local: vpn_socket_addr,
    /// ...to this remote address and port, over UDP.
    pub remote: vpn_socket_addr,
    /// Bytes at the start of the buffer.
    pub len: usize,
    /// True when `vpn_connection_send_packet` did not send the packet but
    /// replaced it with an ICMP "fragmentation needed" for its sender:
    /// `buf[0..len]` is that ICMP packet; `local` and `remote` are zero.
    pub icmp_too_big: bool,
    /// Non-zero when `vpn_connection_send_packet` fragmented the packet
    /// before encryption (it was over the tunnel MTU): nothing is in `buf`
    /// (`len` 0); the `fragments` sealed datagrams wait in
    /// `vpn_connection_poll_transmit`.
    pub fragments: usize,
}

/// A connection event's kind: one of the `VPN_EVENT_*` constants.
pub type vpn_event_kind = u32;
/// A tunnel changed state: `state` is the new `VPN_TUNNEL_*` state.
pub const VPN_EVENT_TUNNEL_STATE_CHANGED: vpn_event_kind = 1;
/// A tunnel went down; the text names the reason.
pub const VPN_EVENT_TUNNEL_DOWN: vpn_event_kind = 2;
/// A tunnel's IKE SA is established (phase 1 up).
pub const VPN_EVENT_IKE_SA_ESTABLISHED: vpn_event_kind = 3;
/// A tunnel's child SA pair was installed (phase 2 up).
pub const VPN_EVENT_CHILD_SA_INSTALLED: vpn_event_kind = 4;
/// Any other tunnel event (rekeys, deletions, NAT detection, lifetimes).
pub const VPN_EVENT_TUNNEL_OTHER: vpn_event_kind = 5;
/// The active tunnel changed: from `from_tunnel` to `tunnel` (-1: none).
pub const VPN_EVENT_ACTIVE_TUNNEL_CHANGED: vpn_event_kind = 6;
/// A BGP session changed state or a route came or went.
pub const VPN_EVENT_BGP: vpn_event_kind = 7;

/// A tunnel's state (`vpn_connection_tunnel_state`, `vpn_connection_event.state`).
pub const VPN_TUNNEL_DOWN: i32 = 0;
pub const VPN_TUNNEL_CONNECTING: i32 = 1;
pub const VPN_TUNNEL_UP: i32 = 2;

/// One event of `vpn_connection_poll_event`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct vpn_connection_event {
    /// A `VPN_EVENT_*` constant.
    pub kind: vpn_event_kind,
    /// The tunnel concerned (the new active tunnel for
    /// `VPN_EVENT_ACTIVE_TUNNEL_CHANGED`), or -1.
    pub tunnel: i32,
    /// `VPN_EVENT_ACTIVE_TUNNEL_CHANGED`: the previous active tunnel, or -1.
    pub from_tunnel: i32,
    /// `VPN_EVENT_TUNNEL_STATE_CHANGED`: the new `VPN_TUNNEL_*` state, else -1.
    pub state: i32,
}

/// CloudWatch's figures of one tunnel (`vpn_connection_tunnel_report`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct vpn_tunnel_report {
    /// TunnelState: 1 when the tunnel carries traffic, else 0.
    pub tunnel_state: u8,
    /// TunnelDataIn: bytes received, after decryption.
    pub tunnel_data_in: u64,
    /// TunnelDataOut: bytes sent, before encryption.
    pub tunnel_data_out: u64,
    pub packets_in: u64,
    pub packets_out: u64,
    /// Inbound packets dropped, all reasons together.
    pub drops_in: u64,
    /// Routes learned through the tunnel (BGP).
    pub accepted_routes: u64,
    /// Whether this is the active tunnel.
    pub active: bool,
}

/// A VPN connection: create with `vpn_connection_new`, release with
/// `vpn_connection_free`.
pub struct vpn_connection {
    conn: Connection,
    entropy: OsEntropy,
    /// A control datagram that did not fit the caller's buffer, kept in
    /// `scratch` until a big enough buffer comes.
    pending: Option<(usize, vpn_core::tunnel::Transmit)>,
    scratch: Vec<u8>,
}

fn ts(now_ns: u64) -> Timestamp {
    Timestamp::from_nanos(now_ns)
}

fn tunnel_err(e: TunnelError) -> vpn_result {
    match e {
        TunnelError::NotConnected => VPN_ERR_NOT_CONNECTED,
        TunnelError::InvalidSettings => VPN_ERR_INVALID_CONFIG,
        TunnelError::Esp(e) => e.into(),
        // InvalidSettings, and any variant the core adds later.
        #[allow(unreachable_patterns)]
        _ => VPN_ERR_INVALID_CONFIG,
    }
}

fn send_err(e: SendError) -> vpn_result {
    match e {
        SendError::NotIp => VPN_ERR_UNSUPPORTED_INNER_PACKET,
        SendError::NoRoute(_) => VPN_ERR_NO_ROUTE,
        SendError::TooBig { .. } => VPN_ERR_PACKET_TOO_BIG,
        SendError::Tunnel { error, .. } => tunnel_err(error),
    }
}

fn index(tunnel: usize) -> i32 {
    i32::try_from(tunnel).unwrap_or(-1)
}

fn opt_index(tunnel: Option<usize>) -> i32 {
    tunnel.map_or(-1, index)
}

/// Borrows a connection handle.
///
/// # Safety
///
/// `conn` is NULL or a live handle not used concurrently.
unsafe fn conn_mut<'a>(conn: *mut vpn_connection) -> Result<&'a mut vpn_connection, vpn_result> {
    // SAFETY: per the caller's contract a non-NULL `conn` came from
    // `Box::into_raw` in `vpn_connection_new`, is live and unaliased.
    unsafe { conn.as_mut() }.ok_or(VPN_ERR_NULL_ARGUMENT)
}

/// Borrows a connection handle for a getter.
///
/// # Safety
///
/// `conn` is NULL or a live handle not mutated concurrently.
unsafe fn conn_ref<'a>(conn: *const vpn_connection) -> Result<&'a vpn_connection, vpn_result> {
    // SAFETY: as `conn_mut`, shared.
    unsafe { conn.as_ref() }.ok_or(VPN_ERR_NULL_ARGUMENT)
}

/// Reads a `vpn_socket_addr` argument.
///
/// # Safety
///
/// `addr` is NULL or valid for a read.
unsafe fn addr_arg(addr: *const vpn_socket_addr) -> Result<SocketAddr, vpn_result> {
    non_null(addr)?;
    // SAFETY: non-NULL and valid for a read per the caller's contract.
    unsafe { addr.read() }.to_std()
}

/// Writes `value` through `out`.
///
/// # Safety
///
/// `out` is non-NULL and valid for a write.
unsafe fn put<T>(out: *mut T, value: T) {
    // SAFETY: per the caller's contract.
    unsafe { out.write(value) }
}

/// A copy of the configuration behind a handle, through its public JSON
/// export (which holds the pre-shared keys: the text is wiped after use).
///
/// # Safety
///
/// `config` is a live handle.
unsafe fn config_copy(
    config: *const vpn_config,
) -> Result<vpn_core::config::ConnectionConfig, vpn_result> {
    let mut n = 0usize;
    // SAFETY: `config` per the contract; `(NULL, 0)` asks for the size.
    let r =
        unsafe { vpn_config_to_string(config, VPN_CONFIG_JSON, core::ptr::null_mut(), 0, &mut n) };
    if r != VPN_ERR_BUFFER_TOO_SMALL {
        return Err(if r == VPN_OK { VPN_ERR_PANIC } else { r });
    }
    let mut text = vec![0u8; n];
    // SAFETY: `text` is valid for `n` bytes of writes.
    let r = unsafe {
        vpn_config_to_string(config, VPN_CONFIG_JSON, text.as_mut_ptr().cast(), n, &mut n)
    };
    let parsed = if r == VPN_OK {
        core::str::from_utf8(&text[..n])
            .ok()
            .and_then(|t| vpn_core::config::ConnectionConfig::from_json(t).ok())
            .ok_or(VPN_ERR_INVALID_CONFIG)
    } else {
        Err(r)
    };
    for b in text.iter_mut() {
        // SAFETY: `b` is a valid, exclusive reference; volatile so the
        // wipe of the pre-shared keys is not elided.
        unsafe { core::ptr::write_volatile(b, 0) };
    }
    parsed
}

/// Builds the connection a configuration describes (two IKE-keyed tunnels,
/// routing, failover), with the operating system's CSPRNG. Nothing is sent
/// until `vpn_connection_connect`. `config` is only read: free it whenever.
///
/// The configuration is validated first: on `VPN_ERR_INVALID_CONFIG` every
/// problem is recorded in this thread's last error, as `vpn_config_validate`
/// does (`vpn_last_error_count`, `vpn_last_error_field_at`, ...). A
/// configuration that validates but cannot be built (a proposal the stack
/// cannot negotiate, BGP settings) also returns `VPN_ERR_INVALID_CONFIG`.
///
/// # Safety
///
/// `config` is a live handle; `out` is valid for a write.
#[no_mangle]
pub unsafe extern "C" fn vpn_connection_new(
    config: *const vpn_config,
    now_ns: u64,
    out: *mut *mut vpn_connection,
) -> vpn_result {
    guard(|| {
        non_null(out)?;
        non_null(config)?;
        // SAFETY: `config` is a live handle per the contract. Validation
        // records every problem in the thread's last error.
        let r = unsafe { vpn_config_validate(config) };
        if r != VPN_OK {
            return Err(r);
        }
        // SAFETY: as above.
        let cfg = unsafe { config_copy(config) }?;
        let mut entropy = OsEntropy;
        let conn =
            Connection::from_config(&cfg, ts(now_ns), &mut entropy).map_err(|e| match e {
                ConnectionError::InvalidConfig(_)
                | ConnectionError::Bgp(_)
                | ConnectionError::InsideAddresses
                | ConnectionError::Tunnel { .. } => VPN_ERR_INVALID_CONFIG,
            })?;
        let handle = Box::into_raw(Box::new(vpn_connection {
            conn,
            entropy,
            pending: None,
            scratch: Vec::new(),
        }));
        // SAFETY: `out` is non-NULL and valid for a write per the contract.
        unsafe { put(out, handle) };
        Ok(())
    })
}

/// Frees a connection. NULL is ignored.
///
/// # Safety
///
/// `conn` is NULL or a handle from `vpn_connection_new` not used again.
#[no_mangle]
pub unsafe extern "C" fn vpn_connection_free(conn: *mut vpn_connection) {
    guard_value((), || {
        if !conn.is_null() {
            // SAFETY: a non-NULL `conn` came from `Box::into_raw` and is freed
            // once per the contract.
            drop(unsafe { Box::from_raw(conn) });
        }
    })
}

/// Brings up every tunnel the operator wants up: an initiating end starts
/// IKE (its first datagrams wait in `vpn_connection_poll_transmit`), a
/// responding end starts listening.
///
/// # Safety
///
/// `conn` is a live handle.
#[no_mangle]
pub unsafe extern "C" fn vpn_connection_connect(
    conn: *mut vpn_connection,
    now_ns: u64,
) -> vpn_result {
    guard(|| {
        // SAFETY: per the contract.
        let c = unsafe { conn_mut(conn) }?;
        c.conn
            .connect(ts(now_ns), &mut c.entropy)
            .map_err(tunnel_err)
    })
}

/// Administratively brings tunnel `tunnel` (0 or 1) up or down; down closes
/// it (traffic fails over to the other tunnel). `VPN_ERR_UNKNOWN_TUNNEL` for
/// an index past the last tunnel.
///
/// # Safety
///
/// `conn` is a live handle.
#[no_mangle]
pub unsafe extern "C" fn vpn_connection_set_tunnel_admin_up(
    conn: *mut vpn_connection,
    tunnel: u32,
    up: bool,
    now_ns: u64,
) -> vpn_result {
    guard(|| {
        // SAFETY: per the contract.
        let c = unsafe { conn_mut(conn) }?;
        let tunnel = tunnel as usize;
        if tunnel >= c.conn.tunnel_count() {
            return Err(VPN_ERR_UNKNOWN_TUNNEL);
        }
        c.conn
            .set_tunnel_admin_up(ts(now_ns), tunnel, up, &mut c.entropy)
            .map_err(tunnel_err)
    })
}

/// `vpn_connection_rekey_tunnel`: renew the tunnel's ESP child SA.
pub const VPN_REKEY_CHILD: u32 = 0;
/// `vpn_connection_rekey_tunnel`: renew the tunnel's IKE SA.
pub const VPN_REKEY_IKE: u32 = 1;

/// Renews a tunnel's child SA (`VPN_REKEY_CHILD`) or IKE SA
/// (`VPN_REKEY_IKE`) now, as `swanctl --rekey` does; the exchange's
/// datagrams wait in `vpn_connection_poll_transmit`. A tunnel without that
/// SA ignores it. `VPN_ERR_UNKNOWN_TUNNEL` for an index past the last
/// tunnel, `VPN_ERR_INVALID_ARGUMENT` for another `kind`.
///
/// # Safety
///
/// `conn` is a live handle.
#[no_mangle]
pub unsafe extern "C" fn vpn_connection_rekey_tunnel(
    conn: *mut vpn_connection,
    tunnel: u32,
    kind: u32,
    now_ns: u64,
) -> vpn_result {
    guard(|| {
        // SAFETY: per the contract.
        let c = unsafe { conn_mut(conn) }?;
        let tunnel = tunnel as usize;
        if tunnel >= c.conn.tunnel_count() {
            return Err(VPN_ERR_UNKNOWN_TUNNEL);
        }
        let kind = match kind {
            VPN_REKEY_CHILD => RekeyKind::Child,
            VPN_REKEY_IKE => RekeyKind::Ike,
            _ => return Err(VPN_ERR_INVALID_ARGUMENT),
        };
        c.conn.rekey_tunnel(ts(now_ns), tunnel, kind);
        Ok(())
    })
}

/// What `vpn_connection_replace_config` changed. Tunnel sets are bit masks:
/// bit `i` is tunnel index `i`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct vpn_config_change {
    /// Tunnels whose options changed: closed (IKE DELETE) and rebuilt,
    /// reconnecting if the connection had been started.
    pub tunnels_restarted: u32,
    /// Restarted tunnels that could not connect with their new options.
    pub tunnels_failed: u32,
    /// The static prefixes changed (the route table was rewritten).
    pub routes_changed: bool,
    /// Failover, MTU, MSS clamping, DF or fragmentation options changed.
    pub policy_changed: bool,
    /// The prefixes announced over BGP changed (on the running sessions).
    pub advertised_changed: bool,
}

fn mask(tunnels: impl IntoIterator<Item = usize>) -> u32 {
    tunnels
        .into_iter()
        .filter(|&t| t < 32)
        .fold(0, |m, t| m | 1 << t)
}

impl From<&ConfigChange> for vpn_config_change {
    fn from(c: &ConfigChange) -> Self {
        vpn_config_change {
            tunnels_restarted: mask(c.tunnels_restarted.iter().copied()),
            tunnels_failed: mask(c.failed_to_start.iter().map(|(t, _)| *t)),
            routes_changed: c.routes_changed,
            policy_changed: c.policy_changed,
            advertised_changed: c.advertised_changed,
        }
    }
}

/// Replaces the running configuration, as AWS's ModifyVpnTunnelOptions
/// does: only tunnels whose options changed restart (the other keeps
/// carrying traffic); static routes, prefixes announced over BGP and the
/// failover and packet options apply at once. Nothing changes on error: `VPN_ERR_INVALID_CONFIG` (every
/// problem in this thread's last error, as `vpn_config_validate` records
/// them) or `VPN_ERR_CANNOT_CHANGE` (a routing or role change, which needs
/// a new connection). `out` may be NULL; `config` is only read.
///
/// # Safety
///
/// `conn` and `config` are live handles; `out` is NULL or valid for a write.
#[no_mangle]
pub unsafe extern "C" fn vpn_connection_replace_config(
    conn: *mut vpn_connection,
    config: *const vpn_config,
    now_ns: u64,
    out: *mut vpn_config_change,
) -> vpn_result {
    guard(|| {
        non_null(config)?;
        // SAFETY: per the contract.
        let c = unsafe { conn_mut(conn) }?;
        // SAFETY: `config` is a live handle per the contract; validation
        // records every problem in the thread's last error.
        let r = unsafe { vpn_config_validate(config) };
        if r != VPN_OK {
            return Err(r);
        }
        // SAFETY: as above.
        let cfg = unsafe { config_copy(config) }?;
        let change = c
            .conn
            .replace_config(ts(now_ns), &cfg, &mut c.entropy)
            .map_err(|e| match e {
                ReplaceError::RoutingChange | ReplaceError::RoleChange => VPN_ERR_CANNOT_CHANGE,
                ReplaceError::NoConfig | ReplaceError::Invalid(_) => VPN_ERR_INVALID_CONFIG,
                // Any variant the core adds later.
                #[allow(unreachable_patterns)]
                _ => VPN_ERR_INVALID_CONFIG,
            })?;
        // SAFETY: `out` is NULL or valid for a write per the contract.
        if let Some(out) = unsafe { out.as_mut() } {
            *out = vpn_config_change::from(&change);
        }
        Ok(())
    })
}

/// Handles a UDP datagram received on `local` from `remote`: `buf[0..len]`
/// is decrypted in place. On `VPN_OK`, `*out` says what it was; with
/// `VPN_RECEIVED_INNER` the inner packet is at
/// `buf[out->inner_offset..][..out->inner_len]`. A datagram the connection
/// rejects is not an error: it is `VPN_RECEIVED_DROPPED` with a reason.
///
/// # Safety
///
/// `conn` is a live handle; `local`, `remote` valid for reads; `buf` valid
/// for `len` bytes of reads and writes (or NULL with `len` 0); `out` valid
/// for a write.
#[no_mangle]
pub unsafe extern "C" fn vpn_connection_handle_datagram(
    conn: *mut vpn_connection,
    now_ns: u64,
    local: *const vpn_socket_addr,
    remote: *const vpn_socket_addr,
    buf: *mut u8,
    len: usize,
    out: *mut vpn_received,
) -> vpn_result {
    guard(|| {
        non_null(out)?;
        // SAFETY: per the contract.
        let c = unsafe { conn_mut(conn) }?;
        // SAFETY: per the contract.
        let (local, remote) = unsafe { (addr_arg(local)?, addr_arg(remote)?) };
        // SAFETY: per the contract.
        let buf = unsafe { out_slice(buf, len) }?;
        let (tunnel, received) = c.conn.handle_datagram(ts(now_ns), local, remote, buf);
        let mut r = vpn_received {
            kind: VPN_RECEIVED_CONTROL,
            tunnel: opt_index(tunnel),
            inner_offset: 0,
            inner_len: 0,
            drop_reason: VPN_DROP_NONE,
            esp_error: 0,
        };
        match received {
            Received::Inner { range } => {
                r.kind = VPN_RECEIVED_INNER;
                r.inner_offset = range.start;
                r.inner_len = range.len();
            }
            Received::Control => {}
            Received::Dropped(reason) => {
                r.kind = VPN_RECEIVED_DROPPED;
                r.drop_reason = match reason {
                    DropReason::UnknownPeer => VPN_DROP_UNKNOWN_PEER,
                    DropReason::UnknownSpi => VPN_DROP_UNKNOWN_SPI,
                    DropReason::Esp(e) => {
                        r.esp_error = vpn_result::from(e) as u32;
                        VPN_DROP_ESP
                    }
                    DropReason::OutsideTrafficSelectors => VPN_DROP_OUTSIDE_TRAFFIC_SELECTORS,
                    DropReason::NotConnected => VPN_DROP_NOT_CONNECTED,
                    DropReason::Garbage => VPN_DROP_GARBAGE,
                };
            }
        }
        // SAFETY: `out` is non-NULL and valid for a write per the contract.
        unsafe { put(out, r) };
        Ok(())
    })
}

/// Routes the inner IP packet at `buf[vpn_connection_headroom(conn)..]`
/// (`inner_len` bytes) into a tunnel and seals it in place. `buf_len` must
/// cover headroom + `inner_len` + tailroom. On `VPN_OK`, `buf[0..out->len]`
/// is the datagram to send from `out->local` to `out->remote`, or, when
/// `out->icmp_too_big`, an ICMP "fragmentation needed" to deliver back to
/// the packet's sender; when `out->fragments` is non-zero the packet was
/// fragmented before encryption and the fragments come from
/// `vpn_connection_poll_transmit` (call it next).
///
/// Errors: `VPN_ERR_UNSUPPORTED_INNER_PACKET` (not IPv4/IPv6),
/// `VPN_ERR_NO_ROUTE` (no tunnel that is up routes the destination),
/// `VPN_ERR_PACKET_TOO_BIG` (over the tunnel MTU), `VPN_ERR_NOT_CONNECTED`,
/// `VPN_ERR_BUFFER_TOO_SMALL` (`buf_len` misses headroom or tailroom),
/// `VPN_ERR_INVALID_ARGUMENT` (`inner_len` past `buf_len`), ESP errors.
///
/// # Safety
///
/// `conn` is a live handle; `buf` valid for `buf_len` bytes of reads and
/// writes; `out` valid for a write.
#[no_mangle]
pub unsafe extern "C" fn vpn_connection_send_packet(
    conn: *mut vpn_connection,
    now_ns: u64,
    buf: *mut u8,
    buf_len: usize,
    inner_len: usize,
    out: *mut vpn_transmit,
) -> vpn_result {
    guard(|| {
        non_null(out)?;
        // SAFETY: per the contract.
        let c = unsafe { conn_mut(conn) }?;
        // SAFETY: per the contract.
        let buf = unsafe { out_slice(buf, buf_len) }?;
        let headroom = c.conn.headroom();
        if headroom
            .checked_add(inner_len)
            .is_none_or(|end| end > buf.len())
        {
            return Err(VPN_ERR_INVALID_ARGUMENT);
        }
        let t = match c
            .conn
            .send_packet(ts(now_ns), buf, inner_len)
            .map_err(send_err)?
        {
            SendOutcome::Sent { tunnel, transmit } => vpn_transmit {
                tunnel: index(tunnel),
                local: transmit.local.into(),
                remote: transmit.remote.into(),
                len: transmit.len,
                icmp_too_big: false,
                fragments: 0,
            },
            SendOutcome::Fragmented { tunnel, fragments } => vpn_transmit {
                tunnel: index(tunnel),
                fragments,
                ..vpn_transmit::default()
            },
            SendOutcome::IcmpTooBig { len } => vpn_transmit {
                tunnel: -1,
                len,
                icmp_too_big: true,
                ..vpn_transmit::default()
            },
        };
        // SAFETY: `out` is non-NULL and valid for a write per the contract.
        unsafe { put(out, t) };
        Ok(())
    })
}

/// Bytes `vpn_connection_send_packet` needs in front of the inner packet.
///
/// # Safety
///
/// `conn` is NULL (returns 0) or a live handle.
#[no_mangle]
pub unsafe extern "C" fn vpn_connection_headroom(conn: *const vpn_connection) -> usize {
    // SAFETY: per the contract.
    guard_value(0, || {
        // SAFETY: `conn` is NULL or a live handle per the contract.
        unsafe { conn_ref(conn) }.map_or(0, |c| c.conn.headroom())
    })
}

/// Bytes `vpn_connection_send_packet` may need after the inner packet.
///
/// # Safety
///
/// `conn` is NULL (returns 0) or a live handle.
#[no_mangle]
pub unsafe extern "C" fn vpn_connection_tailroom(conn: *const vpn_connection) -> usize {
    // SAFETY: per the contract.
    guard_value(0, || {
        // SAFETY: `conn` is NULL or a live handle per the contract.
        unsafe { conn_ref(conn) }.map_or(0, |c| c.conn.tailroom())
    })
}

/// Takes the next datagram the connection wants sent (IKE, keepalives,
/// BGP packets sealed into their tunnel): returns true and writes it to
/// `buf[0..out->len]` and its addresses to `*out`.
///
/// Returns false when there is nothing to send (`out->len` = 0), or when
/// `len` is too small for the next datagram: then `out->len` is the size
/// needed, `out->tunnel` -1, and the datagram stays queued for the next call.
/// A buffer of `VPN_MAX_DATAGRAM` bytes always suffices. NULL arguments
/// return false and write nothing.
///
/// # Safety
///
/// `conn` is a live handle; `buf` valid for `len` bytes of writes (or NULL
/// with `len` 0); `out` valid for a write.
#[no_mangle]
pub unsafe extern "C" fn vpn_connection_poll_transmit(
    conn: *mut vpn_connection,
    buf: *mut u8,
    len: usize,
    out: *mut vpn_transmit,
) -> bool {
    let mut sent = false;
    let r = guard(|| {
        non_null(out)?;
        // SAFETY: per the contract.
        let c = unsafe { conn_mut(conn) }?;
        // SAFETY: per the contract.
        let buf = unsafe { out_slice(buf, len) }?;
        if c.pending.is_none() {
            if c.scratch.len() < VPN_MAX_DATAGRAM {
                c.scratch.resize(VPN_MAX_DATAGRAM, 0);
            }
            c.pending = c.conn.poll_transmit(&mut c.scratch);
        }
        let mut t = vpn_transmit {
            tunnel: -1,
            ..vpn_transmit::default()
        };
        if let Some((tunnel, tx)) = c.pending {
            if buf.len() < tx.len {
                t.len = tx.len;
            } else {
                buf[..tx.len].copy_from_slice(&c.scratch[..tx.len]);
                c.pending = None;
                t = vpn_transmit {
                    tunnel: index(tunnel),
                    local: tx.local.into(),
                    remote: tx.remote.into(),
                    len: tx.len,
                    icmp_too_big: false,
                    fragments: 0,
                };
                sent = true;
            }
        }
        // SAFETY: `out` is non-NULL and valid for a write per the contract.
        unsafe { put(out, t) };
        Ok(())
    });
    r == VPN_OK && sent
}

fn state_code(s: TunnelState) -> i32 {
    match s {
        TunnelState::Down => VPN_TUNNEL_DOWN,
        TunnelState::Connecting => VPN_TUNNEL_CONNECTING,
        TunnelState::Up => VPN_TUNNEL_UP,
    }
}

fn event_fields(event: &ConnectionEvent) -> vpn_connection_event {
    let mut e = vpn_connection_event {
        kind: VPN_EVENT_TUNNEL_OTHER,
        tunnel: -1,
        from_tunnel: -1,
        state: -1,
    };
    match event {
        ConnectionEvent::Tunnel { tunnel, event } => {
            e.tunnel = index(*tunnel);
            e.kind = match event {
                TunnelEvent::StateChanged { to, .. } => {
                    e.state = state_code(*to);
                    VPN_EVENT_TUNNEL_STATE_CHANGED
                }
                TunnelEvent::Down { .. } => VPN_EVENT_TUNNEL_DOWN,
                TunnelEvent::IkeSaEstablished { .. } => VPN_EVENT_IKE_SA_ESTABLISHED,
                TunnelEvent::ChildSaInstalled { .. } => VPN_EVENT_CHILD_SA_INSTALLED,
                _ => VPN_EVENT_TUNNEL_OTHER,
            };
        }
        ConnectionEvent::ActiveTunnelChanged { from, to } => {
            e.kind = VPN_EVENT_ACTIVE_TUNNEL_CHANGED;
            e.tunnel = opt_index(*to);
            e.from_tunnel = opt_index(*from);
        }
        ConnectionEvent::Bgp(b) => {
            e.kind = VPN_EVENT_BGP;
            e.tunnel = index(match b {
                BgpEvent::Session { tunnel, .. }
                | BgpEvent::RouteAdded { tunnel, .. }
                | BgpEvent::RouteRemoved { tunnel, .. }
                | BgpEvent::OutboundCapReached { tunnel, .. } => *tunnel,
            });
        }
    }
    e
}

/// Takes the next event: returns true, writes its kind and tunnel to `*out`
/// and a one-line description (tunnels numbered from 1, as AWS does) to
/// `text_buf`, NUL-terminated and cut to fit `len` (like `snprintf`);
/// `*out_n` is the full text length without the NUL, so the text was cut
/// when `*out_n >= len`. `text_buf` may be NULL with `len` 0 and `out_n`
/// NULL when the text is not wanted. Returns false when there is no event
/// (or `conn`/`out` is NULL).
///
/// # Safety
///
/// `conn` is a live handle; `text_buf` valid for `len` bytes of writes (or
/// NULL with `len` 0); `out_n` NULL or valid for a write; `out` valid for a
/// write.
#[no_mangle]
pub unsafe extern "C" fn vpn_connection_poll_event(
    conn: *mut vpn_connection,
    text_buf: *mut c_char,
    len: usize,
    out_n: *mut usize,
    out: *mut vpn_connection_event,
) -> bool {
    let mut got = false;
    let _ = guard(|| {
        non_null(out)?;
        // SAFETY: per the contract.
        let c = unsafe { conn_mut(conn) }?;
        // SAFETY: per the contract.
        let text = unsafe { out_slice(text_buf.cast(), len) }?;
        let Some(event) = c.conn.poll_event() else {
            return Ok(());
        };
        let line = vpn_core::sim::describe(&event);
        let line = line.split('\0').next().unwrap_or_default().as_bytes();
        if let Some(room) = text.len().checked_sub(1) {
            let n = line.len().min(room);
            text[..n].copy_from_slice(&line[..n]);
            text[n] = 0;
        }
        if !out_n.is_null() {
            // SAFETY: non-NULL and valid for a write per the contract.
            unsafe { put(out_n, line.len()) };
        }
        // SAFETY: `out` is non-NULL and valid for a write per the contract.
        unsafe { put(out, event_fields(&event)) };
        got = true;
        Ok(())
    });
    got
}

/// The next deadline in nanoseconds (call `vpn_connection_handle_timeout`
/// then), or `UINT64_MAX` when there is none.
///
/// # Safety
///
/// `conn` is NULL (returns `UINT64_MAX`) or a live handle.
#[no_mangle]
pub unsafe extern "C" fn vpn_connection_poll_timeout(conn: *const vpn_connection) -> u64 {
    guard_value(u64::MAX, || {
        // SAFETY: per the contract.
        unsafe { conn_ref(conn) }
            .ok()
            .and_then(|c| c.conn.poll_timeout())
            .map_or(u64::MAX, Timestamp::as_nanos)
    })
}

/// Fires whatever is due at `now_ns` (retransmits, DPD, rekeys, failback).
/// Early or repeated calls are harmless.
///
/// # Safety
///
/// `conn` is a live handle.
#[no_mangle]
pub unsafe extern "C" fn vpn_connection_handle_timeout(
    conn: *mut vpn_connection,
    now_ns: u64,
) -> vpn_result {
    guard(|| {
        // SAFETY: per the contract.
        let c = unsafe { conn_mut(conn) }?;
        c.conn.handle_timeout(ts(now_ns));
        Ok(())
    })
}

/// The tunnel carrying traffic (active/standby; with active/active the
/// first healthy one), or -1 when none does (or `conn` is NULL).
///
/// # Safety
///
/// `conn` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn vpn_connection_active_tunnel(conn: *const vpn_connection) -> i32 {
    guard_value(-1, || {
        // SAFETY: per the contract.
        unsafe { conn_ref(conn) }.map_or(-1, |c| opt_index(c.conn.active_tunnel()))
    })
}

/// How many tunnels the connection has (2), or 0 when `conn` is NULL.
///
/// # Safety
///
/// `conn` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn vpn_connection_tunnel_count(conn: *const vpn_connection) -> usize {
    // SAFETY: per the contract.
    guard_value(0, || {
        // SAFETY: `conn` is NULL or a live handle per the contract.
        unsafe { conn_ref(conn) }.map_or(0, |c| c.conn.tunnel_count())
    })
}

/// Tunnel `tunnel`'s IPsec state (`VPN_TUNNEL_DOWN`, `_CONNECTING`, `_UP`),
/// or -1 for an unknown tunnel or a NULL `conn`.
///
/// # Safety
///
/// `conn` is NULL or a live handle.
#[no_mangle]
pub unsafe extern "C" fn vpn_connection_tunnel_state(
    conn: *const vpn_connection,
    tunnel: u32,
) -> i32 {
    guard_value(-1, || {
        // SAFETY: per the contract.
        unsafe { conn_ref(conn) }
            .ok()
            .and_then(|c| c.conn.tunnel(tunnel as usize))
            .map_or(-1, |t| state_code(t.state()))
    })
}

/// Writes tunnel `tunnel`'s CloudWatch figures to `*out`;
/// `VPN_ERR_UNKNOWN_TUNNEL` for an index past the last tunnel.
///
/// # Safety
///
/// `conn` is a live handle; `out` valid for a write.
#[no_mangle]
pub unsafe extern "C" fn vpn_connection_tunnel_report(
    conn: *const vpn_connection,
    tunnel: u32,
    out: *mut vpn_tunnel_report,
) -> vpn_result {
    guard(|| {
        non_null(out)?;
        // SAFETY: per the contract.
        let c = unsafe { conn_ref(conn) }?;
        let r = c
            .conn
            .tunnel_report(tunnel as usize)
            .ok_or(VPN_ERR_UNKNOWN_TUNNEL)?;
        let report = vpn_tunnel_report {
            tunnel_state: r.tunnel_state,
            tunnel_data_in: r.tunnel_data_in,
            tunnel_data_out: r.tunnel_data_out,
            packets_in: r.packets_in,
            packets_out: r.packets_out,
            drops_in: r.drops_in,
            accepted_routes: r.accepted_routes as u64,
            active: r.active,
        };
        // SAFETY: `out` is non-NULL and valid for a write per the contract.
        unsafe { put(out, report) };
        Ok(())
    })
}

/// Writes every metric in the Prometheus text exposition format, labelled
/// `connection="<name>"` (`name` NUL-terminated UTF-8) and `tunnel="1"`/`"2"`.
/// Buffer conventions as `vpn_config_to_string`: NUL-terminated text, its
/// length in `*out_n`; `VPN_ERR_BUFFER_TOO_SMALL` writes the size needed
/// (NUL included) to `*out_n`.
///
/// # Safety
///
/// `conn` is a live handle; `name` NUL-terminated; `buf` valid for `len`
/// bytes of writes (or NULL with `len` 0); `out_n` valid for a write.
#[no_mangle]
pub unsafe extern "C" fn vpn_connection_metrics_prometheus(
    conn: *const vpn_connection,
    name: *const c_char,
    buf: *mut c_char,
    len: usize,
    out_n: *mut usize,
) -> vpn_result {
    guard(|| {
        non_null(out_n)?;
        non_null(name)?;
        // SAFETY: per the contract.
        let c = unsafe { conn_ref(conn) }?;
        // SAFETY: non-NULL and NUL-terminated per the contract.
        let name = unsafe { CStr::from_ptr(name) }
            .to_str()
            .map_err(|_| VPN_ERR_INVALID_ARGUMENT)?;
        let text = c.conn.metrics_prometheus(name);
        // SAFETY: per the contract.
        unsafe { write_c_str(&text, buf.cast(), len, out_n) }
    })
}

/// Parses `"192.0.2.1:500"` or `"[2001:db8::1]:4500"` (NUL-terminated)
/// into `*out`. `VPN_ERR_INVALID_ARGUMENT` when it is not such an address.
///
/// # Safety
///
/// `text` NUL-terminated; `out` valid for a write.
#[no_mangle]
pub unsafe extern "C" fn vpn_socket_addr_parse(
    text: *const c_char,
    out: *mut vpn_socket_addr,
) -> vpn_result {
    guard(|| {
        non_null(out)?;
        non_null(text)?;
        // SAFETY: non-NULL and NUL-terminated per the contract.
        let addr: SocketAddr = unsafe { CStr::from_ptr(text) }
            .to_str()
            .ok()
            .and_then(|t| t.parse().ok())
            .ok_or(VPN_ERR_INVALID_ARGUMENT)?;
        // SAFETY: `out` is non-NULL and valid for a write per the contract.
        unsafe { put(out, addr.into()) };
        Ok(())
    })
}

/// Writes `*addr` as `"192.0.2.1:500"` / `"[2001:db8::1]:4500"`. Buffer
/// conventions as `vpn_connection_metrics_prometheus`;
/// `VPN_ERR_INVALID_ARGUMENT` for an unknown family.
///
/// # Safety
///
/// `addr` valid for a read; `buf` valid for `len` bytes of writes (or NULL
/// with `len` 0); `out_n` valid for a write.
#[no_mangle]
pub unsafe extern "C" fn vpn_socket_addr_format(
    addr: *const vpn_socket_addr,
    buf: *mut c_char,
    len: usize,
    out_n: *mut usize,
) -> vpn_result {
    guard(|| {
        non_null(out_n)?;
        // SAFETY: per the contract.
        let addr = unsafe { addr_arg(addr) }?;
        // SAFETY: per the contract.
        unsafe { write_c_str(&addr.to_string(), buf.cast(), len, out_n) }
    })
}

#[cfg(test)]
#[path = "connection_tests.rs"]
mod tests;
