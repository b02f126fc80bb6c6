//! `courier apply` from an OpenBao store into the real API server: the store's token is a
//! Secret in the cluster, read with the same LISTs as every source.

use crate::openbao;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PostParams};

use crate::apply::Platform;

#[tokio::test]
async fn apply_writes_values_read_from_openbao() {
    let bao = openbao::OpenBao::start().await;
    bao.put(
        "platform/registry",
        serde_json::json!({"username": "bot", "token": "bao-registry-token"}),
    )
    .await;
    let platform = Platform::new("bao").await;
    let target = platform.target("bao-t", true).await;
    let token: Secret = serde_json::from_value(serde_json::json!({"metadata": {"name": "bao-token"}, "stringData": {"token": openbao::ROOT_TOKEN}})).unwrap();
    Api::<Secret>::namespaced(platform.client.clone(), &platform.central.name)
        .create(&PostParams::default(), &token)
        .await
        .unwrap();
    std::fs::write(
        platform.manifests.path().join("manifests.yaml"),
        format!(
            "apiVersion: external-secrets.io/v1\nkind: ClusterSecretStore\nmetadata: {{name: bao-{id}}}\nspec:\n  provider:\n    vault:\n      server: {address}\n      path: secret\n      auth: {{tokenSecretRef: {{name: bao-token, key: token, namespace: {central}}}}}\n---\napiVersion: external-secrets.io/v1\nkind: ClusterExternalSecret\nmetadata: {{name: registry-{id}}}\nspec:\n  namespaceSelectors: [{{matchLabels: {{{label}: \"true\"}}}}]\n  externalSecretSpec:\n    secretStoreRef: {{kind: ClusterSecretStore, name: bao-{id}}}\n    target:\n      name: registry\n      template:\n        type: kubernetes.io/dockerconfigjson\n        data: {{.dockerconfigjson: '{{\"auths\":{{\"ghcr.io\":{{\"username\":\"{{{{ .username }}}}\",\"password\":\"{{{{ .token }}}}\",\"auth\":\"{{{{ printf \"%s:%s\" .username .token | b64enc }}}}\"}}}}}}'}}\n    dataFrom: [{{extract: {{key: platform/registry}}}}]\n",
            id = platform.id,
            address = bao.address,
            central = platform.central.name,
            label = platform.label
        ),
    )
    .unwrap();
    let outcome = platform.apply(&format!("bao-{}", platform.id), &[]);
    assert_eq!(outcome.code, 0, "{}", outcome.stderr);
    let config = platform
        .value(&target.name, "registry", ".dockerconfigjson")
        .await
        .expect("the Secret");
    assert!(
        config.contains("\"password\":\"bao-registry-token\""),
        "{config}"
    );
    assert!(
        !outcome.stderr.contains("bao-registry-token")
            && !outcome.stderr.contains(openbao::ROOT_TOKEN)
    );
    assert_eq!(bao.secret_reads(), 1);
}
