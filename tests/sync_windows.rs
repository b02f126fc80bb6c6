//! `spec.syncWindows` against ESO's own rule and cron library: courier's
//! `core::sync_window` and the Go oracle (`testenv/sync-windows`: ESO v2.9.0's
//! isWithinSyncWindow / isPeriodicRefreshAllowedByWindows over robfig/cron v3.0.1, built
//! and cached by `testenv/sync-windows.sh`) answer the same tuples (schedule, duration,
//! kind, time), generated from a fixed seed: whether robfig parses the schedule, the
//! firing `Next(at - duration - 1s)` and whether a periodic refresh is allowed. Times are
//! given, never read from the clock.

use std::io::Write;
use std::process::{Command, Stdio};

use courier::core::model::{SyncWindow, SyncWindowKind, SyncWindows};
use courier::core::sync_window::{parse, parse_go_duration_exact, periodic_refresh_allowed};

const SEED: u64 = 0x5EED_2026_0029;
const TUPLES: usize = 6000;
const NANOS: i128 = 1_000_000_000;

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        // splitmix64
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
}

/// One cron field: values, ranges, steps, names, lists, and some robfig refuses.
fn field(rng: &mut Rng, min: u64, max: u64, names: &[&str]) -> String {
    let value = |rng: &mut Rng| {
        if !names.is_empty() && rng.below(3) == 0 {
            let name = names[rng.below(names.len() as u64) as usize];
            match rng.below(3) {
                0 => name.to_uppercase(),
                _ => name.to_owned(),
            }
        } else {
            (min + rng.below(max - min + 1)).to_string()
        }
    };
    let one = |rng: &mut Rng| -> String {
        match rng.below(14) {
            0..=2 => "*".into(),
            3 => "?".into(),
            4 | 5 => value(rng),
            6 | 7 => {
                let (a, b) = (value(rng), value(rng));
                format!("{a}-{b}")
            }
            8 => format!("*/{}", 1 + rng.below(12)),
            9 => format!("{}/{}", value(rng), 1 + rng.below(9)),
            10 => {
                let (a, b) = (value(rng), value(rng));
                format!("{a}-{b}/{}", 1 + rng.below(5))
            }
            11 => format!("{}", min + rng.below(max - min + 1)),
            12 => [
                "0", "60", "32", "13", "7", "*/0", "x", "1-2-3", "1/2/3", "-1", "+5", "05", "*-5",
                "",
            ][rng.below(14) as usize]
                .to_owned(),
            _ => format!("{},{}", value(rng), value(rng)),
        }
    };
    let text = one(rng);
    if rng.below(8) == 0 {
        format!("{text},{}", one(rng))
    } else if text.is_empty() {
        ",".into()
    } else {
        text
    }
}

const MONTHS: &[&str] = &[
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const DAYS: &[&str] = &["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

fn schedule(rng: &mut Rng) -> String {
    match rng.below(20) {
        0 => rng
            .pick(&[
                "@yearly",
                "@annually",
                "@monthly",
                "@weekly",
                "@daily",
                "@midnight",
                "@hourly",
                "@reboot",
                "@Daily",
            ])
            .to_owned(),
        1 | 2 => format!(
            "@every {}",
            rng.pick(&[
                "1s", "90m", "1h", "1.5s", "500ms", "1h0m1s", "-5m", "0s", "1d", "7m13s",
                "2562047h", "25h", "1h 30m", "0.9s", "3601s", "1us",
            ])
        ),
        3 => rng
            .pick(&[
                "* * * * *",
                "0 0 30 2 *",
                "0 0 29 2 *",
                "0 0 31 * *",
                "59 23 31 12 *",
                "0 0 1 1 *",
                "0 0 13 * fri",
                "0 0 * * 1-5",
                "*/15 9-17 * * mon-fri",
                "0 0 29 2 mon",
                "0 0 L * *",
                "TZ=UTC 0 0 * *",
                "CRON_TZ=UTC 0 0 * * *",
                "0 0 * *",
                "0 0 * * * *",
            ])
            .to_owned(),
        _ => format!(
            "{} {} {} {} {}",
            field(rng, 0, 59, &[]),
            field(rng, 0, 23, &[]),
            field(rng, 1, 31, &[]),
            field(rng, 1, 12, MONTHS),
            field(rng, 0, 6, DAYS),
        ),
    }
}

fn duration(rng: &mut Rng) -> String {
    rng.pick(&[
        "0s", "1s", "59s", "1m", "5m", "30m", "1h", "90m", "2h", "6h", "25h", "1.5h", "168h",
        "744h", "8784h", "43800h", "-1h", "1h0.5s", "999ms", "1ns", "61s", "3m1s",
    ])
    .to_owned()
}

fn utc(year: i64, month: i64, day: i64, hour: i64, minute: i64, second: i64) -> i128 {
    let text = format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}Z");
    text.parse::<jiff::Timestamp>().unwrap().as_nanosecond()
}

/// A time: month ends, leap days (2000 and 2028 are leap years, 2100 is not), year ends,
/// minute boundaries, with nanoseconds and a second either side; or anywhere in 2000-2099.
fn time(rng: &mut Rng) -> i128 {
    let base = match rng.below(4) {
        0 => {
            let (y, m, d) = [
                (2026, 1, 31),
                (2026, 2, 28),
                (2028, 2, 29),
                (2028, 2, 28),
                (2100, 2, 28),
                (2000, 2, 29),
                (2026, 4, 30),
                (2026, 12, 31),
                (2027, 3, 1),
                (2029, 12, 31),
            ][rng.below(10) as usize];
            utc(
                y,
                m,
                d,
                [0, 23][rng.below(2) as usize],
                [0, 59][rng.below(2) as usize],
                0,
            )
        }
        1 => utc(2026, 12, 5, 3, 30, 0),
        _ => utc(2000, 1, 1, 0, 0, 0) + i128::from(rng.below(100 * 365 * 86_400)) * NANOS,
    };
    let offset: i128 = match rng.below(8) {
        0 => -NANOS,
        1 => NANOS,
        2 => -1,
        3 => 1,
        4 => 60 * NANOS,
        5 => i128::from(rng.below(1_000_000_000)),
        6 => i128::from(rng.below(86_400)) * NANOS,
        _ => 0,
    };
    base + offset
}

fn oracle() -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/testenv/sync-windows.sh");
    let built = Command::new(script)
        .stderr(Stdio::inherit())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {script}: {e}"));
    assert!(
        built.status.success(),
        "testenv/sync-windows.sh failed; this test needs Go (see README, Testing)"
    );
    String::from_utf8(built.stdout).unwrap().trim().to_owned()
}

#[test]
fn sync_windows_agree_with_eso_and_robfig_cron() {
    let mut rng = Rng(SEED);
    let tuples: Vec<(String, String, &str, i128)> = (0..TUPLES)
        .map(|_| {
            let kind = if rng.below(2) == 0 { "deny" } else { "allow" };
            (schedule(&mut rng), duration(&mut rng), kind, time(&mut rng))
        })
        .collect();
    let mut input = String::new();
    for (schedule, duration, kind, at) in &tuples {
        input.push_str(&format!("{schedule}\t{duration}\t{kind}\t{at}\n"));
    }
    let mut child = Command::new(oracle())
        .env("TZ", "UTC")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    let answers: Vec<String> = String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(answers.len(), tuples.len());

    let mut differ = Vec::new();
    let (mut parsed, mut allowed, mut active_allow, mut never) = (0, 0, 0, 0);
    for ((schedule, duration, kind, at), go) in tuples.iter().zip(&answers) {
        let d = parse_go_duration_exact(duration).expect("the generated durations are Go's");
        let sched = parse(schedule);
        let prev = sched
            .as_ref()
            .ok()
            .and_then(|s| {
                let back = d.wrapping_neg().wrapping_sub(1_000_000_000);
                s.next(at + i128::from(back))
            })
            .map_or("z".to_owned(), |p| (p.div_euclid(NANOS)).to_string());
        let windows = SyncWindows {
            kind: if *kind == "deny" {
                SyncWindowKind::Deny
            } else {
                SyncWindowKind::Allow
            },
            windows: vec![SyncWindow {
                schedule: schedule.clone(),
                duration: duration.clone(),
            }],
        };
        let ok = periodic_refresh_allowed(&windows, *at);
        let ours = format!("{} {} {prev}", u8::from(ok), u8::from(sched.is_ok()));
        if ours != *go {
            differ.push(format!(
                "{schedule:?} {duration} {kind} at {at}: courier {ours}, ESO {go}"
            ));
        }
        parsed += usize::from(sched.is_ok());
        allowed += usize::from(ok);
        active_allow += usize::from(ok && *kind == "allow");
        never += usize::from(sched.is_ok() && prev == "z");
    }
    eprintln!(
        "sync windows: {} tuples; {parsed} schedules parsed, {allowed} allowed ({active_allow} by an active allow window), {never} with no firing in five years; {} differ",
        tuples.len(),
        differ.len()
    );
    // The generator reaches every branch it is meant to.
    assert!(parsed > TUPLES / 3 && parsed < TUPLES, "{parsed} parsed");
    assert!(active_allow > 50, "{active_allow} active allow windows");
    assert!(never > 5, "{never} schedules that never fire");
    assert!(
        differ.is_empty(),
        "{} of {} differ:\n{}",
        differ.len(),
        tuples.len(),
        differ[..differ.len().min(30)].join("\n")
    );
}
