//! Many clusters from one courier, on three real control planes: the shared one is the hub
//! (sources, Argo CD cluster Secrets), two private ones are members with different labels.

use std::process::{Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::Client;
use kube::api::{Api, Patch, PatchParams, PostParams};

use crate::apply::Platform;
use crate::run::{http_get, within};
use crate::support::{
    ADMIN_TOKEN, ControlPlane, TestNamespace, client_of, control_plane, grant_reader, reader_store,
};

/// An Argo CD cluster Secret for `plane`, as `argocd cluster add` writes one.
async fn cluster_secret(
    hub: &Client,
    namespace: &str,
    name: &str,
    server: &str,
    config: serde_json::Value,
    labels: &[(&str, &str)],
) {
    let mut all: serde_json::Map<String, serde_json::Value> = labels
        .iter()
        .map(|(k, v)| ((*k).to_owned(), serde_json::Value::from(*v)))
        .collect();
    all.insert("argocd.argoproj.io/secret-type".into(), "cluster".into());
    let secret: Secret = serde_json::from_value(serde_json::json!({
        "metadata": {"name": format!("cluster-{name}"), "labels": all},
        "stringData": {"name": name, "server": server, "config": config.to_string()},
    }))
    .unwrap();
    Api::<Secret>::namespaced(hub.clone(), namespace)
        .patch(
            &format!("cluster-{name}"),
            &PatchParams::apply("test").force(),
            &Patch::Apply(secret),
        )
        .await
        .unwrap();
}

fn token_config(plane: &ControlPlane) -> serde_json::Value {
    let ca = base64::engine::general_purpose::STANDARD.encode(plane.ca_pem());
    serde_json::json!({"bearerToken": ADMIN_TOKEN, "tlsClientConfig": {"insecure": false, "caData": ca}})
}

/// A kubeconfig with two contexts of the admin: `hub` (current) for `hub` and `member` for
/// `plane`.
pub fn write_kubeconfig(
    path: &std::path::Path,
    hub: &ControlPlane,
    member: &str,
    plane: &ControlPlane,
) {
    let cluster = |name: &str, plane: &ControlPlane| {
        let ca = base64::engine::general_purpose::STANDARD.encode(plane.ca_pem());
        format!(
            "- name: {name}\n  cluster: {{server: \"{}\", certificate-authority-data: {ca}}}\n",
            plane.server()
        )
    };
    std::fs::write(
        path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n{}{}contexts:\n- name: hub\n  context: {{cluster: hub, user: admin}}\n- name: {member}\n  context: {{cluster: {member}, user: admin}}\ncurrent-context: hub\nusers:\n- name: admin\n  user: {{token: {ADMIN_TOKEN}}}\n",
            cluster("hub", hub),
            cluster(member, plane)
        ),
    )
    .unwrap();
}

async fn labelled(client: &Client, prefix: &str, label: &str) -> TestNamespace {
    let namespace = TestNamespace::create(client, prefix).await;
    set_label(client, &namespace.name, label, Some("true")).await;
    namespace
}

async fn set_label(client: &Client, namespace: &str, label: &str, value: Option<&str>) {
    let patch = serde_json::json!({"metadata": {"labels": {label: value}}});
    Api::<Namespace>::all(client.clone())
        .patch(namespace, &PatchParams::default(), &Patch::Merge(patch))
        .await
        .unwrap();
}

async fn secret(client: &Client, namespace: &str, name: &str) -> Option<Secret> {
    Api::<Secret>::namespaced(client.clone(), namespace)
        .get_opt(name)
        .await
        .unwrap()
}

async fn value(client: &Client, namespace: &str, name: &str) -> Option<String> {
    let secret = secret(client, namespace, name).await?;
    let data = secret.data.unwrap_or_default();
    Some(String::from_utf8(data.get("password")?.0.clone()).unwrap())
}

async fn kube_system_uid(client: &Client) -> String {
    Api::<Namespace>::all(client.clone())
        .get("kube-system")
        .await
        .unwrap()
        .metadata
        .uid
        .unwrap()
}

/// `courier <verb> PATH` against `kubeconfig` with extra flags.
fn courier(verb: &str, path: &str, kubeconfig: &str, extra: &[&str]) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_courier"))
        .args([verb, path, "--kubeconfig", kubeconfig])
        .args(extra)
        .env_remove("KUBECONFIG")
        .env_remove("COURIER_LOG")
        .output()
        .unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(!stderr.contains("panicked"), "{stderr}");
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8(output.stdout).unwrap(),
        stderr,
    )
}

/// The manifests: one ClusterExternalSecret per cluster selector, all selecting the
/// platform's namespace label.
fn manifests(platform: &Platform, extra: &str) {
    let id = &platform.id;
    let label = &platform.label;
    let mut text = platform.store();
    for (name, target, selector) in [
        ("prod", "prod-creds", Some("env in (prod,staging)")),
        ("home", "home-creds", None),
        (
            "b-only",
            "b-creds",
            Some("courier.dev/cluster-name=member-b"),
        ),
    ] {
        let annotations = selector
            .map(|s| format!("\n  annotations: {{courier.dev/cluster-selector: \"{s}\"}}"))
            .unwrap_or_default();
        text.push_str(&format!(
            "---\napiVersion: external-secrets.io/v1\nkind: ClusterExternalSecret\nmetadata:\n  name: {name}-{id}{annotations}\nspec:\n  namespaceSelectors:\n  - matchLabels: {{{label}: \"true\"}}\n  externalSecretSpec:\n    secretStoreRef: {{kind: ClusterSecretStore, name: store-{id}}}\n    target: {{name: {target}}}\n    dataFrom:\n    - extract: {{key: shared}}\n"
        ));
    }
    text.push_str(extra);
    std::fs::write(platform.manifests.path().join("manifests.yaml"), text).unwrap();
}

#[tokio::test]
async fn clusters_are_chosen_by_labels_fail_alone_and_the_first_writer_owns_a_target() {
    let (a, b) = tokio::join!(
        tokio::task::spawn_blocking(ControlPlane::start_private),
        tokio::task::spawn_blocking(ControlPlane::start_private)
    );
    let (a, b) = (std::sync::Arc::new(a.unwrap()), b.unwrap());
    let (a_client, b_client) = (client_of(&a).await, client_of(&b).await);
    let platform = Platform::new("fleet").await;
    let hub = platform.client.clone();
    let label = platform.label.clone();
    let id = platform.id.clone();
    let instance = format!("fleet-{id}");
    manifests(&platform, "");
    let path = platform.apply_path();
    let kubeconfig = control_plane().kubeconfig.to_str().unwrap().to_owned();

    let argocd = TestNamespace::create(&hub, "fleet-argocd").await;
    cluster_secret(
        &hub,
        &argocd.name,
        "member-a",
        a.server(),
        token_config(&a),
        &[("env", "prod")],
    )
    .await;
    cluster_secret(
        &hub,
        &argocd.name,
        "member-b",
        b.server(),
        token_config(&b),
        &[("env", "dev")],
    )
    .await;
    // Argo CD's own cluster: only labels the hub (env=staging, so the prod selector picks it too).
    cluster_secret(
        &hub,
        &argocd.name,
        "in-cluster",
        "https://kubernetes.default.svc",
        serde_json::json!({"tlsClientConfig": {"insecure": false}}),
        &[("env", "staging")],
    )
    .await;
    // A cluster whose identity may not read it: it must fail alone.
    let (cert, key) = a.client_certificate("courier-test-nobody");
    let pem = |text: String| base64::engine::general_purpose::STANDARD.encode(text);
    cluster_secret(
        &hub,
        &argocd.name,
        "member-forbidden",
        a.server(),
        serde_json::json!({"tlsClientConfig": {"caData": pem(a.ca_pem()), "certData": pem(cert), "keyData": pem(key)}}),
        &[("env", "prod")],
    )
    .await;

    let hub_ns = labelled(&hub, "fleet-hub", &label).await;
    let a_ns = labelled(&a_client, "fleet-a", &label).await;
    let a_other = TestNamespace::create(&a_client, "fleet-a-unlabelled").await;
    let b_ns = labelled(&b_client, "fleet-b", &label).await;
    let fleet_flags = [
        "--instance",
        &instance,
        "--clusters-from-secrets",
        &argocd.name,
    ];

    // Without an inventory only the hub is a cluster, with no labels but its name: a
    // manifest whose selector does not pick it writes nothing, and fails, naming it (a
    // selector that picks no cluster is a mistake; its targets are kept).
    let (code, _, stderr) = courier("apply", &path, &kubeconfig, &["--instance", &instance]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(&format!("ClusterExternalSecret/prod-{id}: metadata.annotations[courier.dev/cluster-selector]: the cluster selector \"env in (prod,staging)\" picks none of the clusters (in-cluster)")),
        "{stderr}"
    );
    assert!(
        stderr.contains("apply: 1 created"),
        "home-creds only: {stderr}"
    );
    assert!(secret(&hub, &hub_ns.name, "prod-creds").await.is_none());

    // Selection by cluster labels; the forbidden member fails alone, the others converge.
    let (code, _, stderr) = courier("apply", &path, &kubeconfig, &fleet_flags);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("cluster member-forbidden: failed to list namespaces")
            && stderr.contains("(403)"),
        "{stderr}"
    );
    assert!(
        !stderr.contains(ADMIN_TOKEN),
        "no credential in errors: {stderr}"
    );
    assert_eq!(
        value(&a_client, &a_ns.name, "prod-creds").await.as_deref(),
        Some("first-value")
    );
    assert!(
        secret(&a_client, &a_other.name, "prod-creds")
            .await
            .is_none(),
        "namespace selectors hold per cluster"
    );
    assert!(secret(&a_client, &a_ns.name, "home-creds").await.is_none());
    assert!(secret(&a_client, &a_ns.name, "b-creds").await.is_none());
    assert!(
        secret(&b_client, &b_ns.name, "prod-creds").await.is_none(),
        "env=dev is not picked"
    );
    assert_eq!(
        value(&b_client, &b_ns.name, "b-creds").await.as_deref(),
        Some("first-value")
    );
    assert_eq!(
        value(&hub, &hub_ns.name, "home-creds").await.as_deref(),
        Some("first-value")
    );
    assert_eq!(
        value(&hub, &hub_ns.name, "prod-creds").await.as_deref(),
        Some("first-value")
    );
    assert!(secret(&hub, &hub_ns.name, "b-creds").await.is_none());
    // A member's target names the hub that wrote it; the hub's own targets do not.
    let hub_id = kube_system_uid(&hub).await;
    let on_a = secret(&a_client, &a_ns.name, "prod-creds").await.unwrap();
    assert_eq!(
        on_a.metadata.annotations.unwrap()["courier.dev/hub"],
        hub_id
    );
    let on_hub = secret(&hub, &hub_ns.name, "home-creds").await.unwrap();
    assert!(
        !on_hub
            .metadata
            .annotations
            .unwrap_or_default()
            .contains_key("courier.dev/hub")
    );

    // Without the forbidden member: exit 0, and a no-op reads each member with two LISTs.
    Api::<Secret>::namespaced(hub.clone(), &argocd.name)
        .delete("cluster-member-forbidden", &Default::default())
        .await
        .unwrap();
    let (code, _, stderr) = courier("apply", &path, &kubeconfig, &fleet_flags);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains("apply: cluster member-a: 0 created, 0 updated, 1 unchanged"),
        "{stderr}"
    );
    assert!(
        stderr.contains("apply: cluster member-a: ")
            && stderr
                .contains("unchanged, 0 deleted, 0 released, 0 orphaned, 0 errors; 2 API requests"),
        "{stderr}"
    );
    assert!(stderr.contains("apply: cluster member-b: 0 created, 0 updated, 1 unchanged, 0 deleted, 0 released, 0 orphaned, 0 errors; 2 API requests"), "{stderr}");

    // diff and dry-run name the cluster of every change.
    platform
        .put_source(
            "shared",
            &[("username", "bot"), ("password", "second-value")],
        )
        .await;
    let (code, diff, stderr) = courier("diff", &path, &kubeconfig, &fleet_flags);
    assert_eq!(code, 1, "drift: {stderr}");
    for line in [
        format!(
            "~ Secret {}/prod-creds in cluster member-a (update",
            a_ns.name
        ),
        format!("~ Secret {}/b-creds in cluster member-b (update", b_ns.name),
        format!(
            "~ Secret {}/home-creds in cluster in-cluster (update",
            hub_ns.name
        ),
    ] {
        assert!(diff.contains(&line), "{line} in:\n{diff}");
    }
    assert!(!diff.contains("second-value"), "{diff}");
    let mut dry = fleet_flags.to_vec();
    dry.extend(["--dry-run", "--log-level", "info"]);
    let (code, _, stderr) = courier("apply", &path, &kubeconfig, &dry);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stderr.contains(&format!("target=\"member-a/{}/prod-creds\"", a_ns.name))
            || stderr.contains(&format!("target=member-a/{}/prod-creds", a_ns.name)),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("in-cluster/{}/home-creds", hub_ns.name)),
        "{stderr}"
    );
    assert_eq!(
        value(&a_client, &a_ns.name, "prod-creds").await.as_deref(),
        Some("first-value"),
        "dry run stores nothing"
    );

    // The blocked-secret rules hold in every cluster.
    manifests(
        &platform,
        &format!(
            "---\napiVersion: external-secrets.io/v1\nkind: ClusterExternalSecret\nmetadata:\n  name: blocked-{id}\n  annotations: {{courier.dev/cluster-selector: \"env=prod\"}}\nspec:\n  namespaceSelectors:\n  - matchLabels: {{{label}: \"true\"}}\n  externalSecretSpec:\n    secretStoreRef: {{kind: ClusterSecretStore, name: store-{id}}}\n    target: {{name: argocd-secret}}\n    dataFrom:\n    - extract: {{key: shared}}\n"
        ),
    );
    let (code, _, stderr) = courier("apply", &path, &kubeconfig, &fleet_flags);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("ClusterExternalSecret/blocked-") && stderr.contains("deny list"),
        "{stderr}"
    );
    assert!(
        secret(&a_client, &a_ns.name, "argocd-secret")
            .await
            .is_none()
    );
    manifests(&platform, "");

    // First create wins across hubs: plane b, as a hub of its own with the same instance
    // name and sources of its own, may not take over member-a's target.
    let b_central = TestNamespace::create(&b_client, "fleet-b-central").await;
    grant_reader(&b_client, &b_central.name).await;
    let source: Secret = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "shared"}, "stringData": {"password": "from-the-other-hub"}
    }))
    .unwrap();
    Api::<Secret>::namespaced(b_client.clone(), &b_central.name)
        .create(&PostParams::default(), &source)
        .await
        .unwrap();
    let b_argocd = TestNamespace::create(&b_client, "fleet-b-argocd").await;
    cluster_secret(
        &b_client,
        &b_argocd.name,
        "member-a",
        a.server(),
        token_config(&a),
        &[("env", "prod")],
    )
    .await;
    let other_hub = tempfile::tempdir().unwrap();
    std::fs::write(
        other_hub.path().join("m.yaml"),
        format!(
            "{}---\napiVersion: external-secrets.io/v1\nkind: ClusterExternalSecret\nmetadata:\n  name: prod-{id}\n  annotations: {{courier.dev/cluster-selector: \"env=prod\"}}\nspec:\n  namespaceSelectors:\n  - matchLabels: {{{label}: \"true\"}}\n  externalSecretSpec:\n    secretStoreRef: {{kind: ClusterSecretStore, name: store-{id}}}\n    target: {{name: prod-creds}}\n    dataFrom:\n    - extract: {{key: shared}}\n",
            reader_store(&format!("store-{id}"), &b_central.name)
        ),
    )
    .unwrap();
    let (code, _, stderr) = courier(
        "apply",
        other_hub.path().to_str().unwrap(),
        b.kubeconfig.to_str().unwrap(),
        &[
            "--instance",
            &instance,
            "--clusters-from-secrets",
            &b_argocd.name,
        ],
    );
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(&format!("member-a/{}/prod-creds", a_ns.name))
            && stderr.contains(&format!(
                "managed by courier instance {instance:?} from the hub with cluster ID {hub_id}"
            ))
            && stderr.contains("the first to create a target owns it"),
        "{stderr}"
    );
    assert!(!stderr.contains("from-the-other-hub"), "{stderr}");
    assert_eq!(
        value(&a_client, &a_ns.name, "prod-creds").await.as_deref(),
        Some("second-value"),
        "the first writer's target is untouched"
    );

    // Under run: a namespace label change on one member reaches only that member, and a
    // member that goes down fails alone and catches up when it is back.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_courier"))
        .args(["run", &path, "--kubeconfig", &kubeconfig])
        .args(fleet_flags)
        .args([
            "--refresh",
            "1h",
            "--debounce",
            "200ms",
            "--log-level",
            "info",
        ])
        .args(["--metrics-addr", &format!("127.0.0.1:{port}")])
        .env_remove("KUBECONFIG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    within(
        Duration::from_secs(15),
        "the first reconcile in every cluster",
        || async {
            value(&a_client, &a_ns.name, "prod-creds").await.as_deref() == Some("second-value")
                && value(&b_client, &b_ns.name, "b-creds").await.as_deref() == Some("second-value")
        },
    )
    .await;
    within(Duration::from_secs(5), "every cluster ready", || async {
        http_get(port, "/readyz/clusters").0 == 200
    })
    .await;
    let b_late = TestNamespace::create(&b_client, "fleet-b-late").await;
    let a_late = TestNamespace::create(&a_client, "fleet-a-late").await;
    set_label(&b_client, &b_late.name, &label, Some("true")).await;
    within(
        Duration::from_secs(10),
        "the label on member-b reaching member-b",
        || async { value(&b_client, &b_late.name, "b-creds").await.is_some() },
    )
    .await;
    assert!(
        secret(&a_client, &a_late.name, "prod-creds")
            .await
            .is_none()
    );
    assert!(
        secret(&b_client, &b_late.name, "prod-creds")
            .await
            .is_none()
    );

    let plane = a.clone();
    tokio::task::spawn_blocking(move || plane.stop_apiserver())
        .await
        .unwrap();
    platform
        .put_source(
            "shared",
            &[("username", "bot"), ("password", "third-value")],
        )
        .await;
    within(
        Duration::from_secs(15),
        "member-b converging while member-a is down",
        || async {
            value(&b_client, &b_ns.name, "b-creds").await.as_deref() == Some("third-value")
                && value(&hub, &hub_ns.name, "home-creds").await.as_deref() == Some("third-value")
        },
    )
    .await;
    within(
        Duration::from_secs(15),
        "member-a reported not reached",
        || async {
            let (code, body) = http_get(port, "/readyz/clusters");
            code == 503 && body.contains("member-a: not reached")
        },
    )
    .await;
    assert_eq!(
        http_get(port, "/readyz").0,
        200,
        "one member down keeps courier in service"
    );
    let metrics = http_get(port, "/metrics").1;
    assert!(
        metrics.contains("courier_cluster_ready{cluster=\"member-a\"} 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains("courier_cluster_ready{cluster=\"member-b\"} 1"),
        "{metrics}"
    );
    let plane = a.clone();
    tokio::task::spawn_blocking(move || plane.start_apiserver())
        .await
        .unwrap();
    within(
        Duration::from_secs(90),
        "member-a catching up after it is back",
        || async {
            value(&a_client, &a_ns.name, "prod-creds").await.as_deref() == Some("third-value")
        },
    )
    .await;
    within(Duration::from_secs(10), "member-a ready again", || async {
        http_get(port, "/readyz/clusters").0 == 200
    })
    .await;
    // Relabelling a cluster in Argo CD moves targets at once (the cluster Secrets are watched).
    cluster_secret(
        &hub,
        &argocd.name,
        "member-b",
        b.server(),
        token_config(&b),
        &[("env", "staging")],
    )
    .await;
    within(
        Duration::from_secs(10),
        "member-b relabelled env=staging receiving prod-creds",
        || async {
            value(&b_client, &b_ns.name, "prod-creds").await.as_deref() == Some("third-value")
        },
    )
    .await;
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let status = child.wait().unwrap();
    let mut log = String::new();
    std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut log).unwrap();
    assert!(status.success(), "{log}");
    assert!(
        !log.contains("third-value") && !log.contains(ADMIN_TOKEN),
        "{log}"
    );

    // kubeconfig contexts as the inventory: every context but the hub's own is a member,
    // named after it. The same targets, written from the same hub, are a no-op. A context
    // has no labels, so the manifest selecting by `env` picks no cluster: its error, and
    // its targets are kept.
    let contexts = tempfile::tempdir().unwrap();
    let combined = contexts.path().join("kubeconfig");
    write_kubeconfig(&combined, control_plane(), "member-b", &b);
    let (code, _, stderr) = courier(
        "apply",
        &path,
        combined.to_str().unwrap(),
        &["--instance", &instance, "--all-contexts"],
    );
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("picks none of the clusters (in-cluster, member-b)")
            && stderr.contains("0 deleted"),
        "{stderr}"
    );
    assert!(
        stderr.contains("apply: cluster member-b: 0 created, 0 updated, 2 unchanged"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("cluster hub:"),
        "the hub's context is not a member: {stderr}"
    );
    let (code, _, stderr) = courier(
        "apply",
        &path,
        combined.to_str().unwrap(),
        &[
            "--instance",
            &instance,
            "--member-context",
            "no-such-context",
        ],
    );
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("cluster no-such-context: kubeconfig context \"no-such-context\""),
        "{stderr}"
    );
}

/// README's "Many clusters" block, command by command, in a user's shell: the hub is the
/// shared control plane running the seed platform, `prod-eu` a private one.
#[tokio::test]
async fn the_readme_multi_cluster_example_runs() {
    let member = tokio::task::spawn_blocking(ControlPlane::start_private)
        .await
        .unwrap();
    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let tools = crate::walkthrough::tools_dir();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_courier"), tools.path().join("courier"))
        .unwrap();
    let home = tempfile::tempdir().unwrap();
    let kubeconfig = home.path().join("kubeconfig");
    write_kubeconfig(&kubeconfig, control_plane(), "prod-eu", &member);
    let config = home.path().join("prod-eu-config.json");
    std::fs::write(&config, token_config(&member).to_string()).unwrap();
    let path = format!(
        "{}:{}",
        tools.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let shell = |command: &str| {
        let output = Command::new("bash")
            .args(["-euo", "pipefail", "-c", command])
            .current_dir(repo)
            .env_clear()
            .env("PATH", &path)
            .env("HOME", home.path())
            .env("KUBECONFIG", &kubeconfig)
            .env("PROD_EU_SERVER", member.server())
            .env("PROD_EU_CONFIG", &config)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(output.status.success(), "{command} failed:\n{stderr}");
        assert!(!stderr.contains(ADMIN_TOKEN), "{stderr}");
        (String::from_utf8(output.stdout).unwrap(), stderr)
    };
    // What the hub already has: the seed platform's namespaces, master Secrets and reader.
    shell(
        "kubectl apply --server-side -f examples/platform/namespaces.yaml -f examples/platform/central-secret-store.yaml -f examples/in-cluster/store-reader.yaml",
    );
    let commands = crate::walkthrough::readme_commands("tests/cluster/multicluster.rs");
    assert!(commands.len() >= 5, "{commands:?}");
    let mut last = (String::new(), String::new());
    for command in &commands {
        last = shell(command);
        if command.starts_with("courier apply") {
            assert!(
                last.1.contains("apply: cluster prod-eu: 7 created"),
                "{}",
                last.1
            );
            assert!(
                last.1.contains("apply: cluster in-cluster: 0 created"),
                "the hub gets nothing from a manifest that selects env=prod|staging: {}",
                last.1
            );
        }
    }
    assert!(
        last.0.contains("gh-docker-registry-creds")
            && last.0.contains("kubernetes.io/dockerconfigjson"),
        "{}",
        last.0
    );
}
