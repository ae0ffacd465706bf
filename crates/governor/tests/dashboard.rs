//! The dashboard in a real headless Chromium (Debian's chromium, driven by chromedriver over
//! WebDriver; both installed by scripts/install-test-deps): fill the slots of an embedded
//! server, get one plan blocked, and check what the page shows. The screenshot is saved under
//! the test's output (`target/tmp/dashboard.png`).

mod support;

use support::browser::{Driver, Session};
use support::embedded_server::{small_open, EmbeddedServer, DATA_SYMBOLS, OPEN_LIMITS};

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
