//! What the providers share: reading values prefetched into the world, failing a whole
//! store's reads at once, and the JSON shapes ESO's Go code gives values (gjson-style
//! paths, `json.Marshal` of maps).

use std::collections::BTreeMap;

use serde_json::Value;

use crate::core::model::{ExternalSecretSpec, RemoteRef};
use crate::core::provider::{FetchError, StoreReads};
use crate::core::redact::scrub_serde_message;
use crate::core::secret_bytes::SecretBytes;
use crate::core::world::{RemoteError, World};

use super::provider::Fetched;

/// A store's `spec.provider.<name>`, typed; the error names the field, never a value.
pub(crate) fn parse_config<T: serde::de::DeserializeOwned>(
    config: &Value,
) -> std::result::Result<T, String> {
    serde_json::from_value(config.clone()).map_err(|e| scrub_serde_message(&e.to_string()))
}

/// The reads a spec makes of a store that answers by key: every `data[].remoteRef` (its
/// read key as `key_of` makes it), every `dataFrom[].extract`, and each
/// `dataFrom[].find.name.regexp` as a find.
pub(crate) fn key_reads(
    spec: &ExternalSecretSpec,
    reads: &mut StoreReads,
    key_of: impl Fn(&RemoteRef) -> String,
) {
    for data in &spec.data {
        let reference = &data.remote_ref;
        reads
            .reads
            .insert((key_of(reference), reference.version.clone()));
    }
    for from in &spec.data_from {
        if let Some(extract) = &from.extract {
            reads
                .reads
                .insert((extract.key.clone(), extract.version.clone()));
        }
        if let Some(name) = from.find.as_ref().and_then(|f| f.name.as_ref()) {
            reads.finds.insert(name.regexp.clone());
        }
    }
}

/// Records `message` as the answer to every read and find of one store.
pub(crate) fn fail_all(fetched: &mut Fetched, store: &str, wanted: &StoreReads, message: &str) {
    let error = RemoteError {
        message: format!("{store}: {message}"),
        not_found: false,
    };
    for (path, version) in &wanted.reads {
        fetched.remote_reads.insert(
            (store.to_owned(), path.clone(), version.clone()),
            Err(error.clone()),
        );
    }
    for pattern in &wanted.finds {
        fetched
            .remote_finds
            .insert((store.to_owned(), pattern.clone()), Err(error.clone()));
    }
}

/// The prefetched value of a remote read, or why there is none.
pub(crate) fn prefetched<'w>(
    world: &'w World,
    store: &str,
    read_key: &str,
    key: &str,
    version: Option<&String>,
) -> Result<&'w SecretBytes, FetchError> {
    match world
        .remote_reads
        .get(&(store.to_owned(), read_key.to_owned(), version.cloned()))
    {
        None => Err(FetchError::new(format!("{store}: {key} was not fetched"))),
        Some(Err(error)) => Err(FetchError {
            message: error.message.clone(),
            source_missing: error.not_found,
        }),
        Some(Ok(bytes)) => Ok(bytes),
    }
}

/// A remote value as bytes: strings raw, `null` empty, anything else as JSON.
pub(crate) fn remote_value_bytes(value: &Value) -> Vec<u8> {
    json_result_bytes(value.clone())
}

/// JSON with sorted keys, as Go marshals a map.
pub(crate) fn sorted_json(map: &serde_json::Map<String, Value>) -> Vec<u8> {
    let sorted: BTreeMap<&String, &Value> = map.iter().collect();
    serde_json::to_vec(&sorted).unwrap_or_default()
}

/// The subset of gjson paths ESO users write: dot-separated object keys and array
/// indexes, with `\.` for a literal dot.
pub fn json_path(raw: &[u8], path: &str) -> Option<Value> {
    let mut value: Value = serde_json::from_slice(raw).ok()?;
    for component in split_path(path) {
        value = match value {
            Value::Object(mut members) => members.remove(&component)?,
            Value::Array(mut items) => {
                let index: usize = component.parse().ok()?;
                if index >= items.len() {
                    return None;
                }
                items.swap_remove(index)
            }
            _ => return None,
        };
    }
    Some(value)
}

fn split_path(path: &str) -> Vec<String> {
    let mut components = vec![String::new()];
    let mut chars = path.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(next) = chars.next() {
                    components.last_mut().expect("never empty").push(next);
                }
            }
            '.' => components.push(String::new()),
            c => components.last_mut().expect("never empty").push(c),
        }
    }
    components
}

/// gjson's `String()`: strings raw, `null` empty, everything else as compact JSON.
pub(crate) fn json_result_bytes(value: Value) -> Vec<u8> {
    match value {
        Value::String(text) => text.into_bytes(),
        Value::Null => Vec::new(),
        other => serde_json::to_vec(&other).unwrap_or_default(),
    }
}

/// Go's `encoding/json` string encoding with HTML escaping off, as ESO's
/// `esutils.JSONMarshal` (runtime/esutils/utils.go) writes it: `"` and `\` escaped, `\b \f
/// \n \r \t` by name, other control bytes as `\u00XX`, U+2028/U+2029 escaped, and each
/// byte that does not start valid UTF-8 as the six characters `\ufffd` (Go's
/// `appendString` decodes rune by rune, so an invalid byte is one replacement).
pub fn go_json_string(text: &[u8]) -> String {
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
                b if b < 0x20 => {
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
pub(crate) fn go_lossy(bytes: &[u8]) -> String {
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

/// `esutils.JSONMarshal(map[string]string)` over byte values (`string(val)` in Go):
/// sorted keys, Go's escaping. ESO's Kubernetes provider writes a whole Secret so
/// (providers/v1/kubernetes/client.go `GetSecret` without a property, `findByName`,
/// `findByTags`).
pub fn go_json_of_byte_map<'a, V: AsRef<[u8]>>(
    pairs: impl Iterator<Item = (&'a str, V)>,
) -> Vec<u8> {
    let map: BTreeMap<&str, V> = pairs.collect();
    let mut out = String::from("{");
    for (index, (key, value)) in map.iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        out.push_str(&go_json_string(key.as_bytes()));
        out.push(':');
        out.push_str(&go_json_string(value.as_ref()));
    }
    out.push('}');
    out.into_bytes()
}

/// `esutils.JSONMarshal(map[string]string)` of a label or annotation map; Go writes a
/// nil map (which is what the API server returns for none) as `null`.
pub fn go_json_of_string_map(map: &BTreeMap<String, String>) -> Vec<u8> {
    if map.is_empty() {
        return b"null".to_vec();
    }
    go_json_of_byte_map(map.iter().map(|(k, v)| (k.as_str(), v.as_bytes())))
}

/// Go's `json.Marshal` of a value `json.Unmarshal` produced into `any` (HTML escaping
/// off): objects with sorted keys, every number a float64 printed as Go prints it.
pub fn go_json_of_value(value: &Value) -> String {
    let mut out = String::new();
    write_go_json(value, &mut out);
    out
}

fn write_go_json(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => out.push_str(&go_json_float(n.as_f64().unwrap_or_default())),
        Value::String(s) => out.push_str(&go_json_string(s.as_bytes())),
        Value::Array(items) => {
            out.push('[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                write_go_json(item, out);
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
                out.push_str(&go_json_string(key.as_bytes()));
                out.push(':');
                write_go_json(item, out);
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
        gjson::go_format_float(f)
    }
}

/// Go's `json.Unmarshal` of bytes into `any`, as far as ESO's callers see it: invalid
/// UTF-8 inside strings read as U+FFFD, duplicate keys the last one winning.
pub(crate) fn go_json_unmarshal(bytes: &[u8]) -> Option<Value> {
    match serde_json::from_slice(bytes) {
        Ok(value) => Some(value),
        Err(_) if std::str::from_utf8(bytes).is_err() => {
            serde_json::from_str(&go_lossy(bytes)).ok()
        }
        Err(_) => None,
    }
}

/// What gjson (`github.com/tidwall/gjson` v1.18, which ESO's Kubernetes provider uses)
/// would find at a path, as the text its `Result.String()` gives; `Err` names path syntax
/// courier does not evaluate (queries, modifiers, pipes, multipaths, `#` inside a path).
pub mod gjson {
    /// A path component.
    enum Part {
        Key { text: Vec<u8>, wild: bool },
    }

    /// `gjson.Get(json, path).String()`; `Ok(None)` when nothing exists there.
    pub fn get_string(json: &[u8], path: &str) -> Result<Option<Vec<u8>>, String> {
        let parts = parse_path(path)?;
        let mut at = skip_ws(json, 0);
        let count = parts.len();
        for (index, Part::Key { text, wild }) in parts.iter().enumerate() {
            match json.get(at) {
                Some(b'{') => match find_member(json, at, text, *wild) {
                    Some(value) => at = value,
                    None => return Ok(None),
                },
                Some(b'[') => {
                    if text.as_slice() == b"#" {
                        if index + 1 != count {
                            return Err(unsupported(path));
                        }
                        return Ok(array_len(json, at).map(|n| n.to_string().into_bytes()));
                    }
                    let Some(n) = digits(text) else {
                        return Ok(None);
                    };
                    match array_item(json, at, n) {
                        Some(value) => at = value,
                        None => return Ok(None),
                    }
                }
                _ => return Ok(None),
            }
        }
        let Some(end) = value_end(json, at) else {
            return Ok(None);
        };
        Ok(result_string(&json[at..end]))
    }

    fn unsupported(path: &str) -> String {
        format!(
            "property path {path:?} uses gjson syntax courier does not evaluate (queries, modifiers, pipes, multipaths, `#` before more path); courier reads keys, array indexes, `*`/`?` wildcards and a final `#`"
        )
    }

    /// gjson's `parseObjectPath`: `.` separates, `\` escapes the next byte, `*` and `?`
    /// make a component a wildcard.
    fn parse_path(path: &str) -> Result<Vec<Part>, String> {
        let bytes = path.as_bytes();
        if path.is_empty() {
            return Ok(Vec::new());
        }
        if matches!(bytes[0], b'@' | b'!' | b'[' | b'{') || path.starts_with("..") {
            return Err(unsupported(path));
        }
        let mut parts = Vec::new();
        let mut text = Vec::new();
        let mut wild = false;
        let mut i = 0;
        while i < bytes.len() {
            match bytes[i] {
                b'\\' => {
                    if let Some(next) = bytes.get(i + 1) {
                        text.push(*next);
                    }
                    i += 2;
                    continue;
                }
                b'|' => return Err(unsupported(path)),
                b'.' => {
                    if matches!(bytes.get(i + 1), Some(b'@' | b'[' | b'{')) {
                        return Err(unsupported(path));
                    }
                    parts.push(Part::Key {
                        text: std::mem::take(&mut text),
                        wild,
                    });
                    wild = false;
                }
                b'*' | b'?' => {
                    wild = true;
                    text.push(bytes[i]);
                }
                b'#' if text.is_empty() && bytes.get(i + 1) == Some(&b'(') => {
                    return Err(unsupported(path));
                }
                b => text.push(b),
            }
            i += 1;
        }
        parts.push(Part::Key { text, wild });
        Ok(parts)
    }

    fn digits(text: &[u8]) -> Option<usize> {
        if text.is_empty() || !text.iter().all(u8::is_ascii_digit) {
            return None;
        }
        std::str::from_utf8(text).ok()?.parse().ok()
    }

    fn skip_ws(json: &[u8], mut i: usize) -> usize {
        while i < json.len() && json[i] <= b' ' {
            i += 1;
        }
        i
    }

    /// Where the value starting at `i` ends (exclusive).
    fn value_end(json: &[u8], i: usize) -> Option<usize> {
        match *json.get(i)? {
            b'"' => {
                let mut j = i + 1;
                while j < json.len() {
                    match json[j] {
                        b'\\' => j += 2,
                        b'"' => return Some(j + 1),
                        _ => j += 1,
                    }
                }
                None
            }
            b'{' | b'[' => {
                let mut depth = 0usize;
                let mut j = i;
                while j < json.len() {
                    match json[j] {
                        b'"' => {
                            j = value_end(json, j)?;
                            continue;
                        }
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => {
                            depth -= 1;
                            if depth == 0 {
                                return Some(j + 1);
                            }
                        }
                        _ => {}
                    }
                    j += 1;
                }
                None
            }
            b'}' | b']' | b',' | b':' => None,
            _ => {
                let mut j = i;
                while j < json.len()
                    && !matches!(
                        json[j],
                        b' ' | b'\t' | b'\r' | b'\n' | b',' | b']' | b'}' | b':'
                    )
                {
                    j += 1;
                }
                Some(j)
            }
        }
    }

    /// The value of the first member of the object at `i` whose key matches.
    fn find_member(json: &[u8], i: usize, part: &[u8], wild: bool) -> Option<usize> {
        let mut j = skip_ws(json, i + 1);
        loop {
            match json.get(j)? {
                b'}' => return None,
                b'"' => {}
                _ => return None,
            }
            let key_end = value_end(json, j)?;
            let raw_key = &json[j + 1..key_end - 1];
            j = skip_ws(json, key_end);
            if json.get(j) != Some(&b':') {
                return None;
            }
            j = skip_ws(json, j + 1);
            let end = value_end(json, j)?;
            let key = if raw_key.contains(&b'\\') {
                unescape(raw_key)
            } else {
                raw_key.to_vec()
            };
            let hit = if wild {
                wildcard(
                    &String::from_utf8_lossy(&key),
                    &String::from_utf8_lossy(part),
                )
            } else {
                key == part
            };
            if hit {
                return Some(j);
            }
            j = skip_ws(json, end);
            match json.get(j)? {
                b',' => j = skip_ws(json, j + 1),
                _ => return None,
            }
        }
    }

    fn array_items(json: &[u8], i: usize) -> Option<Vec<usize>> {
        let mut starts = Vec::new();
        let mut j = skip_ws(json, i + 1);
        if json.get(j) == Some(&b']') {
            return Some(starts);
        }
        loop {
            starts.push(j);
            let end = value_end(json, j)?;
            j = skip_ws(json, end);
            match json.get(j)? {
                b',' => j = skip_ws(json, j + 1),
                b']' => return Some(starts),
                _ => return None,
            }
        }
    }

    fn array_item(json: &[u8], i: usize, n: usize) -> Option<usize> {
        array_items(json, i)?.get(n).copied()
    }

    fn array_len(json: &[u8], i: usize) -> Option<usize> {
        array_items(json, i).map(|items| items.len())
    }

    /// gjson's wildcard match (`tidwall/match`): `*` any run, `?` one character.
    fn wildcard(text: &str, pattern: &str) -> bool {
        let text: Vec<char> = text.chars().collect();
        let pattern: Vec<char> = pattern.chars().collect();
        let (mut t, mut p) = (0, 0);
        let (mut star, mut mark) = (None, 0);
        while t < text.len() {
            if p < pattern.len() && (pattern[p] == '?' || pattern[p] == text[t]) {
                t += 1;
                p += 1;
            } else if p < pattern.len() && pattern[p] == '*' {
                star = Some(p);
                mark = t;
                p += 1;
            } else if let Some(s) = star {
                p = s + 1;
                mark += 1;
                t = mark;
            } else {
                return false;
            }
        }
        while p < pattern.len() && pattern[p] == '*' {
            p += 1;
        }
        p == pattern.len()
    }

    /// `Result.String()` of the raw value text.
    fn result_string(raw: &[u8]) -> Option<Vec<u8>> {
        Some(match *raw.first()? {
            b'"' => {
                let inner = &raw[1..raw.len() - 1];
                if inner.contains(&b'\\') {
                    unescape(inner)
                } else {
                    inner.to_vec()
                }
            }
            b'{' | b'[' => raw.to_vec(),
            b't' => b"true".to_vec(),
            b'f' => b"false".to_vec(),
            b'n' => Vec::new(),
            b'-' | b'0'..=b'9' => number_string(raw),
            _ => return None,
        })
    }

    /// A number's text: an integer as written, anything else as `strconv.FormatFloat(n,
    /// 'f', -1, 64)` of its value (`1e3` is `1000`, `1.50` is `1.5`).
    fn number_string(raw: &[u8]) -> Vec<u8> {
        let body = raw.strip_prefix(b"-").unwrap_or(raw);
        if body.iter().all(u8::is_ascii_digit) {
            return raw.to_vec();
        }
        let value: f64 = std::str::from_utf8(raw)
            .ok()
            .and_then(|text| text.parse().ok())
            .unwrap_or_default();
        go_format_float(value).into_bytes()
    }

    /// `strconv.FormatFloat(f, 'f', -1, 64)`: the shortest digits that read back, never an
    /// exponent (Rust's `Display` for f64 is the same for finite numbers).
    pub(crate) fn go_format_float(f: f64) -> String {
        if f.is_nan() {
            "NaN".to_owned()
        } else if f.is_infinite() {
            if f > 0.0 { "+Inf" } else { "-Inf" }.to_owned()
        } else {
            format!("{f}")
        }
    }

    fn hex4(bytes: &[u8]) -> u32 {
        std::str::from_utf8(bytes.get(..4).unwrap_or_default())
            .ok()
            .and_then(|h| u32::from_str_radix(h, 16).ok())
            .unwrap_or(0)
    }

    /// gjson's `unescape`: stops at a control byte or a bad escape; surrogates that do
    /// not pair become U+FFFD.
    fn unescape(raw: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(raw.len());
        let mut i = 0;
        while i < raw.len() {
            let b = raw[i];
            if b < b' ' {
                return out;
            }
            if b != b'\\' {
                out.push(b);
                i += 1;
                continue;
            }
            i += 1;
            let Some(&e) = raw.get(i) else {
                return out;
            };
            match e {
                b'\\' | b'/' | b'"' => out.push(e),
                b'b' => out.push(0x08),
                b'f' => out.push(0x0c),
                b'n' => out.push(b'\n'),
                b'r' => out.push(b'\r'),
                b't' => out.push(b'\t'),
                b'u' => {
                    if i + 5 > raw.len() {
                        return out;
                    }
                    let mut r = hex4(&raw[i + 1..]);
                    i += 5;
                    if (0xd800..0xe000).contains(&r)
                        && raw.len() >= i + 6
                        && raw[i] == b'\\'
                        && raw[i + 1] == b'u'
                    {
                        let low = hex4(&raw[i + 2..]);
                        r = if (0xd800..0xdc00).contains(&r) && (0xdc00..0xe000).contains(&low) {
                            0x10000 + ((r - 0xd800) << 10) + (low - 0xdc00)
                        } else {
                            0xfffd
                        };
                        i += 6;
                    }
                    let c = char::from_u32(r).unwrap_or('\u{fffd}');
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                    continue;
                }
                _ => return out,
            }
            i += 1;
        }
        out
    }
}
