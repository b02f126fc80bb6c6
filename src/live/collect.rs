//! Collection on live clusters (see [`crate::core::collect`]): each selected member's
//! opted-in Secrets listed with the member's own identity, the hub's copies listed, the
//! pure planner, then the writes on the hub. `courier collect` runs one pass or keeps
//! running with watches on the members.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, DeleteParams, ListParams, ObjectMeta, PartialObjectMeta, PostParams};
use kube::runtime::WatchStreamExt as _;
use kube::runtime::watcher::{self, Event};
use tokio::sync::Notify;

use crate::core::collect::{
    self, ARGOCD_SYNC_LABEL, CollectPlan, Copy, Failure, Hub, HubSecret, KARGO_SYNC_LABEL,
    MemberListing, MemberSecret, Policy, Write,
};
use crate::core::labels::MANAGED_BY_LABEL;
use crate::core::redact::Scrubber;
use crate::core::secret_bytes::SecretBytes;
use crate::core::world::{BlockList, SourceSecret};
use crate::live::cluster::{ClusterError, Connection};
use crate::live::fleet::Fleet;

/// Writes on the hub in flight at once.
const WRITES_IN_FLIGHT: usize = 16;

/// How a pass runs.
#[derive(Debug, Clone)]
pub struct CollectOptions {
    /// The instance name copies carry; only its own copies are updated or removed.
    pub instance: String,
    /// Decide and send every write as a server-side dry run.
    pub dry_run: bool,
    /// Decide only: no write is sent (`--diff`).
    pub plan_only: bool,
    /// Secrets never collected (with the seed's fixed rules).
    pub block_list: BlockList,
}

/// What a pass did.
#[derive(Debug, Default)]
pub struct CollectOutcome {
    /// The plan, with write failures added to its failures.
    pub plan: CollectPlan,
    /// Writes that succeeded, as `verb namespace/name (cluster)`.
    pub done: Vec<String>,
    /// Clusters whose Secrets were listed this pass.
    pub reached: Vec<String>,
}

fn source_secret(secret: Secret) -> (ObjectMeta, SourceSecret) {
    let data = secret
        .data
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, SecretBytes::new(v.0)))
        .collect();
    let metadata = secret.metadata;
    let content = SourceSecret {
        labels: metadata.labels.clone().unwrap_or_default(),
        annotations: metadata.annotations.clone().unwrap_or_default(),
        type_: secret.type_.unwrap_or_else(|| "Opaque".into()),
        data,
    };
    (metadata, content)
}

/// A member's opted-in Secrets in `namespace`: two LISTs, one per opt-in label, so values
/// of Secrets that did not opt in are never read.
async fn list_member(
    connection: &Connection,
    namespace: &str,
) -> Result<Vec<MemberSecret>, ClusterError> {
    let api = Api::<Secret>::namespaced(connection.client.clone(), namespace);
    let mut found: BTreeMap<String, MemberSecret> = BTreeMap::new();
    for label in [ARGOCD_SYNC_LABEL, KARGO_SYNC_LABEL] {
        let listed = api
            .list(&ListParams::default().labels(label))
            .await
            .map_err(|e| {
                ClusterError::api(format!("list Secrets labelled {label} in {namespace}"), e)
            })?;
        for secret in listed.items {
            let (metadata, content) = source_secret(secret);
            let name = metadata.name.unwrap_or_default();
            found.insert(
                name.clone(),
                MemberSecret {
                    name,
                    namespace: namespace.to_owned(),
                    created: metadata
                        .creation_timestamp
                        .map(|t| t.0.to_string())
                        .unwrap_or_default(),
                    secret: content,
                },
            );
        }
    }
    Ok(found.into_values().collect())
}

/// One collection pass.
pub async fn collect_once(
    fleet: &Fleet,
    policies: &[Policy],
    options: &CollectOptions,
) -> Result<CollectOutcome, ClusterError> {
    let inventory = fleet.inventory().await?;
    let mut hub = Hub::default();
    let mut outcome = CollectOutcome::default();
    for failure in &inventory.failures {
        hub.declared_clusters.insert(failure.cluster.clone());
        outcome.plan.failures.push(Failure {
            source: format!("cluster {}", failure.cluster),
            message: format!("{}; its copies on the hub are kept", failure.message),
        });
    }
    // Every member at once: one slow or unreachable member does not hold up the others.
    let selected: Vec<_> = inventory
        .members
        .iter()
        .filter(|m| !m.member.is_home())
        .collect();
    let listed = futures::future::join_all(selected.iter().map(|member| async move {
        let namespaces: BTreeSet<&str> = policies
            .iter()
            .filter(|p| p.clusters.matches(&member.member.labels))
            .map(|p| p.namespace.as_str())
            .collect();
        let mut secrets = Vec::new();
        for namespace in namespaces {
            secrets.extend(
                list_member(&member.connection, namespace)
                    .await
                    .map_err(|e| e.to_string())?,
            );
        }
        Ok::<_, String>(secrets)
    }))
    .await;
    let mut listings = Vec::new();
    for (member, secrets) in selected.into_iter().zip(listed) {
        hub.declared_clusters.insert(member.member.name.clone());
        if secrets.is_ok() {
            outcome.reached.push(member.member.name.clone());
        }
        listings.push(MemberListing {
            member: member.member.clone(),
            secrets,
        });
    }

    let client = fleet.hub.client.clone();
    for namespace in Api::<Namespace>::all(client.clone())
        .list_metadata(&ListParams::default())
        .await
        .map_err(|e| ClusterError::api("list the hub's namespaces", e))?
        .items
    {
        hub.namespaces.insert(
            namespace.metadata.name.unwrap_or_default(),
            namespace.metadata.labels.unwrap_or_default(),
        );
    }
    let copies = Api::<Secret>::all(client.clone())
        .list(
            &ListParams::default()
                .labels(&format!("{MANAGED_BY_LABEL}={}", collect::MANAGED_BY_VALUE)),
        )
        .await
        .map_err(|e| ClusterError::api("list the hub's collected Secrets", e))?;
    for secret in copies.items {
        let (metadata, content) = source_secret(secret);
        hub.secrets.insert(
            (
                metadata.namespace.unwrap_or_default(),
                metadata.name.unwrap_or_default(),
            ),
            HubSecret { secret: content },
        );
    }
    // Where copies would go that are not copies yet: read them, since an existing Secret
    // there is either adopted or refused.
    let places: BTreeSet<(String, String)> = listings
        .iter()
        .filter_map(|l| l.secrets.as_ref().ok())
        .flatten()
        .flat_map(|s| {
            let mut places = Vec::new();
            if s.secret.labels.contains_key(ARGOCD_SYNC_LABEL) {
                places.extend(policies.iter().map(|p| p.argocd_namespace.clone()));
            }
            if let Some(project) = s.secret.labels.get(KARGO_SYNC_LABEL) {
                places.push(project.clone());
            }
            places.into_iter().map(move |ns| (ns, s.name.clone()))
        })
        .filter(|key| hub.namespaces.contains_key(&key.0) && !hub.secrets.contains_key(key))
        .collect();
    // One metadata-only LIST per namespace copies go to (no values read); the full
    // Secret only where an adoptable one exists, whose content is kept aside.
    let mut by_namespace: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (namespace, name) in places {
        by_namespace.entry(namespace).or_default().insert(name);
    }
    for (namespace, names) in by_namespace {
        let api = Api::<Secret>::namespaced(client.clone(), &namespace);
        let listed = api
            .list_metadata(&ListParams::default())
            .await
            .map_err(|e| ClusterError::api(format!("list Secrets in {namespace} on the hub"), e))?;
        for meta in listed.items {
            let name = meta.metadata.name.clone().unwrap_or_default();
            if !names.contains(&name) {
                continue;
            }
            let content = if collect::ADOPTABLE.contains(&name.as_str()) {
                match api.get_opt(&name).await.map_err(|e| {
                    ClusterError::api(format!("read Secret {namespace}/{name} on the hub"), e)
                })? {
                    Some(secret) => source_secret(secret).1,
                    None => continue,
                }
            } else {
                SourceSecret {
                    labels: meta.metadata.labels.unwrap_or_default(),
                    annotations: meta.metadata.annotations.unwrap_or_default(),
                    ..SourceSecret::default()
                }
            };
            hub.secrets
                .insert((namespace.clone(), name), HubSecret { secret: content });
        }
    }

    let plan = collect::plan(
        policies,
        &listings,
        &hub,
        &options.block_list,
        &options.instance,
    );
    outcome.plan.failures.extend(plan.failures);
    outcome.plan.warnings = plan.warnings;
    outcome.plan.unchanged = plan.unchanged;
    if !options.plan_only {
        // Saves and restores first, so an adopted Secret's previous content is kept
        // before it is overwritten and given back before its saved copy goes; each phase
        // writes `WRITES_IN_FLIGHT` at once.
        let (first, then): (Vec<&Write>, Vec<&Write>) = plan.writes.iter().partition(|w| {
            matches!(
                w,
                Write::Put {
                    verb: "save" | "restore",
                    ..
                }
            )
        });
        for phase in [first, then] {
            let results: Vec<(&Write, Result<(), String>)> =
                futures::stream::iter(phase.into_iter().map(|write| {
                    let client = client.clone();
                    async move { (write, execute(&client, write, options.dry_run).await) }
                }))
                .buffer_unordered(WRITES_IN_FLIGHT)
                .collect()
                .await;
            for (write, result) in results {
                match result {
                    Ok(()) => outcome.done.push(describe(write)),
                    Err(message) => outcome.plan.failures.push(Failure {
                        source: write.target(),
                        message,
                    }),
                }
            }
        }
        outcome.done.sort();
    }
    outcome.plan.writes = plan.writes;
    Ok(outcome)
}

fn describe(write: &Write) -> String {
    match write {
        Write::Put { verb, cluster, .. } if cluster.is_empty() => {
            format!("{verb} Secret {}", write.target())
        }
        Write::Put { verb, cluster, .. } => {
            format!("{verb} Secret {} from cluster {cluster}", write.target())
        }
        Write::Delete { cluster, .. } if cluster.is_empty() => {
            format!("delete Secret {}", write.target())
        }
        Write::Delete { cluster, .. } => {
            format!(
                "delete Secret {} (collected from cluster {cluster})",
                write.target()
            )
        }
    }
}

fn secret_of(namespace: &str, name: &str, content: &Copy) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(namespace.to_owned()),
            labels: Some(content.labels.clone()),
            annotations: Some(content.annotations.clone()),
            ..ObjectMeta::default()
        },
        type_: Some(content.type_.clone()),
        data: Some(
            content
                .data
                .iter()
                .map(|(k, v)| (k.clone(), k8s_openapi::ByteString(v.expose().to_vec())))
                .collect(),
        ),
        ..Secret::default()
    }
}

/// One write. The API server quotes what it refuses, so its message is scrubbed of every
/// value the write sent.
async fn execute(client: &kube::Client, write: &Write, dry_run: bool) -> Result<(), String> {
    let post = PostParams {
        dry_run,
        ..PostParams::default()
    };
    match write {
        Write::Put {
            namespace,
            name,
            content,
            exists,
            ..
        } => {
            let api = Api::<Secret>::namespaced(client.clone(), namespace);
            let secret = secret_of(namespace, name, content);
            let result = if *exists {
                // A replace without resourceVersion: the whole Secret as collected,
                // whoever wrote it before (an adopted Secret's other keys go).
                api.replace(name, &post, &secret).await.map(drop)
            } else {
                api.create(&post, &secret).await.map(drop)
            };
            result.map_err(|e| {
                let mut scrubber = Scrubber::new();
                for value in content.data.values() {
                    scrubber.add(value.expose());
                }
                scrubber.scrub(
                    &ClusterError::api(format!("write Secret {namespace}/{name}"), e).to_string(),
                )
            })
        }
        Write::Delete {
            namespace, name, ..
        } => {
            let params = DeleteParams {
                dry_run,
                ..DeleteParams::default()
            };
            match Api::<Secret>::namespaced(client.clone(), namespace)
                .delete(name, &params)
                .await
            {
                Ok(_) => Ok(()),
                Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
                Err(e) => Err(
                    ClusterError::api(format!("delete Secret {namespace}/{name}"), e).to_string(),
                ),
            }
        }
    }
}

/// Watches each reached member's opted-in Secrets (metadata only: names and labels, never
/// values) and wakes `changed` on any change. Returns the clusters now watched.
pub fn watch_members(
    fleet_members: &[(String, Connection)],
    policies: &[Policy],
    watched: &mut BTreeSet<String>,
    changed: &Arc<Notify>,
) {
    let namespaces: BTreeSet<String> = policies.iter().map(|p| p.namespace.clone()).collect();
    for (name, connection) in fleet_members {
        if !watched.insert(name.clone()) {
            continue;
        }
        for namespace in &namespaces {
            for label in [ARGOCD_SYNC_LABEL, KARGO_SYNC_LABEL] {
                let api = Api::<PartialObjectMeta<Secret>>::namespaced(
                    connection.client.clone(),
                    namespace,
                );
                let changed = changed.clone();
                let cluster = name.clone();
                tokio::spawn(async move {
                    let mut events = std::pin::pin!(
                        watcher::watcher(api, watcher::Config::default().labels(label))
                            .default_backoff()
                    );
                    let mut synced = false;
                    while let Some(event) = events.next().await {
                        match event {
                            Ok(Event::Apply(_) | Event::Delete(_)) => changed.notify_one(),
                            Ok(Event::InitDone) if synced => changed.notify_one(),
                            Ok(Event::InitDone) => synced = true,
                            Ok(_) => {}
                            Err(error) => {
                                tracing::warn!(cluster, %error, "member watch interrupted; retrying");
                            }
                        }
                    }
                });
            }
        }
    }
}

/// The members of the fleet now, for watching.
pub async fn reachable_members(fleet: &Fleet) -> Vec<(String, Connection)> {
    match fleet.inventory().await {
        Ok(inventory) => inventory
            .members
            .into_iter()
            .filter(|m| !m.member.is_home())
            .map(|m| (m.member.name, m.connection))
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Waits for a change or `resync`, whichever comes first.
pub async fn wait(changed: &Notify, resync: Duration, debounce: Duration) {
    tokio::select! {
        () = changed.notified() => tokio::time::sleep(debounce).await,
        () = tokio::time::sleep(resync) => {}
    }
}
