"""Type stubs for the compiled extension ``vpn._vpn``."""

import os
from typing import Any, Literal, Optional, TypedDict, Union

_BytesLike = Union[bytes, bytearray, memoryview]
_Writable = Union[bytearray, memoryview]

class VpnError(Exception):
    """Base class of every error raised by the vpn module."""

class ConfigError(VpnError, ValueError):
    """An invalid configuration: an ESP SA's (unknown algorithm keyword, wrong
    key length, inconsistent settings) or a connection's (:class:`Config`)."""

    field: Optional[str]
    """The first offending field (``tunnels[1].psk``), or None (syntax errors)."""
    errors: list[tuple[Optional[str], str]]
    """Every problem as ``(field, message)``."""

class BufferTooSmallError(VpnError, ValueError):
    """The output buffer is too small."""

    needed: int

class MalformedPacketError(VpnError):
    """Not a valid ESP packet for this SA, or an inner packet that is not IPv4/IPv6."""

class AuthenticationError(VpnError):
    """ICV verification failed."""

class ReplayError(VpnError):
    """Anti-replay check failed."""

    sequence: int
    kind: Literal["duplicate", "too_old"]

class SaExpiredError(VpnError):
    """Hard lifetime reached or sequence numbers exhausted: rekey."""

class _Counters(TypedDict):
    packets_out: int
    bytes_out: int
    packets_in: int
    bytes_in: int
    icv_failures: int
    replay_duplicates: int
    replay_too_old: int
    replay_drops: int
    malformed: int
    dummy_packets: int

class _EventBase(TypedDict):
    event: Literal["soft_lifetime", "hard_lifetime", "sequence_exhausted"]
    spi: int

class _Event(_EventBase, total=False):
    limit: Literal["bytes", "packets", "time"]

class EspSa:
    """One ESP security association in tunnel mode (RFC 4303).

    ``enc`` and ``integ`` are strongSwan keywords (``aes256gcm16``,
    ``chacha20poly1305``, ``aes128`` + ``sha256``, ...). AEAD keys are the
    cipher key followed by the 4-byte salt. Every method that moves time takes
    ``now_ns`` (nanoseconds on a monotonic clock); it defaults to
    ``time.monotonic_ns()``.
    """

    def __init__(
        self,
        spi: int,
        enc: str,
        enc_key: _BytesLike,
        integ: Optional[str] = None,
        integ_key: Optional[_BytesLike] = None,
        esn: bool = False,
        replay_window: int = 1024,
        *,
        udp_encap: Optional[tuple[int, int]] = None,
        tfc_pad_to: Optional[int] = None,
        aead_pad_to_16: bool = True,
        soft_bytes: Optional[int] = None,
        soft_packets: Optional[int] = None,
        soft_seconds: Optional[float] = None,
        hard_bytes: Optional[int] = None,
        hard_packets: Optional[int] = None,
        hard_seconds: Optional[float] = None,
        now_ns: Optional[int] = None,
    ) -> None: ...
    def encapsulate(self, inner: _BytesLike, *, now_ns: Optional[int] = None) -> bytes:
        """Encapsulates an inner IPv4/IPv6 packet; returns the ESP packet (from the SPI)."""
    def encapsulate_into(
        self, inner: _BytesLike, out: _Writable, *, now_ns: Optional[int] = None
    ) -> int:
        """Writes the ESP packet to ``out[:n]`` and returns ``n``."""
    def decapsulate(self, esp: _BytesLike, *, now_ns: Optional[int] = None) -> bytes:
        """Verifies and decrypts an ESP packet; returns the inner IP packet."""
    def decapsulate_into(
        self, esp: _BytesLike, out: _Writable, *, now_ns: Optional[int] = None
    ) -> int:
        """Writes the inner packet to ``out[:n]`` and returns ``n``; ``len(out) >= len(esp)``."""
    def encapsulated_len(self, inner_len: int) -> int: ...
    def handle_timeout(self, *, now_ns: Optional[int] = None) -> None: ...
    def poll_timeout(self) -> Optional[int]: ...
    def poll_event(self) -> Optional[_Event]: ...
    def counters(self) -> _Counters: ...
    @property
    def spi(self) -> int: ...
    @property
    def encryption(self) -> str: ...
    @property
    def integrity(self) -> Optional[str]: ...
    @property
    def esn(self) -> bool: ...
    @property
    def replay_window(self) -> int: ...
    @property
    def headroom(self) -> int: ...
    @property
    def tailroom(self) -> int: ...
    @property
    def last_sequence_out(self) -> int: ...
    @property
    def expired(self) -> bool: ...
    @property
    def packets_out(self) -> int: ...
    @property
    def bytes_out(self) -> int: ...
    @property
    def packets_in(self) -> int: ...
    @property
    def bytes_in(self) -> int: ...
    @property
    def icv_failures(self) -> int: ...
    @property
    def replay_duplicates(self) -> int: ...
    @property
    def replay_too_old(self) -> int: ...
    @property
    def replay_drops(self) -> int: ...
    @property
    def malformed(self) -> int: ...
    @property
    def dummy_packets(self) -> int: ...

def encryption_algorithms() -> list[str]: ...
def integrity_algorithms() -> list[str]: ...
def key_length(keyword: str, integrity: bool = False) -> int: ...

class Config:
    """A VPN connection's configuration: two redundant tunnels, static or BGP
    routing, failover (``vpn_core::config::ConnectionConfig``).

    Load with a ``from_*`` constructor, then call :meth:`validate`. Pre-shared
    keys appear only in :meth:`to_toml`, :meth:`to_json`, :meth:`to_swanctl`,
    ``summary(show_secrets=True)`` and ``to_dict(show_secrets=True)``; never in
    errors or the repr. Text arguments are ``str`` or UTF-8 ``bytes``; all
    parse and validation problems raise :class:`ConfigError`.
    """

    @staticmethod
    def from_toml(text: Union[str, bytes]) -> Config:
        """Parse the native TOML format (syntax and types only)."""
    @staticmethod
    def from_json(text: Union[str, bytes]) -> Config:
        """Parse the native JSON format (the same keys as TOML)."""
    @staticmethod
    def from_aws_xml(text: Union[str, bytes]) -> Config:
        """Import AWS's CustomerGatewayConfiguration XML."""
    @staticmethod
    def from_file(path: Union[str, os.PathLike[str]]) -> Config:
        """Read a ``.toml``, ``.json`` or ``.xml`` (AWS) file; OSError if unreadable."""
    def merge_aws_tunnel_options(self, json: Union[str, bytes]) -> None:
        """Overlay DescribeVpnConnections TunnelOptions; all or nothing."""
    def validate(self) -> None:
        """Raise :class:`ConfigError` listing every problem."""
    def to_toml(self) -> str:
        """Native TOML (contains the pre-shared keys)."""
    def to_json(self) -> str:
        """Native JSON (contains the pre-shared keys)."""
    def to_swanctl(self) -> str:
        """strongSwan swanctl.conf for the other end (contains the pre-shared keys)."""
    def to_bird(self) -> Optional[str]:
        """BIRD 2 config for the other end's BGP sessions; None with static routing."""
    def summary(self, show_secrets: bool = False) -> str:
        """Readable description; keys shown as ``<redacted>`` unless ``show_secrets``."""
    def to_dict(self, show_secrets: bool = False) -> dict[str, Any]:
        """Plain data in the JSON format's shape; ``psk`` redacted unless ``show_secrets``."""
    @property
    def name(self) -> str: ...
    @property
    def role(self) -> Literal["cgw", "vgw"]: ...
    @property
    def routing(self) -> Literal["static", "bgp"]: ...
    @property
    def local_asn(self) -> Optional[int]:
        """This end's ASN with BGP routing, else None."""
    @property
    def peer_asn(self) -> Optional[int]:
        """The other end's ASN with BGP routing, else None."""
    @property
    def outside_addresses(self) -> list[tuple[str, str]]:
        """Per tunnel, ``(local, remote)`` outside addresses."""
    @property
    def inside_cidrs(self) -> list[str]:
        """Per tunnel, the inside /30."""
    def __eq__(self, other: object) -> bool: ...

_BgpEventKind = Literal[
    "state_changed",
    "established",
    "down",
    "route_added",
    "route_changed",
    "route_withdrawn",
    "end_of_rib",
    "stale_routes_expired",
    "route_refresh_requested",
    "outbound_cap_reached",
]
_BgpState = Literal["idle", "connect", "active", "open_sent", "open_confirm", "established"]
_BgpDownReason = Literal[
    "admin_down",
    "hold_timer_expired",
    "notification_received",
    "notification_sent",
    "bad_peer_as",
    "connection_closed",
    "max_prefixes",
]

class _BgpEventDict(TypedDict):
    kind: _BgpEventKind
    peer: Optional[int]
    state: Optional[_BgpState]
    prefix: Optional[str]
    next_hop: Optional[str]
    reason: Optional[_BgpDownReason]
    error_code: Optional[int]
    error_subcode: Optional[int]
    expected_asn: Optional[int]
    received_asn: Optional[int]
    message: str

class BgpEvent:
    """Something a :class:`BgpSpeaker` reports (immutable). Fields that do not
    apply are None."""

    @property
    def kind(self) -> _BgpEventKind: ...
    @property
    def peer(self) -> Optional[int]:
        """The neighbour; for route events the route's source (None: our own route, or a withdrawal)."""
    @property
    def state(self) -> Optional[_BgpState]:
        """Session events: the session's state."""
    @property
    def prefix(self) -> Optional[str]:
        """Route events: ``"10.1.0.0/16"``."""
    @property
    def next_hop(self) -> Optional[str]:
        """Route events: the next hop, if any."""
    @property
    def reason(self) -> Optional[_BgpDownReason]:
        """Down events: why."""
    @property
    def error_code(self) -> Optional[int]:
        """NOTIFICATION error code of a down event."""
    @property
    def error_subcode(self) -> Optional[int]: ...
    @property
    def expected_asn(self) -> Optional[int]:
        """``bad_peer_as``: the AS configured for the neighbour."""
    @property
    def received_asn(self) -> Optional[int]:
        """``bad_peer_as``: the AS in the neighbour's OPEN."""
    @property
    def message(self) -> str:
        """A human-readable description."""
    def to_dict(self) -> _BgpEventDict: ...

class BgpSpeaker:
    """A sans-IO BGP-4 speaker: the caller owns the TCP connections and the clock.

    After any input or command, drain :meth:`poll_transmit` (write the bytes to
    that neighbour's connection), :meth:`poll_action` (connect / close) and
    :meth:`poll_event` until they return None, then call :meth:`handle_timeout`
    at :meth:`poll_timeout`. ``now_ns`` defaults to ``time.monotonic_ns()``.
    """

    def __init__(self, asn: int, router_id: str) -> None:
        """``router_id`` is a dotted quad; :class:`ConfigError` for AS 0 or 0.0.0.0."""
    def add_neighbor(
        self,
        peer_address: str,
        peer_asn: int,
        *,
        local_address: Optional[str] = None,
        passive: bool = False,
        hold_time: int = 30,
        policy: Literal["default", "all", "none"] = "default",
    ) -> int:
        """Add a neighbour (idle until :meth:`start`); returns its number.

        ``policy`` covers both directions: ``"default"`` is RFC 8212 (nothing
        from or to an eBGP neighbour), ``"all"`` accepts and announces
        everything, ``"none"`` nothing. ValueError for unparsable addresses,
        :class:`ConfigError` for invalid settings."""
    def start(self, peer: int, *, now_ns: Optional[int] = None) -> None: ...
    def stop(self, peer: int, reason: str = "", *, now_ns: Optional[int] = None) -> None:
        """Administrative shutdown with an RFC 9003 message."""
    def announce(self, prefix: str, next_hop: Optional[str] = None) -> None:
        """Originate ``prefix`` (ORIGIN IGP); ``next_hop`` is what :meth:`rib` shows."""
    def withdraw(self, prefix: str) -> None: ...
    def handle_connected(self, peer: int, outbound: bool, *, now_ns: Optional[int] = None) -> None:
        """A TCP connection is up: ``outbound`` if we opened it."""
    def handle_closed(self, peer: int, outbound: bool, *, now_ns: Optional[int] = None) -> None:
        """A TCP connection closed (or an outbound attempt failed)."""
    def handle_bytes(
        self, peer: int, outbound: bool, data: _BytesLike, *, now_ns: Optional[int] = None
    ) -> None:
        """Bytes read from a connection; malformed input never raises (NOTIFICATION + ``down`` event)."""
    def handle_timeout(self, *, now_ns: Optional[int] = None) -> None: ...
    def poll_transmit(self) -> Optional[tuple[int, bool, bytes]]:
        """``(peer, outbound, data)`` to write, or None."""
    def poll_action(self) -> Optional[tuple[int, Literal["connect", "close"], bool]]:
        """``(peer, action, outbound)``, or None."""
    def poll_event(self) -> Optional[BgpEvent]: ...
    def poll_events(self) -> list[BgpEvent]:
        """Every pending event."""
    def poll_timeout(self) -> Optional[int]:
        """When to call :meth:`handle_timeout` next (ns), or None."""
    def peer_state(self, peer: int) -> _BgpState: ...
    def rib(self) -> list[tuple[str, Optional[str]]]:
        """The Loc-RIB as ``(prefix, next_hop)`` in prefix order."""
    def __len__(self) -> int:
        """Routes in the Loc-RIB."""

# ---------------------------------------------------------------------------
# Connection
# ---------------------------------------------------------------------------

class NoRouteError(VpnError):
    """No tunnel that is up routes the inner packet's destination."""

class PacketTooBigError(VpnError):
    """The inner packet exceeds the tunnel MTU."""

    mtu: int

class TunnelNotUpError(VpnError):
    """The tunnel is not up."""

class Received:
    """What :meth:`Connection.handle_datagram` made of a datagram."""

    kind: Literal["inner", "control", "dropped"]
    tunnel: Optional[int]
    """The tunnel whose peer sent it (0 or 1), or None."""
    inner: Optional[bytes]
    """With ``"inner"``: the decrypted inner IP packet."""
    reason: Optional[str]
    """With ``"dropped"``: ``"unknown_peer"``, ``"unknown_spi"``, ``"esp: ..."``,
    ``"outside_traffic_selectors"``, ``"not_connected"`` or ``"garbage"``."""

class Transmit:
    """A UDP datagram to send (or, from :meth:`Connection.send_packet`, an ICMP
    reply to deliver back inside when ``icmp_too_big``)."""

    tunnel: Optional[int]
    local: Optional[tuple[str, int]]
    remote: Optional[tuple[str, int]]
    data: bytes
    icmp_too_big: bool

class ConnectionEvent:
    """Something that happened to a :class:`Connection`."""

    kind: Literal[
        "tunnel_state_changed",
        "tunnel_down",
        "ike_sa_established",
        "child_sa_installed",
        "tunnel_other",
        "active_tunnel_changed",
        "bgp",
    ]
    tunnel: Optional[int]
    """The tunnel concerned (the new active one for ``active_tunnel_changed``)."""
    from_tunnel: Optional[int]
    """``active_tunnel_changed``: the previous active tunnel."""
    state: Optional[Literal["down", "connecting", "up"]]
    """``tunnel_state_changed``: the new state."""
    text: str
    """One line for a log (tunnels numbered from 1)."""

class _TunnelReport(TypedDict):
    TunnelState: int
    TunnelDataIn: int
    TunnelDataOut: int
    PacketsIn: int
    PacketsOut: int
    DropsIn: int
    AcceptedRoutes: int
    Active: bool

class Connection:
    """A site-to-site VPN connection (two IPsec tunnels, routing, failover),
    sans-IO. ``now_ns`` defaults to ``time.monotonic_ns()`` everywhere."""

    @staticmethod
    def from_config(config: Config, now_ns: Optional[int] = None) -> Connection:
        """Validates ``config`` (raising :class:`ConfigError`) and builds the connection."""
    def connect(self, now_ns: Optional[int] = None) -> None: ...
    def set_tunnel_admin_up(self, tunnel: int, up: bool, now_ns: Optional[int] = None) -> None: ...
    def rekey_tunnel(self, tunnel: int, ike: bool = False, now_ns: Optional[int] = None) -> None:
        """Renews the tunnel's child SA (its IKE SA with ``ike=True``) now."""
    def replace_config(self, config: Config, now_ns: Optional[int] = None) -> dict[str, Any]:
        """Applies ``config``, restarting only the tunnels whose options changed;
        returns ``tunnels_restarted``, ``failed_to_start``, ``routes_changed``,
        ``policy_changed``, ``advertised_changed``. Raises :class:`ConfigError` or, for a routing or
        role change, :class:`VpnError`."""
    def handle_datagram(
        self,
        local: tuple[str, int],
        remote: tuple[str, int],
        data: _BytesLike,
        now_ns: Optional[int] = None,
    ) -> Received: ...
    def send_packet(self, inner: _BytesLike, now_ns: Optional[int] = None) -> Optional[Transmit]:
        """The sealed datagram, or None when the packet was fragmented before
        encryption (the fragments come from :meth:`poll_transmit`). Raises
        :class:`NoRouteError`, :class:`PacketTooBigError`,
        :class:`MalformedPacketError`, :class:`TunnelNotUpError`."""
    def poll_transmit(self) -> Optional[Transmit]: ...
    def poll_events(self) -> list[ConnectionEvent]: ...
    def poll_timeout(self) -> Optional[int]: ...
    def handle_timeout(self, now_ns: Optional[int] = None) -> None: ...
    @property
    def active_tunnel(self) -> Optional[int]: ...
    @property
    def tunnel_count(self) -> int: ...
    def tunnel_state(self, tunnel: int) -> Literal["down", "connecting", "up"]: ...
    def tunnel_report(self, tunnel: int) -> _TunnelReport: ...
    def metrics(self) -> dict[int, _TunnelReport]: ...
    def metrics_prometheus(self, name: str) -> str: ...
