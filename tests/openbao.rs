//! The Vault provider against a real OpenBao server: token and AppRole auth, each secret
//! read once however many targets use it, and clear errors (store, path, key; never a
//! value or a token) for a missing path, a wrong token and a server that is down.

#[path = "common/openbao.rs"]
mod openbao;

use std::process::Command;

use openbao::{OpenBao, ROOT_TOKEN};

fn world(dir: &std::path::Path, address: &str, auth: &str, credentials: &str, spec: &str) {
    std::fs::write(
        dir.join("world.yaml"),
        format!(
            "apiVersion: v1\nkind: Namespace\nmetadata: {{name: a}}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {{name: b}}\n---\napiVersion: v1\nkind: Secret\nmetadata: {{name: vault-credentials, namespace: courier}}\nstringData: {credentials}\n---\napiVersion: external-secrets.io/v1\nkind: ClusterSecretStore\nmetadata: {{name: bao}}\nspec:\n  provider:\n    vault:\n      server: {address}\n      path: secret\n      version: v2\n      auth: {auth}\n---\napiVersion: external-secrets.io/v1\nkind: ClusterExternalSecret\nmetadata: {{name: app}}\nspec:\n  namespaces: [a, b]\n  externalSecretSpec:\n    secretStoreRef: {{kind: ClusterSecretStore, name: bao}}\n{spec}"
        ),
    )
    .unwrap();
}

const TOKEN_AUTH: &str =
    "{tokenSecretRef: {name: vault-credentials, key: token, namespace: courier}}";

const SPEC: &str = "    data:\n    - {secretKey: password, remoteRef: {key: app/db, property: password}}\n    - {secretKey: port, remoteRef: {key: app/db, property: config.port}}\n    dataFrom:\n    - extract: {key: app/db}\n    - find: {name: {regexp: '^team/'}}\n";

fn render(dir: &std::path::Path) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_courier"))
        .args([
            "render",
            dir.to_str().unwrap(),
            "--log-level",
            "courier=info",
        ])
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

async fn seeded() -> OpenBao {
    let bao = OpenBao::start().await;
    seed(&bao).await;
    bao
}

async fn seed(bao: &OpenBao) {
    bao.put("app/db", serde_json::json!({"username": "app", "password": "bao-secret-value", "config": {"port": 5432}})).await;
    bao.put("team/alpha", serde_json::json!({"key": "alpha-value"}))
        .await;
    bao.put("team/beta", serde_json::json!({"key": "beta-value"}))
        .await;
}

fn values(stdout: &str, namespace: &str) -> serde_json::Value {
    let documents: Vec<serde_json::Value> = serde_saphyr::from_multiple(stdout).unwrap();
    let secret = documents
        .into_iter()
        .find(|d| d["metadata"]["namespace"] == namespace)
        .expect("a Secret");
    let data = secret["data"].as_object().unwrap().clone();
    use base64::Engine as _;
    let decoded: serde_json::Map<String, serde_json::Value> = data
        .into_iter()
        .map(|(k, v)| {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(v.as_str().unwrap())
                .unwrap();
            (
                k,
                serde_json::Value::from(String::from_utf8(bytes).unwrap()),
            )
        })
        .collect();
    serde_json::Value::Object(decoded)
}

#[tokio::test]
async fn token_auth_reads_each_secret_once_for_every_target() {
    let bao = seeded().await;
    let dir = tempfile::tempdir().unwrap();
    world(
        dir.path(),
        &bao.address,
        TOKEN_AUTH,
        &format!("{{token: {ROOT_TOKEN}}}"),
        SPEC,
    );
    let (code, stdout, stderr) = render(dir.path());
    assert_eq!(code, 0, "{stderr}");
    for namespace in ["a", "b"] {
        let data = values(&stdout, namespace);
        assert_eq!(data["password"], "bao-secret-value");
        assert_eq!(data["port"], "5432");
        assert_eq!(data["username"], "app", "dataFrom.extract");
        assert_eq!(data["config"], r#"{"port":5432}"#);
        assert_eq!(
            data["team_alpha"], r#"{"key":"alpha-value"}"#,
            "dataFrom.find by name"
        );
        assert_eq!(data["team_beta"], r#"{"key":"beta-value"}"#);
    }
    // app/db serves two data entries and an extract in two namespaces: one read.
    assert_eq!(
        bao.secret_reads(),
        3,
        "app/db, team/alpha and team/beta, once each"
    );
    assert!(stderr.contains("reads=3"), "{stderr}");
    assert!(
        !stderr.contains("bao-secret-value") && !stderr.contains(ROOT_TOKEN),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_missing_path_and_a_wrong_token_are_clear_errors_without_secrets() {
    let bao = seeded().await;
    let dir = tempfile::tempdir().unwrap();
    world(
        dir.path(),
        &bao.address,
        TOKEN_AUTH,
        &format!("{{token: {ROOT_TOKEN}}}"),
        "    data:\n    - {secretKey: x, remoteRef: {key: app/missing, property: x}}\n",
    );
    let (code, stdout, stderr) = render(dir.path());
    assert_eq!(code, 1);
    assert_eq!(stdout, "");
    assert!(stderr.contains("ClusterExternalSecret/app: 2 targets (a/app, b/app): data[0] (secretKey \"x\"): ClusterSecretStore/bao: GET secret/data/app/missing: not found (404)"), "{stderr}");

    world(
        dir.path(),
        &bao.address,
        TOKEN_AUTH,
        "{token: not-the-token}",
        SPEC,
    );
    let (code, _, stderr) = render(dir.path());
    assert_eq!(code, 1);
    assert!(
        stderr.contains("ClusterSecretStore/bao: GET secret/data/app/db: permission denied (403)"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("not-the-token") && !stderr.contains("bao-secret-value"),
        "{stderr}"
    );
}

#[tokio::test]
async fn app_role_tokens_that_run_out_mid_run_are_obtained_again() {
    let bao = seeded().await;
    let (role_id, secret_id) = bao.app_role(2).await;
    let dir = tempfile::tempdir().unwrap();
    let auth = "{appRole: {path: approle, roleId: ROLE, secretRef: {name: vault-credentials, key: secret-id, namespace: courier}}}".replace("ROLE", &role_id);
    world(
        dir.path(),
        &bao.address,
        &auth,
        &format!("{{secret-id: {secret_id}}}"),
        SPEC,
    );
    let (code, stdout, stderr) = render(dir.path());
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(values(&stdout, "a")["password"], "bao-secret-value");
    let logins: u64 = stderr
        .split("logins=")
        .nth(1)
        .and_then(|r| r.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .expect("stats line");
    assert!(
        logins >= 2,
        "each token allows two requests, so courier logged in again: {stderr}"
    );
    assert!(!stderr.contains(&secret_id), "{stderr}");
}

#[tokio::test]
async fn a_server_that_is_down_fails_clearly_and_works_again_when_back() {
    let mut bao = seeded().await;
    let dir = tempfile::tempdir().unwrap();
    world(
        dir.path(),
        &bao.address,
        TOKEN_AUTH,
        &format!("{{token: {ROOT_TOKEN}}}"),
        SPEC,
    );
    bao.stop();
    let (code, _, stderr) = render(dir.path());
    assert_eq!(code, 1);
    assert!(
        stderr.contains("ClusterSecretStore/bao: GET secret/data/app/db: cannot connect"),
        "{stderr}"
    );
    bao.restart().await;
    seed(&bao).await;
    let (code, stdout, stderr) = render(dir.path());
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(values(&stdout, "b")["password"], "bao-secret-value");
}

/// A remote key is a path under the store's mount, never a way out of it: the URL parser
/// resolves `..` (and `%2e%2e`), so under a KV v1 mount `../auth/token/lookup-self` would
/// hand the store's own token (`data.id`) to whoever writes the ExternalSecret (a tenant,
/// in the Argo CD plugin's tenancy), and `../../secret/data/...` would read another mount
/// with the store's identity. Both providers, `vault` and `openBao`, refuse such keys and
/// send nothing for them.
#[tokio::test]
async fn a_key_that_would_leave_the_mount_is_refused_and_never_sent() {
    let bao = seeded().await;
    bao.call(
        "POST",
        "sys/mounts/kv1",
        serde_json::json!({"type": "kv", "options": {"version": "1"}}),
    )
    .await;
    bao.call("POST", "kv1/app", serde_json::json!({"user": "kv1-user"}))
        .await;
    let address = &bao.address;
    let token_ref = "{tokenSecretRef: {name: bao-token, namespace: central, key: token}}";
    let mut files = format!(
        "apiVersion: v1\nkind: Namespace\nmetadata: {{name: app}}\n---\napiVersion: v1\nkind: Secret\nmetadata: {{name: bao-token, namespace: central}}\nstringData: {{token: {ROOT_TOKEN}}}\n"
    );
    let stores = [
        (
            "vault-kv1",
            format!("vault: {{server: '{address}', path: kv1, version: v1, auth: {token_ref}}}"),
        ),
        (
            "bao-kv1",
            format!("openBao: {{server: '{address}', path: kv1, version: v1, auth: {token_ref}}}"),
        ),
        (
            "vault-kv2",
            format!("vault: {{server: '{address}', path: kv, version: v2, auth: {token_ref}}}"),
        ),
        (
            "bao-kv2",
            format!("openBao: {{server: '{address}', path: kv, version: v2, auth: {token_ref}}}"),
        ),
    ];
    let keys = [
        ("../auth/token/lookup-self", "id"),
        ("%2e%2e/auth/token/lookup-self", "id"),
        ("../../secret/data/app/db", "password"),
        ("app/..\\..\\..\\auth/token/lookup-self", "id"),
    ];
    for (store, provider) in &stores {
        files.push_str(&format!(
            "---\napiVersion: external-secrets.io/v1\nkind: ClusterSecretStore\nmetadata: {{name: {store}}}\nspec:\n  provider:\n    {provider}\n"
        ));
        for (i, (key, property)) in keys.iter().enumerate() {
            files.push_str(&format!(
                "---\napiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {{name: {store}-{i}, namespace: app}}\nspec:\n  secretStoreRef: {{kind: ClusterSecretStore, name: {store}}}\n  data:\n  - {{secretKey: stolen, remoteRef: {{key: '{key}', property: {property}}}}}\n"
            ));
        }
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("world.yaml"), files).unwrap();
    let (code, stdout, stderr) = render(dir.path());
    assert!(
        !stdout.contains(ROOT_TOKEN)
            && !stdout.contains(&base64_of(ROOT_TOKEN))
            && !stdout.contains(&base64_of("bao-secret-value")),
        "a key outside the mount was read: {stdout}"
    );
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(stdout, "");
    for (store, _) in &stores {
        for i in 0..keys.len() {
            assert!(
                stderr.contains(&format!("ExternalSecret/app/{store}-{i}:")),
                "{store}-{i} fails: {stderr}"
            );
        }
    }
    assert!(
        stderr.contains("which would leave the store's mount")
            && stderr.contains("which would change the request's path"),
        "{stderr}"
    );
    assert!(!stderr.contains(ROOT_TOKEN), "{stderr}");
    let audit = std::fs::read_to_string(&bao.audit_log).unwrap_or_default();
    assert!(
        !audit.contains("auth/token/lookup-self"),
        "a request left the mount: {audit}"
    );
    assert_eq!(bao.secret_reads(), 0, "nothing under secret/ was read");
}

fn base64_of(text: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(text)
}
