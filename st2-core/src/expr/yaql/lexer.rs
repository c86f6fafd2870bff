//! The YAQL lexer: yaql 3.x token rules, tried in yaql's order at each position.
//!
//! At every position the first rule that matches wins: `$name`, numbers, `name(` (a function
//! call), bare identifiers (keywords, operator words, string constants), quoted strings, then
//! operators (longest first). Anything else is a lexical error.

use std::sync::Arc;

use crate::expr::{ErrorKind, ExprError};

/// One token kind.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Tok {
    /// `$`, `$1`, `$name`: the name without `$` (`$` itself is `""`).
    Dollar(Arc<str>),
    /// An integer literal.
    Int(i64),
    /// A float literal (`1.5`).
    Float(f64),
    /// An identifier directly followed by `(`: the name.
    Func(Arc<str>),
    /// A bare identifier that is not a keyword: a string constant.
    Keyword(Arc<str>),
    /// A quoted string (escapes decoded).
    Str(Arc<str>),
    /// `true`
    True,
    /// `false`
    False,
    /// `null`
    Null,
    /// An operator or punctuation (`.`, `?.`, `=>`, `(`, `mod`, ...).
    Op(Op),
}

/// Operators and punctuation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    Dot,
    SafeDot,
    Arrow,
    Mapping,
    Plus,
    Minus,
    Star,
    Slash,
    Mod,
    Eq,
    Ne,
    Lt,
    Gt,
    Le,
    Ge,
    Match,
    NotMatch,
    In,
    And,
    Or,
    Not,
    LParen,
    RParen,
    LBracket,
    RBracket,
    LBrace,
    RBrace,
    Comma,
}

/// A token with its position (a character offset, as yaql reports it).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Token {
    pub(crate) tok: Tok,
    pub(crate) pos: usize,
    /// The source text of the token (for error messages).
    pub(crate) text: Arc<str>,
}

/// Two-character operators, tried before the one-character ones (yaql sorts them by length).
const OPS2: [(&str, Op); 8] = [
    ("=>", Op::Mapping),
    ("?.", Op::SafeDot),
    ("!=", Op::Ne),
    (">=", Op::Ge),
    ("<=", Op::Le),
    ("=~", Op::Match),
    ("!~", Op::NotMatch),
    ("->", Op::Arrow),
];

fn is_word(c: char) -> bool {
    c == '_' || c.is_alphanumeric()
}

fn lexical_error(c: char, pos: usize) -> ExprError {
    ExprError::new(
        ErrorKind::Syntax,
        format!("Lexical error: illegal character '{c}' at position {pos}"),
    )
}

/// Split `text` into tokens.
///
/// # Errors
/// [`ErrorKind::Syntax`] for a character no rule accepts ("Lexical error: illegal character").
pub(crate) fn tokenize(text: &str) -> Result<Vec<Token>, ExprError> {
    let chars: Vec<char> = text.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        if matches!(c, ' ' | '\t' | '\r' | '\n') {
            i += 1;
            continue;
        }
        let start = i;
        let tok = if c == '$' {
            let mut j = i + 1;
            while j < chars.len() && is_word(chars[j]) {
                j += 1;
            }
            let name: String = chars[i + 1..j].iter().collect();
            i = j;
            Tok::Dollar(name.into())
        } else if c.is_ascii_digit() {
            let (tok, end) = lex_number(&chars, i).ok_or_else(|| lexical_error(c, i))?;
            i = end;
            tok
        } else if is_word(c) && !c.is_numeric() {
            let mut j = i + 1;
            while j < chars.len() && is_word(chars[j]) {
                j += 1;
            }
            let word: String = chars[i..j].iter().collect();
            if chars.get(j) == Some(&'(') {
                i = j + 1;
                Tok::Func(word.into())
            } else if word.starts_with("__") {
                return Err(lexical_error(c, i));
            } else {
                i = j;
                match word.as_str() {
                    "true" => Tok::True,
                    "false" => Tok::False,
                    "null" => Tok::Null,
                    "mod" => Tok::Op(Op::Mod),
                    "in" => Tok::Op(Op::In),
                    "and" => Tok::Op(Op::And),
                    "or" => Tok::Op(Op::Or),
                    "not" => Tok::Op(Op::Not),
                    _ => Tok::Keyword(word.into()),
                }
            }
        } else if c == '\'' || c == '"' || c == '`' {
            let (body, end) = quoted(&chars, i).ok_or_else(|| lexical_error(c, i))?;
            i = end;
            if c == '`' {
                Tok::Str(body.replace("\\`", "`").into())
            } else {
                Tok::Str(decode_escapes(&body, start)?.into())
            }
        } else {
            let two: String = chars[i..(i + 2).min(chars.len())].iter().collect();
            if let Some((_, op)) = OPS2.iter().find(|(s, _)| *s == two) {
                i += 2;
                Tok::Op(*op)
            } else {
                let op = match c {
                    '.' => Op::Dot,
                    '+' => Op::Plus,
                    '-' => Op::Minus,
                    '*' => Op::Star,
                    '/' => Op::Slash,
                    '=' => Op::Eq,
                    '<' => Op::Lt,
                    '>' => Op::Gt,
                    '(' => Op::LParen,
                    ')' => Op::RParen,
                    '[' => Op::LBracket,
                    ']' => Op::RBracket,
                    '{' => Op::LBrace,
                    '}' => Op::RBrace,
                    ',' => Op::Comma,
                    _ => return Err(lexical_error(c, i)),
                };
                i += 1;
                Tok::Op(op)
            }
        };
        let text: String = chars[start..i].iter().collect();
        out.push(Token {
            tok,
            pos: start,
            text: text.into(),
        });
    }
    Ok(out)
}

/// `\d+(\.\d+)?` followed by a word boundary, with yaql's backtracking: `1.5x` lexes as `1`
/// (then `.` and a failure at `5x`), `12x` does not lex at all.
fn lex_number(chars: &[char], start: usize) -> Option<(Tok, usize)> {
    let mut j = start;
    while j < chars.len() && chars[j].is_ascii_digit() {
        j += 1;
    }
    let int_end = j;
    let boundary = |k: usize| chars.get(k).is_none_or(|c| !is_word(*c));
    if chars.get(int_end) == Some(&'.') && chars.get(int_end + 1).is_some_and(char::is_ascii_digit)
    {
        let mut k = int_end + 1;
        while k < chars.len() && chars[k].is_ascii_digit() {
            k += 1;
        }
        if boundary(k) {
            let text: String = chars[start..k].iter().collect();
            return text.parse::<f64>().ok().map(|f| (Tok::Float(f), k));
        }
    }
    if !boundary(int_end) {
        return None;
    }
    let text: String = chars[start..int_end].iter().collect();
    match text.parse::<i64>() {
        Ok(n) => Some((Tok::Int(n), int_end)),
        // Beyond 64 bits: yaql has big integers; the nearest float keeps the magnitude.
        Err(_) => text.parse::<f64>().ok().map(|f| (Tok::Float(f), int_end)),
    }
}

/// The body of a quoted string starting at `start` and the index after its closing quote.
fn quoted(chars: &[char], start: usize) -> Option<(String, usize)> {
    let quote = chars[start];
    let mut body = String::new();
    let mut j = start + 1;
    while j < chars.len() {
        let c = chars[j];
        if c == quote {
            return Some((body, j + 1));
        }
        if c == '\\' {
            // `\\.`: the escaped character may be anything but a newline.
            match chars.get(j + 1) {
                Some(&n) if n != '\n' => {
                    body.push(c);
                    body.push(n);
                    j += 2;
                    continue;
                }
                _ => return None,
            }
        }
        body.push(c);
        j += 1;
    }
    None
}

/// Python's escape sequences as yaql decodes them: `\xNN`, `\uNNNN`, `\UNNNNNNNN`, octal,
/// `\N{...}` and the single-character escapes; any other backslash stays as written
/// (so `'\d'` is the two characters a regex wants).
fn decode_escapes(body: &str, pos: usize) -> Result<String, ExprError> {
    let chars: Vec<char> = body.chars().collect();
    let mut out = String::with_capacity(body.len());
    let mut i = 0;
    let bad = |what: &str| {
        ExprError::new(
            ErrorKind::Syntax,
            format!("Lexical error: {what} in the string at position {pos}"),
        )
    };
    while i < chars.len() {
        let c = chars[i];
        if c != '\\' || i + 1 >= chars.len() {
            out.push(c);
            i += 1;
            continue;
        }
        let n = chars[i + 1];
        let hex = |len: usize| -> Option<Result<char, ExprError>> {
            if i + 2 + len > chars.len() {
                return None;
            }
            let digits: String = chars[i + 2..i + 2 + len].iter().collect();
            Some(
                u32::from_str_radix(&digits, 16)
                    .ok()
                    .filter(|_| digits.chars().all(|d| d.is_ascii_hexdigit()))
                    .and_then(char::from_u32)
                    .ok_or_else(|| bad("a truncated \\xXX, \\uXXXX or \\UXXXXXXXX escape")),
            )
        };
        match n {
            'x' | 'u' | 'U' => {
                let len = match n {
                    'x' => 2,
                    'u' => 4,
                    _ => 8,
                };
                match hex(len) {
                    Some(r) => {
                        out.push(r?);
                        i += 2 + len;
                    }
                    None => {
                        out.push(c);
                        i += 1;
                    }
                }
            }
            '0'..='7' => {
                let mut j = i + 1;
                let mut v = 0u32;
                while j < chars.len() && j < i + 4 && ('0'..='7').contains(&chars[j]) {
                    v = v * 8 + chars[j].to_digit(8).unwrap_or(0);
                    j += 1;
                }
                out.push(char::from_u32(v).ok_or_else(|| bad("an invalid octal escape"))?);
                i = j;
            }
            'N' if chars.get(i + 2) == Some(&'{') => {
                let Some(close) = chars[i + 3..].iter().position(|&ch| ch == '}') else {
                    out.push(c);
                    i += 1;
                    continue;
                };
                let name: String = chars[i + 3..i + 3 + close].iter().collect();
                out.push(unicode_name(&name).ok_or_else(|| bad("an unknown \\N{...} name"))?);
                i += 4 + close;
            }
            '\\' | '\'' | '"' | 'a' | 'b' | 'f' | 'n' | 'r' | 't' | 'v' => {
                out.push(match n {
                    'a' => '\u{7}',
                    'b' => '\u{8}',
                    'f' => '\u{c}',
                    'n' => '\n',
                    'r' => '\r',
                    't' => '\t',
                    'v' => '\u{b}',
                    other => other,
                });
                i += 2;
            }
            _ => {
                out.push(c);
                i += 1;
            }
        }
    }
    Ok(out)
}

/// The few Unicode character names worth knowing without a full name table.
fn unicode_name(name: &str) -> Option<char> {
    let upper = name.to_ascii_uppercase();
    Some(match upper.as_str() {
        "SPACE" => ' ',
        "NO-BREAK SPACE" => '\u{a0}',
        "LINE FEED" | "LF" => '\n',
        "CARRIAGE RETURN" | "CR" => '\r',
        "CHARACTER TABULATION" | "TAB" => '\t',
        "BULLET" => '\u{2022}',
        "EM DASH" => '\u{2014}',
        "EN DASH" => '\u{2013}',
        "HORIZONTAL ELLIPSIS" => '\u{2026}',
        "EURO SIGN" => '\u{20ac}',
        "DEGREE SIGN" => '\u{b0}',
        "COPYRIGHT SIGN" => '\u{a9}',
        "APOSTROPHE" => '\'',
        "QUOTATION MARK" => '"',
        "REVERSE SOLIDUS" => '\\',
        "GRAVE ACCENT" => '`',
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<Tok> {
        tokenize(s)
            .map(|v| v.into_iter().map(|t| t.tok).collect())
            .unwrap_or_default()
    }

    #[test]
    fn numbers_follow_yaql_rules() {
        assert_eq!(toks("12"), vec![Tok::Int(12)]);
        assert_eq!(toks("1.5"), vec![Tok::Float(1.5)]);
        assert_eq!(
            toks("1.e5"),
            vec![Tok::Int(1), Tok::Op(Op::Dot), Tok::Keyword("e5".into())]
        );
        assert_eq!(toks(".5"), vec![Tok::Op(Op::Dot), Tok::Int(5)]);
        assert!(tokenize("12abc").is_err());
        assert!(tokenize("1e5").is_err());
        assert!(tokenize("1.5abc").is_err());
    }

    #[test]
    fn identifiers_functions_and_keywords() {
        assert_eq!(
            toks("f(a) and not b"),
            vec![
                Tok::Func("f".into()),
                Tok::Keyword("a".into()),
                Tok::Op(Op::RParen),
                Tok::Op(Op::And),
                Tok::Op(Op::Not),
                Tok::Keyword("b".into())
            ]
        );
        assert_eq!(
            toks("not(x"),
            vec![Tok::Func("not".into()), Tok::Keyword("x".into())]
        );
        assert!(tokenize("__x").is_err());
        assert_eq!(toks("__f("), vec![Tok::Func("__f".into())]);
        assert_eq!(
            toks("$ $1 $abc"),
            vec![
                Tok::Dollar("".into()),
                Tok::Dollar("1".into()),
                Tok::Dollar("abc".into())
            ]
        );
        assert_eq!(
            toks("a=>b"),
            vec![
                Tok::Keyword("a".into()),
                Tok::Op(Op::Mapping),
                Tok::Keyword("b".into())
            ]
        );
    }

    #[test]
    fn strings_decode_python_escapes() {
        assert_eq!(
            toks(r"'a\x41\u0042\101\d\n'"),
            vec![Tok::Str("aABA\\d\n".into())]
        );
        assert_eq!(toks(r#""a\"b""#), vec![Tok::Str("a\"b".into())]);
        assert_eq!(toks(r"`a\`b\n`"), vec![Tok::Str("a`b\\n".into())]);
        assert_eq!(toks(r"'\N{BULLET}'"), vec![Tok::Str("\u{2022}".into())]);
        assert!(tokenize("'open").is_err());
        assert!(tokenize("\u{a0}").is_err());
    }
}
