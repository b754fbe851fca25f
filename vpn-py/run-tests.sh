#!/usr/bin/env bash
# Builds the `vpn` Python module into <repo>/.venv and runs its pytest suite,
# including the cross-check against scapy's independent ESP implementation.
# Usage (from the repository root): bash vpn-py/run-tests.sh [pytest args...]
# Idempotent: the venv and installed packages are reused when present.
# VPN_PY_PROFILE=debug skips the release build (faster to compile, slower to run).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(cd "$here/.." && pwd)"
venv="$repo/.venv"
python="${PYTHON:-python3}"

if [ ! -x "$venv/bin/python" ]; then
    "$python" -m venv "$venv"
fi
py="$venv/bin/python"

# Only talk to the package index when something is missing.
if ! "$py" -c 'import maturin, pytest, scapy, cryptography' >/dev/null 2>&1 \
    || [ ! -x "$venv/bin/maturin" ]; then
    "$py" -m pip install --quiet --disable-pip-version-check --upgrade pip
    "$py" -m pip install --quiet --disable-pip-version-check \
        'maturin>=1.5,<2' pytest scapy cryptography
fi

profile_flag=(--release)
if [ "${VPN_PY_PROFILE:-release}" = "debug" ]; then
    profile_flag=()
fi

# maturin develop installs into the venv named by VIRTUAL_ENV.
(
    cd "$here"
    export VIRTUAL_ENV="$venv"
    export PATH="$venv/bin:$PATH"
    unset CONDA_PREFIX
    "$venv/bin/maturin" develop --quiet "${profile_flag[@]}"
)

cd "$repo"
exec "$py" -m pytest vpn-py/tests -q "$@"
