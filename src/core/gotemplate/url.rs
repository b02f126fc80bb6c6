//! sprig's `urlParse` and `urlJoin`, which go through Go's `net/url`: the parse splits
//! and unescapes as `url.Parse` does, the join escapes each part as `URL.String` does
//! (a connection string built from secret parts, `postgres://user:p%40ss@db/app`).

use std::collections::BTreeMap;
use std::sync::Arc;

use gotmpl::{FuncMap, Value, ValueFunc};

use super::sprig::{arity, error, map_of, string_arg, text};

#[derive(Clone, Copy, PartialEq)]
enum Mode {
    Path,
    Host,
    UserPassword,
    Fragment,
}

/// Go's `shouldEscape`.
fn should_escape(c: u8, mode: Mode) -> bool {
    if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b'~') {
        return false;
    }
    if mode == Mode::Host
        && matches!(
            c,
            b'!' | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
                | b':'
                | b'['
                | b']'
                | b'<'
                | b'>'
                | b'"'
        )
    {
        return false;
    }
    match c {
        b'$' | b'&' | b'+' | b',' | b'/' | b':' | b';' | b'=' | b'?' | b'@' => match mode {
            Mode::Path => c == b'?',
            Mode::UserPassword => matches!(c, b'@' | b'/' | b'?' | b':'),
            Mode::Fragment => false,
            Mode::Host => true,
        },
        b'!' | b'(' | b')' | b'*' if mode == Mode::Fragment => false,
        _ => true,
    }
}

fn escape(s: &str, mode: Mode) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if should_escape(b, mode) {
            out.push_str(&format!("%{b:02X}"));
        } else {
            out.push(b as char);
        }
    }
    out
}

/// Go's `unescape`: `%XX` decoded; a bad escape is an error; in a host only `%25`
/// (and non-ASCII) may be escaped, as Go checks.
fn unescape(s: &str, mode: Mode) -> Result<String, String> {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok());
            let Some(value) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) else {
                let end = (i + 3).min(bytes.len());
                return Err(format!("invalid URL escape {:?}", &s[i..end]));
            };
            if mode == Mode::Host && value < 0x80 && &s[i..i + 3] != "%25" {
                return Err(format!("invalid URL escape {:?}", &s[i..i + 3]));
            }
            out.push(value);
            i += 3;
        } else {
            if mode == Mode::Host && bytes[i] < 0x80 && should_escape(bytes[i], Mode::Host) {
                return Err(format!(
                    "invalid character {:?} in host name",
                    bytes[i] as char
                ));
            }
            out.push(bytes[i]);
            i += 1;
        }
    }
    Ok(super::binary::from_bytes(&out).into_owned())
}

#[derive(Default)]
struct Url {
    scheme: String,
    opaque: String,
    user: Option<(String, Option<String>)>,
    host: String,
    path: String,
    raw_path: String,
    force_query: bool,
    raw_query: String,
    fragment: String,
    raw_fragment: String,
}

fn parse_error(op: &str, url: &str, message: &str) -> String {
    format!("{op} {url:?}: {message}")
}

/// Go's `getScheme`.
fn split_scheme(raw: &str) -> Result<(String, &str), String> {
    for (i, c) in raw.bytes().enumerate() {
        match c {
            b'a'..=b'z' | b'A'..=b'Z' => {}
            b'0'..=b'9' | b'+' | b'-' | b'.' if i > 0 => {}
            b'0'..=b'9' | b'+' | b'-' | b'.' => return Ok((String::new(), raw)),
            b':' if i == 0 => return Err("missing protocol scheme".into()),
            b':' => return Ok((raw[..i].to_ascii_lowercase(), &raw[i + 1..])),
            _ => return Ok((String::new(), raw)),
        }
    }
    Ok((String::new(), raw))
}

fn parse_host(host: &str) -> Result<String, String> {
    if host.starts_with('[') {
        let Some(end) = host.rfind(']') else {
            return Err("missing ']' in host".into());
        };
        let port = &host[end + 1..];
        if !port.is_empty() && !valid_port(port) {
            return Err(format!("invalid port {port:?} after host"));
        }
        return unescape(host, Mode::Host);
    }
    if let Some(colon) = host.rfind(':') {
        let port = &host[colon..];
        if !valid_port(port) {
            return Err(format!("invalid port {port:?} after host"));
        }
    }
    unescape(host, Mode::Host)
}

fn valid_port(port: &str) -> bool {
    port.strip_prefix(':')
        .is_some_and(|digits| digits.bytes().all(|b| b.is_ascii_digit()))
}

/// Go's `url.Parse`.
fn parse(raw: &str) -> Result<Url, String> {
    let mut url = Url::default();
    let (rest, fragment) = match raw.split_once('#') {
        Some((rest, fragment)) => (rest, Some(fragment)),
        None => (raw, None),
    };
    if rest.bytes().any(|b| b < 0x20 || b == 0x7F) {
        return Err(parse_error(
            "parse",
            raw,
            "net/url: invalid control character in URL",
        ));
    }
    if let Some(fragment) = fragment {
        url.fragment =
            unescape(fragment, Mode::Fragment).map_err(|e| parse_error("parse", raw, &e))?;
        if escape(&url.fragment, Mode::Fragment) != fragment {
            url.raw_fragment = fragment.to_owned();
        }
    }
    if rest.is_empty() {
        return Ok(url);
    }
    if rest == "*" {
        url.path = "*".into();
        return Ok(url);
    }
    let (scheme, mut rest) = split_scheme(rest).map_err(|e| parse_error("parse", raw, &e))?;
    url.scheme = scheme;
    if rest.ends_with('?') && rest.matches('?').count() == 1 {
        url.force_query = true;
        rest = &rest[..rest.len() - 1];
    } else if let Some((before, query)) = rest.split_once('?') {
        url.raw_query = query.to_owned();
        rest = before;
    }
    if !rest.starts_with('/') {
        if !url.scheme.is_empty() {
            url.opaque = rest.to_owned();
            return Ok(url);
        }
        let first_segment = rest.split('/').next().unwrap_or("");
        if first_segment.contains(':') {
            return Err(parse_error(
                "parse",
                raw,
                "first path segment in URL cannot contain colon",
            ));
        }
    }
    if (!url.scheme.is_empty() || !rest.starts_with("///")) && rest.starts_with("//") {
        let after = &rest[2..];
        let (authority, path) = match after.find('/') {
            Some(i) => (&after[..i], &after[i..]),
            None => (after, ""),
        };
        let host_part = match authority.rfind('@') {
            Some(at) => {
                let userinfo = &authority[..at];
                if !userinfo
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-._:~!$&'()*+,;=%@".contains(&b))
                {
                    return Err(parse_error("parse", raw, "net/url: invalid userinfo"));
                }
                url.user = Some(match userinfo.split_once(':') {
                    Some((user, password)) => (
                        unescape(user, Mode::UserPassword)
                            .map_err(|e| parse_error("parse", raw, &e))?,
                        Some(
                            unescape(password, Mode::UserPassword)
                                .map_err(|e| parse_error("parse", raw, &e))?,
                        ),
                    ),
                    None => (
                        unescape(userinfo, Mode::UserPassword)
                            .map_err(|e| parse_error("parse", raw, &e))?,
                        None,
                    ),
                });
                &authority[at + 1..]
            }
            None => authority,
        };
        url.host = parse_host(host_part).map_err(|e| parse_error("parse", raw, &e))?;
        rest = path;
    }
    url.path = unescape(rest, Mode::Path).map_err(|e| parse_error("parse", raw, &e))?;
    if escape(&url.path, Mode::Path) != rest {
        url.raw_path = rest.to_owned();
    }
    Ok(url)
}

impl Url {
    fn hostname(&self) -> String {
        let host = &self.host;
        if let Some(rest) = host.strip_prefix('[') {
            return rest.split(']').next().unwrap_or("").to_owned();
        }
        match host.rfind(':') {
            Some(i) => host[..i].to_owned(),
            None => host.clone(),
        }
    }

    fn userinfo(&self) -> String {
        match &self.user {
            None => String::new(),
            Some((user, password)) => {
                let mut out = escape(user, Mode::UserPassword);
                if let Some(password) = password {
                    out.push(':');
                    out.push_str(&escape(password, Mode::UserPassword));
                }
                out
            }
        }
    }

    fn escaped_path(&self) -> String {
        if !self.raw_path.is_empty()
            && unescape(&self.raw_path, Mode::Path).ok().as_deref() == Some(self.path.as_str())
        {
            return self.raw_path.clone();
        }
        if self.path == "*" {
            return "*".into();
        }
        escape(&self.path, Mode::Path)
    }

    /// Go's `URL.String`.
    fn render(&self) -> String {
        let mut out = String::new();
        if !self.scheme.is_empty() {
            out.push_str(&self.scheme);
            out.push(':');
        }
        if !self.opaque.is_empty() {
            out.push_str(&self.opaque);
        } else {
            if !self.scheme.is_empty() || !self.host.is_empty() || self.user.is_some() {
                if !self.host.is_empty() || !self.path.is_empty() || self.user.is_some() {
                    out.push_str("//");
                }
                if self.user.is_some() {
                    out.push_str(&self.userinfo());
                    out.push('@');
                }
                out.push_str(&escape(&self.host, Mode::Host));
            }
            let path = self.escaped_path();
            if !path.is_empty() && !path.starts_with('/') && !self.host.is_empty() {
                out.push('/');
            }
            if out.is_empty() && path.split('/').next().is_some_and(|s| s.contains(':')) {
                out.push_str("./");
            }
            out.push_str(&path);
        }
        if self.force_query || !self.raw_query.is_empty() {
            out.push('?');
            out.push_str(&self.raw_query);
        }
        if !self.fragment.is_empty() {
            out.push('#');
            out.push_str(&escape(&self.fragment, Mode::Fragment));
        }
        out
    }
}

/// The functions of this module.
pub fn functions() -> FuncMap {
    let mut table = FuncMap::new();
    let mut add = |name: &str, f: ValueFunc| {
        table.insert(name.to_owned(), f);
    };
    add(
        "urlParse",
        Arc::new(|args: &[Value]| {
            arity(args, 1, "urlParse")?;
            let url = parse(string_arg(args, 0, "urlParse")?)
                .map_err(|e| error(format!("unable to parse url: {e}")))?;
            let mut map = BTreeMap::new();
            for (key, value) in [
                ("scheme", url.scheme.clone()),
                ("host", url.host.clone()),
                ("hostname", url.hostname()),
                ("path", url.path.clone()),
                ("query", url.raw_query.clone()),
                ("opaque", url.opaque.clone()),
                ("fragment", url.fragment.clone()),
                ("userinfo", url.userinfo()),
            ] {
                map.insert(Arc::from(key), text(value));
            }
            Ok(Value::Map(Arc::new(map)))
        }),
    );
    add(
        "urlJoin",
        Arc::new(|args: &[Value]| {
            arity(args, 1, "urlJoin")?;
            let parts = map_of(&args[0], "urlJoin")?;
            let part = |key: &str| -> Result<String, gotmpl::TemplateError> {
                match parts.get(key) {
                    None | Some(Value::Nil) => Ok(String::new()),
                    Some(Value::String(s)) => Ok(s.to_string()),
                    Some(_) => Err(error(format!(
                        "interface conversion: interface {{}} is not string ({key})"
                    ))),
                }
            };
            let userinfo = part("userinfo")?;
            let user = if userinfo.is_empty() {
                None
            } else {
                let parsed = parse(&format!("proto://{userinfo}@host"))
                    .map_err(|e| error(format!("unable to parse userinfo in dict: {e}")))?;
                parsed.user
            };
            let url = Url {
                scheme: part("scheme")?,
                host: part("host")?,
                path: part("path")?,
                raw_query: part("query")?,
                opaque: part("opaque")?,
                fragment: part("fragment")?,
                user,
                ..Url::default()
            };
            Ok(text(url.render()))
        }),
    );
    table
}
