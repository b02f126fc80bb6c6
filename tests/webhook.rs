//! The webhook provider against a real HTTP server of the tests' own (axum on 127.0.0.1):
//! templates, credentials from Secrets, JSONPath, one request per distinct key, retries,
//! and clear errors that never show a token or a value.

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use serde_json::{Value, json};

const TOKEN: &str = "hook-token-7d1c";

#[derive(Default)]
struct Seen {
    requests: BTreeMap<String, usize>,
}

async fn secret(
    State(seen): State<Arc<Mutex<Seen>>>,
    headers: HeaderMap,
    Path(key): Path<String>,
) -> (StatusCode, String) {
    let count = {
        let mut seen = seen.lock().unwrap();
        let entry = seen.requests.entry(key.clone()).or_default();
        *entry += 1;
        *entry
    };
    if headers.get("authorization").and_then(|v| v.to_str().ok())
        != Some(&format!("Bearer {TOKEN}"))
    {
        return (
            StatusCode::UNAUTHORIZED,
            json!({"error": "unauthorized"}).to_string(),
        );
    }
    match key.as_str() {
        "flaky" if count == 1 => (StatusCode::SERVICE_UNAVAILABLE, json!({}).to_string()),
        "db" | "flaky" => (
            StatusCode::OK,
            json!({"data": {"value": format!("hook-value-{key}"), "user": "app", "port": 5432}})
                .to_string(),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            json!({"error": "no such secret"}).to_string(),
        ),
    }
}

async fn serve() -> (String, Arc<Mutex<Seen>>) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let app = Router::new()
        .route("/secrets/{key}", get(secret))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (address, seen)
}

fn world(dir: &std::path::Path, url: &str, token: &str, spec: &str) {
    std::fs::write(
        dir.join("world.yaml"),
        format!(
            "apiVersion: v1\nkind: Namespace\nmetadata: {{name: a}}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {{name: b}}\n---\napiVersion: v1\nkind: Secret\nmetadata: {{name: hook-credentials, namespace: courier}}\nstringData: {{token: {token}}}\n---\napiVersion: external-secrets.io/v1\nkind: ClusterSecretStore\nmetadata: {{name: hook}}\nspec:\n  provider:\n    webhook:\n      url: \"{url}\"\n      method: GET\n      timeout: 5s\n      headers: {{Authorization: \"Bearer {{{{ .auth.token }}}}\"}}\n      result: {{jsonPath: \"$.data.value\"}}\n      secrets: [{{name: auth, secretRef: {{name: hook-credentials, namespace: courier}}}}]\n---\napiVersion: external-secrets.io/v1\nkind: ClusterExternalSecret\nmetadata: {{name: app}}\nspec:\n  namespaces: [a, b]\n  externalSecretSpec:\n    secretStoreRef: {{kind: ClusterSecretStore, name: hook}}\n{spec}"
        ),
    )
    .unwrap();
}

async fn render(dir: &std::path::Path) -> (i32, String, String) {
    let dir = dir.to_owned();
    tokio::task::spawn_blocking(move || {
        let output = Command::new(env!("CARGO_BIN_EXE_courier"))
            .args(["render", dir.to_str().unwrap()])
            .output()
            .unwrap();
        (
            output.status.code().unwrap_or(-1),
            String::from_utf8(output.stdout).unwrap(),
            String::from_utf8(output.stderr).unwrap(),
        )
    })
    .await
    .unwrap()
}

fn decoded(stdout: &str, namespace: &str, key: &str) -> String {
    use base64::Engine as _;
    let documents: Vec<Value> = serde_saphyr::from_multiple(stdout).unwrap();
    let secret = documents
        .iter()
        .find(|d| d["metadata"]["namespace"] == namespace)
        .expect("a Secret");
    String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(secret["data"][key].as_str().unwrap())
            .unwrap(),
    )
    .unwrap()
}

const URL: &str = "{{ base }}/secrets/{{ .remoteRef.key }}";

#[tokio::test(flavor = "multi_thread")]
async fn values_come_from_the_endpoint_once_per_key_with_retries() {
    let (base, seen) = serve().await;
    let dir = tempfile::tempdir().unwrap();
    let url = URL.replace("{{ base }}", &base);
    world(
        dir.path(),
        &url,
        TOKEN,
        "    data:\n    - {secretKey: password, remoteRef: {key: db}}\n    - {secretKey: again, remoteRef: {key: db}}\n    - {secretKey: flaky, remoteRef: {key: flaky}}\n",
    );
    let (code, stdout, stderr) = render(dir.path()).await;
    assert_eq!(code, 0, "{stderr}");
    for namespace in ["a", "b"] {
        assert_eq!(decoded(&stdout, namespace, "password"), "hook-value-db");
        assert_eq!(decoded(&stdout, namespace, "flaky"), "hook-value-flaky");
    }
    let requests = seen.lock().unwrap().requests.clone();
    assert_eq!(
        requests.get("db"),
        Some(&1),
        "one request for a key used twice in two namespaces"
    );
    assert_eq!(requests.get("flaky"), Some(&2), "a 503 is retried once");
    assert!(!stderr.contains(TOKEN));
}

#[tokio::test(flavor = "multi_thread")]
async fn extract_takes_a_json_object_answer() {
    let (base, _) = serve().await;
    let dir = tempfile::tempdir().unwrap();
    world(
        dir.path(),
        &URL.replace("{{ base }}", &base),
        TOKEN,
        "    dataFrom: [{extract: {key: db}}]\n",
    );
    // $.data.value is a string: extract needs an object, so point the path at $.data.
    let text = std::fs::read_to_string(dir.path().join("world.yaml"))
        .unwrap()
        .replace("$.data.value", "$.data");
    std::fs::write(dir.path().join("world.yaml"), text).unwrap();
    let (code, stdout, stderr) = render(dir.path()).await;
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(decoded(&stdout, "a", "user"), "app");
    assert_eq!(decoded(&stdout, "a", "port"), "5432");
}

#[tokio::test(flavor = "multi_thread")]
async fn errors_name_the_store_request_and_key_but_never_the_token() {
    let (base, _) = serve().await;
    let dir = tempfile::tempdir().unwrap();
    let url = URL.replace("{{ base }}", &base);
    world(
        dir.path(),
        &url,
        TOKEN,
        "    data: [{secretKey: x, remoteRef: {key: missing}}]\n",
    );
    let (code, _, stderr) = render(dir.path()).await;
    assert_eq!(code, 1);
    assert!(
        stderr.contains(&format!(
            "ClusterSecretStore/hook: GET {url} (key \"missing\"): not found (404)"
        )),
        "{stderr}"
    );

    world(
        dir.path(),
        &url,
        "wrong-token",
        "    data: [{secretKey: x, remoteRef: {key: db}}]\n",
    );
    let (code, _, stderr) = render(dir.path()).await;
    assert_eq!(code, 1);
    assert!(stderr.contains("answered 401"), "{stderr}");
    assert!(
        !stderr.contains("wrong-token") && !stderr.contains(TOKEN),
        "{stderr}"
    );

    // courier's minijinja dialect in a store that did not opt into it: a hint.
    world(
        dir.path(),
        &format!("{base}/secrets/{{{{ remoteRef.key }}}}"),
        TOKEN,
        "    data: [{secretKey: x, remoteRef: {key: db}}]\n",
    );
    let (code, _, stderr) = render(dir.path()).await;
    assert_eq!(code, 1);
    assert!(
        stderr.contains("url: ") && stderr.contains("remoteRef"),
        "{stderr}"
    );

    // A store that opts into minijinja renders it.
    world(
        dir.path(),
        &format!("{base}/secrets/{{{{ remoteRef.key }}}}"),
        TOKEN,
        "    data: [{secretKey: x, remoteRef: {key: db}}]\n",
    );
    let text = std::fs::read_to_string(dir.path().join("world.yaml"))
        .unwrap()
        .replace(
            "metadata: {name: hook}",
            "metadata: {name: hook, annotations: {courier.dev/template-engine: minijinja}}",
        )
        .replace("{{ .auth.token }}", "{{ auth.token }}");
    std::fs::write(dir.path().join("world.yaml"), text).unwrap();
    let (code, stdout, stderr) = render(dir.path()).await;
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(decoded(&stdout, "a", "x"), "hook-value-db");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_server_that_is_down_fails_clearly_and_works_when_back() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    world(
        dir.path(),
        &format!("http://127.0.0.1:{port}/secrets/{{{{ .remoteRef.key }}}}"),
        TOKEN,
        "    data: [{secretKey: x, remoteRef: {key: db}}]\n",
    );
    let (code, _, stderr) = render(dir.path()).await;
    assert_eq!(code, 1);
    assert!(stderr.contains("(key \"db\"): cannot connect"), "{stderr}");

    let seen = Arc::new(Mutex::new(Seen::default()));
    let app = Router::new()
        .route("/secrets/{key}", get(secret))
        .with_state(seen);
    let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let (code, stdout, stderr) = render(dir.path()).await;
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(decoded(&stdout, "b", "x"), "hook-value-db");
}

/// A server that answers `/gate/{key}` only once a request for another key has arrived
/// too, within 3 s (else 504): two stores pass only if their fetches are in flight at once.
async fn serve_gate() -> String {
    type Arrived = Arc<Mutex<std::collections::BTreeSet<String>>>;
    async fn gate(State(arrived): State<Arrived>, Path(key): Path<String>) -> (StatusCode, String) {
        arrived.lock().unwrap().insert(key.clone());
        let started = std::time::Instant::now();
        while arrived.lock().unwrap().iter().all(|k| *k == key) {
            if started.elapsed() > std::time::Duration::from_secs(3) {
                return (StatusCode::GATEWAY_TIMEOUT, json!({}).to_string());
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        (
            StatusCode::OK,
            json!({"value": format!("through-{key}")}).to_string(),
        )
    }
    let app = Router::new()
        .route("/gate/{key}", get(gate))
        .with_state(Arrived::default());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    address
}

#[tokio::test(flavor = "multi_thread")]
async fn stores_are_fetched_at_once() {
    let base = serve_gate().await;
    let dir = tempfile::tempdir().unwrap();
    let mut text = "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n".to_owned();
    for store in ["one", "two"] {
        text.push_str(&format!(
            "---\napiVersion: external-secrets.io/v1\nkind: ClusterSecretStore\nmetadata: {{name: {store}}}\nspec:\n  provider:\n    webhook:\n      url: \"{base}/gate/{{{{ .remoteRef.key }}}}\"\n      timeout: 10s\n      result: {{jsonPath: \"$.value\"}}\n---\napiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {{name: from-{store}, namespace: a}}\nspec:\n  secretStoreRef: {{kind: ClusterSecretStore, name: {store}}}\n  data: [{{secretKey: value, remoteRef: {{key: {store}}}}}]\n"
        ));
    }
    std::fs::write(dir.path().join("world.yaml"), text).unwrap();
    let (code, stdout, stderr) = render(dir.path()).await;
    assert_eq!(code, 0, "{stderr}");
    use base64::Engine as _;
    let documents: Vec<Value> = serde_saphyr::from_multiple(&stdout).unwrap();
    let mut values: Vec<(String, String)> = documents
        .iter()
        .map(|d| {
            let value = base64::engine::general_purpose::STANDARD
                .decode(d["data"]["value"].as_str().unwrap())
                .unwrap();
            (
                d["metadata"]["name"].as_str().unwrap().to_owned(),
                String::from_utf8(value).unwrap(),
            )
        })
        .collect();
    values.sort();
    assert_eq!(
        values,
        [
            ("from-one".to_owned(), "through-one".to_owned()),
            ("from-two".to_owned(), "through-two".to_owned())
        ]
    );
}

/// A key is a value in the store's url template, never a way to another path of the
/// server: the URL parser resolves `..` (and `%2e%2e`, `\`), so `../admin/users` under
/// `/secrets/{{ .remoteRef.key }}` would send the store's Authorization header to
/// `/admin/users`, chosen by whoever writes the ExternalSecret (a tenant). Refused, and
/// no connection is made.
#[tokio::test(flavor = "multi_thread")]
async fn a_key_that_would_move_the_url_to_another_path_is_refused_and_never_sent() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let connections = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counted = connections.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            drop(stream);
        }
    });
    let dir = tempfile::tempdir().unwrap();
    let url = format!("http://127.0.0.1:{port}/secrets/{{{{ .remoteRef.key }}}}");
    for key in [
        "../admin/users",
        "%2E%2e/admin",
        "x/..\\..\\admin",
        ".\t./admin",
    ] {
        world(
            dir.path(),
            &url,
            TOKEN,
            &format!(
                "    data:\n    - {{secretKey: a, remoteRef: {{key: {}}}}}\n",
                serde_json::to_string(key).unwrap()
            ),
        );
        let (code, stdout, stderr) = render(dir.path()).await;
        assert_eq!(code, 1, "{key}: {stderr}");
        assert_eq!(stdout, "");
        assert!(
            stderr.contains("would send the request to another path"),
            "{key}: {stderr}"
        );
        assert!(!stderr.contains(TOKEN), "{stderr}");
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_eq!(
        connections.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "a request was sent"
    );
}
