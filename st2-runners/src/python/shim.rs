//! The Python package pack code imports (`st2common`, `st2reactor`) and the entry point the
//! runner starts, embedded in the binary and written to a content-hashed directory.

use std::io;
use std::path::{Path, PathBuf};

/// Every file of the package: path relative to its root, content.
const FILES: &[(&str, &str)] = &[
    ("main.py", include_str!("../../python/main.py")),
    (
        "st2rs/__init__.py",
        include_str!("../../python/st2rs/__init__.py"),
    ),
    (
        "st2rs/action.py",
        include_str!("../../python/st2rs/action.py"),
    ),
    (
        "st2rs/channel.py",
        include_str!("../../python/st2rs/channel.py"),
    ),
    (
        "st2rs/datastore.py",
        include_str!("../../python/st2rs/datastore.py"),
    ),
    (
        "st2rs/loader.py",
        include_str!("../../python/st2rs/loader.py"),
    ),
    ("st2rs/logs.py", include_str!("../../python/st2rs/logs.py")),
    (
        "st2rs/sensor.py",
        include_str!("../../python/st2rs/sensor.py"),
    ),
    (
        "st2common/__init__.py",
        include_str!("../../python/st2common/__init__.py"),
    ),
    (
        "st2common/constants/__init__.py",
        include_str!("../../python/st2common/constants/__init__.py"),
    ),
    (
        "st2common/constants/keyvalue.py",
        include_str!("../../python/st2common/constants/keyvalue.py"),
    ),
    (
        "st2common/runners/__init__.py",
        include_str!("../../python/st2common/runners/__init__.py"),
    ),
    (
        "st2common/runners/base_action.py",
        include_str!("../../python/st2common/runners/base_action.py"),
    ),
    (
        "st2common/runners/utils.py",
        include_str!("../../python/st2common/runners/utils.py"),
    ),
    (
        "st2common/services/__init__.py",
        include_str!("../../python/st2common/services/__init__.py"),
    ),
    (
        "st2common/services/datastore.py",
        include_str!("../../python/st2common/services/datastore.py"),
    ),
    (
        "st2reactor/__init__.py",
        include_str!("../../python/st2reactor/__init__.py"),
    ),
    (
        "st2reactor/sensor/__init__.py",
        include_str!("../../python/st2reactor/sensor/__init__.py"),
    ),
    (
        "st2reactor/sensor/base.py",
        include_str!("../../python/st2reactor/sensor/base.py"),
    ),
];

/// The name of the entry point inside the package directory.
pub(crate) const ENTRY: &str = "main.py";

/// FNV-1a over every path and content: stable across builds and Rust versions.
fn content_hash() -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for (path, content) in FILES {
        for byte in path.bytes().chain([0]).chain(content.bytes()).chain([0]) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    hash
}

/// Write the package under `runtime_dir` (once per content: `python-<hash>`) and return its
/// directory. A half-written copy is never used: files go to a temporary directory renamed
/// into place.
///
/// # Errors
/// The directory cannot be created or written.
pub(crate) fn install(runtime_dir: &Path) -> io::Result<PathBuf> {
    let dir = runtime_dir.join(format!("python-{:016x}", content_hash()));
    if dir.join(ENTRY).is_file() {
        return Ok(dir);
    }
    std::fs::create_dir_all(runtime_dir)?;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or_default();
    let staging = runtime_dir.join(format!(
        ".python-{:016x}-{}-{nanos}",
        content_hash(),
        std::process::id()
    ));
    for (path, content) in FILES {
        let target = staging.join(path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(target, content)?;
    }
    if let Err(e) = std::fs::rename(&staging, &dir) {
        let _ = std::fs::remove_dir_all(&staging);
        // Another process installed the same content first.
        if !dir.join(ENTRY).is_file() {
            return Err(e);
        }
    }
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn installs_once_per_content() {
        let dir = tempfile::tempdir().expect("temp dir");
        let first = install(dir.path()).expect("install");
        assert!(first.join("st2common/runners/base_action.py").is_file());
        assert_eq!(install(dir.path()).expect("again"), first);
        let entries = std::fs::read_dir(dir.path()).expect("list").count();
        assert_eq!(entries, 1, "no staging directory left behind");
    }
}
