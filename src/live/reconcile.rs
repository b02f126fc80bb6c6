//! One reconcile, shared by `apply` and `run`: manifests (files or cluster), the live
//! world, the plan, the writes, and (for manifests read from the cluster) their status.

use std::collections::HashMap;
use std::path::PathBuf;

use crate::core::clusters::{self, HOME_CLUSTER, Member};
use crate::core::load::{LoadError, Manifests, load_paths_partial};
use crate::core::plan::{self, DesiredSecret, Plan, PlanError};
use crate::core::provider::RemoteRequests;
use crate::core::world::{BlockList, World};
use crate::live::apply::{self, ApplyOptions, Report};
use crate::live::cluster::{self, ClusterError, Snapshot};
use crate::live::fleet::{ClusterFailure, Fleet, MemberConnection};
use crate::live::status;
use crate::live::varying;

/// Where the manifests come from.
#[derive(Debug, Clone)]
pub enum ManifestSource {
    /// Files and directories, re-read at every reconcile.
    Files(Vec<PathBuf>),
    /// The ESO objects in the cluster (the CRDs installed, no ESO controller).
    Cluster,
}

/// Why a reconcile could not run at all.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// The manifests did not load.
    #[error("{} manifest errors", .0.len())]
    Load(Vec<LoadError>),
    /// The cluster could not be read.
    #[error(transparent)]
    Cluster(#[from] ClusterError),
}

/// What a reconcile did. With member clusters, `plan` and `report` hold every cluster's
/// targets, those of members named `cluster/namespace/name` (namespace `cluster/namespace`).
pub struct Outcome {
    /// The manifests it acted on.
    pub manifests: Manifests,
    /// The plan, with its per-target errors.
    pub plan: Plan,
    /// The writes.
    pub report: Report,
    /// Status or Event writes that failed (`--from-cluster`).
    pub status_errors: Vec<ClusterError>,
    /// Each cluster's share, the hub (`in-cluster`) first; one entry without members.
    pub clusters: Vec<ClusterOutcome>,
    /// Clusters that could not take part.
    pub failures: Vec<ClusterFailure>,
    /// Manifests whose cluster selector picks no cluster.
    pub warnings: Vec<String>,
    /// The member clusters that answered, by name, with their client (not the hub).
    pub reached: Vec<(String, kube::Client)>,
    /// ExternalSecrets of ClusterExternalSecrets created, updated and deleted (`--from-cluster`).
    pub eso_objects: [usize; 3],
    /// The `Ready` condition of each ExternalSecret and ClusterExternalSecret after this
    /// reconcile, for ESO's metrics (`--from-cluster`).
    pub readiness: Vec<crate::live::metrics::Readiness>,
}

/// One cluster's share of a reconcile.
#[derive(Debug, Clone)]
pub struct ClusterOutcome {
    /// The cluster's name.
    pub name: String,
    /// What was written there.
    pub summary: String,
    /// Its targets that failed, planning or writing.
    pub errors: usize,
}

impl Outcome {
    /// Every error, one line each.
    pub fn error_lines(&self) -> Vec<String> {
        let failures = self.failures.iter().map(ToString::to_string);
        let plan = self.plan.errors.iter().map(ToString::to_string);
        let writes = self.report.errors.iter().map(ToString::to_string);
        failures
            .chain(plan)
            .chain(writes)
            .chain(self.report.blocked.iter().cloned())
            .chain(self.status_errors.iter().map(ToString::to_string))
            .collect()
    }
}

/// One cluster ready to be written: its snapshot (namespaces and managed Secrets) and plan.
pub struct ClusterPlan {
    /// The cluster and its connection.
    pub member: MemberConnection,
    /// What courier manages there.
    pub snapshot: Snapshot,
    /// Its targets.
    pub plan: Plan,
    /// How to write there (`hub` set on members).
    pub options: ApplyOptions,
}

/// Every cluster's plan, made from one read of the sources.
pub struct FleetPlan {
    /// The clusters that answered, the hub first.
    pub clusters: Vec<ClusterPlan>,
    /// The clusters that did not.
    pub failures: Vec<ClusterFailure>,
    /// Manifests whose cluster selector picks no cluster: an error of theirs in every
    /// cluster's plan (each keeps their targets), told once.
    pub picks_no_cluster: std::collections::BTreeSet<String>,
}

/// Reads the sources once from the hub and plans every cluster: the hub's namespaces and
/// sources (a handful of LISTs), each member's namespaces (one LIST each, concurrently),
/// the remote reads of all clusters' plans fetched once; then every cluster's managed
/// Secrets (one paged LIST each, concurrently), measured against its plan as they are read.
pub async fn plan_fleet(
    fleet: &Fleet,
    manifests: &Manifests,
    block_list: &BlockList,
    options: &ApplyOptions,
) -> Result<FleetPlan, ClusterError> {
    let hub = &fleet.hub;
    // The hub's sources and the inventory of clusters are read at once. Without members
    // the inventory is the hub alone, and no request is made for it.
    let (mut hub_snapshot, inventory) = futures::try_join!(
        cluster::snapshot(&hub.client, manifests, block_list),
        fleet.inventory()
    )?;
    let hub_id = match (&hub_snapshot.cluster_id, inventory.members.len()) {
        (_, 1) => String::new(),
        (Some(id), _) => id.clone(),
        (None, _) => return Err(ClusterError::Config(
            "the hub lists no kube-system namespace: courier names its hub by that namespace's UID on the targets it writes to member clusters".into(),
        )),
    };
    let mut failures = inventory.failures;
    let manifest_names = crate::live::prune::manifest_names(manifests);
    let known: Vec<Member> = inventory.members.iter().map(|m| m.member.clone()).collect();
    // A cluster selector that picks no cluster is a mistake (a typo in a name or label),
    // as a namespace selector that selects nothing is: the manifest's error, in every
    // cluster's plan, so each cluster keeps its targets (see `apply::decide`).
    let names: Vec<&str> = known.iter().map(|m| m.name.as_str()).collect();
    let picks_none: Vec<PlanError> = clusters::selecting_nothing(manifests, &known)
        .into_iter()
        .map(|(object, selector, origin)| PlanError {
            origin,
            object,
            targets: Vec::new(),
            key: Some(format!(
                "metadata.annotations[{}]",
                crate::core::labels::CLUSTER_SELECTOR_ANNOTATION
            )),
            message: format!(
                "the cluster selector {selector:?} picks none of the clusters ({}); nothing is written for it, and its targets are kept as they are\nhint: check the selector against the clusters' names and labels; to remove its targets, remove the manifest",
                names.join(", ")
            ),
            source_missing: None,
        })
        .collect();
    let picks_no_cluster = picks_none.iter().map(|e| e.object.clone()).collect();

    // Members answer concurrently; one that does not fails alone.
    let reads = inventory.members.into_iter().map(|member| async {
        if member.member.is_home() {
            return (member, None);
        }
        let read = cluster::member_snapshot(&member.connection.client).await;
        (member, Some(read))
    });
    let mut members = Vec::new();
    for (member, read) in futures::future::join_all(reads).await {
        match read {
            None => members.push((member, None)),
            Some(Ok(snapshot)) if snapshot.cluster_id.as_deref() == Some(hub_id.as_str()) => {
                failures.push(ClusterFailure {
                    cluster: member.member.name.clone(),
                    member: Some(member.member.clone()),
                    message: format!(
                        "is the hub itself (the same kube-system namespace UID); it is {HOME_CLUSTER} already\nhint: label Argo CD's in-cluster Secret (server {}) instead of declaring the hub twice",
                        crate::core::clusters::IN_CLUSTER_SERVER
                    ),
                });
            }
            Some(Ok(snapshot)) => members.push((member, Some(snapshot))),
            Some(Err(e)) => failures.push(ClusterFailure {
                cluster: member.member.name.clone(),
                member: Some(member.member.clone()),
                message: e.to_string(),
            }),
        }
    }

    // Each cluster's plan is made against the hub's world with the cluster's namespaces in
    // it (swapped in and out, not copied): the sources are the hub's, the targets theirs.
    let mut remote = RemoteRequests::default();
    let per_cluster: Vec<Manifests> = members
        .iter()
        .map(|(m, _)| clusters::manifests_for(manifests, &m.member))
        .collect();
    for ((_, snapshot), selected) in members.iter_mut().zip(&per_cluster) {
        with_namespaces(&mut hub_snapshot.world, snapshot.as_mut(), |world| {
            remote.merge(plan::remote_requests(
                selected,
                world,
                &crate::providers::Registry,
            ));
        });
    }
    if !remote.stores.is_empty() {
        crate::providers::prefetch(&remote, &mut hub_snapshot.world, &hub.fetch).await;
    }
    let mut planned = Vec::new();
    for ((member, snapshot), selected) in members.into_iter().zip(per_cluster) {
        let mut snapshot = snapshot;
        let plan = with_namespaces(&mut hub_snapshot.world, snapshot.as_mut(), |world| {
            let mut plan = plan::plan(&selected, world, &crate::providers::Registry);
            plan.errors.extend(picks_none.iter().cloned());
            if !member.member.is_home() {
                missing_namespaces(&mut plan, world, &selected, &member.member.name);
            }
            plan
        });
        let mut member_options = options.clone();
        member_options.prune.manifests = Some(manifest_names.clone());
        member_options.prune.here = Some(crate::live::prune::manifest_names(&selected));
        if !member.member.is_home() {
            member_options.hub = Some(hub_id.clone());
        }
        member_options.written = options
            .written
            .as_ref()
            .map(|w| w.in_cluster(&member.member.name));
        planned.push((member, snapshot, plan, member_options));
    }

    // What courier manages is listed once each cluster's plan is known, so a target that
    // is current keeps only its identity (see `cluster::list_managed`). Concurrently; a
    // member that does not answer fails alone, the hub fails the reconcile.
    let listings = planned.iter().map(|(member, _, plan, options)| async move {
        let targets: HashMap<(&str, &str), &DesiredSecret> = plan
            .secrets
            .iter()
            .map(|s| ((s.namespace.as_str(), s.name.as_str()), s))
            .collect();
        cluster::list_managed(&member.connection.client, |namespace, name, listed| {
            targets.get(&(namespace, name)).is_some_and(|desired| {
                varying::held_by_refresh_policy(
                    listed,
                    desired,
                    &options.instance,
                    options.written.as_ref(),
                    apply::is_current(listed, desired, options),
                )
            })
        })
        .await
    });
    let listed = futures::future::join_all(listings).await;
    let mut clusters = Vec::new();
    for ((member, snapshot, plan, options), managed) in planned.into_iter().zip(listed) {
        let managed = match managed {
            Ok(managed) => managed,
            Err(e) if member.member.is_home() => return Err(e),
            Err(e) => {
                failures.push(ClusterFailure {
                    cluster: member.member.name.clone(),
                    member: Some(member.member.clone()),
                    message: e.to_string(),
                });
                continue;
            }
        };
        let mut snapshot = snapshot.unwrap_or_else(|| std::mem::take(&mut hub_snapshot));
        snapshot.managed = managed;
        clusters.push(ClusterPlan {
            snapshot,
            member,
            plan,
            options,
        });
    }
    Ok(FleetPlan {
        clusters,
        failures,
        picks_no_cluster,
    })
}

/// Runs `f` on the hub's world holding `member`'s namespaces (the hub's own for none).
fn with_namespaces<T>(
    hub_world: &mut World,
    member: Option<&mut Snapshot>,
    f: impl FnOnce(&World) -> T,
) -> T {
    match member {
        None => f(hub_world),
        Some(member) => {
            std::mem::swap(&mut hub_world.namespaces, &mut member.world.namespaces);
            let answer = f(hub_world);
            std::mem::swap(&mut hub_world.namespaces, &mut member.world.namespaces);
            answer
        }
    }
}

/// An ExternalSecret sent to a member whose namespace the member lacks: an error for that
/// target, rather than a write the API server would refuse.
fn missing_namespaces(plan: &mut Plan, world: &World, manifests: &Manifests, cluster: &str) {
    let mut kept = Vec::with_capacity(plan.secrets.len());
    for secret in std::mem::take(&mut plan.secrets) {
        if world.namespaces.contains_key(&secret.namespace) {
            kept.push(secret);
            continue;
        }
        let origin = manifests
            .external_secrets
            .iter()
            .find(|e| {
                crate::core::load::object_display(
                    "ExternalSecret",
                    e.object.metadata.namespace.as_deref(),
                    &e.object.metadata.name,
                ) == *secret.owner
            })
            .map(|e| e.origin.clone())
            .unwrap_or_else(|| crate::core::load::Origin {
                file: "<cluster>".into(),
                line: 0,
            });
        plan.errors.push(PlanError {
            origin,
            object: secret.owner.to_string(),
            targets: vec![format!("{}/{}", secret.namespace, secret.name)],
            key: None,
            message: format!(
                "namespace {} does not exist in cluster {cluster}\nhint: create it there, or narrow the ExternalSecret's courier.dev/cluster-selector",
                secret.namespace
            ),
            source_missing: None,
        });
    }
    plan.secrets = kept;
}

/// Reads, plans and writes once, in every cluster.
pub async fn reconcile_once(
    fleet: &Fleet,
    source: &ManifestSource,
    block_list: &BlockList,
    options: &ApplyOptions,
) -> Result<Outcome, ReconcileError> {
    let hub = &fleet.hub;
    let (mut inputs, mut objects) = match source {
        // A refused ESO object is not a load error here: the plan carries it as that
        // object's error, so its targets are kept and every other one is reconciled.
        ManifestSource::Files(paths) => match load_paths_partial(paths) {
            (inputs, errors) if errors.is_empty() => (inputs, Vec::new()),
            (_, errors) => return Err(ReconcileError::Load(errors)),
        },
        ManifestSource::Cluster => {
            let (inputs, objects, errors) =
                crate::live::eso::manifests_from_cluster(&hub.client).await?;
            if !errors.is_empty() {
                return Err(ReconcileError::Load(errors));
            }
            (inputs, objects)
        }
    };
    let keep_children = !objects.is_empty() && !options.no_ces_external_secrets;
    crate::live::eso_objects::note_controlled(&mut inputs.manifests, &objects);
    let fleet_plan = plan_fleet(fleet, &inputs.manifests, block_list, options).await?;
    for cluster in &fleet_plan.clusters {
        tracing::debug!(
            cluster = %cluster.member.member.name,
            targets = cluster.plan.secrets.len(),
            errors = cluster.plan.errors.len(),
            "planned"
        );
    }
    // The hub's namespaces, and the ClusterExternalSecrets whose cluster selector picks
    // it: where the ExternalSecrets of ClusterExternalSecrets are kept.
    let home = fleet_plan
        .clusters
        .iter()
        .find(|c| c.member.member.is_home())
        .filter(|_| keep_children)
        .map(|c| {
            let names: std::collections::BTreeSet<String> =
                clusters::manifests_for(&inputs.manifests, &c.member.member)
                    .cluster_external_secrets
                    .iter()
                    .map(|c| c.object.metadata.name.clone())
                    .collect();
            (c.snapshot.world.namespaces.clone(), names)
        });
    let writes = fleet_plan.clusters.iter().map(|cluster| {
        apply::reconcile(
            &cluster.member.connection.client,
            &cluster.plan,
            &cluster.snapshot,
            &cluster.options,
        )
    });
    let reports = futures::future::join_all(writes).await;
    let multi = fleet.is_multi();
    let refused: std::collections::BTreeSet<&str> = inputs
        .manifests
        .refused
        .iter()
        .map(|r| r.object.as_str())
        .collect();
    let mut told = std::collections::HashSet::new();
    let mut plan = Plan::default();
    let mut report = Report::default();
    let mut clusters = Vec::new();
    let reached = fleet_plan
        .clusters
        .iter()
        .filter(|c| !c.member.member.is_home())
        .map(|c| {
            (
                c.member.member.name.clone(),
                c.member.connection.client.clone(),
            )
        })
        .collect();
    // The hub's world, where a store's credential Secrets are read for its check.
    let mut home_world = None;
    for (cluster, cluster_report) in fleet_plan.clusters.into_iter().zip(reports) {
        let name = cluster.member.member.name.clone();
        clusters.push(ClusterOutcome {
            name: name.clone(),
            summary: cluster_report.summary(),
            errors: cluster.plan.errors.len() + cluster_report.errors.len(),
        });
        let prefix = (multi && !cluster.member.member.is_home()).then_some(name.as_str());
        let mut cluster_plan = cluster.plan;
        // A refused object, or one whose cluster selector picks no cluster, fails in every
        // cluster (each keeps its targets); it is told once.
        cluster_plan.errors.retain(|e| {
            let everywhere = refused.contains(e.object.as_str())
                || fleet_plan.picks_no_cluster.contains(&e.object);
            !everywhere || told.insert(e.to_string())
        });
        merge_plan(&mut plan, cluster_plan, prefix);
        merge_report(&mut report, cluster_report, prefix);
        if cluster.member.member.is_home() {
            home_world = Some(cluster.snapshot.world);
        }
    }
    for failure in &fleet_plan.failures {
        clusters.push(ClusterOutcome {
            name: failure.cluster.clone(),
            summary: "not reached".into(),
            errors: 1,
        });
    }
    let children = match &home {
        Some((namespaces, names)) => Some(
            crate::live::eso_objects::sync_children(
                &hub.client,
                &mut objects,
                namespaces,
                names,
                options.dry_run,
            )
            .await,
        ),
        None => None,
    };
    let mut readiness = Vec::new();
    let mut status_errors = if objects.is_empty() || options.dry_run {
        Vec::new()
    } else {
        let unreached = unreached_clusters(&inputs.manifests, &fleet_plan.failures);
        let inputs = status::StatusInputs {
            plan: &plan,
            report: &report,
            unreached: &unreached,
            children: children.as_ref(),
            now: k8s_openapi::jiff::Timestamp::now(),
        };
        let mut updates = status::desired_statuses(&objects, &inputs);
        updates.extend(
            status::store_statuses(&objects, home_world.as_ref(), &hub.fetch, inputs.now).await,
        );
        readiness = status::readiness(&objects, &updates);
        let normal = status::normal_events(&objects, &inputs);
        status::write(&hub.client, &objects, updates, normal).await
    };
    let mut eso_objects = [0; 3];
    if let Some(children) = children {
        eso_objects = [children.created, children.updated, children.deleted];
        status_errors.extend(children.errors);
    }
    let report_warnings = std::mem::take(&mut report.warnings);
    Ok(Outcome {
        manifests: inputs.manifests,
        plan,
        report,
        status_errors,
        clusters,
        failures: fleet_plan.failures,
        warnings: report_warnings,
        reached,
        eso_objects,
        readiness,
    })
}

/// For each manifest, the clusters it selects that could not be reached, with why.
fn unreached_clusters(
    manifests: &Manifests,
    failures: &[ClusterFailure],
) -> std::collections::BTreeMap<String, Vec<String>> {
    let mut unreached = std::collections::BTreeMap::<String, Vec<String>>::new();
    let objects = manifests
        .cluster_external_secrets
        .iter()
        .map(|c| {
            (
                crate::core::load::object_display(
                    "ClusterExternalSecret",
                    None,
                    &c.object.metadata.name,
                ),
                &c.object.metadata.annotations,
            )
        })
        .chain(manifests.external_secrets.iter().map(|e| {
            let meta = &e.object.metadata;
            (
                crate::core::load::object_display(
                    "ExternalSecret",
                    meta.namespace.as_deref(),
                    &meta.name,
                ),
                &meta.annotations,
            )
        }));
    for (display, annotations) in objects {
        for failure in failures {
            if failure
                .member
                .as_ref()
                .is_some_and(|m| clusters::selects(annotations, m))
            {
                unreached
                    .entry(display.clone())
                    .or_default()
                    .push(failure.to_string());
            }
        }
    }
    unreached
}

fn prefixed(prefix: Option<&str>, target: String) -> String {
    match prefix {
        Some(cluster) => format!("{cluster}/{target}"),
        None => target,
    }
}

fn merge_plan(into: &mut Plan, plan: Plan, prefix: Option<&str>) {
    for mut secret in plan.secrets {
        secret.namespace = prefixed(prefix, secret.namespace);
        into.secrets.push(secret);
    }
    for mut error in plan.errors {
        error.targets = error
            .targets
            .into_iter()
            .map(|t| prefixed(prefix, t))
            .collect();
        if let (Some(cluster), true) = (prefix, error.targets.is_empty()) {
            error.message = format!("in cluster {cluster}: {}", error.message);
        }
        into.errors.push(error);
    }
}

fn merge_report(into: &mut Report, report: Report, prefix: Option<&str>) {
    let lists = [
        (&mut into.created, report.created),
        (&mut into.updated, report.updated),
        (&mut into.deleted, report.deleted),
        (&mut into.orphaned, report.orphaned),
        (&mut into.released, report.released),
        (&mut into.adopted, report.adopted),
    ];
    for (into, from) in lists {
        into.extend(from.into_iter().map(|t| prefixed(prefix, t)));
    }
    into.unchanged += report.unchanged;
    let cluster = |line: String| match prefix {
        Some(name) => format!("cluster {name}: {line}"),
        None => line,
    };
    into.blocked.extend(report.blocked.into_iter().map(cluster));
    into.warnings
        .extend(report.warnings.into_iter().map(cluster));
    into.errors.extend(report.errors.into_iter().map(|mut e| {
        e.target = prefixed(prefix, e.target);
        e
    }));
}
