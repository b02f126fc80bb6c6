//! ESO's providers, one file each, behind one small trait ([`Provider`]): parse and
//! validate `spec.provider.<name>`, say which reads a plan needs, fetch them once per
//! reconcile. The planner sees only the pure half ([`crate::core::provider`]).
//!
//! Adding a provider (AWS Secrets Manager, say) is one new file and one line:
//!
//! 1. `src/providers/aws.rs` with a unit struct implementing [`Provider`] (`parse` turns
//!    `spec.provider.aws` into a [`StoreProvider`]; a remote provider also sets
//!    `remote_key`/`remote_reads` and implements `prefetch`);
//! 2. `aws::Aws` added to the `providers!` line below, which declares the module and
//!    registers it.

pub mod aws_validate;
mod common;
mod kubernetes_identity;
pub mod kubernetes_validate;
pub mod provider;
mod tls;

use std::sync::Arc;

use serde_json::Value;

use futures::StreamExt as _;

pub use provider::{FetchContext, FetchStats, Fetched, Provider, TokenCache};

use crate::core::provider::{
    ProviderError, ProviderRegistry, RemoteRequests, StoreInfo, StoreProvider,
};
use crate::core::world::World;

/// Declares each provider's module and registers it in [`PROVIDERS`].
macro_rules! providers {
    ($($module:ident :: $provider:ident),* $(,)?) => {
        $(pub mod $module;)*
        /// Every provider courier knows, by `spec.provider.<name>`.
        pub static PROVIDERS: &[&dyn Provider] = &[$(&$module::$provider),*];
    };
}

providers![
    aws::Aws,
    kubernetes::Kubernetes,
    openbao::OpenBao,
    vault::Vault,
    webhook::Webhook
];

/// The registry the planner parses stores with: [`PROVIDERS`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Registry;

impl ProviderRegistry for Registry {
    fn parse(
        &self,
        name: &str,
        config: &Value,
        store: &StoreInfo<'_>,
    ) -> Result<Arc<dyn StoreProvider>, ProviderError> {
        let provider =
            PROVIDERS
                .iter()
                .find(|p| p.name() == name)
                .ok_or_else(|| ProviderError::Unknown {
                    known: PROVIDERS.iter().map(|p| p.name()).collect(),
                })?;
        let unsupported = crate::core::schema::unimplemented_provider_fields(
            name,
            config,
            provider.implemented(),
        );
        if !unsupported.is_empty() {
            return Err(ProviderError::Unsupported(unsupported));
        }
        provider
            .parse(config, store)
            .map_err(ProviderError::Invalid)
    }
}

/// How many stores are fetched at once: each is a login or TokenRequest and a LIST or a
/// few reads of its own (a Vault store also runs its reads 16 at a time).
const STORES_AT_ONCE: usize = 8;

/// Fetches everything `requests` names into the world, `STORES_AT_ONCE` stores at a
/// time (none depends on another); the planner then reads it there.
pub async fn prefetch(
    requests: &RemoteRequests,
    world: &mut World,
    context: &FetchContext,
) -> FetchStats {
    let shared: &World = world;
    let fetches: Vec<(FetchStats, Fetched)> = futures::stream::iter(requests.stores.values())
        .map(|wanted| async move {
            let mut fetched = Fetched::default();
            let name = wanted.store.provider_name();
            let stats = match PROVIDERS.iter().find(|p| p.name() == name) {
                Some(provider) => {
                    provider
                        .prefetch(wanted, shared, context, &mut fetched)
                        .await
                }
                None => FetchStats::default(),
            };
            (stats, fetched)
        })
        .buffer_unordered(STORES_AT_ONCE)
        .collect()
        .await;
    let mut stats = FetchStats::default();
    for (store_stats, fetched) in fetches {
        stats += store_stats;
        fetched.into_world(world);
    }
    tracing::info!(
        reads = stats.reads,
        lists = stats.lists,
        logins = stats.logins,
        webhook_requests = stats.webhook_requests,
        "read remote stores"
    );
    stats
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::load::{Origin, StoreKind};

    fn parse(kind: StoreKind, provider: &str, config: Value) -> Result<(), String> {
        let origin = Origin {
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
            live: true,
        };
        match Registry.parse(provider, &config, &info) {
            Ok(_) => Ok(()),
            Err(ProviderError::Invalid(message)) => Err(message),
            Err(ProviderError::Unsupported(fields)) => Err(fields
                .iter()
                .map(|e| format!("{}: {}", e.field, e.message))
                .collect::<Vec<_>>()
                .join("\n")),
            Err(other) => Err(format!("{other:?}")),
        }
    }

    #[test]
    fn every_field_a_provider_implements_is_one_eso_defines() {
        for provider in PROVIDERS {
            for path in provider.implemented() {
                assert!(
                    crate::core::schema::eso_defines_provider_field(provider.name(), path),
                    "{}: {path} is not in ESO's schema",
                    provider.name()
                );
            }
        }
        assert!(!crate::core::schema::eso_defines_provider_field(
            "vault",
            "auth.nope"
        ));
        assert!(crate::core::schema::eso_defines_provider_field(
            "webhook",
            "secrets[].secretRef.key"
        ));
    }

    #[test]
    fn a_field_eso_defines_and_a_provider_does_not_read_is_refused_by_its_path() {
        let token = serde_json::json!({"tokenSecretRef": {"name": "t", "key": "k", "namespace": "central"}});
        let refused = |provider: &str, config: Value| {
            parse(StoreKind::ClusterSecretStore, provider, config).unwrap_err()
        };
        let hint = "hint: remove it; README.md lists what courier does not implement";
        // Vault: consistency headers, checkAndSet, and auth methods courier lacks.
        let vault = serde_json::json!({"server": "https://v", "namespace": "ns", "path": "kv",
            "version": "v1", "headers": {"X-Team": "a"}, "auth": token.clone()});
        assert_eq!(
            parse(StoreKind::ClusterSecretStore, "vault", vault.clone()),
            Ok(())
        );
        for (field, value) in [
            ("readYourWrites", serde_json::json!(true)),
            ("forwardInconsistent", serde_json::json!(false)),
            ("checkAndSet", serde_json::json!({"required": true})),
        ] {
            let mut config = vault.clone();
            config[field] = value;
            assert_eq!(
                refused("vault", config),
                format!(
                    "spec.provider.vault.{field}: {field} is not supported by courier yet\n{hint}"
                )
            );
        }
        let mut config = vault.clone();
        config["auth"] = serde_json::json!({"namespace": "admin",
            "jwt": {"path": "jwt", "role": "r", "secretRef": {"name": "j", "key": "k", "namespace": "central"}}});
        assert_eq!(
            refused("vault", config),
            format!(
                "spec.provider.vault.auth.namespace: namespace is not supported by courier yet\n{hint}\n\
                spec.provider.vault.auth.jwt: jwt is not supported by courier yet\n{hint}"
            )
        );
        let mut config = vault.clone();
        config["auth"] = serde_json::json!({"kubernetes": {"mountPath": "k8s", "role": "r",
            "serviceAccountRef": {"name": "sa", "namespace": "central", "audiences": ["vault"]}}});
        config["headers"] = Value::Null;
        assert_eq!(
            parse(StoreKind::ClusterSecretStore, "vault", config),
            Ok(()),
            "null is absent"
        );
        // A private CA (caProvider; caBundle in tls.rs's tests) is read by vault, openBao
        // and webhook.
        let ca = serde_json::json!({"type": "Secret", "name": "ca", "key": "ca.crt", "namespace": "central"});
        let mut config = vault.clone();
        config["caProvider"] = ca.clone();
        assert_eq!(
            parse(StoreKind::ClusterSecretStore, "vault", config),
            Ok(())
        );
        // Vault's client certificate: both references or neither, as ESO's Validate.
        let mut config = vault.clone();
        config["tls"] = serde_json::json!({"certSecretRef": {"name": "c", "namespace": "central"}});
        assert_eq!(
            parse(StoreKind::ClusterSecretStore, "vault", config.clone()),
            Err("tls: when provided, both tls.certSecretRef and tls.keySecretRef should be provided".into())
        );
        config["tls"]["keySecretRef"] = serde_json::json!({"name": "c"});
        let referent = parse(StoreKind::ClusterSecretStore, "vault", config.clone()).unwrap_err();
        assert!(
            referent.starts_with(
                "tls.keySecretRef.namespace: a ClusterSecretStore's reference without a namespace"
            ),
            "{referent}"
        );
        config["tls"]["keySecretRef"]["namespace"] = serde_json::json!("central");
        assert_eq!(
            parse(StoreKind::ClusterSecretStore, "vault", config),
            Ok(())
        );
        // openBao: auth.namespace is read.
        let bao = serde_json::json!({"server": "https://b", "caProvider": ca.clone(),
            "auth": {"namespace": "team", "userPass": {"path": "up", "username": "u",
                "secretRef": {"name": "p", "key": "k", "namespace": "central"}}}});
        assert_eq!(
            parse(StoreKind::ClusterSecretStore, "openBao", bao.clone()),
            Ok(())
        );
        // webhook: NTLM; a list's items are walked.
        let webhook = serde_json::json!({"url": "https://w", "method": "POST", "headers": {"A": "b"},
            "body": "{}", "timeout": "5s", "result": {"jsonPath": "$.v"},
            "secrets": [{"name": "auth", "secretRef": {"name": "s", "key": "k", "namespace": "central"}}]});
        assert_eq!(
            parse(StoreKind::ClusterSecretStore, "webhook", webhook.clone()),
            Ok(())
        );
        let mut config = webhook.clone();
        config["caProvider"] = ca;
        assert_eq!(
            parse(StoreKind::ClusterSecretStore, "webhook", config.clone()),
            Ok(())
        );
        config["auth"] = serde_json::json!({"ntlm": {}});
        let message = refused("webhook", config);
        assert_eq!(
            message,
            format!("spec.provider.webhook.auth: auth is not supported by courier yet\n{hint}")
        );
        // aws: customSessionTags and the PushSecret-only secretsManager.
        let aws = serde_json::json!({"service": "SecretsManager", "region": "eu-west-1", "prefix": "p/",
            "role": "arn:aws:iam::1:role/r", "externalID": "x", "sessionTags": [{"key": "a", "value": "b"}],
            "transitiveTagKeys": ["a"], "sessionTagsPolicy": "None"});
        assert_eq!(
            parse(StoreKind::ClusterSecretStore, "aws", aws.clone()),
            Ok(())
        );
        for (field, value) in [
            ("customSessionTags", serde_json::json!({"team": "a"})),
            (
                "secretsManager",
                serde_json::json!({"forceDeleteWithoutRecovery": true}),
            ),
        ] {
            let mut config = aws.clone();
            config[field] = value;
            assert_eq!(
                refused("aws", config),
                format!(
                    "spec.provider.aws.{field}: {field} is not supported by courier yet\n{hint}"
                )
            );
        }
        // kubernetes: courier implements every field ESO defines.
        let everything = serde_json::json!({"remoteNamespace": "c",
            "server": {"url": "https://k:6443", "caBundle": "Zm9v", "caProvider": {"type": "ConfigMap", "name": "ca", "key": "ca.crt"}},
            "auth": {"serviceAccount": {"name": "a", "audiences": ["x"]}, "token": {"bearerToken": {"name": "t", "key": "k"}},
                "cert": {"clientCert": {"name": "c", "key": "k"}, "clientKey": {"name": "c", "key": "k"}}},
            "authRef": {"name": "kc", "key": "k"}});
        assert_eq!(
            crate::core::schema::unimplemented_provider_fields(
                "kubernetes",
                &everything,
                kubernetes::IMPLEMENTED
            ),
            []
        );
    }

    #[test]
    fn a_secret_store_cannot_borrow_another_namespaces_credentials() {
        let foreign = serde_json::json!({"name": "root", "key": "token", "namespace": "central"});
        let cases = [
            (
                "vault",
                serde_json::json!({"server": "https://v", "auth": {"tokenSecretRef": foreign}}),
                "auth.tokenSecretRef.namespace",
            ),
            (
                "webhook",
                serde_json::json!({"url": "https://w", "secrets": [{"name": "auth", "secretRef": foreign}]}),
                "secrets[auth].secretRef.namespace",
            ),
            (
                "kubernetes",
                serde_json::json!({"remoteNamespace": "central", "auth": {"token": {"bearerToken": foreign}}}),
                "auth.token.bearerToken.namespace",
            ),
            (
                "kubernetes",
                serde_json::json!({"remoteNamespace": "central", "auth": {"serviceAccount": {"name": "x", "namespace": "central"}}}),
                "auth.serviceAccount.namespace",
            ),
            (
                "aws",
                serde_json::json!({"service": "SecretsManager", "region": "eu-west-1", "auth": {"secretRef": {
                    "accessKeyIDSecretRef": {"name": "k", "key": "id"},
                    "secretAccessKeySecretRef": foreign}}}),
                "auth.secretRef.secretAccessKeySecretRef.namespace",
            ),
            (
                "aws",
                serde_json::json!({"service": "ParameterStore", "region": "eu-west-1", "auth": {"jwt": {
                    "serviceAccountRef": {"name": "x", "namespace": "central"}}}}),
                "auth.jwt.serviceAccountRef.namespace",
            ),
        ];
        for (provider, config, field) in cases {
            let refused = parse(StoreKind::SecretStore, provider, config.clone()).unwrap_err();
            assert!(
                refused.starts_with(&format!(
                    "{field}: a SecretStore reads credentials from its own namespace (team-a), not central"
                )),
                "{provider}: {refused}"
            );
            assert_eq!(
                parse(StoreKind::ClusterSecretStore, provider, config),
                Ok(()),
                "{provider}: a ClusterSecretStore may name any namespace"
            );
        }
    }

    #[test]
    fn ca_provider_namespace_follows_the_store_kind() {
        let with_ca = |namespace: Option<&str>| {
            serde_json::json!({"remoteNamespace": "c", "auth": {"serviceAccount": {"name": "r"}},
                "server": {"url": "https://other:6443", "caProvider": {"type": "ConfigMap", "name": "ca", "key": "ca.crt", "namespace": namespace}}})
        };
        assert!(parse(StoreKind::SecretStore, "kubernetes", with_ca(Some("c"))).is_err());
        assert!(parse(StoreKind::SecretStore, "kubernetes", with_ca(None)).is_ok());
        assert!(parse(StoreKind::ClusterSecretStore, "kubernetes", with_ca(None)).is_err());
        assert!(
            parse(
                StoreKind::ClusterSecretStore,
                "kubernetes",
                with_ca(Some("c"))
            )
            .is_ok()
        );
    }

    #[test]
    fn a_live_kubernetes_store_must_name_an_identity() {
        let bare = serde_json::json!({"remoteNamespace": "c"});
        let refused = parse(StoreKind::ClusterSecretStore, "kubernetes", bare).unwrap_err();
        assert!(refused.starts_with("names no identity"), "{refused}");
    }
}
