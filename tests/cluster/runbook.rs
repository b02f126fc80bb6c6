//! The user's runbook (../shared/seeds, the ESO runbook) under `courier run --from-cluster`
//! in place of ESO's controllers, on ESO v2.9.0's CRDs: `kubectl get externalsecrets -A`
//! and `kubectl get clustersecretstores` read as they do under ESO. The rows are read
//! with the server-side printing kubectl uses (the CRDs' additionalPrinterColumns, as a
//! `Table`), on the example platform (`examples/platform`, the runbook's seven secrets).

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{
    Api, ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams, PostParams,
};
use serde_json::{Value, json};

use crate::eso::{Supervision, eso_v2, start_eso};
use crate::support::{
    ControlPlane, client_of, grant_reader, http_get, install_crds_from, reader_store, repo_root,
};

fn eso(kind: &str, plural: &str) -> ApiResource {
    ApiResource::from_gvk_with_plural(
        &GroupVersionKind::gvk("external-secrets.io", "v1", kind),
        plural,
    )
}

fn documents(file: &str) -> Vec<Value> {
    let text = std::fs::read_to_string(repo_root().join("examples/platform").join(file)).unwrap();
    serde_saphyr::from_multiple(&text).unwrap()
}

/// `kubectl get <plural> -A`: per object (`namespace/name`), the printed columns by name.
async fn rows(client: &kube::Client, plural: &str) -> BTreeMap<String, BTreeMap<String, String>> {
    let request = http::Request::get(format!("/apis/external-secrets.io/v1/{plural}"))
        .header(
            "Accept",
            "application/json;as=Table;v=v1;g=meta.k8s.io,application/json",
        )
        .body(Vec::new())
        .unwrap();
    let table: Value = serde_json::from_str(&client.request_text(request).await.unwrap()).unwrap();
    let columns: Vec<String> = table["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_owned())
        .collect();
    let mut rows = BTreeMap::new();
    for row in table["rows"].as_array().unwrap() {
        let meta = &row["object"]["metadata"];
        let key = match meta["namespace"].as_str() {
            Some(namespace) => format!("{namespace}/{}", meta["name"].as_str().unwrap()),
            None => meta["name"].as_str().unwrap().to_owned(),
        };
        let cells = row["cells"].as_array().unwrap();
        let printed = columns
            .iter()
            .zip(cells)
            .map(|(c, v)| {
                (
                    c.clone(),
                    v.as_str()
                        .map(str::to_owned)
                        .unwrap_or_else(|| v.to_string()),
                )
            })
            .collect();
        rows.insert(key, printed);
    }
    rows
}

fn status_ready(row: Option<&BTreeMap<String, String>>) -> (String, String) {
    let cell = |name: &str| row.and_then(|r| r.get(name)).cloned().unwrap_or_default();
    (cell("Status"), cell("Ready"))
}

async fn wait_for<F: std::future::Future<Output = bool>>(what: &str, mut check: impl FnMut() -> F) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn metric(port: u16, name: &str) -> f64 {
    let (_, body) = http_get(port, "/metrics");
    body.lines()
        .find(|line| line.split(' ').next() == Some(name))
        .and_then(|line| line.rsplit(' ').next()?.parse().ok())
        .unwrap_or(f64::NAN)
}

struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Creates `namespaces` (with their labels), the source Secret `name` in `central` holding
/// `password`, and the store reader's access to `central`.
async fn central_with_source(
    client: &kube::Client,
    namespaces: Vec<(&str, serde_json::Value)>,
    name: &str,
    password: &str,
) {
    for (namespace, labels) in namespaces {
        let namespace: Namespace =
            serde_json::from_value(json!({"metadata": {"name": namespace, "labels": labels}}))
                .unwrap();
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &namespace)
            .await
            .unwrap();
    }
    let source: Secret = serde_json::from_value(
        json!({"metadata": {"name": name}, "stringData": {"password": password}}),
    )
    .unwrap();
    Api::<Secret>::namespaced(client.clone(), "central")
        .create(&PostParams::default(), &source)
        .await
        .unwrap();
    grant_reader(client, "central").await;
}

#[tokio::test]
async fn the_runbooks_kubectl_views_read_as_under_eso() {
    crate::support::binaries_available();
    let plane = Arc::new(
        tokio::task::spawn_blocking(ControlPlane::start_private)
            .await
            .unwrap(),
    );
    let client = client_of(&plane).await;
    install_crds_from(&client, &repo_root().join("testenv/eso-crds-v2.9.0")).await;

    // The platform: its namespaces with their labels, the central store's Secrets, a
    // ClusterSecretStore reading them as its own ServiceAccount, the seven
    // ClusterExternalSecrets (v1, which ESO v2.9 serves).
    let mut labels_of: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for document in documents("namespaces.yaml")
        .into_iter()
        .chain(documents("central-secret-store.yaml"))
    {
        let kind = document["kind"].as_str().unwrap();
        if kind == "Namespace" {
            let name = document["metadata"]["name"].as_str().unwrap().to_owned();
            let labels: BTreeMap<String, String> =
                serde_json::from_value(document["metadata"]["labels"].clone()).unwrap_or_default();
            labels_of.insert(name.clone(), labels);
            let namespace: Namespace = serde_json::from_value(document).unwrap();
            let api = Api::<Namespace>::all(client.clone());
            if api
                .create(&PostParams::default(), &namespace)
                .await
                .is_err()
            {
                api.patch(&name, &PatchParams::default(), &Patch::Merge(&namespace))
                    .await
                    .unwrap();
            }
        } else {
            let namespace = document["metadata"]["namespace"]
                .as_str()
                .unwrap_or("central-secret-store")
                .to_owned();
            let secret: Secret = serde_json::from_value(document).unwrap();
            Api::<Secret>::namespaced(client.clone(), &namespace)
                .create(&PostParams::default(), &secret)
                .await
                .unwrap();
        }
    }
    grant_reader(&client, "central-secret-store").await;
    let store: DynamicObject = serde_saphyr::from_str(&reader_store(
        "central-secret-store",
        "central-secret-store",
    ))
    .unwrap();
    Api::<DynamicObject>::all_with(
        client.clone(),
        &eso("ClusterSecretStore", "clustersecretstores"),
    )
    .create(&PostParams::default(), &store)
    .await
    .unwrap();
    // What the runbook lists: each ClusterExternalSecret's ExternalSecret in each namespace.
    let mut expected: BTreeSet<String> = BTreeSet::new();
    let mut target_of: BTreeMap<String, String> = BTreeMap::new();
    for mut document in documents("cluster-external-secrets.yaml") {
        document["apiVersion"] = json!("external-secrets.io/v1");
        let spec = &document["spec"];
        let es_name = spec["externalSecretName"]
            .as_str()
            .unwrap_or(document["metadata"]["name"].as_str().unwrap())
            .to_owned();
        // The example's selectors: matchLabels and `In` expressions.
        let selectors: Vec<Value> = spec["namespaceSelectors"]
            .as_array()
            .into_iter()
            .flatten()
            .chain(spec.get("namespaceSelector"))
            .cloned()
            .collect();
        for (namespace, labels) in &labels_of {
            let by_label = selectors.iter().any(|s| {
                let exact: BTreeMap<String, String> =
                    serde_json::from_value(s["matchLabels"].clone()).unwrap_or_default();
                let within = s["matchExpressions"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .all(|e| {
                        assert_eq!(e["operator"], "In");
                        let value = labels.get(e["key"].as_str().unwrap());
                        e["values"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .any(|v| Some(v.as_str().unwrap()) == value.map(String::as_str))
                    });
                exact.iter().all(|(k, v)| labels.get(k) == Some(v)) && within
            });
            let named = spec["namespaces"]
                .as_array()
                .is_some_and(|n| n.iter().any(|n| n == namespace));
            if by_label || named {
                expected.insert(format!("{namespace}/{es_name}"));
                target_of.insert(
                    format!("{namespace}/{es_name}"),
                    spec["externalSecretSpec"]["target"]["name"]
                        .as_str()
                        .unwrap_or(&es_name)
                        .to_owned(),
                );
            }
        }
        let object: DynamicObject = serde_json::from_value(document).unwrap();
        Api::<DynamicObject>::all_with(
            client.clone(),
            &eso("ClusterExternalSecret", "clusterexternalsecrets"),
        )
        .create(&PostParams::default(), &object)
        .await
        .unwrap();
    }
    assert!(expected.len() >= 15, "{expected:?}");

    let (_run, port) = run_from_cluster(&plane.kubeconfig, "runbook", &[]);

    // Every namespace the runbook lists has its ExternalSecret, synced and ready.
    let external_secrets = || rows(&client, "externalsecrets");
    wait_for("every ExternalSecret reads SecretSynced / True", || async {
        let rows = external_secrets().await;
        let ok = rows.keys().cloned().collect::<BTreeSet<_>>() == expected
            && rows
                .values()
                .all(|r| status_ready(Some(r)) == ("SecretSynced".into(), "True".into()));
        if !ok {
            let keys: BTreeSet<String> = rows.keys().cloned().collect();
            eprintln!(
                "listed but not expected: {:?}; expected but not listed: {:?}",
                keys.difference(&expected).collect::<Vec<_>>(),
                expected.difference(&keys).collect::<Vec<_>>()
            );
        }
        ok
    })
    .await;
    // ESO's shape: owned by the ClusterExternalSecret, status with a binding to the
    // target, a refresh time, a synced resource version, and the condition's time.
    let es_api = |namespace: &str| {
        Api::<DynamicObject>::namespaced_with(
            client.clone(),
            namespace,
            &eso("ExternalSecret", "externalsecrets"),
        )
    };
    let backstage = es_api("backstage").get("gh-docker-registry").await.unwrap();
    let owner = &backstage.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.name.as_str(), owner.controller),
        (
            "ClusterExternalSecret",
            "application-docker-registry",
            Some(true)
        )
    );
    let status = &backstage.data["status"];
    assert_eq!(
        status["binding"]["name"], "gh-docker-registry-creds",
        "{status}"
    );
    assert!(status["refreshTime"].is_string(), "{status}");
    assert!(
        status["syncedResourceVersion"]
            .as_str()
            .is_some_and(|v| v.starts_with("1-") && v.len() == 2 + 56),
        "{status}"
    );
    assert_eq!(status["conditions"][0]["message"], "secret synced");
    assert!(status["conditions"][0]["lastTransitionTime"].is_string());
    let ces = Api::<DynamicObject>::all_with(
        client.clone(),
        &eso("ClusterExternalSecret", "clusterexternalsecrets"),
    )
    .get("application-docker-registry")
    .await
    .unwrap();
    assert_eq!(
        ces.data["status"]["conditions"],
        json!([{"type": "Ready", "status": "True"}]),
        "{}",
        ces.data["status"]
    );
    assert_eq!(
        ces.data["status"]["externalSecretName"],
        "gh-docker-registry"
    );
    assert_eq!(
        ces.data["status"]["provisionedNamespaces"]
            .as_array()
            .unwrap()
            .len(),
        7
    );

    // `kubectl get clustersecretstores`: checked with the store's own identity.
    wait_for("the ClusterSecretStore reads Valid / True", || async {
        let rows = rows(&client, "clustersecretstores").await;
        status_ready(rows.get("central-secret-store")) == ("Valid".into(), "True".into())
    })
    .await;

    // A no-op reconcile (a namespace's unrelated label wakes one): no write, and a few
    // LISTs, none per ExternalSecret.
    let reconciles = metric(port, "courier_reconciles_total");
    let (requests, writes) = (
        metric(port, "courier_api_requests_total"),
        metric(port, "courier_api_writes_total"),
    );
    Api::<Namespace>::all(client.clone())
        .patch(
            "ai-dev",
            &PatchParams::default(),
            &Patch::Merge(json!({"metadata": {"labels": {"team": "ai"}}})),
        )
        .await
        .unwrap();
    wait_for("a reconcile ran", || async {
        metric(port, "courier_reconciles_total") > reconciles
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let no_op_requests = metric(port, "courier_api_requests_total") - requests;
    let no_op_writes = metric(port, "courier_api_writes_total") - writes;
    eprintln!(
        "no-op reconcile with {} ExternalSecrets: {no_op_requests} requests, {no_op_writes} writes",
        expected.len()
    );
    assert_eq!(no_op_writes, 0.0);
    assert!(
        no_op_requests < expected.len() as f64,
        "{no_op_requests} requests for {} ExternalSecrets",
        expected.len()
    );

    // A broken source: exactly its rows read SecretSyncedError.
    Api::<Secret>::namespaced(client.clone(), "central-secret-store")
        .delete("cloudflare-api-token", &Default::default())
        .await
        .unwrap();
    wait_for("the cloudflare row reads SecretSyncedError", || async {
        let rows = external_secrets().await;
        status_ready(rows.get("cert-manager/cloudflare-api-token"))
            == ("SecretSyncedError".into(), "False".into())
    })
    .await;
    let rows_now = external_secrets().await;
    for (key, row) in &rows_now {
        if key != "cert-manager/cloudflare-api-token" {
            assert_eq!(
                status_ready(Some(row)),
                ("SecretSynced".into(), "True".into()),
                "{key}"
            );
        }
    }
    let broken = es_api("cert-manager")
        .get("cloudflare-api-token")
        .await
        .unwrap();
    assert_eq!(
        broken.data["status"]["conditions"][0]["message"],
        "could not get secret data from provider"
    );
    // ESO's dashboard reads the same from ESO's metrics, beside courier's own.
    let (_, text) = http_get(port, "/metrics");
    for line in [
        "externalsecret_status_condition{condition=\"Ready\",name=\"cloudflare-api-token\",namespace=\"cert-manager\",status=\"False\"} 1",
        "externalsecret_status_condition{condition=\"Ready\",name=\"gh-docker-registry\",namespace=\"backstage\",status=\"True\"} 1",
        "clusterexternalsecret_status_condition{condition=\"Ready\",name=\"application-docker-registry\",namespace=\"\",status=\"True\"} 1",
    ] {
        assert!(text.lines().any(|l| l == line), "{line} in {text}");
    }
    assert!(
        text.lines().any(|l| l.starts_with(
            "externalsecret_sync_calls_error{name=\"cloudflare-api-token\",namespace=\"cert-manager\"} "
        ) && !l.ends_with(" 0")),
        "{text}"
    );
    assert!(text.contains("courier_reconciles_total"), "{text}");

    // A namespace that loses its label loses its ExternalSecret and its Secret.
    Api::<Namespace>::all(client.clone())
        .patch(
            "market-making",
            &PatchParams::default(),
            &Patch::Json::<()>(
                serde_json::from_value(json!([{"op": "remove", "path": "/metadata/labels/secrets~1gh-oauth-credentials"}]))
                    .unwrap(),
            ),
        )
        .await
        .unwrap();
    wait_for(
        "market-making's oauth ExternalSecret and Secret are gone",
        || async {
            let es_gone = !external_secrets()
                .await
                .contains_key("market-making/github-oauth-credentials");
            let secret_gone = Api::<Secret>::namespaced(client.clone(), "market-making")
                .get_opt(&target_of["market-making/github-oauth-credentials"])
                .await
                .unwrap()
                .is_none();
            es_gone && secret_gone
        },
    )
    .await;
    assert!(
        external_secrets()
            .await
            .contains_key("backstage/github-oauth-credentials")
    );
}

fn apply_from_cluster(
    kubeconfig: &std::path::Path,
    instance: &str,
    extra: &[&str],
) -> (i32, String, u64) {
    let output = Command::new(env!("CARGO_BIN_EXE_courier"))
        .args(["apply", "--from-cluster", "--instance", instance])
        .args(["--kubeconfig", kubeconfig.to_str().unwrap()])
        .args(extra)
        .env_remove("KUBECONFIG")
        .env("CI", "true")
        .output()
        .unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    let requests = stderr
        .lines()
        .find(|l| l.starts_with("apply:") && l.ends_with("API requests"))
        .and_then(|l| l.rsplit("; ").next()?.split(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no summary: {stderr}"));
    (output.status.code().unwrap_or(-1), stderr, requests)
}

/// `courier run --from-cluster` as `instance` (debounce 200 ms, then `extra`), logging at
/// info on the test's stderr, stopped when the guard is dropped; and its metrics port.
fn run_from_cluster(
    kubeconfig: &std::path::Path,
    instance: &str,
    extra: &[&str],
) -> (Running, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let run = Running(
        Command::new(env!("CARGO_BIN_EXE_courier"))
            .args(["run", "--from-cluster", "--instance", instance])
            .args(["--kubeconfig", kubeconfig.to_str().unwrap()])
            .args(["--metrics-addr", &format!("127.0.0.1:{port}")])
            .args(["--debounce", "200ms"])
            .args(extra)
            .env_remove("KUBECONFIG")
            .env("RUST_LOG", "courier=info")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    (run, port)
}

/// A control plane of its own (`--from-cluster` reads every ESO object of the cluster)
/// with ESO v2.9.0's CRDs, a `central` namespace whose Secret `shared` the
/// ClusterSecretStore `central` reads, and namespaces labelled `wants=yes`.
async fn private_platform(namespaces: &[&str]) -> (Arc<ControlPlane>, kube::Client) {
    let plane = Arc::new(
        tokio::task::spawn_blocking(ControlPlane::start_private)
            .await
            .unwrap(),
    );
    let client = client_of(&plane).await;
    install_crds_from(&client, &repo_root().join("testenv/eso-crds-v2.9.0")).await;
    let mut all = vec![("central", json!({}))];
    all.extend(namespaces.iter().map(|n| (*n, json!({"wants": "yes"}))));
    central_with_source(&client, all, "shared", "first-value").await;
    let store: DynamicObject = serde_saphyr::from_str(&reader_store("central", "central")).unwrap();
    Api::<DynamicObject>::all_with(
        client.clone(),
        &eso("ClusterSecretStore", "clustersecretstores"),
    )
    .create(&PostParams::default(), &store)
    .await
    .unwrap();
    (plane, client)
}

/// Creates [`private_platform`]'s ClusterExternalSecret `creds`: the source `shared` as
/// Secret `creds` in every namespace labelled `wants: yes`. Returns the API it was created
/// with.
async fn create_creds_ces(client: &kube::Client) -> Api<DynamicObject> {
    let ces_api = Api::<DynamicObject>::all_with(
        client.clone(),
        &eso("ClusterExternalSecret", "clusterexternalsecrets"),
    );
    let ces: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "external-secrets.io/v1", "kind": "ClusterExternalSecret",
        "metadata": {"name": "creds"},
        "spec": {
            "namespaceSelectors": [{"matchLabels": {"wants": "yes"}}],
            "externalSecretSpec": {
                "secretStoreRef": {"kind": "ClusterSecretStore", "name": "central"},
                "target": {"name": "creds"},
                "dataFrom": [{"extract": {"key": "shared"}}]
            }
        }
    }))
    .unwrap();
    ces_api.create(&PostParams::default(), &ces).await.unwrap();
    ces_api
}

#[tokio::test]
async fn a_hand_written_external_secret_fails_its_namespace_and_the_lean_path_keeps_no_objects() {
    let (plane, client) = private_platform(&["kept", "taken"]).await;
    let ces_api = create_creds_ces(&client).await;
    // A hand-written ExternalSecret with the name the ClusterExternalSecret gives its own.
    let hand: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
        "metadata": {"name": "creds", "namespace": "taken"},
        "spec": {
            "secretStoreRef": {"kind": "ClusterSecretStore", "name": "central"},
            "target": {"name": "hand"},
            "dataFrom": [{"extract": {"key": "shared"}}]
        }
    }))
    .unwrap();
    let es_in = |namespace: &str| {
        Api::<DynamicObject>::namespaced_with(
            client.clone(),
            namespace,
            &eso("ExternalSecret", "externalsecrets"),
        )
    };
    es_in("taken")
        .create(&PostParams::default(), &hand)
        .await
        .unwrap();
    let apply = |extra: &[&str]| apply_from_cluster(&plane.kubeconfig, "own", extra);

    // The lean path: no ExternalSecret objects; a no-op costs what it costs. The
    // hand-written ExternalSecret still fails its namespace (the planner's ESO rule), and
    // only that one.
    let (code, stderr, _) = apply(&["--no-ces-external-secrets"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("ExternalSecret taken/creds already exists in namespace taken")
            && stderr.contains("1 errors"),
        "{stderr}"
    );
    let (_, _, lean_no_op) = apply(&["--no-ces-external-secrets"]);
    assert!(es_in("kept").get_opt("creds").await.unwrap().is_none());

    // ESO's objects: the kept namespace gets the ClusterExternalSecret's ExternalSecret;
    // the hand-written one is left as it is and its namespace fails, as under ESO, and as
    // on the lean path: the same error, the same exit code.
    let (code, stderr, first) = apply(&[]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr
            .contains("ExternalSecrets of ClusterExternalSecrets: 1 created, 0 updated, 0 deleted")
            && stderr.contains("ExternalSecret taken/creds already exists in namespace taken")
            && stderr.contains("1 errors"),
        "{stderr}"
    );
    let child = es_in("kept").get("creds").await.unwrap();
    assert_eq!(
        child.metadata.owner_references.unwrap()[0].name,
        "creds",
        "owned by the ClusterExternalSecret"
    );
    assert_eq!(
        child.data["status"]["conditions"][0]["reason"],
        "SecretSynced"
    );
    assert_eq!(
        child.data["spec"]["refreshInterval"], "1h0m0s",
        "as ESO's Go types write it"
    );
    let hand = es_in("taken").get("creds").await.unwrap();
    assert!(hand.metadata.owner_references.is_none());
    assert_eq!(
        hand.data["status"]["binding"]["name"], "hand",
        "{}",
        hand.data["status"]
    );
    let status = ces_api.get("creds").await.unwrap().data["status"].clone();
    assert_eq!(
        status["failedNamespaces"],
        json!([{"namespace": "taken", "reason": "external secret already exists in namespace"}]),
        "{status}"
    );
    assert_eq!(status["provisionedNamespaces"], json!(["kept"]), "{status}");
    assert_eq!(
        status["conditions"],
        json!([{"type": "Ready", "status": "False", "message": "one or more namespaces failed"}])
    );

    // A no-op with the ExternalSecret objects costs what the lean path's does: they come
    // with the LIST every reconcile makes, and no status changed.
    let (code, stderr, full_no_op) = apply(&[]);
    assert_eq!(code, 1, "{stderr}");
    eprintln!(
        "requests: lean no-op {lean_no_op}; with ExternalSecret objects: first {first}, no-op {full_no_op}"
    );
    assert_eq!(full_no_op, lean_no_op, "{stderr}");
}

/// README's "Migrating from ESO" block, command by command, in a user's shell: ESO
/// v2.9.0's controller makes the Secrets first (for a ClusterExternalSecret whose
/// ExternalSecrets have a name of their own), its Deployment is scaled to zero (the test
/// stops the process that stands for its pod: no kube-controller-manager runs here), and
/// courier adopts at once, with `diff --from-cluster` in sync at the end.
#[tokio::test]
async fn the_readme_migration_from_eso_runs_with_esos_own_controller() {
    let eso_binary = tokio::task::spawn_blocking(|| eso_v2(&["controller"]))
        .await
        .unwrap();
    let plane = Arc::new(
        tokio::task::spawn_blocking(ControlPlane::start_private)
            .await
            .unwrap(),
    );
    let client = client_of(&plane).await;
    // Every CRD of ESO v2.9.0 (its controller watches generators too).
    let crds = tempfile::tempdir().unwrap();
    std::fs::copy(
        repo_root().join("../shared/eso/crds-v2.9.0.yaml"),
        crds.path().join("crds.yaml"),
    )
    .unwrap();
    install_crds_from(&client, crds.path()).await;
    let namespaces = vec![
        ("central", json!({})),
        ("external-secrets", json!({})),
        ("app-a", json!({"migrate": "yes"})),
        ("app-b", json!({"migrate": "yes"})),
    ];
    central_with_source(&client, namespaces, "src", "from-central").await;
    // ESO's controller runs outside the cluster here: the store names the API server.
    use base64::Engine as _;
    let store: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "external-secrets.io/v1", "kind": "ClusterSecretStore",
        "metadata": {"name": "central"},
        "spec": {"provider": {"kubernetes": {
            "remoteNamespace": "central",
            "server": {
                "url": plane.server(),
                "caBundle": base64::engine::general_purpose::STANDARD.encode(plane.ca_pem()),
            },
            "auth": {"serviceAccount": {"name": crate::support::READER, "namespace": "central"}}
        }}}
    }))
    .unwrap();
    Api::<DynamicObject>::all_with(
        client.clone(),
        &eso("ClusterSecretStore", "clustersecretstores"),
    )
    .create(&PostParams::default(), &store)
    .await
    .unwrap();
    let ces: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "external-secrets.io/v1", "kind": "ClusterExternalSecret",
        "metadata": {"name": "creds"},
        "spec": {
            "externalSecretName": "app-creds",
            "namespaceSelectors": [{"matchLabels": {"migrate": "yes"}}],
            "externalSecretSpec": {
                "refreshInterval": "1h",
                "secretStoreRef": {"kind": "ClusterSecretStore", "name": "central"},
                "target": {"name": "creds"},
                "dataFrom": [{"extract": {"key": "src"}}]
            }
        }
    }))
    .unwrap();
    Api::<DynamicObject>::all_with(
        client.clone(),
        &eso("ClusterExternalSecret", "clusterexternalsecrets"),
    )
    .create(&PostParams::default(), &ces)
    .await
    .unwrap();
    // ESO's controller Deployment as its Helm chart labels it; its pod is the process below.
    let deployment: k8s_openapi::api::apps::v1::Deployment = serde_json::from_value(json!({
        "metadata": {"name": "external-secrets", "labels": {"app.kubernetes.io/name": "external-secrets"}},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app.kubernetes.io/name": "external-secrets"}},
            "template": {
                "metadata": {"labels": {"app.kubernetes.io/name": "external-secrets"}},
                "spec": {"containers": [{"name": "external-secrets", "image": "ghcr.io/external-secrets/external-secrets:v2.9.0"}]}
            }
        }
    }))
    .unwrap();
    Api::<k8s_openapi::api::apps::v1::Deployment>::namespaced(client.clone(), "external-secrets")
        .create(&PostParams::default(), &deployment)
        .await
        .unwrap();
    let log_dir = tempfile::tempdir().unwrap();
    let log = log_dir.path().join("eso.log");
    let mut eso_process = Running(start_eso(
        &eso_binary,
        &plane.kubeconfig,
        &log,
        &[
            "--enable-push-secret-reconciler=false",
            "--enable-cluster-push-secret-reconciler=false",
            "--enable-generator-state=false",
        ],
        &[],
        Supervision::Caller,
    ));
    let secrets = |namespace: &str| Api::<Secret>::namespaced(client.clone(), namespace);
    let deadline = Instant::now() + Duration::from_secs(120);
    for namespace in ["app-a", "app-b"] {
        loop {
            let made = secrets(namespace).get_opt("creds").await.unwrap();
            if made.is_some_and(|s| {
                s.metadata
                    .labels
                    .unwrap_or_default()
                    .get("reconcile.external-secrets.io/managed")
                    == Some(&"true".to_owned())
            }) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "ESO made no Secret in {namespace}; its log:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    // What ESO's controllers wrote, to compare field by field with what courier keeps.
    let es_api = |namespace: &str| {
        Api::<DynamicObject>::namespaced_with(
            client.clone(),
            namespace,
            &eso("ExternalSecret", "externalsecrets"),
        )
    };
    let ces_api = Api::<DynamicObject>::all_with(
        client.clone(),
        &eso("ClusterExternalSecret", "clusterexternalsecrets"),
    );
    let store_api = Api::<DynamicObject>::all_with(
        client.clone(),
        &eso("ClusterSecretStore", "clustersecretstores"),
    );
    let deadline = Instant::now() + Duration::from_secs(60);
    let (eso_es, eso_ces, eso_store) = loop {
        let es = es_api("app-a").get("app-creds").await.unwrap();
        let ces = ces_api.get("creds").await.unwrap();
        let store = store_api.get("central").await.unwrap();
        let written = es.data["status"]["refreshTime"].is_string()
            && ces.data["status"]["provisionedNamespaces"]
                .as_array()
                .is_some_and(|p| p.len() == 2)
            && store.data["status"]["conditions"].is_array();
        if written {
            break (es, ces, store);
        }
        assert!(Instant::now() < deadline, "ESO wrote no status");
        tokio::time::sleep(Duration::from_millis(250)).await;
    };

    let tools = crate::walkthrough::tools_dir();
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_courier"), tools.path().join("courier"))
        .unwrap();
    let path = format!(
        "{}:{}",
        tools.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let home = tempfile::tempdir().unwrap();
    let shell = |command: &str| {
        let output = Command::new("bash")
            .args(["-uo", "pipefail", "-c", command])
            .env_clear()
            .env("PATH", &path)
            .env("HOME", home.path())
            .env("KUBECONFIG", &plane.kubeconfig)
            .env("COURIER_INSTANCE", "migrated")
            .output()
            .unwrap();
        (
            output.status.code().unwrap_or(-1),
            String::from_utf8(output.stdout).unwrap(),
            String::from_utf8(output.stderr).unwrap(),
        )
    };
    let commands = crate::walkthrough::readme_commands("tests/cluster/runbook.rs");
    assert_eq!(commands.len(), 4, "{commands:?}");
    // 1. ESO's targets are ESO's: listed, untouched.
    let (code, out, err) = shell(&commands[0]);
    assert!(
        out.contains("managed by External Secrets Operator")
            || err.contains("managed by External Secrets Operator"),
        "{code}\n{out}\n{err}"
    );
    // 2. ESO's controller is scaled down; its pod goes (here: its process).
    let (code, _, err) = shell(&commands[1]);
    assert_eq!(code, 0, "{err}");
    drop(std::mem::replace(
        &mut eso_process,
        Running(Command::new("true").spawn().unwrap()),
    ));
    // 3. Adopted at once: the Deployment has no replica.
    let (code, _, err) = shell(&commands[2]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("2 adopted"), "{err}");
    for namespace in ["app-a", "app-b"] {
        let secret = secrets(namespace).get("creds").await.unwrap();
        let labels = secret.metadata.labels.clone().unwrap_or_default();
        assert!(
            !labels.contains_key("reconcile.external-secrets.io/managed"),
            "{labels:?}"
        );
        assert_eq!(
            labels
                .get("app.kubernetes.io/managed-by")
                .map(String::as_str),
            Some("courier")
        );
        assert!(
            secret
                .metadata
                .owner_references
                .unwrap_or_default()
                .is_empty()
        );
    }
    // ESO's ExternalSecrets stay and read as under ESO, now kept by courier.
    let rows = rows(&client, "externalsecrets").await;
    for namespace in ["app-a", "app-b"] {
        assert_eq!(
            status_ready(rows.get(&format!("{namespace}/app-creds"))),
            ("SecretSynced".into(), "True".into()),
            "{rows:?}"
        );
    }
    // Field by field, what courier keeps is what ESO wrote: the ExternalSecret's status
    // (ESO's digest in syncedResourceVersion, the same condition and binding), the
    // ClusterExternalSecret's and the store's; none of them needed a write.
    let es = es_api("app-a").get("app-creds").await.unwrap();
    if es.data["status"] != eso_es.data["status"] {
        eprintln!(
            "ESO's ExternalSecret: {}\nafter courier: {}\nthe ClusterExternalSecret: {}",
            serde_json::to_string(&eso_es).unwrap(),
            serde_json::to_string(&es).unwrap(),
            serde_json::to_string(&eso_ces).unwrap()
        );
    }
    assert_eq!(es.data["status"], eso_es.data["status"]);
    assert_eq!(
        es.metadata.resource_version,
        eso_es.metadata.resource_version
    );
    let ces = ces_api.get("creds").await.unwrap();
    assert_eq!(ces.data["status"], eso_ces.data["status"]);
    let store = store_api.get("central").await.unwrap();
    assert_eq!(store.data["status"], eso_store.data["status"]);
    // 4. In sync.
    let (code, out, err) = shell(&commands[3]);
    assert_eq!(code, 0, "{out}\n{err}");
}

/// A no-op `apply --from-cluster` costs the same requests with 2 or 12 ExternalSecrets:
/// a constant number of LISTs, none per ExternalSecret.
#[tokio::test]
async fn a_no_op_from_the_cluster_costs_the_same_requests_at_any_number_of_external_secrets() {
    let (plane, client) = private_platform(&["few-0", "few-1"]).await;
    create_creds_ces(&client).await;
    let apply = || apply_from_cluster(&plane.kubeconfig, "own", &[]);
    let external_secrets = || async {
        Api::<DynamicObject>::all_with(client.clone(), &eso("ExternalSecret", "externalsecrets"))
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .len()
    };

    let (code, stderr, _) = apply();
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(external_secrets().await, 2);
    let (code, stderr, few) = apply();
    assert_eq!(code, 0, "{stderr}");

    for n in 0..10 {
        let namespace: Namespace = serde_json::from_value(
            json!({"metadata": {"name": format!("many-{n}"), "labels": {"wants": "yes"}}}),
        )
        .unwrap();
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &namespace)
            .await
            .unwrap();
    }
    let (code, stderr, first) = apply();
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(external_secrets().await, 12);
    let (code, stderr, many) = apply();
    assert_eq!(code, 0, "{stderr}");
    eprintln!(
        "no-op requests: {few} with 2 ExternalSecrets, {many} with 12 (the 10 new ones: {first})"
    );
    assert_eq!(
        few, many,
        "a no-op's requests grew with the ExternalSecrets: {stderr}"
    );
}

/// `run --from-cluster` reacts to ESO's objects changing without waiting for its resync
/// (an hour here): a ClusterExternalSecret's selector edited moves its ExternalSecrets and
/// Secrets within seconds, a deleted ExternalSecret comes back, and courier's own status
/// writes wake no reconcile.
#[tokio::test]
async fn run_from_the_cluster_follows_eso_objects_changing_within_seconds() {
    let (plane, client) = private_platform(&["before"]).await;
    Api::<Namespace>::all(client.clone())
        .create(
            &PostParams::default(),
            &serde_json::from_value(
                json!({"metadata": {"name": "after", "labels": {"moved": "here"}}}),
            )
            .unwrap(),
        )
        .await
        .unwrap();
    let ces_api = create_creds_ces(&client).await;
    let (_run, port) = run_from_cluster(&plane.kubeconfig, "follow", &["--refresh", "1h"]);
    let es_in = |namespace: &str| {
        Api::<DynamicObject>::namespaced_with(
            client.clone(),
            namespace,
            &eso("ExternalSecret", "externalsecrets"),
        )
    };
    let present = |namespace: &'static str| {
        let (es, secret) = (
            es_in(namespace),
            Api::<Secret>::namespaced(client.clone(), namespace),
        );
        async move {
            (
                es.get_opt("creds").await.unwrap().is_some(),
                secret.get_opt("creds").await.unwrap().is_some(),
            )
        }
    };
    wait_for("the ExternalSecret and Secret in `before`", || async {
        present("before").await == (true, true)
    })
    .await;
    // Settled: courier's own writes (ExternalSecret, statuses) wake no further reconcile.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let settled = metric(port, "courier_reconciles_total");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        metric(port, "courier_reconciles_total"),
        settled,
        "courier's own writes keep waking reconciles"
    );

    // The selector edited: the ExternalSecret and Secret move within seconds.
    ces_api
        .patch(
            "creds",
            &PatchParams::default(),
            &Patch::Merge(
                json!({"spec": {"namespaceSelectors": [{"matchLabels": {"moved": "here"}}]}}),
            ),
        )
        .await
        .unwrap();
    let edited = Instant::now();
    let deadline = Duration::from_secs(15);
    loop {
        if present("after").await == (true, true) && present("before").await == (false, false) {
            break;
        }
        assert!(
            edited.elapsed() < deadline,
            "15 s after the selector's edit: `after` {:?}, `before` {:?} (ExternalSecret, Secret)",
            present("after").await,
            present("before").await
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    eprintln!("the selector's edit followed in {:?}", edited.elapsed());

    // ESO's Normal Events on the ExternalSecret, only when its Secret changes.
    let normal_events = |namespace: &'static str| {
        let api = Api::<k8s_openapi::api::core::v1::Event>::namespaced(client.clone(), namespace);
        async move {
            api.list(&Default::default())
                .await
                .unwrap()
                .items
                .into_iter()
                .filter(|e| {
                    e.type_.as_deref() == Some("Normal")
                        && e.involved_object.kind.as_deref() == Some("ExternalSecret")
                        && e.involved_object.name.as_deref() == Some("creds")
                })
                .map(|e| (e.reason.unwrap_or_default(), e.message.unwrap_or_default()))
                .collect::<Vec<_>>()
        }
    };
    wait_for("the Created Event", || async {
        normal_events("after").await == [("Created".to_owned(), "secret created".to_owned())]
    })
    .await;
    Api::<Secret>::namespaced(client.clone(), "central")
        .patch(
            "shared",
            &PatchParams::default(),
            &Patch::Merge(json!({"stringData": {"password": "second-value"}})),
        )
        .await
        .unwrap();
    wait_for("the Updated Event", || async {
        normal_events("after")
            .await
            .contains(&("Updated".to_owned(), "secret updated".to_owned()))
    })
    .await;
    // Nothing changes any more: no further Event.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        normal_events("after").await.len(),
        2,
        "{:?}",
        normal_events("after").await
    );

    // A deleted ExternalSecret comes back, as ESO's CES controller makes it again.
    es_in("after")
        .delete("creds", &Default::default())
        .await
        .unwrap();
    let deleted = Instant::now();
    loop {
        let back = es_in("after").get_opt("creds").await.unwrap();
        if back.is_some_and(|es| es.metadata.deletion_timestamp.is_none()) {
            break;
        }
        assert!(
            deleted.elapsed() < deadline,
            "the deleted ExternalSecret is not back after 15 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// A Vault (OpenBao) store's `Ready`, as ESO's `Validate` finds it with the store's own
/// token against the real OpenBao: `Valid` for a token OpenBao knows, and
/// `InvalidProviderConfig` "unable to validate store" for one it refuses, with a Warning
/// Event that names the store and never the token. A webhook store is `Valid` when its
/// url's host answers a TCP connection, as ESO's `NetworkValidate` checks, and not when
/// nothing listens there.
#[tokio::test]
async fn vault_and_webhook_stores_read_valid_or_invalid_as_esos_validate_finds_them() {
    let bao = crate::openbao::OpenBao::start().await;
    let (plane, client) = private_platform(&[]).await;
    let tokens: Secret = serde_json::from_value(json!({
        "metadata": {"name": "bao-tokens"},
        "stringData": {"good": crate::openbao::ROOT_TOKEN, "bad": "not-a-token-bao-knows"}
    }))
    .unwrap();
    Api::<Secret>::namespaced(client.clone(), "central")
        .create(&PostParams::default(), &tokens)
        .await
        .unwrap();
    let stores = Api::<DynamicObject>::all_with(
        client.clone(),
        &eso("ClusterSecretStore", "clustersecretstores"),
    );
    for (name, key) in [("bao-good", "good"), ("bao-bad", "bad")] {
        let store: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "external-secrets.io/v1", "kind": "ClusterSecretStore",
            "metadata": {"name": name},
            "spec": {"provider": {"vault": {
                "server": bao.address, "path": "secret", "version": "v2",
                "auth": {"tokenSecretRef": {"name": "bao-tokens", "key": key, "namespace": "central"}}
            }}}
        }))
        .unwrap();
        stores.create(&PostParams::default(), &store).await.unwrap();
    }
    // One courier refuses to parse (its server has no scheme): the Event names the field.
    let unparsed: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "external-secrets.io/v1", "kind": "ClusterSecretStore",
        "metadata": {"name": "bao-unparsed"},
        "spec": {"provider": {"vault": {
            "server": "bao.example:8200", "path": "secret", "version": "v2",
            "auth": {"tokenSecretRef": {"name": "bao-tokens", "key": "good", "namespace": "central"}}
        }}}
    }))
    .unwrap();
    stores
        .create(&PostParams::default(), &unparsed)
        .await
        .unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    for (name, url) in [
        (
            "hook-up",
            format!("{}/v1/secret/data/{{{{ .remoteRef.key }}}}", bao.address),
        ),
        ("hook-down", format!("http://127.0.0.1:{closed}/values")),
    ] {
        let store: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "external-secrets.io/v1", "kind": "ClusterSecretStore",
            "metadata": {"name": name},
            "spec": {"provider": {"webhook": {"url": url, "result": {"jsonPath": "$.data"}}}}
        }))
        .unwrap();
        stores.create(&PostParams::default(), &store).await.unwrap();
    }
    let (code, stderr, _) = apply_from_cluster(&plane.kubeconfig, "bao", &[]);
    assert_eq!(code, 0, "{stderr}");
    let rows = rows(&client, "clustersecretstores").await;
    assert_eq!(
        status_ready(rows.get("bao-good")),
        ("Valid".into(), "True".into()),
        "{rows:?}"
    );
    assert_eq!(
        status_ready(rows.get("bao-bad")),
        ("InvalidProviderConfig".into(), "False".into()),
        "{rows:?}"
    );
    assert_eq!(
        status_ready(rows.get("bao-unparsed")),
        ("InvalidProviderConfig".into(), "False".into()),
        "{rows:?}"
    );
    assert_eq!(
        status_ready(rows.get("hook-up")),
        ("Valid".into(), "True".into()),
        "{rows:?}"
    );
    assert_eq!(
        status_ready(rows.get("hook-down")),
        ("InvalidProviderConfig".into(), "False".into()),
        "{rows:?}"
    );
    let bad = stores.get("bao-bad").await.unwrap();
    let ready = bad.data["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .unwrap()
        .clone();
    assert_eq!(ready["message"], "unable to validate store", "{ready}");
    let good = stores.get("bao-good").await.unwrap();
    assert_eq!(good.data["status"]["capabilities"], "ReadWrite");
    let events = Api::<k8s_openapi::api::core::v1::Event>::namespaced(client.clone(), "default")
        .list(&Default::default())
        .await
        .unwrap()
        .items;
    let warning = events
        .iter()
        .find(|e| e.involved_object.name.as_deref() == Some("bao-bad"))
        .unwrap_or_else(|| panic!("no Event for bao-bad: {events:?}"));
    assert_eq!(warning.reason.as_deref(), Some("InvalidProviderConfig"));
    let message = warning.message.clone().unwrap_or_default();
    assert!(
        message.contains("invalid vault credentials") && !message.contains("not-a-token"),
        "{message}"
    );
    assert!(!stderr.contains("not-a-token") && !stderr.contains(crate::openbao::ROOT_TOKEN));
    let unparsed = events
        .iter()
        .find(|e| e.involved_object.name.as_deref() == Some("bao-unparsed"))
        .and_then(|e| e.message.clone())
        .unwrap_or_else(|| panic!("no Event for bao-unparsed: {events:?}"));
    assert!(
        unparsed.contains("ClusterSecretStore/bao-unparsed (cluster): spec.provider.vault")
            && unparsed.contains("server"),
        "{unparsed}"
    );
}

/// The AWS stores of [`aws_stores`]: name, whether ESO reads it valid, its message.
const AWS_STORES: [(&str, bool, &str); 7] = [
    ("sm-role", true, "store validated"),
    ("ps-role", true, "store validated"),
    ("sm-role-bad-keys", false, "unable to validate store"),
    ("sm-static-bad-keys", true, "store validated"),
    ("sm-odd-region", true, "store validated"),
    ("sm-missing-keys", false, "unable to create client"),
    ("jwt-no-role", false, "unable to create client"),
];

/// In `central`: the keys (good and wrong) and a ServiceAccount without a role; and the
/// AWS ClusterSecretStores of [`AWS_STORES`].
async fn aws_stores(client: &kube::Client, key_id: &str, secret_key: &str) {
    let keys: Secret = serde_json::from_value(json!({
        "metadata": {"name": "aws-keys"},
        "stringData": {
            "id": key_id, "secret": secret_key,
            "bad-id": "AKIDNOBODYKNOWS00000", "bad-secret": "wrong-secret-moto-refuses"
        }
    }))
    .unwrap();
    Api::<Secret>::namespaced(client.clone(), "central")
        .create(&PostParams::default(), &keys)
        .await
        .unwrap();
    let account: k8s_openapi::api::core::v1::ServiceAccount =
        serde_json::from_value(json!({"metadata": {"name": "no-role"}})).unwrap();
    Api::<k8s_openapi::api::core::v1::ServiceAccount>::namespaced(client.clone(), "central")
        .create(&PostParams::default(), &account)
        .await
        .unwrap();
    let stores = Api::<DynamicObject>::all_with(
        client.clone(),
        &eso("ClusterSecretStore", "clustersecretstores"),
    );
    let keys = |id: &str, secret: &str| {
        json!({"secretRef": {
            "accessKeyIDSecretRef": {"name": "aws-keys", "key": id, "namespace": "central"},
            "secretAccessKeySecretRef": {"name": "aws-keys", "key": secret, "namespace": "central"}
        }})
    };
    let role = "arn:aws:iam::123456789012:role/reader";
    let cases = [
        (
            "sm-role",
            "SecretsManager",
            "eu-west-1",
            Some(role),
            keys("id", "secret"),
        ),
        (
            "ps-role",
            "ParameterStore",
            "eu-west-1",
            Some(role),
            keys("id", "secret"),
        ),
        (
            "sm-role-bad-keys",
            "SecretsManager",
            "eu-west-1",
            Some(role),
            keys("bad-id", "bad-secret"),
        ),
        (
            "sm-static-bad-keys",
            "SecretsManager",
            "eu-west-1",
            None,
            keys("bad-id", "bad-secret"),
        ),
        (
            "sm-odd-region",
            "SecretsManager",
            "xx-nowhere-9",
            Some(role),
            keys("id", "secret"),
        ),
        (
            "sm-missing-keys",
            "SecretsManager",
            "eu-west-1",
            Some(role),
            keys("absent", "secret"),
        ),
        (
            "jwt-no-role",
            "SecretsManager",
            "eu-west-1",
            None,
            json!({"jwt": {"serviceAccountRef": {"name": "no-role", "namespace": "central"}}}),
        ),
    ];
    for (name, service, region, role, auth) in &cases {
        assert!(AWS_STORES.iter().any(|(n, _, _)| n == name));
        let mut provider = json!({"service": service, "region": region, "auth": auth});
        if let Some(role) = role {
            provider["role"] = json!(role);
        }
        let store: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "external-secrets.io/v1", "kind": "ClusterSecretStore",
            "metadata": {"name": name},
            "spec": {"provider": {"aws": provider}}
        }))
        .unwrap();
        stores.create(&PostParams::default(), &store).await.unwrap();
    }
}

/// An AWS store's `Ready`, as ESO v2.9's AWS provider finds it against a real moto that
/// checks signatures and IAM: ESO's `NewClient` reads the credentials (a missing Secret,
/// or a ServiceAccount without its role annotation, is "unable to create client"), then
/// `Validate` retrieves them: a `role` is assumed with STS, so wrong keys are "unable to
/// validate store"; static keys alone are sent nowhere, so ESO (and courier) read a store
/// with wrong static keys as `Valid`, and the region is not checked (with the endpoints
/// set, STS answers for any region name).
#[tokio::test]
async fn aws_stores_read_valid_or_invalid_as_esos_validate_finds_them() {
    let moto = crate::moto::Moto::start().await;
    let (key_id, secret_key) = moto.iam_user();
    moto.enforce_auth().await;
    moto.start_recording().await;
    let (plane, client) = private_platform(&[]).await;
    aws_stores(&client, &key_id, &secret_key).await;
    let stores = Api::<DynamicObject>::all_with(
        client.clone(),
        &eso("ClusterSecretStore", "clustersecretstores"),
    );
    let output = Command::new(env!("CARGO_BIN_EXE_courier"))
        .args(["apply", "--from-cluster", "--instance", "awsstores"])
        .args(["--kubeconfig", plane.kubeconfig.to_str().unwrap()])
        .env_remove("KUBECONFIG")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_WEB_IDENTITY_TOKEN_FILE")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("AWS_SECRETSMANAGER_ENDPOINT", &moto.address)
        .env("AWS_SSM_ENDPOINT", &moto.address)
        .env("AWS_STS_ENDPOINT", &moto.address)
        .env("CI", "true")
        .output()
        .unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    let rows = rows(&client, "clustersecretstores").await;
    let valid = ("Valid".to_owned(), "True".to_owned());
    let invalid = ("InvalidProviderConfig".to_owned(), "False".to_owned());
    for (name, ok, message) in AWS_STORES {
        let expected = if ok { &valid } else { &invalid };
        assert_eq!(&status_ready(rows.get(name)), expected, "{name}: {rows:?}");
        let status = stores.get(name).await.unwrap().data["status"].clone();
        let ready = status["conditions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["type"] == "Ready")
            .unwrap()
            .clone();
        assert_eq!(ready["message"], message, "{name}: {ready}");
        if expected == &valid {
            assert_eq!(status["capabilities"], "ReadWrite", "{name}");
        }
    }
    // A real check: STS was asked to assume the role with each store's own keys (the
    // wrong ones refused), and nothing else was sent.
    let assumed = moto.form_bodies("AssumeRole");
    assert_eq!(assumed.len(), 4, "{:?}", moto.operations());
    assert!(
        moto.operations().iter().all(|o| o == "AssumeRole"),
        "{:?}",
        moto.operations()
    );
    let events = Api::<k8s_openapi::api::core::v1::Event>::namespaced(client.clone(), "default")
        .list(&Default::default())
        .await
        .unwrap()
        .items;
    let warning = |name: &str| {
        events
            .iter()
            .find(|e| e.involved_object.name.as_deref() == Some(name))
            .and_then(|e| e.message.clone())
            .unwrap_or_else(|| panic!("no Event for {name}: {events:?}"))
    };
    let refused = warning("sm-role-bad-keys");
    assert!(
        refused.contains("STS AssumeRole") && refused.contains("InvalidClientTokenId"),
        "{refused}"
    );
    let missing = warning("sm-missing-keys");
    assert!(
        missing.contains("key \"absent\" not found in Secret central/aws-keys"),
        "{missing}"
    );
    assert!(warning("jwt-no-role").contains("central/no-role"));
    for text in [&stderr, &refused, &missing] {
        assert!(
            !text.contains(&secret_key) && !text.contains("wrong-secret-moto-refuses"),
            "{text}"
        );
    }

    // ESO v2.9's own controller (its `aws` build), on a twin plane with the same stores
    // and the same moto, reads every store as courier did: status, reason and message.
    let eso_binary = crate::eso::eso_v2(&["controller", "aws"]);
    let (eso_plane, eso_client) = private_platform(&[]).await;
    aws_stores(&eso_client, &key_id, &secret_key).await;
    let log = tempfile::tempdir().unwrap();
    let mut controller = crate::aws_eso::spawn_eso(
        &eso_binary,
        &eso_plane.kubeconfig,
        &moto,
        &log.path().join("eso.log"),
        4,
    );
    let eso_stores = Api::<DynamicObject>::all_with(
        eso_client.clone(),
        &eso("ClusterSecretStore", "clustersecretstores"),
    );
    let ready = |store: &DynamicObject| {
        let condition = store.data["status"]["conditions"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
            .cloned()
            .unwrap_or_default();
        (
            condition["status"].as_str().unwrap_or_default().to_owned(),
            condition["reason"].as_str().unwrap_or_default().to_owned(),
            condition["message"].as_str().unwrap_or_default().to_owned(),
        )
    };
    let deadline = Instant::now() + Duration::from_secs(120);
    let eso_read = loop {
        let listed = eso_stores.list(&Default::default()).await.unwrap().items;
        let read: BTreeMap<String, (String, String, String)> = listed
            .iter()
            .map(|s| (s.metadata.name.clone().unwrap_or_default(), ready(s)))
            .filter(|(_, r)| !r.0.is_empty())
            .collect();
        if AWS_STORES
            .iter()
            .all(|(name, _, _)| read.contains_key(*name))
        {
            break read;
        }
        assert!(
            Instant::now() < deadline,
            "ESO checked only {read:?}; its log: {}",
            std::fs::read_to_string(log.path().join("eso.log")).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let _ = Command::new("kill")
        .args(["-TERM", &controller.id().to_string()])
        .status();
    let _ = controller.wait();
    for (name, _, _) in AWS_STORES {
        let courier_read = ready(&stores.get(name).await.unwrap());
        assert_eq!(courier_read, eso_read[name], "{name}: courier, then ESO");
    }
}

/// A tenant who may edit ExternalSecrets in its namespace deletes the
/// ClusterExternalSecret's own ExternalSecret there and writes one of the same name: the
/// namespace fails, as under ESO, and the target the ClusterExternalSecret wrote there is
/// kept as it was (neither pruned nor taken over), while the tenant's own target is made.
/// ESO would lose it (the deleted ExternalSecret's owned Secret is garbage-collected);
/// courier keeps it, by its rule that a manifest failing in a namespace keeps its targets
/// there (no owner reference ties the Secret to the ExternalSecret under courier), and
/// says so: the apply fails, naming the namespace.
#[tokio::test]
async fn a_tenant_taking_over_the_external_secret_name_keeps_the_target_it_wrote() {
    let (plane, client) = private_platform(&["kept", "taken"]).await;
    let ces_api = create_creds_ces(&client).await;
    let apply = |extra: &[&str]| apply_from_cluster(&plane.kubeconfig, "own", extra);
    let (code, stderr, _) = apply(&[]);
    assert_eq!(code, 0, "{stderr}");
    let secrets = Api::<Secret>::namespaced(client.clone(), "taken");
    let before = secrets.get("creds").await.unwrap();
    // Nothing for a garbage collector to follow from the ExternalSecret to the Secret.
    assert!(before.metadata.owner_references.is_none());
    let es = Api::<DynamicObject>::namespaced_with(
        client.clone(),
        "taken",
        &eso("ExternalSecret", "externalsecrets"),
    );
    es.delete("creds", &Default::default()).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while es.get_opt("creds").await.unwrap().is_some() {
        assert!(Instant::now() < deadline, "the ExternalSecret stays");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let hand: DynamicObject = serde_json::from_value(json!({
        "apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
        "metadata": {"name": "creds", "namespace": "taken"},
        "spec": {
            "secretStoreRef": {"kind": "ClusterSecretStore", "name": "central"},
            "target": {"name": "hand"},
            "dataFrom": [{"extract": {"key": "shared"}}]
        }
    }))
    .unwrap();
    es.create(&PostParams::default(), &hand).await.unwrap();
    let (code, stderr, _) = apply(&[]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("ExternalSecret taken/creds already exists in namespace taken")
            && stderr.contains("0 deleted"),
        "{stderr}"
    );
    let after = secrets
        .get_opt("creds")
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("the ClusterExternalSecret's target was pruned: {stderr}"));
    assert_eq!(after.data, before.data, "{stderr}");
    assert_eq!(
        after.metadata.resource_version, before.metadata.resource_version,
        "left as it was: {stderr}"
    );
    assert!(
        secrets.get_opt("hand").await.unwrap().is_some(),
        "the tenant's own target: {stderr}"
    );
    let status = ces_api.get("creds").await.unwrap().data["status"].clone();
    assert_eq!(
        status["failedNamespaces"],
        json!([{"namespace": "taken", "reason": "external secret already exists in namespace"}]),
        "{status}"
    );
}

/// A user copies the ExternalSecret a ClusterExternalSecret made in their namespace
/// (`kubectl get externalsecret creds -o yaml`), renames it and its target, and applies
/// it: the copy keeps the controller owner reference (the real ClusterExternalSecret,
/// its real UID, so a garbage collector keeps it). Under ESO it is an ExternalSecret like
/// any other: ESO's ExternalSecret controller syncs its target, and the
/// ClusterExternalSecret controller only ever deletes the ExternalSecret of its own name
/// (deleteExternalSecret by `externalSecretName`). So under courier, on the lean path
/// and with ESO's objects kept: it is neither deleted nor left unplanned.
#[tokio::test]
async fn a_copied_external_secret_keeping_the_owner_reference_is_neither_deleted_nor_ignored() {
    let (plane, client) = private_platform(&["app"]).await;
    let _ces_api = create_creds_ces(&client).await;
    let apply = |extra: &[&str]| apply_from_cluster(&plane.kubeconfig, "own", extra);
    let (code, stderr, _) = apply(&[]);
    assert_eq!(code, 0, "{stderr}");
    let es = Api::<DynamicObject>::namespaced_with(
        client.clone(),
        "app",
        &eso("ExternalSecret", "externalsecrets"),
    );
    let child = es.get("creds").await.unwrap();
    assert!(child.metadata.owner_references.is_some());
    // The copy, as `kubectl get -o yaml`, edited and applied.
    let mut copy = child.clone();
    copy.metadata.name = Some("creds-copy".into());
    copy.metadata.uid = None;
    copy.metadata.resource_version = None;
    copy.metadata.creation_timestamp = None;
    copy.metadata.managed_fields = None;
    copy.data["spec"]["target"]["name"] = json!("copy");
    copy.data.as_object_mut().unwrap().remove("status");
    es.create(&PostParams::default(), &copy).await.unwrap();

    let secrets = Api::<Secret>::namespaced(client.clone(), "app");
    let mut wrong = Vec::new();
    // The lean path (no ExternalSecret objects kept), then ESO's objects kept.
    for extra in [&["--no-ces-external-secrets"][..], &[][..]] {
        let (code, stderr, _) = apply(extra);
        if es.get_opt("creds-copy").await.unwrap().is_none() {
            wrong.push(format!(
                "{extra:?}: the user's ExternalSecret was deleted: {stderr}"
            ));
            break;
        }
        if code != 0 || secrets.get_opt("copy").await.unwrap().is_none() {
            wrong.push(format!(
                "{extra:?}: its target is not written (exit {code}): {stderr}"
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// The same copy, into another namespace that the ClusterExternalSecret does not select
/// (`kubectl get externalsecret creds -n app -o yaml`, the namespace edited, applied in
/// `elsewhere`): name and controller owner reference kept (the real ClusterExternalSecret
/// and UID, so a garbage collector keeps it). Under ESO it is an ExternalSecret like any
/// other, synced by ESO's ExternalSecret controller; the ClusterExternalSecret controller
/// deletes its ExternalSecret only in the namespaces of its `status.provisionedNamespaces`
/// that left the selection (deleteOutdatedExternalSecrets), and `elsewhere` never was one.
/// So under courier, on the lean path and with ESO's objects kept, it is neither deleted
/// nor left unplanned.
#[tokio::test]
async fn a_copy_of_the_external_secret_in_a_namespace_never_selected_is_neither_deleted_nor_ignored()
 {
    let (plane, client) = private_platform(&["app"]).await;
    let elsewhere: Namespace =
        serde_json::from_value(json!({"metadata": {"name": "elsewhere"}})).unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &elsewhere)
        .await
        .unwrap();
    let _ces_api = create_creds_ces(&client).await;
    let apply = |extra: &[&str]| apply_from_cluster(&plane.kubeconfig, "own", extra);
    let (code, stderr, _) = apply(&[]);
    assert_eq!(code, 0, "{stderr}");
    let resource = eso("ExternalSecret", "externalsecrets");
    let child = Api::<DynamicObject>::namespaced_with(client.clone(), "app", &resource)
        .get("creds")
        .await
        .unwrap();
    assert!(child.metadata.owner_references.is_some());
    let mut copy = child.clone();
    copy.metadata.namespace = Some("elsewhere".into());
    copy.metadata.uid = None;
    copy.metadata.resource_version = None;
    copy.metadata.creation_timestamp = None;
    copy.metadata.managed_fields = None;
    copy.data.as_object_mut().unwrap().remove("status");
    let es = Api::<DynamicObject>::namespaced_with(client.clone(), "elsewhere", &resource);
    es.create(&PostParams::default(), &copy).await.unwrap();

    let secrets = Api::<Secret>::namespaced(client.clone(), "elsewhere");
    let mut wrong = Vec::new();
    // The lean path (no ExternalSecret objects kept), then ESO's objects kept.
    for extra in [&["--no-ces-external-secrets"][..], &[][..]] {
        let (code, stderr, _) = apply(extra);
        if es.get_opt("creds").await.unwrap().is_none() {
            wrong.push(format!(
                "{extra:?}: the user's ExternalSecret was deleted: {stderr}"
            ));
            break;
        }
        if code != 0 || secrets.get_opt("creds").await.unwrap().is_none() {
            wrong.push(format!(
                "{extra:?}: its target is not written (exit {code}): {stderr}"
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// Two ClusterExternalSecrets that give their ExternalSecrets one name (`creds`) and both
/// select `app`: the one first by name (`a-creds`) makes the ExternalSecret there and
/// writes its target, and `b-creds` fails there, as the README says (under ESO, whichever
/// reconciles first wins; the other sees an ExternalSecret it does not own and fails with
/// "external secret already exists in namespace"). The ExternalSecret must be `a-creds`'s
/// too, and `b-creds` must not try to create one where it fails: its create would race
/// `a-creds`'s, and the one that lands first owns the ExternalSecret, which decides
/// the next run's winner and target.
#[tokio::test]
async fn two_cluster_external_secrets_sharing_a_name_make_one_external_secret_the_first_by_name() {
    let (plane, client) = private_platform(&["app"]).await;
    let ces_api = Api::<DynamicObject>::all_with(
        client.clone(),
        &eso("ClusterExternalSecret", "clusterexternalsecrets"),
    );
    for name in ["a-creds", "b-creds"] {
        let ces: DynamicObject = serde_json::from_value(json!({
            "apiVersion": "external-secrets.io/v1", "kind": "ClusterExternalSecret",
            "metadata": {"name": name},
            "spec": {
                "externalSecretName": "creds",
                "namespaceSelectors": [{"matchLabels": {"wants": "yes"}}],
                "externalSecretSpec": {
                    "secretStoreRef": {"kind": "ClusterSecretStore", "name": "central"},
                    "target": {"name": format!("{name}-target")},
                    "dataFrom": [{"extract": {"key": "shared"}}]
                }
            }
        }))
        .unwrap();
        ces_api.create(&PostParams::default(), &ces).await.unwrap();
    }
    let (code, stderr, _) = apply_from_cluster(&plane.kubeconfig, "own", &[]);
    assert_eq!(code, 1, "b-creds fails in app: {stderr}");
    let es = Api::<DynamicObject>::namespaced_with(
        client.clone(),
        "app",
        &eso("ExternalSecret", "externalsecrets"),
    )
    .get("creds")
    .await
    .unwrap();
    let owner = es.metadata.owner_references.unwrap_or_default();
    assert_eq!(owner[0].name, "a-creds", "{stderr}");
    assert!(!stderr.contains("create ExternalSecret"), "{stderr}");
    let secrets = Api::<Secret>::namespaced(client.clone(), "app");
    assert!(secrets.get_opt("a-creds-target").await.unwrap().is_some());
    assert!(secrets.get_opt("b-creds-target").await.unwrap().is_none());
    let status = ces_api.get("b-creds").await.unwrap().data["status"].clone();
    assert_eq!(
        status["failedNamespaces"][0]["namespace"],
        json!("app"),
        "{status}"
    );
}
