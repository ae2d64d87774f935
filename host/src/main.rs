use clap::Parser;
use vmprobe::cli::{Cli, Command};

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Trace(args) => vmprobe::trace::run(&args, &mut std::io::stdout().lock()),
    };
    if let Err(e) = result {
        eprintln!("vmprobe: error: {e:#}");
        std::process::exit(1);
    }
}
