//! `refreshPolicy` under `courier run` against the real API server (ESO's `shouldRefresh`,
//! pkg/controllers/externalsecret/externalsecret_controller.go): a source change reaches a
//! Periodic target at once, but neither a CreatedOnce nor an OnChange one; an edit of the
//! OnChange ExternalSecret's spec refreshes it; a deleted CreatedOnce target is created again.

use std::process::{Command, Stdio};
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams};

use crate::apply::Platform;
use crate::run::within;
use crate::support::control_plane;

/// The platform's store and one ClusterExternalSecret per `(target, refreshPolicy, extra
/// spec line)`, all reading the source `shared`.
fn manifests(platform: &Platform, targets: &[(&str, &str, &str)]) -> String {
    let mut text = platform.store();
    for (target, policy, extra) in targets {
        text.push_str(&format!(
            "---\napiVersion: external-secrets.io/v1\nkind: ClusterExternalSecret\nmetadata: {{name: {target}-{id}}}\nspec:\n  namespaceSelectors:\n  - matchLabels: {{{label}: \"true\"}}\n  externalSecretSpec:\n    refreshPolicy: {policy}\n{extra}    secretStoreRef: {{kind: ClusterSecretStore, name: store-{id}}}\n    target: {{name: {target}}}\n    dataFrom:\n    - extract: {{key: shared}}\n",
            id = platform.id,
            label = platform.label
        ));
    }
    text
}

#[tokio::test]
async fn refresh_policy_created_once_and_on_change_hold_their_targets_under_run() {
    let platform = Platform::new("refresh").await;
    let path = platform.manifests.path().join("manifests.yaml");
    std::fs::write(
        &path,
        manifests(
            &platform,
            &[
                ("periodic", "Periodic", ""),
                ("once", "CreatedOnce", ""),
                ("onchange", "OnChange", ""),
            ],
        ),
    )
    .unwrap();
    let target = platform.target("refresh-t", true).await;
    let _run = Stop(
        Command::new(env!("CARGO_BIN_EXE_courier"))
            .args(["run", platform.manifests.path().to_str().unwrap()])
            .args(["--kubeconfig", control_plane().kubeconfig.to_str().unwrap()])
            .args(["--instance", &format!("refresh-{}", platform.id)])
            .args(["--refresh", "1h", "--debounce", "200ms"])
            .env_remove("KUBECONFIG")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let value = |name: &'static str| {
        let platform = &platform;
        let namespace = target.name.clone();
        async move { platform.value(&namespace, name, "password").await }
    };
    within(
        Duration::from_secs(15),
        "the three targets written",
        || async {
            value("periodic").await.is_some()
                && value("once").await.is_some()
                && value("onchange").await.is_some()
        },
    )
    .await;

    platform
        .put_source("shared", &[("username", "bot"), ("password", "rotated")])
        .await;
    within(
        Duration::from_secs(10),
        "the source change reaching the Periodic target",
        || async { value("periodic").await.as_deref() == Some("rotated") },
    )
    .await;
    // Another reconcile or two, to be sure nothing is merely late.
    platform.put_source("poke", &[("k", "1")]).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        value("once").await.as_deref(),
        Some("first-value"),
        "CreatedOnce target rewritten"
    );
    assert_eq!(
        value("onchange").await.as_deref(),
        Some("first-value"),
        "OnChange target rewritten on a source change"
    );

    // The OnChange ExternalSecret's spec changes (a refreshInterval): ESO refreshes it.
    std::fs::write(
        &path,
        manifests(
            &platform,
            &[
                ("periodic", "Periodic", ""),
                ("once", "CreatedOnce", "    refreshInterval: 2h\n"),
                ("onchange", "OnChange", "    refreshInterval: 2h\n"),
            ],
        ),
    )
    .unwrap();
    platform.put_source("poke", &[("k", "2")]).await;
    within(
        Duration::from_secs(10),
        "the spec change refreshing the OnChange target",
        || async { value("onchange").await.as_deref() == Some("rotated") },
    )
    .await;
    platform.put_source("poke", &[("k", "3")]).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        value("once").await.as_deref(),
        Some("first-value"),
        "CreatedOnce target rewritten on a spec change"
    );

    // A CreatedOnce target that is gone is created again (ESO: the Secret is not valid).
    Api::<Secret>::namespaced(platform.client.clone(), &target.name)
        .delete("once", &DeleteParams::default())
        .await
        .unwrap();
    within(
        Duration::from_secs(10),
        "the deleted CreatedOnce target created again",
        || async { value("once").await.as_deref() == Some("rotated") },
    )
    .await;
}

/// The `run` child this test started, stopped (by its own handle) when the test ends,
/// also when an assertion fails.
struct Stop(std::process::Child);

impl Drop for Stop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
