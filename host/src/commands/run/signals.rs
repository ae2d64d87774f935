//! Ctrl-C and SIGTERM for `run`, `matrix` and `quickstart`: noticed by the orchestrating task,
//! which raises the measuring thread's stop flag or abandons the boot (tearing it down).
use tokio::signal::unix::{signal, Signal, SignalKind};

/// SIGINT and SIGTERM, caught for the whole command.
pub struct Signals {
    int: Signal,
    term: Signal,
    raised: bool,
}

impl Signals {
    /// Installs the handlers (inside a tokio runtime).
    pub fn new() -> std::io::Result<Signals> {
        Ok(Signals {
            int: signal(SignalKind::interrupt())?,
            term: signal(SignalKind::terminate())?,
            raised: false,
        })
    }

    /// Waits for the next SIGINT or SIGTERM.
    pub async fn recv(&mut self) {
        tokio::select! {
            _ = self.int.recv() => {}
            _ = self.term.recv() => {}
        }
        self.raised = true;
    }

    /// True once a signal arrived.
    pub fn raised(&self) -> bool {
        self.raised
    }
}
