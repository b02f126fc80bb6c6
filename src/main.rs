//! The `courier` binary: parses arguments and dispatches; the work is in the library.

mod cli;
mod commands;

use std::process::ExitCode;

use clap::Parser as _;
use tracing_subscriber::EnvFilter;

use cli::{Cli, Command, LogFormat};

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_format, &cli.log_level);
    courier::providers::aws::allow_ambient_credentials_for_secret_stores(
        cli.aws_ambient_credentials,
    );
    let result = match &cli.command {
        Command::Render(args) => commands::render::run(args),
        Command::Check(args) => commands::check::run(args),
        Command::Apply(args) => commands::apply::run(args),
        Command::Run(args) => commands::run::run(args),
        Command::Diff(args) => commands::diff::run(args),
        Command::Discover(args) => commands::discover::run(args),
        Command::Collect(args) => commands::collect::run(args),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            match cli.command {
                // diff's 1 means drift (as kubectl diff's); its errors are above 1.
                Command::Diff(_) => ExitCode::from(commands::diff::DIFF_FAILED),
                Command::Collect(ref args) if args.diff => {
                    ExitCode::from(commands::diff::DIFF_FAILED)
                }
                _ => ExitCode::FAILURE,
            }
        }
    }
}

fn init_logging(format: LogFormat, filter: &str) {
    use tracing_subscriber::prelude::*;
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("warn"));
    // Other crates' debug and trace events may quote what they send and receive (the
    // Kubernetes client logs an API server's refusal as it came, value and all), so they
    // stop at info whatever the filter says; courier's own events follow it.
    let own_or_info = tracing_subscriber::filter::filter_fn(|meta| {
        meta.target().starts_with("courier") || *meta.level() <= tracing::Level::INFO
    });
    let ansi = std::env::var_os("NO_COLOR").is_none()
        && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    let registry = tracing_subscriber::registry().with(filter);
    match format {
        LogFormat::Plain => registry.with(layer.with_filter(own_or_info)).init(),
        LogFormat::Json => registry.with(layer.json().with_filter(own_or_info)).init(),
    }
}
