//! `cargo bench --bench openbao`: 1,000 targets (100 namespaces x 10 ClusterExternalSecrets)
//! drawing on 100 OpenBao secrets. Reports how many reads courier made and how many the
//! server's audit log received (each must be exactly 100), and the wall time of a render.
//! `cargo test` runs it on 5 namespaces (see `common::main`).

#[path = "common/mod.rs"]
mod common;

#[path = "../tests/common/openbao.rs"]
#[allow(dead_code)]
mod openbao;

use std::fmt::Write as _;
use std::process::Command;
use std::time::Instant;

const CES: usize = 10;
const SECRETS_PER_CES: usize = 10;

fn main() {
    common::main("openbao", |scale| {
        tokio::runtime::Runtime::new()
            .unwrap()
            .block_on(bench(scale.pick(100, 5)))
    });
}

async fn bench(namespaces: usize) {
    let bao = openbao::OpenBao::start().await;
    for index in 0..CES * SECRETS_PER_CES {
        bao.put(
            &format!("bench/secret-{index:03}"),
            serde_json::json!({"value": format!("v-{index}")}),
        )
        .await;
    }
    let before = bao.secret_reads();
    let dir = tempfile::tempdir().unwrap();
    let mut text = format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: bao-token, namespace: courier}}\nstringData: {{token: {}}}\n---\napiVersion: external-secrets.io/v1\nkind: ClusterSecretStore\nmetadata: {{name: bao}}\nspec:\n  provider:\n    vault:\n      server: {}\n      path: secret\n      auth: {{tokenSecretRef: {{name: bao-token, key: token, namespace: courier}}}}\n",
        openbao::ROOT_TOKEN,
        bao.address
    );
    for n in 0..namespaces {
        let _ = write!(
            text,
            "---\napiVersion: v1\nkind: Namespace\nmetadata: {{name: team-{n:03}, labels: {{bench: \"yes\"}}}}\n"
        );
    }
    for c in 0..CES {
        let _ = write!(
            text,
            "---\napiVersion: external-secrets.io/v1\nkind: ClusterExternalSecret\nmetadata: {{name: shared-{c}}}\nspec:\n  namespaceSelectors: [{{matchLabels: {{bench: \"yes\"}}}}]\n  externalSecretSpec:\n    secretStoreRef: {{kind: ClusterSecretStore, name: bao}}\n    data:\n"
        );
        for s in 0..SECRETS_PER_CES {
            let index = c * SECRETS_PER_CES + s;
            let _ = writeln!(
                text,
                "    - {{secretKey: k{s}, remoteRef: {{key: bench/secret-{index:03}, property: value}}}}"
            );
        }
    }
    std::fs::write(dir.path().join("world.yaml"), text).unwrap();

    let started = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_courier"))
        .args([
            "render",
            dir.path().to_str().unwrap(),
            "--log-level",
            "courier=info",
        ])
        .output()
        .unwrap();
    let wall = started.elapsed();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let secrets = String::from_utf8_lossy(&output.stdout)
        .matches("\nkind: Secret")
        .count();
    let courier_reads = stderr
        .split("reads=")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .unwrap_or("?")
        .to_owned();
    let server_reads = bao.secret_reads() - before;
    println!(
        "openbao: {secrets} target Secrets ({namespaces} namespaces x {CES} ClusterExternalSecrets) from {} OpenBao secrets",
        CES * SECRETS_PER_CES
    );
    println!(
        "  reads by courier: {courier_reads}; reads received by OpenBao (audit log): {server_reads}"
    );
    println!("  render wall: {:.0} ms", wall.as_secs_f64() * 1000.0);
    assert_eq!(secrets, namespaces * CES, "every target rendered");
    assert_eq!(server_reads, CES * SECRETS_PER_CES, "one read per secret");
}
