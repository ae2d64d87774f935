#!/usr/bin/env python3
"""Ready line to first answer, the way a boot test pings: a client sends a UDP echo request
every 5 ms from QEMU's start (user networking, GICv3, modern virtio-mmio, irq mode) and notes
when QEMU printed the guest's ready line and when the first answer after it arrived.

Usage: scripts/bench-first-echo.py [BOOTS]   (needs target/guest/vmprobe-guest.bin)
"""
import socket, statistics, subprocess, sys, threading, time

IMAGE = "target/guest/vmprobe-guest.bin"


def free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def one_boot():
    port = free_port()
    client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    client.bind(("127.0.0.1", 0))
    client.settimeout(0.05)
    answers, stop = [], threading.Event()

    def send():
        seq = 0
        while not stop.is_set():
            try:
                client.sendto(b"first-echo-%08d" % seq, ("127.0.0.1", port))
            except OSError:
                pass
            seq += 1
            time.sleep(0.005)

    def receive():
        while not stop.is_set():
            try:
                data, _ = client.recvfrom(2048)
            except (socket.timeout, OSError):
                continue
            if data.startswith(b"first-echo-"):
                answers.append(time.monotonic())

    threads = [threading.Thread(target=f, daemon=True) for f in (send, receive)]
    for t in threads:
        t.start()
    start = time.monotonic()
    qemu = subprocess.Popen(
        ["qemu-system-aarch64", "-M", "virt,gic-version=3", "-cpu", "max", "-m", "128M",
         "-nographic", "-nic", "none", "-no-reboot", "-kernel", IMAGE,
         "-global", "virtio-mmio.force-legacy=false",
         "-netdev", f"user,id=n0,hostfwd=udp:127.0.0.1:{port}-:7",
         "-device", "virtio-net-device,netdev=n0"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    ready = None
    try:
        for line in qemu.stdout:
            if b"vmprobe: ready" in line:
                ready = time.monotonic()
                break
        if ready is None:
            sys.exit("bench-first-echo: no ready line")
        deadline = ready + 5
        while time.monotonic() < deadline and not any(a >= ready for a in answers):
            time.sleep(0.001)
        later = [a for a in answers if a >= ready]
        if not later:
            sys.exit("bench-first-echo: no answer within 5 s of the ready line")
        return (ready - start) * 1e3, (later[0] - ready) * 1e3
    finally:
        stop.set()
        qemu.kill()
        qemu.wait()
        for t in threads:
            t.join()
        client.close()


boots = int(sys.argv[1]) if len(sys.argv) > 1 else 5
runs = [one_boot() for _ in range(boots)]
ready = [r for r, _ in runs]
first = [f for _, f in runs]
print(f"ready to echo   min {min(first):.1f} ms, median {statistics.median(first):.1f} ms, "
      f"max {max(first):.1f} ms over {boots} boots (a client sending every 5 ms from QEMU's "
      f"start: ready line to its first answer; ready line at median "
      f"{statistics.median(ready):.0f} ms)")
