//! The differential test of issue #29: every case of `tests/differential/` (hand-made,
//! translated from ESO's own test tables) and 1,000 generated from a fixed seed, run
//! through ESO v2.9.0's real controller (`testenv/eso-v2.sh controller`, on a private
//! control plane with ESO v2.9.0's CRDs) and through `courier render` of the same world,
//! and compared: identical Secret data bytes, type, and labels/annotations (each tool's
//! own bookkeeping left out), or an error on both sides.
//!
//! All cases run at once: each in namespaces of its own (`<id>-<name>`, labelled with the
//! case), its cluster-scoped objects prefixed with the case id and its selectors narrowed
//! to the case's label; one ESO controller, one wait. A case that differs must be listed
//! in `tests/differential/KNOWN_DIFFERENCES.yaml` with its reason, and a listed case that
//! agrees fails the test too (a stale entry). Values never reach the output: a difference
//! names the key and where the bytes part ("bytes differ at offset N (lengths a vs b)").

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use futures::StreamExt as _;
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, ListParams, Patch, PatchParams, PostParams};
use serde_json::{Map, Value, json};

use crate::eso::{Supervision, eso_v2, start_eso};
use crate::support::{ControlPlane, client_of, install_crds_from, repo_root};

/// The label every namespace of a case carries, and every selector of the case requires.
const CASE_LABEL: &str = "differential.courier.dev/case";
/// The ServiceAccount the injected `auth` of every Kubernetes-provider store reads as.
pub(crate) const READER: &str = "diff-reader";
/// How many cases the generator makes, and from which seed.
const GENERATED: usize = 1_000;
const SEED: u64 = 0x00c0_0e1e_0029;

/// ESO's outcome for a case it did not decide within the wait: always a difference.
const NO_VERDICT: &str = "ESO: no verdict in time (no Ready condition)";

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// One case as the corpus writes it (see `tests/differential/README.md`).
#[derive(Clone)]
pub(crate) struct RawCase {
    pub name: String,
    spec: Value,
}

/// A case ready to run: its id, and the objects of its world and manifests, renamed.
pub(crate) struct Case {
    pub name: String,
    pub id: String,
    pub namespaces: Vec<String>,
    pub objects: Vec<Value>,
}

/// What one tool made of a case.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Outcome {
    /// The tool refused or failed the case (a short reason, never a value).
    Error(String),
    /// The Secrets it wrote, by (namespace, name).
    Secrets(BTreeMap<(String, String), Written>),
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Written {
    type_: String,
    data: BTreeMap<String, Vec<u8>>,
    pub labels: BTreeMap<String, String>,
    pub annotations: BTreeMap<String, String>,
    /// `metadata.finalizers` (`template.metadata.finalizers`), in order.
    finalizers: Vec<String>,
}

// ---------------------------------------------------------------------------------------
// The corpus
// ---------------------------------------------------------------------------------------

fn corpus_dir() -> PathBuf {
    repo_root().join("tests/differential")
}

/// The hand-made cases: every `cases/*.yaml`, a `cases:` list each.
pub(crate) fn hand_cases() -> Vec<RawCase> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus_dir().join("cases"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    let mut cases = Vec::new();
    let mut names = BTreeSet::new();
    for file in files {
        let text = std::fs::read_to_string(&file).unwrap();
        let document: Value =
            serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        let defaults = document.get("defaults").cloned().unwrap_or(json!({}));
        for spec in document["cases"].as_array().expect("a cases: list") {
            let mut spec = spec.clone();
            merge_defaults(&mut spec, &defaults);
            let name = spec["name"]
                .as_str()
                .unwrap_or_else(|| panic!("{}: a case without a name", file.display()))
                .to_owned();
            assert!(
                names.insert(name.clone()),
                "{}: case {name} twice",
                file.display()
            );
            cases.push(RawCase { name, spec });
        }
    }
    cases
}

/// Fields of a file's `defaults:` that the case does not set.
fn merge_defaults(spec: &mut Value, defaults: &Value) {
    if let (Some(spec), Some(defaults)) = (spec.as_object_mut(), defaults.as_object()) {
        for (k, v) in defaults {
            spec.entry(k.clone()).or_insert_with(|| v.clone());
        }
    }
}

/// A small deterministic generator (splitmix64), so the generated corpus is the same on
/// every machine and run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

/// JSON texts as a source Secret may hold them: nested objects and arrays, numbers in
/// every spelling, whitespace, escapes, HTML characters, unicode.
const JSON_TEXTS: &[&str] = &[
    r#"{"user":"admin","port":5432}"#,
    r#"{ "user" : "admin" , "port" : 5432 }"#,
    "{\n  \"db\": {\n    \"host\": \"db.local\",\n    \"port\": 5432\n  }\n}",
    r#"{"db":{"host":"db.local","opts":{"ssl":true,"timeout":1e3}}}"#,
    r#"{"list":[1,2,3],"nested":[{"a":"x"},{"a":"y"}]}"#,
    r#"{"n":1e3,"f":1.50,"neg":-0,"big":12345678901234567890,"small":1.5e-7}"#,
    r#"{"html":"<a href=\"x\">&amp;</a>","uni":"caf\u00e9","emoji":"\ud83d\ude00"}"#,
    r#"{"t":true,"f":false,"z":null,"e":"","s":" spaced "}"#,
    r#"{"arr":[ {"k" : [ 1 , 2 ]} , "two" , 3.0 ]}"#,
    r#"{"dotted.key":"v","a":{"b.c":"w"}}"#,
    r#"[1,"two",{"three":3}]"#,
    r#"{"obj":{},"arr":[],"deep":{"a":{"b":{"c":{"d":"leaf"}}}}}"#,
    r#"{"num":0.1,"exp":2E+2,"int":-42,"huge":1e400}"#,
    r#"not json at all"#,
    r#"{"tab":"a\tb","nl":"a\nb","quote":"\"q\"","slash":"a\/b"}"#,
];

/// Paths into JSON_TEXTS (some missing on purpose).
const PATHS: &[&str] = &[
    "user",
    "port",
    "db",
    "db.host",
    "db.port",
    "db.opts",
    "db.opts.timeout",
    "db.opts.ssl",
    "list",
    "list.1",
    "nested",
    "nested.0.a",
    "nested.#.a",
    "n",
    "f",
    "neg",
    "big",
    "small",
    "html",
    "uni",
    "emoji",
    "t",
    "z",
    "e",
    "s",
    "arr",
    "arr.0",
    "arr.0.k",
    "arr.2",
    "dotted\\.key",
    "a.b\\.c",
    "0",
    "2.three",
    "obj",
    "arr",
    "deep.a.b",
    "num",
    "exp",
    "int",
    "huge",
    "tab",
    "nl",
    "quote",
    "slash",
    "missing",
];

/// Values for decoding: canonical, padded, unpadded, URL-safe, with a newline, with
/// non-canonical padding bits, not base64 at all.
const ENCODED: &[&str] = &[
    "aGVsbG8=",
    "aGVsbG8",
    "aGVsbG8gd29ybGQ=",
    "aGk=",
    "aGl=",
    "aGk",
    "YWJj\nZGVm",
    "YWJjZGVm\n",
    "-_-_",
    "+/+/",
    "Pz8_",
    "Pz8/",
    "not base64!",
    "",
    "YQ==",
    "YR==",
    "YWI=",
    "YWJ=",
    "////",
    "AAEC/w==",
];

const TEXTS: &[&str] = &[
    "plain",
    "with space",
    "multi\nline\n",
    "caf\u{e9}",
    "<tag>&amp;",
    "",
    "  padded  ",
    "tab\there",
    "{\"json\":true}",
    "1e3",
];

const REWRITES: &[(&str, &str)] = &[
    ("^db-", ""),
    ("(.*)", "prefix-$1"),
    ("(.*)", "${1}_suffix"),
    ("(.*)", "$1_x"),
    ("^(.*)-(.*)$", "$2-$1"),
    ("-", "_"),
    ("[aeiou]", ""),
    ("^(.*)$", ""),
    ("key", "KEY"),
    ("(?P<name>.*)", "n-${name}"),
    ("\\.", "-"),
    ("^", "x-"),
];

fn text_secret(keys: &[(String, String)]) -> Value {
    let mut data = Map::new();
    for (k, v) in keys {
        data.insert(k.clone(), Value::from(v.clone()));
    }
    Value::Object(data)
}

/// The generated corpus: `GENERATED` cases from `SEED`.
fn generated_cases() -> Vec<RawCase> {
    let mut rng = Rng(SEED);
    (0..GENERATED).map(|i| generate(&mut rng, i)).collect()
}

fn generate(rng: &mut Rng, i: usize) -> RawCase {
    let kind = rng.below(10);
    let (label, spec) = match kind {
        0 | 1 => {
            // property into JSON
            let text = *rng.pick(JSON_TEXTS);
            let path = *rng.pick(PATHS);
            let fetch = rng.chance(15);
            let mut remote = json!({"key": "src", "property": format!("cfg.{path}")});
            if rng.chance(30) {
                remote["property"] = Value::from("cfg");
            }
            if fetch {
                remote["metadataPolicy"] = Value::from("Fetch");
                remote["property"] = Value::from(*rng.pick(&[
                    "labels.tier",
                    "annotations.owner",
                    "labels",
                    "annotations",
                    "tier",
                    "labels.missing",
                ]));
            }
            (
                "json-property",
                json!({
                    "secrets": {"src": {"cfg": text, "other": "x"}},
                    "secret_meta": {"src": {"labels": {"tier": "gold"}, "annotations": {"owner": "team <a>"}}},
                    "es": {"data": [{"secretKey": "out", "remoteRef": remote}]}
                }),
            )
        }
        2 => {
            // the whole Secret as JSON, or extract
            let n = 1 + rng.below(3);
            let keys: Vec<(String, String)> = (0..n)
                .map(|k| {
                    (
                        format!("k{k}{}", rng.pick(&["", ".dot", "_u", "-d"])),
                        (*rng.pick(TEXTS)).to_owned(),
                    )
                })
                .collect();
            let es = if rng.chance(50) {
                json!({"data": [{"secretKey": "all", "remoteRef": {"key": "src"}}]})
            } else {
                let mut extract = json!({"key": "src"});
                if rng.chance(30) {
                    extract["property"] = Value::from("k0");
                }
                json!({"dataFrom": [{"extract": extract}]})
            };
            (
                "whole",
                json!({"secrets": {"src": text_secret(&keys)}, "es": es}),
            )
        }
        3 => {
            // decodingStrategy
            let value = *rng.pick(ENCODED);
            let strategy = *rng.pick(&["None", "Base64", "Base64URL", "Auto"]);
            let es = if rng.chance(60) {
                json!({"data": [{"secretKey": "out", "remoteRef": {"key": "src", "property": "v", "decodingStrategy": strategy}}]})
            } else {
                json!({"dataFrom": [{"extract": {"key": "src", "decodingStrategy": strategy}}]})
            };
            (
                "decode",
                json!({"secrets": {"src": {"v": value}}, "es": es}),
            )
        }
        4 => {
            // rewrite over extract/find
            let (from, to) = *rng.pick(REWRITES);
            let n = 1 + rng.below(3);
            let keys: Vec<(String, String)> = (0..n)
                .map(|k| {
                    (
                        format!("{}{k}", rng.pick(&["db-key", "app.key", "key-", "x"])),
                        (*rng.pick(TEXTS)).to_owned(),
                    )
                })
                .collect();
            let mut rewrites = vec![json!({"regexp": {"source": from, "target": to}})];
            if rng.chance(25) {
                let (from, to) = *rng.pick(REWRITES);
                rewrites.push(json!({"regexp": {"source": from, "target": to}}));
            }
            let source = if rng.chance(60) {
                json!({"extract": {"key": "src"}})
            } else {
                json!({"find": {"name": {"regexp": "^s"}}})
            };
            let mut entry = source;
            entry["rewrite"] = Value::Array(rewrites);
            (
                "rewrite",
                json!({"secrets": {"src": text_secret(&keys), "sother": {"z": "1"}}, "es": {"dataFrom": [entry]}}),
            )
        }
        5 => {
            // find by name, conversion, decoding
            let patterns = [
                "^s",
                "src",
                "^src$",
                "o",
                "^nomatch$",
                ".*",
                "s.c",
                "^(src|sother)$",
            ];
            let mut find = json!({"name": {"regexp": *rng.pick(&patterns)}});
            if rng.chance(30) {
                find["decodingStrategy"] = Value::from(*rng.pick(&["Auto", "Base64", "None"]));
            }
            let mut entry = json!({"find": find});
            if rng.chance(30) {
                entry["find"]["conversionStrategy"] =
                    Value::from(*rng.pick(&["Default", "Unicode"]));
            }
            (
                "find",
                json!({
                    "secrets": {"src": {"a": *rng.pick(TEXTS)}, "sother": {"b": *rng.pick(ENCODED)}, "other": {"c": "3"}},
                    "es": {"dataFrom": [entry]}
                }),
            )
        }
        6 => {
            // creation and deletion policies, with or without an existing target
            let creation = *rng.pick(&["Owner", "Orphan", "Merge", "None"]);
            let existing = rng.chance(50);
            let mut target = json!({"name": "target", "creationPolicy": creation});
            // Only what ESO's admission webhook accepts (the harness does not run it):
            // Delete needs Owner, Merge does not go with None.
            if rng.chance(30) {
                let deletion = *rng.pick(&["Retain", "Merge", "Delete"]);
                if (deletion != "Delete" || creation == "Owner")
                    && (deletion != "Merge" || creation != "None")
                {
                    target["deletionPolicy"] = Value::from(deletion);
                }
            }
            if rng.chance(20) {
                target["immutable"] = Value::from(true);
            }
            let mut spec = json!({
                "secrets": {"src": {"a": *rng.pick(TEXTS), "b": "bee"}},
                "es": {"target": target, "dataFrom": [{"extract": {"key": "src"}}]}
            });
            if existing {
                spec["objects"] = json!([{
                    "apiVersion": "v1", "kind": "Secret",
                    "metadata": {"name": "target", "namespace": "app", "labels": {"mine": "yes"}, "annotations": {"note": "theirs"}},
                    "type": *rng.pick(&["Opaque", "Opaque", "example.com/custom"]),
                    "data": {"own": B64.encode("kept"), "a": B64.encode("old")}
                }]);
            }
            ("policy", spec)
        }
        7 => {
            // ClusterExternalSecret selectors
            let teams = ["red", "blue", "green"];
            let mut namespaces = Map::new();
            for n in 0..4 {
                let mut labels = Map::new();
                labels.insert("team".into(), Value::from(*rng.pick(&teams)));
                if rng.chance(50) {
                    labels.insert("env".into(), Value::from(*rng.pick(&["prod", "dev"])));
                }
                namespaces.insert(format!("t{n}"), Value::Object(labels));
            }
            let selector = match rng.below(5) {
                0 => json!({"namespaceSelectors": [{"matchLabels": {"team": *rng.pick(&teams)}}]}),
                1 => {
                    json!({"namespaceSelectors": [{"matchLabels": {"team": *rng.pick(&teams)}}, {"matchLabels": {"env": "prod"}}]})
                }
                2 => {
                    json!({"namespaceSelectors": [{"matchExpressions": [{"key": "env", "operator": *rng.pick(&["Exists", "DoesNotExist"])}]}]})
                }
                3 => {
                    json!({"namespaceSelectors": [{"matchExpressions": [{"key": "team", "operator": *rng.pick(&["In", "NotIn"]), "values": [*rng.pick(&teams), *rng.pick(&teams)]}]}]})
                }
                _ => json!({"namespaces": [format!("t{}", rng.below(4)), "nowhere"]}),
            };
            let mut spec = selector;
            let mut es_spec = json!({
                "secretStoreRef": {"kind": "ClusterSecretStore", "name": "store"},
                "dataFrom": [{"extract": {"key": "src"}}]
            });
            if rng.chance(40) {
                es_spec["target"] = json!({"name": "fanned"});
            }
            spec["externalSecretSpec"] = es_spec;
            if rng.chance(40) {
                spec["externalSecretMetadata"] =
                    json!({"labels": {"from": "ces"}, "annotations": {"note": "n"}});
            }
            if rng.chance(30) {
                spec["externalSecretName"] = Value::from("named-es");
            }
            (
                "ces",
                json!({
                    "namespaces": namespaces,
                    "secrets": {"src": {"user": "u", "pass": *rng.pick(TEXTS)}},
                    "objects": [{"apiVersion": "external-secrets.io/v1", "kind": "ClusterExternalSecret", "metadata": {"name": "fan"}, "spec": spec}]
                }),
            )
        }
        8 => {
            // templates over fetched values
            let templates = [
                "{{ .a }}",
                "{{ .a | upper }}",
                "{{ .a | b64enc }}",
                "{{ printf \"%s-%s\" .a .b }}",
                "{{ .a | toJson }}",
                "{{ .missing }}",
                "{{ .a | quote }}",
                "{{ .a | sha256sum }}",
                "{{ .a | trim }}",
                "{{ .b | camelcase }}",
                "{{ .a | replace \" \" \"_\" }}",
            ];
            let mut template = json!({"engineVersion": "v2", "data": {"t": *rng.pick(&templates)}});
            if rng.chance(30) {
                template["type"] = Value::from(*rng.pick(&["Opaque", "example.com/t"]));
            }
            if rng.chance(30) {
                template["metadata"] =
                    json!({"labels": {"l": "fixed"}, "annotations": {"a": "{{ .b }}"}});
            }
            if rng.chance(30) {
                template["mergePolicy"] = Value::from(*rng.pick(&["Replace", "Merge"]));
            }
            (
                "template",
                json!({
                    "secrets": {"src": {"a": *rng.pick(TEXTS), "b": *rng.pick(&["foo_bar", "foo-bar baz", "FooBar", "x"])}},
                    "es": {"target": {"template": template}, "dataFrom": [{"extract": {"key": "src"}}]}
                }),
            )
        }
        _ => {
            // data[] and dataFrom[] together, order and overrides, ES metadata
            let mut es = json!({
                "data": [{"secretKey": "a", "remoteRef": {"key": "one", "property": *rng.pick(&["a", "b", "x"])}}],
                "dataFrom": [{"extract": {"key": "one"}}, {"extract": {"key": "two"}}]
            });
            if rng.chance(50) {
                es["dataFrom"] = json!([{"extract": {"key": "two"}}, {"extract": {"key": "one"}}]);
            }
            if rng.chance(30) {
                es["data"][0]["remoteRef"]["key"] = Value::from("absent");
            }
            (
                "order",
                json!({
                    "secrets": {"one": {"a": "1", "b": *rng.pick(TEXTS)}, "two": {"a": "2", "c": *rng.pick(TEXTS)}},
                    "es_metadata": {"labels": {"app": "web"}, "annotations": {"team": "a"}},
                    "es": es
                }),
            )
        }
    };
    let mut spec = spec;
    spec["name"] = Value::from(format!("gen-{i:04}-{label}"));
    RawCase {
        name: format!("gen-{i:04}-{label}"),
        spec,
    }
}

// ---------------------------------------------------------------------------------------
// From a case to its objects
// ---------------------------------------------------------------------------------------

fn secret_data(values: &Value) -> Value {
    let mut data = Map::new();
    for (k, v) in values.as_object().expect("a secret's keys") {
        let bytes = match v {
            Value::String(s) => s.as_bytes().to_vec(),
            Value::Object(o) if o.contains_key("b64") => B64
                .decode(o["b64"].as_str().unwrap())
                .expect("b64: valid base64"),
            other => other.to_string().into_bytes(),
        };
        data.insert(k.clone(), Value::from(B64.encode(bytes)));
    }
    Value::Object(data)
}

/// The objects a case's compact form stands for, before renaming.
pub(crate) fn expand(raw: &RawCase) -> Vec<Value> {
    let spec = &raw.spec;
    let mut objects = Vec::new();
    let mut namespaces: BTreeMap<String, Value> = BTreeMap::new();
    namespaces.insert("src".into(), json!({}));
    namespaces.insert("app".into(), json!({}));
    if let Some(extra) = spec.get("namespaces").and_then(Value::as_object) {
        for (name, labels) in extra {
            namespaces.insert(name.clone(), labels.clone());
        }
    }
    for (name, labels) in &namespaces {
        objects.push(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels}}));
    }
    let meta = spec.get("secret_meta").cloned().unwrap_or(json!({}));
    if let Some(secrets) = spec.get("secrets").and_then(Value::as_object) {
        for (name, values) in secrets {
            let m = meta.get(name).cloned().unwrap_or(json!({}));
            let mut secret = json!({
                "apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": name, "namespace": "src"},
                "type": m.get("type").cloned().unwrap_or(Value::from("Opaque")),
                "data": secret_data(values)
            });
            for field in ["labels", "annotations"] {
                if let Some(v) = m.get(field) {
                    secret["metadata"][field] = v.clone();
                }
            }
            objects.push(secret);
        }
    }
    let mut provider = json!({"remoteNamespace": "src"});
    if let Some(overrides) = spec.get("store").and_then(Value::as_object) {
        for (k, v) in overrides {
            if v.is_null() {
                provider.as_object_mut().unwrap().remove(k);
            } else {
                provider[k] = v.clone();
            }
        }
    }
    if !spec
        .get("no_store")
        .and_then(Value::as_bool)
        .unwrap_or(false)
    {
        objects.push(json!({
            "apiVersion": "external-secrets.io/v1", "kind": "ClusterSecretStore",
            "metadata": {"name": "store"},
            "spec": {"provider": {"kubernetes": provider}}
        }));
    }
    if let Some(es) = spec.get("es") {
        let mut es_spec = es.clone();
        match es_spec.get("secretStoreRef") {
            None => {
                es_spec["secretStoreRef"] = json!({"kind": "ClusterSecretStore", "name": "store"});
            }
            // `secretStoreRef: null`: the ExternalSecret names no store of its own.
            Some(Value::Null) => {
                es_spec.as_object_mut().unwrap().remove("secretStoreRef");
            }
            Some(_) => {}
        }
        let mut metadata = json!({"name": "es", "namespace": "app"});
        if let Some(m) = spec.get("es_metadata").and_then(Value::as_object) {
            for (k, v) in m {
                metadata[k] = v.clone();
            }
        }
        objects.push(json!({
            "apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
            "metadata": metadata, "spec": es_spec
        }));
    }
    if let Some(extra) = spec.get("objects").and_then(Value::as_array) {
        objects.extend(extra.iter().cloned());
    }
    objects
}

/// Renames a case's objects into its own space (see the module's doc) and gives every
/// Kubernetes-provider store the control plane's `server` and the reader's `auth` when the
/// case names none.
fn build(raw: &RawCase, id: &str, server: &str, ca: &str) -> Case {
    build_objects(&raw.name, expand(raw), id, server, ca)
}

/// [`build`] of any objects (a case's, or the seed platform's).
pub(crate) fn build_objects(
    name: &str,
    mut objects: Vec<Value>,
    id: &str,
    server: &str,
    ca: &str,
) -> Case {
    let mut namespaces = BTreeSet::new();
    for object in &objects {
        if object["kind"] == "Namespace" {
            namespaces.insert(object["metadata"]["name"].as_str().unwrap().to_owned());
        }
        if let Some(ns) = object["metadata"]["namespace"].as_str() {
            namespaces.insert(ns.to_owned());
        }
    }
    let declared: BTreeSet<String> = objects
        .iter()
        .filter(|o| o["kind"] == "Namespace")
        .map(|o| o["metadata"]["name"].as_str().unwrap().to_owned())
        .collect();
    for ns in namespaces.difference(&declared) {
        objects.push(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}));
    }
    let rename = Renamer { id: id.to_owned() };
    for object in &mut objects {
        rename.object(object, server, ca);
    }
    Case {
        name: name.to_owned(),
        id: id.to_owned(),
        namespaces: namespaces.iter().map(|n| rename.ns(n)).collect(),
        objects,
    }
}

struct Renamer {
    id: String,
}

impl Renamer {
    fn ns(&self, name: &str) -> String {
        format!("{}-{name}", self.id)
    }

    fn rename_str(&self, value: &mut Value) {
        if let Some(s) = value.as_str() {
            *value = Value::from(self.ns(s));
        }
    }

    fn regex(&self, value: &mut Value) {
        if let Some(s) = value.as_str() {
            let renamed = match s.strip_prefix('^') {
                Some(rest) => format!("^{}-{rest}", self.id),
                None => format!("^{}-.*{s}", self.id),
            };
            *value = Value::from(renamed);
        }
    }

    /// A label selector: narrowed to the case, and `kubernetes.io/metadata.name` renamed.
    fn selector(&self, selector: &mut Value) {
        if !selector.is_object() {
            return;
        }
        if let Some(name) = selector.pointer_mut("/matchLabels/kubernetes.io~1metadata.name") {
            self.rename_str(name);
        }
        if let Some(expressions) = selector
            .get_mut("matchExpressions")
            .and_then(Value::as_array_mut)
        {
            for e in expressions {
                if e["key"] == "kubernetes.io/metadata.name"
                    && let Some(values) = e.get_mut("values").and_then(Value::as_array_mut)
                {
                    values.iter_mut().for_each(|v| self.rename_str(v));
                }
            }
        }
        if selector.get("matchLabels").is_none() {
            selector["matchLabels"] = json!({});
        }
        selector["matchLabels"][CASE_LABEL] = Value::from(self.id.clone());
    }

    fn store_ref(&self, reference: &mut Value) {
        if reference["kind"] == "ClusterSecretStore" {
            self.rename_str(&mut reference["name"]);
        }
    }

    fn es_spec(&self, spec: &mut Value) {
        if let Some(r) = spec.get_mut("secretStoreRef") {
            self.store_ref(r);
        }
        for list in ["data", "dataFrom"] {
            if let Some(entries) = spec.get_mut(list).and_then(Value::as_array_mut) {
                for entry in entries {
                    if let Some(r) = entry.pointer_mut("/sourceRef/storeRef") {
                        self.store_ref(r);
                    }
                }
            }
        }
    }

    fn object(&self, object: &mut Value, server: &str, ca: &str) {
        let kind = object["kind"].as_str().unwrap_or_default().to_owned();
        if let Some(ns) = object.pointer_mut("/metadata/namespace") {
            self.rename_str(ns);
        }
        match kind.as_str() {
            "Namespace" => {
                self.rename_str(&mut object["metadata"]["name"]);
                if object["metadata"].get("labels").is_none_or(Value::is_null) {
                    object["metadata"]["labels"] = json!({});
                }
                object["metadata"]["labels"][CASE_LABEL] = Value::from(self.id.clone());
            }
            "ClusterSecretStore" | "SecretStore" => {
                let cluster = kind == "ClusterSecretStore";
                if cluster {
                    self.rename_str(&mut object["metadata"]["name"]);
                }
                if let Some(conditions) = object
                    .pointer_mut("/spec/conditions")
                    .and_then(Value::as_array_mut)
                {
                    for c in conditions {
                        if let Some(s) = c.get_mut("namespaceSelector") {
                            self.selector(s);
                        }
                        if let Some(list) = c.get_mut("namespaces").and_then(Value::as_array_mut) {
                            list.iter_mut().for_each(|v| self.rename_str(v));
                        }
                        if let Some(list) =
                            c.get_mut("namespaceRegexes").and_then(Value::as_array_mut)
                        {
                            list.iter_mut().for_each(|v| self.regex(v));
                        }
                    }
                }
                if let Some(k) = object.pointer_mut("/spec/provider/kubernetes") {
                    if let Some(ns) = k.get_mut("remoteNamespace") {
                        self.rename_str(ns);
                    }
                    let remote = k["remoteNamespace"].as_str().map(str::to_owned);
                    if k.get("server").is_none() {
                        k["server"] = json!({});
                    }
                    if k["server"].get("url").is_none() {
                        k["server"]["url"] = Value::from(server);
                    }
                    if k["server"].get("caBundle").is_none()
                        && k["server"].get("caProvider").is_none()
                    {
                        k["server"]["caBundle"] = Value::from(ca);
                    }
                    if let Some(p) = k.pointer_mut("/server/caProvider/namespace") {
                        self.rename_str(p);
                    }
                    match k.get_mut("auth") {
                        None => {
                            let mut account = json!({"name": READER});
                            if cluster {
                                account["namespace"] =
                                    Value::from(remote.unwrap_or_else(|| self.ns("src")));
                            }
                            k["auth"] = json!({"serviceAccount": account});
                        }
                        Some(auth) => {
                            for path in [
                                "/serviceAccount/namespace",
                                "/token/bearerToken/namespace",
                                "/cert/clientCert/namespace",
                                "/cert/clientKey/namespace",
                            ] {
                                if let Some(p) = auth.pointer_mut(path) {
                                    self.rename_str(p);
                                }
                            }
                        }
                    }
                }
            }
            "ExternalSecret" => {
                if let Some(spec) = object.get_mut("spec") {
                    self.es_spec(spec);
                }
            }
            "ClusterExternalSecret" => {
                self.rename_str(&mut object["metadata"]["name"]);
                let spec = &mut object["spec"];
                if let Some(list) = spec
                    .get_mut("namespaceSelectors")
                    .and_then(Value::as_array_mut)
                {
                    list.iter_mut().for_each(|s| self.selector(s));
                }
                if let Some(s) = spec.get_mut("namespaceSelector") {
                    self.selector(s);
                }
                if let Some(list) = spec.get_mut("namespaces").and_then(Value::as_array_mut) {
                    list.iter_mut().for_each(|v| self.rename_str(v));
                }
                if let Some(list) = spec
                    .get_mut("namespaceRegexes")
                    .and_then(Value::as_array_mut)
                {
                    list.iter_mut().for_each(|v| self.regex(v));
                }
                if let Some(es) = spec.get_mut("externalSecretSpec") {
                    self.es_spec(es);
                }
            }
            _ => {}
        }
    }
}

// ---------------------------------------------------------------------------------------
// Courier's side: `courier render` of the case's world and manifests
// ---------------------------------------------------------------------------------------

fn courier_outcome(case: &Case, dir: &Path) -> Outcome {
    let objects: Vec<&Value> = case.objects.iter().collect();
    match render(&objects, &dir.join(format!("{}.yaml", case.id))) {
        Ok(mut by_case) => Outcome::Secrets(by_case.remove(&case.id).unwrap_or_default()),
        Err(stderr) => {
            // courier's errors name objects and keys, never values (a rule of the project).
            let first = stderr
                .lines()
                .find(|l| l.contains("error"))
                .or_else(|| stderr.lines().next())
                .unwrap_or("")
                .chars()
                .take(240)
                .collect::<String>();
            Outcome::Error(format!("courier: {first}"))
        }
    }
}

/// How courier's side renders the cases.
#[derive(Clone, Copy, PartialEq)]
enum Rendering {
    /// Many cases per `courier render` (the default, see [`render_batch`]).
    Batches,
    /// One `courier render` per case (`COURIER_DIFFERENTIAL_RENDER=one-by-one`).
    OneByOne,
    /// Both, and the test fails unless every case's outcome is the same either way
    /// (`COURIER_DIFFERENTIAL_RENDER=both`: the check that batching changes nothing).
    Both,
}

/// Cases per `courier render` process.
const BATCH: usize = 64;

/// How many `courier render` processes courier's side ran.
static RENDERS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

/// courier's outcome of every case, on four threads.
fn courier_side(cases: Vec<Case>, dir: &Path, rendering: Rendering) -> BTreeMap<String, Outcome> {
    let chunk = cases.len().div_ceil(4).max(1);
    let mut chunks: Vec<Vec<Case>> = Vec::new();
    let mut cases = cases.into_iter().peekable();
    while cases.peek().is_some() {
        chunks.push(cases.by_ref().take(chunk).collect());
    }
    std::thread::scope(|scope| {
        let handles: Vec<_> = chunks
            .iter()
            .map(|chunk| {
                scope.spawn(move || {
                    let mut outcomes = Vec::new();
                    for batch in chunk.chunks(BATCH) {
                        let batched = match rendering {
                            Rendering::OneByOne => None,
                            _ => Some(render_batch(batch, dir)),
                        };
                        let single = match rendering {
                            Rendering::Batches => None,
                            _ => Some(
                                batch
                                    .iter()
                                    .map(|case| (case.name.clone(), courier_outcome(case, dir)))
                                    .collect::<Vec<_>>(),
                            ),
                        };
                        if let (Some(b), Some(s)) = (&batched, &single) {
                            let b: BTreeMap<_, _> = b.iter().cloned().collect();
                            for (name, outcome) in s {
                                assert_eq!(
                                    format!("{:?}", b[name]),
                                    format!("{outcome:?}"),
                                    "case {name}: courier's outcome in a batch differs from its own render's"
                                );
                            }
                        }
                        outcomes.extend(batched.or(single).unwrap());
                    }
                    outcomes
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect()
    })
}

/// courier's outcome of each case of a batch, rendering as many together as it can.
/// `render` is all or nothing, and names every object that fails (with its namespace or
/// its prefixed cluster-scoped name, so with its case id): a batch that renders gives
/// each case the Secrets of its own namespaces; the cases a failing batch's errors name
/// are rendered alone (their own outcome, their own error), and the rest together again.
/// Cases share nothing (namespaces, cluster-scoped names and selectors are the case's),
/// so a case's Secrets do not depend on its batch; `COURIER_DIFFERENTIAL_RENDER=both`
/// checks it.
fn render_batch(batch: &[Case], dir: &Path) -> Vec<(String, Outcome)> {
    let mut outcomes = Vec::new();
    let mut pending: Vec<&Case> = batch.iter().collect();
    while pending.len() > 1 {
        let objects: Vec<&Value> = pending.iter().flat_map(|c| &c.objects).collect();
        match render(&objects, &dir.join(format!("batch-{}.yaml", pending[0].id))) {
            Ok(mut by_case) => {
                for case in pending.drain(..) {
                    let secrets = by_case.remove(&case.id).unwrap_or_default();
                    outcomes.push((case.name.clone(), Outcome::Secrets(secrets)));
                }
            }
            Err(stderr) => {
                let errors: Vec<&str> = stderr
                    .lines()
                    .filter(|l| !l.starts_with("warning"))
                    .collect();
                let named = |case: &&Case| {
                    let prefix = format!("{}-", case.id);
                    errors.iter().any(|l| l.contains(&prefix))
                };
                let (alone, rest): (Vec<&Case>, Vec<&Case>) =
                    pending.iter().partition(|c| named(c));
                // An error that names no case: every case on its own.
                let alone = if alone.is_empty() {
                    std::mem::take(&mut pending)
                } else {
                    pending = rest;
                    alone
                };
                for case in alone {
                    outcomes.push((case.name.clone(), courier_outcome(case, dir)));
                }
            }
        }
    }
    for case in pending {
        outcomes.push((case.name.clone(), courier_outcome(case, dir)));
    }
    outcomes
}

/// `courier render` of objects: the Secrets it prints by case id, then (namespace,
/// name); or its stderr when it fails.
#[allow(clippy::type_complexity)]
fn render(
    objects: &[&Value],
    path: &Path,
) -> Result<BTreeMap<String, BTreeMap<(String, String), Written>>, String> {
    let text: String = objects
        .iter()
        .map(|o| format!("---\n{}\n", serde_json::to_string(o).unwrap()))
        .collect();
    std::fs::write(path, text).unwrap();
    RENDERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let output = Command::new(env!("CARGO_BIN_EXE_courier"))
        .arg("render")
        .arg(path)
        .args(["-o", "json", "--allow-empty", "--adopt-existing-targets"])
        .env_remove("KUBECONFIG")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).into_owned());
    }
    let list: Value = serde_json::from_slice(&output.stdout).unwrap();
    let mut secrets: BTreeMap<String, BTreeMap<(String, String), Written>> = BTreeMap::new();
    for item in list["items"].as_array().into_iter().flatten() {
        // A Secret without courier's origin annotation is an existing target courier
        // prints unchanged (it writes nothing to it, as ESO writes nothing).
        if item["kind"] != "Secret"
            || item["metadata"]["annotations"]["courier.dev/origin"].is_null()
        {
            continue;
        }
        let ns = item["metadata"]["namespace"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        let name = item["metadata"]["name"].as_str().unwrap_or("").to_owned();
        secrets
            .entry(case_of(&ns).to_owned())
            .or_default()
            .insert((ns, name), written(item));
    }
    Ok(secrets)
}

/// Each tool's own bookkeeping on a Secret, left out of the comparison.
fn bookkeeping(key: &str, value: &str) -> bool {
    key.starts_with("reconcile.external-secrets.io/")
        || key.starts_with("courier.dev/")
        || (key == "app.kubernetes.io/managed-by" && value == "courier")
}

pub(crate) fn written(item: &Value) -> Written {
    let strings = |v: &Value| -> BTreeMap<String, String> {
        v.as_object()
            .into_iter()
            .flatten()
            .filter(|(k, v)| !bookkeeping(k, v.as_str().unwrap_or("")))
            .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_owned()))
            .collect()
    };
    let mut data: BTreeMap<String, Vec<u8>> = item["data"]
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), B64.decode(v.as_str().unwrap_or("")).unwrap()))
        .collect();
    for (k, v) in item["stringData"].as_object().into_iter().flatten() {
        data.insert(k.clone(), v.as_str().unwrap_or("").as_bytes().to_vec());
    }
    Written {
        type_: item["type"].as_str().unwrap_or("Opaque").to_owned(),
        data,
        labels: strings(&item["metadata"]["labels"]),
        annotations: strings(&item["metadata"]["annotations"]),
        finalizers: item["metadata"]["finalizers"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|f| f.as_str().unwrap_or("").to_owned())
            .collect(),
    }
}

// ---------------------------------------------------------------------------------------
// ESO's side: the real controller on a private control plane
// ---------------------------------------------------------------------------------------

fn resource(kind: &str) -> (ApiResource, bool) {
    let (group, version, plural, namespaced) = match kind {
        "Namespace" => ("", "v1", "namespaces", false),
        "Secret" => ("", "v1", "secrets", true),
        "ConfigMap" => ("", "v1", "configmaps", true),
        "ServiceAccount" => ("", "v1", "serviceaccounts", true),
        "ClusterSecretStore" => ("external-secrets.io", "v1", "clustersecretstores", false),
        "SecretStore" => ("external-secrets.io", "v1", "secretstores", true),
        "ExternalSecret" => ("external-secrets.io", "v1", "externalsecrets", true),
        "ClusterExternalSecret" => ("external-secrets.io", "v1", "clusterexternalsecrets", false),
        other => panic!("the differential harness cannot create a {other}"),
    };
    let api_version = if group.is_empty() {
        version.to_owned()
    } else {
        format!("{group}/{version}")
    };
    (
        ApiResource {
            group: group.into(),
            version: version.into(),
            api_version,
            kind: kind.into(),
            plural: plural.into(),
        },
        namespaced,
    )
}

/// Creates one object; Err(short reason) when the API server refuses it.
async fn create(client: &Client, object: &Value) -> Result<(), String> {
    let kind = object["kind"].as_str().unwrap();
    let (ar, namespaced) = resource(kind);
    let api: Api<DynamicObject> = if namespaced {
        Api::namespaced_with(
            client.clone(),
            object["metadata"]["namespace"].as_str().unwrap(),
            &ar,
        )
    } else {
        Api::all_with(client.clone(), &ar)
    };
    let dynamic: DynamicObject = serde_json::from_value(object.clone()).map_err(|e| {
        format!(
            "{kind} {} is not a Kubernetes object: {e}",
            object["metadata"]["name"].as_str().unwrap_or("")
        )
    })?;
    let name = object["metadata"]["name"].as_str().unwrap_or("");
    // The world (namespaces, Secrets, ConfigMaps, ServiceAccounts) is created with a POST,
    // which costs the API server less than a server-side apply; one that exists already
    // (declared twice) is applied over as before.
    if matches!(
        kind,
        "Namespace" | "Secret" | "ConfigMap" | "ServiceAccount"
    ) {
        match api.create(&PostParams::default(), &dynamic).await {
            Ok(_) => return Ok(()),
            Err(kube::Error::Api(status)) if status.code == 409 => {}
            Err(kube::Error::Api(status)) => {
                return Err(format!(
                    "the API server refused {kind} {name}: {}",
                    status.reason
                ));
            }
            Err(e) => return Err(format!("cannot create {kind}: {e}")),
        }
    }
    // Server-side apply with strict field validation, as `kubectl apply` does by default:
    // a field ESO's CRDs do not have is refused, not pruned.
    let params = PatchParams::apply("differential").validation_strict();
    match api.patch(name, &params, &Patch::Apply(&dynamic)).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) => Err(format!(
            "the API server refused {kind} {name}: {}",
            status.reason
        )),
        Err(e) => Err(format!("cannot create {kind}: {e}")),
    }
}

/// Creates every case's objects in waves (namespaces and their reader, then the world,
/// then stores, then the manifests); the cases the API server refused, with why.
pub(crate) async fn create_all(client: &Client, cases: &[Case]) -> BTreeMap<String, String> {
    let wave = |o: &Value| match o["kind"].as_str().unwrap() {
        "Namespace" => 0,
        "ServiceAccount" | "Secret" | "ConfigMap" => 1,
        "ClusterSecretStore" | "SecretStore" => 2,
        _ => 3,
    };
    let mut refused: BTreeMap<String, String> = BTreeMap::new();
    for w in 0..4 {
        let mut jobs: Vec<(String, Value)> = Vec::new();
        for case in cases {
            for o in case.objects.iter().filter(|o| wave(o) == w) {
                jobs.push((case.name.clone(), o.clone()));
            }
            if w == 1 {
                for ns in readers_of(case) {
                    jobs.push((
                        case.name.clone(),
                        json!({"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": READER, "namespace": ns}}),
                    ));
                }
            }
        }
        let results: Vec<(String, Result<(), String>)> = futures::stream::iter(jobs)
            .map(|(name, object)| {
                let client = client.clone();
                async move { (name, create(&client, &object).await) }
            })
            .buffer_unordered(48)
            .collect()
            .await;
        for (name, result) in results {
            if let Err(e) = result {
                refused.entry(name).or_insert(e);
            }
        }
    }
    refused
}

/// The namespaces that need the ServiceAccount `diff-reader`: those the `auth` the harness
/// gave the case's Kubernetes stores names (every namespace of the case when a store names
/// `diff-reader` without a namespace ESO would read it from).
pub(crate) fn readers_of(case: &Case) -> BTreeSet<String> {
    let mut namespaces = BTreeSet::new();
    for o in &case.objects {
        let Some(account) = o.pointer("/spec/provider/kubernetes/auth/serviceAccount") else {
            continue;
        };
        if account["name"] != READER {
            continue;
        }
        match account["namespace"]
            .as_str()
            .or(o["metadata"]["namespace"].as_str())
        {
            Some(ns) => namespaces.insert(ns.to_owned()),
            None => return case.namespaces.iter().cloned().collect(),
        };
    }
    namespaces
}

/// Every ServiceAccount may read Secrets and ConfigMaps anywhere: the stores' identity
/// is not what this test compares.
async fn grant_readers(client: &Client) {
    use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
    let role: ClusterRole = serde_json::from_value(json!({
        "metadata": {"name": READER},
        "rules": [{"apiGroups": [""], "resources": ["secrets", "configmaps"], "verbs": ["get", "list", "watch"]},
                  {"apiGroups": ["authorization.k8s.io"], "resources": ["selfsubjectrulesreviews", "selfsubjectaccessreviews"], "verbs": ["create"]}]
    }))
    .unwrap();
    Api::<ClusterRole>::all(client.clone())
        .create(&PostParams::default(), &role)
        .await
        .unwrap();
    let binding: ClusterRoleBinding = serde_json::from_value(json!({
        "metadata": {"name": READER},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": READER},
        "subjects": [{"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": "system:serviceaccounts"}]
    }))
    .unwrap();
    Api::<ClusterRoleBinding>::all(client.clone())
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();
}

fn ready_status(object: &Value) -> Option<(String, String)> {
    object["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Ready")
        .map(|c| {
            (
                c["status"].as_str().unwrap_or("").to_owned(),
                c["reason"].as_str().unwrap_or("").to_owned(),
            )
        })
}

pub(crate) async fn list_all(client: &Client, kind: &str) -> Vec<Value> {
    let (ar, _) = resource(kind);
    Api::<DynamicObject>::all_with(client.clone(), &ar)
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .map(|o| serde_json::to_value(o).unwrap())
        .collect()
}

/// The case id a namespaced object belongs to.
pub(crate) fn case_of(namespace: &str) -> &str {
    namespace.split('-').next().unwrap_or("")
}

/// ESO's verdict on an object: its Ready condition's status and reason, if any.
type Verdict = Option<(String, String)>;

/// How long the cases' verdicts must stay as they are before they count: a verdict
/// ESO retries (a transient failure) gets the time to change.
const QUIET: Duration = Duration::from_secs(3);

/// Waits until ESO has a verdict (a Ready condition) on every ExternalSecret and
/// ClusterExternalSecret of the cases, and no verdict has changed (and no new object
/// appeared) for [`QUIET`]; the cases without a verdict when `limit` is reached. Watches
/// both kinds rather than listing them again and again.
pub(crate) async fn wait_for_eso(
    client: &Client,
    cases: &[Case],
    limit: Duration,
) -> BTreeSet<String> {
    use kube::runtime::{WatchStreamExt as _, watcher};
    let ids: BTreeSet<&str> = cases.iter().map(|c| c.id.as_str()).collect();
    let started = Instant::now();
    let watch = |kind: &'static str| {
        let (ar, _) = resource(kind);
        watcher(
            Api::<DynamicObject>::all_with(client.clone(), &ar),
            watcher::Config::default(),
        )
        .default_backoff()
        .map(move |event| (kind, event))
    };
    let mut events = std::pin::pin!(futures::stream::select(
        watch("ExternalSecret"),
        watch("ClusterExternalSecret")
    ));
    // (kind, namespace/name) -> (case id, its verdict: Ready's status and reason)
    let mut verdicts: BTreeMap<(&str, String), (String, Verdict)> = BTreeMap::new();
    let mut listed = BTreeSet::new();
    let mut changed = Instant::now();
    let mut said = false;
    loop {
        let pending: BTreeSet<String> = verdicts
            .values()
            .filter(|(_, verdict)| verdict.is_none())
            .map(|(id, _)| id.clone())
            .collect();
        let complete = listed.len() == 2 && pending.is_empty();
        if complete && !said {
            said = true;
            eprintln!(
                "differential: every ExternalSecret and ClusterExternalSecret has a verdict after {:.0} s",
                started.elapsed().as_secs_f64()
            );
        }
        if complete && changed.elapsed() >= QUIET {
            return pending;
        }
        if started.elapsed() > limit {
            return pending;
        }
        let wait = if complete {
            QUIET.saturating_sub(changed.elapsed())
        } else {
            Duration::from_secs(1)
        };
        let Ok(Some((kind, event))) = tokio::time::timeout(wait, events.next()).await else {
            continue;
        };
        let object = match event {
            Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o)) => o,
            Ok(watcher::Event::InitDone) => {
                listed.insert(kind);
                continue;
            }
            Ok(watcher::Event::Delete(o)) => {
                let key = format!(
                    "{}/{}",
                    o.metadata.namespace.as_deref().unwrap_or(""),
                    o.metadata.name.as_deref().unwrap_or("")
                );
                if verdicts.remove(&(kind, key)).is_some() {
                    changed = Instant::now();
                }
                continue;
            }
            _ => continue,
        };
        let namespace = object.metadata.namespace.clone().unwrap_or_default();
        let name = object.metadata.name.clone().unwrap_or_default();
        // A namespaced object belongs to its namespace's case, a cluster-scoped one to its
        // name's prefix.
        let id = case_of(if namespace.is_empty() {
            &name
        } else {
            &namespace
        })
        .to_owned();
        if !ids.contains(id.as_str()) {
            continue;
        }
        let verdict = ready_status(&serde_json::to_value(&object).unwrap());
        let key = (kind, format!("{namespace}/{name}"));
        if verdicts.get(&key).map(|(_, v)| v) != Some(&verdict) {
            changed = Instant::now();
            verdicts.insert(key, (id, verdict));
        }
    }
}

async fn eso_outcomes(
    client: &Client,
    cases: &[Case],
    refused: &BTreeMap<String, String>,
    unsettled: &BTreeSet<String>,
    messages: &mut BTreeMap<String, String>,
) -> BTreeMap<String, Outcome> {
    let mut errors: BTreeMap<String, String> = BTreeMap::new();
    for es in list_all(client, "ExternalSecret").await {
        let ns = es["metadata"]["namespace"].as_str().unwrap_or("");
        if let Some((status, reason)) = ready_status(&es)
            && status != "True"
        {
            errors
                .entry(case_of(ns).to_owned())
                .or_insert(format!("ESO: ExternalSecret not Ready ({reason})"));
            // ESO's message may quote a value: it goes to the report file only.
            if let Some(message) = es["status"]["conditions"]
                .as_array()
                .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
                .and_then(|c| c["message"].as_str())
            {
                messages
                    .entry(case_of(ns).to_owned())
                    .or_insert_with(|| message.to_owned());
            }
        }
    }
    for ces in list_all(client, "ClusterExternalSecret").await {
        let name = ces["metadata"]["name"].as_str().unwrap_or("");
        let failed = ces["status"]["failedNamespaces"]
            .as_array()
            .is_some_and(|f| !f.is_empty());
        if failed {
            errors
                .entry(case_of(name).to_owned())
                .or_insert("ESO: ClusterExternalSecret has failed namespaces".into());
        }
    }
    let mut secrets: BTreeMap<String, BTreeMap<(String, String), Written>> = BTreeMap::new();
    for secret in list_all(client, "Secret").await {
        // What ESO wrote carries its data hash: it labels an existing target it does not
        // write (creationPolicy None) as managed too, but only a write sets the hash.
        let written_by_eso = secret["metadata"]["annotations"]
            .get("reconcile.external-secrets.io/data-hash")
            .is_some();
        if !written_by_eso {
            continue;
        }
        let ns = secret["metadata"]["namespace"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        let name = secret["metadata"]["name"].as_str().unwrap_or("").to_owned();
        secrets
            .entry(case_of(&ns).to_owned())
            .or_default()
            .insert((ns, name), written(&secret));
    }
    cases
        .iter()
        .map(|case| {
            let outcome = if let Some(r) = refused.get(&case.name) {
                Outcome::Error(format!("ESO: {r}"))
            } else if unsettled.contains(&case.id) {
                Outcome::Error(NO_VERDICT.into())
            } else if let Some(e) = errors.get(&case.id) {
                Outcome::Error(e.clone())
            } else {
                Outcome::Secrets(secrets.remove(&case.id).unwrap_or_default())
            };
            (case.name.clone(), outcome)
        })
        .collect()
}

/// ESO v2.9.0's controller on a private control plane holding ESO v2.9.0's CRDs and the
/// readers' grant: one per test run, shared by the differential tests (the corpus against
/// `render`, and the live one against `apply`), each in namespaces of its own. A private
/// plane, because ESO's controller would reconcile every other test's ESO objects.
pub(crate) struct EsoPlane {
    pub plane: ControlPlane,
    /// The plane's CA, base64 (a store's `caBundle`).
    pub ca: String,
    /// ESO's log (stderr), in the plane's state directory.
    pub log: PathBuf,
    /// The watchdog running ESO's controller (it stops ESO when the test process is gone).
    _eso: std::process::Child,
}

static ESO_PLANE: std::sync::OnceLock<EsoPlane> = std::sync::OnceLock::new();

/// The shared [`EsoPlane`], started on first use (call it from a test's own thread,
/// outside any runtime).
pub(crate) fn eso_plane() -> &'static EsoPlane {
    crate::support::binaries_available();
    ESO_PLANE.get_or_init(|| {
        let started = Instant::now();
        let binary = eso_v2(&["controller"]);
        let plane = ControlPlane::start_private();
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            let client = client_of(&plane).await;
            let crds = tempfile::tempdir().unwrap();
            std::fs::copy(
                repo_root().join("../shared/eso/crds-v2.9.0.yaml"),
                crds.path().join("crds.yaml"),
            )
            .expect("ESO v2.9.0's CRD bundle in ../shared/eso/ beside the repository");
            install_crds_from(&client, crds.path()).await;
            grant_readers(&client).await;
        });
        let log = plane
            .kubeconfig
            .parent()
            .expect("the plane's state directory")
            .join("eso.log");
        // Under testenv's watchdog, which stops it when the test process is gone (the
        // shared plane is never dropped).
        let watchdog = start_eso(
            &binary,
            &plane.kubeconfig,
            &log,
            &[
                "--loglevel",
                "error",
                "--concurrent",
                "16",
                "--client-qps",
                "5000",
                "--client-burst",
                "5000",
            ],
            &[],
            Supervision::Watchdog,
        );
        eprintln!(
            "differential: ESO v2.9.0's controller and its control plane ready in {:.0} s",
            started.elapsed().as_secs_f64()
        );
        EsoPlane {
            ca: B64.encode(plane.ca_pem()),
            plane,
            log,
            _eso: watchdog,
        }
    })
}

// ---------------------------------------------------------------------------------------
// Comparison and the known differences
// ---------------------------------------------------------------------------------------

/// Where two byte strings part, without either's content.
fn bytes_marker(a: &[u8], b: &[u8]) -> String {
    let offset = a.iter().zip(b).take_while(|(x, y)| x == y).count();
    format!(
        "bytes differ at offset {offset} (lengths {} vs {})",
        a.len(),
        b.len()
    )
}

/// How ESO's outcome and courier's differ (ESO first), empty when they agree.
pub(crate) fn compare(eso: &Outcome, courier: &Outcome) -> Vec<String> {
    match (eso, courier) {
        (Outcome::Error(e), _) if e == NO_VERDICT => vec![e.clone()],
        (Outcome::Error(_), Outcome::Error(_)) => vec![],
        (Outcome::Error(e), Outcome::Secrets(s)) => {
            vec![format!("{e}; courier wrote {} Secret(s)", s.len())]
        }
        (Outcome::Secrets(s), Outcome::Error(e)) => {
            vec![format!("ESO wrote {} Secret(s); {e}", s.len())]
        }
        (Outcome::Secrets(a), Outcome::Secrets(b)) => {
            let mut out = Vec::new();
            for key in a.keys().chain(b.keys()).collect::<BTreeSet<_>>() {
                let (ns, name) = key;
                match (a.get(key), b.get(key)) {
                    (Some(_), None) => out.push(format!("{ns}/{name}: only ESO writes it")),
                    (None, Some(_)) => out.push(format!("{ns}/{name}: only courier writes it")),
                    (Some(x), Some(y)) => {
                        if x.type_ != y.type_ {
                            out.push(format!("{ns}/{name}: type {} vs {}", x.type_, y.type_));
                        }
                        for k in x.data.keys().chain(y.data.keys()).collect::<BTreeSet<_>>() {
                            match (x.data.get(k), y.data.get(k)) {
                                (Some(_), None) => {
                                    out.push(format!("{ns}/{name}: key {k:?} only from ESO"))
                                }
                                (None, Some(_)) => {
                                    out.push(format!("{ns}/{name}: key {k:?} only from courier"))
                                }
                                (Some(p), Some(q)) if p != q => out
                                    .push(format!("{ns}/{name}: key {k:?} {}", bytes_marker(p, q))),
                                _ => {}
                            }
                        }
                        for (what, p, q) in [
                            ("label", &x.labels, &y.labels),
                            ("annotation", &x.annotations, &y.annotations),
                        ] {
                            for k in p.keys().chain(q.keys()).collect::<BTreeSet<_>>() {
                                match (p.get(k), q.get(k)) {
                                    (Some(_), None) => {
                                        out.push(format!("{ns}/{name}: {what} {k} only from ESO"))
                                    }
                                    (None, Some(_)) => out
                                        .push(format!("{ns}/{name}: {what} {k} only from courier")),
                                    (Some(v), Some(w)) if v != w => {
                                        out.push(format!("{ns}/{name}: {what} {k} value differs"))
                                    }
                                    _ => {}
                                }
                            }
                        }
                    }
                    (None, None) => {}
                }
            }
            out
        }
    }
}

/// `KNOWN_DIFFERENCES.yaml`: case name -> reason.
pub(crate) fn known_differences() -> BTreeMap<String, String> {
    let text = std::fs::read_to_string(corpus_dir().join("KNOWN_DIFFERENCES.yaml")).unwrap();
    let entries: Vec<Value> = serde_saphyr::from_str(&text).unwrap();
    let mut known = BTreeMap::new();
    for entry in entries {
        let reason = entry["reason"]
            .as_str()
            .expect("each entry has a reason")
            .to_owned();
        for case in entry["cases"].as_array().expect("each entry lists cases") {
            let case = case.as_str().unwrap().to_owned();
            assert!(
                known.insert(case.clone(), reason.clone()).is_none(),
                "KNOWN_DIFFERENCES.yaml lists {case} twice"
            );
        }
    }
    known
}

#[test]
fn eso_v2_9_0_and_courier_write_the_same_secrets() {
    crate::support::binaries_available();
    let started = Instant::now();
    let mut hand = hand_cases();
    let mut generated = generated_cases();
    // COURIER_DIFFERENTIAL_FILTER=a,b runs only the cases whose name holds a or b (to work on
    // a few); the corpus' size and the stale entries are then not checked.
    let filter = std::env::var("COURIER_DIFFERENTIAL_FILTER").ok();
    if let Some(filter) = &filter {
        let wanted = |name: &str| filter.split(',').any(|f| name.contains(f));
        hand.retain(|c| wanted(&c.name));
        generated.retain(|c| wanted(&c.name));
    } else {
        assert!(
            hand.len() >= 300 && generated.len() >= 1_000,
            "{} hand-made and {} generated cases (at least 300 and 1,000)",
            hand.len(),
            generated.len()
        );
    }
    let eso = eso_plane();
    let plane = &eso.plane;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let client = runtime.block_on(client_of(plane));
    let ca = &eso.ca;
    let all: Vec<RawCase> = hand.iter().chain(&generated).cloned().collect();
    let cases: Vec<Case> = all
        .iter()
        .enumerate()
        .map(|(i, raw)| build(raw, &format!("d{i:04}"), plane.server(), ca))
        .collect();

    // courier's side, on threads while ESO works.
    let dir = tempfile::tempdir().unwrap();
    let courier_dir = dir.path().to_path_buf();
    let jobs: Vec<Case> = cases
        .iter()
        .map(|c| Case {
            name: c.name.clone(),
            id: c.id.clone(),
            namespaces: vec![],
            objects: c.objects.clone(),
        })
        .collect();
    let rendering = match std::env::var("COURIER_DIFFERENTIAL_RENDER").as_deref() {
        Ok("one-by-one") => Rendering::OneByOne,
        Ok("both") => Rendering::Both,
        _ => Rendering::Batches,
    };
    let courier = std::thread::spawn(move || {
        let courier_started = Instant::now();
        let outcomes = courier_side(jobs, &courier_dir, rendering);
        (outcomes, courier_started.elapsed())
    });

    let refused = runtime.block_on(create_all(&client, &cases));
    let created = started.elapsed();
    let waiting = Instant::now();
    let unsettled = runtime.block_on(wait_for_eso(&client, &cases, Duration::from_secs(300)));
    let waited = waiting.elapsed();
    let mut messages = BTreeMap::new();
    let eso_outcomes = runtime.block_on(eso_outcomes(
        &client,
        &cases,
        &refused,
        &unsettled,
        &mut messages,
    ));
    let (courier_outcomes, courier_took) = courier.join().unwrap();
    let outcomes_read = started.elapsed();

    let known = known_differences();
    let mut report = String::new();
    let mut unlisted = Vec::new();
    let mut stale = Vec::new();
    let mut differing = 0;
    let mut details: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut errors_both = 0;
    for case in &cases {
        let e = &eso_outcomes[&case.name];
        let c = &courier_outcomes[&case.name];
        if matches!((e, c), (Outcome::Error(_), Outcome::Error(_))) {
            errors_both += 1;
        }
        let differences = compare(e, c);
        if !differences.is_empty() {
            differing += 1;
            report.push_str(&format!("{}:\n", case.name));
            for d in &differences {
                report.push_str(&format!("    {d}\n"));
            }
            if let Some(m) = messages.get(&case.id) {
                report.push_str(&format!("    (ESO's message: {m})\n"));
            }
            details.insert(case.name.clone(), differences);
            if !known.contains_key(&case.name) {
                unlisted.push(case.name.clone());
            }
        } else if known.contains_key(&case.name) && filter.is_none() {
            stale.push(case.name.clone());
        }
    }
    let names: BTreeSet<&str> = cases.iter().map(|c| c.name.as_str()).collect();
    let unknown: Vec<&String> = known
        .keys()
        .filter(|k| filter.is_none() && !names.contains(k.as_str()))
        .collect();
    if let Ok(path) = std::env::var("COURIER_DIFFERENTIAL_REPORT") {
        std::fs::write(path, &report).unwrap();
    }
    eprintln!(
        "differential: {} hand-made + {} generated cases; {} agree ({} an error on both sides), {} differ ({} listed); objects created in {:.0} s, ESO's verdicts in {:.0} s, outcomes read at {:.0} s; courier's renders took {:.0} s ({} processes, beside ESO); whole test {:.0} s",
        hand.len(),
        generated.len(),
        cases.len() - differing,
        errors_both,
        differing,
        differing - unlisted.len(),
        created.as_secs_f64(),
        waited.as_secs_f64(),
        outcomes_read.as_secs_f64(),
        courier_took.as_secs_f64(),
        RENDERS.load(std::sync::atomic::Ordering::Relaxed),
        started.elapsed().as_secs_f64()
    );
    let mut failures = String::new();
    if !unlisted.is_empty() {
        failures.push_str(&format!(
            "{} case(s) differ and are not in tests/differential/KNOWN_DIFFERENCES.yaml:\n",
            unlisted.len()
        ));
        for name in &unlisted {
            failures.push_str(&format!("{name}:\n"));
            for d in &details[name] {
                failures.push_str(&format!("    {d}\n"));
            }
        }
    }
    if !stale.is_empty() {
        failures.push_str(&format!(
            "{} listed case(s) now agree (remove them from KNOWN_DIFFERENCES.yaml): {}\n",
            stale.len(),
            stale.join(", ")
        ));
    }
    if !unknown.is_empty() {
        failures.push_str(&format!(
            "KNOWN_DIFFERENCES.yaml lists cases that do not exist: {unknown:?}\n"
        ));
    }
    if !failures.is_empty() {
        // Keep ESO's log and the cases' files for a look.
        let kept = dir.keep();
        let _ = std::fs::copy(&eso.log, kept.join("eso.log"));
        panic!(
            "{failures}(ESO's log and the cases' files: {})",
            kept.display()
        );
    }
}
