//! README's "Installing in a cluster", run command by command against the test control
//! plane: build the image, push it to a real registry (CNCF Distribution on loopback, for
//! registry.example.com), apply the world with kubectl, helm install the chart, create the
//! Job from the CronJob, and read the Secret. With no kubelet here, the test plays the
//! Job's pod: it pulls the image back from the registry, unpacks it (umoci) and runs its
//! entrypoint with the Job's arguments and user from the unpacked root (chroot), with the
//! in-cluster configuration only: KUBERNETES_SERVICE_HOST/PORT and a real token of the
//! chart's ServiceAccount, ca.crt and namespace under
//! /var/run/secrets/kubernetes.io/serviceaccount.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::batch::v1::Job;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, ServiceAccount};
use kube::api::{Api, PostParams};

use crate::support::{admin_client, control_plane, go_tool};

const PUBLIC_REGISTRY: &str = "registry.example.com";

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn run(program: &str, args: &[&str]) -> String {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} is needed: {e}"));
    assert!(
        output.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

/// The commands of the README block that follows `<!-- {test} runs this block`, with `\`
/// continuations joined.
pub fn readme_commands(test: &str) -> Vec<String> {
    let readme = std::fs::read_to_string(repo().join("README.md")).unwrap();
    let after = readme
        .split(&format!("<!-- {test} runs this block"))
        .nth(1)
        .unwrap_or_else(|| panic!("README marks the block {test} runs"));
    let block = after
        .split("```sh\n")
        .nth(1)
        .unwrap()
        .split("```")
        .next()
        .unwrap();
    let mut commands = Vec::new();
    let mut current = String::new();
    for line in block.lines() {
        match line.strip_suffix('\\') {
            Some(part) => current.push_str(part),
            None => {
                current.push_str(line);
                commands.push(std::mem::take(&mut current));
            }
        }
    }
    commands
}

/// A registry on loopback, stopped when dropped.
struct Registry {
    child: Child,
    address: String,
    _storage: tempfile::TempDir,
}

impl Registry {
    fn start() -> Registry {
        let storage = tempfile::tempdir().unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let address = format!("127.0.0.1:{port}");
        let config = storage.path().join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog: {{level: error}}\nstorage: {{filesystem: {{rootdirectory: {}}}}}\nhttp: {{addr: \"{address}\"}}\n",
                storage.path().join("data").display()
            ),
        )
        .unwrap();
        let child = Command::new(go_tool("registry"))
            .args(["serve", config.to_str().unwrap()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let started = Instant::now();
        while std::net::TcpStream::connect(&address).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "the registry did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        Registry {
            child,
            address,
            _storage: storage,
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A directory holding `kubectl` and `helm` as the test builds them, for PATH.
pub fn tools_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let control_plane_bin =
        PathBuf::from(run(repo().join("testenv/build.sh").to_str().unwrap(), &[]).trim());
    std::os::unix::fs::symlink(
        control_plane_bin.join("kubectl"),
        dir.path().join("kubectl"),
    )
    .unwrap();
    std::os::unix::fs::symlink(go_tool("helm"), dir.path().join("helm")).unwrap();
    dir
}

fn files_under(root: &Path) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                found.insert(path.strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    found
}

#[tokio::test]
async fn the_readme_install_walkthrough_runs_and_the_secrets_appear() {
    // buildah, skopeo, umoci and musl-gcc, installed when missing (as testenv/ builds the
    // Go binaries), so the README's test command passes on a machine without them.
    let tools = Command::new("bash")
        .arg(repo().join("testenv/image-tools.sh"))
        .status()
        .unwrap();
    assert!(tools.success(), "testenv/image-tools.sh failed");
    let client = admin_client().await;
    let registry = Registry::start();
    let tools = tools_dir();
    let path = format!(
        "{}:{}",
        tools.path().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let commands = readme_commands("tests/cluster/walkthrough.rs");
    assert!(commands.len() >= 6, "{commands:?}");
    let mut played = false;
    let mut last_stdout = String::new();
    for command in &commands {
        let mut command = command.replace(PUBLIC_REGISTRY, &registry.address);
        if command.starts_with("skopeo copy") {
            // The loopback registry speaks plain HTTP; a real one has TLS.
            command = command.replacen("skopeo copy", "skopeo copy --dest-tls-verify=false", 1);
        }
        // A user's shell: none of the variables cargo sets for a test (they would make
        // image/build.sh's cargo rebuild from scratch), only where things are.
        let mut shell = Command::new("bash");
        shell
            .args(["-euo", "pipefail", "-c", &command])
            .current_dir(repo())
            .env_clear()
            .env("PATH", &path)
            .env("KUBECONFIG", &control_plane().kubeconfig);
        for (key, value) in std::env::vars_os() {
            let key_text = key.to_string_lossy();
            let kept = [
                "HOME",
                "TMPDIR",
                "CARGO_HOME",
                "XDG_CACHE_HOME",
                "COURIER_TESTENV_CACHE",
            ]
            .contains(&key_text.as_ref())
                || key_text.starts_with("RUSTUP_")
                || key_text.starts_with("GO");
            if kept {
                shell.env(key, value);
            }
        }
        let output = shell.output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success(),
            "README command failed: {command}\n{stderr}"
        );
        last_stdout = String::from_utf8(output.stdout).unwrap();
        if command.contains("create job") {
            play_the_job(&client, &registry.address).await;
            played = true;
        }
    }
    assert!(played, "the walkthrough creates a Job from the CronJob");
    assert!(
        last_stdout.contains("gh-docker-registry-creds")
            && last_stdout.contains("kubernetes.io/dockerconfigjson"),
        "the last command shows the Secret:\n{last_stdout}"
    );
    // Every namespace that asked for it by label got it, as `render` says.
    let secret = Api::<Secret>::namespaced(client.clone(), "backstage")
        .get("gh-docker-registry-creds")
        .await
        .unwrap();
    let labels = secret.metadata.labels.unwrap_or_default();
    // The chart's instance is the CLI's default, so a first `courier apply` and the chart
    // own the same targets.
    assert_eq!(
        labels.get("courier.dev/instance").map(String::as_str),
        Some("default")
    );
}

/// Does what the kubelet would do with the Job's pod, from the image in the registry.
async fn play_the_job(client: &kube::Client, registry: &str) {
    let job = Api::<Job>::namespaced(client.clone(), "courier")
        .get("courier-first-run")
        .await
        .unwrap();
    let pod = job.spec.unwrap().template.spec.unwrap();
    let container = &pod.containers[0];
    let image = container.image.clone().unwrap();
    assert_eq!(
        image,
        format!("{registry}/platform/courier:{}", env!("CARGO_PKG_VERSION"))
    );

    // Pulled back and unpacked as a runtime would.
    let scratch = tempfile::tempdir().unwrap();
    let layout = scratch.path().join("layout");
    run(
        "skopeo",
        &[
            "copy",
            "--quiet",
            "--src-tls-verify=false",
            &format!("docker://{image}"),
            &format!("oci:{}:courier", layout.display()),
        ],
    );
    let config: serde_json::Value = serde_json::from_str(&run(
        "skopeo",
        &[
            "inspect",
            "--config",
            &format!("oci:{}:courier", layout.display()),
        ],
    ))
    .unwrap();
    let image_config = &config["config"];
    let head = run(
        "git",
        &["-C", repo().to_str().unwrap(), "rev-parse", "HEAD"],
    );
    let revision = image_config["Labels"]["org.opencontainers.image.revision"]
        .as_str()
        .unwrap();
    assert!(
        revision.starts_with(head.trim()),
        "image of {revision}, HEAD {}",
        head.trim()
    );
    let bundle = scratch.path().join("bundle");
    run(
        "umoci",
        &[
            "unpack",
            "--image",
            &format!("{}:courier", layout.display()),
            bundle.to_str().unwrap(),
        ],
    );
    let root = bundle.join("rootfs");
    assert_eq!(
        files_under(&root),
        BTreeSet::from(
            [
                "etc/group",
                "etc/passwd",
                "etc/ssl/certs/ca-certificates.crt",
                "usr/local/bin/courier",
            ]
            .map(String::from)
        ),
        "FROM scratch: the binary, CA certificates and the user, nothing else"
    );

    // The pod's volumes: the manifests ConfigMap, and the projected ServiceAccount token.
    let mount = container.volume_mounts.as_ref().unwrap()[0]
        .mount_path
        .clone();
    let config_map_name = pod.volumes.as_ref().unwrap()[0]
        .config_map
        .as_ref()
        .unwrap()
        .name
        .clone();
    let config_map = Api::<ConfigMap>::namespaced(client.clone(), "courier")
        .get(&config_map_name)
        .await
        .unwrap();
    let mounted_manifests = root.join(mount.trim_start_matches('/'));
    std::fs::create_dir_all(&mounted_manifests).unwrap();
    for (file, text) in config_map.data.unwrap_or_default() {
        std::fs::write(mounted_manifests.join(file), text).unwrap();
    }
    let service_account = pod.service_account_name.clone().unwrap();
    let token = Api::<ServiceAccount>::namespaced(client.clone(), "courier")
        .create_token_request(
            &service_account,
            &PostParams::default(),
            &TokenRequest {
                spec: Some(TokenRequestSpec {
                    audiences: Some(vec![]),
                    expiration_seconds: Some(600),
                    ..TokenRequestSpec::default()
                }),
                ..TokenRequest::default()
            },
        )
        .await
        .unwrap()
        .status
        .and_then(|s| s.token)
        .expect("a token");
    let secrets = root.join("var/run/secrets/kubernetes.io/serviceaccount");
    std::fs::create_dir_all(&secrets).unwrap();
    std::fs::write(secrets.join("token"), token).unwrap();
    std::fs::write(secrets.join("ca.crt"), control_plane().ca_pem()).unwrap();
    std::fs::write(secrets.join("namespace"), "courier").unwrap();

    // The user the pod's securityContext names, as the image's own user says too.
    let security = pod.security_context.clone().unwrap();
    let user = format!(
        "{}:{}",
        security.run_as_user.unwrap(),
        security.run_as_group.unwrap()
    );
    assert_eq!(image_config["User"], user.as_str());
    let entrypoint: Vec<String> =
        serde_json::from_value(image_config["Entrypoint"].clone()).unwrap();
    let env: Vec<String> = serde_json::from_value(image_config["Env"].clone()).unwrap();
    let server = control_plane()
        .server()
        .trim_start_matches("https://")
        .to_owned();
    let (host, port) = server.rsplit_once(':').unwrap();
    let chroot = run("sh", &["-c", "command -v chroot"]);
    let mut play = Command::new(chroot.trim());
    play.arg(format!("--userspec={user}"))
        .arg(&root)
        .args(&entrypoint)
        .args(container.args.clone().unwrap())
        .env_clear()
        .env("KUBERNETES_SERVICE_HOST", host)
        .env("KUBERNETES_SERVICE_PORT", port);
    for pair in &env {
        let (key, value) = pair.split_once('=').unwrap();
        play.env(key, value);
    }
    let output = play.output().expect("chroot runs (as root)");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "the Job's pod failed:\n{stderr}");
    assert!(stderr.contains("created"), "{stderr}");
    for value in ["platform-bot", "ghp_"] {
        assert!(!stderr.contains(value), "a value in the log: {stderr}");
    }
    eprintln!("walkthrough: the Job's pod ran {entrypoint:?} as {user} from {image}");
}
