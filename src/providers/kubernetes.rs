//! The Kubernetes provider (`spec.provider.kubernetes`): source Secrets of the store's
//! `remoteNamespace`.
//!
//! On a live cluster a store reads with the identity it names, as ESO does: `auth`
//! (`serviceAccount`, `token`, `cert`) or `authRef` (a kubeconfig in a Secret), against
//! `server` (default: the cluster courier talks to). courier's own identity only reads
//! the credential material the store names and requests ServiceAccount tokens; the
//! sources themselves are read with the store's client, one LIST per (identity,
//! namespace), or one GET per distinct key where that identity may not list. So a tenant
//! who may write a SecretStore reaches nothing its ServiceAccount cannot.
//!
//! A files world (`render` over files) has no identities: the files are the sources.
//! Building the identity's client (credentials, TokenRequests, kubeconfigs) is in
//! `kubernetes_identity.rs`; this file decides what to read and with whom.

use std::any::Any;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use futures::future::BoxFuture;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams};
use serde::Deserialize;
use serde_json::Value;

use super::common::{
    go_json_of_byte_map, go_json_of_string_map, go_json_of_value, go_json_unmarshal, gjson,
    parse_config,
};
use super::kubernetes_identity::{
    CaProvider, Credential, CredentialRef, Server, api_message, identity_client, status_of,
};
use super::provider::{FetchContext, FetchStats, Fetched, Provider};
use crate::core::load::StoreKind;
use crate::core::model::{
    FindRef, LabelSelector, MetadataPolicy, RemoteRef, SecretKeySelector, ServiceAccountSelector,
};
use crate::core::plan::convert_keys;
use crate::core::provider::{
    FetchError, SecretMap, SecretsClient, StoreInfo, StoreProvider, StoreReads,
};
use crate::core::secret_bytes::SecretBytes;
use crate::core::suggest::did_you_mean;
use crate::core::world::{RemoteError, SourceSecret, StoreSecrets, World};


/// `spec.provider.kubernetes`.
pub struct Kubernetes;

impl Provider for Kubernetes {
    fn name(&self) -> &'static str {
        "kubernetes"
    }

    fn implemented(&self) -> &'static [&'static str] {
        IMPLEMENTED
    }

    fn parse(&self, config: &Value, store: &StoreInfo<'_>) -> Result<Arc<dyn StoreProvider>, String> {
        let config: KubernetesProvider = parse_config(config)?;
        validate(&config, store)?;
        let remote_namespace = config
            .remote_namespace
            .clone()
            .filter(|n| !n.is_empty())
            .unwrap_or_else(|| "default".into());
        Ok(Arc::new(KubernetesStore {
            display: store.display.to_owned(),
            kind: store.kind,
            own_namespace: store.namespace.unwrap_or_default().to_owned(),
            remote_namespace,
            live: store.live,
            config,
        }))
    }

    fn prefetch<'a>(
        &'a self,
        wanted: &'a StoreReads,
        world: &'a World,
        context: &'a FetchContext,
        fetched: &'a mut Fetched,
    ) -> BoxFuture<'a, FetchStats> {
        Box::pin(async move {
            match wanted.store.as_any().downcast_ref::<KubernetesStore>() {
                Some(store) => prefetch(store, wanted, world, context, fetched).await,
                None => FetchStats::default(),
            }
        })
    }
}

/// The fields of `spec.provider.kubernetes` courier reads ([`Provider::implemented`]):
/// all of ESO's. `remoteNamespace` (`parse`), `server.url`, `server.caBundle` and
/// `server.caProvider` (`KubernetesStore::server`, `other_server`), the three `auth`
/// methods and `authRef` (`KubernetesStore::credential`, `files_credentials`).
pub const IMPLEMENTED: &[&str] = &[
    "remoteNamespace",
    "server.url",
    "server.caBundle",
    "server.caProvider",
    "auth.serviceAccount",
    "auth.token",
    "auth.cert",
    "authRef",
];

/// `spec.provider.kubernetes`, as ESO defines it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KubernetesProvider {
    /// Namespace holding the source Secrets; `default` when absent.
    #[serde(default)]
    pub remote_namespace: Option<String>,
    /// The API server to read from; the cluster courier talks to when absent.
    #[serde(default)]
    pub server: Option<KubernetesServer>,
    /// The identity to read with.
    #[serde(default)]
    pub auth: Option<KubernetesAuth>,
    /// A kubeconfig in a Secret; `server` is then ignored.
    #[serde(default)]
    pub auth_ref: Option<SecretKeySelector>,
}

/// `kubernetes.server`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KubernetesServer {
    /// `https://host:port`. ESO's CRD defaults it to `kubernetes.default`, the cluster
    /// ESO runs in; courier takes that to mean the cluster it talks to.
    #[serde(default)]
    pub url: Option<String>,
    /// PEM CA bundle, base64-encoded (the CRD's `[]byte`).
    #[serde(default)]
    pub ca_bundle: Option<String>,
    /// The CA bundle from a Secret or ConfigMap key.
    #[serde(default)]
    pub ca_provider: Option<CaProvider>,
}

/// `kubernetes.auth`: exactly one of these.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KubernetesAuth {
    /// A ServiceAccount whose token courier requests (TokenRequest).
    #[serde(default)]
    pub service_account: Option<ServiceAccountSelector>,
    /// A bearer token kept in a Secret.
    #[serde(default)]
    pub token: Option<TokenAuth>,
    /// A client certificate and key kept in Secrets.
    #[serde(default)]
    pub cert: Option<CertAuth>,
}

/// `auth.token`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenAuth {
    /// The Secret key holding the token.
    #[serde(default)]
    pub bearer_token: SecretKeySelector,
}

/// `auth.cert`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CertAuth {
    /// PEM client certificate.
    #[serde(default)]
    pub client_cert: SecretKeySelector,
    /// PEM private key.
    #[serde(default)]
    pub client_key: SecretKeySelector,
}

/// ESO's store validation, plus courier's rule that a live store names an identity.
fn validate(config: &KubernetesProvider, store: &StoreInfo<'_>) -> Result<(), String> {
    let namespaced = store.kind == StoreKind::SecretStore;
    // A SecretStore's references stay in its own namespace, as ESO's webhook enforces.
    let reference = |field: &str, namespace: Option<&str>| store.check_reference(field, namespace);
    let selector = |field: &str, selector: &SecretKeySelector| {
        if selector.name.is_empty() {
            return Err(format!("{field}.name is empty"));
        }
        if selector.key.is_empty() {
            return Err(format!("{field}.key is empty"));
        }
        reference(field, selector.namespace.as_deref())
    };
    if let Some(ca) = config.server.as_ref().and_then(|s| s.ca_provider.as_ref()) {
        match (namespaced, ca.namespace.as_deref().filter(|n| !n.is_empty())) {
            (true, Some(_)) => {
                return Err("server.caProvider.namespace must be empty for a SecretStore".into());
            }
            (false, None) => {
                return Err(
                    "server.caProvider.namespace is required for a ClusterSecretStore".into(),
                );
            }
            _ => {}
        }
        if !matches!(ca.type_.as_str(), "Secret" | "ConfigMap") {
            return Err(format!(
                "server.caProvider.type must be Secret or ConfigMap, not {:?}",
                ca.type_
            ));
        }
    }
    if let Some(reference) = &config.auth_ref {
        selector("authRef", reference)?;
    }
    if let Some(auth) = &config.auth {
        let chosen = [
            auth.service_account.is_some(),
            auth.token.is_some(),
            auth.cert.is_some(),
        ];
        if chosen.iter().filter(|c| **c).count() != 1 {
            return Err("auth needs exactly one of serviceAccount, token or cert".into());
        }
        if let Some(account) = &auth.service_account {
            if account.name.is_empty() {
                return Err("auth.serviceAccount.name is empty".into());
            }
            reference("auth.serviceAccount", account.namespace.as_deref())?;
        }
        if let Some(token) = &auth.token {
            selector("auth.token.bearerToken", &token.bearer_token)?;
        }
        if let Some(cert) = &auth.cert {
            selector("auth.cert.clientCert", &cert.client_cert)?;
            selector("auth.cert.clientKey", &cert.client_key)?;
        }
    }
    if store.live && config.auth.is_none() && config.auth_ref.is_none() {
        return Err("names no identity: courier reads a store's Secrets with the identity the store names, as ESO does\nhint: add auth: {serviceAccount: {name: <a ServiceAccount that may read the remote namespace>}}, or auth.token, auth.cert or authRef".into());
    }
    Ok(())
}

/// A Kubernetes store, parsed.
#[derive(Debug)]
pub struct KubernetesStore {
    display: String,
    kind: StoreKind,
    own_namespace: String,
    /// `remoteNamespace` (`default` when absent).
    pub remote_namespace: String,
    /// Read with the store's identity (a live world) rather than from the files.
    live: bool,
    config: KubernetesProvider,
}

impl KubernetesStore {
    /// Where a reference naming `named` (or nothing) is read for an ExternalSecret in
    /// `namespace`: a SecretStore's own namespace; for a ClusterSecretStore the named
    /// namespace, else the ExternalSecret's (ESO's "referent" auth).
    fn reference_namespace(&self, named: Option<&str>, namespace: &str) -> String {
        match self.kind {
            StoreKind::SecretStore => self.own_namespace.clone(),
            StoreKind::ClusterSecretStore => named
                .filter(|n| !n.is_empty())
                .unwrap_or(namespace)
                .to_owned(),
        }
    }

    /// Whether the identity depends on the ExternalSecret's namespace.
    fn referent(&self) -> bool {
        if self.kind == StoreKind::SecretStore {
            return false;
        }
        let unnamed = |s: &SecretKeySelector| s.namespace.as_deref().is_none_or(str::is_empty);
        if let Some(reference) = &self.config.auth_ref {
            return unnamed(reference);
        }
        let Some(auth) = &self.config.auth else {
            return false;
        };
        auth.service_account
            .as_ref()
            .is_some_and(|a| a.namespace.as_deref().is_none_or(str::is_empty))
            || auth.token.as_ref().is_some_and(|t| unnamed(&t.bearer_token))
            || auth
                .cert
                .as_ref()
                .is_some_and(|c| unnamed(&c.client_cert) || unnamed(&c.client_key))
    }

    /// For ESO's `Validate` ([`super::kubernetes_validate`]): the store's name, the identity
    /// it names and its server; `None` for a ClusterSecretStore whose identity depends on
    /// the ExternalSecret's namespace, which nothing can check ahead.
    pub(super) fn own_identity(&self) -> Option<(&str, Option<Credential>, Server<'_>)> {
        if self.kind == StoreKind::ClusterSecretStore && self.referent() {
            return None;
        }
        let namespace = &self.own_namespace;
        Some((&self.display, self.credential(namespace), self.server(namespace)))
    }

    fn identity_key(&self, namespace: &str) -> String {
        if self.referent() {
            format!("{} (for namespace {namespace})", self.display)
        } else {
            self.display.clone()
        }
    }
}

impl StoreProvider for KubernetesStore {
    fn provider_name(&self) -> &'static str {
        "kubernetes"
    }

    fn share_key(&self, namespace: &str) -> String {
        if self.live {
            format!("kubernetes:{}", self.identity_key(namespace))
        } else {
            format!("kubernetes:{}", self.remote_namespace)
        }
    }

    fn client<'w>(&'w self, world: &'w World, namespace: &str) -> Box<dyn SecretsClient + 'w> {
        let sources = if self.live {
            Sources::Store(world.store_secrets.get(&self.identity_key(namespace)))
        } else {
            Sources::World(world)
        };
        // A remoteNamespace the world lacks (a live cluster's namespaces; the files'
        // Namespaces, when they hold any, and their Secrets' namespaces) is named as
        // such, with the store, not as a missing Secret.
        let same_cluster = self.other_server().is_none() && self.config.auth_ref.is_none();
        let missing_namespace = (same_cluster
            && !world.namespaces.is_empty()
            && !world.namespaces.contains_key(&self.remote_namespace)
            && !world.secrets.contains_key(&self.remote_namespace))
        .then_some(self.display.as_str());
        let store_error = if self.live {
            None
        } else {
            self.files_credentials(world, namespace)
        };
        Box::new(KubernetesClient {
            sources,
            namespace: &self.remote_namespace,
            missing_namespace,
            store_error,
        })
    }

    fn remote_key(&self, namespace: &str) -> Option<String> {
        self.live.then(|| self.identity_key(namespace))
    }

    fn remote_reads(&self, _: &str, spec: &crate::core::model::ExternalSecretSpec, reads: &mut StoreReads) {
        for data in &spec.data {
            reads.reads.insert((data.remote_ref.key.clone(), None));
        }
        for from in &spec.data_from {
            if let Some(extract) = &from.extract {
                reads.reads.insert((extract.key.clone(), None));
            }
            if from.find.is_some() {
                // A find needs the whole namespace listed; the pattern is applied later.
                reads.finds.insert(String::new());
            }
        }
    }

    fn world_namespaces(&self) -> BTreeSet<String> {
        if self.live {
            // Credentials are read one by one, with courier's identity, when fetching.
            BTreeSet::new()
        } else {
            BTreeSet::from([self.remote_namespace.clone()])
        }
    }

    fn watched_namespaces(&self) -> BTreeSet<String> {
        BTreeSet::from([self.remote_namespace.clone()])
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Where a Kubernetes store's Secrets come from.
enum Sources<'w> {
    /// A files world: its Secrets are the sources.
    World(&'w World),
    /// A live world: what the store's identity read, if it was fetched.
    Store(Option<&'w StoreSecrets>),
}

/// ESO's three calls over one namespace's Secrets.
pub struct KubernetesClient<'w> {
    sources: Sources<'w>,
    namespace: &'w str,
    /// The store's name when its remoteNamespace does not exist.
    missing_namespace: Option<&'w str>,
    /// Why the store fails as a whole (credentials it names are missing).
    store_error: Option<String>,
}

impl<'w> KubernetesClient<'w> {
    /// Reads Secrets of `namespace` from a files world.
    pub fn new(world: &'w World, namespace: &'w str) -> Self {
        Self {
            sources: Sources::World(world),
            namespace,
            missing_namespace: None,
            store_error: None,
        }
    }

    fn source(&self, name: &str) -> Result<&'w SourceSecret, FetchError> {
        if let Some(error) = &self.store_error {
            return Err(FetchError::new(error.clone()));
        }
        if name.is_empty() {
            return Err(FetchError::new(
                "remoteRef.key is empty; it names the source Secret",
            ));
        }
        // Names of the namespace's Secrets (never their values) for a "did you mean".
        let known: Vec<&str> = match self.sources {
            Sources::World(world) => world
                .secrets
                .get(self.namespace)
                .map(|secrets| secrets.keys().map(String::as_str).collect())
                .unwrap_or_default(),
            Sources::Store(Some(read)) => read.secrets.keys().map(String::as_str).collect(),
            Sources::Store(None) => Vec::new(),
        };
        let no_namespace = self.missing_namespace.map(|store| {
            format!(
                ": namespace {} does not exist; it is the remoteNamespace of {store}\nhint: set the store's remoteNamespace to the namespace that holds the source Secrets",
                self.namespace
            )
        });
        let not_found = || FetchError {
            message: format!(
                "source Secret {}/{name} not found{}",
                self.namespace,
                no_namespace.clone().unwrap_or_else(|| {
                    crate::core::suggest::did_you_mean(name, known.iter().copied())
                        .map(|k| format!("; did you mean {k:?}?"))
                        .unwrap_or_default()
                })
            ),
            // A remoteNamespace that does not exist is the store's mistake (a typo), not
            // a source that is gone: deletionPolicy Delete removes nothing for it (ESO,
            // whose reader's Role sits in the real namespace, is refused, and keeps the
            // target too).
            source_missing: no_namespace.is_none(),
        };
        match self.sources {
            Sources::World(world) => {
                if let Some(reason) = world.blocked_reason(self.namespace, name) {
                    return Err(FetchError::new(format!(
                        "source Secret {}/{name} is blocked: {reason}",
                        self.namespace
                    )));
                }
                world.secret(self.namespace, name).ok_or_else(not_found)
            }
            Sources::Store(None) => Err(FetchError::new(format!(
                "source Secret {}/{name} was not fetched",
                self.namespace
            ))),
            Sources::Store(Some(read)) => match read.secrets.get(name) {
                Some(Ok(secret)) => Ok(secret),
                // A namespace that does not exist is the cause, whatever the read said
                // (no Role can grant a namespace that is not there: a 403, typically).
                _ if no_namespace.is_some() => Err(not_found()),
                Some(Err(error)) => Err(FetchError {
                    message: error.message.clone(),
                    source_missing: error.not_found,
                }),
                None => match &read.listed {
                    Ok(()) => Err(not_found()),
                    Err(error) => Err(FetchError::new(error.message.clone())),
                },
            },
        }
    }

    /// Every readable Secret of the namespace (what `find` searches).
    fn secrets_in(&self) -> Result<Vec<(&'w String, &'w SourceSecret)>, FetchError> {
        if let Some(error) = &self.store_error {
            return Err(FetchError::new(error.clone()));
        }
        match self.sources {
            Sources::World(world) => Ok(world.secrets_in(self.namespace).collect()),
            Sources::Store(None) => Err(FetchError::new(format!(
                "Secrets of {} were not fetched",
                self.namespace
            ))),
            Sources::Store(Some(read)) => match &read.listed {
                Ok(()) => Ok(read
                    .secrets
                    .iter()
                    .filter_map(|(name, secret)| Some((name, secret.as_ref().ok()?)))
                    .collect()),
                Err(error) => Err(FetchError::new(error.message.clone())),
            },
        }
    }
}

impl SecretsClient for KubernetesClient<'_> {
    /// ESO's `Client.GetSecret` (providers/v1/kubernetes/client.go).
    fn get_secret(&self, remote_ref: &RemoteRef) -> Result<SecretBytes, FetchError> {
        let secret = self.source(&remote_ref.key)?;
        let property = remote_ref.property.as_deref().unwrap_or_default();
        let fetch_metadata = remote_ref.metadata_policy == Some(MetadataPolicy::Fetch);
        if property.is_empty() {
            // No property: the whole Secret as `esutils.JSONMarshal` writes it; with
            // metadataPolicy Fetch its labels and annotations (`null` when it has none).
            if fetch_metadata {
                let mut json = b"{\"annotations\":".to_vec();
                json.extend(go_json_of_string_map(&secret.annotations));
                json.extend(b",\"labels\":");
                json.extend(go_json_of_string_map(&secret.labels));
                json.push(b'}');
                return Ok(SecretBytes::new(json));
            }
            return Ok(SecretBytes::new(go_json_of_byte_map(
                secret.data.iter().map(|(k, v)| (k.as_str(), v.expose())),
            )));
        }
        let found = if fetch_metadata {
            metadata_value(secret, property)
        } else {
            property_value(&secret.data, property)
        }
        .map_err(FetchError::new)?;
        found.ok_or_else(|| {
            if fetch_metadata {
                return FetchError::new(format!(
                    "property {property:?} does not exist in metadata of Secret {}/{}",
                    self.namespace, remote_ref.key
                ));
            }
            // Key names, never values: what the user must choose from.
            let keys: Vec<&str> = secret.data.keys().map(String::as_str).collect();
            let hint = match did_you_mean(property, keys.iter().copied()) {
                Some(close) => format!("; did you mean {close:?}?"),
                None => format!("; its keys: {}", keys.join(", ")),
            };
            FetchError::new(format!(
                "property {property:?} does not exist in data of Secret {}/{}{hint}",
                self.namespace, remote_ref.key
            ))
        })
    }

    /// ESO's `Client.GetSecretMap` (providers/v1/kubernetes/client.go).
    fn get_secret_map(&self, remote_ref: &RemoteRef) -> Result<SecretMap, FetchError> {
        let secret = self.source(&remote_ref.key)?;
        let map = if remote_ref.metadata_policy == Some(MetadataPolicy::Fetch) {
            // `getSecretMetadata`: each map as JSON, `null` when the Secret has none.
            BTreeMap::from([
                (
                    "annotations".to_owned(),
                    SecretBytes::new(go_json_of_string_map(&secret.annotations)),
                ),
                (
                    "labels".to_owned(),
                    SecretBytes::new(go_json_of_string_map(&secret.labels)),
                ),
            ])
        } else {
            secret.data.clone()
        };
        match remote_ref.property.as_deref() {
            None | Some("") => Ok(map),
            Some(property) => property_map(&map, property)
                .map_err(FetchError::new)?
                .ok_or_else(|| {
                    FetchError::new(format!(
                        "property {property:?} does not exist in key {:?}",
                        remote_ref.key
                    ))
                }),
        }
    }

    fn get_all_secrets(&self, find: &FindRef) -> Result<SecretMap, FetchError> {
        // ESO's Kubernetes provider never reads find.path (it searches the whole
        // remoteNamespace); a path set here is a mistake courier refuses, not ignores.
        if find.path.as_deref().is_some_and(|p| !p.is_empty()) {
            return Err(FetchError::new(
                "find.path has no meaning for the Kubernetes provider (ESO ignores it and searches the whole remoteNamespace); courier refuses it rather than ignore it\nhint: remove find.path; narrow the search with find.name.regexp or find.tags",
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
        for (name, secret) in self.secrets_in()? {
            if matches(name, secret) {
                let json =
                    go_json_of_byte_map(secret.data.iter().map(|(k, v)| (k.as_str(), v.expose())));
                found.insert(name.clone(), SecretBytes::new(json));
            }
        }
        convert_keys(find.conversion_strategy.unwrap_or_default(), found)
    }
}

/// ESO's `getFromSecretData` (providers/v1/kubernetes/client.go): `data[property]`,
/// or, when that key is absent, the gjson path after the first dot inside the value of
/// the part before it, as gjson's `Result.String()` gives it (an object or array as its
/// raw text, whitespace kept; an integer as written; other numbers as Go prints a float64).
pub fn property_value(data: &SecretMap, property: &str) -> Result<Option<SecretBytes>, String> {
    if let Some(value) = data.get(property) {
        return Ok(Some(value.clone()));
    }
    let Some(dot) = property.find('.') else {
        return Ok(None);
    };
    if dot == 0 || dot == property.len() - 1 {
        return Ok(None);
    }
    let Some(raw) = data.get(&property[..dot]) else {
        return Ok(None);
    };
    Ok(gjson::get_string(raw.expose(), &property[dot + 1..])?.map(SecretBytes::new))
}

/// ESO's `getFromSecretMetadata` (providers/v1/kubernetes/client.go): the property split
/// at every dot (no escapes); `labels`/`annotations` alone is the map as JSON (`null` for
/// none); the second part names a key; the parts after it are joined with no separator
/// (ESO's `strings.Join(path[2:], "")`) into the gjson path read inside that value.
fn metadata_value(secret: &SourceSecret, property: &str) -> Result<Option<SecretBytes>, String> {
    let path: Vec<&str> = property.split('.').collect();
    let map = match path[0] {
        "labels" => &secret.labels,
        "annotations" => &secret.annotations,
        _ => return Ok(None),
    };
    if path.len() == 1 {
        return Ok(Some(SecretBytes::new(go_json_of_string_map(map))));
    }
    let Some(value) = map.get(path[1]) else {
        return Ok(None);
    };
    if path.len() == 2 {
        return Ok(Some(SecretBytes::from(value.as_str())));
    }
    Ok(gjson::get_string(value.as_bytes(), &path[2..].concat())?.map(SecretBytes::new))
}

/// ESO's `getPropertyMap` and `getMapFromValues` (providers/v1/kubernetes/client.go):
/// the map as JSON with base64 values; the property looked up there by gjson (first with
/// its dots escaped, then as a path); the value found decoded and read as a JSON object
/// (`null` reads as no keys), each member written back as Go's `encoding/json` writes it
/// (a string keeps its quotes, numbers are float64, keys sorted).
fn property_map(map: &SecretMap, property: &str) -> Result<Option<SecretMap>, String> {
    use base64::Engine as _;
    let mut json = String::from("{");
    for (index, (key, value)) in map.iter().enumerate() {
        if index > 0 {
            json.push(',');
        }
        json.push_str(&super::common::go_json_string(key.as_bytes()));
        json.push_str(":\"");
        json.push_str(&base64::engine::general_purpose::STANDARD.encode(value.expose()));
        json.push('"');
    }
    json.push('}');
    let mut found = None;
    if property.contains('.') {
        found = gjson::get_string(json.as_bytes(), &property.replace('.', "\\."))?;
    }
    if found.is_none() {
        found = gjson::get_string(json.as_bytes(), property)?;
    }
    let Some(found) = found else {
        return Ok(None);
    };
    let decoded = crate::core::plan::go_base64_decode(&found, false)
        .map_err(|_| format!("property {property:?}: value is not base64"))?;
    match go_json_unmarshal(&decoded) {
        Some(Value::Object(members)) => Ok(Some(
            members
                .iter()
                .map(|(k, v)| (k.clone(), SecretBytes::new(go_json_of_value(v).into_bytes())))
                .collect(),
        )),
        Some(Value::Null) => Ok(Some(SecretMap::new())),
        _ => Err(format!(
            "property {property:?}: failed to unmarshal secret: invalid JSON format (ESO wants a JSON object here)"
        )),
    }
}

impl KubernetesStore {
    /// A files world: the credential objects the store names (`authRef`,
    /// `server.caProvider` unless `caBundle` is set, `auth.token`, `auth.cert`), in the
    /// order ESO's `BuildRESTConfigFromKubernetesConnection` (runtime/esutils/
    /// k8s_rest_config.go) reads them, must exist with their key when the files describe
    /// their namespace (they list Namespaces, or hold objects there): ESO fails the store
    /// otherwise. courier reads no credential from files; only their presence is checked.
    /// (`auth.serviceAccount` is not checked: a files world holds no ServiceAccounts.)
    fn files_credentials(&self, world: &World, namespace: &str) -> Option<String> {
        let described = |ns: &str| {
            !world.namespaces.is_empty()
                || world.secrets.contains_key(ns)
                || world.config_maps.contains_key(ns)
        };
        let fail = |field: &str, what: String| {
            Some(format!(
                "{}: {field} names {what}\nhint: create it (add it to the files rendered), or fix the store's {field}",
                self.display
            ))
        };
        let secret_key = |field: &str, selector: &SecretKeySelector| {
            let ns = self.reference_namespace(selector.namespace.as_deref(), namespace);
            if !described(&ns) {
                return None;
            }
            match world.secret(&ns, &selector.name) {
                // A blocked Secret (a ServiceAccount token) exists; its keys are not read.
                None if world.blocked_reason(&ns, &selector.name).is_some() => None,
                None => fail(
                    field,
                    format!("Secret {ns}/{}, which does not exist", selector.name),
                ),
                Some(secret) if !secret.data.contains_key(&selector.key) => fail(
                    field,
                    format!("key {:?} of Secret {ns}/{}, which it does not hold", selector.key, selector.name),
                ),
                Some(_) => None,
            }
        };
        if let Some(reference) = &self.config.auth_ref {
            return secret_key("authRef", reference);
        }
        let server = self.config.server.as_ref();
        let ca_bundle = server.and_then(|s| s.ca_bundle.as_deref()).is_some_and(|b| !b.is_empty());
        if !ca_bundle && let Some(provider) = server.and_then(|s| s.ca_provider.as_ref()) {
            let ns = self.reference_namespace(provider.namespace.as_deref(), namespace);
            let field = "server.caProvider";
            if described(&ns) {
                let error = match provider.type_.as_str() {
                    // The API server makes it in every namespace; files never hold it.
                    "ConfigMap" if provider.name == "kube-root-ca.crt" => None,
                    "ConfigMap" => match world.config_maps.get(&ns).and_then(|m| m.get(&provider.name)) {
                        None => fail(field, format!("ConfigMap {ns}/{}, which does not exist", provider.name)),
                        Some(data) if !data.contains_key(&provider.key) => fail(
                            field,
                            format!("key {:?} of ConfigMap {ns}/{}, which it does not hold", provider.key, provider.name),
                        ),
                        Some(_) => None,
                    },
                    _ => secret_key(
                        field,
                        &SecretKeySelector {
                            name: provider.name.clone(),
                            key: provider.key.clone(),
                            namespace: provider.namespace.clone(),
                        },
                    ),
                };
                if error.is_some() {
                    return error;
                }
            }
        }
        let auth = self.config.auth.as_ref()?;
        if let Some(token) = &auth.token {
            return secret_key("auth.token.bearerToken", &token.bearer_token);
        }
        if auth.service_account.is_some() {
            return None;
        }
        let cert = auth.cert.as_ref()?;
        secret_key("auth.cert.clientCert", &cert.client_cert)
            .or_else(|| secret_key("auth.cert.clientKey", &cert.client_key))
    }

    fn credential(&self, namespace: &str) -> Option<Credential> {
        let resolve = |selector: &SecretKeySelector| {
            CredentialRef::new(
                selector,
                self.reference_namespace(selector.namespace.as_deref(), namespace),
            )
        };
        if let Some(reference) = &self.config.auth_ref {
            return Some(Credential::Kubeconfig(resolve(reference)));
        }
        let auth = self.config.auth.as_ref()?;
        if let Some(account) = &auth.service_account {
            return Some(Credential::ServiceAccount {
                namespace: self.reference_namespace(account.namespace.as_deref(), namespace),
                name: account.name.clone(),
                audiences: account.audiences.clone(),
            });
        }
        if let Some(token) = &auth.token {
            return Some(Credential::Token(resolve(&token.bearer_token)));
        }
        auth.cert.as_ref().map(|cert| Credential::Cert {
            cert: resolve(&cert.client_cert),
            key: resolve(&cert.client_key),
        })
    }

    /// The API server to read from, as the identity module wants it.
    fn server(&self, namespace: &str) -> Server<'_> {
        let server = self.config.server.as_ref();
        Server {
            url: self.other_server(),
            ca_bundle: server.and_then(|s| s.ca_bundle.as_deref()),
            ca_provider: server.and_then(|s| s.ca_provider.as_ref()).map(|provider| {
                let namespace =
                    self.reference_namespace(provider.namespace.as_deref(), namespace);
                (provider, namespace)
            }),
        }
    }

    /// `server.url`, unless it names the cluster courier talks to (absent, or ESO's
    /// in-cluster default `kubernetes.default`).
    fn other_server(&self) -> Option<&str> {
        let url = self.config.server.as_ref()?.url.as_deref()?.trim();
        let host = url
            .trim_start_matches("https://")
            .trim_end_matches('/')
            .trim_end_matches(":443");
        let in_cluster = [
            "",
            "kubernetes.default",
            "kubernetes.default.svc",
            "kubernetes.default.svc.cluster.local",
        ];
        (!in_cluster.contains(&host)).then_some(url)
    }
}

/// Reads what `wanted` needs with the store's identity into `world.store_secrets`.
async fn prefetch(
    store: &KubernetesStore,
    wanted: &StoreReads,
    world: &World,
    context: &FetchContext,
    fetched: &mut Fetched,
) -> FetchStats {
    let mut stats = FetchStats::default();
    let names: BTreeSet<&str> = wanted.reads.iter().map(|(name, _)| name.as_str()).collect();
    let read = read_secrets(store, wanted, &names, world, context, &mut stats).await;
    fetched
        .store_secrets
        .insert(store.identity_key(&wanted.namespace), read);
    stats
}

async fn read_secrets(
    store: &KubernetesStore,
    wanted: &StoreReads,
    names: &BTreeSet<&str>,
    world: &World,
    context: &FetchContext,
    stats: &mut FetchStats,
) -> StoreSecrets {
    let namespace = &store.remote_namespace;
    let fail = |message: String| {
        let error = RemoteError {
            message,
            not_found: false,
        };
        StoreSecrets {
            namespace: namespace.clone(),
            listed: Err(error.clone()),
            secrets: names
                .iter()
                .map(|name| (name.to_string(), Err(error.clone())))
                .collect(),
        }
    };
    let display = &store.display;
    let Some(credential) = store.credential(&wanted.namespace) else {
        return fail(format!("{display}: names no identity (auth or authRef)"));
    };
    let who = credential.describe();
    for attempt in 0..2 {
        let server = store.server(&wanted.namespace);
        let client = match identity_client(&server, &credential, context).await {
            Ok(client) => client,
            Err(message) => return fail(format!("{display}: {message}")),
        };
        let api = Api::<Secret>::namespaced(client, namespace);
        stats.lists += 1;
        match api.list(&ListParams::default()).await {
            Ok(list) => {
                let mut secrets = BTreeMap::new();
                for secret in list.items {
                    let name = secret.metadata.name.clone().unwrap_or_default();
                    secrets.insert(name.clone(), admit(world, namespace, &name, secret));
                }
                return StoreSecrets {
                    namespace: namespace.clone(),
                    listed: Ok(()),
                    secrets,
                };
            }
            // A requested token the API server no longer accepts (its ServiceAccount was
            // recreated): request a fresh one, once.
            Err(error) if status_of(&error) == Some(401) && attempt == 0 => {
                if let Credential::ServiceAccount {
                    namespace,
                    name,
                    audiences,
                } = &credential
                {
                    context
                        .tokens
                        .evict(&(namespace.clone(), name.clone(), audiences.clone()));
                    continue;
                }
                return fail(format!("{display}: {who} was refused (401 Unauthorized)"));
            }
            // An identity limited to named Secrets (resourceNames) may get but not list.
            Err(error) if status_of(&error) == Some(403) => {
                let listed = Err(RemoteError {
                    message: format!(
                        "{display}: {who} may not list Secrets in {namespace} (forbidden), which find needs"
                    ),
                    not_found: false,
                });
                let mut secrets = BTreeMap::new();
                for name in names {
                    stats.reads += 1;
                    let answer = match api.get_opt(name).await {
                        Ok(Some(secret)) => admit(world, namespace, name, secret),
                        Ok(None) => Err(RemoteError {
                            message: format!("source Secret {namespace}/{name} not found"),
                            not_found: true,
                        }),
                        Err(error) => Err(RemoteError {
                            message: denial(display, &who, namespace, name, &error),
                            not_found: false,
                        }),
                    };
                    secrets.insert(name.to_string(), answer);
                }
                return StoreSecrets {
                    namespace: namespace.clone(),
                    listed,
                    secrets,
                };
            }
            Err(error) => {
                return fail(format!(
                    "{display}: {who} cannot list Secrets in {namespace}: {}",
                    api_message(&error)
                ));
            }
        }
    }
    fail(format!("{display}: {who} was refused (401 Unauthorized)"))
}

/// A listed or fetched Secret, unless the block list keeps it from courier.
fn admit(
    world: &World,
    namespace: &str,
    name: &str,
    secret: Secret,
) -> Result<SourceSecret, RemoteError> {
    let labels = secret.metadata.labels.unwrap_or_default();
    let type_ = secret.type_.unwrap_or_else(|| "Opaque".into());
    if let Some(reason) = world.block_list.reason(name, &type_, &labels) {
        return Err(RemoteError {
            message: format!("source Secret {namespace}/{name} is blocked: {reason}"),
            not_found: false,
        });
    }
    Ok(SourceSecret {
        labels,
        annotations: secret.metadata.annotations.unwrap_or_default(),
        type_,
        data: secret
            .data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, SecretBytes::new(v.0)))
            .collect(),
    })
}

fn denial(display: &str, who: &str, namespace: &str, name: &str, error: &kube::Error) -> String {
    match status_of(error) {
        Some(403) => {
            format!("{display}: {who} may not get Secret {namespace}/{name} (forbidden)")
        }
        _ => format!(
            "{display}: {who} cannot get Secret {namespace}/{name}: {}",
            api_message(error)
        ),
    }
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

    fn text(bytes: Option<SecretBytes>) -> Option<String> {
        bytes.map(|v| String::from_utf8(v.expose().to_vec()).unwrap())
    }

    fn files_store(kind: StoreKind, config: Value) -> KubernetesStore {
        KubernetesStore {
            display: "ClusterSecretStore/s".into(),
            kind,
            own_namespace: "app".into(),
            remote_namespace: "src".into(),
            live: false,
            config: serde_json::from_value(config).unwrap(),
        }
    }

    /// ESO fails a store whose named credential objects are missing (runtime/esutils/
    /// k8s_rest_config.go); a files world that describes their namespace does too.
    #[test]
    fn files_world_fails_a_store_whose_credentials_are_missing() {
        let mut world = World::default();
        world.add_namespace("src", Default::default());
        world.add_secret(
            "src",
            "user",
            SourceSecret {
                data: [("k".to_owned(), SecretBytes::from("v"))].into(),
                ..SourceSecret::default()
            },
        );
        world.config_maps.insert(
            "src".into(),
            [("ca".to_owned(), [("ca.crt".to_owned(), "pem".to_owned())].into())].into(),
        );
        let fetch = |config: Value| {
            let store = files_store(StoreKind::ClusterSecretStore, config);
            let client = store.client(&world, "app");
            let extract = RemoteRef {
                key: "user".into(),
                ..RemoteRef::default()
            };
            client.get_secret_map(&extract).map(|_| ()).map_err(|e| e.message)
        };
        let ca = |type_: &str, name: &str, key: &str| {
            serde_json::json!({"remoteNamespace": "src", "server": {"caProvider": {
                "type": type_, "name": name, "key": key, "namespace": "src"}}})
        };
        assert!(fetch(serde_json::json!({"remoteNamespace": "src"})).is_ok());
        assert!(fetch(ca("ConfigMap", "ca", "ca.crt")).is_ok());
        assert!(fetch(ca("ConfigMap", "kube-root-ca.crt", "ca.crt")).is_ok());
        let error = fetch(ca("ConfigMap", "absent", "ca.crt")).unwrap_err();
        assert!(
            error.contains("ClusterSecretStore/s") && error.contains("server.caProvider")
                && error.contains("ConfigMap src/absent") && error.contains("hint:"),
            "{error}"
        );
        assert!(fetch(ca("ConfigMap", "ca", "other")).unwrap_err().contains("key \"other\""));
        assert!(fetch(ca("Secret", "absent", "k")).unwrap_err().contains("Secret src/absent"));
        assert!(fetch(ca("Secret", "user", "k")).is_ok());
        // caBundle wins over caProvider, as in ESO's FetchCACertFromSource.
        let mut bundled = ca("Secret", "absent", "k");
        bundled["server"]["caBundle"] = Value::from("Y2E=");
        assert!(fetch(bundled).is_ok());
        let token = |name: &str| {
            serde_json::json!({"remoteNamespace": "src", "auth": {"token": {"bearerToken": {
                "name": name, "key": "k", "namespace": "src"}}}})
        };
        assert!(fetch(token("user")).is_ok());
        let error = fetch(token("absent")).unwrap_err();
        assert!(error.contains("auth.token.bearerToken") && error.contains("Secret src/absent"), "{error}");
        let cert = serde_json::json!({"remoteNamespace": "src", "auth": {"cert": {
            "clientCert": {"name": "user", "key": "k", "namespace": "src"},
            "clientKey": {"name": "absent", "key": "k", "namespace": "src"}}}});
        assert!(fetch(cert).unwrap_err().contains("auth.cert.clientKey"));
        // A namespace the files do not describe is not checked (nothing is known there).
        let mut bare = World::default();
        bare.add_secret("src", "user", SourceSecret::default());
        let store = files_store(
            StoreKind::ClusterSecretStore,
            serde_json::json!({"remoteNamespace": "src", "auth": {"token": {"bearerToken": {
                "name": "t", "key": "k", "namespace": "vault"}}}}),
        );
        let extract = RemoteRef {
            key: "user".into(),
            ..RemoteRef::default()
        };
        assert!(store.client(&bare, "app").get_secret_map(&extract).is_ok());
    }

    #[test]
    fn find_path_is_refused_with_a_hint() {
        let mut world = World::default();
        world.add_secret("src", "db", SourceSecret::default());
        let find = FindRef {
            path: Some("db".into()),
            ..FindRef::default()
        };
        let error = KubernetesClient::new(&world, "src")
            .get_all_secrets(&find)
            .unwrap_err()
            .message;
        assert!(error.contains("find.path") && error.contains("hint: remove find.path"), "{error}");
    }

    #[test]
    fn exact_key_wins_over_a_json_path() {
        let data = map(&[("file.png", "raw"), ("file", r#"{"png":"nested"}"#)]);
        assert_eq!(text(property_value(&data, "file.png").unwrap()).as_deref(), Some("raw"));
    }

    #[test]
    fn dotted_property_follows_the_json_path() {
        let data = map(&[(
            "config",
            r#"{"db":{"user":"u","port":5432,"hosts":["a","b"],"tls":{"on":true}}}"#,
        )]);
        let get = |p: &str| text(property_value(&data, p).unwrap());
        assert_eq!(get("config.db.user").as_deref(), Some("u"));
        assert_eq!(get("config.db.port").as_deref(), Some("5432"));
        assert_eq!(get("config.db.hosts.1").as_deref(), Some("b"));
        assert_eq!(get("config.db.tls").as_deref(), Some(r#"{"on":true}"#));
        assert_eq!(get("config.db.missing"), None);
        assert_eq!(get(".config"), None);
        assert_eq!(get("config."), None);
        assert_eq!(get("nothing"), None);
    }

    /// gjson's `Result.String()` (ESO's getFromSecretData): objects and arrays as the raw
    /// text stored, numbers as written when integers and as Go's FormatFloat otherwise.
    #[test]
    fn json_values_are_gjson_strings() {
        let data = map(&[(
            "c",
            "{ \"obj\" : { \"b\" : 1,\n  \"a\" : [ 1, 2 ] },\n \"big\": 12345678901234567890123, \"e\": 1e3, \"f\": 1.50, \"neg\": -0.5e-7, \"t\": true, \"n\": null, \"s\": \"x\\u00e9\\n\\ud800\", \"arr\": [ {\"k\":1} , 2 ], \"k1\": 1, \"k2\": 2, \"e21\": 1e21 }",
        )]);
        let get = |p: &str| text(property_value(&data, p).unwrap());
        assert_eq!(get("c.obj").as_deref(), Some("{ \"b\" : 1,\n  \"a\" : [ 1, 2 ] }"));
        assert_eq!(get("c.obj.a").as_deref(), Some("[ 1, 2 ]"));
        assert_eq!(get("c.big").as_deref(), Some("12345678901234567890123"));
        assert_eq!(get("c.e").as_deref(), Some("1000"));
        assert_eq!(get("c.f").as_deref(), Some("1.5"));
        assert_eq!(get("c.neg").as_deref(), Some("-0.00000005"));
        assert_eq!(get("c.e21").as_deref(), Some("1000000000000000000000"));
        assert_eq!(get("c.t").as_deref(), Some("true"));
        assert_eq!(get("c.n").as_deref(), Some(""));
        assert_eq!(get("c.s").as_deref(), Some("x\u{e9}\n\u{fffd}"));
        assert_eq!(get("c.arr.0").as_deref(), Some("{\"k\":1}"));
        assert_eq!(get("c.arr.#").as_deref(), Some("2"));
        assert_eq!(get("c.k*").as_deref(), Some("1"));
        assert_eq!(get("c.k?").as_deref(), Some("1"));
        assert_eq!(get("c.arr.2"), None);
        // Queries, `#` over arrays and modifiers: gjson's own port.
        assert_eq!(get("c.arr.#(k==1)").as_deref(), Some("{\"k\":1}"));
        assert_eq!(get("c.arr.#(k==2)"), None);
        assert_eq!(get("c.obj.a|@reverse").as_deref(), Some("[2,1]"));
    }

    #[test]
    fn escaped_dots_stay_in_the_key() {
        let data = map(&[("c", r#"{"a.b":"x"}"#)]);
        assert_eq!(text(property_value(&data, r"c.a\.b").unwrap()).as_deref(), Some("x"));
    }

    #[test]
    fn whole_secret_is_sorted_compact_json_like_go() {
        let json =
            go_json_of_byte_map([("username", "u"), ("password", "p<&>\u{2028}")].into_iter());
        assert_eq!(
            String::from_utf8(json).unwrap(),
            r#"{"password":"p<&>\u2028","username":"u"}"#
        );
    }

    /// Go's encoding/json writes each byte that starts no valid UTF-8 as `\ufffd` and
    /// names \b and \f (esutils.JSONMarshal).
    #[test]
    fn whole_secret_escapes_invalid_utf8_like_go() {
        let json = go_json_of_byte_map(
            [("k", &b"a\xe2\x82z\xff\x08\x0c\x01\xc3\xa9"[..])].into_iter(),
        );
        assert_eq!(
            String::from_utf8(json).unwrap(),
            "{\"k\":\"a\\ufffd\\ufffdz\\ufffd\\b\\f\\u0001\u{e9}\"}"
        );
    }

    fn source(labels: &[(&str, &str)], data: &[(&str, &str)]) -> SourceSecret {
        SourceSecret {
            labels: labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            annotations: BTreeMap::new(),
            type_: "Opaque".into(),
            data: map(data),
        }
    }

    /// ESO's getFromSecretMetadata: the map as JSON (null when empty), a key, and the
    /// parts after it joined with no separator as the gjson path.
    #[test]
    fn metadata_properties_follow_eso() {
        let secret = source(&[("cfg", r#"{"ab":"joined","a":{"b":"nested"}}"#), ("x", "y")], &[]);
        let get = |p: &str| text(metadata_value(&secret, p).unwrap());
        assert_eq!(get("labels").as_deref(), Some(r#"{"cfg":"{\"ab\":\"joined\",\"a\":{\"b\":\"nested\"}}","x":"y"}"#));
        assert_eq!(get("annotations").as_deref(), Some("null"));
        assert_eq!(get("labels.x").as_deref(), Some("y"));
        assert_eq!(get("labels.cfg.a.b").as_deref(), Some("joined"));
        assert_eq!(get("labels.nope"), None);
        assert_eq!(get("spec"), None);
    }

    /// ESO's getPropertyMap: a member that is a string keeps its quotes; numbers print as
    /// float64; null reads as no keys; a value that is no JSON object fails.
    #[test]
    fn extract_with_a_property_re_encodes_members_like_go() {
        let data = map(&[
            ("cfg", "{\"s\":\"a<b\",\"n\":1e3,\"big\":12345678901234567890,\"o\":{\"z\":1, \"a\":[0.0000001]}}"),
            ("nil", "null"),
            ("text", "plain"),
            ("d.ot", "{\"k\":true}"),
        ]);
        let got = property_map(&data, "cfg").unwrap().unwrap();
        let shown: Vec<(String, String)> = got
            .iter()
            .map(|(k, v)| (k.clone(), String::from_utf8(v.expose().to_vec()).unwrap()))
            .collect();
        assert_eq!(
            shown,
            vec![
                ("big".into(), "12345678901234567000".into()),
                ("n".into(), "1000".into()),
                ("o".into(), "{\"a\":[1e-7],\"z\":1}".into()),
                ("s".into(), "\"a<b\"".into()),
            ]
        );
        assert!(property_map(&data, "nil").unwrap().unwrap().is_empty());
        assert!(property_map(&data, "text").is_err());
        assert_eq!(property_map(&data, "d.ot").unwrap().unwrap().len(), 1);
        assert!(property_map(&data, "missing").unwrap().is_none());
    }
}
