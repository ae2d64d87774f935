//! Snapshot tests of every format on fixed reports.
use super::{serialize, text::utc, Format};
use crate::rr::engine::Tally;
use crate::rr::report::ReportParts;
use crate::rr::{Limit, Pacing, Proto, RrOptions, RrReport};
use crate::stats::{Recorder, SampleId};
use std::time::Duration;

fn report(values: &[u64]) -> RrReport {
    let mut rtt = Recorder::new(2);
    for (i, v) in values.iter().enumerate() {
        rtt.record(
            *v,
            SampleId {
                seq: 10 + i as u64,
                send_unix_ns: 1_763_776_800_000_000_000 + i as u64 * 1_000_000,
                send_mono_ns: 5_000_000_000 + i as u64,
            },
        );
    }
    let options = RrOptions {
        limit: Limit::Count(values.len() as u64 + 1),
        pacing: Some(Pacing {
            interval: Duration::from_millis(10),
            burst: 1,
        }),
        proto: Proto::Tcp,
        ..RrOptions::new("localhost:7")
    };
    RrReport::new(ReportParts {
        options: &options,
        address: "127.0.0.1:7".into(),
        cpus_used: vec![1],
        tally: Tally {
            sent: values.len() as u64 + 1,
            transactions: values.len() as u64,
            lost: 1,
            start_unix_ns: 1_763_776_800_000_000_000,
            elapsed_ns: 2_000_000_000,
            first_seq: 10,
            ..Tally::default()
        },
        rtt: rtt.summary(),
        rx_sw: None,
        outliers: rtt.outliers(),
        error: None,
    })
}

#[test]
fn text_snapshot() {
    let text =
        String::from_utf8(serialize(Format::Text, &report(&[20_000, 30_000, 40_500])).unwrap())
            .unwrap();
    let expected = "\
20.000 30.167 40.500 8.370 1.50
vmprobe rr tcp localhost:7 (127.0.0.1:7), 64 B, every 10000 us, burst 1, blocking, cpus [1], warm-up 10
transactions 3 ok, 1 lost, 0 errors, 0 late, 0 stray in 2.000 s: 1.50 transactions/s
rtt (us)     min 20.000  mean 30.167  max 40.500  stddev 8.370
             p50 30.000  p90 40.500  p99 40.500  p99.9 40.500  p99.99 40.500
largest      40.500 us  seq 12  sent 2025-11-22T02:00:00.002000000Z  mono 5.000000002
             30.000 us  seq 11  sent 2025-11-22T02:00:00.001000000Z  mono 5.000000001
";
    assert_eq!(text, expected);
}

#[test]
fn text_without_replies() {
    let text = String::from_utf8(serialize(Format::Text, &report(&[])).unwrap()).unwrap();
    assert!(text.starts_with("- - - - -\n"), "{text}");
}

#[test]
fn json_has_contract_keys() {
    let bytes = serialize(Format::Json, &report(&[20_000, 30_000])).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
    for key in [
        "transactions",
        "lost",
        "min_us",
        "mean_us",
        "max_us",
        "stddev_us",
        "p50_us",
        "p90_us",
        "p99_us",
        "p999_us",
        "p9999_us",
        "rate_tps",
    ] {
        assert!(v[key].is_number(), "{key} in {v}");
    }
    assert_eq!(v["proto"], "tcp");
    assert_eq!(v["count"], 3);
    assert_eq!(v["interval_us"], 10000.0);
    assert_eq!(v["p50_us"], 20.0);
    assert_eq!(v["outliers"][0]["seq"], 11);
    assert_eq!(v["outliers"][0]["rtt_us"], 30.0);
    assert!(v["rx_sw"].is_null());
}

#[test]
fn csv_covers_every_json_scalar() {
    let r = report(&[20_000, 30_000]);
    let text = String::from_utf8(serialize(Format::Csv, &r).unwrap()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[0].split(',').count(), lines[1].split(',').count());
    assert!(lines[1].starts_with("localhost:7,127.0.0.1:7,tcp,2,1,0,0,0,3,20.0,25.0,30.0,5.0,20.0,30.0,30.0,30.0,30.0,1.0,2,,,"), "{}", lines[1]);
    let columns: Vec<&str> = lines[0].split(',').collect();
    assert_eq!(columns[..3], ["target", "address", "proto"]);
    let v = serde_json::to_value(&r).unwrap();
    for (key, value) in v.as_object().unwrap() {
        if !value.is_object() && key != "outliers" && key != "rx_sw" {
            assert!(columns.contains(&key.as_str()), "CSV lacks {key}");
        }
    }
}

#[test]
fn utc_dates() {
    assert_eq!(utc(0), "1970-01-01T00:00:00.000000000Z");
    assert_eq!(
        utc(951_782_400_123_456_789),
        "2000-02-29T00:00:00.123456789Z"
    );
    assert_eq!(
        utc(1_763_776_800_000_000_000),
        "2025-11-22T02:00:00.000000000Z"
    );
}
