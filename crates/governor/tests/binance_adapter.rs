//! The Binance adapter against a local server answering with Binance's documented responses:
//! every endpoint the governor uses, each error code mapped to its typed error, 429 waited
//! out, 418 respected, a missing field named, and no key or secret in any output.

mod support;

use governor_core::time::Timestamp;
use governor_core::types::{Side, Symbol};
use quantum_governor::exchange::binance::{BinanceClient, BinanceError, BinanceVenue, Credentials};
use quantum_governor::exchange::{Exchange, OrderError, OrderRequest, OrderState};
use std::sync::Arc;
use std::time::Instant;
use support::fake_binance::{Canned, FakeBinance, KEY, SECRET};

fn sym(s: &str) -> Symbol {
    Symbol::parse(s).unwrap()
}

fn client(fake: &FakeBinance) -> BinanceClient {
    BinanceClient::new(&fake.url, Some(Credentials::new(KEY, SECRET)))
}

fn documented() -> FakeBinance {
    let fake = FakeBinance::start(None);
    fake.state.lock().unwrap().documented = true;
    fake
}

#[test]
fn every_endpoint_reads_binances_documented_answer() {
    let fake = documented();
    let c = client(&fake);
    let p = c.positions().unwrap();
    assert_eq!(p.len(), 1);
    assert_eq!(
        (p[0].symbol.as_str(), p[0].side, p[0].qty),
        ("BTCUSDT", Side::Long, 0.001)
    );
    assert_eq!(
        (p[0].entry_price, p[0].mark_price, p[0].leverage),
        (50_000.0, 51_000.0, 20)
    );
    let a = c.account().unwrap();
    assert_eq!(
        (a.equity, a.available, a.initial_margin),
        (23.72469206, 23.72469206, 0.0)
    );
    let k = c.klines(&sym("BTCUSDT"), 1).unwrap();
    assert_eq!(k.len(), 1);
    assert_eq!(
        (k[0].open_time.millis(), k[0].open, k[0].close),
        (1_499_040_000_000, 0.0163479, 0.015771)
    );
    let f = c.filters(&sym("BTCUSDT")).unwrap();
    assert_eq!(
        (
            f.tick_size.value(),
            f.step_size.value(),
            f.min_qty,
            f.min_notional
        ),
        (0.1, 0.001, 0.001, 100.0)
    );
    let brackets = c.leverage_brackets().unwrap();
    let eth = brackets[&sym("ETHUSDT")].tier_for(9_999.0).unwrap().1;
    assert_eq!(
        (
            eth.initial_leverage,
            eth.notional_cap,
            eth.maint_margin_ratio,
            eth.cum
        ),
        (75, 10_000.0, 0.0065, 0.0)
    );
    assert!(
        brackets[&sym("ETHUSDT")].tier_for(10_000.0).is_none(),
        "the documented answer lists one tier"
    );
    assert_eq!(c.used_weight(), 17, "the weight header is tracked");
    assert!(matches!(
        c.filters(&sym("ETHUSDT")),
        Err(BinanceError::InvalidSymbol { .. })
    ));

    // A market order: NEW on placement is not an outcome yet; asked for by its client id it
    // is FILLED, with the commission of its trades.
    let mut venue = BinanceVenue {
        client: Arc::new(client(&fake)),
    };
    let placed = venue.place_order(&OrderRequest {
        client_id: governor_core::types::PlanId::parse("qg-open-1").unwrap(),
        symbol: sym("BTCUSDT"),
        side: Side::Long,
        qty: 0.002,
        reduce_only: false,
        leverage: 5,
    });
    assert!(
        matches!(&placed, Err(OrderError::Unknown(why)) if why.contains("accepted as NEW")),
        "{placed:?}"
    );
    let state = venue.order_status(&sym("BTCUSDT"), "qg-open-1").unwrap();
    let OrderState::Final {
        status,
        fill: Some(fill),
    } = state
    else {
        panic!("not final: {state:?}");
    };
    assert_eq!(status, "FILLED");
    assert_eq!((fill.qty, fill.avg_price), (0.002, 50_012.30));
    // The stand-in filled at 50,000 (its default price) and charged 0.05 %: 0.05 USDT.
    assert!((fill.fee.unwrap() - 0.05).abs() < 1e-9, "{fill:?}");
    assert_eq!(fill.realized_pnl, Some(0.0));
    assert_eq!(fake.hits("POST /fapi/v1/order"), 1);
    assert_eq!(fake.hits("GET /fapi/v1/order"), 1, "asked once: FILLED");
    assert_eq!(
        venue.order_status(&sym("BTCUSDT"), "never-sent"),
        Ok(OrderState::Absent),
        "-2013 is an answer: no such order"
    );
    let sent = fake
        .state
        .lock()
        .unwrap()
        .queries
        .iter()
        .find(|q| q.contains("type=MARKET"))
        .cloned()
        .unwrap();
    assert!(sent.starts_with("symbol=BTCUSDT&side=BUY&type=MARKET&quantity=0.002&reduceOnly=false&newClientOrderId=qg-open-1"), "{sent}");
}

#[test]
fn each_error_code_maps_to_its_typed_error() {
    let fake = FakeBinance::start(None);
    let c = client(&fake);
    for (code, http) in [
        (-1022, 400),
        (-2019, 400),
        (-2022, 400),
        (-4164, 400),
        (-1121, 400),
    ] {
        fake.inject("/fapi/v2/account", Canned::error(code, http));
        let e = c.account().unwrap_err();
        assert_eq!(e.code(), Some(code), "{e}");
        let typed = match code {
            -1022 => matches!(e, BinanceError::Signature { .. }),
            -2019 => matches!(e, BinanceError::MarginInsufficient { .. }),
            -2022 => matches!(e, BinanceError::ReduceOnlyRejected { .. }),
            -4164 => matches!(e, BinanceError::MinNotional { .. }),
            _ => matches!(e, BinanceError::InvalidSymbol { .. }),
        };
        assert!(typed, "{code}: {e:?}");
    }
    // -1021: the clock is re-synchronised and the request sent once more.
    fake.inject("/fapi/v2/account", Canned::error(-1021, 400));
    let before = fake.hits("GET /fapi/v1/time");
    assert!(c.account().is_ok());
    assert_eq!(fake.hits("GET /fapi/v1/time"), before + 1);
    // A server clock 30 s ahead: -1021 until synced, then fine.
    fake.state.lock().unwrap().skew_ms = 30_000;
    assert!(c.account().is_ok(), "re-synced on -1021");
    assert!(
        (c.clock_offset_ms() - 30_000).abs() < 1_000,
        "{}",
        c.clock_offset_ms()
    );
    // Twice -1021 in a row: the error comes through, typed.
    fake.inject("/fapi/v2/account", Canned::error(-1021, 400));
    fake.inject("/fapi/v2/account", Canned::error(-1021, 400));
    assert!(matches!(c.account(), Err(BinanceError::Timestamp { .. })));
}

#[test]
fn a_429_is_waited_out_and_a_418_stops_all_requests() {
    let fake = FakeBinance::start(None);
    let c = client(&fake);
    fake.inject("/fapi/v2/account", Canned::error(-1003, 429));
    let started = Instant::now();
    assert!(c.account().is_ok(), "answered after the wait");
    assert!(
        started.elapsed().as_secs_f64() >= 2.0,
        "Retry-After: 2 was waited out"
    );
    fake.inject("/fapi/v2/account", Canned::error(-1003, 418));
    let e = c.account().unwrap_err();
    assert!(
        matches!(
            e,
            BinanceError::Banned {
                retry_after_secs: 120,
                ..
            }
        ),
        "{e:?}"
    );
    let hits = fake.hits("GET /fapi/v2/account");
    let refused = c.account().unwrap_err();
    assert!(matches!(refused, BinanceError::Refused(_)), "{refused:?}");
    assert_eq!(
        fake.hits("GET /fapi/v2/account"),
        hits,
        "nothing sent during a ban"
    );
}

#[test]
fn a_missing_field_or_the_raw_documented_text_is_an_error_naming_it() {
    let fake = FakeBinance::start(None);
    let c = client(&fake);
    let mut account = support::fake_binance::fixture("GET_fapi_v2_account.json");
    account.as_object_mut().unwrap().remove("availableBalance");
    fake.inject("/fapi/v2/account", Canned::ok(account.to_string()));
    let e = c.account().unwrap_err().to_string();
    assert!(
        e.contains("availableBalance") && e.contains("missing"),
        "{e}"
    );
    let raw = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/binance/docs_raw/GET_fapi_v2_account.docs_raw.txt"
    ))
    .unwrap();
    fake.inject("/fapi/v2/account", Canned::ok(raw));
    let e = c.account().unwrap_err().to_string();
    assert!(
        e.contains("/fapi/v2/account") && e.contains("not JSON"),
        "{e}"
    );
    let mut positions = support::fake_binance::fixture("position_risk_v2_open.json");
    positions[0]["markPrice"] = serde_json::json!("NaN");
    fake.inject("/fapi/v2/positionRisk", Canned::ok(positions.to_string()));
    let e = c.positions().unwrap_err().to_string();
    assert!(e.contains("markPrice") && e.contains("NaN"), "{e}");
}

#[test]
fn no_key_or_secret_reaches_an_error_a_debug_print_or_a_request_url() {
    let fake = FakeBinance::start(None);
    let c = client(&fake);
    let mut texts = vec![
        format!("{c:?}"),
        format!("{:?}", Credentials::new(KEY, SECRET)),
    ];
    for (code, http) in [(-1022, 400), (-2019, 400), (-1003, 418)] {
        fake.inject("/fapi/v2/account", Canned::error(code, http));
        let e = c.account().unwrap_err();
        texts.push(e.to_string());
        texts.push(format!("{e:?}"));
    }
    let wrong = BinanceClient::new(&fake.url, Some(Credentials::new(KEY, "not-the-secret")));
    let e = wrong.account().unwrap_err();
    assert!(matches!(e, BinanceError::Signature { .. }));
    texts.push(format!("{e} {e:?}"));
    let nowhere = BinanceClient::new("http://127.0.0.1:1", Some(Credentials::new(KEY, SECRET)));
    let e = nowhere.account().unwrap_err();
    assert!(matches!(e, BinanceError::Transport { .. }), "{e:?}");
    texts.push(format!("{e} {e:?}"));
    let missing =
        Credentials::from_env(true, &[("BINANCE_API_KEY".into(), KEY.into())]).unwrap_err();
    texts.push(missing);
    for t in &texts {
        assert!(
            !t.contains(KEY) && !t.contains(SECRET),
            "a secret leaked: {t}"
        );
        assert!(!t.contains("signature="), "a signed URL leaked: {t}");
    }
    for q in &fake.state.lock().unwrap().queries {
        assert!(
            !q.contains(SECRET) && !q.contains(KEY),
            "sent in the URL: {q}"
        );
    }
}

fn bundled() -> std::path::PathBuf {
    std::path::PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../data/klines"))
}

#[test]
fn klines_are_fetched_once_per_bar_and_stale_data_fails_closed_with_its_age() {
    use quantum_governor::clock::wall_clock;
    use quantum_governor::exchange::binance::market::BinanceMarket;
    use quantum_governor::inputs::InputsSource;
    let fake = FakeBinance::start(Some(&bundled()));
    let venue = BinanceVenue {
        client: Arc::new(client(&fake)),
    };
    let symbols = vec![sym("BTCUSDT"), sym("ETHUSDT")];
    let market = BinanceMarket::new(venue, Arc::new(move || symbols.clone()), 100);
    let now = wall_clock();
    for i in 0..5 {
        let inputs = market.inputs(Timestamp(now.millis() + i * 100));
        assert!(inputs.market.contains_key(&sym("ETHUSDT")));
        assert!(inputs.exchange.is_some());
    }
    assert_eq!(
        fake.hits("GET /fapi/v1/klines"),
        2,
        "one fetch per symbol for the bar"
    );
    assert_eq!(
        fake.hits("GET /fapi/v2/account"),
        1,
        "the account is reused for 2 s"
    );

    // Three hours later the exchange still has nothing newer: the data is stale, and an open
    // is refused with its age in the trace.
    let later = Timestamp(now.millis() + 3 * 3_600_000);
    let inputs = market.inputs(later);
    assert_eq!(
        fake.hits("GET /fapi/v1/klines"),
        4,
        "a new bar: fetched again"
    );
    let cfg = governor_core::Config::default();
    let store = Arc::new(quantum_governor::MemoryStore::new(3600));
    store.update(|st| st.policy_universe = Some(r#"["ETHUSDT"]"#.to_owned()));
    let gov = quantum_governor::Governor::new(Arc::new(cfg), store);
    let fields: Vec<(String, String)> = [
        ("plan_id", "stale-1"),
        ("symbol", "ETHUSDT"),
        ("action", "OPEN_LONG"),
        ("decision", "EXECUTE"),
        ("qty", "0.01"),
    ]
    .iter()
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    let quantum_governor::Submission::Decided { decision, .. } =
        gov.submit(&fields, &inputs, later)
    else {
        panic!("decided")
    };
    assert_eq!(
        decision.verdict.reason().map(|r| r.code()),
        Some("market_data_unavailable")
    );
    let trace = decision.trace.to_json();
    assert!(trace.contains("kline_age_secs"), "{trace}");
}

#[test]
fn leverage_brackets_are_fetched_at_start_then_hourly_and_a_failure_keeps_the_last_good_table() {
    use quantum_governor::clock::wall_clock;
    use quantum_governor::exchange::binance::market::BinanceMarket;
    use quantum_governor::inputs::InputsSource;
    let fake = FakeBinance::start(Some(&bundled()));
    let gateway = Canned {
        status: 503,
        headers: vec![],
        body: "<html>502 Bad Gateway</html>".to_owned(),
    };
    fake.inject("/fapi/v1/leverageBracket", gateway.clone());
    let venue = BinanceVenue {
        client: Arc::new(client(&fake)),
    };
    let symbols = vec![sym("BTCUSDT"), sym("ETHUSDT")];
    let market = BinanceMarket::new(venue, Arc::new(move || symbols.clone()), 100);
    let eth_tiers = |at: i64| {
        market.inputs(Timestamp(at)).market[&sym("ETHUSDT")]
            .brackets
            .clone()
    };
    let now = wall_clock().millis();
    // Never fetched: no tiers, so opens fail closed (the sizing gate's own test shows how).
    assert_eq!(eth_tiers(now), None);
    assert_eq!(fake.hits("GET /fapi/v1/leverageBracket"), 1);
    // Not retried within the minute; retried after it, and read whole.
    assert_eq!(eth_tiers(now + 59_000), None);
    assert_eq!(fake.hits("GET /fapi/v1/leverageBracket"), 1);
    let tiers = eth_tiers(now + 61_000).expect("fetched");
    assert_eq!(tiers.tier_for(299_999.0).unwrap().1.initial_leverage, 150);
    assert_eq!(fake.hits("GET /fapi/v1/leverageBracket"), 2);
    // Kept for the hour; an hour later fetched again. That answer is bad (a negative `cum`):
    // refused whole, and the last good table stays.
    assert!(eth_tiers(now + 61_000 + 3_599_000).is_some());
    assert_eq!(fake.hits("GET /fapi/v1/leverageBracket"), 2);
    let bad = r#"[{"symbol":"ETHUSDT","brackets":[{"bracket":1,"initialLeverage":75,
        "notionalCap":10000,"notionalFloor":0,"maintMarginRatio":0.0065,"cum":-1}]}]"#;
    fake.inject("/fapi/v1/leverageBracket", Canned::ok(bad.to_owned()));
    assert_eq!(eth_tiers(now + 61_000 + 3_600_000), Some(tiers));
    assert_eq!(fake.hits("GET /fapi/v1/leverageBracket"), 3);
}
