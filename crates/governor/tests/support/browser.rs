//! A real headless Chromium (Debian's chromium, driven by chromedriver over WebDriver; both
//! installed by scripts/install-test-deps) for the tests of pages people look at.

use super::embedded_server::free_port;
use serde_json::{json, Value};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// chromedriver on a free port, stopped when dropped.
pub struct Driver {
    child: Child,
    base: String,
}

impl Driver {
    /// Starts chromedriver and waits until it is ready.
    pub fn start() -> Driver {
        let port = free_port();
        let child = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver is not installed: run scripts/install-test-deps");
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ready = ureq::get(&format!("{base}/status"))
                .call()
                .ok()
                .and_then(|r| r.into_json::<Value>().ok())
                .is_some_and(|v| v["value"]["ready"] == true);
            if ready {
                break;
            }
            assert!(Instant::now() < deadline, "chromedriver did not start");
            std::thread::sleep(Duration::from_millis(100));
        }
        Driver { child, base }
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let req = ureq::request(method, &format!("{}{path}", self.base));
        let res = match body {
            Some(b) => req.send_json(b),
            None => req.call(),
        };
        let res = match res {
            Ok(r) => r,
            Err(ureq::Error::Status(code, r)) => {
                panic!(
                    "{method} {path}: {code} {}",
                    r.into_string().unwrap_or_default()
                )
            }
            Err(e) => panic!("{method} {path}: {e}"),
        };
        res.into_json::<Value>().unwrap()["value"].clone()
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One headless Chromium session, closed when dropped.
pub struct Session<'a> {
    driver: &'a Driver,
    id: String,
}

impl Session<'_> {
    /// Opens a session.
    pub fn new(driver: &Driver) -> Session<'_> {
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": "/usr/bin/chromium",
                "args": ["--headless=new", "--no-sandbox", "--disable-gpu",
                         "--disable-dev-shm-usage", "--window-size=1366,900"]
            }
        }}});
        let v = driver.call("POST", "/session", Some(caps));
        Session {
            driver,
            id: v["sessionId"].as_str().unwrap().to_owned(),
        }
    }

    /// Loads `url`.
    pub fn go(&self, url: &str) {
        self.driver.call(
            "POST",
            &format!("/session/{}/url", self.id),
            Some(json!({"url": url})),
        );
    }

    /// Runs `script` in the page; its return value.
    pub fn eval(&self, script: &str) -> Value {
        let body = json!({"script": script, "args": []});
        self.driver.call(
            "POST",
            &format!("/session/{}/execute/sync", self.id),
            Some(body),
        )
    }

    /// Waits until `script` returns something for which `ok` holds.
    pub fn wait_for(&self, script: &str, ok: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let v = self.eval(script);
            if ok(&v) {
                return v;
            }
            assert!(
                Instant::now() < deadline,
                "{script} never satisfied; last: {v}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// A PNG of the window.
    pub fn screenshot(&self) -> Vec<u8> {
        use base64::Engine;
        let v = self
            .driver
            .call("GET", &format!("/session/{}/screenshot", self.id), None);
        base64::engine::general_purpose::STANDARD
            .decode(v.as_str().unwrap())
            .unwrap()
    }
}

impl Drop for Session<'_> {
    fn drop(&mut self) {
        let _ = ureq::delete(&format!("{}/session/{}", self.driver.base, self.id)).call();
    }
}
