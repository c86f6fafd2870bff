//! Shell-mode printing: in the environment [`super::Jinja`] builds for shell commands, every
//! `{{ … }}` output prints as a marker and its text is recorded, so that
//! [`crate::expr::shell`] can decide, from the marker's quoting context, how the command refers
//! to the value. `shell_raw` output is the one exception: it prints as plain text.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use minijinja::value::{Object, Value};
use minijinja::{Error, ErrorKind, Output, State};

/// The render-context name under which the [`Recorder`] of one render is reachable.
pub(crate) const RECORDER_VAR: &str = "__st2_shell_values";

/// The marker printed for output number `index`: NUL, the decimal index, `\x01`. Template text
/// and values holding NUL are refused, so a NUL in rendered text always starts a marker.
pub(crate) fn marker(index: usize) -> String {
    format!("\0{index}\x01")
}

/// Read the marker at the start of `text` (which starts with NUL): its index and length.
pub(crate) fn parse_marker(text: &str) -> Option<(usize, usize)> {
    let rest = text.strip_prefix('\0')?;
    let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 || rest.as_bytes().get(digits) != Some(&0x01) {
        return None;
    }
    let index = rest[..digits].parse().ok()?;
    Some((index, digits + 2))
}

/// The texts of one render's outputs, by index.
#[derive(Debug, Default)]
pub(crate) struct Recorder {
    values: Mutex<Vec<String>>,
}

impl Object for Recorder {}

impl Recorder {
    fn push(&self, text: String) -> usize {
        let mut values = self.values.lock().unwrap_or_else(PoisonError::into_inner);
        values.push(text);
        values.len() - 1
    }

    /// Replace the markers inside `text` (output captured by `{% set %}` blocks or macros and
    /// printed again) by the texts they stand for.
    fn expand(&self, text: &str) -> Result<String, Error> {
        if !text.contains('\0') {
            return Ok(text.to_owned());
        }
        let values = self.values.lock().unwrap_or_else(PoisonError::into_inner);
        let mut out = String::with_capacity(text.len());
        let mut rest = text;
        while let Some(at) = rest.find('\0') {
            out.push_str(&rest[..at]);
            let (index, len) = parse_marker(&rest[at..])
                .filter(|(i, _)| *i < values.len())
                .ok_or_else(nul_error)?;
            out.push_str(&values[index]);
            rest = &rest[at + len..];
        }
        out.push_str(rest);
        Ok(out)
    }

    /// The recorded texts, leaving the recorder empty.
    pub(crate) fn take(&self) -> Vec<String> {
        std::mem::take(&mut *self.values.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

fn nul_error() -> Error {
    Error::new(
        ErrorKind::InvalidOperation,
        "ValueError: a value in a shell command contains a NUL byte, which environment \
         variables and command lines cannot hold",
    )
}

/// Text that `shell_raw` marked to be inserted into a shell command as it is.
#[derive(Debug)]
pub(crate) struct ShellRaw(String);

impl Object for ShellRaw {
    fn render(self: &Arc<Self>, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The `shell_raw` filter of the shell-mode environment.
pub(crate) fn shell_raw(value: Value) -> Result<Value, Error> {
    if let Some(raw) = value.downcast_object_ref::<ShellRaw>() {
        return Ok(Value::from_object(ShellRaw(raw.0.clone())));
    }
    Ok(Value::from_object(ShellRaw(super::printed(&value)?)))
}

/// The formatter of the shell-mode environment.
pub(crate) fn format_output(
    out: &mut Output<'_>,
    state: &mut State<'_, '_>,
    value: &Value,
) -> Result<(), Error> {
    if value.is_undefined() {
        return Ok(());
    }
    let recorder = state
        .lookup(RECORDER_VAR)
        .and_then(|v| v.downcast_object::<Recorder>())
        .ok_or_else(|| {
            Error::new(
                ErrorKind::InvalidOperation,
                "shell rendering needs its value recorder (was it shadowed?)",
            )
        })?;
    if let Some(raw) = value.downcast_object_ref::<ShellRaw>() {
        let text = recorder.expand(&raw.0)?;
        return out.write_str(&text).map_err(Error::from);
    }
    let text = recorder.expand(&super::printed(value)?)?;
    let index = recorder.push(text);
    out.write_str(&marker(index)).map_err(Error::from)
}
