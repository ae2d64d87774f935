//! Field lookup in an event's details.
//!
//! tracefs prints `key=value` pairs; a value ends where the next ` key=` starts (so command
//! names with spaces such as `CPU 0/TCG` survive). trace-cmd's sched plugin prints its own
//! forms, which are mapped onto the tracepoint's field names here so one path file works on
//! both formats, as are arm64 KVM tracepoints that print `Label: value`:
//!
//! ```text
//! sched_switch:  prev:15 [120] W ==> next:0 [120]     (prev_comm, prev_pid, prev_prio, prev_state, next_*)
//! sched_wakeup:  comm:15 [120] CPU:001                (comm, pid, prio, target_cpu)
//! vgic_update_irq_pending:  VCPU: 0, IRQ 81, level: 1 (vcpu_id, irq, level)
//! ```

/// The value of field `key` in `details` of event `event`, if present.
pub fn field<'a>(event: &str, details: &'a str, key: &str) -> Option<&'a str> {
    if let Some(v) = key_value(details, key) {
        return Some(v);
    }
    match event {
        "sched_switch" => sched_switch_plugin(details, key),
        "sched_wakeup" | "sched_waking" | "sched_wakeup_new" => sched_wakeup_plugin(details, key),
        "vgic_update_irq_pending" | "kvm_timer_update_irq" => vcpu_irq_level(details, key),
        _ => None,
    }
}

/// Generic `key=value` lookup: finds each `=` and compares the token before it.
fn key_value<'a>(details: &'a str, key: &str) -> Option<&'a str> {
    let b = details.as_bytes();
    let k = key.as_bytes();
    let mut from = 0;
    while let Some(off) = memchr::memchr(b'=', &b[from..]) {
        let eq = from + off;
        if eq >= k.len() && &b[eq - k.len()..eq] == k {
            let at = eq - k.len();
            if at == 0 || b[at - 1].is_ascii_whitespace() {
                let vend = value_end(b, eq + 1);
                return Some(details[eq + 1..vend].trim_ascii_end());
            }
        }
        from = eq + 1;
    }
    None
}

/// A value runs until white space followed by `ident=` or `==>`, or the end.
fn value_end(b: &[u8], start: usize) -> usize {
    let mut i = start;
    while i < b.len() {
        if b[i].is_ascii_whitespace() {
            let mut j = i + 1;
            while j < b.len() && b[j].is_ascii_whitespace() {
                j += 1;
            }
            if b[j..].starts_with(b"==>") {
                return i;
            }
            let mut k = j;
            while k < b.len() && (b[k].is_ascii_alphanumeric() || b[k] == b'_') {
                k += 1;
            }
            if k > j && k < b.len() && b[k] == b'=' {
                return i;
            }
            i = j;
        } else {
            i += 1;
        }
    }
    b.len()
}

/// `comm:pid [prio]` with an optional trailing part; comm may contain spaces and colons.
fn comm_pid_prio(s: &str) -> Option<(&str, &str, &str, &str)> {
    let s = s.trim();
    let open = s.find(" [")?;
    let close = open + s[open..].find(']')?;
    let (who, prio, tail) = (&s[..open], &s[open + 2..close], s[close + 1..].trim());
    let colon = who.rfind(':')?;
    Some((&who[..colon], &who[colon + 1..], prio, tail))
}

fn sched_switch_plugin<'a>(details: &'a str, key: &str) -> Option<&'a str> {
    let (prev, next) = details.split_once("==>")?;
    let (side, name) = if let Some(k) = key.strip_prefix("prev_") {
        (prev, k)
    } else {
        (next, key.strip_prefix("next_")?)
    };
    let (comm, pid, prio, tail) = comm_pid_prio(side)?;
    match name {
        "comm" => Some(comm),
        "pid" => Some(pid),
        "prio" => Some(prio),
        "state" if key.starts_with("prev_") => Some(tail),
        _ => None,
    }
}

fn sched_wakeup_plugin<'a>(details: &'a str, key: &str) -> Option<&'a str> {
    let (comm, pid, prio, tail) = comm_pid_prio(details)?;
    match key {
        "comm" => Some(comm),
        "pid" => Some(pid),
        "prio" => Some(prio),
        "target_cpu" => tail.split_whitespace().find_map(|t| t.strip_prefix("CPU:")),
        _ => None,
    }
}

/// arm64 KVM's `VCPU: 0, IRQ 81, level: 1` (`vcpu_id`, `irq`, `level`).
fn vcpu_irq_level<'a>(details: &'a str, key: &str) -> Option<&'a str> {
    let label = match key {
        "vcpu_id" => "VCPU",
        "irq" => "IRQ",
        "level" => "level",
        _ => return None,
    };
    details.split(',').find_map(|part| {
        let v = part.trim().strip_prefix(label)?;
        let v = v.strip_prefix(':').unwrap_or(v).trim();
        (!v.is_empty()).then_some(v)
    })
}

#[cfg(test)]
mod tests {
    use super::field;

    #[test]
    fn key_values_with_spaces_and_arrows() {
        let d = "prev_comm=CPU 0/TCG prev_pid=42 prev_prio=120 prev_state=S ==> next_comm=swapper/1 next_pid=0 next_prio=120";
        assert_eq!(field("sched_switch", d, "prev_comm"), Some("CPU 0/TCG"));
        assert_eq!(field("sched_switch", d, "prev_state"), Some("S"));
        assert_eq!(field("sched_switch", d, "next_comm"), Some("swapper/1"));
        assert_eq!(field("sched_switch", d, "next_prio"), Some("120"));
        assert_eq!(
            field("net_dev_xmit", "dev=tap0 skbaddr=0xff len=98 rc=0", "len"),
            Some("98")
        );
        // `pid` must not match inside `next_pid`.
        assert_eq!(field("x", "next_pid=3", "pid"), None);
        assert_eq!(field("x", "dev=tap0", "nope"), None);
    }

    #[test]
    fn trace_cmd_sched_plugin_forms() {
        let d = "CPU 0/TCG:4242 [120] R ==> swapper/1:0 [120]";
        assert_eq!(field("sched_switch", d, "prev_comm"), Some("CPU 0/TCG"));
        assert_eq!(field("sched_switch", d, "prev_pid"), Some("4242"));
        assert_eq!(field("sched_switch", d, "prev_state"), Some("R"));
        assert_eq!(field("sched_switch", d, "next_comm"), Some("swapper/1"));
        assert_eq!(field("sched_switch", d, "next_pid"), Some("0"));
        let w = "rcu_preempt:15 [120] CPU:001";
        assert_eq!(field("sched_wakeup", w, "comm"), Some("rcu_preempt"));
        assert_eq!(field("sched_wakeup", w, "pid"), Some("15"));
        assert_eq!(field("sched_wakeup", w, "target_cpu"), Some("001"));
        let w = "comm=rcu_preempt pid=15 prio=120 target_cpu=000";
        assert_eq!(field("sched_waking", w, "target_cpu"), Some("000"));
        let v = "VCPU: 0, IRQ 81, level: 1";
        assert_eq!(field("vgic_update_irq_pending", v, "level"), Some("1"));
        assert_eq!(field("vgic_update_irq_pending", v, "irq"), Some("81"));
        assert_eq!(field("vgic_update_irq_pending", v, "vcpu_id"), Some("0"));
        let t = "VCPU: 0, IRQ 27, level 0";
        assert_eq!(field("kvm_timer_update_irq", t, "level"), Some("0"));
    }
}
