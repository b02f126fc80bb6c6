//! Faults in live mode, on a control plane of the test's own so restarting it disturbs
//! no other test.

use std::io::Read;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::Client;
use kube::api::{Api, PostParams};

use crate::support::{ControlPlane, client_of, http_get};

/// All that `child` wrote on its piped stderr (it has ended, or been killed).
fn stderr_of(child: &mut std::process::Child) -> String {
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    stderr
}

fn readyz(port: u16) -> u16 {
    http_get(port, "/readyz").0
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
    http_get(port, "/metrics")
        .1
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
    crate::support::binaries_available();
    let plane = Arc::new(
        tokio::task::spawn_blocking(ControlPlane::start_private)
            .await
            .unwrap(),
    );
    let client = client_of(&plane).await;
    namespace(&client, "central", false).await;
    crate::support::grant_reader(&client, "central").await;
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
        "apiVersion: external-secrets.io/v1\nkind: ClusterSecretStore\nmetadata: {name: central}\nspec: {provider: {kubernetes: {remoteNamespace: central, auth: {serviceAccount: {name: courier-reader, namespace: central}}}}}\n---\napiVersion: external-secrets.io/v1\nkind: ClusterExternalSecret\nmetadata: {name: creds}\nspec:\n  namespaceSelectors: [{matchLabels: {fault/wants: \"true\"}}]\n  externalSecretSpec:\n    secretStoreRef: {kind: ClusterSecretStore, name: central}\n    dataFrom: [{extract: {key: src}}]\n",
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
            let stderr = stderr_of(&mut courier);
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
    let stderr = stderr_of(&mut courier);
    assert!(status.success(), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

mod shared_plane {
    //! Faults that need no restart, on the shared control plane.

    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
    use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
    use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};

    use crate::apply::Platform;
    use crate::support::control_plane;

    #[tokio::test]
    async fn sigkill_in_the_middle_of_1000_writes_leaves_no_half_secret_and_the_next_run_converges()
    {
        let platform = Platform::new("kill").await;
        let mut namespaces = Vec::new();
        for index in 0..200 {
            namespaces.push(platform.target(&format!("kill-{index}"), true).await);
        }
        let bystander: Secret = serde_json::from_value(
            serde_json::json!({"metadata": {"name": "not-courier"}, "stringData": {"k": "theirs"}}),
        )
        .unwrap();
        Api::<Secret>::namespaced(platform.client.clone(), &namespaces[0].name)
            .create(&PostParams::default(), &bystander)
            .await
            .unwrap();
        let targets: Vec<(&str, String)> =
            (0..5).map(|t| ("shared", format!("creds-{t}"))).collect();
        let pairs: Vec<(&str, &str)> = targets.iter().map(|(s, t)| (*s, t.as_str())).collect();
        platform.write_manifests(&pairs);
        let instance = format!("kill-{}", platform.id);
        let selector = format!("courier.dev/instance={instance}");
        let managed = Api::<Secret>::all(platform.client.clone());

        let mut child = Command::new(env!("CARGO_BIN_EXE_courier"))
            .args([
                "apply",
                platform.manifests.path().to_str().unwrap(),
                "--kubeconfig",
                control_plane().kubeconfig.to_str().unwrap(),
            ])
            .args(["--instance", &instance, "--concurrency", "4"])
            .env_remove("KUBECONFIG")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let started = Instant::now();
        let written = loop {
            let count = managed
                .list_metadata(&ListParams::default().labels(&selector))
                .await
                .unwrap()
                .items
                .len();
            if count >= 50 {
                break count;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "apply never got going"
            );
            assert!(
                child.try_wait().unwrap().is_none(),
                "apply finished before it could be killed"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();
        // Requests the API server had already received may still commit after the kill:
        // count once the number stops moving.
        let mut after_kill = managed
            .list(&ListParams::default().labels(&selector))
            .await
            .unwrap();
        loop {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let again = managed
                .list(&ListParams::default().labels(&selector))
                .await
                .unwrap();
            let settled = again.items.len() == after_kill.items.len();
            after_kill = again;
            if settled {
                break;
            }
        }
        assert!(
            after_kill.items.len() >= written && after_kill.items.len() < 1000,
            "killed after {} writes",
            after_kill.items.len()
        );
        for secret in &after_kill.items {
            let data = secret.data.clone().unwrap_or_default();
            let annotations = secret.metadata.annotations.clone().unwrap_or_default();
            assert_eq!(
                data.len(),
                2,
                "a Secret with only some of its keys: {:?}",
                secret.metadata.name
            );
            assert!(
                annotations.contains_key("courier.dev/origin"),
                "a Secret without courier's metadata"
            );
        }

        let rerun = platform.apply(&instance, &[]);
        assert_eq!(rerun.code, 0, "{}", rerun.stderr);
        let created = 1000 - after_kill.items.len();
        assert!(
            rerun.has(&format!(
                "apply: {created} created, 0 updated, {} unchanged",
                after_kill.items.len()
            )),
            "{}",
            rerun.stderr
        );
        assert_eq!(
            managed
                .list_metadata(&ListParams::default().labels(&selector))
                .await
                .unwrap()
                .items
                .len(),
            1000
        );
        platform
            .assert_value(&namespaces[0].name, "not-courier", "k", Some("theirs"))
            .await;
    }

    #[tokio::test]
    async fn forbidden_namespaces_and_an_immutable_target_fail_alone() {
        let platform = Platform::new("part").await;
        let allowed = platform.target("part-ok", true).await;
        let denied = platform.target("part-denied", true).await;
        let frozen = platform.target("part-frozen", true).await;
        let instance = format!("part-{}", platform.id);
        assert_eq!(
            platform.apply(&instance, &[]).code,
            0,
            "first apply as admin"
        );

        // Someone freezes one target: its update must fail alone.
        let freeze = serde_json::json!({"immutable": true});
        Api::<Secret>::namespaced(platform.client.clone(), &frozen.name)
            .patch("creds", &PatchParams::default(), &Patch::Merge(freeze))
            .await
            .unwrap();
        // An identity that reads everywhere but may write Secrets only where a Role allows.
        let account = format!("partial-{}", platform.id);
        let sa: ServiceAccount =
            serde_json::from_value(serde_json::json!({"metadata": {"name": account}})).unwrap();
        Api::<ServiceAccount>::namespaced(platform.client.clone(), &platform.central.name)
            .create(&PostParams::default(), &sa)
            .await
            .unwrap();
        let subject = serde_json::json!([{"kind": "ServiceAccount", "name": account, "namespace": platform.central.name}]);
        let reader: ClusterRole = serde_json::from_value(serde_json::json!({
            "metadata": {"name": account},
            "rules": [
                {"apiGroups": [""], "resources": ["namespaces", "secrets"], "verbs": ["get", "list", "watch"]},
                {"apiGroups": [""], "resources": ["serviceaccounts/token"], "verbs": ["create"]}
            ]
        }))
        .unwrap();
        Api::<ClusterRole>::all(platform.client.clone())
            .create(&PostParams::default(), &reader)
            .await
            .unwrap();
        let binding: ClusterRoleBinding = serde_json::from_value(serde_json::json!({
            "metadata": {"name": account},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": account},
            "subjects": subject
        }))
        .unwrap();
        Api::<ClusterRoleBinding>::all(platform.client.clone())
            .create(&PostParams::default(), &binding)
            .await
            .unwrap();
        for namespace in [&allowed.name, &frozen.name] {
            let role: Role = serde_json::from_value(serde_json::json!({
                "metadata": {"name": "writer"},
                "rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["create", "patch", "delete"]}]
            }))
            .unwrap();
            Api::<Role>::namespaced(platform.client.clone(), namespace)
                .create(&PostParams::default(), &role)
                .await
                .unwrap();
            let binding: RoleBinding = serde_json::from_value(serde_json::json!({
                "metadata": {"name": "writer"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "writer"},
                "subjects": subject
            }))
            .unwrap();
            Api::<RoleBinding>::namespaced(platform.client.clone(), namespace)
                .create(&PostParams::default(), &binding)
                .await
                .unwrap();
        }

        platform
            .put_source("shared", &[("username", "bot"), ("password", "rotated")])
            .await;
        let identity = format!("system:serviceaccount:{}:{account}", platform.central.name);
        let outcome = platform.apply(&instance, &["--as", &identity]);
        assert_eq!(outcome.code, 1, "{}", outcome.stderr);
        assert!(
            outcome.has(&format!(
                "error: Secret {}/creds: failed to apply: secrets \"creds\" is forbidden",
                denied.name
            )),
            "{}",
            outcome.stderr
        );
        assert!(
            outcome.has(&format!(
                "error: Secret {}/creds: failed to apply:",
                frozen.name
            )) && outcome.has("immutable"),
            "{}",
            outcome.stderr
        );
        assert!(
            outcome.has("apply: 0 created, 1 updated"),
            "the allowed target is still reconciled: {}",
            outcome.stderr
        );
        assert!(!outcome.has("rotated"));
        platform
            .assert_value(&allowed.name, "creds", "password", Some("rotated"))
            .await;
        platform
            .assert_value(&denied.name, "creds", "password", Some("first-value"))
            .await;
        platform
            .assert_value(&frozen.name, "creds", "password", Some("first-value"))
            .await;
    }
}
