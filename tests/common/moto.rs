//! A real moto server for the tests (AWS Secrets Manager, SSM Parameter Store, STS and
//! IAM): `moto_server` from the pinned `moto[server]` (testenv/moto.sh), on a free
//! 127.0.0.1 port, under the same watchdog as the control plane, recording every request
//! it receives so tests can count them. Seeding runs boto3 from moto's own virtualenv.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running moto server.
pub struct Moto {
    /// `http://127.0.0.1:PORT`.
    pub address: String,
    python: PathBuf,
    state: tempfile::TempDir,
    watchdog: Option<Child>,
}

fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// Boto3 clients for the seed scripts: `sm`, `ssm`, `iam`, `sts`, and `json`.
const PRELUDE: &str = r#"
import boto3, json, sys, urllib.request
ep = sys.argv[1]
kw = dict(endpoint_url=ep, region_name="eu-west-1", aws_access_key_id="AKIDSEED", aws_secret_access_key="seed")
sm = boto3.client("secretsmanager", **kw)
ssm = boto3.client("ssm", **kw)
iam = boto3.client("iam", **kw)
"#;

impl Moto {
    /// Installs (once) and starts moto, recording requests.
    pub async fn start() -> Moto {
        let install = Command::new(repo_root().join("testenv/moto.sh"))
            .stderr(Stdio::inherit())
            .output()
            .expect("testenv/moto.sh runs");
        assert!(
            install.status.success(),
            "cannot install moto (testenv/moto.sh)"
        );
        let binary = PathBuf::from(String::from_utf8_lossy(&install.stdout).trim());
        let python = binary.with_file_name("python");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let state = tempfile::tempdir().unwrap();
        let child = Command::new(repo_root().join("testenv/watchdog.sh"))
            .arg(std::process::id().to_string())
            .arg(state.path().join("moto.log"))
            .arg("--")
            .arg(&binary)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .env("MOTO_ENABLE_RECORDING", "True")
            .env(
                "MOTO_RECORDER_FILEPATH",
                state.path().join("requests.jsonl"),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto starts");
        let moto = Moto {
            address: format!("http://127.0.0.1:{port}"),
            python,
            state,
            watchdog: Some(child),
        };
        let http = reqwest::Client::new();
        let started = Instant::now();
        loop {
            if let Ok(response) = http.get(format!("{}/moto-api/", moto.address)).send().await
                && response.status().is_success()
            {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "moto did not start: {}",
                std::fs::read_to_string(moto.state.path().join("moto.log")).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        moto
    }

    /// Runs a boto3 script (after [`PRELUDE`]) and returns what it prints.
    pub fn python(&self, script: &str) -> String {
        let output = Command::new(&self.python)
            .arg("-c")
            .arg(format!("{PRELUDE}\n{script}"))
            .arg(&self.address)
            .output()
            .expect("moto's python runs");
        assert!(
            output.status.success(),
            "seed script failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8(output.stdout).unwrap()
    }

    /// An IAM user allowed everything and an assumable role `reader`; returns the user's
    /// (access key ID, secret access key).
    pub fn iam_user(&self) -> (String, String) {
        let out = self.python(
            r#"
allow = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]})
iam.create_user(UserName="courier")
iam.put_user_policy(UserName="courier", PolicyName="all", PolicyDocument=allow)
trust = json.dumps({"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": ["sts:AssumeRole", "sts:TagSession"]}]})
iam.create_role(RoleName="reader", AssumeRolePolicyDocument=trust)
iam.put_role_policy(RoleName="reader", PolicyName="all", PolicyDocument=allow)
key = iam.create_access_key(UserName="courier")["AccessKey"]
print(key["AccessKeyId"], key["SecretAccessKey"])
"#,
        );
        let mut parts = out.split_whitespace();
        (
            parts.next().unwrap().to_owned(),
            parts.next().unwrap().to_owned(),
        )
    }

    async fn moto_api(&self, path: &str, body: &str) {
        let response = reqwest::Client::new()
            .post(format!("{}/moto-api/{path}", self.address))
            .header("content-type", "text/plain")
            .body(body.to_owned())
            .send()
            .await
            .unwrap();
        assert!(response.status().is_success(), "moto-api/{path}");
    }

    /// From now on moto checks every request's signature and IAM permissions.
    pub async fn enforce_auth(&self) {
        self.moto_api("reset-auth", "0").await;
    }

    /// Forgets the requests recorded so far and records from now on.
    pub async fn start_recording(&self) {
        let _ = std::fs::remove_file(self.state.path().join("requests.jsonl"));
        self.moto_api("recorder/start-recording", "").await;
    }

    /// The requests moto recorded since [`Moto::start_recording`], in order.
    fn recorded(&self) -> Vec<Recorded> {
        let text =
            std::fs::read_to_string(self.state.path().join("requests.jsonl")).unwrap_or_default();
        text.lines()
            .filter_map(|line| {
                let entry: serde_json::Value = serde_json::from_str(line).ok()?;
                let target = entry["headers"].as_object().and_then(|headers| {
                    headers
                        .iter()
                        .find(|(k, _)| k.eq_ignore_ascii_case("x-amz-target"))
                        .and_then(|(_, target)| target.as_str().map(str::to_owned))
                });
                let body = entry["body"].as_str().and_then(|body| {
                    if entry["body_encoded"] != true {
                        return Some(body.to_owned());
                    }
                    use base64::Engine as _;
                    let bytes = base64::engine::general_purpose::STANDARD
                        .decode(body)
                        .ok()?;
                    String::from_utf8(bytes).ok()
                });
                Some(Recorded { target, body })
            })
            .collect()
    }

    /// The AWS operations moto received since [`Moto::start_recording`], in order
    /// (`secretsmanager.BatchGetSecretValue`, `AmazonSSM.GetParameters`, `AssumeRole`).
    pub fn operations(&self) -> Vec<String> {
        self.recorded()
            .into_iter()
            .filter_map(|request| {
                request.target.or_else(|| {
                    request
                        .body?
                        .split('&')
                        .find_map(|pair| pair.strip_prefix("Action="))
                        .map(str::to_owned)
                })
            })
            .collect()
    }

    /// The form bodies (decoded, `&`-separated pairs) of the recorded query-protocol calls
    /// of `action` (`AssumeRole`), in order.
    pub fn form_bodies(&self, action: &str) -> Vec<Vec<(String, String)>> {
        self.recorded()
            .into_iter()
            .filter_map(|request| {
                let pairs: Vec<(String, String)> = request
                    .body?
                    .split('&')
                    .map(|pair| {
                        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
                        (percent_decode(k), percent_decode(v))
                    })
                    .collect();
                pairs
                    .iter()
                    .any(|(k, v)| k == "Action" && v == action)
                    .then_some(pairs)
            })
            .collect()
    }

    /// The `WebIdentityToken`s of the AssumeRoleWithWebIdentity calls recorded.
    pub fn web_identity_tokens(&self) -> Vec<String> {
        self.recorded()
            .into_iter()
            .filter_map(|request| {
                let body = request.body?;
                let token = body
                    .split('&')
                    .find_map(|pair| pair.strip_prefix("WebIdentityToken="))?;
                Some(percent_decode(token))
            })
            .collect()
    }

    /// How many times `operation` was received since recording started.
    pub fn count(&self, operation: &str) -> usize {
        self.operations()
            .iter()
            .filter(|o| o.as_str() == operation || o.ends_with(&format!(".{operation}")))
            .count()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        if let Some(mut watchdog) = self.watchdog.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &watchdog.id().to_string()])
                .status();
            let _ = watchdog.wait();
        }
    }
}

/// One request moto recorded: its `X-Amz-Target` header (JSON-protocol calls: Secrets
/// Manager, SSM) and its body, base64-decoded where moto encoded it (query-protocol calls
/// such as STS's carry their `Action=` there).
struct Recorded {
    target: Option<String>,
    body: Option<String>,
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::new();
    let mut index = 0;
    while index < bytes.len() {
        match bytes[index] {
            b'%' if index + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[index + 1..index + 3]).unwrap();
                out.push(u8::from_str_radix(hex, 16).unwrap());
                index += 3;
            }
            b'+' => {
                out.push(b' ');
                index += 1;
            }
            byte => {
                out.push(byte);
                index += 1;
            }
        }
    }
    String::from_utf8(out).unwrap()
}
