//! Value patterns for path matchers: exact text, shell-style globs, substrings and regexes.
//!
//! | written        | matches                                   |
//! |----------------|-------------------------------------------|
//! | `tap0`         | exactly `tap0`                            |
//! | `qemu*`, `v?`  | glob: `*` any run, `?` any one character  |
//! | `~TCG`         | any value containing `TCG`                |
//! | `re:^CPU \d+/` | a regular expression (`regex-lite` syntax)|
//! | `["a*", "b"]`  | any of them (TOML array)                  |
//!
//! Globs are much faster than regexes; prefer them on events that occur on every packet.

use super::error::TraceError;

/// A compiled value pattern.
#[derive(Debug, Clone)]
pub enum Pattern {
    /// Exact match.
    Exact(String),
    /// Glob with `*` and `?`.
    Glob(String),
    /// Substring.
    Contains(String),
    /// Regular expression.
    Regex(regex_lite::Regex),
    /// Any of several patterns (a TOML array).
    AnyOf(Vec<Pattern>),
}

impl Pattern {
    /// Compiles a pattern as written in a path file.
    pub fn parse(text: &str) -> Result<Self, TraceError> {
        if let Some(re) = text.strip_prefix("re:") {
            let rx = regex_lite::Regex::new(re)
                .map_err(|e| TraceError::Path(format!("bad regex `{re}`: {e}")))?;
            Ok(Pattern::Regex(rx))
        } else if let Some(sub) = text.strip_prefix('~') {
            Ok(Pattern::Contains(sub.to_owned()))
        } else if text.contains(['*', '?']) {
            Ok(Pattern::Glob(text.to_owned()))
        } else {
            Ok(Pattern::Exact(text.to_owned()))
        }
    }

    /// Whether `value` matches.
    pub fn matches(&self, value: &str) -> bool {
        match self {
            Pattern::Exact(s) => s == value,
            Pattern::Glob(g) => glob(g.as_bytes(), value.as_bytes()),
            Pattern::Contains(s) => value.contains(s.as_str()),
            Pattern::Regex(r) => r.is_match(value),
            Pattern::AnyOf(v) => v.iter().any(|p| p.matches(value)),
        }
    }
}

impl std::fmt::Display for Pattern {
    /// The pattern as written in a path file.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Pattern::Exact(s) | Pattern::Glob(s) => f.write_str(s),
            Pattern::Contains(s) => write!(f, "~{s}"),
            Pattern::Regex(r) => write!(f, "re:{}", r.as_str()),
            Pattern::AnyOf(v) => {
                let all: Vec<String> = v.iter().map(Pattern::to_string).collect();
                write!(f, "[{}]", all.join(", "))
            }
        }
    }
}

/// Iterative glob match with single-star backtracking (linear in practice, no recursion).
fn glob(p: &[u8], s: &[u8]) -> bool {
    let (mut pi, mut si) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while si < s.len() {
        if pi < p.len() && (p[pi] == b'?' || p[pi] == s[si]) {
            pi += 1;
            si += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some((pi, si));
            pi += 1;
        } else if let Some((sp, ss)) = star {
            pi = sp + 1;
            si = ss + 1;
            star = Some((sp, ss + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == b'*')
}

#[cfg(test)]
mod tests {
    use super::Pattern;

    fn m(p: &str, v: &str) -> bool {
        Pattern::parse(p).unwrap().matches(v)
    }

    #[test]
    fn kinds() {
        assert!(m("tap0", "tap0") && !m("tap0", "tap01"));
        assert!(m("qemu*", "qemu-system-aar") && !m("qemu*", "xqemu"));
        assert!(m("*TCG*", "CPU 0/TCG") && m("v?host*", "vXhost-1") && m("a*b*c", "aXXbYYc"));
        assert!(!m("a*b*c", "aXXbYY") && m("*", ""));
        assert!(m("~TCG", "CPU 1/TCG") && !m("~TCG", "qemu"));
        assert!(m(r"re:^CPU \d+/TCG$", "CPU 12/TCG") && !m("re:^CPU", "xCPU"));
        assert!(Pattern::parse("re:(").is_err());
    }
}
