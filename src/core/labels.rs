//! The labels and annotations courier puts on every Secret it writes: how it knows its own.

/// Label every Secret courier writes carries.
pub const MANAGED_BY_LABEL: &str = "app.kubernetes.io/managed-by";
/// Its value.
pub const MANAGED_BY_VALUE: &str = "courier";
/// Annotation naming the manifest a Secret was rendered from.
pub const ORIGIN_ANNOTATION: &str = "courier.dev/origin";
/// Annotation earlier versions wrote: an unsalted sha256 over the values, which let anyone
/// who saw it (redacted output, diffs, Argo CD's UI) confirm a guessed value. courier
/// writes it no more, and takes it off every target it still finds it on.
pub const LEGACY_DATA_HASH_ANNOTATION: &str = "courier.dev/data-hash";
/// Annotation on a ClusterExternalSecret or ExternalSecret choosing its template
/// language: `go` (the default: ESO's Go templates) or `minijinja` (courier's dialect).
pub const TEMPLATE_ENGINE_ANNOTATION: &str = "courier.dev/template-engine";
/// Label naming the courier instance that owns a Secret; pruning only touches its own.
pub const INSTANCE_LABEL: &str = "courier.dev/instance";
/// Annotation recording `creationPolicy: Orphan`, so a pruned target is left behind.
pub const CREATION_POLICY_ANNOTATION: &str = "courier.dev/creation-policy";
/// Annotation on a ClusterExternalSecret or ExternalSecret choosing the clusters it
/// writes to: a label selector over the clusters' labels. Without it, only the cluster
/// courier talks to (its hub) receives the manifest's targets.
pub const CLUSTER_SELECTOR_ANNOTATION: &str = "courier.dev/cluster-selector";
/// Label every cluster member carries, set to its name, so a selector can name clusters.
pub const CLUSTER_NAME_LABEL: &str = "courier.dev/cluster-name";
/// Annotation on a target courier wrote into a cluster other than its hub: the hub's
/// cluster ID (its `kube-system` namespace UID). Two hubs writing the same target tell
/// their Secrets apart by it; the first to create a target owns it.
pub const HUB_ANNOTATION: &str = "courier.dev/hub";
