//! ESO semantics of the planner, on small worlds written as YAML.

use courier::core::load::load_str;
use courier::core::plan::{self, Plan};
use courier::core::world::World;

const STORE: &str = r#"---
apiVersion: external-secrets.io/v1
kind: ClusterSecretStore
metadata: {name: central}
spec:
  provider:
    kubernetes: {remoteNamespace: central}
"#;

fn namespaces(specs: &[(&str, &str)]) -> String {
    specs
        .iter()
        .map(|(name, labels)| format!("---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: {name}\n  labels: {{{labels}}}\n"))
        .collect()
}

fn run(yaml: &str) -> Plan {
    let inputs = load_str("world.yaml", yaml).unwrap_or_else(|e| panic!("load failed: {e:?}"));
    let world = World::from_inputs(&inputs).unwrap_or_else(|e| panic!("world failed: {e:?}"));
    plan::plan(&inputs.manifests, &world, &courier::providers::Registry)
}

fn ces(name: &str, selection: &str, spec: &str) -> String {
    format!(
        "---\napiVersion: external-secrets.io/v1\nkind: ClusterExternalSecret\nmetadata: {{name: {name}}}\nspec:\n{selection}\n  externalSecretSpec:\n    secretStoreRef: {{kind: ClusterSecretStore, name: central}}\n{spec}\n"
    )
}

fn secret(name: &str, string_data: &str) -> String {
    format!(
        "---\napiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: central}}\nstringData: {{{string_data}}}\n"
    )
}

fn value(plan: &Plan, namespace: &str, name: &str, key: &str) -> String {
    let secret = plan
        .secrets
        .iter()
        .find(|s| s.namespace == namespace && s.name == name)
        .unwrap_or_else(|| panic!("no Secret {namespace}/{name}; errors: {:?}", plan.errors));
    let bytes = secret
        .body
        .data
        .get(key)
        .unwrap_or_else(|| panic!("no key {key} in {namespace}/{name}"));
    String::from_utf8(bytes.expose().to_vec()).unwrap()
}

fn targets(plan: &Plan) -> Vec<String> {
    plan.secrets
        .iter()
        .map(|s| format!("{}/{}", s.namespace, s.name))
        .collect()
}

fn errors(plan: &Plan) -> String {
    plan.errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("\n")
}

const ONE_KEY: &str = "    data:\n    - secretKey: k\n      remoteRef: {key: src, property: a}";

#[test]
fn selectors_are_ored_and_unioned_with_names() {
    let world = namespaces(&[("a", "x: '1'"), ("b", "y: '1'"), ("c", ""), ("d", "x: '2'")])
        + STORE
        + &secret("src", "a: v")
        + &ces(
            "s",
            "  namespaceSelectors:\n  - matchLabels: {x: '1'}\n  - matchLabels: {y: '1'}\n  namespaces: [c, nonexistent]",
            ONE_KEY,
        );
    let plan = run(&world);
    assert_eq!(targets(&plan), ["a/s", "b/s", "c/s"], "{}", errors(&plan));
}

#[test]
fn empty_selector_matches_every_namespace_and_none_selects_nothing() {
    let world = namespaces(&[("a", ""), ("b", "")])
        + STORE
        + &secret("src", "a: v")
        + &ces("all", "  namespaceSelector: {}", ONE_KEY)
        + &ces("none", "  refreshTime: 1h", ONE_KEY);
    let plan = run(&world);
    assert_eq!(targets(&plan), ["a/all", "b/all"]);
}

#[test]
fn metadata_name_label_is_always_there() {
    let world = namespaces(&[("a", ""), ("b", "")])
        + STORE
        + &secret("src", "a: v")
        + &ces(
            "s",
            "  namespaceSelectors:\n  - matchLabels: {kubernetes.io/metadata.name: b}",
            ONE_KEY,
        );
    assert_eq!(targets(&run(&world)), ["b/s"]);
}

#[test]
fn not_in_matches_namespaces_without_the_key() {
    let world = namespaces(&[("a", "env: prod"), ("b", "env: dev"), ("c", "")])
        + STORE
        + &secret("src", "a: v")
        + &ces(
            "s",
            "  namespaceSelectors:\n  - matchExpressions:\n    - {key: env, operator: NotIn, values: [prod]}",
            ONE_KEY,
        );
    assert_eq!(targets(&run(&world)), ["b/s", "c/s"]);
}

#[test]
fn names_come_from_external_secret_name_then_target_name() {
    let world = namespaces(&[("a", "")])
        + STORE
        + &secret("src", "a: v")
        + &ces(
            "ces",
            "  externalSecretName: es-name\n  namespaces: [a]",
            ONE_KEY,
        )
        + &ces(
            "ces2",
            "  namespaces: [a]",
            &format!("    target: {{name: explicit}}\n{ONE_KEY}"),
        );
    assert_eq!(targets(&run(&world)), ["a/es-name", "a/explicit"]);
}

#[test]
fn property_rules_exact_key_then_json_path_then_whole_secret() {
    let world = namespaces(&[("a", "")])
        + STORE
        + &secret(
            "src",
            r#"file.png: raw, config: '{"db":{"user":"u","port":5432}}', password: p, username: u"#,
        )
        + &ces(
            "s",
            "  namespaces: [a]",
            "    data:\n    - {secretKey: exact, remoteRef: {key: src, property: file.png}}\n    - {secretKey: path, remoteRef: {key: src, property: config.db.user}}\n    - {secretKey: port, remoteRef: {key: src, property: config.db.port}}\n    - {secretKey: all, remoteRef: {key: src}}",
        );
    let plan = run(&world);
    assert_eq!(value(&plan, "a", "s", "exact"), "raw");
    assert_eq!(value(&plan, "a", "s", "path"), "u");
    assert_eq!(value(&plan, "a", "s", "port"), "5432");
    assert_eq!(
        value(&plan, "a", "s", "all"),
        r#"{"config":"{\"db\":{\"user\":\"u\",\"port\":5432}}","file.png":"raw","password":"p","username":"u"}"#
    );
}

#[test]
fn binary_values_pass_through_unchanged() {
    let world = namespaces(&[("a", "")])
        + STORE
        + "---\napiVersion: v1\nkind: Secret\nmetadata: {name: bin, namespace: central}\ndata: {blob: /wD+AQ==}\n"
        + &ces(
            "s",
            "  namespaces: [a]",
            "    dataFrom:\n    - extract: {key: bin}",
        );
    let plan = run(&world);
    assert_eq!(
        plan.secrets[0].body.data["blob"].expose(),
        [0xff, 0x00, 0xfe, 0x01]
    );
}

#[test]
fn string_data_wins_over_data_as_the_api_server_stores_it() {
    let world = namespaces(&[("a", "")])
        + STORE
        + "---\napiVersion: v1\nkind: Secret\nmetadata: {name: src, namespace: central}\ndata: {a: b2xk, b: a2VlcA==}\nstringData: {a: new}\n"
        + &ces(
            "s",
            "  namespaces: [a]",
            "    dataFrom:\n    - extract: {key: src}",
        );
    let plan = run(&world);
    assert_eq!(value(&plan, "a", "s", "a"), "new");
    assert_eq!(value(&plan, "a", "s", "b"), "keep");
}

#[test]
fn decoding_strategies_apply_per_entry() {
    let world = namespaces(&[("a", "")])
        + STORE
        + &secret("src", "b64: aGVsbG8=, url: _-8, plain: not base64!")
        + &ces(
            "s",
            "  namespaces: [a]",
            "    data:\n    - {secretKey: b64, remoteRef: {key: src, property: b64, decodingStrategy: Base64}}\n    - {secretKey: auto, remoteRef: {key: src, property: plain, decodingStrategy: Auto}}\n    - {secretKey: none, remoteRef: {key: src, property: b64}}",
        );
    let plan = run(&world);
    assert_eq!(value(&plan, "a", "s", "b64"), "hello");
    assert_eq!(value(&plan, "a", "s", "auto"), "not base64!");
    assert_eq!(value(&plan, "a", "s", "none"), "aGVsbG8=");
}

#[test]
fn data_from_applies_in_order_then_data_overrides() {
    let world = namespaces(&[("a", "")])
        + STORE
        + &secret("one", "k: one, only1: x")
        + &secret("two", "k: two")
        + &ces(
            "s",
            "  namespaces: [a]",
            "    dataFrom:\n    - extract: {key: one}\n    - extract: {key: two}\n    data:\n    - {secretKey: only1, remoteRef: {key: two, property: k}}",
        );
    let plan = run(&world);
    assert_eq!(value(&plan, "a", "s", "k"), "two");
    assert_eq!(value(&plan, "a", "s", "only1"), "two");
}

#[test]
fn find_by_name_and_tags_with_rewrite() {
    let world = namespaces(&[("a", "")])
        + STORE
        + &secret("db-main", "user: u")
        + &secret("db-replica", "user: r")
        + &secret("cache", "pw: c")
        + "---\napiVersion: v1\nkind: Secret\nmetadata: {name: tagged, namespace: central, labels: {team: x}}\nstringData: {k: t}\n"
        + &ces(
            "s",
            "  namespaces: [a]",
            "    dataFrom:\n    - find: {name: {regexp: '^db-'}}\n      rewrite:\n      - regexp: {source: 'db-(.*)', target: 'database_$1'}\n    - find: {tags: {team: x}}",
        );
    let plan = run(&world);
    assert_eq!(value(&plan, "a", "s", "database_main"), r#"{"user":"u"}"#);
    assert_eq!(
        value(&plan, "a", "s", "database_replica"),
        r#"{"user":"r"}"#
    );
    assert_eq!(value(&plan, "a", "s", "tagged"), r#"{"k":"t"}"#);
    assert_eq!(plan.secrets[0].body.data.len(), 3);
}

#[test]
fn merge_policy_replace_and_merge() {
    let template = |policy: &str| {
        format!(
            "    target:\n      template:\n        mergePolicy: {policy}\n        type: kubernetes.io/basic-auth\n        data: {{password: '{{{{ .a | upper }}}}'}}\n        metadata: {{labels: {{team: '{{{{ .a }}}}'}}}}\n    data:\n    - {{secretKey: a, remoteRef: {{key: src, property: a}}}}"
        )
    };
    let world = namespaces(&[("a", "")])
        + STORE
        + &secret("src", "a: v")
        + &ces("replace", "  namespaces: [a]", &template("Replace"))
        + &ces("merge", "  namespaces: [a]", &template("Merge"));
    let plan = run(&world);
    let keys = |name: &str| {
        let s = plan.secrets.iter().find(|s| s.name == name).unwrap();
        (
            s.body.data.keys().cloned().collect::<Vec<_>>(),
            s.body.type_.clone(),
            s.body.labels["team"].clone(),
        )
    };
    assert_eq!(
        keys("replace"),
        (
            vec!["password".to_string()],
            "kubernetes.io/basic-auth".into(),
            "v".into()
        )
    );
    assert_eq!(keys("merge").0, ["a", "password"]);
    assert_eq!(value(&plan, "a", "merge", "password"), "V");
}

#[test]
fn template_without_data_keeps_provider_data() {
    let world = namespaces(&[("a", "")])
        + STORE
        + &secret("src", "a: v")
        + &ces(
            "s",
            "  namespaces: [a]",
            &format!("    target:\n      template: {{type: x/y}}\n{ONE_KEY}"),
        );
    let plan = run(&world);
    assert_eq!(value(&plan, "a", "s", "k"), "v");
    assert_eq!(plan.secrets[0].body.type_, "x/y");
}

#[test]
fn template_from_literal_and_config_map() {
    let world = namespaces(&[("a", "")])
        + STORE
        + &secret("src", "user: u, pass: p")
        + "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: tpl, namespace: a}\ndata:\n  conn: 'postgres://{{ .user }}@db'\n  more: 'extra: \"{{ .pass }}\"'\n"
        + &ces(
            "s",
            "  namespaces: [a]",
            "    target:\n      template:\n        templateFrom:\n        - literal: 'lit: {{ .user }}-x'\n        - configMap:\n            name: tpl\n            items:\n            - {key: conn}\n            - {key: more, templateAs: KeysAndValues}\n    dataFrom:\n    - extract: {key: src}",
        );
    let plan = run(&world);
    assert_eq!(value(&plan, "a", "s", "lit"), "u-x");
    assert_eq!(value(&plan, "a", "s", "conn"), "postgres://u@db");
    assert_eq!(value(&plan, "a", "s", "extra"), "p");
}

#[test]
fn namespaced_secret_store_serves_only_its_namespace() {
    let world = namespaces(&[("a", ""), ("b", "")])
        + "---\napiVersion: external-secrets.io/v1beta1\nkind: SecretStore\nmetadata: {name: local, namespace: a}\nspec: {provider: {kubernetes: {remoteNamespace: central}}}\n"
        + &secret("src", "a: v")
        + "---\napiVersion: external-secrets.io/v1beta1\nkind: ClusterExternalSecret\nmetadata: {name: s}\nspec:\n  namespaceSelector: {}\n  externalSecretSpec:\n    secretStoreRef: {name: local}\n    data:\n    - {secretKey: k, remoteRef: {key: src, property: a}}\n";
    let plan = run(&world);
    assert_eq!(targets(&plan), ["a/s"]);
    let message = errors(&plan);
    assert!(
        message.contains("target b/s")
            && message.contains("SecretStore \"local\" not found in namespace b"),
        "{message}"
    );
}

#[test]
fn remote_namespace_defaults_to_default() {
    let world = namespaces(&[("a", ""), ("default", "")])
        + "---\napiVersion: external-secrets.io/v1\nkind: ClusterSecretStore\nmetadata: {name: central}\nspec: {provider: {kubernetes: {}}}\n"
        + "---\napiVersion: v1\nkind: Secret\nmetadata: {name: src, namespace: default}\nstringData: {a: from-default}\n"
        + &ces("s", "  namespaces: [a]", ONE_KEY);
    assert_eq!(value(&run(&world), "a", "s", "k"), "from-default");
}

#[test]
fn cluster_store_conditions_restrict_namespaces() {
    let world = namespaces(&[("a", "ok: 'yes'"), ("b", "")])
        + "---\napiVersion: external-secrets.io/v1\nkind: ClusterSecretStore\nmetadata: {name: central}\nspec:\n  conditions:\n  - namespaceSelector: {matchLabels: {ok: 'yes'}}\n  provider: {kubernetes: {remoteNamespace: central}}\n"
        + &secret("src", "a: v")
        + &ces("s", "  namespaceSelector: {}", ONE_KEY);
    let plan = run(&world);
    assert_eq!(targets(&plan), ["a/s"]);
    assert!(
        errors(&plan).contains("do not allow namespace b"),
        "{}",
        errors(&plan)
    );
}

#[test]
fn namespaced_external_secret_and_creation_policy_none() {
    let world = namespaces(&[("a", "")])
        + STORE
        + &secret("src", "a: v")
        + "---\napiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {name: app, namespace: a, labels: {l: '1'}}\nspec:\n  secretStoreRef: {kind: ClusterSecretStore, name: central}\n  data:\n  - {secretKey: k, remoteRef: {key: src, property: a}}\n"
        + "---\napiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {name: skipped, namespace: a}\nspec:\n  secretStoreRef: {kind: ClusterSecretStore, name: central}\n  target: {creationPolicy: None}\n  data:\n  - {secretKey: k, remoteRef: {key: src, property: a}}\n";
    let plan = run(&world);
    assert_eq!(targets(&plan), ["a/app"]);
    let body = &plan.secrets[0].body;
    assert_eq!(
        body.labels["l"], "1",
        "without a template the ExternalSecret's labels are copied"
    );
    assert_eq!(body.labels["app.kubernetes.io/managed-by"], "courier");
    assert_eq!(
        body.annotations["courier.dev/origin"],
        "ExternalSecret/a/app"
    );
}

#[test]
fn one_render_is_shared_and_hashes_are_stable() {
    let world = namespaces(&[("a", "x: z"), ("b", "x: z")])
        + STORE
        + &secret("src", "a: v")
        + &ces("s", "  namespaceSelector: {matchLabels: {x: z}}", ONE_KEY);
    let plan = run(&world);
    assert!(std::sync::Arc::ptr_eq(
        &plan.secrets[0].body,
        &plan.secrets[1].body
    ));
    let again = run(&world);
    assert_eq!(plan.secrets[0].body, again.secrets[0].body);
    let changed = run(&world.replace("a: v", "a: w"));
    assert_ne!(plan.secrets[0].body.data, changed.secrets[0].body.data);
}

#[test]
fn two_manifests_writing_one_secret_conflict() {
    let world = namespaces(&[("a", "")])
        + STORE
        + &secret("src", "a: v")
        + &ces(
            "one",
            "  namespaces: [a]",
            &format!("    target: {{name: same}}\n{ONE_KEY}"),
        )
        + &ces(
            "two",
            "  namespaces: [a]",
            &format!("    target: {{name: same}}\n{ONE_KEY}"),
        );
    let plan = run(&world);
    assert!(plan.secrets.is_empty());
    let message = errors(&plan);
    assert!(
        message.contains("written by ClusterExternalSecret/one and ClusterExternalSecret/two"),
        "{message}"
    );
}

#[test]
fn errors_name_the_file_line_object_target_and_key_but_never_a_value() {
    let world = namespaces(&[("a", "")])
        + STORE
        + &secret("src", "a: hunter2-marker")
        + &ces(
            "s",
            "  namespaces: [a]",
            "    data:\n    - {secretKey: k, remoteRef: {key: src, property: nope}}\n    - {secretKey: m, remoteRef: {key: missing}}",
        )
        + &ces(
            "t",
            "  namespaces: [a]",
            "    target: {template: {data: {x: '{{ div 1 (atoi .a) }}'}}}\n    data:\n    - {secretKey: a, remoteRef: {key: src, property: a}}",
        )
        + &ces(
            "u",
            "  namespaceSelectors:\n  - matchExpressions: [{key: k, operator: Equals, values: [v]}]",
            ONE_KEY,
        )
        + &ces(
            "g",
            "  namespaces: [a]",
            &format!("    target: {{template: {{data: {{x: '{{{{ a }}}}'}}}}}}\n{ONE_KEY}"),
        );
    let plan = run(&world);
    let message = errors(&plan);
    assert_eq!(plan.errors.len(), 4, "{message}");
    assert!(!message.contains("hunter2"), "{message}");
    let line_of = |name: &str| {
        world
            .lines()
            .position(|l| l.contains(&format!("name: {name}}}")))
            .unwrap()
            + 1
            - 2
    };
    assert!(
        message.contains(&format!(
            "world.yaml:{}: ClusterExternalSecret/s: target a/s: data[0] (secretKey \"k\"): property \"nope\" does not exist in data of Secret central/src",
            line_of("s")
        )),
        "{message}"
    );
    assert!(
        message.contains("ClusterExternalSecret/t: target a/t: template.data[x]: ")
            && message.contains("integer divide by zero"),
        "{message}"
    );
    assert!(message.contains("ClusterExternalSecret/u: namespaceSelectors[0]: matchExpressions[0] (key \"k\"): unknown operator \"Equals\""), "{message}");
    assert!(
        message.contains(
            "ClusterExternalSecret/g: target a/g: template.data[x]: undefined function: a"
        ) && message.contains("hint: this is courier's minijinja dialect"),
        "{message}"
    );
}

#[test]
fn invalid_keys_and_names_are_errors() {
    let world = namespaces(&[("a", "")])
        + STORE
        + &secret("src", "'bad key': v")
        + &ces(
            "s",
            "  namespaces: [a]",
            "    dataFrom:\n    - extract: {key: src}\n      rewrite: [{regexp: {source: x, target: z}}]",
        )
        + &ces("Bad_Name", "  namespaces: [a]", ONE_KEY);
    let message = errors(&run(&world));
    assert!(
        message.contains("key \"bad key\": is not a valid Secret key"),
        "{message}"
    );
    assert!(
        message.contains("\"Bad_Name\" is not a valid Secret name"),
        "{message}"
    );
}

#[test]
fn templates_are_go_as_in_eso_and_minijinja_by_annotation() {
    let go = "    target: {template: {data: {x: '{{ .a | upper }}-{{ printf \"%s:%s\" .a .a | b64enc }}'}}}\n    data:\n    - {secretKey: a, remoteRef: {key: src, property: a}}";
    let jinja = "    target: {template: {data: {x: '{{ a | upper }}'}}}\n    data:\n    - {secretKey: a, remoteRef: {key: src, property: a}}";
    let world = namespaces(&[("a", "")])
        + STORE
        + &secret("src", "a: v")
        + &ces("go", "  namespaces: [a]", go)
        + &ces("jinja", "  namespaces: [a]", jinja).replace(
            "metadata: {name: jinja}",
            "metadata: {name: jinja, annotations: {courier.dev/template-engine: minijinja}}",
        )
        + &ces("bad", "  namespaces: [a]", go).replace(
            "metadata: {name: bad}",
            "metadata: {name: bad, annotations: {courier.dev/template-engine: jinja2}}",
        );
    let plan = run(&world);
    assert_eq!(value(&plan, "a", "go", "x"), "V-djp2");
    assert_eq!(value(&plan, "a", "jinja", "x"), "V");
    let message = errors(&plan);
    // ESO v2's schema has only engine v2: engine v1 is refused with the manifest.
    let v1 = ces(
        "v1",
        "  namespaces: [a]",
        &go.replace("template: {", "template: {engineVersion: v1, "),
    );
    let refused = load_str("world.yaml", &v1).unwrap_err();
    assert!(
        refused[0]
            .to_string()
            .contains("ClusterExternalSecret/v1: spec.externalSecretSpec.target.template.engineVersion: must be v2"),
        "{refused:?}"
    );
    assert!(
        message.contains("ClusterExternalSecret/bad: target a/bad: metadata.annotations[courier.dev/template-engine]: \"jinja2\" is not a template engine"),
        "{message}"
    );
}

#[test]
fn typos_in_store_names_kinds_and_properties_get_a_suggestion() {
    let world = namespaces(&[("a", "")])
        + STORE
        + &secret("src", "password: v, username: u")
        + &ces("typo", "  namespaces: [a]", ONE_KEY).replace("name: central}", "name: centrall}")
        + &ces("kind", "  namespaces: [a]", ONE_KEY).replace(
            "kind: ClusterSecretStore, name: central",
            "kind: SecretStore, name: central",
        )
        + &ces(
            "prop",
            "  namespaces: [a]",
            "    data:\n    - secretKey: k\n      remoteRef: {key: src, property: pasword}",
        )
        + &ces(
            "far",
            "  namespaces: [a]",
            "    data:\n    - secretKey: k\n      remoteRef: {key: src, property: token}",
        );
    let message = errors(&run(&world));
    assert!(
        message.contains("ClusterSecretStore \"centrall\" not found; did you mean \"central\"?"),
        "{message}"
    );
    assert!(
        message.contains("SecretStore \"central\" not found in namespace a; a ClusterSecretStore of that name exists: set secretStoreRef.kind: ClusterSecretStore"),
        "{message}"
    );
    assert!(
        message.contains("property \"pasword\" does not exist in data of Secret central/src; did you mean \"password\"?"),
        "{message}"
    );
    assert!(
        message.contains("property \"token\" does not exist in data of Secret central/src; its keys: password, username"),
        "{message}"
    );
    assert!(
        !message.contains("v,") && !message.contains(": u"),
        "{message}"
    );
}

#[test]
fn check_finds_a_missing_key_and_an_undefined_template_variable_in_a_files_world() {
    let world = namespaces(&[("a", "")])
        + STORE
        + &secret("src", "a: v")
        + &ces(
            "key",
            "  namespaces: [a]",
            "    data:\n    - {secretKey: k, remoteRef: {key: src, property: b}}",
        )
        + &ces(
            "tpl",
            "  namespaces: [a]",
            "    target: {template: {data: {x: '{{ .nope }}'}}}\n    data:\n    - {secretKey: a, remoteRef: {key: src, property: a}}",
        );
    let inputs = load_str("world.yaml", &world).unwrap();
    let files = World::from_inputs(&inputs).unwrap();
    let report = plan::check(&inputs.manifests, &files, &courier::providers::Registry);
    let message: Vec<String> = report.errors.iter().map(ToString::to_string).collect();
    let message = message.join("\n");
    assert!(
        message.contains("ClusterExternalSecret/key: target a/key: data[0] (secretKey \"k\"): property \"b\" does not exist"),
        "{message}"
    );
    assert!(
        message.contains("ClusterExternalSecret/tpl: target a/tpl: template.data[x]: ")
            && message.contains("nope"),
        "{message}"
    );
    assert!(!message.contains(": v"), "{message}");
}

#[test]
fn labels_and_annotations_a_template_makes_from_values_are_marked_as_values() {
    let yaml = format!(
        "{STORE}{}{}{}---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: tpl, namespace: a}}\ndata: {{from-map: \"{{{{ .user }}}}\", plain: fixed}}\n",
        namespaces(&[("a", "team: a")]),
        secret("src", "user: alice"),
        ces(
            "x",
            "  namespaceSelectors: [{matchLabels: {team: a}}]",
            "    target:\n      name: t\n      template:\n        metadata:\n          labels: {owner: \"{{ .user }}\", team: platform, app.kubernetes.io/managed-by: \"{{ .user }}\"}\n          annotations: {note: fixed}\n        templateFrom:\n        - target: Annotations\n          literal: \"last-user: {{ .user }}\"\n        - target: Labels\n          configMap: {name: tpl, items: [{key: from-map}, {key: plain}]}\n        - target: Annotations\n          literal: \"note: overridden by the literal metadata\"\n    dataFrom:\n    - extract: {key: src}",
        ),
    );
    let plan = run(&yaml);
    assert!(plan.errors.is_empty(), "{:?}", plan.errors);
    let body = &plan.secrets[0].body;
    let derived = |map: &courier::core::redact::DerivedMap| -> Vec<(String, bool)> {
        map.iter().map(|(k, d)| (k.clone(), d.key)).collect()
    };
    assert_eq!(
        derived(&body.derived_labels),
        [("from-map".to_owned(), false), ("owner".to_owned(), false)],
        "plain text is the manifest's; courier's own label is courier's"
    );
    assert_eq!(
        derived(&body.derived_annotations),
        [("last-user".to_owned(), true)]
    );
    assert_eq!(body.labels["owner"], "alice");
    assert_eq!(body.labels["app.kubernetes.io/managed-by"], "courier");
    assert_eq!(body.annotations["note"], "fixed");
    // Debug (a stray `{:?}`, a failed assertion) shows none of them.
    assert!(!format!("{:?}", plan.secrets).contains("alice"));
}

/// ESO's Kubernetes provider (providers/v1/kubernetes/client.go `getFromSecretData`,
/// gjson `Result.String()`): an object or array property is its raw text as stored,
/// numbers as gjson prints them; metadataPolicy Fetch with no property is the labels and
/// annotations as JSON, `null` for none.
#[test]
fn kubernetes_values_are_what_eso_computes() {
    let world = namespaces(&[("a", "")])
        + STORE
        + "---\napiVersion: v1\nkind: Secret\nmetadata: {name: src, namespace: central, labels: {team: x}}\nstringData:\n  config: '{ \"db\" : { \"hosts\" : [ \"h1\", \"h2\" ] }, \"n\": 1e3, \"big\": 123456789012345678901 }'\n"
        + &ces(
            "s",
            "  namespaces: [a]",
            "    data:\n    - {secretKey: obj, remoteRef: {key: src, property: config.db}}\n    - {secretKey: num, remoteRef: {key: src, property: config.n}}\n    - {secretKey: big, remoteRef: {key: src, property: config.big}}\n    - {secretKey: meta, remoteRef: {key: src, metadataPolicy: Fetch}}",
        );
    let plan = run(&world);
    assert_eq!(
        value(&plan, "a", "s", "obj"),
        "{ \"hosts\" : [ \"h1\", \"h2\" ] }"
    );
    assert_eq!(value(&plan, "a", "s", "num"), "1000");
    assert_eq!(value(&plan, "a", "s", "big"), "123456789012345678901");
    assert_eq!(
        value(&plan, "a", "s", "meta"),
        r#"{"annotations":null,"labels":{"team":"x"}}"#
    );
}

/// ESO's RewriteRegexp is Go's ReplaceAllString: `$1_x` names the group `1_x`, which
/// does not exist, so the key becomes empty, and ValidateKeys drops it (no error).
/// `rewrite[].transform` renders each key through a Go template over `.value`.
#[test]
fn rewrites_follow_go_and_drop_empty_keys() {
    let world = namespaces(&[("a", "")])
        + STORE
        + &secret("src", "db-user: u, db-pass: p")
        + &ces(
            "s",
            "  namespaces: [a]",
            "    dataFrom:\n    - extract: {key: src}\n      rewrite:\n      - regexp: {source: '^db-(user)$', target: '$1_x'}\n    - extract: {key: src}\n      rewrite:\n      - regexp: {source: '^db-(.*)$', target: '${1}_x'}\n      - transform: {template: '{{ .value | upper }}'}",
        );
    let plan = run(&world);
    assert!(plan.errors.is_empty(), "{}", errors(&plan));
    let keys: Vec<&String> = plan.secrets[0].body.data.keys().collect();
    assert_eq!(keys, ["PASS_X", "USER_X", "db-pass"]);
    assert_eq!(value(&plan, "a", "s", "USER_X"), "u");
}

/// `data[].sourceRef.storeRef` and `dataFrom[].sourceRef.storeRef` read another store
/// than `secretStoreRef` (ESO's secretstore.Manager.Get); a generator stays refused.
#[test]
fn entries_read_the_store_their_source_ref_names() {
    let other = "---\napiVersion: external-secrets.io/v1\nkind: ClusterSecretStore\nmetadata: {name: other}\nspec:\n  provider:\n    kubernetes: {remoteNamespace: elsewhere}\n";
    let world = namespaces(&[("a", ""), ("elsewhere", "")])
        + STORE
        + other
        + &secret("src", "k: central-value")
        + "---\napiVersion: v1\nkind: Secret\nmetadata: {name: src, namespace: elsewhere}\nstringData: {k: other-value, extra: e}\n"
        + &ces(
            "s",
            "  namespaces: [a]",
            "    data:\n    - {secretKey: mine, remoteRef: {key: src, property: k}}\n    - secretKey: theirs\n      remoteRef: {key: src, property: k}\n      sourceRef: {storeRef: {kind: ClusterSecretStore, name: other}}\n    dataFrom:\n    - extract: {key: src}\n      sourceRef: {storeRef: {kind: ClusterSecretStore, name: other}}",
        )
        + &ces(
            "gen",
            "  namespaces: [a]",
            "    dataFrom:\n    - sourceRef: {generatorRef: {apiVersion: generators.external-secrets.io/v1alpha1, kind: Password, name: p}}",
        )
        + &ces(
            "typo",
            "  namespaces: [a]",
            "    data:\n    - secretKey: k\n      remoteRef: {key: src, property: k}\n      sourceRef: {storeRef: {kind: ClusterSecretStore, name: othr}}",
        );
    let plan = run(&world);
    assert_eq!(value(&plan, "a", "s", "mine"), "central-value");
    assert_eq!(value(&plan, "a", "s", "theirs"), "other-value");
    assert_eq!(value(&plan, "a", "s", "extra"), "e");
    assert_eq!(value(&plan, "a", "s", "k"), "other-value");
    let errors = errors(&plan);
    assert!(
        errors.contains("dataFrom[0].sourceRef.generatorRef")
            && errors.contains("generators are not supported"),
        "{errors}"
    );
    assert!(
        errors.contains("data[0].sourceRef.storeRef") && errors.contains("did you mean \"other\""),
        "{errors}"
    );
}

/// ESO's ClusterExternalSecret controller (gatherProvisionedNamespaces): a namespace that
/// already holds an ExternalSecret of the generated name, not owned by the
/// ClusterExternalSecret, is a failed namespace; the hand-written one keeps its Secret.
/// With no template, externalSecretMetadata's labels and annotations reach the Secret
/// (the ExternalSecret carries them, and setMetadata copies them).
#[test]
fn cluster_external_secret_fails_a_namespace_with_a_hand_written_external_secret() {
    let world = namespaces(&[("a", ""), ("b", "")])
        + STORE
        + &secret("src", "a: v")
        + &ces(
            "s",
            "  namespaces: [a, b]\n  externalSecretMetadata:\n    labels: {team: x}\n    annotations: {note: why}",
            ONE_KEY,
        )
        + "---\napiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {name: s, namespace: b}\nspec:\n  secretStoreRef: {kind: ClusterSecretStore, name: central}\n  target: {name: mine}\n  data:\n  - {secretKey: own, remoteRef: {key: src, property: a}}\n";
    let plan = run(&world);
    assert_eq!(targets(&plan), ["a/s", "b/mine"]);
    let errors = errors(&plan);
    assert!(
        errors.contains("b/s") && errors.contains("already exists in namespace b"),
        "{errors}"
    );
    let secret = &plan.secrets[0].body;
    assert_eq!(secret.labels.get("team").map(String::as_str), Some("x"));
    assert_eq!(
        secret.annotations.get("note").map(String::as_str),
        Some("why")
    );
}

/// ESO's ownership rule for another ClusterExternalSecret's ExternalSecret (`--from-cluster`
/// records those it finds): a ClusterExternalSecret whose ExternalSecret name is taken in
/// a namespace by one another ClusterExternalSecret controls fails there, naming its
/// target (so live mode keeps it); its own ExternalSecrets take nothing from it.
#[test]
fn cluster_external_secret_fails_a_namespace_another_one_controls_its_name_in() {
    use courier::core::load::ControlledExternalSecret;
    let world = namespaces(&[("a", ""), ("b", ""), ("c", "")])
        + STORE
        + &secret("src", "a: v")
        + &ces("s", "  namespaces: [a, b, c]", ONE_KEY);
    let mut inputs = load_str("world.yaml", &world).unwrap();
    let controlled = |namespace: &str, controller: &str| ControlledExternalSecret {
        namespace: namespace.into(),
        name: "s".into(),
        controller: controller.into(),
    };
    inputs.manifests.controlled_external_secrets =
        vec![controlled("a", "s"), controlled("b", "other")];
    let world = World::from_inputs(&inputs).unwrap();
    let plan = plan::plan(&inputs.manifests, &world, &courier::providers::Registry);
    assert_eq!(targets(&plan), ["a/s", "c/s"]);
    assert_eq!(plan.errors.len(), 1, "{}", errors(&plan));
    assert_eq!(plan.errors[0].targets, ["b/s"]);
    let errors = errors(&plan);
    assert!(
        errors.contains("ExternalSecret b/s already exists in namespace b (controlled by ClusterExternalSecret other)"),
        "{errors}"
    );
}

/// Two ClusterExternalSecrets of the input that give their ExternalSecrets one name
/// (`externalSecretName: shared`) in a namespace both select: under ESO one
/// ExternalSecret `b/shared` exists, the other ClusterExternalSecret finds it owned by
/// another and fails that namespace ("external secret already exists in namespace"), so
/// only one target is written. Which one under ESO is a race; under courier the one
/// whose name sorts first, every run.
#[test]
fn two_cluster_external_secrets_with_one_external_secret_name_do_not_both_provision_a_namespace() {
    let spec = |target: &str| format!("    target: {{name: {target}}}\n{ONE_KEY}");
    let world = namespaces(&[("b", "")])
        + STORE
        + &secret("src", "a: v")
        + &ces(
            "first",
            "  externalSecretName: shared\n  namespaces: [b]",
            &spec("from-first"),
        )
        + &ces(
            "second",
            "  externalSecretName: shared\n  namespaces: [b]",
            &spec("from-second"),
        );
    let plan = run(&world);
    let errors = errors(&plan);
    assert!(
        errors.contains("already exists in namespace b"),
        "targets {:?}, errors: {errors}",
        targets(&plan)
    );
    // The first by name makes it, every run; the other fails there, keeping its target.
    assert_eq!(targets(&plan), ["b/from-first"]);
    assert_eq!(plan.errors.len(), 1, "{errors}");
    assert_eq!(plan.errors[0].object, "ClusterExternalSecret/second");
    assert_eq!(plan.errors[0].targets, ["b/from-second"]);
}

/// creationPolicy Merge in `render` over files: the input's Secret is the existing target
/// (its keys, type, labels and annotations stay; courier's go on top); with none there,
/// nothing is written and nothing fails (ESO's CreatePolicyMerge waits).
#[test]
fn merge_renders_into_the_existing_secret_or_writes_nothing() {
    let world = namespaces(&[("a", "")])
        + STORE
        + &secret("src", "a: new")
        + "---\napiVersion: v1\nkind: Secret\nmetadata: {name: app, namespace: a, labels: {team: app}}\ntype: kubernetes.io/basic-auth\nstringData: {username: theirs, k: old}\n"
        + &ces(
            "app",
            "  namespaces: [a]",
            "    target: {creationPolicy: Merge}\n    data:\n    - secretKey: k\n      remoteRef: {key: src, property: a}",
        )
        + &ces(
            "absent",
            "  namespaces: [a]",
            "    target: {creationPolicy: Merge}\n    data:\n    - secretKey: k\n      remoteRef: {key: src, property: a}",
        );
    let plan = run(&world);
    assert!(plan.errors.is_empty(), "{}", errors(&plan));
    assert_eq!(targets(&plan), ["a/app"]);
    assert_eq!(value(&plan, "a", "app", "k"), "new");
    assert_eq!(value(&plan, "a", "app", "username"), "theirs");
    let body = &plan.secrets[0].body;
    assert_eq!(body.type_, "kubernetes.io/basic-auth");
    assert_eq!(body.labels.get("team").map(String::as_str), Some("app"));
}

/// deletionPolicy Delete or Merge: a missing `extract` source is skipped and the other
/// entries are written (ESO's GetProviderSecretData continues on NoSecretError); with
/// every source missing the data is empty, and ESO writes nothing (neither a target nor
/// an error here: a files world holds no existing target to print). Under Retain, and
/// for a missing data[] source, the ExternalSecret fails.
#[test]
fn a_missing_extract_source_is_skipped_under_delete() {
    let world = namespaces(&[("a", "")])
        + STORE
        + &secret("src", "a: v")
        + &ces(
            "del",
            "  namespaces: [a]",
            "    target: {deletionPolicy: Delete}\n    dataFrom:\n    - extract: {key: gone}\n    - extract: {key: src}",
        )
        + &ces(
            "keep",
            "  namespaces: [a]",
            "    dataFrom:\n    - extract: {key: gone}\n    - extract: {key: src}",
        )
        + &ces(
            "alldel",
            "  namespaces: [a]",
            "    target: {deletionPolicy: Delete}\n    dataFrom:\n    - extract: {key: gone}",
        );
    let plan = run(&world);
    assert_eq!(targets(&plan), ["a/del"]);
    assert_eq!(value(&plan, "a", "del", "a"), "v");
    let missing: Vec<(&str, Option<courier::core::model::DeletionPolicy>)> = plan
        .errors
        .iter()
        .map(|e| (e.object.as_str(), e.source_missing))
        .collect();
    assert_eq!(
        missing,
        [(
            "ClusterExternalSecret/keep",
            Some(courier::core::model::DeletionPolicy::Retain)
        )]
    );
}

/// ESO's chain (one ExternalSecret pulls into a namespace, a Kubernetes-provider
/// ClusterExternalSecret fans that Secret out): in `render` over files the first target
/// is rendered before the store that reads it; a cycle is refused by name.
#[test]
fn chained_stores_read_targets_rendered_first_and_cycles_are_refused() {
    let hub = "---\napiVersion: external-secrets.io/v1\nkind: ClusterSecretStore\nmetadata: {name: hub}\nspec:\n  provider:\n    kubernetes: {remoteNamespace: hub}\n";
    let world = namespaces(&[("a", "team: x"), ("b", "team: x"), ("hub", "")])
        + STORE
        + hub
        + &secret("upstream", "password: from-provider")
        // Pulls central/upstream into hub/pulled.
        + "---\napiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {name: pull, namespace: hub}\nspec:\n  secretStoreRef: {kind: ClusterSecretStore, name: central}\n  target: {name: pulled}\n  dataFrom:\n  - extract: {key: upstream}\n"
        // Fans hub/pulled out to every team namespace.
        + "---\napiVersion: external-secrets.io/v1\nkind: ClusterExternalSecret\nmetadata: {name: fan}\nspec:\n  namespaceSelectors:\n  - matchLabels: {team: x}\n  externalSecretSpec:\n    secretStoreRef: {kind: ClusterSecretStore, name: hub}\n    target: {name: app}\n    data:\n    - {secretKey: pw, remoteRef: {key: pulled, property: password}}\n"
        // hub/loop-a reads hub/loop-b, which reads hub/loop-a.
        + "---\napiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {name: loop-a, namespace: hub}\nspec:\n  secretStoreRef: {kind: ClusterSecretStore, name: hub}\n  dataFrom:\n  - extract: {key: loop-b}\n"
        + "---\napiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {name: loop-b, namespace: hub}\nspec:\n  secretStoreRef: {kind: ClusterSecretStore, name: hub}\n  dataFrom:\n  - extract: {key: loop-a}\n";
    let plan = run(&world);
    assert_eq!(value(&plan, "a", "app", "pw"), "from-provider");
    assert_eq!(value(&plan, "b", "app", "pw"), "from-provider");
    assert_eq!(value(&plan, "hub", "pulled", "password"), "from-provider");
    assert_eq!(targets(&plan), ["a/app", "b/app", "hub/pulled"]);
    let errors = errors(&plan);
    assert!(
        errors.contains("in a cycle: hub/loop-a reads hub/loop-b reads hub/loop-a"),
        "{errors}"
    );
    assert_eq!(
        plan.errors.len(),
        2,
        "only the cycle, once per target: {errors}"
    );
}

/// target.immutable in `render` over files: an existing Secret of the input keeps its
/// data (ESO's mutationFunc does not template an existing immutable target); a new one
/// is written with the values and `immutable: true`.
#[test]
fn immutable_keeps_an_existing_secret_as_it_is() {
    let world = namespaces(&[("a", "")])
        + STORE
        + &secret("src", "a: new")
        + "---\napiVersion: v1\nkind: Secret\nmetadata: {name: old, namespace: a}\nstringData: {k: before}\n"
        + &ces(
            "old",
            "  namespaces: [a]",
            "    target: {immutable: true}\n    data:\n    - {secretKey: k, remoteRef: {key: src, property: a}}",
        )
        + &ces(
            "fresh",
            "  namespaces: [a]",
            "    target: {immutable: true}\n    data:\n    - {secretKey: k, remoteRef: {key: src, property: a}}",
        );
    let plan = run(&world);
    assert!(plan.errors.is_empty(), "{}", errors(&plan));
    assert_eq!(value(&plan, "a", "old", "k"), "before");
    assert_eq!(value(&plan, "a", "fresh", "k"), "new");
    assert!(plan.secrets.iter().all(|s| s.body.immutable));
}
