//! `vmprobe vm`: boot the guest in the chosen configuration, print how to reach each service,
//! keep running until Ctrl-C (or SIGTERM), then tear everything down.
use std::io::Write;
use std::time::Duration;

use clap::Args;

use super::vm_options::VmOptions;
use crate::vm::options::Net;
use crate::vm::{Vm, VmError, VmInfo};

/// Arguments of `vmprobe vm`.
#[derive(Args, Debug, Clone)]
pub struct VmArgs {
    /// The VM options.
    #[command(flatten)]
    pub vm: VmOptions,
    /// Seconds to wait for the guest's ready line
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    pub ready_timeout: u64,
}

/// Why `vmprobe vm` ended with an error.
#[derive(Debug, thiserror::Error)]
pub enum VmCommandError {
    /// Starting or stopping the VM.
    #[error(transparent)]
    Vm(#[from] VmError),
    /// QEMU died while the VM was up.
    #[error("QEMU exited unexpectedly ({status}); console tail:\n{tail}")]
    QemuDied {
        /// How.
        status: String,
        /// Last console lines.
        tail: String,
    },
}

/// Runs `vmprobe vm` on its own single-threaded runtime.
pub fn execute(args: VmArgs) -> anyhow::Result<()> {
    Ok(vm_command(args)?)
}

fn vm_command(args: VmArgs) -> Result<(), VmCommandError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(VmError::Io)?;
    rt.block_on(run_async(args))
}

async fn run_async(args: VmArgs) -> Result<(), VmCommandError> {
    let config = args.vm.validate()?;
    eprintln!("vmprobe: accelerator: {}", config.accel_reason);
    // Signal handlers first, so a Ctrl-C during boot also tears down cleanly.
    let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .map_err(VmError::Io)?;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(VmError::Io)?;
    let timeout = Duration::from_secs(args.ready_timeout);
    let mut vm = tokio::select! {
        vm = Vm::start(&config, timeout) => vm?,
        _ = int.recv() => { eprintln!("vmprobe: interrupted during boot"); return Ok(()) }
        _ = term.recv() => { eprintln!("vmprobe: terminated during boot"); return Ok(()) }
    };
    print_reach(vm.info());
    let _ = std::io::stdout().flush();
    let died = tokio::select! {
        _ = int.recv() => None,
        _ = term.recv() => None,
        status = vm.wait_exit() => Some(status),
    };
    match died {
        None => {
            let status = vm.shutdown().await?;
            eprintln!("vmprobe: stopped ({status}); network setup removed");
            Ok(())
        }
        Some(status) => {
            let tail = vm.console().tail(15).join("\n  | ");
            vm.shutdown().await?;
            Err(VmCommandError::QemuDied {
                status,
                tail: format!("  | {tail}"),
            })
        }
    }
}

/// How to reach each service, printed on stdout.
pub fn reach_text(info: &VmInfo) -> String {
    let mut s = String::new();
    let b = &info.boot;
    s.push_str(&format!("{}\n", info.ready.line));
    s.push_str(&format!(
        "QEMU {} ({}), host kernel {}, booted in {:.0} ms",
        info.qemu_version,
        match info.config.accel {
            crate::vm::options::Accel::Kvm => "KVM",
            crate::vm::options::Accel::Tcg => "TCG",
        },
        info.host_kernel,
        b.ready_ms.unwrap_or(f64::NAN)
    ));
    if let Some(u) = b.uboot_ms {
        s.push_str(&format!(" (U-Boot {u:.0} ms of it"));
        if let Some(w) = b.uboot_autoboot_wait_ms {
            s.push_str(&format!(", {w:.0} ms of which its autoboot countdown"));
        }
        s.push(')');
    }
    s.push('\n');
    s.push_str(&format!("run directory: {}\n", info.run_dir.display()));
    for v in &info.vcpus {
        s.push_str(&format!(
            "vCPU {} = thread {} on CPUs {:?}\n",
            v.index, v.thread_id, v.cpus
        ));
    }
    s.push_str("services:\n");
    for e in &info.endpoints {
        s.push_str(&format!(
            "  {:<9}{} {:<5} {}\n",
            e.service.name,
            e.service.proto.as_str(),
            e.service.port,
            e.addr
        ));
    }
    match (&info.client_netns, info.config.net) {
        (_, Net::User) => s.push_str(
            "user networking: the addresses above are forwarded loopback ports on this host\n",
        ),
        (Some(ns), net) => {
            let what = if net == Net::Tap {
                "the tap's namespace"
            } else {
                "namespace \"host1\""
            };
            s.push_str(&format!(
                "the guest is reached from {what}, e.g. ip netns exec {} vmprobe rr --target {}:7\n",
                ns.name(),
                info.guest.ip
            ));
        }
        (None, _) => {}
    }
    s.push_str("Ctrl-C stops the VM and removes its network setup\n");
    s
}

fn print_reach(info: &VmInfo) {
    print!("{}", reach_text(info));
}
