//! `courier check`: every validation that needs no secret value.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::process::ExitCode;

use anyhow::Context as _;
use courier::core::plan;

use super::{load_world, report_errors, unselected, write_stdout};
use crate::cli::CheckArgs;

/// Lists the targets on stdout (no values), errors on stderr.
pub fn run(args: &CheckArgs) -> anyhow::Result<ExitCode> {
    let (inputs, world) = match load_world(&args.input, args.namespace.as_deref()) {
        Ok(loaded) => loaded,
        Err(code) => return Ok(code),
    };
    // Collection policies are checked as strictly as ESO objects (other passed-through
    // kinds are not courier's to judge).
    let policy_objects: Vec<_> = inputs
        .passthrough
        .iter()
        .filter(|l| {
            courier::core::collect::is_policy(
                l.object["apiVersion"].as_str().unwrap_or_default(),
                l.object["kind"].as_str().unwrap_or_default(),
            )
        })
        .cloned()
        .collect();
    let policy_count = policy_objects.len();
    let (_, policy_errors) = super::collect::parse_policies(policy_objects);
    if !policy_errors.is_empty() {
        return Ok(report_errors(policy_errors, "check failed"));
    }
    let report = plan::check(&inputs.manifests, &world, &courier::providers::Registry);
    if !report.errors.is_empty() {
        return Ok(report_errors(
            super::located(&report.errors),
            "check failed",
        ));
    }
    let owners: BTreeSet<&str> = report.targets.iter().map(|t| t.owner.as_str()).collect();
    let unselected = if world.namespaces.is_empty() {
        Vec::new()
    } else {
        unselected(&inputs, &world, &owners)
    };
    if args.strict && !unselected.is_empty() {
        return Ok(report_errors(unselected, "check failed"));
    }
    let widths = report.targets.iter().fold((9, 4, 4), |(n, s, t), target| {
        (
            n.max(target.namespace.len()),
            s.max(target.name.len()),
            t.max(target.type_.len()),
        )
    });
    let mut table = format!(
        "{:<w0$}  {:<w1$}  {:<w2$}  OWNER\n",
        "NAMESPACE",
        "NAME",
        "TYPE",
        w0 = widths.0,
        w1 = widths.1,
        w2 = widths.2
    );
    for target in &report.targets {
        let _ = writeln!(
            table,
            "{:<w0$}  {:<w1$}  {:<w2$}  {}",
            target.namespace,
            target.name,
            target.type_,
            target.owner,
            w0 = widths.0,
            w1 = widths.1,
            w2 = widths.2
        );
    }
    write_stdout(&table).context("failed to write to stdout")?;
    let namespaces: BTreeSet<&str> = report
        .targets
        .iter()
        .map(|t| t.namespace.as_str())
        .collect();
    let cluster_external_secrets = &inputs.manifests.cluster_external_secrets;
    if world.namespaces.is_empty() && !cluster_external_secrets.is_empty() {
        eprintln!(
            "note: the inputs hold no Namespace, so no ClusterExternalSecret selected any namespace and none of their targets, sources or templates was checked\nhint: add the Namespaces with their labels (kubectl get namespaces -o yaml > namespaces.yaml) to check them"
        );
    } else {
        for warning in &unselected {
            eprintln!("warning: {warning}");
        }
    }
    eprintln!(
        "ok: {} ClusterExternalSecrets, {} ExternalSecrets, {} target Secrets in {} namespaces{}",
        cluster_external_secrets.len(),
        inputs.manifests.external_secrets.len(),
        report.targets.len(),
        namespaces.len(),
        if policy_count > 0 {
            format!("; {policy_count} SecretCollections (for `courier collect`)")
        } else {
            String::new()
        }
    );
    Ok(ExitCode::SUCCESS)
}
