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

/// `spec.provider.openBao` (ESO's own OpenBao provider, not `vault`) through `courier
/// apply`: an AppRole login on KV v2 (the mount named, `kv` being the default), a token
/// on a KV v1 mount, a flat `property`, the whole secret as Go's `json.Marshal` (HTML
/// escaped), `extract`; a key OpenBao does not have fails its own target, even under
/// `deletionPolicy: Delete` (ESO's OpenBao provider has no "secret missing"), while the
/// others are written.
#[tokio::test]
async fn apply_reads_through_an_openbao_store() {
    let bao = openbao::OpenBao::start().await;
    let (role_id, secret_id) = crate::openbao_eso::seed(&bao).await;
    let platform = Platform::new("obao").await;
    let target = platform.target("obao-t", true).await;
    let creds: Secret = serde_json::from_value(serde_json::json!({"metadata": {"name": "bao-creds"}, "stringData": {"token": openbao::ROOT_TOKEN, "secret-id": secret_id}})).unwrap();
    Api::<Secret>::namespaced(platform.client.clone(), &platform.central.name)
        .create(&PostParams::default(), &creds)
        .await
        .unwrap();
    let (id, central, label, address) = (
        &platform.id,
        &platform.central.name,
        &platform.label,
        &bao.address,
    );
    let ces = |name: &str, store: &str, body: &str| {
        format!(
            "---\napiVersion: external-secrets.io/v1\nkind: ClusterExternalSecret\nmetadata: {{name: {name}-{id}}}\nspec:\n  namespaceSelectors: [{{matchLabels: {{{label}: \"true\"}}}}]\n  externalSecretSpec:\n    secretStoreRef: {{kind: ClusterSecretStore, name: {store}-{id}}}\n    target: {{name: {name}, deletionPolicy: Delete}}\n{body}"
        )
    };
    let manifests = format!(
        "apiVersion: external-secrets.io/v1\nkind: ClusterSecretStore\nmetadata: {{name: obao-{id}}}\nspec:\n  provider:\n    openBao:\n      server: {address}\n      path: secret\n      auth: {{appRole: {{path: approle, roleId: {role_id}, secretRef: {{name: bao-creds, key: secret-id, namespace: {central}}}}}}}\n---\napiVersion: external-secrets.io/v1\nkind: ClusterSecretStore\nmetadata: {{name: obao-v1-{id}}}\nspec:\n  provider:\n    openBao:\n      server: {address}\n      path: kv1\n      version: v1\n      auth: {{tokenSecretRef: {{name: bao-creds, key: token, namespace: {central}}}}}\n{}{}{}",
        ces(
            "bao-app",
            "obao",
            "    data:\n    - {secretKey: html, remoteRef: {key: app/json, property: html}}\n    - {secretKey: whole, remoteRef: {key: app/db}}\n    dataFrom:\n    - extract: {key: app/db}\n",
        ),
        ces(
            "bao-legacy",
            "obao-v1",
            "    data:\n    - {secretKey: token, remoteRef: {key: legacy, property: token}}\n    - {secretKey: num, remoteRef: {key: legacy, property: num}}\n",
        ),
        ces(
            "bao-missing",
            "obao",
            "    data:\n    - {secretKey: x, remoteRef: {key: app/missing, property: x}}\n",
        ),
    );
    std::fs::write(platform.manifests.path().join("manifests.yaml"), manifests).unwrap();
    let outcome = platform.apply(&format!("obao-{id}"), &[]);
    assert_ne!(outcome.code, 0, "the missing key fails: {}", outcome.stderr);
    assert!(
        outcome
            .stderr
            .contains("secret not found: at secret/data/app/missing"),
        "{}",
        outcome.stderr
    );
    let value = |name: &'static str, key: &'static str| {
        let namespace = target.name.clone();
        let platform = &platform;
        async move { platform.value(&namespace, name, key).await }
    };
    assert_eq!(
        value("bao-app", "html").await.as_deref(),
        Some("<a href=\"x\">&amp;</a>")
    );
    assert_eq!(
        value("bao-app", "whole").await.as_deref(),
        Some(r#"{"password":"p2\u003c","user":"u2"}"#)
    );
    assert_eq!(value("bao-app", "password").await.as_deref(), Some("p2<"));
    assert_eq!(value("bao-app", "user").await.as_deref(), Some("u2"));
    assert_eq!(value("bao-legacy", "token").await.as_deref(), Some("t<1>"));
    assert_eq!(value("bao-legacy", "num").await.as_deref(), Some("7.0"));
    assert_eq!(value("bao-missing", "x").await, None);
    for secret in [openbao::ROOT_TOKEN, secret_id.as_str(), "p2<", "t<1>"] {
        assert!(!outcome.stderr.contains(secret), "{}", outcome.stderr);
    }

    // The secret goes away in OpenBao: under ESO's OpenBao provider that is an error, not
    // a missing source, so `deletionPolicy: Delete` neither empties nor deletes the target.
    bao.call("DELETE", "secret/metadata/app/db", serde_json::Value::Null)
        .await;
    let outcome = platform.apply(&format!("obao-{id}"), &[]);
    assert_ne!(outcome.code, 0, "{}", outcome.stderr);
    assert!(
        outcome
            .stderr
            .contains("secret not found: at secret/data/app/db"),
        "{}",
        outcome.stderr
    );
    assert_eq!(value("bao-app", "user").await.as_deref(), Some("u2"));
    assert_eq!(value("bao-legacy", "token").await.as_deref(), Some("t<1>"));
}

/// An `openBao` store's `caBundle` is the CA courier trusts for the server (an OpenBao
/// `-dev-tls` server with a CA of its own); without it the same server is refused, with
/// the store named.
#[tokio::test]
async fn an_openbao_ca_bundle_is_trusted_and_nothing_else() {
    use base64::Engine as _;
    let bao = openbao::OpenBao::start_tls().await;
    bao.put("app/tls", serde_json::json!({"v": "over-tls"}))
        .await;
    let ca = base64::engine::general_purpose::STANDARD.encode(bao.ca_pem());
    let world = |ca_line: &str| {
        format!(
            "apiVersion: v1\nkind: Namespace\nmetadata: {{name: team}}\n---\napiVersion: v1\nkind: Secret\nmetadata: {{name: bao-creds, namespace: team}}\nstringData: {{token: {token}}}\n---\napiVersion: external-secrets.io/v1\nkind: SecretStore\nmetadata: {{name: bao, namespace: team}}\nspec:\n  provider:\n    openBao:\n      server: {address}\n      path: secret\n{ca_line}      auth: {{tokenSecretRef: {{name: bao-creds, key: token}}}}\n---\napiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {{name: tls, namespace: team}}\nspec:\n  secretStoreRef: {{kind: SecretStore, name: bao}}\n  target: {{name: tls}}\n  data:\n  - {{secretKey: v, remoteRef: {{key: app/tls, property: v}}}}\n",
            token = openbao::ROOT_TOKEN,
            address = bao.address,
        )
    };
    let render = |text: String| {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("world.yaml"), text).unwrap();
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_courier"))
            .args(["render", dir.path().to_str().unwrap()])
            .output()
            .unwrap();
        (
            output.status.success(),
            crate::openbao_eso::rendered_data(&output.stdout),
            String::from_utf8_lossy(&output.stderr).into_owned(),
        )
    };
    let (ok, data, stderr) = render(world(&format!("      caBundle: {ca}\n")));
    assert!(ok, "{stderr}");
    assert_eq!(data["tls"]["v"], b"over-tls");
    let (ok, data, stderr) = render(world(""));
    assert!(!ok && data.is_empty(), "{stderr}");
    assert!(
        stderr.contains("SecretStore/team/bao") && stderr.contains("GET secret/data/app/tls"),
        "{stderr}"
    );
}
