//! The interface every provider implements: parse its `spec.provider.<name>` (the pure
//! half, [`StoreProvider`], is what the planner sees) and fetch what a plan needs of it,
//! once per reconcile.

use std::collections::{BTreeMap, HashMap};
use std::ops::AddAssign;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::future::BoxFuture;
use serde_json::Value;

use crate::core::provider::{StoreInfo, StoreProvider, StoreReads};
use crate::core::secret_bytes::SecretBytes;
use crate::core::world::{RemoteFinds, RemoteReads, StoreSecrets, World};

/// One ESO provider.
pub trait Provider: Sync {
    /// `spec.provider.<name>`.
    fn name(&self) -> &'static str;

    /// The fields of `spec.provider.<name>` this provider reads, as paths (`server`,
    /// `auth.tokenSecretRef`, list items as `[]`): a path covers everything under it
    /// unless longer paths name some of its children. Every other field ESO defines is
    /// refused by name before [`Provider::parse`] runs
    /// ([`crate::core::schema::unimplemented_provider_fields`]): nothing is dropped.
    fn implemented(&self) -> &'static [&'static str];

    /// Parses and validates a store's configuration. The error names the field at
    /// fault, never a value.
    fn parse(
        &self,
        config: &Value,
        store: &StoreInfo<'_>,
    ) -> Result<Arc<dyn StoreProvider>, String>;

    /// Fetches the reads a plan needs of one of this provider's stores, each once, into
    /// `fetched` (merged into the world's `remote_reads` / `remote_finds` /
    /// `store_secrets` afterwards). `world` is read only (credential Secrets, the block
    /// list), so every store's fetch can run at once. Only asked for stores with a
    /// [`StoreProvider::remote_key`]; providers that read the world's own Secrets fetch
    /// nothing here.
    fn prefetch<'a>(
        &'a self,
        reads: &'a StoreReads,
        world: &'a World,
        context: &'a FetchContext,
        fetched: &'a mut Fetched,
    ) -> BoxFuture<'a, FetchStats> {
        let _ = (reads, world, context, fetched);
        Box::pin(async { FetchStats::default() })
    }
}

/// What one store's fetch found, for the world (see [`World`]'s fields of the same names).
#[derive(Debug, Default)]
pub struct Fetched {
    /// Values read, by `(store, path, version)`.
    pub remote_reads: RemoteReads,
    /// Paths found, by `(store, pattern)`.
    pub remote_finds: RemoteFinds,
    /// Source Secrets read with a store's own identity, by its remote key.
    pub store_secrets: BTreeMap<String, StoreSecrets>,
}

impl Fetched {
    /// Moves what was fetched into `world`.
    pub fn into_world(self, world: &mut World) {
        world.remote_reads.extend(self.remote_reads);
        world.remote_finds.extend(self.remote_finds);
        world.store_secrets.extend(self.store_secrets);
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

/// What fetching may use besides the stores' own configuration. It lives as long as the
/// process: `run` keeps one across reconciles, so ServiceAccount tokens are reused until
/// shortly before they expire instead of being requested per reconcile or per target.
#[derive(Clone, Default)]
pub struct FetchContext {
    /// courier's own client and the configuration it was built from (the default server
    /// and CA of Kubernetes stores); `None` for a files world.
    pub cluster: Option<(kube::Client, kube::Config)>,
    /// ServiceAccount tokens requested for stores.
    pub tokens: TokenCache,
    /// Session credentials stores obtained (AWS STS), kept until shortly before they
    /// expire.
    pub sessions: SessionCache,
    /// Counts every HTTP request the stores' own clients send, with courier's.
    pub requests: Option<prometheus_client::metrics::counter::Counter>,
}

impl FetchContext {
    /// A context for a live cluster.
    pub fn live(
        client: kube::Client,
        config: kube::Config,
        requests: prometheus_client::metrics::counter::Counter,
    ) -> Self {
        Self {
            cluster: Some((client, config)),
            tokens: TokenCache::default(),
            sessions: SessionCache::default(),
            requests: Some(requests),
        }
    }

    /// courier's own client, when live.
    pub fn client(&self) -> Option<&kube::Client> {
        self.cluster.as_ref().map(|(client, _)| client)
    }
}

/// A ServiceAccount token request: namespace, name and audiences.
pub type TokenKey = (String, String, Vec<String>);

/// Requested ServiceAccount tokens, each renewed once 80 % of its lifetime has passed.
#[derive(Clone, Default)]
pub struct TokenCache {
    tokens: Arc<Mutex<HashMap<TokenKey, (SecretBytes, Instant)>>>,
}

impl TokenCache {
    /// A token still comfortably valid.
    pub fn get(&self, key: &TokenKey) -> Option<SecretBytes> {
        let tokens = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        tokens
            .get(key)
            .filter(|(_, renew_at)| Instant::now() < *renew_at)
            .map(|(token, _)| token.clone())
    }

    /// Keeps a token that is valid for `lifetime` from now.
    pub fn put(&self, key: TokenKey, token: SecretBytes, lifetime: Duration) {
        let renew_at = Instant::now() + lifetime.mul_f64(0.8);
        let mut tokens = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        tokens.insert(key, (token, renew_at));
    }

    /// Forgets a token the API server refused (its ServiceAccount was recreated, say).
    pub fn evict(&self, key: &TokenKey) {
        let mut tokens = self.tokens.lock().unwrap_or_else(|e| e.into_inner());
        tokens.remove(key);
    }
}

/// A provider's session (its own type) and the instant it must be renewed at.
type Session = (Arc<dyn std::any::Any + Send + Sync>, Instant);

/// Session credentials by a key the provider makes, each with the instant it must be
/// renewed at. Values are the provider's own type.
#[derive(Clone, Default)]
pub struct SessionCache {
    sessions: Arc<Mutex<HashMap<String, Session>>>,
}

impl SessionCache {
    /// A session not yet due for renewal.
    pub fn get<T: Clone + Send + Sync + 'static>(&self, key: &str) -> Option<T> {
        let sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        sessions
            .get(key)
            .filter(|(_, renew_at)| Instant::now() < *renew_at)
            .and_then(|(value, _)| value.downcast_ref::<T>().cloned())
    }

    /// Keeps a session until `renew_at`.
    pub fn put<T: Send + Sync + 'static>(&self, key: String, value: T, renew_at: Instant) {
        let mut sessions = self.sessions.lock().unwrap_or_else(|e| e.into_inner());
        sessions.retain(|_, (_, at)| Instant::now() < *at);
        sessions.insert(key, (Arc::new(value), renew_at));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_is_renewed_after_eighty_percent_of_its_life() {
        let cache = TokenCache::default();
        let key = ("ns".to_owned(), "sa".to_owned(), Vec::new());
        cache.put(
            key.clone(),
            SecretBytes::from("t"),
            Duration::from_secs(3600),
        );
        assert!(cache.get(&key).is_some());
        cache.put(
            key.clone(),
            SecretBytes::from("t"),
            Duration::from_millis(10),
        );
        std::thread::sleep(Duration::from_millis(9));
        assert!(
            cache.get(&key).is_none(),
            "8 ms of a 10 ms token is past 80 %"
        );
        cache.put(
            key.clone(),
            SecretBytes::from("t"),
            Duration::from_secs(3600),
        );
        cache.evict(&key);
        assert!(cache.get(&key).is_none());
    }
}
