//! ESO's `spec.syncWindows` (v2.9): cron windows that restrict an ExternalSecret's
//! *periodic* refresh (never its first sync, nor the sync after a spec change). Read from
//! `isPeriodicRefreshAllowedByWindows`, `isWithinSyncWindow` and `cronParser` in ESO's
//! pkg/controllers/externalsecret/externalsecret_controller.go, and from the cron library
//! ESO pins, robfig/cron v3.0.1 (`parser.go`, `spec.go`, `constantdelay.go`):
//!
//! - a schedule is robfig's standard 5-field spec (minute hour day-of-month month
//!   day-of-week; the seconds field is always 0) or a descriptor (`@yearly`, `@annually`,
//!   `@monthly`, `@weekly`, `@daily`, `@midnight`, `@hourly`, `@every <Go duration>`);
//! - a window is active at `at` when the schedule's latest firing `prev` at or before `at`
//!   (found as robfig's `Next(at - duration - 1s)`, which is exclusive and searches five
//!   years ahead at most) has `prev <= at <= prev + duration`;
//! - `deny`: the refresh is allowed unless a window is active; `allow`: only while one is.
//!   A schedule robfig cannot parse is skipped (inactive), as ESO skips it.
//!
//! Times are in UTC (ESO's controller evaluates in its process's local zone, UTC in its
//! container image), as nanoseconds since the Unix epoch, given by the caller: nothing
//! here reads the clock. Proven against robfig's own code by `tests/sync_windows.rs`.

use crate::core::model::{SyncWindowKind, SyncWindows};

const NANOS: i128 = 1_000_000_000;
const STAR: u64 = 1 << 63;

/// A parsed schedule, as robfig's `Schedule`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Schedule {
    /// robfig's `SpecSchedule` (seconds always 0): one bit per allowed value, and
    /// [`STAR`] when the field was `*` or `?` (not stepped), which decides how
    /// day-of-month and day-of-week combine.
    Spec {
        /// Minutes 0-59.
        minute: u64,
        /// Hours 0-23.
        hour: u64,
        /// Days of the month 1-31.
        dom: u64,
        /// Months 1-12.
        month: u64,
        /// Days of the week 0-6 (Sunday 0).
        dow: u64,
    },
    /// `@every`: robfig's `ConstantDelaySchedule` (whole seconds, at least 1 s).
    Every {
        /// The delay, in nanoseconds.
        delay_nanos: i64,
    },
}

struct Bounds {
    min: u64,
    max: u64,
    names: &'static [(&'static str, u64)],
}

const MINUTES: Bounds = Bounds {
    min: 0,
    max: 59,
    names: &[],
};
const HOURS: Bounds = Bounds {
    min: 0,
    max: 23,
    names: &[],
};
const DOM: Bounds = Bounds {
    min: 1,
    max: 31,
    names: &[],
};
const MONTHS: Bounds = Bounds {
    min: 1,
    max: 12,
    names: &[
        ("jan", 1),
        ("feb", 2),
        ("mar", 3),
        ("apr", 4),
        ("may", 5),
        ("jun", 6),
        ("jul", 7),
        ("aug", 8),
        ("sep", 9),
        ("oct", 10),
        ("nov", 11),
        ("dec", 12),
    ],
};
const DOW: Bounds = Bounds {
    min: 0,
    max: 6,
    names: &[
        ("sun", 0),
        ("mon", 1),
        ("tue", 2),
        ("wed", 3),
        ("thu", 4),
        ("fri", 5),
        ("sat", 6),
    ],
};

/// Parses `spec` as ESO's `cronParser` does (robfig's `Minute | Hour | Dom | Month |
/// Dow | Descriptor`). The error says why, never quoting more than the schedule.
pub fn parse(spec: &str) -> Result<Schedule, String> {
    if spec.is_empty() {
        return Err("empty schedule".into());
    }
    let mut spec = spec;
    if spec.starts_with("TZ=") || spec.starts_with("CRON_TZ=") {
        // robfig loads the zone named up to the first blank. ESO's CRD pattern leaves at
        // most four fields after such a prefix, which robfig refuses whatever the zone;
        // courier reads only UTC zones (it has no zone database).
        let (Some(blank), Some(eq)) = (spec.find(' '), spec.find('=')) else {
            return Err("a time zone prefix without a schedule".into());
        };
        if blank < eq + 1 || !matches!(&spec[eq + 1..blank], "" | "UTC" | "Local") {
            return Err("a time zone other than UTC".into());
        }
        spec = spec[blank..].trim();
    }
    if spec.starts_with('@') {
        return descriptor(spec);
    }
    let fields: Vec<&str> = spec.split_whitespace().collect();
    if fields.len() != 5 {
        return Err(format!("expected exactly 5 fields, found {}", fields.len()));
    }
    Ok(Schedule::Spec {
        minute: field(fields[0], &MINUTES)?,
        hour: field(fields[1], &HOURS)?,
        dom: field(fields[2], &DOM)?,
        month: field(fields[3], &MONTHS)?,
        dow: field(fields[4], &DOW)?,
    })
}

fn all(bounds: &Bounds) -> u64 {
    bits(bounds.min, bounds.max, 1) | STAR
}

fn descriptor(spec: &str) -> Result<Schedule, String> {
    let every = |minute, hour, dom, month, dow| Schedule::Spec {
        minute,
        hour,
        dom,
        month,
        dow,
    };
    Ok(match spec {
        "@yearly" | "@annually" => every(1, 1, 1 << 1, 1 << 1, all(&DOW)),
        "@monthly" => every(1, 1, 1 << 1, all(&MONTHS), all(&DOW)),
        "@weekly" => every(1, 1, all(&DOM), all(&MONTHS), 1),
        "@daily" | "@midnight" => every(1, 1, all(&DOM), all(&MONTHS), all(&DOW)),
        "@hourly" => every(1, all(&HOURS), all(&DOM), all(&MONTHS), all(&DOW)),
        _ => {
            let Some(text) = spec.strip_prefix("@every ") else {
                return Err("unrecognized descriptor".into());
            };
            let duration = parse_go_duration_exact(text)
                .ok_or_else(|| "@every takes a Go duration".to_owned())?;
            // robfig's Every: at least a second, whole seconds.
            let duration = duration.max(1_000_000_000);
            Schedule::Every {
                delay_nanos: duration - duration % 1_000_000_000,
            }
        }
    })
}

/// robfig's `getField`: comma-separated ranges (empty ones dropped, as `FieldsFunc` does).
fn field(text: &str, bounds: &Bounds) -> Result<u64, String> {
    let mut out = 0;
    for expr in text.split(',').filter(|e| !e.is_empty()) {
        out |= range(expr, bounds)?;
    }
    Ok(out)
}

/// robfig's `getRange`: `*`, `?`, `N`, `N-M`, each optionally `/step`.
fn range(expr: &str, bounds: &Bounds) -> Result<u64, String> {
    let range_and_step: Vec<&str> = expr.split('/').collect();
    let low_and_high: Vec<&str> = range_and_step[0].split('-').collect();
    let single = low_and_high.len() == 1;
    let (start, mut end, mut extra);
    if low_and_high[0] == "*" || low_and_high[0] == "?" {
        start = bounds.min;
        end = bounds.max;
        extra = STAR;
    } else {
        start = int_or_name(low_and_high[0], bounds)?;
        end = match low_and_high.len() {
            1 => start,
            2 => int_or_name(low_and_high[1], bounds)?,
            _ => return Err(format!("too many hyphens: {expr}")),
        };
        extra = 0;
    }
    let step = match range_and_step.len() {
        1 => 1,
        2 => {
            let step = go_atoi(range_and_step[1])?;
            if single {
                end = bounds.max;
            }
            if step > 1 {
                extra = 0;
            }
            step
        }
        _ => return Err(format!("too many slashes: {expr}")),
    };
    if start < bounds.min {
        return Err(format!("beginning of range below minimum: {expr}"));
    }
    if end > bounds.max {
        return Err(format!("end of range above maximum: {expr}"));
    }
    if start > end {
        return Err(format!("beginning of range beyond end of range: {expr}"));
    }
    if step == 0 {
        return Err(format!("step of range should be a positive number: {expr}"));
    }
    Ok(bits(start, end, step) | extra)
}

fn bits(min: u64, max: u64, step: u64) -> u64 {
    let mut out = 0;
    let mut i = min;
    while i <= max {
        out |= 1 << i;
        i += step;
    }
    out
}

fn int_or_name(text: &str, bounds: &Bounds) -> Result<u64, String> {
    let lower = text.to_lowercase();
    if let Some((_, value)) = bounds.names.iter().find(|(name, _)| *name == lower) {
        return Ok(*value);
    }
    go_atoi(text)
}

/// Go's `strconv.Atoi` then robfig's refusal of negatives.
fn go_atoi(text: &str) -> Result<u64, String> {
    let digits = text.strip_prefix(['+', '-']).unwrap_or(text);
    let bad = || format!("failed to parse int from {text}");
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let magnitude: i128 = digits.parse().map_err(|_| bad())?;
    let value = if text.starts_with('-') {
        -magnitude
    } else {
        magnitude
    };
    if value > i128::from(i64::MAX) || value < i128::from(i64::MIN) {
        return Err(bad());
    }
    if value < 0 {
        return Err(format!("negative number not allowed: {text}"));
    }
    Ok(value as u64)
}

/// Go's `time.ParseDuration`, exactly (integer arithmetic, its overflow checks), in
/// nanoseconds: what `metav1.Duration` reads `duration` with and robfig `@every` with.
pub fn parse_go_duration_exact(text: &str) -> Option<i64> {
    const LIMIT: u64 = 1 << 63;
    let mut s = text.as_bytes();
    let mut negative = false;
    if let Some(&c) = s.first()
        && (c == b'-' || c == b'+')
    {
        negative = c == b'-';
        s = &s[1..];
    }
    if s == b"0" {
        return Some(0);
    }
    if s.is_empty() {
        return None;
    }
    let mut total: u64 = 0;
    while !s.is_empty() {
        if !(s[0] == b'.' || s[0].is_ascii_digit()) {
            return None;
        }
        let before = s.len();
        let mut v: u64 = 0;
        while let Some(&c) = s.first().filter(|c| c.is_ascii_digit()) {
            if v > LIMIT / 10 {
                return None;
            }
            v = v * 10 + u64::from(c - b'0');
            if v > LIMIT {
                return None;
            }
            s = &s[1..];
        }
        let pre = before != s.len();
        let (mut f, mut scale, mut post) = (0u64, 1f64, false);
        if s.first() == Some(&b'.') {
            s = &s[1..];
            let before = s.len();
            let mut overflow = false;
            while let Some(&c) = s.first().filter(|c| c.is_ascii_digit()) {
                s = &s[1..];
                if overflow {
                    continue;
                }
                if f > (LIMIT - 1) / 10 {
                    overflow = true;
                    continue;
                }
                let y = f * 10 + u64::from(c - b'0');
                if y > LIMIT {
                    overflow = true;
                    continue;
                }
                f = y;
                scale *= 10.0;
            }
            post = before != s.len();
        }
        if !pre && !post {
            return None;
        }
        let unit_len = s
            .iter()
            .position(|&c| c == b'.' || c.is_ascii_digit())
            .unwrap_or(s.len());
        if unit_len == 0 {
            return None;
        }
        let unit: u64 = match &s[..unit_len] {
            b"ns" => 1,
            b"us" | b"\xC2\xB5s" | b"\xCE\xBCs" => 1_000,
            b"ms" => 1_000_000,
            b"s" => 1_000_000_000,
            b"m" => 60_000_000_000,
            b"h" => 3_600_000_000_000,
            _ => return None,
        };
        s = &s[unit_len..];
        if v > LIMIT / unit {
            return None;
        }
        v *= unit;
        if f > 0 {
            v += (f as f64 * (unit as f64 / scale)) as u64;
            if v > LIMIT {
                return None;
            }
        }
        total += v;
        if total > LIMIT {
            return None;
        }
    }
    if negative {
        return Some((total as i64).wrapping_neg());
    }
    if total > LIMIT - 1 {
        return None;
    }
    Some(total as i64)
}

/// A UTC civil time, to the second.
#[derive(Clone, Copy)]
struct Civil {
    year: i64,
    month: i64,
    day: i64,
    hour: i64,
    minute: i64,
    second: i64,
}

/// Days since 1970-01-01 of a proleptic Gregorian date; `day` and `month` may overflow
/// (as Go's `time.Date` normalizes them).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = year + (month - 1).div_euclid(12);
    let month = (month - 1).rem_euclid(12) + 1;
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468 + (day - 1)
}

fn civil(seconds: i64) -> Civil {
    let days = seconds.div_euclid(86_400);
    let rest = seconds.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    Civil {
        year,
        month,
        day,
        hour: rest / 3600,
        minute: rest % 3600 / 60,
        second: rest % 60,
    }
}

fn date(year: i64, month: i64, day: i64, hour: i64, minute: i64, second: i64) -> i64 {
    days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second
}

fn weekday(seconds: i64) -> i64 {
    (seconds.div_euclid(86_400) + 4).rem_euclid(7)
}

fn has(bits: u64, value: i64) -> bool {
    bits & (1 << value) != 0
}

impl Schedule {
    /// robfig's `Next`: the first firing strictly after `t` (nanoseconds since the
    /// epoch, UTC); `None` for robfig's zero time (nothing within five years).
    pub fn next(&self, t: i128) -> Option<i128> {
        match *self {
            Schedule::Every { delay_nanos } => {
                Some(t - t.rem_euclid(NANOS) + i128::from(delay_nanos))
            }
            Schedule::Spec {
                minute,
                hour,
                dom,
                month,
                dow,
            } => {
                // t.Add(1s - t.Nanosecond()): robfig works in whole seconds from here.
                let mut t = i64::try_from(t.div_euclid(NANOS)).ok()? + 1;
                let day_matches = |t: i64| {
                    let c = civil(t);
                    let dom_match = has(dom, c.day);
                    let dow_match = has(dow, weekday(t));
                    if dom & STAR != 0 || dow & STAR != 0 {
                        dom_match && dow_match
                    } else {
                        dom_match || dow_match
                    }
                };
                let mut added = false;
                let year_limit = civil(t).year + 5;
                'wrap: loop {
                    if civil(t).year > year_limit {
                        return None;
                    }
                    while !has(month, civil(t).month) {
                        let c = civil(t);
                        if !added {
                            added = true;
                            t = date(c.year, c.month, 1, 0, 0, 0);
                        }
                        let c = civil(t);
                        t = date(c.year, c.month + 1, c.day, c.hour, c.minute, c.second);
                        if civil(t).month == 1 {
                            continue 'wrap;
                        }
                    }
                    while !day_matches(t) {
                        if !added {
                            added = true;
                            let c = civil(t);
                            t = date(c.year, c.month, c.day, 0, 0, 0);
                        }
                        t += 86_400;
                        if civil(t).day == 1 {
                            continue 'wrap;
                        }
                    }
                    while !has(hour, civil(t).hour) {
                        if !added {
                            added = true;
                            t -= t.rem_euclid(3600);
                        }
                        t += 3600;
                        if civil(t).hour == 0 {
                            continue 'wrap;
                        }
                    }
                    while !has(minute, civil(t).minute) {
                        if !added {
                            added = true;
                            t -= t.rem_euclid(60);
                        }
                        t += 60;
                        if civil(t).minute == 0 {
                            continue 'wrap;
                        }
                    }
                    // The seconds field is always 0.
                    while civil(t).second != 0 {
                        added = true;
                        t += 1;
                        if civil(t).second == 0 {
                            continue 'wrap;
                        }
                    }
                    return Some(i128::from(t) * NANOS);
                }
            }
        }
    }
}

/// ESO's `isWithinSyncWindow`: whether `at` falls in the window that opened at the
/// schedule's latest firing at or before `at` and lasts `duration` (nanoseconds).
pub fn within(schedule: &Schedule, duration: i64, at: i128) -> bool {
    // Go's `-duration - time.Second`, in int64 (wrapping as Go's does).
    let back = duration.wrapping_neg().wrapping_sub(1_000_000_000);
    match schedule.next(at + i128::from(back)) {
        Some(prev) => prev <= at && at <= prev + i128::from(duration),
        None => false,
    }
}

/// One window as ESO reads it: its schedule (`None` when robfig cannot parse it: ESO
/// skips it) and its duration in nanoseconds.
pub fn window_of(schedule: &str, duration: &str) -> (Option<Schedule>, Option<i64>) {
    (parse(schedule).ok(), parse_go_duration_exact(duration))
}

/// ESO's `isPeriodicRefreshAllowedByWindows` at `at` (nanoseconds since the epoch, UTC).
/// A window whose duration is not a Go duration cannot occur (ESO cannot read such an
/// object, and courier's loader refuses it); it is skipped here.
pub fn periodic_refresh_allowed(windows: &SyncWindows, at: i128) -> bool {
    if windows.windows.is_empty() {
        return true;
    }
    let active = windows.windows.iter().any(|w| {
        let (schedule, duration) = window_of(&w.schedule, &w.duration);
        match (schedule, duration) {
            (Some(schedule), Some(duration)) => within(&schedule, duration, at),
            _ => false,
        }
    });
    match windows.kind {
        SyncWindowKind::Deny => !active,
        SyncWindowKind::Allow => active,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> i128 {
        text.parse::<jiff::Timestamp>().unwrap().as_nanosecond()
    }

    fn next(spec: &str, from: &str) -> Option<String> {
        parse(spec)
            .unwrap()
            .next(at(from))
            .map(|n| jiff::Timestamp::from_nanosecond(n).unwrap().to_string())
    }

    #[test]
    fn next_firings_as_robfig_computes_them() {
        assert_eq!(
            next("0 0 29 2 *", "2027-01-01T00:00:00Z").as_deref(),
            Some("2028-02-29T00:00:00Z")
        );
        assert_eq!(next("0 0 30 2 *", "2026-01-01T00:00:00Z"), None);
        // Day of month and day of week both restricted: either (robfig's OR).
        assert_eq!(
            next("0 0 13 * fri", "2026-12-05T10:00:00Z").as_deref(),
            Some("2026-12-11T00:00:00Z")
        );
        // A stepped star is no star: OR again.
        assert_eq!(
            next("0 0 */2 * mon", "2026-12-05T10:00:00Z").as_deref(),
            Some("2026-12-07T00:00:00Z")
        );
        assert_eq!(
            next("@every 90m", "2026-12-05T10:00:00.5Z").as_deref(),
            Some("2026-12-05T11:30:00Z")
        );
        assert_eq!(
            next("30 23 31 dec-DEC *", "2026-12-31T23:30:00Z").as_deref(),
            Some("2027-12-31T23:30:00Z")
        );
    }

    #[test]
    fn windows_allow_and_deny() {
        let windows = |kind, schedule: &str, duration: &str| SyncWindows {
            kind,
            windows: vec![crate::core::model::SyncWindow {
                schedule: schedule.into(),
                duration: duration.into(),
            }],
        };
        let now = at("2026-12-05T03:30:00Z");
        let always = windows(SyncWindowKind::Deny, "* * * * *", "1h");
        assert!(!periodic_refresh_allowed(&always, now));
        let never = windows(SyncWindowKind::Deny, "0 0 30 2 *", "1h");
        assert!(periodic_refresh_allowed(&never, now));
        let allow = windows(SyncWindowKind::Allow, "0 3 * * *", "30m");
        assert!(periodic_refresh_allowed(&allow, now));
        assert!(!periodic_refresh_allowed(&allow, now + NANOS));
        // Unparseable: skipped, as ESO does.
        let typo = windows(SyncWindowKind::Deny, "61 * * * *", "1h");
        assert!(periodic_refresh_allowed(&typo, now));
    }

    #[test]
    fn go_durations_exactly() {
        assert_eq!(parse_go_duration_exact("1h30m"), Some(5_400_000_000_000));
        assert_eq!(parse_go_duration_exact("1.5s"), Some(1_500_000_000));
        assert_eq!(parse_go_duration_exact(".5s"), Some(500_000_000));
        assert_eq!(parse_go_duration_exact("-1s"), Some(-1_000_000_000));
        assert_eq!(parse_go_duration_exact("1"), None);
        assert_eq!(parse_go_duration_exact("1d"), None);
        assert_eq!(parse_go_duration_exact("2562048h"), None);
        assert_eq!(
            parse_go_duration_exact("9223372036854775807ns"),
            Some(i64::MAX)
        );
        assert_eq!(
            parse_go_duration_exact("-9223372036854775808ns"),
            Some(i64::MIN)
        );
    }
}
