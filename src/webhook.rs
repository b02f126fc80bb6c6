//! The webhook provider: values from an HTTP endpoint of your own, read before planning.
//! URL, body and headers are minijinja templates over `remoteRef` (key, version,
//! property) and the named credential Secrets (`{{ auth.token }}`); `result.jsonPath`
//! (RFC 9535) picks the value out of the JSON answer. Each distinct request is sent once
//! per reconcile. Errors quote the URL template, never the rendered URL (it may carry a
//! token) nor a value.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt as _;
use minijinja::value::Value as TemplateValue;
use serde_json::Value;

use crate::model::WebhookProvider;
use crate::plan::{RemoteConfig, RemoteRequests};
use crate::secret_bytes::SecretBytes;
use crate::world::{RemoteError, World};

/// A read (key with property, version) and what it returned.
type Answered = ((String, Option<String>), Result<SecretBytes, RemoteError>);

const CONCURRENCY: usize = 16;
const ATTEMPTS: u32 = 3;
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// Sends every webhook request `requests` names; returns how many HTTP requests were sent.
pub async fn prefetch(requests: &RemoteRequests, world: &mut World) -> u64 {
    let mut sent = 0;
    for (store, wanted) in &requests.stores {
        let RemoteConfig::Webhook(config) = &wanted.config else {
            continue;
        };
        let credentials = match credentials(config, &wanted.credentials_namespace, world) {
            Ok(credentials) => credentials,
            Err(message) => {
                crate::vault::fail_all(world, store, wanted, &message);
                continue;
            }
        };
        let timeout = config
            .timeout
            .as_deref()
            .and_then(crate::controller::parse_go_duration)
            .unwrap_or(DEFAULT_TIMEOUT);
        let http = match reqwest::Client::builder().timeout(timeout).build() {
            Ok(http) => http,
            Err(e) => {
                crate::vault::fail_all(
                    world,
                    store,
                    wanted,
                    &format!("cannot build an HTTP client: {e}"),
                );
                continue;
            }
        };
        let env = crate::template::environment();
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
                    let (result, attempts) = request.send(http, env, credentials).await;
                    (((read_key, version), result), attempts)
                }
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        for ((read, result), attempts) in results {
            sent += attempts;
            world
                .remote_reads
                .insert((store.clone(), read.0, read.1), result);
        }
        for pattern in &wanted.finds {
            let error = RemoteError {
                message: format!("{store}: find is not supported by the webhook provider"),
                not_found: false,
            };
            world
                .remote_finds
                .insert((store.clone(), pattern.clone()), Err(error));
        }
    }
    sent
}

/// The named Secrets' keys, as the templates see them.
fn credentials(
    config: &WebhookProvider,
    namespace: &str,
    world: &World,
) -> Result<BTreeMap<String, TemplateValue>, String> {
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
            TemplateValue::from_pairs(
                found
                    .data
                    .iter()
                    .map(|(k, v)| (k.clone(), String::from_utf8_lossy(v.expose()).into_owned())),
            ),
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
        env: &minijinja::Environment<'_>,
        credentials: &BTreeMap<String, TemplateValue>,
    ) -> (Result<SecretBytes, RemoteError>, u64) {
        let mut context: BTreeMap<String, TemplateValue> = credentials.clone();
        context.insert(
            "remoteRef".into(),
            TemplateValue::from_pairs([
                ("key", TemplateValue::from(self.key)),
                (
                    "property",
                    TemplateValue::from(self.property.unwrap_or_default()),
                ),
                (
                    "version",
                    TemplateValue::from(self.version.unwrap_or_default()),
                ),
            ]),
        );
        let context = TemplateValue::from_pairs(context);
        let render = |source: &str, field: &str| {
            crate::template::render(env, source, &context)
                .map_err(|e| self.fail(format!("{field}: {}", e.message), false))
        };
        let prepared = (|| {
            let url = render(&self.config.url, "url")?;
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
                    let reason = if e.is_timeout() {
                        "timed out"
                    } else if e.is_connect() {
                        "cannot connect"
                    } else {
                        "request failed"
                    };
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
