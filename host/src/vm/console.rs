//! The serial console: copied to the run directory as it arrives, watched for the guest's
//! `vmprobe: ready ...` and `vmprobe: error: ...` lines, and timed line by line so boot time
//! (and U-Boot's share of it) can be reported.
use std::collections::{BTreeMap, VecDeque};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;

/// Lines of console kept for error reports.
const TAIL_LINES: usize = 40;

/// What the guest's ready line says.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct ReadyInfo {
    /// The whole line.
    pub line: String,
    /// Guest address (`ip=` or `addr=`, or a bare dotted quad).
    pub addr: Option<String>,
    /// `irq` or `poll`.
    pub mode: Option<String>,
    /// GIC version, without a leading `v` (`2`, `3`).
    pub gic: Option<String>,
    /// virtio transport.
    pub transport: Option<String>,
    /// Generic counter frequency in Hz.
    pub cntfrq: Option<u64>,
    /// The NIC's interrupt path: `spi`, `intx`, `msix-v2m`, `msix-its` or `none` (poll mode).
    pub interrupt: Option<String>,
    /// Every `key=value` on the line.
    pub fields: BTreeMap<String, String>,
}

/// Parses a console line; `Some` when it is the guest's ready line.
pub fn parse_ready(line: &str) -> Option<ReadyInfo> {
    let rest = line.trim().strip_prefix("vmprobe: ready")?;
    let mut fields = BTreeMap::new();
    let mut bare_addr = None;
    for tok in rest.split(|c: char| c.is_whitespace() || c == ',') {
        let tok = tok.trim_matches(|c| c == '(' || c == ')');
        match tok.split_once(['=', ':']) {
            Some((k, v)) if !k.is_empty() && !v.is_empty() => {
                fields.insert(k.to_ascii_lowercase(), v.to_string());
            }
            _ if bare_addr.is_none()
                && tok.split('/').next()?.parse::<std::net::Ipv4Addr>().is_ok() =>
            {
                bare_addr = Some(tok.to_string())
            }
            _ => {}
        }
    }
    let get = |keys: &[&str]| keys.iter().find_map(|k| fields.get(*k).cloned());
    let cntfrq = get(&["cntfrq", "freq", "cntfrq_hz"]).and_then(|v| {
        let digits: String = v.chars().take_while(|c| c.is_ascii_digit()).collect();
        digits.parse().ok()
    });
    Some(ReadyInfo {
        addr: get(&["ip", "addr", "address"]).or(bare_addr),
        mode: get(&["mode"]),
        gic: get(&["gic"]).map(|g| g.trim_start_matches(['v', 'V']).to_string()),
        transport: get(&["transport", "virtio"]),
        cntfrq,
        interrupt: get(&["interrupt"]),
        line: line.trim().to_string(),
        fields,
    })
}

/// The guest's error line, if `line` is one.
pub fn parse_error(line: &str) -> Option<&str> {
    line.trim().strip_prefix("vmprobe: error:").map(str::trim)
}

/// Moments of the boot, as time since QEMU was started.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct BootTimes {
    /// First byte on the console.
    pub first_output_ms: Option<f64>,
    /// U-Boot's banner line.
    pub uboot_banner_ms: Option<f64>,
    /// U-Boot's `Starting kernel ...`.
    pub uboot_starting_kernel_ms: Option<f64>,
    /// The guest's first line (the first after U-Boot's hand-over when booting through it).
    pub guest_first_line_ms: Option<f64>,
    /// The ready line (`boot_ms` of the results).
    pub ready_ms: Option<f64>,
    /// U-Boot's share: from its banner to the guest's first line.
    pub uboot_ms: Option<f64>,
    /// Of that, the autoboot countdown (`bootdelay`) U-Boot waited for a key.
    pub uboot_autoboot_wait_ms: Option<f64>,
}

/// Where the guest is.
#[derive(Clone, Debug, PartialEq)]
pub enum ConsoleState {
    /// No ready line yet.
    Booting,
    /// The guest is ready.
    Ready(ReadyInfo),
    /// The guest reported an error.
    GuestError(String),
    /// The console closed (QEMU exited) before the guest was ready.
    Closed,
}

/// Why waiting for the ready line failed.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// No ready line within the time limit.
    #[error("the guest was not ready within {0:?}")]
    Timeout(Duration),
    /// The guest printed `vmprobe: error: ...`.
    #[error("the guest reported an error: {0}")]
    Guest(String),
    /// QEMU closed the console before the guest was ready.
    #[error("QEMU exited before the guest was ready")]
    Closed,
}

#[derive(Default)]
struct Shared {
    tail: VecDeque<String>,
    times: BootTimes,
    after_uboot: bool,
}

/// Handle on the console watcher task.
#[derive(Clone)]
pub struct Console {
    shared: Arc<Mutex<Shared>>,
    state: watch::Receiver<ConsoleState>,
}

impl Console {
    /// Starts copying `output` (QEMU's serial stdout) into `log`, watching each line.
    /// `start` is when QEMU was spawned.
    pub async fn spawn<R>(output: R, log: &Path, start: Instant) -> std::io::Result<Console>
    where
        R: AsyncRead + Unpin + Send + 'static,
    {
        let file = tokio::fs::File::create(log).await?;
        let shared = Arc::new(Mutex::new(Shared::default()));
        let (tx, rx) = watch::channel(ConsoleState::Booting);
        tokio::spawn(watch_console(output, file, start, shared.clone(), tx));
        Ok(Console { shared, state: rx })
    }

    /// The current state.
    pub fn state(&self) -> ConsoleState {
        self.state.borrow().clone()
    }

    /// Waits for the ready line.
    pub async fn wait_ready(&mut self, timeout: Duration) -> Result<ReadyInfo, ConsoleError> {
        let wait = async {
            loop {
                match self.state.borrow_and_update().clone() {
                    ConsoleState::Ready(r) => return Ok(r),
                    ConsoleState::GuestError(e) => return Err(ConsoleError::Guest(e)),
                    ConsoleState::Closed => return Err(ConsoleError::Closed),
                    ConsoleState::Booting => {}
                }
                if self.state.changed().await.is_err() {
                    return Err(ConsoleError::Closed);
                }
            }
        };
        tokio::time::timeout(timeout, wait)
            .await
            .unwrap_or(Err(ConsoleError::Timeout(timeout)))
    }

    /// The last lines of the console (at most `n`).
    pub fn tail(&self, n: usize) -> Vec<String> {
        let s = self.shared.lock().unwrap_or_else(|e| e.into_inner());
        s.tail
            .iter()
            .skip(s.tail.len().saturating_sub(n))
            .cloned()
            .collect()
    }

    /// Boot timings so far.
    pub fn boot_times(&self) -> BootTimes {
        self.shared
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .times
            .clone()
    }
}

async fn watch_console<R: AsyncRead + Unpin>(
    mut output: R,
    mut log: tokio::fs::File,
    start: Instant,
    shared: Arc<Mutex<Shared>>,
    tx: watch::Sender<ConsoleState>,
) {
    let mut buf = [0u8; 4096];
    let mut line: Vec<u8> = Vec::new();
    // When the current line's first byte arrived.
    let mut line_start: Option<f64> = None;
    loop {
        let n = match output.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        let now_ms = start.elapsed().as_secs_f64() * 1e3;
        // The log is for people and re-runs; a full disk must not stop the guest's console.
        let _ = log.write_all(&buf[..n]).await;
        let _ = log.flush().await;
        for &b in &buf[..n] {
            if b == b'\n' {
                let text = String::from_utf8_lossy(&line)
                    .trim_end_matches('\r')
                    .to_string();
                on_line(&text, line_start.unwrap_or(now_ms), now_ms, &shared, &tx);
                line.clear();
                line_start = None;
            } else {
                line_start.get_or_insert(now_ms);
                shared
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .times
                    .first_output_ms
                    .get_or_insert(now_ms);
                line.push(b);
            }
        }
    }
    if !line.is_empty() {
        let text = String::from_utf8_lossy(&line).to_string();
        let now_ms = start.elapsed().as_secs_f64() * 1e3;
        on_line(&text, line_start.unwrap_or(now_ms), now_ms, &shared, &tx);
    }
    tx.send_if_modified(|s| {
        if *s == ConsoleState::Booting {
            *s = ConsoleState::Closed;
            true
        } else {
            false
        }
    });
}

/// Handles one complete line: `started` is when its first byte came, `ended` its newline.
fn on_line(
    text: &str,
    started: f64,
    ended: f64,
    shared: &Mutex<Shared>,
    tx: &watch::Sender<ConsoleState>,
) {
    let mut s = shared.lock().unwrap_or_else(|e| e.into_inner());
    if s.tail.len() == TAIL_LINES {
        s.tail.pop_front();
    }
    s.tail.push_back(text.to_string());
    let t = text.trim();
    if t.is_empty() {
        return;
    }
    if t.starts_with("U-Boot ") && s.times.uboot_banner_ms.is_none() {
        s.times.uboot_banner_ms = Some(started);
        return;
    }
    if s.times.uboot_banner_ms.is_some() && !s.after_uboot {
        if t.starts_with("Hit any key to stop autoboot") {
            s.times.uboot_autoboot_wait_ms = Some(ended - started);
        } else if t.starts_with("Starting kernel") {
            s.times.uboot_starting_kernel_ms = Some(ended);
            s.after_uboot = true;
        }
        return;
    }
    if s.times.guest_first_line_ms.is_none() {
        s.times.guest_first_line_ms = Some(started);
        if let Some(b) = s.times.uboot_banner_ms {
            s.times.uboot_ms = Some(started - b);
        }
    }
    if let Some(ready) = parse_ready(t) {
        s.times.ready_ms.get_or_insert(ended);
        drop(s);
        tx.send_if_modified(|st| {
            if *st == ConsoleState::Booting {
                *st = ConsoleState::Ready(ready);
                true
            } else {
                false
            }
        });
    } else if let Some(e) = parse_error(t) {
        let e = e.to_string();
        drop(s);
        tx.send_if_modified(|st| {
            if *st == ConsoleState::Booting {
                *st = ConsoleState::GuestError(e);
                true
            } else {
                false
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_line_key_values() {
        let r = parse_ready(
            "vmprobe: ready ip=10.0.2.15/24 mode=irq gic=v3 transport=mmio cntfrq=62500000 interrupt=spi",
        )
        .unwrap();
        assert_eq!(r.interrupt.as_deref(), Some("spi"));
        assert_eq!(r.addr.as_deref(), Some("10.0.2.15/24"));
        assert_eq!(r.mode.as_deref(), Some("irq"));
        assert_eq!(r.gic.as_deref(), Some("3"));
        assert_eq!(r.transport.as_deref(), Some("mmio"));
        assert_eq!(r.cntfrq, Some(62_500_000));
    }

    #[test]
    fn ready_line_other_shapes() {
        let r = parse_ready(
            "vmprobe: ready 192.168.20.2 (mode=poll, gic=2, transport=pci, cntfrq=1000000Hz)",
        )
        .unwrap();
        assert_eq!(r.addr.as_deref(), Some("192.168.20.2"));
        assert_eq!(r.mode.as_deref(), Some("poll"));
        assert_eq!(r.gic.as_deref(), Some("2"));
        assert_eq!(r.transport.as_deref(), Some("pci"));
        assert_eq!(r.cntfrq, Some(1_000_000));
        assert_eq!(r.interrupt, None);
        assert!(parse_ready("vmprobe: booting").is_none());
        assert!(parse_ready("something vmprobe: ready").is_none());
    }

    #[test]
    fn error_line() {
        assert_eq!(
            parse_error("vmprobe: error: no virtio-net\r"),
            Some("no virtio-net")
        );
        assert_eq!(parse_error("vmprobe: ready"), None);
    }

    fn dir() -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!(
            "vmprobe-console-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        std::fs::create_dir_all(&d).unwrap();
        d
    }

    #[tokio::test]
    async fn uboot_then_guest_then_ready() {
        let (mut w, r) = tokio::io::duplex(64);
        let d = dir();
        let log = d.join("uboot.log");
        let mut c = Console::spawn(r, &log, Instant::now()).await.unwrap();
        w.write_all(b"\r\nU-Boot 2023.01\r\nDRAM: 128 MiB\r\nHit any key to stop autoboot:  1 ")
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(30)).await;
        w.write_all(b"\x08\x08\x08 0 \r\nStarting kernel ...\r\n\r\n")
            .await
            .unwrap();
        w.write_all(b"vmprobe: guest 0.1\r\nvmprobe: ready ip=10.0.2.15 mode=irq gic=v3\r\nmore\n")
            .await
            .unwrap();
        let r = c.wait_ready(Duration::from_secs(5)).await.unwrap();
        assert_eq!(r.gic.as_deref(), Some("3"));
        let t = c.boot_times();
        assert!(t.uboot_banner_ms.is_some() && t.uboot_starting_kernel_ms.is_some());
        assert!(t.uboot_ms.unwrap() >= t.uboot_autoboot_wait_ms.unwrap());
        assert!(t.uboot_autoboot_wait_ms.unwrap() >= 20.0, "{t:?}");
        assert!(t.ready_ms.unwrap() >= t.guest_first_line_ms.unwrap());
        drop(w);
        // The copy ends when the writer closes; the log then holds every byte.
        for _ in 0..100 {
            if c.tail(1) == ["more"] {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(
            c.tail(2),
            ["vmprobe: ready ip=10.0.2.15 mode=irq gic=v3", "more"]
        );
        let text = std::fs::read_to_string(&log).unwrap();
        assert!(text.starts_with("\r\nU-Boot 2023.01\r\n") && text.ends_with("more\n"));
        std::fs::remove_dir_all(d).unwrap();
    }

    #[tokio::test]
    async fn guest_error_and_closed_and_timeout() {
        let d = dir();
        let (mut w, r) = tokio::io::duplex(64);
        let mut c = Console::spawn(r, &d.join("e.log"), Instant::now())
            .await
            .unwrap();
        w.write_all(b"vmprobe: error: no virtio-net device\n")
            .await
            .unwrap();
        let e = c.wait_ready(Duration::from_secs(5)).await.unwrap_err();
        assert!(
            matches!(e, ConsoleError::Guest(ref m) if m == "no virtio-net device"),
            "{e}"
        );

        let (w, r) = tokio::io::duplex(64);
        let mut c = Console::spawn(r, &d.join("c.log"), Instant::now())
            .await
            .unwrap();
        drop(w);
        assert!(matches!(
            c.wait_ready(Duration::from_secs(5)).await,
            Err(ConsoleError::Closed)
        ));

        let (_w, r) = tokio::io::duplex(64);
        let mut c = Console::spawn(r, &d.join("t.log"), Instant::now())
            .await
            .unwrap();
        assert!(matches!(
            c.wait_ready(Duration::from_millis(50)).await,
            Err(ConsoleError::Timeout(_))
        ));
        std::fs::remove_dir_all(d).unwrap();
    }
}
