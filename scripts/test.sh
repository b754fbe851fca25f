#!/usr/bin/env bash
# Runs every test of the project: Rust (unit, property, integration), the C
# API under valgrind, the Python API with pytest, and interop with real peers
# (strongSwan, BIRD) in network namespaces, which needs root. Installs what it
# needs first.
# Usage: scripts/test.sh            (from anywhere; runs from the repository root)
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '\n==> %s\n' "$*"; }
passed=0
failed=0
failures=()

run_suite() {
    local name=$1
    shift
    log "$name"
    if "$@"; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        failures+=("$name")
    fi
}

install_prerequisites() {
    local missing=()
    command -v valgrind >/dev/null || missing+=(valgrind)
    command -v gcc >/dev/null || missing+=(gcc)
    python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
    if [ ${#missing[@]} -gt 0 ]; then
        if [ "$(id -u)" = 0 ]; then
            log "installing ${missing[*]}"
            apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}"
        else
            echo "missing ${missing[*]}: install them or run as root" >&2
            return 1
        fi
    fi
}

log "prerequisites"
install_prerequisites
rustup component list --installed 2>/dev/null | grep -q rustfmt || rustup component add rustfmt clippy

run_suite "cargo fmt --check" cargo fmt --all -- --check
run_suite "cargo clippy" cargo clippy --workspace --all-targets -- -D warnings
run_suite "cargo test" cargo test --workspace --exclude vpn-py
run_suite "benchmarks compile" cargo bench --workspace --exclude vpn-py --no-run
run_suite "BGP full-table ingest (release: 1M prefixes, <= 4 s, <= 120 B/prefix)" \
    cargo test --release -p vpn-core --test bgp_rib_memory -- --ignored --nocapture
run_suite "examples: two-site simulation, ESP demo" \
    bash -c 'cargo run --quiet --release --example two_sites >/dev/null && cargo run --quiet --example esp_demo'
run_suite "C API (gcc -Werror, valgrind)" bash tests/c/run.sh
run_suite "Python API (pytest)" bash vpn-py/run-tests.sh
run_suite "interop (strongSwan and BIRD in network namespaces)" tests/interop/run.sh
# The Python suite above covers IKEv2 against strongSwan in depth; from the
# Rust harness only its scenarios through a real NAT router (nft masquerade).
run_suite "IKEv2 through a NAT router (Rust harness, strongSwan)" \
    env IKV2_INTEROP_ONLY=nat-initiator \
    cargo test -p vpn-core --lib ike::v2::tests::interop::strongswan -- --ignored

log "summary"
for f in "${failures[@]+"${failures[@]}"}"; do echo "FAILED: $f"; done
echo "test suites: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
