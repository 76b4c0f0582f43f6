//! Kubernetes resource quantities (`500m`, `2`, `16Gi`, `1G`, `1e3`) parsed into exact milli-units.
//!
//! The scheduler compares requests against allocatable capacity, so parsing must be exact: values are
//! kept as integers of thousandths (`i128`), and fractions below a milli-unit round up, as the API
//! server does for requests.

use std::fmt;

use serde::{Deserialize, Deserializer, de};

/// A parsed resource quantity: the text as written and its value in milli-units.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quantity {
    text: String,
    milli: i128,
}

/// Why a quantity string was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("quantity {text:?} is invalid: {why}")]
pub struct QuantityError {
    text: String,
    why: &'static str,
}

impl Quantity {
    /// Parses a Kubernetes quantity such as `500m`, `2`, `1.5`, `16Gi`, `1G` or `1e3`.
    pub fn parse(text: &str) -> Result<Self, QuantityError> {
        let milli = parse_milli(text).map_err(|why| QuantityError {
            text: text.to_owned(),
            why,
        })?;
        Ok(Self {
            text: text.to_owned(),
            milli,
        })
    }

    /// The value in thousandths of a unit (`500m` is 500, `2` is 2000, `1Ki` is 1,024,000).
    pub fn milli(&self) -> i128 {
        self.milli
    }

    /// The text as it was written.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for Quantity {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl de::Visitor<'_> for Visitor {
            type Value = Quantity;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a Kubernetes quantity such as 4, 500m, 16Gi")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Quantity, E> {
                Quantity::parse(v).map_err(E::custom)
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Quantity, E> {
                self.visit_str(&v.to_string())
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Quantity, E> {
                self.visit_str(&v.to_string())
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Quantity, E> {
                self.visit_str(&v.to_string())
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

/// Parses `text` into milli-units, rounding fractions of a milli-unit up.
pub(crate) fn parse_milli(text: &str) -> Result<i128, &'static str> {
    let (sign, rest) = match text.as_bytes().first() {
        Some(b'-') => (-1, &text[1..]),
        Some(b'+') => (1, &text[1..]),
        Some(_) => (1, text),
        None => return Err("empty"),
    };
    let number_len = rest
        .bytes()
        .take_while(|b| b.is_ascii_digit() || *b == b'.')
        .count();
    let (number, suffix) = rest.split_at(number_len);
    if number.is_empty() || number == "." {
        return Err("no number");
    }
    let (whole, frac) = number.split_once('.').unwrap_or((number, ""));
    if frac.contains('.') {
        return Err("more than one decimal point");
    }
    let digits = format!("{whole}{frac}");
    if digits.len() > 30 {
        return Err("too many digits");
    }
    let mantissa: i128 = digits.parse().map_err(|_| "not a number")?;
    // value = mantissa * num / den, then * 1000 for milli-units.
    let (mut num, mut den): (i128, i128) = (1000, 10i128.pow(frac.len() as u32));
    match suffix {
        "" => {}
        "n" => den *= 1_000_000_000,
        "u" => den *= 1_000_000,
        "m" => den *= 1000,
        "k" => num *= 1000,
        "M" => num *= 1_000_000,
        "G" => num *= 1_000_000_000,
        "T" => num *= 1_000_000_000_000,
        "P" => num *= 1_000_000_000_000_000,
        "E" => num *= 1_000_000_000_000_000_000,
        "Ki" => num <<= 10,
        "Mi" => num <<= 20,
        "Gi" => num <<= 30,
        "Ti" => num <<= 40,
        "Pi" => num <<= 50,
        "Ei" => num <<= 60,
        _ if suffix.starts_with(['e', 'E']) => {
            let exponent: i32 = suffix[1..].parse().map_err(|_| "bad exponent")?;
            if exponent.unsigned_abs() > 18 {
                return Err("exponent out of range");
            }
            let power = 10i128.pow(exponent.unsigned_abs());
            if exponent >= 0 { num *= power } else { den *= power }
        }
        _ => return Err("unknown suffix"),
    }
    let scaled = mantissa.checked_mul(num).ok_or("too large")?;
    let milli = scaled / den + i128::from(scaled % den != 0);
    Ok(sign * milli)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_kubernetes_quantities_exactly() {
        let cases = [
            ("500m", 500),
            ("2", 2000),
            ("1.5", 1500),
            ("0.1", 100),
            ("16Gi", 16 * (1 << 30) * 1000),
            ("1G", 1_000_000_000_000),
            ("1k", 1_000_000),
            ("100Ki", 100 * 1024 * 1000),
            ("1e3", 1_000_000),
            ("1E3", 1_000_000),
            ("2.5e-3", 3), // 2.5 milli rounds up
            ("1n", 1),
            ("0", 0),
            ("+4", 4000),
            ("-1", -1000),
            ("1Ei", (1i128 << 60) * 1000),
        ];
        for (text, milli) in cases {
            assert_eq!(parse_milli(text), Ok(milli), "{text}");
        }
    }

    #[test]
    fn rejects_malformed_quantities() {
        for text in ["", "m", "1.2.3", "1x", "abc", "1 Gi", "Gi", "1e", "1e99", "."] {
            assert!(parse_milli(text).is_err(), "{text:?} should be rejected");
        }
        let err = Quantity::parse("12q").unwrap_err();
        assert_eq!(err.to_string(), "quantity \"12q\" is invalid: unknown suffix");
    }
}
