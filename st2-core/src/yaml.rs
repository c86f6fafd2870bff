//! Reading YAML the way StackStorm reads it.
//!
//! StackStorm loads every pack file with PyYAML's `safe_load`, which follows YAML 1.1: `017` is
//! the octal number 15, `12:30` is the base-60 number 750, `yes`/`on` are booleans but `y`/`n`
//! are strings, `1e5` is a string (PyYAML's floats need a dot), duplicate keys keep the last
//! value. All YAML in this project goes through this module, which parses with serde-saphyr
//! (panic-free, pure Rust) and resolves every plain scalar with PyYAML's rules, so a pack means here exactly what it means to StackStorm.
//!
//! Parsing uses serde-saphyr's event parser (granit-parser, re-exported by serde-saphyr) and
//! enforces its own budgets: a size cap, a nesting cap and a cap on the values aliases may
//! produce.
//!
//! The result is a [`Document`]: a tree of [`Node`]s that remembers where each value came from,
//! so later checks can report `file:line:col`, plus warnings for things that parse but are
//! probably not what the author meant (duplicate keys, `08:30` read as a number, …).

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::LazyLock;

use regex::Regex;
use serde_json::{Map, Number, Value};
use serde_saphyr::granit_parser::{
    Event, Marker, Options as ParserOptions, Parser, ScalarStyle, ScanError, Span, StrInput, Tag,
};

use crate::diagnostic::{Anchor, FieldPath, PathSegment, Position};

/// Default cap on the size of one YAML file: 1 MiB.
pub const DEFAULT_MAX_FILE_BYTES: usize = 1024 * 1024;

/// Limits applied while reading one YAML text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct YamlLimits {
    /// Largest accepted input, in bytes.
    pub max_bytes: usize,
    /// Deepest accepted nesting of lists and mappings.
    pub max_depth: usize,
}

impl Default for YamlLimits {
    fn default() -> Self {
        YamlLimits {
            max_bytes: DEFAULT_MAX_FILE_BYTES,
            max_depth: 64,
        }
    }
}

/// Why a YAML text could not be read. Each variant carries the position it concerns.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum YamlError {
    /// The input is larger than [`YamlLimits::max_bytes`].
    #[error("file is {size} bytes, larger than the {limit}-byte limit")]
    TooLarge {
        /// Size of the input.
        size: u64,
        /// The limit in force.
        limit: usize,
    },
    /// The input is not valid UTF-8 (StackStorm opens pack files as UTF-8).
    #[error("file is not valid UTF-8 (invalid byte at offset {offset})")]
    NotUtf8 {
        /// Where the first invalid byte is.
        position: Position,
        /// Its byte offset.
        offset: usize,
    },
    /// The text is not well-formed YAML, holds several documents, or exceeds a parsing budget
    /// (alias expansion, nesting depth, number of nodes).
    #[error("{message}")]
    Syntax {
        /// Where the parser stopped.
        position: Position,
        /// What the parser said.
        message: String,
    },
    /// The YAML is well-formed but PyYAML's safe loader refuses it (for instance a plain `=`).
    #[error("{message}")]
    Unsupported {
        /// The offending value.
        position: Position,
        /// Why it is refused.
        message: String,
    },
}

impl YamlError {
    /// The position the error concerns (1:1 when it concerns the whole input).
    pub fn position(&self) -> Position {
        match self {
            YamlError::TooLarge { .. } => Position::START,
            YamlError::NotUtf8 { position, .. }
            | YamlError::Syntax { position, .. }
            | YamlError::Unsupported { position, .. } => *position,
        }
    }
}

/// One value of a YAML document, with the position it was written at.
#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// The value.
    pub kind: NodeKind,
    /// Where the value starts.
    pub pos: Position,
}

/// The kinds of YAML values StackStorm can receive (they are exactly the JSON kinds).
#[derive(Debug, Clone, PartialEq)]
pub enum NodeKind {
    /// `~`, `null`, or nothing.
    Null,
    /// A boolean.
    Bool(bool),
    /// An integer that fits in 64 bits.
    Int(i64),
    /// A float (always finite; PyYAML's `.inf`/`.nan` are kept as their text, with a warning).
    Float(f64),
    /// A string.
    Str(String),
    /// A list.
    Seq(Vec<Node>),
    /// A mapping, in document order; duplicate keys are all kept here (the last one wins when
    /// converted to JSON, as in PyYAML).
    Map(Vec<MapEntry>),
}

/// One `key: value` pair of a mapping.
#[derive(Debug, Clone, PartialEq)]
pub struct MapEntry {
    /// The key as text (non-string keys are kept as written).
    pub key: String,
    /// Where the key is written.
    pub key_pos: Position,
    /// The value.
    pub value: Node,
}

/// A parsed YAML document: its root value and what looked suspicious while reading it.
#[derive(Debug, Clone, PartialEq)]
pub struct Document {
    /// The root value (`Null` for an empty file).
    pub root: Node,
    /// Things that parse but are probably unintended, with where they are.
    pub warnings: Vec<(Position, String)>,
}

impl Document {
    /// The document as JSON, with PyYAML's meaning for every scalar and last-wins duplicates.
    pub fn to_json(&self) -> Value {
        self.root.to_json()
    }

    /// The position of the value (or key) at `path`. When the path leads nowhere (a missing
    /// field), the position of the deepest existing ancestor is returned.
    pub fn locate(&self, path: &FieldPath, anchor: Anchor) -> Position {
        let mut node = &self.root;
        let segments = path.segments();
        for (i, segment) in segments.iter().enumerate() {
            let last = i + 1 == segments.len();
            match (segment, &node.kind) {
                (PathSegment::Key(k), NodeKind::Map(entries)) => {
                    match entries.iter().rev().find(|e| &e.key == k) {
                        Some(entry) if last && anchor == Anchor::Key => return entry.key_pos,
                        Some(entry) => node = &entry.value,
                        None => return node.pos,
                    }
                }
                (PathSegment::Index(n), NodeKind::Seq(items)) => match items.get(*n) {
                    Some(item) => node = item,
                    None => return node.pos,
                },
                _ => return node.pos,
            }
        }
        node.pos
    }
}

impl Node {
    /// This value as JSON.
    pub fn to_json(&self) -> Value {
        match &self.kind {
            NodeKind::Null => Value::Null,
            NodeKind::Bool(b) => Value::Bool(*b),
            NodeKind::Int(i) => Value::Number((*i).into()),
            NodeKind::Float(f) => Number::from_f64(*f).map_or(Value::Null, Value::Number),
            NodeKind::Str(s) => Value::String(s.clone()),
            NodeKind::Seq(items) => Value::Array(items.iter().map(Node::to_json).collect()),
            NodeKind::Map(entries) => {
                let mut map = Map::with_capacity(entries.len());
                for e in entries {
                    map.insert(e.key.clone(), e.value.to_json());
                }
                Value::Object(map)
            }
        }
    }
}

/// Parse one YAML document from bytes, enforcing `limits`.
///
/// # Errors
/// [`YamlError`] when the input is too large, not UTF-8, not well-formed YAML, holds more than
/// one document, breaks a parsing budget, or holds a value PyYAML's safe loader refuses.
pub fn parse_bytes(bytes: &[u8], limits: &YamlLimits) -> Result<Document, YamlError> {
    if bytes.len() > limits.max_bytes {
        return Err(YamlError::TooLarge {
            size: bytes.len() as u64,
            limit: limits.max_bytes,
        });
    }
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let offset = e.valid_up_to();
        YamlError::NotUtf8 {
            position: position_of_offset(bytes, offset),
            offset,
        }
    })?;
    parse_str(text, limits)
}

/// Parse one YAML document from text, enforcing `limits`.
///
/// # Errors
/// As [`parse_bytes`], except for the UTF-8 check.
pub fn parse_str(text: &str, limits: &YamlLimits) -> Result<Document, YamlError> {
    if text.len() > limits.max_bytes {
        return Err(YamlError::TooLarge {
            size: text.len() as u64,
            limit: limits.max_bytes,
        });
    }
    let mut options = ParserOptions::default();
    // PyYAML (libyaml) adds no line feed to a block scalar that ends the input.
    options.block_scalar_eof_without_line_feed = true;
    let mut builder = Builder {
        events: Parser::new_from_str_with_options(text, options),
        limits,
        anchors: HashMap::new(),
        nodes: 0,
        warnings: Vec::new(),
    };
    let root = builder.document()?;
    Ok(Document {
        root,
        warnings: builder.warnings,
    })
}

/// The 1-based line and column of a byte offset (used for non-UTF-8 input).
fn position_of_offset(bytes: &[u8], offset: usize) -> Position {
    let before = &bytes[..offset.min(bytes.len())];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |p| p + 1);
    let column = String::from_utf8_lossy(&before[line_start..])
        .chars()
        .count()
        + 1;
    Position::new(
        u32::try_from(line).unwrap_or(u32::MAX),
        u32::try_from(column).unwrap_or(u32::MAX),
    )
}

/// Most nodes one document may produce, counting nodes copied by aliases (a "billion laughs"
/// document is refused long before it exhausts memory).
const MAX_NODES: usize = 1_000_000;

fn position(marker: &Marker) -> Position {
    Position::new(
        u32::try_from(marker.line()).unwrap_or(u32::MAX),
        u32::try_from(marker.col() + 1).unwrap_or(u32::MAX),
    )
}

fn scan_error(e: &ScanError) -> YamlError {
    let mut message = e.info();
    if message.is_empty() {
        message = "malformed YAML".to_owned();
    }
    YamlError::Syntax {
        position: position(e.marker()),
        message,
    }
}

/// Builds [`Node`]s from the parser's events, giving every scalar PyYAML's meaning.
struct Builder<'t, 'l> {
    events: Parser<'t, StrInput<'t>>,
    limits: &'l YamlLimits,
    anchors: HashMap<usize, Node>,
    nodes: usize,
    warnings: Vec<(Position, String)>,
}

impl<'t> Builder<'t, '_> {
    fn next(&mut self) -> Result<(Event<'t>, Span), YamlError> {
        match self.events.next_event() {
            Some(Ok(event)) => Ok(event),
            Some(Err(e)) => Err(scan_error(&e)),
            None => Err(YamlError::Syntax {
                position: Position::START,
                message: "unexpected end of input".to_owned(),
            }),
        }
    }

    /// The single document of the stream (`Null` when there is none).
    fn document(&mut self) -> Result<Node, YamlError> {
        let mut root = None;
        loop {
            let (event, span) = self.next()?;
            match event {
                Event::StreamStart | Event::DocumentEnd => {}
                Event::DocumentStart(..) if root.is_some() => {
                    return Err(YamlError::Syntax {
                        position: position(&span.start),
                        message: "the file holds more than one YAML document".to_owned(),
                    });
                }
                Event::DocumentStart(..) => {
                    let (event, span) = self.next()?;
                    root = Some(self.node(event, span, 0)?);
                }
                Event::StreamEnd => {
                    return Ok(root.unwrap_or(Node {
                        kind: NodeKind::Null,
                        pos: Position::START,
                    }));
                }
                _ => {}
            }
        }
    }

    fn count(&mut self, n: usize, pos: Position) -> Result<(), YamlError> {
        self.nodes = self.nodes.saturating_add(n);
        if self.nodes > MAX_NODES {
            return Err(YamlError::Syntax {
                position: pos,
                message: format!(
                    "the document expands to more than {MAX_NODES} values (too many aliases?)"
                ),
            });
        }
        Ok(())
    }

    fn node(&mut self, event: Event<'t>, span: Span, depth: usize) -> Result<Node, YamlError> {
        let pos = position(&span.start);
        if depth > self.limits.max_depth {
            return Err(YamlError::Syntax {
                position: pos,
                message: format!("nesting deeper than {} levels", self.limits.max_depth),
            });
        }
        let (node, anchor) = match event {
            Event::Scalar(value, style, anchor, tag) => {
                self.count(1, pos)?;
                let kind = self.scalar(value, style, tag.as_deref(), pos)?;
                (Node { kind, pos }, anchor)
            }
            Event::SequenceStart(_, anchor, _) => {
                self.count(1, pos)?;
                let mut items = Vec::new();
                loop {
                    let (event, span) = self.next()?;
                    if matches!(event, Event::SequenceEnd) {
                        break;
                    }
                    items.push(self.node(event, span, depth + 1)?);
                }
                (
                    Node {
                        kind: NodeKind::Seq(items),
                        pos,
                    },
                    anchor,
                )
            }
            Event::MappingStart(_, anchor, _) => {
                self.count(1, pos)?;
                (self.mapping(pos, depth)?, anchor)
            }
            Event::Alias(id) => {
                let Some(target) = self.anchors.get(&id) else {
                    return Err(YamlError::Syntax {
                        position: pos,
                        message: "alias to an anchor that is not complete yet".to_owned(),
                    });
                };
                let mut copy = target.clone();
                copy.pos = pos;
                let size = copy.size();
                self.count(size, pos)?;
                return Ok(copy);
            }
            _ => {
                return Err(YamlError::Syntax {
                    position: pos,
                    message: "unexpected YAML event".to_owned(),
                });
            }
        };
        if anchor != 0 {
            self.anchors.insert(anchor, node.clone());
        }
        Ok(node)
    }

    fn mapping(&mut self, pos: Position, depth: usize) -> Result<Node, YamlError> {
        let mut own: Vec<MapEntry> = Vec::new();
        let mut merged: Vec<MapEntry> = Vec::new();
        loop {
            let (event, span) = self.next()?;
            if matches!(event, Event::MappingEnd) {
                break;
            }
            let key_pos = position(&span.start);
            let is_merge = matches!(
                &event,
                Event::Scalar(text, ScalarStyle::Plain, _, None) if text == "<<"
            );
            let key_node = self.node(event, span, depth + 1)?;
            let (value_event, value_span) = self.next()?;
            let value = self.node(value_event, value_span, depth + 1)?;
            if is_merge {
                merged.extend(merge_sources(value)?);
                continue;
            }
            let key = match key_node.kind {
                NodeKind::Str(s) => s,
                NodeKind::Null => "null".to_owned(),
                NodeKind::Bool(b) => {
                    self.warnings.push((
                        key_pos,
                        format!(
                            "key `{b}` is read as a boolean by StackStorm's YAML loader; quote it"
                        ),
                    ));
                    b.to_string()
                }
                NodeKind::Int(i) => i.to_string(),
                NodeKind::Float(f) => f.to_string(),
                NodeKind::Seq(_) | NodeKind::Map(_) => {
                    return Err(YamlError::Unsupported {
                        position: key_pos,
                        message: "a list or mapping cannot be used as a mapping key".to_owned(),
                    });
                }
            };
            if let Some(previous) = own.iter().find(|e| e.key == key) {
                self.warnings.push((
                    key_pos,
                    format!(
                        "duplicate key `{key}` (first at line {}); the last value wins",
                        previous.key_pos.line
                    ),
                ));
            }
            own.push(MapEntry {
                key,
                key_pos,
                value,
            });
        }
        // PyYAML puts merged entries before the mapping's own, so its own keys win.
        merged.extend(own);
        Ok(Node {
            kind: NodeKind::Map(merged),
            pos,
        })
    }

    fn scalar(
        &mut self,
        value: Cow<'t, str>,
        style: ScalarStyle,
        tag: Option<&Tag>,
        pos: Position,
    ) -> Result<NodeKind, YamlError> {
        if let Some(tag) = tag {
            return tagged_scalar(&value, tag, pos);
        }
        match style {
            ScalarStyle::Plain => self.plain(&value, pos),
            _ => Ok(NodeKind::Str(value.into_owned())),
        }
    }

    /// Give a plain scalar PyYAML's meaning, warning where that meaning is likely a surprise.
    fn plain(&mut self, text: &str, pos: Position) -> Result<NodeKind, YamlError> {
        Ok(match resolve_plain(text) {
            Plain::Null => NodeKind::Null,
            Plain::Bool(b) => NodeKind::Bool(b),
            Plain::Int { value, surprising } => {
                if let Some(note) = surprising {
                    self.warnings.push((
                        pos,
                        format!("`{text}` is read as {note} by StackStorm's YAML loader; quote it if you meant text"),
                    ));
                }
                value
            }
            Plain::Float(f) => NodeKind::Float(f),
            Plain::NonFinite => {
                self.warnings.push((
                    pos,
                    format!("`{text}` is an infinite/NaN float to StackStorm, which JSON cannot hold; it is kept as text"),
                ));
                NodeKind::Str(text.to_owned())
            }
            Plain::Timestamp => {
                self.warnings.push((
                    pos,
                    format!("`{text}` is read as a date by StackStorm's YAML loader; it is kept as text here, quote it to be explicit"),
                ));
                NodeKind::Str(text.to_owned())
            }
            Plain::ValueTag => {
                return Err(YamlError::Unsupported {
                    position: pos,
                    message: "a plain `=` cannot be loaded by StackStorm's YAML loader; quote it"
                        .to_owned(),
                });
            }
            Plain::Str => NodeKind::Str(text.to_owned()),
        })
    }
}

impl Node {
    /// How many values this node holds, itself included.
    fn size(&self) -> usize {
        1 + match &self.kind {
            NodeKind::Seq(items) => items.iter().map(Node::size).sum(),
            NodeKind::Map(entries) => entries.iter().map(|e| 1 + e.value.size()).sum(),
            _ => 0,
        }
    }
}

/// The entries a `<<` merge key brings in: a mapping, or a list of mappings where earlier ones
/// win (PyYAML's `flatten_mapping`).
fn merge_sources(value: Node) -> Result<Vec<MapEntry>, YamlError> {
    match value.kind {
        NodeKind::Map(entries) => Ok(entries),
        NodeKind::Seq(items) => {
            let mut out = Vec::new();
            for item in items.into_iter().rev() {
                match item.kind {
                    NodeKind::Map(entries) => out.extend(entries),
                    _ => {
                        return Err(YamlError::Unsupported {
                            position: item.pos,
                            message: "a `<<` merge list may only hold mappings".to_owned(),
                        });
                    }
                }
            }
            Ok(out)
        }
        _ => Err(YamlError::Unsupported {
            position: value.pos,
            message: "a `<<` merge key needs a mapping or a list of mappings".to_owned(),
        }),
    }
}

/// A scalar with an explicit tag: the core tags PyYAML's safe loader knows, nothing else.
fn tagged_scalar(value: &str, tag: &Tag, pos: Position) -> Result<NodeKind, YamlError> {
    let core = tag.handle() == "tag:yaml.org,2002:";
    let unsupported = || YamlError::Unsupported {
        position: pos,
        message: format!(
            "tag `{}{}` is not supported by StackStorm's YAML loader",
            tag.handle(),
            tag.suffix()
        ),
    };
    if !core {
        return Err(unsupported());
    }
    let invalid = |what: &str| YamlError::Unsupported {
        position: pos,
        message: format!("`{value}` is not a valid {what}"),
    };
    Ok(match tag.suffix() {
        "str" => NodeKind::Str(value.to_owned()),
        "null" => NodeKind::Null,
        "bool" => match resolve_plain(value) {
            Plain::Bool(b) => NodeKind::Bool(b),
            _ => return Err(invalid("boolean")),
        },
        "int" => match int_value(value) {
            Plain::Int { value, .. } => value,
            _ => return Err(invalid("integer")),
        },
        "float" => match resolve_plain(value) {
            Plain::Float(f) => NodeKind::Float(f),
            Plain::Int {
                value: NodeKind::Int(i),
                ..
            } => NodeKind::Float(i as f64),
            _ => return Err(invalid("float")),
        },
        _ => return Err(unsupported()),
    })
}

/// What PyYAML makes of a plain scalar.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Plain {
    Null,
    Bool(bool),
    /// An integer; `surprising` names the reading when it is not plain decimal (octal, base 60).
    Int {
        value: NodeKind,
        surprising: Option<&'static str>,
    },
    Float(f64),
    NonFinite,
    Timestamp,
    ValueTag,
    Str,
}

// PyYAML's implicit resolvers (YAML 1.1), as regular expressions over the whole scalar.
static BOOL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^(?:yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF)$")
        .expect("static regex")
});
static FLOAT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?",
        r"|\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?",
        r"|[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*",
        r"|[-+]?\.(?:inf|Inf|INF)",
        r"|\.(?:nan|NaN|NAN))$"
    ))
    .expect("static regex")
});
static INT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"^(?:[-+]?0b[0-1_]+",
        r"|[-+]?0[0-7_]+",
        r"|[-+]?(?:0|[1-9][0-9_]*)",
        r"|[-+]?0x[0-9a-fA-F_]+",
        r"|[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+)$"
    ))
    .expect("static regex")
});
static NULL: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^(?:~|null|Null|NULL|)$").expect("static regex"));
static TIMESTAMP: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"^(?:[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]",
        r"|[0-9][0-9][0-9][0-9]-[0-9][0-9]?-[0-9][0-9]?",
        r"(?:[Tt]|[ \t]+)[0-9][0-9]?",
        r":[0-9][0-9]:[0-9][0-9](?:\.[0-9]*)?",
        r"(?:[ \t]*(?:Z|[-+][0-9][0-9]?(?::[0-9][0-9])?))?)$"
    ))
    .expect("static regex")
});

/// PyYAML's reading of a plain scalar. Resolvers are tried in PyYAML's order, each only for the
/// first characters it is registered for.
pub(crate) fn resolve_plain(text: &str) -> Plain {
    let first = text.chars().next();
    match first {
        None => return Plain::Null,
        Some('y' | 'Y' | 'n' | 'N' | 't' | 'T' | 'f' | 'F' | 'o' | 'O') if BOOL.is_match(text) => {
            return Plain::Bool(
                text.starts_with(['y', 'Y', 't', 'T']) || text.eq_ignore_ascii_case("on"),
            );
        }
        _ => {}
    }
    let Some(first) = first else {
        return Plain::Null;
    };
    if matches!(first, '-' | '+' | '0'..='9' | '.') && FLOAT.is_match(text) {
        return float_value(text);
    }
    if matches!(first, '-' | '+' | '0'..='9') && INT.is_match(text) {
        return int_value(text);
    }
    if matches!(first, '~' | 'n' | 'N') && NULL.is_match(text) {
        return Plain::Null;
    }
    if first.is_ascii_digit() && TIMESTAMP.is_match(text) {
        return Plain::Timestamp;
    }
    if text == "=" {
        return Plain::ValueTag;
    }
    Plain::Str
}

fn split_sign(text: &str) -> (i64, &str) {
    match text.as_bytes().first() {
        Some(b'-') => (-1, &text[1..]),
        Some(b'+') => (1, &text[1..]),
        _ => (1, text),
    }
}

fn int_value(text: &str) -> Plain {
    let cleaned: String = text.chars().filter(|&c| c != '_').collect();
    let (sign, digits) = split_sign(&cleaned);
    let (parsed, surprising) = if digits == "0" {
        (Some(0_i128), None)
    } else if let Some(bin) = digits.strip_prefix("0b") {
        (i128::from_str_radix(bin, 2).ok(), None)
    } else if let Some(hex) = digits.strip_prefix("0x") {
        (i128::from_str_radix(hex, 16).ok(), None)
    } else if digits.starts_with('0') {
        (
            i128::from_str_radix(digits, 8).ok(),
            Some("an octal number"),
        )
    } else if digits.contains(':') {
        (
            sexagesimal(digits).map(|v| v as i128),
            Some("a base-60 number"),
        )
    } else {
        (digits.parse::<i128>().ok(), None)
    };
    let value = match parsed.map(|v| v * i128::from(sign)) {
        Some(v) => i64::try_from(v).map_or(NodeKind::Float(v as f64), NodeKind::Int),
        None => return Plain::Str,
    };
    Plain::Int { value, surprising }
}

fn float_value(text: &str) -> Plain {
    let cleaned: String = text
        .chars()
        .filter(|&c| c != '_')
        .collect::<String>()
        .to_lowercase();
    if cleaned.ends_with("inf") || cleaned.ends_with("nan") {
        return Plain::NonFinite;
    }
    let (sign, digits) = split_sign(&cleaned);
    let sign = sign as f64;
    if digits.contains(':') {
        let mut parts = digits.split(':').collect::<Vec<_>>();
        let last = parts.pop().unwrap_or("0");
        let whole = sexagesimal(&parts.join(":")).unwrap_or(0) as f64;
        let tail = normalise_float(last).parse::<f64>().unwrap_or(0.0);
        return Plain::Float(sign * (whole * 60.0 + tail));
    }
    match normalise_float(digits).parse::<f64>() {
        Ok(f) => Plain::Float(sign * f),
        Err(_) => Plain::Str,
    }
}

/// Python's float() accepts `1.` and `1.e+5`; make those Rust-parsable.
fn normalise_float(s: &str) -> String {
    let mut out = s.to_owned();
    if let Some(dot) = out.find('.') {
        let after = out[dot + 1..].chars().next();
        if after.is_none_or(|c| !c.is_ascii_digit()) {
            out.insert(dot + 1, '0');
        }
    }
    if out.starts_with('.') {
        out.insert(0, '0');
    }
    out
}

fn sexagesimal(digits: &str) -> Option<i64> {
    let mut value: i64 = 0;
    for part in digits.split(':') {
        let n: i64 = part.parse().ok()?;
        value = value.checked_mul(60)?.checked_add(n)?;
    }
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn load(text: &str) -> Value {
        parse_str(text, &YamlLimits::default()).unwrap().to_json()
    }

    #[test]
    fn scalars_mean_what_pyyaml_says() {
        let v = load(concat!(
            "a: 1e5\nb: 1.0e+5\nc: 017\nd: 09\ne: 12:30\nf: y\ng: 0o17\nh: 1_000\n",
            "i: 0x1F\nj: +1\nk: -.5\nl: 1.\nm: 0b101\nn: 190:20:30\no: 1:20.5\np: ._5\n",
            "q: 1__0\nr: 0.1_5\ns: 08.5\nt: +0\nu: -0\nv: 00\nw: 1e+5\nx: yes\ny: Off\nz: ~\n",
            "aa: NULL\nab:\nac: N\nad: .5\n"
        ));
        let expected = json!({
            "a": "1e5", "b": 100000.0, "c": 15, "d": "09", "e": 750, "f": "y", "g": "0o17",
            "h": 1000, "i": 31, "j": 1, "k": "-.5", "l": 1.0, "m": 5, "n": 685230, "o": 80.5,
            "p": "._5", "q": 10, "r": 0.15, "s": 8.5, "t": 0, "u": 0, "v": 0, "w": "1e+5",
            "x": true, "y": false, "z": null, "aa": null, "ab": null, "ac": "N", "ad": 0.5
        });
        assert_eq!(v, expected);
    }

    #[test]
    fn quoted_block_and_tagged_scalars_stay_text() {
        let v = load("a: '017'\nb: \"12:30\"\nc: |-\n  12:30\nd: !!str 017\ne: >\n  yes\n");
        assert_eq!(
            v,
            json!({"a": "017", "b": "12:30", "c": "12:30", "d": "017", "e": "yes\n"})
        );
    }

    #[test]
    fn block_scalar_at_end_of_file_without_newline_has_no_final_newline() {
        assert_eq!(load("a: |\n  x\n  y"), json!({"a": "x\ny"}));
        assert_eq!(load("a: |\n  x\n  y\n"), json!({"a": "x\ny\n"}));
        assert_eq!(load("a: \"x\\n\""), json!({"a": "x\n"}));
    }

    #[test]
    fn duplicate_keys_keep_the_last_value_in_first_position_and_warn() {
        let doc = parse_str("a: 1\nb: 2\na: 3\n", &YamlLimits::default()).unwrap();
        assert_eq!(doc.to_json(), json!({"a": 3, "b": 2}));
        let keys: Vec<_> = doc.to_json().as_object().unwrap().keys().cloned().collect();
        assert_eq!(keys, ["a", "b"]);
        assert_eq!(doc.warnings.len(), 1);
        assert_eq!(doc.warnings[0].0, Position::new(3, 1));
        assert!(doc.warnings[0].1.contains("duplicate key `a`"));
    }

    #[test]
    fn aliases_resolve_like_their_anchor() {
        assert_eq!(load("a: &x 017\nb: *x\n"), json!({"a": 15, "b": 15}));
    }

    #[test]
    fn surprising_readings_warn() {
        let doc = parse_str("t: 08:30\nd: 2024-01-01\n", &YamlLimits::default()).unwrap();
        assert_eq!(doc.to_json(), json!({"t": "08:30", "d": "2024-01-01"}));
        let doc = parse_str("t: 8:30\n", &YamlLimits::default()).unwrap();
        assert_eq!(doc.to_json(), json!({"t": 510}));
        assert!(doc.warnings[0].1.contains("base-60"));
    }

    #[test]
    fn empty_input_is_null() {
        assert_eq!(load(""), Value::Null);
        assert_eq!(load("# only a comment\n"), Value::Null);
    }

    #[test]
    fn syntax_errors_carry_a_position() {
        let err = parse_str("a: [1, 2\nb: 3\n", &YamlLimits::default()).unwrap_err();
        assert!(matches!(err, YamlError::Syntax { .. }));
        assert_eq!(err.position().line, 2);
        assert!(!err.to_string().contains("line 2"), "{err}");
    }

    #[test]
    fn several_documents_are_refused() {
        let err = parse_str("a: 1\n---\nb: 2\n", &YamlLimits::default()).unwrap_err();
        assert_eq!(err.position().line, 2);
        assert!(err.to_string().contains("more than one YAML document"));
    }

    #[test]
    fn oversized_and_non_utf8_input_is_refused() {
        let limits = YamlLimits {
            max_bytes: 10,
            ..YamlLimits::default()
        };
        assert!(matches!(
            parse_bytes(b"a: 123456789012", &limits),
            Err(YamlError::TooLarge { .. })
        ));
        let err = parse_bytes(b"a: 1\nb: \xff\n", &YamlLimits::default()).unwrap_err();
        assert_eq!(err.position(), Position::new(2, 4));
    }

    #[test]
    fn alias_bombs_and_deep_nesting_are_refused() {
        let mut bomb = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        let names = ["b", "c", "d", "e", "f", "g", "h", "i", "j"];
        let mut prev = "a";
        for n in names {
            bomb.push_str(&format!(
                "{n}: &{n} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"
            ));
            prev = n;
        }
        assert!(matches!(
            parse_str(&bomb, &YamlLimits::default()),
            Err(YamlError::Syntax { .. })
        ));
        let deep = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
        assert!(parse_str(&deep, &YamlLimits::default()).is_err());
    }

    #[test]
    fn locate_finds_keys_values_and_nearest_ancestors() {
        let doc = parse_str(
            "name: x\nparameters:\n  cmd:\n    type: stringa\nlist:\n  - a\n  - b\n",
            &YamlLimits::default(),
        )
        .unwrap();
        let p = FieldPath::root().key("parameters").key("cmd").key("type");
        assert_eq!(doc.locate(&p, Anchor::Value), Position::new(4, 11));
        assert_eq!(doc.locate(&p, Anchor::Key), Position::new(4, 5));
        let missing = FieldPath::root().key("parameters").key("nope");
        assert_eq!(doc.locate(&missing, Anchor::Value), Position::new(3, 3));
        let item = FieldPath::root().key("list").index(1);
        assert_eq!(doc.locate(&item, Anchor::Value), Position::new(7, 5));
    }

    #[test]
    fn boolean_looking_keys_warn() {
        // PyYAML makes the key the boolean True, which JSON writes as "true".
        let doc = parse_str("on: push\n", &YamlLimits::default()).unwrap();
        assert_eq!(doc.to_json(), json!({"true": "push"}));
        assert!(doc.warnings[0].1.contains("boolean"));
    }

    #[test]
    fn merge_keys_follow_pyyaml() {
        let v = load(concat!(
            "base: &b {x: 1, y: 2}\n",
            "other: &o {y: 3, z: 4}\n",
            "a: {<<: *b, x: 9}\n",
            "c: {<<: [*b, *o]}\n",
        ));
        assert_eq!(v["a"], json!({"x": 9, "y": 2}));
        assert_eq!(v["c"], json!({"y": 2, "z": 4, "x": 1}));
        assert_eq!(load("a: {'<<': 1}\n"), json!({"a": {"<<": 1}}));
    }

    #[test]
    fn unknown_tags_are_refused_and_core_tags_apply() {
        assert!(parse_str("a: !custom x\n", &YamlLimits::default()).is_err());
        assert_eq!(
            load("a: !!int '12'\nb: !!float 1\n"),
            json!({"a": 12, "b": 1.0})
        );
    }

    #[test]
    fn mutated_documents_never_panic() {
        let seeds = [
            include_str!("../tests/fixtures/packs/good_pack/rules/on_webhook.yaml"),
            include_str!("../tests/fixtures/packs/good_pack/sensors/queue_watcher.yaml"),
            include_str!("../builtin/runners.yaml"),
            "a: &x [1, *x]\nb: {<<: [*x]}\nc: !!int nope\nd: |-\n  x\n e: '\\u'\n",
        ];
        let alphabet: &[u8] = b" \n\t:-[]{},&*!|>'\"#%@`?<=~0123456789abcxyz.\\\xff\xc3";
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for round in 0..3000 {
            let mut bytes = seeds[round % seeds.len()].as_bytes().to_vec();
            for _ in 0..(1 + next() % 8) {
                let at = (next() as usize) % (bytes.len() + 1);
                let byte = alphabet[(next() as usize) % alphabet.len()];
                match next() % 3 {
                    0 if at < bytes.len() => bytes[at] = byte,
                    1 if at < bytes.len() => {
                        bytes.remove(at);
                    }
                    _ => bytes.insert(at, byte),
                }
            }
            // Any result is fine; a panic fails the test.
            if let Ok(doc) = parse_bytes(&bytes, &YamlLimits::default()) {
                let _ = doc.to_json();
            }
        }
    }

    #[test]
    fn plain_equals_is_refused() {
        assert!(matches!(
            parse_str("a: =\n", &YamlLimits::default()),
            Err(YamlError::Unsupported { .. })
        ));
    }
}
