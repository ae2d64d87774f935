//! Running iproute2 (and the few other tools a setup needs), keeping every command as a shell
//! line so the run directory can show (and re-create) the setup.
use std::process::{Command, Stdio};

use super::NetError;
use crate::os::shell_quote;

/// Runs commands and remembers them.
#[derive(Debug, Default)]
pub struct Runner {
    /// Every command run, as a shell line, in order.
    pub log: Vec<String>,
}

impl Runner {
    /// Runs `program args...`; a non-zero exit is an error carrying the tool's own message.
    pub fn run(&mut self, program: &str, args: &[&str]) -> Result<String, NetError> {
        let line = std::iter::once(program)
            .chain(args.iter().copied())
            .map(shell_quote)
            .collect::<Vec<_>>()
            .join(" ");
        self.log.push(line.clone());
        run_quiet(program, args).map_err(|e| match e {
            NetError::Command { message, .. } => NetError::Command {
                command: line,
                message,
            },
            other => other,
        })
    }

    /// `ip args...`
    pub fn ip(&mut self, args: &[&str]) -> Result<String, NetError> {
        self.run("ip", args)
    }
}

/// `tool` is on PATH, or the error naming its package (for tools run through `ip netns exec`,
/// whose own failure would only say that exec failed).
pub fn require(tool: &str) -> Result<(), NetError> {
    if crate::os::find_on_path(tool).is_some() {
        Ok(())
    } else {
        Err(NetError::ToolMissing(tool.to_string()))
    }
}

/// Runs a command without logging it; returns its stdout. The child gets its own process
/// group so a Ctrl-C at the terminal cannot interrupt a teardown half way.
pub fn run_quiet(program: &str, args: &[&str]) -> Result<String, NetError> {
    use std::os::unix::process::CommandExt;
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .process_group(0)
        .output()
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                NetError::ToolMissing(program.to_string())
            } else {
                NetError::Io(e)
            }
        })?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(NetError::Command {
            command: format!("{program} {}", args.join(" ")),
            message: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        })
    }
}
