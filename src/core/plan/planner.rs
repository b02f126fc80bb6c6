//! The planner's two entry points: [`plan`] renders every target, [`check`] validates
//! every target without reading a value. Both share the target expansion and store
//! resolution, and report two manifests writing one Secret as a conflict.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use super::render::{render_body, sync_window_closed};
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
use crate::core::world::{SourceSecret, World};

/// Plans every target. Pure: reads only its arguments (remote values must already be
/// in the world; see [`super::remote_requests`]).
///
/// In a files world a Kubernetes store may read a Secret that is itself a target (ESO's
/// documented chain: one ExternalSecret pulls into a namespace, a ClusterExternalSecret
/// fans that Secret out): such targets are rendered first and become sources for the
/// targets that read them; targets that read each other in a cycle are refused.
pub fn plan(manifests: &Manifests, world: &World, providers: &dyn ProviderRegistry) -> Plan {
    let planner = Planner::new(manifests, world, providers);
    let (instances, mut errors) = planner.instances();
    if !world.live
        && let Some(chain) = chain_of(manifests, providers, &planner, &instances)
    {
        let mut plan = plan_chained(manifests, world, providers, &chain);
        plan.errors.splice(0..0, refused_errors(manifests));
        return plan;
    }
    errors.splice(0..0, refused_errors(manifests));
    plan_instances(&planner, instances, errors)
}

type Target = (String, String);

/// Which targets read which other targets through a store, in a files world.
struct Chain {
    /// Target to the targets it reads.
    reads: BTreeMap<Target, BTreeSet<Target>>,
    /// A target's manifest (the first, when several write it).
    owner: BTreeMap<Target, usize>,
}

/// The chain of targets, or None when no target is read by a store (the usual case).
fn chain_of(
    manifests: &Manifests,
    providers: &dyn ProviderRegistry,
    planner: &Planner<'_>,
    instances: &[Instance<'_>],
) -> Option<Chain> {
    let read_namespaces = super::stores::store_namespaces(manifests, providers, false);
    if !instances
        .iter()
        .any(|i| read_namespaces.contains(&i.namespace))
    {
        return None;
    }
    let mut by_namespace: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    let mut owner = BTreeMap::new();
    for instance in instances {
        by_namespace
            .entry(instance.namespace.as_str())
            .or_default()
            .insert(instance.secret_name.as_str());
        owner
            .entry((instance.namespace.clone(), instance.secret_name.clone()))
            .or_insert(instance.owner_index);
    }
    let mut reads: BTreeMap<Target, BTreeSet<Target>> = BTreeMap::new();
    for instance in instances {
        let Ok(store) = planner.resolve_store(instance) else {
            continue;
        };
        let mut namespaces = store.provider.world_namespaces();
        for provider in store.entries.values() {
            namespaces.extend(provider.world_namespaces());
        }
        let spec = instance.spec;
        let find = spec.data_from.iter().any(|f| f.find.is_some());
        let keys: BTreeSet<&str> = spec
            .data
            .iter()
            .map(|d| d.remote_ref.key.as_str())
            .chain(
                spec.data_from
                    .iter()
                    .filter_map(|f| f.extract.as_ref().map(|e| e.key.as_str())),
            )
            .collect();
        for namespace in &namespaces {
            for name in by_namespace.get(namespace.as_str()).into_iter().flatten() {
                if find || keys.contains(name) {
                    reads
                        .entry((instance.namespace.clone(), instance.secret_name.clone()))
                        .or_default()
                        .insert((namespace.clone(), (*name).to_owned()));
                }
            }
        }
    }
    (!reads.is_empty()).then_some(Chain { reads, owner })
}

/// The targets on a cycle of reads, each with the cycle it is on.
fn cycles(chain: &Chain) -> BTreeMap<Target, Vec<Target>> {
    let mut on_cycle = BTreeMap::new();
    for start in chain.reads.keys() {
        // Depth-first from `start`, looking for a way back to it.
        let mut stack: Vec<(Target, Vec<Target>)> = vec![(start.clone(), vec![start.clone()])];
        let mut seen = BTreeSet::new();
        while let Some((at, path)) = stack.pop() {
            for next in chain.reads.get(&at).into_iter().flatten() {
                if next == start {
                    let mut cycle = path.clone();
                    cycle.push(start.clone());
                    on_cycle.entry(start.clone()).or_insert(cycle);
                } else if seen.insert(next.clone()) {
                    let mut longer = path.clone();
                    longer.push(next.clone());
                    stack.push((next.clone(), longer));
                }
            }
        }
    }
    on_cycle
}

/// Plans with the targets that stores read rendered first: each round renders, puts the
/// targets that are read into the world as sources, and renders again, until they stop
/// changing (at most one round per link of the longest chain).
fn plan_chained(
    manifests: &Manifests,
    world: &World,
    providers: &dyn ProviderRegistry,
    chain: &Chain,
) -> Plan {
    let cyclic = cycles(chain);
    let read: BTreeSet<&Target> = chain
        .reads
        .values()
        .flatten()
        .filter(|t| !cyclic.contains_key(*t))
        .collect();
    let mut world = world.clone();
    let mut plan = plan_once(manifests, &world, providers);
    for _ in 0..=read.len() {
        let mut changed = false;
        for secret in &plan.secrets {
            let target = (secret.namespace.clone(), secret.name.clone());
            if !read.contains(&target) {
                continue;
            }
            let source = SourceSecret {
                labels: secret.body.labels.clone(),
                annotations: secret.body.annotations.clone(),
                type_: secret.body.type_.clone(),
                data: secret.body.data.clone(),
            };
            if world.secret(&target.0, &target.1) != Some(&source) {
                world
                    .secrets
                    .entry(target.0.clone())
                    .or_default()
                    .insert(target.1.clone(), source);
                changed = true;
            }
        }
        if !changed {
            break;
        }
        plan = plan_once(manifests, &world, providers);
    }
    if !cyclic.is_empty() {
        let planner = Planner::new(manifests, &world, providers);
        plan.secrets
            .retain(|s| !cyclic.contains_key(&(s.namespace.clone(), s.name.clone())));
        // Their other errors (a source not found yet) follow from the cycle.
        let in_cycle = |t: &String| {
            t.split_once('/')
                .is_some_and(|(ns, name)| cyclic.contains_key(&(ns.to_owned(), name.to_owned())))
        };
        plan.errors
            .retain(|e| e.targets.is_empty() || !e.targets.iter().all(in_cycle));
        for (target, cycle) in &cyclic {
            let Some(&owner) = chain.owner.get(target) else {
                continue;
            };
            let path: Vec<String> = cycle
                .iter()
                .map(|(ns, name)| format!("{ns}/{name}"))
                .collect();
            plan.errors.push(planner.error(
                owner,
                vec![format!("{}/{}", target.0, target.1)],
                Failure::new(
                    None::<String>,
                    format!(
                        "its store reads Secrets that courier writes, in a cycle: {}; courier cannot order them\nhint: point the store at a Secret no manifest writes, or rename a target",
                        path.join(" reads ")
                    ),
                ),
            ));
        }
    }
    plan
}

fn plan_once(manifests: &Manifests, world: &World, providers: &dyn ProviderRegistry) -> Plan {
    let planner = Planner::new(manifests, world, providers);
    let (instances, errors) = planner.instances();
    plan_instances(&planner, instances, errors)
}

/// Renders every instance (the body of [`plan`]).
fn plan_instances(
    planner: &Planner<'_>,
    instances: Vec<Instance<'_>>,
    mut errors: Vec<PlanError>,
) -> Plan {
    let world = planner.world;
    let env = template::environment();
    let mut shared: HashMap<(usize, String), Result<Arc<SecretBody>, Failure>> = HashMap::new();
    let mut failures: BTreeMap<(usize, Failure), Vec<String>> = BTreeMap::new();
    let mut rendered: BTreeMap<(String, String), Vec<DesiredSecret>> = BTreeMap::new();
    let mut unwritten = Vec::new();

    for instance in &instances {
        let target = format!("{}/{}", instance.namespace, instance.secret_name);
        let body = planner.resolve_store(instance).and_then(|store| {
            // A files world's existing target (Merge, CreateOrMerge, immutable,
            // adoption, no data) makes the body its namespace's own.
            let namespace_dependent = store.namespaced
                || uses_namespace_templates(instance.spec)
                || (!world.live
                    && world
                        .secret(&instance.namespace, &instance.secret_name)
                        .is_some());
            let render = || {
                let clients = store.clients(world, &instance.namespace);
                render_body(&env, planner, instance, &clients).map(Arc::new)
            };
            once(&mut shared, instance, &store, namespace_dependent, render)
        });
        match body {
            // ESO writes nothing (no data under deletionPolicy Retain or Delete): a files
            // world's existing target is printed unchanged, else nothing is.
            Ok(body) if body.creation_policy == CreationPolicy::None && !world.live => {
                if world
                    .secret(&instance.namespace, &instance.secret_name)
                    .is_some()
                {
                    // render_body holds an existing target without asking the provider
                    // while the windows block the refresh; otherwise the provider had no
                    // data.
                    if sync_window_closed(instance.spec, world.now) {
                        tracing::warn!(
                            "{target}: spec.syncWindows block the periodic refresh now; nothing is written (as ESO writes nothing then) and the existing Secret is printed unchanged"
                        );
                    } else {
                        tracing::warn!(
                            "{target}: the provider returned no data; nothing is written (as ESO writes nothing) and the existing Secret is printed unchanged"
                        );
                    }
                    rendered
                        .entry((instance.namespace.clone(), instance.secret_name.clone()))
                        .or_default()
                        .push(DesiredSecret {
                            namespace: instance.namespace.clone(),
                            name: instance.secret_name.clone(),
                            owner: planner.owners[instance.owner_index].display.clone(),
                            body,
                        });
                } else {
                    tracing::warn!(
                        "{target}: the provider returned no data; nothing is written, as ESO writes nothing"
                    );
                    unwritten.push(target);
                }
            }
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
            errors.push(conflict_error(planner, &namespace, &name, &owners));
        }
    }
    Plan {
        secrets,
        errors,
        unwritten,
    }
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
                    let clients = store.clients(world, &instance.namespace);
                    render_body(&env, &planner, instance, &clients).map(drop)
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
        .entry((instance.owner_index, store.share_key(&instance.namespace)))
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
