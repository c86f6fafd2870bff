//! Packs: `pack.yaml`, the manifest every pack directory carries.

use std::path::PathBuf;
use std::sync::LazyLock;

use regex::Regex;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::diagnostic::{FieldPath, Issues};
use crate::model::fields::{Fields, describe};
use crate::reference::{RESERVED_PACK_REFS, is_valid_pack_ref};

static SEMVER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"^(?:0|[1-9]\d*)\.(?:0|[1-9]\d*)\.(?:0|[1-9]\d*)",
        r"(?:-[\da-z\-]+(?:\.[\da-z\-]+)*)?(?:\+[\da-z\-]+(?:\.[\da-z\-]+)*)?$"
    ))
    .expect("static regex")
});

static ST2_VERSION: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^((>?>|>=|=|<=|<?<)\s*[0-9]+\.[0-9]+\.[0-9]+?(\s*,)?\s*)+$").expect("static regex")
});

/// The manifest of a pack (`pack.yaml`).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PackMeta {
    /// The pack's ref: its identity, the prefix of every resource ref in it.
    #[serde(rename = "ref")]
    pub reference: String,
    /// Display name.
    pub name: String,
    /// What the pack integrates with.
    pub description: String,
    /// Semantic version (`MAJOR.MINOR.PATCH[-pre][+build]`).
    pub version: String,
    /// Author or authors.
    pub author: String,
    /// Author e-mail.
    pub email: Option<String>,
    /// People who contributed.
    pub contributors: Vec<String>,
    /// Search keywords.
    pub keywords: Vec<String>,
    /// Required StackStorm version range, e.g. `">=1.8.0, <2.2.0"`.
    pub stackstorm_version: Option<String>,
    /// Supported Python major versions (`"2"`, `"3"`); empty means both.
    pub python_versions: Vec<String>,
    /// Packs this one depends on: `<name or git URL>[=<version>]`.
    pub dependencies: Vec<String>,
    /// Free-form system requirements.
    pub system: Map<String, Value>,
}

/// A pack's ref and the directory it was found in (StackStorm compares a resource's `pack:`
/// field with the directory name, so both are accepted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PackIdentity {
    pub reference: String,
    pub dir_name: String,
}

/// A loaded pack.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Pack {
    /// The manifest.
    #[serde(flatten)]
    pub meta: PackMeta,
    /// The pack directory on disk; `None` for content compiled into the library.
    pub path: Option<PathBuf>,
    /// True for the packs built into the library (`core`) that no directory replaced.
    pub builtin: bool,
}

impl Pack {
    /// The pack's ref.
    pub fn reference(&self) -> &str {
        &self.meta.reference
    }
}

impl PackMeta {
    /// Read a `pack.yaml` document (as JSON) with no directory to take the ref from: `ref`,
    /// else `name` when it is a valid ref (how StackStorm names a pack it installs).
    ///
    /// # Errors
    /// Every error in the manifest, as `<field>: <message>` lines.
    pub fn from_manifest(value: &Value) -> Result<PackMeta, Vec<String>> {
        let mut issues = Issues::new();
        let meta = PackMeta::read(value, "", &mut issues);
        match meta {
            Some(meta) if !issues.has_errors() => Ok(meta),
            _ => {
                let mut found = crate::model::error_messages(issues);
                if found.is_empty() {
                    found.push("pack.yaml has no valid `ref` or `name`".to_owned());
                }
                Err(found)
            }
        }
    }

    /// Read `pack.yaml` for the pack found in directory `dir_name`, resolving its ref the way
    /// StackStorm does: explicit `ref`, else the directory name if it is a valid ref, else `name`
    /// if it is one.
    pub(crate) fn read(value: &Value, dir_name: &str, issues: &mut Issues) -> Option<PackMeta> {
        let root = FieldPath::root();
        if value.is_null() {
            issues.error(&root, "pack metadata file is empty");
            return None;
        }
        let mut f = Fields::of(value, root, "pack metadata", issues)?;
        let explicit_ref = f.str("ref", issues).filter(|r| !r.is_empty());
        if let Some(r) = explicit_ref
            && !is_valid_pack_ref(r)
        {
            issues.error(
                &f.child("ref"),
                format!("pack ref `{r}` may only contain lower-case letters, digits and `_`"),
            );
        }
        let name = f.req_str("name", issues);
        let description = f.req_str("description", issues);
        let version = read_version(&mut f, issues);
        let author = f.req_str("author", issues);
        let email = f.str("email", issues).map(str::to_owned);
        let keywords = f.strings("keywords", issues);
        let contributors = f.strings("contributors", issues);
        for (i, c) in contributors.iter().enumerate() {
            if c.chars().count() > 100 {
                issues.error(
                    &f.child("contributors").index(i),
                    "a contributor entry may be at most 100 characters long",
                );
            }
        }
        let stackstorm_version = f.str("stackstorm_version", issues).map(str::to_owned);
        if let Some(v) = &stackstorm_version
            && !ST2_VERSION.is_match(v)
        {
            issues.error(
                &f.child("stackstorm_version"),
                format!(
                    "`stackstorm_version` `{v}` is not a version range like \">=1.8.0, <2.2.0\""
                ),
            );
        }
        let python_versions = read_python_versions(&mut f, issues);
        let dependencies = f.strings("dependencies", issues);
        let system = f.object("system", issues).cloned().unwrap_or_default();
        // StackStorm allows any other key in pack.yaml so newer manifests keep loading.

        let reference = match explicit_ref {
            Some(r) if !is_valid_pack_ref(r) => return None,
            Some(r) => r.to_owned(),
            None if is_valid_pack_ref(dir_name) => dir_name.to_owned(),
            None => match name {
                Some(n) if is_valid_pack_ref(n) => n.to_owned(),
                Some(n) => {
                    issues.error(
                        &f.child("name"),
                        format!(
                            "pack name `{n}` is not a valid ref and there is no `ref` field: add `ref` with only lower-case letters, digits and `_`"
                        ),
                    );
                    return None;
                }
                None => return None,
            },
        };
        if RESERVED_PACK_REFS.contains(&reference.as_str()) {
            issues.error(
                &f.child("ref"),
                format!("`{reference}` is a reserved name and cannot be used as a pack ref"),
            );
            return None;
        }
        Some(PackMeta {
            reference,
            name: name?.to_owned(),
            description: description?.to_owned(),
            version: version?,
            author: author?.to_owned(),
            email,
            contributors,
            keywords,
            stackstorm_version,
            python_versions,
            dependencies,
            system,
        })
    }
}

/// `version` is required and must be semver; unquoted numbers are read as their text, as
/// StackStorm converts them with `str()` (so `version: 1.0` is `"1.0"`, which is not semver).
fn read_version(f: &mut Fields<'_>, issues: &mut Issues) -> Option<String> {
    let path = f.child("version");
    let version = match f.value("version") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        Some(other) => {
            issues.error(
                &path,
                format!("`version` must be a string, not {}", describe(other)),
            );
            return None;
        }
        None => {
            issues.error(f.path(), "required field `version` is missing");
            return None;
        }
    };
    if !SEMVER.is_match(&version) {
        issues.error(
            &path,
            format!("pack version `{version}` is not a semantic version such as 0.1.0 or 1.2.3"),
        );
        return None;
    }
    Some(version)
}

fn read_python_versions(f: &mut Fields<'_>, issues: &mut Issues) -> Vec<String> {
    let path = f.child("python_versions");
    let Some(items) = f.array("python_versions", issues) else {
        return Vec::new();
    };
    let mut versions = Vec::new();
    for (i, item) in items.iter().enumerate() {
        match item.as_str() {
            Some(v @ ("2" | "3")) => versions.push(v.to_owned()),
            _ => issues.error(
                &path.index(i),
                format!(
                    "python version must be \"2\" or \"3\" (quoted), not {}",
                    describe(item)
                ),
            ),
        }
    }
    if items.is_empty() || items.len() > 2 {
        issues.error(&path, "`python_versions` must list one or two versions");
    } else if versions.len() == 2 && versions[0] == versions[1] {
        issues.error(&path, "`python_versions` lists the same version twice");
    }
    if versions == ["2"] {
        issues.warning(
            &path,
            "the pack only supports Python 2, which StackStorm no longer runs; its Python actions and sensors may fail",
        );
    }
    versions
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn read(v: Value, dir: &str) -> (Option<PackMeta>, Vec<String>) {
        let mut issues = Issues::new();
        let meta = PackMeta::read(&v, dir, &mut issues);
        (meta, issues.iter().map(|i| i.message.clone()).collect())
    }

    fn manifest() -> Value {
        json!({"name": "My Pack", "description": "d", "version": "0.1.0", "author": "a"})
    }

    #[test]
    fn ref_comes_from_ref_then_directory_then_name() {
        let mut m = manifest();
        m["ref"] = json!("explicit");
        assert_eq!(read(m, "dir").0.unwrap().reference, "explicit");
        assert_eq!(read(manifest(), "dir_ok").0.unwrap().reference, "dir_ok");
        let mut m = manifest();
        m["name"] = json!("from_name");
        assert_eq!(read(m, "Bad-Dir").0.unwrap().reference, "from_name");
        let (meta, msgs) = read(manifest(), "Bad-Dir");
        assert!(meta.is_none());
        assert!(msgs[0].contains("not a valid ref"));
    }

    #[test]
    fn versions_must_be_semver_and_numbers_are_text() {
        let mut m = manifest();
        m["version"] = json!(1.0);
        let (meta, msgs) = read(m, "p");
        assert!(meta.is_none());
        assert!(
            msgs[0].contains("`1.0` is not a semantic version"),
            "{msgs:?}"
        );
    }

    #[test]
    fn reserved_and_unknown_keys() {
        let mut m = manifest();
        m["ref"] = json!("_global");
        assert!(read(m, "p").0.is_none());
        let mut m = manifest();
        m["future"] = json!("arguments");
        let (meta, msgs) = read(m, "p");
        assert!(meta.is_some() && msgs.is_empty());
    }

    #[test]
    fn python_versions_are_quoted_strings() {
        let mut m = manifest();
        m["python_versions"] = json!([2, "3"]);
        let (_, msgs) = read(m, "p");
        assert!(msgs[0].contains("must be \"2\" or \"3\""), "{msgs:?}");
        let mut m = manifest();
        m["python_versions"] = json!(["2"]);
        let (meta, msgs) = read(m, "p");
        assert!(meta.is_some());
        assert!(msgs[0].contains("only supports Python 2"));
    }
}
