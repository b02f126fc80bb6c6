//! Store resolution: which store a target reads, whether the store lets its namespace
//! use it (`spec.conditions`), and its provider, parsed once per plan by the registry.

use std::any::Any;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use regex::Regex;

use super::types::Failure;
use crate::core::load::{Loaded, Manifests, Origin, StoreKind, object_display};
use crate::core::model::{
    ExternalSecretSpec, FindRef, RemoteRef, SecretStoreManifest, SecretStoreRef, StringMap,
};
use crate::core::provider::{
    FetchError, ProviderError, ProviderRegistry, SecretMap, SecretsClient, StoreInfo, StoreProvider,
};
use crate::core::secret_bytes::SecretBytes;
use crate::core::suggest::did_you_mean;
use crate::core::world::World;

/// The store a target reads.
pub(super) struct ResolvedStore {
    /// Its provider.
    pub(super) provider: Arc<dyn StoreProvider>,
    /// A SecretStore (serves its own namespace only), so renders are per namespace.
    pub(super) namespaced: bool,
    /// The stores `data[].sourceRef.storeRef` and `dataFrom[].sourceRef.storeRef` name,
    /// by (kind, name), each resolved as `secretStoreRef` is (ESO's
    /// `secretstore.Manager.Get`, pkg/controllers/secretstore/client_manager.go, takes
    /// the entry's store over the ExternalSecret's).
    pub(super) entries: BTreeMap<(String, String), Arc<dyn StoreProvider>>,
}

impl ResolvedStore {
    /// What bodies rendered with these stores are shared under.
    pub(super) fn share_key(&self, namespace: &str) -> String {
        let mut key = self.provider.share_key(namespace);
        for ((kind, name), provider) in &self.entries {
            key.push_str(&format!("|{kind}/{name}={}", provider.share_key(namespace)));
        }
        key
    }
}

impl ResolvedStore {
    /// The clients that read for `namespace`: the store's, and each entry store's.
    pub(super) fn clients<'w>(&'w self, world: &'w World, namespace: &str) -> Clients<'w> {
        Clients {
            main: self.provider.client(world, namespace),
            entries: self
                .entries
                .iter()
                .map(|(key, provider)| (key.clone(), provider.client(world, namespace)))
                .collect(),
        }
    }
}

/// What one ExternalSecret reads with: its store's client, and one per store its
/// entries' `sourceRef.storeRef` name.
pub(super) struct Clients<'w> {
    pub(super) main: Box<dyn SecretsClient + 'w>,
    pub(super) entries: BTreeMap<(String, String), Box<dyn SecretsClient + 'w>>,
}

impl Clients<'_> {
    /// The client for an entry with this `sourceRef` (at `field`).
    pub(super) fn for_entry(
        &self,
        source_ref: Option<&serde_json::Value>,
        field: &str,
    ) -> Result<&dyn SecretsClient, Failure> {
        match entry_store(source_ref, field)? {
            None => Ok(self.main.as_ref()),
            Some(key) => self.entries.get(&key).map(|c| c.as_ref()).ok_or_else(|| {
                Failure::new(
                    format!("{field}.sourceRef.storeRef"),
                    format!("{} {:?} was not resolved", key.0, key.1),
                )
            }),
        }
    }
}

/// The store an entry's `sourceRef` names: `Ok(None)` for none, the (kind, name) of a
/// `storeRef`, or an error for a generator, which courier does not run.
pub(super) fn entry_store(
    source_ref: Option<&serde_json::Value>,
    field: &str,
) -> Result<Option<(String, String)>, Failure> {
    let Some(source_ref) = source_ref.filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    if source_ref.get("generatorRef").is_some_and(|g| !g.is_null()) {
        return Err(Failure::new(
            format!("{field}.sourceRef.generatorRef"),
            "generators are not supported by courier yet",
        ));
    }
    match source_ref.get("storeRef").filter(|v| !v.is_null()) {
        Some(store) => {
            let reference: SecretStoreRef =
                serde_json::from_value(store.clone()).map_err(|_| {
                    Failure::new(
                        format!("{field}.sourceRef.storeRef"),
                        "needs name and optional kind",
                    )
                })?;
            Ok(Some((
                reference.kind.unwrap_or_else(|| "SecretStore".to_owned()),
                reference.name,
            )))
        }
        None => Ok(None),
    }
}

/// The part of `spec` one store answers: the entries whose `sourceRef.storeRef` names
/// `store` (None: the entries without one, which `secretStoreRef` answers).
pub(super) fn spec_for_store(
    spec: &ExternalSecretSpec,
    store: Option<&(String, String)>,
) -> ExternalSecretSpec {
    let mine = |source_ref: Option<&serde_json::Value>| {
        entry_store(source_ref, "").ok().flatten().as_ref() == store
    };
    let mut part = spec.clone();
    part.data.retain(|entry| mine(entry.source_ref.as_ref()));
    part.data_from
        .retain(|entry| mine(entry.source_ref.as_ref()));
    part
}

/// A store by (kind, name).
pub(super) type StoreKey = (String, String);

/// Each `sourceRef` of a spec with its field: `(field, storeRef)`.
pub(super) fn entry_stores(
    spec: &ExternalSecretSpec,
) -> Result<Vec<(String, Option<StoreKey>)>, Failure> {
    let mut out = Vec::new();
    for (index, entry) in spec.data_from.iter().enumerate() {
        let field = format!("dataFrom[{index}]");
        let store = entry_store(entry.source_ref.as_ref(), &field)?;
        out.push((field, store));
    }
    for (index, entry) in spec.data.iter().enumerate() {
        let field = format!("data[{index}]");
        let store = entry_store(entry.source_ref.as_ref(), &field)?;
        out.push((field, store));
    }
    Ok(out)
}

type StoreManifest = Loaded<(StoreKind, SecretStoreManifest)>;

/// Every store by name, with its provider parsed once (an error is kept and reported
/// only by the targets that use the store).
pub(super) struct StoreIndex<'m> {
    stores: &'m [StoreManifest],
    cluster: HashMap<&'m str, usize>,
    namespaced: HashMap<(&'m str, &'m str), usize>,
    parsed: Vec<Result<Arc<dyn StoreProvider>, String>>,
    /// Stores refused at load, `Kind/namespace/name`: named as such, not as missing.
    refused: BTreeSet<&'m str>,
}

impl<'m> StoreIndex<'m> {
    pub(super) fn new(
        manifests: &'m Manifests,
        providers: &dyn ProviderRegistry,
        live: bool,
    ) -> Self {
        let mut cluster = HashMap::new();
        let mut namespaced = HashMap::new();
        for (index, store) in manifests.stores.iter().enumerate() {
            let meta = &store.object.1.metadata;
            match store.object.0 {
                StoreKind::ClusterSecretStore => {
                    cluster.insert(meta.name.as_str(), index);
                }
                StoreKind::SecretStore => {
                    let namespace = meta.namespace.as_deref().unwrap_or_default();
                    namespaced.insert((namespace, meta.name.as_str()), index);
                }
            }
        }
        let parsed = manifests
            .stores
            .iter()
            .map(|store| parse_store(store, providers, live))
            .collect();
        Self {
            stores: &manifests.stores,
            cluster,
            namespaced,
            parsed,
            refused: manifests
                .refused
                .iter()
                .map(|r| r.object.as_str())
                .collect(),
        }
    }

    /// Why the ClusterSecretStore `spec` names cannot be found (what a ClusterExternalSecret
    /// that selects no namespace can still be told); None for a SecretStore, which depends
    /// on the namespace, or a store that exists.
    pub(super) fn missing_cluster_store(&self, spec: &ExternalSecretSpec) -> Option<Failure> {
        let reference = spec.secret_store_ref.as_ref()?;
        if reference.kind.as_deref() != Some("ClusterSecretStore")
            || self.cluster.contains_key(reference.name.as_str())
        {
            return None;
        }
        // Resolution from no namespace fails with the message a namespace would get.
        self.resolve(spec, "", &World::default()).err()
    }

    /// The store `spec` reads from `namespace`, checked against its conditions.
    pub(super) fn resolve(
        &self,
        spec: &ExternalSecretSpec,
        namespace: &str,
        world: &World,
    ) -> Result<ResolvedStore, Failure> {
        let sources = entry_stores(spec)?;
        let mut entries = BTreeMap::new();
        let mut namespaced = false;
        for (field, store) in &sources {
            let Some((kind, name)) = store else {
                continue;
            };
            if entries.contains_key(&(kind.clone(), name.clone())) {
                continue;
            }
            let reference = SecretStoreRef {
                name: name.clone(),
                kind: Some(kind.clone()),
            };
            let resolved = self.resolve_ref(
                &reference,
                &format!("{field}.sourceRef.storeRef"),
                namespace,
                world,
            )?;
            namespaced |= resolved.namespaced;
            entries.insert((kind.clone(), name.clone()), resolved.provider);
        }
        let main = match &spec.secret_store_ref {
            Some(reference) => self.resolve_ref(reference, "secretStoreRef", namespace, world)?,
            // A template-only ExternalSecret, or one whose every entry names its store,
            // reads no store of its own.
            None if sources.iter().all(|(_, store)| store.is_some()) => ResolvedStore {
                provider: Arc::new(NoStore),
                namespaced: false,
                entries: BTreeMap::new(),
            },
            None => {
                return Err(Failure::new(
                    Some("secretStoreRef".to_owned()),
                    "missing; it names the store the values come from",
                ));
            }
        };
        Ok(ResolvedStore {
            provider: main.provider,
            namespaced: main.namespaced || namespaced,
            entries,
        })
    }

    /// One store reference, from `namespace`, checked against its conditions.
    fn resolve_ref(
        &self,
        reference: &SecretStoreRef,
        field_name: &str,
        namespace: &str,
        world: &World,
    ) -> Result<ResolvedStore, Failure> {
        let field = || Some(field_name.to_owned());
        let kind = reference.kind.as_deref().unwrap_or("SecretStore");
        let (index, namespaced) = match kind {
            "ClusterSecretStore" => (self.cluster.get(reference.name.as_str()), false),
            "SecretStore" => (
                self.namespaced.get(&(namespace, reference.name.as_str())),
                true,
            ),
            other => {
                return Err(Failure::new(
                    field(),
                    format!("unknown kind {other:?}; expected SecretStore or ClusterSecretStore"),
                ));
            }
        };
        let Some(&index) = index else {
            let name = reference.name.as_str();
            let store = object_display(kind, namespaced.then_some(namespace), name);
            if self.refused.contains(store.as_str()) {
                return Err(Failure::new(
                    field(),
                    format!(
                        "{store} was refused (its own error says why), so nothing is read from it"
                    ),
                ));
            }
            let (place, hint) = if namespaced {
                let here = self
                    .namespaced
                    .keys()
                    .filter(|(ns, _)| *ns == namespace)
                    .map(|(_, n)| *n);
                let elsewhere: Vec<&str> = self
                    .namespaced
                    .keys()
                    .filter(|(ns, n)| *n == name && *ns != namespace)
                    .map(|(ns, _)| *ns)
                    .collect();
                let hint = if self.cluster.contains_key(name) {
                    "; a ClusterSecretStore of that name exists: set secretStoreRef.kind: ClusterSecretStore".to_owned()
                } else if let Some(first) = elsewhere.first() {
                    format!(
                        "; one exists in {first}, and a SecretStore serves only its own namespace\nhint: copy the SecretStore into {namespace}, or make it a ClusterSecretStore"
                    )
                } else {
                    did_you_mean(name, here)
                        .map(|close| format!("; did you mean {close:?}?"))
                        .unwrap_or_default()
                };
                (format!(" in namespace {namespace}"), hint)
            } else {
                let hint = did_you_mean(name, self.cluster.keys().copied())
                    .map(|close| format!("; did you mean {close:?}?"))
                    .unwrap_or_default();
                (String::new(), hint)
            };
            return Err(Failure::new(
                field(),
                format!("{kind} {name:?} not found{place}{hint}"),
            ));
        };
        let manifest = &self.stores[index].object.1;
        if !namespaced && !manifest.spec.conditions.is_empty() {
            let display = object_display(kind, None, &manifest.metadata.name);
            check_conditions(manifest, namespace, world)
                .map_err(|m| Failure::new(field(), format!("{display}: {m}")))?;
        }
        match &self.parsed[index] {
            Ok(provider) => Ok(ResolvedStore {
                provider: provider.clone(),
                namespaced,
                entries: BTreeMap::new(),
            }),
            Err(message) => Err(Failure::new(field(), message.clone())),
        }
    }
}

/// The namespaces whose Secrets courier's own identity lists into the world for the
/// stores ([`StoreProvider::world_namespaces`]). Stores whose provider does not parse
/// need none.
pub fn store_namespaces(
    manifests: &Manifests,
    providers: &dyn ProviderRegistry,
    live: bool,
) -> BTreeSet<String> {
    parsed_stores(manifests, providers, live)
        .flat_map(|provider| provider.world_namespaces())
        .collect()
}

/// The namespaces where a changed Secret may change a store's answers
/// ([`StoreProvider::watched_namespaces`]): what `run` watches.
pub fn watched_namespaces(
    manifests: &Manifests,
    providers: &dyn ProviderRegistry,
    live: bool,
) -> BTreeSet<String> {
    parsed_stores(manifests, providers, live)
        .flat_map(|provider| provider.watched_namespaces())
        .collect()
}

fn parsed_stores<'a>(
    manifests: &'a Manifests,
    providers: &'a dyn ProviderRegistry,
    live: bool,
) -> impl Iterator<Item = Arc<dyn StoreProvider>> + 'a {
    manifests
        .stores
        .iter()
        .filter_map(move |store| parse_store(store, providers, live).ok())
}

/// A store's single `spec.provider.<name>`, through the registry; the error names the
/// store, its file and line, and the field.
fn parse_store(
    store: &StoreManifest,
    providers: &dyn ProviderRegistry,
    live: bool,
) -> Result<Arc<dyn StoreProvider>, String> {
    let (kind, manifest) = &store.object;
    let meta = &manifest.metadata;
    let display = object_display(kind.as_str(), meta.namespace.as_deref(), &meta.name);
    let mut configured = manifest.spec.provider.iter();
    let (name, config) = match (configured.next(), configured.next()) {
        (Some(one), None) => one,
        (None, _) => return Err(format!("{display} ({}) has no spec.provider", store.origin)),
        (Some(_), Some(_)) => {
            return Err(format!(
                "{display} ({}) has more than one provider",
                store.origin
            ));
        }
    };
    let info = StoreInfo {
        kind: *kind,
        namespace: meta.namespace.as_deref(),
        name: &meta.name,
        display: &display,
        origin: &store.origin,
        annotations: &meta.annotations,
        live,
    };
    providers
        .parse(name, config, &info)
        .map_err(|error| provider_error_message(&error, &display, &store.origin, name))
}

/// What a store whose `spec.provider.<name>` did not parse is told: the store, where it
/// is, and each field at fault (never a value).
pub fn provider_error_message(
    error: &ProviderError,
    display: &str,
    origin: &Origin,
    name: &str,
) -> String {
    match error {
        ProviderError::Unknown { known } => format!(
            "{display} uses provider {name:?}, which courier does not support yet (supported: {})",
            known.join(", ")
        ),
        ProviderError::Invalid(message) => {
            format!("{display} ({origin}): spec.provider.{name}: {message}")
        }
        ProviderError::Unsupported(fields) => fields
            .iter()
            .map(|e| format!("{display} ({origin}): {}: {}", e.field, e.message))
            .collect::<Vec<_>>()
            .join("\n"),
    }
}

/// A ClusterSecretStore serves a namespace that one of its conditions matches.
fn check_conditions(
    store: &SecretStoreManifest,
    namespace: &str,
    world: &World,
) -> Result<(), String> {
    let labels = world.namespaces.get(namespace).cloned().unwrap_or_else(|| {
        StringMap::from([(
            "kubernetes.io/metadata.name".to_owned(),
            namespace.to_owned(),
        )])
    });
    for (index, condition) in store.spec.conditions.iter().enumerate() {
        if let Some(selector) = &condition.namespace_selector {
            let compiled = selector
                .compile()
                .map_err(|e| format!("spec.conditions[{index}].namespaceSelector: {e}"))?;
            if compiled.matches(&labels) {
                return Ok(());
            }
        }
        if condition.namespaces.iter().any(|n| n == namespace) {
            return Ok(());
        }
        for pattern in &condition.namespace_regexes {
            let regex = Regex::new(pattern)
                .map_err(|e| format!("spec.conditions[{index}].namespaceRegexes: {e}"))?;
            if regex.is_match(namespace) {
                return Ok(());
            }
        }
    }
    Err(format!(
        "spec.conditions do not allow namespace {namespace}"
    ))
}

/// The store of a template-only ExternalSecret, which reads nothing.
#[derive(Debug)]
struct NoStore;

impl StoreProvider for NoStore {
    fn provider_name(&self) -> &'static str {
        "none"
    }

    fn share_key(&self, _: &str) -> String {
        "none".to_owned()
    }

    fn client<'w>(&'w self, _: &'w World, _: &str) -> Box<dyn SecretsClient + 'w> {
        Box::new(NoStore)
    }

    fn world_namespaces(&self) -> BTreeSet<String> {
        BTreeSet::new()
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

impl SecretsClient for NoStore {
    fn get_secret(&self, _: &RemoteRef) -> Result<SecretBytes, FetchError> {
        Err(FetchError::new("no secretStoreRef"))
    }

    fn get_secret_map(&self, _: &RemoteRef) -> Result<SecretMap, FetchError> {
        Err(FetchError::new("no secretStoreRef"))
    }

    fn get_all_secrets(&self, _: &FindRef) -> Result<SecretMap, FetchError> {
        Err(FetchError::new("no secretStoreRef"))
    }
}
