//! The world a plan is made against: namespaces, source Secrets and ConfigMaps,
//! as the cluster (or the files standing in for it) holds them.

use std::collections::{BTreeMap, BTreeSet};

use base64::Engine as _;

use crate::core::load::{Inputs, LoadError, object_display};
use crate::core::model::StringMap;
use crate::core::secret_bytes::SecretBytes;

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

/// Secrets courier never reads nor writes (the Akuity sync rules): ServiceAccount tokens,
/// a deny list of names, and Secrets with a deny label (Argo CD cluster credentials).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockList {
    /// Secret names, in any namespace.
    pub names: Vec<String>,
    /// `key=value` labels; a Secret carrying any of them is blocked.
    pub labels: Vec<(String, String)>,
}

impl Default for BlockList {
    fn default() -> Self {
        Self {
            names: vec!["argocd-secret".into(), "argocd-initial-admin-secret".into()],
            labels: vec![("argocd.argoproj.io/secret-type".into(), "cluster".into())],
        }
    }
}

impl BlockList {
    /// Why a Secret is blocked, if it is.
    pub fn reason(&self, name: &str, type_: &str, labels: &StringMap) -> Option<String> {
        if type_ == "kubernetes.io/service-account-token" {
            return Some("ServiceAccount token Secrets are never read".into());
        }
        if self.names.iter().any(|n| n == name) {
            return Some("the name is on the deny list".into());
        }
        self.labels
            .iter()
            .find(|(k, v)| labels.get(k) == Some(v))
            .map(|(k, v)| format!("it is labelled {k}={v}, which is on the deny list"))
    }

    /// Whether courier may write a Secret of this name.
    pub fn denies_name(&self, name: &str) -> bool {
        self.names.iter().any(|n| n == name)
    }
}

/// Values read from remote stores: `(store, path, version)` to the value, or why not.
pub type RemoteReads = BTreeMap<(String, String, Option<String>), Result<SecretBytes, RemoteError>>;

/// Paths found in remote stores: `(store, pattern)` to the matching paths, or why not.
pub type RemoteFinds = BTreeMap<(String, String), Result<Vec<String>, RemoteError>>;

/// A snapshot of everything a plan may read.
#[derive(Debug, Clone, Default)]
pub struct World {
    /// Namespace name to labels (with `kubernetes.io/metadata.name`).
    pub namespaces: BTreeMap<String, StringMap>,
    /// Namespaces being deleted (`status.phase: Terminating`, or a deletion timestamp):
    /// a ClusterExternalSecret provisions nothing there, as ESO's controller skips them,
    /// and what courier wrote there is left to the namespace's deletion, never pruned.
    pub terminating: BTreeSet<String>,
    /// Namespace, then Secret name.
    pub secrets: BTreeMap<String, BTreeMap<String, SourceSecret>>,
    /// Namespace, then ConfigMap name, then its data.
    pub config_maps: BTreeMap<String, BTreeMap<String, StringMap>>,
    /// Namespace, then name of each blocked Secret, with the reason; never in `secrets`.
    pub blocked: BTreeMap<String, BTreeMap<String, String>>,
    /// What is blocked.
    pub block_list: BlockList,
    /// Secrets prefetched from remote stores: `(store, path, version)` to the secret's
    /// data as a JSON object, or why it could not be read.
    pub remote_reads: RemoteReads,
    /// `(store, find.name.regexp)` to the matching secret paths.
    pub remote_finds: RemoteFinds,
    /// Source Secrets a store read with its own identity (the Kubernetes provider on a
    /// live cluster), by the store's remote key.
    pub store_secrets: BTreeMap<String, StoreSecrets>,
    /// Namespaces and Secrets come from a live cluster. Stores then read their sources
    /// with the identity they name; only a files world serves sources from `secrets`.
    pub live: bool,
    /// `--adopt-existing-targets`: a target of creationPolicy Owner or Orphan that exists
    /// and that courier did not write is adopted and updated in place, as ESO does (its
    /// type, labels and annotations stay), instead of refused (live) or replaced
    /// (`render`). Off by default.
    pub adopt_existing: bool,
    /// A files world's Secrets marked `immutable: true`, by namespace and name: an
    /// existing target whose data or type would change fails, as under ESO.
    pub immutable: BTreeSet<(String, String)>,
    /// The time `spec.syncWindows` are evaluated at (UTC); `None`: the clock, when a
    /// target with windows is planned. Tests set it.
    pub now: Option<jiff::Timestamp>,
}

/// What one store identity could read of its remote namespace.
#[derive(Debug, Clone)]
pub struct StoreSecrets {
    /// The namespace read (`remoteNamespace`).
    pub namespace: String,
    /// Whether the whole namespace was listed (what `find` needs), or why not.
    pub listed: Result<(), RemoteError>,
    /// Secret name to the Secret, or why it could not be read (missing, forbidden,
    /// blocked). A listed namespace holds every Secret; otherwise only those asked for.
    pub secrets: BTreeMap<String, Result<SourceSecret, RemoteError>>,
}

/// Why a remote read failed; names the store, the path and the key, never a value or a token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteError {
    /// What went wrong.
    pub message: String,
    /// The secret does not exist (what `deletionPolicy` is about).
    pub not_found: bool,
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

    /// Adds a source Secret, or records it as blocked.
    pub fn add_secret(&mut self, namespace: &str, name: &str, secret: SourceSecret) {
        match self.block_list.reason(name, &secret.type_, &secret.labels) {
            Some(reason) => {
                self.blocked
                    .entry(namespace.to_owned())
                    .or_default()
                    .insert(name.to_owned(), reason);
            }
            None => {
                self.secrets
                    .entry(namespace.to_owned())
                    .or_default()
                    .insert(name.to_owned(), secret);
            }
        }
    }

    /// Why `namespace/name` is blocked, if it is.
    pub fn blocked_reason(&self, namespace: &str, name: &str) -> Option<&str> {
        self.blocked.get(namespace)?.get(name).map(String::as_str)
    }

    /// Adds a namespace, setting the label the API server sets.
    pub fn add_namespace(&mut self, name: &str, mut labels: StringMap) {
        labels.insert("kubernetes.io/metadata.name".into(), name.to_owned());
        self.namespaces.insert(name.to_owned(), labels);
    }

    /// Builds the world from loaded files; a Secret value that is not base64 is an error
    /// naming the file, the Secret and the key.
    pub fn from_inputs(inputs: &Inputs) -> Result<World, Vec<LoadError>> {
        Self::from_inputs_with(inputs, BlockList::default())
    }

    /// [`World::from_inputs`] with a block list of the caller's.
    pub fn from_inputs_with(
        inputs: &Inputs,
        block_list: BlockList,
    ) -> Result<World, Vec<LoadError>> {
        let mut world = World {
            block_list,
            ..World::default()
        };
        let mut errors = Vec::new();
        for ns in &inputs.namespaces {
            world.add_namespace(&ns.object.metadata.name, ns.object.metadata.labels.clone());
            if ns.object.status.phase.as_deref() == Some("Terminating") {
                world.terminating.insert(ns.object.metadata.name.clone());
            }
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
            if secret.object.immutable == Some(true) {
                world
                    .immutable
                    .insert((namespace.clone(), meta.name.clone()));
            }
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
