#!/usr/bin/env bash
# Runs the interop suite: installs the peers (tests/interop/install.sh), then pytest
# on tests/interop with the repository's venv (created with pytest if missing).
# Usage (as root, from anywhere): tests/interop/run.sh [extra pytest args]
# The scenario table is printed at the end and kept in /tmp/vpn-interop/last-report.txt.
set -euo pipefail
cd "$(dirname "$0")/../.."

if [ "$(id -u)" != 0 ]; then
    echo "tests/interop/run.sh: must run as root (network namespaces, veth, TUN)" >&2
    exit 1
fi

tests/interop/install.sh

if [ ! -x .venv/bin/python ]; then
    echo "==> creating .venv"
    python3 -m venv .venv
fi
if ! .venv/bin/python -c 'import pytest' 2>/dev/null; then
    .venv/bin/pip install -q pytest
fi

echo "==> interop tests"
exec .venv/bin/python -m pytest tests/interop -q -p no:cacheprovider "$@"
