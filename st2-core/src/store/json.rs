//! Compact JSON text for stored documents: byte for byte what `serde_json::to_string` writes,
//! in fewer instructions.
//!
//! Every record a store writes is serialised, most of them several times over their life (an
//! execution three times), and serde_json spends much of that on its generic path: each
//! object key and string goes through its escaping loop a byte at a time with a separate
//! write for each quote, comma and colon. This writer scans eight bytes at a time for the
//! characters that need escaping and writes each key with its punctuation in one go.
//!
//! What it does not write itself (floats, 128-bit integers, keys that are not strings), or a
//! value whose `Serialize` fails, is handed back to serde_json whole, so the text and the
//! errors are always serde_json's.

use std::fmt;

use serde::ser::{self, Serialize};

/// `value` as compact JSON text, exactly as `serde_json::to_string` writes it.
pub fn to_string<T: Serialize + ?Sized>(value: &T) -> serde_json::Result<String> {
    let mut out = Vec::with_capacity(128);
    to_writer(&mut out, value)?;
    // Only `str`s and ASCII punctuation are written (and serde_json writes the same bytes).
    String::from_utf8(out).map_err(ser::Error::custom)
}

/// Append `value` as compact JSON text to `out`, exactly as `serde_json::to_writer` would.
/// On an error `out` holds what it held before.
pub fn to_writer<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) -> serde_json::Result<()> {
    let start = out.len();
    if value.serialize(Writer { out: &mut *out }).is_ok() {
        return Ok(());
    }
    // Something this writer leaves to serde_json (or a failing value): serde_json's text or
    // error, from the start.
    out.truncate(start);
    let written = serde_json::to_writer(&mut *out, value);
    if written.is_err() {
        out.truncate(start);
    }
    written
}

/// Why the fast path stopped: serde_json writes the value instead.
#[derive(Debug)]
struct Handover;

impl fmt::Display for Handover {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("left to serde_json")
    }
}

impl std::error::Error for Handover {}

impl ser::Error for Handover {
    fn custom<M: fmt::Display>(_: M) -> Self {
        Handover
    }
}

type Result<T = ()> = std::result::Result<T, Handover>;

/// The serde_json token a `RawValue` serialises under (a struct of that name with one field
/// of that name, holding the raw text).
const RAW_VALUE: &str = "$serde_json::private::RawValue";

/// What `\u00XX` and the short escapes write for each byte below 0x20.
fn escape(byte: u8, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    match byte {
        b'"' => out.extend_from_slice(b"\\\""),
        b'\\' => out.extend_from_slice(b"\\\\"),
        b'\x08' => out.extend_from_slice(b"\\b"),
        b'\t' => out.extend_from_slice(b"\\t"),
        b'\n' => out.extend_from_slice(b"\\n"),
        b'\x0c' => out.extend_from_slice(b"\\f"),
        b'\r' => out.extend_from_slice(b"\\r"),
        _ => out.extend_from_slice(&[
            b'\\',
            b'u',
            b'0',
            b'0',
            HEX[usize::from(byte >> 4)],
            HEX[usize::from(byte & 0xf)],
        ]),
    }
}

/// Which bytes are written escaped: control characters, `"` and `\\`.
static ESCAPED: [bool; 256] = {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte < 0x20 {
        table[byte] = true;
        byte += 1;
    }
    table[b'"' as usize] = true;
    table[b'\\' as usize] = true;
    table
};

/// Whether any of the eight bytes in `word` needs escaping.
fn word_needs_escape(word: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    // A byte below 0x20: subtracting 0x20 borrows into its high bit (bytes with the high bit
    // set are excluded by `!word`); a byte equal to `"` or `\`: that byte XOR it is zero.
    let below = word.wrapping_sub(ONES * 0x20) & !word;
    let quote = word ^ (ONES * u64::from(b'"'));
    let backslash = word ^ (ONES * u64::from(b'\\'));
    let zero = |x: u64| x.wrapping_sub(ONES) & !x;
    (below | zero(quote) | zero(backslash)) & HIGHS != 0
}

/// Whether any byte of `bytes` needs escaping, eight at a time (a short tail is padded with
/// spaces, a long one checked as the last eight bytes).
fn any_needs_escape(bytes: &[u8]) -> bool {
    let word = |eight: &[u8]| {
        let mut word = [b' '; 8];
        word[..eight.len()].copy_from_slice(eight);
        word_needs_escape(u64::from_le_bytes(word))
    };
    let mut chunks = bytes.chunks_exact(8);
    if chunks.any(word) {
        return true;
    }
    let tail = chunks.remainder();
    match bytes.len() {
        0 => false,
        n if n < 8 => word(tail),
        n => !tail.is_empty() && word(&bytes[n - 8..]),
    }
}

/// `text` as a JSON string, quotes included.
fn write_str(out: &mut Vec<u8>, text: &str) {
    let bytes = text.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    if any_needs_escape(bytes) {
        let mut clean = 0;
        for (at, &byte) in bytes.iter().enumerate() {
            if ESCAPED[usize::from(byte)] {
                out.extend_from_slice(&bytes[clean..at]);
                escape(byte, out);
                clean = at + 1;
            }
        }
        out.extend_from_slice(&bytes[clean..]);
    } else {
        out.extend_from_slice(bytes);
    }
    out.push(b'"');
}

/// An unsigned integer in decimal.
fn write_u64(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        // `n % 10` is below 10.
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// A signed integer in decimal.
fn write_i64(out: &mut Vec<u8>, n: i64) {
    if n < 0 {
        out.push(b'-');
    }
    write_u64(out, n.unsigned_abs());
}

/// The serialiser: compact JSON into `out`.
struct Writer<'a> {
    out: &'a mut Vec<u8>,
}

/// An array, object or struct being written: whether an element was written yet.
struct Compound<'a> {
    out: &'a mut Vec<u8>,
    first: bool,
    /// What closes it: `]`, `}`, or `}}` / `]}` for an enum variant's content.
    close: &'static [u8],
    /// A `RawValue`: its one field is written as it is.
    raw: bool,
}

impl<'a> Compound<'a> {
    fn open(out: &'a mut Vec<u8>, open: &[u8], close: &'static [u8]) -> Self {
        out.extend_from_slice(open);
        Self {
            out,
            first: true,
            close,
            raw: false,
        }
    }

    fn comma(&mut self) {
        if self.first {
            self.first = false;
        } else {
            self.out.push(b',');
        }
    }

    fn element<T: Serialize + ?Sized>(&mut self, value: &T) -> Result {
        self.comma();
        value.serialize(Writer {
            out: &mut *self.out,
        })
    }

    fn field<T: Serialize + ?Sized>(&mut self, key: &str, value: &T) -> Result {
        self.comma();
        write_str(self.out, key);
        self.out.push(b':');
        value.serialize(Writer {
            out: &mut *self.out,
        })
    }

    fn close(self) -> Result {
        self.out.extend_from_slice(self.close);
        Ok(())
    }
}

impl<'a> ser::Serializer for Writer<'a> {
    type Ok = ();
    type Error = Handover;
    type SerializeSeq = Compound<'a>;
    type SerializeTuple = Compound<'a>;
    type SerializeTupleStruct = Compound<'a>;
    type SerializeTupleVariant = Compound<'a>;
    type SerializeMap = Compound<'a>;
    type SerializeStruct = Compound<'a>;
    type SerializeStructVariant = Compound<'a>;

    fn serialize_bool(self, v: bool) -> Result {
        self.out
            .extend_from_slice(if v { b"true" } else { b"false" });
        Ok(())
    }

    fn serialize_i8(self, v: i8) -> Result {
        self.serialize_i64(i64::from(v))
    }

    fn serialize_i16(self, v: i16) -> Result {
        self.serialize_i64(i64::from(v))
    }

    fn serialize_i32(self, v: i32) -> Result {
        self.serialize_i64(i64::from(v))
    }

    fn serialize_i64(self, v: i64) -> Result {
        write_i64(self.out, v);
        Ok(())
    }

    fn serialize_u8(self, v: u8) -> Result {
        self.serialize_u64(u64::from(v))
    }

    fn serialize_u16(self, v: u16) -> Result {
        self.serialize_u64(u64::from(v))
    }

    fn serialize_u32(self, v: u32) -> Result {
        self.serialize_u64(u64::from(v))
    }

    fn serialize_u64(self, v: u64) -> Result {
        write_u64(self.out, v);
        Ok(())
    }

    fn serialize_i128(self, _: i128) -> Result {
        Err(Handover)
    }

    fn serialize_u128(self, _: u128) -> Result {
        Err(Handover)
    }

    fn serialize_f32(self, _: f32) -> Result {
        Err(Handover)
    }

    fn serialize_f64(self, v: f64) -> Result {
        // serde_json's own digits (and `null` for what is not finite).
        serde_json::to_writer(&mut *self.out, &v).map_err(|_| Handover)
    }

    fn serialize_char(self, v: char) -> Result {
        write_str(self.out, v.encode_utf8(&mut [0; 4]));
        Ok(())
    }

    fn serialize_str(self, v: &str) -> Result {
        write_str(self.out, v);
        Ok(())
    }

    fn serialize_bytes(self, v: &[u8]) -> Result {
        let mut seq = Compound::open(self.out, b"[", b"]");
        for byte in v {
            seq.element(byte)?;
        }
        seq.close()
    }

    fn serialize_none(self) -> Result {
        self.serialize_unit()
    }

    fn serialize_some<T: Serialize + ?Sized>(self, value: &T) -> Result {
        value.serialize(self)
    }

    fn serialize_unit(self) -> Result {
        self.out.extend_from_slice(b"null");
        Ok(())
    }

    fn serialize_unit_struct(self, _: &'static str) -> Result {
        self.serialize_unit()
    }

    fn serialize_unit_variant(self, _: &'static str, _: u32, variant: &'static str) -> Result {
        self.serialize_str(variant)
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _: &'static str, value: &T) -> Result {
        value.serialize(self)
    }

    fn serialize_newtype_variant<T: Serialize + ?Sized>(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        value: &T,
    ) -> Result {
        let mut object = Compound::open(self.out, b"{", b"}");
        object.field(variant, value)?;
        object.close()
    }

    fn serialize_seq(self, _: Option<usize>) -> Result<Compound<'a>> {
        Ok(Compound::open(self.out, b"[", b"]"))
    }

    fn serialize_tuple(self, len: usize) -> Result<Compound<'a>> {
        self.serialize_seq(Some(len))
    }

    fn serialize_tuple_struct(self, _: &'static str, len: usize) -> Result<Compound<'a>> {
        self.serialize_seq(Some(len))
    }

    fn serialize_tuple_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Compound<'a>> {
        self.out.push(b'{');
        write_str(self.out, variant);
        Ok(Compound::open(self.out, b":[", b"]}"))
    }

    fn serialize_map(self, _: Option<usize>) -> Result<Compound<'a>> {
        Ok(Compound::open(self.out, b"{", b"}"))
    }

    fn serialize_struct(self, name: &'static str, _: usize) -> Result<Compound<'a>> {
        if name == RAW_VALUE {
            return Ok(Compound {
                out: self.out,
                first: true,
                close: b"",
                raw: true,
            });
        }
        Ok(Compound::open(self.out, b"{", b"}"))
    }

    fn serialize_struct_variant(
        self,
        _: &'static str,
        _: u32,
        variant: &'static str,
        _: usize,
    ) -> Result<Compound<'a>> {
        self.out.push(b'{');
        write_str(self.out, variant);
        Ok(Compound::open(self.out, b":{", b"}}"))
    }
}

/// The compounds whose elements are written one after the other (`[a,b]`), by the trait
/// and its method.
macro_rules! elements {
    ($($trait:ident::$method:ident),*) => {
        $(impl ser::$trait for Compound<'_> {
            type Ok = ();
            type Error = Handover;

            fn $method<T: Serialize + ?Sized>(&mut self, value: &T) -> Result {
                self.element(value)
            }

            fn end(self) -> Result {
                self.close()
            }
        })*
    };
}

elements!(
    SerializeSeq::serialize_element,
    SerializeTuple::serialize_element,
    SerializeTupleStruct::serialize_field,
    SerializeTupleVariant::serialize_field
);

impl ser::SerializeMap for Compound<'_> {
    type Ok = ();
    type Error = Handover;

    fn serialize_key<T: Serialize + ?Sized>(&mut self, key: &T) -> Result {
        self.comma();
        key.serialize(KeyWriter {
            out: &mut *self.out,
        })?;
        self.out.push(b':');
        Ok(())
    }

    fn serialize_value<T: Serialize + ?Sized>(&mut self, value: &T) -> Result {
        value.serialize(Writer {
            out: &mut *self.out,
        })
    }

    fn end(self) -> Result {
        self.close()
    }
}

impl ser::SerializeStruct for Compound<'_> {
    type Ok = ();
    type Error = Handover;

    fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Result {
        if self.raw {
            return value.serialize(RawWriter {
                out: &mut *self.out,
            });
        }
        self.field(key, value)
    }

    fn end(self) -> Result {
        self.close()
    }
}

impl ser::SerializeStructVariant for Compound<'_> {
    type Ok = ();
    type Error = Handover;

    fn serialize_field<T: Serialize + ?Sized>(&mut self, key: &'static str, value: &T) -> Result {
        self.field(key, value)
    }

    fn end(self) -> Result {
        self.close()
    }
}

/// `serialize_*` methods (by name and argument types) that hand the value over to serde_json.
macro_rules! hand_over {
    ($($method:ident($($arg:ty),*)),* $(,)?) => {
        $(fn $method(self, $(_: $arg),*) -> Result { Err(Handover) })*
    };
}

/// The rest of a `Serializer` that writes one kind of value: its compound types are never
/// built, and an optional, an enum variant or a compound value goes to serde_json.
macro_rules! hand_over_the_rest {
    () => {
        type Ok = ();
        type Error = Handover;
        type SerializeSeq = ser::Impossible<(), Handover>;
        type SerializeTuple = ser::Impossible<(), Handover>;
        type SerializeTupleStruct = ser::Impossible<(), Handover>;
        type SerializeTupleVariant = ser::Impossible<(), Handover>;
        type SerializeMap = ser::Impossible<(), Handover>;
        type SerializeStruct = ser::Impossible<(), Handover>;
        type SerializeStructVariant = ser::Impossible<(), Handover>;

        fn serialize_some<T: Serialize + ?Sized>(self, _: &T) -> Result {
            Err(Handover)
        }

        fn serialize_newtype_variant<T: Serialize + ?Sized>(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
            _: &T,
        ) -> Result {
            Err(Handover)
        }

        fn serialize_seq(self, _: Option<usize>) -> Result<Self::SerializeSeq> {
            Err(Handover)
        }

        fn serialize_tuple(self, _: usize) -> Result<Self::SerializeTuple> {
            Err(Handover)
        }

        fn serialize_tuple_struct(
            self,
            _: &'static str,
            _: usize,
        ) -> Result<Self::SerializeTupleStruct> {
            Err(Handover)
        }

        fn serialize_tuple_variant(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
            _: usize,
        ) -> Result<Self::SerializeTupleVariant> {
            Err(Handover)
        }

        fn serialize_map(self, _: Option<usize>) -> Result<Self::SerializeMap> {
            Err(Handover)
        }

        fn serialize_struct(self, _: &'static str, _: usize) -> Result<Self::SerializeStruct> {
            Err(Handover)
        }

        fn serialize_struct_variant(
            self,
            _: &'static str,
            _: u32,
            _: &'static str,
            _: usize,
        ) -> Result<Self::SerializeStructVariant> {
            Err(Handover)
        }
    };
}

/// An object key: strings (and what serde_json writes as one) here, anything else to serde_json.
struct KeyWriter<'a> {
    out: &'a mut Vec<u8>,
}

impl ser::Serializer for KeyWriter<'_> {
    hand_over_the_rest!();

    fn serialize_str(self, v: &str) -> Result {
        write_str(self.out, v);
        Ok(())
    }

    fn serialize_char(self, v: char) -> Result {
        write_str(self.out, v.encode_utf8(&mut [0; 4]));
        Ok(())
    }

    fn serialize_unit_variant(self, _: &'static str, _: u32, variant: &'static str) -> Result {
        write_str(self.out, variant);
        Ok(())
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _: &'static str, value: &T) -> Result {
        value.serialize(self)
    }

    hand_over!(
        serialize_bool(bool),
        serialize_i8(i8),
        serialize_i16(i16),
        serialize_i32(i32),
        serialize_i64(i64),
        serialize_i128(i128),
        serialize_u8(u8),
        serialize_u16(u16),
        serialize_u32(u32),
        serialize_u64(u64),
        serialize_u128(u128),
        serialize_f32(f32),
        serialize_f64(f64),
        serialize_bytes(&[u8]),
        serialize_none(),
        serialize_unit(),
        serialize_unit_struct(&'static str),
    );
}

/// A `RawValue`'s text, written as it is (serde_json checked it when the value was made).
struct RawWriter<'a> {
    out: &'a mut Vec<u8>,
}

impl ser::Serializer for RawWriter<'_> {
    hand_over_the_rest!();

    fn serialize_str(self, v: &str) -> Result {
        self.out.extend_from_slice(v.as_bytes());
        Ok(())
    }

    hand_over!(
        serialize_bool(bool),
        serialize_i8(i8),
        serialize_i16(i16),
        serialize_i32(i32),
        serialize_i64(i64),
        serialize_i128(i128),
        serialize_u8(u8),
        serialize_u16(u16),
        serialize_u32(u32),
        serialize_u64(u64),
        serialize_u128(u128),
        serialize_f32(f32),
        serialize_f64(f64),
        serialize_char(char),
        serialize_bytes(&[u8]),
        serialize_none(),
        serialize_unit(),
        serialize_unit_struct(&'static str),
    );

    fn serialize_unit_variant(self, _: &'static str, _: u32, _: &'static str) -> Result {
        Err(Handover)
    }

    fn serialize_newtype_struct<T: Serialize + ?Sized>(self, _: &'static str, _: &T) -> Result {
        Err(Handover)
    }
}

/// Whether this writer writes `value` itself, without handing it over to serde_json.
#[cfg(test)]
pub(crate) fn written_here<T: Serialize + ?Sized>(value: &T) -> bool {
    let mut out = Vec::new();
    value.serialize(Writer { out: &mut out }).is_ok()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;
    use serde::Serialize;
    use serde_json::{Value, json};

    use super::*;

    fn same<T: Serialize + ?Sized>(value: &T) {
        let ours = to_string(value).map_err(|e| e.to_string());
        let theirs = serde_json::to_string(value).map_err(|e| e.to_string());
        assert_eq!(ours, theirs);
    }

    #[test]
    fn writes_what_serde_json_writes() {
        same(&json!(null));
        same(&json!({"a": [1, -2, 3.5, 1e300, -0.0, true, false, null], "b": {}, "c": []}));
        same(&json!({"esc": "\"\\/\u{0}\u{1}\u{8}\t\n\u{b}\u{c}\r\u{1f}\u{7f} é 😀"}));
        same(&json!({"long": "0123456789abcdef\"0123456789abcdef\\0123456789\n"}));
        same(&json!({"k\"ey\n": 1, "": "", "ünï": "ascii only? no"}));
        same(&json!([u64::MAX, i64::MIN, 0, -1]));
        same(&f64::NAN);
        same(&f32::INFINITY);
        same(&1.5f32);
        same(&i128::MIN);
        same(&u128::MAX);
        same(&'"');
        same(&'x');
        same(&b"bytes"[..]);
        same(&serde_bytes_like());
        same(&Some(3));
        same(&None::<u8>);
        same(&());
        same(&(1, "two", [3.0]));
    }

    fn serde_bytes_like() -> Vec<u8> {
        vec![0, 255, 10]
    }

    #[derive(Serialize)]
    struct Unit;

    #[derive(Serialize)]
    struct Newtype(u32);

    #[derive(Serialize)]
    struct Tuple(u8, &'static str);

    #[derive(Serialize)]
    enum Shape {
        Empty,
        Wrapped(i32),
        Pair(i32, String),
        Named { x: f64, label: &'static str },
    }

    #[derive(Serialize)]
    struct Record {
        #[serde(rename = "$weird \"name\"")]
        weird: Unit,
        newtype: Newtype,
        tuple: Tuple,
        shapes: Vec<Shape>,
        #[serde(skip_serializing_if = "Option::is_none")]
        skipped: Option<u8>,
        #[serde(flatten)]
        extra: BTreeMap<String, Value>,
        raw: Box<serde_json::value::RawValue>,
    }

    #[test]
    fn structs_enums_and_raw_values_as_serde_json_writes_them() {
        let record = Record {
            weird: Unit,
            newtype: Newtype(7),
            tuple: Tuple(1, "a"),
            shapes: vec![
                Shape::Empty,
                Shape::Wrapped(-4),
                Shape::Pair(2, "b\"".into()),
                Shape::Named { x: 0.1, label: "l" },
            ],
            skipped: None,
            extra: BTreeMap::from([("flat".to_owned(), json!({"n": 1}))]),
            raw: serde_json::value::to_raw_value(&json!({"r": [1, 2]})).unwrap(),
        };
        same(&record);
    }

    #[test]
    fn records_and_values_are_written_here() {
        assert!(written_here(
            &json!({"a": [1, -2, 3.5, "x\n"], "b": {"c": null}})
        ));
        assert!(written_here(&BTreeMap::from([('c', 0)])));
        assert!(written_here(&Record {
            weird: Unit,
            newtype: Newtype(7),
            tuple: Tuple(1, "a"),
            shapes: vec![
                Shape::Named { x: 0.1, label: "l" },
                Shape::Pair(1, "p".into())
            ],
            skipped: Some(1),
            extra: BTreeMap::new(),
            raw: serde_json::value::to_raw_value(&json!([1])).unwrap(),
        }));
        // Left to serde_json: 128-bit integers, `f32`s, keys that are not strings.
        assert!(!written_here(&1u128));
        assert!(!written_here(&1.5f32));
        assert!(!written_here(&BTreeMap::from([(1u8, 0)])));
    }

    #[test]
    fn keys_serde_json_writes_or_refuses_are_its_own() {
        same(&BTreeMap::from([(1u8, "one"), (2, "two")]));
        same(&BTreeMap::from([(-1i64, 0)]));
        same(&BTreeMap::from([(true, 0)]));
        same(&BTreeMap::from([('c', 0)]));
        same(&BTreeMap::from([(Newtype(3), 0)]));
        same(&BTreeMap::from([((1, 2), 0)]));
        same(&BTreeMap::from([(vec![1], 0)]));
    }

    impl PartialEq for Newtype {
        fn eq(&self, other: &Self) -> bool {
            self.0 == other.0
        }
    }
    impl Eq for Newtype {}
    impl PartialOrd for Newtype {
        fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
            Some(self.cmp(other))
        }
    }
    impl Ord for Newtype {
        fn cmp(&self, other: &Self) -> std::cmp::Ordering {
            self.0.cmp(&other.0)
        }
    }

    #[test]
    fn an_escape_at_any_place_of_any_length_is_found() {
        for len in 1..26 {
            for at in 0..len {
                for escaped in ['"', '\\', '\n', '\u{1f}', '\0', '\u{7f}', 'é'] {
                    let mut text: String = "a".repeat(len);
                    text.replace_range(at..=at, escaped.encode_utf8(&mut [0; 4]));
                    same(&text);
                }
            }
        }
    }

    /// A value whose `Serialize` fails: serde_json's error, and nothing left in the buffer.
    struct Failing;

    impl Serialize for Failing {
        fn serialize<S: ser::Serializer>(&self, _: S) -> std::result::Result<S::Ok, S::Error> {
            Err(ser::Error::custom("no such value"))
        }
    }

    #[test]
    fn a_failing_value_fails_as_with_serde_json_and_leaves_the_buffer() {
        same(&json!(null));
        let mut out = b"kept".to_vec();
        let error = to_writer(&mut out, &vec![Failing]).unwrap_err();
        assert_eq!(error.to_string(), "no such value");
        assert_eq!(out, b"kept");
        let mut out = b"kept".to_vec();
        to_writer(&mut out, &[1, 2]).unwrap();
        assert_eq!(out, b"kept[1,2]");
    }

    fn any_value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::from),
            any::<i64>().prop_map(Value::from),
            any::<u64>().prop_map(Value::from),
            any::<f64>().prop_map(Value::from),
            ".*".prop_map(Value::from),
            "[\"\\\\\\x00-\\x1f a-z]{0,40}".prop_map(Value::from),
        ];
        leaf.prop_recursive(4, 64, 8, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
                prop::collection::vec((".*", inner), 0..8)
                    .prop_map(|entries| Value::Object(entries.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #[test]
        fn any_json_value_is_written_as_serde_json_writes_it(value in any_value()) {
            prop_assert_eq!(to_string(&value).unwrap(), serde_json::to_string(&value).unwrap());
        }

        #[test]
        fn any_string_is_escaped_as_serde_json_escapes_it(text in any::<String>()) {
            prop_assert_eq!(to_string(&text).unwrap(), serde_json::to_string(&text).unwrap());
        }
    }
}
