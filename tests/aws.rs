//! The AWS provider against a real moto server (started by the tests, signatures and IAM
//! permissions checked): Secrets Manager and Parameter Store, every `spec.provider.aws`
//! and `remoteRef` field courier reads, each value read once however many targets use
//! it, in batches, counted from moto's own request recording; clear errors without
//! secrets; the ambient-credential rule for namespaced SecretStores.

#[path = "common/moto.rs"]
mod moto;

use std::process::Command;

use base64::Engine as _;
use moto::Moto;

const V1: &str = "00000000-0000-0000-0000-000000000001";
const V2: &str = "00000000-0000-0000-0000-000000000002";

const SEED: &str = r#"
db = {"username": "app", "password": "sm-secret-value", "port": 5432, "nested": {"a" : 1.50}, "dotted.key": "dv"}
sm.create_secret(Name="app/db", SecretString=json.dumps({"username": "old", "password": "old-value"}), ClientRequestToken="V1",
                 Tags=[{"Key": "team", "Value": "a&b"}, {"Key": "env", "Value": "prod"}])
sm.put_secret_value(SecretId="app/db", SecretString=json.dumps(db), ClientRequestToken="V2")
sm.create_secret(Name="app/bin", SecretBinary=bytes([0, 1, 254, 255]))
sm.create_secret(Name="app/b64", SecretString="aGVsbG8gd29ybGQ=")
sm.create_secret(Name="team/alpha", SecretString="alpha-value", Tags=[{"Key": "found", "Value": "yes"}])
sm.create_secret(Name="team/beta", SecretString="beta-value")
sm.create_secret(Name="other/gamma", SecretString="gamma-value", Tags=[{"Key": "found", "Value": "yes"}])
ssm.put_parameter(Name="/app/plain", Value="plain-value", Type="String", Tags=[{"Key": "owner", "Value": "ops"}])
ssm.put_parameter(Name="/app/secure", Value="secure-v1", Type="SecureString")
ssm.put_parameter(Name="/app/secure", Value="secure-v2", Type="SecureString", Overwrite=True)
ssm.put_parameter(Name="/app/json", Value=json.dumps({"user": "u", "pass": "ps-secret-value", "n": 7}), Type="SecureString")
ssm.put_parameter(Name="/other/tagged", Value="tagged-value", Type="String", Tags=[{"Key": "found", "Value": "yes"}])
"#;

fn render(dir: &std::path::Path, env: &[(&str, &str)]) -> (i32, String, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_courier"));
    command
        .args([
            "render",
            dir.to_str().unwrap(),
            "--log-level",
            "courier=info",
        ])
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_WEB_IDENTITY_TOKEN_FILE")
        .env_remove("AWS_ENDPOINT_URL");
    for (name, value) in env {
        command.env(name, value);
    }
    let output = command.output().unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

fn endpoints(moto: &Moto) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_SECRETSMANAGER_ENDPOINT", moto.address.clone()),
        ("AWS_SSM_ENDPOINT", moto.address.clone()),
        ("AWS_STS_ENDPOINT", moto.address.clone()),
    ]
}

fn borrowed<'a>(env: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    env.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

/// Every key of the Secret in `namespace`, base64-decoded.
fn values(stdout: &str, namespace: &str) -> std::collections::BTreeMap<String, Vec<u8>> {
    let documents: Vec<serde_json::Value> = serde_saphyr::from_multiple(stdout).unwrap();
    let secret = documents
        .into_iter()
        .find(|d| d["metadata"]["namespace"] == namespace)
        .unwrap_or_else(|| panic!("a Secret in {namespace}: {stdout}"));
    secret["data"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| {
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(v.as_str().unwrap())
                .unwrap();
            (k.clone(), bytes)
        })
        .collect()
}

fn text(values: &std::collections::BTreeMap<String, Vec<u8>>, key: &str) -> String {
    String::from_utf8(
        values
            .get(key)
            .unwrap_or_else(|| panic!("key {key} in {values:?}"))
            .clone(),
    )
    .unwrap()
}

fn header(credentials: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Namespace\nmetadata: {{name: a}}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {{name: b}}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {{name: c}}\n---\napiVersion: v1\nkind: Secret\nmetadata: {{name: aws-credentials, namespace: courier}}\nstringData: {credentials}\n---\n"
    )
}

const SECRET_REF: &str = "{secretRef: {accessKeyIDSecretRef: {name: aws-credentials, key: id, namespace: courier}, secretAccessKeySecretRef: {name: aws-credentials, key: secret, namespace: courier}}}";

fn store(name: &str, service: &str, extra: &str) -> String {
    format!(
        "apiVersion: external-secrets.io/v1\nkind: ClusterSecretStore\nmetadata: {{name: {name}}}\nspec:\n  provider:\n    aws:\n      service: {service}\n      region: eu-west-1\n      auth: {SECRET_REF}\n{extra}---\n"
    )
}

fn cluster_external_secret(name: &str, store: &str, spec: &str) -> String {
    format!(
        "apiVersion: external-secrets.io/v1\nkind: ClusterExternalSecret\nmetadata: {{name: {name}}}\nspec:\n  namespaces: [a, b, c]\n  externalSecretSpec:\n    secretStoreRef: {{kind: ClusterSecretStore, name: {store}}}\n    target: {{name: {name}}}\n{spec}---\n"
    )
}

const SM_SPEC: &str = "    data:
    - {secretKey: password, remoteRef: {key: db, property: password}}
    - {secretKey: port, remoteRef: {key: db, property: port}}
    - {secretKey: nested, remoteRef: {key: db, property: nested}}
    - {secretKey: nested-a, remoteRef: {key: db, property: nested.a}}
    - {secretKey: dotted, remoteRef: {key: db, property: dotted.key}}
    - {secretKey: whole-old, remoteRef: {key: db, version: uuid/V1}}
    - {secretKey: previous, remoteRef: {key: db, version: AWSPREVIOUS, property: password}}
    - {secretKey: tags, remoteRef: {key: db, metadataPolicy: Fetch}}
    - {secretKey: team-tag, remoteRef: {key: db, metadataPolicy: Fetch, property: team}}
    - {secretKey: binary, remoteRef: {key: bin}}
    - {secretKey: decoded, remoteRef: {key: b64, decodingStrategy: Base64}}
    dataFrom:
    - extract: {key: db}
    - find: {name: {regexp: '^team/'}}
    - find: {tags: {found: 'yes'}}
";

const PS_SPEC: &str = "    data:
    - {secretKey: plain, remoteRef: {key: /app/plain}}
    - {secretKey: secure, remoteRef: {key: /app/secure}}
    - {secretKey: secure-v1, remoteRef: {key: /app/secure, version: '1'}}
    - {secretKey: pass, remoteRef: {key: /app/json, property: pass}}
    - {secretKey: owner, remoteRef: {key: /app/plain, metadataPolicy: Fetch, property: owner}}
    dataFrom:
    - extract: {key: /app/json}
    - find: {path: /app, name: {regexp: 'plain|secure'}}
    - find: {tags: {found: 'yes'}}
";

async fn seeded() -> (Moto, String, String) {
    let moto = Moto::start().await;
    let (id, secret) = moto.iam_user();
    moto.python(
        &SEED
            .replace("\"V1\"", &format!("{V1:?}"))
            .replace("\"V2\"", &format!("{V2:?}")),
    );
    moto.enforce_auth().await;
    moto.start_recording().await;
    (moto, id, secret)
}

#[tokio::test]
async fn secrets_manager_and_parameter_store_with_every_field_read_each_value_once() {
    let (moto, id, secret) = seeded().await;
    let dir = tempfile::tempdir().unwrap();
    let role = "      role: arn:aws:iam::123456789012:role/reader\n      externalID: courier-ext-id\n      sessionTags: [{key: team, value: platform}]\n      transitiveTagKeys: [team]\n      prefix: app/\n";
    let world = header(&format!("{{id: {id}, secret: {secret}}}"))
        + &store("sm", "SecretsManager", role)
        + &store("ps", "ParameterStore", "")
        + &cluster_external_secret(
            "from-sm",
            "sm",
            &SM_SPEC.replace("uuid/V1", &format!("uuid/{V1}")),
        )
        + &cluster_external_secret("from-ps", "ps", PS_SPEC);
    std::fs::write(dir.path().join("world.yaml"), world).unwrap();
    let env = endpoints(&moto);
    let (code, stdout, stderr) = render(dir.path(), &borrowed(&env));
    assert_eq!(code, 0, "{stderr}");

    let documents: Vec<serde_json::Value> = serde_saphyr::from_multiple(&stdout).unwrap();
    for namespace in ["a", "b", "c"] {
        let sm: Vec<&serde_json::Value> = documents
            .iter()
            .filter(|d| d["metadata"]["namespace"] == namespace)
            .collect();
        assert_eq!(sm.len(), 2, "two Secrets in {namespace}");
    }
    let sm_values = |namespace: &str| {
        let docs: String = stdout
            .split("\n---\n")
            .filter(|d| d.contains("name: from-sm"))
            .collect::<Vec<_>>()
            .join("\n---\n");
        values(&docs, namespace)
    };
    for namespace in ["a", "b", "c"] {
        let data = sm_values(namespace);
        assert_eq!(text(&data, "password"), "sm-secret-value");
        assert_eq!(text(&data, "port"), "5432");
        assert_eq!(text(&data, "nested"), r#"{"a": 1.5}"#, "raw JSON, as gjson");
        assert_eq!(text(&data, "nested-a"), "1.5", "Go's float formatting");
        assert_eq!(text(&data, "dotted"), "dv", "a key with a dot");
        assert_eq!(
            text(&data, "whole-old"),
            r#"{"username": "old", "password": "old-value"}"#,
            "version uuid/..."
        );
        assert_eq!(text(&data, "previous"), "old-value", "version stage");
        assert_eq!(
            text(&data, "tags"),
            r#"{"env":"prod","team":"a\u0026b"}"#,
            "metadataPolicy Fetch: tags as Go marshals them"
        );
        assert_eq!(text(&data, "team-tag"), "a&b");
        assert_eq!(data["binary"], vec![0, 1, 254, 255], "binary secret");
        assert_eq!(text(&data, "decoded"), "hello world", "decodingStrategy");
        assert_eq!(text(&data, "username"), "app", "dataFrom.extract");
        assert_eq!(text(&data, "team_alpha"), "alpha-value", "find by name");
        assert_eq!(text(&data, "team_beta"), "beta-value");
        assert_eq!(text(&data, "other_gamma"), "gamma-value", "find by tags");
    }
    let ps_values = |namespace: &str| {
        let docs: String = stdout
            .split("\n---\n")
            .filter(|d| d.contains("name: from-ps"))
            .collect::<Vec<_>>()
            .join("\n---\n");
        values(&docs, namespace)
    };
    for namespace in ["a", "b", "c"] {
        let data = ps_values(namespace);
        assert_eq!(text(&data, "plain"), "plain-value");
        assert_eq!(text(&data, "secure"), "secure-v2", "SecureString decrypted");
        assert_eq!(text(&data, "secure-v1"), "secure-v1", "parameter version");
        assert_eq!(text(&data, "pass"), "ps-secret-value");
        assert_eq!(text(&data, "owner"), "ops", "metadataPolicy Fetch");
        assert_eq!(text(&data, "user"), "u", "dataFrom.extract");
        assert_eq!(text(&data, "n"), "7");
        assert_eq!(
            text(&data, "_app_plain"),
            "plain-value",
            "find by path and name"
        );
        assert_eq!(text(&data, "_app_secure"), "secure-v2");
        assert!(!data.contains_key("_app_json"), "not matched by the name");
        assert_eq!(text(&data, "_other_tagged"), "tagged-value", "find by tags");
    }

    // Three namespaces, one read each: moto's own request log.
    let operations = moto.operations();
    let count = |operation: &str| moto.count(operation);
    assert_eq!(count("AssumeRole"), 1, "{operations:?}");
    assert_eq!(count("ListSecrets"), 2, "one per find: {operations:?}");
    assert_eq!(
        count("BatchGetSecretValue"),
        1,
        "db, b64, bin and the 3 found, one batch: {operations:?}"
    );
    assert_eq!(
        count("GetSecretValue"),
        2,
        "the two older versions: {operations:?}"
    );
    assert_eq!(count("DescribeSecret"), 1, "tags of db: {operations:?}");
    assert_eq!(count("GetParametersByPath"), 1, "{operations:?}");
    assert_eq!(count("DescribeParameters"), 1, "{operations:?}");
    assert_eq!(count("GetParameters"), 1, "{operations:?}");
    assert_eq!(count("GetParameter"), 1, "/app/secure:1: {operations:?}");
    assert_eq!(count("ListTagsForResource"), 1, "{operations:?}");
    assert_eq!(operations.len(), 12, "{operations:?}");

    for leaked in [
        "sm-secret-value",
        "ps-secret-value",
        "secure-v2",
        secret.as_str(),
        id.as_str(),
    ] {
        assert!(!stderr.contains(leaked), "{stderr}");
    }
}

#[tokio::test]
async fn reads_are_batched_twenty_and_ten_per_call() {
    let (moto, id, secret) = seeded().await;
    // Seeding again needs the auth moto now enforces: sign with the user's key.
    moto.python(&format!(
        "sm = boto3.client('secretsmanager', endpoint_url=ep, region_name='eu-west-1', aws_access_key_id={id:?}, aws_secret_access_key={secret:?})\n\
ssm = boto3.client('ssm', endpoint_url=ep, region_name='eu-west-1', aws_access_key_id={id:?}, aws_secret_access_key={secret:?})\n\
for i in range(45): sm.create_secret(Name=f'bulk/{{i:02}}', SecretString=f'value-{{i}}')\n\
for i in range(25): ssm.put_parameter(Name=f'/bulk/{{i:02}}', Value=f'value-{{i}}', Type='SecureString')\n"
    ));
    moto.start_recording().await;
    let sm_data: String = (0..45)
        .map(|i| format!("    - {{secretKey: k{i:02}, remoteRef: {{key: bulk/{i:02}}}}}\n"))
        .collect();
    let ps_data: String = (0..25)
        .map(|i| format!("    - {{secretKey: k{i:02}, remoteRef: {{key: /bulk/{i:02}}}}}\n"))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let world = header(&format!("{{id: {id}, secret: {secret}}}"))
        + &store("sm", "SecretsManager", "")
        + &store("ps", "ParameterStore", "")
        + &cluster_external_secret("from-sm", "sm", &format!("    data:\n{sm_data}"))
        + &cluster_external_secret("from-ps", "ps", &format!("    data:\n{ps_data}"));
    std::fs::write(dir.path().join("world.yaml"), world).unwrap();
    let env = endpoints(&moto);
    let (code, stdout, stderr) = render(dir.path(), &borrowed(&env));
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("k44"), "{stdout}");
    let operations = moto.operations();
    assert_eq!(
        moto.count("BatchGetSecretValue"),
        3,
        "45 secrets: {operations:?}"
    );
    assert_eq!(
        moto.count("GetParameters"),
        3,
        "25 parameters: {operations:?}"
    );
    assert_eq!(
        operations.len(),
        6,
        "nothing else, for 3 namespaces: {operations:?}"
    );
}

#[tokio::test]
async fn a_wrong_secret_key_is_refused_by_the_signature_check_with_a_clear_error() {
    let (moto, id, secret) = seeded().await;
    let dir = tempfile::tempdir().unwrap();
    let wrong = "wrongwrongwrongwrongwrongwrongwrongwrong";
    let world = header(&format!("{{id: {id}, secret: {wrong}}}"))
        + &store("sm", "SecretsManager", "")
        + &cluster_external_secret(
            "from-sm",
            "sm",
            "    data:\n    - {secretKey: p, remoteRef: {key: app/db, property: password}}\n",
        );
    std::fs::write(dir.path().join("world.yaml"), world).unwrap();
    let env = endpoints(&moto);
    let (code, stdout, stderr) = render(dir.path(), &borrowed(&env));
    assert_eq!(code, 1, "{stderr}");
    assert_eq!(stdout, "");
    assert!(
        stderr.contains(
            "ClusterSecretStore/sm: SecretsManager BatchGetSecretValue [app/db]: SignatureDoesNotMatch (403)"
        ),
        "{stderr}"
    );
    assert!(
        stderr.contains("hint: AWS refused the credentials"),
        "{stderr}"
    );
    for leaked in [wrong, secret.as_str(), id.as_str(), "Signature="] {
        assert!(!stderr.contains(leaked), "{leaked}: {stderr}");
    }

    // A missing secret: AWS's code, the key, never a value.
    let world = header(&format!("{{id: {id}, secret: {secret}}}"))
        + &store("sm", "SecretsManager", "")
        + &cluster_external_secret(
            "from-sm",
            "sm",
            "    data:\n    - {secretKey: p, remoteRef: {key: app/missing}}\n    - {secretKey: q, remoteRef: {key: app/db, property: nope}}\n",
        );
    std::fs::write(dir.path().join("world.yaml"), world).unwrap();
    let (code, _, stderr) = render(dir.path(), &borrowed(&env));
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("ClusterSecretStore/sm: SecretsManager BatchGetSecretValue app/missing: ResourceNotFoundException"),
        "{stderr}"
    );
    assert!(!stderr.contains("sm-secret-value"), "{stderr}");
}

#[tokio::test]
async fn ambient_credentials_serve_cluster_stores_but_not_namespaced_ones_unless_allowed() {
    let (moto, id, secret) = seeded().await;
    let dir = tempfile::tempdir().unwrap();
    let ambient_store = |kind: &str, namespace: &str| {
        format!(
            "apiVersion: external-secrets.io/v1\nkind: {kind}\nmetadata: {{name: ambient{namespace}}}\nspec:\n  provider:\n    aws: {{service: SecretsManager, region: eu-west-1}}\n---\n"
        )
    };
    let spec = "    data:\n    - {secretKey: p, remoteRef: {key: app/db, property: password}}\n";
    let mut env = endpoints(&moto);
    env.push(("AWS_ACCESS_KEY_ID", id.clone()));
    env.push(("AWS_SECRET_ACCESS_KEY", secret.clone()));

    let world = header("{}")
        + &ambient_store("ClusterSecretStore", "")
        + &cluster_external_secret("from-sm", "ambient", spec);
    std::fs::write(dir.path().join("world.yaml"), &world).unwrap();
    let (code, stdout, stderr) = render(dir.path(), &borrowed(&env));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(text(&values(&stdout, "a"), "p"), "sm-secret-value");

    let world = header("{}")
        + &ambient_store("SecretStore", ", namespace: a")
        + "apiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {name: es, namespace: a}\nspec:\n  secretStoreRef: {kind: SecretStore, name: ambient}\n  data:\n  - {secretKey: p, remoteRef: {key: app/db, property: password}}\n";
    std::fs::write(dir.path().join("world.yaml"), &world).unwrap();
    let (code, _, stderr) = render(dir.path(), &borrowed(&env));
    assert_ne!(code, 0, "{stderr}");
    assert!(
        stderr.contains("SecretStore/a/ambient names no auth: a namespaced SecretStore would read with courier's own AWS credentials"),
        "{stderr}"
    );
    assert!(stderr.contains("--aws-ambient-credentials"), "{stderr}");

    let mut allowed = env.clone();
    allowed.push(("COURIER_AWS_AMBIENT_CREDENTIALS", "true".to_owned()));
    let (code, stdout, stderr) = render(dir.path(), &borrowed(&allowed));
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(text(&values(&stdout, "a"), "p"), "sm-secret-value");
}

/// A stand-in for Secrets Manager that answers `failures` with throttling, 429 and 503
/// before it serves `BatchGetSecretValue`; returns its address and its request count.
async fn flaky_endpoint(
    failures: usize,
) -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let count = std::sync::Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    let app = axum::Router::new().fallback(move || {
        let seen = seen.clone();
        async move {
            let n = seen.fetch_add(1, Ordering::SeqCst);
            let json = [("content-type", "application/x-amz-json-1.1")];
            if n < failures {
                let (status, body) = match n % 3 {
                    0 => (400, r#"{"__type":"ThrottlingException","message":"Rate exceeded"}"#),
                    1 => (429, r#"{"__type":"TooManyRequestsException"}"#),
                    _ => (503, r#"{"__type":"ServiceUnavailable"}"#),
                };
                return (axum::http::StatusCode::from_u16(status).unwrap(), json, body.to_owned());
            }
            let body = r#"{"SecretValues":[{"Name":"app/db","SecretString":"after-retries"}],"Errors":[]}"#;
            (axum::http::StatusCode::OK, json, body.to_owned())
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (address, count)
}

#[tokio::test(flavor = "multi_thread")]
async fn throttling_429_and_503_are_retried_with_backoff_then_reported() {
    let dir = tempfile::tempdir().unwrap();
    let world = header("{id: AKIDFAKE, secret: fake}")
        + &store("sm", "SecretsManager", "")
        + &cluster_external_secret(
            "from-sm",
            "sm",
            "    data:\n    - {secretKey: p, remoteRef: {key: app/db}}\n",
        );
    std::fs::write(dir.path().join("world.yaml"), world).unwrap();

    let (address, count) = flaky_endpoint(3).await;
    let path = dir.path().to_owned();
    let (code, stdout, stderr) = tokio::task::spawn_blocking(move || {
        render(&path, &[("AWS_SECRETSMANAGER_ENDPOINT", address.as_str())])
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(text(&values(&stdout, "a"), "p"), "after-retries");
    assert_eq!(
        count.load(std::sync::atomic::Ordering::SeqCst),
        4,
        "3 refusals, then served"
    );

    let (address, count) = flaky_endpoint(usize::MAX).await;
    let path = dir.path().to_owned();
    let (code, _, stderr) = tokio::task::spawn_blocking(move || {
        render(&path, &[("AWS_SECRETSMANAGER_ENDPOINT", address.as_str())])
    })
    .await
    .unwrap();
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("ClusterSecretStore/sm: SecretsManager BatchGetSecretValue [app/db]: ThrottlingException (400)"),
        "{stderr}"
    );
    assert_eq!(
        count.load(std::sync::atomic::Ordering::SeqCst),
        4,
        "4 attempts, no more"
    );
}

#[tokio::test]
async fn referent_credentials_make_one_identity_per_namespace() {
    let (moto, id, secret) = seeded().await;
    let dir = tempfile::tempdir().unwrap();
    // No namespace on the references: each ExternalSecret's own namespace holds the keys
    // (ESO's referent auth), so each namespace is a store identity of its own.
    let referent = "{secretRef: {accessKeyIDSecretRef: {name: aws-credentials, key: id}, secretAccessKeySecretRef: {name: aws-credentials, key: secret}}}";
    let mut world = header("{}");
    for namespace in ["a", "b", "c"] {
        world.push_str(&format!(
            "apiVersion: v1\nkind: Secret\nmetadata: {{name: aws-credentials, namespace: {namespace}}}\nstringData: {{id: {id}, secret: {secret}}}\n---\n"
        ));
    }
    world.push_str(&store("sm", "SecretsManager", "").replace(SECRET_REF, referent));
    world.push_str(&cluster_external_secret(
        "from-sm",
        "sm",
        "    data:\n    - {secretKey: p, remoteRef: {key: app/db, property: password}}\n    - {secretKey: b, remoteRef: {key: app/bin}}\n",
    ));
    std::fs::write(dir.path().join("world.yaml"), world).unwrap();
    let env = endpoints(&moto);
    let (code, stdout, stderr) = render(dir.path(), &borrowed(&env));
    assert_eq!(code, 0, "{stderr}");
    for namespace in ["a", "b", "c"] {
        assert_eq!(text(&values(&stdout, namespace), "p"), "sm-secret-value");
    }
    assert_eq!(
        moto.operations(),
        ["secretsmanager.BatchGetSecretValue"; 3],
        "one batch per namespace's identity"
    );

    // A namespace whose keys are wrong fails alone, named.
    let world = std::fs::read_to_string(dir.path().join("world.yaml"))
        .unwrap()
        .replacen(
            &format!("namespace: c}}\nstringData: {{id: {id}, secret: {secret}}}"),
            &format!("namespace: c}}\nstringData: {{id: {id}, secret: wrong}}"),
            1,
        );
    std::fs::write(dir.path().join("world.yaml"), world).unwrap();
    let (code, _, stderr) = render(dir.path(), &borrowed(&env));
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(
            "ClusterSecretStore/sm (for namespace c): SecretsManager BatchGetSecretValue"
        ),
        "{stderr}"
    );
    assert!(!stderr.contains("(for namespace a)"), "{stderr}");
}

/// A stand-in for EC2's instance metadata service, IMDSv2 only: a token by PUT, then the
/// role name and the role's credentials by GET with that token (401 without). Returns
/// its address and what it was asked, in order (method, path, which header came).
async fn metadata_service(
    credentials: serde_json::Value,
) -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use axum::http::{HeaderMap, Method, StatusCode, Uri};
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    let app = axum::Router::new().fallback(move |method: Method, uri: Uri, headers: HeaderMap| {
        let log = log.clone();
        let credentials = credentials.clone();
        async move {
            let header = |name: &str| {
                headers
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            };
            let path = uri.path().to_owned();
            let ttl = header("x-aws-ec2-metadata-token-ttl-seconds");
            let token = header("x-aws-ec2-metadata-token");
            log.lock().unwrap().push(format!(
                "{method} {path} ttl={} token={}",
                ttl.as_deref().unwrap_or("-"),
                token.as_deref() == Some("imds-session-1")
            ));
            if method == Method::PUT && path == "/latest/api/token" && ttl.is_some() {
                return (StatusCode::OK, "imds-session-1".to_owned());
            }
            if token.as_deref() != Some("imds-session-1") {
                return (StatusCode::UNAUTHORIZED, String::new());
            }
            match path.as_str() {
                "/latest/meta-data/iam/security-credentials/" => {
                    (StatusCode::OK, "courier-node\n".to_owned())
                }
                "/latest/meta-data/iam/security-credentials/courier-node" => {
                    (StatusCode::OK, credentials.to_string())
                }
                _ => (StatusCode::NOT_FOUND, String::new()),
            }
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (address, seen)
}

#[tokio::test(flavor = "multi_thread")]
async fn instance_metadata_credentials_by_imdsv2_only_where_ambient_credentials_are_allowed() {
    let (moto, id, secret) = seeded().await;
    // What an instance profile gives: a role's session credentials from STS.
    let session = moto.python(&format!(
        "sts = boto3.client('sts', **{{**kw, 'aws_access_key_id': {id:?}, 'aws_secret_access_key': {secret:?}}})\nc = sts.assume_role(RoleArn='arn:aws:iam::123456789012:role/reader', RoleSessionName='node')['Credentials']\nprint(json.dumps({{'Code': 'Success', 'Type': 'AWS-HMAC', 'AccessKeyId': c['AccessKeyId'], 'SecretAccessKey': c['SecretAccessKey'], 'Token': c['SessionToken'], 'Expiration': c['Expiration'].strftime('%Y-%m-%dT%H:%M:%SZ'), 'LastUpdated': '2026-01-01T00:00:00Z'}}))"
    ));
    let credentials: serde_json::Value = serde_json::from_str(session.trim()).unwrap();
    let (address, seen) = metadata_service(credentials.clone()).await;
    let mut env = endpoints(&moto);
    env.push(("AWS_EC2_METADATA_SERVICE_ENDPOINT", address));
    let dir = tempfile::tempdir().unwrap();
    let spec = "    data:\n    - {secretKey: p, remoteRef: {key: app/db, property: password}}\n";
    let cluster_store = "apiVersion: external-secrets.io/v1\nkind: ClusterSecretStore\nmetadata: {name: node}\nspec:\n  provider:\n    aws: {service: SecretsManager, region: eu-west-1}\n---\n";
    std::fs::write(
        dir.path().join("world.yaml"),
        header("{}") + cluster_store + &cluster_external_secret("from-sm", "node", spec),
    )
    .unwrap();
    let run = |env: Vec<(&'static str, String)>, path: std::path::PathBuf| {
        tokio::task::spawn_blocking(move || render(&path, &borrowed(&env)))
    };
    let (code, stdout, stderr) = run(env.clone(), dir.path().to_owned()).await.unwrap();
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(text(&values(&stdout, "a"), "p"), "sm-secret-value");
    let imdsv2 = [
        "PUT /latest/api/token ttl=21600 token=false",
        "GET /latest/meta-data/iam/security-credentials/ ttl=- token=true",
        "GET /latest/meta-data/iam/security-credentials/courier-node ttl=- token=true",
    ];
    assert_eq!(*seen.lock().unwrap(), imdsv2);
    for value in ["AccessKeyId", "SecretAccessKey", "Token"] {
        assert!(
            !stderr.contains(credentials[value].as_str().unwrap()),
            "{stderr}"
        );
    }
    assert!(!stderr.contains("imds-session-1"), "{stderr}");

    // A namespaced SecretStore without auth: refused before any metadata request.
    seen.lock().unwrap().clear();
    std::fs::write(
        dir.path().join("world.yaml"),
        header("{}")
            + "apiVersion: external-secrets.io/v1\nkind: SecretStore\nmetadata: {name: node, namespace: a}\nspec:\n  provider:\n    aws: {service: SecretsManager, region: eu-west-1}\n---\napiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {name: es, namespace: a}\nspec:\n  secretStoreRef: {kind: SecretStore, name: node}\n  data:\n  - {secretKey: p, remoteRef: {key: app/db, property: password}}\n",
    )
    .unwrap();
    let (code, _, stderr) = run(env.clone(), dir.path().to_owned()).await.unwrap();
    assert_ne!(code, 0, "{stderr}");
    assert!(
        stderr.contains("SecretStore/a/node names no auth"),
        "{stderr}"
    );
    assert!(
        seen.lock().unwrap().is_empty(),
        "{:?}",
        seen.lock().unwrap()
    );

    // Allowed by the operator: served from instance metadata.
    let mut allowed = env.clone();
    allowed.push(("COURIER_AWS_AMBIENT_CREDENTIALS", "true".to_owned()));
    let (code, stdout, stderr) = run(allowed, dir.path().to_owned()).await.unwrap();
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(text(&values(&stdout, "a"), "p"), "sm-secret-value");
    assert_eq!(*seen.lock().unwrap(), imdsv2);

    // Turned off: a clear error, and no metadata request.
    seen.lock().unwrap().clear();
    let mut off = env.clone();
    off.push(("AWS_EC2_METADATA_DISABLED", "true".to_owned()));
    std::fs::write(
        dir.path().join("world.yaml"),
        header("{}") + cluster_store + &cluster_external_secret("from-sm", "node", spec),
    )
    .unwrap();
    let (code, _, stderr) = run(off, dir.path().to_owned()).await.unwrap();
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains("instance metadata is off: AWS_EC2_METADATA_DISABLED"),
        "{stderr}"
    );
    assert!(seen.lock().unwrap().is_empty());
}
