//! The clusters one courier writes to: the hub it talks to (`in-cluster`), and members
//! from Argo CD cluster Secrets on the hub and from kubeconfig contexts. Connections to
//! members are kept across `run`'s reconciles and rebuilt when their Secret changes.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Mutex;

use k8s_openapi::api::core::v1::Secret;
use kube::Config;
use kube::api::{Api, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use serde_json::json;

use crate::core::clusters::{self, HOME_CLUSTER, IN_CLUSTER_SERVER, Member};
use crate::core::model::StringMap;
use crate::core::secret_bytes::SecretBytes;
use crate::live::cluster::{ClusterError, Connection, connect_config};

/// The label Argo CD puts on its cluster Secrets.
pub const ARGOCD_SECRET_TYPE_LABEL: &str = "argocd.argoproj.io/secret-type";

/// Where the member clusters come from.
#[derive(Debug, Clone, Default)]
pub struct FleetOptions {
    /// A namespace of the hub holding Argo CD cluster Secrets.
    pub cluster_secrets_namespace: Option<String>,
    /// kubeconfig contexts, each a member named after it.
    pub contexts: Vec<String>,
    /// Every context of the kubeconfig but the hub's own.
    pub all_contexts: bool,
    /// The kubeconfig the contexts are read from (otherwise `KUBECONFIG` or `~/.kube/config`).
    pub kubeconfig: Option<PathBuf>,
    /// The hub's own context, left out of `all_contexts`.
    pub hub_context: Option<String>,
}

impl FleetOptions {
    /// Whether any member beyond the hub is configured.
    pub fn is_multi(&self) -> bool {
        self.cluster_secrets_namespace.is_some() || !self.contexts.is_empty() || self.all_contexts
    }
}

/// A cluster of this reconcile and how to reach it.
#[derive(Clone)]
pub struct MemberConnection {
    /// Name and labels.
    pub member: Member,
    /// The hub's own connection for `in-cluster`.
    pub connection: Connection,
}

/// A cluster that could not take part: its Secret or context is unusable, or it did not answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterFailure {
    /// The cluster's name (or, when it has none yet, where it was declared).
    pub cluster: String,
    /// The cluster with its labels, when they are known (its declaration was readable).
    pub member: Option<Member>,
    /// Why; names fields and objects, never a credential.
    pub message: String,
}

impl std::fmt::Display for ClusterFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "cluster {}: {}", self.cluster, self.message)
    }
}

/// The clusters of one reconcile.
pub struct Inventory {
    /// The hub first, then the members by name.
    pub members: Vec<MemberConnection>,
    /// Declared clusters that cannot be used.
    pub failures: Vec<ClusterFailure>,
}

/// What a member's cached connection was built from; a change rebuilds it.
#[derive(PartialEq, Eq)]
enum Declared {
    Secret { server: String, config: SecretBytes },
    Context(String),
}

/// The hub, and the member connections built so far.
pub struct Fleet {
    /// The cluster courier reads manifests and sources from.
    pub hub: Connection,
    /// Where members come from.
    pub options: FleetOptions,
    cache: Mutex<BTreeMap<String, (Declared, Connection)>>,
}

impl Fleet {
    /// A fleet of the hub alone: courier as it was before clusters were plural.
    pub fn single(hub: Connection) -> Self {
        Self::new(hub, FleetOptions::default())
    }

    /// A fleet with members from `options`.
    pub fn new(hub: Connection, options: FleetOptions) -> Self {
        Self {
            hub,
            options,
            cache: Mutex::new(BTreeMap::new()),
        }
    }

    /// Whether members beyond the hub are configured.
    pub fn is_multi(&self) -> bool {
        self.options.is_multi()
    }

    /// Every API request sent so far, to the hub and to every member.
    pub fn requests(&self) -> u64 {
        let members: u64 = self
            .cache
            .lock()
            .map(|cache| cache.values().map(|(_, c)| c.requests()).sum())
            .unwrap_or(0);
        self.hub.requests() + members
    }

    /// API requests sent to one cluster so far.
    pub fn requests_of(&self, cluster: &str) -> u64 {
        if cluster == HOME_CLUSTER {
            return self.hub.requests();
        }
        self.cache
            .lock()
            .ok()
            .and_then(|cache| cache.get(cluster).map(|(_, c)| c.requests()))
            .unwrap_or(0)
    }

    /// The clusters as declared now: one LIST of cluster Secrets on the hub (when they
    /// are the source) and the kubeconfig. A hub that cannot list them fails the
    /// reconcile; one unusable member fails alone.
    pub async fn inventory(&self) -> Result<Inventory, ClusterError> {
        let mut home_labels = StringMap::new();
        let mut declared: Vec<(Member, Declared, Result<Config, String>)> = Vec::new();
        let mut failures = Vec::new();
        if let Some(namespace) = &self.options.cluster_secrets_namespace {
            let listed = Api::<Secret>::namespaced(self.hub.client.clone(), namespace)
                .list(&ListParams::default().labels(&format!("{ARGOCD_SECRET_TYPE_LABEL}=cluster")))
                .await
                .map_err(|e| {
                    ClusterError::api(format!("list Argo CD cluster Secrets in {namespace}"), e)
                })?;
            for secret in listed.items {
                let secret_name = secret.metadata.name.clone().unwrap_or_default();
                let data: BTreeMap<String, SecretBytes> = secret
                    .data
                    .unwrap_or_default()
                    .into_iter()
                    .map(|(k, v)| (k, SecretBytes::new(v.0)))
                    .collect();
                let labels = secret.metadata.labels.unwrap_or_default();
                let parsed = match clusters::parse_cluster_secret(&data, &labels) {
                    Ok(parsed) => parsed,
                    Err(message) => {
                        failures.push(ClusterFailure {
                            cluster: format!("Secret {namespace}/{secret_name}"),
                            member: None,
                            message,
                        });
                        continue;
                    }
                };
                if parsed.server == IN_CLUSTER_SERVER || parsed.name == HOME_CLUSTER {
                    // Argo CD's own cluster: the hub. Its Secret only adds labels.
                    home_labels = parsed.labels;
                    continue;
                }
                let config = secret_config(&parsed).await;
                let fingerprint = Declared::Secret {
                    server: parsed.server.clone(),
                    config: data.get("config").cloned().unwrap_or_default(),
                };
                declared.push((
                    Member::new(&parsed.name, parsed.labels),
                    fingerprint,
                    config,
                ));
            }
        }
        if !self.options.contexts.is_empty() || self.options.all_contexts {
            let kubeconfig = match &self.options.kubeconfig {
                Some(path) => Kubeconfig::read_from(path).map_err(|e| {
                    ClusterError::Config(format!("cannot read kubeconfig {}: {e}", path.display()))
                })?,
                None => Kubeconfig::read().map_err(|e| ClusterError::Config(e.to_string()))?,
            };
            let hub_context = self
                .options
                .hub_context
                .clone()
                .or_else(|| kubeconfig.current_context.clone());
            let mut names = self.options.contexts.clone();
            if self.options.all_contexts {
                names.extend(
                    kubeconfig
                        .contexts
                        .iter()
                        .map(|c| c.name.clone())
                        .filter(|name| Some(name) != hub_context.as_ref()),
                );
            }
            names.dedup();
            for name in names {
                let options = KubeConfigOptions {
                    context: Some(name.clone()),
                    ..KubeConfigOptions::default()
                };
                let config = Config::from_custom_kubeconfig(kubeconfig.clone(), &options)
                    .await
                    .map_err(|e| format!("kubeconfig context {name:?}: {e}"));
                declared.push((
                    Member::new(&name, StringMap::new()),
                    Declared::Context(name),
                    config,
                ));
            }
        }

        let mut members = vec![MemberConnection {
            member: Member::new(HOME_CLUSTER, home_labels),
            connection: self.hub.clone(),
        }];
        let mut cache = self.cache.lock().unwrap_or_else(|e| e.into_inner());
        let mut seen = std::collections::BTreeSet::from([HOME_CLUSTER.to_owned()]);
        for (member, fingerprint, config) in declared {
            if !seen.insert(member.name.clone()) {
                failures.push(ClusterFailure {
                    cluster: member.name.clone(),
                    member: None,
                    message: "declared twice (two cluster Secrets or contexts with this name); neither copy is used after the first".into(),
                });
                continue;
            }
            let cached = cache
                .get(&member.name)
                .filter(|(declared, _)| *declared == fingerprint)
                .map(|(_, connection)| connection.clone());
            let connection = match cached {
                Some(connection) => connection,
                None => {
                    let built = config.and_then(|config| {
                        connect_config(config, self.hub.fence.clone()).map_err(|e| e.to_string())
                    });
                    match built {
                        Ok(connection) => {
                            cache.insert(member.name.clone(), (fingerprint, connection.clone()));
                            connection
                        }
                        Err(message) => {
                            failures.push(ClusterFailure {
                                cluster: member.name.clone(),
                                member: Some(member.clone()),
                                message,
                            });
                            continue;
                        }
                    }
                }
            };
            members.push(MemberConnection { member, connection });
        }
        cache.retain(|name, _| seen.contains(name));
        members[1..].sort_by(|a, b| a.member.name.cmp(&b.member.name));
        Ok(Inventory { members, failures })
    }
}

/// A client configuration from an Argo CD cluster Secret, built as a one-context kubeconfig
/// so kube reads the base64 PEM fields exactly as kubectl would.
async fn secret_config(secret: &clusters::ClusterSecret) -> Result<Config, String> {
    let tls = &secret.config.tls_client_config;
    let text = |value: &Option<SecretBytes>, field: &str| -> Result<Option<String>, String> {
        value
            .as_ref()
            .map(|v| {
                v.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| format!("data.config.{field} is not UTF-8"))
            })
            .transpose()
    };
    let mut user = serde_json::Map::new();
    if let Some(token) = text(&secret.config.bearer_token, "bearerToken")? {
        user.insert("token".into(), json!(token));
    }
    if let Some(username) = &secret.config.username {
        user.insert("username".into(), json!(username));
    }
    if let Some(password) = text(&secret.config.password, "password")? {
        user.insert("password".into(), json!(password));
    }
    if let Some(cert) = &tls.cert_data {
        user.insert("client-certificate-data".into(), json!(cert));
    }
    if let Some(key) = text(&tls.key_data, "tlsClientConfig.keyData")? {
        user.insert("client-key-data".into(), json!(key));
    }
    let mut cluster = serde_json::Map::new();
    cluster.insert("server".into(), json!(secret.server));
    if tls.insecure {
        cluster.insert("insecure-skip-tls-verify".into(), json!(true));
    }
    if let Some(ca) = &tls.ca_data {
        cluster.insert("certificate-authority-data".into(), json!(ca));
    }
    if let Some(name) = &tls.server_name {
        cluster.insert("tls-server-name".into(), json!(name));
    }
    let kubeconfig: Kubeconfig = serde_json::from_value(json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "member", "cluster": cluster}],
        "users": [{"name": "member", "user": user}],
        "contexts": [{"name": "member", "context": {"cluster": "member", "user": "member"}}],
        "current-context": "member",
    }))
    .map_err(|e| format!("data.config cannot be used as a client configuration: {e}"))?;
    Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(|e| format!("data.config cannot be used as a client configuration: {e}"))
}
