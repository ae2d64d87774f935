#!/usr/bin/env bash
# Build the guest probe: target/guest/vmprobe-guest.elf and the raw arm64 Image
# target/guest/vmprobe-guest.bin (boots with `qemu-system-aarch64 -M virt -kernel` and U-Boot `booti`).
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build -p vmprobe-guest --bin vmprobe-guest --target aarch64-unknown-none --profile guest "$@"
mkdir -p target/guest
cp target/aarch64-unknown-none/guest/vmprobe-guest target/guest/vmprobe-guest.elf
tools="$(rustc --print sysroot)/lib/rustlib/$(rustc -vV | sed -n 's/^host: //p')/bin"
"$tools/llvm-objcopy" -O binary target/guest/vmprobe-guest.elf target/guest/vmprobe-guest.bin
# The entry code applies R_AARCH64_RELATIVE relocations only: anything else would run unrelocated.
others=$("$tools/llvm-readobj" -r --elf-output-style=GNU target/guest/vmprobe-guest.elf |
    awk '/^[0-9a-f]+ / && $3 != "R_AARCH64_RELATIVE" { print $3 }' | sort -u)
if [ -n "$others" ]; then
    echo "guest: relocations the entry code cannot apply: $others" >&2
    exit 1
fi
# The header must carry the arm64 Image magic where loaders look for it.
if [ "$(od -An -tx1 -j56 -N4 target/guest/vmprobe-guest.bin | tr -d ' ')" != "41524d64" ]; then
    echo "guest: target/guest/vmprobe-guest.bin has no arm64 Image header" >&2
    exit 1
fi
echo "guest: target/guest/vmprobe-guest.bin ($(stat -c %s target/guest/vmprobe-guest.bin) bytes)"
