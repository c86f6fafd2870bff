//! Matching chat commands against action aliases and pulling parameters out of them, as
//! StackStorm's `ActionAliasFormatParser` (`st2common/models/utils/action_alias_utils.py`) and
//! `get_matching_alias` (`st2common/util/actionalias_matching.py`) do.
//!
//! A format such as `run {{cmd}} on {{hosts=localhost}}` is turned into a Python regular
//! expression: each `{{ name }}` becomes a named group taking a quoted string, a `{...}` blob or
//! lazy text, each `{{ name = default }}` the same group made optional; the rest of the format
//! stays a regular expression (users write regex syntax in formats). `^\s*` and `\s*$` are added
//! unless the format already has anchors where StackStorm's token search finds them (at the top
//! level, inside groups, or in the *second* alternative of an alternation — its quirk, kept).
//! `key=value` pairs at the end of a command are taken off first and override what the format
//! extracted.

use std::sync::{Arc, LazyLock};

use serde_json::{Map, Value};

use crate::expr::pyregex::{Flags, PyMatch, PyRegex};
use crate::model::ActionAlias;

/// Why a command does not give parameters for a format (StackStorm's `ParseException`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// The command does not match the format.
    #[error("Command \"{command}\" doesn't match format string \"{format}\"")]
    NoMatch {
        /// The command as given.
        command: String,
        /// The format string.
        format: String,
    },
    /// The format has placeholders, the command gave none and there are no defaults.
    #[error("No value supplied and no default value found.")]
    NoValue,
    /// The format is not a valid regular expression once its placeholders are replaced.
    #[error("Format string \"{format}\" is not a valid regular expression: {message}")]
    BadFormat {
        /// The format string.
        format: String,
        /// What the regex engine said.
        message: String,
    },
}

// The pieces StackStorm builds its regular expressions from (Python syntax).
const KEY: &str = r"\s*(\S+?)\s*";
const VALUE: &str = r#"""|''|"(.+?)"|'(.+?)'|({.+?})|(\S+)"#;
const EXT_VALUE: &str = r#"""|''|"(.+?)"|'(.+?)'|({.+?})|(.+?)"#;
/// What a `{{ name }}` placeholder becomes (`\1`: the blanks before it, `\2`: its name).
const PARAM_MATCH: &str = r#"\1["\']?(?P<\2>(?:(?<=\').+?(?=\')|(?<=").+?(?=")|{.+?}|.+?))["\']?"#;

fn pairs_pattern() -> String {
    format!(r"(?:^|\s+){KEY}=({VALUE})")
}

fn ending_pattern() -> String {
    format!(r".*?(({}\s*)*)$", pairs_pattern())
}

fn optional_pattern() -> String {
    format!(r"{{{{{KEY}\s*=\s*(?:{EXT_VALUE})\s*}}}}")
}

fn required_pattern() -> String {
    format!(r"{{{{{KEY}}}}}")
}

const DOT_ALL: Flags = Flags {
    ignore_case: false,
    multiline: false,
    dot_all: true,
};

/// A format string compiled against one command (StackStorm's `ActionAliasFormatParser`).
#[derive(Debug, Clone)]
pub struct FormatParser {
    format: String,
    command: String,
    /// The command without its trailing `key=value` pairs, padded with a blank each side.
    stream: String,
    /// The trailing pairs: name and value.
    pairs: Vec<(String, String)>,
    /// The optional placeholders: name and default.
    optional: Vec<(String, String)>,
    regex: PyRegex,
    /// Named groups by index (index 0 is the whole match).
    names: Vec<Option<String>>,
}

impl FormatParser {
    /// Compile `format` for `command`.
    ///
    /// # Errors
    /// [`ParseError::BadFormat`] when the format is not a valid regular expression (or a
    /// command is too costly to match).
    pub fn new(format: &str, command: &str) -> Result<Self, ParseError> {
        let bad = |message: String| ParseError::BadFormat {
            format: format.to_owned(),
            message,
        };
        let fixed = fixed().map_err(|e| bad(e.clone()))?;
        let (pairs, stream) = trailing_pairs(command, fixed).map_err(|e| bad(e.message))?;
        let optional = fixed
            .optional
            .find_iter(format)
            .map_err(|e| bad(e.message))?
            .into_iter()
            .map(|m| (group(&m, 0), (1..5).map(|i| group(&m, i)).collect()))
            .collect();
        let with_optional = fixed
            .optional_placeholder
            .sub(format, &format!("(?:{PARAM_MATCH})?"), 0)
            .map_err(|e| bad(e.message))?;
        let mut pattern = fixed
            .required_placeholder
            .sub(&with_optional, PARAM_MATCH, 0)
            .map_err(|e| bad(e.message))?;
        let tokens = sre::parse(&pattern);
        if !sre::search(&tokens, &[sre::AT_BEGINNING, sre::AT_BEGINNING_STRING]) {
            pattern = format!(r"^\s*{pattern}");
        }
        if !sre::search(&tokens, &[sre::AT_END, sre::AT_END_STRING]) {
            pattern.push_str(r"\s*$");
        }
        let regex = PyRegex::new(&pattern, DOT_ALL).map_err(|e| bad(e.message))?;
        let names = regex.group_names();
        let mut seen: Vec<&str> = Vec::new();
        for name in names.iter().flatten() {
            if seen.contains(&name.as_str()) {
                return Err(bad(format!("redefinition of group name '{name}'")));
            }
            seen.push(name);
        }
        Ok(FormatParser {
            format: format.to_owned(),
            command: command.to_owned(),
            stream,
            pairs,
            optional,
            regex,
            names,
        })
    }

    /// The parameters of the first match (`get_extracted_param_value`): strings, or `null`
    /// for a named group that took no part in the match.
    ///
    /// # Errors
    /// [`ParseError::NoMatch`], [`ParseError::NoValue`], or [`ParseError::BadFormat`] when
    /// matching runs out of its backtracking budget.
    pub fn extract(&self) -> Result<Map<String, Value>, ParseError> {
        let found = self.regex.search(&self.stream).map_err(|e| self.bad(&e))?;
        self.params_of(found.as_ref())
    }

    /// The parameters of every match (`get_multiple_extracted_param_value`, for
    /// `match_multiple` formats).
    ///
    /// # Errors
    /// As [`FormatParser::extract`].
    pub fn extract_all(&self) -> Result<Vec<Map<String, Value>>, ParseError> {
        self.regex
            .find_iter(&self.stream)
            .map_err(|e| self.bad(&e))?
            .iter()
            .map(|m| self.params_of(Some(m)))
            .collect()
    }

    fn bad(&self, e: &crate::expr::ExprError) -> ParseError {
        ParseError::BadFormat {
            format: self.format.clone(),
            message: e.message.clone(),
        }
    }

    fn params_of(&self, found: Option<&PyMatch>) -> Result<Map<String, Value>, ParseError> {
        let Some(m) = found else {
            return Err(ParseError::NoMatch {
                command: self.command.clone(),
                format: self.format.clone(),
            });
        };
        let mut result = Map::new();
        for (i, name) in self.names.iter().enumerate().skip(1) {
            if let Some(name) = name {
                let value = m.groups.get(i - 1).cloned().flatten();
                result.insert(name.clone(), value.map_or(Value::Null, Value::String));
            }
        }
        for (name, default) in &self.optional {
            let matched = result
                .get(name)
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned);
            result.insert(
                name.clone(),
                Value::String(matched.unwrap_or_else(|| default.clone())),
            );
        }
        for (name, value) in &self.pairs {
            result.insert(name.clone(), Value::String(value.clone()));
        }
        let any_value = result
            .values()
            .any(|v| v.as_str().is_some_and(|s| !s.is_empty()));
        if !self.format.is_empty() && self.stream.trim().is_empty() && !any_value {
            return Err(ParseError::NoValue);
        }
        Ok(result)
    }
}

fn group(m: &PyMatch, i: usize) -> String {
    m.groups.get(i).cloned().flatten().unwrap_or_default()
}

/// The regular expressions every format and command go through, compiled once.
#[derive(Debug)]
struct Fixed {
    /// The trailing `key=value` pairs of a command.
    ending: PyRegex,
    /// One pair.
    pairs: PyRegex,
    /// `{{ name = default }}`, to read the defaults.
    optional: PyRegex,
    /// `{{ name = default }}` with the blanks before it, to replace it.
    optional_placeholder: PyRegex,
    /// `{{ name }}` with the blanks before it, to replace it.
    required_placeholder: PyRegex,
}

static FIXED: LazyLock<Result<Fixed, String>> = LazyLock::new(|| {
    let compile = |pattern: &str, flags: Flags| {
        PyRegex::new(pattern, flags).map_err(|e| format!("internal pattern `{pattern}`: {e}"))
    };
    Ok(Fixed {
        ending: compile(&ending_pattern(), DOT_ALL)?,
        pairs: compile(&pairs_pattern(), DOT_ALL)?,
        optional: compile(&optional_pattern(), DOT_ALL)?,
        optional_placeholder: compile(&format!(r"(\s*){}", optional_pattern()), Flags::default())?,
        required_placeholder: compile(&format!(r"(\s*){}", required_pattern()), Flags::default())?,
    })
});

fn fixed() -> Result<&'static Fixed, &'static String> {
    FIXED.as_ref()
}

/// Take the `key=value` pairs off the end of `command`; returns them and what is left, padded
/// with a blank each side. As StackStorm, every occurrence of the trailing text is removed.
fn trailing_pairs(
    command: &str,
    fixed: &Fixed,
) -> Result<(Vec<(String, String)>, String), crate::expr::ExprError> {
    let tail = fixed
        .ending
        .match_start(command)?
        .and_then(|m| m.groups.first().cloned().flatten())
        .filter(|t| !t.is_empty());
    let mut pairs = Vec::new();
    let mut rest = command.to_owned();
    if let Some(tail) = tail {
        for m in fixed.pairs.find_iter(&tail)? {
            pairs.push((group(&m, 0), (2..6).map(|i| group(&m, i)).collect()));
        }
        rest = rest.replace(&tail, "");
    }
    Ok((pairs, format!(" {rest} ")))
}

/// Parameters of `command` for `format` (StackStorm's `extract_parameters`).
///
/// # Errors
/// See [`ParseError`].
pub fn extract_parameters(format: &str, command: &str) -> Result<Map<String, Value>, ParseError> {
    FormatParser::new(format, command)?.extract()
}

/// Parameters of every match of `format` in `command` (`match_multiple`).
///
/// # Errors
/// See [`ParseError`].
pub fn extract_all_parameters(
    format: &str,
    command: &str,
) -> Result<Vec<Map<String, Value>>, ParseError> {
    FormatParser::new(format, command)?.extract_all()
}

/// One pattern of an alias: the format it comes from, its help text and the string commands
/// are matched against.
#[derive(Debug, Clone)]
pub struct AliasPattern {
    /// The alias.
    pub alias: Arc<ActionAlias>,
    /// Index of the format in the alias's `formats`.
    pub format_index: usize,
    /// Help text.
    pub display: Option<String>,
    /// What commands are matched against (`""` for a format with a display and no
    /// representation).
    pub representation: String,
    /// Whether the format runs the action once per match.
    pub match_multiple: bool,
}

/// Every pattern of `alias` (StackStorm's `list_format_strings_from_aliases`).
pub fn patterns(alias: &Arc<ActionAlias>) -> Vec<AliasPattern> {
    let mut out = Vec::new();
    for (i, format) in alias.formats.iter().enumerate() {
        let pattern = |representation: &str| AliasPattern {
            alias: alias.clone(),
            format_index: i,
            display: format.display.clone(),
            representation: representation.to_owned(),
            match_multiple: format.match_multiple,
        };
        if format.display.is_some() && format.representation.is_empty() {
            out.push(pattern(""));
        } else {
            out.extend(format.representation.iter().map(|r| pattern(r)));
        }
    }
    out
}

/// The patterns of `aliases` that `command` matches (`match_command_to_alias`).
pub fn match_command<'a>(
    command: &str,
    aliases: impl IntoIterator<Item = &'a Arc<ActionAlias>>,
) -> Vec<AliasPattern> {
    aliases
        .into_iter()
        .flat_map(patterns)
        .filter(|p| extract_parameters(&p.representation, command).is_ok())
        .collect()
}

/// No alias, or more than one, matches a command (StackStorm's
/// `ActionAliasAmbiguityException`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct MatchError {
    /// StackStorm's message.
    pub message: String,
    /// How many patterns matched.
    pub matches: usize,
}

/// The one pattern `command` matches among the enabled `aliases` (StackStorm's
/// `get_matching_alias`): first among aliases with a format that is not `match_multiple`, then
/// among aliases with a `match_multiple` format. Every format of a chosen alias is tried.
///
/// # Errors
/// `Command '…' matched no patterns`, `… matched more than 1 pattern` (or `1 (multi)
/// pattern` in the second round).
pub fn matching_alias(
    command: &str,
    aliases: &[Arc<ActionAlias>],
) -> Result<AliasPattern, MatchError> {
    let single = aliases
        .iter()
        .filter(|a| a.enabled && a.formats.iter().any(|f| !f.match_multiple));
    let found = match_command(command, single);
    if found.len() > 1 {
        return Err(MatchError {
            message: format!("Command '{command}' matched more than 1 pattern"),
            matches: found.len(),
        });
    }
    let found = if found.is_empty() {
        let multiple = aliases
            .iter()
            .filter(|a| a.enabled && a.formats.iter().any(|f| f.match_multiple));
        let found = match_command(command, multiple);
        if found.len() > 1 {
            return Err(MatchError {
                message: format!("Command '{command}' matched more than 1 (multi) pattern"),
                matches: found.len(),
            });
        }
        found
    } else {
        found
    };
    found.into_iter().next().ok_or_else(|| MatchError {
        message: format!("Command '{command}' matched no patterns"),
        matches: 0,
    })
}

/// One help line (`GET /actionalias/help`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct HelpString {
    /// The alias's pack.
    pub pack: String,
    /// The format's help text.
    pub display: String,
    /// The alias's description.
    pub description: Option<String>,
}

/// Help strings of the enabled `aliases` (StackStorm's `generate_helpstring_result`): those of
/// `pack` (when given) whose display matches `filter` (a Python regex, case-insensitive), the
/// window `offset`/`limit` of them, and how many there are.
///
/// # Errors
/// The filter is not a valid regular expression.
pub fn help_strings(
    aliases: &[Arc<ActionAlias>],
    filter: Option<&str>,
    pack: Option<&str>,
    limit: i64,
    offset: i64,
) -> Result<(u64, Vec<HelpString>), crate::expr::ExprError> {
    let filter = PyRegex::new(filter.unwrap_or(""), Flags::ignore_case(true))?;
    let mut count: i64 = 0;
    let mut out = Vec::new();
    for alias in aliases {
        if !alias.enabled || pack.is_some_and(|p| !p.is_empty() && p != alias.pack()) {
            continue;
        }
        for format in &alias.formats {
            let Some(display) = format.display.as_deref().filter(|d| !d.is_empty()) else {
                continue;
            };
            if filter.search(display)?.is_none() {
                continue;
            }
            // StackStorm's window: the shown ones are counted too, so `available` is the
            // number of matching help strings.
            let skip = (offset == 0 && limit > 0 && count >= limit)
                || (offset > 0 && limit == 0 && count < offset)
                || (offset > 0 && limit > 0 && (count < offset || count >= offset + limit));
            count += 1;
            if skip {
                continue;
            }
            out.push(HelpString {
                pack: alias.pack().to_owned(),
                display: display.to_owned(),
                description: alias.description.clone(),
            });
        }
    }
    Ok((count.max(0) as u64, out))
}

/// Whether `format` (a string) is one of `alias`'s format strings (StackStorm's
/// `get_format_strings`: the representations of object formats that have some, and plain
/// string formats).
pub fn has_format_string(alias: &ActionAlias, format: &str) -> bool {
    alias.formats.iter().any(|f| {
        if f.written_as_string {
            f.display.as_deref() == Some(format)
        } else {
            f.representation.iter().any(|r| r == format)
        }
    })
}

/// Just enough of Python's `sre_parse` to tell where StackStorm's `search_regex_tokens` finds
/// anchors: the token tree with its groups, alternations (with the common-prefix factoring
/// `sre_parse` does) and everything else as opaque tokens.
mod sre {
    pub const AT_BEGINNING: &str = "AT_BEGINNING";
    pub const AT_BEGINNING_STRING: &str = "AT_BEGINNING_STRING";
    pub const AT_END: &str = "AT_END";
    pub const AT_END_STRING: &str = "AT_END_STRING";

    #[derive(Debug, Clone)]
    pub enum Token {
        /// A token compared by value (literals, anchors, classes).
        Plain(String),
        /// A group (`SUBPATTERN`).
        Group(Vec<Token>),
        /// An alternation (`BRANCH`).
        Branch(Vec<Vec<Token>>),
        /// Repeats, lookarounds, conditionals: never equal to another token, never searched.
        Opaque,
    }

    fn same(a: &Token, b: &Token) -> bool {
        matches!((a, b), (Token::Plain(x), Token::Plain(y)) if x == y)
    }

    /// `search_regex_tokens`: a needle at this level, inside a group, or in the second
    /// alternative of an alternation.
    pub fn search(tokens: &[Token], needles: &[&str]) -> bool {
        tokens.iter().any(|t| match t {
            Token::Plain(p) => needles.contains(&p.as_str()),
            Token::Group(inner) => search(inner, needles),
            Token::Branch(items) => items.get(1).is_some_and(|alt| search(alt, needles)),
            Token::Opaque => false,
        })
    }

    struct Parser {
        chars: Vec<char>,
        pos: usize,
    }

    /// The tokens of `pattern`; what cannot be read ends the sequence (the regex engine
    /// reports real syntax errors).
    pub fn parse(pattern: &str) -> Vec<Token> {
        let mut p = Parser {
            chars: pattern.chars().collect(),
            pos: 0,
        };
        p.sub()
    }

    impl Parser {
        fn peek(&self) -> Option<char> {
            self.chars.get(self.pos).copied()
        }

        fn eat(&mut self, c: char) -> bool {
            if self.peek() == Some(c) {
                self.pos += 1;
                true
            } else {
                false
            }
        }

        /// An alternation `a|b|c`, with `sre_parse`'s rewriting of it.
        fn sub(&mut self) -> Vec<Token> {
            let mut items = vec![self.seq()];
            while self.eat('|') {
                items.push(self.seq());
            }
            if items.len() == 1 {
                return items.pop().unwrap_or_default();
            }
            let mut out = Vec::new();
            // A token every alternative starts with moves out in front of the alternation.
            while let Some(first) = items
                .first()
                .and_then(|i| i.first())
                .filter(|first| {
                    items
                        .iter()
                        .all(|i| i.first().is_some_and(|t| same(t, first)))
                })
                .cloned()
            {
                for item in &mut items {
                    item.remove(0);
                }
                out.push(first);
            }
            let all_single_chars = items.iter().all(|i| {
                i.len() == 1 && matches!(&i[0], Token::Plain(p) if p.starts_with("LIT:") || p.starts_with("IN:["))
            });
            if all_single_chars {
                out.push(Token::Plain("IN".into()));
            } else {
                out.push(Token::Branch(items));
            }
            out
        }

        fn seq(&mut self) -> Vec<Token> {
            let mut out: Vec<Token> = Vec::new();
            while let Some(c) = self.peek() {
                match c {
                    '|' | ')' => break,
                    '*' | '+' | '?' => {
                        self.pos += 1;
                        self.eat('?');
                        self.eat('+');
                        if let Some(last) = out.last_mut() {
                            *last = Token::Opaque;
                        }
                    }
                    '{' if self.repeat_here() => {
                        while let Some(c) = self.peek() {
                            self.pos += 1;
                            if c == '}' {
                                break;
                            }
                        }
                        self.eat('?');
                        self.eat('+');
                        if let Some(last) = out.last_mut() {
                            *last = Token::Opaque;
                        }
                    }
                    '^' => {
                        self.pos += 1;
                        out.push(Token::Plain(AT_BEGINNING.into()));
                    }
                    '$' => {
                        self.pos += 1;
                        out.push(Token::Plain(AT_END.into()));
                    }
                    '.' => {
                        self.pos += 1;
                        out.push(Token::Plain("ANY".into()));
                    }
                    '\\' => {
                        self.pos += 1;
                        let Some(e) = self.peek() else { break };
                        self.pos += 1;
                        out.push(Token::Plain(match e {
                            'A' => AT_BEGINNING_STRING.into(),
                            'Z' => AT_END_STRING.into(),
                            'b' | 'B' => format!("AT:{e}"),
                            'd' | 'D' | 's' | 'S' | 'w' | 'W' => format!("IN:[\\{e}]"),
                            e => format!("LIT:\\{e}"),
                        }));
                    }
                    '[' => {
                        let class = self.class();
                        let inner = class
                            .strip_prefix('[')
                            .and_then(|s| s.strip_suffix(']'))
                            .unwrap_or("");
                        out.push(Token::Plain(if inner.chars().count() == 1 {
                            format!("LIT:{inner}")
                        } else {
                            format!("IN:{class}")
                        }));
                    }
                    '(' => {
                        self.pos += 1;
                        out.extend(self.group());
                    }
                    c => {
                        self.pos += 1;
                        out.push(Token::Plain(format!("LIT:{c}")));
                    }
                }
            }
            out
        }

        /// True when a `{` here starts a repetition (`{n}`, `{n,}`, `{,m}`, `{n,m}`).
        fn repeat_here(&self) -> bool {
            let rest: String = self.chars[self.pos..].iter().collect();
            let Some(close) = rest.find('}') else {
                return false;
            };
            let body = &rest[1..close];
            let digits = |x: &str| x.chars().all(|c| c.is_ascii_digit());
            match body.split_once(',') {
                None => !body.is_empty() && digits(body),
                Some((a, b)) => digits(a) && digits(b),
            }
        }

        /// A character class, as written.
        fn class(&mut self) -> String {
            let start = self.pos;
            self.pos += 1;
            self.eat('^');
            self.eat(']');
            while let Some(c) = self.peek() {
                self.pos += 1;
                match c {
                    '\\' => self.pos += 1,
                    ']' => break,
                    _ => {}
                }
            }
            let end = self.pos.min(self.chars.len());
            self.chars[start..end].iter().collect()
        }

        /// After `(`: the group's tokens (none for a comment or a flags-only group).
        fn group(&mut self) -> Vec<Token> {
            if !self.eat('?') {
                let inner = self.sub();
                self.eat(')');
                return vec![Token::Group(inner)];
            }
            match self.peek() {
                Some('P') => {
                    self.pos += 1;
                    if self.eat('<') {
                        while let Some(c) = self.peek() {
                            self.pos += 1;
                            if c == '>' {
                                break;
                            }
                        }
                        let inner = self.sub();
                        self.eat(')');
                        vec![Token::Group(inner)]
                    } else {
                        self.skip_to_close();
                        vec![Token::Opaque]
                    }
                }
                Some(':') => {
                    self.pos += 1;
                    let inner = self.sub();
                    self.eat(')');
                    vec![Token::Group(inner)]
                }
                Some('#') => {
                    while let Some(c) = self.peek() {
                        self.pos += 1;
                        if c == ')' {
                            break;
                        }
                    }
                    Vec::new()
                }
                Some('=' | '!' | '<' | '>' | '(') => {
                    self.skip_to_close();
                    vec![Token::Opaque]
                }
                _ => {
                    // Flags: `(?i)` applies to the whole pattern, `(?i:...)` is a group.
                    while let Some(c) = self.peek() {
                        if c.is_ascii_alphabetic() || c == '-' {
                            self.pos += 1;
                        } else {
                            break;
                        }
                    }
                    if self.eat(':') {
                        let inner = self.sub();
                        self.eat(')');
                        vec![Token::Group(inner)]
                    } else {
                        self.eat(')');
                        Vec::new()
                    }
                }
            }
        }

        /// Skip a lookaround, conditional or atomic group whose `(?` was read.
        fn skip_to_close(&mut self) {
            let mut depth = 1;
            while let Some(c) = self.peek() {
                self.pos += 1;
                match c {
                    '\\' => self.pos += 1,
                    '[' => {
                        self.pos -= 1;
                        self.class();
                    }
                    '(' => depth += 1,
                    ')' => {
                        depth -= 1;
                        if depth == 0 {
                            return;
                        }
                    }
                    _ => {}
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{AliasFormat, Origin};
    use serde_json::json;

    fn extract(format: &str, command: &str) -> Value {
        Value::Object(extract_parameters(format, command).expect("matches"))
    }

    #[test]
    fn empty_format_and_command() {
        assert_eq!(extract("", ""), json!({}));
    }

    #[test]
    fn trailing_pairs_are_taken_off_and_override() {
        assert_eq!(extract("", "a=foobar1"), json!({"a": "foobar1"}));
        assert_eq!(
            extract("foo", r#"foo a="foobar2 poonies bar""#),
            json!({"a": "foobar2 poonies bar"})
        );
        assert_eq!(
            extract("foo", "foo a='foobar2 poonies bar'"),
            json!({"a": "foobar2 poonies bar"})
        );
        assert_eq!(
            extract("foo", r#"foo a={"foobar2": "poonies"}"#),
            json!({"a": r#"{"foobar2": "poonies"}"#})
        );
        assert_eq!(
            extract(
                "",
                r#"a=foobar1 b="boobar2 3 4" c='coobar3 4' d={"a": "b"}"#
            ),
            json!({"a": "foobar1", "b": "boobar2 3 4", "c": "coobar3 4", "d": r#"{"a": "b"}"#})
        );
        assert_eq!(
            extract(
                "{{ captain }} is my captain",
                r#"Malcolm Reynolds is my captain weirdo="River Tam""#
            ),
            json!({"captain": "Malcolm Reynolds", "weirdo": "River Tam"})
        );
        assert_eq!(
            extract("foo bar", "foo bar pony1=foo pony2=bar"),
            json!({"pony1": "foo", "pony2": "bar"})
        );
    }

    #[test]
    fn placeholders_take_words_quotes_and_json() {
        assert_eq!(
            extract(
                "skip {{a}} more skip {{b}} and skip more.",
                "skip a1 more skip b1 and skip more."
            ),
            json!({"a": "a1", "b": "b1"})
        );
        assert_eq!(
            extract("skip {{a}} more skip {{b}}", "skip a1 more skip b1"),
            json!({"a": "a1", "b": "b1"})
        );
        assert_eq!(
            extract(
                "skip {{a}} more skip {{b}} and skip more.",
                r#"skip "a1 a2" more skip b1 and skip more."#
            ),
            json!({"a": "a1 a2", "b": "b1"})
        );
        assert_eq!(
            extract(
                "skip {{a}} more skip.",
                r#"skip {"a": "b", "c": "d"} more skip."#
            ),
            json!({"a": r#"{"a": "b", "c": "d"}"#})
        );
        assert_eq!(
            extract(
                "skip {{a}} more skip {{b}}.",
                r#"skip {"a": "b", "c": "d"} more skip x."#
            ),
            json!({"a": r#"{"a": "b", "c": "d"}"#, "b": "x"})
        );
    }

    #[test]
    fn defaults_fill_what_the_command_leaves_out() {
        assert_eq!(
            extract("acl {{a}} {{b}} {{c}} {{d=1}}", r#"acl "a1 a2" "b1" "c1""#),
            json!({"a": "a1 a2", "b": "b1", "c": "c1", "d": "1"})
        );
        assert_eq!(extract("acl {{a=test}}", "acl"), json!({"a": "test"}));
        assert_eq!(
            extract(
                "s {{a}} more {{ b }} more {{ c=99 }} more {{ d = 99 }}",
                "s one more two more three more"
            ),
            json!({"a": "one", "b": "two", "c": "three", "d": "99"})
        );
        assert_eq!(
            extract("skip {{ a = value }} more", "skip one more"),
            json!({"a": "one"})
        );
        assert_eq!(
            extract("skip {{ a = value }} more", "skip more"),
            json!({"a": "value"})
        );
        assert_eq!(
            extract(
                "two by two hands of {{ color = {{ colors.default_color }} }}",
                "two by two hands of"
            ),
            json!({"color": "{{ colors.default_color }}"})
        );
        assert_eq!(
            extract("skip {{d=test1}} more skip {{e=test1}}.", "skip more skip"),
            json!({"d": "test1", "e": "test1"})
        );
        assert_eq!(
            extract(
                "skip {{d=test}} more skip {{e=test}}",
                "skip ponies more skip"
            ),
            json!({"d": "ponies", "e": "test"})
        );
    }

    #[test]
    fn a_quote_ending_a_value_is_dropped_as_in_stackstorm() {
        // The lazy group stops before an optional closing quote that ends the command.
        assert_eq!(
            extract("run {{cmd}}", r#"run echo "x""#),
            json!({"cmd": "echo \"x"})
        );
        assert_eq!(
            extract("run {{cmd}}", r#"run "echo x""#),
            json!({"cmd": "echo x"})
        );
    }

    #[test]
    fn pairs_combine_with_placeholders() {
        assert_eq!(
            extract("testing {{ a }}", "testing value b=value2"),
            json!({"a": "value", "b": "value2"})
        );
        assert_eq!(
            extract("testing {{ a=new }}", r#"testing b="another value""#),
            json!({"a": "new", "b": "another value"})
        );
        assert_eq!(
            extract(
                "testing {{ b=abc }} {{ c=xyz }}",
                r#"testing newvalue d={"1": "2"} e="long value""#
            ),
            json!({"b": "newvalue", "c": "xyz", "d": r#"{"1": "2"}"#, "e": "long value"})
        );
        assert_eq!(
            extract(
                "{{ p0='http' }} g {{ p1=p }} a {{ url }} {{ p2={'a':'b'} }} {{ p3={{ e.i }} }}",
                "g a http://google.com {{ execution.id }} p4='testing' p5={'a':'c'}"
            ),
            json!({
                "p0": "http", "p1": "p", "url": "http://google.com",
                "p2": "{{ execution.id }}", "p3": "{{ e.i }}", "p4": "testing", "p5": "{'a':'c'}"
            })
        );
    }

    #[test]
    fn placeholders_inside_the_formats_own_groups() {
        // examples/packs/hello_st2/aliases/greet.yaml
        let format = "say hello( to {{ name=world }})?";
        assert_eq!(extract(format, "say hello"), json!({"name": "world"}));
        assert_eq!(extract(format, "say hello to bob"), json!({"name": "bob"}));
        // A required placeholder in an optional group that does not take part is null.
        assert_eq!(
            extract("(run|execute) {{cmd}}( on {{hosts}})?", "run date"),
            json!({"cmd": "date", "hosts": null})
        );
        assert_eq!(
            extract(
                "(run|execute) {{cmd}}( on {{hosts}})?",
                "execute uptime on web1"
            ),
            json!({"cmd": "uptime", "hosts": "web1"})
        );
    }

    #[test]
    fn commands_that_do_not_fit_are_refused() {
        assert_eq!(
            extract_parameters("skip {{d}} more skip {{e}}.", "")
                .expect_err("no match")
                .to_string(),
            r#"Command "" doesn't match format string "skip {{d}} more skip {{e}}.""#
        );
        assert_eq!(
            extract_parameters("foo bar ponies", "foo lulz ponies")
                .expect_err("no match")
                .to_string(),
            r#"Command "foo lulz ponies" doesn't match format string "foo bar ponies""#
        );
        assert!(matches!(
            extract_parameters("{{a}} {{a}}", "x y"),
            Err(ParseError::BadFormat { .. })
        ));
    }

    #[test]
    fn formats_may_carry_their_own_anchors() {
        let begins = r"^\s*foo (?P<issue_key>[A-Z][A-Z0-9]+-[0-9]+)";
        assert_eq!(
            extract(begins, "foo ASDF-1234"),
            json!({"issue_key": "ASDF-1234"})
        );
        assert!(extract_parameters(begins, "bar foo ASDF-1234").is_err());
        let ends = r"foo (?P<issue_key>[A-Z][A-Z0-9]+-[0-9]+)\s*$";
        assert_eq!(
            extract(ends, "foo ASDF-1234"),
            json!({"issue_key": "ASDF-1234"})
        );
        assert!(extract_parameters(ends, "foo ASDF-1234 bar").is_err());
        let both = r"^\s*foo (?P<issue_key>[A-Z][A-Z0-9]+-[0-9]+) bar\s*$";
        assert_eq!(
            extract(both, "foo ASDF-1234 bar"),
            json!({"issue_key": "ASDF-1234"})
        );
        assert!(
            extract_parameters(
                r"^\s*foo (?P<issue_key>[A-Z][A-Z0-9]+-[0-9]+)\s*$",
                "bar ASDF-1234"
            )
            .is_err()
        );
        // Without anchors the format must cover the whole command.
        assert!(extract_parameters("foo", "foo bar").is_err());
    }

    #[test]
    fn anchor_search_follows_stackstorm() {
        let begin = [sre::AT_BEGINNING, sre::AT_BEGINNING_STRING];
        let end = [sre::AT_END, sre::AT_END_STRING];
        assert!(sre::search(&sre::parse("^asdf"), &begin));
        assert!(!sre::search(&sre::parse("^asdf"), &end));
        assert!(!sre::search(&sre::parse("asdf"), &begin));
        assert!(!sre::search(&sre::parse("asdf"), &end));
        assert!(sre::search(&sre::parse("^asdf$"), &end));
        assert!(sre::search(&sre::parse("^asdf|fdsa$"), &end));
        assert!(sre::search(&sre::parse("^(?:asdf|fdsa$)"), &end));
        // Only the second alternative is looked at, unless a shared prefix moved out.
        assert!(!sre::search(&sre::parse("^asdf|fdsa"), &begin));
        assert!(sre::search(&sre::parse("^a|^b"), &begin));
        assert!(!sre::search(&sre::parse("a|b|^c"), &begin));
        // Anchors inside repeats and lookarounds are not seen; escaped ones are literals.
        assert!(!sre::search(&sre::parse("(?:^a)?"), &begin));
        assert!(!sre::search(&sre::parse("(?=^a)"), &begin));
        assert!(!sre::search(&sre::parse(r"\^a[$]"), &begin));
        assert!(sre::search(&sre::parse(r"\Aa\Z"), &end));
    }

    fn alias(name: &str, formats: Vec<AliasFormat>, enabled: bool) -> Arc<ActionAlias> {
        Arc::new(ActionAlias {
            reference: format!("p.{name}"),
            name: name.into(),
            origin: Origin {
                pack: "p".into(),
                metadata_file: String::new(),
            },
            description: Some(format!("{name} alias")),
            enabled,
            action_ref: "core.local".into(),
            formats,
            ack: None,
            result: None,
            extra: Map::new(),
            immutable_parameters: Map::new(),
        })
    }

    fn plain(s: &str) -> AliasFormat {
        AliasFormat::plain(s)
    }

    fn multi(display: &str, representation: &str) -> AliasFormat {
        AliasFormat {
            display: Some(display.into()),
            representation: vec![representation.into()],
            match_multiple: true,
            written_as_string: false,
        }
    }

    #[test]
    fn one_enabled_alias_must_match() {
        let aliases = vec![
            alias("run", vec![plain("run {{cmd}}")], true),
            alias("hello", vec![plain("hello {{name}}")], true),
            alias("off", vec![plain("hello there")], false),
            alias(
                "greet",
                vec![plain("greet {{who}}"), plain("greet all")],
                true,
            ),
        ];
        let m = matching_alias("run date", &aliases).expect("one");
        assert_eq!(m.alias.reference, "p.run");
        assert_eq!(m.representation, "run {{cmd}}");
        assert_eq!(m.display.as_deref(), Some("run {{cmd}}"));
        assert_eq!(
            matching_alias("hello there", &aliases)
                .expect("the disabled one is skipped")
                .alias
                .reference,
            "p.hello"
        );
        let none = matching_alias("nothing here", &aliases).expect_err("none");
        assert_eq!(none.message, "Command 'nothing here' matched no patterns");
        let two = matching_alias("greet all", &aliases).expect_err("two formats");
        assert_eq!(
            two.message,
            "Command 'greet all' matched more than 1 pattern"
        );
        assert_eq!(two.matches, 2);
    }

    #[test]
    fn patterns_of_each_format_form() {
        let display_only = AliasFormat {
            display: Some("Watch this.".into()),
            representation: Vec::new(),
            match_multiple: false,
            written_as_string: false,
        };
        let both = AliasFormat {
            display: Some("Number 5 is {{status}}".into()),
            representation: vec!["Number 5 is {{status=alive}}".into()],
            match_multiple: false,
            written_as_string: false,
        };
        let a = alias(
            "goonies",
            vec![display_only, both, plain("I feel... {{status}}!")],
            true,
        );
        let all = patterns(&a);
        let shown: Vec<(Option<&str>, &str)> = all
            .iter()
            .map(|p| (p.display.as_deref(), p.representation.as_str()))
            .collect();
        assert_eq!(
            shown,
            [
                (Some("Watch this."), ""),
                (
                    Some("Number 5 is {{status}}"),
                    "Number 5 is {{status=alive}}"
                ),
                (Some("I feel... {{status}}!"), "I feel... {{status}}!"),
            ]
        );
        let found = match_command(
            "Don't cross the streams",
            &[alias(
                "spengler",
                vec![plain("{{choice}} cross the {{target}}")],
                true,
            )],
        );
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].representation, "{{choice}} cross the {{target}}");
        assert_eq!(
            extract_parameters(&found[0].representation, "Don't cross the streams").expect("match"),
            *json!({"choice": "Don't", "target": "streams"})
                .as_object()
                .expect("object")
        );
    }

    #[test]
    fn match_multiple_formats_come_second() {
        let aliases = vec![
            alias("one", vec![plain("deploy {{app}}")], true),
            alias(
                "many",
                vec![multi("restart {{svc}}", "restart {{svc}}")],
                true,
            ),
        ];
        let m = matching_alias("restart web", &aliases).expect("multi");
        assert!(m.match_multiple);
        assert_eq!(m.alias.reference, "p.many");
        assert_eq!(
            extract_all_parameters(&m.representation, "restart web").expect("all"),
            vec![
                json!({"svc": "web"})
                    .as_object()
                    .cloned()
                    .unwrap_or_default()
            ]
        );
    }

    #[test]
    fn every_match_counts_when_the_format_has_its_own_end_anchor() {
        // The end anchor sits in the second branch, so none is added; the begin anchor is only
        // in the first branch, so `^\s*` is added in front of it and the second branch can match
        // anywhere. The command is padded with blanks, so the last item has no `$` after it.
        let all = extract_all_parameters(r"^x|(?P<host>\w+)(?:,|$)", "a,b,c").expect("matches");
        assert_eq!(
            Value::Array(all.into_iter().map(Value::Object).collect()),
            json!([{"host": "a"}, {"host": "b"}])
        );
        assert!(
            extract_all_parameters("restart {{svc}}", "stop web")
                .expect("no error")
                .is_empty()
        );
    }

    #[test]
    fn help_windows_and_counts() {
        let aliases = vec![
            alias("a", vec![plain("list things"), plain("list more")], true),
            alias("b", vec![plain("show thing")], true),
            alias("c", vec![plain("list hidden")], false),
        ];
        let (n, all) = help_strings(&aliases, None, None, 0, 0).expect("help");
        assert_eq!(n, 3);
        assert_eq!(all.len(), 3);
        let (n, some) = help_strings(&aliases, Some("LIST"), None, 1, 0).expect("help");
        assert_eq!(n, 2);
        assert_eq!(some.len(), 1);
        assert_eq!(some[0].display, "list things");
        let (n, later) = help_strings(&aliases, None, Some("p"), 1, 1).expect("help");
        assert_eq!(n, 3);
        assert_eq!(later[0].display, "list more");
        assert_eq!(later[0].description.as_deref(), Some("a alias"));
        let (n, _) = help_strings(&aliases, None, Some("other"), 0, 0).expect("help");
        assert_eq!(n, 0);
        assert!(help_strings(&aliases, Some("("), None, 0, 0).is_err());
    }

    /// StackStorm's help-string fixture: ten displayed formats in enabled aliases.
    fn the80s() -> Vec<Arc<ActionAlias>> {
        let object = |display: Option<&str>, representation: &[&str]| AliasFormat {
            display: display.map(str::to_owned),
            representation: representation.iter().map(|r| (*r).to_owned()).collect(),
            match_multiple: false,
            written_as_string: false,
        };
        let make = |name: &str, enabled: bool, formats: Vec<AliasFormat>| {
            let mut a = (*alias(name, formats, enabled)).clone();
            a.origin.pack = "the80s".into();
            Arc::new(a)
        };
        vec![
            make(
                "kyle_reese",
                true,
                vec![plain("Come with me if you want to live")],
            ),
            make(
                "terminator",
                true,
                vec![plain(
                    "I need your {{item}}, your {{item2}} and your {{vehicle}}",
                )],
            ),
            make(
                "johnny_five_alive",
                true,
                vec![
                    object(
                        Some("Number 5 is {{status}}"),
                        &["Number 5 is {{status=alive}}"],
                    ),
                    plain("Hey, laser lips, your mama was a snow blower."),
                ],
            ),
            make(
                "i_feel_alive",
                true,
                vec![plain("How do I feel? I feel... {{status}}!")],
            ),
            make("andy", true, vec![object(Some("Watch this."), &[])]),
            make(
                "andy2",
                true,
                vec![object(Some("He's just like his {{relation}}."), &[])],
            ),
            make(
                "data",
                true,
                vec![object(
                    None,
                    &["That's okay daddy. You can't hug a {{object}}."],
                )],
            ),
            make(
                "mr_wang",
                true,
                vec![object(None, &["You are my greatest invention."])],
            ),
            make(
                "Ferris",
                true,
                vec![
                    plain("Life moves pretty fast."),
                    plain("If you don't stop and look around once in a while, you could miss it."),
                ],
            ),
            make(
                "economics.teacher",
                false,
                vec![plain("Bueller?... Bueller?... Bueller? ")],
            ),
            make(
                "spengler",
                true,
                vec![plain("{{choice}} cross the {{target}}")],
            ),
        ]
    }

    #[test]
    fn help_follows_stackstorms_fixture() {
        let aliases = the80s();
        let help = |filter: Option<&str>, pack: Option<&str>, limit: i64, offset: i64| {
            help_strings(&aliases, filter, pack, limit, offset).expect("help")
        };
        let (n, all) = help(None, None, 0, 0);
        assert_eq!((n, all.len()), (10, 10));
        assert_eq!(all[0].display, "Come with me if you want to live");
        let (n, found) = help(Some("you"), None, 0, 0);
        assert_eq!((n, found.len()), (4, 4));
        assert_eq!(
            help(Some("you_will_not_find_this_string"), None, 0, 0),
            (0, vec![])
        );
        assert_eq!(help(Some(""), Some("the80s"), 0, 0).0, 10);
        assert_eq!(help(Some(""), Some("nope"), 0, 0), (0, vec![]));
        for (limit, offset, shown) in [
            (-3, 0, 10),
            (30, 0, 10),
            (3, 0, 3),
            (0, -1, 10),
            (0, 30, 0),
            (0, 6, 4),
        ] {
            let (n, lines) = help(Some(""), Some("the80s"), limit, offset);
            assert_eq!(
                (n, lines.len()),
                (10, shown),
                "limit {limit} offset {offset}"
            );
        }
        assert_eq!(
            help(None, None, 0, 6).1[0].display,
            "He's just like his {{relation}}."
        );
    }

    #[test]
    fn format_strings_of_an_alias() {
        let a = alias(
            "x",
            vec![plain("run {{cmd}}"), multi("show", "show (?P<x>.+)")],
            true,
        );
        assert!(has_format_string(&a, "run {{cmd}}"));
        assert!(has_format_string(&a, "show (?P<x>.+)"));
        assert!(!has_format_string(&a, "show"));
    }
}
