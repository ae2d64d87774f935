//! The guest on a real tap device, in a network namespace this test creates and removes: ARP,
//! ICMP ping, UDP and TCP echo; then thousands of malformed frames written onto the tap, after
//! which the guest must still answer and must not have reported an error or panicked.
//!
//! Needs root (network namespaces, tap devices, raw packet sockets), as the CI runner has.

mod support;

use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::os::fd::AsRawFd;
use std::process::Command;
use std::time::Duration;
use support::guest::*;

const HOST_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 77, 1);
const GUEST_IP: Ipv4Addr = Ipv4Addr::new(192, 168, 77, 2);
const TAP: &str = "vmprobe0";
/// QEMU's default MAC for the first NIC.
const GUEST_MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];

fn run(cmd: &[&str]) -> std::process::Output {
    let out = Command::new(cmd[0])
        .args(&cmd[1..])
        .output()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// A network namespace with a tap device at 192.168.77.1/24; removed on drop.
struct Netns {
    name: String,
}

impl Netns {
    fn new() -> Netns {
        // One namespace per test: tests of this binary run in parallel.
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("vmprobe-test-{}-{n}", std::process::id());
        run(&["ip", "netns", "add", &name]);
        let ns = Netns { name };
        run(&["ip", "-n", &ns.name, "link", "set", "lo", "up"]);
        run(&[
            "ip", "-n", &ns.name, "tuntap", "add", "dev", TAP, "mode", "tap",
        ]);
        run(&[
            "ip",
            "-n",
            &ns.name,
            "addr",
            "add",
            &format!("{HOST_IP}/24"),
            "dev",
            TAP,
        ]);
        run(&["ip", "-n", &ns.name, "link", "set", TAP, "up"]);
        ns
    }

    /// Runs `f` on a thread that has entered the namespace (network namespaces are per thread).
    fn enter<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let path = format!("/run/netns/{}", self.name);
        std::thread::spawn(move || {
            let ns = std::fs::File::open(&path).expect("open netns");
            // SAFETY: setns on a valid namespace fd only changes this thread's network namespace.
            let rc = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
            f()
        })
        .join()
        .expect("thread in netns")
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// A deterministic xorshift generator for the malformed frames.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn byte(&mut self) -> u8 {
        self.next() as u8
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.byte()).collect()
    }
    /// Fewer than `max` random bytes.
    fn some_bytes(&mut self, max: usize) -> Vec<u8> {
        let n = self.below(max);
        self.bytes(n)
    }
}

fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = data
        .chunks(2)
        .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn ethernet(dst: [u8; 6], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = dst.to_vec();
    f.extend([0x02, 0x00, 0x00, 0x77, 0x77, 0x01]);
    f.extend(ethertype.to_be_bytes());
    f.extend(payload);
    f
}

/// An IPv4 header (20 bytes, or more for IHL > 5) with a correct checksum unless `bad_sum`.
fn ipv4(
    rng: &mut Rng,
    protocol: u8,
    payload: &[u8],
    ihl: u8,
    total_len: Option<u16>,
    frag: u16,
    bad_sum: bool,
) -> Vec<u8> {
    let header_len = usize::from(ihl.max(5)) * 4;
    let mut h = vec![0u8; header_len];
    h[0] = 0x40 | (ihl & 0xf);
    let total = total_len.unwrap_or((header_len + payload.len()) as u16);
    h[2..4].copy_from_slice(&total.to_be_bytes());
    h[4..6].copy_from_slice(&(rng.next() as u16).to_be_bytes());
    h[6..8].copy_from_slice(&frag.to_be_bytes());
    h[8] = 64;
    h[9] = protocol;
    h[12..16].copy_from_slice(&HOST_IP.octets());
    h[16..20].copy_from_slice(&GUEST_IP.octets());
    for b in &mut h[20..] {
        *b = rng.byte();
    }
    let sum = checksum(&h);
    h[10..12].copy_from_slice(&(if bad_sum { sum ^ 0x5a5a } else { sum }).to_be_bytes());
    h.extend(payload);
    h
}

/// One malformed (or merely strange) frame of a randomly chosen kind.
fn malformed_frame(rng: &mut Rng) -> Vec<u8> {
    let dst = if rng.below(4) == 0 {
        [0xff; 6]
    } else {
        GUEST_MAC
    };
    match rng.below(12) {
        // Truncated Ethernet and random ethertypes with random payloads.
        0 => {
            let n = 1 + rng.below(14);
            rng.bytes(n)
        }
        1 => {
            let t = rng.next() as u16;
            let p = rng.some_bytes(1500);
            ethernet(dst, t, &p)
        }
        // IPv4: truncated header, bad IHL, bad total length, bad checksum.
        2 => {
            let p = rng.some_bytes(20);
            ethernet(dst, 0x0800, &p)
        }
        3 => {
            let ihl = rng.below(16) as u8;
            let p = rng.some_bytes(100);
            let ip = ipv4(rng, 17, &p, ihl, None, 0, false);
            ethernet(dst, 0x0800, &ip)
        }
        4 => {
            let p = rng.some_bytes(200);
            let total = Some(rng.next() as u16);
            let bad = rng.below(2) == 0;
            let protocol = rng.byte();
            let ip = ipv4(rng, protocol, &p, 5, total, 0, bad);
            ethernet(dst, 0x0800, &ip)
        }
        // Fragments of UDP to the echo port.
        5 => {
            let mut udp = vec![0x30, 0x39, 0x00, 0x07];
            udp.extend(((8 + 600) as u16).to_be_bytes());
            udp.extend([0, 0]);
            udp.extend(rng.some_bytes(600));
            let frag = if rng.below(2) == 0 {
                0x2000
            } else {
                0x2000 | rng.below(0x1fff) as u16
            };
            let ip = ipv4(rng, 17, &udp, 5, None, frag, false);
            ethernet(dst, 0x0800, &ip)
        }
        // UDP to 7 with lying length fields and bad checksums.
        6 => {
            let mut udp = vec![0x30, 0x39, 0x00, 0x07];
            udp.extend((rng.next() as u16 % 64).to_be_bytes());
            udp.extend((rng.next() as u16 | 1).to_be_bytes());
            udp.extend(rng.some_bytes(64));
            let ip = ipv4(rng, 17, &udp, 5, None, 0, false);
            ethernet(dst, 0x0800, &ip)
        }
        // TCP to 7 and 19 with random flags, data offsets and options.
        7 | 8 => {
            let mut tcp = vec![0x30, 0x39, 0x00, if rng.below(2) == 0 { 7 } else { 19 }];
            tcp.extend(rng.bytes(8));
            tcp.push(rng.byte() & 0xf0);
            tcp.push(rng.byte());
            tcp.extend(rng.bytes(6));
            tcp.extend(rng.some_bytes(60));
            let ip = ipv4(rng, 6, &tcp, 5, None, 0, false);
            ethernet(dst, 0x0800, &ip)
        }
        // ICMP: truncated echo requests, bad checksums, random types.
        9 => {
            let mut icmp = vec![rng.below(2) as u8 * 8, rng.byte(), rng.byte(), rng.byte()];
            icmp.extend(rng.some_bytes(100));
            let ip = ipv4(rng, 1, &icmp, 5, None, 0, false);
            ethernet(dst, 0x0800, &ip)
        }
        // ARP garbage: wrong lengths, random opcodes, truncated.
        10 => {
            let mut arp = vec![
                0x00,
                0x01,
                0x08,
                0x00,
                rng.byte(),
                rng.byte(),
                0x00,
                rng.byte(),
            ];
            arp.extend(rng.some_bytes(40));
            ethernet(dst, 0x0806, &arp)
        }
        // IPv6 garbage.
        _ => {
            let mut p = vec![0x60];
            p.extend(rng.some_bytes(120));
            ethernet([0x33, 0x33, 0, 0, 0, 1], 0x86dd, &p)
        }
    }
}

/// Writes `count` malformed frames onto the tap from inside the namespace; returns how many the
/// kernel accepted.
fn flood(count: usize) -> usize {
    let ifname = std::ffi::CString::new(TAP).unwrap();
    // SAFETY: a plain socket(2) call; the fd is closed below.
    let fd = unsafe { libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0) };
    assert!(
        fd >= 0,
        "packet socket: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: `ifname` is a valid C string.
    let ifindex = unsafe { libc::if_nametoindex(ifname.as_ptr()) };
    assert!(ifindex > 0);
    // SAFETY: sockaddr_ll is plain data; zero is a valid starting value.
    let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
    addr.sll_family = libc::AF_PACKET as u16;
    addr.sll_ifindex = ifindex as i32;
    addr.sll_halen = 6;
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let mut sent = 0;
    for i in 0..count {
        let frame = malformed_frame(&mut rng);
        // SAFETY: `frame` and `addr` are valid for the lengths given.
        let rc = unsafe {
            libc::sendto(
                fd,
                frame.as_ptr().cast(),
                frame.len(),
                0,
                (&raw const addr).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            )
        };
        if rc >= 0 {
            sent += 1;
        }
        if i % 256 == 255 {
            // Let QEMU's tap queue drain now and then; the point is bad frames, not lost ones.
            std::thread::sleep(Duration::from_millis(5));
        }
    }
    // SAFETY: `fd` is ours.
    unsafe { libc::close(fd) };
    sent
}

/// One ICMP echo request over a raw socket (the machine has no `ping`); checks the reply's
/// identifier, sequence number and payload.
fn ping(target: Ipv4Addr, seq: u16, len: usize) {
    // SAFETY: a plain socket(2) call; the fd is closed below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_ICMP) };
    assert!(
        fd >= 0,
        "raw ICMP socket: {}",
        std::io::Error::last_os_error()
    );
    let id = std::process::id() as u16;
    let data = payload(len, seq as u8);
    let mut request = vec![8, 0, 0, 0];
    request.extend(id.to_be_bytes());
    request.extend(seq.to_be_bytes());
    request.extend(&data);
    let sum = checksum(&request);
    request[2..4].copy_from_slice(&sum.to_be_bytes());
    let addr = libc::sockaddr_in {
        sin_family: libc::AF_INET as u16,
        sin_port: 0,
        sin_addr: libc::in_addr {
            s_addr: u32::from_ne_bytes(target.octets()),
        },
        sin_zero: [0; 8],
    };
    let timeout = libc::timeval {
        tv_sec: 2,
        tv_usec: 0,
    };
    let mut answered = false;
    // SAFETY: all pointers are valid for the lengths given; the fd is ours.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&raw const timeout).cast(),
            16,
        );
        'attempts: for _ in 0..3 {
            let rc = libc::sendto(
                fd,
                request.as_ptr().cast(),
                request.len(),
                0,
                (&raw const addr).cast(),
                16,
            );
            assert!(rc >= 0, "send ICMP: {}", std::io::Error::last_os_error());
            let mut buf = [0u8; 2048];
            loop {
                let n = libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0);
                if n < 0 {
                    continue 'attempts;
                }
                let packet = &buf[..n as usize];
                let icmp = &packet[usize::from(packet[0] & 0xf) * 4..];
                if packet[12..16] == target.octets()
                    && icmp[0] == 0
                    && icmp[4..6] == id.to_be_bytes()
                    && icmp[6..8] == seq.to_be_bytes()
                {
                    assert_eq!(&icmp[8..], &data[..], "ICMP echo payload differs");
                    answered = true;
                    break 'attempts;
                }
            }
        }
        libc::close(fd);
    }
    assert!(
        answered,
        "no ICMP echo reply from {target} (seq {seq}, {len} bytes)"
    );
}

fn check_answers(ns: &Netns, qemu: &Qemu) {
    ns.enter(|| {
        for (seq, len) in [(1u16, 0usize), (2, 56), (3, 1472)] {
            ping(GUEST_IP, seq, len);
        }
        let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).unwrap();
        udp_echo_on(
            &socket,
            SocketAddr::V4(SocketAddrV4::new(GUEST_IP, 7)),
            UDP_SIZES,
        );
        tcp_echo(SocketAddr::V4(SocketAddrV4::new(GUEST_IP, 7)), 50_000);
    });
    let console = qemu.console();
    assert!(
        !console.contains("vmprobe: error"),
        "guest reported an error:\n{console}"
    );
}

#[test]
#[ignore = "needs root: a network namespace, a tap device and raw packet sockets"]
fn tap_in_a_namespace_arp_ping_echo_and_malformed_flood() {
    let ns = Netns::new();
    let mut qemu_args = args("-M virt,gic-version=3 -cpu max -m 128M -kernel");
    qemu_args.push(guest_image().display().to_string());
    qemu_args.extend(args(&format!(
        "-netdev tap,id=n0,ifname={TAP},script=no,downscript=no -device virtio-net-pci,romfile=,netdev=n0"
    )));
    qemu_args.extend(["-append".into(), format!("ip={GUEST_IP}/24 gw={HOST_IP}")]);
    let qemu = Qemu::spawn_with_prefix(&["ip", "netns", "exec", &ns.name], &qemu_args);
    let ready = qemu.wait_ready();
    assert!(
        ready.starts_with(&format!(
            "vmprobe: ready ip={GUEST_IP}/24 mode=irq gic=v3 transport=pci"
        )),
        "{ready}"
    );

    check_answers(&ns, &qemu);
    // The guest answered ARP: the namespace knows its MAC.
    let neigh = run(&["ip", "-n", &ns.name, "neigh", "show", &GUEST_IP.to_string()]);
    let neigh = String::from_utf8_lossy(&neigh.stdout).to_string();
    assert!(
        neigh.contains("52:54:00:12:34:56"),
        "no ARP entry for the guest: {neigh:?}"
    );

    let sent = ns.enter(|| flood(4000));
    assert!(sent > 3500, "only {sent} malformed frames reached the tap");
    check_answers(&ns, &qemu);
}

/// A DHCP server for the namespace's link, just enough for one client: it offers and acknowledges
/// `GUEST_IP` with `HOST_IP` as server and router. Stops when the returned flag is set.
fn dhcp_server(ns: &Netns) -> std::sync::Arc<std::sync::atomic::AtomicBool> {
    use std::sync::atomic::{AtomicBool, Ordering};
    let socket = ns.enter(|| {
        let socket = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 67)).expect("bind DHCP server port");
        socket.set_broadcast(true).unwrap();
        let dev = std::ffi::CString::new(TAP).unwrap();
        // SAFETY: setsockopt with a valid fd and a NUL-terminated device name of the given length.
        let rc = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_BINDTODEVICE,
                dev.as_ptr().cast(),
                dev.as_bytes_with_nul().len() as u32,
            )
        };
        assert_eq!(
            rc,
            0,
            "SO_BINDTODEVICE: {}",
            std::io::Error::last_os_error()
        );
        socket
    });
    socket
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let done = stop.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 1500];
        while !done.load(Ordering::Relaxed) {
            let Ok(n) = socket.recv(&mut buf) else {
                continue;
            };
            let request = &buf[..n];
            if n < 240 || request[0] != 1 || request[236..240] != [99, 130, 83, 99] {
                continue;
            }
            let mut options = &request[240..];
            let mut kind = None;
            while let [code, len, rest @ ..] = options {
                if *code == 255 || rest.len() < usize::from(*len) {
                    break;
                }
                if *code == 53 && *len == 1 {
                    kind = Some(rest[0]);
                }
                options = &rest[usize::from(*len)..];
            }
            let answer = match kind {
                Some(1) => 2, // DISCOVER -> OFFER
                Some(3) => 5, // REQUEST -> ACK
                _ => continue,
            };
            let mut reply = vec![0u8; 240];
            reply[..4].copy_from_slice(&[2, 1, 6, 0]);
            reply[4..8].copy_from_slice(&request[4..8]); // xid
            reply[16..20].copy_from_slice(&GUEST_IP.octets()); // yiaddr
            reply[20..24].copy_from_slice(&HOST_IP.octets()); // siaddr
            reply[28..44].copy_from_slice(&request[28..44]); // chaddr
            reply[236..240].copy_from_slice(&[99, 130, 83, 99]);
            reply.extend([53, 1, answer]);
            reply.extend([54, 4]);
            reply.extend(HOST_IP.octets());
            reply.extend([51, 4, 0, 0, 0x0e, 0x10]); // one hour
            reply.extend([1, 4, 255, 255, 255, 0]);
            reply.extend([3, 4]);
            reply.extend(HOST_IP.octets());
            reply.push(255);
            let _ = socket.send_to(&reply, (Ipv4Addr::BROADCAST, 68));
        }
    });
    stop
}

/// A host in the namespace sends a UDP echo every 5 ms from QEMU's start: its kernel's first ARP
/// request for the guest goes unanswered, and without the guest's announcement it would wait
/// out its one-second neighbour retransmit. The answers must come right after the ready line,
/// with a static address (`append`) or a DHCP lease.
fn tap_early_client(append: &str) {
    let ns = Netns::new();
    let dhcp = (append == "dhcp").then(|| dhcp_server(&ns));
    let socket = ns.enter(|| UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).unwrap());
    let pinger = EarlyPinger::start(socket, SocketAddr::V4(SocketAddrV4::new(GUEST_IP, 7)));
    let mut qemu_args = args("-M virt,gic-version=3 -cpu max -m 128M -kernel");
    qemu_args.push(guest_image().display().to_string());
    qemu_args.extend(args(&format!(
        "-netdev tap,id=n0,ifname={TAP},script=no,downscript=no -device virtio-net-pci,romfile=,netdev=n0"
    )));
    qemu_args.extend(["-append".into(), append.to_string()]);
    let qemu = Qemu::spawn_with_prefix(&["ip", "netns", "exec", &ns.name], &qemu_args);
    let line = qemu.wait_ready();
    let ready = std::time::Instant::now();
    assert!(
        line.starts_with(&format!("vmprobe: ready ip={GUEST_IP}/24 ")),
        "{line}"
    );
    let answered = pinger.answered_soon_after(ready, &qemu);
    if let Some(stop) = dhcp {
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
    }
    answered.unwrap_or_else(|e| panic!("{e}"));
}

#[test]
#[ignore = "needs root: a network namespace and a tap device"]
fn tap_early_client_answered_right_after_ready_static_address() {
    tap_early_client(&format!("ip={GUEST_IP}/24 gw={HOST_IP}"));
}

#[test]
#[ignore = "needs root: a network namespace and a tap device"]
fn tap_early_client_answered_right_after_ready_dhcp() {
    tap_early_client("dhcp");
}
