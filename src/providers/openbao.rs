//! `spec.provider.openBao`: ESO v2.9's own OpenBao provider (providers/v1/openbao), which is
//! not its Vault provider. What differs from `vault`, as ESO's code does it:
//!
//! - the mount is `path`, `kv` when absent (Vault's default is `secret`);
//! - `property` is a flat key of the secret's data (no JSON path); a key that is not there
//!   is an error (`cannot find secret data for key`);
//! - a whole secret (no property) is Go's `json.Marshal` of the data as OpenBao's client
//!   decoded it: sorted keys, HTML escaping on (`<` is `\u003c`), numbers as written (the
//!   client decodes with `UseNumber`); `extract` decodes that JSON again without
//!   `UseNumber`, so there numbers are float64s (`1e3` is `1000`);
//! - every failure is an error, a missing secret too: nothing here is "source missing",
//!   so `deletionPolicy: Delete` never empties a target from an OpenBao store;
//! - `metadataPolicy` is ignored (the data is read);
//! - `find` lists `find.path` (not recursively), matches `name.regexp` against the listed
//!   names and reads each name from the mount's root; `find.tags` is an error;
//! - auth: `tokenSecretRef`, `appRole` or `userPass` (logins under `auth.namespace` when
//!   set), or none at all (no token sent).
//!
//! Every distinct secret is read once per reconcile however many targets use it, 16 at a
//! time. `caBundle` or `caProvider` replaces the built-in roots, as ESO's `RootCAs`
//! ([`super::tls`]). A ClusterSecretStore's references without a namespace (ESO's
//! referent auth) are refused by name: courier does not implement them for OpenBao yet.

use std::any::Any;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::StreamExt as _;
use futures::future::BoxFuture;
use serde::Deserialize;
use serde_json::Value;
use serde_json::value::RawValue;

use super::common::{
    check_server_url, fail_all, outside_mount_message, parse_config, path_outside_mount, prefetched,
};
use super::kubernetes_identity::CaProvider;
use super::provider::{FetchContext, FetchStats, Fetched, Provider};
use super::tls::{CaSource, client_for, parse_ca};
use super::vault::{transport, vault_errors};
use crate::core::gojson::{go_format_float, go_json_marshal, go_json_unmarshal};
use crate::core::load::StoreKind;
use crate::core::model::{ExternalSecretSpec, FindRef, RemoteRef, SecretKeySelector};
use crate::core::plan::convert_keys;
use crate::core::provider::{
    FetchError, SecretMap, SecretsClient, StoreInfo, StoreProvider, StoreReads,
};
use crate::core::secret_bytes::SecretBytes;
use crate::core::world::{RemoteError, World};

/// Reads in flight at once, per store.
const CONCURRENCY: usize = 16;
/// Attempts per request: the first and two retries (429, 5xx, no connection).
const ATTEMPTS: u32 = 3;
/// Per-request timeout.
const TIMEOUT: Duration = Duration::from_secs(10);

/// `spec.provider.openBao`.
pub struct OpenBao;

/// The fields of `spec.provider.openBao` courier reads ([`Provider::implemented`]), and
/// where: `server` (`url`), `path` and `version` (`mount`, `kv1`), `namespace` and
/// `auth.namespace` (`X-Vault-Namespace`, `log_in`), `caBundle` and `caProvider`
/// (`parse`, [`super::tls`]), the three auth methods (`parse`, `log_in`).
pub const IMPLEMENTED: &[&str] = &[
    "server",
    "path",
    "version",
    "namespace",
    "caBundle",
    "caProvider",
    "auth.namespace",
    "auth.tokenSecretRef",
    "auth.appRole.path",
    "auth.appRole.roleId",
    "auth.appRole.roleRef",
    "auth.appRole.secretRef",
    "auth.userPass.path",
    "auth.userPass.username",
    "auth.userPass.secretRef",
];

/// `spec.provider.openBao`, as ESO v2.9 defines it.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OpenBaoProvider {
    /// Base address, e.g. `https://bao.example.com:8200`.
    #[serde(default)]
    pub server: String,
    /// Mount path of the KV engine; `kv` when absent (ESO's OpenBao provider).
    #[serde(default)]
    pub path: Option<String>,
    /// `v2` (default) or `v1`.
    #[serde(default)]
    pub version: Option<String>,
    /// OpenBao namespace (`X-Vault-Namespace`).
    #[serde(default)]
    pub namespace: Option<String>,
    /// How to log in; none sends no token.
    #[serde(default)]
    pub auth: Option<OpenBaoAuth>,
    /// PEM, base64: the roots to trust instead of the built-in ones.
    #[serde(default)]
    pub ca_bundle: Option<String>,
    /// The CA from a Secret or ConfigMap key.
    #[serde(default)]
    pub ca_provider: Option<CaProvider>,
}

/// `openBao.auth`: exactly one of token, AppRole or userpass.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OpenBaoAuth {
    /// The namespace logins go to (else the store's).
    #[serde(default)]
    pub namespace: Option<String>,
    /// A token kept in a Secret.
    #[serde(default)]
    pub token_secret_ref: Option<SecretKeySelector>,
    /// AppRole login.
    #[serde(default)]
    pub app_role: Option<OpenBaoAppRole>,
    /// Username and password login.
    #[serde(default)]
    pub user_pass: Option<OpenBaoUserPass>,
}

/// `openBao.auth.appRole`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OpenBaoAppRole {
    /// Mount path; `approle` when absent.
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

/// `openBao.auth.userPass`.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OpenBaoUserPass {
    /// Mount path; `userpass` when absent.
    #[serde(default)]
    pub path: Option<String>,
    /// The user.
    #[serde(default)]
    pub username: String,
    /// The password, from a Secret.
    #[serde(default)]
    pub secret_ref: Option<SecretKeySelector>,
}

impl OpenBaoProvider {
    /// Every credential reference, with its field.
    fn references(&self) -> Vec<(&'static str, &SecretKeySelector)> {
        let Some(auth) = &self.auth else {
            return Vec::new();
        };
        let app_role = auth.app_role.as_ref();
        [
            ("auth.tokenSecretRef", auth.token_secret_ref.as_ref()),
            (
                "auth.appRole.secretRef",
                app_role.and_then(|a| a.secret_ref.as_ref()),
            ),
            (
                "auth.appRole.roleRef",
                app_role.and_then(|a| a.role_ref.as_ref()),
            ),
            (
                "auth.userPass.secretRef",
                auth.user_pass.as_ref().and_then(|u| u.secret_ref.as_ref()),
            ),
        ]
        .into_iter()
        .filter_map(|(field, reference)| reference.map(|r| (field, r)))
        .collect()
    }

    fn mount(&self) -> &str {
        self.path.as_deref().unwrap_or("kv").trim_matches('/')
    }

    fn kv1(&self) -> bool {
        self.version.as_deref() == Some("v1")
    }
}

impl Provider for OpenBao {
    fn name(&self) -> &'static str {
        "openBao"
    }

    fn implemented(&self) -> &'static [&'static str] {
        IMPLEMENTED
    }

    fn parse(
        &self,
        config: &Value,
        store: &StoreInfo<'_>,
    ) -> Result<Arc<dyn StoreProvider>, String> {
        let config: OpenBaoProvider = parse_config(config)?;
        let ca = parse_ca(
            config.ca_bundle.as_deref(),
            config.ca_provider.as_ref(),
            store,
        )?;
        check_server_url(&config.server)?;
        if let Some(version) = config.version.as_deref()
            && version != "v1"
            && version != "v2"
        {
            return Err(format!("version must be v1 or v2, not {version:?}"));
        }
        if let Some(auth) = &config.auth {
            let set = [
                auth.app_role.is_some(),
                auth.token_secret_ref.is_some(),
                auth.user_pass.is_some(),
            ];
            if set.iter().filter(|s| **s).count() != 1 {
                return Err(
                    "auth: exactly one of the fields in [appRole tokenSecretRef userPass] must be set".into(),
                );
            }
            if let Some(app_role) = &auth.app_role {
                if app_role.role_id.is_some() == app_role.role_ref.is_some() {
                    return Err(
                        "auth.appRole: exactly one of the fields in [roleId roleRef] must be set"
                            .into(),
                    );
                }
                if app_role.secret_ref.is_none() {
                    return Err("auth.appRole.secretRef is required".into());
                }
            }
            if let Some(user_pass) = &auth.user_pass
                && user_pass.secret_ref.is_none()
            {
                return Err("auth.userPass.secretRef is required".into());
            }
        }
        for (field, reference) in config.references() {
            store.check_reference(field, reference.namespace.as_deref())?;
            if store.kind == StoreKind::ClusterSecretStore
                && reference.namespace.as_deref().is_none_or(str::is_empty)
            {
                return Err(format!(
                    "{field}.namespace: a ClusterSecretStore's reference without a namespace (ESO's referent auth, read in each ExternalSecret's namespace) is not supported by courier yet for openBao stores\nhint: name the namespace that holds the Secret"
                ));
            }
        }
        let world_namespaces = config
            .references()
            .into_iter()
            .filter_map(|(_, r)| store.reference_namespace(r.namespace.as_deref()))
            .chain(ca.as_ref().and_then(CaSource::world_namespace))
            .collect();
        Ok(Arc::new(OpenBaoStore {
            store: store.display.to_owned(),
            own_namespace: store.namespace.unwrap_or_default().to_owned(),
            kind: store.kind,
            ca,
            config,
            world_namespaces,
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
            match wanted.store.as_any().downcast_ref::<OpenBaoStore>() {
                Some(store) => prefetch(store, wanted, world, context, fetched).await,
                None => FetchStats::default(),
            }
        })
    }
}

/// An OpenBao store, parsed.
#[derive(Debug)]
pub struct OpenBaoStore {
    /// `Kind/namespace/name`: the key of its prefetched values.
    store: String,
    /// A SecretStore's namespace.
    own_namespace: String,
    kind: StoreKind,
    /// `caBundle` or `caProvider`: the only roots trusted when set (ESO's `RootCAs`).
    ca: Option<CaSource>,
    config: OpenBaoProvider,
    world_namespaces: BTreeSet<String>,
}

/// The key a find is prefetched under: its path and its pattern.
fn find_key(path: Option<&str>, pattern: &str) -> String {
    format!("{}\n{pattern}", path.unwrap_or_default())
}

impl StoreProvider for OpenBaoStore {
    fn provider_name(&self) -> &'static str {
        "openBao"
    }

    fn share_key(&self, _: &str) -> String {
        format!("openBao:{}", self.store)
    }

    fn client<'w>(&'w self, world: &'w World, _: &str) -> Box<dyn SecretsClient + 'w> {
        Box::new(OpenBaoClient {
            world,
            store: &self.store,
        })
    }

    fn remote_key(&self, _: &str) -> Option<String> {
        Some(self.store.clone())
    }

    fn remote_reads(&self, _: &str, spec: &ExternalSecretSpec, reads: &mut StoreReads) {
        for data in &spec.data {
            let reference = &data.remote_ref;
            reads
                .reads
                .insert((reference.key.clone(), reference.version.clone()));
        }
        for from in &spec.data_from {
            if let Some(extract) = &from.extract {
                reads
                    .reads
                    .insert((extract.key.clone(), extract.version.clone()));
            }
            if let Some(find) = &from.find
                && find.tags.is_none()
                && let Some(name) = &find.name
            {
                reads
                    .finds
                    .insert(find_key(find.path.as_deref(), &name.regexp));
            }
        }
    }

    fn world_namespaces(&self) -> BTreeSet<String> {
        self.world_namespaces.clone()
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

#[derive(Default)]
struct Counters {
    reads: AtomicU64,
    lists: AtomicU64,
    logins: AtomicU64,
}

/// Fetches every read and find of one store into `fetched`.
async fn prefetch(
    bao: &OpenBaoStore,
    wanted: &StoreReads,
    world: &World,
    context: &FetchContext,
    fetched: &mut Fetched,
) -> FetchStats {
    let store = &bao.store;
    let counters = Counters::default();
    let http = match http_client(bao.ca.as_ref(), world, context).await {
        Ok(http) => http,
        Err(message) => {
            fail_all(fetched, store, wanted, &message);
            return FetchStats::default();
        }
    };
    let session = match Session::open(&http, bao, world, &counters).await {
        Ok(session) => session,
        Err(message) => {
            fail_all(fetched, store, wanted, &message);
            return counters_stats(&counters);
        }
    };
    let mut reads = wanted.reads.clone();
    for key in &wanted.finds {
        let (path, pattern) = key.split_once('\n').unwrap_or(("", key));
        let found = session.find(path, pattern).await;
        if let Ok(names) = &found {
            reads.extend(names.iter().map(|name| (name.clone(), None)));
        }
        fetched
            .remote_finds
            .insert((store.clone(), key.clone()), found);
    }
    let results: Vec<_> = futures::stream::iter(reads)
        .map(|(key, version)| {
            let session = &session;
            async move {
                let result = session.read(&key, version.as_deref()).await;
                ((key, version), result)
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    for ((key, version), result) in results {
        fetched
            .remote_reads
            .insert((store.clone(), key, version), result);
    }
    counters_stats(&counters)
}

/// The store's HTTP client: with `caBundle` or `caProvider`, its certificates are the
/// only roots.
async fn http_client(
    ca: Option<&CaSource>,
    world: &World,
    context: &FetchContext,
) -> Result<reqwest::Client, String> {
    let builder = reqwest::Client::builder().timeout(TIMEOUT);
    client_for(builder, ca, "OpenBao", world, context).await
}

fn counters_stats(counters: &Counters) -> FetchStats {
    FetchStats {
        reads: counters.reads.load(Ordering::Relaxed),
        lists: counters.lists.load(Ordering::Relaxed),
        logins: counters.logins.load(Ordering::Relaxed),
        webhook_requests: 0,
    }
}

struct Session<'a> {
    http: &'a reqwest::Client,
    store: &'a str,
    config: &'a OpenBaoProvider,
    /// `None` without auth: no token is sent.
    token: Option<SecretBytes>,
    counters: &'a Counters,
}

/// What a GET answered: the body, and whether it was a 404 (which OpenBao's client reads
/// as a secret when the body holds data: a deleted KV v2 version).
struct Answer {
    body: Vec<u8>,
    not_found: bool,
}

impl<'a> Session<'a> {
    async fn open(
        http: &'a reqwest::Client,
        bao: &'a OpenBaoStore,
        world: &World,
        counters: &'a Counters,
    ) -> Result<Session<'a>, String> {
        let config = &bao.config;
        let credential = |selector: &SecretKeySelector, field: &str| {
            let namespace = match bao.kind {
                StoreKind::SecretStore => bao.own_namespace.clone(),
                StoreKind::ClusterSecretStore => selector.namespace.clone().unwrap_or_default(),
            };
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
        let mut session = Session {
            http,
            store: &bao.store,
            config,
            token: None,
            counters,
        };
        let Some(auth) = &config.auth else {
            return Ok(session);
        };
        if let Some(selector) = &auth.token_secret_ref {
            session.token = Some(credential(selector, "auth.tokenSecretRef")?);
            return Ok(session);
        }
        let (path, body, method) = if let Some(user_pass) = &auth.user_pass {
            let selector = user_pass.secret_ref.as_ref().ok_or("auth.userPass.secretRef is required")?;
            let password = credential(selector, "auth.userPass.secretRef")?;
            let mount = user_pass.path.as_deref().unwrap_or("userpass").trim_matches('/');
            (
                format!("auth/{mount}/login/{}", user_pass.username),
                serde_json::json!({"password": String::from_utf8_lossy(password.expose())}),
                "userpass",
            )
        } else if let Some(app_role) = &auth.app_role {
            let role_id = match (&app_role.role_id, &app_role.role_ref) {
                (Some(inline), _) => SecretBytes::from(inline.as_str()),
                (None, Some(selector)) => credential(selector, "auth.appRole.roleRef")?,
                (None, None) => return Err("auth.appRole needs roleId or roleRef".into()),
            };
            let selector = app_role.secret_ref.as_ref().ok_or("auth.appRole.secretRef is required")?;
            let secret_id = credential(selector, "auth.appRole.secretRef")?;
            let mount = app_role.path.as_deref().unwrap_or("approle").trim_matches('/');
            (
                format!("auth/{mount}/login"),
                serde_json::json!({
                    "role_id": String::from_utf8_lossy(role_id.expose()),
                    "secret_id": String::from_utf8_lossy(secret_id.expose()),
                }),
                "AppRole",
            )
        } else {
            return Err("auth: exactly one of the fields in [appRole tokenSecretRef userPass] must be set".into());
        };
        counters.logins.fetch_add(1, Ordering::Relaxed);
        let mut request = http.post(session.url(&path)).json(&body);
        if let Some(namespace) = auth.namespace.as_ref().or(config.namespace.as_ref()) {
            request = request.header("X-Vault-Namespace", namespace);
        }
        let response = request
            .send()
            .await
            .map_err(|e| format!("{method} login: {}", transport(&e)))?;
        let status = response.status();
        if !status.is_success() {
            // The path names the mount and the user, never the password.
            return Err(format!(
                "{method} login at {path}: {} {}",
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
        session.token = Some(SecretBytes::from(token));
        Ok(session)
    }

    fn url(&self, path: &str) -> String {
        format!(
            "{}/v1/{}",
            self.config.server.trim_end_matches('/'),
            path.trim_start_matches('/')
        )
    }

    /// GET `path`, retrying 429, 5xx and lost connections twice.
    async fn get(&self, path: &str, query: &[(&str, &str)]) -> Result<Answer, RemoteError> {
        let what = format!("{}: GET {path}", self.store);
        let failed = |message: String| RemoteError {
            message,
            not_found: false,
        };
        if let Some(why) = path_outside_mount(path) {
            return Err(failed(outside_mount_message(self.store, path, why)));
        }
        let mut attempt = 1;
        loop {
            let mut request = self.http.get(self.url(path)).query(query);
            if let Some(token) = &self.token {
                request = request.header(
                    "X-Vault-Token",
                    String::from_utf8_lossy(token.expose()).into_owned(),
                );
            }
            if let Some(namespace) = &self.config.namespace {
                request = request.header("X-Vault-Namespace", namespace);
            }
            match request.send().await {
                Ok(response) => {
                    let status = response.status().as_u16();
                    match status {
                        200..=299 | 404 => {
                            let body = response
                                .bytes()
                                .await
                                .map_err(|e| failed(format!("{what}: {}", transport(&e))))?;
                            return Ok(Answer {
                                body: body.to_vec(),
                                not_found: status == 404,
                            });
                        }
                        429 | 500 | 502 | 503 | 504 if attempt < ATTEMPTS => {}
                        _ => {
                            let errors = vault_errors(response).await;
                            return Err(failed(format!("{what}: {status} {errors}")));
                        }
                    }
                }
                Err(e) if attempt < ATTEMPTS && (e.is_connect() || e.is_timeout()) => {}
                Err(e) => return Err(failed(format!("{what}: {}", transport(&e)))),
            }
            tokio::time::sleep(Duration::from_millis(200 * 2u64.pow(attempt - 1))).await;
            attempt += 1;
        }
    }

    /// The secret's data as the JSON text OpenBao sent (`null` for a deleted KV v2
    /// version), so numbers keep their digits as ESO's client (`UseNumber`) keeps them.
    async fn read(&self, key: &str, version: Option<&str>) -> Result<SecretBytes, RemoteError> {
        let failed = |message: String| RemoteError {
            message: format!("{}: {message}", self.store),
            not_found: false,
        };
        let mount = self.config.mount();
        let (path, query) = if self.config.kv1() {
            if version.is_some() {
                return Err(failed(format!(
                    "{key}: OpenBao KVv1 secrets do not support versioning (use KVv2)"
                )));
            }
            (format!("{mount}/{key}"), None)
        } else {
            let version = match version {
                None => None,
                Some(text) => Some(
                    text.parse::<i64>()
                        .map_err(|_| {
                            failed(format!(
                                "{key}: invalid Ref.Version: {text:?} is not an integer"
                            ))
                        })?
                        .to_string(),
                ),
            };
            (format!("{mount}/data/{key}"), version)
        };
        self.counters.reads.fetch_add(1, Ordering::Relaxed);
        let query: Vec<(&str, &str)> = query.as_deref().map(|v| ("version", v)).into_iter().collect();
        let answer = self.get(&path, &query).await?;
        #[derive(Deserialize)]
        struct Envelope {
            #[serde(default)]
            data: Option<Box<RawValue>>,
        }
        let not_found = || failed(format!("secret not found: at {path}"));
        let envelope: Envelope = match serde_json::from_slice(&answer.body) {
            Ok(envelope) => envelope,
            Err(_) if answer.not_found => return Err(not_found()),
            Err(_) => return Err(failed(format!("GET {path}: the answer is not JSON"))),
        };
        let Some(data) = envelope.data else {
            return Err(not_found());
        };
        let data = if self.config.kv1() {
            if answer.not_found {
                return Err(not_found());
            }
            Some(data)
        } else {
            let inner: Envelope = serde_json::from_str(data.get())
                .map_err(|_| failed(format!("error parsing secret at {path}")))?;
            inner.data
        };
        match data {
            Some(object) if object.get().trim_start().starts_with('{') => {
                Ok(SecretBytes::from(object.get()))
            }
            None => Ok(SecretBytes::from("null")),
            Some(_) => Err(failed(format!("error parsing secret at {path}: data is not an object"))),
        }
    }

    /// The names listed at `path` (one level, as ESO's `List`) that `pattern` matches.
    async fn find(&self, path: &str, pattern: &str) -> Result<Vec<String>, RemoteError> {
        let regex = regex::Regex::new(pattern).map_err(|e| RemoteError {
            message: format!("{}: find.name.regexp: {e}", self.store),
            not_found: false,
        })?;
        let mount = self.config.mount();
        let listing = if self.config.kv1() {
            format!("{mount}/{path}")
        } else {
            format!("{mount}/metadata/{path}")
        };
        self.counters.lists.fetch_add(1, Ordering::Relaxed);
        let answer = self.get(&listing, &[("list", "true")]).await?;
        if answer.not_found {
            return Ok(Vec::new());
        }
        let body: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
        let mut names: Vec<String> = body
            .pointer("/data/keys")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .filter(|name| regex.is_match(name))
            .map(str::to_owned)
            .collect();
        names.sort();
        Ok(names)
    }
}

/// ESO's `Validate` of an OpenBao store (providers/v1/openbao/client.go), with the store's
/// own identity: its client and login (ESO: "unable to create client" when that fails),
/// then the mount's information (`sys/mounts/<path>`), which must be a `kv` engine of the
/// store's version (ESO: "unable to validate store" otherwise). `None` for a store of
/// another provider.
pub async fn validate_store(
    store: &Arc<dyn StoreProvider>,
    world: &World,
    context: &FetchContext,
) -> Option<crate::providers::kubernetes_validate::Validation> {
    use crate::providers::kubernetes_validate::Validation;
    let bao = store.as_any().downcast_ref::<OpenBaoStore>()?;
    let name = &bao.store;
    let http = match http_client(bao.ca.as_ref(), world, context).await {
        Ok(http) => http,
        Err(message) => return Some(Validation::NoClient(format!("{name}: {message}"))),
    };
    let counters = Counters::default();
    let session = match Session::open(&http, bao, world, &counters).await {
        Ok(session) => session,
        Err(message) => return Some(Validation::NoClient(format!("{name}: {message}"))),
    };
    let mount = bao.config.mount();
    let server = &bao.config.server;
    let invalid = |detail: String| Validation::Invalid(format!("{name}: {detail}"));
    let answer = match session.get(&format!("sys/mounts/{mount}"), &[]).await {
        Ok(answer) if !answer.not_found => answer,
        Ok(_) => {
            return Some(invalid(format!(
                "error while validating {server:?}: no mount at {mount}"
            )));
        }
        Err(error) => {
            return Some(invalid(format!(
                "error while validating {server:?}: {}",
                error.message
            )));
        }
    };
    let info: Value = serde_json::from_slice(&answer.body).unwrap_or(Value::Null);
    let field = |pointer: &str| {
        info.pointer(&format!("/data{pointer}"))
            .or_else(|| info.pointer(pointer))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let kind = field("/type");
    if kind != "kv" {
        return Some(invalid(format!(
            "expected mount type \"kv\" found {kind:?}"
        )));
    }
    let expected = bao.config.version.as_deref().unwrap_or("v2");
    let expected = expected.strip_prefix('v').unwrap_or(expected);
    let actual = field("/options/version");
    if actual != expected {
        return Some(invalid(format!(
            "expected kv engine version {expected} found version {actual}"
        )));
    }
    Some(Validation::Ready)
}

/// An OpenBao store answered from the values prefetched into the world.
struct OpenBaoClient<'w> {
    world: &'w World,
    store: &'w str,
}

/// One JSON value as OpenBao's client decoded it: numbers keep their text.
fn raw_members(raw: &str) -> Option<BTreeMap<String, Box<RawValue>>> {
    serde_json::from_str(raw).ok()
}

/// Go's `json.Marshal` (HTML escaping on) of a value decoded with `UseNumber`: sorted keys,
/// numbers as written.
fn marshal_raw(raw: &str, out: &mut String) {
    let text = raw.trim();
    match text.as_bytes().first() {
        Some(b'{') => {
            out.push('{');
            for (index, (key, value)) in raw_members(text).unwrap_or_default().iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                out.push_str(&go_json_marshal(&Value::String(key.clone())));
                out.push(':');
                marshal_raw(value.get(), out);
            }
            out.push('}');
        }
        Some(b'[') => {
            let items: Vec<Box<RawValue>> = serde_json::from_str(text).unwrap_or_default();
            out.push('[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push(',');
                }
                marshal_raw(item.get(), out);
            }
            out.push(']');
        }
        Some(b'"') => {
            let decoded: String = serde_json::from_str(text).unwrap_or_default();
            out.push_str(&go_json_marshal(&Value::String(decoded)));
        }
        _ => out.push_str(text),
    }
}

/// `esutils.GetByteValue` of a value decoded with `UseNumber`: strings raw, numbers as
/// written, `null` empty, objects and arrays as Go's `json.Marshal`.
fn raw_value_bytes(raw: &str) -> Vec<u8> {
    let text = raw.trim();
    match text.as_bytes().first() {
        Some(b'"') => serde_json::from_str::<String>(text)
            .unwrap_or_default()
            .into_bytes(),
        Some(b'n') => Vec::new(),
        Some(b'{' | b'[') => {
            let mut out = String::new();
            marshal_raw(text, &mut out);
            out.into_bytes()
        }
        _ => text.as_bytes().to_vec(),
    }
}

/// `esutils.GetByteValue` of a value `json.Unmarshal` decoded into `any` (numbers are
/// float64s).
fn value_bytes(value: &Value) -> Vec<u8> {
    match value {
        Value::String(text) => text.clone().into_bytes(),
        Value::Null => Vec::new(),
        Value::Bool(b) => b.to_string().into_bytes(),
        Value::Number(n) => go_format_float(n.as_f64().unwrap_or_default()).into_bytes(),
        other => go_json_marshal(other).into_bytes(),
    }
}

impl OpenBaoClient<'_> {
    fn data(&self, key: &str, version: Option<&String>) -> Result<&str, FetchError> {
        let bytes = prefetched(self.world, self.store, key, key, version)?;
        // Never a source missing: ESO's OpenBao provider has no NoSecretError.
        std::str::from_utf8(bytes.expose()).map_err(|_| {
            FetchError::new(format!("{}: {key} is not a key/value secret", self.store))
        })
    }
}

impl SecretsClient for OpenBaoClient<'_> {
    fn get_secret(&self, remote_ref: &RemoteRef) -> Result<SecretBytes, FetchError> {
        let data = self.data(&remote_ref.key, remote_ref.version.as_ref())?;
        match remote_ref.property.as_deref().filter(|p| !p.is_empty()) {
            None => {
                let mut out = String::new();
                marshal_raw(data, &mut out);
                Ok(SecretBytes::from(out))
            }
            Some(property) => {
                let members = raw_members(data).unwrap_or_default();
                match members.get(property) {
                    Some(value) => Ok(SecretBytes::new(raw_value_bytes(value.get()))),
                    None => Err(FetchError::new(format!(
                        "{}: cannot find secret data for key: {property:?} (in {})",
                        self.store, remote_ref.key
                    ))),
                }
            }
        }
    }

    fn get_secret_map(&self, remote_ref: &RemoteRef) -> Result<SecretMap, FetchError> {
        let whole = self.get_secret(remote_ref)?;
        let object = match go_json_unmarshal(whole.expose()) {
            Some(Value::Object(object)) => object,
            Some(Value::Null) => serde_json::Map::new(),
            _ => {
                let what = match remote_ref.property.as_deref().filter(|p| !p.is_empty()) {
                    Some(property) => format!("property {property:?} of {}", remote_ref.key),
                    None => remote_ref.key.clone(),
                };
                return Err(FetchError::new(format!(
                    "{}: {what} is not a JSON object, so it cannot be extracted",
                    self.store
                )));
            }
        };
        Ok(object
            .iter()
            .map(|(k, v)| (k.clone(), SecretBytes::new(value_bytes(v))))
            .collect())
    }

    fn get_all_secrets(&self, find: &FindRef) -> Result<SecretMap, FetchError> {
        if find.tags.is_some() {
            return Err(FetchError::new(format!(
                "{}: find.tags: tag based search is not implemented (ESO's OpenBao provider)\nhint: use find.name.regexp",
                self.store
            )));
        }
        let Some(name) = &find.name else {
            return Err(FetchError::new(format!(
                "{}: find needs name.regexp on an OpenBao store",
                self.store
            )));
        };
        let key = find_key(find.path.as_deref(), &name.regexp);
        let names = match self.world.remote_finds.get(&(self.store.to_owned(), key)) {
            None => {
                return Err(FetchError::new(format!(
                    "{}: find {:?} was not fetched",
                    self.store, name.regexp
                )));
            }
            Some(Err(error)) => return Err(FetchError::new(error.message.clone())),
            Some(Ok(names)) => names,
        };
        let mut found = SecretMap::new();
        for secret in names {
            let whole = self.get_secret(&RemoteRef {
                key: secret.clone(),
                property: None,
                version: None,
                decoding_strategy: None,
                conversion_strategy: None,
                metadata_policy: None,
                null_byte_policy: None,
            })?;
            found.insert(secret.clone(), whole);
        }
        convert_keys(find.conversion_strategy.unwrap_or_default(), found)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn whole(raw: &str) -> String {
        let mut out = String::new();
        marshal_raw(raw, &mut out);
        out
    }

    #[test]
    fn a_whole_secret_is_go_json_marshal_with_html_escaping_and_numbers_as_written() {
        assert_eq!(
            whole(r#"{"z": "<a&b>", "a": 1.50, "e": 1e3, "n": null, "o": {"y": [1, "é", true]}, "u": "\u2028"}"#),
            r#"{"a":1.50,"e":1e3,"n":null,"o":{"y":[1,"é",true]},"u":"\u2028","z":"\u003ca\u0026b\u003e"}"#
        );
        assert_eq!(whole("null"), "null");
    }

    fn parse(kind: StoreKind, config: Value) -> Result<(), String> {
        let origin = crate::core::load::Origin {
            file: "stores.yaml".into(),
            line: 1,
        };
        let info = StoreInfo {
            kind,
            namespace: (kind == StoreKind::SecretStore).then_some("team-a"),
            name: "s",
            display: "Store/s",
            origin: &origin,
            annotations: &crate::core::model::StringMap::new(),
            live: false,
        };
        OpenBao.parse(&config, &info).map(|_| ())
    }

    #[test]
    fn fields_courier_does_not_implement_are_refused_by_name() {
        let token = serde_json::json!({"tokenSecretRef": {"name": "t", "key": "k", "namespace": "central"}});
        let ok = serde_json::json!({"server": "http://bao:8200", "auth": token});
        assert_eq!(parse(StoreKind::ClusterSecretStore, ok.clone()), Ok(()));
        let mut config = ok.clone();
        config["caProvider"] = serde_json::json!({"type": "Secret", "name": "ca", "key": "ca.crt"});
        let refused = parse(StoreKind::ClusterSecretStore, config.clone()).unwrap_err();
        assert!(refused.starts_with("caProvider.namespace: missing namespace on caProvider secret"), "{refused}");
        config["caProvider"]["namespace"] = serde_json::json!("central");
        assert_eq!(parse(StoreKind::ClusterSecretStore, config), Ok(()));
        let mut config = ok.clone();
        config["caBundle"] = serde_json::json!("not base64!");
        assert_eq!(parse(StoreKind::ClusterSecretStore, config), Err("caBundle is not base64".into()));
        let referent = serde_json::json!({"server": "http://bao:8200", "auth": {"tokenSecretRef": {"name": "t", "key": "k"}}});
        let refused = parse(StoreKind::ClusterSecretStore, referent.clone()).unwrap_err();
        assert!(refused.starts_with("auth.tokenSecretRef.namespace: a ClusterSecretStore's reference without a namespace"), "{refused}");
        assert_eq!(parse(StoreKind::SecretStore, referent), Ok(()), "a SecretStore's own namespace");
    }

    #[test]
    fn the_store_is_checked_as_esos_crd_and_validate_do() {
        let refused = |config: Value| parse(StoreKind::SecretStore, config).unwrap_err();
        let secret = serde_json::json!({"name": "t", "key": "k"});
        assert!(refused(serde_json::json!({"server": "http://b", "auth": {"tokenSecretRef": secret, "userPass": {"username": "u", "secretRef": secret}}}))
            .contains("exactly one of the fields in [appRole tokenSecretRef userPass]"));
        assert!(refused(serde_json::json!({"server": "http://b", "auth": {"appRole": {"secretRef": secret}}}))
            .contains("exactly one of the fields in [roleId roleRef]"));
        assert!(refused(serde_json::json!({"server": "http://b", "auth": {"userPass": {"username": "u"}}}))
            .contains("auth.userPass.secretRef is required"));
        assert!(refused(serde_json::json!({"server": "http://b", "auth": {"tokenSecretRef": {"name": "t", "key": "k", "namespace": "central"}}}))
            .starts_with("auth.tokenSecretRef.namespace: a SecretStore reads credentials from its own namespace (team-a), not central"));
        for server in [None, Some("bao:8200"), Some("ftp://bao"), Some("https://")] {
            let mut config = serde_json::json!({"path": "kv"});
            if let Some(server) = server {
                config["server"] = server.into();
            }
            assert!(
                refused(config).starts_with("server: must be an http:// or https:// URL\nhint: "),
                "{server:?}"
            );
        }
        assert_eq!(parse(StoreKind::SecretStore, serde_json::json!({"server": "http://b"})), Ok(()), "no auth: no token");
    }

    #[test]
    fn the_mount_is_kv_unless_named() {
        let config: OpenBaoProvider = serde_json::from_value(serde_json::json!({"server": "http://b"})).unwrap();
        assert_eq!(config.mount(), "kv");
        assert!(!config.kv1());
        let config: OpenBaoProvider = serde_json::from_value(serde_json::json!({"server": "http://b", "path": "/secret/", "version": "v1"})).unwrap();
        assert_eq!(config.mount(), "secret");
        assert!(config.kv1());
    }

    #[test]
    fn a_property_is_a_flat_key_and_numbers_keep_their_text() {
        assert_eq!(raw_value_bytes(r#""x<y""#), b"x<y");
        assert_eq!(raw_value_bytes("1e3"), b"1e3");
        assert_eq!(raw_value_bytes("null"), b"");
        assert_eq!(raw_value_bytes(r#"{"b": 2.0, "a": "<"}"#), br#"{"a":"\u003c","b":2.0}"#);
        // extract goes through float64: 1e3 is 1000, 2.0 is 2.
        assert_eq!(value_bytes(&serde_json::json!(1000.0)), b"1000");
        assert_eq!(value_bytes(&serde_json::json!({"b": 2.0})), br#"{"b":2}"#);
    }
}
