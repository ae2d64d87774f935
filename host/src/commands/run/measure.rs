//! One protocol's measurement: the rr engine against the guest's echo service on a dedicated
//! thread (inside the client namespace for tap/bridge/macvtap, on the host for user
//! networking), watched by the orchestrating task for Ctrl-C and for QEMU dying.
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::oneshot;

use crate::rr::{self, Control, Progress, Proto, RrError, RrOptions, RrRun};
use crate::vm::services::endpoint;
use crate::vm::Vm;

use super::hooks::SampleObserver;
use super::signals::Signals;

/// The guest's echo port (RFC 862), UDP and TCP.
pub const ECHO_PORT: u16 = 7;

/// How one protocol's measurement ended.
#[derive(Debug)]
pub struct Measured {
    /// The run, or why it could not start.
    pub run: Result<RrRun, RrError>,
    /// A signal stopped it.
    pub interrupted: bool,
    /// QEMU exited meanwhile (how).
    pub qemu_died: Option<String>,
    /// The guest-timestamp breakdown (`--probe`, UDP only), or why there is none.
    pub breakdown: Option<Result<crate::probe::Breakdown, String>>,
}

/// Measures `options` (its `target` is replaced by the guest's echo service for
/// `options.proto`) and waits for the end, stopping early on a signal or QEMU's exit.
/// With `show_progress`, a progress bar and live line (p50/p99/max) go to stderr meanwhile. With
/// `probe`, UDP goes to the guest's probe port with timestamped echo requests instead, and the
/// breakdown comes back too.
/// `observer` sees each sample on the measuring thread, outside the timed window.
pub async fn measure(
    vm: &mut Vm,
    mut options: RrOptions,
    signals: &mut Signals,
    show_progress: bool,
    probe: Option<crate::probe::ClockChoice>,
    observer: Option<SampleObserver>,
) -> Measured {
    let proto = options.proto;
    let probe = probe.filter(|_| options.proto == Proto::Udp);
    let clock = probe.unwrap_or_default();
    let probe = probe.is_some();
    let port = if probe {
        vmprobe_proto::PROBE_PORT
    } else {
        ECHO_PORT
    };
    let Some(addr) = endpoint(&vm.info().endpoints, proto, port) else {
        return Measured {
            run: Err(RrError::NoAddress(format!(
                "guest echo over {}",
                options.proto
            ))),
            interrupted: false,
            qemu_died: None,
            breakdown: None,
        };
    };
    options.target = addr.to_string();
    let stop = Arc::new(AtomicBool::new(false));
    let ns = vm.client_netns().cloned();
    let (tx, mut rx) = oneshot::channel();
    let thread_stop = stop.clone();
    let progress = Arc::new(Progress::default());
    let finished = Arc::new(AtomicBool::new(false));
    let mut display = show_progress.then(|| {
        let (progress, finished, limit) = (progress.clone(), finished.clone(), options.limit);
        std::thread::spawn(move || {
            crate::commands::rr::display_progress(limit, &progress, &finished)
        })
    });
    let spawned = std::thread::Builder::new()
        .name("vmprobe-run".into())
        .spawn(move || {
            let control = Control {
                stop: &thread_stop,
                progress: &progress,
                on_sample: observer.as_deref().map(|f| f as _),
            };
            let (proto, timeout) = (options.proto, options.timeout);
            // rr's measuring thread enters the namespace before it opens its socket.
            let connect = move || {
                if let Some(ns) = &ns {
                    ns.enter().map_err(|source| RrError::Setup {
                        what: "cannot enter the client network namespace",
                        source,
                    })?;
                }
                rr::connect(addr, proto, timeout)
            };
            let r = if probe {
                crate::probe::run_probe_with(&options, addr, control, connect, clock)
                    .map(|p| (p.rr, Some(p.breakdown)))
            } else {
                rr::run_with(&options, addr, control, connect).map(|r| (r, None))
            };
            let _ = tx.send(r);
        });
    if let Err(source) = spawned {
        finished.store(true, Ordering::Relaxed);
        return Measured {
            run: Err(RrError::Setup {
                what: "cannot start the measuring thread",
                source,
            }),
            interrupted: false,
            qemu_died: None,
            breakdown: None,
        };
    }
    let mut interrupted = false;
    let mut qemu_died = None;
    let run = loop {
        tokio::select! {
            r = &mut rx => {
                finished.store(true, Ordering::Relaxed);
                if let Some(d) = display.take() {
                    let _ = d.join();
                }
                break r.unwrap_or(Err(RrError::ThreadPanicked));
            }
            _ = signals.recv(), if !interrupted => {
                interrupted = true;
                stop.store(true, Ordering::Relaxed);
            }
            status = vm.wait_exit(), if qemu_died.is_none() => {
                qemu_died = Some(status);
                stop.store(true, Ordering::Relaxed);
            }
        }
    };
    let (run, breakdown) = match run {
        Ok((run, breakdown)) => (Ok(run), breakdown),
        Err(e) => (Err(e), None),
    };
    Measured {
        run,
        interrupted,
        qemu_died,
        breakdown,
    }
}
