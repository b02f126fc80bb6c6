//! creationPolicy Merge and deletionPolicy on the real API server.

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, Patch, PatchParams};

use crate::apply::Platform;

fn ces(platform: &Platform, name: &str, source: &str, target: &str, policies: &str) -> String {
    format!(
        "---\napiVersion: external-secrets.io/v1\nkind: ClusterExternalSecret\nmetadata: {{name: {name}-{id}}}\nspec:\n  namespaceSelectors:\n  - matchLabels: {{{label}: \"true\"}}\n  externalSecretSpec:\n    secretStoreRef: {{kind: ClusterSecretStore, name: store-{id}}}\n    target: {{name: {target}, {policies}}}\n    dataFrom:\n    - extract: {{key: {source}}}\n",
        id = platform.id,
        label = platform.label
    )
}

fn store(platform: &Platform) -> String {
    platform.store()
}

fn write(platform: &Platform, text: &str) {
    std::fs::write(platform.manifests.path().join("manifests.yaml"), text).unwrap();
}

/// The platform's store and one ClusterExternalSecret per `(name, source, target,
/// policies)`, as its manifests.
fn write_ces(platform: &Platform, list: &[(&str, &str, &str, &str)]) {
    let mut text = store(platform);
    for (name, source, target, policies) in list {
        text.push_str(&ces(platform, name, source, target, policies));
    }
    write(platform, &text);
}

#[tokio::test]
async fn merge_adds_courier_keys_to_an_existing_secret_and_takes_back_only_its_own() {
    let platform = Platform::new("merge").await;
    let target = platform.target("merge-t", true).await;
    let secrets = Api::<Secret>::namespaced(platform.client.clone(), &target.name);
    let theirs: Secret = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "app-config", "labels": {"team": "app"}},
        "type": "Opaque",
        // `data`, as controllers write it: with `stringData` the API server records the
        // owner's claim on stringData, so data.own would have no owner and be released too.
        "data": {"own": "dGhlaXJz"}
    }))
    .unwrap();
    secrets
        .patch(
            "app-config",
            &PatchParams::apply("app-team"),
            &Patch::Apply(theirs),
        )
        .await
        .unwrap();
    write_ces(
        &platform,
        &[
            ("merge", "shared", "app-config", "creationPolicy: Merge"),
            ("nothing", "shared", "absent", "creationPolicy: Merge"),
        ],
    );

    let instance = format!("merge-{}", platform.id);
    let merged = platform.apply(&instance, &[]);
    // ESO (v2.9, CreatePolicyMerge) writes nothing where there is no Secret to merge
    // into, and reports no error.
    assert_eq!(merged.code, 0, "{}", merged.stderr);
    assert!(
        secrets.get_opt("absent").await.unwrap().is_none(),
        "Merge never creates the Secret"
    );
    assert!(
        merged.has("apply: 0 created, 1 updated"),
        "{}",
        merged.stderr
    );
    platform
        .assert_value(&target.name, "app-config", "own", Some("theirs"))
        .await;
    platform
        .assert_value(&target.name, "app-config", "password", Some("first-value"))
        .await;

    write_ces(
        &platform,
        &[("merge", "shared", "app-config", "creationPolicy: Merge")],
    );
    let again = platform.apply(&instance, &[]);
    assert!(
        again.has("apply: 0 created, 0 updated, 1 unchanged"),
        "a merged Secret's own keys do not cause rewrites: {}",
        again.stderr
    );

    // Every manifest retired: an input without one removes nothing unless told so.
    write(&platform, &store(&platform));
    let kept = platform.apply(&instance, &[]);
    assert_eq!(kept.code, 1, "{}", kept.stderr);
    assert!(kept.has("0 deleted, 0 released"), "{}", kept.stderr);
    assert!(kept.has("run again with --allow-empty"), "{}", kept.stderr);
    let released = platform.apply(&instance, &["--allow-empty"]);
    assert!(released.has("0 deleted, 1 released"), "{}", released.stderr);
    let after = secrets
        .get("app-config")
        .await
        .expect("a merged-into Secret is never deleted");
    let data = after.data.unwrap_or_default();
    assert_eq!(
        data.keys().cloned().collect::<Vec<_>>(),
        ["own"],
        "only courier's keys were taken back"
    );
    let labels = after.metadata.labels.unwrap_or_default();
    assert_eq!(labels.get("team").map(String::as_str), Some("app"));
    assert!(
        !labels.contains_key("app.kubernetes.io/managed-by"),
        "{labels:?}"
    );
}

#[tokio::test]
async fn deletion_policy_decides_what_happens_when_the_source_disappears() {
    let platform = Platform::new("delpol").await;
    let target = platform.target("delpol-t", true).await;
    platform.put_source("kept-source", &[("k", "kept")]).await;
    write_ces(
        &platform,
        &[
            (
                "gone",
                "shared",
                "deleted-with-source",
                "deletionPolicy: Delete",
            ),
            ("kept", "kept-source", "retained", "deletionPolicy: Retain"),
        ],
    );
    let instance = format!("delpol-{}", platform.id);
    assert_eq!(platform.apply(&instance, &[]).code, 0);
    let sources = Api::<Secret>::namespaced(platform.client.clone(), &platform.central.name);
    sources
        .delete("shared", &DeleteParams::default())
        .await
        .unwrap();
    sources
        .delete("kept-source", &DeleteParams::default())
        .await
        .unwrap();

    let outcome = platform.apply(&instance, &[]);
    assert_eq!(
        outcome.code, 1,
        "a missing source is still reported: {}",
        outcome.stderr
    );
    assert!(outcome.has("source Secret"), "{}", outcome.stderr);
    assert!(outcome.has("1 deleted"), "{}", outcome.stderr);
    platform
        .assert_value(&target.name, "deleted-with-source", "password", None)
        .await;
    platform
        .assert_value_because(
            &target.name,
            "retained",
            "k",
            Some("kept"),
            "Retain keeps the last value",
        )
        .await;
}

/// A ClusterExternalSecret writing `keys` (each read from the same-named property of
/// `source`) into `target`.
fn ces_with_keys(
    platform: &Platform,
    target: &str,
    source: &str,
    keys: &[&str],
    policies: &str,
) -> String {
    let data: String = keys
        .iter()
        .map(|k| format!("    - {{secretKey: {k}, remoteRef: {{key: {source}, property: {k}}}}}\n"))
        .collect();
    format!(
        "---\napiVersion: external-secrets.io/v1\nkind: ClusterExternalSecret\nmetadata: {{name: keys-{id}}}\nspec:\n  namespaceSelectors:\n  - matchLabels: {{{label}: \"true\"}}\n  externalSecretSpec:\n    secretStoreRef: {{kind: ClusterSecretStore, name: store-{id}}}\n    target: {{name: {target}, {policies}}}\n    data:\n{data}",
        id = platform.id,
        label = platform.label
    )
}

/// Another writer (field manager `app-team`) adds a key of its own to Secret `name`.
async fn add_their_key(secrets: &Api<Secret>, name: &str) {
    let theirs: Secret = serde_json::from_value(serde_json::json!({
        "metadata": {"name": name}, "data": {"theirs": "dGhlaXJz"}
    }))
    .unwrap();
    secrets
        .patch(name, &PatchParams::apply("app-team"), &Patch::Apply(theirs))
        .await
        .unwrap();
}

/// courier's (manager, operation) entries in a Secret's managedFields.
async fn courier_entries(secrets: &Api<Secret>, name: &str) -> Vec<String> {
    secrets
        .get(name)
        .await
        .unwrap()
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .filter(|f| f.manager.as_deref() == Some("courier"))
        .map(|f| f.operation.unwrap_or_default())
        .collect()
}

/// Deletes the source `two-keys`: deletionPolicy Merge then takes back courier's keys.
/// Answers the Secret after that apply, which must have kept only the other writer's key.
async fn release_by_deleting_the_source(
    platform: &Platform,
    secrets: &Api<Secret>,
    instance: &str,
) -> Secret {
    Api::<Secret>::namespaced(platform.client.clone(), &platform.central.name)
        .delete("two-keys", &DeleteParams::default())
        .await
        .unwrap();
    let released = platform.apply(instance, &[]);
    assert!(released.has("1 released"), "{}", released.stderr);
    let after = secrets.get("creds").await.expect("Merge keeps the Secret");
    let keys: Vec<String> = after.data.iter().flat_map(|d| d.keys().cloned()).collect();
    assert_eq!(keys, ["theirs"]);
    after
}

#[tokio::test]
async fn a_target_courier_created_is_owned_as_if_applied_dropped_keys_go_and_others_stay() {
    let platform = Platform::new("created").await;
    let target = platform.target("created-t", true).await;
    let secrets = Api::<Secret>::namespaced(platform.client.clone(), &target.name);
    platform
        .put_source("two-keys", &[("a", "first-a"), ("b", "first-b")])
        .await;
    let instance = format!("created-{}", platform.id);
    let policies = "deletionPolicy: Merge";
    write(
        &platform,
        &(store(&platform) + &ces_with_keys(&platform, "creds", "two-keys", &["a", "b"], policies)),
    );
    let created = platform.apply(&instance, &[]);
    assert!(created.has("apply: 1 created"), "{}", created.stderr);
    assert_eq!(
        courier_entries(&secrets, "creds").await,
        ["Update"],
        "a create (POST) records courier's fields as an Update"
    );

    // Another writer adds a key of its own to the Secret courier created.
    add_their_key(&secrets, "creds").await;

    // The manifest stops writing key b and the source changes a: courier's next apply
    // removes b (it is courier's, as if applied from the start), keeps theirs.
    platform
        .put_source("two-keys", &[("a", "second-a"), ("b", "first-b")])
        .await;
    write(
        &platform,
        &(store(&platform) + &ces_with_keys(&platform, "creds", "two-keys", &["a"], policies)),
    );
    let updated = platform.apply(&instance, &[]);
    assert!(
        updated.has("apply: 0 created, 1 updated"),
        "{}",
        updated.stderr
    );
    let data = secrets.get("creds").await.unwrap().data.unwrap_or_default();
    assert_eq!(
        data.keys().cloned().collect::<Vec<_>>(),
        ["a", "theirs"],
        "the dropped key is gone, the other writer's stays"
    );
    platform
        .assert_value(&target.name, "creds", "a", Some("second-a"))
        .await;
    assert_eq!(
        courier_entries(&secrets, "creds").await,
        ["Apply"],
        "ownership moved to server-side apply, with no Update entry left behind"
    );
    // The source disappears; deletionPolicy Merge takes back courier's keys and labels
    // and leaves the Secret with the other writer's key.
    let after = release_by_deleting_the_source(&platform, &secrets, &instance).await;
    assert!(
        !after
            .metadata
            .labels
            .unwrap_or_default()
            .contains_key("app.kubernetes.io/managed-by"),
        "courier's labels went with its keys"
    );
}

#[tokio::test]
async fn a_value_change_to_a_created_target_moves_no_ownership_and_a_later_dropped_key_still_goes()
{
    let platform = Platform::new("created-later").await;
    let target = platform.target("created-l", true).await;
    let secrets = Api::<Secret>::namespaced(platform.client.clone(), &target.name);
    platform
        .put_source("two-keys", &[("a", "first-a"), ("b", "first-b")])
        .await;
    let instance = format!("created-later-{}", platform.id);
    let manifest = |keys: &[&str]| {
        store(&platform)
            + &ces_with_keys(
                &platform,
                "creds",
                "two-keys",
                keys,
                "deletionPolicy: Merge",
            )
    };
    write(&platform, &manifest(&["a", "b"]));
    let created = platform.apply(&instance, &[]);
    assert!(created.has("apply: 1 created"), "{}", created.stderr);

    // Only a value changes: the apply writes every field the Secret has, so it removes
    // nothing and the create's Update entry is left as it is (no extra write).
    platform
        .put_source("two-keys", &[("a", "second-a"), ("b", "first-b")])
        .await;
    let changed = platform.apply(&instance, &[]);
    assert!(changed.has("0 created, 1 updated"), "{}", changed.stderr);
    platform
        .assert_value(&target.name, "creds", "a", Some("second-a"))
        .await;
    let mut entries = courier_entries(&secrets, "creds").await;
    entries.sort();
    assert_eq!(
        entries,
        ["Apply", "Update"],
        "a value change needs no ownership move"
    );

    // Now the manifest stops writing b: that apply leaves out a field, so the two entries
    // become one Apply entry first, and b goes.
    write(&platform, &manifest(&["a"]));
    let dropped = platform.apply(&instance, &[]);
    assert!(dropped.has("0 created, 1 updated"), "{}", dropped.stderr);
    let data = secrets.get("creds").await.unwrap().data.unwrap_or_default();
    assert_eq!(data.keys().cloned().collect::<Vec<_>>(), ["a"]);
    assert_eq!(courier_entries(&secrets, "creds").await, ["Apply"]);

    // And a release after all this still takes back exactly courier's keys and labels.
    add_their_key(&secrets, "creds").await;
    release_by_deleting_the_source(&platform, &secrets, &instance).await;
}

#[tokio::test]
async fn a_created_target_released_before_any_update_loses_exactly_courier_s_keys() {
    let platform = Platform::new("created-release").await;
    let target = platform.target("created-r", true).await;
    let secrets = Api::<Secret>::namespaced(platform.client.clone(), &target.name);
    platform.put_source("one-key", &[("a", "value-a")]).await;
    let instance = format!("created-release-{}", platform.id);
    write(
        &platform,
        &(store(&platform)
            + &ces_with_keys(
                &platform,
                "creds",
                "one-key",
                &["a"],
                "deletionPolicy: Merge",
            )),
    );
    assert!(platform.apply(&instance, &[]).has("apply: 1 created"));
    add_their_key(&secrets, "creds").await;
    Api::<Secret>::namespaced(platform.client.clone(), &platform.central.name)
        .delete("one-key", &DeleteParams::default())
        .await
        .unwrap();
    // The release is the first server-side apply this target sees.
    let released = platform.apply(&instance, &[]);
    assert!(released.has("1 released"), "{}", released.stderr);
    let after = secrets.get("creds").await.unwrap();
    assert_eq!(
        after
            .data
            .unwrap_or_default()
            .keys()
            .cloned()
            .collect::<Vec<_>>(),
        ["theirs"]
    );
}

/// An unmanaged Secret `creds` in `namespace`: someone else's, with their type, labels,
/// annotations and keys.
async fn their_secret(secrets: &Api<Secret>) {
    let theirs: Secret = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "creds", "labels": {"team": "app"}, "annotations": {"note": "theirs"}},
        "type": "example.com/custom",
        "data": {"own": "dGhlaXJz", "password": "b2xk"}
    }))
    .unwrap();
    secrets
        .patch(
            "creds",
            &PatchParams::apply("app-team"),
            &Patch::Apply(theirs),
        )
        .await
        .unwrap();
}

#[tokio::test]
async fn an_existing_secret_courier_did_not_write_is_refused_by_default_and_adopted_on_request() {
    let platform = Platform::new("adoptx").await;
    let target = platform.target("adoptx-t", true).await;
    let secrets = Api::<Secret>::namespaced(platform.client.clone(), &target.name);
    their_secret(&secrets).await;
    write_ces(
        &platform,
        &[
            ("adopt", "shared", "creds", "creationPolicy: Owner"),
            ("other", "shared", "other", "creationPolicy: Owner"),
        ],
    );
    let instance = format!("adoptx-{}", platform.id);

    // By default: refused, left untouched.
    let refused = platform.apply(&instance, &[]);
    assert_eq!(refused.code, 1, "{}", refused.stderr);
    assert!(
        refused.has("is not managed by courier"),
        "{}",
        refused.stderr
    );
    platform
        .assert_value(&target.name, "creds", "password", Some("old"))
        .await;

    // Asked to: adopted in place, as ESO adopts it; its type, labels, annotations and
    // other keys stay.
    let adopted = platform.apply(&instance, &["--adopt-existing-targets"]);
    assert_eq!(adopted.code, 0, "{}", adopted.stderr);
    let secret = secrets.get("creds").await.unwrap();
    assert_eq!(secret.type_.as_deref(), Some("example.com/custom"));
    assert_eq!(secret.metadata.labels.as_ref().unwrap()["team"], "app");
    assert_eq!(
        secret.metadata.annotations.as_ref().unwrap()["note"],
        "theirs"
    );
    platform
        .assert_value(&target.name, "creds", "password", Some("first-value"))
        .await;
    platform
        .assert_value(&target.name, "creds", "own", Some("theirs"))
        .await;
    let again = platform.apply(&instance, &["--adopt-existing-targets"]);
    assert!(
        again.has("0 created, 0 updated, 2 unchanged"),
        "an adopted Secret is current once written: {}",
        again.stderr
    );

    // No longer wanted: courier takes back only its own fields.
    write_ces(
        &platform,
        &[("other", "shared", "other", "creationPolicy: Owner")],
    );
    let released = platform.apply(&instance, &["--adopt-existing-targets"]);
    assert!(released.has("1 released"), "{}", released.stderr);
    let after = secrets
        .get("creds")
        .await
        .expect("the adopted Secret stays");
    let keys: Vec<String> = after.data.iter().flat_map(|d| d.keys().cloned()).collect();
    assert_eq!(keys, ["own"]);
    assert_eq!(after.type_.as_deref(), Some("example.com/custom"));
}

#[tokio::test]
async fn no_data_under_retain_or_delete_creates_nothing_and_keeps_the_existing_target() {
    let platform = Platform::new("nodata").await;
    let target = platform.target("nodata-t", true).await;
    let secrets = Api::<Secret>::namespaced(platform.client.clone(), &target.name);
    platform.put_source("fills", &[("k", "v1")]).await;
    platform.put_source("empty", &[]).await;
    write_ces(
        &platform,
        &[
            ("kept", "fills", "kept", "deletionPolicy: Retain"),
            (
                "deleted",
                "fills",
                "deleted",
                "creationPolicy: Owner, deletionPolicy: Delete",
            ),
            ("never", "empty", "never", "deletionPolicy: Retain"),
        ],
    );
    let instance = format!("nodata-{}", platform.id);
    let first = platform.apply(&instance, &[]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert!(first.has("2 created"), "{}", first.stderr);
    assert!(
        secrets.get_opt("never").await.unwrap().is_none(),
        "no data: nothing is created"
    );
    assert!(
        first.has("never: the provider returned no data"),
        "{}",
        first.stderr
    );

    // The source empties: ESO writes nothing (Retain keeps, Delete would delete); courier
    // keeps both targets untouched and says so.
    let empty: Secret =
        serde_json::from_value(serde_json::json!({"metadata": {"name": "fills"}, "data": {}}))
            .unwrap();
    Api::<Secret>::namespaced(platform.client.clone(), &platform.central.name)
        .replace("fills", &Default::default(), &{
            let mut current =
                Api::<Secret>::namespaced(platform.client.clone(), &platform.central.name)
                    .get("fills")
                    .await
                    .unwrap();
            current.data = empty.data;
            current.string_data = None;
            current
        })
        .await
        .unwrap();
    let emptied = platform.apply(&instance, &[]);
    assert_eq!(emptied.code, 0, "{}", emptied.stderr);
    assert!(emptied.has("0 deleted"), "{}", emptied.stderr);
    for name in ["kept", "deleted"] {
        platform
            .assert_value_because(
                &target.name,
                name,
                "k",
                Some("v1"),
                &format!("{name} kept untouched"),
            )
            .await;
        assert!(
            emptied.has(&format!("{name}: the provider returned no data")),
            "{}",
            emptied.stderr
        );
    }
}

#[tokio::test]
async fn create_or_merge_merges_into_an_existing_secret_and_creates_a_missing_one() {
    let platform = Platform::new("com").await;
    let target = platform.target("com-t", true).await;
    let secrets = Api::<Secret>::namespaced(platform.client.clone(), &target.name);
    their_secret(&secrets).await;
    write_ces(
        &platform,
        &[
            ("into", "shared", "creds", "creationPolicy: CreateOrMerge"),
            ("new", "shared", "fresh", "creationPolicy: CreateOrMerge"),
        ],
    );
    let instance = format!("com-{}", platform.id);
    let applied = platform.apply(&instance, &[]);
    assert_eq!(applied.code, 0, "{}", applied.stderr);
    assert!(applied.has("1 created, 1 updated"), "{}", applied.stderr);
    // Merged: courier's keys on top, the owner's key, type and labels stay.
    let merged = secrets.get("creds").await.unwrap();
    assert_eq!(merged.type_.as_deref(), Some("example.com/custom"));
    assert_eq!(merged.metadata.labels.as_ref().unwrap()["team"], "app");
    platform
        .assert_value(&target.name, "creds", "own", Some("theirs"))
        .await;
    platform
        .assert_value(&target.name, "creds", "password", Some("first-value"))
        .await;
    // Created where there was none.
    platform
        .assert_value(&target.name, "fresh", "password", Some("first-value"))
        .await;
    let again = platform.apply(&instance, &[]);
    assert!(again.has("2 unchanged"), "{}", again.stderr);
}
