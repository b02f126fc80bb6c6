//! Values where they must never be, on the real API server: labels and annotations a
//! template makes from values are hidden by `diff` as values are, an object the API
//! server would refuse is caught before it is sent (its target's error, named without
//! the value), and what the API server says when it refuses one is scrubbed of every
//! value courier sent.

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::Arc;

use base64::Engine as _;
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;

use crate::apply::Platform;
use crate::support::{TestNamespace, admin_client, control_plane};

/// Every form a leak of `marker` could take: the text, its base64, and the same for its
/// tail after the first character (a value cut by a message would still hold it).
fn forms(marker: &str) -> Vec<String> {
    let base64 = base64::engine::general_purpose::STANDARD;
    vec![
        marker.to_owned(),
        base64.encode(marker),
        marker[1..].to_owned(),
        base64.encode(format!("\"{marker}\"")),
    ]
}

fn assert_hidden(markers: &[&str], text: &str) {
    for marker in markers {
        for form in forms(marker) {
            assert!(!text.contains(&form), "{form:?} was printed:\n{text}");
        }
    }
}

fn run(platform: &Platform, command: &str, instance: &str) -> (i32, String, String) {
    let mut args = vec![command, platform.manifests.path().to_str().unwrap()];
    if command == "diff" {
        args.push("--live");
    }
    let output = Command::new(env!("CARGO_BIN_EXE_courier"))
        .args(args)
        .args([
            "--kubeconfig",
            control_plane().kubeconfig.to_str().unwrap(),
            "--instance",
            instance,
        ])
        .env_remove("KUBECONFIG")
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8(output.stdout).unwrap(),
        String::from_utf8(output.stderr).unwrap(),
    )
}

/// The platform's store and one ClusterExternalSecret per `(name, template)`, each
/// reading the source `shared` into a target named `name`.
fn write_templated(platform: &Platform, targets: &[(&str, &str)]) {
    let mut text = platform.store();
    for (name, template) in targets {
        text.push_str(&format!(
            "---\napiVersion: external-secrets.io/v1\nkind: ClusterExternalSecret\nmetadata: {{name: {name}-{id}}}\nspec:\n  namespaceSelectors:\n  - matchLabels: {{{label}: \"true\"}}\n  externalSecretSpec:\n    secretStoreRef: {{kind: ClusterSecretStore, name: store-{id}}}\n    target:\n      name: {name}\n      template:\n{template}\n    dataFrom:\n    - extract: {{key: shared}}\n",
            id = platform.id,
            label = platform.label
        ));
    }
    std::fs::write(platform.manifests.path().join("manifests.yaml"), text).unwrap();
}

/// ESO's documented patterns: a value in `template.metadata.labels` and, by
/// `templateFrom` with target Annotations, in an annotation.
const METADATA_TEMPLATE: &str = "        metadata:\n          labels: {owner: \"{{ .username }}\", team: platform}\n        templateFrom:\n        - target: Annotations\n          literal: \"last-user: {{ .username }}\"\n        data: {password: \"{{ .password }}\"}";

#[tokio::test]
async fn diff_and_apply_never_print_the_labels_and_annotations_a_template_made_from_values() {
    let platform = Platform::new("leak-meta").await;
    let target = platform.target("leak-meta-t", true).await;
    let instance = format!("leak-meta-{}", platform.id);
    let first = format!("userone-{}", platform.id);
    let second = format!("usertwo-{}", platform.id);
    let password = format!("pw-{}-secret", platform.id);
    platform
        .put_source("shared", &[("username", &first), ("password", &password)])
        .await;
    write_templated(&platform, &[("meta", METADATA_TEMPLATE)]);
    let markers = [first.as_str(), second.as_str(), password.as_str()];

    let (code, stdout, stderr) = run(&platform, "diff", &instance);
    assert_eq!(code, 1, "drift: {stdout}{stderr}");
    assert_hidden(&markers, &format!("{stdout}{stderr}"));
    assert!(
        stdout.contains("    + label owner=*** REDACTED ***"),
        "{stdout}"
    );
    assert!(stdout.contains("    + label team=platform"), "{stdout}");

    let (code, stdout, stderr) = run(&platform, "apply", &instance);
    assert_eq!(code, 0, "{stderr}");
    assert_hidden(&markers, &format!("{stdout}{stderr}"));
    // What was hidden is really there.
    let written = Api::<Secret>::namespaced(platform.client.clone(), &target.name)
        .get("meta")
        .await
        .unwrap();
    assert_eq!(written.metadata.labels.unwrap()["owner"], first);
    assert_eq!(written.metadata.annotations.unwrap()["last-user"], first);

    // A new value changes the label and the annotation: the diff says so, without either value.
    platform
        .put_source("shared", &[("username", &second), ("password", &password)])
        .await;
    let (code, stdout, stderr) = run(&platform, "diff", &instance);
    assert_eq!(code, 1, "drift: {stdout}{stderr}");
    assert_hidden(&markers, &format!("{stdout}{stderr}"));
    assert!(
        stdout.contains("    ~ label owner: *** REDACTED *** (changed)"),
        "{stdout}"
    );
    assert!(
        stdout.contains("    ~ annotation *** REDACTED KEY 1 ***: *** REDACTED *** (changed)"),
        "{stdout}"
    );
    let (code, stdout, stderr) = run(&platform, "apply", &instance);
    assert_eq!(code, 0, "{stderr}");
    assert_hidden(&markers, &format!("{stdout}{stderr}"));
    let (code, stdout, stderr) = run(&platform, "diff", &instance);
    assert_eq!(code, 0, "in sync: {stdout}{stderr}");
}

/// A label and an annotation a template made from the values are values in the live
/// Secret too: when the manifest then sets them to fixed text, `diff` must not print the
/// old text (`~ label owner: <old> -> platform`), which a CI log or a PR comment would
/// show. It prints `~ label owner: *** REDACTED *** -> platform`.
#[tokio::test]
async fn diff_never_prints_the_old_value_of_a_label_a_template_made_when_it_becomes_fixed() {
    let platform = Platform::new("leak-fixed").await;
    let target = platform.target("leak-fixed-t", true).await;
    let instance = format!("leak-fixed-{}", platform.id);
    let user = format!("userone-{}", platform.id);
    let password = format!("pw-{}-secret", platform.id);
    platform
        .put_source("shared", &[("username", &user), ("password", &password)])
        .await;
    write_templated(&platform, &[("meta", METADATA_TEMPLATE)]);
    let markers = [user.as_str(), password.as_str()];
    let (code, stdout, stderr) = run(&platform, "apply", &instance);
    assert_eq!(code, 0, "{stderr}");
    assert_hidden(&markers, &format!("{stdout}{stderr}"));
    let written = Api::<Secret>::namespaced(platform.client.clone(), &target.name)
        .get("meta")
        .await
        .unwrap();
    assert_eq!(written.metadata.labels.unwrap()["owner"], user);
    assert_eq!(written.metadata.annotations.unwrap()["last-user"], user);

    // The manifest now writes fixed text where the template wrote the username.
    let fixed = METADATA_TEMPLATE
        .replace("owner: \"{{ .username }}\"", "owner: platform")
        .replace("last-user: {{ .username }}", "last-user: nobody");
    assert_ne!(fixed, METADATA_TEMPLATE);
    write_templated(&platform, &[("meta", &fixed)]);
    let (code, stdout, stderr) = run(&platform, "diff", &instance);
    assert_eq!(code, 1, "drift: {stdout}{stderr}");
    assert!(
        stdout.contains("    ~ label owner: *** REDACTED *** -> platform"),
        "{stdout}"
    );
    assert!(
        stdout.contains("    ~ annotation last-user: *** REDACTED *** -> nobody"),
        "{stdout}"
    );
    assert_hidden(&markers, &format!("{stdout}{stderr}"));
}

/// An htpasswd-like map: `templateFrom` with target Data whose keys come out of the values.
const KEYS_TEMPLATE: &str = "        templateFrom:\n        - target: Data\n          literal: \"{{ .username }}: {{ .password | quote }}\"";

/// A data key a template made from the values is hidden by `diff` as a label key is: on
/// create, and on an update where the old key goes and the new one comes.
#[tokio::test]
async fn diff_never_prints_a_data_key_a_template_made_from_values() {
    let platform = Platform::new("leak-keys").await;
    let target = platform.target("leak-keys-t", true).await;
    let instance = format!("leak-keys-{}", platform.id);
    let first = format!("userone-{}", platform.id);
    let second = format!("usertwo-{}", platform.id);
    let password = format!("pw-{}-secret", platform.id);
    platform
        .put_source("shared", &[("username", &first), ("password", &password)])
        .await;
    write_templated(&platform, &[("users", KEYS_TEMPLATE)]);
    let markers = [first.as_str(), second.as_str(), password.as_str()];

    let (code, stdout, stderr) = run(&platform, "diff", &instance);
    assert_eq!(code, 1, "drift: {stdout}{stderr}");
    assert_hidden(&markers, &format!("{stdout}{stderr}"));
    assert!(
        stdout.contains("    + data.*** REDACTED KEY 1 ***: *** REDACTED ***"),
        "{stdout}"
    );
    let (code, stdout, stderr) = run(&platform, "apply", &instance);
    assert_eq!(code, 0, "{stderr}");
    assert_hidden(&markers, &format!("{stdout}{stderr}"));
    let written = Api::<Secret>::namespaced(platform.client.clone(), &target.name)
        .get("users")
        .await
        .unwrap();
    assert!(
        written.data.unwrap().contains_key(&first),
        "the key is written"
    );

    platform
        .put_source("shared", &[("username", &second), ("password", &password)])
        .await;
    let (code, stdout, stderr) = run(&platform, "diff", &instance);
    assert_eq!(code, 1, "drift: {stdout}{stderr}");
    assert_hidden(&markers, &format!("{stdout}{stderr}"));
    assert!(
        stdout.contains("    - data.*** REDACTED KEY 1 ***\n")
            && stdout.contains("    + data.*** REDACTED KEY 2 ***: *** REDACTED ***"),
        "{stdout}"
    );
}

/// The same htpasswd-like map, with a fixed key beside it, rendering no user at all
/// once the source's username is emptied (`{{ with .username }}`).
const KEYS_OR_NONE_TEMPLATE: &str = "        templateFrom:\n        - target: Data\n          literal: \"{{ with .username }}{{ . }}: {{ $.password | quote }}{{ end }}\"\n        data: {fixed: static}";

/// A data key an earlier rendering made from the values is a value too when the new
/// rendering makes no such key: the source's user list emptied, or the templateFrom
/// removed from the manifest. `diff` hides every key an update removes.
#[tokio::test]
async fn diff_never_prints_a_removed_data_key_a_template_made_when_none_is_left() {
    let platform = Platform::new("leak-gone").await;
    let target = platform.target("leak-gone-t", true).await;
    let instance = format!("leak-gone-{}", platform.id);
    let user = format!("userone-{}", platform.id);
    let password = format!("pw-{}-secret", platform.id);
    platform
        .put_source("shared", &[("username", &user), ("password", &password)])
        .await;
    write_templated(&platform, &[("users", KEYS_OR_NONE_TEMPLATE)]);
    let markers = [user.as_str(), password.as_str()];
    let (code, stdout, stderr) = run(&platform, "apply", &instance);
    assert_eq!(code, 0, "{stderr}");
    assert_hidden(&markers, &format!("{stdout}{stderr}"));
    let written = Api::<Secret>::namespaced(platform.client.clone(), &target.name)
        .get("users")
        .await
        .unwrap();
    assert!(
        written.data.unwrap().contains_key(&user),
        "the key is written"
    );

    // The user goes: the template renders no key from the values any more.
    platform
        .put_source("shared", &[("username", ""), ("password", &password)])
        .await;
    let (code, stdout, stderr) = run(&platform, "diff", &instance);
    assert_eq!(code, 1, "drift: {stdout}{stderr}");
    assert_hidden(&markers, &format!("{stdout}{stderr}"));
    assert!(
        stdout.contains("    - data.*** REDACTED KEY 1 ***\n"),
        "{stdout}"
    );
}

/// An admission policy that refuses a Secret and quotes its label in the refusal, bound
/// to `namespace` alone (the control plane is shared with the other tests).
async fn refuse_owner_labels_in(client: &kube::Client, namespace: &str, id: &str) -> [String; 2] {
    use kube::api::{DynamicObject, PostParams};
    use kube::discovery::ApiResource;
    let resource = |kind: &str, plural: &str| ApiResource {
        group: "admissionregistration.k8s.io".into(),
        version: "v1".into(),
        api_version: "admissionregistration.k8s.io/v1".into(),
        kind: kind.into(),
        plural: plural.into(),
    };
    let policy_name = format!("refuse-owner-{id}");
    let policy: DynamicObject = serde_json::from_value(serde_json::json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": policy_name},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {"resourceRules": [{
                "apiGroups": [""], "apiVersions": ["v1"],
                "operations": ["CREATE", "UPDATE"], "resources": ["secrets"]
            }]},
            "validations": [{
                "expression": "!has(object.metadata.labels) || !('owner' in object.metadata.labels)",
                "messageExpression": "'owner ' + object.metadata.labels['owner'] + ' may not hold Secrets here'"
            }]
        }
    }))
    .unwrap();
    let binding: DynamicObject = serde_json::from_value(serde_json::json!({
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": policy_name},
        "spec": {
            "policyName": policy_name,
            "validationActions": ["Deny"],
            "matchResources": {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}}
        }
    }))
    .unwrap();
    let policies: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &resource("ValidatingAdmissionPolicy", "validatingadmissionpolicies"),
    );
    policies
        .create(&PostParams::default(), &policy)
        .await
        .unwrap();
    let bindings: Api<DynamicObject> = Api::all_with(
        client.clone(),
        &resource(
            "ValidatingAdmissionPolicyBinding",
            "validatingadmissionpolicybindings",
        ),
    );
    bindings
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();
    // The policy is enforced once the API server has compiled it: wait for a refusal.
    let probe: Secret = serde_json::from_value(serde_json::json!({
        "metadata": {"name": "probe", "labels": {"owner": "probe"}}
    }))
    .unwrap();
    let secrets = Api::<Secret>::namespaced(client.clone(), namespace);
    for _ in 0..100 {
        let dry = PostParams {
            dry_run: true,
            ..PostParams::default()
        };
        if secrets.create(&dry, &probe).await.is_err() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    [policy_name.clone(), policy_name]
}

/// The API server's refusal is scrubbed in courier's own error, but with `--log-level
/// debug` (whose help says logs never hold secret values) the Kubernetes client logs the
/// refusal as the API server wrote it, value and all: here an admission policy that
/// quotes the label a template made from the username.
#[tokio::test]
async fn a_debug_log_never_holds_a_value_the_api_server_quotes_back() {
    let platform = Platform::new("leak-debug").await;
    let target = platform.target("leak-debug-t", true).await;
    let instance = format!("leak-debug-{}", platform.id);
    let user = format!("userone-{}", platform.id);
    platform
        .put_source("shared", &[("username", &user), ("password", "pw")])
        .await;
    let label = "        metadata:\n          labels: {owner: \"{{ .username }}\"}";
    write_templated(&platform, &[("labelled", label)]);
    let [policy, binding] =
        refuse_owner_labels_in(&platform.client, &target.name, &platform.id).await;

    let output = Command::new(env!("CARGO_BIN_EXE_courier"))
        .args([
            "apply",
            platform.manifests.path().to_str().unwrap(),
            "--kubeconfig",
            control_plane().kubeconfig.to_str().unwrap(),
            "--instance",
            &instance,
            "--log-level",
            "debug",
        ])
        .env_remove("KUBECONFIG")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    for (kind, plural, name) in [
        (
            "ValidatingAdmissionPolicyBinding",
            "validatingadmissionpolicybindings",
            binding,
        ),
        (
            "ValidatingAdmissionPolicy",
            "validatingadmissionpolicies",
            policy,
        ),
    ] {
        let resource = kube::discovery::ApiResource {
            group: "admissionregistration.k8s.io".into(),
            version: "v1".into(),
            api_version: "admissionregistration.k8s.io/v1".into(),
            kind: kind.into(),
            plural: plural.into(),
        };
        let api: Api<kube::api::DynamicObject> = Api::all_with(platform.client.clone(), &resource);
        let _ = api.delete(&name, &Default::default()).await;
    }
    assert_eq!(output.status.code(), Some(1), "refused: {stdout}{stderr}");
    // courier's own error names the refusal, without the value.
    assert!(
        stderr.contains("may not hold Secrets here"),
        "the refusal is reported: {stderr}"
    );
    assert_hidden(&[&user], &format!("{stdout}{stderr}"));
}

#[tokio::test]
async fn a_value_the_api_server_would_refuse_fails_its_target_alone_without_the_value() {
    let platform = Platform::new("leak-refused").await;
    let target = platform.target("leak-refused-t", true).await;
    let instance = format!("leak-refused-{}", platform.id);
    // Spaces make it no label value: today's API server answers 422 quoting it.
    let marker = format!("refused marker {}", platform.id);
    platform
        .put_source("shared", &[("username", &marker), ("password", "pw")])
        .await;
    let label = "        metadata:\n          labels: {owner: \"{{ .username }}\"}";
    let dockerconfig = "        type: kubernetes.io/dockerconfigjson\n        data: {.dockerconfigjson: \"{{ .username }}\"}";
    let fine = "        data: {password: \"{{ .password }}\"}";
    write_templated(
        &platform,
        &[
            ("labelled", label),
            ("registry", dockerconfig),
            ("fine", fine),
        ],
    );

    for command in ["apply", "diff"] {
        let (code, stdout, stderr) = run(&platform, command, &instance);
        assert_hidden(&[&marker], &format!("{stdout}{stderr}"));
        // apply's errors exit 1; diff's, as kubectl diff's, 2.
        let failed = if command == "diff" { 2 } else { 1 };
        assert_eq!(code, failed, "{command}: {stdout}{stderr}");
        assert!(
            stderr.contains(&format!(
                "ClusterExternalSecret/labelled-{}: target {}/labelled: template.metadata.labels[owner]: renders a label value the API server refuses",
                platform.id, target.name
            )),
            "{command}: {stderr}"
        );
        assert!(
            stderr.contains(&format!(
                "target {}/registry: data[.dockerconfigjson]: is not a JSON object",
                target.name
            )),
            "{command}: {stderr}"
        );
    }
    let secrets = Api::<Secret>::namespaced(platform.client.clone(), &target.name);
    assert!(
        secrets.get_opt("fine").await.unwrap().is_some(),
        "the other target is applied"
    );
    assert!(secrets.get_opt("labelled").await.unwrap().is_none());
    assert!(secrets.get_opt("registry").await.unwrap().is_none());
}

/// The scrubber itself, against what the API server answers: a Secret sent with
/// courier's checks bypassed (built by hand, written by the library's apply) is refused
/// with a 422 that quotes the label value, the label key, the annotation key and a data
/// key a template made, and the error courier reports holds none of them, nor the data
/// values.
#[tokio::test]
async fn the_api_server_s_refusal_is_scrubbed_of_every_value_sent() {
    use courier::core::model::{CreationPolicy, DeletionPolicy};
    use courier::core::plan::{DesiredSecret, Plan, SecretBody};
    use courier::core::redact::Derived;
    use courier::core::secret_bytes::SecretBytes;
    use courier::live::apply::{ApplyOptions, reconcile};
    use courier::live::cluster::Snapshot;

    let client = admin_client().await;
    let namespace = TestNamespace::create(&client, "leak-scrub").await;
    let id = namespace.name.rsplit('-').next().unwrap().to_owned();
    let label_value = format!("label value {id} \"quoted\"\nnewline");
    let label_key = format!("Key With Spaces {id}");
    let annotation_key = format!("annotation key {id}");
    let data_value = format!("data-value-{id}");
    let derived = |field: &str, key: bool| Derived {
        field: field.to_owned(),
        key,
    };
    let map = |pairs: &[(&str, &str)]| -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    };
    let secret =
        |name: &str, labels, annotations, derived_labels, derived_annotations| DesiredSecret {
            namespace: namespace.name.clone(),
            name: name.to_owned(),
            owner: Arc::from("ClusterExternalSecret/scrub"),
            body: Arc::new(SecretBody {
                type_: "Opaque".into(),
                labels,
                annotations,
                derived_labels,
                derived_annotations,
                derived_data: BTreeMap::new(),
                data: [("k".to_owned(), SecretBytes::from(data_value.as_str()))].into(),
                immutable: false,
                finalizers: Vec::new(),
                creation_policy: CreationPolicy::Owner,
                deletion_policy: DeletionPolicy::Retain,
                varying: None,
            }),
        };
    // A data key a KeysAndValues template made from the values, which the API server
    // refuses (and quotes).
    let data_key = format!("data key {id}");
    let mut bad_data_key = secret(
        "bad-data-key",
        BTreeMap::new(),
        BTreeMap::new(),
        BTreeMap::new(),
        BTreeMap::new(),
    );
    {
        let body = Arc::make_mut(&mut bad_data_key.body);
        body.data = [(data_key.clone(), SecretBytes::from("v"))].into();
        body.derived_data = [(
            data_key.clone(),
            derived("template.templateFrom[0].literal", true),
        )]
        .into();
    }
    let plan = Plan {
        secrets: vec![
            bad_data_key,
            secret(
                "bad-label-value",
                map(&[("owner", label_value.as_str())]),
                BTreeMap::new(),
                [(
                    "owner".to_owned(),
                    derived("template.metadata.labels[owner]", false),
                )]
                .into(),
                BTreeMap::new(),
            ),
            secret(
                "bad-label-key",
                map(&[(label_key.as_str(), "v")]),
                BTreeMap::new(),
                [(
                    label_key.clone(),
                    derived("template.templateFrom[0].literal", true),
                )]
                .into(),
                BTreeMap::new(),
            ),
            secret(
                "bad-annotation-key",
                BTreeMap::new(),
                map(&[(annotation_key.as_str(), data_value.as_str())]),
                BTreeMap::new(),
                [(
                    annotation_key.clone(),
                    derived("template.templateFrom[0].literal", true),
                )]
                .into(),
            ),
        ],
        errors: Vec::new(),
        unwritten: Vec::new(),
    };
    let snapshot = Snapshot {
        world: Default::default(),
        managed: BTreeMap::new(),
        cluster_id: None,
    };
    let options = ApplyOptions {
        instance: format!("scrub-{id}"),
        ..ApplyOptions::default()
    };
    let report = reconcile(&client, &plan, &snapshot, &options).await;
    assert_eq!(report.errors.len(), 4, "{:?}", report);
    let text: String = report
        .errors
        .iter()
        .map(|e| format!("{e}\n"))
        .collect::<String>();
    // The API server did refuse each one, and said where.
    assert!(text.contains("metadata.labels"), "{text}");
    assert!(text.contains("metadata.annotations"), "{text}");
    assert!(text.contains("data["), "{text}");
    assert!(
        text.contains(r#"metadata.labels: Invalid value: "*** REDACTED ***": a valid label"#),
        "{text}"
    );
    assert!(text.contains("(422)"), "{text}");
    let go_quoted = label_value.replace('"', "\\\"").replace('\n', "\\n");
    for leaked in [
        label_value.as_str(),
        go_quoted.as_str(),
        label_key.as_str(),
        annotation_key.as_str(),
        data_key.as_str(),
        data_value.as_str(),
    ] {
        assert!(!text.contains(leaked), "{leaked:?} in:\n{text}");
    }
    assert_hidden(&[&data_value], &text);
}
