//! Collection, the seeds' secret sync in the other direction: Secrets that teams create in
//! member clusters, opted in by the Akuity labels, copied into the hub (Argo CD's namespace,
//! or a Kargo project's). The platform team sets the policy (a `SecretCollection` in
//! courier's own API group) on the hub; a member only opts Secrets in. Pure: the planner
//! takes what was listed and returns the writes; `live::collect` lists and writes.

use std::collections::{BTreeMap, BTreeSet};

use serde::Deserialize;

use crate::core::clusters::Member;
use crate::core::model::StringMap;
use crate::core::secret_bytes::SecretBytes;
use crate::core::select::{Selector, is_dns_subdomain};
use crate::core::world::{BlockList, SourceSecret};

/// The policy's apiVersion: courier's own group, which no ESO CRD serves.
pub const API_VERSION: &str = "collect.courier.dev/v1alpha1";
/// The policy's kind.
pub const KIND: &str = "SecretCollection";
/// Opt-in for Argo CD (seed 001): `"true"` copies into the hub's Argo CD namespace.
pub const ARGOCD_SYNC_LABEL: &str = "akuity.io/secret-sync";
/// Opt-in for Kargo (seed 000): the project (or shared namespace) to copy into.
pub const KARGO_SYNC_LABEL: &str = "kargo.akuity.io/secret-sync";
/// Kargo's credential type, required with [`KARGO_SYNC_LABEL`].
pub const KARGO_CRED_TYPE_LABEL: &str = "kargo.akuity.io/cred-type";
/// The label Kargo puts on a project's namespace.
pub const KARGO_PROJECT_LABEL: &str = "kargo.akuity.io/project";
/// Kargo's credential types.
pub const KARGO_CRED_TYPES: [&str; 4] = ["git", "helm", "image", "generic"];
/// `app.kubernetes.io/managed-by` on a collected copy: not `courier`, so `apply`'s pruning
/// of ESO targets never sees copies, and collection never sees ESO targets.
pub const MANAGED_BY_VALUE: &str = "courier-collect";
/// Label on a copy: the member cluster that owns it (first create wins).
pub const COLLECTED_FROM_LABEL: &str = "courier.dev/collected-from";
/// Annotation on a copy: `cluster/namespace/name` of its source.
pub const SOURCE_ANNOTATION: &str = "courier.dev/collected-source";
/// Label on the Secret keeping an adopted Secret's previous content: the adopted name.
pub const PREVIOUS_OF_LABEL: &str = "courier.dev/previous-of";
/// Annotation on that Secret: the adopted Secret's type, labels and annotations (JSON).
pub const PREVIOUS_METADATA_ANNOTATION: &str = "courier.dev/previous-metadata";
/// Prefix of the name of the Secret keeping an adopted Secret's previous content.
pub const PREVIOUS_PREFIX: &str = "courier-previous-";
/// Hub Secrets a member's copy may take over (seed 001); they exist before any sync.
pub const ADOPTABLE: [&str; 3] = [
    "argocd-notifications-secret",
    "argocd-image-updater-secret",
    "application-set-secret",
];

/// A validated `SecretCollection`.
#[derive(Debug, Clone)]
pub struct Policy {
    /// `metadata.name`.
    pub name: String,
    /// Which member clusters (over the inventory's cluster labels).
    pub clusters: Selector,
    /// Which Secrets, in `namespace` of each member, besides the opt-in labels.
    pub secrets: Selector,
    /// The member namespace Secrets are collected from (`akuity`, as the agent's).
    pub namespace: String,
    /// The hub namespace `akuity.io/secret-sync` copies into.
    pub argocd_namespace: String,
    /// The hub namespaces, besides projects, `kargo.akuity.io/secret-sync` may name.
    pub kargo_shared_namespaces: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PolicyDocument {
    #[allow(dead_code)]
    api_version: String,
    #[allow(dead_code)]
    kind: String,
    metadata: PolicyMetadata,
    spec: PolicySpec,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyMetadata {
    name: String,
    #[serde(default)]
    #[allow(dead_code)]
    labels: StringMap,
    #[serde(default)]
    #[allow(dead_code)]
    annotations: StringMap,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct PolicySpec {
    #[serde(default)]
    cluster_selector: Option<String>,
    #[serde(default)]
    secret_selector: Option<String>,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    argocd_namespace: Option<String>,
    #[serde(default)]
    kargo_shared_namespaces: Option<Vec<String>>,
}

/// Whether a YAML document is a collection policy (by apiVersion and kind).
pub fn is_policy(api_version: &str, kind: &str) -> bool {
    kind == KIND && api_version.starts_with("collect.courier.dev/")
}

/// Reads one `SecretCollection` document; the error names the field, never a value.
pub fn parse_policy(value: serde_json::Value) -> Result<Policy, String> {
    let api_version = value
        .get("apiVersion")
        .and_then(|v| v.as_str())
        .unwrap_or_default()
        .to_owned();
    if api_version != API_VERSION {
        return Err(format!(
            "apiVersion {api_version:?} is not served; hint: use {API_VERSION}"
        ));
    }
    let document: PolicyDocument = serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let message = crate::core::redact::scrub_serde_message(&e.into_inner().to_string());
        // serde lists the known fields; name the nearest one as the fix.
        let hint = message
            .strip_prefix("unknown field `")
            .and_then(|rest| rest.split('`').next())
            .and_then(|field| {
                crate::core::suggest::did_you_mean(
                    field,
                    [
                        "clusterSelector",
                        "secretSelector",
                        "namespace",
                        "argocdNamespace",
                        "kargoSharedNamespaces",
                        "name",
                        "labels",
                        "annotations",
                    ],
                )
            })
            .map(|known| format!("; hint: did you mean `{known}`?"))
            .unwrap_or_default();
        format!("{path}: {message}{hint}")
    })?;
    let name = document.metadata.name;
    if !is_dns_subdomain(&name) {
        return Err("metadata.name is not a DNS subdomain".into());
    }
    let spec = document.spec;
    let blank = |s: &Option<String>| s.as_deref().is_none_or(|s| s.trim().is_empty());
    if blank(&spec.cluster_selector) && blank(&spec.secret_selector) {
        return Err(
            "spec.clusterSelector and spec.secretSelector are both empty; hint: set at least one, as the seed's Secret Source requires (`clusterSelector: \"env in (prod)\"`, or `secretSelector: \"team=platform\"`)".into(),
        );
    }
    let selector = |field: &str, text: &Option<String>| match text.as_deref() {
        None => Ok(Selector::everything()),
        Some(text) if text.trim().is_empty() => Ok(Selector::everything()),
        Some(text) => Selector::parse(text).map_err(|e| format!("spec.{field}: {e}")),
    };
    let clusters = selector("clusterSelector", &spec.cluster_selector)?;
    let secrets = selector("secretSelector", &spec.secret_selector)?;
    let namespace_field = |field: &str, value: Option<String>, default: &str| {
        let value = value.unwrap_or_else(|| default.to_owned());
        if crate::core::select::validate_value(&value).is_err()
            || !is_dns_subdomain(&value)
            || value.contains('.')
        {
            return Err(format!("spec.{field} is not a namespace name"));
        }
        Ok(value)
    };
    let namespace = namespace_field("namespace", spec.namespace, "akuity")?;
    let argocd_namespace = namespace_field("argocdNamespace", spec.argocd_namespace, "argocd")?;
    let kargo_shared_namespaces = spec
        .kargo_shared_namespaces
        .unwrap_or_else(|| vec!["kargo-shared-resources".to_owned()])
        .into_iter()
        .map(|n| namespace_field("kargoSharedNamespaces[]", Some(n), ""))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Policy {
        name,
        clusters,
        secrets,
        namespace,
        argocd_namespace,
        kargo_shared_namespaces,
    })
}

/// Every SecretCollection among `passthrough`, validated; any other object is an error.
/// Errors name file, line of the field and the policy, never a value.
pub fn parse_policies(
    passthrough: Vec<crate::core::load::Loaded<serde_json::Value>>,
) -> (Vec<Policy>, Vec<String>) {
    let mut errors = Vec::new();
    let mut found = Vec::new();
    let mut names = BTreeSet::new();
    for loaded in passthrough {
        let api_version = loaded.object["apiVersion"].as_str().unwrap_or_default();
        let kind = loaded.object["kind"].as_str().unwrap_or_default();
        if !is_policy(api_version, kind) {
            errors.push(format!(
                "{}: {kind} {api_version} is not a SecretCollection; hint: collect takes only SecretCollection policies (collect.courier.dev/v1alpha1)",
                loaded.origin
            ));
            continue;
        }
        let display = format!(
            "SecretCollection/{}",
            loaded.object["metadata"]["name"]
                .as_str()
                .unwrap_or("<unnamed>")
        );
        let file_text = std::fs::read_to_string(loaded.origin.file.to_string()).ok();
        match parse_policy(loaded.object) {
            Ok(policy) => {
                if !names.insert(policy.name.clone()) {
                    errors.push(format!(
                        "{}: SecretCollection/{} is declared twice",
                        loaded.origin, policy.name
                    ));
                }
                found.push(policy);
            }
            Err(message) => {
                // Point at the field's own line when the file can be read again.
                let mut origin = loaded.origin.clone();
                let field = message.split(':').next().unwrap_or_default();
                if let Some(line) = file_text
                    .as_deref()
                    .and_then(|text| crate::core::fieldline::field_line(text, origin.line, field))
                {
                    origin.line = line;
                }
                errors.push(format!("{origin}: {display}: {message}"));
            }
        }
    }
    (found, errors)
}

/// For the ESO commands: a SecretCollection among their inputs is a mistake (it would be
/// ignored), named with the command that reads it.
pub fn refuse_policies(
    passthrough: &[crate::core::load::Loaded<serde_json::Value>],
) -> Vec<String> {
    passthrough
        .iter()
        .filter(|loaded| {
            is_policy(
                loaded.object["apiVersion"].as_str().unwrap_or_default(),
                loaded.object["kind"].as_str().unwrap_or_default(),
            )
        })
        .map(|loaded| {
            format!(
                "{}: SecretCollection/{} is read by `courier collect`, not by this command; hint: keep collection policies in their own files and pass them to `courier collect`",
                loaded.origin,
                loaded.object["metadata"]["name"].as_str().unwrap_or("<unnamed>")
            )
        })
        .collect()
}

/// A Secret listed in a member's collection namespace.
#[derive(Debug, Clone)]
pub struct MemberSecret {
    /// Its name.
    pub name: String,
    /// Its namespace.
    pub namespace: String,
    /// `metadata.creationTimestamp` (RFC 3339): the first create wins a name.
    pub created: String,
    /// Content.
    pub secret: SourceSecret,
}

/// What one member gave this pass.
#[derive(Debug, Clone)]
pub struct MemberListing {
    /// The cluster.
    pub member: Member,
    /// Its opted-in Secrets, or why they could not be listed (the member fails alone and
    /// its copies stay).
    pub secrets: Result<Vec<MemberSecret>, String>,
}

/// A Secret on the hub that collection may touch: its copies, the Secrets at the places
/// copies go, and saved previous contents.
#[derive(Debug, Clone, Default)]
pub struct HubSecret {
    /// Content.
    pub secret: SourceSecret,
}

/// The hub as this pass saw it.
#[derive(Debug, Clone, Default)]
pub struct Hub {
    /// Namespaces and their labels.
    pub namespaces: BTreeMap<String, StringMap>,
    /// Secrets by (namespace, name).
    pub secrets: BTreeMap<(String, String), HubSecret>,
    /// Clusters the inventory lists (reachable or not): copies from a cluster not in it
    /// are kept, and a warning says so.
    pub declared_clusters: BTreeSet<String>,
}

/// A Secret collection writes on the hub.
#[derive(Debug, Clone, PartialEq)]
pub struct Copy {
    /// Type.
    pub type_: String,
    /// Labels.
    pub labels: StringMap,
    /// Annotations.
    pub annotations: StringMap,
    /// Values.
    pub data: BTreeMap<String, SecretBytes>,
}

/// One write on the hub.
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    /// Create or replace (namespace, name) with this content.
    Put {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// Content.
        content: Copy,
        /// Whether it exists (replace) or not (create).
        exists: bool,
        /// The cluster whose Secret this is.
        cluster: String,
        /// `create`, `update`, `adopt`, `restore`, `save`: for messages and counts.
        verb: &'static str,
    },
    /// Delete (namespace, name).
    Delete {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
        /// The cluster whose copy it was (or the adopted name, for a saved content).
        cluster: String,
    },
}

impl Write {
    /// `namespace/name`.
    pub fn target(&self) -> String {
        match self {
            Write::Put {
                namespace, name, ..
            }
            | Write::Delete {
                namespace, name, ..
            } => format!("{namespace}/{name}"),
        }
    }
}

/// A member Secret that could not be collected: names cluster and Secret, never a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// `cluster/namespace/name`, or the cluster alone.
    pub source: String,
    /// Why.
    pub message: String,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.source, self.message)
    }
}

/// What a pass does.
#[derive(Debug, Clone, Default)]
pub struct CollectPlan {
    /// Writes, in order (saves before adoptions, restores before deleting saves).
    pub writes: Vec<Write>,
    /// Secrets and clusters that failed.
    pub failures: Vec<Failure>,
    /// Not failures, but worth a line: copies kept from undeclared clusters.
    pub warnings: Vec<String>,
    /// Copies already as wanted.
    pub unchanged: usize,
}

/// Where one member Secret's copies go, with the policy's namespaces.
fn destinations(
    policy: &Policy,
    cluster: &str,
    secret: &MemberSecret,
    hub: &Hub,
) -> Result<Vec<String>, String> {
    let labels = &secret.secret.labels;
    let mut out = Vec::new();
    match labels.get(ARGOCD_SYNC_LABEL).map(String::as_str) {
        Some("true") => out.push(policy.argocd_namespace.clone()),
        Some(other) => {
            return Err(format!(
                "label {ARGOCD_SYNC_LABEL} is {other:?}; hint: the opt-in value is \"true\""
            ));
        }
        None => {}
    }
    if let Some(project) = labels.get(KARGO_SYNC_LABEL) {
        match labels.get(KARGO_CRED_TYPE_LABEL) {
            // Seed 000: without the cred-type label the Secret is ignored.
            None => {
                tracing::debug!(
                    "{cluster}/{}/{}: {KARGO_SYNC_LABEL} without {KARGO_CRED_TYPE_LABEL}: ignored, as the seed's agent does",
                    secret.namespace,
                    secret.name
                );
            }
            Some(cred_type) if !KARGO_CRED_TYPES.contains(&cred_type.as_str()) => {
                return Err(format!(
                    "label {KARGO_CRED_TYPE_LABEL} is {cred_type:?}; hint: one of git, helm, image, generic"
                ));
            }
            Some(_) => {
                let shared = policy.kargo_shared_namespaces.contains(project);
                match hub.namespaces.get(project) {
                    None => {
                        return Err(format!(
                            "Kargo project {project:?} (label {KARGO_SYNC_LABEL}) does not exist on the hub"
                        ));
                    }
                    Some(ns_labels)
                        if !shared
                            && ns_labels.get(KARGO_PROJECT_LABEL).map(String::as_str)
                                != Some("true") =>
                    {
                        return Err(format!(
                            "namespace {project:?} (label {KARGO_SYNC_LABEL}) is not a Kargo project (no label {KARGO_PROJECT_LABEL}=true) nor one of the shared namespaces {:?}",
                            policy.kargo_shared_namespaces
                        ));
                    }
                    Some(_) => out.push(project.clone()),
                }
            }
        }
    }
    if out
        .iter()
        .any(|ns| ns == &policy.argocd_namespace && !hub.namespaces.contains_key(ns))
    {
        return Err(format!(
            "the hub has no namespace {:?} (the policy's argocdNamespace)",
            policy.argocd_namespace
        ));
    }
    Ok(out)
}

/// The copy of a member Secret: its type, values, labels and annotations, without the
/// opt-in labels, with who owns it.
fn copy_of(cluster: &str, secret: &MemberSecret, instance: &str) -> Copy {
    let mut labels: StringMap = secret
        .secret
        .labels
        .iter()
        .filter(|(k, _)| k.as_str() != ARGOCD_SYNC_LABEL && k.as_str() != KARGO_SYNC_LABEL)
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    labels.insert(
        crate::core::labels::MANAGED_BY_LABEL.into(),
        MANAGED_BY_VALUE.into(),
    );
    labels.insert(crate::core::labels::INSTANCE_LABEL.into(), instance.into());
    labels.insert(COLLECTED_FROM_LABEL.into(), cluster.into());
    let mut annotations: StringMap = secret
        .secret
        .annotations
        .iter()
        .filter(|(k, _)| k.as_str() != "kubectl.kubernetes.io/last-applied-configuration")
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    annotations.insert(
        SOURCE_ANNOTATION.into(),
        format!("{cluster}/{}/{}", secret.namespace, secret.name),
    );
    Copy {
        type_: secret.secret.type_.clone(),
        labels,
        annotations,
        data: secret.secret.data.clone(),
    }
}

fn same(existing: &SourceSecret, copy: &Copy) -> bool {
    existing.type_ == copy.type_
        && existing.labels == copy.labels
        && existing.annotations == copy.annotations
        && existing.data == copy.data
}

/// Which collection instance and cluster own a hub Secret, if it is a copy.
fn copy_owner(secret: &SourceSecret) -> Option<(&str, &str)> {
    (secret
        .labels
        .get(crate::core::labels::MANAGED_BY_LABEL)
        .map(String::as_str)
        == Some(MANAGED_BY_VALUE))
    .then(|| {
        (
            secret
                .labels
                .get(crate::core::labels::INSTANCE_LABEL)
                .map_or("", String::as_str),
            secret
                .labels
                .get(COLLECTED_FROM_LABEL)
                .map_or("", String::as_str),
        )
    })
}

/// The previous content of an adopted Secret, kept aside.
fn saved_previous(name: &str, previous: &SourceSecret, instance: &str) -> Copy {
    let metadata = serde_json::json!({
        "type": previous.type_,
        "labels": previous.labels,
        "annotations": previous.annotations,
    });
    Copy {
        type_: "Opaque".into(),
        labels: [
            (
                crate::core::labels::MANAGED_BY_LABEL.to_owned(),
                MANAGED_BY_VALUE.to_owned(),
            ),
            (
                crate::core::labels::INSTANCE_LABEL.to_owned(),
                instance.to_owned(),
            ),
            (PREVIOUS_OF_LABEL.to_owned(), name.to_owned()),
        ]
        .into(),
        annotations: [(
            PREVIOUS_METADATA_ANNOTATION.to_owned(),
            metadata.to_string(),
        )]
        .into(),
        data: previous.data.clone(),
    }
}

/// The adopted Secret as it was, from its saved copy.
fn restored(saved: &SourceSecret) -> Copy {
    #[derive(Deserialize, Default)]
    struct Metadata {
        #[serde(rename = "type", default)]
        type_: String,
        #[serde(default)]
        labels: StringMap,
        #[serde(default)]
        annotations: StringMap,
    }
    let metadata: Metadata = saved
        .annotations
        .get(PREVIOUS_METADATA_ANNOTATION)
        .and_then(|text| serde_json::from_str(text).ok())
        .unwrap_or_default();
    Copy {
        type_: if metadata.type_.is_empty() {
            "Opaque".into()
        } else {
            metadata.type_
        },
        labels: metadata.labels,
        annotations: metadata.annotations,
        data: saved.data.clone(),
    }
}

/// A cluster wanting a copy at a place: (its Secret's creation time, cluster, copy).
type Candidate = (String, String, Copy);

/// One collection pass: every policy over every member's listing, against the hub.
pub fn plan(
    policies: &[Policy],
    members: &[MemberListing],
    hub: &Hub,
    block_list: &BlockList,
    instance: &str,
) -> CollectPlan {
    let mut result = CollectPlan::default();
    // Per destination, the candidates: (created, cluster, copy).
    let mut wanted: BTreeMap<(String, String), Vec<Candidate>> = BTreeMap::new();
    // Clusters whose copies must stay as they are this pass (not reached, or a Secret of
    // theirs failed: what it had stays).
    let mut frozen_clusters: BTreeSet<String> = BTreeSet::new();
    let mut frozen_sources: BTreeSet<String> = BTreeSet::new();
    let mut listed_clusters: BTreeSet<String> = BTreeSet::new();
    for listing in members {
        let cluster = &listing.member.name;
        let selecting: Vec<&Policy> = policies
            .iter()
            .filter(|p| p.clusters.matches(&listing.member.labels))
            .collect();
        if selecting.is_empty() {
            // Not selected (any more): its copies go, as with a removed opt-in label.
            listed_clusters.insert(cluster.clone());
            continue;
        }
        let secrets = match &listing.secrets {
            Ok(secrets) => secrets,
            Err(message) => {
                frozen_clusters.insert(cluster.clone());
                result.failures.push(Failure {
                    source: format!("cluster {cluster}"),
                    message: format!("{message}; its copies on the hub are kept"),
                });
                continue;
            }
        };
        listed_clusters.insert(cluster.clone());
        for secret in secrets {
            let source = format!("{cluster}/{}/{}", secret.namespace, secret.name);
            let mut places = BTreeSet::new();
            let mut failed = false;
            for policy in selecting.iter().filter(|p| {
                p.namespace == secret.namespace && p.secrets.matches(&secret.secret.labels)
            }) {
                if !secret.secret.labels.contains_key(ARGOCD_SYNC_LABEL)
                    && !secret.secret.labels.contains_key(KARGO_SYNC_LABEL)
                {
                    continue;
                }
                if let Some(reason) =
                    block_list.reason(&secret.name, &secret.secret.type_, &secret.secret.labels)
                {
                    result.failures.push(Failure {
                        source: source.clone(),
                        message: format!(
                            "refused: {reason}; such Secrets are never synced from a member"
                        ),
                    });
                    failed = true;
                    break;
                }
                match destinations(policy, cluster, secret, hub) {
                    Ok(found) => places.extend(found),
                    Err(message) => {
                        result.failures.push(Failure {
                            source: source.clone(),
                            message,
                        });
                        failed = true;
                        break;
                    }
                }
            }
            if failed {
                frozen_sources.insert(source);
                continue;
            }
            for namespace in places {
                wanted
                    .entry((namespace, secret.name.clone()))
                    .or_default()
                    .push((
                        secret.created.clone(),
                        cluster.clone(),
                        copy_of(cluster, secret, instance),
                    ));
            }
        }
    }

    let mut taken: BTreeSet<(String, String)> = BTreeSet::new();
    for ((namespace, name), mut candidates) in wanted {
        candidates.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        let key = (namespace.clone(), name.clone());
        let existing = hub.secrets.get(&key).map(|s| &s.secret);
        let owner = existing.and_then(copy_owner);
        // Who gets it: the cluster owning the copy if it still wants it, else the first
        // created (an unowned adoptable Secret is taken over; any other is not).
        let winner = match (existing, owner) {
            (Some(_), Some((owner_instance, _))) if owner_instance != instance => None,
            (Some(_), Some((_, owner_cluster))) => candidates
                .iter()
                .position(|c| c.1 == owner_cluster)
                .or_else(|| {
                    // The owner no longer wants it; it keeps it while it is frozen.
                    (!frozen_clusters.contains(owner_cluster)).then_some(0)
                }),
            (Some(_), None)
                if namespace_is_argocd(policies, &namespace)
                    && ADOPTABLE.contains(&name.as_str()) =>
            {
                Some(0)
            }
            (Some(_), None) => None,
            (None, _) => Some(0),
        };
        for (index, (_, cluster, copy)) in candidates.iter().enumerate() {
            if Some(index) == winner {
                continue;
            }
            let holder = match (winner, owner) {
                (Some(w), _) => format!("it is synced from cluster {}", candidates[w].1),
                (None, Some((owner_instance, owner))) if owner_instance == instance => {
                    format!("it is synced from cluster {owner}")
                }
                (None, Some((owner_instance, _))) => {
                    format!("courier instance {owner_instance:?} collects it")
                }
                (None, None) => "it was not created by courier's collection".to_owned(),
            };
            result.failures.push(Failure {
                source: format!("{cluster}/{}", source_of(copy)),
                message: format!(
                    "Secret {namespace}/{name} already exists on the hub and is not owned by cluster {cluster} ({holder}; the first create wins)"
                ),
            });
        }
        let Some(w) = winner else { continue };
        let (_, cluster, copy) = &candidates[w];
        taken.insert(key.clone());
        match (existing, owner) {
            (Some(current), Some(_)) if same(current, copy) => result.unchanged += 1,
            (Some(_), Some(_)) => result.writes.push(Write::Put {
                namespace: namespace.clone(),
                name: name.clone(),
                content: copy.clone(),
                exists: true,
                cluster: cluster.clone(),
                verb: "update",
            }),
            (Some(previous), None) => {
                let saved = (namespace.clone(), format!("{PREVIOUS_PREFIX}{name}"));
                result.writes.push(Write::Put {
                    namespace: namespace.clone(),
                    name: saved.1.clone(),
                    content: saved_previous(&name, previous, instance),
                    exists: hub.secrets.contains_key(&saved),
                    cluster: cluster.clone(),
                    verb: "save",
                });
                taken.insert(saved);
                result.writes.push(Write::Put {
                    namespace: namespace.clone(),
                    name: name.clone(),
                    content: copy.clone(),
                    exists: true,
                    cluster: cluster.clone(),
                    verb: "adopt",
                });
            }
            (None, _) => result.writes.push(Write::Put {
                namespace: namespace.clone(),
                name: name.clone(),
                content: copy.clone(),
                exists: false,
                cluster: cluster.clone(),
                verb: "create",
            }),
        }
    }

    // Copies nobody wants any more: removed (an adopted one is given its previous content
    // back), unless what they came from could not be seen whole this pass.
    let kept = |copy: &SourceSecret, cluster: &str| {
        frozen_clusters.contains(cluster)
            || is_frozen_source(&frozen_sources, copy)
            || !hub.declared_clusters.contains(cluster)
            || !listed_clusters.contains(cluster)
    };
    for ((namespace, name), existing) in &hub.secrets {
        let Some((owner_instance, cluster)) = copy_owner(&existing.secret) else {
            continue;
        };
        if owner_instance != instance || taken.contains(&(namespace.clone(), name.clone())) {
            continue;
        }
        if let Some(adopted) = existing.secret.labels.get(PREVIOUS_OF_LABEL) {
            // The saved content of an adopted Secret that is no longer wanted: give it back.
            let adopted_key = (namespace.clone(), adopted.clone());
            if taken.contains(&adopted_key) {
                continue;
            }
            let adopted_copy = hub
                .secrets
                .get(&adopted_key)
                .and_then(|s| copy_owner(&s.secret).map(|(i, c)| (s, i.to_owned(), c.to_owned())));
            match adopted_copy {
                Some((copy, owner_instance, owner_cluster)) if owner_instance == instance => {
                    if kept(&copy.secret, &owner_cluster) {
                        continue;
                    }
                    result.writes.push(Write::Put {
                        namespace: namespace.clone(),
                        name: adopted.clone(),
                        content: restored(&existing.secret),
                        exists: true,
                        cluster: owner_cluster,
                        verb: "restore",
                    });
                }
                // Taken by another instance, or edited by hand since: leave both alone.
                Some(_) => continue,
                // Deleted by hand: the saved content goes back under its name.
                None => result.writes.push(Write::Put {
                    namespace: namespace.clone(),
                    name: adopted.clone(),
                    content: restored(&existing.secret),
                    exists: false,
                    cluster: String::new(),
                    verb: "restore",
                }),
            }
            result.writes.push(Write::Delete {
                namespace: namespace.clone(),
                name: name.clone(),
                cluster: String::new(),
            });
            continue;
        }
        if !hub.declared_clusters.contains(cluster) {
            result.warnings.push(format!(
                "Secret {namespace}/{name} was collected from cluster {cluster}, which the inventory no longer lists: kept (delete it by hand if the cluster is gone for good)"
            ));
            continue;
        }
        if kept(&existing.secret, cluster) {
            continue;
        }
        if hub
            .secrets
            .contains_key(&(namespace.clone(), format!("{PREVIOUS_PREFIX}{name}")))
        {
            // Given its previous content back with its saved copy, above.
            continue;
        }
        result.writes.push(Write::Delete {
            namespace: namespace.clone(),
            name: name.clone(),
            cluster: cluster.to_owned(),
        });
    }
    result
}

fn source_of(copy: &Copy) -> String {
    copy.annotations
        .get(SOURCE_ANNOTATION)
        .and_then(|s| s.split_once('/').map(|(_, rest)| rest.to_owned()))
        .unwrap_or_default()
}

fn is_frozen_source(frozen: &BTreeSet<String>, copy: &SourceSecret) -> bool {
    copy.annotations
        .get(SOURCE_ANNOTATION)
        .is_some_and(|source| frozen.contains(source))
}

fn namespace_is_argocd(policies: &[Policy], namespace: &str) -> bool {
    policies.iter().any(|p| p.argocd_namespace == namespace)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(yaml: &str) -> Result<Policy, String> {
        let value: serde_json::Value = serde_saphyr::from_str(yaml).unwrap();
        parse_policy(value)
    }

    fn everything() -> Policy {
        policy("apiVersion: collect.courier.dev/v1alpha1\nkind: SecretCollection\nmetadata: {name: all}\nspec: {clusterSelector: \"env in (prod,dev)\"}\n").unwrap()
    }

    fn member(name: &str, env: &str) -> Member {
        Member::new(name, [("env".to_owned(), env.to_owned())].into())
    }

    fn secret(name: &str, created: &str, labels: &[(&str, &str)], value: &str) -> MemberSecret {
        MemberSecret {
            name: name.into(),
            namespace: "akuity".into(),
            created: created.into(),
            secret: SourceSecret {
                labels: labels
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
                annotations: StringMap::new(),
                type_: "Opaque".into(),
                data: [(
                    "password".to_owned(),
                    SecretBytes::new(value.as_bytes().to_vec()),
                )]
                .into(),
            },
        }
    }

    fn hub() -> Hub {
        let mut hub = Hub::default();
        hub.namespaces.insert("argocd".into(), StringMap::new());
        hub.namespaces.insert(
            "kargo-demo".into(),
            [(KARGO_PROJECT_LABEL.to_owned(), "true".to_owned())].into(),
        );
        hub.namespaces.insert("plain".into(), StringMap::new());
        hub.declared_clusters = ["a".to_owned(), "b".to_owned()].into();
        hub
    }

    fn listing(member: Member, secrets: Vec<MemberSecret>) -> MemberListing {
        MemberListing {
            member,
            secrets: Ok(secrets),
        }
    }

    fn targets(plan: &CollectPlan) -> Vec<String> {
        plan.writes
            .iter()
            .map(|w| match w {
                Write::Put { verb, cluster, .. } => format!("{verb} {} {cluster}", w.target()),
                Write::Delete { .. } => format!("delete {}", w.target()),
            })
            .collect()
    }

    fn apply(hub: &mut Hub, plan: &CollectPlan) {
        for write in &plan.writes {
            match write {
                Write::Put {
                    namespace,
                    name,
                    content,
                    ..
                } => {
                    hub.secrets.insert(
                        (namespace.clone(), name.clone()),
                        HubSecret {
                            secret: SourceSecret {
                                labels: content.labels.clone(),
                                annotations: content.annotations.clone(),
                                type_: content.type_.clone(),
                                data: content.data.clone(),
                            },
                        },
                    );
                }
                Write::Delete {
                    namespace, name, ..
                } => {
                    hub.secrets.remove(&(namespace.clone(), name.clone()));
                }
            }
        }
    }

    #[test]
    fn a_policy_with_neither_selector_or_an_unknown_field_is_refused() {
        let empty = policy("apiVersion: collect.courier.dev/v1alpha1\nkind: SecretCollection\nmetadata: {name: x}\nspec: {}\n").unwrap_err();
        assert!(empty.contains("both empty"), "{empty}");
        let typo = policy("apiVersion: collect.courier.dev/v1alpha1\nkind: SecretCollection\nmetadata: {name: x}\nspec: {clusterSelecter: a}\n").unwrap_err();
        assert!(typo.contains("clusterSelecter"), "{typo}");
        let bad = policy("apiVersion: collect.courier.dev/v1alpha1\nkind: SecretCollection\nmetadata: {name: x}\nspec: {clusterSelector: \"env in (\"}\n").unwrap_err();
        assert!(bad.contains("spec.clusterSelector"), "{bad}");
        let version = policy("apiVersion: collect.courier.dev/v1\nkind: SecretCollection\nmetadata: {name: x}\nspec: {clusterSelector: a}\n").unwrap_err();
        assert!(
            version.contains("hint: use collect.courier.dev/v1alpha1"),
            "{version}"
        );
        assert!(policy("apiVersion: collect.courier.dev/v1alpha1\nkind: SecretCollection\nmetadata: {name: x}\nspec: {secretSelector: \"team=a\"}\n").is_ok());
    }

    #[test]
    fn opted_in_secrets_route_to_argocd_and_kargo_and_the_rest_are_ignored_or_refused() {
        let members = vec![listing(
            member("a", "prod"),
            vec![
                secret(
                    "repo",
                    "1",
                    &[
                        (ARGOCD_SYNC_LABEL, "true"),
                        ("argocd.argoproj.io/secret-type", "repo-creds"),
                    ],
                    "x",
                ),
                secret(
                    "hook",
                    "1",
                    &[
                        (KARGO_SYNC_LABEL, "kargo-demo"),
                        (KARGO_CRED_TYPE_LABEL, "generic"),
                    ],
                    "y",
                ),
                secret(
                    "no-cred-type",
                    "1",
                    &[(KARGO_SYNC_LABEL, "kargo-demo")],
                    "z",
                ),
                secret(
                    "no-project",
                    "1",
                    &[(KARGO_SYNC_LABEL, "nope"), (KARGO_CRED_TYPE_LABEL, "git")],
                    "z",
                ),
                secret(
                    "not-project",
                    "1",
                    &[(KARGO_SYNC_LABEL, "plain"), (KARGO_CRED_TYPE_LABEL, "git")],
                    "z",
                ),
                secret("argocd-secret", "1", &[(ARGOCD_SYNC_LABEL, "true")], "z"),
                secret(
                    "cluster",
                    "1",
                    &[
                        (ARGOCD_SYNC_LABEL, "true"),
                        ("argocd.argoproj.io/secret-type", "cluster"),
                    ],
                    "z",
                ),
            ],
        )];
        let plan = plan(
            &[everything()],
            &members,
            &hub(),
            &BlockList::default(),
            "default",
        );
        assert_eq!(
            targets(&plan),
            ["create argocd/repo a", "create kargo-demo/hook a"]
        );
        let failures: Vec<String> = plan.failures.iter().map(ToString::to_string).collect();
        assert_eq!(failures.len(), 4, "{failures:#?}");
        assert!(
            failures[0].starts_with("a/akuity/no-project: Kargo project \"nope\""),
            "{failures:#?}"
        );
        assert!(failures[1].contains("not a Kargo project"), "{failures:#?}");
        assert!(
            failures[2].contains("argocd-secret: refused"),
            "{failures:#?}"
        );
        assert!(failures[3].contains("secret-type=cluster"), "{failures:#?}");
        let Write::Put { content, .. } = &plan.writes[0] else {
            panic!()
        };
        assert_eq!(
            content
                .labels
                .get("argocd.argoproj.io/secret-type")
                .map(String::as_str),
            Some("repo-creds")
        );
        assert!(!content.labels.contains_key(ARGOCD_SYNC_LABEL));
        assert_eq!(
            content.labels.get(COLLECTED_FROM_LABEL).map(String::as_str),
            Some("a")
        );
    }

    #[test]
    fn first_create_wins_moves_follow_the_label_and_an_unreachable_member_keeps_its_copies() {
        let mut hub = hub();
        let hook = |project: &str, created: &str| {
            secret(
                "hook",
                created,
                &[
                    (KARGO_SYNC_LABEL, project),
                    (KARGO_CRED_TYPE_LABEL, "generic"),
                ],
                "v",
            )
        };
        hub.namespaces.insert(
            "kargo-two".into(),
            [(KARGO_PROJECT_LABEL.to_owned(), "true".to_owned())].into(),
        );
        let first = plan(
            &[everything()],
            &[
                listing(member("a", "prod"), vec![hook("kargo-demo", "2")]),
                listing(member("b", "dev"), vec![hook("kargo-demo", "1")]),
            ],
            &hub,
            &BlockList::default(),
            "default",
        );
        // b's Secret was created first: b owns the name.
        assert_eq!(targets(&first), ["create kargo-demo/hook b"]);
        assert!(
            first.failures[0].message.contains(
                "not owned by cluster a (it is synced from cluster b; the first create wins)"
            ),
            "{:?}",
            first.failures
        );
        apply(&mut hub, &first);
        // Now a's Secret is older, but b holds the copy.
        let again = plan(
            &[everything()],
            &[
                listing(member("a", "prod"), vec![hook("kargo-demo", "0")]),
                listing(member("b", "dev"), vec![hook("kargo-demo", "1")]),
            ],
            &hub,
            &BlockList::default(),
            "default",
        );
        assert!(targets(&again).is_empty());
        assert_eq!(again.unchanged, 1);
        // b moves it to another project: deleted from the old, created in the new; a takes
        // the freed name.
        let moved = plan(
            &[everything()],
            &[
                listing(member("a", "prod"), vec![]),
                listing(member("b", "dev"), vec![hook("kargo-two", "1")]),
            ],
            &hub,
            &BlockList::default(),
            "default",
        );
        assert_eq!(
            targets(&moved),
            ["create kargo-two/hook b", "delete kargo-demo/hook"]
        );
        apply(&mut hub, &moved);
        // b cannot be reached: its copy stays.
        let down = plan(
            &[everything()],
            &[MemberListing {
                member: member("b", "dev"),
                secrets: Err("connection refused".into()),
            }],
            &hub,
            &BlockList::default(),
            "default",
        );
        assert!(targets(&down).is_empty(), "{:?}", targets(&down));
        assert!(
            down.failures[0]
                .to_string()
                .contains("cluster b: connection refused; its copies on the hub are kept")
        );
        // b's label removed: the copy goes.
        let removed = plan(
            &[everything()],
            &[listing(member("b", "dev"), vec![])],
            &hub,
            &BlockList::default(),
            "default",
        );
        assert_eq!(targets(&removed), ["delete kargo-two/hook"]);
    }

    #[test]
    fn an_adoptable_secret_is_taken_over_and_given_back() {
        let mut hub = hub();
        let original = SourceSecret {
            labels: [("app".to_owned(), "notifications".to_owned())].into(),
            annotations: StringMap::new(),
            type_: "Opaque".into(),
            data: [("slack".to_owned(), SecretBytes::new(b"platform".to_vec()))].into(),
        };
        hub.secrets.insert(
            ("argocd".into(), "argocd-notifications-secret".into()),
            HubSecret {
                secret: original.clone(),
            },
        );
        hub.secrets.insert(
            ("argocd".into(), "other".into()),
            HubSecret {
                secret: original.clone(),
            },
        );
        let members = vec![listing(
            member("a", "prod"),
            vec![
                secret(
                    "argocd-notifications-secret",
                    "1",
                    &[(ARGOCD_SYNC_LABEL, "true")],
                    "team",
                ),
                secret("other", "1", &[(ARGOCD_SYNC_LABEL, "true")], "team"),
            ],
        )];
        let adopted = plan(
            &[everything()],
            &members,
            &hub,
            &BlockList::default(),
            "default",
        );
        assert_eq!(
            targets(&adopted),
            [
                "save argocd/courier-previous-argocd-notifications-secret a",
                "adopt argocd/argocd-notifications-secret a"
            ]
        );
        assert!(adopted.failures[0].message.contains("argocd/other already exists on the hub and is not owned by cluster a (it was not created by courier's collection"), "{:?}", adopted.failures);
        apply(&mut hub, &adopted);
        let steady = plan(
            &[everything()],
            &members,
            &hub,
            &BlockList::default(),
            "default",
        );
        assert!(targets(&steady).is_empty(), "{:?}", targets(&steady));
        let released = plan(
            &[everything()],
            &[listing(member("a", "prod"), vec![])],
            &hub,
            &BlockList::default(),
            "default",
        );
        assert_eq!(
            targets(&released),
            [
                "restore argocd/argocd-notifications-secret a",
                "delete argocd/courier-previous-argocd-notifications-secret"
            ]
        );
        apply(&mut hub, &released);
        assert_eq!(
            hub.secrets[&(
                "argocd".to_owned(),
                "argocd-notifications-secret".to_owned()
            )]
                .secret,
            original
        );
    }
}
