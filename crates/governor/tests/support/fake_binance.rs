//! A local HTTP server answering with Binance's documented responses (the files under
//! `tests/binance/`), checking signatures and timestamps as Binance does, filling market
//! orders (NEW on placement, FILLED when asked for, with their trades' commission and realized
//! PnL), and failing the ways Binance documents: injected error answers before anything
//! happens, and faults *after* the order took effect — a 5xx such as -1007, an answer later
//! than the client's timeout, a connection cut in the middle of the answer, a partial fill that
//! then expires.

use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use governor_core::market::{Kline, BAR_MS};
use governor_core::types::Symbol;
use quantum_governor::exchange::binance::sign::signature;
use serde_json::{json, Value};
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

pub const KEY: &str = "test-api-key-QG-7d1e44";
pub const SECRET: &str = "test-api-secret-QG-c0ffee42";

pub fn fixture(name: &str) -> Value {
    let path = format!("{}/tests/binance/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// An injected answer.
#[derive(Clone, Debug)]
pub struct Canned {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Canned {
    /// The `errors.json` entry with this code (and HTTP status, to tell 429 from 418).
    pub fn error(code: i64, http: u16) -> Canned {
        let all = fixture("errors.json");
        let e = all
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["body"]["code"] == code && e["http"] == http)
            .unwrap_or_else(|| panic!("no documented error {code}/{http}"))
            .clone();
        Canned {
            status: http,
            headers: e["headers"]
                .as_object()
                .map(|h| {
                    h.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
                        .collect()
                })
                .unwrap_or_default(),
            body: e["body"].to_string(),
        }
    }

    pub fn ok(body: String) -> Canned {
        Canned {
            status: 200,
            headers: vec![],
            body,
        }
    }
}

/// What goes wrong with the next order *after* it took effect at the exchange.
#[derive(Clone, Debug)]
pub enum Fault {
    /// The order fills; the answer is this error (e.g. 503 -1007 "execution status unknown").
    AnswerAfterFill(Canned),
    /// The order fills; the answer comes only after this long.
    LateAfterFill(std::time::Duration),
    /// The order fills; the connection is cut in the middle of the answer.
    ResetAfterFill,
    /// This fraction of the order fills, then it expires (status EXPIRED).
    PartialThenExpired(f64),
}

#[derive(Debug, Clone)]
pub struct Order {
    pub symbol: String,
    pub side: String,
    pub qty: f64,
    pub reduce_only: bool,
    pub client_id: String,
    pub price: f64,
    pub order_id: i64,
    /// The status a query answers with (FILLED, or EXPIRED after a partial fill).
    pub status: String,
    /// What filled.
    pub executed: f64,
    /// Commission charged (USDT).
    pub commission: f64,
    /// Realized PnL of the fill before fees.
    pub realized: f64,
}

/// The commission rate the stand-in charges (Binance's default taker fee).
pub const TAKER_FEE: f64 = 0.0005;

#[derive(Default)]
pub struct FakeState {
    /// Next answers per path, served before the normal one.
    pub inject: BTreeMap<String, VecDeque<Canned>>,
    /// Requests per "METHOD path".
    pub hits: BTreeMap<String, usize>,
    /// Every accepted order.
    pub orders: Vec<Order>,
    /// Positions: symbol → signed amount, entry.
    pub positions: BTreeMap<String, (f64, f64)>,
    /// Server clock − real clock (ms), to provoke -1021.
    pub skew_ms: i64,
    /// Klines per symbol, on the wall clock.
    pub klines: BTreeMap<Symbol, Vec<Kline>>,
    /// Serve the documented example files instead of the live state.
    pub documented: bool,
    /// Every query string received (to check that no secret is ever sent).
    pub queries: Vec<String>,
    /// Leverage set per symbol.
    pub leverage: BTreeMap<String, u32>,
    /// Faults for the next orders, in order.
    pub order_faults: VecDeque<Fault>,
    /// What `/sapi/v1/account/apiRestrictions` says of withdrawals.
    pub key_can_withdraw: bool,
    /// Fill price per symbol set by the test (else the last closed kline's close).
    pub prices: BTreeMap<String, f64>,
    /// Equity the account reports (default 10,000).
    pub equity: Option<f64>,
}

pub struct FakeBinance {
    pub url: String,
    pub state: Arc<Mutex<FakeState>>,
    _runtime: tokio::runtime::Runtime,
}

fn now_ms() -> i64 {
    quantum_governor::clock::wall_clock().millis()
}

impl FakeBinance {
    /// Starts on a free port; `klines_dir` (if any) is mapped onto the wall clock.
    pub fn start(klines_dir: Option<&std::path::Path>) -> FakeBinance {
        let mut st = FakeState::default();
        if let Some(dir) = klines_dir {
            let mut k = quantum_governor::market_data::load_klines_dir(dir).unwrap();
            let shift = quantum_governor::exchange::paper_market::wall_clock_shift(
                &k,
                quantum_governor::clock::wall_clock(),
            );
            for series in k.values_mut() {
                for b in series.iter_mut() {
                    b.open_time = governor_core::time::Timestamp(b.open_time.millis() + shift);
                }
            }
            st.klines = k;
        }
        let state = Arc::new(Mutex::new(st));
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let app = Router::new().fallback(handle).with_state(state.clone());
        runtime.spawn(async move { axum::serve(listener, app).await.unwrap() });
        FakeBinance {
            url,
            state,
            _runtime: runtime,
        }
    }

    pub fn inject(&self, path: &str, canned: Canned) {
        self.state
            .lock()
            .unwrap()
            .inject
            .entry(path.to_owned())
            .or_default()
            .push_back(canned);
    }

    /// Like [`FakeBinance::inject`], for one method only (`GET /fapi/v1/order` but not the
    /// `POST` of the same path).
    pub fn inject_method(&self, method: &str, path: &str, canned: Canned) {
        self.inject(&format!("{method} {path}"), canned);
    }

    pub fn hits(&self, key: &str) -> usize {
        self.state
            .lock()
            .unwrap()
            .hits
            .get(key)
            .copied()
            .unwrap_or(0)
    }

    pub fn orders(&self) -> Vec<Order> {
        self.state.lock().unwrap().orders.clone()
    }

    /// Orders placed under one client id (a correct executor never places two).
    pub fn orders_for(&self, client_id: &str) -> usize {
        self.orders()
            .iter()
            .filter(|o| o.client_id == client_id)
            .count()
    }

    /// The next order takes effect, then fails this way.
    pub fn fault_next_order(&self, fault: Fault) {
        self.state.lock().unwrap().order_faults.push_back(fault);
    }

    /// The signed position amount of `symbol` (0 when flat).
    pub fn position(&self, symbol: &str) -> f64 {
        self.state
            .lock()
            .unwrap()
            .positions
            .get(symbol)
            .map_or(0.0, |(amt, _)| *amt)
    }
}

fn reply(status: u16, body: String, headers: &[(String, String)]) -> Response {
    let mut r = (StatusCode::from_u16(status).unwrap(), body).into_response();
    r.headers_mut()
        .insert("content-type", "application/json".parse().unwrap());
    r.headers_mut()
        .insert("X-MBX-USED-WEIGHT-1M", "17".parse().unwrap());
    for (k, v) in headers {
        r.headers_mut().insert(
            axum::http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    r
}

fn err(code: i64, msg: &str) -> Response {
    reply(400, json!({"code": code, "msg": msg}).to_string(), &[])
}

fn params(q: &str) -> BTreeMap<String, String> {
    q.split('&')
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// How an answer goes out: at once, late, or cut in the middle.
enum Delivery {
    Now(Response),
    Late(std::time::Duration, Response),
    Cut(String),
}

async fn handle(
    State(state): State<Arc<Mutex<FakeState>>>,
    method: Method,
    uri: Uri,
    RawQuery(q): RawQuery,
    headers: HeaderMap,
    _body: Bytes,
) -> Response {
    let delivery = {
        let mut st = state.lock().unwrap();
        answer(
            &mut st,
            &method,
            uri.path(),
            q.unwrap_or_default(),
            &headers,
        )
    };
    match delivery {
        Delivery::Now(r) => r,
        Delivery::Late(wait, r) => {
            tokio::time::sleep(wait).await;
            r
        }
        Delivery::Cut(body) => {
            // Half the body, then an error: the server drops the connection mid-answer.
            let half = body[..body.len() / 2].to_owned();
            let chunks: Vec<Result<Bytes, std::io::Error>> = vec![
                Ok(Bytes::from(half)),
                Err(std::io::Error::new(
                    std::io::ErrorKind::ConnectionReset,
                    "cut",
                )),
            ];
            let mut r = Response::new(axum::body::Body::from_stream(futures_util::stream::iter(
                chunks,
            )));
            r.headers_mut()
                .insert("content-length", body.len().to_string().parse().unwrap());
            r
        }
    }
}

fn answer(
    st: &mut FakeState,
    method: &Method,
    path: &str,
    q: String,
    headers: &HeaderMap,
) -> Delivery {
    let mut fault = None;
    let r = respond(st, method, path, q, headers, &mut fault);
    match fault {
        None | Some(Fault::PartialThenExpired(_)) => Delivery::Now(r),
        Some(Fault::AnswerAfterFill(c)) => Delivery::Now(reply(c.status, c.body, &c.headers)),
        Some(Fault::LateAfterFill(wait)) => Delivery::Late(wait, r),
        Some(Fault::ResetAfterFill) => Delivery::Cut(
            r#"{"orderId":1,"status":"NEW","clientOrderId":"cut","executedQty":"0"}"#.to_owned(),
        ),
    }
}

/// The normal answer; an order that took effect sets `fault` to what goes wrong after it.
fn respond(
    st: &mut FakeState,
    method: &Method,
    path: &str,
    q: String,
    headers: &HeaderMap,
    fault: &mut Option<Fault>,
) -> Response {
    let path = path.to_owned();
    *st.hits.entry(format!("{method} {path}")).or_default() += 1;
    st.queries.push(q.clone());
    let injected = st
        .inject
        .get_mut(&format!("{method} {path}"))
        .and_then(VecDeque::pop_front)
        .or_else(|| st.inject.get_mut(&path).and_then(VecDeque::pop_front));
    if let Some(c) = injected {
        return reply(c.status, c.body, &c.headers);
    }
    let p = params(&q);
    let signed = p.contains_key("signature");
    if signed {
        if headers.get("X-MBX-APIKEY").and_then(|v| v.to_str().ok()) != Some(KEY) {
            return reply(
                401,
                json!({"code": -2015, "msg": "Invalid API-key, IP, or permissions for action."})
                    .to_string(),
                &[],
            );
        }
        let (total, sig) = q.rsplit_once("&signature=").unwrap();
        if signature(SECRET, total) != sig {
            return err(-1022, "Signature for this request is not valid.");
        }
        let ts: i64 = p["timestamp"].parse().unwrap();
        let window: i64 = p.get("recvWindow").map_or(5000, |w| w.parse().unwrap());
        if (ts - (now_ms() + st.skew_ms)).abs() > window {
            return err(
                -1021,
                "Timestamp for this request is outside of the recvWindow.",
            );
        }
    }
    let documented = st.documented;
    match (method.as_str(), path.as_str()) {
        ("GET", "/fapi/v1/time") => reply(
            200,
            json!({"serverTime": now_ms() + st.skew_ms}).to_string(),
            &[],
        ),
        ("GET", "/fapi/v1/exchangeInfo") => {
            let mut info = fixture("exchange_info_btcusdt.json");
            let btc = info["symbols"][0].clone();
            for s in st.klines.keys().filter(|s| s.as_str() != "BTCUSDT") {
                let mut other = btc.clone();
                other["symbol"] = json!(s.as_str());
                other["filters"][0]["tickSize"] = json!("0.0001");
                other["filters"][1]["stepSize"] = json!("0.001");
                other["filters"][2]["stepSize"] = json!("0.001");
                other["filters"][4]["notional"] = json!("5");
                info["symbols"].as_array_mut().unwrap().push(other);
            }
            reply(200, info.to_string(), &[])
        }
        ("GET", "/fapi/v1/klines") if documented => {
            reply(200, fixture("GET_fapi_v1_klines.json").to_string(), &[])
        }
        ("GET", "/fapi/v1/klines") => {
            let sym = Symbol::parse(&p["symbol"]).unwrap();
            let limit: usize = p["limit"].parse().unwrap();
            let now = now_ms();
            let series: Vec<&Kline> = st
                .klines
                .get(&sym)
                .map(|k| k.iter().filter(|b| b.open_time.millis() <= now).collect())
                .unwrap_or_default();
            let rows: Vec<Value> = series[series.len().saturating_sub(limit)..]
                .iter()
                .map(|b| {
                    json!([
                        b.open_time.millis(),
                        b.open.to_string(),
                        b.high.to_string(),
                        b.low.to_string(),
                        b.close.to_string(),
                        b.volume.to_string(),
                        b.open_time.millis() + BAR_MS - 1,
                        "0",
                        1,
                        "0",
                        "0",
                        "0"
                    ])
                })
                .collect();
            reply(200, Value::Array(rows).to_string(), &[])
        }
        ("GET", "/fapi/v1/leverageBracket") if documented => reply(
            200,
            fixture("GET_fapi_v1_leverageBracket.json").to_string(),
            &[],
        ),
        // Every symbol the server has klines for, with BTCUSDT's real tiers, in the documented
        // answer's shape (`notionalCoef` included, which the client ignores).
        ("GET", "/fapi/v1/leverageBracket") => {
            let tiers = fixture("leverage_brackets_7symbols.json")["BTCUSDT"].clone();
            let rows: Vec<Value> = st
                .klines
                .keys()
                .map(|s| json!({"symbol": s.as_str(), "notionalCoef": 1.0, "brackets": tiers}))
                .collect();
            reply(200, Value::Array(rows).to_string(), &[])
        }
        ("GET", "/fapi/v2/account") => {
            let mut a = fixture("GET_fapi_v2_account.json");
            if !documented {
                let equity = st.equity.unwrap_or(10_000.0);
                for k in [
                    "totalMarginBalance",
                    "availableBalance",
                    "totalWalletBalance",
                ] {
                    a[k] = json!(format!("{equity:.8}"));
                }
            }
            reply(200, a.to_string(), &[])
        }
        ("GET", "/fapi/v2/positionRisk") if documented => {
            reply(200, fixture("position_risk_v2_open.json").to_string(), &[])
        }
        ("GET", "/fapi/v2/positionRisk") => {
            let template = fixture("position_risk_v2_open.json")[0].clone();
            let rows: Vec<Value> = st
                .positions
                .iter()
                .filter(|(_, (amt, _))| *amt != 0.0)
                .map(|(s, (amt, entry))| {
                    let mut r = template.clone();
                    r["symbol"] = json!(s);
                    r["positionAmt"] = json!(amt.to_string());
                    r["entryPrice"] = json!(entry.to_string());
                    let mark = st.prices.get(s).copied().unwrap_or(*entry);
                    r["markPrice"] = json!(mark.to_string());
                    r["leverage"] = json!(st.leverage.get(s).copied().unwrap_or(5).to_string());
                    r
                })
                .collect();
            reply(200, Value::Array(rows).to_string(), &[])
        }
        ("POST", "/fapi/v1/order") => {
            let sym = Symbol::parse(&p["symbol"]).unwrap();
            let price = st.prices.get(sym.as_str()).copied().unwrap_or_else(|| {
                st.klines
                    .get(&sym)
                    .and_then(|k| {
                        k.iter()
                            .rev()
                            .find(|b| b.open_time.millis() + BAR_MS <= now_ms())
                    })
                    .map_or(50_000.0, |b| b.close)
            });
            let qty: f64 = p["quantity"].parse().unwrap();
            let reduce_only = p.get("reduceOnly").map(String::as_str) == Some("true");
            let held = st.positions.get(sym.as_str()).copied();
            let signed_qty = if p["side"] == "BUY" { qty } else { -qty };
            if reduce_only
                && held.is_none_or(|(amt, _)| amt == 0.0 || amt.signum() == signed_qty.signum())
            {
                return err(-2022, "ReduceOnly Order is rejected.");
            }
            *fault = st.order_faults.pop_front();
            let (executed, status) = match fault {
                Some(Fault::PartialThenExpired(share)) => {
                    ((qty * *share * 1e8).round() / 1e8, "EXPIRED")
                }
                _ => (qty, "FILLED"),
            };
            let signed = executed * signed_qty.signum();
            let realized = match held {
                Some((amt, entry)) if reduce_only => (price - entry) * executed * amt.signum(),
                _ => 0.0,
            };
            let entry = st.positions.entry(sym.to_string()).or_insert((0.0, price));
            if !reduce_only && entry.0 != 0.0 {
                entry.1 = (entry.1 * entry.0.abs() + price * executed) / (entry.0.abs() + executed);
            }
            entry.0 += signed;
            if entry.0.abs() < 1e-12 {
                st.positions.remove(sym.as_str());
            }
            let order_id = 9_000 + st.orders.len() as i64;
            st.orders.push(Order {
                symbol: sym.to_string(),
                side: p["side"].clone(),
                qty,
                reduce_only,
                client_id: p["newClientOrderId"].clone(),
                price,
                order_id,
                status: status.to_owned(),
                executed,
                commission: executed * price * TAKER_FEE,
                realized,
            });
            let mut o = fixture("POST_fapi_v1_order__New-Order.json");
            o["clientOrderId"] = json!(p["newClientOrderId"]);
            o["symbol"] = json!(sym.as_str());
            o["origQty"] = json!(p["quantity"]);
            o["orderId"] = json!(order_id);
            reply(200, o.to_string(), &[])
        }
        ("POST", "/fapi/v1/leverage") => {
            let lev: u32 = p["leverage"].parse().unwrap();
            st.leverage.insert(p["symbol"].clone(), lev);
            reply(
                200,
                json!({"leverage": lev, "maxNotionalValue": "1000000", "symbol": p["symbol"]})
                    .to_string(),
                &[],
            )
        }
        ("GET", "/fapi/v1/order") => {
            let id = &p["origClientOrderId"];
            let Some(order) = st.orders.iter().find(|o| &o.client_id == id).cloned() else {
                return err(-2013, "Order does not exist.");
            };
            let mut o = fixture("order_filled.json");
            if documented {
                return reply(200, o.to_string(), &[]);
            }
            o["clientOrderId"] = json!(id);
            o["symbol"] = json!(order.symbol);
            o["orderId"] = json!(order.order_id);
            o["status"] = json!(order.status);
            o["executedQty"] = json!(order.executed.to_string());
            o["origQty"] = json!(order.qty.to_string());
            o["avgPrice"] = json!(order.price.to_string());
            reply(200, o.to_string(), &[])
        }
        ("GET", "/fapi/v1/userTrades") => {
            let order_id: i64 = p["orderId"].parse().unwrap();
            let trades: Vec<Value> = st
                .orders
                .iter()
                .filter(|o| o.order_id == order_id || (documented && order_id == 1917641))
                .map(|o| {
                    json!({
                        "buyer": o.side == "BUY", "commission": format!("-{}", o.commission),
                        "commissionAsset": "USDT", "id": o.order_id * 10, "maker": false,
                        "orderId": o.order_id, "price": o.price.to_string(),
                        "qty": o.executed.to_string(), "quoteQty": (o.price * o.executed).to_string(),
                        "realizedPnl": o.realized.to_string(), "side": o.side,
                        "positionSide": "BOTH", "symbol": o.symbol, "time": now_ms()
                    })
                })
                .collect();
            reply(200, Value::Array(trades).to_string(), &[])
        }
        ("GET", "/sapi/v1/account/apiRestrictions") => reply(
            200,
            json!({
                "ipRestrict": false, "createTime": 1_698_645_219_000_i64,
                "enableReading": true, "enableWithdrawals": st.key_can_withdraw,
                "enableInternalTransfer": false, "enableMargin": false,
                "enableFutures": true, "permitsUniversalTransfer": false,
                "enableVanillaOptions": false, "enableFixApiTrade": false,
                "enableFixReadOnly": false, "enableSpotAndMarginTrading": false,
                "enablePortfolioMarginTrading": false
            })
            .to_string(),
            &[],
        ),
        _ => reply(
            404,
            json!({"code": -1, "msg": format!("no route {method} {path}")}).to_string(),
            &[],
        ),
    }
}
