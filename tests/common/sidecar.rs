//! The Argo CD sidecar's identity on the test control plane: its ServiceAccount, bound
//! by the shipped RBAC (templates/argocd/plugin-rbac.yaml), and a kubeconfig that
//! authenticates as it and nothing else. Needs `crate::support`.

use std::path::{Path, PathBuf};

use k8s_openapi::api::authentication::v1::TokenRequest;
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::Client;
use kube::api::{Api, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams};
use kube::discovery::{Discovery, Scope};

use crate::support::control_plane;

/// Applies every object of a YAML stream with server-side apply, as `kubectl apply
/// --server-side` would.
pub async fn apply_yaml(client: &Client, text: &str) {
    let discovery = Discovery::new(client.clone()).run().await.unwrap();
    let documents: Vec<serde_json::Value> = serde_saphyr::from_multiple(text).unwrap();
    for document in documents.into_iter().filter(|d| !d.is_null()) {
        let api_version = document["apiVersion"].as_str().unwrap();
        let kind = document["kind"].as_str().unwrap();
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let (resource, capabilities) = discovery
            .resolve_gvk(&GroupVersionKind::gvk(group, version, kind))
            .unwrap_or_else(|| panic!("the API server does not serve {api_version} {kind}"));
        let name = document["metadata"]["name"].as_str().unwrap();
        let api: Api<DynamicObject> = match capabilities.scope {
            Scope::Namespaced => Api::namespaced_with(
                client.clone(),
                document["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or("default"),
                &resource,
            ),
            Scope::Cluster => Api::all_with(client.clone(), &resource),
        };
        api.patch(
            name,
            &PatchParams::apply("courier-test").force(),
            &Patch::Apply(&document),
        )
        .await
        .unwrap_or_else(|e| panic!("cannot apply {kind}/{name}: {e}"));
    }
}

/// The shipped plugin RBAC, with its names replaced (`from`, `to`) for a test's own
/// namespaces.
pub fn shipped_rbac(replace: &[(&str, &str)]) -> String {
    let mut text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("templates/argocd/plugin-rbac.yaml"),
    )
    .unwrap();
    for (from, to) in replace {
        text = text.replace(from, to);
    }
    text
}

/// A kubeconfig (in `dir`) that authenticates as the ServiceAccount `namespace/name`,
/// created if missing, with a token the admin requests for it.
pub async fn kubeconfig_as(client: &Client, dir: &Path, namespace: &str, name: &str) -> PathBuf {
    let accounts = Api::<ServiceAccount>::namespaced(client.clone(), namespace);
    let account: ServiceAccount =
        serde_json::from_value(serde_json::json!({"metadata": {"name": name}})).unwrap();
    match accounts.create(&PostParams::default(), &account).await {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 409 => {}
        Err(e) => panic!("cannot create ServiceAccount {namespace}/{name}: {e}"),
    }
    let request: TokenRequest =
        serde_json::from_value(serde_json::json!({"spec": {"expirationSeconds": 3600}})).unwrap();
    let token = accounts
        .create_token_request(name, &PostParams::default(), &request)
        .await
        .unwrap()
        .status
        .and_then(|s| s.token)
        .unwrap();
    use base64::Engine as _;
    let ca = base64::engine::general_purpose::STANDARD.encode(control_plane().ca_pem());
    let path = dir.join(format!("kubeconfig-{name}"));
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters: [{{name: c, cluster: {{server: \"{server}\", certificate-authority-data: {ca}}}}}]\nusers: [{{name: u, user: {{token: \"{token}\"}}}}]\ncontexts: [{{name: c, context: {{cluster: c, user: u}}}}]\ncurrent-context: c\n",
            server = control_plane().server()
        ),
    )
    .unwrap();
    path
}
