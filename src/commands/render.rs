//! `courier render`: manifests in, Secrets out on stdout.

use std::process::ExitCode;

use anyhow::Context as _;
use courier::output::{self, Values};
use courier::plan;

use super::{load_world, report_errors, write_stdout};
use crate::cli::RenderArgs;

/// Prints every Secret, or nothing at all when any target fails.
pub fn run(args: &RenderArgs) -> anyhow::Result<ExitCode> {
    let (inputs, world) = match load_world(&args.input) {
        Ok(loaded) => loaded,
        Err(code) => return Ok(code),
    };
    let plan = plan::plan(&inputs.manifests, &world);
    if !plan.errors.is_empty() {
        return Ok(report_errors(
            plan.errors.iter().map(ToString::to_string),
            "nothing was rendered",
        ));
    }
    tracing::info!(secrets = plan.secrets.len(), "rendered");
    let values = if args.redact {
        Values::Redact
    } else {
        Values::Reveal
    };
    write_stdout(&output::render(&plan.secrets, args.format, values))
        .context("failed to write to stdout")?;
    Ok(ExitCode::SUCCESS)
}
