//! Why an `rr` run could not start or went wrong. Every message is one line.
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

use super::engine::LoopError;
use super::options::Proto;

/// An `rr` failure.
#[derive(Debug, thiserror::Error)]
pub enum RrError {
    /// An invalid option or combination of options.
    #[error("{0}")]
    Options(String),
    /// The target is not `HOST:PORT` or its name does not resolve.
    #[error("cannot resolve target '{target}': {source}")]
    Resolve {
        /// The target as given.
        target: String,
        /// The resolver's answer.
        #[source]
        source: io::Error,
    },
    /// The name resolved to no address.
    #[error("target '{0}' resolved to no address")]
    NoAddress(String),
    /// Opening or connecting the socket failed.
    #[error("cannot connect {proto} to {addr}: {source}")]
    Connect {
        /// Protocol.
        proto: Proto,
        /// Resolved address.
        addr: SocketAddr,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Nothing listens on the UDP port (ICMP port unreachable) before any reply came.
    #[error("udp {0}: connection refused (nothing listens on that port)")]
    Refused(SocketAddr),
    /// Setting up the socket or the measuring thread failed.
    #[error("{what}: {source}")]
    Setup {
        /// What was being done.
        what: &'static str,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// Pinning the measuring thread failed.
    #[error("cannot pin the measuring thread to cpu {cpu}: {source}")]
    Affinity {
        /// The requested CPU.
        cpu: usize,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The measured loop failed before anything was measured.
    #[error("{0}")]
    Measure(#[source] LoopError),
    /// The per-sample log could not be created.
    #[error("cannot create log file {}: {source}", path.display())]
    LogFile {
        /// The path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The histogram log could not be written.
    #[error("cannot write histogram file {}: {message}", path.display())]
    HistFile {
        /// The path.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// Writing the summary failed.
    #[error("cannot write the summary: {0}")]
    Output(#[source] io::Error),
    /// The run started but ended early on an error; its summary was still reported.
    #[error("run ended early: {0}")]
    Aborted(String),
    /// The measuring thread panicked (a bug).
    #[error("the measuring thread panicked")]
    ThreadPanicked,
}
