//! What the live benches share.

use std::process::Command;
use std::time::{Duration, Instant};

/// Runs courier to completion (it must succeed): the wall time and its `apply:` lines.
pub fn courier(args: &[&str]) -> (Duration, Vec<String>) {
    let started = Instant::now();
    let output = Command::new(env!("CARGO_BIN_EXE_courier"))
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
