//! The pure planner: (manifests, world, providers) -> desired Secrets and per-target
//! errors. No IO.
//!
//! The steps, one file each: [`targets`] expands every ClusterExternalSecret over the
//! namespaces it selects; [`stores`] resolves each target's store and parses its provider
//! through the registry; [`fetch`] reads the values in ESO's order; [`render`] applies the
//! template and courier's metadata; [`planner`] puts it together and reports conflicts;
//! [`validate`] is what `check` adds without reading a value; [`remote`] lists the reads
//! remote stores must answer before planning.
//!
//! A ClusterExternalSecret that reads a ClusterSecretStore renders the same Secret in
//! every namespace it selects, so each such body is rendered once and shared; only
//! namespace-dependent specs (a namespaced SecretStore, templateFrom a ConfigMap or
//! Secret of the target namespace) render per namespace.

mod engine;
mod fetch;
mod planner;
mod remote;
mod render;
mod stores;
mod targets;
mod types;
mod validate;

pub use engine::Engine;
pub use fetch::{convert_keys, decode, go_base64_decode};
pub use planner::{check, plan, stores_absent};
pub use remote::remote_requests;
pub use stores::{provider_error_message, store_namespaces, watched_namespaces};
pub use types::{
    CheckReport, DesiredSecret, Fingerprint, Plan, PlanError, PlannedTarget, Refresh, SecretBody,
    Varying,
};
