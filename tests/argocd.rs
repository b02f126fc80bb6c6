//! Plays argocd-cmp-server's part (the real server is in tests/argocd_cmp_server.rs): reads the shipped plugin.yaml, runs its discover rule
//! and then its generate command exactly as declared, in a copy of an app directory, with
//! the environment Argo CD sets.

#[path = "common/files.rs"]
mod files;

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
        let mut env = ARGO_ENV.to_vec();
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
    let output = run(&generate, dir.path(), &ARGO_ENV);
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
    let empty = run(&generate, dir.path(), &ARGO_ENV);
    assert!(!empty.status.success());
    let stderr = String::from_utf8(empty.stderr).unwrap();
    assert!(stderr.contains("nothing to print"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1);

    let mut env = ARGO_ENV.to_vec();
    env.push(("ARGOCD_ENV_COURIER_ALLOW_EMPTY", "true"));
    let allowed = run(&generate, dir.path(), &env);
    assert!(
        allowed.status.success(),
        "{}",
        String::from_utf8_lossy(&allowed.stderr)
    );
    assert!(allowed.stdout.is_empty());

    let mut env = ARGO_ENV.to_vec();
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
