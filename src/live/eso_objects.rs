//! The ExternalSecrets ESO's ClusterExternalSecret controller keeps (`--from-cluster`):
//! one in each namespace a ClusterExternalSecret selects, named `externalSecretName` (or
//! after the ClusterExternalSecret), with the labels and annotations of
//! `externalSecretMetadata`, the ClusterExternalSecret's `externalSecretSpec` and a
//! controller owner reference to it. They carry the status `kubectl get es -A`, ESO's
//! dashboard and runbooks read; courier plans their targets from the ClusterExternalSecret
//! itself, so they are never manifests of their own (see [`super::eso`]).
//!
//! ESO's ownership rules hold: an ExternalSecret of that name that the ClusterExternalSecret
//! does not control is left alone and its namespace is a failed one ("external secret
//! already exists in namespace"), and only the ExternalSecrets a ClusterExternalSecret
//! controls are updated or deleted. Unlike ESO, courier adds no finalizers (to the
//! ExternalSecrets, the ClusterExternalSecret or the namespaces): nothing is left behind
//! for a controller that is gone to remove.
//!
//! Cost: nothing is read for them (the ExternalSecrets come with the LIST every reconcile
//! makes); a write only when one is missing, stale or no longer selected.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use futures::StreamExt as _;
use kube::Client;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use crate::core::load::{ControlledExternalSecret, ESO_GROUP, Manifests};
use crate::core::model::StringMap;
use crate::live::cluster::ClusterError;
use crate::live::eso::{ClusterObject, compiled_selectors, resource, selects, spec_of};

/// ESO's reason for a namespace whose ExternalSecret of that name another owner has.
pub const ALREADY_EXISTS: &str = "external secret already exists in namespace";
/// ESO's ExternalSecret finalizer: an ExternalSecret ESO made carries it, and courier
/// takes it off when it deletes one (ESO, which would, is stopped).
/// ExternalSecret creates in flight at once.
const CREATES_IN_FLIGHT: usize = 16;
const ESO_FINALIZER: &str = "externalsecrets.external-secrets.io/externalsecret-cleanup";
/// ESO's annotation that forces a refresh, copied from a ClusterExternalSecret to its ExternalSecrets.
const FORCE_SYNC: &str = "external-secrets.io/force-sync";

/// What keeping the ExternalSecrets of the ClusterExternalSecrets did, by ClusterExternalSecret name.
#[derive(Debug, Default)]
pub struct Children {
    /// Namespaces whose ExternalSecret exists and is current.
    pub provisioned: BTreeMap<String, BTreeSet<String>>,
    /// Namespaces that failed, with ESO's reason.
    pub failed: BTreeMap<String, BTreeMap<String, String>>,
    /// Writes that failed.
    pub errors: Vec<ClusterError>,
    /// ExternalSecrets created, updated, deleted.
    pub created: usize,
    /// See `created`.
    pub updated: usize,
    /// See `created`.
    pub deleted: usize,
}

/// ESO's ownership rule before planning: a ClusterExternalSecret does not provision a
/// namespace where an ExternalSecret of its name exists that it does not control (a
/// hand-written one, which is a manifest already, or another ClusterExternalSecret's,
/// recorded here). The planner fails that namespace and names its target there in the
/// error, so the target is kept as it is: never pruned, never taken over.
pub fn note_controlled(manifests: &mut Manifests, objects: &[ClusterObject]) {
    manifests.controlled_external_secrets = objects
        .iter()
        .filter(|o| o.kind == "ExternalSecret")
        .filter_map(|o| {
            Some(ControlledExternalSecret {
                namespace: o.namespace.clone()?,
                name: o.name.clone(),
                controller: o.controller()?.to_owned(),
            })
        })
        .collect();
}

/// The ExternalSecret ESO's controller would keep for `ces` in `namespace`.
fn desired_child(ces: &ClusterObject, es_name: &str, namespace: &str) -> Value {
    let data = &ces.object.data;
    let metadata = &data["spec"]["externalSecretMetadata"];
    let labels = metadata["labels"].clone();
    let mut annotations = metadata["annotations"].clone();
    // ESO copies the force-sync annotation of the ClusterExternalSecret.
    if let Some(force) = ces
        .object
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(FORCE_SYNC))
    {
        if !annotations.is_object() {
            annotations = json!({});
        }
        annotations[FORCE_SYNC] = Value::from(force.clone());
    }
    let mut meta = json!({
        "name": es_name,
        "namespace": namespace,
        "ownerReferences": [owner_reference(ces)],
    });
    if labels.as_object().is_some_and(|l| !l.is_empty()) {
        meta["labels"] = labels;
    }
    if annotations.as_object().is_some_and(|a| !a.is_empty()) {
        meta["annotations"] = annotations;
    }
    let mut spec = data["spec"]["externalSecretSpec"].clone();
    // ESO copies the spec through Go's types: a duration reads back as Go prints it.
    if let Some(interval) = spec["refreshInterval"]
        .as_str()
        .and_then(crate::core::duration::parse_go_duration)
    {
        spec["refreshInterval"] = Value::from(go_duration(interval));
    }
    json!({
        "apiVersion": format!("{ESO_GROUP}/v1"),
        "kind": "ExternalSecret",
        "metadata": meta,
        "spec": spec,
    })
}

/// A duration as Go's `time.Duration.String` prints it (`1h0m0s`, `1m30s`, `500ms`).
fn go_duration(duration: std::time::Duration) -> String {
    let nanos = duration.as_nanos();
    if nanos == 0 {
        return "0s".into();
    }
    let fraction = |value: u128, unit: u128| -> String {
        let whole = value / unit;
        let rest = value % unit;
        if rest == 0 {
            return whole.to_string();
        }
        let digits = unit.to_string().len() - 1;
        let fractional = format!("{rest:0digits$}");
        format!("{whole}.{}", fractional.trim_end_matches('0'))
    };
    if nanos < 1_000 {
        return format!("{nanos}ns");
    }
    if nanos < 1_000_000 {
        return format!("{}µs", fraction(nanos, 1_000));
    }
    if nanos < 1_000_000_000 {
        return format!("{}ms", fraction(nanos, 1_000_000));
    }
    let seconds = nanos / 1_000_000_000;
    let (hours, minutes) = (seconds / 3600, seconds % 3600 / 60);
    let rest = nanos - (hours * 3600 + minutes * 60) * 1_000_000_000;
    let mut text = String::new();
    if hours > 0 {
        text.push_str(&format!("{hours}h"));
    }
    if hours > 0 || minutes > 0 {
        text.push_str(&format!("{minutes}m"));
    }
    text.push_str(&format!("{}s", fraction(rest, 1_000_000_000)));
    text
}

fn owner_reference(ces: &ClusterObject) -> Value {
    json!({
        "apiVersion": format!("{ESO_GROUP}/v1"),
        "kind": "ClusterExternalSecret",
        "name": ces.name,
        "uid": ces.uid.clone().unwrap_or_default(),
        "controller": true,
        "blockOwnerDeletion": true,
    })
}

/// Whether every field of `want` is in `have` with the same value (the API server adds
/// the CRD's defaults to what is stored; a default is no difference).
fn contains(have: &Value, want: &Value) -> bool {
    match (have, want) {
        (Value::Object(have), Value::Object(want)) => want
            .iter()
            .all(|(k, v)| have.get(k).is_some_and(|h| contains(h, v)) || v.is_null()),
        (Value::Array(have), Value::Array(want)) => {
            have.len() == want.len() && have.iter().zip(want).all(|(h, w)| contains(h, w))
        }
        _ => have == want,
    }
}

/// Whether `existing` is the ExternalSecret `desired` describes: the same labels and
/// annotations (ESO replaces them), the spec (with the server's defaults), and the
/// controller reference to this ClusterExternalSecret's UID.
fn is_current(existing: &DynamicObject, desired: &Value) -> bool {
    let map =
        |m: &Option<BTreeMap<String, String>>| -> Value { json!(m.clone().unwrap_or_default()) };
    let want_map = |v: &Value| -> Value { if v.is_object() { v.clone() } else { json!({}) } };
    let meta = &existing.metadata;
    let owner_ok = meta.owner_references.iter().flatten().any(|o| {
        o.controller == Some(true)
            && desired["metadata"]["ownerReferences"][0]["uid"].as_str() == Some(o.uid.as_str())
    });
    owner_ok
        && map(&meta.labels) == want_map(&desired["metadata"]["labels"])
        && map(&meta.annotations) == want_map(&desired["metadata"]["annotations"])
        && contains(
            existing.data.get("spec").unwrap_or(&Value::Null),
            &desired["spec"],
        )
}

/// Creates, updates and deletes the ExternalSecrets of every ClusterExternalSecret in
/// `objects` over `namespaces` (the hub's, with their labels); `home` names the
/// ClusterExternalSecrets whose cluster selector picks the hub. `objects` afterwards holds
/// the ExternalSecrets as written (new ones added, deleted ones removed), so their status
/// is computed from what the server stored.
pub async fn sync_children(
    client: &Client,
    objects: &mut Vec<ClusterObject>,
    namespaces: &BTreeMap<String, StringMap>,
    home: &BTreeSet<String>,
    dry_run: bool,
) -> Children {
    let mut children = Children::default();
    // By name: where two give their ExternalSecrets one name, the first by name makes it
    // (as the planner decides), and the other fails there without trying to.
    let mut cluster_external_secrets: Vec<ClusterObject> = objects
        .iter()
        .filter(|o| o.kind == "ClusterExternalSecret")
        .cloned()
        .collect();
    cluster_external_secrets.sort_by(|a, b| a.name.cmp(&b.name));
    let resource = resource("ExternalSecret");
    let mut index: BTreeMap<(String, String), usize> = BTreeMap::new();
    for (i, object) in objects.iter().enumerate() {
        if object.kind == "ExternalSecret"
            && let Some(namespace) = &object.namespace
        {
            index.insert((namespace.clone(), object.name.clone()), i);
        }
    }
    // (namespace, name) of every ExternalSecret some ClusterExternalSecret still wants.
    let mut wanted: BTreeSet<(String, String)> = BTreeSet::new();
    let mut replaced: BTreeMap<usize, DynamicObject> = BTreeMap::new();
    let mut added: Vec<(String, DynamicObject)> = Vec::new();
    let mut to_create: Vec<(String, String, String, DynamicObject)> = Vec::new();
    for ces in &cluster_external_secrets {
        let Some((spec, es_name)) = spec_of(ces) else {
            continue;
        };
        let provisioned = children.provisioned.entry(ces.name.clone()).or_default();
        let failed = children.failed.entry(ces.name.clone()).or_default();
        if !home.contains(&ces.name) {
            continue;
        }
        let selectors = compiled_selectors(&spec);
        // What the ExternalSecret should be is the same in every namespace but for its
        // `metadata.namespace`, which `is_current` does not compare: made once.
        let desired = desired_child(ces, &es_name, "");
        for (namespace, labels) in namespaces {
            if !selects(&spec, &selectors, namespace, labels) {
                continue;
            }
            let key = (namespace.clone(), es_name.clone());
            let api: Api<DynamicObject> =
                Api::namespaced_with(client.clone(), namespace, &resource);
            match index.get(&key).map(|i| (*i, &objects[*i])) {
                Some((_, existing)) if existing.controller() != Some(ces.name.as_str()) => {
                    failed.insert(namespace.clone(), ALREADY_EXISTS.into());
                }
                // Another ClusterExternalSecret (earlier by name) makes it in this pass.
                None if wanted.contains(&key) => {
                    failed.insert(namespace.clone(), ALREADY_EXISTS.into());
                }
                Some((i, existing)) => {
                    wanted.insert(key);
                    if is_current(&existing.object, &desired) || dry_run {
                        provisioned.insert(namespace.clone());
                        continue;
                    }
                    let mut object = (*existing.object).clone();
                    object.metadata.labels =
                        serde_json::from_value(desired["metadata"]["labels"].clone()).ok();
                    object.metadata.annotations =
                        serde_json::from_value(desired["metadata"]["annotations"].clone()).ok();
                    let mut references: Vec<_> = object
                        .metadata
                        .owner_references
                        .take()
                        .unwrap_or_default()
                        .into_iter()
                        .filter(|o| o.controller != Some(true))
                        .collect();
                    if let Ok(reference) =
                        serde_json::from_value(desired["metadata"]["ownerReferences"][0].clone())
                    {
                        references.push(reference);
                    }
                    object.metadata.owner_references = Some(references);
                    object.data["spec"] = desired["spec"].clone();
                    if let Some(map) = object.data.as_object_mut() {
                        map.remove("status");
                    }
                    match api.replace(&es_name, &PostParams::default(), &object).await {
                        Ok(written) => {
                            children.updated += 1;
                            provisioned.insert(namespace.clone());
                            replaced.insert(i, written);
                        }
                        Err(e) => {
                            let error = ClusterError::api(
                                format!("update ExternalSecret {namespace}/{es_name}"),
                                e,
                            );
                            failed.insert(
                                namespace.clone(),
                                format!("could not create or update ExternalSecret: {error}"),
                            );
                            children.errors.push(error);
                        }
                    }
                }
                None => {
                    wanted.insert(key);
                    if dry_run {
                        provisioned.insert(namespace.clone());
                        continue;
                    }
                    let mut desired = desired.clone();
                    desired["metadata"]["namespace"] = Value::from(namespace.as_str());
                    let object: DynamicObject = match serde_json::from_value(desired) {
                        Ok(object) => object,
                        Err(_) => continue,
                    };
                    to_create.push((ces.name.clone(), namespace.clone(), es_name.clone(), object));
                }
            }
        }
    }
    // Creates go 16 at a time (a first sync makes one per selected namespace).
    let created: Vec<_> = futures::stream::iter(to_create)
        .map(|(ces, namespace, es_name, object)| {
            let api: Api<DynamicObject> =
                Api::namespaced_with(client.clone(), &namespace, &resource);
            async move {
                let result = api.create(&PostParams::default(), &object).await;
                (ces, namespace, es_name, result)
            }
        })
        .buffer_unordered(CREATES_IN_FLIGHT)
        .collect()
        .await;
    for (ces, namespace, es_name, result) in created {
        match result {
            Ok(written) => {
                children.created += 1;
                children
                    .provisioned
                    .entry(ces.clone())
                    .or_default()
                    .insert(namespace);
                added.push((ces, written));
            }
            Err(e) => {
                let error =
                    ClusterError::api(format!("create ExternalSecret {namespace}/{es_name}"), e);
                children.failed.entry(ces).or_default().insert(
                    namespace,
                    format!("could not create or update ExternalSecret: {error}"),
                );
                children.errors.push(error);
            }
        }
    }
    // ExternalSecrets a ClusterExternalSecret controls that none wants any more: its
    // namespace left the selection, its name changed, or it is gone.
    let mut removed = BTreeSet::new();
    for (i, object) in objects.iter().enumerate() {
        let (Some(_), Some(namespace)) = (object.controller(), &object.namespace) else {
            continue;
        };
        if object.kind != "ExternalSecret"
            || wanted.contains(&(namespace.clone(), object.name.clone()))
        {
            continue;
        }
        if dry_run {
            continue;
        }
        let api: Api<DynamicObject> = Api::namespaced_with(client.clone(), namespace, &resource);
        let finalizers = object
            .object
            .metadata
            .finalizers
            .clone()
            .unwrap_or_default();
        if finalizers.iter().any(|f| f == ESO_FINALIZER) {
            let kept: Vec<&String> = finalizers.iter().filter(|f| *f != ESO_FINALIZER).collect();
            let patch = json!({"metadata": {"finalizers": kept, "resourceVersion": object.object.metadata.resource_version}});
            if let Err(e) = api
                .patch(&object.name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                children.errors.push(ClusterError::api(
                    format!(
                        "take ESO's finalizer off ExternalSecret {namespace}/{}",
                        object.name
                    ),
                    e,
                ));
                continue;
            }
        }
        match api.delete(&object.name, &DeleteParams::default()).await {
            Ok(_) => {
                children.deleted += 1;
                removed.insert(i);
            }
            Err(kube::Error::Api(status)) if status.code == 404 => {
                removed.insert(i);
            }
            Err(e) => children.errors.push(ClusterError::api(
                format!("delete ExternalSecret {namespace}/{}", object.name),
                e,
            )),
        }
    }
    for (i, written) in replaced {
        let status = objects[i].status.clone();
        let ces = objects[i].child_of.clone().unwrap_or_default();
        objects[i] = as_object(written, status, ces);
    }
    let mut kept = Vec::with_capacity(objects.len() + added.len());
    for (i, object) in std::mem::take(objects).into_iter().enumerate() {
        if !removed.contains(&i) {
            kept.push(object);
        }
    }
    kept.extend(
        added
            .into_iter()
            .map(|(ces, o)| as_object(o, Value::Null, ces)),
    );
    *objects = kept;
    children
}

/// An ExternalSecret `ces` keeps, as the server stored it.
fn as_object(object: DynamicObject, status: Value, ces: String) -> ClusterObject {
    ClusterObject {
        kind: "ExternalSecret".into(),
        namespace: object.metadata.namespace.clone(),
        name: object.metadata.name.clone().unwrap_or_default(),
        uid: object.metadata.uid.clone(),
        status,
        object: Arc::new(object),
        child_of: Some(ces),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_print_as_go_prints_them() {
        let d = |text: &str| go_duration(crate::core::duration::parse_go_duration(text).unwrap());
        assert_eq!(d("1h"), "1h0m0s");
        assert_eq!(d("90s"), "1m30s");
        assert_eq!(d("24h"), "24h0m0s");
        assert_eq!(d("2m"), "2m0s");
        assert_eq!(d("1.5s"), "1.5s");
        assert_eq!(d("500ms"), "500ms");
        assert_eq!(d("0s"), "0s");
    }

    #[test]
    fn server_defaults_are_no_difference_but_a_changed_value_is() {
        let have = json!({"refreshInterval": "1h", "target": {"name": "x", "creationPolicy": "Owner"}, "data": [{"secretKey": "a", "remoteRef": {"key": "k", "conversionStrategy": "Default"}}]});
        let want = json!({"target": {"name": "x"}, "data": [{"secretKey": "a", "remoteRef": {"key": "k"}}]});
        assert!(contains(&have, &want));
        let changed = json!({"target": {"name": "y"}, "data": [{"secretKey": "a", "remoteRef": {"key": "k"}}]});
        assert!(!contains(&have, &changed));
        let more =
            json!({"data": [{"secretKey": "a", "remoteRef": {"key": "k"}}, {"secretKey": "b"}]});
        assert!(!contains(&have, &more));
    }
}
