//! A store's private CA (`caBundle`, `caProvider`) for the `vault`, `openBao` and
//! `webhook` providers, as ESO v2.9's `esutils.FetchCACertFromSource`
//! (runtime/esutils/utils.go) and the providers' clients use it:
//!
//! - `caBundle` wins when set (`caProvider` is then not read at all). Its bytes (the
//!   CRD's `format: byte`, so base64 in the manifest) must start with a PEM certificate;
//!   bytes that are not PEM are base64-decoded once more and tried again (ESO's
//!   `base64decode`).
//! - `caProvider` names a Secret or ConfigMap key holding PEM. A SecretStore reads it in
//!   its own namespace (a `namespace` naming another one is refused, ESO's
//!   `errNamespaceNotAllowed`); a ClusterSecretStore must name the namespace (ESO:
//!   "missing namespace on caProvider secret"): the CA is never read in a tenant's
//!   namespace nor from a file. A Secret is read from the world as the store's other
//!   credentials are (its namespace is listed with them); a ConfigMap is read from the
//!   files, or, live, with one GET under courier's own identity.
//! - With a CA, its certificates are the ONLY roots the store's client trusts (ESO builds
//!   an empty `x509.CertPool` and appends the CA to it): the built-in roots are off.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE};
use k8s_openapi::api::core::v1::ConfigMap;

use super::kubernetes_identity::{CaProvider, api_message};
use super::provider::FetchContext;
use crate::core::load::StoreKind;
use crate::core::provider::StoreInfo;
use crate::core::world::World;

/// Where a store's CA comes from, checked when the store is parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CaSource {
    /// `caBundle`, decoded: PEM.
    Bundle(Vec<u8>),
    /// A key of a Secret in the world.
    Secret {
        /// Where the Secret is.
        namespace: String,
        /// Its name.
        name: String,
        /// The key holding the PEM.
        key: String,
    },
    /// A key of a ConfigMap.
    ConfigMap {
        /// Where the ConfigMap is.
        namespace: String,
        /// Its name.
        name: String,
        /// The key holding the PEM.
        key: String,
    },
}

impl CaSource {
    /// The namespace whose Secrets the world must hold for this CA (a Secret's).
    pub fn world_namespace(&self) -> Option<String> {
        match self {
            CaSource::Secret { namespace, .. } => Some(namespace.clone()),
            _ => None,
        }
    }
}

/// ESO's `base64decode` of a CA bundle's bytes: PEM whose first block is a certificate,
/// else the bytes base64-decoded (standard, then URL alphabet) and checked again.
fn bundle_pem(bytes: Vec<u8>) -> Result<Vec<u8>, String> {
    fn certificate(bytes: &[u8]) -> Result<(), String> {
        let (_, pem) =
            x509_parser::pem::parse_x509_pem(bytes).map_err(|_| "not valid PEM data".to_owned())?;
        pem.parse_x509()
            .map(|_| ())
            .map_err(|e| format!("the first PEM block is not a certificate ({e})"))
    }
    if certificate(&bytes).is_ok() {
        return Ok(bytes);
    }
    let text = String::from_utf8_lossy(&bytes);
    let again = STANDARD
        .decode(text.trim())
        .or_else(|_| URL_SAFE.decode(text.trim()))
        .unwrap_or(bytes);
    certificate(&again)
        .map_err(|why| format!("caBundle: failed to parse the certificate: {why}"))?;
    Ok(again)
}

/// Checks a store's `caBundle` and `caProvider` as ESO does before it reads them.
pub fn parse_ca(
    bundle: Option<&str>,
    provider: Option<&CaProvider>,
    store: &StoreInfo<'_>,
) -> Result<Option<CaSource>, String> {
    if let Some(bundle) = bundle.map(str::trim).filter(|b| !b.is_empty()) {
        let bytes = STANDARD
            .decode(bundle)
            .map_err(|_| "caBundle is not base64".to_owned())?;
        return bundle_pem(bytes).map(|pem| Some(CaSource::Bundle(pem)));
    }
    let Some(provider) = provider else {
        return Ok(None);
    };
    let named = provider.namespace.as_deref().filter(|n| !n.is_empty());
    let namespace = match store.kind {
        StoreKind::SecretStore => {
            store.check_reference("caProvider", named)?;
            store.namespace.unwrap_or_default().to_owned()
        }
        StoreKind::ClusterSecretStore => named
            .ok_or(
                "caProvider.namespace: missing namespace on caProvider secret (a ClusterSecretStore's CA is read in the namespace it names)\nhint: name the namespace that holds the Secret or ConfigMap",
            )?
            .to_owned(),
    };
    let (name, key) = (provider.name.clone(), provider.key.clone());
    match provider.type_.as_str() {
        "Secret" => Ok(Some(CaSource::Secret {
            namespace,
            name,
            key,
        })),
        "ConfigMap" => Ok(Some(CaSource::ConfigMap {
            namespace,
            name,
            key,
        })),
        other => Err(format!(
            "caProvider.type: unsupported CA provider type: {other:?} (Secret or ConfigMap)"
        )),
    }
}

/// The CA's PEM: the bundle, or the key of the object `caProvider` names. The errors
/// name the object and the key, never what they hold.
pub async fn ca_pem(
    source: &CaSource,
    world: &World,
    context: &FetchContext,
) -> Result<Vec<u8>, String> {
    match source {
        CaSource::Bundle(pem) => Ok(pem.clone()),
        CaSource::Secret {
            namespace,
            name,
            key,
        } => {
            let Some(secret) = world.secret(namespace, name) else {
                return Err(match world.blocked_reason(namespace, name) {
                    Some(reason) => {
                        format!("caProvider: Secret {namespace}/{name} is never read: {reason}")
                    }
                    None => format!("caProvider: Secret {namespace}/{name} not found"),
                });
            };
            secret
                .data
                .get(key)
                .map(|pem| pem.expose().to_vec())
                .ok_or_else(|| {
                    format!("caProvider: key {key:?} not found in Secret {namespace}/{name}")
                })
        }
        CaSource::ConfigMap {
            namespace,
            name,
            key,
        } => {
            let data = match (world.live, context.client()) {
                (true, Some(client)) => {
                    kube::Api::<ConfigMap>::namespaced(client.clone(), namespace)
                        .get_opt(name)
                        .await
                        .map_err(|e| {
                            format!(
                                "caProvider: cannot read ConfigMap {namespace}/{name}: {}",
                                api_message(&e)
                            )
                        })?
                        .map(|map| map.data.unwrap_or_default())
                }
                _ => world
                    .config_maps
                    .get(namespace)
                    .and_then(|maps| maps.get(name))
                    .cloned(),
            };
            let data =
                data.ok_or_else(|| format!("caProvider: ConfigMap {namespace}/{name} not found"))?;
            data.get(key)
                .map(|pem| pem.clone().into_bytes())
                .ok_or_else(|| {
                    format!("caProvider: key {key:?} not found in ConfigMap {namespace}/{name}")
                })
        }
    }
}

/// `builder` trusting the CA's certificates and nothing else; `what` names the server
/// kind in the error (ESO: "cannot set Vault CA certificate").
pub fn trust_only(
    builder: reqwest::ClientBuilder,
    pem: &[u8],
    what: &str,
) -> Result<reqwest::ClientBuilder, String> {
    let certificates = reqwest::Certificate::from_pem_bundle(pem)
        .ok()
        .filter(|c| !c.is_empty())
        .ok_or_else(|| {
            format!("cannot set {what} CA certificate: the CA holds no PEM certificate")
        })?;
    let mut builder = builder.tls_built_in_root_certs(false);
    for certificate in certificates {
        builder = builder.add_root_certificate(certificate);
    }
    Ok(builder)
}

/// The store's HTTP client: with a CA (read now, from the world or the cluster), its
/// certificates are the only roots.
pub async fn client_for(
    builder: reqwest::ClientBuilder,
    ca: Option<&CaSource>,
    what: &str,
    world: &World,
    context: &FetchContext,
) -> Result<reqwest::Client, String> {
    let builder = match ca {
        None => builder,
        Some(source) => {
            let pem = ca_pem(source, world, context).await?;
            trust_only(builder, &pem, what)?
        }
    };
    builder
        .build()
        .map_err(|e| format!("cannot build an HTTP client: {e}"))
}

/// Why a request failed, without the URL (it may carry a token): timed out, cannot
/// connect, or failed; a server certificate the store does not trust is said so, and a
/// handshake the server ended (a client certificate it wants, say) too.
pub fn transport_reason(error: &reqwest::Error) -> String {
    let reason = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        let text = cause.to_string();
        if text.contains("invalid peer certificate") {
            return format!(
                "{reason}: the server's TLS certificate is not trusted ({text})\nhint: set the store's caBundle or caProvider to the CA that signed it"
            );
        }
        if text.contains("received fatal alert") {
            return format!("{reason}: the server ended the TLS handshake ({text})");
        }
        source = cause.source();
    }
    reason.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(kind: StoreKind) -> StoreInfo<'static> {
        static ORIGIN: std::sync::LazyLock<crate::core::load::Origin> =
            std::sync::LazyLock::new(|| crate::core::load::Origin {
                file: "stores.yaml".into(),
                line: 1,
            });
        static ANNOTATIONS: std::sync::LazyLock<crate::core::model::StringMap> =
            std::sync::LazyLock::new(Default::default);
        StoreInfo {
            kind,
            namespace: (kind == StoreKind::SecretStore).then_some("team-a"),
            name: "s",
            display: "Store/s",
            origin: &ORIGIN,
            annotations: &ANNOTATIONS,
            live: false,
        }
    }

    fn provider(type_: &str, namespace: Option<&str>) -> CaProvider {
        CaProvider {
            type_: type_.into(),
            name: "ca".into(),
            key: "ca.crt".into(),
            namespace: namespace.map(str::to_owned),
        }
    }

    fn certificate_pem() -> String {
        let key = rcgen::KeyPair::generate().unwrap();
        rcgen::CertificateParams::new(vec!["ca".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap()
            .pem()
    }

    #[test]
    fn the_ca_provider_namespace_follows_esos_rules() {
        let secret_store = store(StoreKind::SecretStore);
        let cluster_store = store(StoreKind::ClusterSecretStore);
        // A SecretStore: its own namespace, named or not; another one is refused.
        for named in [None, Some("team-a")] {
            assert_eq!(
                parse_ca(None, Some(&provider("Secret", named)), &secret_store),
                Ok(Some(CaSource::Secret {
                    namespace: "team-a".into(),
                    name: "ca".into(),
                    key: "ca.crt".into()
                }))
            );
        }
        let refused = parse_ca(
            None,
            Some(&provider("ConfigMap", Some("central"))),
            &secret_store,
        )
        .unwrap_err();
        assert!(refused.starts_with("caProvider.namespace: a SecretStore reads credentials from its own namespace (team-a), not central"), "{refused}");
        // A ClusterSecretStore: the namespace it names, which it must name.
        assert_eq!(
            parse_ca(
                None,
                Some(&provider("ConfigMap", Some("central"))),
                &cluster_store
            ),
            Ok(Some(CaSource::ConfigMap {
                namespace: "central".into(),
                name: "ca".into(),
                key: "ca.crt".into()
            }))
        );
        let refused = parse_ca(None, Some(&provider("Secret", None)), &cluster_store).unwrap_err();
        assert!(
            refused.starts_with("caProvider.namespace: missing namespace on caProvider secret"),
            "{refused}"
        );
        // caBundle wins: caProvider is not looked at (ESO's FetchCACertFromSource).
        let pem = certificate_pem();
        let bundle = STANDARD.encode(&pem);
        assert_eq!(
            parse_ca(
                Some(&bundle),
                Some(&provider("Secret", None)),
                &cluster_store
            ),
            Ok(Some(CaSource::Bundle(pem.clone().into_bytes())))
        );
        assert_eq!(parse_ca(None, None, &cluster_store), Ok(None));
    }

    #[test]
    fn a_ca_bundle_is_pem_or_base64_of_pem_as_esos_base64decode() {
        let cluster_store = store(StoreKind::ClusterSecretStore);
        let pem = certificate_pem();
        let twice = STANDARD.encode(STANDARD.encode(&pem));
        assert_eq!(
            parse_ca(Some(&twice), None, &cluster_store),
            Ok(Some(CaSource::Bundle(pem.into_bytes())))
        );
        assert_eq!(
            parse_ca(Some("not base64!"), None, &cluster_store),
            Err("caBundle is not base64".into())
        );
        let refused =
            parse_ca(Some(&STANDARD.encode("just text")), None, &cluster_store).unwrap_err();
        assert!(
            refused.starts_with("caBundle: failed to parse the certificate"),
            "{refused}"
        );
    }

    #[tokio::test]
    async fn a_missing_object_or_key_is_named() {
        let mut world = World::default();
        let context = FetchContext::default();
        let secret = CaSource::Secret {
            namespace: "central".into(),
            name: "ca".into(),
            key: "ca.crt".into(),
        };
        assert_eq!(
            ca_pem(&secret, &world, &context).await,
            Err("caProvider: Secret central/ca not found".into())
        );
        world.add_secret("central", "ca", crate::core::world::SourceSecret::default());
        assert_eq!(
            ca_pem(&secret, &world, &context).await,
            Err("caProvider: key \"ca.crt\" not found in Secret central/ca".into())
        );
        let map = CaSource::ConfigMap {
            namespace: "central".into(),
            name: "ca".into(),
            key: "ca.crt".into(),
        };
        assert_eq!(
            ca_pem(&map, &world, &context).await,
            Err("caProvider: ConfigMap central/ca not found".into())
        );
        world
            .config_maps
            .entry("central".into())
            .or_default()
            .insert(
                "ca".into(),
                [("ca.crt".to_owned(), "PEM".to_owned())].into(),
            );
        assert_eq!(ca_pem(&map, &world, &context).await, Ok(b"PEM".to_vec()));
    }

    #[test]
    fn a_ca_without_a_certificate_is_refused() {
        let refused = trust_only(reqwest::Client::builder(), b"nothing", "Vault").unwrap_err();
        assert_eq!(
            refused,
            "cannot set Vault CA certificate: the CA holds no PEM certificate"
        );
        assert!(
            trust_only(
                reqwest::Client::builder(),
                certificate_pem().as_bytes(),
                "Vault"
            )
            .is_ok()
        );
    }
}
