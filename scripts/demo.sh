#!/usr/bin/env bash
# Demo: install what is missing, build the guest probe and the harness, then run the default
# experiment on this machine (`vmprobe quickstart`: every network setup this host allows, the
# guest in irq and poll mode, UDP and TCP echo round trips) and print its table.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/setup.sh
./scripts/build-guest.sh
cargo build --release --bin vmprobe

./target/release/vmprobe quickstart
