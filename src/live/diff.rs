//! `courier diff --live`: what `apply` would create, update or delete, as text for a CI
//! log or a PR comment. Values are always redacted; keys, types and labels are shown.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;

use crate::core::labels::{INSTANCE_LABEL, LEGACY_DATA_HASH_ANNOTATION};
use crate::core::plan::DesiredSecret;
use crate::core::redact::REDACTED;
use crate::live::apply::{Action, Decisions};
use crate::live::cluster::{SecretContent, Snapshot};

/// Counts of a diff.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Drift {
    /// Secrets to create.
    pub create: usize,
    /// Secrets to update.
    pub update: usize,
    /// Secrets to delete or take courier's keys back from.
    pub remove: usize,
    /// Secrets in sync.
    pub unchanged: usize,
}

impl Drift {
    /// Whether anything would change.
    pub fn any(&self) -> bool {
        self.create + self.update + self.remove > 0
    }
}

/// The diff text and its counts.
/// With `cluster`, every change names it: `+ Secret team-a/x in cluster prod-eu (create, ...)`.
pub fn render(
    decisions: &Decisions<'_>,
    snapshot: &Snapshot,
    instance: &str,
    cluster: Option<&str>,
) -> (String, Drift) {
    let mut out = String::new();
    let mut drift = Drift {
        unchanged: decisions.unchanged,
        ..Drift::default()
    };
    let mut entries: Vec<(String, String)> = Vec::new();
    for action in &decisions.actions {
        let mut text = String::new();
        match action {
            Action::Apply {
                secret,
                create: true,
            } => {
                drift.create += 1;
                let _ = writeln!(
                    text,
                    "+ Secret {}/{} (create, {}, from {})",
                    secret.namespace, secret.name, secret.body.type_, secret.owner
                );
                for key in secret.body.data.keys() {
                    let _ = writeln!(text, "    + data.{key}: {REDACTED}");
                }
                for (key, value) in labels_of(secret, instance) {
                    let _ = writeln!(text, "    + label {key}={value}");
                }
            }
            Action::Apply {
                secret,
                create: false,
            } => {
                drift.update += 1;
                let existing = snapshot
                    .managed
                    .get(&(secret.namespace.clone(), secret.name.clone()));
                let _ = writeln!(
                    text,
                    "~ Secret {}/{} (update, from {})",
                    secret.namespace, secret.name, secret.owner
                );
                match existing.and_then(|e| e.content.as_deref()) {
                    Some(existing) => update_lines(&mut text, existing, secret, instance),
                    None => {
                        let _ = writeln!(
                            text,
                            "    merge into the existing Secret: {}",
                            secret
                                .body
                                .data
                                .keys()
                                .cloned()
                                .collect::<Vec<_>>()
                                .join(", ")
                        );
                    }
                }
            }
            Action::Delete {
                namespace, name, ..
            } => {
                drift.remove += 1;
                let _ = writeln!(text, "- Secret {namespace}/{name} (delete)");
            }
            Action::Adopt { secret, .. } => {
                drift.update += 1;
                let _ = writeln!(
                    text,
                    "~ Secret {}/{} (adopt from External Secrets Operator, from {})",
                    secret.namespace, secret.name, secret.owner
                );
                for key in secret.body.data.keys() {
                    let _ = writeln!(text, "    ~ data.{key}: {REDACTED}");
                }
                for (key, value) in labels_of(secret, instance) {
                    let _ = writeln!(text, "    + label {key}={value}");
                }
                let _ = writeln!(
                    text,
                    "    - ownerReference ExternalSecret, label {}",
                    super::adopt::ESO_MANAGED_LABEL
                );
            }
            Action::Release { namespace, name } => {
                drift.remove += 1;
                let _ = writeln!(
                    text,
                    "- Secret {namespace}/{name} (take back courier's keys; the Secret stays)"
                );
            }
        }
        if let Some(cluster) = cluster {
            text = in_cluster(&text, cluster);
        }
        let key = text
            .lines()
            .next()
            .unwrap_or_default()
            .get(2..)
            .unwrap_or_default()
            .to_owned();
        entries.push((key, text));
    }
    entries.sort();
    for (_, text) in entries {
        out.push_str(&text);
    }
    for target in &decisions.orphaned {
        let line = format!("  Secret {target} (left behind: creationPolicy Orphan)\n");
        match cluster {
            Some(cluster) => out.push_str(&in_cluster(&line, cluster)),
            None => out.push_str(&line),
        }
    }
    (out, drift)
}

/// The entry with its first line naming the cluster after the target.
fn in_cluster(text: &str, cluster: &str) -> String {
    match text.split_once(" (") {
        Some((head, rest)) if !head.contains('\n') => {
            format!("{head} in cluster {cluster} ({rest}")
        }
        _ => text.to_owned(),
    }
}

fn labels_of<'a>(secret: &'a DesiredSecret, instance: &'a str) -> BTreeMap<&'a str, &'a str> {
    let mut labels: BTreeMap<&str, &str> = secret
        .body
        .labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    labels.insert(INSTANCE_LABEL, instance);
    labels
}

fn update_lines(
    text: &mut String,
    existing: &SecretContent,
    secret: &DesiredSecret,
    instance: &str,
) {
    let body = &secret.body;
    if existing.type_ != body.type_
        && body.creation_policy != crate::core::model::CreationPolicy::Merge
    {
        let _ = writeln!(text, "    ~ type: {} -> {}", existing.type_, body.type_);
    }
    let keys: BTreeSet<&String> = existing.data.keys().chain(body.data.keys()).collect();
    for key in keys {
        match (existing.data.get(key), body.data.get(key)) {
            (Some(old), Some(new)) if old != new => {
                let _ = writeln!(text, "    ~ data.{key}: {REDACTED} (changed)");
            }
            (None, Some(_)) => {
                let _ = writeln!(text, "    + data.{key}: {REDACTED}");
            }
            (Some(_), None)
                if body.creation_policy != crate::core::model::CreationPolicy::Merge =>
            {
                let _ = writeln!(text, "    - data.{key}");
            }
            _ => {}
        }
    }
    for (key, value) in labels_of(secret, instance) {
        match existing.labels.get(key) {
            Some(old) if old == value => {}
            Some(old) => {
                let _ = writeln!(text, "    ~ label {key}: {old} -> {value}");
            }
            None => {
                let _ = writeln!(text, "    + label {key}={value}");
            }
        }
    }
    if existing.has_legacy_digest() {
        // Its value is a digest of the values: named, never shown.
        let _ = writeln!(
            text,
            "    - annotation {LEGACY_DATA_HASH_ANNOTATION} (a digest of the values courier no longer writes)"
        );
    }
    for (key, value) in &body.annotations {
        match existing.annotations.get(key) {
            Some(old) if old == value => {}
            Some(old) => {
                let _ = writeln!(text, "    ~ annotation {key}: {old} -> {value}");
            }
            None => {
                let _ = writeln!(text, "    + annotation {key}={value}");
            }
        }
    }
}
