//! `courier run`: the long-running controller.

use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Context as _;
use courier::live::apply::ApplyOptions;
use courier::live::cluster;
use courier::live::controller::{self, RunOptions};

use super::apply::{block_list, client_options, manifest_source};
use crate::cli::RunArgs;

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
        },
        block_list: block_list(&args.live),
        refresh: args.refresh,
        debounce: args.debounce,
        metrics_addr,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("failed to start the async runtime")?;
    runtime.block_on(async {
        let connection = cluster::connect(&client_options(&args.live.client)).await?;
        controller::run(connection, options).await
    })?;
    Ok(ExitCode::SUCCESS)
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
