//! AWS Secrets Manager and SSM Parameter Store (`spec.provider.aws`), read before
//! planning: every distinct (store identity, key, version) once per reconcile, Secrets
//! Manager values batched with `BatchGetSecretValue` (20 a call) and parameters with
//! `GetParameters` (10 a call), each `find` listed once per store. Requests are signed
//! with SigV4 (the `aws-sigv4` crate) and sent over courier's own reqwest and rustls.
//!
//! Identity is stricter than ESO's: a store without `auth` reads with courier's ambient
//! credentials (environment, web identity token file, instance metadata) only when it is a
//! ClusterSecretStore, or when the operator allows it for SecretStores
//! (`--aws-ambient-credentials`); otherwise a tenant's SecretStore would read with
//! courier's own role.

use std::any::Any;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use base64::Engine as _;
use futures::StreamExt as _;
use futures::future::BoxFuture;
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

use super::common::{fail_all, parse_config, prefetched};
use super::provider::{FetchContext, FetchStats, Fetched, Provider};
use crate::core::load::StoreKind;
use crate::core::model::{
    ExternalSecretSpec, FindRef, MetadataPolicy, RemoteRef, SecretKeySelector,
    ServiceAccountSelector,
};
use crate::core::provider::{
    FetchError, SecretMap, SecretsClient, StoreInfo, StoreProvider, StoreReads,
};
use crate::core::secret_bytes::SecretBytes;
use crate::core::world::{RemoteError, World};

/// Secrets per `BatchGetSecretValue` (AWS's limit for `SecretIdList`).
const SECRETS_PER_BATCH: usize = 20;
/// Parameters per `GetParameters` (AWS's limit).
const PARAMETERS_PER_BATCH: usize = 10;
/// Requests in flight at once, per store.
const CONCURRENCY: usize = 8;
/// Attempts per request: the first and three retries.
const ATTEMPTS: u32 = 4;
/// Per-request timeout.
pub(super) const TIMEOUT: Duration = Duration::from_secs(10);
/// A read: the key (see [`AwsStore::read_key`]) and an optional version.
type ReadKey = (String, Option<String>);
/// Values read, by read.
type Values = BTreeMap<ReadKey, Result<SecretBytes, RemoteError>>;

/// The ServiceAccount annotation naming the IAM role (EKS's IRSA, as ESO reads it).
pub(super) const ROLE_ARN_ANNOTATION: &str = "eks.amazonaws.com/role-arn";
/// The ServiceAccount annotation naming the token's audience.
const AUDIENCE_ANNOTATION: &str = "eks.amazonaws.com/audience";

static AMBIENT_FOR_SECRET_STORES: AtomicBool = AtomicBool::new(false);

/// Lets namespaced SecretStores without `auth` read with courier's ambient AWS
/// credentials (`--aws-ambient-credentials`). Off by default: a tenant's store would
/// otherwise read with courier's own role, as every SecretStore does under ESO.
pub fn allow_ambient_credentials_for_secret_stores(allow: bool) {
    AMBIENT_FOR_SECRET_STORES.store(allow, Ordering::Relaxed);
}

/// `spec.provider.aws`.
pub struct Aws;

impl Provider for Aws {
    fn name(&self) -> &'static str {
        "aws"
    }

    fn implemented(&self) -> &'static [&'static str] {
        IMPLEMENTED
    }

    fn parse(
        &self,
        config: &Value,
        store: &StoreInfo<'_>,
    ) -> Result<Arc<dyn StoreProvider>, String> {
        let config: AwsProvider = parse_config(config)?;
        let service = match config.service.as_str() {
            "SecretsManager" => Service::SecretsManager,
            "ParameterStore" => Service::ParameterStore,
            "CertificateManager" => {
                return Err("service: CertificateManager is not supported; use SecretsManager or ParameterStore".into());
            }
            other => {
                return Err(format!(
                    "service: {other:?} is not an AWS service courier knows (SecretsManager, ParameterStore)"
                ));
            }
        };
        if config.region.is_empty() {
            return Err("region is required".into());
        }
        if let Some(policy) = config
            .session_tags_policy
            .as_deref()
            .filter(|p| !p.is_empty() && *p != "None")
        {
            return Err(format!(
                "sessionTagsPolicy: {policy} is not supported by courier yet (ESO's Simple and Custom add session tags courier does not send)\nhint: remove it (None, the default) and list the tags to send in sessionTags"
            ));
        }
        let auth = &config.auth;
        if let Some(secret_ref) = &auth.secret_ref {
            let references = [
                (
                    "auth.secretRef.accessKeyIDSecretRef",
                    Some(&secret_ref.access_key_id),
                ),
                (
                    "auth.secretRef.secretAccessKeySecretRef",
                    Some(&secret_ref.secret_access_key),
                ),
                (
                    "auth.secretRef.sessionTokenSecretRef",
                    secret_ref.session_token.as_ref(),
                ),
            ];
            for (field, reference) in references {
                if let Some(reference) = reference {
                    store.check_reference(field, reference.namespace.as_deref())?;
                    if reference.name.is_empty() || reference.key.is_empty() {
                        return Err(format!("{field}: name and key are required"));
                    }
                }
            }
        }
        if let Some(jwt) = &auth.jwt {
            let account = jwt
                .service_account_ref
                .as_ref()
                .ok_or("auth.jwt.serviceAccountRef is required")?;
            store.check_reference(
                "auth.jwt.serviceAccountRef",
                account.namespace.as_deref(),
            )?;
        }
        if auth.secret_ref.is_none()
            && auth.jwt.is_none()
            && store.kind == StoreKind::SecretStore
            && !AMBIENT_FOR_SECRET_STORES.load(Ordering::Relaxed)
        {
            return Err(format!(
                "{} names no auth: a namespaced SecretStore would read with courier's own AWS credentials\nhint: set auth.secretRef or auth.jwt, use a ClusterSecretStore, or allow it with --aws-ambient-credentials",
                store.display
            ));
        }
        let parsed = AwsStore {
            display: store.display.to_owned(),
            kind: store.kind,
            own_namespace: store.namespace.unwrap_or_default().to_owned(),
            service,
            config,
        };
        Ok(Arc::new(parsed))
    }

    fn prefetch<'a>(
        &'a self,
        wanted: &'a StoreReads,
        world: &'a World,
        context: &'a FetchContext,
        fetched: &'a mut Fetched,
    ) -> BoxFuture<'a, FetchStats> {
        Box::pin(async move {
            match wanted.store.as_any().downcast_ref::<AwsStore>() {
                Some(store) => prefetch(store, wanted, world, context, fetched).await,
                None => FetchStats::default(),
            }
        })
    }
}

/// The two services courier reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Service {
    SecretsManager,
    ParameterStore,
}

impl Service {
    fn label(self) -> &'static str {
        match self {
            Service::SecretsManager => "SecretsManager",
            Service::ParameterStore => "ParameterStore",
        }
    }
}

/// An AWS store, parsed.
#[derive(Debug)]
pub struct AwsStore {
    pub(super) display: String,
    kind: StoreKind,
    own_namespace: String,
    service: Service,
    pub(super) config: AwsProvider,
}

impl AwsStore {
    /// A ClusterSecretStore whose credential references name no namespace: ESO reads
    /// them in each ExternalSecret's namespace ("referent" auth).
    pub(super) fn referent(&self) -> bool {
        if self.kind == StoreKind::SecretStore {
            return false;
        }
        let unnamed = |s: &SecretKeySelector| s.namespace.as_deref().is_none_or(str::is_empty);
        let auth = &self.config.auth;
        if let Some(jwt) = &auth.jwt {
            return jwt
                .service_account_ref
                .as_ref()
                .is_some_and(|a| a.namespace.as_deref().is_none_or(str::is_empty));
        }
        if let Some(secret_ref) = &auth.secret_ref {
            return unnamed(&secret_ref.access_key_id)
                || unnamed(&secret_ref.secret_access_key)
                || secret_ref.session_token.as_ref().is_some_and(unnamed);
        }
        false
    }

    /// The store and, for referent auth, the namespace its credentials come from.
    fn identity_key(&self, namespace: &str) -> String {
        if self.referent() {
            format!("{} (for namespace {namespace})", self.display)
        } else {
            self.display.clone()
        }
    }

    /// Where a credential reference is read: a SecretStore's own namespace (ESO ignores
    /// the reference's), a ClusterSecretStore's named one, else the ExternalSecret's.
    pub(super) fn reference_namespace(&self, named: Option<&str>, namespace: &str) -> String {
        match self.kind {
            StoreKind::SecretStore => self.own_namespace.clone(),
            StoreKind::ClusterSecretStore => named
                .filter(|n| !n.is_empty())
                .unwrap_or(namespace)
                .to_owned(),
        }
    }

    /// The full remote name of `key` (with `prefix`), and `tags:` before it when
    /// `metadataPolicy: Fetch` reads the tags instead of the value. Neither service
    /// allows `:` in a name, so the two never meet.
    fn read_key(&self, reference: &RemoteRef) -> String {
        let name = format!("{}{}", self.config.prefix, reference.key);
        if reference.metadata_policy == Some(MetadataPolicy::Fetch) {
            format!("tags:{name}")
        } else {
            name
        }
    }
}

/// A `find` as one string (the world keys finds by string).
fn find_key(find: &FindRef) -> String {
    let tags: Option<BTreeMap<&String, &String>> =
        find.tags.as_ref().map(|tags| tags.iter().collect());
    serde_json::json!({
        "name": find.name.as_ref().map(|n| &n.regexp),
        "tags": tags,
        "path": find.path,
    })
    .to_string()
}

/// A find, back from its string.
#[derive(Debug, Deserialize)]
struct FindSpec {
    name: Option<String>,
    tags: Option<BTreeMap<String, String>>,
    path: Option<String>,
}

impl StoreProvider for AwsStore {
    fn provider_name(&self) -> &'static str {
        "aws"
    }

    fn share_key(&self, namespace: &str) -> String {
        format!("aws:{}", self.identity_key(namespace))
    }

    fn client<'w>(&'w self, world: &'w World, namespace: &str) -> Box<dyn SecretsClient + 'w> {
        Box::new(AwsClient {
            world,
            store: self,
            identity: self.identity_key(namespace),
        })
    }

    fn remote_key(&self, namespace: &str) -> Option<String> {
        Some(self.identity_key(namespace))
    }

    fn remote_reads(&self, _: &str, spec: &ExternalSecretSpec, reads: &mut StoreReads) {
        for data in &spec.data {
            let reference = &data.remote_ref;
            reads
                .reads
                .insert((self.read_key(reference), reference.version.clone()));
        }
        for from in &spec.data_from {
            if let Some(extract) = &from.extract {
                reads
                    .reads
                    .insert((self.read_key(extract), extract.version.clone()));
            }
            if let Some(find) = &from.find {
                reads.finds.insert(find_key(find));
            }
        }
    }

    fn world_namespaces(&self) -> BTreeSet<String> {
        let Some(secret_ref) = &self.config.auth.secret_ref else {
            return BTreeSet::new();
        };
        [
            Some(&secret_ref.access_key_id),
            Some(&secret_ref.secret_access_key),
            secret_ref.session_token.as_ref(),
        ]
        .into_iter()
        .flatten()
        .filter_map(|s| match self.kind {
            StoreKind::SecretStore => Some(self.own_namespace.clone()),
            StoreKind::ClusterSecretStore => s.namespace.clone().filter(|n| !n.is_empty()),
        })
        .collect()
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

// ---------------------------------------------------------------------------------------
// Fetching.

#[derive(Default)]
pub(super) struct Counters {
    reads: AtomicU64,
    lists: AtomicU64,
    logins: AtomicU64,
}

impl Counters {
    fn stats(&self) -> FetchStats {
        FetchStats {
            reads: self.reads.load(Ordering::Relaxed),
            lists: self.lists.load(Ordering::Relaxed),
            logins: self.logins.load(Ordering::Relaxed),
            webhook_requests: 0,
        }
    }
}

/// Fetches every read and find of one store (and identity) into `fetched`.
async fn prefetch(
    store: &AwsStore,
    wanted: &StoreReads,
    world: &World,
    context: &FetchContext,
    fetched: &mut Fetched,
) -> FetchStats {
    let identity = store.identity_key(&wanted.namespace);
    let counters = Counters::default();
    let http = match reqwest::Client::builder().timeout(TIMEOUT).build() {
        Ok(http) => http,
        Err(e) => {
            fail_all(
                fetched,
                &identity,
                wanted,
                &format!("cannot build an HTTP client: {e}"),
            );
            return FetchStats::default();
        }
    };
    let session = match Session::open(&http, store, &identity, wanted, world, context, &counters)
        .await
    {
        Ok(session) => session,
        Err(message) => {
            fail_all(fetched, &identity, wanted, &message);
            return counters.stats();
        }
    };
    let mut values: Values =
        BTreeMap::new();
    let mut reads = wanted.reads.clone();
    for find in &wanted.finds {
        let found = session.find(find, &mut values).await;
        if let Ok(names) = &found {
            reads.extend(names.iter().map(|n| (n.clone(), None)));
        }
        fetched
            .remote_finds
            .insert((identity.clone(), find.clone()), found);
    }
    reads.retain(|read| !values.contains_key(read));
    session.read_all(reads, &mut values).await;
    for ((key, version), value) in values {
        fetched
            .remote_reads
            .insert((identity.clone(), key, version), value);
    }
    counters.stats()
}

/// Access key, secret key and optional session token.
#[derive(Clone)]
struct Credentials {
    access_key_id: SecretBytes,
    secret_access_key: SecretBytes,
    session_token: Option<SecretBytes>,
    /// When STS's session credentials expire.
    expires: Option<SystemTime>,
}

/// Where STS session credentials are kept across reconciles: the store's identity and a
/// per-process keyed hash of what they came from (source credentials, roles, options),
/// so new source credentials or options make a new session. Never shown.
fn session_key(identity: &str, parts: &[&[u8]]) -> String {
    use std::hash::{BuildHasher as _, Hasher as _};
    static STATE: std::sync::OnceLock<std::collections::hash_map::RandomState> =
        std::sync::OnceLock::new();
    let mut hasher = STATE
        .get_or_init(std::collections::hash_map::RandomState::new)
        .build_hasher();
    for part in parts {
        hasher.write_usize(part.len());
        hasher.write(part);
    }
    format!("aws {identity} {:016x}", hasher.finish())
}

/// Keeps session credentials until shortly before they expire: five minutes before, or
/// half their remaining life when that is shorter. Without an expiry they are not kept.
fn keep_session(context: &FetchContext, key: String, credentials: &Credentials) {
    let Some(expires) = credentials.expires else {
        return;
    };
    let Ok(left) = expires.duration_since(SystemTime::now()) else {
        return;
    };
    let margin = Duration::from_secs(300).min(left / 2);
    context.sessions.put(
        key,
        credentials.clone(),
        std::time::Instant::now() + (left - margin),
    );
}

/// Why an AWS call failed: AWS's error code and HTTP status, never its message (which
/// may quote a key ID or a canonical request).
#[derive(Debug)]
struct AwsError {
    code: String,
    status: u16,
}

impl std::fmt::Display for AwsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.describe())
    }
}

impl AwsError {
    fn not_found(&self) -> bool {
        matches!(
            self.code.as_str(),
            "ResourceNotFoundException" | "ParameterNotFound" | "ParameterVersionNotFound"
        )
    }

    fn describe(&self) -> String {
        let hint = match self.code.as_str() {
            "SignatureDoesNotMatch" | "InvalidClientTokenId" | "UnrecognizedClientException"
            | "InvalidSignatureException" | "IncompleteSignature" => {
                "\nhint: AWS refused the credentials: check the access key ID, secret access key and session token the store names"
            }
            "AccessDeniedException" | "AccessDenied" => {
                "\nhint: the store's identity lacks an IAM permission for this call"
            }
            _ => "",
        };
        if self.status == 0 {
            format!("{}{hint}", self.code)
        } else {
            format!("{} ({}){hint}", self.code, self.status)
        }
    }
}

pub(super) struct Session<'a> {
    http: &'a reqwest::Client,
    store: &'a AwsStore,
    identity: &'a str,
    credentials: Credentials,
    endpoint: String,
    counters: &'a Counters,
}

impl<'a> Session<'a> {
    pub(super) async fn open(
        http: &'a reqwest::Client,
        store: &'a AwsStore,
        identity: &'a str,
        wanted: &StoreReads,
        world: &World,
        context: &FetchContext,
        counters: &'a Counters,
    ) -> Result<Session<'a>, String> {
        let config = &store.config;
        let region = config.region.as_str();
        let namespace = wanted.namespace.as_str();
        let auth = &config.auth;
        let mut credentials = if let Some(secret_ref) = &auth.secret_ref {
            let place = |selector: &SecretKeySelector| {
                store.reference_namespace(selector.namespace.as_deref(), namespace)
            };
            let field = "auth.secretRef.accessKeyIDSecretRef";
            let selector = &secret_ref.access_key_id;
            let access_key_id =
                credential(world, context, place(selector), selector, field).await?;
            let field = "auth.secretRef.secretAccessKeySecretRef";
            let selector = &secret_ref.secret_access_key;
            let secret_access_key =
                credential(world, context, place(selector), selector, field).await?;
            let session_token = match &secret_ref.session_token {
                Some(selector) => {
                    let field = "auth.secretRef.sessionTokenSecretRef";
                    Some(credential(world, context, place(selector), selector, field).await?)
                }
                None => None,
            };
            Credentials {
                access_key_id,
                secret_access_key,
                session_token,
                expires: None,
            }
        } else if let Some(jwt) = &auth.jwt {
            let account = jwt
                .service_account_ref
                .as_ref()
                .ok_or("auth.jwt.serviceAccountRef is required")?;
            let namespace = store.reference_namespace(account.namespace.as_deref(), namespace);
            let client = context.client().ok_or(
                "auth.jwt needs the live cluster (apply, run, diff, or render --world cluster)",
            )?;
            let (role_arn, token) =
                service_account_token(client, context, &namespace, account).await?;
            let key = session_key(
                identity,
                &[
                    b"jwt",
                    namespace.as_bytes(),
                    account.name.as_bytes(),
                    role_arn.as_bytes(),
                    sts_endpoint(region).as_bytes(),
                ],
            );
            match context.sessions.get::<Credentials>(&key) {
                Some(credentials) => credentials,
                None => {
                    counters.logins.fetch_add(1, Ordering::Relaxed);
                    let credentials = assume_role_with_web_identity(http, region, &role_arn, &token)
                        .await
                        .map_err(|e| {
                            format!(
                                "auth.jwt: STS AssumeRoleWithWebIdentity for ServiceAccount {namespace}/{}: {e}",
                                account.name
                            )
                        })?;
                    keep_session(context, key, &credentials);
                    credentials
                }
            }
        } else {
            ambient(http, region, identity, context, counters).await?
        };
        let roles: Vec<&String> = config
            .additional_roles
            .iter()
            .chain(std::iter::once(&config.role))
            .filter(|r| !r.is_empty())
            .collect();
        if !roles.is_empty() {
            let empty = SecretBytes::from("");
            let options = serde_json::json!([
                config.external_id,
                config.session_tags.as_ref().map(|tags| tags
                    .iter()
                    .map(|t| [&t.key, &t.value])
                    .collect::<Vec<_>>()),
                config.transitive_tag_keys,
            ])
            .to_string();
            let mut parts: Vec<&[u8]> = vec![
                b"roles",
                credentials.access_key_id.expose(),
                credentials.secret_access_key.expose(),
                credentials.session_token.as_ref().unwrap_or(&empty).expose(),
                options.as_bytes(),
            ];
            let endpoint = sts_endpoint(region);
            parts.push(endpoint.as_bytes());
            parts.extend(roles.iter().map(|r| r.as_bytes()));
            let key = session_key(identity, &parts);
            match context.sessions.get::<Credentials>(&key) {
                Some(cached) => credentials = cached,
                None => {
                    let source_expires = credentials.expires;
                    for role in roles {
                        let is_main = role == &config.role;
                        counters.logins.fetch_add(1, Ordering::Relaxed);
                        credentials =
                            assume_role(http, region, &credentials, role, config, is_main)
                                .await
                                .map_err(|e| format!("role: STS AssumeRole {role}: {e}"))?;
                    }
                    credentials.expires = match (source_expires, credentials.expires) {
                        (Some(a), Some(b)) => Some(a.min(b)),
                        (a, b) => b.or(a),
                    };
                    keep_session(context, key, &credentials);
                }
            }
        }
        let endpoint = match store.service {
            Service::SecretsManager => endpoint(
                &["AWS_SECRETSMANAGER_ENDPOINT", "AWS_ENDPOINT_URL_SECRETS_MANAGER"],
                "secretsmanager",
                region,
            ),
            Service::ParameterStore => {
                endpoint(&["AWS_SSM_ENDPOINT", "AWS_ENDPOINT_URL_SSM"], "ssm", region)
            }
        };
        Ok(Session {
            http,
            store,
            identity,
            credentials,
            endpoint,
            counters,
        })
    }

    fn remote_error(&self, operation: &str, key: &str, error: &AwsError) -> RemoteError {
        RemoteError {
            message: format!(
                "{}: {} {operation} {key}: {}",
                self.identity,
                self.store.service.label(),
                error.describe()
            ),
            not_found: error.not_found(),
        }
    }

    /// One JSON-protocol call (both services speak AWS JSON 1.1).
    async fn call(&self, operation: &str, body: &Value) -> Result<Value, AwsError> {
        let (service, target) = match self.store.service {
            Service::SecretsManager => ("secretsmanager", format!("secretsmanager.{operation}")),
            Service::ParameterStore => ("ssm", format!("AmazonSSM.{operation}")),
        };
        let body = serde_json::to_vec(body).unwrap_or_default();
        let headers = [
            ("content-type", "application/x-amz-json-1.1".to_owned()),
            ("x-amz-target", target),
        ];
        let answer = send(
            self.http,
            &self.endpoint,
            service,
            &self.store.config.region,
            Some(&self.credentials),
            &headers,
            body,
        )
        .await?;
        serde_json::from_slice(&answer).map_err(|_| AwsError {
            code: "the answer is not JSON".into(),
            status: 200,
        })
    }

    /// Reads every `(key, version)` into `values`: value reads of the current version in
    /// batches, the rest one by one.
    async fn read_all(
        &self,
        reads: BTreeSet<(String, Option<String>)>,
        values: &mut Values,
    ) {
        let (current, single): (Vec<_>, Vec<_>) = reads
            .into_iter()
            .partition(|(key, version)| version.is_none() && !key.starts_with("tags:"));
        let current: Vec<String> = current.into_iter().map(|(key, _)| key).collect();
        let per_batch = match self.store.service {
            Service::SecretsManager => SECRETS_PER_BATCH,
            Service::ParameterStore => PARAMETERS_PER_BATCH,
        };
        let batches: Vec<Vec<(String, Result<SecretBytes, RemoteError>)>> =
            futures::stream::iter(current.chunks(per_batch).map(<[String]>::to_vec))
                .map(|chunk| async move { self.read_batch(&chunk).await })
                .buffer_unordered(CONCURRENCY)
                .collect()
                .await;
        for (key, value) in batches.into_iter().flatten() {
            values.insert((key, None), value);
        }
        let singles: Vec<(ReadKey, Result<SecretBytes, RemoteError>)> =
            futures::stream::iter(single)
                .map(|(key, version)| async move {
                    let value = self.read_one(&key, version.as_deref()).await;
                    ((key, version), value)
                })
                .buffer_unordered(CONCURRENCY)
                .collect()
                .await;
        values.extend(singles);
    }

    /// The current values of up to one batch of names.
    async fn read_batch(&self, names: &[String]) -> Vec<(String, Result<SecretBytes, RemoteError>)> {
        self.counters.reads.fetch_add(1, Ordering::Relaxed);
        let (operation, body) = match self.store.service {
            Service::SecretsManager => (
                "BatchGetSecretValue",
                serde_json::json!({ "SecretIdList": names }),
            ),
            Service::ParameterStore => (
                "GetParameters",
                serde_json::json!({ "Names": names, "WithDecryption": true }),
            ),
        };
        let answer = match self.call(operation, &body).await {
            Ok(answer) => answer,
            Err(error) if matches!(error.code.as_str(), "AccessDeniedException" | "AccessDenied") => {
                // A policy may allow GetSecretValue/GetParameter but not the batch call.
                tracing::info!(
                    store = self.identity,
                    operation,
                    "batch read refused; reading one by one"
                );
                let mut out = Vec::new();
                for name in names {
                    out.push((name.clone(), self.read_one(name, None).await));
                }
                return out;
            }
            Err(error) => {
                let joined = names.join(", ");
                return names
                    .iter()
                    .map(|name| {
                        (
                            name.clone(),
                            Err(self.remote_error(operation, &format!("[{joined}]"), &error)),
                        )
                    })
                    .collect();
            }
        };
        let mut found: HashMap<String, Result<SecretBytes, RemoteError>> = HashMap::new();
        match self.store.service {
            Service::SecretsManager => {
                for entry in answer["SecretValues"].as_array().into_iter().flatten() {
                    let value = secret_payload(entry);
                    for id in ["Name", "ARN"] {
                        if let Some(id) = entry[id].as_str() {
                            found.insert(id.to_owned(), value.clone().ok_or_else(|| self.empty(id)));
                        }
                    }
                }
                for error in answer["Errors"].as_array().into_iter().flatten() {
                    if let Some(id) = error["SecretId"].as_str() {
                        let code = error["ErrorCode"].as_str().unwrap_or("error").to_owned();
                        let error = AwsError { code, status: 0 };
                        found.insert(
                            id.to_owned(),
                            Err(self.remote_error("BatchGetSecretValue", id, &error)),
                        );
                    }
                }
            }
            Service::ParameterStore => {
                for parameter in answer["Parameters"].as_array().into_iter().flatten() {
                    if let (Some(name), Some(value)) =
                        (parameter["Name"].as_str(), parameter["Value"].as_str())
                    {
                        found.insert(name.to_owned(), Ok(SecretBytes::from(value)));
                    }
                }
                for name in answer["InvalidParameters"].as_array().into_iter().flatten() {
                    if let Some(name) = name.as_str() {
                        let error = AwsError {
                            code: "ParameterNotFound".into(),
                            status: 0,
                        };
                        found.insert(
                            name.to_owned(),
                            Err(self.remote_error("GetParameters", name, &error)),
                        );
                    }
                }
            }
        }
        let mut out = Vec::new();
        for name in names {
            let value = match found.remove(name) {
                Some(value) => value,
                // Named some other way than the answer names it: ask for it alone.
                None => self.read_one(name, None).await,
            };
            out.push((name.clone(), value));
        }
        out
    }

    fn empty(&self, key: &str) -> RemoteError {
        RemoteError {
            message: format!(
                "{}: {} {key} has neither SecretString nor SecretBinary",
                self.identity,
                self.store.service.label()
            ),
            not_found: false,
        }
    }

    /// One value (of a version), or one secret's tags (`tags:` keys).
    async fn read_one(&self, key: &str, version: Option<&str>) -> Result<SecretBytes, RemoteError> {
        self.counters.reads.fetch_add(1, Ordering::Relaxed);
        if let Some(name) = key.strip_prefix("tags:") {
            return self.read_tags(name, version).await;
        }
        match self.store.service {
            Service::SecretsManager => {
                let mut body = serde_json::json!({ "SecretId": key });
                match version {
                    Some(version) => match version.strip_prefix("uuid/") {
                        Some(id) => body["VersionId"] = id.into(),
                        None => body["VersionStage"] = version.into(),
                    },
                    None => body["VersionStage"] = "AWSCURRENT".into(),
                }
                match self.call("GetSecretValue", &body).await {
                    Ok(answer) => secret_payload(&answer).ok_or_else(|| self.empty(key)),
                    // ESO: a secret marked for deletion is gone.
                    Err(error) if error.code == "InvalidRequestException" => Err(RemoteError {
                        not_found: true,
                        ..self.remote_error("GetSecretValue", key, &error)
                    }),
                    Err(error) => Err(self.remote_error("GetSecretValue", key, &error)),
                }
            }
            Service::ParameterStore => {
                let name = match version {
                    Some(version) => format!("{key}:{version}"),
                    None => key.to_owned(),
                };
                let body = serde_json::json!({ "Name": name, "WithDecryption": true });
                match self.call("GetParameter", &body).await {
                    Ok(answer) => answer["Parameter"]["Value"]
                        .as_str()
                        .map(SecretBytes::from)
                        .ok_or_else(|| self.empty(key)),
                    Err(error) => Err(self.remote_error("GetParameter", &name, &error)),
                }
            }
        }
    }

    /// A secret's or parameter's tags as Go's `json.Marshal` of a map, as ESO's
    /// `metadataPolicy: Fetch` returns them.
    async fn read_tags(&self, name: &str, version: Option<&str>) -> Result<SecretBytes, RemoteError> {
        let (operation, body, list) = match self.store.service {
            Service::SecretsManager => (
                "DescribeSecret",
                serde_json::json!({ "SecretId": name }),
                "Tags",
            ),
            Service::ParameterStore => {
                let id = match version {
                    Some(version) => format!("{name}:{version}"),
                    None => name.to_owned(),
                };
                (
                    "ListTagsForResource",
                    serde_json::json!({ "ResourceType": "Parameter", "ResourceId": id }),
                    "TagList",
                )
            }
        };
        let answer = self
            .call(operation, &body)
            .await
            .map_err(|e| self.remote_error(operation, name, &e))?;
        let tags: BTreeMap<&str, &str> = answer[list]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|tag| Some((tag["Key"].as_str()?, tag["Value"].as_str()?)))
            .collect();
        Ok(SecretBytes::new(go_json_map(&tags).into_bytes()))
    }

    /// The names one `find` matches; Parameter Store's path listing brings the values
    /// along, into `values`.
    async fn find(
        &self,
        find: &str,
        values: &mut Values,
    ) -> Result<Vec<String>, RemoteError> {
        let failed = |message: String| RemoteError {
            message: format!("{}: find: {message}", self.identity),
            not_found: false,
        };
        let spec: FindSpec = serde_json::from_str(find).map_err(|e| failed(e.to_string()))?;
        let regex = match &spec.name {
            Some(pattern) => Some(
                regex::Regex::new(pattern)
                    .map_err(|e| failed(format!("name.regexp: {e}")))?,
            ),
            None => None,
        };
        let tags = spec.tags.clone().unwrap_or_default();
        if regex.is_none() && tags.is_empty() {
            return Err(failed("needs name.regexp or tags".into()));
        }
        let matches = |name: &str| regex.as_ref().is_none_or(|r| r.is_match(name));
        let mut names = Vec::new();
        let mut next: Option<String> = None;
        match self.store.service {
            Service::SecretsManager => {
                let mut filters = Vec::new();
                for (key, value) in &tags {
                    filters.push(serde_json::json!({"Key": "tag-key", "Values": [key]}));
                    filters.push(serde_json::json!({"Key": "tag-value", "Values": [value]}));
                }
                if let Some(path) = &spec.path {
                    filters.push(serde_json::json!({"Key": "name", "Values": [path]}));
                }
                loop {
                    self.counters.lists.fetch_add(1, Ordering::Relaxed);
                    let mut body = serde_json::json!({"Filters": filters, "MaxResults": 100});
                    if let Some(token) = &next {
                        body["NextToken"] = token.clone().into();
                    }
                    let answer = self
                        .call("ListSecrets", &body)
                        .await
                        .map_err(|e| self.remote_error("ListSecrets", "(find)", &e))?;
                    for secret in answer["SecretList"].as_array().into_iter().flatten() {
                        if let Some(name) = secret["Name"].as_str().filter(|n| matches(n)) {
                            names.push(name.to_owned());
                        }
                    }
                    next = answer["NextToken"].as_str().map(str::to_owned);
                    if next.is_none() {
                        break;
                    }
                }
            }
            // As ESO: a name finds by path (values included), tags alone describe.
            Service::ParameterStore if regex.is_some() => loop {
                self.counters.lists.fetch_add(1, Ordering::Relaxed);
                let path = spec.path.as_deref().unwrap_or("/");
                let mut body = serde_json::json!({
                    "Path": path, "Recursive": true, "WithDecryption": true, "MaxResults": 10,
                });
                if let Some(token) = &next {
                    body["NextToken"] = token.clone().into();
                }
                let answer = self
                    .call("GetParametersByPath", &body)
                    .await
                    .map_err(|e| self.remote_error("GetParametersByPath", path, &e))?;
                for parameter in answer["Parameters"].as_array().into_iter().flatten() {
                    if let (Some(name), Some(value)) =
                        (parameter["Name"].as_str(), parameter["Value"].as_str())
                        && matches(name)
                    {
                        names.push(name.to_owned());
                        values.insert((name.to_owned(), None), Ok(SecretBytes::from(value)));
                    }
                }
                next = answer["NextToken"].as_str().map(str::to_owned);
                if next.is_none() {
                    break;
                }
            },
            Service::ParameterStore => {
                let mut filters: Vec<Value> = tags
                    .iter()
                    .map(|(key, value)| {
                        serde_json::json!({"Key": format!("tag:{key}"), "Option": "Equals", "Values": [value]})
                    })
                    .collect();
                if let Some(path) = &spec.path {
                    filters.push(
                        serde_json::json!({"Key": "Path", "Option": "Recursive", "Values": [path]}),
                    );
                }
                loop {
                    self.counters.lists.fetch_add(1, Ordering::Relaxed);
                    let mut body =
                        serde_json::json!({"ParameterFilters": filters, "MaxResults": 50});
                    if let Some(token) = &next {
                        body["NextToken"] = token.clone().into();
                    }
                    let answer = self
                        .call("DescribeParameters", &body)
                        .await
                        .map_err(|e| self.remote_error("DescribeParameters", "(find)", &e))?;
                    for parameter in answer["Parameters"].as_array().into_iter().flatten() {
                        if let Some(name) = parameter["Name"].as_str() {
                            names.push(name.to_owned());
                        }
                    }
                    next = answer["NextToken"].as_str().map(str::to_owned);
                    if next.is_none() {
                        break;
                    }
                }
            }
        }
        names.sort();
        names.dedup();
        Ok(names)
    }
}

/// A Secrets Manager answer's value: `SecretString`, else `SecretBinary` (base64 in JSON).
fn secret_payload(entry: &Value) -> Option<SecretBytes> {
    if let Some(text) = entry["SecretString"].as_str() {
        return Some(SecretBytes::from(text));
    }
    let binary = entry["SecretBinary"].as_str()?;
    base64::engine::general_purpose::STANDARD
        .decode(binary)
        .ok()
        .map(SecretBytes::new)
}

/// A credential Secret's key: from the world (courier's own listing, or a files world),
/// else read from the live cluster with courier's identity.
pub(super) async fn credential(
    world: &World,
    context: &FetchContext,
    namespace: String,
    selector: &SecretKeySelector,
    field: &str,
) -> Result<SecretBytes, String> {
    if let Some(secret) = world.secret(&namespace, &selector.name) {
        return secret.data.get(&selector.key).cloned().ok_or_else(|| {
            format!(
                "{field}: key {:?} not found in Secret {namespace}/{}",
                selector.key, selector.name
            )
        });
    }
    let Some(client) = context.client() else {
        return Err(format!(
            "{field}: Secret {namespace}/{} not found",
            selector.name
        ));
    };
    let api = kube::Api::<k8s_openapi::api::core::v1::Secret>::namespaced(client.clone(), &namespace);
    let secret = api
        .get_opt(&selector.name)
        .await
        .map_err(|e| format!("{field}: cannot read Secret {namespace}/{}: {e}", selector.name))?
        .ok_or_else(|| format!("{field}: Secret {namespace}/{} not found", selector.name))?;
    secret
        .data
        .and_then(|mut data| data.remove(&selector.key))
        .map(|bytes| SecretBytes::new(bytes.0))
        .ok_or_else(|| {
            format!(
                "{field}: key {:?} not found in Secret {namespace}/{}",
                selector.key, selector.name
            )
        })
}

/// ESO's IRSA: the role from the ServiceAccount's `eks.amazonaws.com/role-arn`
/// annotation, and a token for it (audience `sts.amazonaws.com` or the annotation's,
/// plus `serviceAccountRef.audiences`) by TokenRequest, kept until 80 % of its life.
async fn service_account_token(
    client: &kube::Client,
    context: &FetchContext,
    namespace: &str,
    account: &ServiceAccountSelector,
) -> Result<(String, SecretBytes), String> {
    use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
    use k8s_openapi::api::core::v1::ServiceAccount;
    let name = &account.name;
    let api = kube::Api::<ServiceAccount>::namespaced(client.clone(), namespace);
    let found = api
        .get_opt(name)
        .await
        .map_err(|e| format!("auth.jwt.serviceAccountRef: cannot read ServiceAccount {namespace}/{name}: {e}"))?
        .ok_or_else(|| format!("auth.jwt.serviceAccountRef: ServiceAccount {namespace}/{name} not found"))?;
    let annotations = found.metadata.annotations.unwrap_or_default();
    let role_arn = annotations
        .get(ROLE_ARN_ANNOTATION)
        .filter(|a| !a.is_empty())
        .cloned()
        .ok_or_else(|| {
            format!("auth.jwt.serviceAccountRef: ServiceAccount {namespace}/{name} has no {ROLE_ARN_ANNOTATION} annotation\nhint: annotate it with the IAM role to assume")
        })?;
    let mut audiences = vec![
        annotations
            .get(AUDIENCE_ANNOTATION)
            .filter(|a| !a.is_empty())
            .cloned()
            .unwrap_or_else(|| "sts.amazonaws.com".to_owned()),
    ];
    audiences.extend(account.audiences.iter().cloned());
    let key = (namespace.to_owned(), name.clone(), audiences.clone());
    if let Some(token) = context.tokens.get(&key) {
        return Ok((role_arn, token));
    }
    let lifetime = 600;
    let request = TokenRequest {
        spec: Some(TokenRequestSpec {
            audiences: Some(audiences),
            expiration_seconds: Some(lifetime),
            ..Default::default()
        }),
        ..Default::default()
    };
    let answer = api
        .create_token_request(name, &kube::api::PostParams::default(), &request)
        .await
        .map_err(|e| format!("auth.jwt.serviceAccountRef: cannot get a token for ServiceAccount {namespace}/{name}: {e}"))?;
    let token = SecretBytes::from(answer.status.and_then(|s| s.token).unwrap_or_default());
    context
        .tokens
        .put(key, token.clone(), Duration::from_secs(lifetime as u64));
    Ok((role_arn, token))
}

/// courier's own credentials, in the SDK's order: the environment's keys, a web identity
/// token file, then instance metadata (IMDSv2; `AWS_EC2_METADATA_SERVICE_ENDPOINT`,
/// `AWS_EC2_METADATA_DISABLED`). STS and instance-metadata sessions are kept until
/// shortly before they expire.
async fn ambient(
    http: &reqwest::Client,
    region: &str,
    identity: &str,
    context: &FetchContext,
    counters: &Counters,
) -> Result<Credentials, String> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    if let (Some(access_key_id), Some(secret_access_key)) =
        (var("AWS_ACCESS_KEY_ID"), var("AWS_SECRET_ACCESS_KEY"))
    {
        return Ok(Credentials {
            access_key_id: SecretBytes::from(access_key_id),
            secret_access_key: SecretBytes::from(secret_access_key),
            session_token: var("AWS_SESSION_TOKEN").map(SecretBytes::from),
            expires: None,
        });
    }
    if let (Some(file), Some(role_arn)) = (var("AWS_WEB_IDENTITY_TOKEN_FILE"), var("AWS_ROLE_ARN")) {
        let token = std::fs::read(&file)
            .map_err(|e| format!("ambient credentials: cannot read AWS_WEB_IDENTITY_TOKEN_FILE {file}: {e}"))?;
        let key = session_key(
            identity,
            &[b"ambient", &token, role_arn.as_bytes(), sts_endpoint(region).as_bytes()],
        );
        if let Some(credentials) = context.sessions.get::<Credentials>(&key) {
            return Ok(credentials);
        }
        counters.logins.fetch_add(1, Ordering::Relaxed);
        let credentials =
            assume_role_with_web_identity(http, region, &role_arn, &SecretBytes::new(token))
                .await
                .map_err(|e| format!("ambient credentials: STS AssumeRoleWithWebIdentity: {e}"))?;
        keep_session(context, key, &credentials);
        return Ok(credentials);
    }
    if var("AWS_EC2_METADATA_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true")) {
        return Err("no auth and no ambient AWS credentials (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN; instance metadata is off: AWS_EC2_METADATA_DISABLED)".into());
    }
    let base = var("AWS_EC2_METADATA_SERVICE_ENDPOINT")
        .unwrap_or_else(|| "http://169.254.169.254".to_owned());
    let base = base.trim_end_matches('/').to_owned();
    let key = session_key(identity, &[b"imds", base.as_bytes()]);
    if let Some(credentials) = context.sessions.get::<Credentials>(&key) {
        return Ok(credentials);
    }
    counters.logins.fetch_add(1, Ordering::Relaxed);
    let credentials = instance_metadata(http, &base).await.map_err(|e| {
        format!("no auth and no ambient AWS credentials (AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN), and instance metadata at {base}: {e}")
    })?;
    keep_session(context, key, &credentials);
    Ok(credentials)
}

/// Instance-metadata credentials, IMDSv2 as the SDKs read them: a session token by
/// `PUT /latest/api/token`, then the role's name and its credentials under
/// `/latest/meta-data/iam/security-credentials/`, each with the token. Errors name the
/// step and the HTTP status, never a token or a key.
async fn instance_metadata(http: &reqwest::Client, base: &str) -> Result<Credentials, String> {
    const IMDS_TIMEOUT: Duration = Duration::from_secs(2);
    let step = |what: &str, e: reqwest::Error| {
        let kind = if e.is_timeout() {
            "timed out"
        } else if e.is_connect() {
            "cannot connect"
        } else {
            "failed"
        };
        format!("{what}: {kind}")
    };
    let answer = http
        .put(format!("{base}/latest/api/token"))
        .header("x-aws-ec2-metadata-token-ttl-seconds", "21600")
        .timeout(IMDS_TIMEOUT)
        .send()
        .await
        .map_err(|e| step("PUT /latest/api/token", e))?;
    if !answer.status().is_success() {
        return Err(format!("PUT /latest/api/token: HTTP {}", answer.status().as_u16()));
    }
    let token = answer
        .text()
        .await
        .map_err(|e| step("PUT /latest/api/token", e))?;
    let get = |path: String| {
        let token = token.clone();
        async move {
            let answer = http
                .get(format!("{base}{path}"))
                .header("x-aws-ec2-metadata-token", token)
                .timeout(IMDS_TIMEOUT)
                .send()
                .await
                .map_err(|e| step("GET /latest/meta-data/iam/security-credentials/", e))?;
            let status = answer.status();
            if !status.is_success() {
                let hint = if status.as_u16() == 404 {
                    "\nhint: the instance has no IAM role (instance profile)"
                } else {
                    ""
                };
                return Err(format!(
                    "GET /latest/meta-data/iam/security-credentials/: HTTP {}{hint}",
                    status.as_u16()
                ));
            }
            answer
                .bytes()
                .await
                .map_err(|e| step("GET /latest/meta-data/iam/security-credentials/", e))
        }
    };
    let roles = get("/latest/meta-data/iam/security-credentials/".to_owned()).await?;
    let role = String::from_utf8_lossy(&roles)
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .map(str::to_owned)
        .ok_or("GET /latest/meta-data/iam/security-credentials/: no role")?;
    let answer = get(format!("/latest/meta-data/iam/security-credentials/{role}")).await?;
    #[derive(Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Answer {
        code: Option<String>,
        access_key_id: Option<String>,
        secret_access_key: Option<String>,
        token: Option<String>,
        expiration: Option<String>,
    }
    let answer: Answer = serde_json::from_slice(&answer)
        .map_err(|_| format!("the credentials of role {role} are not JSON"))?;
    if let Some(code) = answer.code.as_deref().filter(|c| *c != "Success") {
        return Err(format!("the credentials of role {role}: Code {code}"));
    }
    let (Some(access_key_id), Some(secret_access_key)) =
        (answer.access_key_id, answer.secret_access_key)
    else {
        return Err(format!("the credentials of role {role} lack AccessKeyId or SecretAccessKey"));
    };
    Ok(Credentials {
        access_key_id: SecretBytes::from(access_key_id),
        secret_access_key: SecretBytes::from(secret_access_key),
        session_token: answer.token.map(SecretBytes::from),
        expires: answer
            .expiration
            .and_then(|e| e.parse::<jiff::Timestamp>().ok())
            .map(SystemTime::from),
    })
}

fn sts_endpoint(region: &str) -> String {
    endpoint(&["AWS_STS_ENDPOINT", "AWS_ENDPOINT_URL_STS"], "sts", region)
}

/// `AssumeRoleWithWebIdentity` (unsigned: the token is the credential).
async fn assume_role_with_web_identity(
    http: &reqwest::Client,
    region: &str,
    role_arn: &str,
    token: &SecretBytes,
) -> Result<Credentials, AwsError> {
    let token = String::from_utf8_lossy(token.expose()).into_owned();
    let form = form_encode(&[
        ("Action", "AssumeRoleWithWebIdentity"),
        ("Version", "2011-06-15"),
        ("RoleArn", role_arn),
        ("RoleSessionName", "courier"),
        ("WebIdentityToken", &token),
    ]);
    let headers = [(
        "content-type",
        "application/x-www-form-urlencoded".to_owned(),
    )];
    let answer = send(http, &sts_endpoint(region), "sts", region, None, &headers, form.into_bytes())
        .await?;
    sts_credentials(&answer)
}

/// `AssumeRole`, with the store's external ID and session tags for its main role.
async fn assume_role(
    http: &reqwest::Client,
    region: &str,
    credentials: &Credentials,
    role_arn: &str,
    config: &AwsProvider,
    is_main: bool,
) -> Result<Credentials, AwsError> {
    let mut pairs: Vec<(String, String)> = vec![
        ("Action".into(), "AssumeRole".into()),
        ("Version".into(), "2011-06-15".into()),
        ("RoleArn".into(), role_arn.into()),
        ("RoleSessionName".into(), "courier".into()),
    ];
    if is_main {
        if !config.external_id.is_empty() {
            pairs.push(("ExternalId".into(), config.external_id.clone()));
        }
        // ESO always hands the SDK a tag list for the main role, empty without
        // sessionTags, which the query protocol sends as `Tags=`; its transitiveTagKeys
        // therefore go out with or without session tags.
        let tags = config.session_tags.as_deref().unwrap_or_default();
        if tags.is_empty() {
            pairs.push(("Tags".into(), String::new()));
        }
        for (index, tag) in tags.iter().enumerate() {
            pairs.push((format!("Tags.member.{}.Key", index + 1), tag.key.clone()));
            pairs.push((format!("Tags.member.{}.Value", index + 1), tag.value.clone()));
        }
        for (index, key) in config.transitive_tag_keys.iter().enumerate() {
            pairs.push((format!("TransitiveTagKeys.member.{}", index + 1), key.clone()));
        }
    }
    let borrowed: Vec<(&str, &str)> = pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let headers = [(
        "content-type",
        "application/x-www-form-urlencoded".to_owned(),
    )];
    let answer = send(
        http,
        &sts_endpoint(region),
        "sts",
        region,
        Some(credentials),
        &headers,
        form_encode(&borrowed).into_bytes(),
    )
    .await?;
    sts_credentials(&answer)
}

fn sts_credentials(answer: &[u8]) -> Result<Credentials, AwsError> {
    let text = String::from_utf8_lossy(answer);
    let missing = || AwsError {
        code: "STS answered without credentials".into(),
        status: 200,
    };
    Ok(Credentials {
        access_key_id: SecretBytes::from(xml_text(&text, "AccessKeyId").ok_or_else(missing)?),
        secret_access_key: SecretBytes::from(
            xml_text(&text, "SecretAccessKey").ok_or_else(missing)?,
        ),
        session_token: xml_text(&text, "SessionToken").map(SecretBytes::from),
        expires: xml_text(&text, "Expiration")
            .and_then(|e| e.parse::<jiff::Timestamp>().ok())
            .map(SystemTime::from),
    })
}

/// The text of the first `<tag>...</tag>` (STS answers and errors are small, flat XML).
fn xml_text(xml: &str, tag: &str) -> Option<String> {
    let start = xml.find(&format!("<{tag}>"))? + tag.len() + 2;
    let end = start + xml[start..].find(&format!("</{tag}>"))?;
    let raw = &xml[start..end];
    Some(
        raw.replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&apos;", "'")
            .replace("&amp;", "&"),
    )
}

fn form_encode(pairs: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (index, (key, value)) in pairs.iter().enumerate() {
        if index > 0 {
            out.push('&');
        }
        out.push_str(&percent_encode(key));
        out.push('=');
        out.push_str(&percent_encode(value));
    }
    out
}

fn percent_encode(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// A service's endpoint: ESO's variable, the SDK's `AWS_ENDPOINT_URL_<SERVICE>` and
/// `AWS_ENDPOINT_URL`, else AWS's regional endpoint.
fn endpoint(variables: &[&str], prefix: &str, region: &str) -> String {
    variables
        .iter()
        .chain(std::iter::once(&"AWS_ENDPOINT_URL"))
        .find_map(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| format!("https://{prefix}.{region}.amazonaws.com"))
}

/// Signs (when `credentials` are given) and sends one POST, retrying throttling, 429,
/// 5xx and connection failures with backoff; each attempt is signed afresh.
async fn send(
    http: &reqwest::Client,
    endpoint: &str,
    service: &str,
    region: &str,
    credentials: Option<&Credentials>,
    headers: &[(&str, String)],
    body: Vec<u8>,
) -> Result<Vec<u8>, AwsError> {
    let url = reqwest::Url::parse(endpoint).map_err(|_| AwsError {
        code: format!("the endpoint {endpoint:?} is not a URL"),
        status: 0,
    })?;
    let host = match (url.host_str(), url.port()) {
        (Some(host), Some(port)) => format!("{host}:{port}"),
        (Some(host), None) => host.to_owned(),
        (None, _) => {
            return Err(AwsError {
                code: format!("the endpoint {endpoint:?} names no host"),
                status: 0,
            });
        }
    };
    let mut attempt = 1;
    loop {
        let mut all: Vec<(String, String)> = headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect();
        all.push(("host".into(), host.clone()));
        if let Some(credentials) = credentials {
            all.extend(sign(url.as_str(), service, region, credentials, &all, &body)?);
        }
        let mut request = http.post(url.clone()).body(body.clone());
        for (name, value) in &all {
            request = request.header(name.as_str(), value.as_str());
        }
        let retry = match request.send().await {
            Ok(response) => {
                let status = response.status().as_u16();
                let error_type = response
                    .headers()
                    .get("x-amzn-errortype")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                let bytes = response.bytes().await.map(|b| b.to_vec()).unwrap_or_default();
                if (200..300).contains(&status) {
                    return Ok(bytes);
                }
                let code = error_code(error_type.as_deref(), &bytes)
                    .unwrap_or_else(|| format!("HTTP {status}"));
                let throttled = matches!(
                    code.as_str(),
                    "ThrottlingException" | "Throttling" | "TooManyRequestsException"
                        | "RequestLimitExceeded" | "ThrottledException"
                );
                if attempt < ATTEMPTS && (throttled || status == 429 || status >= 500) {
                    tracing::info!(service, status, code, attempt, "AWS asked to retry");
                    true
                } else {
                    return Err(AwsError { code, status });
                }
            }
            Err(e) if attempt < ATTEMPTS && (e.is_connect() || e.is_timeout()) => true,
            Err(e) => {
                let what = if e.is_timeout() {
                    "timed out"
                } else if e.is_connect() {
                    "cannot connect"
                } else {
                    "request failed"
                };
                return Err(AwsError {
                    code: format!("{what} ({host})"),
                    status: 0,
                });
            }
        };
        debug_assert!(retry);
        tokio::time::sleep(Duration::from_millis(200 * 2u64.pow(attempt - 1))).await;
        attempt += 1;
    }
}

/// AWS's error code: the `x-amzn-ErrorType` header, a JSON `__type`, or an XML `<Code>`.
fn error_code(header: Option<&str>, body: &[u8]) -> Option<String> {
    let clean = |code: &str| {
        let code = code.split(':').next().unwrap_or(code);
        code.rsplit('#').next().unwrap_or(code).trim().to_owned()
    };
    if let Some(header) = header.filter(|h| !h.is_empty()) {
        return Some(clean(header));
    }
    if let Ok(json) = serde_json::from_slice::<Value>(body)
        && let Some(code) = json["__type"].as_str().or(json["code"].as_str())
    {
        return Some(clean(code));
    }
    xml_text(&String::from_utf8_lossy(body), "Code").map(|c| clean(&c))
}

/// SigV4 headers (`authorization`, `x-amz-date`, `x-amz-security-token`) for one request.
fn sign(
    url: &str,
    service: &str,
    region: &str,
    credentials: &Credentials,
    headers: &[(String, String)],
    body: &[u8],
) -> Result<Vec<(String, String)>, AwsError> {
    use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
    use aws_sigv4::sign::v4;
    let failed = |_| AwsError {
        code: "cannot sign the request".into(),
        status: 0,
    };
    let text = |bytes: &SecretBytes| String::from_utf8_lossy(bytes.expose()).into_owned();
    let identity = aws_credential_types::Credentials::new(
        text(&credentials.access_key_id),
        text(&credentials.secret_access_key),
        credentials.session_token.as_ref().map(text),
        None,
        "courier",
    )
    .into();
    let params = v4::SigningParams::builder()
        .identity(&identity)
        .region(region)
        .name(service)
        .time(SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .map_err(|_| AwsError {
            code: "cannot sign the request".into(),
            status: 0,
        })?
        .into();
    let request = SignableRequest::new(
        "POST",
        url,
        headers.iter().map(|(k, v)| (k.as_str(), v.as_str())),
        SignableBody::Bytes(body),
    )
    .map_err(failed)?;
    let (instructions, _signature) = sign(request, &params).map_err(failed)?.into_parts();
    Ok(instructions
        .headers()
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect())
}

/// Go's `json.Marshal(map[string]string)`: sorted keys, `<`, `>`, `&`, U+2028 and
/// U+2029 escaped.
fn go_json_map(map: &BTreeMap<&str, &str>) -> String {
    let quote = |text: &str| {
        serde_json::to_string(text)
            .expect("strings always serialize")
            .replace('<', "\\u003c")
            .replace('>', "\\u003e")
            .replace('&', "\\u0026")
            .replace('\u{2028}', "\\u2028")
            .replace('\u{2029}', "\\u2029")
    };
    let members: Vec<String> = map
        .iter()
        .map(|(k, v)| format!("{}:{}", quote(k), quote(v)))
        .collect();
    format!("{{{}}}", members.join(","))
}

// ---------------------------------------------------------------------------------------
// Answering the planner from the prefetched values.

/// An AWS store answered from the values prefetched into the world.
struct AwsClient<'w> {
    world: &'w World,
    store: &'w AwsStore,
    identity: String,
}

impl AwsClient<'_> {
    fn value(&self, reference: &RemoteRef) -> Result<&SecretBytes, FetchError> {
        prefetched(
            self.world,
            &self.identity,
            &self.store.read_key(reference),
            &reference.key,
            reference.version.as_ref(),
        )
    }
}

impl SecretsClient for AwsClient<'_> {
    fn get_secret(&self, remote_ref: &RemoteRef) -> Result<SecretBytes, FetchError> {
        let value = self.value(remote_ref)?;
        match remote_ref.property.as_deref().filter(|p| !p.is_empty()) {
            None => Ok(value.clone()),
            Some(property) => property_of(value.expose(), property)
                .map(|v| SecretBytes::new(v.into_bytes()))
                .ok_or_else(|| {
                    FetchError::new(format!(
                        "{}: key {property} does not exist in secret {}",
                        self.identity, remote_ref.key
                    ))
                }),
        }
    }

    fn get_secret_map(&self, remote_ref: &RemoteRef) -> Result<SecretMap, FetchError> {
        let value = self.get_secret(remote_ref)?;
        let map: BTreeMap<String, Box<RawValue>> = serde_json::from_slice(value.expose())
            .map_err(|_| {
                FetchError::new(format!(
                    "{}: {} is not a JSON object, so it cannot be extracted",
                    self.identity, remote_ref.key
                ))
            })?;
        Ok(map
            .into_iter()
            .map(|(key, raw)| {
                let bytes = match serde_json::from_str::<String>(raw.get()) {
                    Ok(text) => text.into_bytes(),
                    Err(_) => raw.get().as_bytes().to_vec(),
                };
                (key, SecretBytes::new(bytes))
            })
            .collect())
    }

    fn get_all_secrets(&self, find: &FindRef) -> Result<SecretMap, FetchError> {
        if find.name.is_none() && find.tags.as_ref().is_none_or(|t| t.is_empty()) {
            return Err(FetchError::new(format!(
                "{}: find needs name.regexp or tags",
                self.identity
            )));
        }
        let key = find_key(find);
        let names = match self
            .world
            .remote_finds
            .get(&(self.identity.clone(), key.clone()))
        {
            None => {
                return Err(FetchError::new(format!(
                    "{}: find {key} was not fetched",
                    self.identity
                )));
            }
            Some(Err(error)) => return Err(FetchError::new(error.message.clone())),
            Some(Ok(names)) => names,
        };
        let mut found = SecretMap::new();
        for name in names {
            let value = prefetched(self.world, &self.identity, name, name, None)?;
            found.insert(name.clone(), value.clone());
        }
        Ok(found)
    }
}

/// ESO's property lookup (gjson): with dots, first the whole property as one key, then
/// as a path; the value as gjson's `String()`.
fn property_of(payload: &[u8], property: &str) -> Option<String> {
    let text = std::str::from_utf8(payload).ok()?;
    if property.contains('.') {
        let escaped = property.replace('.', "\\.");
        if let Some(value) = gjson_get(text, &escaped) {
            return Some(value);
        }
    }
    gjson_get(text, property)
}

/// gjson's `Get(json, path).String()` for the paths ESO users write: dot-separated keys
/// (`\.` for a literal dot) and array indexes, on the raw JSON (objects keep their text).
fn gjson_get(json: &str, path: &str) -> Option<String> {
    let mut current: Box<RawValue> = serde_json::from_str(json).ok()?;
    for component in split_path(path) {
        let raw = current.get().trim_start();
        current = if raw.starts_with('{') {
            let members: Vec<(String, Box<RawValue>)> =
                serde_json::from_str::<OrderedObject>(raw).ok()?.0;
            members.into_iter().find(|(k, _)| *k == component)?.1
        } else if raw.starts_with('[') {
            let index: usize = component.parse().ok()?;
            let mut items: Vec<Box<RawValue>> = serde_json::from_str(raw).ok()?;
            if index >= items.len() {
                return None;
            }
            items.swap_remove(index)
        } else {
            return None;
        };
    }
    Some(gjson_string(current.get()))
}

/// An object's members in their order (gjson takes the first of duplicate keys).
struct OrderedObject(Vec<(String, Box<RawValue>)>);

impl<'de> Deserialize<'de> for OrderedObject {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Members;
        impl<'de> serde::de::Visitor<'de> for Members {
            type Value = OrderedObject;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a JSON object")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<OrderedObject, A::Error> {
                let mut members = Vec::new();
                while let Some(member) = map.next_entry::<String, Box<RawValue>>()? {
                    members.push(member);
                }
                Ok(OrderedObject(members))
            }
        }
        deserializer.deserialize_map(Members)
    }
}

/// gjson's `String()`: strings unquoted, `null` empty, integers as written, other
/// numbers as Go's `FormatFloat(f, 'f', -1, 64)`, objects and arrays as their raw text.
fn gjson_string(raw: &str) -> String {
    let raw = raw.trim();
    match raw.as_bytes().first() {
        Some(b'"') => serde_json::from_str::<String>(raw).unwrap_or_default(),
        Some(b'n') => String::new(),
        Some(b'-' | b'0'..=b'9') => {
            let digits = raw.strip_prefix('-').unwrap_or(raw);
            if digits.bytes().all(|b| b.is_ascii_digit()) {
                raw.to_owned()
            } else {
                raw.parse::<f64>()
                    .map(|f| f.to_string())
                    .unwrap_or_else(|_| raw.to_owned())
            }
        }
        _ => raw.to_owned(),
    }
}

fn split_path(path: &str) -> Vec<String> {
    let mut components = vec![String::new()];
    let mut chars = path.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(next) = chars.next() {
                    components.last_mut().expect("never empty").push(next);
                }
            }
            '.' => components.push(String::new()),
            c => components.last_mut().expect("never empty").push(c),
        }
    }
    components
}

// ---------------------------------------------------------------------------------------
// `spec.provider.aws`.

/// The fields of `spec.provider.aws` courier reads ([`Provider::implemented`]):
/// `service` and `region` (`parse`, the endpoints), `prefix` (every key), the role chain
/// `additionalRoles`, `role`, `externalID`, `sessionTags`, `transitiveTagKeys` (STS
/// AssumeRole), `sessionTagsPolicy` (only its default, `None`: `parse` refuses others),
/// `auth.secretRef` and `auth.jwt.serviceAccountRef` (its `audiences` too). Refused:
/// `customSessionTags`, and `secretsManager` (PushSecret deletion settings, which ESO's
/// store validation checks).
pub const IMPLEMENTED: &[&str] = &[
    "service",
    "region",
    "prefix",
    "role",
    "additionalRoles",
    "externalID",
    "sessionTags",
    "transitiveTagKeys",
    "sessionTagsPolicy",
    "auth.secretRef",
    "auth.jwt.serviceAccountRef",
];

/// `spec.provider.aws`, as ESO v2.9 defines it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AwsProvider {
    /// `SecretsManager` or `ParameterStore`.
    #[serde(default)]
    pub service: String,
    /// AWS region.
    #[serde(default)]
    pub region: String,
    /// A role to assume (STS AssumeRole) after authenticating.
    #[serde(default)]
    pub role: String,
    /// Roles assumed in order before `role`.
    #[serde(default, deserialize_with = "null_default")]
    pub additional_roles: Vec<String>,
    /// The external ID of `role`'s AssumeRole.
    #[serde(default, rename = "externalID")]
    pub external_id: String,
    /// Session tags of `role`'s AssumeRole.
    #[serde(default)]
    pub session_tags: Option<Vec<Tag>>,
    /// Which session tags are transitive.
    #[serde(default, deserialize_with = "null_default")]
    pub transitive_tag_keys: Vec<String>,
    /// `None`, or ESO's generated tags (not supported yet).
    #[serde(default)]
    pub session_tags_policy: Option<String>,
    /// Prepended to every `remoteRef.key`.
    #[serde(default)]
    pub prefix: String,
    /// Deletion settings for PushSecret; reading ignores them.
    #[serde(default)]
    pub secrets_manager: Option<Value>,
    /// How to authenticate.
    #[serde(default)]
    pub auth: AwsAuth,
}

fn null_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// A session tag.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Tag {
    /// Key.
    #[serde(default)]
    pub key: String,
    /// Value.
    #[serde(default)]
    pub value: String,
}

/// `aws.auth`: static keys from Secrets, or a ServiceAccount's token; neither means
/// ambient credentials.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AwsAuth {
    /// Keys kept in Secrets.
    #[serde(default)]
    pub secret_ref: Option<AwsSecretRef>,
    /// A ServiceAccount token exchanged with STS AssumeRoleWithWebIdentity.
    #[serde(default)]
    pub jwt: Option<AwsJwt>,
}

/// `aws.auth.secretRef`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct AwsSecretRef {
    /// The access key ID.
    #[serde(default, rename = "accessKeyIDSecretRef")]
    pub access_key_id: SecretKeySelector,
    /// The secret access key.
    #[serde(default, rename = "secretAccessKeySecretRef")]
    pub secret_access_key: SecretKeySelector,
    /// A session token, for temporary keys.
    #[serde(default, rename = "sessionTokenSecretRef")]
    pub session_token: Option<SecretKeySelector>,
}

/// `aws.auth.jwt`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AwsJwt {
    /// The ServiceAccount whose token courier requests; its
    /// `eks.amazonaws.com/role-arn` annotation names the role.
    #[serde(default)]
    pub service_account_ref: Option<ServiceAccountSelector>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_follow_gjson() {
        let payload = br#"{"a": {"b" : 1}, "n": 1.50, "i": 42, "s": "x", "z": null, "d.e": "dotted", "l": [1, "two"]}"#;
        let get = |p: &str| property_of(payload, p);
        assert_eq!(get("a").as_deref(), Some(r#"{"b" : 1}"#));
        assert_eq!(get("a.b").as_deref(), Some("1"));
        assert_eq!(get("n").as_deref(), Some("1.5"));
        assert_eq!(get("i").as_deref(), Some("42"));
        assert_eq!(get("s").as_deref(), Some("x"));
        assert_eq!(get("z").as_deref(), Some(""));
        assert_eq!(get("d.e").as_deref(), Some("dotted"));
        assert_eq!(get("l.1").as_deref(), Some("two"));
        assert_eq!(get("missing"), None);
    }

    #[test]
    fn tags_marshal_as_go_does() {
        let tags = BTreeMap::from([("b", "<&>"), ("a", "1")]);
        assert_eq!(go_json_map(&tags), r#"{"a":"1","b":"\u003c\u0026\u003e"}"#);
    }

    #[test]
    fn error_codes_come_from_header_json_or_xml() {
        assert_eq!(
            error_code(None, br#"{"__type":"com.amazon#ResourceNotFoundException","message":"m"}"#)
                .as_deref(),
            Some("ResourceNotFoundException")
        );
        assert_eq!(
            error_code(None, b"<ErrorResponse><Error><Code>SignatureDoesNotMatch</Code></Error></ErrorResponse>")
                .as_deref(),
            Some("SignatureDoesNotMatch")
        );
        assert_eq!(
            error_code(Some("ThrottlingException:http://x"), b"").as_deref(),
            Some("ThrottlingException")
        );
    }
}
