//! The shipped plugin.yaml under the real argocd-cmp-server (Argo CD v3.6.1, built from its
//! Go module by testenv/argocd.sh), driven the way argocd-repo-server drives it, with Argo
//! CD's own client packages (testenv/argocd/cmp-client): discovery over the plugin
//! sockets with the repository tarball, CheckPluginConfiguration,
//! GetParametersAnnouncement, GenerateManifest. The server's PATH holds courier and
//! nothing else, as the image does: no shell, no grep.
//!
//! The plugin's cluster world (its default) runs against the real kube-apiserver of
//! tests/cluster/support.rs, holding the seed platform (its namespaces, master Secrets,
//! the store's reader and the ClusterSecretStore, as cluster objects), with the server
//! authenticated as the repo-server's ServiceAccount bound by the shipped RBAC
//! (templates/argocd/plugin-rbac.yaml) and nothing else.

#[path = "common/files.rs"]
mod files;
#[path = "common/sidecar.rs"]
mod sidecar;
#[allow(dead_code)]
#[path = "cluster/support.rs"]
mod support;
#[path = "common/tenant.rs"]
mod tenant;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn tools() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let output = Command::new(repo().join("testenv/argocd.sh"))
            .output()
            .expect("testenv/argocd.sh runs");
        assert!(
            output.status.success(),
            "testenv/argocd.sh failed (it needs Go and the module proxy): {}",
            String::from_utf8_lossy(&output.stderr)
        );
        PathBuf::from(String::from_utf8(output.stdout).unwrap().trim())
    })
}

/// One argocd-cmp-server with the shipped plugin.yaml, stopped when dropped.
struct Server {
    child: Child,
    sockets: PathBuf,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start() -> Server {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config");
        let sockets = dir.path().join("plugins");
        let bin = dir.path().join("bin");
        let tmp = dir.path().join("tmp");
        for path in [&config, &sockets, &bin, &tmp] {
            std::fs::create_dir_all(path).unwrap();
        }
        std::fs::copy(
            repo().join("charts/courier/files/argocd/plugin.yaml"),
            config.join("plugin.yaml"),
        )
        .unwrap();
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_courier"), bin.join("courier")).unwrap();
        let child = Command::new(tools().join("cmp-server"))
            .args(["--config-dir-path", config.to_str().unwrap()])
            .env_clear()
            .env("PATH", &bin)
            .env("KUBECONFIG", seed_platform())
            .env("TMPDIR", &tmp)
            .env("ARGOCD_PLUGINSOCKFILEPATH", &sockets)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let started = Instant::now();
        while !sockets.join("courier-v1.sock").exists() {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "argocd-cmp-server did not open its socket"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Server {
            child,
            sockets,
            _dir: dir,
        }
    }

    /// What argocd-repo-server gets for the app at `app` (relative to `repo_root`).
    fn drive(&self, repo_root: &Path, app: &str, env: &[&str]) -> serde_json::Value {
        let output = Command::new(tools().join("cmp-client"))
            .arg(repo_root.join(app))
            .arg(repo_root)
            .args(env)
            .env("ARGOCD_PLUGINSOCKFILEPATH", &self.sockets)
            .output()
            .unwrap();
        assert!(output.status.success(), "{output:?}");
        serde_json::from_slice(&output.stdout).unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The seed platform in the test control plane, once: ESO's CRDs, the namespaces, the
/// master Secrets, the store's reader (`external-secrets`, with a Role on the central
/// namespace), the ClusterSecretStore, the CA ConfigMap its caProvider names (which a
/// kube-controller-manager would publish), `team-a`, and the shipped plugin RBAC. Answers
/// the kubeconfig of the sidecar's ServiceAccount, argocd/argocd-repo-server.
fn seed_platform() -> &'static Path {
    static KUBECONFIG: OnceLock<(PathBuf, tempfile::TempDir)> = OnceLock::new();
    &KUBECONFIG
        .get_or_init(|| {
            support::control_plane();
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                let client = support::admin_client().await;
                support::install_eso_crds(&client).await;
                for name in ["namespaces", "central-secret-store", "cluster-secret-store"] {
                    sidecar::apply_yaml(&client, &read(&format!("examples/platform/{name}.yaml")))
                        .await;
                }
                let ca = support::control_plane().ca_pem().replace('\n', "\\n");
                sidecar::apply_yaml(
                    &client,
                    &format!(
                        "apiVersion: v1\nkind: Namespace\nmetadata: {{name: team-a}}\n---\napiVersion: v1\nkind: ServiceAccount\nmetadata: {{name: external-secrets, namespace: central-secret-store}}\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {{name: external-secrets, namespace: central-secret-store}}\nrules: [{{apiGroups: [\"\"], resources: [secrets], verbs: [get, list]}}]\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {{name: external-secrets, namespace: central-secret-store}}\nroleRef: {{apiGroup: rbac.authorization.k8s.io, kind: Role, name: external-secrets}}\nsubjects: [{{kind: ServiceAccount, name: external-secrets, namespace: central-secret-store}}]\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: kube-root-ca.crt, namespace: central-secret-store}}\ndata: {{ca.crt: \"{ca}\"}}\n"
                    ),
                )
                .await;
                sidecar::apply_yaml(&client, &sidecar::shipped_rbac(&[])).await;
                // What a platform with a bearer-token store would add (the README's note):
                // the sidecar may get github-pat. A tenant's store must still not send it.
                sidecar::apply_yaml(
                    &client,
                    "apiVersion: rbac.authorization.k8s.io/v1\nkind: Role\nmetadata: {name: courier-argocd-plugin-token, namespace: central-secret-store}\nrules: [{apiGroups: [\"\"], resources: [secrets], resourceNames: [github-pat], verbs: [get]}]\n---\napiVersion: rbac.authorization.k8s.io/v1\nkind: RoleBinding\nmetadata: {name: courier-argocd-plugin-token, namespace: central-secret-store}\nroleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: courier-argocd-plugin-token}\nsubjects: [{kind: ServiceAccount, name: argocd-repo-server, namespace: argocd}]\n",
                )
                .await;
                let dir = tempfile::tempdir().unwrap();
                let kubeconfig =
                    sidecar::kubeconfig_as(&client, dir.path(), "argocd", "argocd-repo-server")
                        .await;
                (kubeconfig, dir)
            })
        })
        .0
}

fn server() -> &'static Server {
    static SERVER: OnceLock<Server> = OnceLock::new();
    SERVER.get_or_init(Server::start)
}

/// Argo CD's build environment and the Application's plugin env (ARGOCD_ENV_*): a
/// tenant's app, whose destination namespace is `team-a`.
const ENV: [&str; 4] = [
    "ARGOCD_APP_NAME=web",
    "ARGOCD_APP_NAMESPACE=team-a",
    "ARGOCD_APP_SOURCE_PATH=apps/web",
    "ARGOCD_APP_REVISION=0123456789abcdef",
];

/// The platform's app: no destination namespace (its ClusterExternalSecrets write into
/// the namespaces they select), which an AppProject limited to a tenant's namespaces
/// does not allow.
const PLATFORM_ENV: [&str; 4] = [
    "ARGOCD_APP_NAME=platform",
    "ARGOCD_APP_NAMESPACE=",
    "ARGOCD_APP_SOURCE_PATH=platform",
    "ARGOCD_APP_REVISION=0123456789abcdef",
];

/// A repository checkout from inline files (`path`, `text`).
fn checkout(files: &[(&str, &str)]) -> tempfile::TempDir {
    files::dir_of(files)
}

fn read(path: &str) -> String {
    std::fs::read_to_string(repo().join(path)).unwrap()
}

fn kinds(result: &serde_json::Value) -> Vec<String> {
    let mut kinds = Vec::new();
    for manifest in result["manifests"].as_array().unwrap() {
        let object: serde_json::Value = serde_json::from_str(manifest.as_str().unwrap())
            .unwrap_or_else(|_| serde_saphyr::from_str(manifest.as_str().unwrap()).unwrap());
        kinds.push(object["kind"].as_str().unwrap_or_default().to_owned());
    }
    kinds.sort();
    kinds
}

#[test]
fn the_seed_platform_renders_its_secrets_and_never_its_master_secrets() {
    // The stores, namespaces and master Secrets are the cluster's; the app holds the
    // ClusterExternalSecrets.
    let checkout = checkout(&[(
        "platform/cluster-external-secrets.yaml",
        &read("examples/platform/cluster-external-secrets.yaml"),
    )]);
    let result = server().drive(checkout.path(), "platform", &PLATFORM_ENV);
    assert_eq!(result["claimed"], true, "{result}");
    assert!(result["error"].is_null(), "{result}");
    let kinds = kinds(&result);
    assert_eq!(kinds, vec!["Secret"; 17], "only the rendered Secrets");
    let text = result["manifests"].to_string();
    assert!(
        !text.contains("central-secret-store\\n"),
        "master Secrets passed through"
    );
    let parameters = result["parameters"].to_string();
    for name in ["world", "allow-empty", "passthrough"] {
        assert!(
            parameters.contains(name),
            "{name} not announced: {parameters}"
        );
    }
}

#[test]
fn an_app_with_external_secrets_and_deployments_gets_both() {
    let checkout = checkout(&[
        (
            "apps/web/deployment.yaml",
            &read("examples/argocd-app/deployment.yaml"),
        ),
        (
            "apps/web/external-secret.yaml",
            &read("examples/argocd-app/external-secret.yaml"),
        ),
    ]);
    let result = server().drive(checkout.path(), "apps/web", &ENV);
    assert_eq!(result["claimed"], true, "{result}");
    let kinds = kinds(&result);
    assert!(kinds.contains(&"Deployment".to_owned()), "{kinds:?}");
    assert!(kinds.contains(&"Secret".to_owned()), "{kinds:?}");
    assert!(!kinds.contains(&"ExternalSecret".to_owned()), "{kinds:?}");
    assert!(
        !kinds.contains(&"Namespace".to_owned()),
        "the world is never output: {kinds:?}"
    );
}

#[test]
fn helm_charts_kustomize_apps_and_plain_apps_are_left_to_argo_cd() {
    let external_secret = read("examples/argocd-app/external-secret.yaml");
    let deployment = read("examples/argocd-app/deployment.yaml");
    let helm = checkout(&[
        (
            "chart/Chart.yaml",
            "apiVersion: v2\nname: web\nversion: 0.1.0\n",
        ),
        ("chart/templates/external-secret.yaml", &external_secret),
    ]);
    let kustomize = checkout(&[
        (
            "overlay/kustomization.yaml",
            "namePrefix: prod-\nresources: [external-secret.yaml]\n",
        ),
        ("overlay/external-secret.yaml", &external_secret),
    ]);
    let plain = checkout(&[("app/deployment.yaml", &deployment)]);
    for (checkout, app) in [(&helm, "chart"), (&kustomize, "overlay"), (&plain, "app")] {
        let result = server().drive(checkout.path(), app, &ENV);
        assert_eq!(result["claimed"], false, "{app}: {result}");
        assert!(
            result["discover_error"]
                .as_str()
                .unwrap()
                .contains("could not find plugin supporting the given repository"),
            "{result}"
        );
    }
}

#[test]
fn an_app_with_an_error_gets_one_line_without_a_value() {
    let broken = read("examples/argocd-app/external-secret.yaml").replace("key: ", "key: no-such-");
    let checkout = checkout(&[("app/external-secret.yaml", &broken)]);
    let result = server().drive(checkout.path(), "app", &ENV);
    assert_eq!(result["claimed"], true, "{result}");
    let error = result["error"].as_str().expect("generate fails");
    assert!(error.contains("no-such-"), "{error}");
    assert!(
        !error.contains("ghp_") && !error.contains("platform-bot"),
        "{error}"
    );
    assert!(result["manifests"].is_null(), "{result}");
}

/// What a tenant's app gets, and whether anything reached the listener.
fn tenant_app(text: &str, listener: &tenant::Listener) -> (serde_json::Value, usize) {
    let checkout = checkout(&[("apps/web/app.yaml", text)]);
    let result = server().drive(checkout.path(), "apps/web", &ENV);
    (result, listener.connections())
}

#[test]
fn a_tenant_app_cannot_choose_the_identity_nor_where_credentials_go() {
    let listener = tenant::Listener::start();
    let naming = tenant::app_naming_the_platform_reader("central-secret-store", "external-secrets");
    let (result, _) = tenant_app(&naming, &listener);
    assert_eq!(result["claimed"], true, "{result}");
    assert!(
        result["manifests"].is_null(),
        "no Secret is rendered: {result}"
    );
    let error = result["error"].as_str().expect("generate fails");
    assert!(
        error.contains("ClusterSecretStore/tenant-reader: refused: in the cluster world stores are read from the cluster, never from the app's files"),
        "{error}"
    );
    assert!(
        !error.contains("ghp_") && !error.contains("platform-bot"),
        "{error}"
    );

    let sending = tenant::app_sending_a_token_to(
        &listener.url(),
        &support::control_plane().ca_pem(),
        "central-secret-store",
        "github-pat",
    );
    let (result, connections) = tenant_app(&sending, &listener);
    assert_eq!(connections, 0, "a connection reached the tenant's URL");
    assert!(result["manifests"].is_null(), "a Secret was rendered");
    let error = result["error"].as_str().expect("generate fails");
    assert!(
        error.contains("ClusterSecretStore/tenant-exfil: refused: in the cluster world stores are read from the cluster"),
        "{error}"
    );
}

#[test]
fn a_misspelt_parameter_is_an_error() {
    let checkout = checkout(&[(
        "apps/web/external-secret.yaml",
        &read("examples/argocd-app/external-secret.yaml"),
    )]);
    let mut env = ENV.to_vec();
    env.push(r#"ARGOCD_APP_PARAMETERS=[{"name":"wrld","string":"cluster"}]"#);
    let result = server().drive(checkout.path(), "apps/web", &env);
    let error = result["error"].as_str().expect("generate fails");
    assert!(
        error.contains("unknown setting \"wrld\"; did you mean world?"),
        "{error}"
    );
}
