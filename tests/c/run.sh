#!/usr/bin/env bash
# Builds the vpn-ffi static library, compiles tests/c/esp_test.c,
# tests/c/config_test.c, tests/c/bgp_test.c and tests/c/connection_test.c against
# include/vpn.h with warnings as errors, and runs them (under valgrind when it is
# installed: any memory error or definite/indirect leak fails the run).
# Also compiles the example examples/c/poll_gateway.c with the same flags (to
# $TARGET_DIR/c/poll_gateway) and checks that a configuration it cannot load
# makes it exit 2; tests/interop/test_c_poll_gateway.py runs it for real.
#
# Usage: tests/c/run.sh            (debug library)
#        PROFILE=release tests/c/run.sh
set -euo pipefail

cd "$(dirname "$0")/../.."
PROFILE="${PROFILE:-debug}"
TARGET_DIR="${CARGO_TARGET_DIR:-target}"
CC="${CC:-gcc}"

if [ "$PROFILE" = release ]; then
  cargo build -p vpn-ffi --release
else
  cargo build -p vpn-ffi
fi

mkdir -p "$TARGET_DIR/c"
# Native libraries a Rust staticlib needs on Linux/glibc
# (from `cargo rustc -p vpn-ffi --lib --crate-type staticlib -- --print native-static-libs`).
# build NAME [SOURCE]: SOURCE defaults to tests/c/NAME.c.
build() {
  "$CC" -std=c11 -Wall -Wextra -Werror -pedantic -g -Iinclude \
    "${2:-tests/c/$1.c}" "$TARGET_DIR/$PROFILE/libvpn.a" \
    -lpthread -ldl -lm -lrt -lutil -lgcc_s -lc \
    -o "$TARGET_DIR/c/$1"
}

run() {
  if command -v valgrind >/dev/null 2>&1; then
    # valgrind.supp documents its single, ring-internal suppression.
    valgrind --error-exitcode=1 --leak-check=full \
      --errors-for-leak-kinds=definite,indirect \
      --suppressions=tests/c/valgrind.supp \
      "$@"
  else
    echo "valgrind not found: running without it" >&2
    "$@"
  fi
}

build esp_test
build config_test
build bgp_test
build connection_test
build poll_gateway examples/c/poll_gateway.c
run "$TARGET_DIR/c/esp_test"
run "$TARGET_DIR/c/config_test" vpn-core/tests/fixtures/config
run "$TARGET_DIR/c/bgp_test"
run "$TARGET_DIR/c/connection_test"

# The example needs root, a TUN device and peers for real work; here only its
# error path: an unreadable configuration is reported and exits 2.
set +e
run "$TARGET_DIR/c/poll_gateway" --config /nonexistent/connection.toml >/dev/null
status=$?
set -e
if [ "$status" -ne 2 ]; then
  echo "poll_gateway with a missing configuration exited $status, expected 2" >&2
  exit 1
fi
echo "poll_gateway: compiled; missing configuration rejected (exit 2)"
