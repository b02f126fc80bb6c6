//! What a plan will read from remote stores, collected before planning so that each
//! value is fetched once per reconcile however many targets use it.

use super::targets::Planner;
use crate::core::load::Manifests;
use crate::core::provider::{ProviderRegistry, RemoteRequests, StoreReads};
use crate::core::world::World;

/// Every remote read the plan of `(manifests, world)` will make.
pub fn remote_requests(
    manifests: &Manifests,
    world: &World,
    providers: &dyn ProviderRegistry,
) -> RemoteRequests {
    let planner = Planner::new(manifests, world, providers);
    let (instances, _) = planner.instances();
    let mut requests = RemoteRequests::default();
    for instance in &instances {
        let Ok(store) = planner.resolve_store(instance) else {
            continue;
        };
        let namespace = instance.namespace.as_str();
        let Some(key) = store.provider.remote_key(namespace) else {
            continue;
        };
        let entry = requests
            .stores
            .entry(key)
            .or_insert_with(|| StoreReads::new(store.provider.clone(), namespace));
        store.provider.remote_reads(namespace, instance.spec, entry);
    }
    requests
}
