//! The identity a Kubernetes store reads with: its credentials (read one by one with
//! courier's own client), the client built from them, and ServiceAccount tokens. Knows
//! nothing of the store's manifest: `kubernetes.rs` resolves what to use and asks here.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use k8s_openapi::api::authentication::v1::{TokenRequest, TokenRequestSpec};
use k8s_openapi::api::core::v1::{ConfigMap, Secret, ServiceAccount};
use kube::Config;
use kube::api::{Api, PostParams};
use kube::config::{
    AuthInfo, Cluster, Context, KubeConfigOptions, Kubeconfig, NamedCluster, NamedContext,
};
use secrecy::SecretString;
use serde::Deserialize;
use std::time::Duration;

use super::provider::FetchContext;
use crate::core::model::SecretKeySelector;
use crate::core::secret_bytes::SecretBytes;

/// Where the store's API server is: `None` for the cluster courier talks to.
pub(super) struct Server<'a> {
    /// `server.url`, unless it names courier's own cluster.
    pub(super) url: Option<&'a str>,
    /// `server.caBundle`.
    pub(super) ca_bundle: Option<&'a str>,
    /// `server.caProvider`, with the namespace it is read from.
    pub(super) ca_provider: Option<(&'a CaProvider, String)>,
}

/// `server.caProvider` (and the `caProvider` of the `vault`, `openBao` and `webhook`
/// providers, [`super::tls`]).
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq, Hash)]
#[serde(rename_all = "camelCase")]
pub struct CaProvider {
    /// `Secret` or `ConfigMap`.
    #[serde(default, rename = "type")]
    pub type_: String,
    /// Object name.
    #[serde(default)]
    pub name: String,
    /// Key holding the PEM bundle.
    #[serde(default)]
    pub key: String,
    /// Namespace: required for a ClusterSecretStore, empty for a SecretStore.
    #[serde(default)]
    pub namespace: Option<String>,
}

/// A Secret key courier reads with its own identity: credential material only.
#[derive(Debug, Clone)]
pub(super) struct CredentialRef {
    namespace: String,
    name: String,
    key: String,
}

impl CredentialRef {
    pub(super) fn new(selector: &SecretKeySelector, namespace: String) -> Self {
        Self {
            namespace,
            name: selector.name.clone(),
            key: selector.key.clone(),
        }
    }
}

/// The identity a store reads with, resolved for one ExternalSecret namespace.
#[derive(Debug, Clone)]
pub(super) enum Credential {
    ServiceAccount {
        namespace: String,
        name: String,
        audiences: Vec<String>,
    },
    Token(CredentialRef),
    Cert {
        cert: CredentialRef,
        key: CredentialRef,
    },
    Kubeconfig(CredentialRef),
}

impl Credential {
    /// How errors name the identity: never a token, only where it comes from.
    pub(super) fn describe(&self) -> String {
        match self {
            Credential::ServiceAccount {
                namespace, name, ..
            } => format!("ServiceAccount {namespace}/{name}"),
            Credential::Token(r) => format!("the token in Secret {}/{}", r.namespace, r.name),
            Credential::Cert { cert, .. } => format!(
                "the client certificate in Secret {}/{}",
                cert.namespace, cert.name
            ),
            Credential::Kubeconfig(r) => {
                format!("the kubeconfig in Secret {}/{}", r.namespace, r.name)
            }
        }
    }
}

pub(super) fn status_of(error: &kube::Error) -> Option<u16> {
    match error {
        kube::Error::Api(status) => Some(status.code),
        _ => None,
    }
}

/// The API server's message (it names objects and identities, never values), or the
/// kind of transport failure.
pub(super) fn api_message(error: &kube::Error) -> String {
    match error {
        kube::Error::Api(status) => format!("{} ({})", status.message, status.code),
        other => other.to_string(),
    }
}

/// A client that authenticates as the store's identity and nothing else: none of
/// courier's credentials, impersonation or headers carry over.
pub(super) async fn identity_client(
    server: &Server<'_>,
    credential: &Credential,
    context: &FetchContext,
) -> Result<kube::Client, String> {
    let Some((courier, courier_config)) = &context.cluster else {
        return Err("reading with the store's identity needs a live cluster".into());
    };
    let mut config = match credential {
        Credential::Kubeconfig(reference) => {
            let text = credential_text(courier, reference, "authRef").await?;
            let kubeconfig = Kubeconfig::from_yaml(&text).map_err(|_| {
                format!(
                    "authRef: Secret {}/{} key {:?} is not a kubeconfig",
                    reference.namespace, reference.name, reference.key
                )
            })?;
            self_contained(&kubeconfig)?;
            Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                .await
                .map_err(|e| format!("authRef: the kubeconfig is not usable: {e}"))?
        }
        _ => {
            let mut config = server_config(server, courier, courier_config).await?;
            let mut auth = AuthInfo::default();
            match credential {
                Credential::ServiceAccount {
                    namespace,
                    name,
                    audiences,
                } => {
                    let token =
                        service_account_token(courier, context, namespace, name, audiences).await?;
                    auth.token = Some(SecretString::from(text_of(&token)?));
                }
                Credential::Token(reference) => {
                    let token =
                        credential_text(courier, reference, "auth.token.bearerToken").await?;
                    auth.token = Some(SecretString::from(token.trim().to_owned()));
                }
                Credential::Cert { cert, key } => {
                    let cert_pem = credential_text(courier, cert, "auth.cert.clientCert").await?;
                    let key_pem = credential_text(courier, key, "auth.cert.clientKey").await?;
                    auth.client_certificate_data = Some(STANDARD.encode(cert_pem));
                    auth.client_key_data = Some(SecretString::from(STANDARD.encode(key_pem)));
                }
                Credential::Kubeconfig(_) => unreachable!("handled above"),
            }
            config.auth_info = auth;
            config
        }
    };
    config.headers.clear();
    let builder = kube::client::ClientBuilder::try_from(config)
        .map_err(|e| format!("cannot build a client for the store: {e}"))?;
    Ok(match context.requests.clone() {
        Some(counter) => {
            let count = tower::util::MapRequestLayer::new(move |request| {
                counter.inc();
                request
            });
            builder.with_layer(&count).build()
        }
        None => builder.build(),
    })
}

/// The API server and CA for `auth` (not `authRef`): `server.url` with its CA, or the
/// cluster courier talks to, with courier's CA.
async fn server_config(
    server: &Server<'_>,
    courier: &kube::Client,
    courier_config: &Config,
) -> Result<Config, String> {
    let Some(url) = server.url else {
        let mut config = courier_config.clone();
        config.auth_info = AuthInfo::default();
        return Ok(config);
    };
    let ca_pem = match (server.ca_bundle, &server.ca_provider) {
        (Some(bundle), _) => Some(
            STANDARD
                .decode(bundle.trim())
                .map_err(|_| "server.caBundle is not base64".to_owned())?,
        ),
        (None, Some((provider, ca_namespace))) => {
            Some(ca_from_provider(courier, provider, ca_namespace).await?)
        }
        // Neither: the system's trust store, as kubectl and ESO do.
        (None, None) => None,
    };
    let kubeconfig = Kubeconfig {
        clusters: vec![NamedCluster {
            name: "store".into(),
            cluster: Some(Cluster {
                server: Some(url.to_owned()),
                certificate_authority_data: ca_pem.map(|pem| STANDARD.encode(pem)),
                ..Cluster::default()
            }),
            ..NamedCluster::default()
        }],
        contexts: vec![NamedContext {
            name: "store".into(),
            context: Some(Context {
                cluster: "store".into(),
                ..Context::default()
            }),
            ..NamedContext::default()
        }],
        current_context: Some("store".into()),
        ..Kubeconfig::default()
    };
    Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(|e| format!("server: {e}"))
}

/// A kubeconfig from a Secret may hold only inline material: a file path, an exec
/// plugin or an auth provider would make courier use its own files or run commands
/// (its own ServiceAccount token, for one).
fn self_contained(kubeconfig: &Kubeconfig) -> Result<(), String> {
    for named in &kubeconfig.auth_infos {
        if let Some(auth) = &named.auth_info {
            let external = [
                ("tokenFile", auth.token_file.is_some()),
                ("client-certificate", auth.client_certificate.is_some()),
                ("client-key", auth.client_key.is_some()),
                ("exec", auth.exec.is_some()),
                ("auth-provider", auth.auth_provider.is_some()),
            ];
            if let Some((field, _)) = external.iter().find(|(_, used)| *used) {
                return Err(format!(
                    "authRef: the kubeconfig's user {:?} uses {field}; only inline credentials (token, client-certificate-data, client-key-data) are accepted",
                    named.name
                ));
            }
        }
    }
    for named in &kubeconfig.clusters {
        if named
            .cluster
            .as_ref()
            .is_some_and(|c| c.certificate_authority.is_some())
        {
            return Err(format!(
                "authRef: the kubeconfig's cluster {:?} uses certificate-authority (a file); use certificate-authority-data",
                named.name
            ));
        }
    }
    Ok(())
}

/// One key of a credential Secret, read with courier's own identity.
async fn credential_bytes(
    courier: &kube::Client,
    reference: &CredentialRef,
    field: &str,
) -> Result<SecretBytes, String> {
    let CredentialRef {
        namespace,
        name,
        key,
    } = reference;
    let secret = Api::<Secret>::namespaced(courier.clone(), namespace)
        .get_opt(name)
        .await
        .map_err(|e| {
            format!(
                "{field}: cannot read Secret {namespace}/{name}: {}",
                api_message(&e)
            )
        })?
        .ok_or_else(|| format!("{field}: Secret {namespace}/{name} not found"))?;
    secret
        .data
        .unwrap_or_default()
        .remove(key)
        .map(|v| SecretBytes::new(v.0))
        .ok_or_else(|| format!("{field}: key {key:?} not found in Secret {namespace}/{name}"))
}

async fn credential_text(
    courier: &kube::Client,
    reference: &CredentialRef,
    field: &str,
) -> Result<String, String> {
    let bytes = credential_bytes(courier, reference, field).await?;
    text_of(&bytes).map_err(|_| {
        format!(
            "{field}: key {:?} of Secret {}/{} is not text",
            reference.key, reference.namespace, reference.name
        )
    })
}

fn text_of(bytes: &SecretBytes) -> Result<String, String> {
    bytes
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| "not UTF-8 text".to_owned())
}

async fn ca_from_provider(
    courier: &kube::Client,
    provider: &CaProvider,
    namespace: &str,
) -> Result<Vec<u8>, String> {
    let (name, key) = (&provider.name, &provider.key);
    if provider.type_ == "ConfigMap" {
        let map = Api::<ConfigMap>::namespaced(courier.clone(), namespace)
            .get_opt(name)
            .await
            .map_err(|e| {
                format!(
                    "server.caProvider: cannot read ConfigMap {namespace}/{name}: {}",
                    api_message(&e)
                )
            })?
            .ok_or_else(|| format!("server.caProvider: ConfigMap {namespace}/{name} not found"))?;
        return map
            .data
            .unwrap_or_default()
            .remove(key)
            .map(String::into_bytes)
            .ok_or_else(|| {
                format!("server.caProvider: key {key:?} not found in ConfigMap {namespace}/{name}")
            });
    }
    let reference = CredentialRef {
        namespace: namespace.to_owned(),
        name: name.clone(),
        key: key.clone(),
    };
    credential_bytes(courier, &reference, "server.caProvider")
        .await
        .map(|bytes| bytes.expose().to_vec())
}

/// A token for the ServiceAccount, from the cache or a fresh TokenRequest (1 h).
async fn service_account_token(
    courier: &kube::Client,
    context: &FetchContext,
    namespace: &str,
    name: &str,
    audiences: &[String],
) -> Result<SecretBytes, String> {
    let key = (namespace.to_owned(), name.to_owned(), audiences.to_vec());
    if let Some(token) = context.tokens.get(&key) {
        return Ok(token);
    }
    let request = TokenRequest {
        spec: Some(TokenRequestSpec {
            audiences: (!audiences.is_empty()).then(|| audiences.to_vec()),
            expiration_seconds: Some(TOKEN_SECONDS),
            ..TokenRequestSpec::default()
        }),
        ..TokenRequest::default()
    };
    let answer = Api::<ServiceAccount>::namespaced(courier.clone(), namespace)
        .create_token_request(name, &PostParams::default(), &request)
        .await
        .map_err(|e| match status_of(&e) {
            Some(404) => format!("auth.serviceAccount: ServiceAccount {namespace}/{name} not found"),
            Some(403) => format!(
                "auth.serviceAccount: courier may not request a token for ServiceAccount {namespace}/{name} (serviceaccounts/token create is forbidden)\nhint: bind courier's token ClusterRole in {namespace} (the chart's rbac.tokenRequestNamespaces)"
            ),
            _ => format!(
                "auth.serviceAccount: cannot request a token for ServiceAccount {namespace}/{name}: {}",
                api_message(&e)
            ),
        })?;
    let token = answer
        .status
        .and_then(|s| s.token)
        .map(SecretBytes::from)
        .ok_or_else(|| {
            format!("auth.serviceAccount: no token for ServiceAccount {namespace}/{name}")
        })?;
    let lifetime = Duration::from_secs(TOKEN_SECONDS as u64);
    context.tokens.put(key, token.clone(), lifetime);
    Ok(token)
}

/// Lifetime of requested ServiceAccount tokens, as ESO requests them.
pub(super) const TOKEN_SECONDS: i64 = 3600;
