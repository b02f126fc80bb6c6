//! ESO's own schema, checked as the API server checks it with strict field validation:
//! the OpenAPI v3 schemas of ESO v2.9.0's CRDs (`external-secrets.io/v1`), embedded
//! without their descriptions (`schema/eso-v2.9.0.json`, checked against
//! `testenv/eso-crds-v2.9.0/` by a test). Kubernetes' structural schemas are a small
//! subset of JSON Schema (types, `properties`, `additionalProperties`, `items`,
//! `required`, `enum`, `pattern`, lengths, counts, `minimum`, `format`, int-or-string,
//! `nullable`, `x-kubernetes-preserve-unknown-fields`), so this is a small walker over
//! them rather than a general JSON Schema engine. A `null` is dropped before validation,
//! as the API server prunes it.
//!
//! Fields ESO defines and courier does not implement are errors too ([`UNSUPPORTED`]):
//! nothing ESO defines is silently dropped. Errors name the field path, never a value.

use std::collections::HashMap;
use std::sync::{LazyLock, Mutex};

use regex::Regex;
use serde_json::{Map, Value};

use crate::core::suggest::did_you_mean;

/// ESO's release whose CRD schemas are embedded.
pub const ESO_SCHEMA_RELEASE: &str = "v2.9.0";

/// The embedded schemas by kind (`ClusterSecretStore` shares `SecretStore`'s).
static SCHEMAS: LazyLock<Map<String, Value>> = LazyLock::new(|| {
    serde_json::from_str(include_str!("schema/eso-v2.9.0.json")).expect("embedded schema parses")
});

/// Compiled `pattern`s, by pattern text.
static PATTERNS: LazyLock<Mutex<HashMap<String, Option<Regex>>>> =
    LazyLock::new(|| Mutex::new(HashMap::new()));

/// What `metadata` may hold (`ObjectMeta`).
const OBJECT_META: [&str; 15] = [
    "name",
    "generateName",
    "namespace",
    "selfLink",
    "uid",
    "resourceVersion",
    "generation",
    "creationTimestamp",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "labels",
    "annotations",
    "ownerReferences",
    "finalizers",
    "managedFields",
];

/// Fields of an ExternalSecret spec (also `ClusterExternalSecret.spec.externalSecretSpec`,
/// and `spec.` of the stores) that ESO defines and courier does not implement, with the
/// one value that means what courier does, if any. Paths write list items as `[]`.
pub const UNSUPPORTED: [(&str, &str, Option<&str>); 3] = [
    ("ExternalSecret", "spec.target.manifest", None),
    ("SecretStore", "spec.controller", None),
    ("SecretStore", "spec.retrySettings", None),
];

/// One value of an enum that courier does not implement.
/// (creationPolicy CreateOrMerge, ESO v2.8, is implemented now.)
const UNSUPPORTED_VALUES: [(&str, &str); 0] = [];

/// A field that breaks ESO's schema, or that courier does not implement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// `spec.data[0].remoteRef.property`.
    pub field: String,
    /// What is wrong, with a `hint:` line when the fix is known; never a value.
    pub message: String,
}

/// Checks one ESO object (`ExternalSecret`, `ClusterExternalSecret`, `SecretStore`,
/// `ClusterSecretStore`; `v1beta1` is read as `v1`) against ESO's schema. Other kinds
/// have no schema here and pass.
pub fn validate(kind: &str, object: &Value) -> Vec<FieldError> {
    let key = if kind == "ClusterSecretStore" {
        "SecretStore"
    } else {
        kind
    };
    let Some(schema) = SCHEMAS.get(key) else {
        return Vec::new();
    };
    let mut walker = Walker {
        kind: key,
        errors: Vec::new(),
    };
    let Some(fields) = object.as_object() else {
        return Vec::new();
    };
    let properties = schema.get("properties").and_then(Value::as_object);
    for (name, value) in fields {
        match name.as_str() {
            // The API server drops `status` on create (a status subresource), and courier
            // writes its own.
            "apiVersion" | "kind" | "status" => {}
            "metadata" => walker.metadata(value),
            _ => match properties.and_then(|p| p.get(name)) {
                Some(sub) => walker.walk(sub, value, name, name),
                None => walker.unknown(name, name, properties),
            },
        }
    }
    walker.errors
}

struct Walker<'k> {
    kind: &'k str,
    errors: Vec<FieldError>,
}

impl Walker<'_> {
    fn error(&mut self, field: &str, message: String) {
        self.errors.push(FieldError {
            field: field.to_owned(),
            message,
        });
    }

    fn metadata(&mut self, value: &Value) {
        let Some(fields) = value.as_object() else {
            if !value.is_null() {
                self.error(
                    "metadata",
                    format!("must be a mapping, found {}", kind_of(value)),
                );
            }
            return;
        };
        for name in fields.keys() {
            if !OBJECT_META.contains(&name.as_str()) {
                let hint = did_you_mean(name, OBJECT_META)
                    .map(|close| format!("; did you mean {close}?"))
                    .unwrap_or_default();
                self.error(
                    &format!("metadata.{name}"),
                    format!("unknown field {name:?}{hint}"),
                );
            }
        }
    }

    fn unknown(&mut self, field: &str, name: &str, properties: Option<&Map<String, Value>>) {
        let known = properties.map(|p| p.keys().map(String::as_str).collect::<Vec<_>>());
        let mut message = format!("unknown field {name:?}");
        if let Some(close) = known
            .as_ref()
            .and_then(|k| did_you_mean(name, k.iter().copied()))
        {
            message.push_str(&format!("; did you mean {close}?"));
        } else if let Some(known) = &known
            && !known.is_empty()
        {
            message.push_str(&format!(" (ESO knows {})", known.join(", ")));
        }
        if let Some(hint) = field_hint(field) {
            message.push_str("\nhint: ");
            message.push_str(hint);
        }
        self.error(field, message);
    }

    /// `field` is the path as printed (`data[0].remoteRef`); `shape` the same with `[]`
    /// for list items, to match [`UNSUPPORTED`].
    fn walk(&mut self, schema: &Value, value: &Value, field: &str, shape: &str) {
        if value.is_null() || self.unsupported(value, field, shape) {
            return;
        }
        if schema.get("x-kubernetes-int-or-string") == Some(&Value::Bool(true)) {
            if !(value.is_string() || value.is_i64() || value.is_u64()) {
                self.error(
                    field,
                    format!("must be an integer or a string, found {}", kind_of(value)),
                );
            }
            return;
        }
        let preserve =
            schema.get("x-kubernetes-preserve-unknown-fields") == Some(&Value::Bool(true));
        match schema.get("type").and_then(Value::as_str) {
            Some("object") => self.object(schema, value, field, shape, preserve),
            Some("array") => self.array(schema, value, field, shape),
            Some("string") => self.string(schema, value, field),
            Some("integer") => {
                if !(value.is_i64() || value.is_u64()) {
                    return self.wrong_type(field, "an integer", value);
                }
                let number = value.as_i64().unwrap_or(i64::MAX);
                if let Some(minimum) = schema.get("minimum").and_then(Value::as_i64)
                    && number < minimum
                {
                    self.error(field, format!("must be at least {minimum}"));
                }
                if schema.get("format").and_then(Value::as_str) == Some("int32")
                    && i32::try_from(number).is_err()
                {
                    self.error(field, "must fit in 32 bits".into());
                }
            }
            Some("number") if !value.is_number() => self.wrong_type(field, "a number", value),
            Some("boolean") if !value.is_boolean() => self.wrong_type(field, "a boolean", value),
            _ => {}
        }
    }

    fn wrong_type(&mut self, field: &str, expected: &str, value: &Value) {
        let mut message = format!("must be {expected}, found {}", kind_of(value));
        if expected == "a string" && (value.is_boolean() || value.is_number()) {
            message.push_str(
                " (quote the value: YAML reads true, yes, on and numbers as non-strings)",
            );
        }
        if let Some(hint) = field_hint(field) {
            message.push_str("\nhint: ");
            message.push_str(hint);
        }
        self.error(field, message);
    }

    fn object(&mut self, schema: &Value, value: &Value, field: &str, shape: &str, preserve: bool) {
        let Some(fields) = value.as_object() else {
            return self.wrong_type(field, "a mapping", value);
        };
        let properties = schema.get("properties").and_then(Value::as_object);
        let additional = schema.get("additionalProperties");
        for (name, sub_value) in fields {
            if let Some(sub) = properties.and_then(|p| p.get(name)) {
                self.walk(
                    sub,
                    sub_value,
                    &format!("{field}.{name}"),
                    &format!("{shape}.{name}"),
                );
            } else if let Some(sub) = additional.filter(|a| a.is_object()) {
                self.walk(
                    sub,
                    sub_value,
                    &format!("{field}[{name}]"),
                    &format!("{shape}[]"),
                );
            } else if !preserve && additional != Some(&Value::Bool(true)) {
                self.unknown(&format!("{field}.{name}"), name, properties);
            }
        }
        for name in schema
            .get("required")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
        {
            if fields.get(name).is_none_or(Value::is_null) {
                self.error(
                    &format!("{field}.{name}"),
                    format!("missing required field {name:?}"),
                );
            }
        }
        let count = fields.values().filter(|v| !v.is_null()).count() as u64;
        if let Some(min) = schema.get("minProperties").and_then(Value::as_u64)
            && count < min
        {
            self.error(field, format!("needs at least {min} field(s)"));
        }
        if let Some(max) = schema.get("maxProperties").and_then(Value::as_u64)
            && count > max
        {
            self.error(field, format!("takes at most {max} field(s)"));
        }
    }

    fn array(&mut self, schema: &Value, value: &Value, field: &str, shape: &str) {
        let Some(items) = value.as_array() else {
            let mut message = format!("must be a list, found {}", kind_of(value));
            if let Some(hint) = field_hint(field) {
                message.push_str("\nhint: ");
                message.push_str(hint);
            }
            return self.error(field, message);
        };
        if let Some(min) = schema.get("minItems").and_then(Value::as_u64)
            && (items.len() as u64) < min
        {
            self.error(field, format!("needs at least {min} item(s)"));
        }
        if let Some(max) = schema.get("maxItems").and_then(Value::as_u64)
            && (items.len() as u64) > max
        {
            self.error(field, format!("takes at most {max} item(s)"));
        }
        if let Some(sub) = schema.get("items") {
            for (index, item) in items.iter().enumerate() {
                if item.is_null() {
                    self.error(&format!("{field}[{index}]"), "must not be null".into());
                    continue;
                }
                self.walk(
                    sub,
                    item,
                    &format!("{field}[{index}]"),
                    &format!("{shape}[]"),
                );
            }
        }
    }

    fn string(&mut self, schema: &Value, value: &Value, field: &str) {
        let Some(text) = value.as_str() else {
            return self.wrong_type(field, "a string", value);
        };
        if let Some(allowed) = schema.get("enum").and_then(Value::as_array) {
            let allowed: Vec<&str> = allowed.iter().filter_map(Value::as_str).collect();
            if !allowed.contains(&text) {
                if field.ends_with("template.engineVersion") {
                    return self.error(
                        field,
                        "must be v2: ESO v2 dropped template engine v1 (courier runs ESO's engine v2: Go templates with sprig)\nhint: write engineVersion: v2, and rename v1's functions (base64encode is b64enc)".into(),
                    );
                }
                let hint = did_you_mean(text, allowed.iter().copied())
                    .map(|close| format!("; did you mean {close}?"))
                    .unwrap_or_default();
                return self.error(
                    field,
                    format!("must be one of {}{hint}", allowed.join(", ")),
                );
            }
        }
        let length = text.chars().count() as u64;
        if let Some(min) = schema.get("minLength").and_then(Value::as_u64)
            && length < min
        {
            self.error(
                field,
                if min == 1 {
                    "must not be empty".into()
                } else {
                    format!("must be at least {min} characters long")
                },
            );
        }
        if let Some(max) = schema.get("maxLength").and_then(Value::as_u64)
            && length > max
        {
            self.error(field, format!("must be at most {max} characters long"));
        }
        if let Some(pattern) = schema.get("pattern").and_then(Value::as_str)
            && !matches_pattern(pattern, text)
        {
            let message = match pattern {
                "^[-._a-zA-Z0-9]+$" => {
                    format!(
                        "must consist of alphanumerics, '-', '_' or '.' (ESO's pattern {pattern})"
                    )
                }
                _ => format!("does not match ESO's pattern {pattern}"),
            };
            self.error(field, message);
        }
        if schema.get("format").and_then(Value::as_str) == Some("byte") {
            use base64::Engine as _;
            if base64::engine::general_purpose::STANDARD
                .decode(text.trim())
                .is_err()
            {
                self.error(field, "must be base64".into());
            }
        }
    }

    /// Reports a field courier does not implement; `true` when it did (its insides are
    /// not checked further).
    fn unsupported(&mut self, value: &Value, field: &str, shape: &str) -> bool {
        // ClusterExternalSecret.spec.externalSecretSpec is an ExternalSecret's spec.
        let (kind, shape) = match shape.strip_prefix("spec.externalSecretSpec.") {
            Some(rest) if self.kind == "ClusterExternalSecret" => {
                ("ExternalSecret", format!("spec.{rest}"))
            }
            _ => (self.kind, shape.to_owned()),
        };
        if let Some((_, _, default)) = UNSUPPORTED
            .iter()
            .find(|(k, path, _)| *k == kind && *path == shape)
        {
            if default.is_some() && value.as_str() == *default {
                return false;
            }
            let but = default
                .map(|d| format!(" (only its default, {d}, is)"))
                .unwrap_or_default();
            let name = field.rsplit('.').next().unwrap_or(field);
            self.error(
                field,
                format!("{name} is not supported by courier yet{but}\nhint: remove it; README.md lists what courier does not implement"),
            );
            return true;
        }
        if kind == "ExternalSecret"
            && let Some((_, bad)) = UNSUPPORTED_VALUES
                .iter()
                .find(|(path, bad)| *path == shape && value.as_str() == Some(bad))
        {
            let name = field.rsplit('.').next().unwrap_or(field);
            self.error(
                field,
                format!("{name} {bad} is not supported by courier yet\nhint: use Owner, Orphan, Merge or None"),
            );
            return true;
        }
        false
    }
}

/// The fields of a store's `spec.provider.<provider>` (`config`) that courier does not
/// implement: each present field (a `null` is absent) that `implemented` does not cover,
/// by its full path (`spec.provider.vault.headers`), one error each, with a `hint:`.
///
/// `implemented` lists paths under `spec.provider.<provider>`, list items as `[]`
/// (`secrets[].name`). A path covers the field and everything under it, unless longer
/// paths name some of its children: then only those children are implemented. The lists
/// live next to each provider's config struct (`IMPLEMENTED`); every path in them is a
/// field ESO's schema defines ([`eso_defines_provider_field`], checked by a test).
pub fn unimplemented_provider_fields(
    provider: &str,
    config: &Value,
    implemented: &[&str],
) -> Vec<FieldError> {
    let mut errors = Vec::new();
    unimplemented_under(
        config,
        &format!("spec.provider.{provider}"),
        "",
        implemented,
        &mut errors,
    );
    errors
}

fn unimplemented_under(
    value: &Value,
    field: &str,
    shape: &str,
    implemented: &[&str],
    errors: &mut Vec<FieldError>,
) {
    match value {
        Value::Object(fields) => {
            for (name, sub) in fields {
                if sub.is_null() {
                    continue;
                }
                let sub_shape = if shape.is_empty() {
                    name.clone()
                } else {
                    format!("{shape}.{name}")
                };
                let sub_field = format!("{field}.{name}");
                let children = format!("{sub_shape}.");
                let items = format!("{sub_shape}[]");
                if implemented
                    .iter()
                    .any(|path| path.starts_with(&children) || path.starts_with(&items))
                {
                    unimplemented_under(sub, &sub_field, &sub_shape, implemented, errors);
                } else if !implemented.contains(&sub_shape.as_str()) {
                    errors.push(FieldError {
                        message: format!(
                            "{name} is not supported by courier yet\nhint: remove it; README.md lists what courier does not implement"
                        ),
                        field: sub_field,
                    });
                }
            }
        }
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                unimplemented_under(
                    item,
                    &format!("{field}[{index}]"),
                    &format!("{shape}[]"),
                    implemented,
                    errors,
                );
            }
        }
        _ => {}
    }
}

/// Whether ESO's schema defines `path` (as in [`unimplemented_provider_fields`]) under
/// `spec.provider.<provider>`.
pub fn eso_defines_provider_field(provider: &str, path: &str) -> bool {
    let Some(mut node) = SCHEMAS.get("SecretStore").and_then(|s| {
        s.pointer(&format!(
            "/properties/spec/properties/provider/properties/{provider}"
        ))
    }) else {
        return false;
    };
    for segment in path.split('.') {
        let (name, lists) = match segment.find("[]") {
            Some(at) => (&segment[..at], segment[at..].matches("[]").count()),
            None => (segment, 0),
        };
        let Some(next) = node.get("properties").and_then(|p| p.get(name)) else {
            return false;
        };
        node = next;
        for _ in 0..lists {
            let Some(item) = node.get("items") else {
                return false;
            };
            node = item;
        }
    }
    true
}

/// Known mistakes, by the field they land on.
fn field_hint(field: &str) -> Option<&'static str> {
    let mut segments = field.rsplit('.');
    let last = segments.next().unwrap_or(field);
    let parent = segments.next().unwrap_or_default();
    if parent.starts_with("dataFrom[") && matches!(last, "key" | "property" | "version") {
        return Some(
            "that is the old dataFrom shape (v1alpha1); write `dataFrom: [{extract: {key: ...}}]`",
        );
    }
    if field.ends_with(".externalSecretSpec.template") || field == "spec.template" {
        return Some("`template` belongs under `target`: `target: {template: ...}`");
    }
    None
}

fn matches_pattern(pattern: &str, text: &str) -> bool {
    let mut cache = PATTERNS.lock().unwrap_or_else(|e| e.into_inner());
    let compiled = cache
        .entry(pattern.to_owned())
        .or_insert_with(|| Regex::new(pattern).ok());
    // A pattern Rust's engine cannot read is not held against the input.
    compiled.as_ref().is_none_or(|re| re.is_match(text))
}

fn kind_of(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn errors(kind: &str, object: Value) -> Vec<String> {
        validate(kind, &object)
            .into_iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect()
    }

    #[test]
    fn the_embedded_schema_is_eso_v2_9_0s_without_descriptions() {
        fn strip(value: &mut Value) {
            match value {
                Value::Object(map) => {
                    map.remove("description");
                    map.remove("example");
                    map.values_mut().for_each(strip);
                }
                Value::Array(items) => items.iter_mut().for_each(strip),
                _ => {}
            }
        }
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("testenv/eso-crds-v2.9.0");
        let mut found = Map::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let text = std::fs::read_to_string(entry.unwrap().path()).unwrap();
            let crd: Value = serde_saphyr::from_str(&text).unwrap();
            let kind = crd["spec"]["names"]["kind"].as_str().unwrap().to_owned();
            let v1 = crd["spec"]["versions"]
                .as_array()
                .unwrap()
                .iter()
                .find(|v| v["name"] == "v1")
                .unwrap();
            let mut schema = v1["schema"]["openAPIV3Schema"].clone();
            strip(&mut schema);
            found.insert(kind, schema);
        }
        assert_eq!(
            found.remove("ClusterSecretStore"),
            found.get("SecretStore").cloned()
        );
        assert_eq!(
            found, *SCHEMAS,
            "regenerate src/core/schema/eso-v2.9.0.json"
        );
    }

    #[test]
    fn unknown_fields_name_their_path_and_the_close_name() {
        let found = errors(
            "ExternalSecret",
            json!({"apiVersion": "external-secrets.io/v1", "kind": "ExternalSecret",
                "metadata": {"name": "e", "nmae": "x"},
                "spec": {"target": {"nmae": "x"}, "data": [{"secretKey": "k", "remoteRef": {"key": "s", "propery": "p"}}]}}),
        );
        assert_eq!(
            found,
            [
                "metadata.nmae: unknown field \"nmae\"; did you mean name?",
                "spec.target.nmae: unknown field \"nmae\"; did you mean name?",
                "spec.data[0].remoteRef.propery: unknown field \"propery\"; did you mean property?",
            ]
        );
    }

    #[test]
    fn types_enums_and_required_fields_are_checked() {
        let found = errors(
            "ExternalSecret",
            json!({"spec": {"refreshInterval": 60, "target": {"creationPolicy": "owner", "immutable": "yes"},
                "data": [{"remoteRef": {"key": "s"}}]}}),
        );
        assert_eq!(
            found,
            [
                "spec.refreshInterval: must be a string, found a number (quote the value: YAML reads true, yes, on and numbers as non-strings)",
                "spec.target.creationPolicy: must be one of Owner, Orphan, Merge, None, CreateOrMerge; did you mean Owner?",
                "spec.target.immutable: must be a boolean, found a string",
                "spec.data[0].secretKey: missing required field \"secretKey\"",
            ]
        );
    }

    #[test]
    fn sync_windows_are_checked_as_eso_s_crd_checks_them() {
        let found = errors(
            "ExternalSecret",
            json!({"spec": {"syncWindows": {"kind": "Deny", "windows": []}}}),
        );
        assert_eq!(
            found,
            [
                "spec.syncWindows.kind: must be one of allow, deny; did you mean deny?",
                "spec.syncWindows.windows: needs at least 1 item(s)",
            ]
        );
        let found = errors(
            "ExternalSecret",
            json!({"spec": {"syncWindows": {"kind": "allow", "windows": [
                {"schedule": "0 0 * *", "duration": "1h"}, {"schedule": "@daily"}, {"schedule": "@every 1h", "duration": "1h"}]}}}),
        );
        assert_eq!(found.len(), 2, "{found:?}");
        assert!(
            found[0]
                .starts_with("spec.syncWindows.windows[0].schedule: does not match ESO's pattern"),
            "{found:?}"
        );
        assert_eq!(
            found[1],
            "spec.syncWindows.windows[1].duration: missing required field \"duration\""
        );
    }

    #[test]
    fn what_courier_does_not_implement_is_refused_and_defaults_pass() {
        let found = errors(
            "ClusterExternalSecret",
            json!({"spec": {"externalSecretSpec": {"target": {"manifest": {"apiVersion": "v1", "kind": "ConfigMap"},
                "creationPolicy": "CreateOrMerge"}, "refreshPolicy": "Periodic",
                "syncWindows": {"kind": "deny", "windows": [{"schedule": "@every 1h", "duration": "5m"}]}}}}),
        );
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].starts_with(
                "spec.externalSecretSpec.target.manifest: manifest is not supported by courier yet"
            ),
            "{found:?}"
        );
        let store = errors(
            "ClusterSecretStore",
            json!({"spec": {"controller": "dev", "provider": {"kubernetes": {"remoteNamespce": "a"}}}}),
        );
        assert_eq!(store.len(), 2, "{store:?}");
        assert!(store[0].starts_with("spec.controller: controller is not supported"));
        assert_eq!(
            store[1],
            "spec.provider.kubernetes.remoteNamespce: unknown field \"remoteNamespce\"; did you mean remoteNamespace?"
        );
        // Every provider's config is closed (no preserve-unknown-fields): a field ESO does
        // not define is refused here, before the provider's own list of what it reads.
        for provider in ["vault", "openBao", "webhook", "kubernetes", "aws"] {
            let found = errors(
                "SecretStore",
                json!({"spec": {"provider": {provider: {"notAField": true}}}}),
            );
            assert!(
                found.iter().any(|e| e.starts_with(&format!(
                    "spec.provider.{provider}.notAField: unknown field"
                ))),
                "{provider}: {found:?}"
            );
        }
    }
}
