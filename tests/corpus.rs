//! Every hostile or broken input in `tests/corpus/` ends in its expected, clear error,
//! within 10 s and 1 GiB of address space, without a panic or a value in the output.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const TIME_LIMIT_SECONDS: u64 = 10;
const ADDRESS_SPACE_KIB: u64 = 1024 * 1024;

struct Case {
    name: String,
    dir: PathBuf,
    expect: String,
}

fn run(case: &Case) -> Duration {
    run_command(case, "render")
}

fn run_command(case: &Case, command: &str) -> Duration {
    let started = Instant::now();
    let script = format!(
        "ulimit -v {ADDRESS_SPACE_KIB}; exec timeout {TIME_LIMIT_SECONDS} \"$0\" {command} \"$1\"",
    );
    let output = Command::new("bash")
        .args([
            "-c",
            &script,
            env!("CARGO_BIN_EXE_courier"),
            case.dir.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let elapsed = started.elapsed();
    let stderr = String::from_utf8_lossy(&output.stderr);
    let name = &case.name;
    assert_eq!(
        output.status.code(),
        Some(1),
        "{name} ({command}): expected exit 1 (124 is the timeout):\n{stderr}"
    );
    assert!(output.stdout.is_empty(), "{name}: printed something");
    assert!(
        stderr.contains(&case.expect),
        "{name} ({command}): expected {:?} in:\n{stderr}",
        case.expect
    );
    assert!(!stderr.contains("panicked"), "{name}: panicked:\n{stderr}");
    assert!(
        !stderr.contains("hunter2"),
        "{name}: a value reached stderr:\n{stderr}"
    );
    elapsed
}

#[test]
fn every_corpus_case_ends_in_its_clear_error_within_bounds() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/corpus");
    let mut cases: Vec<Case> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .map(|dir| Case {
            name: dir.file_name().unwrap().to_string_lossy().into_owned(),
            expect: std::fs::read_to_string(dir.join("expect"))
                .unwrap()
                .trim()
                .to_owned(),
            dir,
        })
        .collect();
    cases.sort_by(|a, b| a.name.cmp(&b.name));
    assert!(cases.len() >= 24, "the corpus went missing");

    // 50 MB of otherwise valid YAML: refused by size before any parsing.
    let huge = tempfile::tempdir().unwrap();
    let mut text = String::with_capacity(52 * 1024 * 1024);
    while text.len() < 50 * 1024 * 1024 {
        text.push_str("---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: filler, namespace: a}\ndata: {k: '0123456789abcdef0123456789abcdef'}\n");
    }
    std::fs::write(huge.path().join("huge.yaml"), text).unwrap();
    cases.push(Case {
        name: "huge-input (50 MB, generated)".into(),
        dir: huge.path().to_owned(),
        expect: "larger than the 32 MiB courier reads".into(),
    });

    let mut slowest = (Duration::ZERO, String::new());
    for case in &cases {
        // ESO's own refusals (a `server` file, see tests/cluster/strict.rs) read the same
        // in `check` as in `render`.
        if case.dir.join("server").is_file() {
            run_command(case, "check");
        }
        let elapsed = run(case);
        if elapsed > slowest.0 {
            slowest = (elapsed, case.name.clone());
        }
    }
    eprintln!(
        "{} corpus cases, slowest {} in {:?}",
        cases.len(),
        slowest.1,
        slowest.0
    );
}
