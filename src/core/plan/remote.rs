//! What a plan will read from remote stores, collected before planning so that each
//! value is fetched once per reconcile however many targets use it.

use super::stores::spec_for_store;
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
        let mut add = |provider: &std::sync::Arc<dyn crate::core::provider::StoreProvider>,
                       spec: &crate::core::model::ExternalSecretSpec| {
            let Some(key) = provider.remote_key(namespace) else {
                return;
            };
            let entry = requests
                .stores
                .entry(key)
                .or_insert_with(|| StoreReads::new(provider.clone(), namespace));
            provider.remote_reads(namespace, spec, entry);
        };
        if store.entries.is_empty() {
            add(&store.provider, instance.spec);
            continue;
        }
        // Each store reads only the entries that name it (sourceRef.storeRef).
        add(&store.provider, &spec_for_store(instance.spec, None));
        for (reference, provider) in &store.entries {
            add(provider, &spec_for_store(instance.spec, Some(reference)));
        }
    }
    requests
}
