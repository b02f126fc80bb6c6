//! Taking over Secrets that External Secrets Operator made, for a switch from ESO to
//! courier without a gap. ESO marks what it writes with the label
//! `reconcile.external-secrets.io/managed` and an owner reference to the ExternalSecret
//! (for a ClusterExternalSecret, the ExternalSecret it made in each namespace, named
//! after it). courier adopts such a Secret only when asked (`--adopt-eso`), only for the
//! same ExternalSecret, and only when ESO has stopped reconciling it: two controllers
//! writing one Secret would fight at every refresh.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, ListParams, Patch, PatchParams};

use super::cluster::ClusterError;

/// ESO's label on the Secrets it manages.
pub const ESO_MANAGED_LABEL: &str = "reconcile.external-secrets.io/managed";
/// ESO's digest of the data it wrote.
const ESO_DATA_HASH_ANNOTATION: &str = "reconcile.external-secrets.io/data-hash";

/// What the metadata of an existing Secret says about ESO.
#[derive(Debug, Clone, Default)]
pub struct Existing {
    /// The ExternalSecret that owns it, when ESO manages it.
    pub eso_owner: Option<String>,
    /// Its owner references, to keep those that are not ESO's.
    pub owner_references: Vec<OwnerReference>,
    /// For the patch's precondition.
    pub resource_version: Option<String>,
}

impl Existing {
    /// Reads ESO's marks from a Secret's metadata.
    pub fn from_metadata(meta: &kube::api::ObjectMeta) -> Self {
        let labelled = meta
            .labels
            .as_ref()
            .is_some_and(|l| l.get(ESO_MANAGED_LABEL).map(String::as_str) == Some("true"));
        let owner_references = meta.owner_references.clone().unwrap_or_default();
        let eso_owner = owner_references
            .iter()
            .find(|o| {
                o.kind == "ExternalSecret" && o.api_version.starts_with("external-secrets.io/")
            })
            .map(|o| o.name.clone())
            .filter(|_| labelled);
        Self {
            eso_owner,
            owner_references,
            resource_version: meta.resource_version.clone(),
        }
    }
}

/// The ExternalSecret ESO would have made for a courier manifest (`owner` is
/// `ExternalSecret/<ns>/<name>` or `ClusterExternalSecret/<name>`): its name.
pub fn expected_external_secret(owner: &str) -> Option<&str> {
    let mut parts = owner.split('/');
    match (parts.next(), parts.next(), parts.next()) {
        (Some("ExternalSecret"), Some(_namespace), Some(name)) => Some(name),
        (Some("ClusterExternalSecret"), Some(name), None) => Some(name),
        _ => None,
    }
}

/// What courier knows of ESO before adopting: which ExternalSecrets ESO still seems to
/// reconcile, with why, and which ExternalSecrets a ClusterExternalSecret made (ESO names
/// them `externalSecretName`, not always after the ClusterExternalSecret).
#[derive(Debug, Clone, Default)]
pub struct EsoState {
    /// `(namespace, name)` of an ExternalSecret ESO still reconciles, and why courier thinks so.
    pub active: BTreeMap<(String, String), String>,
    /// `(namespace, name)` of an ExternalSecret a ClusterExternalSecret controls, and its name.
    pub made_by: BTreeMap<(String, String), String>,
}

/// ESO's controller Deployment, as ESO's Helm chart labels it (its webhook and cert
/// controller carry other names).
pub const ESO_CONTROLLER_SELECTOR: &str = "app.kubernetes.io/name=external-secrets";

/// Whether ESO runs, and what it made. One LIST of every ExternalSecret and one of ESO's
/// controller Deployments, made only when there is something to adopt.
///
/// ESO is taken for stopped when `stopped` says so (`--eso-stopped`: the user answers for
/// it), or when its controller Deployments (found by [`ESO_CONTROLLER_SELECTOR`] in every
/// namespace) have no replica, ready or not. When it has one, every ExternalSecret counts
/// as reconciled by ESO. When no such Deployment is found or may be listed (ESO installed
/// otherwise), an ExternalSecret counts as reconciled while its last refresh is more recent
/// than one refresh interval (plus a minute). An ExternalSecret that is gone, has no
/// status, or whose CRD is not installed is not active.
pub async fn eso_activity(client: &Client, stopped: bool) -> Result<EsoState, ClusterError> {
    let mut state = EsoState::default();
    let controller = if stopped {
        Some(None)
    } else {
        eso_controller(client).await
    };
    for version in ["v1", "v1beta1"] {
        let resource = ApiResource {
            group: "external-secrets.io".into(),
            version: version.into(),
            api_version: format!("external-secrets.io/{version}"),
            kind: "ExternalSecret".into(),
            plural: "externalsecrets".into(),
        };
        let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource);
        let listed = match api.list(&ListParams::default()).await {
            Ok(listed) => listed,
            Err(kube::Error::Api(e)) if e.code == 404 => continue,
            Err(e) => {
                return Err(ClusterError::api(
                    "list ExternalSecrets (to check ESO stopped before adopting)",
                    e,
                ));
            }
        };
        let now = jiff::Timestamp::now();
        for object in &listed.items {
            let (Some(namespace), Some(name)) = (
                object.metadata.namespace.clone(),
                object.metadata.name.clone(),
            ) else {
                continue;
            };
            if let Some(ces) = crate::live::eso::controlling_ces(object) {
                state
                    .made_by
                    .insert((namespace.clone(), name.clone()), ces.to_owned());
            }
            let why = match &controller {
                Some(None) => None,
                Some(Some(running)) => Some(running.clone()),
                None => refreshed_recently(object, now)
                    .map(|why| format!("ESO refreshed ExternalSecret {namespace}/{name} {why}")),
            };
            if let Some(why) = why {
                state.active.insert((namespace, name), why);
            }
        }
        return Ok(state);
    }
    Ok(state)
}

/// `Some(None)` when ESO's controller Deployments have no replica, `Some(Some(why))` when
/// one has, `None` when none is found or courier may not list Deployments.
async fn eso_controller(client: &Client) -> Option<Option<String>> {
    let api: Api<k8s_openapi::api::apps::v1::Deployment> = Api::all(client.clone());
    let listed = match api
        .list(&ListParams::default().labels(ESO_CONTROLLER_SELECTOR))
        .await
    {
        Ok(listed) => listed,
        Err(error) => {
            tracing::debug!(%error, "cannot list ESO's controller Deployments; judging by the ExternalSecrets' refresh times");
            return None;
        }
    };
    if listed.items.is_empty() {
        return None;
    }
    for deployment in &listed.items {
        let status = deployment.status.clone().unwrap_or_default();
        let ready = status.ready_replicas.unwrap_or(0);
        let replicas = status.replicas.unwrap_or(0);
        let wanted = deployment.spec.replicas.unwrap_or(1);
        if ready > 0 || replicas > 0 || wanted > 0 {
            return Some(Some(format!(
                "ESO's controller Deployment {}/{} runs ({ready} ready of {replicas} replicas, {wanted} wanted)",
                deployment.metadata.namespace.as_deref().unwrap_or_default(),
                deployment.metadata.name.as_deref().unwrap_or_default(),
            )));
        }
    }
    Some(None)
}

/// How long ago ESO refreshed `object`, when that is within its refresh interval plus a minute.
fn refreshed_recently(object: &DynamicObject, now: jiff::Timestamp) -> Option<String> {
    let refreshed = object.data["status"]["refreshTime"]
        .as_str()?
        .parse::<jiff::Timestamp>()
        .ok()?;
    let interval = object.data["spec"]["refreshInterval"]
        .as_str()
        .and_then(crate::core::duration::parse_go_duration)
        .unwrap_or(std::time::Duration::from_secs(3600));
    let age = std::time::Duration::try_from(now.duration_since(refreshed)).unwrap_or_default();
    (age < interval + std::time::Duration::from_secs(60)).then(|| {
        format!(
            "{}s ago (refreshInterval {}s)",
            age.as_secs(),
            interval.as_secs()
        )
    })
}

/// Takes ESO's marks off a Secret before courier applies it: its owner reference to
/// the ExternalSecret (or deleting the ExternalSecret would garbage-collect the Secret),
/// the managed label and ESO's data hash. Other owner references stay.
pub async fn release_from_eso(
    client: &Client,
    namespace: &str,
    name: &str,
    existing: &Existing,
    dry_run: bool,
) -> Result<(), ClusterError> {
    let remaining: Vec<&OwnerReference> = existing
        .owner_references
        .iter()
        .filter(|o| {
            !(o.kind == "ExternalSecret" && o.api_version.starts_with("external-secrets.io/"))
        })
        .collect();
    let mut labels = BTreeMap::new();
    labels.insert(ESO_MANAGED_LABEL, serde_json::Value::Null);
    let mut annotations = BTreeMap::new();
    annotations.insert(ESO_DATA_HASH_ANNOTATION, serde_json::Value::Null);
    let patch = serde_json::json!({
        "metadata": {
            "resourceVersion": existing.resource_version,
            "ownerReferences": if remaining.is_empty() { serde_json::Value::Null } else { serde_json::json!(remaining) },
            "labels": labels,
            "annotations": annotations,
        }
    });
    let mut params = PatchParams::default();
    if dry_run {
        params = params.dry_run();
    }
    Api::<Secret>::namespaced(client.clone(), namespace)
        .patch(name, &params, &Patch::Merge(&patch))
        .await
        .map(drop)
        .map_err(|e| ClusterError::api("take ESO's owner reference and label off the Secret", e))
}
