//! Reading the live cluster: a client (kubeconfig, context, impersonation, in-cluster
//! fallback) that counts its requests, and the world as a handful of LISTs.

use std::collections::BTreeMap;
use std::path::PathBuf;

use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Secret};
use kube::api::{Api, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

use crate::core::labels::{
    CREATION_POLICY_ANNOTATION, HUB_ANNOTATION, INSTANCE_LABEL, LEGACY_DATA_HASH_ANNOTATION,
    MANAGED_BY_LABEL, MANAGED_BY_VALUE, ORIGIN_ANNOTATION,
};
use crate::core::load::Manifests;
use crate::core::model::ExternalSecretSpec;
use crate::core::plan::store_namespaces;
use crate::core::secret_bytes::SecretBytes;
use crate::core::world::{BlockList, SourceSecret, World};
use crate::live::leader::{Fence, FenceLayer};
use crate::providers::{FetchContext, Registry};

/// A failed call to the API server. Messages come from the API server and name objects,
/// never values.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// No usable kubeconfig or in-cluster configuration.
    #[error("failed to configure the Kubernetes client: {0}")]
    Config(String),
    /// A request failed.
    #[error("failed to {action}: {message}{hint}")]
    Api {
        /// What courier was doing.
        action: String,
        /// The API server's answer.
        message: String,
        /// The HTTP status, when the server answered.
        code: Option<u16>,
        /// A `hint:` for errors with a known fix.
        hint: String,
    },
}

impl ClusterError {
    /// Wraps a kube error with what courier was doing.
    pub fn api(action: impl Into<String>, error: kube::Error) -> Self {
        let (message, code) = match &error {
            kube::Error::Api(status) => (
                format!("{} ({})", status.message, status.code),
                Some(status.code),
            ),
            other => (other.to_string(), None),
        };
        // A namespace being deleted answers 403 too; that is no missing permission.
        let terminating = message.contains("because it is being terminated");
        let hint = if code == Some(403) && !terminating {
            "\nhint: the identity courier runs as lacks this RBAC permission; in a cluster, the ClusterRole in charts/courier/templates/rbac.yaml (rendered in templates/install/) lists what apply and run need; for a CI diff, README.md's CI one-shot section does".to_owned()
        } else {
            String::new()
        };
        ClusterError::Api {
            action: action.into(),
            message,
            code,
            hint,
        }
    }

    /// Whether the API server answered with this HTTP status.
    pub fn is_status(&self, status: u16) -> bool {
        matches!(self, ClusterError::Api { code: Some(code), .. } if *code == status)
    }
}

/// How to reach the cluster.
#[derive(Debug, Clone, Default)]
pub struct ClientOptions {
    /// A kubeconfig file; otherwise `KUBECONFIG`, `~/.kube/config` or in-cluster.
    pub kubeconfig: Option<PathBuf>,
    /// A context of the kubeconfig.
    pub context: Option<String>,
    /// Act as this user (`--as`), e.g. `system:serviceaccount:ns:name`.
    pub impersonate: Option<String>,
}

/// A client, the number of HTTP requests it has sent, and what stores fetch with.
#[derive(Clone)]
pub struct Connection {
    /// The client.
    pub client: Client,
    /// Every HTTP request the client has sent, as a Prometheus counter (clones share it).
    /// Requests the stores' own clients send count too.
    pub request_counter: prometheus_client::metrics::counter::Counter,
    /// Write requests (not GET) the client let through its fence.
    pub write_counter: prometheus_client::metrics::counter::Counter,
    /// Open while this process may write (always, without leader election).
    pub fence: Fence,
    /// The same identity without the fence, for the leader Lease itself.
    pub unfenced: Client,
    /// For stores that read with an identity of their own: courier's client and
    /// configuration, and a ServiceAccount token cache that lives as long as the
    /// connection (across `run`'s reconciles).
    pub fetch: FetchContext,
}

impl Connection {
    /// Requests sent so far.
    pub fn requests(&self) -> u64 {
        self.request_counter.get()
    }
}

/// When no kubeconfig exists and courier runs outside a pod: say so plainly, with the fix.
fn nothing_configured() -> Option<String> {
    let in_pod = std::env::var_os("KUBERNETES_SERVICE_HOST").is_some();
    let from_env = std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty());
    let default = std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".kube/config"));
    if let Some(paths) = &from_env {
        // kube's own message quotes the path twice and gives no way forward.
        let missing: Vec<String> = std::env::split_paths(paths)
            .filter(|p| !p.as_os_str().is_empty() && !p.exists())
            .map(|p| p.display().to_string())
            .collect();
        if !missing.is_empty() {
            return Some(format!(
                "KUBECONFIG names {}, which does not exist\nhint: point KUBECONFIG (or --kubeconfig) at a kubeconfig file, or unset it to use ~/.kube/config or the pod's ServiceAccount",
                missing.join(", ")
            ));
        }
    }
    if in_pod || from_env.is_some() || default.as_ref().is_some_and(|p| p.exists()) {
        return None;
    }
    let place = default.map_or_else(|| "~/.kube/config".to_owned(), |p| p.display().to_string());
    Some(format!(
        "no cluster is configured: KUBECONFIG is not set, {place} does not exist, and courier is not running in a pod\nhint: pass --kubeconfig FILE (and --context NAME), or set KUBECONFIG"
    ))
}

/// Builds a client as kubectl would: the given kubeconfig and context, else the default
/// kubeconfig, else the in-cluster service account.
pub async fn connect(options: &ClientOptions) -> Result<Connection, ClusterError> {
    connect_fenced(options, Fence::always_open()).await
}

/// The longest any request but a watch may take. Generous: a LIST of 100,000 Secrets
/// takes seconds; a request on a connection that died silently would otherwise hang
/// `run` until TCP gives up, some fifteen minutes later.
const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// As [`connect`], with every write request checked against `fence` as it leaves.
pub async fn connect_fenced(
    options: &ClientOptions,
    fence: Fence,
) -> Result<Connection, ClusterError> {
    let kube_options = KubeConfigOptions {
        context: options.context.clone(),
        ..Default::default()
    };
    let mut config = match (&options.kubeconfig, &options.context) {
        (Some(path), _) => {
            let kubeconfig = Kubeconfig::read_from(path).map_err(|e| {
                ClusterError::Config(format!("cannot read kubeconfig {}: {e}", path.display()))
            })?;
            Config::from_custom_kubeconfig(kubeconfig, &kube_options)
                .await
                .map_err(|e| ClusterError::Config(e.to_string()))?
        }
        (None, Some(_)) => Config::from_kubeconfig(&kube_options)
            .await
            .map_err(|e| ClusterError::Config(e.to_string()))?,
        (None, None) => Config::infer()
            .await
            .map_err(|e| match nothing_configured() {
                Some(message) => ClusterError::Config(message),
                None => ClusterError::Config(e.to_string()),
            })?,
    };
    if let Some(user) = &options.impersonate {
        config.auth_info.impersonate = Some(user.clone());
    }
    connect_config(config, fence)
}

/// A connection for a client configuration: requests counted, writes fenced, every
/// request but a watch bounded by [`REQUEST_TIMEOUT`].
pub fn connect_config(config: Config, fence: Fence) -> Result<Connection, ClusterError> {
    let request_counter = prometheus_client::metrics::counter::Counter::<u64>::default();
    let counter = request_counter.clone();
    let count = tower::util::MapRequestLayer::new(move |request| {
        counter.inc();
        request
    });
    let write_counter = prometheus_client::metrics::counter::Counter::<u64>::default();
    let fenced = FenceLayer {
        fence: fence.clone(),
        writes: write_counter.clone(),
        timeout: REQUEST_TIMEOUT,
    };
    let builder = kube::client::ClientBuilder::try_from(config.clone())
        .map_err(|e| ClusterError::Config(e.to_string()))?
        .with_layer(&count);
    let unfenced = kube::client::ClientBuilder::try_from(config.clone())
        .map_err(|e| ClusterError::Config(e.to_string()))?
        .with_layer(&count)
        .build();
    let client = builder.with_layer(&fenced).build();
    let fetch = FetchContext::live(client.clone(), config, request_counter.clone());
    Ok(Connection {
        client,
        request_counter,
        write_counter,
        fence,
        unfenced,
        fetch,
    })
}

/// The field manager courier writes as.
pub const FIELD_MANAGER: &str = "courier";

/// A Secret courier manages, as listed.
#[derive(Debug, Clone)]
pub struct ManagedSecret {
    /// `courier.dev/instance`, when set.
    pub instance: Option<String>,
    /// `courier.dev/origin`.
    pub origin: Option<String>,
    /// `courier.dev/hub`: the hub that wrote it into this (member) cluster.
    pub hub: Option<String>,
    /// Whether it was written with `creationPolicy: Orphan`.
    pub orphan: bool,
    /// Whether courier merged its keys into a Secret it did not create (`creationPolicy: Merge`).
    pub merged: bool,
    /// For delete preconditions.
    pub resource_version: Option<String>,
    /// Where courier's create left its fields in `metadata.managedFields`: a create
    /// (POST) records them under (courier, Update), which server-side apply does not
    /// treat as its own. The index of that entry, and whether a (courier, Apply) entry
    /// exists beside it. Moved to Apply before an apply that needs it (see live::apply).
    pub created_fields: Option<CreatedFields>,
    /// What it holds; `None` when the listing found it to hold what courier writes
    /// (`current`). A reconcile keeps the content only of the Secrets it may write, so
    /// 100,000 targets in sync cost their identities alone.
    pub content: Option<Box<SecretContent>>,
    /// Found, when listed, to hold exactly what courier would write there now.
    pub current: bool,
    /// When courier last changed a field of it: the latest `time` of courier's
    /// `metadata.managedFields` entries (the API server moves it when a write changes
    /// what the manager owns, not on a no-op). Tells when a target whose template
    /// varies is due for its refresh.
    pub written_at: Option<jiff::Timestamp>,
}

/// A managed Secret's type, metadata and values, as listed.
#[derive(Debug, Clone)]
pub struct SecretContent {
    /// Type.
    pub type_: String,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Annotations.
    pub annotations: BTreeMap<String, String>,
    /// Values.
    pub data: BTreeMap<String, SecretBytes>,
    /// `immutable`.
    pub immutable: bool,
    /// `metadata.finalizers`.
    pub finalizers: Vec<String>,
}

/// The (courier, Update) entry a create left in `metadata.managedFields`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedFields {
    /// Its position in `metadata.managedFields` at `resource_version`.
    pub index: usize,
    /// Whether courier also has an Apply entry (then the two are merged into one).
    pub beside_apply: bool,
}

impl SecretContent {
    /// Whether it still carries the value digest earlier versions wrote.
    pub fn has_legacy_digest(&self) -> bool {
        self.annotations.contains_key(LEGACY_DATA_HASH_ANNOTATION)
    }
}

/// The live world plus what courier already manages.
#[derive(Debug, Default)]
pub struct Snapshot {
    /// Namespaces, source Secrets and (when templates need them) ConfigMaps.
    pub world: World,
    /// `(namespace, name)` of every Secret labelled as courier's: filled by
    /// [`list_managed`] once the plan is known (see `live::reconcile::plan_fleet`).
    pub managed: BTreeMap<(String, String), ManagedSecret>,
    /// The cluster's ID: the UID of its `kube-system` namespace (none when that is not listed).
    pub cluster_id: Option<String>,
}

fn specs(manifests: &Manifests) -> impl Iterator<Item = &ExternalSecretSpec> {
    manifests
        .cluster_external_secrets
        .iter()
        .map(|c| &c.object.spec.external_secret_spec)
        .chain(manifests.external_secrets.iter().map(|e| &e.object.spec))
}

/// Reads what planning needs: one LIST of namespaces, one LIST of Secrets per store
/// namespace, and ConfigMaps only when a template reads them, all at once (none depends
/// on another). No per-target GET. The Secrets courier manages are listed after planning
/// ([`list_managed`]).
pub async fn snapshot(
    client: &Client,
    manifests: &Manifests,
    block_list: &BlockList,
) -> Result<Snapshot, ClusterError> {
    let templates = specs(manifests)
        .filter_map(|s| s.target.template.as_ref())
        .flat_map(|t| &t.template_from);
    let (mut wants_config_maps, mut wants_secrets) = (false, false);
    for from in templates {
        wants_config_maps |= from.config_map.is_some();
        wants_secrets |= from.secret.is_some();
    }
    let store_secrets = store_namespaces(manifests, &Registry, true)
        .into_iter()
        .map(|namespace| async move {
            let listed = Api::<Secret>::namespaced(client.clone(), &namespace)
                .list(&ListParams::default())
                .await
                .map_err(|e| {
                    ClusterError::api(format!("list Secrets in store namespace {namespace}"), e)
                })?;
            Ok::<_, ClusterError>((namespace, listed.items))
        });
    let config_maps = async {
        if !wants_config_maps {
            return Ok(Vec::new());
        }
        Api::<ConfigMap>::all(client.clone())
            .list(&ListParams::default())
            .await
            .map(|list| list.items)
            .map_err(|e| ClusterError::api("list ConfigMaps (for templateFrom)", e))
    };
    let template_secrets = async {
        if !wants_secrets {
            return Ok(Vec::new());
        }
        Api::<Secret>::all(client.clone())
            .list(&ListParams::default())
            .await
            .map(|list| list.items)
            .map_err(|e| ClusterError::api("list Secrets (for templateFrom)", e))
    };
    let (namespaces, store_secrets, config_maps, template_secrets) = futures::try_join!(
        list_namespaces(client),
        futures::future::try_join_all(store_secrets),
        config_maps,
        template_secrets,
    )?;

    let mut world = World {
        block_list: block_list.clone(),
        live: true,
        ..World::default()
    };
    let cluster_id = add_namespaces(&mut world, namespaces);
    for (namespace, secrets) in store_secrets {
        for secret in secrets {
            let name = secret.metadata.name.clone().unwrap_or_default();
            world.add_secret(&namespace, &name, source_secret(secret));
        }
    }
    for config_map in config_maps {
        let meta = config_map.metadata;
        world
            .config_maps
            .entry(meta.namespace.unwrap_or_default())
            .or_default()
            .insert(
                meta.name.unwrap_or_default(),
                config_map.data.unwrap_or_default(),
            );
    }
    for secret in template_secrets {
        let namespace = secret.metadata.namespace.clone().unwrap_or_default();
        let name = secret.metadata.name.clone().unwrap_or_default();
        if world.secret(&namespace, &name).is_none() {
            world.add_secret(&namespace, &name, source_secret(secret));
        }
    }
    Ok(Snapshot {
        world,
        managed: BTreeMap::new(),
        cluster_id,
    })
}

async fn list_namespaces(client: &Client) -> Result<Vec<Namespace>, ClusterError> {
    Api::<Namespace>::all(client.clone())
        .list(&ListParams::default())
        .await
        .map(|list| list.items)
        .map_err(|e| ClusterError::api("list namespaces", e))
}

/// Adds every namespace with its labels to `world`; answers the cluster's ID.
fn add_namespaces(world: &mut World, namespaces: Vec<Namespace>) -> Option<String> {
    let mut cluster_id = None;
    for namespace in namespaces {
        let name = namespace.metadata.name.unwrap_or_default();
        if name == "kube-system" {
            cluster_id = namespace.metadata.uid;
        }
        let phase = namespace.status.and_then(|s| s.phase);
        if namespace.metadata.deletion_timestamp.is_some()
            || phase.as_deref() == Some("Terminating")
        {
            world.terminating.insert(name.clone());
        }
        world.add_namespace(&name, namespace.metadata.labels.unwrap_or_default());
    }
    cluster_id
}

/// What a member cluster adds to the hub's world: its namespaces (which its targets are
/// selected from). One LIST; sources come from the hub, managed Secrets are listed after
/// planning.
pub async fn member_snapshot(client: &Client) -> Result<Snapshot, ClusterError> {
    let mut world = World {
        live: true,
        ..World::default()
    };
    let cluster_id = add_namespaces(&mut world, list_namespaces(client).await?);
    Ok(Snapshot {
        world,
        managed: BTreeMap::new(),
        cluster_id,
    })
}

/// A Secret as `list_managed` reads it: only what reconciling needs. Skipping
/// `managedFields` (a JSON tree per object) keeps a 10,000-target LIST small in memory.
#[derive(serde::Deserialize, Clone)]
struct LeanSecret {
    metadata: LeanMeta,
    #[serde(default, rename = "type")]
    type_: Option<String>,
    #[serde(default)]
    data: Option<BTreeMap<String, String>>,
    #[serde(default)]
    immutable: Option<bool>,
}

#[derive(serde::Deserialize, Clone)]
#[serde(rename_all = "camelCase")]
struct LeanMeta {
    #[serde(default)]
    name: String,
    #[serde(default)]
    namespace: String,
    #[serde(default)]
    resource_version: Option<String>,
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
    #[serde(default)]
    annotations: Option<BTreeMap<String, String>>,
    #[serde(default)]
    finalizers: Option<Vec<String>>,
    /// Who wrote which fields; only the entries' identity is read, not their field sets.
    #[serde(default)]
    managed_fields: Option<Vec<LeanFieldsEntry>>,
}

#[derive(serde::Deserialize, Clone)]
struct LeanFieldsEntry {
    #[serde(default)]
    manager: Option<String>,
    #[serde(default)]
    operation: Option<String>,
    #[serde(default)]
    subresource: Option<String>,
    #[serde(default)]
    time: Option<String>,
}

/// The latest time courier's field manager wrote the main resource.
fn written_at(entries: &[LeanFieldsEntry]) -> Option<jiff::Timestamp> {
    entries
        .iter()
        .filter(|e| {
            e.manager.as_deref() == Some(FIELD_MANAGER)
                && e.subresource.as_deref().unwrap_or("").is_empty()
        })
        .filter_map(|e| e.time.as_deref()?.parse::<jiff::Timestamp>().ok())
        .max()
}

/// Finds the (courier, Update) entry of the main resource a create left behind.
fn created_fields(entries: &[LeanFieldsEntry]) -> Option<CreatedFields> {
    let courier = |entry: &LeanFieldsEntry, operation: &str| {
        entry.manager.as_deref() == Some(FIELD_MANAGER)
            && entry.operation.as_deref() == Some(operation)
            && entry.subresource.as_deref().unwrap_or("").is_empty()
    };
    let index = entries.iter().position(|e| courier(e, "Update"))?;
    Some(CreatedFields {
        index,
        beside_apply: entries.iter().any(|e| courier(e, "Apply")),
    })
}

/// Managed Secrets per LIST page. A page's response body is held whole while it is
/// decoded (about 2 KB per Secret with its managedFields), so this bounds that memory to
/// some 20 MB at any scale, and 10,000 targets are still listed in one request.
const MANAGED_PAGE: u32 = 10_000;

/// Every Secret labelled `app.kubernetes.io/managed-by=courier`, in every namespace,
/// listed in pages. `is_current` is asked of each as it is decoded; the content of those
/// it answers true for is not kept (see [`ManagedSecret::content`]).
pub async fn list_managed(
    client: &Client,
    is_current: impl Fn(&str, &str, &ManagedSecret) -> bool,
) -> Result<BTreeMap<(String, String), ManagedSecret>, ClusterError> {
    list_managed_in_pages(client, MANAGED_PAGE, is_current).await
}

/// [`list_managed`] with pages of `page` Secrets (the tests page by a few).
pub async fn list_managed_in_pages(
    client: &Client,
    page: u32,
    is_current: impl Fn(&str, &str, &ManagedSecret) -> bool,
) -> Result<BTreeMap<(String, String), ManagedSecret>, ClusterError> {
    let selector = format!("{MANAGED_BY_LABEL}={MANAGED_BY_VALUE}");
    let first_page = ListParams::default().labels(&selector).limit(page);
    let mut managed = BTreeMap::new();
    let mut params = first_page.clone();
    let mut restarted = false;
    loop {
        let request = kube::core::Request::new("/api/v1/secrets")
            .list(&params)
            .map_err(|e| ClusterError::Config(e.to_string()))?;
        let page: kube::core::ObjectList<LeanSecret> = match client.request(request).await {
            Ok(page) => page,
            // The continue token outlived the API server's history (410 Gone): one
            // fresh listing from the first page, so every page is of one version.
            Err(kube::Error::Api(status))
                if status.code == 410 && params.continue_token.is_some() && !restarted =>
            {
                restarted = true;
                managed.clear();
                params = first_page.clone();
                continue;
            }
            Err(e) => return Err(ClusterError::api("list courier-managed Secrets", e)),
        };
        for secret in page.items {
            let (key, mut listed) = managed_secret(secret);
            listed.current = is_current(&key.0, &key.1, &listed);
            if listed.current {
                listed.content = None;
            }
            managed.insert(key, listed);
        }
        match page.metadata.continue_ {
            Some(token) if !token.is_empty() => params = params.continue_token(&token),
            _ => return Ok(managed),
        }
    }
}

/// One listed Secret as courier keeps it, with its content.
fn managed_secret(secret: LeanSecret) -> ((String, String), ManagedSecret) {
    let engine = &base64::engine::general_purpose::STANDARD;
    let meta = secret.metadata;
    let labels = meta.labels.unwrap_or_default();
    let annotations = meta.annotations.unwrap_or_default();
    let data = secret
        .data
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| {
            (
                k,
                SecretBytes::new(base64::Engine::decode(engine, v).unwrap_or_default()),
            )
        })
        .collect();
    let creation_policy = annotations.get(CREATION_POLICY_ANNOTATION);
    let managed = ManagedSecret {
        instance: labels.get(INSTANCE_LABEL).cloned(),
        origin: annotations.get(ORIGIN_ANNOTATION).cloned(),
        hub: annotations.get(HUB_ANNOTATION).cloned(),
        orphan: creation_policy.is_some_and(|p| p == "Orphan"),
        merged: creation_policy.is_some_and(|p| p == "Merge"),
        resource_version: meta.resource_version,
        created_fields: meta.managed_fields.as_deref().and_then(created_fields),
        written_at: meta.managed_fields.as_deref().and_then(written_at),
        content: Some(Box::new(SecretContent {
            type_: secret.type_.unwrap_or_else(|| "Opaque".into()),
            labels,
            annotations,
            data,
            immutable: secret.immutable.unwrap_or(false),
            finalizers: meta.finalizers.unwrap_or_default(),
        })),
        current: false,
    };
    ((meta.namespace, meta.name), managed)
}

fn decoded(
    data: Option<BTreeMap<String, k8s_openapi::ByteString>>,
) -> BTreeMap<String, SecretBytes> {
    data.unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, SecretBytes::new(v.0)))
        .collect()
}

fn source_secret(secret: Secret) -> SourceSecret {
    SourceSecret {
        labels: secret.metadata.labels.unwrap_or_default(),
        annotations: secret.metadata.annotations.unwrap_or_default(),
        type_: secret.type_.unwrap_or_else(|| "Opaque".into()),
        data: decoded(secret.data),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(manager: &str, operation: &str, subresource: Option<&str>) -> LeanFieldsEntry {
        LeanFieldsEntry {
            manager: Some(manager.into()),
            operation: Some(operation.into()),
            subresource: subresource.map(str::to_owned),
            time: None,
        }
    }

    #[test]
    fn courier_s_last_write_is_its_latest_entry_of_the_main_resource() {
        let at = |manager: &str, subresource: Option<&str>, time: &str| LeanFieldsEntry {
            time: Some(time.into()),
            ..entry(manager, "Apply", subresource)
        };
        let written = written_at(&[
            at("courier", None, "2026-01-01T10:00:00Z"),
            at("courier", None, "2026-01-01T11:00:00Z"),
            at("kubectl", None, "2026-01-01T12:00:00Z"),
            at("courier", Some("status"), "2026-01-01T13:00:00Z"),
        ]);
        assert_eq!(written, "2026-01-01T11:00:00Z".parse().ok());
        assert_eq!(written_at(&[entry("courier", "Update", None)]), None);
    }

    #[test]
    fn a_create_s_update_entry_is_found_and_others_are_not_taken_for_it() {
        assert_eq!(created_fields(&[entry("courier", "Apply", None)]), None);
        assert_eq!(
            created_fields(&[
                entry("kubectl", "Update", None),
                entry("courier", "Update", Some("status")),
                entry("courier", "Update", None),
            ]),
            Some(CreatedFields {
                index: 2,
                beside_apply: false
            })
        );
        assert_eq!(
            created_fields(&[
                entry("courier", "Apply", None),
                entry("courier", "Update", Some(""))
            ]),
            Some(CreatedFields {
                index: 1,
                beside_apply: true
            })
        );
    }
}
