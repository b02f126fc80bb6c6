//! Store resolution: which store a target reads, whether the store lets its namespace
//! use it (`spec.conditions`), and its provider, parsed once per plan by the registry.

use std::any::Any;
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

use regex::Regex;

use super::types::Failure;
use crate::core::load::{Loaded, Manifests, StoreKind, object_display};
use crate::core::model::{ExternalSecretSpec, FindRef, RemoteRef, SecretStoreManifest, StringMap};
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
        let field = || Some("secretStoreRef".to_owned());
        let Some(reference) = &spec.secret_store_ref else {
            if spec.data.is_empty() && spec.data_from.is_empty() {
                // A template-only ExternalSecret reads no store.
                return Ok(ResolvedStore {
                    provider: Arc::new(NoStore),
                    namespaced: false,
                });
            }
            return Err(Failure::new(
                field(),
                "missing; it names the store the values come from",
            ));
        };
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
        .map_err(|error| match error {
            ProviderError::Unknown { known } => format!(
                "{display} uses provider {name:?}, which courier does not support yet (supported: {})",
                known.join(", ")
            ),
            ProviderError::Invalid(message) => format!(
                "{display} ({}): spec.provider.{name}: {message}",
                store.origin
            ),
        })
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
