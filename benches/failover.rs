//! `cargo bench --bench failover`: leader election of `courier run --leader-elect` with the
//! chart's default timings (lease 15 s, renew deadline 10 s, retry 2 s), two replicas
//! against the real kube-apiserver the tests build, and the image's size.
//!
//! Reports, each beside its physical reference measured or fixed in the same run:
//! - SIGKILL of the leader -> the standby leads, and -> its first write (a namespace labelled
//!   after the kill gets its Secret); reference: the lease duration, which a standby must
//!   wait out after the last renewal it saw (the floor is lease duration - retry period).
//! - SIGTERM of the leader -> the standby leads; reference: the retry period (the standby's
//!   next try after the Lease was released).
//! - The image: archive size against the stripped binary inside it (the floor).
//!
//! `cargo test` runs one round (see `common::main`).

#[path = "common/mod.rs"]
mod common;

#[path = "../tests/cluster/support.rs"]
#[allow(dead_code)]
mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};

const LEASE: Duration = Duration::from_secs(15);
const RETRY: Duration = Duration::from_secs(2);

fn main() {
    common::main("failover", |scale| {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(bench(scale.pick(3, 1)));
    });
}

struct Replica {
    child: Child,
    port: u16,
}

impl Replica {
    fn start(manifests: &Path, lease_namespace: &str, id: &str) -> Replica {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(env!("CARGO_BIN_EXE_courier"))
            .args(["run", manifests.to_str().unwrap()])
            .args([
                "--kubeconfig",
                support::control_plane().kubeconfig.to_str().unwrap(),
            ])
            .args([
                "--instance",
                &format!("failover-{id}"),
                "--debounce",
                "50ms",
            ])
            .args(["--metrics-addr", &format!("127.0.0.1:{port}")])
            .args([
                "--leader-elect",
                "--leader-elect-namespace",
                lease_namespace,
            ])
            .env_remove("KUBECONFIG")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        Replica { child, port }
    }

    fn leading(&self) -> bool {
        let (status, body) = support::http_get(self.port, "/metrics");
        status == 200 && body.lines().any(|l| l == "courier_leader 1")
    }

    fn signal(&mut self, signal: &str) {
        Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap();
        let _ = self.child.wait();
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn until(limit: Duration, mut check: impl AsyncFnMut() -> bool) -> Duration {
    let started = Instant::now();
    while started.elapsed() < limit {
        if check().await {
            return started.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("not within {limit:?}");
}

fn median(mut values: Vec<Duration>) -> Duration {
    values.sort();
    values[values.len() / 2]
}

async fn bench(rounds: usize) {
    let client = support::admin_client().await;
    let id = format!("{:x}", std::process::id());
    let central = format!("failover-central-{id}");
    let namespaces = Api::<Namespace>::all(client.clone());
    let create_namespace = |name: String, labels: BTreeMap<String, String>| {
        let namespaces = namespaces.clone();
        async move {
            let object: Namespace = serde_json::from_value(
                serde_json::json!({"metadata": {"name": name, "labels": labels}}),
            )
            .unwrap();
            namespaces
                .create(&PostParams::default(), &object)
                .await
                .unwrap();
        }
    };
    create_namespace(central.clone(), BTreeMap::new()).await;
    support::grant_reader(&client, &central).await;
    let source: Secret = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "source"}, "stringData": {"password": "bench-value"}
    }))
    .unwrap();
    Api::<Secret>::namespaced(client.clone(), &central)
        .patch(
            "source",
            &PatchParams::apply("bench").force(),
            &Patch::Apply(source),
        )
        .await
        .unwrap();
    let label = format!("failover-{id}/wants");
    let manifests = tempfile::tempdir().unwrap();
    std::fs::write(
        manifests.path().join("manifests.yaml"),
        format!(
            "{}---\napiVersion: external-secrets.io/v1\nkind: ClusterExternalSecret\nmetadata: {{name: failover-{id}}}\nspec:\n  namespaceSelectors:\n  - matchLabels: {{{label}: \"true\"}}\n  externalSecretSpec:\n    secretStoreRef: {{kind: ClusterSecretStore, name: failover-{id}}}\n    target: {{name: copied}}\n    dataFrom:\n    - extract: {{key: source}}\n",
            support::reader_store(&format!("failover-{id}"), &central)
        ),
    )
    .unwrap();

    let mut to_lead = Vec::new();
    let mut to_write = Vec::new();
    let mut handovers = Vec::new();
    let mut leader = Replica::start(manifests.path(), &central, &id);
    until(Duration::from_secs(30), async || leader.leading()).await;
    for round in 0..rounds {
        let mut standby = Replica::start(manifests.path(), &central, &id);
        tokio::time::sleep(Duration::from_secs(3)).await;
        assert!(!standby.leading());
        // SIGKILL: the standby waits out the lease.
        leader.signal("-KILL");
        let killed = Instant::now();
        let target = format!("failover-{id}-{round}");
        create_namespace(
            target.clone(),
            BTreeMap::from([(label.clone(), "true".to_owned())]),
        )
        .await;
        let secrets = Api::<Secret>::namespaced(client.clone(), &target);
        until(LEASE * 3, async || standby.leading()).await;
        to_lead.push(killed.elapsed());
        until(Duration::from_secs(20), async || {
            secrets.get_opt("copied").await.unwrap().is_some()
        })
        .await;
        to_write.push(killed.elapsed());
        // SIGTERM: the leader releases the Lease; a new standby takes over at its next try.
        let next = Replica::start(manifests.path(), &central, &id);
        tokio::time::sleep(Duration::from_secs(3)).await;
        standby.signal("-TERM");
        let terminated = Instant::now();
        until(LEASE * 3, async || next.leading()).await;
        handovers.push(terminated.elapsed());
        leader = next;
        let _ = namespaces.delete(&target, &DeleteParams::default()).await;
    }
    let (lead, write, handover) = (
        median(to_lead.clone()),
        median(to_write.clone()),
        median(handovers.clone()),
    );
    println!(
        "leader election, {rounds} rounds, lease {LEASE:?}, renew deadline 10s, retry {RETRY:?}:"
    );
    println!(
        "  SIGKILL -> standby leads:  median {:.2} s ({:.2}x the lease duration) {:?}",
        lead.as_secs_f64(),
        lead.as_secs_f64() / LEASE.as_secs_f64(),
        to_lead
    );
    println!(
        "  SIGKILL -> first write:    median {:.2} s ({:.2}x the lease duration) {:?}",
        write.as_secs_f64(),
        write.as_secs_f64() / LEASE.as_secs_f64(),
        to_write
    );
    println!(
        "  SIGTERM -> standby leads:  median {:.2} s ({:.2}x the retry period, {:.2}x the lease) {:?}",
        handover.as_secs_f64(),
        handover.as_secs_f64() / RETRY.as_secs_f64(),
        handover.as_secs_f64() / LEASE.as_secs_f64(),
        handovers
    );

    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let archive = root.join("target/image/courier.oci.tar");
    match std::fs::metadata(&archive) {
        Ok(image) => {
            let binary = root.join("target/image/rootfs/usr/local/bin/courier");
            let binary = std::fs::metadata(&binary).map(|m| m.len()).unwrap_or(0);
            println!(
                "image: {:.1} MiB archive, stripped binary {:.1} MiB ({:.3}x the binary)",
                image.len() as f64 / 1048576.0,
                binary as f64 / 1048576.0,
                image.len() as f64 / binary.max(1) as f64
            );
        }
        Err(_) => println!("image: not built (image/build.sh)"),
    }
}
