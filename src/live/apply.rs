//! Writing the plan: a create (POST) for a target that does not exist yet, server-side
//! apply with field manager `courier` for every later change, ownership checks, pruning of
//! this instance's stale targets, bounded concurrency, no write for a no-op.
//!
//! Why two verbs: the API server creates with POST about 1.5x as fast as with server-side
//! apply (`cargo bench --bench writers`). A POST records courier's fields under
//! (courier, Update), though, and server-side apply removes only what its own (courier,
//! Apply) entry owns, so a key courier later stops writing would stay. Before the first
//! server-side apply that could remove a field from a target courier created (one that
//! leaves out a field the target has, and every release), one JSON patch turns that entry
//! into (courier, Apply), guarded by the listed resourceVersion: from then on the target
//! is owned exactly as if it had been applied from the start. An apply that only changes
//! values removes nothing and needs no move, so a change reaching 10,000 targets is
//! 10,000 writes.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, Preconditions};
use kube::core::PartialObjectMeta;

use crate::core::labels::{CREATION_POLICY_ANNOTATION, HUB_ANNOTATION, INSTANCE_LABEL};
use crate::core::model::{CreationPolicy, DeletionPolicy};
use crate::core::output;
use crate::core::plan::{DesiredSecret, Plan};
use crate::live::cluster::{ClusterError, CreatedFields, ManagedSecret, Snapshot};

/// Fewer writes than this finish too fast for a progress bar to help.
const PROGRESS_THRESHOLD: usize = 50;

pub use crate::live::cluster::FIELD_MANAGER;

/// How to apply.
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// This deployment's name; it prunes only Secrets labelled with it.
    pub instance: String,
    /// Decide everything, write nothing.
    pub dry_run: bool,
    /// Writes in flight at once.
    pub concurrency: usize,
    /// Show a progress bar on stderr for long applies (drawn only on a terminal).
    pub progress: bool,
    /// Take over targets that External Secrets Operator made for the same ExternalSecret,
    /// once ESO has stopped reconciling them.
    pub adopt_eso: bool,
    /// The hub's cluster ID when writing to a member cluster: targets carry it, and only
    /// targets carrying it are this courier's. None on the hub itself.
    pub hub: Option<String>,
    /// What one reconcile may remove (see [`crate::live::prune`]).
    pub prune: crate::live::prune::PruneGuard,
    /// Rewrite a target whose template varies (`htpasswd`, `randAlphaNum`) once its
    /// `refreshInterval` has passed since courier's last write (`apply`, `run`). `diff`
    /// leaves it out: a due refresh is a rotation, not drift (see [`super::varying`]).
    pub refresh_when_due: bool,
    /// `run`: what this process last wrote for targets whose template varies, so a change
    /// of their inputs is written at once and nothing else is (see [`super::varying`]).
    pub written: Option<super::varying::Written>,
    /// `--from-cluster`: keep no ExternalSecret objects for ClusterExternalSecrets (the
    /// lean path; see [`super::eso_objects`]).
    pub no_ces_external_secrets: bool,
    /// `--eso-stopped`: the user answers for ESO's controller being stopped, so adopting
    /// waits neither for its Deployment nor for its refresh interval.
    pub eso_stopped: bool,
    /// `--adopt-existing-targets`: a target of creationPolicy Owner or Orphan that exists
    /// and that neither courier nor ESO made is adopted (ESO adopts it) instead of
    /// refused. courier then holds it as it holds a Merge target: it writes and compares
    /// only its own keys, labels and annotations, leaves the type (unless the template
    /// sets one), immutability and every other field as they are, and takes back only
    /// its own fields when the target is no longer wanted. Nothing of the Secret's owner
    /// is lost.
    pub adopt_existing: bool,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        Self {
            instance: "default".into(),
            dry_run: false,
            concurrency: 16,
            adopt_eso: false,
            progress: false,
            hub: None,
            prune: crate::live::prune::PruneGuard::default(),
            refresh_when_due: true,
            written: None,
            no_ces_external_secrets: false,
            eso_stopped: false,
            adopt_existing: false,
        }
    }
}

/// What one reconcile did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    /// Secrets created.
    pub created: Vec<String>,
    /// Secrets updated (changed source, or drift restored).
    pub updated: Vec<String>,
    /// Secrets already as desired.
    pub unchanged: usize,
    /// Stale targets deleted.
    pub deleted: Vec<String>,
    /// Stale targets left behind (`creationPolicy: Orphan`).
    pub orphaned: Vec<String>,
    /// Secrets courier had merged into, with its keys taken back.
    pub released: Vec<String>,
    /// Secrets taken over from External Secrets Operator (`--adopt-eso`).
    pub adopted: Vec<String>,
    /// Per-target failures; the other targets were still reconciled.
    pub errors: Vec<ApplyError>,
    /// Removals the prune guard refused, each with why and how to allow it.
    pub blocked: Vec<String>,
    /// Manifests whose targets all go (see [`crate::live::prune`]).
    pub warnings: Vec<String>,
}

/// A target that could not be written. Messages come from the API server or name
/// objects; never a value.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ApplyError {
    /// `namespace/name`.
    pub target: String,
    /// What went wrong.
    pub message: String,
}

impl std::fmt::Display for ApplyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret {}: {}", self.target, self.message)
    }
}

impl Report {
    /// One line for logs.
    pub fn summary(&self) -> String {
        self.summary_with_errors(self.errors.len() + self.blocked.len())
    }

    /// [`Report::summary`] counting `errors` errors: a reconcile's, whose manifests and
    /// clusters can fail as well as its writes.
    pub fn summary_with_errors(&self, errors: usize) -> String {
        let adopted = if self.adopted.is_empty() {
            String::new()
        } else {
            format!("{} adopted from ESO, ", self.adopted.len())
        };
        format!(
            "{} created, {} updated, {adopted}{} unchanged, {} deleted, {} released, {} orphaned, {} errors",
            self.created.len(),
            self.updated.len(),
            self.unchanged,
            self.deleted.len(),
            self.released.len(),
            self.orphaned.len(),
            errors
        )
    }
}

/// What a reconcile would do, decided without writing: [`reconcile`] carries it out and
/// `courier diff` prints it.
pub struct Decisions<'p> {
    /// Writes and removals.
    pub actions: Vec<Action<'p>>,
    /// Targets already as desired.
    pub unchanged: usize,
    /// Targets refused (someone else's Secret, another instance's, nothing to merge into).
    pub errors: Vec<ApplyError>,
    /// Stale targets left behind (`creationPolicy: Orphan`).
    pub orphaned: Vec<String>,
    /// Removals the prune guard refused, each with why and how to allow it.
    pub blocked: Vec<String>,
    /// Manifests whose targets all go.
    pub warnings: Vec<String>,
}

/// One change to the cluster.
pub enum Action<'p> {
    /// Server-side apply of a desired Secret.
    Apply {
        /// The Secret.
        secret: &'p DesiredSecret,
        /// Whether it does not exist yet.
        create: bool,
    },
    /// Take a Secret ESO made off ESO (its owner reference and label), then apply.
    Adopt {
        /// The Secret.
        secret: &'p DesiredSecret,
        /// What its metadata says about ESO.
        existing: super::adopt::Existing,
    },
    /// Take back courier's fields from a Secret it merged into, leaving the rest.
    Release {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
    },
    /// Delete a Secret courier created.
    Delete {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// Precondition: delete only the version courier listed.
        resource_version: Option<String>,
    },
}

/// How [`decide`] learns whether a target to create is taken by a Secret courier does not
/// manage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TakenNames {
    /// One metadata-only LIST of every Secret before deciding (in pages), so a preview
    /// (`courier diff`) names every conflict.
    Listed,
    /// By the create itself: POST never replaces a Secret, it answers 409, and only then
    /// is that one Secret read to say whose it is. No LIST of every Secret in the cluster
    /// (at 100,000 Secrets, a hundred MB of metadata) when a namespace appears. Targets
    /// merged into existing Secrets, and adopting ESO's, still need the LIST.
    AtCreate,
}

/// Decides every change. Creating needs to know which target names are taken by Secrets
/// courier does not manage (see [`TakenNames`]). A failing manifest's existing targets are
/// neither updated nor pruned, unless its source is gone and its `deletionPolicy` says
/// Delete or Merge.
pub async fn decide<'p>(
    client: &Client,
    plan: &'p Plan,
    snapshot: &Snapshot,
    options: &ApplyOptions,
    taken: TakenNames,
) -> Decisions<'p> {
    let (instance, adopt_eso) = (options.instance.as_str(), options.adopt_eso);
    let hub = options.hub.as_deref();
    let mut decisions = Decisions {
        actions: Vec::new(),
        unchanged: 0,
        errors: Vec::new(),
        orphaned: Vec::new(),
        blocked: Vec::new(),
        warnings: Vec::new(),
    };
    // First create wins: a target is this courier's only if this instance, from this hub, wrote it.
    let ours = |existing: &ManagedSecret| {
        existing.instance.as_deref() == Some(instance) && existing.hub.as_deref() == hub
    };
    let failing_owners: BTreeSet<&str> = plan.errors.iter().map(|e| e.object.as_str()).collect();
    // A target an error names is kept, whoever made it: what it should hold is not known
    // (two manifests write it, say, and the one that made it has no error of its own).
    let failing_targets: BTreeSet<(&str, &str)> = plan
        .errors
        .iter()
        .flat_map(|e| e.targets.iter())
        .filter_map(|t| t.split_once('/'))
        .collect();
    let desired: BTreeSet<(&str, &str)> = plan
        .secrets
        .iter()
        .map(|s| (s.namespace.as_str(), s.name.as_str()))
        .collect();
    let mut to_create = Vec::new();

    for secret in &plan.secrets {
        let target = format!("{}/{}", secret.namespace, secret.name);
        // The provider returned no data under deletionPolicy Retain or Delete: ESO writes
        // nothing, and courier neither creates the target nor touches an existing one
        // (listed as desired above, so it is not pruned either).
        if secret.body.creation_policy == CreationPolicy::None {
            decisions.warnings.push(format!(
                "Secret {target}: the provider returned no data for {}; nothing is written and an existing Secret is kept as it is (ESO writes nothing)",
                secret.owner
            ));
            continue;
        }
        match snapshot
            .managed
            .get(&(secret.namespace.clone(), secret.name.clone()))
        {
            Some(existing) if !ours(existing) => decisions.errors.push(ApplyError {
                target,
                message: owner_conflict(existing, instance, hub),
            }),
            Some(existing) if existing.current => decisions.unchanged += 1,
            Some(_) => decisions.actions.push(Action::Apply {
                secret,
                create: false,
            }),
            None => to_create.push(secret),
        }
    }
    let listing_needed = taken == TakenNames::Listed
        || adopt_eso
        || options.adopt_existing
        || to_create.iter().any(|s| merges(s.body.creation_policy));
    if !listing_needed {
        let creates = to_create.drain(..);
        decisions
            .actions
            .extend(creates.map(|secret| Action::Apply {
                secret,
                create: true,
            }));
    }
    if !to_create.is_empty() {
        match unmanaged_names(client, &to_create).await {
            Ok(unmanaged) => {
                // Whether ESO still runs is read once, and only when something is ESO's.
                let wants_adoption = unmanaged.values().any(|e| e.eso_owner.is_some());
                let activity = if wants_adoption {
                    super::adopt::eso_activity(client, options.eso_stopped).await
                } else {
                    Ok(super::adopt::EsoState::default())
                };
                for secret in to_create {
                    let existing = unmanaged.get(&(secret.namespace.clone(), secret.name.clone()));
                    let merge = merges(secret.body.creation_policy);
                    let target = format!("{}/{}", secret.namespace, secret.name);
                    match (existing, merge) {
                        // CreateOrMerge (ESO v2.8): created when it does not exist.
                        (None, true)
                            if secret.body.creation_policy == CreationPolicy::CreateOrMerge =>
                        {
                            decisions.actions.push(Action::Apply {
                                secret,
                                create: true,
                            })
                        }
                        (None, false) => decisions.actions.push(Action::Apply {
                            secret,
                            create: true,
                        }),
                        (Some(_), true) => decisions.actions.push(Action::Apply {
                            secret,
                            create: false,
                        }),
                        // `--adopt-existing-targets`: a Secret neither courier nor ESO
                        // made is adopted, held as a Merge target (see ApplyOptions).
                        (Some(existing), false)
                            if options.adopt_existing && existing.eso_owner.is_none() =>
                        {
                            decisions.actions.push(Action::Adopt {
                                secret,
                                existing: existing.clone(),
                            })
                        }
                        (Some(existing), false) => {
                            match eso_takeover(secret, existing, adopt_eso, &activity) {
                                Ok(()) => decisions.actions.push(Action::Adopt {
                                    secret,
                                    existing: existing.clone(),
                                }),
                                Err(message) => {
                                    decisions.errors.push(ApplyError { target, message })
                                }
                            }
                        }
                        // ESO writes nothing and reports no error: it waits for the
                        // Secret to appear (CreatePolicyMerge in ESO's
                        // externalsecret_controller.go).
                        (None, true) => tracing::info!(
                            "{target}: creationPolicy Merge and no such Secret; nothing is written, as ESO writes nothing"
                        ),
                    }
                }
            }
            Err(e) => decisions
                .errors
                .extend(to_create.iter().map(|secret| ApplyError {
                    target: format!("{}/{}", secret.namespace, secret.name),
                    message: e.to_string(),
                })),
        }
    }
    let remove = |namespace: &str, name: &str, existing: &ManagedSecret| {
        if existing.merged {
            Action::Release {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
            }
        } else {
            Action::Delete {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
                resource_version: existing.resource_version.clone(),
            }
        }
    };
    for ((namespace, name), existing) in &snapshot.managed {
        let owner_failing = existing
            .origin
            .as_deref()
            .is_some_and(|o| failing_owners.contains(o));
        // A namespace being deleted takes its Secrets with it: nothing of it is pruned
        // (a removal there would only count against the deletion cap).
        if !ours(existing)
            || owner_failing
            || desired.contains(&(namespace.as_str(), name.as_str()))
            || failing_targets.contains(&(namespace.as_str(), name.as_str()))
            || snapshot.world.terminating.contains(namespace)
        {
            continue;
        }
        if existing.orphan {
            decisions.orphaned.push(format!("{namespace}/{name}"));
            continue;
        }
        decisions.actions.push(remove(namespace, name, existing));
    }
    // The source is gone: deletionPolicy Delete removes the targets, Merge takes back
    // courier's keys, Retain (the default) keeps them as they were.
    for error in &plan.errors {
        let Some(policy) = error
            .source_missing
            .filter(|p| *p != DeletionPolicy::Retain)
        else {
            continue;
        };
        for target in &error.targets {
            let Some((namespace, name)) = target.split_once('/') else {
                continue;
            };
            // Only what the failing manifest made itself: a target of that name another
            // manifest made (and may still want) is not its to delete.
            let Some(existing) = snapshot
                .managed
                .get(&(namespace.to_owned(), name.to_owned()))
                .filter(|e| ours(e) && e.origin.as_deref() == Some(error.object.as_str()))
            else {
                continue;
            };
            decisions.actions.push(match policy {
                DeletionPolicy::Merge => Action::Release {
                    namespace: namespace.to_owned(),
                    name: name.to_owned(),
                },
                _ => remove(namespace, name, existing),
            });
        }
    }
    let removals: Vec<(String, String)> = decisions
        .actions
        .iter()
        .filter_map(|action| match action {
            Action::Delete {
                namespace, name, ..
            }
            | Action::Release { namespace, name } => Some((namespace.clone(), name.clone())),
            _ => None,
        })
        .collect();
    let verdict = crate::live::prune::guard(&removals, plan, snapshot, &options.prune, instance);
    decisions.actions.retain(|action| match action {
        Action::Delete {
            namespace, name, ..
        }
        | Action::Release { namespace, name } => {
            !verdict.refused.contains(&(namespace.clone(), name.clone()))
        }
        _ => true,
    });
    decisions.blocked.extend(verdict.blocked);
    decisions.warnings.extend(verdict.warnings);
    decisions
}

/// Reconciles the cluster towards `plan` (see [`decide`]), writing with bounded concurrency.
pub async fn reconcile(
    client: &Client,
    plan: &Plan,
    snapshot: &Snapshot,
    options: &ApplyOptions,
) -> Report {
    let decisions = decide(client, plan, snapshot, options, TakenNames::AtCreate).await;
    let mut report = Report {
        unchanged: decisions.unchanged,
        errors: decisions.errors,
        orphaned: decisions.orphaned,
        blocked: decisions.blocked,
        warnings: decisions.warnings,
        ..Report::default()
    };
    let actions = decisions.actions;
    let progress = (options.progress && actions.len() >= PROGRESS_THRESHOLD).then(|| {
        let bar = indicatif::ProgressBar::new(actions.len() as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} {pos}/{len} Secrets written {wide_bar} {eta}",
            )
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    // Writes first, removals after: an owner whose write failed keeps its other targets
    // this run (a target renamed onto a name courier may not take keeps the old one).
    let run = |action| async move {
        match action {
            Action::Apply {
                secret,
                create: true,
            } => {
                let target = format!("{}/{}", secret.namespace, secret.name);
                let result = match create_one(client, secret, options).await {
                    Err(e) if e.is_status(409) => Err(taken_by(client, secret).await),
                    created => created
                        .map(|()| Done::Created)
                        .map_err(|e| scrubbed(secret, &e)),
                };
                remember(options, secret, &result);
                (target, result)
            }
            Action::Apply {
                secret,
                create: false,
            } => {
                let target = format!("{}/{}", secret.namespace, secret.name);
                let result = async {
                    let existing = snapshot
                        .managed
                        .get(&(secret.namespace.clone(), secret.name.clone()));
                    let mut manifest = written_manifest(secret, options);
                    if existing.is_some_and(|e| held_as_adopted(e, secret, options)) {
                        manifest = as_adopted(manifest, secret);
                    }
                    if existing.is_some_and(|e| leaves_out_a_field(e, &manifest)) {
                        take_over_created_fields(
                            client,
                            &secret.namespace,
                            &secret.name,
                            existing,
                            options.dry_run,
                        )
                        .await?;
                    }
                    apply_one(client, secret, manifest, options).await
                }
                .await;
                let result = result
                    .map(|()| Done::Updated)
                    .map_err(|e| scrubbed(secret, &e));
                remember(options, secret, &result);
                (target, result)
            }
            Action::Adopt { secret, existing } => {
                let target = format!("{}/{}", secret.namespace, secret.name);
                let result = async {
                    if existing.eso_owner.is_none() {
                        // --adopt-existing-targets: nothing of ESO's to take off.
                        let manifest = as_adopted(written_manifest(secret, options), secret);
                        return apply_one(client, secret, manifest, options).await;
                    }
                    super::adopt::release_from_eso(
                        client,
                        &secret.namespace,
                        &secret.name,
                        &existing,
                        options.dry_run,
                    )
                    .await?;
                    apply_one(client, secret, written_manifest(secret, options), options).await
                }
                .await;
                let result = result
                    .map(|()| Done::Adopted)
                    .map_err(|e| scrubbed(secret, &e));
                remember(options, secret, &result);
                (target, result)
            }
            Action::Release { namespace, name } => {
                let result = async {
                    take_over_created_fields(
                        client,
                        &namespace,
                        &name,
                        snapshot.managed.get(&(namespace.clone(), name.clone())),
                        options.dry_run,
                    )
                    .await?;
                    release_one(client, &namespace, &name, options.dry_run).await
                }
                .await;
                (
                    format!("{namespace}/{name}"),
                    result.map(|()| Done::Released).map_err(|e| e.to_string()),
                )
            }
            Action::Delete {
                namespace,
                name,
                resource_version,
            } => {
                let result =
                    delete_one(client, &namespace, &name, resource_version, options.dry_run).await;
                (
                    format!("{namespace}/{name}"),
                    result.map(|()| Done::Deleted).map_err(|e| e.to_string()),
                )
            }
        }
    };
    let (writes, removals): (Vec<Action<'_>>, Vec<Action<'_>>) = actions
        .into_iter()
        .partition(|a| matches!(a, Action::Apply { .. } | Action::Adopt { .. }));
    let owner_of: BTreeMap<String, &str> = writes
        .iter()
        .filter_map(|a| match a {
            Action::Apply { secret, .. } | Action::Adopt { secret, .. } => Some((
                format!("{}/{}", secret.namespace, secret.name),
                &*secret.owner,
            )),
            _ => None,
        })
        .collect();
    let tick = |_: &(String, Result<Done, String>)| {
        if let Some(bar) = &progress {
            bar.inc(1);
        }
    };
    let mut results: Vec<(String, Result<Done, String>)> = futures::stream::iter(writes)
        .map(run)
        .buffer_unordered(options.concurrency.max(1))
        .inspect(tick)
        .collect()
        .await;
    let failed_owners: BTreeSet<&str> = results
        .iter()
        .filter(|(_, result)| result.is_err())
        .filter_map(|(target, _)| owner_of.get(target).copied())
        .collect();
    let (removals, kept): (Vec<Action<'_>>, Vec<Action<'_>>) =
        removals.into_iter().partition(|action| {
            let (Action::Delete {
                namespace, name, ..
            }
            | Action::Release { namespace, name }) = action
            else {
                return true;
            };
            snapshot
                .managed
                .get(&(namespace.clone(), name.clone()))
                .and_then(|e| e.origin.as_deref())
                .is_none_or(|origin| !failed_owners.contains(origin))
        });
    for action in kept {
        if let Action::Delete {
            namespace, name, ..
        }
        | Action::Release { namespace, name } = action
        {
            report.warnings.push(format!(
                "Secret {namespace}/{name} is kept: a write of the manifest that made it failed this run"
            ));
        }
    }
    results.extend(
        futures::stream::iter(removals)
            .map(run)
            .buffer_unordered(options.concurrency.max(1))
            .inspect(tick)
            .collect::<Vec<_>>()
            .await,
    );
    if let Some(bar) = progress {
        bar.finish_and_clear();
    }
    for (target, result) in results {
        match result {
            Ok(Done::Created) => report.created.push(target),
            Ok(Done::Updated) => report.updated.push(target),
            Ok(Done::Deleted) => report.deleted.push(target),
            Ok(Done::Released) => report.released.push(target),
            Ok(Done::Adopted) => report.adopted.push(target),
            Err(message) => report.errors.push(ApplyError { target, message }),
        }
    }
    for list in [
        &mut report.created,
        &mut report.updated,
        &mut report.deleted,
        &mut report.released,
        &mut report.adopted,
        &mut report.orphaned,
    ] {
        list.sort();
    }
    report.errors.sort();
    report
}

/// After a write of a target whose template varies, `run` remembers what it was
/// rendered from (see [`super::varying`]); a failed write is tried again.
fn remember(options: &ApplyOptions, secret: &DesiredSecret, result: &Result<Done, String>) {
    if let (Some(written), Ok(_), false) = (&options.written, result, options.dry_run) {
        written.record(secret);
    }
}

/// The error of a write that sent `secret`, without any value it sent: the API server
/// quotes what it refuses (`Invalid value: "..."`), and the message goes to stderr, the
/// log, the ExternalSecret's status and its Events.
fn scrubbed(secret: &DesiredSecret, error: &ClusterError) -> String {
    secret.body.scrubber().scrub(&error.to_string())
}

enum Done {
    Adopted,
    Created,
    Updated,
    Deleted,
    Released,
}

/// Why a courier-managed target is not this courier's to write: another instance made
/// it, or the same instance name from another hub. The first to create it keeps it.
fn owner_conflict(existing: &ManagedSecret, instance: &str, hub: Option<&str>) -> String {
    let owner = existing.instance.as_deref().unwrap_or("<none>");
    let from = match existing.hub.as_deref() {
        Some(id) => format!(" from the hub with cluster ID {id}"),
        None => " from this cluster itself".to_owned(),
    };
    let ours = match hub {
        Some(id) => format!("{instance:?} from the hub with cluster ID {id}"),
        None => format!("{instance:?} on this cluster"),
    };
    let mut message = format!(
        "managed by courier instance {owner:?}{from}, not {ours}; left untouched (the first to create a target owns it)"
    );
    if existing.hub.as_deref() == hub && existing.instance.is_some() {
        // Another instance on the same hub: a rename (a first `apply`, then the chart) is
        // the usual cause, and one relabel hands every target over.
        message.push_str(&format!(
            "\nhint: if instance {owner:?} is retired, hand its targets over: kubectl label secrets -A -l courier.dev/instance={owner} courier.dev/instance={instance} --overwrite"
        ));
    }
    message
}

/// Whether a listed Secret holds what courier would write there now: its data, type and
/// courier's labels and annotations. Asked while the managed Secrets are listed
/// (`cluster::list_managed`), so only those that are not current keep their content. A
/// target still carrying the value digest earlier versions wrote is not current:
/// rewriting it takes the digest off. Values that a template renders differently every
/// time (see [`super::varying`]) need only be present, unless the target is due for a
/// rewrite.
pub fn is_current(
    existing: &ManagedSecret,
    desired: &DesiredSecret,
    options: &ApplyOptions,
) -> bool {
    let Some(content) = existing.content.as_deref() else {
        return existing.current;
    };
    let body = &desired.body;
    let varying = body.varying.as_deref();
    let mut exact = true;
    let mut present = true;
    let mut tally = |(equal, there): (bool, bool)| {
        exact &= equal;
        present &= there;
    };
    let data_varies = |k: &String| varying.is_some_and(|v| v.data.contains(k));
    if merges(body.creation_policy) || held_as_adopted(existing, desired, options) {
        // Merged into someone's Secret: only courier's keys are courier's to compare.
        for (k, v) in &body.data {
            tally(compare(content.data.get(k), v, data_varies(k)));
        }
    } else {
        let shape = content.type_ == body.type_
            && content.immutable == body.immutable
            && content.data.len() == body.data.len();
        tally((shape, shape));
        for (k, v) in &body.data {
            tally(compare(content.data.get(k), v, data_varies(k)));
        }
    }
    for (k, v) in &body.labels {
        let varies = varying.is_some_and(|m| m.labels.contains(k));
        tally(compare(content.labels.get(k), v, varies));
    }
    for (k, v) in &body.annotations {
        let varies = varying.is_some_and(|m| m.annotations.contains(k));
        tally(compare(content.annotations.get(k), v, varies));
    }
    // The template's finalizers must be there; others' (and ones the template dropped)
    // may stay, as ESO adds finalizers and removes none.
    for finalizer in &body.finalizers {
        let there = content.finalizers.contains(finalizer);
        tally((there, there));
    }
    let ours = !content.has_legacy_digest()
        && content.labels.get(INSTANCE_LABEL).map(String::as_str)
            == Some(options.instance.as_str());
    if !ours || !present {
        return false;
    }
    if exact {
        return true;
    }
    // Only values that vary differ: rewritten when its inputs changed or its refresh is due.
    varying.is_some_and(|varying| {
        !super::varying::rewrite_due(
            existing,
            desired,
            varying,
            options.written.as_ref(),
            options.refresh_when_due,
        )
    })
}

/// Whether a live field holds what courier would write, and whether it is there at all
/// with a value courier may leave (one a template renders differently every time).
fn compare<T: PartialEq + ?Sized>(live: Option<&T>, wanted: &T, varies: bool) -> (bool, bool) {
    match live {
        Some(live) if live == wanted => (true, true),
        Some(_) => (false, varies),
        None => (false, false),
    }
}

/// Whether applying `manifest` leaves out a field the live Secret has. Only then can the
/// apply have a field to remove that courier's create wrote and its (courier, Update)
/// entry still owns, so only then is that entry moved to Apply first: an apply that writes
/// every field the Secret has removes nothing, whoever owns what. Conservative: a key
/// another manager added also counts (the move is then made once, needlessly).
fn leaves_out_a_field(existing: &ManagedSecret, manifest: &serde_json::Value) -> bool {
    let Some(content) = existing.content.as_deref() else {
        return true;
    };
    fn missing<'k, V: 'k>(
        live: impl IntoIterator<Item = (&'k String, V)>,
        written: &serde_json::Value,
    ) -> bool {
        live.into_iter().any(|(key, _)| written.get(key).is_none())
    }
    let metadata = &manifest["metadata"];
    missing(&content.data, &manifest["data"])
        || missing(&content.labels, &metadata["labels"])
        || missing(&content.annotations, &metadata["annotations"])
        || manifest.get("type").is_none()
        || (content.immutable && manifest.get("immutable").is_none())
}

/// Why a create found its name taken (POST answered 409): the Secret's metadata, read
/// now, says whose it is, in the words the up-front listing would have used.
async fn taken_by(client: &Client, secret: &DesiredSecret) -> String {
    let api = Api::<Secret>::namespaced(client.clone(), &secret.namespace);
    match api.get_metadata_opt(&secret.name).await {
        Ok(Some(meta)) if is_courier_s(&meta.metadata) => {
            "was created by another courier writer since this one listed; the next reconcile decides again".into()
        }
        Ok(Some(meta)) => {
            let existing = super::adopt::Existing::from_metadata(&meta.metadata);
            // Not asked to adopt, so this names why the Secret is not courier's to take.
            eso_takeover(secret, &existing, false, &Ok(super::adopt::EsoState::default()))
                .err()
                .unwrap_or_else(|| NOT_OURS.into())
        }
        Ok(None) => "was created and deleted by another writer while courier created it; the next reconcile decides again".into(),
        Err(e) => ClusterError::api("read the Secret that holds the name", e).to_string(),
    }
}

fn is_courier_s(meta: &kube::api::ObjectMeta) -> bool {
    meta.labels
        .as_ref()
        .and_then(|l| l.get(crate::core::labels::MANAGED_BY_LABEL))
        .is_some_and(|v| v == crate::core::labels::MANAGED_BY_VALUE)
}

/// Secrets listed per page by [`unmanaged_names`]: metadata only, a few hundred bytes each.
const NAMES_PAGE: u32 = 10_000;

/// Targets that exist without courier's label, with what their metadata says about
/// ESO: one metadata-only LIST (no values, in pages), only when there is something to create.
async fn unmanaged_names(
    client: &Client,
    targets: &[&DesiredSecret],
) -> Result<BTreeMap<(String, String), super::adopt::Existing>, ClusterError> {
    let wanted: BTreeSet<(String, String)> = targets
        .iter()
        .map(|s| (s.namespace.clone(), s.name.clone()))
        .collect();
    let api = Api::<Secret>::all(client.clone());
    let mut params = ListParams::default().limit(NAMES_PAGE);
    let mut taken = BTreeMap::new();
    loop {
        let page = api.list_metadata(&params).await.map_err(|e| {
            ClusterError::api("list Secret names (to protect unmanaged Secrets)", e)
        })?;
        taken.extend(
            page.items
                .into_iter()
                .filter_map(|meta: PartialObjectMeta<Secret>| {
                    let key = (
                        meta.metadata.namespace.clone()?,
                        meta.metadata.name.clone()?,
                    );
                    wanted.contains(&key).then(|| {
                        let existing = super::adopt::Existing::from_metadata(&meta.metadata);
                        (key, existing)
                    })
                }),
        );
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => params = params.continue_token(&token),
            _ => return Ok(taken),
        }
    }
}

const NOT_OURS: &str =
    "exists and is not managed by courier; left untouched (delete it or rename the target)";

/// Whether courier may take over an existing Secret it did not create: only one ESO made
/// for the same ExternalSecret, only when asked, and only once ESO has stopped.
fn eso_takeover(
    secret: &DesiredSecret,
    existing: &super::adopt::Existing,
    adopt_eso: bool,
    activity: &Result<super::adopt::EsoState, ClusterError>,
) -> Result<(), String> {
    let Some(owner) = existing.eso_owner.as_deref() else {
        return Err(NOT_OURS.into());
    };
    let key = (secret.namespace.clone(), owner.to_owned());
    let expected = super::adopt::expected_external_secret(&secret.owner);
    // A ClusterExternalSecret's ExternalSecret is named `externalSecretName` when it sets one.
    let made_by_it = activity
        .as_ref()
        .ok()
        .and_then(|s| s.made_by.get(&key))
        .is_some_and(|ces| {
            crate::core::load::object_display("ClusterExternalSecret", None, ces) == *secret.owner
        });
    if expected != Some(owner) && !made_by_it {
        return Err(format!(
            "is managed by External Secrets Operator for ExternalSecret {}/{owner}, not for {}; left untouched",
            secret.namespace, secret.owner
        ));
    }
    if !adopt_eso {
        return Err(format!(
            "is managed by External Secrets Operator (ExternalSecret {}/{owner}); left untouched\nhint: to take it over, stop ESO's controller and run with --adopt-eso (README: Migrating from ESO)",
            secret.namespace
        ));
    }
    match activity.as_ref().map(|state| state.active.get(&key)) {
        Ok(None) => Ok(()),
        Ok(Some(activity)) => Err(format!(
            "{activity}: ESO still reconciles it, and two controllers would fight; left untouched\nhint: scale ESO's controller to zero (or wait out the refresh interval), then run again"
        )),
        Err(e) => Err(e.to_string()),
    }
}

/// The Secret as courier applies it: the rendered manifest plus the instance label (and
/// the Orphan marker), so pruning knows whose it is.
pub fn applied_manifest(secret: &DesiredSecret, instance: &str) -> serde_json::Value {
    let mut manifest = output::secret_json(secret, output::Values::Reveal);
    manifest["metadata"]["labels"][INSTANCE_LABEL] = serde_json::Value::from(instance);
    // CreateOrMerge is marked Merge: courier's keys are taken back when the target is
    // no longer wanted, whoever created the Secret; other writers' keys stay.
    let marker = match secret.body.creation_policy {
        CreationPolicy::Orphan => Some("Orphan"),
        CreationPolicy::Merge | CreationPolicy::CreateOrMerge => Some("Merge"),
        CreationPolicy::Owner | CreationPolicy::None => None,
    };
    if let Some(marker) = marker {
        manifest["metadata"]["annotations"][CREATION_POLICY_ANNOTATION] =
            serde_json::Value::from(marker);
    }
    let theirs = match secret.body.creation_policy {
        CreationPolicy::Merge => true,
        // A type the template sets is applied; the default is left to the Secret.
        CreationPolicy::CreateOrMerge => secret.body.type_ == "Opaque",
        _ => false,
    };
    if theirs && let Some(fields) = manifest.as_object_mut() {
        // The Secret is someone else's: its type and immutability are theirs to set.
        fields.remove("type");
        fields.remove("immutable");
    }
    manifest
}

/// Whether a target of creationPolicy Owner or Orphan is a Secret courier adopted with
/// `--adopt-existing-targets` (marked Merge when adopted): held as a Merge target.
fn held_as_adopted(
    existing: &ManagedSecret,
    secret: &DesiredSecret,
    options: &ApplyOptions,
) -> bool {
    options.adopt_existing
        && existing.merged
        && matches!(
            secret.body.creation_policy,
            CreationPolicy::Owner | CreationPolicy::Orphan
        )
}

/// The manifest of an adopted Secret: marked Merge (courier's fields are taken back
/// when it is no longer wanted), its type (unless the template sets one) and
/// immutability left to it.
fn as_adopted(mut manifest: serde_json::Value, secret: &DesiredSecret) -> serde_json::Value {
    manifest["metadata"]["annotations"][CREATION_POLICY_ANNOTATION] =
        serde_json::Value::from("Merge");
    if let Some(fields) = manifest.as_object_mut() {
        if secret.body.type_ == "Opaque" {
            fields.remove("type");
        }
        fields.remove("immutable");
    }
    manifest
}

/// Whether courier adds its keys to a Secret that may hold others' (Merge, and
/// CreateOrMerge once the Secret exists).
pub fn merges(policy: CreationPolicy) -> bool {
    matches!(
        policy,
        CreationPolicy::Merge | CreationPolicy::CreateOrMerge
    )
}

/// Attempts per write: the first and two retries.
const WRITE_ATTEMPTS: u32 = 3;

/// Retries a write on what passes by itself (429, 5xx, a dropped connection) with
/// exponential backoff and jitter: 200 ms, then 400 ms, each ±50 %. Anything else (403,
/// 409, 422) is the target's error at once.
async fn with_retries<T, F, Fut>(mut write: F) -> Result<T, kube::Error>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, kube::Error>>,
{
    let mut attempt = 1;
    loop {
        match write().await {
            Err(error) if attempt < WRITE_ATTEMPTS && is_transient(&error) => {
                let base = Duration::from_millis(200 * 2u64.pow(attempt - 1));
                tokio::time::sleep(base.mul_f64(0.5 + crate::live::jitter::fraction())).await;
                attempt += 1;
            }
            outcome => return outcome,
        }
    }
}

fn is_transient(error: &kube::Error) -> bool {
    match error {
        kube::Error::Api(status) => matches!(status.code, 429 | 500 | 502 | 503 | 504),
        // A write the leader fence refused stays refused: retrying would only delay the report.
        kube::Error::Service(error) if error.is::<crate::live::leader::NotLeader>() => false,
        kube::Error::HyperError(_) | kube::Error::Service(_) => true,
        _ => false,
    }
}

/// The manifest courier writes for `secret`, with the hub's mark on a member cluster.
fn written_manifest(secret: &DesiredSecret, options: &ApplyOptions) -> serde_json::Value {
    let mut manifest = applied_manifest(secret, &options.instance);
    if let Some(hub) = &options.hub {
        manifest["metadata"]["annotations"][HUB_ANNOTATION] = serde_json::Value::from(hub.as_str());
    }
    manifest
}

/// Creates a target that does not exist yet (POST, field manager `courier`). A Secret of
/// that name made by someone else since courier listed is a conflict (409), left alone.
async fn create_one(
    client: &Client,
    secret: &DesiredSecret,
    options: &ApplyOptions,
) -> Result<(), ClusterError> {
    let path = format!(
        "{}?fieldManager={FIELD_MANAGER}",
        secrets_path(&secret.namespace)
    );
    let manifest = written_manifest(secret, options);
    let write = Write {
        method: http::Method::POST,
        path_and_query: &path,
        content_type: "application/json",
        action: "create",
    };
    write.send_unread(client, &manifest, options.dry_run).await
}

/// `/api/v1/namespaces/{namespace}/secrets`.
fn secrets_path(namespace: &str) -> String {
    format!("/api/v1/namespaces/{}/secrets", utf8_path(namespace))
}

/// One write courier sends with its manifest as the body.
struct Write<'a> {
    method: http::Method,
    path_and_query: &'a str,
    content_type: &'static str,
    /// What courier was doing, for the error.
    action: &'static str,
}

impl Write<'_> {
    /// Sends it (with retries) and reads only whether it succeeded: the Secret the API
    /// server answers with (values and managedFields) is not decoded, which at 10,000
    /// writes is CPU the API server, on the same cores, can use.
    async fn send_unread(
        &self,
        client: &Client,
        manifest: &serde_json::Value,
        dry_run: bool,
    ) -> Result<(), ClusterError> {
        let body = serde_json::to_vec(manifest).map_err(|e| {
            ClusterError::Config(format!("the rendered Secret does not serialize: {e}"))
        })?;
        let uri = if dry_run {
            format!("{}&dryRun=All", self.path_and_query)
        } else {
            self.path_and_query.to_owned()
        };
        let request = http::Request::builder()
            .method(self.method.clone())
            .uri(uri)
            .header(http::header::CONTENT_TYPE, self.content_type)
            .body(body)
            .map_err(|e| ClusterError::Config(e.to_string()))?;
        with_retries(|| client.request_text(request.clone()))
            .await
            .map(drop)
            .map_err(|e| ClusterError::api(self.action, e))
    }
}

/// Turns the (courier, Update) entry that courier's create left into (courier, Apply),
/// so the server-side apply that follows owns, and can remove, every field courier wrote
/// (see the module's comment). One JSON patch that changes no field, only who owns them,
/// and only if the Secret is still at the version courier listed; nothing for a target
/// that was applied from the start, and nothing in a dry run.
async fn take_over_created_fields(
    client: &Client,
    namespace: &str,
    name: &str,
    existing: Option<&ManagedSecret>,
    dry_run: bool,
) -> Result<(), ClusterError> {
    let Some((existing, created)) =
        existing.and_then(|e| e.created_fields.as_ref().map(|c| (e, c)))
    else {
        return Ok(());
    };
    if dry_run {
        return Ok(());
    }
    let Some(resource_version) = existing.resource_version.as_deref() else {
        return Ok(());
    };
    let api = Api::<Secret>::namespaced(client.clone(), namespace);
    let operations = if created.beside_apply {
        merged_fields_patch(&api, name, resource_version).await?
    } else {
        let CreatedFields { index, .. } = created;
        serde_json::json!([
            {"op": "test", "path": "/metadata/resourceVersion", "value": resource_version},
            {"op": "test", "path": format!("/metadata/managedFields/{index}/manager"), "value": FIELD_MANAGER},
            {"op": "test", "path": format!("/metadata/managedFields/{index}/operation"), "value": "Update"},
            {"op": "replace", "path": format!("/metadata/managedFields/{index}/operation"), "value": "Apply"},
        ])
    };
    let path = format!("{}/{}", secrets_path(namespace), utf8_path(name));
    let request = http::Request::patch(path)
        .header(http::header::CONTENT_TYPE, "application/json-patch+json")
        .body(serde_json::to_vec(&operations).unwrap_or_default())
        .map_err(|e| ClusterError::Config(e.to_string()))?;
    with_retries(|| client.request::<PartialObjectMeta<Secret>>(request.clone()))
        .await
        .map(drop)
        .map_err(|e| match &e {
            // The patch's tests failed: someone wrote the Secret after courier listed it.
            kube::Error::Api(status) if matches!(status.code, 409 | 422) => ClusterError::api(
                "apply (the Secret changed since courier listed it; the next reconcile decides again)",
                e,
            ),
            _ => ClusterError::api("apply", e),
        })
}

/// The rare Secret with both a (courier, Update) and a (courier, Apply) entry: one Apply
/// entry owning the union of both field sets replaces them.
async fn merged_fields_patch(
    api: &Api<Secret>,
    name: &str,
    listed_version: &str,
) -> Result<serde_json::Value, ClusterError> {
    let current = api
        .get_metadata(name)
        .await
        .map_err(|e| ClusterError::api("read managedFields", e))?;
    let entries = current.metadata.managed_fields.unwrap_or_default();
    let courier = |entry: &k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry| {
        entry.manager.as_deref() == Some(FIELD_MANAGER)
            && entry.subresource.as_deref().unwrap_or("").is_empty()
    };
    let mut union = serde_json::Value::Object(Default::default());
    let mut merged = None;
    let mut kept = Vec::new();
    for entry in entries {
        if courier(&entry) && matches!(entry.operation.as_deref(), Some("Update" | "Apply")) {
            if let Some(fields) = &entry.fields_v1 {
                merge_field_sets(&mut union, &fields.0);
            }
            if entry.operation.as_deref() == Some("Apply") || merged.is_none() {
                merged = Some(entry);
            }
        } else {
            kept.push(entry);
        }
    }
    if let Some(mut entry) = merged {
        entry.operation = Some("Apply".into());
        entry.fields_v1 = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::FieldsV1(
            union,
        ));
        kept.push(entry);
    }
    let version = current
        .metadata
        .resource_version
        .unwrap_or_else(|| listed_version.to_owned());
    Ok(serde_json::json!([
        {"op": "test", "path": "/metadata/resourceVersion", "value": version},
        {"op": "replace", "path": "/metadata/managedFields", "value": kept},
    ]))
}

/// The union of two `fieldsV1` sets: both are tries of JSON objects.
fn merge_field_sets(into: &mut serde_json::Value, from: &serde_json::Value) {
    match (into, from) {
        (serde_json::Value::Object(into), serde_json::Value::Object(from)) => {
            for (key, value) in from {
                merge_field_sets(
                    into.entry(key.clone())
                        .or_insert_with(|| serde_json::Value::Object(Default::default())),
                    value,
                );
            }
        }
        (into, from) => *into = from.clone(),
    }
}

/// A path segment for an object name or namespace (DNS names need no escaping, but a
/// name is never trusted to be one).
fn utf8_path(segment: &str) -> String {
    segment
        .bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'.' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

async fn apply_one(
    client: &Client,
    secret: &DesiredSecret,
    manifest: serde_json::Value,
    options: &ApplyOptions,
) -> Result<(), ClusterError> {
    let path = format!(
        "{}/{}?fieldManager={FIELD_MANAGER}&force=true",
        secrets_path(&secret.namespace),
        utf8_path(&secret.name)
    );
    let write = Write {
        method: http::Method::PATCH,
        path_and_query: &path,
        content_type: "application/apply-patch+yaml",
        action: "apply",
    };
    write.send_unread(client, &manifest, options.dry_run).await
}

/// Applies an empty configuration as `courier`: server-side apply then removes every
/// field only courier owned (its keys, labels and annotations) and keeps the rest.
async fn release_one(
    client: &Client,
    namespace: &str,
    name: &str,
    dry_run: bool,
) -> Result<(), ClusterError> {
    let api = Api::<Secret>::namespaced(client.clone(), namespace);
    let mut params = PatchParams::apply(FIELD_MANAGER).force();
    if dry_run {
        params = params.dry_run();
    }
    let empty = serde_json::json!({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name, "namespace": namespace}});
    let empty = Patch::Apply(empty);
    with_retries(|| api.patch(name, &params, &empty))
        .await
        .map(drop)
        .map_err(|e| ClusterError::api("take back courier's keys", e))
}

async fn delete_one(
    client: &Client,
    namespace: &str,
    name: &str,
    resource_version: Option<String>,
    dry_run: bool,
) -> Result<(), ClusterError> {
    let api = Api::<Secret>::namespaced(client.clone(), namespace);
    let mut params = DeleteParams {
        preconditions: Some(Preconditions {
            resource_version,
            uid: None,
        }),
        ..DeleteParams::default()
    };
    if dry_run {
        params = params.dry_run();
    }
    match with_retries(|| api.delete(name, &params)).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(e) => Err(ClusterError::api("delete", e)),
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    fn status(code: u16) -> kube::Error {
        kube::Error::Api(Box::new(
            kube::core::Status::failure("scripted", "Scripted").with_code(code),
        ))
    }

    #[tokio::test]
    async fn transient_failures_are_retried_a_bounded_number_of_times() {
        let calls = Cell::new(0);
        let outcome = with_retries(|| {
            calls.set(calls.get() + 1);
            let attempt = calls.get();
            async move {
                if attempt < 3 {
                    Err(status(503))
                } else {
                    Ok("written")
                }
            }
        })
        .await;
        assert_eq!(outcome.unwrap(), "written");
        assert_eq!(calls.get(), 3);

        let calls = Cell::new(0);
        let outcome: Result<(), _> = with_retries(|| {
            calls.set(calls.get() + 1);
            async { Err(status(429)) }
        })
        .await;
        assert!(outcome.is_err());
        assert_eq!(
            calls.get(),
            WRITE_ATTEMPTS,
            "gives up after {WRITE_ATTEMPTS} attempts"
        );
    }

    #[tokio::test]
    async fn definite_answers_are_not_retried() {
        for code in [403, 404, 409, 422] {
            let calls = Cell::new(0);
            let outcome: Result<(), _> = with_retries(|| {
                calls.set(calls.get() + 1);
                async move { Err(status(code)) }
            })
            .await;
            assert!(outcome.is_err());
            assert_eq!(calls.get(), 1, "{code} is not retried");
        }
    }

    #[test]
    fn field_sets_merge_as_the_union_of_their_tries() {
        let mut into = serde_json::json!({"f:data": {"f:a": {}}, "f:type": {}});
        let from =
            serde_json::json!({"f:data": {"f:b": {}}, "f:metadata": {"f:labels": {"f:x": {}}}});
        merge_field_sets(&mut into, &from);
        assert_eq!(
            into,
            serde_json::json!({
                "f:data": {"f:a": {}, "f:b": {}},
                "f:metadata": {"f:labels": {"f:x": {}}},
                "f:type": {}
            })
        );
    }

    #[test]
    fn path_segments_are_escaped() {
        assert_eq!(utf8_path("team-a.b_c"), "team-a.b_c");
        assert_eq!(utf8_path("a/b c"), "a%2Fb%20c");
    }
}
