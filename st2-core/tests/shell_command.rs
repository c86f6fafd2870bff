//! Contract: a value rendered into a shell command by `render_shell_command` reaches `bash -c`
//! as text in every quoting context and is never executed as shell syntax.

use std::path::Path;
use std::process::Command;

use proptest::prelude::*;
use serde_json::json;
use st2_core::expr::jinja::{Jinja, JinjaConfig, RenderContext};
use st2_core::expr::shell::{ShellCommand, ShellRenderError, render_shell_command};

fn render(template: &str, value: &str) -> Result<ShellCommand, ShellRenderError> {
    let jinja = Jinja::new(JinjaConfig::default());
    let vars = json!({ "v": value })
        .as_object()
        .cloned()
        .unwrap_or_default();
    render_shell_command(&jinja, template, &RenderContext::new(vars))
}

/// Run the command's script with its values in the environment, in `dir`; its stdout.
fn run(cmd: &ShellCommand, dir: &Path) -> String {
    let out = Command::new("bash")
        .arg("-c")
        .arg(&cmd.script)
        .envs(&cmd.values)
        .current_dir(dir)
        .output()
        .expect("bash runs");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Shell-significant fragments, glued together into values.
fn fragment() -> impl Strategy<Value = String> {
    prop_oneof![
        Just("; touch pwned".to_owned()),
        Just("$(touch pwned)".to_owned()),
        Just("`touch pwned`".to_owned()),
        Just("' ; touch pwned ; '".to_owned()),
        Just("\" ; touch pwned ; \"".to_owned()),
        Just("\n touch pwned\n".to_owned()),
        Just("EOF".to_owned()),
        Just("\nEOF\ntouch pwned\n".to_owned()),
        Just("${IFS}".to_owned()),
        Just("$((1+1))".to_owned()),
        Just("\\".to_owned()),
        Just("'".to_owned()),
        Just("\"".to_owned()),
        Just("$".to_owned()),
        Just("!".to_owned()),
        Just("{a,b}".to_owned()),
        Just("~".to_owned()),
        "[a-zA-Z0-9 _./=:-]{0,6}",
        any::<char>()
            .prop_filter("no NUL", |c| *c != '\0')
            .prop_map(String::from),
    ]
}

fn value() -> impl Strategy<Value = String> {
    prop::collection::vec(fragment(), 0..6).prop_map(|parts| parts.concat())
}

/// Quoting contexts whose output is exactly the value.
const EXACT: &[&str] = &[
    "printf '%s' \"{{ v }}\"",
    "printf '%s' '{{ v }}'",
    "printf '%s' $'{{ v }}'",
    "printf '%s' \"$(printf '%s' '{{ v }}')\"",
    "printf '%s' \"$(printf '%s' \"{{ v }}\")\"",
    "cat <<EOF | head -c -1\n{{ v }}\nEOF",
    "x='{{ v }}'; printf '%s' \"$x\"",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn values_print_as_text(v in value()) {
        let dir = tempfile::tempdir().expect("temp dir");
        for template in EXACT {
            let cmd = render(template, &v).expect("renders");
            let out = run(&cmd, dir.path());
            // Command substitution drops trailing newlines; compare what bash keeps.
            let expected = if template.contains("$(") { v.trim_end_matches('\n') } else { &v };
            prop_assert_eq!(&out, expected, "template {:?} script {:?}", template, cmd.script);
        }
        // Unquoted: split into words (and globbed, here in an empty directory), never run.
        let cmd = render("printf '<%s>' {{ v }} x", &v).expect("renders");
        let _ = run(&cmd, dir.path());
        // A quoted here-document takes the text itself, unless it would end the document.
        match render("cat <<'EOF'\n{{ v }}\nEOF\n", &v) {
            Ok(cmd) => prop_assert_eq!(run(&cmd, dir.path()), format!("{v}\n")),
            Err(e) => {
                let ends_early = matches!(e, ShellRenderError::HeredocTerminator { .. });
                prop_assert!(ends_early, "unexpected error {:?}", e);
            }
        }
        prop_assert!(!dir.path().join("pwned").exists(), "a value was executed: {:?}", v);
    }

    #[test]
    fn unquoted_values_split_into_words(v in "[a-zA-Z0-9 \\t\\n;&|<>()$`'\"\\\\-]{0,24}") {
        let dir = tempfile::tempdir().expect("temp dir");
        let cmd = render("printf '<%s>' {{ v }}", &v).expect("renders");
        let words: String = v
            .split([' ', '\t', '\n'])
            .filter(|w| !w.is_empty())
            .map(|w| format!("<{w}>"))
            .collect();
        let expected = if words.is_empty() { "<>".to_owned() } else { words };
        prop_assert_eq!(run(&cmd, dir.path()), expected);
    }
}

#[test]
fn injection_cases_print_as_text() {
    let dir = tempfile::tempdir().expect("temp dir");
    for v in [
        "\"; touch pwned",
        "$(touch pwned)",
        "`touch pwned`",
        "'; touch pwned; '",
        "a\ntouch pwned",
        "*",
    ] {
        let cmd = render("echo \"{{ v }}\"", v).expect("renders");
        assert_eq!(run(&cmd, dir.path()), format!("{v}\n"));
        assert_eq!(cmd.display, format!("echo \"{v}\""));
    }
    assert!(!dir.path().join("pwned").exists());
}

#[test]
fn shell_raw_injects_on_purpose() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cmd = render("echo hi {{ v | shell_raw }}", "; touch made").expect("renders");
    assert_eq!(cmd.script, "echo hi ; touch made");
    assert!(cmd.values.is_empty());
    run(&cmd, dir.path());
    assert!(dir.path().join("made").exists());
}
