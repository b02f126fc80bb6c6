//! ESO's providers, one file each, behind one small trait ([`Provider`]): parse and
//! validate `spec.provider.<name>`, say which reads a plan needs, fetch them once per
//! reconcile. The planner sees only the pure half ([`crate::core::provider`]).
//!
//! Adding a provider (AWS Secrets Manager, say) is one new file and one line:
//!
//! 1. `src/providers/aws.rs` with a unit struct implementing [`Provider`] (`parse` turns
//!    `spec.provider.aws` into a [`StoreProvider`]; a remote provider also sets
//!    `remote_key`/`remote_reads` and implements `prefetch`);
//! 2. `aws::Aws` added to the `providers!` line below, which declares the module and
//!    registers it.

mod common;
pub mod provider;

use std::sync::Arc;

use serde_json::Value;

pub use provider::{FetchContext, FetchStats, Provider, TokenCache};

use crate::core::provider::{
    ProviderError, ProviderRegistry, RemoteRequests, StoreInfo, StoreProvider,
};
use crate::core::world::World;

/// Declares each provider's module and registers it in [`PROVIDERS`].
macro_rules! providers {
    ($($module:ident :: $provider:ident),* $(,)?) => {
        $(pub mod $module;)*
        /// Every provider courier knows, by `spec.provider.<name>`.
        pub static PROVIDERS: &[&dyn Provider] = &[$(&$module::$provider),*];
    };
}

providers![kubernetes::Kubernetes, vault::Vault, webhook::Webhook];

/// The registry the planner parses stores with: [`PROVIDERS`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Registry;

impl ProviderRegistry for Registry {
    fn parse(
        &self,
        name: &str,
        config: &Value,
        store: &StoreInfo<'_>,
    ) -> Result<Arc<dyn StoreProvider>, ProviderError> {
        let provider =
            PROVIDERS
                .iter()
                .find(|p| p.name() == name)
                .ok_or_else(|| ProviderError::Unknown {
                    known: PROVIDERS.iter().map(|p| p.name()).collect(),
                })?;
        provider
            .parse(config, store)
            .map_err(ProviderError::Invalid)
    }
}

/// Fetches everything `requests` names into the world, store by store; the planner then
/// reads it there.
pub async fn prefetch(
    requests: &RemoteRequests,
    world: &mut World,
    context: &FetchContext,
) -> FetchStats {
    let mut stats = FetchStats::default();
    for wanted in requests.stores.values() {
        let name = wanted.store.provider_name();
        if let Some(provider) = PROVIDERS.iter().find(|p| p.name() == name) {
            stats += provider.prefetch(wanted, world, context).await;
        }
    }
    tracing::info!(
        reads = stats.reads,
        lists = stats.lists,
        logins = stats.logins,
        webhook_requests = stats.webhook_requests,
        "read remote stores"
    );
    stats
}
