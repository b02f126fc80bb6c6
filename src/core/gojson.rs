//! Go's `encoding/json` as ESO's code sees it: `json.Unmarshal` into `any` and
//! `json.Marshal` back (with or without HTML escaping), and `strconv.FormatFloat`. Pure;
//! the Kubernetes provider and `rewrite[].merge` share it.

use std::collections::BTreeMap;

use serde_json::Value;

/// Go's `encoding/json` string encoding with HTML escaping off, as ESO's
/// `esutils.JSONMarshal` (runtime/esutils/utils.go) writes it: `"` and `\` escaped, `\b \f
/// \n \r \t` by name, other control bytes as `\u00XX`, U+2028/U+2029 escaped, and each
/// byte that does not start valid UTF-8 as the six characters `\ufffd` (Go's
/// `appendString` decodes rune by rune, so an invalid byte is one replacement).
pub fn go_json_string(text: &[u8]) -> String {
    json_string(text, false)
}

/// [`go_json_string`], with `<`, `>` and `&` written as `\u003c`, `\u003e` and `\u0026`
/// when `html` (Go's `json.Marshal`, whose encoder escapes HTML).
fn json_string(text: &[u8], html: bool) -> String {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    let mut i = 0;
    while i < text.len() {
        let b = text[i];
        if b < 0x80 {
            match b {
                b'"' => out.push_str("\\\""),
                b'\\' => out.push_str("\\\\"),
                0x08 => out.push_str("\\b"),
                0x0c => out.push_str("\\f"),
                b'\n' => out.push_str("\\n"),
                b'\r' => out.push_str("\\r"),
                b'\t' => out.push_str("\\t"),
                b if b < 0x20 || (html && matches!(b, b'<' | b'>' | b'&')) => {
                    out.push_str("\\u00");
                    out.push(HEX[usize::from(b >> 4)] as char);
                    out.push(HEX[usize::from(b & 0xf)] as char);
                }
                b => out.push(b as char),
            }
            i += 1;
            continue;
        }
        match first_char(&text[i..]) {
            Some(c) => {
                match c {
                    '\u{2028}' => out.push_str("\\u2028"),
                    '\u{2029}' => out.push_str("\\u2029"),
                    c => out.push(c),
                }
                i += c.len_utf8();
            }
            None => {
                out.push_str("\\ufffd");
                i += 1;
            }
        }
    }
    out.push('"');
    out
}

/// The first character of `bytes` when they start with valid UTF-8 (Go's
/// `utf8.DecodeRune` returning something other than `RuneError, 1`).
fn first_char(bytes: &[u8]) -> Option<char> {
    let window = &bytes[..bytes.len().min(4)];
    let valid = match std::str::from_utf8(window) {
        Ok(text) => text,
        Err(error) => std::str::from_utf8(&window[..error.valid_up_to()]).ok()?,
    };
    valid.chars().next()
}

/// Go's `string(bytes)` read as text: each byte that does not start valid UTF-8 becomes
/// U+FFFD, one per byte (as Go's decoders replace them).
pub fn go_lossy(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match first_char(&bytes[i..]) {
            Some(c) => {
                out.push(c);
                i += c.len_utf8();
            }
            None => {
                out.push('\u{fffd}');
                i += 1;
            }
        }
    }
    out
}

/// Go's `json.Marshal` of a value `json.Unmarshal` produced into `any` (HTML escaping
/// off): objects with sorted keys, every number a float64 printed as Go prints it.
pub fn go_json_of_value(value: &Value) -> String {
    let mut out = String::new();
    write_go_json(value, false, &mut out);
    out
}

/// Go's `json.Marshal` of such a value: [`go_json_of_value`] with HTML escaping on.
pub fn go_json_marshal(value: &Value) -> String {
    let mut out = String::new();
    write_go_json(value, true, &mut out);
    out
}

fn write_go_json(value: &Value, html: bool, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&go_json_float(n.as_f64().unwrap_or_default())),
        Value::String(s) => out.push_str(&json_string(s.as_bytes(), html)),
        Value::Array(items) => {
            out.push('[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                write_go_json(item, html, out);
            }
            out.push(']');
        }
        Value::Object(members) => {
            let sorted: BTreeMap<&String, &Value> = members.iter().collect();
            out.push('{');
            for (index, (key, item)) in sorted.into_iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                out.push_str(&json_string(key.as_bytes(), html));
                out.push(':');
                write_go_json(item, html, out);
            }
            out.push('}');
        }
    }
}

/// `encoding/json`'s float64: `strconv` 'f' format, or 'e' below 1e-6 and from 1e21 on,
/// with a one-digit negative exponent unpadded (`1e-7`, `1e+21`).
fn go_json_float(f: f64) -> String {
    let abs = f.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        let text = format!("{f:e}");
        let (mantissa, exponent) = text.split_once('e').unwrap_or((&text, "0"));
        let exponent: i32 = exponent.parse().unwrap_or_default();
        if exponent < 0 {
            format!("{mantissa}e-{}", -exponent)
        } else {
            format!("{mantissa}e+{exponent:02}")
        }
    } else {
        go_format_float(f)
    }
}

/// Go's `json.Unmarshal` of bytes into `any`, as far as ESO's callers see it: invalid
/// UTF-8 inside strings read as U+FFFD, duplicate keys the last one winning.
pub fn go_json_unmarshal(bytes: &[u8]) -> Option<Value> {
    match serde_json::from_slice(bytes) {
        Ok(value) => Some(value),
        Err(_) if std::str::from_utf8(bytes).is_err() => {
            serde_json::from_str(&go_lossy(bytes)).ok()
        }
        Err(_) => None,
    }
}

/// `strconv.FormatFloat(f, 'f', -1, 64)`: the shortest digits that read back, never an
/// exponent (Rust's `Display` for f64 is the same for finite numbers).
pub fn go_format_float(f: f64) -> String {
    if f.is_nan() {
        "NaN".to_owned()
    } else if f.is_infinite() {
        if f > 0.0 { "+Inf" } else { "-Inf" }.to_owned()
    } else {
        format!("{f}")
    }
}
