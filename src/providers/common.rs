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

/// Go's `json.Marshal(map[string]string)` as ESO calls it (sorted keys, no HTML
/// escaping, U+2028/U+2029 escaped), so `{{ key }}` without a property matches ESO byte for byte.
pub fn go_json_of_text_map<'a, V: AsRef<str>>(
    pairs: impl Iterator<Item = (&'a str, V)>,
) -> Vec<u8> {
    let map: BTreeMap<&str, V> = pairs.collect();
    let mut out = String::from("{");
    for (index, (key, value)) in map.iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        out.push_str(&go_json_string(key));
        out.push(':');
        out.push_str(&go_json_string(value.as_ref()));
    }
    out.push('}');
    out.into_bytes()
}

fn go_json_string(text: &str) -> String {
    serde_json::to_string(text)
        .expect("strings always serialize")
        .replace('\u{2028}', "\\u2028")
        .replace('\u{2029}', "\\u2029")
}
