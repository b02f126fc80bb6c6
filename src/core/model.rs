//! Serde types for the manifests courier reads: a subset of `v1` core objects and
//! of `external-secrets.io/v1` / `v1beta1`. Unknown fields are ignored here: the loader
//! has already checked every ESO object against ESO's schema (`core::schema`).

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

/// String maps as Kubernetes has them (labels, annotations, ConfigMap data).
pub type StringMap = BTreeMap<String, String>;

/// Treats an explicit YAML/JSON `null` like an absent field.
pub fn null_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// A `LabelSelector` as written in a manifest. Compile it before matching.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LabelSelector {
    /// Labels that must be present with exactly these values.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub match_labels: BTreeMap<String, String>,
    /// Set-based requirements.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "Vec::is_empty"
    )]
    pub match_expressions: Vec<LabelSelectorRequirement>,
}

/// One `matchExpressions[]` entry. The operator stays a string until compiled so an
/// unknown operator gets our error, naming the key, instead of a serde message.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
pub struct LabelSelectorRequirement {
    /// Label key.
    #[serde(default)]
    pub key: String,
    /// In, NotIn, Exists or DoesNotExist.
    #[serde(default)]
    pub operator: String,
    /// Values for In and NotIn.
    #[serde(default, deserialize_with = "null_default")]
    pub values: Vec<String>,
}

/// `metadata` of every object.
#[derive(Debug, Clone, Default, Deserialize, Serialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMeta {
    /// `metadata.name`.
    #[serde(default)]
    pub name: String,
    /// `metadata.namespace`, for namespaced kinds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// `metadata.labels`.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub labels: StringMap,
    /// `metadata.annotations`.
    #[serde(
        default,
        deserialize_with = "null_default",
        skip_serializing_if = "BTreeMap::is_empty"
    )]
    pub annotations: StringMap,
}

/// A `v1` Secret as written in a manifest; `data` is still base64 here.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretManifest {
    /// Object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// `type`, `Opaque` when absent.
    #[serde(default, rename = "type")]
    pub type_: Option<String>,
    /// Base64-encoded values.
    #[serde(default, deserialize_with = "null_default")]
    pub data: StringMap,
    /// Plain values; the API server folds them into `data`, and so do we.
    #[serde(default, deserialize_with = "null_default")]
    pub string_data: StringMap,
    /// `immutable`: its data and type can no longer change.
    #[serde(default)]
    pub immutable: Option<bool>,
}

/// A `v1` ConfigMap, read for `templateFrom.configMap`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConfigMapManifest {
    /// Object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// Text values.
    #[serde(default, deserialize_with = "null_default")]
    pub data: StringMap,
}

/// A `v1` Namespace; only its name and labels matter.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct NamespaceManifest {
    /// Object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// `status`: its `phase` is `Terminating` while the namespace is being deleted.
    #[serde(default)]
    pub status: NamespaceStatus,
}

/// `Namespace.status`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct NamespaceStatus {
    /// `Active` or `Terminating`.
    #[serde(default)]
    pub phase: Option<String>,
}

/// `ClusterSecretStore` or `SecretStore`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct SecretStoreManifest {
    /// Object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// `spec`.
    #[serde(default)]
    pub spec: SecretStoreSpec,
}

/// `SecretStore.spec`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretStoreSpec {
    /// `spec.provider`: exactly one provider is expected.
    #[serde(default)]
    pub provider: BTreeMap<String, serde_json::Value>,
    /// `spec.conditions`: which namespaces may use a ClusterSecretStore.
    #[serde(default, deserialize_with = "null_default")]
    pub conditions: Vec<ClusterSecretStoreCondition>,
}

/// One `ClusterSecretStore.spec.conditions[]` entry; a namespace must match one of them.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterSecretStoreCondition {
    /// Label selector over namespaces.
    #[serde(default)]
    pub namespace_selector: Option<LabelSelector>,
    /// Namespace names.
    #[serde(default, deserialize_with = "null_default")]
    pub namespaces: Vec<String>,
    /// Regular expressions over namespace names.
    #[serde(default, deserialize_with = "null_default")]
    pub namespace_regexes: Vec<String>,
}

/// `serviceAccountRef`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq, Hash)]
pub struct ServiceAccountSelector {
    /// ServiceAccount name.
    #[serde(default)]
    pub name: String,
    /// Namespace; for a SecretStore, its own.
    #[serde(default)]
    pub namespace: Option<String>,
    /// Audiences of the requested token.
    #[serde(default, deserialize_with = "null_default")]
    pub audiences: Vec<String>,
}

/// A key of a Secret (`name`, `key`, and for cluster-scoped stores `namespace`).
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq, Hash)]
pub struct SecretKeySelector {
    /// Secret name.
    #[serde(default)]
    pub name: String,
    /// Key.
    #[serde(default)]
    pub key: String,
    /// Namespace; for a SecretStore, its own.
    #[serde(default)]
    pub namespace: Option<String>,
}

/// `ClusterExternalSecret`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ClusterExternalSecretManifest {
    /// Object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// `spec`.
    #[serde(default)]
    pub spec: ClusterExternalSecretSpec,
}

/// `ClusterExternalSecret.spec`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClusterExternalSecretSpec {
    /// Name of the ExternalSecrets it makes; the CES name when absent.
    #[serde(default)]
    pub external_secret_name: Option<String>,
    /// Labels and annotations of the ExternalSecrets it makes.
    #[serde(default)]
    pub external_secret_metadata: Option<ExternalSecretMetadata>,
    /// Deprecated singular selector.
    #[serde(default)]
    pub namespace_selector: Option<LabelSelector>,
    /// Selectors, ORed.
    #[serde(default)]
    pub namespace_selectors: Option<Vec<LabelSelector>>,
    /// Namespace names.
    #[serde(default)]
    pub namespaces: Option<Vec<String>>,
    /// How often ESO re-evaluates the selectors.
    #[serde(default)]
    pub refresh_time: Option<String>,
    /// The ExternalSecret each selected namespace gets.
    #[serde(default)]
    pub external_secret_spec: ExternalSecretSpec,
}

/// `ClusterExternalSecret.spec.externalSecretMetadata`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ExternalSecretMetadata {
    /// Labels.
    #[serde(default, deserialize_with = "null_default")]
    pub labels: StringMap,
    /// Annotations.
    #[serde(default, deserialize_with = "null_default")]
    pub annotations: StringMap,
    /// Finalizers, literal: only `target.template.metadata` has them (ESO's schema refuses
    /// them in `externalSecretMetadata`), added to the Secret as ESO's `setMetadata` adds them.
    #[serde(default, deserialize_with = "null_default")]
    pub finalizers: Vec<String>,
}

/// `ExternalSecret`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ExternalSecretManifest {
    /// Object metadata.
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// `spec`.
    #[serde(default)]
    pub spec: ExternalSecretSpec,
}

/// `ExternalSecret.spec`, shared with `ClusterExternalSecret.spec.externalSecretSpec`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExternalSecretSpec {
    /// Store to read from.
    #[serde(default)]
    pub secret_store_ref: Option<SecretStoreRef>,
    /// The Secret to write.
    #[serde(default)]
    pub target: ExternalSecretTarget,
    /// How often to refresh.
    #[serde(default)]
    pub refresh_interval: Option<String>,
    /// When to refresh (ESO v2.9): Periodic (the default), CreatedOnce or OnChange.
    #[serde(default)]
    pub refresh_policy: Option<RefreshPolicy>,
    /// Cron windows that allow or deny the periodic refresh (ESO v2.9;
    /// [`crate::core::sync_window`]).
    #[serde(default)]
    pub sync_windows: Option<SyncWindows>,
    /// Single values.
    #[serde(default, deserialize_with = "null_default")]
    pub data: Vec<ExternalSecretData>,
    /// Maps of values.
    #[serde(default, deserialize_with = "null_default")]
    pub data_from: Vec<ExternalSecretDataFrom>,
}

/// `syncWindows`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct SyncWindows {
    /// Whether the windows allow or deny the periodic refresh.
    pub kind: SyncWindowKind,
    /// At least one.
    pub windows: Vec<SyncWindow>,
}

/// `syncWindows.kind`.
#[derive(Debug, Clone, Copy, Deserialize, PartialEq, Eq)]
pub enum SyncWindowKind {
    /// A periodic refresh only while a window is active.
    #[serde(rename = "allow")]
    Allow,
    /// No periodic refresh while a window is active.
    #[serde(rename = "deny")]
    Deny,
}

/// `syncWindows.windows[]`.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct SyncWindow {
    /// A cron schedule (5 fields) or descriptor: when a window opens.
    pub schedule: String,
    /// A Go duration: how long it stays open.
    pub duration: String,
}

/// `secretStoreRef`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretStoreRef {
    /// Store name.
    #[serde(default)]
    pub name: String,
    /// `SecretStore` (default) or `ClusterSecretStore`.
    #[serde(default)]
    pub kind: Option<String>,
}

/// `target`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExternalSecretTarget {
    /// Secret name; the ExternalSecret name when absent.
    #[serde(default)]
    pub name: Option<String>,
    /// Owner (default), Orphan, Merge or None.
    #[serde(default)]
    pub creation_policy: Option<CreationPolicy>,
    /// Retain (default), Delete or Merge.
    #[serde(default)]
    pub deletion_policy: Option<DeletionPolicy>,
    /// How to shape the Secret.
    #[serde(default)]
    pub template: Option<SecretTemplate>,
    /// Write the Secret as immutable.
    #[serde(default)]
    pub immutable: bool,
}

/// `refreshPolicy`: when ESO renders the target again. courier writes a change of the
/// sources at once whatever it says; it matters for a target whose template renders
/// differently every time (`htpasswd`, `randAlphaNum`), which is rewritten only when
/// this allows (see `live::apply::is_current`).
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
pub enum RefreshPolicy {
    /// Every `refreshInterval` (never when it is 0).
    #[default]
    Periodic,
    /// Never after the Secret is created.
    CreatedOnce,
    /// When the manifest changes.
    OnChange,
}

/// `target.creationPolicy`.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
pub enum CreationPolicy {
    /// courier creates and owns the Secret.
    #[default]
    Owner,
    /// courier creates the Secret and leaves it behind when it is no longer wanted.
    Orphan,
    /// courier adds its keys to a Secret that already exists.
    Merge,
    /// courier renders nothing.
    None,
    /// ESO v2.8's CreateOrMerge: courier adds its keys to the Secret when it exists (as
    /// Merge), and creates it when it does not (as Orphan: left behind when no longer
    /// wanted).
    CreateOrMerge,
}

/// `target.deletionPolicy`: what happens when the source data disappears.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
pub enum DeletionPolicy {
    /// Keep the Secret as it was.
    #[default]
    Retain,
    /// Delete the Secret.
    Delete,
    /// Remove only courier's keys.
    Merge,
}

/// `target.template`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SecretTemplate {
    /// Secret type; `Opaque` when absent.
    #[serde(default, rename = "type")]
    pub type_: Option<String>,
    /// ESO's Go-template engine version; accepted and ignored (courier uses minijinja).
    #[serde(default)]
    pub engine_version: Option<String>,
    /// Labels and annotations, each value a template.
    #[serde(default)]
    pub metadata: ExternalSecretMetadata,
    /// Replace (default) or Merge.
    #[serde(default)]
    pub merge_policy: Option<MergePolicy>,
    /// Templates by data key.
    #[serde(default, deserialize_with = "null_default")]
    pub data: StringMap,
    /// Templates from ConfigMaps, Secrets or literals.
    #[serde(default, deserialize_with = "null_default")]
    pub template_from: Vec<TemplateFrom>,
}

/// `template.mergePolicy`.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
pub enum MergePolicy {
    /// Only template keys when a template defines data.
    #[default]
    Replace,
    /// Provider keys plus template keys; the template wins.
    Merge,
}

/// `template.templateFrom[]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TemplateFrom {
    /// Templates kept in a ConfigMap of the ExternalSecret's namespace.
    #[serde(default)]
    pub config_map: Option<TemplateRef>,
    /// Templates kept in a Secret of the ExternalSecret's namespace.
    #[serde(default)]
    pub secret: Option<TemplateRef>,
    /// Data (default), Labels or Annotations.
    #[serde(default)]
    pub target: Option<TemplateTarget>,
    /// An inline template whose output is a YAML map of keys and values.
    #[serde(default)]
    pub literal: Option<String>,
    /// How each rendered value is decoded before it lands (ESO's `decoding.Decode`);
    /// unset is `None`.
    #[serde(default)]
    pub values_decoding_strategy: Option<DecodingStrategy>,
}

/// Where `templateFrom` output lands. Read without regard to case, as ESO's webhook
/// compares it (`strings.EqualFold`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum TemplateTarget {
    /// Secret data.
    #[default]
    Data,
    /// Secret labels.
    Labels,
    /// Secret annotations.
    Annotations,
}

impl<'de> Deserialize<'de> for TemplateTarget {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        [
            ("Data", TemplateTarget::Data),
            ("Labels", TemplateTarget::Labels),
            ("Annotations", TemplateTarget::Annotations),
        ]
        .into_iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(&text))
        .map(|(_, target)| target)
        .ok_or_else(|| serde::de::Error::unknown_variant(&text, &["Data", "Labels", "Annotations"]))
    }
}

/// `templateFrom[].configMap` / `.secret`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct TemplateRef {
    /// Object name.
    #[serde(default)]
    pub name: String,
    /// Which keys hold templates.
    #[serde(default, deserialize_with = "null_default")]
    pub items: Vec<TemplateRefItem>,
}

/// `templateFrom[].configMap.items[]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TemplateRefItem {
    /// Key holding a template.
    #[serde(default)]
    pub key: String,
    /// Values (default): the output is the value of `key`; KeysAndValues: a YAML map.
    #[serde(default)]
    pub template_as: Option<TemplateScope>,
}

/// `items[].templateAs`.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
pub enum TemplateScope {
    /// The rendered text is the value of the item's key.
    #[default]
    Values,
    /// The rendered text is a YAML map of keys and values.
    KeysAndValues,
}

/// `data[]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExternalSecretData {
    /// Key in the target Secret.
    #[serde(default)]
    pub secret_key: String,
    /// Where the value comes from.
    #[serde(default)]
    pub remote_ref: RemoteRef,
    /// Generators and per-entry stores; not supported.
    #[serde(default)]
    pub source_ref: Option<serde_json::Value>,
}

/// `remoteRef` / `dataFrom[].extract`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RemoteRef {
    /// The source Secret's name (Kubernetes provider).
    #[serde(default)]
    pub key: String,
    /// A data key, or `key.json.path`.
    #[serde(default)]
    pub property: Option<String>,
    /// Provider-specific version; unused by the Kubernetes provider.
    #[serde(default)]
    pub version: Option<String>,
    /// None (default), Base64, Base64URL, Auto.
    #[serde(default)]
    pub decoding_strategy: Option<DecodingStrategy>,
    /// Default or Unicode; applies to keys.
    #[serde(default)]
    pub conversion_strategy: Option<ConversionStrategy>,
    /// None (default) or Fetch (read labels/annotations instead of data).
    #[serde(default)]
    pub metadata_policy: Option<MetadataPolicy>,
    /// Ignore (default) or Fail: a decoded value holding a NUL byte fails.
    #[serde(default)]
    pub null_byte_policy: Option<NullBytePolicy>,
}

/// `nullBytePolicy` (ESO v2.9): what a fetched, decoded value holding a NUL byte does.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
pub enum NullBytePolicy {
    /// Written as it is.
    #[default]
    Ignore,
    /// Fails the ExternalSecret.
    Fail,
}

/// `decodingStrategy`.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
pub enum DecodingStrategy {
    /// Bytes unchanged.
    #[default]
    None,
    /// Standard base64.
    Base64,
    /// URL-safe base64.
    #[serde(rename = "Base64URL")]
    Base64Url,
    /// Base64, else URL-safe base64, else unchanged.
    Auto,
}

/// `conversionStrategy`.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
pub enum ConversionStrategy {
    /// Characters outside `[-._a-zA-Z0-9]` (and other letters/digits) become `_`.
    #[default]
    Default,
    /// Such characters become `_UXXXX_`.
    Unicode,
}

/// `metadataPolicy`.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
pub enum MetadataPolicy {
    /// Read data.
    #[default]
    None,
    /// Read labels and annotations.
    Fetch,
}

/// `dataFrom[]`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExternalSecretDataFrom {
    /// Every key of one source.
    #[serde(default)]
    pub extract: Option<RemoteRef>,
    /// Several sources by name or labels.
    #[serde(default)]
    pub find: Option<FindRef>,
    /// Key rewrites, in order.
    #[serde(default, deserialize_with = "null_default")]
    pub rewrite: Vec<Rewrite>,
    /// Generators; not supported.
    #[serde(default)]
    pub source_ref: Option<serde_json::Value>,
}

/// `dataFrom[].find`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FindRef {
    /// Name filter.
    #[serde(default)]
    pub name: Option<FindName>,
    /// Label equality filter.
    #[serde(default)]
    pub tags: Option<StringMap>,
    /// Provider path; the Kubernetes provider has none.
    #[serde(default)]
    pub path: Option<String>,
    /// Default or Unicode.
    #[serde(default)]
    pub conversion_strategy: Option<ConversionStrategy>,
    /// None, Base64, Base64URL, Auto.
    #[serde(default)]
    pub decoding_strategy: Option<DecodingStrategy>,
    /// Ignore (default) or Fail.
    #[serde(default)]
    pub null_byte_policy: Option<NullBytePolicy>,
}

/// `find.name`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct FindName {
    /// Unanchored regular expression over source Secret names.
    #[serde(default)]
    pub regexp: String,
}

/// `dataFrom[].rewrite[]`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Rewrite {
    /// Regular-expression rewrite of keys.
    #[serde(default)]
    pub regexp: Option<RewriteRegexp>,
    /// Template rewrite of keys; not supported yet.
    #[serde(default)]
    pub transform: Option<serde_json::Value>,
    /// Merge of JSON values into one map (ESO's `esutils.RewriteMerge`).
    #[serde(default)]
    pub merge: Option<RewriteMerge>,
}

/// `rewrite[].merge`: each value is a JSON object; their members are merged, keys in
/// sorted order and then the `priority` keys in their order (later wins).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RewriteMerge {
    /// The key that receives the merged JSON (strategy JSON only; required there).
    #[serde(default)]
    pub into: String,
    /// Keys merged last, in this order, so that they win conflicts.
    #[serde(default, deserialize_with = "null_default")]
    pub priority: Vec<String>,
    /// Strict (default): a priority key missing from the input is an error.
    #[serde(default)]
    pub priority_policy: Option<MergePriorityPolicy>,
    /// Error (default): a member defined by two values is an error.
    #[serde(default)]
    pub conflict_policy: Option<MergeConflictPolicy>,
    /// Extract (default): the members become the keys; JSON: one key holds them.
    #[serde(default)]
    pub strategy: Option<MergeStrategy>,
}

/// `rewrite[].merge.priorityPolicy`.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
pub enum MergePriorityPolicy {
    /// A priority key missing from the input fails the merge.
    #[default]
    Strict,
    /// A priority key missing from the input is skipped.
    IgnoreNotFound,
}

/// `rewrite[].merge.conflictPolicy`.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
pub enum MergeConflictPolicy {
    /// A member defined twice fails the merge.
    #[default]
    Error,
    /// The later value wins.
    Ignore,
}

/// `rewrite[].merge.strategy`.
#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
pub enum MergeStrategy {
    /// The merged members replace the input keys.
    #[default]
    Extract,
    /// The input keys stay and `into` holds the merged object as JSON.
    #[serde(rename = "JSON")]
    Json,
}

/// `rewrite[].regexp`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct RewriteRegexp {
    /// Pattern.
    #[serde(default)]
    pub source: String,
    /// Replacement, with `$1`-style groups.
    #[serde(default)]
    pub target: String,
}
