"""Self-tests of the harness machinery that need no third-party peer: address
guard, parsers, TOML writer, link cut/restore, leftover cleanup after a crashed
run, and the JSON-lines event contract our Rust programs will follow."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

import harness
from harness import (BinaryMissing, HarnessError, JsonLineProcess, Netns, OurBgpSpeaker, OurGateway,
                     check_address, parse_vici_pretty, ping, toml_dumps)


def test_address_guard(report) -> None:
    for ok in ("192.0.2.1", "198.51.100.0/24", "203.0.113.7/32", "10.9.8.7", "169.254.10.1/30", "2001:db8::1/64"):
        check_address(ok)
    for bad in ("8.8.8.8", "192.0.3.1", "0.0.0.0/0", "172.16.0.1", "2001:4860::8888", "10.0.0.0/7"):
        with pytest.raises(ValueError):
            check_address(bad)
    report.row("harness: only test address ranges accepted", "PASS", "doc ranges, 10/8, 169.254/16, 2001:db8::/32")


def test_vici_pretty_parser() -> None:
    text = textwrap.dedent("""\
        list-sa event {
          s2s {
            state = ESTABLISHED
            local-id = C=CH, O=strongSwan, CN=a
            child-sas {
              net-1 {
                spi-in = c1
                local-ts = [
                  10.1.0.0/24
                  10.3.0.0/24
                ]
              }
            }
          }
        }
        list-sas reply {
        }
        """)
    msgs = parse_vici_pretty(text)
    sa = msgs[0]["s2s"]
    assert sa["state"] == "ESTABLISHED" and sa["local-id"] == "C=CH, O=strongSwan, CN=a"
    assert sa["child-sas"]["net-1"] == {"spi-in": "c1", "local-ts": ["10.1.0.0/24", "10.3.0.0/24"]}


def test_toml_writer_round_trip() -> None:
    data = {
        "name": "vpn \"one\"", "enabled": True, "mtu": 1436, "ratio": 0.5, "ids": [1, 2],
        "tunnel": [{"outside": "192.0.2.1", "ike": {"version": 2, "proposals": ["aes256gcm16-prfsha256-ecp256"]}},
                   {"outside": "192.0.2.5"}],
        "bgp": {"asn": 65000, "neighbors": {"169.254.10.1": {"hold": 30}}},
    }
    assert tomllib.loads(toml_dumps(data)) == data


def test_cut_and_restore(net: Netns, report) -> None:
    a, b = net.add_ns("a"), net.add_ns("b")
    link = net.veth(a, "203.0.113.1/24", b, "203.0.113.2/24")
    net.add_addr(b, "10.50.0.1/32")
    net.add_route(a, "10.50.0.0/24", via="203.0.113.2", dev=link.dev_a)
    assert ping(net, a, "10.50.0.1", count=1, timeout=0.5) == (1, 1)
    results = []
    for method in ("nft", "down"):
        net.cut(link, method)
        assert ping(net, a, "10.50.0.1", count=1, timeout=0.5)[1] == 0
        net.restore(link)
        harness.wait_until(lambda: ping(net, a, "10.50.0.1", count=1, timeout=0.5)[1] == 1, 5,
                           what=f"link back after {method}")
        results.append(method)
    # a selective cut: only UDP 4500, ICMP still passes
    net.cut(link, "nft", match="udp dport 4500")
    assert ping(net, a, "10.50.0.1", count=1, timeout=0.5) == (1, 1)
    net.restore(link)
    report.row("harness: link cut/restore", "PASS", "nft drop, ip link down (routes re-added), nft match")


def test_leftovers_of_crashed_run_are_removed(report) -> None:
    """A run that died without teardown (simulated: its state file names an owner PID
    that no longer exists) leaves a namespace and a process: the next Netns removes
    both. A namespace with our prefix that no state file records stays."""
    dead = subprocess.Popen(["true"])
    dead.wait()
    crashed = "vpntdead01-x"
    foreign = "vpntf0reign-x"
    subprocess.run(["ip", "netns", "add", crashed], check=True)
    subprocess.run(["ip", "netns", "add", foreign], check=True)
    sleeper = subprocess.Popen(["ip", "netns", "exec", crashed, "sleep", "60"], start_new_session=True)
    try:
        harness.STATE_DIR.mkdir(parents=True, exist_ok=True)
        (harness.STATE_DIR / "vpntdead01.json").write_text(json.dumps({
            "owner_pid": dead.pid, "owner_start": 1, "workdir": str(harness.BASE_DIR / "vpntdead01"),
            "namespaces": [crashed],
            "processes": [{"pid": sleeper.pid, "start": harness._proc_start_time(sleeper.pid)}],
        }))
        with Netns():
            pass
        assert not Path(f"/run/netns/{crashed}").exists()
        assert sleeper.wait(5) is not None
        assert Path(f"/run/netns/{foreign}").exists()
        assert not (harness.STATE_DIR / "vpntdead01.json").exists()
    finally:
        if sleeper.poll() is None:
            sleeper.kill()
        for ns in (crashed, foreign):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
    report.row("harness: crashed run's leftovers removed", "PASS", "netns + PID from state file; unrecorded netns kept")


FAKE_PROGRAM = textwrap.dedent("""\
    import json, signal, sys
    def out(**e):
        print(json.dumps(e), flush=True)
    signal.signal(signal.SIGTERM, lambda *a: (out(event="stopped"), sys.exit(0)))
    out(event="ready")
    print("a plain log line", flush=True)
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd["cmd"] == "rekey_child":
            out(event="child_sa_rekeyed", spi_in="c0ffee01")
    """)


def test_json_line_program_contract(net: Netns, report, tmp_path: Path) -> None:
    """The event plumbing of OurGateway/OurBgpSpeaker, with a stand-in program."""
    ns = net.add_ns("a")
    script = tmp_path / "fake.py"
    script.write_text(FAKE_PROGRAM)
    p = JsonLineProcess(net, ns, [sys.executable, str(script)], "fake").start()
    p.wait_for_event("ready", 5)
    assert p.wait_for_event(lambda e: e["event"] == "_text", 5)["line"] == "a plain log line"
    p.command({"cmd": "rekey_child"})
    assert p.wait_for_event("child_sa_rekeyed", 5)["spi_in"] == "c0ffee01"
    with pytest.raises(HarnessError):
        p.wait_for_event("never", 0.3)
    assert p.stop() == 0
    assert any(e["event"] == "stopped" for e in p.events)
    assert (p.dir / "events.jsonl").read_text().count("\n") >= 3
    report.row("harness: JSON-lines program contract", "PASS", "ready/_text/command/event/SIGTERM->stopped")


def test_our_programs_report_missing_binaries(net: Netns, tmp_path: Path) -> None:
    ns = net.add_ns("a")
    for cls in (OurGateway, OurBgpSpeaker):
        prog = cls(net, ns, {"x": 1}, binary=tmp_path / "not-built")
        with pytest.raises(BinaryMissing, match="awaits the Rust program"):
            prog.start()
    assert OurGateway(net, ns, {}).binary.name == "gateway"
    assert OurBgpSpeaker(net, ns, {}).binary.name == "bgp_speaker"
