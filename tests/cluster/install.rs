//! The shipped install manifests are valid for the real API server (server-side dry run).

use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, PostParams};

use crate::support::admin_client;

fn resource(api_version: &str, kind: &str) -> ApiResource {
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let plural = match kind {
        "Namespace" => "namespaces",
        "ServiceAccount" => "serviceaccounts",
        "ClusterRole" => "clusterroles",
        "ClusterRoleBinding" => "clusterrolebindings",
        "RoleBinding" => "rolebindings",
        "CronJob" => "cronjobs",
        "Deployment" => "deployments",
        other => panic!("the install manifests hold an unexpected kind {other}"),
    };
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(group, version, kind), plural)
}

#[tokio::test]
async fn every_install_manifest_is_accepted_by_the_api_server() {
    let client = admin_client().await;
    let mut checked = Vec::new();
    for file in ["rbac.yaml", "cronjob.yaml", "deployment.yaml"] {
        let path = format!("{}/templates/install/{file}", env!("CARGO_MANIFEST_DIR"));
        let documents: Vec<serde_json::Value> =
            serde_saphyr::from_multiple(&std::fs::read_to_string(&path).unwrap()).unwrap();
        for document in documents {
            let api_version = document["apiVersion"].as_str().unwrap().to_owned();
            let kind = document["kind"].as_str().unwrap().to_owned();
            let resource = resource(&api_version, &kind);
            let object: DynamicObject = serde_json::from_value(document).unwrap();
            let api: Api<DynamicObject> = match kind.as_str() {
                "Namespace" | "ClusterRole" | "ClusterRoleBinding" => {
                    Api::all_with(client.clone(), &resource)
                }
                // The courier namespace need not exist: a dry run in `default` validates the same schema.
                _ => Api::namespaced_with(client.clone(), "default", &resource),
            };
            let mut object = object;
            object.metadata.namespace = None;
            api.create(
                &PostParams {
                    dry_run: true,
                    ..PostParams::default()
                },
                &object,
            )
            .await
            .unwrap_or_else(|e| panic!("{file}: {kind} rejected: {e}"));
            checked.push(format!("{file}:{kind}"));
        }
    }
    assert_eq!(checked.len(), 8, "{checked:?}");
}
