//! ESO-style status for manifests read with `--from-cluster`: ClusterExternalSecret
//! `provisionedNamespaces`, `failedNamespaces` and a Ready condition; ExternalSecret Ready
//! conditions with ESO's reasons. Written only when it changed, and a failure also
//! becomes a Kubernetes Event.

use std::collections::{BTreeMap, BTreeSet};

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

/// The status each object should have after this reconcile.
pub fn desired_statuses(
    objects: &[ClusterObject],
    plan: &Plan,
    report: &Report,
    unreached: &BTreeMap<String, Vec<String>>,
) -> Vec<(usize, Value)> {
    let failed_writes: BTreeMap<&str, &str> = report
        .errors
        .iter()
        .map(|e| (e.target.as_str(), e.message.as_str()))
        .collect();
    let mut targets_of: BTreeMap<&str, Vec<(&str, &str)>> = BTreeMap::new();
    for secret in &plan.secrets {
        targets_of
            .entry(&secret.owner)
            .or_default()
            .push((&secret.namespace, &secret.name));
    }
    let mut updates = Vec::new();
    for (index, object) in objects.iter().enumerate() {
        let display = object.display();
        let mut provisioned = BTreeSet::new();
        let mut failed: BTreeMap<String, String> = BTreeMap::new();
        let mut object_errors = Vec::new();
        for (namespace, name) in targets_of.get(display.as_str()).into_iter().flatten() {
            match failed_writes.get(format!("{namespace}/{name}").as_str()) {
                Some(message) => {
                    failed.insert((*namespace).to_owned(), (*message).to_owned());
                }
                None => {
                    provisioned.insert((*namespace).to_owned());
                }
            }
        }
        // A member cluster that did not answer: the manifest is not Ready, and says which.
        object_errors.extend(
            unreached
                .get(display.as_str())
                .into_iter()
                .flatten()
                .cloned(),
        );
        for error in plan.errors.iter().filter(|e| e.object == display) {
            let reason = match &error.key {
                Some(key) => format!("{key}: {}", error.message),
                None => error.message.clone(),
            };
            if error.targets.is_empty() {
                object_errors.push(reason.clone());
            }
            for target in &error.targets {
                // `namespace/name`, or `cluster/namespace/name` in a member cluster.
                let namespace = target
                    .rsplit_once('/')
                    .map_or(target.as_str(), |(ns, _)| ns)
                    .to_owned();
                failed.insert(namespace, reason.clone());
            }
        }
        let ok = failed.is_empty() && object_errors.is_empty();
        let message = if let Some(first) = object_errors.first() {
            first.clone()
        } else if ok {
            format!("{} namespaces provisioned", provisioned.len())
        } else {
            format!(
                "{} namespaces provisioned, {} failed",
                provisioned.len(),
                failed.len()
            )
        };
        let status = if object.kind == "ClusterExternalSecret" {
            json!({
                "provisionedNamespaces": provisioned,
                "failedNamespaces": failed.iter().map(|(namespace, reason)| json!({"namespace": namespace, "reason": reason})).collect::<Vec<_>>(),
                "conditions": [condition(&object.status, "Ready", ok, if ok { "Provisioned" } else { "Failed" }, &message)],
            })
        } else {
            let message = if ok {
                "secret synced".to_owned()
            } else {
                failed.values().next().cloned().unwrap_or(message)
            };
            json!({
                "conditions": [condition(&object.status, "Ready", ok, if ok { "SecretSynced" } else { "SecretSyncedError" }, &message)],
            })
        };
        if without_times(&status) != without_times(&object.status) {
            updates.push((index, status));
        }
    }
    updates
}

/// A condition, keeping the old `lastTransitionTime` unless the status flipped.
fn condition(old_status: &Value, type_: &str, ok: bool, reason: &str, message: &str) -> Value {
    let status = if ok { "True" } else { "False" };
    let old = old_status["conditions"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["type"] == type_));
    let since = match old {
        Some(old) if old["status"] == status => old["lastTransitionTime"].clone(),
        _ => Value::from(now_rfc3339()),
    };
    json!({"type": type_, "status": status, "reason": reason, "message": message, "lastTransitionTime": since})
}

fn without_times(status: &Value) -> Value {
    let mut status = status.clone();
    if let Some(conditions) = status.get_mut("conditions").and_then(Value::as_array_mut) {
        for condition in conditions {
            if let Some(map) = condition.as_object_mut() {
                map.remove("lastTransitionTime");
            }
        }
    }
    status
}

fn now_rfc3339() -> String {
    k8s_openapi::jiff::Timestamp::now()
        .round(k8s_openapi::jiff::Unit::Second)
        .unwrap_or_else(|_| k8s_openapi::jiff::Timestamp::now())
        .to_string()
}

/// Writes the statuses that changed, and an Event for each new failure.
pub async fn write(
    client: &Client,
    objects: &[ClusterObject],
    updates: Vec<(usize, Value)>,
) -> Vec<ClusterError> {
    let mut errors = Vec::new();
    for (index, status) in updates {
        let object = &objects[index];
        let resource = resource(&object.kind);
        let api: Api<DynamicObject> = match &object.namespace {
            Some(namespace) => Api::namespaced_with(client.clone(), namespace, &resource),
            None => Api::all_with(client.clone(), &resource),
        };
        let failing = status["conditions"][0]["status"] == "False";
        let message = status["conditions"][0]["message"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let patch = Patch::Merge(json!({"status": status}));
        if let Err(e) = api
            .patch_status(&object.name, &PatchParams::default(), &patch)
            .await
        {
            errors.push(ClusterError::api(
                format!("write the status of {}", object.display()),
                e,
            ));
            continue;
        }
        if failing && let Err(e) = record_event(client, object, &message).await {
            errors.push(e);
        }
    }
    errors
}

async fn record_event(
    client: &Client,
    object: &ClusterObject,
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
        reason: Some("SyncFailed".into()),
        message: Some(message.chars().take(1000).collect()),
        type_: Some("Warning".into()),
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
                data: Default::default(),
                immutable: false,
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
        };
        let mut unreached = BTreeMap::new();
        let reached = desired_statuses(&objects, &plan, &Report::default(), &unreached);
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
        let status = &desired_statuses(&objects, &plan, &Report::default(), &unreached)[0].1;
        assert_eq!(status["conditions"][0]["status"], "False");
        assert_eq!(
            status["conditions"][0]["message"],
            "cluster member-c: failed to list namespaces: connection refused"
        );
    }
}
