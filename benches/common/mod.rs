//! What the benches share.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

/// How big a bench runs.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
#[allow(dead_code)]
pub enum Scale {
    /// `cargo bench`: the measurement BENCHMARKS.md reports.
    Full,
    /// `cargo test`: the same code once at a small size, as a test.
    Smoke,
}

impl Scale {
    /// `full` under `cargo bench`, `smoke` under `cargo test`.
    #[allow(dead_code)]
    pub fn pick<T>(self, full: T, smoke: T) -> T {
        match self {
            Scale::Full => full,
            Scale::Smoke => smoke,
        }
    }
}

/// A bench's `main`. `cargo bench` passes `--bench`: the full measurement. `cargo test`
/// runs every bench too (`test = true` in Cargo.toml), once and small, as a test named
/// `bench::<name>`, so the README's bench commands are exercised by its test command: it
/// honours cargo test's name filters, `--skip`, `--exact` and `--list`, and says how it
/// went in libtest's words, which CI's count of tests reads.
pub fn main(name: &str, bench: impl FnOnce(Scale)) {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.iter().any(|a| a == "--bench") {
        return bench(Scale::Full);
    }
    let test = format!("bench::{name}");
    if args.iter().any(|a| a == "--list") {
        println!("{test}: test");
        return;
    }
    // libtest's options that take a value; the rest of the words are name filters.
    const WITH_VALUE: &[&str] = &[
        "--skip",
        "--test-threads",
        "--format",
        "--color",
        "--logfile",
        "-Z",
    ];
    let (mut filters, mut skips) = (Vec::new(), Vec::new());
    let mut words = args.iter();
    while let Some(word) = words.next() {
        if WITH_VALUE.contains(&word.as_str()) {
            let value = words.next();
            if word == "--skip" {
                skips.extend(value);
            }
        } else if !word.starts_with('-') {
            filters.push(word);
        }
    }
    let exact = args.iter().any(|a| a == "--exact");
    let matches = |filter: &&String| {
        if exact {
            test == **filter
        } else {
            test.contains(filter.as_str())
        }
    };
    let selected = !args.iter().any(|a| a == "--ignored")
        && (filters.is_empty() || filters.iter().any(matches))
        && !skips.iter().any(matches);
    println!("\nrunning 1 test");
    if !selected {
        println!(
            "\ntest result: ok. 0 passed; 0 failed; 0 ignored; 0 measured; 1 filtered out; finished in 0.00s\n"
        );
        return;
    }
    let started = Instant::now();
    bench(Scale::Smoke);
    println!("test {test} ... ok");
    println!(
        "\ntest result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in {:.2}s\n",
        started.elapsed().as_secs_f64()
    );
}

/// Runs courier to completion (it must succeed): the wall time and its `apply:` lines.
#[allow(dead_code)]
pub fn courier(args: &[&str]) -> (Duration, Vec<String>) {
    let started = Instant::now();
    let output = courier_command()
        .args(args)
        .env_remove("KUBECONFIG")
        .output()
        .unwrap();
    let elapsed = started.elapsed();
    let stderr = String::from_utf8(output.stderr).unwrap();
    assert!(
        output.status.success(),
        "courier {args:?} failed:\n{stderr}"
    );
    let summary = stderr
        .lines()
        .filter(|l| l.starts_with("apply:"))
        .map(str::to_owned)
        .collect();
    (elapsed, summary)
}

/// The courier binary, or, with `COURIER_BENCH_PERF=<file>`, `perf record` of it into that
/// file (call graphs at 999 Hz), to see where a bench's courier spends its CPU.
#[allow(dead_code)]
pub fn courier_command() -> Command {
    let courier = env!("CARGO_BIN_EXE_courier");
    match std::env::var("COURIER_BENCH_PERF") {
        Ok(file) if !file.is_empty() => {
            let mut command = Command::new("perf");
            command.args(["record", "-F", "999", "-g", "-o", &file, "--", courier]);
            command
        }
        _ => Command::new(courier),
    }
}

/// Creates namespaces with their labels, 32 requests in flight.
#[allow(dead_code)]
pub async fn create_namespaces(
    client: &kube::Client,
    namespaces: impl IntoIterator<Item = (String, std::collections::BTreeMap<String, String>)>,
) {
    use futures::StreamExt as _;
    let api = kube::Api::<k8s_openapi::api::core::v1::Namespace>::all(client.clone());
    futures::stream::iter(namespaces)
        .map(|(name, labels)| {
            let api = api.clone();
            let object = serde_json::from_value(serde_json::json!({
                "metadata": {"name": name, "labels": labels}
            }))
            .unwrap();
            async move {
                api.create(&kube::api::PostParams::default(), &object)
                    .await
                    .unwrap_or_else(|e| panic!("namespace {name}: {e}"));
            }
        })
        .buffer_unordered(32)
        .collect::<Vec<()>>()
        .await;
}

/// The API server's own count of the resource requests it has served
/// (`apiserver_request_total`, summed over codes), keyed `VERB resource[/subresource]`.
/// Requests to non-resource paths (`/metrics`, `/healthz`) are left out, so reading this
/// does not count itself. Watches count when they end.
#[allow(dead_code)]
pub async fn apiserver_requests(client: &kube::Client) -> BTreeMap<String, f64> {
    let request = http::Request::get("/metrics").body(Vec::new()).unwrap();
    let text = client.request_text(request).await.unwrap();
    let mut counts = BTreeMap::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("apiserver_request_total{") else {
            continue;
        };
        let Some((labels, value)) = rest.rsplit_once("} ") else {
            continue;
        };
        let label = |name: &str| {
            labels
                .split("\",")
                .find_map(|pair| pair.strip_prefix(&format!("{name}=\"")))
                .map(|v| v.trim_end_matches('"').to_owned())
                .unwrap_or_default()
        };
        let resource = label("resource");
        if resource.is_empty() {
            continue;
        }
        let subresource = label("subresource");
        let key = if subresource.is_empty() {
            format!("{} {resource}", label("verb"))
        } else {
            format!("{} {resource}/{subresource}", label("verb"))
        };
        *counts.entry(key).or_insert(0.0) += value.trim().parse::<f64>().unwrap_or(0.0);
    }
    counts
}

/// What the API server served between two [`apiserver_requests`] readings, leaving out
/// `excluded` keys (the bench's own requests): the total and the non-zero keys, largest first.
#[allow(dead_code)]
pub fn requests_between(
    before: &BTreeMap<String, f64>,
    after: &BTreeMap<String, f64>,
    excluded: &[&str],
) -> (u64, String) {
    let mut rows: Vec<(String, u64)> = after
        .iter()
        .filter(|(key, _)| !excluded.contains(&key.as_str()))
        .map(|(key, value)| {
            (
                key.clone(),
                (value - before.get(key).unwrap_or(&0.0)) as u64,
            )
        })
        .filter(|(_, n)| *n > 0)
        .collect();
    rows.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let total = rows.iter().map(|(_, n)| n).sum();
    let shown: Vec<String> = rows
        .iter()
        .take(6)
        .map(|(key, n)| format!("{n} {key}"))
        .collect();
    let more = if rows.len() > 6 { ", ..." } else { "" };
    (total, format!("{}{more}", shown.join(", ")))
}

/// CPU seconds (user + system) and peak RSS (VmHWM, MiB) of a running process, from /proc.
/// The kernel's clock tick is 100 Hz on Linux x86_64 and arm64.
#[allow(dead_code)]
pub fn process_usage(pid: u32) -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat.rsplit_once(") ")?.1.split(' ').collect();
    let ticks = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let peak_kib = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .unwrap_or(0.0);
    Some((ticks / 100.0, peak_kib / 1024.0))
}

/// Runs a command to completion and measures it from /proc while it runs: wall time, CPU
/// seconds and peak RSS (MiB). The CPU time is read off the exited process before it is
/// reaped (a zombie keeps its counters); stderr is returned for the caller's summary.
#[allow(dead_code)]
pub fn measured(mut command: Command) -> (Duration, f64, f64, String) {
    let stderr = tempfile::NamedTempFile::new().unwrap();
    let started = Instant::now();
    let mut child = command
        .stdout(std::process::Stdio::null())
        .stderr(stderr.reopen().unwrap())
        .spawn()
        .unwrap();
    let pid = child.id();
    let (mut cpu, mut peak) = (0.0, 0.0_f64);
    loop {
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        let zombie = state
            .rsplit_once(") ")
            .is_some_and(|(_, rest)| rest.starts_with('Z'));
        if let Some((c, p)) = process_usage(pid) {
            cpu = c;
            peak = peak.max(p);
        } else if let Some(fields) = state.rsplit_once(") ") {
            let fields: Vec<&str> = fields.1.split(' ').collect();
            if let (Some(u), Some(s)) = (fields.get(11), fields.get(12)) {
                cpu = (u.parse::<f64>().unwrap_or(0.0) + s.parse::<f64>().unwrap_or(0.0)) / 100.0;
            }
        }
        if zombie || state.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let status = child.wait().unwrap();
    let elapsed = started.elapsed();
    let stderr = std::fs::read_to_string(stderr.path()).unwrap();
    assert!(status.success(), "{command:?} failed:\n{stderr}");
    (elapsed, cpu, peak, stderr)
}

/// Writes source Secret `source-NN` (username and password) as the bench's own manager.
#[allow(dead_code)]
pub async fn source(
    api: &kube::Api<k8s_openapi::api::core::v1::Secret>,
    index: usize,
    value: &str,
) {
    use kube::api::{Patch, PatchParams};
    let secret: k8s_openapi::api::core::v1::Secret = serde_json::from_value(serde_json::json!({
        "metadata": {"name": format!("source-{index:02}")},
        "stringData": {"username": format!("user-{index}"), "password": value}
    }))
    .unwrap();
    api.patch(
        &format!("source-{index:02}"),
        &PatchParams::apply("bench").force(),
        &Patch::Apply(secret),
    )
    .await
    .unwrap();
}
