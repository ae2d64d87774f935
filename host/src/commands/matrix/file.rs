//! The matrix file: TOML, shared defaults at the top, then one `[[config]]` table per
//! configuration with a `name` and any `vmprobe run` option (key = option name without the
//! dashes; `_` and `-` both work; `true` for a flag; an array repeats an option):
//!
//! ```toml
//! accel = "tcg"        # defaults for every configuration
//! count = 200
//!
//! [[config]]
//! name = "user, irq"
//! net = "user"
//!
//! [[config]]
//! name = "tap, poll"
//! net = "tap"
//! mode = "poll"
//! ```
//!
//! Each configuration becomes `run`'s own command line and is parsed by `run`'s own parser,
//! so every option, value and error message is the same as on the command line. One key adds
//! to its default instead of replacing it: `limit` (`limit = ["p99=200us", "lost=0"]` at the
//! top bounds every configuration; a configuration's own `limit` list adds bounds, and
//! replaces the default of the same figure).
use clap::Parser;
use toml::Value;

use crate::commands::run::RunArgs;
use crate::export::lava::id_part;

/// Keys the matrix sets itself.
const RESERVED: [&str; 4] = ["run-dir", "format", "log", "hist"];

/// The key whose default a configuration adds to rather than replaces.
const ADDITIVE: &str = "limit";

/// A matrix file's problems.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// Not TOML.
    #[error("{0}")]
    Toml(String),
    /// Structure.
    #[error("{0}")]
    Shape(String),
    /// One configuration's options.
    #[error("configuration \"{name}\": {message}")]
    Config {
        /// Its name.
        name: String,
        /// What is wrong.
        message: String,
    },
}

/// One configuration of a matrix.
#[derive(Debug, Clone)]
pub struct Row {
    /// Its name, the table's row label.
    pub name: String,
    /// The equivalent `vmprobe run` arguments (after `run`).
    pub argv: Vec<String>,
    /// Parsed.
    pub args: RunArgs,
}

/// A parsed matrix file.
#[derive(Debug, Clone)]
pub struct Matrix {
    /// The configurations, in file order.
    pub rows: Vec<Row>,
}

#[derive(Parser)]
#[command(name = "run", no_binary_name = true)]
struct RunParser {
    #[command(flatten)]
    run: RunArgs,
}

impl Matrix {
    /// Parses a matrix file's text.
    pub fn parse(text: &str) -> Result<Matrix, FileError> {
        let table: toml::Table = text.parse().map_err(|e: toml::de::Error| {
            let line = e.span().map_or(0, |r| {
                text[..r.start.min(text.len())].lines().count().max(1)
            });
            FileError::Toml(format!("not valid TOML at line {line}: {}", e.message()))
        })?;
        let mut defaults = Vec::new();
        let mut configs = None;
        for (key, value) in &table {
            if key == "config" {
                configs = Some(value);
            } else {
                defaults.push((key.as_str(), value));
            }
        }
        let configs = match configs {
            Some(Value::Array(a)) if !a.is_empty() => a,
            _ => {
                return Err(FileError::Shape(
                    "no configurations: add [[config]] tables, each with a name".into(),
                ))
            }
        };
        let mut rows: Vec<Row> = Vec::new();
        for (i, c) in configs.iter().enumerate() {
            let Value::Table(t) = c else {
                return Err(FileError::Shape(format!(
                    "config #{} is not a table",
                    i + 1
                )));
            };
            let name = match t.get("name") {
                Some(Value::String(s)) if !s.trim().is_empty() => s.trim().to_string(),
                _ => {
                    return Err(FileError::Shape(format!(
                        "config #{} has no name = \"...\"",
                        i + 1
                    )))
                }
            };
            if rows.iter().any(|r| r.name == name) {
                return Err(FileError::Shape(format!(
                    "two configurations are named \"{name}\""
                )));
            }
            // Test case ids are named after the configuration: they must stay apart.
            let id = id_part(&name);
            if let Some(r) = rows.iter().find(|r| id_part(&r.name) == id) {
                return Err(FileError::Shape(format!(
                    "configurations \"{}\" and \"{name}\" have the same id \"{id}\" in test cases: rename one",
                    r.name
                )));
            }
            let err = |message: String| FileError::Config {
                name: name.clone(),
                message,
            };
            // Defaults first; a key the configuration sets replaces the default.
            let own: Vec<(&str, &Value)> = t
                .iter()
                .filter(|(k, _)| k.as_str() != "name")
                .map(|(k, v)| (k.as_str(), v))
                .collect();
            let mut argv = Vec::new();
            for (key, value) in defaults
                .iter()
                .filter(|(k, _)| {
                    flag(k) == ADDITIVE || !own.iter().any(|(o, _)| flag(o) == flag(k))
                })
                .chain(own.iter())
            {
                push_option(&mut argv, key, value).map_err(err)?;
            }
            let args = RunParser::try_parse_from(&argv)
                .map_err(|e| err(clap_message(&e)))?
                .run;
            rows.push(Row { name, argv, args });
        }
        Ok(Matrix { rows })
    }
}

/// `busy_poll` -> `busy-poll`.
fn flag(key: &str) -> String {
    key.replace('_', "-")
}

/// Appends `--key value` for one TOML key.
fn push_option(argv: &mut Vec<String>, key: &str, value: &Value) -> Result<(), String> {
    let f = flag(key);
    if RESERVED.contains(&f.as_str()) {
        return Err(format!(
            "`{key}` is set by the matrix itself (each configuration gets its own run directory)"
        ));
    }
    let scalar = |v: &Value| -> Result<String, String> {
        match v {
            Value::String(s) => Ok(s.clone()),
            Value::Integer(n) => Ok(n.to_string()),
            Value::Float(x) => Ok(x.to_string()),
            other => Err(format!("`{key}`: unsupported value {other}")),
        }
    };
    match value {
        Value::Boolean(true) => argv.push(format!("--{f}")),
        Value::Boolean(false) => {}
        Value::Array(items) => {
            for item in items {
                argv.push(format!("--{f}"));
                argv.push(scalar(item)?);
            }
        }
        v => {
            argv.push(format!("--{f}"));
            argv.push(scalar(v)?);
        }
    }
    Ok(())
}

/// clap's error as one line, without usage and tips.
fn clap_message(e: &clap::Error) -> String {
    let text = e.to_string();
    text.lines()
        .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more information"))
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with("tip:"))
        .collect::<Vec<_>>()
        .join(" ")
        .trim_start_matches("error: ")
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vm::options::{Mode, Net};

    #[test]
    fn defaults_rows_and_overrides() {
        let m = Matrix::parse(
            r#"
            accel = "tcg"
            count = 200
            mode = "irq"
            qemu_arg = ["-d", "guest_errors"]
            [[config]]
            name = "user irq"
            [[config]]
            name = "tap poll"
            net = "tap"
            mode = "poll"
            busy_poll = true
            count = 50
            "#,
        )
        .unwrap();
        assert_eq!(m.rows.len(), 2);
        let (a, b) = (&m.rows[0].args, &m.rows[1].args);
        assert_eq!(
            (a.vm.net, a.vm.mode, a.rr.count),
            (Net::User, Mode::Irq, Some(200))
        );
        assert_eq!(a.vm.qemu_args, ["-d", "guest_errors"]);
        assert_eq!(
            (b.vm.net, b.vm.mode, b.rr.count),
            (Net::Tap, Mode::Poll, Some(50))
        );
        assert!(b.rr.busy_poll && !a.rr.busy_poll);
    }

    #[test]
    fn limits_add_to_the_default_and_replace_it_per_figure() {
        let m = Matrix::parse(
            r#"
            limit = ["p99=200us", "lost=0"]
            [[config]]
            name = "a"
            [[config]]
            name = "b"
            limit = ["p99=1ms", "udp-max=5ms"]
            "#,
        )
        .unwrap();
        let texts = |r: &Row| -> Vec<String> {
            crate::limits::merge(r.args.limits.clone())
                .iter()
                .map(|l| l.text.clone())
                .collect()
        };
        assert_eq!(texts(&m.rows[0]), ["p99=200us", "lost=0"]);
        assert_eq!(texts(&m.rows[1]), ["p99=1ms", "lost=0", "udp-max=5ms"]);
        let e = Matrix::parse("[[config]]\nname = \"x\"\nlimit = [\"p99=5\"]")
            .unwrap_err()
            .to_string();
        assert!(e.contains("duration '5' has no unit"), "{e}");
        let e = Matrix::parse("[[config]]\nname = \"tap, irq\"\n[[config]]\nname = \"tap irq\"")
            .unwrap_err()
            .to_string();
        assert!(e.contains("same id \"tap-irq\""), "{e}");
    }

    #[test]
    fn the_example_matrix_parses() {
        let m = Matrix::parse(include_str!("../../../../examples/matrix.toml")).unwrap();
        let nets: Vec<Net> = m.rows.iter().map(|r| r.args.vm.net).collect();
        for n in [Net::User, Net::Tap, Net::Bridge, Net::Macvtap] {
            assert_eq!(
                nets.iter().filter(|&&x| x == n).count(),
                2,
                "{n:?}: irq and poll"
            );
        }
        // The eBPF bridge at both hooks, irq and poll each.
        let hooks: Vec<_> = m
            .rows
            .iter()
            .filter(|r| r.args.vm.net == Net::Ebpf)
            .filter_map(|r| r.args.vm.ebpf_hook)
            .collect();
        use crate::netsetup::ebpf::Hook;
        assert_eq!(hooks, [Hook::Tc, Hook::Tc, Hook::Xdp, Hook::Xdp]);
    }

    #[test]
    fn the_bridges_example_parses() {
        use crate::netsetup::ebpf::Hook;
        let m = Matrix::parse(include_str!("../../../../examples/bridges.toml")).unwrap();
        let rows: Vec<_> = m
            .rows
            .iter()
            .map(|r| (r.args.vm.net, r.args.vm.ebpf_hook))
            .collect();
        assert_eq!(
            rows,
            [
                (Net::Tap, None),
                (Net::Bridge, None),
                (Net::Macvtap, None),
                (Net::Ebpf, Some(Hook::Tc)),
                (Net::Ebpf, Some(Hook::Xdp)),
            ]
        );
    }

    #[test]
    fn mistakes_are_named() {
        let e = |t: &str| Matrix::parse(t).unwrap_err().to_string();
        assert!(e("count = 1").contains("no configurations"));
        assert!(e("[[config]]\nnet = \"tap\"").contains("no name"));
        assert!(
            e("[[config]]\nname = \"a\"\n[[config]]\nname = \"a\"").contains("two configurations")
        );
        let m = e("[[config]]\nname = \"x\"\nnet = \"vde\"");
        assert!(
            m.contains("configuration \"x\"") && m.contains("invalid value 'vde'"),
            "{m}"
        );
        let m = e("[[config]]\nname = \"x\"\ncolour = 1");
        assert!(m.contains("--colour"), "{m}");
        assert!(e("[[config]]\nname = \"x\"\nrun_dir = \"/tmp\"").contains("set by the matrix"));
        assert!(e("[[config]\nname = 1").contains("not valid TOML at line 1"));
    }
}
