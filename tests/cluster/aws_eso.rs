//! The same AWS manifests through ESO v2.9's controller (built with its `aws` tag by
//! testenv/eso-v2.sh, on a control plane of its own, pointed at moto through ESO's
//! `AWS_SECRETSMANAGER_ENDPOINT`) and through courier: identical Secrets, and the calls
//! each made, counted from moto's own request recording.

use std::collections::BTreeMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, ApiResource, DynamicObject, ListParams, PostParams};

use crate::moto::Moto;
use crate::support::{ControlPlane, client_of, install_crds_from, repo_root};

const NAMESPACES: usize = 10;
const CES: usize = 10;

fn eso_tool(what: &[&str]) -> String {
    let output = Command::new(repo_root().join("testenv/eso-v2.sh"))
        .args(what)
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    assert!(output.status.success(), "testenv/eso-v2.sh {what:?}");
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

type Data = BTreeMap<(String, String), BTreeMap<String, Vec<u8>>>;

fn manifests() -> String {
    let mut text = "apiVersion: external-secrets.io/v1\nkind: ClusterSecretStore\nmetadata: {name: aws}\nspec:\n  provider:\n    aws:\n      service: SecretsManager\n      region: eu-west-1\n      auth: {secretRef: {accessKeyIDSecretRef: {name: aws-credentials, key: id, namespace: central}, secretAccessKeySecretRef: {name: aws-credentials, key: secret, namespace: central}}}\n".to_owned();
    for c in 0..CES {
        text.push_str(&format!(
            "---\napiVersion: external-secrets.io/v1\nkind: ClusterExternalSecret\nmetadata: {{name: shared-{c:02}}}\nspec:\n  namespaceSelectors:\n  - matchLabels: {{secrets/aws: \"true\"}}\n  externalSecretSpec:\n    refreshInterval: 20s\n    secretStoreRef: {{kind: ClusterSecretStore, name: aws}}\n    target: {{name: shared-{c:02}}}\n    data:\n    - {{secretKey: password, remoteRef: {{key: app/s{c:02}, property: value}}}}\n    dataFrom:\n    - extract: {{key: app/s{c:02}}}\n"
        ));
    }
    text
}

#[tokio::test]
async fn eso_v2_and_courier_write_the_same_secrets_from_moto_with_fewer_calls_for_courier() {
    let moto = Moto::start().await;
    moto.python(&format!(
        "for c in range({CES}): sm.create_secret(Name=f'app/s{{c:02}}', SecretString=json.dumps({{'value': f'v-{{c}}', 'n': c, 'obj': {{'x' : 1.50}}}}))"
    ));
    let eso = eso_tool(&["controller", "aws"]);
    let source = eso_tool(&["source"]);

    let plane = tokio::task::spawn_blocking(ControlPlane::start_private)
        .await
        .unwrap();
    let client = client_of(&plane).await;
    install_crds_from(
        &client,
        &std::path::Path::new(&source).join("config/crds/bases"),
    )
    .await;
    let namespaces = Api::<Namespace>::all(client.clone());
    let mut world = String::new();
    for n in 0..=NAMESPACES {
        let (name, labels) = if n == NAMESPACES {
            ("central".to_owned(), serde_json::json!({}))
        } else {
            (
                format!("team-{n:02}"),
                serde_json::json!({"secrets/aws": "true"}),
            )
        };
        let namespace: Namespace = serde_json::from_value(
            serde_json::json!({"metadata": {"name": name, "labels": labels}}),
        )
        .unwrap();
        namespaces
            .create(&PostParams::default(), &namespace)
            .await
            .unwrap();
        world.push_str(&format!(
            "apiVersion: v1\nkind: Namespace\nmetadata: {{name: {name}, labels: {labels}}}\n---\n"
        ));
    }
    let credentials: Secret = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "aws-credentials", "namespace": "central"},
        "stringData": {"id": "AKIDESOTEST", "secret": "eso-test-secret"}
    }))
    .unwrap();
    Api::<Secret>::namespaced(client.clone(), "central")
        .create(&PostParams::default(), &credentials)
        .await
        .unwrap();
    world.push_str("apiVersion: v1\nkind: Secret\nmetadata: {name: aws-credentials, namespace: central}\nstringData: {id: AKIDESOTEST, secret: eso-test-secret}\n---\n");

    // ESO: its first sync of the 100 targets.
    moto.start_recording().await;
    let state = tempfile::tempdir().unwrap();
    let log = state.path().join("eso.log");
    let mut controller = Command::new(repo_root().join("testenv/watchdog.sh"))
        .arg(std::process::id().to_string())
        .arg(&log)
        .arg("--")
        .arg(&eso)
        .args([
            "--metrics-addr",
            &format!("127.0.0.1:{}", free_port()),
            "--live-addr",
            &format!("127.0.0.1:{}", free_port()),
            "--loglevel",
            "error",
            "--enable-push-secret-reconciler=false",
            "--enable-cluster-push-secret-reconciler=false",
        ])
        .env("KUBECONFIG", &plane.kubeconfig)
        .env("AWS_SECRETSMANAGER_ENDPOINT", &moto.address)
        .env("AWS_STS_ENDPOINT", &moto.address)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    for document in serde_saphyr::from_multiple::<serde_json::Value>(&manifests()).unwrap() {
        let kind = document["kind"].as_str().unwrap().to_owned();
        let resource = ApiResource {
            group: "external-secrets.io".into(),
            version: "v1".into(),
            api_version: "external-secrets.io/v1".into(),
            plural: format!("{}s", kind.to_lowercase()),
            kind,
        };
        let object: DynamicObject = serde_json::from_value(document).unwrap();
        Api::<DynamicObject>::all_with(client.clone(), &resource)
            .create(&PostParams::default(), &object)
            .await
            .unwrap();
    }
    let secrets = Api::<Secret>::all(client.clone());
    let started = Instant::now();
    let eso_data: Data = loop {
        let listed = secrets.list(&ListParams::default()).await.unwrap();
        let data: Data = listed
            .items
            .into_iter()
            .filter(|s| {
                s.metadata
                    .name
                    .as_deref()
                    .is_some_and(|n| n.starts_with("shared-"))
            })
            .map(|s| {
                (
                    (s.metadata.namespace.unwrap(), s.metadata.name.unwrap()),
                    s.data
                        .unwrap_or_default()
                        .into_iter()
                        .map(|(k, v)| (k, v.0))
                        .collect(),
                )
            })
            .collect();
        if data.len() == NAMESPACES * CES {
            break data;
        }
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "ESO wrote {} of {} targets; its log: {}",
            data.len(),
            NAMESPACES * CES,
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let eso_first_sync = moto.operations();
    // Its refreshes: every ExternalSecret every 20 s, over 50 s (two rounds).
    moto.start_recording().await;
    tokio::time::sleep(Duration::from_secs(50)).await;
    let eso_refreshes = moto.operations();
    let _ = Command::new("kill")
        .args(["-TERM", &controller.id().to_string()])
        .status();
    let _ = controller.wait();

    // courier: the same manifests, the same moto.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("world.yaml"), world + &manifests()).unwrap();
    moto.start_recording().await;
    let output = Command::new(env!("CARGO_BIN_EXE_courier"))
        .args(["render", dir.path().to_str().unwrap()])
        .env("AWS_SECRETSMANAGER_ENDPOINT", &moto.address)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stderr}");
    let courier_sync = moto.operations();
    let documents: Vec<serde_json::Value> =
        serde_saphyr::from_multiple(std::str::from_utf8(&output.stdout).unwrap()).unwrap();
    let courier_data: Data = documents
        .into_iter()
        .map(|d| {
            use base64::Engine as _;
            (
                (
                    d["metadata"]["namespace"].as_str().unwrap().to_owned(),
                    d["metadata"]["name"].as_str().unwrap().to_owned(),
                ),
                d["data"]
                    .as_object()
                    .unwrap()
                    .iter()
                    .map(|(k, v)| {
                        (
                            k.clone(),
                            base64::engine::general_purpose::STANDARD
                                .decode(v.as_str().unwrap())
                                .unwrap(),
                        )
                    })
                    .collect(),
            )
        })
        .collect();
    assert_eq!(courier_data, eso_data, "the same Secrets");

    let count = |operations: &[String], operation: &str| {
        operations
            .iter()
            .filter(|o| o.ends_with(&format!(".{operation}")))
            .count()
    };
    eprintln!(
        "aws calls for {NAMESPACES} namespaces x {CES} ClusterExternalSecrets over {CES} secrets, first sync: ESO v2.9 {} ({} GetSecretValue), courier {} ({} BatchGetSecretValue)",
        eso_first_sync.len(),
        count(&eso_first_sync, "GetSecretValue"),
        courier_sync.len(),
        count(&courier_sync, "BatchGetSecretValue"),
    );
    eprintln!(
        "ESO v2.9 over 50 s of 20 s refreshes: {} calls ({} GetSecretValue)",
        eso_refreshes.len(),
        count(&eso_refreshes, "GetSecretValue")
    );
    assert_eq!(courier_sync, ["secretsmanager.BatchGetSecretValue"]);
    assert!(
        count(&eso_first_sync, "GetSecretValue") >= NAMESPACES * CES,
        "ESO reads each secret once per ExternalSecret: {eso_first_sync:?}"
    );
    assert!(
        count(&eso_refreshes, "GetSecretValue") >= NAMESPACES * CES,
        "each refresh reads again, per ExternalSecret: {eso_refreshes:?}"
    );
}
