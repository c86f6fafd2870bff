//! Python's `'%s' % value` string formatting inside templates.
//!
//! minijinja has no `%` operator for strings, so templates are rewritten before compiling:
//! a string literal followed by `%` and an operand becomes a call of the `__st2_percent`
//! filter (`'%s-%s' % (a, b)` → `('%s-%s' | __st2_percent(a, b))`). The filter formats with
//! Python's rules: `%s %r %d %i %u %x %X %o %e %E %f %F %g %G %c %%`, flags, width, precision
//! and `%(name)s` against a mapping.
//!
//! The same scan of the template's tags also refuses tags built so deep that compiling them
//! would exhaust the stack ([`check_complexity`]).

use std::borrow::Cow;

use minijinja::Error;
use minijinja::value::{Value, ValueKind};

use super::value::{as_f64, py_str, repr, type_error, type_name};

/// The largest width or precision a conversion may ask for (Python allows more, and then
/// allocates whatever it was asked to).
const MAX_WIDTH: usize = 1 << 20;

/// Digits after which a float's exact decimal expansion is all zeros (2^-1074 has 1074).
const EXACT_DIGITS: usize = 1100;

/// The filter the rewrite calls with a tuple's items as arguments.
pub const TUPLE_FILTER: &str = "__st2_percent";
/// The filter the rewrite calls with a single (non-tuple) operand.
pub const VALUE_FILTER: &str = "__st2_percent_value";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Tok {
    Str,
    Num,
    Name,
    Percent,
    Pipe,
    Dot,
    Comma,
    Open(char),
    Close(char),
    Op,
    Space,
}

/// Tokenize the inside of one `{{ }}` / `{% %}` region into (kind, start, end) spans.
pub(super) fn tokens(src: &str) -> Vec<(Tok, usize, usize)> {
    let bytes = src.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < bytes.len() {
        let c = bytes[i];
        let start = i;
        let kind = match c {
            b' ' | b'\t' | b'\n' | b'\r' => {
                while i < bytes.len() && matches!(bytes[i], b' ' | b'\t' | b'\n' | b'\r') {
                    i += 1;
                }
                out.push((Tok::Space, start, i));
                continue;
            }
            b'\'' | b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != c {
                    if bytes[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
                i = (i + 1).min(bytes.len());
                out.push((Tok::Str, start, i));
                continue;
            }
            b'0'..=b'9' => {
                while i < bytes.len()
                    && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'.' || bytes[i] == b'_')
                {
                    i += 1;
                }
                out.push((Tok::Num, start, i));
                continue;
            }
            c if c.is_ascii_alphabetic() || c == b'_' || c >= 0x80 => {
                while i < bytes.len()
                    && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_' || bytes[i] >= 0x80)
                {
                    i += 1;
                }
                out.push((Tok::Name, start, i));
                continue;
            }
            b'%' => Tok::Percent,
            b'|' => Tok::Pipe,
            b'.' => Tok::Dot,
            b',' => Tok::Comma,
            b'(' | b'[' | b'{' => Tok::Open(c as char),
            b')' | b']' | b'}' => Tok::Close(c as char),
            _ => Tok::Op,
        };
        i += 1;
        // Two-character operators stay one token.
        if kind == Tok::Op
            && i < bytes.len()
            && matches!(
                (c, bytes[i]),
                (b'*', b'*')
                    | (b'/', b'/')
                    | (b'=', b'=')
                    | (b'!', b'=')
                    | (b'<', b'=')
                    | (b'>', b'=')
            )
        {
            i += 1;
        }
        out.push((kind, start, i));
    }
    out
}

/// Index of the token closing the bracket opened at `open`, if any.
pub(super) fn matching(toks: &[(Tok, usize, usize)], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (j, t) in toks.iter().enumerate().skip(open) {
        match t.0 {
            Tok::Open(_) => depth += 1,
            Tok::Close(_) => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(j);
                }
            }
            _ => {}
        }
    }
    None
}

fn skip_space(toks: &[(Tok, usize, usize)], mut j: usize) -> usize {
    while j < toks.len() && toks[j].0 == Tok::Space {
        j += 1;
    }
    j
}

/// The operand of `%` starting at token `j`: a primary with its trailers and filters. Returns
/// the index after it and, for a parenthesised tuple, the token range of its inside.
fn operand(toks: &[(Tok, usize, usize)], j: usize) -> Option<(usize, Option<(usize, usize)>)> {
    let mut j = skip_space(toks, j);
    let first = *toks.get(j)?;
    let mut tuple = None;
    match first.0 {
        Tok::Str | Tok::Num | Tok::Name => j += 1,
        Tok::Op if matches!(&first, (_, s, e) if e - s == 1) => {
            // unary minus/plus
            return operand(toks, j + 1).map(|(end, _)| (end, None));
        }
        Tok::Open(c) => {
            let close = matching(toks, j)?;
            if c == '(' && toks[j + 1..close].iter().any(|t| t.0 == Tok::Comma) {
                let depth_ok = {
                    let mut depth = 0i32;
                    let mut top_comma = false;
                    for t in &toks[j + 1..close] {
                        match t.0 {
                            Tok::Open(_) => depth += 1,
                            Tok::Close(_) => depth -= 1,
                            Tok::Comma if depth == 0 => top_comma = true,
                            _ => {}
                        }
                    }
                    top_comma
                };
                if depth_ok {
                    tuple = Some((j + 1, close));
                }
            }
            j = close + 1;
        }
        _ => return None,
    }
    loop {
        let k = skip_space(toks, j);
        match toks.get(k).map(|t| t.0) {
            Some(Tok::Dot) => {
                let n = skip_space(toks, k + 1);
                if toks.get(n).map(|t| t.0) != Some(Tok::Name) {
                    return Some((j, tuple));
                }
                j = n + 1;
                tuple = None;
            }
            Some(Tok::Open('[' | '(')) => {
                j = matching(toks, k)? + 1;
                tuple = None;
            }
            Some(Tok::Pipe) => {
                let n = skip_space(toks, k + 1);
                if toks.get(n).map(|t| t.0) != Some(Tok::Name) {
                    return Some((j, tuple));
                }
                j = n + 1;
                tuple = None;
                let m = skip_space(toks, j);
                if toks.get(m).map(|t| t.0) == Some(Tok::Open('(')) {
                    j = matching(toks, m)? + 1;
                }
            }
            _ => return Some((j, tuple)),
        }
    }
}

/// Rewrite `'literal' % operand` inside one expression region.
fn rewrite_region(src: &str) -> Option<String> {
    let toks = tokens(src);
    for (i, t) in toks.iter().enumerate() {
        if t.0 != Tok::Percent {
            continue;
        }
        let Some(lhs) = toks[..i].iter().rposition(|t| t.0 != Tok::Space) else {
            continue;
        };
        if toks[lhs].0 != Tok::Str {
            continue;
        }
        // The literal must be a whole operand (not `2 * 'x' % y`, not `a.b` etc.).
        if let Some(before) = toks[..lhs].iter().rposition(|t| t.0 != Tok::Space) {
            let (kind, s, e) = toks[before];
            let text = &src[s..e];
            if matches!(
                kind,
                Tok::Dot | Tok::Str | Tok::Num | Tok::Name | Tok::Close(_) | Tok::Percent
            ) && !matches!(text, "and" | "or" | "not" | "in" | "if" | "else" | "is")
                || matches!(text, "*" | "/" | "//" | "**")
            {
                continue;
            }
        }
        let Some((end, tuple)) = operand(&toks, i + 1) else {
            continue;
        };
        let literal = &src[toks[lhs].1..toks[lhs].2];
        let rhs_start = toks[skip_space(&toks, i + 1)].1;
        let rhs_end = toks[end - 1].2;
        let call = match tuple {
            Some((a, b)) => {
                let inner_start = toks.get(a).map_or(rhs_end, |t| t.1);
                let inner_end = toks[b].1;
                let inner = src[inner_start..inner_end].trim_end().trim_end_matches(',');
                format!("{TUPLE_FILTER}({inner})")
            }
            None => format!("{VALUE_FILTER}({})", &src[rhs_start..rhs_end]),
        };
        let mut out = String::with_capacity(src.len() + 32);
        out.push_str(&src[..toks[lhs].1]);
        out.push_str(&format!("({literal} | {call})"));
        out.push_str(&src[rhs_end..]);
        // Rewrite further occurrences in the same region.
        return Some(rewrite_region(&out).unwrap_or(out));
    }
    None
}

/// Rewrite every `'literal' % operand` in a bare expression (the inside of `{{ }}`).
pub fn rewrite_expression(expression: &str) -> Cow<'_, str> {
    if !expression.contains('%') {
        return Cow::Borrowed(expression);
    }
    rewrite_region(expression).map_or(Cow::Borrowed(expression), Cow::Owned)
}

/// A piece of a template: literal text (including comments and raw blocks), or the inside
/// of one `{{ }}` / `{% %}` tag.
pub(super) enum Segment<'a> {
    Text(&'a str),
    Tag {
        open: &'static str,
        body: &'a str,
        close: &'static str,
    },
}

/// Split a template into text and tags. Unterminated tags are left as text (the parser will
/// report them).
pub(super) fn segments(template: &str) -> Vec<Segment<'_>> {
    let mut out = Vec::new();
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        let (before, tail) = rest.split_at(start);
        if !before.is_empty() {
            out.push(Segment::Text(before));
        }
        let (open, close) = if tail.starts_with("{{") {
            ("{{", "}}")
        } else if tail.starts_with("{%") {
            ("{%", "%}")
        } else {
            let end = if tail.starts_with("{#") {
                tail.find("#}").map_or(tail.len(), |e| e + 2)
            } else {
                1
            };
            out.push(Segment::Text(&tail[..end]));
            rest = &tail[end..];
            continue;
        };
        let body_start = open.len();
        let Some(body_len) = find_close(&tail[body_start..], close) else {
            out.push(Segment::Text(tail));
            return out;
        };
        let body = &tail[body_start..body_start + body_len];
        if open == "{%" && tag_keyword(body) == "raw" {
            let end = end_of_raw(tail, body_start + body_len + close.len());
            out.push(Segment::Text(&tail[..end]));
            rest = &tail[end..];
            continue;
        }
        out.push(Segment::Tag { open, body, close });
        rest = &tail[body_start + body_len + close.len()..];
    }
    if !rest.is_empty() {
        out.push(Segment::Text(rest));
    }
    out
}

/// Where the raw block that starts `tail` ends: after its `{% endraw %}` tag (searched from
/// `from`, the end of the opening tag), or the end of the text when it has none.
fn end_of_raw(tail: &str, from: usize) -> usize {
    let mut at = from;
    while let Some(open) = tail[at..].find("{%") {
        let body_start = at + open + 2;
        match find_close(&tail[body_start..], "%}") {
            Some(len) if tag_keyword(&tail[body_start..body_start + len]) == "endraw" => {
                return body_start + len + 2;
            }
            Some(_) => at = body_start,
            None => break,
        }
    }
    tail.len()
}

/// Rewrite every `'literal' % operand` in a template. Text outside `{{ }}` / `{% %}` (and
/// inside `{% raw %}`) is left alone.
pub fn rewrite(template: &str) -> Cow<'_, str> {
    if !template.contains('%') || !template.contains('{') {
        return Cow::Borrowed(template);
    }
    rewrite_tags(template, rewrite_region)
}

/// Rewrite the inside of every `{{ }}` / `{% %}` tag of a template with `rewrite_body` (`None`:
/// unchanged); text outside the tags (and inside `{% raw %}`) is left alone.
pub(super) fn rewrite_tags(
    template: &str,
    rewrite_body: impl Fn(&str) -> Option<String>,
) -> Cow<'_, str> {
    let mut out = String::with_capacity(template.len() + 32);
    let mut changed = false;
    for segment in segments(template) {
        match segment {
            Segment::Text(t) => out.push_str(t),
            Segment::Tag { open, body, close } => {
                out.push_str(open);
                match rewrite_body(body) {
                    Some(new) => {
                        changed = true;
                        out.push_str(&new);
                    }
                    None => out.push_str(body),
                }
                out.push_str(close);
            }
        }
    }
    if changed {
        Cow::Owned(out)
    } else {
        Cow::Borrowed(template)
    }
}

/// The keyword a `{% %}` tag's body starts with (`macro`, `endmacro`, `do`, …), after any
/// whitespace-control sign.
pub(super) fn tag_keyword(body: &str) -> &str {
    let t = body
        .trim_start()
        .trim_start_matches(['-', '+'])
        .trim_start();
    let end = t
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(t.len());
    &t[..end]
}

/// The most operators one tag may hold. Each one nests the syntax tree a level deeper, and
/// the parser, compiler and evaluator recurse over that tree; far beyond any real template,
/// far below what overflows a 2 MiB thread stack (Python's Jinja gives up near 1,000 too).
pub const MAX_OPERATORS: usize = 400;

fn operators_in(body: &str) -> usize {
    tokens(body)
        .iter()
        .filter(|(kind, s, e)| match kind {
            Tok::Op | Tok::Pipe | Tok::Dot | Tok::Percent | Tok::Open(_) => true,
            Tok::Name => matches!(&body[*s..*e], "not" | "and" | "or" | "is" | "in" | "if"),
            _ => false,
        })
        .count()
}

/// Refuse templates (or, with `expression`, a bare expression) whose tags are too deeply
/// built to compile safely; see [`MAX_OPERATORS`].
pub fn check_complexity(source: &str, expression: bool) -> Result<(), Error> {
    let worst = if expression {
        operators_in(source)
    } else {
        segments(source)
            .iter()
            .map(|s| match s {
                Segment::Tag { body, .. } => operators_in(body),
                Segment::Text(_) => 0,
            })
            .max()
            .unwrap_or(0)
    };
    if worst > MAX_OPERATORS {
        return Err(Error::new(
            minijinja::ErrorKind::SyntaxError,
            format!(
                "expression too complex: {worst} operators in one tag (at most {MAX_OPERATORS})"
            ),
        ));
    }
    Ok(())
}

/// Where `close` ends a region, skipping string literals.
fn find_close(body: &str, close: &str) -> Option<usize> {
    let bytes = body.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            q @ (b'\'' | b'"') => {
                i += 1;
                while i < bytes.len() && bytes[i] != q {
                    if bytes[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
                i += 1;
            }
            _ if bytes[i..].starts_with(close.as_bytes()) => return Some(i),
            _ => i += 1,
        }
    }
    None
}

/// `fmt % (args...)`: the tuple form.
pub fn percent_tuple(fmt: Value, args: &[Value]) -> Result<Value, Error> {
    let fmt = fmt
        .as_str()
        .ok_or_else(|| type_error("not a format string"))?
        .to_owned();
    format_percent(&fmt, args, None).map(Value::from)
}

/// `fmt % value`: one value, or a mapping for `%(name)s`.
pub fn percent_value(fmt: Value, args: &[Value]) -> Result<Value, Error> {
    let fmt = fmt
        .as_str()
        .ok_or_else(|| type_error("not a format string"))?
        .to_owned();
    let value = args.first().cloned().unwrap_or_default();
    if value.kind() == ValueKind::Map && fmt.contains("%(") {
        return format_percent(&fmt, &[], Some(&value)).map(Value::from);
    }
    if value.kind() == ValueKind::Map {
        // A mapping as the single argument: formatted as one value; extra args are not an error.
        return format_percent(&fmt, std::slice::from_ref(&value), Some(&value)).map(Value::from);
    }
    format_percent(&fmt, std::slice::from_ref(&value), None).map(Value::from)
}

/// Python's `str % args`.
fn format_percent(fmt: &str, args: &[Value], mapping: Option<&Value>) -> Result<String, Error> {
    let chars: Vec<char> = fmt.chars().collect();
    let mut out = String::new();
    let mut next = 0usize;
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        if c != '%' {
            out.push(c);
            continue;
        }
        let mut key = None;
        if chars.get(i) == Some(&'(') {
            let close = chars[i..]
                .iter()
                .position(|c| *c == ')')
                .ok_or_else(|| value_err("incomplete format key"))?;
            key = Some(chars[i + 1..i + close].iter().collect::<String>());
            i += close + 1;
        }
        let mut flags = String::new();
        while let Some(&f) = chars.get(i).filter(|f| "-+ #0".contains(**f)) {
            flags.push(f);
            i += 1;
        }
        let mut width = String::new();
        while let Some(&d) = chars.get(i).filter(|d| d.is_ascii_digit()) {
            width.push(d);
            i += 1;
        }
        let mut precision: Option<usize> = None;
        if chars.get(i) == Some(&'.') {
            i += 1;
            let mut p = String::new();
            while let Some(&d) = chars.get(i).filter(|d| d.is_ascii_digit()) {
                p.push(d);
                i += 1;
            }
            precision = Some(if p.len() > 7 {
                usize::MAX
            } else {
                p.parse().unwrap_or(0)
            });
        }
        if width.len() > 7
            || width.parse::<usize>().unwrap_or(0) > MAX_WIDTH
            || precision.is_some_and(|p| p > MAX_WIDTH)
        {
            return Err(value_err("width or precision too big"));
        }
        let conv = *chars.get(i).ok_or_else(|| value_err("incomplete format"))?;
        i += 1;
        if conv == '%' {
            out.push('%');
            continue;
        }
        let arg = match &key {
            Some(k) => mapping
                .ok_or_else(|| type_error("format requires a mapping"))?
                .get_item(&Value::from(k.as_str()))
                .ok()
                .filter(|v| !v.is_undefined())
                .ok_or_else(|| {
                    Error::new(
                        minijinja::ErrorKind::InvalidOperation,
                        format!("KeyError: '{k}'"),
                    )
                })?,
            None => {
                let a = args
                    .get(next)
                    .cloned()
                    .ok_or_else(|| type_error("not enough arguments for format string"))?;
                next += 1;
                a
            }
        };
        let body = convert(conv, &arg, &flags, precision)?;
        let w: usize = width.parse().unwrap_or(0);
        let len = body.chars().count();
        if len >= w {
            out.push_str(&body);
        } else if flags.contains('-') {
            out.push_str(&body);
            out.push_str(&" ".repeat(w - len));
        } else if flags.contains('0') && "diuxXoeEfFgG".contains(conv) {
            let (sign, digits) = match body.strip_prefix(['-', '+']) {
                Some(d) => (&body[..1], d),
                None => ("", body.as_str()),
            };
            out.push_str(sign);
            out.push_str(&"0".repeat(w - len));
            out.push_str(digits);
        } else {
            out.push_str(&" ".repeat(w - len));
            out.push_str(&body);
        }
    }
    if mapping.is_none() && next < args.len() {
        return Err(type_error(
            "not all arguments converted during string formatting",
        ));
    }
    Ok(out)
}

fn value_err(msg: &str) -> Error {
    super::value::value_error(msg)
}

fn int_of(conv: char, v: &Value) -> Result<i128, Error> {
    match v.kind() {
        ValueKind::Bool => Ok(i128::from(v.is_true())),
        ValueKind::Number if v.is_integer() => {
            i128::try_from(v.clone()).map_err(|_| type_error("integer too large"))
        }
        ValueKind::Number if "diu".contains(conv) => Ok(as_f64(v).unwrap_or(0.0).trunc() as i128),
        _ => Err(type_error(format!(
            "%{conv} format: {} is required, not {}",
            if "diu".contains(conv) {
                "a real number"
            } else {
                "an integer"
            },
            type_name(v)
        ))),
    }
}

/// `inf`, `-inf` and `nan` as `%f`/`%e`/`%g` print them (the sign is added by the caller).
fn non_finite(f: f64, upper: bool) -> String {
    let s = if f.is_nan() { "nan" } else { "inf" };
    if upper {
        s.to_uppercase()
    } else {
        s.to_owned()
    }
}

fn convert(conv: char, v: &Value, flags: &str, precision: Option<usize>) -> Result<String, Error> {
    let sign = |neg: bool| {
        if neg {
            "-"
        } else if flags.contains('+') {
            "+"
        } else if flags.contains(' ') {
            " "
        } else {
            ""
        }
    };
    Ok(match conv {
        's' => {
            let s = py_str(v)?;
            match precision {
                Some(p) => s.chars().take(p).collect(),
                None => s,
            }
        }
        'r' | 'a' => repr(v),
        'd' | 'i' | 'u' => {
            let n = int_of(conv, v)?;
            let digits = n.unsigned_abs().to_string();
            let zeros = precision.unwrap_or(0).saturating_sub(digits.len());
            format!("{}{}{digits}", sign(n < 0), "0".repeat(zeros))
        }
        'x' | 'X' | 'o' => {
            let n = int_of(conv, v)?;
            let digits = match conv {
                'x' => format!("{:x}", n.unsigned_abs()),
                'X' => format!("{:X}", n.unsigned_abs()),
                _ => format!("{:o}", n.unsigned_abs()),
            };
            let prefix = if flags.contains('#') {
                match conv {
                    'x' => "0x",
                    'X' => "0X",
                    _ => "0o",
                }
            } else {
                ""
            };
            format!("{}{prefix}{digits}", sign(n < 0))
        }
        'e' | 'E' | 'f' | 'F' | 'g' | 'G' => {
            let f = match v.kind() {
                ValueKind::Number | ValueKind::Bool => as_f64(v).unwrap_or(0.0),
                _ => {
                    return Err(type_error(format!(
                        "must be real number, not {}",
                        type_name(v)
                    )));
                }
            };
            let p = precision.unwrap_or(6);
            // Rust formats at most 65535 digits; past EXACT_DIGITS they are zeros anyway.
            let q = p.min(EXACT_DIGITS);
            let zeros = "0".repeat(p - q);
            let body = match conv {
                'f' | 'F' if !f.is_finite() => non_finite(f, conv == 'F'),
                'e' | 'E' | 'g' | 'G' if !f.is_finite() => {
                    non_finite(f, conv != 'e' && conv != 'g')
                }
                'f' | 'F' => format!("{:.q$}{zeros}", f.abs()),
                'e' | 'E' => {
                    let s = format!("{:.q$e}", f.abs());
                    let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
                    let m = format!("{m}{zeros}");
                    let exp: i32 = e.parse().unwrap_or(0);
                    let out = format!("{m}e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs());
                    if conv == 'E' { out.to_uppercase() } else { out }
                }
                _ => {
                    let p = q.max(1);
                    let exp = if f == 0.0 {
                        0
                    } else {
                        f.abs().log10().floor() as i32
                    };
                    let s = if exp < -4 || exp >= p as i32 {
                        let s = format!("{:.*e}", p - 1, f.abs());
                        let (m, e) = s.split_once('e').unwrap_or((&s, "0"));
                        let m = if flags.contains('#') {
                            m.to_owned()
                        } else {
                            m.trim_end_matches('0').trim_end_matches('.').to_owned()
                        };
                        let exp: i32 = e.parse().unwrap_or(0);
                        format!("{m}e{}{:02}", if exp < 0 { '-' } else { '+' }, exp.abs())
                    } else {
                        let decimals = usize::try_from(p as i32 - 1 - exp).unwrap_or(0);
                        let s = format!("{:.decimals$}", f.abs());
                        if flags.contains('#') || !s.contains('.') {
                            s
                        } else {
                            s.trim_end_matches('0').trim_end_matches('.').to_owned()
                        }
                    };
                    if conv == 'G' { s.to_uppercase() } else { s }
                }
            };
            format!("{}{body}", sign(f.is_sign_negative() && f != 0.0))
        }
        'c' => match v.kind() {
            ValueKind::Number => {
                let n = int_of('d', v)?;
                u32::try_from(n)
                    .ok()
                    .and_then(char::from_u32)
                    .map(String::from)
                    .ok_or_else(|| value_err("%c arg not in range(0x110000)"))?
            }
            ValueKind::String if v.as_str().is_some_and(|s| s.chars().count() == 1) => {
                v.as_str().unwrap_or_default().to_owned()
            }
            _ => return Err(type_error("%c requires an int or a unicode character")),
        },
        other => {
            return Err(value_err(&format!(
                "unsupported format character '{other}'"
            )));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_literal_percent_operands() {
        assert_eq!(
            rewrite("{{ '%d items' % 3.9 }}"),
            "{{ ('%d items' | __st2_percent_value(3.9)) }}"
        );
        assert_eq!(
            rewrite("{{ '%5s|%-5s|' % ('a', 'b') }}"),
            "{{ ('%5s|%-5s|' | __st2_percent('a', 'b')) }}"
        );
        assert_eq!(
            rewrite("{{ '%s %s' % ('only one',) }}"),
            "{{ ('%s %s' | __st2_percent('only one')) }}"
        );
        assert_eq!(
            rewrite("{{ '%(x)s' % d.e | upper }}"),
            "{{ ('%(x)s' | __st2_percent_value(d.e | upper)) }}"
        );
        assert_eq!(rewrite("{{ 7 % 3 }} 100%"), "{{ 7 % 3 }} 100%");
        assert_eq!(
            rewrite("{% raw %}{{ '%s' % x }}{% endraw %}"),
            "{% raw %}{{ '%s' % x }}{% endraw %}"
        );
        // Only an `endraw` tag ends a raw block, not the word in the block's text.
        assert_eq!(
            rewrite("{%- raw -%}endraw %}{{ '%s' % x }}{%- endraw %}{{ '%s' % y }}"),
            "{%- raw -%}endraw %}{{ '%s' % x }}{%- endraw %}{{ ('%s' | __st2_percent_value(y)) }}"
        );
        assert_eq!(
            rewrite("{% if '%s' % x %}y{% endif %}"),
            "{% if ('%s' | __st2_percent_value(x)) %}y{% endif %}"
        );
    }

    #[test]
    fn formats_like_python() {
        let f = |fmt: &str, args: Vec<Value>| format_percent(fmt, &args, None);
        assert_eq!(f("%d items", vec![Value::from(3.9)]).unwrap(), "3 items");
        assert_eq!(f("%.2f", vec![Value::from(2.34567)]).unwrap(), "2.35");
        assert_eq!(
            f(
                "%x %o %e",
                vec![Value::from(255), Value::from(8), Value::from(12345.678)]
            )
            .unwrap(),
            "ff 10 1.234568e+04"
        );
        assert_eq!(
            f("%r", vec![Value::from("Hello World")]).unwrap(),
            "'Hello World'"
        );
        assert!(f("%d", vec![Value::from("x")]).is_err());
        assert!(f("%s %s", vec![Value::from("only one")]).is_err());
        assert!(f("%s", vec![Value::from(1), Value::from(2)]).is_err());
        assert_eq!(
            f(
                "%05.1f|%+d|%g|%g",
                vec![
                    Value::from(3.04159),
                    Value::from(5),
                    Value::from(0.0001),
                    Value::from(1e20)
                ]
            )
            .unwrap(),
            "003.0|+5|0.0001|1e+20"
        );
    }
}
