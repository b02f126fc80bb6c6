//! The corpus of ESO mistakes (`tests/corpus/*/server`) is what ESO refuses: each case is
//! applied with `kubectl apply --dry-run=server` (strict field validation, kubectl's
//! default) to a real kube-apiserver with ESO v2.9.0's CRDs, the ones courier's schema is
//! embedded from. A case marked `refused: <text>` must be refused with that text, and its
//! valid twin (`.twin.yaml`) accepted; `webhook-only: <validator>` and `accepted` cases
//! must be accepted by the API server: the first are refused by ESO's admission webhook
//! (the validator named, read in ESO's source), the second are valid ESO that courier does
//! not implement yet.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::support::{ControlPlane, TestNamespace, client_of, install_crds_from, repo_root};

/// kubectl, built by testenv next to kube-apiserver.
fn kubectl() -> PathBuf {
    let build = Command::new(repo_root().join("testenv/build.sh"))
        .output()
        .expect("testenv/build.sh runs");
    assert!(build.status.success(), "testenv/build.sh failed");
    PathBuf::from(String::from_utf8_lossy(&build.stdout).trim()).join("kubectl")
}

/// `kubectl apply --dry-run=server` of every object in `file`, in `namespace`: its exit
/// status and stderr.
fn dry_run(kubectl: &Path, kubeconfig: &Path, file: &Path, namespace: &str) -> (bool, String) {
    let text = std::fs::read_to_string(file).unwrap();
    let mut items: Vec<Value> = serde_saphyr::from_multiple(&text).unwrap();
    items.retain(|item| !item.is_null());
    for item in &mut items {
        if let Some(metadata) = item.get_mut("metadata").and_then(Value::as_object_mut)
            && metadata.contains_key("namespace")
        {
            metadata.insert("namespace".into(), Value::from(namespace));
        }
    }
    // One document per object, not a `List`: kubectl decides per document whether the
    // server validates it, and a List is a kind no server validates, so kubectl would
    // check its items itself.
    let stream: String = items.iter().map(|item| format!("---\n{item}\n")).collect();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("objects.yaml");
    std::fs::write(&path, stream).unwrap();
    let output = Command::new(kubectl)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args([
            "apply",
            "--dry-run=server",
            "--validate=strict",
            "-o",
            "name",
            "-f",
        ])
        .arg(&path)
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn the_corpus_is_what_eso_v2_9_0_refuses_and_its_twins_what_it_accepts() {
    crate::support::binaries_available();
    let kubectl = kubectl();
    let plane = ControlPlane::start_private();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let client = runtime.block_on(client_of(&plane));
    runtime.block_on(install_crds_from(
        &client,
        &repo_root().join("testenv/eso-crds-v2.9.0"),
    ));
    let namespace = runtime.block_on(TestNamespace::create(&client, "strict"));
    // kubectl asks the server to validate (fieldValidation=Strict) once the server
    // publishes the CRDs' OpenAPI v3; before that it validates on the client instead.
    // The expectations below are the server's wording, so a client-side refusal fails.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !Command::new(&kubectl)
        .arg("--kubeconfig")
        .arg(&plane.kubeconfig)
        .args(["get", "--raw", "/openapi/v3/apis/external-secrets.io/v1"])
        .output()
        .unwrap()
        .status
        .success()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "ESO's OpenAPI v3 is not served"
        );
        std::thread::sleep(std::time::Duration::from_millis(500));
    }

    let mut cases: Vec<PathBuf> = std::fs::read_dir(repo_root().join("tests/corpus"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.join("server").is_file())
        .collect();
    cases.sort();
    assert!(cases.len() >= 30, "the ESO corpus went missing");
    let mut failures = Vec::new();
    let (mut refused, mut webhook, mut accepted) = (0, 0, 0);
    for case in &cases {
        let name = case.file_name().unwrap().to_string_lossy().into_owned();
        let expectation = std::fs::read_to_string(case.join("server")).unwrap();
        let expectation = expectation.trim();
        let (ok, stderr) = dry_run(
            &kubectl,
            &plane.kubeconfig,
            &case.join("in.yaml"),
            &namespace.name,
        );
        if let Some(text) = expectation.strip_prefix("refused: ") {
            refused += 1;
            if ok || !stderr.contains(text) {
                failures.push(format!("{name}: expected the API server to refuse it with {text:?}; kubectl said: {stderr}"));
            }
            let twin = case.join(".twin.yaml");
            assert!(
                twin.is_file(),
                "{name}: a refused case needs its valid twin"
            );
            let (ok, stderr) = dry_run(&kubectl, &plane.kubeconfig, &twin, &namespace.name);
            if !ok {
                failures.push(format!(
                    "{name}: the twin should be accepted; kubectl said: {stderr}"
                ));
            }
        } else if expectation.starts_with("webhook-only: ") || expectation == "accepted" {
            if expectation == "accepted" {
                accepted += 1;
            } else {
                webhook += 1;
            }
            if !ok {
                failures.push(format!("{name}: the API server itself should accept it ({expectation}); kubectl said: {stderr}"));
            }
        } else {
            failures.push(format!("{name}: unknown expectation {expectation:?}"));
        }
    }
    eprintln!(
        "{refused} refused by the API server, {webhook} by ESO's webhook only, {accepted} valid ESO courier does not implement"
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// `courier diff` or `apply` of the platform's manifests: (exit code, stdout, stderr).
fn courier_live(
    command: &str,
    platform: &crate::apply::Platform,
    instance: &str,
) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_courier"))
        .args([command, platform.manifests.path().to_str().unwrap()])
        .arg("--kubeconfig")
        .arg(&crate::support::control_plane().kubeconfig)
        .args(["--instance", instance])
        .env_remove("KUBECONFIG")
        .output()
        .unwrap();
    let stdout = String::from_utf8(output.stdout).unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(!stderr.contains("panicked"), "{stderr}");
    for value in ["first-value", "second-value"] {
        assert!(
            !stdout.contains(value) && !stderr.contains(value),
            "a value was printed:\n{stdout}\n{stderr}"
        );
    }
    (output.status.code().unwrap_or(-1), stdout, stderr)
}

/// A refused ESO object is an error for its own targets alone: the other manifests'
/// targets are compared and written, the refused ones' existing targets are kept (never
/// pruned), and the run fails naming the object and the field, never a value.
#[tokio::test]
async fn a_refused_object_fails_its_own_targets_alone_and_keeps_them() {
    let platform = crate::apply::Platform::new("refused").await;
    let instance = format!("refused-{}", platform.id);
    let target = platform.target("refused-t", true).await;
    platform.write_manifests(&[
        ("shared", "creds"),
        ("shared", "other"),
        ("shared", "third"),
    ]);
    let first = platform.apply(&instance, &[]);
    assert!(first.has("apply: 3 created"), "{}", first.stderr);

    // The source changes; `other` gets a creationPolicy ESO's schema refuses and `third`
    // a misspelt group (before: dropped from the input, so its target was pruned).
    platform
        .put_source(
            "shared",
            &[("username", "bot"), ("password", "second-value")],
        )
        .await;
    let path = platform.manifests.path().join("manifests.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let id = &platform.id;
    let text = text
        .replace("target: {name: other}", "target: {name: other, creationPolicy: owner}")
        .replace(
            &format!("apiVersion: external-secrets.io/v1\nkind: ClusterExternalSecret\nmetadata: {{name: third-{id}}}"),
            &format!("apiVersion: external-secret.io/v1\nkind: ClusterExternalSecret\nmetadata: {{name: third-{id}}}"),
        );
    std::fs::write(&path, &text).unwrap();
    let other_line = text
        .lines()
        .position(|l| l.contains("creationPolicy: owner"))
        .unwrap()
        + 1;
    let refusals = [
        format!(
            "manifests.yaml:{other_line}: ClusterExternalSecret/other-{id}: spec.externalSecretSpec.target.creationPolicy: must be one of Owner"
        ),
        format!(
            "ClusterExternalSecret/third-{id}: unknown API group \"external-secret.io\"; did you mean external-secrets.io?"
        ),
    ];

    // diff: the valid manifest's change is shown, nothing is to be removed, exit 2.
    let (code, stdout, stderr) = courier_live("diff", &platform, &instance);
    assert_eq!(code, 2, "{stdout}\n{stderr}");
    for refusal in &refusals {
        assert!(
            stderr.contains(refusal.as_str()),
            "{refusal:?} in:\n{stderr}"
        );
    }
    assert!(
        stderr.contains("diff: 0 to create, 1 to update, 0 to remove, 0 in sync"),
        "{stderr}"
    );
    assert!(
        stdout.contains(&format!("~ Secret {}/creds (update", target.name)),
        "{stdout}"
    );

    // apply: the valid target is written, the refused ones' targets are kept as they were.
    let (code, _, stderr) = courier_live("apply", &platform, &instance);
    assert_eq!(code, 1, "{stderr}");
    for refusal in &refusals {
        assert!(
            stderr.contains(refusal.as_str()),
            "{refusal:?} in:\n{stderr}"
        );
    }
    assert!(
        stderr.contains("apply: 0 created, 1 updated, 0 unchanged, 0 deleted"),
        "{stderr}"
    );
    let value = |name: &'static str| platform.value(&target.name, name, "password");
    assert_eq!(value("creds").await.as_deref(), Some("second-value"));
    assert_eq!(value("other").await.as_deref(), Some("first-value"));
    assert_eq!(value("third").await.as_deref(), Some("first-value"));

    // run: ready, the refusals counted as target errors, a later source change written to
    // the valid target while the refused ones' targets stay.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut run = Command::new(env!("CARGO_BIN_EXE_courier"))
        .args(["run", platform.manifests.path().to_str().unwrap()])
        .args(["--instance", &instance, "--debounce", "100ms"])
        .arg("--kubeconfig")
        .arg(&crate::support::control_plane().kubeconfig)
        .args(["--metrics-addr", &format!("127.0.0.1:{port}")])
        .env_remove("KUBECONFIG")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    crate::run::within(
        std::time::Duration::from_secs(15),
        "run's first reconcile",
        || async {
            let metrics = crate::support::http_get(port, "/metrics").1;
            crate::support::http_get(port, "/readyz").0 == 200
                && metrics.contains("courier_target_errors 2")
        },
    )
    .await;
    platform
        .put_source(
            "shared",
            &[("username", "bot"), ("password", "third-value")],
        )
        .await;
    crate::run::within(
        std::time::Duration::from_secs(15),
        "run writes the valid target",
        || async { value("creds").await.as_deref() == Some("third-value") },
    )
    .await;
    let _ = run.kill();
    let output = run.wait_with_output().unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        stderr.contains(refusals[0].as_str()) && !stderr.contains("deleted"),
        "{stderr}"
    );
    assert!(!stderr.contains("third-value"), "a value was logged");
    assert_eq!(value("other").await.as_deref(), Some("first-value"));
    assert_eq!(value("third").await.as_deref(), Some("first-value"));
}

/// `check --world cluster` on a repository of ESO manifests only (the store is in the
/// cluster): it resolves the namespaces, the cluster's store and the source's key names
/// against the live cluster, lists the targets, and names a key typo, never a value.
#[tokio::test]
async fn check_with_the_cluster_world_resolves_stores_and_source_keys() {
    use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, PostParams};
    let platform = crate::apply::Platform::new("checkw").await;
    crate::support::install_eso_crds(&platform.client).await;
    let store: DynamicObject = serde_saphyr::from_str(&platform.store()).unwrap();
    let resource = ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("external-secrets.io", "v1", "ClusterSecretStore"),
        "clustersecretstores",
    );
    Api::<DynamicObject>::all_with(platform.client.clone(), &resource)
        .create(&PostParams::default(), &store)
        .await
        .unwrap();
    let target = platform.target("checkw-t", true).await;
    let id = &platform.id;
    let manifests = platform.manifests.path().join("manifests.yaml");
    let good = format!(
        "apiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {{name: app, namespace: {ns}}}\nspec:\n  secretStoreRef: {{kind: ClusterSecretStore, name: store-{id}}}\n  data:\n  - secretKey: password\n    remoteRef: {{key: shared, property: password}}\n",
        ns = target.name
    );
    std::fs::write(&manifests, &good).unwrap();
    let check = || {
        let output = Command::new(env!("CARGO_BIN_EXE_courier"))
            .args(["check", "--strict", "--world", "cluster"])
            .arg(platform.manifests.path())
            .arg("--kubeconfig")
            .arg(&crate::support::control_plane().kubeconfig)
            .env_remove("KUBECONFIG")
            .output()
            .unwrap();
        let stdout = String::from_utf8(output.stdout).unwrap();
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert!(
            !stdout.contains("first-value") && !stderr.contains("first-value"),
            "a value was printed:\n{stdout}\n{stderr}"
        );
        (output.status.code().unwrap_or(-1), stdout, stderr)
    };
    let (code, stdout, stderr) = check();
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(
        stdout.contains(&format!("{}  app", target.name)),
        "{stdout}\n{stderr}"
    );

    // A property the source does not have: named, with the close key name.
    std::fs::write(
        &manifests,
        good.replace("property: password", "property: pasword"),
    )
    .unwrap();
    let (code, stdout, stderr) = check();
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    assert!(
        stderr.contains(&format!("ExternalSecret/{}/app", target.name))
            && stderr.contains("property \"pasword\" does not exist")
            && stderr.contains("password"),
        "{stderr}"
    );

    // A store of the files whose remoteNamespace does not exist: said so, naming the
    // store (the read itself is refused: no Role can grant a namespace that is not there).
    let central = &platform.central.name;
    let store = platform
        .store()
        .replace(
            &format!("name: store-{id}"),
            &format!("name: elsewhere-{id}"),
        )
        .replace(
            &format!("remoteNamespace: {central}"),
            &format!("remoteNamespace: gone-{id}"),
        );
    assert!(
        store.contains(&format!("remoteNamespace: gone-{id}")),
        "{store}"
    );
    let good = good.replace(
        &format!("name: store-{id}"),
        &format!("name: elsewhere-{id}"),
    );
    std::fs::write(&manifests, format!("{store}---\n{good}")).unwrap();
    let (code, stdout, stderr) = check();
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    assert!(
        stderr.contains(&format!(
            "source Secret gone-{id}/shared not found: namespace gone-{id} does not exist; it is the remoteNamespace of ClusterSecretStore/elsewhere-{id}"
        )),
        "{stderr}"
    );
}
