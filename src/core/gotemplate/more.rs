//! The rest of sprig's deterministic functions: float arithmetic (exact decimal, as
//! sprig's shopspring/decimal does it), paths, `merge` and friends, and small string
//! helpers. Each is in the differential corpus.

use std::collections::BTreeMap;
use std::sync::Arc;

use gotmpl::{FuncMap, Value, ValueFunc};

use super::sprig::{
    arity, error, int_arg, is_empty, map_of, string_arg, text, to_float64, type_name,
};

/// A decimal: coefficient × 10^-scale, as shopspring/decimal holds a float64's shortest
/// decimal form.
#[derive(Clone, Copy)]
struct Decimal {
    coefficient: i128,
    scale: u32,
}

impl Decimal {
    fn from_f64(f: f64) -> Option<Self> {
        if !f.is_finite() {
            return None;
        }
        let text = format!("{f:e}");
        let (mantissa, exponent) = text.split_once('e')?;
        let exponent: i32 = exponent.parse().ok()?;
        let negative = mantissa.starts_with('-');
        let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
        let fraction_digits = mantissa.split_once('.').map_or(0, |(_, f)| f.len()) as i32;
        let mut coefficient: i128 = digits.parse().ok()?;
        if negative {
            coefficient = -coefficient;
        }
        let scale = fraction_digits - exponent;
        if scale >= 0 {
            Some(Self {
                coefficient,
                scale: scale as u32,
            })
        } else {
            Some(Self {
                coefficient: coefficient.checked_mul(10i128.checked_pow((-scale) as u32)?)?,
                scale: 0,
            })
        }
    }

    fn rescale(self, scale: u32) -> Option<i128> {
        self.coefficient
            .checked_mul(10i128.checked_pow(scale.checked_sub(self.scale)?)?)
    }

    fn add(self, other: Self) -> Option<Self> {
        let scale = self.scale.max(other.scale);
        Some(Self {
            coefficient: self.rescale(scale)?.checked_add(other.rescale(scale)?)?,
            scale,
        })
    }

    fn negate(self) -> Self {
        Self {
            coefficient: -self.coefficient,
            scale: self.scale,
        }
    }

    fn mul(self, other: Self) -> Option<Self> {
        Some(Self {
            coefficient: self.coefficient.checked_mul(other.coefficient)?,
            scale: self.scale + other.scale,
        })
    }

    /// shopspring's `Div`: 16 digits after the point, halves away from zero.
    fn div(self, other: Self) -> Option<Self> {
        const PRECISION: u32 = 16;
        if other.coefficient == 0 {
            return None;
        }
        // self/other = (a·10^-s1)/(b·10^-s2); scaled to PRECISION + 1 digits, then rounded.
        let shift = PRECISION + 1 + other.scale;
        let numerator = self
            .coefficient
            .checked_mul(10i128.checked_pow(shift.checked_sub(self.scale.min(shift))?)?)?;
        let numerator = if self.scale > shift {
            self.coefficient / 10i128.pow(self.scale - shift)
        } else {
            numerator
        };
        let quotient = numerator / other.coefficient;
        let rounded = if quotient % 10 >= 5 {
            quotient / 10 + 1
        } else if quotient % 10 <= -5 {
            quotient / 10 - 1
        } else {
            quotient / 10
        };
        Some(Self {
            coefficient: rounded,
            scale: PRECISION,
        })
    }

    fn to_f64(self) -> f64 {
        let negative = self.coefficient < 0;
        let digits = self.coefficient.unsigned_abs().to_string();
        let scale = self.scale as usize;
        let text = if scale == 0 {
            digits
        } else if digits.len() > scale {
            format!(
                "{}.{}",
                &digits[..digits.len() - scale],
                &digits[digits.len() - scale..]
            )
        } else {
            format!("0.{}{}", "0".repeat(scale - digits.len()), digits)
        };
        let value: f64 = text.parse().unwrap_or(0.0);
        if negative { -value } else { value }
    }
}

/// sprig's `execDecimalOp`: the first operand, then each of the rest folded in.
fn decimal_op(
    name: &'static str,
    start_from_zero: bool,
    op: fn(Decimal, Decimal) -> Option<Decimal>,
    fallback: fn(f64, f64) -> f64,
) -> ValueFunc {
    Arc::new(move |args: &[Value]| {
        let (first, rest) = if start_from_zero {
            (0.0, args)
        } else {
            match args.split_first() {
                Some((first, rest)) => (to_float64(first), rest),
                None => {
                    return Err(error(format!(
                        "wrong number of args for {name}: want at least 1 got 0"
                    )));
                }
            }
        };
        let mut exact = Decimal::from_f64(first);
        let mut approximate = first;
        for arg in rest {
            let x = to_float64(arg);
            if name == "divf" && x == 0.0 {
                return Err(error("decimal division by zero"));
            }
            approximate = fallback(approximate, x);
            exact = exact.and_then(|e| Decimal::from_f64(x).and_then(|d| op(e, d)));
        }
        // Past i128's range the float result is the nearest courier can give.
        Ok(Value::Float(exact.map_or(approximate, Decimal::to_f64)))
    })
}

/// Go's `path.Clean`.
fn clean(path: &str) -> String {
    if path.is_empty() {
        return ".".into();
    }
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|p| *p != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            other => parts.push(other),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".into(),
        (false, false) => joined,
    }
}

fn base(path: &str) -> String {
    if path.is_empty() {
        return ".".into();
    }
    let trimmed = path.trim_end_matches('/');
    if trimmed.is_empty() {
        return "/".into();
    }
    trimmed.rsplit('/').next().unwrap_or(trimmed).to_owned()
}

fn dir(path: &str) -> String {
    let cut = path.rfind('/').map_or(0, |i| i + 1);
    clean(&path[..cut])
}

fn ext(path: &str) -> String {
    let name = &path[path.rfind('/').map_or(0, |i| i + 1)..];
    name.rfind('.')
        .map_or(String::new(), |i| name[i..].to_owned())
}

/// reflect.DeepEqual over template values: the same type, the same contents.
fn deep_equal(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::List(x), Value::List(y)) => {
            x.len() == y.len() && x.iter().zip(y.iter()).all(|(p, q)| deep_equal(p, q))
        }
        (Value::Map(x), Value::Map(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| deep_equal(v, w)))
        }
        (Value::Float(x), Value::Float(y)) => x == y,
        (Value::Int(x), Value::Int(y)) => x == y,
        (Value::Uint(x), Value::Uint(y)) => x == y,
        (Value::String(x), Value::String(y)) => x == y,
        (Value::Bool(x), Value::Bool(y)) => x == y,
        (Value::Nil, Value::Nil) => true,
        _ => false,
    }
}

/// mergo's merge of `src` into `dst`: missing or empty keys are filled, maps merged
/// deeply; with `overwrite`, every value of `src` wins, empty ones too.
fn merge_into(
    dst: &mut BTreeMap<Arc<str>, Value>,
    src: &BTreeMap<Arc<str>, Value>,
    overwrite: bool,
) {
    for (key, value) in src {
        match (dst.get_mut(key), value) {
            (Some(Value::Map(inner)), Value::Map(from)) => {
                let mut merged = (**inner).clone();
                merge_into(&mut merged, from, overwrite);
                *inner = Arc::new(merged);
            }
            (Some(existing), value) => {
                if is_empty(existing) || overwrite {
                    *existing = value.clone();
                }
            }
            (None, value) => {
                dst.insert(key.clone(), value.clone());
            }
        }
    }
}

fn merge_fn(name: &'static str, overwrite: bool) -> ValueFunc {
    Arc::new(move |args: &[Value]| {
        let Some((first, rest)) = args.split_first() else {
            return Err(error(format!(
                "wrong number of args for {name}: want at least 1 got 0"
            )));
        };
        let mut dst = (*map_of(first, name)?).clone();
        for src in rest {
            merge_into(&mut dst, &*map_of(src, name)?, overwrite);
        }
        Ok(Value::Map(Arc::new(dst)))
    })
}

/// Go's `strings.SplitN`.
fn split_n(s: &str, separator: &str, n: i64) -> Vec<String> {
    if n == 0 {
        return Vec::new();
    }
    if separator.is_empty() {
        let chars: Vec<String> = s.chars().map(String::from).collect();
        if n < 0 || chars.len() <= n as usize {
            return chars;
        }
        let mut head: Vec<String> = chars[..n as usize - 1].to_vec();
        head.push(chars[n as usize - 1..].concat());
        return head;
    }
    if n < 0 {
        return s.split(separator).map(str::to_owned).collect();
    }
    s.splitn(n as usize, separator).map(str::to_owned).collect()
}

/// goutils' `AbbreviateFull`, as sprig's `abbrevboth` calls it.
fn abbreviate_full(s: &str, offset: i64, width: i64) -> String {
    let len = s.len() as i64;
    if width < 4 || len <= width {
        return s.to_owned();
    }
    let offset = offset.min(len);
    let offset = if len - offset < width - 3 {
        len - (width - 3)
    } else {
        offset
    };
    let at = |i: i64| s.get(i as usize..).unwrap_or("");
    let upto = |i: i64| s.get(..i as usize).unwrap_or("");
    if offset <= 4 {
        return format!("{}...", upto(width - 3));
    }
    if width < 7 {
        return s.to_owned();
    }
    if offset + width - 3 < len {
        return format!("...{}", abbreviate_full(at(offset), 0, width - 3));
    }
    format!("...{}", at(len - (width - 3)))
}

/// Go's `base32.StdEncoding.DecodeString`, with sprig's habit of returning the error's
/// text.
fn base32_decode(s: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let bytes: Vec<(usize, u8)> = s
        .bytes()
        .enumerate()
        .filter(|(_, b)| *b != b'\r' && *b != b'\n')
        .collect();
    let mut out = Vec::new();
    for (chunk_index, chunk) in bytes.chunks(8).enumerate() {
        if let Some((at, _)) = chunk
            .iter()
            .find(|(_, b)| *b != b'=' && !ALPHABET.contains(b))
        {
            return format!("illegal base32 data at input byte {at}");
        }
        if chunk.len() < 8 {
            return format!("illegal base32 data at input byte {}", s.len());
        }
        let padding = chunk.iter().rev().take_while(|(_, b)| *b == b'=').count();
        let symbols = 8 - padding;
        if !matches!(symbols, 2 | 4 | 5 | 7 | 8) {
            return format!("illegal base32 data at input byte {}", chunk[symbols].0);
        }
        let mut value: u64 = 0;
        for (i, (at, b)) in chunk.iter().enumerate() {
            let v = if i < symbols {
                match ALPHABET.iter().position(|a| a == b) {
                    Some(v) => v as u64,
                    None => return format!("illegal base32 data at input byte {at}"),
                }
            } else {
                0
            };
            value = (value << 5) | v;
        }
        let keep = match symbols {
            2 => 1,
            4 => 2,
            5 => 3,
            7 => 4,
            _ => 5,
        };
        out.extend_from_slice(&value.to_be_bytes()[3..3 + keep]);
        if padding > 0 && chunk_index * 8 + 8 < bytes.len() {
            return format!(
                "illegal base32 data at input byte {}",
                bytes[chunk_index * 8 + 8].0
            );
        }
    }
    super::binary::from_bytes(&out).into_owned()
}

/// goutils' `WrapCustom`: lines broken at the last space within `width` bytes; a word
/// longer than that is cut when `long_words`, else left whole.
fn wrap_custom(s: &str, width: i64, newline: &str, long_words: bool) -> String {
    let bytes = super::binary::to_bytes(s);
    if bytes.is_empty() {
        return String::new();
    }
    let newline = if newline.is_empty() { "\n" } else { newline };
    let width = width.max(1) as usize;
    let len = bytes.len();
    let mut offset = 0;
    let mut out: Vec<u8> = Vec::with_capacity(len + len / width.max(1));
    while len - offset > width {
        if bytes[offset] == b' ' {
            offset += 1;
            continue;
        }
        let end = width + offset + 1;
        if let Some(space) = bytes[offset..end].iter().rposition(|&b| b == b' ') {
            out.extend_from_slice(&bytes[offset..offset + space]);
            out.extend_from_slice(newline.as_bytes());
            offset += space + 1;
        } else if long_words {
            out.extend_from_slice(&bytes[offset..offset + width]);
            out.extend_from_slice(newline.as_bytes());
            offset += width;
        } else {
            let end = width + offset;
            match bytes[end..].iter().position(|&b| b == b' ') {
                None => {
                    out.extend_from_slice(&bytes[offset..]);
                    offset = len;
                }
                Some(index) => {
                    out.extend_from_slice(&bytes[offset..end + index]);
                    out.extend_from_slice(newline.as_bytes());
                    offset = end + index + 1;
                }
            }
        }
    }
    out.extend_from_slice(&bytes[offset..]);
    super::binary::from_bytes(&out).into_owned()
}

/// A one-character case mapping, as Go's `unicode.ToUpper`/`ToLower` map a rune to a
/// rune (a character whose mapping is longer stays as it is).
fn single(mut mapped: impl Iterator<Item = char>, original: char) -> char {
    match (mapped.next(), mapped.next()) {
        (Some(c), None) => c,
        _ => original,
    }
}

/// Go's `unicode.ToLower` of one rune (simple mappings: İ lowers to i, not i + U+0307).
fn go_lower(c: char) -> char {
    if c == 'İ' {
        'i'
    } else {
        single(c.to_lowercase(), c)
    }
}

/// goutils' `SwapCase`: upper to lower, lower to upper, and title case after
/// whitespace.
fn swap_case(s: &str) -> String {
    let mut whitespace = true;
    let lower = go_lower;
    // Title-case letters (ǅ) are neither upper nor lower case but have a lower case.
    let is_title = |c: char| !c.is_uppercase() && !c.is_lowercase() && lower(c) != c;
    s.chars()
        .map(|c| {
            if c.is_uppercase() || is_title(c) {
                whitespace = false;
                lower(c)
            } else if c.is_lowercase() {
                whitespace = false;
                single(c.to_uppercase(), c)
            } else {
                whitespace = c.is_whitespace();
                c
            }
        })
        .collect()
}

/// xstrings' word kinds, for `snakecase` and `kebabcase`.
#[derive(Clone, Copy, PartialEq)]
enum Word {
    /// The end of the text (xstrings' zero value).
    Invalid,
    Number,
    Upper,
    Alphabet,
    Connector,
    Punct,
    Other,
}

fn is_connector(c: char) -> bool {
    c == '-' || c == '_' || c.is_whitespace()
}

/// A letter that is not a CJK ideograph (xstrings' `isAlphabet`).
fn is_alphabet(c: char) -> bool {
    c.is_alphabetic()
        && !matches!(c, '\u{4E00}'..='\u{9FCC}' | '\u{3400}'..='\u{4D85}' | '\u{20000}'..='\u{2A6D6}'
            | '\u{2A700}'..='\u{2B734}' | '\u{2B740}'..='\u{2B81D}' | '\u{F900}'..='\u{FAFF}'
            | '\u{2F800}'..='\u{2FA1F}')
}

fn is_punct(c: char) -> bool {
    c.is_ascii_punctuation() && !matches!(c, '$' | '+' | '<' | '=' | '>' | '^' | '`' | '|' | '~')
        || (!c.is_ascii()
            && !c.is_alphanumeric()
            && !c.is_whitespace()
            && !c.is_control()
            && matches!(c, '\u{A1}' | '\u{A7}' | '\u{AB}' | '\u{B6}' | '\u{B7}' | '\u{BB}' | '\u{BF}'
                | '\u{2010}'..='\u{2027}' | '\u{2030}'..='\u{205E}' | '\u{3001}'..='\u{3003}'
                | '\u{3008}'..='\u{3011}'))
}

fn is_number(c: char) -> bool {
    c.is_numeric()
}

/// xstrings' `nextWord`: the kind and length in characters of the word at the start.
fn next_word(chars: &[char]) -> (Word, usize) {
    let Some(&first) = chars.first() else {
        return (Word::Invalid, 0);
    };
    let run = |from: usize, keep: &dyn Fn(char) -> bool| {
        from + chars[from..].iter().take_while(|&&c| keep(c)).count()
    };
    if is_connector(first) {
        return (Word::Connector, run(1, &is_connector));
    }
    if is_punct(first) {
        return (Word::Punct, run(1, &is_punct));
    }
    if first.is_uppercase() {
        let Some(&second) = chars.get(1) else {
            return (Word::Upper, 1);
        };
        if second.is_uppercase() {
            let end = run(1, &|c: char| c.is_uppercase());
            // "HTTPServer": the last capital starts the next word.
            if end < chars.len() && is_alphabet(chars[end]) {
                return (Word::Upper, end - 1);
            }
            return (Word::Upper, end);
        }
        if is_alphabet(second) {
            return (
                Word::Upper,
                run(1, &|c: char| is_alphabet(c) && !c.is_uppercase()),
            );
        }
        return (Word::Upper, 1);
    }
    if is_alphabet(first) {
        return (
            Word::Alphabet,
            run(1, &|c: char| is_alphabet(c) && !c.is_uppercase()),
        );
    }
    if is_number(first) {
        return (Word::Number, run(1, &is_number));
    }
    let end = run(1, &|c: char| {
        !(is_connector(c) || is_alphabet(c) || is_number(c) || is_punct(c))
    });
    (Word::Other, end)
}

/// xstrings' `toLower` of one word: capitals lowered in a capital word, connectors
/// replaced in a connector word, anything else as it is.
fn push_lower(out: &mut String, kind: Word, word: &[char], connector: char) {
    for &c in word {
        match kind {
            Word::Upper | Word::Connector if is_connector(c) => out.push(connector),
            Word::Upper | Word::Connector if c.is_uppercase() => {
                out.push(single(c.to_lowercase(), c));
            }
            _ => out.push(c),
        }
    }
}

/// xstrings' `ToSnakeCase`/`ToKebabCase`.
fn to_lower_case(s: &str, connector: char) -> String {
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len() + 4);
    let mut at = 0;
    let take = |at: &mut usize| -> (Word, std::ops::Range<usize>) {
        let (kind, len) = next_word(&chars[*at..]);
        let range = *at..*at + len;
        *at += len;
        (kind, range)
    };
    let (mut kind, mut word) = take(&mut at);
    let separate = |next: Word| !matches!(next, Word::Invalid | Word::Connector | Word::Punct);
    while at < chars.len() {
        if kind != Word::Connector {
            push_lower(&mut out, kind, &chars[word.clone()], connector);
        }
        let (previous, last) = (kind, word.clone());
        (kind, word) = take(&mut at);
        match previous {
            Word::Number => {
                while matches!(kind, Word::Alphabet | Word::Number) {
                    push_lower(&mut out, kind, &chars[word.clone()], connector);
                    (kind, word) = take(&mut at);
                }
                if separate(kind) {
                    out.push(connector);
                }
            }
            Word::Connector => push_lower(&mut out, previous, &chars[last], connector),
            Word::Punct => {}
            _ => {
                if kind != Word::Number {
                    if separate(kind) {
                        out.push(connector);
                    }
                    continue;
                }
                if at >= chars.len() {
                    continue;
                }
                let number = word.clone();
                (kind, word) = take(&mut at);
                if kind != Word::Alphabet {
                    push_lower(&mut out, Word::Number, &chars[number], connector);
                    if separate(kind) {
                        out.push(connector);
                    }
                    continue;
                }
                out.push(connector);
                push_lower(&mut out, Word::Number, &chars[number], connector);
                while matches!(kind, Word::Alphabet | Word::Number) {
                    push_lower(&mut out, kind, &chars[word.clone()], connector);
                    (kind, word) = take(&mut at);
                }
                if separate(kind) {
                    out.push(connector);
                }
            }
        }
    }
    push_lower(&mut out, kind, &chars[word], connector);
    out
}

/// xstrings' `ToCamelCase` as sprig v3.3.0 gets it: connectors dropped, the first
/// letter and each letter after a connector capitalised, and capitals following a
/// capital that starts a word lowered (`HTTPServer` is `Httpserver`).
fn to_camel_case(s: &str) -> String {
    let upper = |c: char| single(c.to_uppercase(), c);
    let lower = go_lower;
    let mut chars = s.chars();
    let mut out = String::with_capacity(s.len());
    let mut first_upper = false;
    let mut current = None;
    for c in chars.by_ref() {
        if !is_connector(c) {
            first_upper = c.is_uppercase();
            current = Some(upper(c));
            break;
        }
        out.push(c);
        current = Some(c);
    }
    let Some(mut r0) = current else {
        return out;
    };
    let rest: Vec<char> = chars.collect();
    if rest.is_empty() {
        out.push(r0);
        return out;
    }
    for c in rest {
        let r1 = r0;
        r0 = c;
        if is_connector(r0) && is_connector(r1) {
            out.push(r1);
            continue;
        }
        if is_connector(r1) {
            first_upper = r0.is_uppercase();
            r0 = upper(r0);
        } else {
            if first_upper {
                if r0.is_uppercase() {
                    r0 = lower(r0);
                } else {
                    first_upper = false;
                }
            }
            out.push(r1);
        }
    }
    out.push(r0);
    out
}

/// The functions of this module.
pub fn functions() -> FuncMap {
    let mut table = FuncMap::new();
    let mut add = |name: &str, f: ValueFunc| {
        table.insert(name.to_owned(), f);
    };
    add("addf", decimal_op("addf", true, Decimal::add, |a, b| a + b));
    add(
        "subf",
        decimal_op("subf", false, |a, b| a.add(b.negate()), |a, b| a - b),
    );
    add(
        "mulf",
        decimal_op("mulf", false, Decimal::mul, |a, b| a * b),
    );
    add(
        "divf",
        decimal_op("divf", false, Decimal::div, |a, b| a / b),
    );
    add(
        "add1f",
        Arc::new(|args: &[Value]| {
            arity(args, 1, "add1f")?;
            let x = to_float64(&args[0]);
            let exact = Decimal::from_f64(x).and_then(|d| d.add(Decimal::from_f64(1.0)?));
            Ok(Value::Float(exact.map_or(x + 1.0, Decimal::to_f64)))
        }),
    );
    for (name, pick) in [
        ("maxf", f64::max as fn(f64, f64) -> f64),
        ("minf", f64::min),
    ] {
        add(
            name,
            Arc::new(move |args: &[Value]| {
                let Some((first, rest)) = args.split_first() else {
                    return Err(error(format!(
                        "wrong number of args for {name}: want at least 1 got 0"
                    )));
                };
                Ok(Value::Float(
                    rest.iter()
                        .fold(to_float64(first), |acc, v| pick(acc, to_float64(v))),
                ))
            }),
        );
    }
    add(
        "toDecimal",
        Arc::new(|args: &[Value]| {
            arity(args, 1, "toDecimal")?;
            let text = match &args[0] {
                Value::String(s) => s.to_string(),
                other => other.to_string(),
            };
            Ok(Value::Int(i64::from_str_radix(&text, 8).unwrap_or(0)))
        }),
    );
    add(
        "untilStep",
        Arc::new(|args: &[Value]| {
            arity(args, 3, "untilStep")?;
            let start = int_arg(args, 0, "untilStep")?;
            let stop = int_arg(args, 1, "untilStep")?;
            let step = int_arg(args, 2, "untilStep")?;
            let mut out = Vec::new();
            let mut i = start;
            let ascending = stop >= start;
            if (ascending && step <= 0) || (!ascending && step >= 0) {
                return Ok(Value::List(Vec::new().into()));
            }
            while (ascending && i < stop) || (!ascending && i > stop) {
                if out.len() >= 1_000_000 {
                    return Err(error("untilStep: more than 1,000,000 items"));
                }
                out.push(Value::Int(i));
                i = match i.checked_add(step) {
                    Some(next) => next,
                    None => break,
                };
            }
            Ok(Value::List(out.into()))
        }),
    );
    for (name, f) in [
        ("base", base as fn(&str) -> String),
        ("dir", dir),
        ("ext", ext),
        ("clean", clean),
        ("osBase", base),
        ("osDir", dir),
        ("osExt", ext),
        ("osClean", clean),
    ] {
        add(
            name,
            Arc::new(move |args: &[Value]| {
                arity(args, 1, name)?;
                Ok(text(f(string_arg(args, 0, name)?)))
            }),
        );
    }
    for name in ["isAbs", "osIsAbs"] {
        add(
            name,
            Arc::new(move |args: &[Value]| {
                arity(args, 1, name)?;
                Ok(Value::Bool(string_arg(args, 0, name)?.starts_with('/')))
            }),
        );
    }
    add("merge", merge_fn("merge", false));
    add("mustMerge", merge_fn("mustMerge", false));
    add("mergeOverwrite", merge_fn("mergeOverwrite", true));
    add("mustMergeOverwrite", merge_fn("mustMergeOverwrite", true));
    for name in ["deepCopy", "mustDeepCopy"] {
        add(
            name,
            Arc::new(move |args: &[Value]| {
                arity(args, 1, name)?;
                Ok(args[0].clone())
            }),
        );
    }
    add(
        "deepEqual",
        Arc::new(|args: &[Value]| {
            arity(args, 2, "deepEqual")?;
            Ok(Value::Bool(deep_equal(&args[0], &args[1])))
        }),
    );
    add(
        "pluck",
        Arc::new(|args: &[Value]| {
            let Some((name, dicts)) = args.split_first() else {
                return Err(error(
                    "wrong number of args for pluck: want at least 1 got 0",
                ));
            };
            let Value::String(name) = name else {
                return Err(error(format!(
                    "pluck: wrong type for value; expected string; got {}",
                    type_name(name)
                )));
            };
            let mut out = Vec::new();
            for dict in dicts {
                if let Some(value) = map_of(dict, "pluck")?.get(name.as_ref()) {
                    out.push(value.clone());
                }
            }
            Ok(Value::List(out.into()))
        }),
    );
    add(
        "tuple",
        Arc::new(|args: &[Value]| Ok(Value::List(args.to_vec().into()))),
    );
    add(
        "typeIs",
        Arc::new(|args: &[Value]| {
            arity(args, 2, "typeIs")?;
            Ok(Value::Bool(
                string_arg(args, 0, "typeIs")? == type_name(&args[1]),
            ))
        }),
    );
    add(
        "typeIsLike",
        Arc::new(|args: &[Value]| {
            arity(args, 2, "typeIsLike")?;
            let target = string_arg(args, 0, "typeIsLike")?;
            let actual = type_name(&args[1]);
            Ok(Value::Bool(
                target == actual || format!("*{target}") == actual,
            ))
        }),
    );
    add(
        "splitn",
        Arc::new(|args: &[Value]| {
            arity(args, 3, "splitn")?;
            let separator = string_arg(args, 0, "splitn")?;
            let n = int_arg(args, 1, "splitn")?;
            let s = string_arg(args, 2, "splitn")?;
            let map: BTreeMap<Arc<str>, Value> = split_n(s, separator, n)
                .into_iter()
                .enumerate()
                .map(|(i, part)| (Arc::from(format!("_{i}")), text(part)))
                .collect();
            Ok(Value::Map(Arc::new(map)))
        }),
    );
    add(
        "abbrevboth",
        Arc::new(|args: &[Value]| {
            arity(args, 3, "abbrevboth")?;
            let left = int_arg(args, 0, "abbrevboth")?;
            let right = int_arg(args, 1, "abbrevboth")?;
            let s = string_arg(args, 2, "abbrevboth")?;
            if right < 4 || (left > 0 && right < 7) {
                return Ok(text(s));
            }
            Ok(text(abbreviate_full(s, left.max(0), right)))
        }),
    );
    add("hello", Arc::new(|_: &[Value]| Ok(text("Hello!"))));
    for (name, f) in [
        ("camelcase", to_camel_case as fn(&str) -> String),
        ("snakecase", |s| to_lower_case(s, '_')),
        ("kebabcase", |s| to_lower_case(s, '-')),
    ] {
        add(
            name,
            Arc::new(move |args: &[Value]| {
                arity(args, 1, name)?;
                Ok(text(f(string_arg(args, 0, name)?)))
            }),
        );
    }
    add(
        "swapcase",
        Arc::new(|args: &[Value]| {
            arity(args, 1, "swapcase")?;
            Ok(text(swap_case(string_arg(args, 0, "swapcase")?)))
        }),
    );
    add(
        "wrap",
        Arc::new(|args: &[Value]| {
            arity(args, 2, "wrap")?;
            let width = int_arg(args, 0, "wrap")?;
            Ok(text(wrap_custom(
                string_arg(args, 1, "wrap")?,
                width,
                "",
                false,
            )))
        }),
    );
    add(
        "wrapWith",
        Arc::new(|args: &[Value]| {
            arity(args, 3, "wrapWith")?;
            let width = int_arg(args, 0, "wrapWith")?;
            let newline = string_arg(args, 1, "wrapWith")?;
            Ok(text(wrap_custom(
                string_arg(args, 2, "wrapWith")?,
                width,
                newline,
                true,
            )))
        }),
    );
    add(
        "b32dec",
        Arc::new(|args: &[Value]| {
            arity(args, 1, "b32dec")?;
            Ok(text(base32_decode(string_arg(args, 0, "b32dec")?)))
        }),
    );
    table
}
