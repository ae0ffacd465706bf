"""Wire compatibility: another service, written with redis-py, talks to the governor using
only the key and field names of CONTRACT.md. Prints what it read back as JSON."""
import json
import sys
import time

import redis

url, eth_qty = sys.argv[1], sys.argv[2]
r = redis.Redis.from_url(url, decode_responses=True)
P = "quantum:"

# The policy service and the executor write their keys.
r.hset(P + "policy:current", "universe_symbols", json.dumps(["BTCUSDT", "S01USDT", "S02USDT"]))
r.hset(P + "position:ledger:S02USDT", mapping={
    "position_amt": "3.5", "entry_price": "12.0", "side": "LONG", "realized_pnl": "0",
    "opened_at": str(int(time.time() * 1000) - 3_600_000), "entry_score": "61", "leverage": "5",
})
time.sleep(2.5)  # the sweeper indexes ledger hashes other services wrote

plans = P + "stream:apply.plan"
r.xadd(plans, {"plan_id": "py-open-1", "symbol": "S01USDT", "action": "OPEN_LONG",
               "decision": "EXECUTE", "qty": eth_qty, "score": "66", "kill_score": "0.3"})
r.xadd(plans, {"plan_id": "py-close-1", "symbol": "S02USDT",
               "harvest_action": "FULL_CLOSE_PROPOSED", "decision": "EXECUTE"})
r.xadd(plans, {"plan_id": "py-bad-1", "symbol": "S01USDT", "action": "", "decision": "EXECUTE"})
r.xadd(plans, {"plan_id": "py-outside-1", "symbol": "XRPUSDT", "action": "OPEN_LONG",
               "decision": "EXECUTE", "qty": "1"})

deadline = time.time() + 30
while time.time() < deadline:
    if r.xlen(P + "stream:governor.decisions") >= 3 and r.xlen(P + "stream:governor.deadletter") >= 1:
        break
    time.sleep(0.1)

def entries(stream):
    return [fields for _, fields in r.xrange(stream)]

out = {
    "permit_open": json.loads(r.get(P + "permit:py-open-1") or "null"),
    "permit_close": json.loads(r.get(P + "permit:py-close-1") or "null"),
    "permit_ttl_ms": r.pttl(P + "permit:py-open-1"),
    "block_outside": json.loads(r.get(P + "governor:block:py-outside-1") or "null"),
    "block_ttl_s": r.ttl(P + "governor:block:py-outside-1"),
    "exit_lock": r.get(P + "exit:lock:S02USDT"),
    "decisions": entries(P + "stream:governor.decisions"),
    "events": entries(P + "stream:governor.events"),
    "deadletter": entries(P + "stream:governor.deadletter"),
    "slots_desired": r.get(P + "slots:desired"),
    "slots_regime": r.get(P + "slots:regime"),
}
print(json.dumps(out))
