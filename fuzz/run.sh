#!/usr/bin/env bash
# Builds every cargo-fuzz target of vpn-core and runs each for a while.
#
#   fuzz/run.sh [seconds-per-target]      (default 10)
#
# Installs cargo-fuzz if missing. Works on a stable toolchain: targets are
# built with `--sanitizer none` (AddressSanitizer needs nightly's -Zsanitizer;
# the core is #![forbid(unsafe_code)], so panics are what we hunt). Each target
# starts from fuzz/corpus/<target>/ and writes what it discovers to a scratch
# directory, so the committed seeds stay as they are. A crash leaves its input
# in fuzz/artifacts/<target>/ and makes the script exit non-zero.
#
# Environment: CARGO_TARGET_DIR (default fuzz/target), FUZZ_JOBS (cargo -j),
# FUZZ_TARGETS (space-separated subset), FUZZ_CODEGEN_UNITS (default 16: a
# faster build for a slightly slower fuzzer; 1 is cargo-fuzz's default).
set -u -o pipefail

secs="${1:-10}"
here="$(cd "$(dirname "$0")" && pwd)"
cd "$here"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$here/target}"
cgu="${FUZZ_CODEGEN_UNITS:-16}"
jobs=()
[ -n "${FUZZ_JOBS:-}" ] && jobs=(-j "$FUZZ_JOBS")

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "== installing cargo-fuzz"
    cargo install cargo-fuzz --locked || { echo "cargo-fuzz install failed"; exit 2; }
fi

echo "== building fuzz targets (sanitizer none, codegen units $cgu)"
# shellcheck disable=SC2086
if ! cargo fuzz build -s none --codegen-units "$cgu" ${jobs[@]+"${jobs[@]}"}; then
    echo "fuzz build failed"
    echo "fuzz targets: 0 passed, 1 failed"
    exit 1
fi

targets="${FUZZ_TARGETS:-$(cargo fuzz list)}"
bin_dir="$CARGO_TARGET_DIR/$(rustc -vV | sed -n 's/^host: //p')/release"
work="$(mktemp -d "${TMPDIR:-/tmp}/vpn-fuzz.XXXXXX")"
trap 'rm -rf "$work"' EXIT

passed=0
failed=0
failed_names=()
for t in $targets; do
    mkdir -p "$work/$t" "artifacts/$t" "corpus/$t"
    log="$work/$t.log"
    start=$(date +%s)
    "$bin_dir/$t" "$work/$t" "corpus/$t" \
        -max_total_time="$secs" -timeout=20 -rss_limit_mb=2048 -max_len=4096 \
        -artifact_prefix="artifacts/$t/" -print_final_stats=1 >"$log" 2>&1
    rc=$?
    took=$(( $(date +%s) - start ))
    runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -1)
    cov=$(grep -oE 'cov: [0-9]+' "$log" | tail -1)
    if [ "$rc" -eq 0 ]; then
        passed=$((passed + 1))
        printf '%-20s ok    %3ss  %8s runs  %s\n' "$t" "$took" "${runs:-?}" "${cov:-}"
    else
        failed=$((failed + 1))
        failed_names+=("$t")
        printf '%-20s FAIL  %3ss  (exit %s)\n' "$t" "$took" "$rc"
        grep -E "panicked at|^==[0-9]+== ERROR|SUMMARY|Test unit written|Base64" "$log" | head -8 | sed 's/^/    /'
        sed -n '/panicked at/,/^$/p' "$log" | head -40 | sed 's/^/    /'
    fi
done
rmdir artifacts/* 2>/dev/null
rmdir artifacts 2>/dev/null

if [ "$failed" -gt 0 ]; then
    echo "failing targets: ${failed_names[*]}"
    echo "reproduce: cargo fuzz run -s none <target> fuzz/artifacts/<target>/<file>"
fi
echo "fuzz targets: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
