//! Reading remote stores (Vault/OpenBao, webhooks) before planning.

use crate::plan::RemoteRequests;
use crate::vault::FetchStats;
use crate::world::World;

/// Fetches everything `requests` names into the world; the planner then reads it there.
pub async fn prefetch(
    requests: &RemoteRequests,
    world: &mut World,
    cluster: Option<&kube::Client>,
) -> FetchStats {
    let mut stats = crate::vault::prefetch(requests, world, cluster).await;
    stats.webhook_requests = crate::webhook::prefetch(requests, world).await;
    tracing::info!(
        reads = stats.reads,
        lists = stats.lists,
        logins = stats.logins,
        webhook_requests = stats.webhook_requests,
        "read remote stores"
    );
    stats
}
