//! String functions with Python's `str` semantics (indexes count characters, `split()` without
//! a separator splits on runs of whitespace, `strip(chars)` strips any of the characters).

use super::{Builder, Call, D, Kind, T, o, p};
use crate::expr::yaql::eval::{Ev, R, type_error, value_error};
use crate::expr::yaql::stream;
use crate::expr::yaql::value::YaqlValue;

const F: Kind = Kind::Function;
const M: Kind = Kind::Method;
const E: Kind = Kind::Extension;

/// Python's `str.isspace()` for one character.
pub(crate) fn is_py_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// yaql's `str()`: `null`, `true`, `false`, else Python's `str()` of the value.
pub(crate) fn yaql_str(v: &YaqlValue) -> String {
    match v {
        YaqlValue::Null => "null".to_owned(),
        YaqlValue::Bool(true) => "true".to_owned(),
        YaqlValue::Bool(false) => "false".to_owned(),
        other => other.yaql_str(),
    }
}

/// Python slice bounds `[start:stop]` over `len` items (negative counts from the end,
/// everything clamped).
pub(crate) fn slice_bounds(len: usize, start: i64, stop: Option<i64>) -> (usize, usize) {
    let n = len as i64;
    let norm = |i: i64| -> usize {
        let i = if i < 0 {
            i.saturating_add(n).max(0)
        } else {
            i.min(n)
        };
        i as usize
    };
    let s = norm(start);
    let e = stop.map_or(len, norm);
    (s, e.max(s))
}

fn chars(s: &str) -> Vec<char> {
    s.chars().collect()
}

/// Python `s.find(sub, start, end)` / `rfind`, in characters.
fn py_find(s: &str, sub: &str, start: i64, end: Option<i64>, reverse: bool) -> i64 {
    let cs = chars(s);
    let (a, b) = slice_bounds(cs.len(), start, end);
    if start > cs.len() as i64 {
        return -1;
    }
    let hay: String = cs[a..b].iter().collect();
    let found = if reverse {
        hay.rfind(sub)
    } else {
        hay.find(sub)
    };
    match found {
        Some(byte) => (a + hay[..byte].chars().count()) as i64,
        None => -1,
    }
}

fn strip<'s>(s: &'s str, chars: Option<&str>, left: bool, right: bool) -> &'s str {
    let test = |c: char| match chars {
        Some(set) => set.contains(c),
        None => is_py_space(c),
    };
    let mut out = s;
    if left {
        out = out.trim_start_matches(test);
    }
    if right {
        out = out.trim_end_matches(test);
    }
    out
}

fn chars_arg(c: &Call, i: usize) -> Option<&str> {
    c.v(i).as_str()
}

/// Python `str.split(sep, maxsplit)`.
pub(crate) fn py_split(s: &str, sep: Option<&str>, maxsplit: i64) -> R<Vec<String>> {
    let limit = if maxsplit < 0 {
        usize::MAX
    } else {
        maxsplit as usize
    };
    match sep {
        Some("") => Err(value_error("empty separator")),
        Some(sep) => {
            let mut out = Vec::new();
            let mut rest = s;
            while out.len() < limit {
                match rest.find(sep) {
                    Some(i) => {
                        out.push(rest[..i].to_owned());
                        rest = &rest[i + sep.len()..];
                    }
                    None => break,
                }
            }
            out.push(rest.to_owned());
            Ok(out)
        }
        None => {
            let mut out = Vec::new();
            let mut rest = s.trim_start_matches(is_py_space);
            while !rest.is_empty() {
                if out.len() >= limit {
                    out.push(rest.to_owned());
                    break;
                }
                match rest.find(is_py_space) {
                    Some(i) => {
                        out.push(rest[..i].to_owned());
                        rest = rest[i..].trim_start_matches(is_py_space);
                    }
                    None => {
                        out.push(rest.to_owned());
                        break;
                    }
                }
            }
            Ok(out)
        }
    }
}

/// Python `str.rsplit(sep, maxsplit)`.
fn py_rsplit(s: &str, sep: Option<&str>, maxsplit: i64) -> R<Vec<String>> {
    let limit = if maxsplit < 0 {
        usize::MAX
    } else {
        maxsplit as usize
    };
    let mut out = Vec::new();
    match sep {
        Some("") => return Err(value_error("empty separator")),
        Some(sep) => {
            let mut rest = s;
            while out.len() < limit {
                match rest.rfind(sep) {
                    Some(i) => {
                        out.push(rest[i + sep.len()..].to_owned());
                        rest = &rest[..i];
                    }
                    None => break,
                }
            }
            out.push(rest.to_owned());
        }
        None => {
            let mut rest = s.trim_end_matches(is_py_space);
            while !rest.is_empty() {
                if out.len() >= limit {
                    out.push(rest.to_owned());
                    break;
                }
                match rest.rfind(is_py_space) {
                    Some(i) => {
                        let c_len = rest[i..].chars().next().map_or(1, char::len_utf8);
                        out.push(rest[i + c_len..].to_owned());
                        rest = rest[..i].trim_end_matches(is_py_space);
                    }
                    None => {
                        out.push(rest.to_owned());
                        break;
                    }
                }
            }
        }
    }
    out.reverse();
    Ok(out)
}

fn strings_list(ev: &mut Ev<'_>, parts: Vec<String>) -> R<YaqlValue> {
    ev.list(parts.into_iter().map(YaqlValue::from).collect())
}

fn split(ev: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    let parts = py_split(c.s(0), chars_arg(c, 1), c.int(2))?;
    strings_list(ev, parts)
}

fn right_split(ev: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    let parts = py_rsplit(c.s(0), chars_arg(c, 1), c.int(2))?;
    strings_list(ev, parts)
}

fn to_upper(ev: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    ev.string(c.s(0).to_uppercase())
}

fn to_lower(ev: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    ev.string(c.s(0).to_lowercase())
}

fn len_(_: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    Ok(YaqlValue::Int(c.s(0).chars().count() as i64))
}

fn join_strings(ev: &mut Ev<'_>, seq: &YaqlValue, sep: &str) -> R<YaqlValue> {
    let mut s = stream::iterate(seq)?;
    let mut out = String::new();
    let mut first = true;
    while let Some(item) = ev.pull(&mut *s)? {
        if !first {
            out.push_str(sep);
        }
        first = false;
        out.push_str(&yaql_str(&item));
        ev.check_str_len(out.len())?;
    }
    ev.string(out)
}

fn join(ev: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    join_strings(ev, c.v(0), c.s(1))
}

fn join_sep(ev: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    join_strings(ev, c.v(1), c.s(0))
}

fn str_(ev: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    ev.string(yaql_str(c.v(0)))
}

fn concat(ev: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    let mut out = String::new();
    for v in c.rest_values() {
        out.push_str(v.as_str().unwrap_or(""));
        ev.check_str_len(out.len())?;
    }
    ev.string(out)
}

fn trim(ev: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    ev.string(strip(c.s(0), chars_arg(c, 1), true, true).to_owned())
}

fn trim_left(ev: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    ev.string(strip(c.s(0), chars_arg(c, 1), true, false).to_owned())
}

fn trim_right(ev: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    ev.string(strip(c.s(0), chars_arg(c, 1), false, true).to_owned())
}

fn norm(ev: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    match c.v(0) {
        YaqlValue::Str(s) => {
            let t = strip(s, chars_arg(c, 1), true, true);
            if t.is_empty() {
                Ok(YaqlValue::Null)
            } else {
                ev.string(t.to_owned())
            }
        }
        _ => Ok(YaqlValue::Null),
    }
}

fn is_empty(_: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    Ok(YaqlValue::Bool(match c.v(0) {
        YaqlValue::Str(s) => {
            if c.v(1).truthy() {
                strip(s, chars_arg(c, 2), true, true).is_empty()
            } else {
                s.is_empty()
            }
        }
        _ => true,
    }))
}

/// Python `s.replace(old, new, count)` (negative count: all).
fn py_replace(ev: &mut Ev<'_>, s: &str, old: &str, new: &str, count: i64) -> R<String> {
    let limit = if count < 0 {
        usize::MAX
    } else {
        count as usize
    };
    if old.is_empty() {
        // Python inserts `new` between characters (and at both ends).
        let mut out = String::new();
        let mut n = 0;
        for ch in s.chars() {
            if n < limit {
                out.push_str(new);
                n += 1;
            }
            out.push(ch);
            ev.check_str_len(out.len())?;
        }
        if n < limit {
            out.push_str(new);
        }
        return Ok(out);
    }
    let occurrences = s.matches(old).count().min(limit);
    let grow = new
        .len()
        .saturating_sub(old.len())
        .saturating_mul(occurrences);
    ev.check_str_len(s.len().saturating_add(grow))?;
    Ok(s.replacen(old, new, limit))
}

fn replace(ev: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    let out = py_replace(ev, c.s(0), c.s(1), c.s(2), c.int(3))?;
    ev.string(out)
}

fn replace_with_dict(ev: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    let mut s = c.s(0).to_owned();
    if let YaqlValue::Dict(d) = c.v(1) {
        for (k, v) in d.iter() {
            s = py_replace(ev, &s, &yaql_str(k), &yaql_str(v), c.int(2))?;
        }
    }
    ev.string(s)
}

fn substring(ev: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    let cs = chars(c.s(0));
    let n = cs.len() as i64;
    let mut start = c.int(1);
    let mut length = c.int(2);
    if length < 0 {
        length = n;
    }
    if start < 0 {
        start = start.saturating_add(n);
    }
    let (a, b) = slice_bounds(cs.len(), start, Some(start.saturating_add(length)));
    ev.string(cs[a..b].iter().collect())
}

fn index_of(_: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    Ok(YaqlValue::Int(py_find(
        c.s(0),
        c.s(1),
        c.int(2),
        None,
        false,
    )))
}

fn start_length(c: &Call) -> (i64, i64) {
    let n = c.s(0).chars().count() as i64;
    let mut start = c.int(2);
    let mut length = c.int(3);
    if start < 0 {
        start = start.saturating_add(n);
    }
    if length < 0 {
        length = n.saturating_sub(start);
    }
    (start, start.saturating_add(length))
}

fn index_of_range(_: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    let (a, b) = start_length(c);
    Ok(YaqlValue::Int(py_find(c.s(0), c.s(1), a, Some(b), false)))
}

fn last_index_of(_: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    Ok(YaqlValue::Int(py_find(
        c.s(0),
        c.s(1),
        c.int(2),
        None,
        true,
    )))
}

fn last_index_of_range(_: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    let (a, b) = start_length(c);
    Ok(YaqlValue::Int(py_find(c.s(0), c.s(1), a, Some(b), true)))
}

fn to_char_array(ev: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    let items = c
        .s(0)
        .chars()
        .map(|ch| YaqlValue::from(ch.to_string()))
        .collect();
    ev.list(items)
}

const CHARACTER_SETS: [(&str, &str); 12] = [
    ("digits", "0123456789"),
    ("hexdigits", "0123456789abcdefABCDEF"),
    ("asciiLowercase", "abcdefghijklmnopqrstuvwxyz"),
    ("asciiUppercase", "ABCDEFGHIJKLMNOPQRSTUVWXYZ"),
    (
        "asciiLetters",
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
    ),
    ("letters", ""),
    ("octdigits", "01234567"),
    ("punctuation", "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"),
    (
        "printable",
        "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ\
         !\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~ \t\n\r\u{b}\u{c}",
    ),
    ("lowercase", ""),
    ("uppercase", ""),
    ("whitespace", " \t\n\r\u{b}\u{c}"),
];

fn characters(ev: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    let mut text = String::new();
    for (i, (name, set)) in CHARACTER_SETS.iter().enumerate() {
        if c.v(i).truthy() {
            if set.is_empty() {
                // Python 3's `string` module has no `letters`, `lowercase`, `uppercase`.
                return Err(value_error(format!(
                    "module 'string' has no attribute '{name}'"
                )));
            }
            text.push_str(set);
        }
    }
    let mut seen = std::collections::HashSet::new();
    let items = text
        .chars()
        .filter(|ch| seen.insert(*ch))
        .map(|ch| YaqlValue::from(ch.to_string()))
        .collect();
    ev.list(items)
}

fn is_string(_: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    Ok(YaqlValue::Bool(matches!(c.v(0), YaqlValue::Str(_))))
}

fn starts_with(_: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    let s = c.s(0);
    Ok(YaqlValue::Bool(c.rest_values().iter().any(|p| {
        s.starts_with(p.as_str().unwrap_or("\u{0}\u{0}"))
    })))
}

fn ends_with(_: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    let s = c.s(0);
    Ok(YaqlValue::Bool(
        c.rest_values()
            .iter()
            .any(|p| s.ends_with(p.as_str().unwrap_or("\u{0}\u{0}"))),
    ))
}

fn hex(_: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    match c.v(0) {
        YaqlValue::Int(i) => Ok(YaqlValue::from(if *i < 0 {
            format!("-0x{:x}", i.unsigned_abs())
        } else {
            format!("0x{i:x}")
        })),
        other => Err(type_error(format!(
            "'{}' object cannot be interpreted as an integer",
            other.type_name()
        ))),
    }
}

pub(crate) fn register(lib: &mut Builder) {
    lib.add("concat", F, &[], concat).rest(T::Str);
    lib.add("toUpper", M, &[p("string", T::Str)], to_upper);
    lib.add("toLower", M, &[p("string", T::Str)], to_lower);
    lib.add("len", E, &[p("string", T::Str)], len_);
    lib.add(
        "split",
        M,
        &[
            p("string", T::Str),
            o("separator", T::StrN, D::Null),
            o("maxSplits", T::Int, D::I(-1)),
        ],
        split,
    );
    lib.add(
        "rightSplit",
        M,
        &[
            p("string", T::Str),
            o("separator", T::StrN, D::Null),
            o("maxSplits", T::Int, D::I(-1)),
        ],
        right_split,
    );
    lib.add(
        "join",
        M,
        &[p("sequence", T::Iterable), p("separator", T::Str)],
        join,
    );
    lib.add(
        "join",
        M,
        &[p("separator", T::Str), p("sequence", T::Iterable)],
        join_sep,
    );
    lib.add("str", F, &[p("value", T::Any)], str_);
    for (name, imp) in [
        ("trim", trim as super::Imp),
        ("trimLeft", trim_left),
        ("trimRight", trim_right),
    ] {
        lib.add(
            name,
            M,
            &[p("string", T::Str), o("chars", T::StrN, D::Null)],
            imp,
        );
    }
    lib.add(
        "norm",
        E,
        &[p("string", T::StrN), o("chars", T::StrN, D::Null)],
        norm,
    );
    lib.add(
        "isEmpty",
        E,
        &[
            p("string", T::StrN),
            o("trim", T::Bool, D::B(true)),
            o("chars", T::StrN, D::Null),
        ],
        is_empty,
    );
    lib.add(
        "replace",
        M,
        &[
            p("string", T::Str),
            p("old", T::Str),
            p("new", T::Str),
            o("count", T::Int, D::I(-1)),
        ],
        replace,
    );
    lib.add(
        "replace",
        M,
        &[
            p("string", T::Str),
            p("replacements", T::Mapping),
            o("count", T::Int, D::I(-1)),
        ],
        replace_with_dict,
    );
    lib.add(
        "substring",
        M,
        &[
            p("string", T::Str),
            p("start", T::Int),
            o("length", T::Int, D::I(-1)),
        ],
        substring,
    );
    lib.add(
        "indexOf",
        M,
        &[
            p("string", T::Str),
            p("sub", T::Str),
            o("start", T::Int, D::I(0)),
        ],
        index_of,
    );
    lib.add(
        "indexOf",
        M,
        &[
            p("string", T::Str),
            p("sub", T::Str),
            p("start", T::Int),
            p("length", T::Int),
        ],
        index_of_range,
    );
    lib.add(
        "lastIndexOf",
        M,
        &[
            p("string", T::Str),
            p("sub", T::Str),
            o("start", T::Int, D::I(0)),
        ],
        last_index_of,
    );
    lib.add(
        "lastIndexOf",
        M,
        &[
            p("string", T::Str),
            p("sub", T::Str),
            p("start", T::Int),
            p("length", T::Int),
        ],
        last_index_of_range,
    );
    lib.add("toCharArray", M, &[p("string", T::Str)], to_char_array);
    let params: Vec<_> = CHARACTER_SETS
        .iter()
        .map(|(name, _)| o(name, T::Bool, D::B(false)))
        .collect();
    lib.add("characters", F, &params, characters);
    lib.add("isString", F, &[p("arg", T::Any)], is_string);
    lib.add("startsWith", M, &[p("string", T::Str)], starts_with)
        .rest(T::Str);
    lib.add("endsWith", M, &[p("string", T::Str)], ends_with)
        .rest(T::Str);
    lib.add("hex", F, &[p("num", T::NumN)], hex);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sp(s: &str, sep: Option<&str>, n: i64) -> Vec<String> {
        py_split(s, sep, n).unwrap_or_default()
    }

    #[test]
    fn split_like_python() {
        assert_eq!(sp("a,b,,c", Some(","), -1), ["a", "b", "", "c"]);
        assert_eq!(sp("  a b  c  ", None, -1), ["a", "b", "c"]);
        assert_eq!(sp("  a b  c  ", None, 1), ["a", "b  c  "]);
        assert_eq!(sp("a,b,c", Some(","), 1), ["a", "b,c"]);
        assert_eq!(sp("", None, -1), Vec::<String>::new());
        assert_eq!(
            py_rsplit("  a b  c  ", None, 1).unwrap_or_default(),
            ["  a b", "c"]
        );
        assert_eq!(
            py_rsplit("a,b,c", Some(","), 1).unwrap_or_default(),
            ["a,b", "c"]
        );
    }

    #[test]
    fn find_counts_characters() {
        assert_eq!(py_find("héllo", "l", 0, None, false), 2);
        assert_eq!(py_find("héllo", "l", 0, None, true), 3);
        assert_eq!(py_find("abc", "", 3, None, false), 3);
        assert_eq!(py_find("abc", "", 4, None, false), -1);
        assert_eq!(py_find("abcabc", "b", -3, None, false), 4);
    }
}
