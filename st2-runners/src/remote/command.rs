//! The command lines the remote runners send (StackStorm's `ParamikoRemoteCommandAction` and
//! `ParamikoRemoteScriptAction`): `export K='v' … && cd <cwd> && <command>`, wrapped in
//! `sudo -E -- bash -c '…'` when asked.

use std::collections::BTreeMap;

use crate::command_line::{ShellLine, quote};

/// What goes around the command.
#[derive(Debug, Clone)]
pub(crate) struct Wrapping<'a> {
    /// Variables exported before the command, by name.
    pub env: &'a BTreeMap<String, String>,
    /// Where to `cd` first (no `cd` when `None`).
    pub cwd: Option<&'a str>,
    /// Run through `sudo -E`.
    pub sudo: bool,
    /// `sudo -S`: sudo reads its password from standard input (the runner writes it there).
    pub sudo_password: bool,
}

/// `export 'K'='v' …`: every name and value quoted, sorted by name (StackStorm's
/// `_get_env_vars_export_string`). `None` when there is nothing to export.
pub(crate) fn export_line(env: &BTreeMap<String, String>) -> Option<String> {
    if env.is_empty() {
        return None;
    }
    let mut line = String::from("export");
    for (k, v) in env {
        line.push(' ');
        line.push_str(&quote(k));
        line.push('=');
        line.push_str(&quote(v));
    }
    Some(line)
}

/// The full command line: `[export …] && [cd <cwd>] && <command>`, inside
/// `sudo [-S] -E -- bash -c <quoted>` when `sudo` is set.
pub(crate) fn full_command(command: &ShellLine, wrapping: &Wrapping<'_>) -> ShellLine {
    let mut parts = Vec::new();
    let mut env = wrapping.env.clone();
    if wrapping.sudo && wrapping.sudo_password {
        // As StackStorm: keep the shell from recording anything.
        env.insert("HISTFILE".to_owned(), "/dev/null".to_owned());
        env.insert("HISTSIZE".to_owned(), "0".to_owned());
    }
    if let Some(export) = export_line(&env) {
        parts.push(export);
    }
    if let Some(cwd) = wrapping.cwd {
        parts.push(format!("cd {}", quote(cwd)));
    }
    parts.push(command.as_str().to_owned());
    // Built from quoted words and the command, which is shell syntax on purpose.
    let inner = ShellLine::raw_script(parts.join(" && "));
    if !wrapping.sudo {
        return inner;
    }
    let mut line = ShellLine::new().word("sudo");
    if wrapping.sudo_password {
        line = line.word("-S");
    }
    line.word("-E")
        .word("--")
        .word("bash")
        .word("-c")
        .word(inner.as_str())
}

/// The exit code of [`install_script`] when the execution's directory could not be made (it
/// exists already, or its parent does not): nothing was created.
pub(crate) const MKDIR_FAILED: i64 = 17;

/// End of each file's here-document; base64 text never contains it.
const END_OF_FILE: &str = "ST2_END_OF_FILE";

/// A `sh` script (fed to `sh -s` on standard input) that creates `remote_dir` (mode 0700, new),
/// the directories `dirs` inside it and the files `files` (path, content, mode), their content
/// as base64 here-documents: one shell start for the whole copy.
pub(crate) fn install_script(
    remote_dir: &str,
    dirs: &[String],
    files: &[(String, Vec<u8>, u32)],
) -> String {
    use base64::Engine as _;
    let mut script = format!(
        "set -e\nmkdir -m 700 -- {} || exit {MKDIR_FAILED}\n",
        quote(remote_dir)
    );
    for dir in dirs {
        script.push_str(&format!("mkdir -p -- {}\n", quote(dir)));
    }
    for (path, data, mode) in files {
        let path = quote(path);
        script.push_str(&format!("base64 -d > {path} <<'{END_OF_FILE}'\n"));
        let encoded = base64::engine::general_purpose::STANDARD.encode(data);
        for line in encoded.as_bytes().chunks(76) {
            script.push_str(&String::from_utf8_lossy(line));
            script.push('\n');
        }
        script.push_str(&format!("{END_OF_FILE}\nchmod {mode:o} -- {path}\n"));
    }
    script
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn install_script_writes_every_file() {
        let script = install_script(
            "/tmp/x y",
            &["/tmp/x y/lib".to_owned()],
            &[("/tmp/x y/a.sh".to_owned(), b"echo 'hi'\n".to_vec(), 0o744)],
        );
        assert_eq!(
            script,
            "set -e\nmkdir -m 700 -- '/tmp/x y' || exit 17\nmkdir -p -- '/tmp/x y/lib'\n\
             base64 -d > '/tmp/x y/a.sh' <<'ST2_END_OF_FILE'\nZWNobyAnaGknCg==\n\
             ST2_END_OF_FILE\nchmod 744 -- '/tmp/x y/a.sh'\n"
        );
    }

    #[test]
    fn plain_and_sudo_lines() {
        let mut env = BTreeMap::new();
        env.insert("B".to_owned(), "it's".to_owned());
        env.insert("A".to_owned(), "$(id)".to_owned());
        let cmd = ShellLine::raw_script("echo \"$A\"");
        let plain = full_command(
            &cmd,
            &Wrapping {
                env: &env,
                cwd: Some("/tmp"),
                sudo: false,
                sudo_password: false,
            },
        );
        assert_eq!(
            plain.as_str(),
            "export A='$(id)' B='it'\"'\"'s' && cd /tmp && echo \"$A\""
        );
        let none = BTreeMap::new();
        let bare = full_command(
            &cmd,
            &Wrapping {
                env: &none,
                cwd: None,
                sudo: false,
                sudo_password: false,
            },
        );
        assert_eq!(bare.as_str(), "echo \"$A\"");
        let sudo = full_command(
            &ShellLine::raw_script("id"),
            &Wrapping {
                env: &none,
                cwd: Some("/my dir"),
                sudo: true,
                sudo_password: true,
            },
        );
        assert_eq!(
            sudo.as_str(),
            "sudo -S -E -- bash -c 'export HISTFILE=/dev/null HISTSIZE=0 && cd '\"'\"'/my dir'\"'\"' && id'"
        );
    }
}
