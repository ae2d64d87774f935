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
