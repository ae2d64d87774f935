//! The Open vSwitch setup: an OVS bridge (`ovs-vsctl`) with the guest's tap and the client's
//! veth as its ports. ovs-vswitchd only sees devices in its own namespace, so the bridge, the
//! tap and the near veth end live in the host's namespace under names unique to the run
//! (`vo<pid>-<n>b`, `...t`, `...v`), QEMU runs there too, and only the client's veth end sits
//! in a namespace of its own. Teardown removes all three devices by name.
//!
//! The commands are built here as data so they can be checked without Open vSwitch.
use super::{NetError, HOST_ADDR, PREFIX, VETH_HOST1};

/// Prefix of every host-namespace device an OVS setup creates.
pub const PREFIX_OVS: &str = "vo";

/// The run's device names in the host's namespace.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Names {
    /// The OVS bridge (its internal port has the same name).
    pub bridge: String,
    /// The guest's tap.
    pub tap: String,
    /// The veth end on the bridge; its peer is the client's `veth1`.
    pub veth: String,
}

impl Names {
    /// Names for setup number `n` of process `pid` (at most 15 bytes each, as Linux wants).
    pub fn new(pid: u32, n: u32) -> Names {
        let base = format!("{PREFIX_OVS}{pid}-{n}");
        Names {
            bridge: format!("{base}b"),
            tap: format!("{base}t"),
            veth: format!("{base}v"),
        }
    }

    /// The pid a device name of ours carries, if it is one.
    pub fn owner(dev: &str) -> Option<u32> {
        let rest = dev.strip_prefix(PREFIX_OVS)?;
        let (pid, tail) = rest.split_once('-')?;
        let n = tail.strip_suffix(['b', 't', 'v'])?;
        n.parse::<u32>().ok()?;
        pid.parse().ok()
    }
}

fn cmd(program: &str, args: &[&str]) -> Vec<String> {
    std::iter::once(program)
        .chain(args.iter().copied())
        .map(str::to_string)
        .collect()
}

/// The commands that build the setup, in order: devices, IPv6 off on them (no router
/// solicitations or DAD towards the guest), the bridge and its two ports, links up, and the
/// client's address in namespace `client_ns`.
pub fn setup_commands(names: &Names, client_ns: &str) -> Vec<Vec<String>> {
    let Names { bridge, tap, veth } = names;
    let host_addr = format!("{HOST_ADDR}/{PREFIX}");
    let mut c = vec![
        cmd("ip", &["tuntap", "add", "dev", tap, "mode", "tap"]),
        cmd(
            "ip",
            &[
                "link", "add", veth, "type", "veth", "peer", "name", VETH_HOST1, "netns", client_ns,
            ],
        ),
        cmd("ovs-vsctl", &["add-br", bridge]),
    ];
    for dev in [tap, veth, bridge] {
        c.push(cmd(
            "sysctl",
            &["-qw", &format!("net.ipv6.conf.{dev}.disable_ipv6=1")],
        ));
    }
    c.push(cmd("ovs-vsctl", &["add-port", bridge, tap]));
    c.push(cmd("ovs-vsctl", &["add-port", bridge, veth]));
    for dev in [bridge, tap, veth] {
        c.push(cmd("ip", &["link", "set", dev, "up"]));
    }
    c.push(cmd(
        "ip",
        &[
            "-n", client_ns, "addr", "add", &host_addr, "dev", VETH_HOST1,
        ],
    ));
    c.push(cmd(
        "ip",
        &["-n", client_ns, "link", "set", VETH_HOST1, "up"],
    ));
    c
}

/// The commands that remove the host-namespace devices (the bridge first, so OVS lets go of
/// its ports).
pub fn teardown_commands(names: &Names) -> Vec<Vec<String>> {
    vec![
        cmd("ovs-vsctl", &["--if-exists", "del-br", &names.bridge]),
        cmd("ip", &["link", "del", &names.tap]),
        cmd("ip", &["link", "del", &names.veth]),
    ]
}

/// What this host has of Open vSwitch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Host {
    /// `ovs-vsctl` on PATH.
    pub vsctl: bool,
    /// The openvswitch kernel module: loaded, present but not loaded, or absent.
    pub module: Module,
    /// ovsdb-server and ovs-vswitchd answer (`ovs-vsctl show`).
    pub daemon: bool,
}

/// The kernel side of Open vSwitch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Module {
    /// Loaded or built in.
    Loaded,
    /// Installed for this kernel, not loaded.
    Available,
    /// This kernel has none.
    Absent,
}

impl Host {
    /// Looks at this host.
    pub fn probe() -> Host {
        let vsctl = super::ip::require("ovs-vsctl").is_ok();
        let module = if std::path::Path::new("/sys/module/openvswitch").exists() {
            Module::Loaded
        } else if module_installed() {
            Module::Available
        } else {
            Module::Absent
        };
        let daemon = vsctl && super::ip::run_quiet("ovs-vsctl", &["--timeout=2", "show"]).is_ok();
        Host {
            vsctl,
            module,
            daemon,
        }
    }

    /// What is missing, as one line; `None` when the setup can be made.
    pub fn missing(&self) -> Option<String> {
        let mut m = Vec::new();
        if !self.vsctl {
            m.push("ovs-vsctl (apt-get install openvswitch-switch)");
        }
        match self.module {
            Module::Loaded => {}
            Module::Available => {
                m.push("the openvswitch kernel module loaded (modprobe openvswitch)")
            }
            Module::Absent => m.push("a kernel with the openvswitch module (this one has none)"),
        }
        if self.vsctl && !self.daemon {
            m.push("ovsdb-server and ovs-vswitchd running (service openvswitch-switch start)");
        }
        (!m.is_empty()).then(|| format!("--net ovs needs {}", m.join("; ")))
    }
}

/// Whether modprobe would find an openvswitch module for the running kernel.
fn module_installed() -> bool {
    let Ok(release) = std::fs::read_to_string("/proc/sys/kernel/osrelease") else {
        return false;
    };
    let dep = format!("/lib/modules/{}/modules.dep", release.trim());
    std::fs::read_to_string(dep).is_ok_and(|d| {
        d.lines().any(|l| {
            l.split(':')
                .next()
                .is_some_and(|m| m.contains("/openvswitch.ko"))
        })
    })
}

/// Checks this host before anything is made or booted.
pub fn check() -> Result<(), NetError> {
    Host::probe()
        .missing()
        .map_or(Ok(()), |m| Err(NetError::Ovs(m)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(c: &[Vec<String>]) -> Vec<String> {
        c.iter().map(|a| a.join(" ")).collect()
    }

    #[test]
    fn names_fit_linux_and_carry_the_owner() {
        let n = Names::new(4_194_304, 999);
        for d in [&n.bridge, &n.tap, &n.veth] {
            assert!(d.len() <= 15, "{d}");
            assert_eq!(Names::owner(d), Some(4_194_304));
        }
        assert_eq!(Names::owner("vmp-1-0"), None);
        assert_eq!(Names::owner("vo12-3x"), None);
        assert_eq!(Names::owner("eth0"), None);
    }

    #[test]
    fn the_bridge_takes_the_tap_and_the_veth() {
        let n = Names::new(7, 0);
        let l = lines(&setup_commands(&n, "vmp-7-0-h1"));
        assert_eq!(
            l,
            [
                "ip tuntap add dev vo7-0t mode tap",
                "ip link add vo7-0v type veth peer name veth1 netns vmp-7-0-h1",
                "ovs-vsctl add-br vo7-0b",
                "sysctl -qw net.ipv6.conf.vo7-0t.disable_ipv6=1",
                "sysctl -qw net.ipv6.conf.vo7-0v.disable_ipv6=1",
                "sysctl -qw net.ipv6.conf.vo7-0b.disable_ipv6=1",
                "ovs-vsctl add-port vo7-0b vo7-0t",
                "ovs-vsctl add-port vo7-0b vo7-0v",
                "ip link set vo7-0b up",
                "ip link set vo7-0t up",
                "ip link set vo7-0v up",
                "ip -n vmp-7-0-h1 addr add 192.168.20.1/24 dev veth1",
                "ip -n vmp-7-0-h1 link set veth1 up",
            ]
        );
        assert_eq!(
            lines(&teardown_commands(&n)),
            [
                "ovs-vsctl --if-exists del-br vo7-0b",
                "ip link del vo7-0t",
                "ip link del vo7-0v",
            ]
        );
    }

    #[test]
    fn one_line_names_everything_missing() {
        let all = Host {
            vsctl: true,
            module: Module::Loaded,
            daemon: true,
        };
        assert_eq!(all.missing(), None);
        let none = Host {
            vsctl: false,
            module: Module::Absent,
            daemon: false,
        };
        let m = none.missing().unwrap();
        assert_eq!(
            m,
            "--net ovs needs ovs-vsctl (apt-get install openvswitch-switch); \
             a kernel with the openvswitch module (this one has none)"
        );
        let stopped = Host {
            module: Module::Available,
            daemon: false,
            ..all
        };
        let m = stopped.missing().unwrap();
        assert!(
            m.contains("modprobe openvswitch") && m.contains("ovs-vswitchd running"),
            "{m}"
        );
        assert!(!m.contains('\n'));
    }
}
