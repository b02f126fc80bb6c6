//! The live side: everything that talks to a Kubernetes API server.
//!
//! [`cluster`] connects and reads the world with a handful of LISTs; [`eso`] reads ESO's
//! own objects for `--from-cluster`, and [`eso_objects`] keeps the ExternalSecrets of
//! ClusterExternalSecrets as ESO does; [`reconcile`] runs one load -> fetch -> plan ->
//! write pass; [`apply`] decides and performs server-side applies, releases and prunes, within the
//! limits of [`prune`];
//! [`diff`] shows what apply would change; [`status`] writes ESO-style status and Events;
//! [`controller`] is `courier run`: watches, debounce, resync, probes and metrics;
//! [`leader`] elects one writer among `run` replicas and fences the others' writes;
//! [`collect`] copies what member clusters opt in into the hub (`courier collect`);
//! [`varying`] decides when a target whose template renders differently every time is
//! written again.

pub mod adopt;
pub mod apply;
pub mod cluster;
pub mod collect;
pub mod controller;
pub mod diff;
pub mod eso;
pub mod eso_objects;
pub mod fleet;
pub mod jitter;
pub mod leader;
pub mod metrics;
pub mod prune;
pub mod reconcile;
pub mod status;
pub mod varying;
