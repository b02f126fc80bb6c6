//! `cargo bench --bench collect`: `courier collect` from three member clusters (each a real
//! kube-apiserver with etcd on loopback) x 1,000 opted-in Secrets into the hub.
//!
//! Reports: the first pass (wall, copies/s, requests), a no-op pass, and one change in a
//! member reaching the hub under `collect --watch`; and, as the physical limit measured in
//! the same run, the same 3,000 Secrets created on the hub directly, 16 at a time (the
//! writes alone, without reading the members). `cargo test` runs it on 10 Secrets per
//! member (see `common::main`).

#[path = "common/mod.rs"]
mod common;

#[path = "../tests/cluster/support.rs"]
#[allow(dead_code)]
mod support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use futures::StreamExt as _;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::Client;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};

const MEMBERS: usize = 3;

fn main() {
    common::main("collect", |scale| {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(bench(scale.pick(1_000, 10)));
    });
}

fn secret(name: &str, labels: serde_json::Value, password: &str) -> Secret {
    serde_json::from_value(serde_json::json!({
        "metadata": {"name": name, "labels": labels},
        "stringData": {"username": "bench", "password": password}
    }))
    .unwrap()
}

async fn ensure_namespace(client: &Client, name: &str) {
    let ns: Namespace =
        serde_json::from_value(serde_json::json!({"metadata": {"name": name}})).unwrap();
    Api::<Namespace>::all(client.clone())
        .patch(
            name,
            &PatchParams::apply("bench").force(),
            &Patch::Apply(ns),
        )
        .await
        .unwrap();
}

/// Creates `secrets` in `namespace`, 16 at a time.
async fn create_all(client: &Client, namespace: &str, secrets: Vec<Secret>) {
    let api = Api::<Secret>::namespaced(client.clone(), namespace);
    futures::stream::iter(secrets.into_iter().map(|s| {
        let api = api.clone();
        async move { api.create(&PostParams::default(), &s).await.unwrap() }
    }))
    .buffer_unordered(16)
    .collect::<Vec<_>>()
    .await;
}

async fn count(client: &Client, namespace: &str, selector: &str) -> usize {
    Api::<Secret>::namespaced(client.clone(), namespace)
        .list_metadata(&ListParams::default().labels(selector))
        .await
        .unwrap()
        .items
        .len()
}

fn collect(kubeconfig: &str, policy: &std::path::Path, argocd: &str) -> (Duration, String) {
    let started = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_courier"))
        .arg("collect")
        .arg(policy)
        .args([
            "--kubeconfig",
            kubeconfig,
            "--clusters-from-secrets",
            argocd,
        ])
        .env_remove("KUBECONFIG")
        .env_remove("COURIER_LOG")
        .output()
        .unwrap();
    let took = started.elapsed();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(output.status.success(), "{stderr}");
    (took, stderr.trim().to_owned())
}

async fn bench(per_member: usize) {
    let members: Vec<support::ControlPlane> = {
        let (a, b, c) = tokio::join!(
            tokio::task::spawn_blocking(support::ControlPlane::start_private),
            tokio::task::spawn_blocking(support::ControlPlane::start_private),
            tokio::task::spawn_blocking(support::ControlPlane::start_private)
        );
        vec![a.unwrap(), b.unwrap(), c.unwrap()]
    };
    assert_eq!(members.len(), MEMBERS);
    let plane = support::control_plane();
    let kubeconfig = plane.kubeconfig.to_str().unwrap().to_owned();
    let hub = support::admin_client().await;
    let id = format!("{:x}", std::process::id());
    let argocd = format!("bench-argocd-{id}");
    let limit_namespace = format!("bench-limit-{id}");
    ensure_namespace(&hub, &argocd).await;
    ensure_namespace(&hub, &limit_namespace).await;

    let opt_in = serde_json::json!({"akuity.io/secret-sync": "true", "argocd.argoproj.io/secret-type": "repo-creds"});
    let mut member_clients = Vec::new();
    for (m, member) in members.iter().enumerate() {
        let client = support::client_of(member).await;
        ensure_namespace(&client, "akuity").await;
        let secrets = (0..per_member)
            .map(|n| secret(&format!("m{m}-creds-{n:04}"), opt_in.clone(), "first"))
            .collect();
        create_all(&client, "akuity", secrets).await;
        let ca = base64::engine::general_purpose::STANDARD.encode(member.ca_pem());
        let config = serde_json::json!({"bearerToken": support::ADMIN_TOKEN, "tlsClientConfig": {"caData": ca}});
        let cluster: Secret = serde_json::from_value(serde_json::json!({
            "metadata": {"name": format!("cluster-m{m}"),
                "labels": {"argocd.argoproj.io/secret-type": "cluster", "bench": id}},
            "stringData": {"name": format!("m{m}"), "server": member.server(), "config": config.to_string()}
        }))
        .unwrap();
        Api::<Secret>::namespaced(hub.clone(), &argocd)
            .create(&PostParams::default(), &cluster)
            .await
            .unwrap();
        member_clients.push(client);
    }
    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        format!("apiVersion: collect.courier.dev/v1alpha1\nkind: SecretCollection\nmetadata: {{name: bench}}\nspec:\n  clusterSelector: \"bench={id}\"\n  argocdNamespace: {argocd}\n"),
    )
    .unwrap();
    let total = per_member * MEMBERS;

    // The physical limit: the hub's write path alone, same Secrets, same concurrency.
    let started = Instant::now();
    create_all(
        &hub,
        &limit_namespace,
        (0..total)
            .map(|n| secret(&format!("limit-{n:05}"), opt_in.clone(), "first"))
            .collect(),
    )
    .await;
    let limit = started.elapsed();

    let (first, first_line) = collect(&kubeconfig, &policy, &argocd);
    assert_eq!(
        count(&hub, &argocd, "courier.dev/collected-from").await,
        total
    );
    let (noop, noop_line) = collect(&kubeconfig, &policy, &argocd);
    assert!(noop_line.contains("0 written, 0 removed"), "{noop_line}");

    // One change in a member reaching the hub under --watch.
    let mut watch = Command::new(env!("CARGO_BIN_EXE_courier"))
        .arg("collect")
        .arg(&policy)
        .args([
            "--kubeconfig",
            &kubeconfig,
            "--clusters-from-secrets",
            &argocd,
            "--watch",
        ])
        .env_remove("KUBECONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let changed = "m1-creds-0000";
    let changed_at = Instant::now();
    Api::<Secret>::namespaced(member_clients[1].clone(), "akuity")
        .patch(
            changed,
            &PatchParams::apply("bench").force(),
            &Patch::Apply(secret(changed, opt_in.clone(), "rotated")),
        )
        .await
        .unwrap();
    let propagation = loop {
        let copy = Api::<Secret>::namespaced(hub.clone(), &argocd)
            .get(changed)
            .await
            .unwrap();
        if copy
            .data
            .unwrap_or_default()
            .get("password")
            .map(|v| v.0.as_slice())
            == Some(b"rotated")
        {
            break changed_at.elapsed();
        }
        assert!(
            changed_at.elapsed() < Duration::from_secs(120),
            "the change never arrived"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let _ = Command::new("kill")
        .args(["-TERM", &watch.id().to_string()])
        .status();
    let _ = watch.wait();

    for namespace in [&argocd, &limit_namespace] {
        let _ = Api::<Namespace>::all(hub.clone())
            .delete(namespace, &DeleteParams::default())
            .await;
    }
    let rate = |d: Duration| total as f64 / d.as_secs_f64();
    println!(
        "collect: {MEMBERS} members x {per_member} opted-in Secrets = {total} copies into the hub"
    );
    println!(
        "  first pass:  {:>7.2} s  {:>7.0} copies/s  ({first_line})",
        first.as_secs_f64(),
        rate(first)
    );
    println!(
        "  limit:       {:>7.2} s  {:>7.0} creates/s  (the same {total} Secrets created on the hub directly, 16 in flight); first pass / limit = {:.2}",
        limit.as_secs_f64(),
        rate(limit),
        first.as_secs_f64() / limit.as_secs_f64()
    );
    println!(
        "  no-op pass:  {:>7.2} s  ({noop_line})",
        noop.as_secs_f64()
    );
    println!(
        "  one change in a member reaching the hub under --watch: {:.2} s (debounce 500 ms)",
        propagation.as_secs_f64()
    );
}
