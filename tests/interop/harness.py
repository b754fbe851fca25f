"""Interop test harness: real peers (strongSwan, BIRD, and later our own Rust
programs) in throw-away network namespaces.

Everything here runs as root on Linux. The pieces:

* :class:`Netns` -- a context manager owning a set of uniquely named namespaces
  (``vpnt<6 hex>-<label>``), veth links between them, addresses, routes, the
  processes spawned inside them, and a work directory for configs and logs.
  Teardown (also on test failure or Ctrl-C) kills the spawned processes by PID
  (SIGTERM, then SIGKILL) and deletes the namespaces. Every run records what it
  created in a state file under ``/tmp/vpn-interop/state/``; the next run deletes
  what a crashed run left behind (and only that).
* Link control: :meth:`Netns.cut` / :meth:`Netns.restore` (nft drop rules or
  ``ip link set down/up``).
* :class:`StrongSwan` -- a charon with a private strongswan.conf / swanctl.conf,
  userspace ESP (kernel-libipsec, TUN ``ipsec0``) and a private ``/run``.
* :class:`Bird` -- a BIRD 2 daemon with a generated bird.conf.
* :class:`OurGateway` / :class:`OurBgpSpeaker` -- the contract our own Rust
  example programs will follow (JSON-lines events on stdout); they wait for the
  binaries.
* Traffic: :func:`ping` and :class:`UdpStream` (sequence-numbered UDP datagrams,
  counting losses and duplicates, e.g. across a rekey).

Only addresses from the documentation ranges (192.0.2.0/24, 198.51.100.0/24,
203.0.113.0/24, 2001:db8::/32) and from 10.0.0.0/8 / 169.254.0.0/16 are accepted,
and they only ever exist inside our namespaces.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

HERE = Path(__file__).resolve().parent
REPO_ROOT = HERE.parent.parent
BASE_DIR = Path("/tmp/vpn-interop")
STATE_DIR = BASE_DIR / "state"
NS_PREFIX = "vpnt"
CHARON = "/usr/lib/ipsec/charon"
UDP_TOOL = HERE / "udp_tool.py"
KEEP_FAILED_WORKDIRS = 10

ALLOWED_NETS = [
    ipaddress.ip_network(n)
    for n in (
        "192.0.2.0/24",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "10.0.0.0/8",
        "169.254.0.0/16",
        "2001:db8::/32",
    )
]


class HarnessError(RuntimeError):
    """A harness operation failed (command error, timeout, peer not ready)."""


# --------------------------------------------------------------------------- helpers


def check_address(addr: str) -> None:
    """Raise ValueError unless ``addr`` (an address, ``addr/len`` or a prefix) lies
    inside one of the ranges the tests may use."""
    net = ipaddress.ip_network(addr, strict=False)
    if not any(net.version == a.version and net.subnet_of(a) for a in ALLOWED_NETS):  # type: ignore[arg-type]
        raise ValueError(f"address {addr} is outside the test ranges {[str(a) for a in ALLOWED_NETS]}")


def bare(addr: str) -> str:
    """``192.0.2.1/24`` -> ``192.0.2.1``."""
    return addr.split("/")[0]


def wait_until(pred: Callable[[], Any], timeout: float, interval: float = 0.1, what: str = "condition") -> Any:
    """Poll ``pred`` until it returns a truthy value (returned) or raise
    :class:`HarnessError` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise HarnessError(f"timed out after {timeout:.1f}s waiting for {what}")
        time.sleep(interval)


def _proc_start_time(pid: int) -> int | None:
    """Start time (clock ticks since boot) of ``pid``, or None if it is gone: used to
    tell a recorded process from a later process that reused its PID."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def _pid_alive(pid: int, start: int | None) -> bool:
    st = _proc_start_time(pid)
    return st is not None and (start is None or st == start)


def _sh(cmd: Sequence[str], check: bool = True, timeout: float = 30, **kw: Any) -> subprocess.CompletedProcess[str]:
    res = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout, **kw)
    if check and res.returncode != 0:
        raise HarnessError(f"command failed ({res.returncode}): {' '.join(cmd)}\n{res.stdout}{res.stderr}")
    return res


def tail(path: Path | str, lines: int = 40) -> str:
    """Last ``lines`` lines of a text file ('' if missing)."""
    try:
        return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


# --------------------------------------------------------------------------- processes


class Process:
    """A process spawned inside a namespace by :meth:`Netns.spawn`. Known by PID
    only: stopping it never looks at process names."""

    def __init__(self, popen: subprocess.Popen[Any], ns: str, argv: Sequence[str], log_path: Path | None) -> None:
        self.popen = popen
        self.pid = popen.pid
        self.ns = ns
        self.argv = list(argv)
        self.log_path = log_path
        self.start_time = _proc_start_time(self.pid)

    @property
    def alive(self) -> bool:
        return self.popen.poll() is None

    @property
    def returncode(self) -> int | None:
        return self.popen.poll()

    def signal(self, sig: int) -> None:
        if self.alive:
            os.kill(self.pid, sig)

    def wait(self, timeout: float | None = None) -> int:
        return self.popen.wait(timeout)

    def terminate(self, timeout: float = 5.0) -> int | None:
        """SIGTERM (after SIGCONT, in case it is frozen), wait up to ``timeout``
        seconds, then SIGKILL. Returns the exit code."""
        if self.alive:
            try:
                os.kill(self.pid, signal.SIGCONT)
                os.kill(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.kill(self.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                self.popen.wait(5)
        return self.popen.poll()

    def __repr__(self) -> str:
        return f"<Process pid={self.pid} ns={self.ns} {' '.join(self.argv)[:60]!r}>"


# --------------------------------------------------------------------------- namespaces


@dataclass
class Link:
    """A veth pair: ``dev_a`` in namespace ``ns_a``, ``dev_b`` in ``ns_b``."""

    name: str
    ns_a: str
    dev_a: str
    ns_b: str
    dev_b: str

    def ends(self) -> list[tuple[str, str]]:
        return [(self.ns_a, self.dev_a), (self.ns_b, self.dev_b)]


@dataclass
class _Route:
    ns: str
    args: list[str]
    dev: str | None


class Netns:
    """Owns namespaces, links, processes and a work directory for one test.

    >>> with Netns() as net:
    ...     a, b = net.add_ns("a"), net.add_ns("b")
    ...     link = net.veth(a, "192.0.2.1/24", b, "192.0.2.2/24")
    ...     net.add_addr(a, "10.1.0.1/32")           # on lo
    ...     net.run(a, ["ping", "-c1", "192.0.2.2"])

    Set ``keep_workdir=True`` (or let the pytest fixture do it on failure) to keep
    configs and logs after teardown.
    """

    def __init__(self, keep_workdir: bool = False) -> None:
        self.prefix = NS_PREFIX + secrets.token_hex(3)
        self.workdir = BASE_DIR / self.prefix
        self.keep_workdir = keep_workdir
        self.namespaces: list[str] = []
        self.links: dict[str, Link] = {}
        self.processes: list[Process] = []
        self._routes: list[_Route] = []
        self._cut: dict[str, str] = {}
        self._state_file = STATE_DIR / f"{self.prefix}.json"
        self._lock = threading.Lock()

    # ---- lifecycle
    def __enter__(self) -> "Netns":
        if os.geteuid() != 0:
            raise HarnessError("the interop harness needs root (namespaces, veth, TUN)")
        STATE_DIR.mkdir(parents=True, exist_ok=True)
        cleanup_leftovers()
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._save_state()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop every spawned process (reverse order, by PID) and delete the
        namespaces. Safe to call twice."""
        for p in reversed(self.processes):
            try:
                p.terminate(timeout=3)
            except Exception:  # noqa: BLE001 - teardown must go on
                pass
        for ns in reversed(self.namespaces):
            subprocess.run(["ip", "netns", "del", ns], capture_output=True)
        self.namespaces.clear()
        self.processes.clear()
        try:
            self._state_file.unlink()
        except FileNotFoundError:
            pass
        if not self.keep_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)

    def _save_state(self) -> None:
        state = {
            "owner_pid": os.getpid(),
            "owner_start": _proc_start_time(os.getpid()),
            "workdir": str(self.workdir),
            "namespaces": self.namespaces,
            "processes": [{"pid": p.pid, "start": p.start_time} for p in self.processes],
        }
        tmp = self._state_file.with_suffix(".tmp")
        tmp.write_text(json.dumps(state))
        tmp.replace(self._state_file)

    # ---- namespaces, links, addresses
    def add_ns(self, label: str) -> str:
        """Create namespace ``<prefix>-<label>`` with ``lo`` up; returns its name.
        Forwarding is enabled so a namespace can also act as a router."""
        if not re.fullmatch(r"[a-z0-9]{1,8}", label):
            raise ValueError("namespace label: 1-8 chars [a-z0-9]")
        name = f"{self.prefix}-{label}"
        with self._lock:
            self.namespaces.append(name)  # recorded before creation: a crash leaves no orphan
            self._save_state()
        _sh(["ip", "netns", "add", name])
        _sh(["ip", "-n", name, "link", "set", "lo", "up"])
        self.run(name, ["sysctl", "-qw", "net.ipv4.ip_forward=1"])
        self.run(name, ["sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"])
        return name

    def veth(
        self,
        ns_a: str,
        addr_a: str | Sequence[str] | None,
        ns_b: str,
        addr_b: str | Sequence[str] | None,
        dev_a: str | None = None,
        dev_b: str | None = None,
    ) -> Link:
        """Join two namespaces with a veth pair, assign addresses (``addr/len``, one
        or several; IPv6 without DAD) and bring both ends up. Device names default
        to ``to-<peer label>``."""
        dev_a = dev_a or f"to-{ns_b.rsplit('-', 1)[1]}"
        dev_b = dev_b or f"to-{ns_a.rsplit('-', 1)[1]}"
        for d in (dev_a, dev_b):
            if len(d) > 15:
                raise ValueError(f"interface name too long: {d}")
        _sh(["ip", "link", "add", dev_a, "netns", ns_a, "type", "veth", "peer", "name", dev_b, "netns", ns_b])
        link = Link(f"{dev_a}@{ns_a.rsplit('-', 1)[1]}", ns_a, dev_a, ns_b, dev_b)
        for ns, dev, addrs in ((ns_a, dev_a, addr_a), (ns_b, dev_b, addr_b)):
            for a in [addrs] if isinstance(addrs, str) else list(addrs or []):
                self.add_addr(ns, a, dev)
            _sh(["ip", "-n", ns, "link", "set", dev, "up"])
        self.links[link.name] = link
        return link

    def add_addr(self, ns: str, addr: str, dev: str = "lo") -> None:
        """Add ``addr/len`` to ``dev`` (default ``lo``: this kernel has no dummy links)."""
        check_address(addr)
        if "/" not in addr:
            addr += "/128" if ":" in addr else "/32"
        extra = ["nodad"] if ":" in addr else []
        _sh(["ip", "-n", ns, "addr", "add", addr, "dev", dev, *extra])

    def add_route(
        self, ns: str, prefix: str, via: str | None = None, dev: str | None = None, src: str | None = None
    ) -> None:
        """``ip route add prefix [via] [dev] [src]`` in ``ns``. Routes through a
        device are re-added by :meth:`restore` after an ``ip link down`` cut."""
        check_address(prefix)
        args = [prefix]
        if via:
            check_address(via)
            args += ["via", via]
        if dev:
            args += ["dev", dev]
        if src:
            args += ["src", src]
        _sh(["ip", "-n", ns, "route", "replace", *args])
        self._routes.append(_Route(ns, args, dev))

    # ---- commands and processes
    def run(
        self,
        ns: str,
        cmd: Sequence[str],
        check: bool = True,
        timeout: float = 30,
        env: Mapping[str, str] | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run ``cmd`` inside ``ns`` and wait for it (text output captured)."""
        full_env = {**os.environ, **(env or {})}
        return _sh(["ip", "netns", "exec", ns, *cmd], check=check, timeout=timeout, env=full_env)

    def spawn(
        self,
        ns: str,
        cmd: Sequence[str],
        log: str | Path | None = None,
        env: Mapping[str, str] | None = None,
        private_run: Path | None = None,
        stdout_pipe: bool = False,
        stdin_pipe: bool = False,
    ) -> Process:
        """Start ``cmd`` in ``ns`` in the background; its PID is recorded (and
        written to the state file) so teardown can stop it.

        ``log``: file for stdout+stderr (relative paths are under the work dir).
        ``private_run``: bind-mount this directory over ``/run`` first (charon
        hard-codes ``/run/charon.pid``). The recorded PID is the program's own:
        ``ip netns exec`` and ``sh -c 'exec ...'`` both exec."""
        argv = list(cmd)
        if private_run is not None:
            private_run.mkdir(parents=True, exist_ok=True)
            quoted = " ".join(_shquote(a) for a in argv)
            argv = ["sh", "-c", f"mount --bind {_shquote(str(private_run))} /run && exec {quoted}"]
        log_path: Path | None = None
        if log is not None:
            log_path = Path(log) if Path(log).is_absolute() else self.workdir / log
            log_path.parent.mkdir(parents=True, exist_ok=True)
        logf = open(log_path, "wb") if log_path else None
        popen = subprocess.Popen(
            ["ip", "netns", "exec", ns, *argv],
            stdout=subprocess.PIPE if stdout_pipe else (logf or subprocess.DEVNULL),
            stderr=(logf or subprocess.DEVNULL) if stdout_pipe else subprocess.STDOUT,
            stdin=subprocess.PIPE if stdin_pipe else subprocess.DEVNULL,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
        if logf:
            logf.close()
        p = Process(popen, ns, cmd, log_path)
        with self._lock:
            self.processes.append(p)
            self._save_state()
        return p

    # ---- link control
    def cut(self, link: Link | str, method: str = "nft", match: str = "") -> None:
        """Interrupt a link in both directions.

        ``method="nft"``: in both namespaces, an ``inet vpnt`` table drops packets
        in/out of the link's device (optionally only those matching the nft
        expression ``match``, e.g. ``"udp dport { 500, 4500 }"``); the link stays up,
        so the peers see silence, not an error. ``method="down"``:
        ``ip link set down`` on both ends (routes via the device disappear;
        :meth:`restore` re-adds those added through :meth:`add_route`)."""
        link = self.links[link] if isinstance(link, str) else link
        if method == "nft":
            for ns, dev in link.ends():
                t = _nft_table(dev)
                rules = (
                    f"table inet {t} {{\n"
                    f"  chain vin {{ type filter hook input priority -300; iifname \"{dev}\" {match} drop; }}\n"
                    f"  chain vfwd {{ type filter hook forward priority -300; iifname \"{dev}\" {match} drop; "
                    f"oifname \"{dev}\" {match} drop; }}\n"
                    f"  chain vout {{ type filter hook output priority -300; oifname \"{dev}\" {match} drop; }}\n"
                    "}\n"
                )
                _sh(["ip", "netns", "exec", ns, "nft", "-f", "-"], input=rules)
        elif method == "down":
            for ns, dev in link.ends():
                _sh(["ip", "-n", ns, "link", "set", dev, "down"])
        else:
            raise ValueError(f"unknown cut method {method}")
        self._cut[link.name] = method

    def restore(self, link: Link | str) -> None:
        """Undo :meth:`cut`."""
        link = self.links[link] if isinstance(link, str) else link
        method = self._cut.pop(link.name, None)
        if method == "nft":
            for ns, dev in link.ends():
                _sh(["ip", "netns", "exec", ns, "nft", "delete", "table", "inet", _nft_table(dev)], check=False)
        elif method == "down":
            for ns, dev in link.ends():
                _sh(["ip", "-n", ns, "link", "set", dev, "up"])
            for r in self._routes:
                if (r.ns, r.dev) in link.ends():
                    _sh(["ip", "-n", r.ns, "route", "replace", *r.args], check=False)


def _nft_table(dev: str) -> str:
    return "vpnt_" + re.sub(r"[^A-Za-z0-9_]", "_", dev)


def _shquote(s: str) -> str:
    if re.fullmatch(r"[A-Za-z0-9_./=:,@%+-]+", s):
        return s
    return "'" + s.replace("'", "'\\''") + "'"


def cleanup_leftovers() -> list[str]:
    """Delete what crashed harness runs left behind: for each state file whose
    owner process is gone, kill its recorded processes (by PID, only if the PID still
    belongs to the same process) and delete its recorded namespaces. Namespaces
    with our prefix that no state file records are left alone. Returns the deleted
    namespace names."""
    removed: list[str] = []
    if not STATE_DIR.is_dir():
        return removed
    for f in STATE_DIR.glob(f"{NS_PREFIX}*.json"):
        try:
            st = json.loads(f.read_text())
        except (OSError, ValueError):
            continue
        if _pid_alive(int(st["owner_pid"]), st.get("owner_start")):
            continue  # a run in progress (parallel pytest, another engineer)
        for p in st.get("processes", []):
            if _pid_alive(p["pid"], p.get("start")):
                for sig in (signal.SIGCONT, signal.SIGTERM):
                    try:
                        os.kill(p["pid"], sig)
                    except ProcessLookupError:
                        pass
        deadline = time.monotonic() + 3
        for p in st.get("processes", []):
            while _pid_alive(p["pid"], p.get("start")) and time.monotonic() < deadline:
                time.sleep(0.05)
            if _pid_alive(p["pid"], p.get("start")):
                try:
                    os.kill(p["pid"], signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for ns in st.get("namespaces", []):
            if ns.startswith(NS_PREFIX) and Path(f"/run/netns/{ns}").exists():
                subprocess.run(["ip", "netns", "del", ns], capture_output=True)
                removed.append(ns)
        wd = st.get("workdir", "")
        if wd.startswith(str(BASE_DIR) + "/" + NS_PREFIX):
            shutil.rmtree(wd, ignore_errors=True)
        f.unlink(missing_ok=True)
    # work dirs kept for failed tests: keep the newest KEEP_FAILED_WORKDIRS
    live = {json.loads(f.read_text()).get("workdir") for f in STATE_DIR.glob(f"{NS_PREFIX}*.json")
            if f.stat().st_size}
    kept = sorted((d for d in BASE_DIR.glob(f"{NS_PREFIX}*") if d.is_dir() and str(d) not in live),
                  key=lambda d: d.stat().st_mtime, reverse=True)
    for d in kept[KEEP_FAILED_WORKDIRS:]:
        shutil.rmtree(d, ignore_errors=True)
    return removed


# --------------------------------------------------------------------------- strongSwan


Duration = int | float | str


def _dur(v: Duration) -> str:
    """Seconds (number) or a strongSwan duration string ("2s", "1h")."""
    return v if isinstance(v, str) else f"{int(v)}s"


@dataclass
class ChildConfig:
    """One ``children { <name> { ... } }`` section of swanctl.conf."""

    name: str = "net"
    local_ts: str = "dynamic"
    remote_ts: str = "dynamic"
    esp_proposals: str = "aes256gcm16-ecp256"
    mode: str = "tunnel"
    rekey_time: Duration | None = None
    life_time: Duration | None = None
    rand_time: Duration | None = 0
    dpd_action: str | None = None  # clear | trap | restart | none
    start_action: str | None = None  # none | trap | start
    close_action: str | None = "none"
    extra: dict[str, str] = field(default_factory=dict)


@dataclass
class IkeConfig:
    """One ``connections { <name> { ... } }`` section plus its PSK."""

    local_addrs: str
    remote_addrs: str
    name: str = "s2s"
    version: int = 2
    proposals: str = "aes256gcm16-prfsha256-ecp256"
    psk: str = "vpnt-interop-psk-0123456789"
    local_id: str | None = None  # default: the local address
    remote_id: str | None = None
    dpd_delay: Duration | None = None
    dpd_timeout: Duration | None = None  # IKEv1 only
    rekey_time: Duration | None = None
    reauth_time: Duration | None = None
    over_time: Duration | None = None
    rand_time: Duration | None = 0
    encap: bool = True  # libipsec sends ESP in UDP anyway
    keyingtries: int = 1
    mobike: bool = False
    children: list[ChildConfig] = field(default_factory=lambda: [ChildConfig()])
    extra: dict[str, str] = field(default_factory=dict)


def swanctl_conf(cfg: IkeConfig) -> str:
    """Render swanctl.conf for ``cfg``."""
    lid = cfg.local_id or bare(cfg.local_addrs)
    rid = cfg.remote_id or bare(cfg.remote_addrs)
    c: list[str] = ["connections {", f"  {cfg.name} {{"]

    def kv(indent: int, k: str, v: Any) -> None:
        if v is not None:
            c.append(" " * indent + f"{k} = {v}")

    kv(4, "version", cfg.version)
    kv(4, "local_addrs", cfg.local_addrs)
    kv(4, "remote_addrs", cfg.remote_addrs)
    kv(4, "proposals", cfg.proposals)
    kv(4, "encap", "yes" if cfg.encap else "no")
    kv(4, "mobike", "yes" if cfg.mobike else "no")
    kv(4, "keyingtries", cfg.keyingtries)
    for k in ("dpd_delay", "dpd_timeout", "rekey_time", "reauth_time", "over_time", "rand_time"):
        v = getattr(cfg, k)
        kv(4, k, None if v is None else _dur(v))
    for k, v in cfg.extra.items():
        kv(4, k, v)
    c += ["    local {", "      auth = psk", f"      id = {lid}", "    }"]
    c += ["    remote {", "      auth = psk", f"      id = {rid}", "    }"]
    c.append("    children {")
    for ch in cfg.children:
        c.append(f"      {ch.name} {{")
        for k in ("local_ts", "remote_ts", "esp_proposals", "mode", "dpd_action", "start_action", "close_action"):
            kv(8, k, getattr(ch, k))
        for k in ("rekey_time", "life_time", "rand_time"):
            v = getattr(ch, k)
            kv(8, k, None if v is None else _dur(v))
        for k, v in ch.extra.items():
            kv(8, k, v)
        c.append("      }")
    c += ["    }", "  }", "}", "secrets {", f"  ike-{cfg.name} {{"]
    c += [f"    id-local = {lid}", f"    id-remote = {rid}", f'    secret = "{cfg.psk}"', "  }", "}"]
    return "\n".join(c) + "\n"


CHARON_PLUGINS = (
    "random nonce openssl pem pkcs1 x509 pubkey curve25519 chapoly aes sha1 sha2 hmac gcm kdf "
    "kernel-libipsec kernel-netlink socket-default vici updown"
)


class StrongSwan:
    """A strongSwan charon in a namespace, userspace ESP through kernel-libipsec
    (TUN ``ipsec0``, ESP always in UDP 4500).

    ``log_levels`` are filelog levels per subsystem (``ike=4, chd=4`` log keys);
    ``retransmit`` is (tries, timeout s, base) for IKE retransmissions, which bounds
    how fast DPD declares a peer dead."""

    def __init__(
        self,
        net: Netns,
        ns: str,
        config: IkeConfig,
        label: str | None = None,
        log_levels: Mapping[str, int] | None = None,
        retransmit: tuple[int, float, float] = (3, 1.0, 1.4),
        raw_swanctl: str | None = None,
    ) -> None:
        self.net = net
        self.ns = ns
        self.config = config
        # A complete swanctl.conf written instead of the one rendered from
        # ``config`` (e.g. ConnectionConfig.to_swanctl_conf()); ``config`` then only
        # names the default IKE SA / child for the helpers.
        self.raw_swanctl = raw_swanctl
        self.label = label or ns.rsplit("-", 1)[1]
        self.dir = net.workdir / f"charon-{self.label}"
        self.log_levels = {"default": 1, "ike": 2, "cfg": 2, "chd": 1, "knl": 1, **(log_levels or {})}
        self.retransmit = retransmit
        self.process: Process | None = None

    @property
    def log_path(self) -> Path:
        return self.dir / "charon.log"

    @property
    def vici(self) -> Path:
        return self.dir / "charon.vici"

    @property
    def conf_path(self) -> Path:
        return self.dir / "strongswan.conf"

    @property
    def swanctl_path(self) -> Path:
        return self.dir / "swanctl" / "swanctl.conf"

    def write_config(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        for s in ("x509", "x509ca", "x509ocsp", "x509aa", "x509ac", "x509crl", "pubkey", "private", "rsa",
                  "ecdsa", "bliss", "pkcs8", "pkcs12"):
            (self.dir / "swanctl" / s).mkdir(parents=True, exist_ok=True)
        levels = "\n".join(f"      {k} = {v}" for k, v in self.log_levels.items())
        tries, tmo, base = self.retransmit
        self.conf_path.write_text(
            "charon {\n"
            f"  load = {CHARON_PLUGINS}\n"
            "  install_virtual_ip = no\n"
            f"  retransmit_tries = {tries}\n  retransmit_timeout = {tmo}\n  retransmit_base = {base}\n"
            f"  plugins {{\n    vici {{ socket = unix://{self.vici} }}\n  }}\n"
            "  filelog {\n    main {\n"
            f"      path = {self.log_path}\n"
            "      time_format = %T\n      ike_name = yes\n      append = no\n      flush_line = yes\n"
            f"{levels}\n"
            "    }\n  }\n"
            "  syslog { daemon { default = -1 } }\n"
            "}\n"
            f"swanctl {{ socket = unix://{self.vici} }}\n"
        )
        self.swanctl_path.write_text(self.raw_swanctl if self.raw_swanctl is not None else swanctl_conf(self.config))

    def start(self, load: bool = True, timeout: float = 10) -> "StrongSwan":
        """Write the configs, start charon (private ``/run``), wait until vici
        answers, and (``load``) load the connection and secrets."""
        self.write_config()
        self.process = self.net.spawn(
            self.ns,
            [CHARON],
            log=self.dir / "charon.stdout",
            env={"STRONGSWAN_CONF": str(self.conf_path)},
            private_run=self.dir / "run",
        )
        try:
            wait_until(
                lambda: self.swanctl("--stats", check=False).returncode == 0
                or not self.process.alive,  # type: ignore[union-attr]
                timeout,
                0.05,
                f"charon in {self.ns} to answer on vici",
            )
        except HarnessError:
            raise HarnessError(f"charon not ready; log:\n{tail(self.log_path)}") from None
        if not self.process.alive:
            raise HarnessError(f"charon exited ({self.process.returncode}); log:\n{tail(self.log_path)}"
                               f"\n{tail(self.dir / 'charon.stdout')}")
        if load:
            self.load()
        return self

    def swanctl(self, *args: str, check: bool = True, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        """Run ``swanctl`` against this charon's private vici socket."""
        return _sh(["swanctl", *args], check=check, timeout=timeout,
                   env={**os.environ, "STRONGSWAN_CONF": str(self.conf_path)})

    def load(self) -> None:
        self.swanctl("--load-all", "--file", str(self.swanctl_path))

    def reload(self, config: IkeConfig) -> None:
        """Replace the configuration and reload it."""
        self.config = config
        self.swanctl_path.write_text(swanctl_conf(config))
        self.load()

    def initiate(self, child: str | None = None, timeout: int = 15, check: bool = True) -> subprocess.CompletedProcess[str]:
        """``swanctl --initiate --child <child>``; output includes charon's log of
        the exchange (e.g. ``AUTHENTICATION_FAILED``). ``check=False`` to inspect
        failures."""
        child = child or self.config.children[0].name
        return self.swanctl("--initiate", "--child", child, "--ike", self.config.name, "--timeout", str(timeout),
                            check=check, timeout=timeout + 5)

    def rekey_child(self, child: str | None = None) -> subprocess.CompletedProcess[str]:
        return self.swanctl("--rekey", "--child", child or self.config.children[0].name)

    def rekey_ike(self, ike: str | None = None) -> subprocess.CompletedProcess[str]:
        return self.swanctl("--rekey", "--ike", ike or self.config.name)

    def terminate_ike(self, ike: str | None = None, timeout: int = 10) -> subprocess.CompletedProcess[str]:
        return self.swanctl("--terminate", "--ike", ike or self.config.name, "--timeout", str(timeout),
                            check=False, timeout=timeout + 5)

    def list_sas(self) -> dict[str, dict[str, Any]]:
        """IKE SAs by name, parsed from ``swanctl --list-sas --pretty``::

            {"s2s": {"state": "ESTABLISHED", "version": "2", "initiator-spi": "...",
                     "encr-alg": "AES_GCM_16", ..., "child-sas": {"net-3": {"state":
                     "INSTALLED", "spi-in": "c5d3...", "bytes-in": "840", ...}}}}

        Values are strings as vici reports them; see :func:`child_sas`."""
        out = self.swanctl("--list-sas", "--pretty").stdout
        sas: dict[str, dict[str, Any]] = {}
        for msg in parse_vici_pretty(out):
            for k, v in msg.items():
                if isinstance(v, dict):
                    sas[k] = v
        return sas

    def child_sas(self, ike: str | None = None) -> list[dict[str, Any]]:
        """The child SAs of IKE SA ``ike`` (default: the configured one)."""
        sa = self.list_sas().get(ike or self.config.name)
        if not sa:
            return []
        return list((sa.get("child-sas") or {}).values())

    def ike_state(self, ike: str | None = None) -> str | None:
        sa = self.list_sas().get(ike or self.config.name)
        return sa.get("state") if sa else None

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self, timeout: float = 5) -> int | None:
        """SIGTERM by PID (charon deletes its SAs, sending DELETEs), then SIGKILL."""
        return self.process.terminate(timeout) if self.process else None


def parse_vici_pretty(text: str) -> list[dict[str, Any]]:
    """Parse ``swanctl --pretty`` output (``name {``, ``key = value``, ``key [``
    list items ``]``, ``}``) into one dict per top-level message."""
    msgs: list[dict[str, Any]] = []
    stack: list[Any] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if line.endswith("{"):
            d: dict[str, Any] = {}
            name = line[:-1].strip().rstrip("=").strip()
            if stack and isinstance(stack[-1], dict):
                stack[-1][name] = d
            elif not stack:
                msgs.append(d)
            stack.append(d)
        elif line.endswith("[") and stack:
            lst: list[str] = []
            stack[-1][line[:-1].strip().rstrip("=").strip()] = lst
            stack.append(lst)
        elif line in ("}", "]"):
            if stack:
                stack.pop()
        elif stack and isinstance(stack[-1], list):
            stack[-1].append(line)
        elif " = " in line and stack:
            k, v = line.split(" = ", 1)
            stack[-1][k.strip()] = v.strip()
    return msgs


# --------------------------------------------------------------------------- BIRD


@dataclass
class BirdChannel:
    """An ``ipv4 { }`` / ``ipv6 { }`` channel of a BGP protocol. Filters are BIRD
    filter expressions as written after ``import``/``export`` (``all``, ``none``,
    ``where source = RTS_STATIC``, ``filter { ... }``)."""

    import_filter: str = "all"
    export_filter: str = "where source = RTS_STATIC"
    import_limit: int | None = None
    import_limit_action: str = "disable"  # warn | block | restart | disable
    extra: str = ""

    def render(self, afi: str) -> str:
        s = f"  {afi} {{\n    import {self.import_filter};\n    export {self.export_filter};\n"
        if self.import_limit is not None:
            s += f"    import limit {self.import_limit} action {self.import_limit_action};\n"
        if self.extra:
            s += f"    {self.extra}\n"
        return s + "  };\n"


@dataclass
class BirdNeighbor:
    """One ``protocol bgp <name>``. Timers in seconds; short defaults for tests."""

    name: str
    address: str
    peer_as: int
    local_address: str | None = None
    passive: bool = False
    password: str | None = None
    hold_time: int = 9
    keepalive_time: int = 3
    connect_retry_time: int = 2
    connect_delay_time: int = 1
    error_wait_time: tuple[int, int] = (1, 10)
    multihop: int | None = None
    ipv4: BirdChannel | None = field(default_factory=BirdChannel)
    ipv6: BirdChannel | None = None
    extra: str = ""

    def render(self, local_as: int) -> str:
        check_address(self.address)
        local = f"local {self.local_address} as {local_as}" if self.local_address else f"local as {local_as}"
        s = f"protocol bgp {self.name} {{\n  {local};\n  neighbor {self.address} as {self.peer_as};\n"
        if self.passive:
            s += "  passive on;\n"
        if self.password is not None:
            s += f'  password "{self.password}";\n'
        if self.multihop is not None:
            s += f"  multihop {self.multihop};\n"
        s += (
            f"  hold time {self.hold_time}; keepalive time {self.keepalive_time};\n"
            f"  connect retry time {self.connect_retry_time}; connect delay time {self.connect_delay_time};\n"
            f"  error wait time {self.error_wait_time[0]}, {self.error_wait_time[1]};\n"
        )
        if self.ipv4:
            s += self.ipv4.render("ipv4")
        if self.ipv6:
            s += self.ipv6.render("ipv6")
        if self.extra:
            s += f"  {self.extra}\n"
        return s + "}\n"


@dataclass
class BirdConfig:
    """A whole bird.conf. ``static4``/``static6``: prefixes announced as blackhole
    routes, or ``(prefix, "via \\"ipsec0\\"")`` style ``(prefix, route target)`` pairs.
    ``kernel_export``: install BGP-learned routes in the namespace's FIB."""

    router_id: str
    local_as: int
    neighbors: list[BirdNeighbor] = field(default_factory=list)
    static4: Sequence[str | tuple[str, str]] = field(default_factory=list)
    static6: Sequence[str | tuple[str, str]] = field(default_factory=list)
    kernel_export: bool = False
    extra: str = ""

    def render(self, log_path: Path) -> str:
        s = f'log "{log_path}" all;\nrouter id {self.router_id};\nprotocol device {{ scan time 2; }}\n'
        for afi, routes in (("ipv4", self.static4), ("ipv6", self.static6)):
            if routes:
                rs = []
                for r in routes:
                    prefix, target = (r, "blackhole") if isinstance(r, str) else r
                    check_address(prefix)
                    rs.append(f"  route {prefix} {target};")
                s += f"protocol static static_{afi} {{\n  {afi};\n" + "\n".join(rs) + "\n}\n"
            if self.kernel_export:
                s += f"protocol kernel kernel_{afi} {{ {afi} {{ import none; export where source = RTS_BGP; }}; }}\n"
        for n in self.neighbors:
            s += n.render(self.local_as)
        return s + self.extra


BGP_STATES = ("Idle", "Connect", "Active", "Passive", "OpenSent", "OpenConfirm", "Established", "Close", "Down")


class Bird:
    """A BIRD 2 daemon (``bird -f``) in a namespace, controlled through its private
    socket with ``birdc``."""

    def __init__(self, net: Netns, ns: str, config: BirdConfig, label: str | None = None) -> None:
        self.net = net
        self.ns = ns
        self.config = config
        self.label = label or ns.rsplit("-", 1)[1]
        self.dir = net.workdir / f"bird-{self.label}"
        self.process: Process | None = None

    @property
    def ctl(self) -> Path:
        return self.dir / "bird.ctl"

    @property
    def log_path(self) -> Path:
        return self.dir / "bird.log"

    @property
    def conf_path(self) -> Path:
        return self.dir / "bird.conf"

    def start(self, timeout: float = 10) -> "Bird":
        self.dir.mkdir(parents=True, exist_ok=True)
        self.conf_path.write_text(self.config.render(self.log_path))
        self.process = self.net.spawn(
            self.ns,
            ["bird", "-f", "-c", str(self.conf_path), "-s", str(self.ctl), "-P", str(self.dir / "bird.pid")],
            log=self.dir / "bird.stdout",
        )
        try:
            wait_until(lambda: self.birdc("show status", check=False).returncode == 0 or not self.process.alive,  # type: ignore[union-attr]
                       timeout, 0.05, "bird control socket")
        except HarnessError:
            raise HarnessError(f"bird not ready:\n{tail(self.dir / 'bird.stdout')}") from None
        if not self.process.alive:
            raise HarnessError(f"bird exited ({self.process.returncode}):\n{tail(self.dir / 'bird.stdout')}")
        return self

    def birdc(self, cmd: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run one birdc command (e.g. ``"show protocols all peer"``)."""
        return _sh(["birdc", "-s", str(self.ctl), *cmd.split()], check=check, timeout=10)

    def protocol_state(self, name: str) -> str:
        """BGP state from ``show protocols <name>``: ``Established``, ``Active``,
        ``Connect``, ``Passive``, ``OpenSent``, ``OpenConfirm``, ``Idle``, or the
        protocol state ``up``/``start``/``down`` when the Info column holds no BGP
        state (e.g. ``down`` with ``Automatic shutdown: Route limit exceeded``)."""
        for line in self.birdc(f"show protocols {name}").stdout.splitlines():
            parts = line.split()
            if parts and parts[0] == name and len(parts) >= 4:
                # Name Proto Table State Since Info...; "Since" is a time (maybe two words)
                rest = parts[4:]
                while rest and re.fullmatch(r"[\d:.\-]+", rest[0]):
                    rest = rest[1:]
                if rest and rest[0] in BGP_STATES:
                    return rest[0]
                return parts[3]
        raise HarnessError(f"no protocol {name} in bird {self.label}")

    def protocol_info(self, name: str) -> str:
        """Full ``show protocols all <name>`` text (last error, timers, counters)."""
        return self.birdc(f"show protocols all {name}").stdout

    def routes(self, table: str = "master4", protocol: str | None = None) -> list[str]:
        """Prefixes in ``table`` (``master4``/``master6``), optionally only those
        from ``protocol``."""
        cmd = f"show route table {table}" + (f" protocol {protocol}" if protocol else "")
        out = self.birdc(cmd).stdout
        prefixes = []
        for line in out.splitlines():
            m = re.match(r"^([0-9a-fA-F.:]+/\d+)\s", line)
            if m:
                prefixes.append(m.group(1))
        return prefixes

    def wait_state(self, name: str, state: str, timeout: float = 15) -> None:
        wait_until(lambda: self.protocol_state(name) == state, timeout, 0.1, f"bird {self.label} {name} {state}")

    def freeze(self) -> None:
        """SIGSTOP by PID: the process stays, its TCP session goes silent."""
        assert self.process
        self.process.signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.process
        self.process.signal(signal.SIGCONT)

    def stop(self, timeout: float = 5) -> int | None:
        return self.process.terminate(timeout) if self.process else None


# --------------------------------------------------------------------------- our programs


class BinaryMissing(NotImplementedError):
    """The Rust example binary is not built yet."""


class JsonLineProcess:
    """A program in a namespace that writes one JSON object per line on stdout,
    each with an ``"event"`` key. Lines are collected by a reader thread (non-JSON
    lines are kept as ``{"event": "_text", "line": ...}``) and also appended to
    ``<dir>/events.jsonl``; stderr goes to ``<dir>/stderr.log``.

    Commands may be written to stdin as JSON lines (:meth:`command`)."""

    def __init__(self, net: Netns, ns: str, argv: Sequence[str], label: str, env: Mapping[str, str] | None = None) -> None:
        self.net = net
        self.ns = ns
        self.argv = list(argv)
        self.label = label
        self.env = dict(env or {})
        self.dir = net.workdir / label
        self.events: list[dict[str, Any]] = []
        self._cond = threading.Condition()
        self.process: Process | None = None
        self._reader: threading.Thread | None = None

    @property
    def log_path(self) -> Path:
        return self.dir / "stderr.log"

    def start(self) -> "JsonLineProcess":
        self.dir.mkdir(parents=True, exist_ok=True)
        self.process = self.net.spawn(self.ns, self.argv, log=self.log_path, env=self.env,
                                      stdout_pipe=True, stdin_pipe=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        return self

    def _read(self) -> None:
        assert self.process and self.process.popen.stdout
        with open(self.dir / "events.jsonl", "a") as sink:
            for raw in self.process.popen.stdout:
                line = raw.decode(errors="replace") if isinstance(raw, bytes) else raw
                line = line.rstrip("\n")
                if not line:
                    continue
                try:
                    ev = json.loads(line)
                    if not isinstance(ev, dict):
                        raise ValueError
                except ValueError:
                    ev = {"event": "_text", "line": line}
                ev.setdefault("_t", time.monotonic())
                sink.write(json.dumps(ev) + "\n")
                sink.flush()
                with self._cond:
                    self.events.append(ev)
                    self._cond.notify_all()
        with self._cond:
            self.events.append({"event": "_eof", "_t": time.monotonic()})
            self._cond.notify_all()

    def wait_for_event(
        self, predicate: Callable[[dict[str, Any]], bool] | str, timeout: float = 10, since: int = 0
    ) -> dict[str, Any]:
        """First event (index >= ``since``) matching ``predicate`` (a function, or an
        event name). Raises :class:`HarnessError` on timeout or when the program
        exits first."""
        pred = (lambda e: e.get("event") == predicate) if isinstance(predicate, str) else predicate
        deadline = time.monotonic() + timeout
        with self._cond:
            i = since
            while True:
                while i < len(self.events):
                    ev = self.events[i]
                    i += 1
                    if pred(ev):
                        return ev
                    if ev.get("event") == "_eof":
                        raise HarnessError(f"{self.label} exited before the expected event; stderr:\n{tail(self.log_path)}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise HarnessError(f"{self.label}: no matching event within {timeout}s; last events: {self.events[-5:]}")
                self._cond.wait(left)

    def tunnel_event(self, tunnel: int, kind: str, timeout: float, since: int = 0, **fields: Any) -> dict[str, Any]:
        """First ``event`` line (index >= ``since``) of tunnel ``tunnel``
        (1-based) with this ``kind`` and these field values, as the
        connection programs write them."""
        return self.wait_for_event(
            lambda e: e.get("event") == "event" and e.get("tunnel") == tunnel and e.get("kind") == kind
            and all(e.get(k) == v for k, v in fields.items()), timeout, since)

    def command(self, cmd: Mapping[str, Any]) -> None:
        """Write one JSON command line to the program's stdin."""
        assert self.process and self.process.popen.stdin
        self.process.popen.stdin.write((json.dumps(cmd) + "\n").encode())
        self.process.popen.stdin.flush()

    def stop(self, timeout: float = 5) -> int | None:
        """SIGTERM by PID (the program shuts down gracefully), then SIGKILL."""
        rc = self.process.terminate(timeout) if self.process else None
        if self._reader:
            self._reader.join(2)
        return rc


def toml_dumps(data: Mapping[str, Any]) -> str:
    """A tiny TOML writer for config dicts: str/int/float/bool, lists of scalars,
    nested tables and arrays of tables."""

    def scalar(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, str):
            return json.dumps(v)  # TOML basic strings use the same escapes
        if isinstance(v, (list, tuple)):
            return "[" + ", ".join(scalar(x) for x in v) + "]"
        raise TypeError(f"cannot write {type(v).__name__} to TOML")

    def key(k: str) -> str:
        return k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else json.dumps(k)

    out: list[str] = []

    def table(path: list[str], d: Mapping[str, Any], header: str | None) -> None:
        if header is not None:
            out.append(header)
        subs: list[tuple[str, Any, bool]] = []
        for k, v in d.items():
            if isinstance(v, Mapping):
                subs.append((k, v, False))
            elif isinstance(v, list) and v and all(isinstance(x, Mapping) for x in v):
                subs.append((k, v, True))
            else:
                out.append(f"{key(k)} = {scalar(v)}")
        for k, v, is_array in subs:
            p = path + [key(k)]
            if is_array:
                for item in v:
                    out.append("")
                    table(p, item, f"[[{'.'.join(p)}]]")
            else:
                out.append("")
                table(p, v, f"[{'.'.join(p)}]")

    table([], data, None)
    return "\n".join(out).lstrip("\n") + "\n"


class _OurProgram(JsonLineProcess):
    """Common part of :class:`OurGateway` and :class:`OurBgpSpeaker`.

    PLANNED CONTRACT for the Rust example programs (awaiting the binaries):

    * built by ``cargo build --release --examples``; found at
      ``target/release/examples/<example>`` (``binary=`` overrides);
    * invoked as ``<binary> --config <file.toml>``; the TOML schema is owned by the
      config engineer: pass a prepared file path, or a dict that is written with
      :func:`toml_dumps`;
    * run inside the namespace as root (the gateway opens UDP 500/4500 and a TUN
      device; the speaker listens on / connects to TCP 179);
    * stdout: one JSON object per line, always with ``"event"``; first
      ``{"event": "ready"}`` once sockets are bound, then protocol events, e.g.
      ``ike_sa_up``/``ike_sa_down`` (``tunnel``, ``spi_i``, ``spi_r``),
      ``child_sa_installed``/``child_sa_rekeyed``/``child_sa_deleted``
      (``spi_in``, ``spi_out``), ``dpd_timeout``, ``bgp_state`` (``peer``,
      ``state``), ``route_added``/``route_withdrawn`` (``prefix``),
      ``active_tunnel``, ``error`` (``message``); ``stopped`` last;
    * stdin: optional JSON commands, one per line: ``{"cmd": "initiate"}``,
      ``{"cmd": "rekey_child"}``, ``{"cmd": "rekey_ike"}``, ``{"cmd": "terminate"}``,
      ``{"cmd": "announce", "prefix": ...}``, ``{"cmd": "withdraw", "prefix": ...}``;
    * logs on stderr; SIGTERM = graceful shutdown (IKE DELETE / BGP Cease), exit 0.
    """

    example: str = ""

    def __init__(
        self,
        net: Netns,
        ns: str,
        config: Mapping[str, Any] | str | Path,
        binary: str | Path | None = None,
        label: str | None = None,
        extra_args: Sequence[str] = (),
    ) -> None:
        label = label or f"{self.example}-{ns.rsplit('-', 1)[1]}"
        self.binary = Path(binary) if binary else REPO_ROOT / "target" / "release" / "examples" / self.example
        self.config_source = config
        super().__init__(net, ns, [], label, env={"RUST_BACKTRACE": "1"})
        self.extra_args = list(extra_args)

    def start(self, ready_timeout: float = 10) -> "_OurProgram":
        if not self.binary.is_file():
            raise BinaryMissing(
                f"{self.binary} is not built yet (cargo build --release --example {self.example}); "
                f"{type(self).__name__} awaits the Rust program"
            )
        self.dir.mkdir(parents=True, exist_ok=True)
        if isinstance(self.config_source, (str, Path)):
            conf = Path(self.config_source)
        else:
            conf = self.dir / "config.toml"
            conf.write_text(toml_dumps(self.config_source))
        self.argv = [str(self.binary), "--config", str(conf), *self.extra_args]
        super().start()
        self.wait_for_event("ready", ready_timeout)
        return self


class OurGateway(_OurProgram):
    """Our IKE/ESP gateway (UDP 500/4500 + TUN), example ``gateway``
    (planned). See :class:`_OurProgram` for the contract. Helpers follow the
    :class:`StrongSwan` names where the meaning is the same."""

    example = "gateway"

    def initiate(self) -> None:
        self.command({"cmd": "initiate"})

    def rekey_child(self) -> None:
        self.command({"cmd": "rekey_child"})

    def rekey_ike(self) -> None:
        self.command({"cmd": "rekey_ike"})

    def terminate_ike(self) -> None:
        self.command({"cmd": "terminate"})


class OurBgpSpeaker(_OurProgram):
    """Our BGP speaker, example ``bgp_speaker``. See
    :class:`_OurProgram` for the contract."""

    example = "bgp_speaker"

    def wait_state(self, state: str, timeout: float = 15) -> dict[str, Any]:
        return self.wait_for_event(lambda e: e.get("event") == "bgp_state" and e.get("state") == state, timeout)

    def announce(self, prefix: str) -> None:
        check_address(prefix)
        self.command({"cmd": "announce", "prefix": prefix})

    def withdraw(self, prefix: str) -> None:
        self.command({"cmd": "withdraw", "prefix": prefix})


class ConnectionGateway(_OurProgram):
    """Our customer gateway for a whole VPN connection (both tunnels), example
    ``connection_gateway``: events ``ready``, ``event`` (``tunnel``, ``kind``,
    ``text``, ``state``), ``active_tunnel`` (``from``, ``to``, 1-based),
    ``status``, ``stopped``."""

    example = "connection_gateway"

    def status(self, timeout: float = 5) -> dict[str, Any]:
        since = len(self.events)
        self.command({"cmd": "status"})
        return self.wait_for_event("status", timeout, since)

    def active(self) -> int | None:
        changes = [e for e in self.events if e.get("event") == "active_tunnel"]
        return changes[-1]["to"] if changes else None


def import_vpn_module() -> Any:
    """The ``vpn`` Python module (built into ``.venv`` by ``vpn-py/run-tests.sh``).
    A missing module is an error, never a skip: these tests must run."""
    try:
        import vpn  # type: ignore[import-not-found]
    except ImportError as e:
        raise HarnessError(f"the vpn Python module is missing ({e}): run bash vpn-py/run-tests.sh first") from e
    return vpn


def build_example(example: str) -> Path:
    """``cargo build --release --example <example>`` at the repository root
    (ignoring ``CARGO_TARGET_DIR``, so the binary is where :class:`_OurProgram`
    looks); returns its path. Raises :class:`HarnessError` with the compiler's
    output when the build fails."""
    env = {k: v for k, v in os.environ.items() if k != "CARGO_TARGET_DIR"}
    res = subprocess.run(["cargo", "build", "--release", "--example", example],
                         cwd=REPO_ROOT, capture_output=True, text=True, timeout=1800, env=env)
    if res.returncode != 0:
        raise HarnessError(f"cargo build --example {example} failed:\n{res.stderr[-4000:]}")
    path = REPO_ROOT / "target" / "release" / "examples" / example
    if not path.is_file():
        raise HarnessError(f"{path} missing after the build")
    return path


# --------------------------------------------------------------------------- traffic


def ping(net: Netns, ns: str, dst: str, count: int = 3, interval: float = 0.2, timeout: float = 1.0,
         src: str | None = None) -> tuple[int, int]:
    """``ping`` from ``ns``; returns (sent, received). Never raises on loss; when
    ping cannot send at all (no route, link down) the result is (count, 0)."""
    check_address(dst)
    cmd = ["ping", "-n", "-q", "-c", str(count), "-i", str(interval), "-W", str(timeout)]
    if src:
        cmd += ["-I", src]
    res = net.run(ns, [*cmd, dst], check=False, timeout=count * (interval + timeout) + 10)
    m = re.search(r"(\d+) packets transmitted, (\d+) (?:packets )?received", res.stdout)
    if not m:
        if re.search(r"unreachable|Cannot assign|No route", res.stdout + res.stderr):
            return count, 0  # could not even send (e.g. link down): all lost
        raise HarnessError(f"cannot parse ping output: {res.stdout}{res.stderr}")
    return int(m.group(1)), int(m.group(2))


@dataclass
class StreamReport:
    """Result of a :class:`UdpStream`: ``lost`` are sequence numbers never received."""

    sent: int
    received: int
    duplicates: int
    reordered: int
    lost: list[int]
    duration: float

    @property
    def lost_count(self) -> int:
        return len(self.lost)


class UdpStream:
    """``count`` UDP datagrams with sequence numbers from ``src`` (in ``src_ns``) to
    ``dst:port`` (in ``dst_ns``) at ``rate`` per second, using ``udp_tool.py``.
    The receiver counts distinct sequence numbers, duplicates and reordering.

    >>> s = UdpStream(net, a, "10.1.0.1", b, "10.2.0.1", count=2000, rate=500).start()
    >>> sa.rekey_child(); r = s.wait(); assert r.lost_count == 0
    """

    def __init__(self, net: Netns, src_ns: str, src: str, dst_ns: str, dst: str, port: int = 5001,
                 count: int = 1000, rate: float = 500, size: int = 200) -> None:
        for a in (src, dst):
            check_address(a)
        self.net, self.src_ns, self.src, self.dst_ns, self.dst = net, src_ns, src, dst_ns, dst
        self.port, self.count, self.rate, self.size = port, count, rate, size
        self.tag = f"udp-{port}-{secrets.token_hex(2)}"
        self.receiver: Process | None = None
        self.sender: Process | None = None

    def start(self) -> "UdpStream":
        py = sys.executable
        ready = self.net.workdir / f"{self.tag}.ready"
        self.report_path = self.net.workdir / f"{self.tag}.json"
        self.receiver = self.net.spawn(self.dst_ns, [py, str(UDP_TOOL), "recv", "--bind", self.dst, "--port",
                                                     str(self.port), "--expect", str(self.count), "--report",
                                                     str(self.report_path), "--ready", str(ready)],
                                       log=f"{self.tag}.recv.log")
        wait_until(ready.exists, 5, 0.02, "UDP receiver ready")
        self.sender = self.net.spawn(self.src_ns, [py, str(UDP_TOOL), "send", "--bind", self.src, "--dst",
                                                   self.dst, "--port", str(self.port), "--count", str(self.count),
                                                   "--rate", str(self.rate), "--size", str(self.size)],
                                     log=f"{self.tag}.send.log")
        return self

    def wait(self, timeout: float | None = None) -> StreamReport:
        """Wait for the sender to finish and the receiver to report (it stops
        after the end marker or 2 s of silence)."""
        assert self.sender and self.receiver
        timeout = timeout or self.count / self.rate + 15
        rc = self.sender.wait(timeout)
        if rc != 0:
            raise HarnessError(f"UDP sender failed ({rc}): {tail(self.sender.log_path or '')}")
        self.receiver.wait(10)
        r = json.loads(self.report_path.read_text())
        return StreamReport(self.count, r["received"], r["duplicates"], r["reordered"], r["lost"], r["duration"])


def iter_lines(path: Path) -> Iterable[str]:
    """Lines of a log file (empty if missing)."""
    if path.exists():
        yield from path.read_text(errors="replace").splitlines()
