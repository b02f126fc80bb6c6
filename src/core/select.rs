//! Kubernetes label-selector semantics: `matchLabels`, `matchExpressions`
//! (In, NotIn, Exists, DoesNotExist) and the set-based string syntax
//! (`a=b,c!=d,e in (x,y),f notin (z),g,!h`).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use crate::core::model::LabelSelector;

/// Why a selector is invalid. Selectors hold no secret material, so messages may quote them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SelectorError(String);

/// Set operator of a compiled requirement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    /// The label is present with one of the values.
    In,
    /// The label is absent or has none of the values.
    NotIn,
    /// The label is present.
    Exists,
    /// The label is absent.
    DoesNotExist,
}

/// A validated requirement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    key: String,
    operator: Operator,
    values: BTreeSet<String>,
}

/// A validated selector; all requirements must hold (an empty one matches everything).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Selector {
    requirements: Vec<Requirement>,
}

impl LabelSelector {
    /// Validates keys, values and operators.
    pub fn compile(&self) -> Result<Selector, SelectorError> {
        let mut requirements =
            Vec::with_capacity(self.match_labels.len() + self.match_expressions.len());
        for (key, value) in &self.match_labels {
            validate_key(key).map_err(|e| SelectorError(format!("matchLabels: {e}")))?;
            validate_value(value).map_err(|e| SelectorError(format!("matchLabels[{key}]: {e}")))?;
            requirements.push(Requirement::new(key, Operator::In, [value.clone()]));
        }
        for (index, expression) in self.match_expressions.iter().enumerate() {
            let at = |e: String| {
                SelectorError(format!(
                    "matchExpressions[{index}] (key {:?}): {e}",
                    expression.key
                ))
            };
            validate_key(&expression.key).map_err(at)?;
            let operator = match expression.operator.as_str() {
                "In" => Operator::In,
                "NotIn" => Operator::NotIn,
                "Exists" => Operator::Exists,
                "DoesNotExist" => Operator::DoesNotExist,
                other => {
                    return Err(at(format!(
                        "unknown operator {other:?}; expected In, NotIn, Exists or DoesNotExist"
                    )));
                }
            };
            match operator {
                Operator::In | Operator::NotIn if expression.values.is_empty() => {
                    return Err(at(format!(
                        "operator {} needs at least one value",
                        expression.operator
                    )));
                }
                Operator::Exists | Operator::DoesNotExist if !expression.values.is_empty() => {
                    return Err(at(format!(
                        "operator {} takes no values",
                        expression.operator
                    )));
                }
                _ => {}
            }
            for value in &expression.values {
                validate_value(value).map_err(at)?;
            }
            requirements.push(Requirement::new(
                &expression.key,
                operator,
                expression.values.iter().cloned(),
            ));
        }
        Ok(Selector { requirements })
    }
}

impl Requirement {
    fn new(key: &str, operator: Operator, values: impl IntoIterator<Item = String>) -> Self {
        Self {
            key: key.to_owned(),
            operator,
            values: values.into_iter().collect(),
        }
    }

    fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        let value = labels.get(&self.key);
        match self.operator {
            Operator::In => value.is_some_and(|v| self.values.contains(v)),
            Operator::NotIn => value.is_none_or(|v| !self.values.contains(v)),
            Operator::Exists => value.is_some(),
            Operator::DoesNotExist => value.is_none(),
        }
    }
}

impl Selector {
    /// The selector that matches every label set.
    pub fn everything() -> Self {
        Self::default()
    }

    /// Whether `labels` satisfy every requirement.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| r.matches(labels))
    }

    /// True for the empty selector.
    pub fn is_everything(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Parses the set-based string syntax kubectl's `-l` accepts.
    pub fn parse(text: &str) -> Result<Self, SelectorError> {
        Parser { rest: text.trim() }.selector()
    }
}

impl fmt::Display for Selector {
    /// The canonical string form, as the API server's `labelSelector` parameter takes it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, r) in self.requirements.iter().enumerate() {
            if index > 0 {
                f.write_str(",")?;
            }
            let values = || r.values.iter().cloned().collect::<Vec<_>>().join(",");
            match r.operator {
                Operator::In if r.values.len() == 1 => write!(f, "{}={}", r.key, values())?,
                Operator::In => write!(f, "{} in ({})", r.key, values())?,
                Operator::NotIn if r.values.len() == 1 => write!(f, "{}!={}", r.key, values())?,
                Operator::NotIn => write!(f, "{} notin ({})", r.key, values())?,
                Operator::Exists => write!(f, "{}", r.key)?,
                Operator::DoesNotExist => write!(f, "!{}", r.key)?,
            }
        }
        Ok(())
    }
}

/// The parsed `courier.dev/cluster-selector` of a manifest; none without the annotation.
pub fn cluster_selector(
    annotations: &BTreeMap<String, String>,
) -> Result<Option<Selector>, String> {
    use crate::core::labels::{CLUSTER_NAME_LABEL, CLUSTER_SELECTOR_ANNOTATION};
    match annotations.get(CLUSTER_SELECTOR_ANNOTATION) {
        None => Ok(None),
        Some(text) => Selector::parse(text).map(Some).map_err(|e| {
            format!(
                "metadata.annotations[{CLUSTER_SELECTOR_ANNOTATION}]: {e}\nhint: write a label selector as kubectl -l takes it, e.g. \"env in (prod,staging)\" or \"{CLUSTER_NAME_LABEL}=in-cluster\""
            )
        }),
    }
}

struct Parser<'a> {
    rest: &'a str,
}

impl Parser<'_> {
    fn selector(mut self) -> Result<Selector, SelectorError> {
        let mut requirements = Vec::new();
        if self.rest.is_empty() {
            return Ok(Selector { requirements });
        }
        loop {
            requirements.push(self.requirement()?);
            self.skip_space();
            if self.rest.is_empty() {
                return Ok(Selector { requirements });
            }
            self.expect(",")?;
        }
    }

    fn requirement(&mut self) -> Result<Requirement, SelectorError> {
        self.skip_space();
        if self.eat("!") {
            let key = self.word()?;
            validate_key(&key).map_err(SelectorError)?;
            return Ok(Requirement::new(&key, Operator::DoesNotExist, []));
        }
        let key = self.word()?;
        validate_key(&key).map_err(SelectorError)?;
        self.skip_space();
        let (operator, values) = if self.eat("==") || self.eat("=") {
            (Operator::In, vec![self.value()?])
        } else if self.eat("!=") {
            (Operator::NotIn, vec![self.value()?])
        } else if self.eat_keyword("notin") {
            (Operator::NotIn, self.value_set()?)
        } else if self.eat_keyword("in") {
            (Operator::In, self.value_set()?)
        } else if self.rest.is_empty() || self.rest.starts_with(',') {
            (Operator::Exists, Vec::new())
        } else {
            return Err(self.unexpected("an operator (=, ==, !=, in, notin) or ','"));
        };
        Ok(Requirement::new(&key, operator, values))
    }

    fn value_set(&mut self) -> Result<Vec<String>, SelectorError> {
        self.skip_space();
        self.expect("(")?;
        let mut values = Vec::new();
        loop {
            self.skip_space();
            if self.eat(")") {
                break;
            }
            values.push(self.value()?);
            self.skip_space();
            if self.eat(")") {
                break;
            }
            self.expect(",")?;
        }
        if values.is_empty() {
            return Err(SelectorError("a set needs at least one value".into()));
        }
        Ok(values)
    }

    fn value(&mut self) -> Result<String, SelectorError> {
        self.skip_space();
        let end = self
            .rest
            .find(|c: char| c == ',' || c == ')' || c.is_whitespace())
            .unwrap_or(self.rest.len());
        let (value, rest) = self.rest.split_at(end);
        self.rest = rest;
        validate_value(value).map_err(SelectorError)?;
        Ok(value.to_owned())
    }

    fn word(&mut self) -> Result<String, SelectorError> {
        self.skip_space();
        let end = self
            .rest
            .find(|c: char| matches!(c, ',' | '=' | '!' | '(' | ')') || c.is_whitespace())
            .unwrap_or(self.rest.len());
        if end == 0 {
            return Err(self.unexpected("a label key"));
        }
        let (word, rest) = self.rest.split_at(end);
        self.rest = rest;
        Ok(word.to_owned())
    }

    fn eat_keyword(&mut self, keyword: &str) -> bool {
        let Some(rest) = self.rest.strip_prefix(keyword) else {
            return false;
        };
        if rest.starts_with(|c: char| c.is_whitespace() || c == '(') {
            self.rest = rest;
            true
        } else {
            false
        }
    }

    fn eat(&mut self, token: &str) -> bool {
        match self.rest.strip_prefix(token) {
            Some(rest) => {
                self.rest = rest;
                true
            }
            None => false,
        }
    }

    fn expect(&mut self, token: &str) -> Result<(), SelectorError> {
        if self.eat(token) {
            Ok(())
        } else {
            Err(self.unexpected(&format!("'{token}'")))
        }
    }

    fn skip_space(&mut self) {
        self.rest = self.rest.trim_start();
    }

    fn unexpected(&self, wanted: &str) -> SelectorError {
        let found: String = self.rest.chars().take(20).collect();
        if found.is_empty() {
            SelectorError(format!("expected {wanted}, found the end of the selector"))
        } else {
            SelectorError(format!("expected {wanted}, found {found:?}"))
        }
    }
}

/// A qualified name: an optional DNS-subdomain prefix and `/`, then a name of at most 63
/// alphanumerics, `-`, `_` and `.`, starting and ending alphanumeric.
pub fn validate_key(key: &str) -> Result<(), String> {
    let (prefix, name) = match key.rsplit_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if prefix.is_some_and(|prefix| !is_dns_subdomain(prefix)) {
        return Err(format!(
            "invalid label key {key:?}: the prefix must be a DNS subdomain"
        ));
    }
    if name.is_empty() || !is_label_name(name) {
        return Err(format!(
            "invalid label key {key:?}: the name must be 1-63 characters of [A-Za-z0-9-_.], starting and ending alphanumeric"
        ));
    }
    Ok(())
}

/// Empty, or at most 63 alphanumerics, `-`, `_` and `.`, starting and ending alphanumeric.
pub fn validate_value(value: &str) -> Result<(), String> {
    if value.is_empty() || is_label_name(value) {
        Ok(())
    } else {
        Err(format!(
            "invalid label value {value:?}: must be at most 63 characters of [A-Za-z0-9-_.], starting and ending alphanumeric"
        ))
    }
}

/// At most 253 characters of dot-separated lowercase DNS labels (Kubernetes object
/// names, label-key prefixes).
pub fn is_dns_subdomain(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !part.starts_with('-')
                && !part.ends_with('-')
        })
}

fn is_label_name(text: &str) -> bool {
    let bytes = text.as_bytes();
    bytes.len() <= 63
        && bytes.first().is_some_and(u8::is_ascii_alphanumeric)
        && bytes.last().is_some_and(u8::is_ascii_alphanumeric)
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::model::LabelSelectorRequirement;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    fn expression(key: &str, operator: &str, values: &[&str]) -> LabelSelectorRequirement {
        LabelSelectorRequirement {
            key: key.into(),
            operator: operator.into(),
            values: values.iter().map(|v| v.to_string()).collect(),
        }
    }

    #[test]
    fn empty_selector_matches_everything() {
        let selector = LabelSelector::default().compile().unwrap();
        assert!(selector.matches(&labels(&[])));
        assert!(selector.matches(&labels(&[("a", "b")])));
    }

    #[test]
    fn match_labels_need_every_pair() {
        let selector = LabelSelector {
            match_labels: labels(&[("secrets/gh-docker-registry", "true"), ("env", "prod")]),
            ..Default::default()
        }
        .compile()
        .unwrap();
        assert!(selector.matches(&labels(&[
            ("secrets/gh-docker-registry", "true"),
            ("env", "prod"),
            ("x", "y")
        ])));
        assert!(!selector.matches(&labels(&[("secrets/gh-docker-registry", "true")])));
        assert!(!selector.matches(&labels(&[
            ("secrets/gh-docker-registry", "false"),
            ("env", "prod")
        ])));
    }

    #[test]
    fn set_operators_follow_kubernetes() {
        let compile = |e: LabelSelectorRequirement| {
            LabelSelector {
                match_expressions: vec![e],
                ..Default::default()
            }
            .compile()
            .unwrap()
        };
        let is_in = compile(expression("env", "In", &["prod", "stage"]));
        assert!(is_in.matches(&labels(&[("env", "prod")])));
        assert!(!is_in.matches(&labels(&[("env", "dev")])));
        assert!(!is_in.matches(&labels(&[])));

        let not_in = compile(expression("env", "NotIn", &["prod"]));
        assert!(not_in.matches(&labels(&[("env", "dev")])));
        assert!(
            not_in.matches(&labels(&[])),
            "NotIn matches objects without the key"
        );
        assert!(!not_in.matches(&labels(&[("env", "prod")])));

        let exists = compile(expression("env", "Exists", &[]));
        assert!(exists.matches(&labels(&[("env", "")])));
        assert!(!exists.matches(&labels(&[])));

        let absent = compile(expression("env", "DoesNotExist", &[]));
        assert!(absent.matches(&labels(&[])));
        assert!(!absent.matches(&labels(&[("env", "x")])));
    }

    #[test]
    fn invalid_requirements_are_errors_naming_the_key() {
        let compile = |e: LabelSelectorRequirement| {
            LabelSelector {
                match_expressions: vec![e],
                ..Default::default()
            }
            .compile()
            .unwrap_err()
            .to_string()
        };
        let unknown = compile(expression("env", "Equals", &["x"]));
        assert!(
            unknown.contains("\"env\"") && unknown.contains("unknown operator \"Equals\""),
            "{unknown}"
        );
        assert!(compile(expression("env", "In", &[])).contains("needs at least one value"));
        assert!(compile(expression("env", "Exists", &["x"])).contains("takes no values"));
        assert!(compile(expression("-bad", "Exists", &[])).contains("invalid label key"));
        assert!(compile(expression("env", "In", &["not valid"])).contains("invalid label value"));
    }

    #[test]
    fn string_syntax_parses_every_form() {
        let selector = Selector::parse("a=b, c!=d,e in (x, y),f notin (z),g,!h").unwrap();
        assert_eq!(selector.to_string(), "a=b,c!=d,e in (x,y),f!=z,g,!h");
        assert!(selector.matches(&labels(&[("a", "b"), ("e", "y"), ("g", "")])));
        assert!(!selector.matches(&labels(&[("a", "b"), ("e", "y"), ("g", ""), ("h", "")])));
        assert!(Selector::parse("").unwrap().is_everything());
        assert_eq!(Selector::parse("a==b").unwrap().to_string(), "a=b");
    }

    #[test]
    fn string_syntax_rejects_garbage() {
        for bad in [
            "a in ()", "a in (b", "=b", "a=b,", "a b", "a in b", "!", "a=(b)",
        ] {
            assert!(Selector::parse(bad).is_err(), "{bad:?} should not parse");
        }
    }
}
