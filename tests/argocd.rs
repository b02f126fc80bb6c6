//! Plays argocd-cmp-server's part (the real server is in tests/argocd_cmp_server.rs): reads the shipped plugin.yaml, runs its discover rule
//! and then its generate command exactly as declared, in a copy of an app directory, with
//! the environment Argo CD sets.

#[path = "common/files.rs"]
mod files;
#[path = "common/tenant.rs"]
mod tenant;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn plugin() -> serde_json::Value {
    let text =
        std::fs::read_to_string(repo().join("charts/courier/files/argocd/plugin.yaml")).unwrap();
    serde_saphyr::from_str(&text).unwrap()
}

fn command_of(spec: &serde_json::Value) -> Vec<String> {
    spec["command"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect()
}

/// An app directory in a temp dir, as the repo-server checks it out.
fn app(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, source) in files {
        std::fs::copy(repo().join(source), dir.path().join(name)).unwrap();
    }
    dir
}

fn run(command: &[String], dir: &Path, env: &[(&str, &str)]) -> Output {
    let bin_dir = PathBuf::from(env!("CARGO_BIN_EXE_courier"))
        .parent()
        .unwrap()
        .to_owned();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut process = Command::new(&command[0]);
    process
        .args(&command[1..])
        .current_dir(dir)
        .env_clear()
        .env("PATH", path);
    for (key, value) in env {
        process.env(key, value);
    }
    process.output().unwrap()
}

const ARGO_ENV: [(&str, &str); 4] = [
    ("ARGOCD_APP_NAME", "web"),
    ("ARGOCD_APP_NAMESPACE", "team-a"),
    ("ARGOCD_APP_SOURCE_PATH", "apps/web"),
    ("ARGOCD_APP_REVISION", "0123456789abcdef"),
];

/// [`ARGO_ENV`] with the files world chosen (the plugin's default is the cluster world).
const FILES_ENV: [(&str, &str); 5] = [
    ("ARGOCD_APP_NAME", "web"),
    ("ARGOCD_APP_NAMESPACE", "team-a"),
    ("ARGOCD_APP_SOURCE_PATH", "apps/web"),
    ("ARGOCD_APP_REVISION", "0123456789abcdef"),
    ("ARGOCD_ENV_COURIER_WORLD", "files"),
];

fn full_app() -> tempfile::TempDir {
    app(&[
        ("deployment.yaml", "examples/argocd-app/deployment.yaml"),
        (
            "external-secret.yaml",
            "examples/argocd-app/external-secret.yaml",
        ),
        (
            "central.yaml",
            "examples/platform/central-secret-store.yaml",
        ),
        ("store.yaml", "examples/platform/cluster-secret-store.yaml"),
    ])
}

/// An app directory from inline files (`path`, `text`).
fn app_of(files: &[(&str, &str)]) -> tempfile::TempDir {
    files::dir_of(files)
}

/// What the discover rule prints, run with courier alone on PATH: no shell, no grep.
fn discover(dir: &Path) -> String {
    let command = command_of(&plugin()["spec"]["discover"]["find"]);
    let bin_dir = PathBuf::from(env!("CARGO_BIN_EXE_courier"))
        .parent()
        .unwrap()
        .to_owned();
    let output = Command::new(&command[0])
        .args(&command[1..])
        .current_dir(dir)
        .env_clear()
        .env("PATH", bin_dir)
        .envs(ARGO_ENV)
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    String::from_utf8(output.stdout).unwrap().trim().to_owned()
}

#[test]
fn discover_claims_apps_with_eso_objects_and_nothing_else() {
    let external_secret =
        std::fs::read_to_string(repo().join("examples/argocd-app/external-secret.yaml")).unwrap();
    let deployment =
        std::fs::read_to_string(repo().join("examples/argocd-app/deployment.yaml")).unwrap();
    assert_eq!(
        discover(full_app().path()),
        "external-secret.yaml",
        "an app with an ExternalSecret is courier's"
    );
    assert_eq!(
        discover(
            app_of(&[
                ("deploy.yaml", &deployment),
                ("nested/es.yaml", &external_secret)
            ])
            .path()
        ),
        "nested/es.yaml"
    );
    assert_eq!(
        discover(app_of(&[("deploy.yaml", &deployment)]).path()),
        "",
        "a plain app"
    );
    let mentions = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: docs}\ndata:\n  example.yaml: |\n    kind: ExternalSecret\n    apiVersion: external-secrets.io/v1\n";
    assert_eq!(
        discover(app_of(&[("docs.yaml", mentions)]).path()),
        "",
        "a ConfigMap that mentions the kind is not an ESO object"
    );
    assert_eq!(
        discover(
            app_of(&[
                ("Chart.yaml", "apiVersion: v2\nname: web\nversion: 1.0.0\n"),
                ("templates/es.yaml", &external_secret)
            ])
            .path()
        ),
        "",
        "Helm charts are Argo CD's"
    );
    assert_eq!(
        discover(
            app_of(&[
                ("kustomization.yaml", "resources: [es.yaml]\n"),
                ("es.yaml", &external_secret)
            ])
            .path()
        ),
        "",
        "Kustomize apps are Argo CD's"
    );
    assert_eq!(
        discover(
            app_of(&[(
                "broken.yaml",
                "kind: ExternalSecret\napiVersion: external-secrets.io/v1\nmetadata: [\n"
            )])
            .path()
        ),
        "broken.yaml",
        "a broken ESO manifest is still claimed, so rendering reports the error"
    );
}

#[test]
fn generate_prints_secrets_and_every_other_manifest_with_a_clean_stderr() {
    let generate = command_of(&plugin()["spec"]["generate"]);
    for parameters in [
        None,
        Some(""),
        Some("null"),
        Some(r#"[{"name":"world","string":"files"}]"#),
    ] {
        let dir = full_app();
        // The files world's namespaces: `argocd`, `default`, `kube-system` among them.
        std::fs::copy(
            repo().join("examples/platform/namespaces.yaml"),
            dir.path().join("namespaces.yaml"),
        )
        .unwrap();
        let mut env = FILES_ENV.to_vec();
        if let Some(parameters) = parameters {
            env.push(("ARGOCD_APP_PARAMETERS", parameters));
        }
        let output = run(&generate, dir.path(), &env);
        let stderr = String::from_utf8(output.stderr).unwrap();
        assert!(
            output.status.success(),
            "parameters {parameters:?}: {stderr}"
        );
        assert_eq!(stderr, "", "stderr is empty on success");
        let stdout = String::from_utf8(output.stdout).unwrap();
        let objects: Vec<serde_json::Value> = serde_saphyr::from_multiple(&stdout).unwrap();
        for object in &objects {
            assert!(
                object["apiVersion"].is_string()
                    && object["kind"].is_string()
                    && object["metadata"]["name"].is_string(),
                "{object}"
            );
            assert_ne!(
                object["apiVersion"].as_str().unwrap().split('/').next(),
                Some("external-secrets.io"),
                "ESO objects are replaced"
            );
        }
        let kinds: Vec<&str> = objects
            .iter()
            .map(|o| o["kind"].as_str().unwrap())
            .collect();
        assert_eq!(
            kinds,
            ["Deployment", "Secret"],
            "the app's own manifest and its rendered Secret; never the files world's Namespaces or master Secrets"
        );
        let deployment = objects
            .iter()
            .find(|o| o["kind"] == "Deployment")
            .expect("the Deployment passes through");
        let original: serde_json::Value = serde_saphyr::from_str(
            &std::fs::read_to_string(repo().join("examples/argocd-app/deployment.yaml")).unwrap(),
        )
        .unwrap();
        assert_eq!(deployment, &original, "passed through unchanged");
        let secret = objects
            .iter()
            .find(|o| o["kind"] == "Secret" && o["metadata"]["name"] == "web-credentials")
            .expect("the ExternalSecret's Secret");
        assert_eq!(
            secret["metadata"]["namespace"], "team-a",
            "the app namespace"
        );
        assert_eq!(
            secret["metadata"]["labels"]["courier.dev/instance"], "web",
            "the app name is the instance"
        );
        let token = secret["data"]["GITHUB_TOKEN"].as_str().unwrap();
        for object in objects.iter().filter(|o| o["kind"] != "Secret") {
            assert!(
                !object.to_string().contains(token),
                "values only ever go into Secrets"
            );
        }
    }
}

#[test]
fn errors_are_one_line_without_values_and_nothing_on_stdout() {
    let generate = command_of(&plugin()["spec"]["generate"]);
    let dir = full_app();
    std::fs::write(
        dir.path().join("broken.yaml"),
        "apiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {name: broken}\nspec:\n  secretStoreRef: {kind: ClusterSecretStore, name: central-secret-store}\n  target:\n    template:\n      data: {x: '{{ token | b64dec }}'}\n  data:\n  - {secretKey: token, remoteRef: {key: github-pat, property: token}}\n",
    )
    .unwrap();
    let output = run(&generate, dir.path(), &FILES_ENV);
    assert!(!output.status.success());
    assert!(
        output.stdout.is_empty(),
        "nothing on stdout when anything fails"
    );
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("courier: 1 error: ") && stderr.contains("ExternalSecret/team-a/broken"),
        "{stderr}"
    );
    assert!(!stderr.contains("ghp_dummy"), "{stderr}");
}

#[test]
fn empty_output_fails_unless_allowed() {
    let generate = command_of(&plugin()["spec"]["generate"]);
    let dir = app(&[("store.yaml", "examples/platform/cluster-secret-store.yaml")]);
    std::fs::write(
        dir.path().join("es.yaml"),
        "apiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {name: disabled}\nspec:\n  secretStoreRef: {kind: ClusterSecretStore, name: central-secret-store}\n  target: {creationPolicy: None}\n  dataFrom: [{extract: {key: app}}]\n",
    )
    .unwrap();
    let empty = run(&generate, dir.path(), &FILES_ENV);
    assert!(!empty.status.success());
    let stderr = String::from_utf8(empty.stderr).unwrap();
    assert!(stderr.contains("nothing to print"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1);

    let mut env = FILES_ENV.to_vec();
    env.push(("ARGOCD_ENV_COURIER_ALLOW_EMPTY", "true"));
    let allowed = run(&generate, dir.path(), &env);
    assert!(
        allowed.status.success(),
        "{}",
        String::from_utf8_lossy(&allowed.stderr)
    );
    assert!(allowed.stdout.is_empty());

    let mut env = FILES_ENV.to_vec();
    env.push((
        "ARGOCD_APP_PARAMETERS",
        r#"[{"name":"allow-empty","string":"yes"}]"#,
    ));
    let wrong = run(&generate, dir.path(), &env);
    assert!(!wrong.status.success());
    assert!(String::from_utf8_lossy(&wrong.stderr).contains("allow-empty must be true or false"));
}

#[test]
fn pipes_pass_the_apps_objects_through_but_never_the_master_secrets() {
    let stream = [
        "examples/argocd-app/deployment.yaml",
        "examples/platform/central-secret-store.yaml",
        "examples/platform/cluster-secret-store.yaml",
        "examples/argocd-app/external-secret.yaml",
    ]
    .iter()
    .map(|f| std::fs::read_to_string(repo().join(f)).unwrap())
    .collect::<Vec<_>>()
    .join("\n---\n");
    let mut child = Command::new(env!("CARGO_BIN_EXE_courier"))
        .args(["render", "--passthrough", "-n", "team-a", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::io::Write::write_all(&mut child.stdin.take().unwrap(), stream.as_bytes()).unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let objects: Vec<serde_json::Value> =
        serde_saphyr::from_multiple(std::str::from_utf8(&output.stdout).unwrap()).unwrap();
    let kinds: Vec<&str> = objects
        .iter()
        .map(|o| o["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds.first(),
        Some(&"Deployment"),
        "pass-through objects keep their input order, before the Secrets"
    );
    // The store's namespace and its master Secrets are the render's inputs: never passed
    // through, or Argo CD would own the master Secrets in every app.
    let central = |o: &&serde_json::Value| {
        o["metadata"]["namespace"] == "central-secret-store"
            || o["metadata"]["name"] == "central-secret-store"
    };
    assert!(!objects.iter().any(|o| central(&o)), "{kinds:?}");
    assert!(
        objects
            .iter()
            .any(|o| o["kind"] == "Secret" && o["metadata"]["namespace"] == "team-a"),
        "the app's rendered Secret: {kinds:?}"
    );
}

/// A kubeconfig whose API server is `listener`: any request courier makes is counted.
fn kubeconfig_at(dir: &Path, listener: &tenant::Listener) -> PathBuf {
    let path = dir.join("kubeconfig");
    std::fs::write(
        &path,
        format!(
            "apiVersion: v1\nkind: Config\nclusters: [{{name: c, cluster: {{server: \"{}\", insecure-skip-tls-verify: true}}}}]\nusers: [{{name: u, user: {{token: sidecar}}}}]\ncontexts: [{{name: c, context: {{cluster: c, user: u}}}}]\ncurrent-context: c\n",
            listener.url()
        ),
    )
    .unwrap();
    path
}

/// The plugin's generate command in the cluster world (its default) for an app of one
/// file, with the API server and the tenant's server both at `listener`.
fn generate_in_cluster_world(
    app_text: &str,
    listener: &tenant::Listener,
) -> (String, String, bool) {
    let generate = command_of(&plugin()["spec"]["generate"]);
    let dir = app_of(&[("app.yaml", app_text)]);
    let config = tempfile::tempdir().unwrap();
    let kubeconfig = kubeconfig_at(config.path(), listener);
    let mut env = ARGO_ENV.to_vec();
    env.push(("KUBECONFIG", kubeconfig.to_str().unwrap()));
    let output = run(&generate, dir.path(), &env);
    (
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
        output.status.success(),
    )
}

#[test]
fn a_tenant_app_cannot_bring_a_store_that_names_the_platform_identity() {
    let listener = tenant::Listener::start();
    let app = tenant::app_naming_the_platform_reader("central-secret-store", "external-secrets");
    let (stdout, stderr, ok) = generate_in_cluster_world(&app, &listener);
    assert!(!ok);
    assert!(stdout.is_empty(), "a Secret reached Argo CD");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("ClusterSecretStore/tenant-reader: refused: in the cluster world stores are read from the cluster, never from the app's files"),
        "{stderr}"
    );
    assert_eq!(
        listener.connections(),
        0,
        "refused before courier even reaches the API server"
    );
}

#[test]
fn a_tenant_app_cannot_send_a_platform_credential_to_its_own_server() {
    let listener = tenant::Listener::start();
    let ca = "-----BEGIN CERTIFICATE-----\nMIIBtenant\n-----END CERTIFICATE-----\n";
    let app =
        tenant::app_sending_a_token_to(&listener.url(), ca, "central-secret-store", "github-pat");
    let (stdout, stderr, ok) = generate_in_cluster_world(&app, &listener);
    assert!(!ok);
    assert!(stdout.is_empty(), "a Secret reached Argo CD");
    assert!(
        stderr.contains("ClusterSecretStore/tenant-exfil: refused: in the cluster world stores are read from the cluster"),
        "{stderr}"
    );
    assert_eq!(
        listener.connections(),
        0,
        "nothing reaches the tenant's server"
    );
}

#[test]
fn an_app_writes_only_its_own_namespace_in_the_cluster_world() {
    let listener = tenant::Listener::start();
    let elsewhere = "apiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {name: theirs, namespace: team-b}\nspec:\n  secretStoreRef: {kind: ClusterSecretStore, name: central-secret-store}\n  dataFrom: [{extract: {key: github-pat}}]\n---\napiVersion: external-secrets.io/v1\nkind: ClusterExternalSecret\nmetadata: {name: everywhere}\nspec:\n  namespaceSelectors: [{matchLabels: {}}]\n  externalSecretSpec:\n    secretStoreRef: {kind: ClusterSecretStore, name: central-secret-store}\n    dataFrom: [{extract: {key: github-pat}}]\n";
    let (stdout, stderr, ok) = generate_in_cluster_world(elsewhere, &listener);
    assert!(!ok);
    assert!(stdout.is_empty(), "a Secret reached Argo CD");
    assert!(
        stderr.contains("ExternalSecret/team-b/theirs: refused: the app writes namespace team-a (ARGOCD_APP_NAMESPACE)"),
        "{stderr}"
    );
    assert!(
        stderr.contains("ClusterExternalSecret/everywhere: refused: a ClusterExternalSecret writes into every namespace it selects"),
        "{stderr}"
    );
    assert_eq!(listener.connections(), 0);
}

/// The files world is chosen by the Application's plugin env or parameters, which a
/// tenant's repository sets too: Argo CD merges `.argocd-source.yaml` (or
/// `.argocd-source-<app>.yaml`) at the app's path into the Application's source, `plugin`
/// included. In the files world the app's own stores are used, so a tenant's
/// ClusterSecretStore for AWS without `auth` reads with the sidecar's ambient AWS
/// credentials (which the platform's own AWS ClusterSecretStores need in the cluster
/// world) a key the tenant names, into a Secret of the tenant's app: the identity is
/// chosen by a file the tenant commits. So the plugin's files world refuses any store
/// that reads over the network, before any connection. Here the sidecar's ambient
/// credentials are environment keys and AWS is a loopback listener that counts
/// connections.
#[test]
fn a_tenant_app_in_the_files_world_cannot_read_with_the_sidecars_ambient_aws_identity() {
    let aws = tenant::Listener::start();
    let app = "apiVersion: v1\nkind: Namespace\nmetadata: {name: team-a}\n---\napiVersion: external-secrets.io/v1\nkind: ClusterSecretStore\nmetadata: {name: tenant-aws}\nspec:\n  provider:\n    aws: {service: SecretsManager, region: us-east-1}\n---\napiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {name: loot}\nspec:\n  secretStoreRef: {kind: ClusterSecretStore, name: tenant-aws}\n  target: {name: loot}\n  data:\n  - secretKey: password\n    remoteRef: {key: prod/database/password}\n";
    let dir = app_of(&[
        ("app.yaml", app),
        (
            ".argocd-source.yaml",
            "plugin:\n  env:\n  - {name: COURIER_WORLD, value: files}\n",
        ),
    ]);
    let endpoint = format!("http://127.0.0.1:{}", aws.port);
    let mut env = FILES_ENV.to_vec();
    env.extend([
        ("AWS_ACCESS_KEY_ID", "AKIASIDECARROLE"),
        ("AWS_SECRET_ACCESS_KEY", "sidecar-secret-key"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("AWS_ENDPOINT_URL_SECRETS_MANAGER", endpoint.as_str()),
    ]);
    let output = run(&command_of(&plugin()["spec"]["generate"]), dir.path(), &env);
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(!output.status.success(), "{stderr}");
    assert!(output.stdout.is_empty(), "a Secret reached Argo CD");
    assert_eq!(
        aws.connections(),
        0,
        "the tenant's store read AWS with the sidecar's credentials: {stderr}"
    );
    assert!(stderr.contains("ClusterSecretStore/tenant-aws"), "{stderr}");
}

#[test]
fn the_plugin_defaults_to_the_cluster_world() {
    // No world chosen, no cluster reachable: the render goes to the cluster (the listener)
    // and fails there, where the files world would have rendered the app's own files.
    let listener = tenant::Listener::start();
    let app =
        std::fs::read_to_string(repo().join("examples/argocd-app/external-secret.yaml")).unwrap();
    let (stdout, stderr, ok) = generate_in_cluster_world(&app, &listener);
    assert!(!ok, "{stdout}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("list ClusterSecretStores"), "{stderr}");
    assert!(listener.connections() > 0);
}

#[test]
fn unknown_settings_are_errors_with_the_closest_name() {
    let generate = command_of(&plugin()["spec"]["generate"]);
    let dir = full_app();
    let mut env = FILES_ENV.to_vec();
    env.push((
        "ARGOCD_APP_PARAMETERS",
        r#"[{"name":"wrld","string":"cluster"}]"#,
    ));
    let output = run(&generate, dir.path(), &env);
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(!output.status.success());
    assert!(output.stdout.is_empty());
    assert_eq!(
        stderr.trim(),
        "courier: 1 error: ARGOCD_APP_PARAMETERS: unknown setting \"wrld\"; did you mean world? (courier's are world, allow-empty, passthrough)"
    );
    let mut env = FILES_ENV.to_vec();
    env.push(("ARGOCD_ENV_COURIER_PASTHROUGH", "false"));
    let output = run(&generate, dir.path(), &env);
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(!output.status.success());
    assert!(
        stderr.contains("ARGOCD_ENV_COURIER_PASTHROUGH: unknown setting \"pasthrough\"; did you mean passthrough?"),
        "{stderr}"
    );
}

#[test]
fn yaml_that_is_not_kubernetes_objects_is_skipped_as_argo_cd_skips_it() {
    let external_secret =
        std::fs::read_to_string(repo().join("examples/argocd-app/external-secret.yaml")).unwrap();
    let deployment =
        std::fs::read_to_string(repo().join("examples/argocd-app/deployment.yaml")).unwrap();
    let store = std::fs::read_to_string(repo().join("examples/platform/cluster-secret-store.yaml"))
        .unwrap();
    let central =
        std::fs::read_to_string(repo().join("examples/platform/central-secret-store.yaml"))
            .unwrap();
    let files = [
        ("external-secret.yaml", external_secret.as_str()),
        ("deployment.yaml", deployment.as_str()),
        ("world/store.yaml", store.as_str()),
        ("world/central.yaml", central.as_str()),
        ("values.yaml", "replicas: 2\nimage: {tag: v1}\n"),
        ("mkdocs.yml", "site_name: web\nnav:\n  - index.md\n"),
        (
            "overlay/kustomization.yaml",
            "resources: [../deployment.yaml]\n",
        ),
        (
            "overlay/kustomization.yml",
            "apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources: []\n",
        ),
    ];
    let dir = app_of(&files);
    assert_eq!(discover(dir.path()), "external-secret.yaml", "claimed");
    let generate = command_of(&plugin()["spec"]["generate"]);
    let output = run(&generate, dir.path(), &FILES_ENV);
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(output.status.success(), "{stderr}");
    assert_eq!(stderr, "");
    let objects: Vec<serde_json::Value> =
        serde_saphyr::from_multiple(std::str::from_utf8(&output.stdout).unwrap()).unwrap();
    let kinds: Vec<&str> = objects
        .iter()
        .map(|o| o["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["Deployment", "Secret"]);

    // A file that looks like a manifest but is broken is still reported, as Argo CD does.
    let broken = app_of(&[
        ("external-secret.yaml", external_secret.as_str()),
        ("world/store.yaml", store.as_str()),
        ("world/central.yaml", central.as_str()),
        (
            "configmap.yaml",
            "apiVersion: v1\nmetadata: {name: settings}\ndata: {a: b}\n# kind: forgotten\n",
        ),
    ]);
    let output = run(&generate, broken.path(), &FILES_ENV);
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(!output.status.success());
    assert!(
        stderr.contains("configmap.yaml:1: missing required field `kind`"),
        "{stderr}"
    );
}

#[test]
fn a_selector_typo_in_the_platform_app_fails_instead_of_dropping_its_secrets() {
    let generate = command_of(&plugin()["spec"]["generate"]);
    let dir = app(&[
        (
            "cluster-external-secrets.yaml",
            "examples/platform/cluster-external-secrets.yaml",
        ),
        ("namespaces.yaml", "examples/platform/namespaces.yaml"),
        (
            "central.yaml",
            "examples/platform/central-secret-store.yaml",
        ),
        ("store.yaml", "examples/platform/cluster-secret-store.yaml"),
    ]);
    // The platform app has no destination namespace: it may hold ClusterExternalSecrets.
    let env: Vec<(&str, &str)> = FILES_ENV
        .iter()
        .copied()
        .filter(|(k, _)| *k != "ARGOCD_APP_NAMESPACE")
        .collect();
    let secrets = |output: &Output| {
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter(|l| *l == "kind: Secret")
            .count()
    };
    let before = run(&generate, dir.path(), &env);
    assert!(
        before.status.success(),
        "{}",
        String::from_utf8_lossy(&before.stderr)
    );
    assert_eq!(secrets(&before), 17);

    // One label mistyped in one ClusterExternalSecret's selector: it selects no namespace.
    // `apply` keeps its targets and fails naming it; here its Secrets leave the output, and
    // Argo CD prunes what the output no longer holds.
    let path = dir.path().join("cluster-external-secrets.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let typo = text.replacen(
        "secrets/gh-docker-registry: \"true\"",
        "secrets/gh-docker-regsitry: \"true\"",
        1,
    );
    assert_ne!(typo, text);
    std::fs::write(&path, typo).unwrap();
    let after = run(&generate, dir.path(), &env);
    assert!(
        !after.status.success(),
        "exit 0 with {} of 17 Secrets: {}",
        secrets(&after),
        String::from_utf8_lossy(&after.stderr)
    );
    assert!(
        String::from_utf8_lossy(&after.stderr).contains("selects no namespace"),
        "{}",
        String::from_utf8_lossy(&after.stderr)
    );
}

#[test]
fn a_source_emptied_under_retain_fails_instead_of_dropping_its_secret() {
    let generate = command_of(&plugin()["spec"]["generate"]);
    let dir = full_app();
    let central = dir.path().join("central.yaml");
    let mut text = std::fs::read_to_string(&central).unwrap();
    // Every key of the source removed (a mistake upstream); ESO keeps the target under
    // Retain, and the live target is not in the app's files for render to print back.
    text = text.replacen(
        "  GITHUB_CLIENT_ID: Iv1.dummyclientid00\n  GITHUB_CLIENT_SECRET: dummy-client-secret-0000000000000000000000\n  GITHUB_TOKEN: ghp_dummyOauthDummyOauthDummyOauth0000\n",
        "",
        1,
    );
    std::fs::write(&central, text).unwrap();
    std::fs::write(
        dir.path().join("external-secret.yaml"),
        "apiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {name: web-credentials}\nspec:\n  secretStoreRef: {kind: ClusterSecretStore, name: central-secret-store}\n  dataFrom: [{extract: {key: github-oauth}}]\n",
    )
    .unwrap();
    let output = run(&generate, dir.path(), &FILES_ENV);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        !output.status.success() || stdout.contains("kind: Secret"),
        "exit 0 without Secret team-a/web-credentials: Argo CD prunes it\n{stdout}"
    );
}
