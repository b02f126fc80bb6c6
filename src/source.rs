//! Where values come from. A store resolves to a [`SecretsClient`], the same three
//! calls ESO's providers answer; the Kubernetes provider reads a [`World`] snapshot,
//! so the planner stays pure whether the snapshot came from files or from the API.

use std::collections::BTreeMap;

use base64::Engine as _;
use serde_json::Value;

use crate::model::{ConversionStrategy, DecodingStrategy, FindRef, MetadataPolicy, RemoteRef};
use crate::secret_bytes::SecretBytes;
use crate::select::LabelSelector;
use crate::world::{SourceSecret, World};

/// A map of values, as providers return them.
pub type SecretMap = BTreeMap<String, SecretBytes>;

/// Why a value could not be fetched. Messages name stores, Secrets and keys, never values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct FetchError {
    /// What went wrong.
    pub message: String,
    /// The source itself is gone (what `deletionPolicy` is about).
    pub source_missing: bool,
}

impl FetchError {
    /// A fetch failure.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            source_missing: false,
        }
    }
}

/// The calls an ExternalSecret makes on its store.
pub trait SecretsClient {
    /// One value (`data[].remoteRef`).
    fn get_secret(&self, remote_ref: &RemoteRef) -> Result<SecretBytes, FetchError>;
    /// Every key of one source (`dataFrom[].extract`).
    fn get_secret_map(&self, remote_ref: &RemoteRef) -> Result<SecretMap, FetchError>;
    /// Many sources (`dataFrom[].find`).
    fn get_all_secrets(&self, find: &FindRef) -> Result<SecretMap, FetchError>;
}

/// The Kubernetes provider: Secrets of one namespace of the world.
pub struct KubernetesClient<'w> {
    world: &'w World,
    namespace: &'w str,
}

impl<'w> KubernetesClient<'w> {
    /// Reads Secrets of `namespace` (the store's `remoteNamespace`).
    pub fn new(world: &'w World, namespace: &'w str) -> Self {
        Self { world, namespace }
    }

    fn source(&self, name: &str) -> Result<&'w SourceSecret, FetchError> {
        if name.is_empty() {
            return Err(FetchError::new(
                "remoteRef.key is empty; it names the source Secret",
            ));
        }
        if let Some(reason) = self.world.blocked_reason(self.namespace, name) {
            return Err(FetchError::new(format!(
                "source Secret {}/{name} is blocked: {reason}",
                self.namespace
            )));
        }
        self.world
            .secret(self.namespace, name)
            .ok_or_else(|| FetchError {
                message: format!("source Secret {}/{name} not found", self.namespace),
                source_missing: true,
            })
    }
}

impl SecretsClient for KubernetesClient<'_> {
    fn get_secret(&self, remote_ref: &RemoteRef) -> Result<SecretBytes, FetchError> {
        let secret = self.source(&remote_ref.key)?;
        let property = remote_ref.property.as_deref().unwrap_or_default();
        if remote_ref.metadata_policy == Some(MetadataPolicy::Fetch) {
            return metadata_value(secret, property).ok_or_else(|| {
                FetchError::new(format!(
                    "property {property:?} does not exist in metadata of Secret {}/{}",
                    self.namespace, remote_ref.key
                ))
            });
        }
        if property.is_empty() {
            return Ok(SecretBytes::new(go_json_of_text_map(
                secret
                    .data
                    .iter()
                    .map(|(k, v)| (k.as_str(), String::from_utf8_lossy(v.expose()))),
            )));
        }
        property_value(&secret.data, property).ok_or_else(|| {
            FetchError::new(format!(
                "property {property:?} does not exist in data of Secret {}/{}",
                self.namespace, remote_ref.key
            ))
        })
    }

    fn get_secret_map(&self, remote_ref: &RemoteRef) -> Result<SecretMap, FetchError> {
        let secret = self.source(&remote_ref.key)?;
        let map = if remote_ref.metadata_policy == Some(MetadataPolicy::Fetch) {
            BTreeMap::from([
                (
                    "annotations".to_owned(),
                    SecretBytes::new(go_json_of_text_map(text_pairs(&secret.annotations))),
                ),
                (
                    "labels".to_owned(),
                    SecretBytes::new(go_json_of_text_map(text_pairs(&secret.labels))),
                ),
            ])
        } else {
            secret.data.clone()
        };
        match remote_ref.property.as_deref() {
            None | Some("") => Ok(map),
            Some(property) => {
                // ESO looks the property up as an exact key (its values are base64 in the
                // JSON it searches, so no path can descend into them), reads that value as a
                // JSON object and re-encodes each member as JSON.
                let raw = map.get(property).ok_or_else(|| {
                    FetchError::new(format!(
                        "property {property:?} does not exist in key {:?}",
                        remote_ref.key
                    ))
                })?;
                let Ok(Value::Object(members)) = serde_json::from_slice::<Value>(raw.expose())
                else {
                    return Err(FetchError::new(format!(
                        "property {property:?} of Secret {}/{} is not a JSON object",
                        self.namespace, remote_ref.key
                    )));
                };
                Ok(members
                    .into_iter()
                    .map(|(k, v)| {
                        (
                            k,
                            SecretBytes::new(serde_json::to_vec(&v).unwrap_or_default()),
                        )
                    })
                    .collect())
            }
        }
    }

    fn get_all_secrets(&self, find: &FindRef) -> Result<SecretMap, FetchError> {
        if find.path.as_deref().is_some_and(|p| !p.is_empty()) {
            return Err(FetchError::new(
                "find.path is not supported by the Kubernetes provider",
            ));
        }
        type Filter<'a> = Box<dyn Fn(&str, &SourceSecret) -> bool + 'a>;
        let matches: Filter = if let Some(tags) = &find.tags {
            let selector = LabelSelector {
                match_labels: tags.clone(),
                ..Default::default()
            }
            .compile()
            .map_err(|e| FetchError::new(format!("find.tags: {e}")))?;
            Box::new(move |_, secret| selector.matches(&secret.labels))
        } else if let Some(name) = &find.name {
            let pattern = regex::Regex::new(&name.regexp).map_err(|e| {
                FetchError::new(format!(
                    "find.name.regexp is not a valid regular expression: {e}"
                ))
            })?;
            Box::new(move |secret_name, _| pattern.is_match(secret_name))
        } else {
            return Err(FetchError::new("find needs `name.regexp` or `tags`"));
        };
        let mut found = SecretMap::new();
        for (name, secret) in self.world.secrets_in(self.namespace) {
            if matches(name, secret) {
                let json = go_json_of_text_map(
                    secret
                        .data
                        .iter()
                        .map(|(k, v)| (k.as_str(), String::from_utf8_lossy(v.expose()))),
                );
                found.insert(name.clone(), SecretBytes::new(json));
            }
        }
        convert_keys(find.conversion_strategy.unwrap_or_default(), found)
    }
}

/// A remote store (Vault, OpenBao) answered from the values prefetched into the world.
pub struct RemoteClient<'w> {
    world: &'w World,
    store: &'w str,
}

impl<'w> RemoteClient<'w> {
    /// Reads `store`'s prefetched values.
    pub fn new(world: &'w World, store: &'w str) -> Self {
        Self { world, store }
    }

    fn data(
        &self,
        key: &str,
        version: Option<&String>,
    ) -> Result<serde_json::Map<String, Value>, FetchError> {
        let bytes = prefetched(self.world, self.store, key, key, version)?;
        match serde_json::from_slice(bytes.expose()) {
            Ok(Value::Object(map)) => Ok(map),
            _ => Err(FetchError::new(format!(
                "{}: {key} is not a key/value secret",
                self.store
            ))),
        }
    }
}

/// The prefetched value of a remote read, or why there is none.
fn prefetched<'w>(
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

/// A webhook store answered from the responses prefetched into the world.
pub struct WebhookClient<'w> {
    world: &'w World,
    store: &'w str,
}

impl<'w> WebhookClient<'w> {
    /// Reads `store`'s prefetched answers.
    pub fn new(world: &'w World, store: &'w str) -> Self {
        Self { world, store }
    }

    fn answer(
        &self,
        key: &str,
        property: Option<&str>,
        version: Option<&String>,
    ) -> Result<Value, FetchError> {
        let read_key = crate::plan::webhook_read_key(key, property);
        let bytes = prefetched(self.world, self.store, &read_key, key, version)?;
        serde_json::from_slice(bytes.expose()).map_err(|_| {
            FetchError::new(format!("{}: the answer for {key} is not JSON", self.store))
        })
    }
}

impl SecretsClient for WebhookClient<'_> {
    fn get_secret(&self, remote_ref: &RemoteRef) -> Result<SecretBytes, FetchError> {
        let value = self.answer(
            &remote_ref.key,
            remote_ref.property.as_deref(),
            remote_ref.version.as_ref(),
        )?;
        Ok(SecretBytes::new(json_result_bytes(value)))
    }

    fn get_secret_map(&self, remote_ref: &RemoteRef) -> Result<SecretMap, FetchError> {
        match self.answer(&remote_ref.key, None, remote_ref.version.as_ref())? {
            Value::Object(map) => Ok(map
                .iter()
                .map(|(k, v)| (k.clone(), SecretBytes::new(remote_value_bytes(v))))
                .collect()),
            _ => Err(FetchError::new(format!(
                "{}: the answer for {} is not a JSON object",
                self.store, remote_ref.key
            ))),
        }
    }

    fn get_all_secrets(&self, _: &FindRef) -> Result<SecretMap, FetchError> {
        Err(FetchError::new(format!(
            "{}: find is not supported by the webhook provider",
            self.store
        )))
    }
}

/// A remote value as bytes: strings raw, `null` empty, anything else as JSON.
fn remote_value_bytes(value: &Value) -> Vec<u8> {
    json_result_bytes(value.clone())
}

/// JSON with sorted keys, as Go marshals a map.
fn sorted_json(map: &serde_json::Map<String, Value>) -> Vec<u8> {
    let sorted: BTreeMap<&String, &Value> = map.iter().collect();
    serde_json::to_vec(&sorted).unwrap_or_default()
}

impl SecretsClient for RemoteClient<'_> {
    fn get_secret(&self, remote_ref: &RemoteRef) -> Result<SecretBytes, FetchError> {
        let data = self.data(&remote_ref.key, remote_ref.version.as_ref())?;
        match remote_ref.property.as_deref().filter(|p| !p.is_empty()) {
            None => Ok(SecretBytes::new(sorted_json(&data))),
            Some(property) => {
                if let Some(value) = data.get(property) {
                    return Ok(SecretBytes::new(remote_value_bytes(value)));
                }
                json_path(&serde_json::to_vec(&data).unwrap_or_default(), property)
                    .map(|value| SecretBytes::new(json_result_bytes(value)))
                    .ok_or_else(|| {
                        FetchError::new(format!(
                            "{}: property {property:?} does not exist in {}",
                            self.store, remote_ref.key
                        ))
                    })
            }
        }
    }

    fn get_secret_map(&self, remote_ref: &RemoteRef) -> Result<SecretMap, FetchError> {
        let data = self.data(&remote_ref.key, remote_ref.version.as_ref())?;
        let object = match remote_ref.property.as_deref().filter(|p| !p.is_empty()) {
            None => data,
            Some(property) => {
                match json_path(&serde_json::to_vec(&data).unwrap_or_default(), property) {
                    Some(Value::Object(object)) => object,
                    _ => {
                        return Err(FetchError::new(format!(
                            "{}: property {property:?} of {} is not a JSON object",
                            self.store, remote_ref.key
                        )));
                    }
                }
            }
        };
        Ok(object
            .iter()
            .map(|(k, v)| (k.clone(), SecretBytes::new(remote_value_bytes(v))))
            .collect())
    }

    fn get_all_secrets(&self, find: &FindRef) -> Result<SecretMap, FetchError> {
        if find.tags.is_some() {
            return Err(FetchError::new(format!(
                "{}: find.tags is not supported for Vault stores; use find.name",
                self.store
            )));
        }
        let Some(name) = &find.name else {
            return Err(FetchError::new("find needs `name.regexp`"));
        };
        let paths = match self
            .world
            .remote_finds
            .get(&(self.store.to_owned(), name.regexp.clone()))
        {
            None => {
                return Err(FetchError::new(format!(
                    "{}: find {:?} was not fetched",
                    self.store, name.regexp
                )));
            }
            Some(Err(error)) => return Err(FetchError::new(error.message.clone())),
            Some(Ok(paths)) => paths,
        };
        let mut found = SecretMap::new();
        for path in paths {
            found.insert(
                path.clone(),
                SecretBytes::new(sorted_json(&self.data(path, None)?)),
            );
        }
        convert_keys(find.conversion_strategy.unwrap_or_default(), found)
    }
}

fn text_pairs(
    map: &BTreeMap<String, String>,
) -> impl Iterator<Item = (&str, std::borrow::Cow<'_, str>)> {
    map.iter()
        .map(|(k, v)| (k.as_str(), std::borrow::Cow::Borrowed(v.as_str())))
}

/// `data[key]`, or, when `key` is absent and contains a dot, the JSON path after the
/// first dot inside the value of the part before it (ESO's Kubernetes provider rule).
pub fn property_value(data: &SecretMap, property: &str) -> Option<SecretBytes> {
    if let Some(value) = data.get(property) {
        return Some(value.clone());
    }
    let dot = property.find('.')?;
    if dot == 0 || dot == property.len() - 1 {
        return None;
    }
    let raw = data.get(&property[..dot])?;
    json_path(raw.expose(), &property[dot + 1..])
        .map(|value| SecretBytes::new(json_result_bytes(value)))
}

fn metadata_value(secret: &SourceSecret, property: &str) -> Option<SecretBytes> {
    let mut path = property.split('.');
    let map = match path.next()? {
        "labels" => &secret.labels,
        "annotations" => &secret.annotations,
        _ => return None,
    };
    let Some(key) = path.next() else {
        return Some(SecretBytes::new(go_json_of_text_map(text_pairs(map))));
    };
    let value = map.get(key)?;
    let rest: Vec<&str> = path.collect();
    if rest.is_empty() {
        return Some(SecretBytes::from(value.as_str()));
    }
    json_path(value.as_bytes(), &rest.join(".")).map(|v| SecretBytes::new(json_result_bytes(v)))
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
fn json_result_bytes(value: Value) -> Vec<u8> {
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

/// Applies `decodingStrategy` to one value.
pub fn decode(strategy: DecodingStrategy, value: SecretBytes) -> Result<SecretBytes, FetchError> {
    use base64::engine::general_purpose::{STANDARD, URL_SAFE};
    match strategy {
        DecodingStrategy::None => Ok(value),
        DecodingStrategy::Base64 => STANDARD
            .decode(value.expose())
            .map(SecretBytes::new)
            .map_err(|_| FetchError::new("value is not valid base64 (decodingStrategy: Base64)")),
        DecodingStrategy::Base64Url => URL_SAFE
            .decode(value.expose())
            .map(SecretBytes::new)
            .map_err(|_| {
                FetchError::new("value is not valid base64url (decodingStrategy: Base64URL)")
            }),
        DecodingStrategy::Auto => Ok(STANDARD
            .decode(value.expose())
            .or_else(|_| URL_SAFE.decode(value.expose()))
            .map(SecretBytes::new)
            .unwrap_or(value)),
    }
}

/// Applies `conversionStrategy` to keys, as ESO does for `find` results.
pub fn convert_keys(strategy: ConversionStrategy, map: SecretMap) -> Result<SecretMap, FetchError> {
    let mut out = SecretMap::new();
    for (key, value) in map {
        let converted: String = key
            .chars()
            .map(|c| {
                if c.is_alphanumeric() || matches!(c, '-' | '.' | '_') {
                    c.to_string()
                } else {
                    match strategy {
                        ConversionStrategy::Default => "_".to_owned(),
                        ConversionStrategy::Unicode => format!("_U{:04x}_", c as u32),
                    }
                }
            })
            .collect();
        if out.insert(converted.clone(), value).is_some() {
            return Err(FetchError::new(format!(
                "key collision after conversion: {converted:?}"
            )));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> SecretMap {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), SecretBytes::from(*v)))
            .collect()
    }

    #[test]
    fn exact_key_wins_over_a_json_path() {
        let data = map(&[("file.png", "raw"), ("file", r#"{"png":"nested"}"#)]);
        assert_eq!(property_value(&data, "file.png").unwrap().expose(), b"raw");
    }

    #[test]
    fn dotted_property_follows_the_json_path() {
        let data = map(&[(
            "config",
            r#"{"db":{"user":"u","port":5432,"hosts":["a","b"],"tls":{"on":true}}}"#,
        )]);
        let get = |p: &str| {
            property_value(&data, p).map(|v| String::from_utf8(v.expose().to_vec()).unwrap())
        };
        assert_eq!(get("config.db.user").as_deref(), Some("u"));
        assert_eq!(get("config.db.port").as_deref(), Some("5432"));
        assert_eq!(get("config.db.hosts.1").as_deref(), Some("b"));
        assert_eq!(get("config.db.tls").as_deref(), Some(r#"{"on":true}"#));
        assert_eq!(get("config.db.missing"), None);
        assert_eq!(get(".config"), None);
        assert_eq!(get("config."), None);
        assert_eq!(get("nothing"), None);
    }

    #[test]
    fn escaped_dots_stay_in_the_key() {
        let data = map(&[("c", r#"{"a.b":"x"}"#)]);
        assert_eq!(property_value(&data, r"c.a\.b").unwrap().expose(), b"x");
    }

    #[test]
    fn whole_secret_is_sorted_compact_json_like_go() {
        let json =
            go_json_of_text_map([("username", "u"), ("password", "p<&>\u{2028}")].into_iter());
        assert_eq!(
            String::from_utf8(json).unwrap(),
            r#"{"password":"p<&>\u2028","username":"u"}"#
        );
    }

    #[test]
    fn decoding_strategies() {
        let decode_str = |s: DecodingStrategy, v: &str| {
            decode(s, SecretBytes::from(v)).map(|b| b.expose().to_vec())
        };
        assert_eq!(decode_str(DecodingStrategy::None, "aGk=").unwrap(), b"aGk=");
        assert_eq!(decode_str(DecodingStrategy::Base64, "aGk=").unwrap(), b"hi");
        assert!(decode_str(DecodingStrategy::Base64, "not base64!").is_err());
        assert_eq!(
            decode_str(DecodingStrategy::Base64Url, "_-8=").unwrap(),
            vec![0xff, 0xef]
        );
        assert_eq!(
            decode_str(DecodingStrategy::Auto, "_-8=").unwrap(),
            vec![0xff, 0xef]
        );
        assert_eq!(
            decode_str(DecodingStrategy::Auto, "plain text").unwrap(),
            b"plain text"
        );
    }

    #[test]
    fn conversion_replaces_characters_outside_the_key_alphabet() {
        let converted = convert_keys(ConversionStrategy::Default, map(&[("a/b c", "1")])).unwrap();
        assert!(converted.contains_key("a_b_c"));
        let unicode = convert_keys(ConversionStrategy::Unicode, map(&[("a/b", "1")])).unwrap();
        assert!(unicode.contains_key("a_U002f_b"));
        assert!(
            convert_keys(
                ConversionStrategy::Default,
                map(&[("a/b", "1"), ("a_b", "2")])
            )
            .is_err()
        );
    }
}
