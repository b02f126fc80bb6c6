//! `courier diff --live`: exit 0 when the cluster matches, 1 on drift, 2 on error, as
//! `kubectl diff` does (so a usage error, which clap exits with 2, never reads as drift).

use std::process::ExitCode;

use anyhow::Context as _;
use courier::core::load::load_paths_partial;
use courier::live::apply::ApplyOptions;
use courier::live::cluster;
use courier::live::diff;
use courier::live::fleet::Fleet;
use courier::live::reconcile::plan_fleet;

use super::apply::{block_list, client_options, fleet_options, manifest_source};
use super::{report_errors, write_stdout};
use crate::cli::DiffArgs;

/// Prints the errors as every command does; the code is diff's own.
fn failed(errors: impl IntoIterator<Item = String>, consequence: &str) -> ExitCode {
    report_errors(errors, consequence);
    ExitCode::from(DIFF_FAILED)
}

/// The exit code of a diff that could not be made in full (`kubectl diff`'s "above 1").
pub const DIFF_FAILED: u8 = 2;
/// The exit code of a diff that found changes.
const DRIFT: u8 = 1;

/// Prints the changes on stdout (values redacted) and a summary on stderr.
pub fn run(args: &DiffArgs) -> anyhow::Result<ExitCode> {
    let live = &args.live;
    // With --from-cluster the manifests are the cluster's ESO objects, read below.
    let from_files = if live.from_cluster {
        None
    } else {
        if manifest_source(live).is_err() {
            return Ok(ExitCode::from(DIFF_FAILED));
        }
        // A refused ESO object is its own targets' error, in the plan below; the rest is
        // compared.
        match load_paths_partial(&live.paths) {
            (inputs, errors) if errors.is_empty() => Some(inputs),
            (_, errors) => {
                return Ok(failed(
                    errors.iter().map(ToString::to_string),
                    "nothing was compared",
                ));
            }
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("failed to start the async runtime")?;
    runtime.block_on(async {
        let connection = cluster::connect(&client_options(&live.client)).await?;
        let inputs = match from_files {
            Some(inputs) => inputs,
            None => match courier::live::eso::manifests_from_cluster(&connection.client).await {
                Ok((mut inputs, objects, errors)) if errors.is_empty() => {
                    // As run and apply plan it: a ClusterExternalSecret fails a namespace
                    // where another owner's ExternalSecret has its ExternalSecret's name.
                    courier::live::eso_objects::note_controlled(&mut inputs.manifests, &objects);
                    inputs
                }
                Ok((_, _, errors)) => {
                    return Ok(failed(
                        errors.iter().map(ToString::to_string),
                        "nothing was compared",
                    ));
                }
                Err(e) => return Ok(failed([e.to_string()], "nothing was compared")),
            },
        };
        let fleet = Fleet::new(connection, fleet_options(live));
        let options = ApplyOptions {
            instance: live.instance.clone(),
            adopt_eso: live.adopt_eso,
            adopt_existing: live.adopt_existing_targets,
            eso_stopped: live.eso_stopped,
            prune: super::apply::prune_guard(live),
            // A due refresh of a target whose template varies is a rotation, not drift.
            refresh_when_due: false,
            ..ApplyOptions::default()
        };
        let fleet_plan =
            match plan_fleet(&fleet, &inputs.manifests, &block_list(live), &options).await {
                Ok(plan) => plan,
                Err(e) => return Ok(failed([e.to_string()], "nothing was compared")),
            };
        let mut text = String::new();
        let mut drift = diff::Drift::default();
        let mut errors: Vec<String> = fleet_plan
            .failures
            .iter()
            .map(ToString::to_string)
            .collect();
        let refused: std::collections::BTreeSet<&str> = inputs
            .manifests
            .refused
            .iter()
            .map(|r| r.object.as_str())
            .collect();
        let mut told = std::collections::HashSet::new();
        for cluster in &fleet_plan.clusters {
            let decisions = courier::live::apply::decide(
                &cluster.member.connection.client,
                &cluster.plan,
                &cluster.snapshot,
                &cluster.options,
                courier::live::apply::TakenNames::Listed,
            )
            .await;
            // With member clusters every change names its cluster.
            let name = fleet
                .is_multi()
                .then_some(cluster.member.member.name.as_str());
            for warning in &decisions.warnings {
                tracing::warn!(
                    "{}{warning}",
                    name.map(|n| format!("cluster {n}: ")).unwrap_or_default()
                );
            }
            let (cluster_text, cluster_drift) =
                diff::render(&decisions, &cluster.snapshot, &live.instance, name);
            text.push_str(&cluster_text);
            drift.create += cluster_drift.create;
            drift.update += cluster_drift.update;
            drift.remove += cluster_drift.remove;
            drift.unchanged += cluster_drift.unchanged;
            let prefix = name.map(|n| format!("cluster {n}: ")).unwrap_or_default();
            // A refused object fails in every cluster (each keeps its targets); told once.
            let plan_errors: Vec<_> = cluster
                .plan
                .errors
                .iter()
                .filter(|e| {
                    let everywhere = refused.contains(e.object.as_str())
                        || fleet_plan.picks_no_cluster.contains(&e.object);
                    !everywhere || told.insert(e.to_string())
                })
                .cloned()
                .collect();
            errors.extend(
                super::located(&plan_errors)
                    .into_iter()
                    .chain(decisions.errors.iter().map(ToString::to_string))
                    .chain(decisions.blocked.iter().cloned())
                    .map(|e| format!("{prefix}{e}")),
            );
        }
        write_stdout(&text).context("failed to write to stdout")?;
        let summary = format!(
            "diff: {} to create, {} to update, {} to remove, {} in sync",
            drift.create, drift.update, drift.remove, drift.unchanged
        );
        if !errors.is_empty() {
            let code = failed(errors, "the diff above leaves these out");
            eprintln!("{summary}");
            return Ok(code);
        }
        eprintln!("{summary}");
        Ok(if drift.any() {
            ExitCode::from(DRIFT)
        } else {
            ExitCode::SUCCESS
        })
    })
}
