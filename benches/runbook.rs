//! `cargo bench --bench runbook`: `--from-cluster` with ESO's ExternalSecret objects (the
//! user's runbook reads them), the lean path without them (`--no-ces-external-secrets`),
//! and ESO v2.9.0's own controller (`testenv/eso-v2.sh controller`), on the same objects
//! in the cluster: 10 ClusterExternalSecrets x 1,000 namespaces = 10,000 ExternalSecrets,
//! a kubernetes-provider ClusterSecretStore reading 10 source Secrets as a ServiceAccount.
//! Every row has a control plane of its own (kube-apiserver + etcd from testenv/), with
//! ESO v2.9.0's CRDs; requests are the API server's own `apiserver_request_total`.
//!
//! `COURIER_BENCH_SCALE=full cargo test --bench runbook` runs the full measurement with
//! the test profile's binaries (for a machine where a release build is out of reach).

#[path = "common/mod.rs"]
mod common;

#[path = "../tests/cluster/support.rs"]
#[allow(dead_code)]
mod support;

#[path = "common/world.rs"]
#[allow(dead_code)]
mod world;

#[path = "../tests/common/eso.rs"]
mod eso;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kube::api::{Api, ApiResource, DynamicObject, ListParams, Patch, PatchParams};

use world::{CES, World, free_port, stop};

/// The API server's own lease renewals, left out of the counts (they come with or
/// without a tool running: `cargo bench --bench eso` measures 3 in 30 s).
const LEASES: [&str; 2] = ["PUT leases", "GET leases"];

fn main() {
    common::main("runbook", |scale| {
        let scale = match std::env::var("COURIER_BENCH_SCALE").as_deref() {
            Ok("full") => common::Scale::Full,
            _ => scale,
        };
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(bench(scale));
    });
}

fn ces_resource() -> ApiResource {
    ApiResource {
        kind: "ClusterExternalSecret".into(),
        plural: "clusterexternalsecrets".into(),
        ..es_resource()
    }
}

fn es_resource() -> ApiResource {
    ApiResource {
        group: "external-secrets.io".into(),
        version: "v1".into(),
        api_version: "external-secrets.io/v1".into(),
        kind: "ExternalSecret".into(),
        plural: "externalsecrets".into(),
    }
}

/// Every CRD of ESO v2.9.0 (its controller watches generators too), as a directory.
fn crds() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        support::repo_root().join("../shared/eso/crds-v2.9.0.yaml"),
        dir.path().join("crds.yaml"),
    )
    .unwrap();
    dir
}

/// ExternalSecrets in the cluster, and how many of them read `SecretSynced`.
async fn external_secret_rows(world: &World) -> (usize, usize) {
    let listed = Api::<DynamicObject>::all_with(world.client.clone(), &es_resource())
        .list(&ListParams::default())
        .await
        .unwrap();
    let synced = listed
        .items
        .iter()
        .filter(|es| {
            es.data["status"]["conditions"]
                .as_array()
                .is_some_and(|c| c.iter().any(|c| c["reason"] == "SecretSynced"))
        })
        .count();
    (listed.items.len(), synced)
}

/// One tool's figures on one world.
struct Row {
    label: String,
    /// Targets present when the first sync's clock stopped.
    present: usize,
    first: Duration,
    first_requests: u64,
    first_detail: String,
    cpu: f64,
    peak_mib: f64,
    external_secrets: (usize, usize),
    noop: String,
    noop_requests: u64,
    steady_requests: u64,
    steady_detail: String,
}

fn courier(world: &World, verb: &str, extra: &[&str]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_courier"));
    command
        .args([verb, "--from-cluster", "--kubeconfig", world.kubeconfig()])
        .args(extra)
        .env_remove("KUBECONFIG");
    command
}

/// courier on a world whose ESO objects are in the cluster: the first `apply
/// --from-cluster`, a no-op one (twice: its count must not move), and `run
/// --from-cluster`'s steady state.
async fn courier_row(world: &World, label: &str, extra: &[&str], steady: Duration) -> Row {
    world.create_manifests().await;
    let before = world.requests().await;
    let command = courier(world, "apply", extra);
    let (first, cpu, peak_mib, _) = tokio::task::spawn_blocking(move || common::measured(command))
        .await
        .unwrap();
    world
        .wait(Duration::from_secs(60), |w| w.present() == w.total())
        .await
        .expect("the bench's watch sees every target courier wrote");
    let (first_requests, first_detail) =
        common::requests_between(&before, &world.requests().await, &LEASES);
    let external_secrets = external_secret_rows(world).await;

    // courier's own count (its summary line) is asserted; the API server's, which also
    // holds its own lease renewals, is shown beside it.
    let mut noops = Vec::new();
    for _ in 0..2 {
        let before = world.requests().await;
        let command = courier(world, "apply", extra);
        let (wall, _, _, stderr) = tokio::task::spawn_blocking(move || common::measured(command))
            .await
            .unwrap();
        let own: u64 = stderr
            .lines()
            .find(|l| l.starts_with("apply:") && l.ends_with("API requests"))
            .and_then(|l| l.rsplit("; ").next()?.split(' ').next()?.parse().ok())
            .unwrap_or_else(|| panic!("no summary: {stderr}"));
        let (requests, detail) =
            common::requests_between(&before, &world.requests().await, &LEASES);
        noops.push((own, requests, wall, detail));
    }
    assert_eq!(
        noops[0].0, noops[1].0,
        "a no-op's request count moved: {noops:?}"
    );
    let noop = format!(
        "{} requests of courier's ({} at the API server, leases left out), {:.2} s / {:.2} s ({})",
        noops[0].0,
        noops[0].1,
        noops[0].2.as_secs_f64(),
        noops[1].2.as_secs_f64(),
        noops[0].3
    );

    let port = free_port();
    let mut command = courier(world, "run", extra);
    let run = command
        .args(["--metrics-addr", &format!("127.0.0.1:{port}")])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let ready = Instant::now();
    while support::http_get(port, "/readyz").0 != 200 {
        assert!(
            ready.elapsed() < Duration::from_secs(300),
            "courier run never became ready"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = world.requests().await;
    tokio::time::sleep(steady).await;
    let (steady_requests, steady_detail) =
        common::requests_between(&before, &world.requests().await, &LEASES);
    stop(run);
    Row {
        label: label.into(),
        present: world.total(),
        first,
        first_requests,
        first_detail,
        cpu,
        peak_mib,
        external_secrets,
        noop,
        noop_requests: noops[0].0,
        steady_requests,
        steady_detail,
    }
}

fn start_eso(binary: &std::path::Path, world: &World, log: &std::path::Path) -> Child {
    eso::start_eso(
        binary,
        std::path::Path::new(world.kubeconfig()),
        log,
        &[
            "--loglevel",
            "error",
            "--concurrent",
            "16",
            "--client-qps",
            "10000",
            "--client-burst",
            "10000",
            "--enable-push-secret-reconciler=false",
            "--enable-cluster-push-secret-reconciler=false",
            "--enable-generator-state=false",
        ],
        &[],
        eso::Supervision::Caller,
    )
}

/// ESO v2.9.0 tuned: the first sync to the end, its steady state, and one refresh
/// (nothing changed) of at least `refreshed` ExternalSecrets (all those of the first
/// ClusterExternalSecrets), forced by ESO's `external-secrets.io/force-sync` annotation
/// on the ClusterExternalSecrets (ESO v2.9 ignores status-only changes, so moving
/// `refreshTime` back no longer wakes it). The work is what a periodic refresh does:
/// read the source, compare the Secret, write the status.
async fn eso_row(
    binary: &std::path::Path,
    world: &World,
    steady: Duration,
    refreshed: usize,
) -> Row {
    let log = world.manifests.path().join("eso.log");
    let before = world.requests().await;
    let started = Instant::now();
    let eso = start_eso(binary, world, &log);
    world.create_manifests().await;
    // At most `COURIER_BENCH_ESO_WINDOW` seconds (1,500 by default); on a machine too
    // loaded for ESO to finish, its rate over the window is reported, extrapolated, and
    // its steady state and refresh are not measured.
    let window = std::env::var("COURIER_BENCH_ESO_WINDOW")
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(Duration::from_secs(1_500), Duration::from_secs);
    let finished = world.wait(window, |w| w.present() == w.total()).await;
    let first = started.elapsed();
    let (cpu, peak_mib) = common::process_usage(eso.id()).unwrap_or_default();
    let (first_requests, first_detail) =
        common::requests_between(&before, &world.requests().await, &LEASES);
    if finished.is_none() {
        let present = world.present();
        assert!(
            present > 0,
            "ESO wrote no target; its log: {}",
            log.display()
        );
        let external_secrets = external_secret_rows(world).await;
        stop(eso);
        let rate = present as f64 / first.as_secs_f64();
        return Row {
            label: format!(
                "ESO v2.9.0 tuned (did not finish: {present} of {} targets in the {:.0} s window, {rate:.1}/s; all of them at that rate: ~{:.0} s)",
                world.total(),
                first.as_secs_f64(),
                world.total() as f64 / rate
            ),
            present,
            first,
            first_requests,
            first_detail,
            cpu,
            peak_mib,
            external_secrets,
            noop: "not measured (the first sync did not finish in the window)".into(),
            noop_requests: 0,
            steady_requests: 0,
            steady_detail: "not measured".into(),
        };
    }
    // Its ExternalSecrets' statuses may trail their Secrets by a moment.
    let mut external_secrets = external_secret_rows(world).await;
    for _ in 0..60 {
        if external_secrets.1 == world.total() {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
        external_secrets = external_secret_rows(world).await;
    }

    tokio::time::sleep(steady / 3).await;
    let before = world.requests().await;
    tokio::time::sleep(steady).await;
    let (steady_requests, steady_detail) =
        common::requests_between(&before, &world.requests().await, &LEASES);

    // ESO's way to force a refresh of a ClusterExternalSecret's ExternalSecrets: its
    // `external-secrets.io/force-sync` annotation, which ESO's CES controller mirrors onto
    // each of them. An annotation put on such an ExternalSecret itself never lands: the CES
    // controller sets their annotations to `externalSecretMetadata`'s at once, before the
    // ExternalSecret controller reads the object (so nothing was refreshed, and the bench
    // waited). Enough ClusterExternalSecrets for `refreshed` ExternalSecrets.
    let forced = refreshed.div_ceil(world.namespaces).clamp(1, CES);
    let forced_ces: Vec<String> = (0..forced).map(|c| format!("shared-{c:02}")).collect();
    let api = Api::<DynamicObject>::all_with(world.client.clone(), &es_resource());
    let due = world.namespaces * forced;
    let stamp = chrono_like(std::time::SystemTime::now());
    let before = world.requests().await;
    let started = Instant::now();
    let ces_api = Api::<DynamicObject>::all_with(world.client.clone(), &ces_resource());
    for name in &forced_ces {
        ces_api
            .patch(
                name,
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({"metadata": {"annotations": {
                    "external-secrets.io/force-sync": stamp.clone()
                }}})),
            )
            .await
            .unwrap();
    }
    let refresh = loop {
        let listed = api.list(&ListParams::default()).await.unwrap();
        let done = listed
            .items
            .iter()
            .filter(|es| {
                es.metadata
                    .name
                    .as_ref()
                    .is_some_and(|n| forced_ces.contains(n))
            })
            .filter(|es| es.data["status"]["refreshTime"].as_str().unwrap_or("") >= stamp.as_str())
            .count();
        if done >= due {
            break started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "ESO refreshed {done} of {due} in 10 minutes; its log: {}",
            log.display()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let (refresh_requests, refresh_detail) = common::requests_between(
        &before,
        &world.requests().await,
        // The bench's own (the annotation, its polling) and the CES controller's mirroring
        // of the annotation onto each ExternalSecret are the forcing, not the refresh.
        &[
            "PATCH clusterexternalsecrets",
            "PUT externalsecrets",
            "LIST externalsecrets",
            LEASES[0],
            LEASES[1],
        ],
    );
    stop(eso);
    Row {
        label: "ESO v2.9.0 tuned".into(),
        present: world.total(),
        first,
        first_requests,
        first_detail,
        cpu,
        peak_mib,
        external_secrets,
        noop: format!(
            "one refresh of {due} ExternalSecrets (forced by {forced} ClusterExternalSecrets' force-sync): {refresh_requests} requests in {:.1} s = {:.2} per ExternalSecret ({refresh_detail})",
            refresh.as_secs_f64(),
            refresh_requests as f64 / due.max(1) as f64
        ),
        noop_requests: refresh_requests,
        steady_requests,
        steady_detail,
    }
}

/// RFC 3339 UTC seconds, as ESO writes `status.refreshTime`.
fn chrono_like(time: std::time::SystemTime) -> String {
    let secs = time
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let (days, rest) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3_600,
        rest % 3_600 / 60,
        rest % 60
    )
}

async fn bench(scale: common::Scale) {
    let binary = tokio::task::spawn_blocking(|| {
        let output = Command::new(support::repo_root().join("testenv/eso-v2.sh"))
            .arg("controller")
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "testenv/eso-v2.sh controller: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        std::path::PathBuf::from(String::from_utf8(output.stdout).unwrap().trim())
    })
    .await
    .unwrap();
    // `COURIER_BENCH_NAMESPACES=N`: another size (ESO's refresh and steady state on a
    // world it finishes, when 1,000 namespaces take it too long).
    let namespaces = std::env::var("COURIER_BENCH_NAMESPACES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(scale.pick(1_000, 5));
    let steady = scale.pick(Duration::from_secs(60), Duration::from_secs(3));
    let refreshed = scale.pick(1_000, 20);
    let crds = crds();
    // Every row unless `COURIER_BENCH_ROWS` names some (`objects`, `lean`, `eso`).
    let only = std::env::var("COURIER_BENCH_ROWS").unwrap_or_default();
    let wanted = |row: &str| only.is_empty() || only.split(',').any(|r| r == row);
    let total = namespaces * CES;
    println!(
        "runbook: {namespaces} namespaces x {CES} ClusterExternalSecrets = {total} ExternalSecrets / Secrets; ESO v2.9.0's CRDs; one control plane per row; profile {}",
        if cfg!(debug_assertions) {
            "test (debug)"
        } else {
            "bench (release)"
        }
    );
    let mut rows: Vec<Row> = Vec::new();
    if wanted("objects") {
        eprintln!("courier --from-cluster with ExternalSecret objects, {namespaces} namespaces");
        let world = World::with_crds(namespaces, Some(crds.path())).await;
        rows.push(courier_row(&world, "courier, ExternalSecret objects", &[], steady).await);
        print_row(&rows[rows.len() - 1], total, steady);
    }
    if wanted("lean") {
        eprintln!("courier --from-cluster --no-ces-external-secrets, {namespaces} namespaces");
        let world = World::with_crds(namespaces, Some(crds.path())).await;
        rows.push(
            courier_row(
                &world,
                "courier, lean path",
                &["--no-ces-external-secrets"],
                steady,
            )
            .await,
        );
        print_row(&rows[rows.len() - 1], total, steady);
    }
    if wanted("eso") {
        eprintln!("ESO v2.9.0 tuned, {namespaces} namespaces");
        let world = World::with_crds(namespaces, Some(crds.path())).await;
        rows.push(eso_row(&binary, &world, steady, refreshed).await);
        print_row(&rows[rows.len() - 1], total, steady);
    }
    if let [objects, lean, ..] = rows.as_slice() {
        println!(
            "  ExternalSecret objects / lean: first sync {:.2}x time, {:.2}x requests; no-op {} / {} requests",
            objects.first.as_secs_f64() / lean.first.as_secs_f64(),
            objects.first_requests as f64 / lean.first_requests as f64,
            objects.noop_requests,
            lean.noop_requests
        );
    }
    if let (Some(objects), Some(eso)) = (
        rows.iter().find(|r| r.label.contains("objects")),
        rows.iter().find(|r| r.label.starts_with("ESO")),
    ) {
        println!(
            "  ESO / courier with objects: first sync {:.1}x time (per target), {:.1}x requests, {:.0}x CPU, {:.1}x peak RSS",
            (eso.first.as_secs_f64() / eso.present.max(1) as f64)
                / (objects.first.as_secs_f64() / objects.present.max(1) as f64),
            (eso.first_requests as f64 / eso.present.max(1) as f64)
                / (objects.first_requests as f64 / objects.present.max(1) as f64),
            eso.cpu / objects.cpu.max(0.01),
            eso.peak_mib / objects.peak_mib.max(1.0)
        );
    }
}

fn print_row(row: &Row, total: usize, steady: Duration) {
    println!("  {}:", row.label);
    println!(
        "    first sync: {:.1} s, {} requests = {:.2} per target ({}); CPU {:.1} s, peak RSS {:.0} MiB; ExternalSecrets {} ({} SecretSynced)",
        row.first.as_secs_f64(),
        row.first_requests,
        row.first_requests as f64 / total as f64,
        row.first_detail,
        row.cpu,
        row.peak_mib,
        row.external_secrets.0,
        row.external_secrets.1
    );
    println!("    no-op: {}", row.noop);
    println!(
        "    steady state, {} s: {} requests ({})",
        steady.as_secs(),
        row.steady_requests,
        row.steady_detail
    );
}
