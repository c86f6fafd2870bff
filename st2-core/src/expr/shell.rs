//! Shell commands from templates, with the values passed beside the command instead of inside
//! it.
//!
//! StackStorm renders a `cmd` such as `echo "{{ message }}"` to text and hands that text to a
//! shell, so a message of `"; touch /tmp/x` or `$(id)` becomes shell syntax. Here every
//! `{{ … }}` output refers to an environment variable holding its text instead:
//!
//! | where the output stands | what the script holds |
//! |---|---|
//! | unquoted (also in `$( )`, backticks, `${ }`) | `${ST2_V_n}` — word splitting and globbing apply, as they do to StackStorm's plain text, but the value is never parsed as shell syntax |
//! | inside `"…"` or `$"…"` | `${ST2_V_n}` |
//! | inside `'…'` | `'"${ST2_V_n}"'` (close, insert, reopen) |
//! | inside `$'…'` | `'"${ST2_V_n}"$'` (close, insert, reopen) |
//! | in an unquoted here-document body (`<<EOF`) | `${ST2_V_n}` (the body expands variables but does not re-parse their values) |
//! | in a quoted here-document body (`<<'EOF'`) | the text itself, since nothing expands there; refused if it would end the document early |
//! | in an arithmetic expansion `$(( ))` / `(( ))` | `${ST2_V_n}`, only for an integer: bash evaluates arithmetic text, and `a[$(cmd)]` runs `cmd` |
//! | in a here-document delimiter word | refused |
//!
//! A `$` directly before an output becomes a literal `$` (StackStorm would have expanded the
//! value as a variable name). A backslash directly before an output is dropped where it would
//! have escaped the value's first character unquoted, and kept as a literal backslash inside
//! double quotes, `$'…'` and here-documents.
//!
//! `{{ flags | shell_raw }}` inserts text as shell syntax on purpose, as StackStorm does for
//! every output. Values holding NUL are refused: environment variables cannot hold it.
//!
//! ```
//! use serde_json::json;
//! use st2_core::expr::jinja::{Jinja, JinjaConfig, RenderContext};
//! use st2_core::expr::shell::render_shell_command;
//!
//! let jinja = Jinja::new(JinjaConfig::default());
//! let vars = json!({"message": "$(id)"}).as_object().cloned().unwrap_or_default();
//! let cmd = render_shell_command(&jinja, r#"echo "{{ message }}""#, &RenderContext::new(vars))
//!     .expect("renders");
//! assert_eq!(cmd.script, r#"echo "${ST2_V_0}""#);
//! assert_eq!(cmd.values["ST2_V_0"], "$(id)");
//! assert_eq!(cmd.display, r#"echo "$(id)""#);
//! ```

use std::collections::BTreeMap;

use super::ExprError;
use super::jinja::shell::parse_marker;
use super::jinja::{Jinja, RenderContext};

/// The prefix of the environment variables holding a command's values (`ST2_V_0`, `ST2_V_1`, …).
pub const VALUE_PREFIX: &str = "ST2_V_";

/// A rendered shell command.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
pub struct ShellCommand {
    /// The command to run (with `bash -c`), referring to its values by variable name.
    pub script: String,
    /// The variables the script refers to: name → text. They go into the command's
    /// environment.
    pub values: BTreeMap<String, String>,
    /// The command as StackStorm would have rendered it (values inserted as plain text), for
    /// showing, never for running.
    pub display: String,
}

impl ShellCommand {
    /// A command written as shell syntax, with no values (a `cmd` that is not a template).
    pub fn raw(script: impl Into<String>) -> Self {
        let script = script.into();
        ShellCommand {
            display: script.clone(),
            script,
            values: BTreeMap::new(),
        }
    }
}

/// Why a shell command could not be rendered safely.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShellRenderError {
    /// The template failed to render (syntax, undefined name, failing filter, a value holding
    /// NUL).
    #[error("{0}")]
    Render(#[from] ExprError),
    /// The template text itself holds NUL.
    #[error("the command template contains a NUL byte")]
    NulInTemplate,
    /// A value stands inside an arithmetic expansion and is not an integer.
    #[error(
        "value {value:?} is used inside an arithmetic expression and is not an integer \
         (bash would evaluate it as code)"
    )]
    Arithmetic {
        /// The value.
        value: String,
    },
    /// A value stands in a here-document's delimiter word.
    #[error("a template value cannot be part of a here-document delimiter")]
    HeredocDelimiter,
    /// A value in a quoted here-document holds a line that would end the document early.
    #[error("a value would end the quoted here-document `{delimiter}` early")]
    HeredocTerminator {
        /// The delimiter.
        delimiter: String,
    },
}

/// Render `template` for `bash -c`: each `{{ … }}` output becomes a reference to an environment
/// variable (see the module documentation for each quoting context).
///
/// # Errors
/// [`ShellRenderError`]: the template fails to render, holds NUL, or a value stands where it
/// cannot be passed safely.
pub fn render_shell_command(
    jinja: &Jinja,
    template: &str,
    ctx: &RenderContext,
) -> Result<ShellCommand, ShellRenderError> {
    if template.contains('\0') {
        return Err(ShellRenderError::NulInTemplate);
    }
    let (text, values) = jinja.render_shell(template, ctx)?;
    let display = expand(&text, &values);
    let mut lexer = Lexer::new(&text, &values);
    lexer.run()?;
    let script = String::from_utf8_lossy(&lexer.out).into_owned();
    let values = lexer
        .used
        .into_iter()
        .map(|i| (var_name(i), values[i].clone()))
        .collect();
    Ok(ShellCommand {
        script,
        values,
        display,
    })
}

fn var_name(index: usize) -> String {
    format!("{VALUE_PREFIX}{index}")
}

/// Replace every marker by its value's text.
fn expand(text: &str, values: &[String]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('\0') {
        out.push_str(&rest[..at]);
        match parse_marker(&rest[at..]) {
            Some((index, len)) => {
                out.push_str(values.get(index).map(String::as_str).unwrap_or_default());
                rest = &rest[at + len..];
            }
            None => rest = &rest[at + 1..],
        }
    }
    out.push_str(rest);
    out
}

/// A quoting context of the POSIX shell (with bash's `$'…'`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ctx {
    /// Top level, unquoted.
    Plain,
    /// `"…"` or `$"…"`.
    Double,
    /// `'…'`.
    Single,
    /// `$'…'`.
    Ansi,
    /// `$( … )`, with the depth of plain parentheses inside.
    Command(u32),
    /// `` `…` ``.
    Backtick,
    /// `${ … }`, with the depth of braces inside.
    Brace(u32),
    /// `$(( … ))` or `(( … ))`, with the depth of parentheses inside.
    Arith(u32),
    /// The body of an unquoted here-document.
    HereDoc,
}

/// A here-document whose body starts at the next newline.
#[derive(Debug, Clone)]
struct Heredoc {
    delimiter: String,
    strip_tabs: bool,
    quoted: bool,
}

struct Lexer<'a> {
    src: &'a [u8],
    text: &'a str,
    values: &'a [String],
    pos: usize,
    out: Vec<u8>,
    stack: Vec<Ctx>,
    pending: Vec<Heredoc>,
    active: Option<Heredoc>,
    used: std::collections::BTreeSet<usize>,
}

impl<'a> Lexer<'a> {
    fn new(text: &'a str, values: &'a [String]) -> Self {
        Lexer {
            src: text.as_bytes(),
            text,
            values,
            pos: 0,
            out: Vec::with_capacity(text.len() + 16),
            stack: vec![Ctx::Plain],
            pending: Vec::new(),
            active: None,
            used: std::collections::BTreeSet::new(),
        }
    }

    fn top(&self) -> Ctx {
        self.stack.last().copied().unwrap_or(Ctx::Plain)
    }

    fn pop(&mut self) {
        if self.stack.len() > 1 {
            self.stack.pop();
        }
    }

    fn set_top(&mut self, ctx: Ctx) {
        if let Some(top) = self.stack.last_mut() {
            *top = ctx;
        }
    }

    fn peek(&self, ahead: usize) -> Option<u8> {
        self.src.get(self.pos + ahead).copied()
    }

    fn copy(&mut self, n: usize) {
        let end = (self.pos + n).min(self.src.len());
        self.out.extend_from_slice(&self.src[self.pos..end]);
        self.pos = end;
    }

    fn emit(&mut self, s: &str) {
        self.out.extend_from_slice(s.as_bytes());
    }

    /// Consume the marker at `pos`: its value's index.
    fn take_marker(&mut self) -> usize {
        match parse_marker(&self.text[self.pos..]) {
            Some((index, len)) => {
                self.pos += len;
                index
            }
            None => {
                // Cannot happen (the recorder refuses stray NUL); skip the byte.
                self.pos += 1;
                usize::MAX
            }
        }
    }

    fn value(&self, index: usize) -> &str {
        self.values
            .get(index)
            .map(String::as_str)
            .unwrap_or_default()
    }

    /// `${ST2_V_n}` for value `index`.
    fn reference(&mut self, index: usize) -> String {
        if index < self.values.len() {
            self.used.insert(index);
        }
        format!("${{{}}}", var_name(index))
    }

    fn at_word_start(&self) -> bool {
        self.pos == 0
            || matches!(
                self.src[self.pos - 1],
                b' ' | b'\t' | b'\n' | b';' | b'&' | b'|' | b'(' | b')' | b'<' | b'>'
            )
    }

    fn run(&mut self) -> Result<(), ShellRenderError> {
        while self.pos < self.src.len() {
            match self.top() {
                Ctx::Plain | Ctx::Command(_) | Ctx::Backtick | Ctx::Brace(_) => self.unquoted()?,
                Ctx::Double => self.double(),
                Ctx::Single => self.single(),
                Ctx::Ansi => self.ansi(),
                Ctx::Arith(_) => self.arith()?,
                Ctx::HereDoc => self.heredoc_body()?,
            }
        }
        Ok(())
    }

    /// `$` in a context where it expands: a literal `$` before a value, otherwise the start of
    /// an expansion.
    fn dollar(&mut self) {
        match self.peek(1) {
            Some(0) => {
                self.emit("\\$");
                self.pos += 1;
            }
            Some(b'(') if self.peek(2) == Some(b'(') => {
                self.stack.push(Ctx::Arith(0));
                self.copy(3);
            }
            Some(b'(') => {
                self.stack.push(Ctx::Command(0));
                self.copy(2);
            }
            Some(b'{') => {
                self.stack.push(Ctx::Brace(0));
                self.copy(2);
            }
            _ => self.copy(1),
        }
    }

    fn unquoted(&mut self) -> Result<(), ShellRenderError> {
        let top = self.top();
        let c = self.src[self.pos];
        match c {
            0 => {
                let index = self.take_marker();
                let r = self.reference(index);
                self.emit(&r);
            }
            b'\\' => {
                if self.peek(1) == Some(0) {
                    // It would have escaped the value's first character; the value is never
                    // parsed here anyway.
                    self.pos += 1;
                } else {
                    self.copy(2);
                }
            }
            b'\'' => {
                self.stack.push(Ctx::Single);
                self.copy(1);
            }
            b'"' => {
                self.stack.push(Ctx::Double);
                self.copy(1);
            }
            b'`' => {
                if top == Ctx::Backtick {
                    self.pop();
                } else {
                    self.stack.push(Ctx::Backtick);
                }
                self.copy(1);
            }
            b'$' => match self.peek(1) {
                Some(b'\'') => {
                    self.stack.push(Ctx::Ansi);
                    self.copy(2);
                }
                Some(b'"') => {
                    self.stack.push(Ctx::Double);
                    self.copy(2);
                }
                _ => self.dollar(),
            },
            b'(' => {
                if self.peek(1) == Some(b'(') && !matches!(top, Ctx::Brace(_)) {
                    self.stack.push(Ctx::Arith(0));
                    self.copy(2);
                } else {
                    if let Ctx::Command(d) = top {
                        self.set_top(Ctx::Command(d + 1));
                    }
                    self.copy(1);
                }
            }
            b')' => {
                match top {
                    Ctx::Command(0) => self.pop(),
                    Ctx::Command(d) => self.set_top(Ctx::Command(d - 1)),
                    _ => {}
                }
                self.copy(1);
            }
            b'{' => {
                if let Ctx::Brace(d) = top {
                    self.set_top(Ctx::Brace(d + 1));
                }
                self.copy(1);
            }
            b'}' => {
                match top {
                    Ctx::Brace(0) => self.pop(),
                    Ctx::Brace(d) => self.set_top(Ctx::Brace(d - 1)),
                    _ => {}
                }
                self.copy(1);
            }
            b'#' if self.at_word_start() && !matches!(top, Ctx::Brace(_)) => self.comment(),
            b'<' if self.peek(1) == Some(b'<') && !matches!(top, Ctx::Brace(_)) => {
                if self.peek(2) == Some(b'<') {
                    self.copy(3);
                } else {
                    self.heredoc_operator()?;
                }
            }
            b'\n' => {
                self.copy(1);
                if matches!(top, Ctx::Plain | Ctx::Command(_) | Ctx::Backtick) {
                    self.start_heredocs()?;
                }
            }
            _ => self.copy(1),
        }
        Ok(())
    }

    fn double(&mut self) {
        match self.src[self.pos] {
            0 => {
                let index = self.take_marker();
                let r = self.reference(index);
                self.emit(&r);
            }
            b'\\' => {
                if self.peek(1) == Some(0) {
                    self.emit("\\\\");
                    self.pos += 1;
                } else {
                    self.copy(2);
                }
            }
            b'"' => {
                self.pop();
                self.copy(1);
            }
            b'`' => {
                self.stack.push(Ctx::Backtick);
                self.copy(1);
            }
            b'$' => self.dollar(),
            _ => self.copy(1),
        }
    }

    fn single(&mut self) {
        match self.src[self.pos] {
            0 => {
                let index = self.take_marker();
                let r = self.reference(index);
                self.emit(&format!("'\"{r}\"'"));
            }
            b'\'' => {
                self.pop();
                self.copy(1);
            }
            _ => self.copy(1),
        }
    }

    fn ansi(&mut self) {
        match self.src[self.pos] {
            0 => {
                let index = self.take_marker();
                let r = self.reference(index);
                self.emit(&format!("'\"{r}\"$'"));
            }
            b'\\' => {
                if self.peek(1) == Some(0) {
                    self.emit("\\\\");
                    self.pos += 1;
                } else {
                    self.copy(2);
                }
            }
            b'\'' => {
                self.pop();
                self.copy(1);
            }
            _ => self.copy(1),
        }
    }

    fn arith(&mut self) -> Result<(), ShellRenderError> {
        let top = self.top();
        match self.src[self.pos] {
            0 => {
                let index = self.take_marker();
                let value = self.value(index).to_owned();
                if !is_integer(&value) {
                    return Err(ShellRenderError::Arithmetic { value });
                }
                let r = self.reference(index);
                self.emit(&r);
            }
            b'$' => self.dollar(),
            b'(' => {
                if let Ctx::Arith(d) = top {
                    self.set_top(Ctx::Arith(d + 1));
                }
                self.copy(1);
            }
            b')' => match top {
                Ctx::Arith(0) if self.peek(1) == Some(b')') => {
                    self.pop();
                    self.copy(2);
                }
                Ctx::Arith(d) if d > 0 => {
                    self.set_top(Ctx::Arith(d - 1));
                    self.copy(1);
                }
                _ => self.copy(1),
            },
            b'\\' => {
                if self.peek(1) == Some(0) {
                    self.pos += 1;
                } else {
                    self.copy(2);
                }
            }
            _ => self.copy(1),
        }
        Ok(())
    }

    /// A comment, up to (not including) the end of the line. Values in it stay references.
    fn comment(&mut self) {
        while let Some(c) = self.peek(0) {
            match c {
                b'\n' => return,
                0 => {
                    let index = self.take_marker();
                    let r = self.reference(index);
                    self.emit(&r);
                }
                _ => self.copy(1),
            }
        }
    }

    /// `<<` or `<<-` and the delimiter word; the body starts at the next newline.
    fn heredoc_operator(&mut self) -> Result<(), ShellRenderError> {
        self.copy(2);
        let strip_tabs = self.peek(0) == Some(b'-');
        if strip_tabs {
            self.copy(1);
        }
        while matches!(self.peek(0), Some(b' ' | b'\t')) {
            self.copy(1);
        }
        let mut delimiter = Vec::new();
        let mut quoted = false;
        while let Some(c) = self.peek(0) {
            match c {
                0 => return Err(ShellRenderError::HeredocDelimiter),
                b' ' | b'\t' | b'\n' | b';' | b'&' | b'|' | b'<' | b'>' | b'(' | b')' => break,
                b'\'' | b'"' => {
                    quoted = true;
                    self.copy(1);
                    while let Some(q) = self.peek(0) {
                        if q == 0 {
                            return Err(ShellRenderError::HeredocDelimiter);
                        }
                        if q == c {
                            break;
                        }
                        if c == b'"' && q == b'\\' {
                            if let Some(n) = self.peek(1) {
                                delimiter.push(n);
                            }
                            self.copy(2);
                            continue;
                        }
                        delimiter.push(q);
                        self.copy(1);
                    }
                    self.copy(1);
                }
                b'\\' => {
                    quoted = true;
                    if self.peek(1) == Some(0) {
                        return Err(ShellRenderError::HeredocDelimiter);
                    }
                    if let Some(n) = self.peek(1) {
                        delimiter.push(n);
                    }
                    self.copy(2);
                }
                b'$' if matches!(self.peek(1), Some(b'\'' | b'"')) => {
                    quoted = true;
                    self.copy(1);
                }
                _ => {
                    delimiter.push(c);
                    self.copy(1);
                }
            }
        }
        if !delimiter.is_empty() || quoted {
            self.pending.push(Heredoc {
                delimiter: String::from_utf8_lossy(&delimiter).into_owned(),
                strip_tabs,
                quoted,
            });
        }
        Ok(())
    }

    /// Start the bodies of the pending here-documents (called right after a newline).
    fn start_heredocs(&mut self) -> Result<(), ShellRenderError> {
        while !self.pending.is_empty() {
            let doc = self.pending.remove(0);
            if doc.quoted {
                self.quoted_heredoc(&doc)?;
            } else {
                self.active = Some(doc);
                self.stack.push(Ctx::HereDoc);
                return Ok(());
            }
        }
        Ok(())
    }

    /// The body of a quoted here-document: nothing expands, so values go in as text, unless a
    /// line of theirs would end the document.
    fn quoted_heredoc(&mut self, doc: &Heredoc) -> Result<(), ShellRenderError> {
        while self.pos < self.src.len() {
            let eol = self.text[self.pos..]
                .find('\n')
                .map_or(self.src.len(), |i| self.pos + i);
            let source_line = &self.text[self.pos..eol];
            let has_value = source_line.contains('\0');
            let line = expand(source_line, self.values);
            for physical in line.split('\n') {
                let candidate = if doc.strip_tabs {
                    physical.trim_start_matches('\t')
                } else {
                    physical
                };
                if candidate == doc.delimiter {
                    if has_value {
                        return Err(ShellRenderError::HeredocTerminator {
                            delimiter: doc.delimiter.clone(),
                        });
                    }
                    self.copy(eol - self.pos + 1);
                    return Ok(());
                }
            }
            self.emit(&line);
            self.pos = eol;
            self.copy(1);
        }
        Ok(())
    }

    /// The body of an unquoted here-document: like double quotes without `"`, ending at the
    /// delimiter line.
    fn heredoc_body(&mut self) -> Result<(), ShellRenderError> {
        let line_start = self.pos == 0 || self.src[self.pos - 1] == b'\n';
        if line_start && let Some(doc) = self.active.clone() {
            let eol = self.text[self.pos..]
                .find('\n')
                .map_or(self.src.len(), |i| self.pos + i);
            let line = &self.text[self.pos..eol];
            let candidate = if doc.strip_tabs {
                line.trim_start_matches('\t')
            } else {
                line
            };
            if !line.contains('\0') && candidate == doc.delimiter {
                self.copy(eol - self.pos + 1);
                self.active = None;
                self.pop();
                return self.start_heredocs();
            }
        }
        match self.src[self.pos] {
            0 => {
                let index = self.take_marker();
                let r = self.reference(index);
                self.emit(&r);
            }
            b'\\' => {
                if self.peek(1) == Some(0) {
                    self.emit("\\\\");
                    self.pos += 1;
                } else {
                    self.copy(2);
                }
            }
            b'`' => {
                self.stack.push(Ctx::Backtick);
                self.copy(1);
            }
            b'$' => self.dollar(),
            _ => self.copy(1),
        }
        Ok(())
    }
}

fn is_integer(value: &str) -> bool {
    let v = value.trim();
    let digits = v.strip_prefix(['+', '-']).unwrap_or(v);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    fn render(template: &str, vars: Value) -> Result<ShellCommand, ShellRenderError> {
        let jinja = Jinja::new(Default::default());
        let vars = vars.as_object().cloned().unwrap_or_default();
        render_shell_command(&jinja, template, &RenderContext::new(vars))
    }

    fn script(template: &str, v: &str) -> String {
        render(template, json!({ "v": v })).expect("renders").script
    }

    #[test]
    fn contexts() {
        assert_eq!(script("echo {{ v }}", "x"), "echo ${ST2_V_0}");
        assert_eq!(script("echo \"a{{ v }}b\"", "x"), "echo \"a${ST2_V_0}b\"");
        assert_eq!(script("echo 'a{{ v }}b'", "x"), "echo 'a'\"${ST2_V_0}\"'b'");
        assert_eq!(
            script("echo $'a{{ v }}b'", "x"),
            "echo $'a'\"${ST2_V_0}\"$'b'"
        );
        assert_eq!(script("echo $({{ v }})", "x"), "echo $(${ST2_V_0})");
        assert_eq!(
            script("echo \"$(echo '{{ v }}')\"", "x"),
            "echo \"$(echo ''\"${ST2_V_0}\"'')\""
        );
        assert_eq!(script("echo ${{ v }}", "x"), "echo \\$${ST2_V_0}");
        assert_eq!(script("echo \\{{ v }}", "x"), "echo ${ST2_V_0}");
        assert_eq!(script("echo \"\\{{ v }}\"", "x"), "echo \"\\\\${ST2_V_0}\"");
        assert_eq!(
            script("echo $(( {{ v }} + 1 ))", "41"),
            "echo $(( ${ST2_V_0} + 1 ))"
        );
        assert!(matches!(
            render("echo $(( {{ v }} ))", json!({"v": "a[$(id)]"})),
            Err(ShellRenderError::Arithmetic { .. })
        ));
        assert_eq!(script("echo # {{ v }}", "x"), "echo # ${ST2_V_0}");
        assert_eq!(script("echo a#{{ v }}", "x"), "echo a#${ST2_V_0}");
    }

    #[test]
    fn heredocs() {
        assert_eq!(
            script("cat <<EOF\n{{ v }}\nEOF\necho {{ v }}", "x"),
            "cat <<EOF\n${ST2_V_0}\nEOF\necho ${ST2_V_1}"
        );
        assert_eq!(
            script("cat <<'EOF'\na'{{ v }}\nEOF\necho '{{ v }}'", "$(id)"),
            "cat <<'EOF'\na'$(id)\nEOF\necho ''\"${ST2_V_1}\"''"
        );
        assert!(matches!(
            render("cat <<'EOF'\n{{ v }}\nEOF", json!({"v": "a\nEOF\nid"})),
            Err(ShellRenderError::HeredocTerminator { .. })
        ));
        assert!(matches!(
            render("cat <<{{ v }}\nx\n", json!({"v": "E"})),
            Err(ShellRenderError::HeredocDelimiter)
        ));
        assert_eq!(
            script("cat <<-\"E\"\n\t{{ v }}\n\tE\necho {{ v }}", "x"),
            "cat <<-\"E\"\n\tx\n\tE\necho ${ST2_V_1}"
        );
        assert_eq!(script("cat <<< {{ v }}", "x"), "cat <<< ${ST2_V_0}");
    }

    #[test]
    fn raw_values_and_display() {
        let cmd = render(
            "ls {{ flags | shell_raw }} \"{{ dir }}\"",
            json!({"flags": "-l -a", "dir": "a b"}),
        )
        .expect("renders");
        assert_eq!(cmd.script, "ls -l -a \"${ST2_V_0}\"");
        assert_eq!(cmd.display, "ls -l -a \"a b\"");
        assert_eq!(cmd.values.len(), 1);
        assert_eq!(cmd.values["ST2_V_0"], "a b");
    }

    #[test]
    fn python_printing_and_captures() {
        let cmd = render(
            "{% set s %}[{{ v }}]{% endset %}echo {{ s }} {{ l }} {{ b }}",
            json!({"v": "x", "l": [1, "a"], "b": true}),
        )
        .expect("renders");
        assert_eq!(cmd.display, "echo [x] [1, 'a'] True");
        assert_eq!(cmd.values["ST2_V_1"], "[x]");
        assert!(!cmd.values.contains_key("ST2_V_0"), "{:?}", cmd.values);
    }

    #[test]
    fn nul_is_refused() {
        assert!(matches!(
            render("echo {{ v }}", json!({"v": "a\u{0}b"})),
            Err(ShellRenderError::Render(_))
        ));
        assert!(matches!(
            render("echo \u{0}", json!({})),
            Err(ShellRenderError::NulInTemplate)
        ));
    }

    #[test]
    fn no_template() {
        let cmd = render("echo hi; ls", json!({})).expect("renders");
        assert_eq!(cmd, ShellCommand::raw("echo hi; ls"));
    }
}
