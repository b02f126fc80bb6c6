//! The world a plan is made against: namespaces, source Secrets and ConfigMaps,
//! as the cluster (or the files standing in for it) holds them.

use std::collections::BTreeMap;

use base64::Engine as _;

use crate::load::{Inputs, LoadError, object_display};
use crate::model::StringMap;
use crate::secret_bytes::SecretBytes;

/// A Secret as the API server stores it: `stringData` folded into `data`, values decoded.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SourceSecret {
    /// Labels.
    pub labels: StringMap,
    /// Annotations.
    pub annotations: StringMap,
    /// `type`.
    pub type_: String,
    /// Decoded values.
    pub data: BTreeMap<String, SecretBytes>,
}

/// A snapshot of everything a plan may read.
#[derive(Debug, Clone, Default)]
pub struct World {
    /// Namespace name to labels (with `kubernetes.io/metadata.name`).
    pub namespaces: BTreeMap<String, StringMap>,
    /// Namespace, then Secret name.
    pub secrets: BTreeMap<String, BTreeMap<String, SourceSecret>>,
    /// Namespace, then ConfigMap name, then its data.
    pub config_maps: BTreeMap<String, BTreeMap<String, StringMap>>,
}

impl World {
    /// The Secret `namespace/name`, if the world has it.
    pub fn secret(&self, namespace: &str, name: &str) -> Option<&SourceSecret> {
        self.secrets.get(namespace)?.get(name)
    }

    /// Every Secret of `namespace`, by name.
    pub fn secrets_in(&self, namespace: &str) -> impl Iterator<Item = (&String, &SourceSecret)> {
        self.secrets.get(namespace).into_iter().flatten()
    }

    /// Adds a namespace, setting the label the API server sets.
    pub fn add_namespace(&mut self, name: &str, mut labels: StringMap) {
        labels.insert("kubernetes.io/metadata.name".into(), name.to_owned());
        self.namespaces.insert(name.to_owned(), labels);
    }

    /// Builds the world from loaded files; a Secret value that is not base64 is an error
    /// naming the file, the Secret and the key.
    pub fn from_inputs(inputs: &Inputs) -> Result<World, Vec<LoadError>> {
        let mut world = World::default();
        let mut errors = Vec::new();
        for ns in &inputs.namespaces {
            world.add_namespace(&ns.object.metadata.name, ns.object.metadata.labels.clone());
        }
        for secret in &inputs.secrets {
            let meta = &secret.object.metadata;
            let namespace = meta.namespace.clone().unwrap_or_default();
            let mut data = BTreeMap::new();
            for (key, encoded) in &secret.object.data {
                match decode_secret_data(encoded) {
                    Some(bytes) => {
                        data.insert(key.clone(), SecretBytes::new(bytes));
                    }
                    None => errors.push(LoadError {
                        origin: secret.origin.clone(),
                        object: Some(object_display("Secret", Some(&namespace), &meta.name)),
                        message: format!("data.{key}: not valid base64"),
                    }),
                }
            }
            for (key, text) in &secret.object.string_data {
                data.insert(key.clone(), SecretBytes::from(text.as_str()));
            }
            let source = SourceSecret {
                labels: meta.labels.clone(),
                annotations: meta.annotations.clone(),
                type_: secret
                    .object
                    .type_
                    .clone()
                    .unwrap_or_else(|| "Opaque".into()),
                data,
            };
            world
                .secrets
                .entry(namespace)
                .or_default()
                .insert(meta.name.clone(), source);
        }
        for config_map in &inputs.config_maps {
            let meta = &config_map.object.metadata;
            world
                .config_maps
                .entry(meta.namespace.clone().unwrap_or_default())
                .or_default()
                .insert(meta.name.clone(), config_map.object.data.clone());
        }
        if errors.is_empty() {
            Ok(world)
        } else {
            Err(errors)
        }
    }
}

/// Decodes a Secret's `data` value as the API server does (standard alphabet, padded;
/// whitespace is not allowed in JSON/YAML-submitted data but kubectl users paste it, so
/// line breaks are tolerated).
pub fn decode_secret_data(encoded: &str) -> Option<Vec<u8>> {
    let engine = &base64::engine::general_purpose::STANDARD;
    if encoded.contains(['\n', '\r', ' ']) {
        let compact: String = encoded.chars().filter(|c| !c.is_whitespace()).collect();
        engine.decode(compact).ok()
    } else {
        engine.decode(encoded).ok()
    }
}
