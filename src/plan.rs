//! The pure planner: (manifests, world) -> desired Secrets and per-target errors. No IO.
//!
//! A ClusterExternalSecret that reads a ClusterSecretStore renders the same Secret in
//! every namespace it selects, so each such body is rendered once and shared; only
//! namespace-dependent specs (a namespaced SecretStore, templateFrom a ConfigMap or
//! Secret of the target namespace) render per namespace.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::{Arc, LazyLock};

use minijinja::Environment;
use regex::Regex;
use sha2::{Digest, Sha256};

use crate::load::{Loaded, Manifests, Origin, StoreKind, object_display};
use crate::model::{
    ClusterExternalSecretSpec, CreationPolicy, DeletionPolicy, ExternalSecretSpec,
    KubernetesProvider, MergePolicy, SecretStoreManifest, SecretTemplate, StringMap, TemplateScope,
    TemplateTarget,
};
use crate::secret_bytes::SecretBytes;
use crate::select::{LabelSelector, Selector};
use crate::source::{self, KubernetesClient, SecretMap, SecretsClient};
use crate::template;
use crate::world::World;

/// Label every Secret courier writes carries.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// Its value.
pub const MANAGED_BY_VALUE: &str = "courier";
/// Annotation naming the manifest a Secret was rendered from.
pub const ORIGIN_ANNOTATION: &str = "courier.dev/origin";
/// Annotation holding the sha256 of everything courier writes (type, labels, annotations, data).
pub const DATA_HASH_ANNOTATION: &str = "courier.dev/data-hash";

/// Keys Kubernetes accepts in Secret data (ESO's key pattern).
static SECRET_KEY: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[-._a-zA-Z0-9]+$").expect("static pattern"));

/// The content of a Secret courier wants; shared between the namespaces that get the same one.
#[derive(Debug, Clone, PartialEq)]
pub struct SecretBody {
    /// `type`.
    pub type_: String,
    /// Labels, courier's included.
    pub labels: StringMap,
    /// Annotations, courier's (origin, data hash) included.
    pub annotations: StringMap,
    /// Values.
    pub data: BTreeMap<String, SecretBytes>,
    /// `immutable: true`.
    pub immutable: bool,
    /// `target.creationPolicy`.
    pub creation_policy: CreationPolicy,
    /// `target.deletionPolicy`.
    pub deletion_policy: DeletionPolicy,
}

impl SecretBody {
    /// The data-hash annotation's value.
    pub fn data_hash(&self) -> &str {
        self.annotations
            .get(DATA_HASH_ANNOTATION)
            .map(String::as_str)
            .unwrap_or_default()
    }
}

/// One Secret to write.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredSecret {
    /// Target namespace.
    pub namespace: String,
    /// Target name.
    pub name: String,
    /// `ClusterExternalSecret/<name>` or `ExternalSecret/<ns>/<name>`.
    pub owner: Arc<str>,
    /// Type, metadata and values.
    pub body: Arc<SecretBody>,
}

/// A target that could not be planned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanError {
    /// The manifest's file and line.
    pub origin: Origin,
    /// `Kind/name` of the manifest.
    pub object: String,
    /// The target Secrets affected (`namespace/name`), when the error is about targets.
    pub targets: Vec<String>,
    /// The key or field at fault (`data[0] (secretKey password)`), when known.
    pub key: Option<String>,
    /// What is wrong; never a value.
    pub message: String,
    /// `deletionPolicy` of the manifest when the failure is a source that is gone, so
    /// live mode can delete (Delete) or take back (Merge) the existing targets.
    pub source_missing: Option<DeletionPolicy>,
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.origin, self.object)?;
        match self.targets.as_slice() {
            [] => {}
            [one] => write!(f, ": target {one}")?,
            many => {
                let shown: Vec<&str> = many.iter().take(5).map(String::as_str).collect();
                let more = if many.len() > 5 {
                    format!(" and {} more", many.len() - 5)
                } else {
                    String::new()
                };
                write!(f, ": {} targets ({}{more})", many.len(), shown.join(", "))?;
            }
        }
        if let Some(key) = &self.key {
            write!(f, ": {key}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// The planner's answer.
#[derive(Debug, Default)]
pub struct Plan {
    /// Secrets to write, sorted by namespace then name.
    pub secrets: Vec<DesiredSecret>,
    /// Everything that failed.
    pub errors: Vec<PlanError>,
}

/// A target without its values, as `check` lists it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct PlannedTarget {
    /// Target namespace.
    pub namespace: String,
    /// Target name.
    pub name: String,
    /// Secret type as the template declares it.
    pub type_: String,
    /// Manifest it comes from.
    pub owner: String,
}

/// `check`'s answer: every target and every error found without reading a value.
#[derive(Debug, Default)]
pub struct CheckReport {
    /// Targets, sorted.
    pub targets: Vec<PlannedTarget>,
    /// Problems.
    pub errors: Vec<PlanError>,
}

/// A failure before a target is named, with the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Failure {
    key: Option<String>,
    message: String,
    source_missing: bool,
}

impl Failure {
    fn new(key: impl Into<Option<String>>, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
            source_missing: false,
        }
    }

    fn fetch(key: impl Into<Option<String>>, error: crate::source::FetchError) -> Self {
        Self {
            key: key.into(),
            message: error.message,
            source_missing: error.source_missing,
        }
    }
}

/// One ExternalSecret in one namespace: what a CES makes per namespace, or an ES itself.
struct Instance<'m> {
    owner_index: usize,
    namespace: String,
    secret_name: String,
    spec: &'m ExternalSecretSpec,
    metadata_labels: &'m StringMap,
    metadata_annotations: &'m StringMap,
}

struct Owner<'m> {
    origin: &'m Origin,
    display: Arc<str>,
    deletion_policy: DeletionPolicy,
}

/// Plans every target. Pure: reads only its arguments.
pub fn plan(manifests: &Manifests, world: &World) -> Plan {
    let planner = Planner::new(manifests, world);
    let (instances, mut errors) = planner.instances();
    let env = template::environment();
    let mut shared: HashMap<(usize, String), Result<Arc<SecretBody>, Failure>> = HashMap::new();
    let mut failures: BTreeMap<(usize, Failure), Vec<String>> = BTreeMap::new();
    let mut rendered: BTreeMap<(String, String), Vec<DesiredSecret>> = BTreeMap::new();

    for instance in &instances {
        let target = format!("{}/{}", instance.namespace, instance.secret_name);
        let body = planner.resolve_store(instance).and_then(|store| {
            let namespace_dependent = store.namespaced || uses_namespace_templates(instance.spec);
            let render = || match &store.backend {
                Backend::Kubernetes { remote_namespace } => {
                    let client = KubernetesClient::new(world, remote_namespace);
                    render_body(&env, &planner, instance, &client).map(Arc::new)
                }
                Backend::Vault { store, .. } => {
                    let client = crate::source::RemoteClient::new(world, store);
                    render_body(&env, &planner, instance, &client).map(Arc::new)
                }
                Backend::Webhook { store, .. } => {
                    let client = crate::source::WebhookClient::new(world, store);
                    render_body(&env, &planner, instance, &client).map(Arc::new)
                }
            };
            if namespace_dependent {
                render()
            } else {
                shared
                    .entry((instance.owner_index, store.backend.cache_key()))
                    .or_insert_with(render)
                    .clone()
            }
        });
        match body {
            Ok(body) => rendered
                .entry((instance.namespace.clone(), instance.secret_name.clone()))
                .or_default()
                .push(DesiredSecret {
                    namespace: instance.namespace.clone(),
                    name: instance.secret_name.clone(),
                    owner: planner.owners[instance.owner_index].display.clone(),
                    body,
                }),
            Err(failure) => failures
                .entry((instance.owner_index, failure))
                .or_default()
                .push(target),
        }
    }
    for ((owner_index, failure), targets) in failures {
        errors.push(planner.error(owner_index, targets, failure));
    }
    let mut secrets = Vec::with_capacity(rendered.len());
    for ((namespace, name), mut candidates) in rendered {
        if candidates.len() == 1 {
            secrets.push(candidates.pop().expect("one candidate"));
        } else {
            let owners: Vec<&str> = candidates.iter().map(|c| &*c.owner).collect();
            errors.push(conflict_error(&planner, &namespace, &name, &owners));
        }
    }
    Plan { secrets, errors }
}

/// Every validation that needs no secret value: selectors, store references, providers,
/// regular expressions, keys, names and template syntax. Lists the targets it would write.
pub fn check(manifests: &Manifests, world: &World) -> CheckReport {
    let planner = Planner::new(manifests, world);
    let (instances, mut errors) = planner.instances();
    let env = template::environment();
    let mut failures: BTreeMap<(usize, Failure), Vec<String>> = BTreeMap::new();
    let mut static_checked: HashMap<usize, Option<Failure>> = HashMap::new();
    let mut targets: BTreeMap<(String, String), Vec<PlannedTarget>> = BTreeMap::new();
    for instance in &instances {
        let target = format!("{}/{}", instance.namespace, instance.secret_name);
        let outcome = planner.resolve_store(instance).and_then(|_| {
            match static_checked
                .entry(instance.owner_index)
                .or_insert_with(|| validate_spec(&env, instance.spec).err())
            {
                Some(failure) => Err(failure.clone()),
                None => Ok(()),
            }
        });
        match outcome {
            Ok(()) => {
                let type_ = instance
                    .spec
                    .target
                    .template
                    .as_ref()
                    .and_then(|t| t.type_.clone())
                    .unwrap_or_else(|| "Opaque".into());
                targets
                    .entry((instance.namespace.clone(), instance.secret_name.clone()))
                    .or_default()
                    .push(PlannedTarget {
                        namespace: instance.namespace.clone(),
                        name: instance.secret_name.clone(),
                        type_,
                        owner: planner.owners[instance.owner_index].display.to_string(),
                    });
            }
            Err(failure) => failures
                .entry((instance.owner_index, failure))
                .or_default()
                .push(target),
        }
    }
    for ((owner_index, failure), targets) in failures {
        errors.push(planner.error(owner_index, targets, failure));
    }
    let mut listed = Vec::new();
    for ((namespace, name), mut candidates) in targets {
        if candidates.len() == 1 {
            listed.push(candidates.pop().expect("one candidate"));
        } else {
            let owners: Vec<&str> = candidates.iter().map(|c| c.owner.as_str()).collect();
            errors.push(conflict_error(&planner, &namespace, &name, &owners));
        }
    }
    CheckReport {
        targets: listed,
        errors,
    }
}

fn conflict_error(
    planner: &Planner<'_>,
    namespace: &str,
    name: &str,
    owners: &[&str],
) -> PlanError {
    PlanError {
        origin: planner.owner_origin(owners[1]),
        object: owners[1].to_owned(),
        targets: vec![format!("{namespace}/{name}")],
        key: None,
        source_missing: None,
        message: format!(
            "the same Secret is written by {}; rename one target",
            owners.join(" and ")
        ),
    }
}

struct ResolvedStore {
    backend: Backend,
    namespaced: bool,
}

/// Where a store's values come from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Backend {
    /// Secrets of a namespace of the world.
    Kubernetes {
        /// `remoteNamespace`.
        remote_namespace: String,
    },
    /// An HTTP endpoint; its answers are prefetched into the world.
    Webhook {
        /// `Kind/namespace/name` of the store.
        store: String,
        /// Its configuration.
        config: Box<crate::model::WebhookProvider>,
        /// Namespace of the Secrets its templates may use.
        credentials_namespace: String,
    },
    /// A Vault/OpenBao KV engine; its values are prefetched into the world.
    Vault {
        /// `Kind/namespace/name` of the store: the key of its prefetched values.
        store: String,
        /// Its configuration.
        config: Box<crate::model::VaultProvider>,
        /// Namespace of the Secrets holding its credentials.
        credentials_namespace: String,
    },
}

impl Backend {
    /// Identifies what a shared render may be cached by.
    fn cache_key(&self) -> String {
        match self {
            Backend::Kubernetes { remote_namespace } => format!("kubernetes:{remote_namespace}"),
            Backend::Vault { store, .. } => format!("vault:{store}"),
            Backend::Webhook { store, .. } => format!("webhook:{store}"),
        }
    }
}

struct Planner<'m> {
    manifests: &'m Manifests,
    world: &'m World,
    owners: Vec<Owner<'m>>,
    cluster_stores: HashMap<&'m str, &'m Loaded<(StoreKind, SecretStoreManifest)>>,
    namespaced_stores: HashMap<(&'m str, &'m str), &'m Loaded<(StoreKind, SecretStoreManifest)>>,
}

impl<'m> Planner<'m> {
    fn new(manifests: &'m Manifests, world: &'m World) -> Self {
        let mut owners = Vec::new();
        for ces in &manifests.cluster_external_secrets {
            let display = object_display("ClusterExternalSecret", None, &ces.object.metadata.name);
            owners.push(Owner {
                origin: &ces.origin,
                display: display.into(),
                deletion_policy: ces
                    .object
                    .spec
                    .external_secret_spec
                    .target
                    .deletion_policy
                    .unwrap_or_default(),
            });
        }
        for es in &manifests.external_secrets {
            let meta = &es.object.metadata;
            let display = object_display("ExternalSecret", meta.namespace.as_deref(), &meta.name);
            owners.push(Owner {
                origin: &es.origin,
                display: display.into(),
                deletion_policy: es.object.spec.target.deletion_policy.unwrap_or_default(),
            });
        }
        let mut cluster_stores = HashMap::new();
        let mut namespaced_stores = HashMap::new();
        for store in &manifests.stores {
            let meta = &store.object.1.metadata;
            match store.object.0 {
                StoreKind::ClusterSecretStore => {
                    cluster_stores.insert(meta.name.as_str(), store);
                }
                StoreKind::SecretStore => {
                    namespaced_stores.insert(
                        (
                            meta.namespace.as_deref().unwrap_or_default(),
                            meta.name.as_str(),
                        ),
                        store,
                    );
                }
            }
        }
        Self {
            manifests,
            world,
            owners,
            cluster_stores,
            namespaced_stores,
        }
    }

    fn error(&self, owner_index: usize, targets: Vec<String>, failure: Failure) -> PlanError {
        let owner = &self.owners[owner_index];
        PlanError {
            origin: owner.origin.clone(),
            object: owner.display.to_string(),
            targets,
            key: failure.key,
            message: failure.message,
            source_missing: failure.source_missing.then_some(owner.deletion_policy),
        }
    }

    fn owner_origin(&self, display: &str) -> Origin {
        self.owners
            .iter()
            .find(|o| &*o.display == display)
            .map(|o| o.origin.clone())
            .unwrap_or(Origin {
                file: "<unknown>".into(),
                line: 0,
            })
    }

    fn validate_target_name(&self, name: &str) -> Result<(), String> {
        validate_secret_name(name)?;
        if self.world.block_list.denies_name(name) {
            return Err(format!(
                "{name:?} is on the deny list; courier never writes it"
            ));
        }
        Ok(())
    }

    /// Expands every CES over the namespaces it selects, and adds every ES.
    fn instances(&self) -> (Vec<Instance<'m>>, Vec<PlanError>) {
        let mut instances = Vec::new();
        let mut errors = Vec::new();
        for (index, ces) in self.manifests.cluster_external_secrets.iter().enumerate() {
            let spec = &ces.object.spec;
            let es_spec = &spec.external_secret_spec;
            if es_spec.target.creation_policy == Some(CreationPolicy::None) {
                continue;
            }
            let namespaces = match self.selected_namespaces(spec) {
                Ok(namespaces) => namespaces,
                Err(failure) => {
                    errors.push(self.error(index, Vec::new(), failure));
                    continue;
                }
            };
            let es_name = spec
                .external_secret_name
                .clone()
                .unwrap_or_else(|| ces.object.metadata.name.clone());
            let secret_name = es_spec
                .target
                .name
                .clone()
                .unwrap_or_else(|| es_name.clone());
            if let Err(message) = self.validate_target_name(&secret_name) {
                errors.push(self.error(
                    index,
                    Vec::new(),
                    Failure::new("target.name".to_owned(), message),
                ));
                continue;
            }
            let (labels, annotations) = match &spec.external_secret_metadata {
                Some(m) => (&m.labels, &m.annotations),
                None => (&EMPTY, &EMPTY),
            };
            for namespace in namespaces {
                instances.push(Instance {
                    owner_index: index,
                    namespace,
                    secret_name: secret_name.clone(),
                    spec: es_spec,
                    metadata_labels: labels,
                    metadata_annotations: annotations,
                });
            }
        }
        let offset = self.manifests.cluster_external_secrets.len();
        for (index, es) in self.manifests.external_secrets.iter().enumerate() {
            let meta = &es.object.metadata;
            let spec = &es.object.spec;
            if spec.target.creation_policy == Some(CreationPolicy::None) {
                continue;
            }
            let secret_name = spec
                .target
                .name
                .clone()
                .unwrap_or_else(|| meta.name.clone());
            if let Err(message) = self.validate_target_name(&secret_name) {
                errors.push(self.error(
                    offset + index,
                    Vec::new(),
                    Failure::new("target.name".to_owned(), message),
                ));
                continue;
            }
            instances.push(Instance {
                owner_index: offset + index,
                namespace: meta.namespace.clone().unwrap_or_default(),
                secret_name,
                spec,
                metadata_labels: &meta.labels,
                metadata_annotations: &meta.annotations,
            });
        }
        (instances, errors)
    }

    /// The union of `namespaceSelectors`, `namespaceSelector` and `namespaces`; no selector selects none.
    fn selected_namespaces(
        &self,
        spec: &ClusterExternalSecretSpec,
    ) -> Result<BTreeSet<String>, Failure> {
        let mut selectors: Vec<(String, Selector)> = Vec::new();
        for (index, selector) in spec.namespace_selectors.iter().flatten().enumerate() {
            let field = format!("namespaceSelectors[{index}]");
            let compiled = selector
                .compile()
                .map_err(|e| Failure::new(field.clone(), e.to_string()))?;
            selectors.push((field, compiled));
        }
        if let Some(selector) = &spec.namespace_selector {
            let compiled = selector
                .compile()
                .map_err(|e| Failure::new("namespaceSelector".to_owned(), e.to_string()))?;
            selectors.push(("namespaceSelector".into(), compiled));
        }
        let mut selected = BTreeSet::new();
        for (name, labels) in &self.world.namespaces {
            if selectors.iter().any(|(_, s)| s.matches(labels)) {
                selected.insert(name.clone());
            }
        }
        for name in spec.namespaces.iter().flatten() {
            if self.world.namespaces.contains_key(name) {
                selected.insert(name.clone());
            }
        }
        Ok(selected)
    }

    fn resolve_store(&self, instance: &Instance<'_>) -> Result<ResolvedStore, Failure> {
        let field = || Some("secretStoreRef".to_owned());
        let Some(reference) = &instance.spec.secret_store_ref else {
            if instance.spec.data.is_empty() && instance.spec.data_from.is_empty() {
                // A template-only ExternalSecret reads no store.
                return Ok(ResolvedStore {
                    backend: Backend::Kubernetes {
                        remote_namespace: String::new(),
                    },
                    namespaced: false,
                });
            }
            return Err(Failure::new(
                field(),
                "missing; it names the store the values come from",
            ));
        };
        let kind = reference.kind.as_deref().unwrap_or("SecretStore");
        let (store, namespaced) = match kind {
            "ClusterSecretStore" => (self.cluster_stores.get(reference.name.as_str()), false),
            "SecretStore" => (
                self.namespaced_stores
                    .get(&(instance.namespace.as_str(), reference.name.as_str())),
                true,
            ),
            other => {
                return Err(Failure::new(
                    field(),
                    format!("unknown kind {other:?}; expected SecretStore or ClusterSecretStore"),
                ));
            }
        };
        let Some(store) = store else {
            let place = if namespaced {
                format!(" in namespace {}", instance.namespace)
            } else {
                String::new()
            };
            return Err(Failure::new(
                field(),
                format!("{kind} {:?} not found{place}", reference.name),
            ));
        };
        let manifest = &store.object.1;
        let store_display = object_display(
            kind,
            manifest.metadata.namespace.as_deref(),
            &manifest.metadata.name,
        );
        if !namespaced && !manifest.spec.conditions.is_empty() {
            self.check_conditions(manifest, &instance.namespace)
                .map_err(|m| Failure::new(field(), format!("{store_display}: {m}")))?;
        }
        let mut providers = manifest.spec.provider.iter();
        let (provider, config) = match (providers.next(), providers.next()) {
            (Some(one), None) => one,
            (None, _) => {
                return Err(Failure::new(
                    field(),
                    format!("{store_display} ({}) has no spec.provider", store.origin),
                ));
            }
            (Some(_), Some(_)) => {
                return Err(Failure::new(
                    field(),
                    format!(
                        "{store_display} ({}) has more than one provider",
                        store.origin
                    ),
                ));
            }
        };
        if provider == "vault" {
            let config: crate::model::VaultProvider =
                parse_provider("vault", config, &store_display, &store.origin)?;
            let credentials_namespace = if namespaced {
                manifest.metadata.namespace.clone().unwrap_or_default()
            } else {
                let selector = config.auth.token_secret_ref.as_ref().or(config
                    .auth
                    .app_role
                    .as_ref()
                    .and_then(|a| a.secret_ref.as_ref()));
                selector
                    .and_then(|s| s.namespace.clone())
                    .unwrap_or_default()
            };
            return Ok(ResolvedStore {
                backend: Backend::Vault {
                    store: store_display,
                    config: Box::new(config),
                    credentials_namespace,
                },
                namespaced,
            });
        }
        if provider == "webhook" {
            let config: crate::model::WebhookProvider =
                parse_provider("webhook", config, &store_display, &store.origin)?;
            let credentials_namespace = if namespaced {
                manifest.metadata.namespace.clone().unwrap_or_default()
            } else {
                config
                    .secrets
                    .iter()
                    .find_map(|s| s.secret_ref.namespace.clone())
                    .unwrap_or_default()
            };
            return Ok(ResolvedStore {
                backend: Backend::Webhook {
                    store: store_display,
                    config: Box::new(config),
                    credentials_namespace,
                },
                namespaced,
            });
        }
        if provider != "kubernetes" {
            return Err(Failure::new(
                field(),
                format!(
                    "{store_display} uses provider {provider:?}, which courier does not support yet (supported: kubernetes, vault)"
                ),
            ));
        }
        let kubernetes: KubernetesProvider =
            serde_json::from_value(config.clone()).map_err(|e| {
                Failure::new(
                    field(),
                    format!(
                        "{store_display} ({}): spec.provider.kubernetes: {}",
                        store.origin,
                        crate::redact::scrub_serde_message(&e.to_string())
                    ),
                )
            })?;
        Ok(ResolvedStore {
            backend: Backend::Kubernetes {
                remote_namespace: kubernetes
                    .remote_namespace
                    .filter(|n| !n.is_empty())
                    .unwrap_or_else(|| "default".into()),
            },
            namespaced,
        })
    }

    fn check_conditions(&self, store: &SecretStoreManifest, namespace: &str) -> Result<(), String> {
        let labels = self
            .world
            .namespaces
            .get(namespace)
            .cloned()
            .unwrap_or_else(|| {
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
}

/// What a plan will read from remote stores, so it can be fetched before planning: once
/// per reconcile, however many targets use a value.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RemoteRequests {
    /// Per store (`Kind/namespace/name`): its configuration, credentials namespace, the
    /// `(key, version)` reads and the `find.name.regexp` patterns.
    pub stores: BTreeMap<String, RemoteStoreRequests>,
}

/// The reads of one remote store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteStoreRequests {
    /// The store's configuration.
    pub config: RemoteConfig,
    /// Where its credential Secrets are.
    pub credentials_namespace: String,
    /// Secret paths, with an optional version.
    pub reads: BTreeSet<(String, Option<String>)>,
    /// Name patterns to list and read.
    pub finds: BTreeSet<String>,
}

/// A remote store's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RemoteConfig {
    /// Vault or OpenBao.
    Vault(Box<crate::model::VaultProvider>),
    /// An HTTP endpoint.
    Webhook(Box<crate::model::WebhookProvider>),
}

/// The key a webhook read is kept under: its URL may use the property, so it is part of it.
pub fn webhook_read_key(key: &str, property: Option<&str>) -> String {
    match property.filter(|p| !p.is_empty()) {
        Some(property) => format!("{key}\u{1f}{property}"),
        None => key.to_owned(),
    }
}

/// Every remote read the plan of `(manifests, world)` will make.
pub fn remote_requests(manifests: &Manifests, world: &World) -> RemoteRequests {
    let planner = Planner::new(manifests, world);
    let (instances, _) = planner.instances();
    let mut requests = RemoteRequests::default();
    for instance in &instances {
        let (store, config, credentials_namespace, webhook) = match planner.resolve_store(instance)
        {
            Ok(ResolvedStore {
                backend:
                    Backend::Vault {
                        store,
                        config,
                        credentials_namespace,
                    },
                ..
            }) => (
                store,
                RemoteConfig::Vault(config),
                credentials_namespace,
                false,
            ),
            Ok(ResolvedStore {
                backend:
                    Backend::Webhook {
                        store,
                        config,
                        credentials_namespace,
                    },
                ..
            }) => (
                store,
                RemoteConfig::Webhook(config),
                credentials_namespace,
                true,
            ),
            _ => continue,
        };
        let entry = requests
            .stores
            .entry(store)
            .or_insert_with(|| RemoteStoreRequests {
                config,
                credentials_namespace,
                reads: BTreeSet::new(),
                finds: BTreeSet::new(),
            });
        for data in &instance.spec.data {
            let reference = &data.remote_ref;
            let key = if webhook {
                webhook_read_key(&reference.key, reference.property.as_deref())
            } else {
                reference.key.clone()
            };
            entry.reads.insert((key, reference.version.clone()));
        }
        for from in &instance.spec.data_from {
            if let Some(extract) = &from.extract {
                entry
                    .reads
                    .insert((extract.key.clone(), extract.version.clone()));
            }
            if let Some(name) = from.find.as_ref().and_then(|f| f.name.as_ref()) {
                entry.finds.insert(name.regexp.clone());
            }
        }
    }
    requests
}

static EMPTY: StringMap = StringMap::new();

fn uses_namespace_templates(spec: &ExternalSecretSpec) -> bool {
    spec.target.template.as_ref().is_some_and(|t| {
        t.template_from
            .iter()
            .any(|from| from.config_map.is_some() || from.secret.is_some())
    })
}

/// A store's `spec.provider.<name>`, typed; errors name the store and never a value.
fn parse_provider<T: serde::de::DeserializeOwned>(
    name: &str,
    config: &serde_json::Value,
    store: &str,
    origin: &Origin,
) -> Result<T, Failure> {
    serde_json::from_value(config.clone()).map_err(|e| {
        let message = crate::redact::scrub_serde_message(&e.to_string());
        Failure::new(
            Some("secretStoreRef".to_owned()),
            format!("{store} ({origin}): spec.provider.{name}: {message}"),
        )
    })
}

/// A Secret name must be a DNS subdomain.
fn validate_secret_name(name: &str) -> Result<(), String> {
    if crate::select::is_dns_subdomain(name) {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a valid Secret name (lowercase alphanumerics, '-' and '.', at most 253 characters)"
        ))
    }
}

fn compile_rewrite(pattern: &str, field: &str) -> Result<Regex, Failure> {
    Regex::new(pattern)
        .map_err(|e| Failure::new(field.to_owned(), format!("invalid regular expression: {e}")))
}

/// Static checks of one spec.
fn validate_spec(env: &Environment<'_>, spec: &ExternalSecretSpec) -> Result<(), Failure> {
    for (index, entry) in spec.data_from.iter().enumerate() {
        let at = format!("dataFrom[{index}]");
        if entry.source_ref.is_some() {
            return Err(Failure::new(at, "sourceRef (generators) is not supported"));
        }
        match (&entry.extract, &entry.find) {
            (None, None) => return Err(Failure::new(at, "needs `extract` or `find`")),
            (_, Some(find)) => {
                if let Some(name) = &find.name {
                    compile_rewrite(&name.regexp, &format!("{at}.find.name.regexp"))?;
                }
                if let Some(tags) = &find.tags {
                    LabelSelector {
                        match_labels: tags.clone(),
                        ..Default::default()
                    }
                    .compile()
                    .map_err(|e| Failure::new(format!("{at}.find.tags"), e.to_string()))?;
                }
            }
            (Some(extract), None) if extract.key.is_empty() => {
                return Err(Failure::new(
                    format!("{at}.extract.key"),
                    "is empty; it names the source Secret",
                ));
            }
            _ => {}
        }
        for (rewrite_index, rewrite) in entry.rewrite.iter().enumerate() {
            let field = format!("{at}.rewrite[{rewrite_index}]");
            if rewrite.transform.is_some() {
                return Err(Failure::new(
                    field,
                    "transform rewrites are not supported; use regexp",
                ));
            }
            if let Some(regexp) = &rewrite.regexp {
                compile_rewrite(&regexp.source, &format!("{field}.regexp.source"))?;
            }
        }
    }
    for (index, entry) in spec.data.iter().enumerate() {
        let at = data_field(index, &entry.secret_key);
        if entry.secret_key.is_empty() {
            return Err(Failure::new(at, "secretKey is empty"));
        }
        if !SECRET_KEY.is_match(&entry.secret_key) {
            return Err(Failure::new(
                at,
                "secretKey must consist of alphanumerics, '-', '_' or '.'",
            ));
        }
        if entry.source_ref.is_some() {
            return Err(Failure::new(at, "sourceRef (generators) is not supported"));
        }
        if entry.remote_ref.key.is_empty() {
            return Err(Failure::new(
                at,
                "remoteRef.key is empty; it names the source Secret",
            ));
        }
    }
    if let Some(template) = &spec.target.template {
        for (key, source) in &template.data {
            template::validate(env, source)
                .map_err(|e| Failure::new(format!("template.data[{key}]"), e.message))?;
        }
        for (key, source) in &template.metadata.labels {
            template::validate(env, source)
                .map_err(|e| Failure::new(format!("template.metadata.labels[{key}]"), e.message))?;
        }
        for (key, source) in &template.metadata.annotations {
            template::validate(env, source).map_err(|e| {
                Failure::new(format!("template.metadata.annotations[{key}]"), e.message)
            })?;
        }
        for (index, from) in template.template_from.iter().enumerate() {
            if let Some(literal) = &from.literal {
                template::validate(env, literal).map_err(|e| {
                    Failure::new(format!("template.templateFrom[{index}].literal"), e.message)
                })?;
            }
        }
    }
    Ok(())
}

fn data_field(index: usize, secret_key: &str) -> String {
    format!("data[{index}] (secretKey {secret_key:?})")
}

/// dataFrom in order (later wins), then data[] on top: ESO's order.
fn fetch_values(
    client: &dyn SecretsClient,
    spec: &ExternalSecretSpec,
) -> Result<SecretMap, Failure> {
    let mut values = SecretMap::new();
    for (index, entry) in spec.data_from.iter().enumerate() {
        let at = format!("dataFrom[{index}]");
        if entry.source_ref.is_some() {
            return Err(Failure::new(at, "sourceRef (generators) is not supported"));
        }
        let (fetched, decoding, conversion) = match (&entry.extract, &entry.find) {
            (Some(extract), _) => (
                client
                    .get_secret_map(extract)
                    .map_err(|e| Failure::fetch(format!("{at}.extract"), e))?,
                extract.decoding_strategy,
                extract.conversion_strategy,
            ),
            (None, Some(find)) => (
                client
                    .get_all_secrets(find)
                    .map_err(|e| Failure::fetch(format!("{at}.find"), e))?,
                find.decoding_strategy,
                find.conversion_strategy,
            ),
            (None, None) => return Err(Failure::new(at, "needs `extract` or `find`")),
        };
        let mut map = fetched;
        for (rewrite_index, rewrite) in entry.rewrite.iter().enumerate() {
            let field = format!("{at}.rewrite[{rewrite_index}]");
            if rewrite.transform.is_some() {
                return Err(Failure::new(
                    field,
                    "transform rewrites are not supported; use regexp",
                ));
            }
            if let Some(regexp) = &rewrite.regexp {
                let pattern = compile_rewrite(&regexp.source, &format!("{field}.regexp.source"))?;
                map = map
                    .into_iter()
                    .map(|(k, v)| {
                        (
                            pattern.replace_all(&k, regexp.target.as_str()).into_owned(),
                            v,
                        )
                    })
                    .collect();
            }
        }
        if entry.rewrite.is_empty() {
            map = source::convert_keys(conversion.unwrap_or_default(), map)
                .map_err(|e| Failure::fetch(at.clone(), e))?;
        }
        for (key, value) in map {
            let value = source::decode(decoding.unwrap_or_default(), value)
                .map_err(|e| Failure::fetch(format!("{at} key {key:?}"), e))?;
            values.insert(key, value);
        }
    }
    for (index, entry) in spec.data.iter().enumerate() {
        let at = data_field(index, &entry.secret_key);
        if entry.secret_key.is_empty() {
            return Err(Failure::new(at, "secretKey is empty"));
        }
        if entry.source_ref.is_some() {
            return Err(Failure::new(at, "sourceRef (generators) is not supported"));
        }
        let value = client
            .get_secret(&entry.remote_ref)
            .map_err(|e| Failure::fetch(at.clone(), e))?;
        let value = source::decode(
            entry.remote_ref.decoding_strategy.unwrap_or_default(),
            value,
        )
        .map_err(|e| Failure::fetch(at.clone(), e))?;
        values.insert(entry.secret_key.clone(), value);
    }
    Ok(values)
}

fn render_body(
    env: &Environment<'_>,
    planner: &Planner<'_>,
    instance: &Instance<'_>,
    client: &dyn SecretsClient,
) -> Result<SecretBody, Failure> {
    let spec = instance.spec;
    let provider = fetch_values(client, spec)?;
    let (type_, mut labels, mut annotations, data) = match &spec.target.template {
        None => (
            "Opaque".to_owned(),
            instance.metadata_labels.clone(),
            instance.metadata_annotations.clone(),
            provider,
        ),
        Some(template) => render_template(env, planner, instance, template, provider)?,
    };
    for key in data.keys() {
        if !SECRET_KEY.is_match(key) {
            return Err(Failure::new(
                format!("key {key:?}"),
                "is not a valid Secret key (alphanumerics, '-', '_' or '.'); rename it with dataFrom[].rewrite",
            ));
        }
    }
    labels.insert(MANAGED_BY_LABEL.into(), MANAGED_BY_VALUE.into());
    annotations.insert(
        ORIGIN_ANNOTATION.into(),
        planner.owners[instance.owner_index].display.to_string(),
    );
    annotations.remove(DATA_HASH_ANNOTATION);
    let mut body = SecretBody {
        type_,
        labels,
        annotations,
        data,
        immutable: spec.target.immutable,
        creation_policy: spec.target.creation_policy.unwrap_or_default(),
        deletion_policy: spec.target.deletion_policy.unwrap_or_default(),
    };
    let hash = content_hash(&body);
    body.annotations.insert(DATA_HASH_ANNOTATION.into(), hash);
    Ok(body)
}

type Rendered = (String, StringMap, StringMap, BTreeMap<String, SecretBytes>);

fn render_template(
    env: &Environment<'_>,
    planner: &Planner<'_>,
    instance: &Instance<'_>,
    template: &SecretTemplate,
    provider: SecretMap,
) -> Result<Rendered, Failure> {
    let context = template::context(&provider);
    let render = |source: &str, field: String| {
        template::render(env, source, &context).map_err(|e| Failure::new(field, e.message))
    };
    let mut data: BTreeMap<String, String> = BTreeMap::new();
    let mut labels = StringMap::new();
    let mut annotations = StringMap::new();
    for (index, from) in template.template_from.iter().enumerate() {
        let at = format!("template.templateFrom[{index}]");
        let sink = match from.target.unwrap_or_default() {
            TemplateTarget::Data => &mut data,
            TemplateTarget::Labels => &mut labels,
            TemplateTarget::Annotations => &mut annotations,
        };
        // ConfigMap and Secret items work alike: each key holds a template.
        let sources = [
            ("configMap", from.config_map.as_ref()),
            ("secret", from.secret.as_ref()),
        ];
        for (kind_field, reference) in sources {
            let Some(reference) = reference else { continue };
            let kind = if kind_field == "configMap" {
                "ConfigMap"
            } else {
                "Secret"
            };
            let object = format!("{kind} {}/{}", instance.namespace, reference.name);
            let not_found =
                || Failure::new(format!("{at}.{kind_field}"), format!("{object} not found"));
            let templates: BTreeMap<&str, Option<&str>> = if kind_field == "configMap" {
                let maps = planner.world.config_maps.get(&instance.namespace);
                let map = maps
                    .and_then(|maps| maps.get(&reference.name))
                    .ok_or_else(not_found)?;
                map.iter()
                    .map(|(k, v)| (k.as_str(), Some(v.as_str())))
                    .collect()
            } else {
                let secret = planner
                    .world
                    .secret(&instance.namespace, &reference.name)
                    .ok_or_else(not_found)?;
                secret
                    .data
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect()
            };
            for item in &reference.items {
                let field = format!("{at}.{kind_field}.items[{}]", item.key);
                let source = templates
                    .get(item.key.as_str())
                    .ok_or_else(|| {
                        Failure::new(field.clone(), format!("key not found in {object}"))
                    })?
                    .ok_or_else(|| Failure::new(field.clone(), "template is not UTF-8 text"))?;
                let output = render(source, field.clone())?;
                add_rendered(
                    sink,
                    &item.key,
                    item.template_as.unwrap_or_default(),
                    output,
                    &field,
                )?;
            }
        }
        if let Some(literal) = &from.literal {
            let field = format!("{at}.literal");
            let output = render(literal, field.clone())?;
            add_rendered(sink, "", TemplateScope::KeysAndValues, output, &field)?;
        }
    }
    for (key, source) in &template.data {
        data.insert(
            key.clone(),
            render(source, format!("template.data[{key}]"))?,
        );
    }
    for (key, source) in &template.metadata.labels {
        labels.insert(
            key.clone(),
            render(source, format!("template.metadata.labels[{key}]"))?,
        );
    }
    for (key, source) in &template.metadata.annotations {
        annotations.insert(
            key.clone(),
            render(source, format!("template.metadata.annotations[{key}]"))?,
        );
    }
    let templated: BTreeMap<String, SecretBytes> = data
        .into_iter()
        .map(|(k, v)| (k, SecretBytes::from(v)))
        .collect();
    let has_template_data = !template.data.is_empty() || !template.template_from.is_empty();
    let merged = match (template.merge_policy.unwrap_or_default(), has_template_data) {
        (MergePolicy::Replace, true) => templated,
        (MergePolicy::Replace, false) => provider,
        (MergePolicy::Merge, _) => {
            let mut merged = provider;
            merged.extend(templated);
            merged
        }
    };
    Ok((
        template.type_.clone().unwrap_or_else(|| "Opaque".into()),
        labels,
        annotations,
        merged,
    ))
}

/// `Values`: the output is the value of `key`. `KeysAndValues`: the output is a YAML map.
fn add_rendered(
    sink: &mut StringMap,
    key: &str,
    scope: TemplateScope,
    output: String,
    field: &str,
) -> Result<(), Failure> {
    match scope {
        TemplateScope::Values => {
            sink.insert(key.to_owned(), output);
        }
        TemplateScope::KeysAndValues => {
            let parsed: serde_json::Value = serde_saphyr::from_str(&output).map_err(|_| {
                Failure::new(
                    field.to_owned(),
                    "the rendered text is not YAML (KeysAndValues expects a map of keys to values)",
                )
            })?;
            let serde_json::Value::Object(members) = parsed else {
                if parsed.is_null() {
                    return Ok(());
                }
                return Err(Failure::new(
                    field.to_owned(),
                    "the rendered text is not a YAML map of keys to values",
                ));
            };
            for (k, v) in members {
                let text = match v {
                    serde_json::Value::String(s) => s,
                    serde_json::Value::Null => String::new(),
                    other => other.to_string(),
                };
                sink.insert(k, text);
            }
        }
    }
    Ok(())
}

/// sha256 over type, immutability, labels, annotations and data, each length-prefixed so
/// no two different Secrets share a preimage.
pub fn content_hash(body: &SecretBody) -> String {
    let mut hasher = Sha256::new();
    let mut field = |bytes: &[u8]| {
        hasher.update((bytes.len() as u64).to_le_bytes());
        hasher.update(bytes);
    };
    field(body.type_.as_bytes());
    field(&[u8::from(body.immutable)]);
    for (section, map) in [("labels", &body.labels), ("annotations", &body.annotations)] {
        field(section.as_bytes());
        for (k, v) in map
            .iter()
            .filter(|(k, _)| k.as_str() != DATA_HASH_ANNOTATION)
        {
            field(k.as_bytes());
            field(v.as_bytes());
        }
    }
    field(b"data");
    for (k, v) in &body.data {
        field(k.as_bytes());
        field(v.expose());
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
