//! One module per subcommand; each returns the process exit code.

pub mod apply;
pub mod check;
pub mod collect;
pub mod diff;
pub mod discover;
pub mod render;
pub mod run;

use std::io::Write;
use std::process::ExitCode;

use courier::core::load::{Inputs, LoadError, LoadOptions, load_paths_partial_with};
use courier::core::world::World;

use crate::cli::InputArgs;

/// Plan errors as printed, each `file:line` moved to the line of the field it names
/// (`template.data[conf]`) when its file can be read again; stdin keeps the document's
/// line.
pub fn located(errors: &[courier::core::plan::PlanError]) -> Vec<String> {
    let mut texts: std::collections::HashMap<String, Option<String>> =
        std::collections::HashMap::new();
    errors
        .iter()
        .map(|error| {
            let (Some(key), line) = (&error.key, error.origin.line) else {
                return error.to_string();
            };
            let file = error.origin.file.to_string();
            if line == 0 || file == "<stdin>" || file == "-" {
                return error.to_string();
            }
            let text = texts
                .entry(file.clone())
                .or_insert_with(|| std::fs::read_to_string(&file).ok());
            match text
                .as_deref()
                .and_then(|t| courier::core::fieldline::field_line(t, line, key))
            {
                Some(field_line) => {
                    let mut precise = error.clone();
                    precise.origin.line = field_line;
                    precise.to_string()
                }
                None => error.to_string(),
            }
        })
        .collect()
}

/// Loads the inputs and the world they describe, or prints every error.
pub fn load_world(args: &InputArgs, namespace: Option<&str>) -> Result<(Inputs, World), ExitCode> {
    let options = LoadOptions {
        default_namespace: namespace.map(str::to_owned),
    };
    let (inputs, mut errors) = load_paths_partial_with(&args.paths, &options);
    let world = World::from_inputs(&inputs).unwrap_or_else(|world_errors| {
        errors.extend(world_errors);
        World::default()
    });
    if errors.is_empty() {
        Ok((inputs, world))
    } else {
        // Every refusal is told at once, next to what stops the check.
        errors.extend(refused_errors(&inputs));
        Err(report_load_errors(&errors))
    }
}

/// The errors of the ESO objects refused at load (see `Manifests::refused`).
pub fn refused_errors(inputs: &Inputs) -> impl Iterator<Item = LoadError> + '_ {
    inputs
        .manifests
        .refused
        .iter()
        .flat_map(|refused| refused.errors.iter().cloned())
}

/// A warning for every ClusterExternalSecret that selects none of the world's namespaces
/// (a label typo passes silently otherwise); `owners` are the manifests that got targets.
pub fn unselected(
    inputs: &Inputs,
    world: &World,
    owners: &std::collections::BTreeSet<&str>,
) -> Vec<String> {
    unselected_manifests(inputs, owners)
        .into_iter()
        .map(|(origin, display)| {
            format!(
                "{origin}: {display} selects none of the {} namespaces (check its namespaceSelectors against the namespaces' labels)",
                world.namespaces.len()
            )
        })
        .collect()
}

/// The ClusterExternalSecrets (but those with `creationPolicy: None`) that own none of
/// `owners`' targets, with their origin and `Kind/name`.
pub fn unselected_manifests<'i>(
    inputs: &'i Inputs,
    owners: &std::collections::BTreeSet<&str>,
) -> Vec<(&'i courier::core::load::Origin, String)> {
    inputs
        .manifests
        .cluster_external_secrets
        .iter()
        .filter(|ces| {
            ces.object.spec.external_secret_spec.target.creation_policy
                != Some(courier::core::model::CreationPolicy::None)
        })
        .filter_map(|ces| {
            let display = format!("ClusterExternalSecret/{}", ces.object.metadata.name);
            (!owners.contains(display.as_str())).then_some((&ces.origin, display))
        })
        .collect()
}

/// `check`'s load errors end as its plan errors do.
fn report_load_errors(errors: &[LoadError]) -> ExitCode {
    report_errors(errors.iter().map(ToString::to_string), "check failed")
}

/// One line per error on stderr, then a count.
pub fn report_errors(errors: impl IntoIterator<Item = String>, consequence: &str) -> ExitCode {
    let mut stderr = std::io::stderr().lock();
    let mut count = 0;
    for error in errors {
        count += 1;
        let _ = writeln!(stderr, "error: {error}");
    }
    let noun = if count == 1 { "error" } else { "errors" };
    let _ = writeln!(stderr, "error: {count} {noun}; {consequence}");
    ExitCode::FAILURE
}

/// Writes data to stdout; a closed pipe (`| head`) ends quietly instead of panicking.
pub fn write_stdout(text: &str) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|()| stdout.flush())
    {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}
