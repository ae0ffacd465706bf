//! A thread that keeps dying is never hidden: the `serve` process exits non-zero (70) so that
//! its own supervisor (systemd, a container runtime) restarts it whole. Provoked for real: the
//! HTTP server's address is taken, so its thread fails at every start.

mod support;

use std::time::{Duration, Instant};
use support::redis_server::RedisServer;

#[test]
fn serve_exits_70_when_a_thread_keeps_dying() {
    let redis = RedisServer::start();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let mut child = support::governor_command()
        .args([
            "serve",
            "--redis",
            &redis.url(),
            "--workers",
            "1",
            "--http",
            &addr,
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "serve kept running with a dead HTTP thread"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let out = child.wait_with_output().unwrap();
    let log = String::from_utf8_lossy(&out.stdout);
    assert_eq!(status.code(), Some(70), "{log}");
    assert_eq!(log.matches("THREAD_DIED thread=http").count(), 5, "{log}");
    assert!(
        log.contains("SUPERVISOR_GAVE_UP thread=http exit_code=70"),
        "{log}"
    );
    drop(taken);
}
