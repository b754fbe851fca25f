#!/usr/bin/env bash
# Installs what the interop tests need (strongSwan with kernel-libipsec, BIRD 2,
# iproute2, nftables, ping) when missing. Idempotent. Never starts system services:
# while installing, a policy-rc.d that forbids service starts is put in place (unless
# one already exists), and afterwards any strongSwan/BIRD system daemon that a package
# script started anyway is stopped through its control socket or its pidfile's PID
# (never by process name: the interop tests run their own charon/bird processes).
# Usage: tests/interop/install.sh        (as root)
set -euo pipefail

if [ "$(id -u)" != 0 ]; then
    echo "tests/interop/install.sh: must run as root (it installs packages and the tests create network namespaces)" >&2
    exit 1
fi

PKGS=(strongswan-charon strongswan-swanctl libcharon-extra-plugins
      libstrongswan-standard-plugins libstrongswan-extra-plugins
      bird2 iproute2 nftables iputils-ping)

missing=()
for p in "${PKGS[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$'; then
        missing+=("$p")
    fi
done

if [ ${#missing[@]} -gt 0 ]; then
    echo "==> installing: ${missing[*]}"
    created_policy=0
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\n# temporary, tests/interop/install.sh: no service starts\nexit 101\n' > /usr/sbin/policy-rc.d
        chmod 755 /usr/sbin/policy-rc.d
        created_policy=1
    fi
    cleanup_policy() { [ "$created_policy" = 1 ] && rm -f /usr/sbin/policy-rc.d; true; }
    trap cleanup_policy EXIT
    export DEBIAN_FRONTEND=noninteractive
    # wait for a concurrent apt/dpkg run (other engineers share this machine) instead of failing
    apt-get -o DPkg::Lock::Timeout=600 update -qq
    apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}"
    cleanup_policy
    trap - EXIT
else
    echo "==> interop packages already installed"
fi

# --- make sure no system daemon got started by a package script ----------------------
# PIDs of processes whose executable is $1 (read from /proc, no name matching)
pids_of_exe() {
    local exe=$1 p
    for p in /proc/[0-9]*; do
        [ "$(readlink "$p/exe" 2>/dev/null)" = "$exe" ] && echo "${p#/proc/}"
    done
    true
}
# The Debian bird.service / init script runs "bird -u bird -g bird" with the default
# control socket /run/bird/bird.ctl; the harness always uses "-f -s <private socket>".
if [ -S /run/bird/bird.ctl ] && birdc -s /run/bird/bird.ctl show status >/dev/null 2>&1; then
    echo "==> a system BIRD daemon answers on /run/bird/bird.ctl: stopping it through its socket"
    birdc -s /run/bird/bird.ctl down >/dev/null 2>&1 || true
fi
# strongSwan system daemons write /run/charon.pid and /run/starter.charon.pid (the harness's
# charons bind-mount a private /run, so their pidfiles never land here)
for pf in /run/starter.charon.pid /run/charon.pid; do
    if [ -f "$pf" ]; then
        pid=$(cat "$pf" 2>/dev/null || true)
        if [ -n "$pid" ] && [ -d "/proc/$pid" ] && [ "$(stat -L -c %i /proc/"$pid"/ns/mnt)" = "$(stat -L -c %i /proc/1/ns/mnt)" ]; then
            case "$(readlink /proc/"$pid"/exe)" in
                */ipsec/starter|*/ipsec/charon|*/charon-systemd)
                    echo "==> stopping system strongSwan daemon PID $pid ($pf)"
                    kill -TERM "$pid" 2>/dev/null || true ;;
            esac
        fi
    fi
done
# Report (without touching) any other bird/charon processes: they may belong to running tests.
for exe in /usr/sbin/bird /usr/lib/ipsec/charon /usr/lib/ipsec/starter /usr/sbin/charon-systemd; do
    for pid in $(pids_of_exe "$exe"); do
        echo "    note: $exe running as PID $pid: $(tr '\0' ' ' < /proc/"$pid"/cmdline)"
    done
done

# --- versions -------------------------------------------------------------------------
echo "==> versions"
echo "strongSwan: $(swanctl --version 2>&1 | grep -m1 -o 'strongSwan [0-9.]*' || true) ($(dpkg-query -W -f='${Version}' strongswan-charon))"
echo "kernel-libipsec plugin: $(ls /usr/lib/ipsec/plugins/libstrongswan-kernel-libipsec.so 2>/dev/null || echo MISSING)"
echo "BIRD: $(bird --version 2>&1 | head -1)"
echo "iproute2: $(ip -V 2>&1)"
echo "nftables: $(nft --version 2>&1)"
echo "ping: $(ping -V 2>&1 | head -1)"
echo "python3: $(python3 --version 2>&1)"
[ -e /usr/lib/ipsec/plugins/libstrongswan-kernel-libipsec.so ] || { echo "kernel-libipsec plugin missing" >&2; exit 1; }
