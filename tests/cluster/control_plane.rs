//! The control plane is a real Kubernetes API server, not a mock.

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};

use crate::support::{TestNamespace, admin_client, client_as, control_plane};

fn secret(name: &str, value: &str) -> Secret {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name},
        "stringData": {"key": value}
    }))
    .unwrap()
}

#[tokio::test]
async fn namespaces_and_secrets_are_stored_and_read_back() {
    let client = admin_client().await;
    let namespace = TestNamespace::create(&client, "roundtrip").await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &namespace.name);
    secrets
        .create(&PostParams::default(), &secret("stored", "v1"))
        .await
        .unwrap();
    let read = secrets.get("stored").await.unwrap();
    let data = read
        .data
        .expect("the API server folds stringData into data");
    assert_eq!(data["key"].0, b"v1");
    let listed = secrets.list(&ListParams::default()).await.unwrap();
    assert!(
        listed
            .items
            .iter()
            .any(|s| s.metadata.name.as_deref() == Some("stored"))
    );
}

#[tokio::test]
async fn server_side_apply_records_the_field_manager_and_a_second_manager_conflicts() {
    let client = admin_client().await;
    let namespace = TestNamespace::create(&client, "ssa").await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), &namespace.name);
    let applied = secrets
        .patch(
            "applied",
            &PatchParams::apply("courier"),
            &Patch::Apply(secret("applied", "mine")),
        )
        .await
        .unwrap();
    let managers: Vec<String> = applied
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .filter_map(|f| f.manager)
        .collect();
    assert_eq!(managers, ["courier"]);

    let conflict = secrets
        .patch(
            "applied",
            &PatchParams::apply("someone-else"),
            &Patch::Apply(secret("applied", "theirs")),
        )
        .await
        .expect_err("a second manager changing courier's field conflicts");
    match conflict {
        kube::Error::Api(status) => assert_eq!(status.code, 409, "{status:?}"),
        other => panic!("expected a 409, got {other:?}"),
    }
    assert_eq!(
        secrets.get("applied").await.unwrap().data.unwrap()["key"].0,
        b"mine",
        "the conflict changed nothing"
    );
}

#[tokio::test]
async fn a_restricted_identity_is_forbidden_to_list_secrets_cluster_wide() {
    let restricted = client_as(Some("courier-test-nobody")).await;
    let error = Api::<Secret>::all(restricted)
        .list(&ListParams::default())
        .await
        .expect_err("RBAC denies");
    match error {
        kube::Error::Api(status) => assert_eq!(status.code, 403, "{status:?}"),
        other => panic!("expected a 403, got {other:?}"),
    }
    // The admin may: the 403 is RBAC, not a broken server.
    Api::<Secret>::all(admin_client().await)
        .list(&ListParams::default().limit(1))
        .await
        .unwrap();
}

#[tokio::test]
async fn version_reports_the_pinned_kubernetes_release() {
    let client = admin_client().await;
    let version = client.apiserver_version().await.unwrap();
    match &control_plane().expected_version {
        Some(expected) => assert_eq!(&version.git_version, expected),
        None => assert!(version.git_version.starts_with("v1."), "{version:?}"),
    }
}
