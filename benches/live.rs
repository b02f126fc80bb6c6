//! `cargo bench --bench live`: 1,000 namespaces x 10 ClusterExternalSecrets = 10,000
//! Secrets applied into the real kube-apiserver the tests build (testenv/).
//!
//! Reports: the first `courier apply` (wall, requests), a no-op re-apply (wall, requests),
//! the time for one source change to reach all 1,000 namespaces under `courier run`, and
//! the peak RSS of `courier run` (VmHWM from /proc). `cargo test` runs it on 10 namespaces
//! (see `common::main`).

#[path = "common/mod.rs"]
mod common;

#[path = "../tests/cluster/support.rs"]
#[allow(dead_code)]
mod support;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, ListParams, PostParams};

const CES: usize = 10;

fn main() {
    common::main("live", |scale| {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(bench(scale.pick(1_000, 10)));
    });
}

async fn bench(namespace_count: usize) {
    let plane = support::control_plane();
    let kubeconfig = plane.kubeconfig.to_str().unwrap().to_owned();
    let client = support::admin_client().await;
    let id = format!("{:x}", std::process::id());
    let central = format!("bench-central-{id}");
    let namespaces = Api::<Namespace>::all(client.clone());
    let namespace = |name: &str, labels: BTreeMap<String, String>| -> Namespace {
        serde_json::from_value(serde_json::json!({"metadata": {"name": name, "labels": labels}}))
            .unwrap()
    };
    namespaces
        .create(
            &PostParams::default(),
            &namespace(&central, BTreeMap::new()),
        )
        .await
        .unwrap();
    let sources = Api::<Secret>::namespaced(client.clone(), &central);
    for index in 0..CES {
        common::source(&sources, index, "initial-value").await;
    }
    let labels: BTreeMap<String, String> = (0..CES)
        .map(|c| (format!("bench-{id}/shared-{c:02}"), "true".to_owned()))
        .collect();
    let started = Instant::now();
    common::create_namespaces(
        &client,
        (0..namespace_count).map(|n| (format!("bench-{id}-{n:04}"), labels.clone())),
    )
    .await;
    eprintln!(
        "setup: {namespace_count} namespaces created in {:.1}s",
        started.elapsed().as_secs_f64()
    );

    let manifests = tempfile::tempdir().unwrap();
    support::grant_reader(&client, &central).await;
    let mut text = support::reader_store(&format!("bench-{id}"), &central);
    for c in 0..CES {
        let _ = write!(
            text,
            "---\napiVersion: external-secrets.io/v1\nkind: ClusterExternalSecret\nmetadata: {{name: bench-{id}-{c:02}}}\nspec:\n  namespaceSelectors:\n  - matchLabels: {{bench-{id}/shared-{c:02}: \"true\"}}\n  externalSecretSpec:\n    secretStoreRef: {{kind: ClusterSecretStore, name: bench-{id}}}\n    target: {{name: shared-{c:02}}}\n    dataFrom:\n    - extract: {{key: source-{c:02}}}\n"
        );
    }
    std::fs::write(manifests.path().join("m.yaml"), text).unwrap();
    let dir = manifests.path().to_str().unwrap().to_owned();
    let instance = format!("bench-{id}");
    let apply = [
        "apply",
        dir.as_str(),
        "--kubeconfig",
        kubeconfig.as_str(),
        "--instance",
        instance.as_str(),
    ];

    let (first, first_summary) = common::courier(&apply);
    let first_summary = first_summary.join("\n");
    let (noop, noop_summary) = common::courier(&apply);
    let noop_summary = noop_summary.join("\n");

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut run = Command::new(env!("CARGO_BIN_EXE_courier"))
        .args([
            "run",
            &dir,
            "--kubeconfig",
            &kubeconfig,
            "--instance",
            &instance,
            "--metrics-addr",
            &format!("127.0.0.1:{port}"),
        ])
        .env_remove("KUBECONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The first reconcile of `run` is a no-op; wait for it before changing anything.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let changed_at = Instant::now();
    common::source(&sources, 0, "rotated-value").await;
    let managed = Api::<Secret>::all(client.clone());
    let selector = format!("courier.dev/instance={instance}");
    let propagated = loop {
        let listed = managed
            .list(&ListParams::default().labels(&selector))
            .await
            .unwrap();
        let rotated = listed
            .items
            .iter()
            .filter(|s| s.metadata.name.as_deref() == Some("shared-00"))
            .filter(|s| {
                s.data
                    .as_ref()
                    .and_then(|d| d.get("password"))
                    .is_some_and(|v| v.0 == b"rotated-value")
            })
            .count();
        if rotated == namespace_count {
            break changed_at.elapsed();
        }
        assert!(
            changed_at.elapsed() < Duration::from_secs(120),
            "only {rotated} of {namespace_count} rotated"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let status = std::fs::read_to_string(format!("/proc/{}/status", run.id())).unwrap_or_default();
    let peak_rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .unwrap_or("?")
        .trim()
        .to_owned();
    let _ = Command::new("kill")
        .args(["-TERM", &run.id().to_string()])
        .status();
    let _ = run.wait();

    println!(
        "live: {namespace_count} namespaces x {CES} ClusterExternalSecrets = {} Secrets, kube-apiserver {}",
        namespace_count * CES,
        plane.expected_version.as_deref().unwrap_or("?")
    );
    println!(
        "  first apply:        {:.1} s   ({first_summary})",
        first.as_secs_f64()
    );
    println!(
        "  no-op re-apply:     {:.2} s   ({noop_summary})",
        noop.as_secs_f64()
    );
    println!(
        "  one source change reaching all {namespace_count} namespaces under `run`: {:.1} s",
        propagated.as_secs_f64()
    );
    println!("  `run` peak RSS (VmHWM): {peak_rss}");
}
