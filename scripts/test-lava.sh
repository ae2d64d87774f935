#!/usr/bin/env bash
# Run the example LAVA jobs that boot the guest with Debian's lava-dispatcher (`lava-run`, no
# server) against the real guest image, and check the test cases LAVA recorded from the guest's
# console (scripts/lava-results.py):
#   - lava/jobs/qemu-guest-monitors.yaml on the qemu device type (arch arm64, TCG here);
#   - lava/jobs/uboot-board-monitors.yaml on a U-Boot board that is QEMU running Debian's
#     U-Boot, fed by TFTP (lava/jobs/devices/qemu-uboot-board.yaml);
#   - lava/jobs/kvm-host-test-definition.yaml is validated only (`lava-run --validate`): its
#     device is an arm64 KVM host reached over SSH, which this machine is not;
#   - every job against LAVA's job schema (lava_common.schemas, strict), as a server checks it.
# Installs lava-dispatcher and the tools it wants for TFTP/U-Boot jobs (tftpd-hpa, u-boot-tools)
# and socat (the board's serial line) if missing. lava-run refuses to run as anyone but root: as
# another user this script says so and skips. Logs stay in target/lava-test/<job>/lava.log.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "$(id -u)" -ne 0 ]; then
    echo "test-lava: skipped: lava-run runs only as root, and this is uid $(id -u)"
    echo "0 passed, 0 failed, 4 skipped"
    exit 0
fi
./scripts/setup.sh lava-dispatcher tftpd-hpa u-boot-tools socat
./scripts/build-guest.sh

work=target/lava-test
rm -rf "$work"
image="$PWD/target/guest/vmprobe-guest.bin"
passed=0
failed=0

# run NAME JOB DEVICE [lava-run options]: the job as a lab would run it, with its files taken
# from this build (and the board's own device tree) instead of the lab's artifact server.
run() {
    local name=$1 job=$2 device=$3
    shift 3
    local dir="$work/$name"
    mkdir -p "$dir"
    /usr/bin/python3 - "$job" "$device" "$image" "$PWD/$dir" >"$dir/job.yaml" <<'PY'
import shlex, subprocess, sys, yaml
job_file, device_file, image, dir = sys.argv[1:]
job = yaml.safe_load(open(job_file))
device = yaml.safe_load(open(device_file))
for action in job["actions"]:
    deploy = action.get("deploy")
    if not deploy:
        continue
    kernel = deploy["images"]["kernel"] if "images" in deploy else deploy["kernel"]
    kernel["url"] = "file://" + image
    if "dtb" in deploy:
        # The board's device tree: its own QEMU command line, asked to dump it.
        args, dtb = shlex.split(device["commands"]["power_on"]), f"{dir}/board.dtb"
        keep, skip = [], False
        for a in args:
            if skip:
                skip = False
            elif a in ("-serial", "-pidfile"):
                skip = True
            elif a != "-daemonize":
                keep.append(a)
        keep[keep.index("-M") + 1] += f",dumpdtb={dtb}"
        subprocess.run(keep, check=True, capture_output=True)
        deploy["dtb"]["url"] = "file://" + dtb
yaml.safe_dump(job, sys.stdout, sort_keys=False)
PY
    local start=$SECONDS status=0
    timeout 300 lava-run --job-id "vmprobe-$name-$$" --output-dir "$PWD/$dir/out" \
        --device "$device" "$@" "$dir/job.yaml" 2>"$dir/lava.log" || status=$?
    echo "test-lava: $name: lava-run exited $status after $((SECONDS - start)) s; its log: $dir/lava.log"
    if /usr/bin/python3 scripts/lava-results.py check "$dir/lava.log"; then
        passed=$((passed + 1))
    else
        failed=$((failed + 1))
        echo "test-lava: $name: the console as lava-run saw it:"
        /usr/bin/python3 -c '
import sys, yaml
for line in open(sys.argv[1]):
    if line.startswith("{"):
        e = yaml.safe_load(line)
        if e.get("lvl") in ("target", "error", "exception"):
            print("  |", e["msg"])
' "$dir/lava.log"
    fi
}

# validate NAME JOB DEVICE: a job whose device is not here (an SSH host), checked by lava-run
# --validate, which builds its whole pipeline and checks its parameters, with a key made for it.
validate() {
    local name=$1 job=$2 device=$3
    local dir="$work/$name"
    mkdir -p "$dir"
    ssh-keygen -q -t ed25519 -N '' -f "$dir/key"
    sed "s#^\( *identity_file:\).*#\1 $PWD/$dir/key#" "$device" >"$dir/device.yaml"
    if lava-run --validate --job-id "vmprobe-$name-$$" --output-dir "$PWD/$dir/out" \
        --device "$dir/device.yaml" "$job" 2>"$dir/lava.log"; then
        echo "test-lava: $name: lava-run --validate passed (the job is not run: no such host here)"
        passed=$((passed + 1))
    else
        echo "test-lava: $name: lava-run --validate failed:"
        tail -n 3 "$dir/lava.log"
        failed=$((failed + 1))
    fi
}

# Every job against LAVA's own job schema, strictly, as a server checks a job at submission.
if /usr/bin/python3 - lava/jobs/*.yaml <<'PY'; then
import sys, yaml
from lava_common.schemas import validate
bad = 0
for path in sys.argv[1:]:
    try:
        validate(yaml.safe_load(open(path)), strict=True, extra_context_variables=[])
    except Exception as e:
        print(f"test-lava: {path}: not a valid LAVA job: {e}")
        bad += 1
sys.exit(bad)
PY
    echo "test-lava: schema: every job in lava/jobs/ is valid under LAVA's job schema"
    passed=$((passed + 1))
else
    failed=$((failed + 1))
fi

run qemu lava/jobs/qemu-guest-monitors.yaml lava/jobs/devices/qemu-arm64.yaml
run uboot lava/jobs/uboot-board-monitors.yaml lava/jobs/devices/qemu-uboot-board.yaml \
    --dispatcher lava/jobs/devices/dispatcher-slirp.yaml
validate kvm-host lava/jobs/kvm-host-test-definition.yaml lava/jobs/devices/ssh-arm64-host.yaml
echo "$passed passed, $failed failed, 0 skipped"
[ "$failed" -eq 0 ]
