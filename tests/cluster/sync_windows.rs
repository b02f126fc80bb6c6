//! `spec.syncWindows` under `courier run` against the real API server (ESO's
//! `shouldRefreshPeriodic` and `isPeriodicRefreshAllowedByWindows`,
//! pkg/controllers/externalsecret/externalsecret_controller.go): windows restrict only the
//! periodic refresh. Every target is written at first (the first sync is never blocked);
//! then a source change reaches the targets whose windows allow a refresh (a deny window
//! never active, an allow window always active) and not the others (a deny window always
//! active, an allow window never active); an edit of a blocked ExternalSecret's spec
//! refreshes it, and a deleted blocked target is created again.

use std::process::{Command, Stdio};
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams};

use crate::apply::Platform;
use crate::run::within;
use crate::support::control_plane;

/// Always active: a window opens every minute and lasts an hour.
const ALWAYS: &str = "'* * * * *'";
/// Never active: February 30th.
const NEVER: &str = "'0 0 30 2 *'";

/// The platform's store and one ClusterExternalSecret per `(target, kind, schedule, extra
/// spec line)`, all reading the source `shared`.
fn manifests(platform: &Platform, targets: &[(&str, &str, &str, &str)]) -> String {
    let mut text = platform.store();
    for (target, kind, schedule, extra) in targets {
        text.push_str(&format!(
            "---\napiVersion: external-secrets.io/v1\nkind: ClusterExternalSecret\nmetadata: {{name: {target}-{id}}}\nspec:\n  namespaceSelectors:\n  - matchLabels: {{{label}: \"true\"}}\n  externalSecretSpec:\n    syncWindows:\n      kind: {kind}\n      windows:\n      - {{schedule: {schedule}, duration: 1h}}\n{extra}    secretStoreRef: {{kind: ClusterSecretStore, name: store-{id}}}\n    target: {{name: {target}}}\n    dataFrom:\n    - extract: {{key: shared}}\n",
            id = platform.id,
            label = platform.label
        ));
    }
    text
}

#[tokio::test]
async fn sync_windows_hold_only_the_periodic_refresh_under_run() {
    let platform = Platform::new("windows").await;
    let path = platform.manifests.path().join("manifests.yaml");
    let targets = |extra: &'static str| {
        [
            ("deny-always", "deny", ALWAYS, extra),
            ("deny-never", "deny", NEVER, ""),
            ("allow-always", "allow", ALWAYS, ""),
            ("allow-never", "allow", NEVER, extra),
        ]
    };
    std::fs::write(&path, manifests(&platform, &targets(""))).unwrap();
    let target = platform.target("windows-t", true).await;
    let _run = Stop(
        Command::new(env!("CARGO_BIN_EXE_courier"))
            .args(["run", platform.manifests.path().to_str().unwrap()])
            .args(["--kubeconfig", control_plane().kubeconfig.to_str().unwrap()])
            .args(["--instance", &format!("windows-{}", platform.id)])
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
        "the four targets written (the first sync is never blocked)",
        || async {
            value("deny-always").await.as_deref() == Some("first-value")
                && value("deny-never").await.as_deref() == Some("first-value")
                && value("allow-always").await.as_deref() == Some("first-value")
                && value("allow-never").await.as_deref() == Some("first-value")
        },
    )
    .await;

    platform
        .put_source("shared", &[("username", "bot"), ("password", "rotated")])
        .await;
    within(
        Duration::from_secs(10),
        "the source change reaching the targets whose windows allow a refresh",
        || async {
            value("deny-never").await.as_deref() == Some("rotated")
                && value("allow-always").await.as_deref() == Some("rotated")
        },
    )
    .await;
    // Another reconcile or two, to be sure nothing is merely late.
    platform.put_source("poke", &[("k", "1")]).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        value("deny-always").await.as_deref(),
        Some("first-value"),
        "a target refreshed while an always-active deny window blocks it"
    );
    assert_eq!(
        value("allow-never").await.as_deref(),
        Some("first-value"),
        "a target refreshed while no allow window is active"
    );

    // A spec change is no periodic refresh: windows do not block it.
    std::fs::write(
        &path,
        manifests(&platform, &targets("    refreshInterval: 2h\n")),
    )
    .unwrap();
    platform.put_source("poke", &[("k", "2")]).await;
    within(
        Duration::from_secs(10),
        "the spec change refreshing the blocked targets",
        || async {
            value("deny-always").await.as_deref() == Some("rotated")
                && value("allow-never").await.as_deref() == Some("rotated")
        },
    )
    .await;

    // Blocked again; a deleted blocked target is created again (ESO: the Secret is not
    // valid, which refreshes it whatever the windows say).
    platform
        .put_source("shared", &[("username", "bot"), ("password", "third")])
        .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        value("deny-always").await.as_deref(),
        Some("rotated"),
        "a blocked target refreshed after the spec change"
    );
    Api::<Secret>::namespaced(platform.client.clone(), &target.name)
        .delete("deny-always", &DeleteParams::default())
        .await
        .unwrap();
    within(
        Duration::from_secs(10),
        "the deleted blocked target created again",
        || async { value("deny-always").await.as_deref() == Some("third") },
    )
    .await;
}

/// `apply` (the CronJob) is a periodic refresh of the targets it already wrote: a blocked
/// one is kept, a missing one created.
#[tokio::test]
async fn sync_windows_hold_targets_apply_already_wrote() {
    let platform = Platform::new("windows-apply").await;
    std::fs::write(
        platform.manifests.path().join("manifests.yaml"),
        manifests(
            &platform,
            &[
                ("deny-always", "deny", ALWAYS, ""),
                ("allow-always", "allow", ALWAYS, ""),
                ("allow-never", "allow", NEVER, ""),
            ],
        ),
    )
    .unwrap();
    let target = platform.target("windows-a", true).await;
    let instance = format!("windows-apply-{}", platform.id);
    let first = platform.apply(&instance, &[]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    let value = |name: &'static str| {
        let platform = &platform;
        let namespace = target.name.clone();
        async move { platform.value(&namespace, name, "password").await }
    };
    for name in ["deny-always", "allow-always", "allow-never"] {
        assert_eq!(value(name).await.as_deref(), Some("first-value"), "{name}");
    }
    platform
        .put_source("shared", &[("username", "bot"), ("password", "rotated")])
        .await;
    Api::<Secret>::namespaced(platform.client.clone(), &target.name)
        .delete("allow-never", &DeleteParams::default())
        .await
        .unwrap();
    let second = platform.apply(&instance, &[]);
    assert_eq!(second.code, 0, "{}", second.stderr);
    assert_eq!(value("deny-always").await.as_deref(), Some("first-value"));
    assert_eq!(value("allow-always").await.as_deref(), Some("rotated"));
    assert_eq!(
        value("allow-never").await.as_deref(),
        Some("rotated"),
        "a missing blocked target is created"
    );
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
