//! Python's way of printing values. StackStorm renders templates with Python, so a list prints
//! as `[1, 'a']`, `None`/`True` are capitalised, floats print as `repr()` does (`1e+16`,
//! `100.0`), and strings inside containers are quoted with Python's escapes.

use serde_json::Value;

/// Python's `repr()` of a float: the shortest digits that round-trip, in fixed notation when the
/// exponent is in `-4..16`, else in scientific notation with a signed two-digit exponent.
pub fn float_repr(f: f64) -> String {
    if f.is_nan() {
        return "nan".to_owned();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf" } else { "-inf" }.to_owned();
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0.0" } else { "0.0" }.to_owned();
    }
    // Rust's `{:e}` gives the shortest round-trip digits: "1.5e-5", "1e16".
    let sci = format!("{f:e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    let negative = mantissa.starts_with('-');
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let sign = if negative { "-" } else { "" };
    if (-4..16).contains(&exp) {
        // Fixed notation: place the decimal point `exp + 1` digits in.
        let point = exp + 1;
        let body = if point <= 0 {
            format!("0.{}{}", "0".repeat((-point) as usize), digits)
        } else if (point as usize) >= digits.len() {
            format!("{}{}.0", digits, "0".repeat(point as usize - digits.len()))
        } else {
            format!(
                "{}.{}",
                &digits[..point as usize],
                &digits[point as usize..]
            )
        };
        format!("{sign}{body}")
    } else {
        let mut m = digits[..1].to_owned();
        if digits.len() > 1 {
            m.push('.');
            m.push_str(&digits[1..]);
        }
        let esign = if exp < 0 { '-' } else { '+' };
        format!("{sign}{m}e{esign}{:02}", exp.abs())
    }
}

/// True for characters Python's `str.isprintable()` rejects (so `repr()` escapes them):
/// control and format characters, line/paragraph separators, spaces other than ' ',
/// private-use and surrogate code points.
fn is_unprintable(c: char) -> bool {
    let u = c as u32;
    c.is_control()
        || matches!(u,
            0x00A0 | 0x00AD | 0x1680 | 0x180E | 0x2000..=0x200F | 0x2028..=0x202F
            | 0x205F..=0x2064 | 0x2066..=0x206F | 0x3000 | 0xFEFF | 0xFFF9..=0xFFFB
            | 0x0600..=0x0605 | 0x061C | 0x06DD | 0x070F | 0x110BD | 0x110CD
            | 0x1D173..=0x1D17A | 0xE0001 | 0xE0020..=0xE007F
            | 0xE000..=0xF8FF | 0xF0000..=0x10FFFF)
}

/// Python's `repr()` of a string: single quotes unless the text holds `'` and no `"`, with
/// `\\`, `\n`, `\r`, `\t` and unprintable characters escaped.
pub fn str_repr(s: &str) -> String {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    let mut out = String::with_capacity(s.len() + 2);
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if is_unprintable(c) => {
                let u = c as u32;
                if u < 0x100 {
                    out.push_str(&format!("\\x{u:02x}"));
                } else if u < 0x10000 {
                    out.push_str(&format!("\\u{u:04x}"));
                } else {
                    out.push_str(&format!("\\U{u:08x}"));
                }
            }
            c => out.push(c),
        }
    }
    out.push(quote);
    out
}

/// Python's `str()` of a JSON value: strings as they are, everything else as [`repr`].
pub fn str(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => repr(other),
    }
}

/// Python's `repr()` of a JSON value (`None`, `True`, `[1, 'a']`, `{'k': 2.5}`).
pub fn repr(v: &Value) -> String {
    let mut out = String::new();
    write_repr(v, &mut out);
    out
}

fn write_repr(v: &Value, out: &mut String) {
    match v {
        Value::Null => out.push_str("None"),
        Value::Bool(true) => out.push_str("True"),
        Value::Bool(false) => out.push_str("False"),
        Value::Number(n) => match n
            .as_i64()
            .map(|i| i.to_string())
            .or_else(|| n.as_u64().map(|u| u.to_string()))
        {
            Some(i) => out.push_str(&i),
            None => out.push_str(&float_repr(n.as_f64().unwrap_or(f64::NAN))),
        },
        Value::String(s) => out.push_str(&str_repr(s)),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                write_repr(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => {
            out.push('{');
            for (i, (k, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(&str_repr(k));
                out.push_str(": ");
                write_repr(item, out);
            }
            out.push('}');
        }
    }
}

/// Python's type name of a JSON value (`NoneType`, `bool`, `int`, `float`, `str`, `list`,
/// `dict`), as error messages print it.
pub fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "NoneType",
        Value::Bool(_) => "bool",
        Value::Number(n) if n.is_f64() => "float",
        Value::Number(_) => "int",
        Value::String(_) => "str",
        Value::Array(_) => "list",
        Value::Object(_) => "dict",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn floats_print_like_python() {
        let cases = [
            (1e300, "1e+300"),
            (2.5e-300, "2.5e-300"),
            (100.0, "100.0"),
            (1.5e15, "1500000000000000.0"),
            (1e16, "1e+16"),
            (0.1 + 0.2, "0.30000000000000004"),
            (1.5e-5, "1.5e-05"),
            (0.0001, "0.0001"),
            (-3.5, "-3.5"),
            (4.25125, "4.25125"),
            (9007199254740992.0, "9007199254740992.0"),
            (f64::INFINITY, "inf"),
        ];
        for (f, expected) in cases {
            assert_eq!(float_repr(f), expected, "{f}");
        }
    }

    #[test]
    fn strings_and_containers_print_like_python() {
        assert_eq!(
            repr(&json!([
                "it's",
                "say \"x\"",
                "both ' and \"",
                "back\\slash",
                "nl\nx",
                "tab\tx"
            ])),
            r#"["it's", 'say "x"', 'both \' and "', 'back\\slash', 'nl\nx', 'tab\tx']"#
        );
        assert_eq!(
            repr(&json!([
                "ünï", "\u{a0}", "\u{200b}", "\u{7f}", "\u{2028}", "😀", "\u{1}"
            ])),
            r"['ünï', '\xa0', '\u200b', '\x7f', '\u2028', '😀', '\x01']"
        );
        assert_eq!(
            repr(&json!({"a": null, "b": [true, 1.0]})),
            "{'a': None, 'b': [True, 1.0]}"
        );
        assert_eq!(str(&json!("plain")), "plain");
    }
}
