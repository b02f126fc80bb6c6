//! ESO's `Validate` of a Kubernetes store (providers/v1/kubernetes/validate.go): with the
//! store's own identity, a SelfSubjectRulesReview in `remoteNamespace` must grant `get`
//! on Secrets, or else a SelfSubjectAccessReview must allow it. What ESO's store
//! controller turns into the store's `Ready` condition.

use std::sync::Arc;

use k8s_openapi::api::authorization::v1::{
    ResourceAttributes, SelfSubjectAccessReview, SelfSubjectAccessReviewSpec,
    SelfSubjectRulesReview, SelfSubjectRulesReviewSpec,
};
use kube::api::{Api, PostParams};

use super::kubernetes::KubernetesStore;
use super::kubernetes_identity::{api_message, identity_client};
use super::provider::FetchContext;
use crate::core::provider::StoreProvider;

/// What checking a store found, in ESO's terms.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Validation {
    /// The identity may get Secrets there (or, for a ClusterSecretStore whose identity
    /// depends on the ExternalSecret's namespace, nothing can be checked, which ESO
    /// counts as valid).
    Ready,
    /// No client could be made for the store (ESO: "unable to create client").
    NoClient(String),
    /// The review itself failed (ESO: ValidationUnknown).
    Unknown(String),
    /// The identity may not get Secrets there (ESO: "unable to validate store").
    Invalid(String),
}

/// Checks a Kubernetes store; `None` for a store of another provider.
pub async fn validate_store(
    store: &Arc<dyn StoreProvider>,
    context: &FetchContext,
) -> Option<Validation> {
    let store = store.as_any().downcast_ref::<KubernetesStore>()?;
    let Some((display, credential, server)) = store.own_identity() else {
        return Some(Validation::Ready);
    };
    let Some(credential) = credential else {
        return Some(Validation::NoClient(format!(
            "{display}: names no identity (auth or authRef)"
        )));
    };
    let client = match identity_client(&server, &credential, context).await {
        Ok(client) => client,
        Err(message) => return Some(Validation::NoClient(format!("{display}: {message}"))),
    };
    let namespace = store.remote_namespace.clone();
    let rules = SelfSubjectRulesReview {
        spec: SelfSubjectRulesReviewSpec {
            namespace: Some(namespace.clone()),
        },
        ..Default::default()
    };
    let review = match Api::<SelfSubjectRulesReview>::all(client.clone())
        .create(&PostParams::default(), &rules)
        .await
    {
        Ok(review) => review,
        Err(e) => {
            return Some(Validation::Unknown(format!(
                "could not verify if client is valid: {}",
                api_message(&e)
            )));
        }
    };
    let has = |list: &[String], want: &str| list.iter().any(|v| v == want || v == "*");
    let granted = review
        .status
        .iter()
        .flat_map(|s| &s.resource_rules)
        .any(|rule| {
            let groups = rule.api_groups.as_deref().unwrap_or_default();
            has(rule.resources.as_deref().unwrap_or_default(), "secrets")
                && has(&rule.verbs, "get")
                && (groups.is_empty() || has(groups, ""))
        });
    if granted {
        return Some(Validation::Ready);
    }
    let access = SelfSubjectAccessReview {
        spec: SelfSubjectAccessReviewSpec {
            resource_attributes: Some(ResourceAttributes {
                resource: Some("secrets".into()),
                namespace: Some(namespace),
                verb: Some("get".into()),
                ..Default::default()
            }),
            ..Default::default()
        },
        ..Default::default()
    };
    Some(
        match Api::<SelfSubjectAccessReview>::all(client)
            .create(&PostParams::default(), &access)
            .await
        {
            Ok(review) if review.status.as_ref().is_some_and(|s| s.allowed) => Validation::Ready,
            Ok(_) => Validation::Invalid("client is not allowed to get secrets".into()),
            Err(e) => Validation::Unknown(format!(
                "could not verify if client is valid: {}",
                api_message(&e)
            )),
        },
    )
}
