//! The container image image/build.sh built, unpacked (skopeo, umoci) and run as the
//! chart's CronJob would run it: its entrypoint, user and arguments, from the unpacked
//! root (chroot), with the in-cluster configuration only (KUBERNETES_SERVICE_HOST/PORT and
//! a real ServiceAccount token, ca.crt and namespace under
//! /var/run/secrets/kubernetes.io/serviceaccount), as the chart's ServiceAccount and RBAC.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::ServiceAccount;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use kube::discovery::{Discovery, Scope};

use crate::apply::Platform;
use crate::chart::render_release;
use crate::support::{TestNamespace, control_plane};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn run(program: &str, args: &[&str]) -> String {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("{program} is needed (apt-get install {program}): {e}"));
    assert!(
        output.status.success(),
        "{program} {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
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
async fn the_image_runs_the_charts_cronjob_in_cluster_as_its_service_account() {
    let archive: PathBuf = repo().join("target/image/courier.oci.tar");
    assert!(
        archive.exists(),
        "no image at {}: build it with image/build.sh (needs buildah, skopeo, musl-tools; .ci/run does)",
        archive.display()
    );
    let reference = format!("oci-archive:{}", archive.display());

    // What the image says about itself.
    let config: serde_json::Value =
        serde_json::from_str(&run("skopeo", &["inspect", "--config", &reference])).unwrap();
    let image_config = &config["config"];
    assert_eq!(image_config["User"], "65532:65532", "{image_config}");
    let entrypoint: Vec<String> =
        serde_json::from_value(image_config["Entrypoint"].clone()).unwrap();
    let labels = &image_config["Labels"];
    let head = run(
        "git",
        &["-C", repo().to_str().unwrap(), "rev-parse", "HEAD"],
    );
    let revision = labels["org.opencontainers.image.revision"]
        .as_str()
        .unwrap();
    assert!(
        revision.starts_with(head.trim()),
        "the image was built from {revision}, HEAD is {}: rebuild it with image/build.sh",
        head.trim()
    );
    assert_eq!(
        labels["org.opencontainers.image.version"],
        env!("CARGO_PKG_VERSION")
    );

    // Unpacked as a runtime would.
    let scratch = tempfile::tempdir().unwrap();
    let layout = format!("oci:{}:courier", scratch.path().join("layout").display());
    run("skopeo", &["copy", "--quiet", &reference, &layout]);
    let bundle = scratch.path().join("bundle");
    run(
        "umoci",
        &[
            "unpack",
            "--image",
            &format!("{}:courier", scratch.path().join("layout").display()),
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

    // The chart's objects but the CronJob, applied for real in a release namespace of the
    // test's own; the CronJob is what this test plays.
    let platform = Platform::new("img").await;
    let target = platform.target("img-t", true).await;
    let release = TestNamespace::create(&platform.client, "img-release").await;
    let release_name = format!("img-{}", platform.id);
    let manifests =
        std::fs::read_to_string(platform.manifests.path().join("manifests.yaml")).unwrap();
    let token_namespace = format!("rbac.tokenRequestNamespaces[0]={}", platform.central.name);
    let documents = render_release(&release_name, &release.name, &[&token_namespace]);
    let discovery = Discovery::new(platform.client.clone()).run().await.unwrap();
    let mut cron_job = None;
    for document in documents {
        let kind = document["kind"].as_str().unwrap().to_owned();
        if kind == "CronJob" {
            cron_job = Some(document);
            continue;
        }
        let api_version = document["apiVersion"].as_str().unwrap();
        let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
        let (resource, capabilities) = discovery
            .resolve_gvk(&kube::api::GroupVersionKind::gvk(group, version, &kind))
            .unwrap();
        let api: Api<DynamicObject> = match capabilities.scope {
            Scope::Cluster => Api::all_with(platform.client.clone(), &resource),
            Scope::Namespaced => Api::namespaced_with(
                platform.client.clone(),
                document["metadata"]["namespace"].as_str().unwrap(),
                &resource,
            ),
        };
        let name = document["metadata"]["name"].as_str().unwrap().to_owned();
        api.patch(
            &name,
            &PatchParams::apply("courier-image-test"),
            &Patch::Apply(&document),
        )
        .await
        .unwrap_or_else(|e| panic!("{kind}/{name}: {e}"));
    }
    let cron_job = cron_job.expect("the chart renders a CronJob");
    let pod = &cron_job["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    let service_account = pod["serviceAccountName"].as_str().unwrap();
    let args: Vec<String> = serde_json::from_value(container["args"].clone()).unwrap();
    assert_eq!(container["volumeMounts"][0]["mountPath"], "/manifests");

    // What the kubelet would mount: the ConfigMap, and the projected ServiceAccount token.
    std::fs::create_dir_all(root.join("manifests")).unwrap();
    std::fs::write(root.join("manifests/manifests.yaml"), manifests).unwrap();
    let token = Api::<ServiceAccount>::namespaced(platform.client.clone(), &release.name)
        .create_token_request(
            service_account,
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
    let mounted = root.join("var/run/secrets/kubernetes.io/serviceaccount");
    std::fs::create_dir_all(&mounted).unwrap();
    std::fs::write(mounted.join("token"), token).unwrap();
    std::fs::write(mounted.join("ca.crt"), control_plane().ca_pem()).unwrap();
    std::fs::write(mounted.join("namespace"), &release.name).unwrap();

    let server = control_plane()
        .server()
        .trim_start_matches("https://")
        .to_owned();
    let (host, port) = server.rsplit_once(':').unwrap();
    let user = image_config["User"].as_str().unwrap();
    // Found on the test's PATH; the child itself gets no PATH but the image's.
    let chroot = run("sh", &["-c", "command -v chroot"]);
    let output = Command::new(chroot.trim())
        .arg(format!("--userspec={user}"))
        .arg(&root)
        .args(&entrypoint)
        .args(&args)
        .env_clear()
        .env("PATH", "/usr/local/bin")
        .env("KUBERNETES_SERVICE_HOST", host)
        .env("KUBERNETES_SERVICE_PORT", port)
        .output()
        .expect("chroot (coreutils) runs as root");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{args:?}: {stderr}");
    assert!(stderr.contains("created"), "{stderr}");
    assert!(!stderr.contains("first-value"), "{stderr}");
    assert_eq!(
        platform
            .value(&target.name, "creds", "password")
            .await
            .as_deref(),
        Some("first-value")
    );
    eprintln!(
        "image: {} bytes, ran {entrypoint:?} {args:?} as {user}",
        std::fs::metadata(&archive).unwrap().len()
    );
}
