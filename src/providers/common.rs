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

/// A Vault or OpenBao `server` that is not an `http://` or `https://` URL, refused when the
/// store is parsed (it would fail at every request as "request failed"). The URL is not
/// quoted: it may carry credentials (`https://user:pass@...`).
pub(crate) fn check_server_url(server: &str) -> Result<(), String> {
    let url = reqwest::Url::parse(server).ok();
    match url {
        Some(url) if matches!(url.scheme(), "http" | "https") && url.has_host() => Ok(()),
        _ => Err("server: must be an http:// or https:// URL\nhint: write it with its scheme, as https://bao.example.com:8200".into()),
    }
}

/// Why a path a manifest wrote (`remoteRef.key`, `find.path`) may not go into a Vault or
/// OpenBao request URL, or `None` when it may. The URL parser resolves `.` and `..`
/// segments (also written `%2e`, or with `\` for `/`), so `../auth/token/lookup-self`
/// under a KV v1 mount would read the store's own token, and `../../other/data/x` another
/// mount with the store's identity: a tenant's ExternalSecret could leave the mount the
/// store's author chose. `?` and `#` would end the path, and `%` would be decoded by the
/// server into another path than the one written; the parser drops tabs and newlines
/// (`.\t./` is `../`).
pub(crate) fn path_outside_mount(path: &str) -> Option<&'static str> {
    if path.contains(['?', '#', '%', '\\']) || path.chars().any(char::is_control) {
        return Some(
            "holds ?, #, %, \\ or a control character, which would change the request's path",
        );
    }
    if path
        .split('/')
        .any(|segment| segment == "." || segment == "..")
    {
        return Some("holds a . or .. segment, which would leave the store's mount");
    }
    None
}

/// The error of a read [`path_outside_mount`] refused: the store and the path (a key a
/// manifest wrote, never a value), with a hint.
pub(crate) fn outside_mount_message(store: &str, path: &str, why: &str) -> String {
    format!(
        "{store}: GET {path}: refused: the path {why}\nhint: remoteRef.key and find.path name a secret under the store's mount; a secret elsewhere needs a store of its own"
    )
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

pub(crate) use crate::core::gojson::go_json_unmarshal;
pub use crate::core::gojson::{go_json_of_value, go_json_string};

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

/// What gjson (`github.com/tidwall/gjson` v1.18, which ESO's Kubernetes provider uses)
/// would find at a path, as the text its `Result.String()` gives; `Err` names path syntax
/// courier does not evaluate (queries, modifiers, pipes, multipaths, `#` inside a path).
pub mod gjson {
    /// A path component.
    enum Part {
        Key { text: Vec<u8>, wild: bool },
    }

    /// `gjson.Get(json, path).String()`; `Ok(None)` when nothing exists there. Keys,
    /// indexes, wildcards and a final `#` are read here; queries, modifiers, pipes,
    /// multipaths and `#` inside a path go to tidwall's Rust port of gjson ([`by_port`]).
    pub fn get_string(json: &[u8], path: &str) -> Result<Option<Vec<u8>>, String> {
        match get_simple(json, path) {
            Err(unsupported) => by_port(json, path).ok_or(unsupported),
            found => found,
        }
    }

    /// The `gjson` crate's match, its raw text turned into Go's `Result.String()` as
    /// [`result_string`] does for the hand-written reader. `None` when the JSON is not
    /// UTF-8 (the port reads `&str`): then the path stays refused by name.
    fn by_port(json: &[u8], path: &str) -> Option<Option<Vec<u8>>> {
        let json = std::str::from_utf8(json).ok()?;
        let found = ::gjson::get(json, path);
        if !found.exists() {
            return Some(None);
        }
        Some(result_string(found.json().as_bytes()))
    }

    fn get_simple(json: &[u8], path: &str) -> Result<Option<Vec<u8>>, String> {
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
            "property path {path:?} uses gjson queries, modifiers, pipes or multipaths, which courier evaluates only over JSON that is UTF-8 text, and this value is not\nhint: read the value by keys, array indexes, `*`/`?` wildcards and a final `#`, or store it as UTF-8"
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

    pub(crate) use crate::core::gojson::go_format_float;

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

#[cfg(test)]
mod path_tests {
    use super::path_outside_mount;

    #[test]
    fn paths_that_would_leave_the_mount_are_refused() {
        for path in [
            "../auth/token/lookup-self",
            "a/../../sys/mounts",
            "./x",
            "x/..",
            "%2e%2e/auth/token/lookup-self",
            "..\\auth",
            "app?list=true",
            "app#x",
            ".\t./auth/token/lookup-self",
            ".\n./x",
        ] {
            assert!(path_outside_mount(path).is_some(), "{path} is refused");
        }
        for path in ["app/db", "team/alpha", "a..b/c", ".hidden/x", "x/...", ""] {
            assert_eq!(path_outside_mount(path), None, "{path} is read");
        }
    }
}
