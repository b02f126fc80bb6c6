//! sprig v3's functions as ESO's templates see them (`sprig.TxtFuncMap()` without `env`,
//! `expandenv` and `getHostByName`), with Go's semantics: typed parameters reject other
//! types, `b64dec` of bad input returns Go's error text as its result, `toJson` escapes
//! `<`, `>` and `&`, numbers go through `cast.ToInt64`. Every function here is in the
//! differential corpus (`tests/go_templates/corpus.yaml`).
//!
//! A sprig function not implemented yet is still registered, so a template using it
//! fails with "not supported by courier yet" at execution rather than a confusing
//! "function not defined".

use std::collections::BTreeMap;
use std::sync::Arc;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use gotmpl::{FuncMap, TemplateError, Value};

use super::binary::{from_bytes, replaced, to_bytes};
use sha2::{Digest, Sha256, Sha512};

type Result<T> = std::result::Result<T, TemplateError>;

pub(super) fn error(message: impl Into<String>) -> TemplateError {
    TemplateError::Exec(message.into())
}

pub(super) fn text(value: impl Into<String>) -> Value {
    Value::String(Arc::from(value.into()))
}

pub(super) fn type_name(value: &Value) -> &'static str {
    match value {
        Value::String(_) => "string",
        Value::Int(_) => "int",
        Value::Uint(_) => "uint",
        Value::Float(_) => "float64",
        Value::Bool(_) => "bool",
        Value::List(_) => "[]interface {}",
        Value::Map(_) => "map[string]interface {}",
        Value::Nil => "nil",
        _ => "func",
    }
}

/// A `string` parameter: Go refuses anything else.
pub(super) fn string_arg<'a>(args: &'a [Value], index: usize, function: &str) -> Result<&'a str> {
    match args.get(index) {
        Some(Value::String(s)) => Ok(s),
        Some(other) => Err(error(format!(
            "{function}: wrong type for value; expected string; got {}",
            type_name(other)
        ))),
        None => Err(error(format!("{function}: missing argument"))),
    }
}

/// An `int` parameter: Go converts number constants and refuses the rest.
pub(super) fn int_arg(args: &[Value], index: usize, function: &str) -> Result<i64> {
    match args.get(index) {
        Some(Value::Int(n)) => Ok(*n),
        Some(Value::Uint(n)) => {
            i64::try_from(*n).map_err(|_| error(format!("{function}: overflow")))
        }
        Some(other) => Err(error(format!(
            "{function}: wrong type for value; expected int; got {}",
            type_name(other)
        ))),
        None => Err(error(format!("{function}: missing argument"))),
    }
}

pub(super) fn arity(args: &[Value], count: usize, function: &str) -> Result<()> {
    if args.len() == count {
        Ok(())
    } else {
        Err(error(format!(
            "wrong number of args for {function}: want {count} got {}",
            args.len()
        )))
    }
}

/// sprig's `strval`: strings as they are, everything else as Go's `%v`.
pub(super) fn strval(value: &Value) -> String {
    match value {
        Value::String(s) => s.to_string(),
        other => go_value(other),
    }
}

/// Go's `%v` for the values templates hold (gotmpl's printer, patched to print floats
/// as Go does: `1e+06`).
fn go_value(value: &Value) -> String {
    value.to_string()
}

/// `cast.ToInt64`, as sprig's arithmetic uses it: strings parsed (0 when they are not
/// numbers), floats truncated, booleans 1 or 0, nil 0.
pub(super) fn to_int64(value: &Value) -> i64 {
    match value {
        Value::Int(n) => *n,
        Value::Uint(n) => *n as i64,
        Value::Float(f) => *f as i64,
        Value::Bool(b) => i64::from(*b),
        Value::String(s) => parse_go_int(s).unwrap_or(0),
        _ => 0,
    }
}

/// `strconv.ParseInt(s, 0, 0)`: decimal, `0x`, `0o`, `0b` and leading-`0` octal.
fn parse_go_int(s: &str) -> Option<i64> {
    let (negative, digits) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let digits = digits.replace('_', "");
    let (radix, body) = if let Some(rest) = digits.strip_prefix("0x").or(digits.strip_prefix("0X"))
    {
        (16, rest.to_owned())
    } else if let Some(rest) = digits.strip_prefix("0b").or(digits.strip_prefix("0B")) {
        (2, rest.to_owned())
    } else if let Some(rest) = digits.strip_prefix("0o").or(digits.strip_prefix("0O")) {
        (8, rest.to_owned())
    } else if digits.len() > 1 && digits.starts_with('0') {
        (8, digits[1..].to_owned())
    } else {
        (10, digits)
    };
    if body.is_empty() {
        return None;
    }
    let magnitude = i64::from_str_radix(&body, radix).ok()?;
    Some(if negative { -magnitude } else { magnitude })
}

/// `cast.ToFloat64`, as sprig's float functions use it.
pub(super) fn to_float64(value: &Value) -> f64 {
    match value {
        Value::Int(n) => *n as f64,
        Value::Uint(n) => *n as f64,
        Value::Float(f) => *f,
        Value::Bool(b) => f64::from(u8::from(*b)),
        Value::String(s) => s.trim().parse().unwrap_or(0.0),
        _ => 0.0,
    }
}

/// Go's `reflect.Kind` name of a template value.
pub(super) fn go_kind(value: &Value) -> &'static str {
    match value {
        Value::String(_) => "string",
        Value::Int(_) => "int",
        Value::Uint(_) => "uint",
        Value::Float(_) => "float64",
        Value::Bool(_) => "bool",
        Value::List(_) => "slice",
        Value::Map(_) => "map",
        Value::Nil => "invalid",
        _ => "func",
    }
}

/// Go's `base32.StdEncoding.EncodeToString`.
pub(super) fn go_base32_encode(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    for chunk in bytes.chunks(5) {
        let mut block = [0u8; 5];
        block[..chunk.len()].copy_from_slice(chunk);
        let value = block.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
        let symbols = (chunk.len() * 8).div_ceil(5);
        for i in 0..8 {
            if i < symbols {
                out.push(ALPHABET[((value >> (35 - i * 5)) & 31) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// sprig's `empty`: nil, false, 0, "" and empty lists and maps.
pub(super) fn is_empty(value: &Value) -> bool {
    match value {
        Value::Nil => true,
        Value::Bool(b) => !b,
        Value::Int(n) => *n == 0,
        Value::Uint(n) => *n == 0,
        Value::Float(f) => *f == 0.0,
        Value::String(s) => s.is_empty(),
        Value::List(items) => items.is_empty(),
        Value::Map(map) => map.is_empty(),
        _ => false,
    }
}

/// Go's `%q` (`strconv.Quote`): printable runes as they are, the rest escaped.
fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if c.is_control() => {
                if (c as u32) <= 0xffff {
                    out.push_str(&format!("\\u{:04x}", c as u32));
                } else {
                    out.push_str(&format!("\\U{:08x}", c as u32));
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Go's `json.Marshal` of a string: HTML characters and U+2028/U+2029 escaped.
fn go_json_string(s: &str, escape_html: bool) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '<' | '>' | '&' if escape_html => out.push_str(&format!("\\u{:04x}", c as u32)),
            '\u{2028}' | '\u{2029}' => out.push_str(&format!("\\u{:04x}", c as u32)),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Go's `json.Marshal` / `MarshalIndent` of a template value.
fn go_json(value: &Value, escape_html: bool, indent: Option<&str>, depth: usize) -> String {
    let newline = |level: usize| match indent {
        Some(unit) => format!("\n{}", unit.repeat(level)),
        None => String::new(),
    };
    let colon = if indent.is_some() { ": " } else { ":" };
    match value {
        Value::Nil => "null".into(),
        Value::Bool(b) => b.to_string(),
        Value::Int(n) => n.to_string(),
        Value::Uint(n) => n.to_string(),
        Value::Float(f) => go_json_float(*f),
        Value::String(s) => go_json_string(s, escape_html),
        Value::List(items) if items.is_empty() => "[]".into(),
        Value::List(items) => {
            let parts: Vec<String> = items
                .iter()
                .map(|item| {
                    format!(
                        "{}{}",
                        newline(depth + 1),
                        go_json(item, escape_html, indent, depth + 1)
                    )
                })
                .collect();
            format!("[{}{}]", parts.join(","), newline(depth))
        }
        Value::Map(map) if map.is_empty() => "{}".into(),
        Value::Map(map) => {
            let parts: Vec<String> = map
                .iter()
                .map(|(k, v)| {
                    format!(
                        "{}{}{colon}{}",
                        newline(depth + 1),
                        go_json_string(k, escape_html),
                        go_json(v, escape_html, indent, depth + 1)
                    )
                })
                .collect();
            format!("{{{}{}}}", parts.join(","), newline(depth))
        }
        _ => "null".into(),
    }
}

/// encoding/json's float64 format: shortest digits, the exponent form below 1e-6 and from
/// 1e21 on, a negative exponent without a leading zero (`1e-7`, `1e+21`).
pub(super) fn go_json_float(f: f64) -> String {
    if f == f.trunc() && f.abs() < 1e21 {
        return format!("{f:.0}");
    }
    let abs = f.abs();
    if abs != 0.0 && !(1e-6..1e21).contains(&abs) {
        let formatted = format!("{f:e}");
        let (mantissa, exp) = formatted.split_once('e').unwrap_or((&formatted, "0"));
        let exp: i32 = exp.parse().unwrap_or(0);
        return if exp < 0 {
            format!("{mantissa}e-{}", -exp)
        } else {
            format!("{mantissa}e+{exp:02}")
        };
    }
    format!("{f}")
}

/// Go's `json.Unmarshal` into `interface{}`: numbers become float64.
fn from_json(value: serde_json::Value) -> Value {
    match value {
        serde_json::Value::Null => Value::Nil,
        serde_json::Value::Bool(b) => Value::Bool(b),
        serde_json::Value::Number(n) => Value::Float(n.as_f64().unwrap_or(0.0)),
        serde_json::Value::String(s) => text(s),
        serde_json::Value::Array(items) => {
            Value::List(items.into_iter().map(from_json).collect::<Vec<_>>().into())
        }
        serde_json::Value::Object(members) => Value::Map(Arc::new(
            members
                .into_iter()
                .map(|(k, v)| (Arc::from(k.as_str()), from_json(v)))
                .collect(),
        )),
    }
}

/// Go's `strings.Title`: the first letter of every word upper-cased.
pub(super) fn go_title(s: &str) -> String {
    let mut previous_is_separator = true;
    s.chars()
        .map(|c| {
            let out = if previous_is_separator {
                c.to_uppercase().next().unwrap_or(c)
            } else {
                c
            };
            previous_is_separator = !(c.is_alphanumeric() || c == '_');
            out
        })
        .collect()
}

pub(super) fn list_items(value: &Value) -> Vec<Value> {
    match value {
        Value::List(items) => items.to_vec(),
        _ => Vec::new(),
    }
}

pub(super) fn map_of(value: &Value, function: &str) -> Result<Arc<BTreeMap<Arc<str>, Value>>> {
    match value {
        Value::Map(map) => Ok(map.clone()),
        other => Err(error(format!(
            "{function}: wrong type for value; expected map[string]interface {{}}; got {}",
            type_name(other)
        ))),
    }
}

/// sprig's `strslice`: a list's items as strings, nils dropped; anything else a
/// one-element list of its `strval`.
fn strslice(value: &Value) -> Vec<String> {
    match value {
        Value::List(items) => items
            .iter()
            .filter(|v| !matches!(v, Value::Nil))
            .map(strval)
            .collect(),
        Value::Nil => Vec::new(),
        other => vec![strval(other)],
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn regex(pattern: &str, function: &str) -> Result<regex::Regex> {
    regex::Regex::new(pattern).map_err(|_| error(format!("{function}: invalid regular expression")))
}

pub(super) fn string_fn(f: fn(&str) -> String, name: &'static str) -> gotmpl::ValueFunc {
    Arc::new(move |args: &[Value]| {
        arity(args, 1, name)?;
        Ok(text(f(string_arg(args, 0, name)?)))
    })
}

/// The function table.
pub fn functions() -> FuncMap {
    let mut table = FuncMap::new();
    let mut add = |name: &str, f: gotmpl::ValueFunc| {
        table.insert(name.to_owned(), f);
    };
    // Go's `len` of a string counts bytes, also those carried for non-UTF-8 values.
    add(
        "len",
        Arc::new(|args: &[Value]| {
            arity(args, 1, "len")?;
            match &args[0] {
                Value::String(s) => Ok(Value::Int(to_bytes(s).len() as i64)),
                other => other
                    .len()
                    .map(|n| Value::Int(n as i64))
                    .ok_or_else(|| error(format!("len of type {}", type_name(other)))),
            }
        }),
    );
    // Go's case mappings write U+FFFD for each byte that is not UTF-8.
    add("upper", string_fn(|s| replaced(s).to_uppercase(), "upper"));
    add("lower", string_fn(|s| replaced(s).to_lowercase(), "lower"));
    add("title", string_fn(|s| go_title(&replaced(s)), "title"));
    add("trim", string_fn(|s| s.trim().to_owned(), "trim"));
    add("nospace", string_fn(go_delete_white_space, "nospace"));
    add(
        "b64enc",
        string_fn(|s| STANDARD.encode(to_bytes(s)), "b64enc"),
    );
    add(
        "b64dec",
        string_fn(
            |s| match go_base64_decode(s.as_bytes()) {
                Ok(bytes) => from_bytes(&bytes).into_owned(),
                // sprig returns the error's text as the result.
                Err(offset) => format!("illegal base64 data at input byte {offset}"),
            },
            "b64dec",
        ),
    );
    add(
        "sha256sum",
        string_fn(|s| hex(&Sha256::digest(to_bytes(s))), "sha256sum"),
    );
    add(
        "sha512sum",
        string_fn(|s| hex(&Sha512::digest(to_bytes(s))), "sha512sum"),
    );
    // (cutset or affix, string) -> string
    for (name, op) in [
        (
            "trimAll",
            (|cutset: &str, s: &str| s.trim_matches(|c| cutset.contains(c)).to_owned())
                as fn(&str, &str) -> String,
        ),
        ("trimPrefix", |prefix, s| {
            s.strip_prefix(prefix).unwrap_or(s).to_owned()
        }),
        ("trimSuffix", |suffix, s| {
            s.strip_suffix(suffix).unwrap_or(s).to_owned()
        }),
    ] {
        add(
            name,
            Arc::new(move |args: &[Value]| {
                arity(args, 2, name)?;
                Ok(text(op(
                    string_arg(args, 0, name)?,
                    string_arg(args, 1, name)?,
                )))
            }),
        );
    }
    add(
        "replace",
        Arc::new(|args: &[Value]| {
            arity(args, 3, "replace")?;
            let old = string_arg(args, 0, "replace")?;
            let new = string_arg(args, 1, "replace")?;
            let src = string_arg(args, 2, "replace")?;
            Ok(text(go_replace_all(src, old, new)))
        }),
    );
    add(
        "repeat",
        Arc::new(|args: &[Value]| {
            arity(args, 2, "repeat")?;
            let count = int_arg(args, 0, "repeat")?;
            let s = string_arg(args, 1, "repeat")?;
            if count < 0 {
                return Err(error("repeat: negative Repeat count"));
            }
            if (count as usize).saturating_mul(s.len()) > 1 << 24 {
                return Err(error("repeat: the result would exceed 16 MiB"));
            }
            Ok(text(s.repeat(count as usize)))
        }),
    );
    for (name, test) in [
        (
            "contains",
            (|s: &str, p: &str| s.contains(p)) as fn(&str, &str) -> bool,
        ),
        ("hasPrefix", |s, p| s.starts_with(p)),
        ("hasSuffix", |s, p| s.ends_with(p)),
    ] {
        add(
            name,
            Arc::new(move |args: &[Value]| {
                arity(args, 2, name)?;
                let needle = string_arg(args, 0, name)?;
                let s = string_arg(args, 1, name)?;
                Ok(Value::Bool(test(s, needle)))
            }),
        );
    }
    for (name, lead) in [("indent", ""), ("nindent", "\n")] {
        add(
            name,
            Arc::new(move |args: &[Value]| {
                arity(args, 2, name)?;
                let pad = " ".repeat(int_arg(args, 0, name)?.max(0) as usize);
                let s = string_arg(args, 1, name)?;
                Ok(text(format!(
                    "{lead}{pad}{}",
                    s.replace('\n', &format!("\n{pad}"))
                )))
            }),
        );
    }
    add(
        "trunc",
        Arc::new(|args: &[Value]| {
            arity(args, 2, "trunc")?;
            let count = int_arg(args, 0, "trunc")?;
            // Go slices bytes: a cut through a character keeps the bytes it cut.
            let bytes = to_bytes(string_arg(args, 1, "trunc")?);
            let length = bytes.len() as i64;
            let out = if count < 0 && length + count > 0 {
                &bytes[(length + count) as usize..]
            } else if count >= 0 && length > count {
                &bytes[..count as usize]
            } else {
                &bytes[..]
            };
            Ok(text(from_bytes(out).into_owned()))
        }),
    );
    // Every non-nil argument, formatted, joined by spaces.
    for (name, format) in [
        (
            "quote",
            (|v: &Value| go_quote(&strval(v))) as fn(&Value) -> String,
        ),
        ("squote", |v| format!("'{}'", strval(v))),
        ("cat", go_value),
    ] {
        add(
            name,
            Arc::new(move |args: &[Value]| {
                let parts: Vec<String> = args
                    .iter()
                    .filter(|v| !matches!(v, Value::Nil))
                    .map(format)
                    .collect();
                Ok(text(parts.join(" ")))
            }),
        );
    }
    add(
        "toString",
        Arc::new(|args: &[Value]| {
            arity(args, 1, "toString")?;
            Ok(text(strval(&args[0])))
        }),
    );
    for (name, escape_html, indent) in [
        ("toJson", true, None),
        ("toPrettyJson", true, Some("  ")),
        ("toRawJson", false, None),
    ] {
        add(
            name,
            Arc::new(move |args: &[Value]| {
                arity(args, 1, name)?;
                Ok(text(go_json(&args[0], escape_html, indent, 0)))
            }),
        );
    }
    add(
        "fromJson",
        Arc::new(|args: &[Value]| {
            arity(args, 1, "fromJson")?;
            let s = string_arg(args, 0, "fromJson")?;
            // sprig swallows the error and returns nil.
            Ok(serde_json::from_str(s).map(from_json).unwrap_or(Value::Nil))
        }),
    );
    add(
        "default",
        Arc::new(|args: &[Value]| match args {
            [] => Err(error(
                "wrong number of args for default: want at least 1 got 0",
            )),
            [fallback] => Ok(fallback.clone()),
            [fallback, given, ..] => Ok(if is_empty(given) {
                fallback.clone()
            } else {
                given.clone()
            }),
        }),
    );
    add(
        "empty",
        Arc::new(|args: &[Value]| {
            arity(args, 1, "empty")?;
            Ok(Value::Bool(is_empty(&args[0])))
        }),
    );
    add(
        "coalesce",
        Arc::new(|args: &[Value]| {
            Ok(args
                .iter()
                .find(|v| !is_empty(v))
                .cloned()
                .unwrap_or(Value::Nil))
        }),
    );
    add(
        "ternary",
        Arc::new(|args: &[Value]| {
            arity(args, 3, "ternary")?;
            match &args[2] {
                Value::Bool(true) => Ok(args[0].clone()),
                Value::Bool(false) => Ok(args[1].clone()),
                other => Err(error(format!(
                    "ternary: wrong type for value; expected bool; got {}",
                    type_name(other)
                ))),
            }
        }),
    );
    add(
        "list",
        Arc::new(|args: &[Value]| Ok(Value::List(args.to_vec().into()))),
    );
    add(
        "join",
        Arc::new(|args: &[Value]| {
            arity(args, 2, "join")?;
            let separator = string_arg(args, 0, "join")?;
            Ok(text(strslice(&args[1]).join(separator)))
        }),
    );
    add(
        "splitList",
        Arc::new(|args: &[Value]| {
            arity(args, 2, "splitList")?;
            let separator = string_arg(args, 0, "splitList")?;
            let s = string_arg(args, 1, "splitList")?;
            Ok(Value::List(
                go_split(s, separator)
                    .into_iter()
                    .map(text)
                    .collect::<Vec<_>>()
                    .into(),
            ))
        }),
    );
    add(
        "split",
        Arc::new(|args: &[Value]| {
            arity(args, 2, "split")?;
            let separator = string_arg(args, 0, "split")?;
            let s = string_arg(args, 1, "split")?;
            let parts: BTreeMap<Arc<str>, Value> = go_split(s, separator)
                .into_iter()
                .enumerate()
                .map(|(i, part)| (Arc::from(format!("_{i}").as_str()), text(part)))
                .collect();
            Ok(Value::Map(Arc::new(parts)))
        }),
    );
    add(
        "first",
        Arc::new(|args: &[Value]| {
            arity(args, 1, "first")?;
            Ok(list_items(&args[0])
                .into_iter()
                .next()
                .unwrap_or(Value::Nil))
        }),
    );
    add(
        "last",
        Arc::new(|args: &[Value]| {
            arity(args, 1, "last")?;
            Ok(list_items(&args[0]).pop().unwrap_or(Value::Nil))
        }),
    );
    add(
        "has",
        Arc::new(|args: &[Value]| {
            arity(args, 2, "has")?;
            Ok(Value::Bool(list_items(&args[1]).contains(&args[0])))
        }),
    );
    add(
        "uniq",
        Arc::new(|args: &[Value]| {
            arity(args, 1, "uniq")?;
            let mut out: Vec<Value> = Vec::new();
            for item in list_items(&args[0]) {
                if !out.contains(&item) {
                    out.push(item);
                }
            }
            Ok(Value::List(out.into()))
        }),
    );
    add(
        "compact",
        Arc::new(|args: &[Value]| {
            arity(args, 1, "compact")?;
            let out: Vec<Value> = list_items(&args[0])
                .into_iter()
                .filter(|v| !is_empty(v))
                .collect();
            Ok(Value::List(out.into()))
        }),
    );
    add(
        "sortAlpha",
        Arc::new(|args: &[Value]| {
            arity(args, 1, "sortAlpha")?;
            let mut items = strslice(&args[0]);
            items.sort();
            Ok(Value::List(
                items.into_iter().map(text).collect::<Vec<_>>().into(),
            ))
        }),
    );
    add(
        "dict",
        Arc::new(|args: &[Value]| {
            let mut map = BTreeMap::new();
            for pair in args.chunks(2) {
                let key = Arc::from(strval(&pair[0]).as_str());
                map.insert(key, pair.get(1).cloned().unwrap_or_else(|| text("")));
            }
            Ok(Value::Map(Arc::new(map)))
        }),
    );
    add(
        "get",
        Arc::new(|args: &[Value]| {
            arity(args, 2, "get")?;
            let map = map_of(&args[0], "get")?;
            let key = string_arg(args, 1, "get")?;
            Ok(map.get(key).cloned().unwrap_or_else(|| text("")))
        }),
    );
    add(
        "hasKey",
        Arc::new(|args: &[Value]| {
            arity(args, 2, "hasKey")?;
            let map = map_of(&args[0], "hasKey")?;
            let key = string_arg(args, 1, "hasKey")?;
            Ok(Value::Bool(map.contains_key(key)))
        }),
    );
    add(
        "atoi",
        Arc::new(|args: &[Value]| {
            arity(args, 1, "atoi")?;
            let s = string_arg(args, 0, "atoi")?;
            Ok(Value::Int(s.parse::<i64>().unwrap_or(0)))
        }),
    );
    for name in ["int", "int64"] {
        add(
            name,
            Arc::new(move |args: &[Value]| {
                arity(args, 1, name)?;
                Ok(Value::Int(to_int64(&args[0])))
            }),
        );
    }
    for (name, op) in [
        (
            "add",
            (|a: i64, b: i64| Some(a.wrapping_add(b))) as fn(i64, i64) -> Option<i64>,
        ),
        ("sub", |a, b| Some(a.wrapping_sub(b))),
        ("mul", |a, b| Some(a.wrapping_mul(b))),
        ("div", |a, b| a.checked_div(b)),
        ("mod", |a, b| a.checked_rem(b)),
    ] {
        add(
            name,
            Arc::new(move |args: &[Value]| {
                let variadic = matches!(name, "add" | "mul");
                if !variadic {
                    arity(args, 2, name)?;
                }
                let mut numbers = args.iter().map(to_int64);
                let Some(first) = numbers.next() else {
                    return Ok(Value::Int(if name == "mul" { 1 } else { 0 }));
                };
                let mut total = first;
                for n in numbers {
                    total = op(total, n).ok_or_else(|| {
                        error(format!(
                            "error calling {name}: runtime error: integer divide by zero"
                        ))
                    })?;
                }
                Ok(Value::Int(total))
            }),
        );
    }
    add(
        "add1",
        Arc::new(|args: &[Value]| {
            arity(args, 1, "add1")?;
            Ok(Value::Int(to_int64(&args[0]).wrapping_add(1)))
        }),
    );
    for (name, pick) in [
        ("max", (|a: i64, b: i64| a.max(b)) as fn(i64, i64) -> i64),
        ("min", |a, b| a.min(b)),
    ] {
        add(
            name,
            Arc::new(move |args: &[Value]| {
                let mut numbers = args.iter().map(to_int64);
                let first = numbers.next().ok_or_else(|| {
                    error(format!(
                        "wrong number of args for {name}: want at least 1 got 0"
                    ))
                })?;
                Ok(Value::Int(numbers.fold(first, pick)))
            }),
        );
    }
    add(
        "regexMatch",
        Arc::new(|args: &[Value]| {
            arity(args, 2, "regexMatch")?;
            let s = string_arg(args, 1, "regexMatch")?;
            // sprig ignores the compile error: an invalid pattern matches nothing.
            Ok(Value::Bool(
                regex::Regex::new(string_arg(args, 0, "regexMatch")?).is_ok_and(|p| p.is_match(s)),
            ))
        }),
    );
    add(
        "regexFind",
        Arc::new(|args: &[Value]| {
            arity(args, 2, "regexFind")?;
            let pattern = regex(string_arg(args, 0, "regexFind")?, "regexFind")?;
            let s = string_arg(args, 1, "regexFind")?;
            Ok(text(
                pattern.find(s).map(|m| m.as_str()).unwrap_or_default(),
            ))
        }),
    );
    add(
        "regexReplaceAllLiteral",
        Arc::new(|args: &[Value]| {
            arity(args, 3, "regexReplaceAllLiteral")?;
            let pattern = regex(
                string_arg(args, 0, "regexReplaceAllLiteral")?,
                "regexReplaceAllLiteral",
            )?;
            let s = string_arg(args, 1, "regexReplaceAllLiteral")?;
            let replacement = string_arg(args, 2, "regexReplaceAllLiteral")?;
            Ok(text(pattern.replace_all(s, regex::NoExpand(replacement))))
        }),
    );
    add(
        "sha1sum",
        string_fn(|s| hex(&sha1::Sha1::digest(to_bytes(s))), "sha1sum"),
    );
    add(
        "adler32sum",
        string_fn(
            |s| {
                let (mut a, mut b) = (1u32, 0u32);
                for &byte in to_bytes(s).iter() {
                    a = (a + u32::from(byte)) % 65521;
                    b = (b + a) % 65521;
                }
                ((b << 16) | a).to_string()
            },
            "adler32sum",
        ),
    );
    add(
        "untitle",
        string_fn(
            |s| {
                let mut previous_is_space = true;
                s.chars()
                    .map(|c| {
                        let out = if previous_is_space {
                            c.to_lowercase().next().unwrap_or(c)
                        } else {
                            c
                        };
                        previous_is_space = c.is_whitespace();
                        out
                    })
                    .collect()
            },
            "untitle",
        ),
    );
    add(
        "substr",
        Arc::new(|args: &[Value]| {
            arity(args, 3, "substr")?;
            let start = int_arg(args, 0, "substr")?;
            let end = int_arg(args, 1, "substr")?;
            let s = string_arg(args, 2, "substr")?;
            let length = s.len() as i64;
            let piece = if start < 0 {
                s.get(..end.clamp(0, length) as usize)
            } else if end < 0 || end > length {
                s.get(start.min(length) as usize..)
            } else if start > end {
                None
            } else {
                s.get(start as usize..end as usize)
            };
            piece
                .map(text)
                .ok_or_else(|| error("substr: slice bounds out of range"))
        }),
    );
    add(
        "regexFindAll",
        Arc::new(|args: &[Value]| {
            arity(args, 3, "regexFindAll")?;
            let pattern = regex(string_arg(args, 0, "regexFindAll")?, "regexFindAll")?;
            let s = string_arg(args, 1, "regexFindAll")?;
            let n = int_arg(args, 2, "regexFindAll")?;
            let limit = if n < 0 { usize::MAX } else { n as usize };
            let found: Vec<Value> = pattern
                .find_iter(s)
                .take(limit)
                .map(|m| text(m.as_str()))
                .collect();
            Ok(Value::List(found.into()))
        }),
    );
    add(
        "regexSplit",
        Arc::new(|args: &[Value]| {
            arity(args, 3, "regexSplit")?;
            let pattern = regex(string_arg(args, 0, "regexSplit")?, "regexSplit")?;
            let s = string_arg(args, 1, "regexSplit")?;
            let n = int_arg(args, 2, "regexSplit")?;
            if n == 0 {
                return Ok(Value::List(Vec::new().into()));
            }
            let parts: Vec<Value> = if n < 0 {
                pattern.split(s).map(text).collect()
            } else {
                pattern.splitn(s, n as usize).map(text).collect()
            };
            Ok(Value::List(parts.into()))
        }),
    );
    for (name, at_front) in [("append", false), ("push", false), ("prepend", true)] {
        add(
            name,
            Arc::new(move |args: &[Value]| {
                arity(args, 2, name)?;
                let Value::List(items) = &args[0] else {
                    return Err(error(format!(
                        "Cannot {name} on type {}",
                        type_name(&args[0])
                    )));
                };
                let mut out = items.to_vec();
                if at_front {
                    out.insert(0, args[1].clone());
                } else {
                    out.push(args[1].clone());
                }
                Ok(Value::List(out.into()))
            }),
        );
    }
    for (name, pick) in [
        (
            "rest",
            (|items: &[Value]| items.get(1..).map(<[Value]>::to_vec))
                as fn(&[Value]) -> Option<Vec<Value>>,
        ),
        ("initial", |items| {
            items.len().checked_sub(1).map(|n| items[..n].to_vec())
        }),
        ("reverse", |items| {
            Some(items.iter().rev().cloned().collect())
        }),
    ] {
        add(
            name,
            Arc::new(move |args: &[Value]| {
                arity(args, 1, name)?;
                match &args[0] {
                    // An empty list gives an empty list (Go prints a nil slice as []).
                    Value::List(items) => Ok(Value::List(pick(items).unwrap_or_default().into())),
                    other => Err(error(format!(
                        "Cannot find {name} on type {}",
                        type_name(other)
                    ))),
                }
            }),
        );
    }
    add(
        "without",
        Arc::new(|args: &[Value]| {
            let Some(Value::List(items)) = args.first() else {
                return Err(error("without: the first argument must be a list"));
            };
            let out: Vec<Value> = items
                .iter()
                .filter(|item| !args[1..].contains(item))
                .cloned()
                .collect();
            Ok(Value::List(out.into()))
        }),
    );
    add(
        "concat",
        Arc::new(|args: &[Value]| {
            let mut out = Vec::new();
            for arg in args {
                match arg {
                    Value::List(items) => out.extend(items.iter().cloned()),
                    other => {
                        return Err(error(format!(
                            "Cannot concat type {} as list",
                            type_name(other)
                        )));
                    }
                }
            }
            Ok(Value::List(out.into()))
        }),
    );
    add(
        "until",
        Arc::new(|args: &[Value]| {
            arity(args, 1, "until")?;
            let count = int_arg(args, 0, "until")?;
            if count > 1_000_000 {
                return Err(error("until: more than 1,000,000 items"));
            }
            let items: Vec<Value> = if count >= 0 {
                (0..count).map(Value::Int).collect()
            } else {
                (count + 1..=0).rev().map(Value::Int).collect()
            };
            Ok(Value::List(items.into()))
        }),
    );
    add(
        "set",
        Arc::new(|args: &[Value]| {
            arity(args, 3, "set")?;
            let mut map = (*map_of(&args[0], "set")?).clone();
            map.insert(Arc::from(string_arg(args, 1, "set")?), args[2].clone());
            Ok(Value::Map(Arc::new(map)))
        }),
    );
    add(
        "unset",
        Arc::new(|args: &[Value]| {
            arity(args, 2, "unset")?;
            let mut map = (*map_of(&args[0], "unset")?).clone();
            map.remove(string_arg(args, 1, "unset")?);
            Ok(Value::Map(Arc::new(map)))
        }),
    );
    add(
        "pick",
        Arc::new(|args: &[Value]| {
            let map = map_of(args.first().unwrap_or(&Value::Nil), "pick")?;
            let wanted: Vec<String> = args[1..].iter().map(strval).collect();
            let picked = map
                .iter()
                .filter(|(k, _)| wanted.iter().any(|w| w.as_str() == &***k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            Ok(Value::Map(Arc::new(picked)))
        }),
    );
    add(
        "omit",
        Arc::new(|args: &[Value]| {
            let map = map_of(args.first().unwrap_or(&Value::Nil), "omit")?;
            let unwanted: Vec<String> = args[1..].iter().map(strval).collect();
            let kept = map
                .iter()
                .filter(|(k, _)| !unwanted.iter().any(|w| w.as_str() == &***k))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            Ok(Value::Map(Arc::new(kept)))
        }),
    );
    add(
        "dig",
        Arc::new(|args: &[Value]| {
            // dig "a" "b" <default> <dict>
            if args.len() < 3 {
                return Err(error("dig: needs keys, a default and a map"));
            }
            let map = &args[args.len() - 1];
            let fallback = &args[args.len() - 2];
            let mut current = map.clone();
            for key in &args[..args.len() - 2] {
                let key = match key {
                    Value::String(s) => s.clone(),
                    other => {
                        return Err(error(format!(
                            "dig: wrong type for value; expected string; got {}",
                            type_name(other)
                        )));
                    }
                };
                current = match &current {
                    Value::Map(m) => match m.get(&*key) {
                        Some(v) => v.clone(),
                        None => return Ok(fallback.clone()),
                    },
                    _ => return Ok(fallback.clone()),
                };
            }
            Ok(current)
        }),
    );
    add(
        "toStrings",
        Arc::new(|args: &[Value]| {
            arity(args, 1, "toStrings")?;
            Ok(Value::List(
                strslice(&args[0])
                    .into_iter()
                    .map(text)
                    .collect::<Vec<_>>()
                    .into(),
            ))
        }),
    );
    add(
        "fail",
        Arc::new(|args: &[Value]| {
            arity(args, 1, "fail")?;
            // As Go's text/template names it; the prefix also tells the caller which
            // text is the template's argument (see `without_values`).
            Err(error(format!(
                "error calling fail: {}",
                string_arg(args, 0, "fail")?
            )))
        }),
    );
    add(
        "plural",
        Arc::new(|args: &[Value]| {
            arity(args, 3, "plural")?;
            let one = string_arg(args, 0, "plural")?;
            let many = string_arg(args, 1, "plural")?;
            let count = int_arg(args, 2, "plural")?;
            Ok(text(if count == 1 { one } else { many }))
        }),
    );
    add(
        "regexReplaceAll",
        Arc::new(|args: &[Value]| {
            arity(args, 3, "regexReplaceAll")?;
            let pattern = regex(string_arg(args, 0, "regexReplaceAll")?, "regexReplaceAll")?;
            let s = string_arg(args, 1, "regexReplaceAll")?;
            let replacement = string_arg(args, 2, "regexReplaceAll")?;
            // Go's Expand and Rust's share the rules: `$1x` names group "1x", `$$` is `$`.
            Ok(text(pattern.replace_all(s, replacement)))
        }),
    );
    add(
        "keys",
        Arc::new(|args: &[Value]| {
            // Go's map order is random; sorted here (templates sort it for Go too).
            let mut out = Vec::new();
            for arg in args {
                out.extend(map_of(arg, "keys")?.keys().map(|k| text(k.as_ref())));
            }
            Ok(Value::List(out.into()))
        }),
    );
    add(
        "values",
        Arc::new(|args: &[Value]| {
            arity(args, 1, "values")?;
            let map = map_of(&args[0], "values")?;
            Ok(Value::List(
                map.values().cloned().collect::<Vec<_>>().into(),
            ))
        }),
    );
    add(
        "float64",
        Arc::new(|args: &[Value]| {
            arity(args, 1, "float64")?;
            Ok(Value::Float(to_float64(&args[0])))
        }),
    );
    for (name, op) in [("floor", f64::floor as fn(f64) -> f64), ("ceil", f64::ceil)] {
        add(
            name,
            Arc::new(move |args: &[Value]| {
                arity(args, 1, name)?;
                Ok(Value::Float(op(to_float64(&args[0]))))
            }),
        );
    }
    add(
        "round",
        Arc::new(|args: &[Value]| {
            if args.len() < 2 {
                return Err(error("wrong number of args for round: want at least 2"));
            }
            let value = to_float64(&args[0]);
            let places = to_int64(&args[1]);
            let factor = 10f64.powi(places as i32);
            let digit = value * factor;
            // sprig rounds half away from zero at 0.5 (its default `roundOn`).
            let rounded = if digit.fract().abs() >= 0.5 {
                digit.trunc() + digit.signum()
            } else {
                digit.trunc()
            };
            Ok(Value::Float(rounded / factor))
        }),
    );
    for (name, any) in [("any", true), ("all", false)] {
        add(
            name,
            Arc::new(move |args: &[Value]| {
                let truthy = |v: &Value| !is_empty(v);
                Ok(Value::Bool(if any {
                    args.iter().any(truthy)
                } else {
                    args.iter().all(truthy)
                }))
            }),
        );
    }
    add(
        "kindOf",
        Arc::new(|args: &[Value]| {
            arity(args, 1, "kindOf")?;
            Ok(text(go_kind(&args[0])))
        }),
    );
    add(
        "kindIs",
        Arc::new(|args: &[Value]| {
            arity(args, 2, "kindIs")?;
            let kind = string_arg(args, 0, "kindIs")?;
            Ok(Value::Bool(go_kind(&args[1]) == kind))
        }),
    );
    add(
        "typeOf",
        Arc::new(|args: &[Value]| {
            arity(args, 1, "typeOf")?;
            Ok(text(type_name(&args[0])))
        }),
    );
    add(
        "b32enc",
        string_fn(|s| go_base32_encode(s.as_bytes()), "b32enc"),
    );
    add(
        "abbrev",
        Arc::new(|args: &[Value]| {
            arity(args, 2, "abbrev")?;
            let width = int_arg(args, 0, "abbrev")?;
            let s = string_arg(args, 1, "abbrev")?;
            if width < 4 || s.len() as i64 <= width {
                return Ok(text(s));
            }
            let keep = (width - 3) as usize;
            Ok(text(format!(
                "{}...",
                s.get(..keep)
                    .ok_or_else(|| error("abbrev: cuts through a multi-byte character"))?
            )))
        }),
    );
    add(
        "initials",
        string_fn(
            |s| {
                s.split_whitespace()
                    .filter_map(|word| word.chars().next())
                    .collect()
            },
            "initials",
        ),
    );
    add(
        "seq",
        Arc::new(|args: &[Value]| {
            let numbers: Vec<i64> = args.iter().map(to_int64).collect();
            let (start, step, end) = match numbers.as_slice() {
                [end] => (1, if *end >= 1 { 1 } else { -1 }, *end),
                [start, end] => (*start, if end >= start { 1 } else { -1 }, *end),
                [start, step, end] => (*start, *step, *end),
                _ => return Ok(text("")),
            };
            if step == 0 || (end - start).signum() * step.signum() < 0 {
                return Ok(text(""));
            }
            let count = (end - start) / step + 1;
            if count > 1_000_000 {
                return Err(error("seq: more than 1,000,000 items"));
            }
            let items: Vec<String> = (0..count).map(|i| (start + i * step).to_string()).collect();
            Ok(text(items.join(" ")))
        }),
    );
    add(
        "chunk",
        Arc::new(|args: &[Value]| {
            arity(args, 2, "chunk")?;
            let size = int_arg(args, 0, "chunk")?;
            let Value::List(items) = &args[1] else {
                return Err(error(format!("Cannot chunk type {}", type_name(&args[1]))));
            };
            if size <= 0 {
                return Err(error("chunk: size must be positive"));
            }
            let chunks: Vec<Value> = items
                .chunks(size as usize)
                .map(|c| Value::List(c.to_vec().into()))
                .collect();
            Ok(Value::List(chunks.into()))
        }),
    );
    add("regexQuoteMeta", string_fn(regex::escape, "regexQuoteMeta"));
    // sprig's `slice` shadows Go's builtin: lists only.
    add(
        "slice",
        Arc::new(|args: &[Value]| {
            let Some(Value::List(items)) = args.first() else {
                return Err(error(format!(
                    "error calling slice: list should be type of slice or array but {}",
                    args.first().map_or("nil", type_name)
                )));
            };
            let bound = |i: usize| args.get(i).map(to_int64);
            let start = bound(1).unwrap_or(0);
            let end = bound(2).unwrap_or(items.len() as i64);
            if start < 0 || end < start || end > items.len() as i64 {
                return Err(error("error calling slice: slice bounds out of range"));
            }
            Ok(Value::List(
                items[start as usize..end as usize].to_vec().into(),
            ))
        }),
    );
    add(
        "mustRegexMatch",
        Arc::new(|args: &[Value]| {
            arity(args, 2, "mustRegexMatch")?;
            let pattern = regex(string_arg(args, 0, "mustRegexMatch")?, "mustRegexMatch")?;
            Ok(Value::Bool(pattern.is_match(string_arg(
                args,
                1,
                "mustRegexMatch",
            )?)))
        }),
    );
    add(
        "mustFromJson",
        Arc::new(|args: &[Value]| {
            arity(args, 1, "mustFromJson")?;
            let s = string_arg(args, 0, "mustFromJson")?;
            serde_json::from_str(s)
                .map(from_json)
                .map_err(|_| error("mustFromJson: the text is not JSON"))
        }),
    );
    for name in NOT_YET {
        add(
            name,
            Arc::new(move |_: &[Value]| {
                Err(error(if name == "getHostByName" {
                    "function \"getHostByName\" is not supported by courier: rendering makes no DNS lookups".to_owned()
                } else {
                    format!("function {name:?} (sprig) is not supported by courier yet")
                }))
            }),
        );
    }
    // The must* variants of functions that cannot fail here behave as the plain ones.
    for (must, plain) in [
        ("mustToJson", "toJson"),
        ("mustToPrettyJson", "toPrettyJson"),
        ("mustToRawJson", "toRawJson"),
        ("mustAppend", "append"),
        ("mustPush", "push"),
        ("mustPrepend", "prepend"),
        ("mustReverse", "reverse"),
        ("mustWithout", "without"),
        ("mustSlice", "slice"),
        ("mustChunk", "chunk"),
        ("mustRegexFind", "regexFind"),
        ("mustRegexFindAll", "regexFindAll"),
        ("mustRegexSplit", "regexSplit"),
        ("mustRegexReplaceAll", "regexReplaceAll"),
        ("mustRegexReplaceAllLiteral", "regexReplaceAllLiteral"),
    ] {
        if let Some(f) = table.get(plain).cloned() {
            table.insert(must.to_owned(), f);
        }
    }
    table
}

/// sprig's functions courier does not implement (yet): registered so that a template
/// using one says so. `getHostByName` stays out on purpose: rendering is pure.
const NOT_YET: [&str; 8] = [
    "genPrivateKey",
    "genCA",
    "genCAWithKey",
    "genSelfSignedCert",
    "genSelfSignedCertWithKey",
    "genSignedCert",
    "genSignedCertWithKey",
    "getHostByName",
];

/// Go's `strings.Replace(s, old, new, -1)`: an empty `old` inserts `new` between runes.
fn go_replace_all(s: &str, old: &str, new: &str) -> String {
    if old.is_empty() {
        let mut out = String::from(new);
        for c in s.chars() {
            out.push(c);
            out.push_str(new);
        }
        return out;
    }
    s.replace(old, new)
}

/// Go's `strings.Split`: an empty separator splits into runes.
fn go_split(s: &str, separator: &str) -> Vec<String> {
    if separator.is_empty() {
        return s.chars().map(String::from).collect();
    }
    s.split(separator).map(str::to_owned).collect()
}

/// sprig's `nospace` (goutils' `DeleteWhiteSpace`) walks the string byte by byte, takes
/// each byte as a rune, and drops Unicode spaces: so a multi-byte character comes out as
/// its bytes read as Latin-1, and the bytes 0x85 and 0xA0 vanish. Reproduced as is.
fn go_delete_white_space(s: &str) -> String {
    s.bytes()
        .map(char::from)
        .filter(|c| {
            !matches!(
                c,
                '\t' | '\n' | '\u{b}' | '\u{c}' | '\r' | ' ' | '\u{85}' | '\u{a0}'
            )
        })
        .collect()
}

/// Go's `base64.StdEncoding.DecodeString`: `\r` and `\n` are skipped anywhere, padding
/// is required, and an error names the offset Go's decoder reports.
pub(super) fn go_base64_decode(src: &[u8]) -> std::result::Result<Vec<u8>, usize> {
    fn sextet(c: u8) -> Option<u8> {
        match c {
            b'A'..=b'Z' => Some(c - b'A'),
            b'a'..=b'z' => Some(c - b'a' + 26),
            b'0'..=b'9' => Some(c - b'0' + 52),
            b'+' => Some(62),
            b'/' => Some(63),
            _ => None,
        }
    }
    let newline = |c: u8| c == b'\n' || c == b'\r';
    let mut out = Vec::with_capacity(src.len() / 4 * 3);
    let mut si = 0;
    loop {
        let mut quantum = [0u8; 4];
        let mut filled = 0;
        let mut trailing = None;
        let mut length = 4;
        while filled < 4 {
            if si == src.len() {
                if filled == 0 {
                    return Ok(out);
                }
                // The standard encoding wants its padding.
                return Err(si - filled);
            }
            let c = src[si];
            si += 1;
            if let Some(value) = sextet(c) {
                quantum[filled] = value;
                filled += 1;
                continue;
            }
            if newline(c) {
                continue;
            }
            if c != b'=' || filled < 2 {
                return Err(si - 1);
            }
            if filled == 2 {
                // A second '=' must follow, newlines aside.
                while si < src.len() && newline(src[si]) {
                    si += 1;
                }
                if si == src.len() {
                    return Err(src.len());
                }
                if src[si] != b'=' {
                    return Err(si - 1);
                }
                si += 1;
            }
            while si < src.len() && newline(src[si]) {
                si += 1;
            }
            if si < src.len() {
                trailing = Some(si);
            }
            length = filled;
            break;
        }
        let value = (u32::from(quantum[0]) << 18)
            | (u32::from(quantum[1]) << 12)
            | (u32::from(quantum[2]) << 6)
            | u32::from(quantum[3]);
        let bytes = [(value >> 16) as u8, (value >> 8) as u8, value as u8];
        out.extend_from_slice(&bytes[..length - 1]);
        if let Some(offset) = trailing {
            return Err(offset);
        }
        if length < 4 {
            return Ok(out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_formats_floats_and_ints_like_go() {
        let go_float = |f: f64| go_value(&Value::Float(f));
        assert_eq!(go_float(1.0), "1");
        assert_eq!(go_float(1.5), "1.5");
        assert_eq!(go_float(1e6), "1e+06");
        assert_eq!(go_float(123456.0), "123456");
        assert_eq!(go_float(1e21), "1e+21");
        assert_eq!(go_float(0.00001), "1e-05");
        assert_eq!(go_float(f64::INFINITY), "+Inf");
        assert_eq!(parse_go_int("0x1f"), Some(31));
        assert_eq!(parse_go_int("017"), Some(15));
        assert_eq!(parse_go_int("abc"), None);
        assert_eq!(go_json_float(3.0), "3");
        assert_eq!(go_json_float(0.5), "0.5");
    }

    #[test]
    fn base64_decodes_and_fails_where_go_does() {
        assert_eq!(go_base64_decode(b"aGVsbG8="), Ok(b"hello".to_vec()));
        assert_eq!(
            go_base64_decode(
                b"aGVs
bG8="
            ),
            Ok(b"hello".to_vec())
        );
        assert_eq!(go_base64_decode(b"aGVsbG8"), Err(4));
        assert_eq!(go_base64_decode(b"a*bc"), Err(1));
        assert_eq!(go_base64_decode(b"aGk=x"), Err(4));
        assert_eq!(go_base64_decode(b""), Ok(Vec::new()));
    }
}
