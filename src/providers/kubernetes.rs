//! The Kubernetes provider (`spec.provider.kubernetes`): source Secrets of the store's
//! `remoteNamespace`, read from the world snapshot (files, or the cluster's Secrets
//! LISTed once per reconcile), so nothing is fetched per target.
//!
//! Its `server`, `auth` and `authRef` are not used yet: courier reads with its own
//! identity.

use std::any::Any;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;

use super::common::{go_json_of_text_map, json_path, json_result_bytes};
use super::provider::Provider;
use crate::core::model::{FindRef, LabelSelector, MetadataPolicy, RemoteRef};
use crate::core::plan::convert_keys;
use crate::core::provider::{
    FetchError, SecretMap, SecretsClient, StoreInfo, StoreProvider,
};
use crate::core::redact::scrub_serde_message;
use crate::core::secret_bytes::SecretBytes;
use crate::core::world::{SourceSecret, World};

/// `spec.provider.kubernetes`.
pub struct Kubernetes;

impl Provider for Kubernetes {
    fn name(&self) -> &'static str {
        "kubernetes"
    }

    fn parse(&self, config: &Value, _: &StoreInfo<'_>) -> Result<Arc<dyn StoreProvider>, String> {
        let config: KubernetesProvider = serde_json::from_value(config.clone())
            .map_err(|e| scrub_serde_message(&e.to_string()))?;
        Ok(Arc::new(KubernetesStore {
            remote_namespace: config
                .remote_namespace
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| "default".into()),
        }))
    }
}

/// A Kubernetes store, parsed.
#[derive(Debug)]
pub struct KubernetesStore {
    /// `remoteNamespace` (`default` when absent).
    pub remote_namespace: String,
}

impl StoreProvider for KubernetesStore {
    fn provider_name(&self) -> &'static str {
        "kubernetes"
    }

    fn share_key(&self) -> String {
        format!("kubernetes:{}", self.remote_namespace)
    }

    fn client<'w>(&'w self, world: &'w World) -> Box<dyn SecretsClient + 'w> {
        Box::new(KubernetesClient::new(world, &self.remote_namespace))
    }

    fn world_namespaces(&self) -> BTreeSet<String> {
        BTreeSet::from([self.remote_namespace.clone()])
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// `spec.provider.kubernetes`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KubernetesProvider {
    /// Namespace holding the source Secrets; `default` when absent.
    #[serde(default)]
    pub remote_namespace: Option<String>,
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

}
