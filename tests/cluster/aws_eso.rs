//! The same AWS manifests through ESO v2.9's controller (built with its `aws` tag by
//! testenv/eso-v2.sh, on a control plane of its own, pointed at moto through ESO's
//! `AWS_SECRETSMANAGER_ENDPOINT`) and through courier: identical Secrets, and the calls
//! each made, counted from moto's own request recording.

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::{Api, ApiResource, DynamicObject, ListParams, PostParams};

use crate::eso::{Supervision, eso_v2, start_eso};
use crate::moto::Moto;
use crate::support::{ControlPlane, client_of, install_crds_from};

const NAMESPACES: usize = 10;
const CES: usize = 10;

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

type Data = BTreeMap<(String, String), BTreeMap<String, Vec<u8>>>;

fn manifests() -> String {
    manifests_refreshing(CES, "20s")
}

/// The ClusterSecretStore and `ces` ClusterExternalSecrets, each reading `app/sNN` by
/// property and by `extract`, refreshed every `refresh`.
fn manifests_refreshing(ces: usize, refresh: &str) -> String {
    let mut text = "apiVersion: external-secrets.io/v1\nkind: ClusterSecretStore\nmetadata: {name: aws}\nspec:\n  provider:\n    aws:\n      service: SecretsManager\n      region: eu-west-1\n      auth: {secretRef: {accessKeyIDSecretRef: {name: aws-credentials, key: id, namespace: central}, secretAccessKeySecretRef: {name: aws-credentials, key: secret, namespace: central}}}\n".to_owned();
    for c in 0..ces {
        text.push_str(&format!(
            "---\napiVersion: external-secrets.io/v1\nkind: ClusterExternalSecret\nmetadata: {{name: shared-{c:02}}}\nspec:\n  namespaceSelectors:\n  - matchLabels: {{secrets/aws: \"true\"}}\n  externalSecretSpec:\n    refreshInterval: {refresh}\n    secretStoreRef: {{kind: ClusterSecretStore, name: aws}}\n    target: {{name: shared-{c:02}}}\n    data:\n    - {{secretKey: password, remoteRef: {{key: app/s{c:02}, property: value}}}}\n    dataFrom:\n    - extract: {{key: app/s{c:02}}}\n"
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
    let eso = eso_v2(&["controller", "aws"]);
    let source = eso_v2(&["source"]);

    let plane = tokio::task::spawn_blocking(ControlPlane::start_private)
        .await
        .unwrap();
    let client = client_of(&plane).await;
    install_crds_from(&client, &source.join("config/crds/bases")).await;
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
    let mut controller = spawn_eso(&eso, &plane.kubeconfig, &moto, &log, 1);
    create_eso_objects(&client, &manifests()).await;
    let started = Instant::now();
    let eso_data: Data = loop {
        let data = shared_targets(&client).await;
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
    let courier_data = rendered_data(&output.stdout);
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

/// Creates `namespaces` labelled namespaces `team-NNNN`, the unlabelled `central` and its
/// `aws-credentials` Secret.
async fn set_up_namespaces(client: &kube::Client, namespaces: usize) {
    let api = Api::<Namespace>::all(client.clone());
    for n in 0..=namespaces {
        let namespace: Namespace = serde_json::from_value(if n == namespaces {
            serde_json::json!({"metadata": {"name": "central"}})
        } else {
            serde_json::json!({"metadata": {"name": format!("team-{n:04}"), "labels": {"secrets/aws": "true"}}})
        })
        .unwrap();
        api.create(&PostParams::default(), &namespace)
            .await
            .unwrap();
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
}

/// Creates every ESO object of `manifests` in the cluster.
async fn create_eso_objects(client: &kube::Client, manifests: &str) {
    for document in serde_saphyr::from_multiple::<serde_json::Value>(manifests).unwrap() {
        let kind = document["kind"].as_str().unwrap().to_owned();
        let resource = ApiResource {
            group: "external-secrets.io".into(),
            version: "v1".into(),
            api_version: "external-secrets.io/v1".into(),
            plural: format!("{}s", kind.to_lowercase()),
            kind,
        };
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

/// The data of every `shared-*` Secret in the cluster.
async fn shared_targets(client: &kube::Client) -> Data {
    let listed = Api::<Secret>::all(client.clone())
        .list(&ListParams::default())
        .await
        .unwrap();
    listed
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
        .collect()
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The issue's scale, run by hand (BENCHMARKS.md, "AWS"): 1,000 namespaces x 10
/// ClusterExternalSecrets over 10 secrets, through ESO v2.9's controller and through
/// `courier run`, each on its own control plane and its own moto, at the same time. First
/// sync, then refreshes at a shorter refreshInterval for a measured window; every figure
/// is moto's own request recording.
///
/// COURIER_AWS_BENCH_NAMESPACES (1000), COURIER_AWS_BENCH_REFRESH_SECONDS (300),
/// COURIER_AWS_BENCH_WINDOW_SECONDS (2 x refresh), COURIER_AWS_BENCH_ESO_CONCURRENT (4).
#[tokio::test]
#[ignore = "the issue's scale takes about half an hour: run by hand for BENCHMARKS.md"]
async fn aws_calls_at_scale_eso_v2_beside_courier_run() {
    let namespaces: usize = env_or("COURIER_AWS_BENCH_NAMESPACES", 1000);
    let refresh: u64 = env_or("COURIER_AWS_BENCH_REFRESH_SECONDS", 300);
    let window: u64 = env_or("COURIER_AWS_BENCH_WINDOW_SECONDS", 2 * refresh);
    let concurrent: usize = env_or("COURIER_AWS_BENCH_ESO_CONCURRENT", 4);
    let targets = namespaces * CES;
    let manifests = manifests_refreshing(CES, &format!("{refresh}s"));
    let seed = format!(
        "for c in range({CES}): sm.create_secret(Name=f'app/s{{c:02}}', SecretString=json.dumps({{'value': f'v-{{c}}', 'n': c, 'obj': {{'x' : 1.50}}}}))"
    );
    let (eso_moto, courier_moto) = (Moto::start().await, Moto::start().await);
    eso_moto.python(&seed);
    courier_moto.python(&seed);
    let eso = eso_v2(&["controller", "aws"]);
    let source = eso_v2(&["source"]);
    let eso_plane = tokio::task::spawn_blocking(ControlPlane::start_private)
        .await
        .unwrap();
    let courier_plane = tokio::task::spawn_blocking(ControlPlane::start_private)
        .await
        .unwrap();
    let (eso_client, courier_client) =
        (client_of(&eso_plane).await, client_of(&courier_plane).await);
    install_crds_from(&eso_client, &source.join("config/crds/bases")).await;
    set_up_namespaces(&eso_client, namespaces).await;
    set_up_namespaces(&courier_client, namespaces).await;

    eso_moto.start_recording().await;
    courier_moto.start_recording().await;
    let state = tempfile::tempdir().unwrap();
    let eso_log = state.path().join("eso.log");
    let mut controller = spawn_eso(&eso, &eso_plane.kubeconfig, &eso_moto, &eso_log, concurrent);
    let started = Instant::now();
    create_eso_objects(&eso_client, &manifests).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("aws.yaml"), &manifests).unwrap();
    let courier_log = std::fs::File::create(state.path().join("courier.log")).unwrap();
    let mut courier = Command::new(env!("CARGO_BIN_EXE_courier"))
        .args(["run", dir.path().to_str().unwrap()])
        .args(["--kubeconfig", courier_plane.kubeconfig.to_str().unwrap()])
        .args(["--refresh", "1h"])
        .args(["--metrics-addr", &format!("127.0.0.1:{}", free_port())])
        .env_remove("KUBECONFIG")
        .env("AWS_SECRETSMANAGER_ENDPOINT", &courier_moto.address)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(courier_log)
        .spawn()
        .unwrap();

    let (mut eso_synced, mut courier_synced) = (None, None);
    while eso_synced.is_none() || courier_synced.is_none() {
        if courier_synced.is_none() && shared_targets(&courier_client).await.len() == targets {
            courier_synced = Some((started.elapsed(), courier_moto.operations()));
            eprintln!(
                "courier: first sync of {targets} targets in {:?}",
                started.elapsed()
            );
        }
        if eso_synced.is_none() && shared_targets(&eso_client).await.len() == targets {
            eso_synced = Some((started.elapsed(), eso_moto.operations()));
            eprintln!(
                "ESO: first sync of {targets} targets in {:?}",
                started.elapsed()
            );
        }
        assert!(
            started.elapsed() < Duration::from_secs(3600),
            "first sync not done within an hour (ESO {}, courier {})",
            eso_synced.is_some(),
            courier_synced.is_some()
        );
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    let (eso_sync_time, eso_first) = eso_synced.unwrap();
    let (courier_sync_time, courier_first) = courier_synced.unwrap();
    assert_eq!(
        shared_targets(&courier_client).await,
        shared_targets(&eso_client).await,
        "the same Secrets"
    );

    // The refreshes: both record over the same window.
    eso_moto.start_recording().await;
    courier_moto.start_recording().await;
    tokio::time::sleep(Duration::from_secs(window)).await;
    let eso_refreshes = eso_moto.operations();
    let courier_refreshes = courier_moto.operations();
    for child in [&mut controller, &mut courier] {
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let _ = child.wait();
    }

    let summary = |operations: &[String]| {
        let mut counts = BTreeMap::<&str, usize>::new();
        for o in operations {
            *counts.entry(o.as_str()).or_default() += 1;
        }
        format!("{} calls {counts:?}", operations.len())
    };
    let cycles = window as f64 / refresh as f64;
    let per_interval = |calls: usize| calls as f64 * refresh as f64 / window as f64;
    eprintln!(
        "AWS BENCH {namespaces} namespaces x {CES} ClusterExternalSecrets over {CES} secrets ({targets} targets), refreshInterval {refresh}s, window {window}s ({cycles:.2} refresh intervals), ESO --concurrent {concurrent}"
    );
    eprintln!(
        "AWS BENCH first sync: ESO v2.9 {} in {eso_sync_time:?}; courier {} in {courier_sync_time:?}",
        summary(&eso_first),
        summary(&courier_first)
    );
    eprintln!(
        "AWS BENCH refresh window: ESO v2.9 {}; courier {}",
        summary(&eso_refreshes),
        summary(&courier_refreshes)
    );
    eprintln!(
        "AWS BENCH calls per refreshInterval (window / cycles), i.e. per hour at refreshInterval 1h: ESO v2.9 {:.0}, courier {:.1}",
        per_interval(eso_refreshes.len()),
        per_interval(courier_refreshes.len())
    );
    assert!(
        eso_first.len() >= targets,
        "ESO reads once per ExternalSecret"
    );
    assert!(
        courier_first.len() * 10 < eso_first.len(),
        "courier reads the {CES} secrets in batches: {}",
        summary(&courier_first)
    );
}

/// ESO's controller with the endpoints of `moto` (Secrets Manager, SSM and STS).
pub(crate) fn spawn_eso(
    eso: &std::path::Path,
    kubeconfig: &std::path::Path,
    moto: &Moto,
    log: &std::path::Path,
    concurrent: usize,
) -> std::process::Child {
    start_eso(
        eso,
        kubeconfig,
        log,
        &[
            "--loglevel",
            "error",
            "--concurrent",
            &concurrent.to_string(),
            "--enable-push-secret-reconciler=false",
            "--enable-cluster-push-secret-reconciler=false",
        ],
        &[
            ("AWS_SECRETSMANAGER_ENDPOINT", &moto.address),
            ("AWS_SSM_ENDPOINT", &moto.address),
            ("AWS_STS_ENDPOINT", &moto.address),
        ],
        Supervision::Watchdog,
    )
}

/// Parameter Store through both: plain String, SecureString, StringList, properties
/// (dotted and nested), a parameter version, `metadataPolicy: Fetch` (tags, and one tag
/// by property), `decodingStrategy`, `extract`, `find` by name (default path `/`), by
/// name under a path, by tags, by tags under a path, and a store `prefix` (which ESO
/// applies to keys, not to finds).
const PARAMETER_STORE_ESO: &[(&str, &str)] = &[
    (
        "plain",
        "data:\n    - {secretKey: user, remoteRef: {key: /app/db/user}}\n    - {secretKey: password, remoteRef: {key: /app/db/password}}\n    - {secretKey: hosts, remoteRef: {key: /app/hosts}}\n    - {secretKey: host, remoteRef: {key: /app/config, property: db.host}}\n    - {secretKey: dotted, remoteRef: {key: /app/config, property: a.b}}\n    - {secretKey: port, remoteRef: {key: /app/config, property: db.port}}\n    - {secretKey: old, remoteRef: {key: /app/rotated, version: \"1\"}}\n    - {secretKey: new, remoteRef: {key: /app/rotated}}\n    - {secretKey: decoded, remoteRef: {key: /app/encoded, decodingStrategy: Base64}}\n",
    ),
    (
        "tags",
        "data:\n    - {secretKey: tags, remoteRef: {key: /app/db/user, metadataPolicy: Fetch}}\n    - {secretKey: team, remoteRef: {key: /app/db/password, metadataPolicy: Fetch, property: team}}\n    - {secretKey: oldtags, remoteRef: {key: /app/rotated, version: \"1\", metadataPolicy: Fetch}}\n",
    ),
    ("extract", "dataFrom:\n    - extract: {key: /app/config}\n"),
    (
        "find-name",
        "dataFrom:\n    - find: {name: {regexp: ^/app/db/}}\n",
    ),
    (
        "find-path",
        "dataFrom:\n    - find: {path: /app, name: {regexp: o}}\n",
    ),
    ("find-tags", "dataFrom:\n    - find: {tags: {team: blue}}\n"),
    (
        "find-tags-path",
        "dataFrom:\n    - find: {path: /app/db, tags: {team: blue}}\n",
    ),
    (
        "prefixed",
        "data:\n    - {secretKey: user, remoteRef: {key: db/user}}\n  dataFrom:\n    - find: {name: {regexp: user$}}\n",
    ),
];

fn parameter_store_manifests() -> String {
    let mut text = String::new();
    for (name, prefix) in [("ssm", ""), ("ssm-prefixed", "prefix: /app/\n      ")] {
        text.push_str(&format!("apiVersion: external-secrets.io/v1\nkind: ClusterSecretStore\nmetadata: {{name: {name}}}\nspec:\n  provider:\n    aws:\n      service: ParameterStore\n      region: eu-west-1\n      {prefix}auth: {{secretRef: {{accessKeyIDSecretRef: {{name: aws-credentials, key: id, namespace: central}}, secretAccessKeySecretRef: {{name: aws-credentials, key: secret, namespace: central}}}}}}\n---\n"));
    }
    for (name, spec) in PARAMETER_STORE_ESO {
        let store = if *name == "prefixed" {
            "ssm-prefixed"
        } else {
            "ssm"
        };
        text.push_str(&format!("apiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {{name: shared-{name}, namespace: team-0000}}\nspec:\n  refreshInterval: 1h\n  secretStoreRef: {{kind: ClusterSecretStore, name: {store}}}\n  target: {{name: shared-{name}}}\n  {spec}---\n"));
    }
    text
}

#[tokio::test]
async fn eso_v2_and_courier_write_the_same_secrets_from_parameter_store() {
    let moto = Moto::start().await;
    moto.python(
        r#"
ssm.put_parameter(Name="/app/db/user", Value="admin", Type="String", Tags=[{"Key": "team", "Value": "blue"}, {"Key": "tier", "Value": "db"}])
ssm.put_parameter(Name="/app/db/password", Value="s3cr&t<>", Type="SecureString", Tags=[{"Key": "team", "Value": "blue"}])
ssm.put_parameter(Name="/app/hosts", Value="a,b,c", Type="StringList")
ssm.put_parameter(Name="/app/config", Value=json.dumps({"db": {"host": "db.local", "port": 5432}, "a.b": "dotted", "n": 1.50, "flag": True, "list": [1, "x"]}), Type="String", Tags=[{"Key": "team", "Value": "red"}])
ssm.put_parameter(Name="/app/rotated", Value="first", Type="SecureString", Tags=[{"Key": "v", "Value": "1"}])
ssm.put_parameter(Name="/app/rotated", Value="second", Type="SecureString", Overwrite=True)
ssm.put_parameter(Name="/app/encoded", Value="aGVsbG8gd29ybGQ=", Type="String")
ssm.put_parameter(Name="/other/user", Value="elsewhere", Type="String", Tags=[{"Key": "team", "Value": "blue"}])
"#,
    );
    let eso = eso_v2(&["controller", "aws"]);
    let source = eso_v2(&["source"]);
    let plane = tokio::task::spawn_blocking(ControlPlane::start_private)
        .await
        .unwrap();
    let client = client_of(&plane).await;
    install_crds_from(&client, &source.join("config/crds/bases")).await;
    set_up_namespaces(&client, 1).await;
    let manifests = parameter_store_manifests();

    moto.start_recording().await;
    let state = tempfile::tempdir().unwrap();
    let log = state.path().join("eso.log");
    let mut controller = spawn_eso(&eso, &plane.kubeconfig, &moto, &log, 1);
    create_eso_objects(&client, &manifests).await;
    let started = Instant::now();
    let eso_data = loop {
        let data = shared_targets(&client).await;
        if data.len() == PARAMETER_STORE_ESO.len() {
            break data;
        }
        assert!(
            started.elapsed() < Duration::from_secs(180),
            "ESO wrote {:?} of {} targets; its log: {}",
            data.keys().collect::<Vec<_>>(),
            PARAMETER_STORE_ESO.len(),
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let eso_calls = moto.operations();
    let _ = Command::new("kill")
        .args(["-TERM", &controller.id().to_string()])
        .status();
    let _ = controller.wait();

    let dir = tempfile::tempdir().unwrap();
    let world = "apiVersion: v1\nkind: Namespace\nmetadata: {name: team-0000, labels: {secrets/aws: \"true\"}}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: central}\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: aws-credentials, namespace: central}\nstringData: {id: AKIDESOTEST, secret: eso-test-secret}\n---\n";
    std::fs::write(dir.path().join("world.yaml"), format!("{world}{manifests}")).unwrap();
    moto.start_recording().await;
    let output = Command::new(env!("CARGO_BIN_EXE_courier"))
        .args(["render", dir.path().to_str().unwrap()])
        .env("AWS_SSM_ENDPOINT", &moto.address)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let courier_calls = moto.operations();
    let courier_data = rendered_data(&output.stdout);
    // Keys only in the messages: the differing keys, never a value.
    let differing: Vec<String> = eso_data
        .iter()
        .flat_map(|((namespace, name), eso)| {
            let courier = courier_data.get(&(namespace.clone(), name.clone()));
            let keys: BTreeSet<&String> = eso
                .keys()
                .chain(courier.into_iter().flat_map(|c| c.keys()))
                .collect();
            keys.into_iter()
                .filter(|k| courier.and_then(|c| c.get(*k)) != eso.get(*k))
                .map(|k| format!("{namespace}/{name}: {k}"))
                .collect::<Vec<_>>()
        })
        .collect();
    assert!(
        differing.is_empty(),
        "courier differs from ESO at {differing:?}"
    );
    assert_eq!(courier_data.len(), eso_data.len());
    for ((_, name), data) in &eso_data {
        eprintln!("{name}: keys {:?}", data.keys().collect::<Vec<_>>());
    }
    eprintln!(
        "Parameter Store, {} ExternalSecrets: ESO v2.9 {} calls {:?}; courier {} calls {:?}",
        PARAMETER_STORE_ESO.len(),
        eso_calls.len(),
        eso_calls,
        courier_calls.len(),
        courier_calls
    );
}

/// The data of every Secret `courier render` printed.
fn rendered_data(stdout: &[u8]) -> Data {
    use base64::Engine as _;
    let documents: Vec<serde_json::Value> =
        serde_saphyr::from_multiple(std::str::from_utf8(stdout).unwrap()).unwrap();
    documents
        .into_iter()
        .map(|d| {
            (
                (
                    d["metadata"]["namespace"].as_str().unwrap().to_owned(),
                    d["metadata"]["name"].as_str().unwrap().to_owned(),
                ),
                d["data"]
                    .as_object()
                    .into_iter()
                    .flatten()
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
        .collect()
}
