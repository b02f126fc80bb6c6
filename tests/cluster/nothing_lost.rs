//! Nothing lost: stdin read once, an empty input or a selector typo pruning nothing, the
//! `--max-deletions` cap, and instance hand-over, on the real API server.

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams, Patch, PatchParams};

use crate::apply::Platform;
use crate::run::{http_get, within};
use crate::support::control_plane;

/// Runs courier with `stdin` piped in: (exit code, stdout, stderr).
fn courier_piped(args: &[&str], stdin: &str) -> (i32, String, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_courier"))
        .args(args)
        .args(["--kubeconfig", control_plane().kubeconfig.to_str().unwrap()])
        .env_remove("KUBECONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(!stderr.contains("panicked"), "{stderr}");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8(output.stdout).unwrap(),
        stderr,
    )
}

fn manifests_text(platform: &Platform) -> String {
    std::fs::read_to_string(platform.manifests.path().join("manifests.yaml")).unwrap()
}

/// The targets of `instance` that exist, `namespace/name`, sorted.
async fn targets_of(platform: &Platform, instance: &str) -> Vec<String> {
    let list = Api::<Secret>::all(platform.client.clone())
        .list_metadata(&ListParams::default().labels(&format!("courier.dev/instance={instance}")))
        .await
        .unwrap();
    let mut names: Vec<String> = list
        .items
        .iter()
        .map(|s| {
            format!(
                "{}/{}",
                s.metadata.namespace.as_deref().unwrap_or_default(),
                s.metadata.name.as_deref().unwrap_or_default()
            )
        })
        .collect();
    names.sort();
    names
}

#[tokio::test]
async fn stdin_is_read_once_so_apply_diff_and_run_of_a_pipe_equal_the_files() {
    let platform = Platform::new("stdin").await;
    let instance = format!("stdin-{}", platform.id);
    let a = platform.target("stdin-a", true).await;
    let b = platform.target("stdin-b", true).await;
    let first = platform.apply(&instance, &[]);
    assert!(first.has("apply: 2 created"), "{}", first.stderr);
    let text = manifests_text(&platform);

    // apply - : in sync with what the path applied; before, stdin was read empty the
    // second time and every target was deleted.
    let (code, stdout, stderr) = courier_piped(&["apply", "-", "--instance", &instance], &text);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.is_empty());
    assert!(
        stderr.contains("apply: 0 created, 0 updated, 2 unchanged, 0 deleted"),
        "{stderr}"
    );

    // `-` twice is stdin once, not every object twice.
    let (code, _, stderr) = courier_piped(&["diff", "-", "-", "--instance", &instance], &text);
    assert_eq!(code, 0, "in sync: {stderr}");
    assert!(
        stderr.contains("diff: 0 to create, 0 to update, 0 to remove, 2 in sync"),
        "{stderr}"
    );

    // run - : its reconciles (the first, and one woken by a label) all see the manifests.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_courier"))
        .args(["run", "-", "--instance", &instance, "--debounce", "100ms"])
        .args(["--kubeconfig", control_plane().kubeconfig.to_str().unwrap()])
        .args(["--metrics-addr", &format!("127.0.0.1:{port}")])
        .env_remove("KUBECONFIG")
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    within(Duration::from_secs(15), "run's first reconcile", || async {
        http_get(port, "/readyz").0 == 200
    })
    .await;
    let c = platform.target("stdin-c", true).await;
    within(
        Duration::from_secs(15),
        "run's second reconcile",
        || async { platform.value(&c.name, "creds", "password").await.is_some() },
    )
    .await;
    let _ = child.kill();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        !stderr.contains("deleted") && !stderr.contains("refused"),
        "{stderr}"
    );
    assert_eq!(
        targets_of(&platform, &instance).await,
        [
            format!("{}/creds", a.name),
            format!("{}/creds", b.name),
            format!("{}/creds", c.name)
        ]
        .into_iter()
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn an_empty_input_or_a_selector_typo_prunes_nothing_and_says_why() {
    let platform = Platform::new("empty").await;
    let instance = format!("empty-{}", platform.id);
    let a = platform.target("empty-a", true).await;
    let b = platform.target("empty-b", true).await;
    assert!(platform.apply(&instance, &[]).has("apply: 2 created"));
    let before = targets_of(&platform, &instance).await;
    assert_eq!(before.len(), 2);

    // An empty pipe, and an empty file: nothing removed, an error that says why.
    for (args, stdin) in [
        (vec!["apply", "-", "--instance", &instance], ""),
        (vec!["diff", "-", "--instance", &instance], ""),
    ] {
        let (code, _, stderr) = courier_piped(&args, stdin);
        assert_eq!(code, if args[0] == "diff" { 2 } else { 1 }, "{stderr}");
        assert!(
            stderr.contains(
                "refused to remove 2 targets: the input holds no ExternalSecret or ClusterExternalSecret"
            ),
            "{stderr}"
        );
        assert!(stderr.contains("hint: "), "{stderr}");
    }
    let empty = tempfile::NamedTempFile::new().unwrap();
    let outcome = crate::apply::courier_apply(empty.path().to_str().unwrap(), &instance, &[]);
    assert_eq!(outcome.code, 1, "{}", outcome.stderr);
    assert!(
        outcome.has("refused to remove 2 targets"),
        "{}",
        outcome.stderr
    );
    assert_eq!(targets_of(&platform, &instance).await, before);

    // A typo in the selector's label: the manifest selects nothing; its targets stay.
    let mut names = [a.name.clone(), b.name.clone()];
    names.sort();
    let typo = manifests_text(&platform).replace(&platform.label, "courier-test/wnats");
    let (code, _, stderr) = courier_piped(&["apply", "-", "--instance", &instance], &typo);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "ClusterExternalSecret/creds-{} selects no namespace now: its 2 targets are kept ({}/creds, {}/creds)",
            platform.id, names[0], names[1]
        )),
        "{stderr}"
    );
    assert!(stderr.contains("0 deleted"), "{stderr}");
    assert_eq!(targets_of(&platform, &instance).await, before);
}

#[tokio::test]
async fn a_removal_above_max_deletions_removes_none_until_allowed() {
    let platform = Platform::new("maxdel").await;
    let instance = format!("maxdel-{}", platform.id);
    let mut namespaces = Vec::new();
    for prefix in ["maxdel-a", "maxdel-b", "maxdel-c"] {
        namespaces.push(platform.target(prefix, true).await);
    }
    let first = platform.apply(&instance, &[]);
    assert!(first.has("apply: 3 created"), "{}", first.stderr);

    // The manifest renamed (as a file missing from a ConfigMap would do): three to go,
    // three to create. The cap stops the removals, not the creates.
    platform.write_manifests(&[("shared", "renamed")]);
    let capped = platform.apply(&instance, &["--max-deletions", "2"]);
    assert_eq!(capped.code, 1, "{}", capped.stderr);
    assert!(
        capped.has(
            "refused to remove 3 targets, more than --max-deletions 2 allows; none was removed"
        ),
        "{}",
        capped.stderr
    );
    assert!(
        capped.has("run again with --max-deletions 3"),
        "{}",
        capped.stderr
    );
    assert!(
        capped.has("apply: 3 created, 0 updated, 0 unchanged, 0 deleted"),
        "{}",
        capped.stderr
    );
    assert!(
        capped.has(&format!(
            "ClusterExternalSecret/creds-{} is not in the input any more: its 3 targets are removed",
            platform.id
        )),
        "{}",
        capped.stderr
    );
    assert_eq!(targets_of(&platform, &instance).await.len(), 6);

    let allowed = platform.apply(&instance, &["--max-deletions", "3"]);
    assert_eq!(allowed.code, 0, "{}", allowed.stderr);
    assert!(allowed.has("3 unchanged, 3 deleted"), "{}", allowed.stderr);
    assert_eq!(targets_of(&platform, &instance).await.len(), 3);
}

#[tokio::test]
async fn a_target_of_another_instance_says_how_to_hand_it_over() {
    let platform = Platform::new("handover").await;
    let old = format!("old-{}", platform.id);
    let new = format!("new-{}", platform.id);
    let target = platform.target("handover-a", true).await;
    assert!(platform.apply(&old, &[]).has("apply: 1 created"));

    let refused = platform.apply(&new, &[]);
    assert_eq!(refused.code, 1);
    let command = format!(
        "kubectl label secrets -A -l courier.dev/instance={old} courier.dev/instance={new} --overwrite"
    );
    assert!(refused.has(&command), "{}", refused.stderr);

    // What the hint says, done through the API: the new instance owns it.
    let relabel = serde_json::json!({"metadata": {"labels": {"courier.dev/instance": new}}});
    Api::<Secret>::namespaced(platform.client.clone(), &target.name)
        .patch("creds", &PatchParams::default(), &Patch::Merge(relabel))
        .await
        .unwrap();
    let taken = platform.apply(&new, &[]);
    assert_eq!(taken.code, 0, "{}", taken.stderr);
    assert!(
        taken.has("0 created, 0 updated, 1 unchanged"),
        "{}",
        taken.stderr
    );
}

/// An ExternalSecret in `namespace` writing `target` from the platform's `shared` source.
fn external_secret(platform: &Platform, namespace: &str, name: &str, target: &str) -> String {
    format!(
        "---\napiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {{name: {name}, namespace: {namespace}}}\nspec:\n  secretStoreRef: {{kind: ClusterSecretStore, name: store-{id}}}\n  target: {{name: {target}}}\n  dataFrom:\n  - extract: {{key: shared}}\n",
        id = platform.id
    )
}

#[tokio::test]
async fn a_second_manifest_writing_the_same_target_keeps_it() {
    let platform = Platform::new("twice").await;
    let instance = format!("twice-{}", platform.id);
    let app = platform.target("twice-app", false).await;
    let path = platform.manifests.path().join("manifests.yaml");
    let first = platform.store() + &external_secret(&platform, &app.name, "db", "db-creds");
    std::fs::write(&path, &first).unwrap();
    let created = platform.apply(&instance, &[]);
    assert!(created.has("apply: 1 created"), "{}", created.stderr);

    // A copy-paste: a second ExternalSecret in the namespace names the same target. ESO
    // fails the second (the Secret is owned by the first) and keeps the Secret.
    let doubled = first + &external_secret(&platform, &app.name, "db-copy", "db-creds");
    std::fs::write(&path, &doubled).unwrap();
    let outcome = platform.apply(&instance, &[]);
    assert_eq!(outcome.code, 1, "{}", outcome.stderr);
    assert!(
        outcome.has("the same Secret is written by"),
        "{}",
        outcome.stderr
    );
    platform
        .assert_value_because(
            &app.name,
            "db-creds",
            "password",
            Some("first-value"),
            &outcome.stderr,
        )
        .await;
}

#[tokio::test]
async fn a_store_whose_remote_namespace_is_mistyped_deletes_nothing() {
    let platform = Platform::new("nstypo").await;
    let instance = format!("nstypo-{}", platform.id);
    let app = platform.target("nstypo-app", false).await;
    let path = platform.manifests.path().join("manifests.yaml");
    let es = format!(
        "---\napiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {{name: db, namespace: {ns}}}\nspec:\n  secretStoreRef: {{kind: ClusterSecretStore, name: store-{id}}}\n  target: {{name: db-creds, deletionPolicy: Delete}}\n  dataFrom:\n  - extract: {{key: shared}}\n",
        ns = app.name,
        id = platform.id
    );
    std::fs::write(&path, platform.store() + &es).unwrap();
    let created = platform.apply(&instance, &[]);
    assert!(created.has("apply: 1 created"), "{}", created.stderr);

    // The store's remoteNamespace edited with a typo: the reader's Role is in the real
    // namespace, so ESO's read is refused (403, not NoSecretError) and ESO keeps the
    // target whatever its deletionPolicy.
    let typo = platform.store().replace(
        &format!("remoteNamespace: {}", platform.central.name),
        &format!("remoteNamespace: {}x", platform.central.name),
    );
    assert_ne!(typo, platform.store());
    std::fs::write(&path, typo + &es).unwrap();
    let outcome = platform.apply(&instance, &[]);
    assert_eq!(outcome.code, 1, "{}", outcome.stderr);
    platform
        .assert_value_because(
            &app.name,
            "db-creds",
            "password",
            Some("first-value"),
            &outcome.stderr,
        )
        .await;
}

#[tokio::test]
async fn a_cluster_selector_typo_prunes_nothing_and_says_why() {
    let platform = Platform::new("clsel").await;
    let instance = format!("clsel-{}", platform.id);
    let a = platform.target("clsel-a", true).await;
    let b = platform.target("clsel-b", true).await;
    let ces = format!(
        "kind: ClusterExternalSecret\nmetadata: {{name: creds-{}}}",
        platform.id
    );
    let selected = |selector: &str| {
        manifests_text(&platform).replace(
            &ces,
            &format!(
                "kind: ClusterExternalSecret\nmetadata:\n  name: creds-{}\n  annotations: {{courier.dev/cluster-selector: \"courier.dev/cluster-name in ({selector})\"}}",
                platform.id
            ),
        )
    };
    let (code, _, stderr) = courier_piped(
        &["apply", "-", "--instance", &instance],
        &selected("in-cluster"),
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("apply: 2 created"), "{stderr}");
    let before = targets_of(&platform, &instance).await;
    assert_eq!(before.len(), 2);

    // The cluster's name mistyped in the selector: the manifest picks no cluster at all,
    // as a mistyped namespace label selects no namespace; its targets should stay.
    let (code, _, stderr) = courier_piped(
        &["apply", "-", "--instance", &instance],
        &selected("in-clustr"),
    );
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("0 deleted"), "{stderr}");
    assert_eq!(targets_of(&platform, &instance).await, before, "{stderr}");
    drop((a, b));
}

#[tokio::test]
async fn an_external_secret_with_a_core_api_version_is_an_error_not_a_removal() {
    let platform = Platform::new("corev1").await;
    let instance = format!("corev1-{}", platform.id);
    let app = platform.target("corev1-app", false).await;
    let path = platform.manifests.path().join("manifests.yaml");
    let manifests = platform.store()
        + &external_secret(&platform, &app.name, "db", "db-creds")
        + &external_secret(&platform, &app.name, "cache", "cache-creds");
    std::fs::write(&path, &manifests).unwrap();
    let created = platform.apply(&instance, &[]);
    assert!(created.has("apply: 2 created"), "{}", created.stderr);

    // The header copied from a Secret: `apiVersion: v1`, `kind: ExternalSecret`. The API
    // server serves no such kind (kubectl apply fails, ESO's Secret stays); courier should
    // refuse it as it refuses a misspelt group, not read the ExternalSecret as gone.
    let mangled = manifests.replacen(
        "apiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {name: cache,",
        "apiVersion: v1\nkind: ExternalSecret\nmetadata: {name: cache,",
        1,
    );
    assert_ne!(mangled, manifests);
    std::fs::write(&path, &mangled).unwrap();
    let outcome = platform.apply(&instance, &[]);
    assert_eq!(outcome.code, 1, "{}", outcome.stderr);
    platform
        .assert_value_because(
            &app.name,
            "cache-creds",
            "password",
            Some("first-value"),
            &outcome.stderr,
        )
        .await;
}

#[tokio::test]
async fn a_target_renamed_onto_a_taken_name_keeps_the_old_target() {
    let platform = Platform::new("retarget").await;
    let instance = format!("retarget-{}", platform.id);
    let app = platform.target("retarget-app", false).await;
    let path = platform.manifests.path().join("manifests.yaml");
    std::fs::write(
        &path,
        platform.store() + &external_secret(&platform, &app.name, "db", "db-creds"),
    )
    .unwrap();
    let created = platform.apply(&instance, &[]);
    assert!(created.has("apply: 1 created"), "{}", created.stderr);

    // Someone already keeps a Secret `db-secret` there by hand; the manifest's target is
    // renamed onto it. courier refuses to take it over: the manifest fails this reconcile,
    // and a manifest that fails keeps its existing targets.
    let hand: Secret = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "db-secret"}, "stringData": {"other": "x"}
    }))
    .unwrap();
    Api::<Secret>::namespaced(platform.client.clone(), &app.name)
        .create(&Default::default(), &hand)
        .await
        .unwrap();
    std::fs::write(
        &path,
        platform.store() + &external_secret(&platform, &app.name, "db", "db-secret"),
    )
    .unwrap();
    let outcome = platform.apply(&instance, &[]);
    assert_eq!(outcome.code, 1, "{}", outcome.stderr);
    assert_eq!(
        platform.value(&app.name, "db-secret", "password").await,
        None,
        "not taken over: {}",
        outcome.stderr
    );
    platform
        .assert_value_because(
            &app.name,
            "db-creds",
            "password",
            Some("first-value"),
            &outcome.stderr,
        )
        .await;
}

#[tokio::test]
async fn a_missing_source_deletes_only_the_failing_manifests_own_targets() {
    let platform = Platform::new("delother").await;
    let instance = format!("delother-{}", platform.id);
    let app = platform.target("delother-app", true).await;
    let created = platform.apply(&instance, &[]);
    assert!(created.has("apply: 1 created"), "{}", created.stderr);

    // A second manifest names the ClusterExternalSecret's target, with deletionPolicy
    // Delete and a source that does not exist. Its failure may act on its own target only;
    // `creds` is the ClusterExternalSecret's, which still wants it.
    let path = platform.manifests.path().join("manifests.yaml");
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str(&format!(
        "---\napiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {{name: mine, namespace: {ns}}}\nspec:\n  secretStoreRef: {{kind: ClusterSecretStore, name: store-{id}}}\n  target: {{name: creds, deletionPolicy: Delete}}\n  dataFrom:\n  - extract: {{key: no-such-source}}\n",
        ns = app.name,
        id = platform.id
    ));
    std::fs::write(&path, text).unwrap();
    let outcome = platform.apply(&instance, &[]);
    assert_eq!(outcome.code, 1, "{}", outcome.stderr);
    platform
        .assert_value_because(
            &app.name,
            "creds",
            "password",
            Some("first-value"),
            &outcome.stderr,
        )
        .await;
}
