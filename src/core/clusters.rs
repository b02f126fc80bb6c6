//! Many clusters from one courier: the members a reconcile writes to, which manifests
//! each member receives (the `courier.dev/cluster-selector` annotation), and Argo CD's
//! cluster Secrets as an inventory. Pure: connecting is `live::fleet`'s job.

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::core::labels::{CLUSTER_NAME_LABEL, CLUSTER_SELECTOR_ANNOTATION};
use crate::core::load::Manifests;
use crate::core::model::StringMap;
use crate::core::secret_bytes::SecretBytes;
pub use crate::core::select::cluster_selector;

/// The name of the cluster courier itself talks to (its hub), as Argo CD names the
/// cluster it runs in.
pub const HOME_CLUSTER: &str = "in-cluster";

/// The server URL Argo CD gives the cluster it runs in.
pub const IN_CLUSTER_SERVER: &str = "https://kubernetes.default.svc";

/// A cluster a reconcile may write to, with the labels cluster selectors match.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Its name: `in-cluster`, an Argo CD cluster's `name`, or a kubeconfig context.
    pub name: String,
    /// Its labels, with `courier.dev/cluster-name` set to the name.
    pub labels: StringMap,
}

impl Member {
    /// A member with `labels` plus its name label (as namespaces carry
    /// `kubernetes.io/metadata.name`).
    pub fn new(name: &str, mut labels: StringMap) -> Self {
        labels.insert(CLUSTER_NAME_LABEL.to_owned(), name.to_owned());
        Self {
            name: name.to_owned(),
            labels,
        }
    }

    /// Whether this is the cluster courier talks to itself.
    pub fn is_home(&self) -> bool {
        self.name == HOME_CLUSTER
    }
}

/// Whether a manifest with these annotations goes to `member`: its selector matches the
/// member's labels, or, without a selector, the member is the home cluster. A selector
/// that does not parse matches nothing (loading reports it).
pub fn selects(annotations: &StringMap, member: &Member) -> bool {
    match cluster_selector(annotations) {
        Ok(Some(selector)) => selector.matches(&member.labels),
        Ok(None) => member.is_home(),
        Err(_) => false,
    }
}

/// The manifests `member` receives: every store (sources are read on the hub), and the
/// ClusterExternalSecrets and ExternalSecrets whose cluster selector picks it.
pub fn manifests_for(manifests: &Manifests, member: &Member) -> Manifests {
    Manifests {
        stores: manifests.stores.clone(),
        cluster_external_secrets: manifests
            .cluster_external_secrets
            .iter()
            .filter(|c| selects(&c.object.metadata.annotations, member))
            .cloned()
            .collect(),
        external_secrets: manifests
            .external_secrets
            .iter()
            .filter(|e| selects(&e.object.metadata.annotations, member))
            .cloned()
            .collect(),
        // A refused object's cluster selector is not trusted: every cluster keeps its
        // targets and names its error.
        refused: manifests.refused.clone(),
        // ESO's objects are kept on the hub alone: a namespace of the same name in a
        // member cluster holds none of them.
        controlled_external_secrets: if member.is_home() {
            manifests.controlled_external_secrets.clone()
        } else {
            Vec::new()
        },
    }
}

/// Whether any manifest names a cluster selector.
pub fn any_cluster_selector(manifests: &Manifests) -> bool {
    let has = |a: &StringMap| a.contains_key(CLUSTER_SELECTOR_ANNOTATION);
    manifests
        .cluster_external_secrets
        .iter()
        .any(|c| has(&c.object.metadata.annotations))
        || manifests
            .external_secrets
            .iter()
            .any(|e| has(&e.object.metadata.annotations))
}

/// Manifests whose cluster selector picks none of `members`, as `Kind/name` with the
/// selector and the manifest's origin: a typo in a label would otherwise deliver nothing
/// without a word (and, in live mode, remove what it delivered).
pub fn selecting_nothing(
    manifests: &Manifests,
    members: &[Member],
) -> Vec<(String, String, crate::core::load::Origin)> {
    let annotated = manifests
        .cluster_external_secrets
        .iter()
        .map(|c| {
            (
                format!("ClusterExternalSecret/{}", c.object.metadata.name),
                &c.object.metadata.annotations,
                &c.origin,
            )
        })
        .chain(manifests.external_secrets.iter().map(|e| {
            let meta = &e.object.metadata;
            (
                format!(
                    "ExternalSecret/{}/{}",
                    meta.namespace.as_deref().unwrap_or_default(),
                    meta.name
                ),
                &meta.annotations,
                &e.origin,
            )
        }));
    annotated
        .filter_map(|(display, annotations, origin)| {
            let selector = annotations.get(CLUSTER_SELECTOR_ANNOTATION)?;
            let picks_one = members.iter().any(|m| selects(annotations, m));
            (!picks_one).then(|| (display, selector.clone(), origin.clone()))
        })
        .collect()
}

/// An Argo CD cluster Secret (`argocd.argoproj.io/secret-type: cluster`), as courier
/// uses it: where the cluster is, how to authenticate, and its labels.
#[derive(Debug, Clone)]
pub struct ClusterSecret {
    /// `data.name`, or the server when it has none (as Argo CD does).
    pub name: String,
    /// `data.server`.
    pub server: String,
    /// The Secret's labels, Argo CD's own (`argocd.argoproj.io/...`) left out.
    pub labels: StringMap,
    /// `data.config`.
    pub config: ClusterConfig,
}

/// `data.config` of an Argo CD cluster Secret: the fields courier can act on.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterConfig {
    /// A bearer token.
    #[serde(default)]
    pub bearer_token: Option<SecretBytes>,
    /// Basic authentication.
    #[serde(default)]
    pub username: Option<String>,
    /// Basic authentication.
    #[serde(default)]
    pub password: Option<SecretBytes>,
    /// TLS settings.
    #[serde(default)]
    pub tls_client_config: TlsClientConfig,
    /// AWS IAM authentication (EKS); courier cannot run it.
    #[serde(default)]
    pub aws_auth_config: Option<serde_json::Value>,
    /// An exec credential plugin; courier's image has none to run.
    #[serde(default)]
    pub exec_provider_config: Option<serde_json::Value>,
}

/// `tlsClientConfig` of an Argo CD cluster config.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TlsClientConfig {
    /// Skip verifying the server's certificate.
    #[serde(default)]
    pub insecure: bool,
    /// The name to verify the server's certificate against.
    #[serde(default)]
    pub server_name: Option<String>,
    /// PEM CA bundle, base64.
    #[serde(default)]
    pub ca_data: Option<String>,
    /// PEM client certificate, base64.
    #[serde(default)]
    pub cert_data: Option<String>,
    /// PEM client key, base64.
    #[serde(default)]
    pub key_data: Option<SecretBytes>,
}

/// Reads an Argo CD cluster Secret's decoded `data`. Errors name the field, never a value.
pub fn parse_cluster_secret(
    data: &BTreeMap<String, SecretBytes>,
    labels: &StringMap,
) -> Result<ClusterSecret, String> {
    let text = |key: &str| -> Result<Option<String>, String> {
        data.get(key)
            .map(|v| {
                String::from_utf8(v.expose().to_vec())
                    .map_err(|_| format!("data.{key} is not UTF-8"))
            })
            .transpose()
    };
    let server = text("server")?
        .filter(|s| !s.trim().is_empty())
        .ok_or("data.server is missing: an Argo CD cluster Secret names the API server's URL")?;
    let name = text("name")?
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| server.clone());
    let config: ClusterConfig = match data.get("config") {
        None => ClusterConfig::default(),
        Some(raw) => serde_json::from_slice(raw.expose()).map_err(|e| {
            // serde_json's message names the position and the expected type, not the input.
            format!("data.config is not Argo CD's cluster config JSON: {e}")
        })?,
    };
    if config.aws_auth_config.is_some() {
        return Err(
            "data.config.awsAuthConfig is not supported: courier authenticates with a bearer token or a TLS client certificate\nhint: give courier a ServiceAccount token of the cluster (bearerToken)".into(),
        );
    }
    if config.exec_provider_config.is_some() {
        return Err(
            "data.config.execProviderConfig is not supported: courier runs no credential plugins\nhint: give courier a ServiceAccount token of the cluster (bearerToken)".into(),
        );
    }
    let labels = labels
        .iter()
        .filter(|(k, _)| !k.starts_with("argocd.argoproj.io/"))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    Ok(ClusterSecret {
        name,
        server,
        labels,
        config,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::load::load_str;

    fn labels(pairs: &[(&str, &str)]) -> StringMap {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    const MANIFESTS: &str = r#"
apiVersion: external-secrets.io/v1
kind: ClusterExternalSecret
metadata:
  name: everywhere-prod
  annotations:
    courier.dev/cluster-selector: "env in (prod,staging)"
spec:
  namespaceSelectors: [{matchLabels: {a: b}}]
  externalSecretSpec: {secretStoreRef: {name: s, kind: ClusterSecretStore}, dataFrom: [{extract: {key: src}}]}
---
apiVersion: external-secrets.io/v1
kind: ClusterExternalSecret
metadata:
  name: home-only
spec:
  namespaceSelectors: [{matchLabels: {a: b}}]
  externalSecretSpec: {secretStoreRef: {name: s, kind: ClusterSecretStore}, dataFrom: [{extract: {key: src}}]}
---
apiVersion: external-secrets.io/v1
kind: ExternalSecret
metadata:
  name: by-name
  namespace: team-a
  annotations:
    courier.dev/cluster-selector: "courier.dev/cluster-name=member-b"
spec:
  secretStoreRef: {name: s, kind: ClusterSecretStore}
  dataFrom: [{extract: {key: src}}]
"#;

    fn names(manifests: &Manifests) -> Vec<String> {
        manifests
            .cluster_external_secrets
            .iter()
            .map(|c| c.object.metadata.name.clone())
            .chain(
                manifests
                    .external_secrets
                    .iter()
                    .map(|e| e.object.metadata.name.clone()),
            )
            .collect()
    }

    #[test]
    fn each_member_gets_the_manifests_that_select_it() {
        let manifests = load_str("m.yaml", MANIFESTS).unwrap().manifests;
        let home = Member::new(HOME_CLUSTER, StringMap::new());
        let prod = Member::new("member-a", labels(&[("env", "prod")]));
        let dev = Member::new("member-b", labels(&[("env", "dev")]));
        assert_eq!(names(&manifests_for(&manifests, &home)), ["home-only"]);
        assert_eq!(
            names(&manifests_for(&manifests, &prod)),
            ["everywhere-prod"]
        );
        assert_eq!(names(&manifests_for(&manifests, &dev)), ["by-name"]);
        assert!(any_cluster_selector(&manifests));
        assert!(selecting_nothing(&manifests, &[home.clone(), prod.clone(), dev]).is_empty());
        let nothing: Vec<(String, String)> = selecting_nothing(&manifests, &[home, prod])
            .into_iter()
            .map(|(object, selector, _)| (object, selector))
            .collect();
        assert_eq!(
            nothing,
            [(
                "ExternalSecret/team-a/by-name".to_owned(),
                "courier.dev/cluster-name=member-b".to_owned()
            )]
        );
    }

    #[test]
    fn a_bad_selector_names_the_annotation_and_selects_nothing() {
        let annotations = labels(&[(CLUSTER_SELECTOR_ANNOTATION, "env in (prod")]);
        let error = cluster_selector(&annotations).unwrap_err();
        assert!(
            error.starts_with("metadata.annotations[courier.dev/cluster-selector]: "),
            "{error}"
        );
        assert!(!selects(
            &annotations,
            &Member::new(HOME_CLUSTER, StringMap::new())
        ));
    }

    fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, SecretBytes> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), SecretBytes::new(v.as_bytes().to_vec())))
            .collect()
    }

    #[test]
    fn argocd_cluster_secrets_are_read_as_argocd_writes_them() {
        let secret = parse_cluster_secret(
            &data(&[
                ("name", "prod-eu"),
                ("server", "https://10.0.0.1:6443"),
                (
                    "config",
                    r#"{"bearerToken":"tok","tlsClientConfig":{"insecure":false,"caData":"Q0E="}}"#,
                ),
            ]),
            &labels(&[
                ("argocd.argoproj.io/secret-type", "cluster"),
                ("env", "prod"),
            ]),
        )
        .unwrap();
        assert_eq!(secret.name, "prod-eu");
        assert_eq!(secret.server, "https://10.0.0.1:6443");
        assert_eq!(secret.labels, labels(&[("env", "prod")]));
        assert_eq!(secret.config.bearer_token.unwrap().expose(), b"tok");
        assert_eq!(
            secret.config.tls_client_config.ca_data.as_deref(),
            Some("Q0E=")
        );
        let unnamed = parse_cluster_secret(&data(&[("server", "https://x")]), &StringMap::new());
        assert_eq!(unnamed.unwrap().name, "https://x");
    }

    #[test]
    fn unusable_cluster_secrets_say_which_field_and_never_the_value() {
        let missing = parse_cluster_secret(&data(&[("name", "a")]), &StringMap::new());
        assert!(missing.unwrap_err().contains("data.server is missing"));
        let broken = parse_cluster_secret(
            &data(&[
                ("server", "https://x"),
                ("config", "{\"bearerToken\": s3cr3t"),
            ]),
            &StringMap::new(),
        )
        .unwrap_err();
        assert!(broken.starts_with("data.config is not"), "{broken}");
        assert!(!broken.contains("s3cr3t"), "{broken}");
        let aws = parse_cluster_secret(
            &data(&[
                ("server", "https://x"),
                ("config", r#"{"awsAuthConfig":{"clusterName":"c"}}"#),
            ]),
            &StringMap::new(),
        )
        .unwrap_err();
        assert!(aws.contains("awsAuthConfig is not supported"), "{aws}");
    }
}
