//! The Argo CD plugin in its cluster world (its default), run as the sidecar would: as
//! the repo-server's ServiceAccount with the shipped RBAC (templates/argocd/plugin-rbac.yaml),
//! stores read from the cluster. The repository is the tenant: its files may not bring a
//! store, so it cannot choose the identity nor the server credentials go to.

use std::path::Path;
use std::process::{Command, Output};

#[path = "../common/sidecar.rs"]
mod sidecar;
#[path = "../common/tenant.rs"]
mod tenant;

use crate::apply::Platform;
use crate::support::{READER, TestNamespace, control_plane, install_eso_crds};

/// The plugin's generate command, in `app` (files), with Argo CD's environment.
fn generate(app: &[(&str, &str)], kubeconfig: &Path, app_namespace: &str) -> Output {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in app {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    let plugin: serde_json::Value = serde_saphyr::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/charts/courier/files/argocd/plugin.yaml"
        ))
        .unwrap(),
    )
    .unwrap();
    let generate: Vec<String> = plugin["spec"]["generate"]["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    let bin_dir = Path::new(env!("CARGO_BIN_EXE_courier"))
        .parent()
        .unwrap()
        .to_owned();
    Command::new(&generate[0])
        .args(&generate[1..])
        .current_dir(dir.path())
        .env_clear()
        .env("PATH", format!("{}:/usr/bin:/bin", bin_dir.display()))
        .env("KUBECONFIG", kubeconfig)
        .env("ARGOCD_APP_NAME", "argo-app")
        .env("ARGOCD_APP_NAMESPACE", app_namespace)
        .output()
        .unwrap()
}

#[tokio::test]
async fn the_plugin_reads_stores_from_the_cluster_and_refuses_the_tenants_own() {
    let platform = Platform::new("argo").await;
    let client = platform.client.clone();
    install_eso_crds(&client).await;
    // The platform's store is a cluster object; the sidecar may not read its sources.
    sidecar::apply_yaml(&client, &platform.store()).await;
    let central = platform.central.name.clone();
    let sidecar_namespace = TestNamespace::create(&client, "argo-sidecar").await;
    let role = format!("courier-argocd-plugin-{}", platform.id);
    let rbac = sidecar::shipped_rbac(&[
        ("name: courier-argocd-plugin", &format!("name: {role}")),
        (
            "namespace: argocd\n",
            &format!("namespace: {}\n", sidecar_namespace.name),
        ),
        (
            "namespace: central-secret-store",
            &format!("namespace: {central}"),
        ),
        ("[\"external-secrets\"]", &format!("[\"{READER}\"]")),
    ]);
    sidecar::apply_yaml(&client, &rbac).await;
    let config = tempfile::tempdir().unwrap();
    let kubeconfig = sidecar::kubeconfig_as(
        &client,
        config.path(),
        &sidecar_namespace.name,
        "argocd-repo-server",
    )
    .await;
    let target = platform.target("argo-app", false).await;

    // The common case: an app holds ExternalSecrets (and other manifests) only.
    let app = format!(
        "apiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {{name: app-creds}}\nspec:\n  secretStoreRef: {{kind: ClusterSecretStore, name: store-{id}}}\n  dataFrom: [{{extract: {{key: shared}}}}]\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: settings}}\ndata: {{mode: live}}\n",
        id = platform.id,
    );
    let output = generate(&[("app.yaml", &app)], &kubeconfig, &target.name);
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(output.status.success(), "{stderr}");
    assert_eq!(stderr, "");
    let objects: Vec<serde_json::Value> =
        serde_saphyr::from_multiple(std::str::from_utf8(&output.stdout).unwrap()).unwrap();
    let kinds: Vec<&str> = objects
        .iter()
        .map(|o| o["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["ConfigMap", "Secret"], "{objects:?}");
    let secret = &objects[1];
    assert_eq!(secret["metadata"]["namespace"], target.name.as_str());
    assert_eq!(
        secret["data"]["password"], "Zmlyc3QtdmFsdWU=",
        "the live source's value, read by the cluster store's identity"
    );

    // A platform store whose conditions leave the app's namespace out: refused, as
    // under ESO.
    let limited = platform
        .store()
        .replace(
            &format!("name: store-{}", platform.id),
            &format!("name: limited-{}", platform.id),
        )
        .replace(
            "spec: {provider:",
            &format!("spec: {{conditions: [{{namespaces: [{central}]}}], provider:"),
        );
    sidecar::apply_yaml(&client, &limited).await;
    let output = generate(
        &[(
            "app.yaml",
            &app.replace(
                &format!("store-{}", platform.id),
                &format!("limited-{}", platform.id),
            ),
        )],
        &kubeconfig,
        &target.name,
    );
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(!output.status.success());
    assert!(output.stdout.is_empty());
    assert!(
        stderr.contains(&format!(
            "spec.conditions do not allow namespace {}",
            target.name
        )),
        "{stderr}"
    );

    // A tenant's own store naming the platform's reader: refused, nothing read.
    let listener = tenant::Listener::start();
    let naming = tenant::app_naming_the_platform_reader(&central, READER);
    let output = generate(&[("app.yaml", &naming)], &kubeconfig, &target.name);
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(!output.status.success());
    assert!(output.stdout.is_empty(), "no Secret may reach Argo CD");
    assert!(
        stderr.contains("ClusterSecretStore/tenant-reader: refused: in the cluster world stores are read from the cluster, never from the app's files"),
        "{stderr}"
    );
    assert!(!stderr.contains("first-value"));

    // A tenant's own store sending a central token to the tenant's server: refused
    // before any connection.
    platform
        .put_source("github-pat", &[("token", "ghp_central")])
        .await;
    // As a platform whose own bearer-token store reads it would grant (the README's
    // note): the sidecar may get that Secret. The tenant's store must still not send it.
    sidecar::apply_yaml(
        &client,
        &format!(
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {{name: {role}-token, namespace: {central}}}\nrules: [{{apiGroups: [\"\"], resources: [secrets], resourceNames: [github-pat], verbs: [get]}}]\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {{name: {role}-token, namespace: {central}}}\nroleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: {role}-token}}\nsubjects: [{{kind: ServiceAccount, name: argocd-repo-server, namespace: {sidecar}}}]\n",
            sidecar = sidecar_namespace.name
        ),
    )
    .await;
    let sending = tenant::app_sending_a_token_to(
        &listener.url(),
        &control_plane().ca_pem(),
        &central,
        "github-pat",
    );
    let output = generate(&[("app.yaml", &sending)], &kubeconfig, &target.name);
    assert_eq!(
        listener.connections(),
        0,
        "a connection reached the tenant's URL"
    );
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(!output.status.success());
    assert!(output.stdout.is_empty());
    assert!(
        stderr.contains("ClusterSecretStore/tenant-exfil: refused"),
        "{stderr}"
    );

    // An ExternalSecret in another namespace, even with the platform's store: refused.
    let elsewhere = app.replace(
        "metadata: {name: app-creds}",
        &format!("metadata: {{name: app-creds, namespace: {central}}}"),
    );
    let output = generate(&[("app.yaml", &elsewhere)], &kubeconfig, &target.name);
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(!output.status.success());
    assert!(output.stdout.is_empty());
    assert!(
        stderr.contains(&format!(
            "ExternalSecret/{central}/app-creds: refused: the app writes namespace {}",
            target.name
        )),
        "{stderr}"
    );
}
