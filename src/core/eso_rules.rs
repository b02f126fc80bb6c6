//! The rules of ESO's admission webhook (ESO v2.9.0, `apis/externalsecrets/v1/`
//! `externalsecret_validator.go` and `secretstore_validator.go`): what ESO refuses beyond
//! its schema, checked on an object that passed [`crate::core::schema`]. A bare API server
//! does not run them; ESO's webhook does, so courier does too. A ClusterExternalSecret has
//! no webhook of its own, but the ExternalSecrets it makes meet the ExternalSecret rules,
//! so its `externalSecretSpec` is held to them.

use serde_json::Value;

use crate::core::schema::FieldError;

const SERVICE_ACCOUNT_TOKEN: &str = "kubernetes.io/service-account-token";
const BOOTSTRAP_TOKEN: &str = "bootstrap.kubernetes.io/token";
const SERVICE_ACCOUNT_NAME: &str = "kubernetes.io/service-account.name";

/// ESO's webhook rules for one object of `kind`; empty when it would admit it.
pub fn check(kind: &str, object: &Value) -> Vec<FieldError> {
    let mut errors = Vec::new();
    match kind {
        "ExternalSecret" => external_secret(&object["spec"], "spec", &mut errors),
        "ClusterExternalSecret" => external_secret(
            &object["spec"]["externalSecretSpec"],
            "spec.externalSecretSpec",
            &mut errors,
        ),
        "SecretStore" | "ClusterSecretStore" => store(&object["spec"], &mut errors),
        _ => {}
    }
    errors
}

fn push(errors: &mut Vec<FieldError>, field: String, message: impl Into<String>) {
    errors.push(FieldError {
        field,
        message: message.into(),
    });
}

fn list(value: &Value) -> &[Value] {
    value.as_array().map(Vec::as_slice).unwrap_or_default()
}

fn set(value: &Value) -> bool {
    !value.is_null()
}

fn external_secret(spec: &Value, at: &str, errors: &mut Vec<FieldError>) {
    sync_windows(&spec["syncWindows"], &format!("{at}.syncWindows"), errors);
    let target = &spec["target"];
    // The CRD defaults both policies.
    let creation = target["creationPolicy"].as_str().unwrap_or("Owner");
    let deletion = target["deletionPolicy"].as_str().unwrap_or("Retain");
    if deletion == "Delete" && matches!(creation, "Merge" | "None" | "CreateOrMerge") {
        push(
            errors,
            format!("{at}.target.deletionPolicy"),
            format!(
                "deletionPolicy Delete needs creationPolicy Owner (here {creation}): courier must own the Secret to delete it\nhint: set creationPolicy: Owner, or deletionPolicy: Retain"
            ),
        );
    }
    if deletion == "Merge" && creation == "None" {
        push(
            errors,
            format!("{at}.target.deletionPolicy"),
            "deletionPolicy Merge does not go with creationPolicy None: there is no Secret to merge with\nhint: use creationPolicy Merge, or deletionPolicy Retain",
        );
    }
    let data = list(&spec["data"]);
    let data_from = list(&spec["dataFrom"]);
    if data.is_empty() && data_from.is_empty() {
        push(
            errors,
            at.to_owned(),
            "needs `data` or `dataFrom`: there is nothing to fetch\nhint: add data: [{secretKey: ..., remoteRef: {key: ...}}] or dataFrom: [{extract: {key: ...}}]",
        );
    }
    let template = &target["template"];
    if set(template) {
        template_rules(template, &format!("{at}.target.template"), errors);
    }
    let manifest = &target["manifest"];
    let targets_secret =
        !set(manifest) || (manifest["apiVersion"] == "v1" && manifest["kind"] == "Secret");
    if targets_secret {
        for (index, from) in list(&template["templateFrom"]).iter().enumerate() {
            let target = from["target"].as_str().unwrap_or_default();
            let known = ["Data", "Annotations", "Labels"];
            if !target.is_empty() && !known.iter().any(|k| k.eq_ignore_ascii_case(target)) {
                push(
                    errors,
                    format!("{at}.target.template.templateFrom[{index}].target"),
                    "must be Data, Annotations or Labels for a Secret",
                );
            }
        }
    }
    for (index, from) in data_from.iter().enumerate() {
        let field = format!("{at}.dataFrom[{index}]");
        let source = &from["sourceRef"];
        let generator = set(&source["generatorRef"]);
        let (extract, find) = (set(&from["extract"]), set(&from["find"]));
        if [extract, find, generator].iter().filter(|s| **s).count() > 1 {
            push(
                errors,
                field.clone(),
                "takes one of extract, find or sourceRef.generatorRef, not several",
            );
        }
        if !extract && !find && !set(source) {
            push(errors, field.clone(), "needs extract, find or sourceRef");
        }
        if set(source) && !generator && !set(&source["storeRef"]) {
            push(
                errors,
                format!("{field}.sourceRef"),
                "needs generatorRef or storeRef",
            );
        }
    }
    if deletion == "Retain" {
        let mut seen = std::collections::HashMap::new();
        for (index, entry) in data.iter().enumerate() {
            let key = entry["secretKey"].as_str().unwrap_or_default();
            if let Some(first) = seen.insert(key, index) {
                push(
                    errors,
                    format!("{at}.data[{index}].secretKey"),
                    format!(
                        "secretKey {key:?} appears twice (data[{first}] and data[{index}])\nhint: each data entry writes its own key; rename one"
                    ),
                );
            }
        }
    }
}

/// `syncWindows.windows[]`: a `duration` must be a Go duration (ESO reads it as a
/// `metav1.Duration`; an object whose duration does not parse cannot be read at all). A
/// `schedule` robfig/cron cannot parse is skipped by ESO's controller (inactive, logged at
/// debug level), which turns an allow window into no refresh ever and a deny window into
/// nothing: courier refuses it, deliberately, as it refuses other mistakes ESO ignores.
fn sync_windows(windows: &Value, at: &str, errors: &mut Vec<FieldError>) {
    for (index, window) in list(&windows["windows"]).iter().enumerate() {
        if let Some(duration) = window["duration"].as_str()
            && crate::core::sync_window::parse_go_duration_exact(duration).is_none()
        {
            push(
                errors,
                format!("{at}.windows[{index}].duration"),
                "is not a Go duration\nhint: write it like 30m, 1h or 1h30m",
            );
        }
        if let Some(schedule) = window["schedule"].as_str()
            && let Err(reason) = crate::core::sync_window::parse(schedule)
        {
            push(
                errors,
                format!("{at}.windows[{index}].schedule"),
                format!(
                    "robfig/cron cannot parse this schedule ({reason}); ESO's controller would skip the window silently\nhint: five fields (minute hour day-of-month month day-of-week, e.g. 0 2 * * *) or @hourly, @daily, @weekly, @monthly, @yearly, @every 1h"
                ),
            );
        }
    }
}

fn template_rules(template: &Value, at: &str, errors: &mut Vec<FieldError>) {
    match template["type"].as_str() {
        Some(SERVICE_ACCOUNT_TOKEN) => {
            let annotations = &template["metadata"]["annotations"];
            if set(&annotations[SERVICE_ACCOUNT_NAME]) {
                push(
                    errors,
                    format!("{at}.metadata.annotations[{SERVICE_ACCOUNT_NAME}]"),
                    format!(
                        "ESO refuses a template of type {SERVICE_ACCOUNT_TOKEN} with this annotation: it would mint a token for that ServiceAccount"
                    ),
                );
            }
            for (index, from) in list(&template["templateFrom"]).iter().enumerate() {
                if from["target"]
                    .as_str()
                    .is_some_and(|t| t.eq_ignore_ascii_case("Annotations"))
                {
                    push(
                        errors,
                        format!("{at}.templateFrom[{index}].target"),
                        format!(
                            "ESO refuses templateFrom target Annotations in a template of type {SERVICE_ACCOUNT_TOKEN}"
                        ),
                    );
                }
            }
        }
        Some(BOOTSTRAP_TOKEN) => push(
            errors,
            format!("{at}.type"),
            format!("ESO refuses templates of type {BOOTSTRAP_TOKEN}"),
        ),
        _ => {}
    }
}

fn store(spec: &Value, errors: &mut Vec<FieldError>) {
    for (c, condition) in list(&spec["conditions"]).iter().enumerate() {
        for (r, pattern) in list(&condition["namespaceRegexes"]).iter().enumerate() {
            if let Some(pattern) = pattern.as_str()
                && let Err(e) = regex::Regex::new(pattern)
            {
                let reason = e.to_string();
                let reason = reason.lines().last().unwrap_or_default().trim();
                push(
                    errors,
                    format!("spec.conditions[{c}].namespaceRegexes[{r}]"),
                    format!("invalid regular expression: {reason}"),
                );
            }
        }
    }
    match &spec["refreshInterval"] {
        Value::Number(n) if n.as_i64().is_some_and(|n| n < 0) => push(
            errors,
            "spec.refreshInterval".into(),
            "must not be negative",
        ),
        Value::String(text) if crate::core::duration::parse_go_duration(text).is_none() => push(
            errors,
            "spec.refreshInterval".into(),
            "is not a Go duration\nhint: write it like 1h, 30m or 90s, or a number of seconds",
        ),
        _ => {}
    }
    let providers = spec["provider"]
        .as_object()
        .map(|p| p.values().filter(|v| set(v)).count())
        .unwrap_or(0);
    if providers != 1 {
        push(
            errors,
            "spec.provider".into(),
            format!("a store has exactly one provider; this one has {providers}"),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn fields(kind: &str, object: Value) -> Vec<String> {
        check(kind, &object).into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn eso_webhook_rules_refuse_what_eso_refuses() {
        let ok = json!({"spec": {"data": [{"secretKey": "a", "remoteRef": {"key": "s"}}]}});
        assert!(fields("ExternalSecret", ok).is_empty());
        assert_eq!(fields("ExternalSecret", json!({"spec": {}})), ["spec"]);
        assert_eq!(
            fields(
                "ExternalSecret",
                json!({"spec": {"target": {"creationPolicy": "Merge", "deletionPolicy": "Delete"},
                    "data": [{"secretKey": "a"}, {"secretKey": "a"}]}})
            ),
            ["spec.target.deletionPolicy"],
            "duplicate keys are checked only under deletionPolicy Retain"
        );
        assert_eq!(
            fields(
                "ClusterExternalSecret",
                json!({"spec": {"externalSecretSpec": {"data": [{"secretKey": "a"}, {"secretKey": "a"}],
                    "target": {"template": {"type": "bootstrap.kubernetes.io/token",
                        "templateFrom": [{"target": "labels"}, {"target": "Spec"}]}}}}})
            ),
            [
                "spec.externalSecretSpec.target.template.type",
                "spec.externalSecretSpec.target.template.templateFrom[1].target",
                "spec.externalSecretSpec.data[1].secretKey",
            ]
        );
        assert_eq!(
            fields(
                "ExternalSecret",
                json!({"spec": {"dataFrom": [{"extract": {"key": "a"}, "find": {}}, {"rewrite": []}, {"sourceRef": {}}]}})
            ),
            [
                "spec.dataFrom[0]",
                "spec.dataFrom[1]",
                "spec.dataFrom[2].sourceRef"
            ]
        );
        assert_eq!(
            fields(
                "SecretStore",
                json!({"spec": {"refreshInterval": "1hour", "provider": {"kubernetes": {}, "vault": {}},
                    "conditions": [{"namespaceRegexes": ["(a"]}]}})
            ),
            [
                "spec.conditions[0].namespaceRegexes[0]",
                "spec.refreshInterval",
                "spec.provider"
            ]
        );
    }
}
