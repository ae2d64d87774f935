#!/usr/bin/env python3
"""A plain Python UDP request/response client, the "script" baseline of scripts/bench-rr.sh.

Usage: rr_client.py HOST PORT SIZE SECONDS. Sends SIZE-byte requests back to back for
SECONDS, times each round trip with time.monotonic_ns() around send/recv, checks the echo,
and prints the median RTT in microseconds and the number of transactions.
"""
import socket
import statistics
import struct
import sys
import time


def main():
    host, port, size, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.connect((host, port))
    sock.settimeout(1.0)
    pad = bytes(max(0, size - 8))
    rtts = []
    seq = 0
    end = time.monotonic_ns() + int(seconds * 1e9)
    clock = time.monotonic_ns
    while True:
        request = struct.pack("<Q", seq)[:size] + pad
        t0 = clock()
        if t0 >= end:
            break
        sock.send(request)
        reply = sock.recv(65536)
        t1 = clock()
        if reply == request:
            rtts.append(t1 - t0)
        seq += 1
    print(f"{statistics.median(rtts) / 1e3:.3f} {len(rtts)}")


if __name__ == "__main__":
    main()
