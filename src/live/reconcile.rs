//! One reconcile, shared by `apply` and `run`: manifests (files or cluster), the live
//! world, the plan, the writes, and (for manifests read from the cluster) their status.

use std::path::PathBuf;

use crate::core::load::{LoadError, Manifests, load_paths};
use crate::core::plan::{self, Plan};
use crate::core::world::BlockList;
use crate::live::apply::{self, ApplyOptions, Report};
use crate::live::cluster::{self, ClusterError, Connection};
use crate::live::status;

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

/// What a reconcile did.
#[derive(Debug)]
pub struct Outcome {
    /// The manifests it acted on.
    pub manifests: Manifests,
    /// The plan, with its per-target errors.
    pub plan: Plan,
    /// The writes.
    pub report: Report,
    /// Status or Event writes that failed (`--from-cluster`).
    pub status_errors: Vec<ClusterError>,
}

impl Outcome {
    /// Every error, one line each.
    pub fn error_lines(&self) -> Vec<String> {
        let plan = self.plan.errors.iter().map(ToString::to_string);
        let writes = self.report.errors.iter().map(ToString::to_string);
        plan.chain(writes)
            .chain(self.status_errors.iter().map(ToString::to_string))
            .collect()
    }
}

/// Reads, plans and writes once.
pub async fn reconcile_once(
    connection: &Connection,
    source: &ManifestSource,
    block_list: &BlockList,
    options: &ApplyOptions,
) -> Result<Outcome, ReconcileError> {
    let (inputs, objects) = match source {
        ManifestSource::Files(paths) => {
            (load_paths(paths).map_err(ReconcileError::Load)?, Vec::new())
        }
        ManifestSource::Cluster => {
            let (inputs, objects, errors) =
                crate::live::eso::manifests_from_cluster(&connection.client).await?;
            if !errors.is_empty() {
                return Err(ReconcileError::Load(errors));
            }
            (inputs, objects)
        }
    };
    let mut snapshot = cluster::snapshot(&connection.client, &inputs.manifests, block_list).await?;
    let remote = plan::remote_requests(
        &inputs.manifests,
        &snapshot.world,
        &crate::providers::Registry,
    );
    if !remote.stores.is_empty() {
        crate::providers::prefetch(&remote, &mut snapshot.world, &connection.fetch).await;
    }
    let plan = plan::plan(
        &inputs.manifests,
        &snapshot.world,
        &crate::providers::Registry,
    );
    let report = apply::reconcile(&connection.client, &plan, &snapshot, options).await;
    let status_errors = if objects.is_empty() || options.dry_run {
        Vec::new()
    } else {
        let updates = status::desired_statuses(&objects, &plan, &report);
        status::write(&connection.client, &objects, updates).await
    };
    Ok(Outcome {
        manifests: inputs.manifests,
        plan,
        report,
        status_errors,
    })
}
