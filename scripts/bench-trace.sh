#!/usr/bin/env bash
# Analysis speed of `vmprobe trace analyze`: generates a synthetic tracefs trace of
# VMPROBE_BENCH_MB MiB (default 1024) and 1/8 of it, analyses both with the release binary,
# and prints MiB/s next to `wc -l` on the same file, plus the analyser's peak RSS.
set -euo pipefail
cd "$(dirname "$0")/.."
export VMPROBE_BENCH_MB="${VMPROBE_BENCH_MB:-1024}"
cargo bench -p vmprobe --bench trace_analyze 2>&1 | grep -E "trace bench|panicked|assert"
