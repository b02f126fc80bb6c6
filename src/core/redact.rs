//! Keeping secret values out of messages.

use std::collections::BTreeMap;
use std::sync::LazyLock;

use base64::Engine as _;
use regex::Regex;
use zeroize::Zeroize as _;

use crate::core::model::StringMap;

/// The text that stands where a value was.
pub const REDACTED: &str = "*** REDACTED ***";

/// Removes the quoted input serde (and serde-saphyr) quote in messages such as
/// `invalid type: string "hunter2", expected a map`: that text may be a secret value.
/// Field names (in backticks) stay, since they are what the user must fix.
pub fn scrub_serde_message(message: &str) -> String {
    static QUOTED_INPUT: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r#"(string|bytes|byte array|character|integer|floating point|char|unit variant|newtype variant|map|sequence|value) (?:"(?:[^"\\]|\\.)*"|`[^`]*`|'(?:[^'\\]|\\.)*')"#)
            .expect("static pattern")
    });
    QUOTED_INPUT.replace_all(message, "$1").into_owned()
}

/// A label or annotation a template produced: derived from the values, so it is a value
/// too, shown only where values are (`render` without `--redact`) and never in a message.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Derived {
    /// The template field it came from (`template.metadata.labels[owner]`), for errors.
    pub field: String,
    /// Whether its key came out of the template too (`templateFrom` with
    /// `KeysAndValues`, whose output is a map): then the key is hidden as well.
    pub key: bool,
}

/// Labels or annotations by key, with those a template produced.
pub type DerivedMap = BTreeMap<String, Derived>;

/// The text that stands for the `n`th (from 1) hidden key of a map, so hidden keys stay
/// distinct.
pub fn hidden_key(n: usize) -> String {
    format!("*** REDACTED KEY {n} ***")
}

/// Labels or annotations as shown where values are hidden: a value a template produced
/// is [`REDACTED`], a key it produced is [`hidden_key`]; the manifest's own stay.
pub fn shown_metadata(map: &StringMap, derived: &DerivedMap) -> StringMap {
    if derived.is_empty() {
        return map.clone();
    }
    let mut hidden = 0;
    map.iter()
        .map(|(key, value)| match derived.get(key) {
            None => (key.clone(), value.clone()),
            Some(Derived { key: false, .. }) => (key.clone(), REDACTED.to_owned()),
            Some(Derived { key: true, .. }) => {
                hidden += 1;
                (hidden_key(hidden), REDACTED.to_owned())
            }
        })
        .collect()
}

/// Hides what the API server quotes back of an object it refuses
/// (`metadata.labels: Invalid value: "hunter2": a valid label must ...`), and the
/// character Go's JSON decoder names where a value is not JSON (`invalid character 'h'
/// looking for beginning of value`): the quoted text may be a value. The field path and
/// the reason stay.
pub fn scrub_api_message(message: &str) -> String {
    static QUOTED_VALUE: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(
            r#"(Invalid value|Unsupported value|Duplicate value|Not found): "(?:[^"\\]|\\.)*""#,
        )
        .expect("static pattern")
    });
    static JSON_CHARACTER: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(r"(invalid character) '(?:[^'\\]|\\.)*'").expect("static pattern")
    });
    let message = QUOTED_VALUE.replace_all(message, format!("$1: \"{REDACTED}\""));
    JSON_CHARACTER.replace_all(&message, "$1").into_owned()
}

/// Values shorter than this are replaced only where they stand alone (between
/// characters that are not alphanumeric), so a one-letter value does not shred a message.
const SHORT: usize = 4;

/// Removes from a message every value courier sent in one object, in each form a server
/// may quote it: the text, its base64 (as `data` carries it), and its Go-quoted (`%q`)
/// and JSON-escaped forms. On top of [`scrub_api_message`], for what the server echoes
/// in words of its own. The values are wiped from memory when the scrubber is dropped;
/// it has no `Debug`.
#[derive(Default)]
pub struct Scrubber {
    needles: Vec<String>,
}

impl Scrubber {
    /// A scrubber for no value yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one value sent.
    pub fn add(&mut self, value: &[u8]) {
        if value.is_empty() {
            return;
        }
        self.needles
            .push(base64::engine::general_purpose::STANDARD.encode(value));
        if let Ok(text) = std::str::from_utf8(value) {
            self.needles.push(text.to_owned());
            self.needles.push(go_quoted(text));
            let json = serde_json::to_string(text).unwrap_or_default();
            if let Some(inner) = json.strip_prefix('"').and_then(|j| j.strip_suffix('"')) {
                self.needles.push(inner.to_owned());
            }
        }
    }

    /// The message without any of the values.
    pub fn scrub(&self, message: &str) -> String {
        let mut out = scrub_api_message(message);
        let mut needles: Vec<&str> = self
            .needles
            .iter()
            .map(String::as_str)
            .filter(|n| !n.is_empty())
            .collect();
        // Longest first: a value that holds another is replaced whole.
        needles.sort_by_key(|n| std::cmp::Reverse(n.len()));
        needles.dedup();
        for needle in needles {
            out = if needle.chars().count() >= SHORT {
                out.replace(needle, REDACTED)
            } else {
                replace_standalone(&out, needle)
            };
        }
        out
    }
}

impl Drop for Scrubber {
    fn drop(&mut self) {
        for needle in &mut self.needles {
            needle.zeroize();
        }
    }
}

/// `text` as Go's `%q` writes it, without the quotes: `\`, `"` and control characters
/// escaped, other printable characters as they are.
fn go_quoted(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// Replaces `needle` where neither neighbour is alphanumeric.
fn replace_standalone(text: &str, needle: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = 0;
    for (at, _) in text.match_indices(needle) {
        if at < rest {
            continue;
        }
        let before = text[..at].chars().next_back();
        let after = text[at + needle.len()..].chars().next();
        if before.is_some_and(char::is_alphanumeric) || after.is_some_and(char::is_alphanumeric) {
            continue;
        }
        out.push_str(&text[rest..at]);
        out.push_str(REDACTED);
        rest = at + needle.len();
    }
    out.push_str(&text[rest..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoted_values_are_removed_and_field_names_kept() {
        assert_eq!(
            scrub_serde_message(r#"invalid type: string "hunter2 \"x\"", expected a map"#),
            "invalid type: string, expected a map"
        );
        assert_eq!(
            scrub_serde_message("invalid type: integer `1234`, expected a string"),
            "invalid type: integer, expected a string"
        );
        assert_eq!(
            scrub_serde_message("missing field `key`"),
            "missing field `key`"
        );
    }

    #[test]
    fn derived_values_and_keys_are_hidden_and_the_manifest_s_own_stay() {
        let map: StringMap = [("a", "1"), ("team", "x"), ("z", "2"), ("zz", "3")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let derived: DerivedMap = [("a", true), ("team", false), ("zz", true)]
            .into_iter()
            .map(|(k, key)| {
                let field = "template".to_owned();
                (k.to_owned(), Derived { field, key })
            })
            .collect();
        let shown = shown_metadata(&map, &derived);
        let expected: StringMap = [
            ("*** REDACTED KEY 1 ***", REDACTED),
            ("*** REDACTED KEY 2 ***", REDACTED),
            ("team", REDACTED),
            ("z", "2"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        assert_eq!(shown, expected);
    }

    #[test]
    fn the_api_server_s_quoted_values_are_hidden() {
        let message = r#"Secret "x" is invalid: metadata.labels: Invalid value: "marker \"q\" value": a valid label must be an empty string"#;
        assert_eq!(
            scrub_api_message(message),
            r#"Secret "x" is invalid: metadata.labels: Invalid value: "*** REDACTED ***": a valid label must be an empty string"#
        );
        assert_eq!(
            scrub_api_message(
                r#"data[.dockerconfigjson]: Invalid value: "<secret contents redacted>": invalid character 'h' looking for beginning of value"#
            ),
            r#"data[.dockerconfigjson]: Invalid value: "*** REDACTED ***": invalid character looking for beginning of value"#
        );
    }

    #[test]
    fn every_form_of_a_sent_value_is_removed() {
        let mut scrubber = Scrubber::new();
        scrubber.add(b"line one\n\"quoted\" marker");
        scrubber.add(b"ab");
        scrubber.add(b"");
        let base64 =
            base64::engine::general_purpose::STANDARD.encode("line one\n\"quoted\" marker");
        let message = format!(
            "raw line one\n\"quoted\" marker; go line one\\n\\\"quoted\\\" marker; b64 {base64}; short ab, about, (ab)"
        );
        let scrubbed = scrubber.scrub(&message);
        assert_eq!(
            scrubbed,
            format!(
                "raw {REDACTED}; go {REDACTED}; b64 {REDACTED}; short {REDACTED}, about, ({REDACTED})"
            )
        );
        assert!(!scrubbed.contains("marker"), "{scrubbed}");
    }

    #[test]
    fn go_quoting_matches_go_s_escapes() {
        assert_eq!(go_quoted("a\tb\u{1}c\u{7f}é"), "a\\tb\\x01c\\x7fé");
    }
}
