//! A Vault store's `headers` go with every request, logins and reads, as ESO's
//! `client.AddHeader` sends them: a server of the tests' own (axum on 127.0.0.1) that
//! refuses a request without the header, as a gateway in front of Vault would.

use std::process::Command;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use serde_json::json;

const VALUE: &str = "vault-header-value-marker";

/// What the server saw: (path, the `x-tenant` header).
type Seen = Arc<Mutex<Vec<(String, Option<String>)>>>;

async fn answer(State(seen): State<Seen>, uri: Uri, headers: HeaderMap) -> (StatusCode, String) {
    let tenant = headers
        .get("x-tenant")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    seen.lock()
        .unwrap()
        .push((uri.path().to_owned(), tenant.clone()));
    if tenant.as_deref() != Some("team-a") {
        return (
            StatusCode::FORBIDDEN,
            json!({"errors": ["missing X-Tenant"]}).to_string(),
        );
    }
    match uri.path() {
        "/v1/auth/approle/login" => (
            StatusCode::OK,
            json!({"auth": {"client_token": "t"}}).to_string(),
        ),
        "/v1/secret/data/app" => (
            StatusCode::OK,
            json!({"data": {"data": {"password": VALUE}}}).to_string(),
        ),
        _ => (StatusCode::NOT_FOUND, json!({"errors": []}).to_string()),
    }
}

fn world(dir: &std::path::Path, base: &str, headers: &str) {
    std::fs::write(
        dir.join("world.yaml"),
        format!(
            "apiVersion: v1\nkind: Namespace\nmetadata: {{name: a}}\n---\napiVersion: v1\nkind: Secret\nmetadata: {{name: approle, namespace: courier}}\nstringData: {{secret-id: s}}\n---\napiVersion: external-secrets.io/v1\nkind: ClusterSecretStore\nmetadata: {{name: vault}}\nspec:\n  provider:\n    vault:\n      server: \"{base}\"\n{headers}      auth:\n        appRole: {{path: approle, roleId: r, secretRef: {{name: approle, key: secret-id, namespace: courier}}}}\n---\napiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {{name: app, namespace: a}}\nspec:\n  secretStoreRef: {{kind: ClusterSecretStore, name: vault}}\n  data:\n  - {{secretKey: password, remoteRef: {{key: app, property: password}}}}\n"
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

#[tokio::test(flavor = "multi_thread")]
async fn a_vault_stores_headers_go_with_its_login_and_its_reads() {
    let seen: Seen = Arc::default();
    let app = Router::new()
        .fallback(axum::routing::any(answer))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let dir = tempfile::tempdir().unwrap();
    world(dir.path(), &base, "      headers: {X-Tenant: team-a}\n");
    let (code, stdout, stderr) = render(dir.path()).await;
    assert_eq!(code, 0, "{stderr}");
    use base64::Engine as _;
    assert!(
        stdout.contains(&base64::engine::general_purpose::STANDARD.encode(VALUE)),
        "{stdout}"
    );
    let requests = std::mem::take(&mut *seen.lock().unwrap());
    assert_eq!(
        requests,
        [
            (
                "/v1/auth/approle/login".to_owned(),
                Some("team-a".to_owned())
            ),
            ("/v1/secret/data/app".to_owned(), Some("team-a".to_owned())),
        ]
    );

    // Without them the server refuses the login, and the error says so without a value.
    world(dir.path(), &base, "");
    let (code, stdout, stderr) = render(dir.path()).await;
    assert_eq!(code, 1, "{stderr}");
    assert!(stdout.is_empty());
    assert!(
        stderr.contains("AppRole login at auth/approle: 403"),
        "{stderr}"
    );
    assert!(!stderr.contains(VALUE));
}
