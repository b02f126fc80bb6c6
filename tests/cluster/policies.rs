//! creationPolicy Merge and deletionPolicy on the real API server.

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, Patch, PatchParams};

use crate::apply::Platform;

fn ces(platform: &Platform, name: &str, source: &str, target: &str, policies: &str) -> String {
    format!(
        "---\napiVersion: external-secrets.io/v1\nkind: ClusterExternalSecret\nmetadata: {{name: {name}-{id}}}\nspec:\n  namespaceSelectors:\n  - matchLabels: {{{label}: \"true\"}}\n  externalSecretSpec:\n    secretStoreRef: {{kind: ClusterSecretStore, name: store-{id}}}\n    target: {{name: {target}, {policies}}}\n    dataFrom:\n    - extract: {{key: {source}}}\n",
        id = platform.id,
        label = platform.label
    )
}

fn store(platform: &Platform) -> String {
    platform.store()
}

fn write(platform: &Platform, text: &str) {
    std::fs::write(platform.manifests.path().join("manifests.yaml"), text).unwrap();
}

#[tokio::test]
async fn merge_adds_courier_keys_to_an_existing_secret_and_takes_back_only_its_own() {
    let platform = Platform::new("merge").await;
    let target = platform.target("merge-t", true).await;
    let secrets = Api::<Secret>::namespaced(platform.client.clone(), &target.name);
    let theirs: Secret = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "app-config", "labels": {"team": "app"}},
        "type": "Opaque",
        // `data`, as controllers write it: with `stringData` the API server records the
        // owner's claim on stringData, so data.own would have no owner and be released too.
        "data": {"own": "dGhlaXJz"}
    }))
    .unwrap();
    secrets
        .patch(
            "app-config",
            &PatchParams::apply("app-team"),
            &Patch::Apply(theirs),
        )
        .await
        .unwrap();
    write(
        &platform,
        &(store(&platform)
            + &ces(
                &platform,
                "merge",
                "shared",
                "app-config",
                "creationPolicy: Merge",
            )
            + &ces(
                &platform,
                "nothing",
                "shared",
                "absent",
                "creationPolicy: Merge",
            )),
    );

    let instance = format!("merge-{}", platform.id);
    let merged = platform.apply(&instance, &[]);
    assert_eq!(
        merged.code, 1,
        "merging into a Secret that does not exist is an error: {}",
        merged.stderr
    );
    assert!(
        merged.has(&format!(
            "error: Secret {}/absent: creationPolicy Merge needs an existing Secret",
            target.name
        )),
        "{}",
        merged.stderr
    );
    assert!(
        merged.has("apply: 0 created, 1 updated"),
        "{}",
        merged.stderr
    );
    assert_eq!(
        platform
            .value(&target.name, "app-config", "own")
            .await
            .as_deref(),
        Some("theirs")
    );
    assert_eq!(
        platform
            .value(&target.name, "app-config", "password")
            .await
            .as_deref(),
        Some("first-value")
    );

    write(
        &platform,
        &(store(&platform)
            + &ces(
                &platform,
                "merge",
                "shared",
                "app-config",
                "creationPolicy: Merge",
            )),
    );
    let again = platform.apply(&instance, &[]);
    assert!(
        again.has("apply: 0 created, 0 updated, 1 unchanged"),
        "a merged Secret's own keys do not cause rewrites: {}",
        again.stderr
    );

    write(&platform, &store(&platform));
    let released = platform.apply(&instance, &[]);
    assert!(released.has("0 deleted, 1 released"), "{}", released.stderr);
    let after = secrets
        .get("app-config")
        .await
        .expect("a merged-into Secret is never deleted");
    let data = after.data.unwrap_or_default();
    assert_eq!(
        data.keys().cloned().collect::<Vec<_>>(),
        ["own"],
        "only courier's keys were taken back"
    );
    let labels = after.metadata.labels.unwrap_or_default();
    assert_eq!(labels.get("team").map(String::as_str), Some("app"));
    assert!(
        !labels.contains_key("app.kubernetes.io/managed-by"),
        "{labels:?}"
    );
}

#[tokio::test]
async fn deletion_policy_decides_what_happens_when_the_source_disappears() {
    let platform = Platform::new("delpol").await;
    let target = platform.target("delpol-t", true).await;
    platform.put_source("kept-source", &[("k", "kept")]).await;
    write(
        &platform,
        &(store(&platform)
            + &ces(
                &platform,
                "gone",
                "shared",
                "deleted-with-source",
                "deletionPolicy: Delete",
            )
            + &ces(
                &platform,
                "kept",
                "kept-source",
                "retained",
                "deletionPolicy: Retain",
            )),
    );
    let instance = format!("delpol-{}", platform.id);
    assert_eq!(platform.apply(&instance, &[]).code, 0);
    let sources = Api::<Secret>::namespaced(platform.client.clone(), &platform.central.name);
    sources
        .delete("shared", &DeleteParams::default())
        .await
        .unwrap();
    sources
        .delete("kept-source", &DeleteParams::default())
        .await
        .unwrap();

    let outcome = platform.apply(&instance, &[]);
    assert_eq!(
        outcome.code, 1,
        "a missing source is still reported: {}",
        outcome.stderr
    );
    assert!(outcome.has("source Secret"), "{}", outcome.stderr);
    assert!(outcome.has("1 deleted"), "{}", outcome.stderr);
    assert_eq!(
        platform
            .value(&target.name, "deleted-with-source", "password")
            .await,
        None
    );
    assert_eq!(
        platform
            .value(&target.name, "retained", "k")
            .await
            .as_deref(),
        Some("kept"),
        "Retain keeps the last value"
    );
}
