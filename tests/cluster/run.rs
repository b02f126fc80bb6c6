//! `courier run` against the real API server: it follows labels, sources and edits within
//! seconds, serves health and metrics, and stops cleanly on SIGTERM.

use std::io::Read as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams};

use crate::apply::Platform;
use crate::support::control_plane;
pub use crate::support::http_get;

pub async fn within<F, Fut>(limit: Duration, what: &str, check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    match poll_until(limit, check).await {
        Some(took) => took,
        None => panic!("{what} did not happen within {limit:?}"),
    }
}

/// Checks every 100 ms until `check` holds (how long it took) or `limit` passes (`None`).
pub async fn poll_until<F, Fut>(limit: Duration, mut check: F) -> Option<Duration>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let started = Instant::now();
    while started.elapsed() < limit {
        if check().await {
            return Some(started.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

#[tokio::test]
async fn run_follows_changes_within_seconds_and_stops_on_sigterm() {
    let platform = Platform::new("run").await;
    let a = platform.target("run-a", true).await;
    let b = platform.target("run-b", false).await;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_courier"))
        .args(["run", platform.manifests.path().to_str().unwrap()])
        .args(["--kubeconfig", control_plane().kubeconfig.to_str().unwrap()])
        .args([
            "--instance",
            &format!("run-{}", platform.id),
            "--refresh",
            "1h",
            "--debounce",
            "200ms",
        ])
        .args(["--metrics-addr", &format!("127.0.0.1:{port}")])
        .env_remove("KUBECONFIG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    within(Duration::from_secs(10), "the first reconcile", || async {
        platform.value(&a.name, "creds", "password").await.is_some()
    })
    .await;
    within(Duration::from_secs(5), "readiness", || async {
        http_get(port, "/readyz").0 == 200
    })
    .await;
    assert_eq!(http_get(port, "/healthz"), (200, "ok".to_owned()));

    platform.set_label(&b.name, Some("true")).await;
    let took = within(
        Duration::from_secs(5),
        "a newly labelled namespace getting its Secret",
        || async { platform.value(&b.name, "creds", "password").await.is_some() },
    )
    .await;
    eprintln!("labelled namespace served in {took:?}");

    platform.set_label(&a.name, None).await;
    within(
        Duration::from_secs(5),
        "pruning after the label went away",
        || async { platform.value(&a.name, "creds", "password").await.is_none() },
    )
    .await;

    platform
        .put_source("shared", &[("username", "bot"), ("password", "rotated")])
        .await;
    within(
        Duration::from_secs(5),
        "a source change reaching the target",
        || async {
            platform
                .value(&b.name, "creds", "password")
                .await
                .as_deref()
                == Some("rotated")
        },
    )
    .await;

    Api::<Secret>::namespaced(platform.client.clone(), &b.name)
        .delete("creds", &DeleteParams::default())
        .await
        .unwrap();
    within(
        Duration::from_secs(5),
        "a deleted target being restored",
        || async {
            platform
                .value(&b.name, "creds", "password")
                .await
                .as_deref()
                == Some("rotated")
        },
    )
    .await;

    let (status, metrics) = http_get(port, "/metrics");
    assert_eq!(status, 200);
    for name in [
        "courier_reconciles_total",
        "courier_secrets_created_total",
        "courier_secrets_deleted_total",
        "courier_api_requests_total",
        "courier_last_success_timestamp_seconds",
    ] {
        assert!(metrics.contains(name), "{name} missing from:\n{metrics}");
    }
    assert!(!metrics.contains("rotated"));

    let stopped = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(stopped.success());
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            started.elapsed() < Duration::from_secs(10),
            "courier run did not stop on SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(status.success(), "exit {status:?}: {stderr}");
    assert!(
        !stderr.contains("rotated") && !stderr.contains("first-value"),
        "{stderr}"
    );
    let mut stdout = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut stdout)
        .unwrap();
    assert_eq!(stdout, "");
}
