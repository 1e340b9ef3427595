//! Writing a value back as compact JSON text.

use super::{Kind, Value};

/// Append `v` to `out` as compact JSON. Strings and numbers are copied as they
/// appear in the source (already valid JSON), so nothing is re-encoded.
pub fn write_json(v: Value<'_>, out: &mut String) {
    match v.kind() {
        Kind::Null => out.push_str("null"),
        Kind::Bool => out.push_str(if v.as_bool() == Some(true) {
            "true"
        } else {
            "false"
        }),
        Kind::Number => out.push_str(v.number_text().unwrap_or("0")),
        Kind::String => {
            out.push('"');
            out.push_str(v.raw_string().unwrap_or(""));
            out.push('"');
        }
        Kind::Array => {
            out.push('[');
            for (i, e) in v.elements().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_json(e, out);
            }
            out.push(']');
        }
        Kind::Object => {
            out.push('{');
            let mut first = true;
            for (i, (k, _)) in v.members().enumerate() {
                // A repeated key (invalid but seen in venue docs) is written
                // once, where it first appears, with its last value: what
                // jq and every map-based parser make of it.
                if v.members().take(i).any(|(earlier, _)| earlier == k) {
                    continue;
                }
                if !first {
                    out.push(',');
                }
                first = false;
                write_str(&k, out);
                out.push(':');
                if let Some(val) = v.get(&k) {
                    write_json(val, out);
                }
            }
            out.push('}');
        }
    }
}

/// Append `s` as a JSON string literal (escaping quotes, backslashes and control characters).
pub fn write_str(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use crate::engine::json::{OwnedDoc, Parser};

    #[test]
    fn round_trips_compactly() {
        let mut p = Parser::new();
        let src = r#" { "a" : [ 1 , "x\"y" , null , true ] , "b\n" : { } } "#;
        let v = p.parse(src).unwrap();
        let doc = OwnedDoc::from_value(v);
        assert_eq!(doc.text(), r#"{"a":[1,"x\"y",null,true],"b\n":{}}"#);
    }

    #[test]
    fn a_repeated_key_is_written_once_with_its_last_value() {
        let mut p = Parser::new();
        let v = p.parse(r#"{"id":1,"m":2,"x":3,"m":4}"#).unwrap();
        assert_eq!(OwnedDoc::from_value(v).text(), r#"{"id":1,"m":4,"x":3}"#);
    }
}
