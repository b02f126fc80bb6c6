//! `courier discover`: the Config Management Plugin's discover rule, run by Argo CD for
//! every application to decide whether courier renders it. It needs no shell: Argo CD
//! runs it directly, and a match is any output.
//!
//! An app is courier's when one of its manifests holds an ExternalSecret or a
//! ClusterExternalSecret object (parsed, so a ConfigMap that mentions the kind in its
//! data does not count). Helm charts (`Chart.yaml`) and Kustomize apps
//! (`kustomization.yaml`) are never claimed: Argo CD renders those with its own tools,
//! which courier must not take over.

use std::path::Path;
use std::process::ExitCode;

use crate::cli::DiscoverArgs;

/// Files that make a directory Argo CD's own: Helm and Kustomize.
const OTHER_TOOLS: [&str; 4] = [
    "Chart.yaml",
    "kustomization.yaml",
    "kustomization.yml",
    "Kustomization",
];

/// Prints the first manifest (relative path) that holds an ESO object, or nothing.
pub fn run(args: &DiscoverArgs) -> anyhow::Result<ExitCode> {
    if OTHER_TOOLS.iter().any(|f| args.dir.join(f).exists()) {
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(found) = first_eso_manifest(&args.dir, &args.dir) {
        println!("{found}");
    }
    Ok(ExitCode::SUCCESS)
}

fn first_eso_manifest(root: &Path, dir: &Path) -> Option<String> {
    let mut entries: Vec<_> = std::fs::read_dir(dir).ok()?.flatten().collect();
    entries.sort_by_key(std::fs::DirEntry::file_name);
    for entry in entries {
        let path = entry.path();
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        if path.is_dir() {
            if let Some(found) = first_eso_manifest(root, &path) {
                return Some(found);
            }
            continue;
        }
        let is_manifest = matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml" | "json")
        );
        if is_manifest && holds_eso_object(&path) {
            let relative = path.strip_prefix(root).unwrap_or(&path);
            return Some(relative.display().to_string());
        }
    }
    None
}

/// Whether a file holds an `external-secrets.io` ExternalSecret or ClusterExternalSecret.
/// A file that does not parse is claimed when an unindented line names such a kind and it
/// looks like a manifest (`core::load::is_manifest_text`, the rule `render --argocd` reads
/// an app by): rendering it then reports the parse error to the user, where skipping it
/// would leave the app silently without its Secrets.
fn holds_eso_object(path: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(path) else {
        return false;
    };
    if text.len() > courier::core::load::MAX_INPUT_BYTES as usize {
        return false;
    }
    let is_eso = |value: &serde_json::Value| {
        value["apiVersion"]
            .as_str()
            .is_some_and(|v| v.starts_with("external-secrets.io/"))
            && matches!(
                value["kind"].as_str(),
                Some("ExternalSecret" | "ClusterExternalSecret")
            )
    };
    let documents: Result<Vec<serde_json::Value>, _> = serde_saphyr::from_multiple(&text);
    match documents {
        Ok(documents) => documents.iter().any(|d| {
            is_eso(d)
                || d["items"]
                    .as_array()
                    .is_some_and(|items| items.iter().any(is_eso))
        }),
        Err(_) => {
            courier::core::load::is_manifest_text(&path.display().to_string(), &text)
                && text
                    .lines()
                    .any(|line| line.starts_with("kind:") && line.contains("ExternalSecret"))
        }
    }
}
