#!/usr/bin/env python3
"""One side of a real site-to-site VPN connection, driven from asyncio.

`vpn.Connection` is sans-IO: this program owns the UDP sockets (ports 500 and
4500 on every local outside address, as asyncio datagram endpoints), an
optional Linux TUN device and the clock, and feeds the connection. Every
protocol and routing decision is the connection's; the program only moves
bytes and time (the Python counterpart of `examples/connection_gateway.rs`).

Inner traffic:

* with `--tun NAME` the program creates a TUN device (IPv4 address
  `--tun-addr`, MTU the connection's, routes `--route`, repeatable): packets
  the kernel routes into it go through `conn.send_packet`, and inner packets
  the tunnels deliver are written back to it. Against a real peer:

      ip netns exec cgw .venv/bin/python examples/python/asyncio_tunnel.py \\
          --config cgw.json --tun vpn0 --tun-addr 10.1.0.1/32 --route 10.2.0.0/24
      ip netns exec cgw ping -I 10.1.0.1 10.2.0.1

  (`cgw.json` is a `vpn.Config` saved as TOML/JSON, or AWS's XML; the other end
  can be strongSwan loaded with `vpn.Config.to_swanctl()` of the same config.)
* without `--tun`, once a tunnel is up it sends a test packet (UDP from this
  site's LAN, 10.1.0.5 or 10.2.0.9, to the other's, port 9) every 3 seconds
  and prints every inner packet it receives.

Supervision (`--json`): stdout carries one JSON object per line, each with an
`event` key: `ready` (sockets and TUN up: `local`, `remotes`, `ports`, `tun`,
`mtu`), `event` (`tunnel` 1-based or null, `kind`, `text`, and `state` for a
state change), `active_tunnel` (`from`, `to`, 1-based or null), `status`,
`error` (`message`) and `stopped` last. Logs go to stderr. stdin takes
commands, one JSON object per line: `{"cmd": "status"}`, `{"cmd": "connect"}`,
`{"cmd": "tunnel", "tunnel": 1, "up": false}`. Without `--json` the logs go to
stdout and stdin is not read.

SIGTERM / SIGINT close every tunnel (IKE DELETEs), keep serving the sockets
until all are down (at most 2 s), then print `stopped` and exit 0; a second
signal stops at once.

Built-in demo: both ends of a connection in two network namespaces joined by a
veth pair (as root):

    ip netns add cgw; ip netns add vgw
    ip link add veth-cgw netns cgw type veth peer name veth-vgw netns vgw
    ip -n cgw addr add 203.0.113.10/24 dev veth-cgw
    ip -n cgw addr add 198.51.100.1/24 dev veth-cgw   # a route to AWS's side
    ip -n vgw addr add 198.51.100.21/24 dev veth-vgw
    ip -n vgw addr add 198.51.100.87/24 dev veth-vgw
    ip -n vgw addr add 203.0.113.1/24 dev veth-vgw    # a route back
    ip -n cgw link set veth-cgw up; ip -n vgw link set veth-vgw up
    ip -n cgw link set lo up; ip -n vgw link set lo up

    # AWS's end (answers), then the customer gateway (initiates):
    ip netns exec vgw python3 examples/python/asyncio_tunnel.py --role vgw &
    ip netns exec cgw python3 examples/python/asyncio_tunnel.py --role cgw

Both demo configs keep AWS's default `startup_action = "add"`: the customer
gateway initiates, AWS's end answers. Stop with Ctrl-C.
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import ipaddress
import json
import os
import signal
import struct
import subprocess
import sys
import time
from collections import Counter
from typing import Any

import vpn

IKE_PORTS = (500, 4500)
DEFAULT_MTU = 1436
STOP_LINGER = 2.0  # seconds a graceful stop waits for the tunnels to close
BATCH = 64  # TUN packets handled per readiness callback
MAX_PACKET = 65535

# <linux/if_tun.h>
TUNSETIFF = 0x400454CA
IFF_TUN = 0x0001
IFF_NO_PI = 0x1000

AWS_ENDS = [("198.51.100.21", "169.254.44.40/30"), ("198.51.100.87", "169.254.201.136/30")]
CGW_ADDRESS = "203.0.113.10"
LANS = {"cgw": ("10.1.0.5", "10.2.0.9"), "vgw": ("10.2.0.9", "10.1.0.5")}


def demo_config(role: str) -> vpn.Config:
    """Matching CGW/VGW configs: IKEv2, static routing, two tunnels."""
    cgw = role == "cgw"
    peer_lan = "10.2.0.0/16" if cgw else "10.1.0.0/16"
    text = (
        f'name = "asyncio-{role}"\nrole = "{role}"\n'
        f'[routing]\ntype = "static"\nprefixes = ["{peer_lan}"]\n'
    )
    for i, (aws, inside) in enumerate(AWS_ENDS):
        local, remote = (CGW_ADDRESS, aws) if cgw else (aws, CGW_ADDRESS)
        text += (
            f'[[tunnels]]\nlocal_outside_address = "{local}"\n'
            f'remote_outside_address = "{remote}"\ninside_cidr = "{inside}"\n'
            f'psk = "asyncio_demo.tunnel{i + 1}"\nike_version = 2\n'
            'ike_proposals = ["aes256gcm16-prfsha256-ecp256"]\n'
            'esp_proposals = ["aes256gcm16-ecp256"]\n'
        )
    return vpn.Config.from_toml(text)


def ip_checksum(header: bytes) -> int:
    """The Internet checksum (RFC 1071) of an even-length header."""
    total = sum(int(word) for word in struct.unpack(f"!{len(header) // 2}H", header))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def test_packet(src: str, dst: str, payload: bytes) -> bytes:
    """An IPv4/UDP packet from `src` to `dst` port 9 (UDP checksum zero, which
    IPv4 allows; the IP header checksum is set, as a receiving kernel checks it)."""
    total = 28 + len(payload)
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, 0, 0, 64, 17, 0,
                         ipaddress.IPv4Address(src).packed, ipaddress.IPv4Address(dst).packed)
    header = header[:10] + struct.pack("!H", ip_checksum(header)) + header[12:]
    return header + struct.pack("!HHHH", 40000, 9, 8 + len(payload), 0) + payload


def number(index: int | None) -> int | None:
    """A 0-based tunnel index as AWS numbers tunnels (from 1)."""
    return None if index is None else index + 1


class Output:
    """JSON lines on stdout for a supervisor (`--json`), human logs otherwise."""

    def __init__(self, json_lines: bool) -> None:
        self.json_lines = json_lines
        self.problems: Counter[str] = Counter()

    def emit(self, event: str, fields: dict[str, Any] | None = None) -> None:
        if self.json_lines:
            print(json.dumps({"event": event, **(fields or {})}), flush=True)

    def log(self, text: str) -> None:
        print(text, file=sys.stderr if self.json_lines else sys.stdout, flush=True)

    def error(self, message: str) -> None:
        self.log(f"error: {message}")
        self.emit("error", {"message": message})

    def problem(self, key: str, text: str) -> None:
        """Logs the 1st..5th, then every 1000th occurrence of a recurring problem."""
        self.problems[key] += 1
        n = self.problems[key]
        if n <= 5 or n % 1000 == 0:
            self.log(f"{text} (occurrence {n})")


class Tun:
    """A Linux TUN device without packet-information header, non-blocking."""

    def __init__(self, name: str, out: Output) -> None:
        self.out = out
        fd = os.open("/dev/net/tun", os.O_RDWR | os.O_CLOEXEC)
        try:
            ifr = fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH22x", name.encode(), IFF_TUN | IFF_NO_PI))
        except OSError:
            os.close(fd)
            raise
        os.set_blocking(fd, False)
        self.fd = fd
        self.name = ifr[:16].rstrip(b"\0").decode()

    def configure(self, address: str, mtu: int, routes: list[str]) -> None:
        """Address, MTU, up, routes, with `ip`; IPv4 only (no router
        solicitations or MLD reports into the tunnels)."""
        try:
            with open(f"/proc/sys/net/ipv6/conf/{self.name}/disable_ipv6", "w") as f:
                f.write("1")
        except OSError as e:
            self.out.log(f"cannot disable IPv6 on {self.name}: {e}")
        commands = [
            ["ip", "addr", "replace", address, "dev", self.name],
            ["ip", "link", "set", "dev", self.name, "mtu", str(mtu), "up"],
            *(["ip", "route", "replace", prefix, "dev", self.name] for prefix in routes),
        ]
        for cmd in commands:
            res = subprocess.run(cmd, capture_output=True, text=True)
            if res.returncode != 0:
                raise OSError(f"{' '.join(cmd)}: {res.stderr.strip() or res.returncode}")

    def read(self) -> bytes | None:
        try:
            return os.read(self.fd, MAX_PACKET)
        except BlockingIOError:
            return None

    def write(self, packet: bytes) -> None:
        try:
            os.write(self.fd, packet)
        except OSError as e:  # a full queue included: the packet is lost
            self.out.problem("tun_write", f"TUN write: {e}")

    def close(self) -> None:
        os.close(self.fd)


class Endpoint(asyncio.DatagramProtocol):
    """One bound UDP socket; hands datagrams to the gateway."""

    def __init__(self, gateway: Gateway, local: tuple[str, int]) -> None:
        self.gateway = gateway
        self.local = local
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.gateway.received(self.local, (addr[0], addr[1]), data)


class Gateway:
    """Moves bytes between the kernel and the connection, and keeps its timer."""

    def __init__(self, conn: vpn.Connection, role: str, out: Output) -> None:
        self.conn = conn
        self.role = role
        self.out = out
        self.loop = asyncio.get_running_loop()
        self.endpoints: dict[tuple[str, int], Endpoint] = {}
        self.tun: Tun | None = None
        self.timer: asyncio.TimerHandle | None = None
        self.timer_deadline: int | None = None
        self.stopping = False
        self.done: asyncio.Future[None] = self.loop.create_future()

    # ---- I/O
    async def bind(self, addresses: list[str]) -> None:
        for address in addresses:
            for port in IKE_PORTS:
                endpoint = Endpoint(self, (address, port))
                self.endpoints[endpoint.local] = endpoint
                await self.loop.create_datagram_endpoint(lambda: endpoint, local_addr=endpoint.local)

    def attach_tun(self, tun: Tun) -> None:
        self.tun = tun
        self.loop.add_reader(tun.fd, self.on_tun)

    def received(self, local: tuple[str, int], remote: tuple[str, int], data: bytes) -> None:
        r = self.conn.handle_datagram(local, remote, data)
        if r.kind == "inner" and r.inner is not None:
            if self.tun is not None:
                self.tun.write(r.inner)
            else:
                self.out.log(f"[tunnel {number(r.tunnel) or '?'}] inner packet: {r.inner!r}")
        elif r.kind == "dropped":
            self.out.problem(f"dropped {r.reason}", f"dropped a datagram from {remote[0]}:{remote[1]}: {r.reason}")
        self.flush()

    def on_tun(self) -> None:
        assert self.tun is not None
        for _ in range(BATCH):
            packet = self.tun.read()
            if packet is None:
                break
            self.send_inner(packet)
        self.flush()

    def send_inner(self, packet: bytes) -> vpn.Transmit | None:
        """Hands an inner packet to the connection and sends what it makes of it."""
        try:
            tx = self.conn.send_packet(packet)
        except vpn.VpnError as e:  # no route, tunnel not up, too big, not IP
            self.out.problem(type(e).__name__, f"inner packet dropped: {e}")
            return None
        if tx is None:
            return None  # fragmented before encryption: the fragments come from poll_transmit
        if tx.icmp_too_big:
            if self.tun is not None:
                self.tun.write(tx.data)  # "fragmentation needed" back to the sender
        else:
            self.send(tx)
        return tx

    def send(self, tx: vpn.Transmit) -> None:
        if tx.local is None or tx.remote is None:
            return
        endpoint = self.endpoints.get(tx.local)
        if endpoint is None or endpoint.transport is None:
            self.out.problem(f"no socket {tx.local}", f"no socket bound to {tx.local[0]}:{tx.local[1]}")
            return
        endpoint.transport.sendto(tx.data, tx.remote)

    # ---- the connection's outputs and timer
    def flush(self) -> None:
        """After any input: transmits, then events; then re-arm the timer."""
        while (tx := self.conn.poll_transmit()) is not None:
            self.send(tx)
        for event in self.conn.poll_events():
            self.report(event)
        self.rearm()
        if self.stopping and self.all_down():
            self.finish()

    def rearm(self) -> None:
        deadline = self.conn.poll_timeout()
        if self.timer is not None and deadline == self.timer_deadline:
            return
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        self.timer_deadline = deadline
        if deadline is not None:
            delay = max(0.0, (deadline - time.monotonic_ns()) / 1e9)
            self.timer = self.loop.call_later(delay, self.on_timer)

    def on_timer(self) -> None:
        self.timer = None
        self.conn.handle_timeout()
        self.flush()

    def report(self, event: vpn.ConnectionEvent) -> None:
        self.out.log(f"event: {event.text}")
        if event.kind == "active_tunnel_changed":
            self.out.emit("event", {"tunnel": None, "kind": event.kind, "text": event.text})
            self.out.emit("active_tunnel", {"from": number(event.from_tunnel), "to": number(event.tunnel)})
            return
        fields: dict[str, Any] = {"tunnel": number(event.tunnel), "kind": event.kind, "text": event.text}
        if event.state is not None:
            fields["state"] = event.state
        self.out.emit("event", fields)

    # ---- supervision
    def status(self) -> dict[str, Any]:
        tunnels = []
        for i in range(self.conn.tunnel_count):
            r = self.conn.tunnel_report(i)
            tunnels.append({
                "tunnel": i + 1,
                "state": self.conn.tunnel_state(i),
                "healthy": r["TunnelState"] == 1,
                "packets_in": r["PacketsIn"],
                "packets_out": r["PacketsOut"],
                "bytes_in": r["TunnelDataIn"],
                "bytes_out": r["TunnelDataOut"],
                "drops_in": r["DropsIn"],
            })
        return {"active_tunnel": number(self.conn.active_tunnel), "tunnels": tunnels}

    def connect(self) -> None:
        try:
            self.conn.connect()
        except vpn.VpnError as e:
            self.out.error(f"connect: {e}")
        self.flush()

    def command(self, line: str) -> None:
        line = line.strip()
        if not line:
            return
        try:
            cmd = json.loads(line)
        except ValueError as e:
            self.out.error(f"command is not JSON: {e}")
            return
        name = cmd.get("cmd") if isinstance(cmd, dict) else None
        if name == "status":
            self.out.emit("status", self.status())
        elif name == "connect":
            self.connect()
        elif name == "tunnel":
            n, up = cmd.get("tunnel"), cmd.get("up")
            if not isinstance(n, int) or not 1 <= n <= self.conn.tunnel_count or not isinstance(up, bool):
                self.out.error('tunnel: needs "tunnel" (1-based) and "up" (bool)')
                return
            try:
                self.conn.set_tunnel_admin_up(n - 1, up)
            except vpn.VpnError as e:
                self.out.error(f"tunnel {n}: {e}")
            self.flush()
        else:
            self.out.error(f"unknown command {name!r}")

    async def commands(self) -> None:
        """JSON commands from stdin, one per line, until EOF."""
        reader = asyncio.StreamReader()
        try:
            await self.loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        except (OSError, ValueError) as e:  # e.g. stdin is a regular file
            self.out.log(f"stdin not readable ({e}): no commands")
            return
        while line := await reader.readline():
            self.command(line.decode(errors="replace"))

    async def traffic(self) -> None:
        """Without a TUN: a test packet every 3 s while a tunnel is up."""
        src, dst = LANS[self.role]
        n = 0
        while not self.stopping:
            await asyncio.sleep(3)
            if self.conn.active_tunnel is None or self.stopping:
                continue
            n += 1
            tx = self.send_inner(test_packet(src, dst, f"test packet {n} from {self.role}".encode()))
            if tx is not None and tx.tunnel is not None:
                self.out.log(f"sent test packet {n} through tunnel {tx.tunnel + 1}")
            self.flush()

    # ---- stopping
    def all_down(self) -> bool:
        return all(self.conn.tunnel_state(i) == "down" for i in range(self.conn.tunnel_count))

    def stop(self) -> None:
        """First signal: close every tunnel, linger; second: stop at once."""
        if self.stopping:
            self.finish()
            return
        self.stopping = True
        self.out.log("stopping: closing the tunnels")
        if self.tun is not None:
            self.loop.remove_reader(self.tun.fd)
        for i in range(self.conn.tunnel_count):
            try:
                self.conn.set_tunnel_admin_up(i, False)
            except vpn.VpnError as e:
                self.out.error(f"tunnel {i + 1}: {e}")
        self.loop.call_later(STOP_LINGER, self.linger_over)
        self.flush()

    def linger_over(self) -> None:
        if not self.done.done():
            self.out.log(f"tunnels did not close within {STOP_LINGER:.0f} s; stopping anyway")
            self.finish()

    def finish(self) -> None:
        if not self.done.done():
            self.done.set_result(None)

    def close(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
        for endpoint in self.endpoints.values():
            if endpoint.transport is not None:
                endpoint.transport.close()
        if self.tun is not None:
            self.loop.remove_reader(self.tun.fd)
            self.tun.close()


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--role", choices=["cgw", "vgw"], default="cgw", help="which demo config (without --config)")
    parser.add_argument("--config", help="a TOML/JSON/AWS XML connection config instead of the demo")
    parser.add_argument("--json", action="store_true", help="JSON lines on stdout, commands on stdin")
    parser.add_argument("--tun", metavar="NAME", help="create this TUN device for inner traffic")
    parser.add_argument("--tun-addr", metavar="ADDR/LEN", help="the TUN's IPv4 address (with --tun)")
    parser.add_argument("--route", metavar="PREFIX", action="append", default=[],
                        help="a prefix routed into the TUN (repeatable)")
    args = parser.parse_args()
    if args.tun is not None and not 0 < len(args.tun.encode()) < 16:
        parser.error("--tun: an interface name of 1 to 15 bytes")
    if args.tun is None and (args.tun_addr or args.route):
        parser.error("--tun-addr and --route need --tun")
    if args.tun is not None and not args.tun_addr:
        parser.error("--tun needs --tun-addr")
    return args


async def main(args: argparse.Namespace) -> int:
    out = Output(args.json)
    loop = asyncio.get_running_loop()
    try:
        config = vpn.Config.from_file(args.config) if args.config else demo_config(args.role)
        conn = vpn.Connection.from_config(config)
    except (OSError, vpn.VpnError) as e:
        out.error(f"config: {e}")
        return 2
    gateway = Gateway(conn, config.role, out)
    outside = config.outside_addresses
    locals_ = sorted({local for local, _ in outside})
    mtu = int(config.to_dict().get("mtu") or DEFAULT_MTU)
    try:
        await gateway.bind(locals_)
        if args.tun is not None:
            tun = Tun(args.tun, out)
            gateway.attach_tun(tun)
            tun.configure(args.tun_addr, mtu, args.route)
    except OSError as e:
        out.error(str(e))
        gateway.close()
        return 1
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, gateway.stop)
    out.emit("ready", {
        "name": config.name,
        "local": locals_,
        "remotes": [remote for _, remote in outside],
        "ports": list(IKE_PORTS),
        "tun": gateway.tun.name if gateway.tun else None,
        "mtu": mtu,
        "routing": config.routing,
    })
    tun_text = f", TUN {gateway.tun.name} {args.tun_addr} MTU {mtu}" if gateway.tun else ", no TUN"
    out.log(f"{config.role} {config.name}: listening on {', '.join(locals_)} (UDP 500, 4500){tun_text}")
    gateway.connect()

    tasks = []
    if gateway.tun is None:
        tasks.append(asyncio.create_task(gateway.traffic()))
    if args.json:
        tasks.append(asyncio.create_task(gateway.commands()))
    await gateway.done
    for task in tasks:
        task.cancel()
    out.emit("stopped", gateway.status())
    out.log("stopped")
    gateway.close()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args())))
