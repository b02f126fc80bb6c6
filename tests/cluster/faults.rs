//! Faults in live mode, on a control plane of the test's own so restarting it disturbs
//! no other test.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::Client;
use kube::api::{Api, PostParams};

use crate::support::{ControlPlane, client_of};

fn readyz(port: u16) -> u16 {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return 0;
    };
    let _ = write!(stream, "GET /readyz HTTP/1.0\r\n\r\n");
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

async fn eventually(limit: Duration, what: &str, mut check: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while started.elapsed() < limit {
        if check() {
            return started.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{what} did not happen within {limit:?}");
}

async fn has_secret(client: &Client, namespace: &str) -> bool {
    matches!(
        Api::<Secret>::namespaced(client.clone(), namespace)
            .get_opt("creds")
            .await,
        Ok(Some(_))
    )
}

async fn create<K>(client: &Client, namespace: Option<&str>, object: serde_json::Value)
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
        + Clone
        + serde::de::DeserializeOwned
        + serde::Serialize
        + std::fmt::Debug,
    K::DynamicType: Default,
{
    let object: K = serde_json::from_value(object).unwrap();
    Api::<K>::namespaced(client.clone(), namespace.unwrap())
        .create(&PostParams::default(), &object)
        .await
        .unwrap();
}

async fn namespace(client: &Client, name: &str, wants: bool) {
    let labels = if wants {
        serde_json::json!({"fault/wants": "true"})
    } else {
        serde_json::json!({})
    };
    let object: Namespace =
        serde_json::from_value(serde_json::json!({"metadata": {"name": name, "labels": labels}}))
            .unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &object)
        .await
        .unwrap();
}

fn metric(port: u16, name: &str) -> f64 {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return f64::NAN;
    };
    let _ = write!(stream, "GET /metrics HTTP/1.0\r\n\r\n");
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    response
        .lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN)
}

#[tokio::test]
async fn run_reports_not_ready_while_kube_apiserver_is_down_then_converges() {
    run_across_an_outage(
        "kube-apiserver",
        ControlPlane::stop_apiserver,
        ControlPlane::start_apiserver,
    )
    .await;
}

#[tokio::test]
async fn run_reports_not_ready_while_etcd_is_down_then_converges() {
    run_across_an_outage("etcd", ControlPlane::stop_etcd, ControlPlane::start_etcd).await;
}

async fn run_across_an_outage(what: &str, stop_it: fn(&ControlPlane), start_it: fn(&ControlPlane)) {
    let plane = Arc::new(
        tokio::task::spawn_blocking(ControlPlane::start_private)
            .await
            .unwrap(),
    );
    let client = client_of(&plane).await;
    namespace(&client, "central", false).await;
    namespace(&client, "before", true).await;
    create::<Secret>(
        &client,
        Some("central"),
        serde_json::json!({"metadata": {"name": "src"}, "stringData": {"k": "v"}}),
    )
    .await;
    let manifests = tempfile::tempdir().unwrap();
    std::fs::write(
        manifests.path().join("m.yaml"),
        "apiVersion: external-secrets.io/v1\nkind: ClusterSecretStore\nmetadata: {name: central}\nspec: {provider: {kubernetes: {remoteNamespace: central}}}\n---\napiVersion: external-secrets.io/v1\nkind: ClusterExternalSecret\nmetadata: {name: creds}\nspec:\n  namespaceSelectors: [{matchLabels: {fault/wants: \"true\"}}]\n  externalSecretSpec:\n    secretStoreRef: {kind: ClusterSecretStore, name: central}\n    dataFrom: [{extract: {key: src}}]\n",
    )
    .unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut courier = Command::new(env!("CARGO_BIN_EXE_courier"))
        .args([
            "run",
            manifests.path().to_str().unwrap(),
            "--kubeconfig",
            plane.kubeconfig.to_str().unwrap(),
        ])
        .args([
            "--debounce",
            "200ms",
            "--metrics-addr",
            &format!("127.0.0.1:{port}"),
            "--log-level",
            "info",
        ])
        .env_remove("KUBECONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();

    let deadline = Instant::now() + Duration::from_secs(15);
    while !has_secret(&client, "before").await {
        assert!(Instant::now() < deadline, "first reconcile");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eventually(Duration::from_secs(5), "readiness", || readyz(port) == 200).await;

    let stopping = plane.clone();
    tokio::task::spawn_blocking(move || stop_it(&stopping))
        .await
        .unwrap();
    let started = Instant::now();
    let mut seen = std::collections::BTreeMap::new();
    loop {
        let code = readyz(port);
        *seen.entry(code).or_insert(0) += 1;
        if code == 503 {
            break;
        }
        if started.elapsed() > Duration::from_secs(30) {
            let _ = courier.kill();
            let mut stderr = String::new();
            courier
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut stderr)
                .unwrap();
            panic!(
                "/readyz did not turn 503 within 30 s (answers seen: {seen:?}); courier said:\n{stderr}"
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let noticed = started.elapsed();
    // No retry storm: count what courier sends while the server stays down.
    let before = metric(port, "courier_api_requests_total");
    tokio::time::sleep(Duration::from_secs(20)).await;
    let during = metric(port, "courier_api_requests_total") - before;
    eprintln!("{what} down: not ready after {noticed:?}; {during} API requests in 20 s");
    assert!(
        during <= 30.0,
        "{during} requests in 20 s while {what} was down"
    );
    assert!(
        courier.try_wait().unwrap().is_none(),
        "courier keeps running while the API server is down"
    );

    let starting = plane.clone();
    tokio::task::spawn_blocking(move || start_it(&starting))
        .await
        .unwrap();
    let client = client_of(&plane).await;
    namespace(&client, "after", true).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while !has_secret(&client, "after").await {
        assert!(
            Instant::now() < deadline,
            "courier did not converge after the restart"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eventually(
        Duration::from_secs(10),
        "readiness after the restart",
        || readyz(port) == 200,
    )
    .await;

    let _ = Command::new("kill")
        .args(["-TERM", &courier.id().to_string()])
        .status();
    let status = courier.wait().unwrap();
    let mut stderr = String::new();
    courier
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(status.success(), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
