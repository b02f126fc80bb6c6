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
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(
            std::env::var_os("NO_COLOR").is_none()
                && std::io::IsTerminal::is_terminal(&std::io::stderr()),
        );
    match format {
        LogFormat::Plain => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
