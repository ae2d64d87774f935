#!/usr/bin/env bash
# Install what vmprobe needs on a Debian machine that has only the Rust toolchain.
# Idempotent: installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

# System packages: QEMU for arm64 guests, Debian's U-Boot build for QEMU, the network tools
# for tap/bridge/macvtap setups, sockperf as the reference client, trace-cmd for host traces,
# DejaVu Sans for the text of `vmprobe report` charts, chromium for the test that draws
# report.html in a real browser; clang builds the eBPF bridge's program, ethtool, bpftool and
# capsh set up and test `--net ebpf`.
packages=(qemu-system-arm u-boot-qemu iproute2 procps sockperf trace-cmd gcc python3 fonts-dejavu-core
    chromium clang ethtool bpftool libcap2-bin)
# Callers add what only they need (the tests: lava-dispatcher, whose own scripts they run).
packages+=("$@")
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup: installing ${missing[*]}"
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# The guest target and llvm-objcopy; rust-toolchain.toml names them, but an older rustup
# or a toolchain installed before that file existed may lack them.
toolchain=$(sed -n 's/^channel *= *"\(.*\)"/\1/p' rust-toolchain.toml)
if ! rustup target list --installed --toolchain "$toolchain" 2>/dev/null | grep -q aarch64-unknown-none; then
    rustup target add --toolchain "$toolchain" aarch64-unknown-none
fi
if ! rustup component list --installed --toolchain "$toolchain" 2>/dev/null | grep -q llvm-tools; then
    rustup component add --toolchain "$toolchain" llvm-tools
fi
