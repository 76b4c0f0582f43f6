//! Checked money arithmetic, the one place skyplan multiplies and adds dollars: every product of a
//! price and a quantity (nodes, hours, GB, GPUs) and every sum of costs goes through here, so an
//! amount too large for `Decimal` (about 7.9e28) is an error naming the inputs
//! (`price 7.9e28 $/h × 1000 nodes × 1e27 h is too large ...`) rather than a panic, and a quantity
//! that is not a finite non-negative number is refused rather than silently priced as 0 or 1.
//!
//! The bounds the inputs are checked against where they are read ([`MAX_HOURLY_PRICE`] for catalog
//! rows, spot overlays and configured cluster prices; [`MAX_DURATION_HOURS`] for task durations)
//! keep every real plan far from overflow; the checks here guard what the bounds cannot (library
//! callers, extreme node counts, many tasks).
//!
//! ```
//! use rust_decimal::Decimal;
//! use skyplan_catalog::money;
//! let (hourly, cost) = money::task_cost(Decimal::new(98, 0), 2, 1.5).unwrap();
//! assert_eq!((hourly.to_string(), cost.to_string()), ("196".to_string(), "294.0".to_string()));
//! let err = money::task_cost(Decimal::MAX, 1000, 1e27).unwrap_err();
//! assert!(err.to_string().starts_with("price 7.923e28 $/h × 1000 nodes × 1e27 h is too large"));
//! ```

use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;

/// The largest hourly price accepted anywhere a price is read (catalog rows, spot overlays,
/// configured cluster prices): $1,000,000 per hour, about 30 times the dearest offer in the
/// bundled catalogs (a 12,288-chip TPU v5p slice at about $29,000/h).
pub const MAX_HOURLY_PRICE: Decimal = Decimal::from_parts(1_000_000, 0, 0, false, 0);

/// The largest egress price accepted, in $ per GB (real clouds charge cents).
pub const MAX_PRICE_PER_GB: Decimal = Decimal::from_parts(1_000, 0, 0, false, 0);

/// The largest cost (in $) the integer program is handed: costs travel to HiGHS as floats, and
/// HiGHS treats coefficients from 1e20 on as infinite; below 1e15 a float still tells cents apart
/// from the dollars around them.
pub const MAX_SOLVER_COST: Decimal = Decimal::from_parts(2_764_472_320, 232_830, 0, false, 0);

/// The longest task duration accepted, in hours (about 114 years). Durations are estimates used
/// for cost and makespan; anything longer is a typo, and far longer ones cannot be priced.
pub const MAX_DURATION_HOURS: f64 = 1_000_000.0;

/// A money computation whose result cannot be represented, or whose quantity is not a number.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{expression} {problem}")]
pub struct MoneyError {
    /// The computation with its inputs, e.g. `price 7.9e28 $/h × 1000 nodes × 1e27 h`.
    pub expression: String,
    /// What is wrong with it.
    pub problem: String,
}

impl MoneyError {
    /// An amount the integer program cannot be handed (see [`MAX_SOLVER_COST`]).
    pub fn beyond_solver(cost: Decimal) -> MoneyError {
        MoneyError {
            expression: format!("cost {} $", show(cost)),
            problem: format!(
                "is too large for the integer program to compare exactly (at most {} $)",
                show(MAX_SOLVER_COST)
            ),
        }
    }

    fn too_large(expression: String) -> MoneyError {
        MoneyError {
            expression,
            problem: format!(
                "is too large: amounts above {} $ cannot be computed exactly",
                show(Decimal::MAX)
            ),
        }
    }

    fn not_a_quantity(expression: String, value: f64) -> MoneyError {
        MoneyError {
            expression,
            problem: format!("cannot be priced: {value} is not a finite, non-negative quantity"),
        }
    }
}

/// A compact, readable form of an amount for messages: exact below a billion, else 4 significant
/// digits in scientific notation (`7.923e28`).
pub fn show(amount: Decimal) -> String {
    if amount.abs() < Decimal::from(1_000_000_000u32) {
        return amount.normalize().to_string();
    }
    show_f64(amount.to_f64().unwrap_or(f64::MAX))
}

/// Like [`show`], for a float quantity (hours, GB, GPUs).
pub fn show_f64(value: f64) -> String {
    if value == 0.0 || !value.is_finite() || (1e-6..1e9).contains(&value.abs()) {
        return format!("{value}");
    }
    let text = format!("{value:.3e}");
    match text.split_once('e') {
        Some((mantissa, exponent)) if mantissa.contains('.') => {
            format!(
                "{}e{exponent}",
                mantissa.trim_end_matches('0').trim_end_matches('.')
            )
        }
        _ => text,
    }
}

/// A float quantity (hours, GB, GPUs, vCPUs) of `unit` as a `Decimal`, or an error when it is
/// negative, not finite, or too large to represent.
pub fn quantity(value: f64, unit: &str) -> Result<Decimal, MoneyError> {
    to_decimal(value, || format!("{} {unit}", show_f64(value)))
}

/// `value` as a `Decimal` (the shortest decimal that reads back as `value`), or an error naming
/// `expression` when it is negative, not finite, or too large to represent.
fn to_decimal(value: f64, expression: impl Fn() -> String) -> Result<Decimal, MoneyError> {
    if !value.is_finite() || value < 0.0 {
        return Err(MoneyError::not_a_quantity(expression(), value));
    }
    Decimal::try_from(value).map_err(|_| MoneyError::too_large(expression()))
}

/// `price` $/h for `nodes` nodes: the hourly price of a whole task.
pub fn per_hour(price: Decimal, nodes: u32) -> Result<Decimal, MoneyError> {
    price
        .checked_mul(Decimal::from(nodes))
        .ok_or_else(|| MoneyError::too_large(format!("price {} $/h × {nodes} nodes", show(price))))
}

/// `price` $/h per node for `nodes` nodes over `hours`: (the task's $/h, its cost in $). Errors
/// name all three inputs.
pub fn task_cost(price: Decimal, nodes: u32, hours: f64) -> Result<(Decimal, Decimal), MoneyError> {
    let expression = || {
        format!(
            "price {} $/h × {nodes} nodes × {} h",
            show(price),
            show_f64(hours)
        )
    };
    let hours_dec = to_decimal(hours, expression)?;
    let hourly = price
        .checked_mul(Decimal::from(nodes))
        .ok_or_else(|| MoneyError::too_large(expression()))?;
    let cost = hourly
        .checked_mul(hours_dec)
        .ok_or_else(|| MoneyError::too_large(expression()))?;
    Ok((hourly, cost))
}

/// `rate` $ per `unit` × `quantity` units (e.g. `0.09 $/GB × 500 GB`, `2.1 $/GPU × 8 GPU`). A
/// zero rate costs nothing for any finite non-negative quantity.
pub fn times(rate: Decimal, quantity: f64, unit: &str) -> Result<Decimal, MoneyError> {
    let expression = || format!("{} $/{unit} × {} {unit}", show(rate), show_f64(quantity));
    if rate.is_zero() && quantity.is_finite() && quantity >= 0.0 {
        return Ok(Decimal::ZERO);
    }
    let quantity_dec = to_decimal(quantity, expression)?;
    rate.checked_mul(quantity_dec)
        .ok_or_else(|| MoneyError::too_large(expression()))
}

/// `rate` $ per `unit` × an exact `quantity` of units.
pub fn mul(rate: Decimal, quantity: Decimal, unit: &str) -> Result<Decimal, MoneyError> {
    rate.checked_mul(quantity)
        .ok_or_else(|| MoneyError::too_large(format!("{} $/{unit} × {} {unit}", show(rate), show(quantity))))
}

/// `a` + `b` dollars (or dollars per hour: the unit is the caller's, `$` in messages).
pub fn add(a: Decimal, b: Decimal) -> Result<Decimal, MoneyError> {
    a.checked_add(b)
        .ok_or_else(|| MoneyError::too_large(format!("{} $ + {} $", show(a), show(b))))
}

/// The sum of `amounts`, failing at the first partial sum that cannot be represented.
pub fn sum(amounts: impl IntoIterator<Item = Decimal>) -> Result<Decimal, MoneyError> {
    amounts.into_iter().try_fold(Decimal::ZERO, add)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(text: &str) -> Decimal {
        Decimal::from_scientific(text).unwrap()
    }

    #[test]
    fn products_and_sums_within_range_are_exact() {
        let price = Decimal::new(8048, 4);
        assert_eq!(per_hour(price, 3).unwrap(), Decimal::new(24144, 4));
        assert_eq!(task_cost(price, 2, 0.5).unwrap().1, Decimal::new(8048, 4));
        assert_eq!(
            times(Decimal::new(9, 2), 100.0, "GB").unwrap(),
            Decimal::new(9, 0)
        );
        assert_eq!(times(Decimal::ZERO, 1e300, "GB").unwrap(), Decimal::ZERO);
        assert_eq!(
            sum([Decimal::ONE, Decimal::new(5, 1)]).unwrap(),
            Decimal::new(15, 1)
        );
        assert_eq!(sum(std::iter::empty()).unwrap(), Decimal::ZERO);
        assert_eq!(quantity(0.5, "GB").unwrap(), Decimal::new(5, 1));
        assert_eq!(
            mul(Decimal::new(25, 2), Decimal::TWO, "GPU").unwrap(),
            Decimal::new(50, 2)
        );
    }

    #[test]
    fn overflow_names_every_input() {
        let err = task_cost(dec("7.9e28"), 1000, 1e27).unwrap_err();
        assert_eq!(err.expression, "price 7.9e28 $/h × 1000 nodes × 1e27 h");
        assert!(err.to_string().contains("is too large"), "{err}");
        // Overflow in the node product alone.
        let err = per_hour(Decimal::MAX, 2).unwrap_err();
        assert_eq!(err.expression, "price 7.923e28 $/h × 2 nodes");
        let big = dec("4e28");
        let err = add(big, big).unwrap_err();
        assert_eq!(err.expression, "4e28 $ + 4e28 $");
        assert!(sum([big, Decimal::ONE, big]).is_err());
        let err = times(dec("1e28"), 1e6, "GPU").unwrap_err();
        assert_eq!(err.expression, "1e28 $/GPU × 1000000 GPU");
        let err = mul(dec("1e28"), Decimal::from(8), "GPU").unwrap_err();
        assert_eq!(err.expression, "1e28 $/GPU × 8 GPU");
        assert_eq!(quantity(1e30, "GiB").unwrap_err().expression, "1e30 GiB");
        // Hours beyond Decimal's range are refused, never priced as one hour.
        let err = task_cost(Decimal::ONE, 1, 1e30).unwrap_err();
        assert_eq!(err.expression, "price 1 $/h × 1 nodes × 1e30 h");
    }

    #[test]
    fn quantities_that_are_not_numbers_are_refused() {
        for bad in [f64::NAN, f64::INFINITY, -1.0] {
            let err = times(Decimal::ONE, bad, "GB").unwrap_err();
            assert!(err.to_string().contains("cannot be priced"), "{err}");
            assert!(task_cost(Decimal::ONE, 1, bad).is_err());
        }
    }

    #[test]
    fn bounds_are_the_documented_numbers() {
        assert_eq!(MAX_HOURLY_PRICE.to_string(), "1000000");
        assert_eq!(MAX_PRICE_PER_GB.to_string(), "1000");
        assert_eq!(MAX_SOLVER_COST, dec("1e15"));
    }

    #[test]
    fn show_is_compact() {
        assert_eq!(show(Decimal::new(25, 2)), "0.25");
        assert_eq!(show(Decimal::new(1_000_000, 0)), "1000000");
        assert_eq!(show(Decimal::MAX), "7.923e28");
        assert_eq!(show_f64(1e27), "1e27");
        assert_eq!(show_f64(1.5), "1.5");
        assert_eq!(show_f64(2.5e-9), "2.5e-9");
    }
}
