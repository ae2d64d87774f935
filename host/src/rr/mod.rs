//! The request/response engine: latency against any echo target.
//!
//! Stages, as in hyperfine: the caller (the `rr` command) builds [`RrOptions`];
//! [`run`] resolves the target, starts the measuring thread (pinned, signals routed to it),
//! connects, and drives the [`engine`] loop over a [`transport`] with a [`framing`]; samples
//! flow into [`crate::stats::Recorder`]s and the per-sample [`log`]; the outcome is a plain
//! [`RrReport`] that the exporters (a layer above) turn into text, JSON or CSV.
//!
//! Other commands reuse the pieces: [`run_with`] takes a connect closure that runs on the
//! measuring thread (so it can enter a network namespace first), and [`measure_endpoint`] is
//! the thread body itself, for a caller that manages its own thread.
pub mod engine;
pub mod error;
pub mod framing;
pub mod histlog;
pub mod live;
pub mod log;
pub mod options;
pub mod pacing;
pub mod report;
pub mod stamp;
pub mod system;
pub mod transport;

use std::fs::File;
use std::io;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs, UdpSocket};
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use hdrhistogram::Histogram;

pub use engine::{Limit, Progress};
pub use error::RrError;
pub use options::{Proto, RrOptions};
pub use pacing::Pacing;
pub use report::RrReport;
pub use transport::Endpoint;

pub use engine::Sample;
use engine::{Outcome, Plan, SampleSink};
use framing::EchoFraming;
use log::SampleLog;
use report::ReportParts;
use transport::{TcpTransport, UdpTransport};

use crate::stats::Recorder;

/// What a caller passes to watch and stop a run.
#[derive(Clone, Copy)]
pub struct Control<'a> {
    /// Raise to stop the run; what was measured is still reported.
    pub stop: &'a AtomicBool,
    /// Updated with the number of measured transactions.
    pub progress: &'a Progress,
    /// Sees every measured transaction on the measuring thread, after the statistics and the
    /// log, outside the timed window (e.g. to mark outliers in a trace).
    pub on_sample: Option<&'a (dyn Fn(&Sample) + Sync)>,
}

impl std::fmt::Debug for Control<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Control")
            .field("stop", &self.stop)
            .field("progress", &self.progress)
            .field("on_sample", &self.on_sample.is_some())
            .finish()
    }
}

/// A finished run: the report and the RTT histogram behind its percentiles.
#[derive(Debug)]
pub struct RrRun {
    /// The report.
    pub report: RrReport,
    /// All RTT samples, 1 ns units.
    pub histogram: Histogram<u32>,
}

/// Resolves `HOST:PORT` to its first address.
pub fn resolve(target: &str) -> Result<SocketAddr, RrError> {
    let mut addrs = target
        .to_socket_addrs()
        .map_err(|source| RrError::Resolve {
            target: target.to_owned(),
            source,
        })?;
    addrs
        .next()
        .ok_or_else(|| RrError::NoAddress(target.to_owned()))
}

/// Opens a socket to `addr`: a connected UDP socket, or a TCP connection (a refused or
/// unanswered connection is an error after `timeout`).
pub fn connect(addr: SocketAddr, proto: Proto, timeout: Duration) -> Result<Endpoint, RrError> {
    let err = |source| RrError::Connect {
        proto,
        addr,
        source,
    };
    match proto {
        Proto::Udp => {
            let local: SocketAddr = if addr.is_ipv4() {
                ([0, 0, 0, 0], 0).into()
            } else {
                (std::net::Ipv6Addr::UNSPECIFIED, 0).into()
            };
            let socket = UdpSocket::bind(local).map_err(err)?;
            socket.connect(addr).map_err(err)?;
            Ok(Endpoint::Udp(socket))
        }
        Proto::Tcp => Ok(Endpoint::Tcp(
            TcpStream::connect_timeout(&addr, timeout).map_err(err)?,
        )),
    }
}

/// Receives samples: statistics for both series, the live window, the optional log and the
/// caller's observer.
struct Collector<'a> {
    rtt: Recorder,
    rx_sw: Recorder,
    live: live::LiveWindow,
    progress: &'a Progress,
    log: Option<SampleLog>,
    on_sample: Option<&'a (dyn Fn(&Sample) + Sync)>,
}

impl SampleSink for Collector<'_> {
    fn sample(&mut self, sample: &Sample) -> io::Result<()> {
        if let Outcome::Reply {
            rtt_ns,
            rx_sw_rtt_ns,
        } = sample.outcome
        {
            self.rtt.record(rtt_ns, sample.id);
            self.live
                .record(rtt_ns, sample.id.send_mono_ns, &self.progress.live);
            if let Some(rx) = rx_sw_rtt_ns {
                self.rx_sw.record(rx, sample.id);
            }
        }
        let logged = match self.log.as_mut() {
            Some(log) => log.write(sample),
            None => Ok(()),
        };
        if let Some(f) = self.on_sample {
            f(sample);
        }
        logged
    }

    fn idle(&mut self, now_mono_ns: u64) -> io::Result<()> {
        match self.log.as_mut() {
            Some(log) => log.flush(now_mono_ns),
            None => Ok(()),
        }
    }
}

/// The measuring thread's body: runs the loop over an open `endpoint` in the calling thread
/// (which the caller has placed and prepared) and reports. `address` is for the report;
/// `cpus_used` records where the thread runs. Requests are byte-exact echo frames
/// ([`EchoFraming`]); [`measure_endpoint_framed`] takes another format.
pub fn measure_endpoint(
    endpoint: Endpoint,
    options: &RrOptions,
    address: SocketAddr,
    cpus_used: Vec<usize>,
    log: Option<SampleLog>,
    control: Control<'_>,
) -> Result<RrRun, RrError> {
    let mut framing = EchoFraming::new(options.size);
    measure_endpoint_framed(
        endpoint,
        options,
        &mut framing,
        address,
        cpus_used,
        log,
        control,
    )
}

/// [`measure_endpoint`] with a caller's [`framing::Framing`], e.g. one that carries guest
/// timestamps back in each reply and keeps them for its owner. Its `request_len()` must be
/// `options.size` for TCP framing to hold.
pub fn measure_endpoint_framed<F: framing::Framing + ?Sized>(
    endpoint: Endpoint,
    options: &RrOptions,
    framing: &mut F,
    address: SocketAddr,
    cpus_used: Vec<usize>,
    log: Option<SampleLog>,
    control: Control<'_>,
) -> Result<RrRun, RrError> {
    let setup = |source| RrError::Setup {
        what: "cannot prepare the socket",
        source,
    };
    let plan = Plan {
        limit: options.limit,
        warmup: options.warmup,
        pacing: options.pacing,
        timeout: options.timeout,
        spin_wait: options.busy_poll,
    };
    let mut collector = Collector {
        rtt: Recorder::new(options.outliers),
        rx_sw: Recorder::new(0),
        live: live::LiveWindow::default(),
        progress: control.progress,
        log,
        on_sample: control.on_sample,
    };
    // One loop per transport type, each compiled for it: no dynamic dispatch on the
    // measured path.
    let (tally, result) = match endpoint {
        Endpoint::Udp(s) => engine::measure(
            &mut UdpTransport::new(s, options.busy_poll, options.timeout).map_err(setup)?,
            framing,
            &plan,
            control.stop,
            control.progress,
            &mut collector,
        ),
        Endpoint::Tcp(s) => engine::measure(
            &mut TcpTransport::new(s, options.size, options.busy_poll, options.timeout)
                .map_err(setup)?,
            framing,
            &plan,
            control.stop,
            control.progress,
            &mut collector,
        ),
    };
    let error = match result {
        Ok(()) => None,
        // Nothing answered yet: the run could not start at all.
        Err(e) if tally.transactions == 0 && tally.late == 0 => {
            return Err(match (options.proto, e.io().kind()) {
                (Proto::Udp, io::ErrorKind::ConnectionRefused) => RrError::Refused(address),
                _ => RrError::Measure(e),
            });
        }
        Err(e) => Some(e.to_string()),
    };
    let Collector {
        rtt, rx_sw, log, ..
    } = collector;
    drop(log);
    let rx_sw = (rx_sw.samples() > 0).then(|| rx_sw.summary());
    let report = RrReport::new(ReportParts {
        options,
        address: address.to_string(),
        cpus_used,
        tally,
        rtt: rtt.summary(),
        rx_sw,
        outliers: rtt.outliers(),
        error,
    });
    Ok(RrRun {
        report,
        histogram: rtt.into_histogram(),
    })
}

/// Runs `options` end to end with the default connect step.
pub fn run(options: &RrOptions, control: Control<'_>) -> Result<RrRun, RrError> {
    options.validate()?;
    let address = resolve(&options.target)?;
    run_with(options, address, control, move || {
        connect(address, options.proto, options.timeout)
    })
}

/// Runs `options` against `address`, calling `connect` on the measuring thread after it is
/// placed (so the closure may first enter a network namespace). Creates the log and
/// histogram files before measuring, writes the histogram after.
pub fn run_with<C>(
    options: &RrOptions,
    address: SocketAddr,
    control: Control<'_>,
    connect: C,
) -> Result<RrRun, RrError>
where
    C: FnOnce() -> Result<Endpoint, RrError> + Send,
{
    let mut framing = EchoFraming::new(options.size);
    run_with_framing(options, address, control, connect, &mut framing)
}

/// [`run_with`] with a caller's [`framing::Framing`] (see [`measure_endpoint_framed`]).
pub fn run_with_framing<C, F>(
    options: &RrOptions,
    address: SocketAddr,
    control: Control<'_>,
    connect: C,
    framing: &mut F,
) -> Result<RrRun, RrError>
where
    C: FnOnce() -> Result<Endpoint, RrError> + Send,
    F: framing::Framing + ?Sized,
{
    options.validate()?;
    let log = match &options.log {
        Some(path) => Some(SampleLog::create(path).map_err(|source| RrError::LogFile {
            path: path.clone(),
            source,
        })?),
        None => None,
    };
    let hist_file = match &options.hist {
        Some(path) => Some(File::create(path).map_err(|e| RrError::HistFile {
            path: path.clone(),
            message: e.to_string(),
        })?),
        None => None,
    };
    let run = std::thread::scope(|scope| {
        let thread = std::thread::Builder::new()
            .name("vmprobe-rr".into())
            .spawn_scoped(scope, move || {
                let cpus_used =
                    system::place_thread(options.cpu).map_err(|source| RrError::Affinity {
                        cpu: options.cpu.unwrap_or(0),
                        source,
                    })?;
                system::tight_timer_slack();
                system::unblock_stop_signals();
                let endpoint = connect()?;
                measure_endpoint_framed(
                    endpoint, options, framing, address, cpus_used, log, control,
                )
            });
        match thread {
            Ok(handle) => handle.join().unwrap_or(Err(RrError::ThreadPanicked)),
            Err(source) => Err(RrError::Setup {
                what: "cannot start the measuring thread",
                source,
            }),
        }
    })?;
    if let (Some(mut file), Some(path)) = (hist_file, &options.hist) {
        let elapsed = Duration::from_secs_f64(run.report.elapsed_s);
        histlog::write(&mut file, &run.histogram, run.report.start_unix_ns, elapsed).map_err(
            |message| RrError::HistFile {
                path: path.clone(),
                message,
            },
        )?;
    }
    Ok(run)
}
