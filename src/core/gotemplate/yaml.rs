//! ESO's `toYaml` and `fromYaml`, which go through `sigs.k8s.io/yaml`: YAML 1.1 as
//! go-yaml v2 reads it (`yes`, `on`, `y` are booleans, `010` is octal), converted to
//! JSON, so every number comes back a float64; and JSON converted to YAML by go-yaml v2's
//! emitter (keys in its natural order, strings quoted only where a plain one would read
//! back as something else, lines folded at 80 columns).

use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

use gotmpl::Value;
use granit_parser::{Event, Parser, ScalarStyle};

// ---------------------------------------------------------------------------------
// Reading: fromYaml

/// A YAML node after go-yaml v2's resolution, before the JSON round trip.
#[derive(Debug, Clone)]
enum Node {
    Null,
    Bool(bool),
    Int(i128),
    Float(f64),
    String(String),
    List(Vec<Node>),
    /// Keys in document order; go-yaml v2 lets a later key win.
    Map(Vec<(Node, Node)>),
}

const CORE: &str = "tag:yaml.org,2002:";

/// `^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$`
static YAML_FLOAT: LazyLock<regex::Regex> = LazyLock::new(|| {
    regex::Regex::new(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$").unwrap()
});

static BASE60_FLOAT: LazyLock<regex::Regex> = LazyLock::new(|| {
    regex::Regex::new(r"^[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?$").unwrap()
});

/// Go's `strconv.ParseInt(s, 0, 64)` / `ParseUint`: sign, then 0x, 0o, 0b or a leading 0
/// for octal.
fn go_parse_int(s: &str) -> Option<i128> {
    let (negative, digits) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let (radix, body) = if let Some(rest) = digits.strip_prefix("0x").or(digits.strip_prefix("0X"))
    {
        (16, rest)
    } else if let Some(rest) = digits.strip_prefix("0o").or(digits.strip_prefix("0O")) {
        (8, rest)
    } else if let Some(rest) = digits.strip_prefix("0b").or(digits.strip_prefix("0B")) {
        (2, rest)
    } else if digits.len() > 1 && digits.starts_with('0') {
        (8, &digits[1..])
    } else {
        (10, digits)
    };
    if body.is_empty() || !body.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let magnitude = u64::from_str_radix(body, radix).ok()?;
    let value = if negative {
        -i128::from(magnitude)
    } else {
        i128::from(magnitude)
    };
    (value >= i128::from(i64::MIN)).then_some(value)
}

/// Whether go-yaml v2 would read `s` as a timestamp (`2001-12-14`, `2001-12-14T21:59:43Z`).
fn is_timestamp(s: &str) -> bool {
    static FORMS: LazyLock<regex::Regex> = LazyLock::new(|| {
        regex::Regex::new(
            r"^[0-9]{4}-[0-9]{1,2}-[0-9]{1,2}(?:(?:[Tt]| )[0-9]{1,2}:[0-9]{1,2}:[0-9]{1,2}(?:\.[0-9]+)?(?:Z|[-+][0-9]{2}:[0-9]{2})?)?$",
        )
        .unwrap()
    });
    if !FORMS.is_match(s) {
        return false;
    }
    let mut parts = s[..s.find(['T', 't', ' ']).unwrap_or(s.len())].split('-');
    let year: i32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let month: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let day: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&day)
}

/// What a plain scalar means to go-yaml v2; `None` for a string. A timestamp is a
/// string when read, but must be quoted when written: [`Resolved::Timestamp`]. (A merge
/// key `<<` is told apart by its place, not here: elsewhere it is a string.)
enum Resolved {
    Node(Node),
    Timestamp,
}

fn resolve_plain(s: &str) -> Option<Resolved> {
    let node = match s {
        "y" | "Y" | "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => {
            Node::Bool(true)
        }
        "n" | "N" | "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => {
            Node::Bool(false)
        }
        "" | "~" | "null" | "Null" | "NULL" => Node::Null,
        ".nan" | ".NaN" | ".NAN" => Node::Float(f64::NAN),
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => Node::Float(f64::INFINITY),
        "-.inf" | "-.Inf" | "-.INF" => Node::Float(f64::NEG_INFINITY),
        _ => {
            let first = s.as_bytes()[0];
            if first == b'.' {
                return s
                    .parse::<f64>()
                    .ok()
                    .filter(|f| f.is_finite())
                    .map(|f| Resolved::Node(Node::Float(f)));
            }
            if !(first.is_ascii_digit() || first == b'+' || first == b'-') {
                return None;
            }
            if is_timestamp(s) {
                return Some(Resolved::Timestamp);
            }
            let plain = s.replace('_', "");
            if let Some(n) = go_parse_int(&plain) {
                Node::Int(n)
            } else if YAML_FLOAT.is_match(&plain) {
                Node::Float(plain.parse::<f64>().ok()?)
            } else if let Some(bits) = plain.strip_prefix("-0b") {
                Node::Int(-i128::from(i64::from_str_radix(bits, 2).ok()?))
            } else {
                return None;
            }
        }
    };
    Some(Resolved::Node(node))
}

/// Builds go-yaml v2's tree from the parser's events.
struct Reader<'a> {
    parser: Parser<'a, granit_parser::StrInput<'a>>,
    anchors: BTreeMap<usize, Node>,
}

impl<'a> Reader<'a> {
    fn next(&mut self) -> Result<Event<'a>, String> {
        loop {
            return match self.parser.next_event() {
                Some(Ok((Event::Comment(..), _))) => continue,
                Some(Ok((event, _))) => Ok(event),
                Some(Err(e)) => Err(format!("yaml: {e}")),
                None => Ok(Event::StreamEnd),
            };
        }
    }

    fn remember(&mut self, anchor: usize, node: &Node) {
        if anchor != 0 {
            self.anchors.insert(anchor, node.clone());
        }
    }

    /// The node that starts with `event`.
    fn node(&mut self, event: Event<'a>) -> Result<Node, String> {
        match event {
            Event::Scalar(value, style, anchor, tag) => {
                let node = scalar(&value, style, tag.as_deref())?;
                self.remember(anchor, &node);
                Ok(node)
            }
            Event::Alias(id) => self
                .anchors
                .get(&id)
                .cloned()
                .ok_or_else(|| "yaml: unknown anchor referenced".to_owned()),
            Event::SequenceStart(_, anchor, _) => {
                let mut items = Vec::new();
                loop {
                    match self.next()? {
                        Event::SequenceEnd => break,
                        event => items.push(self.node(event)?),
                    }
                }
                let node = Node::List(items);
                self.remember(anchor, &node);
                Ok(node)
            }
            Event::MappingStart(_, anchor, _) => {
                let mut entries: Vec<(Node, Node)> = Vec::new();
                loop {
                    let key_event = self.next()?;
                    if matches!(key_event, Event::MappingEnd) {
                        break;
                    }
                    let is_merge = matches!(&key_event, Event::Scalar(v, ScalarStyle::Plain, _, None) if v == "<<");
                    let key = self.node(key_event)?;
                    let value_event = self.next()?;
                    let value = self.node(value_event)?;
                    if is_merge {
                        merge(&mut entries, value)?;
                    } else {
                        set(&mut entries, key, value);
                    }
                }
                let node = Node::Map(entries);
                self.remember(anchor, &node);
                Ok(node)
            }
            other => Err(format!("yaml: unexpected {other:?}")),
        }
    }
}

fn key_string(key: &Node, value: &Node) -> Result<String, String> {
    Ok(match key {
        Node::String(s) => s.clone(),
        Node::Int(n) => n.to_string(),
        Node::Bool(b) => b.to_string(),
        // sigs.k8s.io/yaml formats float keys at 32-bit precision.
        Node::Float(f) => match go_format_g(*f as f32 as f64, true).as_str() {
            "+Inf" => ".inf".into(),
            "-Inf" => "-.inf".into(),
            "NaN" => ".nan".into(),
            s => s.into(),
        },
        Node::Null => {
            // sigs.k8s.io/yaml's message, with Go's %#v of a string value.
            let value = match value {
                Node::String(s) => format!("{s:?}"),
                _ => "…".into(),
            };
            return Err(format!(
                "error converting YAML to JSON: unsupported map key of type: %!s(<nil>), key: <nil>, value: {value}"
            ));
        }
        _ => return Err("error converting YAML to JSON: unsupported map key".into()),
    })
}

fn set(entries: &mut Vec<(Node, Node)>, key: Node, value: Node) {
    entries.push((key, value));
}

/// go-yaml v2's merge key: the merged map's keys are set now (over earlier keys); of a
/// list of maps, earlier ones win.
fn merge(entries: &mut Vec<(Node, Node)>, value: Node) -> Result<(), String> {
    const WANT_MAP: &str = "yaml: map merge requires map or sequence of maps as the value";
    match value {
        Node::Map(map) => entries.extend(map),
        Node::List(items) => {
            for item in items.into_iter().rev() {
                match item {
                    Node::Map(map) => entries.extend(map),
                    _ => return Err(WANT_MAP.into()),
                }
            }
        }
        _ => return Err(WANT_MAP.into()),
    }
    Ok(())
}

fn scalar(
    value: &str,
    style: ScalarStyle,
    tag: Option<&granit_parser::Tag>,
) -> Result<Node, String> {
    let tag_name = tag.map(|t| {
        if t.handle() == CORE {
            format!("!!{}", t.suffix())
        } else {
            format!("{}{}", t.handle(), t.suffix())
        }
    });
    match tag_name.as_deref() {
        Some("!!str") => return Ok(Node::String(value.to_owned())),
        Some("!!binary") => {
            let compact: String = value.chars().filter(|c| !c.is_whitespace()).collect();
            return super::sprig::go_base64_decode(compact.as_bytes())
                .map(|bytes| Node::String(super::binary::from_bytes(&bytes).into_owned()))
                .map_err(|_| "yaml: !!binary value contains invalid base64 data".into());
        }
        Some(t @ ("!!int" | "!!float" | "!!bool" | "!!null")) => {
            return match resolve_plain(value) {
                Some(Resolved::Node(node)) => match (t, &node) {
                    ("!!int", Node::Int(_))
                    | ("!!bool", Node::Bool(_))
                    | ("!!null", Node::Null)
                    | ("!!float", Node::Float(_)) => Ok(node),
                    ("!!float", Node::Int(n)) => Ok(Node::Float(*n as f64)),
                    _ => Err(format!("yaml: cannot decode `{t}` value")),
                },
                _ => Err(format!("yaml: cannot decode `{t}` value")),
            };
        }
        Some(_) => return Ok(Node::String(value.to_owned())),
        None => {}
    }
    if style != ScalarStyle::Plain {
        return Ok(Node::String(value.to_owned()));
    }
    Ok(match resolve_plain(value) {
        Some(Resolved::Node(node)) => node,
        _ => Node::String(value.to_owned()),
    })
}

/// The JSON value go-yaml's tree becomes after `json.Marshal` and `json.Unmarshal` into
/// `interface{}`: numbers are float64, map keys strings, a later duplicate key wins.
fn to_json_value(node: Node) -> Result<Value, String> {
    Ok(match node {
        Node::Null => Value::Nil,
        Node::Bool(b) => Value::Bool(b),
        Node::Int(n) => Value::Float(n as f64),
        Node::Float(f) if !f.is_finite() => {
            return Err(format!(
                "error converting YAML to JSON: json: unsupported value: {}",
                go_format_g(f, false)
            ));
        }
        Node::Float(f) => Value::Float(f),
        Node::String(s) => Value::String(Arc::from(json_string(&s))),
        Node::List(items) => Value::List(
            items
                .into_iter()
                .map(to_json_value)
                .collect::<Result<Vec<_>, _>>()?
                .into(),
        ),
        Node::Map(entries) => {
            let mut map = BTreeMap::new();
            for (key, value) in entries {
                let key = key_string(&key, &value)?;
                map.insert(Arc::from(key), to_json_value(value)?);
            }
            Value::Map(Arc::new(map))
        }
    })
}

/// A string after a JSON round trip: bytes that are not UTF-8 become U+FFFD each.
fn json_string(s: &str) -> String {
    super::binary::replaced(s).into_owned()
}

/// ESO's `fromYaml`: a map; on any error, a map whose `Error` holds the message.
pub fn from_yaml(input: &str) -> Value {
    match parse_map(input) {
        Ok(map) => map,
        Err(message) => {
            let mut map = BTreeMap::new();
            map.insert(Arc::from("Error"), Value::String(Arc::from(message)));
            Value::Map(Arc::new(map))
        }
    }
}

/// The first document of `input` as go-yaml v2 reads it.
fn first_document(input: &str) -> Result<Node, String> {
    let mut reader = Reader {
        parser: Parser::new_from_str(input),
        anchors: BTreeMap::new(),
    };
    Ok(loop {
        match reader
            .next()
            .map_err(|e| format!("error converting YAML to JSON: {e}"))?
        {
            Event::StreamStart | Event::DocumentStart(..) => {}
            Event::StreamEnd | Event::DocumentEnd => break Node::Null,
            event => {
                break reader
                    .node(event)
                    .map_err(|e| format!("error converting YAML to JSON: {e}"))?;
            }
        }
    })
}

fn json_kind(node: &Node) -> &'static str {
    match node {
        Node::Map(_) => "object",
        Node::Null => "null",
        Node::List(_) => "array",
        Node::String(_) => "string",
        Node::Bool(_) => "bool",
        Node::Int(_) | Node::Float(_) => "number",
    }
}

fn parse_map(input: &str) -> Result<Value, String> {
    let root = first_document(input)?;
    let kind = match &root {
        Node::Map(_) | Node::Null => None,
        Node::List(_) => Some("array"),
        Node::String(_) => Some("string"),
        Node::Bool(_) => Some("bool"),
        Node::Int(_) | Node::Float(_) => Some("number"),
    };
    if let Some(kind) = kind {
        return Err(format!(
            "error unmarshaling JSON: while decoding JSON: json: cannot unmarshal {kind} into Go value of type map[string]interface {{}}"
        ));
    }
    match to_json_value(root)? {
        Value::Nil => Ok(Value::Map(Arc::new(BTreeMap::new()))),
        map => Ok(map),
    }
}

/// What ESO makes of a `KeysAndValues` template's output: `yaml.Unmarshal` into a
/// `map[string]string`, so scalars become their text (`yes` is `true`, `010` is `8`) and
/// a list or map value is an error.
pub fn keys_and_values(input: &str) -> Result<BTreeMap<String, String>, String> {
    const PREFIX: &str = "could not unmarshal template to 'map[string][]byte'";
    let root = first_document(input).map_err(|e| format!("{PREFIX}: {e}"))?;
    let entries = match root {
        Node::Null => return Ok(BTreeMap::new()),
        Node::Map(entries) => entries,
        other => {
            return Err(format!(
                "{PREFIX}: error unmarshaling JSON: while decoding JSON: json: cannot unmarshal {} into Go value of type map[string]string",
                json_kind(&other)
            ));
        }
    };
    let mut out = BTreeMap::new();
    for (key, value) in entries {
        let key = key_string(&key, &value).map_err(|e| format!("{PREFIX}: {e}"))?;
        let text = match value {
            Node::String(s) => s,
            Node::Int(n) => n.to_string(),
            Node::Bool(b) => b.to_string(),
            Node::Float(f) => go_format_g(f as f32 as f64, true),
            Node::Null => String::new(),
            other => {
                return Err(format!(
                    "{PREFIX}: error unmarshaling JSON: while decoding JSON: json: cannot unmarshal {} into Go value of type string",
                    json_kind(&other)
                ));
            }
        };
        out.insert(key, json_string(&text));
    }
    Ok(out)
}

// ---------------------------------------------------------------------------------
// Writing: toYaml

/// A value as go-yaml v2 holds it after reading the JSON that `json.Marshal` wrote.
enum Out {
    Null,
    Bool(bool),
    /// An integer, as its decimal text.
    Int(String),
    Float(f64),
    String(String),
    List(Vec<Out>),
    Map(Vec<(String, Out)>),
}

/// Go's `strconv.FormatFloat(f, 'g', -1, 64)` (gotmpl's patched printer), or at 32-bit
/// precision: the shortest digits, with an exponent below 1e-4 and from 1e6 on.
fn go_format_g(f: f64, single: bool) -> String {
    if !single || !f.is_finite() {
        return Value::Float(f).to_string();
    }
    let scientific = format!("{:e}", f as f32);
    let (mantissa, exponent) = scientific.split_once('e').unwrap_or((&scientific, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    if f != 0.0 && !(-4..6).contains(&exponent) {
        let sign = if exponent < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exponent.abs())
    } else {
        format!("{}", f as f32)
    }
}

fn from_value(value: &Value) -> Result<Out, String> {
    Ok(match value {
        Value::Nil => Out::Null,
        Value::Bool(b) => Out::Bool(*b),
        Value::Int(n) => Out::Int(n.to_string()),
        Value::Uint(n) => Out::Int(n.to_string()),
        Value::Float(f) => {
            if !f.is_finite() {
                return Err("json: unsupported value".into());
            }
            // What go-yaml makes of the JSON number.
            let text = super::sprig::go_json_float(*f);
            match go_parse_int(&text) {
                Some(n) => Out::Int(n.to_string()),
                None => match text.parse::<u64>() {
                    Ok(n) => Out::Int(n.to_string()),
                    Err(_) => Out::Float(*f),
                },
            }
        }
        Value::String(s) => Out::String(fold_nel(&json_string(s))),
        Value::List(items) => Out::List(items.iter().map(from_value).collect::<Result<_, _>>()?),
        Value::Map(map) => {
            let mut entries: Vec<(String, Out)> = map
                .iter()
                .map(|(k, v)| Ok((fold_nel(&json_string(k)), from_value(v)?)))
                .collect::<Result<_, String>>()?;
            entries.sort_by(|a, b| natural_order(&a.0, &b.0));
            Out::Map(entries)
        }
        _ => return Err("json: unsupported type".into()),
    })
}

/// go-yaml reads the JSON text back as YAML 1.1, where a raw NEL (U+0085, which JSON
/// does not escape) is a line break inside a double-quoted scalar: folded, with the
/// spaces around it, into one space, or into n-1 newlines for n breaks.
fn fold_nel(s: &str) -> String {
    if !s.contains('\u{85}') {
        return s.to_owned();
    }
    let chars: Vec<char> = s.chars().collect();
    let mut out = String::with_capacity(s.len());
    let mut i = 0;
    while i < chars.len() {
        let mut j = i;
        while j < chars.len() && chars[j] == ' ' {
            j += 1;
        }
        if j < chars.len() && chars[j] == '\u{85}' {
            let mut breaks = 0;
            while j < chars.len() && (chars[j] == ' ' || chars[j] == '\u{85}') {
                breaks += usize::from(chars[j] == '\u{85}');
                j += 1;
            }
            if breaks == 1 {
                out.push(' ');
            } else {
                out.extend(std::iter::repeat_n('\n', breaks - 1));
            }
            i = j;
        } else {
            out.push(chars[i]);
            i += 1;
        }
    }
    out
}

/// go-yaml v2's key order: letters after other characters, runs of digits by value.
fn natural_order(a: &str, b: &str) -> std::cmp::Ordering {
    use std::cmp::Ordering;
    let (ar, br): (Vec<char>, Vec<char>) = (a.chars().collect(), b.chars().collect());
    let less = |x: bool| if x { Ordering::Less } else { Ordering::Greater };
    for i in 0..ar.len().min(br.len()) {
        if ar[i] == br[i] {
            continue;
        }
        let (al, bl) = (ar[i].is_alphabetic(), br[i].is_alphabetic());
        if al && bl {
            return ar[i].cmp(&br[i]);
        }
        if al || bl {
            return less(bl);
        }
        let digit = |c: char| c.is_ascii_digit();
        let (mut an, mut bn) = (0i64, 0i64);
        if ar[i] == '0' || br[i] == '0' {
            let mut j = i;
            while j > 0 && digit(ar[j - 1]) {
                j -= 1;
                if ar[j] != '0' {
                    an = 1;
                    bn = 1;
                    break;
                }
            }
        }
        let mut ai = i;
        while ai < ar.len() && digit(ar[ai]) {
            an = an
                .wrapping_mul(10)
                .wrapping_add(i64::from(ar[ai] as u8 - b'0'));
            ai += 1;
        }
        let mut bi = i;
        while bi < br.len() && digit(br[bi]) {
            bn = bn
                .wrapping_mul(10)
                .wrapping_add(i64::from(br[bi] as u8 - b'0'));
            bi += 1;
        }
        if an != bn {
            return an.cmp(&bn);
        }
        if ai != bi {
            return ai.cmp(&bi);
        }
        return ar[i].cmp(&br[i]);
    }
    ar.len().cmp(&br.len())
}

/// The scalar styles of go-yaml's emitter.
#[derive(Clone, Copy, PartialEq)]
enum Style {
    Plain,
    Single,
    Double,
    Literal,
}

/// What the emitter's analysis of a scalar allows.
struct Analysis {
    multiline: bool,
    block_plain: bool,
    single_quoted: bool,
    block: bool,
}

fn is_break(c: char) -> bool {
    matches!(c, '\r' | '\n' | '\u{85}' | '\u{2028}' | '\u{2029}')
}

/// libyaml's `is_printable`, on characters.
fn is_printable(c: char) -> bool {
    matches!(c, '\n' | '\x20'..='\x7E' | '\u{A0}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}')
        && c != '\u{FEFF}'
}

fn analyze(value: &str) -> Analysis {
    if value.is_empty() {
        return Analysis {
            multiline: false,
            block_plain: true,
            single_quoted: true,
            block: false,
        };
    }
    let chars: Vec<char> = value.chars().collect();
    let mut block_indicators = value.starts_with("---") || value.starts_with("...");
    let (mut line_breaks, mut special) = (false, false);
    let (mut leading_space, mut leading_break, mut trailing_space, mut trailing_break) =
        (false, false, false, false);
    let (mut break_space, mut space_break) = (false, false);
    let (mut previous_space, mut previous_break) = (false, false);
    let mut preceded_by_whitespace = true;
    let last = chars.len() - 1;
    for (i, &c) in chars.iter().enumerate() {
        let followed_by_whitespace = chars.get(i + 1).is_none_or(|&n| n == ' ' || n == '\t');
        if i == 0 {
            match c {
                '#' | ',' | '[' | ']' | '{' | '}' | '&' | '*' | '!' | '|' | '>' | '\'' | '"'
                | '%' | '@' | '`' => block_indicators = true,
                '?' | ':' | '-' if followed_by_whitespace => block_indicators = true,
                _ => {}
            }
        } else {
            match c {
                ':' if followed_by_whitespace => block_indicators = true,
                '#' if preceded_by_whitespace => block_indicators = true,
                _ => {}
            }
        }
        if !is_printable(c) {
            special = true;
        }
        if c == ' ' {
            leading_space |= i == 0;
            trailing_space |= i == last;
            break_space |= previous_break;
            previous_space = true;
            previous_break = false;
        } else if is_break(c) {
            line_breaks = true;
            leading_break |= i == 0;
            trailing_break |= i == last;
            space_break |= previous_space;
            previous_space = false;
            previous_break = true;
        } else {
            previous_space = false;
            previous_break = false;
        }
        preceded_by_whitespace = matches!(c, ' ' | '\t') || is_break(c);
    }
    let mut analysis = Analysis {
        multiline: line_breaks,
        block_plain: true,
        single_quoted: true,
        block: true,
    };
    if leading_space || leading_break || trailing_space || trailing_break {
        analysis.block_plain = false;
    }
    if trailing_space {
        analysis.block = false;
    }
    if break_space {
        analysis.block_plain = false;
        analysis.single_quoted = false;
    }
    if space_break || special {
        analysis.block_plain = false;
        analysis.single_quoted = false;
        analysis.block = false;
    }
    if line_breaks || block_indicators {
        analysis.block_plain = false;
    }
    analysis
}

/// go-yaml v2's emitter, for the shapes JSON gives: block maps and lists, `{}` and
/// `[]` when empty, scalars.
struct Emitter {
    out: String,
    column: usize,
    indent: isize,
    indents: Vec<isize>,
    whitespace: bool,
    indention: bool,
}

const BEST_INDENT: isize = 2;
const BEST_WIDTH: usize = 80;

impl Emitter {
    fn put(&mut self, c: char) {
        self.out.push(c);
        self.column += 1;
    }

    fn put_break(&mut self) {
        self.out.push('\n');
        self.column = 0;
    }

    fn write_indent(&mut self) {
        let indent = self.indent.max(0) as usize;
        if !self.indention || self.column > indent || (self.column == indent && !self.whitespace) {
            self.put_break();
        }
        while self.column < indent {
            self.put(' ');
        }
        self.whitespace = true;
        self.indention = true;
    }

    fn indicator(
        &mut self,
        text: &str,
        need_whitespace: bool,
        is_whitespace: bool,
        is_indention: bool,
    ) {
        if need_whitespace && !self.whitespace {
            self.put(' ');
        }
        for c in text.chars() {
            self.put(c);
        }
        self.whitespace = is_whitespace;
        self.indention = self.indention && is_indention;
    }

    fn increase_indent(&mut self, flow: bool, indentless: bool) {
        self.indents.push(self.indent);
        if self.indent < 0 {
            self.indent = if flow { BEST_INDENT } else { 0 };
        } else if !indentless {
            self.indent += BEST_INDENT;
        }
    }

    fn restore_indent(&mut self) {
        self.indent = self.indents.pop().unwrap_or(-1);
    }

    fn node(&mut self, node: &Out, mapping_context: bool, simple_key: bool) {
        match node {
            Out::Null => self.scalar("null", Style::Plain, simple_key),
            Out::Bool(b) => {
                self.scalar(if *b { "true" } else { "false" }, Style::Plain, simple_key)
            }
            Out::Int(text) => self.scalar(text, Style::Plain, simple_key),
            Out::Float(f) => {
                let text = match go_format_g(*f, false).as_str() {
                    "+Inf" => ".inf".to_owned(),
                    "-Inf" => "-.inf".to_owned(),
                    "NaN" => ".nan".to_owned(),
                    s => s.to_owned(),
                };
                self.scalar(&text, Style::Plain, simple_key);
            }
            Out::String(s) => {
                let plain_reads_back =
                    resolve_plain(s).is_none() && !BASE60_FLOAT.is_match(s) && !s.is_empty();
                let style = if s.contains('\n') {
                    Style::Literal
                } else if plain_reads_back {
                    Style::Plain
                } else {
                    Style::Double
                };
                self.scalar(s, style, simple_key);
            }
            Out::List(items) if items.is_empty() => self.empty("[", "]"),
            Out::Map(entries) if entries.is_empty() => self.empty("{", "}"),
            Out::List(items) => {
                let indentless = mapping_context && !self.indention;
                self.increase_indent(false, indentless);
                for item in items {
                    self.write_indent();
                    self.indicator("-", true, false, true);
                    self.node(item, false, false);
                }
                self.restore_indent();
            }
            Out::Map(entries) => {
                self.increase_indent(false, false);
                for (key, value) in entries {
                    self.write_indent();
                    let key_node = Out::String(key.clone());
                    let analysis = analyze(key);
                    if !analysis.multiline && key.len() <= 128 {
                        self.node(&key_node, true, true);
                        self.indicator(":", false, false, false);
                    } else {
                        self.indicator("?", true, false, true);
                        self.node(&key_node, true, false);
                        self.write_indent();
                        self.indicator(":", true, false, true);
                    }
                    self.node(value, true, false);
                }
                self.restore_indent();
            }
        }
    }

    fn empty(&mut self, open: &str, close: &str) {
        self.indicator(open, true, true, false);
        self.increase_indent(true, false);
        self.restore_indent();
        self.indicator(close, false, false, false);
    }

    fn scalar(&mut self, value: &str, requested: Style, simple_key: bool) {
        let analysis = analyze(value);
        let mut style = requested;
        if simple_key && analysis.multiline {
            style = Style::Double;
        }
        if style == Style::Plain && (!analysis.block_plain || (value.is_empty() && simple_key)) {
            style = Style::Single;
        }
        if style == Style::Single && !analysis.single_quoted {
            style = Style::Double;
        }
        if style == Style::Literal && (!analysis.block || simple_key) {
            style = Style::Double;
        }
        self.increase_indent(true, false);
        let allow_breaks = !simple_key;
        match style {
            Style::Plain => self.plain(value, allow_breaks),
            Style::Single => self.single_quoted(value, allow_breaks),
            Style::Double => self.double_quoted(value, allow_breaks),
            Style::Literal => self.literal(value),
        }
        self.restore_indent();
    }

    fn plain(&mut self, value: &str, allow_breaks: bool) {
        if !self.whitespace {
            self.put(' ');
        }
        let chars: Vec<char> = value.chars().collect();
        let mut spaces = false;
        for (i, &c) in chars.iter().enumerate() {
            if c == ' ' {
                if allow_breaks
                    && !spaces
                    && self.column > BEST_WIDTH
                    && chars.get(i + 1) != Some(&' ')
                {
                    self.write_indent();
                } else {
                    self.put(c);
                }
                spaces = true;
            } else {
                self.put(c);
                self.indention = false;
                spaces = false;
            }
        }
        self.whitespace = false;
        self.indention = false;
    }

    fn single_quoted(&mut self, value: &str, allow_breaks: bool) {
        self.indicator("'", true, false, false);
        let chars: Vec<char> = value.chars().collect();
        let mut spaces = false;
        for (i, &c) in chars.iter().enumerate() {
            if c == ' ' {
                if allow_breaks
                    && !spaces
                    && self.column > BEST_WIDTH
                    && i > 0
                    && i + 1 < chars.len()
                    && chars.get(i + 1) != Some(&' ')
                {
                    self.write_indent();
                } else {
                    self.put(c);
                }
                spaces = true;
            } else {
                if c == '\'' {
                    self.put('\'');
                }
                self.put(c);
                self.indention = false;
                spaces = false;
            }
        }
        self.indicator("'", false, false, false);
        self.whitespace = false;
        self.indention = false;
    }

    fn double_quoted(&mut self, value: &str, allow_breaks: bool) {
        self.indicator("\"", true, false, false);
        let chars: Vec<char> = value.chars().collect();
        let mut spaces = false;
        for (i, &c) in chars.iter().enumerate() {
            if !is_printable(c) || c == '\u{FEFF}' || is_break(c) || c == '"' || c == '\\' {
                self.put('\\');
                let escaped = match c {
                    '\0' => Some('0'),
                    '\x07' => Some('a'),
                    '\x08' => Some('b'),
                    '\t' => Some('t'),
                    '\n' => Some('n'),
                    '\x0B' => Some('v'),
                    '\x0C' => Some('f'),
                    '\r' => Some('r'),
                    '\x1B' => Some('e'),
                    '"' => Some('"'),
                    '\\' => Some('\\'),
                    '\u{85}' => Some('N'),
                    '\u{A0}' => Some('_'),
                    '\u{2028}' => Some('L'),
                    '\u{2029}' => Some('P'),
                    _ => None,
                };
                match escaped {
                    Some(e) => self.put(e),
                    None => {
                        let v = u32::from(c);
                        let text = if v <= 0xFF {
                            format!("x{v:02X}")
                        } else if v <= 0xFFFF {
                            format!("u{v:04X}")
                        } else {
                            format!("U{v:08X}")
                        };
                        for t in text.chars() {
                            self.put(t);
                        }
                    }
                }
                spaces = false;
            } else if c == ' ' {
                if allow_breaks
                    && !spaces
                    && self.column > BEST_WIDTH
                    && i > 0
                    && i + 1 < chars.len()
                {
                    self.write_indent();
                    if chars.get(i + 1) == Some(&' ') {
                        self.put('\\');
                    }
                } else {
                    self.put(c);
                }
                spaces = true;
            } else {
                self.put(c);
                spaces = false;
            }
        }
        self.indicator("\"", false, false, false);
        self.whitespace = false;
        self.indention = false;
    }

    fn literal(&mut self, value: &str) {
        self.indicator("|", true, false, false);
        let chars: Vec<char> = value.chars().collect();
        if chars.first().is_some_and(|&c| c == ' ' || is_break(c)) {
            self.indicator(&BEST_INDENT.to_string(), false, false, false);
        }
        let chomp = match chars.as_slice() {
            [] => Some("-"),
            [.., last] if !is_break(*last) => Some("-"),
            [_] => Some("+"),
            [.., before, _] if is_break(*before) => Some("+"),
            _ => None,
        };
        if let Some(chomp) = chomp {
            self.indicator(chomp, false, false, false);
        }
        self.put_break();
        self.indention = true;
        self.whitespace = true;
        let mut breaks = true;
        for &c in &chars {
            if is_break(c) {
                if c == '\n' {
                    self.put_break();
                } else {
                    self.out.push(c);
                    self.column = 0;
                }
                self.indention = true;
                breaks = true;
            } else {
                if breaks {
                    self.write_indent();
                }
                self.put(c);
                self.indention = false;
                breaks = false;
            }
        }
    }
}

/// ESO's `toYaml`: the YAML go-yaml v2 writes for the value's JSON, without the final
/// newline; empty when the value has no JSON form.
pub fn to_yaml(value: &Value) -> String {
    let Ok(out) = from_value(value) else {
        return String::new();
    };
    let mut emitter = Emitter {
        out: String::new(),
        column: 0,
        indent: -1,
        indents: Vec::new(),
        whitespace: true,
        indention: true,
    };
    emitter.node(&out, false, false);
    emitter.put_break();
    let mut text = emitter.out;
    if text.ends_with('\n') {
        text.pop();
    }
    text
}
