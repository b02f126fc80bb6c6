//! `spec.provider.openBao` through ESO v2.9's own controller (built with its `openbao` tag
//! by testenv/eso-v2.sh, on a control plane of its own) and through `courier render`,
//! against the same real OpenBao: the Secrets compared byte for byte. The values show
//! where ESO's OpenBao provider is not its Vault provider: Go's `json.Marshal` with HTML
//! escaping for a whole secret, numbers kept as written (`UseNumber`) except through
//! `extract` (float64), nested objects, nulls, unicode, KV v1 and v2, versions, token,
//! AppRole and userpass logins, `find`, and a missing key (an error on both sides).

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, ApiResource, DynamicObject, ListParams, PostParams};

use crate::eso::{Supervision, eso_v2, start_eso};
use crate::openbao::{OpenBao, ROOT_TOKEN};
use crate::support::{ControlPlane, client_of, install_crds_from};

type Data = BTreeMap<String, BTreeMap<String, Vec<u8>>>;

/// Writes `raw` (JSON text, so numbers reach OpenBao as written) at `path` as root.
pub async fn put_raw(bao: &OpenBao, path: &str, raw: &str) {
    let response = reqwest::Client::new()
        .post(format!("{}/v1/{path}", bao.address))
        .header("X-Vault-Token", ROOT_TOKEN)
        .header("Content-Type", "application/json")
        .body(raw.to_owned())
        .send()
        .await
        .unwrap();
    let status = response.status();
    assert!(
        status.is_success(),
        "{path}: {status} {}",
        response.text().await.unwrap_or_default()
    );
}

/// The values: a KV v1 mount at `kv1/`, a second version of `app/db`, an AppRole and a
/// userpass user whose policy reads everything. Returns (role ID, secret ID).
pub async fn seed(bao: &OpenBao) -> (String, String) {
    let json = r#"{"data": {"html": "<a href=\"x\">&amp;</a>", "uni": "héllo ✓ \u2028 \ud83d\ude00", "int": 42, "float": 1.50, "exp": 1e3, "big": 12345678901234567890, "neg": -0.0, "bool": true, "nul": null, "nested": {"b": [1, 2.5, "<>", null], "a": {"x": null, "y": 1E-7}}, "jsonstr": "{\"k\": \"<v>\", \"n\": 1.0}", "ctl": "tab\tnl\nbell\u0007"}}"#;
    put_raw(bao, "secret/data/app/json", json).await;
    put_raw(
        bao,
        "secret/data/app/db",
        r#"{"data": {"user": "u1", "password": "p1&"}}"#,
    )
    .await;
    put_raw(
        bao,
        "secret/data/app/db",
        r#"{"data": {"user": "u2", "password": "p2<"}}"#,
    )
    .await;
    put_raw(
        bao,
        "secret/data/top",
        r#"{"data": {"a": "<1>", "n": 2.50}}"#,
    )
    .await;
    put_raw(bao, "secret/data/topless", r#"{"data": {"b": "x"}}"#).await;
    // `find.path: app` lists `app/db`, and ESO then reads `db` from the mount's root.
    put_raw(bao, "secret/data/db", r#"{"data": {"at": "root&"}}"#).await;
    bao.call(
        "POST",
        "sys/mounts/kv1",
        serde_json::json!({"type": "kv", "options": {"version": "1"}}),
    )
    .await;
    put_raw(
        bao,
        "kv1/legacy",
        r#"{"token": "t<1>", "num": 7.0, "obj": {"z": [true]}}"#,
    )
    .await;
    // ESO's OpenBao provider reads mount `kv` when the store names no `path`.
    bao.call(
        "POST",
        "sys/mounts/kv",
        serde_json::json!({"type": "kv", "options": {"version": "2"}}),
    )
    .await;
    put_raw(
        bao,
        "kv/data/app/json",
        r#"{"data": {"where": "kv<default>"}}"#,
    )
    .await;
    let (role, secret) = bao.app_role(0).await;
    let policy = "path \"*\" { capabilities = [\"read\", \"list\"] }";
    bao.call(
        "PUT",
        "sys/policies/acl/read-all",
        serde_json::json!({"policy": policy}),
    )
    .await;
    bao.call(
        "POST",
        "auth/approle/role/courier",
        serde_json::json!({"token_policies": ["read-all"]}),
    )
    .await;
    bao.call(
        "POST",
        "sys/auth/userpass",
        serde_json::json!({"type": "userpass"}),
    )
    .await;
    bao.call(
        "POST",
        "auth/userpass/users/reader",
        serde_json::json!({"password": "reader-password", "token_policies": ["read-all"]}),
    )
    .await;
    (role, secret)
}

/// The stores (one per login and engine) and the ExternalSecrets in `team`.
pub fn manifests(address: &str, role_id: &str) -> String {
    let store = |name: &str, extra: &str, auth: &str| {
        format!(
            "apiVersion: external-secrets.io/v1\nkind: ClusterSecretStore\nmetadata: {{name: {name}}}\nspec:\n  provider:\n    openBao:\n      server: {address}\n{extra}      auth: {auth}\n---\n"
        )
    };
    let mut text = String::new();
    text.push_str(&store(
        "bao-token",
        "      path: secret\n",
        "{tokenSecretRef: {name: bao-creds, key: token, namespace: central}}",
    ));
    text.push_str(&store(
        "bao-approle",
        "      path: secret\n      version: v2\n",
        &format!("{{appRole: {{path: approle, roleId: {role_id}, secretRef: {{name: bao-creds, key: secret-id, namespace: central}}}}}}"),
    ));
    text.push_str(&store(
        "bao-userpass",
        "      path: secret\n",
        "{userPass: {path: userpass, username: reader, secretRef: {name: bao-creds, key: password, namespace: central}}}",
    ));
    text.push_str(&store(
        "bao-v1",
        "      path: kv1\n      version: v1\n",
        "{tokenSecretRef: {name: bao-creds, key: token, namespace: central}}",
    ));
    text.push_str(&store(
        "bao-default-mount",
        "",
        "{tokenSecretRef: {name: bao-creds, key: token, namespace: central}}",
    ));
    let es = |name: &str, store: &str, body: &str| {
        format!(
            "apiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {{name: {name}, namespace: team}}\nspec:\n  refreshInterval: 1h\n  secretStoreRef: {{kind: ClusterSecretStore, name: {store}}}\n  target: {{name: {name}}}\n{body}---\n"
        )
    };
    let properties = [
        "html", "uni", "int", "float", "exp", "big", "neg", "bool", "nested", "jsonstr", "ctl",
    ]
    .iter()
    .map(|p| format!("  - {{secretKey: {p}, remoteRef: {{key: app/json, property: {p}}}}}\n"))
    .collect::<String>();
    text.push_str(&es(
        "es-properties",
        "bao-token",
        &format!("  data:\n{properties}  - {{secretKey: whole, remoteRef: {{key: app/json}}}}\n  - {{secretKey: fetched, remoteRef: {{key: app/json, property: html, metadataPolicy: Fetch}}}}\n"),
    ));
    text.push_str(&es(
        "es-null",
        "bao-token",
        "  data:\n  - {secretKey: nul, remoteRef: {key: app/json, property: nul}}\n",
    ));
    text.push_str(&es(
        "es-extract",
        "bao-approle",
        "  dataFrom:\n  - extract: {key: app/json}\n",
    ));
    text.push_str(&es(
        "es-extract-property",
        "bao-userpass",
        "  dataFrom:\n  - extract: {key: app/json, property: nested}\n  - extract: {key: app/json, property: jsonstr}\n",
    ));
    text.push_str(&es(
        "es-versions",
        "bao-approle",
        "  data:\n  - {secretKey: old, remoteRef: {key: app/db, property: password, version: \"1\"}}\n  - {secretKey: new, remoteRef: {key: app/db, property: password}}\n  - {secretKey: whole-old, remoteRef: {key: app/db, version: \"1\"}}\n",
    ));
    text.push_str(&es(
        "es-kv1",
        "bao-v1",
        "  data:\n  - {secretKey: token, remoteRef: {key: legacy, property: token}}\n  - {secretKey: num, remoteRef: {key: legacy, property: num}}\n  - {secretKey: whole, remoteRef: {key: legacy}}\n  dataFrom:\n  - extract: {key: legacy}\n",
    ));
    text.push_str(&es(
        "es-default-mount",
        "bao-default-mount",
        "  data:\n  - {secretKey: where, remoteRef: {key: app/json, property: where}}\n  - {secretKey: whole, remoteRef: {key: app/json}}\n",
    ));
    text.push_str(&es(
        "es-find",
        "bao-token",
        "  dataFrom:\n  - find: {name: {regexp: \"^top\"}}\n  - find: {path: app, name: {regexp: \"^d\"}}\n",
    ));
    text
}

/// An ExternalSecret reading a key OpenBao does not have: an error on both sides.
fn missing(store: &str) -> String {
    format!(
        "apiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {{name: es-missing, namespace: team}}\nspec:\n  refreshInterval: 1h\n  secretStoreRef: {{kind: ClusterSecretStore, name: {store}}}\n  target: {{name: es-missing, deletionPolicy: Delete}}\n  data:\n  - {{secretKey: x, remoteRef: {{key: app/missing, property: x}}}}\n"
    )
}

const EXPECTED: usize = 8;

#[tokio::test]
async fn eso_v2_and_courier_write_the_same_secrets_from_openbao() {
    let bao = OpenBao::start().await;
    let (role_id, secret_id) = seed(&bao).await;
    let eso = eso_v2(&["controller", "openbao"]);
    let source = eso_v2(&["source"]);

    let plane = tokio::task::spawn_blocking(ControlPlane::start_private)
        .await
        .unwrap();
    let client = client_of(&plane).await;
    install_crds_from(
        &client,
        &std::path::Path::new(&source).join("config/crds/bases"),
    )
    .await;
    let mut world = String::new();
    for name in ["team", "central"] {
        let namespace: Namespace =
            serde_json::from_value(serde_json::json!({"metadata": {"name": name}})).unwrap();
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &namespace)
            .await
            .unwrap();
        world.push_str(&format!(
            "apiVersion: v1\nkind: Namespace\nmetadata: {{name: {name}}}\n---\n"
        ));
    }
    let creds = serde_json::json!({
        "metadata": {"name": "bao-creds", "namespace": "central"},
        "stringData": {"token": ROOT_TOKEN, "secret-id": secret_id, "password": "reader-password"}
    });
    Api::<Secret>::namespaced(client.clone(), "central")
        .create(
            &PostParams::default(),
            &serde_json::from_value(creds.clone()).unwrap(),
        )
        .await
        .unwrap();
    world.push_str(&format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: bao-creds, namespace: central}}\nstringData: {}\n---\n",
        creds["stringData"]
    ));
    let manifests = manifests(&bao.address, &role_id);

    let state = tempfile::tempdir().unwrap();
    let log = state.path().join("eso.log");
    let mut controller = spawn_eso(&eso, &plane.kubeconfig, &log);
    create_eso_objects(&client, &(manifests.clone() + &missing("bao-token"))).await;
    let started = Instant::now();
    let eso_data: Data = loop {
        let data = targets(&client).await;
        if data.len() == EXPECTED {
            break data;
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "ESO wrote {:?} of {EXPECTED} targets; its log: {}",
            data.keys().collect::<Vec<_>>(),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    // The missing key: ESO's ExternalSecret is not synced, and no Secret is written.
    let es_api =
        Api::<DynamicObject>::namespaced_with(client.clone(), "team", &resource("ExternalSecret"));
    let missing_status = loop {
        let object = es_api.get("es-missing").await.unwrap();
        let ready = object.data["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["type"] == "Ready")
            .cloned();
        if let Some(ready) = ready {
            break ready;
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "ESO gave es-missing no status"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let _ = Command::new("kill")
        .args(["-TERM", &controller.id().to_string()])
        .status();
    let _ = controller.wait();
    assert_eq!(missing_status["status"], "False", "{missing_status}");

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("world.yaml"), world.clone() + &manifests).unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_courier"))
        .args(["render", dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let courier_data = rendered_data(&output.stdout);
    for (name, eso) in &eso_data {
        let courier = courier_data.get(name);
        for (key, value) in eso {
            assert_eq!(
                courier
                    .and_then(|c| c.get(key))
                    .map(|v| String::from_utf8_lossy(v).into_owned()),
                Some(String::from_utf8_lossy(value).into_owned()),
                "{name}/{key}"
            );
        }
    }
    assert_eq!(courier_data, eso_data, "the same Secrets");
    // ESO's quirks, shown: `find.path` names are read from the mount's root, and a whole
    // secret is HTML-escaped.
    assert_eq!(
        eso_data["es-find"].get("db").map(Vec::as_slice),
        Some(&br#"{"at":"root\u0026"}"#[..])
    );
    assert!(
        !stderr.contains(ROOT_TOKEN) && !stderr.contains("reader-password"),
        "{stderr}"
    );

    // The missing key: courier fails that target too, and names the path.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("world.yaml"),
        world + &manifests + "---\n" + &missing("bao-token"),
    )
    .unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_courier"))
        .args(["render", dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(
        stderr.contains("secret not found: at secret/data/app/missing"),
        "{stderr}"
    );
    assert!(!rendered_data(&output.stdout).contains_key("es-missing"));
}

fn resource(kind: &str) -> ApiResource {
    ApiResource {
        group: "external-secrets.io".into(),
        version: "v1".into(),
        api_version: "external-secrets.io/v1".into(),
        plural: format!("{}s", kind.to_lowercase()),
        kind: kind.into(),
    }
}

async fn create_eso_objects(client: &kube::Client, manifests: &str) {
    for document in serde_saphyr::from_multiple::<serde_json::Value>(manifests).unwrap() {
        let resource = resource(document["kind"].as_str().unwrap());
        let object: DynamicObject = serde_json::from_value(document).unwrap();
        let api = match &object.metadata.namespace {
            Some(namespace) => {
                Api::<DynamicObject>::namespaced_with(client.clone(), namespace, &resource)
            }
            None => Api::<DynamicObject>::all_with(client.clone(), &resource),
        };
        api.create(&PostParams::default(), &object).await.unwrap();
    }
}

/// ESO's targets in `team`, by name.
async fn targets(client: &kube::Client) -> Data {
    Api::<Secret>::namespaced(client.clone(), "team")
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|s| {
            s.metadata
                .name
                .as_deref()
                .is_some_and(|n| n.starts_with("es-"))
        })
        .map(|s| {
            (
                s.metadata.name.unwrap(),
                s.data
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, v.0))
                    .collect(),
            )
        })
        .collect()
}

/// ESO's controller on `kubeconfig`'s plane, stopped by testenv's watchdog however the
/// test ends; push-secret reconcilers off, as the other ESO tests run it.
fn spawn_eso(eso: &Path, kubeconfig: &Path, log: &Path) -> std::process::Child {
    start_eso(
        eso,
        kubeconfig,
        log,
        &[
            "--loglevel",
            "error",
            "--enable-push-secret-reconciler=false",
            "--enable-cluster-push-secret-reconciler=false",
        ],
        &[],
        Supervision::Watchdog,
    )
}

/// `courier render`'s Secrets, by name.
pub fn rendered_data(stdout: &[u8]) -> Data {
    use base64::Engine as _;
    let documents: Vec<serde_json::Value> =
        serde_saphyr::from_multiple(std::str::from_utf8(stdout).unwrap()).unwrap_or_default();
    documents
        .into_iter()
        .filter(|d| d["kind"] == "Secret")
        .map(|d| {
            (
                d["metadata"]["name"].as_str().unwrap().to_owned(),
                d["data"]
                    .as_object()
                    .into_iter()
                    .flatten()
                    .map(|(k, v)| {
                        (
                            k.clone(),
                            base64::engine::general_purpose::STANDARD
                                .decode(v.as_str().unwrap_or_default())
                                .unwrap(),
                        )
                    })
                    .collect(),
            )
        })
        .collect()
}

/// ESO v2.9's store controller and `courier apply --from-cluster` give the same `openBao`
/// stores the same `Ready` condition and `capabilities`: a store that reads (`Valid`,
/// `ReadOnly`), a token OpenBao refuses and a mount of another type or KV version
/// (`unable to validate store`), a login OpenBao refuses (`unable to create client`).
#[tokio::test]
async fn eso_v2_and_courier_give_openbao_stores_the_same_status() {
    let bao = OpenBao::start().await;
    seed(&bao).await;
    let eso = eso_v2(&["controller", "openbao"]);
    let source = eso_v2(&["source"]);
    let plane = tokio::task::spawn_blocking(ControlPlane::start_private)
        .await
        .unwrap();
    let client = client_of(&plane).await;
    install_crds_from(
        &client,
        &std::path::Path::new(&source).join("config/crds/bases"),
    )
    .await;
    let namespace: Namespace =
        serde_json::from_value(serde_json::json!({"metadata": {"name": "central"}})).unwrap();
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &namespace)
        .await
        .unwrap();
    let creds = serde_json::json!({
        "metadata": {"name": "bao-creds", "namespace": "central"},
        "stringData": {"token": ROOT_TOKEN, "bad": "not-a-token-bao-knows", "password": "not-the-password"}
    });
    Api::<Secret>::namespaced(client.clone(), "central")
        .create(
            &PostParams::default(),
            &serde_json::from_value(creds).unwrap(),
        )
        .await
        .unwrap();
    let address = &bao.address;
    let token = |key: &str| {
        format!("{{tokenSecretRef: {{name: bao-creds, key: {key}, namespace: central}}}}")
    };
    let stores = [
        ("good", "path: secret, version: v2", token("token")),
        ("good-v1", "path: kv1, version: v1", token("token")),
        ("bad-token", "path: secret", token("bad")),
        ("wrong-version", "path: secret, version: v1", token("token")),
        ("not-kv", "path: cubbyhole", token("token")),
        (
            "bad-login",
            "path: secret",
            "{userPass: {path: userpass, username: reader, secretRef: {name: bao-creds, key: password, namespace: central}}}".to_owned(),
        ),
    ];
    let manifests: String = stores
        .iter()
        .map(|(name, mount, auth)| {
            format!(
                "apiVersion: external-secrets.io/v1\nkind: ClusterSecretStore\nmetadata: {{name: {name}}}\nspec:\n  provider:\n    openBao: {{server: \"{address}\", {mount}, auth: {auth}}}\n---\n"
            )
        })
        .collect();
    let api = Api::<DynamicObject>::all_with(client.clone(), &resource("ClusterSecretStore"));
    let statuses = || async {
        let mut found = BTreeMap::new();
        for (name, _, _) in &stores {
            let object = api.get(name).await.unwrap();
            let status = &object.data["status"];
            if let Some(ready) = status["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|c| c["type"] == "Ready")
            {
                found.insert(
                    name.to_string(),
                    (
                        ready["status"].as_str().unwrap_or_default().to_owned(),
                        ready["reason"].as_str().unwrap_or_default().to_owned(),
                        ready["message"].as_str().unwrap_or_default().to_owned(),
                        status["capabilities"]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned(),
                    ),
                );
            }
        }
        found
    };

    let state = tempfile::tempdir().unwrap();
    let log = state.path().join("eso.log");
    let mut controller = spawn_eso(&eso, &plane.kubeconfig, &log);
    create_eso_objects(&client, &manifests).await;
    let started = Instant::now();
    let eso_statuses = loop {
        let found = statuses().await;
        if found.len() == stores.len() {
            break found;
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "ESO validated {found:?}; its log: {}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let _ = Command::new("kill")
        .args(["-TERM", &controller.id().to_string()])
        .status();
    let _ = controller.wait();
    assert_eq!(
        eso_statuses["good"],
        (
            "True".into(),
            "Valid".into(),
            "store validated".into(),
            "ReadOnly".into()
        )
    );

    // ESO's status goes; courier writes its own.
    for (name, _, _) in &stores {
        api.patch_status(
            name,
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(serde_json::json!({"status": null})),
        )
        .await
        .unwrap();
    }
    assert!(statuses().await.is_empty());
    let output = Command::new(env!("CARGO_BIN_EXE_courier"))
        .args(["apply", "--from-cluster", "--instance", "bao-status"])
        .args(["--kubeconfig", plane.kubeconfig.to_str().unwrap()])
        .env_remove("KUBECONFIG")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert_eq!(statuses().await, eso_statuses, "{stderr}");
    assert!(!stderr.contains("not-a-token") && !stderr.contains("not-the-password"));
}
