//! PyYAML's `safe_dump(value, default_flow_style=False)` as StackStorm's `to_yaml_string` uses
//! it (with libyaml): block style, sequences under a key not indented, strings quoted exactly
//! when PyYAML would read them back as something else, long lines folded at 80 columns.

use minijinja::value::{Value, ValueKind};
use minijinja::{Error, ErrorKind};

use crate::expr::jinja::kv::KvLookup;
use crate::expr::jinja::value::{PyTuple, type_name};
use crate::expr::python::float_repr;
use crate::yaml::{Plain, resolve_plain};

/// `indent` and `allow_unicode` of `yaml.safe_dump`.
#[derive(Debug, Clone, Copy)]
pub struct YamlDumpOptions {
    /// Spaces per nesting level (PyYAML accepts 2..=9; others fall back to 2).
    pub indent: usize,
    /// Write non-ASCII characters as they are (else as `\x..` escapes in double quotes).
    pub allow_unicode: bool,
}

impl Default for YamlDumpOptions {
    fn default() -> Self {
        YamlDumpOptions {
            indent: 2,
            allow_unicode: true,
        }
    }
}

const WIDTH: usize = 80;

/// Dump a value as block-style YAML.
///
/// # Errors
/// A `RepresenterError` for values YAML cannot represent (datastore lookups, undefined).
pub fn dump(v: &Value, opts: &YamlDumpOptions) -> Result<String, Error> {
    let indent = if (2..=9).contains(&opts.indent) {
        opts.indent
    } else {
        2
    };
    let mut e = Emitter {
        out: String::new(),
        indent,
        allow_unicode: opts.allow_unicode,
        column: 0,
    };
    e.node(v, 0, Context::Root)?;
    if !e.out.ends_with('\n') {
        e.out.push('\n');
    }
    Ok(e.out)
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Context {
    Root,
    MapValue,
    SeqItem,
}

struct Emitter {
    out: String,
    indent: usize,
    allow_unicode: bool,
    column: usize,
}

fn representer_error(v: &Value) -> Error {
    Error::new(
        ErrorKind::InvalidOperation,
        format!(
            "RepresenterError: cannot represent an object: {}",
            type_name(v)
        ),
    )
}

impl Emitter {
    fn write(&mut self, s: &str) {
        self.out.push_str(s);
        match s.rfind('\n') {
            Some(pos) => self.column = s[pos + 1..].chars().count(),
            None => self.column += s.chars().count(),
        }
    }

    fn newline(&mut self, indent: usize) {
        self.out.push('\n');
        self.out.push_str(&" ".repeat(indent));
        self.column = indent;
    }

    fn items(v: &Value) -> Result<Option<Vec<Value>>, Error> {
        if let Some(t) = v.downcast_object_ref::<PyTuple>() {
            return Ok(Some(t.0.clone()));
        }
        match v.kind() {
            ValueKind::Seq | ValueKind::Iterable => Ok(Some(v.try_iter()?.collect())),
            _ => Ok(None),
        }
    }

    /// Write `v` whose first line continues the current line; `level` is the indentation of
    /// the enclosing block.
    fn node(&mut self, v: &Value, level: usize, ctx: Context) -> Result<(), Error> {
        if v.downcast_object_ref::<KvLookup>().is_some() || v.is_undefined() {
            return Err(representer_error(v));
        }
        if let Some(items) = Self::items(v)? {
            if items.is_empty() {
                return self.inline("[]", ctx);
            }
            // Under a mapping key the items are not indented (PyYAML's indentless sequences).
            let item_level = level;
            for (i, item) in items.iter().enumerate() {
                if i > 0 || ctx == Context::MapValue {
                    self.newline(item_level);
                } else if ctx == Context::SeqItem {
                    // nested sequence starts on the same line: "- - a"
                }
                self.write("-");
                // A nested collection starts at the next indentation stop; a scalar after
                // one space.
                let nested = Self::items(item)?.is_some_and(|i| !i.is_empty())
                    || (item.kind() == ValueKind::Map && item.len() != Some(0));
                let pad = if nested { self.indent - 1 } else { 1 };
                self.write(&" ".repeat(pad));
                self.node(item, item_level + self.indent, Context::SeqItem)?;
            }
            return Ok(());
        }
        if v.kind() == ValueKind::Map {
            let keys: Vec<Value> = v.try_iter()?.collect();
            if keys.is_empty() {
                return self.inline("{}", ctx);
            }
            let key_level = match ctx {
                Context::MapValue => level + self.indent,
                _ => level,
            };
            for (i, key) in keys.iter().enumerate() {
                if i > 0 || ctx == Context::MapValue {
                    self.newline(key_level);
                }
                let text = self.scalar_text(key, key_level)?;
                self.write(&text);
                self.write(":");
                let item = v.get_item(key)?;
                let simple = Self::items(&item)?.is_none_or(|i| i.is_empty())
                    && (item.kind() != ValueKind::Map || item.len() == Some(0));
                if simple {
                    self.write(" ");
                }
                self.node(&item, key_level, Context::MapValue)?;
            }
            return Ok(());
        }
        let text = self.scalar_text(v, level + self.indent)?;
        self.write(&text);
        Ok(())
    }

    fn inline(&mut self, text: &str, _ctx: Context) -> Result<(), Error> {
        self.write(text);
        Ok(())
    }

    fn scalar_text(&mut self, v: &Value, continuation: usize) -> Result<String, Error> {
        Ok(match v.kind() {
            ValueKind::None => "null".to_owned(),
            ValueKind::Bool => if v.is_true() { "true" } else { "false" }.to_owned(),
            ValueKind::Number if v.is_integer() => v.to_string(),
            ValueKind::Number => {
                let f = f64::try_from(v.clone()).unwrap_or(f64::NAN);
                if f.is_nan() {
                    ".nan".to_owned()
                } else if f.is_infinite() {
                    if f > 0.0 { ".inf" } else { "-.inf" }.to_owned()
                } else {
                    let r = float_repr(f).to_lowercase();
                    if !r.contains('.') && r.contains('e') {
                        r.replacen('e', ".0e", 1)
                    } else {
                        r
                    }
                }
            }
            ValueKind::String => self.string(v.as_str().unwrap_or_default(), continuation),
            _ => return Err(representer_error(v)),
        })
    }

    fn string(&self, s: &str, continuation: usize) -> String {
        let analysis = analyze(s, self.allow_unicode);
        if analysis.special {
            return double_quoted(s, self.allow_unicode);
        }
        if analysis.plain_ok && resolve_plain(s) == Plain::Str {
            return self.fold(s, continuation, false);
        }
        self.fold(s, continuation, true)
    }

    /// Plain or single-quoted text, breaking long lines at single spaces past 80 columns and
    /// writing each line break of the content as an empty line.
    fn fold(&self, s: &str, continuation: usize, quoted: bool) -> String {
        let indent = " ".repeat(continuation);
        let mut out = String::new();
        let mut column = self.column;
        if quoted {
            out.push('\'');
            column += 1;
        }
        let chars: Vec<char> = s.chars().collect();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            if c == '\n' {
                let mut n = 0;
                while i < chars.len() && chars[i] == '\n' {
                    n += 1;
                    i += 1;
                }
                out.push('\n');
                for _ in 0..n {
                    out.push('\n');
                }
                out.push_str(&indent);
                column = continuation;
                continue;
            }
            if c == ' '
                && column > WIDTH
                && chars.get(i + 1).is_some_and(|n| *n != ' ')
                && i > 0
                && chars[i - 1] != ' '
            {
                out.push('\n');
                out.push_str(&indent);
                column = continuation;
                i += 1;
                continue;
            }
            if quoted && c == '\'' {
                out.push_str("''");
                column += 2;
            } else {
                out.push(c);
                column += 1;
            }
            i += 1;
        }
        if quoted {
            out.push('\'');
        }
        out
    }
}

struct Analysis {
    plain_ok: bool,
    special: bool,
}

/// PyYAML's `analyze_scalar`, reduced to what block-style dumping needs.
fn analyze(s: &str, allow_unicode: bool) -> Analysis {
    if s.is_empty() {
        return Analysis {
            plain_ok: false,
            special: false,
        };
    }
    let chars: Vec<char> = s.chars().collect();
    let mut plain_ok = true;
    let mut special = false;
    if chars[0] == ' ' || chars[chars.len() - 1] == ' ' {
        plain_ok = false;
    }
    if s.starts_with("---") || s.starts_with("...") {
        plain_ok = false;
    }
    for (i, &c) in chars.iter().enumerate() {
        let next = chars.get(i + 1).copied();
        let followed_by_space = next.is_none_or(|n| n == ' ' || n == '\n');
        if i == 0 {
            if "#,[]{}&*!|>'\"%@`".contains(c) {
                plain_ok = false;
            }
            if matches!(c, '?' | ':' | '-') && followed_by_space {
                plain_ok = false;
            }
        } else {
            if c == ':' && followed_by_space {
                plain_ok = false;
            }
            if c == '#' && chars[i - 1] == ' ' {
                plain_ok = false;
            }
        }
        match c {
            '\n' => plain_ok = false,
            '\u{85}' | '\u{2028}' | '\u{2029}' => plain_ok = false,
            ' '..='~' => {}
            c if is_unicode_printable(c) => {
                if !allow_unicode {
                    special = true;
                }
            }
            _ => special = true,
        }
    }
    Analysis { plain_ok, special }
}

fn is_unicode_printable(c: char) -> bool {
    let u = c as u32;
    (u == 0x85
        || (0xA0..=0xD7FF).contains(&u)
        || (0xE000..=0xFFFD).contains(&u)
        || (0x10000..=0x10FFFF).contains(&u))
        && u != 0xFEFF
}

fn double_quoted(s: &str, allow_unicode: bool) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\0' => out.push_str("\\0"),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0b' => out.push_str("\\v"),
            '\x0c' => out.push_str("\\f"),
            '\x1b' => out.push_str("\\e"),
            ' '..='~' => out.push(c),
            c if allow_unicode && is_unicode_printable(c) => out.push(c),
            c => {
                let u = c as u32;
                if u < 0x100 {
                    out.push_str(&format!("\\x{u:02X}"));
                } else if u < 0x10000 {
                    out.push_str(&format!("\\u{u:04X}"));
                } else {
                    out.push_str(&format!("\\U{u:08X}"));
                }
            }
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::expr::jinja::value::from_json;
    use serde_json::json;

    fn d(v: serde_json::Value) -> String {
        dump(&from_json(&v), &YamlDumpOptions::default()).unwrap()
    }

    #[test]
    fn matches_libyaml_output() {
        assert_eq!(d(json!(null)), "null\n");
        assert_eq!(
            d(json!({"x": 1, "y": "two", "z": null})),
            "x: 1\ny: two\nz: null\n"
        );
        assert_eq!(
            d(json!({"a": {"b": {"c": [10, 20, {"d": "deep"}]}}})),
            "a:\n  b:\n    c:\n    - 10\n    - 20\n    - d: deep\n"
        );
        assert_eq!(d(json!({})), "{}\n");
        assert_eq!(d(json!({"k": "line1\nline2"})), "k: 'line1\n\n  line2'\n");
        assert_eq!(
            d(json!({"k": "a: b", "k2": "- x", "k3": "#c"})),
            "k: 'a: b'\nk2: '- x'\nk3: '#c'\n"
        );
        assert_eq!(
            d(
                json!({"a": 1.0, "b": 1e16, "d": "123", "e": "true", "f": "", "g": " x", "h": "a # b",
                      "i": "x:", "j": [[1, 2], []], "k": {}, "l": "it's", "m": "multi\nline\n",
                      "t": "y", "u": "yes", "z": "1e5", "tab": "tab\there"})
            ),
            "a: 1.0\nb: 1.0e+16\nd: '123'\ne: 'true'\nf: ''\ng: ' x'\nh: 'a # b'\ni: 'x:'\nj:\n- - 1\n  - 2\n- []\nk: {}\nl: it's\nm: 'multi\n\n  line\n\n  '\nt: y\nu: 'yes'\nz: 1e5\ntab: \"tab\\there\"\n"
        );
        assert_eq!(
            d(json!([{"a": 1, "b": [1, {"c": 2}]}])),
            "- a: 1\n  b:\n  - 1\n  - c: 2\n"
        );
        let four = YamlDumpOptions {
            indent: 4,
            ..YamlDumpOptions::default()
        };
        assert_eq!(
            dump(&from_json(&json!({"x": [{"a": 1, "b": 2}]})), &four).unwrap(),
            "x:\n-   a: 1\n    b: 2\n"
        );
        assert_eq!(
            dump(&from_json(&json!([[1, 2], [3], 4])), &four).unwrap(),
            "-   - 1\n    - 2\n-   - 3\n- 4\n"
        );
        assert_eq!(
            d(json!({"k": "word ".repeat(30)})),
            "k: 'word word word word word word word word word word word word word word word word\n  word word word word word word word word word word word word word word '\n"
        );
        let ascii = YamlDumpOptions {
            allow_unicode: false,
            ..YamlDumpOptions::default()
        };
        assert_eq!(
            dump(&from_json(&json!("héllo wörld")), &ascii).unwrap(),
            "\"h\\xE9llo w\\xF6rld\"\n"
        );
    }
}
