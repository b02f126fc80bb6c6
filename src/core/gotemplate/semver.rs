//! sprig's `semver` and `semverCompare`, as Masterminds/semver v3 parses versions
//! (loosely: `v1`, `1.2` are 1.0.0 and 1.2.0) and checks constraints (`>= 1.2, < 2`,
//! `~1.2`, `^0.3`, `1.x`, `1.2 - 1.4`, `||`; prereleases only match a constraint that
//! names one). `semver` gives a map of the version's parts (`.Major`, `.Prerelease`).

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::sync::{Arc, LazyLock};

use gotmpl::{FuncMap, Value, ValueFunc};
use regex::Regex;

use super::sprig::{arity, error, string_arg, text};

struct Version {
    major: u64,
    minor: u64,
    patch: u64,
    pre: String,
    metadata: String,
    original: String,
}

static LOOSE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"^v?([0-9]+)(\.[0-9]+)?(\.[0-9]+)?(-([0-9A-Za-z\-]+(\.[0-9A-Za-z\-]+)*))?(\+([0-9A-Za-z\-]+(\.[0-9A-Za-z\-]+)*))?$",
    )
    .unwrap()
});

/// A constraint's version, where x, X and * are wildcards.
const CONSTRAINT_VERSION: &str = r"v?([0-9|x|X|\*]+)(\.[0-9|x|X|\*]+)?(\.[0-9|x|X|\*]+)?(-([0-9A-Za-z\-]+(\.[0-9A-Za-z\-]+)*))?(\+([0-9A-Za-z\-]+(\.[0-9A-Za-z\-]+)*))?";
const OPERATORS: &str = r"=||!=|>|<|>=|=>|<=|=<|~|~>|\^";

static ONE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(r"^\s*({OPERATORS})\s*({CONSTRAINT_VERSION})\s*$")).unwrap()
});
static FIND: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(&format!(r"({OPERATORS})\s*({CONSTRAINT_VERSION})")).unwrap());
static VALID: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(
        r"^(\s*({OPERATORS})\s*({CONSTRAINT_VERSION})\s*)((?:\s+|,\s*)({OPERATORS})\s*({CONSTRAINT_VERSION})\s*)*$"
    ))
    .unwrap()
});
static RANGE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(&format!(
        r"\s*({CONSTRAINT_VERSION})\s+-\s+({CONSTRAINT_VERSION})\s*"
    ))
    .unwrap()
});

fn only(s: &str, allowed: impl Fn(char) -> bool) -> bool {
    s.chars().all(allowed)
}

fn identifier_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '-'
}

fn parse(text: &str) -> Result<Version, String> {
    let m = LOOSE
        .captures(text)
        .ok_or_else(|| "invalid semantic version".to_owned())?;
    let number = |i: usize| -> Result<u64, String> {
        m.get(i).map_or(Ok(0), |g| {
            g.as_str()
                .trim_start_matches('.')
                .parse()
                .map_err(|e| format!("error parsing version segment: {e}"))
        })
    };
    let version = Version {
        major: number(1)?,
        minor: number(2)?,
        patch: number(3)?,
        pre: m.get(5).map_or("", |g| g.as_str()).to_owned(),
        metadata: m.get(8).map_or("", |g| g.as_str()).to_owned(),
        original: text.to_owned(),
    };
    for part in version.pre.split('.').filter(|_| !version.pre.is_empty()) {
        if part.is_empty() || !only(part, identifier_char) {
            return Err("invalid prerelease string".into());
        }
        if only(part, |c| c.is_ascii_digit()) && part.len() > 1 && part.starts_with('0') {
            return Err("version segment starts with 0".into());
        }
    }
    if !version.metadata.is_empty()
        && version
            .metadata
            .split('.')
            .any(|p| p.is_empty() || !only(p, identifier_char))
    {
        return Err("invalid metadata string".into());
    }
    Ok(version)
}

fn compare_part(s: &str, o: &str) -> Ordering {
    if s == o {
        return Ordering::Equal;
    }
    if s.is_empty() {
        return Ordering::Less;
    }
    if o.is_empty() {
        return Ordering::Greater;
    }
    match (s.parse::<u64>(), o.parse::<u64>()) {
        (Err(_), Err(_)) => s.cmp(o),
        (Ok(_), Err(_)) => Ordering::Less,
        (Err(_), Ok(_)) => Ordering::Greater,
        (Ok(a), Ok(b)) => {
            if a > b {
                Ordering::Greater
            } else {
                Ordering::Less
            }
        }
    }
}

fn compare_prerelease(a: &str, b: &str) -> Ordering {
    let (x, y): (Vec<&str>, Vec<&str>) = (a.split('.').collect(), b.split('.').collect());
    for i in 0..x.len().max(y.len()) {
        let ordering = compare_part(
            x.get(i).copied().unwrap_or(""),
            y.get(i).copied().unwrap_or(""),
        );
        if ordering != Ordering::Equal {
            return ordering;
        }
    }
    Ordering::Equal
}

impl Version {
    fn compare(&self, other: &Version) -> Ordering {
        (self.major, self.minor, self.patch)
            .cmp(&(other.major, other.minor, other.patch))
            .then_with(|| match (self.pre.is_empty(), other.pre.is_empty()) {
                (true, true) => Ordering::Equal,
                (true, false) => Ordering::Greater,
                (false, true) => Ordering::Less,
                (false, false) => compare_prerelease(&self.pre, &other.pre),
            })
    }
}

struct Constraint {
    operator: String,
    version: Version,
    minor_dirty: bool,
    patch_dirty: bool,
    dirty: bool,
}

fn is_x(s: &str) -> bool {
    matches!(s, "x" | "X" | "*")
}

fn parse_constraint(text: &str) -> Result<Constraint, String> {
    let m = ONE
        .captures(text)
        .ok_or_else(|| format!("improper constraint: {text}"))?;
    let group = |i: usize| m.get(i).map_or("", |g| g.as_str());
    let (major, minor, patch, pre) = (group(3), group(4), group(5), group(6));
    let (version, minor_dirty, patch_dirty, dirty) = if is_x(major) || major.is_empty() {
        (format!("0.0.0{pre}"), false, false, true)
    } else if is_x(minor.trim_start_matches('.')) || minor.is_empty() {
        (format!("{major}.0.0{pre}"), true, false, true)
    } else if is_x(patch.trim_start_matches('.')) || patch.is_empty() {
        (format!("{major}{minor}.0{pre}"), false, true, true)
    } else {
        (group(2).to_owned(), false, false, false)
    };
    let version = parse(&version).map_err(|_| "constraint parser error".to_owned())?;
    Ok(Constraint {
        operator: group(1).to_owned(),
        version,
        minor_dirty,
        patch_dirty,
        dirty,
    })
}

impl Constraint {
    fn tilde(&self, v: &Version) -> bool {
        let c = &self.version;
        if v.compare(c) == Ordering::Less {
            return false;
        }
        if c.major == 0 && c.minor == 0 && c.patch == 0 && !self.minor_dirty && !self.patch_dirty {
            return true;
        }
        v.major == c.major && (v.minor == c.minor || self.minor_dirty)
    }

    fn check(&self, v: &Version, include_pre: bool) -> bool {
        if !v.pre.is_empty() && !include_pre {
            return false;
        }
        let c = &self.version;
        match self.operator.as_str() {
            "" | "=" => {
                if self.dirty {
                    self.tilde(v)
                } else {
                    v.compare(c) == Ordering::Equal
                }
            }
            "!=" => {
                if self.dirty {
                    if c.major != v.major {
                        return true;
                    }
                    if c.minor != v.minor && !self.minor_dirty {
                        return true;
                    }
                    if self.minor_dirty {
                        return false;
                    }
                    if c.patch != v.patch && !self.patch_dirty {
                        return true;
                    }
                    if self.patch_dirty {
                        return (!v.pre.is_empty() || !c.pre.is_empty())
                            && compare_prerelease(&v.pre, &c.pre) != Ordering::Equal;
                    }
                }
                v.compare(c) != Ordering::Equal
            }
            ">" => {
                if !self.dirty {
                    return v.compare(c) == Ordering::Greater;
                }
                if v.major != c.major {
                    return v.major > c.major;
                }
                if self.minor_dirty {
                    return false;
                }
                if self.patch_dirty {
                    return v.minor > c.minor;
                }
                v.compare(c) == Ordering::Greater
            }
            "<" => v.compare(c) == Ordering::Less,
            ">=" | "=>" => v.compare(c) != Ordering::Less,
            "<=" | "=<" => {
                if !self.dirty {
                    return v.compare(c) != Ordering::Greater;
                }
                !(v.major > c.major
                    || (v.major == c.major && v.minor > c.minor && !self.minor_dirty))
            }
            "~" | "~>" => self.tilde(v),
            "^" => {
                if v.compare(c) == Ordering::Less {
                    return false;
                }
                if c.major > 0 || self.minor_dirty {
                    return v.major == c.major;
                }
                if v.major > 0 {
                    return false;
                }
                if c.minor > 0 || self.patch_dirty {
                    return v.minor == c.minor;
                }
                if v.minor > 0 {
                    return false;
                }
                c.patch == v.patch
            }
            _ => false,
        }
    }
}

/// Masterminds' `NewConstraint(...).Check(version)`.
fn satisfies(constraint: &str, version: &Version) -> Result<bool, String> {
    let mut rewritten = constraint.to_owned();
    for m in RANGE.captures_iter(constraint) {
        let (whole, low, high) = (&m[0], &m[1], &m[11]);
        rewritten = rewritten.replacen(whole, &format!(">= {low}, <= {high} "), 1);
    }
    let mut any = false;
    for group in rewritten.split("||") {
        if !VALID.is_match(group) {
            return Err(format!("improper constraint: {group}"));
        }
        let mut parts: Vec<&str> = FIND.find_iter(group).map(|m| m.as_str()).collect();
        if parts.is_empty() {
            parts.push(group);
        }
        let constraints = parts
            .into_iter()
            .map(parse_constraint)
            .collect::<Result<Vec<_>, _>>()?;
        let include_pre = constraints.iter().any(|c| !c.version.pre.is_empty());
        if !any && constraints.iter().all(|c| c.check(version, include_pre)) {
            any = true;
        }
    }
    Ok(any)
}

/// The functions of this module.
pub fn functions() -> FuncMap {
    let mut table = FuncMap::new();
    let mut add = |name: &str, f: ValueFunc| {
        table.insert(name.to_owned(), f);
    };
    add(
        "semver",
        Arc::new(|args: &[Value]| {
            arity(args, 1, "semver")?;
            let v = parse(string_arg(args, 0, "semver")?).map_err(error)?;
            let mut map = BTreeMap::new();
            map.insert(Arc::from("Major"), Value::Uint(v.major));
            map.insert(Arc::from("Minor"), Value::Uint(v.minor));
            map.insert(Arc::from("Patch"), Value::Uint(v.patch));
            map.insert(Arc::from("Prerelease"), text(v.pre));
            map.insert(Arc::from("Metadata"), text(v.metadata));
            map.insert(Arc::from("Original"), text(v.original));
            Ok(Value::Map(Arc::new(map)))
        }),
    );
    add(
        "semverCompare",
        Arc::new(|args: &[Value]| {
            arity(args, 2, "semverCompare")?;
            let constraint = string_arg(args, 0, "semverCompare")?;
            let version = parse(string_arg(args, 1, "semverCompare")?).map_err(error)?;
            satisfies(constraint, &version)
                .map(Value::Bool)
                .map_err(error)
        }),
    );
    table
}
