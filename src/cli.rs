//! Command-line arguments. Each subcommand maps onto one way courier is run.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use courier::core::output::Format;

/// Distributes Kubernetes Secrets from a central namespace, reading External Secrets
/// Operator manifests (ClusterExternalSecret, ExternalSecret, stores), without an operator.
#[derive(Debug, Parser)]
#[command(name = "courier", version, about, propagate_version = true)]
pub struct Cli {
    /// Log format on stderr.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Plain, env = "COURIER_LOG_FORMAT")]
    pub log_format: LogFormat,
    /// Log filter (tracing syntax: `warn`, `courier=debug`, ...). Logs never hold secret
    /// values: other crates' events stop at info, whatever the filter.
    #[arg(long, global = true, default_value = "warn", env = "COURIER_LOG")]
    pub log_level: String,
    /// Let namespaced SecretStores without `auth` read AWS with courier's own (ambient)
    /// credentials; ClusterSecretStores always may.
    #[arg(long, global = true, env = "COURIER_AWS_AMBIENT_CREDENTIALS")]
    pub aws_ambient_credentials: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Render the target Secrets from manifests and print them (GitOps, Argo CD plugin).
    Render(RenderArgs),
    /// Validate manifests without reading any secret value; list the targets (CI).
    Check(CheckArgs),
    /// Render against the live cluster and apply once: create, update, prune (CronJob, CI).
    Apply(ApplyArgs),
    /// Apply, then keep applying: on changes (watched) and every refresh interval (Deployment).
    Run(RunArgs),
    /// What `apply` would change in the live cluster, values redacted; exit 0 in sync, 1 on drift, 2 on error, as `kubectl diff` (CI).
    Diff(DiffArgs),
    /// Argo CD's discover rule: print the first manifest holding an ESO object, or nothing.
    Discover(DiscoverArgs),
    /// Copy the Secrets member clusters opt in (the Akuity labels) into the hub, as
    /// SecretCollection policies allow: once, with --watch for ever, or --diff.
    Collect(CollectArgs),
}

/// `courier collect`.
#[derive(Debug, Args)]
pub struct CollectArgs {
    /// SecretCollection policies (collect.courier.dev/v1alpha1): files, directories or `-`.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Cluster access (the hub).
    #[command(flatten)]
    pub client: ClientArgs,
    /// Member clusters.
    #[command(flatten)]
    pub clusters: ClusterArgs,
    /// This deployment's name: it only updates and removes copies it labelled with it.
    #[arg(long, default_value = "default", env = "COURIER_INSTANCE", value_parser = parse_instance)]
    pub instance: String,
    /// Secret names never collected, in addition to argocd-secret,
    /// argocd-initial-admin-secret, ServiceAccount tokens and Argo CD cluster Secrets.
    #[arg(long = "deny-secret", value_name = "NAME")]
    pub deny_secrets: Vec<String>,
    /// Send every write as a server-side dry run.
    #[arg(long, conflicts_with_all = ["diff", "watch"])]
    pub dry_run: bool,
    /// Print what a pass would write on the hub, values never shown; exit 0 in sync,
    /// 1 on drift, 2 on error.
    #[arg(long, conflicts_with = "watch")]
    pub diff: bool,
    /// Keep collecting: on every change of a member's opted-in Secrets (watched) and
    /// every --refresh.
    #[arg(long)]
    pub watch: bool,
    /// Longest time between full passes under --watch.
    #[arg(long, default_value = "5m", value_parser = parse_duration)]
    pub refresh: std::time::Duration,
    /// Quiet time after a change before a pass, so a burst makes one pass.
    #[arg(long, default_value = "500ms", value_parser = parse_duration)]
    pub debounce: std::time::Duration,
}

/// `courier discover`.
#[derive(Debug, Args)]
pub struct DiscoverArgs {
    /// The application's directory.
    #[arg(default_value = ".")]
    pub dir: PathBuf,
}

/// `courier diff`.
#[derive(Debug, Args)]
pub struct DiffArgs {
    /// Live-mode options.
    #[command(flatten)]
    pub live: LiveArgs,
    /// Compare with the live cluster: the only comparison courier makes, so the default;
    /// accepted for scripts that spell it out.
    #[arg(long = "live")]
    pub live_cluster: bool,
}

/// `courier run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Live-mode options.
    #[command(flatten)]
    pub live: LiveArgs,
    /// Longest time between full resyncs (`1h`, `30m`, `90s`); manifests' shorter
    /// refreshInterval/refreshTime win. Each wait gets ±10 % jitter.
    #[arg(long, default_value = "1h", value_parser = parse_duration)]
    pub refresh: std::time::Duration,
    /// Quiet time after a change before reconciling, so a burst makes one reconcile.
    #[arg(long, default_value = "500ms", value_parser = parse_duration)]
    pub debounce: std::time::Duration,
    /// Address for /healthz, /readyz and /metrics (`:8080` is every interface).
    #[arg(long, default_value = ":8080")]
    pub metrics_addr: String,
    /// Writes in flight at once.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// Leader election.
    #[command(flatten)]
    pub leader: LeaderArgs,
}

/// Leader election among `run` replicas: only the holder of a Lease writes.
#[derive(Debug, Args)]
#[command(next_help_heading = "Leader election")]
pub struct LeaderArgs {
    /// Only the holder of a coordination.k8s.io Lease reconciles and writes; the others
    /// stand by with warm watches (for replicas > 1).
    #[arg(long)]
    pub leader_elect: bool,
    /// Namespace of the Lease [default: $POD_NAMESPACE, else the pod's own namespace].
    #[arg(long, value_name = "NAMESPACE")]
    pub leader_elect_namespace: Option<String>,
    /// Name of the Lease.
    #[arg(long, value_name = "NAME", default_value = "courier")]
    pub leader_elect_lease_name: String,
    /// How long a standby waits after the leader's last renewal before taking over.
    #[arg(long, default_value = "15s", value_parser = parse_duration)]
    pub leader_elect_lease_duration: std::time::Duration,
    /// How long the leader keeps writing without a successful renewal; less than the
    /// lease duration, and the difference is the margin that keeps two writers apart.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub leader_elect_renew_deadline: std::time::Duration,
    /// How often the leader renews and standbys try.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub leader_elect_retry_period: std::time::Duration,
}

fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    courier::core::duration::parse_go_duration(text)
        .ok_or_else(|| format!("{text:?} is not a duration like 1h, 30m, 90s or 500ms"))
}

/// How to reach the cluster: kubectl's flags, with in-cluster config when none is set.
#[derive(Debug, Args)]
pub struct ClientArgs {
    /// Path to a kubeconfig (default: $KUBECONFIG, ~/.kube/config, then in-cluster).
    #[arg(long, global = true, value_name = "FILE")]
    pub kubeconfig: Option<PathBuf>,
    /// kubeconfig context to use.
    #[arg(long, global = true)]
    pub context: Option<String>,
    /// Act as this user or ServiceAccount (`system:serviceaccount:NS:NAME`).
    #[arg(long = "as", global = true, value_name = "USER")]
    pub impersonate: Option<String>,
}

/// What live modes share.
#[derive(Debug, Args)]
pub struct LiveArgs {
    /// Manifests (ClusterExternalSecret, ExternalSecret, stores): files, directories or `-`;
    /// the world (namespaces, source Secrets) comes from the cluster.
    #[arg(
        value_name = "PATH",
        required_unless_present = "from_cluster",
        conflicts_with = "from_cluster"
    )]
    pub paths: Vec<PathBuf>,
    /// Read the manifests from the cluster instead (the ESO CRDs installed, no ESO
    /// controller) and write their status and failure Events as ESO would.
    #[arg(long)]
    pub from_cluster: bool,
    /// With --from-cluster: keep no ExternalSecret objects for ClusterExternalSecrets
    /// (ESO's CES controller makes one per selected namespace, and courier keeps them by
    /// default, with their status). Fewer writes; `kubectl get es -A` and ESO's dashboard
    /// then show nothing for them.
    #[arg(long, requires = "from_cluster")]
    pub no_ces_external_secrets: bool,
    /// Cluster access.
    #[command(flatten)]
    pub client: ClientArgs,
    /// This deployment's name: it only prunes Secrets it labelled with the same instance.
    #[arg(long, default_value = "default", env = "COURIER_INSTANCE", value_parser = parse_instance)]
    pub instance: String,
    /// Secret names never read or written, in addition to ServiceAccount tokens and Secrets
    /// labelled argocd.argoproj.io/secret-type=cluster (default: argocd-secret, argocd-initial-admin-secret).
    #[arg(long = "deny-secret", value_name = "NAME")]
    pub deny_secrets: Vec<String>,
    /// Take over target Secrets that External Secrets Operator made for the same
    /// ExternalSecret (its label and owner reference), once ESO has stopped reconciling
    /// them. See README: Migrating from ESO.
    #[arg(long)]
    pub adopt_eso: bool,
    /// With --adopt-eso: ESO's controller is stopped, on your word. Without it courier
    /// checks ESO's controller Deployment (label app.kubernetes.io/name=external-secrets)
    /// has no replica, or, when it finds none, waits out each ExternalSecret's refresh
    /// interval since ESO's last refresh.
    #[arg(long, requires = "adopt_eso")]
    pub eso_stopped: bool,
    /// Adopt a target Secret of creationPolicy Owner or Orphan that exists but that
    /// neither courier nor ESO made (by default it is refused, left untouched): courier
    /// writes its keys into it with server-side apply and leaves its type, labels,
    /// annotations and other keys as they are. See README: ESO semantics courier follows.
    #[arg(long, env = "COURIER_ADOPT_EXISTING_TARGETS")]
    pub adopt_existing_targets: bool,
    /// Most targets one reconcile may remove in one cluster (a number, or `unlimited`).
    /// Above it none is removed and the run fails, so an empty input, a selector typo or a
    /// missing manifest cannot delete what it should keep. An input with no
    /// ExternalSecret or ClusterExternalSecret never removes anything.
    #[arg(long, value_name = "N", default_value = "10", env = "COURIER_MAX_DELETIONS", value_parser = parse_max_deletions)]
    pub max_deletions: MaxDeletions,
    /// Let an input that holds no ExternalSecret or ClusterExternalSecret remove targets
    /// (every manifest retired on purpose); still within --max-deletions.
    #[arg(long)]
    pub allow_empty: bool,
    /// Member clusters.
    #[command(flatten)]
    pub clusters: ClusterArgs,
}

fn parse_instance(text: &str) -> Result<String, String> {
    courier::core::instance::validate_instance(text).map(|()| text.to_owned())
}

/// `--max-deletions`: `None` is no limit.
#[derive(Debug, Clone, Copy)]
pub struct MaxDeletions(pub Option<usize>);

fn parse_max_deletions(text: &str) -> Result<MaxDeletions, String> {
    courier::live::prune::parse_max_deletions(text).map(MaxDeletions)
}

/// The clusters targets are written to, besides the one courier talks to (`in-cluster`).
/// Manifests choose them with the annotation courier.dev/cluster-selector.
#[derive(Debug, Args)]
pub struct ClusterArgs {
    /// Member clusters from the Argo CD cluster Secrets (label
    /// argocd.argoproj.io/secret-type=cluster) in this namespace of the hub; their labels
    /// are what cluster selectors match.
    #[arg(long, value_name = "NAMESPACE", env = "COURIER_CLUSTERS_FROM_SECRETS")]
    pub clusters_from_secrets: Option<String>,
    /// A member cluster from a kubeconfig context, named after it (repeatable).
    #[arg(long = "member-context", value_name = "CONTEXT")]
    pub member_contexts: Vec<String>,
    /// Every kubeconfig context but the hub's own is a member cluster.
    #[arg(long)]
    pub all_contexts: bool,
}

/// `courier apply`.
#[derive(Debug, Args)]
pub struct ApplyArgs {
    /// Live-mode options.
    #[command(flatten)]
    pub live: LiveArgs,
    /// Decide and report everything; the API server validates the writes but stores nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Writes in flight at once.
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
}

/// Where manifests come from.
#[derive(Debug, Args)]
pub struct InputArgs {
    /// Files, directories (recursive: *.yaml, *.yml, *.json) or `-` for stdin.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
}

/// `courier check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    /// Inputs.
    #[command(flatten)]
    pub input: InputArgs,
    /// Namespace for namespaced objects that name none (as `render -n`).
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
    /// Fail when a ClusterExternalSecret selects no namespace (a label typo, say),
    /// instead of warning.
    #[arg(long)]
    pub strict: bool,
    /// Where namespaces, stores and sources come from: the input files, or the live
    /// cluster (its namespaces, the files' stores or else the cluster's, and the sources
    /// each store's identity reads; no value is printed).
    #[arg(long, value_enum, default_value_t = WorldSource::Files)]
    pub world: WorldSource,
    /// Cluster access, for `--world cluster`.
    #[command(flatten)]
    pub client: ClientArgs,
}

/// `courier render`.
#[derive(Debug, Args)]
pub struct RenderArgs {
    /// Inputs.
    #[command(flatten)]
    pub input: InputArgs,
    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = Format::Yaml)]
    pub format: Format,
    /// Replace every value with `*** REDACTED ***` (safe for logs and PR comments).
    #[arg(long)]
    pub redact: bool,
    /// Also print every other object of the input unchanged (with `--redact`, a Secret's
    /// values replaced); the ESO objects themselves are replaced by their Secrets (`helm
    /// template . | courier render --passthrough -`).
    #[arg(long)]
    pub passthrough: bool,
    /// Label the Secrets `courier.dev/instance=NAME`, as `apply --instance` does.
    #[arg(long, value_parser = parse_instance)]
    pub instance: Option<String>,
    /// Namespace for namespaced objects that name none.
    #[arg(short = 'n', long)]
    pub namespace: Option<String>,
    /// Succeed when there is nothing to print (by default that is an error: a GitOps tool
    /// would prune everything).
    #[arg(long)]
    pub allow_empty: bool,
    /// Where namespaces and source Secrets come from: the input files, or the live cluster.
    #[arg(long, value_enum, default_value_t = WorldSource::Files)]
    pub world: WorldSource,
    /// Adopt an existing Secret (one in the input's files world) that a target of
    /// creationPolicy Owner or Orphan names and courier did not write, as ESO does: it is
    /// updated in place and keeps its type, labels and annotations. By default courier's
    /// Secret replaces it.
    #[arg(long, env = "COURIER_ADOPT_EXISTING_TARGETS")]
    pub adopt_existing_targets: bool,
    /// Run as Argo CD's Config Management Plugin: settings from Argo CD's environment
    /// (ARGOCD_APP_NAME, ARGOCD_APP_NAMESPACE, ARGOCD_ENV_COURIER_*, ARGOCD_APP_PARAMETERS),
    /// pass-through on, errors on one line.
    #[arg(long)]
    pub argocd: bool,
    /// Cluster access, for `--world cluster`.
    #[command(flatten)]
    pub client: ClientArgs,
}

/// Where the world comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum WorldSource {
    /// Namespaces, Secrets and ConfigMaps in the input.
    Files,
    /// The live cluster (kubeconfig, or the pod's ServiceAccount).
    Cluster,
}

/// Log line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Plain,
    /// One JSON object per line.
    Json,
}
