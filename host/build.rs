//! Builds the eBPF bridge program (`bpf/redirect.bpf.c`) with clang for the BPF target; the
//! host embeds the object and patches the peer's ifindex into it before loading.
use std::path::PathBuf;
use std::process::Command;

fn main() {
    let src = "bpf/redirect.bpf.c";
    println!("cargo::rerun-if-changed={src}");
    println!("cargo::rerun-if-env-changed=CLANG");
    let clang = std::env::var("CLANG").unwrap_or_else(|_| "clang".to_string());
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"))
        .join("redirect.bpf.o");
    let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    // BTF (-g) lets iproute2's loader name the read-only data; the prefix map keeps the build
    // directory out of it.
    let status = Command::new(&clang)
        .args(["-O2", "-g", "-target", "bpf", "-Wall", "-Werror"])
        .arg(format!("-fdebug-prefix-map={manifest}=host"))
        .args(["-c", src, "-o"])
        .arg(&out)
        .status();
    match status {
        Ok(s) if s.success() => {}
        Ok(s) => panic!("`{clang} -target bpf` failed on {src} ({s})"),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => panic!(
            "`{clang}` not found: the eBPF bridge program is built with clang \
             (apt-get install clang, or set CLANG)"
        ),
        Err(e) => panic!("cannot run `{clang}`: {e}"),
    }
}
