//! `courier apply` from a webhook store into the real API server; the endpoint's bearer
//! token is a Secret in the cluster.

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PostParams};

use crate::apply::Platform;

async fn answer(headers: HeaderMap) -> (StatusCode, String) {
    if headers.get("authorization").and_then(|v| v.to_str().ok())
        == Some("Bearer hook-cluster-token")
    {
        (
            StatusCode::OK,
            r#"{"data":{"api-key":"hook-api-key-value"}}"#.to_owned(),
        )
    } else {
        (StatusCode::UNAUTHORIZED, "{}".to_owned())
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn apply_writes_values_read_from_a_webhook() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move {
        axum::serve(listener, Router::new().route("/keys/{key}", get(answer)))
            .await
            .unwrap()
    });

    let platform = Platform::new("hook").await;
    let target = platform.target("hook-t", true).await;
    let credentials: Secret =
        serde_json::from_value(serde_json::json!({"metadata": {"name": "hook-credentials"}, "stringData": {"token": "hook-cluster-token"}})).unwrap();
    Api::<Secret>::namespaced(platform.client.clone(), &platform.central.name)
        .create(&PostParams::default(), &credentials)
        .await
        .unwrap();
    std::fs::write(
        platform.manifests.path().join("manifests.yaml"),
        format!(
            "apiVersion: external-secrets.io/v1\nkind: ClusterSecretStore\nmetadata: {{name: hook-{id}}}\nspec:\n  provider:\n    webhook:\n      url: \"{base}/keys/{{{{ .remoteRef.key }}}}\"\n      headers: {{Authorization: \"Bearer {{{{ .auth.token }}}}\"}}\n      result: {{jsonPath: \"$.data\"}}\n      secrets: [{{name: auth, secretRef: {{name: hook-credentials, namespace: {central}}}}}]\n---\napiVersion: external-secrets.io/v1\nkind: ClusterExternalSecret\nmetadata: {{name: api-{id}}}\nspec:\n  namespaceSelectors: [{{matchLabels: {{{label}: \"true\"}}}}]\n  externalSecretSpec:\n    secretStoreRef: {{kind: ClusterSecretStore, name: hook-{id}}}\n    target: {{name: api}}\n    dataFrom: [{{extract: {{key: service}}}}]\n",
            id = platform.id,
            central = platform.central.name,
            label = platform.label
        ),
    )
    .unwrap();
    let instance = format!("hook-{}", platform.id);
    let path = platform.apply_path();
    let outcome = tokio::task::spawn_blocking(move || crate::apply::run_apply_at(&path, &instance))
        .await
        .unwrap();
    assert_eq!(outcome.code, 0, "{}", outcome.stderr);
    platform
        .assert_value(&target.name, "api", "api-key", Some("hook-api-key-value"))
        .await;
    assert!(
        !outcome.stderr.contains("hook-cluster-token")
            && !outcome.stderr.contains("hook-api-key-value")
    );
}
