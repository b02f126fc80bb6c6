//! Integration tests against a real kube-apiserver with etcd. One control plane serves
//! the whole run (see `support`); every test works in namespaces of its own.

mod adopt;
mod apply;
mod argocd_world;
mod aws_eso;
mod aws_identity;
mod chart;
mod collect;
mod control_plane;
mod diff;
mod differential;
mod faults;
mod from_cluster;
mod hygiene;
mod identity;
mod leader;
mod leaks;
mod live_differential;
mod multicluster;
mod nothing_lost;
mod openbao_apply;
mod openbao_eso;
mod openbao_kubernetes_auth;
mod policies;
mod private_ca;
mod random_templates;
mod refresh_policy;
mod run;
mod runbook;
mod strict;
mod support;
mod sync_windows;
mod walkthrough;
mod webhook_apply;

#[path = "../common/eso.rs"]
mod eso;
#[path = "../common/moto.rs"]
mod moto;
#[path = "../common/openbao.rs"]
#[allow(dead_code)]
mod openbao;
