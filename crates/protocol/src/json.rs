//! Small JSON helpers shared by the frame parsers and builders.
//!
//! Parsing works on [`RawValue`]s so that only the members a frame needs are decoded, the exact
//! text of JSON members can be kept (signatures hash what was received), and skipping unknown
//! members never recurses (serde_json skips values with an explicit stack).

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde_json::value::RawValue;

/// Picks the members named in `names` out of one JSON object. Like `JSON.parse` in the
/// browser, the last occurrence of a duplicated member wins.
struct Pick<const N: usize> {
    names: [&'static str; N],
}

impl<'de, const N: usize> DeserializeSeed<'de> for Pick<N> {
    type Value = [Option<&'de RawValue>; N];

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Self::Value, D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de, const N: usize> Visitor<'de> for Pick<N> {
    type Value = [Option<&'de RawValue>; N];

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut picked = [None; N];
        while let Some(key) = map.next_key::<&'de RawValue>()? {
            match key_index(key.get(), &self.names) {
                Some(index) => {
                    let value = map.next_value::<&'de RawValue>()?;
                    if let Some(slot) = picked.get_mut(index) {
                        *slot = Some(value);
                    }
                }
                None => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(picked)
    }
}

/// Which of `names` the raw key (a JSON string literal, quotes included) is. Keys are taken raw
/// so they are validated exactly like [`is_valid`] does, and decoded only when they contain an
/// escape; one holding a lone surrogate (valid JSON, not a Rust string) matches no name.
fn key_index(raw_key: &str, names: &[&str]) -> Option<usize> {
    let inner = raw_key.strip_prefix('"')?.strip_suffix('"')?;
    if inner.contains('\\') {
        let decoded = serde_json::from_str::<String>(raw_key).ok()?;
        names.iter().position(|name| *name == decoded)
    } else {
        names.iter().position(|name| *name == inner)
    }
}

/// The raw text of the members `names` of the JSON object `json` (`None` for absent ones).
/// Fails if `json` is not exactly one valid JSON object (surrounding whitespace allowed).
pub(crate) fn pick_members<'a, const N: usize>(
    json: &'a str,
    names: [&'static str; N],
) -> Result<[Option<&'a RawValue>; N], serde_json::Error> {
    let mut deserializer = serde_json::Deserializer::from_str(json);
    let picked = Pick { names }.deserialize(&mut deserializer)?;
    deserializer.end()?;
    Ok(picked)
}

/// Whether `text` is one valid JSON value. Never recurses, so deep nesting is harmless.
pub(crate) fn is_valid(text: &str) -> bool {
    serde_json::from_str::<IgnoredAny>(text).is_ok()
}

/// The JSON type of a raw value, told by its first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Null,
    String,
    Object,
    Number,
    /// Arrays and booleans: never meaningful for the members this crate reads.
    Other,
}

pub(crate) fn kind(raw: &RawValue) -> Kind {
    match raw.get().as_bytes().first() {
        Some(b'n') => Kind::Null,
        Some(b'"') => Kind::String,
        Some(b'{') => Kind::Object,
        Some(b'-' | b'0'..=b'9') => Kind::Number,
        _ => Kind::Other,
    }
}

/// The unescaped value of a raw JSON string; `None` if it is not a string or holds an escape
/// Rust strings cannot represent (a lone surrogate).
pub(crate) fn decode_string(raw: &RawValue) -> Option<String> {
    if kind(raw) != Kind::String {
        return None;
    }
    serde_json::from_str::<String>(raw.get()).ok()
}

/// `json` (already known to be valid JSON) without insignificant whitespace. Member order,
/// number spelling and string escapes are kept as received, so the result is what
/// `JSON.stringify(JSON.parse(json))` gives for the usual inputs without sorting keys.
pub(crate) fn compact(json: &str) -> String {
    let mut out = String::with_capacity(json.len());
    let mut in_string = false;
    let mut escaped = false;
    for c in json.chars() {
        if in_string {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
            out.push(c);
        } else if c == '"' {
            in_string = true;
            out.push(c);
        } else if !matches!(c, ' ' | '\t' | '\n' | '\r') {
            out.push(c);
        }
    }
    out
}

/// Append `s` as a JSON string literal, escaped exactly as `serde_json` (and `JSON.stringify`)
/// do: `"`, `\`, and control characters; everything else, including non-ASCII, verbatim.
pub(crate) fn push_str_literal(out: &mut String, s: &str) {
    out.reserve(s.len() + 2);
    out.push('"');
    let mut start = 0;
    for (index, byte) in s.bytes().enumerate() {
        let escape = match byte {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0x00..=0x1f => "",
            _ => continue,
        };
        // `start` and `index` sit on ASCII bytes (or the ends), hence on char boundaries.
        out.push_str(s.get(start..index).unwrap_or_default());
        if escape.is_empty() {
            out.push_str("\\u00");
            out.push(hex_digit(byte >> 4));
            out.push(hex_digit(byte & 0x0f));
        } else {
            out.push_str(escape);
        }
        start = index + 1;
    }
    out.push_str(s.get(start..).unwrap_or_default());
    out.push('"');
}

fn hex_digit(nibble: u8) -> char {
    char::from_digit(u32::from(nibble), 16).unwrap_or('0')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn literal(s: &str) -> String {
        let mut out = String::new();
        push_str_literal(&mut out, s);
        out
    }

    #[test]
    fn literal_matches_serde_json() {
        let samples = [
            "",
            "plain",
            "quote \" backslash \\ slash /",
            "\n\r\t\u{8}\u{c}\u{0}\u{1}\u{1f}\u{7f}",
            "é ü 日本 🎉",
            "{\"id\":42}",
        ];
        for s in samples {
            let expected = serde_json::to_string(s).unwrap_or_default();
            assert_eq!(literal(s), expected, "{s:?}");
        }
        for byte in 0u8..=0x7f {
            let s = char::from(byte).to_string();
            assert_eq!(literal(&s), serde_json::to_string(&s).unwrap_or_default());
        }
    }

    #[test]
    fn compact_strips_whitespace_outside_strings_only() {
        assert_eq!(
            compact("{ \"a\" : [1, 2,\n 3] ,\t\"b c\":\"x \\\" y\\\\\" }"),
            "{\"a\":[1,2,3],\"b c\":\"x \\\" y\\\\\"}"
        );
        assert_eq!(compact("{\"z\":1,\"a\":2}"), "{\"z\":1,\"a\":2}");
        assert_eq!(compact(" null "), "null");
    }

    #[test]
    fn pick_members_takes_last_duplicate_and_unescaped_keys() {
        let json = r#"{"a":1,"b":{"x":[1,2]},"a":"two","\u0063":true,"other":[[[]]]}"#;
        let picked = pick_members(json, ["a", "b", "c", "d"]);
        assert!(picked.is_ok());
        let [a, b, c, d] = picked.unwrap_or([None; 4]);
        assert_eq!(a.map(RawValue::get), Some("\"two\""));
        assert_eq!(b.map(RawValue::get), Some("{\"x\":[1,2]}"));
        assert_eq!(c.map(RawValue::get), Some("true"));
        assert!(d.is_none());
    }

    #[test]
    fn pick_members_skips_keys_with_lone_surrogates() {
        let picked = pick_members(r#"{"\ud800":1,"a\udc00b":2,"a":3}"#, ["a"]);
        let [a] = picked.unwrap_or([None]);
        assert_eq!(a.map(RawValue::get), Some("3"));
    }

    #[test]
    fn pick_members_refuses_raw_control_characters_in_keys() {
        assert!(pick_members("{\"a\u{17}\":1}", ["a"]).is_err());
        assert!(!is_valid("{\"a\u{17}\":1}"));
    }

    #[test]
    fn pick_members_rejects_non_objects_and_trailing_text() {
        for bad in ["[1]", "1", "\"x\"", "null", "{} {}", "{\"a\":1", "", "{\"a\" 1}"] {
            assert!(pick_members(bad, ["a"]).is_err(), "{bad:?}");
        }
        assert!(pick_members(" {\"a\":1} \n", ["a"]).is_ok());
    }

    #[test]
    fn kinds_and_strings() {
        let raw = |s: &str| serde_json::from_str::<Box<RawValue>>(s).ok();
        let cases = [
            ("null", Kind::Null),
            ("\"s\"", Kind::String),
            ("{}", Kind::Object),
            ("-1", Kind::Number),
            ("7", Kind::Number),
            ("[]", Kind::Other),
            ("true", Kind::Other),
        ];
        for (text, expected) in cases {
            let value = raw(text);
            assert_eq!(value.as_deref().map(kind), Some(expected), "{text}");
        }
        let escaped = raw(r#""a\"b\u00e9""#);
        assert_eq!(escaped.as_deref().and_then(decode_string).as_deref(), Some("a\"bé"));
        let number = raw("12");
        assert_eq!(number.as_deref().and_then(decode_string), None);
    }
}
