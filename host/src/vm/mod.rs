//! The VM side of `vmprobe run` and `vmprobe vm`: QEMU launched in a chosen network
//! configuration, its console watched for the guest's ready line, vCPUs found through QMP and
//! pinned, and everything torn down again, on success, error, Ctrl-C or QEMU dying.
//!
//! ```text
//! (flags --validate-->) VmConfig --Vm::start--> Vm (ready, pinned) --Vm::shutdown
//!                                       |-- NetSetup (namespaces, tap/bridge/veth/macvtap)
//!                                       |-- RunDir (command line, console, config.json)
//!                                       |-- Console (serial copy, ready line, boot times)
//!                                       `-- Qmp (version, vCPU threads, quit)
//! ```
//!
//! How `vmprobe run` composes from it: the measuring thread must be a dedicated thread (never a
//! pooled one such as `spawn_blocking`'s) because it enters the client namespace for good.
//!
//! ```no_run
//! # async fn run(config: vmprobe::vm::VmConfig) -> Result<(), Box<dyn std::error::Error>> {
//! use std::time::Duration;
//! use vmprobe::vm::{services::{endpoint, Proto}, Vm};
//! let vm = Vm::start(&config, Duration::from_secs(60)).await?;
//! let target = endpoint(&vm.info().endpoints, Proto::Udp, 7).expect("echo is a service");
//! let measure = move || {
//!     // ... open sockets to `target` and run the rr engine here ...
//!     target
//! };
//! let handle = match vm.client_netns() {
//!     Some(ns) => ns.spawn("vmprobe-rr", measure)?, // tap, bridge, macvtap
//!     None => std::thread::Builder::new().spawn(move || Ok(measure()))?, // user: loopback
//! };
//! let _result = handle.join().expect("measuring thread")?;
//! vm.shutdown().await?; // dropping `vm` instead (error, Ctrl-C) also tears everything down
//! # Ok(()) }
//! ```
pub mod console;
pub mod options;
pub mod pin;
pub mod qemu_cmd;
pub mod qmp;
pub mod services;

use std::os::fd::AsRawFd;
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::netsetup::{NetError, NetNs, NetSetup, Topology};
use crate::rundir::{files, RunDir, RunDirError};
use console::{BootTimes, Console, ConsoleError, ReadyInfo};
use options::Net;
pub use options::VmConfig;
use qemu_cmd::{Backend, GuestNet, Plan};
use qmp::{QemuVersion, Qmp, QmpError};
use services::Endpoint;

/// Descriptor number under which QEMU inherits a macvtap.
const TAP_FD_IN_QEMU: i32 = 3;
/// How long QEMU may take to open its QMP socket.
const QMP_TIMEOUT: Duration = Duration::from_secs(20);
/// How often a lost race for a free forwarding port is retried.
const PORT_RETRIES: usize = 3;
/// Console lines shown when the guest fails.
const TAIL: usize = 15;

/// Everything that can stop a VM from coming up.
#[derive(Debug, thiserror::Error)]
pub enum VmError {
    /// QEMU binary not found.
    #[error("{0} not found: install QEMU for arm64 guests (Debian: apt-get install qemu-system-arm) or pass --qemu PATH")]
    QemuMissing(String),
    /// Guest image not found.
    #[error("no guest image at {}: build it with scripts/build-guest.sh or pass --image PATH", .0.display())]
    ImageMissing(std::path::PathBuf),
    /// The file is not an arm64 Linux Image (no magic at offset 0x38).
    #[error("{} is not an arm64 Image (no \"ARM\\x64\" magic at offset 0x38): pass the guest's .bin, not its ELF or another file", .0.display())]
    NotAnImage(std::path::PathBuf),
    /// U-Boot not installed.
    #[error("no U-Boot at {}: install it (Debian: apt-get install u-boot-qemu)", .0.display())]
    UbootMissing(std::path::PathBuf),
    /// `--accel kvm` where KVM cannot be used.
    #[error("--accel kvm: KVM is not usable: {0}")]
    KvmUnavailable(String),
    /// `--vhost on` without /dev/vhost-net.
    #[error("--vhost on needs /dev/vhost-net ({0}): load it with `modprobe vhost_net`, or use --vhost off")]
    VhostUnavailable(String),
    /// `--vhost on` with user networking.
    #[error("--vhost on needs --net tap, bridge, macvtap or ebpf (user networking has no vhost)")]
    VhostNeedsTap,
    /// Not root for a namespace setup.
    #[error("--net {} needs root (network namespaces, tap and macvtap devices): run as root, or use --net user", .0.as_str())]
    NotRoot(Net),
    /// `--ebpf-hook` without `--net ebpf`.
    #[error("--ebpf-hook applies to --net ebpf only")]
    HookWithoutEbpf,
    /// `--pin` names a vCPU or CPU that does not exist.
    #[error("--pin: {0}")]
    BadPin(String),
    /// Network setup.
    #[error(transparent)]
    Net(#[from] NetError),
    /// Run directory.
    #[error(transparent)]
    RunDir(#[from] RunDirError),
    /// QMP.
    #[error(transparent)]
    Qmp(#[from] QmpError),
    /// QEMU could not be started.
    #[error("cannot start {program}: {source}")]
    Spawn {
        /// The binary.
        program: String,
        /// Why.
        source: std::io::Error,
    },
    /// QEMU exited before the guest was ready (often a bad option: QEMU says which).
    #[error("QEMU exited ({status}) before the guest was ready: {stderr}{}", console_tail(.tail))]
    QemuExited {
        /// Exit status.
        status: String,
        /// QEMU's own error output.
        stderr: String,
        /// Last console lines.
        tail: Vec<String>,
    },
    /// The guest never printed its ready line.
    #[error("the guest was not ready within {timeout:?}{}", console_tail(.tail))]
    NotReady {
        /// The time limit.
        timeout: Duration,
        /// Last console lines.
        tail: Vec<String>,
    },
    /// The guest printed `vmprobe: error: ...`.
    #[error("the guest failed: {message}{}", console_tail(.tail))]
    Guest {
        /// Its message.
        message: String,
        /// Last console lines.
        tail: Vec<String>,
    },
    /// The guest runs another configuration than the one asked for.
    #[error("the guest reports {key}={guest} but {key} {asked} was asked for: {line}")]
    Mismatch {
        /// Which setting.
        key: &'static str,
        /// Asked for.
        asked: String,
        /// What the guest says.
        guest: String,
        /// The ready line.
        line: String,
    },
    /// vCPU pinning failed.
    #[error("pinning vCPU {vcpu} (thread {tid}) to CPUs {cpus:?}: {source}")]
    Pin {
        /// vCPU index.
        vcpu: u32,
        /// Its thread.
        tid: i32,
        /// The CPUs.
        cpus: Vec<usize>,
        /// Why.
        source: std::io::Error,
    },
    /// Other I/O.
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

fn console_tail(tail: &[String]) -> String {
    if tail.is_empty() {
        return "; the console stayed empty".to_string();
    }
    let mut s = String::from("; console tail:");
    for l in tail {
        s.push_str("\n  | ");
        s.push_str(l);
    }
    s
}

/// A vCPU thread and where it was pinned.
#[derive(Clone, Debug, Serialize)]
pub struct VcpuPin {
    /// vCPU index.
    pub index: u32,
    /// Host thread id.
    pub thread_id: i32,
    /// Host CPUs it may run on.
    pub cpus: Vec<usize>,
}

/// What a running VM is: written to the run directory as `config.json`.
#[derive(Clone, Debug, Serialize)]
pub struct VmInfo {
    /// Short configuration label.
    pub label: String,
    /// The validated configuration.
    pub config: VmConfig,
    /// QEMU's version.
    pub qemu_version: QemuVersion,
    /// Host kernel (`uname -r`).
    pub host_kernel: String,
    /// The guest's ready line.
    pub ready: ReadyInfo,
    /// Boot timings (ms since QEMU was started).
    pub boot: BootTimes,
    /// Guest addresses.
    pub guest: GuestNet,
    /// Where a client reaches each service.
    pub endpoints: Vec<Endpoint>,
    /// Namespace a client must run in (tap, bridge, macvtap).
    pub client_netns: Option<NetNs>,
    /// Namespace QEMU runs in.
    pub qemu_netns: Option<NetNs>,
    /// vCPU threads and their pinning.
    pub vcpus: Vec<VcpuPin>,
    /// QEMU's process id.
    pub qemu_pid: u32,
    /// The run directory.
    pub run_dir: std::path::PathBuf,
}

/// A running VM. Dropping it kills QEMU and removes the network setup; [`Vm::shutdown`] does
/// the same cleanly (QMP `quit`).
pub struct Vm {
    // Field order is drop order: QEMU is killed and reaped before the network setup goes.
    child: QemuChild,
    qmp: Option<Qmp>,
    console: Console,
    net: Option<NetSetup>,
    info: VmInfo,
    run_dir: RunDir,
}

impl Vm {
    /// Boots `config`: run directory, network setup, QEMU, QMP, pinning, then waits up to
    /// `ready_timeout` for the guest's ready line. On any failure everything made is removed.
    ///
    /// QEMU gets SIGKILL when the thread that spawned it exits (so a killed vmprobe leaves no
    /// VM behind): call this from a thread that outlives the VM (the main thread or a runtime
    /// worker), not from a short-lived one such as a `spawn_blocking` task.
    pub async fn start(config: &VmConfig, ready_timeout: Duration) -> Result<Vm, VmError> {
        let label = config.label();
        let run_dir = RunDir::create(config.run_dir.as_deref(), &label)?;
        let mac = guest_mac();
        let mut net = match config.topology() {
            None => None,
            Some(kind) => Some(
                tokio::task::spawn_blocking(move || NetSetup::create(kind, mac))
                    .await
                    .map_err(|e| std::io::Error::other(e.to_string()))??,
            ),
        };
        if let Some(n) = &net {
            let mut lines = vec!["# network setup vmprobe ran for this run".to_string()];
            lines.extend(n.commands().iter().cloned());
            run_dir.write_script(files::NETSETUP, &lines)?;
            for (name, bytes) in n.files() {
                run_dir.write_bytes(name, bytes)?;
            }
        }
        let mut attempt = 0;
        loop {
            attempt += 1;
            let (backend, endpoints, guest) = match &net {
                None => {
                    let e = services::free_loopback_endpoints()?;
                    (Backend::User(e.clone()), e, GuestNet::USER)
                }
                Some(n) => (
                    backend_of(n),
                    services::direct_endpoints(GuestNet::LINK.ip),
                    GuestNet::LINK,
                ),
            };
            let plan = Plan {
                backend,
                mac,
                guest,
                qmp_socket: run_dir.file(files::QMP),
            };
            match Self::launch(config, &label, run_dir.clone(), net.take(), plan, endpoints).await {
                Ok(mut vm) => {
                    vm.boot(ready_timeout).await?;
                    return Ok(vm);
                }
                // Another process took a forwarding port between our choice and QEMU's bind.
                Err((VmError::QemuExited { ref stderr, .. }, back))
                    if stderr.contains("host forwarding") && attempt < PORT_RETRIES =>
                {
                    net = back;
                }
                Err((e, _)) => return Err(e),
            }
        }
    }

    /// Spawns QEMU and connects QMP. On failure hands the network setup back (for a retry),
    /// QEMU already reaped.
    async fn launch(
        config: &VmConfig,
        label: &str,
        run_dir: RunDir,
        mut net: Option<NetSetup>,
        plan: Plan,
        endpoints: Vec<Endpoint>,
    ) -> Result<Vm, (VmError, Option<NetSetup>)> {
        let cmd = qemu_cmd::build(config, &plan);
        let script = rerun_script(&cmd, net.as_ref());
        if let Err(e) = run_dir.write_script(files::COMMAND, &script) {
            return Err((e.into(), net));
        }
        let stderr_path = run_dir.file(files::QEMU_STDERR);
        let stderr = match std::fs::File::create(&stderr_path) {
            Ok(f) => f,
            Err(e) => return Err((e.into(), net)),
        };
        let _ = std::fs::remove_file(&plan.qmp_socket);

        let mut c = tokio::process::Command::new(&cmd.program);
        c.args(&cmd.args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            // Its own process group: a Ctrl-C at the terminal reaches vmprobe only, which then
            // quits QEMU through QMP and tears the setup down in order.
            .process_group(0);
        let ns_file = match net
            .as_ref()
            .and_then(|n| n.qemu_netns())
            .map(|ns| ns.open())
            .transpose()
        {
            Ok(f) => f,
            Err(e) => return Err((e.into(), net)),
        };
        let ns_fd = ns_file.as_ref().map(|f| f.as_raw_fd());
        let tap_fd = net
            .as_ref()
            .and_then(|n| n.tap_file())
            .map(|f| f.as_raw_fd());
        let cpus = pin::default_cpus();
        // SAFETY: the closure runs in the child between fork and exec and only makes
        // async-signal-safe system calls (setns, dup2, fcntl, sched_setaffinity, prctl) on
        // descriptors and memory that the parent keeps alive across `spawn`.
        unsafe {
            c.pre_exec(move || child_setup(ns_fd, tap_fd, &cpus));
        }
        let start = Instant::now();
        let mut child = match c.spawn() {
            Ok(ch) => QemuChild(ch),
            Err(source) => {
                return Err((
                    VmError::Spawn {
                        program: cmd.program.display().to_string(),
                        source,
                    },
                    net,
                ))
            }
        };
        drop(ns_file);
        let pid = child.id().unwrap_or(0);
        let _ = run_dir.write(files::QEMU_PID, &format!("{pid}\n"));
        let stdout = child.stdout.take().expect("stdout is piped");
        let console = match Console::spawn(stdout, &run_dir.file(files::CONSOLE), start).await {
            Ok(c) => c,
            Err(e) => return Err((e.into(), net)),
        };
        let qmp = tokio::select! {
            q = Qmp::connect(&plan.qmp_socket, QMP_TIMEOUT) => q,
            status = child.wait() => return Err((qemu_exited(status, &stderr_path, &console), net)),
        };
        // On error `child` drops here, which kills and reaps QEMU.
        let mut qmp = match qmp {
            Ok(q) => q,
            Err(e) => return Err((e.into(), net)),
        };
        let qemu_version = match qmp.version().await {
            Ok(v) => v,
            Err(e) => return Err((e.into(), net)),
        };
        let (client_netns, qemu_netns) = match &mut net {
            Some(n) => (Some(n.client_netns().clone()), n.qemu_netns().cloned()),
            None => (None, None),
        };
        let info = VmInfo {
            label: label.to_string(),
            config: config.clone(),
            qemu_version,
            host_kernel: host_kernel(),
            ready: ReadyInfo::default(),
            boot: BootTimes::default(),
            guest: plan.guest,
            endpoints,
            client_netns,
            qemu_netns,
            vcpus: Vec::new(),
            qemu_pid: pid,
            run_dir: run_dir.path().to_path_buf(),
        };
        Ok(Vm {
            child,
            qmp: Some(qmp),
            console,
            net,
            info,
            run_dir,
        })
    }

    /// Pins the vCPUs and waits for the ready line.
    async fn boot(&mut self, timeout: Duration) -> Result<(), VmError> {
        let qmp = self.qmp.as_mut().expect("connected in launch");
        for t in qmp.vcpu_threads().await? {
            let cpus = match self
                .info
                .config
                .pin
                .as_ref()
                .and_then(|p| p.cpu_for(t.index))
            {
                Some(c) => vec![c],
                None => pin::default_cpus(),
            };
            crate::cpus::set(t.thread_id, &cpus).map_err(|source| VmError::Pin {
                vcpu: t.index,
                tid: t.thread_id,
                cpus: cpus.clone(),
                source,
            })?;
            self.info.vcpus.push(VcpuPin {
                index: t.index,
                thread_id: t.thread_id,
                cpus,
            });
        }
        let stderr_path = self.run_dir.file(files::QEMU_STDERR);
        let ready = tokio::select! {
            r = self.console.wait_ready(timeout) => r,
            status = self.child.wait() => return Err(qemu_exited(status, &stderr_path, &self.console)),
        };
        match ready {
            Ok(r) => {
                check_ready(&self.info.config, &r)?;
                self.info.ready = r;
            }
            Err(ConsoleError::Timeout(t)) => {
                return Err(VmError::NotReady {
                    timeout: t,
                    tail: self.console.tail(TAIL),
                })
            }
            Err(ConsoleError::Guest(message)) => {
                return Err(VmError::Guest {
                    message,
                    tail: self.console.tail(TAIL),
                })
            }
            Err(ConsoleError::Closed) => {
                let status = self.child.wait().await;
                return Err(qemu_exited(status, &stderr_path, &self.console));
            }
        }
        self.info.boot = self.console.boot_times();
        self.run_dir.write_json(files::CONFIG, &self.info)?;
        Ok(())
    }

    /// What this VM is and where its services are.
    pub fn info(&self) -> &VmInfo {
        &self.info
    }

    /// The tap QEMU opens, where the setup has one (its name is per run under OVS).
    pub fn tap_name(&self) -> Option<&str> {
        self.net.as_ref().map(NetSetup::tap_name)
    }

    /// The run directory.
    pub fn run_dir(&self) -> &RunDir {
        &self.run_dir
    }

    /// The console (tail, boot times).
    pub fn console(&self) -> &Console {
        &self.console
    }

    /// The namespace a client must run in to reach the guest (`None` for user networking:
    /// use the forwarded loopback ports from the host's own namespace).
    pub fn client_netns(&self) -> Option<&NetNs> {
        self.info.client_netns.as_ref()
    }

    /// Waits until QEMU exits on its own (crash, kill, guest power-off) and says how.
    pub async fn wait_exit(&mut self) -> String {
        match self.child.wait().await {
            Ok(s) => describe_exit(s),
            Err(e) => e.to_string(),
        }
    }

    /// QEMU's exit, if it has exited.
    pub fn try_exit(&mut self) -> Option<String> {
        self.child.try_wait().ok().flatten().map(describe_exit)
    }

    /// Stops QEMU (QMP `quit`, then SIGKILL after a grace period) and removes the network
    /// setup. Returns QEMU's exit description.
    pub async fn shutdown(mut self) -> Result<String, VmError> {
        if let Some(q) = self.qmp.take() {
            let _ = tokio::time::timeout(Duration::from_secs(3), q.quit()).await;
        }
        let status = match tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await {
            Ok(Ok(s)) => describe_exit(s),
            _ => {
                kill_and_reap(&mut self.child).await;
                "killed after QMP quit timed out".to_string()
            }
        };
        if let Some(mut n) = self.net.take() {
            tokio::task::spawn_blocking(move || n.teardown())
                .await
                .map_err(|e| std::io::Error::other(e.to_string()))??;
        }
        Ok(status)
    }
}

/// The QEMU process: killed and reaped synchronously when dropped, so no error path, early
/// return or cancelled future leaves it running.
struct QemuChild(tokio::process::Child);

impl std::ops::Deref for QemuChild {
    type Target = tokio::process::Child;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for QemuChild {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl Drop for QemuChild {
    fn drop(&mut self) {
        if let Some(pid) = self.0.id() {
            // SAFETY: `pid` is our unreaped child (tokio reports no id once it has reaped
            // it), so it cannot name another process; waitpid reaps it synchronously, after
            // which tokio's own try_wait finds no child and forgets it.
            unsafe {
                libc::kill(pid as i32, libc::SIGKILL);
                libc::waitpid(pid as i32, std::ptr::null_mut(), 0);
            }
        }
    }
}

/// QEMU's backend for a setup: the macvtap's descriptor as QEMU inherits it, or the tap by
/// name (QEMU runs in its namespace).
fn backend_of(setup: &NetSetup) -> Backend {
    match setup.topology() {
        Topology::Macvtap => Backend::Fd { fd: TAP_FD_IN_QEMU },
        Topology::Tap | Topology::Bridge | Topology::Ebpf(_) | Topology::Ovs => Backend::Tap {
            ifname: setup.tap_name().to_string(),
        },
    }
}

/// `qemu-command.sh`: QEMU's exact command line, inside the setup's namespace and, for
/// macvtap, with the macvtap's character device opened as the descriptor QEMU expects.
fn rerun_script(cmd: &qemu_cmd::QemuCommand, net: Option<&NetSetup>) -> Vec<String> {
    let line = cmd.shell_line();
    match net {
        None => vec![format!("exec {line}")],
        Some(n) if n.topology() == Topology::Macvtap => {
            let ns = n.qemu_netns().map_or("", |ns| ns.name());
            let mv = crate::netsetup::MACVTAP;
            // A private device node: udev's /dev/tapN names (by ifindex) collide between
            // namespaces.
            let node = format!("/dev/vmprobe-{ns}-{mv}");
            vec![
                format!("# run {} first; fd {TAP_FD_IN_QEMU} is {mv}'s character device", files::NETSETUP),
                format!(
                    "exec ip netns exec {ns} sh -c 'd=$(cat /sys/class/net/{mv}/macvtap/*/dev) && \
                     mknod {node} c ${{d%:*}} ${{d#*:}} && exec {TAP_FD_IN_QEMU}<>{node} && rm {node} && exec {}'",
                    line.replace('\'', r"'\''"),
                ),
            ]
        }
        Some(n) => match n.qemu_netns() {
            Some(ns) => vec![
                format!("# run {} first", files::NETSETUP),
                format!("exec ip netns exec {} {line}", ns.name()),
            ],
            None => vec![
                format!("# run {} first", files::NETSETUP),
                format!("exec {line}"),
            ],
        },
    }
}

/// The guest must report the configuration asked for: a measurement labelled `poll` that ran
/// in `irq` mode (boot arguments lost on the way, say through U-Boot) would be wrong.
fn check_ready(config: &VmConfig, ready: &ReadyInfo) -> Result<(), VmError> {
    let transport = match config.transport {
        options::Transport::Mmio => "mmio",
        options::Transport::MmioLegacy => "mmio-legacy",
        options::Transport::Pci => "pci",
    };
    let gic = config.gic.map(|g| g.to_string());
    let checks = [
        ("mode", Some(config.mode.as_str()), ready.mode.as_deref()),
        ("transport", Some(transport), ready.transport.as_deref()),
        ("gic", gic.as_deref(), ready.gic.as_deref()),
    ];
    for (key, asked, guest) in checks {
        if let (Some(a), Some(g)) = (asked, guest) {
            if a != g {
                return Err(VmError::Mismatch {
                    key,
                    asked: a.to_string(),
                    guest: g.to_string(),
                    line: ready.line.clone(),
                });
            }
        }
    }
    Ok(())
}

/// The error for QEMU having exited during start-up, with its own message and the console.
fn qemu_exited(
    status: std::io::Result<ExitStatus>,
    stderr_path: &std::path::Path,
    console: &Console,
) -> VmError {
    let stderr = std::fs::read_to_string(stderr_path).unwrap_or_default();
    VmError::QemuExited {
        status: status.map_or_else(|e| e.to_string(), describe_exit),
        stderr: stderr.trim().to_string(),
        tail: console.tail(TAIL),
    }
}

async fn kill_and_reap(child: &mut QemuChild) {
    let _ = child.start_kill();
    let _ = child.wait().await;
}

/// Runs in the QEMU child before exec: enter the network namespace, move the macvtap to its
/// descriptor number, keep off cpu0, and die with vmprobe.
fn child_setup(ns_fd: Option<i32>, tap_fd: Option<i32>, cpus: &[usize]) -> std::io::Result<()> {
    let check = |r: libc::c_int| {
        if r < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(())
        }
    };
    // SAFETY (all blocks below): plain system calls on descriptors the parent keeps open
    // across fork, and on a stack-allocated cpu set; no allocation, no locks.
    if let Some(fd) = ns_fd {
        check(unsafe { libc::setns(fd, libc::CLONE_NEWNET) })?;
    }
    if let Some(fd) = tap_fd {
        if fd == TAP_FD_IN_QEMU {
            // dup2 onto itself keeps close-on-exec; clear it instead.
            check(unsafe { libc::fcntl(fd, libc::F_SETFD, 0) })?;
        } else {
            check(unsafe { libc::dup2(fd, TAP_FD_IN_QEMU) })?;
        }
    }
    // SAFETY: see above.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for &c in cpus.iter().filter(|&&c| c < libc::CPU_SETSIZE as usize) {
        // SAFETY: `c` is below CPU_SETSIZE.
        unsafe { libc::CPU_SET(c, &mut set) };
    }
    // SAFETY: see above; a failure to pin is not fatal for the child.
    unsafe {
        libc::sched_setaffinity(0, std::mem::size_of_val(&set), &set);
    }
    check(unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) })?;
    Ok(())
}

/// `exit status 1`, `killed by signal 9 (SIGKILL)`, ...
pub fn describe_exit(s: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (s.code(), s.signal()) {
        (Some(c), _) => format!("exit status {c}"),
        (None, Some(sig)) => format!(
            "killed by signal {sig}{}",
            match sig {
                libc::SIGKILL => " (SIGKILL)",
                libc::SIGTERM => " (SIGTERM)",
                libc::SIGSEGV => " (SIGSEGV)",
                libc::SIGABRT => " (SIGABRT)",
                _ => "",
            }
        ),
        _ => s.to_string(),
    }
}

/// The host kernel release.
pub fn host_kernel() -> String {
    std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "unknown".into())
}

/// A locally administered unicast MAC, different per VM (several may share a bridge).
fn guest_mac() -> [u8; 6] {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let pid = std::process::id();
    let n = N.fetch_add(1, Ordering::Relaxed);
    let x = pid.wrapping_mul(2_654_435_761) ^ n.wrapping_mul(40_503);
    [0x52, 0x54, 0x00, (x >> 16) as u8, (x >> 8) as u8, x as u8]
}
