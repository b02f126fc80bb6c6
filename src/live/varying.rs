//! Targets whose template renders differently every time (`htpasswd`, `bcrypt`,
//! `randAlphaNum`, `uuidv4`, the PKCS#12 encoders, the clock; see
//! `core::gotemplate::VARYING`). Their values never equal a fresh rendering, so comparing
//! values would rewrite them at every reconcile, and under `run` each write wakes the
//! next reconcile: a write a second. ESO renders them once per `refreshInterval`.
//!
//! Such a target, when its type, keys, fixed values and metadata are what courier would
//! write, is rewritten only when:
//! - its inputs changed: `run` keeps, in memory, a keyed fingerprint of each target's
//!   template texts and source values as last written (or first seen), under a key drawn
//!   at random when the process starts ([`crate::core::plan::Fingerprint`]); nothing
//!   derived from a value is written to the cluster or logged. `refreshPolicy: OnChange`
//!   counts only the template texts (the manifest), `CreatedOnce` nothing;
//! - or its refresh is due (`refreshPolicy: Periodic`, the default): courier's last
//!   write, the `time` of its `metadata.managedFields` entry, is at least one
//!   `refreshInterval` (default 1h, 0 never) old. `diff` does not count a due refresh as
//!   drift (see [`super::apply::ApplyOptions::refresh_when_due`]).
//!
//! After a restart, and for one-shot `apply`, nothing is remembered: a source change
//! reaches the target at its next refresh, as with ESO.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crate::core::plan::{DesiredSecret, Fingerprint, Refresh, Varying};
use crate::live::cluster::ManagedSecret;

/// What a `run` process last wrote (or first found) for each target whose template
/// varies: the fingerprints of its inputs, by cluster, namespace and name.
#[derive(Clone, Default)]
pub struct Written {
    cluster: Arc<str>,
    targets: Arc<Mutex<HashMap<Key, Inputs>>>,
}

type Key = (Arc<str>, String, String);

#[derive(Clone, Copy, PartialEq, Eq)]
struct Inputs {
    templates: Fingerprint,
    values: Fingerprint,
    /// Recorded while `syncWindows` blocked the refresh (`templates` then fingerprints
    /// the spec).
    closed: bool,
}

impl std::fmt::Debug for Written {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let count = self.targets.lock().map(|t| t.len()).unwrap_or_default();
        write!(f, "Written({} targets)", count)
    }
}

impl Written {
    /// The same memory, for the targets of cluster `name`.
    pub fn in_cluster(&self, name: &str) -> Self {
        Self {
            cluster: Arc::from(name),
            targets: self.targets.clone(),
        }
    }

    fn key(&self, secret: &DesiredSecret) -> Key {
        (
            self.cluster.clone(),
            secret.namespace.clone(),
            secret.name.clone(),
        )
    }

    /// Remembers what `secret` was rendered from, once it is written.
    pub fn record(&self, secret: &DesiredSecret) {
        let Some(varying) = secret.body.varying.as_deref() else {
            return;
        };
        if let Ok(mut targets) = self.targets.lock() {
            targets.insert(self.key(secret), inputs_of(varying));
        }
    }

    /// Whether `secret`'s inputs changed since it was last written. A target not seen
    /// before is taken to hold its current inputs (a restarted `run`), and remembered.
    fn changed(&self, secret: &DesiredSecret, varying: &Varying) -> bool {
        let Ok(mut targets) = self.targets.lock() else {
            return false;
        };
        let now = inputs_of(varying);
        let before = targets.entry(self.key(secret)).or_insert(now);
        if now.closed && !before.closed {
            // The window just closed: what was written came from a periodic refresh,
            // fingerprinted otherwise. The spec is remembered from now on.
            *before = now;
            return false;
        }
        let before = *before;
        match varying.refresh {
            Refresh::CreatedOnce => false,
            Refresh::OnChange | Refresh::SyncWindowClosed => before.templates != now.templates,
            Refresh::Periodic(_) => before != now,
        }
    }
}

fn inputs_of(varying: &Varying) -> Inputs {
    Inputs {
        templates: varying.templates,
        values: varying.inputs,
        closed: varying.refresh == Refresh::SyncWindowClosed,
    }
}

/// Whether a target that differs from `desired` only in values that vary is to be
/// written again now (see the module's comment).
pub fn rewrite_due(
    existing: &ManagedSecret,
    desired: &DesiredSecret,
    varying: &Varying,
    written: Option<&Written>,
    refresh_when_due: bool,
) -> bool {
    if written.is_some_and(|w| w.changed(desired, varying)) {
        return true;
    }
    match varying.refresh {
        Refresh::Periodic(Some(interval)) if refresh_when_due => {
            existing.written_at.is_some_and(|at| {
                let age = jiff::Timestamp::now().duration_since(at);
                std::time::Duration::try_from(age).is_ok_and(|age| age >= interval)
            })
        }
        _ => false,
    }
}

/// Whether `refreshPolicy` keeps an existing target of this instance as it is, whatever
/// courier would write now (ESO's `shouldRefresh`, pkg/controllers/externalsecret/
/// externalsecret_controller.go): `CreatedOnce` never renders it again; `OnChange` only
/// when the ExternalSecret's spec changed since this process last wrote (or first saw)
/// the target. Without a memory (one-shot `apply`) nothing tells a changed spec, so an
/// OnChange target is held too. A missing target, or someone else's, is never held.
/// `current`: the target already holds what courier would write; it is then remembered
/// as rendered from today's spec (ESO's refresh after a spec change writes the same).
pub fn held_by_refresh_policy(
    existing: &ManagedSecret,
    desired: &DesiredSecret,
    instance: &str,
    written: Option<&Written>,
    current: bool,
) -> bool {
    let Some(varying) = desired.body.varying.as_deref() else {
        return current;
    };
    if matches!(varying.refresh, Refresh::Periodic(_)) {
        return current;
    }
    if current {
        if let Some(written) = written {
            written.record(desired);
        }
        return true;
    }
    let Some(content) = existing.content.as_deref() else {
        return existing.current;
    };
    let ours = !content.has_legacy_digest()
        && content
            .labels
            .get(crate::core::labels::INSTANCE_LABEL)
            .map(String::as_str)
            == Some(instance);
    ours && !written.is_some_and(|w| w.changed(desired, varying))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::load::load_str;
    use crate::core::plan::{Plan, plan};
    use crate::core::secret_bytes::SecretBytes;
    use crate::core::world::World;
    use crate::live::apply::{ApplyOptions, is_current};
    use crate::live::cluster::SecretContent;

    /// The loader refuses `refreshPolicy: CreatedOnce` and `OnChange` until they hold for
    /// every target (`core::schema`), so the policy is set on the planned body here.
    fn planned(extra: &str, password: &str) -> Plan {
        let policy = [
            (
                "  refreshPolicy: CreatedOnce\n",
                crate::core::plan::Refresh::CreatedOnce,
            ),
            (
                "  refreshPolicy: OnChange\n",
                crate::core::plan::Refresh::OnChange,
            ),
        ]
        .into_iter()
        .find(|(text, _)| extra.contains(text));
        let extra = policy.map_or(extra.to_owned(), |(text, _)| extra.replace(text, ""));
        let mut plan = planned_as_loaded(&extra, password);
        if let Some((_, refresh)) = policy {
            let secret = &mut plan.secrets[0];
            let mut body = (*secret.body).clone();
            let mut varying = (**body.varying.as_ref().expect("varying")).clone();
            varying.refresh = refresh;
            body.varying = Some(std::sync::Arc::new(varying));
            secret.body = std::sync::Arc::new(body);
        }
        plan
    }

    fn planned_as_loaded(extra: &str, password: &str) -> Plan {
        let yaml = format!(
            "---\napiVersion: v1\nkind: Namespace\nmetadata: {{name: app}}\n---\napiVersion: v1\nkind: Secret\nmetadata: {{name: src, namespace: app}}\nstringData: {{user: bot, password: {password}}}\n---\napiVersion: external-secrets.io/v1\nkind: SecretStore\nmetadata: {{name: local, namespace: app}}\nspec: {{provider: {{kubernetes: {{remoteNamespace: app}}}}}}\n---\napiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {{name: web, namespace: app}}\nspec:\n{extra}  secretStoreRef: {{name: local}}\n  target:\n    template:\n      data:\n        auth: '{{{{ htpasswd \"user\" .password }}}}'\n        user: '{{{{ .user }}}}'\n  dataFrom:\n  - extract: {{key: src}}\n"
        );
        let inputs = load_str("w.yaml", &yaml).unwrap_or_else(|e| panic!("{e:?}"));
        let world = World::from_inputs(&inputs).unwrap_or_else(|e| panic!("{e:?}"));
        let plan = plan(&inputs.manifests, &world, &crate::providers::Registry);
        assert!(plan.errors.is_empty(), "{:?}", plan.errors);
        plan
    }

    /// What courier wrote from an earlier rendering of `desired`, `age` ago.
    fn written(desired: &DesiredSecret, age: i64) -> ManagedSecret {
        let mut labels = desired.body.labels.clone();
        labels.insert(crate::core::labels::INSTANCE_LABEL.into(), "default".into());
        let mut data = desired.body.data.clone();
        data.insert("auth".into(), SecretBytes::from("user:$2a$10$earlier"));
        ManagedSecret {
            instance: Some("default".into()),
            origin: None,
            hub: None,
            orphan: false,
            merged: false,
            resource_version: Some("1".into()),
            created_fields: None,
            content: Some(Box::new(SecretContent {
                type_: desired.body.type_.clone(),
                labels,
                annotations: desired.body.annotations.clone(),
                data,
                immutable: false,
                finalizers: Vec::new(),
            })),
            current: false,
            written_at: Some(jiff::Timestamp::now() - jiff::SignedDuration::from_secs(age)),
        }
    }

    #[test]
    fn a_target_differing_only_in_random_values_is_current_until_its_refresh() {
        let plan = planned("  refreshInterval: 1h\n", "one");
        let desired = &plan.secrets[0];
        let options = ApplyOptions::default();
        assert!(is_current(&written(desired, 60), desired, &options));
        assert!(!is_current(&written(desired, 3601), desired, &options));
        // diff does not count a due refresh.
        let diff = ApplyOptions {
            refresh_when_due: false,
            ..ApplyOptions::default()
        };
        assert!(is_current(&written(desired, 3601), desired, &diff));
        // refreshInterval 0 and CreatedOnce never refresh by time.
        for extra in ["  refreshInterval: 0s\n", "  refreshPolicy: CreatedOnce\n"] {
            let plan = planned(extra, "one");
            assert!(is_current(
                &written(&plan.secrets[0], 999_999),
                &plan.secrets[0],
                &options
            ));
        }
    }

    #[test]
    fn a_fixed_value_a_key_or_the_type_differing_is_not_current() {
        let plan = planned("", "one");
        let desired = &plan.secrets[0];
        let options = ApplyOptions::default();
        let mut edited = written(desired, 60);
        let content = edited.content.as_mut().unwrap();
        content
            .data
            .insert("user".into(), SecretBytes::from("someone"));
        assert!(!is_current(&edited, desired, &options));
        let mut extra_key = written(desired, 60);
        let content = extra_key.content.as_mut().unwrap();
        content.data.insert("more".into(), SecretBytes::from("x"));
        assert!(!is_current(&extra_key, desired, &options));
        let mut missing = written(desired, 60);
        missing.content.as_mut().unwrap().data.remove("auth");
        assert!(!is_current(&missing, desired, &options));
        let mut retyped = written(desired, 60);
        retyped.content.as_mut().unwrap().type_ = "kubernetes.io/basic-auth".into();
        assert!(!is_current(&retyped, desired, &options));
    }

    #[test]
    fn run_rewrites_when_the_inputs_change_and_not_for_its_own_write() {
        let memory = Written::default().in_cluster("in-cluster");
        let options = ApplyOptions {
            written: Some(memory.clone()),
            ..ApplyOptions::default()
        };
        let first = planned("", "one");
        // First seen (a restarted run): taken as current, and remembered.
        assert!(is_current(
            &written(&first.secrets[0], 60),
            &first.secrets[0],
            &options
        ));
        // The next reconcile renders new random values from the same inputs: current.
        let again = planned("", "one");
        assert!(is_current(
            &written(&again.secrets[0], 1),
            &again.secrets[0],
            &options
        ));
        // The source changed: rewritten, and once written, current again.
        let changed = planned("", "two");
        assert!(!is_current(
            &written(&changed.secrets[0], 1),
            &changed.secrets[0],
            &options
        ));
        assert!(!is_current(
            &written(&changed.secrets[0], 1),
            &changed.secrets[0],
            &options
        ));
        memory.record(&changed.secrets[0]);
        let after = planned("", "two");
        assert!(is_current(
            &written(&after.secrets[0], 1),
            &after.secrets[0],
            &options
        ));
        // Another cluster's target of the same name is another target.
        let other = ApplyOptions {
            written: Some(memory.in_cluster("prod")),
            ..ApplyOptions::default()
        };
        assert!(is_current(
            &written(&first.secrets[0], 1),
            &first.secrets[0],
            &other
        ));
    }

    /// A varying target planned at 03:30 UTC under a deny window 03:00-04:00 (`closed`)
    /// or 05:00-06:00, with the given spec line.
    fn planned_in_window(closed: bool, extra: &str, password: &str) -> Plan {
        let schedule = if closed { "0 3 * * *" } else { "0 5 * * *" };
        let extra = format!(
            "{extra}  syncWindows: {{kind: deny, windows: [{{schedule: '{schedule}', duration: 1h}}]}}\n"
        );
        let yaml = format!(
            "---\napiVersion: v1\nkind: Namespace\nmetadata: {{name: app}}\n---\napiVersion: v1\nkind: Secret\nmetadata: {{name: src, namespace: app}}\nstringData: {{user: bot, password: {password}}}\n---\napiVersion: external-secrets.io/v1\nkind: SecretStore\nmetadata: {{name: local, namespace: app}}\nspec: {{provider: {{kubernetes: {{remoteNamespace: app}}}}}}\n---\napiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {{name: web, namespace: app}}\nspec:\n{extra}  secretStoreRef: {{name: local}}\n  target:\n    template:\n      data:\n        auth: '{{{{ htpasswd \"user\" .password }}}}'\n  dataFrom:\n  - extract: {{key: src}}\n"
        );
        let inputs = load_str("w.yaml", &yaml).unwrap_or_else(|e| panic!("{e:?}"));
        let mut world = World::from_inputs(&inputs).unwrap_or_else(|e| panic!("{e:?}"));
        world.now = Some("2026-12-05T03:30:00Z".parse().unwrap());
        let plan = plan(&inputs.manifests, &world, &crate::providers::Registry);
        assert!(plan.errors.is_empty(), "{:?}", plan.errors);
        plan
    }

    #[test]
    fn a_closing_sync_window_holds_what_the_periodic_refresh_wrote() {
        let memory = Written::default();
        let open = planned_in_window(false, "", "one");
        let varying = |plan: &Plan| plan.secrets[0].body.varying.as_deref().unwrap().clone();
        assert!(matches!(varying(&open).refresh, Refresh::Periodic(_)));
        memory.record(&open.secrets[0]);
        // The window closes and the source changes: held.
        let closed = planned_in_window(true, "", "two");
        assert_eq!(varying(&closed).refresh, Refresh::SyncWindowClosed);
        assert!(!memory.changed(&closed.secrets[0], &varying(&closed)));
        assert!(!memory.changed(&closed.secrets[0], &varying(&closed)));
        // The spec changes while it is closed: refreshed.
        let edited = planned_in_window(true, "  refreshInterval: 2h\n", "two");
        assert!(memory.changed(&edited.secrets[0], &varying(&edited)));
    }

    #[test]
    fn on_change_counts_the_templates_and_created_once_nothing() {
        let options = ApplyOptions {
            written: Some(Written::default()),
            ..ApplyOptions::default()
        };
        let first = planned("  refreshPolicy: OnChange\n", "one");
        assert!(is_current(
            &written(&first.secrets[0], 1),
            &first.secrets[0],
            &options
        ));
        let changed = planned("  refreshPolicy: OnChange\n", "two");
        assert!(is_current(
            &written(&changed.secrets[0], 1),
            &changed.secrets[0],
            &options
        ));
        let once = ApplyOptions {
            written: Some(Written::default()),
            ..ApplyOptions::default()
        };
        let first = planned("  refreshPolicy: CreatedOnce\n", "one");
        assert!(is_current(
            &written(&first.secrets[0], 1),
            &first.secrets[0],
            &once
        ));
        let changed = planned("  refreshPolicy: CreatedOnce\n", "two");
        assert!(is_current(
            &written(&changed.secrets[0], 1),
            &changed.secrets[0],
            &once
        ));
    }
}
