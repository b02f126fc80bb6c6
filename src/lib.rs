//! courier distributes Kubernetes Secrets from a central namespace into many
//! namespaces, reading External Secrets Operator manifests, without an operator.
//!
//! Three layers, dependencies pointing one way (`ARCHITECTURE.md` draws them):
//! - [`core`]: pure. Manifests, the world, the planner, templates, output.
//! - [`providers`]: ESO's providers, one file each, behind one trait; the ones that read
//!   over the network fetch once per reconcile, before planning.
//! - [`live`]: the cluster: client, reconcile, server-side apply, diff, status, `run`.
//!
//! The binary's `commands/` sit on top, one file per subcommand.

pub mod core;
pub mod live;
pub mod providers;
