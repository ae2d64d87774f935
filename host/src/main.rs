//! `vmprobe`: parse, run one subcommand, print a one-line error on failure. Exit status: 0
//! done, 1 failed, 2 bad command line, 3 measured but over a `--limit`.
use std::process::ExitCode;

use clap::Parser;
use vmprobe::commands::{self, Cli};
use vmprobe::limits::LimitsExceeded;

/// The error and its causes on one line, skipping causes the message already quotes.
fn one_line(e: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !line.contains(&text) {
            if !line.is_empty() {
                line.push_str(": ");
            }
            line.push_str(&text);
        }
    }
    line.replace('\n', " ")
}

fn main() -> ExitCode {
    // A bug must still end in one line, not a backtrace.
    std::panic::set_hook(Box::new(|info| {
        let msg = info.to_string().replace('\n', " ");
        eprintln!("vmprobe: internal error: {msg}");
    }));
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => e.exit(), // --help, --version
        Err(e) => {
            // clap's message, folded onto one line, without its usage and tips.
            let text = e.to_string();
            let message: Vec<&str> = text
                .lines()
                .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with("tip:"))
                .collect();
            eprintln!(
                "vmprobe: {}",
                message.join(" ").trim_start_matches("error: ")
            );
            return ExitCode::from(e.exit_code() as u8);
        }
    };
    match commands::execute(cli) {
        Ok(()) => ExitCode::SUCCESS,
        // Measured, but over a limit: the regression gate's own status.
        Err(e) if e.is::<LimitsExceeded>() => {
            eprintln!("vmprobe: {e}");
            ExitCode::from(LimitsExceeded::EXIT_CODE)
        }
        Err(e) => {
            eprintln!("vmprobe: error: {}", one_line(&e));
            ExitCode::FAILURE
        }
    }
}
