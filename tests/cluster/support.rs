//! The test control plane: one real kube-apiserver with etcd per test run, built from
//! the pinned Go modules in `testenv/`, or an existing cluster from
//! `COURIER_TEST_KUBECONFIG`. Each test gets its own client and its own namespaces.

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{Api, DeleteParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

/// The token the admin identity (group `system:masters`) authenticates with.
pub const ADMIN_TOKEN: &str = "courier-test-admin-token";

/// A running control plane, shared by every test of this binary.
pub struct ControlPlane {
    /// kubeconfig of the admin identity.
    pub kubeconfig: PathBuf,
    /// The Kubernetes version the server was built from, when we built it.
    pub expected_version: Option<String>,
    /// Kept so the temp dir (certs, etcd data, logs) lives as long as the servers.
    _state: Option<tempfile::TempDir>,
    /// The watchdogs of etcd and kube-apiserver (none for an external cluster).
    servers: Mutex<Vec<(ServerCommand, Option<Child>)>>,
    server: String,
}

/// How to (re)start one server under its watchdog.
#[derive(Clone)]
struct ServerCommand {
    log: &'static str,
    program: PathBuf,
    args: Vec<String>,
    state_dir: PathBuf,
}

impl ServerCommand {
    fn spawn(&self) -> Result<Child, String> {
        let mut command = Command::new(repo_root().join("testenv/watchdog.sh"));
        if self.log == "etcd.log" {
            // etcd stops last (kube-apiserver depends on it), so its watchdog clears the state.
            command.env("WATCHDOG_REMOVE_DIR", &self.state_dir);
        }
        command
            .arg(std::process::id().to_string())
            .arg(self.state_dir.join(self.log))
            .arg("--")
            .arg(&self.program)
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start {}: {e}", self.log))
    }
}

/// Asks a watchdog to stop its server (it traps TERM) and waits until both are gone.
fn stop(watchdog: &mut Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &watchdog.id().to_string()])
        .status();
    let _ = watchdog.wait();
}

impl ControlPlane {
    /// The API server's URL.
    pub fn server(&self) -> &str {
        assert!(
            !self.server.is_empty(),
            "this test needs the local control plane (its URL and CA), not COURIER_TEST_KUBECONFIG"
        );
        &self.server
    }

    /// The PEM CA that signed the API server's certificate and accepts client certificates.
    pub fn ca_pem(&self) -> String {
        std::fs::read_to_string(self.state_dir().join("ca.crt")).expect("ca.crt")
    }

    /// A client certificate and key (PEM) for `user`, signed by the cluster's CA.
    pub fn client_certificate(&self, user: &str) -> (String, String) {
        let dir = self.state_dir();
        let ca_key =
            rcgen::KeyPair::from_pem(&std::fs::read_to_string(dir.join("ca.key")).unwrap())
                .unwrap();
        let issuer = rcgen::Issuer::new(ca_params().unwrap(), ca_key);
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, user);
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ClientAuth];
        let cert = params.signed_by(&key, &issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    fn state_dir(&self) -> PathBuf {
        self._state
            .as_ref()
            .map(|s| s.path().to_path_buf())
            .expect("this test needs the local control plane, not COURIER_TEST_KUBECONFIG")
    }

    /// A control plane of the caller's own, for tests that disturb it (restarts). It is
    /// stopped when dropped.
    pub fn start_private() -> ControlPlane {
        binaries_available();
        std::thread::spawn(start)
            .join()
            .unwrap_or_else(|_| Err("start-up panicked".into()))
            .unwrap_or_else(|e| panic!("cannot start a private control plane: {e}"))
    }

    /// Stops kube-apiserver (etcd keeps running).
    pub fn stop_apiserver(&self) {
        self.stop_server("kube-apiserver.log");
    }

    /// Starts kube-apiserver again with the same flags and waits until it is ready.
    pub fn start_apiserver(&self) {
        self.start_server("kube-apiserver.log", true);
    }

    /// Stops etcd (kube-apiserver keeps running, and fails its requests).
    pub fn stop_etcd(&self) {
        self.stop_server("etcd.log");
    }

    /// Starts etcd again on the same data and waits until kube-apiserver is ready.
    pub fn start_etcd(&self) {
        self.start_server("etcd.log", false);
        let mut servers = self.servers.lock().unwrap();
        let (command, slot) = servers
            .iter_mut()
            .find(|(c, _)| c.log == "kube-apiserver.log")
            .expect("a local control plane");
        let state_dir = command.state_dir.clone();
        let apiserver = slot.as_mut().expect("kube-apiserver runs");
        wait_until_ready(
            &self.server,
            &state_dir,
            apiserver,
            Duration::from_secs(120),
        )
        .unwrap();
    }

    fn stop_server(&self, log: &str) {
        let mut servers = self.servers.lock().unwrap();
        if let Some((_, slot)) = servers.iter_mut().find(|(c, _)| c.log == log) {
            if let Some(watchdog) = slot.as_mut() {
                stop(watchdog);
            }
            *slot = None;
        }
    }

    fn start_server(&self, log: &str, wait: bool) {
        let mut servers = self.servers.lock().unwrap();
        let (command, slot) = servers
            .iter_mut()
            .find(|(c, _)| c.log == log)
            .expect("a local control plane");
        let mut child = command.spawn().unwrap();
        if wait {
            let state_dir = command.state_dir.clone();
            wait_until_ready(
                &self.server,
                &state_dir,
                &mut child,
                Duration::from_secs(120),
            )
            .unwrap();
        }
        *slot = Some(child);
    }
}

impl Drop for ControlPlane {
    fn drop(&mut self) {
        let mut servers = self.servers.lock().unwrap();
        for (_, watchdog) in servers.iter_mut().rev() {
            if let Some(watchdog) = watchdog {
                stop(watchdog);
            }
        }
    }
}

/// Fails the calling test quietly, as the shared plane does, when the control plane
/// cannot be built: call it on the test's own thread before starting a private plane.
pub fn binaries_available() {
    if std::env::var_os("COURIER_TEST_KUBECONFIG").is_none() {
        control_plane();
    }
}

static CONTROL_PLANE: OnceLock<Result<ControlPlane, String>> = OnceLock::new();

/// Held by a test while it runs `apply --from-cluster` against the shared control plane:
/// such a run reconciles every ESO object there, so two at once race each other's
/// writes (two courier writers, "created by another courier writer since this one
/// listed"). Tests that need it alone take a private plane instead.
pub static FROM_CLUSTER_ON_THE_SHARED_PLANE: tokio::sync::Mutex<()> =
    tokio::sync::Mutex::const_new(());

/// The shared control plane, started on first use. A failure to start fails every test
/// with the same clear message: the integration tests never skip silently.
pub fn control_plane() -> &'static ControlPlane {
    let plane = CONTROL_PLANE.get_or_init(|| match std::env::var_os("COURIER_TEST_KUBECONFIG") {
        Some(path) => Ok(ControlPlane {
            kubeconfig: PathBuf::from(path),
            expected_version: None,
            _state: None,
            servers: Mutex::new(Vec::new()),
            server: String::new(),
        }),
        // Start-up blocks on its own runtime, so it runs outside the calling test's.
        None => std::thread::spawn(start)
            .join()
            .unwrap_or_else(|_| Err("start-up panicked".into())),
    });
    plane.as_ref().unwrap_or_else(|e| {
        // The first test to fail says why; the others say one line. They fail without
        // the panic hook, so a missing Go is not one backtrace per test.
        static SAID: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
        let message = if SAID.swap(true, std::sync::atomic::Ordering::SeqCst) {
            "the test control plane did not start (see the first failing cluster test)".to_owned()
        } else {
            format!(
                "cannot start the test control plane: {e}\n\
                 hint: the integration tests need Go to build kube-apiserver and etcd (testenv/build.sh), \
                 or COURIER_TEST_KUBECONFIG pointing at a cluster you own"
            )
        };
        eprintln!("{message}");
        std::panic::resume_unwind(Box::new(message))
    })
}

/// An admin client for the calling test's runtime.
pub async fn admin_client() -> Client {
    client_as(None).await
}

/// An admin client of a given (private) control plane.
pub async fn client_of(plane: &ControlPlane) -> Client {
    let kubeconfig = Kubeconfig::read_from(&plane.kubeconfig).expect("kubeconfig reads");
    let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("kubeconfig is usable");
    Client::try_from(config).expect("client builds")
}

/// A client that acts as `user` through impersonation: a restricted identity with no
/// RBAC grants unless a test gives it some. Works on any cluster the admin can impersonate on.
pub async fn client_as(user: Option<&str>) -> Client {
    let plane = control_plane();
    let kubeconfig = Kubeconfig::read_from(&plane.kubeconfig).expect("kubeconfig reads");
    let mut config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .expect("kubeconfig is usable");
    if let Some(user) = user {
        config.auth_info.impersonate = Some(user.to_owned());
    }
    Client::try_from(config).expect("client builds")
}

/// Installs ESO's own CRDs, as the chart ships them (ESO v1.3.2, `testenv/eso-crds`), so
/// the server validates and defaults ESO objects as it does under ESO (idempotent), and
/// waits until the API server serves them.
pub async fn install_eso_crds(client: &Client) {
    install_crds_from(client, &repo_root().join("charts/courier/files/eso-crds")).await;
}

/// Creates every CustomResourceDefinition in the YAML files of `dir` (others are skipped;
/// one that exists already is kept) and waits until the API server serves them all.
pub async fn install_crds_from(client: &Client, dir: &Path) {
    use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
    let mut definitions: Vec<CustomResourceDefinition> = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
        if !text.contains("kind: CustomResourceDefinition") {
            continue;
        }
        definitions.extend(serde_saphyr::from_multiple::<CustomResourceDefinition>(&text).unwrap());
    }
    let api = Api::<CustomResourceDefinition>::all(client.clone());
    for definition in &definitions {
        match api.create(&PostParams::default(), definition).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 409 => {}
            Err(e) => panic!("cannot install the ESO CRDs: {e}"),
        }
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    for definition in &definitions {
        let name = definition.metadata.name.clone().unwrap();
        loop {
            let current = api.get(&name).await.unwrap();
            let established = current
                .status
                .and_then(|s| s.conditions)
                .unwrap_or_default()
                .iter()
                .any(|c| c.type_ == "Established" && c.status == "True");
            if established {
                break;
            }
            assert!(Instant::now() < deadline, "CRD {name} not established");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Builds (once, cached) and locates a Go tool pinned in testenv: `helm` or `registry`.
pub fn go_tool(name: &str) -> PathBuf {
    let output = std::process::Command::new(repo_root().join("testenv/tool.sh"))
        .arg(name)
        .output()
        .unwrap_or_else(|e| panic!("testenv/tool.sh {name}: {e}"));
    assert!(
        output.status.success(),
        "testenv/tool.sh {name} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    PathBuf::from(String::from_utf8(output.stdout).unwrap().trim())
}

/// A plain HTTP/1.0 GET on loopback (courier's /metrics, /readyz): status and body;
/// status 0 when nothing answers.
pub fn http_get(port: u16, path: &str) -> (u16, String) {
    let Ok(mut stream) = TcpStream::connect(("127.0.0.1", port)) else {
        return (0, String::new());
    };
    let _ = write!(stream, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n");
    let mut response = String::new();
    let _ = stream.read_to_string(&mut response);
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_owned();
    (status, body)
}

/// A namespace of the calling test's own, deleted when the guard is dropped.
pub struct TestNamespace {
    /// Its name.
    pub name: String,
    client: Client,
}

impl TestNamespace {
    /// Creates `courier-test-<prefix>-<random>` labelled as courier's test namespace.
    pub async fn create(client: &Client, prefix: &str) -> TestNamespace {
        let name = format!("courier-test-{prefix}-{:08x}", random_u32());
        let namespace: Namespace = serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "labels": {"courier.dev/test": "true"}}
        }))
        .unwrap();
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &namespace)
            .await
            .expect("namespace created");
        TestNamespace {
            name,
            client: client.clone(),
        }
    }
}

impl Drop for TestNamespace {
    fn drop(&mut self) {
        let api = Api::<Namespace>::all(self.client.clone());
        let name = self.name.clone();
        // Best effort: a test that panicked still cleans up; the control plane is thrown away anyway.
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            handle.spawn(async move {
                let _ = api.delete(&name, &DeleteParams::background()).await;
            });
        }
    }
}

fn random_u32() -> u32 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(Instant::now().elapsed().as_nanos());
    hasher.finish() as u32
}

pub fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn free_port() -> std::io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// The test CA's parameters: its name is what client certificates are issued by.
fn ca_params() -> Result<rcgen::CertificateParams, String> {
    let mut params =
        rcgen::CertificateParams::new(Vec::<String>::new()).map_err(|e| e.to_string())?;
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "courier-test-ca");
    Ok(params)
}

/// [`start_once`], again with fresh ports when a port it chose was taken before the
/// server bound it (a free port is found by binding and releasing it, so another process
/// on the machine can take it in between).
fn start() -> Result<ControlPlane, String> {
    let mut tries = 0;
    loop {
        tries += 1;
        match start_once() {
            Err(e) if tries < 3 && e.contains("address already in use") => {
                eprintln!("control plane: a port was taken while starting; trying again");
            }
            outcome => return outcome,
        }
    }
}

fn start_once() -> Result<ControlPlane, String> {
    let started = Instant::now();
    let build = Command::new(repo_root().join("testenv/build.sh"))
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("cannot run testenv/build.sh: {e}"))?;
    if !build.status.success() {
        return Err(format!("testenv/build.sh failed ({})", build.status));
    }
    let bin = PathBuf::from(String::from_utf8_lossy(&build.stdout).trim());
    let expected_version = bin
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("kube-"))
        .and_then(|n| n.split("-etcd-").next())
        .map(str::to_owned);

    let state = tempfile::Builder::new()
        .prefix("courier-control-plane-")
        .tempdir()
        .map_err(|e| e.to_string())?;
    let dir = state.path();
    let write = |name: &str, text: &str| {
        std::fs::write(dir.join(name), text).map_err(|e| format!("cannot write {name}: {e}"))
    };

    let ca_key = rcgen::KeyPair::generate().map_err(|e| e.to_string())?;
    let ca =
        rcgen::CertifiedIssuer::self_signed(ca_params()?, ca_key).map_err(|e| e.to_string())?;
    let server_key = rcgen::KeyPair::generate().map_err(|e| e.to_string())?;
    let server_params =
        rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()])
            .map_err(|e| e.to_string())?;
    let server_cert = server_params
        .signed_by(&server_key, &ca)
        .map_err(|e| e.to_string())?;
    let service_account_key = rcgen::KeyPair::generate().map_err(|e| e.to_string())?;
    write("ca.crt", &ca.pem())?;
    // Kept so tests can mint client certificates the API server accepts.
    write("ca.key", &ca.key().serialize_pem())?;
    write("server.crt", &server_cert.pem())?;
    write("server.key", &server_key.serialize_pem())?;
    write("service-account.key", &service_account_key.serialize_pem())?;
    write("service-account.pub", &service_account_key.public_key_pem())?;
    write(
        "tokens.csv",
        &format!("{ADMIN_TOKEN},courier-test-admin,courier-test-admin,system:masters\n"),
    )?;

    let etcd_port = free_port().map_err(|e| e.to_string())?;
    let etcd_peer_port = free_port().map_err(|e| e.to_string())?;
    let api_port = free_port().map_err(|e| e.to_string())?;
    let etcd_url = format!("http://127.0.0.1:{etcd_port}");
    let peer_url = format!("http://127.0.0.1:{etcd_peer_port}");
    let server_command = |log: &'static str, program: PathBuf, args: Vec<String>| ServerCommand {
        log,
        program,
        args,
        state_dir: dir.to_path_buf(),
    };
    let etcd_command = server_command(
        "etcd.log",
        bin.join("etcd"),
        vec![
            "--name=courier-test".into(),
            format!("--data-dir={}", dir.join("etcd").display()),
            format!("--listen-client-urls={etcd_url}"),
            format!("--advertise-client-urls={etcd_url}"),
            format!("--listen-peer-urls={peer_url}"),
            format!("--initial-advertise-peer-urls={peer_url}"),
            format!("--initial-cluster=courier-test={peer_url}"),
            "--unsafe-no-fsync".into(),
            "--log-level=warn".into(),
        ],
    );
    let etcd = etcd_command.spawn()?;
    let apiserver_command = server_command(
        "kube-apiserver.log",
        bin.join("kube-apiserver"),
        vec![
            format!("--etcd-servers={etcd_url}"),
            "--bind-address=127.0.0.1".into(),
            "--advertise-address=127.0.0.1".into(),
            format!("--secure-port={api_port}"),
            format!("--cert-dir={}", dir.join("certs").display()),
            format!("--tls-cert-file={}", dir.join("server.crt").display()),
            format!(
                "--tls-private-key-file={}",
                dir.join("server.key").display()
            ),
            format!("--client-ca-file={}", dir.join("ca.crt").display()),
            format!("--token-auth-file={}", dir.join("tokens.csv").display()),
            "--authorization-mode=RBAC".into(),
            "--service-account-issuer=https://kubernetes.default.svc.cluster.local".into(),
            format!(
                "--service-account-key-file={}",
                dir.join("service-account.pub").display()
            ),
            format!(
                "--service-account-signing-key-file={}",
                dir.join("service-account.key").display()
            ),
            "--service-cluster-ip-range=10.0.0.0/24".into(),
            "--disable-admission-plugins=ServiceAccount".into(),
            // A loopback address cannot be a Service endpoint; nothing here routes to it anyway.
            "--endpoint-reconciler-type=none".into(),
            "--enable-priority-and-fairness=false".into(),
        ],
    );
    let mut apiserver = apiserver_command.spawn()?;
    let server = format!("https://127.0.0.1:{api_port}");
    let kubeconfig = dir.join("kubeconfig");
    write(
        "kubeconfig",
        &format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: courier-test\n  cluster:\n    server: {server}\n    certificate-authority: {ca}\ncontexts:\n- name: courier-test\n  context: {{cluster: courier-test, user: admin}}\ncurrent-context: courier-test\nusers:\n- name: admin\n  user: {{token: {ADMIN_TOKEN}}}\n",
            ca = dir.join("ca.crt").display()
        ),
    )?;
    wait_until_ready(&server, dir, &mut apiserver, Duration::from_secs(120))?;
    eprintln!(
        "test control plane: kube-apiserver {} at {server}, ready in {:.1}s",
        expected_version.as_deref().unwrap_or("?"),
        started.elapsed().as_secs_f64()
    );
    Ok(ControlPlane {
        kubeconfig,
        expected_version,
        _state: Some(state),
        servers: Mutex::new(vec![
            (etcd_command, Some(etcd)),
            (apiserver_command, Some(apiserver)),
        ]),
        server,
    })
}

/// Polls `/readyz` with the admin token over the test CA, without a Kubernetes client,
/// so a start-up failure shows the server's own log.
fn wait_until_ready(
    server: &str,
    dir: &Path,
    apiserver: &mut Child,
    timeout: Duration,
) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let kubeconfig = dir.join("kubeconfig");
    let mut last = String::from("not reachable yet");
    while Instant::now() < deadline {
        if let Ok(Some(_)) = apiserver.try_wait() {
            last = "kube-apiserver exited".into();
            break;
        }
        let ready = runtime.block_on(async {
            let config = Kubeconfig::read_from(&kubeconfig).map_err(|e| e.to_string())?;
            let config = Config::from_custom_kubeconfig(config, &KubeConfigOptions::default())
                .await
                .map_err(|e| e.to_string())?;
            let client = Client::try_from(config).map_err(|e| e.to_string())?;
            let request = http::Request::get("/readyz")
                .body(Vec::new())
                .map_err(|e| e.to_string())?;
            client
                .request_text(request)
                .await
                .map_err(|e| e.to_string())
        });
        match ready {
            Ok(body) if body.trim() == "ok" => return Ok(()),
            Ok(body) => last = body,
            Err(e) => last = e,
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let log = std::fs::read_to_string(dir.join("kube-apiserver.log")).unwrap_or_default();
    let errors: Vec<&str> = log
        .lines()
        .filter(|l| l.starts_with('E') || l.starts_with('F'))
        .collect();
    let shown: Vec<&str> = if errors.is_empty() {
        log.lines()
            .rev()
            .take(20)
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect()
    } else {
        errors
    };
    Err(format!(
        "kube-apiserver at {server} not ready: {last}\nfrom its log:\n{}",
        shown.join("\n")
    ))
}

/// The ServiceAccount live Kubernetes stores in these tests read with.
pub const READER: &str = "courier-reader";

/// Creates `courier-reader` in `namespace`, with a Role that may get and list its
/// Secrets: the identity a store names (idempotent).
pub async fn grant_reader(client: &Client, namespace: &str) {
    use k8s_openapi::api::core::v1::ServiceAccount;
    use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
    let created = |r: Result<(), kube::Error>| match r {
        Ok(()) => {}
        Err(kube::Error::Api(status)) if status.code == 409 => {}
        Err(e) => panic!("cannot grant the reader: {e}"),
    };
    let post = PostParams::default();
    let account: ServiceAccount =
        serde_json::from_value(serde_json::json!({"metadata": {"name": READER}})).unwrap();
    created(
        Api::<ServiceAccount>::namespaced(client.clone(), namespace)
            .create(&post, &account)
            .await
            .map(drop),
    );
    let role: Role = serde_json::from_value(serde_json::json!({
        "metadata": {"name": READER},
        "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list"]}]
    }))
    .unwrap();
    created(
        Api::<Role>::namespaced(client.clone(), namespace)
            .create(&post, &role)
            .await
            .map(drop),
    );
    let binding: RoleBinding = serde_json::from_value(serde_json::json!({
        "metadata": {"name": READER},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": READER},
        "subjects": [{"kind": "ServiceAccount", "name": READER, "namespace": namespace}]
    }))
    .unwrap();
    created(
        Api::<RoleBinding>::namespaced(client.clone(), namespace)
            .create(&post, &binding)
            .await
            .map(drop),
    );
}

/// A ClusterSecretStore reading `namespace` as its `courier-reader` ServiceAccount.
pub fn reader_store(name: &str, namespace: &str) -> String {
    format!(
        "apiVersion: external-secrets.io/v1\nkind: ClusterSecretStore\nmetadata: {{name: {name}}}\nspec: {{provider: {{kubernetes: {{remoteNamespace: {namespace}, auth: {{serviceAccount: {{name: {READER}, namespace: {namespace}}}}}}}}}}}\n"
    )
}
