#!/usr/bin/env bash
# Build the guest probe: target/guest/vmprobe-guest.elf and the raw arm64 Image
# target/guest/vmprobe-guest.bin (boots with `qemu-system-aarch64 -M virt -kernel` and U-Boot `booti`).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build -p vmprobe-guest --bin vmprobe-guest --target aarch64-unknown-none --profile guest "$@"
mkdir -p target/guest
cp target/aarch64-unknown-none/guest/vmprobe-guest target/guest/vmprobe-guest.elf
objcopy="$(rustc --print sysroot)/lib/rustlib/$(rustc -vV | sed -n 's/^host: //p')/bin/llvm-objcopy"
"$objcopy" -O binary target/guest/vmprobe-guest.elf target/guest/vmprobe-guest.bin
# The header must carry the arm64 Image magic where loaders look for it.
if [ "$(od -An -tx1 -j56 -N4 target/guest/vmprobe-guest.bin | tr -d ' ')" != "41524d64" ]; then
    echo "guest: target/guest/vmprobe-guest.bin has no arm64 Image header" >&2
    exit 1
fi
echo "guest: target/guest/vmprobe-guest.bin ($(stat -c %s target/guest/vmprobe-guest.bin) bytes)"
