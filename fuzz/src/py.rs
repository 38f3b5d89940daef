//! Python's `json.dumps(json.loads(s), sort_keys=True)`, written for the fuzzer from
//! Python's documented behaviour and nothing in `kafkachain`:
//!
//! - objects: keys sorted by code point (Rust's `String` order is the same), the last
//!   of duplicate keys wins (`dict` assignment), `", "` and `": "` separators;
//! - strings: `ensure_ascii`: `\"` `\\` `\n` `\r` `\t` `\b` `\f`, every other character
//!   outside `' '..='~'` as `\uXXXX` (lowercase hex, UTF-16 surrogate pairs);
//! - integers: `str(int(literal))` (so `-0` is `0`), any length;
//! - floats: `repr(float(literal))`: the shortest digits that round-trip, written
//!   positionally when the decimal exponent is in `-4..16` (with at least `.0`), else
//!   as `d.ddde±XX`; overflow is `Infinity`/`-Infinity`.
//!
//! The float digits come from `format!("{:e}")` (std's shortest round-trip formatter),
//! not the `ryu` crate the library uses.

use serde_json::Value;

/// The canonical form of a `serde_json` value (parsed with `arbitrary_precision`, so
/// numbers keep their literal).
pub fn dumps(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("null"),
        Value::Bool(true) => out.push_str("true"),
        Value::Bool(false) => out.push_str("false"),
        Value::Number(n) => number(&n.to_string(), out),
        Value::String(s) => string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                dumps(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            let mut members: Vec<(&String, &Value)> = map.iter().collect();
            members.sort_by(|a, b| a.0.cmp(b.0));
            out.push('{');
            for (i, (k, v)) in members.into_iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                string(k, out);
                out.push_str(": ");
                dumps(v, out);
            }
            out.push('}');
        }
    }
}

pub fn number(literal: &str, out: &mut String) {
    if literal.contains(['.', 'e', 'E']) {
        let x: f64 = literal.parse().unwrap_or(f64::NAN);
        float(x, out);
    } else if literal.trim_start_matches('-').bytes().all(|b| b == b'0') {
        out.push('0');
    } else {
        out.push_str(literal);
    }
}

pub fn float(x: f64, out: &mut String) {
    if x.is_nan() {
        out.push_str("NaN");
        return;
    }
    if x.is_infinite() {
        out.push_str(if x > 0.0 { "Infinity" } else { "-Infinity" });
        return;
    }
    // "{:e}" is "-1.2345e-5", "1e16", "0e0": the fewest digits that round-trip, but
    // not always the closest of that many (-89126545688943.62 comes out as
    // -8.912654568894363e13). Python's repr takes the closest that round-trips: the
    // correctly rounded string of that length, unless it does not round-trip (next
    // to a power of two, where the interval below is half as wide).
    let shortest = format!("{x:e}");
    let len = shortest
        .split('e')
        .next()
        .map_or(1, |m| m.bytes().filter(u8::is_ascii_digit).count());
    let closest = format!("{:.*e}", len.saturating_sub(1), x);
    let sci = if closest.parse::<f64>().ok() == Some(x) {
        closest
    } else {
        shortest
    };
    let (neg, sci) = match sci.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, sci.as_str()),
    };
    let (mantissa, exp) = sci.split_once('e').unwrap_or((sci, "0"));
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let exp: i32 = exp.parse().unwrap_or(0);
    if neg {
        out.push('-');
    }
    if (-4..16).contains(&exp) {
        if exp >= 0 {
            let int_len = exp as usize + 1;
            if digits.len() <= int_len {
                out.push_str(&digits);
                out.extend(std::iter::repeat_n('0', int_len - digits.len()));
                out.push_str(".0");
            } else {
                out.push_str(&digits[..int_len]);
                out.push('.');
                out.push_str(&digits[int_len..]);
            }
        } else {
            out.push_str("0.");
            out.extend(std::iter::repeat_n('0', (-exp - 1) as usize));
            out.push_str(&digits);
        }
    } else {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push_str(&format!(
            "e{}{:02}",
            if exp < 0 { '-' } else { '+' },
            exp.abs()
        ));
    }
}

pub fn string(s: &str, out: &mut String) {
    out.push('"');
    let mut units = [0u16; 2];
    for c in s.chars() {
        for &u in c.encode_utf16(&mut units).iter() {
            match u {
                0x22 => out.push_str("\\\""),
                0x5c => out.push_str("\\\\"),
                0x0a => out.push_str("\\n"),
                0x0d => out.push_str("\\r"),
                0x09 => out.push_str("\\t"),
                0x08 => out.push_str("\\b"),
                0x0c => out.push_str("\\f"),
                0x20..=0x7e => out.push(u as u8 as char),
                _ => out.push_str(&format!("\\u{u:04x}")),
            }
        }
    }
    out.push('"');
}

/// Deepest nesting of arrays and objects, outside strings (any bytes).
pub fn depth(s: &[u8]) -> usize {
    let (mut d, mut max, mut in_str, mut esc) = (0usize, 0usize, false, false);
    for &b in s {
        if in_str {
            if esc {
                esc = false;
            } else if b == b'\\' {
                esc = true;
            } else if b == b'"' {
                in_str = false;
            }
            continue;
        }
        match b {
            b'"' => in_str = true,
            b'[' | b'{' => {
                d += 1;
                max = max.max(d);
            }
            b']' | b'}' => d = d.saturating_sub(1),
            _ => {}
        }
    }
    max
}

/// The longest run of digits outside strings (an integer's length bounds it below).
pub fn longest_digit_run(s: &[u8]) -> usize {
    let (mut run, mut max, mut in_str, mut esc) = (0usize, 0usize, false, false);
    for &b in s {
        if in_str {
            if esc {
                esc = false;
            } else if b == b'\\' {
                esc = true;
            } else if b == b'"' {
                in_str = false;
            }
            continue;
        }
        if b.is_ascii_digit() {
            run += 1;
            max = max.max(run);
        } else {
            run = 0;
            in_str = b == b'"';
        }
    }
    max
}

/// Whether `s` is what Python decodes with `surrogatepass`: UTF-8 in which
/// surrogate code points (`ED A0..BF xx`) are also allowed.
pub fn is_utf8_surrogatepass(s: &[u8]) -> bool {
    let mut fixed = Vec::with_capacity(s.len());
    let mut i = 0;
    while i < s.len() {
        if s[i] == 0xed
            && i + 2 < s.len()
            && (0xa0..=0xbf).contains(&s[i + 1])
            && (0x80..=0xbf).contains(&s[i + 2])
        {
            fixed.extend_from_slice("\u{fffd}".as_bytes());
            i += 3;
        } else {
            fixed.push(s[i]);
            i += 1;
        }
    }
    std::str::from_utf8(&fixed).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn f(x: f64) -> String {
        let mut s = String::new();
        float(x, &mut s);
        s
    }

    #[test]
    fn floats_are_pythons_repr() {
        for (x, want) in [
            (0.0, "0.0"),
            (-0.0, "-0.0"),
            (1.0, "1.0"),
            (0.1, "0.1"),
            (1e16, "1e+16"),
            (1e15, "1000000000000000.0"),
            (9999999999999998.0, "9999999999999998.0"),
            (0.0001, "0.0001"),
            (1e-5, "1e-05"),
            (1.234e-5, "1.234e-05"),
            (5e-324, "5e-324"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (0.30000000000000004, "0.30000000000000004"),
            (123.456, "123.456"),
            (-89126545688943.62, "-89126545688943.62"),
        ] {
            assert_eq!(f(x), want, "{x:e}");
        }
    }
}
