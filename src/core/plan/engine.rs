//! Which language a manifest's templates are in: ESO's Go templates (engine v2), as ESO
//! runs them, unless the manifest opts into courier's minijinja dialect with the
//! annotation `courier.dev/template-engine: minijinja` (which ESO's CRDs accept and
//! ignore).

use minijinja::Environment;

use super::types::Failure;
use crate::core::gotemplate;
use crate::core::labels::TEMPLATE_ENGINE_ANNOTATION;
use crate::core::model::{ExternalSecretSpec, StringMap};
use crate::core::provider::SecretMap;
use crate::core::template;

/// A template language.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    /// Go `text/template` with sprig, as ESO's engine v2.
    Go,
    /// courier's minijinja dialect, with its filters and built-in shapes.
    Minijinja,
}

/// The language a manifest (its own annotations, and its ExternalSecret spec) asks for.
pub(super) fn engine_of(
    annotations: &StringMap,
    spec: &ExternalSecretSpec,
) -> Result<Engine, Failure> {
    let engine = match annotations
        .get(TEMPLATE_ENGINE_ANNOTATION)
        .map(String::as_str)
    {
        None | Some("go") => Engine::Go,
        Some("minijinja") => Engine::Minijinja,
        Some(other) => {
            return Err(Failure::new(
                format!("metadata.annotations[{TEMPLATE_ENGINE_ANNOTATION}]"),
                format!(
                    "{other:?} is not a template engine: use go (the default, ESO's) or minijinja"
                ),
            ));
        }
    };
    let version = spec
        .target
        .template
        .as_ref()
        .and_then(|t| t.engine_version.as_deref());
    if engine == Engine::Go && version.is_some_and(|v| v != "v2") {
        return Err(Failure::new(
            "template.engineVersion".to_owned(),
            format!(
                "{:?} is not supported: courier runs ESO's engine v2 (Go templates with sprig); write engineVersion: v2",
                version.unwrap_or_default()
            ),
        ));
    }
    Ok(engine)
}

/// Renders one template of a target.
pub(super) struct Renderer<'a> {
    engine: Engine,
    env: &'a Environment<'a>,
    values: &'a SecretMap,
    context: Option<minijinja::Value>,
}

impl<'a> Renderer<'a> {
    pub(super) fn new(engine: Engine, env: &'a Environment<'a>, values: &'a SecretMap) -> Self {
        let context = (engine == Engine::Minijinja).then(|| template::context(values));
        Self {
            engine,
            env,
            values,
            context,
        }
    }

    /// `name` is what ESO names the template (the key), so Go's positions read
    /// `template: <key>:1:3`. Also says whether the output varies from one rendering to
    /// the next (see [`gotemplate::render_once`]); courier's minijinja dialect has no
    /// random or clock function, so its output never does.
    pub(super) fn render(
        &self,
        name: &str,
        source: &str,
        field: String,
    ) -> Result<(String, bool), Failure> {
        match (&self.engine, &self.context) {
            (Engine::Minijinja, Some(context)) => template::render(self.env, source, context)
                .map(|text| (text, false))
                .map_err(|e| Failure::new(field, e.message)),
            _ => gotemplate::render_once(name, source, self.values).map_err(|e| {
                let message = with_keys(e.message, self.values);
                Failure::new(
                    field,
                    with_renamed_function(with_hint(self.env, source, message)),
                )
            }),
        }
    }
}

/// Checks that a template parses, without values (for `check`).
pub(super) fn validate(
    engine: Engine,
    env: &Environment<'_>,
    name: &str,
    source: &str,
) -> Result<(), String> {
    match engine {
        Engine::Minijinja => template::validate(env, source).map_err(|e| e.message),
        Engine::Go => gotemplate::validate(name, source)
            .map_err(|e| e.message)
            .and_then(|()| undefined_function(source))
            .map_err(|message| with_renamed_function(with_hint(env, source, message))),
    }
}

/// Go's parser refuses a call of a function the template does not know (`function
/// "base64encode" not defined`), so ESO refuses such a template before it reads a value;
/// gotmpl finds it only when executing. This finds it without data: every bare
/// identifier of every action that is neither a keyword nor a function.
fn undefined_function(source: &str) -> Result<(), String> {
    const KEYWORDS: [&str; 13] = [
        "if", "else", "end", "range", "with", "template", "define", "block", "break", "continue",
        "nil", "true", "false",
    ];
    let mut rest = source;
    while let Some(start) = rest.find("{{") {
        let action = &rest[start + 2..];
        // The action's text up to its `}}`, with literals and comments blanked out.
        let mut text = String::new();
        let mut chars = action.char_indices().peekable();
        let mut end = action.len();
        while let Some((at, c)) = chars.next() {
            match c {
                '}' if action[at..].starts_with("}}") => {
                    end = at + 2;
                    break;
                }
                '/' if action[at..].starts_with("/*") => {
                    let close = action[at + 2..]
                        .find("*/")
                        .map_or(action.len(), |i| at + 4 + i);
                    while chars.peek().is_some_and(|(i, _)| *i < close) {
                        chars.next();
                    }
                    text.push(' ');
                }
                '"' | '\'' | '`' => {
                    let mut escaped = false;
                    for (_, d) in chars.by_ref() {
                        if d == c && !escaped {
                            break;
                        }
                        escaped = c != '`' && d == '\\' && !escaped;
                    }
                    text.push(' ');
                }
                other => text.push(other),
            }
        }
        rest = &action[end.min(action.len())..];
        let words = text.split(|c: char| !(c.is_alphanumeric() || matches!(c, '_' | '.' | '$')));
        for word in words {
            let is_identifier = word
                .chars()
                .next()
                .is_some_and(|c| c.is_alphabetic() || c == '_')
                && !word.contains('.');
            if is_identifier && !KEYWORDS.contains(&word) && !gotemplate::is_function(word) {
                // In gotmpl's words, so check and render read the same.
                return Err(format!("undefined function: {word}"));
            }
        }
    }
    Ok(())
}

/// A missing key (`{{ .usernme }}`) is a typo or a key the source lacks: name the keys
/// the template can use (names only, never values), and the closest one.
fn with_keys(message: String, values: &SecretMap) -> String {
    const MISSING: &str = "map has no entry for key: ";
    let Some(at) = message.find(MISSING) else {
        return message;
    };
    let wanted = message[at + MISSING.len()..]
        .split(|c: char| c.is_whitespace() || c == '"')
        .next()
        .unwrap_or("");
    let keys: Vec<&str> = values.keys().map(String::as_str).collect();
    let suggestion = crate::core::suggest::did_you_mean(wanted, keys.iter().copied())
        .map(|k| format!(" (did you mean .{k}?)"))
        .unwrap_or_default();
    let listed = if keys.len() > 20 {
        format!("{}, ... ({} keys)", keys[..20].join(", "), keys.len())
    } else {
        keys.join(", ")
    };
    // `{{ .tls.crt }}` reads key `tls`, then its field `crt`: a key with a dot needs `index`.
    let dotted = keys.iter().find(|k| {
        k.strip_prefix(wanted)
            .is_some_and(|rest| rest.starts_with('.'))
    });
    if let Some(dotted) = dotted {
        return format!(
            "{message}\nhint: a key with a dot is read with index: {{{{ index . \"{dotted}\" }}}}"
        );
    }
    format!("{message}\nhint: the keys this template can use: {listed}{suggestion}")
}

/// ESO v1's template function names that ESO v2 (and courier) renamed.
const RENAMED_FUNCTIONS: [(&str, &str); 4] = [
    ("base64encode", "b64enc"),
    ("base64decode", "b64dec"),
    ("fromJSON", "fromJson"),
    ("toJSON", "toJson"),
];

/// An ESO v1 function name in a Go template: name its ESO v2 spelling.
fn with_renamed_function(message: String) -> String {
    let renamed = RENAMED_FUNCTIONS.iter().find(|(old, _)| {
        message
            .split(|c: char| !c.is_ascii_alphanumeric())
            .any(|word| word == *old)
    });
    match renamed {
        Some((old, new)) if message.contains("function") => format!(
            "{message}\nhint: {old} is ESO v1's name (engineVersion v1); ESO v2 templates call it {new}"
        ),
        _ => message,
    }
}

/// A Go template that does not parse but would as minijinja is probably courier's old
/// dialect: say how to keep it or convert it.
fn with_hint(env: &Environment<'_>, source: &str, message: String) -> String {
    // gotmpl finds an unknown function when executing, where Go finds it when parsing.
    let not_go =
        message.contains("undefined function") || gotemplate::validate("t", source).is_err();
    if not_go && template::validate(env, source).is_ok() {
        format!(
            "{message}\nhint: this is courier's minijinja dialect; ESO's templates are Go templates ({{{{ .key }}}}); keep minijinja with the annotation {TEMPLATE_ENGINE_ANNOTATION}: minijinja"
        )
    } else {
        message
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_undefined_function_is_found_without_data() {
        for (source, word) in [
            ("{{ .token | base64encode }}", "base64encode"),
            ("{{- toJSON . -}}", "toJSON"),
            ("{{ if .a }}{{ env \"HOME\" }}{{ end }}", "env"),
        ] {
            let error = undefined_function(source).unwrap_err();
            assert_eq!(error, format!("undefined function: {word}"));
        }
    }

    /// Of the differential corpus's templates that gotmpl parses, only the one Go's
    /// parser refuses for its unknown function is refused: none ESO accepts.
    #[test]
    fn no_template_of_the_differential_corpus_is_refused_wrongly() {
        let text = include_str!("../../../tests/go_templates/corpus.yaml");
        let corpus: serde_json::Value = serde_saphyr::from_str(text).unwrap();
        let mut flagged = Vec::new();
        for (name, source) in corpus["templates"].as_object().unwrap() {
            let source = source.as_str().unwrap();
            if gotemplate::validate(name, source).is_err() {
                continue;
            }
            if let Err(e) = undefined_function(source) {
                flagged.push(format!("{name}: {e}"));
            }
        }
        assert_eq!(
            flagged,
            ["syntax-unknown-function: undefined function: nosuchfunction"]
        );
    }
}
