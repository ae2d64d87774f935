//! The bare-metal image: bring the platform up from the device tree, find virtio-net, start the
//! network services and serve forever, sleeping in WFI (`mode=irq`) or busy-polling (`mode=poll`).
#![cfg_attr(target_os = "none", no_std, no_main)]
#![deny(unsafe_op_in_unsafe_fn, clippy::undocumented_unsafe_blocks)]

#[cfg(not(target_os = "none"))]
fn main() {
    eprintln!("vmprobe-guest is a bare-metal aarch64 image: build it with scripts/build-guest.sh");
    std::process::exit(2);
}

#[cfg(target_os = "none")]
extern crate alloc;

#[cfg(target_os = "none")]
mod arch;

#[cfg(target_os = "none")]
mod probe {
    use crate::arch::bench::BenchTargets;
    use crate::arch::console::println;
    use crate::arch::counter::{self, GenericCounter};
    use crate::arch::nic_irq::{self, NicInterrupts};
    use crate::arch::platform::Machine;
    use crate::arch::{console, gic, hal::ProbeHal, heap, mmu, power, smp};
    use core::convert::Infallible;
    use smoltcp::time::{Duration, Instant};
    use vmprobe_guest::config::{BenchSet, Config, ConfigError, Mode};
    use vmprobe_guest::dtb::{DtbError, Irq, Platform};
    use vmprobe_guest::kvm_ptp::{self, KvmPtp};
    use vmprobe_guest::net::discover::{self, DiscoverError};
    use vmprobe_guest::net::phy::PhyError;
    use vmprobe_guest::net::{InterruptPath, QueueRings, TransportKind, VirtioNic, VirtioPhy};
    use vmprobe_guest::probe::self_report::{self, SelfReport};
    use vmprobe_guest::services::announce::Gateway;
    use vmprobe_guest::services::Services;
    use vmprobe_proto::GuestMode;

    /// A reason to give up, printed as `vmprobe: error: ...` before powering off.
    #[derive(Debug, thiserror::Error)]
    enum Fatal {
        #[error("{0}")]
        Dtb(#[from] DtbError),
        #[error("{0}")]
        Map(#[from] mmu::MapError),
        #[error("console: {0}")]
        Console(#[from] vmprobe_guest::ns16550::Ns16550Error),
        #[error("{0}")]
        Gic(#[from] gic::GicError),
        #[error("boot arguments: {0}")]
        Config(#[from] ConfigError),
        #[error("{0}")]
        Discover(#[from] DiscoverError),
        #[error("{0}")]
        Phy(#[from] PhyError),
        #[error("{0}")]
        NicIrq(#[from] nic_irq::NicIrqError),
        #[error("heap of {have} bytes is smaller than the {need} bytes the probe needs")]
        HeapTooSmall { have: usize, need: usize },
    }

    type Phy =
        VirtioPhy<ProbeHal, virtio_drivers::transport::SomeTransport<'static>, GenericCounter>;

    /// Entered from the boot code with the MMU on and the image relocated, on the boot stack,
    /// with the DTB address, the exception level the image was entered at and where it runs.
    #[unsafe(no_mangle)]
    extern "C" fn rust_start(dtb: usize, entry_el: u64, image: usize) -> ! {
        heap::init();
        let Err(fatal) = run(dtb, entry_el, image);
        println!("vmprobe: error: {fatal}");
        power::off()
    }

    /// The device tree blob the loader passed, if it looks like one. Its size may exceed the
    /// boot protocol's 2 MiB (QEMU's `-dtb` pads a dumped tree past it) as long as it lies
    /// within the 1 GiB block the boot page table maps for it.
    fn device_tree(dtb: usize) -> Option<&'static [u8]> {
        if dtb == 0 || !dtb.is_multiple_of(8) || dtb >> 39 != 0 {
            return None;
        }
        // SAFETY: the boot protocol passes an 8-byte aligned DTB, and the boot page table maps
        // the 1 GiB block it starts in; its header gives the magic and total size, and nothing
        // writes to it.
        unsafe {
            let header = core::slice::from_raw_parts(dtb as *const u8, 8);
            let magic = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
            let size = u32::from_be_bytes([header[4], header[5], header[6], header[7]]) as usize;
            let mapped = size >= 8 && dtb >> 30 == (dtb + size - 1) >> 30;
            (magic == 0xd00d_feed && mapped)
                .then(|| core::slice::from_raw_parts(dtb as *const u8, size))
        }
    }

    fn run(dtb: usize, entry_el: u64, image: usize) -> Result<Infallible, Fatal> {
        // Without a device tree there is no console to say so on: park.
        let Some(blob) = device_tree(dtb) else { park() };
        let platform = match Platform::parse(blob) {
            Ok(platform) => platform,
            Err(e) => report_without_platform(blob, e.into()),
        };
        power::init(platform.psci);
        smp::init(platform.cpu_mpidrs.clone());
        if let Err(e) = mmu::init(&platform) {
            report_without_platform(blob, e.into());
        }
        if let Some(uart) = platform.uart {
            // SAFETY: the UART from the DTB is now mapped as device memory; only the console
            // uses it.
            unsafe { console::init(uart)? };
        }

        println!(
            "vmprobe: boot: entered at EL{entry_el}, image at {image:#x}, dtb at {dtb:#x}, console up {} us after the counter's start",
            micros_since_start()
        );
        let clock = kvm_ptp(entry_el);
        match &clock {
            Ok(_) => println!("vmprobe: kvm-ptp: available"),
            Err(reason) => println!("vmprobe: kvm-ptp: absent: {reason}"),
        }
        let parsed = Config::parse(platform.bootargs.as_deref().unwrap_or(""))?;
        for token in &parsed.ignored {
            println!("vmprobe: note: ignoring boot argument {token:?}");
        }
        if let Some(unknown) = &parsed.unknown_bench {
            println!("vmprobe: note: {unknown}");
        }
        let config = parsed.config;

        // SAFETY: the GIC frames are mapped as device memory and used only through `gic`.
        unsafe { gic::init(&platform.gic, platform.cpu_count)? };

        // Services, plus page tables, virtqueues and packet buffers.
        let need = vmprobe_guest::services::HEAP_BYTES + (1 << 20);
        if heap::size() < need {
            return Err(Fatal::HeapTooSmall {
                have: heap::size(),
                need,
            });
        }
        let timer = Irq {
            intid: platform.virtual_timer_intid,
            trigger: platform.virtual_timer_trigger,
        };
        let mode = match config.mode {
            Mode::Irq => GuestMode::Irq,
            Mode::Poll => GuestMode::Poll,
        };
        let nic = match find_nic(&platform) {
            Ok(nic) => nic,
            Err(fatal) => {
                // Nothing to serve on, but the benchmarks that need no NIC still report: on a
                // board without virtio-net they are all there is.
                if !config.bench.is_empty() {
                    let targets = BenchTargets {
                        nic: None,
                        nic_irqs: NicInterrupts::none(),
                        timer,
                        irq_mode: false,
                        cpu_count: platform.cpu_count,
                    };
                    let rings = alloc::rc::Rc::new(QueueRings::default());
                    let clock = clock.map_err(|a| a.code());
                    let mut machine = Machine::new(mode, rings, targets, clock);
                    self_report(&mut machine, config.bench, None);
                }
                return Err(fatal);
            }
        };
        let (kind, nic_registers) = (nic.kind, nic.registers);
        let sources = nic_irq::NicIrqSources {
            kind,
            wired: nic.irq,
            msix: nic.msix,
            msi: platform.pci.as_ref().and_then(|p| p.msi.as_ref()),
            gic: platform.gic,
        };
        let (nic_irqs, vectors) = nic_irq::setup(&sources, config.mode)?;
        // SAFETY: `ProbeHal` maps DMA memory at identical virtual and physical addresses.
        let mut phy: Phy =
            unsafe { VirtioPhy::new(nic.transport, nic.doorbells, vectors, config.mode)? };
        if config.mode == Mode::Irq {
            gic::enable(timer.intid, timer.trigger)?;
        }

        let mac = phy.mac();
        let mut services = Services::new(&config.net, mac, &mut phy, now());
        let targets = BenchTargets {
            nic: nic_registers,
            nic_irqs,
            timer,
            irq_mode: config.mode == Mode::Irq,
            cpu_count: platform.cpu_count,
        };
        let mut machine = Machine::new(mode, phy.rings(), targets, clock.map_err(|a| a.code()));
        let ready = ReadyLine {
            config,
            gic: platform.gic.version(),
            kind,
            interrupt: nic_irqs.path,
        };
        match config.mode {
            Mode::Irq => serve_irq(
                &mut services,
                &mut phy,
                &mut machine,
                ready,
                &nic_irqs,
                platform.virtual_timer_intid,
            ),
            Mode::Poll => serve_poll(&mut services, &mut phy, &mut machine, ready),
        }
    }

    /// The device tree cannot be run on (`fatal`): if it names a console, map just that and say
    /// what is wrong on it, then power off if PSCI was found (park otherwise).
    fn report_without_platform(blob: &'static [u8], fatal: Fatal) -> ! {
        let dtb = vmprobe_guest::dtb::Region {
            base: blob.as_ptr() as u64,
            size: blob.len() as u64,
        };
        if let Some(uart) = vmprobe_guest::dtb::console(blob) {
            if mmu::init_for_console(dtb, uart.region).is_ok() {
                // SAFETY: the UART is now mapped as device memory; only the console uses it.
                if unsafe { console::init(uart) }.is_ok() {
                    println!("vmprobe: error: {fatal}");
                }
            }
        }
        power::off()
    }

    /// KVM's PTP service over the PSCI conduit, unless the probe itself owns EL2.
    fn kvm_ptp(entry_el: u64) -> Result<KvmPtp<power::SmcccConduit>, kvm_ptp::Absent> {
        if entry_el == 2 {
            return Err(kvm_ptp::Absent::OwnsEl2);
        }
        let conduit = power::conduit().ok_or(kvm_ptp::Absent::NoConduit)?;
        KvmPtp::discover(power::SmcccConduit(conduit))
    }

    fn find_nic(platform: &Platform) -> Result<VirtioNic, Fatal> {
        // SAFETY: every virtio-mmio slot is mapped as device memory and nothing else uses them.
        if let Some(nic) = unsafe { discover::find_mmio(&platform.virtio_mmio) } {
            return Ok(nic);
        }
        if let Some(pci) = &platform.pci {
            // SAFETY: ECAM and the 32-bit window are mapped as device memory; `ProbeHal` is identity.
            if let Some(nic) = unsafe { discover::find_pci::<ProbeHal>(pci)? } {
                return Ok(nic);
            }
        }
        Err(DiscoverError::NotFound.into())
    }

    /// The one `vmprobe: ready` line, printed once the services have announced their address.
    struct ReadyLine {
        config: Config,
        gic: &'static str,
        kind: TransportKind,
        interrupt: InterruptPath,
    }

    impl ReadyLine {
        /// Prints the line the first time the services have announced their address (a peer
        /// that has been waiting is answered from then on); true once printed. With `bench=`,
        /// the micro-benchmarks run first, and their results and the boot time to this point
        /// (their own run excluded) are printed before it.
        fn announce(&self, services: &Services, machine: &mut Machine, printed: &mut bool) {
            if *printed {
                return;
            }
            if let Some(announced) = services.announced(now()) {
                if let Gateway::Silent(gw) = announced.gateway {
                    println!("vmprobe: note: gateway {gw} did not answer ARP");
                }
                if !self.config.bench.is_empty() {
                    self_report(machine, self.config.bench, Some(micros_since_start()));
                }
                let ip = announced.address;
                println!(
                    "vmprobe: ready ip={ip} mode={} gic={} transport={} cntfrq={} interrupt={}",
                    self.config.mode.as_str(),
                    self.gic,
                    self.kind.as_str(),
                    counter::frequency(),
                    self.interrupt.as_str()
                );
                println!(
                    "vmprobe: boot: ready {} us after the counter's start",
                    micros_since_start()
                );
                *printed = true;
            }
        }
    }

    /// Runs the boot-time micro-benchmarks and prints their results block, with the boot time
    /// when the probe got as far as serving (`ready`, in us).
    fn self_report(machine: &mut Machine, tests: BenchSet, ready: Option<u64>) {
        let mut samples = alloc::vec![0u64; self_report::ITERATIONS];
        let mut report = SelfReport::run(machine, tests, &mut samples);
        if let Some(ready) = ready {
            report.boot(ready);
        }
        for line in report.lines() {
            println!("{line}");
        }
    }

    /// Microseconds since the virtual counter's zero (the machine's start under QEMU).
    fn micros_since_start() -> u64 {
        (u128::from(counter::now()) * 1_000_000 / u128::from(counter::frequency().max(1))) as u64
    }

    /// smoltcp time from the generic counter.
    fn now() -> Instant {
        let micros =
            u128::from(counter::now()) * 1_000_000 / u128::from(counter::frequency().max(1));
        Instant::from_micros(micros as i64)
    }

    fn ticks_after(delay: Duration) -> u64 {
        let ticks = u128::from(delay.total_micros()) * u128::from(counter::frequency()) / 1_000_000;
        counter::now().saturating_add(ticks.min(u128::from(u64::MAX / 2)) as u64)
    }

    /// Busy loop; the device was told never to interrupt and its line is not enabled at the GIC.
    fn serve_poll(
        services: &mut Services,
        phy: &mut Phy,
        machine: &mut Machine,
        ready: ReadyLine,
    ) -> ! {
        let mut printed = false;
        loop {
            machine.counters.polls += 1;
            services.poll(now(), phy, machine);
            ready.announce(services, machine, &mut printed);
            if machine.power_off_requested() {
                power_off_after_transmit(phy);
            }
        }
    }

    /// The host asked for a power-off over the probe protocol and its acknowledgement has been
    /// handed to the device: wait (at most 100 ms) until the device has sent every queued frame,
    /// then PSCI SYSTEM_OFF.
    fn power_off_after_transmit(phy: &mut Phy) -> ! {
        let deadline = ticks_after(Duration::from_millis(100));
        while !phy.transmit_idle() && counter::now() < deadline {
            core::hint::spin_loop();
        }
        println!("vmprobe: powering off as the host asked");
        power::off()
    }

    /// Poll until idle, then sleep until the NIC's receive interrupt or the timer smoltcp asks for.
    fn serve_irq(
        services: &mut Services,
        phy: &mut Phy,
        machine: &mut Machine,
        ready: ReadyLine,
        nic: &NicInterrupts,
        timer: u32,
    ) -> ! {
        let mut printed = false;
        loop {
            let t = now();
            machine.counters.polls += 1;
            let busy = services.poll(t, phy, machine);
            ready.announce(services, machine, &mut printed);
            if machine.power_off_requested() {
                power_off_after_transmit(phy);
            }
            if busy {
                continue;
            }
            match services.poll_delay(t) {
                Some(d) if d == Duration::ZERO => continue,
                Some(d) => counter::arm_timer(ticks_after(d)),
                None => counter::disarm_timer(),
            }
            if !phy.prepare_to_sleep() {
                continue;
            }
            machine.counters.idle_waits += 1;
            gic::wait_for_interrupt();
            phy.woke();
            match gic::take_pending() {
                Some((intid, entered)) => {
                    let number = gic::number(intid);
                    if nic.is_nic(number) {
                        machine.counters.irqs += 1;
                        if nic.is_receive(number) {
                            phy.interrupted_at(entered);
                        }
                        if nic.wired() {
                            phy.ack_interrupt();
                        }
                    } else if intid == timer {
                        counter::disarm_timer();
                    }
                    gic::end(intid);
                }
                None => machine.counters.spurious_irqs += 1,
            }
        }
    }

    fn park() -> ! {
        loop {
            aarch64_cpu::asm::wfe();
        }
    }

    #[panic_handler]
    fn panic(info: &core::panic::PanicInfo) -> ! {
        match info.location() {
            Some(l) => console::emergency_println(format_args!(
                "vmprobe: error: panic at {}:{}:{}: {}",
                l.file(),
                l.line(),
                l.column(),
                info.message()
            )),
            None => console::emergency_println(format_args!(
                "vmprobe: error: panic: {}",
                info.message()
            )),
        }
        power::off()
    }
}
