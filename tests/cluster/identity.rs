//! Stores read with the identity they name, as under ESO: a tenant who may write a
//! SecretStore reaches nothing its ServiceAccount cannot, whichever way courier runs.
//! courier itself runs as the admin here, the worst case: its own identity could read
//! everything, so only the store's identity can explain a refusal.

use std::process::Command;
use std::time::{Duration, Instant};

use base64::Engine as _;
use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, PostParams};
use kube::{Client, Resource};

use crate::apply::{Platform, courier_apply};
use crate::support::{
    ControlPlane, READER, TestNamespace, client_of, control_plane, install_eso_crds,
};

async fn create<K>(client: &Client, namespace: &str, object: serde_json::Value)
where
    K: Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug,
    <K as Resource>::DynamicType: Default,
{
    let object: K = serde_json::from_value(object).unwrap();
    Api::<K>::namespaced(client.clone(), namespace)
        .create(&PostParams::default(), &object)
        .await
        .unwrap();
}

async fn service_account(client: &Client, namespace: &str, name: &str) {
    create::<ServiceAccount>(
        client,
        namespace,
        serde_json::json!({"metadata": {"name": name}}),
    )
    .await;
}

/// A token for `namespace/name`, requested by the admin (what a user would paste into a Secret).
async fn token_of(client: &Client, namespace: &str, name: &str) -> String {
    let request: TokenRequest =
        serde_json::from_value(serde_json::json!({"spec": {"expirationSeconds": 3600}})).unwrap();
    Api::<ServiceAccount>::namespaced(client.clone(), namespace)
        .create_token_request(name, &PostParams::default(), &request)
        .await
        .unwrap()
        .status
        .and_then(|s| s.token)
        .unwrap()
}

async fn put_secret(client: &Client, namespace: &str, name: &str, pairs: &[(&str, &str)]) {
    let data: std::collections::BTreeMap<&str, &str> = pairs.iter().copied().collect();
    create::<Secret>(
        client,
        namespace,
        serde_json::json!({"metadata": {"name": name}, "stringData": data}),
    )
    .await;
}

fn write(dir: &tempfile::TempDir, text: &str) -> String {
    std::fs::write(dir.path().join("m.yaml"), text).unwrap();
    dir.path().to_str().unwrap().to_owned()
}

/// The tenant: a SecretStore in its own namespace pointing at the central
/// namespace, naming its `default` ServiceAccount, which may read nothing there.
fn tenant_manifests(tenant: &str, central: &str) -> String {
    format!(
        "apiVersion: external-secrets.io/v1\nkind: SecretStore\nmetadata: {{name: sneaky, namespace: {tenant}}}\nspec: {{provider: {{kubernetes: {{remoteNamespace: {central}, auth: {{serviceAccount: {{name: default}}}}}}}}}}\n---\napiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {{name: loot, namespace: {tenant}}}\nspec: {{secretStoreRef: {{kind: SecretStore, name: sneaky}}, target: {{name: loot}}, data: [{{secretKey: pw, remoteRef: {{key: shared, property: password}}}}]}}\n"
    )
}

fn assert_refused(stderr: &str, tenant: &str, central: &str) {
    let expected = format!(
        "SecretStore/{tenant}/sneaky: ServiceAccount {tenant}/default may not get Secret {central}/shared (forbidden)"
    );
    assert!(
        stderr.contains(&expected),
        "expected {expected:?} in:\n{stderr}"
    );
    assert!(!stderr.contains("first-value"), "{stderr}");
}

#[tokio::test]
async fn a_tenant_store_cannot_reach_the_central_namespace_in_any_mode() {
    let _alone = crate::support::FROM_CLUSTER_ON_THE_SHARED_PLANE
        .lock()
        .await;
    let platform = Platform::new("tenant").await;
    let client = platform.client.clone();
    let tenant = platform.target("tenant-a", false).await;
    service_account(&client, &tenant.name, "default").await;
    let central = platform.central.name.clone();

    // apply FILES: the tenant's ExternalSecret fails alone, while an ExternalSecret in the
    // same namespace reading the platform's ClusterSecretStore (whose ServiceAccount has a
    // Role on the central namespace) is delivered.
    let manifests = tempfile::tempdir().unwrap();
    let allowed = format!(
        "---\napiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {{name: allowed, namespace: {tenant}}}\nspec: {{secretStoreRef: {{kind: ClusterSecretStore, name: store-{id}}}, target: {{name: allowed}}, data: [{{secretKey: pw, remoteRef: {{key: shared, property: password}}}}]}}\n",
        tenant = tenant.name,
        id = platform.id
    );
    let text = format!(
        "{}{}{allowed}",
        platform.store(),
        format_args!("---\n{}", tenant_manifests(&tenant.name, &central))
    );
    let path = write(&manifests, &text);
    let outcome = courier_apply(&path, &format!("tenant-{}", platform.id), &[]);
    assert_eq!(outcome.code, 1, "{}", outcome.stderr);
    assert_refused(&outcome.stderr, &tenant.name, &central);
    platform
        .assert_value(&tenant.name, "loot", "pw", None)
        .await;
    platform
        .assert_value_because(
            &tenant.name,
            "allowed",
            "pw",
            Some("first-value"),
            "a store whose identity may read the central namespace still delivers",
        )
        .await;

    // apply --from-cluster: the same objects written to the API server.
    install_eso_crds(&client).await;
    let documents: Vec<serde_json::Value> =
        serde_saphyr::from_multiple(&tenant_manifests(&tenant.name, &central)).unwrap();
    for document in documents {
        let kind = document["kind"].as_str().unwrap().to_owned();
        let plural = format!("{}s", kind.to_lowercase());
        let resource = ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("external-secrets.io", "v1", &kind),
            &plural,
        );
        let object: DynamicObject = serde_json::from_value(document).unwrap();
        Api::<DynamicObject>::namespaced_with(client.clone(), &tenant.name, &resource)
            .create(&PostParams::default(), &object)
            .await
            .unwrap();
    }
    // render --argocd with the cluster world, the store now a cluster object and the
    // app holding the ExternalSecret alone: one line, nothing on stdout.
    let app = tempfile::tempdir().unwrap();
    let manifests = tenant_manifests(&tenant.name, &central);
    write(&app, manifests.split("---\n").nth(1).unwrap());
    let bin_dir = std::path::Path::new(env!("CARGO_BIN_EXE_courier"))
        .parent()
        .unwrap()
        .to_owned();
    let output = Command::new(env!("CARGO_BIN_EXE_courier"))
        .args(["render", "--argocd", "."])
        .current_dir(app.path())
        .env_clear()
        .env("PATH", format!("{}:/usr/bin:/bin", bin_dir.display()))
        .env("KUBECONFIG", control_plane().kubeconfig.to_str().unwrap())
        .env("ARGOCD_APP_NAME", "tenant-app")
        .env("ARGOCD_APP_NAMESPACE", &tenant.name)
        .env("ARGOCD_ENV_COURIER_WORLD", "cluster")
        .output()
        .unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(!output.status.success());
    assert!(output.stdout.is_empty(), "no Secret may reach Argo CD");
    assert_refused(&stderr, &tenant.name, &central);

    let output = Command::new(env!("CARGO_BIN_EXE_courier"))
        .args(["apply", "--from-cluster", "--kubeconfig"])
        .arg(control_plane().kubeconfig.to_str().unwrap())
        .args(["--instance", &format!("tenant-fc-{}", platform.id)])
        .env_remove("KUBECONFIG")
        .output()
        .unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_ne!(output.status.code(), Some(0), "{stderr}");
    assert_refused(&stderr, &tenant.name, &central);
    platform
        .assert_value(&tenant.name, "loot", "pw", None)
        .await;
    for (plural, name) in [("externalsecrets", "loot"), ("secretstores", "sneaky")] {
        let kind = if name == "loot" {
            "ExternalSecret"
        } else {
            "SecretStore"
        };
        let resource = ApiResource::from_gvk_with_plural(
            &GroupVersionKind::gvk("external-secrets.io", "v1", kind),
            plural,
        );
        let _ = Api::<DynamicObject>::namespaced_with(client.clone(), &tenant.name, &resource)
            .delete(name, &DeleteParams::default())
            .await;
    }
}

#[tokio::test]
async fn a_store_secret_reference_outside_its_namespace_is_refused() {
    let platform = Platform::new("refns").await;
    let tenant = platform.target("refns-a", false).await;
    let manifests = tempfile::tempdir().unwrap();
    let path = write(
        &manifests,
        &format!(
            "apiVersion: external-secrets.io/v1\nkind: SecretStore\nmetadata: {{name: borrow, namespace: {tenant}}}\nspec: {{provider: {{kubernetes: {{remoteNamespace: {central}, auth: {{token: {{bearerToken: {{name: admin-token, key: token, namespace: kube-system}}}}}}}}}}}}\n---\napiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {{name: x, namespace: {tenant}}}\nspec: {{secretStoreRef: {{kind: SecretStore, name: borrow}}, data: [{{secretKey: pw, remoteRef: {{key: shared}}}}]}}\n",
            tenant = tenant.name,
            central = platform.central.name
        ),
    );
    let outcome = courier_apply(&path, &format!("refns-{}", platform.id), &[]);
    assert_eq!(outcome.code, 1, "{}", outcome.stderr);
    assert!(
        outcome.has(&format!(
            "auth.token.bearerToken.namespace: a SecretStore reads credentials from its own namespace ({}), not kube-system",
            tenant.name
        )),
        "{}",
        outcome.stderr
    );
}

#[tokio::test]
async fn an_identity_limited_by_resource_names_reads_through_gets() {
    let platform = Platform::new("names").await;
    let client = platform.client.clone();
    let central = platform.central.name.clone();
    service_account(&client, &central, "named").await;
    create::<Role>(&client, &central, serde_json::json!({
        "metadata": {"name": "named"},
        "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"], "resourceNames": ["shared"]}]
    }))
    .await;
    create::<RoleBinding>(
        &client,
        &central,
        serde_json::json!({
            "metadata": {"name": "named"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "named"},
            "subjects": [{"kind": "ServiceAccount", "name": "named", "namespace": central}]
        }),
    )
    .await;
    put_secret(&client, &central, "other", &[("k", "not-for-named")]).await;
    let target = platform.target("names-t", false).await;
    let manifests = tempfile::tempdir().unwrap();
    let path = write(
        &manifests,
        &format!(
            "apiVersion: external-secrets.io/v1\nkind: ClusterSecretStore\nmetadata: {{name: named-{id}}}\nspec: {{provider: {{kubernetes: {{remoteNamespace: {central}, auth: {{serviceAccount: {{name: named, namespace: {central}}}}}}}}}}}\n---\napiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {{name: ok, namespace: {target}}}\nspec: {{secretStoreRef: {{kind: ClusterSecretStore, name: named-{id}}}, target: {{name: ok}}, data: [{{secretKey: pw, remoteRef: {{key: shared, property: password}}}}]}}\n---\napiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {{name: denied, namespace: {target}}}\nspec: {{secretStoreRef: {{kind: ClusterSecretStore, name: named-{id}}}, target: {{name: denied}}, data: [{{secretKey: k, remoteRef: {{key: other, property: k}}}}]}}\n",
            id = platform.id,
            target = target.name
        ),
    );
    let outcome = courier_apply(&path, &format!("names-{}", platform.id), &[]);
    assert_eq!(outcome.code, 1, "{}", outcome.stderr);
    platform
        .assert_value_because(
            &target.name,
            "ok",
            "pw",
            Some("first-value"),
            &outcome.stderr,
        )
        .await;
    assert!(
        outcome.has(&format!(
            "ServiceAccount {central}/named may not get Secret {central}/other (forbidden)"
        )),
        "{}",
        outcome.stderr
    );
    platform
        .assert_value(&target.name, "denied", "k", None)
        .await;
}

#[tokio::test]
async fn token_cert_and_kubeconfig_auth_each_deliver() {
    let platform = Platform::new("auths").await;
    let client = platform.client.clone();
    let central = platform.central.name.clone();
    let plane = control_plane();
    // A client certificate for a user the reader Role is bound to.
    let user = format!("cert-reader-{}", platform.id);
    create::<RoleBinding>(
        &client,
        &central,
        serde_json::json!({
            "metadata": {"name": "cert-reader"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": READER},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}]
        }),
    )
    .await;
    let (cert, key) = plane.client_certificate(&user);
    put_secret(
        &client,
        &central,
        "reader-cert",
        &[("tls.crt", &cert), ("tls.key", &key)],
    )
    .await;
    let token = token_of(&client, &central, READER).await;
    put_secret(&client, &central, "reader-token", &[("token", &token)]).await;
    let kubeconfig = format!(
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {{server: \"{server}\", certificate-authority-data: {ca}}}\nusers:\n- name: u\n  user: {{token: \"{token}\"}}\ncontexts:\n- name: c\n  context: {{cluster: c, user: u}}\ncurrent-context: c\n",
        server = plane.server(),
        ca = base64::engine::general_purpose::STANDARD.encode(plane.ca_pem()),
    );
    put_secret(
        &client,
        &central,
        "reader-kubeconfig",
        &[("config", &kubeconfig)],
    )
    .await;

    let target = platform.target("auths-t", false).await;
    let auths = [
        (
            "token",
            format!(
                "auth: {{token: {{bearerToken: {{name: reader-token, key: token, namespace: {central}}}}}}}"
            ),
        ),
        (
            "cert",
            format!(
                "auth: {{cert: {{clientCert: {{name: reader-cert, key: tls.crt, namespace: {central}}}, clientKey: {{name: reader-cert, key: tls.key, namespace: {central}}}}}}}"
            ),
        ),
        (
            "kubeconfig",
            format!("authRef: {{name: reader-kubeconfig, key: config, namespace: {central}}}"),
        ),
    ];
    let mut text = String::new();
    for (name, auth) in &auths {
        text.push_str(&format!(
            "---\napiVersion: external-secrets.io/v1\nkind: ClusterSecretStore\nmetadata: {{name: {name}-{id}}}\nspec: {{provider: {{kubernetes: {{remoteNamespace: {central}, {auth}}}}}}}\n---\napiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {{name: by-{name}, namespace: {target}}}\nspec: {{secretStoreRef: {{kind: ClusterSecretStore, name: {name}-{id}}}, target: {{name: by-{name}}}, data: [{{secretKey: pw, remoteRef: {{key: shared, property: password}}}}]}}\n",
            id = platform.id,
            target = target.name
        ));
    }
    let manifests = tempfile::tempdir().unwrap();
    let path = write(&manifests, &text);
    let outcome = courier_apply(&path, &format!("auths-{}", platform.id), &[]);
    assert_eq!(outcome.code, 0, "{}", outcome.stderr);
    for (name, _) in &auths {
        platform
            .assert_value_because(
                &target.name,
                &format!("by-{name}"),
                "pw",
                Some("first-value"),
                &format!("{name} auth"),
            )
            .await;
    }
    assert!(
        !outcome.stderr.contains(&token),
        "a token never reaches the logs"
    );
}

#[tokio::test]
async fn a_kubeconfig_that_points_at_files_is_refused() {
    let platform = Platform::new("kcfile").await;
    let central = platform.central.name.clone();
    let kubeconfig = "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: \"https://127.0.0.1:1\"}\nusers:\n- name: u\n  user: {tokenFile: /var/run/secrets/kubernetes.io/serviceaccount/token}\ncontexts:\n- name: c\n  context: {cluster: c, user: u}\ncurrent-context: c\n";
    put_secret(
        &platform.client,
        &central,
        "evil-kubeconfig",
        &[("config", kubeconfig)],
    )
    .await;
    let target = platform.target("kcfile-t", false).await;
    let manifests = tempfile::tempdir().unwrap();
    let path = write(
        &manifests,
        &format!(
            "apiVersion: external-secrets.io/v1\nkind: ClusterSecretStore\nmetadata: {{name: kc-{id}}}\nspec: {{provider: {{kubernetes: {{remoteNamespace: {central}, authRef: {{name: evil-kubeconfig, key: config, namespace: {central}}}}}}}}}\n---\napiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {{name: x, namespace: {target}}}\nspec: {{secretStoreRef: {{kind: ClusterSecretStore, name: kc-{id}}}, data: [{{secretKey: pw, remoteRef: {{key: shared}}}}]}}\n",
            id = platform.id,
            target = target.name
        ),
    );
    let outcome = courier_apply(&path, &format!("kcfile-{}", platform.id), &[]);
    assert_eq!(outcome.code, 1, "{}", outcome.stderr);
    assert!(
        outcome.has("authRef: the kubeconfig's user \"u\" uses tokenFile; only inline credentials"),
        "{}",
        outcome.stderr
    );
}

#[tokio::test]
async fn a_deleted_service_account_is_a_clear_error_and_the_target_stays() {
    let platform = Platform::new("gone").await;
    let target = platform.target("gone-t", true).await;
    let instance = format!("gone-{}", platform.id);
    assert_eq!(platform.apply(&instance, &[]).code, 0);
    Api::<ServiceAccount>::namespaced(platform.client.clone(), &platform.central.name)
        .delete(READER, &DeleteParams::default())
        .await
        .unwrap();
    let outcome = platform.apply(&instance, &[]);
    assert_eq!(outcome.code, 1, "{}", outcome.stderr);
    assert!(
        outcome.has(&format!(
            "auth.serviceAccount: ServiceAccount {}/{READER} not found",
            platform.central.name
        )),
        "{}",
        outcome.stderr
    );
    platform
        .assert_value_because(
            &target.name,
            "creds",
            "password",
            Some("first-value"),
            "a failing store deletes nothing",
        )
        .await;
}

#[tokio::test]
async fn run_requests_a_fresh_token_when_the_cached_one_is_refused() {
    let platform = Platform::new("renew").await;
    let target = platform.target("renew-t", true).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut run = Command::new(env!("CARGO_BIN_EXE_courier"))
        .args(["run", &platform.apply_path(), "--kubeconfig"])
        .arg(control_plane().kubeconfig.to_str().unwrap())
        .args(["--instance", &format!("renew-{}", platform.id)])
        .args(["--metrics-addr", &format!("127.0.0.1:{port}")])
        .args(["--debounce", "100ms"])
        .env_remove("KUBECONFIG")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let wait_for = |value: &'static str| {
        let platform = &platform;
        let target = &target.name;
        async move {
            let started = Instant::now();
            while platform.value(target, "creds", "password").await.as_deref() != Some(value) {
                assert!(
                    started.elapsed() < Duration::from_secs(20),
                    "{value} never arrived"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    wait_for("first-value").await;
    // The ServiceAccount is recreated: the token courier cached is now refused (401).
    let accounts =
        Api::<ServiceAccount>::namespaced(platform.client.clone(), &platform.central.name);
    accounts
        .delete(READER, &DeleteParams::default())
        .await
        .unwrap();
    service_account(&platform.client, &platform.central.name, READER).await;
    platform
        .put_source(
            "shared",
            &[("username", "bot"), ("password", "after-renewal")],
        )
        .await;
    wait_for("after-renewal").await;
    let _ = run.kill();
    let _ = run.wait();
}

#[tokio::test]
async fn a_store_can_read_from_another_cluster() {
    let platform = Platform::new("hub").await;
    let other = ControlPlane::start_private();
    let other_client = client_of(&other).await;
    let remote = TestNamespace::create(&other_client, "spoke-central").await;
    crate::support::grant_reader(&other_client, &remote.name).await;
    put_secret(
        &other_client,
        &remote.name,
        "db",
        &[("password", "from-the-other-cluster")],
    )
    .await;
    let token = token_of(&other_client, &remote.name, READER).await;
    put_secret(
        &platform.client,
        &platform.central.name,
        "spoke-token",
        &[("token", &token)],
    )
    .await;
    let target = platform.target("hub-t", false).await;
    let manifests = tempfile::tempdir().unwrap();
    let path = write(
        &manifests,
        &format!(
            "apiVersion: external-secrets.io/v1\nkind: ClusterSecretStore\nmetadata: {{name: spoke-{id}}}\nspec:\n  provider:\n    kubernetes:\n      remoteNamespace: {remote}\n      server: {{url: \"{server}\", caBundle: {ca}}}\n      auth: {{token: {{bearerToken: {{name: spoke-token, key: token, namespace: {central}}}}}}}\n---\napiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {{name: from-spoke, namespace: {target}}}\nspec: {{secretStoreRef: {{kind: ClusterSecretStore, name: spoke-{id}}}, target: {{name: from-spoke}}, data: [{{secretKey: pw, remoteRef: {{key: db, property: password}}}}]}}\n",
            id = platform.id,
            remote = remote.name,
            server = other.server(),
            ca = base64::engine::general_purpose::STANDARD.encode(other.ca_pem()),
            central = platform.central.name,
            target = target.name
        ),
    );
    let outcome = courier_apply(&path, &format!("hub-{}", platform.id), &[]);
    assert_eq!(outcome.code, 0, "{}", outcome.stderr);
    platform
        .assert_value(
            &target.name,
            "from-spoke",
            "pw",
            Some("from-the-other-cluster"),
        )
        .await;
}

#[tokio::test]
async fn a_live_store_without_an_identity_is_an_error_naming_it() {
    let platform = Platform::new("noauth").await;
    let target = platform.target("noauth-t", false).await;
    let manifests = tempfile::tempdir().unwrap();
    let path = write(
        &manifests,
        &format!(
            "apiVersion: external-secrets.io/v1\nkind: ClusterSecretStore\nmetadata: {{name: bare-{id}}}\nspec: {{provider: {{kubernetes: {{remoteNamespace: {central}}}}}}}\n---\napiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {{name: x, namespace: {target}}}\nspec: {{secretStoreRef: {{kind: ClusterSecretStore, name: bare-{id}}}, data: [{{secretKey: pw, remoteRef: {{key: shared}}}}]}}\n",
            id = platform.id,
            central = platform.central.name,
            target = target.name
        ),
    );
    let outcome = courier_apply(&path, &format!("noauth-{}", platform.id), &[]);
    assert_eq!(outcome.code, 1, "{}", outcome.stderr);
    assert!(
        outcome.has(&format!("ClusterSecretStore/bare-{}", platform.id))
            && outcome.has("spec.provider.kubernetes: names no identity"),
        "{}",
        outcome.stderr
    );
    assert!(outcome.has("hint: add auth:"), "{}", outcome.stderr);
    platform.assert_value(&target.name, "x", "pw", None).await;
}
