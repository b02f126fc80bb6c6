//! What the planner asks of a store's provider, and nothing more.
//!
//! The planner knows no provider's fields. It hands a store's `spec.provider.<name>` to a
//! [`ProviderRegistry`] (the real one is `crate::providers::Registry`), gets back a
//! [`StoreProvider`], and from then on only asks it for a [`SecretsClient`]: ESO's
//! three calls, answered from the [`World`] snapshot. Providers that read over the
//! network (Vault, webhooks) say which reads a plan needs ([`StoreProvider::remote_reads`]);
//! those are fetched once per reconcile, outside the core, into the world.

use std::any::Any;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use crate::core::load::{Origin, StoreKind};
use crate::core::model::{ExternalSecretSpec, FindRef, RemoteRef};
use crate::core::secret_bytes::SecretBytes;
use crate::core::world::World;

/// A map of values, as providers return them.
pub type SecretMap = BTreeMap<String, SecretBytes>;

/// Why a value could not be fetched. Messages name stores, Secrets and keys, never values.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct FetchError {
    /// What went wrong.
    pub message: String,
    /// The source itself is gone (what `deletionPolicy` is about).
    pub source_missing: bool,
}

impl FetchError {
    /// A fetch failure.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            source_missing: false,
        }
    }
}

/// The calls an ExternalSecret makes on its store (ESO's `SecretsClient`).
pub trait SecretsClient {
    /// One value (`data[].remoteRef`).
    fn get_secret(&self, remote_ref: &RemoteRef) -> Result<SecretBytes, FetchError>;
    /// Every key of one source (`dataFrom[].extract`).
    fn get_secret_map(&self, remote_ref: &RemoteRef) -> Result<SecretMap, FetchError>;
    /// Many sources (`dataFrom[].find`).
    fn get_all_secrets(&self, find: &FindRef) -> Result<SecretMap, FetchError>;
}

/// The store whose `spec.provider` is being parsed.
#[derive(Debug, Clone, Copy)]
pub struct StoreInfo<'a> {
    /// `SecretStore` (namespaced) or `ClusterSecretStore`.
    pub kind: StoreKind,
    /// The store's own namespace (a SecretStore's).
    pub namespace: Option<&'a str>,
    /// `metadata.name`.
    pub name: &'a str,
    /// `Kind/namespace/name`: how errors and prefetched values name the store.
    pub display: &'a str,
    /// File and line of the store's manifest.
    pub origin: &'a Origin,
    /// The store's annotations (`courier.dev/template-engine` for webhook templates).
    pub annotations: &'a crate::core::model::StringMap,
    /// The world comes from a live cluster ([`World::live`]): stores must then read with
    /// the identity they name, not with courier's.
    pub live: bool,
}

impl StoreInfo<'_> {
    /// ESO's rule for a reference's `namespace`: a SecretStore may only name its own (a
    /// tenant's store must not borrow another namespace's credentials); a
    /// ClusterSecretStore may name any.
    pub fn check_reference(&self, field: &str, named: Option<&str>) -> Result<(), String> {
        let own = self.namespace.unwrap_or_default();
        match named.filter(|n| !n.is_empty()) {
            Some(named) if self.kind == StoreKind::SecretStore && named != own => Err(format!(
                "{field}.namespace: a SecretStore reads credentials from its own namespace ({own}), not {named}"
            )),
            _ => Ok(()),
        }
    }

    /// The namespace a credential reference is read from: a SecretStore's own (ESO
    /// ignores the reference's), a ClusterSecretStore's reference's own.
    pub fn reference_namespace(&self, named: Option<&str>) -> Option<String> {
        match self.kind {
            StoreKind::SecretStore => self.namespace.map(str::to_owned),
            StoreKind::ClusterSecretStore => named.map(str::to_owned),
        }
        .filter(|n| !n.is_empty())
    }
}

/// One store's `spec.provider.<name>`, parsed and validated by its provider.
///
/// `namespace` is always the namespace of the ExternalSecret being planned: ESO resolves
/// a ClusterSecretStore's references that name no namespace ("referent" auth) there, so
/// the identity a store reads with may differ from one target namespace to the next.
pub trait StoreProvider: fmt::Debug + Send + Sync + Any {
    /// `spec.provider.<name>`: which provider parsed it.
    fn provider_name(&self) -> &'static str;

    /// Targets of one ClusterExternalSecret whose stores share this key render the same
    /// Secret, so the planner renders it once.
    fn share_key(&self, namespace: &str) -> String;

    /// Answers an ExternalSecret's calls from the world, prefetched values included.
    fn client<'w>(&'w self, world: &'w World, namespace: &str) -> Box<dyn SecretsClient + 'w>;

    /// For a store read over the network (or with an identity of its own): the key its
    /// prefetched values are kept under in the world. `None` for a store that reads the
    /// world's own Secrets.
    fn remote_key(&self, namespace: &str) -> Option<String> {
        let _ = namespace;
        None
    }

    /// Adds the remote reads `spec` (in `namespace`) makes of this store; only asked
    /// when [`StoreProvider::remote_key`] is set.
    fn remote_reads(&self, namespace: &str, spec: &ExternalSecretSpec, reads: &mut StoreReads) {
        let _ = (namespace, spec, reads);
    }

    /// Namespaces whose Secrets courier's own identity lists into the world for this
    /// store: only ever credential material, or, for a files world, the sources.
    fn world_namespaces(&self) -> BTreeSet<String>;

    /// Namespaces where a changed Secret may change what this store returns (sources and
    /// credentials): `run` watches their metadata, never their values.
    fn watched_namespaces(&self) -> BTreeSet<String> {
        self.world_namespaces()
    }

    /// For the provider's own fetch step, which needs its concrete type back.
    fn as_any(&self) -> &dyn Any;
}

/// Why a store's `spec.provider` could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProviderError {
    /// No provider of that name is registered.
    Unknown {
        /// The names that are.
        known: Vec<&'static str>,
    },
    /// The configuration is invalid: the field at fault and why, never a value.
    Invalid(String),
    /// Fields ESO defines that courier does not implement, by full path
    /// ([`crate::core::schema::unimplemented_provider_fields`]).
    Unsupported(Vec<crate::core::schema::FieldError>),
}

/// Turns `spec.provider.<name>` into a [`StoreProvider`].
pub trait ProviderRegistry: Sync {
    /// Parses and validates one store's provider configuration.
    fn parse(
        &self,
        name: &str,
        config: &serde_json::Value,
        store: &StoreInfo<'_>,
    ) -> Result<Arc<dyn StoreProvider>, ProviderError>;
}

/// The remote reads of one store (and identity), collected from every target that uses it.
#[derive(Debug, Clone)]
pub struct StoreReads {
    /// The store, as its provider parsed it.
    pub store: Arc<dyn StoreProvider>,
    /// The ExternalSecret namespace the reads were first collected for: where a
    /// ClusterSecretStore's referent credentials are resolved.
    pub namespace: String,
    /// `(read key, version)` pairs; what a read key means is the provider's business.
    pub reads: BTreeSet<(String, Option<String>)>,
    /// `find.name.regexp` patterns to list and read.
    pub finds: BTreeSet<String>,
}

impl StoreReads {
    /// No reads yet.
    pub fn new(store: Arc<dyn StoreProvider>, namespace: &str) -> Self {
        Self {
            store,
            namespace: namespace.to_owned(),
            reads: BTreeSet::new(),
            finds: BTreeSet::new(),
        }
    }
}

/// What a plan will read from remote stores (and stores that read with an identity of
/// their own), so it can be fetched before planning: once
/// per reconcile, however many targets use a value.
#[derive(Debug, Default, Clone)]
pub struct RemoteRequests {
    /// Per [`StoreProvider::remote_key`].
    pub stores: BTreeMap<String, StoreReads>,
}

impl RemoteRequests {
    /// Adds `other`'s reads (another cluster's plan of the same manifests), so each
    /// value is still fetched once.
    pub fn merge(&mut self, other: RemoteRequests) {
        for (key, reads) in other.stores {
            match self.stores.entry(key) {
                std::collections::btree_map::Entry::Vacant(entry) => {
                    entry.insert(reads);
                }
                std::collections::btree_map::Entry::Occupied(mut entry) => {
                    entry.get_mut().reads.extend(reads.reads);
                    entry.get_mut().finds.extend(reads.finds);
                }
            }
        }
    }
}
