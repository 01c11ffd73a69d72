//! Numbers as Redis reads and writes them: strict integers, floats, cursors and the text of a double.
//!
//! Redis is picky about numbers (`string2ll`): no sign `+`, no leading zeros, no spaces, no `-0`. Clients rely on
//! the errors that follow, so every parser here matches Redis's rules rather than Rust's `str::parse`.

/// Parses a signed 64-bit integer with Redis's `string2ll` rules.
pub fn parse_i64(s: &[u8]) -> Option<i64> {
    if s == b"0" {
        return Some(0);
    }
    let (negative, digits) = match s.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, s),
    };
    match digits.first() {
        Some(b'1'..=b'9') => {}
        _ => return None,
    }
    if digits.len() > 19 {
        return None;
    }
    let value = parse_digits(digits)?;
    if negative {
        0i64.checked_sub_unsigned(value)
    } else {
        i64::try_from(value).ok()
    }
}

/// Decimal digits only (empty reads as 0), or `None` on any other byte or on overflow of u64.
fn parse_digits(digits: &[u8]) -> Option<u64> {
    digits.iter().try_fold(0u64, |value, &d| {
        if !d.is_ascii_digit() {
            return None;
        }
        value.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// Parses a SCAN cursor like Redis's `strtoull`: optional sign, decimal digits, no trailing bytes, no leading space.
///
/// As in C, a leading `-` negates modulo 2^64 and an empty string reads as 0.
pub fn parse_cursor(s: &[u8]) -> Option<u64> {
    let (negative, digits) = match s.split_first() {
        Some((b'-', rest)) => (true, rest),
        Some((b'+', rest)) => (false, rest),
        _ => (false, s),
    };
    if s.len() == 1 && digits.is_empty() {
        return None;
    }
    let value = parse_digits(digits)?;
    Some(if negative { value.wrapping_neg() } else { value })
}

/// Parses a float like Redis's `string2ld`: no leading space, no trailing bytes, NaN refused; `inf` accepted.
pub fn parse_f64(s: &[u8]) -> Option<f64> {
    const FLOAT_LEN_MAX: usize = 5 * 1024;
    let first = *s.first()?;
    if s.len() > FLOAT_LEN_MAX || first.is_ascii_whitespace() || first == 0x0b {
        return None;
    }
    let value: f64 = std::str::from_utf8(s).ok()?.parse().ok()?;
    (!value.is_nan()).then_some(value)
}

/// Writes `value` as Redis 7.2 does (shortest round-trip digits in `%.17g` layout): `3.5`, `10`, `1e+21`, `inf`.
pub fn format_f64(value: f64, out: &mut Vec<u8>) {
    if value.is_nan() {
        out.extend_from_slice(b"nan");
        return;
    }
    if value.is_infinite() {
        out.extend_from_slice(if value > 0.0 { b"inf" } else { b"-inf" });
        return;
    }
    if value == 0.0 {
        out.extend_from_slice(if value.is_sign_negative() { b"-0" } else { b"0" });
        return;
    }
    // `{:e}` gives the shortest digits that round-trip, as `d.ddddde<exp>`.
    let sci = format!("{value:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let (negative, mantissa) = match mantissa.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, mantissa),
    };
    let digits: Vec<u8> = mantissa.bytes().filter(u8::is_ascii_digit).collect();
    if negative {
        out.push(b'-');
    }
    if (-4..17).contains(&exp) {
        write_fixed(&digits, exp, out);
    } else {
        write_scientific(&digits, exp, out);
    }
}

/// `%g` fixed layout: digits with the point placed by `exp`, no trailing zeros after the point.
fn write_fixed(digits: &[u8], exp: i32, out: &mut Vec<u8>) {
    if exp < 0 {
        out.extend_from_slice(b"0.");
        out.extend(std::iter::repeat_n(b'0', (-exp - 1) as usize));
        out.extend_from_slice(digits);
        return;
    }
    let int_len = exp as usize + 1;
    if digits.len() <= int_len {
        out.extend_from_slice(digits);
        out.extend(std::iter::repeat_n(b'0', int_len - digits.len()));
    } else {
        out.extend_from_slice(&digits[..int_len]);
        out.push(b'.');
        out.extend_from_slice(&digits[int_len..]);
    }
}

/// `%g` scientific layout: `d.ddde+XX`, with at least two exponent digits.
fn write_scientific(digits: &[u8], exp: i32, out: &mut Vec<u8>) {
    out.push(digits[0]);
    if digits.len() > 1 {
        out.push(b'.');
        out.extend_from_slice(&digits[1..]);
    }
    out.push(b'e');
    out.push(if exp < 0 { b'-' } else { b'+' });
    let magnitude = exp.unsigned_abs();
    if magnitude < 10 {
        out.push(b'0');
    }
    out.extend_from_slice(itoa::Buffer::new().format(magnitude).as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt(v: f64) -> String {
        let mut out = Vec::new();
        format_f64(v, &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn integers_follow_string2ll() {
        assert_eq!(parse_i64(b"0"), Some(0));
        assert_eq!(parse_i64(b"-1"), Some(-1));
        assert_eq!(parse_i64(b"9223372036854775807"), Some(i64::MAX));
        assert_eq!(parse_i64(b"-9223372036854775808"), Some(i64::MIN));
        for bad in [&b""[..], b"-", b"+1", b"01", b"-0", b" 1", b"1 ", b"9223372036854775808", b"1a", b"-01"] {
            assert_eq!(parse_i64(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }

    #[test]
    fn cursors_follow_strtoull() {
        assert_eq!(parse_cursor(b"0"), Some(0));
        assert_eq!(parse_cursor(b""), Some(0));
        assert_eq!(parse_cursor(b"007"), Some(7));
        assert_eq!(parse_cursor(b"+7"), Some(7));
        assert_eq!(parse_cursor(b"-1"), Some(u64::MAX));
        assert_eq!(parse_cursor(b"18446744073709551616"), None);
        assert_eq!(parse_cursor(b" 1"), None);
        assert_eq!(parse_cursor(b"1x"), None);
        assert_eq!(parse_cursor(b"-"), None);
    }

    #[test]
    fn floats_follow_string2ld() {
        assert_eq!(parse_f64(b"1.5"), Some(1.5));
        assert_eq!(parse_f64(b"-3"), Some(-3.0));
        assert_eq!(parse_f64(b"1e3"), Some(1000.0));
        assert_eq!(parse_f64(b"inf"), Some(f64::INFINITY));
        for bad in [&b""[..], b"nan", b" 1", b"1 ", b"abc", b"1.5x"] {
            assert_eq!(parse_f64(bad), None);
        }
    }

    #[test]
    fn doubles_format_like_redis() {
        assert_eq!(fmt(0.0), "0");
        assert_eq!(fmt(10.0), "10");
        assert_eq!(fmt(-3.5), "-3.5");
        assert_eq!(fmt(0.1), "0.1");
        assert_eq!(fmt(0.0001), "0.0001");
        assert_eq!(fmt(0.00001), "1e-05");
        assert_eq!(fmt(1e16), "10000000000000000");
        assert_eq!(fmt(1e17), "1e+17");
        assert_eq!(fmt(1.5e300), "1.5e+300");
        assert_eq!(fmt(f64::INFINITY), "inf");
        assert_eq!(fmt(f64::NEG_INFINITY), "-inf");
        assert_eq!(fmt(f64::NAN), "nan");
        assert_eq!(fmt(5e-324), "5e-324");
        for v in [0.1, 1.0 / 3.0, 123456.789, 1e-7, f64::MAX, f64::MIN_POSITIVE] {
            assert_eq!(fmt(v).parse::<f64>().unwrap(), v);
        }
    }
}
