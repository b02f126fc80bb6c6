//! `courier diff --live`: what `apply` would create, update or delete, as text for a CI
//! log or a PR comment. Values are always redacted, and so are the labels and annotations
//! a template produced from them (their keys too, when the template produced the key),
//! the data keys a template produced from them, and what an update replaces or removes
//! (an old label value, a data key that goes), which an earlier rendering may have made
//! from the values; keys, types and the manifest's own labels are shown.

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::fmt::Write as _;

use crate::core::labels::{INSTANCE_LABEL, LEGACY_DATA_HASH_ANNOTATION};
use crate::core::model::StringMap;
use crate::core::plan::DesiredSecret;
use crate::core::redact::{DerivedMap, REDACTED, hidden_key};
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
                for key in secret.body.shown_data_keys() {
                    let _ = writeln!(text, "    + data.{key}: {REDACTED}");
                }
                for entry in labels_of(secret, instance) {
                    let _ = writeln!(text, "    + label {}={}", entry.key, entry.value());
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
                            secret.body.shown_data_keys().join(", ")
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
                for key in secret.body.shown_data_keys() {
                    let _ = writeln!(text, "    ~ data.{key}: {REDACTED}");
                }
                for entry in labels_of(secret, instance) {
                    let _ = writeln!(text, "    + label {}={}", entry.key, entry.value());
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

/// A label or annotation as the diff shows it.
struct Entry<'a> {
    /// The key written.
    real_key: &'a str,
    /// The key shown: a key a template produced is hidden.
    key: Cow<'a, str>,
    /// The value written.
    real_value: &'a str,
    /// Whether a template produced it, so its value is hidden.
    derived: bool,
}

impl Entry<'_> {
    fn value(&self) -> &str {
        if self.derived {
            REDACTED
        } else {
            self.real_value
        }
    }
}

/// Labels or annotations in key order, numbering hidden keys as `render --redact` does.
fn entries<'a>(map: &'a StringMap, derived: &'a DerivedMap) -> Vec<Entry<'a>> {
    let mut hidden = 0;
    map.iter()
        .map(|(key, value)| {
            let how = derived.get(key);
            let shown = match how {
                Some(how) if how.key => {
                    hidden += 1;
                    Cow::Owned(hidden_key(hidden))
                }
                _ => Cow::Borrowed(key.as_str()),
            };
            Entry {
                real_key: key,
                key: shown,
                real_value: value,
                derived: how.is_some(),
            }
        })
        .collect()
}

/// The labels courier writes: the body's and the instance label.
fn labels_of<'a>(secret: &'a DesiredSecret, instance: &'a str) -> Vec<Entry<'a>> {
    let mut labels = entries(&secret.body.labels, &secret.body.derived_labels);
    labels.retain(|e| e.real_key != INSTANCE_LABEL);
    let at = labels.partition_point(|e| e.real_key < INSTANCE_LABEL);
    labels.insert(
        at,
        Entry {
            real_key: INSTANCE_LABEL,
            key: Cow::Borrowed(INSTANCE_LABEL),
            real_value: instance,
            derived: false,
        },
    );
    labels
}

/// `+ label k=v` for a new one, `~ label k: *** REDACTED *** -> new` for a changed one
/// (`(changed)` when the new value is hidden too), nothing for one as it is. The old
/// value is never shown: an earlier rendering of a template may have made it from the
/// values, and nothing in the Secret says so.
fn metadata_lines(text: &mut String, what: &str, entries: &[Entry<'_>], existing: &StringMap) {
    for entry in entries {
        match existing.get(entry.real_key) {
            Some(old) if old == entry.real_value => {}
            Some(_) if entry.derived => {
                let _ = writeln!(text, "    ~ {what} {}: {REDACTED} (changed)", entry.key);
            }
            Some(_) => {
                let _ = writeln!(
                    text,
                    "    ~ {what} {}: {REDACTED} -> {}",
                    entry.key, entry.real_value
                );
            }
            None => {
                let _ = writeln!(text, "    + {what} {}={}", entry.key, entry.value());
            }
        }
    }
}

fn update_lines(
    text: &mut String,
    existing: &SecretContent,
    secret: &DesiredSecret,
    instance: &str,
) {
    let body = &secret.body;
    if existing.type_ != body.type_ && !super::apply::merges(body.creation_policy) {
        let _ = writeln!(text, "    ~ type: {} -> {}", existing.type_, body.type_);
    }
    let keys: BTreeSet<&String> = existing.data.keys().chain(body.data.keys()).collect();
    // Keys a template made from the values are hidden, numbered in key order. So is
    // every key the body no longer has: an earlier rendering of a template (since
    // removed from the manifest, or rendering no such key now) may have made it from the
    // values, and nothing in the Secret says so.
    let mut hidden = 0;
    for key in keys {
        let line = match (existing.data.get(key), body.data.get(key)) {
            (Some(old), Some(new)) if old != new => '~',
            (None, Some(_)) => '+',
            (Some(_), None) if !super::apply::merges(body.creation_policy) => '-',
            _ => continue,
        };
        let shown: Cow<'_, str> =
            if body.derived_data.contains_key(key) || !body.data.contains_key(key) {
                hidden += 1;
                Cow::Owned(hidden_key(hidden))
            } else {
                Cow::Borrowed(key.as_str())
            };
        let _ = match line {
            '~' => writeln!(text, "    ~ data.{shown}: {REDACTED} (changed)"),
            '+' => writeln!(text, "    + data.{shown}: {REDACTED}"),
            _ => writeln!(text, "    - data.{shown}"),
        };
    }
    metadata_lines(
        text,
        "label",
        &labels_of(secret, instance),
        &existing.labels,
    );
    if existing.has_legacy_digest() {
        // Its value is a digest of the values: named, never shown.
        let _ = writeln!(
            text,
            "    - annotation {LEGACY_DATA_HASH_ANNOTATION} (a digest of the values courier no longer writes)"
        );
    }
    let annotations = entries(&body.annotations, &body.derived_annotations);
    metadata_lines(text, "annotation", &annotations, &existing.annotations);
}
