//! Desired Secrets as `v1` Secret manifests: a YAML stream or a JSON `List`.

use std::borrow::Cow;
use std::collections::BTreeMap;

use base64::Engine as _;
use serde::Serialize;

use crate::core::plan::DesiredSecret;
use crate::core::redact::{DerivedMap, REDACTED, shown_metadata};

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// A YAML stream, one document per Secret.
    Yaml,
    /// A `v1` `List` in JSON.
    Json,
}

/// Whether values are printed or replaced by `*** REDACTED ***`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Values {
    /// Base64 values, as the API server takes them.
    Reveal,
    /// Every value replaced, and every label and annotation a template produced from
    /// the values (its key too, when the template produced the key), and every data key
    /// a template produced from them; other keys, types and the manifest's own labels
    /// stay visible. The values of a passed-through Secret are replaced too.
    Redact,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SecretManifestOut<'a> {
    api_version: &'static str,
    kind: &'static str,
    metadata: MetadataOut<'a>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    immutable: bool,
    #[serde(rename = "type")]
    type_: &'a str,
    data: BTreeMap<Cow<'a, str>, String>,
}

#[derive(Serialize)]
struct MetadataOut<'a> {
    name: &'a str,
    namespace: &'a str,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    labels: Cow<'a, BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    annotations: Cow<'a, BTreeMap<String, String>>,
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    finalizers: &'a [String],
}

fn manifest(secret: &DesiredSecret, values: Values) -> SecretManifestOut<'_> {
    let body = &secret.body;
    let data = match values {
        Values::Reveal => body
            .data
            .iter()
            .map(|(key, value)| {
                let shown = base64::engine::general_purpose::STANDARD.encode(value.expose());
                (Cow::Borrowed(key.as_str()), shown)
            })
            .collect(),
        // A key a template made from the values is hidden with them.
        Values::Redact => body
            .shown_data_keys()
            .into_iter()
            .map(|key| (key, REDACTED.to_owned()))
            .collect(),
    };
    let (labels, annotations) = match values {
        Values::Reveal => (
            Cow::Borrowed(&body.labels),
            Cow::Borrowed(&body.annotations),
        ),
        Values::Redact => (
            shown(&body.labels, &body.derived_labels),
            shown(&body.annotations, &body.derived_annotations),
        ),
    };
    SecretManifestOut {
        api_version: "v1",
        kind: "Secret",
        metadata: MetadataOut {
            name: &secret.name,
            namespace: &secret.namespace,
            labels,
            annotations,
            finalizers: &body.finalizers,
        },
        immutable: body.immutable,
        type_: &body.type_,
        data,
    }
}

/// Labels or annotations with what a template produced hidden; borrowed when nothing is.
fn shown<'a>(
    map: &'a BTreeMap<String, String>,
    derived: &DerivedMap,
) -> Cow<'a, BTreeMap<String, String>> {
    if derived.is_empty() {
        Cow::Borrowed(map)
    } else {
        Cow::Owned(shown_metadata(map, derived))
    }
}

/// One Secret as a JSON object, as the API server takes it.
pub fn secret_json(secret: &DesiredSecret, values: Values) -> serde_json::Value {
    serde_json::to_value(manifest(secret, values)).expect("manifests always serialize")
}

/// What to print besides the Secrets, and how.
#[derive(Debug, Clone, Copy)]
pub struct Document<'a> {
    /// Other objects, printed unchanged before the Secrets.
    pub passthrough: &'a [serde_json::Value],
    /// `courier.dev/instance` label for every Secret.
    pub instance: Option<&'a str>,
    /// Values shown or redacted.
    pub values: Values,
}

/// The pass-through objects, then the Secrets (with the instance label when given).
pub fn render_document(
    secrets: &[DesiredSecret],
    format: Format,
    document: Document<'_>,
) -> String {
    let manifests = secrets.iter().map(|secret| {
        let mut manifest = manifest(secret, document.values);
        if let Some(instance) = document.instance {
            manifest.metadata.labels.to_mut().insert(
                crate::core::labels::INSTANCE_LABEL.to_owned(),
                instance.to_owned(),
            );
        }
        manifest
    });
    let passthrough: Vec<Cow<'_, serde_json::Value>> = document
        .passthrough
        .iter()
        .map(|object| match document.values {
            Values::Reveal => Cow::Borrowed(object),
            Values::Redact => redacted_object(object),
        })
        .collect();
    match format {
        Format::Yaml => {
            let mut out = String::new();
            let documents = passthrough
                .iter()
                .map(|object| yaml_document(object.as_ref()))
                .chain(manifests.map(|m| yaml_document(&m)));
            for (index, text) in documents.enumerate() {
                if index > 0 {
                    out.push_str("---\n");
                }
                out.push_str(&text);
            }
            out
        }
        Format::Json => {
            let mut items: Vec<serde_json::Value> =
                passthrough.into_iter().map(Cow::into_owned).collect();
            items.extend(
                manifests.map(|m| serde_json::to_value(m).expect("manifests always serialize")),
            );
            let list = serde_json::json!({"apiVersion": "v1", "kind": "List", "items": items});
            let mut out = serde_json::to_string_pretty(&list).expect("manifests always serialize");
            out.push('\n');
            out
        }
    }
}

/// A passed-through object as `--redact` prints it: a `v1` Secret (or one in a `List`'s
/// `items`) with each value of `data` and `stringData` replaced, its keys kept, and its
/// `kubectl.kubernetes.io/last-applied-configuration` annotation (the object again, values
/// and all) replaced whole; nothing else changed, nothing added. Any other object as it is.
fn redacted_object(object: &serde_json::Value) -> Cow<'_, serde_json::Value> {
    const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";
    let is_secret = object["kind"] == "Secret" && object["apiVersion"] == "v1";
    let has_items = object.get("items").is_some_and(serde_json::Value::is_array);
    if !is_secret && !has_items {
        return Cow::Borrowed(object);
    }
    let mut redacted = object.clone();
    if is_secret {
        for field in ["data", "stringData"] {
            if let Some(values) = redacted.get_mut(field).and_then(|v| v.as_object_mut()) {
                for value in values.values_mut() {
                    *value = serde_json::Value::from(REDACTED);
                }
            }
        }
        if let Some(last_applied) = redacted
            .pointer_mut("/metadata/annotations")
            .and_then(|a| a.as_object_mut())
            .and_then(|a| a.get_mut(LAST_APPLIED))
        {
            *last_applied = serde_json::Value::from(REDACTED);
        }
    }
    if let Some(items) = redacted.get_mut("items").and_then(|v| v.as_array_mut()) {
        for item in items {
            *item = redacted_object(item).into_owned();
        }
    }
    Cow::Owned(redacted)
}

/// The Secrets as a YAML stream (`---` between documents), byte-for-byte deterministic.
pub fn to_yaml(secrets: &[DesiredSecret], values: Values) -> String {
    let mut out = String::with_capacity(secrets.len() * 512);
    for (index, secret) in secrets.iter().enumerate() {
        if index > 0 {
            out.push_str("---\n");
        }
        out.push_str(&yaml_document(&manifest(secret, values)));
    }
    out
}

/// Any serializable object as one YAML document in courier's style (no folded scalars).
pub fn yaml_document<T: Serialize>(object: &T) -> String {
    let options = serde_saphyr::ser_options! { prefer_block_scalars: false };
    serde_saphyr::to_string_with_options(object, options).expect("manifests always serialize")
}

/// The Secrets as a pretty-printed `v1` `List`.
pub fn to_json(secrets: &[DesiredSecret], values: Values) -> String {
    #[derive(Serialize)]
    #[serde(rename_all = "camelCase")]
    struct List<'a> {
        api_version: &'static str,
        kind: &'static str,
        items: Vec<SecretManifestOut<'a>>,
    }
    let list = List {
        api_version: "v1",
        kind: "List",
        items: secrets.iter().map(|s| manifest(s, values)).collect(),
    };
    let mut out = serde_json::to_string_pretty(&list).expect("manifests always serialize");
    out.push('\n');
    out
}

/// Formats the Secrets.
pub fn render(secrets: &[DesiredSecret], format: Format, values: Values) -> String {
    match format {
        Format::Yaml => to_yaml(secrets, values),
        Format::Json => to_json(secrets, values),
    }
}
