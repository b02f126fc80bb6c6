//! Go's duration syntax, as ESO's manifests write it (`refreshInterval: 1h`, webhook `timeout: 5s`).

use std::time::Duration;

/// Go's `time.ParseDuration` for the units manifests use: `1h30m`, `90s`, `500ms`.
/// Surrounding blanks are allowed, a sign is not (an interval is never negative).
pub fn parse_go_duration(text: &str) -> Option<Duration> {
    let text = text.trim();
    if text.starts_with(['-', '+']) {
        return None;
    }
    parse_go_duration_nanos(text).map(|nanos| Duration::from_nanos(nanos as u64))
}

/// Go's `time.ParseDuration` exactly (a sign allowed, no blanks), in nanoseconds.
pub fn parse_go_duration_nanos(text: &str) -> Option<i128> {
    let (negative, body) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    if body == "0" {
        return Some(0);
    }
    if body.is_empty() {
        return None;
    }
    let mut total = 0f64;
    let mut rest = body;
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let value: f64 = rest[..number_end].parse().ok()?;
        rest = &rest[number_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let nanos = match &rest[..unit_end] {
            "h" => 3600e9,
            "m" => 60e9,
            "s" => 1e9,
            "ms" => 1e6,
            "us" | "µs" | "μs" => 1e3,
            "ns" => 1.0,
            _ => return None,
        };
        total += value * nanos;
        rest = &rest[unit_end..];
    }
    let nanos = total.round() as i128;
    Some(if negative { -nanos } else { nanos })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_durations() {
        assert_eq!(parse_go_duration("1h"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_go_duration("1h30m"), Some(Duration::from_secs(5400)));
        assert_eq!(parse_go_duration("90s"), Some(Duration::from_secs(90)));
        assert_eq!(parse_go_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_go_duration("0"), Some(Duration::ZERO));
        assert_eq!(parse_go_duration("1d"), None);
        assert_eq!(parse_go_duration(""), None);
        assert_eq!(parse_go_duration("h"), None);
        assert_eq!(parse_go_duration("-1h"), None);
        assert_eq!(parse_go_duration_nanos("-1h30m"), Some(-5_400_000_000_000));
        assert_eq!(parse_go_duration_nanos(" 1h"), None);
    }
}
