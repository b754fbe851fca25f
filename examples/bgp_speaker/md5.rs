//! TCP-MD5 (RFC 2385) through Linux's `TCP_MD5SIG` socket option.
//!
//! Neither `socket2` nor `nix` offers this option, and `libc` has the constant but
//! not `struct tcp_md5sig`, so the structure is laid out here as bytes (no
//! `unsafe` for that) and handed to `setsockopt` in one small `unsafe` block.
//!
//! On a listening socket one key is installed per peer address (connections
//! accepted from that address inherit it; a peer whose segments carry no or a
//! wrong signature is dropped by the kernel); on an outgoing socket the key must be
//! installed before `connect`.

use std::io;
use std::net::{IpAddr, Ipv6Addr};
use std::os::fd::AsRawFd;

/// `sizeof(struct __kernel_sockaddr_storage)`.
const SOCKADDR_STORAGE: usize = 128;
/// `TCP_MD5SIG_MAXKEYLEN`.
pub const MAX_KEY: usize = 80;
/// `sizeof(struct tcp_md5sig)`: address, flags (u8), prefix length (u8), key length
/// (u16), ifindex (i32), key.
const STRUCT_LEN: usize = SOCKADDR_STORAGE + 1 + 1 + 2 + 4 + MAX_KEY;

/// `struct tcp_md5sig` for `peer` with `key`, as the kernel reads it. `v6_socket`:
/// the socket is AF_INET6, so an IPv4 peer is named by its v4-mapped address.
fn tcp_md5sig(peer: IpAddr, key: &[u8], v6_socket: bool) -> io::Result<[u8; STRUCT_LEN]> {
    if key.len() > MAX_KEY {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "TCP-MD5 key longer than 80 bytes",
        ));
    }
    let mut s = [0u8; STRUCT_LEN];
    let peer = match peer {
        IpAddr::V4(v4) if v6_socket => IpAddr::V6(v4.to_ipv6_mapped()),
        p => p,
    };
    match peer {
        IpAddr::V4(v4) => {
            // struct sockaddr_in: family (host order), port (0), address.
            s[0..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
            s[4..8].copy_from_slice(&v4.octets());
        }
        IpAddr::V6(v6) => {
            // struct sockaddr_in6: family, port, flowinfo, address, scope id.
            s[0..2].copy_from_slice(&(libc::AF_INET6 as u16).to_ne_bytes());
            s[8..24].copy_from_slice(&Ipv6Addr::octets(&v6));
        }
    }
    // tcpm_flags = 0, tcpm_prefixlen = 0 (exact address), tcpm_ifindex = 0.
    s[SOCKADDR_STORAGE + 2..SOCKADDR_STORAGE + 4]
        .copy_from_slice(&(key.len() as u16).to_ne_bytes());
    s[SOCKADDR_STORAGE + 8..SOCKADDR_STORAGE + 8 + key.len()].copy_from_slice(key);
    Ok(s)
}

/// Installs the TCP-MD5 key for `peer` on `socket` (listening, or not yet connected).
pub fn set_key(socket: &impl AsRawFd, v6_socket: bool, peer: IpAddr, key: &str) -> io::Result<()> {
    let sig = tcp_md5sig(peer, key.as_bytes(), v6_socket)?;
    let fd = socket.as_raw_fd();
    // SAFETY: `fd` is an open socket borrowed from `socket` for the duration of the
    // call; `sig` is a live, initialised buffer of exactly `STRUCT_LEN` bytes laid
    // out as `struct tcp_md5sig` (checked against the kernel's size below), and the
    // length passed is its size, so the kernel reads only memory we own. The call
    // does not retain the pointer.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_TCP,
            libc::TCP_MD5SIG,
            sig.as_ptr().cast::<libc::c_void>(),
            STRUCT_LEN as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

// The kernel's `struct tcp_md5sig` is 216 bytes on every Linux architecture.
const _: () = assert!(STRUCT_LEN == 216);
