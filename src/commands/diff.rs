//! `courier diff --live`: exit 0 when the cluster matches, 2 on drift, 1 on error.

use std::process::ExitCode;

use anyhow::Context as _;
use courier::core::load::load_paths;
use courier::core::plan;
use courier::live::cluster;
use courier::live::diff;

use super::apply::{block_list, client_options, manifest_source};
use super::{report_errors, write_stdout};
use crate::cli::DiffArgs;

/// Prints the changes on stdout (values redacted) and a summary on stderr.
pub fn run(args: &DiffArgs) -> anyhow::Result<ExitCode> {
    let live = &args.live;
    if live.from_cluster {
        return Ok(report_errors(["diff compares manifest files with the cluster; --from-cluster has no files to compare".to_owned()], "nothing was compared"));
    }
    if let Err(code) = manifest_source(live) {
        return Ok(code);
    }
    let inputs = match load_paths(&live.paths) {
        Ok(inputs) => inputs,
        Err(errors) => {
            return Ok(report_errors(
                errors.iter().map(ToString::to_string),
                "nothing was compared",
            ));
        }
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("failed to start the async runtime")?;
    runtime.block_on(async {
        let connection = cluster::connect(&client_options(&live.client)).await?;
        let mut snapshot =
            match cluster::snapshot(&connection.client, &inputs.manifests, &block_list(live)).await
            {
                Ok(snapshot) => snapshot,
                Err(e) => return Ok(report_errors([e.to_string()], "nothing was compared")),
            };
        let remote = plan::remote_requests(
            &inputs.manifests,
            &snapshot.world,
            &courier::providers::Registry,
        );
        if !remote.stores.is_empty() {
            courier::providers::prefetch(&remote, &mut snapshot.world, &connection.fetch).await;
        }
        let plan = plan::plan(
            &inputs.manifests,
            &snapshot.world,
            &courier::providers::Registry,
        );
        let decisions = courier::live::apply::decide(
            &connection.client,
            &plan,
            &snapshot,
            &live.instance,
            live.adopt_eso,
        )
        .await;
        let (text, drift) = diff::render(&decisions, &snapshot, &live.instance);
        write_stdout(&text).context("failed to write to stdout")?;
        let summary = format!(
            "diff: {} to create, {} to update, {} to remove, {} in sync",
            drift.create, drift.update, drift.remove, drift.unchanged
        );
        let errors: Vec<String> = super::located(&plan.errors)
            .into_iter()
            .chain(decisions.errors.iter().map(ToString::to_string))
            .collect();
        if !errors.is_empty() {
            let code = report_errors(errors, "the diff above leaves these out");
            eprintln!("{summary}");
            return Ok(code);
        }
        eprintln!("{summary}");
        Ok(if drift.any() {
            ExitCode::from(2)
        } else {
            ExitCode::SUCCESS
        })
    })
}
