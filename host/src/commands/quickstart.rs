//! `vmprobe quickstart`: the default experiment on this machine. Builds the guest image when
//! it is missing (with the checkout's `scripts/build-guest.sh`), picks the configurations this
//! host can run (user networking always; tap, bridge and macvtap as root, and the eBPF bridge
//! at tc and XDP where the kernel loads its programs; irq and poll mode each), and runs them as
//! a short matrix. The generated matrix is kept in the run directory
//! as `matrix.toml`, so `vmprobe matrix` repeats it.
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use clap::Args;

use super::matrix::{check, files, finish, run_and_report, slug, Matrix, MatrixError, Output};
use crate::limits::Limit;
use crate::os::is_root;
use crate::rundir::RunDir;
use crate::vm::options::{default_image, DEFAULT_IMAGE};

/// Arguments of `vmprobe quickstart`.
#[derive(Args, Debug, Clone)]
pub struct QuickstartArgs {
    /// Guest image [default: target/guest/vmprobe-guest.bin, built when missing]
    #[arg(long, value_name = "PATH")]
    pub image: Option<PathBuf>,
    /// Transactions per protocol and configuration
    #[arg(long, value_name = "N", default_value_t = 1000)]
    pub count: u64,
    /// Run directory [default: runs/<time>-quickstart/]
    #[arg(long, value_name = "DIR")]
    pub run_dir: Option<PathBuf>,
    /// What to print and how to end.
    #[command(flatten)]
    pub output: Output,
}

/// `vmprobe quickstart`.
pub fn execute(args: QuickstartArgs) -> anyhow::Result<()> {
    finish(quickstart(&args))
}

fn quickstart(args: &QuickstartArgs) -> Result<(), MatrixError> {
    let image = match &args.image {
        Some(p) => p.clone(),
        None => ensure_image()?,
    };
    let image = std::path::absolute(&image).unwrap_or(image);
    let root = is_root();
    let ebpf = root && ebpf_allowed();
    let text = matrix_toml(&image, args.count, root, ebpf, &args.output.limits);
    let matrix = Matrix::parse(&text).map_err(|source| MatrixError::File {
        path: "quickstart".into(),
        source,
    })?;
    check(&matrix)?;
    let dir = RunDir::create(args.run_dir.as_deref(), &slug("quickstart"))?;
    dir.write(files::MATRIX, &text)?;
    if !is_root() {
        eprintln!(
            "vmprobe: not root: user networking only (tap, bridge, macvtap and ebpf need root)"
        );
    }
    run_and_report(&matrix, &dir, args.output.format)
}

/// Whether the eBPF bridge's programs load here; says why not when they do not.
fn ebpf_allowed() -> bool {
    match crate::netsetup::ebpf::check() {
        Ok(()) => true,
        Err(e) => {
            eprintln!("vmprobe: no eBPF rows: {e}");
            false
        }
    }
}

/// The quickstart matrix: every network setup this host allows (`root` for namespaces, `ebpf`
/// where the eBPF programs load), irq and poll mode, 1 ms pacing (like netperf `-w`, shorter
/// so the whole experiment takes about a minute), and the `--limit`s as the file's own, so the
/// kept file repeats them too.
pub fn matrix_toml(image: &Path, count: u64, root: bool, ebpf: bool, limits: &[Limit]) -> String {
    let mut s =
        String::from("# vmprobe quickstart: generated; repeat with `vmprobe matrix matrix.toml`\n");
    let _ = writeln!(
        s,
        "image = {}",
        toml::Value::String(image.display().to_string())
    );
    let _ = writeln!(s, "count = {count}\ninterval = \"1ms\"\nproto = \"both\"");
    if !limits.is_empty() {
        let list: Vec<toml::Value> = limits.iter().map(|l| l.text.clone().into()).collect();
        let _ = writeln!(s, "limit = {}", toml::Value::Array(list));
    }
    // (row name, the net's own keys)
    let mut nets: Vec<(&str, &str)> = vec![("user", "net = \"user\"")];
    if root {
        nets.extend([
            ("tap", "net = \"tap\""),
            ("bridge", "net = \"bridge\""),
            ("macvtap", "net = \"macvtap\""),
        ]);
    }
    if root && ebpf {
        nets.extend([
            ("ebpf tc", "net = \"ebpf\"\nebpf-hook = \"tc\""),
            ("ebpf xdp", "net = \"ebpf\"\nebpf-hook = \"xdp\""),
        ]);
    }
    for (name, keys) in nets {
        for mode in ["irq", "poll"] {
            let _ = write!(
                s,
                "\n[[config]]\nname = \"{name}, {mode}\"\n{keys}\nmode = \"{mode}\"\n"
            );
        }
    }
    s
}

/// The default image, built with the checkout's `scripts/build-guest.sh` when missing.
fn ensure_image() -> Result<PathBuf, MatrixError> {
    let image = default_image();
    if image.is_file() {
        return Ok(image);
    }
    let Some(root) = checkout() else {
        return Err(MatrixError::Image(format!(
            "no guest image at {DEFAULT_IMAGE} and no vmprobe checkout here to build it in: \
             run scripts/build-guest.sh in a vmprobe checkout, then run quickstart there or pass --image PATH"
        )));
    };
    eprintln!(
        "vmprobe: no guest image yet: building it with {}/scripts/build-guest.sh",
        root.display()
    );
    let status = Command::new(root.join("scripts/build-guest.sh"))
        .current_dir(&root)
        .stdin(Stdio::null())
        .stdout(std::io::stderr())
        .status()
        .map_err(|e| MatrixError::Image(format!("cannot run scripts/build-guest.sh: {e}")))?;
    let built = root.join(DEFAULT_IMAGE);
    if !status.success() || !built.is_file() {
        return Err(MatrixError::Image(format!(
            "scripts/build-guest.sh failed ({status}): see its output above"
        )));
    }
    Ok(built)
}

/// The vmprobe checkout around the current directory or the running binary.
fn checkout() -> Option<PathBuf> {
    let here = std::env::current_dir().ok();
    let exe = std::env::current_exe().ok();
    [here, exe]
        .into_iter()
        .flatten()
        .flat_map(|p| p.ancestors().map(Path::to_path_buf).collect::<Vec<_>>())
        .find(|d| {
            d.join("scripts/build-guest.sh").is_file() && d.join("guest/Cargo.toml").is_file()
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quickstart_matrix_parses_and_matches_privileges() {
        let m = Matrix::parse(&matrix_toml(Path::new("/x/g.bin"), 100, false, true, &[])).unwrap();
        let names: Vec<_> = m.rows.iter().map(|r| r.name.as_str()).collect();
        assert_eq!(names, ["user, irq", "user, poll"]);
        let limits: Vec<Limit> = vec!["p99=1ms".parse().unwrap(), "lost=0".parse().unwrap()];
        let m = Matrix::parse(&matrix_toml(
            Path::new("/x/g.bin"),
            100,
            true,
            false,
            &limits,
        ))
        .unwrap();
        assert_eq!(m.rows.len(), 8);
        assert_eq!(
            m.rows[7].args.vm.image.as_deref(),
            Some(Path::new("/x/g.bin"))
        );
        assert_eq!(m.rows[7].args.rr.count, Some(100));
        assert_eq!(m.rows[7].args.limits, limits);
    }

    #[test]
    fn ebpf_rows_come_with_both_hooks_where_the_programs_load() {
        use crate::netsetup::ebpf::Hook;
        use crate::vm::options::Net;
        let m = Matrix::parse(&matrix_toml(Path::new("/x/g.bin"), 100, true, true, &[])).unwrap();
        assert_eq!(m.rows.len(), 12);
        let ebpf: Vec<_> = m
            .rows
            .iter()
            .filter(|r| r.args.vm.net == Net::Ebpf)
            .map(|r| (r.name.as_str(), r.args.vm.ebpf_hook))
            .collect();
        assert_eq!(
            ebpf,
            [
                ("ebpf tc, irq", Some(Hook::Tc)),
                ("ebpf tc, poll", Some(Hook::Tc)),
                ("ebpf xdp, irq", Some(Hook::Xdp)),
                ("ebpf xdp, poll", Some(Hook::Xdp)),
            ]
        );
    }
}
