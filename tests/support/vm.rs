//! Shared helpers for the VM integration tests: a stand-in guest image and leftover checks.
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

/// A minimal arm64 Linux Image that writes `message` to the virt board's PL011 and then
/// sleeps in WFI forever: a stand-in guest for lifecycle tests (ready line, error line,
/// silence) that does not depend on the real guest's build. Hand-assembled; the UART address
/// is the virt board's, which is all a fixture needs.
pub fn fake_image(dir: &Path, name: &str, message: &str) -> PathBuf {
    let mut img = vec![0u8; 0x80];
    let words: [(usize, u32); 10] = [
        (0x00, 0x1400_0010), // b 0x40
        (0x40, 0xD2A1_2001), // movz x1, #0x0900, lsl #16   (PL011 at 0x0900_0000)
        (0x44, 0x1000_01E2), // adr  x2, 0x80               (message)
        (0x48, 0x3840_1443), // ldrb w3, [x2], #1
        (0x4c, 0x3400_0063), // cbz  w3, 0x58
        (0x50, 0xB900_0023), // str  w3, [x1]
        (0x54, 0x17FF_FFFD), // b    0x48
        (0x58, 0xD503_207F), // wfi
        (0x5c, 0x17FF_FFFF), // b    0x58
        (0x60, 0),
    ];
    for (off, w) in words {
        img[off..off + 4].copy_from_slice(&w.to_le_bytes());
    }
    img[0x38..0x3c].copy_from_slice(b"ARM\x64");
    img.extend_from_slice(message.as_bytes());
    img.push(0);
    img.resize(img.len().next_multiple_of(4096), 0);
    let size = img.len() as u64;
    img[0x08..0x10].copy_from_slice(&0x8_0000u64.to_le_bytes()); // text_offset
    img[0x10..0x18].copy_from_slice(&size.to_le_bytes()); // image_size
    img[0x18..0x20].copy_from_slice(&0xAu64.to_le_bytes()); // LE, 4K pages, anywhere
    std::fs::create_dir_all(dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, img).unwrap();
    p
}

/// A fresh temporary directory for one test.
pub fn temp_dir(test: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("vmprobe-test-{}-{test}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// True when running as root (namespace setups need it).
pub fn is_root() -> bool {
    vmprobe::os::is_root()
}

/// Names `ip netns` lists.
pub fn netns_list() -> Vec<String> {
    let out = Command::new("ip").args(["netns", "list"]).output().unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}

/// Link names in namespace `ns` (`None` when the namespace does not exist).
pub fn links_in(ns: &str) -> Option<Vec<String>> {
    let out = Command::new("ip")
        .args(["-n", ns, "-o", "link", "show"])
        .output()
        .unwrap();
    if !out.status.success() {
        return None;
    }
    Some(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split(':').nth(1))
            .map(|n| n.trim().split('@').next().unwrap_or("").to_string())
            .collect(),
    )
}

/// Link names in the host's own namespace.
pub fn host_links() -> Vec<String> {
    let out = Command::new("ip")
        .args(["-o", "link", "show"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split(':').nth(1))
        .map(|n| n.trim().split('@').next().unwrap_or("").to_string())
        .collect()
}

/// True while process `pid` exists (and is not a zombie).
pub fn alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !s
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z'),
        Err(_) => false,
    }
}

/// Device names the network setups use (inside their namespaces, never in the host's).
pub const OUR_LINKS: [&str; 5] = ["tap0", "br0", "veth0", "veth1", "mvtap0"];

/// Asserts nothing of a VM is left: no QEMU process, none of its namespaces, and none of the
/// setups' device names newly present in the host's namespace.
pub fn assert_no_leftovers(pid: u32, namespaces: &[String], host_links_before: &[String]) {
    assert!(!alive(pid), "QEMU {pid} still running");
    let list = netns_list();
    for ns in namespaces {
        assert!(!list.contains(ns), "namespace {ns} left behind");
    }
    let new: Vec<_> = host_links()
        .into_iter()
        .filter(|l| OUR_LINKS.contains(&l.as_str()) && !host_links_before.contains(l))
        .collect();
    assert!(new.is_empty(), "links left in the host namespace: {new:?}");
}

/// Runs `vmprobe SUBCOMMAND --net tap|bridge|macvtap` as nobody (setpriv) and checks each is
/// refused with one line saying it needs root.
pub fn assert_namespace_nets_need_root(subcommand: &str, image: &Path) {
    for net in ["tap", "bridge", "macvtap"] {
        let out = std::process::Command::new("setpriv")
            .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
            .arg(env!("CARGO_BIN_EXE_vmprobe"))
            .args([subcommand, "--accel", "tcg", "--net", net, "--image"])
            .arg(image)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains(&format!("--net {net} needs root")), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
    }
}

/// QEMU's pid and the namespaces a run directory records.
pub fn run_state(run: &Path) -> (u32, Vec<String>) {
    let pid = std::fs::read_to_string(run.join("qemu.pid"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let ns = std::fs::read_to_string(run.join("netsetup.sh"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.strip_prefix("ip netns add "))
        .map(str::to_string)
        .collect();
    (pid, ns)
}

/// Waits for `child` to exit.
pub fn wait_with_timeout(child: &mut Child, t: Duration) -> ExitStatus {
    let end = Instant::now() + t;
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s;
        }
        assert!(Instant::now() < end, "vmprobe did not exit");
        std::thread::sleep(Duration::from_millis(20));
    }
}
