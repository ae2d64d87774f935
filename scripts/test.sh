#!/usr/bin/env bash
# Run every test: unit tests of all crates on the host, and the integration tests that boot the
# real guest image in real QEMU (TCG here, KVM on an arm64 host).
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/setup.sh
./scripts/build-guest.sh
cargo build --release --bin vmprobe
cargo test --workspace --release -- --test-threads=2
