#!/usr/bin/env bash
# Run every test: unit tests of all crates on the host, and the integration tests that boot the
# real guest image in real QEMU (TCG here, KVM on an arm64 host).
#
# Tests that need root (network namespaces, tracefs) are `#[ignore = "needs root: ..."]`; as root
# this script runs them too, so a root run skips nothing. It ends with one line,
# `N passed, N failed, N skipped`, after naming every skipped test with its reason.
set -euo pipefail
cd "$(dirname "$0")/.."

# lava-dispatcher: tests/lava_cli.rs checks vmprobe's output with LAVA's own scripts.
./scripts/setup.sh lava-dispatcher
./scripts/build-guest.sh
cargo build --release --bin vmprobe

include=()
[ "$(id -u)" -eq 0 ] && include=(--include-ignored)
log=$(mktemp -t vmprobe-test.XXXXXX)
trap 'rm -f "$log"' EXIT
start=$SECONDS
set +e
cargo test --workspace --release --no-fail-fast -- --test-threads=2 "${include[@]}" 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
set -e

# libtest prints `test NAME ... ok|FAILED|ignored[, REASON]` for each test; the binary comes from
# cargo's `Running`/`Doc-tests` line before it.
awk -v secs=$((SECONDS - start)) -v status="$status" '
    /^ *Running / { bin = $2; next }
    /^ *Doc-tests / { bin = "doc-tests " $2; next }
    /^test .* \.\.\. ok$/ { passed++; next }
    /^test .* \.\.\. FAILED$/ { failed++; sub(/^test /, ""); sub(/ \.\.\. FAILED$/, ""); bad[failed] = bin ": " $0; next }
    /^test .* \.\.\. ignored/ {
        skipped++
        line = $0; sub(/^test /, "", line)
        name = line; sub(/ \.\.\. ignored.*/, "", name)
        reason = line; sub(/.* \.\.\. ignored,? ?/, "", reason)
        if (reason == "") reason = "ignored, no reason given"
        skip[skipped] = bin ": " name " (" reason ")"
        next
    }
    END {
        print ""
        for (i = 1; i <= skipped; i++) print "skipped: " skip[i]
        for (i = 1; i <= failed; i++) print "failed:  " bad[i]
        if (status != 0 && failed == 0) print "failed:  cargo test exited with status " status " (a build error or a crashed test binary; see above)"
        printf "%d passed, %d failed, %d skipped (%d min %d s)\n", passed, failed + (status != 0 && failed == 0), skipped, secs / 60, secs % 60
    }' "$log"
exit "$status"
