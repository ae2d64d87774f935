//! Network setups for tap, bridge, macvtap, eBPF and OVS guests, built from iproute2 commands
//! inside network namespaces that vmprobe creates and removes. Nothing but the OVS setup's
//! three devices is added to the host's own namespace, so every other device goes away with
//! the namespaces.
//!
//! Topologies (guest 192.168.20.2/24, host side 192.168.20.1/24):
//! - `tap`: namespace `vmp-PID-N` holds `tap0` (192.168.20.1); QEMU and the client run there.
//! - `bridge`: `vmp-PID-N` holds `tap0` and `veth0` on bridge `br0`, QEMU runs there; the
//!   client runs in `vmp-PID-N-h1` ("host1") on `veth1` (192.168.20.1), the users' tap+bridge.
//! - `macvtap`: `vmp-PID-N` holds `veth0` and `mvtap0` (macvtap, bridge mode, the guest's MAC)
//!   on it; QEMU gets the macvtap character device as a file descriptor; the client runs in
//!   `vmp-PID-N-h1` on `veth1`.
//! - `ebpf`: `vmp-PID-N` holds `tap0` and `veth0`, joined by an eBPF program on each that
//!   redirects every arriving frame to the other (tc ingress or generic XDP, [`ebpf`]); QEMU
//!   runs there; the client runs in `vmp-PID-N-h1` on `veth1`.
//! - `ovs`: an Open vSwitch bridge with the tap and a veth as ports, in the host's namespace
//!   where ovs-vswitchd sees them ([`ovs`]); QEMU runs there; the client runs in
//!   `vmp-PID-N-h1` on `veth1`.
//!
//! Teardown is explicit ([`NetSetup::teardown`]) and also happens on drop.
pub mod ebpf;
pub mod ip;
pub mod netns;
pub mod ovs;

use std::fs::File;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

pub use netns::NetNs;

use ip::Runner;

/// The kinds of setup: which devices connect the guest's NIC to the client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Topology {
    /// A tap device; QEMU and the client share its namespace.
    Tap,
    /// A tap on a bridge, reached from a second namespace over a veth pair.
    Bridge,
    /// A macvtap over a veth whose peer sits in a second namespace.
    Macvtap,
    /// A tap and a veth joined by eBPF redirects at `Hook`, the veth's peer in a second
    /// namespace.
    Ebpf(ebpf::Hook),
    /// A tap and a veth on an Open vSwitch bridge in the host's namespace, the veth's peer in
    /// a namespace of its own.
    Ovs,
}

impl Topology {
    /// The name (`tap`, `bridge`, `macvtap`), as `--net` spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Topology::Tap => "tap",
            Topology::Bridge => "bridge",
            Topology::Macvtap => "macvtap",
            Topology::Ebpf(_) => "ebpf",
            Topology::Ovs => "ovs",
        }
    }
}

/// The guest's address on every setup's private link (the users' 192.168.20.0/24 layout).
pub const GUEST_ADDR: Ipv4Addr = Ipv4Addr::new(192, 168, 20, 2);
/// The host side of the link, where the client sits.
pub const HOST_ADDR: Ipv4Addr = Ipv4Addr::new(192, 168, 20, 1);
/// The link's prefix length.
pub const PREFIX: u8 = 24;

/// Formats a MAC address the way iproute2 and QEMU take it.
pub fn mac_string(mac: &[u8; 6]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Network setup failures.
#[derive(Debug, thiserror::Error)]
pub enum NetError {
    /// Not root.
    #[error("--net {0} needs root (network namespaces, tap and macvtap devices): run as root, or use --net user")]
    NotRoot(&'static str),
    /// A tool is not installed.
    #[error("`{0}` not found: install {pkg} (apt-get install {pkg})", pkg = package_of(.0))]
    ToolMissing(String),
    /// A command failed.
    #[error("`{command}` failed: {message}")]
    Command {
        /// The command line.
        command: String,
        /// Its error output.
        message: String,
    },
    /// Anything else from the OS.
    #[error("network setup: {0}")]
    Io(#[from] std::io::Error),
    /// Loading or attaching the eBPF bridge.
    #[error("--net ebpf: {0}")]
    Ebpf(String),
    /// Open vSwitch missing on this host (the line names what).
    #[error("{0}")]
    Ovs(String),
    /// Output of a tool not understood.
    #[error("network setup: {0}")]
    Unexpected(String),
}

/// The Debian package that installs `tool`.
fn package_of(tool: &str) -> &'static str {
    match tool {
        "ethtool" => "ethtool",
        "ovs-vsctl" => "openvswitch-switch",
        _ => "iproute2",
    }
}

/// Tap device name inside the VM namespace.
pub const TAP: &str = "tap0";
/// Bridge name inside the VM namespace.
pub const BRIDGE: &str = "br0";
/// veth end in the VM namespace.
pub const VETH_VM: &str = "veth0";
/// veth end in the host1 namespace.
pub const VETH_HOST1: &str = "veth1";
/// macvtap name inside the VM namespace.
pub const MACVTAP: &str = "mvtap0";
/// Prefix of every namespace vmprobe creates.
pub const NS_PREFIX: &str = "vmp-";

static NEXT_ID: AtomicU32 = AtomicU32::new(0);

/// A created network setup. Dropping it tears it down.
#[derive(Debug)]
pub struct NetSetup {
    topology: Topology,
    /// Namespaces created, in creation order.
    namespaces: Vec<NetNs>,
    mac: [u8; 6],
    /// The macvtap character device, opened for QEMU.
    tap_fd: Option<File>,
    /// The eBPF bridge's programs.
    bridge: Option<ebpf::Bridge>,
    /// The OVS setup's devices in the host's namespace.
    ovs: Option<ovs::Names>,
    /// Files a by-hand setup needs beside its script (the eBPF objects).
    files: Vec<(String, Vec<u8>)>,
    runner: Runner,
    torn_down: bool,
}

impl NetSetup {
    /// Creates the setup for `topology` with the guest's MAC `mac`. Blocking: runs a dozen
    /// short `ip` commands. Everything created so far is removed again on failure.
    pub fn create(topology: Topology, mac: [u8; 6]) -> Result<NetSetup, NetError> {
        if !crate::os::is_root() {
            return Err(NetError::NotRoot(topology.as_str()));
        }
        if topology == Topology::Ovs {
            ovs::check()?;
        }
        reap_stale();
        let (pid, id) = (std::process::id(), NEXT_ID.fetch_add(1, Ordering::Relaxed));
        let base = format!("{NS_PREFIX}{pid}-{id}");
        let mut s = NetSetup {
            topology,
            namespaces: Vec::new(),
            mac,
            tap_fd: None,
            bridge: None,
            ovs: None,
            files: Vec::new(),
            runner: Runner::default(),
            torn_down: false,
        };
        // On error `s` drops here and removes what was made.
        if topology == Topology::Ovs {
            s.build_ovs(&base, ovs::Names::new(pid, id))?;
        } else {
            s.build(&base)?;
        }
        Ok(s)
    }

    fn add_ns(&mut self, name: String) -> Result<NetNs, NetError> {
        self.runner.ip(&["netns", "add", &name])?;
        let ns = NetNs::new(name);
        self.namespaces.push(ns.clone());
        let n = ns.name().to_string();
        self.runner.ip(&["-n", &n, "link", "set", "lo", "up"])?;
        // No IPv6 on these links: router solicitations and DAD would be stray packets for the
        // guest in the middle of a measurement.
        self.runner.ip(&[
            "netns",
            "exec",
            &n,
            "sysctl",
            "-qw",
            "net.ipv6.conf.all.disable_ipv6=1",
            "net.ipv6.conf.default.disable_ipv6=1",
        ])?;
        Ok(ns)
    }

    /// The OVS setup: only the client's namespace is made; the rest lives in the host's.
    fn build_ovs(&mut self, base: &str, names: ovs::Names) -> Result<(), NetError> {
        let h1 = self.add_ns(format!("{base}-h1"))?;
        let commands = ovs::setup_commands(&names, h1.name());
        // From here on teardown removes the devices, whichever command fails.
        self.ovs = Some(names);
        for c in commands {
            let args: Vec<&str> = c[1..].iter().map(String::as_str).collect();
            self.runner.run(&c[0], &args)?;
        }
        Ok(())
    }

    fn build(&mut self, base: &str) -> Result<(), NetError> {
        let host_addr = format!("{HOST_ADDR}/{PREFIX}");
        let vm = self.add_ns(base.to_string())?;
        let v = vm.name().to_string();
        match self.topology {
            Topology::Tap => {
                let r = &mut self.runner;
                r.ip(&["-n", &v, "tuntap", "add", "dev", TAP, "mode", "tap"])?;
                r.ip(&["-n", &v, "addr", "add", &host_addr, "dev", TAP])?;
                r.ip(&["-n", &v, "link", "set", TAP, "up"])?;
            }
            Topology::Bridge => {
                let h1 = self.add_ns(format!("{base}-h1"))?;
                let h = h1.name().to_string();
                let r = &mut self.runner;
                r.ip(&["-n", &v, "tuntap", "add", "dev", TAP, "mode", "tap"])?;
                r.ip(&[
                    "-n",
                    &v,
                    "link",
                    "add",
                    BRIDGE,
                    "type",
                    "bridge",
                    "forward_delay",
                    "0",
                    "stp_state",
                    "0",
                ])?;
                r.ip(&[
                    "-n", &v, "link", "add", VETH_VM, "type", "veth", "peer", "name", VETH_HOST1,
                    "netns", &h,
                ])?;
                r.ip(&["-n", &v, "link", "set", TAP, "master", BRIDGE])?;
                r.ip(&["-n", &v, "link", "set", VETH_VM, "master", BRIDGE])?;
                for dev in [BRIDGE, TAP, VETH_VM] {
                    r.ip(&["-n", &v, "link", "set", dev, "up"])?;
                }
                r.ip(&["-n", &h, "addr", "add", &host_addr, "dev", VETH_HOST1])?;
                r.ip(&["-n", &h, "link", "set", VETH_HOST1, "up"])?;
            }
            Topology::Macvtap => {
                let h1 = self.add_ns(format!("{base}-h1"))?;
                let h = h1.name().to_string();
                let mac = mac_string(&self.mac);
                let r = &mut self.runner;
                r.ip(&[
                    "-n", &v, "link", "add", VETH_VM, "type", "veth", "peer", "name", VETH_HOST1,
                    "netns", &h,
                ])?;
                // The macvtap must carry the guest's MAC: in bridge mode it only takes frames
                // addressed to its own address.
                r.ip(&[
                    "-n", &v, "link", "add", "link", VETH_VM, "name", MACVTAP, "address", &mac,
                    "type", "macvtap", "mode", "bridge",
                ])?;
                r.ip(&["-n", &v, "link", "set", VETH_VM, "up"])?;
                r.ip(&["-n", &v, "link", "set", MACVTAP, "up"])?;
                r.ip(&["-n", &h, "addr", "add", &host_addr, "dev", VETH_HOST1])?;
                r.ip(&["-n", &h, "link", "set", VETH_HOST1, "up"])?;
                self.tap_fd = Some(self.open_macvtap(&v)?);
            }
            Topology::Ovs => unreachable!("built by build_ovs"),
            Topology::Ebpf(hook) => {
                let h1 = self.add_ns(format!("{base}-h1"))?;
                let h = h1.name().to_string();
                let r = &mut self.runner;
                r.ip(&["-n", &v, "tuntap", "add", "dev", TAP, "mode", "tap"])?;
                r.ip(&[
                    "-n", &v, "link", "add", VETH_VM, "type", "veth", "peer", "name", VETH_HOST1,
                    "netns", &h,
                ])?;
                for dev in [TAP, VETH_VM] {
                    r.ip(&["-n", &v, "link", "set", dev, "up"])?;
                }
                r.ip(&["-n", &h, "addr", "add", &host_addr, "dev", VETH_HOST1])?;
                r.ip(&["-n", &h, "link", "set", VETH_HOST1, "up"])?;
                if hook == ebpf::Hook::Xdp {
                    // A generic XDP redirect hands the frame straight to the tap's transmit,
                    // past the step that completes a checksum the sender left to the device:
                    // the client's veth computes its checksums itself instead.
                    ip::require("ethtool")?;
                    r.ip(&[
                        "netns", "exec", &h, "ethtool", "-K", VETH_HOST1, "tx", "off",
                    ])?;
                }
                let (bridge, recipe) = ebpf::Bridge::attach(&vm, hook, TAP, VETH_VM)?;
                self.bridge = Some(bridge);
                self.runner.log.push(format!(
                    "# eBPF redirects ({}): the objects beside this script carry each peer's ifindex",
                    hook.as_str()
                ));
                self.runner.log.extend(recipe.lines);
                self.files = recipe.files;
            }
        }
        Ok(())
    }

    /// Opens the macvtap's character device. Its number is in the namespace's sysfs (which
    /// `ip netns exec` mounts); the node is made privately, since udev's /dev/tapN names
    /// (by ifindex) collide between namespaces.
    fn open_macvtap(&mut self, ns: &str) -> Result<File, NetError> {
        let dev = self.runner.ip(&[
            "netns",
            "exec",
            ns,
            "sh",
            "-c",
            &format!("cat /sys/class/net/{MACVTAP}/macvtap/*/dev"),
        ])?;
        let (major, minor) = dev
            .trim()
            .split_once(':')
            .and_then(|(a, b)| Some((a.parse::<u32>().ok()?, b.parse::<u32>().ok()?)))
            .ok_or_else(|| {
                NetError::Unexpected(format!("macvtap device number `{}`", dev.trim()))
            })?;
        let node = PathBuf::from(format!("/dev/vmprobe-{ns}-{MACVTAP}"));
        let _ = std::fs::remove_file(&node);
        let c = std::ffi::CString::new(node.as_os_str().as_encoded_bytes())
            .map_err(|e| NetError::Unexpected(e.to_string()))?;
        // SAFETY: `c` is a NUL-terminated path that lives across the call.
        let r = unsafe {
            libc::mknod(
                c.as_ptr(),
                libc::S_IFCHR | 0o600,
                libc::makedev(major, minor),
            )
        };
        if r != 0 {
            return Err(NetError::Io(std::io::Error::last_os_error()));
        }
        let f = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&node);
        let _ = std::fs::remove_file(&node);
        Ok(f?)
    }

    /// The kind of setup.
    pub fn topology(&self) -> Topology {
        self.topology
    }

    /// The namespace QEMU runs in; `None` for the host's own (OVS).
    pub fn qemu_netns(&self) -> Option<&NetNs> {
        match self.topology {
            Topology::Ovs => None,
            _ => self.namespaces.first(),
        }
    }

    /// The tap QEMU opens (tap, bridge, eBPF and OVS setups).
    pub fn tap_name(&self) -> &str {
        self.ovs.as_ref().map_or(TAP, |n| n.tap.as_str())
    }

    /// The namespace a client (the measuring thread) runs in to reach the guest.
    pub fn client_netns(&self) -> &NetNs {
        self.namespaces.last().expect("a setup has a namespace")
    }

    /// Every namespace of the setup.
    pub fn namespaces(&self) -> &[NetNs] {
        &self.namespaces
    }

    /// The macvtap file descriptor QEMU must inherit (macvtap only).
    pub fn tap_file(&self) -> Option<&File> {
        self.tap_fd.as_ref()
    }

    /// Every command run so far, as shell lines (for the run directory).
    pub fn commands(&self) -> &[String] {
        &self.runner.log
    }

    /// Files the commands read from beside the script, as `(name, contents)`.
    pub fn files(&self) -> &[(String, Vec<u8>)] {
        &self.files
    }

    /// Removes everything: the macvtap descriptor is closed, devices deleted, namespaces
    /// deleted (last created first). Idempotent. QEMU should be gone first, or the kernel
    /// keeps its namespace alive until it exits.
    pub fn teardown(&mut self) -> Result<(), NetError> {
        if self.torn_down {
            return Ok(());
        }
        self.torn_down = true;
        self.tap_fd = None;
        let mut first_err = None;
        if let Some(bridge) = self.bridge.take() {
            if let Err(e) = bridge.detach(&self.namespaces[0]) {
                first_err.get_or_insert(e);
            }
        }
        if let Some(names) = self.ovs.take() {
            for c in ovs::teardown_commands(&names) {
                let args: Vec<&str> = c[1..].iter().map(String::as_str).collect();
                // The link deletions fail harmlessly for a device never made.
                if let Err(e) = ip::run_quiet(&c[0], &args) {
                    if c[0] == "ovs-vsctl" {
                        first_err.get_or_insert(e);
                    }
                }
            }
        }
        for ns in self.namespaces.iter().rev() {
            if !ns.exists() {
                continue;
            }
            // Deleting the links first makes their removal synchronous; the namespace's own
            // cleanup in the kernel is deferred.
            for dev in [MACVTAP, TAP, BRIDGE, VETH_VM, VETH_HOST1] {
                let _ = ip::run_quiet("ip", &["-n", ns.name(), "link", "del", dev]);
            }
            if let Err(e) = ip::run_quiet("ip", &["netns", "del", ns.name()]) {
                first_err.get_or_insert(e);
            }
        }
        first_err.map_or(Ok(()), Err)
    }
}

impl Drop for NetSetup {
    fn drop(&mut self) {
        if let Err(e) = self.teardown() {
            eprintln!("vmprobe: network teardown: {e}");
        }
    }
}

/// Removes namespaces (and OVS devices in the host's namespace) left by vmprobe processes
/// that no longer exist (killed with SIGKILL, so their teardown never ran).
pub fn reap_stale() {
    let dead = |pid: u32| !PathBuf::from(format!("/proc/{pid}")).exists();
    if let Ok(links) = std::fs::read_dir("/sys/class/net") {
        for e in links.flatten() {
            let dev = e.file_name().to_string_lossy().into_owned();
            if ovs::Names::owner(&dev).is_some_and(dead) {
                if dev.ends_with('b') {
                    let _ = ip::run_quiet("ovs-vsctl", &["--if-exists", "del-br", &dev]);
                } else {
                    let _ = ip::run_quiet("ip", &["link", "del", &dev]);
                }
            }
        }
    }
    let Ok(dir) = std::fs::read_dir(netns::NETNS_DIR) else {
        return;
    };
    for e in dir.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        let Some(pid) = name
            .strip_prefix(NS_PREFIX)
            .and_then(|r| r.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !PathBuf::from(format!("/proc/{pid}")).exists() {
            let _ = ip::run_quiet("ip", &["netns", "del", &name]);
        }
    }
}
