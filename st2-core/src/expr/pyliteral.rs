//! Python's `ast.literal_eval` for the literals StackStorm feeds it when casting parameters:
//! `None`, `True`, `False`, numbers, quoted strings, lists, tuples, dicts and sets.

use serde_json::{Map, Number, Value};

/// Parse a Python literal into JSON (tuples and sets become lists; dict keys become text).
///
/// # Errors
/// A message like Python's `ValueError: malformed node or string`.
pub fn literal_eval(text: &str) -> Result<Value, String> {
    let mut p = LiteralParser {
        chars: text.chars().collect(),
        pos: 0,
        depth: 0,
    };
    p.skip_ws();
    let v = p.value()?;
    p.skip_ws();
    if p.pos != p.chars.len() {
        return Err(format!("malformed node or string: {text:?}"));
    }
    Ok(v)
}

struct LiteralParser {
    chars: Vec<char>,
    pos: usize,
    depth: usize,
}

impl LiteralParser {
    fn malformed(&self) -> String {
        let text: String = self.chars.iter().collect();
        format!("malformed node or string: {text:?}")
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.pos += 1;
        }
    }

    fn eat(&mut self, c: char) -> bool {
        self.skip_ws();
        if self.peek() == Some(c) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn value(&mut self) -> Result<Value, String> {
        self.depth += 1;
        if self.depth > 200 {
            return Err("literal nested too deeply".into());
        }
        self.skip_ws();
        let v = match self.peek() {
            Some('[') => {
                self.pos += 1;
                Value::Array(self.items(']')?)
            }
            Some('(') => {
                self.pos += 1;
                Value::Array(self.items(')')?)
            }
            Some('{') => {
                self.pos += 1;
                self.dict_or_set()?
            }
            Some('\'' | '"') => {
                let mut s = self.string()?;
                // Adjacent string literals concatenate.
                loop {
                    self.skip_ws();
                    if matches!(self.peek(), Some('\'' | '"')) {
                        s.push_str(&self.string()?);
                    } else {
                        break;
                    }
                }
                Value::String(s)
            }
            Some(c) if c.is_ascii_digit() || c == '-' || c == '+' || c == '.' => self.number()?,
            Some(c) if c.is_alphabetic() => {
                let start = self.pos;
                while self.peek().is_some_and(|c| c.is_alphanumeric() || c == '_') {
                    self.pos += 1;
                }
                let word: String = self.chars[start..self.pos].iter().collect();
                match word.as_str() {
                    "None" => Value::Null,
                    "True" => Value::Bool(true),
                    "False" => Value::Bool(false),
                    _ => return Err(self.malformed()),
                }
            }
            _ => return Err(self.malformed()),
        };
        self.depth -= 1;
        Ok(v)
    }

    fn items(&mut self, close: char) -> Result<Vec<Value>, String> {
        let mut items = Vec::new();
        loop {
            if self.eat(close) {
                return Ok(items);
            }
            items.push(self.value()?);
            if self.eat(',') {
                continue;
            }
            if self.eat(close) {
                return Ok(items);
            }
            return Err(self.malformed());
        }
    }

    fn dict_or_set(&mut self) -> Result<Value, String> {
        if self.eat('}') {
            return Ok(Value::Object(Map::new()));
        }
        let first = self.value()?;
        if self.eat(':') {
            let mut map = Map::new();
            let v = self.value()?;
            map.insert(key_text(&first), v);
            loop {
                if self.eat('}') {
                    return Ok(Value::Object(map));
                }
                if !self.eat(',') {
                    return Err(self.malformed());
                }
                if self.eat('}') {
                    return Ok(Value::Object(map));
                }
                let k = self.value()?;
                if !self.eat(':') {
                    return Err(self.malformed());
                }
                let v = self.value()?;
                map.insert(key_text(&k), v);
            }
        }
        let mut items = vec![first];
        loop {
            if self.eat('}') {
                return Ok(Value::Array(items));
            }
            if !self.eat(',') {
                return Err(self.malformed());
            }
            if self.eat('}') {
                return Ok(Value::Array(items));
            }
            items.push(self.value()?);
        }
    }

    fn string(&mut self) -> Result<String, String> {
        let quote = self.peek().ok_or_else(|| self.malformed())?;
        self.pos += 1;
        let mut s = String::new();
        loop {
            let c = self.peek().ok_or_else(|| self.malformed())?;
            self.pos += 1;
            if c == quote {
                return Ok(s);
            }
            if c != '\\' {
                s.push(c);
                continue;
            }
            let e = self.peek().ok_or_else(|| self.malformed())?;
            self.pos += 1;
            match e {
                'n' => s.push('\n'),
                't' => s.push('\t'),
                'r' => s.push('\r'),
                '0' => s.push('\0'),
                '\\' => s.push('\\'),
                '\'' => s.push('\''),
                '"' => s.push('"'),
                'x' | 'u' | 'U' => {
                    let len = match e {
                        'x' => 2,
                        'u' => 4,
                        _ => 8,
                    };
                    let hex: String = self
                        .chars
                        .get(self.pos..self.pos + len)
                        .ok_or_else(|| self.malformed())?
                        .iter()
                        .collect();
                    self.pos += len;
                    let code = u32::from_str_radix(&hex, 16).map_err(|_| self.malformed())?;
                    s.push(char::from_u32(code).ok_or_else(|| self.malformed())?);
                }
                other => {
                    s.push('\\');
                    s.push(other);
                }
            }
        }
    }

    fn number(&mut self) -> Result<Value, String> {
        let start = self.pos;
        if matches!(self.peek(), Some('-' | '+')) {
            self.pos += 1;
            self.skip_ws();
        }
        while self
            .peek()
            .is_some_and(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '+' | '-'))
        {
            // A sign is only part of a number right after an exponent marker.
            if matches!(self.peek(), Some('+' | '-'))
                && !matches!(self.chars.get(self.pos - 1), Some('e' | 'E'))
            {
                break;
            }
            self.pos += 1;
        }
        let raw: String = self.chars[start..self.pos]
            .iter()
            .filter(|c| !c.is_whitespace() && **c != '_')
            .collect();
        if let Ok(i) = raw.parse::<i64>() {
            return Ok(Value::from(i));
        }
        let lower = raw.to_lowercase();
        let unsigned = lower.trim_start_matches(['-', '+']);
        let radix = [("0x", 16), ("0o", 8), ("0b", 2)]
            .iter()
            .find_map(|(p, r)| unsigned.strip_prefix(p).map(|d| (d, *r)));
        if let Some((digits, r)) = radix {
            let n = i64::from_str_radix(digits, r).map_err(|_| self.malformed())?;
            return Ok(Value::from(if lower.starts_with('-') { -n } else { n }));
        }
        let f: f64 = raw.parse().map_err(|_| self.malformed())?;
        Number::from_f64(f)
            .map(Value::Number)
            .ok_or_else(|| self.malformed())
    }
}

fn key_text(k: &Value) -> String {
    match k {
        Value::String(s) => s.clone(),
        other => super::python::repr(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn python_literals() {
        assert_eq!(
            literal_eval("{'a': 1, 'b': [True, None, 2.5]}"),
            Ok(json!({"a": 1, "b": [true, null, 2.5]}))
        );
        assert_eq!(literal_eval("(1, 'x')"), Ok(json!([1, "x"])));
        assert_eq!(literal_eval("-3"), Ok(json!(-3)));
        assert_eq!(literal_eval("'a' 'b'"), Ok(json!("ab")));
        assert_eq!(literal_eval("0x1F"), Ok(json!(31)));
        assert!(literal_eval("Yes").is_err());
        assert!(literal_eval("[1,").is_err());
        assert!(literal_eval(&"[".repeat(500)).is_err());
    }
}
