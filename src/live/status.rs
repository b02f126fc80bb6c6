//! ESO-style status for manifests read with `--from-cluster`: ClusterExternalSecret
//! `provisionedNamespaces`, `failedNamespaces` and a Ready condition; ExternalSecret Ready
//! conditions with ESO's reasons. Written only when it changed, and a failure also
//! becomes a Kubernetes Event.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use k8s_openapi::api::core::v1::{Event, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, Time};
use kube::Client;
use kube::api::{Api, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use crate::core::load::ESO_GROUP;
use crate::core::plan::Plan;
use crate::live::apply::Report;
use crate::live::cluster::ClusterError;
use crate::live::eso::{ClusterObject, resource};
use crate::live::eso_objects::Children;
use crate::live::metrics::Readiness;
use k8s_openapi::jiff::Timestamp;

/// What the status of the objects is computed from.
pub struct StatusInputs<'a> {
    /// The plan, with its per-target errors.
    pub plan: &'a Plan,
    /// The writes.
    pub report: &'a Report,
    /// Per manifest, the member clusters it selects that did not answer.
    pub unreached: &'a BTreeMap<String, Vec<String>>,
    /// What keeping the ExternalSecrets of the ClusterExternalSecrets did; none on the
    /// lean path (`--no-ces-external-secrets`), where a ClusterExternalSecret's status
    /// speaks of its targets instead.
    pub children: Option<&'a Children>,
    /// This reconcile's time.
    pub now: Timestamp,
}

/// A status to write: the object's index, its new status, and for a new failure the
/// Event's reason and message.
pub type StatusUpdate = (usize, Value, Option<(&'static str, String)>);

/// ESO's messages (pkg/controllers/externalsecret).
const MSG_SYNCED: &str = "secret synced";
const MSG_GET_DATA: &str = "could not get secret data from provider";
const MSG_UPDATE: &str = "could not update secret";
/// ESO's Normal Events' messages (pkg/controllers/externalsecret).
const MSG_CREATED: &str = "secret created";
const MSG_UPDATED: &str = "secret updated";
/// ESO's message on a ClusterExternalSecret with failed namespaces.
const MSG_NAMESPACES_FAILED: &str = "one or more namespaces failed";

/// How one ExternalSecret's target fared.
enum Outcome {
    Synced(String),
    Failed {
        message: &'static str,
        detail: String,
    },
}

/// The status each object should have after this reconcile, for those whose status differs.
pub fn desired_statuses(objects: &[ClusterObject], inputs: &StatusInputs<'_>) -> Vec<StatusUpdate> {
    let lookup = Lookup::new(inputs);
    let mut updates = Vec::new();
    for (index, object) in objects.iter().enumerate() {
        let display = object.display();
        if object.kind.ends_with("SecretStore") {
            continue;
        }
        let update = if object.kind == "ClusterExternalSecret" {
            let status = ces_status(object, &display, inputs, &lookup);
            let owned = [
                "externalSecretName",
                "provisionedNamespaces",
                "failedNamespaces",
                "conditions",
            ];
            (!same(&object.status, &status, &owned)).then(|| {
                let event = (status["conditions"][0]["status"] == "False").then(|| {
                    let message = status["conditions"][0]["message"]
                        .as_str()
                        .unwrap_or_default();
                    let detail = status["failedNamespaces"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .map(|f| {
                            format!(
                                "{}: {}",
                                f["namespace"].as_str().unwrap_or_default(),
                                f["reason"].as_str().unwrap_or_default()
                            )
                        })
                        .collect::<Vec<_>>()
                        .join("; ");
                    (
                        "SyncFailed",
                        if detail.is_empty() {
                            message.to_owned()
                        } else {
                            format!("{message}: {detail}")
                        },
                    )
                });
                (status, event)
            })
        } else {
            let outcome = es_outcome(object, inputs, &lookup);
            let status = es_status(object, &outcome, inputs.now);
            let owned = [
                "refreshTime",
                "syncedResourceVersion",
                "binding",
                "conditions",
            ];
            (!same(&object.status, &status, &owned)).then(|| {
                let event = match &outcome {
                    Outcome::Failed { detail, .. } => Some(("UpdateFailed", detail.clone())),
                    Outcome::Synced(_) => None,
                };
                (status, event)
            })
        };
        if let Some((status, event)) = update {
            updates.push((index, status, event));
        }
    }
    updates
}

/// Per manifest, the targets it planned (`namespace`, `name`).
type TargetsOf<'a> = BTreeMap<&'a str, Vec<(&'a str, &'a str)>>;

/// What an ExternalSecret's status is looked up in, indexed once per reconcile so that
/// each ExternalSecret costs a few hash lookups, not a scan of its manifest's targets and
/// errors (10,000 ExternalSecrets of 10 ClusterExternalSecrets made the scans quadratic).
struct Lookup<'a> {
    /// Per manifest, its targets in plan order.
    targets_of: TargetsOf<'a>,
    /// Per (manifest, namespace), its first target there (`namespace`, `name`).
    first_target: HashMap<(&'a str, &'a str), (&'a str, &'a str)>,
    /// Per target (`namespace/name`), the message of its failed write.
    failed_writes: HashMap<&'a str, &'a str>,
    /// Per manifest, the index in `plan.errors` of its first error.
    first_error: HashMap<&'a str, usize>,
    /// Per manifest, its first error that names no target (it fails every namespace).
    first_untargeted: HashMap<&'a str, usize>,
    /// Per (manifest, namespace of a target), its first error naming a target there.
    first_error_in: HashMap<(&'a str, &'a str), usize>,
}

impl<'a> Lookup<'a> {
    fn new(inputs: &'a StatusInputs<'_>) -> Self {
        let failed_writes = inputs
            .report
            .errors
            .iter()
            .map(|e| (e.target.as_str(), e.message.as_str()))
            .collect();
        let mut targets_of: TargetsOf<'a> = BTreeMap::new();
        let mut first_target = HashMap::new();
        for secret in &inputs.plan.secrets {
            targets_of
                .entry(&secret.owner)
                .or_default()
                .push((&secret.namespace, &secret.name));
            first_target
                .entry((&*secret.owner, &*secret.namespace))
                .or_insert((&*secret.namespace, &*secret.name));
        }
        let (mut first_error, mut first_untargeted, mut first_error_in) =
            (HashMap::new(), HashMap::new(), HashMap::new());
        for (index, error) in inputs.plan.errors.iter().enumerate() {
            let owner = error.object.as_str();
            first_error.entry(owner).or_insert(index);
            if error.targets.is_empty() {
                first_untargeted.entry(owner).or_insert(index);
            }
            for target in &error.targets {
                // `namespace/name`, or `cluster/namespace/name` in a member cluster.
                if let Some((namespace, _)) = target.rsplit_once('/') {
                    first_error_in.entry((owner, namespace)).or_insert(index);
                }
            }
        }
        Lookup {
            targets_of,
            first_target,
            failed_writes,
            first_error,
            first_untargeted,
            first_error_in,
        }
    }

    /// The first error of `owner` that fails its target in `namespace` (any of its
    /// errors when `namespace` is `None`), as an index into `plan.errors`.
    fn error_for(&self, owner: &str, namespace: Option<&str>) -> Option<usize> {
        match namespace {
            None => self.first_error.get(owner).copied(),
            Some(namespace) => {
                let untargeted = self.first_untargeted.get(owner).copied();
                let here = self.first_error_in.get(&(owner, namespace)).copied();
                match (untargeted, here) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                }
            }
        }
    }

    /// The target `owner` planned in `namespace` (its first target when `None`).
    fn target(&self, owner: &str, namespace: Option<&str>) -> Option<(&'a str, &'a str)> {
        match namespace {
            None => self.targets_of.get(owner)?.first().copied(),
            Some(namespace) => self.first_target.get(&(owner, namespace)).copied(),
        }
    }
}

/// How an ExternalSecret's target fared (one a ClusterExternalSecret controls is planned
/// by that ClusterExternalSecret, in the ExternalSecret's namespace).
fn es_outcome(object: &ClusterObject, inputs: &StatusInputs<'_>, lookup: &Lookup<'_>) -> Outcome {
    match (object.controller(), &object.namespace) {
        (Some(ces), Some(namespace)) => {
            let owner = crate::core::load::object_display("ClusterExternalSecret", None, ces);
            outcome_of(object, &owner, Some(namespace), inputs, lookup)
        }
        _ => outcome_of(object, &object.display(), None, inputs, lookup),
    }
}

/// A Normal Event to record: the object's index, ESO's reason and message.
pub type NormalEvent = (usize, &'static str, &'static str);

/// ESO's Normal Events on the ExternalSecrets whose Secret this reconcile created
/// (`Created`, "secret created") or changed (`Updated`, "secret updated"), as ESO's
/// ExternalSecret controller records them; none for a Secret left as it was.
pub fn normal_events(objects: &[ClusterObject], inputs: &StatusInputs<'_>) -> Vec<NormalEvent> {
    let created: BTreeSet<&str> = inputs.report.created.iter().map(String::as_str).collect();
    let updated: BTreeSet<&str> = inputs.report.updated.iter().map(String::as_str).collect();
    if created.is_empty() && updated.is_empty() {
        return Vec::new();
    }
    let lookup = Lookup::new(inputs);
    let mut events = Vec::new();
    for (index, object) in objects.iter().enumerate() {
        let Some(namespace) = object.namespace.as_deref() else {
            continue;
        };
        if object.kind != "ExternalSecret" {
            continue;
        }
        if let Outcome::Synced(name) = es_outcome(object, inputs, &lookup) {
            let target = format!("{namespace}/{name}");
            if created.contains(target.as_str()) {
                events.push((index, "Created", MSG_CREATED));
            } else if updated.contains(target.as_str()) {
                events.push((index, "Updated", MSG_UPDATED));
            }
        }
    }
    events
}

/// The status ESO's ClusterExternalSecret controller writes: the ExternalSecret name, the
/// namespaces provisioned and failed, and `Ready` (type, status and, when some namespace
/// failed, ESO's message; its CRD has no reason or time for this condition).
fn ces_status(
    object: &ClusterObject,
    display: &str,
    inputs: &StatusInputs<'_>,
    lookup: &Lookup<'_>,
) -> Value {
    let mut provisioned = BTreeSet::new();
    let mut failed: BTreeMap<String, String> = BTreeMap::new();
    // A member cluster that did not answer: the manifest is not Ready, and says which.
    let mut object_errors: Vec<String> = inputs
        .unreached
        .get(display)
        .into_iter()
        .flatten()
        .cloned()
        .collect();
    for error in inputs.plan.errors.iter().filter(|e| e.object == display) {
        if error.targets.is_empty() {
            object_errors.push(reason_of(error));
        }
    }
    match inputs.children {
        Some(children) => {
            provisioned.extend(
                children
                    .provisioned
                    .get(&object.name)
                    .into_iter()
                    .flatten()
                    .cloned(),
            );
            failed.extend(
                children
                    .failed
                    .get(&object.name)
                    .into_iter()
                    .flatten()
                    .map(|(k, v)| (k.clone(), v.clone())),
            );
        }
        None => {
            for (namespace, name) in lookup.targets_of.get(display).into_iter().flatten() {
                match lookup
                    .failed_writes
                    .get(format!("{namespace}/{name}").as_str())
                {
                    Some(message) => {
                        failed.insert((*namespace).to_owned(), (*message).to_owned());
                    }
                    None => {
                        provisioned.insert((*namespace).to_owned());
                    }
                }
            }
            for error in inputs.plan.errors.iter().filter(|e| e.object == display) {
                for target in &error.targets {
                    // `namespace/name`, or `cluster/namespace/name` in a member cluster.
                    let namespace = target
                        .rsplit_once('/')
                        .map_or(target.as_str(), |(ns, _)| ns);
                    failed.insert(namespace.to_owned(), reason_of(error));
                }
            }
        }
    }
    let es_name = object.object.data["spec"]["externalSecretName"]
        .as_str()
        .filter(|n| !n.is_empty())
        .unwrap_or(&object.name)
        .to_owned();
    let condition = if let Some(first) = object_errors.first() {
        json!({"type": "Ready", "status": "False", "message": first})
    } else if failed.is_empty() {
        json!({"type": "Ready", "status": "True"})
    } else {
        json!({"type": "Ready", "status": "False", "message": MSG_NAMESPACES_FAILED})
    };
    let mut conditions: Vec<Value> = object.status["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["type"] != "Ready")
        .cloned()
        .collect();
    conditions.push(condition);
    json!({
        "externalSecretName": es_name,
        "provisionedNamespaces": if provisioned.is_empty() { Value::Null } else { json!(provisioned) },
        "failedNamespaces": if failed.is_empty() { Value::Null } else {
            json!(failed.iter().map(|(namespace, reason)| json!({"namespace": namespace, "reason": reason})).collect::<Vec<_>>())
        },
        "conditions": conditions,
    })
}

fn reason_of(error: &crate::core::plan::PlanError) -> String {
    match &error.key {
        Some(key) => format!("{key}: {}", error.message),
        None => error.message.clone(),
    }
}

/// How the target of an ExternalSecret fared: `owner` is the manifest that planned it
/// (the ClusterExternalSecret, for one it controls, with `namespace` its own).
fn outcome_of(
    object: &ClusterObject,
    owner: &str,
    namespace: Option<&str>,
    inputs: &StatusInputs<'_>,
    lookup: &Lookup<'_>,
) -> Outcome {
    if let Some(error) = lookup
        .error_for(owner, namespace)
        .map(|i| &inputs.plan.errors[i])
    {
        let templated = error.key.as_deref().is_some_and(|k| k.contains("template"));
        return Outcome::Failed {
            message: if templated { MSG_UPDATE } else { MSG_GET_DATA },
            detail: reason_of(error),
        };
    }
    if let Some(first) = inputs.unreached.get(owner).and_then(|u| u.first()) {
        return Outcome::Failed {
            message: MSG_UPDATE,
            detail: first.clone(),
        };
    }
    if let Some((ns, name)) = lookup.target(owner, namespace) {
        if let Some(message) = lookup.failed_writes.get(format!("{ns}/{name}").as_str()) {
            return Outcome::Failed {
                message: MSG_UPDATE,
                detail: (*message).to_owned(),
            };
        }
        return Outcome::Synced(name.to_owned());
    }
    let spec = &object.object.data["spec"];
    Outcome::Synced(
        spec["target"]["name"]
            .as_str()
            .filter(|n| !n.is_empty())
            .unwrap_or(&object.name)
            .to_owned(),
    )
}

/// The status ESO's ExternalSecret controller writes. On success: `Ready` True
/// `SecretSynced` "secret synced", `binding` to the target, `syncedResourceVersion` (the
/// generation and a digest of labels and annotations, as ESO computes it) and `refreshTime`,
/// which moves only when ESO's would: the object changed, the condition changed, or
/// `refreshInterval` has passed since. On failure: `Ready` False `SecretSyncedError` with
/// ESO's message; the rest is kept, as ESO keeps it.
fn es_status(object: &ClusterObject, outcome: &Outcome, now: Timestamp) -> Value {
    let old = &object.status;
    let meta = &object.object.metadata;
    let version = format!(
        "{}-{}",
        meta.generation.unwrap_or(0),
        hash_meta(meta.annotations.as_ref(), meta.labels.as_ref())
    );
    let (ready, mut status) = match outcome {
        Outcome::Synced(target) => {
            let ready = es_condition(old, true, "SecretSynced", MSG_SYNCED, now);
            let interval = object.object.data["spec"]["refreshInterval"]
                .as_str()
                .and_then(crate::core::duration::parse_go_duration)
                .unwrap_or(std::time::Duration::from_secs(3600));
            let old_ready = ready_of(old);
            let refreshed = old["refreshTime"]
                .as_str()
                .and_then(|t| t.parse::<Timestamp>().ok());
            let due = match refreshed {
                None => true,
                Some(_) if interval.is_zero() => false,
                Some(at) => {
                    let age =
                        std::time::Duration::try_from(now.duration_since(at)).unwrap_or_default();
                    age >= interval
                }
            };
            let keep = !due
                && old_ready.is_some_and(|c| same_condition(c, &ready))
                && old["syncedResourceVersion"].as_str() == Some(version.as_str())
                && old["binding"]["name"].as_str() == Some(target.as_str());
            let refresh_time = if keep {
                old["refreshTime"].clone()
            } else {
                Value::from(rfc3339(now))
            };
            (
                ready,
                json!({
                    "refreshTime": refresh_time,
                    "syncedResourceVersion": version,
                    "binding": {"name": target},
                }),
            )
        }
        Outcome::Failed { message, .. } => {
            let ready = es_condition(old, false, "SecretSyncedError", message, now);
            let mut kept = json!({});
            for key in ["refreshTime", "syncedResourceVersion", "binding"] {
                if !old[key].is_null() {
                    kept[key] = old[key].clone();
                }
            }
            (ready, kept)
        }
    };
    let mut conditions: Vec<Value> = old["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|c| c["type"] != "Ready")
        .cloned()
        .collect();
    conditions.push(ready);
    status["conditions"] = Value::from(conditions);
    status
}

fn ready_of(status: &Value) -> Option<&Value> {
    status["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Ready")
}

fn same_condition(a: &Value, b: &Value) -> bool {
    ["status", "reason", "message"]
        .iter()
        .all(|k| a[*k] == b[*k])
}

/// ESO's condition: an unchanged one is kept as it is; one whose status is unchanged keeps
/// its `lastTransitionTime`.
fn es_condition(
    old_status: &Value,
    ok: bool,
    reason: &str,
    message: &str,
    now: Timestamp,
) -> Value {
    let status = if ok { "True" } else { "False" };
    let new = json!({"type": "Ready", "status": status, "reason": reason, "message": message, "lastTransitionTime": rfc3339(now)});
    match ready_of(old_status) {
        Some(old) if same_condition(old, &new) => old.clone(),
        Some(old) if old["status"] == status && !old["lastTransitionTime"].is_null() => {
            let mut new = new;
            new["lastTransitionTime"] = old["lastTransitionTime"].clone();
            new
        }
        _ => new,
    }
}

/// Whether `new` says what `old` says, on the fields courier owns (an absent field, a null
/// and an empty list alike).
fn same(old: &Value, new: &Value, owned: &[&str]) -> bool {
    let present = |v: &Value| !(v.is_null() || v.as_array().is_some_and(Vec::is_empty));
    owned.iter().all(|key| {
        let (a, b) = (&old[*key], &new[*key]);
        (!present(a) && !present(b)) || a == b
    })
}

/// How long a store's check holds in this process before it is made again, when its
/// `spec.refreshInterval` sets none (ESO's `--store-requeue-interval` default).
const STORE_RECHECK: std::time::Duration = std::time::Duration::from_secs(300);

/// When each store (by UID) was last checked, at which generation.
static STORES_CHECKED: std::sync::Mutex<BTreeMap<String, (i64, std::time::Instant)>> =
    std::sync::Mutex::new(BTreeMap::new());

/// The status ESO's store controllers write, for the stores due a check: a Kubernetes
/// store is checked with its own identity as ESO's `Validate` does (`Ready` True `Valid`
/// "store validated" and `capabilities: ReadWrite`, or False `InvalidProviderConfig`). A
/// store is checked when this process has not checked it yet, when its spec changed, or
/// after its `refreshInterval` (5 minutes when none), so a no-op reconcile makes no
/// request for it. A Vault or OpenBao store is checked as ESO's does: its login, then a
/// lookup of its token; an `openBao` store as ESO's OpenBao provider does: its login,
/// then its mount's type and KV version (`capabilities: ReadOnly`); a webhook store by a
/// TCP connection to its url's host, as ESO's `NetworkValidate`; an AWS store as ESO's AWS
/// provider does (its credentials read, then retrieved: STS for a role or a
/// ServiceAccount, nothing sent for static keys alone; see `providers::aws_validate`).
pub async fn store_statuses(
    objects: &[ClusterObject],
    world: Option<&crate::core::world::World>,
    context: &crate::providers::FetchContext,
    now: Timestamp,
) -> Vec<StatusUpdate> {
    use crate::core::provider::{ProviderRegistry as _, StoreInfo};
    use crate::providers::kubernetes_validate::{Validation, validate_store};
    let mut updates = Vec::new();
    for (index, object) in objects.iter().enumerate() {
        let kind = match object.kind.as_str() {
            "ClusterSecretStore" => crate::core::load::StoreKind::ClusterSecretStore,
            "SecretStore" => crate::core::load::StoreKind::SecretStore,
            _ => continue,
        };
        let generation = object.object.metadata.generation.unwrap_or(0);
        let uid = object.uid.clone().unwrap_or_default();
        let recheck = object.object.data["spec"]["refreshInterval"]
            .as_u64()
            .filter(|s| *s > 0)
            .map_or(STORE_RECHECK, std::time::Duration::from_secs);
        let due = STORES_CHECKED.lock().map_or(true, |checked| {
            checked
                .get(&uid)
                .is_none_or(|(g, at)| *g != generation || at.elapsed() >= recheck)
        });
        if !due {
            continue;
        }
        let Some((provider, config)) = object.object.data["spec"]["provider"]
            .as_object()
            .and_then(|p| p.iter().next())
        else {
            continue;
        };
        let display = object.display();
        let annotations = object
            .object
            .metadata
            .annotations
            .clone()
            .unwrap_or_default();
        let origin = crate::core::load::Origin {
            file: "cluster".into(),
            line: 0,
        };
        let info = StoreInfo {
            kind,
            namespace: object.namespace.as_deref(),
            name: &object.name,
            display: &display,
            origin: &origin,
            annotations: &annotations,
            live: true,
        };
        let validation = match crate::providers::Registry.parse(provider, config, &info) {
            Ok(parsed) => {
                let checked = match validate_store(&parsed, context).await {
                    Some(validation) => Some(validation),
                    None => match world {
                        Some(world) => {
                            match crate::providers::vault::validate_store(&parsed, world, context)
                                .await
                            {
                                Some(validation) => Some(validation),
                                None => {
                                    crate::providers::openbao::validate_store(
                                        &parsed, world, context,
                                    )
                                    .await
                                }
                            }
                        }
                        None => None,
                    },
                };
                let checked = match checked {
                    Some(validation) => Some(validation),
                    None => crate::providers::webhook::validate_store(&parsed).await,
                };
                let checked = match checked {
                    Some(validation) => Some(validation),
                    None => {
                        crate::providers::aws_validate::validate_store(&parsed, world, context)
                            .await
                    }
                };
                match checked {
                    Some(validation) => validation,
                    None => continue,
                }
            }
            // The field at fault, as `check` names it (never a value).
            Err(error) => Validation::NoClient(crate::core::plan::provider_error_message(
                &error, &display, &origin, provider,
            )),
        };
        if let Ok(mut checked) = STORES_CHECKED.lock() {
            checked.insert(uid, (generation, std::time::Instant::now()));
        }
        let (ok, reason, message, event) = match validation {
            Validation::Ready => (true, "Valid", "store validated", None),
            Validation::Unknown(detail) => (
                true,
                "ValidationUnknown",
                "could not determine validation status",
                Some(("ValidationUnknown", detail)),
            ),
            Validation::NoClient(detail) => (
                false,
                "InvalidProviderConfig",
                "unable to create client",
                Some(("InvalidProviderConfig", detail)),
            ),
            Validation::Invalid(detail) => (
                false,
                "InvalidProviderConfig",
                "unable to validate store",
                Some(("InvalidProviderConfig", detail)),
            ),
        };
        let old = &object.status;
        let ready = es_condition(old, ok, reason, message, now);
        let mut conditions: Vec<Value> = old["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|c| c["type"] != "Ready")
            .cloned()
            .collect();
        conditions.push(ready);
        let mut status = json!({"conditions": conditions});
        // ESO sets the capabilities only once the store validated; its OpenBao provider
        // is read only.
        status["capabilities"] = if ok {
            Value::from(if provider == "openBao" {
                "ReadOnly"
            } else {
                "ReadWrite"
            })
        } else {
            old["capabilities"].clone()
        };
        if !same(old, &status, &["conditions", "capabilities"]) {
            updates.push((index, status, event));
        }
    }
    updates
}

/// ESO's `HashMeta`: SHA3-224 of Go's `%+v` of the labels and annotations (maps print
/// sorted by key), so `syncedResourceVersion` reads as ESO's own.
pub fn hash_meta(
    annotations: Option<&BTreeMap<String, String>>,
    labels: Option<&BTreeMap<String, String>>,
) -> String {
    use sha3::Digest as _;
    let go_map = |m: Option<&BTreeMap<String, String>>| {
        let entries: Vec<String> = m
            .into_iter()
            .flatten()
            .map(|(k, v)| format!("{k}:{v}"))
            .collect();
        format!("map[{}]", entries.join(" "))
    };
    let text = format!(
        "{{annotations:{} labels:{}}}",
        go_map(annotations),
        go_map(labels)
    );
    let digest = sha3::Sha3_224::digest(text.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn rfc3339(at: Timestamp) -> String {
    at.round(k8s_openapi::jiff::Unit::Second)
        .unwrap_or(at)
        .to_string()
}

/// The `Ready` condition of each ExternalSecret and ClusterExternalSecret once `updates`
/// are written.
pub fn readiness(objects: &[ClusterObject], updates: &[StatusUpdate]) -> Vec<Readiness> {
    let updated: BTreeMap<usize, &Value> = updates.iter().map(|(i, s, _)| (*i, s)).collect();
    objects
        .iter()
        .enumerate()
        .filter(|(_, o)| matches!(o.kind.as_str(), "ExternalSecret" | "ClusterExternalSecret"))
        .map(|(i, object)| {
            let status = updated.get(&i).copied().unwrap_or(&object.status);
            Readiness {
                kind: object.kind.clone(),
                namespace: object.namespace.clone().unwrap_or_default(),
                name: object.name.clone(),
                ready: ready_of(status).is_some_and(|c| c["status"] == "True"),
            }
        })
        .collect()
}

/// Status writes and Events in flight at once.
const IN_FLIGHT: usize = 16;

/// Writes the statuses that changed, a Warning Event for each new failure, and the
/// Normal Events of the Secrets written.
pub async fn write(
    client: &Client,
    objects: &[ClusterObject],
    updates: Vec<StatusUpdate>,
    normal: Vec<NormalEvent>,
) -> Vec<ClusterError> {
    use futures::StreamExt as _;
    let statuses = futures::stream::iter(updates)
        .map(|(index, status, event)| async move {
            let object = &objects[index];
            let resource = resource(&object.kind);
            let api: Api<DynamicObject> = match &object.namespace {
                Some(namespace) => Api::namespaced_with(client.clone(), namespace, &resource),
                None => Api::all_with(client.clone(), &resource),
            };
            let patch = Patch::Merge(json!({"status": status}));
            if let Err(e) = api
                .patch_status(&object.name, &PatchParams::default(), &patch)
                .await
            {
                return Some(ClusterError::api(
                    format!("write the status of {}", object.display()),
                    e,
                ));
            }
            match event {
                Some((reason, message)) => {
                    record_event(client, object, "Warning", reason, &message)
                        .await
                        .err()
                }
                None => None,
            }
        })
        .buffer_unordered(IN_FLIGHT);
    let events = futures::stream::iter(normal)
        .map(|(index, reason, message)| async move {
            record_event(client, &objects[index], "Normal", reason, message)
                .await
                .err()
        })
        .buffer_unordered(IN_FLIGHT);
    statuses
        .chain(events)
        .filter_map(|e| async move { e })
        .collect()
        .await
}

async fn record_event(
    client: &Client,
    object: &ClusterObject,
    kind: &str,
    reason: &str,
    message: &str,
) -> Result<(), ClusterError> {
    let namespace = object.namespace.clone().unwrap_or_else(|| "default".into());
    let now = k8s_openapi::jiff::Timestamp::now();
    let event = Event {
        metadata: kube::api::ObjectMeta {
            generate_name: Some(format!("{}.", object.name)),
            namespace: Some(namespace.clone()),
            ..Default::default()
        },
        involved_object: ObjectReference {
            api_version: Some(format!("{ESO_GROUP}/v1")),
            kind: Some(object.kind.clone()),
            name: Some(object.name.clone()),
            namespace: object.namespace.clone(),
            uid: object.uid.clone(),
            ..Default::default()
        },
        reason: Some(reason.into()),
        message: Some(message.chars().take(1000).collect()),
        type_: Some(kind.into()),
        reporting_component: Some("courier".into()),
        reporting_instance: Some("courier".into()),
        source: Some(k8s_openapi::api::core::v1::EventSource {
            component: Some("courier".into()),
            host: None,
        }),
        first_timestamp: Some(Time(now)),
        last_timestamp: Some(Time(now)),
        event_time: Some(MicroTime(now)),
        action: Some("Reconcile".into()),
        count: Some(1),
        ..Default::default()
    };
    Api::<Event>::namespaced(client.clone(), &namespace)
        .create(&PostParams::default(), &event)
        .await
        .map(drop)
        .map_err(|e| ClusterError::api(format!("record an Event for {}", object.display()), e))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::core::load::Origin;
    use crate::core::model::{CreationPolicy, DeletionPolicy};
    use crate::core::plan::{DesiredSecret, PlanError, SecretBody};

    fn target(namespace: &str) -> DesiredSecret {
        DesiredSecret {
            namespace: namespace.into(),
            name: "creds".into(),
            owner: "ClusterExternalSecret/prod".into(),
            body: Arc::new(SecretBody {
                type_: "Opaque".into(),
                labels: Default::default(),
                annotations: Default::default(),
                derived_labels: Default::default(),
                derived_annotations: Default::default(),
                derived_data: Default::default(),
                data: Default::default(),
                immutable: false,
                finalizers: Vec::new(),
                creation_policy: CreationPolicy::Owner,
                deletion_policy: DeletionPolicy::Retain,
                varying: None,
            }),
        }
    }

    #[test]
    fn member_clusters_appear_in_the_status_and_an_unreached_one_fails_it() {
        let objects = [ClusterObject {
            kind: "ClusterExternalSecret".into(),
            namespace: None,
            name: "prod".into(),
            uid: None,
            status: Value::Null,
            object: Arc::new(DynamicObject::new(
                "prod",
                &resource("ClusterExternalSecret"),
            )),
            child_of: None,
        }];
        let plan = Plan {
            secrets: vec![target("member-a/team-a"), target("team-b")],
            errors: vec![PlanError {
                origin: Origin {
                    file: "m.yaml".into(),
                    line: 1,
                },
                object: "ClusterExternalSecret/prod".into(),
                targets: vec!["member-b/team-c/creds".into()],
                key: None,
                message: "namespace team-c does not exist in cluster member-b".into(),
                source_missing: None,
            }],
            unwritten: Vec::new(),
        };
        let mut unreached = BTreeMap::new();
        let report = Report::default();
        fn inputs<'a>(
            plan: &'a Plan,
            report: &'a Report,
            unreached: &'a BTreeMap<String, Vec<String>>,
        ) -> StatusInputs<'a> {
            StatusInputs {
                plan,
                report,
                unreached,
                children: None,
                now: Timestamp::now(),
            }
        }
        let reached = desired_statuses(&objects, &inputs(&plan, &report, &unreached));
        let status = &reached[0].1;
        assert_eq!(
            status["provisionedNamespaces"],
            json!(["member-a/team-a", "team-b"])
        );
        assert_eq!(
            status["failedNamespaces"][0]["namespace"],
            "member-b/team-c"
        );
        unreached.insert(
            "ClusterExternalSecret/prod".to_owned(),
            vec!["cluster member-c: failed to list namespaces: connection refused".to_owned()],
        );
        let status = &desired_statuses(&objects, &inputs(&plan, &report, &unreached))[0].1;
        assert_eq!(status["conditions"][0]["status"], "False");
        assert_eq!(
            status["conditions"][0]["message"],
            "cluster member-c: failed to list namespaces: connection refused"
        );
    }

    #[test]
    fn each_external_secret_reads_its_own_namespaces_error_or_target() {
        let child = |namespace: &str| {
            let mut object = DynamicObject::new("creds", &resource("ExternalSecret"));
            object.metadata.namespace = Some(namespace.into());
            object.metadata.owner_references = Some(vec![
                k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
                    api_version: format!("{ESO_GROUP}/v1"),
                    kind: "ClusterExternalSecret".into(),
                    name: "prod".into(),
                    uid: "u".into(),
                    controller: Some(true),
                    ..Default::default()
                },
            ]);
            ClusterObject {
                kind: "ExternalSecret".into(),
                namespace: Some(namespace.into()),
                name: "creds".into(),
                uid: None,
                status: Value::Null,
                object: Arc::new(object),
                child_of: Some("prod".into()),
            }
        };
        let objects: Vec<ClusterObject> = ["team-a", "team-b", "team-c", "team-d"]
            .into_iter()
            .map(child)
            .collect();
        let error = |targets: &[&str], message: &str| PlanError {
            origin: Origin {
                file: "m.yaml".into(),
                line: 1,
            },
            object: "ClusterExternalSecret/prod".into(),
            targets: targets.iter().map(|t| (*t).to_owned()).collect(),
            key: None,
            message: message.into(),
            source_missing: None,
        };
        let plan = Plan {
            secrets: vec![target("team-c"), target("team-d")],
            errors: vec![error(&["team-b/creds"], "first, in team-b")],
            unwritten: Vec::new(),
        };
        let report = Report {
            errors: vec![crate::live::apply::ApplyError {
                target: "team-d/creds".into(),
                message: "write refused".into(),
            }],
            ..Report::default()
        };
        let unreached = BTreeMap::new();
        let inputs = StatusInputs {
            plan: &plan,
            report: &report,
            unreached: &unreached,
            children: None,
            now: Timestamp::now(),
        };
        let message = |statuses: &[StatusUpdate], namespace: &str| {
            let (_, status, _) = statuses
                .iter()
                .find(|(i, _, _)| objects[*i].namespace.as_deref() == Some(namespace))
                .unwrap();
            status["conditions"][0]["message"]
                .as_str()
                .unwrap()
                .to_owned()
        };
        let statuses = desired_statuses(&objects, &inputs);
        // team-a has no target and no error of its own: it reads as synced.
        assert_eq!(message(&statuses, "team-a"), MSG_SYNCED);
        assert_eq!(message(&statuses, "team-b"), MSG_GET_DATA);
        assert_eq!(message(&statuses, "team-c"), MSG_SYNCED);
        assert_eq!(message(&statuses, "team-d"), MSG_UPDATE);
        // An error that names no target fails every namespace; the first in plan order wins.
        let plan = Plan {
            secrets: vec![target("team-c"), target("team-d")],
            errors: vec![
                error(&["team-b/creds"], "first, in team-b"),
                error(&[], "second, everywhere"),
            ],
            unwritten: Vec::new(),
        };
        let inputs = StatusInputs {
            plan: &plan,
            ..inputs
        };
        let outcome = |namespace: &str| {
            let object = objects
                .iter()
                .find(|o| o.namespace.as_deref() == Some(namespace))
                .unwrap();
            match es_outcome(object, &inputs, &Lookup::new(&inputs)) {
                Outcome::Failed { detail, .. } => detail,
                Outcome::Synced(name) => format!("synced {name}"),
            }
        };
        assert_eq!(outcome("team-a"), "second, everywhere");
        assert_eq!(outcome("team-b"), "first, in team-b");
        assert_eq!(outcome("team-c"), "second, everywhere");
    }

    #[test]
    fn synced_resource_version_hashes_metadata_as_eso_does() {
        // Computed with Go: fmt.Sprintf("%x", sha3.Sum224([]byte(fmt.Sprintf("%+v", meta{...}))))
        // as ESO's HashMeta does.
        assert_eq!(
            hash_meta(None, None),
            "f47fe3c0b255b6dd8047cdffa772587bb829efe7a1cb70febeda2eb2"
        );
        let labels = BTreeMap::from([
            ("b".to_owned(), "2".to_owned()),
            ("a".to_owned(), "1".to_owned()),
        ]);
        assert_eq!(
            hash_meta(Some(&BTreeMap::new()), Some(&labels)),
            "34d5f4717d8d5942df322b4b2d4f4260fa627ff69278bd9fc50ebef2"
        );
    }
}
