//! Rendering one target's body: the fetched values through `target.template`
//! (`data`, `metadata`, `templateFrom`, `mergePolicy`), and courier's labels and
//! annotations. No digest of the values is written anywhere: it would let whoever sees
//! the metadata confirm a guessed value.

use std::collections::BTreeMap;

use minijinja::Environment;

use super::engine::{Engine, Renderer};
use super::fetch::fetch_values;
use super::targets::{Instance, Planner};
use super::types::{Failure, SecretBody};
use super::validate::SECRET_KEY;
use crate::core::gotemplate;
use crate::core::labels::{MANAGED_BY_LABEL, MANAGED_BY_VALUE, ORIGIN_ANNOTATION};
use crate::core::model::{
    CreationPolicy, MergePolicy, SecretTemplate, StringMap, TemplateScope, TemplateTarget,
};
use crate::core::provider::{SecretMap, SecretsClient};
use crate::core::redact::{Derived, DerivedMap};
use crate::core::secret_bytes::SecretBytes;
use crate::core::validate_secret::{self, Candidate};

pub(super) fn render_body(
    env: &Environment<'_>,
    planner: &Planner<'_>,
    instance: &Instance<'_>,
    client: &dyn SecretsClient,
) -> Result<SecretBody, Failure> {
    let spec = instance.spec;
    let engine = planner.owners[instance.owner_index].engine.clone()?;
    let provider = fetch_values(client, spec)?;
    let Rendered {
        type_,
        mut labels,
        mut annotations,
        data,
        mut derived_labels,
        mut derived_annotations,
    } = match &spec.target.template {
        None => Rendered {
            type_: "Opaque".to_owned(),
            labels: instance.metadata_labels.clone(),
            annotations: instance.metadata_annotations.clone(),
            data: provider,
            derived_labels: DerivedMap::new(),
            derived_annotations: DerivedMap::new(),
        },
        Some(template) => render_template(env, engine, planner, instance, template, provider)?,
    };
    for key in data.keys() {
        if !SECRET_KEY.is_match(key) {
            return Err(Failure::new(
                format!("key {key:?}"),
                "is not a valid Secret key (alphanumerics, '-', '_' or '.'); rename it with dataFrom[].rewrite",
            ));
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
    let creation_policy = spec.target.creation_policy.unwrap_or_default();
    validate_secret::validate(&Candidate {
        type_: &type_,
        labels: &labels,
        annotations: &annotations,
        derived_labels: &derived_labels,
        derived_annotations: &derived_annotations,
        data: &data,
        merge: creation_policy == CreationPolicy::Merge,
    })
    .map_err(|refusal| Failure::new(refusal.field, refusal.message))?;
    Ok(SecretBody {
        type_,
        labels,
        annotations,
        derived_labels,
        derived_annotations,
        data,
        immutable: spec.target.immutable,
        creation_policy,
        deletion_policy: spec.target.deletion_policy.unwrap_or_default(),
    })
}

/// A template's output: type, metadata (with what in it a template produced) and values.
struct Rendered {
    type_: String,
    labels: StringMap,
    annotations: StringMap,
    data: BTreeMap<String, SecretBytes>,
    derived_labels: DerivedMap,
    derived_annotations: DerivedMap,
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
    let render = |name: &str, source: &str, field: String| renderer.render(name, source, field);
    let mut data: BTreeMap<String, String> = BTreeMap::new();
    let mut labels = StringMap::new();
    let mut annotations = StringMap::new();
    let mut derived_labels = DerivedMap::new();
    let mut derived_annotations = DerivedMap::new();
    for (index, from) in template.template_from.iter().enumerate() {
        let at = format!("template.templateFrom[{index}]");
        let (sink, mut derived) = match from.target.unwrap_or_default() {
            TemplateTarget::Data => (&mut data, None),
            TemplateTarget::Labels => (&mut labels, Some(&mut derived_labels)),
            TemplateTarget::Annotations => (&mut annotations, Some(&mut derived_annotations)),
        };
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
                let output = render(&item.key, source, field.clone())?;
                // A template kept in a Secret is secret itself: what it renders is too.
                let from_values = kind_field == "secret" || has_action(source);
                add_rendered(
                    Sink {
                        map: sink,
                        derived: derived.as_deref_mut(),
                        from_values,
                    },
                    &item.key,
                    item.template_as.unwrap_or_default(),
                    output,
                    &field,
                )?;
            }
        }
        if let Some(literal) = &from.literal {
            let field = format!("{at}.literal");
            // ESO names a KeysAndValues template after its own text.
            let output = render(literal, literal, field.clone())?;
            let sink = Sink {
                map: sink,
                derived,
                from_values: has_action(literal),
            };
            add_rendered(sink, "", TemplateScope::KeysAndValues, output, &field)?;
        }
    }
    for (key, source) in &template.data {
        data.insert(
            key.clone(),
            render(key, source, format!("template.data[{key}]"))?,
        );
    }
    let metadata = [
        (
            "labels",
            &template.metadata.labels,
            &mut labels,
            &mut derived_labels,
        ),
        (
            "annotations",
            &template.metadata.annotations,
            &mut annotations,
            &mut derived_annotations,
        ),
    ];
    for (kind, sources, sink, derived) in metadata {
        for (key, source) in sources {
            let field = format!("template.metadata.{kind}[{key}]");
            sink.insert(key.clone(), render(key, source, field.clone())?);
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
    let merged = match (template.merge_policy.unwrap_or_default(), has_template_data) {
        (MergePolicy::Replace, true) => templated,
        (MergePolicy::Replace, false) => provider,
        (MergePolicy::Merge, _) => {
            let mut merged = provider;
            merged.extend(templated);
            merged
        }
    };
    Ok(Rendered {
        type_: template.type_.clone().unwrap_or_else(|| "Opaque".into()),
        labels,
        annotations,
        data: merged,
        derived_labels,
        derived_annotations,
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
    derived: Option<&'s mut DerivedMap>,
    /// Whether the template can depend on the values (see [`has_action`]).
    from_values: bool,
}

/// `Values`: the output is the value of `key`. `KeysAndValues`: the output is a YAML map,
/// whose keys come out of the template too.
fn add_rendered(
    sink: Sink<'_>,
    key: &str,
    scope: TemplateScope,
    output: String,
    field: &str,
) -> Result<(), Failure> {
    let Sink {
        map,
        mut derived,
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
            map.insert(key.to_owned(), output);
            if let Some(derived) = derived.as_deref_mut() {
                note(derived, key, from(false));
            }
        }
        TemplateScope::KeysAndValues => {
            // As ESO reads it: YAML 1.1 into a map of strings (`yes` is "true").
            let members = gotemplate::keys_and_values(&output)
                .map_err(|e| Failure::new(field.to_owned(), without_values(&e)))?;
            for (key, value) in members {
                if let Some(derived) = derived.as_deref_mut() {
                    note(derived, &key, from(true));
                }
                map.insert(key, value);
            }
        }
    }
    Ok(())
}
