//! `cargo bench --bench writers`: the API server's own limit per write verb, as the
//! yardstick for courier's first apply (issue #16's "physical limit"). A tight concurrent
//! writer in Rust (kube's client, no client-side rate limit, 64 writes in flight) writes
//! 10,000 Secrets (1,000 namespaces x 10) into the real kube-apiserver the tests build:
//! POST create, PUT replace, server-side apply create and server-side apply update; then
//! `courier apply --concurrency 64` creates 10,000 targets of the same size in the same
//! run, and its rate is given as a ratio of each verb's.

#[path = "common/mod.rs"]
mod common;

#[path = "../tests/cluster/support.rs"]
#[allow(dead_code)]
mod support;

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use k8s_openapi::api::core::v1::Secret;
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};

const NAMESPACES: usize = 1_000;
const PER_NAMESPACE: usize = 10;
const IN_FLIGHT: usize = 64;

fn main() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(bench());
}

fn secret(namespace: &str, name: &str, value: &str) -> Secret {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "stringData": {"username": "bench", "password": value}
    }))
    .unwrap()
}

#[derive(Clone, Copy)]
enum Verb {
    Create,
    Replace,
    Apply,
}

/// Writes one Secret per (namespace, index) with `verb`, `IN_FLIGHT` at a time.
async fn write_all(client: &Client, id: &str, prefix: &str, verb: Verb, value: &str) -> Duration {
    let started = Instant::now();
    let writes = (0..NAMESPACES).flat_map(|n| (0..PER_NAMESPACE).map(move |c| (n, c)));
    futures::stream::iter(writes)
        .map(|(n, c)| {
            let namespace = format!("writers-{id}-{n:04}");
            let name = format!("{prefix}-{c:02}");
            let api = Api::<Secret>::namespaced(client.clone(), &namespace);
            let object = secret(&namespace, &name, value);
            async move {
                match verb {
                    Verb::Create => api.create(&PostParams::default(), &object).await.map(drop),
                    Verb::Replace => api
                        .replace(&name, &PostParams::default(), &object)
                        .await
                        .map(drop),
                    Verb::Apply => api
                        .patch(
                            &name,
                            &PatchParams::apply("writers").force(),
                            &Patch::Apply(&object),
                        )
                        .await
                        .map(drop),
                }
                .unwrap_or_else(|e| panic!("{namespace}/{name}: {e}"))
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .collect::<Vec<()>>()
        .await;
    started.elapsed()
}

async fn bench() {
    let plane = support::control_plane();
    let kubeconfig = plane.kubeconfig.to_str().unwrap().to_owned();
    let client = support::admin_client().await;
    let id = format!("{:x}", std::process::id());
    let central = format!("writers-central-{id}");
    let label = format!("writers-{id}/wants");
    // The central namespace holds the sources only; every other one wants the targets.
    let labelled = |name: String, wants: &str| (name, [(label.clone(), wants.to_owned())].into());
    let names = std::iter::once(labelled(central.clone(), "false"))
        .chain((0..NAMESPACES).map(|n| labelled(format!("writers-{id}-{n:04}"), "true")));
    common::create_namespaces(&client, names).await;

    let create = write_all(&client, &id, "posted", Verb::Create, "first").await;
    let replace = write_all(&client, &id, "posted", Verb::Replace, "second").await;
    let apply_create = write_all(&client, &id, "applied", Verb::Apply, "first").await;
    let apply_update = write_all(&client, &id, "applied", Verb::Apply, "second").await;

    // courier's first apply: the same count and size of Secrets, created from sources.
    support::grant_reader(&client, &central).await;
    let sources = Api::<Secret>::namespaced(client.clone(), &central);
    let mut text = support::reader_store(&format!("writers-{id}"), &central);
    for c in 0..PER_NAMESPACE {
        sources
            .create(
                &PostParams::default(),
                &secret(&central, &format!("source-{c:02}"), "first"),
            )
            .await
            .unwrap();
        let _ = write!(
            text,
            "---\napiVersion: external-secrets.io/v1\nkind: ClusterExternalSecret\nmetadata: {{name: writers-{id}-{c:02}}}\nspec:\n  namespaceSelectors:\n  - matchLabels: {{{label}: \"true\"}}\n  externalSecretSpec:\n    secretStoreRef: {{kind: ClusterSecretStore, name: writers-{id}}}\n    target: {{name: courier-{c:02}}}\n    dataFrom:\n    - extract: {{key: source-{c:02}}}\n"
        );
    }
    let manifests = tempfile::tempdir().unwrap();
    std::fs::write(manifests.path().join("m.yaml"), &text).unwrap();
    let dir = manifests.path().to_str().unwrap().to_owned();
    let instance = format!("writers-{id}");
    let (courier, summary) = common::courier(&[
        "apply",
        &dir,
        "--kubeconfig",
        &kubeconfig,
        "--instance",
        &instance,
        "--concurrency",
        "64",
    ]);

    let total = NAMESPACES * PER_NAMESPACE;
    let rate = |d: Duration| total as f64 / d.as_secs_f64();
    let courier_rate = rate(courier);
    println!(
        "writers: {total} Secrets ({NAMESPACES} namespaces x {PER_NAMESPACE}), {IN_FLIGHT} in flight, kube-apiserver {}",
        plane.expected_version.as_deref().unwrap_or("?")
    );
    for (verb, took) in [
        ("POST create", create),
        ("PUT replace", replace),
        ("server-side apply, create", apply_create),
        ("server-side apply, update", apply_update),
    ] {
        println!(
            "  {verb:<27} {:>6.2} s  {:>6.0}/s   courier's first apply is {:.2}x this rate",
            took.as_secs_f64(),
            rate(took),
            courier_rate / rate(took)
        );
    }
    println!(
        "  courier apply (first)       {:>6.2} s  {:>6.0}/s   ({})",
        courier.as_secs_f64(),
        courier_rate,
        summary.join("; ")
    );
}
