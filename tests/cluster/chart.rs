//! The Helm chart (charts/courier), with the pinned helm (testenv/tool.sh helm): it lints, it
//! renders each mode, the API server accepts every rendered object (server-side dry-run
//! apply), templates/install/ is a fresh rendering of it, and its ESO CRDs are ESO's own.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::discovery::{Discovery, Scope};

use crate::support::{TestNamespace, admin_client, go_tool, install_eso_crds};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn helm() -> &'static Path {
    static HELM: OnceLock<PathBuf> = OnceLock::new();
    HELM.get_or_init(|| go_tool("helm"))
}

fn run_helm(args: &[&str]) -> String {
    let output = Command::new(helm())
        .args(args)
        .current_dir(repo())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "helm {args:?} failed:\n{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

fn render(namespace: &str, values: &[&str]) -> Vec<serde_json::Value> {
    render_release("courier", namespace, values)
}

/// The chart's objects for release `release` in `namespace`, as `helm template` renders them.
pub fn render_release(release: &str, namespace: &str, values: &[&str]) -> Vec<serde_json::Value> {
    let mut args = vec![
        "template",
        release,
        "charts/courier",
        "--namespace",
        namespace,
    ];
    for value in values {
        args.extend(["--set", value]);
    }
    let text = run_helm(&args);
    serde_saphyr::from_multiple::<serde_json::Value>(&text)
        .unwrap()
        .into_iter()
        .filter(|d| !d.is_null())
        .collect()
}

fn kinds(documents: &[serde_json::Value]) -> Vec<String> {
    let mut kinds: Vec<String> = documents
        .iter()
        .map(|d| d["kind"].as_str().unwrap().to_owned())
        .collect();
    kinds.sort();
    kinds
}

#[test]
fn the_chart_lints_in_each_mode() {
    for values in [
        vec![],
        vec!["mode=deployment"],
        vec![
            "mode=deployment",
            "replicas=3",
            "manifests.fromCluster=true",
        ],
    ] {
        let mut args = vec!["lint", "--strict", "charts/courier"];
        for value in &values {
            args.extend(["--set", value]);
        }
        let out = run_helm(&args);
        assert!(out.contains("0 chart(s) failed"), "{out}");
    }
}

#[test]
fn the_values_schema_refuses_what_courier_would_refuse() {
    for (value, says) in [
        ("mode=daemonset", "/mode"),
        ("run.refresh=1hour", "/run/refresh"),
        ("replicas=0", "/replicas"),
        ("image.digest=latest", "/image/digest"),
        ("no.such=value", "additional properties"),
        (
            "clusters.fromSecretsNamespace=Argo_CD",
            "/clusters/fromSecretsNamespace",
        ),
    ] {
        let output = Command::new(helm())
            .args(["template", "x", "charts/courier", "--set", value])
            .current_dir(repo())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{value} was accepted");
        assert!(stderr.contains(says), "{value}: {stderr}");
    }
}

#[test]
fn each_mode_renders_what_it_needs_and_nothing_more() {
    let cronjob = render("courier", &[]);
    assert_eq!(
        kinds(&cronjob),
        [
            "ClusterRole",
            "ClusterRole",
            "ClusterRoleBinding",
            "CronJob",
            "RoleBinding",
            "ServiceAccount"
        ]
    );
    let single = render("courier", &["mode=deployment"]);
    assert_eq!(
        kinds(&single),
        [
            "ClusterRole",
            "ClusterRole",
            "ClusterRoleBinding",
            "Deployment",
            "RoleBinding",
            "Service",
            "ServiceAccount"
        ]
    );
    let deployment = single.iter().find(|d| d["kind"] == "Deployment").unwrap();
    let args = &deployment["spec"]["template"]["spec"]["containers"][0]["args"];
    assert!(
        !args.as_array().unwrap().contains(&"--leader-elect".into()),
        "{args}"
    );
    assert!(
        !args.to_string().contains("--clusters-from-secrets"),
        "{args}"
    );
    let fleet = render("courier", &["clusters.fromSecretsNamespace=argocd"]);
    let cronjob_args = fleet.iter().find(|d| d["kind"] == "CronJob").unwrap()["spec"]
        ["jobTemplate"]["spec"]["template"]["spec"]["containers"][0]["args"]
        .to_string();
    assert!(
        cronjob_args.contains(r#""--clusters-from-secrets","argocd""#),
        "{cronjob_args}"
    );

    let ha = render(
        "courier",
        &[
            "mode=deployment",
            "replicas=2",
            "metrics.serviceMonitor.enabled=true",
        ],
    );
    for kind in ["PodDisruptionBudget", "Role", "ServiceMonitor"] {
        assert!(
            kinds(&ha).contains(&kind.to_owned()),
            "{kind}: {:?}",
            kinds(&ha)
        );
    }
    let deployment = ha.iter().find(|d| d["kind"] == "Deployment").unwrap();
    let pod = &deployment["spec"]["template"]["spec"];
    let args = pod["containers"][0]["args"].as_array().unwrap();
    assert!(args.contains(&"--leader-elect".into()), "{args:?}");
    let role = ha.iter().find(|d| d["kind"] == "Role").unwrap();
    assert_eq!(role["rules"][0]["resources"], serde_json::json!(["leases"]));
    // The security context the issue asks for, in every mode.
    let container = &pod["containers"][0];
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(
        container["securityContext"]["capabilities"]["drop"],
        serde_json::json!(["ALL"])
    );

    // --from-cluster: no ConfigMap mount, the ESO rules in the ClusterRole.
    let from_cluster = render(
        "courier",
        &["manifests.fromCluster=true", "esoCRDs.install=true"],
    );
    let crds: Vec<&str> = from_cluster
        .iter()
        .filter(|d| d["kind"] == "CustomResourceDefinition")
        .map(|d| d["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(crds.len(), 4, "{crds:?}");
    let role = from_cluster
        .iter()
        .find(|d| d["kind"] == "ClusterRole" && d["metadata"]["name"] == "courier")
        .unwrap();
    assert!(
        role.to_string().contains("clusterexternalsecrets/status"),
        "{role}"
    );
    let plain_role = cronjob
        .iter()
        .find(|d| d["kind"] == "ClusterRole" && d["metadata"]["name"] == "courier")
        .unwrap();
    assert!(
        !plain_role.to_string().contains("external-secrets.io"),
        "least privilege: {plain_role}"
    );
}

#[test]
fn templates_install_is_a_fresh_rendering_of_the_chart() {
    for mode in ["cronjob", "deployment"] {
        let committed =
            std::fs::read_to_string(repo().join(format!("templates/install/{mode}.yaml"))).unwrap();
        let fresh = run_helm(&[
            "template",
            "courier",
            "charts/courier",
            "--namespace",
            "courier",
            "--set",
            &format!("mode={mode}"),
        ]);
        let body = committed
            .lines()
            .skip_while(|line| line.starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n");
        assert!(
            body.trim_end() == fresh.trim_end(),
            "templates/install/{mode}.yaml differs from the chart's rendering; run charts/render-install.sh"
        );
    }
}

#[test]
fn the_chart_ships_esos_own_crds_unchanged() {
    let output = Command::new(repo().join("testenv/eso-crds.sh"))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let bases = PathBuf::from(String::from_utf8(output.stdout).unwrap().trim());
    let shipped = repo().join("charts/courier/files/eso-crds");
    let mut names: Vec<String> = std::fs::read_dir(&shipped)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "external-secrets.io_clusterexternalsecrets.yaml",
            "external-secrets.io_clustersecretstores.yaml",
            "external-secrets.io_externalsecrets.yaml",
            "external-secrets.io_secretstores.yaml",
        ]
    );
    for name in names {
        let ours = std::fs::read(shipped.join(&name)).unwrap();
        let theirs = std::fs::read(bases.join(&name)).unwrap();
        assert!(
            ours == theirs,
            "{name} differs from ESO's; run testenv/eso-crds.sh --update"
        );
    }
}

#[tokio::test]
async fn the_api_server_accepts_every_object_the_chart_renders() {
    let client = admin_client().await;
    // ServiceMonitor's CRD is the Prometheus Operator's; without it, the API server could
    // not validate that object, so it is rendered but checked by the test above only.
    install_eso_crds(&client).await;
    let release = TestNamespace::create(&client, "chart").await;
    let tokens = TestNamespace::create(&client, "chart-tokens").await;
    let discovery = Discovery::new(client.clone()).run().await.unwrap();
    let token_values = format!("rbac.tokenRequestNamespaces[0]={}", tokens.name);
    let plugin_values = format!("argocdPlugin.namespace={}", release.name);
    let combinations: Vec<Vec<&str>> = vec![
        vec![&token_values],
        vec![&token_values, "mode=deployment"],
        vec![
            &token_values,
            "mode=deployment",
            "replicas=3",
            "manifests.fromCluster=true",
            "esoCRDs.install=true",
            "argocdPlugin.enabled=true",
            &plugin_values,
            "manifests.configMap.create=true",
            "manifests.configMap.files.a\\.yaml=kind: Namespace",
        ],
        vec![
            &token_values,
            "manifests.configMap.create=true",
            "image.digest=sha256:0000000000000000000000000000000000000000000000000000000000000000",
        ],
    ];
    let mut checked = 0;
    for values in combinations {
        for document in render(&release.name, &values) {
            let api_version = document["apiVersion"].as_str().unwrap().to_owned();
            let kind = document["kind"].as_str().unwrap().to_owned();
            if kind == "ServiceMonitor" {
                continue;
            }
            let (group, version) = api_version.rsplit_once('/').unwrap_or(("", &api_version));
            let (resource, capabilities) = discovery
                .resolve_gvk(&kube::api::GroupVersionKind::gvk(group, version, &kind))
                .unwrap_or_else(|| panic!("the API server does not serve {api_version} {kind}"));
            let name = document["metadata"]["name"].as_str().unwrap().to_owned();
            let api: Api<DynamicObject> = match capabilities.scope {
                Scope::Cluster => Api::all_with(client.clone(), &resource),
                Scope::Namespaced => {
                    let namespace = document["metadata"]["namespace"].as_str().unwrap();
                    Api::namespaced_with(client.clone(), namespace, &resource)
                }
            };
            let params = PatchParams::apply("courier-chart-test").dry_run().force();
            api.patch(&name, &params, &Patch::Apply(&document))
                .await
                .unwrap_or_else(|e| panic!("{values:?}: {kind}/{name} rejected: {e}"));
            checked += 1;
        }
    }
    assert!(checked >= 30, "only {checked} objects checked");
}
