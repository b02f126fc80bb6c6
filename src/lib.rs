//! courier distributes Kubernetes Secrets from a central namespace into many
//! namespaces, reading External Secrets Operator manifests, without an operator.
//!
//! The pipeline is pure at its core: [`load`] reads manifests, [`world::World`] holds
//! what the cluster (or files) has, [`plan::plan`] decides the Secrets, [`output`]
//! prints them.

pub mod apply;
pub mod cluster;
pub mod controller;
pub mod diff;
pub mod load;
pub mod model;
pub mod output;
pub mod plan;
pub mod reconcile;
pub mod redact;
pub mod remote;
pub mod secret_bytes;
pub mod select;
pub mod source;
pub mod status;
pub mod template;
pub mod vault;
pub mod webhook;
pub mod world;
