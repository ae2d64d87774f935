//! Human summary. The first line is five numbers, like netperf's
//! `-P 0 -- -O min_latency,mean_latency,max_latency,stddev_latency,transaction_rate`:
//! min, mean, max and stddev of the round trip in microseconds, then transactions per
//! second (`-` where there were no replies), so scripts written for netperf keep working.
use std::fmt::Write as _;
use std::io;

use super::Exporter;
use crate::rr::RrReport;
use crate::stats::Summary;

pub(super) struct TextExporter;

fn num(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{v:.3}"))
}

/// `YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ` from nanoseconds since the Unix epoch.
pub(super) fn utc(unix_ns: u64) -> String {
    let secs = unix_ns / 1_000_000_000;
    let (days, rem) = ((secs / 86_400) as i64, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
        unix_ns % 1_000_000_000
    )
}

fn series(out: &mut String, label: &str, s: &Summary) {
    let _ = writeln!(
        out,
        "{label:<13}min {}  mean {}  max {}  stddev {}",
        num(s.min_us),
        num(s.mean_us),
        num(s.max_us),
        num(s.stddev_us)
    );
    let _ = writeln!(
        out,
        "{:<13}p50 {}  p90 {}  p99 {}  p99.9 {}  p99.99 {}",
        "",
        num(s.p50_us),
        num(s.p90_us),
        num(s.p99_us),
        num(s.p999_us),
        num(s.p9999_us)
    );
}

impl Exporter for TextExporter {
    fn serialize(&self, r: &RrReport) -> io::Result<Vec<u8>> {
        let mut out = String::new();
        let rate = if r.transactions > 0 {
            format!("{:.2}", r.rate_tps)
        } else {
            "-".into()
        };
        let _ = writeln!(
            out,
            "{} {} {} {} {}",
            num(r.rtt.min_us),
            num(r.rtt.mean_us),
            num(r.rtt.max_us),
            num(r.rtt.stddev_us),
            rate
        );
        let pacing = match r.interval_us {
            Some(i) => format!("every {i} us, burst {}", r.burst),
            None => "back to back".to_owned(),
        };
        let mode = if r.busy_poll { "busy-poll" } else { "blocking" };
        let _ = writeln!(
            out,
            "vmprobe rr {} {} ({}), {} B, {pacing}, {mode}, cpus {:?}, warm-up {}",
            r.proto, r.target, r.address, r.size, r.cpus_used, r.warmup
        );
        let _ = writeln!(
            out,
            "{:<13}{} ok, {} lost, {} errors, {} late, {} stray in {:.3} s: {rate} transactions/s{}",
            "transactions",
            r.transactions,
            r.lost,
            r.errors,
            r.late,
            r.stray,
            r.elapsed_s,
            if r.interrupted { " (interrupted)" } else { "" }
        );
        series(&mut out, "rtt (us)", &r.rtt);
        if let Some(rx) = &r.rx_sw {
            series(&mut out, "kernel rx", rx);
        }
        if !r.outliers.is_empty() {
            let _ = write!(out, "{:<13}", "largest");
            for (i, o) in r.outliers.iter().enumerate() {
                if i > 0 {
                    let _ = write!(out, "{:<13}", "");
                }
                let _ = writeln!(
                    out,
                    "{:.3} us  seq {}  sent {}  mono {}.{:09}",
                    o.rtt_us,
                    o.id.seq,
                    utc(o.id.send_unix_ns),
                    o.id.send_mono_ns / 1_000_000_000,
                    o.id.send_mono_ns % 1_000_000_000
                );
            }
        }
        if let Some(e) = &r.error {
            let _ = writeln!(out, "{:<13}{e}", "error");
        }
        Ok(out.into_bytes())
    }
}
