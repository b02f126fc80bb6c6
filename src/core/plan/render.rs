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
use crate::core::model::{MergePolicy, SecretTemplate, StringMap, TemplateScope, TemplateTarget};
use crate::core::provider::{SecretMap, SecretsClient};
use crate::core::secret_bytes::SecretBytes;

pub(super) fn render_body(
    env: &Environment<'_>,
    planner: &Planner<'_>,
    instance: &Instance<'_>,
    client: &dyn SecretsClient,
) -> Result<SecretBody, Failure> {
    let spec = instance.spec;
    let engine = planner.owners[instance.owner_index].engine.clone()?;
    let provider = fetch_values(client, spec)?;
    let (type_, mut labels, mut annotations, data) = match &spec.target.template {
        None => (
            "Opaque".to_owned(),
            instance.metadata_labels.clone(),
            instance.metadata_annotations.clone(),
            provider,
        ),
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
    annotations.insert(
        ORIGIN_ANNOTATION.into(),
        planner.owners[instance.owner_index].display.to_string(),
    );
    Ok(SecretBody {
        type_,
        labels,
        annotations,
        data,
        immutable: spec.target.immutable,
        creation_policy: spec.target.creation_policy.unwrap_or_default(),
        deletion_policy: spec.target.deletion_policy.unwrap_or_default(),
    })
}

type Rendered = (String, StringMap, StringMap, BTreeMap<String, SecretBytes>);

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
    for (index, from) in template.template_from.iter().enumerate() {
        let at = format!("template.templateFrom[{index}]");
        let sink = match from.target.unwrap_or_default() {
            TemplateTarget::Data => &mut data,
            TemplateTarget::Labels => &mut labels,
            TemplateTarget::Annotations => &mut annotations,
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
                add_rendered(
                    sink,
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
            add_rendered(sink, "", TemplateScope::KeysAndValues, output, &field)?;
        }
    }
    for (key, source) in &template.data {
        data.insert(
            key.clone(),
            render(key, source, format!("template.data[{key}]"))?,
        );
    }
    for (key, source) in &template.metadata.labels {
        labels.insert(
            key.clone(),
            render(key, source, format!("template.metadata.labels[{key}]"))?,
        );
    }
    for (key, source) in &template.metadata.annotations {
        annotations.insert(
            key.clone(),
            render(key, source, format!("template.metadata.annotations[{key}]"))?,
        );
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
    Ok((
        template.type_.clone().unwrap_or_else(|| "Opaque".into()),
        labels,
        annotations,
        merged,
    ))
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

/// `Values`: the output is the value of `key`. `KeysAndValues`: the output is a YAML map.
fn add_rendered(
    sink: &mut StringMap,
    key: &str,
    scope: TemplateScope,
    output: String,
    field: &str,
) -> Result<(), Failure> {
    match scope {
        TemplateScope::Values => {
            sink.insert(key.to_owned(), output);
        }
        TemplateScope::KeysAndValues => {
            // As ESO reads it: YAML 1.1 into a map of strings (`yes` is "true").
            let members = gotemplate::keys_and_values(&output)
                .map_err(|e| Failure::new(field.to_owned(), without_values(&e)))?;
            sink.extend(members);
        }
    }
    Ok(())
}
