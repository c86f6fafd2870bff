//! Diagnostics: what the pack loader (and later the expression and rule compilers) say about a
//! user's files. Every diagnostic names a file, a line and a column, so an editor can jump to it.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

/// How bad a diagnostic is.
///
/// An `Error` means the resource in that file was not loaded (StackStorm would reject it too);
/// a `Warning` means it loaded, but something looks wrong or differs from what the author likely
/// meant (StackStorm tolerates it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// The resource loaded but deserves a look.
    Warning,
    /// The resource was rejected.
    Error,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Warning => "warning",
            Severity::Error => "error",
        })
    }
}

/// A 1-based line and column in a text file. `Position::default()` (0, 0) means "the whole file".
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize)]
pub struct Position {
    /// 1-based line number; 0 when unknown.
    pub line: u32,
    /// 1-based column (in characters); 0 when unknown.
    pub column: u32,
}

impl Position {
    /// A position at `line`:`column` (both 1-based).
    pub const fn new(line: u32, column: u32) -> Self {
        Self { line, column }
    }

    /// The start of a file (1:1), used for problems that concern a whole file.
    pub const START: Position = Position { line: 1, column: 1 };
}

/// One finding about one file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Diagnostic {
    /// The file the finding is about.
    pub file: PathBuf,
    /// 1-based line.
    pub line: u32,
    /// 1-based column.
    pub column: u32,
    /// Error or warning.
    pub severity: Severity,
    /// A sentence saying what is wrong and, where it helps, what to do.
    pub message: String,
}

impl Diagnostic {
    /// A diagnostic about `file` at `pos`.
    pub fn new(
        file: impl Into<PathBuf>,
        pos: Position,
        severity: Severity,
        message: impl Into<String>,
    ) -> Self {
        let pos = if pos.line == 0 { Position::START } else { pos };
        Diagnostic {
            file: file.into(),
            line: pos.line,
            column: pos.column.max(1),
            severity,
            message: message.into(),
        }
    }

    /// An error about `file` at `pos`.
    pub fn error(file: impl Into<PathBuf>, pos: Position, message: impl Into<String>) -> Self {
        Self::new(file, pos, Severity::Error, message)
    }

    /// A warning about `file` at `pos`.
    pub fn warning(file: impl Into<PathBuf>, pos: Position, message: impl Into<String>) -> Self {
        Self::new(file, pos, Severity::Warning, message)
    }

    /// True for errors.
    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// The file this diagnostic is about.
    pub fn path(&self) -> &Path {
        &self.file
    }
}

impl fmt::Display for Diagnostic {
    /// `path:line:col: severity: message`, the format compilers and editors understand.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: {}: {}",
            self.file.display(),
            self.line,
            self.column,
            self.severity,
            self.message
        )
    }
}

/// A step in the path from a document's root to one of its values: a mapping key or a list index.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum PathSegment {
    /// A mapping key.
    Key(String),
    /// A list index (0-based).
    Index(usize),
}

/// Where in a document a finding applies, as a path of keys and indexes from the root.
///
/// The loader turns a `FieldPath` into a line and column using the YAML document it came from,
/// so checks can be written against plain JSON values and still point at the right line.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct FieldPath(Vec<PathSegment>);

impl FieldPath {
    /// The document root.
    pub fn root() -> Self {
        FieldPath(Vec::new())
    }

    /// This path extended by a mapping key.
    pub fn key(&self, key: &str) -> Self {
        let mut segments = self.0.clone();
        segments.push(PathSegment::Key(key.to_owned()));
        FieldPath(segments)
    }

    /// This path extended by a list index.
    pub fn index(&self, index: usize) -> Self {
        let mut segments = self.0.clone();
        segments.push(PathSegment::Index(index));
        FieldPath(segments)
    }

    /// The segments from the root.
    pub fn segments(&self) -> &[PathSegment] {
        &self.0
    }

    /// True for the document root.
    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for FieldPath {
    /// Dotted form, e.g. `parameters.cmd.type` or `chain[2].name`; `(root)` for the root.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("(root)");
        }
        for (i, segment) in self.0.iter().enumerate() {
            match segment {
                PathSegment::Key(k) if i == 0 => write!(f, "{k}")?,
                PathSegment::Key(k) => write!(f, ".{k}")?,
                PathSegment::Index(n) => write!(f, "[{n}]")?,
            }
        }
        Ok(())
    }
}

/// Where a finding points inside a document: at a value, or at the key naming it
/// (the better place for "this field is not allowed").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Anchor {
    /// Point at the value.
    Value,
    /// Point at the mapping key.
    Key,
}

/// A finding about a value inside a document, before it is placed on a line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Issue {
    /// Where in the document.
    pub path: FieldPath,
    /// Point at the key or the value.
    pub anchor: Anchor,
    /// Error or warning.
    pub severity: Severity,
    /// What is wrong.
    pub message: String,
}

/// Collects issues while a document is checked.
#[derive(Debug, Default)]
pub struct Issues {
    items: Vec<Issue>,
}

impl Issues {
    /// An empty collection.
    pub fn new() -> Self {
        Self::default()
    }

    /// Record an error about the value at `path`.
    pub fn error(&mut self, path: &FieldPath, message: impl Into<String>) {
        self.push(path, Anchor::Value, Severity::Error, message);
    }

    /// Record a warning about the value at `path`.
    pub fn warning(&mut self, path: &FieldPath, message: impl Into<String>) {
        self.push(path, Anchor::Value, Severity::Warning, message);
    }

    /// Record an issue about the key at the end of `path`.
    pub fn at_key(&mut self, path: &FieldPath, severity: Severity, message: impl Into<String>) {
        self.push(path, Anchor::Key, severity, message);
    }

    /// Record an issue.
    pub fn push(
        &mut self,
        path: &FieldPath,
        anchor: Anchor,
        severity: Severity,
        message: impl Into<String>,
    ) {
        self.items.push(Issue {
            path: path.clone(),
            anchor,
            severity,
            message: message.into(),
        });
    }

    /// True when at least one error was recorded.
    pub fn has_errors(&self) -> bool {
        self.items.iter().any(|i| i.severity == Severity::Error)
    }

    /// Number of errors recorded so far (lets a caller tell whether a step added any).
    pub fn error_count(&self) -> usize {
        self.items
            .iter()
            .filter(|i| i.severity == Severity::Error)
            .count()
    }

    /// The recorded issues, in the order they were found.
    pub fn into_vec(self) -> Vec<Issue> {
        self.items
    }

    /// The recorded issues.
    pub fn iter(&self) -> impl Iterator<Item = &Issue> {
        self.items.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn field_path_prints_dotted() {
        let p = FieldPath::root().key("chain").index(2).key("name");
        assert_eq!(p.to_string(), "chain[2].name");
        assert_eq!(FieldPath::root().to_string(), "(root)");
    }

    #[test]
    fn diagnostic_prints_compiler_style() {
        let d = Diagnostic::error("p/actions/a.yaml", Position::new(3, 5), "bad");
        assert_eq!(d.to_string(), "p/actions/a.yaml:3:5: error: bad");
        let whole = Diagnostic::warning("f", Position::default(), "w");
        assert_eq!((whole.line, whole.column), (1, 1));
    }
}
