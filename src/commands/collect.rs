//! `courier collect`: the seeds' secret sync from member clusters into the hub, under
//! SecretCollection policies the platform team keeps (see `core::collect`).

use std::collections::BTreeSet;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use courier::core::collect::{self, Policy, Write};
use courier::core::load::load_paths;
use courier::core::world::BlockList;
use courier::live::cluster;
use courier::live::collect::{
    CollectOptions, collect_once, reachable_members, wait, watch_members,
};
use courier::live::fleet::{Fleet, FleetOptions};
use tokio::sync::Notify;

use super::apply::client_options;
use super::diff::DIFF_FAILED;
use super::{report_errors, write_stdout};
use crate::cli::CollectArgs;

/// Reads the policies, then runs one pass (or, with `--watch`, keeps running).
pub fn run(args: &CollectArgs) -> anyhow::Result<ExitCode> {
    let failed = if args.diff {
        ExitCode::from(DIFF_FAILED)
    } else {
        ExitCode::FAILURE
    };
    let policies = match policies(args) {
        Ok(policies) => policies,
        Err(errors) => {
            report_errors(errors, "nothing was collected");
            return Ok(failed);
        }
    };
    if args.clusters.clusters_from_secrets.is_none()
        && args.clusters.member_contexts.is_empty()
        && !args.clusters.all_contexts
    {
        report_errors(
            ["no member cluster is declared; hint: collect reads members from --clusters-from-secrets NAMESPACE (Argo CD's cluster Secrets), --member-context or --all-contexts".to_owned()],
            "nothing was collected",
        );
        return Ok(failed);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("failed to start the async runtime")?;
    runtime.block_on(async {
        let connection = cluster::connect(&client_options(&args.client)).await?;
        let fleet = Fleet::new(
            connection,
            FleetOptions {
                cluster_secrets_namespace: args.clusters.clusters_from_secrets.clone(),
                contexts: args.clusters.member_contexts.clone(),
                all_contexts: args.clusters.all_contexts,
                kubeconfig: args.client.kubeconfig.clone(),
                hub_context: args.client.context.clone(),
            },
        );
        let mut block_list = BlockList::default();
        block_list.names.extend(args.deny_secrets.iter().cloned());
        let options = CollectOptions {
            instance: args.instance.clone(),
            dry_run: args.dry_run,
            plan_only: args.diff,
            block_list,
        };
        if args.watch {
            keep_collecting(&fleet, &policies, &options, args).await
        } else {
            once(&fleet, &policies, &options, args.diff).await
        }
    })
}

/// The SecretCollection policies among the inputs; anything else is an error.
fn policies(args: &CollectArgs) -> Result<Vec<Policy>, Vec<String>> {
    let inputs = load_paths(&args.paths)
        .map_err(|errors| errors.iter().map(ToString::to_string).collect::<Vec<_>>())?;
    let mut errors = Vec::new();
    let eso = inputs.manifests.stores.len()
        + inputs.manifests.cluster_external_secrets.len()
        + inputs.manifests.external_secrets.len();
    if eso > 0 {
        errors.push(format!(
            "{eso} ESO objects among collect's inputs; hint: collect takes only SecretCollection policies (collect.courier.dev/v1alpha1); ESO manifests go to apply, run or render"
        ));
    }
    let (found, policy_errors) = collect::parse_policies(inputs.passthrough);
    errors.extend(policy_errors);
    if found.is_empty() && errors.is_empty() {
        errors.push("no SecretCollection in the inputs; hint: a policy names which clusters and which Secrets are collected (README: From many clusters to the hub)".into());
    }
    if errors.is_empty() {
        Ok(found)
    } else {
        Err(errors)
    }
}

/// One pass; the exit code says whether everything was collected (or, for `--diff`,
/// whether anything would change).
async fn once(
    fleet: &Fleet,
    policies: &[Policy],
    options: &CollectOptions,
    diff: bool,
) -> anyhow::Result<ExitCode> {
    let outcome = match collect_once(fleet, policies, options).await {
        Ok(outcome) => outcome,
        Err(error) => {
            report_errors([error.to_string()], "nothing was collected");
            return Ok(if diff {
                ExitCode::from(DIFF_FAILED)
            } else {
                ExitCode::FAILURE
            });
        }
    };
    for warning in &outcome.plan.warnings {
        tracing::warn!("{warning}");
    }
    if diff {
        let mut text = String::new();
        for write in &outcome.plan.writes {
            text.push_str(&diff_line(write));
            text.push('\n');
        }
        write_stdout(&text)?;
    } else {
        for done in &outcome.done {
            tracing::info!("{done}");
        }
    }
    let (puts, deletes) = outcome
        .plan
        .writes
        .iter()
        .fold((0, 0), |(p, d), w| match w {
            Write::Put { .. } => (p + 1, d),
            Write::Delete { .. } => (p, d + 1),
        });
    eprintln!(
        "collect: {} written, {} removed, {} unchanged, {} failed{}; {} API requests",
        puts,
        deletes,
        outcome.plan.unchanged,
        outcome.plan.failures.len(),
        if options.dry_run || diff {
            " (nothing was written)"
        } else {
            ""
        },
        fleet.requests()
    );
    if !outcome.plan.failures.is_empty() {
        return Ok(report_errors(
            outcome.plan.failures.iter().map(ToString::to_string),
            "the others were collected",
        )
        .min_code(diff));
    }
    Ok(if diff && !outcome.plan.writes.is_empty() {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

trait DiffCode {
    fn min_code(self, diff: bool) -> ExitCode;
}

impl DiffCode for ExitCode {
    /// `--diff`'s errors exit 2, as diff's do; 1 is drift.
    fn min_code(self, diff: bool) -> ExitCode {
        if diff {
            ExitCode::from(DIFF_FAILED)
        } else {
            self
        }
    }
}

fn diff_line(write: &Write) -> String {
    match write {
        Write::Put {
            verb,
            cluster,
            exists,
            ..
        } => {
            let sign = if *exists { "~" } else { "+" };
            let from = if cluster.is_empty() {
                String::new()
            } else {
                format!(" from cluster {cluster}")
            };
            format!("{sign} Secret {}{from} ({verb})", write.target())
        }
        Write::Delete { .. } => format!("- Secret {} (delete)", write.target()),
    }
}

/// `--watch`: a pass at start, on every change of a member's opted-in Secrets, and every
/// `--refresh`. A failing pass is logged and retried at the next wake-up.
async fn keep_collecting(
    fleet: &Fleet,
    policies: &[Policy],
    options: &CollectOptions,
    args: &CollectArgs,
) -> anyhow::Result<ExitCode> {
    let changed = Arc::new(Notify::new());
    let mut watched = BTreeSet::new();
    loop {
        let members = reachable_members(fleet).await;
        watch_members(&members, policies, &mut watched, &changed);
        match collect_once(fleet, policies, options).await {
            Ok(outcome) => {
                for done in &outcome.done {
                    tracing::info!("{done}");
                }
                for warning in &outcome.plan.warnings {
                    tracing::warn!("{warning}");
                }
                for failure in &outcome.plan.failures {
                    tracing::error!("{failure}");
                }
                tracing::info!(
                    written = outcome.done.len(),
                    unchanged = outcome.plan.unchanged,
                    failed = outcome.plan.failures.len(),
                    "collected"
                );
            }
            Err(error) => tracing::error!("collection pass failed: {error}"),
        }
        tokio::select! {
            () = wait(&changed, args.refresh, args.debounce) => {}
            () = terminated() => return Ok(ExitCode::SUCCESS),
        }
    }
}

/// SIGTERM (a Deployment's stop) or SIGINT.
async fn terminated() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("SIGTERM handler");
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}
