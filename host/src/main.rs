use clap::Parser;
use vmprobe::cli::{Cli, Command};

fn main() {
    let cli = Cli::parse();
    let result: anyhow::Result<()> = match cli.command {
        Command::Vm(args) => vmprobe::vm::command::run(args).map_err(Into::into),
    };
    if let Err(e) = result {
        eprintln!("vmprobe: error: {e:#}");
        std::process::exit(1);
    }
}
