//! Link the bare-metal image with the guest linker script; host builds (tests) are untouched.
fn main() {
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if os == "none" {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../linker");
        println!(
            "cargo:rustc-link-arg-bins=-T{}",
            dir.join("guest.ld").display()
        );
        println!("cargo:rerun-if-changed={}", dir.join("guest.ld").display());
    }
}
