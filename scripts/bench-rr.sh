#!/usr/bin/env bash
# Median UDP round trip on loopback, in the same run, of
#   vmprobe rr (blocking and --busy-poll)  -> native C echo (bench/udp_echo.c)
#   a plain Python client (bench/rr_client.py) -> the same C echo
#   sockperf ping-pong --full-rtt          -> sockperf server (Debian's reflector)
# Each client runs ROUNDS times for SECS seconds, interleaved so that drifting machine load
# hits all alike; the table shows the median of the per-round medians and every round.
# Servers run on cpu0, clients on cpu1 (when the machine has two CPUs or more). As root,
# every server and client runs at SCHED_FIFO priority 1 (chrt), all alike, so that other
# work on a shared machine does not decide the comparison; RT=0 turns that off.
# Usage: scripts/bench-rr.sh [ROUNDS] [SECS] [SIZE]
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
SECS=${2:-2}
SIZE=${3:-64}
ECHO_PORT=${ECHO_PORT:-17007}
SOCKPERF_PORT=${SOCKPERF_PORT:-17011}

for tool in gcc python3 sockperf taskset; do
    command -v "$tool" >/dev/null || { echo "bench-rr: $tool is missing (scripts/setup.sh installs it)" >&2; exit 1; }
done
cargo build --release --bin vmprobe >/dev/null 2>&1 || cargo build --release --bin vmprobe
VMPROBE=target/release/vmprobe
work=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    rm -rf "$work"
}
trap cleanup EXIT
gcc -O2 -Wall -o "$work/udp_echo" bench/udp_echo.c

if [ "$(nproc)" -ge 2 ]; then SRV_CPU=0; CLI_CPU=1; else SRV_CPU=0; CLI_CPU=0; fi
RT=${RT:-$([ "$(id -u)" -eq 0 ] && command -v chrt >/dev/null && echo 1 || echo 0)}
rt=()
[ "$RT" = 1 ] && rt=(chrt -f 1)
taskset -c "$SRV_CPU" "${rt[@]}" "$work/udp_echo" "$ECHO_PORT" & pids+=($!)
taskset -c "$SRV_CPU" "${rt[@]}" sockperf server -i 127.0.0.1 -p "$SOCKPERF_PORT" >/dev/null 2>&1 & pids+=($!)
sleep 0.5

json_p50() { sed -n 's/^  "p50_us": \([0-9.]*\),*$/\1/p'; }
run_vmprobe() {
    taskset -c "$CLI_CPU" "${rt[@]}" "$VMPROBE" rr --target "127.0.0.1:$ECHO_PORT" --duration "${SECS}s" \
        --size "$SIZE" --cpu "$CLI_CPU" --format json "$@" | json_p50
}
run_python() {
    taskset -c "$CLI_CPU" "${rt[@]}" python3 bench/rr_client.py 127.0.0.1 "$ECHO_PORT" "$SIZE" "$SECS" | cut -d' ' -f1
}
run_sockperf() {
    taskset -c "$CLI_CPU" "${rt[@]}" sockperf ping-pong -i 127.0.0.1 -p "$SOCKPERF_PORT" -m "$SIZE" -t "$SECS" --full-rtt 2>&1 |
        sed -n 's/.*percentile 50\.000 = *\([0-9.]*\).*/\1/p'
}

names=("vmprobe rr (blocking) -> C echo" "vmprobe rr --busy-poll -> C echo" "python client -> C echo" "sockperf ping-pong --full-rtt -> sockperf server")
declare -A results
for round in $(seq "$ROUNDS"); do
    results[0]+="$(run_vmprobe) "
    results[1]+="$(run_vmprobe --busy-poll) "
    results[2]+="$(run_python) "
    results[3]+="$(run_sockperf) "
    echo "bench-rr: round $round of $ROUNDS done" >&2
done

median() { tr ' ' '\n' | grep -v '^$' | sort -g | awk '{v[NR]=$1} END {if (NR%2) print v[(NR+1)/2]; else printf "%.3f\n", (v[NR/2]+v[NR/2+1])/2}'; }
printf '\nUDP loopback, %s-byte requests, %s x %s s per client, server cpu%s, client cpu%s, SCHED_FIFO %s, load %s\n' \
    "$SIZE" "$ROUNDS" "$SECS" "$SRV_CPU" "$CLI_CPU" "$([ "$RT" = 1 ] && echo on || echo off)" "$(cut -d' ' -f1 /proc/loadavg)"
printf '%-52s %12s   %s\n' "client -> server" "median RTT" "per round (us)"
for i in 0 1 2 3; do
    printf '%-52s %9s us   %s\n' "${names[$i]}" "$(echo "${results[$i]}" | median)" "${results[$i]}"
done
vm=$(echo "${results[0]}" | median); py=$(echo "${results[2]}" | median); sp=$(echo "${results[3]}" | median)
awk -v vm="$vm" -v py="$py" -v sp="$sp" 'BEGIN {
    printf "\nvmprobe/python %.3f (<= 1 is no worse), vmprobe/sockperf %.3f (within 10%%: 0.90..1.10)\n", vm/py, vm/sp }'
