//! courier's instance: the `courier.dev/instance` label of every target, from
//! `--instance` or an Argo CD app's name.

/// `--instance` as it is written: a non-empty label value.
pub fn validate_instance(instance: &str) -> Result<(), String> {
    if instance.is_empty() {
        return Err(
            "--instance must not be empty: it is the courier.dev/instance label of every target"
                .into(),
        );
    }
    crate::core::select::validate_value(instance).map_err(|e| {
        format!("--instance {instance:?} is not usable as the courier.dev/instance label: {e}")
    })
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
        assert_ne!(
            derived,
            instance_for_app(&other),
            "a shared prefix stays apart"
        );
        assert!(validate_instance(&instance_for_app("argocd_my-app")).is_ok());
        assert!(validate_instance(&instance_for_app("---")).is_ok());
    }
}
