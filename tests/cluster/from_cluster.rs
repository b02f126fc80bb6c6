//! `--from-cluster`: manifests read from the API (ESO CRDs, no ESO controller), status and
//! Events written back as ESO would.

use std::process::Command;

use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams, PostParams};

use crate::apply::Platform;
use crate::support::{control_plane, install_eso_crds};

fn eso(kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("external-secrets.io", "v1", kind),
        plural,
    )
}

fn apply_from_cluster(instance: &str) -> (i32, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_courier"))
        .args([
            "apply",
            "--from-cluster",
            "--kubeconfig",
            control_plane().kubeconfig.to_str().unwrap(),
            "--instance",
            instance,
        ])
        .env_remove("KUBECONFIG")
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8(output.stderr).unwrap(),
    )
}

/// The platform's manifests (its ClusterSecretStore and ClusterExternalSecrets) created as
/// ESO objects in the cluster.
async fn create_platform_objects(platform: &Platform) {
    let text = std::fs::read_to_string(platform.manifests.path().join("manifests.yaml")).unwrap();
    for document in serde_saphyr::from_multiple::<serde_json::Value>(&text).unwrap() {
        let kind = document["kind"].as_str().unwrap().to_owned();
        let plural = if kind == "ClusterSecretStore" {
            "clustersecretstores"
        } else {
            "clusterexternalsecrets"
        };
        let object: DynamicObject = serde_json::from_value(document).unwrap();
        Api::<DynamicObject>::all_with(platform.client.clone(), &eso(&kind, plural))
            .create(&PostParams::default(), &object)
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn manifests_come_from_the_cluster_and_get_eso_status_and_events() {
    let _alone = crate::support::FROM_CLUSTER_ON_THE_SHARED_PLANE
        .lock()
        .await;
    let platform = Platform::new("fc").await;
    install_eso_crds(&platform.client).await;
    let target = platform.target("fc-t", true).await;
    create_platform_objects(&platform).await;
    let broken: DynamicObject = serde_json::from_value(serde_json::json!({
        "apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
        "metadata": {"name": "broken", "namespace": target.name},
        "spec": {
            "secretStoreRef": {"kind": "ClusterSecretStore", "name": format!("store-{}", platform.id)},
            "data": [{"secretKey": "k", "remoteRef": {"key": "no-such-source"}}]
        }
    }))
    .unwrap();
    // ESO's own CRDs (v1.3.2) serve v1 only; v1beta1 manifests are read from files.
    Api::<DynamicObject>::namespaced_with(
        platform.client.clone(),
        &target.name,
        &eso("ExternalSecret", "externalsecrets"),
    )
    .create(&PostParams::default(), &broken)
    .await
    .unwrap();
    let external_secrets = Api::<DynamicObject>::namespaced_with(
        platform.client.clone(),
        &target.name,
        &eso("ExternalSecret", "externalsecrets"),
    );

    let instance = format!("fc-{}", platform.id);
    let (code, stderr) = apply_from_cluster(&instance);
    assert_eq!(code, 1, "the broken ExternalSecret fails the run: {stderr}");
    assert!(stderr.contains(&format!("cluster: ExternalSecret/{}/broken: target {}/broken: data[0] (secretKey \"k\"): source Secret", target.name, target.name)), "{stderr}");
    platform
        .assert_value(&target.name, "creds", "password", Some("first-value"))
        .await;

    // diff --from-cluster (the README's migration runs it): the same manifests compared;
    // the applied target is in sync, the broken ExternalSecret an error (exit 2).
    let diff = Command::new(env!("CARGO_BIN_EXE_courier"))
        .args(["diff", "--from-cluster", "--instance", &instance])
        .args(["--kubeconfig", control_plane().kubeconfig.to_str().unwrap()])
        .env_remove("KUBECONFIG")
        .output()
        .unwrap();
    let (diff_out, diff_err) = (
        String::from_utf8(diff.stdout).unwrap(),
        String::from_utf8(diff.stderr).unwrap(),
    );
    assert_eq!(diff.status.code(), Some(2), "{diff_out}{diff_err}");
    assert!(
        diff_err.contains(&format!("ExternalSecret/{}/broken", target.name)),
        "{diff_err}"
    );
    assert!(
        !diff_out.contains(&format!("Secret {}/creds", target.name)),
        "the applied target is in sync: {diff_out}"
    );

    let cluster_external_secrets = Api::<DynamicObject>::all_with(
        platform.client.clone(),
        &eso("ClusterExternalSecret", "clusterexternalsecrets"),
    );
    let ces = cluster_external_secrets
        .get(&format!("creds-{}", platform.id))
        .await
        .unwrap();
    let status = &ces.data["status"];
    assert_eq!(
        status["provisionedNamespaces"],
        serde_json::json!([target.name]),
        "{status}"
    );
    assert_eq!(status["conditions"][0]["type"], "Ready");
    assert_eq!(status["conditions"][0]["status"], "True", "{status}");

    let es = external_secrets.get("broken").await.unwrap();
    let condition = &es.data["status"]["conditions"][0];
    assert_eq!(condition["status"], "False", "{condition}");
    assert_eq!(condition["reason"], "SecretSyncedError");
    // ESO's own message; what went wrong is in the Event, as ESO puts it.
    assert_eq!(
        condition["message"], "could not get secret data from provider",
        "{condition}"
    );

    let events = Api::<Event>::namespaced(platform.client.clone(), &target.name)
        .list(&ListParams::default())
        .await
        .unwrap();
    let event = events
        .items
        .iter()
        .find(|e| e.involved_object.name.as_deref() == Some("broken"))
        .expect("a failure Event");
    assert_eq!(event.reason.as_deref(), Some("UpdateFailed"));
    assert_eq!(event.type_.as_deref(), Some("Warning"));
    assert!(
        event
            .message
            .as_deref()
            .is_some_and(|m| m.contains("no-such-source")),
        "{event:?}"
    );

    // Nothing changed: no status is written again, no new Event.
    let before = (
        ces.metadata.resource_version.clone(),
        es.metadata.resource_version.clone(),
    );
    let (_, stderr) = apply_from_cluster(&instance);
    assert!(
        stderr.contains("0 created, 0 updated, 1 unchanged"),
        "{stderr}"
    );
    let ces = cluster_external_secrets
        .get(&format!("creds-{}", platform.id))
        .await
        .unwrap();
    let es = external_secrets.get("broken").await.unwrap();
    assert_eq!(
        (ces.metadata.resource_version, es.metadata.resource_version),
        before
    );
    let events_after = Api::<Event>::namespaced(platform.client.clone(), &target.name)
        .list(&ListParams::default())
        .await
        .unwrap();
    assert_eq!(events_after.items.len(), events.items.len());
}

#[tokio::test]
async fn a_tenant_external_secret_naming_a_platform_target_does_not_delete_it() {
    let _alone = crate::support::FROM_CLUSTER_ON_THE_SHARED_PLANE
        .lock()
        .await;
    let platform = Platform::new("fcdup").await;
    install_eso_crds(&platform.client).await;
    let a = platform.target("fcdup-a", true).await;
    let b = platform.target("fcdup-b", true).await;
    create_platform_objects(&platform).await;
    let instance = format!("fcdup-{}", platform.id);
    // The control plane is shared: other tests' ESO objects are read too, and may fail
    // (the exit code is theirs); this test's own must not.
    let (_, stderr) = apply_from_cluster(&instance);
    let ours = |line: &&str| line.contains(&a.name) || line.contains(&b.name);
    assert!(
        !stderr
            .lines()
            .filter(|l| l.starts_with("error"))
            .any(|l| ours(&l)),
        "{stderr}"
    );
    platform
        .assert_value(&a.name, "creds", "password", Some("first-value"))
        .await;

    // A tenant of namespace a, who may write ExternalSecrets there, writes one whose
    // target is the platform's `creds`. ESO fails the tenant's (the Secret is owned by
    // the ClusterExternalSecret's ExternalSecret) and keeps the Secret.
    let mine: DynamicObject = serde_json::from_value(serde_json::json!({
        "apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
        "metadata": {"name": "mine", "namespace": a.name},
        "spec": {
            "secretStoreRef": {"kind": "ClusterSecretStore", "name": format!("store-{}", platform.id)},
            "target": {"name": "creds"},
            "dataFrom": [{"extract": {"key": "shared"}}]
        }
    }))
    .unwrap();
    Api::<DynamicObject>::namespaced_with(
        platform.client.clone(),
        &a.name,
        &eso("ExternalSecret", "externalsecrets"),
    )
    .create(&PostParams::default(), &mine)
    .await
    .unwrap();
    let (code, stderr) = apply_from_cluster(&instance);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("the same Secret is written by"), "{stderr}");
    platform
        .assert_value_because(&b.name, "creds", "password", Some("first-value"), &stderr)
        .await;
    platform
        .assert_value_because(&a.name, "creds", "password", Some("first-value"), &stderr)
        .await;
}
