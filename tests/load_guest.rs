//! Load generators beside a latency run against the real guest under QEMU (TCG here): each
//! kind reaches its guest service (discard, chargen) and moves real traffic while UDP echo
//! transactions are measured; a run with load and one without are both reported.
mod support;

use std::sync::atomic::AtomicBool;
use std::time::Duration;

use clap::Parser;
use support::vm::*;
use vmprobe::commands::vm_options::VmOptions;
use vmprobe::load::{Load, LoadKind, LoadReport, LoadTargets};
use vmprobe::rr::{self, Control, Limit, Pacing, Progress, RrOptions};
use vmprobe::vm::options::default_image;
use vmprobe::vm::services::{endpoint, Proto};
use vmprobe::vm::Vm;

#[derive(Parser)]
struct T {
    #[command(flatten)]
    vm: VmOptions,
}

async fn boot(test: &str, args: &[&str]) -> (Vm, std::path::PathBuf) {
    let image = default_image();
    assert!(
        image.is_file(),
        "no guest image at {}: build it with scripts/build-guest.sh",
        image.display()
    );
    let dir = temp_dir(test);
    let mut all = vec!["t", "--accel", "tcg"];
    all.extend_from_slice(args);
    let mut opts = T::try_parse_from(all).unwrap().vm;
    opts.run_dir = Some(dir.join("run"));
    let cfg = opts.validate().unwrap();
    let vm = Vm::start(&cfg, Duration::from_secs(60))
        .await
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    (vm, dir)
}

/// 200 UDP echo transactions 2 ms apart from the client side of `vm`, with `kinds` running
/// (pinned to `load_cpu`) from before the first to after the last.
fn measure(vm: &Vm, kinds: &[LoadKind], load_cpu: Option<usize>) -> (rr::RrRun, Vec<LoadReport>) {
    let info = vm.info();
    let targets = LoadTargets::from_endpoints(&info.endpoints).expect("bulk services");
    let echo = endpoint(&info.endpoints, Proto::Udp, 7).unwrap();
    let mut opts = RrOptions::new(echo.to_string());
    opts.limit = Limit::Count(200);
    opts.pacing = Some(Pacing {
        interval: Duration::from_millis(2),
        burst: 1,
    });
    let load = Load::start(kinds, load_cpu, &targets, vm.client_netns())
        .unwrap_or_else(|e| panic!("{kinds:?}: {e}"));
    let stop = AtomicBool::new(false);
    let progress = Progress::default();
    let control = Control {
        stop: &stop,
        progress: &progress,
        on_sample: None,
    };
    let ns = vm.client_netns().cloned();
    let run = rr::run_with(&opts, echo, control, move || {
        if let Some(ns) = ns {
            ns.enter().map_err(|source| rr::RrError::Setup {
                what: "cannot enter the client namespace",
                source,
            })?;
        }
        rr::connect(echo, rr::Proto::Udp, Duration::from_secs(1))
    })
    .expect("latency run");
    (run, load.stop())
}

fn check(reports: &[LoadReport], kinds: &[LoadKind]) {
    assert_eq!(reports.len(), kinds.len());
    for (r, k) in reports.iter().zip(kinds) {
        assert_eq!(r.kind, k.name());
        assert!(r.bytes > 0, "{r:?}");
        assert!(r.mbit_s > 0.0, "{r:?}");
        assert!(r.elapsed_s > 0.0, "{r:?}");
        if let LoadKind::UdpFlood { .. } = k {
            assert!(r.packets_s.unwrap() > 0.0, "{r:?}");
            assert_eq!(r.bytes, r.packets.unwrap() * 1024);
        } else {
            assert_eq!(r.packets, None);
        }
        eprintln!("{}", r.line());
    }
}

async fn each_kind_beside_latency(test: &str, args: &[&str]) {
    let (vm, dir) = boot(test, args).await;
    let cpus = vmprobe::cpus::allowed().unwrap();
    let last = *cpus.last().unwrap();
    for kinds in [
        vec![LoadKind::ToGuest],
        vec![LoadKind::FromGuest],
        vec![LoadKind::UdpFlood { rate_pps: 2000 }],
    ] {
        let (run, reports) = measure(&vm, &kinds, Some(last));
        assert_eq!(run.report.transactions + run.report.lost, 200);
        assert!(run.report.transactions > 0, "{:?}", run.report);
        check(&reports, &kinds);
        assert_eq!(reports[0].cpus_used, vec![last]);
        assert_eq!(reports[0].cpu, Some(last));
    }
    let status = vm.shutdown().await.unwrap();
    assert_eq!(status, "exit status 0");
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn each_kind_over_user_networking() {
    each_kind_beside_latency("load-user", &[]).await;
}

#[tokio::test]
#[ignore = "needs root: --net tap sets up a network namespace"]
async fn each_kind_inside_the_tap_namespace() {
    each_kind_beside_latency("load-tap", &["--net", "tap"]).await;
}

#[tokio::test]
async fn with_and_without_load_both_reported() {
    let (vm, dir) = boot("load-compare", &[]).await;
    let (quiet, none) = measure(&vm, &[], None);
    assert!(none.is_empty());
    let kinds = [LoadKind::ToGuest, LoadKind::FromGuest];
    let (loaded, reports) = measure(&vm, &kinds, None);
    check(&reports, &kinds);
    for (name, r) in [
        ("no load", &quiet.report),
        ("to-guest+from-guest", &loaded.report),
    ] {
        assert!(r.transactions > 0);
        eprintln!(
            "{name}: p50 {:?} us, p99 {:?} us, max {:?} us, lost {}",
            r.rtt.p50_us, r.rtt.p99_us, r.rtt.max_us, r.lost
        );
    }
    vm.shutdown().await.unwrap();
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn unreachable_service_is_a_clear_error() {
    // Nothing listens on a fresh loopback port: to-guest must say where it could not connect.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let targets = LoadTargets {
        discard_tcp: port,
        discard_udp: port,
        chargen_tcp: port,
    };
    let err = Load::start(&[LoadKind::ToGuest], None, &targets, None)
        .err()
        .expect("refused");
    let text = err.to_string();
    assert!(
        text.contains("to-guest") && text.contains(&port.to_string()),
        "{text}"
    );
}

#[test]
fn a_cpu_that_does_not_exist_is_a_clear_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let targets = LoadTargets {
        discard_tcp: addr,
        discard_udp: addr,
        chargen_tcp: addr,
    };
    let err = Load::start(&[LoadKind::ToGuest], Some(4000), &targets, None)
        .err()
        .expect("no CPU 4000");
    assert!(err.to_string().contains("--load-cpu"), "{err}");
}

#[test]
fn bad_load_flags_fail_in_one_line_before_booting() {
    for (args, expect) in [
        (&["--load", "bulk"][..], "unknown load kind `bulk`"),
        (&["--load", "udp-flood:fast"][..], "udp-flood needs a rate"),
        (&["--load-cpu", "1"][..], "--load"),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_vmprobe"))
            .arg("run")
            .args(args)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        assert!(err.contains(expect), "{args:?}: {err}");
    }
}
