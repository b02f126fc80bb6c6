//! `courier check`: every validation that prints no secret value. Without a world (the
//! default, files) it checks what needs no namespace and no value; `--world cluster`
//! also resolves selectors, stores and source keys against the live cluster.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::process::ExitCode;

use anyhow::Context as _;
use courier::core::load::{Inputs, LoadOptions, load_paths_partial_with};
use courier::core::plan::{self, PlannedTarget};
use courier::core::world::{BlockList, World};
use courier::live::cluster;

use super::apply::client_options;
use super::{load_world, report_errors, unselected, write_stdout};
use crate::cli::{CheckArgs, WorldSource};

/// Lists the targets on stdout (no values), errors on stderr.
pub fn run(args: &CheckArgs) -> anyhow::Result<ExitCode> {
    if args.world == WorldSource::Cluster {
        return cluster_world(args);
    }
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
    let (_, policy_errors) = courier::core::collect::parse_policies(policy_objects);
    if !policy_errors.is_empty() {
        return Ok(report_errors(policy_errors, "check failed"));
    }
    let report = plan::check(&inputs.manifests, &world, &courier::providers::Registry);
    let errors = super::located(&report.errors);
    // A repository of ESO manifests whose stores live in the cluster: told what was not
    // checked, and how to check it.
    let no_stores = plan::stores_absent(&inputs.manifests, &world);
    let has_manifests = !inputs.manifests.external_secrets.is_empty()
        || !inputs.manifests.cluster_external_secrets.is_empty();
    let note = (no_stores && has_manifests).then_some(
        "note: the inputs hold no SecretStore or ClusterSecretStore, so no store reference, source or key was checked\nhint: check --world cluster resolves them against the cluster (the stores of the files, else the cluster's)",
    );
    finish(args, &inputs, &world, report.targets, errors, note)
}

/// Prints the targets, or the errors, and the summary: what both worlds share.
fn finish(
    args: &CheckArgs,
    inputs: &Inputs,
    world: &World,
    targets: Vec<PlannedTarget>,
    errors: Vec<String>,
    note: Option<&str>,
) -> anyhow::Result<ExitCode> {
    if !errors.is_empty() {
        return Ok(report_errors(errors, "check failed"));
    }
    let owners: BTreeSet<&str> = targets.iter().map(|t| t.owner.as_str()).collect();
    let unselected = if world.namespaces.is_empty() {
        Vec::new()
    } else {
        unselected(inputs, world, &owners)
    };
    if args.strict && !unselected.is_empty() {
        return Ok(report_errors(unselected, "check failed"));
    }
    let widths = targets.iter().fold((9, 4, 4), |(n, s, t), target| {
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
    for target in &targets {
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
    let namespaces: BTreeSet<&str> = targets.iter().map(|t| t.namespace.as_str()).collect();
    let cluster_external_secrets = &inputs.manifests.cluster_external_secrets;
    if world.namespaces.is_empty() && !cluster_external_secrets.is_empty() {
        eprintln!(
            "note: the inputs hold no Namespace, so no ClusterExternalSecret selected any namespace; each was checked for what needs none (its spec, template syntax and a ClusterSecretStore it names), not its targets, sources or keys\nhint: add the Namespaces with their labels (kubectl get namespaces -o yaml > namespaces.yaml), or run check --world cluster"
        );
    } else {
        for warning in &unselected {
            eprintln!("warning: {warning}");
        }
    }
    if let Some(note) = note {
        eprintln!("{note}");
    }
    eprintln!(
        "ok: {} ClusterExternalSecrets, {} ExternalSecrets, {} target Secrets in {} namespaces",
        cluster_external_secrets.len(),
        inputs.manifests.external_secrets.len(),
        targets.len(),
        namespaces.len()
    );
    Ok(ExitCode::SUCCESS)
}

/// `check --world cluster`: the cluster's namespaces, the stores of the files (else the
/// cluster's), and the sources each store's identity reads, as `render --world cluster`
/// reads them; every target is rendered in memory and dropped, so a missing source, key
/// or template variable is found, and no value is printed.
fn cluster_world(args: &CheckArgs) -> anyhow::Result<ExitCode> {
    let options = LoadOptions {
        default_namespace: args.namespace.clone(),
    };
    let (mut inputs, errors) = load_paths_partial_with(&args.input.paths, &options);
    if !errors.is_empty() {
        let lines = errors
            .into_iter()
            .chain(super::refused_errors(&inputs))
            .map(|e| e.to_string());
        return Ok(report_errors(lines, "check failed"));
    }
    let ignored = inputs.namespaces.len() + inputs.secrets.len() + inputs.config_maps.len();
    if ignored > 0 {
        tracing::warn!(
            "{ignored} Namespaces, Secrets and ConfigMaps in the input are ignored: --world cluster reads them from the cluster"
        );
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("failed to start the async runtime")?;
    let read = runtime.block_on(async {
        let connection = cluster::connect(&client_options(&args.client)).await?;
        let mut store_errors = Vec::new();
        if plan::stores_absent(&inputs.manifests, &World::default()) {
            let (stores, errors) =
                courier::live::eso::stores_from_cluster(&connection.client).await?;
            let refused = stores
                .manifests
                .refused
                .iter()
                .flat_map(|r| r.errors.iter().cloned());
            store_errors = super::render::referenced_store_errors(
                &inputs,
                errors.into_iter().chain(refused).collect(),
            );
            inputs.manifests.stores = stores.manifests.stores;
        }
        let snapshot =
            cluster::snapshot(&connection.client, &inputs.manifests, &BlockList::default()).await?;
        let mut world = snapshot.world;
        let remote =
            plan::remote_requests(&inputs.manifests, &world, &courier::providers::Registry);
        if !remote.stores.is_empty() {
            courier::providers::prefetch(&remote, &mut world, &connection.fetch).await;
        }
        Ok::<_, anyhow::Error>((world, store_errors))
    });
    let (world, store_errors) = match read {
        Ok(read) => read,
        Err(e) => return Ok(report_errors([format!("{e:#}")], "check failed")),
    };
    let plan = plan::plan(&inputs.manifests, &world, &courier::providers::Registry);
    let targets = plan
        .secrets
        .iter()
        .map(|secret| PlannedTarget {
            namespace: secret.namespace.clone(),
            name: secret.name.clone(),
            type_: secret.body.type_.clone(),
            owner: secret.owner.to_string(),
        })
        .collect();
    let errors = store_errors
        .into_iter()
        .chain(super::located(&plan.errors))
        .collect();
    finish(args, &inputs, &world, targets, errors, None)
}
