//! The Argo CD plugin with COURIER_WORLD=cluster: sources read live, as the sidecar's
//! ServiceAccount would.

use std::process::Command;

use crate::apply::Platform;
use crate::support::control_plane;

#[tokio::test]
async fn the_plugin_renders_from_the_live_cluster_when_asked() {
    let platform = Platform::new("argo").await;
    let target = platform.target("argo-app", false).await;
    let app = tempfile::tempdir().unwrap();
    std::fs::write(
        app.path().join("app.yaml"),
        format!(
            "{store}---\napiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {{name: app-creds}}\nspec:\n  secretStoreRef: {{kind: ClusterSecretStore, name: store-{id}}}\n  dataFrom: [{{extract: {{key: shared}}}}]\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: settings}}\ndata: {{mode: live}}\n",
            store = platform.store(),
            id = platform.id,
        ),
    )
    .unwrap();
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
    let bin_dir = std::path::Path::new(env!("CARGO_BIN_EXE_courier"))
        .parent()
        .unwrap()
        .to_owned();
    let output = Command::new(&generate[0])
        .args(&generate[1..])
        .current_dir(app.path())
        .env_clear()
        .env("PATH", format!("{}:/usr/bin:/bin", bin_dir.display()))
        .env("KUBECONFIG", control_plane().kubeconfig.to_str().unwrap())
        .env("ARGOCD_APP_NAME", "argo-app")
        .env("ARGOCD_APP_NAMESPACE", &target.name)
        .env("ARGOCD_ENV_COURIER_WORLD", "cluster")
        .output()
        .unwrap();
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
        "the live source's value"
    );
}
