//! A real redis-server for one test, on a free port, stopped when dropped.

use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct RedisServer {
    child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl RedisServer {
    pub fn start() -> Self {
        Self::start_with(&["--appendonly", "no"])
    }

    /// Starts redis-server with extra arguments (e.g. AOF on), in its own directory. A free
    /// port can be taken by another test's server between choosing it and binding it, so the
    /// server that answers is checked to be ours (its pid), else another port is tried.
    pub fn start_with(extra: &[&str]) -> Self {
        let mut dir = tempfile::tempdir().unwrap();
        for _ in 0..20 {
            match Self::try_start(dir, free_port(), extra) {
                Ok(server) => return server,
                Err(d) => dir = d,
            }
        }
        panic!("redis-server did not start on any of 20 free ports");
    }

    /// Restarts a server on its directory and port (the port is known to be ours).
    pub fn start_in(dir: tempfile::TempDir, port: u16, extra: &[&str]) -> Self {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut dir = dir;
        loop {
            match Self::try_start(dir, port, extra) {
                Ok(server) => return server,
                Err(d) if Instant::now() < deadline => {
                    dir = d;
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(_) => panic!("redis-server did not start again on port {port}"),
            }
        }
    }

    /// Starts a server and waits until it answers as itself; gives the directory back if it
    /// did not (port taken).
    fn try_start(
        dir: tempfile::TempDir,
        port: u16,
        extra: &[&str],
    ) -> Result<Self, tempfile::TempDir> {
        let child = Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
            ])
            .arg("--dir")
            .arg(dir.path())
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server is not installed: run scripts/install-test-deps");
        let mut server = RedisServer { child, port, dir };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if server.child.try_wait().ok().flatten().is_some() {
                return Err(server.stop().0); // it exited: the port was taken
            }
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                match server.answering_pid() {
                    Some(pid) if pid == server.child.id() => return Ok(server),
                    Some(_) => return Err(server.stop().0), // another test's server
                    None => {}
                }
            }
            if Instant::now() > deadline {
                return Err(server.stop().0);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The pid of the server answering on our port (`None` while it is still loading).
    fn answering_pid(&self) -> Option<u32> {
        let client = redis::Client::open(self.url()).ok()?;
        let mut conn = client
            .get_connection_with_timeout(Duration::from_secs(1))
            .ok()?;
        let info: String = redis::cmd("INFO").arg("server").query(&mut conn).ok()?;
        info.lines()
            .find_map(|l| l.strip_prefix("process_id:"))
            .and_then(|v| v.trim().parse().ok())
    }

    /// The server's process id (to pause it with SIGSTOP, as a stalled machine would).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// Stops the server and hands back its directory (to restart it on the same data).
    pub fn stop(mut self) -> (tempfile::TempDir, u16) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let port = self.port;
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap());
        (dir, port)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
