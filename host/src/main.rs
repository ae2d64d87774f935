//! `vmprobe`: parse, run one subcommand, print a one-line error on failure.
use std::process::ExitCode;

use clap::Parser;
use vmprobe::cli::{Cli, Command};

fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Rr(args) => vmprobe::rr::command::execute(&args)?,
    }
    Ok(())
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
            // clap's first line carries the message; usage hints would break "one line".
            let text = e.to_string();
            let line = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("invalid arguments");
            eprintln!("vmprobe: {}", line.trim_start_matches("error: "));
            return ExitCode::from(e.exit_code() as u8);
        }
    };
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("vmprobe: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
