//! `courier run`: reconcile at start, then on every relevant change (debounced) and on a
//! jittered resync interval; health, readiness and Prometheus metrics over HTTP.
//!
//! Watches only trigger reconciles; each reconcile still reads the world with its few
//! LISTs, so `run` and `apply` always decide from the same fresh snapshot. Watches are
//! metadata-only: no secret value travels over them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use futures::StreamExt as _;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::Api;
use kube::core::PartialObjectMeta;
use kube::runtime::WatchStreamExt as _;
use kube::runtime::watcher::{self, Event};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use tokio::sync::Notify;

use crate::core::duration::parse_go_duration;
use crate::core::labels::{MANAGED_BY_LABEL, MANAGED_BY_VALUE};
use crate::core::load::Manifests;
use crate::core::plan::watched_namespaces;
use crate::core::world::BlockList;
use crate::live::apply::ApplyOptions;
use crate::live::fleet::Fleet;
use crate::live::leader::{self, LeaderConfig, Leadership};
use crate::live::reconcile::{ManifestSource, ReconcileError, reconcile_once};
use crate::providers::Registry as Providers;

/// How `run` behaves.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Manifests: files re-read at every reconcile (a mounted ConfigMap may change), or the cluster.
    pub source: ManifestSource,
    /// Writes.
    pub apply: ApplyOptions,
    /// What is never read or written.
    pub block_list: BlockList,
    /// Longest time between full resyncs; shorter `refreshInterval`/`refreshTime` win.
    pub refresh: Duration,
    /// Quiet time after a change before reconciling, so a burst makes one reconcile.
    pub debounce: Duration,
    /// Where `/healthz`, `/readyz` and `/metrics` listen; none to disable.
    pub metrics_addr: Option<SocketAddr>,
    /// Leader election among replicas; none when this is the only writer.
    pub leader: Option<LeaderConfig>,
}

/// Shortest resync any manifest asks for.
const MIN_REFRESH: Duration = Duration::from_secs(5);

/// Prometheus metrics of the controller.
#[derive(Default)]
pub struct Metrics {
    reconciles: Counter,
    reconcile_failures: Counter,
    target_errors: Gauge,
    created: Counter,
    updated: Counter,
    deleted: Counter,
    api_requests: Counter<u64>,
    api_writes: Counter<u64>,
    leader: Gauge,
    last_success: Gauge<f64, AtomicU64>,
    ready: AtomicBool,
    /// Set by a failing watch, cleared by the next event: the API server is away.
    api_unreachable: Arc<AtomicBool>,
    /// Watches the API server refuses (RBAC): courier would miss changes until a resync.
    forbidden_watches: Arc<AtomicUsize>,
    /// The API server's own `/readyz` failed at the last probe (etcd away, say, while
    /// watches still stream from its cache).
    probe_failed: Arc<AtomicBool>,
    /// Per cluster: 1 when its last reconcile reached it, 0 when not.
    cluster_ready: Family<ClusterLabel, Gauge>,
    /// Per cluster: targets that failed in its last reconcile.
    cluster_target_errors: Family<ClusterLabel, Gauge>,
    /// Per cluster: requests sent to its API server.
    cluster_api_requests: Family<ClusterLabel, Counter<u64>>,
    /// ESO's own controller metrics (`--from-cluster`), for its dashboard and alerts.
    eso: crate::live::metrics::EsoMetrics,
    /// Per cluster: whether it was reached, and if not why (for `/readyz/clusters`).
    cluster_states: std::sync::Mutex<std::collections::BTreeMap<String, Option<String>>>,
}

/// The `cluster` label of per-cluster metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ClusterLabel {
    cluster: String,
}

/// How often `run` asks the API server whether it is ready.
const PROBE_INTERVAL: Duration = Duration::from_secs(10);

/// Probes the API server's `/readyz` (readable by every identity through the default
/// `system:public-info-viewer` role); a failure asks for a reconcile, which backs off.
fn spawn_probe(client: kube::Client, failed: Arc<AtomicBool>, changed: Arc<Notify>) {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(PROBE_INTERVAL).await;
            let request = match axum::http::Request::get("/readyz").body(Vec::new()) {
                Ok(request) => request,
                Err(_) => return,
            };
            let ready =
                matches!(client.request_text(request).await, Ok(body) if body.trim() == "ok");
            let was_failed = failed.swap(!ready, Ordering::Relaxed);
            if !ready {
                tracing::warn!("the Kubernetes API server reports it is not ready");
                changed.notify_one();
            } else if was_failed {
                tracing::info!("the Kubernetes API server is ready again");
                changed.notify_one();
            }
        }
    });
}

impl Metrics {
    fn registry(&self) -> Registry {
        let mut registry = Registry::with_prefix("courier");
        registry.register("reconciles", "Reconciles run", self.reconciles.clone());
        registry.register(
            "reconcile_failures",
            "Reconciles that could not read or load their inputs",
            self.reconcile_failures.clone(),
        );
        registry.register(
            "target_errors",
            "Targets and manifests that failed in the last reconcile",
            self.target_errors.clone(),
        );
        registry.register("secrets_created", "Secrets created", self.created.clone());
        registry.register("secrets_updated", "Secrets updated", self.updated.clone());
        registry.register("secrets_deleted", "Secrets deleted", self.deleted.clone());
        registry.register(
            "api_requests",
            "Requests sent to the Kubernetes API",
            self.api_requests.clone(),
        );
        registry.register(
            "api_writes",
            "Write requests (not GET) sent to the Kubernetes API, leader lease excluded",
            self.api_writes.clone(),
        );
        registry.register(
            "leader",
            "1 while this process may write (the leader, or the only instance)",
            self.leader.clone(),
        );
        registry.register(
            "cluster_ready",
            "Per cluster: 1 when the last reconcile reached it",
            self.cluster_ready.clone(),
        );
        registry.register(
            "cluster_target_errors",
            "Per cluster: targets that failed in the last reconcile",
            self.cluster_target_errors.clone(),
        );
        registry.register(
            "cluster_api_requests",
            "Per cluster: requests sent to its Kubernetes API",
            self.cluster_api_requests.clone(),
        );
        registry.register(
            "last_success_timestamp_seconds",
            "Unix time of the last reconcile without errors",
            self.last_success.clone(),
        );
        registry
    }
}

struct Served {
    metrics: Arc<Metrics>,
    registry: Registry,
}

/// Runs until SIGTERM or SIGINT.
pub async fn run(fleet: Fleet, mut options: RunOptions) -> anyhow::Result<()> {
    // What this process writes for targets whose template varies, so that its own write
    // (which wakes the next reconcile) does not make it write again (live::varying).
    options
        .apply
        .written
        .get_or_insert_with(crate::live::varying::Written::default);
    let connection = fleet.hub.clone();
    let metrics = Arc::new(Metrics {
        api_requests: connection.request_counter.clone(),
        api_writes: connection.write_counter.clone(),
        ..Metrics::default()
    });
    if let Some(addr) = options.metrics_addr {
        let served = Arc::new(Served {
            metrics: metrics.clone(),
            registry: metrics.registry(),
        });
        let router = Router::new()
            .route("/healthz", get(|| async { "ok" }))
            .route("/readyz", get(readyz))
            .route("/readyz/clusters", get(readyz_clusters))
            .route("/metrics", get(metrics_text))
            .with_state(served);
        let listener = tokio::net::TcpListener::bind(addr).await?;
        tracing::info!(addr = %listener.local_addr()?, "serving /healthz, /readyz and /metrics");
        tokio::spawn(async move {
            if let Err(e) = axum::serve(listener, router).await {
                tracing::error!(error = %e, "metrics server stopped");
            }
        });
    }

    let changed = Arc::new(Notify::new());
    let watch = |what| Watch {
        what,
        changed: changed.clone(),
        api_unreachable: metrics.api_unreachable.clone(),
        forbidden_watches: metrics.forbidden_watches.clone(),
    };
    spawn_probe(
        connection.client.clone(),
        metrics.probe_failed.clone(),
        changed.clone(),
    );
    let mut watched_store_namespaces = Vec::new();
    spawn_watch(
        watch("namespaces"),
        Api::<PartialObjectMeta<Namespace>>::all(connection.client.clone()),
        watcher::Config::default(),
    );
    let managed =
        watcher::Config::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGED_BY_VALUE}"));
    spawn_watch(
        watch("managed Secrets"),
        Api::<PartialObjectMeta<Secret>>::all(connection.client.clone()),
        managed,
    );

    if matches!(options.source, ManifestSource::Cluster) {
        // ESO's objects are the manifests: a ClusterExternalSecret, an ExternalSecret or a
        // store created, edited or deleted is reconciled at once, not at the next resync.
        for (kind, _) in crate::live::eso::ESO_RESOURCES {
            spawn_spec_watch(
                watch(kind),
                Api::<PartialObjectMeta<kube::api::DynamicObject>>::all_with(
                    connection.client.clone(),
                    &crate::live::eso::resource(kind),
                ),
            );
        }
    }

    if let Some(namespace) = &fleet.options.cluster_secrets_namespace {
        // A cluster added, relabelled or removed in Argo CD changes where targets go.
        spawn_watch(
            watch("Argo CD cluster Secrets"),
            Api::<PartialObjectMeta<Secret>>::namespaced(connection.client.clone(), namespace),
            watcher::Config::default().labels(&format!(
                "{}=cluster",
                crate::live::fleet::ARGOCD_SECRET_TYPE_LABEL
            )),
        );
    }

    let mut leadership = match &options.leader {
        Some(config) => {
            tracing::info!(
                identity = config.identity.as_str(),
                lease = format!("{}/{}", config.namespace, config.name).as_str(),
                "campaigning for leadership; writes wait until this process leads"
            );
            Some(leader::campaign(
                connection.unfenced.clone(),
                config.clone(),
                connection.fence.clone(),
                metrics.leader.clone(),
            ))
        }
        None => {
            metrics.leader.set(1);
            None
        }
    };

    let mut shutdown = std::pin::pin!(shutdown_signal());
    let mut failures: u32 = 0;
    // Members whose namespaces and targets are watched, by name.
    let mut watched_members = std::collections::BTreeSet::new();
    // Reconciles in a row in which some member cluster could not be reached.
    let mut cluster_failures: u32 = 0;
    loop {
        if let Some(leadership) = leadership.as_mut()
            && !*leadership.leading.borrow_and_update()
        {
            // A standby keeps its watches warm and answers probes; it never reconciles.
            metrics.ready.store(true, Ordering::Relaxed);
            tokio::select! {
                _ = &mut shutdown => break,
                _ = until_changed(&mut leadership.leading) => continue,
            }
        }
        // A leader that loses the lease mid-reconcile stops at once: its writes would be
        // refused anyway, and a request hung on a broken connection would otherwise keep
        // this loop from ever noticing the lease coming back.
        let outcome = tokio::select! {
            outcome = reconcile(&fleet, &options, &metrics) => outcome,
            _ = until_lost(&mut leadership) => {
                tracing::warn!("lost the lease during a reconcile; stopped it");
                continue;
            }
        };
        let resync = match &outcome {
            Ok((manifests, reached)) => {
                failures = 0;
                // A member's namespaces and targets are watched from the first time it answers.
                for (name, client) in reached {
                    if watched_members.insert(name.clone()) {
                        spawn_member_watches(name, client, &changed);
                    }
                }
                for namespace in watched_namespaces(manifests, &Providers, true) {
                    if !watched_store_namespaces.contains(&namespace) {
                        let api = Api::<PartialObjectMeta<Secret>>::namespaced(
                            connection.client.clone(),
                            &namespace,
                        );
                        spawn_watch(watch("store Secrets"), api, watcher::Config::default());
                        watched_store_namespaces.push(namespace);
                    }
                }
                let resync = refresh_interval(manifests, options.refresh);
                let unreached = metrics
                    .cluster_states
                    .lock()
                    .map(|states| states.values().any(Option::is_some))
                    .unwrap_or(false);
                if unreached {
                    // A member that did not answer is tried again with backoff: 1 s, 2 s ... 60 s;
                    // the others are a no-op then (a few LISTs each).
                    cluster_failures = cluster_failures.saturating_add(1);
                    let backoff = Duration::from_secs(1u64 << cluster_failures.min(6))
                        .min(Duration::from_secs(60));
                    with_jitter(resync.min(backoff))
                } else {
                    cluster_failures = 0;
                    with_jitter(resync)
                }
            }
            Err(_) => {
                failures = failures.saturating_add(1);
                // Back off while the API server is away: 1 s, 2 s, 4 s ... 60 s.
                with_jitter(
                    Duration::from_secs(1u64 << failures.min(6)).min(Duration::from_secs(60)),
                )
            }
        };
        if outcome.is_err() {
            // While the API is away, changes wait for the backoff: no retry storm.
            tokio::select! {
                _ = &mut shutdown => break,
                _ = until_lost(&mut leadership) => continue,
                _ = tokio::time::sleep(resync) => continue,
            }
        }
        tokio::select! {
            _ = &mut shutdown => break,
            _ = until_lost(&mut leadership) => continue,
            _ = tokio::time::sleep(resync) => tracing::debug!("resync"),
            _ = changed.notified() => {
                tokio::select! {
                    _ = &mut shutdown => break,
                    _ = tokio::time::sleep(options.debounce) => tracing::debug!("change"),
                }
            }
        }
    }
    tracing::info!("shutting down");
    if let Some(leadership) = leadership {
        leadership.release().await;
    }
    Ok(())
}

/// Waits for the next change of leadership; never returns once the election ended.
async fn until_changed(leading: &mut tokio::sync::watch::Receiver<bool>) {
    if leading.changed().await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Waits until this process stops leading; never returns without leader election.
async fn until_lost(leadership: &mut Option<Leadership>) {
    match leadership {
        None => std::future::pending::<()>().await,
        Some(leadership) => loop {
            until_changed(&mut leadership.leading).await;
            if !*leadership.leading.borrow_and_update() {
                return;
            }
        },
    }
}

/// Clusters a reconcile reached, by name, with their client (the hub's left out).
type Reached = Vec<(String, kube::Client)>;

async fn reconcile(
    fleet: &Fleet,
    options: &RunOptions,
    metrics: &Metrics,
) -> Result<(Manifests, Reached), ()> {
    metrics.reconciles.inc();
    let outcome =
        match reconcile_once(fleet, &options.source, &options.block_list, &options.apply).await {
            Ok(outcome) => outcome,
            Err(ReconcileError::Load(errors)) => {
                for error in &errors {
                    tracing::error!(%error, "cannot load manifests");
                }
                metrics.reconcile_failures.inc();
                return Err(());
            }
            Err(ReconcileError::Cluster(error)) => {
                tracing::error!(%error, "cannot read the cluster");
                metrics.reconcile_failures.inc();
                metrics.ready.store(false, Ordering::Relaxed);
                return Err(());
            }
        };
    let errors = outcome.error_lines();
    for error in &errors {
        tracing::error!(%error, "reconcile error");
    }
    let report = &outcome.report;
    metrics.created.inc_by(report.created.len() as u64);
    metrics
        .updated
        .inc_by((report.updated.len() + report.adopted.len()) as u64);
    metrics.deleted.inc_by(report.deleted.len() as u64);
    metrics.target_errors.set(errors.len() as i64);
    if errors.is_empty() {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default();
        metrics.last_success.set(now.as_secs_f64());
    }
    metrics.ready.store(true, Ordering::Relaxed);
    metrics.api_unreachable.store(false, Ordering::Relaxed);
    for warning in &outcome.warnings {
        tracing::warn!("{warning}");
    }
    metrics.eso.observe(&outcome.readiness);
    if let [created, updated, deleted] = outcome.eso_objects
        && created + updated + deleted > 0
    {
        tracing::info!(
            created,
            updated,
            deleted,
            "kept the ExternalSecrets of ClusterExternalSecrets"
        );
    }
    let mut states = std::collections::BTreeMap::new();
    for cluster in &outcome.clusters {
        let label = ClusterLabel {
            cluster: cluster.name.clone(),
        };
        let failure = outcome.failures.iter().find(|f| f.cluster == cluster.name);
        metrics
            .cluster_ready
            .get_or_create(&label)
            .set(i64::from(failure.is_none()));
        metrics
            .cluster_target_errors
            .get_or_create(&label)
            .set(cluster.errors as i64);
        let counter = metrics.cluster_api_requests.get_or_create(&label);
        let sent = fleet.requests_of(&cluster.name);
        counter.inc_by(sent.saturating_sub(counter.get()));
        states.insert(cluster.name.clone(), failure.map(|f| f.message.clone()));
        if fleet.is_multi() {
            tracing::info!(
                cluster = cluster.name.as_str(),
                summary = cluster.summary.as_str(),
                requests = sent,
                "cluster reconciled"
            );
        }
    }
    if let Ok(mut current) = metrics.cluster_states.lock() {
        *current = states;
    }
    tracing::info!(
        summary = report.summary().as_str(),
        requests = fleet.requests(),
        "reconciled"
    );
    Ok((outcome.manifests, outcome.reached))
}

/// Watches a member's namespaces (a label change re-selects targets) and the Secrets
/// courier manages there (drift), as the hub's are watched. A member's watch failing
/// does not make courier unready: readiness is the hub's, members have `/readyz/clusters`.
fn spawn_member_watches(name: &str, client: &kube::Client, changed: &Arc<Notify>) {
    tracing::info!(
        cluster = name,
        "watching the member cluster's namespaces and targets"
    );
    let (unreachable, forbidden) = (
        Arc::new(AtomicBool::new(false)),
        Arc::new(AtomicUsize::new(0)),
    );
    let watch = |what| Watch {
        what,
        changed: changed.clone(),
        api_unreachable: unreachable.clone(),
        forbidden_watches: forbidden.clone(),
    };
    spawn_watch(
        watch("member namespaces"),
        Api::<PartialObjectMeta<Namespace>>::all(client.clone()),
        watcher::Config::default(),
    );
    spawn_watch(
        watch("member managed Secrets"),
        Api::<PartialObjectMeta<Secret>>::all(client.clone()),
        watcher::Config::default().labels(&format!("{MANAGED_BY_LABEL}={MANAGED_BY_VALUE}")),
    );
}

struct Watch {
    what: &'static str,
    changed: Arc<Notify>,
    api_unreachable: Arc<AtomicBool>,
    forbidden_watches: Arc<AtomicUsize>,
}

/// A 403 is a standing RBAC gap, not an outage: retrying or reconciling does not fix it.
fn is_forbidden(error: &watcher::Error) -> bool {
    let status = |e: &kube::Error| matches!(e, kube::Error::Api(status) if status.code == 403);
    match error {
        watcher::Error::InitialListFailed(e)
        | watcher::Error::WatchStartFailed(e)
        | watcher::Error::WatchFailed(e) => status(e),
        watcher::Error::WatchError(status) => status.code == 403,
        _ => false,
    }
}

fn spawn_watch<K>(watch: Watch, api: Api<PartialObjectMeta<K>>, config: watcher::Config)
where
    K: kube::Resource
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + Sync
        + 'static,
    K::DynamicType: Default,
{
    drive_watch(watch, watcher::watcher(api, config), |_| true);
}

/// Watches the metadata of an ESO kind and wakes a reconcile when an object comes, goes,
/// or changes its spec (`metadata.generation`), labels or annotations (ESO's `force-sync`
/// annotation, say). A status write, such as courier's own, changes none of these, so it
/// wakes nothing.
fn spawn_spec_watch(watch: Watch, api: Api<PartialObjectMeta<kube::api::DynamicObject>>) {
    type Seen = (
        Option<i64>,
        Option<std::collections::BTreeMap<String, String>>,
        Option<std::collections::BTreeMap<String, String>>,
    );
    let mut seen: std::collections::HashMap<String, Seen> = std::collections::HashMap::new();
    let stream = watcher::watcher(api, watcher::Config::default());
    drive_watch(watch, stream, move |event| {
        let fingerprint = |meta: &kube::api::ObjectMeta| -> (String, Seen) {
            (
                meta.uid.clone().unwrap_or_default(),
                (
                    meta.generation,
                    meta.labels.clone(),
                    meta.annotations.clone(),
                ),
            )
        };
        match event {
            Event::InitApply(object) => {
                let (uid, now) = fingerprint(&object.metadata);
                seen.insert(uid, now);
                false
            }
            Event::Apply(object) => {
                let (uid, now) = fingerprint(&object.metadata);
                seen.insert(uid, now.clone()) != Some(now)
            }
            Event::Delete(object) => {
                seen.remove(&fingerprint(&object.metadata).0);
                true
            }
            Event::Init | Event::InitDone => false,
        }
    });
}

/// Drives a metadata watch: `relevant` says which events wake a reconcile.
fn drive_watch<K, S>(
    watch: Watch,
    stream: S,
    mut relevant: impl FnMut(&Event<PartialObjectMeta<K>>) -> bool + Send + 'static,
) where
    K: Send + 'static,
    PartialObjectMeta<K>: Send,
    S: futures::Stream<Item = Result<Event<PartialObjectMeta<K>>, watcher::Error>> + Send + 'static,
{
    tokio::spawn(async move {
        let mut initial_sync_done = false;
        let mut events = std::pin::pin!(stream.default_backoff());
        let Watch {
            what,
            changed,
            api_unreachable,
            forbidden_watches,
        } = watch;
        let mut forbidden = false;
        while let Some(event) = events.next().await {
            // `Init` is announced before any request is made, so it proves nothing.
            if matches!(
                event,
                Ok(Event::Apply(_) | Event::Delete(_) | Event::InitApply(_) | Event::InitDone)
            ) {
                api_unreachable.store(false, Ordering::Relaxed);
                if forbidden {
                    forbidden = false;
                    forbidden_watches.fetch_sub(1, Ordering::Relaxed);
                }
            }
            match event {
                Ok(ref event @ (Event::Apply(_) | Event::Delete(_))) => {
                    if relevant(event) {
                        changed.notify_one();
                    }
                }
                Ok(ref event @ Event::InitApply(_)) => {
                    relevant(event);
                }
                // A watch that had to list again may have missed changes: reconcile.
                Ok(Event::InitDone) if initial_sync_done => changed.notify_one(),
                Ok(Event::InitDone) => initial_sync_done = true,
                Ok(Event::Init) => {}
                Err(error) if is_forbidden(&error) => {
                    if !forbidden {
                        forbidden = true;
                        forbidden_watches.fetch_add(1, Ordering::Relaxed);
                        tracing::error!(
                            what,
                            %error,
                            "watch forbidden: courier's identity needs the `watch` verb (charts/courier/templates/rbac.yaml); \
                             until then changes are only seen at resync"
                        );
                    }
                }
                Err(error) => {
                    api_unreachable.store(true, Ordering::Relaxed);
                    // Reconcile attempts (with the loop's backoff) tell when the API is back.
                    changed.notify_one();
                    tracing::warn!(what, %error, "watch interrupted; retrying");
                }
            }
        }
    });
}

/// The shortest of `--refresh` and every manifest's `refreshInterval`/`refreshTime`
/// (`0` means "never refresh" in ESO and is skipped), at least [`MIN_REFRESH`].
pub fn refresh_interval(manifests: &Manifests, ceiling: Duration) -> Duration {
    let asked = manifests
        .cluster_external_secrets
        .iter()
        .flat_map(|c| {
            [
                c.object.spec.refresh_time.as_deref(),
                c.object
                    .spec
                    .external_secret_spec
                    .refresh_interval
                    .as_deref(),
            ]
        })
        .chain(
            manifests
                .external_secrets
                .iter()
                .map(|e| e.object.spec.refresh_interval.as_deref()),
        )
        .flatten()
        .filter_map(parse_go_duration)
        .filter(|d| !d.is_zero());
    asked.fold(ceiling, Duration::min).max(MIN_REFRESH)
}

/// ±10 %, so many replicas or CronJobs do not resync in lockstep.
fn with_jitter(interval: Duration) -> Duration {
    interval.mul_f64(0.9 + crate::live::jitter::fraction() * 0.2)
}

async fn shutdown_signal() {
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = terminate => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

async fn readyz(State(served): State<Arc<Served>>) -> (StatusCode, &'static str) {
    let metrics = &served.metrics;
    if metrics.forbidden_watches.load(Ordering::Relaxed) > 0 {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: a watch is forbidden by RBAC (see the logs)",
        )
    } else if metrics.api_unreachable.load(Ordering::Relaxed)
        || metrics.probe_failed.load(Ordering::Relaxed)
    {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: the Kubernetes API is unreachable",
        )
    } else if metrics.ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ok")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: the last read of the cluster failed",
        )
    }
}

/// Each cluster's state: 200 when every cluster was reached by the last reconcile, 503
/// (listing the ones that were not) otherwise. `/readyz` stays about the hub, so one
/// member down does not take courier out of service for the others.
async fn readyz_clusters(State(served): State<Arc<Served>>) -> (StatusCode, String) {
    let states = served
        .metrics
        .cluster_states
        .lock()
        .map(|s| s.clone())
        .unwrap_or_default();
    let mut body = String::new();
    let mut all = true;
    for (cluster, failure) in &states {
        match failure {
            None => body.push_str(&format!("{cluster}: ok\n")),
            Some(message) => {
                all = false;
                let first = message.lines().next().unwrap_or_default();
                body.push_str(&format!("{cluster}: not reached: {first}\n"));
            }
        }
    }
    if states.is_empty() {
        return (StatusCode::SERVICE_UNAVAILABLE, "no reconcile yet\n".into());
    }
    let code = if all {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, body)
}

async fn metrics_text(State(served): State<Arc<Served>>) -> (StatusCode, String) {
    let mut text = String::new();
    match encode(&mut text, &served.registry) {
        Ok(()) => {
            // ESO's metrics, unprefixed, before OpenMetrics' closing `# EOF`.
            let eso = served.metrics.eso.encode();
            match text.rfind("# EOF") {
                Some(at) => text.insert_str(at, &eso),
                None => text.push_str(&eso),
            }
            (StatusCode::OK, text)
        }
        Err(_) => (StatusCode::INTERNAL_SERVER_ERROR, String::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_within_ten_percent() {
        for _ in 0..100 {
            let jittered = with_jitter(Duration::from_secs(100));
            assert!(
                jittered >= Duration::from_secs(90) && jittered <= Duration::from_secs(110),
                "{jittered:?}"
            );
        }
    }
}
