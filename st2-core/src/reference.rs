//! Resource references: `<pack>.<name>`, StackStorm's way of naming actions, rules, sensors,
//! trigger types, policies and aliases.

use std::fmt;

/// The pattern a pack ref must match: lower-case letters, digits and underscores.
pub const PACK_REF_PATTERN: &str = r"^[a-z0-9_]+$";

/// Pack refs StackStorm reserves; no pack may use them.
pub const RESERVED_PACK_REFS: &[&str] = &["_global"];

/// The pack API-created content goes to when none is named.
pub const DEFAULT_PACK: &str = "default";

/// The pack that ships StackStorm's own actions and trigger types.
pub const SYSTEM_PACK: &str = "core";

/// True when `s` is acceptable as a pack ref ([`PACK_REF_PATTERN`], checked without a regex:
/// a start checks every pack, and a regex would be compiled and cached for it per thread).
pub fn is_valid_pack_ref(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// A `<pack>.<name>` reference. The pack is everything before the *first* dot, so a trigger type
/// named `st2.webhook` in pack `core` has the ref `core.st2.webhook`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ResourceRef {
    pack: String,
    name: String,
}

/// Why a string is not a resource reference.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a reference of the form <pack>.<name>")]
pub struct InvalidRef(pub String);

impl ResourceRef {
    /// A reference to `name` in `pack`.
    pub fn new(pack: impl Into<String>, name: impl Into<String>) -> Self {
        ResourceRef {
            pack: pack.into(),
            name: name.into(),
        }
    }

    /// Split `s` at its first dot.
    ///
    /// # Errors
    /// [`InvalidRef`] when there is no dot or either side is empty.
    pub fn parse(s: &str) -> Result<Self, InvalidRef> {
        match s.split_once('.') {
            Some((pack, name)) if !pack.is_empty() && !name.is_empty() => {
                Ok(ResourceRef::new(pack, name))
            }
            _ => Err(InvalidRef(s.to_owned())),
        }
    }

    /// The pack part.
    pub fn pack(&self) -> &str {
        &self.pack
    }

    /// The name part.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl fmt::Display for ResourceRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.pack, self.name)
    }
}

/// `pack` + `.` + `name`.
pub fn join(pack: &str, name: &str) -> String {
    let mut s = String::with_capacity(pack.len() + name.len() + 1);
    s.push_str(pack);
    s.push('.');
    s.push_str(name);
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_on_the_first_dot() {
        let r = ResourceRef::parse("core.st2.webhook").unwrap();
        assert_eq!((r.pack(), r.name()), ("core", "st2.webhook"));
        assert_eq!(r.to_string(), "core.st2.webhook");
        assert!(ResourceRef::parse("nodot").is_err());
        assert!(ResourceRef::parse(".x").is_err());
        assert!(ResourceRef::parse("x.").is_err());
    }

    #[test]
    fn pack_refs() {
        assert!(is_valid_pack_ref("dummy_pack_1"));
        assert!(!is_valid_pack_ref("Dummy"));
        assert!(!is_valid_pack_ref("has-dash"));
        assert!(!is_valid_pack_ref(""));
        assert!(!is_valid_pack_ref("pack\n") && !is_valid_pack_ref("päck"));
    }
}
