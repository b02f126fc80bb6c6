//! Static checks of an ExternalSecret spec: everything that can be wrong without reading
//! a value (keys, regular expressions, selectors, unsupported features, template syntax).

use std::sync::LazyLock;

use minijinja::Environment;
use regex::Regex;

use super::engine::{Engine, validate as validate_template};
use super::stores::entry_store;
use super::types::Failure;
use crate::core::model::{ExternalSecretSpec, LabelSelector};

/// Keys Kubernetes accepts in Secret data (ESO's key pattern).
pub(super) static SECRET_KEY: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^[-._a-zA-Z0-9]+$").expect("static pattern"));

pub(super) fn compile_rewrite(pattern: &str, field: &str) -> Result<Regex, Failure> {
    Regex::new(pattern)
        .map_err(|e| Failure::new(field.to_owned(), format!("invalid regular expression: {e}")))
}

/// Static checks of one spec.
pub(super) fn validate_spec(
    env: &Environment<'_>,
    spec: &ExternalSecretSpec,
    engine: Engine,
) -> Result<(), Failure> {
    for (index, entry) in spec.data_from.iter().enumerate() {
        let at = format!("dataFrom[{index}]");
        entry_store(entry.source_ref.as_ref(), &at)?;
        match (&entry.extract, &entry.find) {
            (None, None) => return Err(Failure::new(at, "needs `extract` or `find`")),
            (_, Some(find)) => {
                if let Some(name) = &find.name {
                    compile_rewrite(&name.regexp, &format!("{at}.find.name.regexp"))?;
                }
                if let Some(tags) = &find.tags {
                    LabelSelector {
                        match_labels: tags.clone(),
                        ..Default::default()
                    }
                    .compile()
                    .map_err(|e| Failure::new(format!("{at}.find.tags"), e.to_string()))?;
                }
            }
            (Some(extract), None) if extract.key.is_empty() => {
                return Err(Failure::new(
                    format!("{at}.extract.key"),
                    "is empty; it names the source Secret",
                ));
            }
            _ => {}
        }
        for (rewrite_index, rewrite) in entry.rewrite.iter().enumerate() {
            let field = format!("{at}.rewrite[{rewrite_index}]");
            if let Some(transform) = &rewrite.transform {
                let source = transform_template(transform)
                    .map_err(|m| Failure::new(format!("{field}.transform"), m))?;
                validate_template(Engine::Go, env, "transform", source)
                    .map_err(|m| Failure::new(format!("{field}.transform"), m))?;
            }
            if let Some(regexp) = &rewrite.regexp {
                compile_rewrite(&regexp.source, &format!("{field}.regexp.source"))?;
            }
        }
    }
    for (index, entry) in spec.data.iter().enumerate() {
        let at = data_field(index, &entry.secret_key);
        if entry.secret_key.is_empty() {
            return Err(Failure::new(at, "secretKey is empty"));
        }
        if !SECRET_KEY.is_match(&entry.secret_key) {
            return Err(Failure::new(
                at,
                "secretKey must consist of alphanumerics, '-', '_' or '.'",
            ));
        }
        entry_store(entry.source_ref.as_ref(), &format!("data[{index}]"))?;
        if entry.remote_ref.key.is_empty() {
            return Err(Failure::new(
                at,
                "remoteRef.key is empty; it names the source Secret",
            ));
        }
    }
    if let Some(template) = &spec.target.template {
        let check = |key: &str, source: &str, field: String| {
            validate_template(engine, env, key, source).map_err(|m| Failure::new(field, m))
        };
        for (key, source) in &template.data {
            check(key, source, format!("template.data[{key}]"))?;
        }
        for (key, source) in &template.metadata.labels {
            check(key, source, format!("template.metadata.labels[{key}]"))?;
        }
        for (key, source) in &template.metadata.annotations {
            check(key, source, format!("template.metadata.annotations[{key}]"))?;
        }
        for (index, from) in template.template_from.iter().enumerate() {
            if let Some(literal) = &from.literal {
                check(
                    literal,
                    literal,
                    format!("template.templateFrom[{index}].literal"),
                )?;
            }
        }
    }
    Ok(())
}

pub(super) fn data_field(index: usize, secret_key: &str) -> String {
    format!("data[{index}] (secretKey {secret_key:?})")
}

/// `rewrite[].transform.template`.
pub(super) fn transform_template(transform: &serde_json::Value) -> Result<&str, String> {
    transform
        .get("template")
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| "needs `template`, a Go template over {{ .value }}".to_owned())
}
