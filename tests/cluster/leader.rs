//! `run --leader-elect` with several processes against the real API server: one writer at
//! a time, failover after SIGKILL within the lease, release on SIGTERM, and a network pause
//! of the leader longer than the lease never leaves two writers.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::apply::Platform;
use crate::run::{http_get, poll_until, within};
use crate::support::{TestNamespace, control_plane};

const LEASE: &str = "4s";
const RENEW_DEADLINE: &str = "3s";
const RETRY: &str = "300ms";

/// A TCP relay between one courier and the API server that can drop everything, as a
/// network partition does: while paused, bytes in either direction are read and thrown
/// away; connections that lived through a pause are closed at their next byte after it.
struct Partition {
    address: String,
    paused: Arc<AtomicBool>,
    epoch: Arc<AtomicU64>,
}

impl Partition {
    async fn start(upstream: String) -> Partition {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let paused = Arc::new(AtomicBool::new(false));
        let epoch = Arc::new(AtomicU64::new(0));
        let (p, e) = (paused.clone(), epoch.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let Ok(server) = TcpStream::connect(&upstream).await else {
                    continue;
                };
                let born = e.load(Ordering::SeqCst);
                // Closing with linger 0 sends a reset, as a peer that lost the connection does.
                let _ = client.set_zero_linger();
                let _ = server.set_zero_linger();
                let (client_read, client_write) = client.into_split();
                let (server_read, server_write) = server.into_split();
                // Either direction noticing the partition closes both.
                let (reset, _) = tokio::sync::watch::channel(false);
                let reset = Arc::new(reset);
                let link = |reset: &Arc<tokio::sync::watch::Sender<bool>>| Link {
                    paused: p.clone(),
                    epoch: e.clone(),
                    born,
                    reset: reset.clone(),
                    reset_seen: reset.subscribe(),
                };
                tokio::spawn(relay(client_read, server_write, link(&reset)));
                tokio::spawn(relay(server_read, client_write, link(&reset)));
            }
        });
        Partition {
            address,
            paused,
            epoch,
        }
    }

    fn pause(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.paused.store(true, Ordering::SeqCst);
    }

    fn resume(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.paused.store(false, Ordering::SeqCst);
    }
}

/// One direction's view of its connection through the partition.
struct Link {
    paused: Arc<AtomicBool>,
    epoch: Arc<AtomicU64>,
    born: u64,
    reset: Arc<tokio::sync::watch::Sender<bool>>,
    reset_seen: tokio::sync::watch::Receiver<bool>,
}

async fn relay(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut link: Link,
) {
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let n = tokio::select! {
            read = from.read(&mut buffer) => match read {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            },
            _ = link.reset_seen.changed() => break,
        };
        if link.paused.load(Ordering::SeqCst) {
            continue;
        }
        if link.epoch.load(Ordering::SeqCst) != link.born {
            // Lived through a partition: reset the whole connection.
            break;
        }
        if to.write_all(&buffer[..n]).await.is_err() {
            break;
        }
    }
    let _ = link.reset.send(true);
}

/// One `courier run --leader-elect` process with its own metrics port and log file.
struct Replica {
    name: &'static str,
    child: Child,
    port: u16,
    log: PathBuf,
}

impl Replica {
    fn start(
        name: &'static str,
        platform: &Platform,
        lease_namespace: &str,
        kubeconfig: &Path,
        dir: &Path,
    ) -> Replica {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = dir.join(format!("{name}.log"));
        let child = Command::new(env!("CARGO_BIN_EXE_courier"))
            .args(["run", platform.manifests.path().to_str().unwrap()])
            .args(["--kubeconfig", kubeconfig.to_str().unwrap()])
            .args(["--instance", &format!("leader-{}", platform.id)])
            .args(["--refresh", "1h", "--debounce", "100ms"])
            .args(["--metrics-addr", &format!("127.0.0.1:{port}")])
            .args([
                "--leader-elect",
                "--leader-elect-namespace",
                lease_namespace,
            ])
            .args(["--leader-elect-lease-duration", LEASE])
            .args(["--leader-elect-renew-deadline", RENEW_DEADLINE])
            .args(["--leader-elect-retry-period", RETRY])
            .args(["--log-level", "info"])
            .env("POD_NAME", name)
            .env_remove("KUBECONFIG")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Replica {
            name,
            child,
            port,
            log,
        }
    }

    /// A metric's value, or `None` when the process does not answer.
    fn metric(&self, name: &str) -> Option<f64> {
        let (status, body) = http_get(self.port, "/metrics");
        if status != 200 {
            return None;
        }
        body.lines()
            .find(|line| line.split(' ').next() == Some(name))
            .and_then(|line| line.rsplit(' ').next()?.parse().ok())
    }

    fn leading(&self) -> bool {
        self.metric("courier_leader") == Some(1.0)
    }

    fn writes(&self) -> f64 {
        self.metric("courier_api_writes_total")
            .unwrap_or_else(|| panic!("{} serves no metrics:\n{}", self.name, self.log_text()))
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `at_unix_ms` of every log line with `event` ("started leading", "stopped leading").
    fn moments(&self, event: &str) -> Vec<u64> {
        self.log_text()
            .lines()
            .filter(|line| line.contains(event))
            .filter_map(|line| {
                let after = line.split("at_unix_ms=").nth(1)?;
                after
                    .split(|c: char| !c.is_ascii_digit())
                    .next()?
                    .parse()
                    .ok()
            })
            .collect()
    }

    fn signal(&self, signal: &str) {
        let sent = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
    }

    async fn wait_exit(&mut self) -> std::process::ExitStatus {
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "{} did not exit",
                self.name
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// As `within`, with the replicas' logs in the failure message.
async fn within_or_logs<F, Fut>(replicas: &[&Replica], limit: Duration, what: &str, check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    if poll_until(limit, check).await.is_some() {
        return;
    }
    let logs: Vec<String> = replicas
        .iter()
        .map(|r| format!("--- {}:\n{}", r.name, r.log_text()))
        .collect();
    panic!(
        "{what} did not happen within {limit:?}\n{}",
        logs.join("\n")
    );
}

fn kubeconfig_via(address: &str, dir: &Path) -> PathBuf {
    let original = std::fs::read_to_string(&control_plane().kubeconfig).unwrap();
    let server = control_plane().server();
    let rewritten = original.replace(server, &format!("https://{address}"));
    assert_ne!(rewritten, original, "the kubeconfig names {server}");
    let path = dir.join("via-partition.kubeconfig");
    std::fs::write(&path, rewritten).unwrap();
    path
}

#[tokio::test]
async fn one_leader_writes_failover_release_and_a_partition_never_makes_two_writers() {
    let platform = Platform::new("leader").await;
    let lease_namespace = TestNamespace::create(&platform.client, "leader-lease").await;
    let dir = tempfile::tempdir().unwrap();
    let first = platform.target("leader-1", true).await;

    let upstream = control_plane()
        .server()
        .trim_start_matches("https://")
        .to_owned();
    let partition = Partition::start(upstream).await;
    let partitioned = kubeconfig_via(&partition.address, dir.path());
    let direct = control_plane().kubeconfig.clone();

    // a leads (it reaches the API server through the relay); b stands by.
    let mut a = Replica::start(
        "a",
        &platform,
        &lease_namespace.name,
        &partitioned,
        dir.path(),
    );
    within(Duration::from_secs(15), "a leading and writing", || async {
        a.leading()
            && platform
                .value(&first.name, "creds", "password")
                .await
                .is_some()
    })
    .await;
    let mut b = Replica::start("b", &platform, &lease_namespace.name, &direct, dir.path());
    within(Duration::from_secs(10), "b standing by, ready", || async {
        http_get(b.port, "/readyz").0 == 200 && b.metric("courier_leader") == Some(0.0)
    })
    .await;

    // Exactly one writes.
    let second = platform.target("leader-2", true).await;
    within(
        Duration::from_secs(10),
        "the leader serving a new namespace",
        || async {
            platform
                .value(&second.name, "creds", "password")
                .await
                .is_some()
        },
    )
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(a.writes() >= 2.0, "a wrote {}", a.writes());
    assert_eq!(b.writes(), 0.0, "the standby wrote:\n{}", b.log_text());
    assert!(!b.leading());

    // A partition of the leader longer than the lease: b takes over, and a stopped
    // writing before b started.
    partition.pause();
    let paused_at = Instant::now();
    let third = platform.target("leader-3", true).await;
    let mut a_stopped_first = true;
    let takeover = within(
        Duration::from_secs(15),
        "b taking over from a partitioned a",
        || {
            let b_leads = b.leading();
            // Scraped after b: if b leads already, a must have stopped already.
            if b_leads && a.leading() {
                a_stopped_first = false;
            }
            async move { b_leads }
        },
    )
    .await;
    assert!(a_stopped_first, "a still led when b led:\n{}", a.log_text());
    within(
        Duration::from_secs(10),
        "b serving the namespace made during the partition",
        || async {
            platform
                .value(&third.name, "creds", "password")
                .await
                .is_some()
        },
    )
    .await;
    let a_stopped = *a
        .moments("stopped leading")
        .last()
        .expect("a logged that it stopped");
    let b_started = *b
        .moments("started leading")
        .last()
        .expect("b logged that it started");
    assert!(
        a_stopped < b_started,
        "a stopped at {a_stopped}, b started at {b_started} (unix ms)"
    );
    eprintln!(
        "partition: b led {takeover:?} after the pause; a stopped {} ms before b started (lease {LEASE}, renew deadline {RENEW_DEADLINE})",
        b_started - a_stopped
    );
    assert!(paused_at.elapsed() >= Duration::from_secs(3));

    // The partition heals: a sees b's lease and stays a standby; only b writes.
    partition.resume();
    let a_writes = a.writes();
    let fourth = platform.target("leader-4", true).await;
    within(
        Duration::from_secs(10),
        "b serving after the partition healed",
        || async {
            platform
                .value(&fourth.name, "creds", "password")
                .await
                .is_some()
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        a.writes(),
        a_writes,
        "the old leader wrote after the partition:\n{}",
        a.log_text()
    );
    assert!(!a.leading() && b.leading());

    // SIGKILL of the leader: a takes over within the lease duration (plus a retry).
    b.signal("-KILL");
    b.wait_exit().await;
    let failover = within(
        Duration::from_secs(15),
        "a taking over after b was killed",
        || async { a.leading() },
    )
    .await;
    let fifth = platform.target("leader-5", true).await;
    within_or_logs(
        &[&a],
        Duration::from_secs(10),
        "a writing after the failover",
        || async {
            platform
                .value(&fifth.name, "creds", "password")
                .await
                .is_some()
        },
    )
    .await;
    eprintln!("failover after SIGKILL: {failover:?} (lease {LEASE})");
    // Lease duration plus the retry period and its jitter, with room for a loaded machine.
    assert!(
        failover < Duration::from_secs(6),
        "failover took {failover:?}"
    );

    // SIGTERM releases the lease at once: c takes over well within the lease duration.
    let c = Replica::start("c", &platform, &lease_namespace.name, &direct, dir.path());
    within(Duration::from_secs(10), "c standing by", || async {
        c.metric("courier_leader") == Some(0.0)
    })
    .await;
    a.signal("-TERM");
    let terminated_at = Instant::now();
    let status = a.wait_exit().await;
    assert!(status.success(), "a exited {status:?}:\n{}", a.log_text());
    assert!(
        a.log_text().contains("released the leader lease"),
        "{}",
        a.log_text()
    );
    let handover = within(
        Duration::from_secs(10),
        "c taking over after SIGTERM",
        || async { c.leading() },
    )
    .await;
    let handover_total = terminated_at.elapsed();
    eprintln!("handover after SIGTERM: {handover_total:?} (lease {LEASE})");
    assert!(
        handover < Duration::from_secs(2),
        "c took {handover:?}: the lease was not released (it lasts {LEASE})"
    );
    for replica in [&a, &b, &c] {
        let log = replica.log_text();
        assert!(!log.contains("first-value"), "{}: {log}", replica.name);
    }
}
