//! `courier apply`: one reconcile against the live cluster.

use std::process::ExitCode;

use anyhow::Context as _;
use courier::core::load::load_paths_partial;
use courier::core::world::BlockList;
use courier::live::apply::ApplyOptions;
use courier::live::cluster::{self, ClientOptions};
use courier::live::fleet::{Fleet, FleetOptions};
use courier::live::prune::PruneGuard;
use courier::live::reconcile::{ManifestSource, ReconcileError, reconcile_once};

use super::report_errors;
use crate::cli::{ApplyArgs, ClientArgs, LiveArgs};

/// Applies once; exits non-zero when any manifest or target failed.
pub fn run(args: &ApplyArgs) -> anyhow::Result<ExitCode> {
    let source = match manifest_source(&args.live) {
        Ok(source) => source,
        Err(code) => return Ok(code),
    };
    // One thread: a write costs courier tens of microseconds and the API server, on the
    // same cores, is what it waits for. Workers only added cross-thread wake-ups: 10,000
    // creates took 0.9 s of CPU on the multi-thread runtime and 0.63 s on this one
    // (`cargo bench --bench writers`). `run` keeps its workers: its lease must renew while
    // a long plan is computed.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("failed to start the async runtime")?;
    runtime.block_on(apply_once(args, &source))
}

/// Files are loaded once up front so a broken input (YAML that does not parse, an object
/// defined twice) fails before touching the cluster; world objects in them are ignored,
/// the cluster has the real ones. An ESO object refused by ESO's rules is not such a
/// failure: it fails its own targets alone, reported with the reconcile's errors.
pub fn manifest_source(args: &LiveArgs) -> Result<ManifestSource, ExitCode> {
    if args.from_cluster {
        return Ok(ManifestSource::Cluster);
    }
    let (inputs, errors) = load_paths_partial(&args.paths);
    if !errors.is_empty() {
        return Err(report_errors(
            errors.iter().map(ToString::to_string),
            "nothing was applied",
        ));
    }
    let policies = courier::core::collect::refuse_policies(&inputs.passthrough);
    if !policies.is_empty() {
        return Err(report_errors(policies, "nothing was applied"));
    }
    let ignored = inputs.namespaces.len() + inputs.secrets.len() + inputs.config_maps.len();
    if ignored > 0 {
        // At the default level: a user who points apply at a files world (the seed
        // directory, say) expects those objects to count.
        tracing::warn!(
            "{ignored} Namespaces, Secrets and ConfigMaps in the input are ignored: live mode reads them from the cluster (render reads them from the files)"
        );
    }
    Ok(ManifestSource::Files(args.paths.clone()))
}

/// The block list from flags.
pub fn block_list(args: &LiveArgs) -> BlockList {
    let mut list = BlockList::default();
    list.names.extend(args.deny_secrets.iter().cloned());
    list
}

/// The prune guard from flags; the manifests are filled in at each reconcile.
pub fn prune_guard(args: &LiveArgs) -> PruneGuard {
    PruneGuard {
        max_deletions: args.max_deletions.0,
        manifests: None,
        here: None,
        allow_empty: args.allow_empty,
    }
}

/// Where member clusters come from, from flags.
pub fn fleet_options(args: &LiveArgs) -> FleetOptions {
    FleetOptions {
        cluster_secrets_namespace: args.clusters.clusters_from_secrets.clone(),
        contexts: args.clusters.member_contexts.clone(),
        all_contexts: args.clusters.all_contexts,
        kubeconfig: args.client.kubeconfig.clone(),
        hub_context: args.client.context.clone(),
    }
}

/// Client options from flags.
pub fn client_options(args: &ClientArgs) -> ClientOptions {
    ClientOptions {
        kubeconfig: args.kubeconfig.clone(),
        context: args.context.clone(),
        impersonate: args.impersonate.clone(),
    }
}

async fn apply_once(apply: &ApplyArgs, source: &ManifestSource) -> anyhow::Result<ExitCode> {
    let (args, dry_run) = (&apply.live, apply.dry_run);
    let connection = cluster::connect(&client_options(&args.client)).await?;
    let fleet = Fleet::new(connection, fleet_options(args));
    let options = ApplyOptions {
        instance: args.instance.clone(),
        dry_run,
        concurrency: apply.concurrency,
        // indicatif draws only on a terminal; CI logs stay quiet even under a pseudo-terminal.
        progress: std::env::var_os("CI").is_none(),
        adopt_eso: args.adopt_eso,
        adopt_existing: args.adopt_existing_targets,
        eso_stopped: args.eso_stopped,
        hub: None,
        prune: prune_guard(args),
        no_ces_external_secrets: args.no_ces_external_secrets,
        ..ApplyOptions::default()
    };
    let outcome = match reconcile_once(&fleet, source, &block_list(args), &options).await {
        Ok(outcome) => outcome,
        Err(ReconcileError::Load(errors)) => {
            return Ok(report_errors(
                errors.iter().map(ToString::to_string),
                "nothing was applied",
            ));
        }
        Err(ReconcileError::Cluster(e)) => {
            return Ok(report_errors([e.to_string()], "nothing was applied"));
        }
    };
    for warning in &outcome.warnings {
        tracing::warn!("{warning}");
    }
    if fleet.is_multi() {
        // One line per cluster, as the summary line: what happened where.
        for cluster in &outcome.clusters {
            eprintln!(
                "apply: cluster {}: {}; {} API requests",
                cluster.name,
                cluster.summary,
                fleet.requests_of(&cluster.name)
            );
        }
    }
    let report = &outcome.report;
    for (what, targets) in [
        ("created", &report.created),
        ("updated", &report.updated),
        ("adopted from External Secrets Operator", &report.adopted),
        ("deleted", &report.deleted),
    ] {
        for target in targets {
            // Member targets are named cluster/namespace/name; the hub's get its name too.
            let target = if fleet.is_multi() && target.matches('/').count() == 1 {
                format!("{}/{target}", courier::core::clusters::HOME_CLUSTER)
            } else {
                target.clone()
            };
            tracing::info!(target = target.as_str(), "{what}");
        }
    }
    if let [created, updated, deleted] = outcome.eso_objects
        && created + updated + deleted > 0
    {
        eprintln!(
            "apply: ExternalSecrets of ClusterExternalSecrets: {created} created, {updated} updated, {deleted} deleted"
        );
    }
    let dry = if dry_run {
        " (dry run: nothing stored)"
    } else {
        ""
    };
    let errors = outcome.error_lines();
    let summary = format!(
        "apply: {}; {} API requests{dry}",
        report.summary_with_errors(errors.len()),
        fleet.requests()
    );
    if errors.is_empty() {
        eprintln!("{summary}");
        Ok(ExitCode::SUCCESS)
    } else {
        let code = report_errors(errors, "every other target was reconciled");
        eprintln!("{summary}");
        Ok(code)
    }
}
