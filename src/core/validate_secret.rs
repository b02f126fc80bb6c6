//! What the API server refuses in a Secret, checked before courier sends it: label keys
//! and values, annotation keys and their total size, data keys and the total size of the
//! values, and the keys (and JSON) the built-in Secret types require
//! (`ValidateSecret` and `ValidateObjectMeta` in Kubernetes). A refused Secret is an
//! error of its target alone, found by `render`, `check` and `diff` as by `apply`; the
//! message names the field, never the value (the API server's own 422 quotes it).
//! Names are checked where the target is named (`plan/targets.rs`).

use std::collections::BTreeMap;

use crate::core::model::StringMap;
use crate::core::redact::{Derived, DerivedMap};
use crate::core::secret_bytes::SecretBytes;
use crate::core::select::{validate_key, validate_value};

/// Values of one Secret together: `core.MaxSecretSize`.
pub const MAX_SECRET_BYTES: usize = 1024 * 1024;
/// Keys and values of a Secret's annotations together: `TotalAnnotationSizeLimitB`.
pub const MAX_ANNOTATION_BYTES: usize = 256 * 1024;
/// The annotation a `kubernetes.io/service-account-token` Secret must carry.
pub const SERVICE_ACCOUNT_NAME_ANNOTATION: &str = "kubernetes.io/service-account.name";

/// The Secret to check.
#[derive(Clone, Copy)]
pub struct Candidate<'a> {
    /// `type`.
    pub type_: &'a str,
    /// Labels.
    pub labels: &'a StringMap,
    /// Annotations.
    pub annotations: &'a StringMap,
    /// Which labels a template produced (their text is not shown).
    pub derived_labels: &'a DerivedMap,
    /// Which annotations a template produced.
    pub derived_annotations: &'a DerivedMap,
    /// Which data keys a template produced from the values (their text is not shown).
    pub derived_data: &'a DerivedMap,
    /// Values.
    pub data: &'a BTreeMap<String, SecretBytes>,
    /// `metadata.finalizers` (`template.metadata.finalizers`, literal).
    pub finalizers: &'a [String],
    /// Merged into someone's Secret (`creationPolicy: Merge`): its type and the rest of
    /// its data are theirs, so the type's required keys are not courier's to check.
    pub merge: bool,
}

/// Why the API server would refuse the Secret: the field at fault and what is wrong.
/// Never a value, nor a key a template produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The field (`template.metadata.labels[owner]`, `data[tls.key]`).
    pub field: String,
    /// What is wrong, with a `hint:` line when the fix is known.
    pub message: String,
}

impl Refusal {
    fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

/// The first thing the API server would refuse in `secret`, if any.
pub fn validate(secret: &Candidate<'_>) -> Result<(), Refusal> {
    validate_labels(secret.labels, secret.derived_labels)?;
    validate_annotations(secret.annotations, secret.derived_annotations)?;
    validate_data(secret.data, secret.derived_data)?;
    validate_finalizers(secret.finalizers)?;
    if !secret.merge {
        validate_type(secret)?;
    }
    Ok(())
}

/// The field naming a label or annotation: the template field it came from (without its
/// key when the template produced the key), or the manifest's metadata.
fn entry_field(kind: &str, key: &str, derived: Option<&Derived>) -> String {
    match derived {
        None => format!("metadata.{kind}[{key}]"),
        Some(Derived { field, key: false }) => field.clone(),
        Some(Derived { field, key: true }) => {
            let one = if kind == "labels" {
                "a label"
            } else {
                "an annotation"
            };
            format!("{field} ({one} it renders)")
        }
    }
}

/// The subject of a message: what the manifest says, or what a template made.
fn subject(derived: Option<&Derived>, what: &str) -> String {
    match derived {
        None => format!("is {what}"),
        Some(_) => format!("renders {what}"),
    }
}

const NOT_SHOWN: &str = "(not shown: it comes from the secret values)";

fn validate_labels(labels: &StringMap, derived: &DerivedMap) -> Result<(), Refusal> {
    for (key, value) in labels {
        let from = derived.get(key);
        let key_derived = from.is_some_and(|d| d.key);
        if validate_key(key).is_err() {
            let shown = if key_derived {
                format!(" {NOT_SHOWN}")
            } else {
                String::new()
            };
            return Err(Refusal::new(
                entry_field("labels", key, from),
                format!(
                    "{} the API server refuses{shown}: a key must be an optional DNS-subdomain prefix and '/', then 1-63 characters of [A-Za-z0-9-_.], starting and ending alphanumeric",
                    subject(from.filter(|d| d.key), "a label key")
                ),
            ));
        }
        if validate_value(value).is_err() {
            let hint = if from.is_some() {
                "\nhint: a label holds at most 63 plain characters; put a value in an annotation (templateFrom target Annotations, or template.metadata.annotations)"
            } else {
                ""
            };
            let shown = if from.is_some() {
                format!(" {NOT_SHOWN}")
            } else {
                String::new()
            };
            return Err(Refusal::new(
                entry_field("labels", key, from),
                format!(
                    "{} the API server refuses{shown}: a label value must be empty or at most 63 characters of [A-Za-z0-9-_.], starting and ending alphanumeric{hint}",
                    subject(from, "a label value")
                ),
            ));
        }
    }
    Ok(())
}

fn validate_annotations(annotations: &StringMap, derived: &DerivedMap) -> Result<(), Refusal> {
    let mut total = 0usize;
    for (key, value) in annotations {
        let from = derived.get(key);
        // The API server checks annotation keys lowercased.
        if validate_key(&key.to_lowercase()).is_err() {
            let shown = if from.is_some_and(|d| d.key) {
                format!(" {NOT_SHOWN}")
            } else {
                String::new()
            };
            return Err(Refusal::new(
                entry_field("annotations", key, from),
                format!(
                    "{} the API server refuses{shown}: a key must be an optional DNS-subdomain prefix and '/', then 1-63 characters of [A-Za-z0-9-_.], starting and ending alphanumeric",
                    subject(from.filter(|d| d.key), "an annotation key")
                ),
            ));
        }
        total += key.len() + value.len();
    }
    if total > MAX_ANNOTATION_BYTES {
        return Err(Refusal::new(
            "metadata.annotations",
            "together exceed the 256 KiB the API server allows for a Secret's annotations",
        ));
    }
    Ok(())
}

fn validate_data(
    data: &BTreeMap<String, SecretBytes>,
    derived: &DerivedMap,
) -> Result<(), Refusal> {
    let mut total = 0usize;
    for (key, value) in data {
        // A key a template produced from the values is named by its template.
        let field = || match derived.get(key) {
            Some(Derived { field, .. }) => format!("{field} (a data key it renders)"),
            None => format!("key {key:?}"),
        };
        // `IsConfigMapKey`: the pattern itself is checked where keys are made.
        if key.len() > 253 {
            return Err(Refusal::new(
                field(),
                "is longer than the 253 characters a Secret key may have",
            ));
        }
        if key == "." || key.starts_with("..") {
            return Err(Refusal::new(field(), "may not be '.' or start with '..'"));
        }
        total += value.len();
    }
    if total > MAX_SECRET_BYTES {
        return Err(Refusal::new(
            "data",
            "the values together exceed the 1 MiB a Secret may hold",
        ));
    }
    Ok(())
}

/// Finalizer names (`ValidateFinalizers`): each a qualified name, and not both of the
/// garbage collector's `orphan` and `foregroundDeletion`. They are the manifest's own
/// text, never a value, so the message quotes them.
fn validate_finalizers(finalizers: &[String]) -> Result<(), Refusal> {
    for (index, finalizer) in finalizers.iter().enumerate() {
        if validate_key(finalizer).is_err() {
            return Err(Refusal::new(
                format!("template.metadata.finalizers[{index}]"),
                format!(
                    "{finalizer:?} is not a name the API server takes: an optional DNS-subdomain prefix and '/', then 1-63 characters of [A-Za-z0-9-_.], starting and ending alphanumeric\nhint: name finalizers after a domain you own, as example.com/cleanup"
                ),
            ));
        }
    }
    if finalizers.iter().any(|f| f == "orphan")
        && finalizers.iter().any(|f| f == "foregroundDeletion")
    {
        return Err(Refusal::new(
            "template.metadata.finalizers",
            "holds both orphan and foregroundDeletion, which the API server refuses together",
        ));
    }
    Ok(())
}

/// The keys the built-in types require (`ValidateSecret`).
fn validate_type(secret: &Candidate<'_>) -> Result<(), Refusal> {
    let data = secret.data;
    let required = |key: &str| {
        if data.contains_key(key) {
            Ok(())
        } else {
            Err(Refusal::new(
                format!("data[{key}]"),
                format!(
                    "is missing; type {} requires it\nhint: produce the key (template.data or a remoteRef) or change template.type",
                    secret.type_
                ),
            ))
        }
    };
    let json_object = |key: &str| {
        let value = data.get(key).map(|v| String::from_utf8_lossy(v.expose()));
        // As Go's json.Unmarshal into a map: an object, or null.
        let parsed = value.and_then(|v| serde_json::from_str::<serde_json::Value>(&v).ok());
        match parsed {
            Some(serde_json::Value::Object(_) | serde_json::Value::Null) => Ok(()),
            _ => Err(Refusal::new(
                format!("data[{key}]"),
                format!(
                    "is not a JSON object, which type {} requires {NOT_SHOWN}",
                    secret.type_
                ),
            )),
        }
    };
    let annotations = secret.annotations;
    match secret.type_ {
        "kubernetes.io/service-account-token"
            if annotations
                .get(SERVICE_ACCOUNT_NAME_ANNOTATION)
                .is_none_or(String::is_empty) =>
        {
            Err(Refusal::new(
                format!("metadata.annotations[{SERVICE_ACCOUNT_NAME_ANNOTATION}]"),
                "is missing or empty; type kubernetes.io/service-account-token requires it",
            ))
        }
        "kubernetes.io/dockercfg" => {
            required(".dockercfg").and_then(|()| json_object(".dockercfg"))
        }
        "kubernetes.io/dockerconfigjson" => {
            required(".dockerconfigjson").and_then(|()| json_object(".dockerconfigjson"))
        }
        "kubernetes.io/basic-auth"
            if !data.contains_key("username") && !data.contains_key("password") =>
        {
            Err(Refusal::new(
                "data",
                "has neither username nor password; type kubernetes.io/basic-auth requires one of them",
            ))
        }
        "kubernetes.io/ssh-auth"
            if data.get("ssh-privatekey").is_none_or(SecretBytes::is_empty) =>
        {
            Err(Refusal::new(
                "data[ssh-privatekey]",
                "is missing or empty; type kubernetes.io/ssh-auth requires it",
            ))
        }
        "kubernetes.io/tls" => required("tls.crt").and_then(|()| required("tls.key")),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MARKER: &str = "MARKER-e1f2 with spaces";

    fn map(pairs: &[(&str, &str)]) -> StringMap {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, SecretBytes> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), SecretBytes::from(*v)))
            .collect()
    }

    fn derived(keys: &[(&str, bool)]) -> DerivedMap {
        keys.iter()
            .map(|(k, key)| {
                let field = if *key {
                    "template.templateFrom[0].literal".to_owned()
                } else {
                    format!("template.metadata.labels[{k}]")
                };
                (k.to_string(), Derived { field, key: *key })
            })
            .collect()
    }

    struct Owned {
        type_: String,
        labels: StringMap,
        annotations: StringMap,
        derived_labels: DerivedMap,
        derived_annotations: DerivedMap,
        derived_data: DerivedMap,
        data: BTreeMap<String, SecretBytes>,
    }

    impl Owned {
        fn opaque() -> Self {
            Owned {
                type_: "Opaque".into(),
                labels: StringMap::new(),
                annotations: StringMap::new(),
                derived_labels: DerivedMap::new(),
                derived_annotations: DerivedMap::new(),
                derived_data: DerivedMap::new(),
                data: BTreeMap::new(),
            }
        }

        fn check(&self) -> Result<(), Refusal> {
            let refusal = validate(&Candidate {
                type_: &self.type_,
                labels: &self.labels,
                annotations: &self.annotations,
                derived_labels: &self.derived_labels,
                derived_annotations: &self.derived_annotations,
                derived_data: &self.derived_data,
                data: &self.data,
                finalizers: &[],
                merge: false,
            });
            if let Err(refusal) = &refusal {
                let text = format!("{refusal:?}");
                assert!(!text.contains("MARKER"), "a value in {text}");
            }
            refusal
        }
    }

    #[test]
    fn a_templated_label_value_the_api_server_refuses_is_named_without_its_value() {
        let mut secret = Owned::opaque();
        secret.labels = map(&[("owner", MARKER), ("team", "a")]);
        secret.derived_labels = derived(&[("owner", false)]);
        let refusal = secret.check().unwrap_err();
        assert_eq!(refusal.field, "template.metadata.labels[owner]");
        assert!(
            refusal.message.starts_with("renders a label value"),
            "{refusal:?}"
        );
        assert!(refusal.message.contains("hint:"), "{refusal:?}");

        secret.labels = map(&[("owner", "alice"), ("team", "a")]);
        assert_eq!(secret.check(), Ok(()));
        secret.labels = map(&[("owner", &"a".repeat(64))]);
        assert!(secret.check().is_err(), "64 characters are too many");
        secret.labels = map(&[("owner", "")]);
        assert_eq!(secret.check(), Ok(()), "an empty value is valid");
    }

    #[test]
    fn label_and_annotation_keys_follow_qualified_names() {
        let mut secret = Owned::opaque();
        secret.labels = map(&[("example.com/Team_1", "x")]);
        assert_eq!(secret.check(), Ok(()));
        secret.labels = map(&[("Example.com/team", "x")]);
        assert_eq!(
            secret.check().unwrap_err().field,
            "metadata.labels[Example.com/team]"
        );
        // A key a template produced is not named.
        secret.labels = map(&[("MARKER with spaces", "x")]);
        secret.derived_labels = derived(&[("MARKER with spaces", true)]);
        let refusal = secret.check().unwrap_err();
        assert_eq!(
            refusal.field,
            "template.templateFrom[0].literal (a label it renders)"
        );
        assert!(
            refusal.message.starts_with("renders a label key"),
            "{refusal:?}"
        );

        let mut secret = Owned::opaque();
        // Annotation keys are checked lowercased, as the API server does.
        secret.annotations = map(&[("Example.COM/Note", "anything at all: {}")]);
        assert_eq!(secret.check(), Ok(()));
        secret.annotations = map(&[("bad key", "x")]);
        assert_eq!(
            secret.check().unwrap_err().field,
            "metadata.annotations[bad key]"
        );
    }

    #[test]
    fn annotations_and_values_have_a_total_size() {
        let mut secret = Owned::opaque();
        let big = "x".repeat(MAX_ANNOTATION_BYTES);
        secret.annotations = map(&[("a", &big)]);
        assert_eq!(
            secret.check().unwrap_err().field,
            "metadata.annotations",
            "key and value count"
        );
        secret.annotations = map(&[("a", &big[1..])]);
        assert_eq!(secret.check(), Ok(()));

        let mut secret = Owned::opaque();
        let half = "x".repeat(MAX_SECRET_BYTES / 2);
        secret.data = data(&[("a", &half), ("b", &half)]);
        assert_eq!(secret.check(), Ok(()));
        secret.data = data(&[("a", &half), ("b", &half), ("c", "x")]);
        assert_eq!(secret.check().unwrap_err().field, "data");
    }

    #[test]
    fn data_keys_follow_config_map_keys() {
        let mut secret = Owned::opaque();
        for bad in [".", "..", "..x"] {
            secret.data = data(&[(bad, "v")]);
            assert!(secret.check().is_err(), "{bad}");
        }
        secret.data = data(&[(".x", "v"), ("a..b", "v")]);
        assert_eq!(secret.check(), Ok(()));
        secret.data = data(&[(&"k".repeat(254), "v")]);
        assert!(secret.check().is_err());
    }

    #[test]
    fn built_in_types_need_their_keys() {
        let mut secret = Owned::opaque();
        secret.type_ = "kubernetes.io/tls".into();
        secret.data = data(&[("tls.crt", MARKER)]);
        let refusal = secret.check().unwrap_err();
        assert_eq!(refusal.field, "data[tls.key]");
        secret.data = data(&[("tls.crt", MARKER), ("tls.key", "")]);
        assert_eq!(secret.check(), Ok(()));

        secret.type_ = "kubernetes.io/dockerconfigjson".into();
        secret.data = data(&[]);
        assert_eq!(secret.check().unwrap_err().field, "data[.dockerconfigjson]");
        for bad in [MARKER, "[1]", "\"MARKER\"", "{\"a\": MARKER}"] {
            secret.data = data(&[(".dockerconfigjson", bad)]);
            let refusal = secret.check().unwrap_err();
            assert_eq!(refusal.field, "data[.dockerconfigjson]");
            assert!(refusal.message.contains("not a JSON object"), "{refusal:?}");
        }
        for good in ["{\"auths\": {}}", " null "] {
            secret.data = data(&[(".dockerconfigjson", good)]);
            assert_eq!(secret.check(), Ok(()), "{good}");
        }

        secret.type_ = "kubernetes.io/dockercfg".into();
        secret.data = data(&[(".dockercfg", "not json MARKER")]);
        assert_eq!(secret.check().unwrap_err().field, "data[.dockercfg]");

        secret.type_ = "kubernetes.io/basic-auth".into();
        secret.data = data(&[("user", "x")]);
        assert_eq!(secret.check().unwrap_err().field, "data");
        secret.data = data(&[("password", "")]);
        assert_eq!(secret.check(), Ok(()));

        secret.type_ = "kubernetes.io/ssh-auth".into();
        secret.data = data(&[("ssh-privatekey", "")]);
        assert_eq!(secret.check().unwrap_err().field, "data[ssh-privatekey]");

        secret.type_ = "kubernetes.io/service-account-token".into();
        secret.data = data(&[]);
        assert!(secret.check().is_err());
        secret.annotations = map(&[(SERVICE_ACCOUNT_NAME_ANNOTATION, "builder")]);
        assert_eq!(secret.check(), Ok(()));

        secret.type_ = "example.com/custom".into();
        secret.annotations = StringMap::new();
        assert_eq!(secret.check(), Ok(()));
    }

    #[test]
    fn a_merge_target_s_type_is_not_courier_s_to_check() {
        let secret = Owned {
            type_: "kubernetes.io/tls".into(),
            ..Owned::opaque()
        };
        let candidate = Candidate {
            type_: &secret.type_,
            labels: &secret.labels,
            annotations: &secret.annotations,
            derived_labels: &secret.derived_labels,
            derived_annotations: &secret.derived_annotations,
            derived_data: &secret.derived_data,
            data: &secret.data,
            finalizers: &[],
            merge: true,
        };
        assert_eq!(validate(&candidate), Ok(()));
    }

    #[test]
    fn finalizers_are_qualified_names_and_not_orphan_with_foreground_deletion() {
        let secret = Owned::opaque();
        let check = |finalizers: &[&str]| {
            let finalizers: Vec<String> = finalizers.iter().map(|f| f.to_string()).collect();
            validate(&Candidate {
                type_: &secret.type_,
                labels: &secret.labels,
                annotations: &secret.annotations,
                derived_labels: &secret.derived_labels,
                derived_annotations: &secret.derived_annotations,
                derived_data: &secret.derived_data,
                data: &secret.data,
                finalizers: &finalizers,
                merge: false,
            })
        };
        assert_eq!(check(&["example.com/cleanup", "kubernetes"]), Ok(()));
        let refusal = check(&["example.com/cleanup", "bad name"]).unwrap_err();
        assert_eq!(refusal.field, "template.metadata.finalizers[1]");
        assert!(refusal.message.contains("hint: "), "{}", refusal.message);
        let refusal = check(&["orphan", "foregroundDeletion"]).unwrap_err();
        assert_eq!(refusal.field, "template.metadata.finalizers");
    }
}
