//! Writing the plan: server-side apply with field manager `courier`, ownership checks,
//! pruning of this instance's stale targets, bounded concurrency, no write for a no-op.

use std::collections::BTreeSet;

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, Preconditions};
use kube::core::PartialObjectMeta;

use crate::cluster::{
    CREATION_POLICY_ANNOTATION, ClusterError, INSTANCE_LABEL, ManagedSecret, Snapshot,
};
use crate::model::CreationPolicy;
use crate::output;
use crate::plan::{DesiredSecret, Plan};

/// The field manager courier writes as.
pub const FIELD_MANAGER: &str = "courier";

/// How to apply.
#[derive(Debug, Clone)]
pub struct ApplyOptions {
    /// This deployment's name; it prunes only Secrets labelled with it.
    pub instance: String,
    /// Decide everything, write nothing.
    pub dry_run: bool,
    /// Writes in flight at once.
    pub concurrency: usize,
}

impl Default for ApplyOptions {
    fn default() -> Self {
        Self {
            instance: "default".into(),
            dry_run: false,
            concurrency: 16,
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
    /// Per-target failures; the other targets were still reconciled.
    pub errors: Vec<ApplyError>,
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
        format!(
            "{} created, {} updated, {} unchanged, {} deleted, {} orphaned, {} errors",
            self.created.len(),
            self.updated.len(),
            self.unchanged,
            self.deleted.len(),
            self.orphaned.len(),
            self.errors.len()
        )
    }
}

enum Action<'p> {
    Apply {
        secret: &'p DesiredSecret,
        create: bool,
    },
    Delete {
        namespace: String,
        name: String,
        resource_version: Option<String>,
    },
}

/// Reconciles the cluster towards `plan`. Plan errors are not written anywhere, and a
/// failing manifest's existing targets are neither updated nor pruned.
pub async fn reconcile(
    client: &Client,
    plan: &Plan,
    snapshot: &Snapshot,
    options: &ApplyOptions,
) -> Report {
    let mut report = Report::default();
    let failing_owners: BTreeSet<&str> = plan.errors.iter().map(|e| e.object.as_str()).collect();
    let mut actions = Vec::new();
    let mut to_create = Vec::new();
    let desired: BTreeSet<(&str, &str)> = plan
        .secrets
        .iter()
        .map(|s| (s.namespace.as_str(), s.name.as_str()))
        .collect();

    for secret in &plan.secrets {
        let target = format!("{}/{}", secret.namespace, secret.name);
        match snapshot
            .managed
            .get(&(secret.namespace.clone(), secret.name.clone()))
        {
            Some(existing) if existing.instance.as_deref() != Some(options.instance.as_str()) => {
                report.errors.push(ApplyError {
                    target,
                    message: format!(
                        "managed by courier instance {:?}, not {:?}; left untouched",
                        existing.instance.as_deref().unwrap_or("<none>"),
                        options.instance
                    ),
                });
            }
            Some(existing) if is_current(existing, secret, &options.instance) => {
                report.unchanged += 1
            }
            Some(_) => actions.push(Action::Apply {
                secret,
                create: false,
            }),
            None => to_create.push(secret),
        }
    }
    if !to_create.is_empty() {
        match unmanaged_names(client, &to_create).await {
            Ok(unmanaged) => {
                for secret in to_create {
                    if unmanaged.contains(&(secret.namespace.clone(), secret.name.clone())) {
                        report.errors.push(ApplyError {
                            target: format!("{}/{}", secret.namespace, secret.name),
                            message: "exists and is not managed by courier; left untouched (delete it or rename the target)".into(),
                        });
                    } else {
                        actions.push(Action::Apply {
                            secret,
                            create: true,
                        });
                    }
                }
            }
            Err(e) => report
                .errors
                .extend(to_create.iter().map(|secret| ApplyError {
                    target: format!("{}/{}", secret.namespace, secret.name),
                    message: e.to_string(),
                })),
        }
    }
    for ((namespace, name), existing) in &snapshot.managed {
        let ours = existing.instance.as_deref() == Some(options.instance.as_str());
        let owner_failing = existing
            .origin
            .as_deref()
            .is_some_and(|o| failing_owners.contains(o));
        if !ours || owner_failing || desired.contains(&(namespace.as_str(), name.as_str())) {
            continue;
        }
        if existing.orphan {
            report.orphaned.push(format!("{namespace}/{name}"));
            continue;
        }
        actions.push(Action::Delete {
            namespace: namespace.clone(),
            name: name.clone(),
            resource_version: existing.resource_version.clone(),
        });
    }

    let results: Vec<(String, Result<bool, ClusterError>, bool)> = futures::stream::iter(actions)
        .map(|action| async move {
            match action {
                Action::Apply { secret, create } => {
                    let target = format!("{}/{}", secret.namespace, secret.name);
                    (
                        target,
                        apply_one(client, secret, &options.instance, options.dry_run)
                            .await
                            .map(|()| create),
                        false,
                    )
                }
                Action::Delete {
                    namespace,
                    name,
                    resource_version,
                } => {
                    let target = format!("{namespace}/{name}");
                    let result =
                        delete_one(client, &namespace, &name, resource_version, options.dry_run)
                            .await;
                    (target, result.map(|()| false), true)
                }
            }
        })
        .buffer_unordered(options.concurrency.max(1))
        .collect()
        .await;
    for (target, result, is_delete) in results {
        match result {
            Ok(_) if is_delete => report.deleted.push(target),
            Ok(true) => report.created.push(target),
            Ok(false) => report.updated.push(target),
            Err(e) => report.errors.push(ApplyError {
                target,
                message: e.to_string(),
            }),
        }
    }
    for list in [
        &mut report.created,
        &mut report.updated,
        &mut report.deleted,
        &mut report.orphaned,
    ] {
        list.sort();
    }
    report.errors.sort();
    report
}

/// Whether the live Secret already holds what courier would write: its data, type and
/// courier's labels and annotations (hash included). Comparing the data itself, not only
/// the hash annotation, is what restores a target someone edited by hand.
fn is_current(existing: &ManagedSecret, desired: &DesiredSecret, instance: &str) -> bool {
    let body = &desired.body;
    existing.data_hash() == Some(body.data_hash())
        && existing.type_ == body.type_
        && existing.immutable == body.immutable
        && existing.data == body.data
        && existing.labels.get(INSTANCE_LABEL).map(String::as_str) == Some(instance)
        && body
            .labels
            .iter()
            .all(|(k, v)| existing.labels.get(k) == Some(v))
        && body
            .annotations
            .iter()
            .all(|(k, v)| existing.annotations.get(k) == Some(v))
}

/// Names among `targets` that exist without courier's label: one metadata-only LIST
/// (no values) per namespace set, only when there is something to create.
async fn unmanaged_names(
    client: &Client,
    targets: &[&DesiredSecret],
) -> Result<BTreeSet<(String, String)>, ClusterError> {
    let wanted: BTreeSet<(String, String)> = targets
        .iter()
        .map(|s| (s.namespace.clone(), s.name.clone()))
        .collect();
    let listed = Api::<Secret>::all(client.clone())
        .list_metadata(&ListParams::default())
        .await
        .map_err(|e| ClusterError::api("list Secret names (to protect unmanaged Secrets)", e))?;
    Ok(listed
        .items
        .into_iter()
        .filter_map(|meta: PartialObjectMeta<Secret>| {
            let key = (
                meta.metadata.namespace.clone()?,
                meta.metadata.name.clone()?,
            );
            wanted.contains(&key).then_some(key)
        })
        .collect())
}

/// The Secret as courier applies it: the rendered manifest plus the instance label (and
/// the Orphan marker), so pruning knows whose it is.
pub fn applied_manifest(secret: &DesiredSecret, instance: &str) -> serde_json::Value {
    let mut manifest = output::secret_json(secret, output::Values::Reveal);
    manifest["metadata"]["labels"][INSTANCE_LABEL] = serde_json::Value::from(instance);
    if secret.body.creation_policy == CreationPolicy::Orphan {
        manifest["metadata"]["annotations"][CREATION_POLICY_ANNOTATION] =
            serde_json::Value::from("Orphan");
    }
    manifest
}

async fn apply_one(
    client: &Client,
    secret: &DesiredSecret,
    instance: &str,
    dry_run: bool,
) -> Result<(), ClusterError> {
    let api = Api::<Secret>::namespaced(client.clone(), &secret.namespace);
    let mut params = PatchParams::apply(FIELD_MANAGER).force();
    if dry_run {
        params = params.dry_run();
    }
    api.patch(
        &secret.name,
        &params,
        &Patch::Apply(applied_manifest(secret, instance)),
    )
    .await
    .map(drop)
    .map_err(|e| ClusterError::api("apply", e))
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
    match api.delete(name, &params).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(e) => Err(ClusterError::api("delete", e)),
    }
}
