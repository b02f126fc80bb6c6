//! No secret value, and no digest of one, reaches stderr, logs (at every level, trace
//! included), errors, `check`, `diff` or `--redact` output, for every command.

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use base64::Engine as _;
use sha2::{Digest, Sha256};

use crate::apply::Platform;
use crate::support::control_plane;

const MARKER: &str = "zzmarker-9f3a7c1e";

fn forms() -> Vec<String> {
    vec![
        MARKER.to_owned(),
        base64::engine::general_purpose::STANDARD.encode(MARKER),
        base64::engine::general_purpose::URL_SAFE.encode(MARKER),
        // The bytes of a value as Debug or a byte list would print them.
        format!("{:?}", MARKER.as_bytes()),
        // Its digest, which would let anyone confirm a guess offline.
        hex(&Sha256::digest(MARKER.as_bytes())),
        base64::engine::general_purpose::STANDARD.encode(Sha256::digest(MARKER.as_bytes())),
    ]
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Where values are hidden, no digest of any kind may stand in for them: no run of 40 or
/// more hex digits (sha1, sha256 and the like), whatever it was computed over. (Logs get
/// the exact digests of `forms` instead: at trace, rustls logs TLS randoms in hex.)
fn assert_no_digest(what: &str, text: &[u8]) {
    let text = String::from_utf8_lossy(text);
    for line in text.lines() {
        let mut run = 0;
        for c in line.chars() {
            run = if c.is_ascii_hexdigit() { run + 1 } else { 0 };
            assert!(run < 40, "{what} holds something like a digest:\n{line}");
        }
    }
}

fn courier(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_courier"))
        .args(args)
        .args(["--log-level", "trace"])
        .env_remove("KUBECONFIG")
        .output()
        .unwrap()
}

fn assert_clean(what: &str, text: &[u8]) {
    let text = String::from_utf8_lossy(text);
    for form in forms() {
        assert!(
            !text.contains(&form),
            "{what} holds a secret value ({form}):\n{}",
            &text[..text.len().min(3000)]
        );
    }
}

#[tokio::test]
async fn no_command_prints_a_value_outside_rendered_secret_data() {
    let platform = Platform::new("hyg").await;
    platform.put_source("shared", &[("password", MARKER)]).await;
    let target = platform.target("hyg-t", true).await;
    let kubeconfig = control_plane().kubeconfig.to_str().unwrap().to_owned();
    let manifests = platform.manifests.path().to_str().unwrap().to_owned();
    let instance = format!("hyg-{}", platform.id);
    let live = [
        "--kubeconfig",
        kubeconfig.as_str(),
        "--instance",
        instance.as_str(),
    ];

    let diff = courier(&[&["diff", manifests.as_str(), "--live"][..], &live[..]].concat());
    assert_eq!(diff.status.code(), Some(1), "drift");
    assert_clean("diff stdout", &diff.stdout);
    assert_no_digest("diff stdout", &diff.stdout);
    assert_clean("diff stderr (trace)", &diff.stderr);

    let apply = courier(&[&["apply", manifests.as_str()][..], &live[..]].concat());
    assert!(
        apply.status.success(),
        "{}",
        String::from_utf8_lossy(&apply.stderr)
    );
    // courier's own events follow the filter (other crates' stop at info).
    assert!(
        String::from_utf8_lossy(&apply.stderr).contains("DEBUG courier::live::reconcile"),
        "debug logging was on: {}",
        String::from_utf8_lossy(&apply.stderr)
    );
    assert_clean("apply stderr (trace)", &apply.stderr);
    platform
        .assert_value(&target.name, "creds", "password", Some(MARKER))
        .await;

    let run = Command::new(env!("CARGO_BIN_EXE_courier"))
        .args([
            "run",
            &manifests,
            "--metrics-addr",
            "off",
            "--log-level",
            "trace",
        ])
        .args(live)
        .env_remove("KUBECONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let _ = Command::new("kill")
        .args(["-TERM", &run.id().to_string()])
        .status();
    let run = run.wait_with_output().unwrap();
    assert_clean("run stdout", &run.stdout);
    assert_clean("run stderr (trace)", &run.stderr);

    // Offline commands over a world file holding the marker.
    let world = tempfile::tempdir().unwrap();
    std::fs::write(
        world.path().join("w.yaml"),
        format!(
            "apiVersion: v1\nkind: Namespace\nmetadata: {{name: a}}\n---\napiVersion: v1\nkind: Secret\nmetadata: {{name: src, namespace: c}}\nstringData: {{k: {MARKER}}}\n---\napiVersion: external-secrets.io/v1\nkind: ClusterSecretStore\nmetadata: {{name: s}}\nspec: {{provider: {{kubernetes: {{remoteNamespace: c}}}}}}\n---\napiVersion: external-secrets.io/v1\nkind: ClusterExternalSecret\nmetadata: {{name: x}}\nspec:\n  namespaces: [a]\n  externalSecretSpec:\n    secretStoreRef: {{kind: ClusterSecretStore, name: s}}\n    dataFrom: [{{extract: {{key: src}}}}]\n"
        ),
    )
    .unwrap();
    let path = world.path().to_str().unwrap();
    let redacted = courier(&["render", "--redact", path]);
    assert!(redacted.status.success());
    assert_clean("render --redact stdout", &redacted.stdout);
    assert_no_digest("render --redact stdout", &redacted.stdout);
    assert_clean("render --redact stderr (trace)", &redacted.stderr);
    let check = courier(&["check", path]);
    assert!(check.status.success());
    assert_clean("check stdout", &check.stdout);
    assert_no_digest("check stdout", &check.stdout);
    assert_clean("check stderr (trace)", &check.stderr);
    let render = courier(&["render", path]);
    assert_clean("render stderr (trace)", &render.stderr);
    assert!(
        String::from_utf8_lossy(&render.stdout).contains(&forms()[1]),
        "render itself prints the value, base64, in the Secret"
    );

    // Error paths: a template that fails on the value, and a wrongly typed value.
    std::fs::write(
        world.path().join("bad.yaml"),
        "apiVersion: external-secrets.io/v1\nkind: ClusterExternalSecret\nmetadata: {name: y}\nspec:\n  namespaces: [a]\n  externalSecretSpec:\n    secretStoreRef: {kind: ClusterSecretStore, name: s}\n    target: {template: {data: {t: '{{ div 1 (atoi .k) }}', u: '{{ index .k 1000 }}', v: '{{ (fromJson .k).x.y }}'}}}\n    dataFrom: [{extract: {key: src}}]\n",
    )
    .unwrap();
    for args in [
        vec!["render", path],
        vec!["render", "--argocd", path],
        vec!["check", path],
    ] {
        let failed = courier(&args);
        assert_clean(&format!("{args:?} stdout"), &failed.stdout);
        assert_clean(&format!("{args:?} stderr (trace)"), &failed.stderr);
    }
}
