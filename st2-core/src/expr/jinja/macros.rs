//! Jinja2 macros that read `varargs` and `kwargs`.
//!
//! In Jinja2 a macro whose body mentions `varargs` accepts more positional arguments than it
//! declares and finds the extra ones in `varargs` (a tuple); one that mentions `kwargs`
//! accepts unknown keyword arguments and finds them in `kwargs` (a dict). minijinja's macros
//! refuse extra arguments, so [`rewrite`] gives such a macro the parameters it reads
//! (`{% macro m(a, varargs=none, kwargs=none) %}`) and wraps it, right after its
//! `{% endmacro %}`, in a [`Variadic`] callable (`{% set m = m|__st2_variadic(true, true) %}`)
//! that sorts each call's arguments into declared ones, `varargs` and `kwargs`.

use std::borrow::Cow;
use std::sync::Arc;

use minijinja::value::{Enumerator, Kwargs, Object, Value};
use minijinja::{Error, ErrorKind, State};

use super::mutable::PyDict;
use super::percent::{Segment, Tok, matching, segments, tag_keyword, tokens};
use super::value::PyTuple;

/// The filter that wraps a macro.
pub const FILTER: &str = "__st2_variadic";

/// What a `{% macro %}` tag declares.
struct MacroTag {
    name: String,
    /// Byte offset in the tag's body of the `)` closing the parameter list.
    close: usize,
    /// Whether the parameter list declares anything.
    has_params: bool,
    declares_varargs: bool,
    declares_kwargs: bool,
}

fn macro_tag(body: &str) -> Option<MacroTag> {
    let toks = tokens(body);
    let mut it = toks
        .iter()
        .enumerate()
        .filter(|(_, t)| t.0 != Tok::Space && !matches!(&body[t.1..t.2], "-" | "+"));
    let (_, kw) = it.next()?;
    if &body[kw.1..kw.2] != "macro" {
        return None;
    }
    let (_, name) = it.next().filter(|(_, t)| t.0 == Tok::Name)?;
    let (open, _) = it.next().filter(|(_, t)| t.0 == Tok::Open('('))?;
    let close = matching(&toks, open)?;
    let params = &toks[open + 1..close];
    let declared = |n: &str| {
        params
            .iter()
            .any(|t| t.0 == Tok::Name && &body[t.1..t.2] == n)
    };
    Some(MacroTag {
        name: body[name.1..name.2].to_owned(),
        close: toks[close].1,
        has_params: params.iter().any(|t| t.0 != Tok::Space),
        declares_varargs: declared("varargs"),
        declares_kwargs: declared("kwargs"),
    })
}

/// Whether a tag's body reads the name `name` (not as an attribute: `x.kwargs`).
fn reads(body: &str, name: &str) -> bool {
    let toks = tokens(body);
    let mut prev = None;
    for t in &toks {
        if t.0 == Tok::Space {
            continue;
        }
        if t.0 == Tok::Name && &body[t.1..t.2] == name && prev != Some(Tok::Dot) {
            return true;
        }
        prev = Some(t.0);
    }
    false
}

/// Rewrite the macros of a template that read `varargs` or `kwargs`; see the module docs.
pub fn rewrite(template: &str) -> Cow<'_, str> {
    if !template.contains("macro") || !(template.contains("varargs") || template.contains("kwargs"))
    {
        return Cow::Borrowed(template);
    }
    let segs = segments(template);
    // For each macro tag that needs it: (segment index, endmacro segment index, tag, reads
    // varargs, reads kwargs).
    let mut plans = Vec::new();
    for (i, seg) in segs.iter().enumerate() {
        let Segment::Tag {
            open: "{%", body, ..
        } = seg
        else {
            continue;
        };
        let Some(tag) = macro_tag(body) else {
            continue;
        };
        let mut depth = 0usize;
        let mut end = None;
        let (mut va, mut kw) = (false, false);
        for (j, inner) in segs.iter().enumerate().skip(i + 1) {
            let Segment::Tag { open, body, .. } = inner else {
                continue;
            };
            if *open == "{%" {
                match tag_keyword(body) {
                    "macro" => depth += 1,
                    "endmacro" if depth == 0 => {
                        end = Some(j);
                        break;
                    }
                    "endmacro" => depth -= 1,
                    _ => {}
                }
            }
            va |= reads(body, "varargs");
            kw |= reads(body, "kwargs");
        }
        let va = va && !tag.declares_varargs;
        let kw = kw && !tag.declares_kwargs;
        if let Some(end) = end
            && (va || kw)
        {
            plans.push((i, end, tag, va, kw));
        }
    }
    if plans.is_empty() {
        return Cow::Borrowed(template);
    }
    let mut out = String::with_capacity(template.len() + plans.len() * 96);
    for (i, seg) in segs.iter().enumerate() {
        match seg {
            Segment::Text(t) => out.push_str(t),
            Segment::Tag { open, body, close } => {
                out.push_str(open);
                if let Some((_, _, tag, va, kw)) = plans.iter().find(|p| p.0 == i) {
                    let mut extra: Vec<&str> = Vec::new();
                    if *va {
                        extra.push("varargs=none");
                    }
                    if *kw {
                        extra.push("kwargs=none");
                    }
                    out.push_str(&body[..tag.close]);
                    if tag.has_params {
                        out.push_str(", ");
                    }
                    out.push_str(&extra.join(", "));
                    out.push_str(&body[tag.close..]);
                } else {
                    out.push_str(body);
                }
                out.push_str(close);
                if let Some((_, _, tag, va, kw)) = plans.iter().find(|p| p.1 == i) {
                    // The wrapper takes over the endmacro's whitespace control on its right.
                    let trim = if body.ends_with('-') {
                        "-"
                    } else if body.ends_with('+') {
                        "+"
                    } else {
                        ""
                    };
                    out.push_str(&format!(
                        "{{% set {n} = {n}|{FILTER}({va}, {kw}) {trim}%}}",
                        n = tag.name
                    ));
                }
            }
        }
    }
    Cow::Owned(out)
}

/// The [`FILTER`] filter: wrap a macro whose parameters end with the `varargs` / `kwargs`
/// that [`rewrite`] added.
pub fn variadic(inner: Value, varargs: bool, kwargs: bool) -> Result<Value, Error> {
    let arguments = inner.get_attr("arguments")?;
    let mut declared: Vec<String> = arguments
        .try_iter()?
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect();
    for (added, name) in [(kwargs, "kwargs"), (varargs, "varargs")] {
        if added && declared.last().is_some_and(|n| n == name) {
            declared.pop();
        }
    }
    let caller = inner.get_attr("caller")?.is_true();
    Ok(Value::from_object(Variadic {
        inner,
        declared,
        varargs,
        kwargs,
        caller,
    }))
}

/// A macro that collects extra arguments into `varargs` and `kwargs`.
#[derive(Debug)]
pub struct Variadic {
    inner: Value,
    declared: Vec<String>,
    varargs: bool,
    kwargs: bool,
    caller: bool,
}

impl Variadic {
    fn name(&self) -> String {
        self.inner
            .get_attr("name")
            .ok()
            .and_then(|n| n.as_str().map(str::to_owned))
            .unwrap_or_default()
    }
}

impl Object for Variadic {
    fn enumerate(self: &Arc<Self>) -> Enumerator {
        Enumerator::Str(&["name", "arguments", "caller"])
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        match key.as_str()? {
            "arguments" => Some(Value::from_iter(
                self.declared.iter().map(|n| Value::from(n.as_str())),
            )),
            "name" | "caller" => self.inner.get_attr(key.as_str()?).ok(),
            _ => None,
        }
    }

    fn call(self: &Arc<Self>, state: &mut State<'_, '_>, args: &[Value]) -> Result<Value, Error> {
        let (positional, kwargs) = match args.last() {
            Some(last) if last.is_kwargs() => (
                &args[..args.len() - 1],
                Some(Kwargs::try_from(last.clone())?),
            ),
            _ => (args, None),
        };
        let n = self.declared.len().min(positional.len());
        let extra = &positional[n..];
        if !extra.is_empty() && !self.varargs {
            return Err(Error::new(
                ErrorKind::TooManyArguments,
                format!(
                    "macro '{}' takes not more than {} argument(s)",
                    self.name(),
                    self.declared.len()
                ),
            ));
        }
        let mut pass: Vec<(String, Value)> = Vec::new();
        let mut unknown = indexmap::IndexMap::new();
        if let Some(kwargs) = &kwargs {
            for key in kwargs.args() {
                let value = kwargs.peek::<Value>(key)?;
                if self.declared.iter().any(|d| d == key) || (key == "caller" && self.caller) {
                    pass.push((key.to_owned(), value));
                } else if self.kwargs {
                    unknown.insert(Value::from(key), value);
                } else {
                    return Err(Error::new(
                        ErrorKind::TooManyArguments,
                        format!("macro '{}' takes no keyword argument '{key}'", self.name()),
                    ));
                }
            }
        }
        if self.varargs {
            pass.push((
                "varargs".to_owned(),
                Value::from_object(PyTuple(extra.to_vec())),
            ));
        }
        if self.kwargs {
            pass.push((
                "kwargs".to_owned(),
                Value::from_object(PyDict::new(unknown)),
            ));
        }
        let mut call_args = positional[..n].to_vec();
        call_args.push(Value::from(Kwargs::from_iter(pass)));
        self.inner.call(state, &call_args)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_only_macros_that_read_extra_arguments() {
        assert_eq!(
            rewrite("{% macro m(a) %}{{ varargs }}{% endmacro %}x"),
            "{% macro m(a, varargs=none) %}{{ varargs }}{% endmacro %}\
             {% set m = m|__st2_variadic(true, false) %}x"
        );
        assert_eq!(
            rewrite("{%- macro m() -%}{{ kwargs.k }}{%- endmacro -%}"),
            "{%- macro m(kwargs=none) -%}{{ kwargs.k }}{%- endmacro -%}\
             {% set m = m|__st2_variadic(false, true) -%}"
        );
        let plain = "{% macro m(a) %}{{ a.kwargs }}{% endmacro %}";
        assert_eq!(rewrite(plain), plain);
    }
}
