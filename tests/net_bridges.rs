//! The users' other bridges. The eBPF bridge's setup on its own: both hooks attach one program
//! to each of tap0 and veth0, each carrying the other's ifindex, and teardown leaves no
//! program and no namespace; `--ebpf-hook` without `--net ebpf` is refused. (The guest echoing
//! over the eBPF path is in run_net.rs.) Open vSwitch: a host without it gets one line naming
//! what is missing before anything is made.
mod support;

use std::process::Command;

use serde_json::Value;
use support::vm::{host_links, netns_list, temp_dir};
use support::vmprobe_output;
use vmprobe::netsetup::ebpf::Hook;
use vmprobe::netsetup::{NetSetup, Topology, TAP, VETH_VM};

fn bpftool(args: &[&str]) -> Option<Value> {
    let out = Command::new("bpftool")
        .arg("-j")
        .args(args)
        .output()
        .expect("bpftool (apt-get install bpftool)");
    out.status
        .success()
        .then(|| serde_json::from_slice(&out.stdout).unwrap())
}

/// The peer ifindex in program `id`'s read-only data (its one map, one u32 value).
fn peer_of(id: u64) -> u32 {
    let prog = bpftool(&["prog", "show", "id", &id.to_string()]).unwrap();
    let maps = prog["map_ids"].as_array().unwrap();
    assert_eq!(maps.len(), 1, "program {id}: {prog}");
    let dump = bpftool(&["map", "dump", "id", &maps[0].to_string()]).unwrap();
    let bytes: Vec<u8> = dump[0]["value"]
        .as_array()
        .unwrap_or_else(|| panic!("map of program {id}: {dump}"))
        .iter()
        .map(|b| u8::from_str_radix(b.as_str().unwrap().trim_start_matches("0x"), 16).unwrap())
        .collect();
    u32::from_ne_bytes(bytes.try_into().unwrap())
}

#[test]
#[ignore = "needs root: creates network namespaces and loads eBPF programs"]
fn ebpf_both_hooks_attach_crosswise_and_teardown_unloads() {
    for hook in [Hook::Tc, Hook::Xdp] {
        let mut s = NetSetup::create(Topology::Ebpf(hook), [0x52, 0x54, 0, 1, 2, 3]).unwrap();
        let ns = s.qemu_netns().unwrap().name().to_string();
        let names: Vec<String> = s
            .namespaces()
            .iter()
            .map(|n| n.name().to_string())
            .collect();
        let out = Command::new("ip")
            .args(["netns", "exec", &ns, "bpftool", "-j", "net", "show"])
            .output()
            .unwrap();
        let net: Value = serde_json::from_slice(&out.stdout).unwrap();
        let (list, want) = match hook {
            Hook::Tc => (&net[0]["tc"], ("kind", "clsact/ingress")),
            Hook::Xdp => (&net[0]["xdp"], ("mode", "generic")),
        };
        let list = list.as_array().unwrap();
        assert_eq!(list.len(), 2, "{hook:?}: {net}");
        let mut ids = Vec::new();
        for dev in [TAP, VETH_VM] {
            let a = list
                .iter()
                .find(|a| a["devname"] == dev)
                .unwrap_or_else(|| panic!("{hook:?}: nothing on {dev}: {net}"));
            assert_eq!(a[want.0], want.1, "{hook:?}: {a}");
            let peer = list.iter().find(|b| b["devname"] != dev).unwrap();
            let id = a["id"].as_u64().unwrap();
            assert_eq!(
                u64::from(peer_of(id)),
                peer["ifindex"].as_u64().unwrap(),
                "{hook:?} on {dev}"
            );
            ids.push(id);
        }
        // The run directory gets the patched objects that netsetup.sh loads.
        let files: Vec<&str> = s.files().iter().map(|(n, _)| n.as_str()).collect();
        let h = hook.as_str();
        assert_eq!(
            files,
            [
                format!("ebpf-{h}-{TAP}-to-{VETH_VM}.o"),
                format!("ebpf-{h}-{VETH_VM}-to-{TAP}.o")
            ]
        );
        assert!(s.commands().iter().any(|l| l.contains(files[0])));

        s.teardown().unwrap();
        for id in ids {
            assert!(
                bpftool(&["prog", "show", "id", &id.to_string()]).is_none(),
                "{hook:?}: program {id} still loaded"
            );
        }
        let left = netns_list();
        for n in names {
            assert!(!left.contains(&n), "{hook:?}: namespace {n} left");
        }
    }
}

#[test]
fn ebpf_hook_without_net_ebpf_is_refused() {
    let image = vmprobe::vm::options::default_image();
    assert!(
        image.is_file(),
        "build the guest first: scripts/build-guest.sh"
    );
    let out = vmprobe_output(&[
        "run",
        "--accel",
        "tcg",
        "--ebpf-hook",
        "xdp",
        "--image",
        image.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.trim()
            .ends_with("--ebpf-hook applies to --net ebpf only"),
        "{err}"
    );
    assert_eq!(err.trim().lines().count(), 1, "{err}");
}

#[test]
#[ignore = "needs root: --net ovs makes devices in the host's namespace"]
fn ovs_says_what_is_missing_before_anything_is_made() {
    let image = vmprobe::vm::options::default_image();
    assert!(
        image.is_file(),
        "build the guest first: scripts/build-guest.sh"
    );
    let Some(missing) = vmprobe::netsetup::ovs::Host::probe().missing() else {
        panic!("this host has Open vSwitch: run run_net's tests with --net ovs instead");
    };
    let dir = temp_dir("ovs-missing");
    let rd = dir.join("run");
    let child = support::vmprobe()
        .args(["run", "--accel", "tcg", "--net", "ovs", "--image"])
        .arg(&image)
        .arg("--run-dir")
        .arg(&rd)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.trim(), format!("vmprobe: error: {missing}"));
    assert!(!rd.exists(), "a run directory was made");
    // Nothing of that process's: no namespace `vmp-PID-*`, no OVS device `voPID-*`.
    let ns = format!("vmp-{pid}-");
    assert!(!netns_list().iter().any(|n| n.starts_with(&ns)));
    let dev = format!("vo{pid}-");
    assert!(!host_links().iter().any(|l| l.starts_with(&dev)));
    std::fs::remove_dir_all(dir).unwrap();
}

#[test]
#[ignore = "needs root: drops capabilities from a root process"]
fn ebpf_without_capabilities_says_so_in_one_line() {
    let image = vmprobe::vm::options::default_image();
    assert!(
        image.is_file(),
        "build the guest first: scripts/build-guest.sh"
    );
    // Still uid 0, so the namespace check passes; the BPF syscall is what refuses.
    let out = Command::new("capsh")
        .args([
            "--drop=cap_bpf,cap_net_admin,cap_sys_admin,cap_perfmon",
            "--",
            "-c",
            "exec \"$0\" run --accel tcg --net ebpf --image \"$1\"",
        ])
        .arg(env!("CARGO_BIN_EXE_vmprobe"))
        .arg(&image)
        .output()
        .expect("capsh (apt-get install libcap2-bin)");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(
        err.trim(),
        "vmprobe: error: --net ebpf: creating a BPF map: not permitted: \
         needs CAP_BPF and CAP_NET_ADMIN (run as root) (Operation not permitted)"
    );
}
