//! The webhook provider: values from an HTTP endpoint of your own, read before planning.
//! URL, body and headers are ESO's Go templates over `remoteRef` (key, version,
//! property) and the named credential Secrets (`{{ .remoteRef.key }}`,
//! `{{ .auth.token }}`), or courier's minijinja when the store is annotated
//! `courier.dev/template-engine: minijinja`; `result.jsonPath`
//! (RFC 9535) picks the value out of the JSON answer. Each distinct request is sent once
//! per reconcile. Errors quote the URL template, never the rendered URL (it may carry a
//! token) nor a value.

use std::any::Any;
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use futures::future::BoxFuture;
use serde::Deserialize;
use serde_json::Value;

use super::common::{key_reads, parse_config, fail_all, json_result_bytes, prefetched, remote_value_bytes};
use super::kubernetes_identity::CaProvider;
use super::provider::{FetchContext, FetchStats, Fetched, Provider};
use super::tls::{CaSource, client_for, parse_ca};
use crate::core::duration::parse_go_duration;
use crate::core::model::{ExternalSecretSpec, FindRef, RemoteRef, SecretKeySelector, null_default};
use crate::core::provider::{
    FetchError, SecretMap, SecretsClient, StoreInfo, StoreProvider, StoreReads,
};
use crate::core::secret_bytes::SecretBytes;
use crate::core::gotemplate;
use crate::core::labels::TEMPLATE_ENGINE_ANNOTATION;
use crate::core::plan::Engine;
use crate::core::template;
use crate::core::world::{RemoteError, World};

/// The named Secrets' keys, by the name templates use (`auth` in `{{ .auth.token }}`).
type Credentials = BTreeMap<String, BTreeMap<String, String>>;

/// A read (key with property, version) and what it returned.
type Answered = ((String, Option<String>), Result<SecretBytes, RemoteError>);

const CONCURRENCY: usize = 16;
const ATTEMPTS: u32 = 3;
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// `spec.provider.webhook`.
pub struct Webhook;

impl Provider for Webhook {
    fn name(&self) -> &'static str {
        "webhook"
    }

    fn implemented(&self) -> &'static [&'static str] {
        IMPLEMENTED
    }

    fn parse(&self, config: &Value, store: &StoreInfo<'_>) -> Result<Arc<dyn StoreProvider>, String> {
        let config: WebhookProvider = parse_config(config)?;
        let ca = parse_ca(
            config.ca_bundle.as_deref(),
            config.ca_provider.as_ref(),
            store,
        )?;
        for secret in &config.secrets {
            store.check_reference(
                &format!("secrets[{}].secretRef", secret.name),
                secret.secret_ref.namespace.as_deref(),
            )?;
        }
        let credentials_namespace = match store.kind {
            crate::core::load::StoreKind::SecretStore => store.namespace.map(str::to_owned),
            crate::core::load::StoreKind::ClusterSecretStore => config
                .secrets
                .iter()
                .find_map(|s| s.secret_ref.namespace.clone()),
        }
        .unwrap_or_default();
        let world_namespaces = config
            .secrets
            .iter()
            .filter_map(|s| store.reference_namespace(s.secret_ref.namespace.as_deref()))
            .chain(ca.as_ref().and_then(CaSource::world_namespace))
            .collect();
        let engine = match store.annotations.get(TEMPLATE_ENGINE_ANNOTATION).map(String::as_str) {
            None | Some("go") => Engine::Go,
            Some("minijinja") => Engine::Minijinja,
            Some(other) => {
                return Err(format!(
                    "metadata.annotations[{TEMPLATE_ENGINE_ANNOTATION}]: {other:?} is not a template engine: use go (the default, ESO's) or minijinja"
                ));
            }
        };
        Ok(Arc::new(WebhookStore {
            engine,
            store: store.display.to_owned(),
            config,
            ca,
            credentials_namespace,
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
            let webhook_requests = match wanted.store.as_any().downcast_ref::<WebhookStore>() {
                Some(store) => prefetch(store, wanted, world, context, fetched).await,
                None => 0,
            };
            FetchStats {
                webhook_requests,
                ..FetchStats::default()
            }
        })
    }
}

/// A webhook store, parsed.
#[derive(Debug)]
pub struct WebhookStore {
    /// The language of its url, body and header templates.
    engine: Engine,
    /// `Kind/namespace/name`: the key of its prefetched answers.
    store: String,
    config: WebhookProvider,
    /// `caBundle` or `caProvider`: the only roots trusted when set (ESO's `RootCAs`).
    ca: Option<CaSource>,
    /// Namespace of the Secrets its templates may use, when a reference names none.
    credentials_namespace: String,
    world_namespaces: BTreeSet<String>,
}

impl StoreProvider for WebhookStore {
    fn provider_name(&self) -> &'static str {
        "webhook"
    }

    fn share_key(&self, _: &str) -> String {
        format!("webhook:{}", self.store)
    }

    fn client<'w>(&'w self, world: &'w World, _: &str) -> Box<dyn SecretsClient + 'w> {
        Box::new(WebhookClient::new(world, &self.store))
    }

    fn remote_key(&self, _: &str) -> Option<String> {
        Some(self.store.clone())
    }

    fn remote_reads(&self, _: &str, spec: &ExternalSecretSpec, reads: &mut StoreReads) {
        key_reads(spec, reads, |reference| read_key(&reference.key, reference.property.as_deref()));
    }

    fn world_namespaces(&self) -> BTreeSet<String> {
        self.world_namespaces.clone()
    }

    fn as_any(&self) -> &dyn Any {
        self
    }
}

/// The key a webhook read is kept under: its URL may use the property, so it is part of it.
fn read_key(key: &str, property: Option<&str>) -> String {
    match property.filter(|p| !p.is_empty()) {
        Some(property) => format!("{key}\u{1f}{property}"),
        None => key.to_owned(),
    }
}

/// Sends every request one store's reads need; returns how many HTTP requests were sent.
async fn prefetch(
    webhook: &WebhookStore,
    wanted: &StoreReads,
    world: &World,
    context: &FetchContext,
    fetched: &mut Fetched,
) -> u64 {
    let (store, config, engine) = (&webhook.store, &webhook.config, webhook.engine);
    let credentials = match credentials(config, &webhook.credentials_namespace, world) {
        Ok(credentials) => credentials,
        Err(message) => {
            fail_all(fetched, store, wanted, &message);
            return 0;
        }
    };
    let timeout = config
        .timeout
        .as_deref()
        .and_then(parse_go_duration)
        .unwrap_or(DEFAULT_TIMEOUT);
    let builder = reqwest::Client::builder().timeout(timeout);
    let http = match client_for(builder, webhook.ca.as_ref(), "webhook", world, context).await {
        Ok(http) => http,
        Err(message) => {
            fail_all(fetched, store, wanted, &message);
            return 0;
        }
    };
    let env = template::environment();
    let results: Vec<(Answered, u64)> = futures::stream::iter(wanted.reads.iter().cloned())
        .map(|(read_key, version)| {
            let (http, env, credentials) = (&http, &env, &credentials);
            async move {
                let (key, property) = match read_key.split_once('\u{1f}') {
                    Some((key, property)) => (key.to_owned(), Some(property.to_owned())),
                    None => (read_key.clone(), None),
                };
                let request = Request {
                    store,
                    config,
                    key: &key,
                    property: property.as_deref(),
                    version: version.as_deref(),
                };
                let (result, attempts) = request.send(http, engine, env, credentials).await;
                (((read_key, version), result), attempts)
            }
        })
        .buffer_unordered(CONCURRENCY)
        .collect()
        .await;
    let mut sent = 0;
    for ((read, result), attempts) in results {
        sent += attempts;
        fetched
            .remote_reads
            .insert((store.clone(), read.0, read.1), result);
    }
    for pattern in &wanted.finds {
        let error = RemoteError {
            message: format!("{store}: find is not supported by the webhook provider"),
            not_found: false,
        };
        fetched
            .remote_finds
            .insert((store.clone(), pattern.clone()), Err(error));
    }
    sent
}

/// The named Secrets' keys, as the templates see them.
fn credentials(
    config: &WebhookProvider,
    namespace: &str,
    world: &World,
) -> Result<Credentials, String> {
    let mut named = BTreeMap::new();
    for secret in &config.secrets {
        let reference = &secret.secret_ref;
        let namespace = reference
            .namespace
            .clone()
            .unwrap_or_else(|| namespace.to_owned());
        let found = world.secret(&namespace, &reference.name).ok_or_else(|| {
            format!(
                "secrets[{}]: Secret {namespace}/{} not found",
                secret.name, reference.name
            )
        })?;
        named.insert(
            secret.name.clone(),
            found
                .data
                .iter()
                .map(|(k, v)| (k.clone(), String::from_utf8_lossy(v.expose()).into_owned()))
                .collect(),
        );
    }
    Ok(named)
}

struct Request<'a> {
    store: &'a str,
    config: &'a WebhookProvider,
    key: &'a str,
    property: Option<&'a str>,
    version: Option<&'a str>,
}

impl Request<'_> {
    fn what(&self) -> String {
        let method = self
            .config
            .method
            .as_deref()
            .unwrap_or("GET")
            .to_uppercase();
        format!(
            "{}: {method} {} (key {:?})",
            self.store, self.config.url, self.key
        )
    }

    fn fail(&self, message: impl std::fmt::Display, not_found: bool) -> RemoteError {
        RemoteError {
            message: format!("{}: {message}", self.what()),
            not_found,
        }
    }

    /// The result and how many HTTP requests it took.
    async fn send(
        &self,
        http: &reqwest::Client,
        engine: Engine,
        env: &minijinja::Environment<'_>,
        credentials: &Credentials,
    ) -> (Result<SecretBytes, RemoteError>, u64) {
        let mut maps = credentials.clone();
        maps.insert(
            "remoteRef".into(),
            BTreeMap::from([
                ("key".to_owned(), self.key.to_owned()),
                (
                    "property".to_owned(),
                    self.property.unwrap_or_default().to_owned(),
                ),
                (
                    "version".to_owned(),
                    self.version.unwrap_or_default().to_owned(),
                ),
            ]),
        );
        let context = (engine == Engine::Minijinja).then(|| {
            minijinja::Value::from_pairs(maps.iter().map(|(name, map)| {
                (
                    name.clone(),
                    minijinja::Value::from_pairs(
                        map.iter().map(|(k, v)| (k.clone(), minijinja::Value::from(v.as_str()))),
                    ),
                )
            }))
        });
        let render = |source: &str, field: &str| {
            let rendered = match &context {
                Some(context) => template::render(env, source, context).map_err(|e| e.message),
                None => gotemplate::render_maps(field, source, &maps).map_err(|e| e.message),
            };
            rendered.map_err(|message| self.fail(format!("{field}: {message}"), false))
        };
        let prepared = (|| {
            let url = render(&self.config.url, "url")?;
            if moves_path(&url) {
                return Err(self.fail(
                    "url: the rendered path holds a . or .. segment, which the URL parser would resolve: it would send the request to another path than the url template names, with the store's headers\nhint: remoteRef.key names a value under the url template's path; one elsewhere on the server needs a store of its own",
                    false,
                ));
            }
            let body = self
                .config
                .body
                .as_deref()
                .map(|b| render(b, "body"))
                .transpose()?;
            let mut headers = Vec::new();
            for (name, value) in &self.config.headers {
                headers.push((name.clone(), render(value, &format!("headers.{name}"))?));
            }
            let method = reqwest::Method::from_bytes(
                self.config
                    .method
                    .as_deref()
                    .unwrap_or("GET")
                    .to_uppercase()
                    .as_bytes(),
            )
            .map_err(|_| self.fail("method is not an HTTP method", false))?;
            Ok::<_, RemoteError>((url, body, headers, method))
        })();
        let (url, body, headers, method) = match prepared {
            Ok(prepared) => prepared,
            Err(error) => return (Err(error), 0),
        };
        let mut attempt = 1;
        loop {
            let mut request = http.request(method.clone(), &url);
            for (name, value) in &headers {
                request = request.header(name, value);
            }
            if let Some(body) = &body {
                request = request.body(body.clone());
            }
            let retry = match request.send().await {
                Ok(response) => {
                    let status = response.status().as_u16();
                    match status {
                        200..=299 => {
                            let text = response.text().await.unwrap_or_default();
                            return (self.select(&text), u64::from(attempt));
                        }
                        404 => {
                            return (Err(self.fail("not found (404)", true)), u64::from(attempt));
                        }
                        429 | 500 | 502 | 503 | 504 if attempt < ATTEMPTS => true,
                        _ => {
                            return (
                                Err(self.fail(format!("answered {status}"), false)),
                                u64::from(attempt),
                            );
                        }
                    }
                }
                Err(e) if attempt < ATTEMPTS && (e.is_connect() || e.is_timeout()) => true,
                Err(e) => {
                    let reason = super::tls::transport_reason(&e);
                    return (Err(self.fail(reason, false)), u64::from(attempt));
                }
            };
            debug_assert!(retry);
            tokio::time::sleep(Duration::from_millis(200 * 2u64.pow(attempt - 1))).await;
            attempt += 1;
        }
    }

    /// The answer, narrowed by `result.jsonPath` when set; a non-JSON answer is a string.
    fn select(&self, text: &str) -> Result<SecretBytes, RemoteError> {
        let answer: Value =
            serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.to_owned()));
        let value = match self
            .config
            .result
            .json_path
            .as_deref()
            .filter(|p| !p.is_empty())
        {
            None => answer,
            Some(path) => {
                let path = serde_json_path::JsonPath::parse(path).map_err(|e| {
                    self.fail(format!("result.jsonPath is not valid JSONPath: {e}"), false)
                })?;
                path.query(&answer).first().cloned().ok_or_else(|| {
                    self.fail("result.jsonPath matched nothing in the answer", true)
                })?
            }
        };
        Ok(SecretBytes::new(
            serde_json::to_vec(&value).unwrap_or_default(),
        ))
    }
}

/// ESO's `Validate` of a webhook store (providers/v1/webhook, `NetworkValidate`): a TCP
/// connection to the url's host and port (443 when the url names none, as ESO dials
/// whatever the scheme), given 15 s. `None` for a store of another provider.
pub async fn validate_store(
    store: &Arc<dyn StoreProvider>,
) -> Option<crate::providers::kubernetes_validate::Validation> {
    use crate::providers::kubernetes_validate::Validation;
    let webhook = store.as_any().downcast_ref::<WebhookStore>()?;
    let url = match reqwest::Url::parse(&webhook.config.url) {
        Ok(url) => url,
        Err(e) => {
            return Some(Validation::Invalid(format!(
                "{}: could not parse url: {e}",
                webhook.store
            )));
        }
    };
    let host = url.host_str().unwrap_or_default().to_owned();
    let address = format!("{host}:{}", url.port().unwrap_or(443));
    let connect = tokio::net::TcpStream::connect(address.clone());
    Some(
        match tokio::time::timeout(Duration::from_secs(15), connect).await {
            Ok(Ok(_)) => Validation::Ready,
            Ok(Err(e)) => Validation::Invalid(format!(
                "{}: error accessing external store: dial tcp {address}: {e}",
                webhook.store
            )),
            Err(_) => Validation::Invalid(format!(
                "{}: error accessing external store: dial tcp {address}: i/o timeout",
                webhook.store
            )),
        },
    )
}

/// The fields of `spec.provider.webhook` courier reads ([`Provider::implemented`]):
/// `url`, `method`, `headers` and `body` (rendered and sent per request), `timeout` (the
/// client's), `result.jsonPath` (the answer's value), `secrets` (the template's
/// `.<name>` values: every key of the Secret, so `secretRef.key` selects nothing, as in
/// ESO's `getTemplatedSecrets`), `caBundle` and `caProvider` (`parse`, [`super::tls`]:
/// the only roots trusted when set). Refused: `auth` (NTLM).
pub const IMPLEMENTED: &[&str] = &[
    "url",
    "method",
    "headers",
    "body",
    "timeout",
    "result.jsonPath",
    "secrets[].name",
    "secrets[].secretRef",
    "caBundle",
    "caProvider",
];

/// `spec.provider.webhook`: values from an HTTP endpoint of your own.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub struct WebhookProvider {
    /// URL template (`https://api.example.com/secrets/{{ remoteRef.key }}`).
    #[serde(default)]
    pub url: String,
    /// HTTP method; `GET` when absent.
    #[serde(default)]
    pub method: Option<String>,
    /// Header templates.
    #[serde(default, deserialize_with = "null_default")]
    pub headers: BTreeMap<String, String>,
    /// Body template.
    #[serde(default)]
    pub body: Option<String>,
    /// Timeout as a Go duration (`5s`); 10 s when absent.
    #[serde(default)]
    pub timeout: Option<String>,
    /// Which part of the JSON answer is the value.
    #[serde(default)]
    pub result: WebhookResult,
    /// Secrets whose keys templates may use, by name (`{{ auth.token }}`).
    #[serde(default, deserialize_with = "null_default")]
    pub secrets: Vec<WebhookSecret>,
    /// PEM, base64: the roots to trust instead of the built-in ones.
    #[serde(default)]
    pub ca_bundle: Option<String>,
    /// The CA from a Secret or ConfigMap key.
    #[serde(default)]
    pub ca_provider: Option<CaProvider>,
}

/// `webhook.result`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub struct WebhookResult {
    /// JSONPath (RFC 9535) into the answer; the whole answer when absent.
    #[serde(default)]
    pub json_path: Option<String>,
}

/// `webhook.secrets[]`.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub struct WebhookSecret {
    /// Name the templates use.
    #[serde(default)]
    pub name: String,
    /// The Secret (all its keys).
    #[serde(default)]
    pub secret_ref: SecretKeySelector,
}


/// A webhook store answered from the responses prefetched into the world.
pub struct WebhookClient<'w> {
    world: &'w World,
    store: &'w str,
}

impl<'w> WebhookClient<'w> {
    /// Reads `store`'s prefetched answers.
    pub fn new(world: &'w World, store: &'w str) -> Self {
        Self { world, store }
    }

    fn answer(
        &self,
        key: &str,
        property: Option<&str>,
        version: Option<&String>,
    ) -> Result<Value, FetchError> {
        let read_key = read_key(key, property);
        let bytes = prefetched(self.world, self.store, &read_key, key, version)?;
        serde_json::from_slice(bytes.expose()).map_err(|_| {
            FetchError::new(format!("{}: the answer for {key} is not JSON", self.store))
        })
    }
}

impl SecretsClient for WebhookClient<'_> {
    fn get_secret(&self, remote_ref: &RemoteRef) -> Result<SecretBytes, FetchError> {
        let value = self.answer(
            &remote_ref.key,
            remote_ref.property.as_deref(),
            remote_ref.version.as_ref(),
        )?;
        Ok(SecretBytes::new(json_result_bytes(value)))
    }

    fn get_secret_map(&self, remote_ref: &RemoteRef) -> Result<SecretMap, FetchError> {
        match self.answer(&remote_ref.key, None, remote_ref.version.as_ref())? {
            Value::Object(map) => Ok(map
                .iter()
                .map(|(k, v)| (k.clone(), SecretBytes::new(remote_value_bytes(v))))
                .collect()),
            _ => Err(FetchError::new(format!(
                "{}: the answer for {} is not a JSON object",
                self.store, remote_ref.key
            ))),
        }
    }

    fn get_all_secrets(&self, _: &FindRef) -> Result<SecretMap, FetchError> {
        Err(FetchError::new(format!(
            "{}: find is not supported by the webhook provider",
            self.store
        )))
    }
}


/// Whether a rendered url's path holds a `.` or `..` segment (also as `%2e`, with `\`
/// for `/`, or split by a tab or newline, which the parser drops), which the URL parser
/// resolves: `/secrets/../admin` is sent as `/admin`. ESO's Go client sends the path as
/// written; here a key a tenant writes could move the store's request, headers and all,
/// to another path of the server.
fn moves_path(url: &str) -> bool {
    let cleaned: String = url
        .chars()
        .filter(|c| !matches!(c, '\t' | '\n' | '\r'))
        .map(|c| if c == '\\' { '/' } else { c })
        .collect();
    let after_scheme = cleaned.split_once("://").map_or(cleaned.as_str(), |(_, rest)| rest);
    let path = after_scheme.find('/').map_or("", |i| &after_scheme[i..]);
    let path = path.split(['?', '#']).next().unwrap_or_default();
    path.split('/').any(|segment| {
        let segment = segment.to_ascii_lowercase().replace("%2e", ".");
        segment == "." || segment == ".."
    })
}

#[cfg(test)]
mod tests {
    use super::moves_path;

    #[test]
    fn dot_segments_in_the_rendered_path_are_found_and_the_query_is_left_alone() {
        for url in [
            "https://h/secrets/../admin",
            "https://h/secrets/%2E%2e/admin",
            "https://h/secrets/x/..\\..\\admin",
            "https://h/secrets/.\t./admin",
            "https://h/secrets/./x",
            "https://h/..",
        ] {
            assert!(moves_path(url), "{url}");
        }
        for url in [
            "https://h/secrets/app",
            "https://h/secrets/a..b",
            "https://h/secrets/x?name=../admin",
            "https://h/secrets/x#..",
            "https://h",
        ] {
            assert!(!moves_path(url), "{url}");
        }
    }
}
