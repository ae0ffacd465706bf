-- Reads everything a decision needs in one round trip, as one JSON document.
-- ARGV: prefix, plan id, symbol, now (ms).
local P, plan_id, symbol, now = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local out = {}
out.kill = redis.call('GET', P .. 'kill') or false
out.universe = redis.call('HGET', P .. 'policy:current', 'universe_symbols') or false
out.decision = redis.call('GET', P .. 'governor:decision:' .. plan_id) or false
out.reservations = redis.call('HGETALL', P .. 'governor:reservations')
out.rotations = redis.call('HGETALL', P .. 'governor:rotations')
out.ledger = {}
for _, s in ipairs(redis.call('SMEMBERS', P .. 'governor:ledger')) do
  local h = redis.call('HGETALL', P .. 'position:ledger:' .. s)
  if #h > 0 then table.insert(out.ledger, {s, h}) end
end
out.exit_locks = {}
for _, s in ipairs(redis.call('SMEMBERS', P .. 'governor:exit_locks')) do
  local holder = redis.call('GET', P .. 'exit:lock:' .. s)
  if holder then
    table.insert(out.exit_locks, {s, holder, redis.call('PTTL', P .. 'exit:lock:' .. s)})
  else
    redis.call('SREM', P .. 'governor:exit_locks', s)
  end
end
out.cooldown = redis.call('HGETALL', P .. 'governor:cooldown')
out.opens = redis.call('ZRANGEBYSCORE', P .. 'governor:opens', now - 3600000, '+inf', 'WITHSCORES')
out.seq = redis.call('GET', P .. 'governor:reservation_seq') or '0'
out.capital = redis.call('GET', P .. 'portfolio:capital') or false
out.allocation = redis.call('GET', P .. 'capital:allocation:' .. symbol) or false
return cjson.encode(out)
