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
