//! `courier render`: manifests in, Secrets (and, with `--passthrough`, everything else) out
//! on stdout. With `--argocd` it is Argo CD's Config Management Plugin `generate` command.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::process::ExitCode;

use anyhow::Context as _;
use std::path::PathBuf;

use courier::core::load::{
    Inputs, LoadError, LoadOptions, load_paths_partial_with, manifest_files, object_display,
};
use courier::core::output::{self, Document, Values};
use courier::core::plan;
use courier::core::suggest::did_you_mean;
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
    /// Under `--argocd`, the namespace the app may write (`ARGOCD_APP_NAMESPACE`); none
    /// for an app without a destination namespace.
    app_namespace: Option<String>,
}

/// Prints every object, or nothing at all when anything fails: a refused ESO object or a
/// target that fails is reported with every other error, and nothing is printed, since a
/// Secret missing from the output is a deletion to whatever applies it (Argo CD, `kubectl
/// apply --prune`, a rendered-manifests commit). `apply` and `run` are where one object
/// fails alone.
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
    // Argo CD's directory source skips YAML that is not Kubernetes objects (values.yaml,
    // mkdocs.yml); the plugin reads an app the same way, so discover and render agree.
    let paths = if args.argocd {
        app_files(&args.input.paths)
    } else {
        Ok(args.input.paths.clone())
    };
    let (mut inputs, errors) = match paths {
        Ok(paths) => load_paths_partial_with(&paths, &options),
        Err(e) => (Default::default(), vec![e]),
    };
    let mut errors: Vec<String> = errors.into_iter().map(|e| e.to_string()).collect();
    // One runtime serves the cluster world and the remote stores, so a live world's
    // stores fetch with the connection they were listed with.
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("failed to start the async runtime")?;
    let (world, fetch) = match settings.world {
        WorldSource::Files => {
            // The app's settings (plugin env, parameters, and so the repository's
            // `.argocd-source.yaml`) choose this world: its stores may read the files only.
            if args.argocd {
                let refused = refused_in_files_world(&inputs);
                if !refused.is_empty() {
                    return Ok(Err(refused));
                }
            }
            let world = World::from_inputs(&inputs).unwrap_or_else(|world_errors| {
                errors.extend(world_errors.iter().map(ToString::to_string));
                World::default()
            });
            (world, FetchContext::default())
        }
        WorldSource::Cluster if errors.is_empty() => {
            // In the plugin the repository is the tenant. Stores are cluster objects: the
            // app's files may not bring one (it would choose the identity and the server
            // credentials go to), and an app writes only its own namespace. Refused before
            // anything is read. Outside the plugin whoever runs courier chooses the
            // identity (their kubeconfig), and the files' stores are theirs, as in `apply`.
            if args.argocd {
                let refused = refused_in_cluster_world(&inputs, settings);
                if !refused.is_empty() {
                    return Ok(Err(refused));
                }
            }
            let snapshot = runtime.block_on(async {
                let connection = cluster::connect(&client_options(&args.client)).await?;
                if args.argocd {
                    let (stores, mut store_errors) =
                        courier::live::eso::stores_from_cluster(&connection.client).await?;
                    // A cluster store ESO's rules refuse fails the apps that name it.
                    store_errors.extend(
                        stores
                            .manifests
                            .refused
                            .iter()
                            .flat_map(|refused| refused.errors.iter().cloned()),
                    );
                    inputs.manifests.stores = stores.manifests.stores;
                    let store_errors = referenced_store_errors(&inputs, store_errors);
                    if !store_errors.is_empty() {
                        return Ok(Err(store_errors));
                    }
                }
                cluster::snapshot(&connection.client, &inputs.manifests, &BlockList::default())
                    .await
                    .map(|snapshot| Ok((snapshot.world, connection.fetch)))
            });
            match snapshot {
                Ok(Ok(world_and_fetch)) => world_and_fetch,
                Ok(Err(store_errors)) => return Ok(Err(store_errors)),
                Err(e) => return Ok(Err(vec![e.to_string()])),
            }
        }
        WorldSource::Cluster => (World::default(), FetchContext::default()),
    };
    if !errors.is_empty() {
        errors.extend(super::refused_errors(&inputs).map(|e| e.to_string()));
        return Ok(Err(errors));
    }
    let mut world = world;
    world.adopt_existing = args.adopt_existing_targets;
    let remote = plan::remote_requests(&inputs.manifests, &world, &courier::providers::Registry);
    if !remote.stores.is_empty() {
        runtime.block_on(courier::providers::prefetch(&remote, &mut world, &fetch));
    }
    let plan = plan::plan(&inputs.manifests, &world, &courier::providers::Registry);
    errors.extend(super::located(&plan.errors));
    // No data under deletionPolicy Retain or Delete: ESO writes nothing. A files world's
    // existing target is printed unchanged; a cluster world does not hold the targets,
    // and leaving one out would read as its deletion to a GitOps tool: refused.
    if world.live {
        for secret in plan
            .secrets
            .iter()
            .filter(|s| s.body.creation_policy == courier::core::model::CreationPolicy::None)
        {
            errors.push(format!(
                "{}: target {}/{}: the provider returned no data; ESO writes nothing, and with --world cluster render cannot print the existing Secret unchanged (left out, a GitOps tool would delete it)\nhint: restore the source data, or render with the target Secret in a files world",
                secret.owner, secret.namespace, secret.name
            ));
        }
    }
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
        // Under Argo CD, a files world's Namespaces and Secrets are all the world
        // (`argocd`, `kube-system`, the master Secrets): an app deletion would delete them.
        let files_world = args.argocd && settings.world == WorldSource::Files;
        (core
            && value["kind"] == "Secret"
            && (files_world || namespace.is_some_and(|n| store_namespaces.contains(n))))
            || (core
                && value["kind"] == "Namespace"
                && (files_world || name.is_some_and(|n| store_namespaces.contains(n))))
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
    // Under Argo CD a target the provider gave no data for, with no Secret of it in the
    // files to print back, fails the render: ESO keeps the live Secret, and Argo CD would
    // prune it from an output without it.
    if args.argocd && !plan.unwritten.is_empty() {
        return Ok(Err(plan
            .unwritten
            .iter()
            .map(|target| {
                format!(
                    "Secret {target}: the provider returned no data, so nothing is rendered for it (ESO writes nothing and keeps the Secret), and Argo CD would prune it from the output\nhint: fix the source (a store's key, a find that matches nothing); to remove the Secret, remove its manifest"
                )
            })
            .collect()));
    }
    // Under Argo CD a ClusterExternalSecret that selects nothing fails the render: its
    // Secrets would leave the output, and Argo CD prunes what the output no longer holds
    // (`apply` keeps such targets, and fails naming it). `allow-empty` lets it through.
    if args.argocd && !settings.allow_empty && !world.namespaces.is_empty() {
        let owners: BTreeSet<&str> = plan.secrets.iter().map(|s| &*s.owner).collect();
        let unselected: Vec<String> = super::unselected_manifests(&inputs, &owners)
            .into_iter()
            .map(|(origin, display)| {
                format!(
                    "{origin}: {display}: selects no namespace, so its Secrets would leave the output and Argo CD would prune them\nhint: check its namespaceSelectors against the namespaces' labels; to remove its Secrets, remove it (or set allow-empty: true)"
                )
            })
            .collect();
        if !unselected.is_empty() {
            return Ok(Err(unselected));
        }
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
        app_namespace: None,
    };
    if !args.argocd {
        return Ok(settings);
    }
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    // An app name can be longer than a label value: derived, see `instance_for_app`.
    settings.instance = settings.instance.or_else(|| {
        env("ARGOCD_APP_NAME").map(|app| courier::core::instance::instance_for_app(&app))
    });
    settings.app_namespace = env("ARGOCD_APP_NAMESPACE");
    settings.namespace = settings
        .namespace
        .or_else(|| settings.app_namespace.clone());
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
            // A misspelt setting silently ignored would render with the default (a
            // world the author did not mean): refused, with the closest name.
            other => {
                let close = did_you_mean(other, SETTINGS)
                    .map(|close| format!("; did you mean {close}?"))
                    .unwrap_or_default();
                return Err(format!(
                    "{from}: unknown setting {other:?}{close} (courier's are {})",
                    SETTINGS.join(", ")
                ));
            }
        }
        Ok(())
    };
    // COURIER_* plugin env the Application sets but courier does not know.
    let mut unknown: Vec<(String, String)> = std::env::vars_os()
        .filter_map(|(variable, _)| {
            let variable = variable.into_string().ok()?;
            let name = variable
                .strip_prefix("ARGOCD_ENV_COURIER_")?
                .to_lowercase()
                .replace('_', "-");
            (!SETTINGS.contains(&name.as_str())).then_some((variable, name))
        })
        .collect();
    unknown.sort();
    if let Some((variable, name)) = unknown.first() {
        apply(name, "", variable)?;
    }
    for name in SETTINGS {
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

/// The plugin's settings, as parameters (`ARGOCD_ENV_COURIER_<NAME>` as env).
const SETTINGS: [&str; 3] = ["world", "allow-empty", "passthrough"];

/// The files of an Argo CD app: its paths, with directories walked as Argo CD's directory
/// source walks them, and the YAML that is not Kubernetes objects left out.
fn app_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, LoadError> {
    let mut files = Vec::new();
    for path in paths {
        if path.is_dir() {
            let (found, skipped) = manifest_files(path)?;
            for file in skipped {
                tracing::debug!(file = %file.display(), "not Kubernetes objects; skipped");
            }
            files.extend(found);
        } else {
            files.push(path.clone());
        }
    }
    Ok(files)
}

/// What the cluster world refuses in an app's files, before anything is read: any store
/// (stores are cluster objects), and under Argo CD with a destination namespace, an
/// ExternalSecret in another namespace or a ClusterExternalSecret (which writes into every
/// namespace it selects).
fn refused_in_cluster_world(inputs: &Inputs, settings: &Settings) -> Vec<String> {
    let mut refused = Vec::new();
    for store in &inputs.manifests.stores {
        let (kind, manifest) = &store.object;
        let meta = &manifest.metadata;
        refused.push(format!(
            "{}: {}: refused: in the cluster world stores are read from the cluster, never from the app's files, or the repository would choose the identity a store reads with and the server its credentials go to\nhint: create the store in the cluster (a platform app, or ESO's way) and keep only ExternalSecrets here",
            store.origin,
            object_display(kind.as_str(), meta.namespace.as_deref(), &meta.name)
        ));
    }
    let Some(app_namespace) = settings.app_namespace.as_deref() else {
        return refused;
    };
    for external_secret in &inputs.manifests.external_secrets {
        let meta = &external_secret.object.metadata;
        let namespace = meta.namespace.as_deref().unwrap_or_default();
        if namespace != app_namespace {
            refused.push(format!(
                "{}: {}: refused: the app writes namespace {app_namespace} (ARGOCD_APP_NAMESPACE), and an ExternalSecret reads only into its own namespace\nhint: remove metadata.namespace, or give the ExternalSecret to an app whose destination is {namespace}",
                external_secret.origin,
                object_display("ExternalSecret", Some(namespace), &meta.name)
            ));
        }
    }
    for cluster_external_secret in &inputs.manifests.cluster_external_secrets {
        refused.push(format!(
            "{}: {}: refused: a ClusterExternalSecret writes into every namespace it selects, and this app writes only {app_namespace} (ARGOCD_APP_NAMESPACE)\nhint: use an ExternalSecret, or keep ClusterExternalSecrets in a platform app without a destination namespace",
            cluster_external_secret.origin,
            object_display(
                "ClusterExternalSecret",
                None,
                &cluster_external_secret.object.metadata.name
            )
        ));
    }
    refused
}

/// What the files world refuses in an app's files under Argo CD: a store that would read
/// over the network, that is any provider but `kubernetes` (which reads the files'
/// Secrets). The world is an app setting, which the repository itself can set (Argo CD
/// merges `.argocd-source.yaml` into the Application), so such a store would let a file
/// choose the identity (the sidecar's ambient AWS credentials, its ServiceAccount token)
/// and the server the sidecar sends requests and credentials to.
fn refused_in_files_world(inputs: &Inputs) -> Vec<String> {
    inputs
        .manifests
        .stores
        .iter()
        .filter_map(|store| {
            let (kind, manifest) = &store.object;
            let provider = manifest.spec.provider.keys().next()?;
            (provider != "kubernetes").then(|| {
                let meta = &manifest.metadata;
                format!(
                    "{}: {}: refused: in the plugin's files world a store reads the app's files only, and spec.provider.{provider} reads over the network, with an identity and at a server the repository would choose (the world is an app setting, which the repository's .argocd-source.yaml can set)\nhint: create the store in the cluster and render with the cluster world (COURIER_WORLD=cluster, the default)",
                    store.origin,
                    object_display(kind.as_str(), meta.namespace.as_deref(), &meta.name)
                )
            })
        })
        .collect()
}

/// The errors of the cluster's stores that the app's objects name: a broken store no app
/// uses fails no render.
pub(super) fn referenced_store_errors(inputs: &Inputs, errors: Vec<LoadError>) -> Vec<String> {
    let manifests = &inputs.manifests;
    let specs = manifests
        .external_secrets
        .iter()
        .map(|e| &e.object.spec)
        .chain(
            manifests
                .cluster_external_secrets
                .iter()
                .map(|c| &c.object.spec.external_secret_spec),
        );
    let named: BTreeSet<String> = specs
        .filter_map(|spec| spec.secret_store_ref.as_ref())
        .map(|r| {
            let kind = r.kind.as_deref().unwrap_or("SecretStore");
            format!("{kind}/{}", r.name)
        })
        .collect();
    errors
        .into_iter()
        .filter(|error| {
            error.object.as_deref().is_some_and(|object| {
                // `SecretStore/namespace/name` is named by `SecretStore/name`.
                let mut parts = object.split('/');
                let kind = parts.next().unwrap_or_default();
                let name = parts.next_back().unwrap_or_default();
                named.contains(&format!("{kind}/{name}"))
            })
        })
        .map(|error| error.to_string())
        .collect()
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
