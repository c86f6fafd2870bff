//! JSONPath in the dialect of Python's `jsonpath_rw`, which StackStorm uses for rule criteria
//! keys (`trigger.body.items[0].name`, `trigger.headers['X-Token']`) and the `jsonpath_query`
//! filter.
//!
//! Supported: `$`, field names (bare or quoted, comma-separated alternatives), `*`, `.`, `..`
//! (descendants), `[n]` (negative allowed), `[a:b]` and `[*]` slices, `[field]`, `(...)`,
//! `|` (union), `` `this` `` and `` `parent` ``. Filter expressions (`[?(...)]`) are not part of
//! the dialect and are a lexical error, as in `jsonpath_rw`.

use serde_json::Value;

use super::{ErrorKind, ExprError};

/// One step of a plain path (see [`JsonPath::steps`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// A mapping key.
    Field(String),
    /// A list index (negative counts from the end).
    Index(i64),
}

impl Step {
    /// Where this step leads from `value`, with the same rules as [`JsonPath::find`].
    pub fn apply<'v>(&self, value: &'v Value) -> Option<&'v Value> {
        match (self, value) {
            (Step::Field(name), Value::Object(map)) => map.get(name),
            (Step::Index(i), Value::Array(items)) => {
                let idx = if *i < 0 { items.len() as i64 + i } else { *i };
                usize::try_from(idx).ok().and_then(|idx| items.get(idx))
            }
            _ => None,
        }
    }
}

/// A parsed path.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonPath(Node);

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Root,
    This,
    Parent,
    Fields(Vec<String>),
    AnyField,
    Index(i64),
    Slice(Option<i64>, Option<i64>),
    Child(Box<Node>, Box<Node>),
    Descendants(Box<Node>, Box<Node>),
    Union(Box<Node>, Box<Node>),
}

#[derive(Debug, Clone, PartialEq)]
enum Token {
    Id(String),
    Str(String),
    Num(i64),
    Dollar,
    Dot,
    DoubleDot,
    Star,
    LBracket,
    RBracket,
    LParen,
    RParen,
    Bar,
    Comma,
    Colon,
    Named(String),
}

fn lex_error(message: impl Into<String>) -> ExprError {
    ExprError::new(ErrorKind::Syntax, message)
}

fn lex(text: &str) -> Result<Vec<Token>, ExprError> {
    let chars: Vec<char> = text.chars().collect();
    let mut tokens = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            ' ' | '\t' | '\n' | '\r' => i += 1,
            '$' => {
                tokens.push(Token::Dollar);
                i += 1;
            }
            '.' if chars.get(i + 1) == Some(&'.') => {
                tokens.push(Token::DoubleDot);
                i += 2;
            }
            '.' => {
                tokens.push(Token::Dot);
                i += 1;
            }
            '*' => {
                tokens.push(Token::Star);
                i += 1;
            }
            '[' => {
                tokens.push(Token::LBracket);
                i += 1;
            }
            ']' => {
                tokens.push(Token::RBracket);
                i += 1;
            }
            '(' => {
                tokens.push(Token::LParen);
                i += 1;
            }
            ')' => {
                tokens.push(Token::RParen);
                i += 1;
            }
            '|' => {
                tokens.push(Token::Bar);
                i += 1;
            }
            ',' => {
                tokens.push(Token::Comma);
                i += 1;
            }
            ':' => {
                tokens.push(Token::Colon);
                i += 1;
            }
            '\'' | '"' => {
                let quote = c;
                let mut s = String::new();
                i += 1;
                loop {
                    match chars.get(i) {
                        None => return Err(lex_error("unterminated string in JSONPath")),
                        Some(&ch) if ch == quote => {
                            i += 1;
                            break;
                        }
                        Some('\\') => {
                            if let Some(&next) = chars.get(i + 1) {
                                s.push(next);
                            }
                            i += 2;
                        }
                        Some(&ch) => {
                            s.push(ch);
                            i += 1;
                        }
                    }
                }
                tokens.push(Token::Str(s));
            }
            '`' => {
                let rest: String = chars[i + 1..].iter().collect();
                let Some(end) = rest.find('`') else {
                    return Err(lex_error("unterminated named operator in JSONPath"));
                };
                tokens.push(Token::Named(rest[..end].to_owned()));
                i += 1 + rest[..end].chars().count() + 1;
            }
            '-' | '0'..='9' => {
                let start = i;
                i += 1;
                while i < chars.len() && chars[i].is_ascii_digit() {
                    i += 1;
                }
                let s: String = chars[start..i].iter().collect();
                let n = s
                    .parse::<i64>()
                    .map_err(|_| lex_error(format!("bad number `{s}` in JSONPath")))?;
                tokens.push(Token::Num(n));
            }
            c if c.is_alphabetic() || c == '_' || c == '@' => {
                let start = i;
                while i < chars.len()
                    && (chars[i].is_alphanumeric() || matches!(chars[i], '_' | '@' | '-'))
                {
                    i += 1;
                }
                tokens.push(Token::Id(chars[start..i].iter().collect()));
            }
            other => {
                return Err(lex_error(format!(
                    "unexpected character `{other}` at {i} in JSONPath `{text}`"
                )));
            }
        }
    }
    Ok(tokens)
}

struct Parser {
    tokens: Vec<Token>,
    pos: usize,
    depth: usize,
}

fn parse_error(message: impl Into<String>) -> ExprError {
    ExprError::new(ErrorKind::Syntax, message)
}

impl Parser {
    fn peek(&self) -> Option<&Token> {
        self.tokens.get(self.pos)
    }

    fn next(&mut self) -> Option<Token> {
        let t = self.tokens.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn expect(&mut self, t: &Token) -> Result<(), ExprError> {
        match self.next() {
            Some(ref got) if got == t => Ok(()),
            got => Err(parse_error(format!("expected {t:?}, found {got:?}"))),
        }
    }

    /// union := path ('|' path)*
    fn union(&mut self) -> Result<Node, ExprError> {
        self.depth += 1;
        if self.depth > 100 {
            return Err(ExprError::new(
                ErrorKind::Limit,
                "JSONPath nested too deeply",
            ));
        }
        let mut node = self.path()?;
        while self.peek() == Some(&Token::Bar) {
            self.pos += 1;
            let rhs = self.path()?;
            node = Node::Union(Box::new(node), Box::new(rhs));
        }
        self.depth -= 1;
        Ok(node)
    }

    /// path := atom (('.' | '..') atom | '[' bracket ']')*
    fn path(&mut self) -> Result<Node, ExprError> {
        let mut node = self.atom()?;
        loop {
            match self.peek() {
                Some(Token::Dot) => {
                    self.pos += 1;
                    let rhs = self.atom()?;
                    node = Node::Child(Box::new(node), Box::new(rhs));
                }
                Some(Token::DoubleDot) => {
                    self.pos += 1;
                    let rhs = self.atom()?;
                    node = Node::Descendants(Box::new(node), Box::new(rhs));
                }
                Some(Token::LBracket) => {
                    self.pos += 1;
                    let rhs = self.bracket()?;
                    node = Node::Child(Box::new(node), Box::new(rhs));
                }
                _ => return Ok(node),
            }
        }
    }

    fn atom(&mut self) -> Result<Node, ExprError> {
        match self.next() {
            Some(Token::Dollar) => Ok(Node::Root),
            Some(Token::Star) => Ok(Node::AnyField),
            Some(Token::Named(n)) if n == "this" => Ok(Node::This),
            Some(Token::Named(n)) if n == "parent" => Ok(Node::Parent),
            Some(Token::Named(n)) => Err(parse_error(format!("unknown named operator `{n}`"))),
            Some(Token::Id(name)) => self.fields(name),
            Some(Token::Str(name)) => self.fields(name),
            Some(Token::Num(n)) => self.fields(n.to_string()),
            Some(Token::LBracket) => self.bracket(),
            Some(Token::LParen) => {
                let inner = self.union()?;
                self.expect(&Token::RParen)?;
                Ok(inner)
            }
            got => Err(parse_error(format!("unexpected {got:?} in JSONPath"))),
        }
    }

    fn fields(&mut self, first: String) -> Result<Node, ExprError> {
        let mut names = vec![first];
        while self.peek() == Some(&Token::Comma) {
            self.pos += 1;
            match self.next() {
                Some(Token::Id(n) | Token::Str(n)) => names.push(n),
                got => return Err(parse_error(format!("expected a field name, found {got:?}"))),
            }
        }
        Ok(Node::Fields(names))
    }

    /// Inside `[...]`: an index, a slice, `*`, or field names.
    fn bracket(&mut self) -> Result<Node, ExprError> {
        let node = match self.peek().cloned() {
            Some(Token::Star) => {
                self.pos += 1;
                Node::Slice(None, None)
            }
            Some(Token::Num(n)) => {
                self.pos += 1;
                if self.peek() == Some(&Token::Colon) {
                    self.pos += 1;
                    let end = self.optional_num();
                    Node::Slice(Some(n), end)
                } else {
                    Node::Index(n)
                }
            }
            Some(Token::Colon) => {
                self.pos += 1;
                let end = self.optional_num();
                Node::Slice(None, end)
            }
            Some(Token::Id(n) | Token::Str(n)) => {
                self.pos += 1;
                self.fields(n)?
            }
            got => return Err(parse_error(format!("unexpected {got:?} after `[`"))),
        };
        self.expect(&Token::RBracket)?;
        Ok(node)
    }

    fn optional_num(&mut self) -> Option<i64> {
        if let Some(Token::Num(n)) = self.peek() {
            let n = *n;
            self.pos += 1;
            Some(n)
        } else {
            None
        }
    }
}

/// A value found by a path, with the chain of containers above it (for `` `parent` ``).
#[derive(Debug, Clone)]
struct Datum<'v> {
    value: &'v Value,
    parents: Vec<&'v Value>,
}

impl<'v> Datum<'v> {
    fn child(&self, value: &'v Value) -> Datum<'v> {
        let mut parents = self.parents.clone();
        parents.push(self.value);
        Datum { value, parents }
    }
}

impl JsonPath {
    /// Parse a `jsonpath_rw` expression.
    ///
    /// # Errors
    /// [`ErrorKind::Syntax`] when it does not lex or parse.
    pub fn parse(text: &str) -> Result<JsonPath, ExprError> {
        let tokens = lex(text)?;
        if tokens.is_empty() {
            return Err(parse_error("empty JSONPath"));
        }
        let mut parser = Parser {
            tokens,
            pos: 0,
            depth: 0,
        };
        let node = parser.union()?;
        if parser.pos < parser.tokens.len() {
            return Err(parse_error(format!(
                "unexpected {:?} in JSONPath `{text}`",
                parser.tokens[parser.pos]
            )));
        }
        Ok(JsonPath(node))
    }

    /// Every value the path finds in `data`, in document order.
    pub fn find<'v>(&self, data: &'v Value) -> Vec<&'v Value> {
        let root = Datum {
            value: data,
            parents: Vec::new(),
        };
        find(&self.0, &root, data)
            .into_iter()
            .map(|d| d.value)
            .collect()
    }

    /// The path as a plain chain of single field names and list indexes (`trigger.a.b[0]`),
    /// when it is one: what the hot path of rule matching walks without allocating.
    pub fn steps(&self) -> Option<Vec<Step>> {
        fn walk(node: &Node, out: &mut Vec<Step>) -> bool {
            match node {
                Node::Fields(names) if names.len() == 1 => {
                    out.push(Step::Field(names[0].clone()));
                    true
                }
                Node::Index(i) => {
                    out.push(Step::Index(*i));
                    true
                }
                Node::Child(lhs, rhs) => walk(lhs, out) && walk(rhs, out),
                _ => false,
            }
        }
        let mut out = Vec::new();
        walk(&self.0, &mut out).then_some(out)
    }

    /// The first value found, if any.
    pub fn first<'v>(&self, data: &'v Value) -> Option<&'v Value> {
        self.find(data).into_iter().next()
    }
}

fn find<'v>(node: &Node, datum: &Datum<'v>, root: &'v Value) -> Vec<Datum<'v>> {
    match node {
        Node::Root => vec![Datum {
            value: root,
            parents: Vec::new(),
        }],
        Node::This => vec![datum.clone()],
        Node::Parent => match datum.parents.split_last() {
            Some((parent, rest)) => vec![Datum {
                value: parent,
                parents: rest.to_vec(),
            }],
            None => Vec::new(),
        },
        Node::Fields(names) => match datum.value {
            Value::Object(map) => names
                .iter()
                .filter_map(|n| map.get(n).map(|v| datum.child(v)))
                .collect(),
            _ => Vec::new(),
        },
        Node::AnyField => match datum.value {
            Value::Object(map) => map.values().map(|v| datum.child(v)).collect(),
            _ => Vec::new(),
        },
        Node::Index(i) => match datum.value {
            Value::Array(items) => {
                let len = items.len() as i64;
                let idx = if *i < 0 { len + i } else { *i };
                usize::try_from(idx)
                    .ok()
                    .and_then(|idx| items.get(idx))
                    .map(|v| vec![datum.child(v)])
                    .unwrap_or_default()
            }
            _ => Vec::new(),
        },
        Node::Slice(start, end) => match datum.value {
            Value::Array(items) => {
                let len = items.len() as i64;
                let clamp = |x: i64| -> usize {
                    let x = if x < 0 { (len + x).max(0) } else { x.min(len) };
                    usize::try_from(x).unwrap_or(0)
                };
                let s = start.map_or(0, clamp);
                let e = end.map_or(items.len(), clamp);
                if s >= e {
                    Vec::new()
                } else {
                    items[s..e].iter().map(|v| datum.child(v)).collect()
                }
            }
            // jsonpath_rw treats a non-list as a one-element list for `[*]`.
            other if start.is_none() && end.is_none() => vec![Datum {
                value: other,
                parents: datum.parents.clone(),
            }],
            _ => Vec::new(),
        },
        Node::Child(lhs, rhs) => find(lhs, datum, root)
            .iter()
            .flat_map(|d| find(rhs, d, root))
            .collect(),
        Node::Descendants(lhs, rhs) => {
            let mut out = Vec::new();
            for d in find(lhs, datum, root) {
                descend(rhs, &d, root, &mut out, 0);
            }
            out
        }
        Node::Union(lhs, rhs) => {
            let mut out = find(lhs, datum, root);
            out.extend(find(rhs, datum, root));
            out
        }
    }
}

fn descend<'v>(
    node: &Node,
    datum: &Datum<'v>,
    root: &'v Value,
    out: &mut Vec<Datum<'v>>,
    depth: usize,
) {
    if depth > 256 {
        return;
    }
    out.extend(find(node, datum, root));
    match datum.value {
        Value::Object(map) => {
            for v in map.values() {
                descend(node, &datum.child(v), root, out, depth + 1);
            }
        }
        Value::Array(items) => {
            for v in items {
                descend(node, &datum.child(v), root, out, depth + 1);
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn doc() -> Value {
        json!({
            "store": {"book": [{"price": 8.95}, {"price": 12.99}], "bicycle": {"color": "red"}},
            "n": 5, "list": [1, 2, 3, 4], "weird key": "w",
            "headers": {"X-Custom-Header": "v"}
        })
    }

    fn q(path: &str) -> Vec<Value> {
        let d = doc();
        JsonPath::parse(path)
            .unwrap()
            .find(&d)
            .into_iter()
            .cloned()
            .collect()
    }

    #[test]
    fn jsonpath_rw_dialect() {
        assert_eq!(q("$.store.book[0].price"), [json!(8.95)]);
        assert_eq!(q("n"), [json!(5)]);
        assert!(q("nope").is_empty());
        assert_eq!(q("list[1:3]"), [json!(2), json!(3)]);
        assert_eq!(q("list[-1]"), [json!(4)]);
        assert_eq!(q("store.*").len(), 2);
        assert_eq!(q("'weird key'"), [json!("w")]);
        assert_eq!(q("list[*]").len(), 4);
        assert_eq!(q("store.bicycle.`parent`").len(), 1);
        assert_eq!(q("headers['X-Custom-Header']"), [json!("v")]);
        assert_eq!(q("$..price"), [json!(8.95), json!(12.99)]);
        assert!(q("store.book[5]").is_empty());
    }

    #[test]
    fn filters_and_broken_paths_are_errors() {
        assert!(JsonPath::parse("store.book[?(@.price < 10)]").is_err());
        assert!(JsonPath::parse("store.book[").is_err());
        assert!(JsonPath::parse("").is_err());
        assert!(JsonPath::parse(&"(".repeat(1000)).is_err());
    }
}
