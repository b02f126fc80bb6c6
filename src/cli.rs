//! Command-line arguments. Each subcommand maps onto one way courier is run.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use courier::output::Format;

/// Distributes Kubernetes Secrets from a central namespace, reading External Secrets
/// Operator manifests (ClusterExternalSecret, ExternalSecret, stores), without an operator.
#[derive(Debug, Parser)]
#[command(name = "courier", version, about, propagate_version = true)]
pub struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Plain, env = "COURIER_LOG_FORMAT")]
    pub log_format: LogFormat,
    /// Log filter (tracing syntax: `warn`, `courier=debug`, ...). Logs never hold secret values.
    #[arg(long, global = true, default_value = "warn", env = "COURIER_LOG")]
    pub log_level: String,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Render the target Secrets from manifests and print them (GitOps, Argo CD plugin).
    Render(RenderArgs),
    /// Validate manifests without reading any secret value; list the targets (CI).
    Check(InputArgs),
}

/// Where manifests come from.
#[derive(Debug, Args)]
pub struct InputArgs {
    /// Files, directories (recursive: *.yaml, *.yml, *.json) or `-` for stdin.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
}

/// `courier render`.
#[derive(Debug, Args)]
pub struct RenderArgs {
    /// Inputs.
    #[command(flatten)]
    pub input: InputArgs,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Format::Yaml)]
    pub format: Format,
    /// Replace every value with `*** REDACTED ***` (safe for logs and PR comments).
    #[arg(long)]
    pub redact: bool,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Plain,
    /// One JSON object per line.
    Json,
}
