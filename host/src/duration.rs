//! Durations on the command line and in path files: `10ms`, `500us`, `2s`, `1m`, also
//! decimals such as `1.5ms`. Every duration vmprobe reads goes through this parser.
//!
//! A unit is required: a bare `10` is ambiguous between netperf's seconds, sockperf's
//! milliseconds and ftrace's microseconds, so it is refused rather than guessed.
use std::time::Duration;

/// Why a duration string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Nothing was given.
    #[error("empty duration (expected e.g. 10ms, 500us, 2s)")]
    Empty,
    /// A number without a unit.
    #[error("duration '{0}' has no unit (use ns, us, ms, s, m or h)")]
    MissingUnit(String),
    /// A unit this parser does not know.
    #[error("duration '{0}' has an unknown unit (use ns, us, ms, s, m or h)")]
    UnknownUnit(String),
    /// The number part is not a non-negative decimal number.
    #[error("duration '{0}' is not a number followed by a unit (e.g. 10ms)")]
    BadNumber(String),
    /// The value does not fit in 64-bit nanoseconds.
    #[error("duration '{0}' is too large")]
    TooLarge(String),
}

/// Parses a duration with a unit suffix: `ns`, `us` (or `µs`), `ms`, `s`, `m`, `h`.
///
/// Decimal numbers are accepted (`1.5ms`); the result is rounded to the nanosecond.
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let s = text.trim();
    if s.is_empty() {
        return Err(DurationError::Empty);
    }
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .ok_or_else(|| DurationError::MissingUnit(s.to_owned()))?;
    let (number, unit) = s.split_at(split);
    let nanos_per_unit: u128 = match unit.trim() {
        "ns" => 1,
        "us" | "µs" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" | "min" => 60_000_000_000,
        "h" => 3_600_000_000_000,
        _ => return Err(DurationError::UnknownUnit(s.to_owned())),
    };
    let bad = || DurationError::BadNumber(s.to_owned());
    let (int_part, frac_part) = match number.split_once('.') {
        Some((i, f)) => (i, f),
        None => (number, ""),
    };
    if (int_part.is_empty() && frac_part.is_empty()) || frac_part.contains('.') {
        return Err(bad());
    }
    let int: u128 = if int_part.is_empty() {
        0
    } else {
        int_part.parse().map_err(|_| bad())?
    };
    // Exact decimal arithmetic: fraction digits beyond nanoseconds are rounded, not truncated.
    let mut frac_nanos: u128 = 0;
    let mut scale: u128 = 1;
    for digit in frac_part.chars().take(30) {
        frac_nanos = frac_nanos * 10 + u128::from(digit.to_digit(10).ok_or_else(bad)?);
        scale *= 10;
    }
    let total = int
        .checked_mul(nanos_per_unit)
        .and_then(|n| n.checked_add((frac_nanos * nanos_per_unit + scale / 2) / scale))
        .ok_or_else(|| DurationError::TooLarge(s.to_owned()))?;
    let nanos = u64::try_from(total).map_err(|_| DurationError::TooLarge(s.to_owned()))?;
    Ok(Duration::from_nanos(nanos))
}

/// [`parse_duration`] in whole nanoseconds.
pub fn parse_duration_ns(text: &str) -> Result<u64, DurationError> {
    parse_duration(text).map(|d| d.as_nanos() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units() {
        assert_eq!(parse_duration("10ms"), Ok(Duration::from_millis(10)));
        assert_eq!(parse_duration("500us"), Ok(Duration::from_micros(500)));
        assert_eq!(parse_duration("500µs"), Ok(Duration::from_micros(500)));
        assert_eq!(parse_duration("2s"), Ok(Duration::from_secs(2)));
        assert_eq!(parse_duration("1m"), Ok(Duration::from_secs(60)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("250ns"), Ok(Duration::from_nanos(250)));
    }

    #[test]
    fn decimals_round_to_nanoseconds() {
        assert_eq!(parse_duration("1.5ms"), Ok(Duration::from_micros(1500)));
        assert_eq!(parse_duration(".5s"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("0.0000000015s"), Ok(Duration::from_nanos(2)));
    }

    #[test]
    fn refusals() {
        assert_eq!(parse_duration(""), Err(DurationError::Empty));
        assert!(matches!(
            parse_duration("10"),
            Err(DurationError::MissingUnit(_))
        ));
        assert!(matches!(
            parse_duration("10parsecs"),
            Err(DurationError::UnknownUnit(_))
        ));
        assert!(matches!(
            parse_duration("ms"),
            Err(DurationError::BadNumber(_))
        ));
        assert!(matches!(
            parse_duration("1.2.3ms"),
            Err(DurationError::BadNumber(_))
        ));
        assert!(parse_duration("-1ms").is_err());
        assert!(matches!(
            parse_duration("99999999999h"),
            Err(DurationError::TooLarge(_))
        ));
    }
}
