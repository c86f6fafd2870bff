//! Regular expressions with Python `re` semantics (through [`PyRegex`]): `regex()`, `=~`,
//! `matches`, `search`, `searchAll`, `split`, `replace`, `replaceBy`, `escapeRegex`.
//!
//! Match records passed to selectors are `{value, start, end}` dicts (character offsets):
//! `$1` is the whole match, `$2`... the groups, as in yaql.

use std::sync::Arc;

use super::{Builder, Call, D, Kind, T, o, p};
use crate::expr::pyregex::{Flags, PyMatch, PyRegex};
use crate::expr::yaql::eval::{Ev, Frame, Name, R, no_matching, record, type_error, value_error};
use crate::expr::yaql::stream::Gen;
use crate::expr::yaql::value::{YaqlRegex, YaqlValue};

const F: Kind = Kind::Function;
const M: Kind = Kind::Method;

fn compile(pattern: &str, flags: Flags) -> R<YaqlRegex> {
    Ok(YaqlRegex(Arc::new(PyRegex::new(pattern, flags)?)))
}

fn regex_(_: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    let flags = Flags {
        ignore_case: c.v(1).truthy(),
        multiline: c.v(2).truthy(),
        dot_all: c.v(3).truthy(),
    };
    Ok(YaqlValue::Regex(compile(c.s(0), flags)?))
}

/// `string =~ pattern` where the pattern is a regex object or a string.
pub(crate) fn matches_operator(l: &YaqlValue, r: &YaqlValue) -> R<bool> {
    match (l, r) {
        (YaqlValue::Str(s), YaqlValue::Regex(re)) => Ok(re.0.search(s)?.is_some()),
        (YaqlValue::Str(s), YaqlValue::Str(pat)) => {
            Ok(PyRegex::new(pat, Flags::default())?.search(s)?.is_some())
        }
        _ => Err(no_matching("#operator_=~")),
    }
}

fn regex_arg(c: &Call, i: usize) -> R<&PyRegex> {
    match c.v(i) {
        YaqlValue::Regex(r) => Ok(&r.0),
        _ => Err(type_error("not a regular expression")),
    }
}

fn matches(_: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    Ok(YaqlValue::Bool(regex_arg(c, 0)?.search(c.s(1))?.is_some()))
}

fn matches_string(_: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    let re = PyRegex::new(c.s(1), Flags::default())?;
    Ok(YaqlValue::Bool(re.search(c.s(0))?.is_some()))
}

fn char_offset(text: &str, byte: usize) -> i64 {
    text.get(..byte).map_or(0, |t| t.chars().count()) as i64
}

/// The context a selector sees for one match: `$1` (and `$`) the whole match, `$2`... the
/// groups.
fn match_frame(parent: &Arc<Frame>, re: &PyRegex, text: &str, m: &PyMatch) -> R<Arc<Frame>> {
    if re.group_names().iter().any(Option::is_some) {
        // yaql unpacks each named group's value into a (key, value) pair and fails.
        return Err(value_error(
            "not enough values to unpack (expected 2, got 1)",
        ));
    }
    let mut vars: Vec<(Name, YaqlValue)> = Vec::with_capacity(m.groups.len() + 1);
    vars.push((
        Name::Pos(1),
        record(vec![
            ("value", YaqlValue::from(m.text.as_str())),
            ("start", YaqlValue::Int(char_offset(text, m.start))),
            ("end", YaqlValue::Int(char_offset(text, m.end))),
        ]),
    ));
    for (i, (value, span)) in m.groups.iter().zip(&m.group_spans).enumerate() {
        let (start, end) = match *span {
            Some((a, b)) => (char_offset(text, a), char_offset(text, b)),
            None => (-1, -1),
        };
        vars.push((
            Name::Pos(i as u32 + 2),
            record(vec![
                (
                    "value",
                    value.as_deref().map_or(YaqlValue::Null, YaqlValue::from),
                ),
                ("start", YaqlValue::Int(start)),
                ("end", YaqlValue::Int(end)),
            ]),
        ));
    }
    Ok(Frame::child(Some(parent.clone()), vars, Vec::new()))
}

fn search(ev: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    let re = regex_arg(c, 0)?;
    let text = c.s(1);
    let Some(m) = re.search(text)? else {
        return Ok(YaqlValue::Null);
    };
    match c.lam(2) {
        None => ev.string(m.text),
        Some(l) => {
            let frame = match_frame(&l.frame, re, text, &m)?;
            ev.call_in_frame(l, &frame)
        }
    }
}

fn search_all(ev: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    let YaqlValue::Regex(re) = c.v(0).clone() else {
        return Err(type_error("not a regular expression"));
    };
    let text = c.s(1).to_owned();
    let matches = re.0.find_iter(&text)?;
    let selector = c.lam(2).cloned();
    let mut i = 0usize;
    ev.lazy(
        Gen(move |ev: &mut Ev<'_>| {
            let Some(m) = matches.get(i) else {
                return Ok(None);
            };
            i += 1;
            match &selector {
                None => ev.string(m.text.clone()).map(Some),
                Some(l) => {
                    let frame = match_frame(&l.frame, &re.0, &text, m)?;
                    ev.call_in_frame(l, &frame).map(Some)
                }
            }
        }),
        0,
    )
}

fn split_with(ev: &mut Ev<'_>, re: &PyRegex, text: &str, max_split: i64) -> R<YaqlValue> {
    if max_split < 0 {
        return ev.list(vec![YaqlValue::from(text)]);
    }
    let parts = re.split(text, max_split as usize)?;
    let items = parts.iter().map(YaqlValue::from_json).collect();
    ev.list(items)
}

fn split(ev: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    split_with(ev, regex_arg(c, 0)?, c.s(1), c.int(2))
}

fn split_string(ev: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    split_with(ev, regex_arg(c, 1)?, c.s(0), c.int(2))
}

fn replace_with(ev: &mut Ev<'_>, re: &PyRegex, text: &str, repl: &str, count: i64) -> R<YaqlValue> {
    if count < 0 {
        return ev.string(text.to_owned());
    }
    let out = re.sub(text, repl, count as usize)?;
    ev.string(out)
}

fn replace(ev: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    replace_with(ev, regex_arg(c, 0)?, c.s(1), c.s(2), c.int(3))
}

fn replace_string(ev: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    replace_with(ev, regex_arg(c, 1)?, c.s(0), c.s(2), c.int(3))
}

fn replace_by_with(ev: &mut Ev<'_>, c: &Call, re: &PyRegex, text: &str) -> R<YaqlValue> {
    let count = c.int(3);
    if count < 0 {
        return ev.string(text.to_owned());
    }
    let Some(l) = c.lam(2) else {
        return Err(type_error("'NoneType' object is not callable"));
    };
    let out = re.sub_with(text, count as usize, |m| {
        let replaced = (|| -> R<String> {
            let frame = match_frame(&l.frame, re, text, m)?;
            match ev.call_in_frame(l, &frame)? {
                YaqlValue::Str(s) => {
                    ev.check_str_len(s.len())?;
                    Ok(s.to_string())
                }
                other => Err(type_error(format!(
                    "expected str instance, {} found",
                    other.type_name()
                ))),
            }
        })();
        replaced.map_err(|e| *e)
    })?;
    ev.string(out)
}

fn replace_by(ev: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    let re = regex_arg(c, 0)?;
    replace_by_with(ev, c, re, c.s(1))
}

fn replace_by_string(ev: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    let re = regex_arg(c, 1)?;
    replace_by_with(ev, c, re, c.s(0))
}

/// Python `re.escape`.
fn escape_regex(ev: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    let mut out = String::new();
    for ch in c.s(0).chars() {
        if "()[]{}?*+-|^$\\.&~# \t\n\r\u{b}\u{c}".contains(ch) {
            out.push('\\');
        }
        out.push(ch);
    }
    ev.string(out)
}

fn is_regex(_: &mut Ev<'_>, c: &Call) -> R<YaqlValue> {
    Ok(YaqlValue::Bool(matches!(c.v(0), YaqlValue::Regex(_))))
}

pub(crate) fn register(lib: &mut Builder) {
    lib.add(
        "regex",
        F,
        &[
            p("pattern", T::Str),
            o("ignoreCase", T::Bool, D::B(false)),
            o("multiLine", T::Bool, D::B(false)),
            o("dotAll", T::Bool, D::B(false)),
        ],
        regex_,
    );
    lib.add(
        "matches",
        M,
        &[p("regexp", T::Regex), p("string", T::Str)],
        matches,
    );
    lib.add(
        "matches",
        M,
        &[p("string", T::Str), p("regexp", T::Str)],
        matches_string,
    );
    for name in ["search", "searchAll"] {
        lib.add(
            name,
            M,
            &[
                p("regexp", T::Regex),
                p("string", T::Str),
                o("selector", T::Lambda, D::Null),
            ],
            if name == "search" { search } else { search_all },
        );
    }
    lib.add(
        "split",
        M,
        &[
            p("regexp", T::Regex),
            p("string", T::Str),
            o("maxSplit", T::Int, D::I(0)),
        ],
        split,
    );
    lib.add(
        "split",
        M,
        &[
            p("string", T::Str),
            p("regexp", T::Regex),
            o("maxSplit", T::Int, D::I(0)),
        ],
        split_string,
    );
    lib.add(
        "replace",
        M,
        &[
            p("regexp", T::Regex),
            p("string", T::Str),
            p("repl", T::Str),
            o("count", T::Int, D::I(0)),
        ],
        replace,
    );
    lib.add(
        "replace",
        M,
        &[
            p("string", T::Str),
            p("regexp", T::Regex),
            p("repl", T::Str),
            o("count", T::Int, D::I(0)),
        ],
        replace_string,
    );
    lib.add(
        "replaceBy",
        M,
        &[
            p("regexp", T::Regex),
            p("string", T::Str),
            p("repl", T::Lambda),
            o("count", T::Int, D::I(0)),
        ],
        replace_by,
    );
    lib.add(
        "replaceBy",
        M,
        &[
            p("string", T::Str),
            p("regexp", T::Regex),
            p("repl", T::Lambda),
            o("count", T::Int, D::I(0)),
        ],
        replace_by_string,
    );
    lib.add("escapeRegex", F, &[p("string", T::Str)], escape_regex);
    lib.add("isRegex", F, &[p("value", T::Any)], is_regex);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_positions() {
        let re = PyRegex::new("(l)(l)(o)", Flags::default()).ok();
        let Some(re) = re else { panic!("compiles") };
        let text = "Hello";
        let Ok(Some(m)) = re.search(text) else {
            panic!("matches")
        };
        assert_eq!(
            m.group_spans,
            vec![Some((2, 3)), Some((3, 4)), Some((4, 5))]
        );
        // A repeated group reports its last repetition, as Python's `re` does.
        let re = PyRegex::new("(a|b)+(b)", Flags::default()).ok();
        let Some(re) = re else { panic!("compiles") };
        let Ok(Some(m)) = re.search("xabab") else {
            panic!("matches")
        };
        assert_eq!(m.group_spans, vec![Some((3, 4)), Some((4, 5))]);
    }
}
