#!/usr/bin/env bash
# Run lava/jobs/qemu-guest-monitors.yaml with Debian's lava-dispatcher (`lava-run`, no server)
# against the real guest image, then check the test cases LAVA recorded from the guest's console
# (scripts/lava-results.py). Installs lava-dispatcher if it is missing. lava-run refuses to run
# as anyone but root: as another user this script says so and skips.
# The log stays in target/lava-test/lava.log.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
    echo "test-lava: skipped: lava-run runs only as root, and this is uid $(id -u)"
    echo "0 passed, 0 failed, 1 skipped"
    exit 0
fi
if ! dpkg-query -W -f='${Status}' lava-dispatcher 2>/dev/null | grep -q "install ok installed"; then
    echo "test-lava: installing lava-dispatcher"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends lava-dispatcher >/dev/null
fi
./scripts/setup.sh
./scripts/build-guest.sh

work=target/lava-test
rm -rf "$work"
mkdir -p "$work"
image="$PWD/target/guest/vmprobe-guest.bin"
# The job as a lab would run it, with the image taken from this build instead of the lab's
# artifact server.
/usr/bin/python3 - lava/jobs/qemu-guest-monitors.yaml "file://$image" >"$work/job.yaml" <<'PY'
import sys, yaml
job = yaml.safe_load(open(sys.argv[1]))
for action in job["actions"]:
    if "deploy" in action:
        action["deploy"]["images"]["kernel"]["url"] = sys.argv[2]
yaml.safe_dump(job, sys.stdout, sort_keys=False)
PY

start=$SECONDS
set +e
timeout 240 lava-run --job-id "vmprobe-test-$$" --output-dir "$PWD/$work/out" \
    --device lava/jobs/devices/qemu-arm64.yaml "$work/job.yaml" 2>"$work/lava.log"
status=$?
set -e
echo "test-lava: lava-run exited $status after $((SECONDS - start)) s; its log: $work/lava.log"
if /usr/bin/python3 scripts/lava-results.py check "$work/lava.log"; then
    echo "1 passed, 0 failed, 0 skipped"
else
    echo "test-lava: the guest's console as lava-run saw it:"
    /usr/bin/python3 -c '
import sys, yaml
for line in open(sys.argv[1]):
    if line.startswith("{"):
        e = yaml.safe_load(line)
        if e.get("lvl") in ("target", "error", "warning"):
            print("  |", e["msg"])
' "$work/lava.log"
    echo "0 passed, 1 failed, 0 skipped"
    exit 1
fi
