//! The pure core: what an ESO manifest means, and nothing that talks to a cluster or a
//! server. No tokio, no Kubernetes client, no HTTP client (`tests/architecture.rs` keeps
//! it so).
//!
//! [`load`] reads manifests into [`model`] types with file and line, [`select`] matches
//! label selectors, [`world::World`] holds what the cluster (or the files) has, [`plan`]
//! decides the Secrets through the [`provider`] interface, [`template`] renders them and
//! [`output`] prints them.

pub mod clusters;
pub mod collect;
pub mod duration;
pub mod eso_rules;
pub mod fieldline;
pub mod gojson;
pub mod gotemplate;
pub mod instance;
pub mod labels;
pub mod load;
pub mod model;
pub mod output;
pub mod plan;
pub mod provider;
pub mod redact;
pub mod schema;
pub mod secret_bytes;
pub mod select;
pub mod suggest;
pub mod sync_window;
pub mod template;
pub mod validate_secret;
pub mod world;
