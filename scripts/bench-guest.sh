#!/usr/bin/env bash
# The guest probe's own figures on this machine, with one client (vmprobe run, user networking):
#   image size; boot-to-ready time (QEMU start to the ready line) over several boots; ready to
#   the first answer for a client that has been sending since QEMU's start (bench-first-echo.py);
#   UDP and TCP round trips (min/p50/p99/max) in irq and poll mode, back to back and paced one
#   every 10 ms; losses over COUNT back-to-back transactions; and the guest-side time from seeing
#   a request to notifying its reply (UDP probe echo, read from the generic counter).
# Usage: scripts/bench-guest.sh [COUNT] [PACED_COUNT] [BOOTS]
set -euo pipefail
cd "$(dirname "$0")/.."
COUNT=${1:-100000}
PACED=${2:-500}
BOOTS=${3:-5}

[ -f target/guest/vmprobe-guest.bin ] || ./scripts/build-guest.sh >/dev/null
cargo build --release --bin vmprobe >/dev/null 2>&1 || cargo build --release --bin vmprobe
VMPROBE=target/release/vmprobe
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# One measured configuration: NAME MODE PROTO [vmprobe run options...]; its JSON lands in $work.
measure() {
    local name=$1 mode=$2 proto=$3
    shift 3
    "$VMPROBE" run --mode "$mode" --proto "$proto" --format json --run-dir "$work/$name" "$@" \
        >"$work/$name.json"
}

echo "bench-guest: image, $BOOTS boots"
for i in $(seq "$BOOTS"); do measure "boot$i" irq udp --count 10; done
for mode in irq poll; do
    echo "bench-guest: $mode mode, $COUNT back to back, $PACED paced 10 ms apart"
    for proto in udp tcp; do
        measure "b2b-$mode-$proto" "$mode" "$proto" --count "$COUNT" --warmup 100
        measure "paced-$mode-$proto" "$mode" "$proto" --count "$PACED" --interval 10ms
    done
    measure "probe-$mode" "$mode" udp --probe --count 5000 --warmup 100
done

python3 - "$work" "$BOOTS" <<'EOF'
import json, os, statistics, sys
work, boots = sys.argv[1], int(sys.argv[2])
load = lambda name: json.load(open(os.path.join(work, name + ".json")))
size = os.path.getsize("target/guest/vmprobe-guest.bin")
ready = [load(f"boot{i}")["boot_ms"] for i in range(1, boots + 1)]
first = load("boot1")
print(f"\nvmprobe guest on {first['config']['accel'].upper()}, QEMU {first['config']['qemu_version']}, "
      f"{first['config']['net']} networking, GICv{first['config']['gic']}, {first['config']['transport']}")
print(f"image size      {size} bytes ({size / 1024:.0f} KiB)")
print(f"boot to ready   min {min(ready):.0f} ms, median {statistics.median(ready):.0f} ms, "
      f"max {max(ready):.0f} ms over {boots} boots (QEMU start to the ready line)")
print("\nround trip (us)              count  lost     min     p50     p99      max")
for mode in ("irq", "poll"):
    for kind, label in (("b2b", "back to back"), ("paced", "every 10 ms")):
        for proto in ("udp", "tcp"):
            r = load(f"{kind}-{mode}-{proto}")[proto]
            print(f"{mode:4} {proto} {label:13} {r['transactions']:8} {r['lost']:5} "
                  f"{r['min_us']:7.1f} {r['p50_us']:7.1f} {r['p99_us']:7.1f} {r['max_us']:8.1f}")
print("\nin the guest: request seen by the driver to the reply's TX notify (us, UDP probe echo)")
for mode in ("irq", "poll"):
    p = load(f"probe-{mode}").get("probe") or {}
    res = p.get("guest_residence_us")
    if res:
        print(f"  {mode:4}  p50 {res['p50_us']:.1f}  p99 {res['p99_us']:.1f}  "
              f"(notify exit p50 {p['notify_exit_us']['p50_us']:.1f})")
    else:
        print(f"  {mode:4}  no breakdown: {p.get('probe_error', 'missing')}")
EOF

echo
python3 scripts/bench-first-echo.py "$BOOTS"
