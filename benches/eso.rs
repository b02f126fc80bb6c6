//! `cargo bench --bench eso`: courier beside the External Secrets Operator itself, on the
//! same manifests, each on a control plane of its own (a real kube-apiserver with etcd
//! built from testenv/), in one run.
//!
//! The world is the user's runbook at scale: `central-secret-store` holds 10 source
//! Secrets, a kubernetes-provider ClusterSecretStore reads them as a ServiceAccount (its
//! `server` is the control plane's URL and CA), and 10 ClusterExternalSecrets select
//! 1,000 namespaces each: 10,000 targets.
//!
//! ESO is its controller built from its Go module (`testenv/tool.sh eso`, ESO v0.20.4), run
//! at its defaults and tuned (`--concurrent 16`, client QPS and burst 10,000). Tuned, it
//! runs to the end (at most 900 s). At its defaults it needs about 17 minutes, so it is
//! timed over a fixed window (120 s, or `COURIER_BENCH_ESO_WINDOW` seconds;
//! `COURIER_BENCH_ESO_WINDOW=0` runs it to the end) and its time for all targets is that
//! rate extrapolated, which the report says. Its steady state and one periodic refresh are
//! measured on 100 namespaces (1,000 targets) it finishes.
//!
//! Every request figure is the API server's own `apiserver_request_total`, not the tools'
//! counts; the bench's own requests (its watch, its force-sync annotations) are left out.

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

use std::process::Child;
use std::time::{Duration, Instant};

use kube::api::{Api, ApiResource, DynamicObject, ListParams, Patch, PatchParams};

use world::{CES, FirstSync, World, courier_first_sync, courier_steady, stop};

fn main() {
    common::main("eso", |scale| {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(bench(scale));
    });
}

/// The ESO controller, started on `world`'s control plane with `flags`.
fn start_eso(world: &World, flags: &[&str], log: &std::path::Path) -> Child {
    let binary = support::go_tool("eso");
    let flags = [&["--loglevel", "error"], flags].concat();
    eso::start_eso(
        &binary,
        std::path::Path::new(world.kubeconfig()),
        log,
        &flags,
        &[],
        eso::Supervision::Caller,
    )
}

async fn eso_first_sync(world: &World, label: &str, flags: &[&str], window: Duration) -> FirstSync {
    let log = world.manifests.path().join("eso.log");
    let before = world.requests().await;
    let started = Instant::now();
    let eso = start_eso(world, flags, &log);
    world.create_manifests().await;
    let finished = world.wait(window, |w| w.present() == w.total()).await;
    let elapsed = finished.unwrap_or_else(|| started.elapsed());
    let present = world.present();
    let (cpu, peak_mib) = common::process_usage(eso.id()).unwrap_or_default();
    let (requests, requests_detail) =
        common::requests_between(&before, &world.requests().await, &[]);
    stop(eso);
    assert!(
        present > 0,
        "ESO wrote no target in {window:?}; its log: {}",
        log.display()
    );
    FirstSync {
        label: label.into(),
        present,
        elapsed,
        complete: finished.is_some(),
        requests,
        requests_detail,
        cpu,
        peak_mib,
    }
}

/// ESO on a world it finishes: the first sync, 60 s of steady state, and one forced
/// refresh of every ExternalSecret (`force-sync` annotation, as its docs advise) with
/// nothing changed.
struct EsoSteady {
    first: FirstSync,
    steady_requests: u64,
    steady_detail: String,
    refresh: Duration,
    refresh_requests: u64,
    refresh_detail: String,
    propagation_note: String,
}

/// `warmup`: how long ESO runs before the steady state is counted; `steady`: how long it is.
async fn eso_steady(
    world: &World,
    flags: &[&str],
    warmup: Duration,
    steady: Duration,
) -> EsoSteady {
    let first = eso_first_sync(world, "ESO tuned", flags, Duration::from_secs(1_200)).await;
    assert!(
        first.complete,
        "ESO did not finish {} targets in 20 minutes",
        world.total()
    );
    // eso_first_sync stopped ESO; start it again for the steady state (its informers
    // list once at start, which is left out: the steady state starts `warmup` later).
    let log = world.manifests.path().join("eso-steady.log");
    let eso = start_eso(world, flags, &log);
    tokio::time::sleep(warmup).await;
    let before = world.requests().await;
    tokio::time::sleep(steady).await;
    let (steady_requests, steady_detail) =
        common::requests_between(&before, &world.requests().await, &[]);

    // ESO refreshes an ExternalSecret when its refreshInterval has passed since
    // status.refreshTime, and reconciles one whenever it changes. Moving every
    // refreshTime two hours back makes each one due at once: one periodic refresh of them
    // all with nothing changed, what ESO does every refreshInterval. The bench's own
    // status patches and LISTs are left out of the count.
    let resource = ApiResource {
        group: "external-secrets.io".into(),
        version: "v1".into(),
        api_version: "external-secrets.io/v1".into(),
        kind: "ExternalSecret".into(),
        plural: "externalsecrets".into(),
    };
    let externalsecrets = Api::<DynamicObject>::all_with(world.client.clone(), &resource);
    let listed = externalsecrets.list(&ListParams::default()).await.unwrap();
    let long_ago = rfc3339(std::time::SystemTime::now() - Duration::from_secs(7_200));
    let before = world.requests().await;
    let stamp = rfc3339(std::time::SystemTime::now());
    let started = Instant::now();
    for es in &listed.items {
        let namespace = es.metadata.namespace.clone().unwrap();
        let name = es.metadata.name.clone().unwrap();
        Api::<DynamicObject>::namespaced_with(world.client.clone(), &namespace, &resource)
            .patch_status(
                &name,
                &PatchParams::default(),
                &Patch::Merge(serde_json::json!({"status": {"refreshTime": long_ago}})),
            )
            .await
            .unwrap();
    }
    // Done when every ExternalSecret's status says it refreshed since.
    let refresh = loop {
        let listed = externalsecrets.list(&ListParams::default()).await.unwrap();
        let refreshed = listed
            .items
            .iter()
            .filter(|es| es.data["status"]["refreshTime"].as_str().unwrap_or("") >= stamp.as_str())
            .count();
        if refreshed == listed.items.len() {
            break started.elapsed();
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "ESO refreshed {refreshed} of {} in 10 minutes; its log: {}",
            listed.items.len(),
            log.display()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let (refresh_requests, refresh_detail) = common::requests_between(
        &before,
        &world.requests().await,
        &["PATCH externalsecrets/status", "LIST externalsecrets"],
    );

    // ESO's kubernetes provider does not watch the source: a change reaches the targets
    // at each ExternalSecret's next refresh (refreshInterval: 1h, the default the manifests
    // keep). Shown, not waited for: 5 s after the change.
    world.rotate_source().await;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let propagation_note = format!(
        "{} of {} namespaces 5 s after the change (ESO reads the source again at refreshInterval, 1h by default)",
        world.rotated(),
        world.namespaces
    );
    stop(eso);
    EsoSteady {
        first,
        steady_requests,
        steady_detail,
        refresh,
        refresh_requests,
        refresh_detail,
        propagation_note,
    }
}

/// RFC 3339 UTC seconds, as ESO writes `status.refreshTime`.
fn rfc3339(time: std::time::SystemTime) -> String {
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

fn window(default: u64) -> Duration {
    let seconds = std::env::var("COURIER_BENCH_ESO_WINDOW")
        .ok()
        .map(|v| {
            v.parse::<u64>()
                .expect("COURIER_BENCH_ESO_WINDOW is whole seconds")
        })
        .unwrap_or(default);
    if seconds == 0 {
        Duration::from_secs(3_600)
    } else {
        Duration::from_secs(seconds)
    }
}

const TUNED: &[&str] = &[
    "--concurrent",
    "16",
    "--client-qps",
    "10000",
    "--client-burst",
    "10000",
];

async fn bench(scale: common::Scale) {
    // Build (or find) ESO before any clock starts.
    let eso_binary = tokio::task::spawn_blocking(|| support::go_tool("eso"))
        .await
        .unwrap();
    eprintln!("eso: {}", eso_binary.display());
    // `cargo test` runs the same steps on 10 and 5 namespaces with short windows.
    let window = window(scale.pick(120, 300));
    let namespace_count = scale.pick(1_000, 10);
    let small = scale.pick(100, 5);
    let steady_window = scale.pick(Duration::from_secs(60), Duration::from_secs(5));
    let idle = scale.pick(Duration::from_secs(30), Duration::from_secs(3));
    let warmup = scale.pick(Duration::from_secs(20), Duration::from_secs(5));

    eprintln!("courier: {namespace_count} namespaces x {CES} ClusterExternalSecrets");
    let world = World::new(namespace_count, true).await;
    let version = world.plane.expected_version.clone().unwrap_or_default();
    // What the API server does on its own (its identity lease), for the steady states.
    let before = world.requests().await;
    tokio::time::sleep(idle).await;
    let (idle_requests, idle_detail) =
        common::requests_between(&before, &world.requests().await, &[]);
    let (courier, courier_summary) = courier_first_sync(&world).await;
    let steady = courier_steady(&world, steady_window).await;
    drop(world);

    eprintln!("ESO at its defaults, {} s window", window.as_secs());
    let world = World::new(namespace_count, true).await;
    let eso_default = eso_first_sync(&world, "ESO defaults", &[], window).await;
    drop(world);

    eprintln!("ESO tuned, to the end (at most 900 s)");
    let world = World::new(namespace_count, true).await;
    let eso_tuned = eso_first_sync(&world, "ESO tuned", TUNED, Duration::from_secs(900)).await;
    drop(world);

    eprintln!("ESO tuned on {small} namespaces, to the end");
    let world = World::new(small, true).await;
    let eso_small = eso_steady(&world, TUNED, warmup, steady_window).await;
    drop(world);

    let total = namespace_count * CES;
    println!(
        "eso: {namespace_count} namespaces x {CES} ClusterExternalSecrets = {total} targets; kube-apiserver {version}; ESO v0.20.4 (testenv/eso); one control plane per row"
    );
    println!("  first sync of {total} targets:");
    println!(
        "    {:<14} {:>9} {:>10} {:>11} {:>10} {:>9} {:>9}  courier is",
        "", "targets", "time (s)", "targets/s", "requests", "CPU (s)", "RSS MiB"
    );
    for row in [&courier, &eso_default, &eso_tuned] {
        let projected = total as f64 / row.rate();
        let time = if row.complete {
            format!("{:.1}", row.elapsed.as_secs_f64())
        } else {
            format!("~{projected:.0}*")
        };
        let ratio = if std::ptr::eq(row, &courier) {
            "-".to_owned()
        } else {
            format!("{:.0}x faster", courier.rate() / row.rate())
        };
        println!(
            "    {:<14} {:>9} {:>10} {:>11.1} {:>10} {:>9.1} {:>9.0}  {ratio}",
            row.label,
            row.present,
            time,
            row.rate(),
            row.requests,
            row.cpu,
            row.peak_mib
        );
    }
    for row in [&eso_default, &eso_tuned] {
        if !row.complete {
            println!(
                "    * {}: {} of {total} targets in the {:.0} s window; the time is that rate extrapolated",
                row.label,
                row.present,
                row.elapsed.as_secs_f64()
            );
        }
    }
    println!("    courier: {courier_summary}");
    println!("    courier requests: {}", courier.requests_detail);
    println!("    ESO defaults requests: {}", eso_default.requests_detail);
    println!("    ESO tuned requests: {}", eso_tuned.requests_detail);
    let per = |requests: u64, targets: usize| requests as f64 / targets as f64;
    println!(
        "    requests per target written: courier {:.2}, ESO defaults {:.2}, ESO tuned {:.2}",
        per(courier.requests, courier.present),
        per(eso_default.requests, eso_default.present),
        per(eso_tuned.requests, eso_tuned.present)
    );
    println!("  no-op refresh (nothing changed):");
    println!(
        "    courier apply, {total} targets: {} requests in {:.2} s ({})",
        steady.noop_requests,
        steady.noop_wall.as_secs_f64(),
        steady.noop_detail
    );
    let small_total = small * CES;
    println!(
        "    ESO tuned, one periodic refresh of {small_total} ExternalSecrets: {} requests in {:.1} s ({}) = {:.2} per target, ~{:.0} for {total}",
        eso_small.refresh_requests,
        eso_small.refresh.as_secs_f64(),
        eso_small.refresh_detail,
        per(eso_small.refresh_requests, small_total),
        per(eso_small.refresh_requests, small_total) * total as f64
    );
    println!(
        "  steady state, {} s, nothing changing:",
        steady_window.as_secs()
    );
    println!(
        "    the API server alone, {} s idle before courier: {idle_requests} requests ({idle_detail})",
        idle.as_secs()
    );
    println!(
        "    courier run, {total} targets: {} requests{}",
        steady.steady_requests,
        if steady.steady_detail.is_empty() {
            String::new()
        } else {
            format!(" ({})", steady.steady_detail)
        }
    );
    println!(
        "    ESO tuned, {small_total} targets: {} requests{}",
        eso_small.steady_requests,
        if eso_small.steady_detail.is_empty() {
            String::new()
        } else {
            format!(" ({})", eso_small.steady_detail)
        }
    );
    println!("  one source change reaching its namespaces:");
    println!(
        "    courier run: {namespace_count} namespaces in {:.1} s; run peak RSS {:.0} MiB",
        steady.propagation.as_secs_f64(),
        steady.run_peak_mib
    );
    println!("    ESO tuned: {}", eso_small.propagation_note);
    println!(
        "    ESO tuned first sync of {small_total} targets: {:.1} s, {} requests, {:.1} s CPU, {:.0} MiB peak RSS",
        eso_small.first.elapsed.as_secs_f64(),
        eso_small.first.requests,
        eso_small.first.cpu,
        eso_small.first.peak_mib
    );
}
