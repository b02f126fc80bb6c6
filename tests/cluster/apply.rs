//! `courier apply` against the real API server, as a user runs it.

use std::collections::BTreeMap;
use std::process::Command;

use k8s_openapi::api::core::v1::{Namespace, Secret, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use kube::Client;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};

use crate::support::{
    TestNamespace, admin_client, control_plane, grant_reader, http_get, reader_store,
};

/// A small platform of the test's own: a store namespace, labelled targets, a CES.
pub struct Platform {
    pub client: Client,
    pub id: String,
    pub central: TestNamespace,
    pub manifests: tempfile::TempDir,
    pub label: String,
}

impl Platform {
    pub async fn new(prefix: &str) -> Platform {
        let client = admin_client().await;
        let central = TestNamespace::create(&client, &format!("{prefix}-central")).await;
        grant_reader(&client, &central.name).await;
        let id = central.name.rsplit('-').next().unwrap().to_owned();
        let label = format!("courier-test-{id}/wants");
        let platform = Platform {
            client,
            id,
            central,
            manifests: tempfile::tempdir().unwrap(),
            label,
        };
        platform
            .put_source(
                "shared",
                &[("username", "bot"), ("password", "first-value")],
            )
            .await;
        platform.write_manifests(&[("shared", "creds")]);
        platform
    }

    /// The platform's ClusterSecretStore, reading the central namespace as its reader.
    pub fn store(&self) -> String {
        reader_store(&format!("store-{}", self.id), &self.central.name)
    }

    /// One ClusterExternalSecret per `(source, target)` pair, selecting this platform's label.
    pub fn write_manifests(&self, pairs: &[(&str, &str)]) {
        let mut text = self.store();
        for (source, target) in pairs {
            text.push_str(&format!(
                "---\napiVersion: external-secrets.io/v1\nkind: ClusterExternalSecret\nmetadata: {{name: {target}-{id}}}\nspec:\n  namespaceSelectors:\n  - matchLabels: {{{label}: \"true\"}}\n  externalSecretSpec:\n    secretStoreRef: {{kind: ClusterSecretStore, name: store-{id}}}\n    target: {{name: {target}}}\n    dataFrom:\n    - extract: {{key: {source}}}\n",
                id = self.id,
                label = self.label
            ));
        }
        std::fs::write(self.manifests.path().join("manifests.yaml"), text).unwrap();
    }

    pub async fn put_source(&self, name: &str, pairs: &[(&str, &str)]) {
        let data: BTreeMap<&str, &str> = pairs.iter().copied().collect();
        let secret: Secret = serde_json::from_value(serde_json::json!({
            "metadata": {"name": name}, "stringData": data
        }))
        .unwrap();
        Api::<Secret>::namespaced(self.client.clone(), &self.central.name)
            .patch(
                name,
                &PatchParams::apply("test").force(),
                &Patch::Apply(secret),
            )
            .await
            .unwrap();
    }

    pub async fn target(&self, prefix: &str, wants: bool) -> TestNamespace {
        let namespace = TestNamespace::create(&self.client, prefix).await;
        if wants {
            self.set_label(&namespace.name, Some("true")).await;
        }
        namespace
    }

    pub async fn set_label(&self, namespace: &str, value: Option<&str>) {
        let patch = serde_json::json!({"metadata": {"labels": {self.label.clone(): value}}});
        Api::<Namespace>::all(self.client.clone())
            .patch(namespace, &PatchParams::default(), &Patch::Merge(patch))
            .await
            .unwrap();
    }

    pub fn apply(&self, instance: &str, extra: &[&str]) -> Outcome {
        courier_apply(self.manifests.path().to_str().unwrap(), instance, extra)
    }

    /// Runs `apply` on a blocking thread, for tests whose runtime serves an endpoint
    /// courier calls meanwhile.
    pub fn apply_path(&self) -> String {
        self.manifests.path().to_str().unwrap().to_owned()
    }

    pub async fn value(&self, namespace: &str, name: &str, key: &str) -> Option<String> {
        let secret = Api::<Secret>::namespaced(self.client.clone(), namespace)
            .get_opt(name)
            .await
            .unwrap()?;
        let data = secret.data.unwrap_or_default();
        data.get(key)
            .map(|v| String::from_utf8(v.0.clone()).unwrap())
    }

    /// Asserts that Secret `namespace/name` holds `expected` at `key` (`None`: no such
    /// Secret or key). `#[track_caller]` does not reach across `.await`, so the failure
    /// names the Secret and key. The values are the tests' own fixtures, printed as
    /// `assert_eq!` printed them.
    pub async fn assert_value(
        &self,
        namespace: &str,
        name: &str,
        key: &str,
        expected: Option<&str>,
    ) {
        self.assert_value_because(namespace, name, key, expected, "")
            .await;
    }

    /// [`Platform::assert_value`], with `why` (a test's reason, or courier's stderr) in the
    /// failure.
    pub async fn assert_value_because(
        &self,
        namespace: &str,
        name: &str,
        key: &str,
        expected: Option<&str>,
        why: &str,
    ) {
        let found = self.value(namespace, name, key).await;
        assert!(
            found.as_deref() == expected,
            "Secret {namespace}/{name}, key {key}: expected {expected:?}, found {found:?}\n{why}"
        );
    }
}

pub struct Outcome {
    pub code: i32,
    pub stderr: String,
}

impl Outcome {
    /// The `N API requests` of the summary line.
    fn requests(&self) -> u64 {
        let line = self
            .stderr
            .lines()
            .find(|l| l.starts_with("apply:"))
            .unwrap_or_else(|| panic!("no summary:\n{}", self.stderr));
        let before = line.split(" API requests").next().unwrap();
        before.rsplit(' ').next().unwrap().parse().unwrap()
    }

    pub fn has(&self, text: &str) -> bool {
        self.stderr.contains(text)
    }
}

pub fn courier_apply(path: &str, instance: &str, extra: &[&str]) -> Outcome {
    let kubeconfig = control_plane().kubeconfig.to_str().unwrap().to_owned();
    let output = Command::new(env!("CARGO_BIN_EXE_courier"))
        .args([
            "apply",
            path,
            "--kubeconfig",
            &kubeconfig,
            "--instance",
            instance,
        ])
        .args(extra)
        .env_remove("KUBECONFIG")
        .output()
        .unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(output.stdout.is_empty(), "apply prints nothing on stdout");
    Outcome {
        code: output.status.code().unwrap_or(-1),
        stderr,
    }
}

#[tokio::test]
async fn labels_and_sources_drive_create_update_prune_and_no_op_costs_three_requests() {
    let platform = Platform::new("life").await;
    let instance = format!("life-{}", platform.id);
    let a = platform.target("life-a", true).await;
    let b = platform.target("life-b", true).await;
    let c = platform.target("life-c", false).await;

    let first = platform.apply(&instance, &[]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert!(first.has("apply: 2 created, 0 updated"), "{}", first.stderr);
    platform
        .assert_value(&a.name, "creds", "password", Some("first-value"))
        .await;
    platform
        .assert_value(&c.name, "creds", "password", None)
        .await;

    let again = platform.apply(&instance, &[]);
    assert!(
        again.has("apply: 0 created, 0 updated, 2 unchanged, 0 deleted"),
        "{}",
        again.stderr
    );
    assert!(
        again.requests() <= 3 + 1,
        "a no-op reconcile with one store namespace made {} requests",
        again.requests()
    );

    platform.set_label(&c.name, Some("true")).await;
    platform.set_label(&a.name, None).await;
    let relabelled = platform.apply(&instance, &[]);
    assert!(
        relabelled.has("apply: 1 created, 0 updated, 1 unchanged, 1 deleted"),
        "{}",
        relabelled.stderr
    );
    platform
        .assert_value_because(
            &a.name,
            "creds",
            "password",
            None,
            "pruned when the label went away",
        )
        .await;
    platform
        .assert_value(&c.name, "creds", "password", Some("first-value"))
        .await;

    platform
        .put_source(
            "shared",
            &[("username", "bot"), ("password", "second-value")],
        )
        .await;
    let changed = platform.apply(&instance, &[]);
    assert!(
        changed.has("apply: 0 created, 2 updated"),
        "{}",
        changed.stderr
    );
    for namespace in [&b.name, &c.name] {
        platform
            .assert_value(namespace, "creds", "password", Some("second-value"))
            .await;
    }
    assert!(!changed.stderr.contains("second-value") && !changed.stderr.contains("first-value"));

    let secrets_b = Api::<Secret>::namespaced(platform.client.clone(), &b.name);
    let edit = serde_json::json!({"stringData": {"password": "tampered"}});
    secrets_b
        .patch("creds", &PatchParams::default(), &Patch::Merge(edit))
        .await
        .unwrap();
    Api::<Secret>::namespaced(platform.client.clone(), &c.name)
        .delete("creds", &DeleteParams::default())
        .await
        .unwrap();
    let restored = platform.apply(&instance, &[]);
    assert!(
        restored.has("apply: 1 created, 1 updated"),
        "{}",
        restored.stderr
    );
    platform
        .assert_value(&b.name, "creds", "password", Some("second-value"))
        .await;
    platform
        .assert_value(&c.name, "creds", "password", Some("second-value"))
        .await;

    let managers: Vec<String> = secrets_b
        .get("creds")
        .await
        .unwrap()
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .filter_map(|f| f.manager)
        .collect();
    assert!(managers.contains(&"courier".to_owned()), "{managers:?}");
}

#[tokio::test]
async fn an_unmanaged_secret_with_the_target_name_is_refused_and_left_untouched() {
    let platform = Platform::new("own").await;
    let mine = platform.target("own-mine", true).await;
    let theirs = platform.target("own-theirs", true).await;
    let existing: Secret = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "creds"}, "stringData": {"password": "someone-elses"}
    }))
    .unwrap();
    Api::<Secret>::namespaced(platform.client.clone(), &theirs.name)
        .create(&PostParams::default(), &existing)
        .await
        .unwrap();

    let outcome = platform.apply(&format!("own-{}", platform.id), &[]);
    assert_eq!(outcome.code, 1);
    assert!(
        outcome.has(&format!(
            "error: Secret {}/creds: exists and is not managed by courier; left untouched",
            theirs.name
        )),
        "{}",
        outcome.stderr
    );
    assert!(
        outcome.has("apply: 1 created"),
        "the other target is still reconciled: {}",
        outcome.stderr
    );
    platform
        .assert_value(&theirs.name, "creds", "password", Some("someone-elses"))
        .await;
    let untouched = Api::<Secret>::namespaced(platform.client.clone(), &theirs.name)
        .get("creds")
        .await
        .unwrap();
    assert!(untouched.metadata.labels.unwrap_or_default().is_empty());
    platform
        .assert_value(&mine.name, "creds", "password", Some("first-value"))
        .await;
}

#[tokio::test]
async fn two_instances_never_prune_each_other() {
    let platform = Platform::new("inst").await;
    let shared = platform.target("inst-ns", true).await;
    platform.write_manifests(&[("shared", "from-x")]);
    assert_eq!(platform.apply(&format!("x-{}", platform.id), &[]).code, 0);

    let other = tempfile::tempdir().unwrap();
    std::fs::write(
        other.path().join("m.yaml"),
        std::fs::read_to_string(platform.manifests.path().join("manifests.yaml"))
            .unwrap()
            .replace("from-x", "from-y"),
    )
    .unwrap();
    let y = courier_apply(
        other.path().to_str().unwrap(),
        &format!("y-{}", platform.id),
        &[],
    );
    assert_eq!(y.code, 0, "{}", y.stderr);

    // y's manifest goes away (another takes its place: an input without any manifest
    // removes nothing): y prunes its own Secret and leaves x's.
    let replaced = std::fs::read_to_string(other.path().join("m.yaml"))
        .unwrap()
        .replace("from-y", "from-z");
    std::fs::write(other.path().join("m.yaml"), replaced).unwrap();
    let pruned = courier_apply(
        other.path().to_str().unwrap(),
        &format!("y-{}", platform.id),
        &[],
    );
    assert!(
        pruned.has("apply: 1 created, 0 updated, 0 unchanged, 1 deleted"),
        "{}",
        pruned.stderr
    );
    platform
        .assert_value(&shared.name, "from-y", "password", None)
        .await;
    platform
        .assert_value(&shared.name, "from-x", "password", Some("first-value"))
        .await;
}

#[tokio::test]
async fn blocked_sources_are_never_read() {
    let platform = Platform::new("block").await;
    let target = platform.target("block-t", true).await;
    let token: Secret = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "argocd-secret"}, "stringData": {"password": "admin-password"}
    }))
    .unwrap();
    Api::<Secret>::namespaced(platform.client.clone(), &platform.central.name)
        .create(&PostParams::default(), &token)
        .await
        .unwrap();
    platform.write_manifests(&[("argocd-secret", "copied")]);
    let outcome = platform.apply(&format!("block-{}", platform.id), &[]);
    assert_eq!(outcome.code, 1);
    assert!(
        outcome.has("is blocked: the name is on the deny list"),
        "{}",
        outcome.stderr
    );
    assert!(!outcome.has("admin-password"));
    platform
        .assert_value(&target.name, "copied", "password", None)
        .await;
}

#[tokio::test]
async fn the_shipped_cluster_role_is_enough_and_less_is_a_clear_error() {
    let platform = Platform::new("rbac").await;
    let target = platform.target("rbac-t", true).await;
    let shipped = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/templates/install/cronjob.yaml"
    ))
    .unwrap();
    let documents: Vec<serde_json::Value> = serde_saphyr::from_multiple(&shipped).unwrap();
    let mut role: ClusterRole = serde_json::from_value(
        documents
            .iter()
            .find(|d| d["kind"] == "ClusterRole" && d["metadata"]["name"] == "courier")
            .unwrap()
            .clone(),
    )
    .unwrap();
    let role_name = format!("courier-test-{}", platform.id);
    role.metadata.name = Some(role_name.clone());
    Api::<ClusterRole>::all(platform.client.clone())
        .create(&PostParams::default(), &role)
        .await
        .unwrap();

    let accounts =
        Api::<ServiceAccount>::namespaced(platform.client.clone(), &platform.central.name);
    for name in ["courier", "weaker"] {
        let account: ServiceAccount =
            serde_json::from_value(serde_json::json!({"metadata": {"name": name}})).unwrap();
        accounts
            .create(&PostParams::default(), &account)
            .await
            .unwrap();
    }
    let binding: ClusterRoleBinding = serde_json::from_value(serde_json::json!({
        "metadata": {"name": role_name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role_name},
        "subjects": [{"kind": "ServiceAccount", "name": "courier", "namespace": platform.central.name}]
    }))
    .unwrap();
    Api::<ClusterRoleBinding>::all(platform.client.clone())
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();
    // The shipped token ClusterRole, bound in the central namespace as rbac.yaml binds it
    // in central-secret-store: the store's reader lives there.
    let mut token_role: ClusterRole = serde_json::from_value(
        documents
            .iter()
            .find(|d| {
                d["kind"] == "ClusterRole" && d["metadata"]["name"] == "courier-token-requester"
            })
            .unwrap()
            .clone(),
    )
    .unwrap();
    let token_role_name = format!("courier-test-token-{}", platform.id);
    token_role.metadata.name = Some(token_role_name.clone());
    Api::<ClusterRole>::all(platform.client.clone())
        .create(&PostParams::default(), &token_role)
        .await
        .unwrap();
    let token_binding: k8s_openapi::api::rbac::v1::RoleBinding = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "courier-token-requester"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": token_role_name},
        "subjects": [{"kind": "ServiceAccount", "name": "courier", "namespace": platform.central.name}]
    }))
    .unwrap();
    Api::<k8s_openapi::api::rbac::v1::RoleBinding>::namespaced(
        platform.client.clone(),
        &platform.central.name,
    )
    .create(&PostParams::default(), &token_binding)
    .await
    .unwrap();

    let as_courier = format!("system:serviceaccount:{}:courier", platform.central.name);
    let allowed = platform.apply(&format!("rbac-{}", platform.id), &["--as", &as_courier]);
    assert_eq!(allowed.code, 0, "{}", allowed.stderr);
    platform
        .assert_value(&target.name, "creds", "password", Some("first-value"))
        .await;

    // `run` as the same identity: its metadata watches need `watch`; a forbidden watch would
    // keep /readyz at 503.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut run = Command::new(env!("CARGO_BIN_EXE_courier"))
        .args([
            "run",
            platform.manifests.path().to_str().unwrap(),
            "--as",
            &as_courier,
        ])
        .args(["--kubeconfig", control_plane().kubeconfig.to_str().unwrap()])
        .args([
            "--instance",
            &format!("rbac-{}", platform.id),
            "--metrics-addr",
            &format!("127.0.0.1:{port}"),
        ])
        .env_remove("KUBECONFIG")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    let mut ready_since = None;
    while ready_since
        .is_none_or(|since: std::time::Instant| since.elapsed() < std::time::Duration::from_secs(3))
    {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "courier run as the ServiceAccount never stayed ready"
        );
        let ready = http_get(port, "/readyz").0 == 200;
        ready_since = if ready {
            ready_since.or(Some(std::time::Instant::now()))
        } else {
            None
        };
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let _ = run.kill();
    let _ = run.wait();

    let as_weaker = format!("system:serviceaccount:{}:weaker", platform.central.name);
    let denied = platform.apply(&format!("rbac-{}", platform.id), &["--as", &as_weaker]);
    assert_eq!(denied.code, 1);
    assert!(
        denied.has("error: failed to list namespaces: namespaces is forbidden"),
        "{}",
        denied.stderr
    );
    assert!(
        denied.has("hint: the identity courier runs as lacks this RBAC permission"),
        "{}",
        denied.stderr
    );

    Api::<ClusterRoleBinding>::all(platform.client.clone())
        .delete(&role_name, &DeleteParams::default())
        .await
        .unwrap();
    Api::<ClusterRole>::all(platform.client.clone())
        .delete(&role_name, &DeleteParams::default())
        .await
        .unwrap();
    Api::<ClusterRole>::all(platform.client.clone())
        .delete(&token_role_name, &DeleteParams::default())
        .await
        .unwrap();
}

#[tokio::test]
async fn long_applies_show_progress_on_a_terminal_and_stay_quiet_in_pipes() {
    let platform = Platform::new("tty").await;
    let mut namespaces = Vec::new();
    for index in 0..60 {
        namespaces.push(platform.target(&format!("tty-{index}"), true).await);
    }
    let kubeconfig = control_plane().kubeconfig.to_str().unwrap().to_owned();
    let manifests = platform.manifests.path().to_str().unwrap().to_owned();
    let command = format!(
        "{} apply {manifests} --kubeconfig {kubeconfig} --instance tty-{}",
        env!("CARGO_BIN_EXE_courier"),
        platform.id
    );
    // `script` runs courier under a pseudo-terminal, as a person at a shell would.
    let output = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env_remove("CI")
        .output()
        .unwrap();
    let terminal = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{terminal}");
    assert!(
        terminal.contains("Secrets written"),
        "no progress on a terminal:\n{terminal}"
    );
    assert!(terminal.contains("apply: 60 created"), "{terminal}");

    platform
        .put_source("shared", &[("password", "changed")])
        .await;
    let piped = platform.apply(&format!("tty-{}", platform.id), &[]);
    assert!(
        piped.has("apply: 0 created, 60 updated"),
        "{}",
        piped.stderr
    );
    assert!(
        !piped.stderr.contains("Secrets written"),
        "a pipe gets no progress bar: {}",
        piped.stderr
    );
    drop(namespaces);
}

/// `courier apply` on this platform's manifests from any thread.
pub fn run_apply_at(path: &str, instance: &str) -> Outcome {
    courier_apply(path, instance, &[])
}

/// The managed listing reads every page, and keeps the content only of Secrets it is
/// told are not current: what lets 100,000 targets in sync cost their identities alone.
#[tokio::test]
async fn the_managed_listing_reads_every_page_and_drops_the_content_of_current_targets() {
    let client = admin_client().await;
    let namespace = TestNamespace::create(&client, "listing").await;
    let secrets = Api::<Secret>::namespaced(client.clone(), &namespace.name);
    for n in 0..5 {
        let secret: Secret = serde_json::from_value(serde_json::json!({
            "metadata": {
                "name": format!("listed-{n}"),
                "labels": {"app.kubernetes.io/managed-by": "courier", "courier.dev/instance": "listing"},
            },
            "stringData": {"key": format!("value-{n}")},
        }))
        .unwrap();
        secrets
            .create(&PostParams::default(), &secret)
            .await
            .unwrap();
    }
    // Pages of two: every other test's managed Secrets are listed too, in many pages.
    let listed = courier::live::cluster::list_managed_in_pages(&client, 2, |ns, name, _| {
        ns == namespace.name && name != "listed-3"
    })
    .await
    .unwrap();
    let ours: Vec<_> = listed
        .iter()
        .filter(|((ns, _), _)| *ns == namespace.name)
        .map(|((_, name), secret)| {
            let keys = secret
                .content
                .as_ref()
                .map(|c| c.data.keys().cloned().collect::<Vec<_>>());
            (name.as_str(), secret.current, keys)
        })
        .collect();
    let kept = Some(vec!["key".to_owned()]);
    assert_eq!(
        ours,
        [
            ("listed-0", true, None),
            ("listed-1", true, None),
            ("listed-2", true, None),
            ("listed-3", false, kept),
            ("listed-4", true, None),
        ]
    );
}

/// `template.metadata.finalizers`: added to the Secret as ESO's `setMetadata` adds them;
/// a finalizer another controller adds stays, and a Secret holding the template's
/// finalizers is current (the next apply writes nothing).
#[tokio::test]
async fn template_finalizers_reach_the_secret_and_others_finalizers_stay() {
    let platform = Platform::new("fin").await;
    let instance = format!("fin-{}", platform.id);
    let target = platform.target("fin-a", true).await;
    let manifests = format!(
        "{store}---\napiVersion: external-secrets.io/v1\nkind: ClusterExternalSecret\nmetadata: {{name: fin-{id}}}\nspec:\n  namespaceSelectors:\n  - matchLabels: {{{label}: \"true\"}}\n  externalSecretSpec:\n    secretStoreRef: {{kind: ClusterSecretStore, name: store-{id}}}\n    target:\n      name: creds\n      template:\n        metadata:\n          finalizers: [example.com/keep, example.com/keep]\n    dataFrom:\n    - extract: {{key: shared}}\n",
        store = platform.store(),
        id = platform.id,
        label = platform.label
    );
    std::fs::write(platform.manifests.path().join("manifests.yaml"), manifests).unwrap();
    let secrets = Api::<Secret>::namespaced(platform.client.clone(), &target.name);
    let finalizers = |secret: Secret| secret.metadata.finalizers.unwrap_or_default();

    let first = platform.apply(&instance, &[]);
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert_eq!(
        finalizers(secrets.get("creds").await.unwrap()),
        ["example.com/keep"]
    );

    let again = platform.apply(&instance, &[]);
    assert!(
        again.has("apply: 0 created, 0 updated, 1 unchanged, 0 deleted"),
        "{}",
        again.stderr
    );

    // Another controller's finalizer: not courier's to remove.
    secrets
        .patch(
            "creds",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"metadata": {"finalizers": ["example.com/keep", "example.com/theirs"]}})),
        )
        .await
        .unwrap();
    platform
        .put_source(
            "shared",
            &[("username", "bot"), ("password", "second-value")],
        )
        .await;
    let updated = platform.apply(&instance, &[]);
    assert!(
        updated.has("apply: 0 created, 1 updated"),
        "{}",
        updated.stderr
    );
    let secret = secrets.get("creds").await.unwrap();
    assert_eq!(
        String::from_utf8(secret.data.clone().unwrap()["password"].0.clone()).unwrap(),
        "second-value"
    );
    let mut held = finalizers(secret);
    held.sort();
    assert_eq!(held, ["example.com/keep", "example.com/theirs"]);

    // Leave nothing that would hold the namespace's deletion.
    secrets
        .patch(
            "creds",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"metadata": {"finalizers": null}})),
        )
        .await
        .unwrap();
}

/// A namespace being deleted: ESO's ClusterExternalSecret controller provisions nothing
/// there, and courier neither writes into it nor prunes what it wrote there (the
/// namespace's deletion takes it). The test plane runs no namespace controller, so a
/// deleted namespace stays Terminating with its Secrets.
#[tokio::test]
async fn a_namespace_being_deleted_is_neither_written_nor_pruned() {
    let platform = Platform::new("term").await;
    let instance = format!("term-{}", platform.id);
    let staying = platform.target("term-a", true).await;
    let going = platform.target("term-b", true).await;
    let first = platform.apply(&instance, &[]);
    assert!(first.has("apply: 2 created, 0 updated"), "{}", first.stderr);

    Api::<Namespace>::all(platform.client.clone())
        .delete(&going.name, &DeleteParams::default())
        .await
        .unwrap();
    let phase = Api::<Namespace>::all(platform.client.clone())
        .get(&going.name)
        .await
        .unwrap()
        .status
        .and_then(|s| s.phase);
    assert_eq!(phase.as_deref(), Some("Terminating"));

    platform
        .put_source(
            "shared",
            &[("username", "bot"), ("password", "second-value")],
        )
        .await;
    let after = platform.apply(&instance, &["--max-deletions", "0"]);
    assert_eq!(after.code, 0, "{}", after.stderr);
    assert!(
        after.has("apply: 0 created, 1 updated, 0 unchanged, 0 deleted"),
        "{}",
        after.stderr
    );
    platform
        .assert_value(&staying.name, "creds", "password", Some("second-value"))
        .await;
    // Left to the namespace's deletion, as it was.
    platform
        .assert_value(&going.name, "creds", "password", Some("first-value"))
        .await;
}
