//! `cargo bench --bench render`: renders a generated world of 1,000 namespaces x 20
//! ClusterExternalSecrets (20,000 Secrets) and reports wall time and peak memory.
//!
//! Wall time is the `courier render DIR > /dev/null` binary end to end (median of runs);
//! peak RSS is the same pipeline run in this process, read from /proc/self/status.
//! `cargo test` runs it once on 10 namespaces (see `common::main`).

#[path = "common/mod.rs"]
mod common;

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const CLUSTER_EXTERNAL_SECRETS: usize = 20;

fn main() {
    common::main("render", bench);
}

fn bench(scale: common::Scale) {
    let namespaces = scale.pick(1_000, 10);
    let runs = scale.pick(7, 1);
    let dir = tempfile::tempdir().expect("temp dir");
    write_world(dir.path(), namespaces);
    let binary = env!("CARGO_BIN_EXE_courier");

    let mut walls: Vec<Duration> = (0..runs)
        .map(|_| {
            let started = Instant::now();
            let status = Command::new(binary)
                .args(["render", dir.path().to_str().unwrap()])
                .stdout(Stdio::null())
                .status()
                .expect("courier runs");
            assert!(status.success(), "render failed");
            started.elapsed()
        })
        .collect();
    walls.sort();

    let rss_before = peak_rss_kib();
    let started = Instant::now();
    let inputs = courier::core::load::load_paths(&[dir.path().to_path_buf()]).expect("world loads");
    let loaded = started.elapsed();
    let world = courier::core::world::World::from_inputs(&inputs).expect("world builds");
    let plan = courier::core::plan::plan(&inputs.manifests, &world, &courier::providers::Registry);
    let planned = started.elapsed();
    assert!(plan.errors.is_empty(), "{:?}", plan.errors.first());
    assert_eq!(plan.secrets.len(), namespaces * CLUSTER_EXTERNAL_SECRETS);
    let yaml = courier::core::output::to_yaml(&plan.secrets, courier::core::output::Values::Reveal);
    let rendered = started.elapsed();
    let rss_after = peak_rss_kib();

    println!(
        "render: {namespaces} namespaces x {CLUSTER_EXTERNAL_SECRETS} ClusterExternalSecrets = {} Secrets, {} MiB of YAML",
        plan.secrets.len(),
        yaml.len() >> 20
    );
    println!(
        "  binary wall (courier render DIR > /dev/null, {runs} runs): median {:.0} ms, min {:.0} ms, max {:.0} ms",
        ms(walls[runs / 2]),
        ms(walls[0]),
        ms(walls[runs - 1])
    );
    println!(
        "  in-process stages: load {:.0} ms, plan {:.0} ms, YAML {:.0} ms",
        ms(loaded),
        ms(planned - loaded),
        ms(rendered - planned)
    );
    println!(
        "  peak RSS of the in-process pipeline: {} MiB (process peak before it: {} MiB)",
        rss_after / 1024,
        rss_before / 1024
    );
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

fn peak_rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn write_world(dir: &Path, count: usize) {
    let mut namespaces = String::new();
    for n in 0..count {
        let _ = write!(
            namespaces,
            "---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: team-{n:04}\n  labels:\n"
        );
        for c in 0..CLUSTER_EXTERNAL_SECRETS {
            let _ = writeln!(namespaces, "    secrets/shared-{c:02}: \"true\"");
        }
    }
    std::fs::write(dir.join("namespaces.yaml"), namespaces).unwrap();

    let mut central = String::from(
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: central}\n---\napiVersion: external-secrets.io/v1\nkind: ClusterSecretStore\nmetadata: {name: central}\nspec: {provider: {kubernetes: {remoteNamespace: central}}}\n",
    );
    let mut manifests = String::new();
    for c in 0..CLUSTER_EXTERNAL_SECRETS {
        let _ = write!(
            central,
            "---\napiVersion: v1\nkind: Secret\nmetadata: {{name: source-{c:02}, namespace: central}}\nstringData:\n  username: user-{c}\n  password: password-{c}-0123456789abcdef\n  config: '{{\"host\":\"db-{c}.internal\",\"port\":5432}}'\n"
        );
        let spec = if c % 2 == 0 {
            format!(
                "    target:\n      name: registry-{c:02}\n      template:\n        type: kubernetes.io/dockerconfigjson\n        data:\n          .dockerconfigjson: '{{\"auths\":{{\"ghcr.io\":{{\"username\":\"{{{{ .username }}}}\",\"password\":\"{{{{ .password }}}}\",\"auth\":\"{{{{ printf \"%s:%s\" .username .password | b64enc }}}}\"}}}}}}'\n    data:\n    - {{secretKey: username, remoteRef: {{key: source-{c:02}, property: username}}}}\n    - {{secretKey: password, remoteRef: {{key: source-{c:02}, property: password}}}}\n"
            )
        } else {
            format!(
                "    target:\n      name: shared-{c:02}\n    dataFrom:\n    - extract: {{key: source-{c:02}}}\n    data:\n    - {{secretKey: host, remoteRef: {{key: source-{c:02}, property: config.host}}}}\n"
            )
        };
        let _ = write!(
            manifests,
            "---\napiVersion: external-secrets.io/v1\nkind: ClusterExternalSecret\nmetadata: {{name: shared-{c:02}}}\nspec:\n  namespaceSelectors:\n  - matchLabels: {{secrets/shared-{c:02}: \"true\"}}\n  externalSecretSpec:\n    secretStoreRef: {{kind: ClusterSecretStore, name: central}}\n{spec}"
        );
    }
    std::fs::write(dir.join("central.yaml"), central).unwrap();
    std::fs::write(dir.join("cluster-external-secrets.yaml"), manifests).unwrap();
}
