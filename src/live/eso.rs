//! ESO's own objects in the cluster (`--from-cluster`): the four kinds courier reads,
//! read with one LIST each, and the objects whose status it writes.

use kube::Client;
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, ListParams};
use serde_json::Value;

use crate::core::load::{ESO_GROUP, Inputs, LoadError, Origin, load_values, object_display};
use crate::core::model::{ClusterExternalSecretSpec, StringMap};
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
    /// name (see [`belonging`]).
    pub child_of: Option<String>,
}

impl ClusterObject {
    /// `Kind/namespace/name`.
    pub fn display(&self) -> String {
        object_display(&self.kind, self.namespace.as_deref(), &self.name)
    }

    /// The ClusterExternalSecret that keeps this ExternalSecret (see [`belonging`]).
    pub fn controller(&self) -> Option<&str> {
        self.child_of.as_deref()
    }
}

/// What a ClusterExternalSecret tells of its ExternalSecrets: the names it gives them
/// (`spec.externalSecretName`, or its own name, and `status.externalSecretName`, which ESO
/// deletes after a rename) and the namespaces its status says it provisioned.
#[derive(Debug, Default)]
pub struct Given {
    names: std::collections::BTreeSet<String>,
    provisioned: std::collections::BTreeSet<String>,
}

impl Given {
    fn of(ces: &DynamicObject) -> Self {
        let own = ces.metadata.name.clone().unwrap_or_default();
        let text = |v: &Value| v.as_str().filter(|n| !n.is_empty()).map(str::to_owned);
        let spec = text(&ces.data["spec"]["externalSecretName"]).unwrap_or(own);
        let status = text(&ces.data["status"]["externalSecretName"]);
        let provisioned = ces.data["status"]["provisionedNamespaces"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(text)
            .collect();
        Given {
            names: std::iter::once(spec).chain(status).collect(),
            provisioned,
        }
    }
}

/// Whether an ExternalSecret belongs to a ClusterExternalSecret, as ESO's
/// ClusterExternalSecret controller tells its own.
#[derive(Debug, PartialEq, Eq)]
pub enum Belonging {
    /// Not a ClusterExternalSecret's: the user's own, synced like any other.
    Own,
    /// The named ClusterExternalSecret's: it keeps (creates, updates, deletes) it.
    Child(String),
    /// The named ClusterExternalSecret's if that one selects its namespace now.
    IfSelected(String),
}

/// ESO's rule: an ExternalSecret is a ClusterExternalSecret's when its controller owner
/// reference names it, it has the name it gives its ExternalSecrets (`given`, by
/// ClusterExternalSecret), and it stands in a namespace the ClusterExternalSecret selects
/// or provisioned (status), where ESO's controller updates or deletes it. One whose
/// ClusterExternalSecret is gone is a child (the garbage collector follows its owner
/// reference). Any other, a copy that kept the owner reference under another name or in
/// another namespace, is the user's own, as under ESO, which syncs it like any other.
pub fn belonging(
    object: &DynamicObject,
    given: &std::collections::BTreeMap<String, Given>,
) -> Belonging {
    let Some(ces) = controlling_ces(object) else {
        return Belonging::Own;
    };
    let name = object.metadata.name.as_deref().unwrap_or_default();
    let namespace = object.metadata.namespace.as_deref().unwrap_or_default();
    match given.get(ces) {
        None => Belonging::Child(ces.to_owned()),
        Some(g) if !g.names.contains(name) => Belonging::Own,
        Some(g) if g.provisioned.contains(namespace) => Belonging::Child(ces.to_owned()),
        Some(_) => Belonging::IfSelected(ces.to_owned()),
    }
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
/// CES controller made it, or courier did in its place; see [`belonging`]) is no manifest
/// of its own: its ClusterExternalSecret plans its target. It is returned among the
/// objects only. The namespaces are listed only when some ExternalSecret's belonging
/// depends on their labels (rare: a copy that kept its owner reference).
pub async fn manifests_from_cluster(
    client: &Client,
) -> Result<(Inputs, Vec<ClusterObject>, Vec<LoadError>), ClusterError> {
    let mut values = Vec::new();
    let mut objects = Vec::new();
    // ClusterExternalSecrets are listed before ExternalSecrets (ESO_RESOURCES' order).
    let mut given = std::collections::BTreeMap::new();
    let mut undecided = Vec::new();
    for (kind, _) in ESO_RESOURCES {
        for item in list_kind(client, kind, "--from-cluster").await? {
            let name = item.metadata.name.clone().unwrap_or_default();
            if kind == "ClusterExternalSecret" {
                given.insert(name.clone(), Given::of(&item));
            }
            let child_of = match kind {
                "ExternalSecret" => match belonging(&item, &given) {
                    Belonging::Own => None,
                    Belonging::Child(ces) => Some(ces),
                    Belonging::IfSelected(ces) => {
                        undecided.push((item, ces));
                        continue;
                    }
                },
                _ => None,
            };
            if child_of.is_none() {
                values.push(as_value(kind, &item)?);
            }
            objects.push(listed(kind, item, child_of));
        }
    }
    if !undecided.is_empty() {
        let namespaces: std::collections::BTreeMap<String, StringMap> =
            Api::<k8s_openapi::api::core::v1::Namespace>::all(client.clone())
                .list(&ListParams::default())
                .await
                .map_err(|e| ClusterError::api("list namespaces", e))?
                .items
                .into_iter()
                .map(|n| {
                    let labels = n.metadata.labels.unwrap_or_default();
                    (n.metadata.name.unwrap_or_default(), labels)
                })
                .collect();
        for (item, ces) in undecided {
            let namespace = item.metadata.namespace.clone().unwrap_or_default();
            let selected = objects
                .iter()
                .find(|o| o.kind == "ClusterExternalSecret" && o.name == ces)
                .zip(namespaces.get(&namespace))
                .is_some_and(|(o, labels)| ces_selects(o, &namespace, labels));
            let child_of = selected.then_some(ces);
            if child_of.is_none() {
                values.push(as_value("ExternalSecret", &item)?);
            }
            objects.push(listed("ExternalSecret", item, child_of));
        }
    }
    let (inputs, errors) = load_values(values);
    Ok((inputs, objects, errors))
}

/// An object as listed, with its current status.
fn listed(kind: &str, item: DynamicObject, child_of: Option<String>) -> ClusterObject {
    ClusterObject {
        kind: kind.to_owned(),
        namespace: item.metadata.namespace.clone(),
        name: item.metadata.name.clone().unwrap_or_default(),
        uid: item.metadata.uid.clone(),
        status: item.data.get("status").cloned().unwrap_or(Value::Null),
        object: std::sync::Arc::new(item),
        child_of,
    }
}

/// A ClusterExternalSecret's `spec`, typed, and the ExternalSecret name it gives.
pub(crate) fn spec_of(object: &ClusterObject) -> Option<(ClusterExternalSecretSpec, String)> {
    let spec: ClusterExternalSecretSpec =
        serde_json::from_value(object.object.data.get("spec")?.clone()).ok()?;
    let name = spec
        .external_secret_name
        .clone()
        .filter(|n| !n.is_empty())
        .unwrap_or_else(|| object.name.clone());
    Some((spec, name))
}

/// Whether `spec` selects namespace `name` with `labels` (its `selectors`, compiled once
/// per ClusterExternalSecret, ORed, then `namespaces`); a selector that does not compile
/// selects nothing.
pub(crate) fn selects(
    spec: &ClusterExternalSecretSpec,
    selectors: &[crate::core::select::Selector],
    name: &str,
    labels: &StringMap,
) -> bool {
    selectors.iter().any(|s| s.matches(labels))
        || spec.namespaces.iter().flatten().any(|n| n == name)
}

/// Whether the ClusterExternalSecret `ces` selects namespace `name` with `labels` (a
/// selector that does not compile selects nothing).
pub(crate) fn ces_selects(ces: &ClusterObject, name: &str, labels: &StringMap) -> bool {
    let Some((spec, _)) = spec_of(ces) else {
        return false;
    };
    selects(&spec, &compiled_selectors(&spec), name, labels)
}

/// A ClusterExternalSecret's namespace selectors, compiled once (one that does not
/// compile is left out: it selects nothing).
pub(crate) fn compiled_selectors(
    spec: &ClusterExternalSecretSpec,
) -> Vec<crate::core::select::Selector> {
    spec.namespace_selectors
        .iter()
        .flatten()
        .chain(spec.namespace_selector.iter())
        .filter_map(|s| s.compile().ok())
        .collect()
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn object(value: Value) -> DynamicObject {
        serde_json::from_value(value).unwrap()
    }

    fn es(namespace: &str, name: &str, owner: &str) -> DynamicObject {
        object(json!({
            "apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
            "metadata": {"name": name, "namespace": namespace, "ownerReferences": [{
                "apiVersion": "external-secrets.io/v1", "kind": "ClusterExternalSecret",
                "name": owner, "uid": "u", "controller": true
            }]}
        }))
    }

    #[test]
    fn an_external_secret_is_a_cluster_external_secret_s_by_name_and_namespace() {
        let ces = object(json!({
            "apiVersion": "external-secrets.io/v1", "kind": "ClusterExternalSecret",
            "metadata": {"name": "creds"},
            "spec": {"externalSecretName": "shared"},
            "status": {"externalSecretName": "old", "provisionedNamespaces": ["app"]}
        }));
        let given = [("creds".to_owned(), Given::of(&ces))].into();
        let child = |ces: &str| Belonging::Child(ces.to_owned());
        assert_eq!(
            belonging(&es("app", "shared", "creds"), &given),
            child("creds")
        );
        // Its name before a rename, which ESO deletes.
        assert_eq!(
            belonging(&es("app", "old", "creds"), &given),
            child("creds")
        );
        // A copy under another name is the user's own.
        assert_eq!(
            belonging(&es("app", "copy", "creds"), &given),
            Belonging::Own
        );
        // In a namespace it did not provision: its own if the CES selects it there.
        assert_eq!(
            belonging(&es("elsewhere", "shared", "creds"), &given),
            Belonging::IfSelected("creds".to_owned())
        );
        // Its ClusterExternalSecret is gone: the garbage collector's.
        assert_eq!(belonging(&es("app", "x", "gone"), &given), child("gone"));
        let mut plain = es("app", "shared", "creds");
        plain.metadata.owner_references = None;
        assert_eq!(belonging(&plain, &given), Belonging::Own);
    }
}
