//! Numbers and times printed as Go prints them, for faro-contrib bodies: `%v` floats and the
//! `2006-01-02T15:04:05.999Z07:00` time layout (docs/faro-mapping.md#faro-contrib-compat-mode).

use std::fmt::Write as _;

use time::format_description::BorrowedFormatItem;
use time::macros::format_description;
use time::OffsetDateTime;

/// A float as Go's `%v` prints it (`strconv.FormatFloat(v, 'g', -1, 64)`): the shortest digits
/// that round-trip, in exponent form (`1e+06`, `1.5e-05`) when the exponent is below -4 or at
/// least 6, else plain (`22.12`, `14`).
pub fn go_float(v: f64) -> String {
    if v == 0.0 {
        return if v.is_sign_negative() { "-0" } else { "0" }.to_owned();
    }
    if !v.is_finite() {
        return match v {
            v if v.is_nan() => "NaN",
            v if v > 0.0 => "+Inf",
            _ => "-Inf",
        }
        .to_owned();
    }
    // Rust's `{:e}` gives the shortest round-trip digits: `-1.2345e-7`.
    let sci = format!("{v:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let mut out = String::with_capacity(digits.len() + 8);
    out.push_str(sign);
    if !(-4..6).contains(&exp) {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        let _ = write!(
            out,
            "e{}{:02}",
            if exp < 0 { '-' } else { '+' },
            exp.unsigned_abs()
        );
        return out;
    }
    // Plain: the decimal point sits `exp + 1` digits in.
    let point = exp + 1;
    if point <= 0 {
        out.push_str("0.");
        out.extend(std::iter::repeat_n('0', point.unsigned_abs() as usize));
        out.push_str(&digits);
    } else {
        let point = point as usize;
        if digits.len() <= point {
            out.push_str(&digits);
            out.extend(std::iter::repeat_n('0', point - digits.len()));
        } else {
            out.push_str(&digits[..point]);
            out.push('.');
            out.push_str(&digits[point..]);
        }
    }
    out
}

/// Epoch nanoseconds as Go's `2006-01-02T15:04:05.999Z07:00` in UTC: milliseconds without
/// trailing zeros, no fraction at all on a whole second.
pub fn rfc3339_millis(nanos: u64) -> String {
    const WHOLE: &[BorrowedFormatItem<'_>] =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]Z");
    const MILLIS: &[BorrowedFormatItem<'_>] =
        format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:1+]Z");
    // Sub-millisecond parts are cut, as Go's `.999` does; `1+` then drops trailing zeros.
    let millis = nanos / 1_000_000;
    let format = if millis.is_multiple_of(1000) {
        WHOLE
    } else {
        MILLIS
    };
    // Every u64 of nanoseconds (up to the year 2554) is a valid `OffsetDateTime`.
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(millis) * 1_000_000)
        .ok()
        .and_then(|at| at.format(format).ok())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floats_print_as_go_does() {
        let cases = [
            (14.0, "14", "14.000000"),
            (22.12, "22.12", "22.120000"),
            (0.1 + 0.2, "0.30000000000000004", "0.300000"),
            (0.0, "0", "0.000000"),
            (-2.5, "-2.5", "-2.500000"),
            (123_456.0, "123456", "123456.000000"),
            (1e6, "1e+06", "1000000.000000"),
            (1_234_567.0, "1.234567e+06", "1234567.000000"),
            (
                1_742_203_289_645.0,
                "1.742203289645e+12",
                "1742203289645.000000",
            ),
            (0.0001, "0.0001", "0.000100"),
            (0.00001, "1e-05", "0.000010"),
            (-1.5e-7, "-1.5e-07", "-0.000000"),
            (1e21, "1e+21", "1000000000000000000000.000000"),
            (5e-324, "5e-324", "0.000000"),
        ];
        for (v, go_v, go_f) in cases {
            assert_eq!(go_float(v), go_v, "%v of {v}");
            assert_eq!(format!("{v:.6}"), go_f, "%f of {v}");
        }
    }

    #[test]
    fn timestamps_are_rfc3339_with_trimmed_millis() {
        let at = |ms: u64| rfc3339_millis(ms * 1_000_000);
        assert_eq!(at(1_632_998_777_680), "2021-09-30T10:46:17.68Z");
        assert_eq!(at(1_700_128_855_995), "2023-11-16T10:00:55.995Z");
        assert_eq!(at(1_632_998_777_000), "2021-09-30T10:46:17Z");
        assert_eq!(at(1_632_998_777_100), "2021-09-30T10:46:17.1Z");
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        assert_eq!(at(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(at(4_102_444_799_999), "2099-12-31T23:59:59.999Z");
        // Sub-millisecond parts are cut, as Go's `.999` does.
        assert_eq!(
            rfc3339_millis(1_632_998_777_680_999_999),
            "2021-09-30T10:46:17.68Z"
        );
    }
}
