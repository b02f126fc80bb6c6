//! `cargo bench --bench writers`: the API server's own limit per write verb, as the
//! yardstick for courier's first apply (issue #16's "physical limit"). A tight concurrent
//! writer in Rust (kube's client, no client-side rate limit, 64 writes in flight) writes
//! 10,000 Secrets (1,000 namespaces x 10) into the real kube-apiserver the tests build:
//! POST create, PUT replace, server-side apply create and server-side apply update; then
//! `courier apply --concurrency 64` creates 10,000 targets in the same run, and its rate
//! is given as a ratio of each verb's.
//!
//! POST and courier create in alternating order over several rounds
//! (`COURIER_BENCH_ROUNDS`, default 6: each side goes first as often as the other), and
//! their medians are compared. Every write phase starts after a pause (`SETTLE`), so the
//! API server is done with the last one's aftermath (its watch cache catching up on 10,000
//! events, the deletes) and the side that goes second is not charged for the first. Then,
//! 3 times, both create at the same moment into their own namespaces ("side by side"):
//! the machine's noise slows both alike, and what separates them is their cost per write
//! and courier's start-up. Each side's client CPU is reported beside its time: on 2
//! cores, a client's CPU is taken from the API server it waits for.
//!
//! `cargo test` runs 2 rounds and 1 side by side on 10 namespaces (see `common::main`).
//! The writer writes courier's own Secrets (from `courier render --world cluster`: the
//! same labels, annotations and values), into namespaces of their own, so both sides put
//! the same bytes into etcd.

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
use kube::api::{Api, PostParams};

const PER_NAMESPACE: usize = 10;
const IN_FLIGHT: usize = 64;
/// The pause before each write phase.
const SETTLE: Duration = Duration::from_secs(3);

fn main() {
    common::main("writers", |scale| {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(bench(
            scale.pick(1_000, 10),
            rounds(scale.pick(6, 2)),
            scale.pick(3, 1),
            scale.pick(SETTLE, Duration::from_millis(100)),
        ));
    });
}

fn source(namespace: &str, name: &str) -> Secret {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "stringData": {"username": "bench", "password": "first"}
    }))
    .unwrap()
}

#[derive(Clone, Copy)]
enum Verb {
    Create,
    Replace,
    Apply,
}

/// What one side of the comparison took: wall time and its client's CPU seconds.
#[derive(Clone, Copy)]
struct Took {
    wall: Duration,
    cpu: f64,
}

/// CPU seconds (user + system) so far of the bench process itself, and of its children
/// that have exited and been waited for (courier's runs; the control plane's processes
/// are not waited for until the bench ends).
fn cpu_seconds() -> (f64, f64) {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    // Fields after the command name, which is in parentheses and may hold spaces; the
    // kernel's clock tick is 100 Hz on Linux x86_64 and arm64.
    let fields: Vec<f64> = stat
        .rsplit_once(") ")
        .expect("/proc/self/stat")
        .1
        .split(' ')
        .map(|field| field.parse().unwrap_or(0.0))
        .collect();
    (
        (fields[11] + fields[12]) / 100.0,
        (fields[13] + fields[14]) / 100.0,
    )
}

fn own_cpu() -> f64 {
    cpu_seconds().0
}

/// Runs courier to completion (it must succeed), timed from spawn to exit: its wall time,
/// its CPU, and its stderr.
fn courier_run(mut command: std::process::Command) -> (Took, String) {
    let children_before = cpu_seconds().1;
    let started = Instant::now();
    let output = command
        .stdout(std::process::Stdio::null())
        .output()
        .unwrap();
    let wall = started.elapsed();
    let cpu = cpu_seconds().1 - children_before;
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{command:?} failed:\n{stderr}");
    (Took { wall, cpu }, stderr)
}

/// Writes every object with `verb`, `IN_FLIGHT` at a time, under `suffix`ed names. Raw
/// requests whose answers are checked but not decoded: as tight as a client gets. The
/// CPU is the bench process's, which does nothing else meanwhile.
async fn write_all(client: &Client, objects: &[Secret], verb: Verb, suffix: &str) -> Took {
    let started = Instant::now();
    let cpu = own_cpu();
    futures::stream::iter(objects)
        .map(|object| {
            let mut object = object.clone();
            let namespace = object.metadata.namespace.clone().unwrap();
            let name = format!("{}{suffix}", object.metadata.name.as_deref().unwrap());
            object.metadata.name = Some(name.clone());
            let collection = format!("/api/v1/namespaces/{namespace}/secrets");
            let (method, uri, content_type) = match verb {
                Verb::Create => (http::Method::POST, collection, "application/json"),
                Verb::Replace => (
                    http::Method::PUT,
                    format!("{collection}/{name}"),
                    "application/json",
                ),
                Verb::Apply => (
                    http::Method::PATCH,
                    format!("{collection}/{name}?fieldManager=writers&force=true"),
                    "application/apply-patch+yaml",
                ),
            };
            let request = http::Request::builder()
                .method(method)
                .uri(uri)
                .header(http::header::CONTENT_TYPE, content_type)
                .body(serde_json::to_vec(&object).unwrap())
                .unwrap();
            async move {
                client
                    .request_text(request)
                    .await
                    .unwrap_or_else(|e| panic!("{namespace}/{name}: {e}"));
            }
        })
        .buffer_unordered(IN_FLIGHT)
        .collect::<Vec<()>>()
        .await;
    Took {
        wall: started.elapsed(),
        cpu: own_cpu() - cpu,
    }
}

/// How many alternating POST/courier rounds: `COURIER_BENCH_ROUNDS`, or `default`.
fn rounds(default: usize) -> usize {
    std::env::var("COURIER_BENCH_ROUNDS")
        .ok()
        .map(|n| {
            n.parse()
                .ok()
                .filter(|&n| n > 0)
                .expect("COURIER_BENCH_ROUNDS is a count of rounds, 1 or more")
        })
        .unwrap_or(default)
}

/// `courier apply --concurrency 64`, which must create all `expected` targets: what it
/// took and its `apply:` lines.
fn courier_apply(
    dir: &str,
    kubeconfig: &str,
    instance: &str,
    expected: usize,
) -> (Took, Vec<String>) {
    let mut command = common::courier_command();
    command
        .args(["apply", dir, "--kubeconfig", kubeconfig])
        .args(["--instance", instance, "--concurrency", "64"])
        .env_remove("KUBECONFIG");
    let (took, stderr) = courier_run(command);
    let said: Vec<String> = stderr
        .lines()
        .filter(|line| line.starts_with("apply:"))
        .map(str::to_owned)
        .collect();
    let created = format!("apply: {expected} created,");
    assert!(
        said.iter().any(|line| line.starts_with(&created)),
        "courier's first apply creates every target: {said:?}"
    );
    (took, said)
}

/// The median by wall time; of an even count, the mean of the middle two.
fn median(rounds: &[Took]) -> Took {
    let mut sorted = rounds.to_vec();
    sorted.sort_by_key(|took| took.wall);
    let (low, high) = (sorted[(sorted.len() - 1) / 2], sorted[sorted.len() / 2]);
    Took {
        wall: (low.wall + high.wall) / 2,
        cpu: (low.cpu + high.cpu) / 2.0,
    }
}

/// Sorted ratios, listed, and their median (of an even count, the mean of the middle two).
fn listed_with_median(sorted: &[f64]) -> String {
    let listed: Vec<String> = sorted.iter().map(|r| format!("{r:.2}x")).collect();
    let median = (sorted[(sorted.len() - 1) / 2] + sorted[sorted.len() / 2]) / 2.0;
    format!("{} (median {median:.2}x)", listed.join(", "))
}

/// Deletes every Secret in `namespaces`, one DELETE collection per namespace,
/// `IN_FLIGHT` at a time.
async fn delete_secrets(client: &Client, namespaces: &[String]) {
    futures::stream::iter(namespaces)
        .map(|namespace| async move {
            let request = http::Request::delete(format!("/api/v1/namespaces/{namespace}/secrets"))
                .body(Vec::new())
                .unwrap();
            client
                .request_text(request)
                .await
                .unwrap_or_else(|e| panic!("delete Secrets in {namespace}: {e}"));
        })
        .buffer_unordered(IN_FLIGHT)
        .collect::<Vec<()>>()
        .await;
}

/// The same Secrets with every value changed (the same length), for the update verbs.
fn changed(objects: &[Secret]) -> Vec<Secret> {
    objects
        .iter()
        .cloned()
        .map(|mut object| {
            for value in object.data.iter_mut().flat_map(|d| d.values_mut()) {
                value.0.iter_mut().for_each(|b| *b = b'x');
            }
            object
        })
        .collect()
}

async fn bench(namespace_count: usize, rounds: usize, side_by_side: usize, settle: Duration) {
    let plane = support::control_plane();
    let kubeconfig = plane.kubeconfig.to_str().unwrap().to_owned();
    let client = support::admin_client().await;
    let id = format!("{:x}", std::process::id());
    let central = format!("writers-central-{id}");
    let label = format!("writers-{id}/wants");
    // courier's namespaces want the targets; the writer's twins (same names, "w" for "c")
    // and the central namespace do not.
    let labelled = |name: String, wants: &str| (name, [(label.clone(), wants.to_owned())].into());
    let names = std::iter::once(labelled(central.clone(), "false"))
        .chain((0..namespace_count).map(|n| labelled(format!("writers-{id}-c{n:04}"), "true")))
        .chain((0..namespace_count).map(|n| labelled(format!("writers-{id}-w{n:04}"), "false")));
    common::create_namespaces(&client, names).await;
    let both_sides: Vec<String> = (0..namespace_count)
        .flat_map(|n| {
            [
                format!("writers-{id}-c{n:04}"),
                format!("writers-{id}-w{n:04}"),
            ]
        })
        .collect();

    support::grant_reader(&client, &central).await;
    let sources = Api::<Secret>::namespaced(client.clone(), &central);
    let mut text = support::reader_store(&format!("writers-{id}"), &central);
    for c in 0..PER_NAMESPACE {
        sources
            .create(
                &PostParams::default(),
                &source(&central, &format!("source-{c:02}")),
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

    // What courier will write, rendered from the same cluster, moved to the writer's
    // namespaces. Its managed-by label reads "writers" (as long as "courier"), so courier's
    // listing of what it manages does not see them.
    let rendered = std::process::Command::new(env!("CARGO_BIN_EXE_courier"))
        .args(["render", &dir, "--world", "cluster", "--output", "json"])
        .args(["--kubeconfig", &kubeconfig, "--instance", &instance])
        .output()
        .unwrap();
    assert!(
        rendered.status.success(),
        "{}",
        String::from_utf8_lossy(&rendered.stderr)
    );
    let list: serde_json::Value = serde_json::from_slice(&rendered.stdout).unwrap();
    let objects: Vec<Secret> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| {
            let mut object: Secret = serde_json::from_value(item.clone()).unwrap();
            let namespace = object.metadata.namespace.as_deref().unwrap();
            object.metadata.namespace =
                Some(namespace.replacen(&format!("-{id}-c"), &format!("-{id}-w"), 1));
            let labels = object.metadata.labels.as_mut().unwrap();
            assert_eq!(
                labels
                    .insert("app.kubernetes.io/managed-by".into(), "writers".into())
                    .as_deref(),
                Some("courier")
            );
            object
        })
        .collect();
    assert_eq!(objects.len(), namespace_count * PER_NAMESPACE);

    // POST and courier create in alternating order, round after round, into an etcd that
    // grows alike for both; between rounds both sides' Secrets are deleted, so each of
    // courier's runs is a first apply. The median of each side is reported.
    let (mut creates, mut couriers) = (Vec::new(), Vec::new());
    let mut summary = Vec::new();
    for round in 0..rounds {
        if round > 0 {
            delete_secrets(&client, &both_sides).await;
        }
        let courier_first = round % 2 == 1;
        if !courier_first {
            tokio::time::sleep(settle).await;
            creates.push(write_all(&client, &objects, Verb::Create, "").await);
        }
        tokio::time::sleep(settle).await;
        let (took, said) = courier_apply(&dir, &kubeconfig, &instance, objects.len());
        couriers.push(took);
        summary = said;
        if courier_first {
            tokio::time::sleep(settle).await;
            creates.push(write_all(&client, &objects, Verb::Create, "").await);
        }
        println!(
            "  round {}: POST create {:.2} s ({:.2} s CPU), courier {:.2} s ({:.2} s CPU), {} first: {:.2}x",
            round + 1,
            creates[round].wall.as_secs_f64(),
            creates[round].cpu,
            couriers[round].wall.as_secs_f64(),
            couriers[round].cpu,
            if courier_first { "courier" } else { "POST" },
            creates[round].wall.as_secs_f64() / couriers[round].wall.as_secs_f64(),
        );
    }
    let create = median(&creates);
    let courier = median(&couriers);
    let mut ratios: Vec<f64> = creates
        .iter()
        .zip(&couriers)
        .map(|(post, courier)| post.wall.as_secs_f64() / courier.wall.as_secs_f64())
        .collect();
    ratios.sort_by(f64::total_cmp);

    // Side by side: courier and the writer create at the same moment, 64 in flight each,
    // into their own namespaces, so whatever else the machine does meanwhile slows both
    // alike. At equal cost per write they finish together; courier's start-up (a new
    // process, its reads and its plan) is what it finishes later by.
    let mut together = Vec::new();
    for round in 0..side_by_side {
        delete_secrets(&client, &both_sides).await;
        tokio::time::sleep(settle).await;
        let courier = tokio::task::spawn_blocking({
            let (dir, kubeconfig, instance) = (dir.clone(), kubeconfig.clone(), instance.clone());
            let expected = objects.len();
            move || courier_apply(&dir, &kubeconfig, &instance, expected).0
        });
        let post = write_all(&client, &objects, Verb::Create, "").await;
        let courier = courier.await.unwrap();
        println!(
            "  side by side {}: POST create {:.2} s, courier {:.2} s: {:.2}x",
            round + 1,
            post.wall.as_secs_f64(),
            courier.wall.as_secs_f64(),
            post.wall.as_secs_f64() / courier.wall.as_secs_f64(),
        );
        together.push(post.wall.as_secs_f64() / courier.wall.as_secs_f64());
    }
    together.sort_by(f64::total_cmp);

    tokio::time::sleep(settle).await;
    let replace = write_all(&client, &changed(&objects), Verb::Replace, "").await;
    tokio::time::sleep(settle).await;
    let apply_create = write_all(&client, &objects, Verb::Apply, "-a").await;
    tokio::time::sleep(settle).await;
    let apply_update = write_all(&client, &changed(&objects), Verb::Apply, "-a").await;
    // The writer wrote what courier wrote: the same metadata keys and values' sizes.
    let written = Api::<Secret>::namespaced(client.clone(), &format!("writers-{id}-c0000"))
        .get("courier-00")
        .await
        .unwrap();
    let twin = Api::<Secret>::namespaced(client.clone(), &format!("writers-{id}-w0000"))
        .get("courier-00")
        .await
        .unwrap();
    let shape = |s: &Secret| {
        (
            s.metadata
                .labels
                .as_ref()
                .map(|l| l.keys().cloned().collect::<Vec<_>>()),
            s.metadata
                .annotations
                .as_ref()
                .map(|a| a.keys().cloned().collect::<Vec<_>>()),
            s.data.as_ref().map(|d| {
                d.iter()
                    .map(|(k, v)| (k.clone(), v.0.len()))
                    .collect::<Vec<_>>()
            }),
            s.type_.clone(),
        )
    };
    assert_eq!(
        shape(&written),
        shape(&twin),
        "the writer's Secrets are courier's"
    );
    let total = namespace_count * PER_NAMESPACE;
    let rate = |took: Took| total as f64 / took.wall.as_secs_f64();
    let courier_rate = rate(courier);
    println!(
        "writers: {total} Secrets ({namespace_count} namespaces x {PER_NAMESPACE}), {IN_FLIGHT} in flight, kube-apiserver {}; POST create and courier: median of {rounds} rounds, the update verbs once",
        plane.expected_version.as_deref().unwrap_or("?")
    );
    for (verb, took) in [
        ("POST create (median)", create),
        ("PUT replace", replace),
        ("server-side apply, create", apply_create),
        ("server-side apply, update", apply_update),
    ] {
        println!(
            "  {verb:<27} {:>6.2} s  {:>6.0}/s  {:>4.0} us CPU/write   courier's first apply is {:.2}x this rate",
            took.wall.as_secs_f64(),
            rate(took),
            took.cpu * 1e6 / total as f64,
            courier_rate / rate(took)
        );
    }
    println!(
        "  courier apply (first, median) {:>4.2} s  {:>6.0}/s  {:>4.0} us CPU/target   ({})",
        courier.wall.as_secs_f64(),
        courier_rate,
        courier.cpu * 1e6 / total as f64,
        summary.join("; ")
    );
    println!(
        "  courier / POST create per round: {}",
        listed_with_median(&ratios)
    );
    println!(
        "  courier / POST create side by side: {}",
        listed_with_median(&together)
    );
}
