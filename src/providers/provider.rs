//! The interface every provider implements: parse its `spec.provider.<name>` (the pure
//! half, [`StoreProvider`], is what the planner sees) and fetch what a plan needs of it,
//! once per reconcile.

use std::ops::AddAssign;
use std::sync::Arc;

use futures::future::BoxFuture;
use serde_json::Value;

use crate::core::provider::{StoreInfo, StoreProvider, StoreReads};
use crate::core::world::World;

/// One ESO provider.
pub trait Provider: Sync {
    /// `spec.provider.<name>`.
    fn name(&self) -> &'static str;

    /// Parses and validates a store's configuration. The error names the field at
    /// fault, never a value.
    fn parse(
        &self,
        config: &Value,
        store: &StoreInfo<'_>,
    ) -> Result<Arc<dyn StoreProvider>, String>;

    /// Fetches the reads a plan needs of one of this provider's stores into
    /// `world.remote_reads` / `remote_finds`, each once. Only asked for stores with a
    /// [`StoreProvider::remote_key`]; providers that read the world's own Secrets fetch
    /// nothing here.
    fn prefetch<'a>(
        &'a self,
        reads: &'a StoreReads,
        world: &'a mut World,
        cluster: Option<&'a kube::Client>,
    ) -> BoxFuture<'a, FetchStats> {
        let _ = (reads, world, cluster);
        Box::pin(async { FetchStats::default() })
    }
}

/// What a prefetch did, for logs and benchmarks.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FetchStats {
    /// Secret reads (GET), retries included.
    pub reads: u64,
    /// Metadata listings, for `find`.
    pub lists: u64,
    /// Logins (AppRole, Kubernetes auth).
    pub logins: u64,
    /// Webhook requests, retries included.
    pub webhook_requests: u64,
}

impl AddAssign for FetchStats {
    fn add_assign(&mut self, other: Self) {
        self.reads += other.reads;
        self.lists += other.lists;
        self.logins += other.logins;
        self.webhook_requests += other.webhook_requests;
    }
}
