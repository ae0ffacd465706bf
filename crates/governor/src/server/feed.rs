//! `GET /v1/feed`: a server-sent event per decision (`event: decision`), newest last — the
//! dashboard's live feed. It polls the store's recent decisions every half second, so it shows
//! decisions of every governor process in Redis mode, not only this one's.

use super::AppState;
use axum::extract::State;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::{self, Stream};
use governor_core::snapshot::DecisionRecord;
use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

/// How many past decisions a new subscriber gets first.
const BACKLOG: usize = 20;

/// Identifies a decision (a plan decided PENDING, then ALLOW, is two entries).
fn key(r: &DecisionRecord) -> (String, i64, &'static str) {
    (
        r.plan_id.to_string(),
        r.decided_at.millis(),
        r.verdict.as_str(),
    )
}

fn event(r: &DecisionRecord) -> Event {
    let data = crate::journal::record_summary_json(r);
    Event::default().event("decision").data(data.to_string())
}

struct Cursor {
    state: AppState,
    seen: VecDeque<(String, i64, &'static str)>,
    first: bool,
}

/// The feed.
pub async fn decisions(
    State(state): State<AppState>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let cursor = Cursor {
        state,
        seen: VecDeque::new(),
        first: true,
    };
    let events = stream::unfold(cursor, |mut c| async move {
        loop {
            if !c.first {
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            let want = if c.first { BACKLOG } else { 200 };
            c.first = false;
            let store = c.state.gov.store().clone();
            let recent = tokio::task::spawn_blocking(move || store.recent_decisions(want))
                .await
                .ok()
                .and_then(Result::ok)
                .unwrap_or_default();
            let mut fresh: Vec<Event> = Vec::new();
            for r in recent.iter().rev() {
                if !c.seen.contains(&key(r)) {
                    c.seen.push_back(key(r));
                    fresh.push(event(r));
                }
            }
            while c.seen.len() > 1000 {
                c.seen.pop_front();
            }
            if !fresh.is_empty() {
                let batch = stream::iter(fresh.into_iter().map(Ok));
                return Some((batch, c));
            }
        }
    });
    use futures_util::StreamExt;
    Sse::new(events.flatten()).keep_alive(KeepAlive::default())
}
