//! The one bounded duration parser: seconds as a number (`30`, `1.5`) or a number with a unit
//! (`250ms`, `30s`, `5m`, `2h`), from 0 up to [`MAX_DURATION`] (30 days). The CLI's duration
//! flags (`--time-limit`) and the providers' config (`kubernetes.provision_timeout`,
//! `kubernetes.request_timeout`) use it, so every duration a user writes has one syntax, one range
//! and one wording of its errors.
//!
//! ```
//! use std::time::Duration;
//! use skyplan_spec::duration::{parse_duration, DurationError};
//! assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
//! assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
//! assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
//! assert!(matches!(parse_duration("1e20"), Err(DurationError::TooLong { .. })));
//! assert!(parse_duration("-1").unwrap_err().to_string().contains("from 0 to 30 days"));
//! ```

use std::time::Duration;

/// The longest duration any setting accepts: 30 days.
pub const MAX_DURATION: Duration = Duration::from_secs(30 * 24 * 60 * 60);

/// What a duration may look like, for error messages.
const EXPECTED: &str =
    "expected seconds (e.g. 30 or 1.5) or a number with a unit (250ms, 30s, 5m, 2h), from 0 to 30 days";

/// Why a text is not an acceptable duration. Every message names the text and the accepted range.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Not a number, or a number with an unknown unit.
    #[error("{text:?} is not a duration; {EXPECTED}")]
    Syntax {
        /// The text as written.
        text: String,
    },
    /// Below zero.
    #[error("{text:?} is negative; {EXPECTED}")]
    Negative {
        /// The text as written.
        text: String,
    },
    /// `NaN` or an infinity.
    #[error("{text:?} is not a finite number; {EXPECTED}")]
    NotFinite {
        /// The text as written.
        text: String,
    },
    /// Above [`MAX_DURATION`].
    #[error("{text:?} is longer than the maximum; {EXPECTED}")]
    TooLong {
        /// The text as written.
        text: String,
    },
    /// Zero where only a positive duration makes sense ([`parse_positive_duration`]).
    #[error("{text:?} is zero; expected more than 0 s, at most 30 days")]
    Zero {
        /// The text as written.
        text: String,
    },
}

/// Parses a duration: a number of seconds, or a number followed by `ms`, `s`, `m` or `h`
/// (spaces between them allowed), from 0 to [`MAX_DURATION`].
pub fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let trimmed = text.trim();
    let units: [(&str, f64); 4] = [("ms", 0.001), ("s", 1.0), ("m", 60.0), ("h", 3600.0)];
    let (number, scale) = units
        .iter()
        .find_map(|(unit, scale)| trimmed.strip_suffix(unit).map(|n| (n, *scale)))
        .unwrap_or((trimmed, 1.0));
    let number = number.trim_end();
    // `f64::from_str` also reads `inf` and `NaN`; they are rejected below as not finite. Letters
    // left over (an unknown unit such as `5d`) fail here.
    let value: f64 = number.parse().map_err(|_| DurationError::Syntax {
        text: text.to_string(),
    })?;
    if !value.is_finite() {
        return Err(DurationError::NotFinite {
            text: text.to_string(),
        });
    }
    let seconds = value * scale;
    if seconds.is_infinite() {
        // A huge number times its unit: too long, not "not finite".
        return Err(if seconds < 0.0 {
            DurationError::Negative {
                text: text.to_string(),
            }
        } else {
            DurationError::TooLong {
                text: text.to_string(),
            }
        });
    }
    duration_from_number(seconds, text)
}

/// Like [`parse_duration`], but zero is an error too.
pub fn parse_positive_duration(text: &str) -> Result<Duration, DurationError> {
    let duration = parse_duration(text)?;
    if duration.is_zero() {
        return Err(DurationError::Zero {
            text: text.to_string(),
        });
    }
    Ok(duration)
}

/// A number of seconds as a duration, checked against the same range as [`parse_duration`];
/// `text` is how the number was written, for the error.
pub fn duration_from_secs(seconds: f64, text: &str) -> Result<Duration, DurationError> {
    duration_from_number(seconds, text)
}

fn duration_from_number(seconds: f64, text: &str) -> Result<Duration, DurationError> {
    let text = text.to_string();
    if !seconds.is_finite() {
        return Err(DurationError::NotFinite { text });
    }
    if seconds < 0.0 {
        return Err(DurationError::Negative { text });
    }
    if seconds > MAX_DURATION.as_secs_f64() {
        return Err(DurationError::TooLong { text });
    }
    Duration::try_from_secs_f64(seconds).map_err(|_| DurationError::TooLong { text })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_numbers_and_units() {
        assert_eq!(parse_duration("10"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration(" 1.5s "), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2 m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("2h"), Ok(Duration::from_secs(7200)));
        assert_eq!(parse_duration("0"), Ok(Duration::ZERO));
        assert_eq!(parse_duration("720h"), Ok(MAX_DURATION));
        assert_eq!(parse_duration("1e3"), Ok(Duration::from_secs(1000)));
    }

    #[test]
    fn rejects_out_of_range_and_garbage_with_the_range() {
        for (text, want) in [
            ("1e20", "longer than the maximum"),
            ("18446744073709551616", "longer than the maximum"),
            ("1e18m", "longer than the maximum"),
            ("1e300", "longer than the maximum"),
            ("1e308h", "longer than the maximum"),
            ("721h", "longer than the maximum"),
            ("-1", "negative"),
            ("-5m", "negative"),
            ("NaN", "not a finite number"),
            ("inf", "not a finite number"),
            ("-infinity", "not a finite number"),
            ("soon", "not a duration"),
            ("5d", "not a duration"),
            ("", "not a duration"),
            ("s", "not a duration"),
            ("1 2s", "not a duration"),
        ] {
            let err = parse_duration(text).expect_err(text).to_string();
            assert!(err.contains(want), "{text}: {err}");
            assert!(err.contains("30 days"), "{text}: {err}");
            assert!(err.contains(&format!("{text:?}")), "{text}: {err}");
        }
    }

    #[test]
    fn positive_rejects_zero() {
        assert!(matches!(
            parse_positive_duration("0s"),
            Err(DurationError::Zero { .. })
        ));
        assert_eq!(parse_positive_duration("1ms"), Ok(Duration::from_millis(1)));
        assert!(matches!(
            duration_from_secs(f64::MAX, "big"),
            Err(DurationError::TooLong { .. })
        ));
    }
}
