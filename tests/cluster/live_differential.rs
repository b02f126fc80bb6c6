//! The live differential of issue #29: the seed platform (`examples/platform`, the
//! runbook's seven ClusterExternalSecrets) and 20 cases of `tests/differential/`, applied
//! by ESO v2.9.0's real controller to one set of namespaces and by `courier apply` (the
//! real binary, live mode: manifests from files, the world from the cluster, server-side
//! apply) to a twin set on the same kube-apiserver. Every Secret of each pair of twin
//! namespaces must be the same: data bytes, type, labels and annotations. Each tool's own
//! bookkeeping is left out, and only that (the differential's `bookkeeping`; the test
//! prints the keys it left out):
//! - `reconcile.external-secrets.io/*`: ESO's `managed` and `created-by` labels (what its
//!   informers select on, and which ExternalSecret made the Secret) and its `data-hash`
//!   annotation (a digest of the data, for its own change check);
//! - `courier.dev/*`: courier's `instance` label (which deployment owns and may prune the
//!   target) and its `origin` and `creation-policy` annotations (the manifest that wrote
//!   it, and how courier may touch it);
//! - `app.kubernetes.io/managed-by: courier` (courier's ownership label).
//!
//! ESO's objects and courier's share ESO v2.9.0's control plane with the corpus
//! differential ([`eso_plane`]): ESO's side is created in the cluster (world, stores,
//! manifests), courier's side only as the world (namespaces, Secrets, ConfigMaps,
//! ServiceAccounts), its manifests going to `courier apply` as a file, so ESO never sees
//! them. Each side's namespaces carry its own id, and the manifests' selectors are
//! narrowed to it, as in the corpus differential.

use std::collections::{BTreeMap, BTreeSet};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::differential::{
    Case, Outcome, READER, Written, build_objects, case_of, compare, create_all, eso_plane, expand,
    hand_cases, known_differences, list_all, readers_of, wait_for_eso, written,
};
use crate::support::{client_of, repo_root};

/// The corpus cases applied live, one or more per feature: `data` with properties and
/// JSON paths, `metadataPolicy: Fetch`, the whole Secret as JSON, `dataFrom` extract and
/// find (by name and by tags), decoding, rewrite (regexp and transform), templates (type,
/// templateFrom, metadata), the ExternalSecret's and the ClusterExternalSecret's
/// metadata, creation policies (Orphan, Merge into an existing Secret), immutable targets,
/// a namespaced SecretStore and a second store through `sourceRef`.
const CASES: &[&str] = &[
    "get-json-path-whitespace-object",
    "get-number-exp",
    "get-fetch-labels",
    "get-whole-secret-html",
    "extract-two-later-wins",
    "extract-property-object",
    "find-name-prefix",
    "find-tags",
    "decode-noncanonical-bits-auto",
    "rewrite-named-group",
    "transform-upper",
    "es-template-dockerconfigjson",
    "es-template-from-configmap",
    "es-template-metadata",
    "es-labels-annotations-no-template",
    "es-creation-orphan-new",
    "es-creation-merge-existing",
    "es-immutable-new",
    "ces-match-expressions-in",
    "ces-metadata-reaches-secret",
    "store-secretstore-local",
    "es-source-ref-store",
];

/// The instance courier's targets carry here.
const INSTANCE: &str = "live-differential";

/// The seed platform as a user has it (`examples/platform`), plus what a real cluster
/// would hold and this control plane lacks: the ServiceAccount the store names, and the
/// `kube-root-ca.crt` ConfigMap its `caProvider` reads (kube-controller-manager's).
/// For ESO, `v1beta1` becomes `v1`: ESO v2.9 no longer serves `v1beta1` (courier reads
/// the file as written).
fn platform(ca_pem: &str, for_eso: bool) -> Vec<Value> {
    let mut objects = Vec::new();
    for file in [
        "namespaces.yaml",
        "central-secret-store.yaml",
        "cluster-secret-store.yaml",
        "cluster-external-secrets.yaml",
    ] {
        let text =
            std::fs::read_to_string(repo_root().join("examples/platform").join(file)).unwrap();
        objects.extend(serde_saphyr::from_multiple::<Value>(&text).unwrap());
    }
    if for_eso {
        for object in &mut objects {
            if object["apiVersion"] == "external-secrets.io/v1beta1" {
                object["apiVersion"] = json!("external-secrets.io/v1");
            }
        }
    }
    objects.push(json!({
        "apiVersion": "v1", "kind": "ServiceAccount",
        "metadata": {"name": "external-secrets", "namespace": "central-secret-store"}
    }));
    objects.push(json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "kube-root-ca.crt", "namespace": "central-secret-store"},
        "data": {"ca.crt": ca_pem}
    }));
    objects
}

fn is_manifest(object: &Value) -> bool {
    matches!(
        object["kind"].as_str(),
        Some("ClusterSecretStore" | "SecretStore" | "ExternalSecret" | "ClusterExternalSecret")
    )
}

/// Every Secret of a side's namespaces, by case id, then (namespace without the id, name),
/// with the bookkeeping keys each tool wrote (names only) and how many ESO wrote.
struct Listed {
    secrets: BTreeMap<String, BTreeMap<(String, String), Written>>,
    bookkeeping: BTreeSet<String>,
    written_by_eso: BTreeMap<String, usize>,
}

async fn list_secrets(client: &kube::Client, ids: &BTreeSet<String>) -> Listed {
    let mut listed = Listed {
        secrets: BTreeMap::new(),
        bookkeeping: BTreeSet::new(),
        written_by_eso: BTreeMap::new(),
    };
    for secret in list_all(client, "Secret").await {
        let ns = secret["metadata"]["namespace"].as_str().unwrap_or("");
        let id = case_of(ns).to_owned();
        if !ids.contains(&id) {
            continue;
        }
        let short = ns[id.len() + 1..].to_owned();
        // A target named after a ClusterExternalSecret carries its prefixed name.
        let name = secret["metadata"]["name"].as_str().unwrap_or("");
        let name = name
            .strip_prefix(&format!("{id}-"))
            .unwrap_or(name)
            .to_owned();
        let mut kept = written(&secret);
        for (what, all, compared) in [
            ("label", &secret["metadata"]["labels"], &mut kept.labels),
            (
                "annotation",
                &secret["metadata"]["annotations"],
                &mut kept.annotations,
            ),
        ] {
            for key in all.as_object().into_iter().flatten().map(|(k, _)| k) {
                if !compared.contains_key(key) {
                    listed.bookkeeping.insert(format!("{what} {key}"));
                }
            }
        }
        if secret["metadata"]["annotations"]
            .get("reconcile.external-secrets.io/data-hash")
            .is_some()
        {
            *listed.written_by_eso.entry(id.clone()).or_default() += 1;
        }
        listed
            .secrets
            .entry(id)
            .or_default()
            .insert((short, name), kept);
    }
    listed
}

#[test]
fn eso_v2_9_0_and_courier_apply_write_the_same_secrets() {
    let started = Instant::now();
    let eso = eso_plane();
    let plane = &eso.plane;
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let client = runtime.block_on(client_of(plane));

    // The cases: the platform first, then the corpus cases, each twice (`lNNe` for ESO,
    // `lNNc` for courier).
    let hand = hand_cases();
    let known = known_differences();
    let mut inputs: Vec<(String, Vec<Value>, Vec<Value>)> = vec![(
        "seed-platform".into(),
        platform(&plane.ca_pem(), true),
        platform(&plane.ca_pem(), false),
    )];
    // COURIER_LIVE_DIFFERENTIAL_EXTRA=a,b adds corpus cases (known differences too: to see
    // one live, or to see this test fail).
    let extra = std::env::var("COURIER_LIVE_DIFFERENTIAL_EXTRA").unwrap_or_default();
    let extra: Vec<&str> = extra.split(',').filter(|n| !n.is_empty()).collect();
    for name in CASES.iter().chain(&extra) {
        let raw = hand
            .iter()
            .find(|c| c.name == *name)
            .unwrap_or_else(|| panic!("case {name} is not in tests/differential/cases"));
        assert!(
            !known.contains_key(*name) || extra.contains(name),
            "{name} is a known difference of render: pick a case both agree on"
        );
        inputs.push((name.to_string(), expand(raw), expand(raw)));
    }
    assert!(inputs.len() > 20);
    let server = plane.server();
    let eso_side: Vec<Case> = inputs
        .iter()
        .enumerate()
        .map(|(i, (name, objects, _))| {
            build_objects(name, objects.clone(), &format!("l{i:02}e"), server, &eso.ca)
        })
        .collect();
    let courier_side: Vec<Case> = inputs
        .iter()
        .enumerate()
        .map(|(i, (name, _, objects))| {
            build_objects(name, objects.clone(), &format!("l{i:02}c"), server, &eso.ca)
        })
        .collect();

    // ESO's side: everything in the cluster. courier's: the world in the cluster, the
    // manifests in a file.
    let refused = runtime.block_on(create_all(&client, &eso_side));
    assert!(refused.is_empty(), "the API server refused: {refused:?}");
    let (manifests, world): (Vec<Vec<Value>>, Vec<Case>) = courier_side
        .iter()
        .map(|case| {
            let (manifests, mut world): (Vec<Value>, Vec<Value>) =
                case.objects.iter().cloned().partition(is_manifest);
            // The identities courier's stores read with (`create_all` finds them in the
            // stores, which are not created here).
            for ns in readers_of(case) {
                world.push(json!({
                    "apiVersion": "v1", "kind": "ServiceAccount",
                    "metadata": {"name": READER, "namespace": ns}
                }));
            }
            (
                manifests,
                Case {
                    name: case.name.clone(),
                    id: case.id.clone(),
                    namespaces: case.namespaces.clone(),
                    objects: world,
                },
            )
        })
        .unzip();
    let refused = runtime.block_on(create_all(&client, &world));
    assert!(refused.is_empty(), "the API server refused: {refused:?}");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("manifests.yaml");
    std::fs::write(
        &file,
        manifests
            .iter()
            .flatten()
            .map(|o| format!("---\n{}\n", serde_json::to_string(o).unwrap()))
            .collect::<String>(),
    )
    .unwrap();
    let mut failures = String::new();
    let applying = Instant::now();
    let apply = Command::new(env!("CARGO_BIN_EXE_courier"))
        .arg("apply")
        .arg(&file)
        .args(["--kubeconfig", plane.kubeconfig.to_str().unwrap()])
        .args(["--instance", INSTANCE])
        .env_remove("KUBECONFIG")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    // courier's stderr names objects and keys, never values (a rule of the project).
    let stderr = String::from_utf8_lossy(&apply.stderr);
    if !apply.status.success() {
        failures.push_str(&format!("courier apply failed:\n{stderr}\n"));
    }
    let applied = applying.elapsed();

    let waiting = Instant::now();
    let unsettled = runtime.block_on(wait_for_eso(&client, &eso_side, Duration::from_secs(300)));
    assert!(
        unsettled.is_empty(),
        "ESO gave no verdict on {unsettled:?} (its log: {})",
        eso.log.display()
    );
    // A verdict can be a passing error (ESO's store not validated yet, its floodgate,
    // a retry after backoff under load): every case here writes Secrets, so wait until
    // ESO has synced as many ExternalSecrets as courier wrote targets, or the limit.
    let targets = applied_targets(&stderr);
    let (mut synced, mut not_ready) = runtime.block_on(synced_by_eso(&client, &eso_side));
    while (synced < targets || !not_ready.is_empty())
        && waiting.elapsed() < Duration::from_secs(300)
    {
        std::thread::sleep(Duration::from_secs(1));
        (synced, not_ready) = runtime.block_on(synced_by_eso(&client, &eso_side));
    }
    let waited = waiting.elapsed();
    if !not_ready.is_empty() {
        failures.push_str(&format!(
            "ESO did not sync {not_ready:?} (its log: {})\n",
            eso.log.display()
        ));
    }

    let all_ids: BTreeSet<String> = eso_side
        .iter()
        .chain(&courier_side)
        .map(|c| c.id.clone())
        .collect();
    let mut listed = runtime.block_on(list_secrets(&client, &all_ids));
    let mut compared = 0;
    for (e, c) in eso_side.iter().zip(&courier_side) {
        let by_eso = listed.secrets.remove(&e.id).unwrap_or_default();
        let by_courier = listed.secrets.remove(&c.id).unwrap_or_default();
        let written = listed.written_by_eso.get(&e.id).copied().unwrap_or(0);
        if written == 0 {
            failures.push_str(&format!("{}: ESO wrote no Secret\n", e.name));
        }
        compared += by_eso.len().max(by_courier.len());
        let differences = compare(&Outcome::Secrets(by_eso), &Outcome::Secrets(by_courier));
        if !differences.is_empty() {
            failures.push_str(&format!("{} (ESO's side first):\n", e.name));
            for d in differences {
                failures.push_str(&format!("    {d}\n"));
            }
        }
    }
    let platform_targets = listed.written_by_eso.get("l00e").copied().unwrap_or(0);
    eprintln!(
        "live differential: the seed platform ({platform_targets} targets) and {} corpus cases; \
         {} ExternalSecrets synced by ESO, {} Secrets compared ({} written by ESO); bookkeeping left out: {}; \
         courier apply {:.1} s ({}), ESO's verdicts {:.0} s after; whole test {:.0} s",
        CASES.len() + extra.len(),
        synced,
        compared,
        listed.written_by_eso.values().sum::<usize>(),
        listed
            .bookkeeping
            .iter()
            .cloned()
            .collect::<Vec<_>>()
            .join(", "),
        applied.as_secs_f64(),
        stderr.lines().last().unwrap_or("").trim(),
        waited.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        platform_targets >= 17,
        "the platform's 17 targets, ESO wrote {platform_targets}"
    );
    assert!(
        failures.is_empty(),
        "ESO and courier apply differ:\n{failures}"
    );
}

/// The targets `courier apply`'s summary counts (created, updated and unchanged).
fn applied_targets(stderr: &str) -> usize {
    let Some(line) = stderr.lines().rev().find(|l| l.starts_with("apply:")) else {
        return 0;
    };
    ["created", "updated", "unchanged"]
        .iter()
        .filter_map(|word| {
            let before = line.split(&format!(" {word}")).next()?;
            before
                .rsplit([' ', ','])
                .find(|w| !w.is_empty())?
                .parse::<usize>()
                .ok()
        })
        .sum()
}

/// How many of ESO's ExternalSecrets in the cases' namespaces read Ready, and which do not.
async fn synced_by_eso(client: &kube::Client, cases: &[Case]) -> (usize, Vec<String>) {
    let ids: BTreeSet<&str> = cases.iter().map(|c| c.id.as_str()).collect();
    let mut not_ready = Vec::new();
    let mut synced = 0;
    for es in list_all(client, "ExternalSecret").await {
        let ns = es["metadata"]["namespace"].as_str().unwrap_or("");
        if !ids.contains(case_of(ns)) {
            continue;
        }
        let ready = es["status"]["conditions"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["type"] == "Ready"))
            .is_some_and(|c| c["status"] == "True");
        if ready {
            synced += 1;
        } else {
            not_ready.push(format!(
                "{ns}/{}",
                es["metadata"]["name"].as_str().unwrap_or("")
            ));
        }
    }
    (synced, not_ready)
}
