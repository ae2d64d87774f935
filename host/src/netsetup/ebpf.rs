//! The eBPF bridge: two copies of one small program join the guest's tap and the client's
//! veth, each redirecting every frame that arrives on its device to the other device
//! (`bpf_redirect`), at tc ingress (clsact, direct action) or as generic XDP. No Linux bridge.
//!
//! The program is built from `host/bpf/redirect.bpf.c` by clang (build.rs) and embedded. Each
//! copy gets its peer's ifindex written into the object's read-only data before it is loaded,
//! so the object files kept in the run directory are exactly what was loaded, and `tc` or `ip`
//! load them the same way by hand.
//!
//! Attaching and detaching talk netlink by ifindex in the calling thread's namespace, so both
//! happen on a thread inside the setup's namespace, never in the host's.
use std::fs::File;

use aya::programs::tc::{NlOptions, SchedClassifierLinkId, TcAttachOptions};
use aya::programs::xdp::XdpLinkId;
use aya::programs::{SchedClassifier, TcAttachType, Xdp, XdpMode};
use aya::Ebpf;
use object::{Object, ObjectSection, ObjectSymbol};

use super::netns::{enter_fd, NetNs};
use super::NetError;

/// The program object clang built, peer ifindex 0.
pub const OBJECT: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/redirect.bpf.o"));

/// The read-only variable holding the peer's ifindex.
const PEER_SYMBOL: &str = "peer_ifindex";

/// Where the program runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Hook {
    /// tc ingress on a clsact qdisc, direct action (cls_bpf).
    Tc,
    /// Generic (skb) XDP.
    Xdp,
}

impl Hook {
    /// `tc` or `xdp`, as `--ebpf-hook` spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Hook::Tc => "tc",
            Hook::Xdp => "xdp",
        }
    }

    /// The program's function name in the object.
    fn program(self) -> &'static str {
        match self {
            Hook::Tc => "vmp_redirect_tc",
            Hook::Xdp => "vmp_redirect_xdp",
        }
    }

    /// The program's ELF section, as `tc ... sec` and `ip ... sec` name it.
    fn section(self) -> &'static str {
        match self {
            Hook::Tc => "classifier",
            Hook::Xdp => "xdp",
        }
    }
}

/// `object` with `ifindex` written into its `peer_ifindex`.
pub fn with_peer(object: &[u8], ifindex: u32) -> Result<Vec<u8>, NetError> {
    let bad = |what: String| NetError::Unexpected(format!("eBPF object: {what}"));
    let file = object::File::parse(object).map_err(|e| bad(e.to_string()))?;
    let sym = file
        .symbol_by_name(PEER_SYMBOL)
        .ok_or_else(|| bad(format!("no symbol {PEER_SYMBOL}")))?;
    let index = sym
        .section_index()
        .ok_or_else(|| bad(format!("{PEER_SYMBOL} has no section")))?;
    let section = file
        .section_by_index(index)
        .map_err(|e| bad(e.to_string()))?;
    let (start, size) = section
        .file_range()
        .ok_or_else(|| bad(format!("{PEER_SYMBOL}'s section has no data")))?;
    if sym.size() != 4 || sym.address() + 4 > size {
        return Err(bad(format!("{PEER_SYMBOL} is not a u32 in its section")));
    }
    let at = usize::try_from(start + sym.address()).map_err(|e| bad(e.to_string()))?;
    let mut out = object.to_vec();
    out[at..at + 4].copy_from_slice(&ifindex.to_ne_bytes());
    Ok(out)
}

/// Loads both programs without attaching them: whether this host lets vmprobe use eBPF at
/// all (BPF syscall, permission, program types). The error is one line naming what is missing.
pub fn check() -> Result<(), NetError> {
    bpf_syscall()?;
    for hook in [Hook::Tc, Hook::Xdp] {
        load(OBJECT, hook)?;
    }
    Ok(())
}

/// Creates and closes a one-entry array map: the BPF syscall's own answer on whether it exists
/// and is permitted (the loader's error for the same refusal names only its own later step).
fn bpf_syscall() -> Result<(), NetError> {
    const BPF_MAP_CREATE: libc::c_long = 0;
    const BPF_MAP_TYPE_ARRAY: u32 = 2;
    // map_type, key_size, value_size, max_entries; the rest of the attribute union zero.
    let mut attr = [0u32; 16];
    attr[..4].copy_from_slice(&[BPF_MAP_TYPE_ARRAY, 4, 4, 1]);
    // SAFETY: `attr` is a valid, fully initialised BPF_MAP_CREATE attribute block of the size
    // passed; the kernel only reads it.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            BPF_MAP_CREATE,
            attr.as_ptr(),
            std::mem::size_of_val(&attr),
        )
    };
    if fd < 0 {
        let e = std::io::Error::last_os_error();
        return Err(step_error("creating a BPF map", &e));
    }
    // SAFETY: `fd` is the descriptor the kernel just returned to us and nothing else owns it.
    unsafe { libc::close(fd as libc::c_int) };
    Ok(())
}

/// One loaded copy of the program, attached to a device.
struct Attached {
    ebpf: Ebpf,
    hook: Hook,
    link: Link,
}

enum Link {
    Tc(SchedClassifierLinkId),
    Xdp(XdpLinkId),
}

/// The two attached programs of a setup. Detach with [`Bridge::detach`]; dropped otherwise,
/// the programs stay in the kernel until vmprobe exits (detaching from an unknown namespace
/// could remove another device's filter).
pub struct Bridge {
    attached: Vec<Attached>,
}

impl std::fmt::Debug for Bridge {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bridge")
            .field("programs", &self.attached.len())
            .finish()
    }
}

/// What a by-hand setup runs to join `a` and `b` in namespace `ns` the same way: the object
/// file for each direction and the `tc`/`ip` lines loading them (paths relative to the script).
pub struct Recipe {
    /// `(file name, object)` per direction.
    pub files: Vec<(String, Vec<u8>)>,
    /// Shell lines.
    pub lines: Vec<String>,
}

/// The object file name for frames arriving on `from`.
fn file_name(hook: Hook, from: &str, to: &str) -> String {
    format!("ebpf-{}-{from}-to-{to}.o", hook.as_str())
}

impl Bridge {
    /// Loads two copies of the program and attaches them at `hook` on `a` and `b` (devices in
    /// `ns`), each redirecting to the other. Returns the bridge and how to redo it by hand.
    pub fn attach(ns: &NetNs, hook: Hook, a: &str, b: &str) -> Result<(Bridge, Recipe), NetError> {
        let (a, b, name) = (a.to_string(), b.to_string(), ns.name().to_string());
        ns.run(move || attach_here(hook, &name, &a, &b))?
    }

    /// Detaches both programs (inside `ns`) and unloads them.
    pub fn detach(mut self, ns: &NetNs) -> Result<(), NetError> {
        let attached = std::mem::take(&mut self.attached);
        let file = match ns.open() {
            Ok(f) => f,
            Err(e) => {
                std::mem::forget(attached);
                return Err(NetError::Io(e));
            }
        };
        std::thread::Builder::new()
            .name("ebpf-detach".into())
            .spawn(move || detach_in(&file, attached))?
            .join()
            .map_err(|_| NetError::Unexpected("eBPF detach thread panicked".into()))?
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        std::mem::forget(std::mem::take(&mut self.attached));
    }
}

fn detach_in(ns: &File, attached: Vec<Attached>) -> Result<(), NetError> {
    if let Err(e) = enter_fd(ns) {
        std::mem::forget(attached);
        return Err(NetError::Io(e));
    }
    let mut first_err = None;
    for mut a in attached {
        let r = match a.link {
            Link::Tc(id) => program::<SchedClassifier>(&mut a.ebpf, a.hook)
                .and_then(|p| p.detach(id).map_err(|e| step_error("detaching (tc)", &e))),
            Link::Xdp(id) => program::<Xdp>(&mut a.ebpf, a.hook)
                .and_then(|p| p.detach(id).map_err(|e| step_error("detaching (xdp)", &e))),
        };
        if let Err(e) = r {
            first_err.get_or_insert(e);
        }
        // Dropping the object closes the program's descriptor: the kernel unloads it.
        drop(a.ebpf);
    }
    first_err.map_or(Ok(()), Err)
}

/// Loads and attaches on the calling thread, which is inside the setup's namespace.
fn attach_here(hook: Hook, ns: &str, a: &str, b: &str) -> Result<(Bridge, Recipe), NetError> {
    let index_a = ifindex(a)?;
    let index_b = ifindex(b)?;
    let mut bridge = Bridge {
        attached: Vec::new(),
    };
    let mut recipe = Recipe {
        files: Vec::new(),
        lines: Vec::new(),
    };
    for (dev, peer, peer_index) in [(a, b, index_b), (b, a, index_a)] {
        let object = with_peer(OBJECT, peer_index)?;
        let mut ebpf = load(&object, hook)?;
        let link = match hook {
            Hook::Tc => {
                // EEXIST: the device already has one (the other program's device may share it).
                if let Err(e) = aya::programs::tc::qdisc_add_clsact(dev) {
                    if errno(&e) != Some(libc::EEXIST) {
                        return Err(step_error(&format!("adding the clsact qdisc to {dev}"), &e));
                    }
                }
                let p = program::<SchedClassifier>(&mut ebpf, hook)?;
                let opts = TcAttachOptions::Netlink(NlOptions::default());
                Link::Tc(
                    p.attach_with_options(dev, TcAttachType::Ingress, opts)
                        .map_err(|e| {
                            step_error(&format!("attaching at tc ingress of {dev}"), &e)
                        })?,
                )
            }
            Hook::Xdp => {
                let p = program::<Xdp>(&mut ebpf, hook)?;
                Link::Xdp(
                    p.attach(dev, XdpMode::Skb).map_err(|e| {
                        step_error(&format!("attaching as generic XDP on {dev}"), &e)
                    })?,
                )
            }
        };
        bridge.attached.push(Attached { ebpf, hook, link });
        let name = file_name(hook, dev, peer);
        recipe.lines.extend(by_hand(hook, ns, dev, &name));
        recipe.files.push((name, object));
    }
    Ok((bridge, recipe))
}

/// The `tc` or `ip` lines that attach the object file `file` (next to the script) on `dev`
/// in namespace `ns`.
fn by_hand(hook: Hook, ns: &str, dev: &str, file: &str) -> Vec<String> {
    let obj = format!("\"$(dirname \"$0\")/{file}\"");
    match hook {
        Hook::Tc => vec![
            format!("tc -n {ns} qdisc replace dev {dev} clsact"),
            format!(
                "tc -n {ns} filter add dev {dev} ingress bpf direct-action obj {obj} sec {}",
                hook.section()
            ),
        ],
        Hook::Xdp => vec![format!(
            "ip -n {ns} link set dev {dev} xdpgeneric obj {obj} sec {}",
            hook.section()
        )],
    }
}

fn ifindex(dev: &str) -> Result<u32, NetError> {
    let c = std::ffi::CString::new(dev).map_err(|e| NetError::Unexpected(e.to_string()))?;
    // SAFETY: `c` is a NUL-terminated string that lives across the call.
    let i = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if i == 0 {
        return Err(NetError::Unexpected(format!(
            "no device {dev} to attach to"
        )));
    }
    Ok(i)
}

/// Parses `object` and loads the `hook` program into the kernel.
fn load(object: &[u8], hook: Hook) -> Result<Ebpf, NetError> {
    let mut ebpf = Ebpf::load(object).map_err(|e| step_error("loading the program", &e))?;
    let r = match hook {
        Hook::Tc => program::<SchedClassifier>(&mut ebpf, hook)?.load(),
        Hook::Xdp => program::<Xdp>(&mut ebpf, hook)?.load(),
    };
    r.map_err(|e| step_error(&format!("loading the {} program", hook.as_str()), &e))?;
    Ok(ebpf)
}

fn program<'a, P>(ebpf: &'a mut Ebpf, hook: Hook) -> Result<&'a mut P, NetError>
where
    &'a mut P: TryFrom<&'a mut aya::programs::Program>,
{
    ebpf.program_mut(hook.program())
        .and_then(|p| p.try_into().ok())
        .ok_or_else(|| {
            NetError::Unexpected(format!("eBPF object has no {} program", hook.program()))
        })
}

/// The OS error number somewhere in `e`'s chain.
fn errno(e: &(dyn std::error::Error + 'static)) -> Option<i32> {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if let Some(n) = io.raw_os_error() {
                return Some(n);
            }
        }
        cur = err.source();
    }
    None
}

/// One line: the step, what the host lacks, and the OS's own word for it.
fn step_error(step: &str, e: &(dyn std::error::Error + 'static)) -> NetError {
    let n = errno(e);
    let missing = match n {
        Some(libc::EPERM) | Some(libc::EACCES) => {
            "not permitted: needs CAP_BPF and CAP_NET_ADMIN (run as root)"
        }
        Some(libc::ENOSYS) => "this kernel has no BPF syscall (CONFIG_BPF_SYSCALL)",
        Some(libc::EOPNOTSUPP) | Some(libc::ENOENT) if step.contains("clsact") => {
            "this kernel has no clsact qdisc (CONFIG_NET_SCH_INGRESS)"
        }
        Some(libc::EOPNOTSUPP) | Some(libc::ENOENT) if step.contains("tc ingress") => {
            "this kernel has no BPF classifier (CONFIG_NET_CLS_BPF)"
        }
        Some(libc::EINVAL) if step.starts_with("loading") => {
            "the kernel refuses the program (no JIT or verifier rejection)"
        }
        _ => "unexpected failure",
    };
    let os = n.map_or_else(
        || e.to_string().lines().next().unwrap_or_default().to_string(),
        |n| {
            let os = std::io::Error::from_raw_os_error(n).to_string();
            os.split(" (os error")
                .next()
                .unwrap_or_default()
                .to_string()
        },
    );
    NetError::Ebpf(format!("{step}: {missing} ({os})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_peer_lands_in_the_read_only_data() {
        let patched = with_peer(OBJECT, 0x0102_0304).unwrap();
        assert_eq!(patched.len(), OBJECT.len());
        let file = object::File::parse(&*patched).unwrap();
        let sym = file.symbol_by_name(PEER_SYMBOL).unwrap();
        let section = file.section_by_index(sym.section_index().unwrap()).unwrap();
        assert_eq!(section.name().unwrap(), ".rodata");
        let data = section.data().unwrap();
        let at = sym.address() as usize;
        assert_eq!(data[at..at + 4], 0x0102_0304u32.to_ne_bytes());
        // Only those four bytes differ.
        let diff = OBJECT.iter().zip(&patched).filter(|(a, b)| a != b).count();
        assert_eq!(diff, 4);
    }

    #[test]
    fn both_programs_are_in_their_sections() {
        let file = object::File::parse(OBJECT).unwrap();
        for hook in [Hook::Tc, Hook::Xdp] {
            let sym = file.symbol_by_name(hook.program()).unwrap();
            let section = file.section_by_index(sym.section_index().unwrap()).unwrap();
            assert_eq!(section.name().unwrap(), hook.section());
        }
    }

    #[test]
    fn by_hand_lines_load_the_file_next_to_the_script() {
        let tc = by_hand(Hook::Tc, "vmp-1-0", "tap0", "ebpf-tc-tap0-to-veth0.o");
        assert_eq!(tc[0], "tc -n vmp-1-0 qdisc replace dev tap0 clsact");
        assert_eq!(
            tc[1],
            "tc -n vmp-1-0 filter add dev tap0 ingress bpf direct-action obj \
             \"$(dirname \"$0\")/ebpf-tc-tap0-to-veth0.o\" sec classifier"
        );
        let xdp = by_hand(Hook::Xdp, "vmp-1-0", "veth0", "x.o");
        assert_eq!(
            xdp,
            ["ip -n vmp-1-0 link set dev veth0 xdpgeneric obj \"$(dirname \"$0\")/x.o\" sec xdp"]
        );
    }

    #[test]
    fn errors_name_what_is_missing() {
        let e = std::io::Error::from_raw_os_error(libc::EPERM);
        let s = step_error("loading the tc program", &e).to_string();
        assert!(s.contains("CAP_BPF") && !s.contains('\n'), "{s}");
        let e = std::io::Error::from_raw_os_error(libc::EOPNOTSUPP);
        let s = step_error("adding the clsact qdisc to tap0", &e).to_string();
        assert!(s.contains("CONFIG_NET_SCH_INGRESS"), "{s}");
        let s = step_error("attaching at tc ingress of tap0", &e).to_string();
        assert!(s.contains("CONFIG_NET_CLS_BPF"), "{s}");
        let e = std::io::Error::from_raw_os_error(libc::ENOSYS);
        let s = step_error("loading the xdp program", &e).to_string();
        assert!(s.contains("no BPF syscall"), "{s}");
    }
}
