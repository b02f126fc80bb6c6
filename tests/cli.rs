//! The `courier` binary end to end: streams, exit codes and error output.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

struct Outcome {
    code: i32,
    stdout: String,
    stderr: String,
}

fn courier(args: &[&str], stdin: Option<&[u8]>) -> Outcome {
    let mut child = Command::new(env!("CARGO_BIN_EXE_courier"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .env_remove("COURIER_LOG")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("courier runs");
    if let Some(input) = stdin {
        child.stdin.take().unwrap().write_all(input).unwrap();
    }
    let output = child.wait_with_output().unwrap();
    Outcome {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
    }
}

/// Every dummy value of the example platform; none may appear outside `render`'s stdout.
fn platform_values() -> Vec<String> {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/platform/central-secret-store.yaml"),
    )
    .unwrap();
    text.lines()
        .filter_map(|line| line.trim().split_once(": ").map(|(_, v)| v.to_owned()))
        .filter(|v| {
            v.starts_with("dummy")
                || v.starts_with("ghp_")
                || v.starts_with("$2a$")
                || v.starts_with("ZHVtbXkg")
        })
        .collect()
}

#[test]
fn render_prints_the_seventeen_platform_secrets_sorted_and_deterministic() {
    let first = courier(&["render", "examples/platform"], None);
    assert_eq!(first.code, 0, "{}", first.stderr);
    assert_eq!(first.stderr, "");
    let documents: Vec<serde_json::Value> = serde_saphyr::from_multiple(&first.stdout).unwrap();
    assert_eq!(documents.len(), 17);
    let keys: Vec<(String, String)> = documents
        .iter()
        .map(|d| {
            (
                d["metadata"]["namespace"].as_str().unwrap().into(),
                d["metadata"]["name"].as_str().unwrap().into(),
            )
        })
        .collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
    for document in &documents {
        assert_eq!(document["apiVersion"], "v1");
        assert_eq!(document["kind"], "Secret");
        assert_eq!(
            document["metadata"]["labels"]["app.kubernetes.io/managed-by"],
            "courier"
        );
        assert!(
            document["metadata"]["annotations"]["courier.dev/origin"]
                .as_str()
                .unwrap()
                .starts_with("ClusterExternalSecret/")
        );
        assert!(
            document["metadata"]["annotations"]
                .get("courier.dev/data-hash")
                .is_none(),
            "no digest of the values is written"
        );
    }
    let registry = documents
        .iter()
        .find(|d| {
            d["metadata"]["namespace"] == "n8n"
                && d["metadata"]["name"] == "gh-docker-registry-creds"
        })
        .unwrap();
    assert_eq!(registry["type"], "kubernetes.io/dockerconfigjson");
    use base64::Engine as _;
    let decode = |v: &serde_json::Value| {
        base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap())
            .unwrap()
    };
    let config: serde_json::Value =
        serde_json::from_slice(&decode(&registry["data"][".dockerconfigjson"])).unwrap();
    let auth = &config["auths"]["ghcr.io"];
    assert_eq!(auth["username"], "platform-bot");
    assert_eq!(
        decode(&auth["auth"]),
        b"platform-bot:ghp_dummyDummyDummyDummyDummyDummy0000"
    );

    let second = courier(&["render", "examples/platform"], None);
    assert_eq!(first.stdout, second.stdout, "byte-for-byte deterministic");
}

#[test]
fn json_output_is_a_list_of_the_same_secrets() {
    let yaml = courier(&["render", "examples/platform"], None);
    let json = courier(&["render", "examples/platform", "-o", "json"], None);
    assert_eq!(json.code, 0, "{}", json.stderr);
    let list: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(list["kind"], "List");
    let documents: Vec<serde_json::Value> = serde_saphyr::from_multiple(&yaml.stdout).unwrap();
    assert_eq!(list["items"].as_array().unwrap(), &documents);
}

#[test]
fn stdin_gives_the_same_output_as_the_directory() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/platform");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    let stream = files
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect::<Vec<_>>()
        .join("\n---\n");
    let from_stdin = courier(&["render", "-"], Some(stream.as_bytes()));
    assert_eq!(from_stdin.code, 0, "{}", from_stdin.stderr);
    assert_eq!(
        from_stdin.stdout,
        courier(&["render", "examples/platform"], None).stdout
    );
}

#[test]
fn check_lists_targets_without_any_value() {
    let check = courier(&["check", "examples/platform"], None);
    assert_eq!(check.code, 0, "{}", check.stderr);
    assert_eq!(
        check.stdout.lines().count(),
        18,
        "a header and 17 targets:\n{}",
        check.stdout
    );
    assert!(check.stdout.contains("n8n-operator-system    gh-docker-registry-creds     kubernetes.io/dockerconfigjson  ClusterExternalSecret/application-docker-registry"));
    assert!(
        check.stderr.contains("17 target Secrets in 13 namespaces"),
        "{}",
        check.stderr
    );
    for value in platform_values() {
        assert!(
            !check.stdout.contains(&value) && !check.stderr.contains(&value),
            "check printed a value"
        );
    }
}

#[test]
fn redact_hides_every_value_but_keeps_keys() {
    let redacted = courier(&["render", "--redact", "examples/platform"], None);
    assert_eq!(redacted.code, 0);
    assert!(
        redacted
            .stdout
            .contains(".dockerconfigjson: \"*** REDACTED ***\""),
        "{}",
        redacted.stdout
    );
    let revealed = courier(&["render", "examples/platform"], None);
    let documents: Vec<serde_json::Value> = serde_saphyr::from_multiple(&revealed.stdout).unwrap();
    for document in documents {
        for encoded in document["data"].as_object().unwrap().values() {
            assert!(!redacted.stdout.contains(encoded.as_str().unwrap()));
        }
    }
}

/// Every form of the fixture's marker value a leak could take.
fn marker_forms(marker: &str) -> Vec<String> {
    use base64::Engine as _;
    let base64 = base64::engine::general_purpose::STANDARD;
    vec![
        marker.to_owned(),
        base64.encode(marker),
        base64.encode(format!("{marker}-password")),
    ]
}

#[test]
fn redact_hides_labels_and_annotations_a_template_made_from_values() {
    const FIXTURE: &str = "tests/cmd/fixtures/templated-metadata";
    let revealed = courier(&["render", FIXTURE], None);
    assert_eq!(revealed.code, 0, "{}", revealed.stderr);
    // The template did put the value into the metadata: what is hidden below is there.
    assert!(
        revealed.stdout.contains("owner: hunter2-marker")
            && revealed.stdout.contains("last-user: hunter2-marker"),
        "{}",
        revealed.stdout
    );

    for format in ["yaml", "json"] {
        let redacted = courier(&["render", "--redact", "-o", format, FIXTURE], None);
        assert_eq!(redacted.code, 0, "{}", redacted.stderr);
        for leaked in marker_forms("hunter2-marker") {
            assert!(
                !redacted.stdout.contains(&leaked) && !redacted.stderr.contains(&leaked),
                "{format}: {leaked} was printed:\n{}{}",
                redacted.stdout,
                redacted.stderr
            );
        }
        let documents: Vec<serde_json::Value> = if format == "yaml" {
            serde_saphyr::from_multiple(&redacted.stdout).unwrap()
        } else {
            let list: serde_json::Value = serde_json::from_str(&redacted.stdout).unwrap();
            list["items"].as_array().unwrap().clone()
        };
        let metadata = &documents[0]["metadata"];
        assert_eq!(
            metadata["labels"]["owner"], "*** REDACTED ***",
            "{metadata}"
        );
        assert_eq!(
            metadata["labels"]["team"], "platform",
            "the manifest's own stay"
        );
        assert_eq!(
            metadata["labels"]["app.kubernetes.io/managed-by"], "courier",
            "courier's own stay"
        );
        assert_eq!(metadata["annotations"]["note"], "set by hand");
        // templateFrom's KeysAndValues output makes the key too: hidden as well.
        assert_eq!(
            metadata["annotations"]["*** REDACTED KEY 1 ***"], "*** REDACTED ***",
            "{metadata}"
        );
    }

    let check = courier(&["check", FIXTURE], None);
    assert_eq!(check.code, 0, "{}", check.stderr);
    for leaked in marker_forms("hunter2-marker") {
        assert!(!check.stdout.contains(&leaked) && !check.stderr.contains(&leaked));
    }
}

/// A data key that a KeysAndValues template rendered from the values (`{{ .user }}:
/// {{ .password }}`, an htpasswd-like map) is a value too: `render --redact` hides it as it
/// hides such a label or annotation key (numbered, `*** REDACTED KEY 1 ***`), in YAML and
/// JSON, and an error about such a key names its template, not the key.
#[test]
fn redact_hides_a_data_key_a_template_made_from_values() {
    let world = |template: &str| {
        format!(
            "apiVersion: v1\nkind: Namespace\nmetadata: {{name: central}}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {{name: app}}\n---\napiVersion: v1\nkind: Secret\nmetadata: {{name: src, namespace: central}}\nstringData: {{user: hunter2-marker, password: pw}}\n---\napiVersion: external-secrets.io/v1\nkind: ClusterSecretStore\nmetadata: {{name: central}}\nspec: {{provider: {{kubernetes: {{remoteNamespace: central}}}}}}\n---\napiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {{name: users, namespace: app}}\nspec:\n  secretStoreRef: {{kind: ClusterSecretStore, name: central}}\n  target:\n    template:\n      data: {{fixed: plain}}\n      templateFrom:\n      - {{literal: '{template}', target: Data}}\n  dataFrom: [{{extract: {{key: src}}}}]\n"
        )
    };
    let dir = write_world(&[("w.yaml", &world(r#"{{ .user }}: "{{ .password }}""#))]);
    let path = dir.path().to_str().unwrap();
    let revealed = courier(&["render", path], None);
    assert_eq!(revealed.code, 0, "{}", revealed.stderr);
    assert!(
        revealed.stdout.contains("hunter2-marker:"),
        "{}",
        revealed.stdout
    );
    for format in ["yaml", "json"] {
        let redacted = courier(&["render", "--redact", "-o", format, path], None);
        assert_eq!(redacted.code, 0, "{}", redacted.stderr);
        for leaked in marker_forms("hunter2-marker") {
            assert!(
                !redacted.stdout.contains(&leaked) && !redacted.stderr.contains(&leaked),
                "{leaked} was printed:\n{}{}",
                redacted.stdout,
                redacted.stderr
            );
        }
        // The key is there, hidden; the manifest's own key is shown.
        assert!(
            redacted.stdout.contains("*** REDACTED KEY 1 ***") && redacted.stdout.contains("fixed"),
            "{}",
            redacted.stdout
        );
    }

    // A key the API server would refuse, rendered from the values: the error names the
    // template, never the key.
    let dir = write_world(&[("w.yaml", &world(r#"{{ .user }} x: "{{ .password }}""#))]);
    let path = dir.path().to_str().unwrap();
    for command in ["render", "check"] {
        let refused = courier(&[command, path], None);
        assert_eq!(refused.code, 1, "{command}: {}", refused.stderr);
        assert!(
            refused
                .stderr
                .contains("template.templateFrom[0].literal (a data key it renders)"),
            "{command}: {}",
            refused.stderr
        );
        for leaked in marker_forms("hunter2-marker") {
            assert!(
                !refused.stdout.contains(&leaked) && !refused.stderr.contains(&leaked),
                "{command}: {leaked} was printed:\n{}",
                refused.stderr
            );
        }
    }
}

/// `--redact` ("every value replaced, safe for logs and PR comments") with
/// `--passthrough` (`helm template . | courier render --redact --passthrough -`, the
/// chart's rendering for a CI log): the input's own Secret that is not a source (the
/// chart's database password) is printed with its keys and every value replaced, in
/// `stringData` and `data` alike; other objects pass as they came.
#[test]
fn redact_hides_the_values_of_passed_through_secrets() {
    let input = "apiVersion: v1\nkind: Namespace\nmetadata: {name: central}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: app}\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: src, namespace: central}\nstringData: {user: u, password: pw}\n---\napiVersion: external-secrets.io/v1\nkind: ClusterSecretStore\nmetadata: {name: central}\nspec: {provider: {kubernetes: {remoteNamespace: central}}}\n---\napiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {name: users, namespace: app}\nspec:\n  secretStoreRef: {kind: ClusterSecretStore, name: central}\n  dataFrom: [{extract: {key: src}}]\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: chart-db, namespace: app}\nstringData: {password: hunter2-marker}\ndata: {token: aHVudGVyMi1tYXJrZXItcGFzc3dvcmQ=}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings, namespace: app}\ndata: {mode: live}\n";
    let redacted = courier(
        &["render", "--redact", "--passthrough", "-"],
        Some(input.as_bytes()),
    );
    assert_eq!(redacted.code, 0, "{}", redacted.stderr);
    assert!(
        redacted.stdout.contains("chart-db") && redacted.stdout.contains("mode: live"),
        "passed through: {}",
        redacted.stdout
    );
    for leaked in marker_forms("hunter2-marker") {
        assert!(
            !redacted.stdout.contains(&leaked) && !redacted.stderr.contains(&leaked),
            "{leaked} was printed:\n{}",
            redacted.stdout
        );
    }
}

fn write_world(files: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for (name, text) in files {
        std::fs::write(dir.path().join(name), text).unwrap();
    }
    dir
}

const GOOD: &str = "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\napiVersion: external-secrets.io/v1\nkind: ClusterSecretStore\nmetadata: {name: central}\nspec: {provider: {kubernetes: {remoteNamespace: central}}}\n";

#[test]
fn errors_are_all_reported_on_stderr_with_file_and_line_and_nothing_on_stdout() {
    let dir = write_world(&[
        ("a-good.yaml", GOOD),
        (
            "b-syntax.yaml",
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: x\n  namespace: central\nstringData: {password: \"hunter2-marker\n",
        ),
        (
            "c-base64.yaml",
            "apiVersion: v1\nkind: Secret\nmetadata: {name: bad, namespace: central}\ndata: {password: 'hunter2-marker!'}\n",
        ),
        (
            "d-type.yaml",
            "apiVersion: v1\nkind: Secret\nmetadata: {name: typed, namespace: central}\nstringData: {password: [hunter2-marker]}\n",
        ),
        (
            "e-version.yaml",
            "apiVersion: external-secrets.io/v1alpha1\nkind: ExternalSecret\nmetadata: {name: old, namespace: a}\n",
        ),
        (
            "f-dup.yaml",
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n",
        ),
    ]);
    let path = dir.path().to_str().unwrap();
    let run = courier(&["render", path], None);
    assert_eq!(run.code, 1);
    assert_eq!(run.stdout, "", "nothing is rendered when anything fails");
    assert!(!run.stderr.contains("hunter2"), "{}", run.stderr);
    let expect = [
        format!("error: {path}/b-syntax.yaml:6: invalid YAML: unclosed quote"),
        format!(
            "error: {path}/c-base64.yaml:1: Secret/central/bad: data.password: not valid base64"
        ),
        format!(
            "error: {path}/d-type.yaml:1: Secret/central/typed: stringData.password: invalid type: sequence, expected a string"
        ),
        format!(
            "error: {path}/e-version.yaml:1: ExternalSecret/a/old: unsupported apiVersion \"external-secrets.io/v1alpha1\""
        ),
        format!(
            "error: {path}/f-dup.yaml:1: Namespace/a: defined twice: first at {path}/a-good.yaml:1, again here"
        ),
    ];
    for line in expect {
        assert!(
            run.stderr.contains(&line),
            "missing {line:?} in:\n{}",
            run.stderr
        );
    }
    assert!(
        run.stderr
            .trim_end()
            .ends_with("errors; nothing was rendered"),
        "{}",
        run.stderr
    );
}

#[test]
fn check_fails_where_render_fails_when_the_world_holds_the_sources() {
    let dir = write_world(&[
        ("world.yaml", GOOD),
        (
            "ces.yaml",
            "apiVersion: external-secrets.io/v1\nkind: ClusterExternalSecret\nmetadata: {name: s}\nspec:\n  namespaces: [a]\n  externalSecretSpec:\n    secretStoreRef: {kind: ClusterSecretStore, name: central}\n    data:\n    - {secretKey: k, remoteRef: {key: not-there, property: p}}\n",
        ),
    ]);
    let path = dir.path().to_str().unwrap();
    let expected = format!(
        "error: {path}/ces.yaml:9: ClusterExternalSecret/s: target a/s: data[0] (secretKey \"k\"): source Secret central/not-there not found"
    );
    let render = courier(&["render", path], None);
    assert_eq!(render.code, 1);
    assert!(render.stderr.contains(&expected), "{}", render.stderr);
    // check prints no value, but where the files hold the sources it finds what render
    // would: a missing source, key or template variable.
    let check = courier(&["check", path], None);
    assert_eq!(check.code, 1, "{}", check.stderr);
    assert!(check.stderr.contains(&expected), "{}", check.stderr);
    assert!(
        check.stderr.ends_with("error: 1 error; check failed\n"),
        "{}",
        check.stderr
    );
    assert!(check.stdout.is_empty());
}

#[test]
fn a_closed_pipe_ends_quietly() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_courier"))
        .args(["render", "examples/platform"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let output = child.wait_with_output().unwrap();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn usage_errors_exit_two_without_a_panic() {
    let run = courier(&["render"], None);
    assert_eq!(run.code, 2);
    assert!(run.stderr.contains("required"), "{}", run.stderr);
}

#[test]
fn the_example_ci_script_passes_a_good_repo_and_fails_a_broken_one() {
    let out = tempfile::tempdir().unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/ci/courier-ci.sh");
    let run = |dir: &str| {
        Command::new("bash")
            .args([script, dir, out.path().to_str().unwrap()])
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .env("COURIER", env!("CARGO_BIN_EXE_courier"))
            .env_remove("KUBECONFIG")
            .output()
            .unwrap()
    };
    let good = run("examples/platform");
    let stdout = String::from_utf8_lossy(&good.stdout);
    assert!(
        good.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&good.stderr)
    );
    assert!(stdout.contains("(17 Secrets)"), "{stdout}");
    let rendered = std::fs::read_to_string(out.path().join("rendered-redacted.yaml")).unwrap();
    for value in platform_values() {
        assert!(
            !rendered.contains(&value) && !stdout.contains(&value),
            "the CI output holds a value"
        );
    }
    let broken = write_world(&[(
        "x.yaml",
        "apiVersion: external-secrets.io/v1\nkind: ClusterExternalSecret\nmetadata: {name: x}\nspec:\n  namespaceSelectors: [{matchExpressions: [{key: a, operator: Equals, values: [b]}]}]\n  externalSecretSpec: {secretStoreRef: {kind: ClusterSecretStore, name: s}, dataFrom: [{extract: {key: src}}]}\n",
    )]);
    let failed = run(broken.path().to_str().unwrap());
    assert!(!failed.status.success(), "a broken repo fails the build");
    assert!(
        String::from_utf8_lossy(&failed.stderr).contains("unknown operator"),
        "{}",
        String::from_utf8_lossy(&failed.stderr)
    );
}

#[test]
fn a_file_named_twice_is_read_once() {
    let once = courier(&["render", "examples/platform"], None);
    let twice = courier(
        &[
            "render",
            "examples/platform",
            "examples/platform/namespaces.yaml",
            "./examples/platform/../platform/namespaces.yaml",
        ],
        None,
    );
    assert_eq!(twice.code, 0, "{}", twice.stderr);
    assert!(!twice.stderr.contains("defined twice"), "{}", twice.stderr);
    assert_eq!(twice.stdout, once.stdout);
}

/// The GitHub Actions example's check step, run as written: its `run:` script with the
/// workflow's environment, `courier` on PATH, against the seed platform and a broken repo.
#[test]
fn github_actions_example_runs_as_written() {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/ci/github-actions.yaml"
    ))
    .unwrap();
    let workflow: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
    let steps = workflow["jobs"]["check"]["steps"].as_array().unwrap();
    let step = |name: &str| {
        steps
            .iter()
            .find(|s| s["name"] == name)
            .unwrap_or_else(|| panic!("no step {name:?}"))
    };
    assert_eq!(
        step("Install courier")["run"],
        "cargo install --locked --git \"$COURIER_GIT\" courier"
    );
    let script = step("Check, render redacted, diff against the cluster")["run"]
        .as_str()
        .unwrap()
        .to_owned();
    let bin_dir = std::path::Path::new(env!("CARGO_BIN_EXE_courier"))
        .parent()
        .unwrap()
        .to_owned();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let run = |manifests: &str| {
        let work = tempfile::tempdir().unwrap();
        let output = Command::new("bash")
            .args(["-c", &script])
            .current_dir(work.path())
            .env("PATH", &path)
            .env("MANIFESTS", manifests)
            .env("RUNNER_TEMP", work.path())
            .env("KUBECONFIG_DATA", "")
            .env_remove("KUBECONFIG")
            .output()
            .unwrap();
        let rendered =
            std::fs::read_to_string(work.path().join("courier-ci-out/rendered-redacted.yaml"))
                .unwrap_or_default();
        (output, rendered)
    };
    let platform = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/platform");
    let (good, rendered) = run(platform);
    assert!(
        good.status.success(),
        "{}{}",
        String::from_utf8_lossy(&good.stdout),
        String::from_utf8_lossy(&good.stderr)
    );
    assert_eq!(rendered.matches("kind: Secret").count(), 17, "{rendered}");
    for value in platform_values() {
        assert!(
            !rendered.contains(&value),
            "the redacted render holds a value"
        );
    }
    let broken = write_world(&[(
        "x.yaml",
        "apiVersion: external-secrets.io/v1\nkind: ClusterExternalSecrets\nmetadata: {name: x}\n",
    )]);
    let (failed, _) = run(broken.path().to_str().unwrap());
    assert!(
        !failed.status.success(),
        "a broken repository fails the step"
    );
}

/// `kubectl get secret -o yaml` (or a manifest once applied with `kubectl apply`) carries
/// the whole Secret again in its `kubectl.kubernetes.io/last-applied-configuration`
/// annotation: `--redact --passthrough` must not print the values from there either.
#[test]
fn redact_hides_the_values_a_passed_through_secret_repeats_in_last_applied_configuration() {
    let input = "apiVersion: v1\nkind: Secret\nmetadata:\n  name: chart-db\n  namespace: app\n  annotations:\n    kubectl.kubernetes.io/last-applied-configuration: '{\"apiVersion\":\"v1\",\"kind\":\"Secret\",\"metadata\":{\"name\":\"chart-db\",\"namespace\":\"app\"},\"data\":{\"token\":\"aHVudGVyMi1tYXJrZXItcGFzc3dvcmQ=\"},\"stringData\":{\"password\":\"hunter2-marker\"}}'\nstringData: {password: hunter2-marker}\ndata: {token: aHVudGVyMi1tYXJrZXItcGFzc3dvcmQ=}\n";
    let redacted = courier(
        &["render", "--redact", "--passthrough", "-"],
        Some(input.as_bytes()),
    );
    assert_eq!(redacted.code, 0, "{}", redacted.stderr);
    assert!(redacted.stdout.contains("chart-db"), "{}", redacted.stdout);
    for leaked in marker_forms("hunter2-marker") {
        assert!(
            !redacted.stdout.contains(&leaked) && !redacted.stderr.contains(&leaked),
            "{leaked} was printed:\n{}",
            redacted.stdout
        );
    }
}

/// `--redact` replaces a passed-through Secret's values and keeps the rest as it came: no
/// field the input did not have (`data: null`, `items: null`; a Secret has no `items`,
/// and `kubectl apply`'s strict field validation refuses one).
#[test]
fn redact_adds_no_field_to_a_passed_through_secret() {
    let input = "apiVersion: v1\nkind: Secret\nmetadata: {name: chart-db, namespace: app}\nstringData: {password: hunter2-marker}\n";
    let redacted = courier(
        &["render", "--redact", "--passthrough", "-o", "json", "-"],
        Some(input.as_bytes()),
    );
    assert_eq!(redacted.code, 0, "{}", redacted.stderr);
    let list: serde_json::Value = serde_json::from_str(&redacted.stdout).unwrap();
    let secret = &list["items"][0];
    let mut fields: Vec<&str> = secret
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    fields.sort_unstable();
    assert_eq!(
        fields,
        ["apiVersion", "kind", "metadata", "stringData"],
        "{secret}"
    );
}

/// Errors name files, objects and keys, never values: `{{ fail .password }}` is scrubbed
/// (the value, its base64, quoted and escaped forms). A template that fails with text
/// made from the value (upper-cased, cut, spaced, hex) would carry it past that scrubber
/// into the error, which `diff --live` prints in a CI log or a PR comment, `render
/// --redact` on stderr, Argo CD in its UI, and `--from-cluster` in an ExternalSecret's
/// status and Events: such text is shown only when it is the template's own.
#[test]
fn template_errors_never_carry_a_value_in_another_form() {
    let base = "apiVersion: v1\nkind: Namespace\nmetadata: {name: app}\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: src, namespace: app}\nstringData: {password: hunter2marker}\n---\napiVersion: external-secrets.io/v1\nkind: SecretStore\nmetadata: {name: local, namespace: app}\nspec: {provider: {kubernetes: {remoteNamespace: app}}}\n---\napiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {name: web, namespace: app}\nspec:\n  secretStoreRef: {name: local}\n  target:\n    name: web\n    template:\n      data:\n        a: 'TEMPLATE'\n  dataFrom:\n  - extract: {key: src}\n";
    let mut leaks = Vec::new();
    for (template, form) in [
        ("{{ fail .password }}", "hunter2marker"),
        ("{{ fail (upper .password) }}", "HUNTER2MARKER"),
        ("{{ fail (substr 1 100 .password) }}", "unter2marker"),
        (
            "{{ fail (printf \"%x\" .password) }}",
            "68756e746572326d61726b6572",
        ),
        (
            "{{ semverCompare (upper .password) \"1.0.0\" }}",
            "HUNTER2MARKER",
        ),
    ] {
        let input = base.replace("TEMPLATE", template);
        let outcome = courier(&["render", "--redact", "-"], Some(input.as_bytes()));
        assert_eq!(outcome.code, 1, "{template}: {}", outcome.stdout);
        if outcome.stderr.contains(form) || outcome.stdout.contains(form) {
            leaks.push(format!("{template}: {}", outcome.stderr.trim()));
        }
    }
    assert!(leaks.is_empty(), "{}", leaks.join("\n"));
    // The template's own text is its author's message, and is shown.
    let input = base.replace("TEMPLATE", "{{ fail \"no password for this app\" }}");
    let outcome = courier(&["render", "--redact", "-"], Some(input.as_bytes()));
    assert_eq!(outcome.code, 1);
    assert!(
        outcome.stderr.contains("no password for this app"),
        "{}",
        outcome.stderr
    );
}

/// A find that matches nothing under `deletionPolicy: Retain`: ESO writes nothing, and a
/// files world's existing target is printed unchanged. Its label `owner` is what the
/// manifest's own template makes from the values (`{{ .user }}`) on every other render,
/// so `--redact` hides it there; printed unchanged, the earlier rendering's value is
/// shown (diff hides such old label values: "an earlier rendering of a template may have
/// made it from the values").
#[test]
fn redact_hides_the_value_made_labels_of_a_target_printed_unchanged() {
    let input = "apiVersion: v1\nkind: Namespace\nmetadata: {name: app}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: central}\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: src, namespace: central}\nstringData: {user: bot}\n---\napiVersion: v1\nkind: Secret\nmetadata:\n  name: web\n  namespace: app\n  labels: {app.kubernetes.io/managed-by: courier, owner: hunter2-marker}\n  annotations: {courier.dev/origin: ExternalSecret/app/web}\nstringData: {password: hunter2-marker-password}\n---\napiVersion: external-secrets.io/v1\nkind: ClusterSecretStore\nmetadata: {name: central}\nspec: {provider: {kubernetes: {remoteNamespace: central}}}\n---\napiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {name: web, namespace: app}\nspec:\n  secretStoreRef: {kind: ClusterSecretStore, name: central}\n  target:\n    name: web\n    deletionPolicy: Retain\n    template:\n      metadata:\n        labels: {owner: '{{ .user }}'}\n  dataFrom:\n  - find: {name: {regexp: '^nothing$'}}\n";
    let redacted = courier(&["render", "--redact", "-"], Some(input.as_bytes()));
    assert_eq!(redacted.code, 0, "{}", redacted.stderr);
    assert!(
        redacted.stdout.contains("name: web"),
        "printed unchanged: {}",
        redacted.stdout
    );
    for leaked in marker_forms("hunter2-marker") {
        assert!(
            !redacted.stdout.contains(&leaked) && !redacted.stderr.contains(&leaked),
            "{leaked} was printed:\n{}",
            redacted.stdout
        );
    }
}
