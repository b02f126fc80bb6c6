//! ESO's own objects in the cluster (`--from-cluster`): the four kinds courier reads,
//! read with one LIST each, and the objects whose status it writes.

use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams};
use serde_json::Value;

use crate::core::load::{ESO_GROUP, Inputs, LoadError, Origin, load_values, object_display};
use crate::live::cluster::ClusterError;

/// An ESO object as read from the cluster, with the status it has now: a store, a
/// ClusterExternalSecret or an ExternalSecret.
#[derive(Debug, Clone)]
pub struct ClusterObject {
    /// `ClusterSecretStore`, `SecretStore`, `ClusterExternalSecret` or `ExternalSecret`.
    pub kind: String,
    /// Namespace of an ExternalSecret.
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
    /// UID, for Events.
    pub uid: Option<String>,
    /// Current `status`.
    pub status: Value,
    /// The object as listed (its metadata and spec).
    pub object: std::sync::Arc<DynamicObject>,
    /// For an ExternalSecret a ClusterExternalSecret keeps, that ClusterExternalSecret's
    /// name (see [`child_of`]).
    pub child_of: Option<String>,
}

impl ClusterObject {
    /// `Kind/namespace/name`.
    pub fn display(&self) -> String {
        object_display(&self.kind, self.namespace.as_deref(), &self.name)
    }

    /// The ClusterExternalSecret that keeps this ExternalSecret (see [`child_of`]).
    pub fn controller(&self) -> Option<&str> {
        self.child_of.as_deref()
    }
}

/// The ClusterExternalSecret an ExternalSecret belongs to, as ESO's ClusterExternalSecret
/// controller tells its own: a controller owner reference to it, and the name it gives
/// its ExternalSecrets (`spec.externalSecretName`, or the one in its status, which it
/// deletes after a rename). `names` holds those names by ClusterExternalSecret; one
/// missing from it is gone, and its ExternalSecrets with it (the garbage collector
/// follows the owner reference). An ExternalSecret copied with the owner reference under
/// another name is the user's own, as under ESO, which syncs it like any other.
pub fn child_of(
    object: &DynamicObject,
    names: &std::collections::BTreeMap<String, std::collections::BTreeSet<String>>,
) -> Option<String> {
    let ces = controlling_ces(object)?;
    let name = object.metadata.name.as_deref().unwrap_or_default();
    match names.get(ces) {
        Some(given) if !given.contains(name) => None,
        _ => Some(ces.to_owned()),
    }
}

/// The names a ClusterExternalSecret gives its ExternalSecrets: `spec.externalSecretName`
/// (or its own name), and `status.externalSecretName`, which ESO deletes after a rename.
fn given_names(ces: &DynamicObject) -> std::collections::BTreeSet<String> {
    let own = ces.metadata.name.clone().unwrap_or_default();
    let spec = ces.data["spec"]["externalSecretName"]
        .as_str()
        .filter(|n| !n.is_empty())
        .map_or(own, str::to_owned);
    let status = ces.data["status"]["externalSecretName"]
        .as_str()
        .filter(|n| !n.is_empty())
        .map(str::to_owned);
    std::iter::once(spec).chain(status).collect()
}

/// The name of the ClusterExternalSecret named by `object`'s controller owner reference.
pub fn controlling_ces(object: &DynamicObject) -> Option<&str> {
    object
        .metadata
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true))
        .filter(|o| {
            o.kind == "ClusterExternalSecret" && o.api_version.split('/').next() == Some(ESO_GROUP)
        })
        .map(|o| o.name.as_str())
}

/// The kinds and plurals courier reads from the cluster.
pub const ESO_RESOURCES: [(&str, &str); 4] = [
    ("ClusterSecretStore", "clustersecretstores"),
    ("SecretStore", "secretstores"),
    ("ClusterExternalSecret", "clusterexternalsecrets"),
    ("ExternalSecret", "externalsecrets"),
];

/// The `external-secrets.io/v1` resource of `kind`.
pub fn resource(kind: &str) -> ApiResource {
    let plural = ESO_RESOURCES
        .iter()
        .find(|(k, _)| *k == kind)
        .map(|(_, p)| *p)
        .unwrap_or_default();
    ApiResource::from_gvk_with_plural(&GroupVersionKind::gvk(ESO_GROUP, "v1", kind), plural)
}

/// Reads the ESO manifests from the API server (`--from-cluster`): one LIST per kind, of
/// `external-secrets.io/v1`. Returns them as if loaded from files, with the objects whose
/// status courier writes. An ExternalSecret that a ClusterExternalSecret keeps (ESO's
/// CES controller made it, or courier did in its place; see [`child_of`]) is no manifest
/// of its own: its ClusterExternalSecret plans its target. It is returned among the
/// objects only.
pub async fn manifests_from_cluster(
    client: &Client,
) -> Result<(Inputs, Vec<ClusterObject>, Vec<LoadError>), ClusterError> {
    let mut values = Vec::new();
    let mut objects = Vec::new();
    // ClusterExternalSecrets are listed before ExternalSecrets (ESO_RESOURCES' order).
    let mut names = std::collections::BTreeMap::new();
    for (kind, _) in ESO_RESOURCES {
        for item in list_kind(client, kind, "--from-cluster").await? {
            let name = item.metadata.name.clone().unwrap_or_default();
            let namespace = item.metadata.namespace.clone();
            if kind == "ClusterExternalSecret" {
                names.insert(name.clone(), given_names(&item));
            }
            let child_of = (kind == "ExternalSecret")
                .then(|| child_of(&item, &names))
                .flatten();
            if child_of.is_none() {
                values.push(as_value(kind, &item)?);
            }
            objects.push(ClusterObject {
                kind: kind.to_owned(),
                namespace: namespace.clone(),
                name: name.clone(),
                uid: item.metadata.uid.clone(),
                status: item.data.get("status").cloned().unwrap_or(Value::Null),
                object: std::sync::Arc::new(item),
                child_of,
            });
        }
    }
    let (inputs, errors) = load_values(values);
    Ok((inputs, objects, errors))
}

/// The stores of the cluster (ClusterSecretStores and SecretStores, one LIST each), as
/// if loaded from files: what `render` in the cluster world reads instead of the app's
/// files, where a store would let the repository choose the identity.
pub async fn stores_from_cluster(
    client: &Client,
) -> Result<(Inputs, Vec<LoadError>), ClusterError> {
    let mut values = Vec::new();
    for kind in ["ClusterSecretStore", "SecretStore"] {
        for item in list_kind(client, kind, "the cluster world").await? {
            values.push(as_value(kind, &item)?);
        }
    }
    Ok(load_values(values))
}

/// One LIST of an ESO kind in every namespace; `needs` says what needs the CRDs.
async fn list_kind(
    client: &Client,
    kind: &str,
    needs: &str,
) -> Result<Vec<DynamicObject>, ClusterError> {
    let api: Api<DynamicObject> = Api::all_with(client.clone(), &resource(kind));
    let listed = api.list(&ListParams::default()).await.map_err(|e| {
        let mut error = ClusterError::api(format!("list {kind}s"), e);
        if error.is_status(404)
            && let ClusterError::Api { hint, .. } = &mut error
        {
            *hint = format!("\nhint: {needs} needs the External Secrets Operator CRDs installed");
        }
        error
    })?;
    Ok(listed.items)
}

/// A listed object as a manifest, named `cluster` in errors.
fn as_value(kind: &str, item: &DynamicObject) -> Result<(Origin, Value), ClusterError> {
    let mut value = serde_json::to_value(item).map_err(|e| ClusterError::Config(e.to_string()))?;
    value["apiVersion"] = Value::from(format!("{}/v1", ESO_GROUP));
    value["kind"] = Value::from(kind);
    let origin = Origin {
        file: "cluster".into(),
        line: 0,
    };
    Ok((origin, value))
}
