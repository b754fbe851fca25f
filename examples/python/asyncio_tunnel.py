#!/usr/bin/env python3
"""One side of a real site-to-site VPN connection, driven from asyncio.

`vpn.Connection` is sans-IO: this program owns the UDP sockets (ports 500 and
4500 on every local outside address, as asyncio datagram endpoints) and the
clock, and feeds the connection. It prints every event; once a tunnel is up
it sends a test packet (UDP from this site's LAN to the other's) every few
seconds and prints every inner packet it receives. There is no TUN device:
inner packets are only printed.

Run the two ends in two network namespaces joined by a veth pair (as root):

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

(`--config FILE` loads your own TOML instead of the built-in demo pair; with
a CGW config against a strongSwan peer use `swanctl.conf` from
`vpn.Config.to_swanctl()`.) Stop with Ctrl-C.

Both demo configs keep AWS's default `startup_action = "add"`: the customer
gateway initiates, AWS's end answers.
"""

from __future__ import annotations

import argparse
import asyncio
import struct
import time

import vpn

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


def test_packet(src: str, dst: str, payload: bytes) -> bytes:
    """An IPv4/UDP packet (checksums zero) from `src` to `dst`."""
    ip = lambda a: bytes(int(x) for x in a.split("."))  # noqa: E731
    total = 28 + len(payload)
    header = struct.pack("!BBHHHBBH4s4s", 0x45, 0, total, 0, 0, 64, 17, 0, ip(src), ip(dst))
    return header + struct.pack("!HHHH", 40000, 9, 8 + len(payload), 0) + payload


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
    def __init__(self, conn: vpn.Connection, role: str) -> None:
        self.conn = conn
        self.role = role
        self.endpoints: dict[tuple[str, int], Endpoint] = {}
        self.wake = asyncio.Event()

    async def bind(self, addresses: set[str]) -> None:
        loop = asyncio.get_running_loop()
        for address in sorted(addresses):
            for port in (500, 4500):
                local = (address, port)
                await loop.create_datagram_endpoint(
                    lambda local=local: self.endpoints.setdefault(local, Endpoint(self, local)),
                    local_addr=local,
                )

    def received(self, local: tuple[str, int], remote: tuple[str, int], data: bytes) -> None:
        r = self.conn.handle_datagram(local, remote, data)
        if r.kind == "inner":
            print(f"[tunnel {r.tunnel + 1 if r.tunnel is not None else '?'}] inner packet: "
                  f"{r.inner!r}")
        elif r.kind == "dropped":
            print(f"dropped a datagram from {remote[0]}:{remote[1]}: {r.reason}")
        self.flush()

    def send(self, tx: vpn.Transmit) -> None:
        if tx.local is None or tx.remote is None:
            return
        endpoint = self.endpoints.get(tx.local)
        if endpoint is None or endpoint.transport is None:
            print(f"no socket bound to {tx.local[0]}:{tx.local[1]}")
            return
        endpoint.transport.sendto(tx.data, tx.remote)

    def flush(self) -> None:
        """Drain order: transmits, then events; then re-arm the timer."""
        while (tx := self.conn.poll_transmit()) is not None:
            self.send(tx)
        for event in self.conn.poll_events():
            print(f"event: {event.text}")
        self.wake.set()

    async def timers(self) -> None:
        while True:
            deadline = self.conn.poll_timeout()
            self.wake.clear()
            timeout = None if deadline is None else max(0.0, (deadline - time.monotonic_ns()) / 1e9)
            try:
                await asyncio.wait_for(self.wake.wait(), timeout)
            except asyncio.TimeoutError:
                self.conn.handle_timeout()
                self.flush()

    async def traffic(self) -> None:
        src, dst = LANS[self.role]
        n = 0
        while True:
            await asyncio.sleep(3)
            if self.conn.active_tunnel is None:
                continue
            n += 1
            try:
                tx = self.conn.send_packet(test_packet(src, dst, f"test packet {n} from {self.role}".encode()))
            except vpn.VpnError as e:
                print(f"could not send test packet {n}: {e}")
                continue
            if tx is not None:
                print(f"sent test packet {n} through tunnel {tx.tunnel + 1 if tx.tunnel is not None else '?'}")
                self.send(tx)
            self.flush()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--role", choices=["cgw", "vgw"], default="cgw")
    parser.add_argument("--config", help="a TOML/JSON/XML connection config instead of the demo")
    args = parser.parse_args()
    config = vpn.Config.from_file(args.config) if args.config else demo_config(args.role)
    conn = vpn.Connection.from_config(config)
    gateway = Gateway(conn, args.role)
    locals_ = {t["local_outside_address"] for t in config.to_dict()["tunnels"]}
    await gateway.bind(locals_)
    print(f"{args.role}: listening on {', '.join(sorted(locals_))} (UDP 500, 4500)")
    conn.connect()
    gateway.flush()
    await asyncio.gather(gateway.timers(), gateway.traffic())


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        pass
