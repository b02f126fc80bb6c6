//! ESO's controller metrics that its Grafana dashboard and alerts read, named and labelled
//! as ESO v2.9's controllers export them (pkg/controllers/externalsecret/esmetrics,
//! clusterexternalsecret/cesmetrics, with ESO's default label set), served on `run`'s
//! `/metrics` beside courier's own:
//!
//! - `externalsecret_sync_calls_total{name,namespace}`: ExternalSecrets reconciled (courier
//!   reconciles each one at every reconcile);
//! - `externalsecret_sync_calls_error{name,namespace}`: those that failed;
//! - `externalsecret_status_condition{condition="Ready",name,namespace,status}`: 1 for the
//!   current status of `Ready`, 0 for the other;
//! - `clusterexternalsecret_status_condition{condition="Ready",name,namespace="",status}`:
//!   set, as ESO sets it, only once the ClusterExternalSecret is Ready.
//!
//! An ExternalSecret that is gone loses its series. ESO's `*_reconcile_duration` gauges are
//! not served: courier reconciles all objects at once, not one by one.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;

/// The `Ready` condition of one ESO object after a reconcile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readiness {
    /// `ExternalSecret` or `ClusterExternalSecret`.
    pub kind: String,
    /// Namespace of an ExternalSecret; empty for a ClusterExternalSecret.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// `Ready` is True.
    pub ready: bool,
}

#[derive(Default)]
struct State {
    calls: BTreeMap<(String, String), u64>,
    errors: BTreeMap<(String, String), u64>,
    es_ready: BTreeMap<(String, String), bool>,
    ces_ready: BTreeMap<String, bool>,
}

/// ESO's metrics, fed after each reconcile.
#[derive(Default)]
pub struct EsoMetrics(Mutex<State>);

impl EsoMetrics {
    /// Counts one reconcile of every object in `objects`; drops the series of the
    /// ExternalSecrets and ClusterExternalSecrets that are gone.
    pub fn observe(&self, objects: &[Readiness]) {
        let Ok(mut state) = self.0.lock() else {
            return;
        };
        let mut es_ready = BTreeMap::new();
        let mut ces_ready = BTreeMap::new();
        for object in objects {
            if object.kind == "ClusterExternalSecret" {
                // ESO updates this gauge only when the condition is True.
                let was = state.ces_ready.get(&object.name).copied();
                let now = if object.ready { Some(true) } else { was };
                if let Some(now) = now {
                    ces_ready.insert(object.name.clone(), now);
                }
                continue;
            }
            let key = (object.namespace.clone(), object.name.clone());
            *state.calls.entry(key.clone()).or_default() += 1;
            let errors = state.errors.entry(key.clone()).or_default();
            if !object.ready {
                *errors += 1;
            }
            es_ready.insert(key, object.ready);
        }
        state.calls.retain(|k, _| es_ready.contains_key(k));
        state.errors.retain(|k, _| es_ready.contains_key(k));
        state.es_ready = es_ready;
        state.ces_ready = ces_ready;
    }

    /// The metrics in Prometheus' text format.
    pub fn encode(&self) -> String {
        let Ok(state) = self.0.lock() else {
            return String::new();
        };
        let mut text = String::new();
        let family = |text: &mut String, name: &str, help: &str, type_: &str| {
            let _ = writeln!(text, "# HELP {name} {help}\n# TYPE {name} {type_}");
        };
        family(
            &mut text,
            "externalsecret_sync_calls_total",
            "Total number of the External Secret sync calls",
            "counter",
        );
        for ((namespace, name), count) in &state.calls {
            let _ = writeln!(
                text,
                "externalsecret_sync_calls_total{{name=\"{name}\",namespace=\"{namespace}\"}} {count}"
            );
        }
        family(
            &mut text,
            "externalsecret_sync_calls_error",
            "Total number of the External Secret sync errors",
            "counter",
        );
        for ((namespace, name), count) in &state.errors {
            let _ = writeln!(
                text,
                "externalsecret_sync_calls_error{{name=\"{name}\",namespace=\"{namespace}\"}} {count}"
            );
        }
        family(
            &mut text,
            "externalsecret_status_condition",
            "The status condition of a specific External Secret",
            "gauge",
        );
        for ((namespace, name), ready) in &state.es_ready {
            for status in ["False", "True"] {
                let value = u8::from((status == "True") == *ready);
                let _ = writeln!(
                    text,
                    "externalsecret_status_condition{{condition=\"Ready\",name=\"{name}\",namespace=\"{namespace}\",status=\"{status}\"}} {value}"
                );
            }
        }
        family(
            &mut text,
            "clusterexternalsecret_status_condition",
            "The status condition of a specific Cluster External Secret",
            "gauge",
        );
        for (name, ready) in &state.ces_ready {
            for status in ["False", "True"] {
                let value = u8::from((status == "True") == *ready);
                let _ = writeln!(
                    text,
                    "clusterexternalsecret_status_condition{{condition=\"Ready\",name=\"{name}\",namespace=\"\",status=\"{status}\"}} {value}"
                );
            }
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn es(name: &str, ready: bool) -> Readiness {
        Readiness {
            kind: "ExternalSecret".into(),
            namespace: "team".into(),
            name: name.into(),
            ready,
        }
    }

    #[test]
    fn series_follow_the_objects_as_esos_do() {
        let metrics = EsoMetrics::default();
        let ces = |ready| Readiness {
            kind: "ClusterExternalSecret".into(),
            namespace: String::new(),
            name: "creds".into(),
            ready,
        };
        metrics.observe(&[es("a", true), es("b", false), ces(false)]);
        metrics.observe(&[es("a", false), ces(true)]);
        let text = metrics.encode();
        assert!(
            text.contains("externalsecret_sync_calls_total{name=\"a\",namespace=\"team\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("externalsecret_sync_calls_error{name=\"a\",namespace=\"team\"} 1\n"),
            "{text}"
        );
        assert!(text.contains("externalsecret_status_condition{condition=\"Ready\",name=\"a\",namespace=\"team\",status=\"False\"} 1\n"), "{text}");
        assert!(text.contains("externalsecret_status_condition{condition=\"Ready\",name=\"a\",namespace=\"team\",status=\"True\"} 0\n"), "{text}");
        assert!(
            !text.contains("name=\"b\""),
            "a deleted ExternalSecret loses its series: {text}"
        );
        assert!(text.contains("clusterexternalsecret_status_condition{condition=\"Ready\",name=\"creds\",namespace=\"\",status=\"True\"} 1\n"), "{text}");
    }
}
