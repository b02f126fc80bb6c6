//! Rendering one target's body: the fetched values through `target.template`
//! (`data`, `metadata`, `templateFrom`, `mergePolicy`), and courier's labels and
//! annotations. No digest of the values is written anywhere: it would let whoever sees
//! the metadata confirm a guessed value.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use minijinja::Environment;

use super::engine::{Engine, Renderer};
use super::fetch::{decode, fetch_values};
use super::stores::Clients;
use super::targets::{Instance, Planner};
use super::types::{Failure, Fingerprinter, Refresh, SecretBody, Varying};
use super::validate::SECRET_KEY;
use crate::core::duration::parse_go_duration;
use crate::core::gotemplate;
use crate::core::labels::{MANAGED_BY_LABEL, MANAGED_BY_VALUE, ORIGIN_ANNOTATION};
use crate::core::model::{
    CreationPolicy, DecodingStrategy, DeletionPolicy, ExternalSecretSpec, MergePolicy,
    RefreshPolicy, SecretTemplate, StringMap, TemplateScope, TemplateTarget,
};
use crate::core::provider::SecretMap;
use crate::core::redact::{Derived, DerivedMap};
use crate::core::secret_bytes::SecretBytes;
use crate::core::sync_window;
use crate::core::validate_secret::{self, Candidate};

pub(super) fn render_body(
    env: &Environment<'_>,
    planner: &Planner<'_>,
    instance: &Instance<'_>,
    clients: &Clients<'_>,
) -> Result<SecretBody, Failure> {
    let spec = instance.spec;
    let engine = planner.owners[instance.owner_index].engine.clone()?;
    let closed = sync_window_closed(spec, planner.world.now);
    // A periodic refresh the windows block, in a files world: the existing target (the
    // input's Secret of that name) is printed as it is, as ESO keeps it; with none, this
    // is ESO's first sync, which windows never block.
    if closed
        && !planner.world.live
        && planner
            .world
            .secret(&instance.namespace, &instance.secret_name)
            .is_some()
    {
        return Ok(unwritten(planner, instance));
    }
    let provider = fetch_values(clients, spec, planner.world.live)?;
    // ESO's reconcile returns early when the provider returned no data (`len(dataMap) ==
    // 0` in pkg/controllers/externalsecret/externalsecret_controller.go): under
    // deletionPolicy Retain it keeps the Secret as it is, under Delete it deletes it;
    // only Merge goes on to write. courier writes nothing either, and loses nothing: the
    // target is kept as it is (see [`unwritten`]).
    if provider.is_empty()
        && spec.target.deletion_policy.unwrap_or_default() != DeletionPolicy::Merge
    {
        return Ok(unwritten(planner, instance));
    }
    let Rendered {
        type_,
        mut labels,
        mut annotations,
        data,
        mut derived_labels,
        mut derived_annotations,
        mut derived_data,
        marks,
    } = match &spec.target.template {
        None => Rendered {
            type_: "Opaque".to_owned(),
            labels: instance.metadata_labels.clone(),
            annotations: instance.metadata_annotations.clone(),
            data: provider,
            derived_labels: DerivedMap::new(),
            derived_annotations: DerivedMap::new(),
            derived_data: DerivedMap::new(),
            marks: None,
        },
        Some(template) => render_template(env, engine, planner, instance, template, provider)?,
    };
    // creationPolicy Merge in a files world: the input's Secret of that name is the
    // existing target; its keys, type, labels and annotations stay, courier's values and
    // metadata go on top (ESO's updateSecret with CreatePolicyMerge).
    let creation_policy = spec.target.creation_policy.unwrap_or_default();
    let (type_, data) = match planner
        .world
        .secret(&instance.namespace, &instance.secret_name)
    {
        // target.immutable with an existing Secret: ESO applies no template to it (its
        // mutationFunc's objectDoesNotExistOrCanBeMutated), so its data, type, labels and
        // annotations stay; only the ownership marks and `immutable` are set.
        Some(existing) if spec.target.immutable && !planner.world.live => {
            labels = existing.labels.clone();
            annotations = existing.annotations.clone();
            let kept = KeptDerived::of(existing, spec.target.template.as_ref());
            derived_labels = kept.labels;
            derived_annotations = kept.annotations;
            derived_data = kept.data;
            (existing.type_.clone(), existing.data.clone())
        }
        Some(existing)
            if matches!(
                creation_policy,
                CreationPolicy::Merge | CreationPolicy::CreateOrMerge
            ) && !planner.world.live =>
        {
            let template_type = spec.target.template.as_ref().and_then(|t| t.type_.clone());
            let mut merged = existing.data.clone();
            merged.extend(data);
            for (key, value) in &existing.labels {
                labels.entry(key.clone()).or_insert_with(|| value.clone());
            }
            for (key, value) in &existing.annotations {
                annotations
                    .entry(key.clone())
                    .or_insert_with(|| value.clone());
            }
            (
                template_type.unwrap_or_else(|| existing.type_.clone()),
                merged,
            )
        }
        // Owner or Orphan over a Secret courier did not write, with the opt-in
        // (`--adopt-existing-targets`): ESO adopts it and updates it in place. Its data
        // is replaced (ApplyTemplate clears it for every policy but Merge and
        // CreateOrMerge); its type (unless the template sets one), labels and
        // annotations stay under courier's.
        Some(existing) if planner.world.adopt_existing && !planner.world.live => {
            let template_type = spec.target.template.as_ref().and_then(|t| t.type_.clone());
            for (key, value) in &existing.labels {
                labels.entry(key.clone()).or_insert_with(|| value.clone());
            }
            for (key, value) in &existing.annotations {
                annotations
                    .entry(key.clone())
                    .or_insert_with(|| value.clone());
            }
            (
                template_type.unwrap_or_else(|| existing.type_.clone()),
                data,
            )
        }
        _ => (type_, data),
    };
    // An existing Secret marked immutable: ESO's updateSecret fails when its data or
    // type would change (ErrSecretImmutable: "could not update secret, target is
    // immutable"); so does courier, naming the target and no value.
    if !planner.world.live
        && planner
            .world
            .immutable
            .contains(&(instance.namespace.clone(), instance.secret_name.clone()))
        && let Some(existing) = planner
            .world
            .secret(&instance.namespace, &instance.secret_name)
        && (existing.type_ != type_ || existing.data != data)
    {
        return Err(Failure::new(
            None::<String>,
            format!(
                "the existing Secret {}/{} is immutable, and its data or type would change (ESO fails it too: target is immutable)\nhint: delete the Secret so that it is written again, or make the source match it",
                instance.namespace, instance.secret_name
            ),
        ));
    }
    for key in data.keys() {
        if !SECRET_KEY.is_match(key) {
            // A key a template made from the values is a value: its template is named.
            return Err(match derived_data.get(key) {
                Some(derived) => Failure::new(
                    format!("{} (a data key it renders)", derived.field),
                    "is not a valid Secret key (alphanumerics, '-', '_' or '.')\nhint: make the template render keys of those characters",
                ),
                None => Failure::new(
                    format!("key {key:?}"),
                    "is not a valid Secret key (alphanumerics, '-', '_' or '.'); rename it with dataFrom[].rewrite",
                ),
            });
        }
    }
    labels.insert(MANAGED_BY_LABEL.into(), MANAGED_BY_VALUE.into());
    derived_labels.remove(MANAGED_BY_LABEL);
    annotations.insert(
        ORIGIN_ANNOTATION.into(),
        planner.owners[instance.owner_index].display.to_string(),
    );
    derived_annotations.remove(ORIGIN_ANNOTATION);
    // What the API server would refuse is this target's error now, named without a value;
    // its 422 would quote the value.
    // ESO's setMetadata adds the template's finalizers, each once, in order.
    let mut finalizers: Vec<String> = Vec::new();
    if let Some(template) = &spec.target.template {
        for finalizer in &template.metadata.finalizers {
            if !finalizers.contains(finalizer) {
                finalizers.push(finalizer.clone());
            }
        }
    }
    validate_secret::validate(&Candidate {
        type_: &type_,
        labels: &labels,
        annotations: &annotations,
        derived_labels: &derived_labels,
        derived_annotations: &derived_annotations,
        derived_data: &derived_data,
        data: &data,
        finalizers: &finalizers,
        merge: matches!(
            creation_policy,
            CreationPolicy::Merge | CreationPolicy::CreateOrMerge
        ),
    })
    .map_err(|refusal| Failure::new(refusal.field, refusal.message))?;
    Ok(SecretBody {
        type_,
        labels,
        annotations,
        derived_labels,
        derived_annotations,
        derived_data,
        data,
        immutable: spec.target.immutable,
        finalizers,
        creation_policy,
        deletion_policy: spec.target.deletion_policy.unwrap_or_default(),
        varying: varying_of(marks, spec, closed).map(Arc::new),
    })
}

/// What of a body varies, and when it is rewritten. Under `refreshPolicy` CreatedOnce or
/// OnChange every body carries one (with nothing marked when no template varies), so
/// that `run` holds the target as ESO's `shouldRefresh` does: CreatedOnce never renders
/// an existing target again, OnChange only when the ExternalSecret's spec changed, which
/// `templates` then fingerprints whole (keyed, in memory only; the spec holds no values).
/// While `syncWindows` block the periodic refresh ([`sync_window_closed`]) a body carries
/// [`Refresh::SyncWindowClosed`], held as under OnChange.
fn varying_of(marks: Option<Marks>, spec: &ExternalSecretSpec, closed: bool) -> Option<Varying> {
    let refresh = if closed {
        Refresh::SyncWindowClosed
    } else {
        refresh_of(spec)
    };
    if matches!(refresh, Refresh::Periodic(_)) {
        return marks.map(|marks| marks.finish(spec));
    }
    let mut manifest = Fingerprinter::new();
    manifest.part(format!("{spec:?}").as_bytes());
    let manifest = manifest.finish();
    Some(match marks {
        Some(marks) => Varying {
            templates: manifest,
            refresh,
            ..marks.finish(spec)
        },
        None => Varying {
            data: BTreeSet::new(),
            labels: BTreeSet::new(),
            annotations: BTreeSet::new(),
            refresh,
            templates: manifest,
            inputs: manifest,
        },
    })
}

/// The body of a target ESO writes nothing to (the provider returned no data, and
/// deletionPolicy is Retain or Delete): marked `creationPolicy: None`, which no other body
/// carries (the planner leaves None targets out). In a files world it is the existing
/// Secret of that name as it is, so that `render` prints it unchanged (a Secret missing
/// from render's output reads as a deletion to a GitOps tool); with no such Secret it
/// is empty, and the planner leaves it out. Live mode keeps the existing target
/// untouched and creates nothing (`live::apply::decide`).
fn unwritten(planner: &Planner<'_>, instance: &Instance<'_>) -> SecretBody {
    let spec = instance.spec;
    let existing = (!planner.world.live)
        .then(|| {
            planner
                .world
                .secret(&instance.namespace, &instance.secret_name)
        })
        .flatten();
    let existing = existing.cloned().unwrap_or_default();
    let kept = KeptDerived::of(&existing, spec.target.template.as_ref());
    SecretBody {
        type_: if existing.type_.is_empty() {
            "Opaque".to_owned()
        } else {
            existing.type_
        },
        labels: existing.labels,
        annotations: existing.annotations,
        derived_labels: kept.labels,
        derived_annotations: kept.annotations,
        derived_data: kept.data,
        data: existing.data,
        immutable: !planner.world.live
            && planner
                .world
                .immutable
                .contains(&(instance.namespace.clone(), instance.secret_name.clone())),
        finalizers: Vec::new(),
        creation_policy: CreationPolicy::None,
        deletion_policy: spec.target.deletion_policy.unwrap_or_default(),
        varying: None,
    }
}

/// What of an existing target, printed as it is (its template not applied to it), an
/// earlier rendering of the template may have made from the values: under a template,
/// every label and annotation but courier's own (their keys too where a `templateFrom`
/// writes that map), the data keys where a `templateFrom` writes data; and
/// `kubectl.kubernetes.io/last-applied-configuration`, which repeats the Secret whole.
/// `render --redact` hides them as it hides a rendering's.
struct KeptDerived {
    labels: DerivedMap,
    annotations: DerivedMap,
    data: DerivedMap,
}

impl KeptDerived {
    fn of(existing: &crate::core::world::SourceSecret, template: Option<&SecretTemplate>) -> Self {
        const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";
        let field = "the existing target, printed as it is";
        let writes = |target: TemplateTarget| {
            template.is_some_and(|t| {
                t.template_from
                    .iter()
                    .any(|from| from.target.unwrap_or_default() == target)
            })
        };
        let derived = |map: &StringMap, own: &str, key: bool| -> DerivedMap {
            map.keys()
                .filter(|k| template.is_some() && k.as_str() != own)
                .map(|k| {
                    let derived = Derived {
                        field: format!("{field} (metadata)"),
                        key,
                    };
                    (k.clone(), derived)
                })
                .collect()
        };
        let mut annotations = derived(
            &existing.annotations,
            ORIGIN_ANNOTATION,
            writes(TemplateTarget::Annotations),
        );
        if existing.annotations.contains_key(LAST_APPLIED) {
            annotations
                .entry(LAST_APPLIED.to_owned())
                .or_insert(Derived {
                    field: format!("{field} ({LAST_APPLIED})"),
                    key: false,
                });
        }
        let data = if writes(TemplateTarget::Data) {
            existing
                .data
                .keys()
                .map(|k| {
                    let derived = Derived {
                        field: format!("{field} (data)"),
                        key: true,
                    };
                    (k.clone(), derived)
                })
                .collect()
        } else {
            DerivedMap::new()
        };
        KeptDerived {
            labels: derived(
                &existing.labels,
                MANAGED_BY_LABEL,
                writes(TemplateTarget::Labels),
            ),
            annotations,
            data,
        }
    }
}

/// A template's output: type, metadata (with what in it a template produced) and values.
struct Rendered {
    type_: String,
    labels: StringMap,
    annotations: StringMap,
    data: BTreeMap<String, SecretBytes>,
    derived_labels: DerivedMap,
    derived_annotations: DerivedMap,
    /// The data keys a template produced from the values (`KeysAndValues`).
    derived_data: DerivedMap,
    /// What varies from one rendering to the next (random draws, salts, the clock).
    marks: Option<Marks>,
}

/// What a rendering found to vary, until the body is complete.
struct Marks {
    data: BTreeSet<String>,
    labels: BTreeSet<String>,
    annotations: BTreeSet<String>,
    templates: Fingerprinter,
    provider: SecretMap,
}

impl Marks {
    fn finish(self, spec: &ExternalSecretSpec) -> Varying {
        let templates = self.templates.finish();
        let mut inputs = Fingerprinter::new();
        inputs.part(templates.bytes());
        for (key, value) in &self.provider {
            inputs.part(key.as_bytes());
            inputs.part(value.expose());
        }
        Varying {
            data: self.data,
            labels: self.labels,
            annotations: self.annotations,
            refresh: refresh_of(spec),
            templates,
            inputs: inputs.finish(),
        }
    }
}

/// Whether `spec.syncWindows` block the periodic refresh at `now` (the clock when
/// `None`): ESO's `shouldRefreshPeriodic` consults them only under `refreshPolicy`
/// Periodic with a `refreshInterval` other than 0, once the interval has passed
/// ([`crate::core::sync_window`]).
pub(super) fn sync_window_closed(spec: &ExternalSecretSpec, now: Option<jiff::Timestamp>) -> bool {
    let Some(windows) = &spec.sync_windows else {
        return false;
    };
    if !matches!(refresh_of(spec), Refresh::Periodic(Some(_))) {
        return false;
    }
    let now = now.unwrap_or_else(jiff::Timestamp::now);
    !sync_window::periodic_refresh_allowed(windows, now.as_nanosecond())
}

/// ESO's `refreshPolicy` and `refreshInterval` (default 1h, 0 never).
fn refresh_of(spec: &ExternalSecretSpec) -> Refresh {
    match spec.refresh_policy.unwrap_or_default() {
        RefreshPolicy::CreatedOnce => Refresh::CreatedOnce,
        RefreshPolicy::OnChange => Refresh::OnChange,
        RefreshPolicy::Periodic => {
            let interval = spec
                .refresh_interval
                .as_deref()
                .map_or(
                    Some(std::time::Duration::from_secs(3600)),
                    parse_go_duration,
                )
                .filter(|d| !d.is_zero());
            Refresh::Periodic(interval)
        }
    }
}

/// Which map a rendering went to, for the marks.
#[derive(Clone, Copy)]
enum Marked {
    Data,
    Labels,
    Annotations,
}

/// Whether a template's text can depend on the values: it holds a template action. Text
/// without one renders as itself, as the manifest (or ConfigMap) shows it.
fn has_action(source: &str) -> bool {
    source.contains("{{") || source.contains("{%")
}

/// Records whether the entry `key` now holds came from the values.
fn note(derived: &mut DerivedMap, key: &str, from: Option<Derived>) {
    match from {
        Some(from) => {
            derived.insert(key.to_owned(), from);
        }
        None => {
            derived.remove(key);
        }
    }
}

fn render_template(
    env: &Environment<'_>,
    engine: Engine,
    planner: &Planner<'_>,
    instance: &Instance<'_>,
    template: &SecretTemplate,
    provider: SecretMap,
) -> Result<Rendered, Failure> {
    let renderer = Renderer::new(engine, env, &provider);
    // Every template text is fingerprinted as it is rendered (cheap beside rendering);
    // the fingerprint is kept only when something varies.
    let templates = std::cell::RefCell::new(Fingerprinter::new());
    let any_varies = std::cell::Cell::new(false);
    let render = |name: &str, source: &str, field: String| {
        {
            let mut templates = templates.borrow_mut();
            templates.part(field.as_bytes());
            templates.part(source.as_bytes());
        }
        let (text, varies) = renderer.render(name, source, field)?;
        any_varies.set(any_varies.get() || varies);
        Ok::<_, Failure>((text, varies))
    };
    let mut data: BTreeMap<String, String> = BTreeMap::new();
    let mut labels = StringMap::new();
    let mut annotations = StringMap::new();
    let mut derived_labels = DerivedMap::new();
    let mut derived_annotations = DerivedMap::new();
    let mut derived_data = DerivedMap::new();
    let mut marked: [BTreeSet<String>; 3] = Default::default();
    // A key rendered again later takes the later rendering's mark.
    let mut mark = |sink: Marked, keys: Vec<String>, varies: bool| {
        let set = &mut marked[sink as usize];
        for key in keys {
            if varies {
                set.insert(key);
            } else {
                set.remove(&key);
            }
        }
    };
    for (index, from) in template.template_from.iter().enumerate() {
        let at = format!("template.templateFrom[{index}]");
        let decoding = from.values_decoding_strategy.unwrap_or_default();
        let (sink, derived, which) = match from.target.unwrap_or_default() {
            TemplateTarget::Data => (&mut data, &mut derived_data, Marked::Data),
            TemplateTarget::Labels => (&mut labels, &mut derived_labels, Marked::Labels),
            TemplateTarget::Annotations => (
                &mut annotations,
                &mut derived_annotations,
                Marked::Annotations,
            ),
        };
        // Labels and annotations are text; data keeps its bytes.
        let text = !matches!(which, Marked::Data);
        // ConfigMap and Secret items work alike: each key holds a template.
        let sources = [
            ("configMap", from.config_map.as_ref()),
            ("secret", from.secret.as_ref()),
        ];
        for (kind_field, reference) in sources {
            let Some(reference) = reference else { continue };
            let kind = if kind_field == "configMap" {
                "ConfigMap"
            } else {
                "Secret"
            };
            let object = format!("{kind} {}/{}", instance.namespace, reference.name);
            let not_found =
                || Failure::new(format!("{at}.{kind_field}"), format!("{object} not found"));
            let templates: BTreeMap<&str, Option<&str>> = if kind_field == "configMap" {
                let maps = planner.world.config_maps.get(&instance.namespace);
                let map = maps
                    .and_then(|maps| maps.get(&reference.name))
                    .ok_or_else(not_found)?;
                map.iter()
                    .map(|(k, v)| (k.as_str(), Some(v.as_str())))
                    .collect()
            } else {
                let secret = planner
                    .world
                    .secret(&instance.namespace, &reference.name)
                    .ok_or_else(not_found)?;
                secret
                    .data
                    .iter()
                    .map(|(k, v)| (k.as_str(), v.as_str()))
                    .collect()
            };
            for item in &reference.items {
                let field = format!("{at}.{kind_field}.items[{}]", item.key);
                let source = templates
                    .get(item.key.as_str())
                    .ok_or_else(|| {
                        Failure::new(field.clone(), format!("key not found in {object}"))
                    })?
                    .ok_or_else(|| Failure::new(field.clone(), "template is not UTF-8 text"))?;
                let (output, varies) = render(&item.key, source, field.clone())?;
                // A template kept in a Secret is secret itself: what it renders is too.
                let from_values = kind_field == "secret" || has_action(source);
                let keys = add_rendered(
                    Sink {
                        map: sink,
                        derived,
                        text,
                        from_values,
                    },
                    &item.key,
                    item.template_as.unwrap_or_default(),
                    (output, decoding),
                    &field,
                )?;
                mark(which, keys, varies);
            }
        }
        if let Some(literal) = &from.literal {
            let field = format!("{at}.literal");
            // ESO names a KeysAndValues template after its own text.
            let (output, varies) = render(literal, literal, field.clone())?;
            let sink = Sink {
                map: sink,
                derived,
                text,
                from_values: has_action(literal),
            };
            let keys = add_rendered(
                sink,
                "",
                TemplateScope::KeysAndValues,
                (output, decoding),
                &field,
            )?;
            mark(which, keys, varies);
        }
    }
    for (key, source) in &template.data {
        let (output, varies) = render(key, source, format!("template.data[{key}]"))?;
        data.insert(key.clone(), output);
        derived_data.remove(key);
        mark(Marked::Data, vec![key.clone()], varies);
    }
    let metadata = [
        (
            "labels",
            &template.metadata.labels,
            &mut labels,
            &mut derived_labels,
            Marked::Labels,
        ),
        (
            "annotations",
            &template.metadata.annotations,
            &mut annotations,
            &mut derived_annotations,
            Marked::Annotations,
        ),
    ];
    for (kind, sources, sink, derived, which) in metadata {
        for (key, source) in sources {
            let field = format!("template.metadata.{kind}[{key}]");
            let (output, varies) = render(key, source, field.clone())?;
            sink.insert(key.clone(), output);
            mark(which, vec![key.clone()], varies);
            let from = has_action(source).then_some(Derived { field, key: false });
            note(derived, key, from);
        }
    }
    let templated: BTreeMap<String, SecretBytes> = data
        .into_iter()
        .map(|(k, v)| {
            let bytes = gotemplate::binary::to_bytes(&v).into_owned();
            (k, SecretBytes::from(bytes))
        })
        .collect();
    let has_template_data = !template.data.is_empty() || !template.template_from.is_empty();
    let varies = any_varies.get();
    let [data_marks, label_marks, annotation_marks] = marked;
    // The values the templates read, kept for the fingerprint only when something varies.
    let inputs = varies.then(|| provider.clone());
    let merged = match (template.merge_policy.unwrap_or_default(), has_template_data) {
        (MergePolicy::Replace, true) => templated,
        (MergePolicy::Replace, false) => provider,
        (MergePolicy::Merge, _) => {
            let mut merged = provider;
            merged.extend(templated);
            merged
        }
    };
    // Something varied but every varying key was rendered again deterministically: the
    // body is as fixed as any other.
    let marks = inputs
        .filter(|_| {
            !(data_marks.is_empty() && label_marks.is_empty() && annotation_marks.is_empty())
        })
        .map(|provider| Marks {
            data: data_marks,
            labels: label_marks,
            annotations: annotation_marks,
            templates: templates.into_inner(),
            provider,
        });
    Ok(Rendered {
        type_: template.type_.clone().unwrap_or_else(|| "Opaque".into()),
        labels,
        annotations,
        data: merged,
        derived_labels,
        derived_annotations,
        // Only a key that came out of a template is hidden: every data value is.
        derived_data: derived_data.into_iter().filter(|(_, d)| d.key).collect(),
        marks,
    })
}

/// An error about rendered text: the parser's messages can quote it, so keep only what
/// precedes a quote.
fn without_values(message: &str) -> String {
    let cut = message.find(['"', '`', '\'']).unwrap_or(message.len());
    format!(
        "{} (KeysAndValues expects a YAML map of keys to string values)",
        message[..cut].trim_end_matches([' ', ':'])
    )
}

/// Where a `templateFrom` entry's output goes: data, or labels or annotations (with the
/// record of which of them the values produced).
struct Sink<'s> {
    map: &'s mut StringMap,
    /// Which entries the values produced (their keys too, for `KeysAndValues`).
    derived: &'s mut DerivedMap,
    /// Labels and annotations, whose values are strings (not data's bytes).
    text: bool,
    /// Whether the template can depend on the values (see [`has_action`]).
    from_values: bool,
}

/// Decodes one rendered value by `valuesDecodingStrategy`, as ESO's `valueScopeApply` and
/// `mapScopeApply` (runtime/template/v2) do with `decoding.Decode`. The error names the
/// key, never the value. Labels and annotations (`text`) are strings: bytes that are not
/// UTF-8 become U+FFFD, one per byte, as Go's JSON encoding writes them.
fn decode_rendered(
    (strategy, text): (DecodingStrategy, bool),
    key: Option<&str>,
    value: String,
    field: &str,
) -> Result<String, Failure> {
    if strategy == DecodingStrategy::None {
        return Ok(value);
    }
    let bytes = SecretBytes::new(gotemplate::binary::to_bytes(&value).into_owned());
    let decoded = decode(strategy, bytes).map_err(|_| {
        let (what, name) = match strategy {
            DecodingStrategy::Base64Url => ("base64url", "Base64URL"),
            _ => ("base64", "Base64"),
        };
        // A key a KeysAndValues template rendered from the values is not named.
        let of = key.map_or_else(
            || "a rendered value".to_owned(),
            |key| format!("the rendered value of key {key:?}"),
        );
        Failure::new(
            field.to_owned(),
            format!(
                "failed to decode {of}: not valid {what} \
                 (valuesDecodingStrategy: {name})\n\
                 hint: make the template render {what} text, or use valuesDecodingStrategy: Auto \
                 (keeps text that does not decode) or None"
            ),
        )
    })?;
    let carried = gotemplate::binary::from_bytes(decoded.expose());
    Ok(if text {
        gotemplate::binary::replaced(&carried).into_owned()
    } else {
        carried.into_owned()
    })
}

/// `Values`: the output is the value of `key`. `KeysAndValues`: the output is a YAML map,
/// whose keys come out of the template too. Each value is then decoded by
/// `valuesDecodingStrategy`. Returns the keys written.
fn add_rendered(
    sink: Sink<'_>,
    key: &str,
    scope: TemplateScope,
    (output, decoding): (String, DecodingStrategy),
    field: &str,
) -> Result<Vec<String>, Failure> {
    let Sink {
        map,
        derived,
        text,
        from_values,
    } = sink;
    let from = |key: bool| {
        from_values.then(|| Derived {
            field: field.to_owned(),
            key,
        })
    };
    match scope {
        TemplateScope::Values => {
            let output = decode_rendered((decoding, text), Some(key), output, field)?;
            map.insert(key.to_owned(), output);
            note(derived, key, from(false));
            Ok(vec![key.to_owned()])
        }
        TemplateScope::KeysAndValues => {
            // As ESO reads it: YAML 1.1 into a map of strings (`yes` is "true").
            let members = gotemplate::keys_and_values(&output)
                .map_err(|e| Failure::new(field.to_owned(), without_values(&e)))?;
            let keys = members.keys().cloned().collect();
            for (key, value) in members {
                let named = (!from_values).then_some(key.as_str());
                let value = decode_rendered((decoding, text), named, value, field)?;
                note(derived, &key, from(true));
                map.insert(key, value);
            }
            Ok(keys)
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::core::load::load_str;
    use crate::core::plan::{Plan, Refresh, SecretBody, plan};
    use crate::core::world::World;

    fn planned(spec_extra: &str, template: &str, password: &str) -> Plan {
        let yaml = format!(
            "---\napiVersion: v1\nkind: Namespace\nmetadata: {{name: app}}\n---\napiVersion: v1\nkind: Secret\nmetadata: {{name: src, namespace: app}}\nstringData: {{user: bot, password: {password}}}\n---\napiVersion: external-secrets.io/v1\nkind: SecretStore\nmetadata: {{name: local, namespace: app}}\nspec: {{provider: {{kubernetes: {{remoteNamespace: app}}}}}}\n---\napiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {{name: web, namespace: app}}\nspec:\n{spec_extra}  secretStoreRef: {{name: local}}\n  target:\n    template:\n{template}  dataFrom:\n  - extract: {{key: src}}\n"
        );
        let inputs = load_str("w.yaml", &yaml).unwrap_or_else(|e| panic!("{e:?}"));
        let world = World::from_inputs(&inputs).unwrap_or_else(|e| panic!("{e:?}"));
        plan(&inputs.manifests, &world, &crate::providers::Registry)
    }

    fn body(plan: &Plan) -> &SecretBody {
        assert!(plan.errors.is_empty(), "{:?}", plan.errors);
        &plan.secrets[0].body
    }

    /// ESO's ClusterExternalSecret controller skips a namespace being deleted.
    #[test]
    fn a_namespace_being_deleted_gets_nothing_from_a_cluster_external_secret() {
        let yaml = "---\napiVersion: v1\nkind: Namespace\nmetadata: {name: central}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: live, labels: {wants: 'yes'}}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: going, labels: {wants: 'yes'}}\nstatus: {phase: Terminating}\n---\napiVersion: v1\nkind: Secret\nmetadata: {name: src, namespace: central}\nstringData: {user: bot}\n---\napiVersion: external-secrets.io/v1\nkind: ClusterSecretStore\nmetadata: {name: central}\nspec: {provider: {kubernetes: {remoteNamespace: central}}}\n---\napiVersion: external-secrets.io/v1\nkind: ClusterExternalSecret\nmetadata: {name: fan}\nspec:\n  namespaceSelectors: [{matchLabels: {wants: 'yes'}}]\n  namespaces: [going]\n  externalSecretSpec:\n    secretStoreRef: {kind: ClusterSecretStore, name: central}\n    target: {name: copy}\n    dataFrom: [{extract: {key: src}}]\n";
        let inputs = load_str("w.yaml", yaml).unwrap_or_else(|e| panic!("{e:?}"));
        let world = World::from_inputs(&inputs).unwrap_or_else(|e| panic!("{e:?}"));
        assert!(world.terminating.contains("going"));
        let plan = plan(&inputs.manifests, &world, &crate::providers::Registry);
        assert!(plan.errors.is_empty(), "{:?}", plan.errors);
        let targets: Vec<&str> = plan.secrets.iter().map(|s| s.namespace.as_str()).collect();
        assert_eq!(targets, ["live"]);
    }

    const HTPASSWD: &str = "      data:\n        auth: '{{ htpasswd \"user\" .password }}'\n        user: '{{ .user }}'\n      metadata:\n        annotations: {rotated: '{{ now }}', fixed: 'x'}\n";

    #[test]
    fn a_random_template_marks_its_keys_and_only_those() {
        let first = planned("", HTPASSWD, "one");
        let varying = body(&first).varying.as_deref().expect("marked as varying");
        assert_eq!(varying.data.iter().collect::<Vec<_>>(), ["auth"]);
        assert!(varying.labels.is_empty());
        assert_eq!(varying.annotations.iter().collect::<Vec<_>>(), ["rotated"]);
        assert_eq!(
            varying.refresh,
            Refresh::Periodic(Some(std::time::Duration::from_secs(3600)))
        );
        // Same inputs, same fingerprints, though the values differ.
        let again = planned("", HTPASSWD, "one");
        let again_varying = body(&again).varying.as_deref().unwrap();
        assert_ne!(body(&first).data["auth"], body(&again).data["auth"]);
        assert_eq!(varying.inputs, again_varying.inputs);
        assert_eq!(varying.templates, again_varying.templates);
        // A source value changed: the inputs differ, the templates do not.
        let changed = planned("", HTPASSWD, "two");
        let changed_varying = body(&changed).varying.as_deref().unwrap();
        assert_ne!(varying.inputs, changed_varying.inputs);
        assert_eq!(varying.templates, changed_varying.templates);
        // A template changed: both differ.
        let edited = planned("", &HTPASSWD.replace("\"user\"", "\"admin\""), "one");
        let edited_varying = body(&edited).varying.as_deref().unwrap();
        assert_ne!(varying.templates, edited_varying.templates);
        assert_ne!(varying.inputs, edited_varying.inputs);
        // The fingerprint shows nothing in Debug.
        assert_eq!(format!("{:?}", varying.inputs), "Fingerprint(..)");
    }

    #[test]
    fn a_deterministic_template_is_not_marked() {
        let template =
            "      data:\n        auth: '{{ printf \"%s:%s\" .user .password | b64enc }}'\n";
        assert_eq!(body(&planned("", template, "one")).varying, None);
        // A random key rendered again by a later, fixed template is not marked either.
        let overridden = "      templateFrom:\n      - literal: 'auth: {{ randAlphaNum 8 }}'\n      data:\n        auth: '{{ .password }}'\n";
        assert_eq!(body(&planned("", overridden, "one")).varying, None);
    }

    #[test]
    fn keys_and_values_from_a_random_template_are_all_marked() {
        let template =
            "      templateFrom:\n      - literal: \"a: {{ randAlphaNum 8 }}\\nb: {{ .user }}\"\n";
        let planned = planned("", template, "one");
        let varying = body(&planned).varying.as_deref().unwrap();
        assert_eq!(varying.data.iter().collect::<Vec<_>>(), ["a", "b"]);
    }

    #[test]
    fn refresh_policy_and_interval_are_eso_s() {
        let refresh = |extra: &str| {
            body(&planned(extra, HTPASSWD, "one"))
                .varying
                .as_deref()
                .unwrap()
                .refresh
        };
        assert_eq!(
            refresh("  refreshInterval: 15m\n"),
            Refresh::Periodic(Some(std::time::Duration::from_secs(900)))
        );
        assert_eq!(refresh("  refreshInterval: 0s\n"), Refresh::Periodic(None));
        assert_eq!(
            refresh("  refreshPolicy: CreatedOnce\n"),
            Refresh::CreatedOnce
        );
    }

    /// Under CreatedOnce and OnChange every body says so, also one whose template does
    /// not vary, and OnChange's fingerprint follows the spec, not the source values.
    #[test]
    fn refresh_policy_marks_every_body_and_fingerprints_the_spec() {
        let fixed = "      data:\n        k: \"{{ .user }}\"\n";
        let varying = |extra: &str, password: &str| {
            body(&planned(extra, fixed, password))
                .varying
                .as_deref()
                .cloned()
        };
        assert_eq!(varying("", "one"), None);
        let once = varying("  refreshPolicy: CreatedOnce\n", "one").unwrap();
        assert_eq!(once.refresh, Refresh::CreatedOnce);
        assert!(once.data.is_empty() && once.labels.is_empty() && once.annotations.is_empty());
        let on_change = |extra: &str, password: &str| {
            varying(&format!("  refreshPolicy: OnChange\n{extra}"), password).unwrap()
        };
        let first = on_change("", "one");
        assert_eq!(first.refresh, Refresh::OnChange);
        assert_eq!(first.templates, on_change("", "two").templates);
        assert_ne!(
            first.templates,
            on_change("  refreshInterval: 2h\n", "one").templates
        );
    }

    /// A files world holding `existing` (a Secret `web` in `app`, or nothing) and an
    /// ExternalSecret `web` with `target` reading `dataFrom` from Secret `src`.
    fn with_existing(existing: &str, target: &str, source: &str, adopt: bool) -> Plan {
        let yaml = format!(
            "---\napiVersion: v1\nkind: Namespace\nmetadata: {{name: app}}\n---\napiVersion: v1\nkind: Secret\nmetadata: {{name: src, namespace: app}}\n{source}\n{existing}---\napiVersion: external-secrets.io/v1\nkind: SecretStore\nmetadata: {{name: local, namespace: app}}\nspec: {{provider: {{kubernetes: {{remoteNamespace: app}}}}}}\n---\napiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {{name: web, namespace: app}}\nspec:\n  secretStoreRef: {{name: local}}\n  target: {target}\n  dataFrom:\n  - extract: {{key: src}}\n"
        );
        let inputs = load_str("w.yaml", &yaml).unwrap_or_else(|e| panic!("{e:?}"));
        let mut world = World::from_inputs(&inputs).unwrap_or_else(|e| panic!("{e:?}"));
        world.adopt_existing = adopt;
        plan(&inputs.manifests, &world, &crate::providers::Registry)
    }

    const EXISTING: &str = "---\napiVersion: v1\nkind: Secret\nmetadata: {name: web, namespace: app, labels: {theirs: 'yes'}}\ntype: example.com/custom\nstringData: {own: kept}\n";

    /// `syncWindows` (one window 03:00-04:00 UTC every day) planned at `now`.
    fn windows_at(existing: &str, spec: &str, kind: &str, now: &str) -> Plan {
        let target = format!(
            "{{}}\n{spec}\n  syncWindows: {{kind: {kind}, windows: [{{schedule: '0 3 * * *', duration: 1h}}]}}"
        );
        let yaml = format!(
            "---\napiVersion: v1\nkind: Namespace\nmetadata: {{name: app}}\n---\napiVersion: v1\nkind: Secret\nmetadata: {{name: src, namespace: app}}\n{VALUES}\n{existing}---\napiVersion: external-secrets.io/v1\nkind: SecretStore\nmetadata: {{name: local, namespace: app}}\nspec: {{provider: {{kubernetes: {{remoteNamespace: app}}}}}}\n---\napiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {{name: web, namespace: app}}\nspec:\n  secretStoreRef: {{name: local}}\n  target: {target}\n  dataFrom:\n  - extract: {{key: src}}\n"
        );
        let inputs = load_str("w.yaml", &yaml).unwrap_or_else(|e| panic!("{e:?}"));
        let mut world = World::from_inputs(&inputs).unwrap_or_else(|e| panic!("{e:?}"));
        world.now = Some(now.parse().unwrap());
        plan(&inputs.manifests, &world, &crate::providers::Registry)
    }
    const VALUES: &str = "stringData: {user: bot}";

    fn keys(body: &SecretBody) -> Vec<&str> {
        body.data.keys().map(String::as_str).collect()
    }

    #[test]
    fn a_closed_sync_window_reprints_the_existing_target_and_never_blocks_the_first_sync() {
        use crate::core::model::CreationPolicy;
        let keys_at = |existing: &str, spec: &str, kind: &str, now: &str| {
            let plan = windows_at(existing, spec, kind, now);
            assert!(plan.errors.is_empty(), "{:?}", plan.errors);
            let body = body(&plan);
            let kept = body.creation_policy == CreationPolicy::None;
            (keys(body).join(","), kept)
        };
        let (inside, outside) = ("2026-12-05T03:30:00Z", "2026-12-05T04:00:01Z");
        let spec = "  refreshInterval: 1h";
        // deny, inside the window: the existing target as it is; outside: refreshed.
        assert_eq!(
            keys_at(EXISTING, spec, "deny", inside),
            ("own".into(), true)
        );
        assert_eq!(
            keys_at(EXISTING, spec, "deny", "2026-12-05T04:00:00Z"),
            ("own".into(), true)
        );
        assert_eq!(
            keys_at(EXISTING, spec, "deny", outside),
            ("user".into(), false)
        );
        // allow: the reverse.
        assert_eq!(
            keys_at(EXISTING, spec, "allow", inside),
            ("user".into(), false)
        );
        assert_eq!(
            keys_at(EXISTING, spec, "allow", outside),
            ("own".into(), true)
        );
        // No existing target: the first sync, which windows never block.
        assert_eq!(keys_at("", spec, "allow", outside), ("user".into(), false));
        // refreshInterval 0 and refreshPolicy CreatedOnce never consult the windows.
        for other in ["  refreshInterval: 0s", "  refreshPolicy: CreatedOnce"] {
            assert_eq!(
                keys_at(EXISTING, other, "allow", outside),
                ("user".into(), false)
            );
        }
    }

    #[test]
    fn no_data_under_retain_or_delete_writes_nothing_and_reprints_the_existing_target() {
        use crate::core::model::CreationPolicy;
        for target in ["{}", "{creationPolicy: Owner, deletionPolicy: Delete}"] {
            // No existing target: nothing at all, and no error.
            let nothing = with_existing("", target, "data: {}", false);
            assert!(nothing.errors.is_empty(), "{:?}", nothing.errors);
            assert!(nothing.secrets.is_empty(), "{target}");
            // An existing target: printed as it is, without courier's marks.
            let kept = with_existing(EXISTING, target, "data: {}", false);
            let body = body(&kept);
            assert_eq!(body.creation_policy, CreationPolicy::None);
            assert_eq!(keys(body), ["own"]);
            assert_eq!(body.type_, "example.com/custom");
            assert_eq!(
                body.labels.keys().collect::<Vec<_>>(),
                ["theirs"],
                "{target}"
            );
            assert!(body.annotations.is_empty());
        }
        // Under deletionPolicy Merge ESO goes on and writes the Secret, without keys.
        let merge = with_existing("", "{deletionPolicy: Merge}", "data: {}", false);
        let body = body(&merge);
        assert!(body.data.is_empty());
        assert_eq!(body.creation_policy, CreationPolicy::Owner);
    }

    #[test]
    fn a_missing_extract_source_under_delete_or_merge_is_skipped_in_a_files_world() {
        let yaml_target =
            |deletion: &str| format!("{{creationPolicy: Owner, deletionPolicy: {deletion}}}");
        // The source Secret `src` is absent: the existing Secret stands in its place by name only.
        let absent = |deletion: &str| {
            let yaml = format!(
                "---\napiVersion: v1\nkind: Namespace\nmetadata: {{name: app}}\n---\napiVersion: external-secrets.io/v1\nkind: SecretStore\nmetadata: {{name: local, namespace: app}}\nspec: {{provider: {{kubernetes: {{remoteNamespace: app}}}}}}\n---\napiVersion: external-secrets.io/v1\nkind: ExternalSecret\nmetadata: {{name: web, namespace: app}}\nspec:\n  secretStoreRef: {{name: local}}\n  target: {}\n  dataFrom:\n  - extract: {{key: absent}}\n",
                yaml_target(deletion)
            );
            let inputs = load_str("w.yaml", &yaml).unwrap();
            let world = World::from_inputs(&inputs).unwrap();
            plan(&inputs.manifests, &world, &crate::providers::Registry)
        };
        let delete = absent("Delete");
        assert!(delete.errors.is_empty(), "{:?}", delete.errors);
        assert!(delete.secrets.is_empty());
        let merge = absent("Merge");
        assert!(body(&merge).data.is_empty());
        // Retain still fails the target.
        assert_eq!(absent("Retain").errors.len(), 1);
    }

    #[test]
    fn an_existing_target_is_replaced_by_default_and_adopted_on_request() {
        let replaced = with_existing(EXISTING, "{}", VALUES, false);
        let body_of = |plan: &Plan| body(plan).clone();
        let replaced = body_of(&replaced);
        assert_eq!(keys(&replaced), ["user"]);
        assert_eq!(replaced.type_, "Opaque");
        assert!(!replaced.labels.contains_key("theirs"));
        for policy in ["Owner", "Orphan"] {
            let adopted = body_of(&with_existing(
                EXISTING,
                &format!("{{creationPolicy: {policy}}}"),
                VALUES,
                true,
            ));
            // ESO clears the data (only Merge and CreateOrMerge keep it), keeps the rest.
            assert_eq!(keys(&adopted), ["user"], "{policy}");
            assert_eq!(adopted.type_, "example.com/custom");
            assert_eq!(adopted.labels["theirs"], "yes");
        }
    }

    #[test]
    fn create_or_merge_merges_into_an_existing_secret_and_creates_a_missing_one() {
        use crate::core::model::CreationPolicy;
        let merged = with_existing(EXISTING, "{creationPolicy: CreateOrMerge}", VALUES, false);
        let merged = body(&merged);
        assert_eq!(keys(merged), ["own", "user"]);
        assert_eq!(merged.type_, "example.com/custom");
        assert_eq!(merged.creation_policy, CreationPolicy::CreateOrMerge);
        let created = with_existing("", "{creationPolicy: CreateOrMerge}", VALUES, false);
        assert_eq!(keys(body(&created)), ["user"]);
    }

    #[test]
    fn a_value_that_does_not_decode_fails_naming_no_value_nor_a_key_made_of_one() {
        let source = "stringData: {user: bot-secret-value, pad: 'x!'}";
        let keys_from_values = "{template: {templateFrom: [{literal: '{{ .user }}: \"{{ .pad }}\"', valuesDecodingStrategy: Base64}]}}";
        let failed = with_existing("", keys_from_values, source, false);
        let message = failed.errors[0].to_string();
        assert!(message.contains("failed to decode a rendered value: not valid base64 (valuesDecodingStrategy: Base64)"), "{message}");
        assert!(
            !message.contains("bot-secret-value") && !message.contains("x!"),
            "{message}"
        );
        // A key of the manifest's own (a ConfigMap item, a literal without actions) is named.
        let fixed = "{template: {templateFrom: [{literal: 'k: \"x!\"', valuesDecodingStrategy: Base64URL}]}}";
        let message = with_existing("", fixed, source, false).errors[0].to_string();
        assert!(
            message.contains("the rendered value of key \"k\": not valid base64url"),
            "{message}"
        );
        // Auto keeps it; None too.
        for strategy in ["Auto", "None"] {
            let kept = with_existing("", &fixed.replace("Base64URL", strategy), source, false);
            assert_eq!(body(&kept).data["k"].expose(), b"x!");
        }
        let decoded = "{template: {templateFrom: [{literal: 'k: \"aGk=\"', valuesDecodingStrategy: Base64}]}}";
        assert_eq!(
            body(&with_existing("", decoded, source, false)).data["k"].expose(),
            b"hi"
        );
    }

    #[test]
    fn an_immutable_existing_secret_whose_data_would_change_fails_naming_no_value() {
        let immutable = "---\napiVersion: v1\nkind: Secret\nmetadata: {name: web, namespace: app}\nimmutable: true\nstringData: {user: old-secret-value}\n";
        let failed = with_existing(immutable, "{creationPolicy: Orphan}", VALUES, false);
        assert!(failed.secrets.is_empty());
        let message = failed.errors[0].to_string();
        assert!(message.contains("app/web is immutable"), "{message}");
        assert!(!message.contains("old-secret-value") && !message.contains("bot"));
        // The same data: nothing changes, nothing fails.
        let same = "---\napiVersion: v1\nkind: Secret\nmetadata: {name: web, namespace: app}\nimmutable: true\nstringData: {user: bot}\n";
        assert!(with_existing(same, "{}", VALUES, false).errors.is_empty());
        // target.immutable keeps the existing data: no change, no error.
        let kept = with_existing(immutable, "{immutable: true}", VALUES, false);
        assert_eq!(body(&kept).data["user"].expose(), b"old-secret-value");
    }
}
