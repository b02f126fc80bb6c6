//! `courier render`: manifests in, Secrets (and, with `--passthrough`, everything else) out
//! on stdout. With `--argocd` it is Argo CD's Config Management Plugin `generate` command.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::process::ExitCode;

use anyhow::Context as _;
use courier::core::load::{LoadOptions, load_paths_partial_with};
use courier::core::output::{self, Document, Values};
use courier::core::plan;
use courier::core::world::{BlockList, World};
use courier::live::cluster;
use courier::providers::FetchContext;

use super::apply::client_options;
use super::{unselected, write_stdout};
use crate::cli::{RenderArgs, WorldSource};

/// The settings a render runs with, after Argo CD's environment is applied.
struct Settings {
    passthrough: bool,
    instance: Option<String>,
    namespace: Option<String>,
    allow_empty: bool,
    world: WorldSource,
    one_line_errors: bool,
}

/// Prints every object, or nothing at all when anything fails.
pub fn run(args: &RenderArgs) -> anyhow::Result<ExitCode> {
    let settings = match settings(args) {
        Ok(settings) => settings,
        Err(message) => return Ok(fail(vec![message], args.argocd)),
    };
    match render(args, &settings)? {
        Ok(text) => {
            write_stdout(&text).context("failed to write to stdout")?;
            Ok(ExitCode::SUCCESS)
        }
        Err(errors) => Ok(fail(errors, settings.one_line_errors)),
    }
}

fn render(args: &RenderArgs, settings: &Settings) -> anyhow::Result<Result<String, Vec<String>>> {
    let options = LoadOptions {
        default_namespace: settings.namespace.clone(),
    };
    let (inputs, mut errors) = load_paths_partial_with(&args.input.paths, &options);
    let mut errors: Vec<String> = errors.drain(..).map(|e| e.to_string()).collect();
    // One runtime serves the cluster world and the remote stores, so a live world's
    // stores fetch with the connection they were listed with.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("failed to start the async runtime")?;
    let (world, fetch) = match settings.world {
        WorldSource::Files => {
            let world = World::from_inputs(&inputs).unwrap_or_else(|world_errors| {
                errors.extend(world_errors.iter().map(ToString::to_string));
                World::default()
            });
            (world, FetchContext::default())
        }
        WorldSource::Cluster if errors.is_empty() => {
            let snapshot = runtime.block_on(async {
                let connection = cluster::connect(&client_options(&args.client)).await?;
                cluster::snapshot(&connection.client, &inputs.manifests, &BlockList::default())
                    .await
                    .map(|snapshot| (snapshot.world, connection.fetch))
            });
            match snapshot {
                Ok(world_and_fetch) => world_and_fetch,
                Err(e) => return Ok(Err(vec![e.to_string()])),
            }
        }
        WorldSource::Cluster => (World::default(), FetchContext::default()),
    };
    if !errors.is_empty() {
        return Ok(Err(errors));
    }
    let mut world = world;
    let remote = plan::remote_requests(&inputs.manifests, &world, &courier::providers::Registry);
    if !remote.stores.is_empty() {
        runtime.block_on(courier::providers::prefetch(&remote, &mut world, &fetch));
    }
    let plan = plan::plan(&inputs.manifests, &world, &courier::providers::Registry);
    errors.extend(super::located(&plan.errors));
    // The namespaces stores read (sources and credentials): their Secrets, and the
    // Namespaces themselves, are inputs of the render, never outputs, or a GitOps tool
    // would apply and own the master Secrets in every app that includes them.
    let store_namespaces =
        plan::watched_namespaces(&inputs.manifests, &courier::providers::Registry, false);
    let is_input = |value: &serde_json::Value| {
        let core = value["apiVersion"] == "v1";
        let namespace = value
            .pointer("/metadata/namespace")
            .and_then(|v| v.as_str());
        let name = value.pointer("/metadata/name").and_then(|v| v.as_str());
        (core
            && value["kind"] == "Secret"
            && namespace.is_some_and(|n| store_namespaces.contains(n)))
            || (core
                && value["kind"] == "Namespace"
                && name.is_some_and(|n| store_namespaces.contains(n)))
    };
    let passthrough: Vec<serde_json::Value> = if settings.passthrough {
        inputs
            .passthrough
            .iter()
            .map(|p| p.object.clone())
            .filter(|value| !is_input(value))
            .collect()
    } else {
        Vec::new()
    };
    let rendered: BTreeSet<(&str, &str)> = plan
        .secrets
        .iter()
        .map(|s| (s.namespace.as_str(), s.name.as_str()))
        .collect();
    for object in inputs.passthrough.iter().filter(|_| settings.passthrough) {
        let value = &object.object;
        let key = (
            value
                .pointer("/metadata/namespace")
                .and_then(|v| v.as_str())
                .unwrap_or_default(),
            value
                .pointer("/metadata/name")
                .and_then(|v| v.as_str())
                .unwrap_or_default(),
        );
        if value["kind"] == "Secret" && value["apiVersion"] == "v1" && rendered.contains(&key) {
            errors.push(format!(
                "{}: Secret/{}/{}: also rendered by courier; remove one of them",
                object.origin, key.0, key.1
            ));
        }
    }
    if !errors.is_empty() {
        return Ok(Err(errors));
    }
    if plan.secrets.is_empty() && passthrough.is_empty() && !settings.allow_empty {
        return Ok(Err(vec![
            "nothing to print: no Secret was rendered and no other object was given; \
             an empty result would make a GitOps tool prune everything (pass --allow-empty if that is intended)"
                .into(),
        ]));
    }
    // Outside Argo CD (whose stderr must stay empty on success), a manifest that selects
    // nothing is worth a warning: a label typo otherwise renders one Secret fewer, silently.
    if !settings.one_line_errors && !world.namespaces.is_empty() {
        let owners: BTreeSet<&str> = plan.secrets.iter().map(|s| &*s.owner).collect();
        for warning in unselected(&inputs, &world, &owners) {
            eprintln!("warning: {warning}");
        }
    }
    tracing::info!(
        secrets = plan.secrets.len(),
        passthrough = passthrough.len(),
        "rendered"
    );
    let values = if args.redact {
        Values::Redact
    } else {
        Values::Reveal
    };
    let document = Document {
        passthrough: &passthrough,
        instance: settings.instance.as_deref(),
        values,
    };
    Ok(Ok(output::render_document(
        &plan.secrets,
        args.format,
        document,
    )))
}

/// Flags, then (with `--argocd`) Argo CD's environment: the app name is the instance, the
/// app namespace the default namespace, and `COURIER_*` plugin env or parameters
/// (`world`, `allow-empty`, `passthrough`) override the defaults.
fn settings(args: &RenderArgs) -> Result<Settings, String> {
    let mut settings = Settings {
        passthrough: args.passthrough || args.argocd,
        instance: args.instance.clone(),
        namespace: args.namespace.clone(),
        allow_empty: args.allow_empty,
        world: args.world,
        one_line_errors: args.argocd,
    };
    if !args.argocd {
        return Ok(settings);
    }
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    // An app name can be longer than a label value: derived, see `instance_for_app`.
    settings.instance = settings.instance.or_else(|| {
        env("ARGOCD_APP_NAME").map(|app| courier::core::labels::instance_for_app(&app))
    });
    settings.namespace = settings.namespace.or_else(|| env("ARGOCD_APP_NAMESPACE"));
    let mut apply = |name: &str, value: &str, from: &str| -> Result<(), String> {
        let flag = || match value {
            "true" => Ok(true),
            "false" => Ok(false),
            other => Err(format!(
                "{from}: {name} must be true or false, not {other:?}"
            )),
        };
        match name {
            "world" => {
                settings.world = match value {
                    "files" => WorldSource::Files,
                    "cluster" => WorldSource::Cluster,
                    other => {
                        return Err(format!(
                            "{from}: world must be files or cluster, not {other:?}"
                        ));
                    }
                }
            }
            "allow-empty" => settings.allow_empty = flag()?,
            "passthrough" => settings.passthrough = flag()?,
            _ => {}
        }
        Ok(())
    };
    for name in ["world", "allow-empty", "passthrough"] {
        let variable = format!(
            "ARGOCD_ENV_COURIER_{}",
            name.to_uppercase().replace('-', "_")
        );
        if let Some(value) = env(&variable) {
            apply(name, &value, &variable)?;
        }
    }
    // Argo CD sends the Application's plugin parameters as a JSON list; it may be unset,
    // empty or `null`.
    if let Some(raw) = env("ARGOCD_APP_PARAMETERS").filter(|raw| raw.trim() != "null") {
        let parameters: Vec<serde_json::Value> = serde_json::from_str(&raw)
            .map_err(|e| format!("ARGOCD_APP_PARAMETERS is not a JSON list: {e}"))?;
        for parameter in parameters {
            if let (Some(name), Some(value)) =
                (parameter["name"].as_str(), parameter["string"].as_str())
            {
                apply(name, value, "ARGOCD_APP_PARAMETERS")?;
            }
        }
    }
    Ok(settings)
}

fn fail(errors: Vec<String>, one_line: bool) -> ExitCode {
    if !one_line {
        return super::report_errors(errors, "nothing was rendered");
    }
    // Argo CD shows stderr in its UI: one short line, never a usage dump.
    let mut line = format!(
        "courier: {} error{}: {}",
        errors.len(),
        if errors.len() == 1 { "" } else { "s" },
        errors.join(" | ")
    );
    if line.len() > 4000 {
        let cut = line
            .char_indices()
            .take_while(|(i, _)| *i < 4000)
            .last()
            .map_or(0, |(i, _)| i);
        line.truncate(cut);
        line.push_str(" ...");
    }
    let _ = writeln!(std::io::stderr(), "{}", line.replace('\n', " "));
    ExitCode::FAILURE
}
