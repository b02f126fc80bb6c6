//! Switching from External Secrets Operator: a Secret ESO made is refused by default,
//! refused while ESO still refreshes its ExternalSecret, and adopted with `--adopt-eso`
//! once ESO has stopped: ESO's owner reference and label come off, courier's go on.

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams, PostParams};

use crate::apply::Platform;
use crate::support::install_eso_crds;

fn external_secret_resource() -> ApiResource {
    ApiResource {
        group: "external-secrets.io".into(),
        version: "v1".into(),
        api_version: "external-secrets.io/v1".into(),
        kind: "ExternalSecret".into(),
        plural: "externalsecrets".into(),
    }
}

async fn set_refresh_time(api: &Api<DynamicObject>, name: &str, seconds_ago: i64) {
    let at = jiff::Timestamp::now() - jiff::SignedDuration::from_secs(seconds_ago);
    let at = at.strftime("%Y-%m-%dT%H:%M:%SZ").to_string();
    let patch = serde_json::json!({"status": {"refreshTime": at}});
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_secret_eso_made_is_adopted_only_when_asked_and_only_once_eso_has_stopped() {
    let platform = Platform::new("adopt").await;
    install_eso_crds(&platform.client).await;
    let app = platform.target("adopt-app", true).await;
    // What ESO left for the ClusterExternalSecret creds-<id>: an ExternalSecret of the
    // same name in the namespace, and the Secret it owns.
    let es_name = format!("creds-{}", platform.id);
    let external_secrets: Api<DynamicObject> = Api::namespaced_with(
        platform.client.clone(),
        &app.name,
        &external_secret_resource(),
    );
    let mut es = DynamicObject::new(&es_name, &external_secret_resource());
    es.data = serde_json::json!({"spec": {
        "refreshInterval": "1h",
        "secretStoreRef": {"kind": "ClusterSecretStore", "name": format!("store-{}", platform.id)},
        "target": {"name": "creds"},
        "dataFrom": [{"extract": {"key": "shared"}}],
    }});
    let es = external_secrets
        .create(&PostParams::default(), &es)
        .await
        .unwrap();
    set_refresh_time(&external_secrets, &es_name, 60).await;
    let eso_secret: Secret = serde_json::from_value(serde_json::json!({
        "metadata": {
            "name": "creds",
            "labels": {"reconcile.external-secrets.io/managed": "true"},
            "annotations": {"reconcile.external-secrets.io/data-hash": "abc"},
            "ownerReferences": [{
                "apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
                "name": es_name, "uid": es.metadata.uid.clone().unwrap(),
                "controller": true, "blockOwnerDeletion": true,
            }],
        },
        "stringData": {"password": "eso-wrote-this"},
    }))
    .unwrap();
    let secrets = Api::<Secret>::namespaced(platform.client.clone(), &app.name);
    secrets
        .create(&PostParams::default(), &eso_secret)
        .await
        .unwrap();
    let instance = format!("adopt-{}", platform.id);

    let refused = platform.apply(&instance, &[]);
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(
        refused.has(&format!(
            "error: Secret {}/creds: is managed by External Secrets Operator (ExternalSecret {}/{es_name}); left untouched",
            app.name, app.name
        )),
        "{}",
        refused.stderr
    );
    assert!(refused.has("--adopt-eso"), "{}", refused.stderr);

    let still_running = platform.apply(&instance, &["--adopt-eso"]);
    assert_eq!(still_running.code, 1, "{}", still_running.stderr);
    assert!(
        still_running.has("ESO still reconciles it"),
        "{}",
        still_running.stderr
    );
    platform
        .assert_value_because(
            &app.name,
            "creds",
            "password",
            Some("eso-wrote-this"),
            "nothing is written while ESO runs",
        )
        .await;

    // ESO stopped: its last refresh is older than its refresh interval.
    set_refresh_time(&external_secrets, &es_name, 2 * 3600).await;
    let adopted = platform.apply(&instance, &["--adopt-eso"]);
    assert_eq!(adopted.code, 0, "{}", adopted.stderr);
    assert!(adopted.has("1 adopted from ESO"), "{}", adopted.stderr);
    let secret = secrets.get("creds").await.unwrap();
    platform
        .assert_value(&app.name, "creds", "password", Some("first-value"))
        .await;
    let labels = secret.metadata.labels.clone().unwrap_or_default();
    assert_eq!(
        labels
            .get("app.kubernetes.io/managed-by")
            .map(String::as_str),
        Some("courier")
    );
    assert!(!labels.contains_key("reconcile.external-secrets.io/managed"));
    assert!(
        secret
            .metadata
            .owner_references
            .unwrap_or_default()
            .is_empty(),
        "deleting ESO's ExternalSecret must not garbage-collect the Secret"
    );
    let annotations = secret.metadata.annotations.unwrap_or_default();
    assert!(!annotations.contains_key("reconcile.external-secrets.io/data-hash"));

    // From now on it is courier's: a plain apply is a no-op.
    let again = platform.apply(&instance, &[]);
    assert_eq!(again.code, 0, "{}", again.stderr);
    assert!(again.has("0 created, 0 updated"), "{}", again.stderr);
}
