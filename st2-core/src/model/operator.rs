//! Rule criteria operators, by StackStorm's names (and their short aliases).

use std::fmt;

use serde::Serialize;

/// A criteria operator. Names are matched exactly (lower case), as StackStorm validates them
/// when a rule is registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Operator {
    /// `equals`, `eq`.
    Equals,
    /// `nequals`, `neq`.
    NotEquals,
    /// `iequals`, `ieq`: case-insensitive string equality.
    IEquals,
    /// `contains`: substring, list membership or mapping key.
    Contains,
    /// `ncontains`.
    NotContains,
    /// `icontains`: case-insensitive substring.
    IContains,
    /// `incontains`.
    NotIContains,
    /// `startswith`.
    StartsWith,
    /// `istartswith`.
    IStartsWith,
    /// `endswith`.
    EndsWith,
    /// `iendswith`.
    IEndsWith,
    /// `lessthan`, `lt`.
    LessThan,
    /// `greaterthan`, `gt`.
    GreaterThan,
    /// `matchwildcard`: shell-style `fnmatch`.
    MatchWildcard,
    /// `matchregex` (deprecated): regex anchored at the start, dot matches newlines.
    MatchRegex,
    /// `regex`: regex search anywhere.
    Regex,
    /// `iregex`: case-insensitive regex search.
    IRegex,
    /// `timediff_lt`, `td_lt`: the value's time is less than N seconds ago.
    TimeDiffLessThan,
    /// `timediff_gt`, `td_gt`.
    TimeDiffGreaterThan,
    /// `exists`: the key is present and not null.
    Exists,
    /// `nexists`.
    NotExists,
    /// `inside`, `in`: the value is in the pattern.
    Inside,
    /// `ninside`, `nin`.
    NotInside,
    /// `search`: match child criteria against list items.
    Search,
    /// `rhai` (an extension; StackStorm has no such operator): the pattern is a Rhai script
    /// that sees `value` (the key's value) and `trigger` (the payload) and returns a bool.
    Rhai,
}

impl Operator {
    /// Every accepted name and its operator.
    pub const NAMES: &'static [(&'static str, Operator)] = &[
        ("matchwildcard", Operator::MatchWildcard),
        ("matchregex", Operator::MatchRegex),
        ("regex", Operator::Regex),
        ("iregex", Operator::IRegex),
        ("eq", Operator::Equals),
        ("equals", Operator::Equals),
        ("nequals", Operator::NotEquals),
        ("neq", Operator::NotEquals),
        ("ieq", Operator::IEquals),
        ("iequals", Operator::IEquals),
        ("contains", Operator::Contains),
        ("icontains", Operator::IContains),
        ("ncontains", Operator::NotContains),
        ("incontains", Operator::NotIContains),
        ("startswith", Operator::StartsWith),
        ("istartswith", Operator::IStartsWith),
        ("endswith", Operator::EndsWith),
        ("iendswith", Operator::IEndsWith),
        ("lt", Operator::LessThan),
        ("lessthan", Operator::LessThan),
        ("gt", Operator::GreaterThan),
        ("greaterthan", Operator::GreaterThan),
        ("td_lt", Operator::TimeDiffLessThan),
        ("timediff_lt", Operator::TimeDiffLessThan),
        ("td_gt", Operator::TimeDiffGreaterThan),
        ("timediff_gt", Operator::TimeDiffGreaterThan),
        ("exists", Operator::Exists),
        ("nexists", Operator::NotExists),
        ("inside", Operator::Inside),
        ("in", Operator::Inside),
        ("ninside", Operator::NotInside),
        ("nin", Operator::NotInside),
        ("search", Operator::Search),
        ("rhai", Operator::Rhai),
    ];

    /// The operator with this name in any case, as StackStorm's rule filter looks operators up
    /// when it evaluates criteria (`EQUALS` works there; registration wants lower case).
    pub fn from_name_ignore_case(name: &str) -> Option<Operator> {
        Self::NAMES
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, op)| *op)
    }

    /// True for the operators StackStorm does not have.
    pub fn is_extension(self) -> bool {
        self == Operator::Rhai
    }

    /// The operator with this exact name.
    pub fn from_name(name: &str) -> Option<Operator> {
        Self::NAMES
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, op)| *op)
    }

    /// The canonical (long) name.
    pub fn name(self) -> &'static str {
        match self {
            Operator::Equals => "equals",
            Operator::NotEquals => "nequals",
            Operator::IEquals => "iequals",
            Operator::Contains => "contains",
            Operator::NotContains => "ncontains",
            Operator::IContains => "icontains",
            Operator::NotIContains => "incontains",
            Operator::StartsWith => "startswith",
            Operator::IStartsWith => "istartswith",
            Operator::EndsWith => "endswith",
            Operator::IEndsWith => "iendswith",
            Operator::LessThan => "lessthan",
            Operator::GreaterThan => "greaterthan",
            Operator::MatchWildcard => "matchwildcard",
            Operator::MatchRegex => "matchregex",
            Operator::Regex => "regex",
            Operator::IRegex => "iregex",
            Operator::TimeDiffLessThan => "timediff_lt",
            Operator::TimeDiffGreaterThan => "timediff_gt",
            Operator::Exists => "exists",
            Operator::NotExists => "nexists",
            Operator::Inside => "inside",
            Operator::NotInside => "ninside",
            Operator::Search => "search",
            Operator::Rhai => "rhai",
        }
    }

    /// All accepted names, comma-separated (for messages).
    pub fn all_names() -> String {
        Self::NAMES
            .iter()
            .map(|(n, _)| *n)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

impl fmt::Display for Operator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_aliases() {
        assert_eq!(Operator::from_name("eq"), Some(Operator::Equals));
        assert_eq!(
            Operator::from_name("td_gt"),
            Some(Operator::TimeDiffGreaterThan)
        );
        assert_eq!(Operator::from_name("Equals"), None);
        assert_eq!(Operator::NAMES.len(), 34);
        for (name, op) in Operator::NAMES {
            assert_eq!(Operator::from_name(op.name()), Some(*op), "{name}");
        }
    }
}
