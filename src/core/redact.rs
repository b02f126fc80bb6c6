//! Keeping secret values out of messages.

use std::sync::LazyLock;

use regex::Regex;

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
}
