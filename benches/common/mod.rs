//! What the live benches share.

use std::process::Command;
use std::time::{Duration, Instant};

/// Runs courier to completion (it must succeed): the wall time and its `apply:` lines.
pub fn courier(args: &[&str]) -> (Duration, Vec<String>) {
    let started = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_courier"))
        .args(args)
        .env_remove("KUBECONFIG")
        .output()
        .unwrap();
    let elapsed = started.elapsed();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        output.status.success(),
        "courier {args:?} failed:\n{stderr}"
    );
    let summary = stderr
        .lines()
        .filter(|l| l.starts_with("apply:"))
        .map(str::to_owned)
        .collect();
    (elapsed, summary)
}

/// Creates namespaces with their labels, 32 requests in flight.
pub async fn create_namespaces(
    client: &kube::Client,
    namespaces: impl IntoIterator<Item = (String, std::collections::BTreeMap<String, String>)>,
) {
    use futures::StreamExt as _;
    let api = kube::Api::<k8s_openapi::api::core::v1::Namespace>::all(client.clone());
    futures::stream::iter(namespaces)
        .map(|(name, labels)| {
            let api = api.clone();
            let object = serde_json::from_value(serde_json::json!({
                "metadata": {"name": name, "labels": labels}
            }))
            .unwrap();
            async move {
                api.create(&kube::api::PostParams::default(), &object)
                    .await
                    .unwrap_or_else(|e| panic!("namespace {name}: {e}"));
            }
        })
        .buffer_unordered(32)
        .collect::<Vec<()>>()
        .await;
}
