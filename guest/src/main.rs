//! The bare-metal image entry point.
#![cfg_attr(target_os = "none", no_std, no_main)]

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("vmprobe-guest is a bare-metal aarch64 image: build it with scripts/build-guest.sh");
    std::process::exit(2);
}
