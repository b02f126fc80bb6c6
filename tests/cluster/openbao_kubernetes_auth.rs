//! Vault Kubernetes auth against the real API server: courier requests a ServiceAccount
//! token, OpenBao checks it with a TokenReview on the test kube-apiserver, and the values
//! it then serves reach the target.

use crate::openbao;

use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::ClusterRoleBinding;
use kube::api::{Api, DeleteParams, PostParams};
use serde_json::json;

use crate::apply::Platform;
use crate::support::control_plane;

#[tokio::test]
async fn kubernetes_auth_logs_in_with_a_requested_service_account_token() {
    let bao = openbao::OpenBao::start().await;
    bao.put("platform/db", json!({"password": "k8s-auth-value"}))
        .await;
    let platform = Platform::new("bk8s").await;
    let target = platform.target("bk8s-t", true).await;
    let accounts =
        Api::<ServiceAccount>::namespaced(platform.client.clone(), &platform.central.name);
    for name in ["bao-reviewer", "courier-app"] {
        let account: ServiceAccount =
            serde_json::from_value(json!({"metadata": {"name": name}})).unwrap();
        accounts
            .create(&PostParams::default(), &account)
            .await
            .unwrap();
    }
    let binding_name = format!("bao-reviewer-{}", platform.id);
    let binding: ClusterRoleBinding = serde_json::from_value(json!({
        "metadata": {"name": binding_name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "system:auth-delegator"},
        "subjects": [{"kind": "ServiceAccount", "name": "bao-reviewer", "namespace": platform.central.name}]
    }))
    .unwrap();
    Api::<ClusterRoleBinding>::all(platform.client.clone())
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();
    let request: TokenRequest =
        serde_json::from_value(json!({"spec": {"expirationSeconds": 3600}})).unwrap();
    let reviewer = accounts
        .create_token_request("bao-reviewer", &PostParams::default(), &request)
        .await
        .unwrap();
    let reviewer_jwt = reviewer.status.and_then(|s| s.token).unwrap();

    let kubeconfig: serde_json::Value =
        serde_saphyr::from_str(&std::fs::read_to_string(&control_plane().kubeconfig).unwrap())
            .unwrap();
    let cluster = &kubeconfig["clusters"][0]["cluster"];
    let ca = match cluster["certificate-authority"].as_str() {
        Some(path) => std::fs::read_to_string(path).unwrap(),
        None => {
            use base64::Engine as _;
            let data = cluster["certificate-authority-data"]
                .as_str()
                .unwrap_or_default();
            String::from_utf8(
                base64::engine::general_purpose::STANDARD
                    .decode(data)
                    .unwrap(),
            )
            .unwrap()
        }
    };
    bao.call("POST", "sys/auth/kubernetes", json!({"type": "kubernetes"}))
        .await;
    bao.call(
        "POST",
        "auth/kubernetes/config",
        json!({"kubernetes_host": cluster["server"], "kubernetes_ca_cert": ca, "token_reviewer_jwt": reviewer_jwt}),
    )
    .await;
    bao.call(
        "PUT",
        "sys/policies/acl/k8s-read",
        json!({"policy": "path \"secret/*\" { capabilities = [\"read\", \"list\"] }"}),
    )
    .await;
    bao.call(
        "POST",
        "auth/kubernetes/role/courier",
        json!({"bound_service_account_names": ["courier-app"], "bound_service_account_namespaces": [platform.central.name], "token_policies": ["k8s-read"]}),
    )
    .await;

    std::fs::write(
        platform.manifests.path().join("manifests.yaml"),
        format!(
            "apiVersion: external-secrets.io/v1\nkind: ClusterSecretStore\nmetadata: {{name: bao-k8s-{id}}}\nspec:\n  provider:\n    vault:\n      server: {address}\n      path: secret\n      auth:\n        kubernetes:\n          mountPath: kubernetes\n          role: courier\n          serviceAccountRef: {{name: courier-app, namespace: {central}}}\n---\napiVersion: external-secrets.io/v1\nkind: ClusterExternalSecret\nmetadata: {{name: db-{id}}}\nspec:\n  namespaceSelectors: [{{matchLabels: {{{label}: \"true\"}}}}]\n  externalSecretSpec:\n    secretStoreRef: {{kind: ClusterSecretStore, name: bao-k8s-{id}}}\n    target: {{name: db}}\n    data: [{{secretKey: password, remoteRef: {{key: platform/db, property: password}}}}]\n",
            id = platform.id,
            address = bao.address,
            central = platform.central.name,
            label = platform.label
        ),
    )
    .unwrap();
    let outcome = platform.apply(&format!("bk8s-{}", platform.id), &[]);
    assert_eq!(outcome.code, 0, "{}", outcome.stderr);
    platform
        .assert_value(&target.name, "db", "password", Some("k8s-auth-value"))
        .await;

    // A role bound to another ServiceAccount refuses the login, clearly.
    bao.call("POST", "auth/kubernetes/role/courier", json!({"bound_service_account_names": ["someone-else"], "bound_service_account_namespaces": [platform.central.name], "token_policies": ["k8s-read"]})).await;
    let refused = platform.apply(&format!("bk8s-{}", platform.id), &[]);
    assert_eq!(refused.code, 1);
    assert!(
        refused.has("Kubernetes login at auth/kubernetes:"),
        "{}",
        refused.stderr
    );
    Api::<ClusterRoleBinding>::all(platform.client.clone())
        .delete(&binding_name, &DeleteParams::default())
        .await
        .unwrap();
}
