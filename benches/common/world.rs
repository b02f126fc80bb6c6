//! The benches' world: the user's runbook at scale on a control plane of its own.
//! `central-secret-store` holds 10 source Secrets, a kubernetes-provider
//! ClusterSecretStore reads them as a ServiceAccount (its `server` is the control plane's
//! URL and CA), and 10 ClusterExternalSecrets select every `team-NNNNN` namespace.

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use futures::StreamExt as _;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, PostParams};
use kube::runtime::{WatchStreamExt as _, watcher};

use crate::{common, support};

pub const CES: usize = 10;
pub const CENTRAL: &str = "central-secret-store";

/// One control plane with the world on it, and what the bench sees of the targets.
pub struct World {
    pub plane: support::ControlPlane,
    pub client: Client,
    pub namespaces: usize,
    pub manifests: tempfile::TempDir,
    targets: Arc<Mutex<Targets>>,
    _observer: tokio::task::JoinHandle<()>,
}

/// The target Secrets present, and those of `shared-00` holding the rotated value.
#[derive(Default)]
struct Targets {
    present: HashSet<(String, String)>,
    rotated: HashSet<String>,
}

pub const ROTATED: &[u8] = b"rotated-value";

impl Drop for World {
    fn drop(&mut self) {
        // The watch would otherwise outlive its control plane, retrying for the rest of the run.
        self._observer.abort();
    }
}

impl World {
    /// `with_eso_crds`: ESO's own CRDs of the pinned release, for ESO to run here.
    pub async fn new(namespaces: usize, with_eso_crds: bool) -> World {
        let crds = with_eso_crds.then(eso_crds_dir);
        World::with_crds(namespaces, crds.as_deref()).await
    }

    /// The world on a control plane with the CRDs of `crds` (a directory of YAML files).
    pub async fn with_crds(namespaces: usize, crds: Option<&std::path::Path>) -> World {
        let plane = tokio::task::spawn_blocking(support::ControlPlane::start_private)
            .await
            .unwrap();
        let client = support::client_of(&plane).await;
        if let Some(crds) = crds {
            support::install_crds_from(&client, crds).await;
        }
        Api::<Namespace>::all(client.clone())
            .create(
                &PostParams::default(),
                &serde_json::from_value(serde_json::json!({"metadata": {"name": CENTRAL}}))
                    .unwrap(),
            )
            .await
            .unwrap();
        let sources = Api::<Secret>::namespaced(client.clone(), CENTRAL);
        for c in 0..CES {
            common::source(&sources, c, "initial-value").await;
        }
        support::grant_reader(&client, CENTRAL).await;
        let labels: BTreeMap<String, String> = (0..CES)
            .map(|c| (format!("secrets/shared-{c:02}"), "true".to_owned()))
            .collect();
        common::create_namespaces(
            &client,
            (0..namespaces).map(|n| (format!("team-{n:05}"), labels.clone())),
        )
        .await;

        let ca = base64::engine::general_purpose::STANDARD.encode(plane.ca_pem());
        let mut text = format!(
            "apiVersion: external-secrets.io/v1\nkind: ClusterSecretStore\nmetadata: {{name: central}}\nspec:\n  provider:\n    kubernetes:\n      remoteNamespace: {CENTRAL}\n      server: {{url: \"{}\", caBundle: {ca}}}\n      auth: {{serviceAccount: {{name: courier-reader, namespace: {CENTRAL}}}}}\n",
            plane.server()
        );
        for c in 0..CES {
            let _ = write!(
                text,
                "---\napiVersion: external-secrets.io/v1\nkind: ClusterExternalSecret\nmetadata: {{name: shared-{c:02}}}\nspec:\n  namespaceSelectors:\n  - matchLabels: {{secrets/shared-{c:02}: \"true\"}}\n  externalSecretSpec:\n    secretStoreRef: {{kind: ClusterSecretStore, name: central}}\n    target: {{name: shared-{c:02}}}\n    dataFrom:\n    - extract: {{key: source-{c:02}}}\n"
            );
        }
        let manifests = tempfile::tempdir().unwrap();
        std::fs::write(manifests.path().join("world.yaml"), text).unwrap();

        let targets = Arc::new(Mutex::new(Targets::default()));
        let observer = tokio::spawn(observe(client.clone(), targets.clone()));
        World {
            plane,
            client,
            namespaces,
            manifests,
            targets,
            _observer: observer,
        }
    }

    pub fn total(&self) -> usize {
        self.namespaces * CES
    }

    pub fn present(&self) -> usize {
        self.targets.lock().unwrap().present.len()
    }

    pub fn rotated(&self) -> usize {
        self.targets.lock().unwrap().rotated.len()
    }

    pub fn kubeconfig(&self) -> &str {
        self.plane.kubeconfig.to_str().unwrap()
    }

    pub fn manifest_dir(&self) -> &str {
        self.manifests.path().to_str().unwrap()
    }

    /// Waits until `done` holds (checked every 100 ms) or `limit` passes; how long it took.
    pub async fn wait(&self, limit: Duration, done: impl Fn(&World) -> bool) -> Option<Duration> {
        let started = Instant::now();
        loop {
            if done(self) {
                return Some(started.elapsed());
            }
            if started.elapsed() >= limit {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Creates the manifests' objects in the cluster, for ESO to reconcile.
    pub async fn create_manifests(&self) {
        let text = std::fs::read_to_string(self.manifests.path().join("world.yaml")).unwrap();
        for document in serde_saphyr::from_multiple::<serde_json::Value>(&text).unwrap() {
            let kind = document["kind"].as_str().unwrap().to_owned();
            let resource = ApiResource {
                group: "external-secrets.io".into(),
                version: "v1".into(),
                api_version: "external-secrets.io/v1".into(),
                plural: format!("{}s", kind.to_lowercase()),
                kind,
            };
            let object: DynamicObject = serde_json::from_value(document).unwrap();
            Api::<DynamicObject>::all_with(self.client.clone(), &resource)
                .create(&PostParams::default(), &object)
                .await
                .unwrap();
        }
    }

    /// `courier apply` of the world's manifests, measured (see `common::measured`).
    pub async fn measured_apply(&self) -> (Duration, f64, f64, String) {
        let mut command = Command::new(env!("CARGO_BIN_EXE_courier"));
        command
            .args([
                "apply",
                self.manifest_dir(),
                "--kubeconfig",
                self.kubeconfig(),
            ])
            .env_remove("KUBECONFIG");
        tokio::task::spawn_blocking(move || common::measured(command))
            .await
            .unwrap()
    }

    pub async fn requests(&self) -> BTreeMap<String, f64> {
        common::apiserver_requests(&self.client).await
    }

    pub async fn rotate_source(&self) {
        common::source(
            &Api::<Secret>::namespaced(self.client.clone(), CENTRAL),
            0,
            std::str::from_utf8(ROTATED).unwrap(),
        )
        .await;
    }
}

/// Watches every Secret of the world (one LIST, then one WATCH the bench keeps open).
async fn observe(client: Client, targets: Arc<Mutex<Targets>>) {
    let stream = watcher(Api::<Secret>::all(client), watcher::Config::default()).default_backoff();
    futures::pin_mut!(stream);
    while let Some(event) = stream.next().await {
        let Ok(event) = event else { continue };
        let (secret, present) = match event {
            watcher::Event::Apply(s) | watcher::Event::InitApply(s) => (s, true),
            watcher::Event::Delete(s) => (s, false),
            _ => continue,
        };
        let namespace = secret.metadata.namespace.clone().unwrap_or_default();
        let name = secret.metadata.name.clone().unwrap_or_default();
        if !namespace.starts_with("team-") || !name.starts_with("shared-") {
            continue;
        }
        let rotated = present
            && name == "shared-00"
            && secret
                .data
                .as_ref()
                .and_then(|d| d.get("password"))
                .is_some_and(|v| v.0 == ROTATED);
        let mut targets = targets.lock().unwrap();
        if present {
            targets.present.insert((namespace.clone(), name));
        } else {
            targets.present.remove(&(namespace.clone(), name));
        }
        if rotated {
            targets.rotated.insert(namespace);
        } else {
            targets.rotated.remove(&namespace);
        }
    }
}

/// ESO's own CRDs of the pinned release (the module's config/crds/bases).
pub fn eso_crds_dir() -> PathBuf {
    let output = Command::new("go")
        .args([
            "list",
            "-m",
            "-f",
            "{{.Dir}}",
            "github.com/external-secrets/external-secrets",
        ])
        .current_dir(support::repo_root().join("testenv/eso"))
        .env("GOFLAGS", "-mod=readonly")
        .env("GOTOOLCHAIN", "local")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "go list: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    PathBuf::from(String::from_utf8(output.stdout).unwrap().trim()).join("config/crds/bases")
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn stop(mut child: Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
}

/// What one tool did for the first sync of the 10,000 targets.
pub struct FirstSync {
    pub label: String,
    /// Targets present when timing stopped, and after how long.
    pub present: usize,
    pub elapsed: Duration,
    /// Whether `present` is all targets (else the figures are over the window).
    pub complete: bool,
    pub requests: u64,
    pub requests_detail: String,
    pub cpu: f64,
    pub peak_mib: f64,
}

impl FirstSync {
    pub fn rate(&self) -> f64 {
        self.present as f64 / self.elapsed.as_secs_f64()
    }
}

pub async fn courier_first_sync(world: &World) -> (FirstSync, String) {
    let before = world.requests().await;
    let (elapsed, cpu, peak_mib, stderr) = world.measured_apply().await;
    world
        .wait(Duration::from_secs(30), |w| w.present() == w.total())
        .await
        .expect("the bench's watch sees every target courier wrote");
    let (requests, requests_detail) =
        common::requests_between(&before, &world.requests().await, &[]);
    let summary = stderr
        .lines()
        .filter(|l| l.starts_with("apply:"))
        .collect::<Vec<_>>()
        .join("; ");
    (
        FirstSync {
            label: "courier apply".into(),
            present: world.present(),
            elapsed,
            complete: true,
            requests,
            requests_detail,
            cpu,
            peak_mib,
        },
        summary,
    )
}

/// courier's steady state, no-op re-apply and propagation on a finished world.
pub struct CourierSteady {
    pub noop_requests: u64,
    pub noop_detail: String,
    pub noop_wall: Duration,
    pub noop_peak_mib: f64,
    /// From `run`'s start to ready (its first reconcile done, a no-op).
    pub run_ready: Duration,
    pub steady_requests: u64,
    pub steady_detail: String,
    pub propagation: Duration,
    pub run_peak_mib: f64,
}

pub async fn courier_steady(world: &World, steady: Duration) -> CourierSteady {
    let before = world.requests().await;
    let (noop_wall, _, noop_peak_mib, _) = world.measured_apply().await;
    let (noop_requests, noop_detail) =
        common::requests_between(&before, &world.requests().await, &[]);

    let port = free_port();
    let run = Command::new(env!("CARGO_BIN_EXE_courier"))
        .args([
            "run",
            world.manifest_dir(),
            "--kubeconfig",
            world.kubeconfig(),
            "--metrics-addr",
            &format!("127.0.0.1:{port}"),
        ])
        .env_remove("KUBECONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Ready once its first reconcile (a no-op) is done; the steady state starts after it.
    let ready = Instant::now();
    while support::http_get(port, "/readyz").0 != 200 {
        assert!(
            ready.elapsed() < Duration::from_secs(300),
            "courier run never became ready"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let run_ready = ready.elapsed();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = world.requests().await;
    tokio::time::sleep(steady).await;
    let (steady_requests, steady_detail) =
        common::requests_between(&before, &world.requests().await, &[]);

    let changed_at = Instant::now();
    world.rotate_source().await;
    world
        .wait(Duration::from_secs(300), |w| w.rotated() == w.namespaces)
        .await
        .unwrap_or_else(|| panic!("only {} of {} rotated", world.rotated(), world.namespaces));
    let propagation = changed_at.elapsed();
    let run_peak_mib = common::process_usage(run.id()).map(|u| u.1).unwrap_or(0.0);
    stop(run);
    CourierSteady {
        noop_requests,
        noop_detail,
        noop_wall,
        noop_peak_mib,
        run_ready,
        steady_requests,
        steady_detail,
        propagation,
        run_peak_mib,
    }
}
