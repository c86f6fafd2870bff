//! Printing: tables fitted to the terminal (comfy-table), property/value tables for single
//! objects, the execution detail view, JSON (`-j`) and YAML (`-y`).

use std::io::IsTerminal;

use anyhow::Result;
use comfy_table::{Cell, Color, ContentArrangement, LineStyle, Table, presets};
use serde_json::{Map, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
    Yaml,
}

/// How to print.
#[derive(Debug, Clone)]
pub struct Out {
    pub format: Format,
    pub timezone: String,
    pub color: bool,
}

/// Attributes shown as times in the user's time zone.
const TIME_KEYS: [&str; 7] = [
    "start_timestamp",
    "end_timestamp",
    "occurrence_time",
    "expire_timestamp",
    "created_at",
    "enforced_at",
    "expiry",
];

impl Out {
    pub fn new(format: Format, timezone: &str) -> Out {
        let color = std::io::stdout().is_terminal()
            && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
            && std::env::var_os("ST2_COLORIZE").is_none_or(|v| v.is_empty());
        Out {
            format,
            timezone: timezone.to_owned(),
            color,
        }
    }

    pub fn is_table(&self) -> bool {
        self.format == Format::Table
    }

    /// JSON or YAML of `value` (not for tables).
    pub fn dump(&self, value: &Value) -> Result<()> {
        match self.format {
            Format::Yaml => print!("{}", yaml(value)?),
            _ => println!("{}", pretty_json(value)),
        }
        Ok(())
    }

    fn table(&self) -> Table {
        let mut table = Table::new();
        // st2client's look: `+---+` under the header too.
        table
            .load_style(
                presets::ASCII_FULL_CONDENSED.header_separator(LineStyle::new('+', '-', '+', '+')),
            )
            .set_content_arrangement(ContentArrangement::Dynamic);
        if !self.color {
            table.force_no_tty();
        }
        if !std::io::stdout().is_terminal()
            && let Some(width) = std::env::var("COLUMNS")
                .ok()
                .and_then(|c| c.parse::<u16>().ok())
        {
            table.set_width(width);
        }
        table
    }

    /// A value as a table cell: strings raw, times in the user's zone, the rest as JSON.
    pub fn cell_text(&self, key: &str, value: &Value) -> String {
        let last = key.rsplit('.').next().unwrap_or(key);
        match value {
            Value::Null => String::new(),
            Value::String(s) if TIME_KEYS.contains(&last) => format_time(s, &self.timezone),
            Value::String(s) => s.clone(),
            Value::Bool(b) => if *b { "True" } else { "False" }.to_owned(),
            Value::Number(n) => n.to_string(),
            Value::Array(a) if a.iter().all(|v| v.is_string()) => a
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(", "),
            other => pretty_json(other),
        }
    }

    fn cell(&self, key: &str, value: &Value) -> Cell {
        let text = self.cell_text(key, value);
        let cell = Cell::new(&text);
        if self.color && key == "status" {
            return match status_color(&text) {
                Some(c) => cell.fg(c),
                None => cell,
            };
        }
        cell
    }

    /// A list: a table of `attrs` (dotted paths), or JSON/YAML of those attributes.
    pub fn list(&self, items: &[Value], attrs: &[String]) -> Result<()> {
        if !self.is_table() {
            let picked: Vec<Value> = items.iter().map(|i| pick(i, attrs)).collect();
            return self.dump(&Value::Array(picked));
        }
        let attrs = if attrs.iter().any(|a| a == "all") {
            all_keys(items)
        } else {
            attrs.to_vec()
        };
        if items.is_empty() {
            println!("No matching items found.");
            return Ok(());
        }
        let mut table = self.table();
        table.set_header(attrs.iter().map(Cell::new));
        for item in items {
            table.add_row(attrs.iter().map(|a| self.cell(a, lookup(item, a))));
        }
        println!("{table}");
        Ok(())
    }

    /// One object: a property/value table (`order` first, then the other keys), or JSON/YAML.
    pub fn object(&self, item: &Value, attrs: &[String], order: &[&str]) -> Result<()> {
        let all = attrs.is_empty() || attrs.iter().any(|a| a == "all");
        let keys: Vec<String> = if all {
            let mut keys: Vec<String> = order
                .iter()
                .filter(|k| item.get(**k).is_some())
                .map(|k| (*k).to_owned())
                .collect();
            if let Some(map) = item.as_object() {
                for k in map.keys() {
                    if !keys.contains(k) {
                        keys.push(k.clone());
                    }
                }
            }
            keys
        } else {
            attrs.to_vec()
        };
        if !self.is_table() {
            let value = if all { item.clone() } else { pick(item, &keys) };
            return self.dump(&value);
        }
        let mut table = self.table();
        table.set_header(vec!["Property", "Value"]);
        for k in &keys {
            table.add_row(vec![Cell::new(k), self.cell(k, lookup(item, k))]);
        }
        println!("{table}");
        Ok(())
    }

    /// An execution as st2client shows it: `key: value` lines, nested values as YAML.
    pub fn execution(&self, execution: &Value, attrs: &[String]) -> Result<()> {
        if !self.is_table() {
            let value = if attrs.iter().any(|a| a == "all") {
                execution.clone()
            } else {
                pick(execution, attrs)
            };
            return self.dump(&value);
        }
        for a in attrs {
            let value = lookup(execution, a);
            if value.is_null() {
                continue;
            }
            let mut text = match value {
                Value::Object(_) | Value::Array(_) => {
                    let y = yaml(value)?;
                    let indented: String =
                        y.lines().map(|l| format!("\n  {l}")).collect::<String>();
                    indented
                }
                other => format!(" {}", self.cell_text(a, other)),
            };
            if a == "status" {
                let status = value.as_str().unwrap_or("");
                if let Some(elapsed) = elapsed(execution) {
                    text = format!(" {status} ({elapsed}s elapsed)");
                }
                if self.color
                    && let Some(code) = status_color(status).map(ansi)
                {
                    text = format!(" \x1b[{code}m{}\x1b[0m", text.trim());
                }
            }
            println!("{a}:{text}");
        }
        Ok(())
    }

    /// Sub-tasks of a workflow execution.
    pub fn tasks(&self, children: &[Value]) {
        if children.is_empty() {
            return;
        }
        let mut table = self.table();
        table.set_header(vec!["id", "status", "task", "action", "start_timestamp"]);
        for c in children {
            let task = lookup(c, "context.orquesta.task_name")
                .as_str()
                .or_else(|| lookup(c, "context.chain.name").as_str())
                .unwrap_or("");
            table.add_row(vec![
                self.cell("id", lookup(c, "id")),
                self.cell("status", lookup(c, "status")),
                Cell::new(task),
                self.cell("action", lookup(c, "action.ref")),
                self.cell("start_timestamp", lookup(c, "start_timestamp")),
            ]);
        }
        println!("{table}");
    }
}

fn status_color(status: &str) -> Option<Color> {
    match status.split_whitespace().next().unwrap_or("") {
        "succeeded" => Some(Color::Green),
        "failed" | "timeout" | "abandoned" => Some(Color::Red),
        "running" | "scheduled" | "requested" | "pending" | "delayed" => Some(Color::Yellow),
        "canceled" | "canceling" | "paused" | "pausing" => Some(Color::Magenta),
        _ => None,
    }
}

/// The ANSI colour code of a status colour.
fn ansi(color: Color) -> u8 {
    match color {
        Color::Green => 32,
        Color::Red => 31,
        Color::Yellow => 33,
        _ => 35,
    }
}

/// Seconds between start and end of an execution.
fn elapsed(execution: &Value) -> Option<i64> {
    let start = execution.get("start_timestamp")?.as_str()?;
    let end = execution.get("end_timestamp")?.as_str()?;
    let start = chrono::DateTime::parse_from_rfc3339(start).ok()?;
    let end = chrono::DateTime::parse_from_rfc3339(end).ok()?;
    Some((end - start).num_seconds())
}

/// `Thu, 26 Nov 2026 11:31:46 UTC` in `timezone` (an IANA name); the input when unparsable.
pub fn format_time(iso: &str, timezone: &str) -> String {
    let Ok(t) = chrono::DateTime::parse_from_rfc3339(iso) else {
        return iso.to_owned();
    };
    let utc = t.with_timezone(&chrono::Utc);
    match timezone.parse::<chrono_tz::Tz>() {
        Ok(tz) if timezone != "UTC" => utc
            .with_timezone(&tz)
            .format("%a, %d %b %Y %H:%M:%S %Z")
            .to_string(),
        _ => utc.format("%a, %d %b %Y %H:%M:%S UTC").to_string(),
    }
}

/// A dotted path (`action.ref`) in `value`; `Null` when absent.
pub fn lookup<'a>(value: &'a Value, path: &str) -> &'a Value {
    if let Some(v) = value.get(path) {
        return v;
    }
    let mut at = value;
    for part in path.split('.') {
        match at.get(part) {
            Some(v) => at = v,
            None => return &Value::Null,
        }
    }
    at
}

/// Only `attrs` (dotted paths rebuilt as nested objects); `all` keeps everything.
pub fn pick(value: &Value, attrs: &[String]) -> Value {
    if attrs.iter().any(|a| a == "all") {
        return value.clone();
    }
    let mut out = Map::new();
    for a in attrs {
        let v = lookup(value, a);
        if v.is_null() {
            continue;
        }
        let parts: Vec<&str> = a.split('.').collect();
        let mut at = &mut out;
        for p in &parts[..parts.len() - 1] {
            let entry = at
                .entry((*p).to_owned())
                .or_insert_with(|| Value::Object(Map::new()));
            if !entry.is_object() {
                *entry = Value::Object(Map::new());
            }
            let Value::Object(m) = entry else {
                unreachable!("just made an object")
            };
            at = m;
        }
        at.insert(parts[parts.len() - 1].to_owned(), v.clone());
    }
    Value::Object(out)
}

fn all_keys(items: &[Value]) -> Vec<String> {
    let mut keys: Vec<String> = Vec::new();
    for item in items {
        if let Some(m) = item.as_object() {
            for k in m.keys() {
                if !keys.contains(k) {
                    keys.push(k.clone());
                }
            }
        }
    }
    keys
}

/// JSON with 4-space indentation (as st2client prints it).
pub fn pretty_json(value: &Value) -> String {
    use serde::Serialize;
    let mut buf = Vec::new();
    let formatter = serde_json::ser::PrettyFormatter::with_indent(b"    ");
    let mut ser = serde_json::Serializer::with_formatter(&mut buf, formatter);
    match value.serialize(&mut ser) {
        Ok(()) => String::from_utf8_lossy(&buf).into_owned(),
        Err(_) => value.to_string(),
    }
}

pub fn yaml(value: &Value) -> Result<String> {
    let text =
        serde_saphyr::to_string(value).map_err(|e| anyhow::anyhow!("cannot write YAML: {e}"))?;
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn dotted_lookup_and_pick() {
        let v = json!({"action": {"ref": "core.local", "x": 1}, "id": "1"});
        assert_eq!(lookup(&v, "action.ref"), &json!("core.local"));
        assert_eq!(lookup(&v, "nope.x"), &Value::Null);
        assert_eq!(
            pick(&v, &["id".into(), "action.ref".into()]),
            json!({"id": "1", "action": {"ref": "core.local"}})
        );
    }

    #[test]
    fn times_in_utc_and_a_zone() {
        assert_eq!(
            format_time("2026-11-26T11:31:46.123456Z", "UTC"),
            "Thu, 26 Nov 2026 11:31:46 UTC"
        );
        assert_eq!(
            format_time("2026-11-26T11:31:46Z", "Europe/Paris"),
            "Thu, 26 Nov 2026 12:31:46 CET"
        );
        assert_eq!(format_time("soon", "UTC"), "soon");
    }
}
