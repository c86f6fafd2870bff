//! Starting a command line's one program without a shell, when that is all bash would do.
//!
//! `bash -c 'date -u'` parses the line, finds `date` on `PATH` and, as the line is one simple
//! command, replaces itself with it (`execve`, no fork). The program then sees what bash left
//! behind: its arguments, the inherited environment with `PWD`, `SHLVL` and `_` set and an
//! `OLDPWD` that names no directory gone, and nothing else of bash. Starting bash costs more
//! than most such programs (a dynamically linked process, locale and terminal set-up, its
//! start-up files checks), so for a line that is plainly one command made of literal words a
//! [`Plan`] starts the program itself with exactly that environment. Anything else — a `$`, a glob, a redirection, an
//! operator, a builtin or keyword, a variable bash treats specially, a program not found
//! as bash would find it — has no plan, and the line goes to bash as before; so does a plan
//! whose program fails to start (a script without `#!`, a permission problem), which lets
//! bash produce its own error or run the script itself.
//!
//! `local-shell-script`'s line `chmod +x SCRIPT ; SCRIPT ARGS…` is planned too: bash forks
//! `chmod` and then replaces itself with the script, so the plan adds the execute bits itself
//! (as `chmod +x` does: those the umask allows) and starts the script; if that `chmod` fails,
//! bash runs the line and reports it.

use std::ffi::{OsStr, OsString};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

/// How to start a line's program directly.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Plan {
    /// Whether the program (a script) is to be made executable first (see
    /// [`add_execute_bits`]).
    pub make_executable: bool,
    /// The file to execute (as bash would find it).
    pub program: PathBuf,
    /// `argv[0]`: the command word as written.
    pub arg0: String,
    /// The other words.
    pub args: Vec<String>,
    /// Variables to set on top of the environment the shell would have inherited.
    pub set: Vec<(OsString, OsString)>,
    /// Variables bash removes (`OLDPWD` when it does not name a directory).
    pub remove: Vec<OsString>,
}

/// Bash 5's builtins (`compgen -b`) and reserved words (`compgen -k`): a command word that is
/// one of these is not looked up on `PATH`.
const BUILTINS: &[&str] = &[
    ".",
    ":",
    "[",
    "alias",
    "bg",
    "bind",
    "break",
    "builtin",
    "caller",
    "cd",
    "command",
    "compgen",
    "complete",
    "compopt",
    "continue",
    "declare",
    "dirs",
    "disown",
    "echo",
    "enable",
    "eval",
    "exec",
    "exit",
    "export",
    "false",
    "fc",
    "fg",
    "getopts",
    "hash",
    "help",
    "history",
    "jobs",
    "kill",
    "let",
    "local",
    "logout",
    "mapfile",
    "popd",
    "printf",
    "pushd",
    "pwd",
    "read",
    "readarray",
    "readonly",
    "return",
    "set",
    "shift",
    "shopt",
    "source",
    "suspend",
    "test",
    "times",
    "trap",
    "true",
    "type",
    "typeset",
    "ulimit",
    "umask",
    "unalias",
    "unset",
    "wait",
    "if",
    "then",
    "else",
    "elif",
    "fi",
    "case",
    "esac",
    "for",
    "select",
    "while",
    "until",
    "do",
    "done",
    "in",
    "function",
    "time",
    "{",
    "}",
    "!",
    "[[",
    "]]",
    "coproc",
];

/// Variables bash reads at start or rewrites for the programs it starts (`BASH*`, functions
/// exported as `BASH_FUNC_*`, `SHELLOPTS`, `IFS`, `PS4`, `RANDOM`, …): with any of them in the
/// environment the line goes to bash.
const SHELL_VARIABLES: &[&str] = &[
    "CDPATH",
    "COMP_WORDBREAKS",
    "DIRSTACK",
    "ENV",
    "EPOCHREALTIME",
    "EPOCHSECONDS",
    "EUID",
    "EXECIGNORE",
    "FUNCNAME",
    "GLOBIGNORE",
    "GROUPS",
    "HISTCMD",
    "HOSTTYPE",
    "IFS",
    "LINENO",
    "MACHTYPE",
    "OPTERR",
    "OPTIND",
    "OSTYPE",
    "PIPESTATUS",
    "POSIXLY_CORRECT",
    "PPID",
    "PS1",
    "PS2",
    "PS3",
    "PS4",
    "RANDOM",
    "SECONDS",
    "SHELLOPTS",
    "SRANDOM",
    "TMOUT",
    "UID",
];

/// The commands of `line` when it is simple commands of literal words separated by `;`:
/// unquoted words of `[A-Za-z0-9_@%+=:,./-]`, single-quoted text, and double-quoted text
/// without `$`, `` ` `` or `\`, separated by spaces or tabs. `None` for anything else
/// (including an empty command).
fn literal_commands(line: &str) -> Option<Vec<Vec<String>>> {
    let mut commands = Vec::new();
    let mut words = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            ' ' | '\t' => words.extend(word.take()),
            ';' => {
                words.extend(word.take());
                if words.is_empty() {
                    return None;
                }
                commands.push(std::mem::take(&mut words));
            }
            '\'' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next()? {
                        '\'' => break,
                        c => w.push(c),
                    }
                }
            }
            '"' => {
                let w = word.get_or_insert_with(String::new);
                loop {
                    match chars.next()? {
                        '"' => break,
                        '$' | '`' | '\\' => return None,
                        c => w.push(c),
                    }
                }
            }
            c if c.is_ascii_alphanumeric() || "_@%+=:,./-".contains(c) => {
                word.get_or_insert_with(String::new).push(c);
            }
            _ => return None,
        }
    }
    words.extend(word);
    if words.is_empty() {
        return None;
    }
    commands.push(words);
    Some(commands)
}

/// Whether the command word's builtin behaves exactly as the program of the same name does
/// with these arguments: `true`/`false` without `--help`/`--version`, `echo` without options
/// or backslashes.
fn builtin_matches_program(name: &str, args: &[String]) -> bool {
    match name {
        "true" | "false" => args.iter().all(|a| !a.starts_with("--")),
        "echo" => args
            .iter()
            .all(|a| !a.starts_with('-') && !a.contains('\\')),
        _ => false,
    }
}

/// What bash finds for `name` on `path`: the first executable regular file; `None` when
/// none is found or the search meets a directory that is not absolute (bash would search
/// relative to its working directory).
fn find_program(name: &str, path: &OsStr) -> Option<PathBuf> {
    for dir in std::env::split_paths(path) {
        if !dir.is_absolute() {
            return None;
        }
        let file = dir.join(name);
        if is_executable_file(&file) {
            return Some(file);
        }
    }
    None
}

fn is_executable_file(file: &Path) -> bool {
    std::fs::metadata(file).is_ok_and(|m| m.is_file())
        && nix::unistd::access(file, nix::unistd::AccessFlags::X_OK).is_ok()
}

/// `chmod +x file`: the execute bits the process's umask allows added to the file's mode.
///
/// # Errors
/// The file's mode could not be read or changed (bash then runs `chmod`, which says so).
pub(crate) fn add_execute_bits(file: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let umask = process_umask().ok_or_else(|| std::io::Error::other("umask unknown"))?;
    let mode = std::fs::metadata(file)?.permissions().mode() & 0o7777;
    let wanted = mode | (0o111 & !umask);
    if wanted != mode {
        std::fs::set_permissions(file, std::fs::Permissions::from_mode(wanted))?;
    }
    Ok(())
}

/// This process's umask, read once from `/proc/self/status` (reading it with `umask(2)`
/// would mean setting it, racing every thread that creates files).
fn process_umask() -> Option<u32> {
    static UMASK: std::sync::OnceLock<Option<u32>> = std::sync::OnceLock::new();
    *UMASK.get_or_init(|| {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let line = status.lines().find_map(|l| l.strip_prefix("Umask:"))?;
        u32::from_str_radix(line.trim(), 8).ok()
    })
}

/// Bash's `SHLVL` for a program it starts in place of itself: the inherited level (0 when
/// absent, not a number or negative). `None` when bash would warn that it is too high.
fn shell_level(inherited: Option<&OsStr>) -> Option<String> {
    let level = inherited
        .and_then(OsStr::to_str)
        .and_then(|s| s.trim().parse::<i64>().ok())
        .unwrap_or(0);
    (level < 999).then(|| level.max(0).to_string())
}

fn same_file(a: &Path, b: &Path) -> bool {
    match (std::fs::metadata(a), std::fs::metadata(b)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

/// A plan for `line` run in `cwd` (this process's working directory when `None`) with `env`
/// set on top of `inherited` (this process's environment), or `None` when bash must run it.
pub(crate) fn plan(
    line: &str,
    cwd: Option<&Path>,
    env: &[(String, String)],
    inherited: impl IntoIterator<Item = (OsString, OsString)>,
) -> Option<Plan> {
    let mut commands = literal_commands(line)?;
    let last = commands.pop()?;
    // `chmod +x SCRIPT ; SCRIPT …` (local-shell-script): bash runs `chmod`, then replaces
    // itself with the script.
    let chmod_first = match commands.as_slice() {
        [] => false,
        [chmod]
            if chmod.len() == 3
                && chmod[0] == "chmod"
                && chmod[1] == "+x"
                && last.first() == Some(&chmod[2]) =>
        {
            true
        }
        _ => return None,
    };
    let mut words = last.into_iter();
    let arg0 = words.next()?;
    let args: Vec<String> = words.collect();
    // An assignment, or a job spec (`%1` is `fg %1` to bash).
    if arg0.is_empty() || arg0.contains('=') || arg0.starts_with('%') {
        return None;
    }
    if BUILTINS.contains(&arg0.as_str()) && !builtin_matches_program(&arg0, &args) {
        return None;
    }
    let mut final_env: std::collections::HashMap<OsString, OsString> =
        inherited.into_iter().collect();
    final_env.extend(env.iter().map(|(k, v)| (k.into(), v.into())));
    let shell_variable = |name: &OsStr| {
        name.to_str()
            .is_none_or(|name| name.starts_with("BASH") || SHELL_VARIABLES.contains(&name))
    };
    if final_env.keys().any(|k| shell_variable(k)) {
        return None;
    }
    // Bash warns at start when it cannot set the locale `LC_ALL` names.
    if final_env
        .get(OsStr::new("LC_ALL"))
        .is_some_and(|v| !v.is_empty() && v != "C" && v != "POSIX")
    {
        return None;
    }
    let here = match cwd {
        Some(dir) if dir.is_absolute() => dir.to_path_buf(),
        Some(dir) => std::env::current_dir().ok()?.join(dir),
        None => std::env::current_dir().ok()?,
    };
    let program = if arg0.contains('/') {
        let file = if Path::new(&arg0).is_absolute() {
            PathBuf::from(&arg0)
        } else {
            here.join(&arg0)
        };
        // A script about to be made executable only has to be a file.
        let startable = if chmod_first {
            std::fs::metadata(&file).is_ok_and(|m| m.is_file())
        } else {
            is_executable_file(&file)
        };
        if !startable {
            return None;
        }
        file
    } else if chmod_first {
        return None;
    } else {
        find_program(&arg0, final_env.get(OsStr::new("PATH"))?)?
    };
    // The `chmod` bash would find, else bash reports it.
    if chmod_first {
        find_program("chmod", final_env.get(OsStr::new("PATH"))?)?;
    }
    let pwd = match final_env.get(OsStr::new("PWD")) {
        Some(pwd) if Path::new(pwd).is_absolute() && same_file(Path::new(pwd), &here) => {
            pwd.clone()
        }
        _ => here.canonicalize().ok()?.into_os_string(),
    };
    let shlvl = shell_level(final_env.get(OsStr::new("SHLVL")).map(OsString::as_os_str))?;
    let underscore = if arg0.contains('/') {
        OsString::from(&arg0)
    } else {
        program.clone().into_os_string()
    };
    // Bash keeps an inherited `OLDPWD` only when it names a directory.
    let old_pwd_is_dir = final_env
        .get(OsStr::new("OLDPWD"))
        .is_some_and(|old| !old.is_empty() && here.join(old).is_dir());
    Some(Plan {
        make_executable: chmod_first,
        program,
        arg0,
        args,
        set: vec![
            ("PWD".into(), pwd),
            ("SHLVL".into(), shlvl.into()),
            ("_".into(), underscore),
        ],
        remove: if old_pwd_is_dir {
            Vec::new()
        } else {
            vec!["OLDPWD".into()]
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(line: &str) -> Option<Vec<String>> {
        literal_commands(line).and_then(|mut c| (c.len() == 1).then(|| c.remove(0)))
    }

    #[test]
    fn literal_lines_split_into_words() {
        assert_eq!(words("true"), Some(vec!["true".to_owned()]));
        assert_eq!(
            words("  ls -la\t/tmp  "),
            Some(vec!["ls".into(), "-la".into(), "/tmp".into()])
        );
        assert_eq!(
            words("echo 'a b'\"c d\" --x='' \"\""),
            Some(vec![
                "echo".into(),
                "a bc d".into(),
                "--x=".into(),
                String::new()
            ])
        );
        assert_eq!(
            words("echo 'it''s; $HOME'"),
            Some(vec!["echo".into(), "its; $HOME".into()])
        );
    }

    #[test]
    fn shell_syntax_has_no_words() {
        for line in [
            "",
            "   ",
            "echo $HOME",
            "echo \"$HOME\"",
            "echo `id`",
            "echo \"a\\b\"",
            "echo a\\ b",
            "ls *",
            "ls ?",
            "ls [ab]",
            "echo ~",
            "echo {a,b}",
            "a;",
            "a && b",
            "a ; ; b",
            "; b",
            "a | b",
            "a > f",
            "a < f",
            "a &",
            "(a)",
            "a\nb",
            "# comment",
            "echo 'unterminated",
            "echo \"unterminated",
            "echo é",
            "x!",
        ] {
            assert_eq!(words(line), None, "{line:?}");
        }
    }

    fn env_of(pairs: &[(&str, &str)]) -> Vec<(OsString, OsString)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect()
    }

    #[test]
    fn plans_follow_bash() {
        let dir = tempfile::tempdir().expect("temp dir");
        let base = env_of(&[("PATH", "/usr/bin:/bin"), ("OLDPWD", "/x"), ("SHLVL", "2")]);
        let p = plan("true", Some(dir.path()), &[], base.clone()).expect("plan");
        assert_eq!(p.arg0, "true");
        assert!(p.program.ends_with("true"), "{p:?}");
        let set: std::collections::HashMap<_, _> = p.set.iter().cloned().collect();
        assert_eq!(set[OsStr::new("SHLVL")], "2");
        assert_eq!(
            Path::new(&set[OsStr::new("PWD")]),
            dir.path().canonicalize().expect("canonical")
        );
        assert_eq!(set[OsStr::new("_")], p.program.as_os_str());
        assert_eq!(p.remove, vec![OsString::from("OLDPWD")]);

        // Builtins and keywords stay with bash unless the program does the same.
        for line in [
            "cd /",
            "exit 3",
            "kill -TERM 1",
            "pwd",
            "printf x",
            "if",
            "true --help",
            "echo -n x",
            "echo 'a\\nb'",
            "X=1 env",
            "%1",
            "%true",
            "no-such-program-anywhere",
            "./missing",
        ] {
            assert_eq!(
                plan(line, Some(dir.path()), &[], base.clone()),
                None,
                "{line}"
            );
        }
        assert!(plan("echo hi there", None, &[], base.clone()).is_some());
        assert!(plan("false", None, &[], base.clone()).is_some());

        // Variables bash treats specially, an odd PATH or LC_ALL.
        for (k, v) in [
            ("BASH_ENV", "/x"),
            ("BASH_FUNC_f%%", "() { :; }"),
            ("IFS", ":"),
            ("SHELLOPTS", "xtrace"),
            ("LC_ALL", "xx_YY"),
            ("PATH", "bin:/usr/bin"),
            ("SHLVL", "999"),
        ] {
            let env = [(k.to_owned(), v.to_owned())];
            assert_eq!(plan("true", None, &env, base.clone()), None, "{k}={v}");
        }
        let no_path = env_of(&[("HOME", "/")]);
        assert_eq!(plan("true", None, &[], no_path), None);
    }

    #[test]
    fn a_script_made_executable_first_is_planned() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("temp dir");
        let script = dir.path().join("s.sh");
        std::fs::write(&script, "#!/bin/sh\n").expect("write");
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let base = env_of(&[("PATH", "/usr/bin:/bin")]);
        let text = script.to_string_lossy().into_owned();
        let p = plan(
            &format!("chmod +x {text} ; {text} a 'b c'"),
            None,
            &[],
            base.clone(),
        )
        .expect("planned");
        assert!(p.make_executable);
        assert_eq!(p.program, script);
        assert_eq!(p.args, ["a", "b c"]);
        let p = plan(
            "chmod +x ./s.sh ; ./s.sh",
            Some(dir.path()),
            &[],
            base.clone(),
        )
        .expect("planned");
        assert!(p.make_executable);
        assert_eq!(p.program, script);
        assert_eq!(p.arg0, "./s.sh");
        for line in [
            format!("chmod +x {text} ; /bin/true"),
            format!("chmod -x {text} ; {text}"),
            format!("chmod +x {text} {text} ; {text}"),
            format!("echo a ; {text}"),
            format!("chmod +x {text} ; {text} ; {text}"),
            "chmod +x s.sh ; s.sh".to_owned(),
        ] {
            assert_eq!(
                plan(&line, Some(dir.path()), &[], base.clone()),
                None,
                "{line}"
            );
        }
        // Without the execute bits and without the chmod, bash reports it.
        assert_eq!(plan(&text, None, &[], base.clone()), None);
        assert_eq!(
            plan(
                &format!("chmod +x {text} ; {text}"),
                None,
                &[],
                env_of(&[("PATH", "/nowhere")])
            ),
            None,
            "no chmod on PATH"
        );
    }

    #[test]
    fn execute_bits_follow_the_umask() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("f");
        std::fs::write(&file, "").expect("write");
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o640)).expect("chmod");
        add_execute_bits(&file).expect("chmod +x");
        let umask = process_umask().expect("umask");
        let mode = std::fs::metadata(&file).expect("stat").permissions().mode() & 0o7777;
        assert_eq!(mode, 0o640 | (0o111 & !umask));
        assert!(add_execute_bits(&dir.path().join("missing")).is_err());
    }

    #[test]
    fn shell_levels() {
        for (inherited, level) in [
            (None, Some("0")),
            (Some("3"), Some("3")),
            (Some(" 007 "), Some("7")),
            (Some("-5"), Some("0")),
            (Some("abc"), Some("0")),
            (Some("998"), Some("998")),
            (Some("999"), None),
        ] {
            assert_eq!(
                shell_level(inherited.map(OsStr::new)).as_deref(),
                level,
                "{inherited:?}"
            );
        }
    }
}
