//! `courier apply`: one reconcile against the live cluster.

use std::process::ExitCode;

use anyhow::Context as _;
use courier::apply::{self, ApplyOptions};
use courier::cluster::{self, ClientOptions};
use courier::load::{Inputs, load_paths};
use courier::plan;
use courier::world::BlockList;

use super::report_errors;
use crate::cli::{ApplyArgs, ClientArgs, LiveArgs};

/// Applies once; exits non-zero when any manifest or target failed.
pub fn run(args: &ApplyArgs) -> anyhow::Result<ExitCode> {
    let inputs = match load_manifests(&args.live) {
        Ok(inputs) => inputs,
        Err(code) => return Ok(code),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("failed to start the async runtime")?;
    runtime.block_on(apply_once(&args.live, &inputs, args.dry_run))
}

/// Loads the manifests; world objects in the files are ignored, the cluster has the real ones.
pub fn load_manifests(args: &LiveArgs) -> Result<Inputs, ExitCode> {
    let inputs = load_paths(&args.input.paths).map_err(|errors| {
        report_errors(
            errors.iter().map(ToString::to_string),
            "nothing was applied",
        )
    })?;
    let ignored = inputs.namespaces.len() + inputs.secrets.len() + inputs.config_maps.len();
    if ignored > 0 {
        tracing::info!(
            ignored,
            "Namespaces, Secrets and ConfigMaps in the input are ignored: live mode reads them from the cluster"
        );
    }
    Ok(inputs)
}

/// The block list from flags.
pub fn block_list(args: &LiveArgs) -> BlockList {
    let mut list = BlockList::default();
    list.names.extend(args.deny_secrets.iter().cloned());
    list
}

/// Client options from flags.
pub fn client_options(args: &ClientArgs) -> ClientOptions {
    ClientOptions {
        kubeconfig: args.kubeconfig.clone(),
        context: args.context.clone(),
        impersonate: args.impersonate.clone(),
    }
}

async fn apply_once(args: &LiveArgs, inputs: &Inputs, dry_run: bool) -> anyhow::Result<ExitCode> {
    let connection = cluster::connect(&client_options(&args.client)).await?;
    let snapshot =
        match cluster::snapshot(&connection.client, &inputs.manifests, &block_list(args)).await {
            Ok(snapshot) => snapshot,
            Err(e) => return Ok(report_errors([e.to_string()], "nothing was applied")),
        };
    let plan = plan::plan(&inputs.manifests, &snapshot.world);
    let options = ApplyOptions {
        instance: args.instance.clone(),
        dry_run,
        concurrency: args.concurrency,
    };
    let report = apply::reconcile(&connection.client, &plan, &snapshot, &options).await;
    for target in &report.created {
        tracing::info!(target = target.as_str(), "created");
    }
    for target in &report.updated {
        tracing::info!(target = target.as_str(), "updated");
    }
    for target in &report.deleted {
        tracing::info!(target = target.as_str(), "deleted");
    }
    let dry = if dry_run {
        " (dry run: nothing stored)"
    } else {
        ""
    };
    let summary = format!(
        "apply: {}; {} API requests{dry}",
        report.summary(),
        connection.requests()
    );
    let errors: Vec<String> = plan
        .errors
        .iter()
        .map(ToString::to_string)
        .chain(report.errors.iter().cloned())
        .collect();
    if errors.is_empty() {
        eprintln!("{summary}");
        Ok(ExitCode::SUCCESS)
    } else {
        let code = report_errors(errors, "every other target was reconciled");
        eprintln!("{summary}");
        Ok(code)
    }
}
