//! AWS identity against the real API server and a real moto: `auth.jwt` requests a
//! ServiceAccount token (TokenRequest) and exchanges it with STS
//! AssumeRoleWithWebIdentity for the role its `eks.amazonaws.com/role-arn` annotation
//! names (ESO's IRSA); a namespaced SecretStore without `auth` is refused even when
//! courier has ambient AWS credentials.

use std::process::{Command, Stdio};

use base64::Engine as _;
use k8s_openapi::api::core::v1::{Secret, ServiceAccount};
use kube::api::{Api, PostParams};
use serde_json::json;

use crate::apply::Platform;
use crate::moto::Moto;
use crate::support::control_plane;

/// `courier apply` with moto as every AWS endpoint, and `env` on top.
fn apply(platform: &Platform, moto: &Moto, env: &[(&str, &str)]) -> (i32, String) {
    let kubeconfig = control_plane().kubeconfig.to_str().unwrap().to_owned();
    let mut command = Command::new(env!("CARGO_BIN_EXE_courier"));
    command
        .args([
            "apply",
            platform.manifests.path().to_str().unwrap(),
            "--kubeconfig",
            &kubeconfig,
            "--instance",
            &format!("aws-{}", platform.id),
        ])
        .env_remove("KUBECONFIG")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_WEB_IDENTITY_TOKEN_FILE")
        .env("AWS_SECRETSMANAGER_ENDPOINT", &moto.address)
        .env("AWS_SSM_ENDPOINT", &moto.address)
        .env("AWS_STS_ENDPOINT", &moto.address);
    for (name, value) in env {
        command.env(name, value);
    }
    let output = command.output().unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(!stderr.contains("panicked"), "{stderr}");
    (output.status.code().unwrap_or(-1), stderr)
}

#[tokio::test]
async fn jwt_auth_exchanges_a_service_account_token_from_the_api_server_with_sts() {
    let moto = Moto::start().await;
    moto.python(
        "sm.create_secret(Name='platform/db', SecretString=json.dumps({'password': 'irsa-value'}))",
    );
    moto.start_recording().await;
    let platform = Platform::new("awsjwt").await;
    let target = platform.target("awsjwt-t", true).await;
    let central = platform.central.name.clone();
    let account: ServiceAccount = serde_json::from_value(json!({"metadata": {
        "name": "courier-aws",
        "annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/irsa"}
    }}))
    .unwrap();
    Api::<ServiceAccount>::namespaced(platform.client.clone(), &central)
        .create(&PostParams::default(), &account)
        .await
        .unwrap();
    std::fs::write(
        platform.manifests.path().join("manifests.yaml"),
        format!(
            "apiVersion: external-secrets.io/v1\nkind: ClusterSecretStore\nmetadata: {{name: aws-jwt-{id}}}\nspec:\n  provider:\n    aws:\n      service: SecretsManager\n      region: eu-west-1\n      auth:\n        jwt:\n          serviceAccountRef: {{name: courier-aws, namespace: {central}, audiences: [courier-test]}}\n---\napiVersion: external-secrets.io/v1\nkind: ClusterExternalSecret\nmetadata: {{name: db-{id}}}\nspec:\n  namespaceSelectors: [{{matchLabels: {{{label}: \"true\"}}}}]\n  externalSecretSpec:\n    secretStoreRef: {{kind: ClusterSecretStore, name: aws-jwt-{id}}}\n    target: {{name: db}}\n    data: [{{secretKey: password, remoteRef: {{key: platform/db, property: password}}}}]\n",
            id = platform.id,
            label = platform.label
        ),
    )
    .unwrap();
    let (code, stderr) = apply(&platform, &moto, &[]);
    assert_eq!(code, 0, "{stderr}");
    platform
        .assert_value(&target.name, "db", "password", Some("irsa-value"))
        .await;
    // STS received a token the API server issued for that ServiceAccount, for STS's
    // audience (and the extra one), and courier then read with the role's credentials.
    let token = moto
        .web_identity_tokens()
        .pop()
        .expect("an AssumeRoleWithWebIdentity");
    let claims: serde_json::Value = serde_json::from_slice(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(token.split('.').nth(1).unwrap())
            .unwrap(),
    )
    .unwrap();
    assert_eq!(
        claims["sub"],
        format!("system:serviceaccount:{central}:courier-aws")
    );
    assert_eq!(claims["aud"], json!(["sts.amazonaws.com", "courier-test"]));
    assert_eq!(
        moto.operations(),
        [
            "AssumeRoleWithWebIdentity",
            "secretsmanager.BatchGetSecretValue"
        ]
    );
    assert!(
        !stderr.contains(&token) && !stderr.contains("irsa-value"),
        "{stderr}"
    );

    // Without the role annotation: a clear error naming the ServiceAccount.
    let mut account = Api::<ServiceAccount>::namespaced(platform.client.clone(), &central)
        .get("courier-aws")
        .await
        .unwrap();
    account.metadata.annotations = None;
    Api::<ServiceAccount>::namespaced(platform.client.clone(), &central)
        .replace("courier-aws", &PostParams::default(), &account)
        .await
        .unwrap();
    let (code, stderr) = apply(&platform, &moto, &[]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "auth.jwt.serviceAccountRef: ServiceAccount {central}/courier-aws has no eks.amazonaws.com/role-arn annotation"
        )),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_namespaced_store_without_auth_is_refused_despite_ambient_credentials() {
    let moto = Moto::start().await;
    moto.python("sm.create_secret(Name='platform/db', SecretString='ambient-value')");
    let platform = Platform::new("awsamb").await;
    let target = platform.target("awsamb-t", false).await;
    std::fs::write(
        platform.manifests.path().join("manifests.yaml"),
        format!(
            "apiVersion: external-secrets.io/v1\nkind: SecretStore\nmetadata: {{name: aws, namespace: {ns}}}\nspec:\n  provider:\n    aws: {{service: SecretsManager, region: eu-west-1}}\n---\napiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {{name: db, namespace: {ns}}}\nspec:\n  secretStoreRef: {{kind: SecretStore, name: aws}}\n  target: {{name: db}}\n  data: [{{secretKey: password, remoteRef: {{key: platform/db}}}}]\n",
            ns = target.name
        ),
    )
    .unwrap();
    let ambient = [
        ("AWS_ACCESS_KEY_ID", "AKIDAMBIENT"),
        ("AWS_SECRET_ACCESS_KEY", "ambient-secret"),
    ];
    let (code, stderr) = apply(&platform, &moto, &ambient);
    assert_ne!(code, 0, "{stderr}");
    assert!(
        stderr.contains(&format!(
            "SecretStore/{}/aws names no auth: a namespaced SecretStore would read with courier's own AWS credentials",
            target.name
        )),
        "{stderr}"
    );
    platform
        .assert_value(&target.name, "db", "password", None)
        .await;

    // The operator's explicit opt-in lets it read with courier's credentials.
    let (code, stderr) = apply(
        &platform,
        &moto,
        &[
            ambient[0],
            ambient[1],
            ("COURIER_AWS_AMBIENT_CREDENTIALS", "true"),
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    platform
        .assert_value(&target.name, "db", "password", Some("ambient-value"))
        .await;
}

/// `courier run` keeps STS sessions across reconciles: with a store that assumes a role
/// (externalID, sessionTags, transitiveTagKeys) and one that exchanges a ServiceAccount
/// token, several reconciles make one AssumeRole and one AssumeRoleWithWebIdentity,
/// and AssumeRole carries the options in ESO's form.
#[tokio::test]
async fn run_keeps_sts_sessions_across_reconciles() {
    let moto = Moto::start().await;
    let (key_id, secret_key) = moto.iam_user();
    moto.python(
        "sm.create_secret(Name='platform/db', SecretString=json.dumps({'password': 'sts-value'}))",
    );
    let platform = Platform::new("awssts").await;
    let target = platform.target("awssts-t", true).await;
    let central = platform.central.name.clone();
    let account: ServiceAccount = serde_json::from_value(json!({"metadata": {
        "name": "courier-aws",
        "annotations": {"eks.amazonaws.com/role-arn": "arn:aws:iam::123456789012:role/reader"}
    }}))
    .unwrap();
    Api::<ServiceAccount>::namespaced(platform.client.clone(), &central)
        .create(&PostParams::default(), &account)
        .await
        .unwrap();
    let credentials: Secret = serde_json::from_value(json!({
        "metadata": {"name": "aws-keys"},
        "stringData": {"id": key_id, "secret": secret_key}
    }))
    .unwrap();
    Api::<Secret>::namespaced(platform.client.clone(), &central)
        .create(&PostParams::default(), &credentials)
        .await
        .unwrap();
    let id = &platform.id;
    let label = &platform.label;
    let mut manifests = format!(
        "apiVersion: external-secrets.io/v1\nkind: ClusterSecretStore\nmetadata: {{name: aws-role-{id}}}\nspec:\n  provider:\n    aws:\n      service: SecretsManager\n      region: eu-west-1\n      role: arn:aws:iam::123456789012:role/reader\n      externalID: ext-1\n      sessionTags: [{{key: team, value: blue}}, {{key: env, value: test}}]\n      transitiveTagKeys: [team]\n      auth: {{secretRef: {{accessKeyIDSecretRef: {{name: aws-keys, key: id, namespace: {central}}}, secretAccessKeySecretRef: {{name: aws-keys, key: secret, namespace: {central}}}}}}}\n---\napiVersion: external-secrets.io/v1\nkind: ClusterSecretStore\nmetadata: {{name: aws-bare-{id}}}\nspec:\n  provider:\n    aws:\n      service: SecretsManager\n      region: eu-west-1\n      role: arn:aws:iam::123456789012:role/reader\n      transitiveTagKeys: [team]\n      auth: {{secretRef: {{accessKeyIDSecretRef: {{name: aws-keys, key: id, namespace: {central}}}, secretAccessKeySecretRef: {{name: aws-keys, key: secret, namespace: {central}}}}}}}\n---\napiVersion: external-secrets.io/v1\nkind: ClusterSecretStore\nmetadata: {{name: aws-jwt-{id}}}\nspec:\n  provider:\n    aws:\n      service: SecretsManager\n      region: eu-west-1\n      auth:\n        jwt:\n          serviceAccountRef: {{name: courier-aws, namespace: {central}}}\n"
    );
    for store in ["role", "bare", "jwt"] {
        manifests.push_str(&format!(
            "---\napiVersion: external-secrets.io/v1\nkind: ClusterExternalSecret\nmetadata: {{name: {store}-{id}}}\nspec:\n  namespaceSelectors: [{{matchLabels: {{{label}: \"true\"}}}}]\n  externalSecretSpec:\n    refreshInterval: 5s\n    secretStoreRef: {{kind: ClusterSecretStore, name: aws-{store}-{id}}}\n    target: {{name: db-{store}}}\n    data: [{{secretKey: password, remoteRef: {{key: platform/db, property: password}}}}]\n"
        ));
    }
    std::fs::write(platform.manifests.path().join("manifests.yaml"), manifests).unwrap();
    moto.start_recording().await;
    let kubeconfig = control_plane().kubeconfig.to_str().unwrap().to_owned();
    let child = Command::new(env!("CARGO_BIN_EXE_courier"))
        .args(["run", platform.manifests.path().to_str().unwrap()])
        .args([
            "--kubeconfig",
            &kubeconfig,
            "--instance",
            &format!("aws-{id}"),
        ])
        .args(["--refresh", "1h", "--metrics-addr", "127.0.0.1:0"])
        .env_remove("KUBECONFIG")
        .env_remove("AWS_ACCESS_KEY_ID")
        .env_remove("AWS_SECRET_ACCESS_KEY")
        .env_remove("AWS_WEB_IDENTITY_TOKEN_FILE")
        .env("AWS_SECRETSMANAGER_ENDPOINT", &moto.address)
        .env("AWS_STS_ENDPOINT", &moto.address)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Reconciles every 5 s (±10 %): wait for four rounds of reads.
    let started = std::time::Instant::now();
    while moto.count("BatchGetSecretValue") < 12 {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(90),
            "courier run made only {:?}",
            moto.operations()
        );
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    for store in ["role", "bare", "jwt"] {
        platform
            .assert_value_because(
                &target.name,
                &format!("db-{store}"),
                "password",
                Some("sts-value"),
                &stderr,
            )
            .await;
    }
    let operations = moto.operations();
    assert_eq!(moto.count("AssumeRole"), 2, "one per store: {operations:?}");
    assert_eq!(moto.count("AssumeRoleWithWebIdentity"), 1, "{operations:?}");
    // ESO's form: ExternalId, the tags, and the transitive keys; without sessionTags an
    // empty tag list (`Tags=`) and the transitive keys all the same.
    let mut bodies: Vec<Vec<(String, String)>> = moto
        .form_bodies("AssumeRole")
        .into_iter()
        .map(|body| {
            body.into_iter()
                .filter(|(k, _)| k != "RoleSessionName")
                .collect()
        })
        .collect();
    bodies.sort();
    let expected = |fields: &[(&str, &str)]| -> Vec<(String, String)> {
        let mut all = vec![
            ("Action", "AssumeRole"),
            ("Version", "2011-06-15"),
            ("RoleArn", "arn:aws:iam::123456789012:role/reader"),
        ];
        all.extend_from_slice(fields);
        all.into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    };
    let mut wanted = vec![
        expected(&[
            ("ExternalId", "ext-1"),
            ("Tags.member.1.Key", "team"),
            ("Tags.member.1.Value", "blue"),
            ("Tags.member.2.Key", "env"),
            ("Tags.member.2.Value", "test"),
            ("TransitiveTagKeys.member.1", "team"),
        ]),
        expected(&[("Tags", ""), ("TransitiveTagKeys.member.1", "team")]),
    ];
    wanted.sort();
    assert_eq!(bodies, wanted);
    assert!(!stderr.contains(&secret_key) && !stderr.contains("sts-value"));
}
