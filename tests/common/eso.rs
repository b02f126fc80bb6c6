//! ESO's controller for the tests and benches that run it beside courier: started on a
//! control plane's kubeconfig, on free ports for its metrics and liveness endpoints, with
//! the caller's flags and environment, its output in a log file of the caller's.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// Who stops ESO's controller.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Supervision {
    /// testenv/watchdog.sh, which stops it when the test process is gone, however the
    /// test ended (for a controller nobody stops, on a shared plane); the returned child
    /// is the watchdog, which stops the controller on TERM.
    Watchdog,
    /// None: the returned child is the controller itself, which the caller stops.
    Caller,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Starts ESO's controller `binary` on the control plane of `kubeconfig` with
/// `--metrics-addr` and `--live-addr` on free ports, then `flags`, and `env` beside
/// `KUBECONFIG`. What it logs goes to `log`: its stderr, in a file created anew when the
/// caller stops it; its stdout and stderr appended, under the watchdog.
pub fn start_eso(
    binary: &Path,
    kubeconfig: &Path,
    log: &Path,
    flags: &[&str],
    env: &[(&str, &str)],
    supervision: Supervision,
) -> Child {
    let mut command = match supervision {
        Supervision::Watchdog => {
            let mut command =
                Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("testenv/watchdog.sh"));
            command
                .arg(std::process::id().to_string())
                .arg(log)
                .arg("--")
                .arg(binary)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            command
        }
        Supervision::Caller => {
            let mut command = Command::new(binary);
            let file = std::fs::File::create(log)
                .unwrap_or_else(|e| panic!("cannot create ESO's log {}: {e}", log.display()));
            command.stdout(Stdio::null()).stderr(file);
            command
        }
    };
    command
        .args([
            "--metrics-addr",
            &format!("127.0.0.1:{}", free_port()),
            "--live-addr",
            &format!("127.0.0.1:{}", free_port()),
        ])
        .args(flags)
        .env("KUBECONFIG", kubeconfig)
        .envs(env.iter().copied())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start ESO's controller {}: {e}", binary.display()))
}

/// `testenv/eso-v2.sh what...`: ESO v2.9.0's controller (`["controller"]`, or with build tags
/// `["controller", "aws"]`), built once and cached, or its unpacked source (`["source"]`): the
/// path it prints. A cold build's progress and any error show on the test's stderr.
pub fn eso_v2(what: &[&str]) -> PathBuf {
    let output = Command::new(Path::new(env!("CARGO_MANIFEST_DIR")).join("testenv/eso-v2.sh"))
        .args(what)
        .stderr(Stdio::inherit())
        .output()
        .expect("testenv/eso-v2.sh runs");
    assert!(
        output.status.success(),
        "testenv/eso-v2.sh {} failed (its error is above)",
        what.join(" ")
    );
    PathBuf::from(String::from_utf8(output.stdout).unwrap().trim())
}
