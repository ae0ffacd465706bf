-- Reads everything the decisions of a batch of plans need in one round trip, as one JSON
-- document. ARGV: prefix, plan ids (newline-separated), symbols (newline-separated), now (ms),
-- and optionally 'ledger': then only the ledger is read (the paper exchange's view of its
-- positions), not the whole state.
local P, now = ARGV[1], tonumber(ARGV[4])
local function lines(s)
  local t = {}
  for x in string.gmatch(s, '[^\n]+') do table.insert(t, x) end
  return t
end
local function ledger()
  local out = {}
  for _, s in ipairs(redis.call('SMEMBERS', P .. 'governor:ledger')) do
    local h = redis.call('HGETALL', P .. 'position:ledger:' .. s)
    if #h > 0 then table.insert(out, {s, h}) end
  end
  return out
end
if ARGV[5] == 'ledger' then
  return cjson.encode({ledger = ledger()})
end
local out = {}
out.kill = redis.call('GET', P .. 'kill') or false
out.universe = redis.call('HGET', P .. 'policy:current', 'universe_symbols') or false
out.decisions = {}
local ids = lines(ARGV[2])
if #ids > 0 then
  local keys = {}
  for i, id in ipairs(ids) do keys[i] = P .. 'governor:decision:' .. id end
  -- One MGET for the batch's earlier decisions (false where there is none).
  out.decisions = redis.call('MGET', unpack(keys))
end
out.reservations = redis.call('HGETALL', P .. 'governor:reservations')
out.rotations = redis.call('HGETALL', P .. 'governor:rotations')
out.in_doubt = redis.call('HGETALL', P .. 'governor:in_doubt')
out.ledger_versions = redis.call('HGETALL', P .. 'governor:ledger_versions')
out.ledger = ledger()
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
out.equity = redis.call('HGETALL', P .. 'governor:equity')
out.halt = redis.call('GET', P .. 'governor:halt') or false
out.closes = redis.call('LRANGE', P .. 'governor:closes', 0, -1)
out.capital = redis.call('GET', P .. 'portfolio:capital') or false
out.allocations = {}
for _, s in ipairs(lines(ARGV[3])) do
  local a = redis.call('GET', P .. 'capital:allocation:' .. s)
  if a then table.insert(out.allocations, s); table.insert(out.allocations, a) end
end
return cjson.encode(out)
