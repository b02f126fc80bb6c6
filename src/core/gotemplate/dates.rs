//! sprig's date functions. gotmpl has no time type, so a time is carried as its Unix
//! seconds (an int, which sprig's `date` also accepts): formatting, parsing, adding
//! durations and `unixEpoch` give Go's results; printing a time directly (`{{ now }}`)
//! prints the seconds where Go prints `2006-01-02 15:04:05 +0000 UTC`. Times are UTC;
//! another zone is refused rather than shown in UTC.

use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use gotmpl::{FuncMap, TemplateError, Value, ValueFunc};

use super::sprig::{arity, error, string_arg, text};

type Result<T> = std::result::Result<T, TemplateError>;

/// Seconds of the zero time (0001-01-01 UTC), what Go's failed parse returns.
const ZERO_TIME: i64 = -62_135_596_800;

/// The clock: whatever reads it renders differently later.
fn now() -> i64 {
    super::varying::varies();
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// sprig's `toTime`: a time or a number of seconds; anything else is now.
fn seconds(value: &Value) -> i64 {
    match value {
        Value::Int(n) => *n,
        Value::Uint(n) => *n as i64,
        _ => now(),
    }
}

/// Days since 1970-01-01 to a civil date (Howard Hinnant's algorithm).
fn civil(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];

/// The layout elements of Go's `time` package, longest first where one is a prefix of
/// another.
const ELEMENTS: [&str; 37] = [
    "January",
    "Jan",
    "Monday",
    "Mon",
    "MST",
    "2006",
    "002",
    "__2",
    "_2",
    "01",
    "02",
    "03",
    "04",
    "05",
    "06",
    "15",
    "1",
    "2",
    "3",
    "4",
    "5",
    "PM",
    "pm",
    "-07:00:00",
    "-070000",
    "-07:00",
    "-0700",
    "-07",
    "Z07:00:00",
    "Z070000",
    "Z07:00",
    "Z0700",
    "Z07",
    ".000000000",
    ".000000",
    ".000",
    ".0",
];

/// The element of Go's layout at the start of `layout`, if any.
fn element(layout: &str) -> Option<&'static str> {
    // "Jan" must not match inside "January" handled by order; a lone digit element is
    // an element only where Go's nextStdChunk would take it.
    for candidate in ELEMENTS {
        if let Some(rest) = layout.strip_prefix(candidate) {
            // Go reads "Mon" only when not followed by a lower-case letter ("Month").
            if matches!(candidate, "Mon" | "Jan")
                && rest.starts_with(|c: char| c.is_ascii_lowercase())
            {
                continue;
            }
            return Some(candidate);
        }
    }
    None
}

/// Go's `Time.Format` for a UTC time of `secs`.
fn format(layout: &str, secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let of_day = secs.rem_euclid(86_400);
    let (year, month, day) = civil(days);
    let (hour, minute, second) = (of_day / 3600, of_day / 60 % 60, of_day % 60);
    let weekday = (days + 4).rem_euclid(7) as usize;
    let year_day = days - days_from_civil(year, 1, 1) + 1;
    let mut out = String::new();
    let mut rest = layout;
    while !rest.is_empty() {
        // Fractional seconds: "." or "," then 0s or 9s, not followed by a digit.
        if let Some(fraction) = fractional(rest) {
            let digits = fraction.len() - 1;
            if fraction.as_bytes()[1] == b'0' {
                out.push_str(&fraction[..1]);
                out.push_str(&"0".repeat(digits));
            }
            rest = &rest[fraction.len()..];
            continue;
        }
        let Some(found) = element(rest) else {
            let c = rest.chars().next().unwrap_or_default();
            out.push(c);
            rest = &rest[c.len_utf8()..];
            continue;
        };
        rest = &rest[found.len()..];
        let hour12 = if hour % 12 == 0 { 12 } else { hour % 12 };
        match found {
            "January" => out.push_str(MONTHS[month as usize - 1]),
            "Jan" => out.push_str(&MONTHS[month as usize - 1][..3]),
            "Monday" => out.push_str(DAYS[weekday]),
            "Mon" => out.push_str(&DAYS[weekday][..3]),
            "MST" => out.push_str("UTC"),
            "2006" => out.push_str(&format!("{year:04}")),
            "06" => out.push_str(&format!("{:02}", year.rem_euclid(100))),
            "002" => out.push_str(&format!("{year_day:03}")),
            "__2" => out.push_str(&format!("{year_day:>3}")),
            "_2" => out.push_str(&format!("{day:>2}")),
            "01" => out.push_str(&format!("{month:02}")),
            "02" => out.push_str(&format!("{day:02}")),
            "03" => out.push_str(&format!("{hour12:02}")),
            "04" => out.push_str(&format!("{minute:02}")),
            "05" => out.push_str(&format!("{second:02}")),
            "15" => out.push_str(&format!("{hour:02}")),
            "1" => out.push_str(&month.to_string()),
            "2" => out.push_str(&day.to_string()),
            "3" => out.push_str(&hour12.to_string()),
            "4" => out.push_str(&minute.to_string()),
            "5" => out.push_str(&second.to_string()),
            "PM" => out.push_str(if hour >= 12 { "PM" } else { "AM" }),
            "pm" => out.push_str(if hour >= 12 { "pm" } else { "am" }),
            z if z.starts_with('Z') => out.push('Z'),
            "-07:00:00" => out.push_str("+00:00:00"),
            "-070000" => out.push_str("+000000"),
            "-07:00" => out.push_str("+00:00"),
            "-0700" => out.push_str("+0000"),
            "-07" => out.push_str("+00"),
            other => out.push_str(other),
        }
    }
    out
}

/// A fractional-seconds element at the start of `layout` (".000", ",999").
fn fractional(layout: &str) -> Option<&str> {
    let bytes = layout.as_bytes();
    if bytes.len() < 2 || !matches!(bytes[0], b'.' | b',') || !matches!(bytes[1], b'0' | b'9') {
        return None;
    }
    let digit = bytes[1];
    let end = 1 + bytes[1..].iter().take_while(|&&b| b == digit).count();
    if bytes.get(end).is_some_and(u8::is_ascii_digit) {
        return None;
    }
    Some(&layout[..end])
}

/// Go's `time.Parse` for the numeric layouts templates use; `None` where Go fails.
fn parse(layout: &str, value: &str) -> Option<i64> {
    let (mut year, mut month, mut day) = (1i64, 1u32, 1u32);
    let (mut hour, mut minute, mut second) = (0i64, 0i64, 0i64);
    let mut offset = 0i64;
    let mut pm: Option<bool> = None;
    let mut rest = layout;
    let mut input = value;
    let number = |input: &mut &str, min: usize, max: usize| -> Option<i64> {
        let len = input
            .bytes()
            .take(max)
            .take_while(u8::is_ascii_digit)
            .count();
        if len < min {
            return None;
        }
        let n = input[..len].parse().ok()?;
        *input = &input[len..];
        Some(n)
    };
    while !rest.is_empty() {
        if let Some(fraction) = fractional(rest) {
            rest = &rest[fraction.len()..];
            if let Some(after) = input.strip_prefix(['.', ',']) {
                input = after.trim_start_matches(|c: char| c.is_ascii_digit());
            }
            continue;
        }
        let Some(found) = element(rest) else {
            let c = rest.chars().next()?;
            input = input.strip_prefix(c)?;
            rest = &rest[c.len_utf8()..];
            continue;
        };
        rest = &rest[found.len()..];
        match found {
            "2006" => year = number(&mut input, 4, 4)?,
            "06" => {
                // Go: 69..99 are the 1900s, 00..68 the 2000s.
                let yy = number(&mut input, 2, 2)?;
                year = if yy >= 69 { 1900 + yy } else { 2000 + yy };
            }
            "01" => month = number(&mut input, 2, 2)? as u32,
            "1" => month = number(&mut input, 1, 2)? as u32,
            "02" => day = number(&mut input, 2, 2)? as u32,
            "2" | "_2" => {
                input = input.trim_start_matches(' ');
                day = number(&mut input, 1, 2)? as u32;
            }
            "15" => hour = number(&mut input, 1, 2)?,
            "03" | "3" => hour = number(&mut input, if found == "03" { 2 } else { 1 }, 2)?,
            "04" | "4" => minute = number(&mut input, if found == "04" { 2 } else { 1 }, 2)?,
            "05" | "5" => second = number(&mut input, if found == "05" { 2 } else { 1 }, 2)?,
            "Jan" | "January" => {
                let index = MONTHS.iter().position(|m| {
                    let name = if found == "Jan" { &m[..3] } else { m };
                    input.starts_with(name)
                })?;
                let len = if found == "Jan" {
                    3
                } else {
                    MONTHS[index].len()
                };
                input = &input[len..];
                month = index as u32 + 1;
            }
            "Mon" | "Monday" => {
                let name = DAYS
                    .iter()
                    .find(|d| input.starts_with(if found == "Mon" { &d[..3] } else { d }))?;
                input = &input[if found == "Mon" { 3 } else { name.len() }..];
            }
            "PM" | "pm" => {
                let (am, p) = if found == "PM" {
                    ("AM", "PM")
                } else {
                    ("am", "pm")
                };
                if let Some(after) = input.strip_prefix(p) {
                    pm = Some(true);
                    input = after;
                } else {
                    input = input.strip_prefix(am)?;
                    pm = Some(false);
                }
            }
            "MST" => {
                let len = input.bytes().take_while(u8::is_ascii_uppercase).count();
                if len < 3 {
                    return None;
                }
                input = &input[len..];
            }
            z => {
                if let Some(after) = input.strip_prefix('Z').filter(|_| z.starts_with('Z')) {
                    input = after;
                    continue;
                }
                let sign = match input.as_bytes().first()? {
                    b'+' => 1,
                    b'-' => -1,
                    _ => return None,
                };
                input = &input[1..];
                let h = number(&mut input, 2, 2)?;
                let mut m = 0;
                if z.contains(':') {
                    input = input.strip_prefix(':')?;
                }
                if z.len() > 3 {
                    m = number(&mut input, 2, 2)?;
                }
                offset = sign * (h * 3600 + m * 60);
            }
        }
    }
    if !input.is_empty() {
        return None;
    }
    if let Some(pm) = pm {
        if hour > 12 {
            return None;
        }
        hour = match (pm, hour) {
            (true, 12) => 12,
            (true, h) => h + 12,
            (false, 12) => 0,
            (false, h) => h,
        };
    }
    let days_in_month = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if (year % 4 == 0 && year % 100 != 0) || year % 400 == 0 => 29,
        2 => 28,
        _ => return None,
    };
    if day < 1 || day > days_in_month || hour > 23 || minute > 59 || second > 59 {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second - offset)
}

/// Go's `Duration.String`.
fn duration_string(nanos: i128) -> String {
    if nanos == 0 {
        return "0s".into();
    }
    let sign = if nanos < 0 { "-" } else { "" };
    let u = nanos.unsigned_abs();
    if u < 1_000_000_000 {
        let (unit, scale) = if u < 1_000 {
            ("ns", 1)
        } else if u < 1_000_000 {
            ("µs", 1_000)
        } else {
            ("ms", 1_000_000)
        };
        return format!("{sign}{}{unit}", fraction(u, scale));
    }
    let hours = u / 3_600_000_000_000;
    let minutes = u / 60_000_000_000 % 60;
    let seconds = fraction(u % 60_000_000_000, 1_000_000_000);
    let mut out = String::from(sign);
    if hours > 0 {
        out.push_str(&format!("{hours}h"));
    }
    if hours > 0 || minutes > 0 {
        out.push_str(&format!("{minutes}m"));
    }
    out.push_str(&format!("{seconds}s"));
    out
}

/// `value / scale` with the remainder as decimals, trailing zeros dropped.
fn fraction(value: u128, scale: u128) -> String {
    let whole = value / scale;
    let rest = value % scale;
    if rest == 0 {
        return whole.to_string();
    }
    let width = scale.to_string().len() - 1;
    let digits = format!("{rest:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

fn zone_check(zone: &str, function: &str) -> Result<()> {
    if matches!(zone, "UTC" | "Local" | "") {
        Ok(())
    } else {
        Err(error(format!(
            "{function}: time zone {zone:?} is not supported by courier (UTC only)"
        )))
    }
}

/// The functions of this module.
pub fn functions() -> FuncMap {
    let mut table = FuncMap::new();
    let mut add = |name: &str, f: ValueFunc| {
        table.insert(name.to_owned(), f);
    };
    add("now", Arc::new(|_: &[Value]| Ok(Value::Int(now()))));
    add(
        "date",
        Arc::new(|args: &[Value]| {
            arity(args, 2, "date")?;
            Ok(text(format(
                string_arg(args, 0, "date")?,
                seconds(&args[1]),
            )))
        }),
    );
    add(
        "dateInZone",
        Arc::new(|args: &[Value]| {
            arity(args, 3, "dateInZone")?;
            zone_check(string_arg(args, 2, "dateInZone")?, "dateInZone")?;
            Ok(text(format(
                string_arg(args, 0, "dateInZone")?,
                seconds(&args[1]),
            )))
        }),
    );
    add(
        "htmlDate",
        Arc::new(|args: &[Value]| {
            arity(args, 1, "htmlDate")?;
            Ok(text(format("2006-01-02", seconds(&args[0]))))
        }),
    );
    add(
        "htmlDateInZone",
        Arc::new(|args: &[Value]| {
            arity(args, 2, "htmlDateInZone")?;
            zone_check(string_arg(args, 1, "htmlDateInZone")?, "htmlDateInZone")?;
            Ok(text(format("2006-01-02", seconds(&args[0]))))
        }),
    );
    add(
        "unixEpoch",
        Arc::new(|args: &[Value]| {
            arity(args, 1, "unixEpoch")?;
            Ok(text(seconds(&args[0]).to_string()))
        }),
    );
    for (name, must) in [("toDate", false), ("mustToDate", true)] {
        add(
            name,
            Arc::new(move |args: &[Value]| {
                arity(args, 2, name)?;
                let layout = string_arg(args, 0, name)?;
                let value = string_arg(args, 1, name)?;
                match parse(layout, value) {
                    Some(secs) => Ok(Value::Int(secs)),
                    None if must => Err(error(format!(
                        "parsing time {value:?} as {layout:?}: cannot parse"
                    ))),
                    None => Ok(Value::Int(ZERO_TIME)),
                }
            }),
        );
    }
    for (name, must) in [("dateModify", false), ("mustDateModify", true)] {
        add(
            name,
            Arc::new(move |args: &[Value]| {
                arity(args, 2, name)?;
                let modifier = string_arg(args, 0, name)?;
                let base = seconds(&args[1]);
                match crate::core::duration::parse_go_duration_nanos(modifier) {
                    Some(nanos) => Ok(Value::Int(base + (nanos / 1_000_000_000) as i64)),
                    None if must => Err(error(format!("time: invalid duration {modifier:?}"))),
                    None => Ok(Value::Int(base)),
                }
            }),
        );
    }
    add(
        "duration",
        Arc::new(|args: &[Value]| {
            arity(args, 1, "duration")?;
            // sprig reads a string or an int64; a template's integer is an int, so 0.
            let seconds: i128 = match &args[0] {
                Value::String(s) => s.parse().unwrap_or(0),
                _ => 0,
            };
            Ok(text(duration_string(seconds * 1_000_000_000)))
        }),
    );
    add(
        "durationRound",
        Arc::new(|args: &[Value]| {
            arity(args, 1, "durationRound")?;
            let nanos = match &args[0] {
                Value::String(s) => crate::core::duration::parse_go_duration_nanos(s).unwrap_or(0),
                _ => 0,
            };
            let u = nanos.unsigned_abs();
            let hour: u128 = 3_600_000_000_000;
            let steps: [(u128, &str); 6] = [
                (hour * 24 * 365, "y"),
                (hour * 24 * 30, "mo"),
                (hour * 24, "d"),
                (hour, "h"),
                (60_000_000_000, "m"),
                (1_000_000_000, "s"),
            ];
            let out = steps
                .iter()
                .find(|(size, _)| u > *size)
                .map_or("0s".to_owned(), |(size, unit)| {
                    format!("{}{unit}", u / size)
                });
            Ok(text(out))
        }),
    );
    add(
        "ago",
        Arc::new(|args: &[Value]| {
            arity(args, 1, "ago")?;
            let since = (now() - seconds(&args[0])) as i128;
            Ok(text(duration_string(since * 1_000_000_000)))
        }),
    );
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates_round_trip() {
        for days in [-719_468, -1, 0, 11_016, 19_000, 2_932_896] {
            let (y, m, d) = civil(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(civil(0), (1970, 1, 1));
        assert_eq!(format("2006-01-02", ZERO_TIME), "0001-01-01");
    }
}
