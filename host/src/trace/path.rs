//! Paths: the ordered stage boundaries a packet crosses, as built-ins or TOML files.
//!
//! ```toml
//! name = "my-path"
//! timeout = "100ms"          # a started packet that stalls this long is incomplete
//! [vars]                     # defaults for `{name}` placeholders; `--var tap=vmptap0`
//! tap = "*tap*"
//! [[stage]]
//! name = "xmit"              # optional, defaults to the event name; must be unique
//! event = "net_dev_xmit"     # a tracepoint or a traced function
//! task = "qemu*"             # optional matcher on the current task's command name
//! pid = "1234"               # optional matcher on the current task's pid
//! fields = { dev = "{tap}" } # optional matchers on the event's fields (or ["dev=tap*"])
//! [[stage]]
//! event = "skb_copy_datagram_iovec"
//! same = { skbaddr = "xmit" } # this field must equal its value at stage `xmit`
//! ```
//! Matchers are [`Pattern`]s: exact, glob, `~substring` or `re:regex`, or an array of them.
//!
//! One boundary can be recorded several ways (a tracepoint, or a traced function). `event`
//! may be a list of names or a pattern over names (`event = ["kvm_vcpu_kick",
//! "kvm_vcpu_wakeup"]`, `event = "*_msix_ring"`), and `[[stage.or]]` adds another form with
//! its own `event`, `task`, `pid` and `fields`:
//!
//! ```toml
//! [[stage]]
//! name = "nic_irq"                 # required when `event` is not a single name
//! event = "irq_handler_entry"
//! fields = { name = "igc*" }
//! [[stage.or]]
//! event = ["*_msix_ring", "*_intr"]  # the driver's handler, from the function tracer
//! ```
//! When a trace holds several forms of one boundary, the form that first carries a packet
//! across it is the one used for that boundary from then on, so a packet is not counted
//! twice when both forms were recorded.
//! `optional = true` lets a packet pass a boundary that does not always happen (a wakeup of a
//! thread that happened to be awake already). `same` correlates one packet's events exactly (for example by `skbaddr`); without it,
//! packets cross each boundary in FIFO order.

use super::error::TraceError;
use super::fields::field;
use super::line::Event;
use super::pattern::Pattern;
use crate::duration::parse_duration_ns;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::Path;

/// Built-in paths: name and TOML definition.
pub const BUILTIN: &[(&str, &str)] = &[
    ("arm64-vhost", include_str!("paths/arm64-vhost.toml")),
    ("tap-tcg", include_str!("paths/tap-tcg.toml")),
];

/// Most stages in one path.
pub const MAX_STAGES: usize = 32;

/// Default stall timeout when a path file does not give one.
pub const DEFAULT_TIMEOUT_NS: u64 = 100_000_000;

/// A validated path.
#[derive(Debug, Clone)]
pub struct PathSpec {
    /// Path name (reports carry it).
    pub name: String,
    /// Stall timeout in nanoseconds.
    pub timeout_ns: u64,
    /// Stage boundaries in order; at least two.
    pub stages: Vec<Stage>,
}

/// One stage boundary.
#[derive(Debug, Clone)]
pub struct Stage {
    /// Unique name within the path; stage durations are named `<from>__<to>`.
    pub name: String,
    /// The ways this boundary shows in a trace, in the order written; at least one.
    pub forms: Vec<Form>,
    /// Fields that must equal the value captured at an earlier stage: (field, stage index).
    pub same: Vec<(String, usize)>,
    /// A packet may go past this boundary without it (the next stage's event is taken).
    pub optional: bool,
}

/// One way a boundary shows in a trace: events (tracepoints or functions) and matchers.
#[derive(Debug, Clone)]
pub struct Form {
    /// Event or function names given exactly.
    pub names: Vec<String>,
    /// Patterns over event or function names (globs, regexes).
    pub name_patterns: Vec<Pattern>,
    /// Matcher on the current task's command name.
    pub task: Option<Pattern>,
    /// Matcher on the current task's pid.
    pub pid: Option<Pattern>,
    /// Matchers on fields of the event's details.
    pub fields: Vec<(String, Pattern)>,
}

impl Stage {
    /// The index of the first form that `ev` crosses this boundary by, if any.
    pub fn form_of(&self, ev: &Event<'_>) -> Option<usize> {
        self.forms
            .iter()
            .position(|f| f.names_event(ev.name) && f.matches(ev))
    }

    /// Whether `ev` crosses this boundary by any form.
    pub fn matches(&self, ev: &Event<'_>) -> bool {
        self.form_of(ev).is_some()
    }

    /// Every exact event name and name pattern of this stage, as written.
    pub fn event_names(&self) -> Vec<String> {
        self.forms
            .iter()
            .flat_map(|f| {
                f.names
                    .iter()
                    .cloned()
                    .chain(f.name_patterns.iter().map(|p| p.to_string()))
            })
            .collect()
    }
}

impl Form {
    /// Whether this form is about events named `name`.
    pub fn names_event(&self, name: &str) -> bool {
        self.names.iter().any(|n| n == name) || self.name_patterns.iter().any(|p| p.matches(name))
    }

    /// Whether `ev` (already known to carry one of this form's names) passes its matchers.
    pub fn matches(&self, ev: &Event<'_>) -> bool {
        if let Some(t) = &self.task {
            if !t.matches(ev.task) {
                return false;
            }
        }
        if let Some(p) = &self.pid {
            let mut buf = [0u8; 10];
            if !p.matches(format_u32(ev.pid, &mut buf)) {
                return false;
            }
        }
        self.fields
            .iter()
            .all(|(k, p)| field(ev.name, ev.details, k).is_some_and(|v| p.matches(v)))
    }
}

/// Decimal digits of `v` in `buf`, without allocating.
fn format_u32(mut v: u32, buf: &mut [u8; 10]) -> &str {
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    std::str::from_utf8(&buf[i..]).expect("ASCII digits")
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PathFile {
    name: Option<String>,
    timeout: Option<String>,
    #[serde(default)]
    vars: BTreeMap<String, String>,
    #[serde(default)]
    stage: Vec<StageFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StageFile {
    name: Option<String>,
    event: OneOrMany,
    task: Option<OneOrMany>,
    pid: Option<OneOrMany>,
    fields: Option<FieldsFile>,
    #[serde(default)]
    same: BTreeMap<String, String>,
    #[serde(default)]
    optional: bool,
    /// More forms of the same boundary.
    #[serde(default)]
    or: Vec<FormFile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FormFile {
    event: OneOrMany,
    task: Option<OneOrMany>,
    pid: Option<OneOrMany>,
    fields: Option<FieldsFile>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum FieldsFile {
    Table(BTreeMap<String, OneOrMany>),
    List(Vec<String>),
}

/// A pattern, or an array of alternatives.
#[derive(Deserialize)]
#[serde(untagged)]
enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    fn compile(&self, vars: &Vars) -> Result<Pattern, TraceError> {
        match self {
            OneOrMany::One(p) => Pattern::parse(&vars.expand(p)?),
            OneOrMany::Many(v) if v.is_empty() => {
                Err(TraceError::Path("empty list of patterns".into()))
            }
            OneOrMany::Many(v) => Ok(Pattern::AnyOf(
                v.iter()
                    .map(|p| Pattern::parse(&vars.expand(p)?))
                    .collect::<Result<_, _>>()?,
            )),
        }
    }
}

/// `{name}` placeholder values: the path's `[vars]` defaults overridden by the caller's.
struct Vars(BTreeMap<String, String>);

impl Vars {
    fn expand(&self, text: &str) -> Result<String, TraceError> {
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(open) = rest.find('{') {
            out.push_str(&rest[..open]);
            let close = rest[open..]
                .find('}')
                .ok_or_else(|| TraceError::Path(format!("unclosed `{{` in `{text}`")))?;
            let name = &rest[open + 1..open + close];
            let value = self.0.get(name).ok_or_else(|| {
                TraceError::Path(format!(
                    "`{{{name}}}` in `{text}` is not a variable; define it under [vars]"
                ))
            })?;
            out.push_str(value);
            rest = &rest[open + close + 1..];
        }
        out.push_str(rest);
        Ok(out)
    }
}

impl PathSpec {
    /// A built-in path by name, or a TOML file when `spec` is not a built-in name.
    pub fn resolve(spec: &str) -> Result<Self, TraceError> {
        Self::resolve_with(spec, &[])
    }

    /// Like [`PathSpec::resolve`], setting `{name}` variables (`tap`, `qemu_pid`, ...).
    pub fn resolve_with(spec: &str, vars: &[(String, String)]) -> Result<Self, TraceError> {
        if let Some((_, text)) = BUILTIN.iter().find(|(n, _)| *n == spec) {
            return Self::from_toml_with(text, spec, vars);
        }
        let p = Path::new(spec);
        if !p.exists() {
            let names: Vec<_> = BUILTIN.iter().map(|(n, _)| *n).collect();
            return Err(TraceError::Path(format!(
                "`{spec}` is neither a built-in path ({}) nor an existing TOML file",
                names.join(", ")
            )));
        }
        let text = std::fs::read_to_string(p).map_err(|source| TraceError::Io {
            what: "reading path file",
            path: p.to_owned(),
            source,
        })?;
        let stem = p.file_stem().and_then(|s| s.to_str()).unwrap_or("custom");
        Self::from_toml_with(&text, stem, vars)
            .map_err(|e| TraceError::Path(format!("{spec}: {e}")))
    }

    /// Parses and validates a TOML path definition; `default_name` names it when the file
    /// does not.
    pub fn from_toml(text: &str, default_name: &str) -> Result<Self, TraceError> {
        Self::from_toml_with(text, default_name, &[])
    }

    /// [`PathSpec::from_toml`] with `{name}` variables set; each must be declared in `[vars]`.
    pub fn from_toml_with(
        text: &str,
        default_name: &str,
        vars: &[(String, String)],
    ) -> Result<Self, TraceError> {
        let mut f: PathFile = toml::from_str(text).map_err(|e| TraceError::Path(e.to_string()))?;
        for (k, v) in vars {
            match f.vars.get_mut(k) {
                Some(slot) => *slot = v.clone(),
                None => {
                    let known: Vec<&str> = f.vars.keys().map(String::as_str).collect();
                    return Err(TraceError::Path(format!(
                        "this path has no variable `{k}` (it has: {})",
                        if known.is_empty() {
                            "none".to_owned()
                        } else {
                            known.join(", ")
                        }
                    )));
                }
            }
        }
        let vars = Vars(std::mem::take(&mut f.vars));
        let timeout_ns = match &f.timeout {
            Some(t) => parse_duration_ns(t).map_err(|e| TraceError::Path(e.to_string()))?,
            None => DEFAULT_TIMEOUT_NS,
        };
        if timeout_ns == 0 {
            return Err(TraceError::Path("timeout must be positive".into()));
        }
        let mut stages: Vec<Stage> = Vec::with_capacity(f.stage.len());
        for s in f.stage {
            let stage = Stage::from_file(s, &vars, &stages)?;
            stages.push(stage);
        }
        if stages.len() < 2 {
            return Err(TraceError::Path(format!(
                "a path needs at least two [[stage]] entries, found {}",
                stages.len()
            )));
        }
        if stages.len() > MAX_STAGES {
            return Err(TraceError::Path(format!(
                "at most {MAX_STAGES} stages, found {}",
                stages.len()
            )));
        }
        if stages.first().is_some_and(|s| s.optional) || stages.last().is_some_and(|s| s.optional) {
            return Err(TraceError::Path(
                "the first and last stages cannot be optional".into(),
            ));
        }
        for (i, s) in stages.iter().enumerate() {
            if stages[..i].iter().any(|o| o.name == s.name) {
                return Err(TraceError::Path(format!(
                    "stage name `{}` used twice; give the stages distinct `name`s",
                    s.name
                )));
            }
        }
        Ok(PathSpec {
            name: f.name.unwrap_or_else(|| default_name.to_owned()),
            timeout_ns,
            stages,
        })
    }

    /// Names of the consecutive stage pairs, `<from>__<to>`.
    pub fn stage_pair_names(&self) -> Vec<String> {
        self.stages
            .windows(2)
            .map(|w| format!("{}__{}", w[0].name, w[1].name))
            .collect()
    }
}

impl Form {
    fn from_file(f: FormFile, vars: &Vars) -> Result<Self, TraceError> {
        let items = match f.event {
            OneOrMany::One(e) => vec![e],
            OneOrMany::Many(v) if v.is_empty() => {
                return Err(TraceError::Path("empty list of events".into()))
            }
            OneOrMany::Many(v) => v,
        };
        let (mut names, mut name_patterns) = (Vec::new(), Vec::new());
        for item in items {
            let item = vars.expand(item.trim())?;
            if item.is_empty() || item.contains(char::is_whitespace) {
                return Err(TraceError::Path(format!("bad event name `{item}`")));
            }
            match Pattern::parse(&item)? {
                Pattern::Exact(n) => names.push(n),
                p => name_patterns.push(p),
            }
        }
        let fields = match f.fields {
            None => Vec::new(),
            Some(FieldsFile::Table(t)) => t
                .into_iter()
                .map(|(k, v)| Ok((k, v.compile(vars)?)))
                .collect::<Result<_, TraceError>>()?,
            Some(FieldsFile::List(l)) => l
                .into_iter()
                .map(|kv| match kv.split_once('=') {
                    Some((k, v)) if !k.trim().is_empty() => {
                        Ok((k.trim().to_owned(), Pattern::parse(&vars.expand(v)?)?))
                    }
                    _ => Err(TraceError::Path(format!(
                        "field matcher `{kv}` is not key=value"
                    ))),
                })
                .collect::<Result<_, _>>()?,
        };
        Ok(Form {
            names,
            name_patterns,
            task: f.task.as_ref().map(|t| t.compile(vars)).transpose()?,
            pid: f.pid.as_ref().map(|p| p.compile(vars)).transpose()?,
            fields,
        })
    }
}

impl Stage {
    fn from_file(s: StageFile, vars: &Vars, earlier: &[Stage]) -> Result<Self, TraceError> {
        let first = FormFile {
            event: s.event,
            task: s.task,
            pid: s.pid,
            fields: s.fields,
        };
        let forms = std::iter::once(first)
            .chain(s.or)
            .map(|f| Form::from_file(f, vars))
            .collect::<Result<Vec<_>, _>>()?;
        let name = match s.name {
            Some(n) => n,
            None => match (
                &forms[0].names[..],
                &forms[0].name_patterns[..],
                forms.len(),
            ) {
                ([one], [], 1) => one.clone(),
                _ => {
                    return Err(TraceError::Path(
                        "a stage with several events, a pattern or `or` forms needs a `name`"
                            .into(),
                    ))
                }
            },
        };
        if name.is_empty() || name.contains("__") {
            return Err(TraceError::Path(format!(
                "stage name `{name}` must be non-empty without `__`"
            )));
        }
        let same = s
            .same
            .into_iter()
            .map(
                |(field, stage)| match earlier.iter().position(|e| e.name == stage) {
                    Some(i) => Ok((field, i)),
                    None => Err(TraceError::Path(format!(
                        "stage `{name}`: `same` refers to `{stage}`, which is not an earlier stage"
                    ))),
                },
            )
            .collect::<Result<_, _>>()?;
        Ok(Stage {
            name,
            forms,
            same,
            optional: s.optional,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::trace::line::{parse, Record};

    #[test]
    fn builtins_parse() {
        let a = PathSpec::resolve("arm64-vhost").unwrap();
        let names: Vec<_> = a.stages.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "nic_irq",
                "br_handle_frame",
                "vhost_poll_wakeup",
                "handle_rx_net",
                "kvm_vgic_inject_irq",
                "kvm_vcpu_kick",
                "kvm_entry"
            ]
        );
        assert_eq!(a.stage_pair_names()[0], "nic_irq__br_handle_frame");
        let t = PathSpec::resolve("tap-tcg").unwrap();
        assert_eq!(t.stages[0].forms[0].names, ["net_dev_xmit"]);
    }

    #[test]
    fn custom_toml_and_matchers() {
        let p = PathSpec::from_toml(
            r#"
            timeout = "5ms"
            [[stage]]
            event = "net_dev_xmit"
            fields = ["dev=tap*", "len=98"]
            [[stage]]
            name = "wake"
            event = "sched_waking"
            task = "~ksoft"
            fields = { comm = ["nope", "qemu*"] }
            "#,
            "mine",
        )
        .unwrap();
        assert_eq!((p.name.as_str(), p.timeout_ns), ("mine", 5_000_000));
        let ev = |l: &'static str| match parse(l) {
            Some(Record::Event(e)) => e,
            _ => panic!(),
        };
        let x = ev("a-1 [000] 1.0: net_dev_xmit: dev=tap0 skbaddr=0x1 len=98 rc=0");
        assert!(p.stages[0].matches(&x));
        let x = ev("a-1 [000] 1.0: net_dev_xmit: dev=tap0 skbaddr=0x1 len=99 rc=0");
        assert!(!p.stages[0].matches(&x));
        let w = ev("ksoftirqd/0-9 [000] 1.0: sched_waking: comm=qemu-system-aar pid=5 prio=120 target_cpu=001");
        assert!(p.stages[1].matches(&w));
        let w = ev(
            "bash-9 [000] 1.0: sched_waking: comm=qemu-system-aar pid=5 prio=120 target_cpu=001",
        );
        assert!(!p.stages[1].matches(&w));
    }

    #[test]
    fn bad_paths_are_clear_errors() {
        let one = "[[stage]]\nevent = \"a\"\n";
        assert!(PathSpec::from_toml(one, "x")
            .unwrap_err()
            .to_string()
            .contains("at least two"));
        let dup = "[[stage]]\nevent = \"a\"\n[[stage]]\nevent = \"a\"\n";
        assert!(PathSpec::from_toml(dup, "x")
            .unwrap_err()
            .to_string()
            .contains("used twice"));
        let unknown = "[[stage]]\nevent = \"a\"\nbogus = 1\n[[stage]]\nevent = \"b\"\n";
        assert!(PathSpec::from_toml(unknown, "x").is_err());
        let badkv = "[[stage]]\nevent = \"a\"\nfields = [\"nokey\"]\n[[stage]]\nevent = \"b\"\n";
        assert!(PathSpec::from_toml(badkv, "x")
            .unwrap_err()
            .to_string()
            .contains("key=value"));
        assert!(PathSpec::resolve("no-such-path")
            .unwrap_err()
            .to_string()
            .contains("tap-tcg"));
    }

    #[test]
    fn vars_pid_and_same() {
        let text = r#"
            [vars]
            tap = "*tap*"
            qemu_pid = "*"
            [[stage]]
            name = "xmit"
            event = "net_dev_xmit"
            fields = { dev = "{tap}" }
            [[stage]]
            name = "read"
            event = "skb_copy_datagram_iovec"
            pid = "{qemu_pid}"
            same = { skbaddr = "xmit" }
        "#;
        let vars = [
            ("tap".to_owned(), "vmptap0".to_owned()),
            ("qemu_pid".to_owned(), "77".to_owned()),
        ];
        let p = PathSpec::from_toml_with(text, "v", &vars).unwrap();
        assert_eq!(p.stages[1].same, [("skbaddr".to_owned(), 0)]);
        let ev = |l: &'static str| match parse(l) {
            Some(Record::Event(e)) => e,
            _ => panic!(),
        };
        assert!(p.stages[0].matches(&ev(
            "a-1 [000] 1.0: net_dev_xmit: dev=vmptap0 skbaddr=0x1 len=98 rc=0"
        )));
        assert!(!p.stages[0].matches(&ev(
            "a-1 [000] 1.0: net_dev_xmit: dev=othertap skbaddr=0x1 len=98 rc=0"
        )));
        assert!(p.stages[1].matches(&ev(
            "q-77 [000] 1.0: skb_copy_datagram_iovec: skbaddr=0x1 len=98"
        )));
        assert!(!p.stages[1].matches(&ev(
            "q-78 [000] 1.0: skb_copy_datagram_iovec: skbaddr=0x1 len=98"
        )));
        let bad = [("nope".to_owned(), "x".to_owned())];
        let e = PathSpec::from_toml_with(text, "v", &bad)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("no variable `nope`") && e.contains("qemu_pid"),
            "{e}"
        );
        let undefined = "[[stage]]\nevent = \"a\"\ntask = \"{x}\"\n[[stage]]\nevent = \"b\"\n";
        assert!(PathSpec::from_toml(undefined, "u")
            .unwrap_err()
            .to_string()
            .contains("not a variable"));
        let later = "[[stage]]\nevent = \"a\"\nsame = { k = \"b\" }\n[[stage]]\nevent = \"b\"\n";
        assert!(PathSpec::from_toml(later, "l")
            .unwrap_err()
            .to_string()
            .contains("not an earlier stage"));
    }

    #[test]
    fn a_boundary_in_several_forms() {
        let p = PathSpec::from_toml(
            r#"
            [vars]
            nic = "enp*"
            [[stage]]
            name = "irq"
            event = "irq_handler_entry"
            fields = { name = "{nic}" }
            [[stage.or]]
            event = ["*_msix_ring", "re:_isr$"]
            task = "irq/*"
            [[stage]]
            name = "kick"
            event = ["kvm_vcpu_kick", "kvm_vcpu_wakeup"]
            "#,
            "forms",
        )
        .unwrap();
        let ev = |l: &'static str| match parse(l) {
            Some(Record::Event(e)) => e,
            _ => panic!("{l}"),
        };
        let irq = &p.stages[0];
        assert_eq!(irq.forms.len(), 2);
        let tp = ev("a-1 [003] 1.0: irq_handler_entry: irq=49 name=enp1s0-TxRx-0");
        assert_eq!(irq.form_of(&tp), Some(0));
        let other = ev("a-1 [003] 1.0: irq_handler_entry: irq=11 name=arch_timer");
        assert_eq!(irq.form_of(&other), None);
        let f = ev("irq/49-enp1s0-T-540 [003] 1.0: function: igc_msix_ring");
        assert_eq!(irq.form_of(&f), Some(1));
        let f = ev("irq/50-x-541 [003] 1.0: function: mvneta_isr");
        assert_eq!(irq.form_of(&f), Some(1));
        // The function form's task matcher applies to it alone.
        let f = ev("kvm-1463 [003] 1.0: function: igc_msix_ring");
        assert_eq!(irq.form_of(&f), None);
        assert_eq!(
            irq.event_names(),
            ["irq_handler_entry", "*_msix_ring", "re:_isr$"]
        );
        let kick = &p.stages[1];
        assert!(kick.matches(&ev("v-1 [003] 1.0: function: kvm_vcpu_kick")));
        assert!(kick.matches(&ev(
            "k-2 [003] 1.0: kvm_vcpu_wakeup: wait time 1 ns, polling valid"
        )));
        // A stage with several events or a pattern must be named.
        let e = PathSpec::from_toml(
            "[[stage]]\nevent = [\"a\", \"b\"]\n[[stage]]\nevent = \"c\"\n",
            "x",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("needs a `name`"), "{e}");
        let e = PathSpec::from_toml("[[stage]]\nevent = []\n[[stage]]\nevent = \"c\"\n", "x")
            .unwrap_err()
            .to_string();
        assert!(e.contains("empty list"), "{e}");
    }

    #[test]
    fn arm64_vhost_knows_both_forms_of_every_boundary() {
        let p = PathSpec::resolve("arm64-vhost").unwrap();
        let ev = |l: String| match parse(&l) {
            Some(Record::Event(e)) => e.name.to_owned(),
            _ => panic!("{l}"),
        };
        let names = |k: usize| -> Vec<String> { p.stages[k].event_names() };
        // Every boundary has a tracepoint form and a function form, but the guest entry.
        for k in 0..6 {
            assert!(p.stages[k].forms.len() >= 2, "{}", p.stages[k].name);
        }
        assert_eq!(names(4), ["kvm_vgic_inject_irq", "vgic_update_irq_pending"]);
        assert_eq!(names(5), ["kvm_vcpu_kick", "kvm_vcpu_wakeup"]);
        let nic = &p.stages[0].forms[1];
        for handler in [
            "igc_msix_ring",
            "igb_msix_ring",
            "ixgbe_msix_clean_rings",
            "i40e_msix_clean_rings",
            "ice_msix_clean_rings",
            "e1000_intr_msix_rx",
            "igc_intr",
            "igc_intr_msi",
            "stmmac_interrupt",
            "fec_enet_interrupt",
            "mvneta_isr",
            "bcmgenet_isr0",
        ] {
            let name = ev(format!("t-1 [000] 1.0: function: {handler}"));
            assert!(nic.names_event(&name), "{handler}");
        }
        for not in [
            "igc_msix_other",
            "igc_poll",
            "do_interrupt_handler",
            "ixgbe_msix_other",
        ] {
            assert!(!nic.names_event(not), "{not}");
        }
        // Only the assertion of the injected interrupt counts, not its release.
        let level = |l: &'static str| match parse(l) {
            Some(Record::Event(e)) => p.stages[4].matches(&e),
            _ => panic!(),
        };
        assert!(level(
            "v-812 [003] 1.0: vgic_update_irq_pending: VCPU: 0, IRQ 81, level: 1"
        ));
        assert!(!level(
            "v-812 [003] 1.0: vgic_update_irq_pending: VCPU: 0, IRQ 81, level: 0"
        ));
    }

    #[test]
    fn a_path_timeout_needs_a_unit() {
        let with = |t: &str| {
            PathSpec::from_toml(
                &format!("name = \"x\"\ntimeout = \"{t}\"\n[[stage]]\nname = \"a\"\nevent = \"net:netif_rx\"\n[[stage]]\nname = \"b\"\nevent = \"net:net_dev_xmit\"\n"),
                "x",
            )
        };
        assert_eq!(with("2ms").unwrap().timeout_ns, 2_000_000);
        let e = with("500").err().unwrap().to_string();
        assert!(e.contains("duration '500' has no unit"), "{e}");
    }
}
