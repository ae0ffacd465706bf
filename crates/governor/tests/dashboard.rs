//! The dashboard in a real headless Chromium (Debian's chromium, driven by chromedriver over
//! WebDriver; both installed by scripts/install-test-deps): fill the slots of an embedded
//! server, get one plan blocked, and check what the page shows. The screenshot is saved under
//! the test's output (`target/tmp/dashboard.png`).

mod support;

use serde_json::{json, Value};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use support::embedded_server::{free_port, small_open, EmbeddedServer, DATA_SYMBOLS, OPEN_LIMITS};

struct Driver {
    child: Child,
    base: String,
}

impl Driver {
    fn start() -> Driver {
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

struct Session<'a> {
    driver: &'a Driver,
    id: String,
}

impl Session<'_> {
    fn new(driver: &Driver) -> Session<'_> {
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

    fn go(&self, url: &str) {
        self.driver.call(
            "POST",
            &format!("/session/{}/url", self.id),
            Some(json!({"url": url})),
        );
    }

    fn eval(&self, script: &str) -> Value {
        let body = json!({"script": script, "args": []});
        self.driver.call(
            "POST",
            &format!("/session/{}/execute/sync", self.id),
            Some(body),
        )
    }

    /// Waits until `script` returns something for which `ok` holds.
    fn wait_for(&self, script: &str, ok: impl Fn(&Value) -> bool) -> Value {
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

    fn screenshot(&self) -> Vec<u8> {
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

#[test]
fn the_dashboard_shows_full_slots_and_the_blocked_plans_reason() {
    let server = EmbeddedServer::start(&OPEN_LIMITS);
    let desired = server.get_json("/v1/stats")["desired_slots"]
        .as_u64()
        .unwrap() as usize;
    assert!(desired < DATA_SYMBOLS.len(), "{desired} desired slots");
    for (i, s) in DATA_SYMBOLS.iter().take(desired).enumerate() {
        let (status, d) = server.post_plan(&small_open(&format!("fill-{i}"), s));
        assert_eq!((status, d["verdict"].as_str()), (200, Some("ALLOW")), "{d}");
    }
    let (_, blocked) = server.post_plan(&small_open("one-too-many", DATA_SYMBOLS[desired]));
    assert_eq!(blocked["reason"], "slots_full", "{blocked}");

    let driver = Driver::start();
    let session = Session::new(&driver);
    session.go(&server.url("/"));
    let gauge = session.wait_for(
        "return document.getElementById('slots-value').textContent",
        |v| v.as_str().is_some_and(|t| !t.contains('–')),
    );
    assert_eq!(gauge, format!("{desired}/{desired}"));
    let row = session.wait_for(
        "const li = document.querySelector('#feed li[data-plan=\"one-too-many\"]'); return li ? li.textContent : null",
        |v| v.is_string(),
    );
    assert!(row.as_str().unwrap().contains("slots_full"), "{row}");
    assert!(row.as_str().unwrap().contains("BLOCK"), "{row}");
    let state = session.eval("return document.getElementById('state').textContent");
    assert_eq!(state, "ACTIVE");
    let feed_len = session.eval("return document.querySelectorAll('#feed li').length");
    assert_eq!(feed_len.as_u64().unwrap() as usize, desired + 1);
    // The liquidation card: the account margin ratio /v1/stats reports, with both lines.
    let liq = &server.get_json("/v1/stats")["liquidation"];
    let ratio = liq["margin_ratio"]
        .as_f64()
        .expect("the paper account has a ratio");
    let shown = session.eval("return document.getElementById('liq-ratio').textContent");
    assert_eq!(shown, format!("{:.1}%", ratio * 100.0));
    let detail = session.eval("return document.getElementById('liq-detail').textContent");
    let detail = detail.as_str().unwrap();
    assert!(
        detail.contains("opens refused above 5.0%") && detail.contains("de-risk above 10.0%"),
        "{detail}"
    );
    let rows = session.eval("return document.querySelectorAll('#liq-positions tr').length");
    assert_eq!(
        rows.as_u64().unwrap() as usize,
        liq["positions"].as_array().unwrap().len()
    );

    let png = session.screenshot();
    assert!(png.starts_with(b"\x89PNG"), "a PNG screenshot");
    let out = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard.png");
    std::fs::write(&out, png).unwrap();
    println!("screenshot: {}", out.display());
}
