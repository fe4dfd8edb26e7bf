//! Exact conversion between fixed-point integers and decimal strings.
//!
//! Parsing never rounds: `"10.005"` at scale 2 is an error, not `10.00` or `10.01`.
//! Only plain decimal notation is accepted (digits, at most one `.`), because every
//! extra spelling (`+1`, `1e3`, ` 1`, `.5`) is one more thing a gateway and a
//! client could disagree about.

use thiserror::Error;

/// The most decimal places a product's price scale may have.
pub const SCALE_MAX: u8 = 9;
/// The longest decimal string accepted, in bytes: bounds the work on hostile input.
pub const DECIMAL_LEN_MAX: usize = 40;

/// Why a decimal string was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
pub enum DecimalError {
    /// The string is empty.
    #[error("empty number")]
    Empty,
    /// The string is longer than [`DECIMAL_LEN_MAX`].
    #[error("number is too long")]
    TooLong,
    /// Not plain decimal notation (a sign, exponent, space or other character).
    #[error("not a plain decimal number")]
    Syntax,
    /// More fractional digits than the scale allows; rounding would be needed.
    #[error("more than {0} decimal places")]
    TooPrecise(u8),
    /// The value does not fit the fixed-point integer.
    #[error("number is out of range")]
    Overflow,
    /// The scale itself is larger than [`SCALE_MAX`].
    #[error("scale is larger than {SCALE_MAX}")]
    BadScale,
}

/// Parses a non-negative decimal string into an integer count of 10^-`scale` units.
///
/// `parse_units("12.5", 2) == Ok(1250)`.
pub fn parse_units(text: &str, scale: u8) -> Result<i64, DecimalError> {
    if scale > SCALE_MAX {
        return Err(DecimalError::BadScale);
    }
    if text.is_empty() {
        return Err(DecimalError::Empty);
    }
    if text.len() > DECIMAL_LEN_MAX {
        return Err(DecimalError::TooLong);
    }
    let (int_part, frac_part) = match text.split_once('.') {
        Some((i, f)) => (i, Some(f)),
        None => (text, None),
    };
    if int_part.is_empty() || !int_part.bytes().all(|b| b.is_ascii_digit()) {
        return Err(DecimalError::Syntax);
    }
    let frac = frac_part.unwrap_or("");
    if frac_part.is_some() && frac.is_empty() {
        return Err(DecimalError::Syntax);
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return Err(DecimalError::Syntax);
    }
    // Trailing zeros carry no precision: "1.500" is fine at scale 2.
    let frac = frac.trim_end_matches('0');
    if frac.len() > usize::from(scale) {
        return Err(DecimalError::TooPrecise(scale));
    }
    let mut value: i64 = 0;
    for b in int_part.bytes() {
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(i64::from(b - b'0')))
            .ok_or(DecimalError::Overflow)?;
    }
    for i in 0..usize::from(scale) {
        let digit = frac.as_bytes().get(i).map_or(0, |b| i64::from(b - b'0'));
        value = value.checked_mul(10).and_then(|v| v.checked_add(digit)).ok_or(DecimalError::Overflow)?;
    }
    Ok(value)
}

/// Formats an integer count of 10^-`scale` units as a decimal string with exactly
/// `scale` fractional digits (`format_units(1250, 2) == "12.50"`).
pub fn format_units(units: i64, scale: u8) -> String {
    let scale = usize::from(scale.min(SCALE_MAX));
    let negative = units < 0;
    let digits = units.unsigned_abs().to_string();
    let mut out = String::with_capacity(digits.len() + scale + 3);
    if negative {
        out.push('-');
    }
    if scale == 0 {
        out.push_str(&digits);
        return out;
    }
    if digits.len() <= scale {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', scale - digits.len()));
        out.push_str(&digits);
    } else {
        let (i, f) = digits.split_at(digits.len() - scale);
        out.push_str(i);
        out.push('.');
        out.push_str(f);
    }
    out
}

/// The number of decimal places needed to write `text` exactly (`"0.01"` → 2).
/// Used to derive a product's price scale from its tick size.
pub fn scale_of(text: &str) -> Result<u8, DecimalError> {
    // Validate with the widest scale, then count significant fractional digits.
    parse_units(text, SCALE_MAX)?;
    let frac = text.split_once('.').map_or("", |(_, f)| f.trim_end_matches('0'));
    u8::try_from(frac.len()).map_err(|_| DecimalError::TooPrecise(SCALE_MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parse_table() {
        let check = |text: &str, scale: u8, expect: Result<i64, DecimalError>| {
            assert_eq!(parse_units(text, scale), expect, "parse_units({text:?}, {scale})");
        };
        check("0", 2, Ok(0));
        check("12", 2, Ok(1200));
        check("12.5", 2, Ok(1250));
        check("12.50", 2, Ok(1250));
        check("12.500000", 2, Ok(1250));
        check("0.01", 2, Ok(1));
        check("007.10", 2, Ok(710));
        check("10.005", 2, Err(DecimalError::TooPrecise(2)));
        check("1.5", 0, Err(DecimalError::TooPrecise(0)));
        check("", 2, Err(DecimalError::Empty));
        check(".5", 2, Err(DecimalError::Syntax));
        check("5.", 2, Err(DecimalError::Syntax));
        check("-1", 2, Err(DecimalError::Syntax));
        check("+1", 2, Err(DecimalError::Syntax));
        check("1e3", 2, Err(DecimalError::Syntax));
        check(" 1", 2, Err(DecimalError::Syntax));
        check("1.2.3", 2, Err(DecimalError::Syntax));
        check("NaN", 2, Err(DecimalError::Syntax));
        check("92233720368547758.08", 2, Err(DecimalError::Overflow));
        check("92233720368547758.07", 2, Ok(i64::MAX));
        check("1", 10, Err(DecimalError::BadScale));
        check(&"1".repeat(41), 0, Err(DecimalError::TooLong));
    }

    #[test]
    fn format_table() {
        let check = |units: i64, scale: u8, expect: &str| {
            assert_eq!(format_units(units, scale), expect);
        };
        check(1250, 2, "12.50");
        check(1, 2, "0.01");
        check(0, 2, "0.00");
        check(7, 0, "7");
        check(-5, 3, "-0.005");
        check(123_456_789, 4, "12345.6789");
    }

    #[test]
    fn scale_table() {
        assert_eq!(scale_of("0.01"), Ok(2));
        assert_eq!(scale_of("0.0100"), Ok(2));
        assert_eq!(scale_of("1"), Ok(0));
        assert_eq!(scale_of("0.0005"), Ok(4));
        assert_eq!(scale_of("x"), Err(DecimalError::Syntax));
    }

    proptest! {
        #[test]
        fn format_then_parse_round_trips(units in 0i64..i64::MAX, scale in 0u8..=SCALE_MAX) {
            prop_assert_eq!(parse_units(&format_units(units, scale), scale), Ok(units));
        }

        #[test]
        fn parse_never_panics(text in "\\PC{0,48}", scale in 0u8..=12) {
            let _ = parse_units(&text, scale);
        }
    }
}
