#!/usr/bin/env bash
# Demo: set up, build the guest probe, boot it under QEMU (user networking, a UDP hostfwd on a free
# port), show its ready line and its UDP echo answers, then shut it down.
set -euo pipefail
cd "$(dirname "$0")/.."

./scripts/setup.sh
./scripts/build-guest.sh

# A free UDP and TCP port on 127.0.0.1 for the forward.
port=""
for candidate in $(shuf -i 20000-60999 -n 50); do
    if [ -z "$(ss -Hlnu "sport = :$candidate")" ] && [ -z "$(ss -Hlnt "sport = :$candidate")" ]; then
        port=$candidate
        break
    fi
done
[ -n "$port" ] || { echo "demo: no free port found" >&2; exit 1; }

log="$(mktemp)"
qemu-system-aarch64 -M virt -cpu cortex-a57 -m 128M -nographic -nic none -no-reboot \
    -kernel target/guest/vmprobe-guest.bin \
    -netdev "user,id=n0,hostfwd=udp:127.0.0.1:$port-:7,hostfwd=tcp:127.0.0.1:$port-:7" \
    -device virtio-net-device,netdev=n0 </dev/null >"$log" 2>&1 &
qemu=$!
cleanup() {
    kill "$qemu" 2>/dev/null || true
    wait "$qemu" 2>/dev/null || true
    rm -f "$log"
}
trap cleanup EXIT

echo "demo: booting target/guest/vmprobe-guest.bin under qemu-system-aarch64 (pid $qemu), UDP/TCP 7 at 127.0.0.1:$port"
for _ in $(seq 300); do
    grep -q "vmprobe: ready" "$log" && break
    grep -q "vmprobe: error" "$log" && break
    kill -0 "$qemu" 2>/dev/null || break
    sleep 0.1
done
sed 's/\r$//; s/^/console| /' "$log"
grep -q "vmprobe: ready" "$log" || { echo "demo: the guest did not become ready" >&2; exit 1; }

# UDP echo through bash's /dev/udp (a connected UDP socket): each reply must equal the request.
exec 3<>"/dev/udp/127.0.0.1/$port"
for message in "hello vmprobe" "$(printf 'x%.0s' $(seq 1000))" "the quick brown fox"; do
    printf '%s' "$message" >&3
    reply="$(timeout 3 head -c "${#message}" <&3 || true)"
    if [ "$reply" = "$message" ]; then
        echo "demo: UDP echo of ${#message} bytes: answered, identical"
    else
        echo "demo: UDP echo of ${#message} bytes: no or wrong answer" >&2
        exit 1
    fi
done
exec 3>&-
echo "demo: done; shutting the guest down"
