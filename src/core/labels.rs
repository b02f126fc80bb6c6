//! The labels and annotations courier puts on every Secret it writes: how it knows its own.

/// Label every Secret courier writes carries.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// Its value.
pub const MANAGED_BY_VALUE: &str = "courier";
/// Annotation naming the manifest a Secret was rendered from.
pub const ORIGIN_ANNOTATION: &str = "courier.dev/origin";
/// Annotation earlier versions wrote: an unsalted sha256 over the values, which let anyone
/// who saw it (redacted output, diffs, Argo CD's UI) confirm a guessed value. courier
/// writes it no more, and takes it off every target it still finds it on.
pub const LEGACY_DATA_HASH_ANNOTATION: &str = "courier.dev/data-hash";
/// Annotation on a ClusterExternalSecret or ExternalSecret choosing its template
/// language: `go` (the default: ESO's Go templates) or `minijinja` (courier's dialect).
pub const TEMPLATE_ENGINE_ANNOTATION: &str = "courier.dev/template-engine";
/// Label naming the courier instance that owns a Secret; pruning only touches its own.
pub const INSTANCE_LABEL: &str = "courier.dev/instance";
/// Annotation recording `creationPolicy: Orphan`, so a pruned target is left behind.
pub const CREATION_POLICY_ANNOTATION: &str = "courier.dev/creation-policy";
/// Annotation on a ClusterExternalSecret or ExternalSecret choosing the clusters it
/// writes to: a label selector over the clusters' labels. Without it, only the cluster
/// courier talks to (its hub) receives the manifest's targets.
pub const CLUSTER_SELECTOR_ANNOTATION: &str = "courier.dev/cluster-selector";
/// Label every cluster member carries, set to its name, so a selector can name clusters.
pub const CLUSTER_NAME_LABEL: &str = "courier.dev/cluster-name";
/// Annotation on a target courier wrote into a cluster other than its hub: the hub's
/// cluster ID (its `kube-system` namespace UID). Two hubs writing the same target tell
/// their Secrets apart by it; the first to create a target owns it.
pub const HUB_ANNOTATION: &str = "courier.dev/hub";

/// `--instance` as it is written: a non-empty label value.
pub fn validate_instance(instance: &str) -> Result<(), String> {
    if instance.is_empty() {
        return Err("--instance must not be empty: it is the courier.dev/instance label of every target".into());
    }
    crate::core::select::validate_value(instance)
        .map_err(|e| format!("--instance {instance:?} is not usable as the courier.dev/instance label: {e}"))
}

/// The instance for an Argo CD app: its name when that is a valid label value. Argo CD
/// app names may be up to 253 characters of a DNS subdomain (and `apps-in-any-namespace`
/// names read `namespace_name`); a longer one keeps its first 54 characters, trimmed to
/// end alphanumeric, then `-` and 8 hex digits of the SHA-256 of the whole name, so two
/// long names that share a prefix stay apart and the same app always gets the same value.
pub fn instance_for_app(app: &str) -> String {
    if crate::core::select::validate_value(app).is_ok() && !app.is_empty() {
        return app.to_owned();
    }
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(app.as_bytes());
    let suffix: String = digest[..4].iter().map(|b| format!("{b:02x}")).collect();
    let kept: String = app
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .take(54)
        .collect();
    let kept = kept.trim_matches(|c: char| !c.is_ascii_alphanumeric());
    if kept.is_empty() {
        format!("app-{suffix}")
    } else {
        format!("{kept}-{suffix}")
    }
}

#[cfg(test)]
mod instance_tests {
    use super::*;

    #[test]
    fn instances_are_label_values() {
        assert!(validate_instance("default").is_ok());
        assert!(validate_instance("team-a.prod_1").is_ok());
        assert!(validate_instance("").is_err());
        assert!(validate_instance("has space").is_err());
        assert!(validate_instance(&"x".repeat(64)).is_err());
    }

    #[test]
    fn app_names_become_valid_stable_instances() {
        assert_eq!(instance_for_app("platform-secrets"), "platform-secrets");
        let long = format!("{}.example", "a".repeat(70));
        let derived = instance_for_app(&long);
        assert!(validate_instance(&derived).is_ok(), "{derived}");
        assert_eq!(derived.len(), 54 + 1 + 8);
        assert_eq!(derived, instance_for_app(&long), "stable");
        let other = format!("{}.other", "a".repeat(70));
        assert_ne!(derived, instance_for_app(&other), "a shared prefix stays apart");
        assert!(validate_instance(&instance_for_app("argocd_my-app")).is_ok());
        assert!(validate_instance(&instance_for_app("---")).is_ok());
    }
}
