//! Resource amounts in requests: `4` means exactly 4, `4+` means at least 4 (SkyPilot's syntax
//! for `cpus` and `memory`).

use std::fmt;
use std::str::FromStr;

use crate::CatalogError;

/// A requested amount of vCPUs or memory: exact (`4`) or a lower bound (`4+`).
///
/// ```
/// use skyplan_catalog::Amount;
/// let at_least: Amount = "8+".parse().unwrap();
/// assert!(at_least.admits(16.0) && !at_least.admits(4.0));
/// let exact: Amount = "8".parse().unwrap();
/// assert!(exact.admits(8.0) && !exact.admits(16.0));
/// assert!("-1".parse::<Amount>().is_err());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Amount {
    /// The number.
    pub value: f64,
    /// `true` for `N+` (at least), `false` for exactly `N`.
    pub at_least: bool,
}

impl Amount {
    /// Exactly `value`.
    pub fn exactly(value: f64) -> Self {
        Amount {
            value,
            at_least: false,
        }
    }

    /// At least `value`.
    pub fn at_least(value: f64) -> Self {
        Amount {
            value,
            at_least: true,
        }
    }

    /// Whether an offer providing `have` satisfies this request.
    pub fn admits(&self, have: f64) -> bool {
        if self.at_least {
            have + 1e-9 >= self.value
        } else {
            (have - self.value).abs() < 1e-9
        }
    }
}

impl FromStr for Amount {
    type Err = CatalogError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let trimmed = text.trim();
        let (number, at_least) = match trimmed.strip_suffix('+') {
            Some(rest) => (rest.trim(), true),
            None => (trimmed, false),
        };
        match number.parse::<f64>() {
            Ok(value) if value.is_finite() && value >= 0.0 => Ok(Amount { value, at_least }),
            _ => Err(CatalogError::InvalidQuery {
                what: "amount",
                value: text.to_string(),
                expected: "a non-negative number, optionally followed by `+` (e.g. `4` or `4+`)",
            }),
        }
    }
}

impl TryFrom<String> for Amount {
    type Error = CatalogError;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        text.parse()
    }
}

impl From<Amount> for String {
    fn from(amount: Amount) -> String {
        amount.to_string()
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.value, if self.at_least { "+" } else { "" })
    }
}
