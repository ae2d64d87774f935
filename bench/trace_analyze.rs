//! Analysis speed and memory on large synthetic traces. A benchmark, not a test: run it with
//! `scripts/bench-trace.sh` (or `cargo bench -p vmprobe --bench trace_analyze`;
//! VMPROBE_BENCH_MB sets the big file's size, default 1024).
//!
//! It writes a tracefs-format trace of tap-tcg packets among scheduler, IRQ and function
//! noise, then times `vmprobe trace analyze` on a file 1/8 the size and on the full size,
//! next to the same run's reference: reading the file line by line without parsing. Memory is
//! the analyser's peak RSS, which must not grow with the file.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;
use std::process::Command;
use std::time::Instant;

/// Writes about `mb` MiB of trace; returns (bytes, packets, gap packets).
fn generate(path: &Path, mb: u64) -> (u64, u64, u64) {
    let mut w = BufWriter::with_capacity(1 << 20, File::create(path).unwrap());
    let limit = mb << 20;
    let (mut bytes, mut packets, mut gaps) = (0u64, 0u64, 0u64);
    let mut t: u64 = 5_000_000_000_000; // ns
    let mut line = String::with_capacity(256);
    let emit = |w: &mut BufWriter<File>, line: &mut String, bytes: &mut u64| {
        line.push('\n');
        w.write_all(line.as_bytes()).unwrap();
        *bytes += line.len() as u64;
        line.clear();
    };
    let ts = |t: u64| format!("{}.{:06}", t / 1_000_000_000, (t % 1_000_000_000) / 1000);
    while bytes < limit {
        let slow = packets % 1000 == 999;
        let skb = 0xffff_8881_0a79_9000u64 + (packets % 4096) * 256;
        line.push_str(&format!("         sockperf-2000    [000] b.... {}: net_dev_xmit: dev=vmptap0 skbaddr={skb:016x} len=98 rc=0", ts(t)));
        emit(&mut w, &mut line, &mut bytes);
        for i in 0..3 {
            t += 2_000;
            line.push_str(&format!(
                "         sockperf-2000    [000] ...1. {}: tcp_sendmsg_{i} <-inet_sendmsg",
                ts(t)
            ));
            emit(&mut w, &mut line, &mut bytes);
        }
        t += 3_000;
        line.push_str(&format!("          <idle>-0       [001] dNh2. {}: sched_waking: comm=qemu-system-aar pid=1460 prio=120 target_cpu=001", ts(t)));
        emit(&mut w, &mut line, &mut bytes);
        if slow {
            // A QEMU worker holds CPU 1 for 2 ms, with timer IRQs and IPIs.
            line.push_str(&format!("          <idle>-0       [001] d..2. {}: sched_switch: prev_comm=swapper/1 prev_pid=0 prev_prio=120 prev_state=R ==> next_comm=worker next_pid=1470 next_prio=120", ts(t + 1_000)));
            emit(&mut w, &mut line, &mut bytes);
            for k in 1..=4 {
                line.push_str(&format!("          worker-1470    [001] d.h1. {}: irq_handler_entry: irq=11 name=arch_timer", ts(t + k * 400_000)));
                emit(&mut w, &mut line, &mut bytes);
                line.push_str(&format!("        sockperf-2000    [000] d..1. {}: ipi_send_cpu: cpu=1 callsite=resched_curr+0x5c/0x70 callback=0x0", ts(t + k * 400_000 + 10)));
                emit(&mut w, &mut line, &mut bytes);
            }
            t += 2_000_000;
            gaps += 1;
        }
        t += 4_000;
        line.push_str(&format!("          <idle>-0       [001] d..2. {}: sched_switch: prev_comm=swapper/1 prev_pid=0 prev_prio=120 prev_state=R ==> next_comm=qemu-system-aar next_pid=1460 next_prio=120", ts(t)));
        emit(&mut w, &mut line, &mut bytes);
        t += 5_000;
        line.push_str(&format!(" qemu-system-aar-1460    [001] ...1. {}: skb_copy_datagram_iovec: skbaddr={skb:016x} len=98", ts(t)));
        emit(&mut w, &mut line, &mut bytes);
        for i in 0..3 {
            t += 30_000;
            line.push_str(&format!("       CPU 0/TCG-1461    [000] d.h1. {}: irq_handler_entry: irq={} name=virtio{i}-input.0", ts(t), 40 + i));
            emit(&mut w, &mut line, &mut bytes);
        }
        t += 20_000;
        line.push_str(&format!(" qemu-system-aar-1460    [001] ..s1. {}: netif_receive_skb: dev=vmptap0 skbaddr={skb:016x} len=98", ts(t)));
        emit(&mut w, &mut line, &mut bytes);
        line.push_str("this line is deliberately not a trace line");
        emit(&mut w, &mut line, &mut bytes);
        t += 100_000;
        packets += 1;
    }
    w.flush().unwrap();
    (bytes, packets, gaps)
}

fn children_usage() -> libc::rusage {
    // SAFETY: getrusage writes into the zeroed struct we pass and has no other effect.
    unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru);
        ru
    }
}

fn cpu_secs(ru: &libc::rusage) -> f64 {
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Runs a command, returning (wall seconds, CPU seconds, peak RSS of the largest child so far
/// in KiB, stdout). CPU time matters on a shared machine where wall time includes waiting.
fn timed(cmd: &mut Command) -> (f64, f64, i64, Vec<u8>) {
    let before = cpu_secs(&children_usage());
    let start = Instant::now();
    let out = cmd.output().unwrap();
    let secs = start.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let after = children_usage();
    (secs, cpu_secs(&after) - before, after.ru_maxrss, out.stdout)
}

fn main() {
    let mb: u64 = std::env::var("VMPROBE_BENCH_MB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024);
    let dir = std::env::temp_dir();
    let bin = env!("CARGO_BIN_EXE_vmprobe");
    let mut rss_seen = Vec::new();
    for size in [mb / 8, mb] {
        let file = dir.join(format!("vmprobe-bench-{}-{size}.trace", std::process::id()));
        let (bytes, packets, gaps) = generate(&file, size.max(1));
        let mbytes = bytes as f64 / (1 << 20) as f64;
        // Reference: the same file split into lines and nothing else (wc -l).
        let (_, ref_cpu, _, _) = timed(Command::new("wc").arg("-l").arg(&file));
        let (s, cpu, rss, out) = timed(
            Command::new(bin)
                .args(["trace", "analyze"])
                .arg(&file)
                .args(["--path", "tap-tcg", "--gap", "1ms", "--format", "json"]),
        );
        let j: serde_json::Value = serde_json::from_slice(&out).unwrap();
        println!(
            "trace bench: {mbytes:.0} MiB, {packets} packets: analyze {s:.2} s wall = {:.0} MiB/s, {cpu:.2} s CPU = {:.0} MiB/s; \
             reference wc -l {:.0} MiB/s CPU (analyze costs {:.1}x); peak RSS {} MiB",
            mbytes / s,
            mbytes / cpu,
            mbytes / ref_cpu.max(1e-3),
            cpu / ref_cpu.max(1e-3),
            rss / 1024
        );
        assert_eq!(j["packets"].as_u64(), Some(packets));
        assert_eq!(
            j["gaps"].as_array().unwrap().len() as u64 + j["gaps_omitted"].as_u64().unwrap(),
            gaps
        );
        assert_eq!(j["gaps"][0]["tasks"][0]["task"], "worker");
        assert_eq!(j["unparsed_lines"].as_u64(), Some(packets));
        rss_seen.push(rss);
        std::fs::remove_file(&file).unwrap();
    }
    // Streaming: eight times the input must not need noticeably more memory.
    // (RUSAGE_CHILDREN reports the largest child so far; `wc` is far smaller.)
    assert!(
        rss_seen[1] < rss_seen[0] + 16 * 1024,
        "peak RSS grew from {} to {} KiB",
        rss_seen[0],
        rss_seen[1]
    );
}
