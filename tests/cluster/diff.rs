//! `courier diff --live` on the real API server: 0 in sync, 1 on drift, 2 on error (as
//! `kubectl diff`), and
//! never a value.

use std::process::Command;

use crate::apply::Platform;
use crate::support::control_plane;

fn diff(platform: &Platform, instance: &str) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_courier"))
        .args([
            "diff",
            platform.manifests.path().to_str().unwrap(),
            "--live",
        ])
        .args([
            "--kubeconfig",
            control_plane().kubeconfig.to_str().unwrap(),
            "--instance",
            instance,
        ])
        .env_remove("KUBECONFIG")
        .output()
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    for value in ["first-value", "second-value"] {
        assert!(
            !stdout.contains(value) && !stderr.contains(value),
            "a value was printed:\n{stdout}\n{stderr}"
        );
    }
    (output.status.code().unwrap_or(-1), stdout, stderr)
}

#[tokio::test]
async fn diff_reports_drift_with_redacted_values_and_exit_codes() {
    let platform = Platform::new("diff").await;
    let target = platform.target("diff-t", true).await;
    let instance = format!("diff-{}", platform.id);

    let (code, stdout, stderr) = diff(&platform, &instance);
    assert_eq!(code, 1, "nothing applied yet is drift: {stderr}");
    assert!(
        stdout.contains(&format!(
            "+ Secret {}/creds (create, Opaque, from ClusterExternalSecret/creds-{})",
            target.name, platform.id
        )),
        "{stdout}"
    );
    assert!(
        stdout.contains("    + data.password: *** REDACTED ***"),
        "{stdout}"
    );
    assert!(
        stdout.contains("    + label app.kubernetes.io/managed-by=courier"),
        "{stdout}"
    );

    assert_eq!(platform.apply(&instance, &[]).code, 0);
    let (code, stdout, stderr) = diff(&platform, &instance);
    assert_eq!(code, 0, "in sync: {stdout}{stderr}");
    assert_eq!(stdout, "");
    assert!(
        stderr.contains("diff: 0 to create, 0 to update, 0 to remove, 1 in sync"),
        "{stderr}"
    );

    platform
        .put_source(
            "shared",
            &[
                ("username", "bot"),
                ("password", "second-value"),
                ("extra", "x"),
            ],
        )
        .await;
    let (code, stdout, _) = diff(&platform, &instance);
    assert_eq!(code, 1);
    assert!(
        stdout.contains(&format!("~ Secret {}/creds (update", target.name)),
        "{stdout}"
    );
    assert!(
        stdout.contains("    ~ data.password: *** REDACTED *** (changed)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("    + data.extra: *** REDACTED ***"),
        "{stdout}"
    );
    assert!(!stdout.contains("data-hash"), "{stdout}");

    // Its only namespace unlabelled, the manifest selects nothing: more often a typo
    // than an intent, so apply would keep the target, and diff says so as an error.
    platform.set_label(&target.name, None).await;
    let (code, stdout, stderr) = diff(&platform, &instance);
    assert_eq!(code, 2, "{stdout}{stderr}");
    assert!(!stdout.contains("(delete)"), "{stdout}");
    assert!(
        stderr.contains(&format!(
            "ClusterExternalSecret/creds-{} selects no namespace now: its 1 target is kept ({}/creds)",
            platform.id, target.name
        )),
        "{stderr}"
    );
    // Retired by taking it out of the input: the removal is shown, and named.
    platform.write_manifests(&[("shared", "other")]);
    let (code, stdout, stderr) = diff(&platform, &instance);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stdout.contains(&format!("- Secret {}/creds (delete)", target.name)),
        "{stdout}"
    );
    assert!(
        stderr.contains(&format!(
            "ClusterExternalSecret/creds-{} is not in the input any more: its 1 target is removed",
            platform.id
        )),
        "{stderr}"
    );

    platform.write_manifests(&[("no-such-source", "creds")]);
    platform.set_label(&target.name, Some("true")).await;
    let (code, _, stderr) = diff(&platform, &instance);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("source Secret"), "{stderr}");
}

#[tokio::test]
async fn a_value_digest_left_by_an_earlier_version_is_shown_without_its_value_and_removed() {
    use k8s_openapi::api::core::v1::Secret;
    use kube::api::{Api, Patch, PatchParams};
    let platform = Platform::new("digest").await;
    let target = platform.target("digest-t", true).await;
    let instance = format!("digest-{}", platform.id);
    assert_eq!(platform.apply(&instance, &[]).code, 0);
    // What an earlier courier wrote: the whole target plus the digest, all owned by
    // courier's field manager.
    let digest = "0".repeat(63) + "1";
    let secrets = Api::<Secret>::namespaced(platform.client.clone(), &target.name);
    let current = secrets.get("creds").await.unwrap();
    let mut annotations = current.metadata.annotations.clone().unwrap_or_default();
    annotations.insert("courier.dev/data-hash".into(), digest.clone());
    let legacy = serde_json::json!({
        "apiVersion": "v1", "kind": "Secret", "type": current.type_,
        "metadata": {"name": "creds", "labels": current.metadata.labels, "annotations": annotations},
        "data": current.data,
    });
    secrets
        .patch(
            "creds",
            &PatchParams::apply("courier").force(),
            &Patch::Apply(legacy),
        )
        .await
        .unwrap();

    let (code, stdout, _) = diff(&platform, &instance);
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stdout.contains("    - annotation courier.dev/data-hash (a digest of the values courier no longer writes)"),
        "{stdout}"
    );
    assert!(!stdout.contains(&digest), "{stdout}");

    let outcome = platform.apply(&instance, &[]);
    assert!(outcome.has("1 updated"), "{}", outcome.stderr);
    let annotations = secrets
        .get("creds")
        .await
        .unwrap()
        .metadata
        .annotations
        .unwrap_or_default();
    assert!(
        !annotations.contains_key("courier.dev/data-hash"),
        "{annotations:?}"
    );
    assert_eq!(diff(&platform, &instance).0, 0, "in sync afterwards");
}
