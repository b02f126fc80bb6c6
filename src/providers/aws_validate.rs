//! ESO's check of an AWS store (providers/v1/aws in ESO v2.9.0), which its store
//! controllers turn into the store's `Ready` condition. ESO first makes a client
//! (`NewClient`): it reads the `auth.secretRef` Secrets, or the `auth.jwt` ServiceAccount
//! and its `eks.amazonaws.com/role-arn` annotation; a failure there is "unable to create
//! client". Then `Validate` retrieves the credentials: the ServiceAccount's token
//! exchanged with STS (AssumeRoleWithWebIdentity), each `role` assumed (AssumeRole), or
//! the ambient chain; a failure there is "unable to validate store". Static keys without a
//! role are not sent anywhere, so ESO reads a store with wrong static keys (or a region
//! nobody serves) as valid, and so does courier. A ClusterSecretStore whose credentials are
//! read in each ExternalSecret's namespace cannot be checked; ESO counts it valid.
//!
//! courier makes the same requests with the store's own identity, through the session
//! its reads use (an STS session this process already holds for that identity counts:
//! STS accepted it within its lifetime).

use std::sync::Arc;

use super::aws::{AwsStore, Counters, ROLE_ARN_ANNOTATION, Session, TIMEOUT, credential};
use super::kubernetes_validate::Validation;
use super::provider::FetchContext;
use crate::core::provider::{StoreProvider, StoreReads};
use crate::core::world::World;

/// Checks an AWS store as ESO does; `None` for a store of another provider.
pub async fn validate_store(
    store: &Arc<dyn StoreProvider>,
    world: Option<&World>,
    context: &FetchContext,
) -> Option<Validation> {
    let aws = store.as_any().downcast_ref::<AwsStore>()?;
    if aws.referent() {
        return Some(Validation::Ready);
    }
    let empty = World::default();
    let world = world.unwrap_or(&empty);
    let display = aws.display.clone();
    // ESO's `NewClient`: the credentials' Secrets, or the ServiceAccount and its role.
    let auth = &aws.config.auth;
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
        for (field, selector) in references {
            let Some(selector) = selector else { continue };
            let namespace = aws.reference_namespace(selector.namespace.as_deref(), "");
            if let Err(message) = credential(world, context, namespace, selector, field).await {
                return Some(Validation::NoClient(format!("{display}: {message}")));
            }
        }
    } else if let Some(account) = auth
        .jwt
        .as_ref()
        .and_then(|j| j.service_account_ref.as_ref())
    {
        let Some(client) = context.client() else {
            return Some(Validation::NoClient(format!(
                "{display}: auth.jwt needs the live cluster"
            )));
        };
        let namespace = aws.reference_namespace(account.namespace.as_deref(), "");
        let api = kube::Api::<k8s_openapi::api::core::v1::ServiceAccount>::namespaced(
            client.clone(),
            &namespace,
        );
        let role = match api.get_opt(&account.name).await {
            Ok(found) => found
                .and_then(|a| a.metadata.annotations)
                .and_then(|a| a.get(ROLE_ARN_ANNOTATION).cloned())
                .filter(|r| !r.is_empty()),
            Err(e) => {
                return Some(Validation::NoClient(format!(
                    "{display}: auth.jwt.serviceAccountRef: cannot read ServiceAccount {namespace}/{}: {e}",
                    account.name
                )));
            }
        };
        if role.is_none() {
            return Some(Validation::NoClient(format!(
                "{display}: an IAM role must be associated with ServiceAccount {namespace}/{} (its {ROLE_ARN_ANNOTATION} annotation)",
                account.name
            )));
        }
    }
    // ESO's `Validate`: the credentials retrieved, with STS where they come from it.
    let http = match reqwest::Client::builder().timeout(TIMEOUT).build() {
        Ok(http) => http,
        Err(e) => {
            return Some(Validation::NoClient(format!(
                "{display}: cannot build an HTTP client: {e}"
            )));
        }
    };
    let counters = Counters::default();
    let wanted = StoreReads::new(store.clone(), "");
    let identity = display.clone();
    match Session::open(&http, aws, &identity, &wanted, world, context, &counters).await {
        Ok(_) => Some(Validation::Ready),
        Err(message) => Some(Validation::Invalid(format!("{display}: {message}"))),
    }
}
