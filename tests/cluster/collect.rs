//! `courier collect` on three real control planes of its own: a hub with Argo CD's cluster
//! Secrets, an Argo CD namespace and Kargo project namespaces, and two members with
//! different labels whose teams opt Secrets in with the seeds' labels.

use std::process::{Command, Stdio};
use std::time::Duration;

use base64::Engine as _;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::Client;
use kube::api::{Api, DeleteParams, Patch, PatchParams};

use crate::run::within;
use crate::support::{ADMIN_TOKEN, ControlPlane, client_of};

const ARGOCD: &str = "argocd";

fn cluster_config(plane: &ControlPlane) -> String {
    let ca = base64::engine::general_purpose::STANDARD.encode(plane.ca_pem());
    serde_json::json!({"bearerToken": ADMIN_TOKEN, "tlsClientConfig": {"caData": ca}}).to_string()
}

async fn namespace(client: &Client, name: &str, labels: serde_json::Value) {
    let ns: Namespace =
        serde_json::from_value(serde_json::json!({"metadata": {"name": name, "labels": labels}}))
            .unwrap();
    Api::<Namespace>::all(client.clone())
        .patch(name, &PatchParams::apply("test").force(), &Patch::Apply(ns))
        .await
        .unwrap();
}

async fn put(client: &Client, namespace: &str, secret: serde_json::Value) {
    let secret: Secret = serde_json::from_value(secret).unwrap();
    let name = secret.metadata.name.clone().unwrap();
    Api::<Secret>::namespaced(client.clone(), namespace)
        .patch(
            &name,
            &PatchParams::apply("test").force(),
            &Patch::Apply(secret),
        )
        .await
        .unwrap();
}

async fn member_secret(client: &Client, name: &str, labels: serde_json::Value, password: &str) {
    put(
        client,
        "akuity",
        serde_json::json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": name, "labels": labels},
            "stringData": {"password": password}}),
    )
    .await;
}

async fn password(client: &Client, namespace: &str, name: &str) -> Option<String> {
    let secret = Api::<Secret>::namespaced(client.clone(), namespace)
        .get_opt(name)
        .await
        .unwrap()?;
    let data = secret.data.unwrap_or_default();
    Some(String::from_utf8(data.get("password")?.0.clone()).unwrap())
}

async fn label_of(client: &Client, namespace: &str, name: &str, label: &str) -> Option<String> {
    Api::<Secret>::namespaced(client.clone(), namespace)
        .get_opt(name)
        .await
        .unwrap()?
        .metadata
        .labels?
        .get(label)
        .cloned()
}

fn collect(
    kubeconfig: &std::path::Path,
    policy: &std::path::Path,
    extra: &[&str],
) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_courier"))
        .arg("collect")
        .arg(policy)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(["--clusters-from-secrets", ARGOCD])
        .args(extra)
        .env_remove("KUBECONFIG")
        .env_remove("COURIER_LOG")
        .output()
        .unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(!stderr.contains("panicked"), "{stderr}");
    for value in ["from-a", "from-b", "platform-slack", "a-notifications"] {
        assert!(!stderr.contains(value), "a value reached stderr: {stderr}");
    }
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8(output.stdout).unwrap(),
        stderr,
    )
}

struct Planes {
    hub: ControlPlane,
    a: std::sync::Arc<ControlPlane>,
    b: ControlPlane,
}

async fn three_planes() -> Planes {
    let (hub, a, b) = tokio::join!(
        tokio::task::spawn_blocking(ControlPlane::start_private),
        tokio::task::spawn_blocking(ControlPlane::start_private),
        tokio::task::spawn_blocking(ControlPlane::start_private),
    );
    Planes {
        hub: hub.unwrap(),
        a: std::sync::Arc::new(a.unwrap()),
        b: b.unwrap(),
    }
}

/// An Argo CD cluster Secret on the hub for `plane`.
async fn register(hub: &Client, name: &str, plane: &ControlPlane, env: &str) {
    put(
        hub,
        ARGOCD,
        serde_json::json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": format!("cluster-{name}"),
                "labels": {"argocd.argoproj.io/secret-type": "cluster", "env": env}},
            "stringData": {"name": name, "server": plane.server(), "config": cluster_config(plane)}}),
    )
    .await;
}

#[tokio::test]
async fn members_opt_secrets_in_and_the_hub_gets_them_by_the_seeds_rules() {
    let planes = three_planes().await;
    let (hub, a, b) = (
        client_of(&planes.hub).await,
        client_of(&planes.a).await,
        client_of(&planes.b).await,
    );
    namespace(&hub, ARGOCD, serde_json::json!({})).await;
    for project in ["kargo-demo", "kargo-two"] {
        namespace(
            &hub,
            project,
            serde_json::json!({"kargo.akuity.io/project": "true"}),
        )
        .await;
    }
    namespace(&hub, "not-a-project", serde_json::json!({})).await;
    register(&hub, "member-a", &planes.a, "prod").await;
    register(&hub, "member-b", &planes.b, "dev").await;
    // The hub's own notification Secret, which a member may adopt, and one it may not take.
    put(
        &hub,
        ARGOCD,
        serde_json::json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "argocd-notifications-secret", "labels": {"app": "notifications"}},
        "stringData": {"password": "platform-slack"}}),
    )
    .await;
    put(
        &hub,
        ARGOCD,
        serde_json::json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "hub-own"}, "stringData": {"password": "platform-slack"}}),
    )
    .await;

    let sync = serde_json::json!({"akuity.io/secret-sync": "true", "argocd.argoproj.io/secret-type": "repo-creds"});
    let kargo = |project: &str| serde_json::json!({"kargo.akuity.io/secret-sync": project, "kargo.akuity.io/cred-type": "git"});
    for (client, who) in [(&a, "a"), (&b, "b")] {
        namespace(client, "akuity", serde_json::json!({})).await;
        let _ = who;
    }
    // Member a: created first.
    member_secret(&a, "repo", sync.clone(), "from-a").await;
    member_secret(&a, "git-creds", kargo("kargo-demo"), "from-a").await;
    member_secret(
        &a,
        "argocd-notifications-secret",
        serde_json::json!({"akuity.io/secret-sync": "true"}),
        "a-notifications",
    )
    .await;
    member_secret(
        &a,
        "hub-own",
        serde_json::json!({"akuity.io/secret-sync": "true"}),
        "from-a",
    )
    .await;
    member_secret(
        &a,
        "no-cred-type",
        serde_json::json!({"kargo.akuity.io/secret-sync": "kargo-demo"}),
        "from-a",
    )
    .await;
    member_secret(&a, "no-project", kargo("kargo-missing"), "from-a").await;
    member_secret(&a, "not-project", kargo("not-a-project"), "from-a").await;
    member_secret(
        &a,
        "argocd-secret",
        serde_json::json!({"akuity.io/secret-sync": "true"}),
        "from-a",
    )
    .await;
    member_secret(
        &a,
        "not-opted-in",
        serde_json::json!({"team": "x"}),
        "from-a",
    )
    .await;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // Member b: the same name for the same project, created later.
    member_secret(&b, "git-creds", kargo("kargo-demo"), "from-b").await;
    member_secret(&b, "b-repo", sync.clone(), "from-b").await;

    let dir = tempfile::tempdir().unwrap();
    let policy = dir.path().join("policy.yaml");
    std::fs::write(&policy, "apiVersion: collect.courier.dev/v1alpha1\nkind: SecretCollection\nmetadata: {name: members}\nspec:\n  clusterSelector: \"env in (prod,dev)\"\n").unwrap();
    let kubeconfig = &planes.hub.kubeconfig;

    // A policy with neither selector, or a typo, is refused before anything is read.
    let empty = dir.path().join("empty.yaml");
    std::fs::write(&empty, "apiVersion: collect.courier.dev/v1alpha1\nkind: SecretCollection\nmetadata: {name: members}\nspec: {namespace: akuity}\n").unwrap();
    let (code, _, stderr) = collect(kubeconfig, &empty, &[]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("spec.clusterSelector and spec.secretSelector are both empty"),
        "{stderr}"
    );

    let (code, out, stderr) = collect(kubeconfig, &policy, &["--diff"]);
    assert_eq!(code, 2, "failures make diff exit 2: {stderr}");
    assert!(
        out.contains("+ Secret argocd/repo from cluster member-a (create)"),
        "{out}"
    );
    assert!(
        password(&hub, ARGOCD, "repo").await.is_none(),
        "--diff wrote"
    );

    let (code, _, stderr) = collect(kubeconfig, &policy, &[]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("Secret kargo-demo/git-creds already exists on the hub and is not owned by cluster member-b (it is synced from cluster member-a; the first create wins)"), "{stderr}");
    assert!(
        stderr.contains("member-a/akuity/argocd-secret: refused"),
        "{stderr}"
    );
    assert!(
        stderr.contains("Kargo project \"kargo-missing\""),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "\"not-a-project\" (label kargo.akuity.io/secret-sync) is not a Kargo project"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains(
            "Secret argocd/hub-own already exists on the hub and is not owned by cluster member-a"
        ),
        "{stderr}"
    );
    assert!(
        !stderr.contains("no-cred-type"),
        "a Secret without cred-type is ignored: {stderr}"
    );
    assert_eq!(
        password(&hub, ARGOCD, "repo").await.as_deref(),
        Some("from-a")
    );
    assert_eq!(
        label_of(&hub, ARGOCD, "repo", "argocd.argoproj.io/secret-type")
            .await
            .as_deref(),
        Some("repo-creds")
    );
    assert_eq!(
        label_of(&hub, ARGOCD, "repo", "courier.dev/collected-from")
            .await
            .as_deref(),
        Some("member-a")
    );
    assert_eq!(
        password(&hub, ARGOCD, "b-repo").await.as_deref(),
        Some("from-b")
    );
    assert_eq!(
        password(&hub, "kargo-demo", "git-creds").await.as_deref(),
        Some("from-a")
    );
    assert_eq!(
        password(&hub, ARGOCD, "hub-own").await.as_deref(),
        Some("platform-slack")
    );
    assert_eq!(
        password(&hub, ARGOCD, "argocd-notifications-secret")
            .await
            .as_deref(),
        Some("a-notifications")
    );
    assert_eq!(
        password(&hub, ARGOCD, "courier-previous-argocd-notifications-secret")
            .await
            .as_deref(),
        Some("platform-slack")
    );
    assert!(password(&hub, ARGOCD, "argocd-secret").await.is_none());
    assert!(password(&hub, ARGOCD, "not-opted-in").await.is_none());
    assert!(password(&hub, "kargo-demo", "no-cred-type").await.is_none());

    // The failures fixed: a second pass changes nothing and --diff is in sync.
    Api::<Secret>::namespaced(a.clone(), "akuity")
        .delete("argocd-secret", &DeleteParams::default())
        .await
        .unwrap();
    for name in ["hub-own", "no-project", "not-project"] {
        Api::<Secret>::namespaced(a.clone(), "akuity")
            .delete(name, &DeleteParams::default())
            .await
            .unwrap();
    }
    Api::<Secret>::namespaced(b.clone(), "akuity")
        .delete("git-creds", &DeleteParams::default())
        .await
        .unwrap();
    let (code, out, stderr) = collect(kubeconfig, &policy, &["--diff"]);
    assert_eq!((code, out.as_str()), (0, ""), "{stderr}");
    assert!(
        stderr.contains("0 written, 0 removed, 4 unchanged, 0 failed"),
        "{stderr}"
    );

    // Under --watch: a label change moves a copy, an opt-out gives the adopted Secret
    // back, a deletion removes the copy, each within seconds.
    let mut watch = Command::new(env!("CARGO_BIN_EXE_courier"))
        .arg("collect")
        .arg(&policy)
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args([
            "--clusters-from-secrets",
            ARGOCD,
            "--watch",
            "--debounce",
            "200ms",
        ])
        .env_remove("KUBECONFIG")
        .env("COURIER_LOG", "courier=info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    member_secret(&a, "git-creds", kargo("kargo-two"), "from-a").await;
    within(
        Duration::from_secs(15),
        "the copy moves to kargo-two",
        || async {
            password(&hub, "kargo-two", "git-creds").await.as_deref() == Some("from-a")
                && password(&hub, "kargo-demo", "git-creds").await.is_none()
        },
    )
    .await;
    member_secret(
        &a,
        "argocd-notifications-secret",
        serde_json::json!({}),
        "a-notifications",
    )
    .await;
    within(
        Duration::from_secs(15),
        "the adopted Secret is given back",
        || async {
            password(&hub, ARGOCD, "argocd-notifications-secret")
                .await
                .as_deref()
                == Some("platform-slack")
                && password(&hub, ARGOCD, "courier-previous-argocd-notifications-secret")
                    .await
                    .is_none()
        },
    )
    .await;
    assert_eq!(
        label_of(&hub, ARGOCD, "argocd-notifications-secret", "app")
            .await
            .as_deref(),
        Some("notifications")
    );
    Api::<Secret>::namespaced(a.clone(), "akuity")
        .delete("repo", &DeleteParams::default())
        .await
        .unwrap();
    within(
        Duration::from_secs(15),
        "the copy of a deleted Secret goes",
        || async { password(&hub, ARGOCD, "repo").await.is_none() },
    )
    .await;
    // A Secret created in the member while collect runs arrives too.
    member_secret(&b, "late", sync.clone(), "from-b").await;
    within(
        Duration::from_secs(15),
        "a Secret created while collect runs arrives",
        || async { password(&hub, ARGOCD, "late").await.as_deref() == Some("from-b") },
    )
    .await;
    let _ = Command::new("kill")
        .args(["-TERM", &watch.id().to_string()])
        .status();
    let status = watch.wait().unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut watch.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(status.success(), "{stderr}");
    for value in ["from-a", "from-b", "platform-slack", "a-notifications"] {
        assert!(!stderr.contains(value), "a value reached the log: {stderr}");
    }

    // A member down fails alone, and its copies stay.
    let plane = planes.a.clone();
    tokio::task::spawn_blocking(move || plane.stop_apiserver())
        .await
        .unwrap();
    member_secret(&b, "while-a-down", sync.clone(), "from-b").await;
    let (code, _, stderr) = collect(kubeconfig, &policy, &[]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("cluster member-a: "), "{stderr}");
    assert!(
        stderr.contains("its copies on the hub are kept"),
        "{stderr}"
    );
    assert_eq!(
        password(&hub, "kargo-two", "git-creds").await.as_deref(),
        Some("from-a")
    );
    assert_eq!(
        password(&hub, ARGOCD, "while-a-down").await.as_deref(),
        Some("from-b")
    );
    let plane = planes.a.clone();
    tokio::task::spawn_blocking(move || plane.start_apiserver())
        .await
        .unwrap();

    // A member the policy no longer selects loses its copies (the policy is the hub's).
    put(&hub, ARGOCD, serde_json::json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "cluster-member-b", "labels": {"argocd.argoproj.io/secret-type": "cluster", "env": "test"}}})).await;
    let (code, _, stderr) = collect(kubeconfig, &policy, &[]);
    assert_eq!(code, 0, "{stderr}");
    assert!(password(&hub, ARGOCD, "b-repo").await.is_none());
    assert_eq!(
        password(&hub, "kargo-two", "git-creds").await.as_deref(),
        Some("from-a")
    );
}

#[tokio::test]
async fn the_readme_collect_example_runs() {
    let (hub_plane, member) = tokio::join!(
        tokio::task::spawn_blocking(ControlPlane::start_private),
        tokio::task::spawn_blocking(ControlPlane::start_private),
    );
    let (hub_plane, member) = (hub_plane.unwrap(), member.unwrap());
    let hub = client_of(&hub_plane).await;
    namespace(&hub, ARGOCD, serde_json::json!({})).await;
    namespace(
        &hub,
        "kargo-demo",
        serde_json::json!({"kargo.akuity.io/project": "true"}),
    )
    .await;
    register(&hub, "prod-eu", &member, "prod").await;

    let repo = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let tools = crate::walkthrough::tools_dir();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_courier"), tools.path().join("courier"))
        .unwrap();
    let home = tempfile::tempdir().unwrap();
    let kubeconfig = home.path().join("kubeconfig");
    crate::multicluster::write_kubeconfig(&kubeconfig, &hub_plane, "prod-eu", &member);
    let path = format!(
        "{}:{}",
        tools.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let commands = crate::walkthrough::readme_commands("tests/cluster/collect.rs");
    assert_eq!(commands.len(), 5, "{commands:?}");
    let mut outputs = Vec::new();
    for command in &commands {
        let output = Command::new("bash")
            .args(["-euo", "pipefail", "-c", command])
            .current_dir(repo)
            .env_clear()
            .env("PATH", &path)
            .env("HOME", home.path())
            .env("KUBECONFIG", &kubeconfig)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
        assert!(output.status.success(), "{command} failed:\n{stderr}");
        assert!(!stderr.contains("my-password"), "{stderr}");
        outputs.push(String::from_utf8(output.stdout).unwrap());
    }
    assert!(
        outputs[3].contains("\"argocd.argoproj.io/secret-type\":\"repo-creds\""),
        "{}",
        outputs[3]
    );
    assert!(
        outputs[3].contains("\"courier.dev/collected-from\":\"prod-eu\""),
        "{}",
        outputs[3]
    );
    assert!(
        outputs[4].contains("\"kargo.akuity.io/cred-type\":\"generic\""),
        "{}",
        outputs[4]
    );
    assert_eq!(
        password(&hub, "kargo-demo", "webhook-credentials")
            .await
            .as_deref(),
        Some("my-password")
    );
}
