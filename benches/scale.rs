//! `cargo bench --bench scale`: courier at 1,000, 10,000 and 100,000 targets (100, 1,000
//! and 10,000 namespaces x 10 ClusterExternalSecrets), each on a control plane of its own
//! (a real kube-apiserver with etcd built from testenv/), in one run, so the cost per
//! target shows how it grows.
//!
//! For each size: the first `courier apply` (wall, CPU, peak RSS, the API server's own
//! request count), a no-op re-apply, and under `courier run`: the time to ready, 20 s of
//! steady state, one source change reaching every namespace, and run's peak RSS.
//! `COURIER_BENCH_SCALE=100,1000` picks other namespace counts. `cargo test` runs it on 10
//! namespaces with 3 s of steady state (see `common::main`).

#[path = "common/mod.rs"]
mod common;

#[path = "../tests/cluster/support.rs"]
#[allow(dead_code)]
mod support;

#[path = "common/world.rs"]
#[allow(dead_code)]
mod world;

use std::time::Duration;

use world::{CES, World};

fn main() {
    common::main("scale", |scale| {
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(bench(scale));
    });
}

struct Row {
    namespaces: usize,
    first: world::FirstSync,
    summary: String,
    steady: world::CourierSteady,
}

async fn bench(scale: common::Scale) {
    let steady_window = scale.pick(Duration::from_secs(20), Duration::from_secs(3));
    let sizes: Vec<usize> = std::env::var("COURIER_BENCH_SCALE")
        .ok()
        .map(|v| {
            v.split(',')
                .map(|n| {
                    n.trim()
                        .parse()
                        .expect("COURIER_BENCH_SCALE: namespace counts")
                })
                .collect()
        })
        .unwrap_or_else(|| scale.pick(vec![100, 1_000, 10_000], vec![10]));
    let mut rows = Vec::new();
    let mut version = String::new();
    for namespaces in sizes {
        eprintln!("scale: {namespaces} namespaces x {CES} ClusterExternalSecrets");
        let world = World::new(namespaces, false).await;
        version = world.plane.expected_version.clone().unwrap_or_default();
        let (first, summary) = world::courier_first_sync(&world).await;
        let steady = world::courier_steady(&world, steady_window).await;
        rows.push(Row {
            namespaces,
            first,
            summary,
            steady,
        });
    }

    println!(
        "scale: courier, N namespaces x {CES} ClusterExternalSecrets; kube-apiserver {version}; one control plane per size"
    );
    println!(
        "  {:>8} | {:>8} {:>8} {:>8} {:>9} {:>8} | {:>8} {:>8} {:>8} | {:>7} {:>8} {:>8} {:>8}",
        "targets",
        "apply s",
        "us/tgt",
        "CPU s",
        "requests",
        "RSS MiB",
        "no-op s",
        "no-op rq",
        "RSS MiB",
        "ready s",
        "steady rq",
        "change s",
        "run MiB"
    );
    for row in &rows {
        let targets = row.namespaces * CES;
        println!(
            "  {:>8} | {:>8.1} {:>8.0} {:>8.1} {:>9} {:>8.0} | {:>8.2} {:>8} {:>8.0} | {:>7.1} {:>8} {:>8.1} {:>8.0}",
            targets,
            row.first.elapsed.as_secs_f64(),
            row.first.elapsed.as_secs_f64() * 1e6 / targets as f64,
            row.first.cpu,
            row.first.requests,
            row.first.peak_mib,
            row.steady.noop_wall.as_secs_f64(),
            row.steady.noop_requests,
            row.steady.noop_peak_mib,
            row.steady.run_ready.as_secs_f64(),
            row.steady.steady_requests,
            row.steady.propagation.as_secs_f64(),
            row.steady.run_peak_mib,
        );
    }
    println!("  per target (first apply): wall us, courier CPU us, peak RSS KiB");
    for row in &rows {
        let targets = (row.namespaces * CES) as f64;
        println!(
            "  {:>8}: {:>6.0} us wall, {:>5.0} us CPU, {:>5.2} KiB apply RSS, {:>5.2} KiB run RSS",
            row.namespaces * CES,
            row.first.elapsed.as_secs_f64() * 1e6 / targets,
            row.first.cpu * 1e6 / targets,
            row.first.peak_mib * 1024.0 / targets,
            row.steady.run_peak_mib * 1024.0 / targets,
        );
    }
    for row in &rows {
        println!(
            "  {:>8}: {} | first apply requests: {} | no-op requests: {}",
            row.namespaces * CES,
            row.summary,
            row.first.requests_detail,
            row.steady.noop_detail
        );
    }
}
