//! Targets: every ClusterExternalSecret expanded over the namespaces its selectors pick,
//! plus every ExternalSecret, each with the manifest it came from.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use super::engine::{Engine, engine_of};
use super::stores::{ResolvedStore, StoreIndex};
use super::types::{Failure, PlanError};
use crate::core::load::{Manifests, Origin, object_display};
use crate::core::model::{
    ClusterExternalSecretSpec, CreationPolicy, DeletionPolicy, ExternalSecretSpec, StringMap,
};
use crate::core::provider::ProviderRegistry;
use crate::core::select::Selector;
use crate::core::world::World;

/// One ExternalSecret in one namespace: what a CES makes per namespace, or an ES itself.
pub(super) struct Instance<'m> {
    pub(super) owner_index: usize,
    pub(super) namespace: String,
    pub(super) secret_name: String,
    pub(super) spec: &'m ExternalSecretSpec,
    pub(super) metadata_labels: &'m StringMap,
    pub(super) metadata_annotations: &'m StringMap,
}

/// A manifest that owns targets: a ClusterExternalSecret or an ExternalSecret.
pub(super) struct Owner<'m> {
    pub(super) origin: &'m Origin,
    pub(super) display: Arc<str>,
    pub(super) deletion_policy: DeletionPolicy,
    /// The template language it asked for, or why its choice is invalid.
    pub(super) engine: Result<Engine, Failure>,
}

/// The manifests and world a plan is made against, indexed once.
pub(super) struct Planner<'m> {
    pub(super) manifests: &'m Manifests,
    pub(super) world: &'m World,
    pub(super) owners: Vec<Owner<'m>>,
    pub(super) stores: StoreIndex<'m>,
    /// (namespace, name) of every ExternalSecret there is: those of the input (written by
    /// hand, `None`) and those a ClusterExternalSecret controls (`Some` of its name).
    taken: BTreeMap<(&'m str, &'m str), Option<&'m str>>,
}

impl<'m> Planner<'m> {
    pub(super) fn new(
        manifests: &'m Manifests,
        world: &'m World,
        providers: &'m dyn ProviderRegistry,
    ) -> Self {
        let mut owners = Vec::new();
        for ces in &manifests.cluster_external_secrets {
            let display = object_display("ClusterExternalSecret", None, &ces.object.metadata.name);
            owners.push(Owner {
                origin: &ces.origin,
                display: display.into(),
                engine: engine_of(
                    &ces.object.metadata.annotations,
                    &ces.object.spec.external_secret_spec,
                ),
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
                engine: engine_of(&meta.annotations, &es.object.spec),
                deletion_policy: es.object.spec.target.deletion_policy.unwrap_or_default(),
            });
        }
        let controlled = manifests.controlled_external_secrets.iter().map(|es| {
            (
                (es.namespace.as_str(), es.name.as_str()),
                Some(es.controller.as_str()),
            )
        });
        let hand_written = manifests.external_secrets.iter().map(|es| {
            let meta = &es.object.metadata;
            let namespace = meta.namespace.as_deref().unwrap_or_default();
            ((namespace, meta.name.as_str()), None)
        });
        let taken = controlled.chain(hand_written).collect();
        Self {
            manifests,
            world,
            owners,
            stores: StoreIndex::new(manifests, providers, world.live),
            taken,
        }
    }

    /// The store `instance` reads, checked against its conditions.
    pub(super) fn resolve_store(&self, instance: &Instance<'_>) -> Result<ResolvedStore, Failure> {
        self.stores
            .resolve(instance.spec, &instance.namespace, self.world)
    }

    pub(super) fn error(
        &self,
        owner_index: usize,
        targets: Vec<String>,
        failure: Failure,
    ) -> PlanError {
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

    pub(super) fn owner_origin(&self, display: &str) -> Origin {
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

    /// `creationPolicy: Merge` with no Secret to merge into, in a files world (whose
    /// Secrets are the existing targets): ESO creates nothing and reports no error
    /// (`CreatePolicyMerge` in pkg/controllers/externalsecret/externalsecret_controller.go
    /// waits for the next refresh), so the target is left out. In live mode `apply`
    /// decides against the cluster.
    fn merge_target_missing(&self, spec: &ExternalSecretSpec, namespace: &str, name: &str) -> bool {
        let missing = spec.target.creation_policy == Some(CreationPolicy::Merge)
            && !self.world.live
            && self.world.secret(namespace, name).is_none();
        if missing {
            tracing::info!(
                "{namespace}/{name}: creationPolicy Merge and no such Secret in the input; nothing is written, as ESO writes nothing"
            );
        }
        missing
    }

    /// Where two ClusterExternalSecrets give their ExternalSecrets one name and both
    /// select a namespace, the one of them whose name sorts first, by (namespace,
    /// ExternalSecret name). Under ESO whichever reconciles first makes the
    /// ExternalSecret there and the other fails; courier decides the same way every run.
    /// Empty, and no selection made, when no two share a name.
    fn claimed_external_secret_names(&self) -> BTreeMap<(String, String), &'m str> {
        let all = &self.manifests.cluster_external_secrets;
        let mut by_name: BTreeMap<&str, Vec<&'m str>> = BTreeMap::new();
        for ces in all {
            let spec = &ces.object.spec;
            let name = ces.object.metadata.name.as_str();
            let es_name = spec.external_secret_name.as_deref().unwrap_or(name);
            by_name.entry(es_name).or_default().push(name);
        }
        let mut claimed = BTreeMap::new();
        for (es_name, mut owners) in by_name.into_iter().filter(|(_, o)| o.len() > 1) {
            owners.sort_unstable();
            for owner in owners {
                let Some(ces) = all.iter().find(|c| c.object.metadata.name == owner) else {
                    continue;
                };
                for namespace in self
                    .selected_namespaces(&ces.object.spec)
                    .unwrap_or_default()
                {
                    claimed
                        .entry((namespace, es_name.to_owned()))
                        .or_insert(owner);
                }
            }
        }
        claimed
    }

    /// Expands every CES over the namespaces it selects, and adds every ES.
    pub(super) fn instances(&self) -> (Vec<Instance<'m>>, Vec<PlanError>) {
        let mut instances = Vec::new();
        let mut errors = Vec::new();
        let claimed = self.claimed_external_secret_names();
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
                if self.merge_target_missing(es_spec, &namespace, &secret_name) {
                    continue;
                }
                // ESO's gatherProvisionedNamespaces
                // (pkg/controllers/clusterexternalsecret/clusterexternalsecret_controller.go):
                // an ExternalSecret of the generated name that this ClusterExternalSecret
                // does not own fails that namespace; it is never overwritten.
                // Its target there is named in the error, so it is kept as it is.
                let ces_name = ces.object.metadata.name.as_str();
                let other = match self.taken.get(&(namespace.as_str(), es_name.as_str())) {
                    Some(None) => Some("written by hand".to_owned()),
                    Some(Some(controller)) if *controller != ces_name => {
                        Some(format!("controlled by ClusterExternalSecret {controller}"))
                    }
                    Some(Some(_)) => None,
                    // None yet: of the ClusterExternalSecrets that give their ExternalSecrets
                    // this name here, one makes it, and the others fail.
                    None if claimed.is_empty() => None,
                    None => claimed
                        .get(&(namespace.clone(), es_name.clone()))
                        .filter(|winner| **winner != ces_name)
                        .map(|winner| {
                            format!(
                                "made by ClusterExternalSecret {winner}, which gives its ExternalSecrets this name too and comes first by name"
                            )
                        }),
                };
                if let Some(other) = other {
                    errors.push(self.error(
                        index,
                        vec![format!("{namespace}/{secret_name}")],
                        Failure::new(
                            "externalSecretName".to_owned(),
                            format!(
                                "ExternalSecret {namespace}/{es_name} already exists in namespace {namespace} ({other}); ESO fails this namespace rather than overwrite it, and its target there is kept as it is\nhint: set externalSecretName to another name, or remove the ExternalSecret"
                            ),
                        ),
                    ));
                    continue;
                }
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
            let namespace = meta.namespace.clone().unwrap_or_default();
            if self.merge_target_missing(spec, &namespace, &secret_name) {
                continue;
            }
            instances.push(Instance {
                owner_index: offset + index,
                namespace,
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
        // ESO's gatherProvisionedNamespaces skips a namespace being deleted.
        selected.retain(|name| !self.world.terminating.contains(name));
        Ok(selected)
    }
}

pub(super) static EMPTY: StringMap = StringMap::new();

/// A Secret name must be a DNS subdomain.
fn validate_secret_name(name: &str) -> Result<(), String> {
    if crate::core::select::is_dns_subdomain(name) {
        Ok(())
    } else {
        Err(format!(
            "{name:?} is not a valid Secret name (lowercase alphanumerics, '-' and '.', at most 253 characters)"
        ))
    }
}
