use clap::Parser;

fn main() {
    let _cli = vmprobe::cli::Cli::parse();
}
