//! Link the bare-metal image with the guest linker script; host builds (tests) are untouched.
fn main() {
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    if os == "none" {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../linker");
        println!(
            "cargo:rustc-link-arg-bins=-T{}",
            dir.join("guest.ld").display()
        );
        // Position independent, with no dynamic loader: the entry code applies the
        // R_AARCH64_RELATIVE relocations itself.
        for arg in ["--pie", "--no-dynamic-linker", "-z", "text"] {
            println!("cargo:rustc-link-arg-bins={arg}");
        }
        println!("cargo:rerun-if-changed={}", dir.join("guest.ld").display());
    }
}
