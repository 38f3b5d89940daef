//! Python's `repr(float)` (what `json.dumps` writes for a float), written
//! independently of the crate: the digits come from Rust's standard formatter
//! (`{:e}` for the shortest length, then `{:.N$e}` exactly rounded; Grisu and Dragon4),
//! not from `ryu` as in `chain::canonical::write_py_float`, and the layout follows CPython's
//! `float_repr_style = 'short'`: with `0.DIGITS × 10^decpt`, fixed notation when
//! `-4 < decpt <= 16`, else `d.ddde±XX` (at least two exponent digits).
//! `tests/chain_golden.rs` checks this encoder against Python-generated vectors.
#![allow(dead_code)]

/// `json.dumps(x)` for a float: `repr(x)`, or `NaN` / `Infinity` / `-Infinity`.
pub fn py_repr(x: f64) -> String {
    if x.is_nan() {
        return "NaN".into();
    }
    if x.is_infinite() {
        return if x > 0.0 { "Infinity" } else { "-Infinity" }.into();
    }
    // `{:e}` gives the shortest digit count that round-trips, but not always the
    // closest such digits; CPython (David Gay's dtoa, mode 0) takes the closest, which
    // is the exactly rounded `{:.N$e}` at that length.
    let shortest = format!("{x:e}");
    let n = shortest
        .split('e')
        .next()
        .map_or(1, |m| m.chars().filter(char::is_ascii_digit).count());
    let sci = format!("{x:.prec$e}", prec = n - 1);
    let (mantissa, exp) = sci.split_once('e').expect("{:e} always has an exponent");
    let exp: i32 = exp.parse().expect("{:e} exponent is an integer");
    let (neg, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => (true, m),
        None => (false, mantissa),
    };
    let digits: String = mantissa.chars().filter(|c| *c != '.').collect();
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    if x == 0.0 {
        out.push_str("0.0");
        return out;
    }
    let decpt = exp + 1;
    let n = digits.len() as i32;
    if -4 < decpt && decpt <= 16 {
        if decpt <= 0 {
            out.push_str("0.");
            out.push_str(&"0".repeat((-decpt) as usize));
            out.push_str(&digits);
        } else if decpt >= n {
            out.push_str(&digits);
            out.push_str(&"0".repeat((decpt - n) as usize));
            out.push_str(".0");
        } else {
            out.push_str(&digits[..decpt as usize]);
            out.push('.');
            out.push_str(&digits[decpt as usize..]);
        }
    } else {
        out.push_str(&digits[..1]);
        if n > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push('e');
        out.push(if exp < 0 { '-' } else { '+' });
        out.push_str(&format!("{:02}", exp.abs()));
    }
    out
}

/// The significant digits of a finite float literal (`"-0.00120e+5"` ⇒ `"12"`).
pub fn significant_digits(literal: &str) -> String {
    let mantissa = literal
        .trim_start_matches('-')
        .split(['e', 'E'])
        .next()
        .unwrap_or("");
    let digits: String = mantissa.chars().filter(|c| c.is_ascii_digit()).collect();
    digits
        .trim_start_matches('0')
        .trim_end_matches('0')
        .to_string()
}

/// Why `literal` is not Python's repr of `x` by the definition of repr, without
/// reference to any encoder: it must parse back to `x` exactly, no literal with one
/// digit fewer may do so, and its digits must be the correctly rounded ones (the
/// closest of the shortest). `None` when it is.
pub fn not_shortest_repr(x: f64, literal: &str) -> Option<String> {
    let back: f64 = match literal.parse() {
        Ok(v) => v,
        Err(e) => return Some(format!("{literal} does not parse: {e}")),
    };
    if back.to_bits() != x.to_bits() {
        return Some(format!("{literal} parses to {back:e}, not {x:e}"));
    }
    if x == 0.0 {
        return None;
    }
    let digits = significant_digits(literal);
    let n = digits.len();
    // Rust's `{:.N$e}` is exactly rounded (Dragon4 in exact mode).
    if n > 1 {
        let shorter = format!("{x:.prec$e}", prec = n - 2);
        if shorter.parse::<f64>().map(f64::to_bits) == Ok(x.to_bits()) {
            return Some(format!(
                "{literal} has {n} digits, but {shorter} also round-trips"
            ));
        }
    }
    let rounded = significant_digits(&format!("{x:.prec$e}", prec = n - 1));
    if rounded != digits {
        return Some(format!(
            "{literal}: the closest {n}-digit decimal has digits {rounded}"
        ));
    }
    None
}
