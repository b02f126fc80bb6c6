//! The planner's two entry points: [`plan`] renders every target, [`check`] validates
//! every target without reading a value. Both share the target expansion and store
//! resolution, and report two manifests writing one Secret as a conflict.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use super::render::render_body;
use super::stores::ResolvedStore;
use super::targets::{Instance, Planner};
use super::types::{
    CheckReport, DesiredSecret, Failure, Plan, PlanError, PlannedTarget, SecretBody,
};
use super::validate::validate_spec;
use crate::core::load::Manifests;
use crate::core::model::{CreationPolicy, ExternalSecretSpec};
use crate::core::provider::ProviderRegistry;
use crate::core::template;
use crate::core::world::World;

/// Plans every target. Pure: reads only its arguments (remote values must already be
/// in the world; see [`super::remote_requests`]).
pub fn plan(manifests: &Manifests, world: &World, providers: &dyn ProviderRegistry) -> Plan {
    let planner = Planner::new(manifests, world, providers);
    let (instances, mut errors) = planner.instances();
    errors.splice(0..0, refused_errors(manifests));
    let env = template::environment();
    let mut shared: HashMap<(usize, String), Result<Arc<SecretBody>, Failure>> = HashMap::new();
    let mut failures: BTreeMap<(usize, Failure), Vec<String>> = BTreeMap::new();
    let mut rendered: BTreeMap<(String, String), Vec<DesiredSecret>> = BTreeMap::new();

    for instance in &instances {
        let target = format!("{}/{}", instance.namespace, instance.secret_name);
        let body = planner.resolve_store(instance).and_then(|store| {
            let namespace_dependent = store.namespaced || uses_namespace_templates(instance.spec);
            let render = || {
                let client = store.provider.client(world, &instance.namespace);
                render_body(&env, &planner, instance, client.as_ref()).map(Arc::new)
            };
            once(&mut shared, instance, &store, namespace_dependent, render)
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

/// Every validation that prints no secret value: selectors, store references, providers,
/// regular expressions, keys, names and template syntax, and, where the world holds the
/// sources, the sources, their keys and the templates' variables (rendered in memory and
/// dropped). Lists the targets it would write.
pub fn check(
    manifests: &Manifests,
    world: &World,
    providers: &dyn ProviderRegistry,
) -> CheckReport {
    let planner = Planner::new(manifests, world, providers);
    let (instances, mut errors) = planner.instances();
    errors.splice(0..0, refused_errors(manifests));
    let env = template::environment();
    let mut failures: BTreeMap<(usize, Failure), Vec<String>> = BTreeMap::new();
    let mut static_checked: HashMap<usize, Option<Failure>> = HashMap::new();
    let mut rendered: HashMap<(usize, String), Result<(), Failure>> = HashMap::new();
    let mut targets: BTreeMap<(String, String), Vec<PlannedTarget>> = BTreeMap::new();
    let static_check = |owner_index: usize, spec: &ExternalSecretSpec| {
        let engine = planner.owners[owner_index].engine.clone();
        engine
            .and_then(|engine| validate_spec(&env, spec, engine))
            .err()
    };
    // A files world without any store (a repository of ExternalSecrets whose stores live
    // in the cluster) cannot resolve a store reference: the targets are listed and
    // checked statically, and `check --world cluster` resolves the rest.
    let no_stores = stores_absent(manifests, world);
    for instance in &instances {
        let target = format!("{}/{}", instance.namespace, instance.secret_name);
        let mut failed: Vec<Failure> = static_checked
            .entry(instance.owner_index)
            .or_insert_with(|| static_check(instance.owner_index, instance.spec))
            .clone()
            .into_iter()
            .collect();
        // The store is resolved even when the spec is wrong: both are told at once.
        match planner.resolve_store(instance) {
            _ if no_stores => {}
            Err(failure) => failed.push(failure),
            // Where the world itself holds the sources (a files world), render the body
            // and throw it away: a missing source, key or template variable is found
            // here, and nothing is printed. Remote stores are not contacted by check.
            Ok(store)
                if failed.is_empty()
                    && store.provider.remote_key(&instance.namespace).is_none() =>
            {
                let render = || {
                    let client = store.provider.client(world, &instance.namespace);
                    render_body(&env, &planner, instance, client.as_ref()).map(drop)
                };
                let namespace_dependent =
                    store.namespaced || uses_namespace_templates(instance.spec);
                if let Err(failure) =
                    once(&mut rendered, instance, &store, namespace_dependent, render)
                {
                    failed.push(failure);
                }
            }
            Ok(_) => {}
        }
        if failed.is_empty() {
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
        for failure in failed {
            failures
                .entry((instance.owner_index, failure))
                .or_default()
                .push(target.clone());
        }
    }
    // A ClusterExternalSecret that selected no namespace (the inputs hold none, say) is
    // still checked for what needs no namespace: its spec, and a ClusterSecretStore it
    // names.
    for (owner_index, ces) in manifests.cluster_external_secrets.iter().enumerate() {
        let spec = &ces.object.spec.external_secret_spec;
        if static_checked.contains_key(&owner_index)
            || spec.target.creation_policy == Some(CreationPolicy::None)
        {
            continue;
        }
        if let Some(failure) = static_check(owner_index, spec) {
            failures.entry((owner_index, failure)).or_default();
        }
        if !no_stores && let Some(failure) = planner.stores.missing_cluster_store(spec) {
            failures.entry((owner_index, failure)).or_default();
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

/// Whether a store reference cannot be resolved at all: a files world whose inputs hold no
/// store, not even a refused one.
pub fn stores_absent(manifests: &Manifests, world: &World) -> bool {
    !world.live
        && manifests.stores.is_empty()
        && !manifests
            .refused
            .iter()
            .any(|r| matches!(r.kind.as_str(), "SecretStore" | "ClusterSecretStore"))
}

/// The errors of the objects refused at load, as their own: each fails that object's
/// targets alone (live mode keeps the targets it made before), and reads as the loader
/// wrote it, file, line and field path.
fn refused_errors(manifests: &Manifests) -> Vec<PlanError> {
    manifests
        .refused
        .iter()
        .flat_map(|refused| {
            refused.errors.iter().map(|error| PlanError {
                origin: error.origin.clone(),
                object: refused.object.clone(),
                targets: Vec::new(),
                key: None,
                message: error.message.clone(),
                source_missing: None,
            })
        })
        .collect()
}

/// A body that does not depend on the namespace is rendered once per (manifest, store)
/// and shared by every namespace the manifest selects.
fn once<T: Clone>(
    cache: &mut HashMap<(usize, String), T>,
    instance: &Instance<'_>,
    store: &ResolvedStore,
    namespace_dependent: bool,
    render: impl FnOnce() -> T,
) -> T {
    if namespace_dependent {
        return render();
    }
    cache
        .entry((
            instance.owner_index,
            store.provider.share_key(&instance.namespace),
        ))
        .or_insert_with(render)
        .clone()
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

fn uses_namespace_templates(spec: &ExternalSecretSpec) -> bool {
    spec.target.template.as_ref().is_some_and(|t| {
        t.template_from
            .iter()
            .any(|from| from.config_map.is_some() || from.secret.is_some())
    })
}
