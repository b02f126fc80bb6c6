//! Vault and OpenBao KV stores, read over HTTP before planning: every distinct secret is
//! read once per reconcile however many targets use it, with bounded concurrency,
//! retries on 429/5xx, and a fresh AppRole login when a token expires mid-run.

use std::any::Any;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::StreamExt as _;
use futures::future::BoxFuture;
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::RwLock;

use super::common::{check_server_url, key_reads, outside_mount_message, parse_config, path_outside_mount,
    fail_all, json_path, json_result_bytes, prefetched, remote_value_bytes, sorted_json,
};
use super::kubernetes_identity::CaProvider;
use super::provider::{FetchContext, FetchStats, Fetched, Provider};
use super::tls::{CaSource, client_for, parse_ca};
use crate::core::model::{
    ExternalSecretSpec, FindRef, RemoteRef, SecretKeySelector, ServiceAccountSelector,
};
use crate::core::plan::convert_keys;
use crate::core::provider::{
    FetchError, SecretMap, SecretsClient, StoreInfo, StoreProvider, StoreReads,
};
use crate::core::secret_bytes::SecretBytes;
use crate::core::world::{RemoteError, World};

/// Reads in flight at once, per store.
const CONCURRENCY: usize = 16;
/// Attempts per request: the first and two retries.
const ATTEMPTS: u32 = 3;
/// Per-request timeout.
const TIMEOUT: Duration = Duration::from_secs(10);

/// A secret path and an optional version.
type SecretVersion = (String, Option<String>);

/// `spec.provider.vault`.
pub struct Vault;

impl Provider for Vault {
    fn name(&self) -> &'static str {
        "vault"
    }

    fn implemented(&self) -> &'static [&'static str] {
        IMPLEMENTED
    }

    fn parse(&self, config: &Value, store: &StoreInfo<'_>) -> Result<Arc<dyn StoreProvider>, String> {
        let config: VaultProvider = parse_config(config)?;
        let ca = parse_ca(
            config.ca_bundle.as_deref(),
            config.ca_provider.as_ref(),
            store,
        )?;
        let client_tls = client_tls(&config.tls, store)?;
        check_server_url(&config.server)?;
        for (name, value) in &config.headers {
            if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
                return Err(format!("headers: {name:?} is not an HTTP header name"));
            }
            if reqwest::header::HeaderValue::from_str(value).is_err() {
                return Err(format!(
                    "headers[{name}]: the value is not a valid HTTP header value"
                ));
            }
        }
        let auth = &config.auth;
        let references = [
            ("auth.tokenSecretRef", auth.token_secret_ref.as_ref()),
            (
                "auth.appRole.secretRef",
                auth.app_role.as_ref().and_then(|a| a.secret_ref.as_ref()),
            ),
            (
                "auth.appRole.roleRef",
                auth.app_role.as_ref().and_then(|a| a.role_ref.as_ref()),
            ),
            (
                "auth.kubernetes.secretRef",
                auth.kubernetes.as_ref().and_then(|k| k.secret_ref.as_ref()),
            ),
        ];
        for (field, reference) in references {
            if let Some(reference) = reference {
                store.check_reference(field, reference.namespace.as_deref())?;
            }
        }
        if let Some(account) = auth
            .kubernetes
            .as_ref()
            .and_then(|k| k.service_account_ref.as_ref())
        {
            store.check_reference(
                "auth.kubernetes.serviceAccountRef",
                account.namespace.as_deref(),
            )?;
        }
        let credentials_namespace = match store.kind {
            crate::core::load::StoreKind::SecretStore => store.namespace.map(str::to_owned),
            crate::core::load::StoreKind::ClusterSecretStore => {
                let auth = &config.auth;
                let selector = auth
                    .token_secret_ref
                    .as_ref()
                    .or(auth.app_role.as_ref().and_then(|a| a.secret_ref.as_ref()));
                selector.and_then(|s| s.namespace.clone())
            }
        }
        .unwrap_or_default();
        let mut world_namespaces = credential_namespaces(store, &config);
        world_namespaces.extend(ca.as_ref().and_then(CaSource::world_namespace));
        world_namespaces.extend(client_tls.iter().flat_map(|(c, k)| [c.0.clone(), k.0.clone()]));
        Ok(Arc::new(VaultStore {
            store: store.display.to_owned(),
            world_namespaces,
            config,
            ca,
            client_tls,
            credentials_namespace,
        }))
    }

    fn prefetch<'a>(
        &'a self,
        wanted: &'a StoreReads,
        world: &'a World,
        context: &'a FetchContext,
        fetched: &'a mut Fetched,
    ) -> BoxFuture<'a, FetchStats> {
        Box::pin(async move {
            match wanted.store.as_any().downcast_ref::<VaultStore>() {
                Some(store) => prefetch(store, wanted, world, context, fetched).await,
                None => FetchStats::default(),
            }
        })
    }
}

/// Where the store's credential Secrets (token, AppRole IDs) are: the world must hold them.
fn credential_namespaces(store: &StoreInfo<'_>, config: &VaultProvider) -> BTreeSet<String> {
    let auth = &config.auth;
    let selectors = [
        auth.token_secret_ref.as_ref(),
        auth.app_role.as_ref().and_then(|a| a.secret_ref.as_ref()),
        auth.app_role.as_ref().and_then(|a| a.role_ref.as_ref()),
    ];
    selectors
        .into_iter()
        .flatten()
        .filter_map(|selector| store.reference_namespace(selector.namespace.as_deref()))
        .collect()
}

/// A Vault store, parsed.
#[derive(Debug)]
pub struct VaultStore {
    /// `Kind/namespace/name`: the key of its prefetched values.
    store: String,
    config: VaultProvider,
    /// `caBundle` or `caProvider`: the only roots trusted when set (ESO's `RootCAs`).
    ca: Option<CaSource>,
    /// `tls.certSecretRef` and `tls.keySecretRef`, resolved: the client certificate.
    client_tls: Option<(SecretAt, SecretAt)>,
    /// Namespace of the Secrets holding its credentials, when a reference names none.
    credentials_namespace: String,
    world_namespaces: BTreeSet<String>,
}

impl StoreProvider for VaultStore {
    fn provider_name(&self) -> &'static str {
        "vault"
    }

    fn share_key(&self, _: &str) -> String {
        format!("vault:{}", self.store)
    }

    fn client<'w>(&'w self, world: &'w World, _: &str) -> Box<dyn SecretsClient + 'w> {
        Box::new(VaultClient::new(world, &self.store))
    }

    fn remote_key(&self, _: &str) -> Option<String> {
        Some(self.store.clone())
    }

    fn remote_reads(&self, _: &str, spec: &ExternalSecretSpec, reads: &mut StoreReads) {
        key_reads(spec, reads, |reference| reference.key.clone());
    }

    fn world_namespaces(&self) -> BTreeSet<String> {
        self.world_namespaces.clone()
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// Fetches every read and find of one store into `fetched`.
async fn prefetch(
    vault: &VaultStore,
    wanted: &StoreReads,
    world: &World,
    context: &FetchContext,
    fetched: &mut Fetched,
) -> FetchStats {
    let store = &vault.store;
    let cluster = context.client();
    let counters = Counters::default();
    let http = match http_client(vault, world, context).await {
        Ok(http) => http,
        Err(message) => {
            fail_all(fetched, store, wanted, &message);
            return FetchStats::default();
        }
    };
    let session = match Session::open(&http, vault, world, cluster, &counters).await {
        Ok(session) => session,
        Err(message) => {
            fail_all(fetched, store, wanted, &message);
            return counters.stats();
        }
    };
    let mut reads: BTreeSet<(String, Option<String>)> = wanted.reads.clone();
    for pattern in &wanted.finds {
        let found = session.find(pattern).await;
        if let Ok(paths) = &found {
            reads.extend(paths.iter().map(|p| (p.clone(), None)));
        }
        fetched
            .remote_finds
            .insert((store.clone(), pattern.clone()), found);
    }
    let results: Vec<(SecretVersion, Result<SecretBytes, RemoteError>)> =
        futures::stream::iter(reads)
            .map(|(path, version)| {
                let session = &session;
                async move {
                    let result = session.read(&path, version.as_deref()).await;
                    ((path, version), result)
                }
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
    for ((path, version), result) in results {
        fetched
            .remote_reads
            .insert((store.clone(), path, version), result);
    }
    counters.stats()
}

/// A Secret key: namespace, name, key.
type SecretAt = (String, String, String);

/// `tls.certSecretRef` and `tls.keySecretRef` as ESO's `Validate` and
/// `configureClientTLS` take them: both or neither; an empty key is `tls.crt` /
/// `tls.key`; a SecretStore's own namespace, a ClusterSecretStore's named one (ESO reads
/// one without a namespace in each ExternalSecret's namespace: refused, as the other
/// referent references of courier's Vault stores).
fn client_tls(
    tls: &VaultClientTls,
    store: &StoreInfo<'_>,
) -> Result<Option<(SecretAt, SecretAt)>, String> {
    let (cert, key) = match (&tls.cert_secret_ref, &tls.key_secret_ref) {
        (None, None) => return Ok(None),
        (Some(cert), Some(key)) => (cert, key),
        _ => {
            return Err("tls: when provided, both tls.certSecretRef and tls.keySecretRef should be provided".into());
        }
    };
    let resolve = |field: &str, selector: &SecretKeySelector, default_key: &str| {
        store.check_reference(field, selector.namespace.as_deref())?;
        let namespace = store
            .reference_namespace(selector.namespace.as_deref())
            .ok_or_else(|| format!(
                "{field}.namespace: a ClusterSecretStore's reference without a namespace (ESO's referent auth, read in each ExternalSecret's namespace) is not supported by courier yet for vault's tls\nhint: name the namespace that holds the Secret"
            ))?;
        let key = if selector.key.is_empty() { default_key } else { &selector.key };
        Ok::<_, String>((namespace, selector.name.clone(), key.to_owned()))
    };
    Ok(Some((
        resolve("tls.certSecretRef", cert, "tls.crt")?,
        resolve("tls.keySecretRef", key, "tls.key")?,
    )))
}

/// The store's HTTP client: with `caBundle` or `caProvider`, its certificates are the
/// only roots; with `tls`, it presents that client certificate (ESO's `newConfig`).
async fn http_client(
    vault: &VaultStore,
    world: &World,
    context: &FetchContext,
) -> Result<reqwest::Client, String> {
    let mut builder = reqwest::Client::builder().timeout(TIMEOUT);
    if let Some((cert, key)) = &vault.client_tls {
        let read = |field: &str, (namespace, name, key): &SecretAt| {
            let secret = world
                .secret(namespace, name)
                .ok_or_else(|| format!("{field}: Secret {namespace}/{name} not found"))?;
            secret.data.get(key).cloned().ok_or_else(|| {
                format!("{field}: key {key:?} not found in Secret {namespace}/{name}")
            })
        };
        let mut pem = read("tls.certSecretRef", cert)?.expose().to_vec();
        pem.push(b'\n');
        pem.extend_from_slice(read("tls.keySecretRef", key)?.expose());
        let identity = reqwest::Identity::from_pem(&pem).map_err(|_| {
            format!(
                "tls: cannot use the client certificate (Secret {}/{} key {:?}) with its key (Secret {}/{} key {:?}): not a PEM certificate and private key",
                cert.0, cert.1, cert.2, key.0, key.1, key.2
            )
        })?;
        builder = builder.identity(identity);
    }
    client_for(builder, vault.ca.as_ref(), "Vault", world, context).await
}

#[derive(Default)]
struct Counters {
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

/// How a session gets (and gets again) its token.
enum Login {
    Token,
    AppRole {
        path: String,
        role_id: SecretBytes,
        secret_id: SecretBytes,
    },
    Kubernetes {
        path: String,
        role: String,
        jwt: SecretBytes,
    },
}

struct Session<'a> {
    http: &'a reqwest::Client,
    store: &'a str,
    config: &'a VaultProvider,
    token: RwLock<Arc<SecretBytes>>,
    login: Login,
    counters: &'a Counters,
}

enum Failure {
    /// The token was refused; a fresh login may help.
    Forbidden(String),
    Other(RemoteError),
}

impl<'a> Session<'a> {
    async fn open(
        http: &'a reqwest::Client,
        vault: &'a VaultStore,
        world: &World,
        cluster: Option<&kube::Client>,
        counters: &'a Counters,
    ) -> Result<Session<'a>, String> {
        let (store, config) = (vault.store.as_str(), &vault.config);
        if config.server.is_empty() {
            return Err("spec.provider.vault.server is empty".into());
        }
        if config
            .version
            .as_deref()
            .is_some_and(|v| v != "v2" && v != "v1")
        {
            return Err(format!(
                "spec.provider.vault.version must be v1 or v2, not {:?}",
                config.version.as_deref().unwrap_or_default()
            ));
        }
        let credential =
            |selector: &SecretKeySelector, field: &str| -> Result<SecretBytes, String> {
                let namespace = selector
                    .namespace
                    .clone()
                    .unwrap_or_else(|| vault.credentials_namespace.clone());
                let secret = world.secret(&namespace, &selector.name).ok_or_else(|| {
                    format!("{field}: Secret {namespace}/{} not found", selector.name)
                })?;
                secret.data.get(&selector.key).cloned().ok_or_else(|| {
                    format!(
                        "{field}: key {:?} not found in Secret {namespace}/{}",
                        selector.key, selector.name
                    )
                })
            };
        let auth = &config.auth;
        let (token, login) = if let Some(selector) = &auth.token_secret_ref {
            (credential(selector, "auth.tokenSecretRef")?, Login::Token)
        } else if let Some(app_role) = &auth.app_role {
            let role_id = match (&app_role.role_id, &app_role.role_ref) {
                (Some(inline), _) => SecretBytes::from(inline.as_str()),
                (None, Some(selector)) => credential(selector, "auth.appRole.roleRef")?,
                (None, None) => return Err("auth.appRole needs roleId or roleRef".into()),
            };
            let secret_id = credential(
                app_role
                    .secret_ref
                    .as_ref()
                    .ok_or("auth.appRole.secretRef is required")?,
                "auth.appRole.secretRef",
            )?;
            let login = Login::AppRole {
                path: app_role.path.clone().unwrap_or_else(|| "approle".into()),
                role_id,
                secret_id,
            };
            (SecretBytes::default(), login)
        } else if let Some(kubernetes) = &auth.kubernetes {
            let jwt = if let Some(selector) = &kubernetes.secret_ref {
                credential(selector, "auth.kubernetes.secretRef")?
            } else if let Some(account) = &kubernetes.service_account_ref {
                let client = cluster.ok_or("auth.kubernetes.serviceAccountRef needs the live cluster (apply, run, diff, or render --world cluster)")?;
                let namespace = account
                    .namespace
                    .clone()
                    .unwrap_or_else(|| vault.credentials_namespace.clone());
                service_account_token(client, &namespace, account).await?
            } else {
                let path = "/var/run/secrets/kubernetes.io/serviceaccount/token";
                SecretBytes::new(std::fs::read(path).map_err(|_| {
                    "auth.kubernetes has neither serviceAccountRef nor secretRef, and courier runs outside a pod".to_owned()
                })?)
            };
            if kubernetes.role.is_empty() {
                return Err("auth.kubernetes.role is empty".into());
            }
            let login = Login::Kubernetes {
                path: kubernetes
                    .mount_path
                    .clone()
                    .unwrap_or_else(|| "kubernetes".into()),
                role: kubernetes.role.clone(),
                jwt,
            };
            (SecretBytes::default(), login)
        } else {
            return Err("spec.provider.vault.auth needs tokenSecretRef or appRole".into());
        };
        let session = Session {
            http,
            store,
            config,
            token: RwLock::new(Arc::new(token)),
            login,
            counters,
        };
        if !matches!(session.login, Login::Token) {
            session.log_in().await?;
        }
        Ok(session)
    }

    fn url(&self, path: &str) -> String {
        format!(
            "{}/v1/{}",
            self.config.server.trim_end_matches('/'),
            path.trim_start_matches('/')
        )
    }

    /// The store's `headers`, then its `namespace` (`X-Vault-Namespace`).
    fn with_headers(&self, mut request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        for (name, value) in &self.config.headers {
            request = request.header(name, value);
        }
        if let Some(namespace) = &self.config.namespace {
            request = request.header("X-Vault-Namespace", namespace);
        }
        request
    }

    fn mount(&self) -> &str {
        self.config
            .path
            .as_deref()
            .unwrap_or("secret")
            .trim_matches('/')
    }

    fn kv2(&self) -> bool {
        self.config.version.as_deref() != Some("v1")
    }

    async fn log_in(&self) -> Result<(), String> {
        let (path, body, method) = match &self.login {
            Login::Token => return Ok(()),
            Login::AppRole {
                path,
                role_id,
                secret_id,
            } => {
                let body = serde_json::json!({
                    "role_id": String::from_utf8_lossy(role_id.expose()),
                    "secret_id": String::from_utf8_lossy(secret_id.expose()),
                });
                (path, body, "AppRole")
            }
            Login::Kubernetes { path, role, jwt } => {
                let body =
                    serde_json::json!({"role": role, "jwt": String::from_utf8_lossy(jwt.expose())});
                (path, body, "Kubernetes")
            }
        };
        self.counters.logins.fetch_add(1, Ordering::Relaxed);
        let mut request = self
            .http
            .post(self.url(&format!("auth/{}/login", path.trim_matches('/'))))
            .json(&body);
        request = self.with_headers(request);
        let response = request
            .send()
            .await
            .map_err(|e| format!("{method} login: {}", transport(&e)))?;
        let status = response.status();
        if !status.is_success() {
            return Err(format!(
                "{method} login at auth/{path}: {} {}",
                status.as_u16(),
                vault_errors(response).await
            ));
        }
        let answer: Value = response
            .json()
            .await
            .map_err(|_| format!("{method} login: the answer is not JSON"))?;
        let token = answer
            .pointer("/auth/client_token")
            .and_then(Value::as_str)
            .ok_or_else(|| format!("{method} login: no auth.client_token in the answer"))?;
        *self.token.write().await = Arc::new(SecretBytes::from(token));
        Ok(())
    }

    /// GET with the token, retrying what passes by itself; one fresh login on a 403.
    async fn get(&self, path: &str, query: &[(&str, &str)]) -> Result<Value, RemoteError> {
        if let Some(why) = path_outside_mount(path) {
            return Err(RemoteError {
                message: outside_mount_message(self.store, path, why),
                not_found: false,
            });
        }
        let mut relogged = false;
        loop {
            match self.get_once(path, query).await {
                Err(Failure::Forbidden(message))
                    if !relogged && !matches!(self.login, Login::Token) =>
                {
                    relogged = true;
                    tracing::info!(store = self.store, "token refused; logging in again");
                    self.log_in().await.map_err(|e| RemoteError {
                        message: format!("{}: {e}", self.store),
                        not_found: false,
                    })?;
                    let _ = message;
                }
                Err(Failure::Forbidden(message)) => {
                    return Err(RemoteError {
                        message,
                        not_found: false,
                    });
                }
                Err(Failure::Other(error)) => return Err(error),
                Ok(value) => return Ok(value),
            }
        }
    }

    async fn get_once(&self, path: &str, query: &[(&str, &str)]) -> Result<Value, Failure> {
        let what = format!("{}: GET {path}", self.store);
        let mut attempt = 1;
        loop {
            let token = self.token.read().await.clone();
            let mut request = self.http.get(self.url(path)).query(query);
            request = request.header(
                "X-Vault-Token",
                String::from_utf8_lossy(token.expose()).into_owned(),
            );
            request = self.with_headers(request);
            let retry = match request.send().await {
                Ok(response) => {
                    let status = response.status().as_u16();
                    match status {
                        200 => {
                            return response.json().await.map_err(|_| {
                                Failure::Other(RemoteError {
                                    message: format!("{what}: the answer is not JSON"),
                                    not_found: false,
                                })
                            });
                        }
                        404 => {
                            return Err(Failure::Other(RemoteError {
                                message: format!("{what}: not found (404)"),
                                not_found: true,
                            }));
                        }
                        403 => {
                            return Err(Failure::Forbidden(format!(
                                "{what}: permission denied (403) {}",
                                vault_errors(response).await
                            )));
                        }
                        429 | 500 | 502 | 503 | 504 if attempt < ATTEMPTS => true,
                        _ => {
                            let errors = vault_errors(response).await;
                            return Err(Failure::Other(RemoteError {
                                message: format!("{what}: {status} {errors}"),
                                not_found: false,
                            }));
                        }
                    }
                }
                Err(e) if attempt < ATTEMPTS && (e.is_connect() || e.is_timeout()) => true,
                Err(e) => {
                    return Err(Failure::Other(RemoteError {
                        message: format!("{what}: {}", transport(&e)),
                        not_found: false,
                    }));
                }
            };
            debug_assert!(retry);
            tokio::time::sleep(Duration::from_millis(200 * 2u64.pow(attempt - 1))).await;
            attempt += 1;
        }
    }

    async fn read(&self, path: &str, version: Option<&str>) -> Result<SecretBytes, RemoteError> {
        self.counters.reads.fetch_add(1, Ordering::Relaxed);
        let mount = self.mount();
        let answer = if self.kv2() {
            let query: Vec<(&str, &str)> = version.map(|v| ("version", v)).into_iter().collect();
            self.get(
                &format!("{mount}/data/{}", path.trim_start_matches('/')),
                &query,
            )
            .await?
        } else {
            self.get(&format!("{mount}/{}", path.trim_start_matches('/')), &[])
                .await?
        };
        let data = if self.kv2() {
            answer.pointer("/data/data")
        } else {
            answer.pointer("/data")
        };
        match data {
            Some(Value::Object(map)) => Ok(SecretBytes::new(
                serde_json::to_vec(map).unwrap_or_default(),
            )),
            // KV v2 answers a deleted version with null data.
            _ => Err(RemoteError {
                message: format!("{}: {mount}/{path} has no data (deleted?)", self.store),
                not_found: true,
            }),
        }
    }

    /// Every secret path under the mount whose path matches `pattern` (unanchored).
    async fn find(&self, pattern: &str) -> Result<Vec<String>, RemoteError> {
        let regex = regex::Regex::new(pattern).map_err(|e| RemoteError {
            message: format!("{}: find.name.regexp: {e}", self.store),
            not_found: false,
        })?;
        let mount = self.mount().to_owned();
        let mut found = Vec::new();
        let mut pending = vec![String::new()];
        while let Some(prefix) = pending.pop() {
            self.counters.lists.fetch_add(1, Ordering::Relaxed);
            let listing = if self.kv2() {
                format!("{mount}/metadata/{prefix}")
            } else {
                format!("{mount}/{prefix}")
            };
            let keys = match self.get(&listing, &[("list", "true")]).await {
                Ok(answer) => answer
                    .pointer("/data/keys")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default(),
                Err(error) if error.not_found => Vec::new(),
                Err(error) => return Err(error),
            };
            for key in keys.iter().filter_map(Value::as_str) {
                let path = format!("{prefix}{key}");
                if key.ends_with('/') {
                    pending.push(path);
                } else if regex.is_match(&path) {
                    found.push(path);
                }
            }
        }
        found.sort();
        Ok(found)
    }
}

/// A fresh token for a ServiceAccount (TokenRequest), short-lived, for one login.
async fn service_account_token(
    client: &kube::Client,
    namespace: &str,
    account: &ServiceAccountSelector,
) -> Result<SecretBytes, String> {
    use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
    use k8s_openapi::api::core::v1::ServiceAccount;
    let api = kube::Api::<ServiceAccount>::namespaced(client.clone(), namespace);
    let request = TokenRequest {
        spec: Some(TokenRequestSpec {
            audiences: (!account.audiences.is_empty()).then(|| account.audiences.clone()),
            expiration_seconds: Some(600),
            ..Default::default()
        }),
        ..Default::default()
    };
    let answer = api
        .create_token_request(&account.name, &kube::api::PostParams::default(), &request)
        .await
        .map_err(|e| format!("auth.kubernetes.serviceAccountRef: cannot get a token for ServiceAccount {namespace}/{}: {e}", account.name))?;
    let token = answer.status.and_then(|s| s.token).unwrap_or_default();
    Ok(SecretBytes::from(token))
}

/// Vault's `errors` list; its messages name paths and policies, not values.
pub(super) async fn vault_errors(response: reqwest::Response) -> String {
    let body: Value = response.json().await.unwrap_or(Value::Null);
    let errors: Vec<&str> = body["errors"]
        .as_array()
        .map(|e| e.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    if errors.is_empty() {
        String::new()
    } else {
        format!("({})", errors.join("; "))
    }
}

pub(super) fn transport(error: &reqwest::Error) -> String {
    super::tls::transport_reason(error)
}

/// The fields of `spec.provider.vault` courier reads ([`Provider::implemented`]), and
/// where: `server` (`Session::url`), `path` (`Session::mount`), `version`
/// (`Session::kv2`), `namespace` and `headers` (`Session::with_headers`, on logins and
/// reads), the three auth methods in `Session::open`
/// (`auth.kubernetes.serviceAccountRef.audiences` in `service_account_token`).
/// `caBundle` and `caProvider` (`parse`, [`super::tls`]: the only roots trusted when set),
/// `tls` (the client certificate, `client_tls`, `http_client`).
/// Everything else ESO defines is refused: `readYourWrites`,
/// `forwardInconsistent` (ESO sends `X-Vault-Index` /
/// `X-Vault-Inconsistent` for them), `checkAndSet` (PushSecret), `auth.namespace` and the
/// other auth methods (`jwt`, `ldap`, `cert`, `iam`, `gcp`, `userPass`).
pub const IMPLEMENTED: &[&str] = &[
    "server",
    "path",
    "version",
    "namespace",
    "headers",
    "caBundle",
    "caProvider",
    "tls.certSecretRef",
    "tls.keySecretRef",
    "auth.tokenSecretRef",
    "auth.appRole.path",
    "auth.appRole.roleId",
    "auth.appRole.roleRef",
    "auth.appRole.secretRef",
    "auth.kubernetes.mountPath",
    "auth.kubernetes.role",
    "auth.kubernetes.secretRef",
    "auth.kubernetes.serviceAccountRef",
];

/// `spec.provider.vault` (HashiCorp Vault and OpenBao), KV secrets engine.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub struct VaultProvider {
    /// Base address, e.g. `https://vault.example.com:8200`.
    #[serde(default)]
    pub server: String,
    /// Mount path of the KV engine; `secret` when absent.
    #[serde(default)]
    pub path: Option<String>,
    /// KV engine version: `v2` (default) or `v1`.
    #[serde(default)]
    pub version: Option<String>,
    /// Vault Enterprise / OpenBao namespace (`X-Vault-Namespace`).
    #[serde(default)]
    pub namespace: Option<String>,
    /// How to log in.
    #[serde(default)]
    pub auth: VaultAuth,
    /// Sent with every request, logins too, as ESO's `client.AddHeader`.
    #[serde(default, deserialize_with = "crate::core::model::null_default")]
    pub headers: std::collections::BTreeMap<String, String>,
    /// PEM, base64: the roots to trust instead of the built-in ones.
    #[serde(default)]
    pub ca_bundle: Option<String>,
    /// The CA from a Secret or ConfigMap key.
    #[serde(default)]
    pub ca_provider: Option<CaProvider>,
    /// A client certificate for mutual TLS.
    #[serde(default)]
    pub tls: VaultClientTls,
}

/// `vault.tls`: the client certificate and its key, both or neither.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub struct VaultClientTls {
    /// The PEM certificate (key `tls.crt` when empty).
    #[serde(default)]
    pub cert_secret_ref: Option<SecretKeySelector>,
    /// The PEM private key (key `tls.key` when empty).
    #[serde(default)]
    pub key_secret_ref: Option<SecretKeySelector>,
}

/// `vault.auth`: one of token, AppRole or Kubernetes.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub struct VaultAuth {
    /// A token kept in a Secret.
    #[serde(default)]
    pub token_secret_ref: Option<SecretKeySelector>,
    /// AppRole login.
    #[serde(default)]
    pub app_role: Option<VaultAppRole>,
    /// Kubernetes ServiceAccount login.
    #[serde(default)]
    pub kubernetes: Option<VaultKubernetesAuth>,
}

/// `vault.auth.kubernetes`: log in with a ServiceAccount JWT.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub struct VaultKubernetesAuth {
    /// Mount path of the Kubernetes auth method; `kubernetes` when absent.
    #[serde(default)]
    pub mount_path: Option<String>,
    /// The Vault role to log in as.
    #[serde(default)]
    pub role: String,
    /// A ServiceAccount whose token courier requests (TokenRequest API, live mode).
    #[serde(default)]
    pub service_account_ref: Option<ServiceAccountSelector>,
    /// A JWT kept in a Secret.
    #[serde(default)]
    pub secret_ref: Option<SecretKeySelector>,
}

/// `vault.auth.appRole`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub struct VaultAppRole {
    /// Mount path of the AppRole method; `approle` when absent.
    #[serde(default)]
    pub path: Option<String>,
    /// The role ID, inline.
    #[serde(default)]
    pub role_id: Option<String>,
    /// The role ID, from a Secret.
    #[serde(default)]
    pub role_ref: Option<SecretKeySelector>,
    /// The secret ID, from a Secret.
    #[serde(default)]
    pub secret_ref: Option<SecretKeySelector>,
}


/// ESO's `Validate` of a Vault (or OpenBao) store (providers/v1/vault/validate.go), with
/// the store's own identity: log in as the store says (ESO: "unable to create client" when
/// that fails), then look the token up (`auth/token/lookup-self`; ESO: "invalid vault
/// credentials"). A ClusterSecretStore whose credentials are in each ExternalSecret's
/// namespace (a reference without a namespace) cannot be checked: ESO counts it unknown.
/// `None` for a store of another provider.
pub async fn validate_store(
    store: &Arc<dyn StoreProvider>,
    world: &World,
    context: &FetchContext,
) -> Option<crate::providers::kubernetes_validate::Validation> {
    use crate::providers::kubernetes_validate::Validation;
    let vault = store.as_any().downcast_ref::<VaultStore>()?;
    let auth = &vault.config.auth;
    let referent = vault.store.starts_with("ClusterSecretStore/")
        && (auth
            .token_secret_ref
            .as_ref()
            .is_some_and(|r| r.namespace.is_none())
            || auth
                .app_role
                .as_ref()
                .and_then(|a| a.secret_ref.as_ref())
                .is_some_and(|r| r.namespace.is_none())
            || auth.kubernetes.as_ref().is_some_and(|k| {
                k.secret_ref.as_ref().is_some_and(|r| r.namespace.is_none())
                    || k.service_account_ref
                        .as_ref()
                        .is_some_and(|r| r.namespace.is_none())
            }));
    if referent {
        return Some(Validation::Unknown(format!(
            "{}: its credentials are read in each ExternalSecret's namespace",
            vault.store
        )));
    }
    let http = match http_client(vault, world, context).await {
        Ok(http) => http,
        Err(message) => {
            return Some(Validation::NoClient(format!("{}: {message}", vault.store)));
        }
    };
    let counters = Counters::default();
    let session = match Session::open(&http, vault, world, context.client(), &counters).await {
        Ok(session) => session,
        Err(message) => {
            return Some(Validation::NoClient(format!("{}: {message}", vault.store)));
        }
    };
    Some(match session.get("auth/token/lookup-self", &[]).await {
        Ok(_) => Validation::Ready,
        Err(e) => Validation::Invalid(format!(
            "{}: invalid vault credentials: {}",
            vault.store, e.message
        )),
    })
}

/// A Vault store answered from the values prefetched into the world.
pub struct VaultClient<'w> {
    world: &'w World,
    store: &'w str,
}

impl<'w> VaultClient<'w> {
    /// Reads `store`'s prefetched values.
    pub fn new(world: &'w World, store: &'w str) -> Self {
        Self { world, store }
    }

    fn data(
        &self,
        key: &str,
        version: Option<&String>,
    ) -> Result<serde_json::Map<String, Value>, FetchError> {
        let bytes = prefetched(self.world, self.store, key, key, version)?;
        match serde_json::from_slice(bytes.expose()) {
            Ok(Value::Object(map)) => Ok(map),
            _ => Err(FetchError::new(format!(
                "{}: {key} is not a key/value secret",
                self.store
            ))),
        }
    }
}

impl SecretsClient for VaultClient<'_> {
    fn get_secret(&self, remote_ref: &RemoteRef) -> Result<SecretBytes, FetchError> {
        let data = self.data(&remote_ref.key, remote_ref.version.as_ref())?;
        match remote_ref.property.as_deref().filter(|p| !p.is_empty()) {
            None => Ok(SecretBytes::new(sorted_json(&data))),
            Some(property) => {
                if let Some(value) = data.get(property) {
                    return Ok(SecretBytes::new(remote_value_bytes(value)));
                }
                json_path(&serde_json::to_vec(&data).unwrap_or_default(), property)
                    .map(|value| SecretBytes::new(json_result_bytes(value)))
                    .ok_or_else(|| {
                        FetchError::new(format!(
                            "{}: property {property:?} does not exist in {}",
                            self.store, remote_ref.key
                        ))
                    })
            }
        }
    }

    fn get_secret_map(&self, remote_ref: &RemoteRef) -> Result<SecretMap, FetchError> {
        let data = self.data(&remote_ref.key, remote_ref.version.as_ref())?;
        let object = match remote_ref.property.as_deref().filter(|p| !p.is_empty()) {
            None => data,
            Some(property) => {
                match json_path(&serde_json::to_vec(&data).unwrap_or_default(), property) {
                    Some(Value::Object(object)) => object,
                    _ => {
                        return Err(FetchError::new(format!(
                            "{}: property {property:?} of {} is not a JSON object",
                            self.store, remote_ref.key
                        )));
                    }
                }
            }
        };
        Ok(object
            .iter()
            .map(|(k, v)| (k.clone(), SecretBytes::new(remote_value_bytes(v))))
            .collect())
    }

    fn get_all_secrets(&self, find: &FindRef) -> Result<SecretMap, FetchError> {
        if find.tags.is_some() {
            return Err(FetchError::new(format!(
                "{}: find.tags is not supported for Vault stores; use find.name",
                self.store
            )));
        }
        let Some(name) = &find.name else {
            return Err(FetchError::new("find needs `name.regexp`"));
        };
        let paths = match self
            .world
            .remote_finds
            .get(&(self.store.to_owned(), name.regexp.clone()))
        {
            None => {
                return Err(FetchError::new(format!(
                    "{}: find {:?} was not fetched",
                    self.store, name.regexp
                )));
            }
            Some(Err(error)) => return Err(FetchError::new(error.message.clone())),
            Some(Ok(paths)) => paths,
        };
        let mut found = SecretMap::new();
        for path in paths {
            found.insert(
                path.clone(),
                SecretBytes::new(sorted_json(&self.data(path, None)?)),
            );
        }
        convert_keys(find.conversion_strategy.unwrap_or_default(), found)
    }
}

