//! The minijinja environment courier renders `target.template` with, its filters, and
//! the built-in secret shapes from `templates/shapes/`.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use base64::Engine as _;
use minijinja::value::{Serde, Value, ValueKind};
use minijinja::{AutoEscape, Environment, Error, ErrorKind, State, UndefinedBehavior};
use regex::Regex;
use sha2::{Digest, Sha256};

use crate::core::secret_bytes::SecretBytes;

/// Fuel (roughly, instructions) one template may spend: generous for real templates,
/// finite for loops that never end.
pub const TEMPLATE_FUEL: u64 = 2_000_000;

const SHAPES: [(&str, &str); 1] = [(
    "dockerconfigjson",
    include_str!("../../templates/shapes/dockerconfigjson.j2"),
)];

/// Why a template failed. Never holds a value: runtime messages are scrubbed of quoted text.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct TemplateError {
    /// What went wrong, with the template line when known.
    pub message: String,
}

/// Builds courier's template environment.
pub fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::SemiStrict);
    env.set_auto_escape_callback(|_| AutoEscape::None);
    env.set_debug(false);
    env.set_fuel(Some(TEMPLATE_FUEL));
    env.set_recursion_limit(100);
    env.add_filter("b64enc", b64enc);
    env.add_filter("b64dec", b64dec);
    env.add_filter("fromjson", fromjson);
    env.add_filter("sha256", sha256);
    env.add_filter("tojson", tojson);
    for (name, source) in SHAPES {
        env.add_template(name, source)
            .expect("built-in shape templates compile");
    }
    env.add_function("dockerconfigjson", dockerconfigjson);
    env
}

/// The context a template sees: every key as a variable, and the whole map as `data`.
pub fn context(values: &BTreeMap<String, SecretBytes>) -> Value {
    let mut map: BTreeMap<String, Value> = values
        .iter()
        .map(|(k, v)| (k.clone(), secret_value(v)))
        .collect();
    let data = Value::from_pairs(map.iter().map(|(k, v)| (k.clone(), v.clone())));
    map.insert("data".into(), data);
    Value::from_pairs(map)
}

fn secret_value(bytes: &SecretBytes) -> Value {
    match bytes.as_str() {
        Some(text) => Value::from(text),
        None => Value::from_bytes(bytes.expose().to_vec()),
    }
}

/// Checks a template compiles, without rendering it (for `check`).
pub fn validate(env: &Environment<'_>, source: &str) -> Result<(), TemplateError> {
    reject_go_template(source)?;
    env.template_from_str(source)
        .map(|_| ())
        .map_err(|e| compile_error(&e))
}

/// Renders one template against `context`.
pub fn render(
    env: &Environment<'_>,
    source: &str,
    context: &Value,
) -> Result<String, TemplateError> {
    reject_go_template(source)?;
    let template = env
        .template_from_str(source)
        .map_err(|e| compile_error(&e))?;
    template.render(context).map_err(|e| runtime_error(&e))
}

fn compile_error(error: &Error) -> TemplateError {
    TemplateError {
        message: format!(
            "template syntax error{}: {}",
            at_line(error),
            describe(error)
        ),
    }
}

fn runtime_error(error: &Error) -> TemplateError {
    static QUOTED: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r#""(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'"#).expect("static pattern")
    });
    let message = QUOTED.replace_all(&describe(error), "…").into_owned();
    TemplateError {
        message: format!("template failed{}: {message}", at_line(error)),
    }
}

fn describe(error: &Error) -> String {
    match error.detail() {
        Some(detail) => format!("{}: {detail}", error.kind()),
        None => error.kind().to_string(),
    }
}

fn at_line(error: &Error) -> String {
    error
        .line()
        .map(|line| format!(" at line {line}"))
        .unwrap_or_default()
}

/// ESO templates are Go templates (`{{ .username }}`); courier's are minijinja. A Go
/// template would otherwise fail with a confusing parse error, so say what to write.
fn reject_go_template(source: &str) -> Result<(), TemplateError> {
    static GO_FIELD: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"\{\{-?\s*(?:[A-Za-z0-9_]+\s+)*\.([A-Za-z_][A-Za-z0-9_]*)?[^}]*\}\}")
            .expect("static pattern")
    });
    let Some(found) = GO_FIELD.captures(source) else {
        return Ok(());
    };
    let suggestion = match found.get(1) {
        Some(field) => format!("{{{{ {} }}}}", field.as_str()),
        None => "{{ data }}".to_owned(),
    };
    Err(TemplateError {
        message: format!(
            "uses ESO's Go-template syntax `{}`; courier templates are minijinja: write `{suggestion}` \
             (keys with dashes or dots: `{{{{ data['tls.crt'] }}}}`; functions are filters: `{{{{ password | b64enc }}}}`)",
            found.get(0).map_or("", |m| m.as_str())
        ),
    })
}

fn bytes_of(value: &Value) -> Result<Vec<u8>, Error> {
    if let Some(text) = value.as_str() {
        return Ok(text.as_bytes().to_vec());
    }
    if let Some(bytes) = value.as_bytes() {
        return Ok(bytes.to_vec());
    }
    match value.kind() {
        ValueKind::Undefined => Err(Error::new(
            ErrorKind::UndefinedError,
            "the value is undefined",
        )),
        ValueKind::Number | ValueKind::Bool => Ok(value.to_string().into_bytes()),
        kind => Err(Error::new(
            ErrorKind::InvalidOperation,
            format!("expected text or bytes, got {kind}"),
        )),
    }
}

fn b64enc(value: &Value) -> Result<String, Error> {
    Ok(base64::engine::general_purpose::STANDARD.encode(bytes_of(value)?))
}

fn b64dec(value: &Value) -> Result<Value, Error> {
    let bytes = bytes_of(value)?;
    let compact: Vec<u8> = bytes
        .into_iter()
        .filter(|b| !b.is_ascii_whitespace())
        .collect();
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(&compact)
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(&compact))
        .map_err(|_| {
            Error::new(
                ErrorKind::InvalidOperation,
                "b64dec: the value is not valid base64",
            )
        })?;
    Ok(match String::from_utf8(decoded) {
        Ok(text) => Value::from(text),
        Err(e) => Value::from_bytes(e.into_bytes()),
    })
}

fn fromjson(value: &Value) -> Result<Value, Error> {
    let bytes = bytes_of(value)?;
    let parsed: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
        Error::new(
            ErrorKind::InvalidOperation,
            format!(
                "fromjson: not valid JSON (line {}, column {})",
                e.line(),
                e.column()
            ),
        )
    })?;
    Ok(Value::from(Serde(parsed)))
}

/// Compact JSON, like ESO's sprig `toJson` (minijinja's own adds spaces and HTML escapes);
/// `tojson(indent=2)` pretty-prints.
fn tojson(value: &Value, indent: Option<usize>) -> Result<Value, Error> {
    let failed = |_| {
        Error::new(
            ErrorKind::InvalidOperation,
            "tojson: the value cannot be written as JSON",
        )
    };
    let text = match indent {
        None => serde_json::to_string(value).map_err(failed)?,
        Some(width) => {
            let indent = " ".repeat(width);
            let formatter = serde_json::ser::PrettyFormatter::with_indent(indent.as_bytes());
            let mut out = Vec::new();
            let mut serializer = serde_json::Serializer::with_formatter(&mut out, formatter);
            serde::Serialize::serialize(value, &mut serializer).map_err(failed)?;
            String::from_utf8(out)
                .map_err(|_| Error::new(ErrorKind::InvalidOperation, "tojson: not UTF-8"))?
        }
    };
    Ok(Value::from_safe_string(text))
}

fn sha256(value: &Value) -> Result<String, Error> {
    let digest = Sha256::digest(bytes_of(value)?);
    Ok(digest.iter().map(|b| format!("{b:02x}")).collect())
}

fn dockerconfigjson(
    state: &State,
    registry: &Value,
    username: &Value,
    password: &Value,
) -> Result<String, Error> {
    let text = |v: &Value, what: &str| {
        bytes_of(v).and_then(|b| {
            String::from_utf8(b).map_err(|_| {
                Error::new(
                    ErrorKind::InvalidOperation,
                    format!("dockerconfigjson: {what} is not text"),
                )
            })
        })
    };
    let context = minijinja::context! {
        registry => text(registry, "registry")?,
        username => text(username, "username")?,
        password => text(password, "password")?,
    };
    state
        .env()
        .get_template("dockerconfigjson")?
        .render(context)
        .map(|s| s.trim().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(pairs: &[(&str, &str)]) -> BTreeMap<String, SecretBytes> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), SecretBytes::from(*v)))
            .collect()
    }

    fn render_one(source: &str, pairs: &[(&str, &str)]) -> Result<String, TemplateError> {
        render(&environment(), source, &context(&values(pairs)))
    }

    #[test]
    fn keys_are_variables_and_data_holds_them_all() {
        let out = render_one(
            "{{ username }}:{{ data['tls.crt'] }}",
            &[("username", "u"), ("tls.crt", "C")],
        )
        .unwrap();
        assert_eq!(out, "u:C");
    }

    #[test]
    fn filters() {
        assert_eq!(
            render_one("{{ v | b64enc }}", &[("v", "hi")]).unwrap(),
            "aGk="
        );
        assert_eq!(
            render_one("{{ v | b64dec }}", &[("v", "aGk=")]).unwrap(),
            "hi"
        );
        assert_eq!(
            render_one("{{ (v | fromjson).a.b }}", &[("v", r#"{"a":{"b":7}}"#)]).unwrap(),
            "7"
        );
        assert_eq!(
            render_one("{{ v | sha256 }}", &[("v", "abc")]).unwrap(),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            render_one("{{ {'a': v} | tojson }}", &[("v", "x")]).unwrap(),
            r#"{"a":"x"}"#
        );
        assert_eq!(render_one("{{ v | upper }}", &[("v", "x")]).unwrap(), "X");
    }

    #[test]
    fn no_html_escaping() {
        assert_eq!(render_one("{{ v }}", &[("v", "<a&b>")]).unwrap(), "<a&b>");
    }

    #[test]
    fn dockerconfigjson_shape() {
        let out = render_one(
            "{{ dockerconfigjson('ghcr.io', user, token) }}",
            &[("user", "bot"), ("token", "t")],
        )
        .unwrap();
        assert_eq!(
            out,
            r#"{"auths":{"ghcr.io":{"auth":"Ym90OnQ=","password":"t","username":"bot"}}}"#
        );
    }

    #[test]
    fn go_template_syntax_gets_the_minijinja_form() {
        let error = render_one("{{ .username }}", &[("username", "u")])
            .unwrap_err()
            .message;
        assert!(error.contains("write `{{ username }}`"), "{error}");
        let error = render_one(r#"{{ index .data "x" }}"#, &[])
            .unwrap_err()
            .message;
        assert!(error.contains("Go-template"), "{error}");
        assert!(render_one("{{ data.x }}", &[("x", "1")]).is_ok());
    }

    #[test]
    fn undefined_values_and_runtime_errors_never_show_values() {
        let error = render_one("{{ missing }}", &[("v", "hunter2")])
            .unwrap_err()
            .message;
        assert!(error.contains("undefined"), "{error}");
        let error = render_one("{{ v | b64dec }}", &[("v", "hunter2!!")])
            .unwrap_err()
            .message;
        assert!(!error.contains("hunter2"), "{error}");
        let error = render_one("{{ v | fromjson }}", &[("v", "hunter2")])
            .unwrap_err()
            .message;
        assert!(!error.contains("hunter2"), "{error}");
        let error = render_one("{{ v + 1 }}", &[("v", "hunter2")])
            .unwrap_err()
            .message;
        assert!(!error.contains("hunter2"), "{error}");
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let error = validate(&environment(), "ok\n{% if %}")
            .unwrap_err()
            .message;
        assert!(
            error.starts_with("template syntax error at line 2"),
            "{error}"
        );
    }

    #[test]
    fn endless_loops_run_out_of_fuel() {
        let error = render_one(
            "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
            &[],
        )
        .unwrap_err()
        .message;
        assert!(error.contains("fuel"), "{error}");
    }
}
