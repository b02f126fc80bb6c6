//! Fetching an ExternalSecret's values from its store's client, in ESO's order:
//! `dataFrom` entries in order (later wins), then `data[]` on top; with ESO's
//! `decodingStrategy`, `conversionStrategy` and `rewrite` applied on the way.

use base64::Engine as _;

use super::stores::Clients;
use super::types::Failure;
use super::validate::{compile_rewrite, data_field, transform_template};
use regex::Regex;

use crate::core::model::{
    ConversionStrategy, DecodingStrategy, DeletionPolicy, ExternalSecretSpec, MergeConflictPolicy,
    MergePriorityPolicy, MergeStrategy, NullBytePolicy, Rewrite, RewriteMerge,
};
use crate::core::provider::{FetchError, SecretMap};
use crate::core::secret_bytes::SecretBytes;
use crate::core::{gojson, gotemplate};

/// dataFrom in order (later wins), then data[] on top: ESO's order.
///
/// As ESO's `GetProviderSecretData` (pkg/controllers/externalsecret/
/// externalsecret_controller_secret.go): under `deletionPolicy` Delete or Merge a
/// `dataFrom` entry whose source does not exist (the provider's `NoSecretError`, which
/// the Kubernetes provider's `GetSecretMap` answers) is skipped; under Retain it fails.
/// When every source was skipped, ESO carries on with no data (Delete then writes
/// nothing, Merge writes what is left); `live` keeps courier's answer of the cluster
/// modes instead: the target's error, marked source missing, so that `apply` deletes
/// (Delete) or releases (Merge) courier's own targets and reports it.
pub(super) fn fetch_values(
    clients: &Clients<'_>,
    spec: &ExternalSecretSpec,
    live: bool,
) -> Result<SecretMap, Failure> {
    let skip_missing = spec.target.deletion_policy.unwrap_or_default() != DeletionPolicy::Retain;
    let mut skipped: Option<Failure> = None;
    let mut values = SecretMap::new();
    for (index, entry) in spec.data_from.iter().enumerate() {
        let at = format!("dataFrom[{index}]");
        let client = clients.for_entry(entry.source_ref.as_ref(), &at)?;
        let (fetched, decoding, conversion, null_bytes) = match (&entry.extract, &entry.find) {
            (Some(extract), _) => match client.get_secret_map(extract) {
                Ok(fetched) => (
                    fetched,
                    extract.decoding_strategy,
                    extract.conversion_strategy,
                    extract.null_byte_policy,
                ),
                Err(error) if error.source_missing && skip_missing => {
                    skipped.get_or_insert(Failure::fetch(format!("{at}.extract"), error));
                    continue;
                }
                Err(error) => return Err(Failure::fetch(format!("{at}.extract"), error)),
            },
            (None, Some(find)) => (
                client
                    .get_all_secrets(find)
                    .map_err(|e| Failure::fetch(format!("{at}.find"), e))?,
                find.decoding_strategy,
                find.conversion_strategy,
                find.null_byte_policy,
            ),
            (None, None) => return Err(Failure::new(at, "needs `extract` or `find`")),
        };
        let mut map = fetched;
        for (rewrite_index, rewrite) in entry.rewrite.iter().enumerate() {
            let field = format!("{at}.rewrite[{rewrite_index}]");
            map = apply_rewrite(rewrite, &field, map)?;
        }
        if entry.rewrite.is_empty() {
            map = convert_keys(conversion.unwrap_or_default(), map)
                .map_err(|e| Failure::fetch(at.clone(), e))?;
        }
        // ESO's `esutils.ValidateKeys` (runtime/esutils/utils.go) drops a key a rewrite
        // left empty, logging it; courier warns.
        if map.remove("").is_some() {
            tracing::warn!("{at}: a rewrite left a key empty; it is dropped, as ESO drops it");
        }
        for (key, value) in map {
            let value = decode(decoding.unwrap_or_default(), value)
                .map_err(|e| Failure::fetch(format!("{at} key {key:?}"), e))?;
            check_null_bytes(null_bytes, &key, &value).map_err(|m| Failure::new(at.clone(), m))?;
            values.insert(key, value);
        }
    }
    for (index, entry) in spec.data.iter().enumerate() {
        let at = data_field(index, &entry.secret_key);
        if entry.secret_key.is_empty() {
            return Err(Failure::new(at, "secretKey is empty"));
        }
        let client = clients.for_entry(entry.source_ref.as_ref(), &format!("data[{index}]"))?;
        // A missing `data[]` source fails the whole ExternalSecret here (marked
        // source_missing, so the deletion policy still acts on the target); ESO's
        // Kubernetes provider fails it too, but keeps the target whatever the policy.
        let value = client
            .get_secret(&entry.remote_ref)
            .map_err(|e| Failure::fetch(at.clone(), e))?;
        let value = decode(
            entry.remote_ref.decoding_strategy.unwrap_or_default(),
            value,
        )
        .map_err(|e| Failure::fetch(at.clone(), e))?;
        check_null_bytes(entry.remote_ref.null_byte_policy, &entry.secret_key, &value)
            .map_err(|m| Failure::new(at.clone(), m))?;
        values.insert(entry.secret_key.clone(), value);
    }
    // Every source skipped: the provider returned no data, and the deletion policy
    // decides (Delete removes the target, Merge takes back courier's keys).
    if values.is_empty()
        && let Some(missing) = skipped
    {
        if live {
            return Err(missing);
        }
        tracing::warn!(
            "{}: every dataFrom source is missing; skipped, as ESO skips them under deletionPolicy {:?}",
            missing.key.as_deref().unwrap_or("dataFrom"),
            spec.target.deletion_policy.unwrap_or_default()
        );
    }
    Ok(values)
}

/// ESO's `validateFetchedSecretValue` (pkg/controllers/externalsecret/
/// externalsecret_controller_secret.go): under `nullBytePolicy: Fail` a decoded value
/// holding a NUL byte fails; the message names the key, never the value.
fn check_null_bytes(
    policy: Option<NullBytePolicy>,
    key: &str,
    value: &SecretBytes,
) -> Result<(), String> {
    if policy.unwrap_or_default() == NullBytePolicy::Fail && value.expose().contains(&0) {
        return Err(format!(
            "the fetched value of key {key:?} contains NUL bytes (nullBytePolicy: Fail)\nhint: store binary data in a text-safe form (PEM, base64 with a decodingStrategy), or leave nullBytePolicy unset to write it as it is"
        ));
    }
    Ok(())
}

/// One `rewrite[]` operation over every key, as ESO's `esutils.RewriteMap`
/// (runtime/esutils/utils.go): `regexp` is Go's `Regexp.ReplaceAllString`, `transform`
/// a Go template over `{{ .value }}`, the key. Two keys rewritten to one: the later
/// (in key order) wins, where ESO's Go map order picks one at random.
fn apply_rewrite(rewrite: &Rewrite, field: &str, map: SecretMap) -> Result<SecretMap, Failure> {
    if let Some(merge) = &rewrite.merge {
        return rewrite_merge(merge, map).map_err(|m| Failure::new(format!("{field}.merge"), m));
    }
    if let Some(regexp) = &rewrite.regexp {
        let pattern = compile_rewrite(&regexp.source, &format!("{field}.regexp.source"))?;
        return Ok(map
            .into_iter()
            .map(|(k, v)| (go_replace_all(&pattern, &k, &regexp.target), v))
            .collect());
    }
    if let Some(transform) = &rewrite.transform {
        let source = transform_template(transform)
            .map_err(|m| Failure::new(format!("{field}.transform"), m))?;
        let mut out = SecretMap::new();
        for (key, value) in map {
            let input = SecretMap::from([("value".to_owned(), SecretBytes::from(key.as_str()))]);
            let (new_key, _) =
                gotemplate::render_once("transform", source, &input).map_err(|e| {
                    Failure::new(
                        format!("{field}.transform"),
                        format!("failed to execute template for key {key:?}: {}", e.message),
                    )
                })?;
            out.insert(new_key, value);
        }
        return Ok(out);
    }
    Ok(map)
}

/// ESO's `esutils.RewriteMerge` (runtime/esutils/utils.go): each value, read in key order
/// with the `priority` keys last in their order, is a JSON object (Go's `json.Unmarshal`
/// into a map; `null` has no members) whose members are merged, a later one winning. A
/// member defined twice is a conflict, an error unless `conflictPolicy: Ignore`. Strategy
/// Extract: the members are the keys (a string as is, a number as `strconv.FormatFloat`
/// 'f', an object or array as Go's `json.Marshal`, `null` empty); JSON: the keys stay and
/// `into` holds the merged object as `esutils.JSONMarshal` writes it. Errors name keys,
/// never values.
fn rewrite_merge(merge: &RewriteMerge, map: SecretMap) -> Result<SecretMap, String> {
    let mut order: Vec<&str> = map
        .keys()
        .map(String::as_str)
        .filter(|key| !merge.priority.iter().any(|p| p == key))
        .collect();
    order.extend(merge.priority.iter().map(String::as_str));
    let mut merged = serde_json::Map::new();
    let mut conflicts: Vec<String> = Vec::new();
    for key in order {
        let Some(value) = map.get(key) else {
            if merge.priority_policy.unwrap_or_default() == MergePriorityPolicy::IgnoreNotFound {
                continue;
            }
            return Err(format!(
                "priority key {key:?} is not among the keys to merge\nhint: set priorityPolicy: IgnoreNotFound to skip a missing priority key"
            ));
        };
        let members = match gojson::go_json_unmarshal(value.expose()) {
            Some(serde_json::Value::Object(members)) => members,
            Some(serde_json::Value::Null) => serde_json::Map::new(),
            _ => {
                return Err(format!(
                    "the value of key {key:?} is not a JSON object, which merge needs"
                ));
            }
        };
        for (member, item) in members {
            if merged.contains_key(&member) {
                conflicts.push(member.clone());
            }
            merged.insert(member, item);
        }
    }
    if merge.conflict_policy.unwrap_or_default() != MergeConflictPolicy::Ignore
        && !conflicts.is_empty()
    {
        return Err(format!(
            "merge failed with conflicts: {}\nhint: set conflictPolicy: Ignore to let the later value win (priority orders them)",
            conflicts.join(", ")
        ));
    }
    match merge.strategy.unwrap_or_default() {
        MergeStrategy::Extract => Ok(merged
            .into_iter()
            .map(|(member, item)| {
                let bytes = match item {
                    serde_json::Value::String(text) => text.into_bytes(),
                    serde_json::Value::Number(n) => {
                        gojson::go_format_float(n.as_f64().unwrap_or_default()).into_bytes()
                    }
                    serde_json::Value::Bool(b) => b.to_string().into_bytes(),
                    serde_json::Value::Null => Vec::new(),
                    other => gojson::go_json_marshal(&other).into_bytes(),
                };
                (member, SecretBytes::new(bytes))
            })
            .collect()),
        MergeStrategy::Json => {
            if merge.into.is_empty() {
                return Err(
                    "strategy JSON needs `into`, the key that receives the merged JSON".to_owned(),
                );
            }
            let json = gojson::go_json_of_value(&serde_json::Value::Object(merged));
            let mut out = map;
            out.insert(merge.into.clone(), SecretBytes::new(json.into_bytes()));
            Ok(out)
        }
    }
}

/// Go's `Regexp.ReplaceAllString`: every match replaced by `template` expanded as Go's
/// `Regexp.Expand` does.
pub fn go_replace_all(pattern: &Regex, text: &str, template: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for captures in pattern.captures_iter(text) {
        let whole = captures.get(0).expect("group 0 always matches");
        out.push_str(&text[last..whole.start()]);
        go_expand(pattern, &captures, template, &mut out);
        last = whole.end();
    }
    out.push_str(&text[last..]);
    out
}

/// Go's `Regexp.Expand`: `$$` is `$`; `$name` takes the longest run of letters, digits
/// and `_` as the name (so `$1_x` is the group named `1_x`, empty when there is none);
/// `${name}` bounds it; a name of digits without a leading zero is a group number; a
/// `$` with no name after it stays literal. Rust's `regex` differs on `$01` (group 1
/// there, the group named `01` in Go) and on `${...}` names with other characters.
fn go_expand(pattern: &Regex, captures: &regex::Captures<'_>, template: &str, out: &mut String) {
    let mut rest = template;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        rest = &rest[at + 1..];
        if let Some(after) = rest.strip_prefix('$') {
            out.push('$');
            rest = after;
            continue;
        }
        let Some((name, after)) = go_expand_name(rest) else {
            out.push('$');
            continue;
        };
        rest = after;
        let number = (!name.starts_with('0') || name.len() == 1)
            .then(|| name.parse::<usize>().ok().filter(|n| *n < 100_000_000))
            .flatten()
            .filter(|_| name.bytes().all(|b| b.is_ascii_digit()));
        let group = match number {
            Some(index) => captures.get(index),
            None => pattern
                .capture_names()
                .position(|n| n == Some(name))
                .and_then(|index| captures.get(index)),
        };
        if let Some(group) = group {
            out.push_str(group.as_str());
        }
    }
    out.push_str(rest);
}

/// Go's `extract`: the name after a `$` and the text after it, or None (no name, or a
/// `{` without its `}`).
fn go_expand_name(text: &str) -> Option<(&str, &str)> {
    let (brace, body) = match text.strip_prefix('{') {
        Some(body) => (true, body),
        None => (false, text),
    };
    let end = body
        .char_indices()
        .find(|(_, c)| !(c.is_alphabetic() || c.is_numeric() || *c == '_'))
        .map_or(body.len(), |(i, _)| i);
    if end == 0 {
        return None;
    }
    let name = &body[..end];
    if brace {
        let after = body[end..].strip_prefix('}')?;
        return Some((name, after));
    }
    Some((name, &body[end..]))
}

/// Applies `decodingStrategy` to one value, as ESO's `decoding.Decode`
/// (runtime/decoding/decoding.go): Base64 is Go's `base64.StdEncoding`, Base64URL its
/// `URLEncoding`, Auto tries both and keeps the value as it is when neither reads it.
pub fn decode(strategy: DecodingStrategy, value: SecretBytes) -> Result<SecretBytes, FetchError> {
    match strategy {
        DecodingStrategy::None => Ok(value),
        DecodingStrategy::Base64 => go_base64_decode(value.expose(), false)
            .map(SecretBytes::new)
            .map_err(|_| FetchError::new("value is not valid base64 (decodingStrategy: Base64)")),
        DecodingStrategy::Base64Url => go_base64_decode(value.expose(), true)
            .map(SecretBytes::new)
            .map_err(|_| {
                FetchError::new("value is not valid base64url (decodingStrategy: Base64URL)")
            }),
        DecodingStrategy::Auto => Ok(go_base64_decode(value.expose(), false)
            .or_else(|_| go_base64_decode(value.expose(), true))
            .map(SecretBytes::new)
            .unwrap_or(value)),
    }
}

/// Go's `base64.StdEncoding.DecodeString` (or `URLEncoding`, `url`): padding required,
/// `\r` and `\n` ignored wherever they stand, and the unused bits of the last character
/// not checked (Go's encodings are not `Strict()`), so `QR==` reads as `A`.
pub fn go_base64_decode(text: &[u8], url: bool) -> Result<Vec<u8>, base64::DecodeError> {
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    const CONFIG: GeneralPurposeConfig = GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::RequireCanonical);
    const STD: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::STANDARD, CONFIG);
    const URL: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::URL_SAFE, CONFIG);
    let engine = if url { &URL } else { &STD };
    if text.contains(&b'\n') || text.contains(&b'\r') {
        let kept: Vec<u8> = text
            .iter()
            .copied()
            .filter(|b| !matches!(b, b'\n' | b'\r'))
            .collect();
        return engine.decode(kept);
    }
    engine.decode(text)
}

/// Applies `conversionStrategy` to keys, as ESO does for `find` results.
pub fn convert_keys(strategy: ConversionStrategy, map: SecretMap) -> Result<SecretMap, FetchError> {
    let mut out = SecretMap::new();
    for (key, value) in map {
        let converted: String = key
            .chars()
            .map(|c| {
                if c.is_alphanumeric() || matches!(c, '-' | '.' | '_') {
                    c.to_string()
                } else {
                    match strategy {
                        ConversionStrategy::Default => "_".to_owned(),
                        ConversionStrategy::Unicode => format!("_U{:04x}_", c as u32),
                    }
                }
            })
            .collect();
        if out.insert(converted.clone(), value).is_some() {
            return Err(FetchError::new(format!(
                "key collision after conversion: {converted:?}"
            )));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::provider::SecretsClient;

    fn map(pairs: &[(&str, &str)]) -> SecretMap {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), SecretBytes::from(*v)))
            .collect()
    }

    #[test]
    fn decoding_strategies() {
        let decode_str = |s: DecodingStrategy, v: &str| {
            decode(s, SecretBytes::from(v)).map(|b| b.expose().to_vec())
        };
        assert_eq!(decode_str(DecodingStrategy::None, "aGk=").unwrap(), b"aGk=");
        assert_eq!(decode_str(DecodingStrategy::Base64, "aGk=").unwrap(), b"hi");
        assert!(decode_str(DecodingStrategy::Base64, "not base64!").is_err());
        assert_eq!(
            decode_str(DecodingStrategy::Base64Url, "_-8=").unwrap(),
            vec![0xff, 0xef]
        );
        assert_eq!(
            decode_str(DecodingStrategy::Auto, "_-8=").unwrap(),
            vec![0xff, 0xef]
        );
        assert_eq!(
            decode_str(DecodingStrategy::Auto, "plain text").unwrap(),
            b"plain text"
        );
    }

    /// Go's base64 decoders (which ESO's decodingStrategy uses) ignore CR and LF anywhere
    /// and do not check the unused bits of the last character; padding stays required.
    #[test]
    fn base64_is_as_lenient_as_go() {
        let decode_str = |s: DecodingStrategy, v: &str| {
            decode(s, SecretBytes::from(v)).map(|b| b.expose().to_vec())
        };
        // "QR==": the low bits of R are not zero; Go reads "A".
        assert_eq!(decode_str(DecodingStrategy::Base64, "QR==").unwrap(), b"A");
        assert_eq!(decode_str(DecodingStrategy::Base64, "QUJ=").unwrap(), b"AB");
        assert_eq!(decode_str(DecodingStrategy::Auto, "QR==").unwrap(), b"A");
        // Line breaks, as base64 tools wrap at 76 columns, even inside the padding.
        assert_eq!(
            decode_str(DecodingStrategy::Base64, "aGVs\r\nbG8=\n").unwrap(),
            b"hello"
        );
        assert_eq!(
            decode_str(DecodingStrategy::Base64, "QQ=\n=").unwrap(),
            b"A"
        );
        assert_eq!(
            decode_str(DecodingStrategy::Base64Url, "_-8=\n").unwrap(),
            vec![0xff, 0xef]
        );
        // Still refused as Go refuses them: missing padding, a space, data after padding.
        assert!(decode_str(DecodingStrategy::Base64, "QQ").is_err());
        assert!(decode_str(DecodingStrategy::Base64, "QQ= =").is_err());
        assert!(decode_str(DecodingStrategy::Base64, "QQ==QQ==").is_err());
        assert!(decode_str(DecodingStrategy::Base64, "_-8=").is_err());
        // Auto keeps what neither decoder reads.
        assert_eq!(decode_str(DecodingStrategy::Auto, "QQ").unwrap(), b"QQ");
    }

    #[test]
    fn conversion_replaces_characters_outside_the_key_alphabet() {
        let converted = convert_keys(ConversionStrategy::Default, map(&[("a/b c", "1")])).unwrap();
        assert!(converted.contains_key("a_b_c"));
        let unicode = convert_keys(ConversionStrategy::Unicode, map(&[("a/b", "1")])).unwrap();
        assert!(unicode.contains_key("a_U002f_b"));
        assert!(
            convert_keys(
                ConversionStrategy::Default,
                map(&[("a/b", "1"), ("a_b", "2")])
            )
            .is_err()
        );
    }

    fn merge_op(value: serde_json::Value) -> RewriteMerge {
        serde_json::from_value(value).unwrap()
    }

    fn texts(map: &SecretMap) -> Vec<(String, String)> {
        map.iter()
            .map(|(k, v)| (k.clone(), String::from_utf8_lossy(v.expose()).into_owned()))
            .collect()
    }

    /// ESO's `RewriteMerge` (runtime/esutils/utils.go and its TestRewriteMerge table):
    /// keys in order with the priority keys last, conflicts, both strategies, and values
    /// re-encoded as Go writes them.
    #[test]
    fn rewrite_merge_is_eso_s() {
        let input = map(&[
            ("a", r#"{"x":"1","y":"2"}"#),
            ("b", r#"{"y":"3","z":"4"}"#),
            (
                "c",
                r#"{"w":{"n":1,"h":"<&>"},"list":[1,2.50],"big":1e21,"t":true,"nil":null}"#,
            ),
        ]);
        let ignore = merge_op(serde_json::json!({"conflictPolicy": "Ignore"}));
        let out = texts(&rewrite_merge(&ignore, input.clone()).unwrap());
        assert_eq!(
            out,
            [
                ("big", "1000000000000000000000"),
                ("list", "[1,2.5]"),
                ("nil", ""),
                ("t", "true"),
                ("w", r#"{"h":"\u003c\u0026\u003e","n":1}"#),
                ("x", "1"),
                ("y", "3"),
                ("z", "4"),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
        );
        // The priority key is merged last, so it wins.
        let priority = merge_op(serde_json::json!({"conflictPolicy": "Ignore", "priority": ["a"]}));
        let out = rewrite_merge(&priority, input.clone()).unwrap();
        assert_eq!(out["y"].expose(), b"2");
        // Conflicts are an error by default, naming the member, not the value.
        let error = rewrite_merge(&merge_op(serde_json::json!({})), input.clone()).unwrap_err();
        assert!(error.contains("conflicts: y"), "{error}");
        // A missing priority key: an error unless IgnoreNotFound.
        let strict =
            merge_op(serde_json::json!({"conflictPolicy": "Ignore", "priority": ["nope"]}));
        assert!(
            rewrite_merge(&strict, input.clone())
                .unwrap_err()
                .contains("\"nope\"")
        );
        let lenient = merge_op(serde_json::json!({
            "conflictPolicy": "Ignore", "priority": ["nope"], "priorityPolicy": "IgnoreNotFound"
        }));
        assert_eq!(
            rewrite_merge(&lenient, input.clone()).unwrap()["y"].expose(),
            b"3"
        );
        // JSON: the keys stay, `into` holds the merged object (HTML escaping off).
        let json = merge_op(
            serde_json::json!({"strategy": "JSON", "into": "all", "conflictPolicy": "Ignore"}),
        );
        let out = rewrite_merge(&json, input.clone()).unwrap();
        assert_eq!(out.len(), 4);
        assert_eq!(out["a"].expose(), input["a"].expose());
        assert_eq!(
            String::from_utf8_lossy(out["all"].expose()),
            r#"{"big":1e+21,"list":[1,2.5],"nil":null,"t":true,"w":{"h":"<&>","n":1},"x":"1","y":"3","z":"4"}"#
        );
        let no_into = merge_op(serde_json::json!({"strategy": "JSON", "conflictPolicy": "Ignore"}));
        assert!(rewrite_merge(&no_into, input.clone()).is_err());
        // A value that is not a JSON object fails, naming the key only; `null` has no members.
        let error = rewrite_merge(&ignore, map(&[("a", "secret-text")])).unwrap_err();
        assert!(
            error.contains("\"a\"") && !error.contains("secret-text"),
            "{error}"
        );
        assert!(rewrite_merge(&ignore, map(&[("a", "[1]")])).is_err());
        assert!(
            rewrite_merge(&ignore, map(&[("a", "null")]))
                .unwrap()
                .is_empty()
        );
    }

    /// ESO's `validateFetchedSecretValue`: only `Fail` looks, and only after decoding.
    #[test]
    fn null_byte_policy_fail_refuses_nul_after_decoding() {
        let nul = SecretBytes::new(b"a\0b".to_vec());
        assert!(check_null_bytes(None, "k", &nul).is_ok());
        assert!(check_null_bytes(Some(NullBytePolicy::Ignore), "k", &nul).is_ok());
        let error = check_null_bytes(Some(NullBytePolicy::Fail), "k", &nul).unwrap_err();
        assert!(
            error.contains("\"k\"") && error.contains("hint:"),
            "{error}"
        );
        assert!(
            check_null_bytes(Some(NullBytePolicy::Fail), "k", &SecretBytes::from("ab")).is_ok()
        );
        // "YQBi" is base64 for a NUL between two letters: the decoded value is what counts.
        let decoded = decode(DecodingStrategy::Base64, SecretBytes::from("YQBi")).unwrap();
        assert!(check_null_bytes(Some(NullBytePolicy::Fail), "k", &decoded).is_err());
    }

    /// Go's ReplaceAllString and Expand, checked against Go 1.26's regexp.
    #[test]
    fn rewrite_expands_like_go() {
        let re = |p: &str| Regex::new(p).unwrap();
        assert_eq!(go_replace_all(&re("^db-(.*)$"), "db-user", "$1_x"), "");
        assert_eq!(
            go_replace_all(&re("^db-(.*)$"), "db-user", "${1}_x"),
            "user_x"
        );
        assert_eq!(
            go_replace_all(&re("^db-(?P<n>.*)$"), "db-user", "$n.$01.$1"),
            "user..user"
        );
        assert_eq!(
            go_replace_all(&re("^db-(.*)$"), "db-user", "$$1-${a b}-$"),
            "$1-${a b}-$"
        );
        assert_eq!(go_replace_all(&re("a*"), "baaac", "<$0>"), "<>b<aaa>c<>");
        assert_eq!(go_replace_all(&re("^db-(.*)$"), "db-user", "${1"), "${1");
        assert_eq!(go_replace_all(&re("(x)?y"), "yxy", "[$1]"), "[][x]");
    }

    struct Client(SecretMap);

    impl SecretsClient for Client {
        fn get_secret(&self, _: &crate::core::model::RemoteRef) -> Result<SecretBytes, FetchError> {
            Err(FetchError::new("unused"))
        }
        fn get_secret_map(
            &self,
            _: &crate::core::model::RemoteRef,
        ) -> Result<SecretMap, FetchError> {
            Ok(self.0.clone())
        }
        fn get_all_secrets(
            &self,
            _: &crate::core::model::FindRef,
        ) -> Result<SecretMap, FetchError> {
            Ok(self.0.clone())
        }
    }

    fn spec(rewrite: serde_json::Value) -> ExternalSecretSpec {
        serde_json::from_value(serde_json::json!({
            "dataFrom": [{"extract": {"key": "s"}, "rewrite": rewrite}]
        }))
        .unwrap()
    }

    /// ESO's ValidateKeys drops a key a rewrite left empty (no error), and
    /// RewriteTransform renders each key through a Go template over .value.
    #[test]
    fn rewrites_drop_empty_keys_and_transform_keys() {
        let client = Clients {
            main: Box::new(Client(map(&[("db-user", "u"), ("keep", "k")]))),
            entries: Default::default(),
        };
        let values = fetch_values(
            &client,
            &spec(serde_json::json!([{"regexp": {"source": "^db-(.*)$", "target": "$1_x"}}])),
            false,
        )
        .unwrap();
        assert_eq!(values.keys().collect::<Vec<_>>(), vec!["keep"]);
        let values = fetch_values(
            &client,
            &spec(serde_json::json!([
                {"transform": {"template": "{{ .value | upper }}_V"}},
                {"regexp": {"source": "-", "target": "_"}}
            ])),
            false,
        )
        .unwrap();
        assert_eq!(
            values.keys().collect::<Vec<_>>(),
            vec!["DB_USER_V", "KEEP_V"]
        );
        assert_eq!(values["DB_USER_V"].expose(), b"u");
    }
}
