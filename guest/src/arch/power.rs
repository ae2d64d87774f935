//! PSCI power-off over the conduit the device tree names.

use super::console;
use spin::Once;
use vmprobe_guest::dtb::PsciConduit;

static CONDUIT: Once<PsciConduit> = Once::new();

/// Records the PSCI conduit from the device tree.
pub fn init(conduit: Option<PsciConduit>) {
    if let Some(conduit) = conduit {
        CONDUIT.call_once(|| conduit);
    }
}

/// The PSCI conduit the device tree named, if any.
pub fn conduit() -> Option<PsciConduit> {
    CONDUIT.get().copied()
}

/// SMC32 calls over the PSCI conduit, for the SMCCC services beside PSCI.
pub struct SmcccConduit(pub PsciConduit);

impl vmprobe_guest::kvm_ptp::Conduit for SmcccConduit {
    fn call(&mut self, function: u32, [a1, a2, a3]: [u32; 3]) -> [u32; 4] {
        use smccc::Call;
        let args = [a1, a2, a3, 0, 0, 0, 0];
        let [r0, r1, r2, r3, ..] = match self.0 {
            PsciConduit::Hvc => smccc::Hvc::call32(function, args),
            PsciConduit::Smc => smccc::Smc::call32(function, args),
        };
        [r0, r1, r2, r3]
    }
}

/// Powers the machine off (PSCI SYSTEM_OFF); parks the CPU if that is impossible.
pub fn off() -> ! {
    let result = match CONDUIT.get() {
        Some(PsciConduit::Hvc) => smccc::psci::system_off::<smccc::Hvc>(),
        Some(PsciConduit::Smc) => smccc::psci::system_off::<smccc::Smc>(),
        None => {
            console::emergency_println(format_args!("vmprobe: no PSCI to power off; halting"));
            park()
        }
    };
    console::emergency_println(format_args!(
        "vmprobe: power-off failed ({result:?}); halting"
    ));
    park()
}

fn park() -> ! {
    loop {
        aarch64_cpu::asm::wfi();
    }
}
