//! Python's `re` module, as StackStorm's filters, YAQL's regex functions and rule operators use
//! it: Python pattern syntax and semantics on top of fancy-regex.
//!
//! Differences from Rust's `regex` that matter and are handled here: `$` also matches before a
//! final newline, `\Z` is the absolute end, `(?P=name)` back-references, a `{` that is not a
//! repetition is a literal, replacement strings use `\1` / `\g<name>`, and empty matches right
//! after a non-empty one are found (Python 3.7+ `re.sub`/`findall`).

use fancy_regex::{Captures, Regex, RegexBuilder};
use serde_json::Value;

use super::{ErrorKind, ExprError};

/// Regex flags (Python's `re.I`, `re.M`, `re.S`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flags {
    /// `re.IGNORECASE`.
    pub ignore_case: bool,
    /// `re.MULTILINE`.
    pub multiline: bool,
    /// `re.DOTALL`.
    pub dot_all: bool,
}

impl Flags {
    /// Just `re.IGNORECASE` when `yes`.
    pub fn ignore_case(yes: bool) -> Self {
        Flags {
            ignore_case: yes,
            ..Flags::default()
        }
    }
}

/// Backtracking budget per match attempt, so a pathological pattern fails instead of hanging.
const BACKTRACK_LIMIT: usize = 1_000_000;

/// A compiled Python regular expression.
#[derive(Debug, Clone)]
pub struct PyRegex {
    regex: Regex,
    anchored: Regex,
    pattern: String,
    flags: Flags,
}

/// One match: its span (byte offsets) and groups (`None` for groups that did not take part).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PyMatch {
    /// Byte offset of the start.
    pub start: usize,
    /// Byte offset of the end.
    pub end: usize,
    /// The matched text.
    pub text: String,
    /// Groups 1..n.
    pub groups: Vec<Option<String>>,
    /// Byte spans of groups 1..n (`None` for groups that did not take part).
    pub group_spans: Vec<Option<(usize, usize)>>,
}

fn re_error(message: impl Into<String>) -> ExprError {
    ExprError::new(ErrorKind::Value, message)
}

impl PyRegex {
    /// Compile a Python pattern.
    ///
    /// # Errors
    /// [`ErrorKind::Value`] (Python's `re.error`) for a pattern that does not compile.
    pub fn new(pattern: &str, flags: Flags) -> Result<Self, ExprError> {
        let translated = translate(pattern, flags)?;
        let mut prefix = String::new();
        if flags.ignore_case || flags.multiline || flags.dot_all {
            prefix.push_str("(?");
            if flags.ignore_case {
                prefix.push('i');
            }
            if flags.multiline {
                prefix.push('m');
            }
            if flags.dot_all {
                prefix.push('s');
            }
            prefix.push(')');
        }
        let build = |p: String| {
            RegexBuilder::new(&p)
                .backtrack_limit(BACKTRACK_LIMIT)
                .build()
                .map_err(|e| re_error(format!("invalid regular expression `{pattern}`: {e}")))
        };
        Ok(PyRegex {
            regex: build(format!("{prefix}{translated}"))?,
            anchored: build(format!("{prefix}\\A(?:{translated})"))?,
            pattern: pattern.to_owned(),
            flags,
        })
    }

    /// The pattern as written.
    pub fn pattern(&self) -> &str {
        &self.pattern
    }

    /// The flags.
    pub fn flags(&self) -> Flags {
        self.flags
    }

    /// Number of capturing groups.
    pub fn group_count(&self) -> usize {
        self.regex.captures_len().saturating_sub(1)
    }

    /// Group names by index (index 0 is the whole match).
    pub fn group_names(&self) -> Vec<Option<String>> {
        self.regex
            .capture_names()
            .map(|n| n.map(str::to_owned))
            .collect()
    }

    /// `re.match`: a match anchored at the start.
    ///
    /// # Errors
    /// When the backtracking budget runs out.
    pub fn match_start(&self, text: &str) -> Result<Option<PyMatch>, ExprError> {
        let caps = self.anchored.captures(text).map_err(runtime)?;
        Ok(caps.map(|c| to_match(&c)))
    }

    /// `re.search`: the first match anywhere.
    ///
    /// # Errors
    /// When the backtracking budget runs out.
    pub fn search(&self, text: &str) -> Result<Option<PyMatch>, ExprError> {
        let caps = self.regex.captures(text).map_err(runtime)?;
        Ok(caps.map(|c| to_match(&c)))
    }

    /// Every match, with Python 3.7+ rules for empty matches.
    ///
    /// # Errors
    /// When the backtracking budget runs out.
    pub fn find_iter(&self, text: &str) -> Result<Vec<PyMatch>, ExprError> {
        let mut out = Vec::new();
        let mut pos = 0;
        let mut forbid_empty_at = None;
        while pos <= text.len() {
            let Some(caps) = self.regex.captures_from_pos(text, pos).map_err(runtime)? else {
                break;
            };
            let Some(whole) = caps.get(0) else { break };
            if whole.start() == whole.end() && forbid_empty_at == Some(whole.start()) {
                // An empty match where the previous one ended empty: move one character on.
                match text[whole.start()..].chars().next() {
                    Some(c) => {
                        pos = whole.start() + c.len_utf8();
                        continue;
                    }
                    None => break,
                }
            }
            let m = to_match(&caps);
            pos = m.end;
            forbid_empty_at = if m.start == m.end { Some(m.end) } else { None };
            out.push(m);
        }
        Ok(out)
    }

    /// `re.findall`: whole matches when there are no groups, the group when there is one, the
    /// tuple of groups (as a list) otherwise; groups that did not match are `""`.
    ///
    /// # Errors
    /// When the backtracking budget runs out.
    pub fn find_all(&self, text: &str) -> Result<Vec<Value>, ExprError> {
        let groups = self.group_count();
        Ok(self
            .find_iter(text)?
            .into_iter()
            .map(|m| match groups {
                0 => Value::String(m.text),
                1 => Value::String(m.groups[0].clone().unwrap_or_default()),
                _ => Value::Array(
                    m.groups
                        .into_iter()
                        .map(|g| Value::String(g.unwrap_or_default()))
                        .collect(),
                ),
            })
            .collect())
    }

    /// `re.sub(pattern, repl, text, count)` with a Python replacement template (`\1`,
    /// `\g<name>`); `count` 0 replaces all.
    ///
    /// # Errors
    /// An invalid template (bad escape, unknown group) or the backtracking budget.
    pub fn sub(&self, text: &str, repl: &str, count: usize) -> Result<String, ExprError> {
        let template = Template::parse(repl, self)?;
        self.sub_with(text, count, |m| Ok(template.expand(m)))
    }

    /// `re.sub` with a function computing each replacement.
    ///
    /// # Errors
    /// Whatever `replace` returns, or the backtracking budget.
    pub fn sub_with(
        &self,
        text: &str,
        count: usize,
        mut replace: impl FnMut(&PyMatch) -> Result<String, ExprError>,
    ) -> Result<String, ExprError> {
        let mut out = String::with_capacity(text.len());
        let mut last = 0;
        for (i, m) in self.find_iter(text)?.into_iter().enumerate() {
            if count > 0 && i >= count {
                break;
            }
            out.push_str(&text[last..m.start]);
            out.push_str(&replace(&m)?);
            last = m.end;
        }
        out.push_str(&text[last..]);
        Ok(out)
    }

    /// `re.split(pattern, text, maxsplit)`: pieces between matches, with the groups of each
    /// match in between; `maxsplit` 0 splits at every match.
    ///
    /// # Errors
    /// When the backtracking budget runs out.
    pub fn split(&self, text: &str, maxsplit: usize) -> Result<Vec<Value>, ExprError> {
        let mut out = Vec::new();
        let mut last = 0;
        for (i, m) in self.find_iter(text)?.into_iter().enumerate() {
            if maxsplit > 0 && i >= maxsplit {
                break;
            }
            out.push(Value::String(text[last..m.start].to_owned()));
            for g in m.groups {
                out.push(g.map_or(Value::Null, Value::String));
            }
            last = m.end;
        }
        out.push(Value::String(text[last..].to_owned()));
        Ok(out)
    }
}

fn runtime(e: fancy_regex::Error) -> ExprError {
    ExprError::new(ErrorKind::Limit, format!("regular expression failed: {e}"))
}

fn to_match(c: &Captures<'_, str>) -> PyMatch {
    let whole = c.get(0);
    PyMatch {
        start: whole.map_or(0, |m| m.start()),
        end: whole.map_or(0, |m| m.end()),
        text: whole.map_or_else(String::new, |m| m.as_str().to_owned()),
        groups: (1..c.len())
            .map(|i| c.get(i).map(|m| m.as_str().to_owned()))
            .collect(),
        group_spans: (1..c.len())
            .map(|i| c.get(i).map(|m| (m.start(), m.end())))
            .collect(),
    }
}

/// Rewrite Python pattern syntax for fancy-regex.
fn translate(pattern: &str, flags: Flags) -> Result<String, ExprError> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut out = String::with_capacity(pattern.len() + 8);
    let mut i = 0;
    let mut in_class = false;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '\\' => {
                let Some(&next) = chars.get(i + 1) else {
                    return Err(re_error("bad escape (end of pattern)"));
                };
                match next {
                    'Z' if !in_class => out.push_str("\\z"),
                    _ => {
                        out.push('\\');
                        out.push(next);
                    }
                }
                i += 2;
                continue;
            }
            '[' if !in_class => {
                in_class = true;
                out.push('[');
                // A `]` right after `[` or `[^` is a literal in both dialects; copy it through.
                if chars.get(i + 1) == Some(&'^') {
                    out.push('^');
                    i += 1;
                }
                if chars.get(i + 1) == Some(&']') {
                    out.push_str("\\]");
                    i += 1;
                }
            }
            ']' if in_class => {
                in_class = false;
                out.push(']');
            }
            '$' if !in_class && !flags.multiline => out.push_str("(?=\\n?\\z)"),
            '{' if !in_class => {
                let rest: String = chars[i..].iter().collect();
                if is_repetition(&rest) {
                    let close = rest.find('}').unwrap_or(0);
                    let body = &rest[1..close];
                    if let Some(stripped) = body.strip_prefix(',') {
                        out.push_str(&format!("{{0,{stripped}}}"));
                    } else {
                        out.push('{');
                        out.push_str(body);
                        out.push('}');
                    }
                    i += rest[..=close].chars().count();
                    continue;
                }
                out.push_str("\\{");
            }
            '}' if !in_class => out.push_str("\\}"),
            '(' if !in_class
                && chars.get(i + 1) == Some(&'?')
                && chars.get(i + 2) == Some(&'P') =>
            {
                match chars.get(i + 3) {
                    Some('<') => {
                        out.push_str("(?P<");
                        i += 4;
                        continue;
                    }
                    Some('=') => {
                        let rest: String = chars[i + 4..].iter().collect();
                        let Some(end) = rest.find(')') else {
                            return Err(re_error("missing ), unterminated name"));
                        };
                        out.push_str(&format!("\\k<{}>", &rest[..end]));
                        i += 4 + rest[..=end].chars().count();
                        continue;
                    }
                    _ => out.push('('),
                }
            }
            c => out.push(c),
        }
        i += 1;
    }
    Ok(out)
}

/// True when `s` (starting at `{`) is a repetition `{n}`, `{n,}`, `{n,m}` or `{,m}`.
fn is_repetition(s: &str) -> bool {
    let Some(close) = s.find('}') else {
        return false;
    };
    let body = &s[1..close];
    let (a, b) = match body.split_once(',') {
        Some((a, b)) => (a, Some(b)),
        None => (body, None),
    };
    let digits = |x: &str| x.chars().all(|c| c.is_ascii_digit());
    match b {
        None => !a.is_empty() && digits(a),
        Some(b) => digits(a) && digits(b) && !(a.is_empty() && b.is_empty()),
    }
}

/// A parsed Python replacement template.
#[derive(Debug, Clone)]
enum Piece {
    Text(String),
    Group(usize),
}

#[derive(Debug, Clone)]
struct Template(Vec<Piece>);

impl Template {
    fn parse(repl: &str, re: &PyRegex) -> Result<Template, ExprError> {
        let names = re.group_names();
        let groups = re.group_count();
        let group_ref = |n: usize| {
            if n > groups {
                Err(re_error(format!("invalid group reference {n}")))
            } else {
                Ok(Piece::Group(n))
            }
        };
        let chars: Vec<char> = repl.chars().collect();
        let mut pieces = Vec::new();
        let mut text = String::new();
        let mut i = 0;
        while i < chars.len() {
            let c = chars[i];
            if c != '\\' {
                text.push(c);
                i += 1;
                continue;
            }
            let Some(&next) = chars.get(i + 1) else {
                return Err(re_error("bad escape (end of pattern)"));
            };
            let flush = |pieces: &mut Vec<Piece>, text: &mut String| {
                if !text.is_empty() {
                    pieces.push(Piece::Text(std::mem::take(text)));
                }
            };
            match next {
                '0'..='9' => {
                    // Up to two digits form a group number (\0 and three digits are octal).
                    let mut j = i + 1;
                    let mut n = 0usize;
                    while j < chars.len() && j < i + 3 && chars[j].is_ascii_digit() {
                        n = n * 10 + chars[j].to_digit(10).unwrap_or(0) as usize;
                        j += 1;
                    }
                    if next == '0' {
                        text.push('\0');
                        i += 2;
                        continue;
                    }
                    flush(&mut pieces, &mut text);
                    pieces.push(group_ref(n)?);
                    i = j;
                }
                'g' => {
                    let rest: String = chars[i + 2..].iter().collect();
                    let Some(body) = rest.strip_prefix('<') else {
                        return Err(re_error("missing <"));
                    };
                    let Some(end) = body.find('>') else {
                        return Err(re_error("missing >, unterminated name"));
                    };
                    let name = &body[..end];
                    flush(&mut pieces, &mut text);
                    match name.parse::<usize>() {
                        Ok(n) => pieces.push(group_ref(n)?),
                        Err(_) => match names.iter().position(|n| n.as_deref() == Some(name)) {
                            Some(n) => pieces.push(Piece::Group(n)),
                            None => return Err(re_error(format!("unknown group name '{name}'"))),
                        },
                    }
                    i += 2 + 1 + end + 1;
                }
                'n' => {
                    text.push('\n');
                    i += 2;
                }
                't' => {
                    text.push('\t');
                    i += 2;
                }
                'r' => {
                    text.push('\r');
                    i += 2;
                }
                'f' => {
                    text.push('\x0c');
                    i += 2;
                }
                'v' => {
                    text.push('\x0b');
                    i += 2;
                }
                'a' => {
                    text.push('\x07');
                    i += 2;
                }
                'b' => {
                    text.push('\x08');
                    i += 2;
                }
                '\\' => {
                    text.push('\\');
                    i += 2;
                }
                c if c.is_ascii_alphabetic() => {
                    return Err(re_error(format!("bad escape \\{c}")));
                }
                c => {
                    text.push('\\');
                    text.push(c);
                    i += 2;
                }
            }
        }
        if !text.is_empty() {
            pieces.push(Piece::Text(text));
        }
        Ok(Template(pieces))
    }

    fn expand(&self, m: &PyMatch) -> String {
        let mut out = String::new();
        for piece in &self.0 {
            match piece {
                Piece::Text(t) => out.push_str(t),
                Piece::Group(0) => out.push_str(&m.text),
                Piece::Group(n) => {
                    if let Some(Some(g)) = m.groups.get(n - 1) {
                        out.push_str(g);
                    }
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn re(p: &str) -> PyRegex {
        PyRegex::new(p, Flags::default()).unwrap()
    }

    #[test]
    fn dollar_matches_before_a_final_newline_and_z_is_absolute() {
        assert!(re("foo$").search("foo\n").unwrap().is_some());
        assert!(re("foo\\Z").search("foo\n").unwrap().is_none());
        assert!(re("foo\\Z").search("foo").unwrap().is_some());
        assert_eq!(re("o$").sub("foo\n", "0", 0).unwrap(), "fo0\n");
    }

    #[test]
    fn match_is_anchored_and_search_is_not() {
        assert!(re("World").match_start("Hello World").unwrap().is_none());
        assert!(re("World").search("Hello World").unwrap().is_some());
        let i = PyRegex::new("hello", Flags::ignore_case(true)).unwrap();
        assert!(i.match_start("Hello").unwrap().is_some());
    }

    #[test]
    fn substitution_follows_python() {
        assert_eq!(
            re(r"(\w+) (\w+)").sub("Hello World", r"\2 \1", 0).unwrap(),
            "World Hello"
        );
        assert_eq!(
            re(r"(?P<first>\w+) (\w+)")
                .sub("Hello World", r"\g<2>-\g<first>", 0)
                .unwrap(),
            "World-Hello"
        );
        assert_eq!(
            re("x*").sub("Hello World", "-", 0).unwrap(),
            "-H-e-l-l-o- -W-o-r-l-d-"
        );
        assert_eq!(re("x*").sub("abxd", "-", 0).unwrap(), "-a-b--d-");
        assert_eq!(re("^").sub("line", "> ", 0).unwrap(), "> line");
        assert!(re("(l)").sub("Hello", r"\3", 0).is_err());
        assert!(re("l").sub("Hello", r"\q", 0).is_err());
        assert_eq!(re("l").sub("Hello", "$", 1).unwrap(), "He$lo");
    }

    #[test]
    fn findall_and_split_shapes() {
        assert_eq!(
            re(r"\d+").find_all("a1b22").unwrap(),
            [json!("1"), json!("22")]
        );
        assert_eq!(
            re(r"(\d+)").find_all("a1b22").unwrap(),
            [json!("1"), json!("22")]
        );
        assert_eq!(
            re(r"(\w)=(\d)").find_all("a=1 b=2").unwrap(),
            [json!(["a", "1"]), json!(["b", "2"])]
        );
        assert_eq!(
            re(r",\s*").split("one, two,three , four", 0).unwrap(),
            [json!("one"), json!("two"), json!("three "), json!("four")]
        );
        assert_eq!(
            re("(,)").split("a,b", 0).unwrap(),
            [json!("a"), json!(","), json!("b")]
        );
    }

    #[test]
    fn python_only_syntax_is_translated() {
        assert!(re(r"(?P<x>a)(?P=x)").search("aa").unwrap().is_some());
        assert!(re("a{b").search("a{b").unwrap().is_some());
        assert!(re("a{,2}b").search("aab").unwrap().is_some());
        assert!(PyRegex::new("[", Flags::default()).is_err());
        assert!(re("(a+)+$").search(&"a".repeat(40)).is_ok());
    }
}
