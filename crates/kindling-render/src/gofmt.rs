//! Go's default value formatting (`%v`), where it differs from Rust's.

/// Formats a float64 as Go's `fmt` prints it with `%v`
/// (`strconv.FormatFloat(f, 'g', -1, 64)`, exponent form when the decimal
/// exponent is below -4 or at least 6): `1e+06`, `123456`, `1.5e-05`.
pub fn go_float(f: f64) -> String {
    if f.is_nan() {
        return "NaN".into();
    }
    if f.is_infinite() {
        return if f > 0.0 {
            "+Inf".into()
        } else {
            "-Inf".into()
        };
    }
    if f == 0.0 {
        return if f.is_sign_negative() {
            "-0".into()
        } else {
            "0".into()
        };
    }
    // Rust's `{:e}` gives the shortest round-trip digits, e.g. "1.234567e6".
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci.as_str(), "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if !(-4..6).contains(&exp) {
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.abs())
    } else {
        format!("{f}")
    }
}

#[cfg(test)]
mod tests {
    use super::go_float;

    #[test]
    fn matches_go() {
        for (f, want) in [
            (1000000.0, "1e+06"),
            (123456.0, "123456"),
            (1234567.0, "1.234567e+06"),
            (1.5, "1.5"),
            (-2.0, "-2"),
            (0.0001, "0.0001"),
            (0.00001, "1e-05"),
            (1e21, "1e+21"),
            (1e100, "1e+100"),
            (0.1, "0.1"),
            (3.0, "3"),
            (-1234567.5, "-1.2345675e+06"),
        ] {
            assert_eq!(go_float(f), want, "{f}");
        }
    }
}
