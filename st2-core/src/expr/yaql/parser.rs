//! The YAQL grammar: a precedence-climbing parser producing the expression tree.
//!
//! Operator levels, loosest to tightest (yaql's operator table): `->` (right), `or`, `and`,
//! prefix `not`, comparisons and `in`, binary `+ -`, `* / mod`, `=~ !~`, prefix `+ -`, the
//! indexer `[...]`, and `.` / `?.`. Arguments are positional values (empty slots allowed before
//! a comma), then `name => value` pairs.

use std::sync::Arc;

use super::eval::Name;
use super::lexer::{Op, Tok, Token, tokenize};
use super::value::YaqlValue;
use crate::expr::{ErrorKind, ExprError};

/// Nesting limit of the grammar (brackets, operators, calls): deeper input is refused so that
/// parsing and evaluation cannot overflow the stack.
pub(crate) const MAX_PARSE_DEPTH: usize = 200;

/// A node of the expression tree.
#[derive(Debug)]
pub(crate) enum Node {
    /// A literal: number, quoted string, `true`, `false`, `null`.
    Const(YaqlValue),
    /// A bare identifier: a string constant that also names keyword arguments and properties.
    Keyword(Arc<str>),
    /// `$`, `$1`, `$name`: a context variable (`$` is `$1`).
    Var(Name),
    /// `( ... )`.
    Wrap(Arc<Node>),
    /// `name(args)`.
    Call { name: Arc<str>, args: Vec<Arg> },
    /// `recv.member` or `recv?.member`.
    Dot {
        recv: Arc<Node>,
        member: Arc<Node>,
        safe: bool,
    },
    /// A binary operator.
    Binary {
        op: BinOp,
        left: Arc<Node>,
        right: Arc<Node>,
    },
    /// A prefix operator.
    Unary { op: UnOp, operand: Arc<Node> },
    /// `target[args]`.
    Index { target: Arc<Node>, args: Vec<Arg> },
    /// `[args]`.
    List(Vec<Arg>),
    /// `{args}`.
    Map(Vec<Arg>),
}

/// One argument slot.
#[derive(Debug)]
pub(crate) enum Arg {
    /// A positional value.
    Pos(Arc<Node>),
    /// An empty positional slot (`f(1,,2)`): the parameter's default.
    Missing,
    /// `key => value`.
    Named(Arc<Node>, Arc<Node>),
}

/// Binary operators (other than `.`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BinOp {
    Arrow,
    Or,
    And,
    Eq,
    Ne,
    Lt,
    Gt,
    Le,
    Ge,
    In,
    Add,
    Sub,
    Mul,
    Div,
    Mod,
    Match,
    NotMatch,
}

impl BinOp {
    /// yaql's function name for the operator (used in error messages).
    pub(crate) fn function_name(self) -> &'static str {
        match self {
            BinOp::Arrow => "#operator_->",
            BinOp::Or => "#operator_or",
            BinOp::And => "#operator_and",
            BinOp::Eq => "*equal",
            BinOp::Ne => "*not_equal",
            BinOp::Lt => "#operator_<",
            BinOp::Gt => "#operator_>",
            BinOp::Le => "#operator_<=",
            BinOp::Ge => "#operator_>=",
            BinOp::In => "#operator_in",
            BinOp::Add => "#operator_+",
            BinOp::Sub => "#operator_-",
            BinOp::Mul => "#operator_*",
            BinOp::Div => "#operator_/",
            BinOp::Mod => "#operator_mod",
            BinOp::Match => "#operator_=~",
            BinOp::NotMatch => "#operator_!~",
        }
    }
}

/// Prefix operators.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum UnOp {
    Plus,
    Minus,
    Not,
}

impl UnOp {
    /// yaql's function name for the operator.
    pub(crate) fn function_name(self) -> &'static str {
        match self {
            UnOp::Plus => "#unary_operator_+",
            UnOp::Minus => "#unary_operator_-",
            UnOp::Not => "#unary_operator_not",
        }
    }
}

const PREC_ARROW: u8 = 1;
const PREC_NOT: u8 = 4;
const PREC_UNARY: u8 = 9;
const PREC_INDEX: u8 = 10;
const PREC_DOT: u8 = 11;

/// Binding of a binary operator token: (precedence, right-associative, operator).
enum Infix {
    Bin(BinOp),
    Dot(bool),
    Index,
}

fn infix(op: Op) -> Option<(u8, Infix)> {
    Some(match op {
        Op::Arrow => (PREC_ARROW, Infix::Bin(BinOp::Arrow)),
        Op::Or => (2, Infix::Bin(BinOp::Or)),
        Op::And => (3, Infix::Bin(BinOp::And)),
        Op::Eq => (5, Infix::Bin(BinOp::Eq)),
        Op::Ne => (5, Infix::Bin(BinOp::Ne)),
        Op::Lt => (5, Infix::Bin(BinOp::Lt)),
        Op::Gt => (5, Infix::Bin(BinOp::Gt)),
        Op::Le => (5, Infix::Bin(BinOp::Le)),
        Op::Ge => (5, Infix::Bin(BinOp::Ge)),
        Op::In => (5, Infix::Bin(BinOp::In)),
        Op::Plus => (6, Infix::Bin(BinOp::Add)),
        Op::Minus => (6, Infix::Bin(BinOp::Sub)),
        Op::Star => (7, Infix::Bin(BinOp::Mul)),
        Op::Slash => (7, Infix::Bin(BinOp::Div)),
        Op::Mod => (7, Infix::Bin(BinOp::Mod)),
        Op::Match => (8, Infix::Bin(BinOp::Match)),
        Op::NotMatch => (8, Infix::Bin(BinOp::NotMatch)),
        Op::LBracket => (PREC_INDEX, Infix::Index),
        Op::Dot => (PREC_DOT, Infix::Dot(false)),
        Op::SafeDot => (PREC_DOT, Infix::Dot(true)),
        _ => return None,
    })
}

fn depth_error() -> ExprError {
    ExprError::new(
        ErrorKind::Limit,
        format!("expression is nested deeper than {MAX_PARSE_DEPTH} levels"),
    )
}

struct Parser<'a> {
    source: &'a str,
    tokens: Vec<Token>,
    pos: usize,
    depth: usize,
}

/// Parse `source` into an expression tree.
///
/// # Errors
/// [`ErrorKind::Syntax`] for lexical and grammar errors, [`ErrorKind::Limit`] for input nested
/// deeper than [`MAX_PARSE_DEPTH`].
pub(crate) fn parse(source: &str) -> Result<Arc<Node>, ExprError> {
    let tokens = tokenize(source)?;
    let mut p = Parser {
        source,
        tokens,
        pos: 0,
        depth: 0,
    };
    let node = p.expr(0)?;
    if p.pos < p.tokens.len() {
        return Err(p.unexpected());
    }
    Ok(node)
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.tokens.get(self.pos).map(|t| &t.tok)
    }

    fn peek_op(&self) -> Option<Op> {
        match self.peek() {
            Some(Tok::Op(op)) => Some(*op),
            _ => None,
        }
    }

    fn unexpected(&self) -> ExprError {
        match self.tokens.get(self.pos) {
            Some(t) => ExprError::new(
                ErrorKind::Syntax,
                format!(
                    "Parse error: unexpected '{}' at position {} of expression '{}'",
                    t.text, t.pos, self.source
                ),
            ),
            None => ExprError::new(
                ErrorKind::Syntax,
                "Parse error: unexpected end of statement",
            ),
        }
    }

    fn expect(&mut self, op: Op) -> Result<(), ExprError> {
        if self.peek_op() == Some(op) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.unexpected())
        }
    }

    fn enter(&mut self) -> Result<(), ExprError> {
        if self.depth >= MAX_PARSE_DEPTH {
            return Err(depth_error());
        }
        self.depth += 1;
        Ok(())
    }

    fn expr(&mut self, min_prec: u8) -> Result<Arc<Node>, ExprError> {
        self.enter()?;
        let result = self.expr_inner(min_prec);
        self.depth -= 1;
        result
    }

    fn expr_inner(&mut self, min_prec: u8) -> Result<Arc<Node>, ExprError> {
        let mut lhs = self.prefix()?;
        // Operands chained at the same level do not nest the parser, but they nest the tree
        // (`1+1+1+...` is left-deep), so count them against the depth limit too.
        let mut chained = 0usize;
        while let Some(op) = self.peek_op() {
            let Some((prec, kind)) = infix(op) else {
                break;
            };
            if prec < min_prec {
                break;
            }
            chained += 1;
            if self.depth + chained > MAX_PARSE_DEPTH {
                return Err(depth_error());
            }
            self.pos += 1;
            lhs = match kind {
                Infix::Index => {
                    let args = self.args(Op::RBracket)?;
                    Arc::new(Node::Index { target: lhs, args })
                }
                Infix::Dot(safe) => {
                    let member = self.expr(PREC_DOT + 1)?;
                    Arc::new(Node::Dot {
                        recv: lhs,
                        member,
                        safe,
                    })
                }
                Infix::Bin(bin) => {
                    let next = if bin == BinOp::Arrow { prec } else { prec + 1 };
                    let right = self.expr(next)?;
                    Arc::new(Node::Binary {
                        op: bin,
                        left: lhs,
                        right,
                    })
                }
            };
        }
        Ok(lhs)
    }

    fn prefix(&mut self) -> Result<Arc<Node>, ExprError> {
        let Some(token) = self.tokens.get(self.pos) else {
            return Err(self.unexpected());
        };
        let tok = token.tok.clone();
        self.pos += 1;
        Ok(Arc::new(match tok {
            Tok::Int(n) => Node::Const(YaqlValue::Int(n)),
            Tok::Float(f) => Node::Const(YaqlValue::Float(f)),
            Tok::Str(s) => Node::Const(YaqlValue::Str(s)),
            Tok::True => Node::Const(YaqlValue::Bool(true)),
            Tok::False => Node::Const(YaqlValue::Bool(false)),
            Tok::Null => Node::Const(YaqlValue::Null),
            Tok::Keyword(k) => Node::Keyword(k),
            Tok::Dollar(name) => Node::Var(Name::parse(&name)),
            Tok::Func(name) => {
                let args = self.args(Op::RParen)?;
                Node::Call { name, args }
            }
            Tok::Op(Op::LParen) => {
                let inner = self.expr(0)?;
                self.expect(Op::RParen)?;
                Node::Wrap(inner)
            }
            Tok::Op(Op::LBracket) => Node::List(self.args(Op::RBracket)?),
            Tok::Op(Op::LBrace) => Node::Map(self.args(Op::RBrace)?),
            Tok::Op(op @ (Op::Plus | Op::Minus | Op::Not)) => {
                let (un, prec) = match op {
                    Op::Plus => (UnOp::Plus, PREC_UNARY),
                    Op::Minus => (UnOp::Minus, PREC_UNARY),
                    _ => (UnOp::Not, PREC_NOT),
                };
                let operand = self.expr(prec)?;
                Node::Unary { op: un, operand }
            }
            Tok::Op(_) => {
                self.pos -= 1;
                return Err(self.unexpected());
            }
        }))
    }

    /// Arguments up to and including `close`.
    fn args(&mut self, close: Op) -> Result<Vec<Arg>, ExprError> {
        self.enter()?;
        let result = self.args_inner(close);
        self.depth -= 1;
        result
    }

    fn args_inner(&mut self, close: Op) -> Result<Vec<Arg>, ExprError> {
        let mut args = Vec::new();
        if self.peek_op() == Some(close) {
            self.pos += 1;
            return Ok(args);
        }
        let mut named = false;
        loop {
            if self.peek_op() == Some(Op::Comma) {
                // An empty positional slot, allowed only before a comma and before any named
                // argument.
                if named {
                    return Err(self.unexpected());
                }
                args.push(Arg::Missing);
                self.pos += 1;
                continue;
            }
            let value = self.expr(0)?;
            if self.peek_op() == Some(Op::Mapping) {
                self.pos += 1;
                let target = self.expr(0)?;
                args.push(Arg::Named(value, target));
                named = true;
            } else if named {
                return Err(self.unexpected());
            } else {
                args.push(Arg::Pos(value));
            }
            match self.peek_op() {
                Some(Op::Comma) => {
                    self.pos += 1;
                    if self.peek_op() == Some(close) {
                        return Err(self.unexpected());
                    }
                }
                Some(op) if op == close => {
                    self.pos += 1;
                    return Ok(args);
                }
                _ => return Err(self.unexpected()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A compact rendering of the tree for assertions.
    fn show(n: &Node) -> String {
        let args = |a: &[Arg]| {
            a.iter()
                .map(|a| match a {
                    Arg::Pos(n) => show(n),
                    Arg::Missing => "_".to_owned(),
                    Arg::Named(k, v) => format!("{}=>{}", show(k), show(v)),
                })
                .collect::<Vec<_>>()
                .join(", ")
        };
        match n {
            Node::Const(v) => format!("{v:?}"),
            Node::Keyword(k) => k.to_string(),
            Node::Var(v) => match v {
                Name::Pos(n) => format!("${n}"),
                Name::Key(k) => format!("${k}"),
            },
            Node::Wrap(i) => format!("({})", show(i)),
            Node::Call { name, args: a } => format!("{name}({})", args(a)),
            Node::Dot { recv, member, safe } => {
                format!(
                    "[{}{}{}]",
                    show(recv),
                    if *safe { "?." } else { "." },
                    show(member)
                )
            }
            Node::Binary { op, left, right } => {
                format!("[{} {:?} {}]", show(left), op, show(right))
            }
            Node::Unary { op, operand } => format!("[{:?} {}]", op, show(operand)),
            Node::Index { target, args: a } => format!("{}[{}]", show(target), args(a)),
            Node::List(a) => format!("list[{}]", args(a)),
            Node::Map(a) => format!("map{{{}}}", args(a)),
        }
    }

    fn p(s: &str) -> String {
        match parse(s) {
            Ok(n) => show(&n),
            Err(e) => format!("ERR {}", e.message),
        }
    }

    #[test]
    fn precedence_matches_yaql() {
        assert_eq!(p("2 + 3 * 4"), "[Int(2) Add [Int(3) Mul Int(4)]]");
        assert_eq!(p("-2 * 3"), "[[Minus Int(2)] Mul Int(3)]");
        assert_eq!(p("-$.x"), "[Minus [$1.x]]");
        assert_eq!(p("not 1 = 2"), "[Not [Int(1) Eq Int(2)]]");
        assert_eq!(p("not a and b"), "[[Not a] And b]");
        assert_eq!(p("a -> b -> c"), "[a Arrow [b Arrow c]]");
        assert_eq!(p("a - b - c"), "[[a Sub b] Sub c]");
        assert_eq!(p("$.a[0].b"), "[[$1.a][Int(0)].b]");
        assert_eq!(p("a * b =~ c"), "[a Mul [b Match c]]");
        assert_eq!(p("x.f(1, y => 2)"), "[x.f(Int(1), y=>Int(2))]");
        assert_eq!(p("f(1,,2)"), "f(Int(1), _, Int(2))");
        assert_eq!(p("f(,1)"), "f(_, Int(1))");
        assert_eq!(p("$a?.b"), "[$a?.b]");
        assert_eq!(p("{a => 1}"), "map{a=>Int(1)}");
        assert_eq!(p("[1, 2][0]"), "list[Int(1), Int(2)][Int(0)]");
    }

    #[test]
    fn grammar_errors() {
        for bad in [
            "1 +",
            "(1",
            "foo(",
            "1 = ",
            "$..x",
            ".5",
            "f(1,)",
            "f(,)",
            "f(a => 1, 2)",
            "foo (1)",
            "'a' 'b'",
            "{a => 1, 2}",
            "()",
        ] {
            assert!(p(bad).starts_with("ERR"), "{bad} parsed as {}", p(bad));
        }
        assert_eq!(p("1 +"), "ERR Parse error: unexpected end of statement");
        assert_eq!(
            p("$..x"),
            "ERR Parse error: unexpected '.' at position 2 of expression '$..x'"
        );
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowed() {
        for s in [
            "(".repeat(10_000),
            "[".repeat(10_000),
            format!("{}1{}", "(".repeat(5000), ")".repeat(5000)),
            format!("{}1", "-".repeat(10_000)),
            format!("{}1", "not ".repeat(10_000)),
            vec!["1"; 10_000].join(" + "),
            vec!["a"; 10_000].join(" -> "),
            "f(".repeat(10_000),
            format!("${}", ".a".repeat(10_000)),
        ] {
            assert!(parse(&s).is_err());
        }
    }
}
