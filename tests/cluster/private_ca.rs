//! A private CA for `vault`, `openBao` and `webhook` stores (`caBundle`, `caProvider`), as
//! ESO v2.9's `FetchCACertFromSource`: an OpenBao `-dev-tls` server, whose certificate is
//! signed by a CA it generated, is the HTTPS server of all three (the webhook store asks
//! OpenBao's KV API as any HTTPS endpoint). Trusted with the CA from `caBundle`, from a
//! `caProvider` Secret and from a `caProvider` ConfigMap; refused without one (the CA is
//! then the only root, and without it courier's built-in roots do not know it).

use base64::Engine as _;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::{Api, Patch, PatchParams, PostParams};

use crate::apply::Platform;
use crate::openbao;

const VALUE: &str = "over-private-ca";

/// A store of `provider` (`vault`, `openBao`, `webhook`) on `address`, with `ca` (the
/// lines of `caBundle` / `caProvider`, indented for the provider's mapping) and its
/// token in Secret `bao-creds` of `credentials` (`None`: a SecretStore's own namespace).
fn store(
    kind: &str,
    name: &str,
    namespace: Option<&str>,
    provider: &str,
    address: &str,
    ca: &str,
    credentials: Option<&str>,
) -> String {
    let metadata = match namespace {
        Some(namespace) => format!("{{name: {name}, namespace: {namespace}}}"),
        None => format!("{{name: {name}}}"),
    };
    let at = credentials
        .map(|ns| format!(", namespace: {ns}"))
        .unwrap_or_default();
    let body = match provider {
        "vault" => format!(
            "    vault:\n      server: {address}\n      path: secret\n{ca}      auth: {{tokenSecretRef: {{name: bao-creds, key: token{at}}}}}\n"
        ),
        "openBao" => format!(
            "    openBao:\n      server: {address}\n      path: secret\n{ca}      auth: {{tokenSecretRef: {{name: bao-creds, key: token{at}}}}}\n"
        ),
        _ => format!(
            "    webhook:\n      url: \"{address}/v1/secret/data/{{{{ .remoteRef.key }}}}\"\n      headers: {{X-Vault-Token: \"{{{{ .bao.token }}}}\"}}\n      result: {{jsonPath: \"$.data.data.v\"}}\n{ca}      secrets: [{{name: bao, secretRef: {{name: bao-creds{at}}}}}]\n"
        ),
    };
    format!(
        "---\napiVersion: external-secrets.io/v1\nkind: {kind}\nmetadata: {metadata}\nspec:\n  provider:\n{body}"
    )
}

fn ca_lines(field: &str, detail: &str) -> String {
    match field {
        "caBundle" => format!("      caBundle: {detail}\n"),
        "" => String::new(),
        _ => format!("      caProvider: {detail}\n"),
    }
}

/// Secret name, then key, then value.
type Data = std::collections::BTreeMap<String, std::collections::BTreeMap<String, Vec<u8>>>;

fn render(text: String) -> (bool, Data, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("world.yaml"), text).unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_courier"))
        .args(["render", dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "{stderr}");
    (
        output.status.success(),
        crate::openbao_eso::rendered_data(&output.stdout),
        stderr,
    )
}

/// `courier render` over files: each provider with each CA source reads the value over
/// HTTPS; without a CA, or with a caProvider whose key is not there, the store's targets
/// fail with an error naming the store (and the object and key).
#[tokio::test]
async fn render_trusts_a_private_ca_from_ca_bundle_or_ca_provider_and_nothing_else() {
    let bao = openbao::OpenBao::start_tls().await;
    bao.put("app/tls", serde_json::json!({"v": VALUE})).await;
    let pem = bao.ca_pem();
    let bundle = base64::engine::general_purpose::STANDARD.encode(&pem);
    let indented: String = pem.lines().map(|l| format!("    {l}\n")).collect();
    let platform = format!(
        "apiVersion: v1\nkind: Namespace\nmetadata: {{name: platform}}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {{name: team}}\n---\napiVersion: v1\nkind: Secret\nmetadata: {{name: bao-creds, namespace: platform}}\nstringData: {{token: {token}}}\n---\napiVersion: v1\nkind: Secret\nmetadata: {{name: bao-creds, namespace: team}}\nstringData: {{token: {token}}}\n---\napiVersion: v1\nkind: Secret\nmetadata: {{name: bao-ca, namespace: platform}}\nstringData:\n  ca.crt: |\n{indented}---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: bao-ca, namespace: platform}}\ndata:\n  ca.crt: |\n{indented}---\napiVersion: v1\nkind: Secret\nmetadata: {{name: bao-ca, namespace: team}}\nstringData:\n  ca.crt: |\n{indented}",
        token = openbao::ROOT_TOKEN,
    );
    // The webhook's jsonPath selects the value; its property only feeds its templates.
    let external_secret = |kind: &str, store: &str| {
        format!(
            "---\napiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {{name: tls, namespace: team}}\nspec:\n  secretStoreRef: {{kind: {kind}, name: {store}}}\n  target: {{name: tls}}\n  data:\n  - {{secretKey: v, remoteRef: {{key: app/tls, property: v}}}}\n"
        )
    };
    let address = bao.address.clone();
    for provider in ["vault", "openBao", "webhook"] {
        let secret_ca = "{type: Secret, name: bao-ca, key: ca.crt, namespace: platform}";
        let map_ca = "{type: ConfigMap, name: bao-ca, key: ca.crt, namespace: platform}";
        let cases = [
            ("ClusterSecretStore", ca_lines("caBundle", &bundle)),
            ("ClusterSecretStore", ca_lines("caProvider", secret_ca)),
            ("ClusterSecretStore", ca_lines("caProvider", map_ca)),
            // A SecretStore's caProvider: its own namespace.
            (
                "SecretStore",
                ca_lines("caProvider", "{type: Secret, name: bao-ca, key: ca.crt}"),
            ),
        ];
        for (kind, ca) in &cases {
            let (namespace, credentials) = match *kind {
                "SecretStore" => (Some("team"), None),
                _ => (None, Some("platform")),
            };
            let text = format!(
                "{platform}{}{}",
                store(kind, "bao", namespace, provider, &address, ca, credentials),
                external_secret(kind, "bao")
            );
            let (ok, data, stderr) = render(text);
            assert!(ok, "{provider} {kind} with {ca}: {stderr}");
            assert_eq!(data["tls"]["v"], VALUE.as_bytes(), "{provider} with {ca}");
        }
        // No CA: the server's certificate is not trusted, and the error says so.
        let text = format!(
            "{platform}{}{}",
            store(
                "ClusterSecretStore",
                "bao",
                None,
                provider,
                &address,
                "",
                Some("platform")
            ),
            external_secret("ClusterSecretStore", "bao")
        );
        let (ok, data, stderr) = render(text);
        assert!(!ok && data.is_empty(), "{provider} without a CA: {stderr}");
        assert!(
            stderr.contains("ClusterSecretStore/bao")
                && stderr.contains("the server's TLS certificate is not trusted"),
            "{provider}: {stderr}"
        );
        // Another CA is trusted instead of the server's, not besides it.
        let other = {
            let key = rcgen::KeyPair::generate().unwrap();
            let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
            params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            params.self_signed(&key).unwrap().pem()
        };
        let other = ca_lines(
            "caBundle",
            &base64::engine::general_purpose::STANDARD.encode(other),
        );
        let text = format!(
            "{platform}{}{}",
            store(
                "ClusterSecretStore",
                "bao",
                None,
                provider,
                &address,
                &other,
                Some("platform")
            ),
            external_secret("ClusterSecretStore", "bao")
        );
        let (ok, _, stderr) = render(text);
        assert!(
            !ok && stderr.contains("the server's TLS certificate is not trusted"),
            "{provider} with another CA: {stderr}"
        );
        // A caProvider key the ConfigMap does not hold: the store's error names both.
        let missing = ca_lines(
            "caProvider",
            "{type: ConfigMap, name: bao-ca, key: tls.crt, namespace: platform}",
        );
        let text = format!(
            "{platform}{}{}",
            store(
                "ClusterSecretStore",
                "bao",
                None,
                provider,
                &address,
                &missing,
                Some("platform")
            ),
            external_secret("ClusterSecretStore", "bao")
        );
        let (ok, _, stderr) = render(text);
        assert!(!ok, "{provider}: {stderr}");
        assert!(
            stderr.contains("caProvider: key \"tls.crt\" not found in ConfigMap platform/bao-ca"),
            "{provider}: {stderr}"
        );
        assert!(!stderr.contains(openbao::ROOT_TOKEN) && !stderr.contains(VALUE));
    }
}

/// `courier apply` into the real API server: the CA is a ConfigMap and a Secret in the
/// platform's namespace, read with courier's identity (the ConfigMap by one GET, the
/// Secret with the store namespace's LIST); a store that names no CA fails its target
/// while the others are written.
#[tokio::test]
async fn apply_trusts_a_private_ca_from_a_ca_provider_config_map_or_secret() {
    let bao = openbao::OpenBao::start_tls().await;
    bao.put("app/tls", serde_json::json!({"v": VALUE})).await;
    let platform = Platform::new("pca").await;
    let target = platform.target("pca-t", true).await;
    let (id, central, label) = (&platform.id, &platform.central.name, &platform.label);
    let secret: Secret =
        serde_json::from_value(serde_json::json!({"metadata": {"name": "bao-creds"},
        "stringData": {"token": openbao::ROOT_TOKEN, "ca.crt": bao.ca_pem()}}))
        .unwrap();
    Api::<Secret>::namespaced(platform.client.clone(), central)
        .create(&PostParams::default(), &secret)
        .await
        .unwrap();
    let map: ConfigMap = serde_json::from_value(serde_json::json!({"metadata": {"name": "bao-ca"},
        "data": {"ca.crt": bao.ca_pem()}}))
    .unwrap();
    Api::<ConfigMap>::namespaced(platform.client.clone(), central)
        .create(&PostParams::default(), &map)
        .await
        .unwrap();
    let from_map = format!("{{type: ConfigMap, name: bao-ca, key: ca.crt, namespace: {central}}}");
    let from_secret =
        format!("{{type: Secret, name: bao-creds, key: ca.crt, namespace: {central}}}");
    let stores = [
        ("vault", "pca-vault", ca_lines("caProvider", &from_map)),
        ("openBao", "pca-bao", ca_lines("caProvider", &from_secret)),
        ("webhook", "pca-hook", ca_lines("caProvider", &from_map)),
        ("vault", "pca-none", String::new()),
    ];
    let mut manifests = String::new();
    for (provider, name, ca) in &stores {
        manifests.push_str(&store(
            "ClusterSecretStore",
            &format!("{name}-{id}"),
            None,
            provider,
            &bao.address,
            ca,
            Some(central),
        ));
        manifests.push_str(&format!(
            "---\napiVersion: external-secrets.io/v1\nkind: ClusterExternalSecret\nmetadata: {{name: {name}-{id}}}\nspec:\n  namespaceSelectors: [{{matchLabels: {{{label}: \"true\"}}}}]\n  externalSecretSpec:\n    secretStoreRef: {{kind: ClusterSecretStore, name: {name}-{id}}}\n    target: {{name: {name}}}\n    data:\n    - {{secretKey: v, remoteRef: {{key: app/tls, property: v}}}}\n"
        ));
    }
    std::fs::write(platform.manifests.path().join("manifests.yaml"), manifests).unwrap();
    let outcome = platform.apply(&format!("pca-{id}"), &[]);
    assert_ne!(
        outcome.code, 0,
        "the store without a CA fails: {}",
        outcome.stderr
    );
    assert!(
        outcome.has(&format!("ClusterSecretStore/pca-none-{id}"))
            && outcome.has("the server's TLS certificate is not trusted"),
        "{}",
        outcome.stderr
    );
    for name in ["pca-vault", "pca-bao", "pca-hook"] {
        platform
            .assert_value_because(&target.name, name, "v", Some(VALUE), &outcome.stderr)
            .await;
    }
    platform
        .assert_value_because(&target.name, "pca-none", "v", None, &outcome.stderr)
        .await;
    assert!(!outcome.has(VALUE) && !outcome.has(openbao::ROOT_TOKEN));

    // The ConfigMap loses its key: the stores reading it fail, naming it.
    Api::<ConfigMap>::namespaced(platform.client.clone(), central)
        .patch(
            "bao-ca",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"data": {"ca.crt": null, "other": "x"}})),
        )
        .await
        .unwrap();
    let outcome = platform.apply(&format!("pca-{id}"), &[]);
    assert!(
        outcome.has(&format!(
            "caProvider: key \"ca.crt\" not found in ConfigMap {central}/bao-ca"
        )),
        "{}",
        outcome.stderr
    );
}

/// A Vault store's `tls.certSecretRef`/`keySecretRef` (mutual TLS), as ESO's
/// `configureClientTLS`, against a real server that verifies client certificates: the
/// test's kube-apiserver. Its KV v1 read `GET <server>/v1/<path>/<key>` is, with `server`
/// `<apiserver>/api` and `path` `namespaces/<ns>/configmaps`, a GET of a ConfigMap, whose
/// `data` is the secret's data; only the user the client certificate names may read it
/// (RBAC). The CA is the API server's (a `caProvider` ConfigMap); the keys default to
/// `tls.crt` and `tls.key`. Without the certificate the request is anonymous and refused.
#[tokio::test]
async fn a_vault_store_presents_its_client_certificate() {
    use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
    let plane = crate::support::control_plane();
    let platform = Platform::new("mtls").await;
    let target = platform.target("mtls-t", true).await;
    let (id, central, label) = (&platform.id, &platform.central.name, &platform.label);
    let user = format!("courier-mtls-{id}");
    let (cert, key) = plane.client_certificate(&user);
    let post = PostParams::default();
    let role: Role = serde_json::from_value(serde_json::json!({"metadata": {"name": "mtls"},
        "rules": [{"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["mtls-value"], "verbs": ["get"]}]}))
    .unwrap();
    Api::<Role>::namespaced(platform.client.clone(), central)
        .create(&post, &role)
        .await
        .unwrap();
    let binding: RoleBinding =
        serde_json::from_value(serde_json::json!({"metadata": {"name": "mtls"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "mtls"},
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}]}))
        .unwrap();
    Api::<RoleBinding>::namespaced(platform.client.clone(), central)
        .create(&post, &binding)
        .await
        .unwrap();
    for (name, data) in [
        ("mtls-value", serde_json::json!({"v": VALUE})),
        ("api-ca", serde_json::json!({"ca.crt": plane.ca_pem()})),
    ] {
        let map: ConfigMap =
            serde_json::from_value(serde_json::json!({"metadata": {"name": name}, "data": data}))
                .unwrap();
        Api::<ConfigMap>::namespaced(platform.client.clone(), central)
            .create(&post, &map)
            .await
            .unwrap();
    }
    let secret: Secret = serde_json::from_value(serde_json::json!({"metadata": {"name": "mtls"},
        "type": "kubernetes.io/tls", "stringData": {"tls.crt": cert, "tls.key": key}}))
    .unwrap();
    Api::<Secret>::namespaced(platform.client.clone(), central)
        .create(&post, &secret)
        .await
        .unwrap();
    let token: Secret = serde_json::from_value(
        serde_json::json!({"metadata": {"name": "bao-creds"}, "stringData": {"token": "unused"}}),
    )
    .unwrap();
    Api::<Secret>::namespaced(platform.client.clone(), central)
        .create(&post, &token)
        .await
        .unwrap();
    let server = format!("{}/api", plane.server());
    let ca = format!(
        "      version: v1\n      caProvider: {{type: ConfigMap, name: api-ca, key: ca.crt, namespace: {central}}}\n"
    );
    let with_cert = format!(
        "{ca}      tls: {{certSecretRef: {{name: mtls, namespace: {central}}}, keySecretRef: {{name: mtls, namespace: {central}}}}}\n"
    );
    let mut manifests = String::new();
    for (name, lines) in [("mtls-cert", &with_cert), ("mtls-anonymous", &ca)] {
        manifests.push_str(
            &store(
                "ClusterSecretStore",
                &format!("{name}-{id}"),
                None,
                "vault",
                &server,
                lines,
                Some(central),
            )
            .replace(
                "path: secret",
                &format!("path: namespaces/{central}/configmaps"),
            ),
        );
        manifests.push_str(&format!(
            "---\napiVersion: external-secrets.io/v1\nkind: ClusterExternalSecret\nmetadata: {{name: {name}-{id}}}\nspec:\n  namespaceSelectors: [{{matchLabels: {{{label}: \"true\"}}}}]\n  externalSecretSpec:\n    secretStoreRef: {{kind: ClusterSecretStore, name: {name}-{id}}}\n    target: {{name: {name}}}\n    data:\n    - {{secretKey: v, remoteRef: {{key: mtls-value, property: v}}}}\n"
        ));
    }
    std::fs::write(platform.manifests.path().join("manifests.yaml"), manifests).unwrap();
    let outcome = platform.apply(&format!("mtls-{id}"), &[]);
    assert_ne!(
        outcome.code, 0,
        "the anonymous store fails: {}",
        outcome.stderr
    );
    assert!(
        outcome.has(&format!(
            "ClusterSecretStore/mtls-anonymous-{id}: GET namespaces/{central}/configmaps/mtls-value"
        )),
        "{}",
        outcome.stderr
    );
    platform
        .assert_value_because(&target.name, "mtls-cert", "v", Some(VALUE), &outcome.stderr)
        .await;
    platform
        .assert_value_because(&target.name, "mtls-anonymous", "v", None, &outcome.stderr)
        .await;
    assert!(!outcome.has(VALUE) && !outcome.has("PRIVATE KEY"));
}
