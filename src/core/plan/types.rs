//! What the planner produces: desired Secrets, per-target errors, and `check`'s report.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use crate::core::load::Origin;
use crate::core::model::{CreationPolicy, DeletionPolicy, StringMap};
use crate::core::provider::FetchError;
use crate::core::redact::{DerivedMap, Scrubber, hidden_key, shown_metadata};
use crate::core::secret_bytes::SecretBytes;

/// The content of a Secret courier wants; shared between the namespaces that get the same one.
/// Its `Debug` shows neither values nor the labels and annotations derived from them.
#[derive(Clone, PartialEq)]
pub struct SecretBody {
    /// `type`.
    pub type_: String,
    /// Labels, courier's included.
    pub labels: StringMap,
    /// Annotations, courier's (origin) included.
    pub annotations: StringMap,
    /// The labels a template produced: values, hidden wherever values are.
    pub derived_labels: DerivedMap,
    /// The annotations a template produced: values, hidden wherever values are.
    pub derived_annotations: DerivedMap,
    /// The data keys a template produced from the values (`templateFrom` with
    /// `KeysAndValues`): values too, hidden wherever values are.
    pub derived_data: DerivedMap,
    /// Values.
    pub data: BTreeMap<String, SecretBytes>,
    /// `immutable: true`.
    pub immutable: bool,
    /// `target.template.metadata.finalizers`, in order, each once: added to the Secret,
    /// never removed from it by courier's comparison (ESO adds them and removes none).
    pub finalizers: Vec<String>,
    /// `target.creationPolicy`.
    pub creation_policy: CreationPolicy,
    /// `target.deletionPolicy`.
    pub deletion_policy: DeletionPolicy,
    /// Set when a template rendered something that differs at every rendering (a
    /// random draw, a random salt or IV, the clock): which fields those are, and when
    /// the target is rewritten anyway. None for a body that renders the same every time.
    pub varying: Option<Arc<Varying>>,
}

/// What of a body varies from one rendering to the next, and when a target holding an
/// earlier rendering is rewritten. The rest of the body (type, keys, the other values
/// and metadata) is compared as usual.
#[derive(Debug, Clone, PartialEq)]
pub struct Varying {
    /// Data keys whose value varies.
    pub data: BTreeSet<String>,
    /// Labels whose value varies.
    pub labels: BTreeSet<String>,
    /// Annotations whose value varies.
    pub annotations: BTreeSet<String>,
    /// `refreshPolicy` with `refreshInterval`.
    pub refresh: Refresh,
    /// The template texts that rendered the body (ESO's OnChange: the manifest changed).
    pub templates: Fingerprint,
    /// The template texts and the values they were given (a source changed).
    pub inputs: Fingerprint,
}

/// When a target whose values vary is rendered again although nothing changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refresh {
    /// `refreshPolicy: Periodic` (the default) every `refreshInterval`; None for 0, never.
    Periodic(Option<Duration>),
    /// `refreshPolicy: CreatedOnce`: never after the create.
    CreatedOnce,
    /// `refreshPolicy: OnChange`: when the manifest changes.
    OnChange,
    /// `refreshPolicy: Periodic` while `syncWindows` block the periodic refresh: an
    /// existing target is held as under OnChange (a spec change still refreshes it).
    SyncWindowClosed,
}

/// A keyed digest (HMAC-SHA256) of a target's inputs, under a key drawn at random when
/// the process starts and never written out: it tells this process that an input
/// changed, and nobody else anything. Kept in memory only; never logged (`Debug` shows
/// no bytes), never written to the cluster.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint([u8; 32]);

impl Fingerprint {
    pub(super) fn bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Fingerprint(..)")
    }
}

/// The process's key for [`Fingerprint`]s.
static FINGERPRINT_KEY: LazyLock<[u8; 32]> = LazyLock::new(|| {
    let mut key = [0u8; 32];
    // Without an OS random source the key is the clock's nanoseconds: still unknown
    // outside the process, and the digest never leaves it.
    if getrandom::fill(&mut key).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        key[..16].copy_from_slice(&nanos.to_le_bytes());
    }
    key
});

/// Builds a [`Fingerprint`] from length-prefixed parts.
pub(super) struct Fingerprinter(hmac::Hmac<sha2::Sha256>);

impl Fingerprinter {
    pub(super) fn new() -> Self {
        use hmac::KeyInit as _;
        Self(
            hmac::Hmac::<sha2::Sha256>::new_from_slice(&*FINGERPRINT_KEY)
                .expect("HMAC takes a key of any length"),
        )
    }

    pub(super) fn part(&mut self, bytes: &[u8]) {
        use hmac::Mac as _;
        self.0.update(&(bytes.len() as u64).to_le_bytes());
        self.0.update(bytes);
    }

    pub(super) fn finish(self) -> Fingerprint {
        use hmac::Mac as _;
        let mut out = [0u8; 32];
        out.copy_from_slice(&self.0.finalize().into_bytes());
        Fingerprint(out)
    }
}

impl SecretBody {
    /// Labels as shown where values are hidden (see [`shown_metadata`]).
    pub fn shown_labels(&self) -> StringMap {
        shown_metadata(&self.labels, &self.derived_labels)
    }

    /// Annotations as shown where values are hidden.
    pub fn shown_annotations(&self) -> StringMap {
        shown_metadata(&self.annotations, &self.derived_annotations)
    }

    /// The data keys as shown where values are hidden, in the data's order: a key a
    /// template produced from the values is [`hidden_key`], numbered as `render --redact`
    /// numbers them.
    pub fn shown_data_keys(&self) -> Vec<std::borrow::Cow<'_, str>> {
        let mut hidden = 0;
        self.data
            .keys()
            .map(|key| {
                if self.derived_data.contains_key(key) {
                    hidden += 1;
                    std::borrow::Cow::Owned(hidden_key(hidden))
                } else {
                    std::borrow::Cow::Borrowed(key.as_str())
                }
            })
            .collect()
    }

    /// A scrubber of every value this body sends: its data, and the labels and
    /// annotations (keys too, where derived) a template produced.
    pub fn scrubber(&self) -> Scrubber {
        let mut scrubber = Scrubber::new();
        for value in self.data.values() {
            scrubber.add(value.expose());
        }
        for key in self.derived_data.keys() {
            scrubber.add(key.as_bytes());
        }
        let derived = [
            (&self.labels, &self.derived_labels),
            (&self.annotations, &self.derived_annotations),
        ];
        for (map, derived) in derived {
            for (key, how) in derived {
                if let Some(value) = map.get(key) {
                    scrubber.add(value.as_bytes());
                }
                if how.key {
                    scrubber.add(key.as_bytes());
                }
            }
        }
        scrubber
    }
}

impl fmt::Debug for SecretBody {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SecretBody")
            .field("type_", &self.type_)
            .field("labels", &self.shown_labels())
            .field("annotations", &self.shown_annotations())
            .field(
                "data",
                &self
                    .shown_data_keys()
                    .into_iter()
                    .zip(self.data.values())
                    .collect::<Vec<_>>(),
            )
            .field("immutable", &self.immutable)
            .field("finalizers", &self.finalizers)
            .field("creation_policy", &self.creation_policy)
            .field("deletion_policy", &self.deletion_policy)
            .finish_non_exhaustive()
    }
}

/// One Secret to write.
#[derive(Debug, Clone, PartialEq)]
pub struct DesiredSecret {
    /// Target namespace.
    pub namespace: String,
    /// Target name.
    pub name: String,
    /// `ClusterExternalSecret/<name>` or `ExternalSecret/<ns>/<name>`.
    pub owner: Arc<str>,
    /// Type, metadata and values.
    pub body: Arc<SecretBody>,
}

/// A target that could not be planned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlanError {
    /// The manifest's file and line.
    pub origin: Origin,
    /// `Kind/name` of the manifest.
    pub object: String,
    /// The target Secrets affected (`namespace/name`), when the error is about targets.
    pub targets: Vec<String>,
    /// The key or field at fault (`data[0] (secretKey password)`), when known.
    pub key: Option<String>,
    /// What is wrong; never a value.
    pub message: String,
    /// `deletionPolicy` of the manifest when the failure is a source that is gone, so
    /// live mode can delete (Delete) or take back (Merge) the existing targets.
    pub source_missing: Option<DeletionPolicy>,
}

impl fmt::Display for PlanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.origin, self.object)?;
        match self.targets.as_slice() {
            [] => {}
            [one] => write!(f, ": target {one}")?,
            many => {
                let shown: Vec<&str> = many.iter().take(5).map(String::as_str).collect();
                let more = if many.len() > 5 {
                    format!(" and {} more", many.len() - 5)
                } else {
                    String::new()
                };
                write!(f, ": {} targets ({}{more})", many.len(), shown.join(", "))?;
            }
        }
        if let Some(key) = &self.key {
            write!(f, ": {key}")?;
        }
        write!(f, ": {}", self.message)
    }
}

/// The planner's answer.
#[derive(Debug, Default)]
pub struct Plan {
    /// Secrets to write, sorted by namespace then name.
    pub secrets: Vec<DesiredSecret>,
    /// Everything that failed.
    pub errors: Vec<PlanError>,
    /// Targets (`namespace/name`) the provider gave no data for and that the input holds
    /// no Secret of: ESO writes nothing and keeps what exists, which a files world cannot
    /// print back (so a GitOps tool would prune it).
    pub unwritten: Vec<String>,
}

/// A target without its values, as `check` lists it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct PlannedTarget {
    /// Target namespace.
    pub namespace: String,
    /// Target name.
    pub name: String,
    /// Secret type as the template declares it.
    pub type_: String,
    /// Manifest it comes from.
    pub owner: String,
}

/// `check`'s answer: every target and every error found without reading a value.
#[derive(Debug, Default)]
pub struct CheckReport {
    /// Targets, sorted.
    pub targets: Vec<PlannedTarget>,
    /// Problems.
    pub errors: Vec<PlanError>,
}

/// A failure before a target is named (crate-private: [`PlanError`] is the public form), with the field at fault.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct Failure {
    pub(super) key: Option<String>,
    pub(super) message: String,
    pub(super) source_missing: bool,
}

impl Failure {
    pub(super) fn new(key: impl Into<Option<String>>, message: impl Into<String>) -> Self {
        Self {
            key: key.into(),
            message: message.into(),
            source_missing: false,
        }
    }

    pub(super) fn fetch(key: impl Into<Option<String>>, error: FetchError) -> Self {
        Self {
            key: key.into(),
            message: error.message,
            source_missing: error.source_missing,
        }
    }
}
