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
