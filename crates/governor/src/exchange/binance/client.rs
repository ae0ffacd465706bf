//! The REST client: base URL from config (testnet, production, or a local server in tests),
//! signed requests with `recvWindow` and the server-time offset, request weight from the
//! response headers, `Retry-After` honoured on 429 (once) and on 418 (nothing is sent until the
//! ban ends), a -1021 answered by re-syncing the clock and trying once more.

use super::error::BinanceError;
use super::filters::SymbolFilters;
use super::sign::signature;
use super::wire;
use governor_core::market::brackets::{parse_binance, BracketTable};
use governor_core::market::Kline;
use governor_core::snapshot::ExchangeClock;
use governor_core::types::Symbol;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

/// Production and testnet REST base URLs.
pub const PRODUCTION_URL: &str = "https://fapi.binance.com";
/// The testnet's.
pub const TESTNET_URL: &str = "https://testnet.binancefuture.com";
/// The spot API host, where a key's restrictions are read (`/sapi/v1/account/apiRestrictions`).
pub const SPOT_URL: &str = "https://api.binance.com";

/// Refuses a base URL that would send keys and signatures in clear over a network: `https://`
/// anywhere, `http://` only to a loopback address (a local stand-in, a local proxy). The error
/// names the URL and why.
pub fn check_base_url(url: &str) -> Result<(), String> {
    if url.starts_with("https://") {
        return Ok(());
    }
    let Some(rest) = url.strip_prefix("http://") else {
        return Err(format!(
            "Binance base URL {url:?} must start with https:// (or http:// to a loopback address)"
        ));
    };
    let authority = rest.split('/').next().unwrap_or_default();
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.split(':').next().unwrap_or_default(),
    };
    let loopback = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if loopback {
        Ok(())
    } else {
        Err(format!(
            "Binance base URL {url:?} is plain http to {host:?}, which is not a loopback address: use https://"
        ))
    }
}
/// How often the offset to the exchange's clock is measured again (the market data does it).
pub const CLOCK_RESYNC_MS: i64 = 300_000;
/// A measurement older than this no longer stands: the clock is unmeasured.
const CLOCK_VALID_MS: i64 = 3 * CLOCK_RESYNC_MS;
/// The longest `Retry-After` waited out in place (longer ones are returned as errors).
const MAX_WAIT_SECS: u64 = 10;

/// The API key and secret. They come from the environment only; `Debug` shows neither.
#[derive(Clone)]
pub struct Credentials {
    key: String,
    secret: String,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Credentials(***)")
    }
}

impl Credentials {
    /// From the environment: `BINANCE_TESTNET_API_KEY`/`_SECRET` in testnet mode, and only
    /// those (a production key is never sent to the testnet, nor used by a testnet run);
    /// `BINANCE_API_KEY`/`BINANCE_API_SECRET` in production. The error names the variables,
    /// never their values.
    pub fn from_env(testnet: bool, env: &[(String, String)]) -> Result<Credentials, String> {
        let get = |name: &str| {
            env.iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.clone())
                .filter(|v| !v.is_empty())
        };
        let pair = |prefix: &str| {
            Some(Credentials {
                key: get(&format!("{prefix}API_KEY"))?,
                secret: get(&format!("{prefix}API_SECRET"))?,
            })
        };
        let prefix = if testnet {
            "BINANCE_TESTNET_"
        } else {
            "BINANCE_"
        };
        pair(prefix).ok_or_else(|| {
            let mode = if testnet { "testnet" } else { "production" };
            format!("{mode} mode trades with {prefix}API_KEY and {prefix}API_SECRET: set both")
        })
    }

    /// Credentials given directly (tests).
    pub fn new(key: &str, secret: &str) -> Credentials {
        Credentials {
            key: key.to_owned(),
            secret: secret.to_owned(),
        }
    }
}

/// The Binance USDT-M futures REST client.
pub struct BinanceClient {
    base: String,
    spot_base: String,
    credentials: Option<Credentials>,
    recv_window_ms: u64,
    offset_ms: AtomicI64,
    /// When the offset was last measured (local ms; 0: never).
    synced_at_ms: AtomicI64,
    used_weight: AtomicU64,
    banned_until_ms: AtomicI64,
    filters: Mutex<BTreeMap<Symbol, SymbolFilters>>,
    agent: ureq::Agent,
}

impl fmt::Debug for BinanceClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BinanceClient")
            .field("base", &self.base)
            .field("credentials", &self.credentials)
            .finish_non_exhaustive()
    }
}

fn local_now_ms() -> i64 {
    crate::clock::wall_clock().millis()
}

/// An HTTP answer: status, body, and the headers that matter.
struct Answer {
    status: u16,
    body: String,
    retry_after: Option<u64>,
}

impl BinanceClient {
    /// A client of `base_url` (no trailing slash needed).
    pub fn new(base_url: &str, credentials: Option<Credentials>) -> BinanceClient {
        BinanceClient {
            base: base_url.trim_end_matches('/').to_owned(),
            spot_base: SPOT_URL.to_owned(),
            credentials,
            recv_window_ms: governor_core::config::ORDER_REACH_SECS * 1000,
            offset_ms: AtomicI64::new(0),
            synced_at_ms: AtomicI64::new(0),
            used_weight: AtomicU64::new(0),
            banned_until_ms: AtomicI64::new(0),
            filters: Mutex::new(BTreeMap::new()),
            agent: ureq::AgentBuilder::new()
                .timeout(Duration::from_secs(10))
                .build(),
        }
    }

    /// The same client with `recvWindow` = `ms`: how long after its timestamp Binance still
    /// accepts a signed request. An order Binance does not know is taken as never placed only
    /// once this much time has passed since it was last sent.
    pub fn with_recv_window(mut self, ms: u64) -> BinanceClient {
        self.recv_window_ms = ms;
        self
    }

    /// The same client giving up on an answer after `timeout` (10 s by default). An order whose
    /// answer does not come in time is in doubt, never failed.
    pub fn with_timeout(mut self, timeout: Duration) -> BinanceClient {
        self.agent = ureq::AgentBuilder::new().timeout(timeout).build();
        self
    }

    /// The same client asking the spot API at `url` for the key's restrictions (`/sapi/…`).
    pub fn with_spot_base(mut self, url: &str) -> BinanceClient {
        self.spot_base = url.trim_end_matches('/').to_owned();
        self
    }

    /// The `recvWindow` of signed requests (ms).
    pub fn recv_window_ms(&self) -> u64 {
        self.recv_window_ms
    }

    /// Request weight used this minute, as the last answer reported it.
    pub fn used_weight(&self) -> u64 {
        self.used_weight.load(Ordering::Relaxed)
    }

    /// Server time − local time (ms), as last synchronised.
    pub fn clock_offset_ms(&self) -> i64 {
        self.offset_ms.load(Ordering::Relaxed)
    }

    /// The exchange's clock against ours at `now_ms` (local): the last measured offset while it
    /// is recent, else unmeasured.
    pub fn clock(&self, now_ms: i64) -> ExchangeClock {
        let at = self.synced_at_ms.load(Ordering::Relaxed);
        if at == 0 || now_ms - at > CLOCK_VALID_MS {
            ExchangeClock::Unmeasured
        } else {
            ExchangeClock::OffsetMs(self.clock_offset_ms())
        }
    }

    /// Whether the clock offset is due to be measured again.
    pub fn clock_due(&self, now_ms: i64) -> bool {
        now_ms - self.synced_at_ms.load(Ordering::Relaxed) >= CLOCK_RESYNC_MS
    }

    fn send(
        &self,
        method: &str,
        endpoint: &str,
        query: &str,
        signed: bool,
    ) -> Result<Answer, BinanceError> {
        // `/sapi` endpoints live on the spot API host, the rest on the futures host.
        let base = if endpoint.starts_with("/sapi/") {
            &self.spot_base
        } else {
            &self.base
        };
        let url = if query.is_empty() {
            format!("{base}{endpoint}")
        } else {
            format!("{base}{endpoint}?{query}")
        };
        let mut req = self.agent.request(method, &url);
        if signed {
            let creds = self.credentials.as_ref().ok_or_else(|| {
                BinanceError::Refused(format!("{endpoint} needs API credentials"))
            })?;
            req = req.set("X-MBX-APIKEY", &creds.key);
        }
        let response = match req.call() {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            // The transport error's text would carry the URL (and its signature): keep its kind.
            Err(ureq::Error::Transport(t)) => {
                return Err(BinanceError::Transport {
                    endpoint: endpoint.to_owned(),
                    reason: t.kind().to_string(),
                })
            }
        };
        if let Some(w) = response
            .header("X-MBX-USED-WEIGHT-1M")
            .and_then(|w| w.parse().ok())
        {
            self.used_weight.store(w, Ordering::Relaxed);
        }
        let status = response.status();
        let retry_after = response
            .header("Retry-After")
            .and_then(|v| v.trim().parse().ok());
        let body = response
            .into_string()
            .map_err(|e| BinanceError::Transport {
                endpoint: endpoint.to_owned(),
                reason: format!("reading the answer: {}", e.kind()),
            })?;
        Ok(Answer {
            status,
            body,
            retry_after,
        })
    }

    /// One request with the adapter's rules; `params` in the order they are signed.
    fn request(
        &self,
        method: &str,
        endpoint: &str,
        params: &[(&str, String)],
        signed: bool,
    ) -> Result<Value, BinanceError> {
        let mut retried_429 = false;
        let mut resynced = false;
        loop {
            let now = local_now_ms();
            let banned_until = self.banned_until_ms.load(Ordering::Relaxed);
            if now < banned_until {
                return Err(BinanceError::Refused(format!(
                    "{endpoint}: the IP is banned for {} s more (HTTP 418)",
                    (banned_until - now) / 1000 + 1
                )));
            }
            let mut query: Vec<String> = params
                .iter()
                .map(|(k, v)| format!("{k}={}", encode(v)))
                .collect();
            if signed {
                query.push(format!("recvWindow={}", self.recv_window_ms));
                query.push(format!("timestamp={}", now + self.clock_offset_ms()));
                let total = query.join("&");
                let secret = &self
                    .credentials
                    .as_ref()
                    .ok_or_else(|| {
                        BinanceError::Refused(format!("{endpoint} needs API credentials"))
                    })?
                    .secret;
                query.push(format!("signature={}", signature(secret, &total)));
            }
            let answer = self.send(method, endpoint, &query.join("&"), signed)?;
            if answer.status == 200 {
                return serde_json::from_str(&answer.body).map_err(|e| BinanceError::BadResponse {
                    endpoint: endpoint.to_owned(),
                    problem: format!("not JSON: {e}"),
                });
            }
            let (code, msg) = error_body(&answer.body);
            match answer.status {
                429 => {
                    let wait = answer.retry_after.unwrap_or(1);
                    if retried_429 || wait > MAX_WAIT_SECS {
                        return Err(BinanceError::RateLimited {
                            endpoint: endpoint.to_owned(),
                            retry_after_secs: wait,
                            msg,
                        });
                    }
                    crate::logfmt::line(
                        "BINANCE_RATE_LIMITED",
                        &[
                            ("endpoint", endpoint.to_owned()),
                            ("retry_after_secs", wait.to_string()),
                        ],
                    );
                    std::thread::sleep(Duration::from_secs(wait));
                    retried_429 = true;
                }
                418 => {
                    let wait = answer.retry_after.unwrap_or(60);
                    self.banned_until_ms
                        .store(local_now_ms() + wait as i64 * 1000, Ordering::Relaxed);
                    return Err(BinanceError::Banned {
                        endpoint: endpoint.to_owned(),
                        retry_after_secs: wait,
                        msg,
                    });
                }
                status => {
                    let err = BinanceError::from_answer(endpoint, status, code, msg);
                    if matches!(err, BinanceError::Timestamp { .. }) && !resynced {
                        self.sync_time()?;
                        resynced = true;
                        continue;
                    }
                    return Err(err);
                }
            }
        }
    }

    /// Sets the clock offset from `/fapi/v1/time`; returns it.
    pub fn sync_time(&self) -> Result<i64, BinanceError> {
        let before = local_now_ms();
        let server = wire::server_time(&self.request("GET", "/fapi/v1/time", &[], false)?)?;
        let after = local_now_ms();
        let offset = server - (before + after) / 2;
        self.offset_ms.store(offset, Ordering::Relaxed);
        self.synced_at_ms.store(after, Ordering::Relaxed);
        Ok(offset)
    }

    /// The filters of `symbol` (fetched once, then cached).
    pub fn filters(&self, symbol: &Symbol) -> Result<SymbolFilters, BinanceError> {
        if let Some(f) = self
            .filters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(symbol)
        {
            return Ok(f.clone());
        }
        let v = self.request("GET", "/fapi/v1/exchangeInfo", &[], false)?;
        let f = wire::symbol_filters(&v, symbol)?;
        self.filters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(symbol.clone(), f.clone());
        Ok(f)
    }

    /// The last `limit` 1 h klines of `symbol` (the newest may still be open).
    pub fn klines(&self, symbol: &Symbol, limit: usize) -> Result<Vec<Kline>, BinanceError> {
        let params = [
            ("symbol", symbol.to_string()),
            ("interval", "1h".to_owned()),
            ("limit", limit.to_string()),
        ];
        wire::klines(&self.request("GET", "/fapi/v1/klines", &params, false)?)
    }

    /// Every symbol's leverage brackets (signed `GET /fapi/v1/leverageBracket`), taken whole or
    /// refused: a tier that does not check out is a bad response naming the symbol and tier.
    pub fn leverage_brackets(&self) -> Result<BracketTable, BinanceError> {
        let endpoint = "/fapi/v1/leverageBracket";
        let v = self.request("GET", endpoint, &[], true)?;
        parse_binance(&v.to_string()).map_err(|problem| BinanceError::BadResponse {
            endpoint: endpoint.to_owned(),
            problem,
        })
    }

    /// Account totals.
    pub fn account(&self) -> Result<wire::Account, BinanceError> {
        wire::account(&self.request("GET", "/fapi/v2/account", &[], true)?)
    }

    /// Open positions.
    pub fn positions(&self) -> Result<Vec<wire::PositionRisk>, BinanceError> {
        wire::positions(&self.request("GET", "/fapi/v2/positionRisk", &[], true)?)
    }

    /// Places a MARKET order; `qty` is exact text (rounded to the step by the caller).
    pub fn market_order(
        &self,
        symbol: &Symbol,
        buy: bool,
        qty: &str,
        reduce_only: bool,
        client_id: &str,
    ) -> Result<wire::OrderAnswer, BinanceError> {
        let params = [
            ("symbol", symbol.to_string()),
            ("side", if buy { "BUY" } else { "SELL" }.to_owned()),
            ("type", "MARKET".to_owned()),
            ("quantity", qty.to_owned()),
            ("reduceOnly", reduce_only.to_string()),
            ("newClientOrderId", client_id.to_owned()),
            ("newOrderRespType", "RESULT".to_owned()),
        ];
        wire::order(&self.request("POST", "/fapi/v1/order", &params, true)?)
    }

    /// Sets `symbol`'s leverage (`POST /fapi/v1/leverage`); returns the leverage Binance set.
    pub fn set_leverage(&self, symbol: &Symbol, leverage: u32) -> Result<u32, BinanceError> {
        let params = [
            ("symbol", symbol.to_string()),
            ("leverage", leverage.to_string()),
        ];
        let v = self.request("POST", "/fapi/v1/leverage", &params, true)?;
        let set = wire::Obj::of("/fapi/v1/leverage", &v, "the answer")?.int("leverage")?;
        u32::try_from(set).map_err(|_| BinanceError::BadResponse {
            endpoint: "/fapi/v1/leverage".to_owned(),
            problem: format!("field `leverage` = {set} is not a leverage"),
        })
    }

    /// What the trades of one order cost and realized (`GET /fapi/v1/userTrades`).
    pub fn trade_costs(
        &self,
        symbol: &Symbol,
        order_id: i64,
    ) -> Result<wire::TradeCosts, BinanceError> {
        let params = [
            ("symbol", symbol.to_string()),
            ("orderId", order_id.to_string()),
        ];
        wire::trade_costs(&self.request("GET", "/fapi/v1/userTrades", &params, true)?)
    }

    /// Whether the API key may withdraw (`GET /sapi/v1/account/apiRestrictions`).
    pub fn key_can_withdraw(&self) -> Result<bool, BinanceError> {
        wire::withdrawals_enabled(&self.request(
            "GET",
            "/sapi/v1/account/apiRestrictions",
            &[],
            true,
        )?)
    }

    /// An order by our client order id.
    pub fn order(
        &self,
        symbol: &Symbol,
        client_id: &str,
    ) -> Result<wire::OrderAnswer, BinanceError> {
        let params = [
            ("symbol", symbol.to_string()),
            ("origClientOrderId", client_id.to_owned()),
        ];
        wire::order(&self.request("GET", "/fapi/v1/order", &params, true)?)
    }
}

/// `code` and `msg` of an error answer (`0` and the raw text when it is not Binance's shape).
fn error_body(body: &str) -> (i64, String) {
    let v: Option<Value> = serde_json::from_str(body).ok();
    let code = v.as_ref().and_then(|v| v["code"].as_i64()).unwrap_or(0);
    let msg = v
        .as_ref()
        .and_then(|v| v["msg"].as_str().map(str::to_owned))
        .unwrap_or_else(|| body.chars().take(200).collect());
    (code, msg)
}

/// Percent-encodes what is not safe in a query value.
fn encode(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
