//! The prune guard: what keeps one reconcile from deleting what it should keep.
//!
//! A target is removed (deleted, or its keys released from a Secret courier merged into)
//! when no manifest of the input wants it any more. That is right for one namespace that
//! lost its label, and a disaster for an empty file, a mistyped selector or a manifest
//! missing from a ConfigMap: each looks, to the planner, like "every target is stale". So
//! before anything is removed: an input with no manifest at all removes nothing; a
//! ClusterExternalSecret that selects no namespace any more keeps its targets (an error
//! naming it: retiring a manifest is done by taking it out of the input, which is named in
//! a warning); and a reconcile that would remove more than `--max-deletions` targets in one
//! cluster removes none and says how to allow it.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use crate::core::load::{Manifests, object_display};
use crate::core::plan::Plan;
use crate::live::cluster::Snapshot;

/// How many targets one reconcile may remove in one cluster by default. A namespace that
/// loses its label, or a ClusterExternalSecret retired from a small platform, stays under
/// it; a selector typo or a missing manifest on a platform of any size does not.
pub const DEFAULT_MAX_DELETIONS: usize = 10;

/// Limits on what one reconcile may remove.
#[derive(Debug, Clone)]
pub struct PruneGuard {
    /// Most targets one reconcile may remove in one cluster; `None` for no limit.
    pub max_deletions: Option<usize>,
    /// The (Cluster)ExternalSecrets of the input, named as targets' `courier.dev/origin`
    /// names them; `None` when the caller did not say (no check is made then).
    pub manifests: Option<Arc<BTreeSet<String>>>,
    /// Those of them whose cluster selector picks this cluster (all, with one cluster).
    pub here: Option<Arc<BTreeSet<String>>>,
    /// Whether an input without any manifest may remove targets (`--allow-empty`).
    pub allow_empty: bool,
}

impl Default for PruneGuard {
    fn default() -> Self {
        Self {
            max_deletions: Some(DEFAULT_MAX_DELETIONS),
            manifests: None,
            here: None,
            allow_empty: false,
        }
    }
}

/// The names targets carry in `courier.dev/origin` for every manifest of the input.
pub fn manifest_names(manifests: &Manifests) -> Arc<BTreeSet<String>> {
    let clustered = manifests
        .cluster_external_secrets
        .iter()
        .map(|ces| object_display("ClusterExternalSecret", None, &ces.object.metadata.name));
    let namespaced = manifests.external_secrets.iter().map(|es| {
        let meta = &es.object.metadata;
        object_display("ExternalSecret", meta.namespace.as_deref(), &meta.name)
    });
    // A refused one is still in the input: its targets are kept, not counted as retired.
    let refused = manifests
        .refused
        .iter()
        .filter(|r| matches!(r.kind.as_str(), "ClusterExternalSecret" | "ExternalSecret"))
        .map(|r| r.object.clone());
    Arc::new(clustered.chain(namespaced).chain(refused).collect())
}

/// `--max-deletions`: a number, or `unlimited`.
pub fn parse_max_deletions(text: &str) -> Result<Option<usize>, String> {
    match text.trim() {
        "unlimited" | "none" => Ok(None),
        number => number
            .parse()
            .map(Some)
            .map_err(|_| format!("{text:?} is not a number of targets (or `unlimited`)")),
    }
}

/// What the guard decided about one reconcile's removals.
#[derive(Debug, Default)]
pub struct Verdict {
    /// Removals it refuses, `(namespace, name)`: they are not made.
    pub refused: BTreeSet<(String, String)>,
    /// Why, each with how to allow it: errors of the run.
    pub blocked: Vec<String>,
    /// Manifests gone from the input (or from this cluster), whose targets go.
    pub warnings: Vec<String>,
}

/// Judges `removals`, the targets a reconcile would delete or release in one cluster.
pub fn guard(
    removals: &[(String, String)],
    plan: &Plan,
    snapshot: &Snapshot,
    guard: &PruneGuard,
    instance: &str,
) -> Verdict {
    let mut verdict = Verdict::default();
    if removals.is_empty() {
        return verdict;
    }
    if let Some(manifests) = guard.manifests.as_deref() {
        if manifests.is_empty() && !guard.allow_empty {
            let count = removals.len();
            verdict.refused.extend(removals.iter().cloned());
            verdict.blocked.push(format!(
                "refused to remove {count} {}: the input holds no ExternalSecret or ClusterExternalSecret ({})\nhint: an empty file, a wrong path or a ConfigMap without its manifests reads the same; if every manifest of instance {instance} was retired on purpose, run again with --allow-empty",
                targets(count),
                listing(removals)
            ));
            return verdict;
        }
        // Which manifests are gone from the input, and which select nothing now.
        // A manifest with a target, or with an error (its source gone, say: deletionPolicy
        // decides then), selects something.
        let planned: BTreeSet<&str> = plan
            .secrets
            .iter()
            .map(|s| &*s.owner)
            .chain(plan.errors.iter().map(|e| e.object.as_str()))
            .collect();
        let mut by_origin: BTreeMap<String, Vec<(String, String)>> = BTreeMap::new();
        for (namespace, name) in removals {
            let origin = snapshot
                .managed
                .get(&(namespace.clone(), name.clone()))
                .and_then(|m| m.origin.clone())
                .unwrap_or_else(|| "an unknown manifest".to_owned());
            by_origin
                .entry(origin)
                .or_default()
                .push((namespace.clone(), name.clone()));
        }
        let here = guard.here.as_deref().unwrap_or(manifests);
        for (origin, removed) in &by_origin {
            let n = removed.len();
            let are = if n == 1 { "is" } else { "are" };
            if manifests.contains(origin) && !here.contains(origin) {
                verdict.warnings.push(format!(
                    "{origin}'s cluster selector leaves this cluster out now: its {n} {} here {are} removed",
                    targets(n)
                ));
            } else if !manifests.contains(origin) {
                verdict.warnings.push(format!(
                    "{origin} is not in the input any more: its {n} {} {are} removed",
                    targets(n)
                ));
            } else if origin.starts_with("ClusterExternalSecret/")
                && !planned.contains(origin.as_str())
            {
                // A selector that matches nothing is far more often a typo than an intent;
                // retiring a manifest is done by taking it out of the input.
                verdict.blocked.push(format!(
                    "{origin} selects no namespace now: its {n} {} {are} kept ({})\nhint: check its namespaceSelectors against the namespaces' labels; to retire it, take the ClusterExternalSecret out of the input and its targets are removed",
                    targets(n),
                    listing(removed)
                ));
                verdict.refused.extend(removed.iter().cloned());
            }
        }
    }
    let remaining: Vec<(String, String)> = removals
        .iter()
        .filter(|r| !verdict.refused.contains(*r))
        .cloned()
        .collect();
    let count = remaining.len();
    if let Some(max) = guard.max_deletions
        && count > max
    {
        verdict.blocked.push(format!(
            "refused to remove {count} {}, more than --max-deletions {max} allows; none was removed ({})\nhint: a mistyped selector or a manifest missing from the input looks like this; if the removals are intended, run again with --max-deletions {count} (or COURIER_MAX_DELETIONS={count})",
            targets(count),
            listing(&remaining)
        ));
        verdict.refused.extend(remaining);
    }
    verdict
}

fn targets(count: usize) -> &'static str {
    if count == 1 { "target" } else { "targets" }
}

/// The first few targets, `namespace/name`, and how many more.
fn listing(removals: &[(String, String)]) -> String {
    const SHOWN: usize = 5;
    let mut sorted: Vec<String> = removals.iter().map(|(ns, n)| format!("{ns}/{n}")).collect();
    sorted.sort();
    let more = sorted.len().saturating_sub(SHOWN);
    sorted.truncate(SHOWN);
    let mut text = sorted.join(", ");
    if more > 0 {
        text.push_str(&format!(" and {more} more"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_deletions_reads_numbers_and_unlimited() {
        assert_eq!(parse_max_deletions("0"), Ok(Some(0)));
        assert_eq!(parse_max_deletions("25"), Ok(Some(25)));
        assert_eq!(parse_max_deletions("unlimited"), Ok(None));
        assert!(parse_max_deletions("-1").is_err());
        assert!(parse_max_deletions("ten").is_err());
    }

    #[test]
    fn long_listings_are_cut() {
        let removals: Vec<(String, String)> = (0..8)
            .map(|i| (format!("ns-{i}"), "creds".to_owned()))
            .collect();
        assert_eq!(
            listing(&removals),
            "ns-0/creds, ns-1/creds, ns-2/creds, ns-3/creds, ns-4/creds and 3 more"
        );
    }
}
