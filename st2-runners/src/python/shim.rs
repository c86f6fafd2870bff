//! The Python package pack code imports (`st2common`, `st2reactor`) and the entry point the
//! runner starts, embedded in the binary and written to a content-hashed directory.

use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt};
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

/// Refuse a directory another user owns or may write to.
fn check_private(dir: &Path) -> io::Result<()> {
    let meta = std::fs::metadata(dir)?;
    let me = nix::unistd::geteuid().as_raw();
    if meta.uid() != me || meta.mode() & 0o022 != 0 {
        return Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            format!(
                "{} must belong to uid {me} and not be writable by others",
                dir.display()
            ),
        ));
    }
    Ok(())
}

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
    if !runtime_dir.exists() {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(runtime_dir)?;
    }
    // The code in it runs as this user: someone else's directory (say, planted in /tmp)
    // is refused.
    check_private(runtime_dir)?;
    if dir.join(ENTRY).is_file() {
        check_private(&dir)?;
        return Ok(dir);
    }
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
    // Whatever the umask: only this user writes the package.
    for dir in std::iter::once(staging.clone()).chain(
        FILES
            .iter()
            .filter_map(|(path, _)| Path::new(path).parent())
            .filter(|p| !p.as_os_str().is_empty())
            .map(|p| staging.join(p)),
    ) {
        std::fs::set_permissions(&dir, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
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

    #[test]
    fn a_directory_others_may_write_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("temp dir");
        let shared = dir.path().join("shared");
        std::fs::create_dir(&shared).expect("mkdir");
        std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        let error = install(&shared).expect_err("refused");
        assert_eq!(error.kind(), io::ErrorKind::PermissionDenied);
        assert!(
            error.to_string().contains("not be writable by others"),
            "{error}"
        );
    }
}
