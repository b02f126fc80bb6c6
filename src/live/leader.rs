//! Leader election for `run --leader-elect`: a `coordination.k8s.io/v1` Lease, with the
//! semantics of client-go's leader election, and a write fence on courier's client.
//!
//! Why not a crate: kube has no leader election of its own, and kube-lease-manager (the
//! current one for kube 5) keeps reporting "leader" while a renewal hangs on a paused
//! network, and does not expose when it last renewed; with it, an old leader could still
//! write after a new one started. Here the leader's right to write is a deadline on its
//! own monotonic clock, checked by the client before every write request leaves:
//!
//! - the leader may write until `start of its last successful renewal + renew deadline`;
//! - a candidate takes the Lease over only after it has seen the same record, unchanged,
//!   for `lease duration` on its own clock, and it saw that record after the leader's
//!   renewal started;
//! - so the old leader stops at least `lease duration - renew deadline` before the new
//!   one starts, whatever the network does, as long as the clocks tick at the same rate.
//!   A write already on the wire when the deadline passes may still arrive late; the
//!   margin is for it (as in client-go).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
use kube::api::{Api, PostParams};
use kube::{Client, Error as KubeError};
use tokio::sync::watch;

/// How the Lease is named and timed.
#[derive(Debug, Clone)]
pub struct LeaderConfig {
    /// Namespace of the Lease (courier's own).
    pub namespace: String,
    /// Name of the Lease.
    pub name: String,
    /// This process's identity in the Lease (pod name and a random suffix).
    pub identity: String,
    /// How long a candidate waits, after the last renewal it saw, before taking over.
    pub lease_duration: Duration,
    /// How long the leader keeps writing without a successful renewal.
    pub renew_deadline: Duration,
    /// How often the leader renews and candidates try.
    pub retry_period: Duration,
}

/// Why a leader election cannot start.
#[derive(Debug, thiserror::Error)]
pub enum LeaderConfigError {
    /// The timings leave no safety margin.
    #[error(
        "leader election needs lease duration > renew deadline > retry period (got {lease:?}, {renew:?}, {retry:?})"
    )]
    Timings {
        /// Lease duration.
        lease: Duration,
        /// Renew deadline.
        renew: Duration,
        /// Retry period.
        retry: Duration,
    },
}

impl LeaderConfig {
    /// Checks the timings leave the margin the fence relies on.
    pub fn validate(&self) -> Result<(), LeaderConfigError> {
        if self.lease_duration > self.renew_deadline
            && self.renew_deadline > self.retry_period
            && !self.retry_period.is_zero()
        {
            Ok(())
        } else {
            Err(LeaderConfigError::Timings {
                lease: self.lease_duration,
                renew: self.renew_deadline,
                retry: self.retry_period,
            })
        }
    }
}

/// Whether this process may write now. Clones share the state. A process without leader
/// election holds a fence that is always open.
#[derive(Debug, Clone)]
pub struct Fence {
    inner: Option<Arc<FenceState>>,
}

#[derive(Debug)]
struct FenceState {
    origin: Instant,
    /// Nanoseconds after `origin` until which writes may leave; 0 when closed.
    open_until: AtomicU64,
}

impl Fence {
    /// Always open: no leader election.
    pub fn always_open() -> Self {
        Fence { inner: None }
    }

    fn closed() -> Self {
        Fence {
            inner: Some(Arc::new(FenceState {
                origin: Instant::now(),
                open_until: AtomicU64::new(0),
            })),
        }
    }

    /// Whether a write may leave now.
    pub fn is_open(&self) -> bool {
        match &self.inner {
            None => true,
            Some(state) => {
                let now = state.origin.elapsed().as_nanos() as u64;
                now < state.open_until.load(Ordering::Acquire)
            }
        }
    }

    fn open_until(&self, deadline: Instant) {
        if let Some(state) = &self.inner {
            let nanos = deadline.saturating_duration_since(state.origin).as_nanos() as u64;
            state.open_until.store(nanos.max(1), Ordering::Release);
        }
    }

    fn close(&self) {
        if let Some(state) = &self.inner {
            state.open_until.store(0, Ordering::Release);
        }
    }

    /// When the fence closes (or closed), if it was ever opened.
    fn deadline(&self) -> Option<Instant> {
        let state = self.inner.as_ref()?;
        match state.open_until.load(Ordering::Acquire) {
            0 => None,
            nanos => Some(state.origin + Duration::from_nanos(nanos)),
        }
    }
}

/// The error a fenced client returns for a write while this process is not the leader.
#[derive(Debug, thiserror::Error)]
#[error("write refused: this courier is not the leader (its lease expired or was lost)")]
pub struct NotLeader;

/// Refuses writes (anything but GET, HEAD and OPTIONS) while the fence is closed, counts
/// the writes it lets through, and gives up on any request but a watch after `timeout`:
/// a request sent on a connection that died silently would otherwise wait forever.
#[derive(Clone)]
pub struct FenceLayer {
    /// The fence.
    pub fence: Fence,
    /// Write requests sent.
    pub writes: prometheus_client::metrics::counter::Counter,
    /// The longest a request (not a watch, which the server ends itself) may take.
    pub timeout: Duration,
}

/// The error for a request that took longer than [`FenceLayer::timeout`].
#[derive(Debug, thiserror::Error)]
#[error("the Kubernetes API did not answer within {0:?}")]
pub struct RequestTimedOut(pub Duration);

impl<S> tower::Layer<S> for FenceLayer {
    type Service = FencedService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        FencedService {
            inner,
            layer: self.clone(),
        }
    }
}

/// See [`FenceLayer`].
#[derive(Clone)]
pub struct FencedService<S> {
    inner: S,
    layer: FenceLayer,
}

/// Whether a request that is not a read changes what the API server stores. A
/// TokenRequest (`POST .../serviceaccounts/NAME/token`) or an access review is a POST that
/// stores nothing: a no-op reconcile that asks for a store's token writes nothing.
fn stores_something<B>(request: &http::Request<B>) -> bool {
    let path = request.uri().path();
    let asks = path.contains("/serviceaccounts/") && path.ends_with("/token")
        || path.ends_with("accessreviews")
        || path.ends_with("/tokenreviews")
        || path.ends_with("rulesreviews");
    !(request.method() == http::Method::POST && asks)
}

impl<S, B> tower::Service<http::Request<B>> for FencedService<S>
where
    S: tower::Service<http::Request<B>>,
    S::Error: Into<tower::BoxError>,
    S::Response: Send + 'static,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = tower::BoxError;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<S::Response, tower::BoxError>> + Send>,
    >;

    fn poll_ready(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx).map_err(Into::into)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let reads = [http::Method::GET, http::Method::HEAD, http::Method::OPTIONS];
        if !reads.contains(request.method()) {
            // Checked as the request leaves, not when a reconcile began.
            if !self.layer.fence.is_open() {
                return Box::pin(std::future::ready(Err(NotLeader.into())));
            }
            if stores_something(&request) {
                self.layer.writes.inc();
            }
        }
        let is_watch = request
            .uri()
            .query()
            .is_some_and(|q| q.split('&').any(|pair| pair == "watch=true"));
        let timeout = self.layer.timeout;
        let future = self.inner.call(request);
        Box::pin(async move {
            if is_watch {
                return future.await.map_err(Into::into);
            }
            match tokio::time::timeout(timeout, future).await {
                Ok(outcome) => outcome.map_err(Into::into),
                Err(_) => Err(RequestTimedOut(timeout).into()),
            }
        })
    }
}

/// A running election: whether this process leads, and how to step down.
pub struct Leadership {
    /// Open while this process leads.
    pub fence: Fence,
    /// `true` while leading; changes wake the controller.
    pub leading: watch::Receiver<bool>,
    task: tokio::task::JoinHandle<()>,
    elector: Arc<Elector>,
}

impl Leadership {
    /// Stops campaigning; a leader closes its fence first, then gives the Lease up so a
    /// standby takes over at its next try instead of after the lease duration.
    pub async fn release(self) {
        self.task.abort();
        let _ = self.task.await;
        if self.fence.deadline().is_some() {
            self.fence.close();
            match self.elector.release().await {
                Ok(()) => tracing::info!(
                    identity = self.elector.config.identity.as_str(),
                    "released the leader lease"
                ),
                Err(error) => {
                    tracing::warn!(%error, "could not release the leader lease; a standby takes over when it expires")
                }
            }
        }
    }
}

/// Starts campaigning for the Lease with `client` (which must not be fenced itself).
/// The returned fence is closed until this process leads.
pub fn campaign(
    client: Client,
    config: LeaderConfig,
    fence: Fence,
    leading_gauge: prometheus_client::metrics::gauge::Gauge,
) -> Leadership {
    let (sender, leading) = watch::channel(false);
    let elector = Arc::new(Elector {
        api: Api::namespaced(client, &config.namespace),
        config,
        observed: tokio::sync::Mutex::new(None),
    });
    let task = tokio::spawn(run_elector(
        elector.clone(),
        fence.clone(),
        sender,
        leading_gauge,
    ));
    Leadership {
        fence,
        leading,
        task,
        elector,
    }
}

/// A fence for a process that will campaign: closed until it leads.
pub fn new_fence() -> Fence {
    Fence::closed()
}

struct Elector {
    api: Api<Lease>,
    config: LeaderConfig,
    /// The last record seen and when (this process's clock) it was first seen.
    observed: tokio::sync::Mutex<Option<(LeaseSpec, Instant)>>,
}

fn unix_millis(at: Instant) -> u128 {
    let now = Instant::now();
    let wall = SystemTime::now();
    let wall_at = if at <= now {
        wall.checked_sub(now - at)
    } else {
        wall.checked_add(at - now)
    };
    wall_at
        .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_millis())
}

async fn run_elector(
    elector: Arc<Elector>,
    fence: Fence,
    sender: watch::Sender<bool>,
    leading_gauge: prometheus_client::metrics::gauge::Gauge,
) {
    let config = &elector.config;
    let identity = config.identity.as_str();
    let mut leading = false;
    loop {
        let started = Instant::now();
        // A leader's attempt must end before its fence would; a candidate's within a period.
        let budget = match fence.deadline() {
            Some(deadline) if leading => deadline
                .saturating_duration_since(started)
                .max(Duration::from_millis(1)),
            _ => config.retry_period,
        };
        let outcome = tokio::time::timeout(budget, elector.try_acquire_or_renew()).await;
        let mut stopped = None;
        match outcome {
            Ok(Ok(true)) => {
                fence.open_until(started + config.renew_deadline);
                if !leading {
                    leading = true;
                    leading_gauge.set(1);
                    tracing::info!(
                        identity,
                        lease = config.name.as_str(),
                        at_unix_ms = unix_millis(started) as u64,
                        "started leading"
                    );
                    let _ = sender.send(true);
                }
            }
            Ok(Ok(false)) if leading => {
                fence.close();
                stopped = Some("another instance holds the lease");
            }
            Ok(Ok(false)) => {}
            Ok(Err(error)) => tracing::warn!(identity, %error, "leader lease request failed"),
            Err(_) => tracing::warn!(identity, "leader lease request timed out"),
        }
        if leading && stopped.is_none() && !fence.is_open() {
            stopped = Some("the lease could not be renewed before the renew deadline");
        }
        if let Some(why) = stopped {
            step_down(identity, &fence, &mut leading, &sender, &leading_gauge, why);
        }
        let wait = if leading {
            config.retry_period
        } else {
            jittered(config.retry_period)
        };
        // A leader wakes at its deadline at the latest, to say it stopped.
        let wait = match fence.deadline() {
            Some(deadline) if leading => {
                wait.min(deadline.saturating_duration_since(Instant::now()))
            }
            _ => wait,
        };
        tokio::time::sleep(wait).await;
    }
}

fn step_down(
    identity: &str,
    fence: &Fence,
    leading: &mut bool,
    sender: &watch::Sender<bool>,
    gauge: &prometheus_client::metrics::gauge::Gauge,
    why: &str,
) {
    // The fence stopped writes at its deadline already; this reports it.
    let stopped = fence
        .deadline()
        .unwrap_or_else(Instant::now)
        .min(Instant::now());
    fence.close();
    *leading = false;
    gauge.set(0);
    tracing::warn!(
        identity,
        why,
        at_unix_ms = unix_millis(stopped) as u64,
        "stopped leading"
    );
    let _ = sender.send(false);
}

/// Up to 20 % more, so candidates do not try in lockstep.
fn jittered(period: Duration) -> Duration {
    period.mul_f64(1.0 + crate::live::jitter::fraction() * 0.2)
}

fn now_micro() -> MicroTime {
    MicroTime(jiff::Timestamp::now())
}

impl Elector {
    /// One try: `Ok(true)` when this process holds the Lease afterwards.
    async fn try_acquire_or_renew(&self) -> Result<bool, KubeError> {
        let config = &self.config;
        let lease_seconds = config.lease_duration.as_secs().max(1) as i32;
        let current = match self.api.get_opt(&config.name).await? {
            Some(lease) => lease,
            None => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(config.name.clone()),
                        namespace: Some(config.namespace.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(LeaseSpec {
                        holder_identity: Some(config.identity.clone()),
                        lease_duration_seconds: Some(lease_seconds),
                        acquire_time: Some(now_micro()),
                        renew_time: Some(now_micro()),
                        lease_transitions: Some(0),
                        ..LeaseSpec::default()
                    }),
                };
                return match self.api.create(&PostParams::default(), &lease).await {
                    Ok(created) => {
                        self.observe(created.spec.unwrap_or_default()).await;
                        Ok(true)
                    }
                    Err(KubeError::Api(status)) if status.code == 409 => Ok(false),
                    Err(error) => Err(error),
                };
            }
        };
        let record = current.spec.clone().unwrap_or_default();
        let observed_at = self.observe(record.clone()).await;
        let holder = record.holder_identity.clone().unwrap_or_default();
        let held_by_me = holder == config.identity;
        let their_duration =
            Duration::from_secs(record.lease_duration_seconds.unwrap_or(0).max(0) as u64);
        if !holder.is_empty() && !held_by_me && observed_at.elapsed() < their_duration {
            return Ok(false);
        }
        let mut spec = record.clone();
        spec.holder_identity = Some(config.identity.clone());
        spec.lease_duration_seconds = Some(lease_seconds);
        spec.renew_time = Some(now_micro());
        if !held_by_me {
            spec.acquire_time = Some(now_micro());
            spec.lease_transitions = Some(record.lease_transitions.unwrap_or(0) + 1);
        }
        let mut updated = current;
        updated.spec = Some(spec);
        // The resourceVersion in `updated` makes this a compare-and-swap: of two
        // candidates, one gets 409.
        match self
            .api
            .replace(&config.name, &PostParams::default(), &updated)
            .await
        {
            Ok(written) => {
                self.observe(written.spec.unwrap_or_default()).await;
                Ok(true)
            }
            Err(KubeError::Api(status)) if status.code == 409 => Ok(false),
            Err(error) => Err(error),
        }
    }

    /// Records `record` and returns when this process first saw it unchanged.
    async fn observe(&self, record: LeaseSpec) -> Instant {
        let mut observed = self.observed.lock().await;
        match &*observed {
            Some((seen, at)) if *seen == record => *at,
            _ => {
                let now = Instant::now();
                *observed = Some((record, now));
                now
            }
        }
    }

    /// Empties the holder so a standby takes over at its next try.
    async fn release(&self) -> Result<(), KubeError> {
        let Some(mut lease) = self.api.get_opt(&self.config.name).await? else {
            return Ok(());
        };
        let mut spec = lease.spec.clone().unwrap_or_default();
        if spec.holder_identity.as_deref() != Some(self.config.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(now_micro());
        lease.spec = Some(spec);
        self.api
            .replace(&self.config.name, &PostParams::default(), &lease)
            .await
            .map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fence_opens_until_its_deadline_and_closes() {
        let fence = Fence::closed();
        assert!(!fence.is_open());
        fence.open_until(Instant::now() + Duration::from_secs(60));
        assert!(fence.is_open());
        fence.open_until(Instant::now());
        assert!(!fence.is_open());
        fence.open_until(Instant::now() + Duration::from_secs(60));
        fence.close();
        assert!(!fence.is_open());
        assert!(Fence::always_open().is_open());
    }

    #[test]
    fn token_requests_and_reviews_are_not_counted_as_writes() {
        let post = |path: &str| {
            http::Request::builder()
                .method(http::Method::POST)
                .uri(path)
                .body(())
                .unwrap()
        };
        assert!(!stores_something(&post(
            "/api/v1/namespaces/central/serviceaccounts/reader/token"
        )));
        assert!(!stores_something(&post(
            "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"
        )));
        assert!(stores_something(&post("/api/v1/namespaces/team-a/secrets")));
        let patch = http::Request::builder()
            .method(http::Method::PATCH)
            .uri("/api/v1/namespaces/team-a/secrets/creds")
            .body(())
            .unwrap();
        assert!(stores_something(&patch));
    }

    #[tokio::test]
    async fn the_fence_refuses_writes_but_never_reads_and_counts_what_it_lets_through() {
        use tower::{Layer as _, ServiceExt as _};
        let fence = Fence::closed();
        let layer = FenceLayer {
            fence: fence.clone(),
            writes: prometheus_client::metrics::counter::Counter::default(),
            timeout: Duration::from_secs(60),
        };
        let service = layer.layer(tower::service_fn(|_: http::Request<()>| async {
            Ok::<_, std::convert::Infallible>("sent")
        }));
        let request =
            |method: http::Method| http::Request::builder().method(method).body(()).unwrap();
        let get = service.clone().oneshot(request(http::Method::GET)).await;
        assert_eq!(get.unwrap(), "sent");
        for method in [
            http::Method::POST,
            http::Method::PATCH,
            http::Method::PUT,
            http::Method::DELETE,
        ] {
            let refused = service.clone().oneshot(request(method)).await.unwrap_err();
            assert!(refused.is::<NotLeader>(), "{refused}");
        }
        assert_eq!(layer.writes.get(), 0);
        fence.open_until(Instant::now() + Duration::from_secs(60));
        let patch = service.clone().oneshot(request(http::Method::PATCH)).await;
        assert_eq!(patch.unwrap(), "sent");
        assert_eq!(layer.writes.get(), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_that_never_answers_times_out_but_a_watch_waits() {
        use tower::{Layer as _, ServiceExt as _};
        let layer = FenceLayer {
            fence: Fence::always_open(),
            writes: prometheus_client::metrics::counter::Counter::default(),
            timeout: Duration::from_secs(5),
        };
        let service = layer.layer(tower::service_fn(|_: http::Request<()>| async {
            std::future::pending::<Result<&str, std::convert::Infallible>>().await
        }));
        let request = |uri: &str| http::Request::builder().uri(uri).body(()).unwrap();
        let list = service.clone().oneshot(request("/api/v1/namespaces?"));
        let error = list.await.unwrap_err();
        assert!(error.is::<RequestTimedOut>(), "{error}");
        let watch = service
            .clone()
            .oneshot(request("/api/v1/namespaces?&watch=true&timeoutSeconds=290"));
        let waited = tokio::time::timeout(Duration::from_secs(600), watch).await;
        assert!(waited.is_err(), "a watch is not cut by the request timeout");
    }

    #[test]
    fn timings_must_leave_a_margin() {
        let config = |lease, renew, retry| LeaderConfig {
            namespace: "courier".into(),
            name: "courier".into(),
            identity: "a".into(),
            lease_duration: Duration::from_secs(lease),
            renew_deadline: Duration::from_secs(renew),
            retry_period: Duration::from_secs(retry),
        };
        assert!(config(15, 10, 2).validate().is_ok());
        assert!(config(10, 10, 2).validate().is_err());
        assert!(config(15, 2, 2).validate().is_err());
        assert!(config(15, 10, 0).validate().is_err());
    }
}
