//! `cargo bench --bench fleet`: one courier, three clusters (the hub and two members, each
//! a real kube-apiserver with etcd on loopback) x 1,000 namespaces x 10
//! ClusterExternalSecrets = 30,000 Secrets.
//!
//! Reports: the first `courier apply` to all three clusters (wall, writes/s), a no-op
//! re-apply (requests per cluster), one source change reaching all 3,000 namespaces under
//! `courier run`; and, as the peer measured in the same run, courier into one cluster:
//! 10,000 other targets on the hub alone (first apply, propagation to 1,000 namespaces).
//! `cargo test` runs it on 10 namespaces per cluster (see `common::main`).

#[path = "common/mod.rs"]
mod common;

#[path = "../tests/cluster/support.rs"]
#[allow(dead_code)]
mod support;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::Client;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};

const CES: usize = 10;

fn main() {
    common::main("fleet", |scale| {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(bench(scale.pick(1_000, 10)));
    });
}

async fn source(api: &Api<Secret>, name: &str, value: &str) {
    let secret: Secret = serde_json::from_value(serde_json::json!({
        "metadata": {"name": name},
        "stringData": {"username": "bench", "password": value}
    }))
    .unwrap();
    api.patch(
        name,
        &PatchParams::apply("bench").force(),
        &Patch::Apply(secret),
    )
    .await
    .unwrap();
}

/// `count` namespaces, each labelled for every ClusterExternalSecret.
async fn namespaces(client: &Client, id: &str, count: usize) {
    let labels: BTreeMap<String, String> = (0..CES)
        .map(|c| (format!("bench-{id}/shared-{c:02}"), "true".to_owned()))
        .collect();
    common::create_namespaces(
        client,
        (0..count).map(|n| (format!("bench-{id}-{n:04}"), labels.clone())),
    )
    .await;
}

/// How many of `name` in every namespace hold `value`.
async fn holding(client: &Client, name: &str, value: &str) -> usize {
    Api::<Secret>::all(client.clone())
        .list(&ListParams::default().fields(&format!("metadata.name={name}")))
        .await
        .unwrap()
        .items
        .iter()
        .filter(|s| {
            s.data
                .as_ref()
                .and_then(|d| d.get("password"))
                .is_some_and(|v| v.0 == value.as_bytes())
        })
        .count()
}

/// Starts `courier run`, changes `source`, and waits until `target` holds the new value in
/// each of the `per_cluster` namespaces of every client.
async fn propagation(
    per_cluster: usize,
    run_args: &[&str],
    sources: &Api<Secret>,
    source_name: &str,
    target: &str,
    clients: &[Client],
) -> Duration {
    let mut run = Command::new(env!("CARGO_BIN_EXE_courier"))
        .args(run_args)
        .env_remove("KUBECONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The first reconcile of `run` is a no-op; wait for it before changing anything.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let changed_at = Instant::now();
    source(sources, source_name, "rotated-value").await;
    let expected = per_cluster * clients.len();
    let took = loop {
        let mut rotated = 0;
        for client in clients {
            rotated += holding(client, target, "rotated-value").await;
        }
        if rotated == expected {
            break changed_at.elapsed();
        }
        assert!(
            changed_at.elapsed() < Duration::from_secs(180),
            "only {rotated} of {expected} rotated"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let _ = Command::new("kill")
        .args(["-TERM", &run.id().to_string()])
        .status();
    let _ = run.wait();
    took
}

async fn bench(namespace_count: usize) {
    let members: Vec<support::ControlPlane> = {
        let (a, b) = tokio::join!(
            tokio::task::spawn_blocking(support::ControlPlane::start_private),
            tokio::task::spawn_blocking(support::ControlPlane::start_private)
        );
        vec![a.unwrap(), b.unwrap()]
    };
    let plane = support::control_plane();
    let kubeconfig = plane.kubeconfig.to_str().unwrap().to_owned();
    let hub = support::admin_client().await;
    let mut clients = vec![hub.clone()];
    for member in &members {
        clients.push(support::client_of(member).await);
    }
    let id = format!("{:x}", std::process::id());
    let central = format!("bench-central-{id}");
    let argocd = format!("bench-argocd-{id}");
    for name in [&central, &argocd] {
        let object: Namespace =
            serde_json::from_value(serde_json::json!({"metadata": {"name": name}})).unwrap();
        Api::<Namespace>::all(hub.clone())
            .create(&PostParams::default(), &object)
            .await
            .unwrap();
    }
    let sources = Api::<Secret>::namespaced(hub.clone(), &central);
    for c in 0..CES {
        source(&sources, &format!("source-{c:02}"), "initial-value").await;
        source(&sources, &format!("solo-source-{c:02}"), "initial-value").await;
    }
    let started = Instant::now();
    for client in &clients {
        namespaces(client, &id, namespace_count).await;
    }
    eprintln!(
        "setup: 3 x {namespace_count} namespaces created in {:.1}s",
        started.elapsed().as_secs_f64()
    );
    // Argo CD's inventory: the hub labelled through its in-cluster Secret, two members.
    let cluster_secret = |name: &str, server: &str, config: serde_json::Value| -> Secret {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": format!("cluster-{name}"), "labels": {"argocd.argoproj.io/secret-type": "cluster", "fleet": "bench"}},
            "stringData": {"name": name, "server": server, "config": config.to_string()}
        }))
        .unwrap()
    };
    let argocd_secrets = Api::<Secret>::namespaced(hub.clone(), &argocd);
    let mut declared = vec![cluster_secret(
        "in-cluster",
        "https://kubernetes.default.svc",
        serde_json::json!({}),
    )];
    for (index, member) in members.iter().enumerate() {
        let ca = base64::engine::general_purpose::STANDARD.encode(member.ca_pem());
        declared.push(cluster_secret(
            &format!("member-{}", index + 1),
            member.server(),
            serde_json::json!({"bearerToken": support::ADMIN_TOKEN, "tlsClientConfig": {"caData": ca}}),
        ));
    }
    for secret in declared {
        argocd_secrets
            .create(&PostParams::default(), &secret)
            .await
            .unwrap();
    }

    support::grant_reader(&hub, &central).await;
    let manifests = |selector: Option<&str>, prefix: &str| {
        let dir = tempfile::tempdir().unwrap();
        let mut text = support::reader_store(&format!("bench-{id}"), &central);
        let annotations = selector
            .map(|s| format!("\n  annotations: {{courier.dev/cluster-selector: \"{s}\"}}"))
            .unwrap_or_default();
        for c in 0..CES {
            let _ = write!(
                text,
                "---\napiVersion: external-secrets.io/v1\nkind: ClusterExternalSecret\nmetadata:\n  name: bench-{id}-{prefix}{c:02}{annotations}\nspec:\n  namespaceSelectors:\n  - matchLabels: {{bench-{id}/shared-{c:02}: \"true\"}}\n  externalSecretSpec:\n    secretStoreRef: {{kind: ClusterSecretStore, name: bench-{id}}}\n    target: {{name: {prefix}shared-{c:02}}}\n    dataFrom:\n    - extract: {{key: {prefix}source-{c:02}}}\n"
            );
        }
        std::fs::write(dir.path().join("m.yaml"), text).unwrap();
        dir
    };
    let fleet = manifests(Some("fleet=bench"), "");
    let solo = manifests(None, "solo-");
    let fleet_dir = fleet.path().to_str().unwrap().to_owned();
    let solo_dir = solo.path().to_str().unwrap().to_owned();
    let instance = format!("bench-{id}");
    let solo_instance = format!("solo-{id}");
    let base = |dir: &str, instance: &str| -> Vec<String> {
        [dir, "--kubeconfig", &kubeconfig, "--instance", instance]
            .map(str::to_owned)
            .to_vec()
    };
    let mut fleet_apply = vec!["apply".to_owned()];
    fleet_apply.extend(base(&fleet_dir, &instance));
    fleet_apply.extend(["--clusters-from-secrets".to_owned(), argocd.clone()]);
    let fleet_apply: Vec<&str> = fleet_apply.iter().map(String::as_str).collect();
    let mut solo_apply = vec!["apply".to_owned()];
    solo_apply.extend(base(&solo_dir, &solo_instance));
    let solo_apply: Vec<&str> = solo_apply.iter().map(String::as_str).collect();

    let (solo_first, solo_summary) = common::courier(&solo_apply);
    let solo_summary = solo_summary.join("\n");
    let (first, first_summary) = common::courier(&fleet_apply);
    let first_summary = first_summary.join("\n");
    let (noop, noop_summary) = common::courier(&fleet_apply);
    let noop_summary = noop_summary.join("\n");

    let mut solo_run: Vec<&str> = solo_apply.clone();
    solo_run[0] = "run";
    let solo_propagated = propagation(
        namespace_count,
        &solo_run,
        &sources,
        "solo-source-00",
        "solo-shared-00",
        &clients[..1],
    )
    .await;
    let mut fleet_run: Vec<&str> = fleet_apply.clone();
    fleet_run[0] = "run";
    let propagated = propagation(
        namespace_count,
        &fleet_run,
        &sources,
        "source-00",
        "shared-00",
        &clients,
    )
    .await;

    let targets = namespace_count * CES;
    let solo_rate = targets as f64 / solo_first.as_secs_f64();
    let fleet_rate = (3 * targets) as f64 / first.as_secs_f64();
    println!(
        "fleet: 3 clusters x {namespace_count} namespaces x {CES} ClusterExternalSecrets = {} Secrets, kube-apiserver {} (x3, 2 cores shared)",
        3 * targets,
        plane.expected_version.as_deref().unwrap_or("?")
    );
    println!(
        "  peer, one cluster:   first apply {:.1} s ({solo_rate:.0} Secrets/s); one change to {namespace_count} namespaces under `run` {:.2} s",
        solo_first.as_secs_f64(),
        solo_propagated.as_secs_f64()
    );
    println!("    ({solo_summary})");
    println!(
        "  three clusters:      first apply {:.1} s ({fleet_rate:.0} Secrets/s, {:.2}x one cluster's rate; 3 x the one-cluster wall would be {:.1} s)",
        first.as_secs_f64(),
        fleet_rate / solo_rate,
        3.0 * solo_first.as_secs_f64()
    );
    println!("{}", indent(&first_summary));
    println!("  no-op re-apply:      {:.2} s", noop.as_secs_f64());
    println!("{}", indent(&noop_summary));
    println!(
        "  one source change reaching all {} namespaces of 3 clusters under `run`: {:.2} s ({:.2}x one cluster's {:.2} s)",
        3 * namespace_count,
        propagated.as_secs_f64(),
        propagated.as_secs_f64() / solo_propagated.as_secs_f64(),
        solo_propagated.as_secs_f64()
    );
}

fn indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("    {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}
