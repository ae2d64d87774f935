//! Run directories: `runs/<time>-<label>/` holding everything needed to understand and re-create
//! a run: the QEMU command line, the network setup commands, the serial console, the
//! configuration, and (written by `run`) results and samples.
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

/// File names inside a run directory.
pub mod files {
    /// The exact QEMU command line, re-runnable (with the network setup before it).
    pub const COMMAND: &str = "qemu-command.sh";
    /// The network setup commands, in order.
    pub const NETSETUP: &str = "netsetup.sh";
    /// The serial console, byte for byte.
    pub const CONSOLE: &str = "console.log";
    /// QEMU's own messages (stderr).
    pub const QEMU_STDERR: &str = "qemu-stderr.log";
    /// The VM configuration and what was found at boot.
    pub const CONFIG: &str = "config.json";
    /// QEMU's process id while it runs.
    pub const QEMU_PID: &str = "qemu.pid";
    /// QMP socket while the VM runs.
    pub const QMP: &str = "qmp.sock";
}

/// Run directory failures.
#[derive(Debug, thiserror::Error)]
pub enum RunDirError {
    /// The directory or a file in it could not be written.
    #[error("run directory {path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// JSON serialization.
    #[error("run directory: {0}")]
    Json(#[from] serde_json::Error),
}

/// A created run directory.
#[derive(Clone, Debug)]
pub struct RunDir {
    path: PathBuf,
}

impl RunDir {
    /// Creates `dir` if given (it may exist), else a fresh `runs/<UTC time>-<label>` (a `-2`,
    /// `-3`... suffix when that exists already).
    pub fn create(dir: Option<&Path>, label: &str) -> Result<RunDir, RunDirError> {
        let path = match dir {
            Some(d) => {
                std::fs::create_dir_all(d).map_err(|source| io(d, source))?;
                d.to_path_buf()
            }
            None => {
                let runs = Path::new("runs");
                std::fs::create_dir_all(runs).map_err(|source| io(runs, source))?;
                let base = format!("{}-{}", utc_stamp(SystemTime::now()), label);
                let mut n = 1;
                loop {
                    let name = if n == 1 {
                        base.clone()
                    } else {
                        format!("{base}-{n}")
                    };
                    let p = runs.join(name);
                    match std::fs::create_dir(&p) {
                        Ok(()) => break p,
                        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => n += 1,
                        Err(source) => return Err(io(&p, source)),
                    }
                }
            }
        };
        let path = std::path::absolute(&path).map_err(|source| io(&path, source))?;
        Ok(RunDir { path })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A file in it.
    pub fn file(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Writes a text file.
    pub fn write(&self, name: &str, text: &str) -> Result<PathBuf, RunDirError> {
        let p = self.file(name);
        std::fs::write(&p, text).map_err(|source| io(&p, source))?;
        Ok(p)
    }

    /// Writes raw bytes.
    pub fn write_bytes(&self, name: &str, bytes: &[u8]) -> Result<PathBuf, RunDirError> {
        let p = self.file(name);
        std::fs::write(&p, bytes).map_err(|source| io(&p, source))?;
        Ok(p)
    }

    /// Writes a value as pretty JSON.
    pub fn write_json<T: serde::Serialize>(
        &self,
        name: &str,
        value: &T,
    ) -> Result<PathBuf, RunDirError> {
        let mut text = serde_json::to_string_pretty(value)?;
        text.push('\n');
        self.write(name, &text)
    }

    /// Writes a shell script (executable).
    pub fn write_script(&self, name: &str, lines: &[String]) -> Result<PathBuf, RunDirError> {
        use std::os::unix::fs::PermissionsExt;
        let mut text = String::from("#!/bin/sh\nset -e\n");
        for l in lines {
            text.push_str(l);
            text.push('\n');
        }
        let p = self.write(name, &text)?;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755))
            .map_err(|source| io(&p, source))?;
        Ok(p)
    }
}

fn io(p: &Path, source: std::io::Error) -> RunDirError {
    RunDirError::Io {
        path: p.to_path_buf(),
        source,
    }
}

/// `YYYYmmdd-HHMMSS` in UTC.
pub fn utc_stamp(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days as i64);
    format!(
        "{y:04}{m:02}{d:02}-{:02}{:02}{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Gregorian date of a day count since 1970-01-01 (H. Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn stamps() {
        assert_eq!(utc_stamp(UNIX_EPOCH), "19700101-000000");
        // 2026-11-22 01:51:02 UTC
        assert_eq!(
            utc_stamp(UNIX_EPOCH + Duration::from_secs(1_795_312_262)),
            "20261122-015102"
        );
        // a leap day
        assert_eq!(
            utc_stamp(UNIX_EPOCH + Duration::from_secs(951_782_400)),
            "20000229-000000"
        );
    }

    #[test]
    fn explicit_dir_and_files() {
        let d = std::env::temp_dir().join(format!("vmprobe-rundir-{}", std::process::id()));
        let r = RunDir::create(Some(&d.join("a/b")), "x").unwrap();
        assert!(r.path().is_absolute() && r.path().is_dir());
        r.write_json("c.json", &serde_json::json!({"k": 1}))
            .unwrap();
        let s = r.write_script("s.sh", &["echo hi".into()]).unwrap();
        assert_eq!(
            std::fs::read_to_string(s).unwrap(),
            "#!/bin/sh\nset -e\necho hi\n"
        );
        assert!(std::fs::read_to_string(r.file("c.json"))
            .unwrap()
            .contains("\"k\": 1"));
        std::fs::remove_dir_all(d).unwrap();
    }
}
