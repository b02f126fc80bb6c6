//! ESO's template engine v2: Go `text/template` with `missingkey=error`, over the fetched
//! values as a map of strings, with sprig's functions and ESO's own. Built on `gotmpl` (a
//! Rust port of Go's text/template, vendored with one patch); the functions are in
//! [`sprig`], `more`, `dates`, `random`, `url`, `semver` (sprig) and `eso`, `yaml`
//! (ESO's).
//! `tests/go_templates.rs` runs a corpus through this engine and through ESO's own
//! `Execute`, and demands the same bytes.
//!
//! Not here (a template using one fails with a clear error, never silently): sprig's
//! certificate generators (`genCA`, ...), and `getHostByName`.
//!
//! [`render_once`] also says whether the output *varies*: whether a function ran whose
//! result differs from one call to the next (a random draw, a random salt or IV, the
//! clock). Such a target is not rewritten at every reconcile only because its values
//! differ from the last ones written (see `live::apply::is_current`).

pub mod binary;
mod dates;
mod der;
mod eso;
mod more;
mod pem;
mod random;
mod semver;
pub mod sprig;
mod url;
mod varying;
mod yaml;

pub use yaml::keys_and_values;

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

use gotmpl::{FuncMap, MissingKey, Template, Value};

use crate::core::secret_bytes::SecretBytes;

/// Why a Go template failed: Go's position (`template: data.tls.crt:1:3: ...`) and what
/// went wrong, never a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct GoTemplateError {
    /// What went wrong.
    pub message: String,
}

/// Range iterations one template may run: generous for real templates, finite for a
/// `range` over a huge generated list.
const MAX_RANGE_ITERATIONS: u64 = 1_000_000;

/// sprig's functions and ESO's own, as ESO's template engine registers them.
static FUNCTIONS: LazyLock<FuncMap> = LazyLock::new(|| {
    let mut functions = sprig::functions();
    functions.extend(more::functions());
    functions.extend(dates::functions());
    functions.extend(random::functions());
    functions.extend(url::functions());
    functions.extend(semver::functions());
    // sprig's other names for the same functions.
    for (alias, name) in [("trimall", "trimAll"), ("biggest", "max")] {
        if let Some(f) = functions.get(name).cloned() {
            functions.insert(alias.to_owned(), f);
        }
    }
    // The must* list functions return sprig's panic text as an error for a value that
    // is not a list, where the plain ones panic with it; either way the template fails.
    for (must, name, message) in [
        ("mustCompact", "compact", "Cannot compact"),
        ("mustFirst", "first", "Cannot find first"),
        ("mustInitial", "initial", "Cannot find initial"),
        ("mustLast", "last", "Cannot find last"),
        ("mustRest", "rest", "Cannot find rest"),
        ("mustUniq", "uniq", "Cannot find uniq"),
    ] {
        let Some(plain) = functions.get(name).cloned() else {
            continue;
        };
        let checked: gotmpl::ValueFunc = Arc::new(move |args: &[Value]| match args {
            [Value::List(_) | Value::Nil] => plain(args),
            [other] => Err(sprig::error(format!(
                "{message} on type {}",
                sprig::go_kind(other)
            ))),
            _ => plain(args),
        });
        functions.insert(name.to_owned(), checked.clone());
        functions.insert(must.to_owned(), checked);
    }
    if let Some(has) = functions.get("has").cloned() {
        let checked: gotmpl::ValueFunc = Arc::new(move |args: &[Value]| match args {
            [_, Value::List(_) | Value::Nil] => has(args),
            [_, other] => Err(sprig::error(format!(
                "Cannot find has on type {}",
                sprig::go_kind(other)
            ))),
            _ => has(args),
        });
        functions.insert("has".to_owned(), checked.clone());
        functions.insert("mustHas".to_owned(), checked);
    }
    functions.extend(eso::functions());
    // Whatever runs one of these renders differently next time: say so.
    for name in VARYING {
        if let Some(f) = functions.get(*name).cloned() {
            let marked: gotmpl::ValueFunc = Arc::new(move |args: &[Value]| {
                varying::varies();
                f(args)
            });
            functions.insert((*name).to_owned(), marked);
        }
    }
    functions
});

/// The functions whose output differs from call to call with the same arguments, in
/// ESO v2.9's engine and here: random draws (`randAlphaNum`, `uuidv4`, `shuffle`, ...),
/// random salts (`bcrypt`, `htpasswd`; the PKCS#12 encoders, whose MAC and encryption
/// salts are random), `encryptAES`'s random IV, and sprig's key and certificate
/// generators (refused here, listed for when they are not). The clock (`now`, `ago`,
/// `date` of something not a time) is marked where dates read it.
/// `derivePassword` is deterministic and not listed.
pub const VARYING: &[&str] = &[
    "randAlpha",
    "randAlphaNum",
    "randAscii",
    "randBytes",
    "randInt",
    "randNumeric",
    "shuffle",
    "uuidv4",
    "bcrypt",
    "htpasswd",
    "encryptAES",
    "pemToPkcs12",
    "pemToPkcs12Pass",
    "fullPemToPkcs12",
    "fullPemToPkcs12Pass",
    "pemTruststoreToPKCS12",
    "pemTruststoreToPKCS12Pass",
    "genPrivateKey",
    "genCA",
    "genCAWithKey",
    "genSelfSignedCert",
    "genSelfSignedCertWithKey",
    "genSignedCert",
    "genSignedCertWithKey",
];

fn template(name: &str) -> Template {
    Template::new(name)
        .missing_key(MissingKey::Error)
        .max_range_iters(MAX_RANGE_ITERATIONS)
        .funcs(FUNCTIONS.clone())
}

/// Go's builtin functions (text/template's `builtins`).
const GO_BUILTINS: [&str; 19] = [
    "and", "call", "eq", "ge", "gt", "html", "index", "js", "le", "len", "lt", "ne", "not", "or",
    "print", "printf", "println", "slice", "urlquery",
];

/// Whether a template may call `name`: Go's builtins, sprig's and ESO's functions, as
/// ESO v2 registers them.
pub fn is_function(name: &str) -> bool {
    GO_BUILTINS.contains(&name) || FUNCTIONS.contains_key(name)
}

/// Checks that a template parses (for `check`), without data.
pub fn validate(name: &str, source: &str) -> Result<(), GoTemplateError> {
    template(name)
        .parse(source)
        .map(drop)
        .map_err(|e| parse_error(&e))
}

/// Renders `source` over `values` as ESO does: each value is a string (`{{ .password }}`).
pub fn render(
    name: &str,
    source: &str,
    values: &BTreeMap<String, SecretBytes>,
) -> Result<String, GoTemplateError> {
    render_once(name, source, values).map(|(text, _)| text)
}

/// [`render`], and whether the output varies from one rendering to the next: true when
/// this execution ran a function of [`VARYING`] or read the clock. Decided as it runs,
/// so `{{ if .rotate }}{{ randAlphaNum 8 }}{{ end }}` varies only when `.rotate` is set.
pub fn render_once(
    name: &str,
    source: &str,
    values: &BTreeMap<String, SecretBytes>,
) -> Result<(String, bool), GoTemplateError> {
    let parsed = template(name).parse(source).map_err(|e| parse_error(&e))?;
    varying::reset();
    let output = parsed
        .execute_to_string(&data(values))
        .map_err(|e| without_values(scrubbed(&e), values, source));
    let varied = varying::reset();
    output.map(|text| (text, varied))
}

/// Renders `source` over maps of strings (`{{ .remoteRef.key }}`, `{{ .auth.token }}`),
/// as ESO's webhook provider does.
pub fn render_maps(
    name: &str,
    source: &str,
    maps: &BTreeMap<String, BTreeMap<String, String>>,
) -> Result<String, GoTemplateError> {
    let parsed = template(name).parse(source).map_err(|e| parse_error(&e))?;
    let data: BTreeMap<Arc<str>, Value> = maps
        .iter()
        .map(|(name, map)| {
            let inner: BTreeMap<Arc<str>, Value> = map
                .iter()
                .map(|(k, v)| (Arc::from(k.as_str()), Value::String(Arc::from(v.as_str()))))
                .collect();
            (Arc::from(name.as_str()), Value::Map(Arc::new(inner)))
        })
        .collect();
    parsed
        .execute_to_string(&Value::Map(Arc::new(data)))
        .map_err(|e| scrubbed(&e))
}

/// The data ESO gives a template: every key as a string, bytes that are not UTF-8
/// carried as [`binary`] describes.
pub fn data(values: &BTreeMap<String, SecretBytes>) -> Value {
    let map: BTreeMap<Arc<str>, Value> = values
        .iter()
        .map(|(k, v)| {
            (
                Arc::from(k.as_str()),
                Value::String(Arc::from(binary::from_bytes(v.expose()).as_ref())),
            )
        })
        .collect();
    Value::Map(Arc::new(map))
}

/// A parse error is about the template's own text, which holds no value: kept whole.
fn parse_error(error: &gotmpl::TemplateError) -> GoTemplateError {
    GoTemplateError {
        message: error.to_string(),
    }
}

/// An execution error can quote text the template produced from values: keep the
/// position and the reason, drop anything quoted.
fn scrubbed(error: &gotmpl::TemplateError) -> GoTemplateError {
    let text = error.to_string();
    let mut message = String::with_capacity(text.len());
    let mut quoted = false;
    for c in text.chars() {
        match c {
            '"' if !quoted => {
                quoted = true;
                message.push_str("\"…");
            }
            '"' => {
                quoted = false;
                message.push('"');
            }
            _ if quoted => {}
            c => message.push(c),
        }
    }
    GoTemplateError { message }
}

/// The messages in which a function writes an argument as it is, unquoted: `fail`'s own
/// text, and semver's constraint.
const ARGUMENT_MESSAGES: [&str; 2] = ["error calling fail: ", "improper constraint: "];

/// An execution error without any of `values`: a function may write text made from them
/// without quotes (`{{ fail .token }}`, semver's `improper constraint: X`), which
/// [`scrubbed`] keeps. Each value goes, raw, base64, Go-quoted and JSON-escaped; and the
/// argument such a function writes is kept only when it is text of the template
/// (`{{ fail "no token" }}`), since one made from a value in any other form (`{{ fail
/// (upper .token) }}`, `substr`, `printf "%x"`) is no value's own form.
fn without_values(
    mut error: GoTemplateError,
    values: &BTreeMap<String, SecretBytes>,
    source: &str,
) -> GoTemplateError {
    let mut scrubber = crate::core::redact::Scrubber::new();
    for value in values.values() {
        scrubber.add(value.expose());
    }
    error.message = scrubber.scrub(&error.message);
    for prefix in ARGUMENT_MESSAGES {
        if let Some(at) = error.message.find(prefix) {
            let start = at + prefix.len();
            let argument = error.message[start..].trim_end();
            if !argument.is_empty() && !source.contains(argument) {
                error.message.truncate(start);
                error.message.push_str(
                    "(hidden: this text is not the template's own, so it may be made from a value)",
                );
            }
        }
    }
    error
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

    #[test]
    fn the_issues_dockerconfigjson_renders() {
        let source = r#"{"auths":{"ghcr.io":{"username":"{{ .username }}","password":"{{ .token }}","auth":"{{ printf "%s:%s" .username .token | b64enc }}"}}}"#;
        let out = render(
            "t",
            source,
            &values(&[("username", "bot"), ("token", "t0k")]),
        )
        .unwrap();
        assert_eq!(
            out,
            r#"{"auths":{"ghcr.io":{"username":"bot","password":"t0k","auth":"Ym90OnQwaw=="}}}"#
        );
    }

    #[test]
    fn random_functions_and_the_clock_make_the_output_vary() {
        let token = values(&[("token", "t0k"), ("user", "bot")]);
        for source in [
            r#"{{ htpasswd "user" .token }}"#,
            r#"{{ .token | bcrypt }}"#,
            "{{ randAlphaNum 16 }}",
            "{{ randAlpha 16 }}",
            "{{ randNumeric 16 }}",
            "{{ randAscii 16 }}",
            "{{ randBytes 16 }}",
            "{{ randInt 0 1000000000 }}",
            "{{ uuidv4 }}",
            r#"{{ encryptAES "key" .token }}"#,
            "{{ shuffle \"abcdefghijklmnopqrstuvwxyz\" }}",
        ] {
            let (first, varies) = render_once("t", source, &token).unwrap();
            assert!(varies, "{source} is not marked as varying");
            let (second, _) = render_once("t", source, &token).unwrap();
            assert_ne!(first, second, "{source} rendered the same twice");
        }
        for source in [
            "{{ now }}",
            "{{ now | date \"2006\" }}",
            "{{ ago 0 }}",
            "{{ date \"2006\" \"x\" }}",
        ] {
            let (_, varies) = render_once("t", source, &token).unwrap();
            assert!(
                varies,
                "{source} reads the clock and is not marked as varying"
            );
        }
    }

    #[test]
    fn pkcs12_files_carry_random_salts_and_vary() {
        const FIXTURES: &str = include_str!("../../../tests/go_templates/fixtures.yaml");
        let fixture = |name: &str| {
            use base64::Engine as _;
            let line = FIXTURES
                .lines()
                .find_map(|l| l.strip_prefix(&format!("{name}: ")))
                .unwrap();
            let pem = base64::engine::general_purpose::STANDARD
                .decode(line)
                .unwrap();
            SecretBytes::from(pem)
        };
        let values: BTreeMap<String, SecretBytes> = [
            ("crt".to_owned(), fixture("leaf_crt")),
            ("key".to_owned(), fixture("leaf_key")),
        ]
        .into();
        for source in [
            "{{ pemToPkcs12 .crt .key }}",
            r#"{{ pemToPkcs12Pass .crt .key "pw" }}"#,
            "{{ fullPemToPkcs12 .crt .key }}",
            "{{ pemTruststoreToPKCS12 .crt }}",
        ] {
            let (first, varies) = render_once("t", source, &values).unwrap();
            assert!(varies, "{source} is not marked as varying");
            let (second, _) = render_once("t", source, &values).unwrap();
            assert_ne!(first, second, "{source} rendered the same twice");
        }
    }

    #[test]
    fn deterministic_templates_do_not_vary() {
        let token = values(&[("token", "t0k"), ("user", "bot")]);
        for source in [
            "{{ .token }}",
            r#"{{ printf "%s:%s" .user .token | b64enc }}"#,
            "{{ .token | sha256sum }}",
            r#"{{ derivePassword 1 "long" .token .user "example.com" }}"#,
            r#"{{ date "2006" 0 }}"#,
            r#"{{ if eq .user "nobody" }}{{ randAlphaNum 8 }}{{ end }}"#,
        ] {
            let (_, varies) = render_once("t", source, &token).unwrap();
            assert!(!varies, "{source} is marked as varying");
        }
        // A failed render leaves no mark on the next one.
        assert!(render_once("t", "{{ randAlphaNum 8 }}{{ .nope }}", &token).is_err());
        assert!(!render_once("t", "{{ .user }}", &token).unwrap().1);
    }

    #[test]
    fn every_varying_function_is_registered() {
        for name in VARYING {
            assert!(FUNCTIONS.contains_key(*name), "{name}");
        }
    }

    /// Messages a function writes without quotes (`fail`'s own, semver's "improper
    /// constraint: X") are scrubbed of every value the template was given.
    #[test]
    fn unquoted_execution_errors_hold_no_value() {
        let secrets = values(&[("token", "hunter2-marker"), ("pin", "8231")]);
        for source in [
            "{{ fail .token }}",
            r#"{{ fail (printf "bad token %s, pin %s" .token .pin) }}"#,
            r#"{{ semverCompare .token "1.0" }}"#,
            r#"{{ semverCompare (printf "~~ %s" .pin) "1.0" }}"#,
            "{{ fail (.token | b64enc) }}",
        ] {
            let error = render("t", source, &secrets).unwrap_err();
            for leaked in ["hunter2-marker", "8231", "aHVudGVyMi1tYXJrZXI="] {
                assert!(!error.message.contains(leaked), "{source}: {error}");
            }
        }
        // The author's own words stay.
        let error = render("t", r#"{{ fail "set .token" }}"#, &secrets).unwrap_err();
        assert!(error.message.contains("set .token"), "{error}");
    }

    #[test]
    fn a_missing_key_is_an_error_without_the_values() {
        let error = render("t", "{{ .nope }}", &values(&[("secret", "hunter2")])).unwrap_err();
        assert!(error.message.contains("nope"), "{error}");
        assert!(!error.message.contains("hunter2"), "{error}");
    }
}

#[cfg(test)]
mod completeness {
    /// Every function of sprig v3.3.0's `TxtFuncMap` but `env` and `expandenv`, which
    /// ESO removes.
    const SPRIG: &[&str] = &[
        "abbrev",
        "abbrevboth",
        "add",
        "add1",
        "add1f",
        "addf",
        "adler32sum",
        "ago",
        "all",
        "any",
        "append",
        "atoi",
        "b32dec",
        "b32enc",
        "b64dec",
        "b64enc",
        "base",
        "bcrypt",
        "biggest",
        "buildCustomCert",
        "camelcase",
        "cat",
        "ceil",
        "chunk",
        "clean",
        "coalesce",
        "compact",
        "concat",
        "contains",
        "date",
        "dateInZone",
        "dateModify",
        "decryptAES",
        "deepCopy",
        "deepEqual",
        "default",
        "derivePassword",
        "dict",
        "dig",
        "dir",
        "div",
        "divf",
        "duration",
        "durationRound",
        "empty",
        "encryptAES",
        "ext",
        "fail",
        "first",
        "float64",
        "floor",
        "fromJson",
        "genCA",
        "genCAWithKey",
        "genPrivateKey",
        "genSelfSignedCert",
        "genSelfSignedCertWithKey",
        "genSignedCert",
        "genSignedCertWithKey",
        "get",
        "getHostByName",
        "has",
        "hasKey",
        "hasPrefix",
        "hasSuffix",
        "hello",
        "htmlDate",
        "htmlDateInZone",
        "htpasswd",
        "indent",
        "initial",
        "initials",
        "int",
        "int64",
        "isAbs",
        "join",
        "kebabcase",
        "keys",
        "kindIs",
        "kindOf",
        "last",
        "list",
        "lower",
        "max",
        "maxf",
        "merge",
        "mergeOverwrite",
        "min",
        "minf",
        "mod",
        "mul",
        "mulf",
        "mustAppend",
        "mustChunk",
        "mustCompact",
        "mustDateModify",
        "mustDeepCopy",
        "mustFirst",
        "mustFromJson",
        "mustHas",
        "mustInitial",
        "mustLast",
        "mustMerge",
        "mustMergeOverwrite",
        "mustPrepend",
        "mustRegexFind",
        "mustRegexFindAll",
        "mustRegexMatch",
        "mustRegexReplaceAll",
        "mustRegexReplaceAllLiteral",
        "mustRegexSplit",
        "mustRest",
        "mustReverse",
        "mustSlice",
        "mustToDate",
        "mustToJson",
        "mustToPrettyJson",
        "mustToRawJson",
        "mustUniq",
        "mustWithout",
        "nindent",
        "nospace",
        "now",
        "omit",
        "osBase",
        "osClean",
        "osDir",
        "osExt",
        "osIsAbs",
        "pick",
        "pluck",
        "plural",
        "prepend",
        "quote",
        "randAlpha",
        "randAlphaNum",
        "randAscii",
        "randBytes",
        "randInt",
        "randNumeric",
        "regexFind",
        "regexFindAll",
        "regexMatch",
        "regexQuoteMeta",
        "regexReplaceAll",
        "regexReplaceAllLiteral",
        "regexSplit",
        "repeat",
        "replace",
        "rest",
        "reverse",
        "round",
        "semver",
        "semverCompare",
        "seq",
        "set",
        "sha1sum",
        "sha256sum",
        "sha512sum",
        "shuffle",
        "slice",
        "snakecase",
        "sortAlpha",
        "split",
        "splitList",
        "splitn",
        "squote",
        "sub",
        "subf",
        "substr",
        "swapcase",
        "ternary",
        "title",
        "toDate",
        "toDecimal",
        "toJson",
        "toPrettyJson",
        "toRawJson",
        "toString",
        "toStrings",
        "trim",
        "trimAll",
        "trimPrefix",
        "trimSuffix",
        "trimall",
        "trunc",
        "tuple",
        "typeIs",
        "typeIsLike",
        "typeOf",
        "uniq",
        "unixEpoch",
        "unset",
        "until",
        "untilStep",
        "untitle",
        "upper",
        "urlJoin",
        "urlParse",
        "uuidv4",
        "values",
        "without",
        "wrap",
        "wrapWith",
    ];

    #[test]
    fn every_sprig_function_eso_keeps_is_registered() {
        let missing: Vec<&str> = SPRIG
            .iter()
            .copied()
            .filter(|n| !super::FUNCTIONS.contains_key(*n))
            .collect();
        assert!(missing.is_empty(), "not registered: {missing:?}");
    }
}
