//! `courier run`: the long-running controller.

use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Context as _;
use courier::live::apply::ApplyOptions;
use courier::live::cluster;
use courier::live::controller::{self, RunOptions};
use courier::live::leader::{self, LeaderConfig};

use courier::live::fleet::Fleet;

use super::apply::{block_list, client_options, fleet_options, manifest_source};
use crate::cli::{LeaderArgs, RunArgs};

/// Runs until SIGTERM; manifests that do not load at start are an error, later ones are logged.
pub fn run(args: &RunArgs) -> anyhow::Result<ExitCode> {
    let source = match manifest_source(&args.live) {
        Ok(source) => source,
        Err(code) => return Ok(code),
    };
    let metrics_addr = parse_addr(&args.metrics_addr)?;
    let options = RunOptions {
        source,
        apply: ApplyOptions {
            instance: args.live.instance.clone(),
            dry_run: false,
            concurrency: args.concurrency,
            // A controller logs; a bar would interleave with the log lines.
            progress: false,
            adopt_eso: args.live.adopt_eso,
            adopt_existing: args.live.adopt_existing_targets,
            eso_stopped: args.live.eso_stopped,
            hub: None,
            prune: super::apply::prune_guard(&args.live),
            no_ces_external_secrets: args.live.no_ces_external_secrets,
            ..ApplyOptions::default()
        },
        block_list: block_list(&args.live),
        refresh: args.refresh,
        debounce: args.debounce,
        metrics_addr,
        leader: leader_config(&args.leader)?,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("failed to start the async runtime")?;
    runtime.block_on(async {
        let fence = match options.leader {
            Some(_) => leader::new_fence(),
            None => leader::Fence::always_open(),
        };
        let connection = cluster::connect_fenced(&client_options(&args.live.client), fence).await?;
        let fleet = Fleet::new(connection, fleet_options(&args.live));
        controller::run(fleet, options).await
    })?;
    Ok(ExitCode::SUCCESS)
}

/// Where the service account's namespace is mounted in a pod.
const POD_NAMESPACE_FILE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

fn leader_config(args: &LeaderArgs) -> anyhow::Result<Option<LeaderConfig>> {
    if !args.leader_elect {
        return Ok(None);
    }
    let namespace = match &args.leader_elect_namespace {
        Some(namespace) => namespace.clone(),
        None => std::env::var("POD_NAMESPACE")
            .ok()
            .filter(|n| !n.is_empty())
            .or_else(|| {
                std::fs::read_to_string(POD_NAMESPACE_FILE)
                    .ok()
                    .map(|n| n.trim().to_owned())
            })
            .filter(|n| !n.is_empty())
            .context(
                "--leader-elect needs the Lease's namespace: not in a pod and POD_NAMESPACE is not set\nhint: pass --leader-elect-namespace NAMESPACE",
            )?,
    };
    // The pod name tells people which replica leads; the suffix keeps two processes of
    // one pod (or a restarted one) apart.
    let host = std::env::var("POD_NAME")
        .or_else(|_| std::env::var("HOSTNAME"))
        .unwrap_or_else(|_| "courier".to_owned());
    let mut suffix = [0u8; 4];
    getrandom::fill(&mut suffix)
        .map_err(|e| anyhow::anyhow!("no randomness for the leader identity: {e}"))?;
    let suffix: String = suffix.iter().map(|b| format!("{b:02x}")).collect();
    let config = LeaderConfig {
        namespace,
        name: args.leader_elect_lease_name.clone(),
        identity: format!("{host}_{suffix}"),
        lease_duration: args.leader_elect_lease_duration,
        renew_deadline: args.leader_elect_renew_deadline,
        retry_period: args.leader_elect_retry_period,
    };
    config.validate()?;
    Ok(Some(config))
}

/// `:8080` means every interface, as Go programs (and Kubernetes manifests) write it.
fn parse_addr(text: &str) -> anyhow::Result<Option<SocketAddr>> {
    if text.is_empty() || text == "off" {
        return Ok(None);
    }
    let full = if text.starts_with(':') {
        format!("0.0.0.0{text}")
    } else {
        text.to_owned()
    };
    full.parse().map(Some).with_context(|| {
        format!("--metrics-addr {text:?} is not an address like :8080 or 127.0.0.1:8080")
    })
}
