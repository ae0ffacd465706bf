//! `quantum-governor serve` in embedded mode as a real process on a free port, with its
//! stdout and stderr captured to files, killed when dropped.

use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

pub struct EmbeddedServer {
    child: Child,
    pub port: u16,
    pub stdout: PathBuf,
    pub stderr: PathBuf,
    _dir: tempfile::TempDir,
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Limits that would keep a short test from filling the slots (rate limits, correlation).
pub const OPEN_LIMITS: [(&str, &str); 3] = [
    ("GOV_MAX_EXEC_PER_5MIN", "100"),
    ("GOV_MAX_EXEC_PER_HOUR", "100"),
    ("GOV_MAX_CORRELATION", "1.0"),
];

impl EmbeddedServer {
    pub fn start(env: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let (stdout, stderr) = (dir.path().join("stdout.log"), dir.path().join("stderr.log"));
        let port = free_port();
        let mut cmd = super::governor_command();
        cmd.args(["serve", "--http", &format!("127.0.0.1:{port}")])
            .stdout(Stdio::from(std::fs::File::create(&stdout).unwrap()))
            .stderr(Stdio::from(std::fs::File::create(&stderr).unwrap()));
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().unwrap();
        let server = EmbeddedServer {
            child,
            port,
            stdout,
            stderr,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "serve did not listen: {}",
                server.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        server
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Everything the process wrote so far.
    pub fn logs(&self) -> String {
        let out = std::fs::read_to_string(&self.stdout).unwrap_or_default();
        let err = std::fs::read_to_string(&self.stderr).unwrap_or_default();
        format!("{out}{err}")
    }

    /// POSTs a plan; returns the status and the JSON answer.
    pub fn post_plan(&self, plan: &serde_json::Value) -> (u16, serde_json::Value) {
        let res = ureq::post(&self.url("/v1/plans")).send_json(plan.clone());
        let res = match res {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("POST /v1/plans: {e}"),
        };
        (res.status(), res.into_json().unwrap())
    }

    pub fn get_json(&self, path: &str) -> serde_json::Value {
        ureq::get(&self.url(path))
            .call()
            .unwrap()
            .into_json()
            .unwrap()
    }

    /// Stops the process and returns everything it wrote.
    pub fn stop(mut self) -> String {
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.logs()
    }
}

impl Drop for EmbeddedServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The seven symbols of the bundled data, in an order that fills slots.
pub const DATA_SYMBOLS: [&str; 7] = [
    "ETHUSDT", "SOLUSDT", "BNBUSDT", "XRPUSDT", "ADAUSDT", "DOGEUSDT", "BTCUSDT",
];

/// A small open on `symbol` (a hundredth of a unit: under every notional cap).
pub fn small_open(id: &str, symbol: &str) -> serde_json::Value {
    serde_json::json!({"plan_id": id, "symbol": symbol, "action": "OPEN_LONG",
                       "decision": "EXECUTE", "qty": "0.001", "score": "70"})
}
